/**
 * The rate limiters' decision logic: plain functions over plain data.
 *
 * No Effect, no clock reads, no randomness: the current time (`now`, in
 * milliseconds) and every cost are arguments. The public module reads the
 * `Clock` once per call and passes it in; the Redis Lua ports keep these
 * functions' names, order and comments, so every state field is a number or a
 * small array of numbers, and nothing here uses closures or classes.
 *
 * Every algorithm has the same operations, as functions named
 * `<algorithm><Operation>` (`tokenBucketCheck`, `gcraConsume`, ...) and grouped
 * in one `Algorithm` record per algorithm (`tokenBucket`, `gcra`, ...):
 *
 * - `make(config, now)`: a fresh state (full capacity);
 * - `check(state, now, cost, config, out)`: decides without mutating, so that
 *   several limits can all be checked before any is consumed;
 * - `consume(state, now, cost, config, out)`: decides and, if allowed, commits.
 *   It returns exactly what `check` would have returned, and a refused
 *   `consume` leaves the state unchanged;
 * - `refund(state, now, cost, config)`: gives back up to `cost` units, never
 *   above full capacity;
 * - `penalize(state, now, cost, config)`: takes `cost` extra units, going into
 *   debt where the algorithm allows it (capped at one extra capacity, so that
 *   `ttlMillis` holds);
 * - `isIdle(state, now, config)`: the state decides exactly as a fresh one
 *   would, for any future trace, so it can be evicted;
 * - `ttlMillis(config)`: after this long untouched, any state is idle.
 *
 * Decisions are written into a caller-provided `Decision` (see `makeDecision`)
 * and the functions mutate the state they are given, so the hot path
 * allocates nothing. Callers that need the previous state clone it first.
 *
 * **Arithmetic.** Times are whole milliseconds in practice
 * (`Clock.currentTimeMillis`, Redis `TIME`). Fixed and sliding windows count
 * integers. For the others, two roundings make every sum exact in float64 (so
 * `remaining` always equals the number of unit requests that would pass, and a
 * Lua port doing the same float64 operations in the same order reproduces each
 * decision bit for bit), and both favour the limiter, never admitting more
 * than configured:
 * emission intervals (GCRA, shaping queue) are rounded *up* to 1/1024 ms, and
 * the token bucket and leaky meter count thousandths of a unit, so an integer
 * rate refills or drains a whole number of them per millisecond (fractional
 * rates are rounded *down* to 2^-16 thousandths).
 *
 * **Times reported.** `retryAfterMillis` and `resetMillis` are the least whole
 * numbers of milliseconds after which the condition holds (computed, then
 * checked against the algorithm's own predicate), and `delayMillis` is rounded
 * up. A clock that steps back (a `now` before the state's own times) never
 * makes a limiter more permissive.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// decisions
// ---------------------------------------------------------------------------

/** What a limiter decided about one request; written into a reused object. */
export interface Decision {
  /** Whether the request may proceed (after `delayMillis`). */
  allowed: boolean
  /** The most cost a request can ever be allowed (for `RateLimit-Limit` headers). */
  limit: number
  /** Cost units still allowed right after this decision (floor, >= 0). */
  remaining: number
  /** Milliseconds from `now` until the limiter is back to full capacity; 0 when it is. */
  resetMillis: number
  /**
   * 0 when allowed; otherwise milliseconds from `now` until a request of this
   * cost would be allowed, `Infinity` when it never can (cost above the limit).
   */
  retryAfterMillis: number
  /** How long the caller must wait before proceeding: > 0 only for the shaping queue. */
  delayMillis: number
}

/** A fresh `Decision` to reuse as the `out` argument. */
export const makeDecision = (): Decision => ({
  allowed: false,
  limit: 0,
  remaining: 0,
  resetMillis: 0,
  retryAfterMillis: 0,
  delayMillis: 0
})

const decide = (
  out: Decision,
  allowed: boolean,
  limit: number,
  remaining: number,
  resetMillis: number,
  retryAfterMillis: number,
  delayMillis: number
): Decision => {
  out.allowed = allowed
  out.limit = limit
  out.remaining = remaining > 0 ? Math.floor(remaining) : 0
  out.resetMillis = resetMillis
  out.retryAfterMillis = retryAfterMillis
  out.delayMillis = delayMillis
  return out
}

/**
 * The operations every algorithm implements, for code that is generic over
 * algorithms (the memory store, the tests).
 */
export interface Algorithm<Config, State> {
  readonly make: (config: Config, now: number) => State
  readonly check: (state: State, now: number, cost: number, config: Config, out: Decision) => Decision
  readonly consume: (state: State, now: number, cost: number, config: Config, out: Decision) => Decision
  readonly refund: (state: State, now: number, cost: number, config: Config) => void
  readonly penalize: (state: State, now: number, cost: number, config: Config) => void
  readonly isIdle: (state: State, now: number, config: Config) => boolean
  readonly ttlMillis: (config: Config) => number
}

// ---------------------------------------------------------------------------
// shared arithmetic
// ---------------------------------------------------------------------------

/** Intervals are multiples of 2^-10 ms: exact in float64 next to epoch milliseconds (< 2^43). */
const TIME_GRID = 1024

/**
 * Refills and drains, counted in thousandths of a unit, are multiples of
 * 2^-16 of them: exact in float64 for capacities below 2^27 units, and whole
 * already when the rate is an integer.
 */
const AMOUNT_GRID = 65536

/** Rounds an interval up to the time grid (so the limiter never runs faster than configured). */
const gridInterval = (millis: number): number => Math.ceil(millis * TIME_GRID) / TIME_GRID

/** Rounds a refill or drain down to the amount grid (so the limiter never credits more than configured). */
const gridAmount = (milliUnits: number): number => Math.floor(milliUnits * AMOUNT_GRID) / AMOUNT_GRID

/** The least whole number of milliseconds `d >= 0` such that `now + d >= target`. */
export const untilMillis = (target: number, now: number): number => {
  if (target <= now) return 0
  let d = Math.ceil(target - now)
  if (now + d < target) d++
  else if (d > 1 && now + (d - 1) >= target) d--
  return d
}

/** The backlog at `now` of a schedule that is busy until `busyUntil`. */
const backlog = (busyUntil: number, now: number): number => (busyUntil > now ? busyUntil - now : 0)

/**
 * The least whole number of milliseconds `d >= 0` such that, at `now + d`,
 * `backlog(busyUntil) + add <= bound`: the predicate GCRA and the shaping
 * queue decide with.
 */
const scheduleWait = (busyUntil: number, now: number, add: number, bound: number): number => {
  if (backlog(busyUntil, now) + add <= bound) return 0
  let d = Math.ceil(busyUntil - (bound - add) - now)
  if (d < 1) d = 1
  if (backlog(busyUntil, now + d) + add > bound) d++
  else if (d > 1 && backlog(busyUntil, now + d - 1) + add <= bound) d--
  return d
}

/** Schedules `add` (cost × interval) after the busy time: the new busy time. */
const scheduleAfter = (busyUntil: number, now: number, add: number): number => Math.max(busyUntil, now) + add

/** Unschedules `remove`, never before `now` (an empty schedule). */
const scheduleBack = (busyUntil: number, now: number, remove: number): number =>
  Math.max(Math.max(busyUntil, now) - remove, now)

/**
 * Schedules `add` extra as a penalty, up to `now + most`, and never earlier
 * than it was (even with a clock that stepped back).
 */
const schedulePenalty = (busyUntil: number, now: number, add: number, most: number): number =>
  Math.max(busyUntil, Math.min(Math.max(busyUntil, now) + add, now + most))

// ---------------------------------------------------------------------------
// 1. fixed window
// ---------------------------------------------------------------------------

/** Fixed window: `limit` cost per window aligned to `floor(now / windowMillis)`. */
export interface FixedWindowConfig {
  readonly limit: number
  readonly windowMillis: number
}

/** The window `count` belongs to, and the cost counted in it (penalties included). */
export interface FixedWindowState {
  window: number
  count: number
}

/** A fresh fixed window: nothing counted. */
export const fixedWindowMake = (config: FixedWindowConfig, now: number): FixedWindowState => ({
  window: Math.floor(now / config.windowMillis),
  count: 0
})

/** The window index at `now`, never before the state's own. */
const fixedWindowIndex = (s: FixedWindowState, now: number, config: FixedWindowConfig): number => {
  const w = Math.floor(now / config.windowMillis)
  return Math.max(w, s.window)
}

/**
 * Decides without mutating: allowed when `count + cost <= limit`. A refused
 * request may retry at the next window; `resetMillis` is the window's end.
 */
export const fixedWindowCheck = (
  s: FixedWindowState,
  now: number,
  cost: number,
  config: FixedWindowConfig,
  out: Decision
): Decision => {
  const w = fixedWindowIndex(s, now, config)
  const count = w === s.window ? s.count : 0
  const allowed = count + cost <= config.limit
  const after = allowed ? count + cost : count
  const windowEnd = (w + 1) * config.windowMillis
  return decide(
    out,
    allowed,
    config.limit,
    config.limit - after,
    after > 0 ? untilMillis(windowEnd, now) : 0,
    allowed ? 0 : cost > config.limit ? Infinity : untilMillis(windowEnd, now),
    0
  )
}

/** Decides as `fixedWindowCheck` and, if allowed, counts the cost. */
export const fixedWindowConsume = (
  s: FixedWindowState,
  now: number,
  cost: number,
  config: FixedWindowConfig,
  out: Decision
): Decision => {
  fixedWindowCheck(s, now, cost, config, out)
  if (out.allowed) fixedWindowPenalize(s, now, cost, config)
  return out
}

/** Uncounts up to `cost` from the current window. */
export const fixedWindowRefund = (s: FixedWindowState, now: number, cost: number, config: FixedWindowConfig): void => {
  const w = fixedWindowIndex(s, now, config)
  const count = w === s.window ? s.count : 0
  s.window = w
  s.count = count > cost ? count - cost : 0
}

/** Counts `cost` in the current window, past the limit if need be: the debt ends with the window. */
export const fixedWindowPenalize = (
  s: FixedWindowState,
  now: number,
  cost: number,
  config: FixedWindowConfig
): void => {
  const w = fixedWindowIndex(s, now, config)
  s.count = (w === s.window ? s.count : 0) + cost
  s.window = w
}

/** Idle when nothing is counted in the current window. */
export const fixedWindowIsIdle = (s: FixedWindowState, now: number, config: FixedWindowConfig): boolean =>
  fixedWindowIndex(s, now, config) !== s.window || s.count <= 0

/** A count never outlives its window. */
export const fixedWindowTtlMillis = (config: FixedWindowConfig): number => config.windowMillis

/** The fixed window's operations. */
export const fixedWindow: Algorithm<FixedWindowConfig, FixedWindowState> = {
  make: fixedWindowMake,
  check: fixedWindowCheck,
  consume: fixedWindowConsume,
  refund: fixedWindowRefund,
  penalize: fixedWindowPenalize,
  isIdle: fixedWindowIsIdle,
  ttlMillis: fixedWindowTtlMillis
}

// ---------------------------------------------------------------------------
// 2. sliding window log
// ---------------------------------------------------------------------------

/**
 * Sliding window log: exactly `limit` cost in any interval of `windowMillis`.
 * An entry admitted at `t` counts until `t + windowMillis` (excluded).
 */
export interface SlidingLogConfig {
  readonly limit: number
  readonly windowMillis: number
}

/**
 * Entries oldest first, as parallel arrays: `times` is non-decreasing, each
 * `costs[i] > 0`, and `total` is the sum of `costs`. With costs >= 1 there are
 * never more than `limit` entries: requests at the same millisecond share one,
 * and a penalty joins the newest entry once the log is full.
 */
export interface SlidingLogState {
  times: Array<number>
  costs: Array<number>
  total: number
}

/** A fresh, empty log. */
export const slidingLogMake = (_config: SlidingLogConfig, _now: number): SlidingLogState => ({
  times: [],
  costs: [],
  total: 0
})

/** The index of the first entry still in the window at `now`. */
const slidingLogFirstLive = (s: SlidingLogState, now: number, config: SlidingLogConfig): number => {
  let i = 0
  while (i < s.times.length && (s.times[i] ?? 0) + config.windowMillis <= now) i++
  return i
}

/** Drops the entries that left the window at `now`. */
const slidingLogPrune = (s: SlidingLogState, now: number, config: SlidingLogConfig): void => {
  const first = slidingLogFirstLive(s, now, config)
  if (first === 0) return
  for (let i = 0; i < first; i++) s.total -= s.costs[i] ?? 0
  s.times.copyWithin(0, first)
  s.costs.copyWithin(0, first)
  s.times.length -= first
  s.costs.length -= first
  if (s.times.length === 0) s.total = 0
}

/**
 * Decides without mutating: allowed when the live cost plus `cost` is at most
 * `limit`. A refused request may retry when enough of the oldest entries have
 * left the window; `resetMillis` is when the newest one leaves.
 */
export const slidingLogCheck = (
  s: SlidingLogState,
  now: number,
  cost: number,
  config: SlidingLogConfig,
  out: Decision
): Decision => {
  const n = s.times.length
  const first = slidingLogFirstLive(s, now, config)
  let live = s.total
  for (let i = 0; i < first; i++) live -= s.costs[i] ?? 0
  const allowed = live + cost <= config.limit
  const after = allowed ? live + cost : live
  // consume appends at max(newest, now)
  let newest = n > first ? (s.times[n - 1] ?? now) : now
  if (allowed && cost > 0 && now > newest) newest = now
  let retryAfterMillis = 0
  if (!allowed) {
    if (cost > config.limit) {
      retryAfterMillis = Infinity
    } else {
      // wait until the oldest entries holding the excess have left
      const excess = live + cost - config.limit
      let freed = 0
      let i = first
      while (i < n - 1) {
        freed += s.costs[i] ?? 0
        if (freed >= excess) break
        i++
      }
      retryAfterMillis = untilMillis((s.times[i] ?? now) + config.windowMillis, now)
    }
  }
  return decide(
    out,
    allowed,
    config.limit,
    config.limit - after,
    after > 0 ? untilMillis(newest + config.windowMillis, now) : 0,
    retryAfterMillis,
    0
  )
}

/** Decides as `slidingLogCheck` and, if allowed, logs the cost. */
export const slidingLogConsume = (
  s: SlidingLogState,
  now: number,
  cost: number,
  config: SlidingLogConfig,
  out: Decision
): Decision => {
  slidingLogCheck(s, now, cost, config, out)
  if (out.allowed) slidingLogPenalize(s, now, cost, config)
  return out
}

/** Unlogs up to `cost`, newest entries first (as if the latest requests had not happened). */
export const slidingLogRefund = (s: SlidingLogState, now: number, cost: number, config: SlidingLogConfig): void => {
  slidingLogPrune(s, now, config)
  let left = cost
  while (left > 0 && s.costs.length > 0) {
    const last = s.costs.length - 1
    const c = s.costs[last] ?? 0
    if (c <= left) {
      s.times.pop()
      s.costs.pop()
      s.total -= c
      left -= c
    } else {
      s.costs[last] = c - left
      s.total -= left
      left = 0
    }
  }
  if (s.costs.length === 0) s.total = 0
}

/**
 * Logs `cost` at `now`, past the limit if need be: the debt leaves with the
 * window. Joins the newest entry (moved to `now`, which only lengthens its
 * stay) when it is at `now` or the log already holds `limit` entries.
 */
export const slidingLogPenalize = (s: SlidingLogState, now: number, cost: number, config: SlidingLogConfig): void => {
  slidingLogPrune(s, now, config)
  if (cost <= 0) return
  const n = s.times.length
  const newest = s.times[n - 1] ?? now
  if (n > 0 && (newest >= now || n >= config.limit)) {
    s.costs[n - 1] = (s.costs[n - 1] ?? 0) + cost
    if (newest < now) s.times[n - 1] = now
  } else {
    s.times.push(now)
    s.costs.push(cost)
  }
  s.total += cost
}

/** Idle when every entry has left the window. */
export const slidingLogIsIdle = (s: SlidingLogState, now: number, config: SlidingLogConfig): boolean => {
  const n = s.times.length
  return n === 0 || (s.times[n - 1] ?? 0) + config.windowMillis <= now
}

/** An entry never outlives its window. */
export const slidingLogTtlMillis = (config: SlidingLogConfig): number => config.windowMillis

/** The sliding window log's operations. */
export const slidingLog: Algorithm<SlidingLogConfig, SlidingLogState> = {
  make: slidingLogMake,
  check: slidingLogCheck,
  consume: slidingLogConsume,
  refund: slidingLogRefund,
  penalize: slidingLogPenalize,
  isIdle: slidingLogIsIdle,
  ttlMillis: slidingLogTtlMillis
}

// ---------------------------------------------------------------------------
// 3. sliding window counter
// ---------------------------------------------------------------------------

/**
 * Sliding window counter (Cloudflare's): two aligned windows and the estimate
 * `previous * (1 - elapsed / windowMillis) + current`, allowed when the
 * estimate plus `cost` is at most `limit`.
 *
 * **Error.** The estimate assumes the previous window's requests were spread
 * evenly. In any interval `[a, a + windowMillis)` starting `e` milliseconds
 * into an aligned window, it admits at most `limit + limit * e / windowMillis`,
 * so always less than `2 * limit` (all of a window's requests at its very end,
 * then the weight of the previous window falling as the next one fills). Proof:
 * the cost admitted from `a` to its window's end is at most that window's
 * count `c`; the last request admitted in the next window before `a +
 * windowMillis` saw `c * (1 - e' / windowMillis) + its count <= limit` with
 * `e' < e`, so the next window admitted at most `limit - c * (1 - e /
 * windowMillis)` by then, and `c <= limit`. With evenly spaced requests it
 * admits within 4% (plus one request per window) of the exact log: the same
 * below the limit, one request per window fewer just above it, and up to ~3%
 * more under heavy overload (property-tested). On random traces, replayed
 * through both, its over-admission in any such interval (beyond the `limit`
 * the log never exceeds) is at most `limit * e / windowMillis`; with unit
 * costs that holds against what the log actually admitted at most in one
 * window, and over a whole trace it admits at most twice what the log does
 * (property-tested).
 *
 * Decisions are evaluated multiplied by `windowMillis`, in integers:
 * `previous * (windowMillis - elapsed) + (current + cost) * windowMillis <= limit * windowMillis`.
 */
export interface SlidingCounterConfig {
  readonly limit: number
  readonly windowMillis: number
}

/** The current window's index and count, and the previous window's count. */
export interface SlidingCounterState {
  window: number
  previous: number
  current: number
}

/** A fresh counter: both windows empty. */
export const slidingCounterMake = (config: SlidingCounterConfig, now: number): SlidingCounterState => ({
  window: Math.floor(now / config.windowMillis),
  previous: 0,
  current: 0
})

/** The window index at `now`, never before the state's own. */
const slidingCounterIndex = (s: SlidingCounterState, now: number, config: SlidingCounterConfig): number => {
  const w = Math.floor(now / config.windowMillis)
  return Math.max(w, s.window)
}

/** The estimate at `now`, multiplied by `windowMillis`. */
const slidingCounterWeighted = (s: SlidingCounterState, now: number, config: SlidingCounterConfig): number => {
  const W = config.windowMillis
  const w = slidingCounterIndex(s, now, config)
  let elapsed = now - w * W
  if (elapsed < 0) elapsed = 0
  if (w === s.window) return s.previous * (W - elapsed) + s.current * W
  if (w === s.window + 1) return s.current * (W - elapsed)
  return 0
}

/** Moves the state to the window of `now`. */
const slidingCounterRoll = (s: SlidingCounterState, now: number, config: SlidingCounterConfig): void => {
  const w = slidingCounterIndex(s, now, config)
  if (w === s.window) return
  s.previous = w === s.window + 1 ? s.current : 0
  s.current = 0
  s.window = w
}

/**
 * Decides without mutating. A refused request may retry when the previous
 * window's weight has fallen enough, possibly in the next window; `resetMillis`
 * is when both windows are empty.
 */
export const slidingCounterCheck = (
  s: SlidingCounterState,
  now: number,
  cost: number,
  config: SlidingCounterConfig,
  out: Decision
): Decision => {
  const W = config.windowMillis
  const w = slidingCounterIndex(s, now, config)
  const previous = w === s.window ? s.previous : w === s.window + 1 ? s.current : 0
  const current = w === s.window ? s.current : 0
  const weighted = slidingCounterWeighted(s, now, config)
  const allowed = weighted + cost * W <= config.limit * W
  const after = allowed ? weighted + cost * W : weighted
  const currentAfter = allowed ? current + cost : current
  const resetMillis =
    currentAfter > 0 ? untilMillis((w + 2) * W, now) : previous > 0 ? untilMillis((w + 1) * W, now) : 0
  let retryAfterMillis = 0
  if (!allowed) {
    if (cost > config.limit) {
      retryAfterMillis = Infinity
    } else {
      const room = (config.limit - current - cost) * W
      const at =
        room >= 0 && previous > 0
          ? // in this window, once previous * ((w + 1) * W - t) <= room
            (w + 1) * W - room / previous
          : // in the next one, once current * (W - elapsed) + cost * W <= limit * W
            (w + 1) * W + (current > 0 ? Math.max(0, W - ((config.limit - cost) * W) / current) : 0)
      let d = Math.ceil(at - now)
      if (d < 1) d = 1
      if (slidingCounterWeighted(s, now + d, config) + cost * W > config.limit * W) d++
      else if (d > 1 && slidingCounterWeighted(s, now + d - 1, config) + cost * W <= config.limit * W) d--
      retryAfterMillis = d
    }
  }
  return decide(out, allowed, config.limit, (config.limit * W - after) / W, resetMillis, retryAfterMillis, 0)
}

/** Decides as `slidingCounterCheck` and, if allowed, counts the cost in the current window. */
export const slidingCounterConsume = (
  s: SlidingCounterState,
  now: number,
  cost: number,
  config: SlidingCounterConfig,
  out: Decision
): Decision => {
  slidingCounterCheck(s, now, cost, config, out)
  if (out.allowed) slidingCounterPenalize(s, now, cost, config)
  return out
}

/** Uncounts up to `cost`, from the current window first, then the previous one. */
export const slidingCounterRefund = (
  s: SlidingCounterState,
  now: number,
  cost: number,
  config: SlidingCounterConfig
): void => {
  slidingCounterRoll(s, now, config)
  const fromCurrent = Math.min(s.current, cost)
  s.current -= fromCurrent
  const rest = cost - fromCurrent
  s.previous = s.previous > rest ? s.previous - rest : 0
}

/** Counts `cost` in the current window, past the limit if need be: the debt is gone two windows later. */
export const slidingCounterPenalize = (
  s: SlidingCounterState,
  now: number,
  cost: number,
  config: SlidingCounterConfig
): void => {
  slidingCounterRoll(s, now, config)
  s.current += cost
}

/** Idle when both the current and the previous window are empty. */
export const slidingCounterIsIdle = (s: SlidingCounterState, now: number, config: SlidingCounterConfig): boolean => {
  const w = slidingCounterIndex(s, now, config)
  if (w === s.window) return s.previous <= 0 && s.current <= 0
  return w > s.window + 1 || s.current <= 0
}

/** A count stops mattering once it is two windows old. */
export const slidingCounterTtlMillis = (config: SlidingCounterConfig): number => 2 * config.windowMillis

/** The sliding window counter's operations. */
export const slidingCounter: Algorithm<SlidingCounterConfig, SlidingCounterState> = {
  make: slidingCounterMake,
  check: slidingCounterCheck,
  consume: slidingCounterConsume,
  refund: slidingCounterRefund,
  penalize: slidingCounterPenalize,
  isIdle: slidingCounterIsIdle,
  ttlMillis: slidingCounterTtlMillis
}

// ---------------------------------------------------------------------------
// 4. token bucket
// ---------------------------------------------------------------------------

/** Token bucket: holds up to `capacity` tokens (the burst), refilled at `refillPerSecond`. */
export interface TokenBucketConfig {
  readonly capacity: number
  readonly refillPerSecond: number
}

/**
 * The tokens held at `lastRefill`, in thousandths (so an integer
 * `refillPerSecond` refills a whole number of them per millisecond, exactly);
 * refilled lazily. Negative after penalties, down to `-capacity` tokens.
 */
export interface TokenBucketState {
  milliTokens: number
  lastRefill: number
}

/** A fresh, full bucket. */
export const tokenBucketMake = (config: TokenBucketConfig, now: number): TokenBucketState => ({
  milliTokens: config.capacity * 1000,
  lastRefill: now
})

/** The thousandths of tokens at `now` of a bucket holding `milliTokens` at `lastRefill`. */
const tokenBucketMilliTokens = (
  milliTokens: number,
  lastRefill: number,
  now: number,
  config: TokenBucketConfig
): number => {
  const full = config.capacity * 1000
  const m = now > lastRefill ? milliTokens + gridAmount((now - lastRefill) * config.refillPerSecond) : milliTokens
  return Math.min(m, full)
}

/** The least whole number of milliseconds after which the bucket holds `target` (<= capacity * 1000) thousandths. */
const tokenBucketWait = (
  milliTokens: number,
  lastRefill: number,
  now: number,
  target: number,
  config: TokenBucketConfig
): number => {
  if (tokenBucketMilliTokens(milliTokens, lastRefill, now, config) >= target) return 0
  let d = Math.ceil(lastRefill + (target - milliTokens) / config.refillPerSecond - now)
  if (d < 1) d = 1
  if (tokenBucketMilliTokens(milliTokens, lastRefill, now + d, config) < target) d++
  else if (d > 1 && tokenBucketMilliTokens(milliTokens, lastRefill, now + d - 1, config) >= target) d--
  return d
}

/**
 * Decides without mutating: allowed when the bucket holds at least `cost`
 * tokens. A refused request may retry once it has refilled to `cost`;
 * `resetMillis` is when it is full.
 */
export const tokenBucketCheck = (
  s: TokenBucketState,
  now: number,
  cost: number,
  config: TokenBucketConfig,
  out: Decision
): Decision =>
  tokenBucketDecide(s, tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config), now, cost, config, out)

/** The decision for a bucket holding `m` thousandths at `now`. */
const tokenBucketDecide = (
  s: TokenBucketState,
  m: number,
  now: number,
  cost: number,
  config: TokenBucketConfig,
  out: Decision
): Decision => {
  const full = config.capacity * 1000
  const need = cost * 1000
  if (m >= need) {
    // the bucket the decision leaves behind holds m - need from max(now, lastRefill) on
    const kept = m - need
    return decide(
      out,
      true,
      config.capacity,
      kept / 1000,
      kept >= full ? 0 : tokenBucketWait(kept, Math.max(now, s.lastRefill), now, full, config),
      0,
      0
    )
  }
  return decide(
    out,
    false,
    config.capacity,
    m / 1000,
    tokenBucketWait(s.milliTokens, s.lastRefill, now, full, config),
    cost > config.capacity ? Infinity : tokenBucketWait(s.milliTokens, s.lastRefill, now, need, config),
    0
  )
}

/** Decides as `tokenBucketCheck` and, if allowed, takes the tokens. */
export const tokenBucketConsume = (
  s: TokenBucketState,
  now: number,
  cost: number,
  config: TokenBucketConfig,
  out: Decision
): Decision => {
  const m = tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config)
  tokenBucketDecide(s, m, now, cost, config, out)
  if (out.allowed) {
    s.milliTokens = m - cost * 1000
    if (now > s.lastRefill) s.lastRefill = now
  }
  return out
}

/** Puts back up to `cost` tokens, never above capacity. */
export const tokenBucketRefund = (s: TokenBucketState, now: number, cost: number, config: TokenBucketConfig): void => {
  const m = tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config) + cost * 1000
  s.milliTokens = Math.min(m, config.capacity * 1000)
  if (now > s.lastRefill) s.lastRefill = now
}

/** Takes `cost` tokens, into debt down to `-capacity`, so later requests wait for the refill. */
export const tokenBucketPenalize = (
  s: TokenBucketState,
  now: number,
  cost: number,
  config: TokenBucketConfig
): void => {
  const m = tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config) - cost * 1000
  s.milliTokens = Math.max(m, -config.capacity * 1000)
  if (now > s.lastRefill) s.lastRefill = now
}

/** Idle when the bucket is full. */
export const tokenBucketIsIdle = (s: TokenBucketState, now: number, config: TokenBucketConfig): boolean =>
  tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config) >= config.capacity * 1000

/** The time to refill from the deepest debt (`-capacity`) to full. */
export const tokenBucketTtlMillis = (config: TokenBucketConfig): number =>
  Math.ceil((2 * config.capacity * 1000) / config.refillPerSecond)

/** The token bucket's operations. */
export const tokenBucket: Algorithm<TokenBucketConfig, TokenBucketState> = {
  make: tokenBucketMake,
  check: tokenBucketCheck,
  consume: tokenBucketConsume,
  refund: tokenBucketRefund,
  penalize: tokenBucketPenalize,
  isIdle: tokenBucketIsIdle,
  ttlMillis: tokenBucketTtlMillis
}

// ---------------------------------------------------------------------------
// 5. leaky bucket as a meter
// ---------------------------------------------------------------------------

/** Leaky bucket as a meter: a level that drains at `leakPerSecond`; a request fits when `level + cost <= capacity`. */
export interface LeakyMeterConfig {
  readonly capacity: number
  readonly leakPerSecond: number
}

/**
 * The level at `lastLeak`, in thousandths (as the token bucket's tokens);
 * drained lazily. Up to `2 * capacity` after penalties.
 */
export interface LeakyMeterState {
  milliLevel: number
  lastLeak: number
}

/** A fresh, empty meter. */
export const leakyMeterMake = (_config: LeakyMeterConfig, now: number): LeakyMeterState => ({
  milliLevel: 0,
  lastLeak: now
})

/** The level (thousandths) at `now` of a meter at `milliLevel` at `lastLeak`. */
const leakyMeterMilliLevel = (milliLevel: number, lastLeak: number, now: number, config: LeakyMeterConfig): number => {
  if (now <= lastLeak) return milliLevel
  const l = milliLevel - gridAmount((now - lastLeak) * config.leakPerSecond)
  return Math.max(l, 0)
}

/** The least whole number of milliseconds after which `level + add <= bound`, all in thousandths (`add <= bound`). */
const leakyMeterWait = (
  milliLevel: number,
  lastLeak: number,
  now: number,
  add: number,
  bound: number,
  config: LeakyMeterConfig
): number => {
  if (leakyMeterMilliLevel(milliLevel, lastLeak, now, config) + add <= bound) return 0
  let d = Math.ceil(lastLeak + (milliLevel + add - bound) / config.leakPerSecond - now)
  if (d < 1) d = 1
  if (leakyMeterMilliLevel(milliLevel, lastLeak, now + d, config) + add > bound) d++
  else if (d > 1 && leakyMeterMilliLevel(milliLevel, lastLeak, now + d - 1, config) + add <= bound) d--
  return d
}

/**
 * Decides without mutating: allowed when `level + cost <= capacity`. A
 * refused request may retry once enough has drained; `resetMillis` is when
 * the meter is empty.
 */
export const leakyMeterCheck = (
  s: LeakyMeterState,
  now: number,
  cost: number,
  config: LeakyMeterConfig,
  out: Decision
): Decision => {
  const full = config.capacity * 1000
  const level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config)
  const allowed = level + cost * 1000 <= full
  const keptLevel = allowed ? level + cost * 1000 : s.milliLevel
  const keptAt = allowed ? Math.max(now, s.lastLeak) : s.lastLeak
  return decide(
    out,
    allowed,
    config.capacity,
    (full - (allowed ? level + cost * 1000 : level)) / 1000,
    leakyMeterWait(keptLevel, keptAt, now, 0, 0, config),
    allowed
      ? 0
      : cost > config.capacity
        ? Infinity
        : leakyMeterWait(s.milliLevel, s.lastLeak, now, cost * 1000, full, config),
    0
  )
}

/** Decides as `leakyMeterCheck` and, if allowed, adds the cost to the level. */
export const leakyMeterConsume = (
  s: LeakyMeterState,
  now: number,
  cost: number,
  config: LeakyMeterConfig,
  out: Decision
): Decision => {
  const level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config)
  leakyMeterCheck(s, now, cost, config, out)
  if (out.allowed) {
    s.milliLevel = level + cost * 1000
    if (now > s.lastLeak) s.lastLeak = now
  }
  return out
}

/** Drains up to `cost` at once, never below empty. */
export const leakyMeterRefund = (s: LeakyMeterState, now: number, cost: number, config: LeakyMeterConfig): void => {
  const level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config) - cost * 1000
  s.milliLevel = Math.max(level, 0)
  if (now > s.lastLeak) s.lastLeak = now
}

/** Adds `cost` to the level, past capacity up to `2 * capacity`, so later requests wait for the drain. */
export const leakyMeterPenalize = (s: LeakyMeterState, now: number, cost: number, config: LeakyMeterConfig): void => {
  const level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config) + cost * 1000
  s.milliLevel = Math.min(level, 2 * config.capacity * 1000)
  if (now > s.lastLeak) s.lastLeak = now
}

/** Idle when the meter is empty. */
export const leakyMeterIsIdle = (s: LeakyMeterState, now: number, config: LeakyMeterConfig): boolean =>
  leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config) <= 0

/** The time to drain from the highest level (`2 * capacity`) to empty. */
export const leakyMeterTtlMillis = (config: LeakyMeterConfig): number =>
  Math.ceil((2 * config.capacity * 1000) / config.leakPerSecond)

/** The leaky meter's operations. */
export const leakyMeter: Algorithm<LeakyMeterConfig, LeakyMeterState> = {
  make: leakyMeterMake,
  check: leakyMeterCheck,
  consume: leakyMeterConsume,
  refund: leakyMeterRefund,
  penalize: leakyMeterPenalize,
  isIdle: leakyMeterIsIdle,
  ttlMillis: leakyMeterTtlMillis
}

// ---------------------------------------------------------------------------
// 6. leaky bucket as a shaping queue
// ---------------------------------------------------------------------------

/**
 * Leaky bucket as a shaping queue: requests leave at `leakPerSecond` cost
 * units per second. Instead of refusing, the queue delays a request
 * (`delayMillis`) until the cost queued ahead of it has left; it refuses only
 * when the queued cost, this request's included, would exceed `capacity`.
 */
export interface LeakyQueueConfig {
  readonly capacity: number
  readonly leakPerSecond: number
}

/**
 * Virtual scheduling: the queue is busy until `nextFreeAt`, when the next
 * request may start. The queued cost is `(nextFreeAt - now) / interval`, up to
 * `2 * capacity` after penalties.
 */
export interface LeakyQueueState {
  nextFreeAt: number
}

/** A fresh, empty queue. */
export const leakyQueueMake = (_config: LeakyQueueConfig, now: number): LeakyQueueState => ({ nextFreeAt: now })

/** Milliseconds per cost unit (`1000 / leakPerSecond`, rounded up to 1/1024 ms). */
export const leakyQueueInterval = (config: LeakyQueueConfig): number => gridInterval(1000 / config.leakPerSecond)

/**
 * Decides without mutating: allowed when `backlog + cost * interval <=
 * capacity * interval`. An allowed request waits `delayMillis` (the backlog
 * ahead of it); a refused one may retry once enough has left; `resetMillis`
 * is when the queue is empty.
 */
export const leakyQueueCheck = (
  s: LeakyQueueState,
  now: number,
  cost: number,
  config: LeakyQueueConfig,
  out: Decision
): Decision => {
  const interval = leakyQueueInterval(config)
  const bound = config.capacity * interval
  const add = cost * interval
  const allowed = backlog(s.nextFreeAt, now) + add <= bound
  const start = Math.max(s.nextFreeAt, now)
  const next = allowed ? start + add : s.nextFreeAt
  return decide(
    out,
    allowed,
    config.capacity,
    (bound - backlog(next, now)) / interval,
    untilMillis(next, now),
    allowed ? 0 : cost > config.capacity ? Infinity : scheduleWait(s.nextFreeAt, now, add, bound),
    allowed ? untilMillis(start, now) : 0
  )
}

/** Decides as `leakyQueueCheck` and, if allowed, schedules the request after the backlog. */
export const leakyQueueConsume = (
  s: LeakyQueueState,
  now: number,
  cost: number,
  config: LeakyQueueConfig,
  out: Decision
): Decision => {
  leakyQueueCheck(s, now, cost, config, out)
  if (out.allowed) s.nextFreeAt = scheduleAfter(s.nextFreeAt, now, cost * leakyQueueInterval(config))
  return out
}

/** Unschedules up to `cost` (a queued request that gave up), never below an empty queue. */
export const leakyQueueRefund = (s: LeakyQueueState, now: number, cost: number, config: LeakyQueueConfig): void => {
  s.nextFreeAt = scheduleBack(s.nextFreeAt, now, cost * leakyQueueInterval(config))
}

/** Schedules `cost` extra, up to twice the capacity queued, so later requests wait or are refused. */
export const leakyQueuePenalize = (s: LeakyQueueState, now: number, cost: number, config: LeakyQueueConfig): void => {
  const interval = leakyQueueInterval(config)
  s.nextFreeAt = schedulePenalty(s.nextFreeAt, now, cost * interval, 2 * config.capacity * interval)
}

/** Idle when the queue is empty. */
export const leakyQueueIsIdle = (s: LeakyQueueState, now: number, _config: LeakyQueueConfig): boolean =>
  s.nextFreeAt <= now

/** The time to empty the fullest queue (`2 * capacity`). */
export const leakyQueueTtlMillis = (config: LeakyQueueConfig): number =>
  Math.ceil(2 * config.capacity * leakyQueueInterval(config))

/** The shaping queue's operations. */
export const leakyQueue: Algorithm<LeakyQueueConfig, LeakyQueueState> = {
  make: leakyQueueMake,
  check: leakyQueueCheck,
  consume: leakyQueueConsume,
  refund: leakyQueueRefund,
  penalize: leakyQueuePenalize,
  isIdle: leakyQueueIsIdle,
  ttlMillis: leakyQueueTtlMillis
}

// ---------------------------------------------------------------------------
// 7. GCRA
// ---------------------------------------------------------------------------

/**
 * GCRA with redis-cell's semantics: `CL.THROTTLE key burst ratePerPeriod
 * period cost`. Emission interval `T = periodMillis / ratePerPeriod`, limit
 * `burst + 1`, delay variation tolerance `dvt = T * limit`.
 */
export interface GcraConfig {
  /** redis-cell's `max_burst`. */
  readonly burst: number
  /** redis-cell's `count per period`. */
  readonly ratePerPeriod: number
  readonly periodMillis: number
}

/** The theoretical arrival time; at or before `now` means idle. */
export interface GcraState {
  tat: number
}

/** A fresh state (redis-cell's missing key: `tat = now`). */
export const gcraMake = (_config: GcraConfig, now: number): GcraState => ({ tat: now })

/**
 * The emission interval `T = periodMillis / ratePerPeriod`, rounded up to
 * 1/1024 ms (redis-cell truncates it to whole nanoseconds).
 */
export const gcraInterval = (config: GcraConfig): number => gridInterval(config.periodMillis / config.ratePerPeriod)

/**
 * Decides without mutating, as redis-cell does:
 *
 * ```
 * increment = T * cost
 * new_tat   = max(tat, now) + increment
 * allowed   = now >= new_tat - dvt        (here: backlog + increment <= dvt)
 * ttl       = (allowed ? new_tat : tat) - now
 * remaining = floor((dvt - ttl) / T), 0 when negative
 * reset     = ttl
 * retry     = new_tat - dvt - now
 * ```
 *
 * redis-cell rounds `reset` and `retry` up to whole seconds; here they are
 * rounded up to whole milliseconds. Its `retry = -1` when allowed is 0 here,
 * and when `increment > dvt` (a cost that can never pass) `Infinity`. The
 * comparison is made on the backlog (`max(tat, now) - now`) rather than on
 * absolute times, which is the same test and keeps a fresh key exact.
 */
export const gcraCheck = (s: GcraState, now: number, cost: number, config: GcraConfig, out: Decision): Decision => {
  const T = gcraInterval(config)
  const dvt = T * (config.burst + 1)
  const increment = cost * T
  const allowed = backlog(s.tat, now) + increment <= dvt
  const tat = allowed ? Math.max(s.tat, now) + increment : s.tat
  return decide(
    out,
    allowed,
    config.burst + 1,
    (dvt - backlog(tat, now)) / T,
    untilMillis(tat, now),
    allowed ? 0 : increment > dvt ? Infinity : scheduleWait(s.tat, now, increment, dvt),
    0
  )
}

/** Decides as `gcraCheck` and, if allowed, stores the new TAT. */
export const gcraConsume = (s: GcraState, now: number, cost: number, config: GcraConfig, out: Decision): Decision => {
  gcraCheck(s, now, cost, config, out)
  if (out.allowed) s.tat = scheduleAfter(s.tat, now, cost * gcraInterval(config))
  return out
}

/** Moves the TAT back by up to `cost` emission intervals, never before `now`. */
export const gcraRefund = (s: GcraState, now: number, cost: number, config: GcraConfig): void => {
  s.tat = scheduleBack(s.tat, now, cost * gcraInterval(config))
}

/** Moves the TAT forward by `cost` emission intervals, up to `now + 2 * dvt`. */
export const gcraPenalize = (s: GcraState, now: number, cost: number, config: GcraConfig): void => {
  const T = gcraInterval(config)
  s.tat = schedulePenalty(s.tat, now, cost * T, 2 * T * (config.burst + 1))
}

/** Idle when the TAT is not in the future. */
export const gcraIsIdle = (s: GcraState, now: number, _config: GcraConfig): boolean => s.tat <= now

/** The furthest the TAT can be ahead of the last call: `2 * dvt` (after penalties). */
export const gcraTtlMillis = (config: GcraConfig): number => Math.ceil(2 * gcraInterval(config) * (config.burst + 1))

/** GCRA's operations. */
export const gcra: Algorithm<GcraConfig, GcraState> = {
  make: gcraMake,
  check: gcraCheck,
  consume: gcraConsume,
  refund: gcraRefund,
  penalize: gcraPenalize,
  isIdle: gcraIsIdle,
  ttlMillis: gcraTtlMillis
}

// ---------------------------------------------------------------------------
// 8. concurrency limit
// ---------------------------------------------------------------------------

/** Concurrency limit: at most `limit` permits held at once. Time plays no part. */
export interface ConcurrencyConfig {
  readonly limit: number
}

/** The permits held; above `limit` only after penalties. */
export interface ConcurrencyState {
  inFlight: number
}

/** A fresh state: no permits held. */
export const concurrencyMake = (_config: ConcurrencyConfig, _now: number): ConcurrencyState => ({ inFlight: 0 })

/**
 * Decides without mutating: allowed when `inFlight + cost <= limit`. When
 * permits come back is unknown, so `resetMillis` is 0 and so is
 * `retryAfterMillis` (`Infinity` for a cost above the limit).
 */
export const concurrencyCheck = (
  s: ConcurrencyState,
  _now: number,
  cost: number,
  config: ConcurrencyConfig,
  out: Decision
): Decision => {
  const allowed = s.inFlight + cost <= config.limit
  return decide(
    out,
    allowed,
    config.limit,
    config.limit - (allowed ? s.inFlight + cost : s.inFlight),
    0,
    allowed || cost <= config.limit ? 0 : Infinity,
    0
  )
}

/** Decides as `concurrencyCheck` and, if allowed, acquires `cost` permits (give them back with `concurrencyRelease`). */
export const concurrencyConsume = (
  s: ConcurrencyState,
  now: number,
  cost: number,
  config: ConcurrencyConfig,
  out: Decision
): Decision => {
  concurrencyCheck(s, now, cost, config, out)
  if (out.allowed) s.inFlight += cost
  return out
}

/** Releases `cost` permits, never below 0. */
export const concurrencyRelease = (s: ConcurrencyState, cost: number): void => {
  s.inFlight = s.inFlight > cost ? s.inFlight - cost : 0
}

/** Releases `cost` permits, as `concurrencyRelease`. */
export const concurrencyRefund = (s: ConcurrencyState, _now: number, cost: number, _config: ConcurrencyConfig): void =>
  concurrencyRelease(s, cost)

/** Holds `cost` extra permits, past the limit if need be, until they are released. */
export const concurrencyPenalize = (
  s: ConcurrencyState,
  _now: number,
  cost: number,
  _config: ConcurrencyConfig
): void => {
  s.inFlight += cost
}

/** Idle when no permit is held. */
export const concurrencyIsIdle = (s: ConcurrencyState, _now: number, _config: ConcurrencyConfig): boolean =>
  s.inFlight <= 0

/**
 * Held permits never expire by themselves: a store must keep a key while
 * `concurrencyIsIdle` is false (a Redis port needs per-permit leases).
 */
export const concurrencyTtlMillis = (_config: ConcurrencyConfig): number => Infinity

/** The concurrency limit's operations, plus `release`. */
export const concurrency: Algorithm<ConcurrencyConfig, ConcurrencyState> & {
  readonly release: (state: ConcurrencyState, cost: number) => void
} = {
  make: concurrencyMake,
  check: concurrencyCheck,
  consume: concurrencyConsume,
  refund: concurrencyRefund,
  penalize: concurrencyPenalize,
  isIdle: concurrencyIsIdle,
  ttlMillis: concurrencyTtlMillis,
  release: concurrencyRelease
}
