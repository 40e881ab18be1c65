import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as shed from "../../src/internal/loadShedding.ts"
import { pathOf } from "../../src/internal/url.ts"

const configArb: fc.Arbitrary<shed.Config> = fc.record({
  thresholds: fc.record({ event_loop_delay: fc.integer({ min: 1, max: 1000 }) }),
  sheddableAt: fc.double({ min: 0.05, max: 1, noNaN: true }),
  recoveryMargin: fc.double({ min: 0, max: 0.95, noNaN: true }),
  calmSamples: fc.integer({ min: 1, max: 5 })
})

/** Values around a threshold of up to 1000: most near the triggers and recovery marks, where the logic branches. */
const valuesArb = fc.array(
  fc.oneof(
    fc.double({ min: 0, max: 2000, noNaN: true }),
    fc.integer({ min: 0, max: 1200 }),
    fc.constant(undefined),
    fc.constant(Number.NaN)
  ),
  { maxLength: 60 }
)

/**
 * The model: two independent Schmitt triggers, one per level. A trigger turns
 * on over its value, and off after `calmSamples` readings in a row below its
 * recovery mark; the level is the highest trigger on.
 */
const model = (values: ReadonlyArray<number | undefined>, threshold: number, config: shed.Config) => {
  const on = [false, false]
  const calm = [0, 0]
  const levels: Array<shed.Level> = []
  for (const value of values) {
    if (value !== undefined && Number.isFinite(value)) {
      for (const i of [0, 1]) {
        const trigger = i === 1 ? threshold : threshold * config.sheddableAt
        const mark = trigger * (1 - config.recoveryMargin)
        calm[i] = value < mark ? (calm[i] ?? 0) + 1 : 0
        if (value > trigger) on[i] = true
        else if (on[i] && (calm[i] ?? 0) >= config.calmSamples) on[i] = false
      }
    }
    levels.push(on[1] ? 2 : on[0] ? 1 : 0)
  }
  return levels
}

const run = (values: ReadonlyArray<number | undefined>, config: shed.Config): ReadonlyArray<shed.Level> => {
  let state: shed.SignalState = shed.initial.event_loop_delay
  return values.map((value) => {
    state = shed.stepSignal(state, value, config.thresholds.event_loop_delay, config)
    return state.level
  })
}

describe("internal/loadShedding", () => {
  it("stepSignal: the same levels as two independent Schmitt triggers (one per level), on any trace", () => {
    fc.assert(
      fc.property(configArb, valuesArb, (config, values) => {
        const threshold = config.thresholds.event_loop_delay ?? 1
        assert.deepStrictEqual(run(values, config), model(values, threshold, config))
      }),
      { numRuns: 500 }
    )
  })

  it("stepSignal: a level is entered on the first sample over its trigger", () => {
    fc.assert(
      fc.property(configArb, valuesArb, fc.double({ min: 0, max: 3000, noNaN: true }), (config, values, value) => {
        const threshold = config.thresholds.event_loop_delay ?? 1
        const after = run([...values, value], config).at(-1) ?? 0
        return after >= shed.rawLevel(value, threshold, config)
      })
    )
  })

  it("stepSignal: a level is left only after calmSamples samples in a row below its recovery mark (no flapping)", () => {
    fc.assert(
      fc.property(configArb, valuesArb, (config, values) => {
        const threshold = config.thresholds.event_loop_delay ?? 1
        const levels = run(values, config)
        const readings = values.map((v) => (v !== undefined && Number.isFinite(v) ? v : undefined))
        for (let i = 1; i < levels.length; i++) {
          const from = levels[i - 1] ?? 0
          const to = levels[i] ?? 0
          if (to >= from) continue
          // every level left, from `from` down to `to + 1`, had calmSamples readings in a row below its mark
          for (let left = from; left > to; left--) {
            const mark = shed.recoveryMark(left as 1 | 2, threshold, config)
            const recent = readings.slice(0, i + 1).filter((v) => v !== undefined)
            const last = recent.slice(-config.calmSamples)
            if (last.length < config.calmSamples || !last.every((v) => v < mark)) return false
          }
        }
        return true
      }),
      { numRuns: 500 }
    )
  })

  it("stepSignal: values staying at or above the recovery mark never end shedding, however long", () => {
    fc.assert(
      fc.property(
        configArb,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 40 }),
        (config, fractions) => {
          const threshold = config.thresholds.event_loop_delay ?? 1
          const mark = shed.recoveryMark(2, threshold, config)
          // over the threshold once, then anywhere in the band [mark, threshold] or above
          const values = [threshold + 1, ...fractions.map((f) => mark + f * (threshold - mark) * 2)]
          return run(values, config).every((level) => level === 2)
        }
      )
    )
  })

  it("stepSignal: no threshold is always calm; no reading changes nothing", () => {
    fc.assert(
      fc.property(configArb, valuesArb, (config, values) => {
        let state: shed.SignalState = shed.initial.event_loop_delay
        for (const value of values) {
          state = shed.stepSignal(state, value, undefined, config)
          if (state.level !== 0) return false
        }
        const busy = shed.stepSignal(shed.initial.heap_used, 2000, config.thresholds.event_loop_delay, config)
        return (
          shed.stepSignal(busy, undefined, config.thresholds.event_loop_delay, config) === busy &&
          shed.stepSignal(busy, Number.NaN, config.thresholds.event_loop_delay, config) === busy
        )
      })
    )
  })

  it("step: the overall level is the highest signal's; each signal steps on its own reading", () => {
    const config: shed.Config = {
      thresholds: { event_loop_delay: 100, heap_used: 1000 },
      sheddableAt: 0.5,
      recoveryMargin: 0.1,
      calmSamples: 2
    }
    const first = shed.step(shed.initial, { event_loop_delay: 60, heap_used: 10 }, config)
    assert.deepStrictEqual([first.from, first.to, shed.signalsAt(first.state, 1)], [0, 1, ["event_loop_delay"]])
    const second = shed.step(first.state, { event_loop_delay: 10, heap_used: 1001, rss: 1e12 }, config)
    assert.deepStrictEqual(
      [second.from, second.to, shed.signalsAt(second.state, 1), shed.signalsAt(second.state, 2)],
      [1, 2, ["event_loop_delay", "heap_used"], ["heap_used"]]
    )
  })

  const stateArb: fc.Arbitrary<shed.State> = fc
    .tuple(...shed.signals.map(() => fc.constantFrom<shed.Level>(0, 1, 2)))
    .map((levels) => {
      const state: Record<shed.Signal, shed.SignalState> = { ...shed.initial }
      shed.signals.forEach((signal, i) => {
        state[signal] = { level: levels[i] ?? 0, calm1: 0, calm2: 0 }
      })
      return state
    })
  const priorityArb = fc.constantFrom<shed.Priority>("critical", "normal", "sheddable")
  const capArb = fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined })

  it("decide: the cap holds for every priority, critical is never shed by pressure, sheddable whenever normal is", () => {
    fc.assert(
      fc.property(stateArb, priorityArb, fc.integer({ min: 0, max: 30 }), capArb, (state, priority, inFlight, cap) => {
        const verdict = shed.decide(state, priority, inFlight, cap)
        const overCap = cap !== undefined && inFlight >= cap
        if (overCap) return verdict === "max_in_flight"
        if (priority === "critical") return verdict === undefined
        const normal = shed.decide(state, "normal", inFlight, cap)
        const sheddable = shed.decide(state, "sheddable", inFlight, cap)
        const level = shed.levelOf(state)
        return (
          (normal === undefined || sheddable !== undefined) &&
          (normal !== undefined) === (level === 2) &&
          (sheddable !== undefined) === level >= 1 &&
          (verdict === undefined || (verdict !== "max_in_flight" && state[verdict].level >= 1))
        )
      })
    )
  })

  it("decideWith over the pressure verdicts (worked out once per sample) is decide", () => {
    fc.assert(
      fc.property(stateArb, priorityArb, fc.integer({ min: 0, max: 30 }), capArb, (state, priority, inFlight, cap) => {
        const verdicts = shed.pressureVerdicts(state)
        return shed.decideWith(verdicts, priority, inFlight, cap) === shed.decide(state, priority, inFlight, cap)
      })
    )
  })

  it("retryAfterSeconds: whole seconds, rounded up, at least 1", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e7, noNaN: true }), (millis) => {
        const seconds = Number(shed.retryAfterSeconds(millis))
        return (
          Number.isInteger(seconds) &&
          seconds >= 1 &&
          seconds * 1000 >= millis &&
          (seconds - 1) * 1000 < Math.max(millis, 1000)
        )
      })
    )
    assert.deepStrictEqual([0, 1, 1000, 1001, 3000].map(shed.retryAfterSeconds), ["1", "1", "1", "2", "3"])
  })

  describe("paths", () => {
    /** The model: the path copied out of the URL (`internal/url.ts`), a `Set` of exact paths and a prefix scan. */
    const reference = (patterns: ReadonlyArray<string>, url: string): boolean => {
      const path = pathOf(url)
      const exact = new Set(patterns.filter((pattern) => !pattern.endsWith("/*")))
      const prefixes = patterns.filter((pattern) => pattern.endsWith("/*")).map((pattern) => pattern.slice(0, -1))
      return exact.has(path) || prefixes.some((prefix) => path.startsWith(prefix))
    }
    const segmentArb = fc.constantFrom("", "a", "api", "health", "ready", "x?y", "#", "?", "a#b", "%3F")
    const pathArb = fc.array(segmentArb, { minLength: 1, maxLength: 4 }).map((segments) => `/${segments.join("/")}`)
    const urlArb = fc
      .tuple(pathArb, fc.constantFrom("", "?", "?q=1", "#f", "?q=1#f", "#f?q", "?a/b"))
      .map(([p, q]) => p + q)
    const patternArb = fc.oneof(
      pathArb,
      pathArb.map((p) => `${p.endsWith("/") ? p : `${p}/`}*`)
    )

    it("pathEnd: the index of the first ? or #, else the length", () => {
      fc.assert(
        fc.property(
          urlArb,
          (url) =>
            shed.pathEnd(url) === url.slice(0, shed.pathEnd(url)).length &&
            url.slice(0, shed.pathEnd(url)) === pathOf(url)
        )
      )
      assert.deepStrictEqual(["/a", "/a?b", "/a#b", "/a#b?c", "/a?b#c", "/"].map(shed.pathEnd), [2, 2, 2, 2, 2, 1])
    })

    it("pathMatcher matches the path in place as the copied-out path matches (few and many exact patterns)", () => {
      fc.assert(
        fc.property(fc.array(patternArb, { maxLength: 30 }), urlArb, (patterns, url) => {
          const matcher = shed.pathMatcher(patterns)
          const matched = matcher === undefined ? false : matcher.matches(url, shed.pathEnd(url))
          return matched === reference(patterns, url)
        }),
        { numRuns: 500 }
      )
      const health = shed.pathMatcher(["/health", "/health/*"])
      assert.deepStrictEqual(
        ["/health", "/health?x", "/health/ready", "/healthz", "/health#/x", "/api"].map((url) =>
          health?.matches(url, shed.pathEnd(url))
        ),
        [true, true, true, false, true, false]
      )
      assert.strictEqual(shed.pathMatcher([]), undefined)
      // more exact patterns than are compared one by one: a Set
      const many = shed.pathMatcher(Array.from({ length: 20 }, (_, i) => `/p${i}`))
      assert.deepStrictEqual(
        ["/p7", "/p19?x", "/p20", "/p1/x"].map((url) => many?.matches(url, shed.pathEnd(url))),
        [true, true, false, false]
      )
    })
  })
})
