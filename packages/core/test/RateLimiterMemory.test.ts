import { assert, describe, it } from "@effect/vitest"
import { RateLimiter } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { heapAfterGc } from "./heap.ts"

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
})

/**
 * Bytes per key held, measured over `keys` keys that each made `entries` decisions (one per millisecond), then went
 * idle (held until the next sweep, an hour away): the heap after minus before, over the keys.
 */
const bytesPerKey = (limit: RateLimiter.LimitInput, keys: number, entries = 1) =>
  Effect.gen(function* () {
    // epoch-scale times, as with the live clock (state times are then heap numbers, not small integers)
    yield* TestClock.setTime(1_700_000_000_000)
    const limiter = yield* RateLimiter.make({ limits: [limit], maxKeys: 1_000_000, sweepInterval: "1 hour" })
    // warm up the code paths (and the sketch's 64 counters), then let those keys go
    yield* pass(limiter, 0, 1_000)
    yield* TestClock.adjust("1 hour")
    assert.strictEqual((yield* limiter.stats).keys, 0)
    const before = heapAfterGc()
    for (let i = 0; i < entries; i++) {
      yield* pass(limiter, 1_000, 1_000 + keys)
      yield* TestClock.adjust("1 millis")
    }
    // every key goes idle (a full bucket, an empty window), but is held until the next sweep
    yield* TestClock.adjust("2 minutes")
    const after = heapAfterGc()
    assert.strictEqual((yield* limiter.stats).keys, keys)
    return (after - before) / keys
  }).pipe(Effect.provide(RateLimiter.layerStoreMemory()))

describe("RateLimiter memory per idle key", () => {
  // Measured on Node 24 (x64), ~58-63 B each: fixed-size states live in one Float64Array per limit (a token
  // bucket's two numbers: 16 B), reached through a Map from key to slot (~37 B per entry at 100,000 keys, counted
  // here) plus the key string itself (~24 B for `k12345`, held by the Map and counted too). With an object per
  // key, as before, a token bucket took ~116 B: the object and its boxed epoch-millisecond double cost 56 B alone.
  // The target is 100 B per idle key.
  const counters: ReadonlyArray<readonly [string, RateLimiter.LimitInput]> = [
    ["fixed window", { algorithm: "fixed-window", limit: 10, window: "1 second" }],
    ["sliding window counter", { algorithm: "sliding-window", limit: 10, window: "1 second" }],
    ["token bucket", { algorithm: "token-bucket", limit: 10, window: "1 second" }],
    ["GCRA", { algorithm: "gcra", limit: 10, window: "1 second" }],
    ["leaky bucket (meter)", { algorithm: "leaky-bucket", capacity: 10, leakPerSecond: 10 }]
  ]
  for (const [name, limit] of counters) {
    it.effect(
      `${name}: under 100 bytes per idle key`,
      () =>
        Effect.gen(function* () {
          const perKey = yield* bytesPerKey(limit, 100_000)
          assert.isBelow(perKey, 100, `${perKey} bytes per idle key`)
        }),
      20_000
    )
  }

  // The sliding log stores what it must, a time and a cost per entry (up to `limit` entries with costs of at least
  // 1), so its memory grows with the limit. Packed (see `compileLog`): a log of one entry sits in its 24-byte slot
  // (~60 B a key, as the counters); a longer one in a packed array of doubles with room for 1.5 times its entries.
  // Measured on Node 24 (x64): ~60 B with 1 entry, ~190 B with 2 or 3, ~325 B with 10, ~2,400 B with 100 (as an
  // object with two growing arrays, as before, it was ~475 B up to 17 entries). The documented bound: under
  // 100 B with one entry, and under 200 + 32 B per entry with more.
  const logBound = (entries: number) => (entries <= 1 ? 100 : 200 + 32 * entries)
  const logs: ReadonlyArray<readonly [entries: number, keys: number]> = [
    [1, 100_000],
    [3, 50_000],
    [10, 20_000],
    [100, 5_000]
  ]
  for (const [entries, keys] of logs) {
    it.effect(
      `sliding log: with ${entries} ${entries === 1 ? "entry" : "entries"} held, under ${logBound(entries)} bytes per idle key`,
      () =>
        Effect.gen(function* () {
          const perKey = yield* bytesPerKey({ algorithm: "sliding-log", limit: 100, window: "1 minute" }, keys, entries)
          assert.isBelow(perKey, logBound(entries), `${perKey} bytes per idle key`)
        }),
      30_000
    )
  }
})
