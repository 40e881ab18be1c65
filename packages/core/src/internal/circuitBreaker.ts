/**
 * The circuit breaker's decision logic: plain functions over plain data.
 *
 * No Effect, no clock reads, no randomness: the current time (`now`, in
 * milliseconds) and every duration are arguments. The public module reads the
 * `Clock` once per call and passes it in; the Redis Lua port keeps these
 * functions' names, order and comments.
 *
 * The functions mutate the `Circuit` they are given instead of returning a
 * new one: a protected call must not allocate, and a circuit with a 100-call
 * window would otherwise copy its ring on every outcome. Callers that need
 * persistence semantics (the property tests) clone with `clone` first.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// states, outcomes, verdicts
// ---------------------------------------------------------------------------

/** The automatic states and the three manual ones. */
export type StateTag = "Closed" | "Open" | "HalfOpen" | "Disabled" | "ForcedOpen" | "MetricsOnly"

/** The manual states an operator can force. */
export type ManualState = "Closed" | "Disabled" | "ForcedOpen" | "MetricsOnly"

/** A classified call result. */
export type Outcome = "Success" | "Failure" | "Ignored"

/** What `admit` decided. */
export type Verdict =
  /** Run the call; record its outcome with the circuit's current generation. */
  | "Admit"
  /** Run the call as a half-open probe. */
  | "Probe"
  /** Reject: the circuit is Open (or was just reopened). */
  | "RejectOpen"
  /** Reject: the circuit is HalfOpen and every permitted probe is taken. */
  | "RejectHalfOpen"
  /** Reject: the circuit is ForcedOpen. */
  | "RejectForced"

/** A state change made by `admit`, `record` or `force`. */
export interface Transition {
  readonly from: StateTag
  readonly to: StateTag
  /** For a transition to Open: how long it stays open, in milliseconds. */
  readonly openMillis: number
  /** For a transition to Open: openings since the backoff last reset, this one included. */
  readonly consecutiveOpenings: number
}

// ---------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------

/** Normalized configuration: every duration in milliseconds, every policy resolved. */
export interface Config {
  /** Consecutive-failures policy: trips after this many failures in a row; 0 disables it. */
  readonly consecutiveFailures: number
  /** Failure-rate policy over the window: trips when the rate reaches this; 0 disables it. */
  readonly failureRateThreshold: number
  /** Slow-call policy over the window: trips when the slow rate reaches this; 0 disables it. */
  readonly slowCallRateThreshold: number
  /** A call this slow or slower is slow (successes included); `Infinity` when nothing is slow. */
  readonly slowCallMillis: number
  /** `count`: the last `windowSize` calls; `time`: `windowSize` buckets of `bucketMillis`. */
  readonly windowType: "count" | "time"
  readonly windowSize: number
  readonly bucketMillis: number
  /** Rates are evaluated once the window holds at least this many calls. */
  readonly minimumCalls: number
  /** Probes admitted per half-open period. */
  readonly halfOpenPermittedCalls: number
  /** Successful probes that close the circuit (count mode). */
  readonly halfOpenSuccessesToClose: number
  /** Success-rate mode when > 0: once every permitted probe has completed, close when successes / probes >= this. */
  readonly halfOpenSuccessRate: number
  /** Reopens a circuit that stays half-open this long; `Infinity` disables it. */
  readonly halfOpenMaxMillis: number
  /** Caps a failure's retry-after hint. */
  readonly maxOpenMillis: number
}

// ---------------------------------------------------------------------------
// the circuit
// ---------------------------------------------------------------------------

/** One circuit's state. Mutable: see the module comment. */
export interface Circuit {
  state: StateTag
  /** Fencing token: changes on every state change; an outcome with an older one is dropped. */
  generation: number
  /** Failures in a row (consecutive policy). */
  consecutive: number
  // count window: a ring of outcome flags (1 = failure, 2 = slow)
  ring: Uint8Array | undefined
  ringNext: number
  ringLength: number
  // time window: per-bucket counts, bucket `i` holds epoch `bucketEpoch[i]`
  bucketEpoch: Float64Array | undefined
  bucketCalls: Int32Array | undefined
  bucketFailures: Int32Array | undefined
  bucketSlow: Int32Array | undefined
  // window totals (either kind)
  calls: number
  failures: number
  slow: number
  // open
  openedAt: number
  openUntil: number
  consecutiveOpenings: number
  lastOpenMillis: number
  /** Once closed this long after an opening, the backoff count resets. */
  backoffResetAt: number
  // half-open
  halfOpenSince: number
  probesAdmitted: number
  probesInFlight: number
  probeSuccesses: number
  probeFailures: number
}

const FAILURE = 1
const SLOW = 2

/** A fresh Closed circuit. */
export const make = (generation: number): Circuit => ({
  state: "Closed",
  generation,
  consecutive: 0,
  ring: undefined,
  ringNext: 0,
  ringLength: 0,
  bucketEpoch: undefined,
  bucketCalls: undefined,
  bucketFailures: undefined,
  bucketSlow: undefined,
  calls: 0,
  failures: 0,
  slow: 0,
  openedAt: 0,
  openUntil: 0,
  consecutiveOpenings: 0,
  lastOpenMillis: 0,
  backoffResetAt: 0,
  halfOpenSince: 0,
  probesAdmitted: 0,
  probesInFlight: 0,
  probeSuccesses: 0,
  probeFailures: 0
})

/** A deep copy. */
export const clone = (c: Circuit): Circuit => ({
  ...c,
  ring: c.ring?.slice(),
  bucketEpoch: c.bucketEpoch?.slice(),
  bucketCalls: c.bucketCalls?.slice(),
  bucketFailures: c.bucketFailures?.slice(),
  bucketSlow: c.bucketSlow?.slice()
})

// ---------------------------------------------------------------------------
// windows
// ---------------------------------------------------------------------------

/** Empties the window and the consecutive count. */
export const resetWindow = (c: Circuit): void => {
  c.consecutive = 0
  c.ringNext = 0
  c.ringLength = 0
  c.ring?.fill(0)
  c.bucketEpoch?.fill(-1)
  c.bucketCalls?.fill(0)
  c.bucketFailures?.fill(0)
  c.bucketSlow?.fill(0)
  c.calls = 0
  c.failures = 0
  c.slow = 0
}

/**
 * Drops the time buckets that fell out of the window at `now`: bucket epochs
 * older than `epoch(now) - windowSize + 1`. Touches at most `windowSize` buckets.
 */
export const expireBuckets = (c: Circuit, now: number, config: Config): void => {
  const epochs = c.bucketEpoch
  const calls = c.bucketCalls
  const failures = c.bucketFailures
  const slow = c.bucketSlow
  if (epochs === undefined || calls === undefined || failures === undefined || slow === undefined) return
  const oldest = Math.floor(now / config.bucketMillis) - config.windowSize + 1
  for (let i = 0; i < epochs.length; i++) {
    const e = epochs[i] ?? -1
    if (e >= 0 && e < oldest) {
      c.calls -= calls[i] ?? 0
      c.failures -= failures[i] ?? 0
      c.slow -= slow[i] ?? 0
      epochs[i] = -1
      calls[i] = 0
      failures[i] = 0
      slow[i] = 0
    }
  }
}

/** Adds one counted outcome to the window. */
export const pushWindow = (c: Circuit, failed: boolean, slow: boolean, now: number, config: Config): void => {
  if (config.windowType === "count") {
    let ring = c.ring
    if (ring === undefined) {
      ring = new Uint8Array(config.windowSize)
      c.ring = ring
    }
    if (c.ringLength === ring.length) {
      const evicted = ring[c.ringNext] ?? 0
      c.calls--
      if ((evicted & FAILURE) !== 0) c.failures--
      if ((evicted & SLOW) !== 0) c.slow--
    } else {
      c.ringLength++
    }
    ring[c.ringNext] = (failed ? FAILURE : 0) | (slow ? SLOW : 0)
    c.ringNext = c.ringNext + 1 === ring.length ? 0 : c.ringNext + 1
  } else {
    if (c.bucketEpoch === undefined) {
      c.bucketEpoch = new Float64Array(config.windowSize).fill(-1)
      c.bucketCalls = new Int32Array(config.windowSize)
      c.bucketFailures = new Int32Array(config.windowSize)
      c.bucketSlow = new Int32Array(config.windowSize)
    }
    expireBuckets(c, now, config)
    const epoch = Math.floor(now / config.bucketMillis)
    const i = epoch % config.windowSize
    const epochs = c.bucketEpoch
    const calls = c.bucketCalls
    const failures = c.bucketFailures
    const slowCounts = c.bucketSlow
    if (calls === undefined || failures === undefined || slowCounts === undefined) return
    if (epochs[i] !== epoch) {
      // the slot held an older epoch inside the window only if time ran backwards; drop it
      c.calls -= calls[i] ?? 0
      c.failures -= failures[i] ?? 0
      c.slow -= slowCounts[i] ?? 0
      epochs[i] = epoch
      calls[i] = 0
      failures[i] = 0
      slowCounts[i] = 0
    }
    calls[i] = (calls[i] ?? 0) + 1
    if (failed) failures[i] = (failures[i] ?? 0) + 1
    if (slow) slowCounts[i] = (slowCounts[i] ?? 0) + 1
  }
  c.calls++
  if (failed) c.failures++
  if (slow) c.slow++
}

/** The failure rate of the window, in [0, 1]; 0 for an empty window. */
export const failureRate = (c: Circuit): number => (c.calls === 0 ? 0 : c.failures / c.calls)

/** The slow-call rate of the window, in [0, 1]; 0 for an empty window. */
export const slowCallRate = (c: Circuit): number => (c.calls === 0 ? 0 : c.slow / c.calls)

/** Whether any trip policy trips. */
export const trips = (c: Circuit, config: Config): boolean => {
  if (config.consecutiveFailures > 0 && c.consecutive >= config.consecutiveFailures) return true
  if (c.calls < config.minimumCalls) return false
  if (config.failureRateThreshold > 0 && c.failures > 0 && c.failures / c.calls >= config.failureRateThreshold) {
    return true
  }
  return config.slowCallRateThreshold > 0 && c.slow > 0 && c.slow / c.calls >= config.slowCallRateThreshold
}

// ---------------------------------------------------------------------------
// transitions
// ---------------------------------------------------------------------------

/**
 * Opens the circuit for `openMillis`. From Closed, a backoff count whose reset
 * deadline has passed starts again at 0 before this opening is counted.
 */
export const open = (
  c: Circuit,
  from: StateTag,
  openMillis: number,
  now: number,
  nextGeneration: number
): Transition => {
  if (from === "Closed" && c.consecutiveOpenings > 0 && now >= c.backoffResetAt) c.consecutiveOpenings = 0
  c.state = "Open"
  c.generation = nextGeneration
  c.openedAt = now
  c.openUntil = now + openMillis
  c.lastOpenMillis = openMillis
  c.consecutiveOpenings++
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  resetWindow(c)
  return { from, to: "Open", openMillis, consecutiveOpenings: c.consecutiveOpenings }
}

/** Moves an Open circuit whose time is up to HalfOpen. */
const halfOpen = (c: Circuit, now: number, nextGeneration: number): Transition => {
  c.state = "HalfOpen"
  c.generation = nextGeneration
  c.halfOpenSince = now
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  return { from: "Open", to: "HalfOpen", openMillis: 0, consecutiveOpenings: c.consecutiveOpenings }
}

/** Closes a HalfOpen circuit; the backoff resets once it stays closed as long as it was last open. */
const close = (c: Circuit, now: number, nextGeneration: number): Transition => {
  c.state = "Closed"
  c.generation = nextGeneration
  c.backoffResetAt = now + c.lastOpenMillis
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  resetWindow(c)
  return { from: "HalfOpen", to: "Closed", openMillis: 0, consecutiveOpenings: c.consecutiveOpenings }
}

/** The result of `admit`: a verdict, and the transition it made if any. */
export interface Admission {
  verdict: Verdict
  transition: Transition | undefined
}

/**
 * Decides whether a call may run. State is derived from `now`: an Open
 * circuit whose time is up becomes HalfOpen here, with no timer, and a
 * HalfOpen circuit past `halfOpenMaxMillis` reopens here.
 *
 * `now` is read only when the circuit is not Closed, Disabled or
 * MetricsOnly (those admit without looking at the time); pass any number
 * for them. `openMillisFor(n)` gives the duration of the n-th consecutive
 * opening. `out` receives the verdict, so the hot path allocates nothing.
 */
export const admit = (
  c: Circuit,
  now: number,
  config: Config,
  openMillisFor: (consecutiveOpenings: number) => number,
  nextGeneration: () => number,
  out: Admission
): Admission => {
  out.transition = undefined
  switch (c.state) {
    case "Closed":
    case "Disabled":
    case "MetricsOnly": {
      out.verdict = "Admit"
      return out
    }
    case "ForcedOpen": {
      out.verdict = "RejectForced"
      return out
    }
    case "Open": {
      if (now < c.openUntil) {
        out.verdict = "RejectOpen"
        return out
      }
      out.transition = halfOpen(c, now, nextGeneration())
      break
    }
    case "HalfOpen": {
      if (now - c.halfOpenSince >= config.halfOpenMaxMillis) {
        out.transition = open(c, "HalfOpen", openMillisFor(c.consecutiveOpenings + 1), now, nextGeneration())
        out.verdict = "RejectOpen"
        return out
      }
      break
    }
  }
  // HalfOpen: admit up to the permitted number of probes
  if (c.probesAdmitted >= config.halfOpenPermittedCalls) {
    out.verdict = "RejectHalfOpen"
    return out
  }
  c.probesAdmitted++
  c.probesInFlight++
  out.verdict = "Probe"
  return out
}

/**
 * Applies a call's outcome. An outcome whose `generation` is not the
 * circuit's (the call was admitted before a state change) changes nothing
 * and returns `undefined`, as does any outcome that makes no transition.
 *
 * `durationMillis` decides slowness (pass 0 when durations are not measured);
 * `now` is read when the window is time-based or the outcome may open the
 * circuit. `hintMillis` (0 for none) is a failure's retry-after hint: it can
 * lengthen the opening, capped at `maxOpenMillis`.
 */
export const record = (
  c: Circuit,
  generation: number,
  outcome: Outcome,
  durationMillis: number,
  hintMillis: number,
  now: number,
  config: Config,
  openMillisFor: (consecutiveOpenings: number) => number,
  nextGeneration: () => number
): Transition | undefined => {
  if (c.generation !== generation) return undefined
  switch (c.state) {
    case "Disabled":
    case "ForcedOpen":
    case "Open":
      return undefined
    case "HalfOpen": {
      c.probesInFlight--
      if (outcome === "Ignored") {
        // an interrupted or ignored probe frees its slot
        c.probesAdmitted--
        return undefined
      }
      if (outcome === "Success") c.probeSuccesses++
      else c.probeFailures++
      if (config.halfOpenSuccessRate > 0) {
        if (c.probeSuccesses + c.probeFailures < config.halfOpenPermittedCalls) return undefined
        return c.probeSuccesses / (c.probeSuccesses + c.probeFailures) >= config.halfOpenSuccessRate
          ? close(c, now, nextGeneration())
          : open(c, "HalfOpen", openFor(c, openMillisFor, hintMillis, config), now, nextGeneration())
      }
      if (outcome === "Failure") {
        return open(c, "HalfOpen", openFor(c, openMillisFor, hintMillis, config), now, nextGeneration())
      }
      return c.probeSuccesses >= config.halfOpenSuccessesToClose ? close(c, now, nextGeneration()) : undefined
    }
    case "Closed":
    case "MetricsOnly": {
      if (outcome === "Ignored") return undefined
      const failed = outcome === "Failure"
      c.consecutive = failed ? c.consecutive + 1 : 0
      pushWindow(c, failed, durationMillis >= config.slowCallMillis, now, config)
      if (c.state === "MetricsOnly" || !trips(c, config)) return undefined
      const next = c.consecutiveOpenings > 0 && now >= c.backoffResetAt ? 1 : c.consecutiveOpenings + 1
      return open(c, "Closed", withHint(openMillisFor(next), hintMillis, config), now, nextGeneration())
    }
  }
}

const withHint = (openMillis: number, hintMillis: number, config: Config): number =>
  hintMillis > 0 ? Math.max(openMillis, Math.min(hintMillis, config.maxOpenMillis)) : openMillis

const openFor = (
  c: Circuit,
  openMillisFor: (consecutiveOpenings: number) => number,
  hintMillis: number,
  config: Config
): number => withHint(openMillisFor(c.consecutiveOpenings + 1), hintMillis, config)

/**
 * Forces a manual state. `Closed` resets the circuit (window, probes and
 * backoff); the others keep the window so MetricsOnly keeps measuring.
 */
export const force = (c: Circuit, to: ManualState, now: number, nextGeneration: number): Transition | undefined => {
  const from = c.state
  if (from === to && to !== "Closed") return undefined
  c.state = to
  c.generation = nextGeneration
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  if (to === "Closed") {
    resetWindow(c)
    c.consecutiveOpenings = 0
    c.backoffResetAt = now
    if (from === "Closed") return undefined
  }
  return { from, to, openMillis: 0, consecutiveOpenings: c.consecutiveOpenings }
}

// ---------------------------------------------------------------------------
// reading
// ---------------------------------------------------------------------------

/** Health derived from a circuit: what the health module aggregates. */
export type Health = "healthy" | "degraded" | "unhealthy"

/**
 * - unhealthy: Open or ForcedOpen;
 * - degraded: HalfOpen, or a window (past `minimumCalls`) whose failure or
 *   slow-call rate has reached half of its threshold;
 * - healthy: otherwise (Disabled is healthy: it says nothing).
 */
export const health = (c: Circuit, config: Config): Health => {
  switch (c.state) {
    case "Open":
    case "ForcedOpen":
      return "unhealthy"
    case "HalfOpen":
      return "degraded"
    case "Disabled":
      return "healthy"
    default: {
      if (c.calls < config.minimumCalls || c.calls === 0) return "healthy"
      const threshold = config.failureRateThreshold > 0 ? config.failureRateThreshold : 0.5
      if (c.failures / c.calls >= threshold / 2) return "degraded"
      if (config.slowCallRateThreshold > 0 && c.slow / c.calls >= config.slowCallRateThreshold / 2) return "degraded"
      return "healthy"
    }
  }
}

/** Whether the circuit can be dropped by idle eviction without losing protection. */
export const evictable = (c: Circuit): boolean =>
  (c.state === "Closed" || c.state === "MetricsOnly" || c.state === "Disabled") && c.probesInFlight === 0

// ---------------------------------------------------------------------------
// snapshots
// ---------------------------------------------------------------------------

/** A circuit as plain JSON-safe data, times as absolute milliseconds. */
export interface Snapshot {
  readonly state: StateTag
  readonly consecutive: number
  /** Window entries oldest first: `[failed, slow]` flags (count) or `[epoch, calls, failures, slow]` (time). */
  readonly window: ReadonlyArray<ReadonlyArray<number>>
  readonly openedAt: number
  readonly openUntil: number
  readonly consecutiveOpenings: number
  readonly lastOpenMillis: number
  readonly backoffResetAt: number
  readonly halfOpenSince: number
}

/** Exports a circuit. Probes in flight are not exported: a restored HalfOpen circuit admits fresh probes. */
export const toSnapshot = (c: Circuit): Snapshot => {
  const window: Array<ReadonlyArray<number>> = []
  if (c.ring !== undefined) {
    const start = c.ringLength === c.ring.length ? c.ringNext : 0
    for (let k = 0; k < c.ringLength; k++) {
      const flags = c.ring[(start + k) % c.ring.length] ?? 0
      window.push([(flags & FAILURE) !== 0 ? 1 : 0, (flags & SLOW) !== 0 ? 1 : 0])
    }
  } else if (c.bucketEpoch !== undefined) {
    const order = [...c.bucketEpoch.keys()].filter((i) => (c.bucketEpoch?.[i] ?? -1) >= 0)
    order.sort((a, b) => (c.bucketEpoch?.[a] ?? 0) - (c.bucketEpoch?.[b] ?? 0))
    for (const i of order) {
      window.push([c.bucketEpoch[i] ?? 0, c.bucketCalls?.[i] ?? 0, c.bucketFailures?.[i] ?? 0, c.bucketSlow?.[i] ?? 0])
    }
  }
  return {
    state: c.state,
    consecutive: c.consecutive,
    window,
    openedAt: c.openedAt,
    openUntil: c.openUntil,
    consecutiveOpenings: c.consecutiveOpenings,
    lastOpenMillis: c.lastOpenMillis,
    backoffResetAt: c.backoffResetAt,
    halfOpenSince: c.halfOpenSince
  }
}

/**
 * Restores a circuit from a snapshot under `config`. Window entries that do
 * not fit the configured window (another type, or more than its size) are
 * dropped oldest first, so a snapshot taken under other options still loads.
 */
export const fromSnapshot = (s: Snapshot, config: Config, generation: number): Circuit => {
  const c = make(generation)
  c.state = s.state
  c.consecutive = s.consecutive
  c.openedAt = s.openedAt
  c.openUntil = s.openUntil
  c.consecutiveOpenings = s.consecutiveOpenings
  c.lastOpenMillis = s.lastOpenMillis
  c.backoffResetAt = s.backoffResetAt
  c.halfOpenSince = s.halfOpenSince
  if (config.windowType === "count") {
    for (const entry of s.window) {
      if (entry.length !== 2) continue
      pushWindow(c, entry[0] === 1, entry[1] === 1, 0, config)
    }
  } else {
    for (const entry of s.window) {
      if (entry.length !== 4) continue
      const [epoch = 0, calls = 0, failures = 0, slow = 0] = entry
      for (let k = 0; k < calls; k++) {
        pushWindow(c, k < failures, k < slow, epoch * config.bucketMillis, config)
      }
    }
  }
  return c
}
