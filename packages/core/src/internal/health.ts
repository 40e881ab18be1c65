/**
 * The health pattern's decisions as plain functions over plain data: a
 * component's status under hysteresis, its bounded history and trend numbers,
 * flapping detection, and the aggregation of many components into one status.
 *
 * No `Effect`, no clock reads: `now` is an argument (milliseconds), so the
 * wiring in `Health.ts` reads the clock once per result and the properties in
 * `test/internal/health.test.ts` drive these functions with random traces.
 *
 * @internal
 */

/** A component's (or the whole's) status, best first. */
export type Status = "healthy" | "degraded" | "unhealthy"

/** Statuses by severity: `healthy` 0, `degraded` 1, `unhealthy` 2 (also the status gauge's value). */
export const severity: { readonly [S in Status]: number } = { healthy: 0, degraded: 1, unhealthy: 2 }

const bySeverity: ReadonlyArray<Status> = ["healthy", "degraded", "unhealthy"]

/** The worse of two statuses. */
export const worst = (a: Status, b: Status): Status => (severity[a] >= severity[b] ? a : b)

/** What one check run gave: a success within `slowThreshold`, a slow success, or a failure (a timeout included). */
export type Outcome = "success" | "slow" | "failure"

/** The thresholds of one component. */
export interface Config {
  /** Consecutive failures that make the component unhealthy (earlier ones make it degraded). */
  readonly unhealthyAfter: number
  /** Consecutive successes that take it out of `unhealthy`, and fast ones that take it back to `healthy`. */
  readonly healthyAfter: number
  /** A success slower than this is `slow`. */
  readonly slowThresholdMillis: number
  /** Results kept in the history (the trend window). */
  readonly historySize: number
  /** More than this many status changes within `flapWindowMillis` is flapping. */
  readonly flapThreshold: number
  readonly flapWindowMillis: number
}

/** One entry of a component's history. */
export interface Sample {
  /** When, in clock milliseconds. */
  readonly at: number
  /** A check's success (slow ones included), or a source's `healthy`. */
  readonly ok: boolean
  /** A check's duration; undefined for a source's status. */
  readonly latencyMillis: number | undefined
  /** The status reported after this sample. */
  readonly status: Status
}

/** A change of the reported status. */
export interface Transition {
  readonly at: number
  readonly from: Status
  readonly to: Status
}

/** A component's state. Every function returns a new one; none is mutated. */
export interface State {
  /** The status from the results alone (hysteresis applied, flapping not). */
  readonly base: Status
  /** The status given out: `base`, made at least `degraded` while flapping. */
  readonly status: Status
  readonly flapping: boolean
  readonly consecutiveFailures: number
  /** Consecutive successes, slow ones included. */
  readonly consecutiveSuccesses: number
  /** Consecutive successes within `slowThreshold`. */
  readonly consecutiveFast: number
  /** When the last changes of `base` happened, oldest first: at most `flapThreshold + 1`. */
  readonly changes: ReadonlyArray<number>
  /** The last `historySize` samples, oldest first. */
  readonly history: ReadonlyArray<Sample>
  /** The last `historySize` changes of the reported status, oldest first. */
  readonly transitions: ReadonlyArray<Transition>
  /**
   * Since when the reported status is known without a gap: the component's
   * start, then the time of the last transition the ring dropped (from then
   * on, the status is the oldest kept transition's `from`).
   */
  readonly knownFrom: number
}

/** A fresh component reporting `status`, started at `now`. */
export const initial = (status: Status = "healthy", now = 0): State => ({
  base: status,
  status,
  flapping: false,
  consecutiveFailures: 0,
  consecutiveSuccesses: 0,
  consecutiveFast: 0,
  changes: [],
  history: [],
  transitions: [],
  knownFrom: now
})

/** A check's outcome from whether it succeeded and how long it took. */
export const classify = (ok: boolean, latencyMillis: number, config: Config): Outcome =>
  !ok ? "failure" : latencyMillis > config.slowThresholdMillis ? "slow" : "success"

/**
 * The hysteresis: the next base status after an outcome, given the counters
 * already updated with it.
 *
 * - a failure: `unhealthy` from the `unhealthyAfter`-th consecutive one,
 *   `degraded` before (an unhealthy component stays unhealthy);
 * - a slow success: `degraded` (an unhealthy one needs `healthyAfter`
 *   consecutive successes first);
 * - a fast success: a healthy component stays healthy; a degraded one needs
 *   `healthyAfter` consecutive fast successes; an unhealthy one needs
 *   `healthyAfter` consecutive successes to leave, for `healthy` when they
 *   were all fast, else `degraded`.
 */
const nextBase = (
  base: Status,
  outcome: Outcome,
  failures: number,
  successes: number,
  fast: number,
  config: Config
): Status => {
  switch (outcome) {
    case "failure":
      return failures >= config.unhealthyAfter || base === "unhealthy" ? "unhealthy" : "degraded"
    case "slow":
      return base === "unhealthy" && successes < config.healthyAfter ? "unhealthy" : "degraded"
    case "success":
      if (base === "unhealthy" && successes < config.healthyAfter) return "unhealthy"
      if (base === "healthy") return "healthy"
      return fast >= config.healthyAfter ? "healthy" : "degraded"
  }
}

/** The times of `base` changes worth keeping: those inside the window, at most `flapThreshold + 1`. */
const recentChanges = (changes: ReadonlyArray<number>, now: number, config: Config): ReadonlyArray<number> => {
  const from = now - config.flapWindowMillis
  const kept = changes.filter((at) => at > from)
  return kept.length > config.flapThreshold + 1 ? kept.slice(kept.length - config.flapThreshold - 1) : kept
}

/** Whether more than `flapThreshold` changes happened within the window ending at `now`. */
export const isFlapping = (changes: ReadonlyArray<number>, now: number, config: Config): boolean =>
  recentChanges(changes, now, config).length > config.flapThreshold

/** Applies a new base status at `now`: the change log, flapping, the reported status and the history. */
const settle = (
  state: State,
  base: Status,
  counters: Pick<State, "consecutiveFailures" | "consecutiveSuccesses" | "consecutiveFast">,
  sample: Omit<Sample, "status">,
  now: number,
  config: Config
): State => {
  const changes = recentChanges(base === state.base ? state.changes : [...state.changes, now], now, config)
  const flapping = changes.length > config.flapThreshold
  const status = flapping ? worst(base, "degraded") : base
  const history = [...state.history, { ...sample, status }]
  return {
    base,
    status,
    flapping,
    ...counters,
    changes,
    history: history.length > config.historySize ? history.slice(history.length - config.historySize) : history,
    ...transition(state, status, now, config)
  }
}

/** The transitions (and `knownFrom`) after the reported status became `status` at `now`. */
const transition = (
  state: State,
  status: Status,
  now: number,
  config: Config
): Pick<State, "transitions" | "knownFrom"> => {
  if (status === state.status) return { transitions: state.transitions, knownFrom: state.knownFrom }
  const transitions = [...state.transitions, { at: now, from: state.status, to: status }]
  if (transitions.length <= config.historySize) return { transitions, knownFrom: state.knownFrom }
  const dropped = transitions.length - config.historySize
  return { transitions: transitions.slice(dropped), knownFrom: (transitions[dropped - 1] as Transition).at }
}

/** A check's result at `now`: the counters, the hysteresis, flapping and the history. */
export const record = (state: State, ok: boolean, latencyMillis: number, now: number, config: Config): State => {
  const outcome = classify(ok, latencyMillis, config)
  const consecutiveFailures = outcome === "failure" ? state.consecutiveFailures + 1 : 0
  const consecutiveSuccesses = outcome === "failure" ? 0 : state.consecutiveSuccesses + 1
  const consecutiveFast = outcome === "success" ? state.consecutiveFast + 1 : 0
  const base = nextBase(state.base, outcome, consecutiveFailures, consecutiveSuccesses, consecutiveFast, config)
  return settle(
    state,
    base,
    { consecutiveFailures, consecutiveSuccesses, consecutiveFast },
    { at: now, ok, latencyMillis },
    now,
    config
  )
}

/**
 * A status a source reported at `now`: taken as it is (the source applies its
 * own hysteresis), then flapping and the history as for a check. Counters
 * count reports: consecutive non-`healthy` ones as failures.
 */
export const observe = (state: State, status: Status, now: number, config: Config): State => {
  const healthy = status === "healthy"
  return settle(
    state,
    status,
    {
      consecutiveFailures: healthy ? 0 : state.consecutiveFailures + 1,
      consecutiveSuccesses: healthy ? state.consecutiveSuccesses + 1 : 0,
      consecutiveFast: healthy ? state.consecutiveFast + 1 : 0
    },
    { at: now, ok: healthy, latencyMillis: undefined },
    now,
    config
  )
}

/**
 * Re-evaluates flapping at `now` without a new result (changes age out of the
 * window): the same state when nothing changes.
 */
export const tick = (state: State, now: number, config: Config): State => {
  if (!state.flapping) return state
  const changes = recentChanges(state.changes, now, config)
  const flapping = changes.length > config.flapThreshold
  if (flapping) return state
  return {
    ...state,
    changes,
    flapping,
    status: state.base,
    ...transition(state, state.base, now, config)
  }
}

/** The trend numbers of a history. */
export interface Trend {
  /** Samples in the window. */
  readonly samples: number
  /** Successful samples over samples, 0 to 1; undefined without samples. */
  readonly successRate: number | undefined
  /** Mean check duration of the samples that have one; undefined without any. */
  readonly meanLatencyMillis: number | undefined
  /** Changes of the reported status between consecutive samples of the window. */
  readonly statusChanges: number
}

/** The trend of a history: success rate, mean latency and status changes over the window. */
export const trend = (history: ReadonlyArray<Sample>): Trend => {
  let ok = 0
  let timed = 0
  let latency = 0
  let statusChanges = 0
  for (let i = 0; i < history.length; i++) {
    const sample = history[i] as Sample
    if (sample.ok) ok++
    if (sample.latencyMillis !== undefined) {
      timed++
      latency += sample.latencyMillis
    }
    if (i > 0 && (history[i - 1] as Sample).status !== sample.status) statusChanges++
  }
  return {
    samples: history.length,
    successRate: history.length === 0 ? undefined : ok / history.length,
    meanLatencyMillis: timed === 0 ? undefined : latency / timed,
    statusChanges
  }
}

/** The figures of a component over a trailing window of time. */
export interface WindowTrend {
  /** The window asked for. */
  readonly windowMillis: number
  /**
   * The part of the window the kept timeline covers: from the window's start
   * or `knownFrom`, whichever is later, to `now`.
   */
  readonly coveredMillis: number
  /** Time spent in each reported status within the covered part. */
  readonly healthyMillis: number
  readonly degradedMillis: number
  readonly unhealthyMillis: number
  /**
   * Time `healthy` over the covered time, 0 to 1; with nothing covered yet
   * (at the start), 1 when the status is `healthy`, else 0.
   */
  readonly availability: number
  /** Changes of the reported status within the window (those the ring still holds). */
  readonly statusChanges: number
  /** Samples within the window (those the ring still holds). */
  readonly samples: number
  /** Nearest-rank median, 95th percentile and maximum of the window's check durations; undefined without any. */
  readonly latencyP50Millis: number | undefined
  readonly latencyP95Millis: number | undefined
  readonly latencyMaxMillis: number | undefined
}

/** The nearest-rank `p`-quantile (0 < p <= 1) of ascending `sorted`; undefined when empty. */
export const nearestRank = (sorted: ReadonlyArray<number>, p: number): number | undefined =>
  sorted.length === 0 ? undefined : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]

/**
 * A component's figures over the window `(now - windowMillis, now]`: the time
 * in each status (from its transitions), the status changes, and the check
 * durations' percentiles. Bounded by the ring: what it dropped is not
 * counted, and the time before `knownFrom` is not covered.
 */
export const windowTrend = (state: State, now: number, windowMillis: number): WindowTrend => {
  const start = now - windowMillis
  const from = Math.min(now, Math.max(start, state.knownFrom))
  const spent = { healthy: 0, degraded: 0, unhealthy: 0 }
  let statusChanges = 0
  // the status at `from`: the `from` of the first transition after it, else the current one
  let current: Status = state.status
  const { transitions } = state
  let first = transitions.length
  for (let i = 0; i < transitions.length; i++) {
    if ((transitions[i] as Transition).at > from) {
      first = i
      current = (transitions[i] as Transition).from
      break
    }
  }
  let cursor = from
  for (let i = first; i < transitions.length; i++) {
    const t = transitions[i] as Transition
    if (t.at > now) break
    spent[current] += t.at - cursor
    cursor = t.at
    current = t.to
  }
  spent[current] += Math.max(0, now - cursor)
  for (const t of transitions) if (t.at > start && t.at <= now) statusChanges++
  const latencies: Array<number> = []
  let samples = 0
  for (const sample of state.history) {
    if (sample.at <= start || sample.at > now) continue
    samples++
    if (sample.latencyMillis !== undefined) latencies.push(sample.latencyMillis)
  }
  latencies.sort((a, b) => a - b)
  const coveredMillis = now - from
  return {
    windowMillis,
    coveredMillis,
    healthyMillis: spent.healthy,
    degradedMillis: spent.degraded,
    unhealthyMillis: spent.unhealthy,
    availability: coveredMillis > 0 ? spent.healthy / coveredMillis : state.status === "healthy" ? 1 : 0,
    statusChanges,
    samples,
    latencyP50Millis: nearestRank(latencies, 0.5),
    latencyP95Millis: nearestRank(latencies, 0.95),
    latencyMaxMillis: latencies.at(-1)
  }
}

/**
 * The delay before a check's next run: `interval` moved by up to
 * `jitter` of itself either way, from a uniform draw `random` in [0, 1).
 */
export const jittered = (intervalMillis: number, jitter: number, random: number): number =>
  Math.max(0, intervalMillis * (1 + jitter * (2 * random - 1)))

/** The delay before a check's first run: up to `stagger` of the interval, from a uniform draw in [0, 1). */
export const staggered = (intervalMillis: number, stagger: number, random: number): number =>
  Math.max(0, intervalMillis * stagger * random)

/** What aggregation needs of a component. */
export interface Member {
  readonly status: Status
  /** A non-critical component makes the whole at worst `degraded`. */
  readonly critical: boolean
}

/**
 * The status of a whole: the worst of its members, a non-critical member
 * counting as at worst `degraded`; `healthy` with no members.
 */
export const aggregate = (members: Iterable<Member>): Status => {
  let worstSeverity = 0
  for (const member of members) {
    const s = member.critical ? severity[member.status] : Math.min(severity[member.status], severity.degraded)
    if (s > worstSeverity) worstSeverity = s
  }
  return bySeverity[worstSeverity] as Status
}
