/**
 * A scoped ioredis client — standalone or Redis Cluster — as an Effect service.
 *
 * @since 0.1.0
 */
export * as IoRedis from "./IoRedis.ts"

/**
 * A local-first adaptive throttle store on Redis or Redis Cluster: throttles in many processes decide on the fleet's counts.
 *
 * @since 0.1.0
 */
export * as RedisAdaptiveThrottle from "./RedisAdaptiveThrottle.ts"

/**
 * A bulkhead store on Redis or Redis Cluster: bulkheads in many processes share their permits, as leases.
 *
 * @since 0.1.0
 */
export * as RedisBulkhead from "./RedisBulkhead.ts"

/**
 * A circuit breaker store on Redis or Redis Cluster: breakers in many processes share their circuits.
 *
 * @since 0.1.0
 */
export * as RedisCircuitBreaker from "./RedisCircuitBreaker.ts"

/**
 * A rate limiter store on Redis or Redis Cluster: limiters in many processes share their quotas.
 *
 * @since 0.1.0
 */
export * as RedisRateLimiter from "./RedisRateLimiter.ts"
