import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/rateLimiter.ts"

// ---------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------

type OpKind = "consume" | "check" | "refund" | "penalize"

/** One call of a trace: advance the clock by `dt`, then call `kind` with `cost`. */
interface Op {
  readonly kind: OpKind
  readonly dt: number
  readonly cost: number
}

interface Scenario<C> {
  readonly config: C
  readonly start: number
  readonly ops: ReadonlyArray<Op>
}

/** An algorithm under test, with what the generic properties need to know about it. */
interface Subject<C, S> {
  readonly name: string
  readonly algo: engine.Algorithm<C, S>
  readonly config: fc.Arbitrary<C>
  /** Characteristic time: the window, or the time to refill or drain a full capacity. */
  readonly span: (config: C) => number
  /** The most cost a single request can ever be allowed. */
  readonly limit: (config: C) => number
  /** Whether the algorithm knows when capacity comes back (all but the concurrency limit). */
  readonly timed: boolean
}

/** Either near 0 or at epoch-millisecond magnitudes, where float64 rounding would show. */
const startArb: fc.Arbitrary<number> = fc
  .tuple(fc.boolean(), fc.integer({ min: 0, max: 1_000_000_000 }))
  .map(([epoch, offset]) => (epoch ? 1_700_000_000_000 : 0) + offset)

/** Bursts (0), short steps, and gaps long enough to refill or empty the limiter. */
const dtArb = (span: number): fc.Arbitrary<number> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 6, arbitrary: fc.integer({ min: 1, max: Math.min(1e9, Math.max(1, Math.ceil(span / 8))) }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: Math.min(1e9, Math.max(1, Math.ceil(span * 2.5))) }) }
  )

/** Mostly small costs, some up to one above the limit, a few peeks (0). */
const costArb = (limit: number): fc.Arbitrary<number> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: Math.min(3, limit) }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: limit + 1 }) },
    { weight: 1, arbitrary: fc.constant(0) }
  )

const kindArb = (mixed: boolean): fc.Arbitrary<OpKind> =>
  mixed
    ? fc.oneof(
        { weight: 6, arbitrary: fc.constant<OpKind>("consume") },
        { weight: 2, arbitrary: fc.constant<OpKind>("check") },
        { weight: 1, arbitrary: fc.constant<OpKind>("refund") },
        { weight: 1, arbitrary: fc.constant<OpKind>("penalize") }
      )
    : fc.constant<OpKind>("consume")

const opsArb = (span: number, limit: number, mixed: boolean, maxLength: number): fc.Arbitrary<ReadonlyArray<Op>> =>
  fc.array(fc.record({ kind: kindArb(mixed), dt: dtArb(span), cost: costArb(limit) }), { maxLength, size: "max" })

/** Random traces: non-decreasing times and random costs; `mixed` adds checks, refunds and penalties. */
const scenarioArb = <C, S>(subject: Subject<C, S>, mixed: boolean, maxLength = 60): fc.Arbitrary<Scenario<C>> =>
  subject.config.chain((config) =>
    fc.record({
      config: fc.constant(config),
      start: startArb,
      ops: opsArb(subject.span(config), subject.limit(config), mixed, maxLength)
    })
  )

/** What happened at one step of a replay. */
interface Step<S> {
  readonly op: Op
  readonly now: number
  /** The state before the call (a copy). */
  readonly before: S
  /** The state after the call (live: copy it to keep it). */
  readonly state: S
  /** The decision, for `consume` and `check` (a copy). */
  readonly decision: engine.Decision | undefined
}

/** Replays a trace from a fresh state. */
const replay = <C, S>(
  algo: engine.Algorithm<C, S>,
  config: C,
  start: number,
  ops: ReadonlyArray<Op>,
  visit?: (step: Step<S>) => void,
  from?: S
): { readonly state: S; readonly now: number; readonly decisions: Array<engine.Decision | undefined> } => {
  const state = from ?? algo.make(config, start)
  const out = engine.makeDecision()
  const decisions: Array<engine.Decision | undefined> = []
  let now = start
  for (const op of ops) {
    now += op.dt
    const before = visit === undefined ? state : structuredClone(state)
    let decision: engine.Decision | undefined
    switch (op.kind) {
      case "consume":
        decision = { ...algo.consume(state, now, op.cost, config, out) }
        break
      case "check":
        decision = { ...algo.check(state, now, op.cost, config, out) }
        break
      case "refund":
        algo.refund(state, now, op.cost, config)
        break
      case "penalize":
        algo.penalize(state, now, op.cost, config)
        break
    }
    decisions.push(decision)
    visit?.({ op, now, before, state, decision })
  }
  return { state, now, decisions }
}

/** How many unit-cost requests `consume` allows at `now`, from a copy of `state`. */
const unitsAllowed = <C, S>(algo: engine.Algorithm<C, S>, state: S, now: number, config: C, most: number): number => {
  const copy = structuredClone(state)
  const out = engine.makeDecision()
  let n = 0
  while (n <= most && algo.consume(copy, now, 1, config, out).allowed) n++
  return n
}

const decideOn = <C, S>(
  algo: engine.Algorithm<C, S>,
  state: S,
  now: number,
  cost: number,
  config: C,
  commit: boolean
): engine.Decision => {
  const out = engine.makeDecision()
  return commit ? algo.consume(state, now, cost, config, out) : algo.check(state, now, cost, config, out)
}

/** Admitted requests of a consume-only trace, as (time, cost, decision). */
const admitted = <C, S>(
  algo: engine.Algorithm<C, S>,
  scenario: Scenario<C>
): Array<{ readonly t: number; readonly cost: number; readonly decision: engine.Decision }> => {
  const result: Array<{ t: number; cost: number; decision: engine.Decision }> = []
  let now = scenario.start
  const state = algo.make(scenario.config, now)
  const out = engine.makeDecision()
  for (const op of scenario.ops) {
    now += op.dt
    const d = algo.consume(state, now, op.cost, scenario.config, out)
    if (d.allowed && op.cost > 0) result.push({ t: now, cost: op.cost, decision: { ...d } })
  }
  return result
}

/** Asserts `sum(cost over [t_i, t_j]) <= bound(t_j - t_i)` for every pair of admissions. */
const assertPairBound = (
  list: ReadonlyArray<{ readonly t: number; readonly cost: number }>,
  bound: (d: number) => number
): void => {
  for (let i = 0; i < list.length; i++) {
    let sum = 0
    for (let j = i; j < list.length; j++) {
      const a = list[i]
      const b = list[j]
      if (a === undefined || b === undefined) continue
      sum += b.cost
      assert.isAtMost(sum, bound(b.t - a.t) + 1e-9, `admitted over [${a.t}, ${b.t}]`)
    }
  }
}

const runs = { numRuns: 150 }

// ---------------------------------------------------------------------------
// subjects
// ---------------------------------------------------------------------------

const windowMillisArb = fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 10, max: 5000 }))
const perSecondArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 1000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0.25, 0.5, 1 / 3, 2.5, 7.3) }
)

const windowConfigArb = fc.record({ limit: fc.integer({ min: 1, max: 20 }), windowMillis: windowMillisArb })

const fixedWindow: Subject<engine.FixedWindowConfig, engine.FixedWindowState> = {
  name: "fixed window",
  algo: engine.fixedWindow,
  config: windowConfigArb,
  span: (c) => c.windowMillis,
  limit: (c) => c.limit,
  timed: true
}

const slidingLog: Subject<engine.SlidingLogConfig, engine.SlidingLogState> = {
  name: "sliding window log",
  algo: engine.slidingLog,
  config: windowConfigArb,
  span: (c) => c.windowMillis,
  limit: (c) => c.limit,
  timed: true
}

const slidingCounter: Subject<engine.SlidingCounterConfig, engine.SlidingCounterState> = {
  name: "sliding window counter",
  algo: engine.slidingCounter,
  config: windowConfigArb,
  span: (c) => c.windowMillis,
  limit: (c) => c.limit,
  timed: true
}

const tokenBucket: Subject<engine.TokenBucketConfig, engine.TokenBucketState> = {
  name: "token bucket",
  algo: engine.tokenBucket,
  config: fc.record({ capacity: fc.integer({ min: 1, max: 20 }), refillPerSecond: perSecondArb }),
  span: (c) => (c.capacity * 1000) / c.refillPerSecond,
  limit: (c) => c.capacity,
  timed: true
}

const leakyMeter: Subject<engine.LeakyMeterConfig, engine.LeakyMeterState> = {
  name: "leaky bucket (meter)",
  algo: engine.leakyMeter,
  config: fc.record({ capacity: fc.integer({ min: 1, max: 20 }), leakPerSecond: perSecondArb }),
  span: (c) => (c.capacity * 1000) / c.leakPerSecond,
  limit: (c) => c.capacity,
  timed: true
}

const leakyQueue: Subject<engine.LeakyQueueConfig, engine.LeakyQueueState> = {
  name: "leaky bucket (shaping queue)",
  algo: engine.leakyQueue,
  config: fc.record({ capacity: fc.integer({ min: 1, max: 20 }), leakPerSecond: perSecondArb }),
  span: (c) => (c.capacity * 1000) / c.leakPerSecond,
  limit: (c) => c.capacity,
  timed: true
}

const gcra: Subject<engine.GcraConfig, engine.GcraState> = {
  name: "GCRA",
  algo: engine.gcra,
  config: fc.record({
    burst: fc.integer({ min: 0, max: 20 }),
    ratePerPeriod: fc.integer({ min: 1, max: 50 }),
    periodMillis: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 100, max: 60_000 }))
  }),
  span: (c) => ((c.burst + 1) * c.periodMillis) / c.ratePerPeriod,
  limit: (c) => c.burst + 1,
  timed: true
}

const concurrency: Subject<engine.ConcurrencyConfig, engine.ConcurrencyState> = {
  name: "concurrency limit",
  algo: engine.concurrency,
  config: fc.record({ limit: fc.integer({ min: 1, max: 20 }) }),
  span: () => 100,
  limit: (c) => c.limit,
  timed: false
}

// ---------------------------------------------------------------------------
// properties every algorithm has
// ---------------------------------------------------------------------------

const commonProperties = <C, S>(subject: Subject<C, S>): void => {
  const { algo } = subject

  describe(`${subject.name}: common properties`, () => {
    it("check never mutates and decides exactly as consume; a refused consume changes nothing", () => {
      fc.assert(
        fc.property(scenarioArb(subject, true), ({ config, ops, start }) => {
          replay(algo, config, start, ops, ({ before, now, op, state }) => {
            if (op.kind !== "consume") return
            // redo the step on copies: check first, then consume
            const copy = structuredClone(before)
            const checked = { ...decideOn(algo, copy, now, op.cost, config, false) }
            assert.deepStrictEqual(copy, before, "check mutated the state")
            const consumed = { ...decideOn(algo, copy, now, op.cost, config, true) }
            assert.deepStrictEqual(consumed, checked)
            assert.deepStrictEqual(copy, state)
            if (!consumed.allowed) assert.deepStrictEqual(state, before, "a refused consume mutated the state")
          })
        }),
        runs
      )
    })

    it("remaining equals the number of unit-cost requests allowed right after", () => {
      fc.assert(
        fc.property(scenarioArb(subject, true), ({ config, ops, start }) => {
          const most = 2 * subject.limit(config) + 2
          replay(algo, config, start, ops, ({ decision, now, op, state }) => {
            if (op.kind !== "consume" || decision === undefined) return
            assert.strictEqual(decision.remaining, unitsAllowed(algo, state, now, config, most))
            assert.strictEqual(decision.limit, subject.limit(config))
          })
        }),
        runs
      )
    })

    it("retryAfterMillis is 0 when allowed, Infinity exactly when the cost exceeds the limit", () => {
      fc.assert(
        fc.property(scenarioArb(subject, true), ({ config, ops, start }) => {
          replay(algo, config, start, ops, ({ decision, op }) => {
            if (decision === undefined) return
            if (decision.allowed) {
              assert.strictEqual(decision.retryAfterMillis, 0)
              assert.isAtMost(op.cost, subject.limit(config))
            } else {
              assert.strictEqual(decision.delayMillis, 0)
              assert.strictEqual(decision.retryAfterMillis === Infinity, op.cost > subject.limit(config))
              if (!subject.timed)
                assert.isTrue(decision.retryAfterMillis === 0 || decision.retryAfterMillis === Infinity)
            }
          })
        }),
        runs
      )
    })

    it("isIdle means a fresh state would decide identically for any continuation", () => {
      fc.assert(
        fc.property(
          scenarioArb(subject, true, 30).chain((scenario) =>
            fc.record({
              scenario: fc.constant(scenario),
              gap: dtArb(3 * subject.span(scenario.config)),
              continuation: opsArb(subject.span(scenario.config), subject.limit(scenario.config), true, 30)
            })
          ),
          ({ continuation, gap, scenario }) => {
            const { config } = scenario
            const prefix = replay(algo, config, scenario.start, scenario.ops)
            const now = prefix.now + gap
            if (!algo.isIdle(prefix.state, now, config)) return
            const fromOld = replay(algo, config, now, continuation, undefined, prefix.state)
            const fromFresh = replay(algo, config, now, continuation)
            assert.deepStrictEqual(fromOld.decisions, fromFresh.decisions)
          }
        ),
        runs
      )
    })

    it("a fresh state is idle, and one is idle again after ttlMillis untouched (penalties included)", () => {
      fc.assert(
        fc.property(scenarioArb(subject, true), ({ config, ops, start }) => {
          assert.isTrue(algo.isIdle(algo.make(config, start), start, config))
          const { now, state } = replay(algo, config, start, ops)
          if (subject.timed) assert.isTrue(algo.isIdle(state, now + algo.ttlMillis(config), config))
        }),
        runs
      )
    })

    it("refund never goes above full capacity and gives back at most its cost", () => {
      fc.assert(
        fc.property(scenarioArb(subject, true), fc.integer({ min: 1, max: 25 }), ({ config, ops, start }, amount) => {
          const { now, state } = replay(algo, config, start, ops)
          const limit = subject.limit(config)
          const before = decideOn(algo, state, now, 0, config, false).remaining
          const refunded = structuredClone(state)
          algo.refund(refunded, now, amount, config)
          const after = decideOn(algo, refunded, now, 0, config, false).remaining
          assert.isAtLeast(after, before)
          assert.isAtMost(after, Math.min(limit, before + amount))
          // a refund of everything is a fresh state
          algo.refund(state, now, 1000, config)
          assert.isTrue(algo.isIdle(state, now, config))
          assert.strictEqual(decideOn(algo, state, now, 0, config, false).remaining, limit)
        }),
        runs
      )
    })

    it("penalize never makes a decision better, and from fresh takes exactly its cost", () => {
      fc.assert(
        fc.property(
          scenarioArb(subject, true),
          fc.integer({ min: 1, max: 25 }),
          fc.integer({ min: 0, max: 21 }),
          ({ config, ops, start }, penalty, cost) => {
            const { now, state } = replay(algo, config, start, ops)
            const plain = decideOn(algo, structuredClone(state), now, cost, config, false)
            const penalized = structuredClone(state)
            algo.penalize(penalized, now, penalty, config)
            const worse = decideOn(algo, penalized, now, cost, config, false)
            if (worse.allowed) assert.isTrue(plain.allowed)
            if (worse.allowed === plain.allowed) assert.isAtMost(worse.remaining, plain.remaining)
            assert.isAtMost(
              decideOn(algo, penalized, now, 0, config, false).remaining,
              decideOn(algo, state, now, 0, config, false).remaining
            )
            if (!plain.allowed && !worse.allowed) assert.isAtLeast(worse.retryAfterMillis, plain.retryAfterMillis)
            if (plain.allowed && worse.allowed) assert.isAtLeast(worse.delayMillis, plain.delayMillis)

            const limit = subject.limit(config)
            const p = Math.min(penalty, limit)
            const fresh = algo.make(config, now)
            algo.penalize(fresh, now, p, config)
            assert.strictEqual(decideOn(algo, fresh, now, 0, config, false).remaining, limit - p)
            const full = decideOn(algo, fresh, now, limit, config, false)
            assert.isFalse(full.allowed)
            if (subject.timed) assert.isAbove(full.retryAfterMillis, 0)
          }
        ),
        runs
      )
    })

    if (subject.timed) {
      it("retryAfterMillis is exact: allowed at now + retryAfterMillis, refused a millisecond earlier", () => {
        fc.assert(
          fc.property(scenarioArb(subject, true), ({ config, ops, start }) => {
            replay(algo, config, start, ops, ({ decision, now, op, state }) => {
              if (op.kind !== "consume" || decision === undefined || decision.allowed) return
              const retry = decision.retryAfterMillis
              assert.strictEqual(retry === Infinity, op.cost > subject.limit(config))
              if (retry === Infinity) return
              assert.isTrue(Number.isInteger(retry) && retry >= 1, `retryAfterMillis ${retry}`)
              assert.isTrue(decideOn(algo, structuredClone(state), now + retry, op.cost, config, true).allowed)
              assert.isFalse(decideOn(algo, structuredClone(state), now + retry - 1, op.cost, config, true).allowed)
            })
          }),
          runs
        )
      })

      it("resetMillis is exact: idle at now + resetMillis, not a millisecond earlier", () => {
        fc.assert(
          fc.property(scenarioArb(subject, true), ({ config, ops, start }) => {
            replay(algo, config, start, ops, ({ decision, now, op, state }) => {
              if (op.kind !== "consume" || decision === undefined) return
              const reset = decision.resetMillis
              assert.isTrue(Number.isInteger(reset) && reset >= 0, `resetMillis ${reset}`)
              assert.isTrue(algo.isIdle(state, now + reset, config))
              if (reset > 0) assert.isFalse(algo.isIdle(state, now + reset - 1, config))
            })
          }),
          runs
        )
      })
    }
  })
}

commonProperties(fixedWindow)
commonProperties(slidingLog)
commonProperties(slidingCounter)
commonProperties(tokenBucket)
commonProperties(leakyMeter)
commonProperties(leakyQueue)
commonProperties(gcra)
commonProperties(concurrency)

// ---------------------------------------------------------------------------
// bounds on admitted cost (consume-only traces)
// ---------------------------------------------------------------------------

/** Cost admitted with times in `[from, to)`. */
const admittedIn = (list: ReadonlyArray<{ readonly t: number; readonly cost: number }>, from: number, to: number) => {
  let sum = 0
  for (const { cost, t } of list) if (t >= from && t < to) sum += cost
  return sum
}

/** Evenly spaced unit requests; returns how many `algo` admits. */
const admitEvenly = <C, S>(algo: engine.Algorithm<C, S>, config: C, start: number, spacing: number, n: number) => {
  const state = algo.make(config, start)
  const out = engine.makeDecision()
  let count = 0
  for (let i = 0; i < n; i++) if (algo.consume(state, start + i * spacing, 1, config, out).allowed) count++
  return count
}

describe("rateLimiter bounds", () => {
  it("fixed window: at most limit within each aligned window", () => {
    fc.assert(
      fc.property(scenarioArb(fixedWindow, false), (scenario) => {
        const list = admitted(engine.fixedWindow, scenario)
        const W = scenario.config.windowMillis
        for (const { t } of list) {
          const from = Math.floor(t / W) * W
          assert.isAtMost(admittedIn(list, from, from + W), scenario.config.limit)
        }
      }),
      runs
    )
  })

  it("sliding log: at most limit in any interval of windowMillis, and never more than limit entries", () => {
    fc.assert(
      fc.property(scenarioArb(slidingLog, false), (scenario) => {
        const list = admitted(engine.slidingLog, scenario)
        // an interval's admissions are also in the interval starting at its first admission
        for (const { t } of list) {
          assert.isAtMost(admittedIn(list, t, t + scenario.config.windowMillis), scenario.config.limit)
        }
      }),
      runs
    )
    fc.assert(
      fc.property(scenarioArb(slidingLog, true), ({ config, ops, start }) => {
        replay(engine.slidingLog, config, start, ops, ({ state }) => {
          assert.isAtMost(state.times.length, config.limit)
          assert.strictEqual(state.times.length, state.costs.length)
          assert.strictEqual(
            state.total,
            state.costs.reduce((a, b) => a + b, 0)
          )
          for (let i = 1; i < state.times.length; i++) {
            assert.isAtLeast(state.times[i] ?? 0, state.times[i - 1] ?? 0)
          }
        })
      }),
      runs
    )
  })

  // The bound proved in the module comment: in [a, a + W), with e = a mod W, the
  // counter admits at most limit + limit * e / W (< 2 * limit). The admitted
  // cost in [a, a + W) only changes where a passes an admission time t (it
  // leaves at a = t + 1) or t - W + 1 (it enters), and the bound is smallest at
  // aligned starts, so those starts are the only ones worth checking.
  it("sliding counter: at most limit * (1 + e / windowMillis) < 2 * limit in any [a, a + windowMillis), e = a mod windowMillis", () => {
    fc.assert(
      fc.property(scenarioArb(slidingCounter, false), (scenario) => {
        const list = admitted(engine.slidingCounter, scenario)
        const first = list[0]
        const last = list[list.length - 1]
        if (first === undefined || last === undefined) return
        const { limit, windowMillis: W } = scenario.config
        const starts: Array<number> = []
        for (const { t } of list) starts.push(t, t + 1, t - W + 1)
        for (let k = Math.floor((first.t - W) / W); k * W <= last.t; k++) starts.push(k * W)
        for (const a of starts) {
          const e = a - Math.floor(a / W) * W
          const sum = admittedIn(list, a, a + W)
          assert.isAtMost(sum, limit + (limit * e) / W, `[${a}, ${a + W})`)
          assert.isBelow(sum, 2 * limit)
        }
      }),
      runs
    )
  })

  // Evenly spaced unit requests at 0.5x to 3x the limit for 12 windows. Measured
  // over a sweep of limits 20..100: the counter admits one request per window
  // fewer just above the limit (a full previous window weighs `limit`, so
  // `estimate + 1 <= limit` leaves one out) and up to ~3% more under heavy
  // overload (the weight of the previous window falls between requests).
  it("sliding counter: under evenly spaced traffic, within 4% (plus one request per window) of the exact log", () => {
    const windows = 12
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 100 }),
        fc.integer({ min: 1000, max: 10_000 }),
        fc.integer({ min: 50, max: 300 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (limit, windowMillis, ratePercent, start) => {
          const config = { limit, windowMillis }
          const spacing = Math.max(1, Math.round((windowMillis * 100) / (limit * ratePercent)))
          const n = Math.ceil((windows * windowMillis) / spacing)
          const exact = admitEvenly(engine.slidingLog, config, start, spacing, n)
          const estimated = admitEvenly(engine.slidingCounter, config, start, spacing, n)
          assert.isAtMost(Math.abs(estimated - exact), 0.04 * exact + windows, `counter ${estimated}, log ${exact}`)
          if (ratePercent <= 90) assert.strictEqual(estimated, exact, "below the limit both admit everything")
        }
      ),
      { numRuns: 60 }
    )
  })

  // Random traces (bursts, short steps, long gaps; unit or random costs) through both, the exact log as the
  // reference. The log never admits more than `limit` in any [a, a + W). The counter's over-admission, what it
  // admits in an interval beyond that, is at most its documented error `limit * e / W` (< limit), e = a mod W.
  // With unit costs it holds against what the log actually admitted at most in one window (if the log refused
  // anything, some window of it holds exactly `limit`; if not, the counter admitted a subset of what it did),
  // and over a whole trace the counter admits at most twice what the log does: the counter admits at most
  // `limit` per aligned window, and the log, greedy, admits the most any exact limiter could, at least what
  // the counter admitted in every other aligned window (those are a window apart).
  it("sliding counter vs exact log on random traces: over-admission in any [a, a + W) at most limit * e / W; with unit costs at most twice the log's total", () => {
    fc.assert(
      fc.property(scenarioArb(slidingCounter, false, 120), fc.boolean(), (scenario, unit) => {
        const trace = unit ? { ...scenario, ops: scenario.ops.map((op) => ({ ...op, cost: 1 })) } : scenario
        const { limit, windowMillis: W } = trace.config
        const log = admitted(engine.slidingLog, trace)
        const counter = admitted(engine.slidingCounter, trace)
        let logMost = 0
        for (const { t } of log) logMost = Math.max(logMost, admittedIn(log, t, t + W))
        assert.isAtMost(logMost, limit)
        const reference = unit ? logMost : limit
        // the admitted cost in [a, a + W) changes only where a passes an admission t (t + 1) or t - W + 1;
        // aligned starts are where the bound is smallest
        const starts: Array<number> = []
        for (const { t } of counter) starts.push(t, t + 1, t - W + 1, Math.floor(t / W) * W, Math.floor(t / W) * W - W)
        for (const a of starts) {
          const e = a - Math.floor(a / W) * W
          const over = admittedIn(counter, a, a + W) - reference
          assert.isAtMost(over, (limit * e) / W + 1e-9, `[${a}, ${a + W}): over-admission ${over}`)
        }
        if (unit) {
          const total = (list: ReadonlyArray<{ readonly cost: number }>) =>
            list.reduce((sum, { cost }) => sum + cost, 0)
          assert.isAtMost(total(counter), 2 * total(log), `counter ${total(counter)}, log ${total(log)}`)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("token bucket: at most capacity + refillPerSecond * d / 1000 over any interval of length d", () => {
    fc.assert(
      fc.property(scenarioArb(tokenBucket, false), (scenario) => {
        const { capacity, refillPerSecond } = scenario.config
        assertPairBound(admitted(engine.tokenBucket, scenario), (d) => capacity + (refillPerSecond * d) / 1000)
      }),
      runs
    )
  })

  it("leaky meter: level never above capacity; at most capacity + leakPerSecond * d / 1000 over d", () => {
    fc.assert(
      fc.property(scenarioArb(leakyMeter, false), (scenario) => {
        const { capacity, leakPerSecond } = scenario.config
        assertPairBound(admitted(engine.leakyMeter, scenario), (d) => capacity + (leakPerSecond * d) / 1000)
        replay(engine.leakyMeter, scenario.config, scenario.start, scenario.ops, ({ state }) => {
          assert.isAtMost(state.milliLevel, capacity * 1000)
        })
      }),
      runs
    )
  })

  it("shaping queue: admits as the meter; starts in order, spaced at the leak rate, delayed at most (capacity - cost) / rate", () => {
    fc.assert(
      fc.property(scenarioArb(leakyQueue, false), (scenario) => {
        const { capacity, leakPerSecond } = scenario.config
        const interval = engine.leakyQueueInterval(scenario.config)
        assert.isAtLeast(interval, 1000 / leakPerSecond)
        assert.isBelow(interval, 1000 / leakPerSecond + 1 / 1024)
        const list = admitted(engine.leakyQueue, scenario)
        assertPairBound(list, (d) => capacity + (leakPerSecond * d) / 1000)
        const starts = list.map(({ cost, decision, t }) => {
          assert.isAtMost(decision.delayMillis, Math.ceil((capacity - cost) * interval))
          return t + decision.delayMillis
        })
        for (let i = 0; i < list.length; i++) {
          let sum = 0
          for (let j = i + 1; j < list.length; j++) {
            const si = starts[i] ?? 0
            const sj = starts[j] ?? 0
            assert.isAtLeast(sj, starts[j - 1] ?? 0)
            // requests i..j-1 have left by the start of j (delays are rounded up: +1)
            sum += list[j - 1]?.cost ?? 0
            assert.isAtMost(sum, ((sj - si + 1) * leakPerSecond) / 1000 + 1e-9)
          }
        }
      }),
      runs
    )
  })

  it("GCRA: at most limit + d / T over any interval of length d (limit = burst + 1, T = period / rate)", () => {
    fc.assert(
      fc.property(scenarioArb(gcra, false), (scenario) => {
        const { burst, periodMillis, ratePerPeriod } = scenario.config
        const T = periodMillis / ratePerPeriod
        assertPairBound(admitted(engine.gcra, scenario), (d) => burst + 1 + d / T)
      }),
      runs
    )
  })

  it("concurrency: inFlight never exceeds limit; release after consume restores the state", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 22 })), { maxLength: 60, size: "max" }),
        (limit, ops) => {
          const config = { limit }
          const state = engine.concurrencyMake(config, 0)
          const out = engine.makeDecision()
          for (const [acquire, cost] of ops) {
            if (acquire) {
              const before = { ...state }
              const d = engine.concurrencyConsume(state, 0, cost, config, out)
              assert.strictEqual(d.allowed, before.inFlight + cost <= limit)
              if (d.allowed) {
                const copy = { ...state }
                engine.concurrencyRelease(copy, cost)
                assert.deepStrictEqual(copy, before)
              }
            } else {
              engine.concurrencyRelease(state, cost)
            }
            assert.isAtMost(state.inFlight, limit)
            assert.isAtLeast(state.inFlight, 0)
          }
        }
      ),
      runs
    )
  })
})

// ---------------------------------------------------------------------------
// examples
// ---------------------------------------------------------------------------

/** The decision fields redis-cell reports, with times in milliseconds. */
const cell = (d: engine.Decision) => ({
  limited: !d.allowed,
  limit: d.limit,
  remaining: d.remaining,
  retryAfterMillis: d.retryAfterMillis,
  resetMillis: d.resetMillis
})

describe("GCRA: redis-cell examples", () => {
  const epoch = 1_700_000_000_000

  it("README: CL.THROTTLE user123 15 30 60 1 on a fresh key returns 0, 16, 15, -1, 2", () => {
    const config = { burst: 15, ratePerPeriod: 30, periodMillis: 60_000 }
    const state = engine.gcraMake(config, epoch)
    const d = engine.gcraConsume(state, epoch, 1, config, engine.makeDecision())
    // retry_after -1 (allowed) is 0 here; reset_after 2 s is 2000 ms
    assert.deepStrictEqual(cell(d), {
      limited: false,
      limit: 16,
      remaining: 15,
      retryAfterMillis: 0,
      resetMillis: 2000
    })
    assert.strictEqual(d.delayMillis, 0)
    assert.deepStrictEqual(state, { tat: epoch + 2000 })
  })

  it("README config: 16 quick requests pass, the 17th is limited with retry_after 2 s", () => {
    const config = { burst: 15, ratePerPeriod: 30, periodMillis: 60_000 }
    const state = engine.gcraMake(config, epoch)
    const out = engine.makeDecision()
    for (let i = 1; i <= 16; i++) {
      const d = engine.gcraConsume(state, epoch + i, 1, config, out)
      assert.isTrue(d.allowed, `request ${i}`)
      assert.strictEqual(d.remaining, 16 - i)
    }
    const limited = engine.gcraConsume(state, epoch + 17, 1, config, out)
    assert.deepStrictEqual(cell(limited), {
      limited: true,
      limit: 16,
      remaining: 0,
      retryAfterMillis: 2000 - 16,
      resetMillis: 32_000 - 16
    })
    assert.isFalse(engine.gcraConsume(state, epoch + 2000, 1, config, out).allowed)
    assert.isTrue(engine.gcraConsume(state, epoch + 2001, 1, config, out).allowed)
  })

  // redis-cell's own table (`it_rate_limits`): max_burst 4, 1 per second, so limit 5.
  // (case, offset ms, quantity, limited, remaining, reset ms, retry ms; redis-cell's -1 is 0, or
  // Infinity when the quantity can never pass)
  const table: ReadonlyArray<readonly [number, number, number, boolean, number, number, number]> = [
    [0, 0, 6, true, 5, 0, Infinity],
    [1, 0, 1, false, 4, 1000, 0],
    [2, 0, 1, false, 3, 2000, 0],
    [3, 0, 1, false, 2, 3000, 0],
    [4, 0, 1, false, 1, 4000, 0],
    [5, 0, 1, false, 0, 5000, 0],
    [6, 0, 1, true, 0, 5000, 1000],
    [7, 3000, 1, false, 2, 3000, 0],
    [8, 3100, 1, false, 1, 3900, 0],
    [9, 4000, 1, false, 1, 4000, 0],
    [10, 8000, 1, false, 4, 1000, 0],
    [11, 9500, 1, false, 4, 1000, 0],
    [12, 9500, 0, false, 4, 1000, 0],
    [13, 9500, 2, false, 2, 3000, 0],
    [14, 9500, 5, true, 2, 3000, 3000]
  ]

  it("reproduces redis-cell's rate limit table", () => {
    const config = { burst: 4, ratePerPeriod: 1, periodMillis: 1000 }
    const state = engine.gcraMake(config, epoch)
    const out = engine.makeDecision()
    for (const [n, offset, quantity, limited, remaining, resetMillis, retryAfterMillis] of table) {
      const d = engine.gcraConsume(state, epoch + offset, quantity, config, out)
      assert.deepStrictEqual(cell(d), { limited, limit: 5, remaining, retryAfterMillis, resetMillis }, `case ${n}`)
    }
  })

  it("rounds the emission interval up to 1/1024 ms: 10 per 3 s", () => {
    const config = { burst: 9, ratePerPeriod: 10, periodMillis: 3000 }
    const T = engine.gcraInterval(config)
    assert.strictEqual(T, Math.ceil(300 * 1024) / 1024)
    const state = engine.gcraMake(config, epoch)
    const out = engine.makeDecision()
    for (let i = 0; i < 10; i++) assert.strictEqual(engine.gcraConsume(state, epoch, 1, config, out).remaining, 9 - i)
    const limited = engine.gcraConsume(state, epoch, 1, config, out)
    assert.isFalse(limited.allowed)
    assert.strictEqual(limited.retryAfterMillis, 300)
    assert.strictEqual(limited.resetMillis, 3000)
  })
})

describe("rateLimiter examples", () => {
  it("fixed window: the limit per aligned window, retry at the next window", () => {
    const config = { limit: 3, windowMillis: 1000 }
    const state = engine.fixedWindowMake(config, 10_250)
    const out = engine.makeDecision()
    for (let i = 0; i < 3; i++) assert.isTrue(engine.fixedWindowConsume(state, 10_250, 1, config, out).allowed)
    const d = engine.fixedWindowConsume(state, 10_400, 1, config, out)
    assert.deepStrictEqual(
      { ...d },
      {
        allowed: false,
        limit: 3,
        remaining: 0,
        resetMillis: 600,
        retryAfterMillis: 600,
        delayMillis: 0
      }
    )
    assert.isTrue(engine.fixedWindowConsume(state, 11_000, 3, config, out).allowed)
  })

  it("sliding log: retry when the oldest entries holding the excess have left", () => {
    const config = { limit: 4, windowMillis: 1000 }
    const state = engine.slidingLogMake(config, 0)
    const out = engine.makeDecision()
    engine.slidingLogConsume(state, 0, 1, config, out)
    engine.slidingLogConsume(state, 100, 2, config, out)
    engine.slidingLogConsume(state, 200, 1, config, out)
    const d = engine.slidingLogConsume(state, 300, 3, config, out)
    // 4 live, 3 wanted: the entries at 0 and 100 must leave, at 1100
    assert.strictEqual(d.retryAfterMillis, 800)
    assert.strictEqual(d.resetMillis, 900)
    assert.deepStrictEqual(state, { times: [0, 100, 200], costs: [1, 2, 1], total: 4 })
  })

  it("sliding counter: 42 in the previous minute, 18 in the first 15 s of this one estimate 49.5", () => {
    const config = { limit: 50, windowMillis: 60_000 }
    const state = { window: 1, previous: 42, current: 18 }
    const d = engine.slidingCounterCheck(state, 75_000, 1, config, engine.makeDecision())
    // 42 * 45 / 60 + 18 = 49.5, and 49.5 + 1 > 50
    assert.isFalse(d.allowed)
    assert.strictEqual(d.remaining, 0)
    // 42 * (60 - e) / 60 + 19 <= 50 once e >= 60 - 60 * 31 / 42 = 15.714... s
    assert.strictEqual(d.retryAfterMillis, 715)
    assert.strictEqual(d.resetMillis, 105_000)
  })

  it("token bucket: burst of capacity, then the refill rate", () => {
    const config = { capacity: 5, refillPerSecond: 2 }
    const state = engine.tokenBucketMake(config, 0)
    const out = engine.makeDecision()
    assert.strictEqual(engine.tokenBucketConsume(state, 0, 5, config, out).remaining, 0)
    const d = engine.tokenBucketConsume(state, 100, 1, config, out)
    assert.deepStrictEqual(
      { ...d },
      {
        allowed: false,
        limit: 5,
        remaining: 0,
        resetMillis: 2400,
        retryAfterMillis: 400,
        delayMillis: 0
      }
    )
    engine.tokenBucketPenalize(state, 100, 2, config)
    assert.strictEqual(engine.tokenBucketCheck(state, 100, 1, config, out).retryAfterMillis, 1400)
  })

  it("leaky meter: level drains continuously", () => {
    const config = { capacity: 4, leakPerSecond: 4 }
    const state = engine.leakyMeterMake(config, 0)
    const out = engine.makeDecision()
    assert.isTrue(engine.leakyMeterConsume(state, 0, 4, config, out).allowed)
    const d = engine.leakyMeterConsume(state, 100, 2, config, out)
    assert.isFalse(d.allowed)
    assert.strictEqual(d.remaining, 0)
    assert.strictEqual(d.retryAfterMillis, 400)
    assert.strictEqual(d.resetMillis, 900)
  })

  it("shaping queue: delays instead of refusing until the queue is full", () => {
    const config = { capacity: 3, leakPerSecond: 10 }
    const state = engine.leakyQueueMake(config, 0)
    const out = engine.makeDecision()
    const delays: Array<number> = []
    for (let i = 0; i < 3; i++) {
      const d = engine.leakyQueueConsume(state, 0, 1, config, out)
      assert.isTrue(d.allowed)
      delays.push(d.delayMillis)
    }
    assert.deepStrictEqual(delays, [0, 100, 200])
    const full = engine.leakyQueueConsume(state, 50, 1, config, out)
    assert.deepStrictEqual(
      { ...full },
      {
        allowed: false,
        limit: 3,
        remaining: 0,
        resetMillis: 250,
        retryAfterMillis: 50,
        delayMillis: 0
      }
    )
    assert.strictEqual(engine.leakyQueueConsume(state, 100, 1, config, out).delayMillis, 200)
  })

  it("concurrency: permits, released and never below zero", () => {
    const config = { limit: 2 }
    const state = engine.concurrencyMake(config, 0)
    const out = engine.makeDecision()
    assert.isTrue(engine.concurrencyConsume(state, 0, 2, config, out).allowed)
    const d = engine.concurrencyConsume(state, 0, 1, config, out)
    assert.deepStrictEqual(
      { ...d },
      {
        allowed: false,
        limit: 2,
        remaining: 0,
        resetMillis: 0,
        retryAfterMillis: 0,
        delayMillis: 0
      }
    )
    assert.strictEqual(engine.concurrencyCheck(state, 0, 3, config, out).retryAfterMillis, Infinity)
    engine.concurrencyRelease(state, 5)
    assert.deepStrictEqual(state, { inFlight: 0 })
  })
})
