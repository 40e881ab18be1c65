/**
 * Health endpoints for Effect's HTTP server: `GET /health`, `/health/ready` and `/health/live` over the `Health`
 * service, with status codes for probes (503 when unhealthy), `Cache-Control: no-store`, compact or full JSON bodies.
 *
 * @since 0.1.0
 */
export * as HealthHttp from "./HealthHttp.ts"

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
