/**
 * OpenTelemetry wiring for effect-resilience.
 *
 * @since 0.1.0
 */
export * as ResilienceOtel from "./ResilienceOtel.ts"
