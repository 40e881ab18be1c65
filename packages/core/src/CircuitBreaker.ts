/**
 * Circuit breakers: stop calling a dependency that is failing, give it time to
 * recover, and probe it before letting traffic back.
 *
 * A breaker guards one dependency, or many keyed ones (per host, per tenant),
 * each with its own circuit. A circuit is Closed (calls run and their outcomes
 * are counted), Open (calls are rejected at once with `CircuitOpen` and a
 * `retryAfter`), or HalfOpen (a configured number of probe calls run; enough
 * successes close the circuit, a failure reopens it). Operators can force
 * three more states: Disabled (always run, record nothing), ForcedOpen
 * (always reject) and MetricsOnly (record, never trip).
 *
 * **Details**
 *
 * - Trip policies combine: consecutive failures, a failure rate over a
 *   count-based window (the last N calls) or a time-based one (B buckets of a
 *   duration), and a slow-call rate (calls slower than a threshold, successes
 *   included). The circuit opens when any of them trips.
 * - State is derived from the clock at admission: there are no timers, so an
 *   Open circuit becomes HalfOpen on the first call after its open duration.
 * - The open duration is fixed or a `Schedule` over consecutive openings
 *   (exponential with a cap and jitter, say); the count resets once the
 *   circuit stays closed as long as it was last open.
 * - Outcomes are classified by predicates on the typed error and on the
 *   success value (a 503 response value can count as a failure, a `NotFound`
 *   error can be ignored). Interruption is never a failure; defects are
 *   failures unless `countDefectsAsFailures` is off.
 * - Every breaker emits typed events (`events`), records metrics named in
 *   `Telemetry.circuitBreaker` with low-cardinality attributes (never a key),
 *   and adds span events for transitions and rejections.
 *
 * **Gotchas**
 *
 * - Put the attempt timeout *inside* the breaker and the retry *outside*
 *   (`effect.pipe(Effect.timeout(…), CircuitBreaker.protect(b), Effect.retry(…))`):
 *   a timeout then counts as a failure, every attempt is one outcome, and a
 *   retry of a rejection waits for its `retryAfter`. This is the order
 *   `Policy` composes in; docs/patterns/circuit-breaker.md shows what the
 *   other orders do.
 * - Calls admitted before a trip still run; their outcomes change nothing.
 * - Rejections carry no stack trace: they are built without one, so an open
 *   circuit rejects cheaply.
 *
 * **Example** (Rejecting calls once a circuit opens)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Data, Effect } from "effect"
 *
 * class PaymentsDown extends Data.TaggedError("PaymentsDown") {}
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2, openDuration: "30 seconds" })
 *   const charge = Effect.fail(new PaymentsDown()).pipe(CircuitBreaker.protect(breaker))
 *   yield* Effect.flip(charge)
 *   yield* Effect.flip(charge)
 *   const rejected = yield* Effect.flip(charge)
 *   return rejected._tag === "CircuitBreakerError" ? rejected.reason._tag : rejected._tag
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => "CircuitOpen"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as engine from "./internal/circuitBreaker.ts"
import { memoryCircuits } from "./internal/circuitBreakerMemory.ts"
import { durationFields, resolveOptions, rules } from "./internal/circuitBreakerOptions.ts"
import { type Errors, makeRuntime } from "./internal/circuitBreakerRuntime.ts"
import { dualBy } from "./internal/dual.ts"
import * as Options_ from "./Options.ts"

// ---------------------------------------------------------------------------
// type ids
// ---------------------------------------------------------------------------

/**
 * Runtime identifier of `CircuitBreaker` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/CircuitBreaker"

/**
 * Type-level identifier of `CircuitBreaker` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/CircuitBreaker"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A circuit breaker: runs effects through keyed circuits and reports on them.
 *
 * **Details**
 *
 * - `protect` runs a call through the circuit of `options.key` (the breaker's
 *   name when omitted), classifies its outcome and records it.
 * - `state`, `metrics` and `health` read one circuit; `stats` the whole breaker.
 * - `reset`, `forceOpen`, `disable` and `metricsOnly` force a circuit's state;
 *   `reset` returns it to a fresh Closed circuit.
 * - `snapshot` exports every circuit as JSON-safe data and `restore` loads
 *   one: persist it to survive restarts or serverless cold starts.
 * - `events` is a stream of transitions, rejections, outcomes and health
 *   changes; `subscribe` gives the same as a scoped queue. Over a remote
 *   store, health is read back from the store after each call while anyone
 *   subscribes: one more round trip per call, and none without a subscriber.
 *
 * @category models
 * @since 0.1.0
 */
export interface CircuitBreaker {
  readonly [TypeId]: TypeId
  /** The breaker's name: the `resilience.name` attribute of its metrics. */
  readonly name: string
  /** The validated options. */
  readonly options: ResolvedOptions
  readonly protect: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options?: ProtectOptions<A, E> | undefined
  ) => Effect.Effect<A, E | CircuitBreakerError, R>
  readonly state: (key?: string | undefined) => Effect.Effect<State, CircuitBreakerError>
  readonly metrics: (key?: string | undefined) => Effect.Effect<CircuitMetrics, CircuitBreakerError>
  readonly health: (key?: string | undefined) => Effect.Effect<Health, CircuitBreakerError>
  readonly stats: Effect.Effect<Stats>
  readonly reset: (key?: string | undefined) => Effect.Effect<void, CircuitBreakerError>
  readonly forceOpen: (key?: string | undefined) => Effect.Effect<void, CircuitBreakerError>
  readonly disable: (key?: string | undefined) => Effect.Effect<void, CircuitBreakerError>
  readonly metricsOnly: (key?: string | undefined) => Effect.Effect<void, CircuitBreakerError>
  readonly snapshot: Effect.Effect<Snapshot, CircuitBreakerError>
  readonly restore: (snapshot: Snapshot) => Effect.Effect<void, CircuitBreakerError>
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<Event>
}

/**
 * Per-call options of `protect`: the circuit's key and how to classify the
 * call's outcome. Predicates here run before the breaker-wide ones.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProtectOptions<A, E> {
  /** The circuit to use; the breaker's name when omitted. */
  readonly key?: string | undefined
  /** A typed error that counts as a failure (default: every error). */
  readonly isFailure?: ((error: E) => boolean) | undefined
  /** A typed error that counts as nothing: neither success nor failure (a `NotFound`, say). */
  readonly isIgnored?: ((error: E) => boolean) | undefined
  /** A success value that counts as a failure (a 503 response, say). */
  readonly isFailureResult?: ((value: A) => boolean) | undefined
  /** A failure's hint for how long to stay open, if it opens the circuit (an HTTP `Retry-After`). */
  readonly retryAfter?: ((error: E) => Duration.Input | undefined) | undefined
}

/**
 * The service tag of the breaker a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const CircuitBreaker: Context.Service<CircuitBreaker, CircuitBreaker> = Context.Service<CircuitBreaker>(TypeId)

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * The six states: three automatic, three forced by an operator.
 *
 * @category models
 * @since 0.1.0
 */
export type StateTag = engine.StateTag

/**
 * Health derived from a circuit: `unhealthy` when Open or ForcedOpen,
 * `degraded` when HalfOpen or when a rate has reached half its threshold,
 * `healthy` otherwise.
 *
 * @category models
 * @since 0.1.0
 */
export type Health = engine.Health

/**
 * One circuit's state.
 *
 * @category models
 * @since 0.1.0
 */
export type State =
  | { readonly _tag: "Closed"; readonly key: string }
  | {
      readonly _tag: "Open"
      readonly key: string
      /** Time left until a call may probe, clamped to zero. */
      readonly retryAfter: Duration.Duration
      readonly consecutiveOpenings: number
    }
  | {
      readonly _tag: "HalfOpen"
      readonly key: string
      readonly probesInFlight: number
      readonly probesAdmitted: number
      readonly consecutiveOpenings: number
    }
  | { readonly _tag: "Disabled"; readonly key: string }
  | { readonly _tag: "ForcedOpen"; readonly key: string }
  | { readonly _tag: "MetricsOnly"; readonly key: string }

/**
 * One circuit's window, as Resilience4j's `CircuitBreaker.Metrics` reports it.
 *
 * @category models
 * @since 0.1.0
 */
export interface CircuitMetrics {
  readonly key: string
  readonly state: StateTag
  readonly health: Health
  /** Calls in the sliding window (ignored calls excluded). */
  readonly bufferedCalls: number
  readonly failedCalls: number
  readonly slowCalls: number
  /** Failed over buffered calls, 0 to 1 (0 for an empty window). */
  readonly failureRate: number
  /** Slow over buffered calls, 0 to 1. */
  readonly slowCallRate: number
  readonly consecutiveFailures: number
}

/**
 * Totals of a breaker since it was made.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  readonly successes: number
  readonly failures: number
  readonly ignored: number
  readonly rejected: number
  readonly slowSuccesses: number
  readonly slowFailures: number
  /** Circuits held right now. */
  readonly circuits: number
  /** Circuits dropped by idle eviction or the `maxKeys` cap. */
  readonly evicted: number
  /** Store failures the breaker swallowed (`onStoreError: "allow"`, a failed record). */
  readonly storeErrors: number
}

/**
 * Everything a breaker emits on `events`.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.StateTransition | Event.CallRejected | Event.CallOutcome | Event.HealthChanged

/**
 * Members of the `Event` union.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * A circuit changed state.
   *
   * @since 0.1.0
   */
  export interface StateTransition {
    readonly _tag: "StateTransition"
    readonly breaker: string
    readonly key: string
    readonly from: StateTag
    readonly to: StateTag
    /** When, in clock milliseconds. */
    readonly at: number
    /** For a transition to Open: how long it stays open. */
    readonly retryAfter: Duration.Duration | undefined
    readonly consecutiveOpenings: number
  }
  /**
   * A call was rejected without running.
   *
   * @since 0.1.0
   */
  export interface CallRejected {
    readonly _tag: "CallRejected"
    readonly breaker: string
    readonly key: string
    readonly state: StateTag
    readonly retryAfter: Duration.Duration
  }
  /**
   * A call the breaker ran completed.
   *
   * @since 0.1.0
   */
  export interface CallOutcome {
    readonly _tag: "CallOutcome"
    readonly breaker: string
    readonly key: string
    readonly outcome: engine.Outcome
    readonly slow: boolean
    /** Zero when durations are not measured. */
    readonly duration: Duration.Duration
  }
  /**
   * A circuit's derived health changed.
   *
   * @since 0.1.0
   */
  export interface HealthChanged {
    readonly _tag: "HealthChanged"
    readonly breaker: string
    readonly key: string
    readonly from: Health
    readonly to: Health
  }
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const Rate = Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMinimum: true }))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const DurationField = Schema.DurationFromString

/**
 * The breaker's options: one schema for the type, the rules, `layerConfig`
 * and the generated Defaults table. Every field is optional.
 *
 * **Details**
 *
 * Trip policies are on when their field is set: `consecutiveFailures`,
 * `failureRateThreshold`, `slowCallRateThreshold`. With none set the breaker
 * trips at a 50% failure rate. Durations decode from strings such as
 * `"30 seconds"` (environment variables); programmatic options take any
 * `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the breaker: the `resilience.name` metric attribute and the default key.",
      default: "default"
    })
  ),
  consecutiveFailures: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Trips after this many failures in a row (consecutive policy; off when unset)."
    })
  ),
  failureRateThreshold: Schema.optionalKey(
    Rate.annotate({
      description:
        "Trips when failures / calls in the sliding window reach this (0 exclusive to 1). Defaults to 0.5 when no policy is set."
    })
  ),
  slowCallRateThreshold: Schema.optionalKey(
    Rate.annotate({
      description: "Trips when slow calls / calls in the window reach this (slow-call policy; off when unset)."
    })
  ),
  slowCallDuration: Schema.optionalKey(
    DurationField.annotate({
      description: "A call this slow or slower is slow, successes included.",
      default: Duration.seconds(60)
    })
  ),
  slidingWindowType: Schema.optionalKey(
    Schema.Literals(["count", "time"]).annotate({
      description: "`count`: the last `slidingWindowSize` calls; `time`: calls in the last `slidingWindowDuration`.",
      default: "count"
    })
  ),
  slidingWindowSize: Schema.optionalKey(
    PositiveInt.annotate({ description: "Calls in a count-based window.", default: 100 })
  ),
  slidingWindowDuration: Schema.optionalKey(
    DurationField.annotate({ description: "Span of a time-based window.", default: Duration.seconds(10) })
  ),
  slidingWindowBuckets: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })).annotate({
      description: "Buckets of a time-based window (its resolution).",
      default: 10
    })
  ),
  minimumCalls: Schema.optionalKey(
    PositiveInt.annotate({ description: "Rates are evaluated once the window holds this many calls.", default: 20 })
  ),
  openDuration: Schema.optionalKey(
    DurationField.annotate({
      description:
        "How long a circuit stays open (programmatic options also take a `Schedule` over consecutive openings).",
      default: Duration.seconds(30)
    })
  ),
  maxOpenDuration: Schema.optionalKey(
    DurationField.annotate({
      description: "Caps a failure's retry-after hint and a schedule's delay.",
      default: Duration.hours(1)
    })
  ),
  halfOpenPermittedCalls: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Probe calls admitted per half-open period; further calls are rejected at once.",
      default: 1
    })
  ),
  halfOpenSuccessesToClose: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Successful probes that close the circuit; a failed probe reopens it.",
      default: 1
    })
  ),
  halfOpenSuccessRate: Schema.optionalKey(
    Rate.annotate({
      description:
        "Success-rate mode: once every permitted probe completed, close when successes / probes reach this (off when unset)."
    })
  ),
  halfOpenMaxDuration: Schema.optionalKey(
    DurationField.annotate({ description: "Reopens a circuit that stays half-open this long (off when unset)." })
  ),
  maxKeys: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Circuits held at most; the oldest idle ones are evicted first.",
      default: 10_000
    })
  ),
  idleTimeToLive: Schema.optionalKey(
    DurationField.annotate({
      description: "A closed circuit unused this long may be evicted.",
      default: Duration.hours(1)
    })
  ),
  recordCallDuration: Schema.optionalKey(
    Schema.Boolean.annotate({
      description: "Measure every call's duration for the duration histogram (on regardless with a slow-call policy).",
      default: false
    })
  ),
  countDefectsAsFailures: Schema.optionalKey(
    Schema.Boolean.annotate({ description: "Whether a defect (a die) counts as a failure.", default: true })
  ),
  spanEvents: Schema.optionalKey(
    Schema.Literals(["none", "transitions", "all"]).annotate({
      description: "Span events on the current span: none, transitions and rejections, or every outcome too.",
      default: "transitions"
    })
  ),
  onStoreError: Schema.optionalKey(
    Schema.Literals(["allow", "fail"]).annotate({
      description: "When the store cannot admit a call: run it unrecorded (`allow`) or fail it.",
      default: "allow"
    })
  ),
  initialState: Schema.optionalKey(
    Schema.Literals(["Closed", "Disabled", "ForcedOpen", "MetricsOnly"]).annotate({
      description: "The state new circuits start in.",
      default: "Closed"
    })
  )
})

/**
 * The decoded options.
 *
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` and `layer` take them: durations as any
 * `Duration.Input`, an `openDuration` that may be a `Schedule`, and the
 * breaker-wide classification predicates.
 *
 * @category options
 * @since 0.1.0
 */
export type Input = {
  readonly [K in keyof Options]?: K extends
    | "slowCallDuration"
    | "slidingWindowDuration"
    | "maxOpenDuration"
    | "halfOpenMaxDuration"
    | "idleTimeToLive"
    ? Duration.Input | undefined
    : K extends "openDuration"
      ? Duration.Input | Schedule.Schedule<unknown, number> | undefined
      : Options[K] | undefined
} & {
  /** Breaker-wide: an error that counts as a failure (default: every error). */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /** Breaker-wide: an error that counts as nothing. */
  readonly isIgnored?: ((error: unknown) => boolean) | undefined
  /** Breaker-wide: a success value that counts as a failure. */
  readonly isFailureResult?: ((value: unknown) => boolean) | undefined
  /** A snapshot to start from (see `snapshot`). */
  readonly initialSnapshot?: Snapshot | undefined
}

/**
 * Options after validation, with every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly consecutiveFailures: number | undefined
  readonly failureRateThreshold: number | undefined
  readonly slowCallRateThreshold: number | undefined
  readonly slowCallDuration: Duration.Duration
  readonly slidingWindowType: "count" | "time"
  readonly slidingWindowSize: number
  readonly slidingWindowDuration: Duration.Duration
  readonly slidingWindowBuckets: number
  readonly minimumCalls: number
  readonly openDuration: Duration.Duration | Schedule.Schedule<unknown, number>
  readonly maxOpenDuration: Duration.Duration
  readonly halfOpenPermittedCalls: number
  readonly halfOpenSuccessesToClose: number
  readonly halfOpenSuccessRate: number | undefined
  readonly halfOpenMaxDuration: Duration.Duration | undefined
  readonly maxKeys: number
  readonly idleTimeToLive: Duration.Duration
  readonly recordCallDuration: boolean
  readonly countDefectsAsFailures: boolean
  readonly spanEvents: "none" | "transitions" | "all"
  readonly onStoreError: "allow" | "fail"
  readonly initialState: engine.ManualState
}

const schemaFields = new Set(Object.keys(Options.fields))

/**
 * Validates options without making a breaker: succeeds with the resolved
 * options or fails with every bad field listed.
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const schedule = Schedule.isSchedule(input.openDuration) ? input.openDuration : undefined
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) {
    if (schemaFields.has(key) && value !== undefined && !(key === "openDuration" && schedule !== undefined)) {
      plain[key] = value
    }
  }
  const { issues, normalized } = Options_.normalizeDurations(plain, durationFields)
  return Effect.map(Options_.validate("CircuitBreaker", Options, normalized, rules, issues), (o) =>
    resolveOptions(o, schedule)
  )
}

// ---------------------------------------------------------------------------
// policy constructors
// ---------------------------------------------------------------------------

/**
 * The consecutive-failures policy, as options to spread into `make`.
 *
 * **Example** (Combining policies)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker } from "@effect-resilience/core"
 *
 * const options = {
 *   ...CircuitBreaker.consecutive(5),
 *   ...CircuitBreaker.slowCalls({ duration: "2 seconds", threshold: 0.8 })
 * }
 * options.consecutiveFailures
 * // => 5
 * ```
 *
 * @category policies
 * @since 0.1.0
 */
export const consecutive = (failures: number): Input => ({ consecutiveFailures: failures })

/**
 * The failure-rate policy over the last `size` calls.
 *
 * @category policies
 * @since 0.1.0
 */
export const rate = (options: {
  readonly threshold?: number | undefined
  readonly size?: number | undefined
  readonly minimumCalls?: number | undefined
}): Input => ({
  failureRateThreshold: options.threshold ?? 0.5,
  slidingWindowType: "count",
  slidingWindowSize: options.size ?? 100,
  minimumCalls: options.minimumCalls ?? Math.min(20, options.size ?? 100)
})

/**
 * The failure-rate policy over a time window of `buckets` buckets.
 *
 * @category policies
 * @since 0.1.0
 */
export const timeRate = (options: {
  readonly threshold?: number | undefined
  readonly window?: Duration.Input | undefined
  readonly buckets?: number | undefined
  readonly minimumCalls?: number | undefined
}): Input => ({
  failureRateThreshold: options.threshold ?? 0.5,
  slidingWindowType: "time",
  slidingWindowDuration: options.window ?? "10 seconds",
  slidingWindowBuckets: options.buckets ?? 10,
  ...(options.minimumCalls === undefined ? {} : { minimumCalls: options.minimumCalls })
})

/**
 * The slow-call policy: calls at or above `duration` are slow, and the
 * circuit trips when slow calls reach `threshold` of the window.
 *
 * @category policies
 * @since 0.1.0
 */
export const slowCalls = (options: {
  readonly duration: Duration.Input
  readonly threshold?: number | undefined
}): Input => ({ slowCallDuration: options.duration, slowCallRateThreshold: options.threshold ?? 1 })

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/**
 * A call rejected because its circuit is Open (or ForcedOpen).
 *
 * @category errors
 * @since 0.1.0
 */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>("@effect-resilience/core/CircuitBreaker/CircuitOpen")(
  "CircuitOpen",
  {
    breaker: Schema.String,
    key: Schema.String,
    state: Schema.Literals(["Open", "ForcedOpen"]),
    retryAfter: Schema.DurationFromMillis
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Circuit open"
  }
}

/**
 * A call rejected because its circuit is HalfOpen and every permitted probe
 * is taken.
 *
 * @category errors
 * @since 0.1.0
 */
export class CircuitHalfOpen extends Schema.TaggedError<CircuitHalfOpen>(
  "@effect-resilience/core/CircuitBreaker/CircuitHalfOpen"
)("CircuitHalfOpen", {
  breaker: Schema.String,
  key: Schema.String,
  retryAfter: Schema.DurationFromMillis
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Circuit half-open"
  }
}

/**
 * The store behind the breaker failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class CircuitBreakerStoreError extends Schema.TaggedError<CircuitBreakerStoreError>(
  "@effect-resilience/core/CircuitBreaker/CircuitBreakerStoreError"
)("CircuitBreakerStoreError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * The reasons a `CircuitBreakerError` carries.
 *
 * @category errors
 * @since 0.1.0
 */
export type CircuitBreakerErrorReason = CircuitOpen | CircuitHalfOpen | CircuitBreakerStoreError

/**
 * Runtime identifier of `CircuitBreakerError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/CircuitBreaker/CircuitBreakerError"

/**
 * Type-level identifier of `CircuitBreakerError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/CircuitBreaker/CircuitBreakerError"

/**
 * The one error a breaker adds to a protected effect; `reason` says why.
 *
 * **Example** (Handling a rejection)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ initialState: "ForcedOpen" })
 *   return yield* Effect.succeed("fresh").pipe(
 *     CircuitBreaker.protect(breaker),
 *     Effect.catchReason("CircuitBreakerError", "CircuitOpen", () => Effect.succeed("cached"))
 *   )
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => "cached"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class CircuitBreakerError extends Schema.TaggedError<CircuitBreakerError>(ErrorTypeId)("CircuitBreakerError", {
  reason: Schema.Union([CircuitOpen, CircuitHalfOpen, CircuitBreakerStoreError])
}) {
  /**
   * Brand for the `isCircuitBreakerError` guard.
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
 * Whether a value is a `CircuitBreakerError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isCircuitBreakerError = (u: unknown): u is CircuitBreakerError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

/**
 * Whether a value is a breaker's rejection (`CircuitOpen` or
 * `CircuitHalfOpen`, not a store failure): the predicate for `Retry`'s
 * `while` option, with `retryAfter` to wait for.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection = (
  u: unknown
): u is CircuitBreakerError & { readonly reason: CircuitOpen | CircuitHalfOpen } =>
  isCircuitBreakerError(u) && u.reason._tag !== "CircuitBreakerStoreError"

// ---------------------------------------------------------------------------
// snapshots
// ---------------------------------------------------------------------------

const CircuitSnapshot = Schema.Struct({
  key: Schema.String,
  state: Schema.Literals(["Closed", "Open", "HalfOpen", "Disabled", "ForcedOpen", "MetricsOnly"]),
  consecutive: Schema.Number,
  window: Schema.Array(Schema.Array(Schema.Number)),
  openedAt: Schema.Number,
  openUntil: Schema.Number,
  consecutiveOpenings: Schema.Number,
  lastOpenMillis: Schema.Number,
  backoffResetAt: Schema.Number,
  halfOpenSince: Schema.Number
})

/**
 * Every circuit of a breaker as JSON-safe data: what `snapshot` exports and
 * `restore` (or the `initialSnapshot` option) loads. Times are absolute clock
 * milliseconds, so an Open circuit restored later has only its remaining
 * open time left.
 *
 * @category snapshots
 * @since 0.1.0
 */
export const Snapshot = Schema.Struct({
  version: Schema.Literal(1),
  breaker: Schema.String,
  takenAt: Schema.Number,
  circuits: Schema.Array(CircuitSnapshot)
})

/**
 * @category snapshots
 * @since 0.1.0
 */
export type Snapshot = typeof Snapshot.Type

// ---------------------------------------------------------------------------
// the store
// ---------------------------------------------------------------------------

/**
 * What a store needs to hold a breaker's circuits.
 *
 * @category store
 * @since 0.1.0
 */
export interface CircuitsOptions {
  /** The breaker's name: a namespace, so breakers sharing a store never share circuits. */
  readonly name: string
  readonly config: engine.Config
  /** Duration of the n-th consecutive opening, in milliseconds. */
  readonly openMillisFor: (consecutiveOpenings: number) => number
  readonly initialState: engine.ManualState
  readonly maxKeys: number
  readonly idleTimeToLiveMillis: number
}

/**
 * The result of `Circuits.admit`.
 *
 * @category store
 * @since 0.1.0
 */
export interface Admission {
  readonly verdict: engine.Verdict
  /** The fencing token to pass back to `record`. */
  readonly generation: number
  /** For a rejection: time until a call may be admitted, in milliseconds. */
  readonly retryAfterMillis: number
  readonly transition: engine.Transition | undefined
}

/**
 * One breaker's circuits in a store. Every operation is atomic and reads the
 * time itself (the clock for memory, `TIME` for Redis).
 *
 * @category store
 * @since 0.1.0
 */
export interface Circuits {
  readonly admit: (key: string) => Effect.Effect<Admission, CircuitBreakerError>
  readonly record: (options: {
    readonly key: string
    readonly generation: number
    readonly outcome: engine.Outcome
    readonly durationMillis: number
    readonly hintMillis: number
  }) => Effect.Effect<engine.Transition | undefined, CircuitBreakerError>
  readonly force: (
    key: string,
    to: engine.ManualState
  ) => Effect.Effect<engine.Transition | undefined, CircuitBreakerError>
  /** A copy of a circuit (a fresh one when the key is unknown). */
  readonly read: (key: string) => Effect.Effect<engine.Circuit, CircuitBreakerError>
  readonly export: Effect.Effect<ReadonlyArray<readonly [string, engine.Snapshot]>, CircuitBreakerError>
  readonly import: (
    circuits: ReadonlyArray<readonly [string, engine.Snapshot]>
  ) => Effect.Effect<void, CircuitBreakerError>
  readonly size: Effect.Effect<number>
  /**
   * An in-process store's circuits, for the breaker's synchronous hot path:
   * the same state the effectful operations above act on.
   */
  readonly local: LocalCircuits | undefined
}

/**
 * Synchronous access to an in-process store's circuits.
 *
 * @category store
 * @since 0.1.0
 */
export interface LocalCircuits {
  /** The circuit of `key`, if held; marks it used. */
  readonly peek: (key: string) => engine.Circuit | undefined
  /** Creates the circuit of `key`, making room for it (eviction) as of `now`. */
  readonly insert: (key: string, now: number) => engine.Circuit
  readonly nextGeneration: () => number
  readonly circuits: () => IterableIterator<engine.Circuit>
  readonly size: () => number
  readonly evicted: () => number
  /**
   * Called with every outcome the breaker is about to record into a circuit,
   * with the generation its call was admitted under (an outcome whose
   * generation is not the circuit's is then dropped). A store that syncs
   * what its circuits saw (`RedisCircuitBreaker.layerStoreLocalFirst`) counts
   * here; `undefined` for the memory store.
   */
  readonly onRecord?:
    | ((key: string, circuit: engine.Circuit, generation: number, outcome: engine.Outcome, slow: boolean) => void)
    | undefined
  /**
   * For a store that changes its circuits on its own (a local-first store
   * applying the fleet's decisions): the breaker registers a listener that
   * publishes each such transition (event, metrics, health) as its own.
   */
  readonly setTransitionListener?:
    | ((listener: (key: string, circuit: engine.Circuit, transition: engine.Transition, now: number) => void) => void)
    | undefined
}

/**
 * One circuit's whole state, as a store holds it: the state, its fencing
 * `generation`, the window and the half-open probes. For store
 * implementations; a breaker's users read `State` and `CircuitMetrics`.
 *
 * @category store
 * @since 0.1.0
 */
export type Circuit = engine.Circuit

/**
 * A circuit as JSON-safe data (times as absolute milliseconds): what stores
 * export and import.
 *
 * @category store
 * @since 0.1.0
 */
export type CircuitData = engine.Snapshot

/**
 * A state change made by a store operation.
 *
 * @category store
 * @since 0.1.0
 */
export type Transition = engine.Transition

/**
 * A fresh Closed circuit with fencing token `generation`, for stores.
 *
 * @category store
 * @since 0.1.0
 */
export const makeCircuit = (generation: number): Circuit => engine.make(generation)

/**
 * A circuit as JSON-safe data (probes in flight are not kept), for stores.
 *
 * @category store
 * @since 0.1.0
 */
export const circuitToData = (circuit: Circuit): CircuitData => engine.toSnapshot(circuit)

/**
 * A circuit from its data under `config`: window entries that do not fit the
 * configured window are dropped oldest first. For stores.
 *
 * @category store
 * @since 0.1.0
 */
export const circuitFromData = (data: CircuitData, config: CircuitsOptions["config"], generation: number): Circuit =>
  engine.fromSnapshot(data, config, generation)

/**
 * Where breakers keep their circuits. `layerStoreMemory` is the embedded
 * default; a Redis store shares circuits between processes.
 *
 * @category store
 * @since 0.1.0
 */
export class CircuitBreakerStore extends Context.Service<
  CircuitBreakerStore,
  {
    readonly circuits: (options: CircuitsOptions) => Effect.Effect<Circuits, never, Scope.Scope>
  }
>()("@effect-resilience/core/CircuitBreaker/CircuitBreakerStore") {}

/**
 * An in-memory store: circuits in a `Map` per breaker, bounded by `maxKeys`,
 * with idle closed circuits evicted first.
 *
 * **Details**
 *
 * Eviction runs only when a new key arrives: circuits unused for
 * `idleTimeToLive` are dropped (checked at most four times per
 * `idleTimeToLive`), then, if the breaker still holds `maxKeys` circuits, the
 * oldest closed ones. An Open or probing circuit is evicted only when every
 * candidate is, so a key flood cannot grow memory past `maxKeys`.
 *
 * @category store
 * @since 0.1.0
 */
export const layerStoreMemory = (): Layer.Layer<CircuitBreakerStore> =>
  Layer.succeed(
    CircuitBreakerStore,
    CircuitBreakerStore.of({ circuits: (options) => Effect.sync(() => memoryCircuits(options)) })
  )

// ---------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------

/**
 * Makes a breaker over the current `CircuitBreakerStore`.
 *
 * Fails with `Options.InvalidOptions` listing every bad option.
 *
 * **Example** (A keyed breaker with a slow-call policy)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({
 *     name: "inventory",
 *     ...CircuitBreaker.rate({ threshold: 0.5, size: 20, minimumCalls: 10 }),
 *     ...CircuitBreaker.slowCalls({ duration: "2 seconds", threshold: 0.8 })
 *   })
 *   yield* Effect.succeed(1).pipe(CircuitBreaker.protect(breaker, { key: "eu-west" }))
 *   const state = yield* breaker.state("eu-west")
 *   return state._tag
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => "Closed"
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  options?: Input
) => Effect.Effect<CircuitBreaker, Options_.InvalidOptions | CircuitBreakerError, CircuitBreakerStore | Scope.Scope> =
  Effect.fnUntraced(function* (input: Input = {}) {
    const options = yield* validateOptions(input)
    const store = yield* CircuitBreakerStore
    const runtime = yield* makeRuntime(options, input, store, errors)
    return CircuitBreaker.of({
      [TypeId]: TypeId,
      name: options.name,
      options,
      protect: runtime.protect,
      state: runtime.state,
      metrics: runtime.metrics,
      health: runtime.health,
      stats: runtime.stats,
      reset: runtime.reset,
      forceOpen: runtime.forceOpen,
      disable: runtime.disable,
      metricsOnly: runtime.metricsOnly,
      snapshot: runtime.snapshot,
      restore: runtime.restore,
      subscribe: runtime.subscribe,
      events: runtime.events
    })
  })

// the implementation: internal/circuitBreakerRuntime.ts
const errors: Errors = { CircuitBreakerError, CircuitOpen, CircuitHalfOpen, ErrorTypeId }

// ---------------------------------------------------------------------------
// layers
// ---------------------------------------------------------------------------

/**
 * Provides `CircuitBreaker` over the current `CircuitBreakerStore`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Input
): Layer.Layer<CircuitBreaker, Options_.InvalidOptions | CircuitBreakerError, CircuitBreakerStore> =>
  Layer.effect(CircuitBreaker, make(options))

/**
 * Provides `CircuitBreaker` with its own in-memory store: the embedded default.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (
  options?: Input
): Layer.Layer<CircuitBreaker, Options_.InvalidOptions | CircuitBreakerError> =>
  layer(options).pipe(Layer.provide(layerStoreMemory()))

/**
 * Provides `CircuitBreaker` with options read from `Config` under `path`
 * (environment variables such as `breaker_failureRateThreshold=0.3` with the
 * default provider), every option defaulted. `extra` adds what config cannot
 * hold: a `Schedule` open duration, predicates, a snapshot.
 *
 * **Example** (Reading options from the environment)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { ConfigProvider, Effect, Layer } from "effect"
 *
 * const env = ConfigProvider.fromEnv({ env: { payments_consecutiveFailures: "3", payments_openDuration: "10 seconds" } })
 * const program = Effect.map(CircuitBreaker.CircuitBreaker, (breaker) => breaker.options.consecutiveFailures).pipe(
 *   Effect.provide(
 *     CircuitBreaker.layerConfig("payments").pipe(
 *       Layer.provide(CircuitBreaker.layerStoreMemory()),
 *       Layer.provide(ConfigProvider.layer(env))
 *     )
 *   )
 * )
 *
 * await Effect.runPromise(program)
 * // => 3
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  path: string,
  extra?: Omit<Input, keyof Options>
): Layer.Layer<
  CircuitBreaker,
  Options_.InvalidOptions | CircuitBreakerError | Config.ConfigError,
  CircuitBreakerStore
> =>
  Layer.effect(
    CircuitBreaker,
    Effect.flatMap(Options_.fromConfig("CircuitBreaker", Options, path), (options: Options) =>
      make({ name: path, ...options, ...extra })
    )
  )

// ---------------------------------------------------------------------------
// combinators
// ---------------------------------------------------------------------------

/**
 * Runs an effect through a breaker's circuit: rejected at once with
 * `CircuitBreakerError` while the circuit is open, otherwise run and its
 * outcome recorded. Adds only `CircuitBreakerError` to the error channel.
 *
 * **Example** (Keyed and classified)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * interface Response { readonly status: number }
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
 *   // a 503 response counts as a failure and opens the host's circuit
 *   yield* Effect.succeed<Response>({ status: 503 }).pipe(
 *     CircuitBreaker.protect(breaker, { key: "api.example.com", isFailureResult: (r: Response) => r.status >= 500 })
 *   )
 *   const state = yield* breaker.state("api.example.com")
 *   return state._tag
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => "Open"
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const protect: {
  /**
   * Runs an effect through a breaker's circuit (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  <A = unknown, E = unknown>(
    breaker: CircuitBreaker,
    options?: ProtectOptions<A, E> | undefined
  ): <A2 extends A, E2 extends E, R>(self: Effect.Effect<A2, E2, R>) => Effect.Effect<A2, E2 | CircuitBreakerError, R>
  /**
   * Runs an effect through a breaker's circuit (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker,
    options?: ProtectOptions<A, E> | undefined
  ): Effect.Effect<A, E | CircuitBreakerError, R>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker,
    options?: ProtectOptions<A, E> | undefined
  ): Effect.Effect<A, E | CircuitBreakerError, R> => breaker.protect(self, options)
)

/**
 * The Defaults table of the options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)
