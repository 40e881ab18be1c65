/**
 * The metrics of a local-first store's syncs (the breaker's and the
 * throttle's): failed syncs counted and every sync timed, by instance name,
 * from the catalogue entries in `Telemetry` (`circuitBreakerSync`,
 * `adaptiveThrottleSync`).
 *
 * @internal
 */
import { Telemetry } from "@effect-resilience/core"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"

/** The catalogue entries of one store's sync metrics. */
export interface SyncSpec {
  readonly errors: Telemetry.MetricSpec
  readonly duration: Telemetry.MetricSpec & { readonly boundaries: ReadonlyArray<number> }
}

/** One instance's sync metrics. */
export interface InstanceSyncMetrics {
  /** Records the duration of a sync that started at `start` (the clock's milliseconds). */
  readonly timed: (clock: Clock.Clock, start: number) => Effect.Effect<void>
  /** Counts a failed sync. */
  readonly failed: Effect.Effect<void>
}

/** The two metrics of `spec`, made once; `forName` gives an instance's series. */
export const make = (spec: SyncSpec): ((name: string) => InstanceSyncMetrics) => {
  const errors = Metric.counter(spec.errors.name, {
    description: spec.errors.description,
    incremental: true,
    attributes: { unit: spec.errors.unit }
  })
  const duration = Metric.histogram(spec.duration.name, {
    description: spec.duration.description,
    boundaries: spec.duration.boundaries,
    attributes: { unit: spec.duration.unit }
  })
  return (name) => {
    const named = { [Telemetry.attributes.name]: name }
    const instanceErrors = Metric.withAttributes(errors, named)
    const instanceDuration = Metric.withAttributes(duration, named)
    return {
      timed: (clock, start) =>
        Effect.suspend(() =>
          Metric.update(instanceDuration, Math.max(0, clock.currentTimeMillisUnsafe() - start) / 1000)
        ),
      failed: Metric.update(instanceErrors, 1)
    }
  }
}
