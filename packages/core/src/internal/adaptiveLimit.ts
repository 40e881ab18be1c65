/**
 * Adaptive concurrency limits: the bulkhead's limit per key, moved between
 * `minLimit` and `maxLimit` by what its calls take and how they end.
 *
 * Three algorithms, each a pure `update(state, sample, config) → state` over
 * plain readonly data (no `Effect`, no clock reads, no randomness): the
 * wiring times each call and hands the sample over when it ends.
 *
 * - **aimd** (loss based, as TCP Reno's congestion avoidance): +1 per window
 *   of successes while the limit is in use, × `backoffRatio` on a drop (a
 *   failure, or a call slower than `latencyThreshold`).
 * - **gradient** (delay based, Netflix's Gradient2): the limit follows the
 *   ratio of a long-term average RTT to the short-term one, plus a little
 *   queueing headroom.
 * - **vegas** (delay based, TCP Vegas): an estimate of the calls queued at the
 *   dependency from the RTT against the lowest RTT seen (`rttNoLoad`).
 *
 * Sources, read for the formulas (the code is ours): Netflix
 * `concurrency-limits` (`AIMDLimit.java`, `Gradient2Limit.java`,
 * `VegasLimit.java`, `WindowedLimit.java`, `ExpAvgMeasurement.java`,
 * `Log10RootFunction.java`, Apache-2.0), and Envoy's adaptive concurrency
 * filter (gradient controller: `gradient = minRTT / sampleRTT`, headroom
 * `√limit`).
 *
 * Every function is total: a limit is always a finite number within
 * `[minLimit, maxLimit]`, whatever the samples (negative, infinite or NaN
 * RTTs included), and the integer limit the bulkhead enforces is its floor.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/** One call that ended: what the limit learns from. */
export interface Sample {
  /** How long the call ran, in milliseconds (monotonic). */
  readonly rtt: number
  /** Permits held in the compartment when the call started, its own included. */
  readonly inflight: number
  /** The call failed or timed out: a loss signal (aimd and vegas decrease; gradient follows RTT only). */
  readonly dropped: boolean
  /** When the call ended, in milliseconds on the same (monotonic) clock as `rtt`. */
  readonly now: number
}

/** The bounds every algorithm keeps its limit within (integers, `1 <= minLimit <= maxLimit`). */
export interface Bounds {
  readonly minLimit: number
  readonly maxLimit: number
}

/** AIMD's parameters. */
export interface AimdConfig extends Bounds {
  readonly algorithm: "aimd"
  /** The factor applied on a drop, in (0, 1). */
  readonly backoffRatio: number
  /** A call slower than this (ms) counts as a drop. */
  readonly latencyThresholdMillis: number
}

/** Gradient2's parameters. */
export interface GradientConfig extends Bounds {
  readonly algorithm: "gradient"
  /** Weight of the new estimate, in (0, 1]. */
  readonly smoothing: number
  /** Headroom added to the estimate; undefined: √limit. */
  readonly queueSize: number | undefined
  /** Windows the long-term RTT averages over (its factor is 2 / (longWindow + 1)). */
  readonly longWindow: number
  /** A window ends once it is this old (ms) and holds `minWindowSamples` samples. */
  readonly windowMillis: number
  readonly minWindowSamples: number
}

/** Vegas's parameters. */
export interface VegasConfig extends Bounds {
  readonly algorithm: "vegas"
  /** Below this estimated queue the limit grows; undefined: 3 × log10(limit). */
  readonly alpha: number | undefined
  /** Above this estimated queue the limit shrinks; undefined: 6 × log10(limit). */
  readonly beta: number | undefined
  /** Weight of the new estimate, in (0, 1]. */
  readonly smoothing: number
  /** `rttNoLoad` is reset every `probeMultiplier × limit` samples. */
  readonly probeMultiplier: number
}

/** One algorithm's parameters. */
export type Config = AimdConfig | GradientConfig | VegasConfig

/** AIMD's state. */
export interface AimdState {
  readonly algorithm: "aimd"
  /** The limit (an integer for AIMD). */
  readonly limit: number
  /** Successes counted towards the next +1 (one window: `limit` of them). */
  readonly successes: number
  /** When the last decrease happened (`-Infinity` before any): drops of calls started before it are the same episode. */
  readonly lastDecreaseAt: number
}

/** Gradient2's state. */
export interface GradientState {
  readonly algorithm: "gradient"
  readonly limit: number
  /** The long-term RTT (ms): the mean of the first windows, then an exponential average. */
  readonly longRtt: number
  /** Windows averaged into `longRtt` (counts up to the warm-up). */
  readonly longCount: number
  /** The short-term RTT of the last window ended (ms); -1 before any. */
  readonly shortRtt: number
  /** The window being filled: when its first sample came, how many, their RTT sum, the most in flight. */
  readonly windowStart: number
  readonly windowCount: number
  readonly windowSum: number
  readonly windowInflight: number
}

/** Vegas's state. */
export interface VegasState {
  readonly algorithm: "vegas"
  readonly limit: number
  /** The lowest RTT seen since the last probe (ms); -1 before any sample. */
  readonly rttNoLoad: number
  /** Samples since the last probe. */
  readonly probeCount: number
}

/** One algorithm's state. */
export type State = AimdState | GradientState | VegasState

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/** Within this of an integer, a limit is that integer: smoothing approaches a bound without reaching it otherwise. */
const snapEpsilon = 1e-9

const clamp = (value: number, bounds: Bounds): number => {
  const nearest = Math.round(value)
  const v = Math.abs(value - nearest) < snapEpsilon ? nearest : value
  // NaN (never produced from valid samples) falls to the minimum
  if (!(v >= bounds.minLimit)) return bounds.minLimit
  return Math.min(v, bounds.maxLimit)
}

/** An RTT usable in arithmetic: finite and non-negative (garbage reads as 0, "no queueing seen"). */
const sanitize = (rtt: number): number => (rtt > 0 && rtt < Number.POSITIVE_INFINITY ? rtt : 0)

/** log10 of the limit, at least 1 (Netflix's `Log10RootFunction` below 1000). */
export const log10Root = (limit: number): number => Math.max(1, Math.floor(Math.log10(Math.max(1, limit))))

/** The integer limit a compartment enforces: the state's limit, floored. */
export const limitOf = (state: State): number => Math.floor(state.limit)

/** Warm-up of the long-term RTT: its first windows are averaged plainly (`ExpAvgMeasurement`'s warmup of 10). */
export const longWarmup = 10

/** The long-term RTT is pulled down by this factor when it exceeds twice the short-term one (Gradient2). */
export const longDrift = 0.9

// ---------------------------------------------------------------------------
// aimd
// ---------------------------------------------------------------------------

/** A fresh AIMD state at `initial` (clamped, floored). */
export const makeAimd = (config: AimdConfig, initial: number): AimdState => ({
  algorithm: "aimd",
  limit: Math.floor(clamp(initial, config)),
  successes: 0,
  lastDecreaseAt: Number.NEGATIVE_INFINITY
})

/**
 * AIMD (after Netflix's `AIMDLimit`):
 *
 * - a drop (failure, or `rtt > latencyThreshold`) sets the limit to
 *   `max(minLimit, min(limit − 1, ⌊limit × backoffRatio⌋))`: at least one
 *   less, so it always shrinks while above `minLimit`. One decrease per
 *   episode: a drop of a call that started before the last decrease is the
 *   same congestion seen again (as TCP halves once per window, not per loss);
 * - a success while the limit is in use (`inflight × 2 >= limit`, Netflix's
 *   test) counts towards a window; after `limit` of them the limit grows by 1
 *   (TCP's congestion avoidance: one per window of acknowledgements);
 * - a success while most of the limit is unused changes nothing (no upward
 *   drift when the dependency is not what limits the calls).
 */
export const updateAimd = (state: AimdState, sample: Sample, config: AimdConfig): AimdState => {
  const rtt = sanitize(sample.rtt)
  if (sample.dropped || rtt > config.latencyThresholdMillis) {
    if (sample.now - rtt < state.lastDecreaseAt) return state
    const limit = clamp(Math.min(state.limit - 1, Math.floor(state.limit * config.backoffRatio)), config)
    return { algorithm: "aimd", limit, successes: 0, lastDecreaseAt: sample.now }
  }
  if (sample.inflight * 2 < state.limit) return state
  const successes = state.successes + 1
  if (successes < state.limit) return { ...state, successes }
  return { ...state, limit: clamp(state.limit + 1, config), successes: 0 }
}

// ---------------------------------------------------------------------------
// gradient
// ---------------------------------------------------------------------------

/** A fresh Gradient2 state at `initial` (clamped). */
export const makeGradient = (config: GradientConfig, initial: number): GradientState => ({
  algorithm: "gradient",
  limit: clamp(initial, config),
  longRtt: 0,
  longCount: 0,
  shortRtt: -1,
  windowStart: 0,
  windowCount: 0,
  windowSum: 0,
  windowInflight: 0
})

/**
 * Gradient2 (after Netflix's `Gradient2Limit` behind a `WindowedLimit`):
 * samples are gathered in windows (at least `windowMillis` long and
 * `minWindowSamples` samples); when one ends, its mean RTT is the short-term
 * RTT and
 *
 * - the long-term RTT averages it in (plain mean over the first
 *   {@link longWarmup} windows, then exponentially with factor
 *   `2 / (longWindow + 1)`), and drifts down (× {@link longDrift}) when it is
 *   more than twice the short-term one, so the limit recovers quickly once a
 *   long overload is over;
 * - unless most of the limit was unused in the window (the most in flight
 *   under half the limit: no growth when the dependency is not what limits),
 *   `gradient = clamp(longRtt / shortRtt, 0.5, 1)`,
 *   `estimate = limit × gradient + queueSize` (`√limit` by default, Envoy's
 *   headroom) and `limit = limit × (1 − smoothing) + estimate × smoothing`,
 *   within the bounds.
 *
 * Drops are not a signal here (as in Gradient2): only latency is.
 */
export const updateGradient = (state: GradientState, sample: Sample, config: GradientConfig): GradientState => {
  const rtt = sanitize(sample.rtt)
  const first = state.windowCount === 0
  const windowStart = first ? sample.now : state.windowStart
  const windowCount = state.windowCount + 1
  const windowSum = state.windowSum + rtt
  const windowInflight = Math.max(state.windowInflight, sample.inflight)
  if (windowCount < config.minWindowSamples || !(sample.now - windowStart >= config.windowMillis)) {
    return { ...state, windowStart, windowCount, windowSum, windowInflight }
  }
  // the window ends
  const shortRtt = windowSum / windowCount
  let longRtt: number
  let longCount = state.longCount
  if (longCount < longWarmup) {
    longRtt = (state.longRtt * longCount + shortRtt) / (longCount + 1)
    longCount++
  } else {
    const factor = 2 / (config.longWindow + 1)
    longRtt = state.longRtt * (1 - factor) + shortRtt * factor
  }
  if (shortRtt > 0 && longRtt > 2 * shortRtt) longRtt *= longDrift
  let limit = state.limit
  if (windowInflight * 2 >= limit) {
    const gradient = shortRtt > 0 ? Math.max(0.5, Math.min(1, longRtt / shortRtt)) : 1
    const queueSize = config.queueSize ?? Math.sqrt(limit)
    const estimate = limit * gradient + queueSize
    limit = clamp(limit * (1 - config.smoothing) + estimate * config.smoothing, config)
  }
  return {
    algorithm: "gradient",
    limit,
    longRtt,
    longCount,
    shortRtt,
    windowStart: 0,
    windowCount: 0,
    windowSum: 0,
    windowInflight: 0
  }
}

// ---------------------------------------------------------------------------
// vegas
// ---------------------------------------------------------------------------

/** A fresh Vegas state at `initial` (clamped). */
export const makeVegas = (config: VegasConfig, initial: number): VegasState => ({
  algorithm: "vegas",
  limit: clamp(initial, config),
  rttNoLoad: -1,
  probeCount: 0
})

/**
 * Vegas (after Netflix's `VegasLimit`): `rttNoLoad` is the lowest RTT seen,
 * reset to the current sample once more than `probeMultiplier × limit` samples came since the last (a
 * probe, so it can follow a dependency that got slower for good; Netflix
 * jitters the period randomly, here it is fixed, which keeps the function
 * pure). Otherwise the calls queued at the dependency are estimated as
 * `queue = ⌈limit × (1 − rttNoLoad / rtt)⌉`, and with `l = log10(limit)`
 * (at least 1):
 *
 * - a drop: `limit − l`;
 * - most of the limit unused (`inflight × 2 < limit`): no change;
 * - `queue <= l`: `limit + beta` (nothing queues: grow fast);
 * - `queue < alpha`: `limit + l`; `queue > beta`: `limit − l`;
 * - otherwise (between alpha and beta) the limit holds: the steady state.
 *
 * The new value is smoothed (`(1 − smoothing) × limit + smoothing × new`)
 * and kept within the bounds.
 */
export const updateVegas = (state: VegasState, sample: Sample, config: VegasConfig): VegasState => {
  const rtt = sanitize(sample.rtt)
  const probeCount = state.probeCount + 1
  // strictly more, so a sample between two probes always counts (even at probeMultiplier × limit = 1)
  if (probeCount > config.probeMultiplier * state.limit) {
    return { algorithm: "vegas", limit: state.limit, rttNoLoad: rtt, probeCount: 0 }
  }
  if (state.rttNoLoad < 0 || rtt < state.rttNoLoad) {
    return { algorithm: "vegas", limit: state.limit, rttNoLoad: rtt, probeCount }
  }
  const limit = state.limit
  const l = log10Root(limit)
  let next: number
  if (sample.dropped) {
    next = limit - l
  } else if (sample.inflight * 2 < limit) {
    return { ...state, probeCount }
  } else {
    const queue = rtt > 0 ? Math.ceil(limit * (1 - state.rttNoLoad / rtt)) : 0
    const alpha = config.alpha ?? 3 * l
    const beta = config.beta ?? 6 * l
    if (queue <= l) next = limit + beta
    else if (queue < alpha) next = limit + l
    else if (queue > beta) next = limit - l
    else return { ...state, probeCount }
  }
  next = clamp(next, config)
  return {
    algorithm: "vegas",
    limit: clamp((1 - config.smoothing) * limit + config.smoothing * next, config),
    rttNoLoad: state.rttNoLoad,
    probeCount
  }
}

// ---------------------------------------------------------------------------
// dispatch
// ---------------------------------------------------------------------------

/** A fresh state of the configured algorithm, at `initial` (clamped to the bounds). */
export const make = (config: Config, initial: number): State => {
  switch (config.algorithm) {
    case "aimd":
      return makeAimd(config, initial)
    case "gradient":
      return makeGradient(config, initial)
    case "vegas":
      return makeVegas(config, initial)
  }
}

/** The state after `sample`; a state of another algorithm than `config`'s is returned unchanged. */
export const update = (state: State, sample: Sample, config: Config): State => {
  if (config.algorithm === "aimd") return state.algorithm === "aimd" ? updateAimd(state, sample, config) : state
  if (config.algorithm === "gradient") {
    return state.algorithm === "gradient" ? updateGradient(state, sample, config) : state
  }
  return state.algorithm === "vegas" ? updateVegas(state, sample, config) : state
}
