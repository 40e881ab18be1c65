/**
 * The one catalogue of every metric, span and event name the library emits.
 *
 * @since 0.1.0
 */
export * as Telemetry from "./Telemetry.ts"
