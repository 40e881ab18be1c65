/**
 * The retry budget's decision logic: plain functions over plain data.
 *
 * A retry budget (Finagle's `RetryBudget`, Envoy's `retry_budget`, the Google
 * SRE book's per-client retry ratio) caps retries as a share of the traffic
 * instead of per call: over a sliding window, a retry is allowed while
 *
 *     retries + 1 <= ratio * requests + minRetriesPerSecond * windowMillis / 1000
 *
 * where `requests` counts original requests (not retries) and `retries` the
 * retries already allowed. With a downstream that fails every call, the window
 * then carries at most `requests * (1 + ratio) + floor` attempts instead of
 * `requests * maxAttempts`.
 *
 * The window is time-bucketed like the circuit breaker's: `buckets` buckets of
 * `windowMillis / buckets`; a bucket is dropped once it is `buckets` buckets
 * old, so an event counts for between `windowMillis - windowMillis / buckets`
 * and `windowMillis` after it happens. Bucket `epoch` is
 * `floor(now * buckets / windowMillis)`.
 *
 * No Effect, no clock reads: the current time (`now`, in milliseconds) is an
 * argument. Time never runs backwards here: a `now` earlier than the latest one
 * seen (or `NaN`, or before 0) is read as the latest one. The functions mutate
 * the `State` they are given, as the circuit breaker's do, so the hot path
 * allocates nothing.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// configuration and state
// ---------------------------------------------------------------------------

/** Normalized configuration: every duration in milliseconds. */
export interface Config {
  /** Retries allowed per original request in the window, `>= 0` (e.g. 0.2 for 20%). */
  readonly ratio: number
  /** Retries allowed per second of window even without requests, `>= 0`: the floor for low traffic. */
  readonly minRetriesPerSecond: number
  /** The window's length, `> 0` (e.g. 10_000). */
  readonly windowMillis: number
  /** How many buckets the window is cut into, an integer `>= 1` (e.g. 10). */
  readonly buckets: number
}

/** One budget's window. Mutable: see the module comment. */
export interface State {
  /** The epoch each bucket holds; -1 when empty. Bucket `i` holds epochs `e` with `e % buckets === i`. */
  readonly bucketEpoch: Float64Array
  /** Original requests per bucket. */
  readonly bucketRequests: Float64Array
  /** Allowed retries per bucket. */
  readonly bucketRetries: Float64Array
  /** Original requests in the window (the buckets' total). */
  requests: number
  /** Allowed retries in the window (the buckets' total). */
  retries: number
  /** The latest time seen: an earlier `now` is read as this one. */
  nowMillis: number
  /** The epoch the window was last expired at. */
  epoch: number
  /** When the last request or retry was recorded; `-Infinity` before the first. */
  lastEventMillis: number
}

/** `windowMillis`, with a non-positive or `NaN` one read as 1. */
const windowOf = (config: Config): number => (config.windowMillis > 0 ? config.windowMillis : 1)

/** `buckets` as an integer >= 1 (`NaN` is 1). */
const bucketCount = (config: Config): number => (config.buckets >= 1 ? Math.floor(config.buckets) : 1)

/** An empty budget: no requests, no retries; the floor alone is available. */
export const make = (config: Config): State => {
  const buckets = bucketCount(config)
  return {
    bucketEpoch: new Float64Array(buckets).fill(-1),
    bucketRequests: new Float64Array(buckets),
    bucketRetries: new Float64Array(buckets),
    requests: 0,
    retries: 0,
    nowMillis: 0,
    epoch: 0,
    lastEventMillis: -Infinity
  }
}

// ---------------------------------------------------------------------------
// the window
// ---------------------------------------------------------------------------

/** Empties every bucket. */
const clear = (state: State): void => {
  state.bucketEpoch.fill(-1)
  state.bucketRequests.fill(0)
  state.bucketRetries.fill(0)
  state.requests = 0
  state.retries = 0
}

/**
 * Advances the clock to `now` and drops the buckets that fell out of the
 * window: epochs older than `epoch(now) - buckets + 1`. Returns the current
 * bucket's index. Touches the buckets only when the epoch changed.
 *
 * Once `windowMillis` has passed since the last event every bucket is out;
 * checking that directly makes it hold whatever the rounding of the epoch
 * arithmetic, and empties a long-idle window without scanning it.
 */
const advance = (state: State, now: number, config: Config): number => {
  if (now > state.nowMillis && now < Infinity) state.nowMillis = now
  const buckets = state.bucketEpoch.length
  const window = windowOf(config)
  const epoch = Math.floor((state.nowMillis * buckets) / window)
  if (state.nowMillis - state.lastEventMillis >= window) {
    if (state.requests !== 0 || state.retries !== 0) clear(state)
  } else if (epoch !== state.epoch) {
    const oldest = epoch - buckets + 1
    for (let i = 0; i < buckets; i++) {
      const e = state.bucketEpoch[i] ?? -1
      if (e >= 0 && e < oldest) {
        state.requests -= state.bucketRequests[i] ?? 0
        state.retries -= state.bucketRetries[i] ?? 0
        state.bucketEpoch[i] = -1
        state.bucketRequests[i] = 0
        state.bucketRetries[i] = 0
      }
    }
  }
  state.epoch = epoch
  return epoch % buckets
}

/** Makes the current bucket hold the current epoch (it held an expired one or none) and returns its index. */
const currentBucket = (state: State, now: number, config: Config): number => {
  const i = advance(state, now, config)
  if (state.bucketEpoch[i] !== state.epoch) {
    // `advance` expired whatever the slot held (epochs only grow), so its counts are 0
    state.bucketEpoch[i] = state.epoch
    state.bucketRequests[i] = 0
    state.bucketRetries[i] = 0
  }
  state.lastEventMillis = state.nowMillis
  return i
}

/** The retries the window allows: `ratio * requests + minRetriesPerSecond * windowMillis / 1000`. */
const allowanceOf = (state: State, config: Config): number =>
  (config.ratio > 0 && state.requests > 0 ? config.ratio * state.requests : 0) +
  (config.minRetriesPerSecond > 0 ? (config.minRetriesPerSecond * windowOf(config)) / 1000 : 0)

// ---------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------

/** Records one original request (not a retry) at `now`: it adds `ratio` to the allowance. */
export const recordRequest = (state: State, now: number, config: Config): void => {
  const i = currentBucket(state, now, config)
  state.bucketRequests[i] = (state.bucketRequests[i] ?? 0) + 1
  state.requests++
}

/**
 * Whether a retry may be made at `now`: `retries + 1 <= allowance` over the
 * window. When it may, the retry is recorded (withdrawn from the budget);
 * a refused retry records nothing.
 */
export const tryRetry = (state: State, now: number, config: Config): boolean => {
  advance(state, now, config)
  if (!(state.retries + 1 <= allowanceOf(state, config))) return false
  const i = currentBucket(state, now, config)
  state.bucketRetries[i] = (state.bucketRetries[i] ?? 0) + 1
  state.retries++
  return true
}

/**
 * The requests and retries in the window at `now` (after dropping expired
 * buckets), and the `allowance`: the retries the window allows in total,
 * `ratio * requests + minRetriesPerSecond * windowMillis / 1000`. A retry is
 * allowed while `retries + 1 <= allowance`; `retries` may exceed `allowance`
 * after requests expire ahead of the retries they paid for.
 */
export const usage = (
  state: State,
  now: number,
  config: Config
): { readonly requests: number; readonly retries: number; readonly allowance: number } => {
  advance(state, now, config)
  return { requests: state.requests, retries: state.retries, allowance: allowanceOf(state, config) }
}

/**
 * Whether the window at `now` holds no request and no retry, so the budget is
 * back to its floor and can be dropped by idle eviction. True at the latest
 * `windowMillis` after the last event.
 */
export const isIdle = (state: State, now: number, config: Config): boolean => {
  advance(state, now, config)
  return state.requests === 0 && state.retries === 0
}
