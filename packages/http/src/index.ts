/**
 * A live dashboard for Effect's HTTP server: one self-contained page (inline CSS and script) showing circuit breakers,
 * rate limiters, bulkheads, health and firing alerts as they change, the same data as versioned JSON, and a bounded
 * Server-Sent Events stream (a snapshot on connect, on every interval and on each transition).
 *
 * @since 0.1.0
 */
export * as Dashboard from "./Dashboard.ts"

/**
 * Health endpoints for Effect's HTTP server: `GET /health`, `/health/ready` and `/health/live` over the `Health`
 * service, with status codes for probes (503 when unhealthy), `Cache-Control: no-store`, compact or full JSON bodies.
 *
 * @since 0.1.0
 */
export * as HealthHttp from "./HealthHttp.ts"

/**
 * Chaos injection for HTTP: a server middleware that delays, aborts (a weighted choice of statuses) or drops
 * requests, and an `HttpClient` wrapper whose requests are delayed, answered by synthetic failure responses or
 * broken by transport errors — both driven by a core `Chaos` instance (rates, switch, keys, events, metrics).
 *
 * @since 0.1.0
 */
export * as HttpChaos from "./HttpChaos.ts"

/**
 * Deadline propagation over HTTP: an `HttpClient` wrapper that sends the time left of the enclosing
 * `Timeout.deadline` in a header (`x-request-timeout-ms` or `grpc-timeout`) and refuses a request with none left,
 * and a server middleware that runs each handler inside the deadline the header asks for (bounded by `maxTimeout`),
 * answering 504 when it runs out.
 *
 * @since 0.1.0
 */
export * as HttpDeadline from "./HttpDeadline.ts"

/**
 * Load shedding for Effect's HTTP server: while event-loop delay, heap, RSS or requests in flight are over their
 * thresholds (sampled on an interval, with hysteresis), requests are answered 503 with `Retry-After` before the
 * handler runs; a hard `maxInFlight` cap; critical requests never shed by pressure, sheddable ones first; health
 * probes excluded.
 *
 * @since 0.1.0
 */
export * as LoadShedding from "./LoadShedding.ts"

/**
 * The IETF `RateLimit-Policy` and `RateLimit` HTTP response fields.
 *
 * @since 0.1.0
 */
export * as RateLimitHeaders from "./RateLimitHeaders.ts"

/**
 * Rate limiting for Effect's HTTP server: each request charged to a `RateLimiter` under a key of the request (client
 * address, API key) at a cost; 429 with `Retry-After` and the IETF `RateLimit` fields when refused, the fields on
 * allowed responses, excluded paths skipped.
 *
 * @since 0.1.0
 */
export * as RateLimitMiddleware from "./RateLimitMiddleware.ts"

/**
 * A resilient `HttpClient`: every request through a `Policy` (attempt timeout, retry, circuit breaker, rate limiter,
 * bulkhead) keyed by its host; 5xx, 408 and 429 retried and counted by the breaker, other 4xx neither; `Retry-After`
 * honoured; only idempotent requests (or those with an `Idempotency-Key`) repeated.
 *
 * @since 0.1.0
 */
export * as ResilientHttpClient from "./ResilientHttpClient.ts"
