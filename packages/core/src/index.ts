/**
 * Circuit breakers: stop calling a failing dependency, let it recover, probe it before letting traffic back.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.ts"

/**
 * Validation of every pattern's options, with one error listing every bad field.
 *
 * @since 0.1.0
 */
export * as Options from "./Options.ts"

/**
 * The one catalogue of every metric, span and event name the library emits.
 *
 * @since 0.1.0
 */
export * as Telemetry from "./Telemetry.ts"
