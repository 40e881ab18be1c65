/**
 * Client-side adaptive throttling (the Google SRE book's): reject calls locally, in proportion to how much the backend
 * has lately refused, per key.
 *
 * @since 0.1.0
 */
export * as AdaptiveThrottle from "./AdaptiveThrottle.ts"

/**
 * Alerts: rules defined once in code (a circuit open, a rejection rate, a health status, a saturated bulkhead, any
 * stream or effect), firing when their condition held for `for` and resolving with hysteresis; events, status,
 * metrics and sinks.
 *
 * @since 0.1.0
 */
export * as Alert from "./Alert.ts"

/**
 * Bulkheads: a bound on the calls running at once per key, with a waiting line (priorities, weighted costs, maxWait).
 *
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.ts"

/**
 * Chaos injection: latency, failures, defects and hangs put into calls on purpose, reproducibly under a seed.
 *
 * @since 0.1.0
 */
export * as Chaos from "./Chaos.ts"

/**
 * Circuit breakers: stop calling a failing dependency, let it recover, probe it before letting traffic back.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.ts"

/**
 * Fallbacks: alternatives and defaults on failure, the last good value (stale cache), degraded mode, and request
 * coalescing.
 *
 * @since 0.1.0
 */
export * as Fallback from "./Fallback.ts"

/**
 * Health: checks on a schedule and streams of statuses (a circuit breaker's) folded into one status, with readiness
 * and liveness views, hysteresis, a bounded history, trends and flapping detection.
 *
 * @since 0.1.0
 */
export * as Health from "./Health.ts"

/**
 * Hedged requests: when the first attempt is slow, start another; the first success wins.
 *
 * @since 0.1.0
 */
export * as Hedge from "./Hedge.ts"

/**
 * Client-side load balancing: round robin, random, least requests (power of two choices), peak EWMA and ring hash over
 * a static or discovered set of endpoints, with Envoy's outlier ejection and panic mode.
 *
 * @since 0.1.0
 */
export * as LoadBalancer from "./LoadBalancer.ts"

/**
 * Validation of every pattern's options, with one error listing every bad field.
 *
 * @since 0.1.0
 */
export * as Options from "./Options.ts"

/**
 * Policies: the patterns composed in one well-defined order (fallback, total timeout, retry, circuit breaker, rate
 * limit, bulkhead, hedging, attempt timeout), whatever order their parts are given in.
 *
 * @since 0.1.0
 */
export * as Policy from "./Policy.ts"

/**
 * Rate limiting: every classic algorithm, several limits at once, weighted costs, the numbers the RateLimit headers need.
 *
 * @since 0.1.0
 */
export * as RateLimiter from "./RateLimiter.ts"

/**
 * A registry of named policies defined as data, reloaded live: unchanged policies keep their state, a changed breaker
 * carries its circuits over, retired instances are released once their calls finish.
 *
 * @since 0.1.0
 */
export * as Registry from "./Registry.ts"

/**
 * Resource pools (connections, channels, pages, workers): acquire timeout, idle timeout, max lifetime with jitter,
 * validation on borrow and keepalive, leak detection, background acquisition with backoff, FIFO waiters.
 *
 * @since 0.1.0
 */
export * as ResourcePool from "./ResourcePool.ts"

/**
 * Retry policies: backoff with the AWS jitter modes or any Schedule, kept apart from what to retry; hints, attempt
 * context, retry budgets.
 *
 * @since 0.1.0
 */
export * as Retry from "./Retry.ts"

/**
 * The one catalogue of every metric, span and event name the library emits.
 *
 * @since 0.1.0
 */
export * as Telemetry from "./Telemetry.ts"

/**
 * Timeouts per attempt and in total (a deadline), with a typed TimeoutExceeded; timed-out work is interrupted.
 *
 * @since 0.1.0
 */
export * as Timeout from "./Timeout.ts"
