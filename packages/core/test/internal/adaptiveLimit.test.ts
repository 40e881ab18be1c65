import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as adaptive from "../../src/internal/adaptiveLimit.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const boundsArb = fc
  .tuple(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 300 }))
  .map(([minLimit, extra]) => ({ minLimit, maxLimit: minLimit + extra }))

const aimdArb: fc.Arbitrary<adaptive.AimdConfig> = fc
  .record({
    bounds: boundsArb,
    backoffRatio: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
    latencyThresholdMillis: fc.integer({ min: 1, max: 5_000 })
  })
  .map(({ bounds, ...rest }) => ({ algorithm: "aimd", ...bounds, ...rest }))

const gradientArb: fc.Arbitrary<adaptive.GradientConfig> = fc
  .record({
    bounds: boundsArb,
    smoothing: fc.double({ min: 0.01, max: 1, noNaN: true }),
    queueSize: fc.option(fc.double({ min: 0, max: 20, noNaN: true }), { nil: undefined }),
    longWindow: fc.integer({ min: 1, max: 1_000 }),
    windowMillis: fc.integer({ min: 0, max: 1_000 }),
    minWindowSamples: fc.integer({ min: 1, max: 20 })
  })
  .map(({ bounds, ...rest }) => ({ algorithm: "gradient", ...bounds, ...rest }))

const vegasArb: fc.Arbitrary<adaptive.VegasConfig> = fc
  .record({
    bounds: boundsArb,
    alphaBeta: fc.option(
      fc.tuple(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 })).map(([a, d]) => [a, a + d] as const),
      { nil: undefined }
    ),
    smoothing: fc.double({ min: 0.01, max: 1, noNaN: true }),
    probeMultiplier: fc.integer({ min: 1, max: 50 })
  })
  .map(({ alphaBeta, bounds, ...rest }) => ({
    algorithm: "vegas",
    ...bounds,
    alpha: alphaBeta?.[0],
    beta: alphaBeta?.[1],
    ...rest
  }))

const configArb: fc.Arbitrary<adaptive.Config> = fc.oneof(aimdArb, gradientArb, vegasArb)

/**
 * A measured RTT in milliseconds: 0 or from a nanosecond up. Not a subnormal double (below 2^-1022, which
 * fc.double does draw): those keep a few bits of precision, so averages and ratios of them drift, and no clock
 * measures one (a gradient property once stalled a limit one short of maxLimit at an RTT of 2.5e-323 ms).
 */
const rttArb = fc.oneof(fc.constant(0), fc.double({ min: 1e-6, max: 500, noNaN: true }))

/** Any sample, garbage included (negative, infinite and NaN RTTs), with time moving forward by `step`. */
const stepArb = fc.record({
  rtt: fc.oneof(
    { weight: 8, arbitrary: fc.double({ min: 0, max: 10_000, noNaN: true }) },
    { weight: 1, arbitrary: fc.constantFrom(-1, Number.NaN, Number.POSITIVE_INFINITY, 0) }
  ),
  inflight: fc.integer({ min: 0, max: 400 }),
  dropped: fc.boolean(),
  step: fc.integer({ min: 0, max: 2_000 })
})

type Step = typeof stepArb extends fc.Arbitrary<infer S> ? S : never

/** Replays steps from a fresh state at `initial`; returns every state. */
const replay = (config: adaptive.Config, initial: number, steps: ReadonlyArray<Step>): Array<adaptive.State> => {
  let state = adaptive.make(config, initial)
  let now = 0
  const states = [state]
  for (const { step, ...sample } of steps) {
    now += step
    state = adaptive.update(state, { ...sample, now }, config)
    states.push(state)
  }
  return states
}

const within = (state: adaptive.State, config: adaptive.Bounds): boolean =>
  Number.isFinite(state.limit) &&
  state.limit >= config.minLimit &&
  state.limit <= config.maxLimit &&
  adaptive.limitOf(state) >= config.minLimit &&
  adaptive.limitOf(state) <= config.maxLimit

/** Feeds `n` samples of a constant RTT with every permit in use, `gap` ms apart. */
const steady = (
  config: adaptive.Config,
  state: adaptive.State,
  n: number,
  rtt: number,
  start: number,
  gap: number
): { readonly state: adaptive.State; readonly now: number } => {
  let s = state
  let now = start
  for (let i = 0; i < n; i++) {
    now += gap
    s = adaptive.update(s, { rtt, inflight: adaptive.limitOf(s), dropped: false, now }, config)
  }
  return { state: s, now }
}

// ---------------------------------------------------------------------------
// every algorithm
// ---------------------------------------------------------------------------

describe("adaptive limits: every algorithm", () => {
  it("the limit stays within [minLimit, maxLimit] (and finite) for any sample sequence", () => {
    fc.assert(
      fc.property(configArb, fc.integer({ min: -10, max: 1_000 }), fc.array(stepArb, { maxLength: 300 }), (c, i, s) =>
        replay(c, i, s).every((state) => within(state, c))
      ),
      { numRuns: 300 }
    )
  })

  it("deterministic replay: the same samples give the same states", () => {
    fc.assert(
      fc.property(configArb, fc.integer({ min: 1, max: 300 }), fc.array(stepArb, { maxLength: 200 }), (c, i, s) => {
        assert.deepStrictEqual(replay(c, i, s), replay(c, i, s))
      }),
      { numRuns: 100 }
    )
  })

  it("the initial limit is clamped into the bounds; a state of another algorithm is left alone", () => {
    const aimd: adaptive.AimdConfig = {
      algorithm: "aimd",
      minLimit: 5,
      maxLimit: 10,
      backoffRatio: 0.9,
      latencyThresholdMillis: 100
    }
    assert.strictEqual(adaptive.make(aimd, 1).limit, 5)
    assert.strictEqual(adaptive.make(aimd, 50).limit, 10)
    assert.strictEqual(adaptive.make(aimd, 7.8).limit, 7)
    const vegas = adaptive.make(
      { ...aimd, algorithm: "vegas", alpha: 3, beta: 6, smoothing: 1, probeMultiplier: 30 },
      7
    )
    assert.strictEqual(adaptive.update(vegas, { rtt: 1, inflight: 7, dropped: true, now: 1 }, aimd), vegas)
  })
})

// ---------------------------------------------------------------------------
// aimd
// ---------------------------------------------------------------------------

describe("adaptive limits: aimd", () => {
  it("a drop never increases the limit; a success never decreases it", () => {
    fc.assert(
      fc.property(aimdArb, fc.integer({ min: 1, max: 300 }), fc.array(stepArb, { maxLength: 300 }), (c, i, steps) => {
        const states = replay(c, i, steps)
        steps.forEach((step, k) => {
          const before = states[k]?.limit ?? 0
          const after = states[k + 1]?.limit ?? 0
          // a non-finite RTT carries no timing (read as 0)
          const drop = step.dropped || (Number.isFinite(step.rtt) && step.rtt > c.latencyThresholdMillis)
          if (drop) assert.isAtMost(after, before)
          else assert.isAtLeast(after, before)
        })
      }),
      { numRuns: 300 }
    )
  })

  it("a drop shrinks the limit by at least one (× backoffRatio), down to minLimit; once per episode", () => {
    const c: adaptive.AimdConfig = {
      algorithm: "aimd",
      minLimit: 2,
      maxLimit: 100,
      backoffRatio: 0.9,
      latencyThresholdMillis: 1_000
    }
    let s = adaptive.makeAimd(c, 20)
    // a call started at 0 failing at 10: 20 × 0.9 = 18
    s = adaptive.updateAimd(s, { rtt: 10, inflight: 20, dropped: true, now: 10 }, c)
    assert.strictEqual(s.limit, 18)
    // another call of the same wave (started at 0, before the decrease at 10): same episode, no change
    s = adaptive.updateAimd(s, { rtt: 12, inflight: 20, dropped: true, now: 12 }, c)
    assert.strictEqual(s.limit, 18)
    // a call started after the decrease: 18 × 0.9 = 16.2 → 16
    s = adaptive.updateAimd(s, { rtt: 5, inflight: 18, dropped: true, now: 20 }, c)
    assert.strictEqual(s.limit, 16)
    // slower than latencyThreshold counts as a drop
    s = adaptive.updateAimd(s, { rtt: 1_001, inflight: 1, dropped: false, now: 2_000 }, c)
    assert.strictEqual(s.limit, 14)
    // a small limit still shrinks by one: min(3 - 1, ⌊2.7⌋) = 2, then the floor holds
    let small = adaptive.makeAimd(c, 3)
    small = adaptive.updateAimd(small, { rtt: 1, inflight: 3, dropped: true, now: 1 }, c)
    assert.strictEqual(small.limit, 2)
    small = adaptive.updateAimd(small, { rtt: 1, inflight: 3, dropped: true, now: 5 }, c)
    assert.strictEqual(small.limit, 2)
  })

  it("+1 per window of `limit` successes while in use; nothing while most of the limit is unused", () => {
    const c: adaptive.AimdConfig = {
      algorithm: "aimd",
      minLimit: 1,
      maxLimit: 12,
      backoffRatio: 0.5,
      latencyThresholdMillis: 1_000
    }
    let s = adaptive.makeAimd(c, 10)
    for (let i = 1; i <= 9; i++) s = adaptive.updateAimd(s, { rtt: 1, inflight: 5, dropped: false, now: i }, c)
    assert.deepStrictEqual([s.limit, s.successes], [10, 9])
    s = adaptive.updateAimd(s, { rtt: 1, inflight: 5, dropped: false, now: 10 }, c)
    assert.deepStrictEqual([s.limit, s.successes], [11, 0])
    // app-limited: 4 in flight of 11 (under half) never grows it
    for (let i = 0; i < 100; i++) s = adaptive.updateAimd(s, { rtt: 1, inflight: 4, dropped: false, now: 20 + i }, c)
    assert.strictEqual(s.limit, 11)
    // in use: grows to maxLimit and stays
    assert.strictEqual(steady(c, s, 500, 1, 200, 1).state.limit, 12)
  })
})

// ---------------------------------------------------------------------------
// gradient
// ---------------------------------------------------------------------------

describe("adaptive limits: gradient", () => {
  it("under a constant RTT with the limit in use, the limit grows to maxLimit, never falling on the way", () => {
    fc.assert(
      fc.property(
        gradientArb.filter((c) => c.smoothing >= 0.1 && (c.queueSize === undefined || c.queueSize >= 1)),
        rttArb,
        (c, rtt) => {
          let s = adaptive.make(c, c.minLimit)
          let now = 0
          for (let i = 0; i < 100_000 && adaptive.limitOf(s) < c.maxLimit; i++) {
            now += 100
            const next = adaptive.update(s, { rtt, inflight: c.maxLimit, dropped: false, now }, c)
            assert.isAtLeast(next.limit, s.limit)
            s = next
          }
          assert.strictEqual(adaptive.limitOf(s), c.maxLimit)
        }
      ),
      { numRuns: 60 }
    )
  })

  it("when the RTT doubles, the limit falls at the end of the window (a long-term average lags)", () => {
    fc.assert(
      fc.property(
        gradientArb.filter((c) => c.longWindow >= 20),
        fc.double({ min: 1, max: 500, noNaN: true }),
        (c0, rtt) => {
          const c = { ...c0, maxLimit: Math.max(c0.maxLimit, c0.minLimit + 100) }
          // a steady, warm long-term RTT at a limit inside the bounds
          let s: adaptive.GradientState = {
            ...adaptive.makeGradient(c, c.minLimit + 80),
            longRtt: rtt,
            longCount: adaptive.longWarmup,
            shortRtt: rtt
          }
          const before = s.limit
          const queue = c.queueSize ?? Math.sqrt(before)
          let now = 0
          for (;;) {
            now += Math.max(1, c.windowMillis)
            s = adaptive.updateGradient(s, { rtt: 2 * rtt, inflight: c.maxLimit, dropped: false, now }, c)
            if (s.windowCount === 0) break
          }
          // gradient <= (1 + 2 / 21) / 2 < 0.55: limit × (1 − 0.45 × smoothing) + smoothing × queueSize at most
          assert.isAtMost(s.limit, before * (1 - 0.45 * c.smoothing) + c.smoothing * queue + 1e-9)
          if (before > 2.5 * queue || before === c.minLimit) assert.isAtMost(s.limit, before)
          if (before > 2.5 * queue) assert.isBelow(s.limit, before)
        }
      ),
      { numRuns: 100 }
    )
  })

  it("Gradient2's formula on a worked window; the long-term RTT drifts down when the short term is lower", () => {
    const c: adaptive.GradientConfig = {
      algorithm: "gradient",
      minLimit: 1,
      maxLimit: 1_000,
      smoothing: 0.5,
      queueSize: 4,
      longWindow: 9,
      windowMillis: 100,
      minWindowSamples: 2
    }
    const s0: adaptive.GradientState = {
      ...adaptive.makeGradient(c, 100),
      longRtt: 40,
      longCount: adaptive.longWarmup,
      shortRtt: 40
    }
    // a window of two samples of 50 ms over 100 ms
    const a = adaptive.updateGradient(s0, { rtt: 50, inflight: 100, dropped: false, now: 1_000 }, c)
    assert.strictEqual(a.windowCount, 1)
    const b = adaptive.updateGradient(a, { rtt: 50, inflight: 100, dropped: false, now: 1_100 }, c)
    assert.strictEqual(b.windowCount, 0)
    // long = 40 × 0.8 + 50 × 0.2 = 42; gradient = 42 / 50 = 0.84; estimate = 84 + 4 = 88; limit = 50 + 44 = 94
    assert.closeTo(b.longRtt, 42, 1e-9)
    assert.closeTo(b.limit, 94, 1e-9)
    // the short term falls far below the long term: the long term drifts down by 10% on top of its average
    const fast: adaptive.GradientState = { ...s0, longRtt: 100 }
    const c1 = adaptive.updateGradient(fast, { rtt: 10, inflight: 100, dropped: false, now: 0 }, c)
    const c2 = adaptive.updateGradient(c1, { rtt: 10, inflight: 100, dropped: false, now: 100 }, c)
    assert.closeTo(c2.longRtt, (100 * 0.8 + 10 * 0.2) * adaptive.longDrift, 1e-9)
    // app-limited (the most in flight under half the limit): the limit holds
    const idle1 = adaptive.updateGradient(s0, { rtt: 50, inflight: 10, dropped: false, now: 0 }, c)
    const idle2 = adaptive.updateGradient(idle1, { rtt: 50, inflight: 10, dropped: false, now: 100 }, c)
    assert.strictEqual(idle2.limit, 100)
  })
})

// ---------------------------------------------------------------------------
// vegas
// ---------------------------------------------------------------------------

describe("adaptive limits: vegas", () => {
  const base: adaptive.VegasConfig = {
    algorithm: "vegas",
    minLimit: 1,
    maxLimit: 1_000,
    alpha: undefined,
    beta: undefined,
    smoothing: 1,
    probeMultiplier: 1_000
  }

  it("at rttNoLoad (no queueing) the limit never falls and grows to maxLimit", () => {
    fc.assert(
      fc.property(vegasArb, rttArb, (c, rtt) => {
        let s = adaptive.make(c, c.minLimit)
        let now = 0
        for (let i = 0; i < 100_000 && adaptive.limitOf(s) < c.maxLimit; i++) {
          now += 1
          const next = adaptive.update(s, { rtt, inflight: c.maxLimit, dropped: false, now }, c)
          assert.isAtLeast(next.limit, s.limit)
          s = next
        }
        assert.strictEqual(adaptive.limitOf(s), c.maxLimit)
      }),
      { numRuns: 100 }
    )
  })

  it("steady state: an estimated queue between alpha and beta holds the limit", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 500 }),
        fc.integer({ min: 2, max: 5 }),
        fc.double({ min: 1, max: 100, noNaN: true }),
        (limit, gap, rttNoLoad) => {
          const c = { ...base, alpha: 2, beta: 2 + gap }
          // queue = ⌈limit × (1 − rttNoLoad / rtt)⌉ = alpha + 1, inside [alpha, beta]
          const target = 3
          const rtt = rttNoLoad / (1 - (target - 0.5) / limit)
          const s: adaptive.VegasState = { algorithm: "vegas", limit, rttNoLoad, probeCount: 0 }
          let next: adaptive.State = s
          for (let i = 0; i < 20; i++) next = adaptive.update(next, { rtt, inflight: limit, dropped: false, now: i }, c)
          assert.strictEqual(next.limit, limit)
        }
      ),
      { numRuns: 100 }
    )
  })

  it("queueing above beta or a drop shrinks the limit by log10(limit); a probe resets rttNoLoad", () => {
    const s: adaptive.VegasState = { algorithm: "vegas", limit: 100, rttNoLoad: 10, probeCount: 0 }
    // queue = ⌈100 × (1 − 10/20)⌉ = 50 > beta (12): 100 − 2
    assert.strictEqual(adaptive.updateVegas(s, { rtt: 20, inflight: 100, dropped: false, now: 1 }, base).limit, 98)
    // a drop: 100 − 2, whatever the RTT
    assert.strictEqual(adaptive.updateVegas(s, { rtt: 10, inflight: 100, dropped: true, now: 1 }, base).limit, 98)
    // nothing queues (rtt = rttNoLoad): + beta (6 × 2)
    assert.strictEqual(adaptive.updateVegas(s, { rtt: 10, inflight: 100, dropped: false, now: 1 }, base).limit, 112)
    // a lower RTT is the new rttNoLoad, the limit holds
    const lower = adaptive.updateVegas(s, { rtt: 5, inflight: 100, dropped: false, now: 1 }, base)
    assert.deepStrictEqual([lower.limit, lower.rttNoLoad], [100, 5])
    // every probeMultiplier × limit samples, rttNoLoad becomes the current RTT (a slower dependency is the new normal)
    const c = { ...base, probeMultiplier: 1 }
    let p: adaptive.VegasState = { algorithm: "vegas", limit: 3, rttNoLoad: 10, probeCount: 0 }
    for (let i = 0; i < 3; i++) p = adaptive.updateVegas(p, { rtt: 100, inflight: 1, dropped: false, now: i }, c)
    assert.strictEqual(p.rttNoLoad, 10)
    p = adaptive.updateVegas(p, { rtt: 100, inflight: 1, dropped: false, now: 3 }, c)
    assert.deepStrictEqual([p.rttNoLoad, p.probeCount], [100, 0])
  })
})
