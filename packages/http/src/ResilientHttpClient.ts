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
 * - Responses are classified by status (`classify`): 5xx, 408 and 429 are
 *   failures (counted by the breaker, retried); other 4xx are *permanent*
 *   (not retried; a success for the breaker, since the host answered — a
 *   half-open probe answered with a 404 closes the circuit); the rest
 *   succeed. Transport errors and attempt timeouts are failures too; a
 *   request that never left (an invalid URL, a body that does not encode)
 *   is neither retried nor counted.
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
 *   `RateLimiterError`, `BulkheadError`).
 *
 * **Gotchas**
 *
 * - The response of a retried attempt is dropped without reading its body:
 *   Effect's client aborts its request once it is garbage-collected.
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
import type * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"

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
 * `"failure"` — anything else (a failure response, a transport error, a
 * timeout). Only failures are retried.
 */
type ErrorKind = "answered" | "local" | "failure"
const errorKindWith =
  (classify: (response: HttpClientResponse.HttpClientResponse) => Classification) =>
  (error: unknown): ErrorKind => {
    if (isStatusFailure(error)) return error.counted ? "failure" : "answered"
    if (HttpClientError.isHttpClientError(error)) {
      const reason = error.reason
      if (reason._tag === "TransportError") return "failure"
      if (reason._tag === "StatusCodeError") return classify(reason.response) === "failure" ? "failure" : "answered"
      return "local"
    }
    return "failure"
  }

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
 * What `make` takes besides the parts.
 *
 * @category options
 * @since 0.1.0
 */
export interface ClientOptions<H extends Parts = Parts> {
  /** The key of the breaker's circuit, the limiter and the bulkhead (default {@link hostOf}). */
  readonly key?: ((request: HttpClientRequest.HttpClientRequest) => string) | undefined
  /** Whether a request may be repeated: retried and hedged (default {@link isRetryable}). */
  readonly retryable?: ((request: HttpClientRequest.HttpClientRequest) => boolean) | undefined
  /** What a response means (default: {@link classifyStatus} of its status). */
  readonly classify?: ((response: HttpClientResponse.HttpClientResponse) => Classification) | undefined
  /** Parts of their own for some hosts (by {@link hostOf}), instead of the default ones. */
  readonly hosts?: Readonly<Record<string, H>> | undefined
}

/**
 * The options of `make`: the default parts (any of `attemptTimeout`, `retry`,
 * `circuitBreaker`, `rateLimiter`, `bulkhead`, `hedge`, `totalTimeout`) and
 * the client's options.
 *
 * @category options
 * @since 0.1.0
 */
export type Options<P extends Parts = Parts, H extends Parts = Parts> = P & ClientOptions<H>

/**
 * The errors a resilient client adds for parts `P`: those of the parts
 * present (`Policy.Errors`).
 *
 * @category models
 * @since 0.1.0
 */
export type Errors<P> = Policy.Errors<P>

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
  /** The outer layers (total timeout to bulkhead) for requests that may be repeated. */
  readonly repeatable: Policy.Policy
  /** The outer layers for the others: no retry. */
  readonly once: Policy.Policy
  /** The two innermost layers, applied here (see `inner`): the hedge (repeatable requests only), the attempt timeout. */
  readonly hedge: Policy.HedgePart | undefined
  readonly attemptTimeout: Duration.Input | undefined
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
  const hedge = policies.hedge
  if (repeatable && hedge !== undefined) {
    attempt = isHedgePolicy(hedge)
      ? Hedge.hedge(attempt, hedge)
      : Hedge.hedge(attempt, hedge.policy, { key: hedge.key })
  }
  return attempt
}

/** The parts with the HTTP classification added to the retry, the throttle and the breaker (the caller's own predicates win). */
const httpParts = (input: Parts, errorKind: (error: unknown) => ErrorKind): Policy.Parts => {
  const isPermanent = (error: unknown) => errorKind(error) !== "failure"
  const parts: Record<string, unknown> = {}
  for (const name of partNames) if (input[name] !== undefined) parts[name] = input[name]
  const retry = input.retry
  if (retry !== undefined) {
    parts.retry = isRetryPolicy(retry)
      ? { policy: retry, while: (error: unknown) => !isPermanent(error) }
      : { ...retry, while: retry.while ?? ((error: unknown) => !isPermanent(error)) }
  }
  const throttle = input.adaptiveThrottle
  if (throttle !== undefined) {
    const part = isThrottle(throttle) ? { throttle } : throttle
    const ownAccepted = part.isAccepted
    const ownIgnored = part.isIgnored
    parts.adaptiveThrottle = {
      ...part,
      // as for the breaker: a request that never left counts for nothing, a permanent answer is an accept
      isIgnored: (error: unknown) => errorKind(error) === "local" || ownIgnored?.(error) === true,
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
      // a request that never left says nothing of the host: ignored
      isIgnored: (error: unknown) => errorKind(error) === "local" || ownIgnored?.(error) === true,
      // a permanent answer (a 404, a 400) shows the host at work: a success for the breaker, so it also closes a
      // half-open circuit; failures are failures unless the part says otherwise
      isFailure: (error: unknown) => errorKind(error) === "failure" && (ownFailure === undefined || ownFailure(error)),
      retryAfter: part.retryAfter ?? breakerHint
    }
  }
  return parts as Policy.Parts
}

/** The two policies of a set of parts, or the issues of the parts (their paths prefixed with `prefix`). */
const policiesOf = (
  input: Parts,
  errorKind: (error: unknown) => ErrorKind,
  prefix: string
): Effect.Effect<Result.Result<Policies, ReadonlyArray<Options_.Issue>>> => {
  const parts = httpParts(input, errorKind)
  const { hedge, attemptTimeout, ...outer } = parts
  const { retry: _retry, ...outerOnce } = outer
  return Effect.map(
    Effect.result(
      // the whole combination is validated (a hedge delay against the attempt timeout, say)
      Effect.andThen(Policy.make(parts), Effect.all({ repeatable: Policy.make(outer), once: Policy.make(outerOnce) }))
    ),
    Result.match({
      onSuccess: (policies) => Result.succeed({ ...policies, hedge, attemptTimeout }),
      onFailure: (error) =>
        Result.fail(error.issues.map((issue) => new Options_.Issue({ ...issue, path: `${prefix}${issue.path}` })))
    })
  )
}

/**
 * Wraps an `HttpClient` so that every request goes through the parts, in
 * `Policy`'s order, keyed by its host (see the module's details). Fails with
 * one `Options.InvalidOptions` listing every problem of the parts (of the
 * default parts, then of each host's, as `hosts.<host>.<path>`).
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
 * @category constructors
 * @since 0.1.0
 */
export const make = <E, R, const P extends Parts, const H extends Parts = never>(
  client: HttpClient.HttpClient.With<E, R>,
  options: Options<P, H>
): Effect.Effect<HttpClient.HttpClient.With<E | Errors<P> | Errors<H>, R>, Options_.InvalidOptions> =>
  Effect.gen(function* () {
    const classify = options.classify ?? ((response) => classifyStatus(response.status))
    const errorKind = errorKindWith(classify)
    const keyOf = options.key ?? hostOf
    const retryable = options.retryable ?? isRetryable
    const issues: Array<Options_.Issue> = []
    const defaults = yield* policiesOf(options, errorKind, "")
    if (Result.isFailure(defaults)) issues.push(...defaults.failure)
    const perHost = new Map<string, Policies>()
    for (const [host, parts] of Object.entries(options.hosts ?? {})) {
      const policies = yield* policiesOf(parts as Parts, errorKind, `hosts.${host}.`)
      if (Result.isFailure(policies)) issues.push(...policies.failure)
      else perHost.set(host, policies.success)
    }
    if (Result.isFailure(defaults) || issues.length > 0) {
      return yield* Effect.fail(new Options_.InvalidOptions({ pattern: "ResilientHttpClient", issues }))
    }
    const fallbackPolicies = defaults.success
    return HttpClient.transform(client, (effect, request) => {
      const policies = perHost.size === 0 ? fallbackPolicies : (perHost.get(hostOf(request)) ?? fallbackPolicies)
      const repeatable = retryable(request)
      const policy = repeatable ? policies.repeatable : policies.once
      const attempt = Effect.flatMap(inner(effect, policies, repeatable), (response) => {
        const classification = classify(response)
        if (classification === "success") return Effect.succeed(response)
        const status = response.status
        return Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.fail(
            new StatusFailure({
              response,
              counted: classification === "failure",
              retryAfter:
                status === 429 || status === 503 ? retryAfterOf(response.headers["retry-after"], now) : undefined
            })
          )
        )
      })
      return attempt.pipe(
        Policy.apply(policy, { key: keyOf(request) }),
        Effect.catchIf(isStatusFailure, (failure) => Effect.succeed(failure.response))
      ) as Effect.Effect<HttpClientResponse.HttpClientResponse, E | Errors<P> | Errors<H>, R>
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
