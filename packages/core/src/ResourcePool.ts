/**
 * Resource pools: a bounded set of expensive resources (database
 * connections, gRPC channels, browser pages, worker threads) acquired once,
 * borrowed by one call at a time, checked, renewed and released, as
 * HikariCP manages JDBC connections.
 *
 * `ResourcePool.use(pool, (connection) => effect)` borrows an idle resource
 * (or waits for one, at most `acquireTimeout`), runs the effect with it, and
 * gives it back however the effect ends. Resources are acquired by a scoped
 * effect (`acquire`, with `Scope`: its finalizers are the resource's
 * release) in the background, up to `max`, and kept at `min` or more.
 *
 * **Details**
 *
 * - Lifetimes (HikariCP's): an idle resource above `min` is released after
 *   `idleTimeout`; every resource is retired after `maxLifetime`, less a
 *   random part of up to `maxLifetimeJitter` (2.5%) so that resources
 *   acquired together do not expire together; a borrowed one past its
 *   lifetime is retired when it comes back, never under its borrower.
 * - Checks: with `validate`, a resource idle `validateAfterIdle` or longer
 *   is validated before it is handed out (a failed, failing or slow check,
 *   past `validationTimeout`, retires it and the borrower gets another);
 *   with `keepalive` too, idle resources are checked in the background.
 * - Failures: a failed acquisition is retried in the background with
 *   exponential backoff and jitter (from `acquireRetryBase` to
 *   `acquireRetryCap`), one probe at a time, never in a hot loop. A borrower
 *   still waiting at `acquireTimeout` fails with `AcquireFailed`, carrying
 *   the last acquisition failure, or `AcquireTimeout` when acquisitions are
 *   not failing (every resource is busy).
 * - Fairness and safety: waiters are served first in, first out, and a
 *   borrower never overtakes them; at most `maxWaiters` wait (more are
 *   rejected with `TooManyWaiters`). A waiter interrupted, even just as a
 *   resource was handed to it, passes the resource on. A borrower
 *   interrupted mid-use gives the resource back (or retires it, with
 *   `invalidateOnInterrupt`).
 * - Leaks: with `leakDetection`, a resource held longer than that is
 *   reported (a `LeakSuspected` event, a span event and a counter).
 * - Shutdown: closing the pool's scope fails the waiters with `PoolClosed`,
 *   releases idle resources, stops acquisitions, waits up to
 *   `shutdownTimeout` for borrowed ones to come back, then interrupts their
 *   borrowers and releases them.
 * - Monitoring: `stats`, `events`, metrics named in `Telemetry.resourcePool`
 *   (`resilience.pool.*`) and span events.
 *
 * **Why not Effect's `Pool`**
 *
 * `effect/Pool` is built on here in spirit (scoped acquisition, LIFO reuse,
 * FIFO waiters, invalidation), but its semantics do not fit a connection
 * pool: `get` waits without bound (no acquire timeout, and a timeout around
 * it is invisible to the pool), a failed acquisition is handed to one
 * borrower and retried on the next `get` (no background retry, no backoff),
 * time-to-live applies only to items above `min` and nothing limits an
 * item's total lifetime, nothing validates an item before it is handed out,
 * shutdown waits for borrowed items without bound, and it has no events,
 * metrics or leak detection. This module keeps its own bookkeeping
 * (`internal/resourcePool.ts`, property-tested) on Effect's `Scope`, `Clock`,
 * `Random` and fibers.
 *
 * **Gotchas**
 *
 * - Resources are told apart by identity: `invalidate(a)` finds `a` among
 *   the open resources, so `acquire` must return distinct values (objects).
 * - A resource is borrowed for the whole effect given to `use`: do not keep
 *   it after (a leak the pool cannot see; `leakDetection` only sees long
 *   borrows).
 * - `validate`'s requirements are not provided by the pool: it must need
 *   none (capture what it needs when you make the pool).
 *
 * **Example** (Two connections, three queries)
 *
 * ```ts import.meta.vitest
 * import { ResourcePool } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * let opened = 0
 * const program = Effect.gen(function* () {
 *   const pool = yield* ResourcePool.make({
 *     name: "db",
 *     max: 2,
 *     acquire: Effect.sync(() => ({ id: ++opened }))
 *   })
 *   // each query suspends once while it holds its connection, so the three overlap
 *   const query = (sql: string) =>
 *     ResourcePool.use(pool, (connection) => Effect.as(Effect.yieldNow, `${sql} on #${connection.id}`))
 *   const results = yield* Effect.all([query("a"), query("b"), query("c")], { concurrency: "unbounded" })
 *   const stats = yield* pool.stats
 *   return [results.length, stats.size, opened]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [3, 2, 2]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as Hub from "./internal/events.ts"
import { construct } from "./internal/fastError.ts"
import * as Frame from "./internal/frame.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Now from "./internal/now.ts"
import * as engine from "./internal/resourcePool.ts"
import * as timerHeap from "./internal/timerHeap.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of `ResourcePool` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/ResourcePool"

/**
 * Type-level identifier of `ResourcePool` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/ResourcePool"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A pool of resources of type `A`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ResourcePool<A> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Borrows a resource for the effect `f` makes with it; see {@link use}. */
  readonly use: <B, E, R>(f: (resource: A) => Effect.Effect<B, E, R>) => Effect.Effect<B, E | ResourcePoolError, R>
  /**
   * Retires a resource: at once when idle, when it comes back when borrowed
   * (its borrower keeps it until then). Nothing happens for a value the pool
   * does not hold.
   */
  readonly invalidate: (resource: A) => Effect.Effect<void>
  /** The pool now, and its totals since it was made. */
  readonly stats: Effect.Effect<Stats>
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The pool now, and what it has done.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  /** Open resources: idle, borrowed and being checked (at most `max`, with `acquiring`). */
  readonly size: number
  readonly idle: number
  readonly borrowed: number
  /** Acquisitions in flight. */
  readonly acquiring: number
  /** Borrowers waiting. */
  readonly waiters: number
  /** Resources acquired, since the start. */
  readonly acquired: number
  /** Resources released (their scope closed), for any reason, since the start. */
  readonly released: number
  /** Resources invalidated (by `invalidate`, a failed check, an interrupted use), since the start. */
  readonly invalidated: number
  /** Borrows that got a resource, since the start. */
  readonly borrows: number
  /** Borrowers that waited `acquireTimeout` in vain (`AcquireTimeout` or `AcquireFailed`), since the start. */
  readonly timeouts: number
  /** Borrowers rejected at once (`TooManyWaiters`, `PoolClosed`), since the start. */
  readonly rejected: number
  /** Acquisitions that failed, since the start. */
  readonly acquireFailures: number
  /** Acquisitions failed in a row now (0 after a success): the backoff's exponent. */
  readonly consecutiveFailures: number
  /** Borrows held longer than `leakDetection`, since the start. */
  readonly leaksSuspected: number
}

/**
 * Why a resource was released: `IdleTimeout` (idle too long above `min`),
 * `MaxLifetime`, `Invalidated` (see `Event.Invalidated`) or `Shutdown`.
 *
 * @category models
 * @since 0.1.0
 */
export type ReleaseReason = engine.RetireReason

/**
 * Why a resource was invalidated: `Invalidate` (`pool.invalidate`),
 * `ValidationFailed` (checked before a borrow), `KeepaliveFailed` (checked
 * while idle) or `Interrupted` (its use was interrupted, with
 * `invalidateOnInterrupt`).
 *
 * @category models
 * @since 0.1.0
 */
export type InvalidationReason = "Invalidate" | "ValidationFailed" | "KeepaliveFailed" | "Interrupted"

/**
 * The pool's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event =
  | Event.Acquired
  | Event.AcquireFailed
  | Event.Invalidated
  | Event.Released
  | Event.LeakSuspected
  | Event.WaitTimeout
  | Event.Rejected

/**
 * The members of {@link Event}.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * A resource was acquired.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Acquired {
    readonly _tag: "Acquired"
    readonly pool: string
    /** How long `acquire` took. */
    readonly duration: Duration.Duration
    /** Open resources, this one included. */
    readonly size: number
  }
  /**
   * An acquisition failed; the next starts after `retryIn` (when still needed).
   *
   * @category models
   * @since 0.1.0
   */
  export interface AcquireFailed {
    readonly _tag: "AcquireFailed"
    readonly pool: string
    /** The failure (a defect's value, a `TimeoutError` for an acquisition past `acquireTimeout`). */
    readonly error: unknown
    /** Acquisitions failed in a row, this one included. */
    readonly attempts: number
    readonly retryIn: Duration.Duration
  }
  /**
   * A resource was invalidated; released at once when idle, when it comes
   * back when `borrowed`.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Invalidated {
    readonly _tag: "Invalidated"
    readonly pool: string
    readonly reason: InvalidationReason
    readonly borrowed: boolean
  }
  /**
   * A resource was released: its scope is being closed.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Released {
    readonly _tag: "Released"
    readonly pool: string
    readonly reason: ReleaseReason
    /** Since it was acquired. */
    readonly age: Duration.Duration
    /** Open resources left. */
    readonly size: number
  }
  /**
   * A borrower has held a resource for `leakDetection` (once per borrow).
   *
   * @category models
   * @since 0.1.0
   */
  export interface LeakSuspected {
    readonly _tag: "LeakSuspected"
    readonly pool: string
    readonly heldFor: Duration.Duration
    /** The borrower's fiber id. */
    readonly fiberId: number
  }
  /**
   * A borrower waited `acquireTimeout` without getting a resource.
   *
   * @category models
   * @since 0.1.0
   */
  export interface WaitTimeout {
    readonly _tag: "WaitTimeout"
    readonly pool: string
    readonly reason: "AcquireTimeout" | "AcquireFailed"
    readonly waited: Duration.Duration
    /** Borrowers still waiting. */
    readonly waiters: number
  }
  /**
   * A borrower was rejected without waiting (or failed when the pool closed).
   *
   * @category models
   * @since 0.1.0
   */
  export interface Rejected {
    readonly _tag: "Rejected"
    readonly pool: string
    readonly reason: "TooManyWaiters" | "PoolClosed"
  }
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const defaults = {
  name: "default",
  min: 0,
  max: 10,
  acquireTimeout: Duration.seconds(30),
  idleTimeout: Duration.minutes(10),
  maxLifetime: Duration.minutes(30),
  maxLifetimeJitter: 0.025,
  validateAfterIdle: Duration.millis(500),
  validationTimeout: Duration.seconds(5),
  maxWaiters: 1_000,
  invalidateOnInterrupt: false,
  shutdownTimeout: Duration.seconds(30),
  housekeepingInterval: Duration.seconds(30),
  acquireRetryBase: Duration.millis(100),
  acquireRetryCap: Duration.seconds(10)
} as const

const duration = (description: string, defaultValue?: Duration.Duration) =>
  Schema.optionalKey(
    Schema.DurationFromString.annotate(
      defaultValue === undefined ? { description } : { description, default: defaultValue }
    )
  )

/**
 * The pool's options: the source of the type, the rules and the generated
 * Defaults table. `acquire` and `validate` are functions, given beside them.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the pool: the `resilience.name` metric attribute.",
      default: "default"
    })
  ),
  min: Schema.optionalKey(
    NonNegativeInt.annotate({
      description:
        "Resources kept open (idle or borrowed) at least: acquired at start and after each release, never trimmed below.",
      default: defaults.min
    })
  ),
  max: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Resources open at most (acquisitions in flight included); at least `min`.",
      default: defaults.max
    })
  ),
  acquireTimeout: duration(
    "The longest a borrower waits for a resource (`AcquireTimeout`, or `AcquireFailed` while acquisitions fail); also bounds each acquisition. Above zero.",
    defaults.acquireTimeout
  ),
  idleTimeout: duration(
    "An idle resource is released after this long idle, while more than `min` are open (checked every `housekeepingInterval`); above zero.",
    defaults.idleTimeout
  ),
  maxLifetime: duration(
    "A resource is retired this long after it was acquired (less the jitter): when idle, or when it comes back; above zero.",
    defaults.maxLifetime
  ),
  maxLifetimeJitter: Schema.optionalKey(
    Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 0.5 })).annotate({
      description:
        "Each resource's lifetime is `maxLifetime × (1 − maxLifetimeJitter × random)`, so that resources acquired together do not expire together; 0 to 0.5.",
      default: defaults.maxLifetimeJitter
    })
  ),
  validateAfterIdle: duration(
    "With `validate`: a resource idle at least this long is validated before it is handed out (0: every borrow).",
    defaults.validateAfterIdle
  ),
  validationTimeout: duration(
    "A validation that has not answered after this long counts as failed; above zero.",
    defaults.validationTimeout
  ),
  keepalive: duration(
    "With `validate`: idle resources last known good this long ago are validated in the background (HikariCP's keepaliveTime); off when unset. Above zero."
  ),
  leakDetection: duration(
    "A resource borrowed longer than this is reported (`LeakSuspected`); off when unset. Above zero."
  ),
  maxWaiters: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Borrowers waiting at most; more are rejected at once (`TooManyWaiters`).",
      default: defaults.maxWaiters
    })
  ),
  invalidateOnInterrupt: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "Retire a resource whose use was interrupted (a half-written request on a connection) instead of reusing it.",
      default: defaults.invalidateOnInterrupt
    })
  ),
  shutdownTimeout: duration(
    "At shutdown, how long borrowed resources may take to come back before their borrowers are interrupted (0: at once).",
    defaults.shutdownTimeout
  ),
  housekeepingInterval: duration(
    "How often idle resources are swept (idle timeout, lifetime, keepalive) and `min` restored; above zero.",
    defaults.housekeepingInterval
  ),
  acquireRetryBase: duration(
    "The backoff after the first failed acquisition (doubling per failure, equal jitter); above zero.",
    defaults.acquireRetryBase
  ),
  acquireRetryCap: duration(
    "The longest backoff between failed acquisitions; at least `acquireRetryBase`.",
    defaults.acquireRetryCap
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `validateOptions` takes them: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly name?: string | undefined
  readonly min?: number | undefined
  readonly max?: number | undefined
  readonly acquireTimeout?: Duration.Input | undefined
  readonly idleTimeout?: Duration.Input | undefined
  readonly maxLifetime?: Duration.Input | undefined
  readonly maxLifetimeJitter?: number | undefined
  readonly validateAfterIdle?: Duration.Input | undefined
  readonly validationTimeout?: Duration.Input | undefined
  readonly keepalive?: Duration.Input | undefined
  readonly leakDetection?: Duration.Input | undefined
  readonly maxWaiters?: number | undefined
  readonly invalidateOnInterrupt?: boolean | undefined
  readonly shutdownTimeout?: Duration.Input | undefined
  readonly housekeepingInterval?: Duration.Input | undefined
  readonly acquireRetryBase?: Duration.Input | undefined
  readonly acquireRetryCap?: Duration.Input | undefined
}

/**
 * What `make` takes: the options, how to acquire a resource, and how to
 * check one.
 *
 * @category options
 * @since 0.1.0
 */
export interface MakeOptions<A, E = never, R = never> extends Input {
  /**
   * Acquires one resource; its `Scope` is the resource's: the finalizers
   * added there (`Effect.acquireRelease`) release it. Runs in the
   * background, with the services `make` had.
   */
  readonly acquire: Effect.Effect<A, E, R>
  /**
   * Whether a resource is still good (`SELECT 1`, a ping). A failure, a
   * defect or no answer within `validationTimeout` counts as `false`.
   */
  readonly validate?: ((resource: A) => Effect.Effect<boolean, unknown>) | undefined
}

/**
 * Validated options, every default applied (`keepalive` and `leakDetection`
 * undefined when off).
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly min: number
  readonly max: number
  readonly acquireTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
  readonly maxLifetime: Duration.Duration
  readonly maxLifetimeJitter: number
  readonly validateAfterIdle: Duration.Duration
  readonly validationTimeout: Duration.Duration
  readonly keepalive: Duration.Duration | undefined
  readonly leakDetection: Duration.Duration | undefined
  readonly maxWaiters: number
  readonly invalidateOnInterrupt: boolean
  readonly shutdownTimeout: Duration.Duration
  readonly housekeepingInterval: Duration.Duration
  readonly acquireRetryBase: Duration.Duration
  readonly acquireRetryCap: Duration.Duration
}

const durationFields = [
  "acquireTimeout",
  "idleTimeout",
  "maxLifetime",
  "validateAfterIdle",
  "validationTimeout",
  "keepalive",
  "leakDetection",
  "shutdownTimeout",
  "housekeepingInterval",
  "acquireRetryBase",
  "acquireRetryCap"
] as const

const positiveFields = [
  "acquireTimeout",
  "idleTimeout",
  "maxLifetime",
  "validationTimeout",
  "keepalive",
  "leakDetection",
  "housekeepingInterval",
  "acquireRetryBase",
  "acquireRetryCap"
] as const

const millisOf = (value: unknown): number | undefined =>
  Duration.isDuration(value) ? Duration.toMillis(value) : undefined

const rules: ReadonlyArray<Options_.Rule> = [
  (o) =>
    positiveFields.flatMap((field) => {
      const millis = millisOf(o[field])
      return millis !== undefined && millis <= 0
        ? [{ path: field, message: "Expected a duration greater than zero" }]
        : []
    }),
  (o) => {
    const min = typeof o.min === "number" ? o.min : defaults.min
    return typeof o.max === "number" && Number.isInteger(o.max) && o.max >= 1 && o.max < min
      ? [{ path: "max", message: `Expected a value at least min (${min})` }]
      : typeof o.max !== "number" && Number.isInteger(min) && min > defaults.max
        ? [{ path: "min", message: `Expected a value at most max (${defaults.max})` }]
        : []
  },
  (o) => {
    const base = millisOf(o.acquireRetryBase) ?? Duration.toMillis(defaults.acquireRetryBase)
    const cap = millisOf(o.acquireRetryCap)
    return cap !== undefined && cap > 0 && base > 0 && cap < base
      ? [{ path: "acquireRetryCap", message: `Expected a duration at least acquireRetryBase (${base} millis)` }]
      : []
  },
  (o) =>
    o.keepalive !== undefined && !o.hasValidate
      ? [{ path: "keepalive", message: "Expected a `validate` function to check idle resources with" }]
      : []
]

const resolve = (o: Options): ResolvedOptions => ({
  name: o.name ?? defaults.name,
  min: o.min ?? defaults.min,
  max: o.max ?? defaults.max,
  acquireTimeout: o.acquireTimeout ?? defaults.acquireTimeout,
  idleTimeout: o.idleTimeout ?? defaults.idleTimeout,
  maxLifetime: o.maxLifetime ?? defaults.maxLifetime,
  maxLifetimeJitter: o.maxLifetimeJitter ?? defaults.maxLifetimeJitter,
  validateAfterIdle: o.validateAfterIdle ?? defaults.validateAfterIdle,
  validationTimeout: o.validationTimeout ?? defaults.validationTimeout,
  keepalive: o.keepalive,
  leakDetection: o.leakDetection,
  maxWaiters: o.maxWaiters ?? defaults.maxWaiters,
  invalidateOnInterrupt: o.invalidateOnInterrupt ?? defaults.invalidateOnInterrupt,
  shutdownTimeout: o.shutdownTimeout ?? defaults.shutdownTimeout,
  housekeepingInterval: o.housekeepingInterval ?? defaults.housekeepingInterval,
  acquireRetryBase: o.acquireRetryBase ?? defaults.acquireRetryBase,
  acquireRetryCap: o.acquireRetryCap ?? defaults.acquireRetryCap
})

/**
 * Validates options: succeeds with them resolved (defaults applied), or
 * fails with one `Options.InvalidOptions` listing every bad field and its
 * value. Given `make`'s options, it also checks that `keepalive` comes with
 * a `validate`.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { ResourcePool } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(ResourcePool.validateOptions({ min: 5, max: 2, acquireTimeout: 0, maxWaiters: 0 }))
 * )
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["maxWaiters = 0", "acquireTimeout = 0", "max = 2"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (
  input: Input & { readonly validate?: unknown } = {}
): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const { validate, ...rest } = input
  const { issues, normalized } = Options_.normalizeDurations({ ...rest }, durationFields)
  // what the keepalive rule reads (not a field of the schema: dropped by the decoding)
  const checked = { ...normalized, hasValidate: typeof validate === "function" }
  return Effect.map(Options_.validate("ResourcePool", Options, checked, rules, issues), resolve)
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
 * A borrower waited `acquireTimeout` without getting a resource, while
 * acquisitions were not failing: every resource was busy.
 *
 * @category errors
 * @since 0.1.0
 */
export class AcquireTimeout extends Schema.TaggedError<AcquireTimeout>(
  "@effect-resilience/core/ResourcePool/AcquireTimeout"
)("AcquireTimeout", {
  pool: Schema.String,
  acquireTimeout: Schema.DurationFromMillis,
  /** Open resources when the wait ended. */
  size: Schema.Number,
  /** Borrowers still waiting. */
  waiters: Schema.Number
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Resource pool wait timed out"
  }
}

/**
 * A borrower waited `acquireTimeout` without getting a resource while
 * acquisitions were failing: `cause` is the last acquisition failure.
 *
 * @category errors
 * @since 0.1.0
 */
export class AcquireFailed extends Schema.TaggedError<AcquireFailed>(
  "@effect-resilience/core/ResourcePool/AcquireFailed"
)("AcquireFailed", {
  pool: Schema.String,
  acquireTimeout: Schema.DurationFromMillis,
  /** Acquisitions failed in a row. */
  attempts: Schema.Number,
  /** The last acquisition's failure. */
  cause: Schema.optional(Schema.Defect())
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Resource pool could not acquire a resource"
  }
}

/**
 * The pool is closed (its scope closed): no more borrows.
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolClosed extends Schema.TaggedError<PoolClosed>("@effect-resilience/core/ResourcePool/PoolClosed")(
  "PoolClosed",
  { pool: Schema.String }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Resource pool closed"
  }
}

/**
 * `maxWaiters` borrowers were waiting already: rejected without waiting.
 *
 * @category errors
 * @since 0.1.0
 */
export class TooManyWaiters extends Schema.TaggedError<TooManyWaiters>(
  "@effect-resilience/core/ResourcePool/TooManyWaiters"
)("TooManyWaiters", { pool: Schema.String, maxWaiters: Schema.Number }) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Resource pool has too many waiters"
  }
}

/**
 * The reasons a `ResourcePoolError` carries.
 *
 * @category errors
 * @since 0.1.0
 */
export type ResourcePoolErrorReason = AcquireTimeout | AcquireFailed | PoolClosed | TooManyWaiters

/**
 * Runtime identifier of `ResourcePoolError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/ResourcePool/ResourcePoolError"

/**
 * Type-level identifier of `ResourcePoolError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/ResourcePool/ResourcePoolError"

/**
 * The one error `use` adds; `reason` says why no resource was borrowed.
 * Built without a stack trace.
 *
 * **Example** (Waiting in vain)
 *
 * ```ts import.meta.vitest
 * import { ResourcePool } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* ResourcePool.make({ max: 1, acquireTimeout: "10 millis", acquire: Effect.succeed({}) })
 *   // the only resource is held for the whole of the second borrow's wait
 *   return yield* ResourcePool.use(pool, () => Effect.flip(ResourcePool.use(pool, () => Effect.void)))
 * }).pipe(Effect.scoped)
 *
 * const error = await Effect.runPromise(program)
 * error.reason._tag
 * // => "AcquireTimeout"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class ResourcePoolError extends Schema.TaggedError<ResourcePoolError>(ErrorTypeId)("ResourcePoolError", {
  reason: Schema.Union([AcquireTimeout, AcquireFailed, PoolClosed, TooManyWaiters])
}) {
  /**
   * Brand for the `isResourcePoolError` guard.
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
 * Whether a value is a `ResourcePoolError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isResourcePoolError = (u: unknown): u is ResourcePoolError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

/**
 * Whether a value is a transient rejection (`AcquireTimeout`,
 * `AcquireFailed`, `TooManyWaiters`; not `PoolClosed`): the predicate for
 * `Retry`'s `while` option.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection = (
  u: unknown
): u is ResourcePoolError & { readonly reason: AcquireTimeout | AcquireFailed | TooManyWaiters } =>
  isResourcePoolError(u) && u.reason._tag !== "PoolClosed"

/**
 * Whether a value is a resource pool.
 *
 * @category guards
 * @since 0.1.0
 */
export const isResourcePool = (u: unknown): u is ResourcePool<unknown> =>
  typeof u === "object" && u !== null && TypeId in u

// ---------------------------------------------------------------------------
// constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a pool that lives as long as the scope: closing it fails the
 * waiters, releases every resource (waiting up to `shutdownTimeout` for the
 * borrowed ones), and ends the events and metrics. Fails with
 * `Options.InvalidOptions` listing every bad option. `min` resources are
 * acquired in the background: `make` does not wait for them.
 *
 * **Example** (A pool of connections released with their scope)
 *
 * ```ts import.meta.vitest
 * import { ResourcePool } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const log: Array<string> = []
 * const connect = Effect.acquireRelease(
 *   Effect.sync(() => {
 *     log.push("open")
 *     return { query: (sql: string) => Effect.succeed(sql.length) }
 *   }),
 *   () => Effect.sync(() => log.push("close"))
 * )
 * const program = Effect.gen(function* () {
 *   const pool = yield* ResourcePool.make({ name: "db", max: 4, acquire: connect })
 *   return yield* ResourcePool.use(pool, (connection) => connection.query("select 1"))
 * }).pipe(Effect.scoped)
 *
 * const length = await Effect.runPromise(program)
 * const result = [length, log]
 * // => [8, ["open", "close"]]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <A, E = never, R = never>(
  options: MakeOptions<A, E, R>
): Effect.Effect<ResourcePool<A>, Options_.InvalidOptions, Scope.Scope | Exclude<R, Scope.Scope>> =>
  Effect.flatMap(validateOptions(options), (resolved) =>
    Effect.flatMap(Effect.context<Exclude<R, Scope.Scope> | Scope.Scope>(), (context) =>
      makeWith(resolved, options, context)
    )
  )

/**
 * Provides a pool under your own tag: `ResourcePool<A>` is generic, so the
 * library has no tag of its own for it (as `LoadBalancer` for your own
 * endpoint type). `layer(Db, options)` is `Layer.effect(Db, make(options))`.
 *
 * **Example** (A connection pool as a service)
 *
 * ```ts import.meta.vitest
 * import { ResourcePool } from "@effect-resilience/core"
 * import { Context, Effect } from "effect"
 *
 * interface Connection {
 *   readonly query: (sql: string) => Effect.Effect<string>
 * }
 * class Db extends Context.Service<Db, ResourcePool.ResourcePool<Connection>>()("app/Db") {}
 *
 * const DbLive = ResourcePool.layer(Db, {
 *   name: "db",
 *   max: 10,
 *   acquire: Effect.succeed<Connection>({ query: (sql) => Effect.succeed(`rows of ${sql}`) })
 * })
 *
 * const program = Effect.flatMap(Db, ResourcePool.use((connection: Connection) => connection.query("users")))
 * await Effect.runPromise(program.pipe(Effect.provide(DbLive)))
 * // => "rows of users"
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <I, A, E = never, R = never>(
  tag: Context.Key<I, ResourcePool<A>>,
  options: MakeOptions<A, E, R>
): Layer.Layer<I, Options_.InvalidOptions, Exclude<R, Scope.Scope>> => Layer.effect(tag, make(options))

// ---------------------------------------------------------------------------
// combinators
// ---------------------------------------------------------------------------

/**
 * Borrows a resource, runs the effect `f` makes with it, and gives it back
 * however that ends (success, failure, defect, interruption). Adds only
 * `ResourcePoolError` to the error channel.
 *
 * **Details**
 *
 * - An idle resource is taken at once (the most recently used, when nobody
 *   waits); otherwise the borrower waits its turn, first in, first out, at
 *   most `acquireTimeout`, while the pool acquires more up to `max`.
 * - A resource past `maxLifetime` is never handed out, and one whose
 *   lifetime ends while borrowed is retired when it comes back.
 * - With `validate`, a resource idle `validateAfterIdle` or longer is
 *   checked first; a bad one is retired and the borrower, first in line,
 *   gets another within the same `acquireTimeout`.
 *
 * **Example** (Data-first, and data-last over a service)
 *
 * ```ts import.meta.vitest
 * import { ResourcePool } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* ResourcePool.make({ acquire: Effect.succeed({ id: 1 }) })
 *   const a = yield* ResourcePool.use(pool, (r) => Effect.succeed(r.id))
 *   const b = yield* ResourcePool.use((r: { readonly id: number }) => Effect.succeed(r.id + 1))(pool)
 *   return [a, b]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [1, 2]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const use: {
  /**
   * Borrows a resource for `f` (data-last: `Effect.flatMap(Db, ResourcePool.use(f))`).
   *
   * @since 0.1.0
   */
  <A, B, E, R>(
    f: (resource: A) => Effect.Effect<B, E, R>
  ): (pool: ResourcePool<A>) => Effect.Effect<B, E | ResourcePoolError, R>
  /**
   * Borrows a resource for `f` (data-first).
   *
   * @since 0.1.0
   */
  <A, B, E, R>(
    pool: ResourcePool<A>,
    f: (resource: A) => Effect.Effect<B, E, R>
  ): Effect.Effect<B, E | ResourcePoolError, R>
} = dual(
  2,
  <A, B, E, R>(
    pool: ResourcePool<A>,
    f: (resource: A) => Effect.Effect<B, E, R>
  ): Effect.Effect<B, E | ResourcePoolError, R> => pool.use(f)
)

/**
 * Retires a resource (see `ResourcePool.invalidate`): data-first, or
 * data-last for `pipe`.
 *
 * @category combinators
 * @since 0.1.0
 */
export const invalidate: {
  /**
   * Retires a resource (data-last).
   *
   * @since 0.1.0
   */
  <A>(resource: A): (pool: ResourcePool<A>) => Effect.Effect<void>
  /**
   * Retires a resource (data-first).
   *
   * @since 0.1.0
   */
  <A>(pool: ResourcePool<A>, resource: A): Effect.Effect<void>
} = dual(2, <A>(pool: ResourcePool<A>, resource: A): Effect.Effect<void> => pool.invalidate(resource))

// ---------------------------------------------------------------------------
// the implementation
// ---------------------------------------------------------------------------

/** An open resource: the bookkeeping's slot, with the value, its scope and its borrower. */
class PoolSlot<A> implements engine.Slot {
  state: engine.SlotState = "idle"
  readonly id: number
  readonly createdAt: number
  readonly expiresAt: number
  idleSince: number
  lastCheckedAt: number
  invalidated = false
  retireReason: engine.RetireReason | undefined = undefined
  readonly value: A
  readonly scope: Scope.Closeable
  borrower: Fiber.Fiber<unknown, unknown> | undefined = undefined
  cancelLeak: (() => void) | undefined = undefined
  constructor(id: number, value: A, scope: Scope.Closeable, now: number, expiresAt: number) {
    this.id = id
    this.value = value
    this.scope = scope
    this.createdAt = now
    this.expiresAt = expiresAt
    this.idleSince = now
    this.lastCheckedAt = now
  }
}

/** A borrower waiting: its place in line, and how to wake its fiber. */
class PoolWaiter<A> implements engine.Waiter<PoolSlot<A>> {
  status: "waiting" | "granted" | "left" = "waiting"
  slot: PoolSlot<A> | undefined = undefined
  prev: PoolWaiter<A> | undefined = undefined
  next: PoolWaiter<A> | undefined = undefined
  grantedAt = 0
  resume: ((effect: Effect.Effect<PoolSlot<A>, ResourcePoolError>) => void) | undefined = undefined
  pending: Effect.Effect<PoolSlot<A>, ResourcePoolError> | undefined = undefined
  cancelTimer: (() => void) | undefined = undefined
  wake(effect: Effect.Effect<PoolSlot<A>, ResourcePoolError>): void {
    const resume = this.resume
    if (resume === undefined) {
      this.pending = effect
      return
    }
    this.resume = undefined
    resume(effect)
  }
}

/** Gives a borrowed resource back when its use ends, however it ends (`internal/frame.ts`). */
class ReturnObserver<A> extends Frame.Observer {
  readonly giveBack: (
    slot: PoolSlot<A>,
    exit: Exit.Exit<unknown, unknown>,
    fiber: Fiber.Fiber<unknown, unknown>
  ) => void
  readonly slot: PoolSlot<A>
  constructor(
    giveBack: (slot: PoolSlot<A>, exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>) => void,
    slot: PoolSlot<A>
  ) {
    super()
    this.giveBack = giveBack
    this.slot = slot
  }
  observe(exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.giveBack(this.slot, exit, fiber)
  }
}

const liveClockConstructor: unknown = Effect.runSync(Clock.clockWith((clock) => Effect.succeed(clock.constructor)))

/** Calls `fire` after `millis` on `clock`: the shared timer heap on the live clock, the clock's `sleep` otherwise. */
const armTimer = (
  context: Context.Context<never>,
  clock: Clock.Clock,
  millis: number,
  fire: () => void
): (() => void) => {
  if (millis === Number.POSITIVE_INFINITY) return () => {}
  if (clock.constructor === liveClockConstructor) {
    const entry = timerHeap.schedule(Now.monotonicMillis() + Math.max(0, millis), fire)
    return () => timerHeap.cancel(entry)
  }
  const sleeper = Effect.runForkWith(context)(clock.sleep(Duration.millis(Math.max(0, millis))))
  sleeper.addObserver((exit) => {
    if (Exit.isSuccess(exit)) fire()
  })
  return () => sleeper.interruptUnsafe()
}

const releaseMetricReason = {
  IdleTimeout: "idle_timeout",
  MaxLifetime: "max_lifetime",
  Invalidated: "invalidated",
  Shutdown: "shutdown"
} as const

const spanEvent = (
  fiber: Fiber.Fiber<unknown, unknown> | undefined,
  name: string,
  attributes: Record<string, unknown>
) => {
  if (fiber === undefined) return
  const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
  if (span === undefined || span._tag !== "Span") return
  span.event(name, fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
}

const makeWith = <A, E, R>(
  options: ResolvedOptions,
  input: MakeOptions<A, E, R>,
  context: Context.Context<Exclude<R, Scope.Scope> | Scope.Scope>
): Effect.Effect<ResourcePool<A>> =>
  Effect.withFiber((makeFiber) => {
    const name = options.name
    const scope = Context.get(context, Scope.Scope)
    // the pool's own work (acquisitions, checks, closes, timers) runs with the services `make` had
    // (an acquisition is given a scope of its own)
    const background = context
    const clock = makeFiber.getRef(Clock.Clock)
    const random = makeFiber.getRef(Random.Random)
    const acquire = input.acquire
    const validate = input.validate
    const config: engine.Config = {
      min: options.min,
      max: options.max,
      maxWaiters: options.maxWaiters,
      idleTimeoutMillis: Duration.toMillis(options.idleTimeout),
      keepaliveMillis:
        options.keepalive === undefined || validate === undefined
          ? Number.POSITIVE_INFINITY
          : Duration.toMillis(options.keepalive),
      backoff: {
        kind: "exponential",
        baseMillis: Duration.toMillis(options.acquireRetryBase),
        capMillis: Duration.toMillis(options.acquireRetryCap),
        factor: 2,
        jitter: "equal"
      }
    }
    const acquireTimeoutMillis = Duration.toMillis(options.acquireTimeout)
    const maxLifetimeMillis = Duration.toMillis(options.maxLifetime)
    const validateAfterIdleMillis = Duration.toMillis(options.validateAfterIdle)
    const leakMillis = options.leakDetection === undefined ? undefined : Duration.toMillis(options.leakDetection)
    const state = engine.make<PoolSlot<A>>()
    /** Every open resource, by value (for `invalidate`) and for the shutdown. */
    const open = new Map<A, PoolSlot<A>>()
    const workers = new Set<Fiber.Fiber<unknown, unknown>>()
    const closing = new Set<Fiber.Fiber<unknown, unknown>>()
    const hub = Hub.make<Event>()
    let nextId = 0
    let lastFailure: unknown
    let retryTimer: (() => void) | undefined
    let onDrained: (() => void) | undefined
    const counters = {
      acquired: 0,
      released: 0,
      invalidated: 0,
      borrows: 0,
      waited: 0,
      acquire_timeout: 0,
      acquire_failed: 0,
      too_many_waiters: 0,
      closed: 0,
      acquireFailures: 0,
      leaks: 0,
      waits: Metrics.makeHistogram(),
      idle_timeout: 0,
      max_lifetime: 0,
      invalidated_released: 0,
      shutdown: 0
    }

    const fork = (
      set: Set<Fiber.Fiber<unknown, unknown>>,
      effect: Effect.Effect<void, never, Exclude<R, Scope.Scope>>
    ) => {
      const fiber = Effect.runForkWith(background)(effect)
      set.add(fiber)
      fiber.addObserver(() => {
        set.delete(fiber)
      })
    }

    // ---- resources leaving
    const closeSlot = (slot: PoolSlot<A>, now: number) => {
      if (open.get(slot.value) === slot) open.delete(slot.value)
      slot.cancelLeak?.()
      slot.cancelLeak = undefined
      const reason = slot.retireReason ?? "Shutdown"
      counters.released++
      counters[reason === "Invalidated" ? "invalidated_released" : releaseMetricReason[reason]]++
      if (hub.listening()) {
        hub.emit({
          _tag: "Released",
          pool: name,
          reason,
          age: Duration.millis(Math.max(0, now - slot.createdAt)),
          size: engine.size(state)
        })
      }
      fork(closing, Scope.close(slot.scope, Exit.void))
    }
    const invalidated = (reason: InvalidationReason, borrowed: boolean) => {
      counters.invalidated++
      if (hub.listening()) hub.emit({ _tag: "Invalidated", pool: name, reason, borrowed })
    }

    /** Performs what the bookkeeping decided: wakes the waiters granted, closes the resources retired, acquires more. */
    const settle = (
      out: engine.Outcome<PoolSlot<A>>,
      now: number,
      fiber: Fiber.Fiber<unknown, unknown> | undefined
    ) => {
      for (const w of out.granted) {
        const waiter = w as PoolWaiter<A>
        waiter.cancelTimer?.()
        waiter.cancelTimer = undefined
        waiter.grantedAt = now
        const slot = waiter.slot
        if (slot === undefined) continue
        const done = Exit.succeed(slot)
        if (fiber === undefined) waiter.wake(done)
        else fiber.currentDispatcher.scheduleTask(() => waiter.wake(done), 0)
      }
      for (const slot of out.retired) closeSlot(slot, now)
      if (state.closed) {
        if (onDrained !== undefined && state.borrowed + state.checking === 0) onDrained()
        return
      }
      fill(now)
    }

    // ---- acquisitions
    const fill = (now: number) => {
      const n = engine.toAcquire(state, now, config)
      for (let i = 0; i < n; i++) fork(workers, acquireOne)
      if (n === 0 && now < state.retryAt && retryTimer === undefined) {
        const at = state.retryAt
        retryTimer = armTimer(background, clock, at - now, () => {
          retryTimer = undefined
          // the timer's time, at least: a clock read a little early must not arm it again
          fill(Math.max(clock.currentTimeMillisUnsafe(), at))
        })
      }
    }
    const onAcquired = (value: A, slotScope: Scope.Closeable, started: number) => {
      const now = clock.currentTimeMillisUnsafe()
      const lifetime = engine.lifetime(maxLifetimeMillis, options.maxLifetimeJitter, random.nextDoubleUnsafe())
      const slot = new PoolSlot(++nextId, value, slotScope, now, now + lifetime)
      open.set(value, slot)
      counters.acquired++
      const out = engine.outcome<PoolSlot<A>>()
      engine.added(state, slot, now, out)
      if (hub.listening() && slot.state !== "retired") {
        hub.emit({
          _tag: "Acquired",
          pool: name,
          duration: Duration.millis(Math.max(0, now - started)),
          size: engine.size(state)
        })
      }
      settle(out, now, undefined)
    }
    const onAcquireFailed = (cause: Cause.Cause<unknown>) => {
      const now = clock.currentTimeMillisUnsafe()
      const interrupted = Cause.hasInterruptsOnly(cause)
      const delay = engine.acquireFailed(state, now, random.nextDoubleUnsafe(), config, interrupted)
      if (!interrupted) {
        counters.acquireFailures++
        lastFailure = Cause.squash(cause)
        if (hub.listening()) {
          hub.emit({
            _tag: "AcquireFailed",
            pool: name,
            error: lastFailure,
            attempts: state.failures,
            retryIn: Duration.millis(delay)
          })
        }
      }
      if (!state.closed) fill(now)
    }
    const acquireOne: Effect.Effect<void, never, Exclude<R, Scope.Scope>> = Effect.uninterruptibleMask((restore) => {
      const slotScope = Scope.makeUnsafe()
      const started = clock.currentTimeMillisUnsafe()
      const attempt = Effect.timeout(Effect.provideService(acquire, Scope.Scope, slotScope), acquireTimeoutMillis)
      return Effect.flatMap(Effect.exit(restore(attempt)), (exit) =>
        Exit.isSuccess(exit)
          ? Effect.sync(() => onAcquired(exit.value, slotScope, started))
          : Effect.andThen(
              Scope.close(slotScope, exit),
              Effect.sync(() => onAcquireFailed(exit.cause))
            )
      )
    })

    // ---- keepalive checks
    const validated = (value: A, check: (resource: A) => Effect.Effect<boolean, unknown>): Effect.Effect<boolean> =>
      Effect.timeout(check(value), options.validationTimeout).pipe(
        Effect.catchCause((cause) => (Cause.hasInterrupts(cause) ? Effect.failCause(cause) : Effect.succeed(false))),
        Effect.orDie
      )
    const keepaliveCheck = (slot: PoolSlot<A>, check: (resource: A) => Effect.Effect<boolean, unknown>) =>
      Effect.onExit(validated(slot.value, check), (exit) =>
        Effect.sync(() => {
          const now = clock.currentTimeMillisUnsafe()
          const ok = Exit.isSuccess(exit) && exit.value
          if (!ok && slot.state === "checking" && !Exit.hasInterrupts(exit)) invalidated("KeepaliveFailed", false)
          const out = engine.outcome<PoolSlot<A>>()
          engine.checked(state, slot, ok, now, out)
          settle(out, now, undefined)
        })
      )
    const housekeep = Effect.sync(() => {
      const now = clock.currentTimeMillisUnsafe()
      const out = engine.outcome<PoolSlot<A>>()
      const check = engine.housekeep(state, now, config, out)
      if (validate !== undefined) for (const slot of check) fork(workers, Effect.asVoid(keepaliveCheck(slot, validate)))
      settle(out, now, undefined)
    })

    // ---- borrowing
    const giveBack = (slot: PoolSlot<A>, exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>) => {
      slot.cancelLeak?.()
      slot.cancelLeak = undefined
      slot.borrower = undefined
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      let retireAs: engine.RetireReason | undefined
      if (options.invalidateOnInterrupt && exit._tag === "Failure" && Cause.hasInterrupts(exit.cause)) {
        if (slot.state === "borrowed") invalidated("Interrupted", true)
        retireAs = "Invalidated"
      }
      const out = engine.outcome<PoolSlot<A>>()
      engine.giveBack(state, slot, now, out, retireAs)
      settle(out, now, fiber)
    }
    const suspectLeak = (slot: PoolSlot<A>, fiber: Fiber.Fiber<unknown, unknown>, millis: number) => () => {
      slot.cancelLeak = undefined
      if (slot.borrower !== fiber) return
      counters.leaks++
      spanEvent(fiber, "LeakSuspected", { [Telemetry.attributes.name]: name })
      if (hub.listening()) {
        hub.emit({ _tag: "LeakSuspected", pool: name, heldFor: Duration.millis(millis), fiberId: fiber.id })
      }
    }
    /** Runs `f` with a borrowed resource, giving it back when it ends. */
    const lease = <B, E2, R2>(
      fiber: Fiber.Fiber<unknown, unknown>,
      slot: PoolSlot<A>,
      f: (resource: A) => Effect.Effect<B, E2, R2>,
      waitedMillis: number,
      restore: (<X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>) | undefined
    ): Effect.Effect<B, E2, R2> => {
      counters.borrows++
      if (waitedMillis > 0) {
        counters.waited++
        Metrics.observe(counters.waits, waitedMillis / 1000)
      }
      slot.borrower = fiber
      if (leakMillis !== undefined) {
        slot.cancelLeak = armTimer(
          background,
          fiber.getRef(Clock.Clock),
          leakMillis,
          suspectLeak(slot, fiber, leakMillis)
        )
      }
      let body: Effect.Effect<B, E2, R2>
      try {
        body = f(slot.value)
      } catch (defect) {
        body = Effect.die(defect)
      }
      return Frame.observed<B, E2, R2>(
        fiber,
        restore === undefined ? body : restore(body),
        new ReturnObserver(giveBack, slot)
      )
    }

    const rejected = (
      fiber: Fiber.Fiber<unknown, unknown> | undefined,
      reason: ResourcePoolErrorReason
    ): ResourcePoolError => {
      const tag = reason._tag
      if (tag === "AcquireTimeout" || tag === "AcquireFailed") {
        counters[tag === "AcquireTimeout" ? "acquire_timeout" : "acquire_failed"]++
        spanEvent(fiber, "WaitTimeout", { [Telemetry.attributes.name]: name, [Telemetry.attributes.reason]: tag })
        if (hub.listening()) {
          hub.emit({
            _tag: "WaitTimeout",
            pool: name,
            reason: tag,
            waited: options.acquireTimeout,
            waiters: state.waiting
          })
        }
      } else {
        counters[tag === "TooManyWaiters" ? "too_many_waiters" : "closed"]++
        spanEvent(fiber, "Rejected", { [Telemetry.attributes.name]: name, [Telemetry.attributes.reason]: tag })
        if (hub.listening()) hub.emit({ _tag: "Rejected", pool: name, reason: tag })
      }
      return construct(ResourcePoolError, { _tag: "ResourcePoolError", [ErrorTypeId]: ErrorTypeId, reason })
    }
    const closedError = (fiber: Fiber.Fiber<unknown, unknown> | undefined) =>
      rejected(fiber, construct(PoolClosed, { _tag: "PoolClosed", pool: name }))

    /** `acquireTimeout` ran out for a waiter still in line. */
    const timeOut = (w: PoolWaiter<A>, fiber: Fiber.Fiber<unknown, unknown>) => {
      w.cancelTimer = undefined
      if (w.status !== "waiting") return
      engine.leave(state, w)
      const reason: ResourcePoolErrorReason =
        state.failures > 0
          ? construct(AcquireFailed, {
              _tag: "AcquireFailed",
              pool: name,
              acquireTimeout: options.acquireTimeout,
              attempts: state.failures,
              cause: lastFailure
            })
          : construct(AcquireTimeout, {
              _tag: "AcquireTimeout",
              pool: name,
              acquireTimeout: options.acquireTimeout,
              size: engine.size(state),
              waiters: state.waiting
            })
      w.wake(Exit.fail(rejected(fiber, reason)))
    }
    const awaitTurn = (w: PoolWaiter<A>, fiber: Fiber.Fiber<unknown, unknown>, deadline: number) =>
      Effect.callback<PoolSlot<A>, ResourcePoolError>((resume) => {
        const pending = w.pending
        if (pending !== undefined) {
          w.pending = undefined
          resume(pending)
          return
        }
        w.resume = resume
        const fiberClock = fiber.getRef(Clock.Clock)
        w.cancelTimer = armTimer(fiber.context, fiberClock, deadline - fiberClock.currentTimeMillisUnsafe(), () =>
          timeOut(w, fiber)
        )
      })
    /** The borrower leaves its place (interrupted): out of the line, or its resource passed on if granted. */
    const abandon = (w: PoolWaiter<A>, fiber: Fiber.Fiber<unknown, unknown>) => {
      w.cancelTimer?.()
      w.cancelTimer = undefined
      w.resume = undefined
      w.pending = undefined
      const slot = engine.leave(state, w)
      if (slot === undefined) return
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const out = engine.outcome<PoolSlot<A>>()
      engine.giveBack(state, slot, now, out)
      settle(out, now, fiber)
    }

    type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

    /**
     * A borrowed resource (validated when due), in the caller's uninterruptible
     * region: waits (interruptibly) when none is idle; `front` for a borrower
     * that lost its resource to a failed validation.
     */
    const obtain = (restore: Restore, start: number, front: boolean): Effect.Effect<PoolSlot<A>, ResourcePoolError> =>
      Effect.withFiber((fiber) => {
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        if (state.closed) return Exit.fail(closedError(fiber))
        let slot: PoolSlot<A> | undefined
        for (;;) {
          const out = engine.outcome<PoolSlot<A>>()
          slot = engine.borrow(state, now, out)
          if (out.retired.length === 0) break
          // replacements for the resources retired on the way may be idle already (an acquisition that did not suspend)
          settle(out, now, fiber)
          if (slot !== undefined) break
        }
        if (slot !== undefined) return checkBeforeUse(restore, slot, start, now)
        if (!front && !engine.canWait(state, config)) {
          return Exit.fail(
            rejected(
              fiber,
              construct(TooManyWaiters, { _tag: "TooManyWaiters", pool: name, maxWaiters: options.maxWaiters })
            )
          )
        }
        const w = new PoolWaiter<A>()
        engine.enqueue(state, w, front)
        fill(now)
        return Effect.matchCauseEffect(restore(awaitTurn(w, fiber, start + acquireTimeoutMillis)), {
          onFailure: (cause) => {
            abandon(w, fiber)
            return Exit.failCause(cause)
          },
          onSuccess: (granted) => checkBeforeUse(restore, granted, start, w.grantedAt)
        })
      })
    /** Validates a resource idle `validateAfterIdle` or longer; a bad one is retired and another obtained. */
    const checkBeforeUse = (
      restore: Restore,
      slot: PoolSlot<A>,
      start: number,
      now: number
    ): Effect.Effect<PoolSlot<A>, ResourcePoolError> => {
      // known good since it came back, was acquired or was checked (a resource acquired for this borrow is not checked)
      const knownGood = Math.max(slot.idleSince, slot.lastCheckedAt)
      if (validate === undefined || now <= knownGood || now - knownGood < validateAfterIdleMillis) {
        return Exit.succeed(slot)
      }
      return Effect.matchCauseEffect(restore(validated(slot.value, validate)), {
        onFailure: (cause) =>
          Effect.withFiber((fiber) => {
            // interrupted while checking: the resource goes back as it was
            giveBack(slot, Exit.void, fiber)
            return Exit.failCause(cause)
          }),
        onSuccess: (ok) =>
          Effect.withFiber((fiber) => {
            const at = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
            if (ok) {
              slot.lastCheckedAt = at
              return Exit.succeed(slot)
            }
            invalidated("ValidationFailed", false)
            const out = engine.outcome<PoolSlot<A>>()
            engine.giveBack(state, slot, at, out, "Invalidated")
            settle(out, at, fiber)
            return obtain(restore, start, true)
          })
      })
    }

    const use = <B, E2, R2>(
      f: (resource: A) => Effect.Effect<B, E2, R2>
    ): Effect.Effect<B, E2 | ResourcePoolError, R2> =>
      Effect.withFiber((fiber) => {
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        if (validate === undefined && !state.closed && state.waiting === 0) {
          // the fast path: an idle resource, nobody waiting, nothing to check
          const out = engine.outcome<PoolSlot<A>>()
          const slot = engine.borrow(state, now, out)
          if (out.retired.length > 0) settle(out, now, fiber)
          if (slot !== undefined) return lease(fiber, slot, f, 0, undefined)
        }
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(obtain(restore, now, false), (slot) =>
            Effect.withFiber((running) =>
              lease(running, slot, f, running.getRef(Clock.Clock).currentTimeMillisUnsafe() - now, restore)
            )
          )
        )
      })

    const invalidate = (resource: A): Effect.Effect<void> =>
      Effect.withFiber((fiber) => {
        const slot = open.get(resource)
        if (slot === undefined || slot.state === "retired") return Effect.void
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        const borrowed = slot.state !== "idle"
        const out = engine.outcome<PoolSlot<A>>()
        if (engine.invalidate(state, slot, out)) invalidated("Invalidate", borrowed)
        settle(out, now, fiber)
        return Effect.void
      })

    // ---- shutdown
    const awaitDrained = Effect.callback<void>((resume) => {
      if (state.borrowed + state.checking === 0) {
        resume(Effect.void)
        return
      }
      onDrained = () => {
        onDrained = undefined
        resume(Effect.void)
      }
      return Effect.sync(() => {
        onDrained = undefined
      })
    })
    const shutdown = Effect.gen(function* () {
      const now = clock.currentTimeMillisUnsafe()
      const out = engine.outcome<PoolSlot<A>>()
      const waiters = engine.close(state, out)
      retryTimer?.()
      retryTimer = undefined
      for (const w of waiters) {
        const waiter = w as PoolWaiter<A>
        waiter.cancelTimer?.()
        waiter.cancelTimer = undefined
        waiter.wake(Exit.fail(closedError(undefined)))
      }
      settle(out, now, undefined)
      // acquisitions in flight and keepalive checks stop (their resources are released as they end)
      yield* Fiber.interruptAll(Array.from(workers))
      if (state.borrowed + state.checking > 0) {
        yield* Effect.ignore(Effect.timeout(awaitDrained, options.shutdownTimeout))
      }
      if (state.borrowed + state.checking > 0) {
        // the grace period is over: the borrowers are interrupted and their resources released under them
        for (const slot of open.values()) slot.borrower?.interruptUnsafe(makeFiber.id)
        yield* Effect.yieldNow
        const forced = engine.outcome<PoolSlot<A>>()
        for (const slot of Array.from(open.values())) engine.forceRetire(state, slot, forced)
        settle(forced, clock.currentTimeMillisUnsafe(), undefined)
      }
      yield* Fiber.awaitAll(Array.from(closing))
      yield* hub.end
      registrar.removeAll()
    })

    // ---- metrics, read when exported
    const registrar = Metrics.registrar(makeFiber.context)
    const base = { [Telemetry.attributes.name]: name }
    const spec = Telemetry.resourcePool
    const attr = (key: string, value: string) => ({ ...base, [key]: value })
    registrar.gauge(spec.size, base, () => engine.size(state))
    registrar.gauge(spec.idle, base, () => state.idle.length)
    registrar.gauge(spec.borrowed, base, () => state.borrowed)
    registrar.gauge(spec.waiters, base, () => state.waiting)
    registrar.histogram(spec.waitDuration, base, () => {
      const waits = counters.waits
      const immediate = counters.borrows - counters.waited
      if (immediate === 0) return waits
      const buckets = Float64Array.from(waits.buckets)
      buckets[0] = (buckets[0] ?? 0) + immediate
      return { buckets, count: waits.count + immediate, sum: waits.sum, min: 0, max: Math.max(0, waits.max) }
    })
    for (const reason of ["acquire_timeout", "acquire_failed"] as const) {
      registrar.counter(spec.timeouts, attr(Telemetry.attributes.reason, reason), () => counters[reason])
    }
    for (const reason of ["too_many_waiters", "closed"] as const) {
      registrar.counter(spec.rejected, attr(Telemetry.attributes.reason, reason), () => counters[reason])
    }
    registrar.counter(spec.acquisitions, attr(Telemetry.attributes.outcome, "success"), () => counters.acquired)
    registrar.counter(spec.acquisitions, attr(Telemetry.attributes.outcome, "failure"), () => counters.acquireFailures)
    for (const reason of ["idle_timeout", "max_lifetime", "shutdown"] as const) {
      registrar.counter(spec.releases, attr(Telemetry.attributes.reason, reason), () => counters[reason])
    }
    registrar.counter(
      spec.releases,
      attr(Telemetry.attributes.reason, "invalidated"),
      () => counters.invalidated_released
    )
    registrar.counter(spec.leaks, base, () => counters.leaks)

    const pool: ResourcePool<A> = {
      [TypeId]: TypeId,
      name,
      options,
      use,
      invalidate,
      stats: Effect.sync(() => ({
        size: engine.size(state),
        idle: state.idle.length,
        borrowed: state.borrowed,
        acquiring: state.acquiring,
        waiters: state.waiting,
        acquired: counters.acquired,
        released: counters.released,
        invalidated: counters.invalidated,
        borrows: counters.borrows,
        timeouts: counters.acquire_timeout + counters.acquire_failed,
        rejected: counters.too_many_waiters + counters.closed,
        acquireFailures: counters.acquireFailures,
        consecutiveFailures: state.failures,
        leaksSuspected: counters.leaks
      })),
      subscribe: hub.subscribe,
      events: hub.events
    }

    return Effect.gen(function* () {
      yield* Scope.addFinalizer(scope, shutdown)
      yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(options.housekeepingInterval), housekeep)), scope)
      fill(clock.currentTimeMillisUnsafe())
      return pool
    })
  })
