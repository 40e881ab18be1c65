import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/adaptiveThrottle.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const config = (overrides: Partial<engine.Config>): engine.Config => ({
  windowMillis: 120_000,
  buckets: 12,
  k: 2,
  minRequests: 0,
  maxRejectProbability: 1,
  ...overrides
})

/** The book's formula, written out again: max(0, (requests - k * accepts) / (requests + 1)). */
const formula = (requests: number, accepts: number, c: engine.Config): number => {
  if (requests < c.minRequests || requests === 0) return 0
  return Math.min(c.maxRejectProbability, Math.max(0, (requests - c.k * accepts) / (requests + 1)))
}

const configArb: fc.Arbitrary<engine.Config> = fc.record({
  windowMillis: fc.oneof(fc.constantFrom(1000, 10_000, 120_000), fc.integer({ min: 1, max: 20_000 })),
  buckets: fc.integer({ min: 1, max: 24 }),
  k: fc.oneof(fc.constantFrom(1, 1.1, 1.5, 2, 3), fc.double({ min: 1, max: 5, noNaN: true, noDefaultInfinity: true })),
  minRequests: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 })),
  maxRejectProbability: fc.oneof(
    fc.constantFrom(0, 0.5, 0.9, 1),
    fc.double({ min: 0, max: 1, noNaN: true, noDefaultInfinity: true })
  )
})

/** One event of a trace: wait `gapPermille / 1000 * windowMillis` (rounded to ms), then record a request. */
interface Step {
  readonly gapPermille: number
  readonly accepted: boolean
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  gapPermille: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 1500 })),
  accepted: fc.boolean()
})

const traceArb = fc.record({ config: configArb, start: fc.integer({ min: 0, max: 1e9 }), steps: fc.array(stepArb) })

const gap = (step: Step, c: engine.Config): number => Math.round((step.gapPermille * c.windowMillis) / 1000)

/**
 * The reference model: every event kept forever with its time, no ring, no
 * expiry. The window at `now` is the events whose bucket epoch
 * (`floor(t * buckets / windowMillis)`) is one of the last `buckets` epochs.
 */
class Model {
  readonly config: engine.Config
  readonly events: Array<{ readonly at: number; readonly accepted: boolean }> = []
  constructor(config: engine.Config) {
    this.config = config
  }
  epoch(at: number): number {
    return Math.floor((at * this.config.buckets) / this.config.windowMillis)
  }
  window(now: number): { requests: number; accepts: number } {
    const newest = this.epoch(now)
    let requests = 0
    let accepts = 0
    for (const event of this.events) {
      if (this.epoch(event.at) > newest - this.config.buckets) {
        requests++
        if (event.accepted) accepts++
      }
    }
    return { requests, accepts }
  }
}

// ---------------------------------------------------------------------------
// examples
// ---------------------------------------------------------------------------

describe("adaptiveThrottle: examples", () => {
  it("a backend accepting everything is never throttled", () => {
    const c = config({})
    const w = engine.make(c)
    for (let i = 0; i < 1000; i++) engine.record(w, i, true, c)
    assert.strictEqual(engine.rejectProbability(w, 1000, c), 0)
  })

  it("the book's formula: 10 requests, 2 accepts, K 2 -> (10 - 4) / 11", () => {
    const c = config({})
    const w = engine.make(c)
    for (let i = 0; i < 10; i++) engine.record(w, 0, i < 2, c)
    assert.closeTo(engine.rejectProbability(w, 0, c), 6 / 11, 1e-12)
    assert.deepStrictEqual(engine.counts(w, 0, c), { requests: 10, accepts: 2 })
  })

  it("zero while the backend accepts one request in K: 10 requests, 5 accepts", () => {
    const c = config({})
    const w = engine.make(c)
    for (let i = 0; i < 10; i++) engine.record(w, 0, i % 2 === 0, c)
    assert.strictEqual(engine.rejectProbability(w, 0, c), 0)
    engine.record(w, 0, false, c)
    assert.closeTo(engine.rejectProbability(w, 0, c), 1 / 12, 1e-12)
  })

  it("maxRejectProbability caps it; minRequests holds it at 0 below the threshold", () => {
    const capped = config({ maxRejectProbability: 0.9 })
    const w = engine.make(capped)
    for (let i = 0; i < 100; i++) engine.record(w, 0, false, capped)
    assert.strictEqual(engine.rejectProbability(w, 0, capped), 0.9)
    const guarded = config({ minRequests: 5 })
    const v = engine.make(guarded)
    for (let i = 0; i < 4; i++) engine.record(v, 0, false, guarded)
    assert.strictEqual(engine.rejectProbability(v, 0, guarded), 0)
    engine.record(v, 0, false, guarded)
    assert.closeTo(engine.rejectProbability(v, 0, guarded), 5 / 6, 1e-12)
  })

  it("counts leave the window a bucket at a time", () => {
    // 12 buckets of 10 s
    const c = config({})
    const w = engine.make(c)
    engine.record(w, 5_000, false, c) // bucket [0, 10 s)
    engine.record(w, 15_000, false, c) // bucket [10 s, 20 s)
    assert.strictEqual(engine.counts(w, 119_999, c).requests, 2)
    assert.strictEqual(engine.counts(w, 120_000, c).requests, 1)
    assert.strictEqual(engine.counts(w, 129_999, c).requests, 1)
    assert.strictEqual(engine.counts(w, 130_000, c).requests, 0)
    assert.isTrue(engine.isIdle(w, 130_000, c))
    assert.strictEqual(engine.rejectProbability(w, 130_000, c), 0)
  })

  it("time never runs backwards: an earlier now is read as the latest one", () => {
    const c = config({})
    const w = engine.make(c)
    engine.record(w, 200_000, false, c)
    engine.record(w, 0, false, c) // read as 200 s
    assert.strictEqual(engine.counts(w, 310_000, c).requests, 2)
    assert.strictEqual(engine.counts(w, 320_000, c).requests, 0)
  })
})

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

describe("adaptiveThrottle: properties", () => {
  it("the window's counts and probability equal the formula over a naive recount of the last window", () => {
    fc.assert(
      fc.property(traceArb, ({ config: c, start, steps }) => {
        const w = engine.make(c)
        const model = new Model(c)
        let now = start
        for (const step of steps) {
          now += gap(step, c)
          // the probability the call would be decided with, before it is recorded
          const expected = model.window(now)
          assert.deepStrictEqual(engine.counts(w, now, c), expected)
          assert.strictEqual(engine.rejectProbability(w, now, c), formula(expected.requests, expected.accepts, c))
          engine.record(w, now, step.accepted, c)
          model.events.push({ at: now, accepted: step.accepted })
        }
        const later = now + Math.round(c.windowMillis / 3)
        assert.deepStrictEqual(engine.counts(w, later, c), model.window(later))
      })
    )
  })

  it("the probability stays in [0, maxRejectProbability], and accepts in [0, requests]", () => {
    fc.assert(
      fc.property(traceArb, ({ config: c, start, steps }) => {
        const w = engine.make(c)
        let now = start
        for (const step of steps) {
          now += gap(step, c)
          engine.record(w, now, step.accepted, c)
          const p = engine.rejectProbability(w, now, c)
          assert.isAtLeast(p, 0)
          assert.isAtMost(p, c.maxRejectProbability)
          assert.isBelow(p, 1)
          assert.isAtLeast(w.accepts, 0)
          assert.isAtMost(w.accepts, w.requests)
        }
      })
    )
  })

  it("zero while accepts * K >= requests", () => {
    fc.assert(
      fc.property(configArb, fc.array(fc.boolean(), { maxLength: 200 }), (c, outcomes) => {
        const w = engine.make(c)
        for (const accepted of outcomes) {
          engine.record(w, 0, accepted, c)
          const { accepts, requests } = engine.counts(w, 0, c)
          if (accepts * c.k >= requests) assert.strictEqual(engine.rejectProbability(w, 0, c), 0)
          else if (requests >= c.minRequests && c.maxRejectProbability > 0) {
            assert.isAbove(engine.rejectProbability(w, 0, c), 0)
          }
        }
      })
    )
  })

  it("requests older than the window do not matter: any history before it gives the same decisions", () => {
    fc.assert(
      fc.property(
        traceArb,
        fc.array(stepArb, { maxLength: 30 }),
        fc.array(stepArb, { maxLength: 30 }),
        ({ config: c, start, steps }, historyA, historyB) => {
          const a = engine.make(c)
          const b = engine.make(c)
          // two different histories that end before `start` ...
          const replay = (w: engine.Window, history: ReadonlyArray<Step>) => {
            let t = 0
            for (const step of history) {
              t += gap(step, c)
              engine.record(w, Math.min(start, t), step.accepted, c)
            }
          }
          replay(a, historyA)
          replay(b, historyB)
          // ... then a whole window later the same trace: every decision is the same
          let now = start + c.windowMillis
          for (const step of steps) {
            now += gap(step, c)
            assert.strictEqual(engine.rejectProbability(a, now, c), engine.rejectProbability(b, now, c))
            engine.record(a, now, step.accepted, c)
            engine.record(b, now, step.accepted, c)
          }
        }
      )
    )
  })
})

// ---------------------------------------------------------------------------
// reading the clock less
// ---------------------------------------------------------------------------

describe("adaptiveThrottle: mayReject", () => {
  it("a window of accepts only cannot reject; one refusal and it may", () => {
    const c = config({ k: 1 })
    const w = engine.make(c)
    assert.isFalse(engine.mayReject(w))
    for (let i = 0; i < 10; i++) engine.record(w, i, true, c)
    assert.isFalse(engine.mayReject(w))
    engine.record(w, 10, false, c)
    assert.isTrue(engine.mayReject(w))
    assert.isAbove(engine.rejectProbability(w, 10, c), 0)
  })

  it("while mayReject is false the probability is 0 now and at every later time", () => {
    fc.assert(
      fc.property(
        traceArb,
        fc.array(fc.integer({ min: 0, max: 3_000 }), { maxLength: 10 }),
        ({ config: c, start, steps }, later) => {
          const w = engine.make(c)
          let now = start
          for (const step of steps) {
            now += gap(step, c)
            engine.record(w, now, step.accepted, c)
            if (engine.mayReject(w)) continue
            // reading it at later times (expiring buckets) keeps it at 0
            let t = now
            for (const permille of later) {
              t += Math.round((permille * c.windowMillis) / 1000)
              assert.strictEqual(engine.rejectProbability(w, t, c), 0)
            }
          }
        }
      )
    )
  })
})

describe("adaptiveThrottle: epochEnd", () => {
  it("the first millisecond of the next bucket: 12 buckets of 10 s", () => {
    const c = config({})
    assert.strictEqual(engine.epochEnd(0, c), 10_000)
    assert.strictEqual(engine.epochEnd(9_999, c), 10_000)
    assert.strictEqual(engine.epochEnd(10_000, c), 20_000)
    assert.strictEqual(engine.epochEnd(1_764_331_234_567, c), 1_764_331_240_000)
  })

  it("a window not a multiple of its buckets: 1000 ms in 3 buckets ends them at 334, 667, 1000", () => {
    const c = config({ windowMillis: 1000, buckets: 3 })
    assert.deepStrictEqual(
      [0, 333, 334, 666, 667, 999].map((t) => engine.epochEnd(t, c)),
      [334, 334, 667, 667, 1000, 1000]
    )
  })

  it("nothing to reuse for a time it cannot settle", () => {
    const c = config({})
    assert.isNaN(engine.epochEnd(Number.NaN, c))
    assert.strictEqual(engine.epochEnd(Number.POSITIVE_INFINITY, c), Number.POSITIVE_INFINITY)
  })

  it("every time from now up to epochEnd (excluded) is in now's bucket, and epochEnd is in a later one", () => {
    fc.assert(
      fc.property(
        configArb,
        fc.oneof(fc.integer({ min: 0, max: 1e9 }), fc.integer({ min: 1.7e12, max: 1.9e12 })),
        (c, now) => {
          const end = engine.epochEnd(now, c)
          const epoch = engine.epochOf(now, c)
          assert.isAbove(end, now)
          assert.isTrue(Number.isInteger(end))
          assert.isAbove(engine.epochOf(end, c), epoch)
          // epochs never decrease with time, so the whole range [now, end - 1] is in `epoch`
          assert.strictEqual(engine.epochOf(end - 1, c), epoch)
        }
      )
    )
  })
})
