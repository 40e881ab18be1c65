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
import type * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as engine from "./internal/resourcePool.ts"
import { defaults, durationFields, resolveOptions, rules } from "./internal/resourcePoolOptions.ts"
import { type Errors, makeRuntime } from "./internal/resourcePoolRuntime.ts"
import * as Options_ from "./Options.ts"

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
  return Effect.map(Options_.validate("ResourcePool", Options, checked, rules, issues), resolveOptions)
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
      Effect.map(
        makeRuntime(resolved, options, context, errors),
        (runtime): ResourcePool<A> => ({
          [TypeId]: TypeId,
          name: resolved.name,
          options: resolved,
          use: runtime.use,
          invalidate: runtime.invalidate,
          stats: runtime.stats,
          subscribe: runtime.subscribe,
          events: runtime.events
        })
      )
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
// the implementation: internal/resourcePoolRuntime.ts
// ---------------------------------------------------------------------------

/** What `internal/resourcePoolRuntime.ts` builds rejections from. */
const errors: Errors = { ResourcePoolError, AcquireTimeout, AcquireFailed, PoolClosed, TooManyWaiters, ErrorTypeId }
