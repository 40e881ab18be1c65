/**
 * Rate limiting: how much each client may do, by any of the classic
 * algorithms, with several limits at once, weighted costs, and the numbers
 * the IETF `RateLimit` headers need.
 *
 * A limiter holds one or more limits (e.g. 10 per second AND 1,000 per hour).
 * A request of some cost from some key is allowed only when every limit
 * allows it, and then every limit is charged; when one refuses, nothing is
 * consumed.
 *
 * **Details**
 *
 * - Algorithms: `fixed-window`, `sliding-window` (the two-window counter
 *   estimate), `sliding-log` (exact), `token-bucket`, `leaky-bucket` (a meter),
 *   `gcra` (redis-cell's semantics) and `concurrency` (permits held while a
 *   call runs, released on exit or interruption). The decision logic is pure
 *   (`internal/rateLimiter.ts`), shared with the Redis scripts.
 * - Every decision carries `allowed`, `limit`, `remaining`, `reset`,
 *   `retryAfter` and the deciding `policy`.
 * - `allow` keys are never limited; `deny` keys are always refused.
 *   `penalize` and `reward` take or give back points for a key.
 * - Memory is bounded: at most `maxKeys` keys per limit; idle keys (whose
 *   state equals a fresh one) are swept by a background fiber tied to the
 *   limiter's scope, and dropped first when the cap is reached.
 * - Monitoring: decisions by result and policy as metrics, limit-hit events
 *   on a stream, and the heaviest clients from a bounded heavy-hitters sketch.
 *
 * - Modes: `reject` fails a refused request at once (`RateLimitExceeded`
 *   with `retryAfter`); `shape` makes it wait in a FIFO line per key until
 *   allowed, up to `maxWait`, with at most `maxQueue` waiting; an interrupted
 *   waiter leaves the line (and gets its cost back if it was already charged).
 *
 * **Gotchas**
 *
 * - In shape mode, a request arriving while others wait for the same key lines
 *   up behind them even if it could pass at once: order is kept.
 *
 * **Example** (Ten requests per second and a thousand per hour)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({
 *     limits: [
 *       { algorithm: "token-bucket", limit: 10, window: "1 second" },
 *       { algorithm: "fixed-window", limit: 1000, window: "1 hour" }
 *     ]
 *   })
 *   const decisions = yield* Effect.forEach(Array.from({ length: 12 }), () => limiter.consume("client-1"))
 *   return decisions.map((d) => d.allowed).filter(Boolean).length
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => 10
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
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as algorithms from "./internal/rateLimiter.ts"
import * as Memory from "./internal/rateLimiterMemory.ts"
import * as Spec from "./internal/rateLimiterOptions.ts"
import { type Errors, makeRuntime } from "./internal/rateLimiterRuntime.ts"
import * as Options_ from "./Options.ts"

/**
 * Runtime identifier of `RateLimiter` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/RateLimiter"

/**
 * Type-level identifier of `RateLimiter` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/RateLimiter"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const Positive = Schema.Number.check(Schema.isGreaterThan(0))

const common = {
  /** The policy's name (the `RateLimit-Policy` item); default `<algorithm>-<limit>-<window ms>`. */
  name: Schema.optionalKey(Schema.String)
}

/**
 * One limit. `limit` requests (cost units) per `window`; `burst` (token
 * bucket, GCRA) allows more at once, up to `burst` in total.
 *
 * @category options
 * @since 0.1.0
 */
export const Limit = Schema.Union([
  ...(["fixed-window", "sliding-window", "sliding-log"] as const).map((algorithm) =>
    Schema.Struct({
      ...common,
      algorithm: Schema.Literal(algorithm),
      limit: PositiveInt,
      window: Schema.DurationFromString
    })
  ),
  ...(["token-bucket", "gcra"] as const).map((algorithm) =>
    Schema.Struct({
      ...common,
      algorithm: Schema.Literal(algorithm),
      limit: PositiveInt,
      window: Schema.DurationFromString,
      burst: Schema.optionalKey(PositiveInt)
    })
  ),
  Schema.Struct({
    ...common,
    algorithm: Schema.Literal("leaky-bucket"),
    /** The bucket's size (the most cost held at once). */
    capacity: PositiveInt,
    /** Cost drained per second. */
    leakPerSecond: Positive
  }),
  Schema.Struct({
    ...common,
    algorithm: Schema.Literal("concurrency"),
    limit: PositiveInt
  })
])

/**
 * @category options
 * @since 0.1.0
 */
export type Limit = typeof Limit.Type

/**
 * A limit as the constructors take it: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export type LimitInput = Limit extends infer L
  ? L extends { readonly window: Duration.Duration }
    ? Omit<L, "window"> & { readonly window: Duration.Input }
    : L
  : never

/**
 * The limiter's options.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the limiter: the `resilience.name` metric attribute.",
      default: "default"
    })
  ),
  limits: Schema.NonEmptyArray(Limit).annotate({ description: "The limits; a request must pass all of them." }),
  maxKeys: Schema.optionalKey(
    PositiveInt.annotate({ description: "Keys held per limit at most; idle ones are dropped first.", default: 100_000 })
  ),
  allow: Schema.optionalKey(Schema.Array(Schema.String).annotate({ description: "Keys never limited.", default: [] })),
  deny: Schema.optionalKey(Schema.Array(Schema.String).annotate({ description: "Keys always refused.", default: [] })),
  topClients: Schema.optionalKey(
    PositiveInt.annotate({ description: "Capacity of the heavy-hitters sketch behind `topClients`.", default: 64 })
  ),
  mode: Schema.optionalKey(
    Schema.Literals(["reject", "shape"]).annotate({
      description:
        "`reject`: a refused request fails at once; `shape`: it waits in a FIFO queue per key until allowed (up to `maxWait`).",
      default: "reject"
    })
  ),
  maxWait: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Shape mode: the longest a request waits in line.",
      default: Duration.seconds(10)
    })
  ),
  maxQueue: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Shape mode: requests waiting per key at most; more are refused.",
      default: 100
    })
  ),
  alertRejectionRate: Schema.optionalKey(
    Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMinimum: true })).annotate({
      description:
        "Alert: emit `AlertTriggered` when rejections / decisions stay at or above this for `alertFor` (off when unset)."
    })
  ),
  alertFor: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Alert: how long the rejection rate must stay high.",
      default: Duration.minutes(1)
    })
  ),
  sweepInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How often the background fiber drops idle keys.",
      default: Duration.seconds(30)
    })
  ),
  onStoreError: Schema.optionalKey(
    Schema.Literals(["allow", "fail"]).annotate({
      description:
        "Over a remote store (Redis), when the store fails: `allow` lets the request through (counted in `stats.storeErrors`); `fail` refuses it (`limit` fails with `RateLimiterStoreError`).",
      default: "allow"
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` takes them.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly name?: string | undefined
  readonly limits: readonly [LimitInput, ...Array<LimitInput>]
  readonly maxKeys?: number | undefined
  readonly allow?: ReadonlyArray<string> | undefined
  readonly deny?: ReadonlyArray<string> | undefined
  readonly topClients?: number | undefined
  readonly mode?: "reject" | "shape" | undefined
  readonly maxWait?: Duration.Input | undefined
  readonly maxQueue?: number | undefined
  readonly alertRejectionRate?: number | undefined
  readonly alertFor?: Duration.Input | undefined
  readonly sweepInterval?: Duration.Input | undefined
  readonly onStoreError?: "allow" | "fail" | undefined
  /**
   * Quotas by client class: each tier has its own limits (and its own state).
   * `tierOf(key)` picks a key's tier; keys without one use `limits`.
   */
  readonly tiers?: Readonly<Record<string, readonly [LimitInput, ...Array<LimitInput>]>> | undefined
  readonly tierOf?: ((key: string) => string | undefined) | undefined
}

/**
 * Validates options: succeeds with them decoded, or fails listing every bad
 * field, those of every tier included (`tiers.<name>.limits.0.window`).
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input): Effect.Effect<Options, Options_.InvalidOptions> =>
  Effect.map(Spec.validateAll(Options, input), ({ options }) => options)

/**
 * The Defaults table of the limiter's options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * One limit's part of a decision.
 *
 * @category models
 * @since 0.1.0
 */
export interface PolicyDecision {
  readonly policy: string
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  readonly reset: Duration.Duration
  readonly retryAfter: Duration.Duration
  /** The window in seconds, for `RateLimit-Policy` (`w`); undefined for concurrency. */
  readonly windowSeconds: number | undefined
}

/**
 * A decision: everything the IETF `RateLimit` and `RateLimit-Policy` headers need.
 *
 * @category models
 * @since 0.1.0
 */
export interface Decision {
  readonly allowed: boolean
  /** The deciding policy: the refusing one that frees up last, else the one with the least remaining. */
  readonly policy: string
  readonly limit: number
  readonly remaining: number
  readonly reset: Duration.Duration
  /** Zero when allowed. */
  readonly retryAfter: Duration.Duration
  readonly policies: ReadonlyArray<PolicyDecision>
  /**
   * The remote store failed and `onStoreError: "fail"` refused the request
   * (its `policy` is `"store-error"`): not a limit's refusal.
   */
  readonly storeError: boolean
}

/**
 * The limiter's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event =
  | {
      readonly _tag: "LimitHit"
      readonly limiter: string
      readonly key: string
      readonly policy: string
      readonly cost: number
      readonly retryAfter: Duration.Duration
    }
  | {
      /** The rejection rate stayed at or above `alertRejectionRate` for `alertFor`. */
      readonly _tag: "AlertTriggered"
      readonly limiter: string
      readonly rejectionRate: number
      readonly since: number
    }
  | {
      /** The rejection rate fell below `alertRejectionRate` again. */
      readonly _tag: "AlertResolved"
      readonly limiter: string
      readonly rejectionRate: number
    }

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/**
 * A request refused by a limit.
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimitExceeded extends Schema.TaggedError<RateLimitExceeded>(
  "@effect-resilience/core/RateLimiter/RateLimitExceeded"
)("RateLimitExceeded", {
  limiter: Schema.String,
  key: Schema.String,
  policy: Schema.String,
  limit: Schema.Number,
  remaining: Schema.Number,
  retryAfter: Schema.DurationFromMillis
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Rate limit exceeded"
  }
}

/**
 * The store behind the limiter failed (only over a remote store, under
 * `onStoreError: "fail"`).
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimiterStoreError extends Schema.TaggedError<RateLimiterStoreError>(
  "@effect-resilience/core/RateLimiter/RateLimiterStoreError"
)("RateLimiterStoreError", {
  limiter: Schema.String,
  key: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * Runtime identifier of `RateLimiterError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/RateLimiter/RateLimiterError"

/**
 * Type-level identifier of `RateLimiterError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/RateLimiter/RateLimiterError"

/**
 * The one error `limit` adds.
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimiterError extends Schema.TaggedError<RateLimiterError>(ErrorTypeId)("RateLimiterError", {
  reason: Schema.Union([RateLimitExceeded, RateLimiterStoreError])
}) {
  /**
   * Brand for the guards.
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
 * Whether a value is a `RateLimiterError` (a rejection, with `retryAfter`).
 *
 * @category guards
 * @since 0.1.0
 */
export const isRateLimiterError = (u: unknown): u is RateLimiterError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

/**
 * Whether a value is a limiter's rejection: the predicate for `Retry`'s
 * `while` option (its `retryAfter` is honoured as a hint).
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection: (u: unknown) => u is RateLimiterError = isRateLimiterError

// ---------------------------------------------------------------------------
// compiled limits: typed closures over one algorithm, states per key
// ---------------------------------------------------------------------------

/**
 * One limit's per-key state in a store, behind plain functions of the key:
 * what the limiter checks and charges. In-process stores hold the states in a
 * `Map` per limit.
 *
 * @category store
 * @since 0.1.0
 */
export interface CompiledLimit {
  readonly name: string
  readonly windowSeconds: number | undefined
  readonly concurrency: boolean
  readonly check: (key: string, now: number, cost: number, out: algorithms.Decision) => algorithms.Decision
  readonly consume: (key: string, now: number, cost: number, out: algorithms.Decision) => algorithms.Decision
  readonly refund: (key: string, now: number, cost: number) => void
  readonly penalize: (key: string, now: number, cost: number) => void
  readonly release: (key: string, cost: number) => void
  /** Drops idle states; returns how many. */
  readonly sweep: (now: number) => number
  /** States dropped (not idle) to stay within `maxKeys`, since the start. */
  readonly evicted: () => number
  readonly size: () => number
}

/**
 * A limit as a store runs it: the algorithm, its configuration in the units
 * the decision logic uses, the policy's name and its window (for
 * `RateLimit-Policy`). In-process stores compile it; a remote store (Redis)
 * sends it to its scripts.
 *
 * @category store
 * @since 0.1.0
 */
export type LimitSpec = {
  readonly name: string
  /** The window in seconds, for `RateLimit-Policy` (`w`); undefined for concurrency. */
  readonly windowSeconds: number | undefined
} & (
  | { readonly algorithm: "fixedWindow"; readonly config: algorithms.FixedWindowConfig }
  | { readonly algorithm: "slidingCounter"; readonly config: algorithms.SlidingCounterConfig }
  | { readonly algorithm: "slidingLog"; readonly config: algorithms.SlidingLogConfig }
  | { readonly algorithm: "tokenBucket"; readonly config: algorithms.TokenBucketConfig }
  | { readonly algorithm: "gcra"; readonly config: algorithms.GcraConfig }
  | { readonly algorithm: "leakyMeter"; readonly config: algorithms.LeakyMeterConfig }
  | { readonly algorithm: "concurrency"; readonly config: algorithms.ConcurrencyConfig }
)

/**
 * The spec of a validated limit.
 *
 * @category store
 * @since 0.1.0
 */
export const limitSpec: (limit: Limit) => LimitSpec = Spec.limitSpec

/**
 * A limit's per-key state in memory (what `layerStoreMemory` compiles), for
 * stores built on it.
 *
 * @category store
 * @since 0.1.0
 */
export const compileSpec: (spec: LimitSpec, maxKeys: number) => CompiledLimit = Memory.compileSpec

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A rate limiter.
 *
 * @category models
 * @since 0.1.0
 */
export interface RateLimiter {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: Options
  /**
   * Whether `limit` holds a call beyond its admission: a `concurrency` limit
   * (in any tier) gives its permits back when the call ends, and shape mode
   * makes calls wait in line. Such a limiter must guard calls with `limit`;
   * `consume` alone would keep the permits and never wait.
   */
  readonly holdsCalls: boolean
  /** Decides for `key` and, when allowed, charges every limit `cost` (default 1). */
  readonly consume: (key: string, cost?: number | undefined) => Effect.Effect<Decision>
  /** Decides without charging. */
  readonly check: (key: string, cost?: number | undefined) => Effect.Effect<Decision>
  /** Takes `points` extra from every limit of `key` (debt where the algorithm allows). */
  readonly penalize: (key: string, points: number) => Effect.Effect<void>
  /** Gives back up to `points` to every limit of `key`. */
  readonly reward: (key: string, points: number) => Effect.Effect<void>
  readonly limit: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options: LimitOptions
  ) => Effect.Effect<A, E | RateLimiterError, R>
  /**
   * The rejection-rate alert now (`alertRejectionRate`): whether it is raised,
   * the rate over the last monitoring tick, and since when (clock millis)
   * while raised.
   */
  readonly alert: Effect.Effect<{
    readonly alerting: boolean
    readonly rejectionRate: number
    readonly since: number | undefined
  }>
  /** The heaviest keys by cost seen (allowed or not), from a bounded sketch. */
  readonly topClients: (n: number) => Effect.Effect<ReadonlyArray<{ readonly key: string; readonly cost: number }>>
  readonly stats: Effect.Effect<{
    readonly allowed: number
    readonly rejected: number
    readonly keys: number
    /** States dropped (not idle) to stay within `maxKeys`. */
    readonly evicted: number
    /** Remote store failures the limiter let through (`onStoreError: "allow"`) or refused on. */
    readonly storeErrors: number
  }>
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<Event>
}

/**
 * Per-call options of `limit`.
 *
 * @category models
 * @since 0.1.0
 */
export interface LimitOptions {
  readonly key: string
  /** The request's cost (default 1). */
  readonly cost?: number | undefined
}

/**
 * The service tag of the limiter a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const RateLimiter: Context.Service<RateLimiter, RateLimiter> = Context.Service<RateLimiter>(TypeId)

/**
 * Where limiters keep their state. `layerStoreMemory` is the embedded default.
 *
 * @category store
 * @since 0.1.0
 */
export class RateLimiterStore extends Context.Service<
  RateLimiterStore,
  {
    /** Per-limit state for one limiter, as compiled closures (in-process stores). */
    readonly compile: (limit: Limit, maxKeys: number) => CompiledLimit
    /**
     * A remote store (Redis): when present, the limiter decides through it
     * instead of compiled limits, one atomic operation per decision.
     */
    readonly remote?: ((options: RemoteOptions) => Effect.Effect<RemoteLimits, never, Scope.Scope>) | undefined
  }
>()("@effect-resilience/core/RateLimiter/RateLimiterStore") {}

/**
 * What a remote store needs to hold a limiter's state.
 *
 * @category store
 * @since 0.1.0
 */
export interface RemoteOptions {
  /** The limiter's name: a namespace, so limiters sharing a store never share state. */
  readonly name: string
  /** The limits of each tier: index 0 is the default limits, then the named tiers. */
  readonly tiers: ReadonlyArray<ReadonlyArray<LimitSpec>>
}

/**
 * One limit's part of a remote decision (the decision logic's own numbers,
 * in milliseconds; `Infinity` where a request can never pass).
 *
 * @category store
 * @since 0.1.0
 */
export interface LimitOutcome {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  readonly resetMillis: number
  readonly retryAfterMillis: number
}

/**
 * A limiter's state in a remote store. Every operation acts on all the limits
 * of one key's tier at once, atomically, with the store's own clock.
 *
 * @category store
 * @since 0.1.0
 */
export interface RemoteLimits {
  /**
   * Decides `cost` for `key` under tier `tier`'s limits, one outcome per limit
   * in order. With `commit`, every limit is charged when all allow (one limit:
   * charged when it allows); otherwise nothing changes.
   */
  readonly decide: (
    key: string,
    tier: number,
    cost: number,
    commit: boolean,
    permit?: string | undefined
  ) => Effect.Effect<ReadonlyArray<LimitOutcome>, RateLimiterStoreError>
  /**
   * Gives back up to `cost` to every limit of the tier; with `permit`, the
   * concurrency limits give back that admission's permits (once).
   */
  readonly refund: (
    key: string,
    tier: number,
    cost: number,
    permit?: string | undefined
  ) => Effect.Effect<void, RateLimiterStoreError>
  /** Takes `cost` extra from every limit of the tier. */
  readonly penalize: (key: string, tier: number, cost: number) => Effect.Effect<void, RateLimiterStoreError>
  /** Releases `cost` concurrency permits of the tier's concurrency limits: `permit`'s, once, when given. */
  readonly release: (
    key: string,
    tier: number,
    cost: number,
    permit?: string | undefined
  ) => Effect.Effect<void, RateLimiterStoreError>
  /**
   * Concurrency permits as leases: an admission's `permit` (a `decide` with
   * `commit`) holds its permits until released or until its lease runs out,
   * so a process that dies holding permits loses them; `renew` extends the
   * lease, and the limiter calls it every `renewMillis` while the call runs.
   */
  readonly leases?:
    | {
        readonly renewMillis: number
        readonly renew: (
          key: string,
          tier: number,
          cost: number,
          permit: string
        ) => Effect.Effect<void, RateLimiterStoreError>
      }
    | undefined
}

/**
 * The in-memory store.
 *
 * @category store
 * @since 0.1.0
 */
export const layerStoreMemory = (): Layer.Layer<RateLimiterStore> =>
  Layer.succeed(
    RateLimiterStore,
    RateLimiterStore.of({ compile: (limit, maxKeys) => compileSpec(limitSpec(limit), maxKeys) })
  )

/**
 * Makes a limiter over the current store. Fails with `Options.InvalidOptions`
 * listing every bad option.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  input: Input
) => Effect.Effect<RateLimiter, Options_.InvalidOptions, RateLimiterStore | Scope.Scope> = Effect.fnUntraced(function* (
  input: Input
) {
  const { options, tiers } = yield* Spec.validateAll(Options, input)
  const store = yield* RateLimiterStore
  const runtime = yield* makeRuntime(options, tiers, input, store, errors)
  return RateLimiter.of({
    [TypeId]: TypeId,
    name: options.name ?? "default",
    options,
    holdsCalls: runtime.holdsCalls,
    consume: runtime.consume,
    check: runtime.check,
    penalize: runtime.penalize,
    reward: runtime.reward,
    limit: runtime.limit,
    alert: runtime.alert,
    topClients: runtime.topClients,
    stats: runtime.stats,
    subscribe: runtime.subscribe,
    events: runtime.events
  })
})

// the implementation: internal/rateLimiterRuntime.ts
const errors: Errors = { RateLimiterError, RateLimitExceeded, RateLimiterStoreError, ErrorTypeId }

/**
 * Provides `RateLimiter` over the current store.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (input: Input): Layer.Layer<RateLimiter, Options_.InvalidOptions, RateLimiterStore> =>
  Layer.effect(RateLimiter, make(input))

/**
 * Provides `RateLimiter` with its own in-memory store.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (input: Input): Layer.Layer<RateLimiter, Options_.InvalidOptions> =>
  layer(input).pipe(Layer.provide(layerStoreMemory()))

/**
 * Provides `RateLimiter` with options read from `Config` under `path`, over
 * the current store. `extra` adds what config cannot hold (tiers' `tierOf`).
 *
 * **Example** (Limits from structured config)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { ConfigProvider, Effect, Layer } from "effect"
 *
 * const provider = ConfigProvider.fromUnknown({
 *   api: { limits: [{ algorithm: "fixed-window", limit: 100, window: "1 minute", name: "per-minute" }] }
 * })
 * const program = Effect.map(RateLimiter.RateLimiter, (limiter) => limiter.options.limits[0]?.name).pipe(
 *   Effect.provide(
 *     RateLimiter.layerConfig("api").pipe(
 *       Layer.provide(RateLimiter.layerStoreMemory()),
 *       Layer.provide(ConfigProvider.layer(provider))
 *     )
 *   )
 * )
 *
 * await Effect.runPromise(program)
 * // => "per-minute"
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  path: string,
  extra?: Pick<Input, "tiers" | "tierOf"> | undefined
): Layer.Layer<RateLimiter, Options_.InvalidOptions | Config.ConfigError, RateLimiterStore> =>
  Layer.effect(
    RateLimiter,
    Effect.flatMap(Options_.fromConfig("RateLimiter", Options, path), (options: Options) =>
      make({ name: path, ...options, ...extra })
    )
  )

/**
 * Runs an effect only if the limiter allows `key` its `cost`; otherwise fails
 * at once with `RateLimiterError` (`RateLimitExceeded`, with `retryAfter`; over
 * a remote store that failed under `onStoreError: "fail"`, `RateLimiterStoreError`).
 * Concurrency limits hold their permits while the effect runs.
 *
 * **Example** (Limiting per client)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Duration, Effect } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({ limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }] })
 *   yield* Effect.succeed("first").pipe(RateLimiter.limit(limiter, { key: "alice" }))
 *   return yield* Effect.succeed("second").pipe(
 *     RateLimiter.limit(limiter, { key: "alice" }),
 *     Effect.catchReason("RateLimiterError", "RateLimitExceeded", (reason) =>
 *       Effect.succeed(`${reason._tag}, retry after ${Duration.toMillis(reason.retryAfter)} ms`)
 *     )
 *   )
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()), Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => "RateLimitExceeded, retry after 60000 ms"
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const limit: {
  /**
   * Limits an effect (data-last).
   *
   * @since 0.1.0
   */
  (
    limiter: RateLimiter,
    options: LimitOptions
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimiterError, R>
  /**
   * Limits an effect (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    limiter: RateLimiter,
    options: LimitOptions
  ): Effect.Effect<A, E | RateLimiterError, R>
} = dual(3, <A, E, R>(self: Effect.Effect<A, E, R>, limiter: RateLimiter, options: LimitOptions) =>
  limiter.limit(self, options)
)

/**
 * Limits a function by a key computed from its arguments (a client id, an
 * API key, an IP prefix) and, optionally, a cost computed from them: the
 * wrapped function fails with `RateLimiterError` when its key is over the limit.
 *
 * **Example** (Per-client keys from a key function)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * interface Request { readonly apiKey: string; readonly items: number }
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({ limits: [{ algorithm: "sliding-log", limit: 10, window: "1 minute" }] })
 *   const handle = RateLimiter.limitFn(limiter, {
 *     key: (request: Request) => request.apiKey,
 *     cost: (request: Request) => request.items
 *   })((request: Request) => Effect.succeed(`stored ${request.items}`))
 *   yield* handle({ apiKey: "alice", items: 8 })
 *   const refused = yield* Effect.flip(handle({ apiKey: "alice", items: 3 }))
 *   const other = yield* handle({ apiKey: "bob", items: 3 })
 *   return [refused.reason._tag, other]
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => ["RateLimitExceeded", "stored 3"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const limitFn =
  <Args extends ReadonlyArray<unknown>>(
    limiter: RateLimiter,
    options: {
      readonly key: (...args: Args) => string
      readonly cost?: ((...args: Args) => number) | undefined
    }
  ) =>
  <A, E, R>(f: (...args: Args) => Effect.Effect<A, E, R>) =>
  (...args: Args): Effect.Effect<A, E | RateLimiterError, R> =>
    limiter.limit(
      Effect.suspend(() => f(...args)),
      options.cost === undefined
        ? { key: options.key(...args) }
        : { key: options.key(...args), cost: options.cost(...args) }
    )
