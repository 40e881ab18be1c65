import * as v8 from "node:v8"
import * as vm from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { RateLimiter } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"

/** A full collection (`gc` exposed at run time, as in `CircuitBreakerStore.test.ts`), then the heap in use. */
const heapAfterGc = (): number => {
  v8.setFlagsFromString("--expose-gc")
  const gc: unknown = vm.runInNewContext("gc")
  if (typeof gc === "function") {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed
}

/** One decision for each of the keys `k<from>` .. `k<to - 1>`. */
const pass = (limiter: RateLimiter.RateLimiter, from: number, to: number) =>
  Effect.gen(function* () {
    for (let i = from; i < to; i++) yield* limiter.consume(`k${i}`)
  })

describe("RateLimiter memory bounds", () => {
  it.effect(
    "heap stays flat while 1,000,000 distinct keys pass through",
    () =>
      Effect.gen(function* () {
        // epoch-scale times, as with the live clock (state times are then heap numbers, not small integers)
        yield* TestClock.setTime(1_700_000_000_000)
        const limiter = yield* RateLimiter.make({
          limits: [{ algorithm: "token-bucket", limit: 10, window: "1 second" }],
          maxKeys: 10_000
        })
        yield* pass(limiter, 0, 200_000)
        const warm = heapAfterGc()
        yield* pass(limiter, 200_000, 1_000_000)
        const after = heapAfterGc()
        const stats = yield* limiter.stats
        assert.isAtMost(stats.keys, 10_000)
        assert.strictEqual(stats.allowed, 1_000_000)
        // the heavy-hitters sketch behind topClients keeps its 64 counters (the default capacity), no more
        const top = yield* limiter.topClients(1_000_000)
        assert.isAtMost(top.length, 64)
        // 800,000 more keys grew the heap by less than 8 MB (10 bytes a key; holding every key would take ~90 MB
        // at the ~115 bytes per key measured below)
        assert.isBelow(after - warm, 8 * 1024 * 1024, `heap grew by ${after - warm} bytes`)
      }).pipe(Effect.provide(RateLimiter.layerStoreMemory())),
    // ~10 s here: with the clock frozen no key is ever idle, so each of the 990,000 new keys past the cap evicts the
    // oldest, and finding it means skipping the Map's deleted entries (~10 µs a key, against ~1 µs below the cap)
    60_000
  )

  it.effect(
    "bytes per idle key",
    () =>
      Effect.gen(function* () {
        const keys = 100_000
        yield* TestClock.setTime(1_700_000_000_000)
        const limiter = yield* RateLimiter.make({
          limits: [{ algorithm: "token-bucket", limit: 10, window: "1 second" }],
          maxKeys: 1_000_000,
          sweepInterval: "1 hour"
        })
        // warm up the code paths (and the sketch's 64 counters), then let those keys go
        yield* pass(limiter, 0, 1_000)
        yield* TestClock.adjust("1 hour")
        assert.strictEqual((yield* limiter.stats).keys, 0)
        const before = heapAfterGc()
        yield* pass(limiter, 1_000, 1_000 + keys)
        // every bucket refills to full: idle, but held until the next sweep
        yield* TestClock.adjust("1 second")
        const after = heapAfterGc()
        assert.strictEqual((yield* limiter.stats).keys, keys)
        const perKey = (after - before) / keys
        // Measured ~58 B on Node 24 (x64): fixed-size states live in one Float64Array per limit (a token bucket's
        // two numbers: 16 B), reached through a Map from key to slot (~37 B per entry at 100,000 keys, counted
        // here) plus the key string itself (~24 B for `k12345`, held by the Map and counted too). With an object
        // per key, as before, it was ~116 B: the object and its boxed epoch-millisecond double cost 56 B alone.
        // The target is 100 B per idle key.
        assert.isBelow(perKey, 100, `${perKey} bytes per idle key`)
      }).pipe(Effect.provide(RateLimiter.layerStoreMemory())),
    20_000
  )
})
