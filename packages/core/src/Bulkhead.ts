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
 *   rejections, and `stats`.
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
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as adaptive from "./internal/adaptiveLimit.ts"
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

const defaults = {
  name: "default",
  maxConcurrent: 10,
  maxQueue: 0,
  maxWait: Duration.seconds(1),
  maxKeys: 10_000,
  sweepInterval: Duration.seconds(30)
} as const

const limitDefaults = {
  minLimit: 1,
  maxLimit: 200,
  backoffRatio: 0.9,
  latencyThreshold: Duration.seconds(5),
  gradientSmoothing: 0.2,
  longWindow: 600,
  window: Duration.seconds(1),
  minWindowSamples: 10,
  vegasSmoothing: 1,
  probeMultiplier: 30
} as const

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
  smoothing: Schema.optionalKey(
    Smoothing.annotate({
      description: "Weight of each new estimate, in (0, 1]: 1 follows it at once; lower values move slower.",
      default: limitDefaults.gradientSmoothing
    })
  ),
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
  smoothing: Schema.optionalKey(
    Smoothing.annotate({
      description: "Weight of each new estimate, in (0, 1]: 1 follows it at once; lower values move slower.",
      default: limitDefaults.vegasSmoothing
    })
  ),
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
}

const positiveDuration =
  (field: "maxWait" | "sweepInterval"): Options_.Rule =>
  (o) => {
    const value = o[field]
    return Duration.isDuration(value) && Duration.toMillis(value) <= 0
      ? [{ path: field, message: "Expected a duration greater than zero" }]
      : []
  }

const fieldOf = (o: unknown, field: string): unknown => (Predicate.hasProperty(o, field) ? o[field] : undefined)

const numberAt = (o: unknown, field: string): number | undefined => {
  const value = fieldOf(o, field)
  return typeof value === "number" && Number.isFinite(value) ? value : undefined
}

/** The adaptive limit's cross-field rules: bounds in order, the initial limit within them, alpha below beta. */
const limitRule: Options_.Rule = (o) => {
  const limit = o.limit
  if (typeof limit !== "object" || limit === null) return []
  const issues: Array<{ readonly path: string; readonly message: string }> = []
  const min = numberAt(limit, "minLimit") ?? limitDefaults.minLimit
  const max = numberAt(limit, "maxLimit") ?? limitDefaults.maxLimit
  if (max < min) issues.push({ path: "limit.maxLimit", message: `Expected a value at least minLimit (${min})` })
  else {
    const initial = numberAt(o, "maxConcurrent")
    if (initial !== undefined && (initial < min || initial > max)) {
      issues.push({
        path: "maxConcurrent",
        message: `Expected the initial limit within [minLimit, maxLimit] = [${min}, ${max}]`
      })
    }
  }
  for (const field of ["latencyThreshold", "window"]) {
    const value = fieldOf(limit, field)
    if (Duration.isDuration(value) && Duration.toMillis(value) <= 0) {
      issues.push({ path: `limit.${field}`, message: "Expected a duration greater than zero" })
    }
  }
  const alpha = numberAt(limit, "alpha")
  const beta = numberAt(limit, "beta")
  if (alpha !== undefined && beta !== undefined && beta <= alpha) {
    issues.push({ path: "limit.beta", message: `Expected a value above alpha (${alpha})` })
  }
  return issues
}

const rules: ReadonlyArray<Options_.Rule> = [positiveDuration("maxWait"), positiveDuration("sweepInterval"), limitRule]

/** Normalizes the durations of `limit` (its issues named `limit.<field>`). */
const normalizeLimit = (
  normalized: Record<string, unknown>,
  issues: ReadonlyArray<Options_.Issue>
): ReadonlyArray<Options_.Issue> => {
  const limit = normalized.limit
  if (typeof limit !== "object" || limit === null) return issues
  const inner = Options_.normalizeDurations({ ...limit }, ["latencyThreshold", "window"])
  normalized.limit = inner.normalized
  return [
    ...issues,
    ...inner.issues.map(
      (issue) => new Options_.Issue({ path: `limit.${issue.path}`, value: issue.value, message: issue.message })
    )
  ]
}

const resolveLimit = (limit: Limit): ResolvedLimit => {
  const bounds = {
    minLimit: limit.minLimit ?? limitDefaults.minLimit,
    maxLimit: limit.maxLimit ?? limitDefaults.maxLimit
  }
  switch (limit.algorithm) {
    case "aimd":
      return {
        algorithm: "aimd",
        ...bounds,
        backoffRatio: limit.backoffRatio ?? limitDefaults.backoffRatio,
        latencyThreshold: limit.latencyThreshold ?? limitDefaults.latencyThreshold
      }
    case "gradient":
      return {
        algorithm: "gradient",
        ...bounds,
        smoothing: limit.smoothing ?? limitDefaults.gradientSmoothing,
        queueSize: limit.queueSize,
        longWindow: limit.longWindow ?? limitDefaults.longWindow,
        window: limit.window ?? limitDefaults.window,
        minWindowSamples: limit.minWindowSamples ?? limitDefaults.minWindowSamples
      }
    case "vegas":
      return {
        algorithm: "vegas",
        ...bounds,
        alpha: limit.alpha,
        beta: limit.beta,
        smoothing: limit.smoothing ?? limitDefaults.vegasSmoothing,
        probeMultiplier: limit.probeMultiplier ?? limitDefaults.probeMultiplier
      }
  }
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
    (o: Options): ResolvedOptions => {
      const resolved = {
        name: o.name ?? defaults.name,
        maxConcurrent: o.maxConcurrent ?? defaults.maxConcurrent,
        maxQueue: o.maxQueue ?? defaults.maxQueue,
        maxWait: o.maxWait ?? defaults.maxWait,
        maxKeys: o.maxKeys ?? defaults.maxKeys,
        sweepInterval: o.sweepInterval ?? defaults.sweepInterval
      }
      if (o.limit === undefined) return resolved
      const limit = resolveLimit(o.limit)
      // the initial limit: maxConcurrent when given (checked within the bounds), else the default within them
      const initial = o.maxConcurrent ?? Math.min(limit.maxLimit, Math.max(limit.minLimit, defaults.maxConcurrent))
      return { ...resolved, maxConcurrent: initial, limit }
    }
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
    const sweepNow = Clock.clockWith((clock) => Effect.sync(() => sweep(monotonicMillis(clock))))
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(options.sweepInterval), sweepNow)), scope)
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

/** A compartment's limits: shared by every key of a fixed bulkhead; one per key, its limit moving, when adaptive. */
interface Limits {
  maxConcurrent: number
  readonly maxQueue: number
}

/** One key's permits and line (`internal/bulkhead.ts` decides), with what the wiring needs. */
class Compartment implements engine.Compartment<Ticket> {
  /** The limits `internal/bulkhead.ts` enforces for this key. */
  readonly config: Limits
  /** The adaptive limit's state (`internal/adaptiveLimit.ts`); undefined for a fixed bulkhead. */
  limiter: adaptive.State | undefined
  /** When a call last ended (monotonic ms; adaptive keys only): a key is swept once idle a whole `sweepInterval`. */
  lastUsed = Number.NEGATIVE_INFINITY
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
  constructor(key: string, config: Limits, limiter: adaptive.State | undefined) {
    this.key = key
    this.config = config
    this.limiter = limiter
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

/** Records an adaptive call's sample and gives its permits back (`makeWith`'s `finish`). */
type Finish = (
  c: Compartment,
  cost: number,
  start: number,
  inflight: number,
  exit: Exit.Exit<unknown, unknown>,
  fiber: Fiber.Fiber<unknown, unknown>
) => void

/** The continuation of a call under an adaptive limit: its duration and outcome feed the key's limit. */
class SampleObserver extends Frame.Observer {
  readonly finish: Finish
  readonly compartment: Compartment
  readonly cost: number
  /** When the call started, monotonic milliseconds (`monotonicMillis`). */
  readonly start: number
  /** Permits held in the compartment once the call had its own. */
  readonly inflight: number
  constructor(finish: Finish, compartment: Compartment, cost: number, start: number, inflight: number) {
    super()
    this.finish = finish
    this.compartment = compartment
    this.cost = cost
    this.start = start
    this.inflight = inflight
  }
  observe(exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.finish(this.compartment, this.cost, this.start, this.inflight, exit, fiber)
  }
}

const liveClockConstructor: unknown = Effect.runSync(Clock.clockWith((clock) => Effect.succeed(clock.constructor)))

// Durations of adaptive calls: the live clock's monotonic source (performance.now), as the
// breaker times its calls; under any other clock (TestClock), that clock's milliseconds.
const monotonicMillis = (clock: Clock.Clock): number =>
  clock.constructor === liveClockConstructor ? Now.monotonicMillis() : clock.currentTimeMillisUnsafe()

/** The pure algorithm's parameters, in milliseconds. */
const algorithmConfig = (limit: ResolvedLimit): adaptive.Config => {
  switch (limit.algorithm) {
    case "aimd":
      return {
        algorithm: "aimd",
        minLimit: limit.minLimit,
        maxLimit: limit.maxLimit,
        backoffRatio: limit.backoffRatio,
        latencyThresholdMillis: Duration.toMillis(limit.latencyThreshold)
      }
    case "gradient":
      return {
        algorithm: "gradient",
        minLimit: limit.minLimit,
        maxLimit: limit.maxLimit,
        smoothing: limit.smoothing,
        queueSize: limit.queueSize,
        longWindow: limit.longWindow,
        windowMillis: Duration.toMillis(limit.window),
        minWindowSamples: limit.minWindowSamples
      }
    case "vegas":
      return {
        algorithm: "vegas",
        minLimit: limit.minLimit,
        maxLimit: limit.maxLimit,
        alpha: limit.alpha,
        beta: limit.beta,
        smoothing: limit.smoothing,
        probeMultiplier: limit.probeMultiplier
      }
  }
}

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
): {
  readonly service: Bulkhead
  readonly sweep: (now: number) => void
  readonly close: Effect.Effect<void>
} => {
  const { maxConcurrent, maxKeys, maxQueue, name } = options
  /** The fixed bulkhead's limits, shared by every key. */
  const shared: Limits = { maxConcurrent, maxQueue }
  const limitConfig = options.limit === undefined ? undefined : algorithmConfig(options.limit)
  /** The most a call may cost: every permit of a fixed key, the floor of an adaptive one (so it always fits). */
  const costCap = limitConfig === undefined ? maxConcurrent : limitConfig.minLimit
  const newCompartment = (key: string): Compartment =>
    limitConfig === undefined
      ? new Compartment(key, shared, undefined)
      : new Compartment(key, { maxConcurrent, maxQueue }, adaptive.make(limitConfig, maxConcurrent))
  const sweepMillis = Duration.toMillis(options.sweepInterval)
  const maxWaitMillis = Duration.toMillis(options.maxWait)
  const main = newCompartment(name)
  const compartments = new Map<string, Compartment>()
  let limitChanges = 0
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
      c = newCompartment(key)
      compartments.set(key, c)
    }
    return c
  }
  const sweep = (now: number) => {
    for (const [key, c] of compartments) {
      // an adaptive key keeps what it learned while it is in use: it goes once idle a whole interval
      if (engine.isIdle(c) && (c.limiter === undefined || now - c.lastUsed >= sweepMillis)) compartments.delete(key)
    }
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
    const millis = engine.estimateMillis(c, cost, priority, c.config)
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
        maxConcurrent: c.config.maxConcurrent,
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
      engine.release(c, cost, shared, noneGranted)
      return
    }
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    if (start >= 0) engine.recordHold(c, now - start)
    const granted: Array<Ticket> = []
    engine.release(c, cost, shared, granted)
    wakeGranted(granted, now, fiber)
  }
  /** Feeds an adaptive call's sample to its key's limit, then gives its permits back (with the new limit). */
  const finish: Finish = (c, cost, start, inflight, exit, fiber) => {
    const clock = fiber.getRef(Clock.Clock)
    const end = monotonicMillis(clock)
    c.lastUsed = end
    const limiter = c.limiter
    // an interrupted call says nothing about the dependency: nothing is recorded
    if (
      limitConfig !== undefined &&
      limiter !== undefined &&
      !(exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause))
    ) {
      const rtt = end - start
      if (c.contended) engine.recordHold(c, rtt)
      const next = adaptive.update(limiter, { rtt, inflight, dropped: exit._tag === "Failure", now: end }, limitConfig)
      c.limiter = next
      const from = c.config.maxConcurrent
      const to = adaptive.limitOf(next)
      if (to !== from) {
        c.config.maxConcurrent = to
        limitChanges++
        if (hub.listening()) {
          hub.emit({ _tag: "LimitChanged", bulkhead: name, key: c.key, algorithm: limitConfig.algorithm, from, to })
        }
      }
    }
    if (c.queued === 0) {
      engine.release(c, cost, c.config, noneGranted)
      return
    }
    // a limit that rose lets the head of the line in at once; one that fell below the calls running admits nobody
    const granted: Array<Ticket> = []
    engine.release(c, cost, c.config, granted)
    wakeGranted(granted, clock.currentTimeMillisUnsafe(), fiber)
  }
  /** The waiter leaves (interrupted): out of the line, or its permits given back if granted and not started. */
  const settle = (t: Ticket, c: Compartment, fiber: Fiber.Fiber<unknown, unknown>) => {
    t.cancelTimer?.()
    t.cancelTimer = undefined
    if (t.status === "left") return
    const granted: Array<Ticket> = []
    engine.leave(c, t, c.config, granted)
    wakeGranted(granted, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber)
  }
  /** `maxWait` ran out for a waiter still in line (`fiber` is the waiter's, suspended). */
  const timeOut = (t: Ticket, c: Compartment, clock: Clock.Clock, fiber: Fiber.Fiber<unknown, unknown>) => {
    t.cancelTimer = undefined
    if (t.status !== "waiting") return
    const granted: Array<Ticket> = []
    engine.leave(c, t, c.config, granted)
    const now = clock.currentTimeMillisUnsafe()
    const error = rejected(
      fiber,
      c,
      construct(BulkheadTimeout, {
        _tag: "BulkheadTimeout",
        bulkhead: name,
        key: c.key,
        maxConcurrent: c.config.maxConcurrent,
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
    engine.enqueue(c, t, c.config)
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
            if (limitConfig !== undefined) {
              const started = monotonicMillis(running.getRef(Clock.Clock))
              return Frame.observed<A, E, R>(
                running,
                restore(self),
                new SampleObserver(finish, c, cost, started, c.active)
              )
            }
            return Frame.observed<A, E, R>(running, restore(self), new ReleaseObserver(release, c, cost, now))
          })
      })
    )
  }

  const admitFixed = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    c: Compartment,
    cost: number,
    priority: number
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (!engine.tryAcquire(c, cost, priority, shared)) return wait(fiber, self, c, cost, priority)
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

  /** Every call is timed: its duration and outcome feed the key's limit when it ends. */
  const admitAdaptive = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    c: Compartment,
    cost: number,
    priority: number
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (!engine.tryAcquire(c, cost, priority, c.config)) return wait(fiber, self, c, cost, priority)
    counters.admitted++
    const start = monotonicMillis(fiber.getRef(Clock.Clock))
    return Frame.observed<A, E, R>(fiber, self, new SampleObserver(finish, c, cost, start, c.active))
  }

  const admit = limitConfig === undefined ? admitFixed : admitAdaptive

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
      if (cost > costCap) {
        return Exit.fail(
          rejected(
            fiber,
            c,
            construct(BulkheadCostExceeded, {
              _tag: "BulkheadCostExceeded",
              bulkhead: name,
              key: c.key,
              cost,
              maxConcurrent: costCap
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
  registrar.gauge(spec.limit, base, () => main.config.maxConcurrent)
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
        const limit = c?.config.maxConcurrent ?? maxConcurrent
        return { key: key ?? name, active, queued: c?.queued ?? 0, available: Math.max(0, limit - active), limit }
      }),
    stats: Effect.sync(() => ({
      ...totals(),
      admitted: counters.admitted,
      rejected: rejectedTotal(),
      keys: compartments.size,
      limit: main.config.maxConcurrent,
      limitChanges
    })),
    subscribe: hub.subscribe,
    events: hub.events
  })
  return { service, sweep, close }
}
