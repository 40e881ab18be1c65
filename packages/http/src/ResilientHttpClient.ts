/**
 * A resilient `HttpClient`: every request goes through the parts of a
 * `Policy` of `@effect-resilience/core` — attempt timeout, retry, adaptive
 * throttle, circuit breaker, rate limiter, bulkhead, hedging, total timeout
 * — keyed by the request's host, with HTTP-aware classification of
 * responses.
 *
 * **Details**
 *
 * - One order, `Policy`'s: total timeout → retry → adaptive throttle →
 *   circuit breaker → rate limit → bulkhead → hedging → attempt timeout, so
 *   every attempt is one breaker outcome and a timed-out attempt is a
 *   breaker failure. `Policy`
 *   applies the outer layers; the client applies the hedge and the attempt
 *   timeout itself, in the same order, before it classifies the response: a
 *   hedge races for the first *response*, whatever its status.
 * - The throttle, the breaker, the limiter and the bulkhead are keyed by the
 *   request's host (`host:port`, or `key`): one failing host opens its own
 *   circuit only. The throttle counts a permanent answer (a 404) as an
 *   accept and a failure (a 503, a 429, a timeout) as a refusal, so a host
 *   shedding load is asked less, by every caller of this client.
 *   `hosts` gives some hosts parts of their own.
 * - Logical services (`services`): a request to `http://payments/charge`
 *   goes to an endpoint of the `payments` service, picked by its
 *   `LoadBalancer` for each attempt; the URL's scheme, host and port become
 *   the endpoint's, its path and query are kept byte for byte. A retry, and
 *   a hedged attempt, prefer an endpoint the request has not tried yet. The
 *   classification feeds the balancer's outlier detection: a failure (5xx,
 *   408, 429, a transport error, an attempt timeout) counts against the
 *   endpoint, a permanent answer (a 404) for it, a request that never left
 *   is ignored. No endpoint to pick fails with `LoadBalancerError`, retried
 *   after its `retryAfter` as the other rejections are. A `ringHash`
 *   balancer hashes the key `hashKey` gives a request.
 * - For a service the breaker is per *endpoint* (keyed by the request as
 *   sent: `10.0.0.7:8080`), inside the pick — an open circuit sends the
 *   attempt on at once to an endpoint not tried yet; the throttle, the
 *   limiter and the bulkhead are per *service* (the quota and the
 *   concurrency a caller allows itself toward it do not grow with its
 *   replicas). The order: total timeout → retry → adaptive throttle → rate
 *   limit → bulkhead → hedging → pick → circuit breaker → attempt timeout.
 * - Responses are classified by status (`classify`): 5xx, 408 and 429 are
 *   failures (counted by the breaker, retried); other 4xx are *permanent*
 *   (not retried; a success for the breaker, since the host answered — a
 *   half-open probe answered with a 404 closes the circuit); the rest
 *   succeed. Transport errors and attempt timeouts are failures too; a
 *   request that never left (an invalid URL, a body that does not encode)
 *   is neither retried nor counted, and neither is a timeout of the
 *   caller's deadline (`Timeout.deadline`, or `HttpDeadline.client`
 *   refusing a request with no time left): no time is left to retry, and
 *   the host did nothing wrong.
 * - `Retry-After` (seconds or an HTTP date) on a 429 or 503 is the retry's
 *   delay hint (bounded by the retry policy's `maxRetryAfter`) and the
 *   breaker's open-duration hint (bounded by its `maxOpenDuration`).
 * - Only requests that are safe to repeat are retried or hedged (`retryable`):
 *   GET, HEAD, PUT, DELETE, OPTIONS, or any method with an `Idempotency-Key`
 *   header, and never a request with a stream body.
 * - The client keeps the `HttpClient` contract: a failure response whose
 *   retries ran out is returned as a response (check it with
 *   `HttpClientResponse.filterStatusOk`); the error channel gains the errors of
 *   the parts present (`TimeoutError`, `RetryError`, `CircuitBreakerError`,
 *   `RateLimiterError`, `BulkheadError`), and `LoadBalancerError` with
 *   services.
 * - A failure response to a request that a retry may repeat lets go of its
 *   connection before the retry's wait: when its body is known to fit 64 KiB
 *   (a `Content-Length` within it and no `Content-Encoding`, or no body), the
 *   body is read at once, inside the attempt (and its timeout), and the
 *   response returned when retries run out carries the bytes (status,
 *   headers, cookies and URL as received). Any other failure body a retry
 *   supersedes is read (up to 64 KiB, so a keep-alive connection goes back
 *   to its pool; past that it is cancelled) before the next attempt is sent;
 *   one never returned (the request failed otherwise, or was interrupted)
 *   is cancelled.
 * - A request to a service carries the endpoint's `Host` by default;
 *   `hostHeader: "service"` sends the logical one (see `ClientOptions`).
 *
 * **Gotchas**
 *
 * - A failure response whose body is longer than 64 KiB, compressed, or of
 *   unknown length (chunked) still holds its connection through the retry's
 *   wait, until the next attempt starts.
 * - A failure response read early is no longer a Fetch `Response`:
 *   `HttpClientResponse.toWeb` gives `None` for it.
 * - `hostHeader: "service"` needs a client that lets a caller set `Host`
 *   (`NodeHttpClient`); Fetch always sends the URL's.
 * - A service's balancer is yours: make it in the scope it should live in,
 *   and watch its `stats` and `events`; several clients may share it.
 * - A `fallback` part is not accepted: put `Effect.catch` (or a
 *   `Fallback` combinator) around the call, where the response type is known.
 *
 * **Example** (503, 503, then 200: three attempts, one answer)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker, Retry } from "@effect-resilience/core"
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { HttpClient, HttpClientResponse } from "effect/http"
 *
 * const statuses = [503, 503, 200]
 * const upstream = HttpClient.make((request) =>
 *   Effect.sync(() => HttpClientResponse.fromWeb(request, new Response(null, { status: statuses.shift() ?? 200 })))
 * )
 *
 * const program = Effect.gen(function* () {
 *   const client = yield* ResilientHttpClient.make(upstream, {
 *     retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
 *     circuitBreaker: yield* CircuitBreaker.make({ consecutiveFailures: 5 }),
 *     attemptTimeout: "2 seconds"
 *   })
 *   const response = yield* client.get("http://quotes.internal/eurusd")
 *   return [response.status, statuses.length]
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => [200, 0]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import {
  AdaptiveThrottle,
  type Bulkhead,
  CircuitBreaker,
  Hedge,
  LoadBalancer,
  Options as Options_,
  Policy,
  type RateLimiter,
  Retry,
  Timeout
} from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Headers from "effect/http/Headers"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as HttpIncomingMessage from "effect/http/HttpIncomingMessage"
import * as UrlParams from "effect/http/UrlParams"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import { pipeArguments } from "effect/Pipeable"
import * as Result from "effect/Result"
import type * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

// ---------------------------------------------------------------------------
// classification
// ---------------------------------------------------------------------------

/**
 * What a response means for the resilience parts:
 *
 * - `"success"`: returned as it is, a success for the breaker;
 * - `"failure"`: counted by the breaker, retried (when the request may be
 *   repeated), returned once retries run out;
 * - `"permanent"`: not retried, returned; a success for the breaker (the host
 *   answered: the request itself was wrong).
 *
 * @category models
 * @since 0.1.0
 */
export type Classification = "success" | "failure" | "permanent"

/**
 * The default classification of a status code: 5xx, 408 (Request Timeout)
 * and 429 (Too Many Requests) are failures, other 4xx are permanent (the
 * request itself is wrong: repeating it gives the same answer), everything
 * else succeeds.
 *
 * **Example** (Three statuses)
 *
 * ```ts import.meta.vitest
 * import { ResilientHttpClient } from "@effect-resilience/http"
 *
 * const statuses = [503, 429, 404, 200]
 * statuses.map(ResilientHttpClient.classifyStatus)
 * // => ["failure", "failure", "permanent", "success"]
 * ```
 *
 * @category classification
 * @since 0.1.0
 */
export const classifyStatus = (status: number): Classification =>
  status >= 500 || status === 408 || status === 429 ? "failure" : status >= 400 ? "permanent" : "success"

/**
 * The methods repeated by default: those RFC 9110 calls idempotent
 * (TRACE aside).
 *
 * @category classification
 * @since 0.1.0
 */
export const idempotentMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])

/**
 * The default of `retryable`: an idempotent method (`idempotentMethods`), or
 * any method with an `Idempotency-Key` header (the server deduplicates
 * repeats), and a body that can be sent again (not a stream).
 *
 * **Example** (POST is repeated only with an idempotency key)
 *
 * ```ts import.meta.vitest
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { HttpClientRequest } from "effect/http"
 *
 * const requests = [
 *   HttpClientRequest.get("https://api.example.com/orders"),
 *   HttpClientRequest.post("https://api.example.com/orders"),
 *   HttpClientRequest.post("https://api.example.com/orders", { headers: { "Idempotency-Key": "order-42" } })
 * ]
 * requests.map(ResilientHttpClient.isRetryable)
 * // => [true, false, true]
 * ```
 *
 * @category classification
 * @since 0.1.0
 */
export const isRetryable = (request: HttpClientRequest.HttpClientRequest): boolean =>
  request.body._tag !== "Stream" &&
  (idempotentMethods.has(request.method.toUpperCase()) || request.headers["idempotency-key"] !== undefined)

/**
 * The default key of a request: the host of its URL (`host:port` when the
 * port is given), or the URL itself when it does not parse.
 *
 * @category classification
 * @since 0.1.0
 */
export const hostOf = (request: HttpClientRequest.HttpClientRequest): string => {
  try {
    return new URL(request.url).host
  } catch {
    return request.url
  }
}

/**
 * Reads a `Retry-After` header value — whole seconds or an HTTP date — as the
 * time to wait from `nowMillis` (epoch milliseconds): a past date waits 0,
 * an unreadable value is `undefined`.
 *
 * **Example** (Seconds and a date)
 *
 * ```ts import.meta.vitest
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Duration } from "effect"
 *
 * const now = Date.parse("2026-01-01T00:00:00Z")
 * const waits = ["120", "Thu, 01 Jan 2026 00:00:30 GMT", "soon"].map((v) => ResilientHttpClient.retryAfterOf(v, now))
 * waits.map((d) => (d === undefined ? undefined : Duration.toMillis(d)))
 * // => [120000, 30000, undefined]
 * ```
 *
 * @category classification
 * @since 0.1.0
 */
export const retryAfterOf = (value: string | undefined, nowMillis: number): Duration.Duration | undefined => {
  if (value === undefined) return undefined
  const parsed = Headers.parseRetryAfter(value)
  return Result.isSuccess(parsed) ? Headers.retryAfterDelay(parsed.success, nowMillis) : undefined
}

/**
 * A response classified `"failure"` or `"permanent"`, carried as a typed
 * error through the parts (so the retry and the breaker see it with its
 * `Retry-After` hint) and turned back into the response outside them.
 * It never reaches the caller.
 */
class StatusFailure extends Data.TaggedError("StatusFailure")<{
  readonly response: HttpClientResponse.HttpClientResponse
  readonly counted: boolean
  /** `Retry-After` of a 429 or 503, read when the response arrived (the retry's and the breaker's hint). */
  readonly retryAfter: Duration.Duration | undefined
}> {}

const isStatusFailure = (u: unknown): u is StatusFailure => u instanceof StatusFailure

/**
 * What an error says: `"answered"` — the host answered that the request
 * itself is wrong (a permanent response, or a status code error of a
 * permanent status from a client filtering statuses); `"local"` — the
 * request never left (an invalid URL, a body that does not encode);
 * `"rejected"` — it never left either, refused by a breaker's open circuit
 * or a balancer with no endpoint to pick, and may pass later (a timeout of
 * the caller's deadline is `"local"`: no time is left to retry, and the host
 * did nothing wrong);
 * `"failure"` — anything else (a failure response, a transport error, a
 * timeout). Failures and rejections are retried; only failures count
 * against a host.
 */
type ErrorKind = "answered" | "local" | "rejected" | "failure"
const errorKindWith =
  (classify: (response: HttpClientResponse.HttpClientResponse) => Classification) =>
  (error: unknown): ErrorKind => {
    if (isStatusFailure(error)) return error.counted ? "failure" : "answered"
    if (CircuitBreaker.isCircuitBreakerError(error) || LoadBalancer.isLoadBalancerError(error)) return "rejected"
    // the caller's deadline ran out (or left too little to send, as `HttpDeadline.client` refuses): nothing to retry,
    // and nothing the host did
    if (isDeadlineTimeout(error)) return "local"
    if (HttpClientError.isHttpClientError(error)) {
      const reason = error.reason
      if (reason._tag === "TransportError") return isDeadlineTimeout(reason.cause) ? "local" : "failure"
      if (reason._tag === "StatusCodeError") return classify(reason.response) === "failure" ? "failure" : "answered"
      return "local"
    }
    return "failure"
  }

/** A `Timeout.TimeoutError` of the enclosing deadline (not of an attempt timeout). */
const isDeadlineTimeout = (error: unknown): boolean => Timeout.isTimeoutError(error) && error.reason.kind === "deadline"

const breakerHint = (error: unknown): Duration.Duration | undefined =>
  isStatusFailure(error) ? error.retryAfter : undefined

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

/**
 * The parts a resilient client takes: those of `Policy.Parts` but the
 * fallback (see the module's gotchas).
 *
 * @category options
 * @since 0.1.0
 */
export type Parts = Omit<Policy.Parts, "fallback">

/**
 * Runtime identifier of `Service` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ServiceTypeId: ServiceTypeId = "~@effect-resilience/http/ResilientHttpClient/Service"

/**
 * Type-level identifier of `Service` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ServiceTypeId = "~@effect-resilience/http/ResilientHttpClient/Service"

/**
 * An endpoint of a logical service as the client reaches it: its id and,
 * when known, its base URL.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServiceEndpoint {
  /** The balancer's endpoint id: `host:port` when no `url` is given. */
  readonly id: string
  /** The base URL (`http://10.0.0.7:8080`, or with a path prefix); undefined: the request's scheme and `id`. */
  readonly url: string | undefined
}

/**
 * A logical service over several endpoints: a `LoadBalancer` and how to reach
 * its endpoints (see {@link service}).
 *
 * @category models
 * @since 0.1.0
 */
export interface Service {
  readonly [ServiceTypeId]: ServiceTypeId
  /** The balancer's name. */
  readonly name: string
  /** Picks an endpoint with the balancer (as `LoadBalancer.call`) and runs `f` for it. */
  readonly call: <A, Err, R>(
    f: (endpoint: ServiceEndpoint) => Effect.Effect<A, Err, R>,
    options: LoadBalancer.CallOptions<A, Err>
  ) => Effect.Effect<A, Err | LoadBalancer.LoadBalancerError, R>
}

/**
 * How {@link service} reaches an endpoint of type `E`.
 *
 * @category options
 * @since 0.1.0
 */
export interface ServiceOptions<E extends LoadBalancer.Endpoint> {
  /**
   * The endpoint's base URL: scheme, host, port and an optional path prefix
   * (default: its `metadata.url`, else the request's scheme and the
   * endpoint's `id` as `host:port`).
   */
  readonly url?: ((endpoint: E) => string | undefined) | undefined
}

/**
 * A logical service for the client's `services` option: a balancer over
 * endpoints of any type, with how to reach them. A plain
 * `LoadBalancer<Endpoint>` whose ids are `host:port` (or whose endpoints
 * carry `metadata.url`) can be given as it is.
 *
 * **Example** (Endpoints of your own type)
 *
 * ```ts
 * import { LoadBalancer } from "@effect-resilience/core"
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * interface Pod extends LoadBalancer.Endpoint {
 *   readonly ip: string
 *   readonly port: number
 * }
 *
 * const payments = Effect.map(
 *   LoadBalancer.make<Pod>({ name: "payments", endpoints: [{ id: "pod-a", ip: "10.0.0.7", port: 8443 }] }),
 *   (lb) => ResilientHttpClient.service(lb, { url: (pod) => `https://${pod.ip}:${pod.port}` })
 * )
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const service = <E extends LoadBalancer.Endpoint>(
  balancer: Pick<LoadBalancer.LoadBalancer<E>, "name" | "call">,
  options?: ServiceOptions<E> | undefined
): Service => {
  const urlOf = options?.url ?? ((endpoint: E) => endpoint.metadata?.url)
  return {
    [ServiceTypeId]: ServiceTypeId,
    name: balancer.name,
    call: (f, callOptions) => balancer.call((endpoint) => f({ id: endpoint.id, url: urlOf(endpoint) }), callOptions)
  }
}

/**
 * Whether a value is a {@link Service}.
 *
 * @category guards
 * @since 0.1.0
 */
export const isService = (u: unknown): u is Service => typeof u === "object" && u !== null && ServiceTypeId in u

/**
 * What the `services` option takes of a `LoadBalancer`: any balancer, over
 * endpoints of any type, whose ids are `host:port` or whose endpoints carry
 * `metadata.url` (otherwise, see {@link service}).
 *
 * @category options
 * @since 0.1.0
 */
export type Balancer = Pick<LoadBalancer.LoadBalancer, LoadBalancer.TypeId | "name" | "call">

/**
 * The `services` option: logical hosts (as {@link hostOf} gives them, e.g.
 * `payments` for `http://payments/charge`) and the service behind each.
 *
 * @category options
 * @since 0.1.0
 */
export type Services = Readonly<Record<string, Balancer | Service>>

/**
 * What `make` takes besides the parts.
 *
 * @category options
 * @since 0.1.0
 */
export interface ClientOptions<H extends Parts = Parts, S extends Services = Services> {
  /**
   * The key of the throttle, the breaker's circuit, the limiter and the bulkhead (default {@link hostOf}); for a
   * request to a logical service, the breaker's key is that of the request as sent to its endpoint.
   */
  readonly key?: ((request: HttpClientRequest.HttpClientRequest) => string) | undefined
  /** Whether a request may be repeated: retried and hedged (default {@link isRetryable}). */
  readonly retryable?: ((request: HttpClientRequest.HttpClientRequest) => boolean) | undefined
  /** What a response means (default: {@link classifyStatus} of its status). */
  readonly classify?: ((response: HttpClientResponse.HttpClientResponse) => Classification) | undefined
  /** Parts of their own for some hosts (by {@link hostOf}; logical hosts too), instead of the default ones. */
  readonly hosts?: Readonly<Record<string, H>> | undefined
  /**
   * Logical hosts served by several endpoints: a request to `http://payments/charge` is sent to an endpoint
   * picked by the service's balancer, for each attempt (a retry prefers an endpoint not tried yet).
   */
  readonly services?: S | undefined
  /**
   * The `Host` header of a request to a logical service (`services`):
   *
   * - `"endpoint"` (the default): the endpoint's (`10.0.0.7:8080`), as the
   *   underlying client sets it from the URL sent. Right for endpoints reached
   *   directly (pods, VMs): they answer for their own address, and a logical
   *   name such as `payments` is not a virtual host they know;
   * - `"service"`: the logical host of the request's URL, with its port
   *   (`payments`, `payments:8080`). For endpoints that route by virtual host
   *   (a shared ingress, a reverse proxy, a server hosting several sites), as
   *   Envoy's `auto_host_rewrite: false` or nginx's `proxy_set_header Host $host`.
   *
   * A `Host` header set on the request is sent as it is either way. The URL,
   * and so TLS's server name and the breaker's key, stay the endpoint's.
   * Fetch (in browsers and in Node) does not let a caller set `Host`: it sends
   * the URL's whatever the request says, so `"service"` needs a client that
   * does (`NodeHttpClient`: node:http or undici).
   *
   * **Example** (Endpoints behind an ingress routing by Host)
   *
   * ```ts
   * import { LoadBalancer } from "@effect-resilience/core"
   * import { ResilientHttpClient } from "@effect-resilience/http"
   * import { Effect } from "effect"
   * import { HttpClient } from "effect/http"
   *
   * const program = Effect.gen(function* () {
   *   const ingresses = yield* LoadBalancer.make({
   *     name: "ingress",
   *     endpoints: [{ id: "10.0.1.1:80" }, { id: "10.0.1.2:80" }]
   *   })
   *   const client = yield* ResilientHttpClient.make(yield* HttpClient.HttpClient, {
   *     services: { "payments.example.com": ingresses },
   *     hostHeader: "service"
   *   })
   *   // sent to 10.0.1.1:80 or 10.0.1.2:80 with `Host: payments.example.com`
   *   return yield* client.get("http://payments.example.com/charges")
   * })
   * ```
   */
  readonly hostHeader?: "endpoint" | "service" | undefined
  /**
   * The key a `ringHash` balancer hashes for a request to a logical service
   * (`LoadBalancer.CallOptions.key`): requests with one key go to one
   * endpoint while it is eligible (and, with the balancer's `boundedLoad`,
   * not over its share of calls in flight), so an endpoint's cache stays
   * warm for its keys. Default: none — a `ringHash` service then picks at
   * random. Other strategies ignore it.
   *
   * **Example** (One tenant, one endpoint)
   *
   * ```ts
   * import { LoadBalancer } from "@effect-resilience/core"
   * import { ResilientHttpClient } from "@effect-resilience/http"
   * import { Effect } from "effect"
   * import { HttpClient } from "effect/http"
   *
   * const program = Effect.gen(function* () {
   *   const caches = yield* LoadBalancer.make({
   *     name: "cache",
   *     strategy: "ringHash",
   *     boundedLoad: 1.25,
   *     endpoints: [{ id: "10.0.2.1:8080" }, { id: "10.0.2.2:8080" }, { id: "10.0.2.3:8080" }]
   *   })
   *   const client = yield* ResilientHttpClient.make(yield* HttpClient.HttpClient, {
   *     services: { cache: caches },
   *     hashKey: (request) => request.headers["x-tenant"]
   *   })
   *   return yield* client.get("http://cache/entries/42", { headers: { "x-tenant": "acme" } })
   * })
   * ```
   */
  readonly hashKey?: ((request: HttpClientRequest.HttpClientRequest) => string | undefined) | undefined
}

/**
 * The options of `make`: the default parts (any of `attemptTimeout`, `retry`,
 * `circuitBreaker`, `rateLimiter`, `bulkhead`, `hedge`, `totalTimeout`) and
 * the client's options.
 *
 * @category options
 * @since 0.1.0
 */
export type Options<P extends Parts = Parts, H extends Parts = Parts, S extends Services = Services> = P &
  ClientOptions<H, S>

/**
 * The errors a resilient client adds for parts `P`: those of the parts
 * present (`Policy.Errors`).
 *
 * @category models
 * @since 0.1.0
 */
export type Errors<P> = Policy.Errors<P>

/**
 * The errors logical services add: `LoadBalancerError` (no endpoint to
 * pick) and an `HttpClientError` when an endpoint's URL cannot be made.
 *
 * @category models
 * @since 0.1.0
 */
export type ServiceErrors<S> = [S] extends [never]
  ? never
  : LoadBalancer.LoadBalancerError | HttpClientError.HttpClientError

/**
 * Every error a resilient client may add.
 *
 * @category models
 * @since 0.1.0
 */
export type ResilienceError =
  | Timeout.TimeoutError
  | Retry.RetryError
  | CircuitBreaker.CircuitBreakerError
  | RateLimiter.RateLimiterError
  | Bulkhead.BulkheadError
  | AdaptiveThrottle.AdaptiveThrottleError
  | LoadBalancer.LoadBalancerError

// ---------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------

const partNames = [
  "totalTimeout",
  "retry",
  "adaptiveThrottle",
  "circuitBreaker",
  "rateLimiter",
  "bulkhead",
  "hedge",
  "attemptTimeout",
  "name"
] as const

const isThrottle = (u: unknown): u is AdaptiveThrottle.AdaptiveThrottle =>
  typeof u === "object" && u !== null && AdaptiveThrottle.TypeId in u
const isBreaker = (u: unknown): u is CircuitBreaker.CircuitBreaker =>
  typeof u === "object" && u !== null && CircuitBreaker.TypeId in u
const isRetryPolicy = (u: unknown): u is Retry.Policy => typeof u === "object" && u !== null && Retry.TypeId in u

const isHedgePolicy = (u: unknown): u is Hedge.Policy => typeof u === "object" && u !== null && Hedge.TypeId in u

interface Policies {
  /** Whether a retry is among the parts (a failure response of a repeatable request may then be superseded). */
  readonly retries: boolean
  /** The outer layers (total timeout to bulkhead) for requests that may be repeated. */
  readonly repeatable: Policy.Policy
  /** The outer layers for the others: no retry. */
  readonly once: Policy.Policy
  /** The two innermost layers, applied here (see `inner`): the hedge (repeatable requests only), the attempt timeout. */
  readonly hedge: Policy.HedgePart | undefined
  readonly attemptTimeout: Duration.Input | undefined
  /** For a logical service: the outer layers but the breaker (total timeout, retry, throttle, limiter, bulkhead). */
  readonly serviceRepeatable: Policy.Policy
  readonly serviceOnce: Policy.Policy
  /** For a logical service: the breaker alone, applied per endpoint. */
  readonly endpoint: Policy.Policy | undefined
}

/**
 * The innermost layers, in `Policy`'s order — the attempt timeout inside the
 * hedge — applied before the response is classified: a hedge races for the
 * first *response*, whatever its status (a 404 or a 503 must not start the
 * next hedged attempt at once, as a failed attempt does).
 */
const inner = <E, R>(
  effect: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>,
  policies: Policies,
  repeatable: boolean
): Effect.Effect<HttpClientResponse.HttpClientResponse, E | Timeout.TimeoutError, R> => {
  let attempt: Effect.Effect<HttpClientResponse.HttpClientResponse, E | Timeout.TimeoutError, R> = effect
  if (policies.attemptTimeout !== undefined) attempt = Timeout.attempt(attempt, policies.attemptTimeout)
  return hedged(attempt, policies, repeatable)
}

const hedged = <A, E, R>(attempt: Effect.Effect<A, E, R>, policies: Policies, repeatable: boolean) => {
  const hedge = policies.hedge
  if (!repeatable || hedge === undefined) return attempt
  return isHedgePolicy(hedge) ? Hedge.hedge(attempt, hedge) : Hedge.hedge(attempt, hedge.policy, { key: hedge.key })
}

/** The parts with the HTTP classification added to the retry, the throttle and the breaker (the caller's own predicates win). */
const httpParts = (input: Parts, errorKind: (error: unknown) => ErrorKind): Policy.Parts => {
  // failures are retried, and so are rejections (an open circuit, no endpoint): after their `retryAfter`
  const isRetried = (error: unknown) => {
    const kind = errorKind(error)
    return kind === "failure" || kind === "rejected"
  }
  // a request that never left says nothing of the host
  const neverLeft = (error: unknown) => {
    const kind = errorKind(error)
    return kind === "local" || kind === "rejected"
  }
  const parts: Record<string, unknown> = {}
  for (const name of partNames) if (input[name] !== undefined) parts[name] = input[name]
  const retry = input.retry
  if (retry !== undefined) {
    parts.retry = isRetryPolicy(retry)
      ? { policy: retry, while: isRetried }
      : { ...retry, while: retry.while ?? isRetried }
  }
  const throttle = input.adaptiveThrottle
  if (throttle !== undefined) {
    const part = isThrottle(throttle) ? { throttle } : throttle
    const ownAccepted = part.isAccepted
    const ownIgnored = part.isIgnored
    parts.adaptiveThrottle = {
      ...part,
      // as for the breaker: a request that never left counts for nothing, a permanent answer is an accept
      isIgnored: (error: unknown) => neverLeft(error) || ownIgnored?.(error) === true,
      isAccepted: (error: unknown) => errorKind(error) === "answered" || ownAccepted?.(error) === true
    }
  }
  const breaker = input.circuitBreaker
  if (breaker !== undefined) {
    const part = isBreaker(breaker) ? { breaker } : breaker
    const ownFailure = part.isFailure
    const ownIgnored = part.isIgnored
    parts.circuitBreaker = {
      ...part,
      isIgnored: (error: unknown) => neverLeft(error) || ownIgnored?.(error) === true,
      // a permanent answer (a 404, a 400) shows the host at work: a success for the breaker, so it also closes a
      // half-open circuit; failures are failures unless the part says otherwise
      isFailure: (error: unknown) => errorKind(error) === "failure" && (ownFailure === undefined || ownFailure(error)),
      retryAfter: part.retryAfter ?? breakerHint
    }
  }
  return parts as Policy.Parts
}

/** The policies of a set of parts, or the issues of the parts (their paths prefixed with `prefix`). */
const policiesOf = (
  input: Parts,
  errorKind: (error: unknown) => ErrorKind,
  prefix: string
): Effect.Effect<Result.Result<Policies, ReadonlyArray<Options_.Issue>>> => {
  const parts = httpParts(input, errorKind)
  const { hedge, attemptTimeout, ...outer } = parts
  const { retry: _retry, ...outerOnce } = outer
  const { circuitBreaker, ...serviceOuter } = outer
  const { retry: _serviceRetry, ...serviceOnce } = serviceOuter
  return Effect.map(
    Effect.result(
      // the whole combination is validated (a hedge delay against the attempt timeout, say)
      Effect.andThen(
        Policy.make(parts),
        Effect.all({
          repeatable: Policy.make(outer),
          once: Policy.make(outerOnce),
          serviceRepeatable: Policy.make(serviceOuter),
          serviceOnce: Policy.make(serviceOnce),
          endpoint:
            circuitBreaker === undefined ? Effect.succeed(undefined) : Policy.make({ name: parts.name, circuitBreaker })
        })
      )
    ),
    Result.match({
      onSuccess: (policies) =>
        Result.succeed({ ...policies, retries: input.retry !== undefined, hedge, attemptTimeout }),
      onFailure: (error) =>
        Result.fail(error.issues.map((issue) => new Options_.Issue({ ...issue, path: `${prefix}${issue.path}` })))
    })
  )
}

// ---------------------------------------------------------------------------
// logical services
// ---------------------------------------------------------------------------

/** `scheme:`, the authority, and the rest (path, query, fragment) of an absolute URL, kept as written. */
const urlParts = /^([a-z][a-z0-9+.-]*:)\/\/([^/?#]*)(.*)$/is

/**
 * The URL of a request to a logical service as sent to one of its endpoints:
 * the endpoint's scheme, host and port (and path prefix) before the request's
 * path, query and fragment, byte for byte; `undefined` when either URL is not
 * absolute.
 *
 * **Example** (Three endpoints' URLs)
 *
 * ```ts import.meta.vitest
 * import { ResilientHttpClient } from "@effect-resilience/http"
 *
 * const url = "http://payments/charge?amount=5&currency=EUR"
 * const endpoints = [
 *   { id: "10.0.0.7:8080", url: undefined },
 *   { id: "b", url: "https://10.0.0.8:8443" },
 *   { id: "c", url: "http://gateway.internal/payments/" }
 * ]
 * endpoints.map((endpoint) => ResilientHttpClient.endpointUrl(url, endpoint))
 * // => ["http://10.0.0.7:8080/charge?amount=5&currency=EUR", "https://10.0.0.8:8443/charge?amount=5&currency=EUR", "http://gateway.internal/payments/charge?amount=5&currency=EUR"]
 * ```
 *
 * @category classification
 * @since 0.1.0
 */
export const endpointUrl = (url: string, endpoint: ServiceEndpoint): string | undefined => {
  const request = urlParts.exec(url)
  if (request === null) return undefined
  const rest = request[3] ?? ""
  if (endpoint.url === undefined) return `${request[1]}//${endpoint.id}${rest}`
  const base = urlParts.exec(endpoint.url)
  if (base === null) return undefined
  let prefix = base[3] ?? ""
  if (prefix.endsWith("/")) prefix = prefix.slice(0, -1)
  return `${base[1]}//${base[2]}${prefix}${rest}`
}

/**
 * Bytes of a failure response's body read when a retry supersedes it, so that
 * a keep-alive connection goes back to its pool; past them, the body is
 * cancelled (the connection closed).
 */
const drainLimit = 64 * 1024

/**
 * Lets go of a response that will not be returned: reads its body up to
 * `limit` bytes, then cancels the rest (a `limit` of 0 cancels at once,
 * without waiting for a byte). Errors are of no interest here.
 */
const release = (response: HttpClientResponse.HttpClientResponse, limit: number): Effect.Effect<void> => {
  if (limit <= 0) return Effect.ignore(Effect.scoped(Stream.toPull(response.stream)))
  let read = 0
  return Effect.ignore(
    Stream.runForEachWhile(response.stream, (chunk) => {
      read += chunk.length
      return Effect.succeed(read < limit)
    })
  )
}

/**
 * Whether a response's whole body is known to take at most `limit` bytes as
 * read: no body (a HEAD, a 204, a 304) or a `Content-Length` within it, with
 * no `Content-Encoding` (a decompressed body may be far larger than its
 * length on the wire).
 */
const knownWithin = (response: HttpClientResponse.HttpClientResponse, limit: number): boolean => {
  if (response.request.method === "HEAD" || response.status === 204 || response.status === 304) return true
  const headers = response.headers
  const encoding = headers["content-encoding"]
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") return false
  const length = headers["content-length"]
  return length !== undefined && /^\s*\d+\s*$/.test(length) && Number(length) <= limit
}

/**
 * A response whose body has been read: the status, headers, cookies, URL and
 * request of the response it was read from, with its bytes. Reading it does
 * not touch the connection, which went back to its pool (or closed) when the
 * body was read.
 */
class BufferedResponse extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [HttpIncomingMessage.TypeId]: typeof HttpIncomingMessage.TypeId = HttpIncomingMessage.TypeId
  readonly [HttpClientResponse.TypeId]: typeof HttpClientResponse.TypeId = HttpClientResponse.TypeId
  readonly source: HttpClientResponse.HttpClientResponse
  readonly body: ArrayBuffer
  constructor(source: HttpClientResponse.HttpClientResponse, body: ArrayBuffer) {
    super()
    this.source = source
    this.body = body
  }
  get request(): HttpClientRequest.HttpClientRequest {
    return this.source.request
  }
  get url(): string {
    return this.source.url
  }
  get status(): number {
    return this.source.status
  }
  get headers(): Headers.Headers {
    return this.source.headers
  }
  get cookies(): HttpClientResponse.HttpClientResponse["cookies"] {
    return this.source.cookies
  }
  get remoteAddress(): HttpClientResponse.HttpClientResponse["remoteAddress"] {
    return this.source.remoteAddress
  }
  get upgrade(): HttpClientResponse.HttpClientResponse["upgrade"] {
    return this.source.upgrade
  }
  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.HttpClientError> {
    return Effect.succeed(this.body)
  }
  get stream(): Stream.Stream<Uint8Array, HttpClientError.HttpClientError> {
    return this.body.byteLength === 0 ? Stream.empty : Stream.succeed(new Uint8Array(this.body))
  }
  get text(): Effect.Effect<string, HttpClientError.HttpClientError> {
    return Effect.sync(() => new TextDecoder().decode(this.body))
  }
  get json(): Effect.Effect<Schema.Json, HttpClientError.HttpClientError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({
        try: (): Schema.Json => (text === "" ? null : JSON.parse(text)),
        catch: (cause) => this.decodeError(cause)
      })
    )
  }
  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpClientError.HttpClientError> {
    return Effect.try({
      try: () => UrlParams.fromInput(new URLSearchParams(new TextDecoder().decode(this.body).replace(/^\?/, "%3F"))),
      catch: (cause) => this.decodeError(cause)
    })
  }
  get formData(): Effect.Effect<FormData, HttpClientError.HttpClientError> {
    const contentType = this.headers["content-type"]
    return Effect.tryPromise({
      try: () =>
        new Response(
          this.body,
          contentType === undefined ? {} : { headers: { "content-type": contentType } }
        ).formData(),
      catch: (cause) => this.decodeError(cause)
    })
  }
  toJSON(): unknown {
    return HttpIncomingMessage.inspect(this, {
      _id: "HttpClientResponse",
      request: this.request.toJSON(),
      status: this.status
    })
  }
  pipe() {
    // biome-ignore lint/complexity/noArguments: Effect's pipeable convention
    return pipeArguments(this, arguments)
  }
  private decodeError(cause: unknown): HttpClientError.HttpClientError {
    return new HttpClientError.HttpClientError({
      reason: new HttpClientError.DecodeError({ request: this.request, response: this, cause })
    })
  }
}

/**
 * Reads now the body of a failure response that a retry may supersede, when
 * it is known to fit `drainLimit` (see {@link knownWithin}): its connection
 * goes back to its pool at once, not after the retry's wait, and the response
 * (returned if no retry comes) carries the bytes. A body that fails to read
 * leaves the response as it was (released later); one interrupted (an
 * attempt timeout, a hedge lost) is cancelled.
 */
const readFailureBody = (
  response: HttpClientResponse.HttpClientResponse
): Effect.Effect<HttpClientResponse.HttpClientResponse> =>
  response instanceof BufferedResponse || !knownWithin(response, drainLimit)
    ? Effect.succeed(response)
    : response.arrayBuffer.pipe(
        Effect.map((body): HttpClientResponse.HttpClientResponse => new BufferedResponse(response, body)),
        Effect.orElseSucceed(() => response),
        Effect.onInterrupt(() => release(response, 0))
      )

/**
 * Wraps an `HttpClient` so that every request goes through the parts, in
 * `Policy`'s order, keyed by its host (see the module's details); a request
 * to a logical service (`services`) goes to one of its endpoints, picked for
 * each attempt. Fails with one `Options.InvalidOptions` listing every problem
 * of the parts (of the default parts, then of each host's, as
 * `hosts.<host>.<path>`).
 *
 * **Example** (A breaker per host; some hosts with their own parts)
 *
 * ```ts
 * import { CircuitBreaker, Retry } from "@effect-resilience/core"
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { FetchHttpClient, HttpClient, HttpClientResponse } from "effect/http"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 5, openDuration: "30 seconds" })
 *   const client = yield* ResilientHttpClient.make(yield* HttpClient.HttpClient, {
 *     attemptTimeout: "2 seconds",
 *     retry: Retry.exponential({ base: "100 millis", cap: "2 seconds", jitter: "full", maxAttempts: 3 }),
 *     circuitBreaker: breaker,
 *     hosts: {
 *       // a slow batch API: a longer timeout, no retry
 *       "batch.internal": { attemptTimeout: "30 seconds", circuitBreaker: breaker }
 *     }
 *   })
 *   const response = yield* client.get("https://quotes.internal/eurusd")
 *   return yield* HttpClientResponse.filterStatusOk(response)
 * }).pipe(Effect.scoped, Effect.provide([CircuitBreaker.layerStoreMemory(), FetchHttpClient.layer]))
 * ```
 *
 * **Example** (A logical service over three endpoints: the retry after a 503 goes elsewhere)
 *
 * ```ts import.meta.vitest
 * import { LoadBalancer, Retry } from "@effect-resilience/core"
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { HttpClient, HttpClientResponse } from "effect/http"
 *
 * const sent: Array<string> = []
 * const upstream = HttpClient.make((request) =>
 *   Effect.sync(() => {
 *     sent.push(request.url)
 *     const status = request.url.startsWith("http://10.0.0.1:8080") ? 503 : 200
 *     return HttpClientResponse.fromWeb(request, new Response(null, { status }))
 *   })
 * )
 *
 * const program = Effect.gen(function* () {
 *   const payments = yield* LoadBalancer.make({
 *     name: "payments",
 *     endpoints: [{ id: "10.0.0.1:8080" }, { id: "10.0.0.2:8080" }, { id: "10.0.0.3:8080" }]
 *   })
 *   const client = yield* ResilientHttpClient.make(upstream, {
 *     retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
 *     services: { payments }
 *   })
 *   const response = yield* client.get("http://payments/charges?id=42")
 *   return [response.status, ...sent]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [200, "http://10.0.0.1:8080/charges?id=42", "http://10.0.0.2:8080/charges?id=42"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <E, R, const P extends Parts, const H extends Parts = never, const S extends Services = never>(
  client: HttpClient.HttpClient.With<E, R>,
  options: Options<P, H, S>
): Effect.Effect<
  HttpClient.HttpClient.With<E | Errors<P> | Errors<H> | ServiceErrors<S>, R>,
  Options_.InvalidOptions
> =>
  Effect.gen(function* () {
    const classify = options.classify ?? ((response) => classifyStatus(response.status))
    const errorKind = errorKindWith(classify)
    const keyOf = options.key ?? hostOf
    const retryable = options.retryable ?? isRetryable
    const hostHeader = options.hostHeader ?? "endpoint"
    const hashKey = options.hashKey
    const issues: Array<Options_.Issue> = []
    const defaults = yield* policiesOf(options, errorKind, "")
    if (Result.isFailure(defaults)) issues.push(...defaults.failure)
    const perHost = new Map<string, Policies>()
    for (const [host, parts] of Object.entries(options.hosts ?? {})) {
      const policies = yield* policiesOf(parts as Parts, errorKind, `hosts.${host}.`)
      if (Result.isFailure(policies)) issues.push(...policies.failure)
      else perHost.set(host, policies.success)
    }
    const services = new Map<string, Service>()
    for (const [host, value] of Object.entries<Balancer | Service>(options.services ?? {})) {
      if (isService(value)) services.set(host, value)
      else if (LoadBalancer.isLoadBalancer(value)) services.set(host, service(value))
      else {
        issues.push(
          new Options_.Issue({
            path: `services.${host}`,
            value: Options_.renderValue(value),
            message: "Expected a LoadBalancer or a ResilientHttpClient.Service"
          })
        )
      }
    }
    if (hostHeader !== "endpoint" && hostHeader !== "service") {
      issues.push(
        new Options_.Issue({
          path: "hostHeader",
          value: Options_.renderValue(options.hostHeader),
          message: 'Expected "endpoint" or "service"'
        })
      )
    }
    if (hashKey !== undefined && typeof hashKey !== "function") {
      issues.push(
        new Options_.Issue({
          path: "hashKey",
          value: Options_.renderValue(hashKey),
          message: "Expected a function of the request"
        })
      )
    }
    if (Result.isFailure(defaults) || issues.length > 0) {
      return yield* Effect.fail(new Options_.InvalidOptions({ pattern: "ResilientHttpClient", issues }))
    }
    const fallbackPolicies = defaults.success
    const byHost = perHost.size > 0 || services.size > 0

    /** The failure a classified response becomes (`undefined`: a success). */
    const failureOf = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<StatusFailure | undefined> => {
      const classification = classify(response)
      if (classification === "success") return Effect.succeed(undefined)
      const status = response.status
      return Effect.map(
        Clock.currentTimeMillis,
        (now) =>
          new StatusFailure({
            response,
            counted: classification === "failure",
            retryAfter:
              status === 429 || status === 503 ? retryAfterOf(response.headers["retry-after"], now) : undefined
          })
      )
    }
    const classified = (response: HttpClientResponse.HttpClientResponse) =>
      Effect.flatMap(failureOf(response), (failure) =>
        failure === undefined ? Effect.succeed(response) : Effect.fail(failure)
      )
    // a failure a retry may supersede: its body is read at once, inside the attempt (and its timeout), so its
    // connection does not sit idle through the retry's wait
    const readIfFailure = (response: HttpClientResponse.HttpClientResponse) =>
      classify(response) === "failure" ? readFailureBody(response) : Effect.succeed(response)

    // what the balancer makes of an attempt: as the breaker does
    const isIgnoredByBalancer = (error: unknown) => {
      const kind = errorKind(error)
      return kind === "local" || kind === "rejected"
    }
    const isFailureForBalancer = (error: unknown) => errorKind(error) === "failure"

    /**
     * One attempt at a logical service: an endpoint picked (passing over those
     * tried), the request sent there through the endpoint's breaker and the
     * attempt timeout. An open circuit sends it on at once to an endpoint not
     * tried yet, if any. The response is classified for the breaker and the
     * balancer, then handed back whatever its status (for the hedge to race).
     */
    const serviceAttempt = (
      target: Service,
      request: HttpClientRequest.HttpClientRequest,
      policies: Policies,
      tried: Set<string>,
      readEarly: boolean,
      key: string | undefined
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, unknown, R> => {
      let fresh = false
      const onEndpoint = (endpoint: ServiceEndpoint) => {
        fresh = !tried.has(endpoint.id)
        tried.add(endpoint.id)
        const url = endpointUrl(request.url, endpoint)
        if (url === undefined) {
          return Effect.fail(
            new HttpClientError.HttpClientError({
              reason: new HttpClientError.InvalidUrlError({
                request,
                description: `no URL for endpoint ${endpoint.id} of ${target.name}`
              })
            })
          )
        }
        let sent = HttpClientRequest.setUrl(request, url)
        if (hostHeader === "service" && request.headers.host === undefined) {
          sent = HttpClientRequest.setHeader(sent, "host", hostOf(request))
        }
        let attempt: Effect.Effect<HttpClientResponse.HttpClientResponse, unknown, R> = client.postprocess(
          Effect.succeed(sent)
        )
        if (readEarly) attempt = Effect.flatMap(attempt, readIfFailure)
        if (policies.attemptTimeout !== undefined) attempt = Timeout.attempt(attempt, policies.attemptTimeout)
        attempt = Effect.flatMap(attempt, classified)
        return policies.endpoint === undefined
          ? attempt
          : Policy.apply(attempt, policies.endpoint, { key: keyOf(sent) })
      }
      return target
        .call(onEndpoint, { key, avoid: tried, isIgnored: isIgnoredByBalancer, isFailure: isFailureForBalancer })
        .pipe(
          Effect.catchIf(
            (error) => fresh && CircuitBreaker.isCircuitBreakerError(error),
            () => serviceAttempt(target, request, policies, tried, readEarly, key)
          ),
          Effect.catchIf(isStatusFailure, (failure) => Effect.succeed(failure.response))
        )
    }

    return HttpClient.transform(client, (effect, request) => {
      const host = byHost ? hostOf(request) : ""
      const policies = perHost.get(host) ?? fallbackPolicies
      const target = services.size === 0 ? undefined : services.get(host)
      const repeatable = retryable(request)
      const policy =
        target === undefined
          ? repeatable
            ? policies.repeatable
            : policies.once
          : repeatable
            ? policies.serviceRepeatable
            : policies.serviceOnce
      return Effect.suspend(() => {
        // the failure response of the last attempt: released when a retry supersedes it, or when the request ends
        // without returning it
        let pending: HttpClientResponse.HttpClientResponse | undefined
        const supersede = Effect.suspend(() => {
          const response = pending
          pending = undefined
          return response === undefined ? Effect.void : release(response, drainLimit)
        })
        const tried = new Set<string>()
        const readEarly = repeatable && policies.retries
        const ringKey = target === undefined || hashKey === undefined ? undefined : hashKey(request)
        const sent =
          target === undefined
            ? inner(readEarly ? Effect.flatMap(effect, readIfFailure) : effect, policies, repeatable)
            : hedged(
                Effect.suspend(() => serviceAttempt(target, request, policies, tried, readEarly, ringKey)),
                policies,
                repeatable
              )
        const attempt = supersede.pipe(
          Effect.andThen(sent),
          Effect.flatMap((response) =>
            Effect.flatMap(failureOf(response), (failure) => {
              if (failure === undefined) return Effect.succeed(response)
              // a body already read holds nothing to release
              if (!(response instanceof BufferedResponse)) pending = response
              return Effect.fail(failure)
            })
          )
        )
        return attempt.pipe(
          Policy.apply(policy, { key: keyOf(request) }),
          Effect.catchIf(isStatusFailure, (failure) => {
            if (pending === failure.response) pending = undefined
            return Effect.succeed(failure.response)
          }),
          Effect.onExit(() => {
            const response = pending
            pending = undefined
            return response === undefined ? Effect.void : release(response, 0)
          })
        )
      }) as Effect.Effect<HttpClientResponse.HttpClientResponse, E | Errors<P> | Errors<H> | ServiceErrors<S>, R>
    })
  })

// ---------------------------------------------------------------------------
// service
// ---------------------------------------------------------------------------

/**
 * A resilient client as a service: the `HttpClient` with the errors any part
 * may add.
 *
 * @category models
 * @since 0.1.0
 */
export interface ResilientHttpClient
  extends HttpClient.HttpClient.With<HttpClientError.HttpClientError | ResilienceError> {}

/**
 * The service tag of the client `layer` provides.
 *
 * @category services
 * @since 0.1.0
 */
export const ResilientHttpClient: Context.Service<ResilientHttpClient, ResilientHttpClient> =
  Context.Service<ResilientHttpClient>("@effect-resilience/http/ResilientHttpClient")

/**
 * The `ResilientHttpClient` service over the `HttpClient` service (Fetch,
 * Node, Undici): `make` with these options. The layer fails with
 * `Options.InvalidOptions` when the parts are invalid.
 *
 * **Example** (Fetch underneath)
 *
 * ```ts
 * import { CircuitBreaker, Retry } from "@effect-resilience/core"
 * import { ResilientHttpClient } from "@effect-resilience/http"
 * import { Effect, Layer } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const ClientLive = Layer.unwrap(
 *   Effect.map(CircuitBreaker.make({ consecutiveFailures: 5 }), (breaker) =>
 *     ResilientHttpClient.layer({ attemptTimeout: "2 seconds", retry: Retry.exponential(), circuitBreaker: breaker })
 *   )
 * ).pipe(Layer.provide([FetchHttpClient.layer, CircuitBreaker.layerStoreMemory()]))
 *
 * const quote = Effect.flatMap(ResilientHttpClient.ResilientHttpClient, (client) =>
 *   client.get("https://quotes.internal/eurusd")
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: Options<Parts, Parts>
): Layer.Layer<ResilientHttpClient, Options_.InvalidOptions, HttpClient.HttpClient> =>
  Layer.effect(
    ResilientHttpClient,
    Effect.flatMap(HttpClient.HttpClient, (client) => make(client, options))
  )
