/**
 * The circuit breaker's decision logic in Lua: a port of
 * `@effect-resilience/core`'s `internal/circuitBreaker.ts`, keeping its
 * functions' names, order and comments, run atomically inside Redis.
 *
 * Layout: every key of one breaker shares the breaker's hash tag, so one
 * script can touch a circuit and the breaker's index, also on Redis Cluster.
 *
 * - `KEYS[1]`: the circuit, a string holding the circuit as JSON;
 * - `KEYS[2]`: the index, a sorted set of the breaker's keys scored by the
 *   time they were last used (for `maxKeys`, idle eviction, export and size);
 * - circuit keys are `base .. key`, `base` (an argument) ending in the tag.
 *
 * One difference from the in-process engine: an opening needs the duration
 * of the n-th consecutive opening, which the breaker computes (a `Schedule`,
 * jitter). A script that must open a circuit and was not handed the duration
 * for that n answers `{ "need", n }` before writing anything, and the caller
 * runs it again with the duration. Openings are rare, so the second round
 * trip is too.
 *
 * Probes hold a lease: a process that dies while probing never records, so
 * once no probe was admitted for `lease` milliseconds, the in-flight probes
 * are written off (a new generation fences their late outcomes) and their
 * slots freed.
 *
 * @internal
 */
import type { CircuitBreaker } from "@effect-resilience/core"
import { argLua, definitions as luaDefinitions, numberArg } from "./lua.ts"

/** The engine's `Config` as the scripts' first 13 arguments, in the order `engine` reads them. */
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

/**
 * The variables every call sets before it uses the engine (declared once, so
 * the engine's functions can be defined once: as a Redis function library,
 * when it loads).
 */
const declarations = `
local config, store, index, touchEvery, now, nowMicros, openN, openMillisGiven
local OPS = 18
-- fencing tokens never repeat, even after a key expired and came back
local function nextGeneration(current)
  return int(math.max((tonumber(current) or 0) + 1, nowMicros))
end
`

/**
 * Each call: the time, the arguments' reader, and the store's settings
 * (ARGV[14..17]: idle time to live, maxKeys, probe lease (ms), key base).
 */
export const perCall = `
local time = redis.call("TIME")
nowMicros = tonumber(time[1]) * 1000000 + tonumber(time[2])
now = math.floor(nowMicros / 1000)
${argLua}store = { idleMillis = arg(14, "idleMillis"), maxKeys = arg(15, "maxKeys"), leaseMillis = arg(16, "leaseMillis"),
  base = ARGV[17] }
index = KEYS[2]
-- a circuit's index score moves at most this often (its TTL with it)
touchEvery = math.max(1, math.floor(store.idleMillis / 8))
`

/** Each call, once past a fast path: the engine's \`Config\` (ARGV[1..13]) and the opening asked for (18, 19). */
export const configHead = `
config = {
  consecutiveFailures = arg(1, "consecutiveFailures"),
  failureRateThreshold = arg(2, "failureRateThreshold"),
  slowCallRateThreshold = arg(3, "slowCallRateThreshold"),
  slowCallMillis = arg(4, "slowCallMillis"),
  windowType = ARGV[5],
  windowSize = arg(6, "windowSize"),
  bucketMillis = arg(7, "bucketMillis"),
  minimumCalls = arg(8, "minimumCalls"),
  halfOpenPermittedCalls = arg(9, "halfOpenPermittedCalls"),
  halfOpenSuccessesToClose = arg(10, "halfOpenSuccessesToClose"),
  halfOpenSuccessRate = arg(11, "halfOpenSuccessRate"),
  halfOpenMaxMillis = arg(12, "halfOpenMaxMillis"),
  maxOpenMillis = arg(13, "maxOpenMillis")
}
if config.windowType ~= "count" and config.windowType ~= "time" then error("bad argument windowType") end
if config.windowSize < 1 or config.bucketMillis <= 0 then error("bad argument windowSize/bucketMillis") end
openN, openMillisGiven = arg(OPS, "openN"), arg(OPS + 1, "openMillis")
`

/**
 * ARGV[1..17]: the engine's \`Config\` (13 values), then idle time to live,
 * maxKeys, probe lease (ms) and the key base. Defines \`config\`, \`load\`,
 * \`save\`, \`makeRoom\` and the engine functions.
 */
export const definitions = `${luaDefinitions}${declarations}
-- ---------------------------------------------------------------------------
-- the circuit
-- ---------------------------------------------------------------------------

local function make(generation)
  return { state = "Closed", generation = generation, consecutive = 0, ringNext = 0, ringLength = 0,
    calls = 0, failures = 0, slow = 0, openedAt = 0, openUntil = 0, consecutiveOpenings = 0, lastOpenMillis = 0,
    backoffResetAt = 0, halfOpenSince = 0, probesAdmitted = 0, probesInFlight = 0, probeSuccesses = 0,
    probeFailures = 0, leaseUntil = 0 }
end

-- flags of a ring entry: 1 = failure, 2 = slow, as one digit
local function flagsOf(failed, slow) return (failed and 1 or 0) + (slow and 2 or 0) end

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
      local evicted = tonumber(string.sub(c.ring, at, at))
      c.calls = c.calls - 1
      if evicted % 2 == 1 then c.failures = c.failures - 1 end
      if evicted >= 2 then c.slow = c.slow - 1 end
    else
      c.ringLength = c.ringLength + 1
    end
    c.ring = string.sub(c.ring, 1, at - 1) .. flagsOf(failed, slow) .. string.sub(c.ring, at + 1)
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
-- touch), "n" (the numbers, packed doubles), "r" (the count window's ring of
-- flag digits) and "b" (the time window's buckets, packed doubles: epoch,
-- calls, failures, slow per bucket). An admission to a closed circuit reads
-- two fields; a record unpacks without parsing text.
local NUMBERS = { "consecutive", "ringNext", "ringLength", "calls", "failures", "slow", "openedAt", "openUntil",
  "consecutiveOpenings", "lastOpenMillis", "backoffResetAt", "halfOpenSince", "probesAdmitted", "probesInFlight",
  "probeSuccesses", "probeFailures", "leaseUntil", "touchedAt" }
-- (spelled out: a library's top level runs before the standard libraries can be reached)
local PACKED = "<dddddddddddddddddd"

local function unpackCircuit(state, generation, numbers, ring, buckets)
  local c = { state = state, generation = generation }
  local values = { struct.unpack(PACKED, numbers) }
  for i, field in ipairs(NUMBERS) do c[field] = values[i] end
  if ring then c.ring = ring end
  if buckets then
    c.bucketEpoch, c.bucketCalls, c.bucketFailures, c.bucketSlow = {}, {}, {}, {}
    local at = 1
    for i = 1, #buckets / 32 do
      c.bucketEpoch[i], c.bucketCalls[i], c.bucketFailures[i], c.bucketSlow[i], at = struct.unpack("<dddd", buckets, at)
    end
  end
  return c
end

local function load(key)
  local f = redis.call("HMGET", key, "s", "g", "n", "r", "b")
  if not f[1] or not f[3] then return nil end
  return unpackCircuit(f[1], f[2], f[3], f[4], f[5])
end

-- An Open or probing circuit lives at least until its open time or probe
-- lease is over, plus the idle time. A ForcedOpen circuit is an operator's
-- decision: it never expires.
local function ttlOf(c)
  return store.idleMillis + math.max(0, c.openUntil - now, c.leaseUntil - now)
end
-- Marks a circuit used in the index, at most every touchEvery; returns the touch time.
local function markUsed(name, touched)
  if now - touched < touchEvery then return touched end
  redis.call("ZADD", index, now, name)
  redis.call("PEXPIRE", index, int(store.idleMillis + config.maxOpenMillis + store.leaseMillis))
  return now
end
local function save(key, name, c)
  local touched = markUsed(name, tonumber(c.touchedAt) or 0)
  c.touchedAt = touched
  local values = {}
  for i, field in ipairs(NUMBERS) do values[i] = tonumber(c[field]) or 0 end
  local fields = { "HSET", key, "s", c.state, "g", c.generation, "t", int(touched), "n", struct.pack(PACKED, unpack(values)) }
  if c.ring then
    fields[#fields + 1] = "r"
    fields[#fields + 1] = c.ring
  end
  if c.bucketEpoch then
    local parts = {}
    for i = 1, #c.bucketEpoch do
      parts[i] = struct.pack("<dddd", c.bucketEpoch[i], c.bucketCalls[i], c.bucketFailures[i], c.bucketSlow[i])
    end
    fields[#fields + 1] = "b"
    fields[#fields + 1] = table.concat(parts)
  end
  redis.call(unpack(fields))
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

-- Before a new key: drop idle circuits, then, at maxKeys, the oldest closed
-- ones (at most 64 looked at); if every one looked at is open or probing,
-- the oldest anyway: memory comes first.
local function makeRoom()
  local idle = redis.call("ZRANGEBYSCORE", index, "-inf", "(" .. int(now - store.idleMillis - touchEvery), "LIMIT", 0, 64)
  for _, name in ipairs(idle) do
    local c = load(store.base .. name)
    if c == nil or evictable(c) then evict(name) end
  end
  if redis.call("ZCARD", index) < store.maxKeys then return end
  local oldest = redis.call("ZRANGE", index, 0, 63)
  for _, name in ipairs(oldest) do
    local c = load(store.base .. name)
    if c == nil or evictable(c) then
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

-- the circuit of key (named name), created if missing; and whether it was
local function loadOrCreate(key, name)
  local c = load(key)
  if c ~= nil then return c, false end
  redis.call("ZREM", index, name)
  makeRoom()
  return make(nextGeneration(0)), true
end

local function transitionReply(t)
  if t == nil then return { "", "", "0", "0" } end
  return { t[1], t[2], num(t[3]), int(t[4]) }
end
`

/**
 * admit(name, openN, openMillis, initialState)
 * → { "ok", verdict, generation, retryAfterMillis, from, to, openMillis, consecutiveOpenings } | { "need", n }
 */
export const admit = `${perCall}
-- the hot path: a closed circuit admits on two fields, decoding nothing
local fast = redis.call("HMGET", KEYS[1], "s", "g", "t")
if fast[1] == "Closed" or fast[1] == "Disabled" or fast[1] == "MetricsOnly" then
  local touched = tonumber(fast[3]) or 0
  if now - touched >= touchEvery then
    redis.call("ZADD", index, now, ARGV[OPS + 2])
    redis.call("PEXPIRE", index, int(store.idleMillis + arg(13, "maxOpenMillis") + store.leaseMillis))
    redis.call("HSET", KEYS[1], "t", int(now))
    redis.call("PEXPIRE", KEYS[1], int(store.idleMillis))
  end
  return { "ok", "Admit", fast[2], "0", "", "", "0", "0" }
end
${configHead}
local name = ARGV[OPS + 2]
local initialState = ARGV[OPS + 3]
local c, created = loadOrCreate(KEYS[1], name)
if created and initialState ~= "Closed" then force(c, initialState, 0) end
local verdict, t = admit(c, now)
if verdict == "need" then return { "need", int(t) } end
if created or verdict == "Probe" or verdict == "Admit" or t ~= nil then save(KEYS[1], name, c) end
local retryAfter = 0
if c.state == "Open" then retryAfter = c.openUntil - now
elseif c.state == "ForcedOpen" then retryAfter = config.maxOpenMillis end
local reply = { "ok", verdict, c.generation, num(retryAfter) }
for _, v in ipairs(transitionReply(t)) do table.insert(reply, v) end
return reply
`

/**
 * record(name, openN, openMillis, generation, outcome, durationMillis, hintMillis)
 * → { "ok", from, to, openMillis, consecutiveOpenings } (from "" for none) | { "need", n }
 */
export const record = `${perCall}${configHead}
local name = ARGV[OPS + 2]
local generation = ARGV[OPS + 3]
local outcome = ARGV[OPS + 4]
local durationMillis = arg(OPS + 5, "durationMillis")
local hintMillis = arg(OPS + 6, "hintMillis")
if outcome ~= "Success" and outcome ~= "Failure" and outcome ~= "Ignored" then error("bad argument outcome") end
local c = load(KEYS[1])
if c == nil then return { "ok", "", "", "0", "0" } end
local t, n = record(c, generation, outcome, durationMillis, hintMillis, now)
if t == "need" then return { "need", int(n) } end
save(KEYS[1], name, c)
local reply = { "ok" }
for _, v in ipairs(transitionReply(t)) do table.insert(reply, v) end
return reply
`

/** force(name, openN, openMillis, to) → { "ok", from, to, openMillis, consecutiveOpenings } */
export const force = `${perCall}${configHead}
local name = ARGV[OPS + 2]
local to = ARGV[OPS + 3]
if to ~= "Closed" and to ~= "Disabled" and to ~= "ForcedOpen" and to ~= "MetricsOnly" then error("bad argument to") end
local c = loadOrCreate(KEYS[1], name)
local t = force(c, to, now)
save(KEYS[1], name, c)
local reply = { "ok" }
for _, v in ipairs(transitionReply(t)) do table.insert(reply, v) end
return reply
`

/**
 * read() → { the circuit as JSON (false when the key is unknown), Redis time
 * in ms }: the reader moves the circuit's times onto its own clock.
 */
export const read = `${perCall}${configHead}
local c = load(KEYS[1])
if c == nil then return { false, now } end
return { cjson.encode(c), now }
`

/** exportAll() → { name, json, name, json, ... } of every live circuit, least recently used first. */
export const exportAll = `${perCall}${configHead}
local names = redis.call("ZRANGE", index, 0, -1)
local reply = {}
for _, name in ipairs(names) do
  local c = load(store.base .. name)
  if c ~= nil then
    table.insert(reply, name)
    table.insert(reply, cjson.encode(c))
  end
end
return reply
`

/**
 * importAll(openN, openMillis, name, json, name, json, ...): loads circuits
 * (each with a fresh generation); a new key is skipped once the breaker
 * holds maxKeys circuits. → the number loaded
 */
export const importAll = `${perCall}${configHead}
local loaded = 0
local i = OPS + 2
while ARGV[i] ~= nil do
  local name, json = ARGV[i], ARGV[i + 1]
  local key = store.base .. name
  local exists = redis.call("EXISTS", key) == 1
  if exists or redis.call("ZCARD", index) < store.maxKeys then
    local c = cjson.decode(json)
    c.generation = nextGeneration(0)
    c.probesAdmitted = 0
    c.probesInFlight = 0
    c.probeSuccesses = 0
    c.probeFailures = 0
    c.leaseUntil = 0
    save(key, name, c)
    loaded = loaded + 1
  end
  i = i + 2
end
return loaded
`

/** size() → the number of live circuits (dropping index entries whose circuit expired). */
export const size = `${perCall}${configHead}
local stale = redis.call("ZRANGEBYSCORE", index, "-inf", "(" .. int(now - store.idleMillis))
for _, name in ipairs(stale) do
  if redis.call("EXISTS", store.base .. name) == 0 then redis.call("ZREM", index, name) end
end
return redis.call("ZCARD", index)
`
