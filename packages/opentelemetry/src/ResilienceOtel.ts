/**
 * OpenTelemetry wiring for effect-resilience: one layer that exports the
 * library's spans and metrics through the OpenTelemetry Node SDK.
 *
 * The core package records Effect `Metric`s and spans named in its
 * `Telemetry` catalogue and never imports an exporter. This package is where
 * they meet OpenTelemetry: `layer` installs `@effect/opentelemetry`'s Node SDK
 * with a resource naming the service, so every breaker transition, retry and
 * rejection reaches the span processors and metric readers you pass.
 *
 * **Details**
 *
 * - `serviceName` defaults to `"effect-resilience"`.
 * - The library's catalogue version is recorded as the resource attribute
 *   `resilience.library.version`.
 * - Metric readers get `@effect/opentelemetry`'s producer, less one quirk:
 *   it reads an instrument's unit from a `unit` attribute (the catalogue
 *   sets it on every metric) and also kept that attribute on every point, so
 *   backends saw a `unit` label on every series. Points leave here without
 *   it; the unit is on the instrument's descriptor.
 *
 * **Example** (Exporting to in-memory readers)
 *
 * ```ts
 * import { ResilienceOtel } from "@effect-resilience/opentelemetry"
 * import { InMemoryMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
 *
 * const exporter = new InMemoryMetricExporter(0)
 * const Live = ResilienceOtel.layer({
 *   serviceName: "quotes",
 *   metricReader: new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1000 })
 * })
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import type * as Resource from "@effect/opentelemetry/Resource"
import type { CollectionResult, MetricProducer, MetricReader } from "@opentelemetry/sdk-metrics"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * The version recorded on the exported resource.
 *
 * @category constants
 * @since 0.1.0
 */
export const libraryVersion: string = "0.1.0"

/**
 * Options of {@link layer}: the Node SDK's configuration with an optional
 * service name in place of a resource.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options extends Omit<NodeSdk.Configuration, "resource"> {
  readonly serviceName?: string | undefined
  readonly serviceVersion?: string | undefined
}

/**
 * Installs the OpenTelemetry Node SDK for the library's spans and metrics.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Resource.Resource> => {
  const { serviceName, serviceVersion, metricReader, metricTemporality, ...config } = options
  const sdk = NodeSdk.layer(() => ({
    ...config,
    resource: {
      serviceName: serviceName ?? "effect-resilience",
      ...(serviceVersion === undefined ? {} : { serviceVersion }),
      attributes: { "resilience.library.version": libraryVersion }
    }
  }))
  const readers: ReadonlyArray<MetricReader> =
    metricReader === undefined ? [] : "collect" in metricReader ? [metricReader] : metricReader
  if (readers.length === 0) return sdk
  // one producer per reader, as the SDK layer does (each keeps its own temporality state)
  const metrics = Layer.effectDiscard(
    Effect.forEach(readers, (reader) =>
      Effect.flatMap(OtelMetrics.makeProducer(metricTemporality), (producer) =>
        OtelMetrics.registerProducer(withoutUnitAttribute(producer), () => reader, {
          shutdownTimeout: config.shutdownTimeout
        })
      )
    )
  )
  return Layer.provideMerge(metrics, sdk)
}

/**
 * A producer whose points carry no `unit` attribute: `@effect/opentelemetry`
 * reads the instrument's unit from it and leaves it on every point.
 */
const withoutUnitAttribute = (inner: MetricProducer): MetricProducer => ({
  collect: (collectOptions) => inner.collect(collectOptions).then(dropUnitAttribute)
})

/** Removes `unit` from every point's attributes (objects the producer builds afresh on each collection). */
const dropUnitAttribute = (result: CollectionResult): CollectionResult => {
  for (const scope of result.resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      for (const point of metric.dataPoints) delete point.attributes.unit
    }
  }
  return result
}
