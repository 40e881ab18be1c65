/**
 * Client-side adaptive throttling's decision logic: plain functions over
 * plain data.
 *
 * The Google SRE book ("Handling Overload", section "Client-side throttling",
 * https://sre.google/sre-book/handling-overload/) has each client keep, over
 * the last two minutes of its history:
 *
 * - `requests`: the requests the application attempted, on top of the
 *   throttle, so the ones the throttle rejected locally count too;
 * - `accepts`: the requests the backend accepted.
 *
 * and reject each new request locally with probability
 *
 *     max(0, (requests - K * accepts) / (requests + 1))
 *
 * While the backend accepts at least one request in K, the probability is 0.
 * Once it refuses more, the client sends it about K times what it accepts and
 * drops the rest before they reach the network. K = 2 by default: some
 * traffic the backend will refuse is still sent, so a recovery is seen soon.
 * gRPC's throttler for its lookup service (grpc-go
 * `balancer/rls/internal/adaptive`) uses the same formula with a padding of 8
 * instead of 1, counts local rejections as requests as the book does, and
 * keeps its counts in a ring of time bins (`lookback.go`): the window here is
 * built the same way.
 *
 * Two knobs the book does not have: `minRequests` (no throttling while the
 * window holds fewer requests: the book notes the scheme suits clients that
 * send often) and `maxRejectProbability` (a cap, so a share of the traffic
 * always reaches the backend and a recovery shows within a window, whatever
 * the request rate; Envoy's admission control has the same cap).
 *
 * The window is time-bucketed like the retry budget's and the circuit
 * breaker's: `buckets` buckets of `windowMillis / buckets`; an event counts
 * until its bucket is `buckets` buckets old, so for between
 * `windowMillis - windowMillis / buckets` and `windowMillis`. Bucket `epoch`
 * is `floor(now * buckets / windowMillis)`.
 *
 * No Effect, no clock reads, no randomness: the current time (`now`, in
 * milliseconds) is an argument, and the caller draws the coin. Time never runs
 * backwards here: a `now` earlier than the latest one seen (or `NaN`) is read
 * as the latest one. The functions mutate the `Window` they are given, so the
 * hot path allocates nothing.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// configuration and state
// ---------------------------------------------------------------------------

/** Normalized configuration: every duration in milliseconds. */
export interface Config {
  /** The window's length, `> 0` (the book's two minutes: 120_000). */
  readonly windowMillis: number
  /** How many buckets the window is cut into, an integer `>= 1`. */
  readonly buckets: number
  /** The accepts multiplier K, `>= 1` (2 in the book). */
  readonly k: number
  /** No throttling while the window holds fewer requests than this (0: the book's formula alone). */
  readonly minRequests: number
  /** The highest rejection probability, in [0, 1]. */
  readonly maxRejectProbability: number
}

/**
 * One key's window. `slots` holds three numbers per bucket: the epoch it
 * holds (-1 when empty), its requests and its accepts (bucket `i` holds
 * epochs `e` with `e % buckets === i`). One typed array per key keeps a key
 * small. Mutable: see the module comment.
 */
export interface Window {
  readonly slots: Float64Array
  /** Requests in the window (the buckets' total). */
  requests: number
  /** Accepts in the window (the buckets' total); never more than `requests`. */
  accepts: number
  /** The latest time seen: an earlier `now` is read as this one. */
  nowMillis: number
  /** The epoch the window was last expired at: the epoch of `nowMillis`. */
  epoch: number
  /** The offset in `slots` of bucket `epoch`. */
  offset: number
}

/** `windowMillis`, with a non-positive or `NaN` one read as 1. */
const windowOf = (config: Config): number => (config.windowMillis > 0 ? config.windowMillis : 1)

/** `buckets` as an integer >= 1 (`NaN` is 1). */
const bucketCount = (config: Config): number => (config.buckets >= 1 ? Math.floor(config.buckets) : 1)

/** An empty window: no requests, no accepts, probability 0. */
export const make = (config: Config): Window => {
  const buckets = bucketCount(config)
  const slots = new Float64Array(3 * buckets)
  for (let i = 0; i < buckets; i++) slots[3 * i] = -1
  return { slots, requests: 0, accepts: 0, nowMillis: 0, epoch: 0, offset: 0 }
}

// ---------------------------------------------------------------------------
// the window
// ---------------------------------------------------------------------------

/**
 * Advances the clock to `now` and drops the buckets that fell out of the
 * window: epochs older than `epoch(now) - buckets + 1`. Returns the current
 * bucket's offset in `slots`. Scans the buckets only when the epoch changed
 * and the window holds something: O(buckets) once per bucket width at most,
 * O(1) otherwise; no arithmetic at all when the time has not moved (callers
 * that read the clock once per bucket pass the same `now` again and again).
 */
const advance = (w: Window, now: number, config: Config): number => {
  // not later than the latest time (or NaN, or infinite): the bucket of the latest time
  if (!(now > w.nowMillis && now < Infinity)) return w.offset
  w.nowMillis = now
  const slots = w.slots
  const buckets = slots.length / 3
  const window = windowOf(config)
  const epoch = Math.floor((now * buckets) / window)
  if (epoch === w.epoch) return w.offset
  if (w.requests !== 0) {
    const oldest = epoch - buckets + 1
    for (let i = 0; i < slots.length; i += 3) {
      const e = slots[i] ?? -1
      if (e >= 0 && e < oldest) {
        w.requests -= slots[i + 1] ?? 0
        w.accepts -= slots[i + 2] ?? 0
        slots[i] = -1
        slots[i + 1] = 0
        slots[i + 2] = 0
      }
    }
  }
  w.epoch = epoch
  w.offset = 3 * (epoch % buckets)
  return w.offset
}

// ---------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------

/**
 * The rejection probability for counts of a window: 0 below `minRequests`,
 * else `max(0, (requests - k * accepts) / (requests + 1))`, at most
 * `maxRejectProbability`.
 */
export const probability = (requests: number, accepts: number, config: Config): number => {
  if (requests < config.minRequests || requests <= 0) return 0
  const p = (requests - config.k * accepts) / (requests + 1)
  if (!(p > 0)) return 0
  return p < config.maxRejectProbability ? p : Math.max(0, config.maxRejectProbability)
}

/**
 * Whether the window can reject at all, at `now` or later, before the next
 * `record`: false when every request in it was accepted (`requests ===
 * accepts`). Then every bucket holds only accepts, any set of buckets the
 * window keeps as time passes gives `requests - k * accepts <= 0` (k >= 1),
 * and the probability is 0 whatever the time: a caller may admit without
 * reading the clock. O(1).
 */
export const mayReject = (w: Window): boolean => w.requests !== w.accepts

/** The rejection probability at `now` (after dropping expired buckets). */
export const rejectProbability = (w: Window, now: number, config: Config): number => {
  advance(w, now, config)
  return probability(w.requests, w.accepts, config)
}

/**
 * Records one request at `now`, accepted by the backend or not. A request the
 * throttle rejected locally is recorded as not accepted.
 */
export const record = (w: Window, now: number, accepted: boolean, config: Config): void => {
  const i = advance(w, now, config)
  const slots = w.slots
  if (slots[i] !== w.epoch) {
    // `advance` expired whatever the slot held (epochs only grow), so its counts are 0
    slots[i] = w.epoch
    slots[i + 1] = 0
    slots[i + 2] = 0
  }
  slots[i + 1] = (slots[i + 1] ?? 0) + 1
  w.requests++
  if (accepted) {
    slots[i + 2] = (slots[i + 2] ?? 0) + 1
    w.accepts++
  }
}

/** The requests and accepts in the window at `now`. */
export const counts = (
  w: Window,
  now: number,
  config: Config
): { readonly requests: number; readonly accepts: number } => {
  advance(w, now, config)
  return { requests: w.requests, accepts: w.accepts }
}

/**
 * Whether the window at `now` holds no request, so the key behaves as a new
 * one and can be dropped without changing any decision. True at the latest
 * `windowMillis` after the last request.
 */
export const isIdle = (w: Window, now: number, config: Config): boolean => {
  advance(w, now, config)
  return w.requests === 0
}

/** The bucket epoch of `now` (for rate-limiting events to one per key and bucket). */
export const epochOf = (now: number, config: Config): number =>
  Math.floor((now * bucketCount(config)) / windowOf(config))

/**
 * The first whole millisecond after `now` in a later bucket epoch: every
 * time from `now` up to it (excluded) is in `now`'s bucket, so a caller that
 * read the clock at `now` may reuse that reading for the window until then.
 * It is the bucket boundary `(epoch + 1) × windowMillis / buckets`, settled
 * on whole milliseconds against rounding. `now` itself (nothing to reuse)
 * when `now` is not a time in milliseconds this can settle (`NaN`, beyond
 * ±2^52).
 */
export const epochEnd = (now: number, config: Config): number => {
  if (!(Math.abs(now) < 2 ** 52)) return now
  const epoch = epochOf(now, config)
  let end = Math.max(Math.floor(now) + 1, Math.ceil(((epoch + 1) * windowOf(config)) / bucketCount(config)))
  // a step or two at most: the boundary is off by a few ulps, far below a millisecond
  for (let i = 0; i < 8 && epochOf(end, config) <= epoch; i++) end++
  for (let i = 0; i < 8 && end - 1 > now && epochOf(end - 1, config) > epoch; i++) end--
  return epochOf(end, config) > epoch ? end : now
}
