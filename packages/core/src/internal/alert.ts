/**
 * The state machine of one alert rule, pure: the evaluator feeds it readings
 * of the rule's condition with the clock's time, and wakes it at the time it
 * asks for (`wakeAt`) with the last reading, so that a rule fires exactly
 * when its condition has held for `for` even when no new reading arrives.
 *
 * - `inactive` / `resolved`: the condition is false (or has never been true).
 * - `pending`: the condition is true since `since`, not yet for `for`.
 * - `firing`: the condition held for `for`; it stays firing until the
 *   condition has been false for `resolveAfter` (hysteresis), `clearSince`
 *   being when it last became false.
 *
 * "Held for `for`" means: still true when stepped at `since + for`. Which
 * of a wake-up and a reading at the same instant comes first is the
 * evaluator's: in `Alert` the wake-up (a timer on the clock) runs before a
 * reading pushed at that instant, so a condition true for exactly `for`
 * fires.
 *
 * @internal
 */

/** The phase of a rule. */
export type Phase = "inactive" | "pending" | "firing" | "resolved"

/** A rule's state: its phase, since when, and the last reading. */
export interface State {
  readonly phase: Phase
  /** Clock millis: when the condition became true (pending, firing) or when the phase began (inactive, resolved). */
  readonly since: number
  /** Firing only: when the condition became false, while it has not been false for `resolveAfter` yet. */
  readonly clearSince: number | undefined
  /** When the rule last fired (undefined before the first time). */
  readonly firedAt: number | undefined
}

/** The durations of a rule, in millis. */
export interface Config {
  readonly forMillis: number
  readonly resolveAfterMillis: number
}

/** The outcome of a step: the next state, a transition to announce, and when to be woken next. */
export interface Step {
  readonly state: State
  readonly transition: "firing" | "resolved" | undefined
  /** Clock millis at which to step again with the same reading (undefined: only on the next reading). */
  readonly wakeAt: number | undefined
}

/** The state of a rule that has seen nothing yet. */
export const initial = (now: number): State => ({
  phase: "inactive",
  since: now,
  clearSince: undefined,
  firedAt: undefined
})

/** One reading of the condition (`active`) at clock millis `now`. */
export const step = (state: State, active: boolean, now: number, config: Config): Step => {
  const { forMillis, resolveAfterMillis } = config
  switch (state.phase) {
    case "inactive":
    case "resolved": {
      if (!active) return { state, transition: undefined, wakeAt: undefined }
      return step({ phase: "pending", since: now, clearSince: undefined, firedAt: state.firedAt }, true, now, config)
    }
    case "pending": {
      if (!active) {
        return {
          state: { phase: "inactive", since: now, clearSince: undefined, firedAt: state.firedAt },
          transition: undefined,
          wakeAt: undefined
        }
      }
      const due = state.since + forMillis
      if (now >= due) {
        return {
          state: { phase: "firing", since: state.since, clearSince: undefined, firedAt: now },
          transition: "firing",
          wakeAt: undefined
        }
      }
      return { state, transition: undefined, wakeAt: due }
    }
    case "firing": {
      if (active) {
        return {
          state: state.clearSince === undefined ? state : { ...state, clearSince: undefined },
          transition: undefined,
          wakeAt: undefined
        }
      }
      const clearSince = state.clearSince ?? now
      const due = clearSince + resolveAfterMillis
      if (now >= due) {
        return {
          state: { phase: "resolved", since: now, clearSince: undefined, firedAt: state.firedAt },
          transition: "resolved",
          wakeAt: undefined
        }
      }
      return {
        state: state.clearSince === undefined ? { ...state, clearSince } : state,
        transition: undefined,
        wakeAt: due
      }
    }
  }
}
