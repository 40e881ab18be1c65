/**
 * Bulkheads: a bound on the calls that run at once, so one slow dependency
 * (or one noisy tenant) cannot take every fiber, connection or socket the
 * process has.
 *
 * A bulkhead holds `maxConcurrent` permits per key. A call takes its `cost`
 * in permits (1 by default) when they are free and gives them back when it
 * ends, however it ends: success, failure, defect or interruption. A call that
 * finds them taken waits in a line of at most `maxQueue` calls, for at most
 * `maxWait`; with no room in the line it is rejected at once.
 *
 * **Details**
 *
 * - The line is ordered by `priority` (higher first) and FIFO within a
 *   priority, and served strictly from its head: a costly call at the head
 *   holds back cheaper ones behind it, so it cannot starve. An arrival of a
 *   priority higher than every waiter's goes first.
 * - Keyed: one bulkhead guards many keys (a tenant, a host), each with its own
 *   permits and line. Idle keys (nothing running, nobody waiting) are dropped
 *   by a background sweep and first when `maxKeys` is reached.
 * - Rejections are one typed error, `BulkheadError`, whose reason is
 *   `BulkheadFull` (no room in the line), `BulkheadTimeout` (waited
 *   `maxWait`) or `BulkheadCostExceeded` (a cost above `maxConcurrent`),
 *   built without a stack trace. Full and timeout carry a `retryAfter` hint
 *   once the key has seen contention: the mean duration of its calls times
 *   the rounds needed to serve the calls ahead.
 * - Adaptive limits: with `limit` (`aimd`, `gradient` or `vegas`), each
 *   key's limit moves between `minLimit` and `maxLimit` from the duration and
 *   outcome of its calls (after Netflix's concurrency-limits and Envoy's
 *   adaptive concurrency filter), starting at `maxConcurrent`. A limit that
 *   falls below the calls running lets them finish; new calls wait (or are
 *   rejected) until fewer run. One that rises admits the head of the line at
 *   once. Without `limit` nothing is timed, and the fixed path is unchanged.
 * - Monitoring: `events` (rejections, queued and acquired waiters, limit
 *   changes), metrics named in `Telemetry.bulkhead`, span events for
 *   rejections, `stats`, `state(key)`, and `compartments(max)`: the most
 *   urgent keys (most queued, then fullest), a bounded read of a keyed bulkhead.
 * - Store: the permits live in the process unless the `BulkheadStore` in
 *   context is remote (Redis), chosen once by `make`; the in-process path
 *   never consults it.
 *
 * **Gotchas**
 *
 * - By default the permits live in this process: N replicas admit N ×
 *   `maxConcurrent`. Provide a remote `BulkheadStore` (`RedisBulkhead.layerStore`
 *   in `@effect-resilience/redis`) to share them across the fleet, as leases.
 * - A call waits *inside* `isolate`: put a timeout outside it if the wait
 *   must count against the caller's deadline, and keep `maxWait` below it.
 *
 * **Example** (Two at a time, the third rejected)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Deferred, Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ name: "reports", maxConcurrent: 2 })
 *   const gate = yield* Deferred.make<void>()
 *   const slow = Deferred.await(gate).pipe(Bulkhead.isolate(bulkhead))
 *   yield* Effect.forkChild(slow)
 *   yield* Effect.forkChild(slow)
 *   yield* Effect.yieldNow
 *   const third = yield* Effect.flip(Effect.succeed("report").pipe(Bulkhead.isolate(bulkhead)))
 *   yield* Deferred.succeed(gate, undefined)
 *   return third.reason._tag
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => "BulkheadFull"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import { type Errors, makeCompartments, monotonicMillis } from "./internal/bulkheadCompartments.ts"
import { defaults, limitDefaults, normalizeLimit, resolveOptions, rules } from "./internal/bulkheadOptions.ts"
import { makeRemote } from "./internal/bulkheadRemote.ts"
import { dualBy } from "./internal/dual.ts"
import * as Options_ from "./Options.ts"

/**
 * Runtime identifier of `Bulkhead` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Bulkhead"

/**
 * Type-level identifier of `Bulkhead` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Bulkhead"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A bulkhead: permits and a waiting line per key.
 *
 * @category models
 * @since 0.1.0
 */
export interface Bulkhead {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Runs `self` holding its permits; see {@link isolate}. */
  readonly isolate: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options?: IsolateOptions | undefined
  ) => Effect.Effect<A, E | BulkheadError, R>
  /** One key's permits and line now (the bulkhead's own, for calls without a key, when `key` is omitted). */
  readonly state: (key?: string | undefined) => Effect.Effect<CompartmentState>
  /** Totals over every key. */
  readonly stats: Effect.Effect<Stats>
  /**
   * The `max` most urgent compartments and how many there are; see
   * {@link CompartmentList} for the order. `max` must be a positive integer
   * (else a defect: `Options.InvalidOptions` naming `max`).
   */
  readonly compartments: (max: number) => Effect.Effect<CompartmentList>
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the bulkhead a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const Bulkhead: Context.Service<Bulkhead, Bulkhead> = Context.Service<Bulkhead>(TypeId)

/**
 * Per-call options of `isolate`.
 *
 * @category models
 * @since 0.1.0
 */
export interface IsolateOptions {
  /** The compartment: a tenant, a host (default: the bulkhead's own, reported as its name). */
  readonly key?: string | undefined
  /** Higher is served first among waiters; any finite number (default 0). */
  readonly priority?: number | undefined
  /** Permits the call takes: an integer from 1 to `maxConcurrent` (to `minLimit` with an adaptive `limit`; default 1). */
  readonly cost?: number | undefined
}

/**
 * One key's permits and line.
 *
 * @category models
 * @since 0.1.0
 */
export interface CompartmentState {
  readonly key: string
  /** Permits held: by running calls, and by waiters granted that have not started yet. */
  readonly active: number
  /** Calls waiting. */
  readonly queued: number
  /** Permits free: `limit - active`, at least 0. */
  readonly available: number
  /**
   * The key's limit now: `maxConcurrent` for a fixed bulkhead; the current
   * adaptive limit with `limit` (the initial one for a key not held).
   */
  readonly limit: number
}

/**
 * The most urgent compartments of a bulkhead (`compartments(max)`): at most
 * `max` of them, in order, and how many there are.
 *
 * **Details**
 *
 * - The order, most urgent first: the most calls `queued`; then the highest
 *   `active / limit` (a compartment over its limit, after an adaptive limit
 *   fell, first); then the lowest `limit` (with an adaptive `limit`, the
 *   furthest below `maxLimit`); then by `key`, so the order is total.
 * - In memory, the bulkhead's own compartment (calls without a key, its name
 *   as the key) is always one of them, and `total` is `Stats.keys + 1`.
 *   Keys swept as idle (or dropped at `maxKeys`) are gone from it.
 * - Over a remote store (`BulkheadStore`), the compartments are this
 *   process's: the keys with calls running or waiting here (the own one
 *   included only then), `active` the permits this process holds, not the
 *   fleet's (read those with `state(key)`, one store round trip each).
 * - O(keys) time per read, and nothing allocated per key beyond the result
 *   (a bounded selection of `max`).
 *
 * **Example** (The tenants with a queue first)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Deferred, Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ name: "api", maxConcurrent: 1, maxQueue: 10, maxWait: "1 minute" })
 *   const gate = yield* Deferred.make<void>()
 *   const hold = (key: string) => Effect.forkChild(Deferred.await(gate).pipe(Bulkhead.isolate(bulkhead, { key })))
 *   // "a": one running, one waiting; "b": one running; "c": ran and is idle
 *   yield* Effect.succeed(1).pipe(Bulkhead.isolate(bulkhead, { key: "c" }))
 *   yield* hold("a")
 *   yield* hold("b")
 *   yield* Effect.yieldNow
 *   yield* hold("a")
 *   yield* Effect.yieldNow
 *   const { compartments, total } = yield* bulkhead.compartments(2)
 *   yield* Deferred.succeed(gate, undefined)
 *   return [total, compartments.map((c) => [c.key, c.active, c.queued])]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [4, [["a", 1, 1], ["b", 1, 0]]]
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface CompartmentList {
  /** The compartments held, every one of them (the ones listed and the rest). */
  readonly total: number
  /** At most `max` of them, the most urgent first. */
  readonly compartments: ReadonlyArray<CompartmentState>
}

/**
 * What a bulkhead has done, over every key.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  /** Permits held now. */
  readonly active: number
  /** Calls waiting now. */
  readonly queued: number
  /** Calls that ran (at once or after waiting), since the start. */
  readonly admitted: number
  /** Calls rejected (any reason), since the start. */
  readonly rejected: number
  /** Keys held in memory (the bulkhead's own compartment, for calls without a key, not counted). */
  readonly keys: number
  /** The limit of the bulkhead's own compartment (calls without a key): see `CompartmentState.limit`. */
  readonly limit: number
  /** Changes of an integer limit, over every key, since the start (0 for a fixed bulkhead). */
  readonly limitChanges: number
  /**
   * Remote store failures since the start (always 0 in memory): calls let
   * through or rejected by `onStoreError`, failed renewals and releases, and
   * leases found run out on renewal.
   */
  readonly storeErrors: number
}

/**
 * The bulkhead's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.Rejected | Event.Queued | Event.Acquired | Event.LimitChanged

/**
 * The members of {@link Event}.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * A call was rejected without running.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Rejected {
    readonly _tag: "Rejected"
    readonly bulkhead: string
    readonly key: string
    readonly reason: BulkheadErrorReason["_tag"]
    readonly cost: number
    readonly priority: number
    /** Permits held and calls waiting at the rejection. */
    readonly active: number
    readonly queued: number
    readonly retryAfter: Duration.Duration | undefined
  }
  /**
   * A call joined the line.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Queued {
    readonly _tag: "Queued"
    readonly bulkhead: string
    readonly key: string
    readonly cost: number
    readonly priority: number
    /** Calls waiting, this one included. */
    readonly queued: number
  }
  /**
   * A call that waited got its permits and started.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Acquired {
    readonly _tag: "Acquired"
    readonly bulkhead: string
    readonly key: string
    readonly cost: number
    readonly priority: number
    readonly waited: Duration.Duration
  }
  /**
   * An adaptive key's integer limit changed (emitted only when it does, so
   * at most once per call that ends).
   *
   * @category models
   * @since 0.1.0
   */
  export interface LimitChanged {
    readonly _tag: "LimitChanged"
    readonly bulkhead: string
    readonly key: string
    readonly algorithm: LimitAlgorithm
    readonly from: number
    readonly to: number
  }
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))
const Smoothing = Schema.Number.check(
  Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMinimum: true, exclusiveMaximum: false })
)

/** The `smoothing` field of the delay-based limits, with its algorithm's default. */
const smoothing = (defaultValue: number) =>
  Schema.optionalKey(
    Smoothing.annotate({
      description: "Weight of each new estimate, in (0, 1]: 1 follows it at once; lower values move slower.",
      default: defaultValue
    })
  )

const limitBounds = {
  minLimit: Schema.optionalKey(
    PositiveInt.annotate({
      description: "The lowest the limit goes, whatever the calls do (and the most a call's `cost` may be).",
      default: limitDefaults.minLimit
    })
  ),
  maxLimit: Schema.optionalKey(
    PositiveInt.annotate({
      description: "The highest the limit goes; at least `minLimit`.",
      default: limitDefaults.maxLimit
    })
  )
}

/**
 * AIMD (additive increase, multiplicative decrease; loss based, like TCP
 * Reno): +1 per window of `limit` successes while the limit is in use (at
 * least half of it in flight), × `backoffRatio` on a failure or a call
 * slower than `latencyThreshold` (once per episode: calls that started
 * before the last decrease do not decrease it again).
 *
 * @category options
 * @since 0.1.0
 */
export const AimdLimit = Schema.Struct({
  algorithm: Schema.Literal("aimd"),
  ...limitBounds,
  backoffRatio: Schema.optionalKey(
    Schema.Number.check(
      Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMinimum: true, exclusiveMaximum: true })
    ).annotate({
      description: "The factor the limit is multiplied by on a drop (at least 1 less each time), in (0, 1).",
      default: limitDefaults.backoffRatio
    })
  ),
  latencyThreshold: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "A call that takes longer counts as a drop, as a failure does; above zero.",
      default: limitDefaults.latencyThreshold
    })
  )
}).annotate({ identifier: "AimdLimit" })

/**
 * Gradient (Netflix's Gradient2; delay based): at the end of each window,
 * `limit × clamp(longRtt / shortRtt, 0.5, 1) + queueSize`, smoothed, where
 * the short-term RTT is the window's mean and the long-term one an
 * exponential average of the windows that drifts down when the short term
 * is lower. Failures are not a signal: latency is.
 *
 * @category options
 * @since 0.1.0
 */
export const GradientLimit = Schema.Struct({
  algorithm: Schema.Literal("gradient"),
  ...limitBounds,
  smoothing: smoothing(limitDefaults.gradientSmoothing),
  queueSize: Schema.optionalKey(
    NonNegative.annotate({
      description: "Headroom added to each estimate, so the limit can grow when the RTT holds; `√limit` when unset."
    })
  ),
  longWindow: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Windows the long-term RTT averages over (exponential, factor `2 / (longWindow + 1)`).",
      default: limitDefaults.longWindow
    })
  ),
  window: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "The shortest sampling window: the limit is recomputed at most once per window; above zero.",
      default: limitDefaults.window
    })
  ),
  minWindowSamples: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Calls a window needs before it ends (a quiet key keeps its limit until it has them).",
      default: limitDefaults.minWindowSamples
    })
  )
}).annotate({ identifier: "GradientLimit" })

/**
 * Vegas (TCP Vegas; delay based): estimates the calls queued at the
 * dependency, `limit × (1 − rttNoLoad / rtt)` with `rttNoLoad` the lowest RTT
 * seen (reset by a periodic probe), and grows the limit below `alpha`,
 * shrinks it above `beta` and on a failure.
 *
 * @category options
 * @since 0.1.0
 */
export const VegasLimit = Schema.Struct({
  algorithm: Schema.Literal("vegas"),
  ...limitBounds,
  alpha: Schema.optionalKey(
    NonNegative.annotate({
      description: "Below this estimated queue the limit grows; `3 × log10(limit)` when unset."
    })
  ),
  beta: Schema.optionalKey(
    NonNegative.annotate({
      description: "Above this estimated queue the limit shrinks; `6 × log10(limit)` when unset; above `alpha`."
    })
  ),
  smoothing: smoothing(limitDefaults.vegasSmoothing),
  probeMultiplier: Schema.optionalKey(
    PositiveInt.annotate({
      description: "`rttNoLoad` is reset to the current RTT after `probeMultiplier × limit` calls.",
      default: limitDefaults.probeMultiplier
    })
  )
}).annotate({ identifier: "VegasLimit" })

/**
 * An adaptive limit: one of {@link AimdLimit}, {@link GradientLimit},
 * {@link VegasLimit}, chosen by `algorithm`.
 *
 * **When to use**
 *
 * When the right `maxConcurrent` is not known or changes (the dependency
 * autoscales, shares its capacity with other clients, slows down under
 * load). `aimd` reacts to failures and to calls slower than a threshold you
 * choose; `gradient` and `vegas` to latency rising above what the key has
 * seen, with no threshold to pick.
 *
 * **Gotchas**
 *
 * - Every failure is a drop for `aimd` and `vegas`, a 404 included: make
 *   answers that are not overload succeed (map them to a value) inside the
 *   bulkhead. Interruption is never recorded.
 * - A call's `cost` may be at most `minLimit` (it must always fit).
 * - A key's limit is forgotten when the key is swept (idle a whole
 *   `sweepInterval`, or dropped to respect `maxKeys`).
 *
 * **Example** (A failure lowers the limit)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({
 *     maxConcurrent: 10, // the initial limit
 *     limit: { algorithm: "aimd", minLimit: 2, maxLimit: 50 }
 *   })
 *   // a drop: the limit is multiplied by backoffRatio (0.9)
 *   yield* Effect.exit(Effect.fail("overloaded").pipe(Bulkhead.isolate(bulkhead)))
 *   const state = yield* bulkhead.state()
 *   return state.limit
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => 9
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const Limit = Schema.Union([AimdLimit, GradientLimit, VegasLimit])

/**
 * @category options
 * @since 0.1.0
 */
export type Limit = typeof Limit.Type

/**
 * The adaptive algorithms.
 *
 * @category options
 * @since 0.1.0
 */
export type LimitAlgorithm = Limit["algorithm"]

/**
 * An adaptive limit as `make` takes it: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export type LimitInput =
  | (Omit<typeof AimdLimit.Type, "latencyThreshold"> & { readonly latencyThreshold?: Duration.Input | undefined })
  | (Omit<typeof GradientLimit.Type, "window"> & { readonly window?: Duration.Input | undefined })
  | typeof VegasLimit.Type

/**
 * An adaptive limit with every default applied (`queueSize`, `alpha` and
 * `beta` stay undefined when they follow the limit).
 *
 * @category options
 * @since 0.1.0
 */
export type ResolvedLimit =
  | {
      readonly algorithm: "aimd"
      readonly minLimit: number
      readonly maxLimit: number
      readonly backoffRatio: number
      readonly latencyThreshold: Duration.Duration
    }
  | {
      readonly algorithm: "gradient"
      readonly minLimit: number
      readonly maxLimit: number
      readonly smoothing: number
      readonly queueSize: number | undefined
      readonly longWindow: number
      readonly window: Duration.Duration
      readonly minWindowSamples: number
    }
  | {
      readonly algorithm: "vegas"
      readonly minLimit: number
      readonly maxLimit: number
      readonly alpha: number | undefined
      readonly beta: number | undefined
      readonly smoothing: number
      readonly probeMultiplier: number
    }

/**
 * The Defaults tables of each adaptive algorithm's options, generated from
 * their schemas.
 *
 * @category options
 * @since 0.1.0
 */
export const limitOptionsDocs: {
  readonly aimd: ReadonlyArray<Options_.FieldDoc>
  readonly gradient: ReadonlyArray<Options_.FieldDoc>
  readonly vegas: ReadonlyArray<Options_.FieldDoc>
} = {
  aimd: Options_.fieldDocs(AimdLimit),
  gradient: Options_.fieldDocs(GradientLimit),
  vegas: Options_.fieldDocs(VegasLimit)
}

/**
 * The bulkhead's options: the source of the type, the rules, `layerConfig`
 * and the generated Defaults table.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the bulkhead: the `resilience.name` metric attribute, and the key of calls without one.",
      default: defaults.name
    })
  ),
  maxConcurrent: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "Permits per key: the most calls (of cost 1) running at once. With `limit`, the initial limit (within its bounds).",
      default: defaults.maxConcurrent
    })
  ),
  maxQueue: Schema.optionalKey(
    NonNegativeInt.annotate({
      description: "Calls waiting per key at most; more are rejected (`BulkheadFull`). 0: reject at once when full.",
      default: defaults.maxQueue
    })
  ),
  maxWait: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "The longest a call waits in line before it is rejected (`BulkheadTimeout`); above zero.",
      default: defaults.maxWait
    })
  ),
  maxKeys: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Keys held at most; idle ones are dropped to make room (busy ones never are).",
      default: defaults.maxKeys
    })
  ),
  sweepInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "How often the background fiber drops idle keys; above zero. With `limit`, a key must also have been idle that long.",
      default: defaults.sweepInterval
    })
  ),
  limit: Schema.optionalKey(
    Limit.annotate({
      description:
        "An adaptive limit per key (`aimd`, `gradient` or `vegas`), moved between `minLimit` and `maxLimit` by the calls' latency and failures; fixed at `maxConcurrent` when unset."
    })
  ),
  onStoreError: Schema.optionalKey(
    Schema.Literals(["allow", "fail"]).annotate({
      description:
        "Over a remote store (Redis), when the store fails: `allow` runs the call without a permit (counted in `stats.storeErrors`); `fail` rejects it (`BulkheadStoreError`).",
      default: defaults.onStoreError
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` takes them: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly name?: string | undefined
  readonly maxConcurrent?: number | undefined
  readonly maxQueue?: number | undefined
  readonly maxWait?: Duration.Input | undefined
  readonly maxKeys?: number | undefined
  readonly sweepInterval?: Duration.Input | undefined
  /** An adaptive limit per key; see {@link Limit}. */
  readonly limit?: LimitInput | undefined
  /** Over a remote store, what a store failure does: `allow` (default) runs the call, `fail` rejects it. */
  readonly onStoreError?: "allow" | "fail" | undefined
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly maxWait: Duration.Duration
  readonly maxKeys: number
  readonly sweepInterval: Duration.Duration
  /** The adaptive limit, when set; `maxConcurrent` is then the initial limit. */
  readonly limit?: ResolvedLimit | undefined
  /** Over a remote store, what a store failure does. */
  readonly onStoreError: "allow" | "fail"
}

/**
 * Validates options: succeeds with them resolved (defaults applied), or fails
 * with one `Options.InvalidOptions` listing every bad field and its value.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(Effect.flip(Bulkhead.validateOptions({ maxConcurrent: 0, maxQueue: -1 })))
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["maxConcurrent = 0", "maxQueue = -1"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input = {}): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const { issues, normalized } = Options_.normalizeDurations({ ...input }, ["maxWait", "sweepInterval"])
  return Effect.map(
    Options_.validate("Bulkhead", Options, normalized, rules, normalizeLimit(normalized, issues)),
    resolveOptions
  )
}

/**
 * The Defaults table of the options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/**
 * A call rejected because its key's permits were taken and its line was full
 * (or `maxQueue` is 0). The call did not run.
 *
 * @category errors
 * @since 0.1.0
 */
export class BulkheadFull extends Schema.TaggedError<BulkheadFull>("@effect-resilience/core/Bulkhead/BulkheadFull")(
  "BulkheadFull",
  {
    bulkhead: Schema.String,
    key: Schema.String,
    maxConcurrent: Schema.Number,
    /** Permits held at the rejection. */
    active: Schema.Number,
    /** Calls waiting at the rejection. */
    queued: Schema.Number,
    /** An estimate of when the call would be admitted at once; absent before the key has seen contention. */
    retryAfter: Schema.optional(Schema.DurationFromMillis)
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Bulkhead full"
  }
}

/**
 * A call rejected because it waited `maxWait` in line without getting its
 * permits. The call did not run.
 *
 * @category errors
 * @since 0.1.0
 */
export class BulkheadTimeout extends Schema.TaggedError<BulkheadTimeout>(
  "@effect-resilience/core/Bulkhead/BulkheadTimeout"
)("BulkheadTimeout", {
  bulkhead: Schema.String,
  key: Schema.String,
  maxConcurrent: Schema.Number,
  /** Permits held when the wait ended. */
  active: Schema.Number,
  /** Calls still waiting when the wait ended. */
  queued: Schema.Number,
  /** The wait that ran out. */
  maxWait: Schema.DurationFromMillis,
  /** An estimate of when the call would be admitted at once, from the key's mean call duration. */
  retryAfter: Schema.optional(Schema.DurationFromMillis)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Bulkhead wait timed out"
  }
}

/**
 * A call asking for more permits (`cost`) than its key has: it could never
 * run. Not a transient rejection (`isRejection` is false).
 *
 * @category errors
 * @since 0.1.0
 */
export class BulkheadCostExceeded extends Schema.TaggedError<BulkheadCostExceeded>(
  "@effect-resilience/core/Bulkhead/BulkheadCostExceeded"
)("BulkheadCostExceeded", {
  bulkhead: Schema.String,
  key: Schema.String,
  cost: Schema.Number,
  maxConcurrent: Schema.Number
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Bulkhead call cost exceeds maxConcurrent"
  }
}

/**
 * A call rejected because the remote store holding the permits (Redis)
 * failed and the bulkhead has `onStoreError: "fail"`. The call did not run.
 * Not a transient rejection for `Retry` (`isRejection` is false).
 *
 * @category errors
 * @since 0.1.0
 */
export class BulkheadStoreError extends Schema.TaggedError<BulkheadStoreError>(
  "@effect-resilience/core/Bulkhead/BulkheadStoreError"
)("BulkheadStoreError", {
  bulkhead: Schema.String,
  key: Schema.String,
  /** What failed, and what the store reported. */
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * The reasons a `BulkheadError` carries.
 *
 * @category errors
 * @since 0.1.0
 */
export type BulkheadErrorReason = BulkheadFull | BulkheadTimeout | BulkheadCostExceeded | BulkheadStoreError

/**
 * Runtime identifier of `BulkheadError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/Bulkhead/BulkheadError"

/**
 * Type-level identifier of `BulkheadError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/Bulkhead/BulkheadError"

/**
 * The one error `isolate` adds; `reason` says why the call did not run.
 *
 * **Example** (Falling back when the bulkhead is full)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
 *   // a call of cost 2 can never fit in 1 permit
 *   return yield* Effect.succeed("fresh").pipe(
 *     Bulkhead.isolate(bulkhead, { cost: 2 }),
 *     Effect.catchReason("BulkheadError", "BulkheadCostExceeded", (reason) =>
 *       Effect.succeed(`cost ${reason.cost} > ${reason.maxConcurrent}`)
 *     )
 *   )
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => "cost 2 > 1"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class BulkheadError extends Schema.TaggedError<BulkheadError>(ErrorTypeId)("BulkheadError", {
  reason: Schema.Union([BulkheadFull, BulkheadTimeout, BulkheadCostExceeded, BulkheadStoreError])
}) {
  /**
   * Brand for the `isBulkheadError` guard.
   *
   * @since 0.1.0
   */
  readonly [ErrorTypeId]: ErrorTypeId = ErrorTypeId

  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.reason.message
  }
}

/**
 * Whether a value is a `BulkheadError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isBulkheadError = (u: unknown): u is BulkheadError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

/**
 * Whether a value is a transient rejection (`BulkheadFull` or
 * `BulkheadTimeout`, not a cost that can never fit nor a failed store): the
 * predicate for `Retry`'s `while` option, which honours its `retryAfter`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection = (u: unknown): u is BulkheadError & { readonly reason: BulkheadFull | BulkheadTimeout } =>
  isBulkheadError(u) && (u.reason._tag === "BulkheadFull" || u.reason._tag === "BulkheadTimeout")

// ---------------------------------------------------------------------------
// store
// ---------------------------------------------------------------------------

/** The in-process store: nothing remote. */
const memoryStore: BulkheadStore = {}

/**
 * Where a bulkhead's permits live: in the process (the default: nothing to
 * provide), or in a remote store that many processes share
 * (`RedisBulkhead.layerStore` in `@effect-resilience/redis`), chosen once
 * when the bulkhead is made.
 *
 * **Details**
 *
 * - In memory (`remote` absent) every feature applies and the admitted-call
 *   path does not touch the store at all.
 * - Over a remote store the permits of each key are leases shared by every
 *   process: see {@link RemotePermits}. Waiting is per process: the head of
 *   each key's line (by `priority`, then arrival) asks the store again with
 *   capped exponential backoff and jitter until `maxWait`; there is no FIFO
 *   across processes. An adaptive `limit` is per process, so it is refused
 *   over a remote store (`InvalidOptions`).
 *
 * @category store
 * @since 0.1.0
 */
export interface BulkheadStore {
  /** A remote store: when present, permits are held there; absent for the in-process store. */
  readonly remote?: ((options: RemoteOptions) => Effect.Effect<RemotePermits, never, Scope.Scope>) | undefined
}

/**
 * The store a bulkhead made now uses: a reference whose default is the
 * in-process store, so `make` needs nothing provided.
 *
 * @category store
 * @since 0.1.0
 */
export const BulkheadStore: Context.Reference<BulkheadStore> = Context.Reference<BulkheadStore>(
  "@effect-resilience/core/Bulkhead/BulkheadStore",
  { defaultValue: () => memoryStore }
)

/**
 * What a remote store needs to hold a bulkhead's permits.
 *
 * @category store
 * @since 0.1.0
 */
export interface RemoteOptions {
  /** The bulkhead's name: a namespace, so bulkheads sharing a store never share permits. */
  readonly name: string
}

/**
 * A remote acquisition's answer.
 *
 * @category store
 * @since 0.1.0
 */
export interface AcquireOutcome {
  readonly granted: boolean
  /** Permits held on the key, over every process, after the decision. */
  readonly held: number
}

/**
 * A bulkhead's permits in a remote store: named leases per key, each
 * operation one atomic step on the store's own clock.
 *
 * **Details**
 *
 * - `acquire` grants `permit` (a name unique to the call) `cost` permits when
 *   the live leases of `key` leave room under `limit`, dropping leases that
 *   ran out first. A permit already held is granted again (idempotent).
 * - A lease runs out `leaseMillis` after it was granted or last renewed; the
 *   bulkhead renews it every `renewMillis` while the call runs, so only a
 *   process that died (or lost the store for a whole lease) loses permits.
 * - `renew` and `release` are fenced by the permit's name: once a lease ran
 *   out it is never renewed again (`false`), and a late `release` frees
 *   nothing (`false`) — the permits were given back when it ran out.
 *
 * @category store
 * @since 0.1.0
 */
export interface RemotePermits {
  readonly acquire: (
    key: string,
    permit: string,
    cost: number,
    limit: number
  ) => Effect.Effect<AcquireOutcome, BulkheadStoreError>
  /** Extends the lease; `false` when it had run out (or was released): it is then gone for good. */
  readonly renew: (key: string, permit: string, cost: number) => Effect.Effect<boolean, BulkheadStoreError>
  /** Gives the permits back once; `true` when the lease was still live. */
  readonly release: (key: string, permit: string, cost: number) => Effect.Effect<boolean, BulkheadStoreError>
  /** Permits held on the key now, over every process. */
  readonly held: (key: string) => Effect.Effect<number, BulkheadStoreError>
  /** How often a running call's lease is renewed, in milliseconds (a third of the lease, typically). */
  readonly renewMillis: number
  /** The waiters' polling schedule, in milliseconds: the first wait about `baseMillis`, doubling up to `capMillis`. */
  readonly poll: { readonly baseMillis: number; readonly capMillis: number }
}

/**
 * The in-process store, the default: provide it to undo a remote store for
 * part of a program.
 *
 * @category store
 * @since 0.1.0
 */
export const layerStoreMemory = (): Layer.Layer<never> => Layer.succeed(BulkheadStore, memoryStore)

// ---------------------------------------------------------------------------
// constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a bulkhead that lives as long as the scope (its sweep fiber, event
 * streams and metrics end with it). Fails with `Options.InvalidOptions`
 * listing every bad option.
 *
 * **Example** (Per-tenant compartments)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Deferred, Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
 *   const gate = yield* Deferred.make<void>()
 *   // tenant "a" holds its only permit; tenant "b" has its own
 *   yield* Effect.forkChild(Deferred.await(gate).pipe(Bulkhead.isolate(bulkhead, { key: "a" })))
 *   yield* Effect.yieldNow
 *   const b = yield* Effect.succeed("b ran").pipe(Bulkhead.isolate(bulkhead, { key: "b" }))
 *   const a = yield* bulkhead.state("a")
 *   yield* Deferred.succeed(gate, undefined)
 *   return [b, a.active, a.available]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["b ran", 1, 0]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (input?: Input | undefined) => Effect.Effect<Bulkhead, Options_.InvalidOptions, Scope.Scope> =
  Effect.fnUntraced(function* (input?: Input | undefined) {
    const remote = (yield* BulkheadStore).remote
    const options = yield* remote === undefined ? validateOptions(input ?? {}) : validateRemoteOptions(input ?? {})
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    if (remote !== undefined) {
      // permits in a remote store: its own implementation, chosen once (the in-process path is untouched)
      const permits = yield* remote({ name: options.name })
      const remoteCompartments = makeRemote(options, permits, scope, context, errors)
      yield* Scope.addFinalizer(scope, remoteCompartments.close)
      return Bulkhead.of({
        [TypeId]: TypeId,
        name: options.name,
        options,
        isolate: remoteCompartments.isolate,
        state: remoteCompartments.state,
        stats: remoteCompartments.stats,
        compartments: remoteCompartments.compartments,
        subscribe: remoteCompartments.subscribe,
        events: remoteCompartments.events
      })
    }
    const compartments = makeCompartments(options, context, errors)
    // idle keys are swept by a fiber that lives as long as the bulkhead
    const sweepNow = Clock.clockWith((clock) => Effect.sync(() => compartments.sweep(monotonicMillis(clock))))
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(options.sweepInterval), sweepNow)), scope)
    yield* Scope.addFinalizer(scope, compartments.close)
    return Bulkhead.of({
      [TypeId]: TypeId,
      name: options.name,
      options,
      isolate: compartments.isolate,
      state: compartments.state,
      stats: compartments.stats,
      compartments: compartments.compartments,
      subscribe: compartments.subscribe,
      events: compartments.events
    })
  })

/**
 * Provides `Bulkhead` for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (input?: Input | undefined): Layer.Layer<Bulkhead, Options_.InvalidOptions> =>
  Layer.effect(Bulkhead, make(input))

/**
 * Provides `Bulkhead` with options read from `Config` under `path`
 * (environment variables such as `search_maxConcurrent=20` with the default
 * provider), every option defaulted and the name defaulting to `path`. Bad
 * values fail with one `Options.InvalidOptions` naming each field and the
 * text it held.
 *
 * **Example** (Options from the environment)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { ConfigProvider, Duration, Effect, Layer } from "effect"
 *
 * const env = ConfigProvider.fromEnv({ env: { search_maxConcurrent: "20", search_maxWait: "250 millis" } })
 * const program = Effect.map(Bulkhead.Bulkhead, (bulkhead) => [
 *   bulkhead.name,
 *   bulkhead.options.maxConcurrent,
 *   Duration.toMillis(bulkhead.options.maxWait)
 * ]).pipe(Effect.provide(Bulkhead.layerConfig("search").pipe(Layer.provide(ConfigProvider.layer(env)))))
 *
 * await Effect.runPromise(program)
 * // => ["search", 20, 250]
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (path: string): Layer.Layer<Bulkhead, Options_.InvalidOptions | Config.ConfigError> =>
  Layer.effect(
    Bulkhead,
    Effect.flatMap(Options_.fromConfig("Bulkhead", Options, path), (options: Options) =>
      make({ name: path, ...options })
    )
  )

// ---------------------------------------------------------------------------
// combinators
// ---------------------------------------------------------------------------

/**
 * Runs an effect holding `cost` permits of its key: at once when they are
 * free, otherwise after waiting in line (up to `maxWait`, with at most
 * `maxQueue` waiting), and gives them back when it ends, however it ends.
 * Adds only `BulkheadError` to the error channel.
 *
 * **Details**
 *
 * - Calls without options share the bulkhead's own compartment; `key`
 *   selects another (each key has `maxConcurrent` permits of its own).
 * - `priority` orders the line (higher first, FIFO within a priority);
 *   `cost` takes several permits (an integer, at most `maxConcurrent`, or
 *   `minLimit` with an adaptive `limit`, else `BulkheadCostExceeded`). A
 *   cost that is not a positive integer, or a
 *   priority that is not finite, is a defect.
 * - An interrupted waiter leaves the line; one interrupted just as it was
 *   granted gives its permits back.
 *
 * **Example** (Waiting in line, by priority)
 *
 * ```ts import.meta.vitest
 * import { Bulkhead } from "@effect-resilience/core"
 * import { Deferred, Effect, Fiber } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 10, maxWait: "1 minute" })
 *   const gate = yield* Deferred.make<void>()
 *   const order: Array<string> = []
 *   const call = (id: string, priority: number) =>
 *     Effect.sync(() => order.push(id)).pipe(Bulkhead.isolate(bulkhead, { priority }))
 *   const first = yield* Effect.forkChild(Deferred.await(gate).pipe(Bulkhead.isolate(bulkhead)))
 *   yield* Effect.yieldNow
 *   const waiting = yield* Effect.forkChild(Effect.all([call("low", 0), call("high", 5)], { concurrency: "unbounded" }))
 *   yield* Effect.yieldNow
 *   yield* Deferred.succeed(gate, undefined)
 *   yield* Fiber.join(first)
 *   yield* Fiber.join(waiting)
 *   return order
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["high", "low"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const isolate: {
  /**
   * Runs an effect in a bulkhead (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  (
    bulkhead: Bulkhead,
    options?: IsolateOptions | undefined
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadError, R>
  /**
   * Runs an effect in a bulkhead (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    bulkhead: Bulkhead,
    options?: IsolateOptions | undefined
  ): Effect.Effect<A, E | BulkheadError, R>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    bulkhead: Bulkhead,
    options?: IsolateOptions | undefined
  ): Effect.Effect<A, E | BulkheadError, R> => bulkhead.isolate(self, options)
)

// ---------------------------------------------------------------------------
// the implementation: internal/bulkheadCompartments.ts
// ---------------------------------------------------------------------------

/** The issue of an adaptive `limit` over a remote store: the limit is learned per process. */
const remoteLimitIssue = (limit: unknown): Options_.Issue =>
  new Options_.Issue({
    path: "limit",
    value: Options_.renderValue(limit),
    message: "Expected no adaptive limit over a remote store (BulkheadStore): it is learned per process"
  })

/** Options over a remote store: as `validateOptions`, and no adaptive `limit`, every issue in one error. */
const validateRemoteOptions = (input: Input): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> =>
  input.limit === undefined
    ? validateOptions(input)
    : Effect.flatMap(
        Effect.match(validateOptions(input), {
          onFailure: (error) => error.issues,
          onSuccess: (): ReadonlyArray<Options_.Issue> => []
        }),
        (issues) =>
          Effect.fail(
            new Options_.InvalidOptions({
              pattern: "Bulkhead",
              issues: issues.some((issue) => issue.path === "limit")
                ? issues
                : [...issues, remoteLimitIssue(input.limit)]
            })
          )
      )

/** What `internal/bulkheadCompartments.ts` builds rejections from. */
const errors: Errors = {
  BulkheadError,
  BulkheadFull,
  BulkheadTimeout,
  BulkheadCostExceeded,
  BulkheadStoreError,
  ErrorTypeId
}
