import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as backoff from "../../src/internal/backoff.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const KINDS: ReadonlyArray<backoff.Kind> = ["exponential", "linear", "constant", "fibonacci"]
const JITTERS: ReadonlyArray<backoff.Jitter> = ["none", "full", "equal", "decorrelated"]

const config = (overrides: Partial<backoff.Config>): backoff.Config => ({
  kind: "exponential",
  baseMillis: 100,
  capMillis: 1000,
  factor: 2,
  jitter: "none",
  ...overrides
})

/** The delays for retries 1..n with no jitter. */
const schedule = (c: backoff.Config, n: number): ReadonlyArray<number> =>
  Array.from({ length: n }, (_, i) => backoff.delay(c, i + 1, c.baseMillis, 0.5))

/** A valid configuration: base > 0 (constant may be 0), cap >= base (sometimes Infinity), factor >= 1. */
const configArb = (jitters: ReadonlyArray<backoff.Jitter> = JITTERS): fc.Arbitrary<backoff.Config> =>
  fc
    .record({
      kind: fc.constantFrom(...KINDS),
      base: fc.oneof(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0.001, max: 1e6, noNaN: true, noDefaultInfinity: true })
      ),
      zeroBase: fc.boolean(),
      extra: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.double({ min: 0, max: 1e12, noNaN: true, noDefaultInfinity: true }),
        fc.constant(Infinity)
      ),
      factor: fc.oneof(fc.constantFrom(1, 1.5, 2, 3), fc.double({ min: 1, max: 10, noNaN: true })),
      jitter: fc.constantFrom(...jitters)
    })
    .map(({ base, extra, factor, jitter, kind, zeroBase }) => {
      const baseMillis = kind === "constant" && zeroBase ? 0 : base
      return { kind, baseMillis, capMillis: baseMillis + extra, factor, jitter }
    })

const retryArb = fc.oneof(
  fc.integer({ min: 1, max: 60 }),
  fc.integer({ min: 1, max: 5000 }),
  fc.constantFrom(1e6, 2 ** 31, Number.MAX_SAFE_INTEGER, 1e300, Infinity)
)
const previousArb = fc.oneof(
  fc.double({ min: 0, max: 1e7, noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: 0, max: 100_000 })
)
const randomArb = fc.oneof(
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  fc.constantFrom(0, 0.5, 1 - 2 ** -53)
)

// ---------------------------------------------------------------------------
// examples
// ---------------------------------------------------------------------------

describe("backoff: examples (base 100, cap 1000, factor 2)", () => {
  it("exponential doubles from base and stops at the cap", () => {
    assert.deepStrictEqual(schedule(config({ kind: "exponential" }), 6), [100, 200, 400, 800, 1000, 1000])
    assert.deepStrictEqual(
      [1, 2, 3, 4, 5, 6].map((n) => backoff.rawDelay(config({ kind: "exponential" }), n)),
      [100, 200, 400, 800, 1600, 3200]
    )
  })

  it("the exponential factor is configurable", () => {
    assert.deepStrictEqual(schedule(config({ kind: "exponential", factor: 3 }), 4), [100, 300, 900, 1000])
    assert.deepStrictEqual(schedule(config({ kind: "exponential", factor: 1 }), 3), [100, 100, 100])
  })

  it("fibonacci: 100, 100, 200, 300, 500, 800, then the cap", () => {
    assert.deepStrictEqual(schedule(config({ kind: "fibonacci" }), 7), [100, 100, 200, 300, 500, 800, 1000])
  })

  it("linear: 100, 200, 300, ... then the cap", () => {
    assert.deepStrictEqual(schedule(config({ kind: "linear" }), 3), [100, 200, 300])
    assert.strictEqual(backoff.delay(config({ kind: "linear" }), 11, 100, 0), 1000)
  })

  it("constant: base every time, 0 allowed", () => {
    assert.deepStrictEqual(schedule(config({ kind: "constant" }), 3), [100, 100, 100])
    assert.deepStrictEqual(schedule(config({ kind: "constant", baseMillis: 0 }), 3), [0, 0, 0])
  })

  it("full jitter: random * temp", () => {
    const c = config({ jitter: "full" })
    assert.strictEqual(backoff.delay(c, 1, 100, 0), 0)
    assert.strictEqual(backoff.delay(c, 3, 100, 0.5), 200)
    assert.strictEqual(backoff.delay(c, 10, 100, 0.25), 250)
    assert.deepStrictEqual(backoff.bounds(c, 3, 100), [0, 400])
  })

  it("equal jitter: temp / 2 + random * temp / 2", () => {
    const c = config({ jitter: "equal" })
    assert.strictEqual(backoff.delay(c, 1, 100, 0), 50)
    assert.strictEqual(backoff.delay(c, 3, 100, 0.5), 300)
    assert.strictEqual(backoff.delay(c, 10, 100, 0.5), 750)
    assert.deepStrictEqual(backoff.bounds(c, 3, 100), [200, 400])
  })

  it("decorrelated jitter: min(cap, random_between(base, previous * 3)), whatever the kind", () => {
    for (const kind of KINDS) {
      const c = config({ kind, jitter: "decorrelated" })
      assert.strictEqual(backoff.delay(c, 1, 100, 0), 100)
      assert.strictEqual(backoff.delay(c, 1, 100, 0.5), 200)
      assert.strictEqual(backoff.delay(c, 7, 200, 0.25), 225)
      assert.strictEqual(backoff.delay(c, 2, 900, 0.5), 1000)
      assert.deepStrictEqual(backoff.bounds(c, 1, 100), [100, 300])
      assert.deepStrictEqual(backoff.bounds(c, 5, 500), [100, 1000])
    }
  })

  it("decorrelated: a previous delay below base / 3 gives an empty range, so exactly base", () => {
    const c = config({ jitter: "decorrelated" })
    assert.deepStrictEqual(backoff.bounds(c, 1, 10), [100, 100])
    assert.strictEqual(backoff.delay(c, 1, 10, 0.99), 100)
    assert.strictEqual(backoff.delay(c, 1, 0, 0.5), 100)
    assert.strictEqual(backoff.delay(c, 1, -5, 0.5), 100)
  })

  it("huge retry numbers give the cap, never NaN or Infinity", () => {
    for (const kind of KINDS) {
      for (const retry of [1e6, Number.MAX_SAFE_INTEGER, 1e300, Infinity]) {
        const c = config({ kind })
        assert.strictEqual(backoff.delay(c, retry, 100, 0.5), kind === "constant" ? 100 : 1000)
        for (const jitter of JITTERS) {
          const d = backoff.delay({ ...c, jitter }, retry, 1e300, 0.5)
          assert.isTrue(Number.isFinite(d))
          assert.isAtMost(d, 1000)
        }
      }
    }
  })

  it("the uncapped raw delay saturates at Infinity, never NaN", () => {
    assert.strictEqual(backoff.rawDelay(config({ kind: "exponential" }), 1e6), Infinity)
    assert.strictEqual(backoff.rawDelay(config({ kind: "fibonacci" }), 1e6), Infinity)
    assert.strictEqual(backoff.rawDelay(config({ kind: "linear" }), Infinity), Infinity)
    assert.strictEqual(backoff.rawDelay(config({ kind: "exponential", factor: 1 }), Infinity), 100)
    assert.strictEqual(backoff.rawDelay(config({ kind: "constant", baseMillis: 0 }), Infinity), 0)
    assert.strictEqual(backoff.rawDelay(config({ kind: "linear", baseMillis: 0 }), Infinity), 0)
  })

  it("with an infinite cap, the delay is Infinity only once the raw delay overflows", () => {
    const c = config({ capMillis: Infinity })
    assert.strictEqual(backoff.delay(c, 11, 100, 0), 102_400)
    assert.strictEqual(backoff.delay(c, 2000, 100, 0), Infinity)
    assert.strictEqual(backoff.delay({ ...c, jitter: "full" }, 2000, 100, 0), 0)
    assert.strictEqual(backoff.delay({ ...c, jitter: "full" }, 2000, 100, 0.5), Infinity)
    assert.strictEqual(backoff.delay({ ...c, jitter: "equal" }, 2000, 100, 0), Infinity)
  })

  it("reads out-of-range arguments as the nearest valid value", () => {
    const c = config({ kind: "linear" })
    assert.strictEqual(backoff.rawDelay(c, 0), 100)
    assert.strictEqual(backoff.rawDelay(c, -3), 100)
    assert.strictEqual(backoff.rawDelay(c, Number.NaN), 100)
    assert.strictEqual(backoff.rawDelay(c, 2.9), 200)
    assert.strictEqual(backoff.delay({ ...c, jitter: "full" }, 1, 100, Number.NaN), 0)
    assert.strictEqual(backoff.delay({ ...c, jitter: "full" }, 1, 100, 7), 100)
    assert.strictEqual(backoff.delay({ ...c, jitter: "decorrelated" }, 1, Number.NaN, 0.5), 100)
  })
})

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

describe("backoff: properties", () => {
  it("every delay lies within its bounds, and the bounds within [0, cap]; never NaN", () => {
    fc.assert(
      fc.property(configArb(), retryArb, previousArb, randomArb, (c, retry, previous, random) => {
        const [lo, hi] = backoff.bounds(c, retry, previous)
        const d = backoff.delay(c, retry, previous, random)
        assert.isFalse(Number.isNaN(d))
        assert.isAtLeast(lo, 0)
        assert.isAtMost(lo, hi)
        assert.isAtMost(hi, c.capMillis)
        assert.isAtLeast(d, lo)
        assert.isAtMost(d, hi)
        // Infinity only with an infinite cap
        if (c.capMillis < Infinity) assert.isTrue(Number.isFinite(d))
      }),
      { numRuns: 2000 }
    )
  })

  it("the bounds are the AWS ones: none [temp, temp], full [0, temp], equal [temp/2, temp]", () => {
    fc.assert(
      fc.property(configArb(["none", "full", "equal"]), retryArb, previousArb, (c, retry, previous) => {
        const temp = Math.min(c.capMillis, backoff.rawDelay(c, retry))
        const [lo, hi] = backoff.bounds(c, retry, previous)
        assert.strictEqual(hi, temp)
        assert.strictEqual(lo, c.jitter === "none" ? temp : c.jitter === "full" ? 0 : temp / 2)
        // the extremes are reached at random = 0 (and approached as random -> 1)
        assert.strictEqual(backoff.delay(c, retry, previous, 0), lo)
      })
    )
  })

  it("decorrelated stays within [base, min(cap, max(base, previous * 3))], whatever the kind", () => {
    fc.assert(
      fc.property(configArb(["decorrelated"]), retryArb, previousArb, randomArb, (c, retry, previous, random) => {
        const d = backoff.delay(c, retry, previous, random)
        const hi = Math.min(c.capMillis, Math.max(c.baseMillis, previous * 3))
        assert.deepStrictEqual(backoff.bounds(c, retry, previous), [c.baseMillis, hi])
        assert.isAtLeast(d, c.baseMillis)
        assert.isAtMost(d, hi)
        if (previous * 3 <= c.baseMillis) assert.strictEqual(d, c.baseMillis)
        // the retry number and the kind play no part
        for (const kind of KINDS) assert.strictEqual(backoff.delay({ ...c, kind }, 1, previous, random), d)
      })
    )
  })

  it("a decorrelated chain fed its own delays stays within [base, cap] and within 3x of the last", () => {
    fc.assert(
      fc.property(configArb(["decorrelated"]), fc.array(randomArb, { minLength: 1, maxLength: 50 }), (c, randoms) => {
        let previous = c.baseMillis
        randoms.forEach((random, i) => {
          const d = backoff.delay(c, i + 1, previous, random)
          assert.isAtLeast(d, c.baseMillis)
          assert.isAtMost(d, c.capMillis)
          assert.isAtMost(d, Math.max(c.baseMillis, previous * 3))
          previous = d
        })
      })
    )
  })

  it("none equals the raw delay capped, and is non-decreasing in the retry number", () => {
    fc.assert(
      fc.property(configArb(["none"]), fc.integer({ min: 1, max: 3000 }), randomArb, (c, retry, random) => {
        const d = backoff.delay(c, retry, c.baseMillis, random)
        assert.strictEqual(d, Math.min(c.capMillis, backoff.rawDelay(c, retry)))
        assert.isAtMost(d, backoff.delay(c, retry + 1, c.baseMillis, random))
        assert.isAtMost(backoff.rawDelay(c, retry), backoff.rawDelay(c, retry + 1))
      }),
      { numRuns: 2000 }
    )
  })

  it("the first retry waits base, whatever the kind", () => {
    fc.assert(
      fc.property(configArb(["none"]), (c) => {
        assert.strictEqual(backoff.rawDelay(c, 1), c.baseMillis)
        assert.strictEqual(backoff.delay(c, 1, c.baseMillis, 0), Math.min(c.capMillis, c.baseMillis))
      })
    )
  })

  it("full jitter averages temp / 2 over evenly spread randoms", () => {
    const n = 1000
    fc.assert(
      fc.property(configArb(["full"]), fc.integer({ min: 1, max: 80 }), (c, retry) => {
        const temp = Math.min(c.capMillis, backoff.rawDelay(c, retry))
        fc.pre(Number.isFinite(temp))
        let sum = 0
        for (let i = 0; i < n; i++) sum += backoff.delay(c, retry, c.baseMillis, i / n)
        // exactly temp * (n - 1) / (2n) for randoms i / n, i = 0..n-1
        assert.closeTo(sum / n, temp / 2, temp / (2 * n) + temp * 1e-12)
      })
    )
  })

  it("equal jitter never goes below temp / 2 and averages 3 temp / 4", () => {
    const n = 1000
    fc.assert(
      fc.property(configArb(["equal"]), fc.integer({ min: 1, max: 80 }), (c, retry) => {
        const temp = Math.min(c.capMillis, backoff.rawDelay(c, retry))
        fc.pre(Number.isFinite(temp))
        let sum = 0
        for (let i = 0; i < n; i++) {
          const d = backoff.delay(c, retry, c.baseMillis, i / n)
          assert.isAtLeast(d, temp / 2)
          assert.isAtMost(d, temp)
          sum += d
        }
        assert.closeTo(sum / n, (3 * temp) / 4, temp / (4 * n) + temp * 1e-12)
      })
    )
  })

  it("jittered delays grow with random", () => {
    fc.assert(
      fc.property(configArb(), retryArb, previousArb, randomArb, randomArb, (c, retry, previous, r1, r2) => {
        const [a, b] = r1 <= r2 ? [r1, r2] : [r2, r1]
        assert.isAtMost(backoff.delay(c, retry, previous, a), backoff.delay(c, retry, previous, b))
      })
    )
  })
})
