/**
 * The one catalogue of every metric, span and event name the library emits.
 *
 * Each pattern records Effect `Metric`s and span events whose names, units and
 * attribute keys are defined here, once. The generated reference pages
 * (`docs/reference/metrics.md`) are rendered from this catalogue, so the code
 * and the docs cannot drift.
 *
 * **Details**
 *
 * - Names follow the OpenTelemetry conventions: dot-separated namespaces under
 *   `resilience.`, snake_case words, units as UCUM strings (`s`, `{call}`).
 * - Attributes are low-cardinality: pattern, instance name, outcome, state.
 *   A raw client key (a tenant id, an IP address) is never an attribute.
 * - The unit travels as the `unit` attribute of the Effect metric, which is
 *   where `@effect/opentelemetry` reads it from when exporting.
 *
 * **Example** (Looking up a catalogue entry)
 *
 * ```ts import.meta.vitest
 * import { Telemetry } from "@effect-resilience/core"
 *
 * Telemetry.attributes.name
 * // => "resilience.name"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */

/**
 * The attribute keys shared by every pattern's metrics and spans.
 *
 * @category constants
 * @since 0.1.0
 */
export const attributes: {
  /** Which pattern recorded the value: `circuit_breaker`, `retry`, `rate_limiter`, … */
  readonly pattern: "resilience.pattern"
  /** The instance's configured name (never a per-request key). */
  readonly name: "resilience.name"
  /** What happened to a call: `success`, `failure`, `ignored`, `rejected`, … */
  readonly outcome: "resilience.outcome"
  /** A state such as `closed`, `open`, `half_open`. */
  readonly state: "resilience.state"
  /** The state a transition left. */
  readonly from: "resilience.from"
  /** The state a transition entered. */
  readonly to: "resilience.to"
  /** The unit, read by `@effect/opentelemetry` when it exports a metric. */
  readonly unit: "unit"
} = {
  pattern: "resilience.pattern",
  name: "resilience.name",
  outcome: "resilience.outcome",
  state: "resilience.state",
  from: "resilience.from",
  to: "resilience.to",
  unit: "unit"
}

/**
 * The kind of an instrument, as OpenTelemetry names them.
 *
 * @category models
 * @since 0.1.0
 */
export type InstrumentKind = "counter" | "gauge" | "histogram"

/**
 * One metric of the catalogue.
 *
 * @category models
 * @since 0.1.0
 */
export interface MetricSpec {
  readonly name: string
  readonly kind: InstrumentKind
  /** UCUM unit: `s`, `1`, `{call}`, `{transition}`. */
  readonly unit: string
  readonly description: string
  /** The attribute keys this metric carries, all low-cardinality. */
  readonly attributes: ReadonlyArray<string>
  /** Histogram bucket boundaries, in the metric's unit. */
  readonly boundaries?: ReadonlyArray<number> | undefined
}

/**
 * Severity of an event, as Polly's `ResilienceEvent` has it.
 *
 * @category models
 * @since 0.1.0
 */
export type Severity = "debug" | "info" | "warning" | "error" | "critical"

/**
 * One event of the catalogue: the `_tag` of an event on a pattern's `events`
 * stream, which is also the name of the span event recorded for it.
 *
 * @category models
 * @since 0.1.0
 */
export interface EventSpec {
  readonly pattern: string
  readonly name: string
  readonly severity: Severity
  readonly description: string
}

/**
 * Every metric the library records, in catalogue order. Patterns append their
 * entries here as they are added; the docs generator reads this list.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const metrics: ReadonlyArray<MetricSpec> = []

/**
 * Every event the library emits, in catalogue order.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const events: ReadonlyArray<EventSpec> = []

/**
 * Renders metric specs as a Markdown table (the generated reference pages use it).
 *
 * @category rendering
 * @since 0.1.0
 */
export const metricsTable = (specs: ReadonlyArray<MetricSpec>): string => {
  const rows = specs.map(
    (spec) =>
      `| \`${spec.name}\` | ${spec.kind} | \`${spec.unit}\` | ${spec.attributes.map((key) => `\`${key}\``).join(", ")} | ${spec.description} |`
  )
  return ["| name | instrument | unit | attributes | description |", "|---|---|---|---|---|", ...rows].join("\n")
}

/**
 * Renders event specs as a Markdown table.
 *
 * @category rendering
 * @since 0.1.0
 */
export const eventsTable = (specs: ReadonlyArray<EventSpec>): string => {
  const rows = specs.map((spec) => `| \`${spec.name}\` | ${spec.pattern} | ${spec.severity} | ${spec.description} |`)
  return ["| event | pattern | severity | description |", "|---|---|---|---|", ...rows].join("\n")
}
