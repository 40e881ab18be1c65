/**
 * Properties of the fleet's merge logic (the local-first store's sync), and
 * the Lua port agreeing with it on a real server.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "@effect-resilience/core"
import { IoRedis, RedisCircuitBreaker } from "@effect-resilience/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fc from "fast-check"
import * as Fleet from "../src/internal/circuitBreakerFleet.ts"
import * as fixtures from "./fixtures.ts"

type Outcome = "S" | "F"

const outcomes = fc.array(fc.constantFrom<Outcome>("S", "F"), { maxLength: 40 })

/** The run's segment, outcome by outcome. */
const segmentOf = (run: ReadonlyArray<Outcome>): Fleet.Segment =>
  run.reduce<Fleet.Segment>(
    (s, o) => Fleet.concat(s, o === "F" ? { trailing: 1, allFailed: true } : { trailing: 0, allFailed: false }),
    Fleet.emptySegment
  )

/** Failures after the last success: the consecutive policy's count. */
const trailingFailures = (run: ReadonlyArray<Outcome>): number => {
  let n = 0
  for (const o of run) n = o === "F" ? n + 1 : 0
  return n
}

const totalsArb = (max: number) =>
  fc
    .tuple(
      fc.integer({ min: 0, max }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true })
    )
    .map(([calls, f, s]): Fleet.Totals => ({ calls, failures: Math.floor(calls * f), slow: Math.floor(calls * s) }))

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))

describe("circuitBreakerFleet: properties", () => {
  it("segments form a monoid, and a run's segment counts its trailing failures", () => {
    fc.assert(
      fc.property(outcomes, outcomes, outcomes, (a, b, c) => {
        const [sa, sb, sc] = [segmentOf(a), segmentOf(b), segmentOf(c)]
        assert.deepStrictEqual(Fleet.concat(Fleet.concat(sa, sb), sc), Fleet.concat(sa, Fleet.concat(sb, sc)))
        assert.deepStrictEqual(Fleet.concat(Fleet.emptySegment, sa), sa)
        assert.deepStrictEqual(Fleet.concat(sa, Fleet.emptySegment), sa)
        assert.deepStrictEqual(Fleet.concat(sa, sb), segmentOf([...a, ...b]))
        assert.strictEqual(sa.trailing, trailingFailures(a))
        assert.strictEqual(
          sa.allFailed,
          a.every((o) => o === "F")
        )
      })
    )
  })

  it("merging flushes one by one gives the consecutive count of all their outcomes in flush order", () => {
    fc.assert(
      fc.property(fc.array(outcomes, { maxLength: 8 }), (flushes) => {
        const merged = flushes.reduce((consecutive, run) => Fleet.mergeConsecutive(consecutive, segmentOf(run)), 0)
        assert.strictEqual(merged, trailingFailures(flushes.flat()))
      })
    )
  })

  it("a count window stays within windowSize calls, keeps rates in range, and weighs the newest flush in full", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.array(totalsArb(300), { minLength: 1, maxLength: 10 }),
        (windowSize, flushes) => {
          let window: Fleet.Totals = { calls: 0, failures: 0, slow: 0 }
          for (const delta of flushes) {
            const before = window
            window = Fleet.mergeCountWindow(window, delta, windowSize)
            assert.isTrue(window.calls <= windowSize + 1e-9)
            assert.isTrue(window.failures >= 0 && window.failures <= window.calls + 1e-9)
            assert.isTrue(window.slow >= 0 && window.slow <= window.calls + 1e-9)
            if (delta.calls >= windowSize) {
              // the flush alone fills the window: its rate is the window's
              assert.isTrue(close(window.calls, windowSize))
              assert.isTrue(close(window.failures / windowSize, delta.failures / delta.calls))
            } else if (before.calls + delta.calls <= windowSize) {
              // room for both: plain sums
              assert.isTrue(close(window.calls, before.calls + delta.calls))
              assert.isTrue(close(window.failures, before.failures + delta.failures))
            } else if (window.calls > 0) {
              // the new rate lies between the old and the flush's
              const rate = window.failures / window.calls
              const lo = Math.min(before.failures / before.calls, delta.calls === 0 ? 1 : delta.failures / delta.calls)
              const hi = Math.max(before.failures / before.calls, delta.calls === 0 ? 0 : delta.failures / delta.calls)
              assert.isTrue(rate >= lo - 1e-9 && rate <= hi + 1e-9)
            }
          }
        }
      )
    )
  })

  it("a time window's totals are the flushes of its last windowSize buckets", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), totalsArb(20)), { maxLength: 20 }),
        fc.integer({ min: 0, max: 3000 }),
        (windowSize, bucketMillis, steps, lastGap) => {
          let buckets = Fleet.emptyBuckets(windowSize)
          let now = 0
          const flushed: Array<readonly [number, Fleet.Totals]> = []
          for (const [gap, delta] of steps) {
            now += gap
            buckets = Fleet.addToBuckets(buckets, delta, now, windowSize, bucketMillis)
            flushed.push([now, delta])
          }
          now += lastGap
          const oldest = Math.floor(now / bucketMillis) - windowSize + 1
          const expected = flushed
            .filter(([at]) => Math.floor(at / bucketMillis) >= oldest)
            .reduce(
              (t, [, d]) => ({ calls: t.calls + d.calls, failures: t.failures + d.failures, slow: t.slow + d.slow }),
              { calls: 0, failures: 0, slow: 0 }
            )
          assert.deepStrictEqual(Fleet.bucketTotals(buckets, now, windowSize, bucketMillis), expected)
        }
      )
    )
  })

  it("trips as the engine does: consecutive first, rates only past minimumCalls", () => {
    fc.assert(
      fc.property(
        totalsArb(50),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 30 }),
        (totals, consecutive, consecutiveFailures, minimumCalls) => {
          const policies = { consecutiveFailures, failureRateThreshold: 0.5, slowCallRateThreshold: 0, minimumCalls }
          const expected =
            (consecutiveFailures > 0 && consecutive >= consecutiveFailures) ||
            (totals.calls >= minimumCalls && totals.failures > 0 && totals.failures / totals.calls >= 0.5)
          assert.strictEqual(Fleet.trips(totals, consecutive, policies), expected)
        }
      )
    )
  })
})

// ---------------------------------------------------------------------------
// the Lua port
// ---------------------------------------------------------------------------

const standalone = fixtures.standalone()

describe("circuitBreakerFleet: the sync script merges as the TypeScript does", () => {
  it.effect(
    "count window and consecutive failures after random flushes from two processes",
    () =>
      Effect.gen(function* () {
        const client = (yield* IoRedis.IoRedis).client
        const runs = fc.sample(fc.array(fc.tuple(fc.boolean(), outcomes), { minLength: 1, maxLength: 6 }), {
          numRuns: 15,
          seed: 7
        })
        for (const flushes of runs) {
          const name = `fleet-${Math.random().toString(36).slice(2)}`
          // a consecutive policy too high to trip: the window only accumulates
          const breaker = { name, consecutiveFailures: 1000, slidingWindowSize: 7, minimumCalls: 7 }
          const layer = (instanceId: string) =>
            RedisCircuitBreaker.layerStoreLocalFirst({ syncInterval: "1 hour", instanceId }).pipe(
              Layer.provide(standalone),
              Layer.orDie
            )
          let expectedWindow: Fleet.Totals = { calls: 0, failures: 0, slow: 0 }
          let expectedConsecutive = 0
          yield* Effect.scoped(
            Effect.gen(function* () {
              const a = yield* processWith(layer("a"), breaker)
              const b = yield* processWith(layer("b"), breaker)
              for (const [onA, run] of flushes) {
                const p = onA ? a : b
                for (const o of run) yield* Effect.exit(p.call(o === "F"))
                yield* p.syncNow
                if (run.length > 0) {
                  const failures = run.filter((o) => o === "F").length
                  expectedWindow = Fleet.mergeCountWindow(expectedWindow, { calls: run.length, failures, slow: 0 }, 7)
                  expectedConsecutive = Fleet.mergeConsecutive(expectedConsecutive, segmentOf(run))
                }
              }
            })
          )
          const hash = yield* Effect.promise(() => client.hgetall(`resilience:cbf:{${name}}:f:${name}`))
          if (flushes.every(([, run]) => run.length === 0)) continue
          assert.isTrue(close(Number(hash.c), expectedWindow.calls), `${hash.c} vs ${expectedWindow.calls}`)
          assert.isTrue(close(Number(hash.f), expectedWindow.failures), `${hash.f} vs ${expectedWindow.failures}`)
          assert.strictEqual(Number(hash.consec), expectedConsecutive)
        }
      }).pipe(Effect.provide(standalone)),
    60_000
  )
})

class Failed {
  readonly _tag = "Failed"
}

/** A breaker on a store of its own: a call that fails or not, and a sync. */
const processWith = (
  layer: Layer.Layer<CircuitBreaker.CircuitBreakerStore | RedisCircuitBreaker.LocalFirstSync>,
  options: CircuitBreaker.Input
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(layer)
    const breaker = yield* CircuitBreaker.make(options).pipe(Effect.provide(context))
    const sync = yield* Effect.provide(Effect.service(RedisCircuitBreaker.LocalFirstSync), context)
    return {
      call: (failed: boolean) =>
        CircuitBreaker.protect(failed ? Effect.fail(new Failed()) : Effect.succeed(1), breaker),
      syncNow: sync.syncNow
    }
  })
