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
import type * as Resource from "@effect/opentelemetry/Resource"
import type * as Layer from "effect/Layer"

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
  const { serviceName, serviceVersion, ...config } = options
  return NodeSdk.layer(() => ({
    ...config,
    resource: {
      serviceName: serviceName ?? "effect-resilience",
      ...(serviceVersion === undefined ? {} : { serviceVersion }),
      attributes: { "resilience.library.version": libraryVersion }
    }
  }))
}
