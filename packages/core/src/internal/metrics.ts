/**
 * Metrics read from plain counters when they are exported.
 *
 * A pattern on the hot path must not run an effect per call to update a
 * metric. Patterns count in plain numbers and register, once, a series per
 * attribute set whose value Effect's `MetricRegistry` reads (`registerUnsafe`)
 * whenever metrics are snapshotted or exported.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import * as Telemetry from "../Telemetry.ts"

/** A duration histogram accumulated in plain numbers, in seconds. */
export interface Histogram {
  readonly buckets: Float64Array
  count: number
  sum: number
  min: number
  max: number
}

/** An empty histogram over `Telemetry.durationBoundariesSeconds`. */
export const makeHistogram = (): Histogram => ({
  buckets: new Float64Array(Telemetry.durationBoundariesSeconds.length),
  count: 0,
  sum: 0,
  min: Number.POSITIVE_INFINITY,
  max: Number.NEGATIVE_INFINITY
})

/** Adds one observation, in seconds. */
export const observe = (h: Histogram, seconds: number): void => {
  h.count++
  h.sum += seconds
  if (seconds < h.min) h.min = seconds
  if (seconds > h.max) h.max = seconds
  const boundaries = Telemetry.durationBoundariesSeconds
  for (let i = 0; i < boundaries.length; i++) {
    if (seconds <= (boundaries[i] ?? 0)) {
      h.buckets[i] = (h.buckets[i] ?? 0) + 1
      return
    }
  }
}

/** The histogram as Effect's cumulative `HistogramState`. */
export const histogramState = (h: Histogram): Metric.HistogramState => {
  let cumulative = 0
  const buckets: Array<[number, number]> = Telemetry.durationBoundariesSeconds.map((boundary, i) => {
    cumulative += h.buckets[i] ?? 0
    return [boundary, cumulative]
  })
  return { buckets, count: h.count, sum: h.sum, min: h.count === 0 ? 0 : h.min, max: h.count === 0 ? 0 : h.max }
}

/** Registers series in a registry and removes them all at once. */
export interface Registrar {
  readonly counter: (spec: Telemetry.MetricSpec, attributes: Record<string, string>, get: () => number) => void
  readonly gauge: (spec: Telemetry.MetricSpec, attributes: Record<string, string>, get: () => number) => void
  readonly histogram: (spec: Telemetry.MetricSpec, attributes: Record<string, string>, get: () => Histogram) => void
  readonly removeAll: () => void
}

/** A registrar over the `MetricRegistry` of `context`. */
export const registrar = (context: Context.Context<never>): Registrar => {
  const registrations: Array<Metric.Registration> = []
  const register = <State>(
    metric: Metric.Metric<never, State>,
    attributes: Record<string, string>,
    get: () => State
  ) => {
    registrations.push(
      Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
        get,
        update: () => {},
        modify: () => {}
      })
    )
  }
  return {
    counter: (spec, attributes, get) =>
      register(
        Metric.counter(spec.name, {
          description: spec.description,
          incremental: true,
          attributes: { unit: spec.unit }
        }),
        attributes,
        () => ({ count: get(), incremental: true })
      ),
    gauge: (spec, attributes, get) =>
      register(
        Metric.gauge(spec.name, { description: spec.description, attributes: { unit: spec.unit } }),
        attributes,
        () => ({ value: get() })
      ),
    histogram: (spec, attributes, get) =>
      register(
        Metric.histogram(spec.name, {
          description: spec.description,
          boundaries: spec.boundaries ?? Telemetry.durationBoundariesSeconds,
          attributes: { unit: spec.unit }
        }),
        attributes,
        () => histogramState(get())
      ),
    removeAll: () => {
      for (const registration of registrations) registration.remove()
      registrations.length = 0
    }
  }
}
