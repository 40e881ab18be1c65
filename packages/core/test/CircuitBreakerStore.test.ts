import * as v8 from "node:v8"
import * as vm from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "@effect-resilience/core"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { suite } from "./CircuitBreakerStoreSuite.ts"

suite("memory", CircuitBreaker.layerStoreMemory())

/**
 * The memory store with its synchronous twin hidden: the breaker then takes
 * the effectful path a remote (Redis) store uses.
 */
const remoteLike: Layer.Layer<CircuitBreaker.CircuitBreakerStore> = Layer.effect(
  CircuitBreaker.CircuitBreakerStore,
  Effect.map(CircuitBreaker.CircuitBreakerStore, (store) =>
    CircuitBreaker.CircuitBreakerStore.of({
      circuits: (options) => Effect.map(store.circuits(options), (circuits) => ({ ...circuits, local: undefined }))
    })
  )
).pipe(Layer.provide(CircuitBreaker.layerStoreMemory()))

suite("memory through the effectful interface", remoteLike)

class Boom extends Data.TaggedError("Boom") {}

describe("CircuitBreaker over an effectful store", () => {
  it.effect(
    "the two suite runs take different paths: the in-process one never calls admit, the other always does",
    () =>
      Effect.gen(function* () {
        /** Counts the effectful admissions and records a breaker makes. */
        const counting = (inner: Layer.Layer<CircuitBreaker.CircuitBreakerStore>) => {
          const counts = { admit: 0, record: 0 }
          const layer = Layer.effect(
            CircuitBreaker.CircuitBreakerStore,
            Effect.map(CircuitBreaker.CircuitBreakerStore, (store) =>
              CircuitBreaker.CircuitBreakerStore.of({
                circuits: (options) =>
                  Effect.map(store.circuits(options), (circuits) => ({
                    ...circuits,
                    admit: (key: string) => {
                      counts.admit++
                      return circuits.admit(key)
                    },
                    record: (record: Parameters<CircuitBreaker.Circuits["record"]>[0]) => {
                      counts.record++
                      return circuits.record(record)
                    }
                  }))
              })
            )
          ).pipe(Layer.provide(inner))
          return { counts, layer }
        }
        const inProcess = counting(CircuitBreaker.layerStoreMemory())
        const effectful = counting(remoteLike)
        for (const { layer } of [inProcess, effectful]) {
          const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 }).pipe(Effect.provide(layer))
          yield* CircuitBreaker.protect(Effect.succeed(1), breaker, { key: "k" })
          yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), breaker, { key: "k" }))
          yield* Effect.exit(CircuitBreaker.protect(Effect.succeed(1), breaker, { key: "k" }))
        }
        assert.deepStrictEqual(inProcess.counts, { admit: 0, record: 0 })
        assert.deepStrictEqual(effectful.counts, { admit: 3, record: 2 })
      })
  )

  it.effect("the state and rate gauges are registered only over in-process circuits, never reading a false 0", () =>
    Effect.gen(function* () {
      const ids = (name: string) =>
        Effect.map(Metric.snapshot, (snapshots) =>
          snapshots
            .filter((s) => s.attributes?.["resilience.name"] === name)
            .map((s) => s.id)
            .filter((id, i, all) => all.indexOf(id) === i)
            .sort()
        )
      for (const [name, layer] of [
        ["in-process", CircuitBreaker.layerStoreMemory()],
        ["remote", remoteLike]
      ] as const) {
        const breaker = yield* CircuitBreaker.make({ name, consecutiveFailures: 1 }).pipe(Effect.provide(layer))
        yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), breaker))
      }
      const perProcess = [
        "resilience.circuit_breaker.call.duration",
        "resilience.circuit_breaker.calls",
        "resilience.circuit_breaker.slow_calls",
        "resilience.circuit_breaker.transitions"
      ]
      const gauges = [
        "resilience.circuit_breaker.failure_rate",
        "resilience.circuit_breaker.slow_call_rate",
        "resilience.circuit_breaker.state"
      ]
      assert.deepStrictEqual(yield* ids("in-process"), [...perProcess, ...gauges].sort())
      assert.deepStrictEqual(yield* ids("remote"), perProcess)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("onStoreError: allow runs the call unrecorded, fail fails it with CircuitBreakerStoreError", () =>
    Effect.gen(function* () {
      const failing = Layer.succeed(
        CircuitBreaker.CircuitBreakerStore,
        CircuitBreaker.CircuitBreakerStore.of({
          circuits: (options) =>
            Effect.map(
              Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (store) => store.circuits(options)).pipe(
                Effect.provide(CircuitBreaker.layerStoreMemory())
              ),
              (circuits) => ({
                ...circuits,
                local: undefined,
                admit: () =>
                  Effect.fail(
                    new CircuitBreaker.CircuitBreakerError({
                      reason: new CircuitBreaker.CircuitBreakerStoreError({ message: "store down" })
                    })
                  )
              })
            )
        })
      )
      const allow = yield* CircuitBreaker.make({ onStoreError: "allow" }).pipe(Effect.provide(failing))
      assert.strictEqual(yield* CircuitBreaker.protect(Effect.succeed("ran"), allow), "ran")
      assert.strictEqual((yield* allow.stats).storeErrors, 1)
      const fail = yield* CircuitBreaker.make({ onStoreError: "fail" }).pipe(Effect.provide(failing))
      const error = yield* Effect.flip(CircuitBreaker.protect(Effect.succeed("ran"), fail))
      assert.strictEqual(error._tag === "CircuitBreakerError" ? error.reason._tag : "", "CircuitBreakerStoreError")
    })
  )
})

describe("memory bounds", () => {
  it.effect(
    "heap stays flat while 1,000,000 distinct keys pass through",
    () =>
      Effect.gen(function* () {
        v8.setFlagsFromString("--expose-gc")
        const gc: unknown = vm.runInNewContext("gc")
        const collect = () => {
          if (typeof gc === "function") gc()
        }
        const breaker = yield* CircuitBreaker.make({ failureRateThreshold: 0.5, maxKeys: 10_000 })
        const pass = (from: number, to: number) =>
          Effect.gen(function* () {
            for (let i = from; i < to; i++) {
              yield* CircuitBreaker.protect(Effect.void, breaker, { key: `client-${i}` })
            }
          })
        yield* pass(0, 200_000)
        collect()
        const warm = process.memoryUsage().heapUsed
        yield* pass(200_000, 1_000_000)
        collect()
        const after = process.memoryUsage().heapUsed
        const stats = yield* breaker.stats
        assert.strictEqual(stats.circuits, 10_000)
        assert.strictEqual(stats.evicted, 990_000)
        // 800,000 more keys grew the heap by less than 8 MB (10 bytes a key; a map of every key would take ~100 MB)
        assert.isBelow(after - warm, 8 * 1024 * 1024, `heap grew by ${after - warm} bytes`)
        assert.strictEqual(Duration.toMillis(breaker.options.idleTimeToLive), 3_600_000)
      }).pipe(Effect.provide(CircuitBreaker.layerStoreMemory())),
    60_000
  )
})
