/**
 * End to end: the patterns' metrics and span events reach OpenTelemetry's
 * readers and exporters through `ResilienceOtel.layer`, under the names,
 * units, instruments and attributes the `Telemetry` catalogue declares —
 * and never with a raw key.
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, CircuitBreaker, RateLimiter, Retry, Telemetry, Timeout } from "@effect-resilience/core"
import { ResilienceOtel } from "@effect-resilience/opentelemetry"
import {
  type DataPoint,
  DataPointType,
  type MetricData,
  MetricReader,
  type ResourceMetrics
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** A reader the test pulls from, instead of a periodic export. */
class PullReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve()
  }
}

class Down extends Data.TaggedError("Down") {}

/** A key that must never appear in any exported attribute. */
const secretKey = "tenant-4f9a-secret"

/** How the catalogue's instrument kinds arrive: a monotonic sum, a gauge, a histogram. */
const arrivesAs = (kind: Telemetry.MetricSpec["kind"], metric: MetricData): boolean => {
  switch (kind) {
    case "counter":
      return metric.dataPointType === DataPointType.SUM && metric.isMonotonic
    case "gauge":
      return metric.dataPointType === DataPointType.GAUGE
    case "histogram":
      return metric.dataPointType === DataPointType.HISTOGRAM
  }
}

const exported = (resourceMetrics: ResourceMetrics) => resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics)

const attributeValues = (points: ReadonlyArray<DataPoint<unknown>>): ReadonlyArray<unknown> =>
  points.flatMap((point) => Object.values(point.attributes))

describe("ResilienceOtel: the library's telemetry in OpenTelemetry", () => {
  it.live(
    "metrics arrive under the catalogue's names, units and instruments, with its attributes and no raw key",
    () => {
      const reader = new PullReader()
      const spans = new InMemorySpanExporter()
      const otel = ResilienceOtel.layer({
        serviceName: "otel-e2e",
        metricReader: reader,
        spanProcessor: new SimpleSpanProcessor(spans)
      })
      return Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "payments",
          consecutiveFailures: 1,
          openDuration: "1 minute",
          recordCallDuration: true
        })
        const limiter = yield* RateLimiter.make({
          name: "api",
          limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
        })
        const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 0 })
        const policy = Retry.exponential({ base: "1 millis", maxAttempts: 2, name: "fetch" })

        yield* Effect.gen(function* () {
          yield* CircuitBreaker.protect(Effect.succeed(1), breaker, { key: secretKey })
          yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Down()), breaker, { key: secretKey }))
          yield* Effect.exit(CircuitBreaker.protect(Effect.succeed(1), breaker, { key: secretKey }))
          yield* limiter.consume(secretKey)
          yield* limiter.consume(secretKey)
          yield* Effect.exit(Retry.retry(Effect.fail(new Down()), policy))
          yield* Effect.exit(Timeout.attempt(Effect.never, "1 millis"))
          yield* Bulkhead.isolate(Effect.succeed(1), bulkhead, { key: secretKey })
        }).pipe(Effect.withSpan("checkout"))

        const { errors, resourceMetrics } = yield* Effect.promise(() => reader.collect())
        assert.deepStrictEqual(errors, [])
        assert.strictEqual(resourceMetrics.resource.attributes["service.name"], "otel-e2e")
        const metrics = exported(resourceMetrics)
        const byName = new Map(metrics.map((metric) => [metric.descriptor.name, metric]))

        // every series the calls above touch, as the catalogue declares it
        const expected: ReadonlyArray<Telemetry.MetricSpec> = [
          Telemetry.circuitBreaker.calls,
          Telemetry.circuitBreaker.state,
          Telemetry.circuitBreaker.callDuration,
          Telemetry.circuitBreaker.transitions,
          Telemetry.rateLimiter.decisions,
          Telemetry.retry.attempts,
          Telemetry.timeout.timeouts,
          Telemetry.bulkhead.calls
        ]
        for (const spec of expected) {
          const metric = byName.get(spec.name)
          assert.isDefined(metric, `${spec.name} is exported`)
          if (metric === undefined) continue
          assert.strictEqual(metric.descriptor.unit, spec.unit, `${spec.name} unit`)
          assert.isTrue(arrivesAs(spec.kind, metric), `${spec.name} arrives as a ${spec.kind}`)
          assert.isAbove(metric.dataPoints.length, 0, `${spec.name} has points`)
          for (const point of metric.dataPoints) {
            // the unit is the descriptor's: no `unit` label on the series
            assert.notProperty(point.attributes, "unit", `${spec.name} points carry no unit attribute`)
            for (const key of Object.keys(point.attributes))
              assert.include(spec.attributes, key, `${spec.name} carries only catalogue attributes`)
          }
        }

        // the breaker's calls by outcome, named by the breaker
        const calls = byName.get(Telemetry.circuitBreaker.calls.name)?.dataPoints ?? []
        const outcome = (value: string) =>
          calls.find(
            (point) =>
              point.attributes[Telemetry.attributes.name] === "payments" &&
              point.attributes[Telemetry.attributes.outcome] === value
          )?.value
        assert.deepStrictEqual([outcome("success"), outcome("failure"), outcome("rejected")], [1, 1, 1])

        // no exported attribute holds the raw key
        for (const metric of metrics) {
          assert.notInclude(attributeValues(metric.dataPoints), secretKey, `${metric.descriptor.name} leaks the key`)
        }

        // span events on the caller's span
        const checkout = spans.getFinishedSpans().find((span) => span.name === "checkout")
        assert.isDefined(checkout)
        const eventNames = (checkout?.events ?? []).map((event) => event.name)
        assert.includeMembers(eventNames, ["StateTransition", "CallRejected"])
        const transition = checkout?.events.find((event) => event.name === "StateTransition")
        assert.deepInclude(transition?.attributes ?? {}, {
          [Telemetry.attributes.name]: "payments",
          [Telemetry.attributes.from]: "closed",
          [Telemetry.attributes.to]: "open"
        })
        for (const event of checkout?.events ?? []) {
          assert.notInclude(Object.values(event.attributes ?? {}), secretKey, `${event.name} leaks the key`)
        }
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.mergeAll(CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory())),
        Effect.provide(otel)
      )
    }
  )
})
