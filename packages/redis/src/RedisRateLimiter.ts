/**
 * A `RateLimiterStore` on Redis or Redis Cluster: limiters in many processes
 * share their counts, so a client's quota holds across the whole fleet.
 *
 * **Details**
 *
 * - Every algorithm of `RateLimiter` runs here, as a Lua port of the
 *   in-process decision logic that reproduces its decisions bit for bit
 *   (checked by differential property tests against a real server).
 * - A decision is one atomic call over all the limits of the key's tier:
 *   several limits pass together or none is charged, as in memory. On Redis
 *   7+ it runs as a Redis function (`FCALL`, the algorithms defined once
 *   when the library loads), elsewhere as a script (`EVALSHA`).
 * - Time comes from Redis `TIME`: processes with skewed clocks share one
 *   timeline.
 * - One hash per limiter and key, `<prefix>{<limiter>:<key>}` (a hash tag:
 *   on a cluster, each key's limits live on one node and keys spread over
 *   all of them); a field per limit, named after its tier, policy and
 *   algorithm, so a changed limit starts from a fresh state. A state that
 *   became idle is deleted at once, and a key expires once every limit's
 *   state would be idle (`maxKeys` bounds only in-process stores: Redis
 *   memory is bounded by these expirations).
 * - Allow and deny lists and held refusals (a key refused until a known
 *   time) are decided in the process, without a round trip.
 * - Concurrency permits are leases: released when the call ends, renewed
 *   every third of `permitLease` (default 30 seconds) while it runs, so the
 *   permits of a process that died come back once their lease runs out.
 * - Store failures follow the limiter's `onStoreError` (`allow` by default).
 *   While Redis is unreachable, ioredis by default queues commands until it
 *   reconnects; connect with `enableOfflineQueue: false` to decide at once.
 *
 * **Example** (One quota for every process)
 *
 * ```ts
 * import { RateLimiter } from "@effect-resilience/core"
 * import { IoRedis, RedisRateLimiter } from "@effect-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const Store = RedisRateLimiter.layerStore({ prefix: "myapp:rl:" }).pipe(
 *   Layer.provide(IoRedis.layer({ host: "127.0.0.1", port: 6379, enableOfflineQueue: false }))
 * )
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({
 *     name: "api",
 *     limits: [{ algorithm: "gcra", limit: 100, window: "1 minute" }]
 *   })
 *   return yield* limiter.consume("client-42")
 * }).pipe(Effect.scoped, Effect.provide(Store))
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { Buffer } from "node:buffer"
import { RateLimiter } from "@effect-resilience/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import { asFunction, clockLua, definitions as luaDefinitions } from "./internal/lua.ts"
import {
  type AlgorithmName,
  algorithmsFor,
  decodeDecision,
  decodeDecisionAt,
  inputArgs,
  type ReplyValue
} from "./internal/rateLimiterLua.ts"

/**
 * Options of the Redis store.
 *
 * @category models
 * @since 0.1.0
 */
export interface StoreOptions {
  /** Prepended to every key (default `"resilience:rl:"`). Braces in it would put every key on one cluster slot. */
  readonly prefix?: string | undefined
  /**
   * How long a call's concurrency permits are held without a renewal (default
   * 30 seconds): the limiter renews them every third of it while the call
   * runs, so only a process that died loses them, this long after.
   */
  readonly permitLease?: Duration.Input | undefined
}

// ---------------------------------------------------------------------------
// scripts
// ---------------------------------------------------------------------------

/**
 * The store's functions, beside the algorithms' (in a Redis function library
 * they are made once, when it loads).
 */
const storeDefinitions = `
-- values[i] as a number ("inf" is infinity), or an error naming it.
local function numberIn(values, i, name)
  local v = values[i]
  if v == "inf" then return math.huge end
  local n = tonumber(v)
  if n == nil or n ~= n then error("bad argument " .. name .. ": " .. tostring(v)) end
  return n
end

-- A tier's text as the client writes it: tokens, each "<byte length>:<token>".
local function tokensOf(text)
  local tokens, at, size = {}, 1, #text
  while at <= size do
    local colon = string.find(text, ":", at, true)
    local length = colon and tonumber(string.sub(text, at, colon - 1))
    if length == nil then error("bad argument tier: " .. text) end
    tokens[#tokens + 1] = string.sub(text, colon + 1, colon + length)
    at = colon + length + 1
  end
  return tokens
end

-- A tier's limits, parsed from its text (ARGV[1]): the permit lease, the
-- limit count, then per limit its algorithm, field and config, arity first.
-- What every call would compute again is computed here: each limit's time
-- to idle (a concurrency limit's is the lease) and those times as PEXPIRE
-- arguments. A library keeps the parsed tiers by their text, so a tier is
-- parsed once (as a script, every call parses its own). At most 1,000 kept.
local parsedTiers, parsedCount = {}, 0
local function parseTier(text)
  local tokens = tokensOf(text)
  local lease = numberIn(tokens, 1, "permitLease")
  local count = numberIn(tokens, 2, "limits")
  local tier = { count = count, fields = {}, concurrency = false, lease = lease,
    leaseArg = int(math.ceil(lease)) }
  local at = 3
  for j = 1, count do
    local algorithm = ALGORITHMS[tokens[at]]
    if algorithm == nil then error("bad argument algorithm: " .. tostring(tokens[at])) end
    local arity = numberIn(tokens, at + 2, "arity")
    local values = {}
    for v = 1, arity do values[v] = numberIn(tokens, at + 2 + v, "config") end
    local config = algorithm.configOf(values, 1)
    local ttl = algorithm.ttlMillis(config)
    if ttl == math.huge then ttl = lease end
    tier[j] = { algorithm = algorithm, name = tokens[at], field = tokens[at + 1], config = config, ttl = ttl,
      ttlArg = int(math.ceil(ttl)) }
    tier.fields[j] = tokens[at + 1]
    if algorithm.release then tier.concurrency = true end
    at = at + 3 + arity
  end
  if parsedCount >= 1000 then parsedTiers, parsedCount = {}, 0 end
  parsedTiers[text] = tier
  parsedCount = parsedCount + 1
  return tier
end

-- Tables every call fills again instead of making its own (a library's
-- calls run one at a time): the states, and each limit's decision, wholly
-- rewritten by check and consume.
local STATES, DECISIONS = {}, {}
local function decisionAt(j)
  local out = DECISIONS[j]
  if out == nil then
    out = newDecision()
    DECISIONS[j] = out
  end
  return out
end

-- The limits' states: each stored one decoded, a missing one fresh.
local function load(key, tier, now)
  local states = STATES
  if tier.count == 1 then
    local spec = tier[1]
    local bytes = redis.call("HGET", key, spec.field)
    states[1] = bytes and spec.algorithm.decode(bytes) or spec.algorithm.make(spec.config, now)
    return states
  end
  local stored = redis.call("HMGET", key, unpack(tier.fields))
  for j = 1, tier.count do
    local spec = tier[j]
    states[j] = stored[j] and spec.algorithm.decode(stored[j]) or spec.algorithm.make(spec.config, now)
  end
  return states
end

-- Concurrency permits as leases: a sorted set of "<permit>|<cost>" by when each lease runs out.
local function costOf(member) return tonumber(string.match(member, "|([^|]+)$")) or 0 end
local function releasePermits(tier, states, cost)
  for j = 1, tier.count do
    local spec = tier[j]
    if spec.algorithm.release then spec.algorithm.release(states[j], cost, spec.config) end
  end
end
-- Gives back the permits whose lease ran out (their process is gone): true when there were some.
local function releaseExpired(permitsKey, tier, states, now)
  local expired = redis.call("ZRANGEBYSCORE", permitsKey, "-inf", "(" .. int(now))
  for _, member in ipairs(expired) do releasePermits(tier, states, costOf(member)) end
  if #expired == 0 then return false end
  redis.call("ZREMRANGEBYSCORE", permitsKey, "-inf", "(" .. int(now))
  return true
end
local function holdPermit(permitsKey, now, tier, permit, cost)
  redis.call("ZADD", permitsKey, now + tier.lease, permit .. "|" .. cost)
  redis.call("PEXPIRE", permitsKey, tier.leaseArg)
end
-- A permit given back once: true when it was still held (its lease not run out).
local function dropPermit(permitsKey, permit, cost)
  return redis.call("ZREM", permitsKey, permit .. "|" .. cost) == 1
end

-- Writes the states back, in one HSET (and one HDEL): an idle one is
-- deleted (it decides as a fresh one would); the key lives until every
-- state would be idle (a concurrency state, as long as a lease).
local function save(key, tier, states, now)
  if tier.count == 1 then
    local spec = tier[1]
    if spec.algorithm.isIdle(states[1], now, spec.config) then
      redis.call("HDEL", key, spec.field)
    else
      redis.call("HSET", key, spec.field, spec.algorithm.encode(states[1]))
      if spec.ttl > 0 then redis.call("PEXPIRE", key, spec.ttlArg) end
    end
    return
  end
  local sets, idle, ttl, ttlArg = {}, {}, 0, nil
  for j = 1, tier.count do
    local spec = tier[j]
    if spec.algorithm.isIdle(states[j], now, spec.config) then
      idle[#idle + 1] = spec.field
    else
      sets[#sets + 1] = spec.field
      sets[#sets + 1] = spec.algorithm.encode(states[j])
      if spec.ttl > ttl then ttl, ttlArg = spec.ttl, spec.ttlArg end
    end
  end
  if #idle > 0 then redis.call("HDEL", key, unpack(idle)) end
  if #sets > 0 then redis.call("HSET", key, unpack(sets)) end
  if ttl > 0 then redis.call("PEXPIRE", key, ttlArg) end
end
`

/**
 * KEYS: the limits' states (a hash) and, for a tier with a concurrency
 * limit, the permits held. Each call: the server's time, the tier (ARGV[1],
 * its text: see \`parseTier\`), the states loaded (or fresh), and the
 * permits whose lease ran out given back. The operation's own arguments
 * follow from ARGV[2].
 */
const limits = `${clockLua}
local tier = parsedTiers[ARGV[1]] or parseTier(ARGV[1])
local count = tier.count
local key = KEYS[1]
local states = load(key, tier, now)
local permitsKey = KEYS[2]
local dirty = tier.concurrency and releaseExpired(permitsKey, tier, states, now)
`

/**
 * decide(commit, cost, permit) → six values per limit (see
 * \`appendDecision\`). One limit: consume decides exactly as check and
 * charges only when allowed; several: all are checked, then all charged when
 * all allow. A charged \`permit\` (absent or "" for none) holds its
 * concurrency permits as a lease.
 */
const decideLua = `${limits}
local commit = ARGV[2] == "1"
local cost = numberIn(ARGV, 3, "cost")
local permit = ARGV[4] or ""
-- (states given back permits, dirty, are saved even when refused: then they must stay uncharged)
local charged = decideLimits(tier, count, states, now, cost, commit, decisionAt, dirty)
local reply
if count == 1 then
  reply = decisionReply(decisionAt(1))
else
  reply = {}
  for j = 1, count do appendDecision(reply, 6 * j - 5, decisionAt(j)) end
end
if charged and permit ~= "" then holdPermit(permitsKey, now, tier, permit, cost) end
if charged or dirty then save(key, tier, states, now) end
return reply
`

/**
 * adjust(operation, cost, permit): refund, penalize, release or renew on
 * every limit; → the number of limits. With a \`permit\` (absent or "" for
 * none), a release or a refund gives back that permit's concurrency permits
 * once (nothing when its lease already ran out: they were given back then),
 * and a renew extends its lease.
 */
const adjustLua = `${limits}
local operation = ARGV[2]
local cost = numberIn(ARGV, 3, "cost")
local permit = ARGV[4] or ""
if operation == "renew" then
  if permit ~= "" and redis.call("ZADD", permitsKey, "XX", "CH", now + tier.lease, permit .. "|" .. cost) == 1 then
    redis.call("PEXPIRE", permitsKey, tier.leaseArg)
    redis.call("PEXPIRE", key, tier.leaseArg)
  end
  if dirty then save(key, tier, states, now) end
  return count
end
local permitHeld = permit ~= "" and (operation == "release" or operation == "refund") and dropPermit(permitsKey, permit, cost)
for j = 1, count do
  local spec = tier[j]
  local concurrency = spec.algorithm.release ~= nil
  if operation == "penalize" then spec.algorithm.penalize(states[j], now, cost, spec.config)
  elseif concurrency and permit ~= "" then
    if permitHeld then spec.algorithm.release(states[j], cost, spec.config) end
  elseif operation == "refund" then spec.algorithm.refund(states[j], now, cost, spec.config)
  elseif operation == "release" then
    if concurrency then spec.algorithm.release(states[j], cost, spec.config) end
  else error("bad argument operation: " .. tostring(operation)) end
end
save(key, tier, states, now)
return count
`

/**
 * A script over the given algorithms, runnable as a Redis function too: the
 * algorithms' functions are then made once, when the library loads, instead
 * of on every call. Its parameters: how many of `keysAndArgs` are keys, and
 * the keys then the arguments, all strings.
 */
const scriptOf = <Result>(algorithms: string, body: string) => {
  const definitions = `${luaDefinitions}${algorithms}${storeDefinitions}`
  return asFunction(
    Redis.script((_keys: number, keysAndArgs: ReadonlyArray<string>) => keysAndArgs, {
      numberOfKeys: (keys) => keys,
      lua: `${definitions}${body}`
    }).withReturnType<Result>(),
    definitions,
    body
  )
}

const makeScripts = (algorithms: string) => ({
  decide: scriptOf<ReadonlyArray<ReplyValue>>(algorithms, decideLua),
  adjust: scriptOf<number>(algorithms, adjustLua)
})

/**
 * The scripts for a set of algorithms: a script defines every function it
 * carries on each call, so a limiter's scripts carry only its algorithms'
 * (made once per set, so each is hashed once).
 */
const scriptsByAlgorithms = new Map<string, ReturnType<typeof makeScripts>>()
const scriptsFor = (names: ReadonlyArray<AlgorithmName>): ReturnType<typeof makeScripts> => {
  const id = [...new Set(names)].sort().join(",")
  let scripts = scriptsByAlgorithms.get(id)
  if (scripts === undefined) {
    scripts = makeScripts(algorithmsFor(names))
    scriptsByAlgorithms.set(id, scripts)
  }
  return scripts
}

// ---------------------------------------------------------------------------
// the store
// ---------------------------------------------------------------------------

/** What went wrong, from a Redis error (whose cause is the client's error) or any other. */
const describe = (cause: unknown): string => {
  const inner = cause instanceof Redis.RedisError ? cause.cause : cause
  return inner instanceof Error ? inner.message : String(inner)
}

/** A tier's text token: its length in bytes (as Lua counts them), a colon, then the token. */
const token = (text: string): string => `${Buffer.byteLength(text, "utf8")}:${text}`

/** What one call sends for a tier: how many keys (the permits' only with a concurrency limit), and its text. */
interface TierCall {
  readonly keys: 1 | 2
  readonly text: string
}

const remoteOf = (
  redis: Redis.Redis["Service"],
  options: RateLimiter.RemoteOptions,
  prefix: string,
  leaseMillis: number
): RateLimiter.RemoteLimits => {
  // per tier, made once: its text (the permit lease, the limit count and every limit's algorithm, field and
  // config; the script parses it once and keeps it by the text), and whether calls carry the permits key
  const tierCalls = options.tiers.map((specs, tier): TierCall => {
    const tokens = [
      String(leaseMillis),
      String(specs.length),
      ...specs.flatMap((spec) => {
        const config = inputArgs(spec)
        return [spec.algorithm, `${tier}:${spec.name}:${spec.algorithm}`, String(config.length), ...config]
      })
    ]
    return {
      keys: specs.some((spec) => spec.algorithm === "concurrency") ? 2 : 1,
      text: tokens.map(token).join("")
    }
  })
  // an unknown tier decides on the default one (a limiter always has it: the empty tier is never sent)
  const defaultTier: TierCall = tierCalls[0] ?? { keys: 1, text: token(String(leaseMillis)) + token("0") }
  const tierOf = (tier: number): TierCall => tierCalls[tier] ?? defaultTier
  const scripts = scriptsFor(options.tiers.flatMap((specs) => specs.map((spec) => spec.algorithm)))
  const decide = redis.eval(scripts.decide)
  const adjust = redis.eval(scripts.adjust)
  /** The call's keys and arguments: the state key (and the permits key), the tier, then the operation's. */
  const call = (key: string, tier: TierCall, operation: string, cost: number, permit: string | undefined) => {
    const state = `${prefix}{${options.name}:${key}}`
    const costArg = String(cost)
    return tier.keys === 1
      ? permit === undefined
        ? [state, tier.text, operation, costArg]
        : [state, tier.text, operation, costArg, permit]
      : permit === undefined
        ? [state, `${state}:p`, tier.text, operation, costArg]
        : [state, `${state}:p`, tier.text, operation, costArg, permit]
  }
  const storeError = (key: string, operation: string) => (cause: unknown) =>
    new RateLimiter.RateLimiterStoreError({
      limiter: options.name,
      key,
      message: `Redis rate limiter store: ${operation} failed: ${describe(cause)}`,
      cause
    })
  const adjusting =
    (operation: "refund" | "penalize" | "release" | "renew") =>
    (
      key: string,
      tier: number,
      cost: number,
      permit?: string | undefined
    ): Effect.Effect<void, RateLimiter.RateLimiterStoreError> => {
      const call_ = tierOf(tier)
      return adjust(call_.keys, call(key, call_, operation, cost, permit)).pipe(
        Effect.asVoid,
        Effect.mapError(storeError(key, operation))
      )
    }
  const renew = adjusting("renew")
  return {
    decide: (key, tier, cost, commit, permit) => {
      const call_ = tierOf(tier)
      return Effect.mapBoth(decide(call_.keys, call(key, call_, commit ? "1" : "0", cost, permit)), {
        onFailure: storeError(key, "decide"),
        onSuccess: (reply) => {
          if (reply.length === 6) return [decodeDecision(reply)]
          const outcomes: Array<RateLimiter.LimitOutcome> = []
          for (let at = 0; at + 6 <= reply.length; at += 6) outcomes.push(decodeDecisionAt(reply, at))
          return outcomes
        }
      })
    },
    refund: adjusting("refund"),
    penalize: adjusting("penalize"),
    release: adjusting("release"),
    leases: {
      renewMillis: Math.max(1, Math.floor(leaseMillis / 3)),
      renew: (key, tier, cost, permit) => renew(key, tier, cost, permit)
    }
  }
}

/**
 * Makes the store over the current `Redis` service.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeStore = (
  options: StoreOptions = {}
): Effect.Effect<RateLimiter.RateLimiterStore["Service"], never, Redis.Redis> =>
  Effect.map(Redis.Redis, (redis) => {
    const prefix = options.prefix ?? "resilience:rl:"
    const leaseMillis = Math.max(
      1,
      Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(options.permitLease ?? "30 seconds")))
    )
    return RateLimiter.RateLimiterStore.of({
      // in-process limits are never compiled over a remote store; kept for the contract
      compile: (limit, maxKeys) => RateLimiter.compileSpec(RateLimiter.limitSpec(limit), maxKeys),
      remote: (remoteOptions) => Effect.sync(() => remoteOf(redis, remoteOptions, prefix, leaseMillis))
    })
  })

/**
 * The store as a layer, over the current `Redis` service (`IoRedis.layer` or
 * `IoRedis.layerCluster`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStore = (options: StoreOptions = {}): Layer.Layer<RateLimiter.RateLimiterStore, never, Redis.Redis> =>
  Layer.effect(RateLimiter.RateLimiterStore, makeStore(options))

/**
 * The store as a layer, its options read from `Config` (`<prefix>PREFIX`,
 * `<prefix>PERMIT_LEASE`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStoreConfig = (
  configPrefix = "RATE_LIMITER_STORE_"
): Layer.Layer<RateLimiter.RateLimiterStore, Config.ConfigError, Redis.Redis> =>
  Layer.effect(
    RateLimiter.RateLimiterStore,
    Effect.gen(function* () {
      const { permitLease, prefix } = yield* Config.all({
        prefix: Config.option(Config.String(`${configPrefix}PREFIX`)),
        permitLease: Config.option(Config.Duration(`${configPrefix}PERMIT_LEASE`))
      })
      return yield* makeStore({
        ...(prefix._tag === "Some" ? { prefix: prefix.value } : {}),
        ...(permitLease._tag === "Some" ? { permitLease: permitLease.value } : {})
      })
    })
  )
