/**
 * The circuit breaker's decision logic in Lua: a port of
 * `@effect-resilience/core`'s `internal/circuitBreaker.ts`, keeping its
 * functions' names, order and comments, run atomically inside Redis.
 *
 * Layout: every key of one breaker shares the breaker's hash tag, so one
 * script can touch a circuit and the breaker's index, also on Redis Cluster.
 *
 * - `KEYS[1]`: the circuit, a hash (see `load`);
 * - `KEYS[2]`: the index, a sorted set of the breaker's keys scored by the
 *   time they were last used (for `maxKeys`, idle eviction, export and size);
 * - circuit keys are `base .. key`, `base` (a setting) ending in the tag.
 *
 * **Settings.** `ARGV[1]` of every call is the breaker's settings as one
 * text (`settingsText`: the engine's `Config`, the store's idle time to
 * live, maxKeys, probe lease, initial state and key base), made once per
 * breaker by the client. A Redis function library parses a text once and
 * keeps it by the text (at most 1,000), with what every call would compute
 * again (the touch interval, the index's TTL); as a script, each call parses
 * its own, in one pattern match.
 *
 * **Cost.** A call to a closed circuit does as little as it can: an
 * admission reads three fields (`s`, `g`, `t`) and answers the generation
 * alone; a record of an outcome that changes no state reads the circuit into
 * one reused table, writes back only its numbers and window (`n`, `r` or
 * `b`) and refreshes no TTL (the index touch, at most every `touchEvery`,
 * does). Replies are integers where exact.
 *
 * One difference from the in-process engine: an opening needs the duration
 * of the n-th consecutive opening, which the breaker computes (a `Schedule`,
 * jitter). A script that must open a circuit and was not handed the duration
 * for that n answers `n` before writing anything, and the caller runs it
 * again with the duration. Openings are rare, so the second round trip is
 * too.
 *
 * Probes hold a lease: a process that dies while probing never records, so
 * once no probe was admitted for `lease` milliseconds, the in-flight probes
 * are written off (a new generation fences their late outcomes) and their
 * slots freed.
 *
 * @internal
 */
import type { CircuitBreaker } from "@effect-resilience/core"
import { definitions as luaDefinitions, numberArg } from "./lua.ts"

/** The engine's `Config` as the first 13 settings, in the order `parseSettings` reads them. */
export const configArgs = (config: CircuitBreaker.CircuitsOptions["config"]): ReadonlyArray<string> => [
  numberArg(config.consecutiveFailures),
  numberArg(config.failureRateThreshold),
  numberArg(config.slowCallRateThreshold),
  numberArg(config.slowCallMillis),
  config.windowType,
  numberArg(config.windowSize),
  numberArg(config.bucketMillis),
  numberArg(config.minimumCalls),
  numberArg(config.halfOpenPermittedCalls),
  numberArg(config.halfOpenSuccessesToClose),
  numberArg(config.halfOpenSuccessRate),
  numberArg(config.halfOpenMaxMillis),
  numberArg(config.maxOpenMillis)
]

/** The store's side of a breaker's settings. */
export interface StoreSettings {
  readonly idleMillis: number
  readonly maxKeys: number
  readonly leaseMillis: number
  /** Prepended to a key to make its circuit's Redis key (ends in the breaker's hash tag). */
  readonly base: string
  readonly initialState: CircuitBreaker.CircuitsOptions["initialState"]
}

/**
 * A breaker's settings as `ARGV[1]` of every call: the config, then idle
 * time to live, maxKeys, probe lease (ms) and initial state, each followed by
 * "|" (none of them holds one), then the key base (which may hold anything).
 * A library parses it once (one pattern match) and keeps it by its text.
 */
export const settingsText = (config: CircuitBreaker.CircuitsOptions["config"], store: StoreSettings): string =>
  `${[
    ...configArgs(config),
    numberArg(store.idleMillis),
    numberArg(store.maxKeys),
    numberArg(store.leaseMillis),
    store.initialState
  ].join("|")}|${store.base}`

/** The verdicts as a full admission reply numbers them (1-based, as Lua counts). */
export const verdictCodes: ReadonlyArray<CircuitBreaker.Admission["verdict"]> = [
  "Admit",
  "Probe",
  "RejectOpen",
  "RejectHalfOpen",
  "RejectForced"
]

/**
 * The variables every call sets before it uses the engine (declared once, so
 * the engine's functions can be defined once: as a Redis function library,
 * when it loads), the settings' parser and its cache.
 */
const declarations = `
local config, store, initialState, index, now, nowMicros, openN, openMillisGiven
-- fencing tokens never repeat, even after a key expired and came back
local function nextGeneration(current)
  return int(math.max((tonumber(current) or 0) + 1, nowMicros))
end
-- v as a number ("inf" is infinity), or an error naming it.
local function numberOf(v, name)
  local n = v == "inf" and math.huge or tonumber(v)
  if n == nil or n ~= n then error("bad argument " .. name .. ": " .. tostring(v)) end
  return n
end

local MANUAL = { Closed = true, Disabled = true, ForcedOpen = true, MetricsOnly = true }

-- A breaker's settings text (see settingsText): 17 values, each followed by "|", then the key base.
local SETTINGS = "^${"([^|]*)|".repeat(17)}(.*)$"

-- A breaker's settings, parsed from its text and checked before anything
-- is written; with what every call would compute again.
local parsedSettings, parsedCount = {}, 0
local function parseSettings(text)
  local v1, v2, v3, v4, windowType, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, initial, base =
    string.match(text, SETTINGS)
  if base == nil then error("bad argument settings: " .. text) end
  local cfg = {
    consecutiveFailures = numberOf(v1, "consecutiveFailures"),
    failureRateThreshold = numberOf(v2, "failureRateThreshold"),
    slowCallRateThreshold = numberOf(v3, "slowCallRateThreshold"),
    slowCallMillis = numberOf(v4, "slowCallMillis"),
    windowType = windowType,
    windowSize = numberOf(v6, "windowSize"),
    bucketMillis = numberOf(v7, "bucketMillis"),
    minimumCalls = numberOf(v8, "minimumCalls"),
    halfOpenPermittedCalls = numberOf(v9, "halfOpenPermittedCalls"),
    halfOpenSuccessesToClose = numberOf(v10, "halfOpenSuccessesToClose"),
    halfOpenSuccessRate = numberOf(v11, "halfOpenSuccessRate"),
    halfOpenMaxMillis = numberOf(v12, "halfOpenMaxMillis"),
    maxOpenMillis = numberOf(v13, "maxOpenMillis")
  }
  if windowType ~= "count" and windowType ~= "time" then error("bad argument windowType") end
  if cfg.windowSize < 1 or cfg.bucketMillis <= 0 then error("bad argument windowSize/bucketMillis") end
  if not MANUAL[initial] then error("bad argument initialState: " .. tostring(initial)) end
  local idleMillis = numberOf(v14, "idleMillis")
  local leaseMillis = numberOf(v16, "leaseMillis")
  local settings = {
    config = cfg,
    store = {
      idleMillis = idleMillis,
      maxKeys = numberOf(v15, "maxKeys"),
      leaseMillis = leaseMillis,
      base = base,
      -- where a key's name starts in its circuit's Redis key
      nameFrom = #base + 1,
      -- a circuit's index score moves at most this often (its TTL with it)
      touchEvery = math.max(1, math.floor(idleMillis / 8)),
      -- the index lives as long as a circuit can
      indexMillis = idleMillis + cfg.maxOpenMillis + leaseMillis
    },
    initialState = initial
  }
  if parsedCount >= 1000 then parsedSettings, parsedCount = {}, 0 end
  parsedSettings[text] = settings
  parsedCount = parsedCount + 1
  return settings
end
`

/**
 * Each call: the time, and the breaker's settings (ARGV[1]), parsed or as
 * kept. Defines `initialState` too.
 */
export const perCall = `
local time = redis.call("TIME")
nowMicros = tonumber(time[1]) * 1000000 + tonumber(time[2])
now = math.floor(nowMicros / 1000)
local settings = parsedSettings[ARGV[1]] or parseSettings(ARGV[1])
config, store, index = settings.config, settings.store, KEYS[2]
initialState = settings.initialState
`

/** `openN` and `openMillisGiven`: the opening a caller computed, from ARGV[at] and ARGV[at + 1] (absent: none). */
const openingAt = (at: number) => `
if ARGV[${at}] then
  openN, openMillisGiven = numberOf(ARGV[${at}], "openN"), numberOf(ARGV[${at + 1}], "openMillis")
else
  openN, openMillisGiven = 0, 0
end
`

/**
 * Defines the settings' parser, `load`, `save`, `makeRoom`, the engine
 * functions and the operations (`admitCall`, `recordCall`, `forceCall`),
 * over the variables `perCall` sets.
 */
export const definitions = `${luaDefinitions}${declarations}
-- ---------------------------------------------------------------------------
-- the circuit
-- ---------------------------------------------------------------------------

local function make(generation)
  return { state = "Closed", generation = generation, consecutive = 0, ringNext = 0, ringLength = 0,
    calls = 0, failures = 0, slow = 0, openedAt = 0, openUntil = 0, consecutiveOpenings = 0, lastOpenMillis = 0,
    backoffResetAt = 0, halfOpenSince = 0, probesAdmitted = 0, probesInFlight = 0, probeSuccesses = 0,
    probeFailures = 0, leaseUntil = 0, touchedAt = 0 }
end

-- flags of a ring entry: 1 = failure, 2 = slow, as one digit
local function flagsOf(failed, slow) return (failed and 1 or 0) + (slow and 2 or 0) end
local FLAG_DIGITS = { "0", "1", "2", "3" }

-- ---------------------------------------------------------------------------
-- windows
-- ---------------------------------------------------------------------------

-- Empties the window and the consecutive count.
local function resetWindow(c)
  c.consecutive = 0
  c.ringNext = 0
  c.ringLength = 0
  if c.ring then c.ring = string.rep("0", #c.ring) end
  if c.bucketEpoch then
    for i = 1, #c.bucketEpoch do
      c.bucketEpoch[i] = -1
      c.bucketCalls[i] = 0
      c.bucketFailures[i] = 0
      c.bucketSlow[i] = 0
    end
  end
  c.calls = 0
  c.failures = 0
  c.slow = 0
end

-- Drops the time buckets that fell out of the window at now.
local function expireBuckets(c, now)
  if not c.bucketEpoch then return end
  local oldest = math.floor(now / config.bucketMillis) - config.windowSize + 1
  for i = 1, #c.bucketEpoch do
    local e = c.bucketEpoch[i]
    if e >= 0 and e < oldest then
      c.calls = c.calls - c.bucketCalls[i]
      c.failures = c.failures - c.bucketFailures[i]
      c.slow = c.slow - c.bucketSlow[i]
      c.bucketEpoch[i] = -1
      c.bucketCalls[i] = 0
      c.bucketFailures[i] = 0
      c.bucketSlow[i] = 0
    end
  end
end

-- Adds one counted outcome to the window.
local function pushWindow(c, failed, slow, now)
  if config.windowType == "count" then
    if not c.ring or #c.ring ~= config.windowSize then
      c.ring = string.rep("0", config.windowSize)
      c.ringNext = 0
      c.ringLength = 0
      c.calls = 0
      c.failures = 0
      c.slow = 0
    end
    local at = c.ringNext + 1
    if c.ringLength == config.windowSize then
      local evicted = string.byte(c.ring, at) - 48
      c.calls = c.calls - 1
      if evicted % 2 == 1 then c.failures = c.failures - 1 end
      if evicted >= 2 then c.slow = c.slow - 1 end
    else
      c.ringLength = c.ringLength + 1
    end
    c.ring = string.sub(c.ring, 1, at - 1) .. FLAG_DIGITS[flagsOf(failed, slow) + 1] .. string.sub(c.ring, at + 1)
    c.ringNext = (at == config.windowSize) and 0 or at
  else
    if not c.bucketEpoch or #c.bucketEpoch ~= config.windowSize then
      c.bucketEpoch, c.bucketCalls, c.bucketFailures, c.bucketSlow = {}, {}, {}, {}
      for i = 1, config.windowSize do
        c.bucketEpoch[i] = -1
        c.bucketCalls[i] = 0
        c.bucketFailures[i] = 0
        c.bucketSlow[i] = 0
      end
      c.calls = 0
      c.failures = 0
      c.slow = 0
    end
    expireBuckets(c, now)
    local epoch = math.floor(now / config.bucketMillis)
    local i = (epoch % config.windowSize) + 1
    if c.bucketEpoch[i] ~= epoch then
      -- the slot held an older epoch inside the window only if time ran backwards; drop it
      c.calls = c.calls - c.bucketCalls[i]
      c.failures = c.failures - c.bucketFailures[i]
      c.slow = c.slow - c.bucketSlow[i]
      c.bucketEpoch[i] = epoch
      c.bucketCalls[i] = 0
      c.bucketFailures[i] = 0
      c.bucketSlow[i] = 0
    end
    c.bucketCalls[i] = c.bucketCalls[i] + 1
    if failed then c.bucketFailures[i] = c.bucketFailures[i] + 1 end
    if slow then c.bucketSlow[i] = c.bucketSlow[i] + 1 end
  end
  c.calls = c.calls + 1
  if failed then c.failures = c.failures + 1 end
  if slow then c.slow = c.slow + 1 end
end

-- Whether any trip policy trips.
local function trips(c)
  if config.consecutiveFailures > 0 and c.consecutive >= config.consecutiveFailures then return true end
  if c.calls < config.minimumCalls then return false end
  if config.failureRateThreshold > 0 and c.failures > 0 and c.failures / c.calls >= config.failureRateThreshold then
    return true
  end
  return config.slowCallRateThreshold > 0 and c.slow > 0 and c.slow / c.calls >= config.slowCallRateThreshold
end

-- ---------------------------------------------------------------------------
-- transitions (a transition is { from, to, openMillis, consecutiveOpenings })
-- ---------------------------------------------------------------------------

-- Opens the circuit for openMillis. From Closed, a backoff count whose reset
-- deadline has passed starts again at 0 before this opening is counted.
local function open(c, from, openMillis, now)
  if from == "Closed" and c.consecutiveOpenings > 0 and now >= c.backoffResetAt then c.consecutiveOpenings = 0 end
  c.state = "Open"
  c.generation = nextGeneration(c.generation)
  c.openedAt = now
  c.openUntil = now + openMillis
  c.lastOpenMillis = openMillis
  c.consecutiveOpenings = c.consecutiveOpenings + 1
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  resetWindow(c)
  return { from, "Open", openMillis, c.consecutiveOpenings }
end

-- Moves an Open circuit whose time is up to HalfOpen.
local function halfOpen(c, now)
  c.state = "HalfOpen"
  c.generation = nextGeneration(c.generation)
  c.halfOpenSince = now
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  return { "Open", "HalfOpen", 0, c.consecutiveOpenings }
end

-- Closes a HalfOpen circuit; the backoff resets once it stays closed as long as it was last open.
local function close(c, now)
  c.state = "Closed"
  c.generation = nextGeneration(c.generation)
  c.backoffResetAt = now + c.lastOpenMillis
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  resetWindow(c)
  return { "HalfOpen", "Closed", 0, c.consecutiveOpenings }
end

-- The duration of the n-th consecutive opening: the caller's, if it computed
-- it for that n; otherwise nil, and the script asks for it.
local function openMillisFor(n)
  if n == openN then return openMillisGiven end
  return nil
end

local function withHint(openMillis, hintMillis)
  if hintMillis > 0 then return math.max(openMillis, math.min(hintMillis, config.maxOpenMillis)) end
  return openMillis
end

-- Decides whether a call may run; returns verdict, transition (or nil), or
-- "need", n when the duration of an opening is missing.
local function admit(c, now)
  local transition = nil
  if c.state == "Closed" or c.state == "Disabled" or c.state == "MetricsOnly" then return "Admit", nil end
  if c.state == "ForcedOpen" then return "RejectForced", nil end
  if c.state == "Open" then
    if now < c.openUntil then return "RejectOpen", nil end
    transition = halfOpen(c, now)
  elseif c.state == "HalfOpen" then
    if now - c.halfOpenSince >= config.halfOpenMaxMillis then
      local n = c.consecutiveOpenings + 1
      local millis = openMillisFor(n)
      if millis == nil then return "need", n end
      return "RejectOpen", open(c, "HalfOpen", millis, now)
    end
    -- probes whose lease ran out were lost with their process: free their slots
    if c.probesInFlight > 0 and now >= c.leaseUntil then
      c.probesAdmitted = c.probesAdmitted - c.probesInFlight
      c.probesInFlight = 0
      c.generation = nextGeneration(c.generation)
    end
  end
  -- HalfOpen: admit up to the permitted number of probes
  if c.probesAdmitted >= config.halfOpenPermittedCalls then return "RejectHalfOpen", transition end
  c.probesAdmitted = c.probesAdmitted + 1
  c.probesInFlight = c.probesInFlight + 1
  c.leaseUntil = now + store.leaseMillis
  return "Probe", transition
end

-- Applies a call's outcome; returns the transition (or nil), or "need", n.
local function record(c, generation, outcome, durationMillis, hintMillis, now)
  if c.generation ~= generation then return nil end
  local state = c.state
  if state == "Disabled" or state == "ForcedOpen" or state == "Open" then return nil end
  if state == "HalfOpen" then
    if c.probesInFlight > 0 then c.probesInFlight = c.probesInFlight - 1 end
    if outcome == "Ignored" then
      -- an interrupted or ignored probe frees its slot
      c.probesAdmitted = c.probesAdmitted - 1
      return nil
    end
    if outcome == "Success" then c.probeSuccesses = c.probeSuccesses + 1 else c.probeFailures = c.probeFailures + 1 end
    local reopen = false
    if config.halfOpenSuccessRate > 0 then
      local done = c.probeSuccesses + c.probeFailures
      if done < config.halfOpenPermittedCalls then return nil end
      if c.probeSuccesses / done >= config.halfOpenSuccessRate then return close(c, now) end
      reopen = true
    elseif outcome == "Failure" then
      reopen = true
    end
    if reopen then
      local n = c.consecutiveOpenings + 1
      local millis = openMillisFor(n)
      if millis == nil then return "need", n end
      return open(c, "HalfOpen", withHint(millis, hintMillis), now)
    end
    if c.probeSuccesses >= config.halfOpenSuccessesToClose then return close(c, now) end
    return nil
  end
  -- Closed, MetricsOnly
  if outcome == "Ignored" then return nil end
  local failed = outcome == "Failure"
  c.consecutive = failed and c.consecutive + 1 or 0
  pushWindow(c, failed, durationMillis >= config.slowCallMillis, now)
  if state == "MetricsOnly" or not trips(c) then return nil end
  local n = (c.consecutiveOpenings > 0 and now >= c.backoffResetAt) and 1 or c.consecutiveOpenings + 1
  local millis = openMillisFor(n)
  if millis == nil then return "need", n end
  return open(c, "Closed", withHint(millis, hintMillis), now)
end

-- Forces a manual state. Closed resets the circuit (window, probes and
-- backoff); the others keep the window so MetricsOnly keeps measuring.
local function force(c, to, now)
  local from = c.state
  if from == to and to ~= "Closed" then return nil end
  c.state = to
  c.generation = nextGeneration(c.generation)
  c.probesAdmitted = 0
  c.probesInFlight = 0
  c.probeSuccesses = 0
  c.probeFailures = 0
  if to == "Closed" then
    resetWindow(c)
    c.consecutiveOpenings = 0
    c.backoffResetAt = now
    if from == "Closed" then return nil end
  end
  return { from, to, 0, c.consecutiveOpenings }
end

-- Whether the circuit can be dropped by eviction without losing protection.
local function evictable(c)
  return (c.state == "Closed" or c.state == "MetricsOnly" or c.state == "Disabled") and c.probesInFlight == 0
end

-- ---------------------------------------------------------------------------
-- the store: load, save, make room
-- ---------------------------------------------------------------------------

-- A circuit is a hash: "s" (state), "g" (generation), "t" (last index
-- touch), "n" (the numbers, packed doubles: NUMBERS, touchedAt last, as "t"),
-- "r" (the count window's ring of flag digits) and "b" (the time window's
-- buckets, packed doubles: epoch, calls, failures, slow per bucket). An
-- admission to a closed circuit reads three fields; a record unpacks without
-- parsing text.
local NUMBERS = { "consecutive", "ringNext", "ringLength", "calls", "failures", "slow", "openedAt", "openUntil",
  "consecutiveOpenings", "lastOpenMillis", "backoffResetAt", "halfOpenSince", "probesAdmitted", "probesInFlight",
  "probeSuccesses", "probeFailures", "leaseUntil", "touchedAt" }
-- (spelled out: a library's top level runs before the standard libraries can be reached)
local PACKED = "<dddddddddddddddddd"

-- The circuit a call loads into, and its time window's arrays: reused, not
-- made per call (a library's calls run one at a time; a call loads at most
-- one circuit at a time, and makeRoom loads none).
local CIRCUIT = {}
local EPOCH, CALLS, FAILURES, SLOW, PARTS = {}, {}, {}, {}, {}

local function unpackCircuit(c, state, generation, touched, numbers, ring, buckets)
  c.state, c.generation = state, generation
  c.consecutive, c.ringNext, c.ringLength, c.calls, c.failures, c.slow, c.openedAt, c.openUntil,
    c.consecutiveOpenings, c.lastOpenMillis, c.backoffResetAt, c.halfOpenSince, c.probesAdmitted,
    c.probesInFlight, c.probeSuccesses, c.probeFailures, c.leaseUntil = struct.unpack(PACKED, numbers)
  c.touchedAt = tonumber(touched) or 0
  c.ring = ring or nil
  if buckets then
    local size, at = #buckets / 32, 1
    for i = 1, size do
      EPOCH[i], CALLS[i], FAILURES[i], SLOW[i], at = struct.unpack("<dddd", buckets, at)
    end
    for i = #EPOCH, size + 1, -1 do
      EPOCH[i], CALLS[i], FAILURES[i], SLOW[i] = nil, nil, nil, nil
    end
    c.bucketEpoch, c.bucketCalls, c.bucketFailures, c.bucketSlow = EPOCH, CALLS, FAILURES, SLOW
  else
    c.bucketEpoch, c.bucketCalls, c.bucketFailures, c.bucketSlow = nil, nil, nil, nil
  end
  return c
end

-- The circuit of key, in the reused table, or nil.
local function load(key)
  local f = redis.call("HMGET", key, "s", "g", "t", "n", "r", "b")
  if not f[1] or not f[4] then return nil end
  return unpackCircuit(CIRCUIT, f[1], f[2], f[3], f[4], f[5], f[6])
end

-- An Open or probing circuit lives at least until its open time or probe
-- lease is over, plus the idle time. A ForcedOpen circuit is an operator's
-- decision: it never expires.
local function ttlOf(c)
  return store.idleMillis + math.max(0, c.openUntil - now, c.leaseUntil - now)
end

local function packNumbers(c)
  return struct.pack(PACKED, c.consecutive, c.ringNext, c.ringLength, c.calls, c.failures, c.slow, c.openedAt,
    c.openUntil, c.consecutiveOpenings, c.lastOpenMillis, c.backoffResetAt, c.halfOpenSince, c.probesAdmitted,
    c.probesInFlight, c.probeSuccesses, c.probeFailures, c.leaseUntil, c.touchedAt)
end

-- (Re-packing only what changed would cost as much: a Lua string is made,
-- hashed and collected per slice, and the bytes are what costs.)
local function packBuckets(c)
  local epoch, calls, failures, slow = c.bucketEpoch, c.bucketCalls, c.bucketFailures, c.bucketSlow
  local size = #epoch
  for i = 1, size do PARTS[i] = struct.pack("<dddd", epoch[i], calls[i], failures[i], slow[i]) end
  return table.concat(PARTS, "", 1, size)
end

-- Writes c back in one HSET, marking it used in the index at most every
-- touchEvery. whole: every field and the TTL (a new circuit, or one whose
-- state, generation or lease changed); otherwise only what an outcome that
-- changed no state changes — the numbers and the window — and, when it
-- touched the index, "t" and the TTL too.
local HSET_ARGS = {}
local function save(key, c, whole)
  local touched = now - c.touchedAt >= store.touchEvery
  if touched then
    redis.call("ZADD", index, now, string.sub(key, store.nameFrom))
    redis.call("PEXPIRE", index, int(store.indexMillis))
    c.touchedAt = now
  end
  local args, n = HSET_ARGS, 0
  if whole then
    args[1], args[2], args[3], args[4] = "s", c.state, "g", c.generation
    n = 4
  end
  if whole or touched then
    args[n + 1], args[n + 2] = "t", int(c.touchedAt)
    n = n + 2
  end
  args[n + 1], args[n + 2] = "n", packNumbers(c)
  n = n + 2
  if c.ring then
    args[n + 1], args[n + 2] = "r", c.ring
    n = n + 2
  end
  if c.bucketEpoch then
    args[n + 1], args[n + 2] = "b", packBuckets(c)
    n = n + 2
  end
  redis.call("HSET", key, unpack(args, 1, n))
  if not (whole or touched) then return end
  if c.state == "ForcedOpen" then
    redis.call("PERSIST", key)
  else
    redis.call("PEXPIRE", key, int(math.max(1, ttlOf(c))))
  end
end

local function evict(name)
  redis.call("DEL", store.base .. name)
  redis.call("ZREM", index, name)
end

-- Whether the circuit of name may be evicted (see evictable), from its
-- state and probes in flight alone; a missing one may.
local function evictableAt(name)
  local f = redis.call("HMGET", store.base .. name, "s", "n")
  if not f[1] or not f[2] then return true end
  local s = f[1]
  return (s == "Closed" or s == "MetricsOnly" or s == "Disabled") and select(14, struct.unpack(PACKED, f[2])) == 0
end

-- Before a new key: drop idle circuits, then, at maxKeys, the oldest closed
-- ones (at most 64 looked at); if every one looked at is open or probing,
-- the oldest anyway: memory comes first.
local function makeRoom()
  local idle = redis.call("ZRANGEBYSCORE", index, "-inf", "(" .. int(now - store.idleMillis - store.touchEvery),
    "LIMIT", 0, 64)
  for _, name in ipairs(idle) do
    if evictableAt(name) then evict(name) end
  end
  if redis.call("ZCARD", index) < store.maxKeys then return end
  local oldest = redis.call("ZRANGE", index, 0, 63)
  for _, name in ipairs(oldest) do
    if evictableAt(name) then
      evict(name)
      if redis.call("ZCARD", index) < store.maxKeys then return end
    end
  end
  while redis.call("ZCARD", index) >= store.maxKeys do
    local first = redis.call("ZRANGE", index, 0, 0)
    if #first == 0 then return end
    evict(first[1])
  end
end

-- the circuit of key, created if missing; and whether it was
local function loadOrCreate(key)
  local c = load(key)
  if c ~= nil then return c, false end
  redis.call("ZREM", index, string.sub(key, store.nameFrom))
  makeRoom()
  return make(nextGeneration(0)), true
end

-- A number for a reply, exact: an integer reply for a whole number of
-- magnitude below 2^52 other than -0 (ioredis reads integers exactly only
-- that far), else num's string.
local function exact(n)
  if n % 1 == 0 and n < 4503599627370496 and n > -4503599627370496 and (n ~= 0 or 1 / n > 0) then return n end
  return num(n)
end

-- A transition as a reply: { from, to, openMillis, consecutiveOpenings }, or 0 for none.
local function transitionReply(t)
  if t == nil then return 0 end
  return { t[1], t[2], exact(t[3]), t[4] }
end

-- ---------------------------------------------------------------------------
-- the operations
-- ---------------------------------------------------------------------------

local VERDICT_CODES = { Admit = 1, Probe = 2, RejectOpen = 3, RejectHalfOpen = 4, RejectForced = 5 }

-- Admits a call to the circuit of key: its generation (a string) when a
-- closed circuit admits it; otherwise { verdict (verdictCodes' 1-based
-- index), generation, retryAfterMillis, from, to, openMillis,
-- consecutiveOpenings } (from "" for no transition), or n (an integer) when
-- the duration of the n-th opening is needed.
local function admitCall(key)
  -- the hot path: a closed circuit admits on three fields, decoding nothing
  local fast = redis.call("HMGET", key, "s", "g", "t")
  local s = fast[1]
  if s == "Closed" or s == "Disabled" or s == "MetricsOnly" then
    if now - (tonumber(fast[3]) or 0) >= store.touchEvery then
      redis.call("ZADD", index, now, string.sub(key, store.nameFrom))
      redis.call("PEXPIRE", index, int(store.indexMillis))
      redis.call("HSET", key, "t", int(now))
      redis.call("PEXPIRE", key, int(store.idleMillis))
    end
    return fast[2]
  end
  local c, created = loadOrCreate(key)
  if created and initialState ~= "Closed" then force(c, initialState, 0) end
  local verdict, t = admit(c, now)
  if verdict == "need" then return t end
  if created or verdict == "Probe" or verdict == "Admit" or t ~= nil then save(key, c, true) end
  local retryAfter = 0
  if c.state == "Open" then retryAfter = c.openUntil - now
  elseif c.state == "ForcedOpen" then retryAfter = config.maxOpenMillis end
  if t == nil then return { VERDICT_CODES[verdict], c.generation, exact(retryAfter), "", "", 0, 0 } end
  return { VERDICT_CODES[verdict], c.generation, exact(retryAfter), t[1], t[2], exact(t[3]), t[4] }
end

local OUTCOMES = { Success = true, Failure = true, Ignored = true }

-- Records an outcome: 0 (no transition), n (an integer: the duration of
-- the n-th opening is needed) or the transition (see transitionReply). An
-- outcome that changes nothing — stale, or to a circuit that counts none —
-- writes nothing.
local function recordCall(key, generation, outcome, durationMillis, hintMillis)
  if not OUTCOMES[outcome] then error("bad argument outcome") end
  local c = load(key)
  if c == nil or c.generation ~= generation then return 0 end
  local state = c.state
  if state == "Disabled" or state == "ForcedOpen" or state == "Open" then return 0 end
  if outcome == "Ignored" and state ~= "HalfOpen" then return 0 end
  local t, n = record(c, generation, outcome, durationMillis, hintMillis, now)
  if t == "need" then return n end
  save(key, c, t ~= nil)
  return transitionReply(t)
end

-- Forces a manual state on the circuit of key (created if missing): the transition (see transitionReply).
local function forceCall(key, to)
  if not MANUAL[to] then error("bad argument to") end
  local c = loadOrCreate(key)
  local t = force(c, to, now)
  save(key, c, true)
  return transitionReply(t)
end
`

/**
 * admit: ARGV[1] the settings, then (only when asked for) openN, openMillis.
 * → the generation | { verdict, generation, retryAfterMillis, from, to, openMillis, consecutiveOpenings } | n
 * (see `admitCall`)
 */
export const admit = `${perCall}${openingAt(2)}
return admitCall(KEYS[1])
`

/**
 * record: ARGV[1] the settings, then generation, outcome, durationMillis,
 * and (each pair optional) hintMillis, then openN, openMillis.
 * → 0 | n | { from, to, openMillis, consecutiveOpenings } (see `recordCall`)
 */
export const record = `${perCall}${openingAt(6)}
return recordCall(KEYS[1], ARGV[2], ARGV[3], numberOf(ARGV[4], "durationMillis"),
  ARGV[5] and numberOf(ARGV[5], "hintMillis") or 0)
`

/** force: ARGV[1] the settings, ARGV[2] the state. → 0 | { from, to, openMillis, consecutiveOpenings } */
export const force = `${perCall}
return forceCall(KEYS[1], ARGV[2])
`

/**
 * read() → { the circuit as JSON (false when the key is unknown), Redis time
 * in ms }: the reader moves the circuit's times onto its own clock.
 */
export const read = `${perCall}
local c = load(KEYS[1])
if c == nil then return { false, now } end
return { cjson.encode(c), now }
`

/** exportAll() → { name, json, name, json, ... } of every live circuit, least recently used first. */
export const exportAll = `${perCall}
local names = redis.call("ZRANGE", index, 0, -1)
local reply = {}
for _, name in ipairs(names) do
  local c = load(store.base .. name)
  if c ~= nil then
    reply[#reply + 1] = name
    reply[#reply + 1] = cjson.encode(c)
  end
end
return reply
`

/**
 * importAll(name, json, name, json, ...) from ARGV[2]: loads circuits (each
 * with a fresh generation); a new key is skipped once the breaker holds
 * maxKeys circuits. → the number loaded
 */
export const importAll = `${perCall}
local loaded = 0
local i = 2
while ARGV[i] ~= nil do
  local name, json = ARGV[i], ARGV[i + 1]
  local key = store.base .. name
  local exists = redis.call("EXISTS", key) == 1
  if exists or redis.call("ZCARD", index) < store.maxKeys then
    local c = cjson.decode(json)
    for _, field in ipairs(NUMBERS) do c[field] = tonumber(c[field]) or 0 end
    c.generation = nextGeneration(0)
    c.probesAdmitted = 0
    c.probesInFlight = 0
    c.probeSuccesses = 0
    c.probeFailures = 0
    c.leaseUntil = 0
    c.touchedAt = 0
    save(key, c, true)
    loaded = loaded + 1
  end
  i = i + 2
end
return loaded
`

/** size() → the number of live circuits (dropping index entries whose circuit expired). */
export const size = `${perCall}
local stale = redis.call("ZRANGEBYSCORE", index, "-inf", "(" .. int(now - store.idleMillis))
for _, name in ipairs(stale) do
  if redis.call("EXISTS", store.base .. name) == 0 then redis.call("ZREM", index, name) end
end
return redis.call("ZCARD", index)
`
