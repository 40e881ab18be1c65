/**
 * Retry policies: how long to wait between attempts (backoff with the AWS
 * jitter modes, or any `Schedule`), how many attempts and how much time to
 * spend, kept apart from *what* to retry (predicates on the typed error and
 * on the success value).
 *
 * `Retry.retry(policy)` is a combinator: the success path costs one frame, and
 * the retry loop only starts once an attempt fails.
 *
 * **Details**
 *
 * - Backoff: `exponential`, `linear`, `constant`, `fibonacci`, each with
 *   `jitter` `"none" | "full" | "equal" | "decorrelated"` exactly as the AWS
 *   Architecture Blog post "Exponential Backoff And Jitter" defines them, a
 *   `cap`, `maxAttempts` (first attempt included) and `maxElapsed`;
 *   `fromSchedule` accepts any `Schedule` as-is.
 * - What to retry: `while` on the typed error, `whileResult` on the success
 *   value (retry a 503 response). A cause holding an interruption is never
 *   retried (even beside failures); defects only with `retryDefects: true`.
 * - Hints: an error carrying a `retryAfter` duration (a `CircuitOpen`, a
 *   rate limiter's rejection, an HTTP `Retry-After`) delays the next attempt at
 *   least that long, bounded by `maxRetryAfter`; a wait, or a hint before
 *   that bound, that would end past `maxElapsed` (or the enclosing
 *   `Timeout.deadline`) stops retrying at once.
 * - Attempt context: inside the retried effect, `Retry.Attempt` holds the
 *   attempt number, the time elapsed (from the first failure on the
 *   one-frame path: see `AttemptInfo`) and the last error. With
 *   `attemptSpans: "retries"`, the default, every attempt after the first is
 *   a `Retry.attempt` child span with its number and outcome, and a call whose
 *   first attempt succeeds makes no span; `"all"` spans the first attempt too.
 * - Budget: `budget` limits retries per key to a ratio of recent requests
 *   plus a floor per second (Finagle, Envoy, Google SRE); past it, the call
 *   fails at once with `RetryError` (`RetryBudgetExhausted`).
 *
 * **Example** (Retrying a flaky call with decorrelated jitter)
 *
 * ```ts import.meta.vitest
 * import { Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * let calls = 0
 * const flaky = Effect.suspend(() => (++calls < 3 ? Effect.fail("unavailable") : Effect.succeed(calls)))
 *
 * const program = flaky.pipe(
 *   Retry.retry(Retry.exponential({ base: 0, cap: 0, jitter: "decorrelated", maxAttempts: 4 }))
 * )
 * await Effect.runPromise(program)
 * // => 3
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
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import type * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as backoff from "./internal/backoff.ts"
import { Deadline } from "./internal/deadline.ts"
import { dualBy } from "./internal/dual.ts"
import * as Hub from "./internal/events.ts"
import * as Frame from "./internal/frame.ts"
import * as Metrics from "./internal/metrics.ts"
import * as budgetLogic from "./internal/retryBudget.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of retry policies.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Retry"

/**
 * Type-level identifier of retry policies.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Retry"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * A retry policy's options: one schema for the type, the rules, `layerConfig`
 * and the Defaults table.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the policy: the `resilience.name` metric attribute.",
      default: "default"
    })
  ),
  kind: Schema.optionalKey(
    Schema.Literals(["exponential", "linear", "constant", "fibonacci"]).annotate({
      description: "Backoff shape.",
      default: "exponential"
    })
  ),
  base: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Delay before the first retry (before jitter).",
      default: Duration.millis(100)
    })
  ),
  cap: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Longest delay between attempts (before hints).",
      default: Duration.seconds(30)
    })
  ),
  factor: Schema.optionalKey(
    Schema.Number.check(Schema.isGreaterThanOrEqualTo(1)).annotate({
      description: "Exponential multiplier.",
      default: 2
    })
  ),
  jitter: Schema.optionalKey(
    Schema.Literals(["none", "full", "equal", "decorrelated"]).annotate({
      description: "Jitter mode, as the AWS Architecture Blog defines them.",
      default: "full"
    })
  ),
  maxAttempts: Schema.optionalKey(
    PositiveInt.annotate({ description: "Attempts at most, the first included.", default: 3 })
  ),
  maxElapsed: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Stop retrying once this much time has passed since the first attempt (off when unset)."
    })
  ),
  maxRetryAfter: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Longest wait a `retryAfter` hint can impose.",
      default: Duration.minutes(1)
    })
  ),
  attemptSpans: Schema.optionalKey(
    Schema.Literals(["all", "retries", "none"]).annotate({
      description: "Child spans per attempt: every attempt, the attempts after the first, or none.",
      default: "retries"
    })
  ),
  budgetRatio: Schema.optionalKey(
    NonNegative.annotate({
      description: "Retry budget: retries allowed per request in the window (budget off when unset)."
    })
  ),
  budgetMinRetriesPerSecond: Schema.optionalKey(
    NonNegative.annotate({ description: "Retry budget: retries always allowed per second.", default: 10 })
  ),
  budgetWindow: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Retry budget: the window requests and retries are counted over.",
      default: Duration.seconds(10)
    })
  ),
  budgetMaxKeys: Schema.optionalKey(
    PositiveInt.annotate({ description: "Retry budget: keys tracked at most (least recent dropped).", default: 10_000 })
  )
})

/**
 * The decoded options.
 *
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

const durationFields = ["base", "cap", "maxElapsed", "maxRetryAfter", "budgetWindow"] as const

/**
 * Options as the constructors take them: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export type Input = {
  readonly [K in keyof Options]?: K extends (typeof durationFields)[number]
    ? Duration.Input | undefined
    : Options[K] | undefined
}

const rules: ReadonlyArray<Options_.Rule> = [
  (o) => {
    const base = Duration.isDuration(o.base) ? Duration.toMillis(o.base) : 100
    const cap = Duration.isDuration(o.cap) ? Duration.toMillis(o.cap) : 30_000
    return cap < base ? [{ path: "cap", message: `Expected at least base (${base} ms)` }] : []
  },
  (o) =>
    Duration.isDuration(o.budgetWindow) && Duration.toMillis(o.budgetWindow) <= 0
      ? [{ path: "budgetWindow", message: "Expected a duration greater than zero" }]
      : []
]

const schemaFields = new Set(Object.keys(Options.fields))

/**
 * Validates policy options: succeeds with them decoded, or fails listing
 * every bad field.
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input): Effect.Effect<Options, Options_.InvalidOptions> => {
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) if (schemaFields.has(key) && value !== undefined) plain[key] = value
  const { issues, normalized } = Options_.normalizeDurations(plain, durationFields)
  return Options_.validate("Retry", Options, normalized, rules, issues)
}

/**
 * The Defaults table of the options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * What the retried effect can read about the attempt it is: the attempt
 * number (1 for the first), the time elapsed and the error that made the
 * previous attempt fail.
 *
 * `elapsed` is exact, the time since the first attempt **started**, when the
 * policy has a `maxElapsed`, a budget or `attemptSpans: "all"` (or the call
 * passes `whileResult`). Otherwise the call takes the one-frame success path,
 * which reads no clock (a clock read would cost about a quarter of that
 * path), and `elapsed` counts from the first attempt's **failure**, its end:
 * with a first attempt of 500 ms and 1 s waits, attempts 2 and 3 read 1000 ms
 * and 2500 ms, where the exact values are 1500 ms and 3000 ms.
 *
 * The first attempt reads the default (attempt 1, `elapsed` 0, no
 * `lastError`), or the enclosing retry's attempt when nested.
 *
 * @category models
 * @since 0.1.0
 */
export interface AttemptInfo {
  readonly attempt: number
  readonly elapsed: Duration.Duration
  readonly lastError: unknown
}

/**
 * The current attempt, readable inside a retried effect (`yield* Retry.Attempt`).
 * Outside a retry, or on the first attempt, it is attempt 1.
 *
 * Its `elapsed` is the time since the first attempt started when the policy
 * has a `maxElapsed`, a budget or `attemptSpans: "all"` (or the call passes
 * `whileResult`); otherwise, on the one-frame success path that reads no
 * clock, it is the time since the first attempt failed (see `AttemptInfo`).
 *
 * **Example** (Reading the attempt number)
 *
 * ```ts import.meta.vitest
 * import { Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.flatMap(Retry.Attempt, (info) =>
 *   info.attempt < 3 ? Effect.fail(`attempt ${info.attempt}`) : Effect.succeed(`succeeded on attempt ${info.attempt}`)
 * ).pipe(Retry.retry(Retry.constant({ delay: 0, maxAttempts: 5 })))
 *
 * await Effect.runPromise(program)
 * // => "succeeded on attempt 3"
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export const Attempt: Context.Reference<AttemptInfo> = Context.Reference<AttemptInfo>(
  "@effect-resilience/core/Retry/Attempt",
  { defaultValue: () => ({ attempt: 1, elapsed: Duration.zero, lastError: undefined }) }
)

/**
 * The events a policy emits.
 *
 * @category models
 * @since 0.1.0
 */
export type Event =
  | {
      readonly _tag: "RetryScheduled"
      readonly policy: string
      /** The attempt about to be made (2 for the first retry). */
      readonly attempt: number
      readonly delay: Duration.Duration
      readonly error: unknown
    }
  | {
      readonly _tag: "RetriesExhausted"
      readonly policy: string
      readonly attempts: number
      readonly reason: "max_attempts" | "max_elapsed" | "budget"
      readonly error: unknown
    }

/**
 * Totals of a policy since it was made.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  readonly successes: number
  readonly failures: number
  readonly retries: number
  readonly exhausted: number
  readonly budgetExhausted: number
}

/**
 * A retry policy: how to wait and when to stop, with its own metrics and
 * events. Build one with `exponential`, `linear`, `constant`, `fibonacci`,
 * `fromSchedule` or `make`; apply it with `retry`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Policy {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: Options
  /** The backoff, or `undefined` for a policy built from a `Schedule`. */
  readonly backoff: backoff.Config | undefined
  readonly schedule: Schedule.Schedule<unknown, unknown> | undefined
  readonly maxAttempts: number
  readonly maxElapsedMillis: number
  readonly maxRetryAfterMillis: number
  readonly attemptSpans: "all" | "retries" | "none"
  /** Options that failed validation: applying the policy dies with this error. */
  readonly invalid: Options_.InvalidOptions | undefined
  readonly stats: Effect.Effect<Stats>
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<Event>
}

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/**
 * The retry budget of `key` is spent: the call fails without retrying.
 *
 * @category errors
 * @since 0.1.0
 */
export class RetryBudgetExhausted extends Schema.TaggedError<RetryBudgetExhausted>(
  "@effect-resilience/core/Retry/RetryBudgetExhausted"
)("RetryBudgetExhausted", {
  policy: Schema.String,
  key: Schema.String,
  /** The failure of the last attempt. */
  lastError: Schema.Unknown
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Retry budget exhausted"
  }
}

/**
 * Runtime identifier of `RetryError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/Retry/RetryError"

/**
 * Type-level identifier of `RetryError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/Retry/RetryError"

/**
 * The one error `retry` adds: retrying was refused by the budget.
 *
 * @category errors
 * @since 0.1.0
 */
export class RetryError extends Schema.TaggedError<RetryError>(ErrorTypeId)("RetryError", {
  reason: RetryBudgetExhausted
}) {
  /**
   * Brand for the `isRetryError` guard.
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
 * Whether a value is a `RetryError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRetryError = (u: unknown): u is RetryError => typeof u === "object" && u !== null && ErrorTypeId in u

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

interface Counters {
  successes: number
  failures: number
  retries: number
  exhaustedMaxAttempts: number
  exhaustedMaxElapsed: number
  exhaustedBudget: number
  readonly delay: Metrics.Histogram
}

const makePolicy = (input: Input, schedule: Schedule.Schedule<unknown, unknown> | undefined): Policy => {
  const validated = Effect.runSyncExit(validateOptions(input))
  const options: Options = Exit.isSuccess(validated) ? validated.value : {}
  const invalid = Exit.isFailure(validated) ? Cause.findErrorOption(validated.cause) : undefined
  const name = options.name ?? "default"
  const counters: Counters = {
    successes: 0,
    failures: 0,
    retries: 0,
    exhaustedMaxAttempts: 0,
    exhaustedMaxElapsed: 0,
    exhaustedBudget: 0,
    delay: Metrics.makeHistogram()
  }
  const hub = Hub.make<Event>()
  const budgetRatio = options.budgetRatio
  const policy: Policy = {
    [TypeId]: TypeId,
    name,
    options,
    backoff:
      schedule === undefined
        ? {
            kind: options.kind ?? "exponential",
            baseMillis: Duration.toMillis(options.base ?? Duration.millis(100)),
            capMillis: Duration.toMillis(options.cap ?? Duration.seconds(30)),
            factor: options.factor ?? 2,
            jitter: options.jitter ?? "full"
          }
        : undefined,
    schedule,
    maxAttempts: options.maxAttempts ?? 3,
    maxElapsedMillis:
      options.maxElapsed === undefined ? Number.POSITIVE_INFINITY : Duration.toMillis(options.maxElapsed),
    maxRetryAfterMillis: Duration.toMillis(options.maxRetryAfter ?? Duration.minutes(1)),
    attemptSpans: options.attemptSpans ?? "retries",
    invalid: invalid !== undefined && invalid._tag === "Some" ? invalid.value : undefined,
    stats: Effect.sync(() => ({
      successes: counters.successes,
      failures: counters.failures,
      retries: counters.retries,
      exhausted: counters.exhaustedMaxAttempts + counters.exhaustedMaxElapsed + counters.exhaustedBudget,
      budgetExhausted: counters.exhaustedBudget
    })),
    subscribe: hub.subscribe,
    events: hub.events
  }
  internals.set(policy, {
    fast:
      budgetRatio === undefined && (options.attemptSpans ?? "retries") !== "all" && options.maxElapsed === undefined,
    counters,
    hub,
    registered: new WeakSet(),
    budget:
      budgetRatio === undefined
        ? undefined
        : {
            config: {
              ratio: budgetRatio,
              minRetriesPerSecond: options.budgetMinRetriesPerSecond ?? 10,
              windowMillis: Duration.toMillis(options.budgetWindow ?? Duration.seconds(10)),
              buckets: 10
            },
            maxKeys: options.budgetMaxKeys ?? 10_000,
            states: new Map()
          }
  })
  // series in the default registry from the start, so a policy that never
  // fails still exports its successes; another registry (a test's) gets them
  // on the policy's first failure there
  const created = internals.get(policy)
  if (created !== undefined && policy.invalid === undefined) registerIn(policy, created, Context.empty())
  return policy
}

interface Internal {
  /** No budget, no `maxElapsed`, no span on the first attempt: the one-frame success path applies. */
  readonly fast: boolean
  readonly counters: Counters
  readonly hub: Hub.Hub<Event>
  /** Metric registries the policy's series are registered in. */
  readonly registered: WeakSet<object>
  readonly budget:
    | {
        readonly config: budgetLogic.Config
        readonly maxKeys: number
        readonly states: Map<string, budgetLogic.State>
      }
    | undefined
}

// A policy's state lives under a module-private symbol: a property read on the
// hot path, where a WeakMap lookup would cost a hash.
const internalKey: unique symbol = Symbol.for("@effect-resilience/core/Retry/internal")
interface PolicyImpl extends Policy {
  readonly [internalKey]: Internal
}
const isImpl = (policy: Policy): policy is PolicyImpl => internalKey in policy
const internalOf = (policy: Policy): Internal | undefined => (isImpl(policy) ? policy[internalKey] : undefined)
const internals = {
  set: (policy: Policy, internal: Internal): void => {
    Object.defineProperty(policy, internalKey, { value: internal, enumerable: false })
  },
  get: internalOf
}

/**
 * A policy from options (`kind` picks the backoff shape).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Input = {}): Policy => makePolicy(options, undefined)

/**
 * Exponential backoff: `base * factor^(retry - 1)`, capped, jittered.
 *
 * @category constructors
 * @since 0.1.0
 */
export const exponential = (options: Omit<Input, "kind"> = {}): Policy =>
  makePolicy({ ...options, kind: "exponential" }, undefined)

/**
 * Linear backoff: `base * retry`, capped, jittered.
 *
 * @category constructors
 * @since 0.1.0
 */
export const linear = (options: Omit<Input, "kind"> = {}): Policy =>
  makePolicy({ ...options, kind: "linear" }, undefined)

/**
 * Fibonacci backoff: `base * fib(retry)`, capped, jittered.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fibonacci = (options: Omit<Input, "kind"> = {}): Policy =>
  makePolicy({ ...options, kind: "fibonacci" }, undefined)

/**
 * The same delay before every retry (no jitter unless asked).
 *
 * @category constructors
 * @since 0.1.0
 */
export const constant = (
  options: Omit<Input, "kind" | "base" | "cap"> & { readonly delay: Duration.Input }
): Policy => {
  const { delay, ...rest } = options
  return makePolicy({ jitter: "none", ...rest, kind: "constant", base: delay, cap: delay }, undefined)
}

/**
 * A policy whose delays come from any `Schedule`, as-is (its input is the
 * attempt's error). `maxAttempts`, `maxElapsed`, hints and budget still apply.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromSchedule = (
  schedule: Schedule.Schedule<unknown, unknown>,
  options: Omit<Input, "kind" | "base" | "cap" | "factor" | "jitter"> = {}
): Policy => makePolicy({ maxAttempts: Number.MAX_SAFE_INTEGER, ...options }, schedule)

// ---------------------------------------------------------------------------
// retry
// ---------------------------------------------------------------------------

/**
 * What to retry, per call.
 *
 * @category models
 * @since 0.1.0
 */
export interface RetryOptions<A, E> {
  /** Retry this typed error (default: every typed error). */
  readonly while?: ((error: E) => boolean) | undefined
  /** Retry this success value (a 503 response, say); when retries run out it is returned. */
  readonly whileResult?: ((value: A) => boolean) | undefined
  /** Retry defects too (default: never). */
  readonly retryDefects?: boolean | undefined
  /** The hint of an error (default: its `retryAfter`, or its `reason.retryAfter`, when a Duration). */
  readonly retryAfter?: ((error: E) => Duration.Input | undefined) | undefined
  /** The retry budget's key (default: the policy's name). */
  readonly key?: string | undefined
}

const defaultHint = (error: unknown): Duration.Duration | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  if ("retryAfter" in error && Duration.isDuration(error.retryAfter)) return error.retryAfter
  if ("reason" in error && typeof error.reason === "object" && error.reason !== null) {
    const reason = error.reason
    if ("retryAfter" in reason && Duration.isDuration(reason.retryAfter)) return reason.retryAfter
  }
  return undefined
}

const registerMetrics = (policy: Policy, internal: Internal, fiber: Fiber.Fiber<unknown, unknown>) =>
  registerIn(policy, internal, fiber.context)

const registerIn = (policy: Policy, internal: Internal, context: Context.Context<never>) => {
  const registry = Context.get(context, Metric.MetricRegistry)
  if (internal.registered.has(registry)) return
  internal.registered.add(registry)
  const registrar = Metrics.registrar(context)
  const spec = Telemetry.retry
  const base = { [Telemetry.attributes.name]: policy.name }
  const c = internal.counters
  registrar.counter(spec.attempts, { ...base, [Telemetry.attributes.outcome]: "success" }, () => c.successes)
  registrar.counter(spec.attempts, { ...base, [Telemetry.attributes.outcome]: "failure" }, () => c.failures)
  registrar.counter(spec.retries, base, () => c.retries)
  registrar.counter(
    spec.exhausted,
    { ...base, [Telemetry.attributes.reason]: "max_attempts" },
    () => c.exhaustedMaxAttempts
  )
  registrar.counter(
    spec.exhausted,
    { ...base, [Telemetry.attributes.reason]: "max_elapsed" },
    () => c.exhaustedMaxElapsed
  )
  registrar.counter(spec.exhausted, { ...base, [Telemetry.attributes.reason]: "budget" }, () => c.exhaustedBudget)
  registrar.histogram(spec.delay, base, () => c.delay)
}

const budgetState = (internal: Internal, key: string, now: number): budgetLogic.State | undefined => {
  const budget = internal.budget
  if (budget === undefined) return undefined
  let state = budget.states.get(key)
  if (state === undefined) {
    if (budget.states.size >= budget.maxKeys) {
      for (const [k, s] of budget.states) {
        if (budgetLogic.isIdle(s, now, budget.config) || budget.states.size >= budget.maxKeys) budget.states.delete(k)
        if (budget.states.size < budget.maxKeys) break
      }
    }
    state = budgetLogic.make(budget.config)
    budget.states.set(key, state)
  }
  return state
}

const emit = (internal: Internal, event: Event) => {
  internal.hub.emit(event)
}

const outcomeAttribute = Telemetry.attributes.outcome

/**
 * Retries an effect under a policy. The success path costs one frame; the
 * loop starts only once an attempt fails with a retryable error. Adds
 * `RetryError` (budget exhaustion) to the error channel; when retrying stops
 * for any other reason the last attempt's failure (or retried success value)
 * is returned as it was.
 *
 * **Example** (Retrying a 503 response value)
 *
 * ```ts import.meta.vitest
 * import { Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const statuses = [503, 503, 200]
 * const request = Effect.sync(() => ({ status: statuses.shift() ?? 200 }))
 * const program = request.pipe(
 *   Retry.retry(Retry.constant({ delay: 0, maxAttempts: 5 }), { whileResult: (r: { status: number }) => r.status === 503 })
 * )
 * await Effect.runPromise(Effect.map(program, (r) => r.status))
 * // => 200
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const retry: {
  /**
   * Retries an effect under a policy (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  <A = unknown, E = unknown>(
    policy: Policy,
    options?: RetryOptions<A, E> | undefined
  ): <A2 extends A, E2 extends E, R>(self: Effect.Effect<A2, E2, R>) => Effect.Effect<A2, E2 | RetryError, R>
  /**
   * Retries an effect under a policy (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    policy: Policy,
    options?: RetryOptions<A, E> | undefined
  ): Effect.Effect<A, E | RetryError, R>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    policy: Policy,
    options?: RetryOptions<A, E> | undefined
  ): Effect.Effect<A, E | RetryError, R> => {
    const internal = internalOf(policy)
    if (policy.invalid !== undefined || internal === undefined) {
      return Effect.die(policy.invalid ?? new Error("Retry.retry: not a policy made by this module"))
    }
    if (internal.fast && (options === undefined || options.whileResult === undefined)) {
      // the success path: one continuation frame on the fiber (internal/frame.ts);
      // the loop (and the clock, the registry, the random source) only on failure
      return Effect.withFiber<A, E | RetryError, R>((fiber) =>
        Frame.within(fiber, self, new FirstAttempt(self, policy, internal, options))
      )
    }
    return Effect.withFiber((fiber) => {
      if (!internal.registered.has(fiber.getRef(Metric.MetricRegistry))) registerMetrics(policy, internal, fiber)
      const clock = fiber.getRef(Clock.Clock)
      const startedAt = clock.currentTimeMillisUnsafe()
      let attempts = self
      if (internal.budget !== undefined) {
        const key = options?.key ?? policy.name
        const state = budgetState(internal, key, startedAt)
        if (state !== undefined) budgetLogic.recordRequest(state, startedAt, internal.budget.config)
        // the request is recorded: a hedge (or `recordRequest`) inside the attempts must not record it again
        attempts = Effect.provideService(self, RequestRecorded, {
          internal,
          key,
          outer: fiber.getRef(RequestRecorded)
        })
      }
      return loop(
        attempts,
        policy,
        internal,
        options,
        fiber,
        1,
        startedAt,
        undefined,
        policy.backoff?.baseMillis ?? 0,
        undefined
      )
    })
  }
)

/** The continuation of a fast-path first attempt: count a success, or start retrying. */
class FirstAttempt<A, E, R> extends Frame.Frame<A, E, RetryError, R> {
  readonly self: Effect.Effect<A, E, R>
  readonly policy: Policy
  readonly internal: Internal
  readonly options: RetryOptions<A, E> | undefined
  constructor(
    self: Effect.Effect<A, E, R>,
    policy: Policy,
    internal: Internal,
    options: RetryOptions<A, E> | undefined
  ) {
    super()
    this.self = self
    this.policy = policy
    this.internal = internal
    this.options = options
  }
  onSuccess(value: A, _fiber: Fiber.Fiber<unknown, unknown>, exit: Exit.Exit<A, E> | undefined): Exit.Exit<A, E> {
    this.internal.counters.successes++
    return Frame.succeeded(value, exit)
  }
  onFailure(cause: Cause.Cause<E>, fiber: Fiber.Fiber<unknown, unknown>): Effect.Effect<A, E | RetryError, R> {
    const { internal, policy } = this
    if (!internal.registered.has(fiber.getRef(Metric.MetricRegistry))) registerMetrics(policy, internal, fiber)
    return retrying(this.self, policy, internal, this.options, fiber, cause, Number.NaN)
  }
}

type Step<A, E> =
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<A, E> }
  | {
      readonly _tag: "Retry"
      /** What made the attempt retryable: its typed error, its defect, or its retried success value. */
      readonly error: unknown
      /** The typed error, when there is one (hints are read from it). */
      readonly typed: { readonly error: E } | undefined
      readonly exit: Exit.Exit<A, E>
    }

/** Classifies an attempt's exit: done (return it) or retry (with the error that caused it). */
const classify = <A, E>(exit: Exit.Exit<A, E>, options: RetryOptions<A, E> | undefined): Step<A, E> => {
  if (exit._tag === "Success") {
    return options?.whileResult?.(exit.value) === true
      ? { _tag: "Retry", error: exit.value, typed: undefined, exit }
      : { _tag: "Done", exit }
  }
  let fail: { readonly error: E } | undefined
  let die = false
  let interrupted = false
  for (const reason of exit.cause.reasons) {
    if (reason._tag === "Fail") fail ??= { error: reason.error }
    else if (reason._tag === "Die") die = true
    else interrupted = true
  }
  // an interruption anywhere in the cause (alone, or beside failures of a
  // parallel attempt) means someone wants the work to stop: never retry it
  if (interrupted) return { _tag: "Done", exit }
  if (die) {
    return options?.retryDefects === true
      ? { _tag: "Retry", error: Cause.squash(exit.cause), typed: undefined, exit }
      : { _tag: "Done", exit }
  }
  if (fail === undefined) return { _tag: "Done", exit }
  if (options?.while !== undefined && !options.while(fail.error)) return { _tag: "Done", exit }
  return { _tag: "Retry", error: fail.error, typed: fail, exit }
}

/** Entered when the first attempt of the simple path failed. */
const retrying = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  policy: Policy,
  internal: Internal,
  options: RetryOptions<A, E> | undefined,
  fiber: Fiber.Fiber<unknown, unknown>,
  cause: Cause.Cause<E>,
  _startedAt: number
): Effect.Effect<A, E | RetryError, R> => {
  const exit = Exit.failCause(cause)
  const step = classify(exit, options)
  if (step._tag === "Done") {
    internal.counters.failures++
    return exit
  }
  // the first attempt's start is not known on the simple path (maxElapsed is unset there)
  const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
  internal.counters.failures++
  return next(self, policy, internal, options, fiber, 1, now, step, policy.backoff?.baseMillis ?? 0, undefined)
}

type StepFn = (now: number, input: unknown) => Effect.Effect<[unknown, Duration.Duration], unknown>

/** Runs attempt `attempt` (1-based) and continues. */
const loop = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  policy: Policy,
  internal: Internal,
  options: RetryOptions<A, E> | undefined,
  fiber: Fiber.Fiber<unknown, unknown>,
  attempt: number,
  startedAt: number,
  lastError: unknown,
  previousDelay: number,
  scheduleStep: StepFn | undefined
): Effect.Effect<A, E | RetryError, R> =>
  Effect.suspend(() => {
    const clock = fiber.getRef(Clock.Clock)
    const run = attemptEffect(
      self,
      policy,
      attempt,
      attempt === 1 ? 0 : clock.currentTimeMillisUnsafe() - startedAt,
      lastError
    )
    return Effect.flatMap(Effect.exit(run), (exit) => {
      const step = classify(exit, options)
      if (exit._tag === "Success" && step._tag === "Done") {
        internal.counters.successes++
        return exit
      }
      internal.counters.failures++
      if (step._tag === "Done") return exit
      return next(self, policy, internal, options, fiber, attempt, startedAt, step, previousDelay, scheduleStep)
    })
  })

/** After attempt `attempt` failed with a retryable `error`: wait and retry, or stop. */
const next = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  policy: Policy,
  internal: Internal,
  options: RetryOptions<A, E> | undefined,
  fiber: Fiber.Fiber<unknown, unknown>,
  attempt: number,
  startedAt: number,
  step: Extract<Step<A, E>, { readonly _tag: "Retry" }>,
  previousDelay: number,
  scheduleStep: StepFn | undefined
): Effect.Effect<A, E | RetryError, R> => {
  const { error, exit, typed } = step
  const counters = internal.counters
  const clock = fiber.getRef(Clock.Clock)
  const now = clock.currentTimeMillisUnsafe()
  const stop = (reason: "max_attempts" | "max_elapsed"): Effect.Effect<A, E> => {
    if (reason === "max_attempts") counters.exhaustedMaxAttempts++
    else counters.exhaustedMaxElapsed++
    emit(internal, { _tag: "RetriesExhausted", policy: policy.name, attempts: attempt, reason, error })
    return exit
  }
  if (attempt >= policy.maxAttempts) return stop("max_attempts")
  const deadline = Math.min(startedAt + policy.maxElapsedMillis, fiber.getRef(Deadline))
  const withDelay = (delayMillis: number, nextStep: StepFn | undefined): Effect.Effect<A, E | RetryError, R> => {
    let delay = delayMillis
    const hint =
      typed === undefined
        ? undefined
        : options?.retryAfter !== undefined
          ? toMillis(options.retryAfter(typed.error))
          : toMillis(defaultHint(typed.error))
    if (hint !== undefined) {
      // the uncapped hint: a retry before it would be refused again, so a hint
      // ending past the deadline ends the retries even when maxRetryAfter is shorter
      if (now + hint > deadline) return stop("max_elapsed")
      delay = Math.max(delay, Math.min(hint, policy.maxRetryAfterMillis))
    }
    if (now + delay > deadline) return stop("max_elapsed")
    if (internal.budget !== undefined) {
      const state = budgetState(internal, options?.key ?? policy.name, now)
      if (state !== undefined && !budgetLogic.tryRetry(state, now, internal.budget.config)) {
        counters.exhaustedBudget++
        const key = options?.key ?? policy.name
        emit(internal, { _tag: "RetriesExhausted", policy: policy.name, attempts: attempt, reason: "budget", error })
        return Effect.fail(
          new RetryError({ reason: new RetryBudgetExhausted({ policy: policy.name, key, lastError: error }) })
        )
      }
    }
    counters.retries++
    Metrics.observe(counters.delay, delay / 1000)
    if (internal.hub.listening()) {
      emit(internal, {
        _tag: "RetryScheduled",
        policy: policy.name,
        attempt: attempt + 1,
        delay: Duration.millis(delay),
        error
      })
    }
    const again = loop(self, policy, internal, options, fiber, attempt + 1, startedAt, error, delay, nextStep)
    return delay > 0 ? Effect.andThen(Effect.sleep(Duration.millis(delay)), again) : again
  }
  if (policy.schedule !== undefined) {
    const schedule = policy.schedule
    return Effect.flatMap(
      scheduleStep === undefined
        ? Effect.map(Schedule.toStep(schedule), (step): StepFn => step)
        : Effect.succeed(scheduleStep),
      (stepFn) =>
        Effect.matchEffect(stepFn(now, error), {
          onFailure: () => stop("max_attempts"),
          onSuccess: ([, delay]) => withDelay(Duration.toMillis(delay), stepFn)
        })
    )
  }
  const config = policy.backoff
  const delay =
    config === undefined
      ? 0
      : backoff.delay(config, attempt, previousDelay, fiber.getRef(Random.Random).nextDoubleUnsafe())
  return withDelay(delay, undefined)
}

const toMillis = (input: Duration.Input | undefined): number | undefined => {
  if (input === undefined) return undefined
  const millis = Duration.toMillis(Duration.fromInputUnsafe(input))
  return Number.isFinite(millis) && millis >= 0 ? millis : undefined
}

/** One attempt: the attempt context provided after the first, a child span when asked. */
const attemptEffect = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  policy: Policy,
  attempt: number,
  elapsedMillis: number,
  lastError: unknown
): Effect.Effect<A, E, R> => {
  const withContext =
    attempt === 1
      ? self
      : Effect.provideService(self, Attempt, { attempt, elapsed: Duration.millis(elapsedMillis), lastError })
  if (policy.attemptSpans === "none" || (policy.attemptSpans === "retries" && attempt === 1)) return withContext
  return withContext.pipe(
    Effect.onExit((exit) => Effect.annotateCurrentSpan(outcomeAttribute, Exit.isSuccess(exit) ? "success" : "failure")),
    Effect.withSpan("Retry.attempt", {
      attributes: { [Telemetry.attributes.name]: policy.name, "resilience.retry.attempt": attempt }
    })
  )
}

/**
 * Spends one retry from a policy's budget for `key` (default: the policy's
 * name), as a retry would: `true` when the budget allowed it. Always `true`
 * for a policy without a budget. Hedged requests use it, so hedges and
 * retries share one budget.
 *
 * @category budget
 * @since 0.1.0
 */
export const tryWithdraw = (policy: Policy, key?: string | undefined): Effect.Effect<boolean> =>
  Clock.clockWith((clock) => {
    const internal = internalOf(policy)
    if (internal?.budget === undefined) return Effect.succeed(true)
    const now = clock.currentTimeMillisUnsafe()
    const state = budgetState(internal, key ?? policy.name, now)
    return Effect.succeed(state === undefined || budgetLogic.tryRetry(state, now, internal.budget.config))
  })

/**
 * Records one original request against a policy's budget for `key` (default:
 * the policy's name), as `retry` does for every call it runs (for custom
 * loops and hedging: `Hedge.hedge` calls it once per hedged call). Inside the
 * attempts of a `retry` under the same policy and key it records nothing:
 * that retry recorded the call's request already, and a second one would
 * double the retries the budget allows.
 *
 * @category budget
 * @since 0.1.0
 */
export const recordRequest = (policy: Policy, key?: string | undefined): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    const internal = internalOf(policy)
    if (internal?.budget === undefined) return Effect.void
    const k = key ?? policy.name
    for (let call = fiber.getRef(RequestRecorded); call !== undefined; call = call.outer) {
      if (call.internal === internal && call.key === k) return Effect.void
    }
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    const state = budgetState(internal, k, now)
    if (state !== undefined) budgetLogic.recordRequest(state, now, internal.budget.config)
    return Effect.void
  })

/** A budgeted `retry` the fiber runs inside, which recorded its request (innermost first). */
interface RecordedRequest {
  readonly internal: Internal
  readonly key: string
  readonly outer: RecordedRequest | undefined
}

/** The budgeted `retry` calls enclosing the current fiber: `recordRequest` skips their policy and key. */
const RequestRecorded = Context.Reference<RecordedRequest | undefined>(
  "@effect-resilience/core/Retry/RequestRecorded",
  { defaultValue: () => undefined }
)
