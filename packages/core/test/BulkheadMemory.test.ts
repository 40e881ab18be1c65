import { assert, describe, it } from "@effect/vitest"
import { Bulkhead } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import { heapAfterGc } from "./heap.ts"

/** One call for each of the keys `k<from>` .. `k<to - 1>`. */
const pass = (bulkhead: Bulkhead.Bulkhead, from: number, to: number) =>
  Effect.gen(function* () {
    for (let i = from; i < to; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `k${i}` })
  })

describe("Bulkhead memory bounds", () => {
  it.effect(
    "heap stays flat while 1,000,000 distinct keys pass through",
    () =>
      Effect.gen(function* () {
        // no sweep during the run: only the maxKeys cap bounds the keys
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 4, maxKeys: 10_000, sweepInterval: "1 hour" })
        yield* pass(bulkhead, 0, 200_000)
        const warm = heapAfterGc()
        yield* pass(bulkhead, 200_000, 1_000_000)
        const after = heapAfterGc()
        const stats = yield* bulkhead.stats
        assert.isAtMost(stats.keys, 10_000)
        assert.deepStrictEqual([stats.admitted, stats.active, stats.queued], [1_000_000, 0, 0])
        // 800,000 more keys grew the heap by less than 8 MB (10 bytes a key; holding every key would take
        // well over 100 MB)
        assert.isBelow(after - warm, 8 * 1024 * 1024, `heap grew by ${after - warm} bytes`)
      }),
    60_000
  )
})
