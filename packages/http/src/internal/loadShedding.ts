/**
 * The pure decision logic of `LoadShedding`: each pressure signal's level
 * with hysteresis, the overall level, and the verdict on one request. Plain
 * functions over plain data — no Effect, no clock, no randomness — so they
 * are property-tested.
 *
 * A signal is at one of three levels: 0 (calm), 1 (`sheddable` requests
 * are shed: the value went over `threshold × sheddableAt`) and 2
 * (`normal` requests are shed too: the value went over `threshold`). A
 * level is entered at once, on the first sample over its trigger. It is
 * left only after `calmSamples` samples in a row below its recovery mark,
 * the trigger × (1 − `recoveryMargin`): a sample in between (the band)
 * keeps the level and restarts the count. Leaving level 2 lands on level 1
 * unless level 1's own rule is met too. A signal without a threshold is
 * always 0; a sample without a value (not a finite number) changes nothing.
 *
 * @internal
 */

/** The pressure signals, in the order reasons are reported. */
export const signals = ["event_loop_delay", "heap_used", "rss", "in_flight"] as const

/** One pressure signal (also the reason of a request shed by it). */
export type Signal = (typeof signals)[number]

/** Why a request was shed: a pressure signal, or the hard concurrency cap. */
export type Reason = Signal | "max_in_flight"

/** Every reason, for counters. */
export const reasons: ReadonlyArray<Reason> = [...signals, "max_in_flight"]

/** A signal's or the shedder's level: 0 calm, 1 sheddable requests shed, 2 normal ones too. */
export type Level = 0 | 1 | 2

/** A request's priority: `critical` is never shed by pressure, `sheddable` is shed first. */
export type Priority = "critical" | "normal" | "sheddable"

/** The hysteresis settings shared by every signal. */
export interface Config {
  /** Each signal's threshold, in the signal's unit; a signal left out is not watched. */
  readonly thresholds: Readonly<Partial<Record<Signal, number | undefined>>>
  /** The fraction of a threshold over which sheddable requests are shed: (0, 1]. */
  readonly sheddableAt: number
  /** Shedding at a level stops below its trigger × (1 − recoveryMargin): [0, 1). */
  readonly recoveryMargin: number
  /** Samples in a row below the recovery mark before a level falls: an integer >= 1. */
  readonly calmSamples: number
}

/** One signal's hysteresis state. */
export interface SignalState {
  readonly level: Level
  /** Samples in a row below the recovery mark of level 1 (`threshold × sheddableAt × (1 − recoveryMargin)`). */
  readonly calm1: number
  /** Samples in a row below the recovery mark of level 2 (`threshold × (1 − recoveryMargin)`). */
  readonly calm2: number
}

/** Every signal's state. */
export type State = Readonly<Record<Signal, SignalState>>

const calmSignal: SignalState = { level: 0, calm1: 0, calm2: 0 }

/** Every signal calm. */
export const initial: State = {
  event_loop_delay: calmSignal,
  heap_used: calmSignal,
  rss: calmSignal,
  in_flight: calmSignal
}

/** The value over which a signal enters `level` (1 or 2). */
export const trigger = (level: 1 | 2, threshold: number, config: Config): number =>
  level === 2 ? threshold : threshold * config.sheddableAt

/** The value under which a sample counts as calm for `level` (1 or 2). */
export const recoveryMark = (level: 1 | 2, threshold: number, config: Config): number =>
  trigger(level, threshold, config) * (1 - config.recoveryMargin)

/** The level a value reaches on its own, without history: over the threshold 2, over the sheddable trigger 1. */
export const rawLevel = (value: number, threshold: number, config: Config): Level =>
  value > trigger(2, threshold, config) ? 2 : value > trigger(1, threshold, config) ? 1 : 0

/**
 * One signal's next state after a sample (`value` undefined or not finite:
 * no reading, nothing changes). A level is entered at once; it is left only
 * after `calmSamples` samples in a row below its recovery mark, for the
 * highest lower level not left yet by the same rule.
 */
export const stepSignal = (
  state: SignalState,
  value: number | undefined,
  threshold: number | undefined,
  config: Config
): SignalState => {
  if (threshold === undefined) return state === calmSignal ? state : calmSignal
  if (value === undefined || !Number.isFinite(value)) return state
  const raw = rawLevel(value, threshold, config)
  const calm1 = value < recoveryMark(1, threshold, config) ? state.calm1 + 1 : 0
  const calm2 = value < recoveryMark(2, threshold, config) ? state.calm2 + 1 : 0
  const n = config.calmSamples
  const level: Level =
    raw === 2 || (state.level === 2 && calm2 < n) ? 2 : raw === 1 || (state.level >= 1 && calm1 < n) ? 1 : 0
  if (level === 0) return calmSignal
  return level === state.level && calm1 === state.calm1 && calm2 === state.calm2 ? state : { level, calm1, calm2 }
}

/** A sample: each signal's value in its unit (undefined: no reading). */
export type Readings = Readonly<Partial<Record<Signal, number | undefined>>>

/** The shedder's level: the highest of its signals'. */
export const levelOf = (state: State): Level => {
  let level: Level = 0
  for (const signal of signals) if (state[signal].level > level) level = state[signal].level
  return level
}

/** The signals at `level` or above, in `signals` order. */
export const signalsAt = (state: State, level: 1 | 2): ReadonlyArray<Signal> =>
  signals.filter((signal) => state[signal].level >= level)

/** What a sample did: the new state, the level before and after. */
export interface Step {
  readonly state: State
  readonly from: Level
  readonly to: Level
}

/** Every signal's next state after one sample. */
export const step = (state: State, readings: Readings, config: Config): Step => {
  const next: Record<Signal, SignalState> = { ...state }
  for (const signal of signals) {
    next[signal] = stepSignal(state[signal], readings[signal], config.thresholds[signal], config)
  }
  return { state: next, from: levelOf(state), to: levelOf(next) }
}

/** The level at which a priority is shed by pressure (never for critical). */
export const shedAt = (priority: Priority): 1 | 2 | undefined =>
  priority === "critical" ? undefined : priority === "sheddable" ? 1 : 2

/**
 * The verdict on one request: `undefined` to admit it, or the reason it is
 * shed. The concurrency cap comes first (it holds for every priority, critical
 * included: `inFlight` counts the requests admitted and still running);
 * then the first signal whose level sheds the request's priority.
 */
export const decide = (
  state: State,
  priority: Priority,
  inFlight: number,
  maxInFlight: number | undefined
): Reason | undefined => {
  if (maxInFlight !== undefined && inFlight >= maxInFlight) return "max_in_flight"
  const at = shedAt(priority)
  if (at === undefined) return undefined
  for (const signal of signals) if (state[signal].level >= at) return signal
  return undefined
}

/**
 * The `Retry-After` value for a duration in milliseconds: whole seconds,
 * rounded up, at least 1 (a client told 0 comes straight back).
 */
export const retryAfterSeconds = (millis: number): string =>
  String(Math.max(1, Math.ceil(Number.isFinite(millis) ? millis / 1000 : 1)))

/**
 * The reasons requests of each priority are shed by pressure alone (no cap):
 * `decide(state, priority, 0, undefined)` for each, worked out once per
 * sample so that a request's verdict is a field read.
 */
export interface PressureVerdicts {
  readonly critical: undefined
  readonly normal: Reason | undefined
  readonly sheddable: Reason | undefined
}

/** The pressure verdicts of a state (see {@link PressureVerdicts}). */
export const pressureVerdicts = (state: State): PressureVerdicts => ({
  critical: undefined,
  normal: decide(state, "normal", 0, undefined),
  sheddable: decide(state, "sheddable", 0, undefined)
})

/**
 * The verdict on one request from the state's pressure verdicts: the same as
 * `decide(state, priority, inFlight, maxInFlight)` when `verdicts` is
 * `pressureVerdicts(state)`.
 */
export const decideWith = (
  verdicts: PressureVerdicts,
  priority: Priority,
  inFlight: number,
  maxInFlight: number | undefined
): Reason | undefined => (maxInFlight !== undefined && inFlight >= maxInFlight ? "max_in_flight" : verdicts[priority])

/**
 * Where the path of a request URL given as a path (`/a/b?q#f`) ends: the
 * index of its first `?` or `#`, or its length.
 */
export const pathEnd = (url: string): number => {
  const query = url.indexOf("?")
  const fragment = url.indexOf("#")
  return query === -1
    ? fragment === -1
      ? url.length
      : fragment
    : fragment === -1 || query < fragment
      ? query
      : fragment
}

/** Up to this many exact patterns are compared one by one; more go in a `Set`. */
const linearExact = 16

/**
 * A matcher of paths against patterns (`"/health"` that path, `"/health/*"`
 * every path under `/health/`), built once. It is given a string whose first
 * `end` characters are the path (a request URL and its {@link pathEnd}), so
 * that a request's path is never copied out.
 */
export class PathMatcher {
  readonly exact: ReadonlyArray<string>
  readonly exactSet: ReadonlySet<string> | undefined
  readonly prefixes: ReadonlyArray<string>
  constructor(patterns: ReadonlyArray<string>) {
    this.exact = [...new Set(patterns.filter((pattern) => !pattern.endsWith("/*")))]
    this.exactSet = this.exact.length > linearExact ? new Set(this.exact) : undefined
    this.prefixes = [
      ...new Set(patterns.filter((pattern) => pattern.endsWith("/*")).map((pattern) => pattern.slice(0, -1)))
    ]
  }
  /** Whether the path `target.slice(0, end)` matches a pattern. */
  matches(target: string, end: number): boolean {
    const exact = this.exact
    if (this.exactSet !== undefined) {
      if (this.exactSet.has(end === target.length ? target : target.slice(0, end))) return true
    } else {
      for (let i = 0; i < exact.length; i++) {
        const pattern = exact[i]
        if (pattern !== undefined && pattern.length === end && target.startsWith(pattern)) return true
      }
    }
    const prefixes = this.prefixes
    for (let i = 0; i < prefixes.length; i++) {
      const prefix = prefixes[i]
      if (prefix !== undefined && prefix.length <= end && target.startsWith(prefix)) return true
    }
    return false
  }
}

/** The matcher of `patterns`; undefined for none. */
export const pathMatcher = (patterns: ReadonlyArray<string>): PathMatcher | undefined =>
  patterns.length === 0 ? undefined : new PathMatcher(patterns)
