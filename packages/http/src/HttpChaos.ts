/**
 * Chaos injection for HTTP, on both sides of a call: a server middleware
 * that delays, aborts or drops requests before the handler (Envoy's fault
 * injection filter, in process), and an `HttpClient` wrapper whose requests
 * are delayed, answered by a synthetic failure response (a 503, a 429 with
 * `Retry-After`) or broken by a transport error — so a `ResilientHttpClient`
 * policy is tested without a real flaky server.
 *
 * Both take a `Chaos` instance of `@effect-resilience/core` and use its
 * rates, `enabled` switch, `keys`, events, metrics and stats: monitoring is
 * in one place, and under `Random.withSeed` and `TestClock` a run is
 * reproducible. The instance's faults mean, over HTTP:
 *
 * | `Chaos` fault | server middleware | client wrapper |
 * |---|---|---|
 * | `latency` | a delay before the handler | a delay before the request is sent |
 * | `failure` | an abort: a response from `responses` (503 by default) | a synthetic response from `responses` (503 by default) |
 * | `defect` | the connection dropped, no answer | a `TransportError` (what a dropped connection looks like) |
 * | `hang` | no answer until the client gives up | no response until interrupted (an attempt timeout) |
 *
 * **Details**
 *
 * - Which requests: the server matches `paths` / `exclude` (the patterns of
 *   `RateLimitMiddleware`), `methods` and a header selector (`headers`, as
 *   Envoy's); the client matches `hosts` (exact, `host:port`, or
 *   `*.suffix`), `methods` and a predicate. Each request is then a call of
 *   the instance under a key (default: the path on the server, the host on
 *   the client), so the instance's `keys` target paths or hosts too.
 * - Several `responses` are picked by `weight` (one more draw from `Random`).
 * - Header control (server, off by default): `x-chaos-abort: 503` and
 *   `x-chaos-delay: 200` (milliseconds, capped by `maxHeaderDelay`) force
 *   those faults on the request, whatever the rates, while the instance is
 *   enabled and the key targeted; they are counted as drawn faults are.
 *
 * **Gotchas**
 *
 * - Header control lets every client that reaches the server inject faults
 *   (a delay holds a connection): turn it on in tests and staging only, or
 *   behind authentication, with a small `maxHeaderDelay`. Envoy warns the
 *   same of its `x-envoy-fault-*` headers.
 * - A drop closes the whole connection (Node: the request's socket; HTTP/2:
 *   its stream): other requests pipelined on it fail too, as they would.
 *   Where the platform exposes no socket (a web handler), a drop becomes a
 *   hang of `dropTimeout`, then the handler is interrupted.
 * - Put the server middleware first (global), so the faults land before
 *   the handler and the other middleware; the client wrapper goes *under*
 *   `ResilientHttpClient` (wrap the client you give it), where a real flaky
 *   network would be.
 *
 * **Example** (Every request answered 503: the upstream is never called)
 *
 * ```ts import.meta.vitest
 * import { Chaos } from "@effect-resilience/core"
 * import { HttpChaos } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { HttpClient, HttpClientResponse } from "effect/http"
 *
 * let calls = 0
 * const upstream = HttpClient.make((request) =>
 *   Effect.sync(() => {
 *     calls++
 *     return HttpClientResponse.fromWeb(request, new Response("ok"))
 *   })
 * )
 *
 * const program = Effect.gen(function* () {
 *   const chaos = yield* Chaos.make({ name: "quotes-api", failureRate: 1 })
 *   const client = upstream.pipe(HttpChaos.client(chaos, { hosts: ["quotes.internal"] }))
 *   const faulted = yield* client.get("http://quotes.internal/eurusd")
 *   const spared = yield* client.get("http://other.internal/")
 *   return [faulted.status, spared.status, calls, (yield* chaos.stats).failure]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [503, 200, 1, 1]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { Chaos, Options as Options_ } from "@effect-resilience/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import type * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import * as Internal from "./internal/chaos.ts"
import { pathOf } from "./internal/url.ts"
import { matchesPath } from "./RateLimitMiddleware.ts"
import { hostOf } from "./ResilientHttpClient.ts"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

/**
 * A response a `failure` fault becomes: an abort on the server, a synthetic
 * response on the client.
 *
 * @category options
 * @since 0.1.0
 */
export interface FaultResponse {
  /** The status: an integer from 200 to 599 (Envoy's range for aborts). */
  readonly status: number
  /** Its weight among `responses` (default 1): a finite number above 0. */
  readonly weight?: number | undefined
  /** The text body (default `fault injected by chaos <name>`; none for 204, 205 and 304). */
  readonly body?: string | undefined
  /** Extra response headers. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Sent as `Retry-After` in whole seconds, rounded up (for a 429 or a 503). */
  readonly retryAfter?: Duration.Input | undefined
}

/**
 * Options of the server middleware. Every field is optional.
 *
 * @category options
 * @since 0.1.0
 */
export interface ServerOptions {
  /** Only these paths get faults (`"/api"` that path, `"/api/*"` every path under `/api/`; default: every path). */
  readonly paths?: ReadonlyArray<string> | undefined
  /** Paths (same patterns) or a predicate of requests that never get faults: health probes, metrics. */
  readonly exclude?: ReadonlyArray<string> | ((request: HttpServerRequest.HttpServerRequest) => boolean) | undefined
  /** Only these methods get faults (default: every method). */
  readonly methods?: ReadonlyArray<string> | undefined
  /**
   * Only requests carrying every one of these headers get faults: with the
   * value given, or present at all for `true` (Envoy's header match).
   */
  readonly headers?: Readonly<Record<string, string | true>> | undefined
  /** The key of a request for the instance (matched against its `keys`; default: the path). */
  readonly key?: ((request: HttpServerRequest.HttpServerRequest) => string) | undefined
  /** The responses an abort picks from by weight (default one: 503). */
  readonly responses?: ReadonlyArray<FaultResponse> | undefined
  /**
   * Whether `x-chaos-abort` and `x-chaos-delay` request headers force those
   * faults (default false; see the module's gotchas before turning it on).
   */
  readonly headerControl?: boolean | undefined
  /** The longest delay a `x-chaos-delay` header may ask for (default 10 seconds); longer ones are capped. */
  readonly maxHeaderDelay?: Duration.Input | undefined
  /**
   * Where the platform exposes no connection to close, how long a dropped
   * request hangs before its handler is interrupted (default 30 seconds).
   */
  readonly dropTimeout?: Duration.Input | undefined
}

/**
 * Options of the client wrapper. Every field is optional.
 *
 * @category options
 * @since 0.1.0
 */
export interface ClientOptions {
  /**
   * Only requests to these hosts get faults: `api.internal` (any port),
   * `api.internal:8443`, or `*.internal` (every subdomain); default: every host.
   */
  readonly hosts?: ReadonlyArray<string> | undefined
  /** Only these methods get faults (default: every method). */
  readonly methods?: ReadonlyArray<string> | undefined
  /** Only requests this predicate accepts get faults. */
  readonly match?: ((request: HttpClientRequest.HttpClientRequest) => boolean) | undefined
  /** The key of a request for the instance (matched against its `keys`; default: its host, `host:port`). */
  readonly key?: ((request: HttpClientRequest.HttpClientRequest) => string) | undefined
  /** The synthetic responses a `failure` picks from by weight (default one: 503). */
  readonly responses?: ReadonlyArray<FaultResponse> | undefined
}

/**
 * The header that forces an abort with its status (`x-chaos-abort: 503`),
 * when `headerControl` is on.
 *
 * @category headers
 * @since 0.1.0
 */
export const abortHeader: string = "x-chaos-abort"

/**
 * The header that forces a delay of its milliseconds (`x-chaos-delay: 200`),
 * when `headerControl` is on.
 *
 * @category headers
 * @since 0.1.0
 */
export const delayHeader: string = "x-chaos-delay"

const defaultMaxHeaderDelay = Duration.seconds(10)
const defaultDropTimeout = Duration.seconds(30)

const issue = (path: string, value: unknown, message: string): Options_.Issue =>
  new Options_.Issue({ path, value: Options_.renderValue(value), message })

/** Whether an input is a duration (`fromInput` turns anything else, whatever its runtime type, into none). */
const isDuration = (value: Duration.Input): boolean => Option.isSome(Duration.fromInput(value))

// the checks read fields as `unknown`: options may come from JavaScript or from parsed configuration

const checkResponses = (responses: ReadonlyArray<FaultResponse> | undefined, issues: Array<Options_.Issue>): void => {
  if (responses === undefined) return
  if (!Array.isArray(responses) || responses.length === 0) {
    issues.push(issue("responses", responses, "Expected a non-empty array of responses"))
    return
  }
  responses.forEach((response: FaultResponse, i) => {
    const at = `responses.${i}`
    if (!Predicate.isObject(response)) {
      issues.push(issue(at, response, "Expected a response ({ status, weight?, body?, headers?, retryAfter? })"))
      return
    }
    const status: unknown = response.status
    if (!Internal.isFaultStatus(status)) {
      issues.push(issue(`${at}.status`, status, "Expected an integer status from 200 to 599"))
    }
    const weight: unknown = response.weight
    if (weight !== undefined && !(typeof weight === "number" && Number.isFinite(weight) && weight > 0)) {
      issues.push(issue(`${at}.weight`, weight, "Expected a finite number greater than 0"))
    }
    const body: unknown = response.body
    if (body !== undefined && typeof body !== "string") issues.push(issue(`${at}.body`, body, "Expected a string"))
    const headers: unknown = response.headers
    if (headers !== undefined) {
      if (!Predicate.isObject(headers) || Array.isArray(headers)) {
        issues.push(issue(`${at}.headers`, headers, "Expected a record of header values"))
      } else {
        for (const [name, value] of Object.entries(headers)) {
          if (typeof value !== "string") issues.push(issue(`${at}.headers.${name}`, value, "Expected a string"))
        }
      }
    }
    if (response.retryAfter !== undefined && !isDuration(response.retryAfter)) {
      issues.push(issue(`${at}.retryAfter`, response.retryAfter, "Expected a duration"))
    }
  })
}

const checkMethods = (methods: unknown, issues: Array<Options_.Issue>): void => {
  if (methods === undefined) return
  if (!Array.isArray(methods)) {
    issues.push(issue("methods", methods, "Expected an array of methods"))
    return
  }
  methods.forEach((method: unknown, i) => {
    // RFC 9110's token: what a method may be
    if (typeof method !== "string" || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) {
      issues.push(issue(`methods.${i}`, method, "Expected an HTTP method such as GET"))
    }
  })
}

const checkPaths = (field: string, paths: unknown, issues: Array<Options_.Issue>): void => {
  if (paths === undefined || typeof paths === "function") return
  if (!Array.isArray(paths)) {
    issues.push(issue(field, paths, "Expected an array of paths"))
    return
  }
  paths.forEach((path: unknown, i) => {
    if (typeof path !== "string" || !path.startsWith("/")) {
      issues.push(issue(`${field}.${i}`, path, 'Expected a path starting with "/" (or "/prefix/*")'))
    }
  })
}

const checkFunction = (field: string, value: unknown, issues: Array<Options_.Issue>): void => {
  if (value !== undefined && typeof value !== "function") issues.push(issue(field, value, "Expected a function"))
}

/**
 * Checks the server options: fails with one `Options.InvalidOptions`
 * (pattern `HttpChaos`) listing every bad field — a path without its `/`, a
 * method that is not one, a header selector value that is neither a string
 * nor `true`, a status outside 200–599, a weight not above 0, a duration
 * that is not one.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { HttpChaos } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     HttpChaos.validateServerOptions({
 *       exclude: ["health"],
 *       responses: [{ status: 503 }, { status: 700, weight: 0 }],
 *       dropTimeout: 0
 *     })
 *   )
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["exclude.0", "responses.1.status", "responses.1.weight", "dropTimeout"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateServerOptions = (
  options: ServerOptions = {}
): Effect.Effect<ServerOptions, Options_.InvalidOptions> => {
  const issues: Array<Options_.Issue> = []
  checkPaths("paths", options.paths, issues)
  checkPaths("exclude", options.exclude, issues)
  checkMethods(options.methods, issues)
  const headers: unknown = options.headers
  if (headers !== undefined) {
    if (!Predicate.isObject(headers) || Array.isArray(headers)) {
      issues.push(issue("headers", headers, "Expected a record of header names to values (or true)"))
    } else {
      for (const [name, value] of Object.entries(headers)) {
        if (typeof value !== "string" && value !== true) {
          issues.push(issue(`headers.${name}`, value, "Expected a header value, or true for presence"))
        }
      }
    }
  }
  checkFunction("key", options.key, issues)
  checkResponses(options.responses, issues)
  const headerControl: unknown = options.headerControl
  if (headerControl !== undefined && typeof headerControl !== "boolean") {
    issues.push(issue("headerControl", headerControl, "Expected a boolean"))
  }
  if (options.maxHeaderDelay !== undefined && !isDuration(options.maxHeaderDelay)) {
    issues.push(issue("maxHeaderDelay", options.maxHeaderDelay, "Expected a duration"))
  }
  const dropTimeout = options.dropTimeout
  if (dropTimeout !== undefined) {
    if (!isDuration(dropTimeout)) issues.push(issue("dropTimeout", dropTimeout, "Expected a duration"))
    else if (Option.exists(Duration.fromInput(dropTimeout), (d) => Duration.toMillis(d) <= 0)) {
      issues.push(issue("dropTimeout", dropTimeout, "Expected a duration greater than zero"))
    }
  }
  return issues.length > 0
    ? Effect.fail(new Options_.InvalidOptions({ pattern: "HttpChaos", issues }))
    : Effect.succeed(options)
}

/**
 * Checks the client options: fails with one `Options.InvalidOptions`
 * (pattern `HttpChaos`) listing every bad field — an empty host or one with
 * a scheme or a path, a method that is not one, a status outside 200–599, a
 * weight not above 0, a `retryAfter` that is not a duration.
 *
 * **Example** (A URL where a host was expected, and a bad status)
 *
 * ```ts import.meta.vitest
 * import { HttpChaos } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const options: HttpChaos.ClientOptions = {
 *   hosts: ["https://api.internal"],
 *   responses: [{ status: 429, retryAfter: "2 seconds" }, { status: 99 }]
 * }
 * const error = await Effect.runPromise(Effect.flip(HttpChaos.validateClientOptions(options)))
 * error.issues.map((issue) => issue.path)
 * // => ["hosts.0", "responses.1.status"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateClientOptions = (
  options: ClientOptions = {}
): Effect.Effect<ClientOptions, Options_.InvalidOptions> => {
  const issues: Array<Options_.Issue> = []
  const hosts: unknown = options.hosts
  if (hosts !== undefined) {
    if (!Array.isArray(hosts)) issues.push(issue("hosts", hosts, "Expected an array of hosts"))
    else {
      hosts.forEach((host: unknown, i) => {
        if (typeof host !== "string" || host === "" || /[/\s]/.test(host) || host === "*.") {
          issues.push(
            issue(`hosts.${i}`, host, 'Expected a host ("api.internal", "api.internal:8443" or "*.internal")')
          )
        }
      })
    }
  }
  checkMethods(options.methods, issues)
  checkFunction("match", options.match, issues)
  checkFunction("key", options.key, issues)
  checkResponses(options.responses, issues)
  return issues.length > 0
    ? Effect.fail(new Options_.InvalidOptions({ pattern: "HttpChaos", issues }))
    : Effect.succeed(options)
}

// ---------------------------------------------------------------------------
// responses
// ---------------------------------------------------------------------------

/** A fault response resolved once: its weight, status, body and headers (`Retry-After` included). */
interface Resolved {
  readonly status: number
  readonly weight: number
  readonly body: string | undefined
  readonly headers: Readonly<Record<string, string>>
}

const resolveResponses = (responses: ReadonlyArray<FaultResponse> | undefined): ReadonlyArray<Resolved> =>
  (responses === undefined || responses.length === 0 ? [{ status: 503 }] : responses).map((response) => {
    const headers: Record<string, string> = { ...response.headers }
    const retryAfter = response.retryAfter === undefined ? Option.none() : Duration.fromInput(response.retryAfter)
    if (Option.isSome(retryAfter))
      headers["retry-after"] = Internal.retryAfterSeconds(Duration.toMillis(retryAfter.value))
    return { status: response.status, weight: response.weight ?? 1, body: response.body, headers }
  })

/** Statuses whose responses have no body. */
const bodiless = (status: number): boolean => status === 204 || status === 205 || status === 304

const bodyOf = (response: Resolved, chaos: Chaos.Chaos): string | null =>
  bodiless(response.status) ? null : (response.body ?? `fault injected by chaos ${chaos.name}`)

/** Picks one response by weight: no draw when there is one. */
const pick = (responses: ReadonlyArray<Resolved>): Effect.Effect<Resolved> => {
  const only = responses[0]
  if (responses.length === 1 && only !== undefined) return Effect.succeed(only)
  const weights = responses.map((r) => r.weight)
  return Effect.map(Random.next, (r) => responses[Internal.pickWeighted(weights, r)] ?? responses[0] ?? fallback)
}

const fallback: Resolved = { status: 503, weight: 1, body: undefined, headers: {} }

// ---------------------------------------------------------------------------
// the verdict of the instance
// ---------------------------------------------------------------------------

/** What the instance made of a request: go on (perhaps after a delay), abort, or drop. A hang never ends. */
type Verdict = "proceed" | "abort" | "drop"

const proceed: Effect.Effect<Verdict> = Effect.succeed("proceed")
const abort: Effect.Effect<Verdict> = Effect.succeed("abort")
const drop: Effect.Effect<Verdict> = Effect.succeed("drop")

/**
 * The instance's decision for a call, as a verdict: its delay and hang run
 * inside; a `ChaosError` is an abort, a `ChaosDefect` a drop; any other
 * defect, and interruption, propagate.
 */
const verdictOf = <E>(decision: Effect.Effect<Verdict, E>): Effect.Effect<Verdict> =>
  decision.pipe(
    Effect.catch(() => abort),
    Effect.catchDefect((defect) => (defect instanceof Chaos.ChaosDefect ? drop : Effect.die(defect)))
  )

// ---------------------------------------------------------------------------
// the server middleware
// ---------------------------------------------------------------------------

/**
 * Closes the connection a server request came on, when the platform exposes
 * it (Node: `IncomingMessage.socket`; for HTTP/2 its proxy destroys the
 * stream only). Whether it could.
 */
const closeConnection = (source: object): boolean => {
  const socket = Predicate.hasProperty(source, "socket") ? source.socket : undefined
  if (Predicate.hasProperty(socket, "destroy") && Predicate.isFunction(socket.destroy)) {
    socket.destroy()
    return true
  }
  return false
}

const durationOr = (input: Duration.Input | undefined, fallback: Duration.Duration): Duration.Duration =>
  input === undefined ? fallback : Option.getOrElse(Duration.fromInput(input), () => fallback)

/**
 * The middleware over a chaos instance: a function from an HTTP app (an
 * effect answering the current request) to the app with faults before it.
 * Use it with `HttpRouter.middleware` (global or per route),
 * `HttpServer.serve`, or by hand. The options are taken as given: check them
 * first with {@link validateServerOptions} (`layer` does).
 *
 * **Example** (One request in ten answered 503 or 429, under `/api/` only)
 *
 * ```ts
 * import { Chaos } from "@effect-resilience/core"
 * import { HttpChaos } from "@effect-resilience/http"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 *
 * const withChaos = (chaos: Chaos.Chaos) =>
 *   HttpRouter.add("GET", "/api/quotes", Effect.succeed(HttpServerResponse.text("quotes"))).pipe(
 *     Layer.provide(
 *       HttpRouter.middleware(
 *         HttpChaos.middleware(chaos, {
 *           paths: ["/api/*"],
 *           responses: [{ status: 503, weight: 3 }, { status: 429, retryAfter: "2 seconds" }]
 *         })
 *       ).layer
 *     )
 *   )
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const middleware = (
  chaos: Chaos.Chaos,
  options: ServerOptions = {}
): (<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>) => {
  const paths = options.paths !== undefined && options.paths.length > 0 ? options.paths : undefined
  const exclude = options.exclude
  const methods = options.methods === undefined ? undefined : new Set(options.methods.map((m) => m.toUpperCase()))
  const headerSelector = Object.entries(options.headers ?? {}).map(
    ([name, value]) => [name.toLowerCase(), value] as const
  )
  const keyOf = options.key ?? ((request: HttpServerRequest.HttpServerRequest) => pathOf(request.url))
  const responses = resolveResponses(options.responses)
  const headerControl = options.headerControl === true
  const maxHeaderDelay = Duration.toMillis(durationOr(options.maxHeaderDelay, defaultMaxHeaderDelay))
  const dropTimeout = durationOr(options.dropTimeout, defaultDropTimeout)

  const matches = (request: HttpServerRequest.HttpServerRequest): boolean => {
    if (paths !== undefined && !matchesPath(request.url, paths)) return false
    if (exclude !== undefined) {
      if (typeof exclude === "function" ? exclude(request) : matchesPath(request.url, exclude)) return false
    }
    if (methods !== undefined && !methods.has(request.method.toUpperCase())) return false
    return headerSelector.length === 0 || Internal.matchesHeaders(request.headers, headerSelector)
  }

  const answer = (response: Resolved, status: number) =>
    HttpServerResponse.text(bodyOf({ ...response, status }, chaos) ?? "", { status, headers: response.headers })

  const dropped = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.suspend(() => {
      closeConnection(request.source)
      // on Node the closed connection interrupts the handler at once; elsewhere it hangs, then is interrupted
      return Effect.interruptible(Effect.andThen(Effect.sleep(dropTimeout), Effect.interrupt))
    })

  return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      if (!matches(request)) return app
      const key = keyOf(request)
      let forcedStatus: number | undefined
      let decision: Effect.Effect<Verdict, Chaos.ChaosError>
      if (headerControl) {
        forcedStatus = Internal.parseAbortHeader(request.headers[abortHeader])
        const delay = Internal.parseDelayHeader(request.headers[delayHeader], maxHeaderDelay)
        decision =
          forcedStatus === undefined && delay === undefined
            ? chaos.inject(proceed, { key })
            : chaos.force(
                proceed,
                {
                  delay: delay === undefined ? undefined : Duration.millis(delay),
                  fault: forcedStatus === undefined ? undefined : "failure"
                },
                { key }
              )
      } else {
        decision = chaos.inject(proceed, { key })
      }
      // a global middleware runs where the server made the request uninterruptible (only route handlers are
      // not): the delay and the hang must end when the client leaves or the server stops
      return Effect.flatMap(
        Effect.interruptible(verdictOf(decision)),
        (verdict): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> => {
          if (verdict === "proceed") return app
          if (verdict === "drop") return dropped(request)
          if (forcedStatus !== undefined) return Effect.succeed(answer(fallback, forcedStatus))
          return Effect.map(pick(responses), (response) => answer(response, response.status))
        }
      )
    })
}

/**
 * A global router middleware over the `Chaos` service: every request the
 * `HttpRouter` answers, unmatched ones included, may get faults (see
 * {@link middleware}). Fails with `Options.InvalidOptions` for bad options
 * (see {@link validateServerOptions}).
 *
 * **Example** (Faults from the environment, probes spared)
 *
 * ```ts
 * import { Chaos } from "@effect-resilience/core"
 * import { HttpChaos } from "@effect-resilience/http"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 *
 * // chaos_enabled=true chaos_failureRate=0.05 chaos_latencyRate=0.1 chaos_latencyMin="200 millis"
 * const App = Layer.mergeAll(
 *   HttpRouter.add("GET", "/quotes", Effect.succeed(HttpServerResponse.text("quotes"))),
 *   HttpChaos.layer({ exclude: ["/health", "/health/*"] })
 * ).pipe(Layer.provide(Chaos.layerConfig("chaos")))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: ServerOptions = {}
): Layer.Layer<never, Options_.InvalidOptions, HttpRouter.HttpRouter | Chaos.Chaos> =>
  HttpRouter.middleware(
    Effect.flatMap(validateServerOptions(options), (valid) =>
      Effect.map(Chaos.Chaos, (chaos) => middleware(chaos, valid))
    ),
    { global: true }
  )

// ---------------------------------------------------------------------------
// the client wrapper
// ---------------------------------------------------------------------------

/**
 * Wraps an `HttpClient` so that its requests go through a chaos instance:
 * delayed before they are sent, answered by a synthetic response
 * (`failure`), failed with a `TransportError` (`defect`), or never answered
 * (`hang`) — the request is not sent in those three cases. Adds only
 * `HttpClientError` to the error channel. The options are taken as given:
 * check them first with {@link validateClientOptions} (`layerClient` does).
 *
 * **Example** (A 429 with `Retry-After` from one host)
 *
 * ```ts import.meta.vitest
 * import { Chaos } from "@effect-resilience/core"
 * import { HttpChaos } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { HttpClient, HttpClientResponse } from "effect/http"
 *
 * const upstream = HttpClient.make((request) => Effect.sync(() => HttpClientResponse.fromWeb(request, new Response("ok"))))
 *
 * const program = Effect.gen(function* () {
 *   const chaos = yield* Chaos.make({ failureRate: 1 })
 *   const client = HttpChaos.client(upstream, chaos, { responses: [{ status: 429, retryAfter: "1500 millis" }] })
 *   const response = yield* client.get("https://api.example.com/orders")
 *   return [response.status, response.headers["retry-after"]]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [429, "2"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const client: {
  /**
   * Wraps a client (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  (
    chaos: Chaos.Chaos,
    options?: ClientOptions | undefined
  ): <E, R>(
    self: HttpClient.HttpClient.With<E, R>
  ) => HttpClient.HttpClient.With<E | HttpClientError.HttpClientError, R>
  /**
   * Wraps a client (data-first).
   *
   * @since 0.1.0
   */
  <E, R>(
    self: HttpClient.HttpClient.With<E, R>,
    chaos: Chaos.Chaos,
    options?: ClientOptions | undefined
  ): HttpClient.HttpClient.With<E | HttpClientError.HttpClientError, R>
} = dual(
  (args) => HttpClient.isHttpClient(args[0]),
  <E, R>(
    self: HttpClient.HttpClient.With<E, R>,
    chaos: Chaos.Chaos,
    options: ClientOptions = {}
  ): HttpClient.HttpClient.With<E | HttpClientError.HttpClientError, R> => {
    const hosts = options.hosts !== undefined && options.hosts.length > 0 ? options.hosts : undefined
    const methods = options.methods === undefined ? undefined : new Set(options.methods.map((m) => m.toUpperCase()))
    const predicate = options.match
    const keyOf = options.key ?? hostOf
    const responses = resolveResponses(options.responses)

    const matches = (request: HttpClientRequest.HttpClientRequest): boolean =>
      (hosts === undefined || Internal.matchesHost(hostOf(request), hosts)) &&
      (methods === undefined || methods.has(request.method.toUpperCase())) &&
      (predicate === undefined || predicate(request))

    const synthetic = (request: HttpClientRequest.HttpClientRequest, response: Resolved) =>
      HttpClientResponse.fromWeb(
        request,
        new Response(bodyOf(response, chaos), {
          status: response.status,
          headers: { "content-type": "text/plain; charset=utf-8", ...response.headers }
        })
      )

    const transportError = (request: HttpClientRequest.HttpClientRequest) =>
      new HttpClientError.HttpClientError({
        reason: new HttpClientError.TransportError({
          request,
          description: `connection dropped (a fault injected by chaos ${chaos.name})`
        })
      })

    return HttpClient.transform(self, (effect, request) => {
      if (!matches(request)) return effect
      return Effect.flatMap(
        verdictOf(chaos.inject(proceed, { key: keyOf(request) })),
        (verdict): Effect.Effect<HttpClientResponse.HttpClientResponse, E | HttpClientError.HttpClientError, R> =>
          verdict === "proceed"
            ? effect
            : verdict === "drop"
              ? Effect.fail(transportError(request))
              : Effect.map(pick(responses), (response) => synthetic(request, response))
      )
    })
  }
)

/**
 * Wraps the `HttpClient` service with the `Chaos` service's faults (see
 * {@link client}): provide it over the real client, under anything built on
 * the `HttpClient` (a `ResilientHttpClient.layer`). Fails with
 * `Options.InvalidOptions` for bad options (see
 * {@link validateClientOptions}).
 *
 * **Example** (Fetch underneath, faults on one host)
 *
 * ```ts
 * import { Chaos } from "@effect-resilience/core"
 * import { HttpChaos } from "@effect-resilience/http"
 * import { Layer } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const FlakyClient = HttpChaos.layerClient({ hosts: ["payments.internal"] }).pipe(
 *   Layer.provide([FetchHttpClient.layer, Chaos.layer({ failureRate: 0.2, latencyRate: 0.5, latencyMin: "300 millis" })])
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerClient = (
  options: ClientOptions = {}
): Layer.Layer<HttpClient.HttpClient, Options_.InvalidOptions, HttpClient.HttpClient | Chaos.Chaos> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function* () {
      const valid = yield* validateClientOptions(options)
      const chaos = yield* Chaos.Chaos
      const underlying = yield* HttpClient.HttpClient
      return client(underlying, chaos, valid)
    })
  )
