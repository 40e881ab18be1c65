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
import { createHash } from "node:crypto"
import { RateLimiter } from "@effect-resilience/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import { asFunction, definitions as luaDefinitions, perCall } from "./internal/lua.ts"
import { type AlgorithmName, algorithmsFor, decodeDecision, inputArgs } from "./internal/rateLimiterLua.ts"

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
-- A tier's limits as parsed from the arguments: a library keeps them by the
-- id the client computed from the arguments' text, so a tier is parsed once
-- (as a script, every call parses its own). At most 1,000 kept.
local parsedSpecs, parsedCount = {}, 0
local function parseSpecs(argv, arg)
  local specId = argv[2]
  local cached = parsedSpecs[specId]
  if cached then return cached end
  local count = arg(3, "limits")
  local specs = { count = count, fields = {}, concurrency = false }
  local at = 4
  for j = 1, count do
    local algorithm = ALGORITHMS[argv[at]]
    if algorithm == nil then error("bad argument algorithm: " .. tostring(argv[at])) end
    local arity = arg(at + 2, "arity")
    local values = {}
    for v = 1, arity do values[v] = arg(at + 2 + v, "config") end
    specs[j] = { algorithm = algorithm, name = argv[at], field = argv[at + 1], config = algorithm.configOf(values, 1) }
    specs.fields[j] = argv[at + 1]
    if algorithm.release then specs.concurrency = true end
    at = at + 3 + arity
  end
  specs.op = at
  if parsedCount >= 1000 then parsedSpecs, parsedCount = {}, 0 end
  parsedSpecs[specId] = specs
  parsedCount = parsedCount + 1
  return specs
end

-- Concurrency permits as leases: a sorted set of "<permit>|<cost>" by when each lease runs out.
local function costOf(member) return tonumber(string.match(member, "|([^|]+)$")) or 0 end
local function releasePermits(specs, states, cost)
  for j = 1, specs.count do
    local spec = specs[j]
    if spec.algorithm.release then spec.algorithm.release(states[j], cost, spec.config) end
  end
end
local function holdPermit(permitsKey, now, lease, permit, cost)
  redis.call("ZADD", permitsKey, now + lease, permit .. "|" .. cost)
  redis.call("PEXPIRE", permitsKey, int(math.ceil(lease)))
end
-- A permit given back once: true when it was still held (its lease not run out).
local function dropPermit(permitsKey, permit, cost)
  return redis.call("ZREM", permitsKey, permit .. "|" .. cost) == 1
end

-- Writes the states back: an idle one is deleted (it decides as a fresh one
-- would); the key lives until every state would be idle (a concurrency
-- state, as long as a lease).
local function save(key, specs, states, now, lease)
  local ttl = 0
  for j = 1, specs.count do
    local spec = specs[j]
    if spec.algorithm.isIdle(states[j], now, spec.config) then
      redis.call("HDEL", key, spec.field)
    else
      redis.call("HSET", key, spec.field, spec.algorithm.encode(states[j]))
      local limitTtl = spec.algorithm.ttlMillis(spec.config)
      if limitTtl == math.huge then limitTtl = lease end
      if limitTtl > ttl then ttl = limitTtl end
    end
  end
  if ttl > 0 then redis.call("PEXPIRE", key, int(math.ceil(ttl))) end
end
`

/**
 * KEYS: the limits' states (a hash), and the concurrency permits held.
 * Each call: the arguments (ARGV[1] the permit lease, [2] the tier's id, [3]
 * the limit count, then per limit its algorithm, field and config, arity
 * first, then the operation's own arguments from \`OP\`), the states loaded
 * (or fresh), and the permits whose lease ran out given back.
 */
const limits = `${perCall}
local lease = arg(1, "permitLease")
local specs = parseSpecs(ARGV, arg)
local count = specs.count
local OP = specs.op
local stored = redis.call("HMGET", KEYS[1], unpack(specs.fields))
local states = {}
for j = 1, count do
  local spec = specs[j]
  states[j] = stored[j] and spec.algorithm.decode(stored[j]) or spec.algorithm.make(spec.config, now)
end
local permitsKey = KEYS[2]
-- permits whose lease ran out: their process is gone, they are given back
local dirty = false
if specs.concurrency then
  local expired = redis.call("ZRANGEBYSCORE", permitsKey, "-inf", "(" .. int(now))
  for _, member in ipairs(expired) do releasePermits(specs, states, costOf(member)) end
  if #expired > 0 then
    redis.call("ZREMRANGEBYSCORE", permitsKey, "-inf", "(" .. int(now))
    dirty = true
  end
end
`

/**
 * decide(commit, cost, permit) → six strings per limit (see
 * \`decisionReply\`). One limit: consume decides exactly as check and charges
 * only when allowed; several: all are checked, then all charged when all
 * allow. A charged \`permit\` ("" for none) holds its concurrency permits as a
 * lease.
 */
const decideLua = `${limits}
local commit = ARGV[OP] == "1"
local cost = arg(OP + 1, "cost")
local permit = ARGV[OP + 2] or ""
local outs = {}
for j = 1, count do outs[j] = newDecision() end
local charged = false
if count == 1 then
  if commit then
    specs[1].algorithm.consume(states[1], now, cost, specs[1].config, outs[1])
    charged = outs[1].allowed
  else
    specs[1].algorithm.check(states[1], now, cost, specs[1].config, outs[1])
  end
else
  local allowed = true
  for j = 1, count do
    specs[j].algorithm.check(states[j], now, cost, specs[j].config, outs[j])
    if not outs[j].allowed then allowed = false end
  end
  if allowed and commit then
    for j = 1, count do specs[j].algorithm.consume(states[j], now, cost, specs[j].config, outs[j]) end
    charged = true
  end
end
if charged and permit ~= "" then holdPermit(permitsKey, now, lease, permit, cost) end
if charged or dirty then save(KEYS[1], specs, states, now, lease) end
local reply = {}
for j = 1, count do
  for _, v in ipairs(decisionReply(outs[j])) do reply[#reply + 1] = v end
end
return reply
`

/**
 * adjust(operation, cost, permit): refund, penalize, release or renew on
 * every limit; → the number of limits. With a \`permit\` ("" for none), a
 * release or a refund gives back that permit's concurrency permits once
 * (nothing when its lease already ran out: they were given back then), and
 * a renew extends its lease.
 */
const adjustLua = `${limits}
local operation = ARGV[OP]
local cost = arg(OP + 1, "cost")
local permit = ARGV[OP + 2] or ""
if operation == "renew" then
  if permit ~= "" and redis.call("ZADD", permitsKey, "XX", "CH", now + lease, permit .. "|" .. cost) == 1 then
    redis.call("PEXPIRE", permitsKey, int(math.ceil(lease)))
    redis.call("PEXPIRE", KEYS[1], int(math.ceil(lease)))
  end
  if dirty then save(KEYS[1], specs, states, now, lease) end
  return count
end
local permitHeld = permit ~= "" and (operation == "release" or operation == "refund") and dropPermit(permitsKey, permit, cost)
for j = 1, count do
  local spec = specs[j]
  local concurrency = spec.algorithm.release ~= nil
  if operation == "penalize" then spec.algorithm.penalize(states[j], now, cost, spec.config)
  elseif concurrency and permit ~= "" then
    if permitHeld then spec.algorithm.release(states[j], cost, spec.config) end
  elseif operation == "refund" then spec.algorithm.refund(states[j], now, cost, spec.config)
  elseif operation == "release" then
    if concurrency then spec.algorithm.release(states[j], cost, spec.config) end
  else error("bad argument operation: " .. tostring(operation)) end
end
save(KEYS[1], specs, states, now, lease)
return count
`

/**
 * A script over the given algorithms, runnable as a Redis function too: the
 * algorithms' functions are then made once, when the library loads, instead
 * of on every call.
 */
const scriptOf = <Result>(algorithms: string, body: string) => {
  const definitions = `${luaDefinitions}${algorithms}${storeDefinitions}`
  return asFunction(
    Redis.script((key: string, permits: string, args: ReadonlyArray<string>) => [key, permits, ...args], {
      numberOfKeys: 2,
      lua: `${definitions}${body}`
    }).withReturnType<Result>(),
    definitions,
    body
  )
}

const makeScripts = (algorithms: string) => ({
  decide: scriptOf<ReadonlyArray<string>>(algorithms, decideLua),
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

const remoteOf = (
  redis: Redis.Redis["Service"],
  options: RateLimiter.RemoteOptions,
  prefix: string,
  leaseMillis: number
): RateLimiter.RemoteLimits => {
  // per tier: the permit lease, the tier's id (a digest of what follows), the limit count and every limit's
  // algorithm, field and config
  const tierArgs = options.tiers.map((specs, tier): ReadonlyArray<string> => {
    const limitArgs = [
      String(specs.length),
      ...specs.flatMap((spec) => {
        const config = inputArgs(spec)
        return [spec.algorithm, `${tier}:${spec.name}:${spec.algorithm}`, String(config.length), ...config]
      })
    ]
    return [String(leaseMillis), createHash("sha1").update(limitArgs.join("\u0000")).digest("hex"), ...limitArgs]
  })
  const keyOf = (key: string) => `${prefix}{${options.name}:${key}}`
  const scripts = scriptsFor(options.tiers.flatMap((specs) => specs.map((spec) => spec.algorithm)))
  const decide = redis.eval(scripts.decide)
  const adjust = redis.eval(scripts.adjust)
  const storeError = (key: string, operation: string) => (cause: unknown) =>
    new RateLimiter.RateLimiterStoreError({
      limiter: options.name,
      key,
      message: `Redis rate limiter store: ${operation} failed: ${describe(cause)}`,
      cause
    })
  const argsOf = (tier: number) => tierArgs[tier] ?? tierArgs[0] ?? []
  const adjusting =
    (operation: "refund" | "penalize" | "release" | "renew") =>
    (
      key: string,
      tier: number,
      cost: number,
      permit?: string | undefined
    ): Effect.Effect<void, RateLimiter.RateLimiterStoreError> => {
      const state = keyOf(key)
      return adjust(state, `${state}:p`, [...argsOf(tier), operation, String(cost), permit ?? ""]).pipe(
        Effect.asVoid,
        Effect.mapError(storeError(key, operation))
      )
    }
  const renew = adjusting("renew")
  return {
    decide: (key, tier, cost, commit, permit) => {
      const state = keyOf(key)
      return decide(state, `${state}:p`, [...argsOf(tier), commit ? "1" : "0", String(cost), permit ?? ""]).pipe(
        Effect.mapError(storeError(key, "decide")),
        Effect.map((reply) => {
          const outcomes: Array<RateLimiter.LimitOutcome> = []
          for (let i = 0; i + 6 <= reply.length; i += 6) outcomes.push(decodeDecision(reply.slice(i, i + 6)))
          return outcomes
        })
      )
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
