import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as machine from "../../src/internal/alert.ts"

type Transition = readonly ["firing" | "resolved", number]

/**
 * Drives the machine as the evaluator does: a step at each reading's time
 * and at each `wakeAt` before the next reading (with the last reading).
 */
const drive = (
  readings: ReadonlyArray<readonly [number, boolean]>,
  config: machine.Config,
  horizon: number
): ReadonlyArray<Transition> => {
  const out: Array<Transition> = []
  let state = machine.initial(0)
  let active = false
  let wakeAt: number | undefined
  const at = (now: number) => {
    const next = machine.step(state, active, now, config)
    state = next.state
    if (next.transition !== undefined) out.push([next.transition, now])
    wakeAt = next.wakeAt
  }
  for (const [time, value] of readings) {
    while (wakeAt !== undefined && wakeAt < time) at(wakeAt)
    active = value
    at(time)
  }
  while (wakeAt !== undefined && wakeAt <= horizon) at(wakeAt)
  return out
}

/**
 * The naive model: the condition is a step function (each reading holds
 * until the next); split it into maximal runs of one value. Inactive, the
 * rule fires at `s + for` in the first true run [s, e) with e - s > for;
 * firing, it resolves at `a + resolveAfter` in the first false run [a, b)
 * after that with b - a > resolveAfter.
 */
const model = (
  readings: ReadonlyArray<readonly [number, boolean]>,
  config: machine.Config,
  horizon: number
): ReadonlyArray<Transition> => {
  const runs: Array<{ value: boolean; start: number; end: number }> = []
  for (const [time, value] of readings) {
    const last = runs[runs.length - 1]
    if (last !== undefined && last.value === value) continue
    if (last !== undefined) last.end = time
    runs.push({ value, start: time, end: Number.POSITIVE_INFINITY })
  }
  const out: Array<Transition> = []
  let firing = false
  let after = Number.NEGATIVE_INFINITY
  for (const run of runs) {
    if (!firing && run.value && run.end - run.start > config.forMillis) {
      const at = run.start + config.forMillis
      if (at > horizon) break
      out.push(["firing", at])
      firing = true
      after = at
    } else if (firing && !run.value && run.start >= after && run.end - run.start > config.resolveAfterMillis) {
      const at = run.start + config.resolveAfterMillis
      if (at > horizon) break
      out.push(["resolved", at])
      firing = false
    }
  }
  return out
}

const readingsArb = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 50 }), fc.boolean()), { minLength: 1, maxLength: 30 })
  .map((steps) => {
    let time = 0
    return steps.map(([gap, value]) => {
      time += gap
      return [time, value] as const
    })
  })

describe("internal/alert", () => {
  it("pending, then firing only once the condition held for `for`; resolving after `resolveAfter`", () => {
    const config = { forMillis: 100, resolveAfterMillis: 50 }
    let s = machine.step(machine.initial(0), true, 10, config)
    assert.deepStrictEqual([s.state.phase, s.transition, s.wakeAt], ["pending", undefined, 110])
    s = machine.step(s.state, true, 109, config)
    assert.strictEqual(s.state.phase, "pending")
    s = machine.step(s.state, true, 110, config)
    assert.deepStrictEqual([s.state.phase, s.transition, s.state.since, s.state.firedAt], ["firing", "firing", 10, 110])
    s = machine.step(s.state, false, 200, config)
    assert.deepStrictEqual([s.state.phase, s.transition, s.wakeAt], ["firing", undefined, 250])
    s = machine.step(s.state, true, 220, config) // back before resolveAfter: still firing, the clearing forgotten
    s = machine.step(s.state, false, 230, config)
    assert.strictEqual(s.wakeAt, 280)
    s = machine.step(s.state, false, 280, config)
    assert.deepStrictEqual([s.state.phase, s.transition], ["resolved", "resolved"])
  })

  it("for 0 fires at the first true reading; pending that turns false goes back to inactive", () => {
    const zero = machine.step(machine.initial(0), true, 5, { forMillis: 0, resolveAfterMillis: 0 })
    assert.deepStrictEqual([zero.state.phase, zero.transition], ["firing", "firing"])
    const config = { forMillis: 100, resolveAfterMillis: 0 }
    const pending = machine.step(machine.initial(0), true, 5, config)
    const back = machine.step(pending.state, false, 50, config)
    assert.deepStrictEqual([back.state.phase, back.transition, back.wakeAt], ["inactive", undefined, undefined])
  })

  it("property: the evaluator fires and resolves exactly when the naive model of runs does", () => {
    fc.assert(
      fc.property(
        readingsArb,
        fc.integer({ min: 0, max: 120 }),
        fc.integer({ min: 0, max: 120 }),
        (readings, forMillis, resolveAfterMillis) => {
          const config = { forMillis, resolveAfterMillis }
          const horizon = (readings[readings.length - 1]?.[0] ?? 0) + 500
          assert.deepStrictEqual(drive(readings, config, horizon), model(readings, config, horizon))
        }
      ),
      { numRuns: 500 }
    )
  })

  it("property: a condition that is never true for longer than `for` never fires", () => {
    fc.assert(
      fc.property(readingsArb, fc.integer({ min: 1, max: 60 }), (readings, forMillis) => {
        // cut every true run to at most `for`: a false reading `for` after each rising edge
        const flicker: Array<readonly [number, boolean]> = []
        for (const [time, value] of readings) {
          flicker.push([time * 1000, value])
          if (value) flicker.push([time * 1000 + forMillis, false])
        }
        assert.deepStrictEqual(drive(flicker, { forMillis, resolveAfterMillis: 0 }, 1e9), [])
      })
    )
  })
})
