/**
 * The rate limiters' decision logic in Lua: a port of
 * `@effect-resilience/core`'s `internal/rateLimiter.ts`, keeping its
 * functions' names, order and comments, run atomically inside Redis.
 *
 * **Exactness.** The TypeScript functions do float64 arithmetic designed so
 * that a port doing the same operations in the same order reproduces each
 * decision bit for bit; Redis's Lua numbers are float64 too, so every
 * expression here is the TypeScript one, operand for operand, with the same
 * grouping. `Math.max`/`Math.min` are `max`/`min` below, which order `-0`
 * below `+0` as JavaScript does (Lua's `math.max` keeps its first argument).
 * Numbers leave a script exact: as integer replies when whole, below 2^52 in
 * magnitude and not -0 (`exact`), else as strings (`num`).
 *
 * **Layout.** `algorithms` is a chunk to concatenate after `prelude` (it uses
 * only Lua 5.1, `struct` and the prelude's `num`). It defines `ALGORITHMS`,
 * keyed by algorithm name, each a table of:
 *
 * - `make(config, now)`, `check(state, now, cost, config, out)`,
 *   `consume(state, now, cost, config, out)`, `refund(state, now, cost, config)`,
 *   `penalize(state, now, cost, config)`, `isIdle(state, now, config)`,
 *   `ttlMillis(config)` (`math.huge` for the concurrency limit), and for the
 *   concurrency limit `release(state, cost, config)`;
 * - `encode(state)` / `decode(bytes)`: the state as little-endian float64s
 *   (`struct`), exact, for one hash field per limit;
 * - `configOf(values, i)`: the config read from `values[i..]` in the order
 *   `configArgs` writes it, and the index after it; a missing or out-of-range
 *   value is an error reply naming it.
 *
 * `out` is a table `{ allowed, limit, remaining, resetMillis,
 * retryAfterMillis, delayMillis }` (see `newDecision`), and
 * `decisionReply(out)` (or `appendDecision`) turns one into the values
 * `decodeDecision` reads.
 *
 * @internal
 */
import { numberArg, numberReply } from "./lua.ts"

// ---------------------------------------------------------------------------
// TypeScript side: configs as arguments, decisions from replies
// ---------------------------------------------------------------------------

/** Fixed window: `limit` cost per window aligned to `floor(now / windowMillis)`. */
export interface FixedWindowConfig {
  readonly limit: number
  readonly windowMillis: number
}

/** Sliding window log: exactly `limit` cost in any interval of `windowMillis`. */
export interface SlidingLogConfig {
  readonly limit: number
  readonly windowMillis: number
}

/** Sliding window counter: two aligned windows, the previous one weighted. */
export interface SlidingCounterConfig {
  readonly limit: number
  readonly windowMillis: number
}

/** Token bucket: holds up to `capacity` tokens, refilled at `refillPerSecond`. */
export interface TokenBucketConfig {
  readonly capacity: number
  readonly refillPerSecond: number
}

/** Leaky bucket as a meter: a level draining at `leakPerSecond`, up to `capacity`. */
export interface LeakyMeterConfig {
  readonly capacity: number
  readonly leakPerSecond: number
}

/** Leaky bucket as a shaping queue: delays requests, refuses past `capacity` queued. */
export interface LeakyQueueConfig {
  readonly capacity: number
  readonly leakPerSecond: number
}

/** GCRA with redis-cell's semantics. */
export interface GcraConfig {
  /** redis-cell's `max_burst`. */
  readonly burst: number
  /** redis-cell's `count per period`. */
  readonly ratePerPeriod: number
  readonly periodMillis: number
}

/** Concurrency limit: at most `limit` permits held at once. */
export interface ConcurrencyConfig {
  readonly limit: number
}

/** Each algorithm's config, by the name the Lua `ALGORITHMS` table uses. */
export interface AlgorithmConfigs {
  readonly fixedWindow: FixedWindowConfig
  readonly slidingLog: SlidingLogConfig
  readonly slidingCounter: SlidingCounterConfig
  readonly tokenBucket: TokenBucketConfig
  readonly leakyMeter: LeakyMeterConfig
  readonly leakyQueue: LeakyQueueConfig
  readonly gcra: GcraConfig
  readonly concurrency: ConcurrencyConfig
}

/** An algorithm's name: a key of the Lua `ALGORITHMS` table. */
export type AlgorithmName = keyof AlgorithmConfigs

/** Every algorithm name, in a fixed order. */
export const algorithmNames: ReadonlyArray<AlgorithmName> = [
  "fixedWindow",
  "slidingLog",
  "slidingCounter",
  "tokenBucket",
  "leakyMeter",
  "leakyQueue",
  "gcra",
  "concurrency"
]

/**
 * An algorithm with its config, discriminated by `algorithm` (core's
 * `RateLimiter.LimitSpec` is one).
 */
export type AlgorithmInput<A extends AlgorithmName = AlgorithmName> = {
  readonly [K in A]: { readonly algorithm: K; readonly config: AlgorithmConfigs[K] }
}[A]

/** The config's numbers, in the order `configOf` reads them. */
const configNumbers: { readonly [A in AlgorithmName]: (config: AlgorithmConfigs[A]) => ReadonlyArray<number> } = {
  fixedWindow: (c) => [c.limit, c.windowMillis],
  slidingLog: (c) => [c.limit, c.windowMillis],
  slidingCounter: (c) => [c.limit, c.windowMillis],
  tokenBucket: (c) => [c.capacity, c.refillPerSecond],
  leakyMeter: (c) => [c.capacity, c.leakPerSecond],
  leakyQueue: (c) => [c.capacity, c.leakPerSecond],
  gcra: (c) => [c.burst, c.ratePerPeriod, c.periodMillis],
  concurrency: (c) => [c.limit]
}

/** How many script arguments each algorithm's config takes. */
export const configArity: { readonly [A in AlgorithmName]: number } = {
  fixedWindow: 2,
  slidingLog: 2,
  slidingCounter: 2,
  tokenBucket: 2,
  leakyMeter: 2,
  leakyQueue: 2,
  gcra: 3,
  concurrency: 1
}

/** The config as script arguments, in the order the algorithm's `configOf` reads them (`"inf"` for Infinity). */
export const configArgs = <A extends AlgorithmName>(algorithm: A, config: AlgorithmConfigs[A]): ReadonlyArray<string> =>
  configNumbers[algorithm](config).map(numberArg)

/** `configArgs` of an algorithm and its config given together. */
export const inputArgs = <A extends AlgorithmName>(input: AlgorithmInput<A>): ReadonlyArray<string> =>
  configNumbers[input.algorithm](input.config).map(numberArg)

/** A decision as `decisionReply` sends it. */
export interface DecisionReply {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  readonly resetMillis: number
  /** `Infinity` when the cost can never pass. */
  readonly retryAfterMillis: number
  readonly delayMillis: number
}

/**
 * One value of a `decisionReply`: an integer reply, or a string made by
 * `num` (a number Redis would not carry exactly as an integer).
 */
export type ReplyValue = number | string

/** Parses the six values of a `decisionReply` that start at `at` in `reply` (several limits reply in turn). */
export const decodeDecisionAt = (reply: ReadonlyArray<ReplyValue>, at: number): DecisionReply => ({
  allowed: reply[at] === 1,
  limit: numberReply(reply[at + 1]),
  remaining: numberReply(reply[at + 2]),
  resetMillis: numberReply(reply[at + 3]),
  retryAfterMillis: numberReply(reply[at + 4]),
  delayMillis: numberReply(reply[at + 5])
})

/** Parses the six values of a `decisionReply`. */
export const decodeDecision = (reply: ReadonlyArray<ReplyValue>): DecisionReply => decodeDecisionAt(reply, 0)

// ---------------------------------------------------------------------------
// Lua
// ---------------------------------------------------------------------------

/**
 * The algorithms, to concatenate after `prelude`. Defines `ALGORITHMS`,
 * `newDecision`, `appendDecision`, `decisionReply`, `checkLimits` and
 * `decideLimits`.
 */
export const algorithms = `
-- Each algorithm sits in its own do ... end block, so its functions are
-- locals of that block only (Lua allows 200 locals per function, the
-- store script's main chunk included).
local ALGORITHMS = {}
-- No global is read at the top level: a Redis function library's code runs
-- where the standard libraries are not yet reachable (they are inside the
-- functions, when called).
local INF = 1 / 0
local function floor(x) return math.floor(x) end
local function ceil(x) return math.ceil(x) end

-- ---------------------------------------------------------------------------
-- decisions
-- ---------------------------------------------------------------------------

-- A fresh decision to reuse as the out argument.
local function newDecision()
  return { allowed = false, limit = 0, remaining = 0, resetMillis = 0, retryAfterMillis = 0, delayMillis = 0 }
end

local function decide(out, allowed, limit, remaining, resetMillis, retryAfterMillis, delayMillis)
  out.allowed = allowed
  out.limit = limit
  if remaining > 0 then out.remaining = floor(remaining) else out.remaining = 0 end
  out.resetMillis = resetMillis
  out.retryAfterMillis = retryAfterMillis
  out.delayMillis = delayMillis
  return out
end

-- A number for a reply, exact: an integer reply for a whole number of
-- magnitude below 2^52 other than -0, else num's string. Integers are the
-- common case, and far cheaper than formatting a string. (2^52, not 2^53:
-- ioredis parses an integer reply digit by digit through n * 10 + byte - 48,
-- whose intermediate rounds once it passes 2^53.)
local function exact(n)
  if n % 1 == 0 and n < 4503599627370496 and n > -4503599627370496 and (n ~= 0 or 1 / n > 0) then return n end
  return num(n)
end

-- Appends a decision to reply from index at: allowed (1 or 0), limit,
-- remaining, resetMillis, retryAfterMillis, delayMillis, each exact.
local function appendDecision(reply, at, out)
  reply[at] = out.allowed and 1 or 0
  reply[at + 1] = exact(out.limit)
  reply[at + 2] = exact(out.remaining)
  reply[at + 3] = exact(out.resetMillis)
  reply[at + 4] = exact(out.retryAfterMillis)
  reply[at + 5] = exact(out.delayMillis)
  return reply
end

-- A decision as the six values decodeDecision reads (see appendDecision), in a table made at its size.
local function decisionReply(out)
  return { out.allowed and 1 or 0, exact(out.limit), exact(out.remaining), exact(out.resetMillis),
    exact(out.retryAfterMillis), exact(out.delayMillis) }
end

-- Checks cost on every limit of a tier (limits[j] = { algorithm, config },
-- states[j] its state, outAt(j) the table for its decision): whether all allow.
local function checkLimits(limits, count, states, now, cost, outAt)
  local allowed = true
  for j = 1, count do
    local limit, out = limits[j], outAt(j)
    limit.algorithm.check(states[j], now, cost, limit.config, out)
    if not out.allowed then allowed = false end
  end
  return allowed
end

-- Decides cost on every limit of a tier at once (as checkLimits): with
-- commit, all are charged when all allow, and none otherwise. Returns
-- whether they were charged. Consuming limit by limit, and only checking
-- once one refused, decides as checking all and then consuming all (each
-- algorithm's consume decides as its check, then charges only when allowed;
-- limits share no state), with half the work; but the limits consumed
-- before a refusal keep that charge in states. A caller that writes the
-- states back after a refusal asks for them untouched: all checked first.
local function decideLimits(limits, count, states, now, cost, commit, outAt, untouched)
  if not commit then
    checkLimits(limits, count, states, now, cost, outAt)
    return false
  end
  if untouched and count > 1 and not checkLimits(limits, count, states, now, cost, outAt) then return false end
  local allowed = true
  for j = 1, count do
    local limit, out = limits[j], outAt(j)
    if allowed then
      limit.algorithm.consume(states[j], now, cost, limit.config, out)
    else
      limit.algorithm.check(states[j], now, cost, limit.config, out)
    end
    if not out.allowed then allowed = false end
  end
  return allowed
end

-- ---------------------------------------------------------------------------
-- shared arithmetic
-- ---------------------------------------------------------------------------

-- Math.max and Math.min of two numbers, as JavaScript's: +0 is above -0.
local function max(a, b)
  if a > b then return a end
  if b > a then return b end
  if a == 0 then return a + b end
  return a
end
local function min(a, b)
  if a < b then return a end
  if b < a then return b end
  if a == 0 then return -((-a) + (-b)) end
  return a
end

-- Intervals are multiples of 2^-10 ms: exact in float64 next to epoch milliseconds (< 2^43).
local TIME_GRID = 1024

-- Refills and drains, counted in thousandths of a unit, are multiples of
-- 2^-16 of them: exact in float64 for capacities below 2^27 units, and whole
-- already when the rate is an integer.
local AMOUNT_GRID = 65536

-- Rounds an interval up to the time grid (so the limiter never runs faster than configured).
local function gridInterval(millis) return ceil(millis * TIME_GRID) / TIME_GRID end

-- Rounds a refill or drain down to the amount grid (so the limiter never credits more than configured).
local function gridAmount(milliUnits) return floor(milliUnits * AMOUNT_GRID) / AMOUNT_GRID end

-- The least whole number of milliseconds d >= 0 such that now + d >= target.
local function untilMillis(target, now)
  if target <= now then return 0 end
  local d = ceil(target - now)
  if now + d < target then d = d + 1
  elseif d > 1 and now + (d - 1) >= target then d = d - 1 end
  return d
end

-- The backlog at now of a schedule that is busy until busyUntil.
local function backlog(busyUntil, now)
  if busyUntil > now then return busyUntil - now end
  return 0
end

-- The least whole number of milliseconds d >= 0 such that, at now + d,
-- backlog(busyUntil) + add <= bound: the predicate GCRA and the shaping
-- queue decide with.
local function scheduleWait(busyUntil, now, add, bound)
  if backlog(busyUntil, now) + add <= bound then return 0 end
  local d = ceil(busyUntil - (bound - add) - now)
  if d < 1 then d = 1 end
  if backlog(busyUntil, now + d) + add > bound then d = d + 1
  elseif d > 1 and backlog(busyUntil, now + d - 1) + add <= bound then d = d - 1 end
  return d
end

-- Schedules add (cost x interval) after the busy time: the new busy time.
local function scheduleAfter(busyUntil, now, add) return max(busyUntil, now) + add end

-- Unschedules remove, never before now (an empty schedule).
local function scheduleBack(busyUntil, now, remove) return max(max(busyUntil, now) - remove, now) end

-- Schedules add extra as a penalty, up to now + most, and never earlier
-- than it was (even with a clock that stepped back).
local function schedulePenalty(busyUntil, now, add, most)
  return max(busyUntil, min(max(busyUntil, now) + add, now + most))
end

-- ---------------------------------------------------------------------------
-- configs and codecs
-- ---------------------------------------------------------------------------

-- values[i], which must be a number at least low (above low when strict).
local function configValue(values, i, name, low, strict)
  local v = values[i]
  if type(v) ~= "number" or v ~= v or v < low or (strict and v == low) then
    error("bad argument " .. name .. ": " .. tostring(v))
  end
  return v
end

-- Packs numbers as little-endian float64s (formats made once: a state packs at most three at a time).
local PACK_FORMATS = { "<d", "<dd", "<ddd" }
local function pack(...)
  local n = select("#", ...)
  return struct.pack(PACK_FORMATS[n] or "<" .. string.rep("d", n), ...)
end

-- ---------------------------------------------------------------------------
-- 1. fixed window
-- ---------------------------------------------------------------------------
do

-- Fixed window: limit cost per window aligned to floor(now / windowMillis).
-- State: the window count belongs to, and the cost counted in it (penalties included).

-- A fresh fixed window: nothing counted.
local function fixedWindowMake(config, now)
  return { window = floor(now / config.windowMillis), count = 0 }
end

-- The window index at now, never before the state's own.
local function fixedWindowIndex(s, now, config)
  local w = floor(now / config.windowMillis)
  return max(w, s.window)
end

-- Decides without mutating: allowed when count + cost <= limit. A refused
-- request may retry at the next window; resetMillis is the window's end.
local function fixedWindowCheck(s, now, cost, config, out)
  local w = fixedWindowIndex(s, now, config)
  local count = 0
  if w == s.window then count = s.count end
  local allowed = count + cost <= config.limit
  local after = count
  if allowed then after = count + cost end
  local windowEnd = (w + 1) * config.windowMillis
  local resetMillis = 0
  if after > 0 then resetMillis = untilMillis(windowEnd, now) end
  local retryAfterMillis = 0
  if not allowed then
    if cost > config.limit then retryAfterMillis = INF else retryAfterMillis = untilMillis(windowEnd, now) end
  end
  return decide(out, allowed, config.limit, config.limit - after, resetMillis, retryAfterMillis, 0)
end

-- Counts cost in the current window, past the limit if need be: the debt ends with the window.
local function fixedWindowPenalize(s, now, cost, config)
  local w = fixedWindowIndex(s, now, config)
  local count = 0
  if w == s.window then count = s.count end
  s.count = count + cost
  s.window = w
end

-- Decides as fixedWindowCheck and, if allowed, counts the cost.
local function fixedWindowConsume(s, now, cost, config, out)
  fixedWindowCheck(s, now, cost, config, out)
  if out.allowed then fixedWindowPenalize(s, now, cost, config) end
  return out
end

-- Uncounts up to cost from the current window.
local function fixedWindowRefund(s, now, cost, config)
  local w = fixedWindowIndex(s, now, config)
  local count = 0
  if w == s.window then count = s.count end
  s.window = w
  if count > cost then s.count = count - cost else s.count = 0 end
end

-- Idle when nothing is counted in the current window.
local function fixedWindowIsIdle(s, now, config)
  return fixedWindowIndex(s, now, config) ~= s.window or s.count <= 0
end

-- A count never outlives its window.
local function fixedWindowTtlMillis(config) return config.windowMillis end

-- The fixed window's operations.
ALGORITHMS.fixedWindow = {
  make = fixedWindowMake,
  check = fixedWindowCheck,
  consume = fixedWindowConsume,
  refund = fixedWindowRefund,
  penalize = fixedWindowPenalize,
  isIdle = fixedWindowIsIdle,
  ttlMillis = fixedWindowTtlMillis,
  encode = function(s) return pack(s.window, s.count) end,
  decode = function(bytes)
    local window, count = struct.unpack("<dd", bytes)
    return { window = window, count = count }
  end,
  configOf = function(values, i)
    return { limit = configValue(values, i, "limit", 0), windowMillis = configValue(values, i + 1, "windowMillis", 0, true) },
      i + 2
  end
}

end

-- ---------------------------------------------------------------------------
-- 2. sliding window log
-- ---------------------------------------------------------------------------
do

-- Sliding window log: exactly limit cost in any interval of windowMillis.
-- An entry admitted at t counts until t + windowMillis (excluded).
--
-- Entries oldest first, as parallel arrays: times is non-decreasing, each
-- costs[i] > 0, and total is the sum of costs. With costs >= 1 there are
-- never more than limit entries: requests at the same millisecond share one,
-- and a penalty joins the newest entry once the log is full. (Lua arrays
-- start at 1; the indices below that mirror the TypeScript ones are 0-based
-- and read as times[i + 1].)

-- A fresh, empty log.
local function slidingLogMake(config, now)
  return { times = {}, costs = {}, total = 0 }
end

-- The (0-based) index of the first entry still in the window at now.
local function slidingLogFirstLive(s, now, config)
  local i = 0
  local n = #s.times
  while i < n and s.times[i + 1] + config.windowMillis <= now do i = i + 1 end
  return i
end

-- Drops the entries that left the window at now.
local function slidingLogPrune(s, now, config)
  local first = slidingLogFirstLive(s, now, config)
  if first == 0 then return end
  for i = 1, first do s.total = s.total - s.costs[i] end
  local n = #s.times
  for i = first + 1, n do
    s.times[i - first] = s.times[i]
    s.costs[i - first] = s.costs[i]
  end
  for i = n, n - first + 1, -1 do
    s.times[i] = nil
    s.costs[i] = nil
  end
  if #s.times == 0 then s.total = 0 end
end

-- Decides without mutating: allowed when the live cost plus cost is at most
-- limit. A refused request may retry when enough of the oldest entries have
-- left the window; resetMillis is when the newest one leaves.
local function slidingLogCheck(s, now, cost, config, out)
  local n = #s.times
  local first = slidingLogFirstLive(s, now, config)
  local live = s.total
  for i = 1, first do live = live - s.costs[i] end
  local allowed = live + cost <= config.limit
  local after = live
  if allowed then after = live + cost end
  -- consume appends at max(newest, now)
  local newest = now
  if n > first then newest = s.times[n] end
  if allowed and cost > 0 and now > newest then newest = now end
  local retryAfterMillis = 0
  if not allowed then
    if cost > config.limit then
      retryAfterMillis = INF
    else
      -- wait until the oldest entries holding the excess have left
      local excess = live + cost - config.limit
      local freed = 0
      local i = first
      while i < n - 1 do
        freed = freed + s.costs[i + 1]
        if freed >= excess then break end
        i = i + 1
      end
      retryAfterMillis = untilMillis((s.times[i + 1] or now) + config.windowMillis, now)
    end
  end
  local resetMillis = 0
  if after > 0 then resetMillis = untilMillis(newest + config.windowMillis, now) end
  return decide(out, allowed, config.limit, config.limit - after, resetMillis, retryAfterMillis, 0)
end

-- Logs cost at now, past the limit if need be: the debt leaves with the
-- window. Joins the newest entry (moved to now, which only lengthens its
-- stay) when it is at now or the log already holds limit entries.
local function slidingLogPenalize(s, now, cost, config)
  slidingLogPrune(s, now, config)
  if cost <= 0 then return end
  local n = #s.times
  local newest = s.times[n] or now
  if n > 0 and (newest >= now or n >= config.limit) then
    s.costs[n] = s.costs[n] + cost
    if newest < now then s.times[n] = now end
  else
    s.times[n + 1] = now
    s.costs[n + 1] = cost
  end
  s.total = s.total + cost
end

-- Decides as slidingLogCheck and, if allowed, logs the cost.
local function slidingLogConsume(s, now, cost, config, out)
  slidingLogCheck(s, now, cost, config, out)
  if out.allowed then slidingLogPenalize(s, now, cost, config) end
  return out
end

-- Unlogs up to cost, newest entries first (as if the latest requests had not happened).
local function slidingLogRefund(s, now, cost, config)
  slidingLogPrune(s, now, config)
  local left = cost
  while left > 0 and #s.costs > 0 do
    local last = #s.costs
    local c = s.costs[last]
    if c <= left then
      s.times[last] = nil
      s.costs[last] = nil
      s.total = s.total - c
      left = left - c
    else
      s.costs[last] = c - left
      s.total = s.total - left
      left = 0
    end
  end
  if #s.costs == 0 then s.total = 0 end
end

-- Idle when every entry has left the window.
local function slidingLogIsIdle(s, now, config)
  local n = #s.times
  return n == 0 or s.times[n] + config.windowMillis <= now
end

-- An entry never outlives its window.
local function slidingLogTtlMillis(config) return config.windowMillis end

-- The sliding window log's operations. Encoded as total, then (time, cost) per entry.
ALGORITHMS.slidingLog = {
  make = slidingLogMake,
  check = slidingLogCheck,
  consume = slidingLogConsume,
  refund = slidingLogRefund,
  penalize = slidingLogPenalize,
  isIdle = slidingLogIsIdle,
  ttlMillis = slidingLogTtlMillis,
  encode = function(s)
    local parts = { pack(s.total) }
    for i = 1, #s.times do parts[i + 1] = pack(s.times[i], s.costs[i]) end
    return table.concat(parts)
  end,
  decode = function(bytes)
    local total, at = struct.unpack("<d", bytes)
    local s = { times = {}, costs = {}, total = total }
    local i = 0
    while at <= #bytes do
      i = i + 1
      s.times[i], s.costs[i], at = struct.unpack("<dd", bytes, at)
    end
    return s
  end,
  configOf = function(values, i)
    return { limit = configValue(values, i, "limit", 0), windowMillis = configValue(values, i + 1, "windowMillis", 0, true) },
      i + 2
  end
}

end

-- ---------------------------------------------------------------------------
-- 3. sliding window counter
-- ---------------------------------------------------------------------------
do

-- Sliding window counter (Cloudflare's): two aligned windows and the estimate
-- previous * (1 - elapsed / windowMillis) + current, allowed when the
-- estimate plus cost is at most limit. Decisions are evaluated multiplied by
-- windowMillis: previous * (windowMillis - elapsed) + (current + cost) * windowMillis <= limit * windowMillis.
-- State: the current window's index and count, and the previous window's count.

-- A fresh counter: both windows empty.
local function slidingCounterMake(config, now)
  return { window = floor(now / config.windowMillis), previous = 0, current = 0 }
end

-- The window index at now, never before the state's own.
local function slidingCounterIndex(s, now, config)
  local w = floor(now / config.windowMillis)
  return max(w, s.window)
end

-- The estimate at now, multiplied by windowMillis.
local function slidingCounterWeighted(s, now, config)
  local W = config.windowMillis
  local w = slidingCounterIndex(s, now, config)
  local elapsed = now - w * W
  if elapsed < 0 then elapsed = 0 end
  if w == s.window then return s.previous * (W - elapsed) + s.current * W end
  if w == s.window + 1 then return s.current * (W - elapsed) end
  return 0
end

-- Moves the state to the window of now.
local function slidingCounterRoll(s, now, config)
  local w = slidingCounterIndex(s, now, config)
  if w == s.window then return end
  if w == s.window + 1 then s.previous = s.current else s.previous = 0 end
  s.current = 0
  s.window = w
end

-- Decides without mutating. A refused request may retry when the previous
-- window's weight has fallen enough, possibly in the next window; resetMillis
-- is when both windows are empty.
local function slidingCounterCheck(s, now, cost, config, out)
  local W = config.windowMillis
  local w = slidingCounterIndex(s, now, config)
  local previous = 0
  if w == s.window then previous = s.previous elseif w == s.window + 1 then previous = s.current end
  local current = 0
  if w == s.window then current = s.current end
  local weighted = slidingCounterWeighted(s, now, config)
  local allowed = weighted + cost * W <= config.limit * W
  local after = weighted
  if allowed then after = weighted + cost * W end
  local currentAfter = current
  if allowed then currentAfter = current + cost end
  local resetMillis = 0
  if currentAfter > 0 then resetMillis = untilMillis((w + 2) * W, now)
  elseif previous > 0 then resetMillis = untilMillis((w + 1) * W, now) end
  local retryAfterMillis = 0
  if not allowed then
    if cost > config.limit then
      retryAfterMillis = INF
    else
      local room = (config.limit - current - cost) * W
      local at
      if room >= 0 and previous > 0 then
        -- in this window, once previous * ((w + 1) * W - t) <= room
        at = (w + 1) * W - room / previous
      else
        -- in the next one, once current * (W - elapsed) + cost * W <= limit * W
        local later = 0
        if current > 0 then later = max(0, W - ((config.limit - cost) * W) / current) end
        at = (w + 1) * W + later
      end
      local d = ceil(at - now)
      if d < 1 then d = 1 end
      if slidingCounterWeighted(s, now + d, config) + cost * W > config.limit * W then d = d + 1
      elseif d > 1 and slidingCounterWeighted(s, now + d - 1, config) + cost * W <= config.limit * W then d = d - 1 end
      retryAfterMillis = d
    end
  end
  return decide(out, allowed, config.limit, (config.limit * W - after) / W, resetMillis, retryAfterMillis, 0)
end

-- Counts cost in the current window, past the limit if need be: the debt is gone two windows later.
local function slidingCounterPenalize(s, now, cost, config)
  slidingCounterRoll(s, now, config)
  s.current = s.current + cost
end

-- Decides as slidingCounterCheck and, if allowed, counts the cost in the current window.
local function slidingCounterConsume(s, now, cost, config, out)
  slidingCounterCheck(s, now, cost, config, out)
  if out.allowed then slidingCounterPenalize(s, now, cost, config) end
  return out
end

-- Uncounts up to cost, from the current window first, then the previous one.
local function slidingCounterRefund(s, now, cost, config)
  slidingCounterRoll(s, now, config)
  local fromCurrent = min(s.current, cost)
  s.current = s.current - fromCurrent
  local rest = cost - fromCurrent
  if s.previous > rest then s.previous = s.previous - rest else s.previous = 0 end
end

-- Idle when both the current and the previous window are empty.
local function slidingCounterIsIdle(s, now, config)
  local w = slidingCounterIndex(s, now, config)
  if w == s.window then return s.previous <= 0 and s.current <= 0 end
  return w > s.window + 1 or s.current <= 0
end

-- A count stops mattering once it is two windows old.
local function slidingCounterTtlMillis(config) return 2 * config.windowMillis end

-- The sliding window counter's operations.
ALGORITHMS.slidingCounter = {
  make = slidingCounterMake,
  check = slidingCounterCheck,
  consume = slidingCounterConsume,
  refund = slidingCounterRefund,
  penalize = slidingCounterPenalize,
  isIdle = slidingCounterIsIdle,
  ttlMillis = slidingCounterTtlMillis,
  encode = function(s) return pack(s.window, s.previous, s.current) end,
  decode = function(bytes)
    local window, previous, current = struct.unpack("<ddd", bytes)
    return { window = window, previous = previous, current = current }
  end,
  configOf = function(values, i)
    return { limit = configValue(values, i, "limit", 0), windowMillis = configValue(values, i + 1, "windowMillis", 0, true) },
      i + 2
  end
}

end

-- ---------------------------------------------------------------------------
-- 4. token bucket
-- ---------------------------------------------------------------------------
do

-- Token bucket: holds up to capacity tokens (the burst), refilled at refillPerSecond.
-- State: the tokens held at lastRefill, in thousandths (so an integer
-- refillPerSecond refills a whole number of them per millisecond, exactly);
-- refilled lazily. Negative after penalties, down to -capacity tokens.

-- A fresh, full bucket.
local function tokenBucketMake(config, now)
  return { milliTokens = config.capacity * 1000, lastRefill = now }
end

-- The thousandths of tokens at now of a bucket holding milliTokens at lastRefill.
local function tokenBucketMilliTokens(milliTokens, lastRefill, now, config)
  local full = config.capacity * 1000
  local m = milliTokens
  if now > lastRefill then m = milliTokens + gridAmount((now - lastRefill) * config.refillPerSecond) end
  return min(m, full)
end

-- The least whole number of milliseconds after which the bucket holds target (<= capacity * 1000) thousandths.
local function tokenBucketWait(milliTokens, lastRefill, now, target, config)
  if tokenBucketMilliTokens(milliTokens, lastRefill, now, config) >= target then return 0 end
  local d = ceil(lastRefill + (target - milliTokens) / config.refillPerSecond - now)
  if d < 1 then d = 1 end
  if tokenBucketMilliTokens(milliTokens, lastRefill, now + d, config) < target then d = d + 1
  elseif d > 1 and tokenBucketMilliTokens(milliTokens, lastRefill, now + d - 1, config) >= target then d = d - 1 end
  return d
end

-- The decision for a bucket holding m thousandths at now.
local function tokenBucketDecide(s, m, now, cost, config, out)
  local full = config.capacity * 1000
  local need = cost * 1000
  if m >= need then
    -- the bucket the decision leaves behind holds m - need from max(now, lastRefill) on
    local kept = m - need
    local resetMillis = 0
    if kept < full then resetMillis = tokenBucketWait(kept, max(now, s.lastRefill), now, full, config) end
    return decide(out, true, config.capacity, kept / 1000, resetMillis, 0, 0)
  end
  local retryAfterMillis = INF
  if cost <= config.capacity then retryAfterMillis = tokenBucketWait(s.milliTokens, s.lastRefill, now, need, config) end
  return decide(out, false, config.capacity, m / 1000, tokenBucketWait(s.milliTokens, s.lastRefill, now, full, config),
    retryAfterMillis, 0)
end

-- Decides without mutating: allowed when the bucket holds at least cost
-- tokens. A refused request may retry once it has refilled to cost;
-- resetMillis is when it is full.
local function tokenBucketCheck(s, now, cost, config, out)
  return tokenBucketDecide(s, tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config), now, cost, config, out)
end

-- Decides as tokenBucketCheck and, if allowed, takes the tokens.
local function tokenBucketConsume(s, now, cost, config, out)
  local m = tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config)
  tokenBucketDecide(s, m, now, cost, config, out)
  if out.allowed then
    s.milliTokens = m - cost * 1000
    if now > s.lastRefill then s.lastRefill = now end
  end
  return out
end

-- Puts back up to cost tokens, never above capacity.
local function tokenBucketRefund(s, now, cost, config)
  local m = tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config) + cost * 1000
  s.milliTokens = min(m, config.capacity * 1000)
  if now > s.lastRefill then s.lastRefill = now end
end

-- Takes cost tokens, into debt down to -capacity, so later requests wait for the refill.
local function tokenBucketPenalize(s, now, cost, config)
  local m = tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config) - cost * 1000
  s.milliTokens = max(m, -config.capacity * 1000)
  if now > s.lastRefill then s.lastRefill = now end
end

-- Idle when the bucket is full.
local function tokenBucketIsIdle(s, now, config)
  return tokenBucketMilliTokens(s.milliTokens, s.lastRefill, now, config) >= config.capacity * 1000
end

-- The time to refill from the deepest debt (-capacity) to full.
local function tokenBucketTtlMillis(config) return ceil((2 * config.capacity * 1000) / config.refillPerSecond) end

-- The token bucket's operations.
ALGORITHMS.tokenBucket = {
  make = tokenBucketMake,
  check = tokenBucketCheck,
  consume = tokenBucketConsume,
  refund = tokenBucketRefund,
  penalize = tokenBucketPenalize,
  isIdle = tokenBucketIsIdle,
  ttlMillis = tokenBucketTtlMillis,
  encode = function(s) return pack(s.milliTokens, s.lastRefill) end,
  decode = function(bytes)
    local milliTokens, lastRefill = struct.unpack("<dd", bytes)
    return { milliTokens = milliTokens, lastRefill = lastRefill }
  end,
  configOf = function(values, i)
    return { capacity = configValue(values, i, "capacity", 0),
      refillPerSecond = configValue(values, i + 1, "refillPerSecond", 0, true) }, i + 2
  end
}

end

-- ---------------------------------------------------------------------------
-- 5. leaky bucket as a meter
-- ---------------------------------------------------------------------------
do

-- Leaky bucket as a meter: a level that drains at leakPerSecond; a request fits when level + cost <= capacity.
-- State: the level at lastLeak, in thousandths (as the token bucket's tokens);
-- drained lazily. Up to 2 * capacity after penalties.

-- A fresh, empty meter.
local function leakyMeterMake(config, now)
  return { milliLevel = 0, lastLeak = now }
end

-- The level (thousandths) at now of a meter at milliLevel at lastLeak.
local function leakyMeterMilliLevel(milliLevel, lastLeak, now, config)
  if now <= lastLeak then return milliLevel end
  local l = milliLevel - gridAmount((now - lastLeak) * config.leakPerSecond)
  return max(l, 0)
end

-- The least whole number of milliseconds after which level + add <= bound, all in thousandths (add <= bound).
local function leakyMeterWait(milliLevel, lastLeak, now, add, bound, config)
  if leakyMeterMilliLevel(milliLevel, lastLeak, now, config) + add <= bound then return 0 end
  local d = ceil(lastLeak + (milliLevel + add - bound) / config.leakPerSecond - now)
  if d < 1 then d = 1 end
  if leakyMeterMilliLevel(milliLevel, lastLeak, now + d, config) + add > bound then d = d + 1
  elseif d > 1 and leakyMeterMilliLevel(milliLevel, lastLeak, now + d - 1, config) + add <= bound then d = d - 1 end
  return d
end

-- Decides without mutating: allowed when level + cost <= capacity. A
-- refused request may retry once enough has drained; resetMillis is when
-- the meter is empty.
local function leakyMeterCheck(s, now, cost, config, out)
  local full = config.capacity * 1000
  local level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config)
  local allowed = level + cost * 1000 <= full
  local keptLevel = s.milliLevel
  local keptAt = s.lastLeak
  local remaining
  if allowed then
    keptLevel = level + cost * 1000
    keptAt = max(now, s.lastLeak)
    remaining = (full - (level + cost * 1000)) / 1000
  else
    remaining = (full - level) / 1000
  end
  local retryAfterMillis = 0
  if not allowed then
    if cost > config.capacity then retryAfterMillis = INF
    else retryAfterMillis = leakyMeterWait(s.milliLevel, s.lastLeak, now, cost * 1000, full, config) end
  end
  return decide(out, allowed, config.capacity, remaining, leakyMeterWait(keptLevel, keptAt, now, 0, 0, config),
    retryAfterMillis, 0)
end

-- Decides as leakyMeterCheck and, if allowed, adds the cost to the level.
local function leakyMeterConsume(s, now, cost, config, out)
  local level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config)
  leakyMeterCheck(s, now, cost, config, out)
  if out.allowed then
    s.milliLevel = level + cost * 1000
    if now > s.lastLeak then s.lastLeak = now end
  end
  return out
end

-- Drains up to cost at once, never below empty.
local function leakyMeterRefund(s, now, cost, config)
  local level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config) - cost * 1000
  s.milliLevel = max(level, 0)
  if now > s.lastLeak then s.lastLeak = now end
end

-- Adds cost to the level, past capacity up to 2 * capacity, so later requests wait for the drain.
local function leakyMeterPenalize(s, now, cost, config)
  local level = leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config) + cost * 1000
  s.milliLevel = min(level, 2 * config.capacity * 1000)
  if now > s.lastLeak then s.lastLeak = now end
end

-- Idle when the meter is empty.
local function leakyMeterIsIdle(s, now, config)
  return leakyMeterMilliLevel(s.milliLevel, s.lastLeak, now, config) <= 0
end

-- The time to drain from the highest level (2 * capacity) to empty.
local function leakyMeterTtlMillis(config) return ceil((2 * config.capacity * 1000) / config.leakPerSecond) end

-- The leaky meter's operations.
ALGORITHMS.leakyMeter = {
  make = leakyMeterMake,
  check = leakyMeterCheck,
  consume = leakyMeterConsume,
  refund = leakyMeterRefund,
  penalize = leakyMeterPenalize,
  isIdle = leakyMeterIsIdle,
  ttlMillis = leakyMeterTtlMillis,
  encode = function(s) return pack(s.milliLevel, s.lastLeak) end,
  decode = function(bytes)
    local milliLevel, lastLeak = struct.unpack("<dd", bytes)
    return { milliLevel = milliLevel, lastLeak = lastLeak }
  end,
  configOf = function(values, i)
    return { capacity = configValue(values, i, "capacity", 0),
      leakPerSecond = configValue(values, i + 1, "leakPerSecond", 0, true) }, i + 2
  end
}

end

-- ---------------------------------------------------------------------------
-- 6. leaky bucket as a shaping queue
-- ---------------------------------------------------------------------------
do

-- Leaky bucket as a shaping queue: requests leave at leakPerSecond cost
-- units per second. Instead of refusing, the queue delays a request
-- (delayMillis) until the cost queued ahead of it has left; it refuses only
-- when the queued cost, this request's included, would exceed capacity.
-- State: virtual scheduling; the queue is busy until nextFreeAt, when the next
-- request may start. The queued cost is (nextFreeAt - now) / interval, up to
-- 2 * capacity after penalties.

-- A fresh, empty queue.
local function leakyQueueMake(config, now) return { nextFreeAt = now } end

-- Milliseconds per cost unit (1000 / leakPerSecond, rounded up to 1/1024 ms).
local function leakyQueueInterval(config) return gridInterval(1000 / config.leakPerSecond) end

-- Decides without mutating: allowed when backlog + cost * interval <=
-- capacity * interval. An allowed request waits delayMillis (the backlog
-- ahead of it); a refused one may retry once enough has left; resetMillis
-- is when the queue is empty.
local function leakyQueueCheck(s, now, cost, config, out)
  local interval = leakyQueueInterval(config)
  local bound = config.capacity * interval
  local add = cost * interval
  local allowed = backlog(s.nextFreeAt, now) + add <= bound
  local start = max(s.nextFreeAt, now)
  local next = s.nextFreeAt
  if allowed then next = start + add end
  local retryAfterMillis = 0
  local delayMillis = 0
  if allowed then
    delayMillis = untilMillis(start, now)
  elseif cost > config.capacity then
    retryAfterMillis = INF
  else
    retryAfterMillis = scheduleWait(s.nextFreeAt, now, add, bound)
  end
  return decide(out, allowed, config.capacity, (bound - backlog(next, now)) / interval, untilMillis(next, now),
    retryAfterMillis, delayMillis)
end

-- Decides as leakyQueueCheck and, if allowed, schedules the request after the backlog.
local function leakyQueueConsume(s, now, cost, config, out)
  leakyQueueCheck(s, now, cost, config, out)
  if out.allowed then s.nextFreeAt = scheduleAfter(s.nextFreeAt, now, cost * leakyQueueInterval(config)) end
  return out
end

-- Unschedules up to cost (a queued request that gave up), never below an empty queue.
local function leakyQueueRefund(s, now, cost, config)
  s.nextFreeAt = scheduleBack(s.nextFreeAt, now, cost * leakyQueueInterval(config))
end

-- Schedules cost extra, up to twice the capacity queued, so later requests wait or are refused.
local function leakyQueuePenalize(s, now, cost, config)
  local interval = leakyQueueInterval(config)
  s.nextFreeAt = schedulePenalty(s.nextFreeAt, now, cost * interval, 2 * config.capacity * interval)
end

-- Idle when the queue is empty.
local function leakyQueueIsIdle(s, now, config) return s.nextFreeAt <= now end

-- The time to empty the fullest queue (2 * capacity).
local function leakyQueueTtlMillis(config) return ceil(2 * config.capacity * leakyQueueInterval(config)) end

-- The shaping queue's operations.
ALGORITHMS.leakyQueue = {
  make = leakyQueueMake,
  check = leakyQueueCheck,
  consume = leakyQueueConsume,
  refund = leakyQueueRefund,
  penalize = leakyQueuePenalize,
  isIdle = leakyQueueIsIdle,
  ttlMillis = leakyQueueTtlMillis,
  encode = function(s) return pack(s.nextFreeAt) end,
  decode = function(bytes)
    local nextFreeAt = struct.unpack("<d", bytes)
    return { nextFreeAt = nextFreeAt }
  end,
  configOf = function(values, i)
    return { capacity = configValue(values, i, "capacity", 0),
      leakPerSecond = configValue(values, i + 1, "leakPerSecond", 0, true) }, i + 2
  end
}

end

-- ---------------------------------------------------------------------------
-- 7. GCRA
-- ---------------------------------------------------------------------------
do

-- GCRA with redis-cell's semantics: CL.THROTTLE key burst ratePerPeriod
-- period cost. Emission interval T = periodMillis / ratePerPeriod, limit
-- burst + 1, delay variation tolerance dvt = T * limit.
-- State: the theoretical arrival time; at or before now means idle.

-- A fresh state (redis-cell's missing key: tat = now).
local function gcraMake(config, now) return { tat = now } end

-- The emission interval T = periodMillis / ratePerPeriod, rounded up to
-- 1/1024 ms (redis-cell truncates it to whole nanoseconds).
local function gcraInterval(config) return gridInterval(config.periodMillis / config.ratePerPeriod) end

-- Decides without mutating, as redis-cell does:
--
--   increment = T * cost
--   new_tat   = max(tat, now) + increment
--   allowed   = now >= new_tat - dvt        (here: backlog + increment <= dvt)
--   ttl       = (allowed ? new_tat : tat) - now
--   remaining = floor((dvt - ttl) / T), 0 when negative
--   reset     = ttl
--   retry     = new_tat - dvt - now
--
-- redis-cell rounds reset and retry up to whole seconds; here they are
-- rounded up to whole milliseconds. Its retry = -1 when allowed is 0 here,
-- and when increment > dvt (a cost that can never pass) math.huge. The
-- comparison is made on the backlog (max(tat, now) - now) rather than on
-- absolute times, which is the same test and keeps a fresh key exact.
local function gcraCheck(s, now, cost, config, out)
  local T = gcraInterval(config)
  local dvt = T * (config.burst + 1)
  local increment = cost * T
  local allowed = backlog(s.tat, now) + increment <= dvt
  local tat = s.tat
  if allowed then tat = max(s.tat, now) + increment end
  local retryAfterMillis = 0
  if not allowed then
    if increment > dvt then retryAfterMillis = INF else retryAfterMillis = scheduleWait(s.tat, now, increment, dvt) end
  end
  return decide(out, allowed, config.burst + 1, (dvt - backlog(tat, now)) / T, untilMillis(tat, now),
    retryAfterMillis, 0)
end

-- Decides as gcraCheck and, if allowed, stores the new TAT.
local function gcraConsume(s, now, cost, config, out)
  gcraCheck(s, now, cost, config, out)
  if out.allowed then s.tat = scheduleAfter(s.tat, now, cost * gcraInterval(config)) end
  return out
end

-- Moves the TAT back by up to cost emission intervals, never before now.
local function gcraRefund(s, now, cost, config)
  s.tat = scheduleBack(s.tat, now, cost * gcraInterval(config))
end

-- Moves the TAT forward by cost emission intervals, up to now + 2 * dvt.
local function gcraPenalize(s, now, cost, config)
  local T = gcraInterval(config)
  s.tat = schedulePenalty(s.tat, now, cost * T, 2 * T * (config.burst + 1))
end

-- Idle when the TAT is not in the future.
local function gcraIsIdle(s, now, config) return s.tat <= now end

-- The furthest the TAT can be ahead of the last call: 2 * dvt (after penalties).
local function gcraTtlMillis(config) return ceil(2 * gcraInterval(config) * (config.burst + 1)) end

-- GCRA's operations.
ALGORITHMS.gcra = {
  make = gcraMake,
  check = gcraCheck,
  consume = gcraConsume,
  refund = gcraRefund,
  penalize = gcraPenalize,
  isIdle = gcraIsIdle,
  ttlMillis = gcraTtlMillis,
  encode = function(s) return pack(s.tat) end,
  decode = function(bytes)
    local tat = struct.unpack("<d", bytes)
    return { tat = tat }
  end,
  configOf = function(values, i)
    return { burst = configValue(values, i, "burst", 0), ratePerPeriod = configValue(values, i + 1, "ratePerPeriod", 0, true),
      periodMillis = configValue(values, i + 2, "periodMillis", 0, true) }, i + 3
  end
}

end

-- ---------------------------------------------------------------------------
-- 8. concurrency limit
-- ---------------------------------------------------------------------------
do

-- Concurrency limit: at most limit permits held at once. Time plays no part.
-- State: the permits held; above limit only after penalties.

-- A fresh state: no permits held.
local function concurrencyMake(config, now) return { inFlight = 0 } end

-- Decides without mutating: allowed when inFlight + cost <= limit. When
-- permits come back is unknown, so resetMillis is 0 and so is
-- retryAfterMillis (math.huge for a cost above the limit).
local function concurrencyCheck(s, now, cost, config, out)
  local allowed = s.inFlight + cost <= config.limit
  local held = s.inFlight
  if allowed then held = s.inFlight + cost end
  local retryAfterMillis = INF
  if allowed or cost <= config.limit then retryAfterMillis = 0 end
  return decide(out, allowed, config.limit, config.limit - held, 0, retryAfterMillis, 0)
end

-- Decides as concurrencyCheck and, if allowed, acquires cost permits (give them back with concurrencyRelease).
local function concurrencyConsume(s, now, cost, config, out)
  concurrencyCheck(s, now, cost, config, out)
  if out.allowed then s.inFlight = s.inFlight + cost end
  return out
end

-- Releases cost permits, never below 0.
local function concurrencyRelease(s, cost, config)
  if s.inFlight > cost then s.inFlight = s.inFlight - cost else s.inFlight = 0 end
end

-- Releases cost permits, as concurrencyRelease.
local function concurrencyRefund(s, now, cost, config) concurrencyRelease(s, cost, config) end

-- Holds cost extra permits, past the limit if need be, until they are released.
local function concurrencyPenalize(s, now, cost, config) s.inFlight = s.inFlight + cost end

-- Idle when no permit is held.
local function concurrencyIsIdle(s, now, config) return s.inFlight <= 0 end

-- Held permits never expire by themselves: a store must keep a key while
-- concurrencyIsIdle is false (a Redis port needs per-permit leases).
local function concurrencyTtlMillis(config) return INF end

-- The concurrency limit's operations, plus release.
ALGORITHMS.concurrency = {
  make = concurrencyMake,
  check = concurrencyCheck,
  consume = concurrencyConsume,
  refund = concurrencyRefund,
  penalize = concurrencyPenalize,
  isIdle = concurrencyIsIdle,
  ttlMillis = concurrencyTtlMillis,
  release = concurrencyRelease,
  encode = function(s) return pack(s.inFlight) end,
  decode = function(bytes)
    local inFlight = struct.unpack("<d", bytes)
    return { inFlight = inFlight }
  end,
  configOf = function(values, i)
    return { limit = configValue(values, i, "limit", 0) }, i + 1
  end
}
end
`

// Every algorithm's block starts with a line "do" and registers itself as
// `ALGORITHMS.<name> = {`: what comes before the first block is shared.
const blocks = algorithms.split(/\n(?=-- -+\n-- \d+\. )/)
const shared = blocks[0] ?? ""
const blockOf = new Map<AlgorithmName, string>()
for (const block of blocks.slice(1)) {
  const name = algorithmNames.find((candidate) => block.includes(`ALGORITHMS.${candidate} = {`))
  if (name !== undefined) blockOf.set(name, block)
}

/**
 * `algorithms` with only the named algorithms' blocks: a script defines its
 * functions on every call, so a limiter's scripts carry only what it runs.
 */
export const algorithmsFor = (names: Iterable<AlgorithmName>): string => {
  const wanted = new Set(names)
  return [shared, ...algorithmNames.filter((name) => wanted.has(name)).map((name) => blockOf.get(name) ?? "")].join(
    "\n"
  )
}
