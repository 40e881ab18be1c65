/**
 * A `BulkheadStore` on Redis or Redis Cluster: bulkheads in many processes
 * share their permits, so `maxConcurrent` bounds the calls running across
 * the whole fleet, not in each process.
 *
 * **Details**
 *
 * - A key's permits are named leases in one sorted set,
 *   `<prefix>{<bulkhead>:<key>}` (a hash tag: on a cluster each key lives on
 *   one node and keys spread over all of them), each scored by when its lease
 *   runs out, on Redis `TIME`. Granting is one atomic script: drop the leases
 *   that ran out, count the live ones, grant below `maxConcurrent`.
 * - A running call renews its lease every third of `permitLease` (default 30
 *   seconds), so the permits of a process that died come back once its lease
 *   runs out. A lease that ran out is never renewed again, and a late release
 *   frees nothing: the permit's name fences it.
 * - Waiting: a call finding every permit taken waits in its process's line
 *   (`maxQueue`, by priority then arrival), whose head asks Redis again with
 *   capped exponential backoff and jitter (`pollInterval` doubling up to
 *   `maxPollInterval`) until `maxWait`. There is no FIFO across processes: a
 *   freed permit goes to whichever process asks first. A permit given back in
 *   a process lets its own head in at once.
 * - Store failures follow the bulkhead's `onStoreError` (`allow` by
 *   default). While Redis is unreachable, ioredis by default queues commands
 *   until it reconnects; connect with `enableOfflineQueue: false` to decide
 *   at once.
 *
 * **Gotchas**
 *
 * - A call that outlives its lease without renewing it (Redis unreachable for
 *   a whole `permitLease`) loses its permit while it still runs: the fleet may
 *   then briefly run more than `maxConcurrent`. Keep `permitLease` well above
 *   the longest outage you want to ride out.
 * - An adaptive `limit` is per process, so a bulkhead with one is refused
 *   over this store (`InvalidOptions`).
 *
 * **Example** (One limit for every process)
 *
 * ```ts
 * import { Bulkhead } from "@effect-resilience/core"
 * import { IoRedis, RedisBulkhead } from "@effect-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const Store = RedisBulkhead.layerStore({ prefix: "myapp:bh:" }).pipe(
 *   Layer.provide(IoRedis.layer({ host: "127.0.0.1", port: 6379, enableOfflineQueue: false }))
 * )
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ name: "reports", maxConcurrent: 20, maxQueue: 100, maxWait: "2 seconds" })
 *   return yield* Effect.succeed("report").pipe(Bulkhead.isolate(bulkhead))
 * }).pipe(Effect.scoped, Effect.provide(Store))
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { Bulkhead, Options } from "@effect-resilience/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import * as Lua from "./internal/bulkheadLua.ts"

/**
 * Options of the Redis store.
 *
 * @category models
 * @since 0.1.0
 */
export interface StoreOptions {
  /** Prepended to every key (default `"resilience:bh:"`). Braces in it would put every key on one cluster slot. */
  readonly prefix?: string | undefined
  /**
   * How long a call's permit is held without a renewal (default 30 seconds,
   * at least 3 milliseconds): renewed every third of it while the call runs,
   * so only a process that died (or lost Redis that long) loses it.
   */
  readonly permitLease?: Duration.Input | undefined
  /** A waiter's first wait before asking Redis again (default 10 milliseconds); the waits double from it. */
  readonly pollInterval?: Duration.Input | undefined
  /** The longest wait between a waiter's polls (default 250 milliseconds); at least `pollInterval`. */
  readonly maxPollInterval?: Duration.Input | undefined
}

/**
 * The store's options as a schema: its rules and the Defaults table.
 *
 * @category models
 * @since 0.1.0
 */
export const StoreOptions = Schema.Struct({
  prefix: Schema.optionalKey(
    Schema.String.annotate({ description: "Prepended to every key.", default: "resilience:bh:" })
  ),
  permitLease: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How long a permit is held without a renewal (renewed every third of it); at least 3 ms.",
      default: Duration.seconds(30)
    })
  ),
  pollInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "A waiter's first wait before asking again (the waits double from it); above zero.",
      default: Duration.millis(10)
    })
  ),
  maxPollInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "The longest wait between a waiter's polls; at least `pollInterval`.",
      default: Duration.millis(250)
    })
  )
})

const defaults = { prefix: "resilience:bh:", permitLease: 30_000, pollInterval: 10, maxPollInterval: 250 } as const

/**
 * The store's options resolved, durations in whole milliseconds.
 *
 * @category models
 * @since 0.1.0
 */
export interface ResolvedStoreOptions {
  readonly prefix: string
  readonly leaseMillis: number
  readonly baseMillis: number
  readonly capMillis: number
}

const millisOf = (value: unknown): number | undefined =>
  Duration.isDuration(value) ? Duration.toMillis(value) : undefined

const storeRules: ReadonlyArray<Options.Rule> = [
  (o) => {
    const lease = millisOf(o.permitLease)
    return lease !== undefined && !(lease >= 3 && Number.isFinite(lease))
      ? [{ path: "permitLease", message: "Expected a finite duration of at least 3 milliseconds" }]
      : []
  },
  (o) => {
    const base = millisOf(o.pollInterval)
    return base !== undefined && !(base > 0 && Number.isFinite(base))
      ? [{ path: "pollInterval", message: "Expected a finite duration greater than zero" }]
      : []
  },
  (o) => {
    const cap = millisOf(o.maxPollInterval)
    if (cap === undefined) return []
    if (!Number.isFinite(cap)) return [{ path: "maxPollInterval", message: "Expected a finite duration" }]
    const base = millisOf(o.pollInterval) ?? defaults.pollInterval
    return cap < base ? [{ path: "maxPollInterval", message: `Expected at least pollInterval (${base} ms)` }] : []
  }
]

/**
 * Validates the store's options: succeeds with them resolved, or fails with
 * one `Options.InvalidOptions` (pattern `RedisBulkhead`) listing every bad
 * field and its value.
 *
 * @category constructors
 * @since 0.1.0
 */
export const validateStoreOptions = (
  input: StoreOptions = {}
): Effect.Effect<ResolvedStoreOptions, Options.InvalidOptions> => {
  const { issues, normalized } = Options.normalizeDurations({ ...input }, [
    "permitLease",
    "pollInterval",
    "maxPollInterval"
  ])
  return Effect.map(Options.validate("RedisBulkhead", StoreOptions, normalized, storeRules, issues), (o) => {
    const baseMillis = Math.ceil(
      o.pollInterval === undefined ? defaults.pollInterval : Duration.toMillis(o.pollInterval)
    )
    return {
      prefix: o.prefix ?? defaults.prefix,
      leaseMillis: Math.ceil(o.permitLease === undefined ? defaults.permitLease : Duration.toMillis(o.permitLease)),
      baseMillis,
      capMillis: Math.max(
        baseMillis,
        Math.ceil(o.maxPollInterval === undefined ? defaults.maxPollInterval : Duration.toMillis(o.maxPollInterval))
      )
    }
  })
}

/**
 * The Defaults table of the store's options, generated from the schema.
 *
 * @category models
 * @since 0.1.0
 */
export const storeOptionsDocs: ReadonlyArray<Options.FieldDoc> = Options.fieldDocs(StoreOptions)

// ---------------------------------------------------------------------------
// the store
// ---------------------------------------------------------------------------

/** What went wrong, from a Redis error (whose cause is the client's error) or any other. */
const describe = (cause: unknown): string => {
  const inner = cause instanceof Redis.RedisError ? cause.cause : cause
  return inner instanceof Error ? inner.message : String(inner)
}

const permitsOf = (
  redis: Redis.Redis["Service"],
  name: string,
  resolved: ResolvedStoreOptions
): Bulkhead.RemotePermits => {
  const acquire = redis.eval(Lua.acquire)
  const renew = redis.eval(Lua.renew)
  const release = redis.eval(Lua.release)
  const held = redis.eval(Lua.held)
  const keyOf = (key: string) => `${resolved.prefix}{${name}:${key}}`
  const lease = String(resolved.leaseMillis)
  const storeError = (key: string, operation: string) => (cause: unknown) =>
    new Bulkhead.BulkheadStoreError({
      bulkhead: name,
      key,
      message: `Redis bulkhead store: ${operation} failed: ${describe(cause)}`,
      cause
    })
  return {
    acquire: (key, permit, cost, limit) =>
      Effect.mapBoth(acquire(keyOf(key), [`${permit}|${cost}`, String(cost), String(limit), lease]), {
        onFailure: storeError(key, "acquire"),
        onSuccess: ([granted, held]) => ({ granted: granted === 1, held })
      }),
    renew: (key, permit, cost) =>
      Effect.mapBoth(renew(keyOf(key), [`${permit}|${cost}`, lease]), {
        onFailure: storeError(key, "renew"),
        onSuccess: (live) => live === 1
      }),
    release: (key, permit, cost) =>
      Effect.mapBoth(release(keyOf(key), [`${permit}|${cost}`]), {
        onFailure: storeError(key, "release"),
        onSuccess: (live) => live === 1
      }),
    held: (key) => Effect.mapError(held(keyOf(key), []), storeError(key, "held")),
    renewMillis: Math.max(1, Math.floor(resolved.leaseMillis / 3)),
    poll: { baseMillis: resolved.baseMillis, capMillis: resolved.capMillis }
  }
}

/**
 * Makes the store over the current `Redis` service. Fails with
 * `Options.InvalidOptions` listing every bad option.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeStore = (
  options: StoreOptions = {}
): Effect.Effect<Bulkhead.BulkheadStore, Options.InvalidOptions, Redis.Redis> =>
  Effect.flatMap(validateStoreOptions(options), (resolved) =>
    Effect.map(Redis.Redis, (redis) => ({
      remote: (remoteOptions: Bulkhead.RemoteOptions) =>
        Effect.sync(() => permitsOf(redis, remoteOptions.name, resolved))
    }))
  )

/**
 * The store as a layer, over the current `Redis` service (`IoRedis.layer` or
 * `IoRedis.layerCluster`): every bulkhead made where it is provided holds its
 * permits in Redis.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStore = (options: StoreOptions = {}): Layer.Layer<never, Options.InvalidOptions, Redis.Redis> =>
  Layer.effect(Bulkhead.BulkheadStore, makeStore(options))

/**
 * The store as a layer, its options read from `Config` (`<prefix>PREFIX`,
 * `<prefix>PERMIT_LEASE`, `<prefix>POLL_INTERVAL`, `<prefix>MAX_POLL_INTERVAL`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStoreConfig = (
  configPrefix = "BULKHEAD_STORE_"
): Layer.Layer<never, Options.InvalidOptions | Config.ConfigError, Redis.Redis> =>
  Layer.effect(
    Bulkhead.BulkheadStore,
    Effect.gen(function* () {
      const read = yield* Config.all({
        prefix: Config.option(Config.String(`${configPrefix}PREFIX`)),
        permitLease: Config.option(Config.Duration(`${configPrefix}PERMIT_LEASE`)),
        pollInterval: Config.option(Config.Duration(`${configPrefix}POLL_INTERVAL`)),
        maxPollInterval: Config.option(Config.Duration(`${configPrefix}MAX_POLL_INTERVAL`))
      })
      return yield* makeStore({
        ...(read.prefix._tag === "Some" ? { prefix: read.prefix.value } : {}),
        ...(read.permitLease._tag === "Some" ? { permitLease: read.permitLease.value } : {}),
        ...(read.pollInterval._tag === "Some" ? { pollInterval: read.pollInterval.value } : {}),
        ...(read.maxPollInterval._tag === "Some" ? { maxPollInterval: read.maxPollInterval.value } : {})
      })
    })
  )
