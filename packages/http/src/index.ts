/**
 * The IETF `RateLimit-Policy` and `RateLimit` HTTP response fields.
 *
 * @since 0.1.0
 */
export * as RateLimitHeaders from "./RateLimitHeaders.ts"
