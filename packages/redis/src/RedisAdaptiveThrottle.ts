/**
 * A local-first `AdaptiveThrottleStore` on Redis or Redis Cluster: adaptive
 * throttles in many processes decide in-process, on the fleet's requests and
 * accepts per key.
 *
 * **Details**
 *
 * - A throttle on this store decides each call in memory, as over no store,
 *   on the fleet's totals of its key (as answered at its last sync) plus its
 *   own counts since. Every `syncInterval` (1 second by default) one
 *   background fiber syncs each throttle in one atomic script call: the
 *   keys counted since the last sync (at most `maxKeysPerSync`) push their
 *   deltas into the fleet's window for the key (a ring of the throttle's
 *   buckets on Redis `TIME`) and pull the fleet's totals back.
 * - Keys expire with the window: a key no process reported for a whole
 *   window leaves nothing in Redis.
 * - Redis unreachable: each process decides on its own window, as without a
 *   store; calls never fail because of Redis. Failed syncs are counted
 *   (`LocalFirstSync.stats`) and their deltas reported at the next sync, cut
 *   to what the process's window still holds.
 * - When a throttle's scope closes, its counts not yet synced are flushed in
 *   one last sync, which waits at most twice `syncTimeout`.
 *
 * **Example** (Two processes, one view of a backend)
 *
 * ```ts
 * import { AdaptiveThrottle } from "@effect-resilience/core"
 * import { IoRedis, RedisAdaptiveThrottle } from "@effect-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const Fleet = RedisAdaptiveThrottle.layerStoreLocalFirst({ prefix: "myapp:at:" }).pipe(
 *   Layer.provide(IoRedis.layer({ host: "127.0.0.1", port: 6379, enableOfflineQueue: false }))
 * )
 *
 * const program = Effect.gen(function* () {
 *   const throttle = yield* AdaptiveThrottle.make({ name: "quotes" })
 *   return yield* Effect.succeed("quote").pipe(AdaptiveThrottle.throttle(throttle, { key: "eu-1" }))
 * }).pipe(Effect.scoped, Effect.provide(Fleet))
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { AdaptiveThrottle, Options, Telemetry } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Lua from "./internal/adaptiveThrottleLua.ts"
import { asFunction, definitions as luaDefinitions, numberArg, numberReply, perCall } from "./internal/lua.ts"
import * as SyncMetrics from "./internal/syncMetrics.ts"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

const defaults = {
  prefix: "resilience:at:",
  syncIntervalMillis: 1000,
  syncTimeoutMillis: 1000,
  maxKeysPerSync: 1000
} as const

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
      description: "Prepended to every Redis key of the fleet's windows.",
      default: defaults.prefix
    })
  ),
  syncInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "How often each process pushes its throttles' counts to Redis and pulls the fleet's totals back (one script call per throttle).",
      default: Duration.millis(defaults.syncIntervalMillis)
    })
  ),
  syncTimeout: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "A sync that takes longer is abandoned and counted as a sync error.",
      default: Duration.millis(defaults.syncTimeoutMillis)
    })
  ),
  maxKeysPerSync: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "Keys reported per throttle per sync (keys counted since the last sync first; the rest wait for the next one).",
      default: defaults.maxKeysPerSync
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
  readonly maxKeysPerSync?: number | undefined
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
  readonly maxKeysPerSync: number
}

const localFirstDurations = ["syncInterval", "syncTimeout"]

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
      "RedisAdaptiveThrottle.layerStoreLocalFirst",
      LocalFirstOptions,
      normalized,
      localFirstDurations.map(Options.positiveDuration),
      issues
    ),
    (o): LocalFirstResolved => ({
      prefix: o.prefix ?? defaults.prefix,
      syncIntervalMillis:
        o.syncInterval === undefined ? defaults.syncIntervalMillis : Duration.toMillis(o.syncInterval),
      syncTimeoutMillis: o.syncTimeout === undefined ? defaults.syncTimeoutMillis : Duration.toMillis(o.syncTimeout),
      maxKeysPerSync: o.maxKeysPerSync ?? defaults.maxKeysPerSync
    })
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

// ---------------------------------------------------------------------------
// the store
// ---------------------------------------------------------------------------

/**
 * What a local-first store's syncs did so far.
 *
 * @category models
 * @since 0.1.0
 */
export interface SyncStats {
  /** Syncs that completed (one per throttle with something to report, per interval). */
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
 * demand (to drive tests without waiting for the interval; a throttle's last
 * sync, when its scope closes, is made for it).
 *
 * @category services
 * @since 0.1.0
 */
export class LocalFirstSync extends Context.Service<
  LocalFirstSync,
  {
    readonly stats: Effect.Effect<SyncStats>
    /** Syncs every throttle of the store now (after a sync in flight); failures are counted, never raised. */
    readonly syncNow: Effect.Effect<void>
  }
>()("@effect-resilience/redis/RedisAdaptiveThrottle/LocalFirstSync") {}

// one sync of one throttle: see `Lua.syncLua`
const syncScript = asFunction(
  Redis.script((tag: string, args: ReadonlyArray<string>) => [tag, ...args], {
    numberOfKeys: 1,
    lua: `${luaDefinitions}${perCall}${Lua.syncLua}`
  }).withReturnType<ReadonlyArray<string | number>>(),
  luaDefinitions,
  `${perCall}${Lua.syncLua}`
)

class ReplyError extends Error {}

const describe = (cause: unknown): string => {
  const inner = cause instanceof Redis.RedisError ? cause.cause : cause
  return inner instanceof Error ? inner.message : String(inner)
}

/** The fleet's totals in a sync's reply. */
const parseReply = (reply: ReadonlyArray<string | number>, reported: number): Array<AdaptiveThrottle.FleetCounts> => {
  if (!Array.isArray(reply) || reply.length !== 1 + Lua.replyFields * reported) {
    throw new ReplyError(`unexpected sync reply of ${Array.isArray(reply) ? reply.length : typeof reply}`)
  }
  const totals: Array<AdaptiveThrottle.FleetCounts> = []
  for (let i = 1; i < reply.length; i += Lua.replyFields) {
    const requests = numberReply(reply[i + 1])
    const accepts = numberReply(reply[i + 2])
    if (!(requests >= 0 && accepts >= 0 && Number.isFinite(requests))) throw new ReplyError("bad totals in sync reply")
    totals.push({ key: String(reply[i]), requests, accepts })
  }
  return totals
}

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
  {
    readonly store: AdaptiveThrottle.AdaptiveThrottleStore["Service"]
    readonly sync: LocalFirstSync["Service"]
  },
  Options.InvalidOptions,
  Redis.Redis | Scope.Scope
> =>
  Effect.gen(function* () {
    const o = yield* validateLocalFirstOptions(input)
    const redis = yield* Redis.Redis
    const runSync = redis.eval(syncScript)
    const members = new Set<{ readonly sync: Effect.Effect<void> }>()
    const stats = { syncs: 0, errors: 0, keysSynced: 0, lastError: undefined as string | undefined }
    const lock = yield* Semaphore.make(1)

    const syncOf = (member: AdaptiveThrottle.FleetMember): Effect.Effect<void> => {
      const tag = `${o.prefix}{${member.name}}`
      const syncMetrics = syncMetricsFor(member.name)
      const head = [`${tag}:`, numberArg(Duration.toMillis(member.options.window)), numberArg(member.options.buckets)]
      return Clock.clockWith((clock) => {
        const start = clock.currentTimeMillisUnsafe()
        const reports = member.take(o.maxKeysPerSync, start)
        if (reports.length === 0) return Effect.void
        const elapsed = syncMetrics.timed(clock, start)
        const args = [...head]
        for (const r of reports) args.push(r.key, numberArg(r.requests), numberArg(r.accepts))
        return runSync(tag, args).pipe(
          Effect.timeout(Duration.millis(o.syncTimeoutMillis)),
          Effect.flatMap((reply) =>
            Effect.try({ try: () => parseReply(reply, reports.length), catch: (cause) => cause })
          ),
          Effect.matchCauseEffect({
            onSuccess: (totals) =>
              Effect.andThen(
                Effect.sync(() => {
                  member.apply(totals, clock.currentTimeMillisUnsafe())
                  stats.syncs++
                  stats.keysSynced += reports.length
                  stats.lastError = undefined
                }),
                elapsed
              ),
            // a failed sync's deltas are reported again at the next sync; the throttle decides alone meanwhile
            onFailure: (cause) =>
              Effect.suspend(() => {
                member.failed(reports)
                if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
                stats.errors++
                stats.lastError = describe(Cause.squash(cause))
                return Effect.andThen(elapsed, syncMetrics.failed)
              })
          })
        )
      })
    }

    const join = (member: AdaptiveThrottle.FleetMember): Effect.Effect<void, never, Scope.Scope> =>
      Effect.suspend(() => {
        const entry = { sync: syncOf(member) }
        members.add(entry)
        // when the throttle goes (its scope closes, as on shutdown), its counts not yet synced are flushed
        // in one last sync, bounded: it waits at most one sync in flight and its own syncTimeout
        return Effect.addFinalizer(() =>
          lock
            .withPermits(1)(entry.sync)
            .pipe(
              Effect.timeout(Duration.millis(2 * o.syncTimeoutMillis)),
              Effect.ignore,
              Effect.ensuring(Effect.sync(() => members.delete(entry)))
            )
        )
      })

    const syncNow: Effect.Effect<void> = lock.withPermits(1)(
      Effect.suspend(() => Effect.forEach([...members], (m) => m.sync, { concurrency: "unbounded", discard: true }))
    )
    yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(Effect.sleep(Duration.millis(o.syncIntervalMillis)), syncNow))
    )
    return {
      store: AdaptiveThrottle.AdaptiveThrottleStore.of({ join }),
      sync: LocalFirstSync.of({
        stats: Effect.sync(() => ({ ...stats })),
        syncNow
      })
    }
  })

const syncMetricsFor = SyncMetrics.make(Telemetry.adaptiveThrottleSync)

/**
 * The local-first store as a layer: throttles decide in-process on the
 * fleet's counts, synced through Redis every `syncInterval`. Provides the
 * `AdaptiveThrottleStore` (which `AdaptiveThrottle.make` picks up) and its
 * `LocalFirstSync`.
 *
 * **When to use**
 *
 * Many clients of one backend, each with too few requests per key for its
 * own window to tell a refusing backend from noise: on the fleet's counts,
 * every client rejects at the fleet-wide probability.
 *
 * **Details**
 *
 * - Between syncs a throttle decides on the fleet's totals of the key (its
 *   own counts included) plus its counts since; a key the fleet has not
 *   answered for yet is decided on the process's own window.
 * - Each sync reports the keys counted since the last one (at most
 *   `maxKeysPerSync`, the rest at the next sync), then refreshes keys whose
 *   fleet view may reject. A fleet view not refreshed for a whole window is
 *   dropped.
 * - Redis unreachable: every process decides on its own window; failed syncs
 *   are counted, and their deltas reported at the next successful sync, cut
 *   to what the process's window still holds.
 * - Shutdown: a throttle's counts not yet synced are flushed in one last
 *   sync, which waits at most twice `syncTimeout`.
 *
 * **Gotchas**
 *
 * - A sync that timed out may still have run in Redis: its deltas, reported
 *   again, may then count twice.
 * - The fleet's counts land in the bucket of their sync, on Redis `TIME`:
 *   they leave the window up to a `syncInterval` later than the process's
 *   own.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStoreLocalFirst = (
  input: LocalFirstInput = {}
): Layer.Layer<AdaptiveThrottle.AdaptiveThrottleStore | LocalFirstSync, Options.InvalidOptions, Redis.Redis> =>
  Layer.effectContext(
    Effect.map(makeStoreLocalFirst(input), ({ store, sync }) =>
      Context.make(AdaptiveThrottle.AdaptiveThrottleStore, store).pipe(Context.add(LocalFirstSync, sync))
    )
  )
