/**
 * Rate limiting for Effect's HTTP server: every request is charged to a
 * `RateLimiter` of `@effect-resilience/core` under a key computed from the
 * request (by default the client's address) at a cost computed from it (by
 * default 1). A refused request is answered `429 Too Many Requests` with
 * `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` fields; an
 * allowed one goes through and its response carries the `RateLimit` fields.
 *
 * **Details**
 *
 * - Headers come from `RateLimitHeaders.fromDecision`: one item per limit of
 *   the limiter, `Retry-After` in whole seconds, rounded up.
 * - On an allowed request the fields are added just before the response is
 *   sent (a pre-response handler), so they reach error responses rendered by
 *   the server too.
 * - Store failures follow the limiter's `onStoreError`: `allow` (the default)
 *   lets the request through without `RateLimit` fields; `fail` answers
 *   `503 Service Unavailable`.
 * - Keys on the limiter's `deny` list are answered 429 without `Retry-After`;
 *   keys on its `allow` list pass without fields.
 * - `exclude` skips paths (health probes, metrics): they are neither charged
 *   nor answered 429.
 *
 * **Gotchas**
 *
 * - Behind a proxy every request comes from the proxy's address: put
 *   Effect's `HttpMiddleware.xForwardedHeaders` (trusted proxies only) before
 *   this middleware, or key by an API key (`keyByHeader`).
 * - A limiter with a `concurrency` limit (or in `shape` mode) holds each
 *   request through `limit`: the permits are taken at admission and given
 *   back when the response is ready (or the request is interrupted), and a
 *   request in shape mode waits its turn. Allowed responses then carry no
 *   `RateLimit` fields (a refusal still does: they are read with `check`).
 *   Other limiters charge at admission (`consume`) and add the fields.
 * - A cost function returning a negative or infinite number is a defect
 *   (the limiter dies on it): the server answers 500.
 *
 * **Example** (100 requests a minute per client, probes excluded)
 *
 * ```ts
 * import { HealthHttp, RateLimitMiddleware } from "@effect-resilience/http"
 * import { Health, RateLimiter } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 *
 * const Limiter = RateLimiter.layerMemory({
 *   name: "api",
 *   limits: [{ algorithm: "sliding-window", limit: 100, window: "1 minute", name: "per-minute" }]
 * })
 *
 * const App = Layer.mergeAll(
 *   HttpRouter.add("GET", "/quotes", Effect.succeed(HttpServerResponse.text("quotes"))),
 *   HealthHttp.layer(),
 *   RateLimitMiddleware.layer({ exclude: ["/health/*", "/health"] })
 * ).pipe(Layer.provide([Limiter, Health.layer()]))
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { Options as Options_, RateLimiter } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as HttpEffect from "effect/http/HttpEffect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { pathOf } from "./internal/url.ts"
import * as RateLimitHeaders from "./RateLimitHeaders.ts"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

/**
 * Options of the middleware. Every field is optional.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The key a request is charged to (default {@link clientAddress}). */
  readonly key?: ((request: HttpServerRequest.HttpServerRequest) => string) | undefined
  /** What a request costs (default 1); a finite number >= 0 (0 only peeks). */
  readonly cost?: ((request: HttpServerRequest.HttpServerRequest) => number) | undefined
  /**
   * Requests that skip the limiter: a list of paths (`"/health"` matches that
   * path only, `"/health/*"` every path under `/health/`), or a predicate.
   */
  readonly exclude?: ReadonlyArray<string> | ((request: HttpServerRequest.HttpServerRequest) => boolean) | undefined
  /** Whether allowed responses carry the `RateLimit` fields (default true). */
  readonly headers?: boolean | undefined
  /** The quota unit advertised in `RateLimit-Policy` (`qu`; default left out, meaning `request`). */
  readonly quotaUnit?: "request" | "content-bytes" | undefined
  /**
   * The response to a refused request (default 429, text `Too Many
   * Requests`); the `Retry-After` and `RateLimit` fields are set on it.
   */
  readonly onRejected?:
    | ((
        decision: RateLimiter.Decision,
        request: HttpServerRequest.HttpServerRequest
      ) => HttpServerResponse.HttpServerResponse)
    | undefined
}

/**
 * Checks the options that are data (the functions are taken as given):
 * fails with `Options.InvalidOptions` listing every bad field: an `exclude`
 * path not starting with `/` (it would never match, and the probes it was
 * meant for would be limited), or an unknown `quotaUnit`.
 *
 * **Example** (A path without its slash)
 *
 * ```ts import.meta.vitest
 * import { RateLimitMiddleware } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const options = { exclude: ["/metrics", "health"] }
 * const error = await Effect.runPromise(Effect.flip(RateLimitMiddleware.validateOptions(options)))
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["exclude.1 = \"health\""]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (options: Options = {}): Effect.Effect<Options, Options_.InvalidOptions> => {
  const issues: Array<Options_.Issue> = []
  const exclude = options.exclude
  if (exclude !== undefined && typeof exclude !== "function") {
    exclude.forEach((pattern, i) => {
      if (typeof pattern === "string" && pattern.startsWith("/")) return
      issues.push(
        new Options_.Issue({
          path: `exclude.${i}`,
          value: Options_.renderValue(pattern),
          message: 'Expected a path starting with "/" (or "/prefix/*")'
        })
      )
    })
  }
  const unit = options.quotaUnit
  if (unit !== undefined && unit !== "request" && unit !== "content-bytes") {
    issues.push(
      new Options_.Issue({
        path: "quotaUnit",
        value: Options_.renderValue(unit),
        message: 'Expected "request" or "content-bytes"'
      })
    )
  }
  return issues.length > 0
    ? Effect.fail(new Options_.InvalidOptions({ pattern: "RateLimitMiddleware", issues }))
    : Effect.succeed(options)
}

// ---------------------------------------------------------------------------
// keys and paths
// ---------------------------------------------------------------------------

/**
 * The default key: the client's address (`request.remoteAddress`; behind
 * trusted proxies, the address `HttpMiddleware.xForwardedHeaders` put
 * there), or `"unknown"` when the platform gives none.
 *
 * @category keys
 * @since 0.1.0
 */
export const clientAddress = (request: HttpServerRequest.HttpServerRequest): string =>
  Option.getOrElse(request.remoteAddress, () => "unknown")

/**
 * A key function reading a request header (an API key, a tenant id): the
 * key is `<header>:<value>`, and requests without the header are keyed by
 * their address as `address:<address>`, so a client cannot spend another
 * client's quota by sending its address as the header.
 *
 * **Example** (Keys by API key)
 *
 * ```ts import.meta.vitest
 * import { RateLimitMiddleware } from "@effect-resilience/http"
 * import { HttpServerRequest } from "effect/http"
 *
 * const key = RateLimitMiddleware.keyByHeader("X-Api-Key")
 * const request = HttpServerRequest.fromWeb(new Request("http://localhost/", { headers: { "x-api-key": "k-1" } }))
 * key(request)
 * // => "x-api-key:k-1"
 * ```
 *
 * @category keys
 * @since 0.1.0
 */
export const keyByHeader = (header: string): ((request: HttpServerRequest.HttpServerRequest) => string) => {
  const name = header.toLowerCase()
  return (request) => {
    const value = request.headers[name]
    return value === undefined || value === "" ? `address:${clientAddress(request)}` : `${name}:${value}`
  }
}

/**
 * Whether a path matches one of `patterns`: an exact path, or `prefix/*`
 * for every path under `prefix/`.
 *
 * **Example** (Exact paths and prefixes)
 *
 * ```ts import.meta.vitest
 * import { RateLimitMiddleware } from "@effect-resilience/http"
 *
 * const patterns = ["/health", "/health/*"]
 * const paths = ["/health", "/health/ready?verbose", "/healthy", "/api"]
 * paths.map((path) => RateLimitMiddleware.matchesPath(path, patterns))
 * // => [true, true, false, false]
 * ```
 *
 * @category paths
 * @since 0.1.0
 */
export const matchesPath = (path: string, patterns: ReadonlyArray<string>): boolean => {
  const p = pathOf(path)
  for (const pattern of patterns) {
    if (pattern.endsWith("/*") ? p.startsWith(pattern.slice(0, -1)) : p === pattern) return true
  }
  return false
}

const excluder = (
  exclude: Options["exclude"]
): ((request: HttpServerRequest.HttpServerRequest) => boolean) | undefined => {
  if (exclude === undefined) return undefined
  if (typeof exclude === "function") return exclude
  if (exclude.length === 0) return undefined
  return (request) => matchesPath(request.url, exclude)
}

// ---------------------------------------------------------------------------
// responses
// ---------------------------------------------------------------------------

/** A decision taken while the limiter's remote store failed, under `onStoreError: "fail"`. */
const isStoreFailure = (decision: RateLimiter.Decision): boolean => decision.storeError

/**
 * The default answer to a refused request: `429 Too Many Requests`.
 *
 * @category responses
 * @since 0.1.0
 */
export const tooManyRequests = (): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text("Too Many Requests", { status: 429 })

/** A refusal as `limit` saw it, over the fields of a later `check` that found the key free again. */
const refusedAs = (decision: RateLimiter.Decision, exceeded: RateLimiter.RateLimitExceeded): RateLimiter.Decision => ({
  allowed: false,
  policy: exceeded.policy,
  limit: exceeded.limit,
  remaining: exceeded.remaining,
  reset: decision.reset,
  retryAfter: exceeded.retryAfter,
  storeError: false,
  policies: decision.policies.map(
    (p): RateLimiter.PolicyDecision =>
      p.policy === exceeded.policy
        ? {
            policy: p.policy,
            allowed: false,
            limit: exceeded.limit,
            remaining: exceeded.remaining,
            reset: p.reset,
            retryAfter: exceeded.retryAfter,
            windowSeconds: p.windowSeconds
          }
        : p
  )
})

const storeUnavailable = (): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text("Service Unavailable", { status: 503 })

// ---------------------------------------------------------------------------
// the middleware
// ---------------------------------------------------------------------------

/**
 * The middleware over a limiter: a function from an HTTP app (an effect
 * answering the current request) to the limited app. Use it with
 * `HttpRouter.middleware` (global or per route), `HttpServer.serve`, or by
 * hand. The options are taken as given: check them first with
 * {@link validateOptions} (`layer` does).
 *
 * **Example** (On some routes only)
 *
 * ```ts
 * import { RateLimitMiddleware } from "@effect-resilience/http"
 * import type { RateLimiter } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 *
 * const searchRoutes = (limiter: RateLimiter.RateLimiter) =>
 *   HttpRouter.add("GET", "/search", Effect.succeed(HttpServerResponse.text("results"))).pipe(
 *     Layer.provide(
 *       HttpRouter.middleware(
 *         RateLimitMiddleware.make(limiter, { key: RateLimitMiddleware.keyByHeader("x-api-key") })
 *       ).layer
 *     )
 *   )
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  limiter: RateLimiter.RateLimiter,
  options: Options = {}
): (<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>) => {
  const keyOf = options.key ?? clientAddress
  const costOf = options.cost
  const skip = excluder(options.exclude)
  const withHeaders = options.headers ?? true
  const headerOptions: RateLimitHeaders.DecisionOptions = { quotaUnit: options.quotaUnit }
  const rejected = options.onRejected ?? tooManyRequests
  const refusal = (decision: RateLimiter.Decision, request: HttpServerRequest.HttpServerRequest) =>
    isStoreFailure(decision)
      ? storeUnavailable()
      : HttpServerResponse.setHeaders(
          rejected(decision, request),
          RateLimitHeaders.fromDecision(decision, headerOptions)
        )
  if (limiter.holdsCalls) {
    return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        if (skip?.(request)) return app
        const key = keyOf(request)
        const cost = costOf === undefined ? 1 : costOf(request)
        const refusedWith = (exceeded: RateLimiter.RateLimitExceeded) =>
          Effect.map(limiter.check(key, cost), (decision) =>
            // the refusal's own numbers win if the key freed up in between
            refusal(decision.allowed ? refusedAs(decision, exceeded) : decision, request)
          )
        // the app's own failures travel inside the Exit, so the only failure `limit` adds is the limiter's refusal
        return Effect.matchEffect(limiter.limit(Effect.exit(app), { key, cost }), {
          onSuccess: (exit) => exit,
          onFailure: (error) =>
            error.reason._tag === "RateLimiterStoreError"
              ? Effect.succeed(storeUnavailable())
              : refusedWith(error.reason)
        })
      })
  }
  return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      if (skip?.(request)) return app
      return Effect.flatMap(
        costOf === undefined ? limiter.consume(keyOf(request)) : limiter.consume(keyOf(request), costOf(request)),
        (
          decision
        ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> => {
          if (decision.allowed) {
            if (!withHeaders || decision.policies.length === 0) return app
            const headers = RateLimitHeaders.fromDecision(decision, headerOptions)
            return HttpEffect.withPreResponseHandler(app, (_, response) =>
              Effect.succeed(HttpServerResponse.setHeaders(response, headers))
            )
          }
          return Effect.succeed(refusal(decision, request))
        }
      )
    })
}

/**
 * A global router middleware over the `RateLimiter` service: every request
 * the `HttpRouter` answers, unmatched ones included, goes through the
 * limiter unless `exclude`d. Fails with `Options.InvalidOptions` for bad
 * options (see {@link validateOptions}).
 *
 * **Example** (Keyed by API key, probes excluded)
 *
 * ```ts
 * import { RateLimitMiddleware } from "@effect-resilience/http"
 * import type { Options, RateLimiter } from "@effect-resilience/core"
 * import type { Layer } from "effect"
 * import type { HttpRouter } from "effect/http"
 *
 * const Limiting: Layer.Layer<never, Options.InvalidOptions, HttpRouter.HttpRouter | RateLimiter.RateLimiter> =
 *   RateLimitMiddleware.layer({
 *     key: RateLimitMiddleware.keyByHeader("x-api-key"),
 *     exclude: ["/health", "/health/*"]
 *   })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<never, Options_.InvalidOptions, HttpRouter.HttpRouter | RateLimiter.RateLimiter> =>
  HttpRouter.middleware(
    Effect.flatMap(validateOptions(options), (valid) =>
      Effect.map(RateLimiter.RateLimiter, (limiter) => make(limiter, valid))
    ),
    { global: true }
  )
