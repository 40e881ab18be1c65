/**
 * Client-side load balancing: spread calls over a set of endpoints (the
 * replicas of a service), follow the set as discovery changes it, and stop
 * sending calls to the endpoints that fail more than the others (outlier
 * ejection, as Envoy does it).
 *
 * `LoadBalancer.call(lb, (endpoint) => effect)` picks an endpoint, runs the
 * effect made for it, and records how the call ended: whether it failed, the
 * calls it had in flight, and its latency when calls are timed (`peakEwma`,
 * or `recordLatency: true`). The endpoints are any values with a
 * stable string `id` (and an optional `weight`, `zone` and `metadata`), given
 * as a list, or as a `Stream` (or a `SubscriptionRef`) of sets applied as
 * they arrive.
 *
 * **Details**
 *
 * - Strategies: `roundRobin` (nginx's smooth weighted round robin),
 *   `random` (weighted), `leastRequests` (power of two choices on the calls
 *   in flight, Envoy's least request), `peakEwma` (power of two choices on
 *   latency × (in flight + 1), Finagle's and linkerd's) and `ringHash`
 *   (consistent hashing of a per-call `key`, optionally with bounded load).
 *   Randomness comes from Effect's `Random` service.
 * - Outlier ejection: an endpoint is ejected after `consecutiveFailures`
 *   failures in a row, or every `interval` when its success rate is below
 *   the mean minus `successRateStdevFactor` standard deviations of the
 *   others'. It is ejected for `baseEjectionTime` × its ejection count (at
 *   most `maxEjectionTime`), and never more than `maxEjectionPercent` of the
 *   set at once. An ejection ends by the clock: it is read when a call picks,
 *   with no timer per endpoint. Below `panicThreshold` % of endpoints not
 *   ejected, calls go to every endpoint (Envoy's panic mode).
 * - Discovery: endpoints that disappear get no new calls, their calls in
 *   flight finish; endpoints that stay keep their statistics and ejections.
 * - No endpoint to pick: one typed error, `LoadBalancerError`, whose reason
 *   is `NoEndpoints` or `AllEjected` (with a `retryAfter`: when the earliest
 *   ejection ends), built without a stack trace.
 * - Monitoring: `events` (ejections, returns, set changes, rejections),
 *   metrics named in `Telemetry.loadBalancer` (by balancer name, never by
 *   endpoint), and `stats` with every endpoint's state.
 *
 * **Gotchas**
 *
 * - The statistics live in this process: each replica of a client ejects on
 *   what it saw.
 * - A call's failure counts against the endpoint that ran it: put retries
 *   *outside* `call` so that each attempt picks again, passing the endpoints
 *   tried so far as `avoid` (and a timeout inside, so a hung endpoint counts
 *   as failing).
 *
 * **Example** (Round robin over three endpoints)
 *
 * ```ts import.meta.vitest
 * import { LoadBalancer } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const lb = yield* LoadBalancer.make({
 *     name: "users",
 *     strategy: "roundRobin",
 *     endpoints: [{ id: "a" }, { id: "b" }, { id: "c" }]
 *   })
 *   const call = LoadBalancer.call(lb, (endpoint) => Effect.succeed(endpoint.id))
 *   return yield* Effect.all([call, call, call, call])
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["a", "b", "c", "a"]
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
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Tracer from "effect/Tracer"
import * as ClockTimer from "./internal/clockTimer.ts"
import { dualBy } from "./internal/dual.ts"
import * as Hub from "./internal/events.ts"
import { construct } from "./internal/fastError.ts"
import * as Frame from "./internal/frame.ts"
import * as engine from "./internal/loadBalancer.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Now from "./internal/now.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of `LoadBalancer` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/LoadBalancer"

/**
 * Type-level identifier of `LoadBalancer` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/LoadBalancer"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * What a load balancer balances over: any value with a stable `id` (the
 * identity that statistics and ejections follow across discovery updates).
 *
 * @category models
 * @since 0.1.0
 */
export interface Endpoint {
  /** Stable and unique within a set: `10.0.0.7:8080`, a pod name. */
  readonly id: string
  /** A positive finite number, 1 by default: the endpoint's share of the calls relative to the others. */
  readonly weight?: number | undefined
  /** Where it runs (reported in `stats`). */
  readonly zone?: string | undefined
  /** Anything else the caller needs to reach it. */
  readonly metadata?: Readonly<Record<string, string>> | undefined
}

/**
 * Where the endpoints come from: a fixed list, a `Stream` of sets (each
 * replaces the last), or a `SubscriptionRef` holding the current set.
 *
 * @category models
 * @since 0.1.0
 */
export type Source<E extends Endpoint, R = never> =
  | Iterable<E>
  | Stream.Stream<Iterable<E>, unknown, R>
  | SubscriptionRef.SubscriptionRef<ReadonlyArray<E>>

/**
 * A load balancer over endpoints of type `E`.
 *
 * @category models
 * @since 0.1.0
 */
export interface LoadBalancer<E extends Endpoint = Endpoint> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Picks an endpoint and runs `f`'s effect for it; see {@link call}. */
  readonly call: <A, Err, R>(
    f: (endpoint: E) => Effect.Effect<A, Err, R>,
    options?: CallOptions<A, Err> | undefined
  ) => Effect.Effect<A, Err | LoadBalancerError, R>
  /** Replaces the set (as a discovery update does); fails, changing nothing, when an endpoint is invalid. */
  readonly update: (endpoints: Iterable<E>) => Effect.Effect<void, Options_.InvalidOptions>
  /** The current set. */
  readonly endpoints: Effect.Effect<ReadonlyArray<E>>
  /** Every endpoint's state now (the set's, then those removed with calls still in flight). */
  readonly stats: Effect.Effect<Stats<E>>
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the load balancer `layer` and `layerConfig` provide
 * (over plain `Endpoint`s; for your own endpoint type, make a tag of
 * `LoadBalancer<YourEndpoint>` and provide it with `Layer.effect(tag, make(…))`).
 *
 * @category services
 * @since 0.1.0
 */
export const LoadBalancer: Context.Service<LoadBalancer, LoadBalancer> = Context.Service<LoadBalancer>(TypeId)

/**
 * Whether a value is a load balancer.
 *
 * @category guards
 * @since 0.1.0
 */
export const isLoadBalancer = (u: unknown): u is LoadBalancer<never> =>
  typeof u === "object" && u !== null && TypeId in u

/**
 * Per-call options of `call`: the hash key, and how to classify the
 * outcome. Predicates here run before the balancer-wide ones.
 *
 * @category models
 * @since 0.1.0
 */
export interface CallOptions<A, E> {
  /** The key `ringHash` hashes (a user id, a cache key); without one a `ringHash` call goes to a random endpoint. */
  readonly key?: string | undefined
  /** A typed error that counts as a failure of the endpoint (default: every error). */
  readonly isFailure?: ((error: E) => boolean) | undefined
  /** A typed error that counts as nothing: neither success nor failure (a `NotFound`, say). */
  readonly isIgnored?: ((error: E) => boolean) | undefined
  /** A success value that counts as a failure (a 503 response, say). */
  readonly isFailureResult?: ((value: A) => boolean) | undefined
  /**
   * Endpoint ids to pass over when another eligible endpoint is left: a
   * retry's earlier endpoints (Envoy's `previous_hosts`). A preference, not
   * a filter: when every eligible endpoint is avoided, one of them is picked.
   */
  readonly avoid?: ReadonlySet<string> | undefined
}

/**
 * How a balancer picks.
 *
 * @category models
 * @since 0.1.0
 */
export type Strategy = "roundRobin" | "random" | "leastRequests" | "peakEwma" | "ringHash"

/**
 * One endpoint's state, for dashboards.
 *
 * @category models
 * @since 0.1.0
 */
export interface EndpointStats<E extends Endpoint = Endpoint> {
  readonly id: string
  readonly endpoint: E
  readonly weight: number
  readonly zone: string | undefined
  /** `active` (in the set), `ejected` (in the set, ejected), `draining` (removed, calls still in flight). */
  readonly state: "active" | "ejected" | "draining"
  readonly inFlight: number
  /**
   * The peak EWMA of its latency, decayed to now; undefined before its first
   * call ended. Measured only with `recordLatency` or the `peakEwma`
   * strategy: 0 otherwise.
   */
  readonly latency: Duration.Duration | undefined
  /** Calls that succeeded and failed since it joined (ignored and interrupted ones aside). */
  readonly successes: number
  readonly failures: number
  readonly consecutiveFailures: number
  /** Times it was ejected since it joined. */
  readonly ejections: number
  /** What is left of its ejection, when ejected. */
  readonly ejectedFor: Duration.Duration | undefined
}

/**
 * A balancer's state and what it has done.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats<E extends Endpoint = Endpoint> {
  /** Endpoints in the set. */
  readonly endpoints: number
  /** Endpoints of the set ejected now. */
  readonly ejected: number
  /** Whether calls go to every endpoint, ejected or not (fewer than `panicThreshold` % left). */
  readonly panic: boolean
  /** Calls in flight, draining endpoints included. */
  readonly inFlight: number
  /** Calls by outcome since the start. */
  readonly successes: number
  readonly failures: number
  readonly ignored: number
  readonly rejected: number
  /** Every endpoint: the set's, in order, then the draining ones. */
  readonly hosts: ReadonlyArray<EndpointStats<E>>
}

/**
 * The balancer's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.EndpointEjected | Event.EndpointReturned | Event.EndpointsChanged | Event.Rejected

/**
 * The members of {@link Event}.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * An endpoint was ejected: it gets no calls (outside panic mode) for `duration`.
   *
   * @category models
   * @since 0.1.0
   */
  export interface EndpointEjected {
    readonly _tag: "EndpointEjected"
    readonly balancer: string
    readonly endpoint: string
    readonly reason: "ConsecutiveFailures" | "SuccessRate"
    readonly duration: Duration.Duration
    /** Its ejection multiplier (ejections in a row, decaying by one per `interval` back in service). */
    readonly multiplier: number
    /** For `SuccessRate`: its success rate in the interval and the threshold it fell below. */
    readonly successRate: number | undefined
    readonly threshold: number | undefined
    /** Endpoints ejected now, this one included, and in the set. */
    readonly ejected: number
    readonly endpoints: number
  }
  /**
   * An ejected endpoint's time was up: it is back in service (noticed by the
   * first call or interval evaluation after its ejection ended).
   *
   * @category models
   * @since 0.1.0
   */
  export interface EndpointReturned {
    readonly _tag: "EndpointReturned"
    readonly balancer: string
    readonly endpoint: string
    /** How long it had been ejected for. */
    readonly ejectedFor: Duration.Duration
  }
  /**
   * The set changed (a discovery update, or `update`).
   *
   * @category models
   * @since 0.1.0
   */
  export interface EndpointsChanged {
    readonly _tag: "EndpointsChanged"
    readonly balancer: string
    readonly added: ReadonlyArray<string>
    readonly removed: ReadonlyArray<string>
    /** Endpoints in the set now. */
    readonly endpoints: number
  }
  /**
   * A call found no endpoint to pick and failed with `LoadBalancerError`.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Rejected {
    readonly _tag: "Rejected"
    readonly balancer: string
    readonly reason: LoadBalancerErrorReason["_tag"]
    readonly retryAfter: Duration.Duration | undefined
  }
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const Percent = Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 100 }))

const defaults = {
  name: "default",
  strategy: "roundRobin",
  consecutiveFailures: 5,
  enforcingConsecutiveFailures: 100,
  interval: Duration.seconds(10),
  baseEjectionTime: Duration.seconds(30),
  maxEjectionTime: Duration.seconds(300),
  maxEjectionPercent: 10,
  minAvailable: 1,
  enforcingSuccessRate: 100,
  successRateMinimumHosts: 5,
  successRateRequestVolume: 100,
  successRateStdevFactor: 1.9,
  panicThreshold: 50,
  recordLatency: false,
  latencyDecay: Duration.seconds(10),
  virtualNodes: 160
} as const

/**
 * The balancer's options: the source of the type, the rules, `layerConfig`
 * and the generated Defaults table. The outlier-detection fields and their
 * defaults are Envoy's (`success_rate_stdev_factor` 1900 there is 1.9 here).
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the balancer: the `resilience.name` metric attribute.",
      default: defaults.name
    })
  ),
  strategy: Schema.optionalKey(
    Schema.Literals(["roundRobin", "random", "leastRequests", "peakEwma", "ringHash"]).annotate({
      description:
        "How an endpoint is picked: smooth weighted round robin, weighted random, power of two choices on calls in flight, on latency × (in flight + 1), or a consistent-hash ring over the call's `key`.",
      default: defaults.strategy
    })
  ),
  consecutiveFailures: Schema.optionalKey(
    NonNegativeInt.annotate({
      description: "Failures in a row that eject an endpoint; 0 turns this detection off.",
      default: defaults.consecutiveFailures
    })
  ),
  enforcingConsecutiveFailures: Schema.optionalKey(
    Percent.annotate({
      description: "Chance, in %, that an endpoint detected by consecutive failures is actually ejected.",
      default: defaults.enforcingConsecutiveFailures
    })
  ),
  interval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "Time between evaluations: success-rate ejection, the return of endpoints whose ejection ended, the decay of ejection multipliers; above zero.",
      default: defaults.interval
    })
  ),
  baseEjectionTime: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "An ejection lasts this times the endpoint's ejection multiplier; above zero.",
      default: defaults.baseEjectionTime
    })
  ),
  maxEjectionTime: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "The longest an ejection lasts; at least `baseEjectionTime`.",
      default: defaults.maxEjectionTime
    })
  ),
  maxEjectionPercent: Schema.optionalKey(
    Percent.annotate({
      description:
        "The most endpoints ejected at once, in % of the set (rounded down, but at least one when above 0, as in Envoy); 0 turns ejection off.",
      default: defaults.maxEjectionPercent
    })
  ),
  minAvailable: Schema.optionalKey(
    NonNegativeInt.annotate({
      description: "Endpoints an ejection always leaves in service; 0 lets every endpoint be ejected.",
      default: defaults.minAvailable
    })
  ),
  enforcingSuccessRate: Schema.optionalKey(
    Percent.annotate({
      description: "Chance, in %, that a success-rate outlier is actually ejected; 0 turns success-rate ejection off.",
      default: defaults.enforcingSuccessRate
    })
  ),
  successRateMinimumHosts: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Endpoints with `successRateRequestVolume` calls in an interval needed for success-rate ejection.",
      default: defaults.successRateMinimumHosts
    })
  ),
  successRateRequestVolume: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Calls an endpoint needs in an interval to count in (and be ejected by) success-rate ejection.",
      default: defaults.successRateRequestVolume
    })
  ),
  successRateStdevFactor: Schema.optionalKey(
    Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)).annotate({
      description: "Endpoints whose success rate is below the mean minus this many standard deviations are ejected.",
      default: defaults.successRateStdevFactor
    })
  ),
  panicThreshold: Schema.optionalKey(
    Percent.annotate({
      description:
        "Below this % of endpoints in service, calls go to every endpoint, ejected or not (panic mode); 0 turns it off.",
      default: defaults.panicThreshold
    })
  ),
  recordLatency: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "Time every call for its endpoint's latency EWMA (in `stats` and on the dashboard): two monotonic clock reads a call. On regardless with `peakEwma`, which picks by it; off otherwise, and the latency then stays 0.",
      default: defaults.recordLatency
    })
  ),
  latencyDecay: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How fast the latency EWMA forgets (`peakEwma`; Finagle's decay time); above zero.",
      default: defaults.latencyDecay
    })
  ),
  virtualNodes: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65_536 })).annotate({
      description: "`ringHash`: points on the ring per unit of weight (an endpoint of weight 1 has this many).",
      default: defaults.virtualNodes
    })
  ),
  boundedLoad: Schema.optionalKey(
    Schema.Number.check(Schema.isGreaterThanOrEqualTo(1)).annotate({
      description:
        "`ringHash`: a key whose endpoint has more than this factor × the mean calls in flight goes on to the next one (consistent hashing with bounded loads); unbounded when absent."
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` takes them: durations as any `Duration.Input`, plus the
 * endpoints and the balancer-wide classification (programmatic only).
 *
 * @category options
 * @since 0.1.0
 */
export interface Input<E extends Endpoint = Endpoint, R = never> {
  readonly name?: string | undefined
  readonly strategy?: Strategy | undefined
  readonly consecutiveFailures?: number | undefined
  readonly enforcingConsecutiveFailures?: number | undefined
  readonly interval?: Duration.Input | undefined
  readonly baseEjectionTime?: Duration.Input | undefined
  readonly maxEjectionTime?: Duration.Input | undefined
  readonly maxEjectionPercent?: number | undefined
  readonly minAvailable?: number | undefined
  readonly enforcingSuccessRate?: number | undefined
  readonly successRateMinimumHosts?: number | undefined
  readonly successRateRequestVolume?: number | undefined
  readonly successRateStdevFactor?: number | undefined
  readonly panicThreshold?: number | undefined
  readonly recordLatency?: boolean | undefined
  readonly latencyDecay?: Duration.Input | undefined
  readonly virtualNodes?: number | undefined
  readonly boundedLoad?: number | undefined
  /** The endpoints: a list, or a `Stream` / `SubscriptionRef` of sets (default: none until `update`). */
  readonly endpoints?: Source<E, R> | undefined
  /** Balancer-wide: an error that counts as a failure of the endpoint (default: every error). */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /** Balancer-wide: an error that counts as nothing. */
  readonly isIgnored?: ((error: unknown) => boolean) | undefined
  /** Balancer-wide: a success value that counts as a failure. */
  readonly isFailureResult?: ((value: unknown) => boolean) | undefined
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly strategy: Strategy
  readonly consecutiveFailures: number
  readonly enforcingConsecutiveFailures: number
  readonly interval: Duration.Duration
  readonly baseEjectionTime: Duration.Duration
  readonly maxEjectionTime: Duration.Duration
  readonly maxEjectionPercent: number
  readonly minAvailable: number
  readonly enforcingSuccessRate: number
  readonly successRateMinimumHosts: number
  readonly successRateRequestVolume: number
  readonly successRateStdevFactor: number
  readonly panicThreshold: number
  /** As given (default false); latency is recorded when this is true or the strategy is `peakEwma`. */
  readonly recordLatency: boolean
  readonly latencyDecay: Duration.Duration
  readonly virtualNodes: number
  /** 0: unbounded. */
  readonly boundedLoad: number
}

const durationFields = ["interval", "baseEjectionTime", "maxEjectionTime", "latencyDecay"] as const

const rules: ReadonlyArray<Options_.Rule> = [
  ...durationFields.map(Options_.positiveDuration),
  (o) => {
    const base = Duration.isDuration(o.baseEjectionTime) ? o.baseEjectionTime : defaults.baseEjectionTime
    const max = o.maxEjectionTime
    return Duration.isDuration(max) && Duration.toMillis(max) < Duration.toMillis(base)
      ? [{ path: "maxEjectionTime", message: "Expected a duration at least baseEjectionTime" }]
      : []
  }
]

const programmatic = new Set(["endpoints", "isFailure", "isIgnored", "isFailureResult"])

/**
 * Validates options: succeeds with them resolved (defaults applied), or fails
 * with one `Options.InvalidOptions` listing every bad field and its value.
 * The endpoints are checked by `make` (each needs a non-empty, unique `id`
 * and a positive finite `weight`, when it has one).
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { LoadBalancer } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(LoadBalancer.validateOptions({ maxEjectionPercent: 150, interval: 0 }))
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["maxEjectionPercent", "interval"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = <E extends Endpoint, R>(
  input: Input<E, R> = {}
): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) if (!programmatic.has(key)) plain[key] = value
  const { issues, normalized } = Options_.normalizeDurations(plain, durationFields)
  return Effect.map(
    Options_.validate("LoadBalancer", Options, normalized, rules, issues),
    (o: Options): ResolvedOptions => ({ ...Options_.withDefaults(o, defaults), boundedLoad: o.boundedLoad ?? 0 })
  )
}

/**
 * The Defaults table of the options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

const isRefSource = <E extends Endpoint, R>(
  source: Source<E, R>
): source is SubscriptionRef.SubscriptionRef<ReadonlyArray<E>> => SubscriptionRef.isSubscriptionRef(source)

const isStreamSource = <E extends Endpoint, R>(
  source: Source<E, R>
): source is Stream.Stream<Iterable<E>, unknown, R> => Stream.isStream(source)

/** The endpoints of a set that are valid (the first of each id), and an issue for each one that is not. */
const checkEndpoints = <E extends Endpoint>(
  endpoints: Iterable<E>
): { readonly valid: ReadonlyArray<E>; readonly issues: ReadonlyArray<Options_.Issue> } => {
  const valid: Array<E> = []
  const issues: Array<Options_.Issue> = []
  const seen = new Set<string>()
  let i = 0
  for (const endpoint of endpoints) {
    const at = `endpoints.${i++}`
    const id: unknown = endpoint?.id
    const weight: unknown = endpoint?.weight
    if (typeof id !== "string" || id.length === 0) {
      issues.push(
        new Options_.Issue({
          path: `${at}.id`,
          value: Options_.renderValue(id),
          message: "Expected a non-empty string"
        })
      )
      continue
    }
    if (seen.has(id)) {
      issues.push(
        new Options_.Issue({ path: `${at}.id`, value: Options_.renderValue(id), message: "Expected a unique id" })
      )
      continue
    }
    if (weight !== undefined && !(typeof weight === "number" && Number.isFinite(weight) && weight > 0)) {
      issues.push(
        new Options_.Issue({
          path: `${at}.weight`,
          value: Options_.renderValue(weight),
          message: "Expected a finite number greater than zero"
        })
      )
      continue
    }
    seen.add(id)
    valid.push(endpoint)
  }
  return { valid, issues }
}

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/**
 * A call rejected because the set is empty (discovery has not delivered one
 * yet, or delivered an empty one). The call did not run.
 *
 * @category errors
 * @since 0.1.0
 */
export class NoEndpoints extends Schema.TaggedError<NoEndpoints>("@effect-resilience/core/LoadBalancer/NoEndpoints")(
  "NoEndpoints",
  {
    balancer: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "No endpoints"
  }
}

/**
 * A call rejected because every endpoint is ejected (possible with
 * `minAvailable: 0` and panic mode off, or when discovery removed the
 * endpoints in service). The call did not run.
 *
 * @category errors
 * @since 0.1.0
 */
export class AllEjected extends Schema.TaggedError<AllEjected>("@effect-resilience/core/LoadBalancer/AllEjected")(
  "AllEjected",
  {
    balancer: Schema.String,
    /** Endpoints in the set (all ejected). */
    endpoints: Schema.Number,
    /** When the earliest ejection ends. */
    retryAfter: Schema.DurationFromMillis
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Every endpoint is ejected"
  }
}

/**
 * The reasons a `LoadBalancerError` carries.
 *
 * @category errors
 * @since 0.1.0
 */
export type LoadBalancerErrorReason = NoEndpoints | AllEjected

/**
 * Runtime identifier of `LoadBalancerError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/LoadBalancer/LoadBalancerError"

/**
 * Type-level identifier of `LoadBalancerError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/LoadBalancer/LoadBalancerError"

/**
 * The one error `call` adds; `reason` says why no endpoint was picked.
 *
 * **Example** (Every endpoint ejected)
 *
 * ```ts import.meta.vitest
 * import { LoadBalancer } from "@effect-resilience/core"
 * import { Duration, Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const lb = yield* LoadBalancer.make({
 *     endpoints: [{ id: "only" }],
 *     consecutiveFailures: 1,
 *     maxEjectionPercent: 100,
 *     minAvailable: 0, // let the last endpoint go
 *     panicThreshold: 0 // and do not fall back to it
 *   })
 *   yield* Effect.flip(LoadBalancer.call(lb, () => Effect.fail("boom")))
 *   return yield* LoadBalancer.call(lb, () => Effect.succeed("ran")).pipe(
 *     Effect.catchReason("LoadBalancerError", "AllEjected", (reason) =>
 *       Effect.succeed(`retry in about ${Math.round(Duration.toSeconds(reason.retryAfter))}s`)
 *     )
 *   )
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => "retry in about 30s"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class LoadBalancerError extends Schema.TaggedError<LoadBalancerError>(ErrorTypeId)("LoadBalancerError", {
  reason: Schema.Union([NoEndpoints, AllEjected])
}) {
  /**
   * Brand for the `isLoadBalancerError` guard.
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
 * Whether a value is a `LoadBalancerError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isLoadBalancerError = (u: unknown): u is LoadBalancerError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

/**
 * Whether a value is a transient rejection (`AllEjected`, which ends with the
 * earliest ejection): the predicate for `Retry`'s `while` option, which
 * honours its `retryAfter`. `NoEndpoints` is not: nothing says when
 * discovery will deliver.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection = (u: unknown): u is LoadBalancerError & { readonly reason: AllEjected } =>
  isLoadBalancerError(u) && u.reason._tag === "AllEjected"

// ---------------------------------------------------------------------------
// constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a load balancer that lives as long as the scope (its evaluation and
 * discovery fibers, event streams and metrics end with it). Fails with
 * `Options.InvalidOptions` listing every bad option, and every bad endpoint
 * of a fixed list (`endpoints.<i>.id`, `endpoints.<i>.weight`).
 *
 * **Details**
 *
 * - From a `SubscriptionRef`, its current set is applied before `make`
 *   returns; from a `Stream`, each set is applied when it arrives (until
 *   the first one, calls fail with `NoEndpoints`). An invalid endpoint in a
 *   discovered set is left out, with a warning logged; a failing stream is
 *   logged and the last set stays.
 *
 * **Example** (Following discovery)
 *
 * ```ts import.meta.vitest
 * import { LoadBalancer } from "@effect-resilience/core"
 * import { Effect, SubscriptionRef } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const discovered = yield* SubscriptionRef.make<ReadonlyArray<LoadBalancer.Endpoint>>([{ id: "a" }])
 *   const lb = yield* LoadBalancer.make({ endpoints: discovered })
 *   const before = yield* LoadBalancer.call(lb, (endpoint) => Effect.succeed(endpoint.id))
 *   yield* SubscriptionRef.set(discovered, [{ id: "b" }])
 *   yield* Effect.yieldNow
 *   const after = yield* LoadBalancer.call(lb, (endpoint) => Effect.succeed(endpoint.id))
 *   return [before, after]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["a", "b"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: <E extends Endpoint = Endpoint, R = never>(
  input?: Input<E, R> | undefined
) => Effect.Effect<LoadBalancer<E>, Options_.InvalidOptions, Scope.Scope | R> = Effect.fnUntraced(function* <
  E extends Endpoint,
  R
>(input?: Input<E, R> | undefined) {
  const options = yield* validateOptions(input ?? {})
  const source = input?.endpoints
  let initial: ReadonlyArray<E> = []
  let stream: Stream.Stream<Iterable<E>, unknown, R> | undefined
  if (source === undefined) {
    initial = []
  } else if (isRefSource(source)) {
    initial = checkEndpoints(SubscriptionRef.getUnsafe(source)).valid
    stream = SubscriptionRef.changes(source)
  } else if (isStreamSource(source)) {
    stream = source
  } else {
    const checked = checkEndpoints(source)
    if (checked.issues.length > 0) {
      return yield* new Options_.InvalidOptions({ pattern: "LoadBalancer", issues: checked.issues })
    }
    initial = checked.valid
  }
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const { close, evaluate, service, discover } = makeWith<E>(options, input ?? {}, context, initial)
  const outliers = options.consecutiveFailures > 0 || options.enforcingSuccessRate > 0
  if (outliers && options.maxEjectionPercent > 0) {
    const tick = Effect.withFiber((fiber) => {
      evaluate(fiber)
      return Effect.void
    })
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(options.interval), tick)), scope)
  }
  if (stream !== undefined) {
    yield* Effect.forkIn(
      Stream.runForEach(stream, discover).pipe(
        Effect.catchCause((cause) =>
          Effect.logWarning(`LoadBalancer ${options.name}: discovery stream failed; keeping the last set`, cause)
        )
      ),
      scope
    )
  }
  yield* Scope.addFinalizer(scope, close)
  return service
})

/**
 * Provides `LoadBalancer` (over plain `Endpoint`s) for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <R = never>(
  input?: Input<Endpoint, R> | undefined
): Layer.Layer<LoadBalancer, Options_.InvalidOptions, R> => Layer.effect(LoadBalancer, make<Endpoint, R>(input))

/**
 * Provides `LoadBalancer` with options read from `Config` under `path`
 * (environment variables such as `users_strategy=leastRequests` with the
 * default provider), every option defaulted and the name defaulting to
 * `path`; the endpoints and classification are given in code. Bad values
 * fail with one `Options.InvalidOptions` naming each field and the text it
 * held.
 *
 * **Example** (Options from the environment, endpoints from code)
 *
 * ```ts import.meta.vitest
 * import { LoadBalancer } from "@effect-resilience/core"
 * import { ConfigProvider, Effect, Layer } from "effect"
 *
 * const env = ConfigProvider.fromEnv({ env: { users_strategy: "leastRequests", users_consecutiveFailures: "3" } })
 * const program = Effect.map(LoadBalancer.LoadBalancer, (lb) => [
 *   lb.name,
 *   lb.options.strategy,
 *   lb.options.consecutiveFailures
 * ]).pipe(
 *   Effect.provide(
 *     LoadBalancer.layerConfig("users", { endpoints: [{ id: "a" }, { id: "b" }] }).pipe(
 *       Layer.provide(ConfigProvider.layer(env))
 *     )
 *   )
 * )
 *
 * await Effect.runPromise(program)
 * // => ["users", "leastRequests", 3]
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = <R = never>(
  path: string,
  program: Pick<Input<Endpoint, R>, "endpoints" | "isFailure" | "isIgnored" | "isFailureResult"> = {}
): Layer.Layer<LoadBalancer, Options_.InvalidOptions | Config.ConfigError, R> =>
  Layer.effect(
    LoadBalancer,
    Effect.flatMap(Options_.fromConfig("LoadBalancer", Options, path), (options: Options) =>
      make<Endpoint, R>({ name: path, ...options, ...program })
    )
  )

// ---------------------------------------------------------------------------
// combinators
// ---------------------------------------------------------------------------

/**
 * Picks an endpoint and runs the effect `f` makes for it, tracking the call
 * in flight and recording how it ended (success or failure, and its latency
 * when calls are timed) for the strategies and the outlier detector. Adds
 * only `LoadBalancerError` (no endpoint to pick; `f` was not called) to the
 * error channel.
 *
 * **Details**
 *
 * - A typed failure counts against the endpoint unless `isIgnored` or
 *   `isFailure` say otherwise (per call first, then balancer-wide); a
 *   success value counts as a failure when `isFailureResult` says so; a
 *   defect is a failure; an interruption is never one (and records no
 *   latency). The call is released however it ends.
 * - `key` is what `ringHash` hashes: the same key goes to the same endpoint
 *   while the set and its ejections stay the same.
 * - `avoid` lists endpoints a retry has already tried: another eligible
 *   endpoint is picked when there is one (the next in rotation, the next on
 *   the ring, a random one by weight), the usual pick otherwise.
 * - A throw from `f` is a defect of the call (no endpoint is charged).
 *
 * **Example** (Power of two choices avoids the busy endpoint)
 *
 * ```ts import.meta.vitest
 * import { LoadBalancer } from "@effect-resilience/core"
 * import { Deferred, Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const lb = yield* LoadBalancer.make({ strategy: "leastRequests", endpoints: [{ id: "a" }, { id: "b" }] })
 *   const gate = yield* Deferred.make<void>()
 *   // one call holds an endpoint
 *   yield* Effect.forkChild(LoadBalancer.call(lb, () => Deferred.await(gate)))
 *   yield* Effect.yieldNow
 *   const busy = (yield* lb.stats).hosts.find((host) => host.inFlight === 1)?.id
 *   // with two endpoints, both are the candidates: the idle one wins
 *   const picked = yield* LoadBalancer.call(lb, (endpoint) => Effect.succeed(endpoint.id))
 *   yield* Deferred.succeed(gate, undefined)
 *   return picked !== busy
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => true
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const call: {
  /**
   * Runs a call on a picked endpoint (data-last: `Effect.flatMap(LoadBalancer.LoadBalancer, LoadBalancer.call(f))`).
   *
   * @since 0.1.0
   */
  <E extends Endpoint, A, Err, R>(
    f: (endpoint: E) => Effect.Effect<A, Err, R>,
    options?: CallOptions<A, Err> | undefined
  ): (lb: LoadBalancer<E>) => Effect.Effect<A, Err | LoadBalancerError, R>
  /**
   * Runs a call on a picked endpoint (data-first).
   *
   * @since 0.1.0
   */
  <E extends Endpoint, A, Err, R>(
    lb: LoadBalancer<E>,
    f: (endpoint: E) => Effect.Effect<A, Err, R>,
    options?: CallOptions<A, Err> | undefined
  ): Effect.Effect<A, Err | LoadBalancerError, R>
} = dualBy(
  isLoadBalancer,
  <E extends Endpoint, A, Err, R>(
    lb: LoadBalancer<E>,
    f: (endpoint: E) => Effect.Effect<A, Err, R>,
    options?: CallOptions<A, Err> | undefined
  ): Effect.Effect<A, Err | LoadBalancerError, R> => lb.call(f, options)
)

// ---------------------------------------------------------------------------
// the implementation
// ---------------------------------------------------------------------------

/** A host of the pool with the endpoint it stands for. */
interface Member<E> extends engine.Host {
  endpoint: E
  /** Out of the set (its calls in flight drain). */
  removed: boolean
  /** The continuation of its untimed calls without per-call predicates, shared (made on first use). */
  observer: CallObserver<unknown, unknown> | undefined
}

type Finish = <A, Err>(
  member: Member<unknown>,
  start: number,
  options: CallOptions<A, Err> | undefined,
  exit: Exit.Exit<A, Err>,
  fiber: Fiber.Fiber<unknown, unknown>
) => void

/**
 * The continuation of a call: releases it and records its outcome, however
 * it ends (`internal/frame.ts`). A call that is not timed and has no
 * per-call predicates needs nothing of its own: its endpoint's shared one
 * (`start` 0, no options) serves it.
 */
class CallObserver<A, Err> extends Frame.Observer<A, Err> {
  readonly finish: Finish
  readonly member: Member<unknown>
  readonly start: number
  readonly options: CallOptions<A, Err> | undefined
  constructor(finish: Finish, member: Member<unknown>, start: number, options: CallOptions<A, Err> | undefined) {
    super()
    this.finish = finish
    this.member = member
    this.start = start
    this.options = options
  }
  observe(exit: Exit.Exit<A, Err>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.finish(this.member, this.start, this.options, exit, fiber)
  }
}

const ejectionReason = { ConsecutiveFailures: "consecutive_failures", SuccessRate: "success_rate" } as const
const rejectionReason = { NoEndpoints: "no_endpoints", AllEjected: "all_ejected" } as const

type Classified = engine.Outcome | "interrupted"

/** The balancer itself; `evaluate` runs an interval, `discover` applies a discovered set, `close` ends it. */
const makeWith = <E extends Endpoint>(
  options: ResolvedOptions,
  input: Input<E, unknown>,
  context: Context.Context<never>,
  initial: ReadonlyArray<E>
): {
  readonly service: LoadBalancer<E>
  readonly evaluate: (fiber: Fiber.Fiber<unknown, unknown>) => void
  readonly discover: (endpoints: Iterable<E>) => Effect.Effect<void>
  readonly close: Effect.Effect<void>
} => {
  const { name, strategy, panicThreshold, boundedLoad, virtualNodes } = options
  const config: engine.OutlierConfig = {
    consecutiveFailures: options.consecutiveFailures,
    enforcingConsecutiveFailures: options.enforcingConsecutiveFailures,
    baseEjectionMillis: Duration.toMillis(options.baseEjectionTime),
    maxEjectionMillis: Duration.toMillis(options.maxEjectionTime),
    maxEjectionPercent: options.maxEjectionPercent,
    minAvailable: options.minAvailable,
    successRate: options.enforcingSuccessRate > 0,
    enforcingSuccessRate: options.enforcingSuccessRate,
    successRateMinimumHosts: options.successRateMinimumHosts,
    successRateRequestVolume: options.successRateRequestVolume,
    successRateStdevFactor: options.successRateStdevFactor
  }
  const decayMillis = Duration.toMillis(options.latencyDecay)
  // calls are timed (two clock reads) only when a latency is wanted: peakEwma picks by it
  const timed = options.recordLatency || strategy === "peakEwma"
  const balancerIsFailure = input.isFailure
  const balancerIsIgnored = input.isIgnored
  const balancerIsFailureResult = input.isFailureResult
  // durations and ejections on the monotonic clock when live, on the fiber's clock (a TestClock) otherwise
  const liveTimer = ClockTimer.isLive(Context.get(context, Clock.Clock))
  const nowOf = (fiber: Fiber.Fiber<unknown, unknown>): number =>
    liveTimer ? Now.monotonicMillis() : fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
  const nowHere = (): number => (liveTimer ? Now.monotonicMillis() : Now.currentTimeMillis())

  const pool = engine.makePool<Member<E>>([])
  const draining = new Map<string, Member<E>>()
  const counters = {
    success: 0,
    failure: 0,
    ignored: 0,
    no_endpoints: 0,
    all_ejected: 0,
    consecutive_failures: 0,
    success_rate: 0,
    panic: 0
  }
  const hub = Hub.make<Event>()

  // ---- randomness: the calling fiber's `Random` (seeded in tests), read without allocating
  let rng: Random.Random | undefined
  const random = (): number => (rng === undefined ? 0 : rng.nextDoubleUnsafe())

  // ---- span events
  const spanEvent = (fiber: Fiber.Fiber<unknown, unknown>, event: string, attributes: Record<string, unknown>) => {
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span === undefined || span._tag !== "Span") return
    span.event(event, fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
  }

  // ---- ejections and returns
  const onReturned = (host: engine.Host) => {
    if (hub.listening()) {
      hub.emit({
        _tag: "EndpointReturned",
        balancer: name,
        endpoint: host.id,
        ejectedFor: Duration.millis(Math.max(0, nowHere() - host.ejectedAt))
      })
    }
  }
  const onEjected = (
    host: engine.Host,
    millis: number,
    reason: Event.EndpointEjected["reason"],
    successRate: number | undefined,
    threshold: number | undefined
  ) => {
    counters[ejectionReason[reason]]++
    if (hub.listening()) {
      hub.emit({
        _tag: "EndpointEjected",
        balancer: name,
        endpoint: host.id,
        reason,
        duration: Duration.millis(millis),
        multiplier: host.multiplier,
        successRate,
        threshold,
        ejected: pool.ejected,
        endpoints: pool.hosts.length
      })
    }
  }
  const evaluate = (fiber: Fiber.Fiber<unknown, unknown>) => {
    rng = fiber.getRef(Random.Random)
    const now = nowOf(fiber)
    const { ejections, stats } = engine.evaluateInterval(pool, now, config, random, onReturned)
    for (const e of ejections) onEjected(e.host, e.millis, "SuccessRate", e.successRate, stats?.threshold)
  }

  // ---- the set
  const apply = (endpoints: ReadonlyArray<E>) => {
    const current = new Map<string, Member<E>>()
    for (const m of pool.hosts) current.set(m.id, m)
    const next: Array<Member<E>> = []
    const added: Array<string> = []
    let weightsChanged = false
    for (const endpoint of endpoints) {
      const weight = endpoint.weight ?? 1
      let m = current.get(endpoint.id)
      if (m === undefined) {
        m = draining.get(endpoint.id)
        if (m !== undefined) draining.delete(endpoint.id)
        else m = Object.assign(engine.makeHost(endpoint.id, weight), { endpoint, removed: false, observer: undefined })
        m.removed = false
        added.push(endpoint.id)
      } else {
        current.delete(endpoint.id)
      }
      if (m.weight !== weight) weightsChanged = true
      m.weight = weight
      m.endpoint = endpoint
      next.push(m)
    }
    const removed: Array<string> = []
    for (const m of current.values()) {
      m.removed = true
      removed.push(m.id)
      if (m.inFlight > 0) draining.set(m.id, m)
    }
    const changed = added.length > 0 || removed.length > 0
    if (!changed && !weightsChanged && next.every((m, i) => pool.hosts[i] === m)) return
    pool.hosts = next
    for (const m of next) m.current = 0
    pool.cursor = 0
    engine.refresh(pool)
    if (strategy === "ringHash") pool.ring = engine.buildRing(next, virtualNodes)
    if (changed && hub.listening()) {
      hub.emit({ _tag: "EndpointsChanged", balancer: name, added, removed, endpoints: next.length })
    }
  }
  apply(initial)
  const discover = (endpoints: Iterable<E>): Effect.Effect<void> => {
    const { issues, valid } = checkEndpoints(endpoints)
    apply(valid)
    return issues.length === 0
      ? Effect.void
      : Effect.logWarning(
          `LoadBalancer ${name}: endpoints left out of a discovered set: ${issues
            .map((issue) => `${issue.path} = ${issue.value}: ${issue.message}`)
            .join("; ")}`
        )
  }

  // ---- rejections
  const reject = (fiber: Fiber.Fiber<unknown, unknown>, reason: LoadBalancerErrorReason): LoadBalancerError => {
    const tag = reason._tag
    counters[rejectionReason[tag]]++
    spanEvent(fiber, "Rejected", {
      [Telemetry.attributes.name]: name,
      [Telemetry.attributes.reason]: rejectionReason[tag]
    })
    if (hub.listening()) {
      hub.emit({
        _tag: "Rejected",
        balancer: name,
        reason: tag,
        retryAfter: tag === "AllEjected" ? reason.retryAfter : undefined
      })
    }
    return construct(LoadBalancerError, { _tag: "LoadBalancerError", [ErrorTypeId]: ErrorTypeId, reason })
  }

  // ---- classification (as the breaker's)
  const classify = <A, Err>(exit: Exit.Exit<A, Err>, callOptions: CallOptions<A, Err> | undefined): Classified => {
    if (exit._tag === "Success") {
      const value = exit.value
      if (callOptions?.isFailureResult?.(value) === true) return "failure"
      return balancerIsFailureResult?.(value) === true ? "failure" : "success"
    }
    let interruptedOnly = true
    for (const reason of exit.cause.reasons) {
      if (reason._tag === "Fail") {
        const error = reason.error
        if (callOptions?.isIgnored?.(error) === true || balancerIsIgnored?.(error) === true) return "ignored"
        if (callOptions?.isFailure !== undefined) return callOptions.isFailure(error) ? "failure" : "success"
        if (balancerIsFailure !== undefined) return balancerIsFailure(error) ? "failure" : "success"
        return "failure"
      }
      if (reason._tag === "Die") return "failure"
      if (reason._tag !== "Interrupt") interruptedOnly = false
    }
    return interruptedOnly ? "interrupted" : "failure"
  }

  // ---- the end of a call
  const finish: Finish = (member, start, callOptions, exit, fiber) => {
    member.inFlight--
    if (member.removed) {
      if (member.inFlight === 0) draining.delete(member.id)
    } else {
      pool.inFlight--
    }
    const outcome =
      exit._tag === "Success" && callOptions === undefined && balancerIsFailureResult === undefined
        ? "success"
        : classify(exit, callOptions)
    if (outcome === "interrupted") {
      counters.ignored++
      return
    }
    let now = 0
    if (timed) {
      now = nowOf(fiber)
      engine.observeLatency(member, now - start, now, decayMillis)
    }
    if (outcome === "success") counters.success++
    else if (outcome === "failure") counters.failure++
    else counters.ignored++
    if (!engine.recordOutcome(member, outcome, config) || member.removed || member.ejectedUntil !== 0) return
    // the failure that reaches consecutiveFailures: eject, if the cap and the enforcement chance allow
    if (!timed) now = nowOf(fiber)
    engine.returnExpired(pool, now, onReturned)
    if (config.enforcingConsecutiveFailures < 100) {
      rng = fiber.getRef(Random.Random)
      if (random() * 100 >= config.enforcingConsecutiveFailures) return
    }
    const millis = engine.eject(pool, member, now, config)
    if (millis < 0) return
    spanEvent(fiber, "EndpointEjected", {
      [Telemetry.attributes.name]: name,
      [Telemetry.attributes.reason]: ejectionReason.ConsecutiveFailures
    })
    onEjected(member, millis, "ConsecutiveFailures", undefined, undefined)
  }

  // ---- the pick
  const pick = (fiber: Fiber.Fiber<unknown, unknown>, panic: boolean, key: string | undefined, now: number) => {
    switch (strategy) {
      case "roundRobin":
        return engine.pickRoundRobin(pool, panic)
      case "random":
        rng = fiber.getRef(Random.Random)
        return engine.pickRandom(pool, panic, random)
      case "leastRequests":
        rng = fiber.getRef(Random.Random)
        return engine.pickLeastRequests(pool, panic, random)
      case "peakEwma":
        rng = fiber.getRef(Random.Random)
        return engine.pickPeakEwma(pool, panic, random, now, decayMillis)
      case "ringHash":
        if (key === undefined) {
          rng = fiber.getRef(Random.Random)
          return engine.pickRandom(pool, panic, random)
        }
        return engine.pickRing(pool, panic, engine.hash32(key), boundedLoad)
    }
  }

  const callImpl = <A, Err, R>(
    f: (endpoint: E) => Effect.Effect<A, Err, R>,
    callOptions?: CallOptions<A, Err> | undefined
  ): Effect.Effect<A, Err | LoadBalancerError, R> =>
    Effect.withFiber<A, Err | LoadBalancerError, R>((fiber) => {
      // the clock, only for what needs it: a timed call's start (peakEwma's pick), ejections to end
      const now = timed || pool.ejected > 0 ? nowOf(fiber) : 0
      const n = pool.hosts.length
      if (n === 0) return Exit.fail(reject(fiber, construct(NoEndpoints, { _tag: "NoEndpoints", balancer: name })))
      let panic = false
      if (pool.ejected > 0) {
        engine.returnExpired(pool, now, onReturned)
        if (engine.inPanic(pool, panicThreshold)) {
          panic = true
          counters.panic++
        } else if (pool.ejected === n) {
          const retryAfter = Duration.millis(Math.max(0, pool.nextReturn - now))
          return Exit.fail(
            reject(fiber, construct(AllEjected, { _tag: "AllEjected", balancer: name, endpoints: n, retryAfter }))
          )
        }
      }
      let index = pick(fiber, panic, callOptions?.key, now)
      const avoid = callOptions?.avoid
      if (avoid !== undefined && avoid.size > 0 && avoid.has(pool.hosts[index]?.id ?? "")) {
        rng = fiber.getRef(Random.Random)
        const key = callOptions?.key
        index = engine.pickAvoiding(
          pool,
          strategy,
          panic,
          index,
          (host) => avoid.has(host.id),
          random,
          now,
          decayMillis,
          key === undefined ? undefined : engine.hash32(key),
          boundedLoad
        )
      }
      const member = pool.hosts[index]
      if (member === undefined) return Effect.die(new Error(`LoadBalancer ${name}: no endpoint picked`))
      let effect: Effect.Effect<A, Err, R>
      try {
        effect = f(member.endpoint)
      } catch (defect) {
        return Effect.die(defect)
      }
      member.inFlight++
      pool.inFlight++
      if (
        !timed &&
        (callOptions === undefined ||
          (callOptions.isFailure === undefined &&
            callOptions.isIgnored === undefined &&
            callOptions.isFailureResult === undefined))
      ) {
        let shared = member.observer
        if (shared === undefined) {
          shared = new CallObserver<unknown, unknown>(finish, member, 0, undefined)
          member.observer = shared
        }
        return Frame.observed<A, Err, R>(fiber, effect, shared)
      }
      return Frame.observed<A, Err, R>(fiber, effect, new CallObserver(finish, member, now, callOptions))
    })

  // ---- reading
  const hostStats = (m: Member<E>, now: number): EndpointStats<E> => {
    const ejected = !m.removed && m.ejectedUntil !== 0 && m.ejectedUntil > now
    const latency = engine.decayedLatency(m, now, decayMillis)
    return {
      id: m.id,
      endpoint: m.endpoint,
      weight: m.weight,
      zone: m.endpoint.zone,
      state: m.removed ? "draining" : ejected ? "ejected" : "active",
      inFlight: m.inFlight,
      latency: m.ewma === 0 && m.successes + m.failures === 0 ? undefined : Duration.millis(latency),
      successes: m.successes,
      failures: m.failures,
      consecutiveFailures: m.consecutiveFailures,
      ejections: m.ejections,
      ejectedFor: ejected ? Duration.millis(m.ejectedUntil - now) : undefined
    }
  }
  const stats = Effect.sync((): Stats<E> => {
    const now = nowHere()
    engine.returnExpired(pool, now, onReturned)
    let inFlight = pool.inFlight
    for (const m of draining.values()) inFlight += m.inFlight
    return {
      endpoints: pool.hosts.length,
      ejected: pool.ejected,
      panic: engine.inPanic(pool, panicThreshold),
      inFlight,
      successes: counters.success,
      failures: counters.failure,
      ignored: counters.ignored,
      rejected: counters.no_endpoints + counters.all_ejected,
      hosts: [...pool.hosts, ...draining.values()].map((m) => hostStats(m, now))
    }
  })

  // metrics, read when exported
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  const spec = Telemetry.loadBalancer
  const outcome = (value: string) => ({ ...base, [Telemetry.attributes.outcome]: value })
  const reason = (value: string) => ({ ...base, [Telemetry.attributes.reason]: value })
  registrar.counter(spec.calls, outcome("success"), () => counters.success)
  registrar.counter(spec.calls, outcome("failure"), () => counters.failure)
  registrar.counter(spec.calls, outcome("ignored"), () => counters.ignored)
  registrar.counter(spec.calls, outcome("rejected"), () => counters.no_endpoints + counters.all_ejected)
  for (const r of Object.values(rejectionReason)) registrar.counter(spec.rejected, reason(r), () => counters[r])
  for (const r of Object.values(ejectionReason)) registrar.counter(spec.ejections, reason(r), () => counters[r])
  registrar.counter(spec.panic, base, () => counters.panic)
  registrar.gauge(spec.endpoints, base, () => pool.hosts.length)
  registrar.gauge(spec.ejected, base, () => pool.ejected)
  registrar.gauge(spec.inFlight, base, () => {
    let inFlight = pool.inFlight
    for (const m of draining.values()) inFlight += m.inFlight
    return inFlight
  })
  const close = Effect.andThen(
    hub.end,
    Effect.sync(() => registrar.removeAll())
  )

  const service: LoadBalancer<E> = {
    [TypeId]: TypeId,
    name,
    options,
    call: callImpl,
    update: (endpoints) =>
      Effect.suspend(() => {
        const { issues, valid } = checkEndpoints(endpoints)
        if (issues.length > 0) return Effect.fail(new Options_.InvalidOptions({ pattern: "LoadBalancer", issues }))
        apply(valid)
        return Effect.void
      }),
    endpoints: Effect.sync(() => pool.hosts.map((m) => m.endpoint)),
    stats,
    subscribe: hub.subscribe,
    events: hub.events
  }
  return { service, evaluate, discover, close }
}
