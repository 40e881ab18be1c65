/**
 * The Lua of the Redis bulkhead store (`RedisBulkhead.ts`): a key's permits
 * as named leases in one sorted set, `<prefix>{<bulkhead>:<key>}`, each
 * member `<permit>|<cost>` scored by when its lease runs out (Redis `TIME`,
 * milliseconds).
 *
 * - A lease is live while its score is above now; one that ran out is
 *   dropped by the next acquisition (its permits come back), and is never
 *   renewed or released again: the permit's name fences it.
 * - The set expires with its last lease, so a key nobody uses leaves nothing.
 * - Every script checks its arguments before it writes, and answers a bad
 *   one with an error naming it.
 *
 * @internal
 */
import * as Redis from "effect/persistence/Redis"
import { asFunction, definitions, perCall } from "./lua.ts"

/** Functions every script defines (a Redis function library, once). */
const bulkheadDefinitions = `${definitions}
-- a member's cost: what follows its last "|"
local function costOf(member)
  local cost = tonumber(string.match(member, "|(%d+)$"))
  return cost or 1
end

-- the permits held by the live leases (score above now)
local function liveHeld(key, now)
  local held = 0
  for _, member in ipairs(redis.call("ZRANGEBYSCORE", key, "(" .. int(now), "+inf")) do
    held = held + costOf(member)
  end
  return held
end

-- the set lives as long as its longest lease
local function expireWithLeases(key)
  local last = redis.call("ZRANGE", key, -1, -1, "WITHSCORES")
  if last[2] then redis.call("PEXPIREAT", key, int(tonumber(last[2]) + 1)) end
end
`

/** Per call (they read `ARGV`, a function's argument): `count(i, name)` and `memberArg(i)`. */
const argumentsLua = `
-- a positive integer argument, or an error naming it
local function count(i, name)
  local n = arg(i, name)
  if n < 1 or n ~= math.floor(n) or n == math.huge then error("bad argument " .. name .. ": " .. tostring(ARGV[i])) end
  return n
end

-- a lease's member, "<permit>|<cost>", or an error
local function memberArg(i)
  local member = ARGV[i]
  if member == nil or not string.find(member, "|%d+$") then error("bad argument permit: " .. tostring(member)) end
  return member
end
`

type Args = ReadonlyArray<string>

const script = <Result>(body: string) =>
  asFunction(
    Redis.script((key: string, args: Args) => [key, ...args], {
      numberOfKeys: 1,
      lua: `${bulkheadDefinitions}${perCall}${argumentsLua}${body}`
    }).withReturnType<Result>(),
    bulkheadDefinitions,
    `${perCall}${argumentsLua}${body}`
  )

/**
 * acquire(member, cost, limit, leaseMillis) → { granted (0 or 1), held }:
 * drops the leases that ran out, then grants `member` a lease when the live
 * ones leave room for `cost` under `limit`; `held` is the permits held after.
 * A member already live is granted again, its lease unchanged.
 */
export const acquire = script<readonly [granted: number, held: number]>(`
local key = KEYS[1]
local member = memberArg(1)
local cost = count(2, "cost")
local limit = count(3, "limit")
local lease = count(4, "leaseMillis")
if cost ~= costOf(member) then error("bad argument cost: " .. ARGV[2]) end
redis.call("ZREMRANGEBYSCORE", key, "-inf", int(now))
local held = liveHeld(key, now)
if redis.call("ZSCORE", key, member) then return { 1, held } end
if held + cost > limit then return { 0, held } end
redis.call("ZADD", key, int(now + lease), member)
expireWithLeases(key)
return { 1, held + cost }
`)

/**
 * renew(member, leaseMillis) → 1 when the lease was live and now runs out
 * `leaseMillis` from now; 0 when it had run out or was released (then it is
 * gone for good: a lease is never brought back).
 */
export const renew = script<number>(`
local key = KEYS[1]
local member = memberArg(1)
local lease = count(2, "leaseMillis")
local score = redis.call("ZSCORE", key, member)
if not score then return 0 end
if tonumber(score) <= now then
  redis.call("ZREM", key, member)
  return 0
end
redis.call("ZADD", key, "XX", int(now + lease), member)
expireWithLeases(key)
return 1
`)

/**
 * release(member) → 1 when the lease was live (its permits are given back
 * now); 0 when it had run out (given back then) or was released already.
 */
export const release = script<number>(`
local key = KEYS[1]
local member = memberArg(1)
local score = redis.call("ZSCORE", key, member)
if not score then return 0 end
redis.call("ZREM", key, member)
if tonumber(score) <= now then return 0 end
return 1
`)

/** held() → the permits held by the live leases of the key. */
export const held = script<number>(`
return liveHeld(KEYS[1], now)
`)
