/**
 * The fleet side of the local-first circuit breaker store: how one process's
 * outcome deltas merge into the fleet's view of a key, and when that view
 * trips. Plain functions over plain data (no Effect, no clock reads), ported
 * to Lua below with the same names, order and comments.
 *
 * - A `Segment` summarizes a run of outcomes for the consecutive-failures
 *   policy: its failures after the last success (`trailing`) and whether it
 *   held no success at all. Segments concatenate (a monoid), so a fleet's
 *   consecutive count is the concatenation of its processes' flushes in the
 *   order Redis applies them.
 * - A count window of `windowSize` calls cannot be kept exactly once calls
 *   arrive in batches: `mergeCountWindow` keeps totals, the delta in full and
 *   the older totals scaled down to the room left, so the totals stay at most
 *   `windowSize` calls and the newest outcomes weigh most.
 * - A time window is the engine's ring of buckets, filled with whole deltas
 *   in the bucket of the flush (`addToBuckets`).
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// consecutive failures
// ---------------------------------------------------------------------------

/** A run of outcomes as the consecutive policy sees it. */
export interface Segment {
  /** Failures after the last success (all of them when `allFailed`). */
  readonly trailing: number
  /** No success in the run (an empty run too). */
  readonly allFailed: boolean
}

/** The empty run: the identity of `concat`. */
export const emptySegment: Segment = { trailing: 0, allFailed: true }

/** The run `a` followed by the run `b`. */
export const concat = (a: Segment, b: Segment): Segment =>
  b.allFailed ? { trailing: a.trailing + b.trailing, allFailed: a.allFailed } : b

/** The fleet's consecutive failures after a flush whose run is `delta`. */
export const mergeConsecutive = (consecutive: number, delta: Segment): number =>
  delta.allFailed ? consecutive + delta.trailing : delta.trailing

// ---------------------------------------------------------------------------
// windows
// ---------------------------------------------------------------------------

/** Window totals (fractional once a count window has been scaled). */
export interface Totals {
  readonly calls: number
  readonly failures: number
  readonly slow: number
}

/**
 * A count window after a flush: the delta counts in full (scaled to
 * `windowSize` when it alone overflows), the older totals scaled to the room
 * left. Rates move from the old rate toward the delta's by the delta's share.
 */
export const mergeCountWindow = (window: Totals, delta: Totals, windowSize: number): Totals => {
  const newer = delta.calls > windowSize ? { ...scale(delta, windowSize / delta.calls), calls: windowSize } : delta
  const room = Math.max(0, windowSize - newer.calls)
  const older = window.calls > room ? scale(window, room / window.calls) : window
  return {
    calls: older.calls + newer.calls,
    failures: older.failures + newer.failures,
    slow: older.slow + newer.slow
  }
}

const scale = (t: Totals, k: number): Totals => ({ calls: t.calls * k, failures: t.failures * k, slow: t.slow * k })

/** A time window's ring: bucket `i` holds epoch `epochs[i]` (-1 when empty). */
export interface Buckets {
  readonly epochs: ReadonlyArray<number>
  readonly totals: ReadonlyArray<Totals>
}

/** An empty ring of `windowSize` buckets. */
export const emptyBuckets = (windowSize: number): Buckets => ({
  epochs: Array.from({ length: windowSize }, () => -1),
  totals: Array.from({ length: windowSize }, () => ({ calls: 0, failures: 0, slow: 0 }))
})

/**
 * Adds a delta to the bucket of `now` (bucket epochs are `floor(now /
 * bucketMillis)`), after dropping the buckets that fell out of the window.
 */
export const addToBuckets = (
  buckets: Buckets,
  delta: Totals,
  now: number,
  windowSize: number,
  bucketMillis: number
): Buckets => {
  const epoch = Math.floor(now / bucketMillis)
  const oldest = epoch - windowSize + 1
  const epochs = [...buckets.epochs]
  const totals = [...buckets.totals]
  for (let i = 0; i < windowSize; i++) {
    const e = epochs[i] ?? -1
    if (e >= 0 && (e < oldest || e > epoch)) {
      epochs[i] = -1
      totals[i] = { calls: 0, failures: 0, slow: 0 }
    }
  }
  const i = epoch % windowSize
  const held =
    epochs[i] === epoch ? (totals[i] ?? { calls: 0, failures: 0, slow: 0 }) : { calls: 0, failures: 0, slow: 0 }
  epochs[i] = epoch
  totals[i] = {
    calls: held.calls + delta.calls,
    failures: held.failures + delta.failures,
    slow: held.slow + delta.slow
  }
  return { epochs, totals }
}

/** The totals of the buckets inside the window at `now`. */
export const bucketTotals = (buckets: Buckets, now: number, windowSize: number, bucketMillis: number): Totals => {
  const epoch = Math.floor(now / bucketMillis)
  const oldest = epoch - windowSize + 1
  let calls = 0
  let failures = 0
  let slow = 0
  for (let i = 0; i < buckets.epochs.length; i++) {
    const e = buckets.epochs[i] ?? -1
    if (e < oldest || e > epoch) continue
    const t = buckets.totals[i]
    if (t === undefined) continue
    calls += t.calls
    failures += t.failures
    slow += t.slow
  }
  return { calls, failures, slow }
}

// ---------------------------------------------------------------------------
// tripping
// ---------------------------------------------------------------------------

/** The policies the fleet evaluates (the engine's, without half-open settings). */
export interface Policies {
  readonly consecutiveFailures: number
  readonly failureRateThreshold: number
  readonly slowCallRateThreshold: number
  readonly minimumCalls: number
}

/** Whether the fleet's view trips a policy: the engine's `trips` over merged data. */
export const trips = (totals: Totals, consecutive: number, policies: Policies): boolean => {
  if (policies.consecutiveFailures > 0 && consecutive >= policies.consecutiveFailures) return true
  if (totals.calls < policies.minimumCalls) return false
  if (
    policies.failureRateThreshold > 0 &&
    totals.failures > 0 &&
    totals.failures / totals.calls >= policies.failureRateThreshold
  ) {
    return true
  }
  return (
    policies.slowCallRateThreshold > 0 &&
    totals.slow > 0 &&
    totals.slow / totals.calls >= policies.slowCallRateThreshold
  )
}

// ---------------------------------------------------------------------------
// the sync script
// ---------------------------------------------------------------------------

/** Fields per key in the sync script's arguments. */
export const reportFields = 12

/** Fields per key in the sync script's reply. */
export const replyFields = 7

/**
 * One sync of one breaker: every reported key's deltas merged, its fleet
 * state decided, the fleet's answer for each, and the other keys that changed
 * since the caller's last sync.
 *
 * KEYS: [1] the breaker's change log (sorted set: key -> Redis ms of its last
 * fleet change), [2] unused (the breaker's tag, for routing).
 *
 * ARGV: base, instance, quorum (0: counts mode), voteTtl, lease, idleTtl,
 * since, maxChanges, consecutiveFailures, failureRateThreshold,
 * slowCallRateThreshold, windowType, windowSize, bucketMillis, minimumCalls,
 * then per key (`reportFields`): key, knownGeneration ("0": never synced),
 * calls, failures, slow, trailing, allFailed, localState, changed,
 * localOpenMillis, openMillisNext, openMillisFirst.
 *
 * Reply: { now, then per key (`replyFields`): key, state, generation,
 * retryAfterMillis, holder (1: the caller holds the probe lease), openings,
 * lastOpenMillis }.
 *
 * The fleet hash (`base .. key`): state, gen, openUntil, openings, lastOpen,
 * resetAt, holder, leaseUntil, consec, and the window: c, f, s (count) or
 * e<i>, c<i>, f<i>, s<i> (time). Votes (quorum mode): the sorted set
 * `base .. key .. ":v"` of instance -> expiry.
 */
export const syncLua = `
local changes = KEYS[1]
local base = ARGV[1]
local me = ARGV[2]
local quorum = arg(3, "quorum")
local voteTtl = arg(4, "voteTtl")
local lease = arg(5, "lease")
local idleTtl = arg(6, "idleTtl")
local since = arg(7, "since")
local maxChanges = arg(8, "maxChanges")
local consecutiveFailures = arg(9, "consecutiveFailures")
local failureRateThreshold = arg(10, "failureRateThreshold")
local slowCallRateThreshold = arg(11, "slowCallRateThreshold")
local windowType = ARGV[12]
local windowSize = arg(13, "windowSize")
local bucketMillis = arg(14, "bucketMillis")
local minimumCalls = arg(15, "minimumCalls")
local first = 16
local fields = ${reportFields}
if (#ARGV - first + 1) % fields ~= 0 then error("bad argument reports: " .. tostring(#ARGV - first + 1)) end
if windowType ~= "count" and windowType ~= "time" then error("bad argument windowType: " .. tostring(windowType)) end
if windowSize < 1 or bucketMillis < 1 then error("bad argument windowSize: " .. tostring(windowSize)) end
for i = first, #ARGV, fields do
  for k = 2, fields - 1 do
    if k ~= 1 and k ~= 7 and k ~= 8 then arg(i + k, "report") end
  end
  local st = ARGV[i + 7]
  if st ~= "Closed" and st ~= "Open" and st ~= "HalfOpen" and st ~= "Disabled" and st ~= "ForcedOpen" and st ~= "MetricsOnly" then
    error("bad argument localState: " .. tostring(st))
  end
end

local function load(h)
  local raw = redis.call("HGETALL", h)
  local f = {}
  for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
  return f
end

-- the window totals (mergeCountWindow / bucketTotals)
local function totals(f)
  if windowType == "count" then
    return tonumber(f.c) or 0, tonumber(f.f) or 0, tonumber(f.s) or 0
  end
  local epoch = math.floor(now / bucketMillis)
  local oldest = epoch - windowSize + 1
  local c, fl, s = 0, 0, 0
  for i = 0, windowSize - 1 do
    local e = tonumber(f["e" .. i]) or -1
    if e >= oldest and e <= epoch then
      c = c + (tonumber(f["c" .. i]) or 0)
      fl = fl + (tonumber(f["f" .. i]) or 0)
      s = s + (tonumber(f["s" .. i]) or 0)
    end
  end
  return c, fl, s
end

-- the run followed by a flush (mergeConsecutive)
local function mergeConsecutive(consec, trailing, allFailed)
  if allFailed then return consec + trailing end
  return trailing
end

local function mergeWindow(f, calls, failures, slow)
  if windowType == "count" then
    -- mergeCountWindow: the delta in full, the older totals scaled to the room left
    local c, fl, s = calls, failures, slow
    if c > windowSize then
      local k = windowSize / c
      c, fl, s = windowSize, fl * k, s * k
    end
    local room = math.max(0, windowSize - c)
    local oc, of, os = tonumber(f.c) or 0, tonumber(f.f) or 0, tonumber(f.s) or 0
    if oc > room then
      local k = 0
      if oc > 0 then k = room / oc end
      oc, of, os = oc * k, of * k, os * k
    end
    f.c, f.f, f.s = num(oc + c), num(of + fl), num(os + s)
    return
  end
  -- addToBuckets: drop buckets out of the window, add to the bucket of now
  local epoch = math.floor(now / bucketMillis)
  local oldest = epoch - windowSize + 1
  for i = 0, windowSize - 1 do
    local e = tonumber(f["e" .. i]) or -1
    if e >= 0 and (e < oldest or e > epoch) then
      f["e" .. i], f["c" .. i], f["f" .. i], f["s" .. i] = "-1", "0", "0", "0"
    end
  end
  local i = epoch % windowSize
  if tonumber(f["e" .. i]) ~= epoch then
    f["e" .. i], f["c" .. i], f["f" .. i], f["s" .. i] = int(epoch), "0", "0", "0"
  end
  f["c" .. i] = num((tonumber(f["c" .. i]) or 0) + calls)
  f["f" .. i] = num((tonumber(f["f" .. i]) or 0) + failures)
  f["s" .. i] = num((tonumber(f["s" .. i]) or 0) + slow)
end

local function resetWindow(f)
  f.consec = "0"
  if windowType == "count" then
    f.c, f.f, f.s = "0", "0", "0"
  else
    for i = 0, windowSize - 1 do
      f["e" .. i], f["c" .. i], f["f" .. i], f["s" .. i] = "-1", "0", "0", "0"
    end
  end
end

-- trips: the engine's policies over the fleet's data
local function trips(f)
  local consec = tonumber(f.consec) or 0
  if consecutiveFailures > 0 and consec >= consecutiveFailures then return true end
  local c, fl, s = totals(f)
  if c < minimumCalls or c <= 0 then return false end
  if failureRateThreshold > 0 and fl > 0 and fl / c >= failureRateThreshold then return true end
  return slowCallRateThreshold > 0 and s > 0 and s / c >= slowCallRateThreshold
end

local function open(f, openMillis)
  f.state = "Open"
  f.gen = nextGeneration(f.gen)
  f.openUntil = int(now + openMillis)
  f.lastOpen = num(openMillis)
  f.openings = int((tonumber(f.openings) or 0) + 1)
  f.holder = ""
  f.leaseUntil = "0"
  resetWindow(f)
end

local function close(f)
  f.state = "Closed"
  f.gen = nextGeneration(f.gen)
  f.resetAt = int(now + (tonumber(f.lastOpen) or 0))
  f.holder = ""
  f.leaseUntil = "0"
  resetWindow(f)
end

local function reply(out, key, f)
  local state = f.state or "Closed"
  local retry = 0
  if state == "Open" then retry = (tonumber(f.openUntil) or 0) - now end
  if state == "HalfOpen" then retry = (tonumber(f.leaseUntil) or 0) - now end
  local holder = "0"
  if state == "HalfOpen" and f.holder == me then holder = "1" end
  out[#out + 1] = key
  out[#out + 1] = state
  out[#out + 1] = f.gen or "0"
  out[#out + 1] = int(math.max(0, retry))
  out[#out + 1] = holder
  out[#out + 1] = f.openings or "0"
  out[#out + 1] = f.lastOpen or "0"
end

local out = { int(now) }
local reported = {}
for i = first, #ARGV, fields do
  local key = ARGV[i]
  reported[key] = true
  local h = base .. key
  local f = load(h)
  -- a key the fleet has no state for (new, expired, or Redis lost it) has nothing to fence against
  local created = f.state == nil
  if created then
    f.state = "Closed"
    f.gen = nextGeneration(0)
  end
  local before = f.gen
  local known = ARGV[i + 1]
  local fresh = created or known == f.gen or known == "0"
  local calls, failures, slow = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local trailing, allFailed = tonumber(ARGV[i + 5]), ARGV[i + 6] == "1"
  local localState, changed = ARGV[i + 7], ARGV[i + 8] == "1"
  local localOpen = tonumber(ARGV[i + 9])
  local openNext, openFirst = tonumber(ARGV[i + 10]), tonumber(ARGV[i + 11])

  -- a probe lease whose holder went quiet is free again
  if f.state == "HalfOpen" and (tonumber(f.leaseUntil) or 0) <= now then f.holder = "" end

  if fresh and f.state == "Closed" then
    -- from Closed, a backoff whose reset time has passed starts again
    local nextOpen = openNext
    if (tonumber(f.openings) or 0) > 0 and now >= (tonumber(f.resetAt) or 0) then
      f.openings = "0"
      nextOpen = openFirst
    end
    if calls > 0 then
      f.consec = int(mergeConsecutive(tonumber(f.consec) or 0, trailing, allFailed))
      mergeWindow(f, calls, failures, slow)
    end
    if quorum <= 0 then
      if changed and localState == "Open" then
        open(f, math.max(localOpen, 0))
      elseif trips(f) then
        open(f, nextOpen)
      end
    else
      local votes = h .. ":v"
      redis.call("ZREMRANGEBYSCORE", votes, "-inf", now)
      if localState == "Open" or localState == "HalfOpen" then
        redis.call("ZADD", votes, now + voteTtl, me)
      else
        redis.call("ZREM", votes, me)
      end
      if redis.call("ZCARD", votes) >= quorum then
        open(f, nextOpen)
        redis.call("DEL", votes)
      else
        redis.call("PEXPIRE", votes, voteTtl)
      end
    end
  elseif fresh and f.state == "HalfOpen" and f.holder == me then
    -- the lease holder's probes decided, or it keeps probing under its lease
    if changed and localState == "Closed" then
      close(f)
    elseif changed and localState == "Open" then
      open(f, math.max(localOpen, 0))
    else
      f.leaseUntil = int(now + lease)
    end
  end

  -- an Open key whose time is up half-opens with the caller as the one prober,
  -- as does a HalfOpen key whose lease ran out
  if (f.state == "Open" and now >= (tonumber(f.openUntil) or 0)) or (f.state == "HalfOpen" and f.holder == "") then
    f.state = "HalfOpen"
    f.gen = nextGeneration(f.gen)
    f.holder = me
    f.leaseUntil = int(now + lease)
  end

  local flat = {}
  for k, v in pairs(f) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  redis.call("HSET", h, unpack(flat))
  local keep = idleTtl
  if f.state == "Open" then keep = keep + math.max(0, (tonumber(f.openUntil) or 0) - now) end
  if f.state == "HalfOpen" then keep = keep + lease end
  redis.call("PEXPIRE", h, math.max(1, math.ceil(keep)))
  if f.gen ~= before then redis.call("ZADD", changes, now, key) end
  reply(out, key, f)
end

-- the change log: keys whose fleet state changed since the caller's last sync
redis.call("ZREMRANGEBYSCORE", changes, "-inf", now - math.max(idleTtl, 60000))
if maxChanges > 0 then
  local changed = redis.call("ZRANGEBYSCORE", changes, int(since), "+inf", "LIMIT", 0, maxChanges)
  for _, key in ipairs(changed) do
    if not reported[key] then
      local f = load(base .. key)
      if f.state ~= nil then reply(out, key, f) end
    end
  end
end
redis.call("PEXPIRE", changes, math.max(idleTtl, 60000))
return out
`
