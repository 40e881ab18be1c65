import * as v8 from "node:v8"
import * as vm from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "@effect-resilience/core"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { TestClock } from "effect/testing"
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
  it.effect("trips, rejects, probes and closes like the in-process path", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2, openDuration: "5 seconds" })
      yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), breaker))
      yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), breaker))
      const rejected = yield* Effect.flip(CircuitBreaker.protect(Effect.succeed(1), breaker))
      assert.strictEqual(rejected._tag === "CircuitBreakerError" ? rejected.reason._tag : "", "CircuitOpen")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* CircuitBreaker.protect(Effect.succeed(1), breaker), 1)
      assert.strictEqual((yield* breaker.state())._tag, "Closed")
    }).pipe(Effect.provide(remoteLike))
  )

  it.effect("an interrupted probe frees its slot", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second" })
      yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), breaker))
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.forkChild(CircuitBreaker.protect(Effect.never, breaker))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(probe)
      const state = yield* breaker.state()
      assert.deepStrictEqual(state._tag === "HalfOpen" ? state.probesInFlight : -1, 0)
      assert.strictEqual(yield* CircuitBreaker.protect(Effect.succeed(1), breaker), 1)
    }).pipe(Effect.provide(remoteLike))
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
