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
