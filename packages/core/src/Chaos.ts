/**
 * Chaos injection: faults put into calls on purpose — latency, failures,
 * defects, hangs — so the resilience around them (timeouts, retries,
 * breakers, fallbacks) is exercised before production exercises it.
 *
 * A `Chaos` instance decides, for each call it wraps, whether to add latency
 * (with probability `latencyRate`, a delay drawn between `latencyMin` and
 * `latencyMax`) and then whether to replace the call by a fault: a typed
 * failure (`failureRate`, a `ChaosError`), a defect (`defectRate`) or a hang
 * that only an interruption ends (`hangRate`). At most one of those three per
 * call: their rates add up to at most 1.
 *
 * **Details**
 *
 * - Draws come from Effect's `Random` service and delays from its `Clock`:
 *   under `Random.withSeed` and `TestClock` a run is reproducible.
 * - `enable` / `disable` switch injection at run time (`enabled` is the
 *   starting state); `keys` limits it to some keys (a call's `key`, or the
 *   instance's name).
 * - Monitoring: `events` (`FaultInjected`), the counter
 *   `resilience.chaos.injected` by fault, span events, and `stats`.
 *
 * **Gotchas**
 *
 * - A fault added in production is a real fault: keep chaos behind
 *   configuration (`layerConfig`, with `enabled` from the environment).
 * - Latency is added before the call and counts against any timeout outside
 *   `inject`; put `inject` inside the timeout to test the timeout.
 *
 * **Example** (One call in two fails, reproducibly)
 *
 * ```ts import.meta.vitest
 * import { Chaos } from "@effect-resilience/core"
 * import { Effect, Random } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const chaos = yield* Chaos.make({ name: "payments", failureRate: 0.5 })
 *   const outcomes = []
 *   for (let i = 0; i < 8; i++) {
 *     const exit = yield* Effect.exit(Effect.succeed("paid").pipe(Chaos.inject(chaos)))
 *     outcomes.push(exit._tag)
 *   }
 *   return outcomes.filter((tag) => tag === "Failure").length
 * }).pipe(Effect.scoped, Random.withSeed("chaos"))
 *
 * const failures = await Effect.runPromise(program)
 * failures > 0 && failures < 8
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
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { dualBy } from "./internal/dual.ts"
import * as Hub from "./internal/events.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of `Chaos` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Chaos"

/**
 * Type-level identifier of `Chaos` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Chaos"

/**
 * The faults a chaos instance injects.
 *
 * @category models
 * @since 0.1.0
 */
export type Fault = "latency" | "failure" | "defect" | "hang"

/**
 * A chaos instance.
 *
 * @category models
 * @since 0.1.0
 */
export interface Chaos {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Runs `self`, perhaps late, perhaps replaced by a fault. */
  readonly inject: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options?: InjectOptions | undefined
  ) => Effect.Effect<A, E | ChaosError, R>
  /**
   * Runs `self` with the faults given instead of drawn ones (a caller-chosen
   * fault, such as one an HTTP request asks for in a header): applied only
   * while the instance is enabled and the key targeted, and counted,
   * published and traced as drawn faults are.
   */
  readonly force: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    faults: Forced,
    options?: InjectOptions | undefined
  ) => Effect.Effect<A, E | ChaosError, R>
  readonly enable: Effect.Effect<void>
  readonly disable: Effect.Effect<void>
  readonly enabled: Effect.Effect<boolean>
  readonly stats: Effect.Effect<Stats>
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<Event>
}

/**
 * Per-call options of `inject`.
 *
 * @category models
 * @since 0.1.0
 */
export interface InjectOptions {
  /** The call's key, matched against `keys` (default: the instance's name). */
  readonly key?: string | undefined
}

/**
 * Faults chosen by the caller rather than drawn (see the instance's `force`): a delay
 * before the call (a `latency` fault), then perhaps a terminal fault in its
 * place. Neither field: the call runs as it is (and is counted).
 *
 * @category models
 * @since 0.1.0
 */
export interface Forced {
  /** A delay added before the call. */
  readonly delay?: Duration.Duration | undefined
  /** The fault replacing the call, after the delay. */
  readonly fault?: "failure" | "defect" | "hang" | undefined
}

/**
 * Calls seen and faults injected since the instance was made.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  readonly calls: number
  readonly latency: number
  readonly failure: number
  readonly defect: number
  readonly hang: number
}

/**
 * An instance's events.
 *
 * @category models
 * @since 0.1.0
 */
export interface Event {
  readonly _tag: "FaultInjected"
  readonly chaos: string
  readonly key: string
  readonly fault: Fault
  /** The delay added, for latency. */
  readonly delay: Duration.Duration | undefined
}

/**
 * The service tag of the instance a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const Chaos: Context.Service<Chaos, Chaos> = Context.Service<Chaos>(TypeId)

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const Rate = Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 }))

const defaults = {
  name: "default",
  enabled: true,
  latencyRate: 0,
  latencyMin: Duration.zero,
  failureRate: 0,
  defectRate: 0,
  hangRate: 0
} as const

/**
 * The options: the source of the type, the rules, `layerConfig` and the
 * generated Defaults table.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the instance: the `resilience.name` metric attribute, and the key of calls without one.",
      default: defaults.name
    })
  ),
  enabled: Schema.optionalKey(
    Schema.Boolean.annotate({ description: "Whether faults are injected at the start.", default: defaults.enabled })
  ),
  keys: Schema.optionalKey(
    Schema.Array(Schema.String).annotate({
      description: "Only calls with these keys get faults (default: every call)."
    })
  ),
  latencyRate: Schema.optionalKey(
    Rate.annotate({ description: "Probability that a call is delayed, 0 to 1.", default: defaults.latencyRate })
  ),
  latencyMin: Schema.optionalKey(
    Schema.DurationFromString.annotate({ description: "The shortest delay added.", default: defaults.latencyMin })
  ),
  latencyMax: Schema.optionalKey(
    Schema.DurationFromString.annotate({ description: "The longest delay added (default: `latencyMin`)." })
  ),
  failureRate: Schema.optionalKey(
    Rate.annotate({
      description: "Probability that a call fails with `ChaosError` instead of running, 0 to 1.",
      default: defaults.failureRate
    })
  ),
  defectRate: Schema.optionalKey(
    Rate.annotate({
      description: "Probability that a call dies (a defect) instead of running, 0 to 1.",
      default: defaults.defectRate
    })
  ),
  hangRate: Schema.optionalKey(
    Rate.annotate({
      description: "Probability that a call never ends (until interrupted) instead of running, 0 to 1.",
      default: defaults.hangRate
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
  readonly enabled?: boolean | undefined
  readonly keys?: ReadonlyArray<string> | undefined
  readonly latencyRate?: number | undefined
  readonly latencyMin?: Duration.Input | undefined
  readonly latencyMax?: Duration.Input | undefined
  readonly failureRate?: number | undefined
  readonly defectRate?: number | undefined
  readonly hangRate?: number | undefined
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly enabled: boolean
  readonly keys: ReadonlyArray<string> | undefined
  readonly latencyRate: number
  readonly latencyMin: Duration.Duration
  readonly latencyMax: Duration.Duration
  readonly failureRate: number
  readonly defectRate: number
  readonly hangRate: number
}

const rules: ReadonlyArray<Options_.Rule> = [
  (o) => {
    const min = o.latencyMin
    const max = o.latencyMax
    return Duration.isDuration(min) && Duration.isDuration(max) && Duration.toMillis(max) < Duration.toMillis(min)
      ? [{ path: "latencyMax", message: "Expected a duration at least latencyMin" }]
      : []
  },
  (o) => {
    const rate = (field: string) => {
      const value = o[field]
      return typeof value === "number" && value >= 0 && value <= 1 ? value : 0
    }
    return rate("failureRate") + rate("defectRate") + rate("hangRate") > 1
      ? [{ path: "failureRate", message: "Expected failureRate + defectRate + hangRate to be at most 1" }]
      : []
  }
]

/**
 * Validates options: succeeds with them resolved (defaults applied), or fails
 * with one `Options.InvalidOptions` listing every bad field and its value.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { Chaos } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(Chaos.validateOptions({ failureRate: 1.5, latencyMin: "1 second", latencyMax: "10 millis" }))
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["failureRate", "latencyMax"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input = {}): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const { issues, normalized } = Options_.normalizeDurations({ ...input }, ["latencyMin", "latencyMax"])
  return Effect.map(Options_.validate("Chaos", Options, normalized, rules, issues), (o: Options): ResolvedOptions => {
    const resolved = Options_.withDefaults(o, defaults)
    // no default of its own: `latencyMax` is `latencyMin` when left out
    return { ...resolved, keys: o.keys, latencyMax: o.latencyMax ?? resolved.latencyMin }
  })
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
 * The failure a chaos instance injected in place of a call. The call did not
 * run.
 *
 * @category errors
 * @since 0.1.0
 */
export class ChaosError extends Schema.TaggedError<ChaosError>("@effect-resilience/core/Chaos/ChaosError")(
  "ChaosError",
  {
    chaos: Schema.String,
    key: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Chaos: a failure injected by ${this.chaos} for ${this.key}`
  }
}

/**
 * The defect a chaos instance injected in place of a call.
 *
 * @category errors
 * @since 0.1.0
 */
export class ChaosDefect extends Error {
  readonly chaos: string
  readonly key: string
  constructor(chaos: string, key: string) {
    super(`Chaos: a defect injected by ${chaos} for ${key}`)
    this.name = "ChaosDefect"
    this.chaos = chaos
    this.key = key
  }
}

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

/**
 * Makes a chaos instance that lives as long as the scope (its event streams
 * end and its metrics are unregistered when it closes). Fails with one
 * `Options.InvalidOptions` listing every bad option.
 *
 * **Example** (Latency on one key only)
 *
 * ```ts import.meta.vitest
 * import { Chaos } from "@effect-resilience/core"
 * import { Duration, Effect, Fiber } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const chaos = yield* Chaos.make({ keys: ["eu"], latencyRate: 1, latencyMin: "2 seconds" })
 *   const us = yield* Effect.succeed("us").pipe(Chaos.inject(chaos, { key: "us" }))
 *   const eu = yield* Effect.forkChild(Effect.succeed("eu").pipe(Chaos.inject(chaos, { key: "eu" })))
 *   yield* TestClock.adjust("2 seconds")
 *   return [us, yield* Fiber.join(eu), (yield* chaos.stats).latency]
 * }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => ["us", "eu", 1]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (input?: Input | undefined) => Effect.Effect<Chaos, Options_.InvalidOptions, Scope.Scope> =
  Effect.fnUntraced(function* (input?: Input | undefined) {
    const options = yield* validateOptions(input ?? {})
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    const { close, service } = makeWith(options, context)
    yield* Scope.addFinalizer(scope, close)
    return service
  })

/**
 * Provides `Chaos` for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (input?: Input | undefined): Layer.Layer<Chaos, Options_.InvalidOptions> =>
  Layer.effect(Chaos, make(input))

/**
 * Provides `Chaos` with options read from `Config` under `path` (environment
 * variables such as `chaos_failureRate=0.01` and `chaos_enabled=false` with
 * the default provider), the name defaulting to `path`. Bad values fail with
 * one `Options.InvalidOptions` naming each field and the text it held.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (path: string): Layer.Layer<Chaos, Options_.InvalidOptions | Config.ConfigError> =>
  Layer.effect(
    Chaos,
    Effect.flatMap(Options_.fromConfig("Chaos", Options, path), (options: Options) => make({ name: path, ...options }))
  )

// ---------------------------------------------------------------------------
// combinator
// ---------------------------------------------------------------------------

/**
 * Runs an effect through a chaos instance: perhaps delayed, perhaps replaced
 * by a failure (`ChaosError`), a defect or a hang. Adds only `ChaosError` to
 * the error channel.
 *
 * **Example** (Every call fails)
 *
 * ```ts import.meta.vitest
 * import { Chaos } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const chaos = yield* Chaos.make({ failureRate: 1 })
 *   const error = yield* Effect.flip(Chaos.inject(Effect.succeed("never"), chaos, { key: "checkout" }))
 *   return [error._tag, error.key]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["ChaosError", "checkout"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const inject: {
  /**
   * Injects faults (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  (
    chaos: Chaos,
    options?: InjectOptions | undefined
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | ChaosError, R>
  /**
   * Injects faults (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    chaos: Chaos,
    options?: InjectOptions | undefined
  ): Effect.Effect<A, E | ChaosError, R>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    chaos: Chaos,
    options?: InjectOptions | undefined
  ): Effect.Effect<A, E | ChaosError, R> => chaos.inject(self, options)
)

// ---------------------------------------------------------------------------
// the instance
// ---------------------------------------------------------------------------

/** A uniform draw in [0, 1) from the fiber's `Random` (seeded in tests). */
const draw = (fiber: Fiber.Fiber<unknown, unknown>): number => fiber.getRef(Random.Random).nextDoubleUnsafe()

const makeWith = (
  options: ResolvedOptions,
  context: Context.Context<never>
): { readonly service: Chaos; readonly close: Effect.Effect<void> } => {
  const { defectRate, failureRate, hangRate, latencyRate, name } = options
  const latencyMin = Duration.toMillis(options.latencyMin)
  const latencySpread = Duration.toMillis(options.latencyMax) - latencyMin
  const keys = options.keys === undefined ? undefined : new Set(options.keys)
  let enabled = options.enabled
  const counters = { calls: 0, latency: 0, failure: 0, defect: 0, hang: 0 }
  const hub = Hub.make<Event>()

  const injected = (
    fiber: Fiber.Fiber<unknown, unknown>,
    key: string,
    fault: Fault,
    delay: Duration.Duration | undefined
  ) => {
    counters[fault]++
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span !== undefined && span._tag === "Span") {
      span.event("FaultInjected", fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), {
        [Telemetry.attributes.name]: name,
        [Telemetry.attributes.reason]: fault
      })
    }
    if (hub.listening()) hub.emit({ _tag: "FaultInjected", chaos: name, key, fault, delay })
  }

  /** A terminal fault in place of the call, recorded. */
  const replace = (
    fiber: Fiber.Fiber<unknown, unknown>,
    key: string,
    fault: "failure" | "defect" | "hang"
  ): Effect.Effect<never, ChaosError> => {
    injected(fiber, key, fault, undefined)
    return fault === "failure"
      ? Effect.fail(new ChaosError({ chaos: name, key }))
      : fault === "defect"
        ? Effect.die(new ChaosDefect(name, key))
        : Effect.never
  }

  /** The fault replacing the call, if any: one draw over the three terminal rates. */
  const terminal = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    key: string
  ): Effect.Effect<A, E | ChaosError, R> => {
    if (failureRate + defectRate + hangRate === 0) return self
    const r = draw(fiber)
    if (r < failureRate) return replace(fiber, key, "failure")
    if (r < failureRate + defectRate) return replace(fiber, key, "defect")
    if (r < failureRate + defectRate + hangRate) return replace(fiber, key, "hang")
    return self
  }

  /** Whether a call under `key` may get faults: the instance enabled and the key among `keys` (when given). */
  const targeted = (key: string): boolean => enabled && (keys === undefined || keys.has(key))

  const forceCall = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    faults: Forced,
    callOptions?: InjectOptions | undefined
  ): Effect.Effect<A, E | ChaosError, R> =>
    Effect.withFiber((fiber) => {
      counters.calls++
      const key = callOptions?.key ?? name
      if (!targeted(key)) return self
      const fault = faults.fault
      const delay = faults.delay
      if (delay === undefined) return fault === undefined ? self : replace(fiber, key, fault)
      injected(fiber, key, "latency", delay)
      const after: Effect.Effect<A, E | ChaosError, R> =
        fault === undefined ? self : Effect.withFiber((later) => replace(later, key, fault))
      return Effect.andThen(Effect.sleep(delay), after)
    })

  const injectCall = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions?: InjectOptions | undefined
  ): Effect.Effect<A, E | ChaosError, R> =>
    Effect.withFiber((fiber) => {
      counters.calls++
      const key = callOptions?.key ?? name
      if (!targeted(key)) return self
      if (latencyRate > 0 && draw(fiber) < latencyRate) {
        const delay = Duration.millis(latencyMin + (latencySpread > 0 ? draw(fiber) * latencySpread : 0))
        injected(fiber, key, "latency", delay)
        return Effect.andThen(
          Effect.sleep(delay),
          Effect.withFiber((after) => terminal(after, self, key))
        )
      }
      return terminal(fiber, self, key)
    })

  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  for (const fault of ["latency", "failure", "defect", "hang"] as const) {
    registrar.counter(
      Telemetry.chaos.injected,
      { ...base, [Telemetry.attributes.reason]: fault },
      () => counters[fault]
    )
  }
  registrar.counter(Telemetry.chaos.calls, base, () => counters.calls)

  const service: Chaos = {
    [TypeId]: TypeId,
    name,
    options,
    inject: injectCall,
    force: forceCall,
    enable: Effect.sync(() => {
      enabled = true
    }),
    disable: Effect.sync(() => {
      enabled = false
    }),
    enabled: Effect.sync(() => enabled),
    stats: Effect.sync(() => ({ ...counters })),
    subscribe: hub.subscribe,
    events: hub.events
  }
  return { service, close: Effect.andThen(hub.end, Effect.sync(registrar.removeAll)) }
}
