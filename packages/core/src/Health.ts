/**
 * Health: named components (checks run on a schedule, or streams of statuses
 * such as a circuit breaker's) folded into one status, with readiness and
 * liveness views, a bounded history and trends per component.
 *
 * A **check** is an effect run every `interval` with a `timeout`: a failure,
 * a defect or a timeout counts as a failed check. The first failures make the
 * component `degraded`, the `unhealthyAfter`-th in a row `unhealthy`; it
 * leaves `unhealthy` after `healthyAfter` successes in a row and returns to
 * `healthy` after `healthyAfter` fast ones (hysteresis). A success slower than
 * `slowThreshold` makes it `degraded`. A **source** is a stream of statuses
 * taken as they come (`fromCircuitBreaker` turns a breaker's health into one,
 * `fromRateLimiter` a limiter's rejection alert).
 *
 * **Details**
 *
 * - Aggregation: the whole is the worst of its components, a component with
 *   `critical: false` counting as at worst `degraded`. `readiness` and
 *   `liveness` aggregate the components whose `probe` includes them.
 * - Trends: each component keeps its last `history` samples and status
 *   changes (a bounded ring); the report derives the success rate, the mean
 *   latency and the status changes over them, and over the trailing
 *   `trendWindow` the availability (time `healthy` / time), the status
 *   changes and the check latency p50, p95 and max (`health.trend(name)`,
 *   the `resilience.health.trend.*` gauges). More than `flapThreshold`
 *   status changes within `flapWindow` is flapping: the component reports at
 *   least `degraded` until they age out.
 * - Jitter: a check's first run waits a random part of `stagger` of its
 *   interval, and each later run `interval` ± `jitter` (both drawn from
 *   Effect's `Random`), so that checks made together do not probe together.
 * - Checks run in fibers of the service's scope (the layer's): closing it
 *   interrupts them. A check never overlaps itself: a tick that finds the
 *   previous run still going is skipped (counted), and while that run is past
 *   its timeout each skipped tick counts as another timeout.
 * - Monitoring: `events` (`StatusChanged`, `OverallStatusChanged`,
 *   `CheckFailed`, `Flapping`), metrics named in `Telemetry.health`, a
 *   `Health.check` span per run.
 *
 * **Gotchas**
 *
 * - A component starts `healthy` (or its `initialStatus`) and its first
 *   check runs in the background within `stagger` of its interval (at once
 *   with `stagger: 0`): `make` does not wait for it.
 * - A check that ignores interruption keeps running after its timeout; the
 *   next run waits for it to end (its ticks count as timeouts meanwhile).
 *
 * **Example** (A check failing three times in a row)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const health = yield* Health.make({
 *     interval: "1 second",
 *     jitter: 0, // exact ticks: the first run at once, then every second
 *     stagger: 0,
 *     components: [Health.check("db", Effect.fail("connection refused"))]
 *   })
 *   yield* TestClock.adjust("2 seconds") // the checks at 0 s, 1 s and 2 s fail
 *   const report = yield* health.status
 *   return [report.status, report.components[0]?.consecutiveFailures, report.components[0]?.lastError]
 * }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => ["unhealthy", 3, "connection refused"]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import type * as engine from "./internal/health.ts"
import { defaults, issuesOf, maxHistory, resolve, validateComponents } from "./internal/healthOptions.ts"
import { type Api, makeRuntime } from "./internal/healthRuntime.ts"
import * as Options_ from "./Options.ts"
import type * as RateLimiter from "./RateLimiter.ts"

/**
 * Runtime identifier of `Health` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Health"

/**
 * Type-level identifier of `Health` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Health"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A registry of health components and their aggregated status.
 *
 * @category models
 * @since 0.1.0
 */
export interface Health {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Every component and the worst of them (non-critical ones counting as at worst `degraded`). */
  readonly status: Effect.Effect<Report>
  /** The components whose `probe` is `readiness` or `both`. */
  readonly readiness: Effect.Effect<Report>
  /** The components whose `probe` is `liveness` or `both`. */
  readonly liveness: Effect.Effect<Report>
  /** One component's trend now (its report's `trend`); `None` for a name not registered. */
  readonly trend: (component: string) => Effect.Effect<Option.Option<Trend>>
  /**
   * Adds a component for the rest of the service's life: its check or
   * source runs in the service's scope. Fails with `Options.InvalidOptions`
   * for bad options or a name already taken.
   */
  readonly register: <R>(component: Component<R>) => Effect.Effect<void, Options_.InvalidOptions, R>
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the health registry a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const Health: Context.Service<Health, Health> = Context.Service<Health>(TypeId)

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * A status, best first: `healthy`, `degraded`, `unhealthy`. The same values
 * as `CircuitBreaker.Health`.
 *
 * @category models
 * @since 0.1.0
 */
export type Status = engine.Status

/**
 * Which aggregated views a component counts in: `readiness` (may this
 * process take traffic?), `liveness` (should it be restarted?) or both.
 *
 * @category models
 * @since 0.1.0
 */
export type Probe = "readiness" | "liveness" | "both"

/**
 * The aggregated views: every component, or the readiness or liveness ones.
 *
 * @category models
 * @since 0.1.0
 */
export type View = "all" | "readiness" | "liveness"

/**
 * A check: an effect whose success means the dependency is up.
 *
 * @category models
 * @since 0.1.0
 */
export interface Check<R = never> {
  readonly _tag: "Check"
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown, R>
  readonly options: ComponentInput
}

/**
 * A source: a stream of statuses decided elsewhere (a circuit breaker's
 * health), taken as they come.
 *
 * @category models
 * @since 0.1.0
 */
export interface Source<R = never> {
  readonly _tag: "Source"
  readonly name: string
  readonly statuses: Stream.Stream<Status, unknown, R>
  readonly options: ComponentInput
}

/**
 * A component of the registry: a check or a source.
 *
 * @category models
 * @since 0.1.0
 */
export type Component<R = never> = Check<R> | Source<R>

/**
 * One sample of a component's history.
 *
 * @category models
 * @since 0.1.0
 */
export interface Sample {
  readonly at: DateTime.Utc
  /** A check's success (slow ones included), or a source's `healthy`. */
  readonly ok: boolean
  /** A check's duration; undefined for a source. */
  readonly latency: Duration.Duration | undefined
  /** The status reported after the sample. */
  readonly status: Status
}

/**
 * A change of a component's reported status.
 *
 * @category models
 * @since 0.1.0
 */
export interface Transition {
  readonly at: DateTime.Utc
  readonly from: Status
  readonly to: Status
}

/**
 * The trend numbers of a component over its history window.
 *
 * @category models
 * @since 0.1.0
 */
export interface Trend {
  /** Samples in the window (at most `history`). */
  readonly samples: number
  /** Successful samples over samples, 0 to 1; undefined before the first sample. */
  readonly successRate: number | undefined
  /** Mean check duration over the window; undefined for a source or before the first check. */
  readonly meanLatency: Duration.Duration | undefined
  /** Changes of the reported status between consecutive samples of the window. */
  readonly statusChanges: number
  /** More than `flapThreshold` status changes within `flapWindow` (the component's `flapping`). */
  readonly flapping: boolean
  /** The figures over the trailing `trendWindow` (since report version 2). */
  readonly window: WindowTrend
}

/**
 * A component's figures over the trailing `trendWindow`, computed from its
 * ring of samples and status changes when read: bounded by the ring (at most
 * `history` of each), so a window longer than the ring holds is covered in
 * part only (`covered`).
 *
 * @category models
 * @since 0.2.0
 */
export interface WindowTrend {
  /** The window: `trendWindow`. */
  readonly duration: Duration.Duration
  /**
   * The part of the window the figures cover: up to now from the window's
   * start, the component's start, or the oldest status change the ring still
   * holds, whichever is latest.
   */
  readonly covered: Duration.Duration
  /** Time `healthy` over the covered time, 0 to 1 (with nothing covered yet: 1 when `healthy` now, else 0). */
  readonly availability: number
  /** Time spent `degraded` and `unhealthy` within the covered time. */
  readonly degraded: Duration.Duration
  readonly unhealthy: Duration.Duration
  /** Changes of the reported status within the window. */
  readonly statusChanges: number
  /** Samples (check results, source statuses) within the window. */
  readonly samples: number
  /** Nearest-rank median, 95th percentile and maximum of the window's check durations; undefined without any. */
  readonly latencyP50: Duration.Duration | undefined
  readonly latencyP95: Duration.Duration | undefined
  readonly latencyMax: Duration.Duration | undefined
}

/**
 * The version of the report's shape: 2 added `trend.window` and
 * `trend.flapping` (and `version` itself). Versions only add fields.
 *
 * @category models
 * @since 0.2.0
 */
export const reportVersion: 2 = 2

/**
 * One component in a report.
 *
 * @category models
 * @since 0.1.0
 */
export interface ComponentReport {
  readonly name: string
  readonly kind: "check" | "source"
  readonly status: Status
  readonly critical: boolean
  readonly probe: Probe
  /** More than `flapThreshold` status changes within `flapWindow`: the status is at least `degraded`. */
  readonly flapping: boolean
  /** When the last result (a check's end, a source's status) came; undefined before the first. */
  readonly lastCheck: DateTime.Utc | undefined
  /** The last failure's message, kept after recovery; undefined before any failure. */
  readonly lastError: string | undefined
  readonly consecutiveFailures: number
  readonly consecutiveSuccesses: number
  /** The last check's duration; undefined for a source or before the first check. */
  readonly latency: Duration.Duration | undefined
  /** Check runs completed, failed (timeouts included), timed out, and ticks skipped because a run was still going. */
  readonly checks: number
  readonly failures: number
  readonly timeouts: number
  readonly skipped: number
  readonly trend: Trend
  /** The last `history` samples, oldest first. */
  readonly history: ReadonlyArray<Sample>
  /** The last `history` changes of the status, oldest first. */
  readonly transitions: ReadonlyArray<Transition>
  /** When the status became what it is; undefined when it never changed. */
  readonly since: DateTime.Utc | undefined
}

/**
 * A typed health report of one view.
 *
 * @category models
 * @since 0.1.0
 */
export interface Report {
  /** The shape's version ({@link reportVersion}): 2 since trends over a window. */
  readonly version: typeof reportVersion
  /** The registry's name. */
  readonly name: string
  readonly view: View
  /** The aggregated status of the view's components (`healthy` with none). */
  readonly status: Status
  readonly components: ReadonlyArray<ComponentReport>
}

/**
 * The registry's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.StatusChanged | Event.OverallStatusChanged | Event.CheckFailed | Event.Flapping

/**
 * The members of {@link Event}.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * A component's reported status changed.
   *
   * @category models
   * @since 0.1.0
   */
  export interface StatusChanged {
    readonly _tag: "StatusChanged"
    readonly health: string
    readonly component: string
    readonly from: Status
    readonly to: Status
    readonly at: DateTime.Utc
  }
  /**
   * The aggregated status of a view changed.
   *
   * @category models
   * @since 0.1.0
   */
  export interface OverallStatusChanged {
    readonly _tag: "OverallStatusChanged"
    readonly health: string
    readonly view: View
    readonly from: Status
    readonly to: Status
    readonly at: DateTime.Utc
  }
  /**
   * A check failed, timed out, or was still running past its timeout at a tick.
   *
   * @category models
   * @since 0.1.0
   */
  export interface CheckFailed {
    readonly _tag: "CheckFailed"
    readonly health: string
    readonly component: string
    readonly error: string
    readonly timedOut: boolean
    readonly consecutiveFailures: number
    readonly at: DateTime.Utc
  }
  /**
   * A component started flapping: more than `flapThreshold` status changes within `flapWindow`.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Flapping {
    readonly _tag: "Flapping"
    readonly health: string
    readonly component: string
    /** Status changes within the window. */
    readonly changes: number
    readonly at: DateTime.Utc
  }
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const StatusSchema = Schema.Literals(["healthy", "degraded", "unhealthy"])

const Ratio = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))

const thresholdFields = {
  interval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "Time between the starts of two runs of a check (± `jitter`; the first within `stagger`); above zero.",
      default: defaults.interval
    })
  ),
  jitter: Schema.optionalKey(
    Ratio.annotate({
      description:
        "Each wait between two runs of a check is `interval` ± up to this share of it (0 to 1, from Effect's `Random`): checks made together drift apart.",
      default: defaults.jitter
    })
  ),
  stagger: Schema.optionalKey(
    Ratio.annotate({
      description:
        "A check's first run waits a random part of this share of `interval` (0 to 1; 0 runs it at once, 1 spreads first runs over a whole interval).",
      default: defaults.stagger
    })
  ),
  timeout: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "A run longer than this is interrupted and counts as a failure; above zero.",
      default: defaults.timeout
    })
  ),
  unhealthyAfter: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Consecutive failures that make a component `unhealthy`; fewer make it `degraded`.",
      default: defaults.unhealthyAfter
    })
  ),
  healthyAfter: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "Consecutive successes that take a component out of `unhealthy`, and fast ones that take it back to `healthy`.",
      default: defaults.healthyAfter
    })
  ),
  slowThreshold: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "A successful run slower than this makes the component `degraded`.",
      default: defaults.slowThreshold
    })
  ),
  history: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: maxHistory })).annotate({
      description:
        "Samples, and status changes, kept per component (1 to 10000; a ring bounding its memory): the window of its trend numbers.",
      default: defaults.history
    })
  ),
  flapThreshold: Schema.optionalKey(
    NonNegativeInt.annotate({
      description: "More status changes than this within `flapWindow` is flapping (reported `degraded`).",
      default: defaults.flapThreshold
    })
  ),
  flapWindow: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "The window over which status changes are counted for flapping; above zero.",
      default: defaults.flapWindow
    })
  ),
  trendWindow: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "The trailing window of `trend.window` (availability, status changes, latency percentiles), within what `history` holds; above zero.",
      default: defaults.trendWindow
    })
  ),
  initialStatus: Schema.optionalKey(
    StatusSchema.annotate({
      description: "A component's status before its first result.",
      default: defaults.initialStatus
    })
  )
}

/**
 * The registry's options, the defaults of every component: the source of the
 * type, the rules, `layerConfig` and the generated Defaults table.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the registry: the `resilience.name` metric attribute.",
      default: defaults.name
    })
  ),
  ...thresholdFields
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * A component's own options: the registry's thresholds overridden, and how it
 * counts in the aggregation.
 *
 * @category options
 * @since 0.1.0
 */
export const ComponentOptions = Schema.Struct({
  ...thresholdFields,
  critical: Schema.optionalKey(
    Schema.Boolean.annotate({
      description: "Whether the component can make the whole `unhealthy`; a non-critical one makes it `degraded`.",
      default: defaults.critical
    })
  ),
  probe: Schema.optionalKey(
    Schema.Literals(["readiness", "liveness", "both"]).annotate({
      description: "The views the component counts in: `readiness`, `liveness` or `both`.",
      default: defaults.probe
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type ComponentOptions = typeof ComponentOptions.Type

/**
 * The thresholds as `make` and the constructors take them: durations as any
 * `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export interface ThresholdInput {
  readonly interval?: Duration.Input | undefined
  readonly jitter?: number | undefined
  readonly stagger?: number | undefined
  readonly timeout?: Duration.Input | undefined
  readonly unhealthyAfter?: number | undefined
  readonly healthyAfter?: number | undefined
  readonly slowThreshold?: Duration.Input | undefined
  readonly history?: number | undefined
  readonly flapThreshold?: number | undefined
  readonly flapWindow?: Duration.Input | undefined
  readonly trendWindow?: Duration.Input | undefined
  readonly initialStatus?: Status | undefined
}

/**
 * The registry's options as `make` takes them, with its first components.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input<R = never> extends ThresholdInput {
  readonly name?: string | undefined
  readonly components?: ReadonlyArray<Component<R>> | undefined
}

/**
 * A component's options as `check`, `source` and `fromCircuitBreaker` take them.
 *
 * @category options
 * @since 0.1.0
 */
export interface ComponentInput extends ThresholdInput {
  readonly critical?: boolean | undefined
  readonly probe?: Probe | undefined
}

/**
 * The registry's validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly interval: Duration.Duration
  readonly jitter: number
  readonly stagger: number
  readonly timeout: Duration.Duration
  readonly unhealthyAfter: number
  readonly healthyAfter: number
  readonly slowThreshold: Duration.Duration
  readonly history: number
  readonly flapThreshold: number
  readonly flapWindow: Duration.Duration
  readonly trendWindow: Duration.Duration
  readonly initialStatus: Status
}

/**
 * A component's validated options: its own, else the registry's.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedComponentOptions extends Omit<ResolvedOptions, "name"> {
  readonly critical: boolean
  readonly probe: Probe
}

/**
 * Validates the registry's options and its components' options at once:
 * succeeds with them resolved (defaults applied), or fails with one
 * `Options.InvalidOptions` listing every bad field and its value (a
 * component's fields as `components.<name>.<field>`).
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     Health.validateOptions({
 *       unhealthyAfter: 0,
 *       components: [Health.check("db", Effect.void, { timeout: 0 })]
 *     })
 *   )
 * )
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["unhealthyAfter = 0", "components.db.timeout = 0"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = <R = never>(
  input: Input<R> = {}
): Effect.Effect<
  { readonly options: ResolvedOptions; readonly components: ReadonlyArray<ResolvedComponentOptions> },
  Options_.InvalidOptions
> =>
  Effect.flatMap(issuesOf(Options, { ...input, components: undefined }, ""), (registry) => {
    const options = registry.value === undefined ? undefined : resolve(registry.value)
    return Effect.flatMap(
      validateComponents(ComponentOptions, input.components ?? [], options, new Set()),
      (components) => {
        const issues = [...registry.issues, ...components.issues]
        return issues.length > 0 || options === undefined
          ? Effect.fail(new Options_.InvalidOptions({ pattern: "Health", issues }))
          : Effect.succeed({ options, components: components.resolved })
      }
    )
  })

/**
 * The Defaults table of the registry's options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

/**
 * The Defaults table of a component's options, generated from the schema
 * (thresholds left out default to the registry's).
 *
 * @category options
 * @since 0.1.0
 */
export const componentOptionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(ComponentOptions)

// ---------------------------------------------------------------------------
// components
// ---------------------------------------------------------------------------

/**
 * A check component: `run` succeeding means the dependency is up; a failure,
 * a defect or a run longer than `timeout` counts as a failed check.
 *
 * **Example** (A database ping, not critical, for readiness only)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const ping = Effect.succeed("PONG")
 * const component = Health.check("cache", ping, { critical: false, probe: "readiness", timeout: "500 millis" })
 * component._tag
 * // => "Check"
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const check = <R = never>(
  name: string,
  run: Effect.Effect<unknown, unknown, R>,
  options: ComponentInput = {}
): Check<R> => ({ _tag: "Check", name, run, options })

/**
 * A source component: its status is the latest one `statuses` gave (flapping
 * aside). A stream that fails makes the component `unhealthy`, with the
 * failure as its `lastError`; one that ends leaves its last status.
 *
 * **Example** (A status computed elsewhere, non-critical)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const freeDisk = Stream.make(0.5, 0.1)
 *   const disk = Health.source(
 *     "disk",
 *     Stream.map(freeDisk, (free) => (free < 0.2 ? "unhealthy" : "healthy")),
 *     { critical: false }
 *   )
 *   const health = yield* Health.make({ components: [disk] })
 *   yield* Effect.sleep(0)
 *   const report = yield* health.status
 *   return [report.components[0]?.status, report.status]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["unhealthy", "degraded"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const source = <R = never>(
  name: string,
  statuses: Stream.Stream<Status, unknown, R>,
  options: ComponentInput = {}
): Source<R> => ({ _tag: "Source", name, statuses, options })

/**
 * A source following a circuit breaker's health for one key (the breaker's
 * own circuit by default): its current `health()` first, then each
 * `HealthChanged` event. An open circuit is `unhealthy`, a half-open one or a
 * failure rate at half its threshold `degraded`. The component is named after
 * the breaker (and the key, when given) unless `name` is set.
 *
 * **Example** (A breaker's circuit as a component)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker, Health } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   const health = yield* Health.make({ components: [Health.fromCircuitBreaker(breaker)] })
 *   yield* breaker.forceOpen()
 *   yield* Effect.sleep(0)
 *   const report = yield* health.status
 *   return [report.components[0]?.name, report.status]
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => ["payments", "unhealthy"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromCircuitBreaker = (
  breaker: CircuitBreaker.CircuitBreaker,
  options: ComponentInput & { readonly key?: string | undefined; readonly name?: string | undefined } = {}
): Source => {
  const { key, name, ...rest } = options
  const circuit = key ?? breaker.name
  const statuses: Stream.Stream<Status, CircuitBreaker.CircuitBreakerError> = Stream.unwrap(
    Effect.gen(function* () {
      // subscribe first, so that no change between the read and the subscription is lost
      const queue = yield* breaker.subscribe
      let last = yield* breaker.health(key)
      const changed = (status: Status): ReadonlyArray<Status> => {
        if (status === last) return []
        last = status
        return [status]
      }
      return Stream.concat(
        Stream.succeed(last),
        Stream.fromQueue(queue).pipe(
          Stream.filter(
            (event) => event.key === circuit && (event._tag === "HealthChanged" || event._tag === "StateTransition")
          ),
          // a transition re-reads the health: a change made before anyone listened has no HealthChanged
          Stream.mapEffect((event) =>
            event._tag === "HealthChanged"
              ? Effect.succeed(changed(event.to))
              : Effect.map(breaker.health(key), changed)
          ),
          Stream.flatMap(Stream.fromIterable)
        )
      )
    })
  )
  return source(name ?? (key === undefined ? breaker.name : `${breaker.name}:${key}`), statuses, rest)
}

/**
 * A source following a rate limiter's rejection alert: `healthy` at first,
 * `whenAlerting` (`degraded` by default) from each `AlertTriggered` and
 * `healthy` again from each `AlertResolved`. The limiter emits those only
 * with `alertRejectionRate` set; an alert raised before the registry
 * subscribed is seen from its resolution on. Named after the limiter unless
 * `name` is set.
 *
 * **Example** (Refusing most requests for a while degrades the whole)
 *
 * ```ts import.meta.vitest
 * import { Health, RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({
 *     name: "api",
 *     limits: [{ algorithm: "fixed-window", limit: 1, window: "1 hour" }],
 *     alertRejectionRate: 0.5,
 *     alertFor: "2 seconds"
 *   })
 *   const health = yield* Health.make({ components: [Health.fromRateLimiter(limiter)] })
 *   // the limiter measures its rejection rate every tenth of alertFor: 3 in 4 refused in each
 *   for (let tick = 0; tick < 12; tick++) {
 *     for (let i = 0; i < 4; i++) yield* limiter.consume("hot")
 *     yield* TestClock.adjust("200 millis")
 *   }
 *   return (yield* health.status).status
 * }).pipe(Effect.scoped, Effect.provide([RateLimiter.layerStoreMemory(), TestClock.layer()]))
 *
 * await Effect.runPromise(program)
 * // => "degraded"
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromRateLimiter = (
  limiter: RateLimiter.RateLimiter,
  options: ComponentInput & {
    readonly name?: string | undefined
    readonly whenAlerting?: "degraded" | "unhealthy" | undefined
  } = {}
): Source => {
  const { name, whenAlerting, ...rest } = options
  const alerting: Status = whenAlerting ?? "degraded"
  // subscribed first, then the alert read: an alert raised before the source started counts too
  const statuses: Stream.Stream<Status> = Stream.unwrap(
    Effect.zipWith(limiter.subscribe, limiter.alert, (queue, now) =>
      Stream.concat(
        Stream.succeed<Status>(now.alerting ? alerting : "healthy"),
        Stream.fromQueue(queue).pipe(
          Stream.filter((event) => event._tag === "AlertTriggered" || event._tag === "AlertResolved"),
          Stream.map((event): Status => (event._tag === "AlertTriggered" ? alerting : "healthy"))
        )
      )
    )
  )
  return source(name ?? limiter.name, statuses, rest)
}

// ---------------------------------------------------------------------------
// constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a health registry that lives as long as the scope: its checks and
 * sources run in fibers of the scope and are interrupted when it closes. Fails
 * with one `Options.InvalidOptions` listing every bad option, the components'
 * included.
 *
 * **Example** (Readiness and liveness)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const health = yield* Health.make({
 *     components: [
 *       Health.source("database", Stream.succeed("unhealthy"), { probe: "readiness" }),
 *       Health.source("event-loop", Stream.succeed("healthy"))
 *     ]
 *   })
 *   yield* Effect.sleep(0)
 *   const readiness = yield* health.readiness
 *   const liveness = yield* health.liveness
 *   return [readiness.status, liveness.status]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["unhealthy", "healthy"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: <R = never>(
  input?: Input<R> | undefined
) => Effect.Effect<Health, Options_.InvalidOptions, Scope.Scope | R> = Effect.fnUntraced(function* <R = never>(
  input?: Input<R> | undefined
) {
  const { components, options } = yield* validateOptions(input ?? {})
  const scope = yield* Effect.scope
  const context = yield* Effect.context<R>()
  const clock = yield* Clock.clockWith(Effect.succeed)
  const registry = makeRuntime(options, scope, context, clock, api)
  yield* Scope.addFinalizer(scope, registry.close)
  const all = input?.components ?? []
  for (let i = 0; i < all.length; i++) {
    yield* registry.start(all[i] as Component<R>, components[i] as ResolvedComponentOptions, context)
  }
  const runtime = registry.service
  return Health.of({
    [TypeId]: TypeId,
    name: options.name,
    options,
    status: runtime.status,
    readiness: runtime.readiness,
    liveness: runtime.liveness,
    trend: runtime.trend,
    register: runtime.register,
    subscribe: runtime.subscribe,
    events: runtime.events
  })
})

/**
 * Provides `Health` for the layer's lifetime (its checks run until the layer
 * is released). The layer needs what the checks and sources need.
 *
 * **Example** (The registry as a layer)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const HealthLive = Health.layer({ name: "api", components: [Health.check("self", Effect.void)] })
 * const program = Effect.map(Health.Health, (health) => health.name).pipe(Effect.provide(HealthLive))
 *
 * await Effect.runPromise(program)
 * // => "api"
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <R = never>(input?: Input<R> | undefined): Layer.Layer<Health, Options_.InvalidOptions, R> =>
  Layer.effect(Health, make(input))

/**
 * Provides `Health` with the registry's options read from `Config` under
 * `path` (environment variables such as `health_interval=5 seconds` with the
 * default provider), every option defaulted and the name defaulting to
 * `path`; the components are given in code. Bad values fail with one
 * `Options.InvalidOptions` naming each field and the text it held.
 *
 * **Example** (Options from the environment)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { ConfigProvider, Duration, Effect, Layer } from "effect"
 *
 * const env = ConfigProvider.fromEnv({ env: { health_interval: "5 seconds", health_unhealthyAfter: "5" } })
 * const program = Effect.map(Health.Health, (health) => [
 *   health.name,
 *   Duration.toMillis(health.options.interval),
 *   health.options.unhealthyAfter
 * ]).pipe(Effect.provide(Health.layerConfig("health").pipe(Layer.provide(ConfigProvider.layer(env)))))
 *
 * await Effect.runPromise(program)
 * // => ["health", 5000, 5]
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = <R = never>(
  path: string,
  components: ReadonlyArray<Component<R>> = []
): Layer.Layer<Health, Options_.InvalidOptions | Config.ConfigError, R> =>
  Layer.effect(
    Health,
    Effect.flatMap(Options_.fromConfig("Health", Options, path), (options: Options) =>
      make<R>({ name: path, ...options, components })
    )
  )

// ---------------------------------------------------------------------------
// the implementation: internal/healthRuntime.ts
// ---------------------------------------------------------------------------

const api: Api = { ComponentOptions, reportVersion }
