import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as budget from "../../src/internal/retryBudget.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const config = (overrides: Partial<budget.Config>): budget.Config => ({
  ratio: 0.2,
  minRetriesPerSecond: 0,
  windowMillis: 10_000,
  buckets: 10,
  ...overrides
})

/** The retries a window allows without any request. */
const floorOf = (c: budget.Config): number => (c.minRetriesPerSecond * c.windowMillis) / 1000

/** Retries until refused; returns how many were allowed. */
const drain = (s: budget.State, now: number, c: budget.Config): number => {
  let allowed = 0
  while (budget.tryRetry(s, now, c)) {
    allowed++
    if (allowed > 1_000_000) assert.fail("the budget never refuses")
  }
  return allowed
}

const configArb: fc.Arbitrary<budget.Config> = fc.record({
  ratio: fc.oneof(
    fc.constantFrom(0, 0.1, 0.2, 0.25, 0.5, 1, 2),
    fc.double({ min: 0, max: 3, noNaN: true, noDefaultInfinity: true })
  ),
  minRetriesPerSecond: fc.oneof(
    fc.constantFrom(0, 0, 0.1, 0.5, 1, 5),
    fc.double({ min: 0, max: 20, noNaN: true, noDefaultInfinity: true })
  ),
  windowMillis: fc.oneof(fc.constantFrom(1000, 10_000), fc.integer({ min: 1, max: 20_000 })),
  buckets: fc.integer({ min: 1, max: 20 })
})

/** One step of a trace: wait `gapPermille / 1000 * windowMillis` (rounded to ms), then act. */
interface Step {
  readonly gapPermille: number
  readonly requests: number
  readonly retryAttempts: number
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  gapPermille: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 1500 })),
  requests: fc.integer({ min: 0, max: 6 }),
  retryAttempts: fc.integer({ min: 0, max: 8 })
})

const gap = (step: Step, c: budget.Config): number => Math.round((step.gapPermille * c.windowMillis) / 1000)

const traceArb = fc.record({ config: configArb, steps: fc.array(stepArb, { maxLength: 60 }) })

/**
 * The reference model: event counts per bucket epoch, kept forever, no ring
 * and no expiry. The window at `now` is the last `buckets` epochs (bucket
 * width `windowMillis / buckets`).
 */
class Model {
  readonly config: budget.Config
  readonly epochs = new Map<number, { requests: number; retries: number }>()
  constructor(config: budget.Config) {
    this.config = config
  }
  epoch(at: number): number {
    return Math.floor((at * this.config.buckets) / this.config.windowMillis)
  }
  add(at: number, retry: boolean): void {
    const epoch = this.epoch(at)
    const counts = this.epochs.get(epoch) ?? { requests: 0, retries: 0 }
    if (retry) counts.retries++
    else counts.requests++
    this.epochs.set(epoch, counts)
  }
  /** Requests and retries with an epoch in [from, to]. */
  count(from: number, to: number): { requests: number; retries: number } {
    let requests = 0
    let retries = 0
    for (let epoch = Math.max(0, from); epoch <= to; epoch++) {
      const counts = this.epochs.get(epoch)
      if (counts === undefined) continue
      requests += counts.requests
      retries += counts.retries
    }
    return { requests, retries }
  }
  window(now: number): { requests: number; retries: number } {
    const epoch = this.epoch(now)
    return this.count(epoch - this.config.buckets + 1, epoch)
  }
}

// ---------------------------------------------------------------------------
// examples
// ---------------------------------------------------------------------------

describe("retryBudget: examples", () => {
  it("allows ratio * requests retries: 20% of 10 requests is 2", () => {
    const c = config({})
    const s = budget.make(c)
    for (let i = 0; i < 10; i++) budget.recordRequest(s, 100, c)
    assert.isTrue(budget.tryRetry(s, 100, c))
    assert.isTrue(budget.tryRetry(s, 200, c))
    assert.isFalse(budget.tryRetry(s, 300, c))
    assert.deepStrictEqual(budget.usage(s, 300, c), { requests: 10, retries: 2, allowance: 2 })
  })

  it("needs a whole retry's worth: 4 requests at 20% allow none", () => {
    const c = config({})
    const s = budget.make(c)
    for (let i = 0; i < 4; i++) budget.recordRequest(s, 0, c)
    assert.isFalse(budget.tryRetry(s, 0, c))
    budget.recordRequest(s, 0, c)
    assert.isTrue(budget.tryRetry(s, 0, c))
  })

  it("the floor allows minRetriesPerSecond * window seconds retries without any request", () => {
    const c = config({ minRetriesPerSecond: 0.5 })
    const s = budget.make(c)
    assert.strictEqual(drain(s, 0, c), 5)
    for (let i = 0; i < 10; i++) budget.recordRequest(s, 0, c)
    assert.strictEqual(drain(s, 0, c), 2)
    assert.deepStrictEqual(budget.usage(s, 0, c), { requests: 10, retries: 7, allowance: 7 })
  })

  it("a refused retry records nothing", () => {
    const c = config({})
    const s = budget.make(c)
    budget.recordRequest(s, 0, c)
    assert.isFalse(budget.tryRetry(s, 0, c))
    assert.isFalse(budget.tryRetry(s, 0, c))
    assert.deepStrictEqual(budget.usage(s, 0, c), { requests: 1, retries: 0, allowance: 0.2 })
  })

  it("ratio 0 and no floor: never retries", () => {
    const c = config({ ratio: 0 })
    const s = budget.make(c)
    for (let i = 0; i < 100; i++) budget.recordRequest(s, i, c)
    assert.isFalse(budget.tryRetry(s, 100, c))
  })

  it("buckets expire one at a time: a request counts until its bucket is `buckets` old", () => {
    const c = config({ ratio: 1 })
    const s = budget.make(c)
    budget.recordRequest(s, 500, c) // bucket [0, 1000)
    budget.recordRequest(s, 1500, c) // bucket [1000, 2000)
    assert.strictEqual(budget.usage(s, 9999, c).requests, 2)
    assert.strictEqual(budget.usage(s, 10_000, c).requests, 1)
    assert.strictEqual(budget.usage(s, 10_999, c).requests, 1)
    assert.strictEqual(budget.usage(s, 11_000, c).requests, 0)
    assert.isTrue(budget.isIdle(s, 11_000, c))
  })

  it("retries expire with their bucket, freeing the budget", () => {
    const c = config({ ratio: 1 })
    const s = budget.make(c)
    budget.recordRequest(s, 0, c)
    assert.isTrue(budget.tryRetry(s, 0, c))
    budget.recordRequest(s, 5000, c)
    assert.isTrue(budget.tryRetry(s, 5000, c))
    assert.isFalse(budget.tryRetry(s, 5000, c))
    // the first bucket's request and retry leave together
    assert.deepStrictEqual(budget.usage(s, 10_000, c), { requests: 1, retries: 1, allowance: 1 })
    budget.recordRequest(s, 10_000, c)
    assert.isTrue(budget.tryRetry(s, 10_000, c))
  })

  it("after a full window of silence the budget is back to its floor and idle", () => {
    const c = config({ minRetriesPerSecond: 0.3 })
    const s = budget.make(c)
    assert.isTrue(budget.isIdle(s, 0, c))
    for (let i = 0; i < 50; i++) budget.recordRequest(s, 1234, c)
    assert.strictEqual(drain(s, 1234, c), 13)
    assert.isFalse(budget.isIdle(s, 1234 + 9000 - 1, c))
    assert.isTrue(budget.isIdle(s, 1234 + 10_000, c))
    assert.deepStrictEqual(budget.usage(s, 1234 + 10_000, c), { requests: 0, retries: 0, allowance: 3 })
    assert.strictEqual(drain(s, 1234 + 10_000, c), 3)
  })

  it("a window can spend what requests of the window before it paid for", () => {
    // 2 buckets of 1000 ms, 50%: the first request pays 0.5, the second 0.5 more, so one retry at 1000;
    // the window [1000, 3000) then holds 1 request and 1 retry: more than 50% of its own requests
    const c = config({ ratio: 0.5, windowMillis: 2000, buckets: 2 })
    const s = budget.make(c)
    budget.recordRequest(s, 0, c)
    assert.isFalse(budget.tryRetry(s, 0, c))
    budget.recordRequest(s, 1000, c)
    assert.isTrue(budget.tryRetry(s, 1000, c))
    assert.deepStrictEqual(budget.usage(s, 2000, c), { requests: 1, retries: 1, allowance: 0.5 })
    assert.isFalse(budget.tryRetry(s, 2000, c))
  })

  it("time never runs backwards: an earlier now is read as the latest one", () => {
    const c = config({ ratio: 1 })
    const s = budget.make(c)
    budget.recordRequest(s, 20_000, c)
    assert.deepStrictEqual(budget.usage(s, 0, c), { requests: 1, retries: 0, allowance: 1 })
    assert.isTrue(budget.tryRetry(s, 5, c))
    assert.deepStrictEqual(budget.usage(s, Number.NaN, c), { requests: 1, retries: 1, allowance: 1 })
    assert.isFalse(budget.isIdle(s, -1, c))
    assert.isTrue(budget.isIdle(s, 30_000, c))
  })

  it("one bucket: the whole window expires at once", () => {
    const c = config({ ratio: 1, buckets: 1 })
    const s = budget.make(c)
    budget.recordRequest(s, 9999, c)
    assert.strictEqual(budget.usage(s, 9999, c).requests, 1)
    assert.strictEqual(budget.usage(s, 10_000, c).requests, 0)
  })
})

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

describe("retryBudget: properties", () => {
  it("with every call failing, each window the budget decides on holds at most requests * (1 + ratio) + floor attempts", () => {
    fc.assert(
      fc.property(traceArb, ({ config: c, steps }) => {
        const s = budget.make(c)
        const model = new Model(c)
        const floor = floorOf(c)
        let now = 0
        for (const step of steps) {
          now += gap(step, c)
          for (let k = 0; k < step.requests; k++) {
            budget.recordRequest(s, now, c)
            model.add(now, false)
            // 100% downstream failure: retry until refused
            for (;;) {
              const before = model.window(now)
              const allowed = budget.tryRetry(s, now, c)
              if (!allowed) {
                // refused only once the allowance is spent
                assert.isAbove(before.retries + 1, c.ratio * before.requests + floor)
                break
              }
              model.add(now, true)
              const { requests, retries } = model.window(now)
              // the allowed retry fits: requests + retries <= requests * (1 + ratio) + floor, exactly
              assert.isAtMost(requests + retries, requests + (c.ratio * requests + floor))
            }
          }
        }
      }),
      { numRuns: 300 }
    )
  })

  it("any window's retries are paid for by the requests of that window and the one before it", () => {
    fc.assert(
      fc.property(traceArb, ({ config: c, steps }) => {
        const s = budget.make(c)
        const model = new Model(c)
        const floor = floorOf(c)
        let now = 0
        for (const step of steps) {
          now += gap(step, c)
          for (let k = 0; k < step.requests; k++) {
            budget.recordRequest(s, now, c)
            model.add(now, false)
          }
          for (let k = 0; k < step.retryAttempts; k++) {
            if (budget.tryRetry(s, now, c)) model.add(now, true)
          }
        }
        const b = c.buckets
        for (let last = 0; last <= model.epoch(now); last++) {
          const { retries } = model.count(last - b + 1, last)
          const { requests } = model.count(last - 2 * b + 2, last)
          assert.isAtMost(retries, c.ratio * requests + floor)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("usage matches the reference model at any time, and a retry is allowed exactly when it fits", () => {
    fc.assert(
      fc.property(traceArb, ({ config: c, steps }) => {
        const s = budget.make(c)
        const model = new Model(c)
        const floor = floorOf(c)
        let now = 0
        for (const step of steps) {
          now += gap(step, c)
          const seen = budget.usage(s, now, c)
          const expected = model.window(now)
          assert.deepStrictEqual(seen, { ...expected, allowance: c.ratio * expected.requests + floor })
          assert.strictEqual(budget.isIdle(s, now, c), expected.requests === 0 && expected.retries === 0)
          for (let k = 0; k < step.requests; k++) {
            budget.recordRequest(s, now, c)
            model.add(now, false)
          }
          for (let k = 0; k < step.retryAttempts; k++) {
            const { requests, retries } = model.window(now)
            const allowed = budget.tryRetry(s, now, c)
            assert.strictEqual(allowed, retries + 1 <= c.ratio * requests + floor)
            if (allowed) model.add(now, true)
          }
        }
      }),
      { numRuns: 300 }
    )
  })

  it("at fractional times too, everything has expired a window after the last event", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        fc.double({ min: 0.001, max: 1e5, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        (t, windowMillis, buckets) => {
          const c = config({ ratio: 1, windowMillis, buckets })
          const s = budget.make(c)
          budget.recordRequest(s, t, c)
          assert.isFalse(budget.isIdle(s, t, c))
          // the first time at least windowMillis after t
          let now = t + windowMillis
          while (now - t < windowMillis) now += Math.max(Number.MIN_VALUE, now * Number.EPSILON)
          assert.isTrue(budget.isIdle(s, now, c))
        }
      )
    )
  })

  it("old buckets expire: a window of silence brings the budget back to its floor", () => {
    fc.assert(
      fc.property(traceArb, ({ config: c, steps }) => {
        const s = budget.make(c)
        let now = 0
        let lastEvent = -1
        for (const step of steps) {
          now += gap(step, c)
          for (let k = 0; k < step.requests; k++) {
            budget.recordRequest(s, now, c)
            lastEvent = now
          }
          for (let k = 0; k < step.retryAttempts; k++) if (budget.tryRetry(s, now, c)) lastEvent = now
        }
        // (the budget's clock is at `now`, so only when that is not later)
        if (lastEvent >= 0 && now <= lastEvent + c.windowMillis - c.windowMillis / c.buckets - 1) {
          // an event counts for at least windowMillis - windowMillis / buckets
          const stillCounted = lastEvent + Math.max(0, Math.floor(c.windowMillis - c.windowMillis / c.buckets) - 1)
          assert.isFalse(budget.isIdle(s, stillCounted, c))
        }
        const quiet = Math.max(now, lastEvent + c.windowMillis)
        assert.isTrue(budget.isIdle(s, quiet, c))
        const floor = floorOf(c)
        assert.deepStrictEqual(budget.usage(s, quiet, c), { requests: 0, retries: 0, allowance: floor })
        // and exactly the floor's whole retries are available again
        let expected = 0
        while (expected + 1 <= floor) expected++
        assert.strictEqual(drain(s, quiet, c), expected)
      }),
      { numRuns: 300 }
    )
  })
})
