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
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Fleet from "./internal/circuitBreakerFleet.ts"
import * as Lua from "./internal/circuitBreakerLua.ts"
import { asFunction, definitions as luaDefinitions, numberArg, numberReply, perCall } from "./internal/lua.ts"
import * as SyncMetrics from "./internal/syncMetrics.ts"

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
 * Its one parameter: the circuit's key, the index's key, then the arguments
 * (the breaker's settings first).
 */
const script = <Result>(body: string) =>
  asFunction(
    Redis.script((keysAndArgs: Args) => keysAndArgs, {
      numberOfKeys: 2,
      lua: `${Lua.definitions}${body}`
    }).withReturnType<Result>(),
    Lua.definitions,
    body
  )

/** One value of a reply: an integer reply, or a string (see `Lua.exact`). */
type ReplyValue = string | number
/** A transition: { from, to, openMillis, consecutiveOpenings }, or 0 for none. */
type TransitionReply = 0 | ReadonlyArray<ReplyValue>

// the generation (admitted by a closed circuit) | the full admission | n: the n-th opening's duration is needed
const admitScript = script<string | number | ReadonlyArray<ReplyValue>>(Lua.admit)
// a transition | n: the n-th opening's duration is needed (0 is no transition)
const recordScript = script<number | ReadonlyArray<ReplyValue>>(Lua.record)
const forceScript = script<TransitionReply>(Lua.force)
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

const states: ReadonlyArray<CircuitBreaker.StateTag> = [
  "Closed",
  "Open",
  "HalfOpen",
  "Disabled",
  "ForcedOpen",
  "MetricsOnly"
]

class ReplyError extends Error {}

const stateOf = (s: ReplyValue | undefined): CircuitBreaker.StateTag => {
  const state = states.find((known) => known === s)
  if (state === undefined) throw new ReplyError(`unknown state ${s}`)
  return state
}

/** The transition whose four values start at `at` in `reply` (from "" or absent: none). */
const transitionAt = (reply: ReadonlyArray<ReplyValue>, at: number): CircuitBreaker.Transition | undefined => {
  const from = reply[at]
  if (from === "" || from === undefined) return undefined
  return {
    from: stateOf(from),
    to: stateOf(reply[at + 1]),
    openMillis: numberReply(reply[at + 2]),
    consecutiveOpenings: numberReply(reply[at + 3])
  }
}

const transitionOf = (reply: TransitionReply): CircuitBreaker.Transition | undefined =>
  reply === 0 ? undefined : transitionAt(reply, 0)

/** A full admission reply: { verdict (1-based), generation, retryAfterMillis, ...transition }. */
const admissionOf = (reply: ReadonlyArray<ReplyValue>): CircuitBreaker.Admission => {
  const verdict = Lua.verdictCodes[Number(reply[0]) - 1]
  if (verdict === undefined) throw new ReplyError(`unknown verdict ${reply[0]}`)
  return {
    verdict,
    generation: Number(reply[1]),
    retryAfterMillis: Math.max(0, numberReply(reply[2])),
    transition: transitionAt(reply, 3)
  }
}

/** A closed circuit's admission: its generation alone. */
const admitted = (generation: string): CircuitBreaker.Admission => ({
  verdict: "Admit",
  generation: Number(generation),
  retryAfterMillis: 0,
  transition: undefined
})

const noTransition: Effect.Effect<CircuitBreaker.Transition | undefined> = Effect.succeed(undefined)

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
  // every call's first argument: made once, parsed once per library and kept by its text
  const settings = Lua.settingsText(config, {
    idleMillis: options.idleTimeToLiveMillis,
    maxKeys: options.maxKeys,
    leaseMillis,
    base,
    initialState: options.initialState
  })
  const storeError = (operation: string) => (cause: unknown) =>
    new CircuitBreaker.CircuitBreakerError({
      reason: new CircuitBreaker.CircuitBreakerStoreError({
        message: `Redis circuit breaker store: ${operation} failed: ${describe(cause)}`,
        cause
      })
    })
  const admitFailed = storeError("admit")
  const recordFailed = storeError("record")
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
  const keptChanging = (failed: (cause: unknown) => CircuitBreaker.CircuitBreakerError) =>
    Effect.fail(failed(new ReplyError("the circuit kept changing")))
  const admitRedis = redis.eval(admitScript)
  const recordRedis = redis.eval(recordScript)
  const forceRedis = redis.eval(forceScript)
  const readRedis = redis.eval(readScript)
  const exportRedis = redis.eval(exportScript)
  const importRedis = redis.eval(importScript)
  const sizeRedis = redis.eval(sizeScript)

  /**
   * Admits on `key`; a script that answers n (the duration of the n-th
   * opening is needed) runs again with it (`openN`, 0 for none).
   */
  const admit = (
    key: string,
    openN: number,
    tries: number
  ): Effect.Effect<CircuitBreaker.Admission, CircuitBreaker.CircuitBreakerError> =>
    Effect.flatMap(
      Effect.mapError(
        admitRedis(
          openN === 0
            ? [base + key, index, settings]
            : [base + key, index, settings, String(openN), numberArg(openMillisFor(openN))]
        ),
        admitFailed
      ),
      (reply) =>
        typeof reply === "string"
          ? Effect.succeed(admitted(reply))
          : typeof reply === "number"
            ? tries >= maxTries
              ? keptChanging(admitFailed)
              : admit(key, reply, tries + 1)
            : Effect.try({ try: () => admissionOf(reply), catch: admitFailed })
    )

  type RecordOptions = Parameters<CircuitBreaker.Circuits["record"]>[0]
  /** Records an outcome; runs again with the n-th opening's duration when asked for it (`openN`, 0 for none). */
  const record = (
    o: RecordOptions,
    openN: number,
    tries: number
  ): Effect.Effect<CircuitBreaker.Transition | undefined, CircuitBreaker.CircuitBreakerError> => {
    const args = [base + o.key, index, settings, String(o.generation), o.outcome, numberArg(o.durationMillis)]
    if (openN !== 0) args.push(numberArg(o.hintMillis), String(openN), numberArg(openMillisFor(openN)))
    else if (o.hintMillis !== 0) args.push(numberArg(o.hintMillis))
    return Effect.flatMap(Effect.mapError(recordRedis(args), recordFailed), (reply) =>
      reply === 0
        ? noTransition
        : typeof reply === "number"
          ? tries >= maxTries
            ? keptChanging(recordFailed)
            : record(o, reply, tries + 1)
          : Effect.try({ try: () => transitionAt(reply, 0), catch: recordFailed })
    )
  }

  return {
    local: undefined,
    admit: (key) => admit(key, 0, 1),
    record: (recordOptions) => record(recordOptions, 0, 1),
    force: (key, to) => run("force", forceRedis([base + key, index, settings, to]), transitionOf),
    read: (key) =>
      Effect.flatMap(
        run("read", readRedis([base + key, index, settings]), ([json, redisNow]) => ({
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
    export: run("export", exportRedis([index, index, settings]), (reply) => {
      const circuits: Array<readonly [string, CircuitBreaker.CircuitData]> = []
      for (let i = 0; i + 1 < reply.length; i += 2) {
        const [name, json] = [reply[i], reply[i + 1]]
        if (name === undefined || json === undefined) continue
        circuits.push([name, CircuitBreaker.circuitToData(toCircuit(decodeCircuit(json)))])
      }
      return circuits
    }),
    import: (circuits) => {
      const args: Array<string> = [index, index, settings]
      for (const [key, data] of circuits) args.push(key, toJson(CircuitBreaker.circuitFromData(data, config, 0)))
      return run("import", importRedis(args), () => undefined)
    },
    // the store's own size: a failure reads as the last size nobody knows, so 0
    size: sizeRedis([index, index, settings]).pipe(
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
 * demand (to drive tests without waiting for the interval; a breaker's last
 * sync, when its scope closes, is made for it).
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
  /** When its oldest outcomes were taken by a sync that failed (they are carried to the next), else undefined. */
  carriedSince: number | undefined
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
        // how long a failed sync's outcomes are carried: a time window's span (a count window keeps its last
        // calls, however old)
        const carriedForMillis =
          config.windowType === "time" ? config.windowSize * config.bucketMillis : Number.POSITIVE_INFINITY
        const syncMetrics = syncMetricsFor(name)

        // ---- what the hot path feeds: outcome deltas per key, and the keys to watch
        let dirty = new Map<string, Delta>()
        // the deltas of failed syncs, for the next (see `carry`)
        const carried = new Map<string, Delta>()
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
            d = { calls: 0, failures: 0, slow: 0, trailing: 0, allFailed: true, carriedSince: undefined }
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

        /**
         * Keeps the delta of a key whose sync failed for the next sync (merged before the key's newer
         * outcomes there): for at most `maxKeys` keys, a count window's at most its size (scaled), a time
         * window's until older than the window's span (see `take`).
         */
        const carry = (key: string, d: Delta, takenAt: number) => {
          if (config.windowType === "count" && d.calls > config.windowSize) {
            const scale = config.windowSize / d.calls
            d.failures = Math.round(d.failures * scale)
            d.slow = Math.round(d.slow * scale)
            d.calls = config.windowSize
          }
          d.carriedSince ??= takenAt
          if (carried.size < options.maxKeys || carried.has(key)) carried.set(key, d)
        }

        /** The delta to report for a key: what a failed sync left (unless too old), then what came since. */
        const withCarried = (key: string, fresh: Delta | undefined, now: number): Delta | undefined => {
          const old = carried.get(key)
          if (old === undefined) return fresh
          carried.delete(key)
          if (old.carriedSince !== undefined && now - old.carriedSince > carriedForMillis) return fresh
          if (fresh === undefined) return old
          // the old run, then the fresh one
          const run = Fleet.concat(old, fresh)
          return {
            calls: old.calls + fresh.calls,
            failures: old.failures + fresh.failures,
            slow: old.slow + fresh.slow,
            trailing: run.trailing,
            allFailed: run.allFailed,
            carriedSince: old.carriedSince
          }
        }

        /** Takes the keys to report and their deltas: keys with activity first, then watched ones. */
        const take = (now: number) => {
          const keys: Array<string> = []
          const deltas: Array<Delta | undefined> = []
          for (const [key, d] of dirty) {
            if (keys.length >= o.maxKeysPerSync) break
            keys.push(key)
            deltas.push(withCarried(key, d, now))
          }
          for (const [key] of carried) {
            if (keys.length >= o.maxKeysPerSync) break
            const d = withCarried(key, undefined, now)
            if (d === undefined) continue
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

        const syncOnce = Clock.clockWith((clock) => {
          const takenAt = clock.currentTimeMillisUnsafe()
          const { deltas, keys } = take(takenAt)
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
            // a failed sync's keys are reported again at the next sync (a local opening still reaches the
            // fleet), and its deltas are carried into it (see `carry`); an interrupted one's are not: the
            // store is closing, and its script may have run
            Effect.tapCause((cause) =>
              Effect.sync(() => {
                for (const key of keys) if (watch.size < options.maxKeys) watch.add(key)
                if (Cause.hasInterruptsOnly(cause)) return
                for (let i = 0; i < keys.length; i++) {
                  const d = deltas[i]
                  if (d !== undefined) carry(keys[i] ?? "", d, takenAt)
                }
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
          const elapsed = syncMetrics.timed(clock, clock.currentTimeMillisUnsafe())
          return syncOnce.pipe(
            Effect.andThen(elapsed),
            Effect.catchCause((cause) =>
              Cause.hasInterruptsOnly(cause)
                ? Effect.interrupt
                : Effect.suspend(() => {
                    stats.errors++
                    stats.lastError = describe(Cause.squash(cause))
                    return Effect.andThen(elapsed, syncMetrics.failed)
                  })
            )
          )
        })

        const entry: BreakerSync = { name, sync }
        breakers.add(entry)
        // when the breaker goes (its scope closes, as on shutdown), its outcomes not yet synced are flushed
        // in one last sync, bounded: it waits at most one sync in flight and its own syncTimeout
        yield* Effect.addFinalizer(() =>
          Effect.suspend(() => (dirty.size === 0 && carried.size === 0 ? Effect.void : lock.withPermits(1)(sync))).pipe(
            Effect.timeout(Duration.millis(2 * o.syncTimeoutMillis)),
            Effect.ignore,
            Effect.ensuring(Effect.sync(() => breakers.delete(entry)))
          )
        )

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

const syncMetricsFor = SyncMetrics.make(Telemetry.circuitBreakerSync)

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
 *   the next successful sync publishes what happened meanwhile: openings,
 *   and the failed syncs' counts, merged before the newer ones — bounded:
 *   for at most `maxKeys` keys, a count window's at most its size (scaled
 *   down), a time window's only while younger than the window's span.
 * - Shutdown: when a breaker's scope closes, its counts not yet synced are
 *   flushed in one last sync, which waits at most twice `syncTimeout`.
 *
 * **Gotchas**
 *
 * - Manual states (`forceOpen`, `disable`, `metricsOnly`, `reset`) stay in
 *   the process, and the sync leaves such circuits alone.
 * - A fleet count window is approximate (each flush in full, older counts
 *   scaled down); a time window's counts land in the bucket of their flush.
 * - A sync that timed out may still have run in Redis: its counts, kept for
 *   the next sync, may then count twice (within the bounds above).
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
