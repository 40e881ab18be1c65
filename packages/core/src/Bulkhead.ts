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
 * - Monitoring: `events` (rejections, and queued and acquired waiters),
 *   metrics named in `Telemetry.bulkhead`, span events for rejections, and
 *   `stats`.
 *
 * **Gotchas**
 *
 * - The permits live in this process: N replicas admit N × `maxConcurrent`.
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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as engine from "./internal/bulkhead.ts"
import * as Hub from "./internal/events.ts"
import { construct } from "./internal/fastError.ts"
import * as Frame from "./internal/frame.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Now from "./internal/now.ts"
import * as timerHeap from "./internal/timerHeap.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

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
  /** Permits the call takes: an integer from 1 to `maxConcurrent` (default 1). */
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
  /** Permits free: `maxConcurrent - active`. */
  readonly available: number
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
}

/**
 * The bulkhead's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.Rejected | Event.Queued | Event.Acquired

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
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const defaults = {
  name: "default",
  maxConcurrent: 10,
  maxQueue: 0,
  maxWait: Duration.seconds(1),
  maxKeys: 10_000,
  sweepInterval: Duration.seconds(30)
} as const

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
      description: "Permits per key: the most calls (of cost 1) running at once.",
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
      description: "How often the background fiber drops idle keys; above zero.",
      default: defaults.sweepInterval
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
}

const positiveDuration =
  (field: "maxWait" | "sweepInterval"): Options_.Rule =>
  (o) => {
    const value = o[field]
    return Duration.isDuration(value) && Duration.toMillis(value) <= 0
      ? [{ path: field, message: "Expected a duration greater than zero" }]
      : []
  }

const rules: ReadonlyArray<Options_.Rule> = [positiveDuration("maxWait"), positiveDuration("sweepInterval")]

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
    Options_.validate("Bulkhead", Options, normalized, rules, issues),
    (o: Options): ResolvedOptions => ({
      name: o.name ?? defaults.name,
      maxConcurrent: o.maxConcurrent ?? defaults.maxConcurrent,
      maxQueue: o.maxQueue ?? defaults.maxQueue,
      maxWait: o.maxWait ?? defaults.maxWait,
      maxKeys: o.maxKeys ?? defaults.maxKeys,
      sweepInterval: o.sweepInterval ?? defaults.sweepInterval
    })
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
 * The reasons a `BulkheadError` carries.
 *
 * @category errors
 * @since 0.1.0
 */
export type BulkheadErrorReason = BulkheadFull | BulkheadTimeout | BulkheadCostExceeded

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
  reason: Schema.Union([BulkheadFull, BulkheadTimeout, BulkheadCostExceeded])
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
 * `BulkheadTimeout`, not a cost that can never fit): the predicate for
 * `Retry`'s `while` option, which honours its `retryAfter`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection = (u: unknown): u is BulkheadError & { readonly reason: BulkheadFull | BulkheadTimeout } =>
  isBulkheadError(u) && u.reason._tag !== "BulkheadCostExceeded"

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
    const options = yield* validateOptions(input ?? {})
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    const { close, service, sweep } = makeWith(options, context)
    // idle keys are swept by a fiber that lives as long as the bulkhead
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(options.sweepInterval), Effect.sync(sweep))), scope)
    yield* Scope.addFinalizer(scope, close)
    return service
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
 *   `cost` takes several permits (an integer, at most `maxConcurrent`, else
 *   `BulkheadCostExceeded`). A cost that is not a positive integer, or a
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
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    bulkhead: Bulkhead,
    options?: IsolateOptions | undefined
  ): Effect.Effect<A, E | BulkheadError, R> => bulkhead.isolate(self, options)
)

// ---------------------------------------------------------------------------
// the implementation
// ---------------------------------------------------------------------------

/** A waiting call: its place in line, and how to wake its fiber. */
class Ticket implements engine.Waiter {
  status: engine.Status = "waiting"
  readonly cost: number
  readonly priority: number
  readonly enqueuedAt: number
  grantedAt = 0
  /** Wakes the waiter's fiber, once it has suspended. */
  resume: ((effect: Effect.Effect<void, BulkheadError>) => void) | undefined = undefined
  /** The waiter's fate, decided before it suspended. */
  pending: Effect.Effect<void, BulkheadError> | undefined = undefined
  cancelTimer: (() => void) | undefined = undefined
  constructor(cost: number, priority: number, enqueuedAt: number) {
    this.cost = cost
    this.priority = priority
    this.enqueuedAt = enqueuedAt
  }
  wake(effect: Effect.Effect<void, BulkheadError>): void {
    const resume = this.resume
    if (resume === undefined) {
      this.pending = effect
      return
    }
    this.resume = undefined
    resume(effect)
  }
}

type Release = (c: Compartment, cost: number, start: number, fiber: Fiber.Fiber<unknown, unknown>) => void

/** One key's permits and line (`internal/bulkhead.ts` decides), with what the wiring needs. */
class Compartment implements engine.Compartment<Ticket> {
  active = 0
  queued = 0
  queuedCost = 0
  levels: Array<engine.Level<Ticket>> | undefined = undefined
  holdMillis = -1
  /** Set once a call waited or was rejected: from then on, calls that fill it are timed for `retryAfter`. */
  contended = false
  readonly key: string
  /** The continuation of its calls of cost 1 that are not timed, shared. */
  observer: ReleaseObserver | undefined = undefined
  constructor(key: string) {
    this.key = key
  }
}

/** Gives a call's permits back when it ends, however it ends (`internal/frame.ts`). */
class ReleaseObserver extends Frame.Observer {
  readonly release: Release
  readonly compartment: Compartment
  readonly cost: number
  /** When the call started, for the mean duration; -1 when not timed. */
  readonly start: number
  constructor(release: Release, compartment: Compartment, cost: number, start: number) {
    super()
    this.release = release
    this.compartment = compartment
    this.cost = cost
    this.start = start
  }
  observe(_exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.release(this.compartment, this.cost, this.start, fiber)
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
  if (clock.constructor === liveClockConstructor) {
    const entry = timerHeap.schedule(Now.monotonicMillis() + millis, fire)
    return () => timerHeap.cancel(entry)
  }
  const sleeper = Effect.runForkWith(context)(clock.sleep(Duration.millis(millis)))
  sleeper.addObserver((exit) => {
    if (Exit.isSuccess(exit)) fire()
  })
  return () => sleeper.interruptUnsafe()
}

const invalidCost = (cost: number): RangeError =>
  new RangeError(`Bulkhead: a call's cost must be an integer >= 1, got ${cost}`)

const invalidPriority = (priority: number): RangeError =>
  new RangeError(`Bulkhead: a call's priority must be a finite number, got ${priority}`)

const rejectionReason = {
  BulkheadFull: "full",
  BulkheadTimeout: "timeout",
  BulkheadCostExceeded: "cost_exceeded"
} as const

/** The bulkhead itself; `sweep` drops idle keys, `close` ends its event streams and unregisters its metrics. */
const makeWith = (
  options: ResolvedOptions,
  context: Context.Context<never>
): { readonly service: Bulkhead; readonly sweep: () => void; readonly close: Effect.Effect<void> } => {
  const { maxConcurrent, maxKeys, maxQueue, name } = options
  const config: engine.Config = { maxConcurrent, maxQueue }
  const maxWaitMillis = Duration.toMillis(options.maxWait)
  const main = new Compartment(name)
  const compartments = new Map<string, Compartment>()
  const counters = {
    admitted: 0,
    /** Admitted after waiting (the rest waited 0). */
    waited: 0,
    full: 0,
    timeout: 0,
    cost_exceeded: 0,
    waits: Metrics.makeHistogram()
  }
  const noneGranted: Array<Ticket> = []
  const hub = Hub.make<Event>()

  // ---- keys
  const batch = Math.max(1, Math.floor(maxKeys / 64))
  const makeRoom = () => {
    // idle keys first, oldest first; busy ones stay (their permits must not be forgotten)
    const target = maxKeys - batch
    let scanned = 0
    for (const [key, c] of compartments) {
      if (compartments.size <= target || ++scanned > 4 * batch) break
      if (engine.isIdle(c)) compartments.delete(key)
    }
  }
  const compartmentFor = (key: string): Compartment => {
    if (key === name) return main
    let c = compartments.get(key)
    if (c === undefined) {
      if (compartments.size >= maxKeys) makeRoom()
      c = new Compartment(key)
      compartments.set(key, c)
    }
    return c
  }
  const sweep = () => {
    for (const [key, c] of compartments) if (engine.isIdle(c)) compartments.delete(key)
  }

  // ---- rejections
  const spanEvent = (fiber: Fiber.Fiber<unknown, unknown>, attributes: Record<string, unknown>) => {
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span === undefined || span._tag !== "Span") return
    span.event("Rejected", fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
  }
  const rejected = (
    fiber: Fiber.Fiber<unknown, unknown> | undefined,
    c: Compartment,
    reason: BulkheadErrorReason,
    cost: number,
    priority: number
  ): BulkheadError => {
    const tag = reason._tag
    counters[rejectionReason[tag]]++
    if (fiber !== undefined) {
      spanEvent(fiber, {
        [Telemetry.attributes.name]: name,
        [Telemetry.attributes.reason]: rejectionReason[tag]
      })
    }
    if (hub.listening()) {
      hub.emit({
        _tag: "Rejected",
        bulkhead: name,
        key: c.key,
        reason: tag,
        cost,
        priority,
        active: c.active,
        queued: c.queued,
        retryAfter: tag === "BulkheadCostExceeded" ? undefined : reason.retryAfter
      })
    }
    return construct(BulkheadError, { _tag: "BulkheadError", [ErrorTypeId]: ErrorTypeId, reason })
  }
  const hint = (c: Compartment, cost: number, priority: number): { retryAfter?: Duration.Duration } => {
    const millis = engine.estimateMillis(c, cost, priority, config)
    return millis < 0 ? {} : { retryAfter: Duration.millis(millis) }
  }
  const full = (fiber: Fiber.Fiber<unknown, unknown>, c: Compartment, cost: number, priority: number) => {
    c.contended = true
    return rejected(
      fiber,
      c,
      construct(BulkheadFull, {
        _tag: "BulkheadFull",
        bulkhead: name,
        key: c.key,
        maxConcurrent,
        active: c.active,
        queued: c.queued,
        ...hint(c, cost, priority)
      }),
      cost,
      priority
    )
  }

  // ---- permits
  /** Wakes the waiters just granted: later on the dispatcher of the fiber that freed the permits, or now. */
  const wakeGranted = (
    granted: ReadonlyArray<Ticket>,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown> | undefined
  ) => {
    for (const t of granted) {
      t.cancelTimer?.()
      t.cancelTimer = undefined
      t.grantedAt = now
      if (fiber === undefined) t.wake(Exit.void)
      else fiber.currentDispatcher.scheduleTask(() => t.wake(Exit.void), 0)
    }
  }
  const release: Release = (c, cost, start, fiber) => {
    if (start < 0 && c.queued === 0) {
      // the uncontended end: no clock read, nobody to serve
      engine.release(c, cost, config, noneGranted)
      return
    }
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    if (start >= 0) engine.recordHold(c, now - start)
    const granted: Array<Ticket> = []
    engine.release(c, cost, config, granted)
    wakeGranted(granted, now, fiber)
  }
  /** The waiter leaves (interrupted): out of the line, or its permits given back if granted and not started. */
  const settle = (t: Ticket, c: Compartment, fiber: Fiber.Fiber<unknown, unknown>) => {
    t.cancelTimer?.()
    t.cancelTimer = undefined
    if (t.status === "left") return
    const granted: Array<Ticket> = []
    engine.leave(c, t, config, granted)
    wakeGranted(granted, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber)
  }
  /** `maxWait` ran out for a waiter still in line (`fiber` is the waiter's, suspended). */
  const timeOut = (t: Ticket, c: Compartment, clock: Clock.Clock, fiber: Fiber.Fiber<unknown, unknown>) => {
    t.cancelTimer = undefined
    if (t.status !== "waiting") return
    const granted: Array<Ticket> = []
    engine.leave(c, t, config, granted)
    const now = clock.currentTimeMillisUnsafe()
    const error = rejected(
      fiber,
      c,
      construct(BulkheadTimeout, {
        _tag: "BulkheadTimeout",
        bulkhead: name,
        key: c.key,
        maxConcurrent,
        active: c.active,
        queued: c.queued,
        maxWait: options.maxWait,
        ...hint(c, t.cost, t.priority)
      }),
      t.cost,
      t.priority
    )
    wakeGranted(granted, now, undefined)
    t.wake(Exit.fail(error))
  }
  const awaitTurn = (t: Ticket, c: Compartment, fiber: Fiber.Fiber<unknown, unknown>) =>
    Effect.callback<void, BulkheadError>((resume) => {
      const pending = t.pending
      if (pending !== undefined) {
        t.pending = undefined
        resume(pending)
        return
      }
      t.resume = resume
      if (maxWaitMillis === Number.POSITIVE_INFINITY) return
      const clock = fiber.getRef(Clock.Clock)
      const left = t.enqueuedAt + maxWaitMillis - clock.currentTimeMillisUnsafe()
      t.cancelTimer = armTimer(fiber.context, clock, Math.max(0, left), () => timeOut(t, c, clock, fiber))
    })

  /** The contended path: joins the line (or is rejected), waits, then runs `self` holding the permits. */
  const wait = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    c: Compartment,
    cost: number,
    priority: number
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (c.queued >= maxQueue) return Exit.fail(full(fiber, c, cost, priority))
    c.contended = true
    const t = new Ticket(cost, priority, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe())
    engine.enqueue(c, t, config)
    if (hub.listening()) {
      hub.emit({ _tag: "Queued", bulkhead: name, key: c.key, cost, priority, queued: c.queued })
    }
    return Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(awaitTurn(t, c, fiber)), {
        onFailure: (cause) => {
          settle(t, c, fiber)
          return Exit.failCause(cause)
        },
        onSuccess: () =>
          Effect.withFiber<A, E | BulkheadError, R>((running) => {
            const now = running.getRef(Clock.Clock).currentTimeMillisUnsafe()
            counters.admitted++
            counters.waited++
            Metrics.observe(counters.waits, (t.grantedAt - t.enqueuedAt) / 1000)
            if (hub.listening()) {
              hub.emit({
                _tag: "Acquired",
                bulkhead: name,
                key: c.key,
                cost,
                priority,
                waited: Duration.millis(t.grantedAt - t.enqueuedAt)
              })
            }
            return Frame.observed<A, E, R>(running, restore(self), new ReleaseObserver(release, c, cost, now))
          })
      })
    )
  }

  const admit = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    c: Compartment,
    cost: number,
    priority: number
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (!engine.tryAcquire(c, cost, priority, config)) return wait(fiber, self, c, cost, priority)
    counters.admitted++
    if (c.contended && c.active >= maxConcurrent) {
      // it fills the compartment: timed, for the mean duration behind `retryAfter`
      const start = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      return Frame.observed<A, E, R>(fiber, self, new ReleaseObserver(release, c, cost, start))
    }
    if (cost !== 1) return Frame.observed<A, E, R>(fiber, self, new ReleaseObserver(release, c, cost, -1))
    let observer = c.observer
    if (observer === undefined) {
      observer = new ReleaseObserver(release, c, 1, -1)
      c.observer = observer
    }
    return Frame.observed<A, E, R>(fiber, self, observer)
  }

  const isolate = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions?: IsolateOptions | undefined
  ): Effect.Effect<A, E | BulkheadError, R> =>
    Effect.withFiber<A, E | BulkheadError, R>((fiber) => {
      if (callOptions === undefined) return admit(fiber, self, main, 1, 0)
      const cost = callOptions.cost ?? 1
      const priority = callOptions.priority ?? 0
      if (cost !== 1 && !(Number.isInteger(cost) && cost >= 1)) return Effect.die(invalidCost(cost))
      if (priority !== 0 && !Number.isFinite(priority)) return Effect.die(invalidPriority(priority))
      const c = callOptions.key === undefined ? main : compartmentFor(callOptions.key)
      if (cost > maxConcurrent) {
        return Exit.fail(
          rejected(
            fiber,
            c,
            construct(BulkheadCostExceeded, {
              _tag: "BulkheadCostExceeded",
              bulkhead: name,
              key: c.key,
              cost,
              maxConcurrent
            }),
            cost,
            priority
          )
        )
      }
      return admit(fiber, self, c, cost, priority)
    })

  // ---- reading
  const totals = () => {
    let active = main.active
    let queued = main.queued
    for (const c of compartments.values()) {
      active += c.active
      queued += c.queued
    }
    return { active, queued }
  }
  const rejectedTotal = () => counters.full + counters.timeout + counters.cost_exceeded
  /** The wait histogram with the calls admitted at once (a wait of 0) added to its first bucket. */
  const waitHistogram = (): Metrics.Histogram => {
    const waits = counters.waits
    const immediate = counters.admitted - counters.waited
    if (immediate === 0) return waits
    const buckets = Float64Array.from(waits.buckets)
    buckets[0] = (buckets[0] ?? 0) + immediate
    return { buckets, count: waits.count + immediate, sum: waits.sum, min: 0, max: Math.max(0, waits.max) }
  }

  // metrics, read when exported
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  const spec = Telemetry.bulkhead
  registrar.gauge(spec.active, base, () => totals().active)
  registrar.gauge(spec.queued, base, () => totals().queued)
  registrar.gauge(spec.keys, base, () => compartments.size)
  registrar.counter(spec.calls, { ...base, [Telemetry.attributes.outcome]: "admitted" }, () => counters.admitted)
  registrar.counter(spec.calls, { ...base, [Telemetry.attributes.outcome]: "rejected" }, rejectedTotal)
  for (const reason of Object.values(rejectionReason)) {
    registrar.counter(spec.rejected, { ...base, [Telemetry.attributes.reason]: reason }, () => counters[reason])
  }
  registrar.histogram(spec.waitDuration, base, waitHistogram)
  const close = Effect.andThen(
    hub.end,
    Effect.sync(() => registrar.removeAll())
  )

  const service = Bulkhead.of({
    [TypeId]: TypeId,
    name,
    options,
    isolate,
    state: (key) =>
      Effect.sync(() => {
        const c = key === undefined || key === name ? main : compartments.get(key)
        const active = c?.active ?? 0
        return { key: key ?? name, active, queued: c?.queued ?? 0, available: Math.max(0, maxConcurrent - active) }
      }),
    stats: Effect.sync(() => ({
      ...totals(),
      admitted: counters.admitted,
      rejected: rejectedTotal(),
      keys: compartments.size
    })),
    subscribe: hub.subscribe,
    events: hub.events
  })
  return { service, sweep, close }
}
