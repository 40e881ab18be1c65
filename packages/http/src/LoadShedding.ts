/**
 * Server-side overload protection for Effect's HTTP server: while the
 * process is under pressure (a slow event loop, a large heap or resident
 * set, too many requests in flight), requests are answered
 * `503 Service Unavailable` with `Retry-After` before their handler runs,
 * so the server degrades instead of falling over — what fastify's
 * `@fastify/under-pressure` and Envoy's overload manager do, in process.
 *
 * A shedder samples its signals every `sampleInterval` (1 second by
 * default) through a {@link Probe}: event-loop delay (`perf_hooks`'
 * `monitorEventLoopDelay`, its 99th percentile over the interval), heap
 * used and RSS (`process.memoryUsage()`), and the most requests in flight
 * during the interval. Each signal has an optional threshold; a signal
 * without one is not watched.
 *
 * **Details**
 *
 * - Priorities: each request is `critical` (never shed by pressure, only by
 *   `maxInFlight`), `normal` (shed while any signal is over its threshold)
 *   or `sheddable` (shed first: already over `threshold × sheddableAt`),
 *   from `classify`, or the `critical` / `sheddable` path lists.
 * - `maxInFlight` is a hard cap on the requests running at once, for every
 *   priority: a request over it is shed at once (no queue).
 * - Hysteresis: shedding starts on the first sample over a trigger and stops
 *   only after `calmSamples` samples in a row below the trigger × (1 −
 *   `recoveryMargin`), so shedding, which relieves the pressure at once,
 *   does not switch on and off every sample.
 * - Excluded paths (`/health`, `/health/*` by default) are never shed nor
 *   counted: a probe must see the instance even when it sheds.
 * - Monitoring: `state` (level, signals, in flight), `stats` (shed counts
 *   by reason), `events` (`SheddingStarted`, `SheddingLevelChanged`,
 *   `SheddingStopped`), metrics named in `Telemetry.loadShedding`, and
 *   {@link healthSource} for the `Health` registry.
 *
 * **Gotchas**
 *
 * - A shed request is answered by this process: if the event loop is stuck
 *   the answer is late too. Shedding early (a low `eventLoopDelayThreshold`,
 *   `maxInFlight`) is what keeps answers fast.
 * - Load shedding protects this process; a rate limiter protects it from one
 *   client; a bulkhead protects one dependency from this process. They
 *   compose: shed first (global), then limit, then isolate.
 * - Clients must not retry a 503 at once: `Retry-After` says when, and a
 *   retry budget (`Retry`'s `budget`) keeps retries from adding to the
 *   overload.
 *
 * **Example** (Shedding while a signal is over its threshold)
 *
 * ```ts import.meta.vitest
 * import { LoadShedding } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { HttpServerRequest, HttpServerResponse } from "effect/http"
 * import { TestClock } from "effect/testing"
 *
 * let delay = 0
 * const probe: LoadShedding.Probe = { read: Effect.sync(() => ({ eventLoopDelay: delay })) }
 * const program = Effect.gen(function* () {
 *   const shedder = yield* LoadShedding.make({ eventLoopDelayThreshold: "100 millis", probe })
 *   const app = LoadShedding.middleware(shedder)(Effect.succeed(HttpServerResponse.text("ok")))
 *   const call = Effect.provideService(app, HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(new Request("http://localhost/api")))
 *   const before = (yield* call).status
 *   delay = 250
 *   yield* TestClock.adjust("1 second")
 *   const during = yield* call
 *   return [before, during.status, during.headers["retry-after"]]
 * }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => [200, 503, "3"]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { Health, Options as Options_, Telemetry } from "@effect-resilience/core"
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ExitObserver from "./internal/exitObserver.ts"
import * as Internal from "./internal/loadShedding.ts"
import { pathOf } from "./internal/url.ts"

/**
 * Runtime identifier of `LoadShedder` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/http/LoadShedding"

/**
 * Type-level identifier of `LoadShedder` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/http/LoadShedding"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A shedder: its signals, sampled on an interval, and the middleware that
 * sheds requests from them.
 *
 * @category models
 * @since 0.1.0
 */
export interface LoadShedder {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** The middleware over this shedder; see {@link middleware}. */
  readonly middleware: <E, R>(
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
  /** The level, the signals as last sampled, and the requests in flight now. */
  readonly state: Effect.Effect<State>
  /** Counts since the start. */
  readonly stats: Effect.Effect<Stats>
  /** Takes a sample now, besides the ones taken every `sampleInterval`. */
  readonly sample: Effect.Effect<void>
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the shedder a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const LoadShedder: Context.Service<LoadShedder, LoadShedder> = Context.Service<LoadShedder>(TypeId)

/**
 * A pressure signal: `event_loop_delay` (milliseconds), `heap_used` and
 * `rss` (bytes), `in_flight` (requests).
 *
 * @category models
 * @since 0.1.0
 */
export type Signal = Internal.Signal

/**
 * Why a request was shed: the signal over its trigger, or `max_in_flight`.
 * Also the `resilience.reason` metric attribute.
 *
 * @category models
 * @since 0.1.0
 */
export type Reason = Internal.Reason

/**
 * A request's priority: `critical` requests are never shed by pressure (only
 * by `maxInFlight`), `normal` ones are shed at the `normal` level,
 * `sheddable` ones already at the `sheddable` level.
 *
 * @category models
 * @since 0.1.0
 */
export type Priority = Internal.Priority

/**
 * What is being shed: `none`; `sheddable` (a signal over `threshold ×
 * sheddableAt`: sheddable requests); `normal` (a signal over its threshold:
 * normal and sheddable requests). Critical requests never are.
 *
 * @category models
 * @since 0.1.0
 */
export type Level = "none" | "sheddable" | "normal"

const levelNames: ReadonlyArray<Level> = ["none", "sheddable", "normal"]
const levelName = (level: Internal.Level): Level => levelNames[level] ?? "none"

/**
 * One signal as last sampled.
 *
 * @category models
 * @since 0.1.0
 */
export interface SignalState {
  /** The last value read (milliseconds, bytes or requests); undefined before the first reading. */
  readonly value: number | undefined
  /** Its threshold; undefined when the signal is not watched. */
  readonly threshold: number | undefined
  /** The level this signal holds the shedder at. */
  readonly level: Level
}

/**
 * A shedder now.
 *
 * @category models
 * @since 0.1.0
 */
export interface State {
  readonly level: Level
  /** The signals over a trigger (level `sheddable` or `normal`), in a fixed order. */
  readonly reasons: ReadonlyArray<Signal>
  /** Requests admitted and still running. */
  readonly inFlight: number
  /** Each signal as last sampled. */
  readonly signals: Readonly<Record<Signal, SignalState>>
  /** When the last sample was taken (epoch milliseconds, from the `Clock`); undefined before the first. */
  readonly sampledAt: number | undefined
}

/**
 * A shedder's counts since the start.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  /** Requests let through. */
  readonly admitted: number
  /** Requests shed, every reason. */
  readonly shed: number
  /** Requests shed, by reason. */
  readonly shedBy: Readonly<Record<Reason, number>>
  /** Requests on excluded paths (never shed nor counted in flight). */
  readonly excluded: number
  /** Times shedding started (the level left `none`). */
  readonly episodes: number
  /** Samples taken. */
  readonly samples: number
}

/**
 * What a sample read: each signal's value, undefined when not read.
 *
 * @category models
 * @since 0.1.0
 */
export type Readings = Readonly<Record<Signal, number | undefined>>

/**
 * An event of a shedder.
 *
 * @category events
 * @since 0.1.0
 */
export type Event = Event.SheddingStarted | Event.SheddingLevelChanged | Event.SheddingStopped

/**
 * @category events
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * Shedding started: the level left `none`.
   *
   * @category events
   * @since 0.1.0
   */
  export interface SheddingStarted {
    readonly _tag: "SheddingStarted"
    readonly name: string
    readonly level: Level
    readonly reasons: ReadonlyArray<Signal>
    readonly readings: Readings
  }
  /**
   * The level moved between `sheddable` and `normal`.
   *
   * @category events
   * @since 0.1.0
   */
  export interface SheddingLevelChanged {
    readonly _tag: "SheddingLevelChanged"
    readonly name: string
    readonly from: Level
    readonly to: Level
    readonly reasons: ReadonlyArray<Signal>
    readonly readings: Readings
  }
  /**
   * Shedding stopped: the level went back to `none`.
   *
   * @category events
   * @since 0.1.0
   */
  export interface SheddingStopped {
    readonly _tag: "SheddingStopped"
    readonly name: string
    readonly from: Level
    /** How long the episode lasted, from its first sample to this one. */
    readonly duration: Duration.Duration
    /** Requests shed during the episode (every reason). */
    readonly shed: number
    readonly readings: Readings
  }
}

// ---------------------------------------------------------------------------
// the probe
// ---------------------------------------------------------------------------

/**
 * One reading of the process's own signals. A field left out (or not a
 * finite number) is no reading: the signal keeps its level.
 *
 * @category probes
 * @since 0.1.0
 */
export interface Reading {
  /** Event-loop delay over the interval, in milliseconds. */
  readonly eventLoopDelay?: number | undefined
  /** V8 heap used, in bytes. */
  readonly heapUsed?: number | undefined
  /** Resident set size, in bytes. */
  readonly rss?: number | undefined
}

/**
 * Where a shedder reads the process's signals, once per sample. The default
 * is {@link nodeProbe}; tests give their own, driven by hand.
 *
 * @category probes
 * @since 0.1.0
 */
export interface Probe {
  /** Reads the signals since the previous read. */
  readonly read: Effect.Effect<Reading>
}

/**
 * The probe over Node's own measurements: event-loop delay from
 * `perf_hooks.monitorEventLoopDelay` (the `percentile`, 99 by default, of
 * the delays seen since the previous read, less the timer's `resolution`,
 * 10 ms by default; the histogram is reset at each read), and heap used and
 * RSS from `process.memoryUsage()`. The histogram is enabled for the scope.
 * Where `perf_hooks` or `process` are missing, those signals are not read.
 * A `resolution` that is not a duration, or a `percentile` that is not a
 * finite number, takes its default (the percentile is kept within 1–100).
 *
 * **Example** (Plausible readings)
 *
 * ```ts import.meta.vitest
 * import { LoadShedding } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const reading = await Effect.runPromise(Effect.scoped(Effect.flatMap(LoadShedding.nodeProbe(), (probe) => probe.read)))
 * [(reading.heapUsed ?? 0) > 0, (reading.rss ?? 0) >= (reading.heapUsed ?? 0)]
 * // => [true, true]
 * ```
 *
 * @category probes
 * @since 0.1.0
 */
export const nodeProbe = (
  options: { readonly resolution?: Duration.Input | undefined; readonly percentile?: number | undefined } = {}
): Effect.Effect<Probe, never, Scope.Scope> =>
  Effect.gen(function* () {
    // bad inputs fall back to the defaults: the probe never throws
    const resolutionInput = options.resolution === undefined ? Option.none() : Duration.fromInput(options.resolution)
    const resolutionMillis = Option.isSome(resolutionInput) ? Duration.toMillis(resolutionInput.value) : 10
    const resolution = Number.isFinite(resolutionMillis) ? Math.max(1, Math.round(resolutionMillis)) : 10
    const percentile =
      options.percentile !== undefined && Number.isFinite(options.percentile)
        ? Math.min(100, Math.max(1, options.percentile))
        : 99
    const perfHooks = yield* Effect.option(Effect.tryPromise(() => import("node:perf_hooks")))
    const histogram =
      perfHooks._tag === "Some" && typeof perfHooks.value.monitorEventLoopDelay === "function"
        ? yield* Effect.acquireRelease(
            Effect.sync(() => {
              const h = perfHooks.value.monitorEventLoopDelay({ resolution })
              h.enable()
              return h
            }),
            (h) => Effect.sync(() => h.disable())
          )
        : undefined
    const memory = typeof process === "object" && typeof process.memoryUsage === "function"
    return {
      read: Effect.sync((): Reading => {
        let eventLoopDelay: number | undefined
        if (histogram !== undefined && histogram.count > 0) {
          eventLoopDelay = Math.max(0, histogram.percentile(percentile) / 1e6 - resolution)
          histogram.reset()
        }
        if (!memory) return { eventLoopDelay }
        const usage = process.memoryUsage()
        return { eventLoopDelay, heapUsed: usage.heapUsed, rss: usage.rss }
      })
    }
  })

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const defaults: {
  readonly name: string
  readonly sampleInterval: Duration.Duration
  readonly sheddableAt: number
  readonly recoveryMargin: number
  readonly calmSamples: number
  readonly exclude: ReadonlyArray<string>
  readonly critical: ReadonlyArray<string>
  readonly sheddable: ReadonlyArray<string>
  readonly status: number
  readonly body: string
} = {
  name: "http",
  sampleInterval: Duration.seconds(1),
  sheddableAt: 0.8,
  recoveryMargin: 0.1,
  calmSamples: 3,
  exclude: ["/health", "/health/*"],
  critical: [],
  sheddable: [],
  status: 503,
  body: "Service Unavailable"
}

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const Path = Schema.String.check(
  Schema.isPattern(/^\//, { expected: 'a path starting with "/" (or "/prefix/*")' })
).annotate({ identifier: "string" })
const Paths = Schema.Array(Path)

/**
 * The shedder's options: the source of the type, the checks, `layerConfig`
 * and the generated Defaults table. The functions (`classify`, an `exclude`
 * predicate, `onShed`, `probe`) are given in code, beside these.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the shedder: the `resilience.name` metric attribute.",
      default: defaults.name
    })
  ),
  sampleInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "How often the signals are sampled; above zero. Each sample's event-loop delay covers the interval since the previous one.",
      default: defaults.sampleInterval
    })
  ),
  eventLoopDelayThreshold: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "Shed normal requests while the event-loop delay (the probe's p99 over the interval) is over this; above zero. Unset: not watched."
    })
  ),
  heapUsedThreshold: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Shed normal requests while the V8 heap used is over this many bytes. Unset: not watched."
    })
  ),
  rssThreshold: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Shed normal requests while the resident set is over this many bytes. Unset: not watched."
    })
  ),
  inFlightThreshold: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "Shed normal requests while the most requests in flight during a sample's interval is over this (a sampled signal, with hysteresis). Unset: not watched."
    })
  ),
  maxInFlight: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "A hard cap on the requests running at once, for every priority (critical included): a request over it is shed at once, without queueing. Unset: no cap."
    })
  ),
  sheddableAt: Schema.optionalKey(
    Schema.Number.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)).annotate({
      description:
        "Sheddable requests are shed already while a signal is over its threshold × this (0 to 1, above 0; 1: with the normal ones).",
      default: defaults.sheddableAt
    })
  ),
  recoveryMargin: Schema.optionalKey(
    Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)).annotate({
      description:
        "Shedding at a level stops only below its trigger × (1 − this): a sample between the two keeps it (0 to 1, below 1).",
      default: defaults.recoveryMargin
    })
  ),
  calmSamples: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Samples in a row below the recovery mark before shedding at a level stops.",
      default: defaults.calmSamples
    })
  ),
  exclude: Schema.optionalKey(
    Paths.annotate({
      description:
        'Paths never shed nor counted in flight (`"/health"` that path, `"/health/*"` every path under it); a predicate of the request in code. Replaces the default.',
      default: defaults.exclude
    })
  ),
  critical: Schema.optionalKey(
    Paths.annotate({
      description:
        "Paths of critical requests: never shed by pressure, only by `maxInFlight` (`classify` wins when it answers).",
      default: defaults.critical
    })
  ),
  sheddable: Schema.optionalKey(
    Paths.annotate({
      description:
        "Paths of sheddable requests: shed first, from `threshold × sheddableAt` (`classify` wins when it answers).",
      default: defaults.sheddable
    })
  ),
  status: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 400, maximum: 599 })).annotate({
      description: "The status of a shed request's answer (400 to 599; 503 or 429 are what clients expect).",
      default: defaults.status
    })
  ),
  body: Schema.optionalKey(
    Schema.String.annotate({ description: "The text body of a shed request's answer.", default: defaults.body })
  ),
  retryAfter: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "Sent as `Retry-After` (whole seconds, rounded up, at least 1). Default: `sampleInterval × calmSamples`, the shortest time shedding lasts."
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * A shed request, as `onShed` sees it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Shed {
  readonly reason: Reason
  readonly priority: Priority
  readonly level: Level
  /** The `Retry-After` the answer carries. */
  readonly retryAfter: Duration.Duration
}

/**
 * The options given in code only: functions and the probe.
 *
 * @category options
 * @since 0.1.0
 */
export interface CodeOptions {
  /** A request's priority; `undefined` falls back to the `critical` / `sheddable` paths, then `normal`. */
  readonly classify?: ((request: HttpServerRequest.HttpServerRequest) => Priority | undefined) | undefined
  /** The answer to a shed request (default: `status` and `body`); `Retry-After` is set on it unless it has one. */
  readonly onShed?:
    | ((shed: Shed, request: HttpServerRequest.HttpServerRequest) => HttpServerResponse.HttpServerResponse)
    | undefined
  /** Where the signals are read (default {@link nodeProbe}, made for the shedder's scope). */
  readonly probe?: Probe | undefined
}

/**
 * Options as `make` takes them: durations as any `Duration.Input`, `exclude`
 * as paths or a predicate.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input extends CodeOptions {
  readonly name?: string | undefined
  readonly sampleInterval?: Duration.Input | undefined
  readonly eventLoopDelayThreshold?: Duration.Input | undefined
  readonly heapUsedThreshold?: number | undefined
  readonly rssThreshold?: number | undefined
  readonly inFlightThreshold?: number | undefined
  readonly maxInFlight?: number | undefined
  readonly sheddableAt?: number | undefined
  readonly recoveryMargin?: number | undefined
  readonly calmSamples?: number | undefined
  readonly exclude?: ReadonlyArray<string> | ((request: HttpServerRequest.HttpServerRequest) => boolean) | undefined
  readonly critical?: ReadonlyArray<string> | undefined
  readonly sheddable?: ReadonlyArray<string> | undefined
  readonly status?: number | undefined
  readonly body?: string | undefined
  readonly retryAfter?: Duration.Input | undefined
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly sampleInterval: Duration.Duration
  readonly eventLoopDelayThreshold: Duration.Duration | undefined
  readonly heapUsedThreshold: number | undefined
  readonly rssThreshold: number | undefined
  readonly inFlightThreshold: number | undefined
  readonly maxInFlight: number | undefined
  readonly sheddableAt: number
  readonly recoveryMargin: number
  readonly calmSamples: number
  readonly exclude: ReadonlyArray<string> | ((request: HttpServerRequest.HttpServerRequest) => boolean)
  readonly critical: ReadonlyArray<string>
  readonly sheddable: ReadonlyArray<string>
  readonly status: number
  readonly body: string
  readonly retryAfter: Duration.Duration
  readonly classify: ((request: HttpServerRequest.HttpServerRequest) => Priority | undefined) | undefined
  readonly onShed:
    | ((shed: Shed, request: HttpServerRequest.HttpServerRequest) => HttpServerResponse.HttpServerResponse)
    | undefined
  readonly probe: Probe | undefined
}

const functionIssue = (field: string, value: unknown): Options_.Issue =>
  new Options_.Issue({ path: field, value: Options_.renderValue(value), message: "Expected a function" })

/**
 * Validates options: succeeds with them resolved (defaults applied), or
 * fails with one `Options.InvalidOptions` (pattern `LoadShedding`) listing
 * every bad field and its value.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { LoadShedding } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     LoadShedding.validateOptions({ sampleInterval: 0, maxInFlight: 0, recoveryMargin: 1, exclude: ["health"] })
 *   )
 * )
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["maxInFlight = 0", "recoveryMargin = 1", "exclude.0 = \"health\"", "sampleInterval = 0"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input = {}): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const { classify, onShed, probe, exclude, ...data } = input
  const excludeData = typeof exclude === "function" ? undefined : exclude
  const { issues, normalized } = Options_.normalizeDurations({ ...data, exclude: excludeData }, [
    "sampleInterval",
    "eventLoopDelayThreshold",
    "retryAfter"
  ])
  const codeIssues: Array<Options_.Issue> = []
  const classifyValue: unknown = classify
  const onShedValue: unknown = onShed
  if (classifyValue !== undefined && typeof classifyValue !== "function")
    codeIssues.push(functionIssue("classify", classify))
  if (onShedValue !== undefined && typeof onShedValue !== "function") codeIssues.push(functionIssue("onShed", onShed))
  const probeValue: unknown = probe
  if (
    probeValue !== undefined &&
    !(typeof probeValue === "object" && probeValue !== null && "read" in probeValue && Effect.isEffect(probeValue.read))
  ) {
    codeIssues.push(
      new Options_.Issue({
        path: "probe",
        value: Options_.renderValue(probe),
        message: "Expected a probe ({ read: Effect })"
      })
    )
  }
  return Effect.map(
    Options_.validate(
      "LoadShedding",
      Options,
      normalized,
      [Options_.positiveDuration("sampleInterval"), Options_.positiveDuration("eventLoopDelayThreshold")],
      [...issues, ...codeIssues]
    ),
    (o: Options): ResolvedOptions => {
      const sampleInterval = o.sampleInterval ?? defaults.sampleInterval
      const calmSamples = o.calmSamples ?? defaults.calmSamples
      return {
        name: o.name ?? defaults.name,
        sampleInterval,
        eventLoopDelayThreshold: o.eventLoopDelayThreshold,
        heapUsedThreshold: o.heapUsedThreshold,
        rssThreshold: o.rssThreshold,
        inFlightThreshold: o.inFlightThreshold,
        maxInFlight: o.maxInFlight,
        sheddableAt: o.sheddableAt ?? defaults.sheddableAt,
        recoveryMargin: o.recoveryMargin ?? defaults.recoveryMargin,
        calmSamples,
        exclude: typeof exclude === "function" ? exclude : (o.exclude ?? defaults.exclude),
        critical: o.critical ?? defaults.critical,
        sheddable: o.sheddable ?? defaults.sheddable,
        status: o.status ?? defaults.status,
        body: o.body ?? defaults.body,
        retryAfter: o.retryAfter ?? Duration.times(sampleInterval, calmSamples),
        classify,
        onShed,
        probe
      }
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
// constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a shedder that lives as long as the scope: its sampling fiber, the
 * default probe, its event streams and metrics end with it. Fails with
 * `Options.InvalidOptions` listing every bad option.
 *
 * **Example** (A hard cap: the second request in flight is shed)
 *
 * ```ts import.meta.vitest
 * import { LoadShedding } from "@effect-resilience/http"
 * import { Deferred, Effect, Fiber } from "effect"
 * import { HttpServerRequest, HttpServerResponse } from "effect/http"
 *
 * const program = Effect.gen(function* () {
 *   const shedder = yield* LoadShedding.make({ maxInFlight: 1, probe: { read: Effect.succeed({}) } })
 *   const gate = yield* Deferred.make<void>()
 *   const app = shedder.middleware(Effect.as(Deferred.await(gate), HttpServerResponse.text("ok")))
 *   const call = Effect.provideService(app, HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(new Request("http://localhost/")))
 *   const first = yield* Effect.forkChild(call)
 *   yield* Effect.yieldNow
 *   const second = yield* call
 *   yield* Deferred.succeed(gate, undefined)
 *   return [second.status, (yield* Fiber.join(first)).status, (yield* shedder.stats).shedBy.max_in_flight]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [503, 200, 1]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (input?: Input | undefined) => Effect.Effect<LoadShedder, Options_.InvalidOptions, Scope.Scope> =
  Effect.fnUntraced(function* (input?: Input | undefined) {
    const options = yield* validateOptions(input ?? {})
    const scope = yield* Effect.scope
    const probe = options.probe ?? (yield* nodeProbe())
    const context = yield* Effect.context<never>()
    const shedder = makeWith(options, probe, context)
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(options.sampleInterval), shedder.sample)), scope)
    yield* Scope.addFinalizer(scope, shedder.close)
    return shedder.service
  })

/**
 * Provides `LoadShedder` and installs its middleware globally in the
 * `HttpRouter`: every request the router answers, unmatched ones included,
 * goes through it unless excluded.
 *
 * **Example** (Shed on a slow event loop, cap the requests in flight)
 *
 * ```ts
 * import { HealthHttp, LoadShedding } from "@effect-resilience/http"
 * import { Health } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 *
 * const App = Layer.mergeAll(
 *   HttpRouter.add("GET", "/quotes", Effect.succeed(HttpServerResponse.text("quotes"))),
 *   HttpRouter.add("GET", "/reports", Effect.succeed(HttpServerResponse.text("reports"))),
 *   HealthHttp.layer(),
 *   LoadShedding.layer({ eventLoopDelayThreshold: "200 millis", maxInFlight: 500, sheddable: ["/reports"] })
 * ).pipe(Layer.provide(Health.layer()))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  input?: Input | undefined
): Layer.Layer<LoadShedder, Options_.InvalidOptions, HttpRouter.HttpRouter> =>
  withMiddleware(Layer.effect(LoadShedder, make(input)))

/**
 * As {@link layer}, with the options read from `Config` under `path`
 * (environment variables such as `shed_maxInFlight=500` with the default
 * provider), the name defaulting to `path`; the functions and the probe are
 * given in code. Bad values fail with one `Options.InvalidOptions` naming
 * each field and the text it held.
 *
 * **Example** (Thresholds from the environment, priorities in code)
 *
 * ```ts
 * import { LoadShedding } from "@effect-resilience/http"
 * import type { Options } from "@effect-resilience/core"
 * import type { Config, Layer } from "effect"
 * import type { HttpRouter } from "effect/http"
 *
 * // shed_eventLoopDelayThreshold="200 millis" shed_maxInFlight=800 shed_sheddable_0=/reports/*
 * const Shedding: Layer.Layer<
 *   LoadShedding.LoadShedder,
 *   Options.InvalidOptions | Config.ConfigError,
 *   HttpRouter.HttpRouter
 * > = LoadShedding.layerConfig("shed", {
 *   classify: (request) => (request.headers["x-gateway-priority"] === "critical" ? "critical" : undefined)
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  path: string,
  code: CodeOptions = {}
): Layer.Layer<LoadShedder, Options_.InvalidOptions | Config.ConfigError, HttpRouter.HttpRouter> =>
  withMiddleware(
    Layer.effect(
      LoadShedder,
      Effect.flatMap(Options_.fromConfig("LoadShedding", Options, path), (options: Options) =>
        make({ name: path, ...options, ...code })
      )
    )
  )

const withMiddleware = <E>(service: Layer.Layer<LoadShedder, E>): Layer.Layer<LoadShedder, E, HttpRouter.HttpRouter> =>
  Layer.provideMerge(
    HttpRouter.middleware(
      Effect.map(LoadShedder, (shedder) => shedder.middleware),
      { global: true }
    ),
    service
  )

// ---------------------------------------------------------------------------
// the middleware
// ---------------------------------------------------------------------------

/**
 * The middleware over a shedder: a function from an HTTP app (an effect
 * answering the current request) to the app behind the shedder. Use it with
 * `HttpRouter.middleware` (global or per route), `HttpServer.serve`, or by
 * hand; {@link layer} installs it globally.
 *
 * **Details**
 *
 * - An excluded request runs as it is, uncounted.
 * - Otherwise the request is classified and checked: over `maxInFlight`, or
 *   a signal at a level that sheds its priority, it is answered at once
 *   (`status`, `body`, `Retry-After`; or `onShed`) and the app does not run.
 * - An admitted request holds an in-flight slot until its response is ready
 *   or it ends otherwise (a failure, a defect, interruption when the client
 *   leaves).
 *
 * @category middleware
 * @since 0.1.0
 */
export const middleware = (
  shedder: LoadShedder
): (<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>) =>
  shedder.middleware

// ---------------------------------------------------------------------------
// health
// ---------------------------------------------------------------------------

/**
 * A `Health` source following a shedder: `healthy` while it sheds nothing,
 * `whenShedding` (`degraded` by default) while it sheds. Named after the
 * shedder unless `name` is set.
 *
 * **Gotchas**
 *
 * - Mapping shedding to `unhealthy` on a readiness probe takes the instance
 *   out of rotation: the others get its load, and if every instance sheds
 *   at once, every one leaves. `degraded` (ready, reported) is the default
 *   for that reason.
 *
 * **Example** (A shedder in the health report)
 *
 * ```ts import.meta.vitest
 * import { Health } from "@effect-resilience/core"
 * import { LoadShedding } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const shedder = yield* LoadShedding.make({ probe: { read: Effect.succeed({}) } })
 *   const health = yield* Health.make({ components: [LoadShedding.healthSource(shedder)] })
 *   yield* Effect.sleep(0)
 *   const report = yield* health.status
 *   return [report.components[0]?.name, report.status]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["http", "healthy"]
 * ```
 *
 * @category health
 * @since 0.1.0
 */
export const healthSource = (
  shedder: LoadShedder,
  options: Health.ComponentInput & {
    readonly name?: string | undefined
    readonly whenShedding?: Health.Status | undefined
  } = {}
): Health.Source => {
  const { name, whenShedding = "degraded", ...rest } = options
  const statusOf = (level: Level): Health.Status => (level === "none" ? "healthy" : whenShedding)
  const statuses: Stream.Stream<Health.Status> = Stream.unwrap(
    Effect.gen(function* () {
      // subscribe first, so that no change between the read and the subscription is lost
      const queue = yield* shedder.subscribe
      let last = statusOf((yield* shedder.state).level)
      return Stream.concat(
        Stream.succeed(last),
        Stream.fromQueue(queue).pipe(
          Stream.filterMap((event) => {
            const status = statusOf(
              event._tag === "SheddingStopped" ? "none" : event._tag === "SheddingStarted" ? event.level : event.to
            )
            if (status === last) return Result.failVoid
            last = status
            return Result.succeed(status)
          })
        )
      )
    })
  )
  return Health.source(name ?? shedder.name, statuses, rest)
}

// ---------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------

interface Built {
  readonly service: LoadShedder
  readonly sample: Effect.Effect<void>
  readonly close: Effect.Effect<void>
}

const noReadings: Readings = { event_loop_delay: undefined, heap_used: undefined, rss: undefined, in_flight: undefined }

/** The shedder's state and wiring over validated options and a probe. */
const makeWith = (options: ResolvedOptions, probe: Probe, context: Context.Context<never>): Built => {
  const name = options.name
  const config: Internal.Config = {
    thresholds: {
      event_loop_delay:
        options.eventLoopDelayThreshold === undefined ? undefined : Duration.toMillis(options.eventLoopDelayThreshold),
      heap_used: options.heapUsedThreshold,
      rss: options.rssThreshold,
      in_flight: options.inFlightThreshold
    },
    sheddableAt: options.sheddableAt,
    recoveryMargin: options.recoveryMargin,
    calmSamples: options.calmSamples
  }
  const maxInFlight = options.maxInFlight
  const retryAfter = options.retryAfter
  const retryAfterHeader = Internal.retryAfterSeconds(Duration.toMillis(retryAfter))
  const exclude = options.exclude
  const excludedPath = typeof exclude === "function" ? undefined : Internal.pathMatcher(exclude)
  const excludedBy = typeof exclude === "function" ? exclude : undefined
  const criticalPath = Internal.pathMatcher(options.critical)
  const sheddablePath = Internal.pathMatcher(options.sheddable)
  const classify = options.classify
  // the path is the first `end` characters of `target` (see `Internal.pathMatcher`)
  const priorityOf = (request: HttpServerRequest.HttpServerRequest, target: string, end: number): Priority => {
    const given = classify?.(request)
    if (given !== undefined) return given
    if (criticalPath?.matches(target, end)) return "critical"
    if (sheddablePath?.matches(target, end)) return "sheddable"
    return "normal"
  }
  const onShed = options.onShed

  // ---- mutable state: touched only synchronously
  let state: Internal.State = Internal.initial
  // what pressure sheds, by priority: worked out at each sample, read by each request
  let verdicts: Internal.PressureVerdicts = Internal.pressureVerdicts(state)
  let level: Internal.Level = 0
  let readings: Readings = noReadings
  let sampledAt: number | undefined
  let inFlight = 0
  let peakInFlight = 0
  let episodeStart = 0
  let episodeShedBase = 0
  const counters = { admitted: 0, shed: 0, excluded: 0, episodes: 0, samples: 0 }
  const shedBy: Record<Reason, number> = {
    event_loop_delay: 0,
    heap_used: 0,
    rss: 0,
    in_flight: 0,
    max_in_flight: 0
  }
  const hub = makeHub<Event>()

  // ---- sampling
  const apply = (reading: Reading, now: number): void => {
    const sampled: Readings = {
      event_loop_delay: finite(reading.eventLoopDelay),
      heap_used: finite(reading.heapUsed),
      rss: finite(reading.rss),
      in_flight: peakInFlight
    }
    peakInFlight = inFlight
    readings = sampled
    sampledAt = now
    counters.samples++
    const stepped = Internal.step(state, sampled, config)
    if (stepped.state !== state) verdicts = Internal.pressureVerdicts(stepped.state)
    state = stepped.state
    level = stepped.to
    if (stepped.from === stepped.to) return
    if (stepped.from === 0) {
      counters.episodes++
      episodeStart = now
      episodeShedBase = counters.shed
    }
    if (!hub.listening()) return
    const reasons = Internal.signalsAt(state, 1)
    if (stepped.from === 0) {
      hub.emit({ _tag: "SheddingStarted", name, level: levelName(stepped.to), reasons, readings: sampled })
    } else if (stepped.to === 0) {
      hub.emit({
        _tag: "SheddingStopped",
        name,
        from: levelName(stepped.from),
        duration: Duration.millis(Math.max(0, now - episodeStart)),
        shed: counters.shed - episodeShedBase,
        readings: sampled
      })
    } else {
      hub.emit({
        _tag: "SheddingLevelChanged",
        name,
        from: levelName(stepped.from),
        to: levelName(stepped.to),
        reasons,
        readings: sampled
      })
    }
  }
  const sample: Effect.Effect<void> = Effect.flatMap(probe.read, (reading) =>
    Clock.clockWith((clock) => Effect.sync(() => apply(reading, clock.currentTimeMillisUnsafe())))
  )

  // ---- the middleware
  // An admitted request's slot is freed when it ends, however it ends, exactly
  // once: by one observer shared by every request, pushed onto the fiber's
  // continuation stack in the same synchronous step as the decision and the
  // count (no interruption can fall in between; `internal/exitObserver.ts`).
  // Where that protocol is not available, the public-API path:
  // `uninterruptibleMask` around the decision and the count, `onExit` for the
  // release.
  const releaser = new Releaser(() => {
    inFlight--
  })
  const release = Effect.sync(releaser.observe)
  const releaseOnExit = () => release
  // the default answer is the same for every shed request: built once
  const shedAnswer = Effect.succeed(
    HttpServerResponse.text(options.body, { status: options.status, headers: { "retry-after": retryAfterHeader } })
  )
  const answer = (
    reason: Reason,
    priority: Priority,
    request: HttpServerRequest.HttpServerRequest
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    counters.shed++
    shedBy[reason]++
    if (onShed === undefined) return shedAnswer
    const response = onShed({ reason, priority, level: levelName(level), retryAfter }, request)
    return Effect.succeed(
      response.headers["retry-after"] === undefined
        ? HttpServerResponse.setHeader(response, "retry-after", retryAfterHeader)
        : response
    )
  }
  const shedMiddleware = <E, R>(
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
    Effect.withFiber(function shedOrAdmit(fiber) {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      // a path with a query (what servers hand over) is matched in place; an absolute URL is parsed
      const url = request.url
      const relative = url.charCodeAt(0) === 47
      const target = relative ? url : pathOf(url)
      const end = relative ? Internal.pathEnd(url) : target.length
      if (excludedPath?.matches(target, end) || excludedBy?.(request)) {
        counters.excluded++
        return app
      }
      const priority = priorityOf(request, target, end)
      if (ExitObserver.active()) {
        // the decision, the count and the release's registration: one synchronous step
        const reason = Internal.decideWith(verdicts, priority, inFlight, maxInFlight)
        if (reason !== undefined) return answer(reason, priority, request)
        if (!ExitObserver.push(fiber, releaser)) return admitMasked(app, priority, request)
        counters.admitted++
        inFlight++
        if (inFlight > peakInFlight) peakInFlight = inFlight
        return app
      }
      return admitMasked(app, priority, request)
    })
  // the fallback: the decision, the count and the release's registration happen with no interruption in between
  const admitMasked = <E, R>(
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
    priority: Priority,
    request: HttpServerRequest.HttpServerRequest
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> =>
    Effect.uninterruptibleMask((restore) => {
      const reason = Internal.decideWith(verdicts, priority, inFlight, maxInFlight)
      if (reason !== undefined) return answer(reason, priority, request)
      counters.admitted++
      inFlight++
      if (inFlight > peakInFlight) peakInFlight = inFlight
      return Effect.onExit(restore(app), releaseOnExit)
    })

  // ---- metrics, read when exported
  const registrar = makeRegistrar(context)
  const base = { [Telemetry.attributes.name]: name }
  const spec = Telemetry.loadShedding
  registrar.counter(spec.requests, { ...base, [Telemetry.attributes.outcome]: "admitted" }, () => counters.admitted)
  registrar.counter(spec.requests, { ...base, [Telemetry.attributes.outcome]: "shed" }, () => counters.shed)
  registrar.counter(spec.requests, { ...base, [Telemetry.attributes.outcome]: "excluded" }, () => counters.excluded)
  for (const reason of Internal.reasons) {
    registrar.counter(spec.shed, { ...base, [Telemetry.attributes.reason]: reason }, () => shedBy[reason])
  }
  registrar.counter(spec.episodes, base, () => counters.episodes)
  registrar.gauge(spec.level, base, () => level)
  registrar.gauge(spec.inFlight, base, () => inFlight)
  registrar.gauge(spec.eventLoopDelay, base, () => (readings.event_loop_delay ?? 0) / 1000)
  registrar.gauge(spec.heapUsed, base, () => readings.heap_used ?? 0)
  registrar.gauge(spec.rss, base, () => readings.rss ?? 0)

  const signalState = (signal: Signal): SignalState => ({
    value: readings[signal],
    threshold: config.thresholds[signal],
    level: levelName(state[signal].level)
  })

  const service = LoadShedder.of({
    [TypeId]: TypeId,
    name,
    options,
    middleware: shedMiddleware,
    state: Effect.sync(() => ({
      level: levelName(level),
      reasons: Internal.signalsAt(state, 1),
      inFlight,
      signals: {
        event_loop_delay: signalState("event_loop_delay"),
        heap_used: signalState("heap_used"),
        rss: signalState("rss"),
        in_flight: signalState("in_flight")
      },
      sampledAt
    })),
    stats: Effect.sync(() => ({ ...counters, shedBy: { ...shedBy } })),
    sample,
    subscribe: hub.subscribe,
    events: hub.events
  })
  return {
    service,
    sample,
    close: Effect.andThen(
      hub.end,
      Effect.sync(() => registrar.removeAll())
    )
  }
}

/** Frees an admitted request's in-flight slot when the request ends (one instance per shedder). */
class Releaser extends ExitObserver.Observer {
  readonly observe: () => void
  constructor(release: () => void) {
    super()
    this.observe = release
  }
}

const finite = (value: number | undefined): number | undefined =>
  value !== undefined && Number.isFinite(value) ? value : undefined

/** A publisher of events to scoped subscribers, each with a sliding queue; nothing built when nobody listens. */
const makeHub = <A>(capacity = 1024) => {
  const subscribers = new Set<Queue.Queue<A, Cause.Done>>()
  const subscribe: Effect.Effect<Queue.Dequeue<A, Cause.Done>, never, Scope.Scope> = Effect.acquireRelease(
    Effect.map(Queue.sliding<A, Cause.Done>(capacity), (queue) => {
      subscribers.add(queue)
      return queue
    }),
    (queue) =>
      Effect.sync(() => {
        subscribers.delete(queue)
        Queue.endUnsafe(queue)
      })
  )
  return {
    listening: () => subscribers.size > 0,
    emit: (event: A) => {
      for (const queue of subscribers) Queue.offerUnsafe(queue, event)
    },
    subscribe,
    events: Stream.unwrap(Effect.map(subscribe, Stream.fromQueue)),
    end: Effect.sync(() => {
      for (const queue of subscribers) Queue.endUnsafe(queue)
      subscribers.clear()
    })
  }
}

/** Series in the `MetricRegistry` read from plain counters when exported, removed all at once. */
const makeRegistrar = (context: Context.Context<never>) => {
  const registrations: Array<Metric.Registration> = []
  const register = <State>(
    metric: Metric.Metric<never, State>,
    attributes: Record<string, string>,
    get: () => State
  ) => {
    registrations.push(
      Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
        get,
        update: () => {},
        modify: () => {}
      })
    )
  }
  return {
    counter: (spec: Telemetry.MetricSpec, attributes: Record<string, string>, get: () => number) =>
      register(
        Metric.counter(spec.name, {
          description: spec.description,
          incremental: true,
          attributes: { unit: spec.unit }
        }),
        attributes,
        () => ({ count: get(), incremental: true })
      ),
    gauge: (spec: Telemetry.MetricSpec, attributes: Record<string, string>, get: () => number) =>
      register(
        Metric.gauge(spec.name, { description: spec.description, attributes: { unit: spec.unit } }),
        attributes,
        () => ({ value: get() })
      ),
    removeAll: () => {
      for (const registration of registrations) registration.remove()
      registrations.length = 0
    }
  }
}
