/**
 * Client-side adaptive throttling: when a backend refuses much of what it is
 * sent, reject part of the traffic locally, before it reaches the network,
 * in proportion to how much the backend refuses.
 *
 * This is the scheme of the Google SRE book ("Handling Overload", section
 * "Client-side throttling", https://sre.google/sre-book/handling-overload/).
 * Per key (a backend, a host), over a trailing window (two minutes by
 * default), the throttle counts `requests` (every call attempted through it,
 * the ones it rejected locally included) and `accepts` (calls the backend
 * accepted), and rejects each new call with probability
 *
 *     max(0, (requests - k × accepts) / (requests + 1))
 *
 * While the backend accepts at least one call in `k`, nothing is rejected.
 * Past that, the backend is sent about `k` times what it accepts: enough to
 * see it recover, not enough to keep it drowning in requests it refuses.
 *
 * **Details**
 *
 * - A call rejected locally fails with `AdaptiveThrottleError` (reason
 *   `Throttled`, with the probability and the window's counts), built without
 *   a stack trace. The coin comes from Effect's `Random` (seed it in tests);
 *   no coin is drawn while the probability is 0.
 * - What "accepted" means is the caller's to say. By default a success is
 *   accepted, and a typed failure and a defect are not (the throttle cannot
 *   tell an overloaded backend from a broken one). `isAccepted` marks typed
 *   failures the backend answered on purpose (a 404, a validation error) as
 *   accepted, `isAcceptedResult` a success value that is a refusal (a 503
 *   response) as not accepted, and `isIgnored` failures that say nothing
 *   about the backend (a local rejection inside) as not counted at all. An
 *   interrupted call counts for nothing.
 * - An admitted call is counted when it ends; a local rejection when it
 *   happens. The window is a ring of `buckets` time buckets on Effect's
 *   `Clock` (`TestClock` in tests): O(1) per call, counts leave the window
 *   with their bucket. Only the bucket matters, so the clock is read little:
 *   not to admit a call into a window of accepts only, and on the live clock
 *   once per bucket (the reading kept until an unref'd timer marks the
 *   bucket's end; a throttle made on another `Clock` reads the fiber's on
 *   every call).
 * - Keyed: one throttle guards many keys, each with its own window, at most
 *   `maxKeys` of them. A key whose window is empty behaves as a new one, so
 *   idle keys are dropped (checked once a window, as new keys arrive) without
 *   changing any decision; at the cap the oldest are dropped (fail-open: a
 *   dropped key starts again at probability 0).
 * - Monitoring: `events` (`Throttled`, at most one per key and bucket),
 *   metrics named in `Telemetry.adaptiveThrottle`, a span event per
 *   rejection, `state(key)` and `stats`.
 *
 * **Gotchas**
 *
 * - The counts live in this process: each replica throttles on what it sees.
 *   To decide on the fleet's counts instead, provide an
 *   `AdaptiveThrottleStore` (`RedisAdaptiveThrottle.layerStoreLocalFirst` in
 *   `@effect-resilience/redis`): `make` reads it once, and a throttle made
 *   without one keeps the in-memory path.
 * - Retries through the throttle count as requests, so a retry storm against
 *   a refusing backend raises the probability and throttles itself; put the
 *   throttle inside the retry.
 * - Rarely used keys have little history: one refusal in a window of one
 *   request gives probability 1/2. `minRequests` keeps such keys unthrottled.
 *
 * **Example** (A backend that refuses everything gets throttled locally)
 *
 * ```ts import.meta.vitest
 * import { AdaptiveThrottle } from "@effect-resilience/core"
 * import { Effect, Random } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const throttle = yield* AdaptiveThrottle.make({ name: "quotes" })
 *   const refused = Effect.fail("503 Service Unavailable")
 *   let throttled = 0
 *   for (let i = 0; i < 100; i++) {
 *     const error = yield* Effect.flip(refused.pipe(AdaptiveThrottle.throttle(throttle)))
 *     if (AdaptiveThrottle.isAdaptiveThrottleError(error)) throttled++
 *   }
 *   return throttled > 50
 * }).pipe(Effect.scoped, Random.withSeed("doc"))
 *
 * await Effect.runPromise(program)
 * // => true
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
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type * as Types from "effect/Types"
import * as engine from "./internal/adaptiveThrottle.ts"
import * as Tick from "./internal/adaptiveThrottleClock.ts"
import * as Fleet from "./internal/adaptiveThrottleFleet.ts"
import * as ClockTimer from "./internal/clockTimer.ts"
import { dualBy } from "./internal/dual.ts"
import * as Hub from "./internal/events.ts"
import * as Frame from "./internal/frame.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of `AdaptiveThrottle` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/AdaptiveThrottle"

/**
 * Type-level identifier of `AdaptiveThrottle` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/AdaptiveThrottle"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * An adaptive throttle: a window of requests and accepts per key.
 *
 * @category models
 * @since 0.1.0
 */
export interface AdaptiveThrottle {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Runs `self` unless rejected locally; see {@link throttle}. */
  readonly throttle: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options?: ThrottleOptions<A, E> | undefined
  ) => Effect.Effect<A, E | AdaptiveThrottleError, R>
  /** One key's window now (the throttle's own, for calls without a key, when `key` is omitted). */
  readonly state: (key?: string | undefined) => Effect.Effect<KeyState>
  /**
   * Every window held now: the throttle's own first, then each key's, oldest
   * key first. O(keys × buckets): for dashboards and diagnostics, not for a
   * call's path.
   */
  readonly states: Effect.Effect<ReadonlyArray<KeyState>>
  /** Totals since the start, over every key. */
  readonly stats: Effect.Effect<Stats>
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the throttle a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const AdaptiveThrottle: Context.Service<AdaptiveThrottle, AdaptiveThrottle> =
  Context.Service<AdaptiveThrottle>(TypeId)

/**
 * Per-call options of `throttle`: the key, and how to classify the call's
 * outcome. Predicates here run before the throttle-wide ones.
 *
 * @category models
 * @since 0.1.0
 */
export interface ThrottleOptions<A, E> {
  /** The window to use: a backend, a host (default: the throttle's own, reported as its name). */
  readonly key?: string | undefined
  /** A typed failure the backend answered on purpose, so it counts as accepted (a 404, say; default: none). */
  readonly isAccepted?: ((error: E) => boolean) | undefined
  /** A success value that is a refusal, so it counts as not accepted (a 429 or 503 response, say). */
  readonly isAcceptedResult?: ((value: A) => boolean) | undefined
  /** A typed failure that says nothing about the backend: not counted at all (a rejection by a local limiter). */
  readonly isIgnored?: ((error: E) => boolean) | undefined
}

/**
 * One key's window.
 *
 * @category models
 * @since 0.1.0
 */
export interface KeyState {
  readonly key: string
  /** Requests in the window: calls counted when they ended, and local rejections. */
  readonly requests: number
  /** Requests the backend accepted, in the window. */
  readonly accepts: number
  /** The probability that the next call is rejected locally. */
  readonly probability: number
}

/**
 * What a throttle has done, over every key, since it was made.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  /** Calls run. */
  readonly admitted: number
  /** Calls rejected locally. */
  readonly throttled: number
  /** Admitted calls the backend accepted. */
  readonly accepted: number
  /** Admitted calls the backend did not accept (refused, failed, died). */
  readonly notAccepted: number
  /** Admitted calls counted for nothing (interrupted, or `isIgnored`). */
  readonly ignored: number
  /** Keys held in memory (the throttle's own window, for calls without a key, not counted). */
  readonly keys: number
}

/**
 * The throttle's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.Throttled

/**
 * The members of {@link Event}.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * A call was rejected locally. Reported at most once per key and bucket of
   * the window (10 seconds with the defaults), so a storm of
   * rejections does not flood subscribers.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Throttled {
    readonly _tag: "Throttled"
    readonly throttle: string
    readonly key: string
    /** The probability the call was rejected with. */
    readonly probability: number
    /** The window's counts before the rejection was added. */
    readonly requests: number
    readonly accepts: number
    /** Rejections of this key not reported since its previous `Throttled` event. */
    readonly suppressed: number
  }
}

// ---------------------------------------------------------------------------
// sharing the counts across a fleet
// ---------------------------------------------------------------------------

/**
 * One key's counts at a sync: the delta a throttle reports (requests and
 * accepts since its previous report), or the fleet's totals a store answers.
 *
 * @category store
 * @since 0.1.0
 */
export interface FleetCounts {
  readonly key: string
  readonly requests: number
  readonly accepts: number
}

/**
 * What a throttle hands the store it joins (see {@link AdaptiveThrottleStore}):
 * its deltas to report, and where the fleet's answer goes. Called by the
 * store's sync, never on a call's path.
 *
 * @category store
 * @since 0.1.0
 */
export interface FleetMember {
  readonly name: string
  readonly options: ResolvedOptions
  /**
   * The keys to report at a sync, at most `max`: first the keys with counts
   * since the previous report (their deltas, cut to what the throttle's own
   * window holds at `now`, move to "in flight"), then keys whose fleet view
   * may reject, with a zero delta, to refresh that view (the least recently
   * refreshed first). `now` is the throttle's clock, in milliseconds.
   */
  readonly take: (max: number, now: number) => ReadonlyArray<FleetCounts>
  /**
   * The fleet's totals for the reported keys (each holding the delta just
   * reported): from now on the throttle decides on them plus its deltas since.
   */
  readonly apply: (totals: ReadonlyArray<FleetCounts>, now: number) => void
  /**
   * The sync of `reported` failed: their deltas are reported again at the
   * next sync, and until a sync succeeds the throttle decides on its own
   * window alone.
   */
  readonly failed: (reported: ReadonlyArray<FleetCounts>) => void
}

/**
 * Where throttles share their counts with a fleet: optional, read once by
 * `make`. Without one (the default) a throttle decides on its own window,
 * and a call costs nothing more. With one, the throttle joins it: between
 * syncs it decides on the fleet's totals per key plus its own counts since,
 * and on its own window while the store cannot sync. See
 * `RedisAdaptiveThrottle.layerStoreLocalFirst` in `@effect-resilience/redis`.
 *
 * @category store
 * @since 0.1.0
 */
export class AdaptiveThrottleStore extends Context.Service<
  AdaptiveThrottleStore,
  {
    /** Syncs the throttle with the fleet for the scope's lifetime (and once more, bounded, when it closes). */
    readonly join: (member: FleetMember) => Effect.Effect<void, never, Scope.Scope>
  }
>()("@effect-resilience/core/AdaptiveThrottle/AdaptiveThrottleStore") {}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Finite = Schema.Number.check(Schema.isFinite())

const defaults = {
  name: "default",
  window: Duration.minutes(2),
  buckets: 12,
  k: 2,
  minRequests: 0,
  maxRejectProbability: 0.9,
  maxKeys: 10_000
} as const

/**
 * The throttle's options: the source of the type, the rules, `layerConfig`
 * and the generated Defaults table.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the throttle: the `resilience.name` metric attribute, and the key of calls without one.",
      default: defaults.name
    })
  ),
  window: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How much recent history counts (the SRE book's two minutes); above zero.",
      default: defaults.window
    })
  ),
  buckets: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "Buckets the window is cut into, at least 1 ms each: counts leave the window a bucket at a time (every 10 s by default).",
      default: defaults.buckets
    })
  ),
  k: Schema.optionalKey(
    Finite.check(Schema.isGreaterThanOrEqualTo(1)).annotate({
      description:
        "The accepts multiplier K: calls are rejected locally once requests exceed K × accepts. At least 1; lower is more aggressive (the book suggests 2; 1.1 when refusing costs the backend as much as serving).",
      default: defaults.k
    })
  ),
  minRequests: Schema.optionalKey(
    NonNegativeInt.annotate({
      description: "No local rejection while a key's window holds fewer requests (0: the book's formula alone).",
      default: defaults.minRequests
    })
  ),
  maxRejectProbability: Schema.optionalKey(
    Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })).annotate({
      description:
        "The highest probability of a local rejection, 0 to 1: a share of the calls always reaches the backend, so its recovery is seen within a window (1: uncapped, as in the book).",
      default: defaults.maxRejectProbability
    })
  ),
  maxKeys: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Keys held at most; idle ones (empty window, nothing running) are dropped first.",
      default: defaults.maxKeys
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` takes them: the window as any `Duration.Input`, and the
 * throttle-wide classification predicates.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly name?: string | undefined
  readonly window?: Duration.Input | undefined
  readonly buckets?: number | undefined
  readonly k?: number | undefined
  readonly minRequests?: number | undefined
  readonly maxRejectProbability?: number | undefined
  readonly maxKeys?: number | undefined
  /** Throttle-wide: a typed failure the backend answered on purpose, counted as accepted (default: none). */
  readonly isAccepted?: ((error: unknown) => boolean) | undefined
  /** Throttle-wide: a success value counted as accepted (default: every one). */
  readonly isAcceptedResult?: ((value: unknown) => boolean) | undefined
  /** Throttle-wide: a typed failure not counted at all. */
  readonly isIgnored?: ((error: unknown) => boolean) | undefined
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly window: Duration.Duration
  readonly buckets: number
  readonly k: number
  readonly minRequests: number
  readonly maxRejectProbability: number
  readonly maxKeys: number
}

const intAtLeast1 = (u: unknown): u is number => typeof u === "number" && Number.isInteger(u) && u >= 1

const rules: ReadonlyArray<Options_.Rule> = [
  (o) => {
    const window = o.window
    if (!Duration.isDuration(window)) return []
    const millis = Duration.toMillis(window)
    if (millis <= 0 || !Number.isFinite(millis)) {
      return [{ path: "window", message: "Expected a finite duration greater than zero" }]
    }
    const buckets = o.buckets ?? defaults.buckets
    return intAtLeast1(buckets) && millis / buckets < 1
      ? [{ path: "buckets", message: `Expected at most ${Math.floor(millis)}: at least 1 millisecond per bucket` }]
      : []
  }
]

const schemaFields = new Set(Object.keys(Options.fields))

/**
 * Validates options: succeeds with them resolved (defaults applied), or fails
 * with one `Options.InvalidOptions` listing every bad field and its value.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { AdaptiveThrottle } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(AdaptiveThrottle.validateOptions({ k: 0.5, maxRejectProbability: 2, window: 0 }))
 * )
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["k = 0.5", "maxRejectProbability = 2", "window = 0"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input = {}): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) if (schemaFields.has(key)) plain[key] = value
  const { issues, normalized } = Options_.normalizeDurations(plain, ["window"])
  return Effect.map(
    Options_.validate("AdaptiveThrottle", Options, normalized, rules, issues),
    (o: Options): ResolvedOptions => Options_.withDefaults(o, defaults)
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
 * A call rejected locally: the backend has lately accepted too few of the
 * requests sent to it, and this one drew the short straw. The call did not
 * run.
 *
 * @category errors
 * @since 0.1.0
 */
export class Throttled extends Schema.TaggedError<Throttled>("@effect-resilience/core/AdaptiveThrottle/Throttled")(
  "Throttled",
  {
    throttle: Schema.String,
    key: Schema.String,
    /** The probability the call was rejected with. */
    probability: Schema.Number,
    /** The window's requests and accepts at the rejection (before it was added). */
    requests: Schema.Number,
    accepts: Schema.Number
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Throttled locally: the backend accepts too few requests"
  }
}

/**
 * The reasons an `AdaptiveThrottleError` carries.
 *
 * @category errors
 * @since 0.1.0
 */
export type AdaptiveThrottleErrorReason = Throttled

/**
 * Runtime identifier of `AdaptiveThrottleError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/AdaptiveThrottle/AdaptiveThrottleError"

/**
 * Type-level identifier of `AdaptiveThrottleError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/AdaptiveThrottle/AdaptiveThrottleError"

/**
 * The one error `throttle` adds; `reason` says why the call did not run.
 *
 * **Example** (Handling a local rejection)
 *
 * ```ts import.meta.vitest
 * import { AdaptiveThrottle } from "@effect-resilience/core"
 * import { Effect, Random } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const throttle = yield* AdaptiveThrottle.make({ maxRejectProbability: 1 })
 *   // five refusals in the window: the next call is rejected with probability 5/6
 *   for (let i = 0; i < 5; i++) yield* Effect.flip(Effect.fail("refused").pipe(AdaptiveThrottle.throttle(throttle)))
 *   return yield* Effect.succeed("sent").pipe(
 *     AdaptiveThrottle.throttle(throttle),
 *     Effect.catchReason("AdaptiveThrottleError", "Throttled", (reason) =>
 *       Effect.succeed(`throttled at ${reason.probability.toFixed(2)}`)
 *     )
 *   )
 * }).pipe(Effect.scoped, Random.withSeed("throttled"))
 *
 * await Effect.runPromise(program)
 * // => "throttled at 0.83"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class AdaptiveThrottleError extends Schema.TaggedError<AdaptiveThrottleError>(ErrorTypeId)(
  "AdaptiveThrottleError",
  { reason: Throttled }
) {
  /**
   * Brand for the `isAdaptiveThrottleError` guard.
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
 * Whether a value is an `AdaptiveThrottleError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isAdaptiveThrottleError = (u: unknown): u is AdaptiveThrottleError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

/**
 * Whether a value is a local rejection (every `AdaptiveThrottleError` is):
 * the predicate for `Retry`'s `while` option, or its negation to stop
 * retrying what the throttle refused.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection = (u: unknown): u is AdaptiveThrottleError => isAdaptiveThrottleError(u)

// ---------------------------------------------------------------------------
// constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a throttle that lives as long as the scope (its event streams and
 * metrics end with it). Fails with `Options.InvalidOptions` listing every
 * bad option.
 *
 * **Example** (One window per backend)
 *
 * ```ts import.meta.vitest
 * import { AdaptiveThrottle } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const throttle = yield* AdaptiveThrottle.make({ name: "search" })
 *   yield* Effect.flip(Effect.fail("503").pipe(AdaptiveThrottle.throttle(throttle, { key: "eu-1" })))
 *   yield* Effect.succeed("ok").pipe(AdaptiveThrottle.throttle(throttle, { key: "us-1" }))
 *   const eu = yield* throttle.state("eu-1")
 *   const us = yield* throttle.state("us-1")
 *   return [eu.probability, us.probability]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [0.5, 0]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  input?: Input | undefined
) => Effect.Effect<AdaptiveThrottle, Options_.InvalidOptions, Scope.Scope> = Effect.fnUntraced(function* (
  input?: Input | undefined
) {
  const options = yield* validateOptions(input ?? {})
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const clock = yield* Clock.clockWith(Effect.succeed)
  const store = yield* Effect.serviceOption(AdaptiveThrottleStore)
  const { close, member, service } = makeWith(options, input ?? {}, context, clock, store._tag === "Some")
  yield* Scope.addFinalizer(scope, close)
  // joined after: the store's last sync (its finalizer) runs before `close`
  if (store._tag === "Some") yield* store.value.join(member)
  return service
})

/**
 * Provides `AdaptiveThrottle` for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (input?: Input | undefined): Layer.Layer<AdaptiveThrottle, Options_.InvalidOptions> =>
  Layer.effect(AdaptiveThrottle, make(input))

/**
 * Provides `AdaptiveThrottle` with options read from `Config` under `path`
 * (environment variables such as `search_k=1.5` and `search_window=1 minute`
 * with the default provider), the name defaulting to `path`. Bad values fail
 * with one `Options.InvalidOptions` naming each field and the text it held.
 *
 * **Example** (Options from the environment)
 *
 * ```ts import.meta.vitest
 * import { AdaptiveThrottle } from "@effect-resilience/core"
 * import { ConfigProvider, Duration, Effect, Layer } from "effect"
 *
 * const env = ConfigProvider.fromEnv({ env: { search_k: "1.5", search_window: "1 minute" } })
 * const program = Effect.map(AdaptiveThrottle.AdaptiveThrottle, (throttle) => [
 *   throttle.name,
 *   throttle.options.k,
 *   Duration.toMillis(throttle.options.window)
 * ]).pipe(Effect.provide(AdaptiveThrottle.layerConfig("search").pipe(Layer.provide(ConfigProvider.layer(env)))))
 *
 * await Effect.runPromise(program)
 * // => ["search", 1.5, 60000]
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  path: string
): Layer.Layer<AdaptiveThrottle, Options_.InvalidOptions | Config.ConfigError> =>
  Layer.effect(
    AdaptiveThrottle,
    Effect.flatMap(Options_.fromConfig("AdaptiveThrottle", Options, path), (options: Options) =>
      make({ name: path, ...options })
    )
  )

// ---------------------------------------------------------------------------
// combinators
// ---------------------------------------------------------------------------

/**
 * Runs an effect unless the throttle rejects it locally, and counts how it
 * ended. Adds only `AdaptiveThrottleError` to the error channel.
 *
 * **Details**
 *
 * - The call is rejected with the probability of its key's window (see the
 *   module). A rejection counts as a request, not accepted.
 * - An admitted call counts when it ends: accepted when it succeeds (unless
 *   `isAcceptedResult` says otherwise) or fails with an error `isAccepted`
 *   accepts; not accepted when it fails otherwise or dies; not at all when it
 *   is interrupted or fails with an error `isIgnored` accepts.
 *
 * **Example** (A 404 is an answer; a 503 is a refusal)
 *
 * ```ts import.meta.vitest
 * import { AdaptiveThrottle } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const throttle = yield* AdaptiveThrottle.make()
 *   const call = (status: number) =>
 *     Effect.fail({ status }).pipe(
 *       AdaptiveThrottle.throttle(throttle, { key: "api", isAccepted: (error: { status: number }) => error.status === 404 }),
 *       Effect.flip
 *     )
 *   yield* call(404)
 *   yield* call(404)
 *   yield* call(503)
 *   const { accepts, probability, requests } = yield* throttle.state("api")
 *   return [requests, accepts, probability]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [3, 2, 0]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const throttle: {
  /**
   * Runs an effect through a throttle (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  <A = unknown, E = unknown>(
    throttle: AdaptiveThrottle,
    options?: ThrottleOptions<A, E> | undefined
  ): <A2 extends A, E2 extends E, R>(self: Effect.Effect<A2, E2, R>) => Effect.Effect<A2, E2 | AdaptiveThrottleError, R>
  /**
   * Runs an effect through a throttle (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    throttle: AdaptiveThrottle,
    options?: ThrottleOptions<A, E> | undefined
  ): Effect.Effect<A, E | AdaptiveThrottleError, R>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    throttle: AdaptiveThrottle,
    options?: ThrottleOptions<A, E> | undefined
  ): Effect.Effect<A, E | AdaptiveThrottleError, R> => throttle.throttle(self, options)
)

// ---------------------------------------------------------------------------
// the implementation
// ---------------------------------------------------------------------------

/** One key's window, with what the wiring needs. */
class Entry {
  readonly key: string
  readonly window: engine.Window
  /** Admitted calls not ended yet: a key with calls running is never dropped as idle. */
  running = 0
  /** The bucket epoch of the key's last `Throttled` event, and the rejections since. */
  lastEventEpoch = -1
  suppressed = 0
  /** The continuation of its calls without per-call predicates, shared. */
  observer: DefaultObserver | undefined = undefined
  /** With a store, the key's fleet view; undefined without one (a key costs no more memory). */
  readonly shared: Shared | undefined
  constructor(key: string, window: engine.Window, shared: boolean) {
    this.key = key
    this.window = window
    this.shared = shared ? new Shared() : undefined
  }
}

/** A key's counts with a store: since the last report (`d`), reported and not answered yet (`p`), the fleet's (`f`). */
class Shared {
  dRequests = 0
  dAccepts = 0
  pRequests = 0
  pAccepts = 0
  fRequests = 0
  fAccepts = 0
  /** When the fleet's totals were answered (the throttle's clock), or -1: no fleet view of the key. */
  fAt = -1
}

/** How an admitted call ended, as the window counts it. */
type Outcome = "accepted" | "not_accepted" | "ignored"

/** What the observers call when a call ends: the throttle's bookkeeping. */
interface Recorder {
  /** Classifies an exit with the throttle-wide predicates only. */
  readonly classify: (exit: Exit.Exit<unknown, unknown>) => Outcome
  /** Counts an ended call against its key. */
  readonly done: (entry: Entry, outcome: Outcome, fiber: Fiber.Fiber<unknown, unknown>) => void
  /** Whether a success is accepted without asking a predicate (no throttle-wide `isAcceptedResult`). */
  readonly successAccepted: boolean
}

/**
 * Counts a call without per-call predicates when it ends (`internal/frame.ts`):
 * one per key, shared by all its calls. A success needs no classification
 * unless the throttle has an `isAcceptedResult`.
 */
class DefaultObserver extends Frame.Observer {
  readonly entry: Entry
  readonly recorder: Recorder
  constructor(entry: Entry, recorder: Recorder) {
    super()
    this.entry = entry
    this.recorder = recorder
  }
  observe(exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>): void {
    const recorder = this.recorder
    recorder.done(
      this.entry,
      exit._tag === "Success" && recorder.successAccepted ? "accepted" : recorder.classify(exit),
      fiber
    )
  }
}

/** Counts a call with per-call predicates when it ends. */
class CallObserver<A, E> extends Frame.Observer<A, E> {
  readonly entry: Entry
  readonly classify: (exit: Exit.Exit<A, E>) => Outcome
  readonly done: (entry: Entry, outcome: Outcome, fiber: Fiber.Fiber<unknown, unknown>) => void
  constructor(
    entry: Entry,
    classify: (exit: Exit.Exit<A, E>) => Outcome,
    done: (entry: Entry, outcome: Outcome, fiber: Fiber.Fiber<unknown, unknown>) => void
  ) {
    super()
    this.entry = entry
    this.classify = classify
    this.done = done
  }
  observe(exit: Exit.Exit<A, E>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.done(this.entry, this.classify(exit), fiber)
  }
}

/**
 * A local rejection, built as `internal/fastError.ts` builds errors (from
 * the classes' prototypes: no constructor run, no stack captured), its
 * fields stored one by one: a rejection is a hot path, and this is about
 * 40 ns less than `Object.assign` from literals.
 */
const throttledError = (
  throttle: string,
  key: string,
  probability: number,
  requests: number,
  accepts: number
): AdaptiveThrottleError => {
  const reason: Types.Mutable<Throttled> = Object.create(Throttled.prototype)
  reason._tag = "Throttled"
  reason.throttle = throttle
  reason.key = key
  reason.probability = probability
  reason.requests = requests
  reason.accepts = accepts
  const error: Types.Mutable<AdaptiveThrottleError> = Object.create(AdaptiveThrottleError.prototype)
  error._tag = "AdaptiveThrottleError"
  error[ErrorTypeId] = ErrorTypeId
  error.reason = reason
  return error
}

/** The throttle itself; `close` ends its event streams and unregisters its metrics. */
const makeWith = (
  options: ResolvedOptions,
  input: Input,
  context: Context.Context<never>,
  clock: Clock.Clock,
  shared: boolean
): { readonly service: AdaptiveThrottle; readonly close: Effect.Effect<void>; readonly member: FleetMember } => {
  const { maxKeys, name } = options
  const config: engine.Config = {
    windowMillis: Duration.toMillis(options.window),
    buckets: options.buckets,
    k: options.k,
    minRequests: options.minRequests,
    maxRejectProbability: options.maxRejectProbability
  }
  const main = new Entry(name, engine.make(config), shared)
  const entries = new Map<string, Entry>()
  const counters = { admitted: 0, throttled: 0, accepted: 0, not_accepted: 0, ignored: 0 }
  const hub = Hub.make<Event>()
  const throttleIsAccepted = input.isAccepted
  const throttleIsAcceptedResult = input.isAcceptedResult
  const throttleIsIgnored = input.isIgnored

  // ---- time: the calling fiber's clock (a TestClock in tests) on every
  // read; when the throttle is made on the live clock, that clock read once
  // per bucket (`internal/adaptiveThrottleClock.ts`): the window only needs
  // the bucket
  const tick = ClockTimer.isLive(clock) ? Tick.make(config, () => Date.now()) : undefined
  const nowOf = (fiber: Fiber.Fiber<unknown, unknown>): number =>
    tick !== undefined ? tick.read() : fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

  // ---- keys
  let lastSweepMillis = Number.NEGATIVE_INFINITY
  const batch = Math.max(1, Math.floor(maxKeys / 64))
  const isIdle = (e: Entry, now: number) => e.running === 0 && engine.isIdle(e.window, now, config)
  const makeRoom = (now: number) => {
    // once a window, every idle key (its window empty: dropping it changes no decision)
    if (now - lastSweepMillis >= config.windowMillis) {
      lastSweepMillis = now
      for (const [key, e] of entries) if (isIdle(e, now)) entries.delete(key)
    }
    if (entries.size < maxKeys) return
    // idle keys among the oldest, then the oldest anyway: memory comes first
    let scanned = 0
    for (const [key, e] of entries) {
      if (entries.size < maxKeys || ++scanned > 64) break
      if (isIdle(e, now)) entries.delete(key)
    }
    const target = maxKeys - batch
    for (const key of entries.keys()) {
      if (entries.size <= target) break
      entries.delete(key)
    }
  }
  const entryFor = (key: string, fiber: Fiber.Fiber<unknown, unknown>): Entry => {
    if (key === name) return main
    let e = entries.get(key)
    if (e === undefined) {
      makeRoom(nowOf(fiber))
      e = new Entry(key, engine.make(config), shared)
      entries.set(key, e)
    }
    return e
  }

  // ---- outcomes: one clock read, when the call ends (it counts in the bucket of its end)
  const done = (e: Entry, outcome: Outcome, fiber: Fiber.Fiber<unknown, unknown>) => {
    e.running--
    if (outcome === "accepted") counters.accepted++
    else if (outcome === "not_accepted") counters.not_accepted++
    else {
      counters.ignored++
      return
    }
    engine.record(e.window, nowOf(fiber), outcome === "accepted", config)
  }
  // with a store, the counts since the last report too
  const doneShared = (e: Entry, outcome: Outcome, fiber: Fiber.Fiber<unknown, unknown>) => {
    e.running--
    if (outcome === "accepted") counters.accepted++
    else if (outcome === "not_accepted") counters.not_accepted++
    else {
      counters.ignored++
      return
    }
    engine.record(e.window, nowOf(fiber), outcome === "accepted", config)
    const s = e.shared
    if (s === undefined) return
    s.dRequests++
    if (outcome === "accepted") s.dAccepts++
  }
  const classifyWith =
    <A, E>(o: ThrottleOptions<A, E> | undefined) =>
    (exit: Exit.Exit<A, E>): Outcome => {
      if (exit._tag === "Success") {
        const value = exit.value
        if (o?.isAcceptedResult !== undefined) return o.isAcceptedResult(value) ? "accepted" : "not_accepted"
        if (throttleIsAcceptedResult !== undefined) return throttleIsAcceptedResult(value) ? "accepted" : "not_accepted"
        return "accepted"
      }
      for (const reason of exit.cause.reasons) {
        if (reason._tag === "Fail") {
          const error = reason.error
          if (o?.isIgnored?.(error) === true || throttleIsIgnored?.(error) === true) return "ignored"
          if (o?.isAccepted?.(error) === true || throttleIsAccepted?.(error) === true) return "accepted"
          return "not_accepted"
        }
        if (reason._tag === "Die") return "not_accepted"
      }
      // interrupted only
      return "ignored"
    }
  const recorder: Recorder = {
    classify: classifyWith<unknown, unknown>(undefined),
    done: shared ? doneShared : done,
    successAccepted: throttleIsAcceptedResult === undefined
  }
  const observerFor = <A, E>(e: Entry, o: ThrottleOptions<A, E> | undefined): Frame.Observer<A, E> => {
    if (
      o !== undefined &&
      (o.isAccepted !== undefined || o.isAcceptedResult !== undefined || o.isIgnored !== undefined)
    ) {
      return new CallObserver<A, E>(e, classifyWith(o), recorder.done)
    }
    let observer = e.observer
    if (observer === undefined) {
      observer = new DefaultObserver(e, recorder)
      e.observer = observer
    }
    return observer
  }

  // ---- rejections
  const rejected = (
    fiber: Fiber.Fiber<unknown, unknown>,
    e: Entry,
    p: number,
    now: number,
    requests: number,
    accepts: number
  ): AdaptiveThrottleError => {
    engine.record(e.window, now, false, config)
    counters.throttled++
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span !== undefined && span._tag === "Span") {
      span.event("Throttled", fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), {
        [Telemetry.attributes.name]: name
      })
    }
    if (hub.listening()) {
      const epoch = engine.epochOf(now, config)
      if (epoch !== e.lastEventEpoch) {
        hub.emit({
          _tag: "Throttled",
          throttle: name,
          key: e.key,
          probability: p,
          requests,
          accepts,
          suppressed: e.suppressed
        })
        e.lastEventEpoch = epoch
        e.suppressed = 0
      } else {
        e.suppressed++
      }
    }
    return throttledError(name, e.key, p, requests, accepts)
  }

  const throttleCall = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions?: ThrottleOptions<A, E> | undefined
  ): Effect.Effect<A, E | AdaptiveThrottleError, R> =>
    Effect.withFiber<A, E | AdaptiveThrottleError, R>((fiber) => {
      const key = callOptions === undefined ? undefined : callOptions.key
      const e = key === undefined ? main : entryFor(key, fiber)
      // a window holding only accepts cannot reject, now or later: no clock read, no coin
      if (engine.mayReject(e.window)) {
        const now = nowOf(fiber)
        const p = engine.rejectProbability(e.window, now, config)
        if (p > 0 && fiber.getRef(Random.Random).nextDoubleUnsafe() < p) {
          return Exit.fail(rejected(fiber, e, p, now, e.window.requests, e.window.accepts))
        }
      }
      counters.admitted++
      e.running++
      return Frame.observed<A, E, R>(fiber, self, observerFor(e, callOptions))
    })

  // ---- with a store: the fleet's totals of the key plus the counts since, while the last sync succeeded
  let online = false
  const fleetView = (s: Shared | undefined): s is Shared => s !== undefined && online && s.fAt >= 0
  const throttleShared = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions?: ThrottleOptions<A, E> | undefined
  ): Effect.Effect<A, E | AdaptiveThrottleError, R> =>
    Effect.withFiber<A, E | AdaptiveThrottleError, R>((fiber) => {
      const key = callOptions === undefined ? undefined : callOptions.key
      const e = key === undefined ? main : entryFor(key, fiber)
      const s = e.shared
      const fleet = fleetView(s)
      const requests = fleet ? s.fRequests + s.pRequests + s.dRequests : e.window.requests
      const accepts = fleet ? s.fAccepts + s.pAccepts + s.dAccepts : e.window.accepts
      if (requests !== accepts) {
        const now = nowOf(fiber)
        const p = fleet
          ? engine.probability(requests, accepts, config)
          : engine.rejectProbability(e.window, now, config)
        if (p > 0 && fiber.getRef(Random.Random).nextDoubleUnsafe() < p) {
          const error = fleet
            ? rejected(fiber, e, p, now, requests, accepts)
            : rejected(fiber, e, p, now, e.window.requests, e.window.accepts)
          if (s !== undefined) s.dRequests++
          return Exit.fail(error)
        }
      }
      counters.admitted++
      e.running++
      return Frame.observed<A, E, R>(fiber, self, observerFor(e, callOptions))
    })

  const sharedOf = (key: string): Shared | undefined => (key === name ? main : entries.get(key))?.shared
  const member: FleetMember = {
    name,
    options,
    take: (max, now) => {
      const reports: Array<FleetCounts> = []
      const reported = new Set<Shared>()
      const stale: Array<{ readonly key: string; readonly s: Shared }> = []
      for (const e of [main, ...entries.values()]) {
        const s = e.shared
        if (s === undefined) continue
        // a fleet view not refreshed for a whole window says nothing any more
        if (s.fAt >= 0 && now - s.fAt >= config.windowMillis) s.fAt = -1
        if (s.dRequests > 0 && reports.length < max) {
          const delta = Fleet.pushable(
            { requests: s.dRequests, accepts: s.dAccepts },
            engine.counts(e.window, now, config)
          )
          s.dRequests = 0
          s.dAccepts = 0
          // counts the window no longer holds (kept through failed syncs) are not reported
          if (delta.requests > 0) {
            s.pRequests = delta.requests
            s.pAccepts = delta.accepts
            reports.push({ key: e.key, requests: delta.requests, accepts: delta.accepts })
            reported.add(s)
            continue
          }
        }
        // a fleet view that may reject is refreshed (after a failed sync, every one: the throttle goes back to them)
        if (s.fAt >= 0 && (!online || s.fRequests !== s.fAccepts)) stale.push({ key: e.key, s })
      }
      stale.sort((a, b) => a.s.fAt - b.s.fAt)
      for (const { key, s } of stale) {
        if (reports.length >= max) break
        if (!reported.has(s)) reports.push({ key, requests: 0, accepts: 0 })
      }
      return reports
    },
    apply: (totals, now) => {
      for (const t of totals) {
        const s = sharedOf(t.key)
        if (s === undefined) continue
        s.fRequests = t.requests
        s.fAccepts = Math.min(t.accepts, t.requests)
        s.fAt = now
        s.pRequests = 0
        s.pAccepts = 0
      }
      online = true
    },
    failed: (reported) => {
      for (const r of reported) {
        const s = sharedOf(r.key)
        if (s === undefined) continue
        s.dRequests += s.pRequests
        s.dAccepts += s.pAccepts
        s.pRequests = 0
        s.pAccepts = 0
      }
      online = false
    }
  }

  // ---- reading
  const stateOfEntry = (e: Entry, now: number): KeyState => {
    const local = engine.counts(e.window, now, config)
    const s = e.shared
    const fleet = fleetView(s)
    const requests = fleet ? s.fRequests + s.pRequests + s.dRequests : local.requests
    const accepts = fleet ? s.fAccepts + s.pAccepts + s.dAccepts : local.accepts
    return { key: e.key, requests, accepts, probability: engine.probability(requests, accepts, config) }
  }
  const stateOf = (key: string | undefined, now: number): KeyState => {
    const e = key === undefined || key === name ? main : entries.get(key)
    return e === undefined ? { key: key ?? name, requests: 0, accepts: 0, probability: 0 } : stateOfEntry(e, now)
  }
  const statesAt = (now: number): ReadonlyArray<KeyState> => {
    const states = [stateOfEntry(main, now)]
    for (const e of entries.values()) states.push(stateOfEntry(e, now))
    return states
  }
  const highestProbability = (): number => {
    const now = clock.currentTimeMillisUnsafe()
    let highest = stateOfEntry(main, now).probability
    for (const e of entries.values()) {
      const p = stateOfEntry(e, now).probability
      if (p > highest) highest = p
    }
    return highest
  }

  // metrics, read when exported
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  const spec = Telemetry.adaptiveThrottle
  registrar.counter(spec.decisions, { ...base, [Telemetry.attributes.outcome]: "admitted" }, () => counters.admitted)
  registrar.counter(spec.decisions, { ...base, [Telemetry.attributes.outcome]: "throttled" }, () => counters.throttled)
  for (const outcome of ["accepted", "not_accepted", "ignored"] as const) {
    registrar.counter(spec.results, { ...base, [Telemetry.attributes.outcome]: outcome }, () => counters[outcome])
  }
  registrar.gauge(spec.probability, base, highestProbability)
  registrar.gauge(spec.keys, base, () => entries.size)
  const close = Effect.andThen(
    hub.end,
    Effect.sync(() => {
      registrar.removeAll()
      tick?.close()
    })
  )

  const service = AdaptiveThrottle.of({
    [TypeId]: TypeId,
    name,
    options,
    throttle: shared ? throttleShared : throttleCall,
    state: (key) => Clock.clockWith((c) => Effect.sync(() => stateOf(key, c.currentTimeMillisUnsafe()))),
    states: Clock.clockWith((c) => Effect.sync(() => statesAt(c.currentTimeMillisUnsafe()))),
    stats: Effect.sync(() => ({
      admitted: counters.admitted,
      throttled: counters.throttled,
      accepted: counters.accepted,
      notAccepted: counters.not_accepted,
      ignored: counters.ignored,
      keys: entries.size
    })),
    subscribe: hub.subscribe,
    events: hub.events
  })
  return { service, close, member }
}
