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
 * - `layerStoreLocalFirst` is the other trade-off: circuits decided
 *   in-process (a call costs what it costs over the memory store) and synced
 *   with the fleet every `syncInterval` by one background fiber, one script
 *   call per breaker. A process's own decisions are immediate, the fleet's
 *   reach it at its next sync; see `layerStoreLocalFirst`.
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
import { CircuitBreaker, Options, Telemetry } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Fleet from "./internal/circuitBreakerFleet.ts"
import * as Lua from "./internal/circuitBreakerLua.ts"
import { asFunction, definitions as luaDefinitions, numberArg, numberReply, perCall } from "./internal/lua.ts"

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
// [the circuit as JSON or null, Redis time in ms]
const readScript = script<readonly [string | null, number]>(Lua.read)
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

/**
 * A circuit read from Redis with its times moved onto the reader's clock
 * (`offset`: the reader's time minus Redis time), so what the breaker derives
 * from them against its own clock — `state()`'s retryAfter, which buckets of
 * a time window have aged out — does not depend on how far the clocks are
 * apart. Decisions never use this copy: they run in the scripts, on Redis time.
 */
const onClientClock = (c: CircuitBreaker.Circuit, offset: number, bucketMillis: number): CircuitBreaker.Circuit => {
  if (offset === 0) return c
  if (c.openedAt !== 0) c.openedAt += offset
  if (c.openUntil !== 0) c.openUntil += offset
  if (c.backoffResetAt !== 0) c.backoffResetAt += offset
  if (c.halfOpenSince !== 0) c.halfOpenSince += offset
  const epochs = c.bucketEpoch
  if (epochs !== undefined && bucketMillis > 0) {
    const shift = Math.round(offset / bucketMillis)
    for (let i = 0; i < epochs.length; i++) if (epochs[i] !== -1) epochs[i] = (epochs[i] ?? 0) + shift
  }
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
      Effect.flatMap(
        run("read", readRedis(keyOf(key), index, [...head, "0", "0"]), ([json, redisNow]) => ({
          circuit: json === null ? undefined : toCircuit(decodeCircuit(json)),
          redisNow: numberReply(redisNow)
        })),
        ({ circuit, redisNow }) =>
          Clock.clockWith((clock) =>
            Effect.succeed(
              circuit === undefined
                ? CircuitBreaker.makeCircuit(0)
                : onClientClock(circuit, clock.currentTimeMillisUnsafe() - redisNow, config.bucketMillis)
            )
          )
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

// ---------------------------------------------------------------------------
// local-first
// ---------------------------------------------------------------------------

const NonNegativeDuration = Schema.DurationFromString
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/**
 * Options of the local-first store (`layerStoreLocalFirst`): one schema for
 * the type, the rules and the generated Defaults table. Every field is
 * optional.
 *
 * @category options
 * @since 0.1.0
 */
export const LocalFirstOptions = Schema.Struct({
  prefix: Schema.optionalKey(
    Schema.String.annotate({
      description: "Prepended to every Redis key of the fleet's state.",
      default: "resilience:cbf:"
    })
  ),
  syncInterval: Schema.optionalKey(
    NonNegativeDuration.annotate({
      description:
        "How often each process flushes its circuits' outcomes to Redis and applies the fleet's decisions (one script call per breaker).",
      default: Duration.millis(250)
    })
  ),
  syncTimeout: Schema.optionalKey(
    NonNegativeDuration.annotate({
      description: "A sync that takes longer is abandoned and counted as a sync error.",
      default: Duration.seconds(1)
    })
  ),
  quorum: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "Quorum mode when set: a key opens fleet-wide once this many live processes report it open (their own circuits tripped); fleet counts then open nothing. Unset: the fleet's merged counts trip the policies, and any process's opening opens the key everywhere."
    })
  ),
  voteTimeToLive: Schema.optionalKey(
    NonNegativeDuration.annotate({
      description:
        "How long a process's open vote counts after its last sync (quorum mode). Default: 3 × `syncInterval`."
    })
  ),
  probeLease: Schema.optionalKey(
    NonNegativeDuration.annotate({
      description:
        "How long the one process probing a half-open key holds the fleet's probe lease without syncing before another process may take it. Default: 4 × `syncInterval`."
    })
  ),
  maxKeysPerSync: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Keys reported per breaker per sync (keys with activity first, the rest wait for the next sync).",
      default: 1000
    })
  ),
  instanceId: Schema.optionalKey(
    Schema.String.check(Schema.isMinLength(1)).annotate({
      description: "This process's id in the fleet (its votes and probe lease).",
      default: "a random UUID"
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type LocalFirstOptions = typeof LocalFirstOptions.Type

/**
 * The local-first store's options as written by hand: durations as any
 * `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export interface LocalFirstInput {
  readonly prefix?: string | undefined
  readonly syncInterval?: Duration.Input | undefined
  readonly syncTimeout?: Duration.Input | undefined
  readonly quorum?: number | undefined
  readonly voteTimeToLive?: Duration.Input | undefined
  readonly probeLease?: Duration.Input | undefined
  readonly maxKeysPerSync?: number | undefined
  readonly instanceId?: string | undefined
}

/**
 * The local-first store's options with every default applied, durations in
 * milliseconds.
 *
 * @category options
 * @since 0.1.0
 */
export interface LocalFirstResolved {
  readonly prefix: string
  readonly syncIntervalMillis: number
  readonly syncTimeoutMillis: number
  readonly quorum: number | undefined
  readonly voteTimeToLiveMillis: number
  readonly probeLeaseMillis: number
  readonly maxKeysPerSync: number
  readonly instanceId: string
}

const localFirstDurations = ["syncInterval", "syncTimeout", "voteTimeToLive", "probeLease"]

/**
 * Validates the local-first store's options: succeeds with them resolved, or
 * fails with one `InvalidOptions` naming every bad field.
 *
 * @category options
 * @since 0.1.0
 */
export const validateLocalFirstOptions = (
  input: LocalFirstInput = {}
): Effect.Effect<LocalFirstResolved, Options.InvalidOptions> => {
  const { issues, normalized } = Options.normalizeDurations({ ...input }, localFirstDurations)
  return Effect.map(
    Options.validate(
      "RedisCircuitBreaker.layerStoreLocalFirst",
      LocalFirstOptions,
      normalized,
      localFirstDurations.map(Options.positiveDuration),
      issues
    ),
    (o): LocalFirstResolved => {
      const syncIntervalMillis = o.syncInterval === undefined ? 250 : Duration.toMillis(o.syncInterval)
      return {
        prefix: o.prefix ?? "resilience:cbf:",
        syncIntervalMillis,
        syncTimeoutMillis: o.syncTimeout === undefined ? 1000 : Duration.toMillis(o.syncTimeout),
        quorum: o.quorum,
        voteTimeToLiveMillis:
          o.voteTimeToLive === undefined ? 3 * syncIntervalMillis : Duration.toMillis(o.voteTimeToLive),
        probeLeaseMillis: o.probeLease === undefined ? 4 * syncIntervalMillis : Duration.toMillis(o.probeLease),
        maxKeysPerSync: o.maxKeysPerSync ?? 1000,
        instanceId: o.instanceId ?? globalThis.crypto.randomUUID()
      }
    }
  )
}

/**
 * The local-first store's options, documented: the rows of the generated
 * Defaults table.
 *
 * @category options
 * @since 0.1.0
 */
export const localFirstOptionsDocs: ReadonlyArray<Options.FieldDoc> = Options.fieldDocs(LocalFirstOptions)

/**
 * What a local-first store's syncs did so far.
 *
 * @category models
 * @since 0.1.0
 */
export interface SyncStats {
  /** This process's id in the fleet. */
  readonly instanceId: string
  /** Syncs that completed (one per breaker per interval). */
  readonly syncs: number
  /** Syncs that failed: Redis unreachable, timed out, or a bad reply. */
  readonly errors: number
  /** Keys reported over all syncs. */
  readonly keysSynced: number
  /** The last failure's message, until a sync succeeds again. */
  readonly lastError: string | undefined
}

/**
 * The background sync of a local-first store: its statistics, and a sync on
 * demand (on shutdown, or to drive tests without waiting for the interval).
 *
 * @category services
 * @since 0.1.0
 */
export class LocalFirstSync extends Context.Service<
  LocalFirstSync,
  {
    readonly stats: Effect.Effect<SyncStats>
    /** Syncs every breaker of the store now (after a sync in flight); failures are counted, never raised. */
    readonly syncNow: Effect.Effect<void>
  }
>()("@effect-resilience/redis/RedisCircuitBreaker/LocalFirstSync") {}

// one sync of one breaker: see `Fleet.syncLua`
const syncScript = asFunction(
  Redis.script((changes: string, tag: string, args: Args) => [changes, tag, ...args], {
    numberOfKeys: 2,
    lua: `${luaDefinitions}${perCall}${Fleet.syncLua}`
  }).withReturnType<ReadonlyArray<string>>(),
  luaDefinitions,
  `${perCall}${Fleet.syncLua}`
)

/** A key's outcomes since the last flush (Closed circuits only). */
interface Delta {
  calls: number
  failures: number
  slow: number
  trailing: number
  allFailed: boolean
}

/** What this process last learned of a key from the fleet. */
interface Known {
  /** The fleet's generation of the key: the fencing token the next report carries. */
  gen: string
  openings: number
  /** The local circuit's generation once the fleet's decision was applied: a later one is a local change. */
  applied: number
}

interface BreakerSync {
  readonly name: string
  readonly sync: Effect.Effect<void>
}

const fleetStates: ReadonlyArray<"Closed" | "Open" | "HalfOpen"> = ["Closed", "Open", "HalfOpen"]

/**
 * Makes the local-first store over the current `Redis` service: the store,
 * and its sync service. The sync fiber lives as long as the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeStoreLocalFirst = (
  input: LocalFirstInput = {}
): Effect.Effect<
  { readonly store: CircuitBreaker.CircuitBreakerStore["Service"]; readonly sync: LocalFirstSync["Service"] },
  Options.InvalidOptions,
  Redis.Redis | Scope.Scope
> =>
  Effect.gen(function* () {
    const o = yield* validateLocalFirstOptions(input)
    const redis = yield* Redis.Redis
    const memory = yield* Effect.provide(
      Effect.service(CircuitBreaker.CircuitBreakerStore),
      CircuitBreaker.layerStoreMemory()
    )
    const runSync = redis.eval(syncScript)
    const breakers = new Set<BreakerSync>()
    const stats = { syncs: 0, errors: 0, keysSynced: 0, lastError: undefined as string | undefined }
    const lock = yield* Semaphore.make(1)

    const circuits = (options: CircuitBreaker.CircuitsOptions) =>
      Effect.gen(function* () {
        const inner = yield* memory.circuits(options)
        const local = inner.local
        if (local === undefined) return inner
        const { config, name, openMillisFor } = options
        const tag = `${o.prefix}{${name}}`
        const base = `${tag}:f:`
        const changesKey = `${tag}:changes`
        const head: Args = [
          base,
          o.instanceId,
          numberArg(o.quorum ?? 0),
          numberArg(o.voteTimeToLiveMillis),
          numberArg(o.probeLeaseMillis),
          numberArg(options.idleTimeToLiveMillis),
          "", // since: set per sync
          numberArg(options.maxKeys),
          numberArg(config.consecutiveFailures),
          numberArg(config.failureRateThreshold),
          numberArg(config.slowCallRateThreshold),
          config.windowType,
          numberArg(config.windowSize),
          numberArg(config.bucketMillis),
          numberArg(config.minimumCalls)
        ]
        const errorsMetric = Metric.withAttributes(syncErrorsMetric, { [Telemetry.attributes.name]: name })
        const durationMetric = Metric.withAttributes(syncDurationMetric, { [Telemetry.attributes.name]: name })

        // ---- what the hot path feeds: outcome deltas per key, and the keys to watch
        let dirty = new Map<string, Delta>()
        let lastKey: string | undefined
        let lastDelta: Delta | undefined
        const watch = new Set<string>()
        const known = new Map<string, Known>()
        let since = 0
        let listener:
          | ((key: string, circuit: CircuitBreaker.Circuit, transition: CircuitBreaker.Transition, now: number) => void)
          | undefined

        const onRecord = (
          key: string,
          circuit: CircuitBreaker.Circuit,
          generation: number,
          outcome: "Success" | "Failure" | "Ignored",
          slow: boolean
        ): void => {
          if (circuit.generation !== generation || outcome === "Ignored") return
          if (circuit.state !== "Closed") {
            if (circuit.state === "HalfOpen" && watch.size < options.maxKeys) watch.add(key)
            return
          }
          let d = key === lastKey ? lastDelta : dirty.get(key)
          if (d === undefined) {
            if (dirty.size >= options.maxKeys) return
            d = { calls: 0, failures: 0, slow: 0, trailing: 0, allFailed: true }
            dirty.set(key, d)
          }
          lastKey = key
          lastDelta = d
          d.calls++
          if (outcome === "Failure") {
            d.failures++
            d.trailing++
          } else {
            d.trailing = 0
            d.allFailed = false
          }
          if (slow) d.slow++
        }

        const remember = (key: string, entry: Known) => {
          known.delete(key)
          known.set(key, entry)
          if (known.size > options.maxKeys) {
            const oldest = known.keys().next()
            if (oldest.done !== true) known.delete(oldest.value)
          }
        }

        /** Moves a local circuit to the fleet's state, publishing the transition as the breaker's own. */
        const move = (
          key: string,
          c: CircuitBreaker.Circuit,
          to: "Open" | "Closed",
          now: number,
          openUntil: number,
          openMillis: number,
          openings: number
        ) => {
          const from = c.state
          const data: CircuitBreaker.CircuitData = {
            state: to,
            consecutive: 0,
            window: [],
            openedAt: to === "Open" ? now : c.openedAt,
            openUntil: to === "Open" ? openUntil : c.openUntil,
            consecutiveOpenings: openings,
            lastOpenMillis: to === "Open" ? openMillis : c.lastOpenMillis,
            backoffResetAt: to === "Closed" ? now + c.lastOpenMillis : c.backoffResetAt,
            halfOpenSince: c.halfOpenSince
          }
          Object.assign(c, CircuitBreaker.circuitFromData(data, config, local.nextGeneration()))
          listener?.(
            key,
            c,
            { from, to, openMillis: to === "Open" ? openMillis : 0, consecutiveOpenings: openings },
            now
          )
        }

        /** Applies the fleet's answer for one key. `reported`: the local generation the report was made at. */
        const apply = (
          key: string,
          state: "Closed" | "Open" | "HalfOpen",
          gen: string,
          retryAfterMillis: number,
          holder: boolean,
          openings: number,
          lastOpenMillis: number,
          reported: number | undefined,
          now: number
        ) => {
          const previous = known.get(key)
          let c = local.peek(key)
          if (c === undefined && (state === "Open" || (state === "HalfOpen" && !holder))) c = local.insert(key, now)
          if (c === undefined) {
            remember(key, { gen, openings, applied: -1 })
            watch.delete(key)
            return
          }
          const manual = c.state === "Disabled" || c.state === "ForcedOpen" || c.state === "MetricsOnly"
          // a circuit that changed while the sync was in flight reports that change at the next sync
          const moved = reported !== undefined && c.generation !== reported
          if (!manual && !moved) {
            if (state === "Open") {
              if (c.state === "Open") c.openUntil = now + retryAfterMillis
              else move(key, c, "Open", now, now + retryAfterMillis, lastOpenMillis, openings)
            } else if (state === "HalfOpen") {
              if (holder) {
                // the one prober: its circuit half-opens at its next admission
                if (c.state === "Open") c.openUntil = now
                else if (c.state === "Closed") move(key, c, "Open", now, now, lastOpenMillis, openings)
              } else {
                // the others wait, re-checking at each sync
                const until = now + 2 * o.syncIntervalMillis
                if (c.state === "Open") c.openUntil = until
                else move(key, c, "Open", now, until, lastOpenMillis, openings)
              }
            } else if (
              previous !== undefined &&
              previous.gen !== gen &&
              (c.state === "Open" || c.state === "HalfOpen")
            ) {
              // the fleet closed the key (or fenced off this process's stale opening)
              move(key, c, "Closed", now, 0, 0, openings)
            }
          }
          const applied = moved ? (previous?.applied ?? -1) : c.generation
          remember(key, { gen, openings, applied })
          if ((state !== "Closed" || c.state === "Open" || c.state === "HalfOpen") && watch.size < options.maxKeys) {
            watch.add(key)
          } else if (state === "Closed" && c.state !== "Open" && c.state !== "HalfOpen") {
            watch.delete(key)
          }
        }

        /** Takes the keys to report and their deltas: keys with activity first, then watched ones. */
        const take = () => {
          const keys: Array<string> = []
          const deltas: Array<Delta | undefined> = []
          for (const [key, d] of dirty) {
            if (keys.length >= o.maxKeysPerSync) break
            keys.push(key)
            deltas.push(d)
          }
          for (const key of keys) dirty.delete(key)
          if (dirty.size === 0) dirty = new Map()
          lastKey = undefined
          lastDelta = undefined
          const taken = new Set(keys)
          for (const key of watch) {
            if (keys.length >= o.maxKeysPerSync) break
            if (taken.has(key)) continue
            keys.push(key)
            deltas.push(undefined)
          }
          return { keys, deltas }
        }

        const syncOnce = Effect.suspend(() => {
          const { deltas, keys } = take()
          const args: Array<string> = [...head]
          args[6] = numberArg(since)
          const reported = new Map<string, number>()
          for (let i = 0; i < keys.length; i++) {
            const key = keys[i] ?? ""
            const d = deltas[i]
            const k = known.get(key)
            const c = local.peek(key)
            const state = c?.state ?? "Closed"
            const changed =
              c !== undefined &&
              (k === undefined ? state === "Open" || state === "HalfOpen" : c.generation !== k.applied)
            if (c !== undefined) reported.set(key, c.generation)
            args.push(
              key,
              k?.gen ?? "0",
              numberArg(d?.calls ?? 0),
              numberArg(d?.failures ?? 0),
              numberArg(d?.slow ?? 0),
              numberArg(d?.trailing ?? 0),
              d === undefined || d.allFailed ? "1" : "0",
              state,
              changed ? "1" : "0",
              numberArg(c?.lastOpenMillis ?? 0),
              numberArg(openMillisFor((k?.openings ?? 0) + 1)),
              numberArg(openMillisFor(1))
            )
          }
          return runSync(changesKey, tag, args).pipe(
            Effect.timeout(Duration.millis(o.syncTimeoutMillis)),
            // a failed sync's deltas are dropped (they are stale by the time Redis is back),
            // but its keys are reported again at the next sync: a local opening still reaches the fleet
            Effect.tapCause(() =>
              Effect.sync(() => {
                for (const key of keys) if (watch.size < options.maxKeys) watch.add(key)
              })
            ),
            Effect.flatMap((reply) =>
              Clock.clockWith((clock) =>
                Effect.try({
                  try: () => {
                    const now = clock.currentTimeMillisUnsafe()
                    const redisNow = numberReply(reply[0])
                    for (let i = 1; i + Fleet.replyFields - 1 < reply.length; i += Fleet.replyFields) {
                      const key = reply[i] ?? ""
                      const state = fleetStates.find((s) => s === reply[i + 1])
                      if (state === undefined) throw new ReplyError(`unknown fleet state ${reply[i + 1]}`)
                      apply(
                        key,
                        state,
                        reply[i + 2] ?? "0",
                        numberReply(reply[i + 3]),
                        reply[i + 4] === "1",
                        numberReply(reply[i + 5]),
                        numberReply(reply[i + 6]),
                        reported.get(key),
                        now
                      )
                    }
                    since = redisNow
                    stats.syncs++
                    stats.keysSynced += keys.length
                    stats.lastError = undefined
                  },
                  catch: (cause) => cause
                })
              )
            )
          )
        })

        const sync: Effect.Effect<void> = Clock.clockWith((clock) => {
          const start = clock.currentTimeMillisUnsafe()
          const elapsed = Effect.suspend(() =>
            Metric.update(durationMetric, Math.max(0, clock.currentTimeMillisUnsafe() - start) / 1000)
          )
          return syncOnce.pipe(
            Effect.andThen(elapsed),
            Effect.catchCause((cause) =>
              Cause.hasInterruptsOnly(cause)
                ? Effect.interrupt
                : Effect.suspend(() => {
                    stats.errors++
                    stats.lastError = describe(Cause.squash(cause))
                    return Effect.andThen(elapsed, Metric.update(errorsMetric, 1))
                  })
            )
          )
        })

        const entry: BreakerSync = { name, sync }
        breakers.add(entry)
        yield* Effect.addFinalizer(() => Effect.sync(() => breakers.delete(entry)))

        const hooked: CircuitBreaker.LocalCircuits = {
          ...local,
          onRecord,
          setTransitionListener: (l) => {
            listener = l
          }
        }
        return {
          ...inner,
          local: hooked,
          record: (recordOptions) =>
            Effect.suspend(() => {
              const c = local.peek(recordOptions.key)
              if (c !== undefined) {
                onRecord(
                  recordOptions.key,
                  c,
                  recordOptions.generation,
                  recordOptions.outcome,
                  recordOptions.durationMillis >= config.slowCallMillis
                )
              }
              return inner.record(recordOptions)
            })
        } satisfies CircuitBreaker.Circuits
      })

    const syncNow: Effect.Effect<void> = lock.withPermits(1)(
      Effect.suspend(() => Effect.forEach([...breakers], (b) => b.sync, { concurrency: "unbounded", discard: true }))
    )
    yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(Effect.sleep(Duration.millis(o.syncIntervalMillis)), syncNow))
    )
    return {
      store: CircuitBreaker.CircuitBreakerStore.of({ circuits }),
      sync: LocalFirstSync.of({
        stats: Effect.sync(() => ({ instanceId: o.instanceId, ...stats })),
        syncNow
      })
    }
  })

const syncErrorsMetric = Metric.counter(Telemetry.circuitBreakerSync.errors.name, {
  description: Telemetry.circuitBreakerSync.errors.description,
  incremental: true,
  attributes: { unit: Telemetry.circuitBreakerSync.errors.unit }
})

const syncDurationMetric = Metric.histogram(Telemetry.circuitBreakerSync.duration.name, {
  description: Telemetry.circuitBreakerSync.duration.description,
  boundaries: Telemetry.circuitBreakerSync.duration.boundaries,
  attributes: { unit: Telemetry.circuitBreakerSync.duration.unit }
})

/**
 * The local-first store as a layer: circuits decided in-process, synced with
 * the fleet through Redis every `syncInterval`. Provides the
 * `CircuitBreakerStore` and its `LocalFirstSync`.
 *
 * **When to use**
 *
 * Hot paths where a Redis round trip per call (the `layerStore` trade-off)
 * costs too much, but processes must still open a failing dependency
 * together.
 *
 * **Details**
 *
 * - Admission and recording run on the memory store's circuits. Each sync
 *   flushes, per key with activity, the outcomes counted since the last one
 *   and the circuit's state, in one atomic script call per breaker (Redis
 *   `TIME` for windows and open times), and applies the fleet's answer to the
 *   local circuits: an opening with the fleet's remaining time, a close,
 *   or the probe lease. Changes made by the sync are published on the
 *   breaker's `events` and metrics as its own transitions.
 * - Counts mode (default): the fleet's merged window trips the breaker's
 *   policies, and any process's own opening opens the key fleet-wide.
 *   Quorum mode (`quorum: n`): a key opens fleet-wide once `n` live
 *   processes (votes expire `voteTimeToLive` after a process's last sync)
 *   report it open.
 * - Fencing: a report carries the fleet generation its process last saw; a
 *   report from before a fleet change is dropped and its process is brought
 *   to the fleet's state.
 * - Half-open: one process at a time (the probe lease holder) probes a key;
 *   the others hold it open while they sync.
 * - Redis unreachable: every process decides alone; failed syncs are counted
 *   (`LocalFirstSync.stats`, `resilience.circuit_breaker.sync.errors`) and
 *   the next successful sync publishes what happened meanwhile (openings,
 *   not the counts).
 *
 * **Gotchas**
 *
 * - Manual states (`forceOpen`, `disable`, `metricsOnly`, `reset`) stay in
 *   the process, and the sync leaves such circuits alone.
 * - A fleet count window is approximate (each flush in full, older counts
 *   scaled down); a time window's counts land in the bucket of their flush.
 *
 * @see {@link layerStore} for one shared circuit per key, every call in Redis.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStoreLocalFirst = (
  input: LocalFirstInput = {}
): Layer.Layer<CircuitBreaker.CircuitBreakerStore | LocalFirstSync, Options.InvalidOptions, Redis.Redis> =>
  Layer.effectContext(
    Effect.map(makeStoreLocalFirst(input), ({ store, sync }) =>
      Context.make(CircuitBreaker.CircuitBreakerStore, store).pipe(Context.add(LocalFirstSync, sync))
    )
  )
