import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { defaults, type Jitter, jitters, type Result, simulate, sweep } from "../scripts/retry-contention.ts"

/** Rounded to 0.1 ms: jittered delays are fractional milliseconds. */
const tenths = (millis: number): number => Math.round(millis * 10) / 10

const byJitter = (results: ReadonlyArray<Result>): Record<Jitter, Result> => {
  const find = (jitter: Jitter): Result => {
    const result = results.find((r) => r.jitter === jitter)
    if (result === undefined) throw new Error(`no result for ${jitter}`)
    return result
  }
  return { none: find("none"), full: find("full"), equal: find("equal"), decorrelated: find("decorrelated") }
}

const mean = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0) / xs.length

describe("retry contention (AWS Architecture Blog, Exponential Backoff And Jitter)", () => {
  it.effect("no jitter: the clients left collide every round and one wins, so N clients make N(N+1)/2 calls", () =>
    Effect.gen(function* () {
      for (const clients of [1, 10, 50]) {
        const result = yield* simulate({ clients, jitter: "none" })
        assert.strictEqual(result.calls, (clients * (clients + 1)) / 2)
        // round k ends with one commit after `work`, then the rest wait min(cap, base * 2^(k - 1))
        let expected = clients * defaults.workMillis
        for (let k = 1; k < clients; k++) expected += Math.min(defaults.capMillis, defaults.baseMillis * 2 ** (k - 1))
        assert.strictEqual(result.completionMillis, expected)
      }
    })
  )

  it.effect('50 clients, seed "retry-contention": pinned calls and completion times', () =>
    Effect.gen(function* () {
      const results = yield* Effect.forEach(jitters, (jitter) => simulate({ clients: 50, jitter }))
      assert.deepStrictEqual(
        results.map((r) => [r.jitter, r.calls, tenths(r.completionMillis)]),
        [
          ["none", 1275, 43320],
          ["equal", 210, 599.9],
          ["full", 196, 170.6],
          ["decorrelated", 150, 221.3]
        ]
      )
      // the policy's own counters agree: every client succeeded once, every other call was a retried conflict
      for (const r of results) {
        assert.deepStrictEqual(r.stats, {
          successes: 50,
          failures: r.calls - 50,
          retries: r.calls - 50,
          exhausted: 0,
          budgetExhausted: 0
        })
        assert.strictEqual(r.conflicts, r.calls - 50)
      }
      const { none, full, equal, decorrelated } = byJitter(results)
      // AWS: no jitter is the clear loser on work and on time
      for (const jittered of [full, equal, decorrelated]) {
        assert.isBelow(jittered.calls, none.calls / 5)
        assert.isBelow(jittered.completionMillis, none.completionMillis / 50)
      }
      // AWS: equal jitter does more work than full jitter and takes longer
      assert.isAbove(equal.calls, full.calls)
      assert.isAbove(equal.completionMillis, full.completionMillis)
    })
  )

  it.effect("the ordering holds on average over ten seeds", () =>
    Effect.gen(function* () {
      const runs = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (seed) => sweep([50], { seed }))
      const average = (jitter: Jitter, field: "calls" | "completionMillis") =>
        mean(runs.map((results) => byJitter(results)[jitter][field]))
      const calls = jitters.map((jitter) => average(jitter, "calls"))
      assert.deepStrictEqual(
        jitters.map((jitter, i) => [jitter, tenths(calls[i] ?? 0)]),
        [
          ["none", 1275],
          ["equal", 203],
          ["full", 191.5],
          ["decorrelated", 153.1]
        ]
      )
      // calls: none > equal > full > decorrelated
      for (let i = 1; i < calls.length; i++) assert.isBelow(calls[i] ?? Infinity, calls[i - 1] ?? 0)
      // completion time: full jitter is the fastest, no jitter by far the slowest
      const time = (jitter: Jitter) => average(jitter, "completionMillis")
      assert.isBelow(time("full"), time("decorrelated"))
      assert.isBelow(time("full"), time("equal"))
      assert.isBelow(Math.max(time("equal"), time("decorrelated")), time("none") / 50)
    })
  )

  it.effect("a run is deterministic: the same seed gives the same calls and times", () =>
    Effect.gen(function* () {
      const first = yield* simulate({ clients: 30, jitter: "full", seed: 7 })
      const again = yield* simulate({ clients: 30, jitter: "full", seed: 7 })
      const other = yield* simulate({ clients: 30, jitter: "full", seed: 8 })
      assert.deepStrictEqual(again, first)
      assert.notDeepEqual([other.calls, other.completionMillis], [first.calls, first.completionMillis])
    })
  )
})
