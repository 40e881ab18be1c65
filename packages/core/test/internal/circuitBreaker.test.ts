import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/circuitBreaker.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const STATES: ReadonlyArray<engine.StateTag> = ["Closed", "Open", "HalfOpen", "Disabled", "ForcedOpen", "MetricsOnly"]

/** The verdicts `admit` may return from each state. */
const VERDICTS: Record<engine.StateTag, ReadonlyArray<engine.Verdict>> = {
  Closed: ["Admit"],
  Disabled: ["Admit"],
  MetricsOnly: ["Admit"],
  ForcedOpen: ["RejectForced"],
  Open: ["RejectOpen", "Probe"],
  HalfOpen: ["Probe", "RejectHalfOpen", "RejectOpen"]
}

const defaults: engine.Config = {
  consecutiveFailures: 0,
  failureRateThreshold: 0,
  slowCallRateThreshold: 0,
  slowCallMillis: Infinity,
  windowType: "count",
  windowSize: 10,
  bucketMillis: 1000,
  minimumCalls: 1,
  halfOpenPermittedCalls: 1,
  halfOpenSuccessesToClose: 1,
  halfOpenSuccessRate: 0,
  halfOpenMaxMillis: Infinity,
  maxOpenMillis: 60_000
}

const configWith = (overrides: Partial<engine.Config>): engine.Config => ({ ...defaults, ...overrides })

const backoff =
  (baseOpenMillis: number, capOpenMillis: number) =>
  (n: number): number =>
    Math.min(capOpenMillis, baseOpenMillis * 2 ** (n - 1))

/** A circuit with its clock, generation counter and backoff: the engine's caller, minus Effect. */
class Breaker {
  readonly config: engine.Config
  readonly openMillisFor: (consecutiveOpenings: number) => number
  readonly c: engine.Circuit
  now: number
  private generations = 0
  readonly nextGeneration = (): number => ++this.generations
  private readonly out: engine.Admission = { verdict: "Admit", transition: undefined }

  constructor(config: engine.Config, openMillisFor: (n: number) => number = backoff(1000, 60_000), now = 0) {
    this.config = config
    this.openMillisFor = openMillisFor
    this.now = now
    this.c = engine.make(this.nextGeneration())
  }

  admit(): engine.Admission {
    const a = engine.admit(this.c, this.now, this.config, this.openMillisFor, this.nextGeneration, this.out)
    return { verdict: a.verdict, transition: a.transition }
  }

  record(generation: number, outcome: engine.Outcome, durationMillis = 0, hintMillis = 0) {
    return engine.record(
      this.c,
      generation,
      outcome,
      durationMillis,
      hintMillis,
      this.now,
      this.config,
      this.openMillisFor,
      this.nextGeneration
    )
  }

  /** Admits a call (asserting it runs) and records its outcome right away. */
  call(outcome: engine.Outcome, durationMillis = 0, hintMillis = 0) {
    const a = this.admit()
    assert.include(["Admit", "Probe"], a.verdict)
    return this.record(this.c.generation, outcome, durationMillis, hintMillis)
  }

  force(to: engine.ManualState) {
    return engine.force(this.c, to, this.now, this.nextGeneration())
  }
}

const expectedOpenMillis = (openMillis: number, hintMillis: number, config: engine.Config): number =>
  hintMillis > 0 ? Math.max(openMillis, Math.min(hintMillis, config.maxOpenMillis)) : openMillis

// ---------------------------------------------------------------------------
// a naive window: every counted outcome in a list
// ---------------------------------------------------------------------------

interface Entry {
  readonly t: number
  readonly failed: boolean
  readonly slow: boolean
}

class NaiveWindow {
  readonly config: engine.Config
  entries: Array<Entry> = []
  consecutive = 0

  constructor(config: engine.Config) {
    this.config = config
  }

  reset(): void {
    this.entries = []
    this.consecutive = 0
  }

  push(t: number, outcome: engine.Outcome, durationMillis: number): void {
    if (outcome === "Ignored") return
    const failed = outcome === "Failure"
    this.consecutive = failed ? this.consecutive + 1 : 0
    this.entries.push({ t, failed, slow: durationMillis >= this.config.slowCallMillis })
  }

  /** The entries the engine's window should hold at `now`. */
  current(now: number): ReadonlyArray<Entry> {
    if (this.config.windowType === "count") return this.entries.slice(-this.config.windowSize)
    const oldest = Math.floor(now / this.config.bucketMillis) - this.config.windowSize + 1
    return this.entries.filter((e) => Math.floor(e.t / this.config.bucketMillis) >= oldest)
  }

  totals(now: number): { calls: number; failures: number; slow: number } {
    const entries = this.current(now)
    return {
      calls: entries.length,
      failures: entries.filter((e) => e.failed).length,
      slow: entries.filter((e) => e.slow).length
    }
  }

  /** The snapshot window the engine should export at `now`. */
  snapshotWindow(now: number): ReadonlyArray<ReadonlyArray<number>> {
    const entries = this.current(now)
    if (this.config.windowType === "count") return entries.map((e) => [e.failed ? 1 : 0, e.slow ? 1 : 0])
    const buckets = new Map<number, [number, number, number, number]>()
    for (const e of entries) {
      const epoch = Math.floor(e.t / this.config.bucketMillis)
      const bucket = buckets.get(epoch) ?? [epoch, 0, 0, 0]
      bucket[1]++
      if (e.failed) bucket[2]++
      if (e.slow) bucket[3]++
      buckets.set(epoch, bucket)
    }
    return [...buckets.values()].sort((a, b) => a[0] - b[0])
  }

  trips(now: number): boolean {
    const config = this.config
    if (config.consecutiveFailures > 0 && this.consecutive >= config.consecutiveFailures) return true
    const { calls, failures, slow } = this.totals(now)
    if (calls < config.minimumCalls) return false
    if (config.failureRateThreshold > 0 && failures > 0 && failures / calls >= config.failureRateThreshold) return true
    return config.slowCallRateThreshold > 0 && slow > 0 && slow / calls >= config.slowCallRateThreshold
  }
}

// ---------------------------------------------------------------------------
// random traces
// ---------------------------------------------------------------------------

type Step =
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "Admit" }
  | {
      readonly _tag: "Complete"
      readonly pick: number
      readonly outcome: engine.Outcome
      readonly durationMillis: number
      readonly hintMillis: number
    }
  | { readonly _tag: "Force"; readonly to: engine.ManualState }

interface Scenario {
  readonly config: engine.Config
  readonly baseOpenMillis: number
  readonly capOpenMillis: number
  readonly start: number
  readonly steps: ReadonlyArray<Step>
}

interface Pending {
  readonly generation: number
  readonly probe: boolean
}

interface Observation {
  readonly index: number
  readonly step: Step
  readonly now: number
  readonly stateBefore: engine.StateTag
  readonly generationBefore: number
  readonly snapshotBefore: engine.Snapshot
  readonly verdict: engine.Verdict | undefined
  /** The call a Complete step finished, if any was pending. */
  readonly completed: Pending | undefined
  readonly transition: engine.Transition | undefined
  /** Calls still running after this step. */
  readonly pending: ReadonlyArray<Pending>
}

const rateArb: fc.Arbitrary<number> = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 20 }).map((n) => n / 20)
)

const configArb: fc.Arbitrary<engine.Config> = fc
  .record({
    windowType: fc.constantFrom<"count" | "time">("count", "time"),
    windowSize: fc.integer({ min: 1, max: 20 }),
    halfOpenPermittedCalls: fc.integer({ min: 1, max: 5 })
  })
  .chain(({ halfOpenPermittedCalls, windowSize, windowType }) =>
    fc.record({
      consecutiveFailures: fc.integer({ min: 0, max: 5 }),
      failureRateThreshold: rateArb,
      slowCallRateThreshold: rateArb,
      slowCallMillis: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 100 })),
      windowType: fc.constant(windowType),
      windowSize: fc.constant(windowSize),
      bucketMillis: fc.integer({ min: 1, max: 1000 }),
      minimumCalls: fc.integer({ min: 1, max: windowType === "count" ? windowSize : 10 }),
      halfOpenPermittedCalls: fc.constant(halfOpenPermittedCalls),
      halfOpenSuccessesToClose: fc.integer({ min: 1, max: halfOpenPermittedCalls }),
      halfOpenSuccessRate: rateArb,
      halfOpenMaxMillis: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 5000 })),
      maxOpenMillis: fc.integer({ min: 1, max: 20_000 })
    })
  )

const hintArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.constant(0), weight: 4 },
  { arbitrary: fc.integer({ min: 1, max: 30_000 }), weight: 1 }
)

const advanceArb: fc.Arbitrary<Step> = fc
  .oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 3000 }))
  .map((millis): Step => ({ _tag: "Advance", millis }))

const admitArb: fc.Arbitrary<Step> = fc.constant<Step>({ _tag: "Admit" })

const completeArb: fc.Arbitrary<Step> = fc
  .record({
    pick: fc.nat(),
    outcome: fc.constantFrom<engine.Outcome>("Success", "Failure", "Failure", "Ignored"),
    durationMillis: fc.integer({ min: 0, max: 150 }),
    hintMillis: hintArb
  })
  .map(
    ({ durationMillis, hintMillis, outcome, pick }): Step => ({
      _tag: "Complete",
      pick,
      outcome,
      durationMillis,
      hintMillis
    })
  )

const forceArb: fc.Arbitrary<Step> = fc
  .constantFrom<engine.ManualState>("Closed", "Disabled", "ForcedOpen", "MetricsOnly")
  .map((to): Step => ({ _tag: "Force", to }))

/** Steps of a trace; manual states only in half the traces, as they freeze the automatic ones. */
const stepsArb: fc.Arbitrary<ReadonlyArray<Step>> = fc
  .boolean()
  .chain((withForce) =>
    fc.array(
      fc.oneof(
        { arbitrary: advanceArb, weight: 6 },
        { arbitrary: admitArb, weight: 10 },
        { arbitrary: completeArb, weight: 10 },
        { arbitrary: forceArb, weight: withForce ? 1 : 0 }
      ),
      { minLength: 10, maxLength: 150, size: "max" }
    )
  )

const scenarioArb = (config: fc.Arbitrary<engine.Config> = configArb): fc.Arbitrary<Scenario> =>
  fc
    .record({
      config,
      baseOpenMillis: fc.integer({ min: 1, max: 500 }),
      capExtra: fc.integer({ min: 0, max: 5000 }),
      start: fc.integer({ min: 0, max: 10_000 }),
      steps: stepsArb
    })
    .map(({ baseOpenMillis, capExtra, config, start, steps }) => ({
      config,
      baseOpenMillis,
      capOpenMillis: baseOpenMillis + capExtra,
      start,
      steps
    }))

/** Trace properties are cheap (~1 ms a trace): run more of them than fast-check's default 100. */
const traceRuns = { numRuns: 300 }

/** Runs a scenario, calling `observe` after every step. */
const runTrace = (s: Scenario, observe: (b: Breaker, o: Observation) => void): Breaker => {
  const b = new Breaker(s.config, backoff(s.baseOpenMillis, s.capOpenMillis), s.start)
  const pending: Array<Pending> = []
  s.steps.forEach((step, index) => {
    const stateBefore = b.c.state
    const generationBefore = b.c.generation
    const snapshotBefore = engine.toSnapshot(b.c)
    let verdict: engine.Verdict | undefined
    let completed: Pending | undefined
    let transition: engine.Transition | undefined
    switch (step._tag) {
      case "Advance": {
        b.now += step.millis
        break
      }
      case "Admit": {
        const a = b.admit()
        verdict = a.verdict
        transition = a.transition
        if (verdict === "Admit" || verdict === "Probe") {
          pending.push({ generation: b.c.generation, probe: verdict === "Probe" })
        }
        break
      }
      case "Complete": {
        if (pending.length === 0) break
        completed = pending.splice(step.pick % pending.length, 1)[0]
        if (completed !== undefined) {
          transition = b.record(completed.generation, step.outcome, step.durationMillis, step.hintMillis)
        }
        break
      }
      case "Force": {
        transition = b.force(step.to)
        break
      }
    }
    observe(b, {
      index,
      step,
      now: b.now,
      stateBefore,
      generationBefore,
      snapshotBefore,
      verdict,
      completed,
      transition,
      pending
    })
  })
  return b
}

/** Whether the step recorded an outcome the engine counted (current generation, Closed or MetricsOnly). */
const countedOutcome = (o: Observation): engine.Outcome | undefined =>
  o.step._tag === "Complete" &&
  o.completed !== undefined &&
  o.completed.generation === o.generationBefore &&
  (o.stateBefore === "Closed" || o.stateBefore === "MetricsOnly")
    ? o.step.outcome
    : undefined

/** Whether the step made the engine empty its window (`resetWindow`). */
const resetsWindow = (o: Observation): boolean =>
  o.transition?.to === "Open" ||
  (o.transition?.from === "HalfOpen" && o.transition.to === "Closed") ||
  (o.step._tag === "Force" && o.step.to === "Closed")

/** Keeps a naive window in step with a trace; returns whether a counted outcome should have tripped. */
const followWindow = (model: NaiveWindow, o: Observation): boolean => {
  let shouldTrip = false
  const outcome = countedOutcome(o)
  if (outcome !== undefined && o.step._tag === "Complete") {
    model.push(o.now, outcome, o.step.durationMillis)
    shouldTrip = o.stateBefore === "Closed" && outcome !== "Ignored" && model.trips(o.now)
  }
  if (resetsWindow(o)) model.reset()
  return shouldTrip
}

// ---------------------------------------------------------------------------
// examples
// ---------------------------------------------------------------------------

describe("circuitBreaker engine: examples", () => {
  it("count window 4, minimumCalls 4, threshold 0.5: S,F,S stays closed; F opens", () => {
    const b = new Breaker(configWith({ windowSize: 4, minimumCalls: 4, failureRateThreshold: 0.5 }))
    assert.isUndefined(b.call("Success"))
    assert.isUndefined(b.call("Failure"))
    assert.isUndefined(b.call("Success"))
    assert.strictEqual(b.c.state, "Closed")
    assert.strictEqual(b.c.calls, 3)
    assert.strictEqual(b.c.failures, 1)
    assert.strictEqual(engine.failureRate(b.c), 1 / 3)
    const t = b.call("Failure")
    assert.deepStrictEqual(t, { from: "Closed", to: "Open", openMillis: 1000, consecutiveOpenings: 1 })
    assert.strictEqual(b.c.state, "Open")
    assert.strictEqual(b.c.calls, 0)
    assert.strictEqual(b.c.failures, 0)
  })

  it("does not evaluate rates below minimumCalls", () => {
    const b = new Breaker(configWith({ windowSize: 10, minimumCalls: 5, failureRateThreshold: 0.5 }))
    for (let i = 0; i < 4; i++) assert.isUndefined(b.call("Failure"))
    assert.strictEqual(b.c.calls, 4)
    assert.strictEqual(b.c.failures, 4)
    assert.strictEqual(b.call("Failure")?.to, "Open")
  })

  it("a full count window evicts its oldest call", () => {
    const b = new Breaker(configWith({ windowSize: 3, minimumCalls: 3, failureRateThreshold: 0.7 }))
    assert.isUndefined(b.call("Failure"))
    assert.isUndefined(b.call("Success"))
    assert.isUndefined(b.call("Success"))
    assert.strictEqual(b.c.failures, 1)
    assert.isUndefined(b.call("Success"))
    assert.strictEqual(b.c.calls, 3)
    assert.strictEqual(b.c.failures, 0)
    assert.deepStrictEqual(engine.toSnapshot(b.c).window, [
      [0, 0],
      [0, 0],
      [0, 0]
    ])
    assert.isUndefined(b.call("Failure"))
    assert.isUndefined(b.call("Failure"))
    // F,F over S: 2/3 < 0.7
    assert.strictEqual(b.c.state, "Closed")
    assert.strictEqual(b.call("Failure")?.to, "Open")
  })

  it("Ignored outcomes are not counted and do not break a failure streak", () => {
    const b = new Breaker(configWith({ consecutiveFailures: 3, windowSize: 5 }))
    assert.isUndefined(b.call("Failure"))
    assert.isUndefined(b.call("Failure"))
    assert.isUndefined(b.call("Ignored"))
    assert.strictEqual(b.c.calls, 2)
    assert.strictEqual(b.c.consecutive, 2)
    assert.isUndefined(b.call("Success"))
    assert.strictEqual(b.c.consecutive, 0)
    assert.isUndefined(b.call("Failure"))
    assert.isUndefined(b.call("Failure"))
    assert.strictEqual(b.call("Failure")?.to, "Open")
  })

  it("slow calls: duration >= slowCallMillis is slow, successes included", () => {
    const b = new Breaker(
      configWith({ windowSize: 4, minimumCalls: 4, slowCallMillis: 100, slowCallRateThreshold: 0.5 })
    )
    assert.isUndefined(b.call("Success", 99))
    assert.isUndefined(b.call("Success", 100))
    assert.isUndefined(b.call("Success", 0))
    assert.strictEqual(b.c.slow, 1)
    assert.strictEqual(engine.slowCallRate(b.c), 1 / 3)
    const t = b.call("Success", 250)
    assert.strictEqual(t?.to, "Open")
  })

  it("time window: buckets older than windowSize buckets drop out", () => {
    const b = new Breaker(configWith({ windowType: "time", windowSize: 2, bucketMillis: 1000, minimumCalls: 10 }))
    b.now = 0
    b.call("Failure")
    b.now = 1500
    b.call("Success")
    assert.strictEqual(b.c.calls, 2)
    assert.deepStrictEqual(engine.toSnapshot(b.c).window, [
      [0, 1, 1, 0],
      [1, 1, 0, 0]
    ])
    b.now = 1999
    engine.expireBuckets(b.c, b.now, b.config)
    assert.strictEqual(b.c.calls, 2)
    b.now = 2000
    engine.expireBuckets(b.c, b.now, b.config)
    assert.strictEqual(b.c.calls, 1)
    assert.strictEqual(b.c.failures, 0)
    b.now = 3000
    engine.expireBuckets(b.c, b.now, b.config)
    assert.strictEqual(b.c.calls, 0)
  })

  it("half-open: permits exactly halfOpenPermittedCalls probes, closes after halfOpenSuccessesToClose", () => {
    const b = new Breaker(
      configWith({ consecutiveFailures: 1, halfOpenPermittedCalls: 3, halfOpenSuccessesToClose: 2 })
    )
    assert.strictEqual(b.call("Failure")?.to, "Open")
    b.now = 999
    assert.strictEqual(b.admit().verdict, "RejectOpen")
    b.now = 1000
    const first = b.admit()
    assert.strictEqual(first.verdict, "Probe")
    assert.deepStrictEqual(first.transition, { from: "Open", to: "HalfOpen", openMillis: 0, consecutiveOpenings: 1 })
    const g = b.c.generation
    assert.strictEqual(b.admit().verdict, "Probe")
    assert.strictEqual(b.admit().verdict, "Probe")
    assert.strictEqual(b.admit().verdict, "RejectHalfOpen")
    assert.isUndefined(b.record(g, "Success"))
    assert.strictEqual(b.c.state, "HalfOpen")
    const closed = b.record(g, "Success")
    assert.deepStrictEqual(closed, { from: "HalfOpen", to: "Closed", openMillis: 0, consecutiveOpenings: 1 })
    // the third probe's outcome is stale now
    assert.isUndefined(b.record(g, "Failure"))
    assert.strictEqual(b.c.state, "Closed")
    assert.strictEqual(b.c.backoffResetAt, 2000)
  })

  it("half-open too long reopens with the next backoff step", () => {
    const b = new Breaker(configWith({ consecutiveFailures: 1, halfOpenMaxMillis: 500 }))
    b.call("Failure")
    b.now = 1000
    assert.strictEqual(b.admit().verdict, "Probe")
    b.now = 1499
    assert.strictEqual(b.admit().verdict, "RejectHalfOpen")
    b.now = 1500
    const a = b.admit()
    assert.strictEqual(a.verdict, "RejectOpen")
    assert.deepStrictEqual(a.transition, { from: "HalfOpen", to: "Open", openMillis: 2000, consecutiveOpenings: 2 })
    assert.strictEqual(b.c.openUntil, 3500)
  })

  it("a retry-after hint lengthens the opening up to maxOpenMillis", () => {
    const b = new Breaker(configWith({ consecutiveFailures: 1, maxOpenMillis: 3000 }))
    assert.strictEqual(b.call("Failure", 0, 5000)?.openMillis, 3000)
    const c = new Breaker(configWith({ consecutiveFailures: 1, maxOpenMillis: 3000 }))
    assert.strictEqual(c.call("Failure", 0, 500)?.openMillis, 1000)
  })

  it("backoff resets once the circuit stays closed as long as it was last open", () => {
    const run = (reopenAfter: number) => {
      const b = new Breaker(configWith({ consecutiveFailures: 1 }))
      b.call("Failure")
      b.now = 1000
      b.call("Failure") // probe fails: second opening, 2000 ms
      b.now = 3000
      assert.strictEqual(b.call("Success")?.to, "Closed")
      assert.strictEqual(b.c.backoffResetAt, 5000)
      b.now = 3000 + reopenAfter
      return b.call("Failure")
    }
    assert.deepStrictEqual(run(1999), { from: "Closed", to: "Open", openMillis: 4000, consecutiveOpenings: 3 })
    assert.deepStrictEqual(run(2000), { from: "Closed", to: "Open", openMillis: 1000, consecutiveOpenings: 1 })
  })

  it("manual states: Disabled admits and measures nothing, ForcedOpen rejects, MetricsOnly measures only", () => {
    const b = new Breaker(configWith({ consecutiveFailures: 1 }))
    assert.deepStrictEqual(b.force("Disabled"), {
      from: "Closed",
      to: "Disabled",
      openMillis: 0,
      consecutiveOpenings: 0
    })
    assert.isUndefined(b.call("Failure"))
    assert.strictEqual(b.c.calls, 0)
    b.force("ForcedOpen")
    assert.strictEqual(b.admit().verdict, "RejectForced")
    b.force("MetricsOnly")
    for (let i = 0; i < 5; i++) assert.isUndefined(b.call("Failure"))
    assert.strictEqual(b.c.state, "MetricsOnly")
    assert.strictEqual(b.c.calls, 5)
    assert.isUndefined(b.force("MetricsOnly"))
    b.force("Closed")
    assert.strictEqual(b.c.calls, 0)
    assert.strictEqual(b.call("Failure")?.to, "Open")
  })
})

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

describe("circuitBreaker engine: properties", () => {
  it("is always in exactly one of the six states, with no probes outside HalfOpen", () => {
    fc.assert(
      fc.property(scenarioArb(), (s) => {
        let lastGeneration = 0
        runTrace(s, (b, o) => {
          const c = b.c
          assert.include(STATES, c.state)
          if (c.state === "Closed" || c.state === "Disabled" || c.state === "MetricsOnly") {
            assert.strictEqual(c.probesInFlight, 0)
            assert.strictEqual(c.probesAdmitted, 0)
          }
          if (c.state !== "HalfOpen") assert.strictEqual(c.probesAdmitted + c.probesInFlight, 0)
          // the verdict fits the state admit saw
          if (o.verdict !== undefined) assert.include(VERDICTS[o.stateBefore], o.verdict)
          // a transition names the states left and entered
          if (o.transition !== undefined) {
            assert.strictEqual(o.transition.from, o.stateBefore)
            assert.strictEqual(o.transition.to, c.state)
            assert.notStrictEqual(o.transition.from, o.transition.to)
          } else if (!(o.step._tag === "Force" && o.step.to === "Closed")) {
            assert.strictEqual(c.state, o.stateBefore)
          }
          // the fencing token changes exactly on state changes (and on a forced reset), and only grows
          const changed = o.transition !== undefined || (o.step._tag === "Force" && o.step.to === "Closed")
          assert.strictEqual(c.generation !== o.generationBefore, changed)
          assert.isAtLeast(c.generation, lastGeneration)
          lastGeneration = c.generation
        })
      }),
      traceRuns
    )
  })

  it("never has more half-open probes than permitted", () => {
    fc.assert(
      fc.property(scenarioArb(), (s) => {
        const permitted = s.config.halfOpenPermittedCalls
        let probes = 0
        let ignored = 0
        runTrace(s, (b, o) => {
          const c = b.c
          assert.isAtMost(c.probesAdmitted, permitted)
          assert.isAtLeast(c.probesInFlight, 0)
          assert.isAtMost(c.probesInFlight, c.probesAdmitted)
          if (o.transition?.to === "HalfOpen") {
            probes = 0
            ignored = 0
          }
          if (o.verdict === "Probe") probes++
          if (
            o.step._tag === "Complete" &&
            o.step.outcome === "Ignored" &&
            o.stateBefore === "HalfOpen" &&
            o.completed?.generation === o.generationBefore
          ) {
            ignored++
          }
          if (c.state === "HalfOpen") {
            assert.isAtMost(probes - ignored, permitted)
            assert.strictEqual(c.probesAdmitted, probes - ignored)
            // in flight: the probes of this period still running
            const running = o.pending.filter((p) => p.probe && p.generation === c.generation).length
            assert.strictEqual(c.probesInFlight, running)
          }
        })
      }),
      traceRuns
    )
  })

  it("window counts equal a naive recomputation", () => {
    fc.assert(
      fc.property(scenarioArb(), (s) => {
        const model = new NaiveWindow(s.config)
        runTrace(s, (b, o) => {
          followWindow(model, o)
          const c = b.c
          if (s.config.windowType === "time") engine.expireBuckets(c, o.now, s.config)
          assert.deepStrictEqual({ calls: c.calls, failures: c.failures, slow: c.slow }, model.totals(o.now))
          assert.strictEqual(c.consecutive, model.consecutive)
          assert.deepStrictEqual(engine.toSnapshot(c).window, model.snapshotWindow(o.now))
          assert.strictEqual(engine.failureRate(c), c.calls === 0 ? 0 : c.failures / c.calls)
        })
      }),
      traceRuns
    )
  })

  it("opens from Closed exactly when a naive evaluation of the policies trips", () => {
    fc.assert(
      fc.property(scenarioArb(), (s) => {
        const model = new NaiveWindow(s.config)
        runTrace(s, (_, o) => {
          const shouldTrip = followWindow(model, o)
          if (o.stateBefore === "Closed" && o.step._tag === "Complete") {
            assert.strictEqual(o.transition?.to === "Open", shouldTrip)
          }
          // MetricsOnly measures but never opens
          if (o.stateBefore === "MetricsOnly" && o.step._tag === "Complete") assert.isUndefined(o.transition)
        })
      }),
      traceRuns
    )
  })

  describe("every trip policy reaches HalfOpen at exactly the open duration", () => {
    type Kind = "consecutive" | "count-window failure rate" | "time-window failure rate" | "slow-call rate"
    const kinds: ReadonlyArray<Kind> = [
      "consecutive",
      "count-window failure rate",
      "time-window failure rate",
      "slow-call rate"
    ]

    const configFor = (kind: Kind): fc.Arbitrary<engine.Config> => {
      switch (kind) {
        case "consecutive":
          return fc
            .record({ n: fc.integer({ min: 1, max: 5 }), windowSize: fc.integer({ min: 1, max: 20 }) })
            .map(({ n, windowSize }) => configWith({ consecutiveFailures: n, windowSize }))
        case "count-window failure rate":
          return fc
            .integer({ min: 1, max: 20 })
            .chain((windowSize) =>
              fc.record({
                windowSize: fc.constant(windowSize),
                minimumCalls: fc.integer({ min: 1, max: windowSize }),
                failureRateThreshold: fc.integer({ min: 1, max: 20 }).map((n) => n / 20)
              })
            )
            .map((o) => configWith(o))
        case "time-window failure rate":
          return fc
            .record({
              windowType: fc.constant<"time">("time"),
              windowSize: fc.integer({ min: 1, max: 20 }),
              bucketMillis: fc.integer({ min: 1, max: 1000 }),
              minimumCalls: fc.integer({ min: 1, max: 10 }),
              failureRateThreshold: fc.integer({ min: 1, max: 20 }).map((n) => n / 20)
            })
            .map((o) => configWith(o))
        case "slow-call rate":
          return fc
            .integer({ min: 1, max: 20 })
            .chain((windowSize) =>
              fc.record({
                windowType: fc.constantFrom<"count" | "time">("count", "time"),
                windowSize: fc.constant(windowSize),
                bucketMillis: fc.integer({ min: 1, max: 1000 }),
                minimumCalls: fc.integer({ min: 1, max: windowSize }),
                slowCallMillis: fc.integer({ min: 1, max: 100 }),
                slowCallRateThreshold: fc.integer({ min: 1, max: 20 }).map((n) => n / 20)
              })
            )
            .map((o) => configWith(o))
      }
    }

    const prefixArb = fc.array(
      fc.record({
        outcome: fc.constantFrom<engine.Outcome>("Success", "Failure", "Ignored"),
        durationMillis: fc.integer({ min: 0, max: 150 }),
        advance: fc.integer({ min: 0, max: 2000 })
      }),
      { maxLength: 20 }
    )

    /** Asserts the Open circuit rejects until `t + m - 1` and probes at `t + m`. */
    const assertHalfOpensAt = (b: Breaker, t: number, m: number): void => {
      assert.strictEqual(b.c.state, "Open")
      b.now = t + m - 1
      const early = b.admit()
      assert.strictEqual(early.verdict, "RejectOpen")
      assert.isUndefined(early.transition)
      assert.strictEqual(b.c.state, "Open")
      b.now = t + m
      const onTime = b.admit()
      assert.strictEqual(onTime.verdict, "Probe")
      assert.strictEqual(onTime.transition?.from, "Open")
      assert.strictEqual(onTime.transition?.to, "HalfOpen")
      assert.strictEqual(b.c.state, "HalfOpen")
    }

    for (const kind of kinds) {
      it(kind, () => {
        fc.assert(
          fc.property(
            configFor(kind),
            fc.integer({ min: 1, max: 500 }),
            fc.integer({ min: 0, max: 10_000 }),
            fc.integer({ min: 0, max: 10_000 }),
            prefixArb,
            fc.integer({ min: 0, max: 3000 }),
            (config, base, start, capExtra, prefix, probeDelay) => {
              const openMillisFor = backoff(base, base + capExtra)
              const b = new Breaker(config, openMillisFor, start)
              const model = new NaiveWindow(config)
              const tail: { outcome: engine.Outcome; durationMillis: number; advance: number } = {
                outcome: kind === "slow-call rate" ? "Success" : "Failure",
                durationMillis: kind === "slow-call rate" ? config.slowCallMillis : 0,
                advance: 0
              }
              // after the random prefix, a time window first turns over so the tail alone fills it
              const turnOver = config.windowType === "time" ? config.windowSize * config.bucketMillis : 0
              const calls = [
                ...prefix,
                { ...tail, advance: turnOver },
                ...Array.from({ length: 2 * config.windowSize + 10 }, () => tail)
              ]
              let opened: engine.Transition | undefined
              for (const call of calls) {
                b.now += call.advance
                opened = b.call(call.outcome, call.durationMillis)
                model.push(b.now, call.outcome, call.durationMillis)
                assert.strictEqual(opened !== undefined, call.outcome !== "Ignored" && model.trips(b.now))
                if (opened !== undefined) break
              }
              assert.isDefined(opened)
              if (opened === undefined) return
              assert.strictEqual(opened.from, "Closed")
              assert.strictEqual(opened.to, "Open")
              assert.strictEqual(opened.openMillis, openMillisFor(1))
              const t = b.now
              const m = opened.openMillis
              assertHalfOpensAt(b, t, m)
              // a failing probe reopens for the next backoff step, with the same timing
              b.now += probeDelay
              const reopened = b.record(b.c.generation, "Failure")
              assert.strictEqual(reopened?.from, "HalfOpen")
              assert.strictEqual(reopened?.openMillis, openMillisFor(2))
              assertHalfOpensAt(b, b.now, openMillisFor(2))
            }
          )
        )
      })
    }
  })

  it("stale outcomes change nothing", () => {
    const staleArb = fc.array(
      fc.record({
        offset: fc.oneof(fc.integer({ min: -5, max: -1 }), fc.integer({ min: 1, max: 5 })),
        outcome: fc.constantFrom<engine.Outcome>("Success", "Failure", "Ignored"),
        durationMillis: fc.integer({ min: 0, max: 150 }),
        hintMillis: hintArb
      }),
      { minLength: 1, maxLength: 10 }
    )
    fc.assert(
      fc.property(scenarioArb(), staleArb, (s, stale) => {
        runTrace(s, (b, o) => {
          const c = b.c
          // calls admitted before a state change complete with an old generation
          if (o.completed !== undefined && o.completed.generation !== o.generationBefore) {
            assert.isUndefined(o.transition)
            assert.deepStrictEqual(engine.toSnapshot(c), o.snapshotBefore)
            assert.strictEqual(c.generation, o.generationBefore)
          }
          // and any generation but the current one is ignored, whatever the state
          const x = stale[o.index % stale.length]
          if (x === undefined) return
          const before = engine.clone(c)
          const snapshot = engine.toSnapshot(c)
          const result = engine.record(
            c,
            c.generation + x.offset,
            x.outcome,
            x.durationMillis,
            x.hintMillis,
            o.now,
            s.config,
            b.openMillisFor,
            b.nextGeneration
          )
          assert.isUndefined(result)
          assert.deepStrictEqual(engine.toSnapshot(c), snapshot)
          assert.deepStrictEqual(c, before)
        })
      }),
      traceRuns
    )
  })

  describe("half-open probes in count mode", () => {
    const countModeArb = configArb.map((config) => ({ ...config, halfOpenSuccessRate: 0 }))

    /** A circuit that has just moved to HalfOpen by admitting its first probe. */
    const halfOpen = (config: engine.Config, base: number, openings: number) => {
      const b = new Breaker(config, backoff(base, 100_000), 0)
      for (let i = 0; i < openings; i++) {
        engine.open(b.c, "HalfOpen", b.openMillisFor(b.c.consecutiveOpenings + 1), b.now, b.nextGeneration())
      }
      b.now = b.c.openUntil
      const first = b.admit()
      assert.strictEqual(first.verdict, "Probe")
      assert.strictEqual(b.c.state, "HalfOpen")
      return b
    }

    it("a Failure probe reopens", () => {
      fc.assert(
        fc.property(
          countModeArb,
          fc.integer({ min: 1, max: 500 }),
          fc.integer({ min: 1, max: 4 }),
          fc.nat(),
          fc.nat(),
          (config, base, openings, extra, successes) => {
            const b = halfOpen(config, base, openings)
            const g = b.c.generation
            const admitted = 1 + (extra % config.halfOpenPermittedCalls)
            for (let i = 1; i < admitted; i++) assert.strictEqual(b.admit().verdict, "Probe")
            const before = Math.min(successes % admitted, config.halfOpenSuccessesToClose - 1)
            for (let i = 0; i < before; i++) assert.isUndefined(b.record(g, "Success"))
            const t = b.record(g, "Failure")
            assert.deepStrictEqual(t, {
              from: "HalfOpen",
              to: "Open",
              openMillis: b.openMillisFor(openings + 1),
              consecutiveOpenings: openings + 1
            })
            assert.strictEqual(b.c.state, "Open")
            assert.strictEqual(b.c.probesAdmitted, 0)
            assert.strictEqual(b.c.probesInFlight, 0)
          }
        )
      )
    })

    it("halfOpenSuccessesToClose successful probes close", () => {
      fc.assert(
        fc.property(countModeArb, fc.integer({ min: 1, max: 500 }), fc.nat(), (config, base, extra) => {
          const b = halfOpen(config, base, 1)
          const g = b.c.generation
          const k = config.halfOpenSuccessesToClose
          const admitted = k + (extra % (config.halfOpenPermittedCalls - k + 1))
          for (let i = 1; i < admitted; i++) assert.strictEqual(b.admit().verdict, "Probe")
          for (let i = 1; i < k; i++) {
            assert.isUndefined(b.record(g, "Success"))
            assert.strictEqual(b.c.state, "HalfOpen")
          }
          const t = b.record(g, "Success")
          assert.strictEqual(t?.from, "HalfOpen")
          assert.strictEqual(t?.to, "Closed")
          assert.strictEqual(b.c.state, "Closed")
          assert.strictEqual(b.c.calls, 0)
          // the remaining probes are stale
          for (let i = k; i < admitted; i++) assert.isUndefined(b.record(g, "Failure"))
          assert.strictEqual(b.c.state, "Closed")
        })
      )
    })

    it("an Ignored probe frees its slot", () => {
      fc.assert(
        fc.property(countModeArb, fc.integer({ min: 1, max: 500 }), fc.nat(), (config, base, extra) => {
          const b = halfOpen(config, base, 1)
          const g = b.c.generation
          const permitted = config.halfOpenPermittedCalls
          const admitted = 1 + (extra % permitted)
          for (let i = 1; i < admitted; i++) assert.strictEqual(b.admit().verdict, "Probe")
          if (admitted === permitted) assert.strictEqual(b.admit().verdict, "RejectHalfOpen")
          assert.isUndefined(b.record(g, "Ignored"))
          assert.strictEqual(b.c.state, "HalfOpen")
          assert.strictEqual(b.c.probesAdmitted, admitted - 1)
          assert.strictEqual(b.c.probesInFlight, admitted - 1)
          assert.strictEqual(b.admit().verdict, "Probe")
          assert.strictEqual(b.c.probesAdmitted, admitted)
        })
      )
    })
  })

  it("success-rate mode decides once every permitted probe has completed", () => {
    const arb = fc
      .record({ config: configArb, rate: fc.integer({ min: 1, max: 20 }).map((n) => n / 20) })
      .chain(({ config, rate }) =>
        fc.record({
          config: fc.constant({ ...config, halfOpenSuccessRate: rate }),
          outcomes: fc.array(fc.constantFrom<engine.Outcome>("Success", "Failure"), {
            minLength: config.halfOpenPermittedCalls,
            maxLength: config.halfOpenPermittedCalls
          })
        })
      )
    fc.assert(
      fc.property(arb, ({ config, outcomes }) => {
        const b = new Breaker(config, backoff(100, 1000), 0)
        engine.open(b.c, "Closed", 100, 0, b.nextGeneration())
        b.now = 100
        for (let i = 0; i < outcomes.length; i++) assert.strictEqual(b.admit().verdict, "Probe")
        assert.strictEqual(b.admit().verdict, "RejectHalfOpen")
        const g = b.c.generation
        let last: engine.Transition | undefined
        outcomes.forEach((outcome, i) => {
          last = b.record(g, outcome)
          if (i < outcomes.length - 1) assert.isUndefined(last)
        })
        const successes = outcomes.filter((o) => o === "Success").length
        assert.strictEqual(last?.to, successes / outcomes.length >= config.halfOpenSuccessRate ? "Closed" : "Open")
      })
    )
  })

  it("snapshots round-trip", () => {
    fc.assert(
      fc.property(scenarioArb(), fc.integer({ min: 1, max: 1000 }), (s, g) => {
        const check = (c: engine.Circuit) => {
          const snapshot = engine.toSnapshot(c)
          const restored = engine.fromSnapshot(snapshot, s.config, g)
          assert.deepStrictEqual(engine.toSnapshot(restored), snapshot)
          assert.deepStrictEqual(
            { calls: restored.calls, failures: restored.failures, slow: restored.slow },
            { calls: c.calls, failures: c.failures, slow: c.slow }
          )
          assert.strictEqual(restored.generation, g)
          // JSON-safe
          assert.deepStrictEqual(JSON.parse(JSON.stringify(snapshot)), snapshot)
        }
        const b = runTrace(s, (b) => check(b.c))
        check(b.c)
      }),
      traceRuns
    )
  })

  it("backoff: consecutiveOpenings counts openings and resets from Closed at backoffResetAt", () => {
    fc.assert(
      fc.property(scenarioArb(), (s) => {
        let openings = 0
        let resetAt = 0
        let lastOpenMillis = 0
        runTrace(s, (b, o) => {
          const c = b.c
          const t = o.transition
          if (t?.to === "Open") {
            const expected = t.from === "Closed" && openings > 0 && o.now >= resetAt ? 1 : openings + 1
            assert.strictEqual(t.consecutiveOpenings, expected)
            const hint = o.step._tag === "Complete" ? o.step.hintMillis : 0
            assert.strictEqual(t.openMillis, expectedOpenMillis(b.openMillisFor(expected), hint, s.config))
            assert.strictEqual(c.openedAt, o.now)
            assert.strictEqual(c.openUntil, o.now + t.openMillis)
            openings = expected
            lastOpenMillis = t.openMillis
          } else if (o.step._tag === "Force" && o.step.to === "Closed") {
            // a forced reset, from any state
            openings = 0
            resetAt = o.now
          } else if (t?.from === "HalfOpen" && t.to === "Closed") {
            resetAt = o.now + lastOpenMillis
          }
          assert.strictEqual(c.consecutiveOpenings, openings)
          if (t !== undefined) assert.strictEqual(t.consecutiveOpenings, openings)
        })
      }),
      traceRuns
    )
  })
})
