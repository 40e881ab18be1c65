import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/adaptiveThrottle.ts"
import * as Fleet from "../../src/internal/adaptiveThrottleFleet.ts"

const countsArb: fc.Arbitrary<Fleet.Counts> = fc
  .tuple(fc.nat({ max: 1000 }), fc.nat({ max: 1000 }))
  .map(([a, b]) => ({ requests: Math.max(a, b), accepts: Math.min(a, b) }))

const ringConfigArb: fc.Arbitrary<Fleet.RingConfig> = fc.record({
  windowMillis: fc.oneof(fc.constantFrom(1000, 120_000), fc.integer({ min: 1, max: 20_000 })),
  buckets: fc.integer({ min: 1, max: 24 })
})

/** A sync: wait `gap` ms, then add `delta`. */
const stepsArb = fc.array(fc.record({ gap: fc.nat({ max: 5000 }), delta: countsArb }), { maxLength: 40 })

describe("adaptiveThrottleFleet", () => {
  it("pushable: never more than the delta nor the window, accepts never above requests, the delta itself when the window holds it", () => {
    fc.assert(
      fc.property(countsArb, countsArb, (delta, window) => {
        const p = Fleet.pushable(delta, window)
        assert.isAtMost(p.requests, delta.requests)
        assert.isAtMost(p.requests, window.requests)
        assert.isAtMost(p.accepts, delta.accepts)
        assert.isAtMost(p.accepts, window.accepts)
        assert.isAtMost(p.accepts, p.requests)
        assert.isAtLeast(p.accepts, 0)
        if (delta.requests <= window.requests && delta.accepts <= window.accepts) assert.deepStrictEqual(p, delta)
      })
    )
  })

  it("the ring's totals are the deltas added in the buckets still in the window", () => {
    fc.assert(
      fc.property(ringConfigArb, stepsArb, fc.nat({ max: 50_000 }), (config, steps, later) => {
        let ring = Fleet.emptyRing(config)
        let now = 1_000_000
        const added: Array<{ readonly epoch: number; readonly delta: Fleet.Counts }> = []
        for (const { delta, gap } of steps) {
          now += gap
          ring = Fleet.addToRing(ring, delta, now, config)
          added.push({ epoch: Fleet.epochOf(now, config), delta })
        }
        for (const at of [now, now + later]) {
          const epoch = Fleet.epochOf(at, config)
          const expected = added
            .filter((a) => a.epoch > epoch - config.buckets && a.epoch <= epoch)
            .reduce((sum, a) => Fleet.add(sum, a.delta), Fleet.empty)
          assert.deepStrictEqual(Fleet.ringTotals(ring, at, config), expected)
        }
      })
    )
  })

  it("the ring counts as the in-process window does: the same requests at the same times give the same totals", () => {
    fc.assert(
      fc.property(ringConfigArb, stepsArb, fc.nat({ max: 50_000 }), (config, steps, later) => {
        const windowConfig: engine.Config = { ...config, k: 2, minRequests: 0, maxRejectProbability: 1 }
        const window = engine.make(windowConfig)
        let ring = Fleet.emptyRing(config)
        let now = 1_000_000
        for (const { delta, gap } of steps) {
          now += gap
          ring = Fleet.addToRing(ring, delta, now, config)
          for (let i = 0; i < delta.requests; i++) engine.record(window, now, i < delta.accepts, windowConfig)
        }
        for (const at of [now, now + later]) {
          assert.deepStrictEqual(Fleet.ringTotals(ring, at, config), engine.counts(window, at, windowConfig))
        }
      })
    )
  })

  it("processes syncing through one ring: nothing counts twice, and after a round of syncs each sees every count", () => {
    // a window long enough that nothing leaves it: the fleet's counts are then exact sums
    const config: Fleet.RingConfig = { windowMillis: 1e12, buckets: 4 }
    const eventArb = fc.record({
      process: fc.nat({ max: 3 }),
      kind: fc.constantFrom("request", "accept", "sync"),
      gap: fc.nat({ max: 10 })
    })
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 80 }), (events) => {
        let ring = Fleet.emptyRing(config)
        let now = 0
        const processes = Array.from({ length: 4 }, () => ({ fleet: Fleet.empty, delta: Fleet.empty }))
        let total = Fleet.empty
        const sync = (p: { fleet: Fleet.Counts; delta: Fleet.Counts }) => {
          ring = Fleet.addToRing(ring, p.delta, now, config)
          p.fleet = Fleet.ringTotals(ring, now, config)
          p.delta = Fleet.empty
        }
        for (const e of events) {
          now += e.gap
          const p = processes[e.process]
          if (p === undefined) continue
          if (e.kind === "sync") {
            sync(p)
          } else {
            const one = { requests: 1, accepts: e.kind === "accept" ? 1 : 0 }
            p.delta = Fleet.add(p.delta, one)
            total = Fleet.add(total, one)
          }
          // what each process decides on never exceeds what happened, nor misses its own counts
          for (const q of processes) {
            const seen = Fleet.effective(q.fleet, q.delta)
            assert.isAtMost(seen.requests, total.requests)
            assert.isAtMost(seen.accepts, total.accepts)
            assert.isAtLeast(seen.requests, q.delta.requests)
          }
        }
        for (const p of processes) sync(p)
        for (const p of processes) sync(p)
        for (const p of processes) assert.deepStrictEqual(Fleet.effective(p.fleet, p.delta), total)
      })
    )
  })
})
