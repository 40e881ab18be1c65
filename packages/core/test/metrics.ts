/**
 * Reading one series out of a metric snapshot (`Metric.snapshot`), for the
 * tests' assertions on what a pattern records.
 *
 * A series is found by its metric `id` and a subset of its attributes (the
 * first series whose attributes include every pair given).
 */
import type * as Metric from "effect/Metric"

const find = (
  snapshots: ReadonlyArray<Metric.Metric.Snapshot>,
  id: string,
  attributes: Record<string, string>
): Metric.Metric.Snapshot | undefined =>
  snapshots.find((s) => s.id === id && Object.entries(attributes).every(([k, v]) => s.attributes?.[k] === v))

/**
 * A series' number: a counter's count or a gauge's value (a histogram's or a
 * summary's count); undefined when no series matches or its state has
 * neither.
 */
export const metricValue = (
  snapshots: ReadonlyArray<Metric.Metric.Snapshot>,
  id: string,
  attributes: Record<string, string>
): number | undefined => {
  const s = find(snapshots, id, attributes)
  if (s === undefined) return undefined
  const state: object = s.state
  if ("count" in state) return Number(state.count)
  if ("value" in state) return Number(state.value)
  return undefined
}

/**
 * {@link metricValue}, but a histogram (or a summary) reads as
 * `[count, sum]`, so a test can check both the observations and their total.
 */
export const histogramAwareMetricValue = (
  snapshots: ReadonlyArray<Metric.Metric.Snapshot>,
  id: string,
  attributes: Record<string, string>
): number | ReadonlyArray<number> | undefined => {
  const s = find(snapshots, id, attributes)
  if (s === undefined) return undefined
  const state: object = s.state
  if ("sum" in state && "count" in state) return [Number(state.count), Number(state.sum)]
  if ("count" in state) return Number(state.count)
  if ("value" in state) return Number(state.value)
  return undefined
}
