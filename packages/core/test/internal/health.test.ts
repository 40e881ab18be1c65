import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/health.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const configArb: fc.Arbitrary<engine.Config> = fc.record({
  unhealthyAfter: fc.integer({ min: 1, max: 5 }),
  healthyAfter: fc.integer({ min: 1, max: 5 }),
  slowThresholdMillis: fc.integer({ min: 0, max: 100 }),
  historySize: fc.integer({ min: 1, max: 10 }),
  flapThreshold: fc.integer({ min: 0, max: 6 }),
  flapWindowMillis: fc.integer({ min: 1, max: 2_000 })
})

/** One check result: success or not, its latency, and the time since the previous one. */
interface Step {
  readonly ok: boolean
  readonly latency: number
  readonly gap: number
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  ok: fc.boolean(),
  latency: fc.integer({ min: 0, max: 200 }),
  gap: fc.integer({ min: 0, max: 500 })
})

const statusArb: fc.Arbitrary<engine.Status> = fc.constantFrom("healthy", "degraded", "unhealthy")

const traceArb = fc.record({
  config: configArb,
  initial: statusArb,
  steps: fc.array(stepArb, { maxLength: 60 })
})

/** Runs a trace through `record`, returning every state (after each step) and the times. */
const run = (config: engine.Config, initial: engine.Status, steps: ReadonlyArray<Step>) => {
  let state = engine.initial(initial)
  let now = 0
  const states: Array<engine.State> = []
  const times: Array<number> = []
  for (const step of steps) {
    now += step.gap
    state = engine.record(state, step.ok, step.latency, now, config)
    states.push(state)
    times.push(now)
  }
  return { states, times }
}

/**
 * The hysteresis as the guide states it, over the whole trace each time:
 * find the trailing run of the last outcome and decide from it and from the
 * status before that run.
 */
const modelStatus = (
  config: engine.Config,
  initial: engine.Status,
  outcomes: ReadonlyArray<engine.Outcome>
): engine.Status => {
  let status = initial
  for (let n = 1; n <= outcomes.length; n++) {
    const prefix = outcomes.slice(0, n)
    const last = prefix[n - 1]
    const trailing = (pred: (o: engine.Outcome) => boolean) => {
      let k = 0
      for (let i = n - 1; i >= 0 && pred(prefix[i] as engine.Outcome); i--) k++
      return k
    }
    const failures = trailing((o) => o === "failure")
    const successes = trailing((o) => o !== "failure")
    const fast = trailing((o) => o === "success")
    if (last === "failure") {
      status = failures >= config.unhealthyAfter || status === "unhealthy" ? "unhealthy" : "degraded"
    } else if (status === "unhealthy") {
      // leaving unhealthy takes healthyAfter successes in a row (slow ones too)
      if (successes >= config.healthyAfter) status = fast >= config.healthyAfter ? "healthy" : "degraded"
    } else if (last === "slow") {
      status = "degraded"
    } else if (status === "degraded") {
      if (fast >= config.healthyAfter) status = "healthy"
    }
  }
  return status
}

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

describe("internal/health", () => {
  it("the base status follows the hysteresis model on random result traces", () => {
    fc.assert(
      fc.property(traceArb, ({ config, initial, steps }) => {
        const { states } = run(config, initial, steps)
        const outcomes = steps.map((s) => engine.classify(s.ok, s.latency, config))
        states.forEach((state, i) => {
          assert.strictEqual(state.base, modelStatus(config, initial, outcomes.slice(0, i + 1)))
        })
      }),
      { numRuns: 300 }
    )
  })

  it("hysteresis invariants: unhealthy after unhealthyAfter failures; no way out of unhealthy in fewer than healthyAfter successes", () => {
    fc.assert(
      fc.property(traceArb, ({ config, initial, steps }) => {
        const { states } = run(config, initial, steps)
        let before: engine.State = engine.initial(initial)
        states.forEach((state, i) => {
          const step = steps[i] as Step
          if (state.consecutiveFailures >= config.unhealthyAfter) assert.strictEqual(state.base, "unhealthy")
          if (before.base === "unhealthy" && state.base !== "unhealthy") {
            assert.isAtLeast(state.consecutiveSuccesses, config.healthyAfter)
          }
          if (!step.ok) assert.notStrictEqual(state.base, "healthy")
          if (state.base === "healthy" && before.base !== "healthy") {
            assert.isAtLeast(state.consecutiveFast, config.healthyAfter)
          }
          assert.strictEqual(state.status, state.flapping ? engine.worst(state.base, "degraded") : state.base)
          before = state
        })
      }),
      { numRuns: 300 }
    )
  })

  it("the history is bounded and holds the last historySize samples", () => {
    fc.assert(
      fc.property(traceArb, ({ config, initial, steps }) => {
        const { states, times } = run(config, initial, steps)
        const all = states.map((state, i) => ({
          at: times[i] as number,
          ok: (steps[i] as Step).ok,
          latencyMillis: (steps[i] as Step).latency,
          status: state.status
        }))
        states.forEach((state, i) => {
          assert.isAtMost(state.history.length, config.historySize)
          assert.isAtMost(state.changes.length, config.flapThreshold + 1)
          assert.deepStrictEqual(state.history, all.slice(0, i + 1).slice(-config.historySize))
        })
      }),
      { numRuns: 300 }
    )
  })

  it("the transitions are the last historySize changes of the reported status, ticks included", () => {
    fc.assert(
      fc.property(traceArb, fc.array(fc.integer({ min: 0, max: 1_000 }), { maxLength: 5 }), (trace, ticks) => {
        const { config, initial, steps } = trace
        let state = engine.initial(initial)
        let now = 0
        const all: Array<engine.Transition> = []
        const apply = (next: engine.State) => {
          if (next.status !== state.status) all.push({ at: now, from: state.status, to: next.status })
          state = next
          assert.deepStrictEqual(state.transitions, all.slice(-config.historySize))
        }
        for (const step of steps) {
          now += step.gap
          apply(engine.record(state, step.ok, step.latency, now, config))
        }
        for (const gap of ticks) {
          now += gap
          apply(engine.tick(state, now, config))
        }
      }),
      { numRuns: 300 }
    )
  })

  it("trend numbers equal a naive recomputation over the window", () => {
    fc.assert(
      fc.property(traceArb, ({ config, initial, steps }) => {
        const { states } = run(config, initial, steps)
        const last = states.at(-1)
        if (last === undefined) {
          assert.deepStrictEqual(engine.trend([]), {
            samples: 0,
            successRate: undefined,
            meanLatencyMillis: undefined,
            statusChanges: 0
          })
          return
        }
        const window = steps.slice(-config.historySize)
        const statuses = states.slice(-config.historySize).map((s) => s.status)
        const trend = engine.trend(last.history)
        assert.strictEqual(trend.samples, window.length)
        assert.strictEqual(trend.successRate, window.filter((s) => s.ok).length / window.length)
        assert.strictEqual(trend.meanLatencyMillis, window.reduce((sum, s) => sum + s.latency, 0) / window.length)
        assert.strictEqual(trend.statusChanges, statuses.filter((s, i) => i > 0 && s !== statuses[i - 1]).length)
      }),
      { numRuns: 300 }
    )
  })

  it("flapping: more than flapThreshold base changes within the window, counted naively", () => {
    fc.assert(
      fc.property(traceArb, fc.integer({ min: 0, max: 3_000 }), ({ config, initial, steps }, later) => {
        const { states, times } = run(config, initial, steps)
        const changeTimes: Array<number> = []
        let before = initial
        states.forEach((state, i) => {
          const now = times[i] as number
          if (state.base !== before) changeTimes.push(now)
          before = state.base
          const inWindow = changeTimes.filter((at) => at > now - config.flapWindowMillis).length
          assert.strictEqual(state.flapping, inWindow > config.flapThreshold)
          assert.strictEqual(engine.isFlapping(state.changes, now, config), state.flapping)
        })
        // without new results, flapping ages out with the window (tick)
        const last = states.at(-1)
        if (last === undefined) return
        const end = (times.at(-1) as number) + later
        const ticked = engine.tick(last, end, config)
        const inWindow = changeTimes.filter((at) => at > end - config.flapWindowMillis).length
        assert.strictEqual(ticked.flapping, inWindow > config.flapThreshold)
        assert.strictEqual(ticked.status, ticked.flapping ? engine.worst(ticked.base, "degraded") : ticked.base)
      }),
      { numRuns: 300 }
    )
  })

  it("a source's status is taken as given (flapping aside), its reports counted", () => {
    fc.assert(
      fc.property(configArb, fc.array(statusArb, { maxLength: 40 }), (config, reports) => {
        let state = engine.initial()
        reports.forEach((status, i) => {
          state = engine.observe(state, status, i * 10, config)
          assert.strictEqual(state.base, status)
          assert.strictEqual(state.status, state.flapping ? engine.worst(status, "degraded") : status)
          assert.strictEqual(state.history.at(-1)?.ok, status === "healthy")
          assert.strictEqual(state.history.at(-1)?.latencyMillis, undefined)
        })
      }),
      { numRuns: 200 }
    )
  })

  it("window trend equals a naive recomputation over the full log of random histories (the ring bounding it)", () => {
    /** One event of a component's life: a check result, a source status, or a tick (flapping ageing out). */
    type Op =
      | { readonly _tag: "record"; readonly ok: boolean; readonly latency: number; readonly gap: number }
      | { readonly _tag: "observe"; readonly status: engine.Status; readonly gap: number }
      | { readonly _tag: "tick"; readonly gap: number }
    const gap = fc.integer({ min: 0, max: 400 })
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        _tag: fc.constant("record" as const),
        ok: fc.boolean(),
        latency: fc.integer({ min: 0, max: 300 }),
        gap
      }),
      fc.record({ _tag: fc.constant("observe" as const), status: statusArb, gap }),
      fc.record({ _tag: fc.constant("tick" as const), gap })
    )
    fc.assert(
      fc.property(
        configArb,
        statusArb,
        fc.integer({ min: 0, max: 1_000 }),
        fc.array(opArb, { maxLength: 50 }),
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: 1, max: 4_000 }),
        (config, initialStatus, startedAt, ops, later, windowMillis) => {
          let state = engine.initial(initialStatus, startedAt)
          let now = startedAt
          // the full, unbounded log the ring is a window of
          const allTransitions: Array<engine.Transition> = []
          const allSamples: Array<engine.Sample> = []
          for (const op of ops) {
            now += op.gap
            const next =
              op._tag === "record"
                ? engine.record(state, op.ok, op.latency, now, config)
                : op._tag === "observe"
                  ? engine.observe(state, op.status, now, config)
                  : engine.tick(state, now, config)
            if (next.status !== state.status) allTransitions.push({ at: now, from: state.status, to: next.status })
            if (next.history.length > 0 && next.history !== state.history)
              allSamples.push(next.history.at(-1) as engine.Sample)
            state = next
          }
          const query = now + later

          // the timeline is known from the start, or from the last transition the ring dropped
          const dropped = allTransitions.length - config.historySize
          const knownFrom = dropped > 0 ? (allTransitions[dropped - 1] as engine.Transition).at : startedAt
          assert.strictEqual(state.knownFrom, knownFrom)
          // the status at each millisecond from knownFrom to the query, from the full log
          const statusAt = (t: number): engine.Status => {
            let status = initialStatus
            for (const transition of allTransitions) if (transition.at <= t) status = transition.to
            return status
          }
          const timeline = Array.from({ length: query - knownFrom }, (_, i) => statusAt(knownFrom + i))

          // the random window, and windows starting exactly at each transition and sample (the boundaries)
          const windows = [
            windowMillis,
            ...allTransitions.map((t) => query - t.at),
            ...allSamples.map((sample) => query - sample.at)
          ].filter((w) => w > 0)
          for (const window of windows) {
            const trend = engine.windowTrend(state, query, window)
            const from = Math.min(query, Math.max(query - window, knownFrom))
            const spent = { healthy: 0, degraded: 0, unhealthy: 0 }
            for (let t = from; t < query; t++) spent[timeline[t - knownFrom] as engine.Status]++
            const covered = query - from
            assert.strictEqual(trend.coveredMillis, covered)
            assert.deepStrictEqual(
              [trend.healthyMillis, trend.degradedMillis, trend.unhealthyMillis],
              [spent.healthy, spent.degraded, spent.unhealthy]
            )
            assert.strictEqual(
              trend.availability,
              covered > 0 ? spent.healthy / covered : state.status === "healthy" ? 1 : 0
            )
            const inWindow = (at: number) => at > query - window && at <= query
            assert.strictEqual(
              trend.statusChanges,
              allTransitions.slice(-config.historySize).filter((t) => inWindow(t.at)).length
            )
            const kept = allSamples.slice(-config.historySize).filter((sample) => inWindow(sample.at))
            assert.strictEqual(trend.samples, kept.length)
            const latencies = kept.flatMap((sample) =>
              sample.latencyMillis === undefined ? [] : [sample.latencyMillis]
            )
            // nearest rank, by its definition: the least value with at least p of the values at or below it
            const rank = (p: number) =>
              latencies.length === 0
                ? undefined
                : Math.min(...latencies.filter((v) => latencies.filter((w) => w <= v).length >= p * latencies.length))
            assert.strictEqual(trend.latencyP50Millis, rank(0.5))
            assert.strictEqual(trend.latencyP95Millis, rank(0.95))
            assert.strictEqual(trend.latencyMaxMillis, latencies.length === 0 ? undefined : Math.max(...latencies))
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("jitter and stagger stay within their bounds and follow the draw", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        (interval, ratio, a, b) => {
          const [low, high] = a <= b ? [a, b] : [b, a]
          const wait = engine.jittered(interval, ratio, a)
          assert.isAtLeast(wait, interval * (1 - ratio) - 1e-9)
          assert.isAtMost(wait, interval * (1 + ratio) + 1e-9)
          assert.isAtMost(engine.jittered(interval, ratio, low), engine.jittered(interval, ratio, high) + 1e-9)
          assert.strictEqual(engine.jittered(interval, 0, a), interval)
          const first = engine.staggered(interval, ratio, a)
          assert.isAtLeast(first, 0)
          assert.isAtMost(first, interval * ratio)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("aggregate: the worst member, a non-critical one counting as at worst degraded", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ status: statusArb, critical: fc.boolean() }), { maxLength: 8 }), (members) => {
        const expected = members.some((m) => m.critical && m.status === "unhealthy")
          ? "unhealthy"
          : members.some((m) => m.status !== "healthy")
            ? "degraded"
            : "healthy"
        assert.strictEqual(engine.aggregate(members), expected)
      }),
      { numRuns: 300 }
    )
  })

  it("classify: failure, slow above the threshold (not at it), success", () => {
    const config: engine.Config = {
      unhealthyAfter: 3,
      healthyAfter: 2,
      slowThresholdMillis: 100,
      historySize: 5,
      flapThreshold: 4,
      flapWindowMillis: 1_000
    }
    assert.deepStrictEqual(
      [
        engine.classify(false, 0, config),
        engine.classify(true, 100, config),
        engine.classify(true, 101, config),
        engine.classify(true, 0, config)
      ],
      ["failure", "success", "slow", "success"]
    )
  })
})
