/**
 * A `CircuitBreakerStore` on Redis or Redis Cluster: breakers in many
 * processes share their circuits, so one process's failures open the circuit
 * for all of them.
 *
 * **Details**
 *
 * - Every operation is one atomic Lua call, a port of the in-process engine
 *   (same policies, windows, half-open probes, backoff and hints), so a
 *   breaker behaves the same on either store; the same conformance suite
 *   runs on both. On Redis 7+ it runs as a Redis function (`FCALL`; the
 *   library is loaded on first use, on every master of a cluster), elsewhere
 *   as a script (`EVALSHA`).
 * - Time comes from Redis `TIME`: processes with skewed clocks agree on when
 *   a circuit opened and when it half-opens.
 * - An outcome carries the generation (fencing token) its call was admitted
 *   with; an outcome from before a state change is dropped. Generations never
 *   repeat, even after a key expired and came back.
 * - All circuits of one breaker share the breaker's hash tag
 *   (`<prefix>{<breaker>}`), with a sorted-set index of its keys: `maxKeys`
 *   and idle eviction hold across processes, and on a cluster every script
 *   runs on the node of that tag (different breakers spread over nodes).
 * - Idle circuits also expire by TTL (`idleTimeToLive`, plus the open time or
 *   probe lease left), so an abandoned breaker leaves nothing behind.
 * - Probes hold a lease (`probeLease`, default 30 seconds): a process that
 *   dies while probing never records its outcome, so once no probe has been
 *   admitted for that long, the probes in flight are written off and their
 *   slots freed. A probe slower than its lease has its outcome dropped.
 * - Store failures follow the breaker's `onStoreError` (the call runs
 *   unrecorded by default). While Redis is unreachable, ioredis by default
 *   queues commands until it reconnects, so calls wait; connect with
 *   `enableOfflineQueue: false` to fail (or run unrecorded) at once.
 *
 * **Example** (Two breakers, one circuit)
 *
 * ```ts
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { IoRedis, RedisCircuitBreaker } from "@effect-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const Store = RedisCircuitBreaker.layerStore({ prefix: "myapp:cb:" }).pipe(
 *   Layer.provide(IoRedis.layer({ host: "127.0.0.1", port: 6379 }))
 * )
 *
 * const program = Effect.gen(function* () {
 *   const payments = yield* CircuitBreaker.make({ name: "payments", consecutiveFailures: 5 })
 *   return yield* Effect.succeed("paid").pipe(CircuitBreaker.protect(payments))
 * }).pipe(Effect.scoped, Effect.provide(Store))
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { CircuitBreaker } from "@effect-resilience/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import * as Lua from "./internal/circuitBreakerLua.ts"
import { asFunction, numberArg, numberReply } from "./internal/lua.ts"

/**
 * Options of the Redis store.
 *
 * @category models
 * @since 0.1.0
 */
export interface StoreOptions {
  /** Prepended to every key (default `"resilience:cb:"`). Braces in it would put every breaker on one cluster slot. */
  readonly prefix?: string | undefined
  /** How long a probe may run before its slot is written off (default 30 seconds). */
  readonly probeLease?: Duration.Input | undefined
}

// ---------------------------------------------------------------------------
// scripts
// ---------------------------------------------------------------------------

type Args = ReadonlyArray<string>
/**
 * A script over the engine, runnable as a Redis function too: the engine's
 * functions are then defined once, when the library loads, not on each call.
 */
const script = <Result>(body: string) =>
  asFunction(
    Redis.script((circuit: string, index: string, args: Args) => [circuit, index, ...args], {
      numberOfKeys: 2,
      lua: `${Lua.definitions}${body}`
    }).withReturnType<Result>(),
    Lua.definitions,
    body
  )

type TransitionReply = readonly [from: string, to: string, openMillis: string, consecutiveOpenings: string]
type Need = readonly [tag: "need", n: string]

// { "ok", verdict, generation, retryAfterMillis, ...transition } | { "need", n }
const admitScript = script<
  readonly [tag: "ok", verdict: string, generation: string, retryAfterMillis: string, ...TransitionReply] | Need
>(Lua.admit)
// { "ok", ...transition } | { "need", n }
const recordScript = script<readonly [tag: "ok", ...TransitionReply] | Need>(Lua.record)
// { "ok", ...transition }
const forceScript = script<readonly [tag: "ok", ...TransitionReply]>(Lua.force)
// the circuit as JSON, or null
const readScript = script<string | null>(Lua.read)
// [name, json, name, json, ...]
const exportScript = script<ReadonlyArray<string>>(Lua.exportAll)
// circuits loaded
const importScript = script<number>(Lua.importAll)
// live circuits
const sizeScript = script<number>(Lua.size)

// ---------------------------------------------------------------------------
// replies
// ---------------------------------------------------------------------------

const verdicts: ReadonlyArray<CircuitBreaker.Admission["verdict"]> = [
  "Admit",
  "Probe",
  "RejectOpen",
  "RejectHalfOpen",
  "RejectForced"
]
const states: ReadonlyArray<CircuitBreaker.StateTag> = [
  "Closed",
  "Open",
  "HalfOpen",
  "Disabled",
  "ForcedOpen",
  "MetricsOnly"
]

class ReplyError extends Error {}

const stateOf = (s: string): CircuitBreaker.StateTag => {
  const state = states.find((known) => known === s)
  if (state === undefined) throw new ReplyError(`unknown state ${s}`)
  return state
}

const transitionOf = (reply: TransitionReply): CircuitBreaker.Transition | undefined => {
  const [from, to, openMillis, consecutiveOpenings] = reply
  if (from === "") return undefined
  return {
    from: stateOf(from),
    to: stateOf(to),
    openMillis: numberReply(openMillis),
    consecutiveOpenings: numberReply(consecutiveOpenings)
  }
}

/** The circuit as the scripts keep it (cjson). */
const CircuitJson = Schema.Struct({
  state: Schema.Literals(["Closed", "Open", "HalfOpen", "Disabled", "ForcedOpen", "MetricsOnly"]),
  generation: Schema.String,
  consecutive: Schema.Number,
  ring: Schema.optional(Schema.String),
  ringNext: Schema.Number,
  ringLength: Schema.Number,
  bucketEpoch: Schema.optional(Schema.Array(Schema.Number)),
  bucketCalls: Schema.optional(Schema.Array(Schema.Number)),
  bucketFailures: Schema.optional(Schema.Array(Schema.Number)),
  bucketSlow: Schema.optional(Schema.Array(Schema.Number)),
  calls: Schema.Number,
  failures: Schema.Number,
  slow: Schema.Number,
  openedAt: Schema.Number,
  openUntil: Schema.Number,
  consecutiveOpenings: Schema.Number,
  lastOpenMillis: Schema.Number,
  backoffResetAt: Schema.Number,
  halfOpenSince: Schema.Number,
  probesAdmitted: Schema.Number,
  probesInFlight: Schema.Number,
  probeSuccesses: Schema.Number,
  probeFailures: Schema.Number
})
type CircuitJson = typeof CircuitJson.Type
const decodeCircuit = Schema.decodeUnknownSync(Schema.fromJsonString(CircuitJson))

const toCircuit = (d: CircuitJson): CircuitBreaker.Circuit => {
  const c = CircuitBreaker.makeCircuit(Number(d.generation))
  c.state = d.state
  c.consecutive = d.consecutive
  if (d.ring !== undefined) c.ring = Uint8Array.from(d.ring, (flags) => Number(flags))
  c.ringNext = d.ringNext
  c.ringLength = d.ringLength
  if (d.bucketEpoch !== undefined) c.bucketEpoch = Float64Array.from(d.bucketEpoch)
  if (d.bucketCalls !== undefined) c.bucketCalls = Int32Array.from(d.bucketCalls)
  if (d.bucketFailures !== undefined) c.bucketFailures = Int32Array.from(d.bucketFailures)
  if (d.bucketSlow !== undefined) c.bucketSlow = Int32Array.from(d.bucketSlow)
  c.calls = d.calls
  c.failures = d.failures
  c.slow = d.slow
  c.openedAt = d.openedAt
  c.openUntil = d.openUntil
  c.consecutiveOpenings = d.consecutiveOpenings
  c.lastOpenMillis = d.lastOpenMillis
  c.backoffResetAt = d.backoffResetAt
  c.halfOpenSince = d.halfOpenSince
  c.probesAdmitted = d.probesAdmitted
  c.probesInFlight = d.probesInFlight
  c.probeSuccesses = d.probeSuccesses
  c.probeFailures = d.probeFailures
  return c
}

/** A circuit as the scripts keep it (the inverse of `toCircuit`). */
const toJson = (c: CircuitBreaker.Circuit): string =>
  JSON.stringify({
    state: c.state,
    generation: String(c.generation),
    consecutive: c.consecutive,
    ...(c.ring === undefined ? {} : { ring: Array.from(c.ring, (flags) => String(flags)).join("") }),
    ringNext: c.ringNext,
    ringLength: c.ringLength,
    ...(c.bucketEpoch === undefined ? {} : { bucketEpoch: Array.from(c.bucketEpoch) }),
    ...(c.bucketCalls === undefined ? {} : { bucketCalls: Array.from(c.bucketCalls) }),
    ...(c.bucketFailures === undefined ? {} : { bucketFailures: Array.from(c.bucketFailures) }),
    ...(c.bucketSlow === undefined ? {} : { bucketSlow: Array.from(c.bucketSlow) }),
    calls: c.calls,
    failures: c.failures,
    slow: c.slow,
    openedAt: c.openedAt,
    openUntil: c.openUntil,
    consecutiveOpenings: c.consecutiveOpenings,
    lastOpenMillis: c.lastOpenMillis,
    backoffResetAt: c.backoffResetAt,
    halfOpenSince: c.halfOpenSince,
    probesAdmitted: 0,
    probesInFlight: 0,
    probeSuccesses: 0,
    probeFailures: 0,
    leaseUntil: 0
  })

// ---------------------------------------------------------------------------
// the store
// ---------------------------------------------------------------------------

/** A script that may ask for the duration of an opening gets this many tries. */
const maxTries = 5

const circuitsOf = (
  redis: Redis.Redis["Service"],
  options: CircuitBreaker.CircuitsOptions,
  prefix: string,
  leaseMillis: number
): CircuitBreaker.Circuits => {
  const { config, openMillisFor } = options
  const tag = `${prefix}{${options.name}}`
  const base = `${tag}:c:`
  const index = `${tag}:i`
  const head: Args = [
    ...Lua.configArgs(config),
    numberArg(options.idleTimeToLiveMillis),
    numberArg(options.maxKeys),
    numberArg(leaseMillis),
    base
  ]
  const storeError = (operation: string) => (cause: unknown) =>
    new CircuitBreaker.CircuitBreakerError({
      reason: new CircuitBreaker.CircuitBreakerStoreError({
        message: `Redis circuit breaker store: ${operation} failed: ${describe(cause)}`,
        cause
      })
    })
  /** Runs a script; parses its reply, mapping every failure to the store error. */
  const run = <R, A>(
    operation: string,
    effect: Effect.Effect<R, Redis.RedisError>,
    parse: (reply: R) => A
  ): Effect.Effect<A, CircuitBreaker.CircuitBreakerError> =>
    effect.pipe(
      Effect.flatMap((reply) => Effect.try({ try: () => parse(reply), catch: (cause) => cause })),
      Effect.mapError(storeError(operation))
    )
  /**
   * Runs a script that may answer `need n`: the duration of the n-th opening,
   * which it is then given on the next try.
   */
  const withOpenings = <R extends ReadonlyArray<string>, A>(
    operation: string,
    call: (openN: number, openMillis: number) => Effect.Effect<R | Need, Redis.RedisError>,
    parse: (reply: R) => A
  ): Effect.Effect<A, CircuitBreaker.CircuitBreakerError> => {
    const attempt = (
      openN: number,
      openMillis: number,
      tries: number
    ): Effect.Effect<A, CircuitBreaker.CircuitBreakerError> =>
      run(operation, call(openN, openMillis), (reply) => reply).pipe(
        Effect.flatMap((reply) => {
          if (!isNeed(reply)) return Effect.try({ try: () => parse(reply), catch: storeError(operation) })
          if (tries >= maxTries) return Effect.fail(storeError(operation)(new ReplyError("the circuit kept changing")))
          const n = numberReply(reply[1])
          return attempt(n, openMillisFor(n), tries + 1)
        })
      )
    return Effect.suspend(() => attempt(0, 0, 1))
  }
  const keyOf = (key: string) => `${base}${key}`
  const admitRedis = redis.eval(admitScript)
  const recordRedis = redis.eval(recordScript)
  const forceRedis = redis.eval(forceScript)
  const readRedis = redis.eval(readScript)
  const exportRedis = redis.eval(exportScript)
  const importRedis = redis.eval(importScript)
  const sizeRedis = redis.eval(sizeScript)

  return {
    local: undefined,
    admit: (key) =>
      withOpenings(
        "admit",
        (openN, openMillis) =>
          admitRedis(keyOf(key), index, [...head, numberArg(openN), numberArg(openMillis), key, options.initialState]),
        (reply): CircuitBreaker.Admission => {
          const [, verdict, generation, retryAfterMillis, ...transition] = reply
          const known = verdicts.find((v) => v === verdict)
          if (known === undefined) throw new ReplyError(`unknown verdict ${verdict}`)
          return {
            verdict: known,
            generation: Number(generation),
            retryAfterMillis: Math.max(0, numberReply(retryAfterMillis)),
            transition: transitionOf(transition)
          }
        }
      ),
    record: ({ durationMillis, generation, hintMillis, key, outcome }) =>
      withOpenings(
        "record",
        (openN, openMillis) =>
          recordRedis(keyOf(key), index, [
            ...head,
            numberArg(openN),
            numberArg(openMillis),
            key,
            String(generation),
            outcome,
            numberArg(durationMillis),
            numberArg(hintMillis)
          ]),
        ([, ...transition]) => transitionOf(transition)
      ),
    force: (key, to) =>
      run("force", forceRedis(keyOf(key), index, [...head, "0", "0", key, to]), ([, ...transition]) =>
        transitionOf(transition)
      ),
    read: (key) =>
      run("read", readRedis(keyOf(key), index, [...head, "0", "0"]), (json) =>
        json === null ? CircuitBreaker.makeCircuit(0) : toCircuit(decodeCircuit(json))
      ),
    export: run("export", exportRedis(index, index, [...head, "0", "0"]), (reply) => {
      const circuits: Array<readonly [string, CircuitBreaker.CircuitData]> = []
      for (let i = 0; i + 1 < reply.length; i += 2) {
        const [name, json] = [reply[i], reply[i + 1]]
        if (name === undefined || json === undefined) continue
        circuits.push([name, CircuitBreaker.circuitToData(toCircuit(decodeCircuit(json)))])
      }
      return circuits
    }),
    import: (circuits) => {
      const args: Array<string> = []
      for (const [key, data] of circuits) args.push(key, toJson(CircuitBreaker.circuitFromData(data, config, 0)))
      return run("import", importRedis(index, index, [...head, "0", "0", ...args]), () => undefined)
    },
    // the store's own size: a failure reads as the last size nobody knows, so 0
    size: sizeRedis(index, index, [...head, "0", "0"]).pipe(
      Effect.map((n) => Number(n)),
      Effect.orElseSucceed(() => 0)
    )
  }
}

/** What went wrong, from a Redis error (whose cause is the client's error) or any other. */
const describe = (cause: unknown): string => {
  const inner = cause instanceof Redis.RedisError ? cause.cause : cause
  return inner instanceof Error ? inner.message : String(inner)
}

const isNeed = (reply: ReadonlyArray<string>): reply is Need => reply[0] === "need"

/**
 * Makes the store over the current `Redis` service.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeStore = (
  options: StoreOptions = {}
): Effect.Effect<CircuitBreaker.CircuitBreakerStore["Service"], never, Redis.Redis> =>
  Effect.map(Redis.Redis, (redis) => {
    const prefix = options.prefix ?? "resilience:cb:"
    const leaseMillis = Math.max(1, Duration.toMillis(Duration.fromInputUnsafe(options.probeLease ?? "30 seconds")))
    return CircuitBreaker.CircuitBreakerStore.of({
      circuits: (circuitsOptions) => Effect.sync(() => circuitsOf(redis, circuitsOptions, prefix, leaseMillis))
    })
  })

/**
 * The store as a layer, over the current `Redis` service (`IoRedis.layer` or
 * `IoRedis.layerCluster`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStore = (
  options: StoreOptions = {}
): Layer.Layer<CircuitBreaker.CircuitBreakerStore, never, Redis.Redis> =>
  Layer.effect(CircuitBreaker.CircuitBreakerStore, makeStore(options))

/**
 * The store as a layer, its options read from `Config` (`<prefix>PREFIX`,
 * `<prefix>PROBE_LEASE`, e.g. `CIRCUIT_BREAKER_STORE_PROBE_LEASE=10 seconds`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStoreConfig = (
  configPrefix = "CIRCUIT_BREAKER_STORE_"
): Layer.Layer<CircuitBreaker.CircuitBreakerStore, Config.ConfigError, Redis.Redis> =>
  Layer.effect(
    CircuitBreaker.CircuitBreakerStore,
    Effect.gen(function* () {
      const { prefix, probeLease } = yield* Config.all({
        prefix: Config.option(Config.String(`${configPrefix}PREFIX`)),
        probeLease: Config.option(Config.Duration(`${configPrefix}PROBE_LEASE`))
      })
      return yield* makeStore({
        ...(prefix._tag === "Some" ? { prefix: prefix.value } : {}),
        ...(probeLease._tag === "Some" ? { probeLease: probeLease.value } : {})
      })
    })
  )
