/**
 * Alerts: rules defined once in code, evaluated over the patterns' events and
 * state, firing when their condition has held for a while and resolving when
 * it has cleared.
 *
 * A **rule** is data: a name, a severity, a description, a condition, how
 * long the condition must hold before the rule fires (`for`) and how long it
 * must be clear before a firing rule resolves (`resolveAfter`, hysteresis).
 * Built-in rules watch the patterns (`circuitOpen`, `rejectionRate`,
 * `limiterAlert`, `healthStatus`, `bulkheadSaturation`); `fromStream` and
 * `fromEffect` make rules of any condition. The built-ins' names, severities,
 * descriptions and default `for` come from one catalogue (`builtins`), which
 * also generates the table in the guide.
 *
 * An **Alert** registry evaluates its rules: a condition with a stream is
 * read as its stream pushes, a condition with an effect is read every
 * `interval` (and at once after any event that may change it), all on
 * Effect's `Clock`. Each rule goes `inactive` → `pending` (the condition is
 * true, `for` has not elapsed) → `firing` → `resolved`. The built-ins over a
 * pattern with events (`circuitOpen`, `limiterAlert`, `healthStatus`) take
 * each event's new state as a reading, in order: a breaker that opens and
 * closes between two polls is still seen (a rule with `for: 0` fires and
 * resolves; with a longer `for` the blip does not fire).
 *
 * **Details**
 *
 * - Monitoring: `events` (`AlertFiring`, `AlertResolved`), `status` (every
 *   rule's state), the gauge `resilience.alert.firing` per rule and the
 *   counter `resilience.alert.transitions`. Rule names are configuration:
 *   they are metric attributes.
 * - Sinks: effects run, in order, for every firing and resolution, from a
 *   queue of at most `sinkQueue` events: behind a stuck sink the oldest are
 *   dropped (counted in `stats` and `resilience.alert.sink.dropped`), so the
 *   sinks see the latest. A sink that fails or dies is counted
 *   (`resilience.alert.sink_errors`) and never stops the evaluation.
 * - Everything runs in fibers of the registry's scope: closing it stops the
 *   evaluation, ends the event streams and unregisters the metrics.
 *
 * **Gotchas**
 *
 * - Between two readings a condition is taken to be what it last read: a
 *   custom condition read by an effect that flips and flips back between two
 *   polls is not seen. Give such a condition a stream (`readings`), or a
 *   shorter `interval`.
 * - A condition that fails to be read keeps its last reading; the failure
 *   shows in `status` (`lastError`, `errors`).
 *
 * **Example** (A breaker open for 30 seconds fires)
 *
 * ```ts import.meta.vitest
 * import { Alert, CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   const alerts = yield* Alert.make({ rules: [Alert.circuitOpen(breaker, { for: "30 seconds" })] })
 *   yield* breaker.forceOpen()
 *   yield* TestClock.adjust("10 seconds")
 *   const early = (yield* alerts.status)[0]?.state
 *   yield* TestClock.adjust("25 seconds")
 *   return [early, (yield* alerts.status)[0]?.state]
 * }).pipe(Effect.scoped, Effect.provide([CircuitBreaker.layerStoreMemory(), TestClock.layer()]))
 *
 * await Effect.runPromise(program)
 * // => ["pending", "firing"]
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
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Bulkhead from "./Bulkhead.ts"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import type * as Health from "./Health.ts"
import * as machine from "./internal/alert.ts"
import * as Hub from "./internal/events.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Options_ from "./Options.ts"
import type * as RateLimiter from "./RateLimiter.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of `Alert` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Alert"

/**
 * Type-level identifier of `Alert` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Alert"

/**
 * Runtime identifier of rules.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const RuleTypeId: RuleTypeId = "~@effect-resilience/core/Alert/Rule"

/**
 * Type-level identifier of rules.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type RuleTypeId = "~@effect-resilience/core/Alert/Rule"

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * The state of a rule: `inactive` (never true, or true too briefly),
 * `pending` (true, not yet for `for`), `firing`, `resolved` (fired, then
 * clear for `resolveAfter`).
 *
 * @category models
 * @since 0.1.0
 */
export type State = machine.Phase

/**
 * One reading of a condition: whether it holds, and optionally a value (a
 * rate, a count of open circuits) and a word of detail for the events.
 *
 * @category models
 * @since 0.1.0
 */
export interface Reading {
  readonly active: boolean
  readonly value?: number | undefined
  readonly detail?: string | undefined
}

/**
 * How a rule's condition is read. `readings` pushes readings as they come;
 * `read` is run at the start, every evaluation interval and after each
 * element of `triggers` (events that may change it).
 *
 * @category models
 * @since 0.1.0
 */
export interface Condition<R = never> {
  readonly read?: Effect.Effect<Reading, unknown, R> | undefined
  readonly readings?: Stream.Stream<Reading, unknown, R> | undefined
  readonly triggers?: Stream.Stream<unknown, unknown, R> | undefined
  /** How often `read` runs (default: the registry's `interval`). */
  readonly interval?: Duration.Input | undefined
}

/**
 * The built-in kinds of rule, and `custom` for `fromStream` / `fromEffect` /
 * `rule`.
 *
 * @category models
 * @since 0.1.0
 */
export type Kind = "circuitOpen" | "rejectionRate" | "limiterAlert" | "healthStatus" | "bulkheadSaturation" | "custom"

/**
 * An alert rule: data, evaluated by an `Alert` registry.
 *
 * @category models
 * @since 0.1.0
 */
export interface Rule<R = never> {
  readonly [RuleTypeId]: RuleTypeId
  /** The rule's name: unique in a registry, the `resilience.alert.rule` attribute of its metrics. */
  readonly name: string
  readonly kind: Kind
  readonly severity: Telemetry.Severity
  readonly description: string
  /** How long the condition must hold before the rule fires. */
  readonly for: Duration.Input
  /** How long the condition must be clear before a firing rule resolves (default: the registry's). */
  readonly resolveAfter: Duration.Input | undefined
  /**
   * The condition, or a function making it when the condition keeps state
   * of its own (a rate between two readings): called once per registry.
   */
  readonly condition: Condition<R> | (() => Condition<R>)
  /** Problems with the rule's own parameters (a threshold out of range), reported by `make`. */
  readonly issues: ReadonlyArray<{ readonly field: string; readonly value: unknown; readonly message: string }>
}

/**
 * What every rule constructor takes besides its own parameters: each one
 * overrides the catalogue's default.
 *
 * @category models
 * @since 0.1.0
 */
export interface RuleOptions {
  readonly name?: string | undefined
  readonly severity?: Telemetry.Severity | undefined
  readonly description?: string | undefined
  readonly for?: Duration.Input | undefined
  readonly resolveAfter?: Duration.Input | undefined
}

/**
 * A rule's status in a registry.
 *
 * @category models
 * @since 0.1.0
 */
export interface RuleStatus {
  readonly name: string
  readonly kind: Kind
  readonly severity: Telemetry.Severity
  readonly description: string
  readonly state: State
  /** Clock millis: when the condition became true (pending, firing), or when the state began. */
  readonly since: number
  /** Clock millis of the last firing. */
  readonly firedAt: number | undefined
  /** The last reading's value and detail. */
  readonly value: number | undefined
  readonly detail: string | undefined
  /** Firings and resolutions so far. */
  readonly transitions: number
  /** Failures to read the condition so far, and the last one. */
  readonly errors: number
  readonly lastError: string | undefined
}

/**
 * A registry's events: a rule fired, or resolved.
 *
 * @category models
 * @since 0.1.0
 */
export interface Event {
  readonly _tag: "AlertFiring" | "AlertResolved"
  /** The registry's name. */
  readonly alert: string
  readonly rule: string
  readonly kind: Kind
  readonly severity: Telemetry.Severity
  readonly description: string
  /** Clock millis: when the condition became true (the start of the episode). */
  readonly since: number
  /** Clock millis of the transition. */
  readonly at: number
  /** The reading's value and detail at the transition. */
  readonly value: number | undefined
  readonly detail: string | undefined
}

/**
 * Where firings and resolutions go besides `events`: an effect per event.
 * Its failures and defects are counted, never propagated.
 *
 * @category models
 * @since 0.1.0
 */
export type Sink = (event: Event) => Effect.Effect<void, unknown>

/**
 * The sinks' counters of a registry.
 *
 * @category models
 * @since 0.2.0
 */
export interface Stats {
  /** Sinks that failed or died on an event. */
  readonly sinkErrors: number
  /** Events dropped, the oldest first, because `sinkQueue` events were waiting for the sinks. */
  readonly sinkDropped: number
  /** Events waiting for the sinks now (at most `sinkQueue`). */
  readonly sinkQueued: number
}

/**
 * An alert registry.
 *
 * @category models
 * @since 0.1.0
 */
export interface Alert {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** Every rule's status, in the order given. */
  readonly status: Effect.Effect<ReadonlyArray<RuleStatus>>
  /** The rules firing now. */
  readonly firing: Effect.Effect<ReadonlyArray<RuleStatus>>
  /** Sink failures so far. */
  readonly sinkErrors: Effect.Effect<number>
  /** The sinks' counters: failures, events dropped from their full queue, events waiting now. */
  readonly stats: Effect.Effect<Stats>
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the registry a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const Alert: Context.Service<Alert, Alert> = Context.Service<Alert>(TypeId)

// ---------------------------------------------------------------------------
// the catalogue of built-in rules
// ---------------------------------------------------------------------------

/**
 * One built-in rule of the catalogue: its default name (`{name}` is the
 * watched instance's name), severity, `for` and what its condition is.
 *
 * @category catalogue
 * @since 0.1.0
 */
export interface BuiltinSpec {
  readonly kind: Exclude<Kind, "custom">
  readonly constructor: string
  readonly name: string
  readonly severity: Telemetry.Severity
  readonly for: string
  readonly description: string
  readonly evaluation: string
}

/**
 * The built-in rules: the one source of their defaults and of the table in
 * the alerts guide.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const builtins = {
  circuitOpen: {
    kind: "circuitOpen",
    constructor: "Alert.circuitOpen(breaker, { key?, for? })",
    name: "circuit-open:{name}",
    severity: "error",
    for: "30 seconds",
    description:
      "A circuit of the breaker (the `key`'s, or any) is not closed: Open, HalfOpen (still probing) or ForcedOpen. The value is the number of such circuits.",
    evaluation:
      "Each `StateTransition` event is a reading (its new state, in order: a blip between two polls is seen); also read every interval."
  },
  rejectionRate: {
    kind: "rejectionRate",
    constructor: "Alert.rejectionRate(limiter, { threshold?, for? })",
    name: "rejection-rate:{name}",
    severity: "warning",
    for: "1 minute",
    description:
      "The limiter's rejections / decisions since the previous reading are at or above `threshold` (default 0.5). The value is that rate.",
    evaluation: "Polled every interval (the rate's window)."
  },
  limiterAlert: {
    kind: "limiterAlert",
    constructor: "Alert.limiterAlert(limiter, { for? })",
    name: "limiter-alert:{name}",
    severity: "warning",
    for: "0 seconds",
    description:
      "The limiter's own rejection alert (`alertRejectionRate` for `alertFor`) is raised. The value is the rejection rate.",
    evaluation: "Each `AlertTriggered` / `AlertResolved` event is a reading (in order); also read every interval."
  },
  healthStatus: {
    kind: "healthStatus",
    constructor: "Alert.healthStatus(health, { atLeast?, component?, for? })",
    name: "health-status:{name}",
    severity: "error",
    for: "0 seconds",
    description:
      "The registry's status (or one `component`'s) is at least `atLeast` (default `\"unhealthy\"`). The value is 0 healthy, 1 degraded, 2 unhealthy.",
    evaluation:
      "Each `StatusChanged` (a component) / `OverallStatusChanged` (the whole) event is a reading of its new status (in order); also read every interval."
  },
  bulkheadSaturation: {
    kind: "bulkheadSaturation",
    constructor: "Alert.bulkheadSaturation(bulkhead, { key?, threshold?, for? })",
    name: "bulkhead-saturation:{name}",
    severity: "warning",
    for: "1 minute",
    description:
      "The bulkhead's permits held / `maxConcurrent` (for `key`, or its own compartment) is at or above `threshold` (default 1). The value is that ratio.",
    evaluation:
      "Polled every interval, and read again at every bulkhead event (a call queued, granted after waiting, rejected)."
  }
} as const satisfies Record<Exclude<Kind, "custom">, BuiltinSpec>

/**
 * Renders the built-in rules as a Markdown table (the guide's generated section).
 *
 * @category rendering
 * @since 0.1.0
 */
export const rulesTable = (specs: ReadonlyArray<BuiltinSpec> = Object.values(builtins)): string =>
  [
    "| constructor | default name | severity | default `for` | condition | evaluation |",
    "|---|---|---|---|---|---|",
    ...specs.map(
      (spec) =>
        `| \`${spec.constructor}\` | \`${spec.name}\` | ${spec.severity} | ${spec.for} | ${spec.description} | ${spec.evaluation} |`
    )
  ].join("\n")

// ---------------------------------------------------------------------------
// rule constructors
// ---------------------------------------------------------------------------

const ratioIssue = (field: string, value: unknown, exclusiveZero: boolean) =>
  typeof value === "number" && (exclusiveZero ? value > 0 : value >= 0) && value <= 1
    ? []
    : [{ field, value, message: `Expected a number ${exclusiveZero ? "greater than 0" : "between 0"} and at most 1` }]

const fromSpec = <R>(
  spec: BuiltinSpec,
  instance: string,
  options: RuleOptions | undefined,
  condition: Condition<R> | (() => Condition<R>),
  issues: Rule["issues"] = []
): Rule<R> => ({
  [RuleTypeId]: RuleTypeId,
  name: options?.name ?? spec.name.replace("{name}", instance),
  kind: spec.kind,
  severity: options?.severity ?? spec.severity,
  description: options?.description ?? spec.description,
  for: options?.for ?? (spec.for as Duration.Input),
  resolveAfter: options?.resolveAfter,
  condition,
  issues
})

/**
 * A rule of any condition: the general constructor the others build on.
 *
 * @category constructors
 * @since 0.1.0
 */
export const rule = <R = never>(
  name: string,
  condition: Condition<R> | (() => Condition<R>),
  options?: Omit<RuleOptions, "name"> | undefined
): Rule<R> => ({
  [RuleTypeId]: RuleTypeId,
  name,
  kind: "custom",
  severity: options?.severity ?? "warning",
  description: options?.description ?? "",
  for: options?.for ?? Duration.zero,
  resolveAfter: options?.resolveAfter,
  condition,
  issues: []
})

const toReading = (value: boolean | Reading): Reading => (typeof value === "boolean" ? { active: value } : value)

/**
 * A rule over a stream of conditions (booleans or readings), taken as they
 * come: the condition holds from an element `true` until an element `false`.
 *
 * **Example** (A custom condition pushed by a stream)
 *
 * ```ts import.meta.vitest
 * import { Alert } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const diskFull = Alert.fromStream("disk-full", Stream.make(false, true), { for: "1 minute" })
 *   const alerts = yield* Alert.make({ rules: [diskFull] })
 *   yield* TestClock.adjust("1 second") // the stream is read: pending
 *   yield* TestClock.adjust("1 minute")
 *   return (yield* alerts.firing).map((status) => status.name)
 * }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => ["disk-full"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromStream = <E, R>(
  name: string,
  conditions: Stream.Stream<boolean | Reading, E, R>,
  options?: Omit<RuleOptions, "name"> | undefined
): Rule<R> => rule(name, { readings: Stream.map(conditions, toReading) }, options)

/**
 * A rule over an effect read every `interval` (default: the registry's).
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromEffect = <E, R>(
  name: string,
  condition: Effect.Effect<boolean | Reading, E, R>,
  options?: (Omit<RuleOptions, "name"> & { readonly interval?: Duration.Input | undefined }) | undefined
): Rule<R> => rule(name, { read: Effect.map(condition, toReading), interval: options?.interval }, options)

const notClosed = (tag: CircuitBreaker.StateTag): boolean =>
  tag === "Open" || tag === "HalfOpen" || tag === "ForcedOpen"

/**
 * Fires when a circuit of `breaker` stays not closed (Open, HalfOpen or
 * ForcedOpen) for `for`: the `key`'s circuit, or any circuit without a key.
 * HalfOpen counts as open so that failed probes (Open → HalfOpen → Open) do
 * not restart the wait.
 *
 * **Details**
 *
 * Each `StateTransition` event is a reading of its new state, taken in
 * order, and the breaker is also read every `interval` (transitions made by
 * another process over a shared store have no local event). So a circuit
 * that opens and closes again between two polls is seen: with `for: 0` the
 * rule fires and then resolves; with a longer `for`, a blip shorter than it
 * never fires.
 *
 * **Example** (A blip between two polls fires a `for: 0` rule)
 *
 * ```ts import.meta.vitest
 * import { Alert, CircuitBreaker } from "@effect-resilience/core"
 * import { Effect, Queue } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   const alerts = yield* Alert.make({ interval: "1 minute", rules: [Alert.circuitOpen(breaker, { for: 0 })] })
 *   const events = yield* alerts.subscribe
 *   yield* TestClock.adjust("1 second") // the rule listens
 *   yield* breaker.forceOpen() // open, and closed again, before the next poll
 *   yield* breaker.reset()
 *   const fired = yield* Queue.take(events)
 *   const resolved = yield* Queue.take(events)
 *   return [fired._tag, resolved._tag]
 * }).pipe(Effect.scoped, Effect.provide([CircuitBreaker.layerStoreMemory(), TestClock.layer()]))
 *
 * await Effect.runPromise(program)
 * // => ["AlertFiring", "AlertResolved"]
 * ```
 *
 * @category built-in rules
 * @since 0.1.0
 */
export const circuitOpen = (
  breaker: CircuitBreaker.CircuitBreaker,
  options?: (RuleOptions & { readonly key?: string | undefined }) | undefined
): Rule => {
  const key = options?.key
  const transitions = Stream.filter(
    breaker.events,
    (event): event is CircuitBreaker.Event.StateTransition => event._tag === "StateTransition"
  )
  const one = (tag: CircuitBreaker.StateTag): Reading => ({
    active: notClosed(tag),
    value: notClosed(tag) ? 1 : 0,
    detail: tag
  })
  return fromSpec(
    builtins.circuitOpen,
    breaker.name,
    options,
    key !== undefined
      ? {
          read: Effect.map(breaker.state(key), (state) => one(state._tag)),
          readings: Stream.map(
            Stream.filter(transitions, (event) => event.key === key),
            (event) => one(event.to)
          )
        }
      : // the circuits not closed, as last read and as changed since: state of each registry's own
        () => {
          const open = new Set<string>()
          const reading = (): Reading => ({ active: open.size > 0, value: open.size, detail: [...open].join(", ") })
          return {
            read: Effect.map(breaker.snapshot, (snapshot) => {
              open.clear()
              for (const circuit of snapshot.circuits) if (notClosed(circuit.state)) open.add(circuit.key)
              return reading()
            }),
            readings: Stream.map(transitions, (event) => {
              if (notClosed(event.to)) open.add(event.key)
              else open.delete(event.key)
              return reading()
            })
          }
        }
  )
}

/**
 * Fires when the share of `limiter`'s decisions rejected between two
 * readings (every interval) stays at or above `threshold` for `for`. A
 * reading with no decisions is clear.
 *
 * @category built-in rules
 * @since 0.1.0
 */
export const rejectionRate = (
  limiter: RateLimiter.RateLimiter,
  options?: (RuleOptions & { readonly threshold?: number | undefined }) | undefined
): Rule => {
  const threshold = options?.threshold ?? 0.5
  return fromSpec(
    builtins.rejectionRate,
    limiter.name,
    options,
    // the counts of the previous reading: state of each registry's own
    () => {
      let previous: { allowed: number; rejected: number } | undefined
      return {
        read: Effect.map(limiter.stats, (stats) => {
          const allowed = stats.allowed - (previous?.allowed ?? 0)
          const rejected = stats.rejected - (previous?.rejected ?? 0)
          previous = { allowed: stats.allowed, rejected: stats.rejected }
          const total = allowed + rejected
          const rate = total === 0 ? 0 : rejected / total
          return { active: total > 0 && rate >= threshold, value: rate }
        })
      }
    },
    ratioIssue("threshold", threshold, true)
  )
}

/**
 * Follows `limiter`'s own rejection alert (its `alertRejectionRate` and
 * `alertFor` options): fires while it is raised (after `for`, default 0).
 *
 * @category built-in rules
 * @since 0.1.0
 */
export const limiterAlert = (limiter: RateLimiter.RateLimiter, options?: RuleOptions | undefined): Rule =>
  fromSpec(builtins.limiterAlert, limiter.name, options, {
    read: Effect.map(limiter.alert, (alert) => ({ active: alert.alerting, value: alert.rejectionRate })),
    // each event is a reading, in order: a raise and a resolution between two polls both count
    readings: Stream.filterMap(limiter.events, (event) =>
      event._tag === "AlertTriggered"
        ? Result.succeed<Reading>({ active: true, value: event.rejectionRate })
        : event._tag === "AlertResolved"
          ? Result.succeed<Reading>({ active: false, value: event.rejectionRate })
          : Result.failVoid
    )
  })

const rank: Record<Health.Status, number> = { healthy: 0, degraded: 1, unhealthy: 2 }

/**
 * Fires when `health`'s overall status (or one `component`'s) is at least
 * `atLeast` (default `"unhealthy"`) for `for`.
 *
 * @category built-in rules
 * @since 0.1.0
 */
export const healthStatus = (
  health: Health.Health,
  options?:
    | (RuleOptions & {
        readonly atLeast?: "degraded" | "unhealthy" | undefined
        readonly component?: string | undefined
      })
    | undefined
): Rule => {
  const atLeast = options?.atLeast ?? "unhealthy"
  const component = options?.component
  const of = (status: Health.Status): Reading => ({
    active: rank[status] >= rank[atLeast],
    value: rank[status],
    detail: status
  })
  return fromSpec(
    builtins.healthStatus,
    component === undefined ? health.name : `${health.name}/${component}`,
    options,
    {
      read: Effect.map(health.status, (report) => {
        const status =
          component === undefined ? report.status : report.components.find((c) => c.name === component)?.status
        return status === undefined ? { active: false, detail: "unknown component" } : of(status)
      }),
      // each change is a reading of its new status, in order: a flip between two polls is seen
      readings: Stream.filterMap(health.events, (event) =>
        component === undefined
          ? event._tag === "OverallStatusChanged" && event.view === "all"
            ? Result.succeed(of(event.to))
            : Result.failVoid
          : event._tag === "StatusChanged" && event.component === component
            ? Result.succeed(of(event.to))
            : Result.failVoid
      )
    },
    atLeast === "degraded" || atLeast === "unhealthy"
      ? []
      : [{ field: "atLeast", value: atLeast, message: 'Expected "degraded" | "unhealthy"' }]
  )
}

/**
 * Fires when `bulkhead`'s permits held over `maxConcurrent` (for `key`, or
 * the bulkhead's own compartment) stay at or above `threshold` (default 1:
 * full) for `for`.
 *
 * @category built-in rules
 * @since 0.1.0
 */
export const bulkheadSaturation = (
  bulkhead: Bulkhead.Bulkhead,
  options?: (RuleOptions & { readonly key?: string | undefined; readonly threshold?: number | undefined }) | undefined
): Rule => {
  const threshold = options?.threshold ?? 1
  return fromSpec(
    builtins.bulkheadSaturation,
    bulkhead.name,
    options,
    {
      read: Effect.map(bulkhead.state(options?.key), (state) => {
        const ratio = state.active / bulkhead.options.maxConcurrent
        return { active: ratio >= threshold, value: ratio, detail: `${state.queued} queued` }
      }),
      triggers: bulkhead.events
    },
    ratioIssue("threshold", threshold, true)
  )
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const defaults = {
  name: "default",
  interval: Duration.seconds(10),
  resolveAfter: Duration.zero,
  sinkQueue: 1_000
} as const

/**
 * The registry's options: the source of the type, the rules, `layerConfig`
 * and the generated Defaults table. Rules and sinks are programmatic only.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the registry: the `resilience.name` attribute of its metrics.",
      default: defaults.name
    })
  ),
  interval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How often conditions read by an effect are read (a rule's own `interval` wins). Above zero.",
      default: defaults.interval
    })
  ),
  resolveAfter: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How long a firing rule's condition must be clear before it resolves, for rules without their own.",
      default: defaults.resolveAfter
    })
  ),
  sinkQueue: Schema.optionalKey(
    Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)).annotate({
      description:
        "Events waiting for the sinks at most; behind a slow sink the oldest are dropped (counted), so the sinks see the latest.",
      default: defaults.sinkQueue
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` takes them: durations as any `Duration.Input`, with the
 * rules and the sinks.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input<R = never> {
  readonly name?: string | undefined
  readonly interval?: Duration.Input | undefined
  readonly resolveAfter?: Duration.Input | undefined
  readonly sinkQueue?: number | undefined
  readonly rules?: ReadonlyArray<Rule<R>> | undefined
  readonly sinks?: ReadonlyArray<Sink> | undefined
}

/**
 * A rule validated: its durations resolved.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedRule<R = never> extends Rule<R> {
  /** The condition this registry evaluates (made by `condition` when it is a function). */
  readonly evaluated: Condition<R>
  readonly forDuration: Duration.Duration
  readonly resolveAfterDuration: Duration.Duration
  readonly intervalDuration: Duration.Duration
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions<R = never> {
  readonly name: string
  readonly interval: Duration.Duration
  readonly resolveAfter: Duration.Duration
  readonly sinkQueue: number
  readonly rules: ReadonlyArray<ResolvedRule<R>>
  readonly sinks: ReadonlyArray<Sink>
}

const duration = (value: Duration.Input): Option.Option<Duration.Duration> => {
  const found = Duration.isDuration(value) ? Option.some(value) : Duration.fromInput(value)
  return Option.filter(found, (d) => Duration.toMillis(d) >= 0)
}

/**
 * Validates options and rules: succeeds with them resolved, or fails with
 * one `Options.InvalidOptions` listing every bad field. A rule's fields are
 * named `rules.<rule name>.<field>` (`rules.<index>.name` for its name).
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { Alert } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     Alert.validateOptions({
 *       interval: "0 seconds",
 *       rules: [Alert.fromEffect("slow", Effect.succeed(true), { for: "-1 second" })]
 *     })
 *   )
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["rules.slow.for", "interval"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = <R = never>(
  input: Input<R> = {}
): Effect.Effect<ResolvedOptions<R>, Options_.InvalidOptions> => {
  const { rules = [], sinks = [], ...rest } = input
  const { issues, normalized } = Options_.normalizeDurations({ ...rest }, ["interval", "resolveAfter"])
  const ruleIssues: Array<Options_.Issue> = []
  const issue = (path: string, value: unknown, message: string) =>
    ruleIssues.push(new Options_.Issue({ path, value: Options_.renderValue(value), message }))
  const seen = new Set<string>()
  const resolved: Array<{
    evaluated: Condition<R>
    rule: Rule<R>
    for: Duration.Duration
    resolveAfter?: Duration.Duration
    interval?: Duration.Duration
  }> = []
  rules.forEach((rule, index) => {
    if (rule.name.length === 0) issue(`rules.${index}.name`, rule.name, "Expected a non-empty rule name")
    else if (seen.has(rule.name))
      issue(`rules.${index}.name`, rule.name, "Expected a rule name not used by another rule")
    seen.add(rule.name)
    const at = `rules.${rule.name.length === 0 ? index : rule.name}`
    const forDuration = duration(rule.for)
    if (Option.isNone(forDuration)) issue(`${at}.for`, rule.for, "Expected a non-negative duration")
    const resolveAfter = rule.resolveAfter === undefined ? undefined : duration(rule.resolveAfter)
    if (resolveAfter !== undefined && Option.isNone(resolveAfter)) {
      issue(`${at}.resolveAfter`, rule.resolveAfter, "Expected a non-negative duration")
    }
    const evaluated = typeof rule.condition === "function" ? rule.condition() : rule.condition
    if (evaluated.read === undefined && evaluated.readings === undefined) {
      issue(`${at}.condition`, undefined, "Expected a condition with a read effect or a readings stream")
    }
    const interval = evaluated.interval === undefined ? undefined : duration(evaluated.interval)
    if (interval !== undefined && (Option.isNone(interval) || Duration.toMillis(interval.value) <= 0)) {
      issue(`${at}.interval`, evaluated.interval, "Expected a duration greater than zero")
    }
    for (const found of rule.issues) issue(`${at}.${found.field}`, found.value, found.message)
    resolved.push({
      evaluated,
      rule,
      for: Option.getOrElse(forDuration, () => Duration.zero),
      ...(resolveAfter !== undefined && Option.isSome(resolveAfter) ? { resolveAfter: resolveAfter.value } : {}),
      ...(interval !== undefined && Option.isSome(interval) ? { interval: interval.value } : {})
    })
  })
  return Effect.map(
    Options_.validate(
      "Alert",
      Options,
      normalized,
      [Options_.positiveDuration("interval")],
      [...ruleIssues, ...issues]
    ),
    (o: Options): ResolvedOptions<R> => {
      const registry = Options_.withDefaults(o, defaults)
      return {
        ...registry,
        // a rule's own interval and resolveAfter, else the registry's
        rules: resolved.map((r) => ({
          ...r.rule,
          evaluated: r.evaluated,
          forDuration: r.for,
          resolveAfterDuration: r.resolveAfter ?? registry.resolveAfter,
          intervalDuration: r.interval ?? registry.interval
        })),
        sinks
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
// sinks
// ---------------------------------------------------------------------------

/**
 * A sink that logs each firing (at the rule's severity: warning, error or
 * critical as `Error`/`Fatal`) and each resolution (info).
 *
 * @category sinks
 * @since 0.1.0
 */
export const logSink: Sink = (event) => {
  const message = `alert ${event.rule} ${event._tag === "AlertFiring" ? "firing" : "resolved"}`
  const annotations = { rule: event.rule, severity: event.severity, value: event.value, detail: event.detail }
  const log =
    event._tag === "AlertResolved"
      ? Effect.logInfo(message)
      : event.severity === "critical"
        ? Effect.logFatal(message)
        : event.severity === "error"
          ? Effect.logError(message)
          : event.severity === "warning"
            ? Effect.logWarning(message)
            : Effect.logInfo(message)
  return Effect.annotateLogs(log, annotations)
}

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

/**
 * Makes a registry evaluating `rules` for as long as the scope lives. Fails
 * with one `Options.InvalidOptions` listing every bad option and rule field.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <R = never>(
  input?: Input<R> | undefined
): Effect.Effect<Alert, Options_.InvalidOptions, Scope.Scope | R> =>
  Effect.gen(function* () {
    const options = yield* validateOptions(input ?? {})
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    return yield* makeWith(options, scope, context)
  })

/**
 * Provides `Alert` for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <R = never>(input?: Input<R> | undefined): Layer.Layer<Alert, Options_.InvalidOptions, R> =>
  Layer.effect(Alert, make(input))

/**
 * Provides `Alert` with options read from `Config` under `path` (environment
 * variables such as `alerts_interval=5s` with the default provider), the
 * name defaulting to `path`; the rules and sinks are given in code. Bad
 * values fail with one `Options.InvalidOptions` naming each field.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = <R = never>(
  path: string,
  program: Pick<Input<R>, "rules" | "sinks">
): Layer.Layer<Alert, Options_.InvalidOptions | Config.ConfigError, R> =>
  Layer.effect(
    Alert,
    Effect.flatMap(Options_.fromConfig("Alert", Options, path), (options: Options) =>
      make<R>({ name: path, ...options, ...program })
    )
  )

// ---------------------------------------------------------------------------
// the registry
// ---------------------------------------------------------------------------

type Signal = { readonly _tag: "Reading"; readonly reading: Reading } | { readonly _tag: "Read" }

const readSignal: Signal = { _tag: "Read" }

const renderCause = (cause: Cause.Cause<unknown>): string => {
  const reason = cause.reasons[0]
  if (reason === undefined) return "unknown"
  const found = reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : "interrupted"
  return found instanceof Error ? found.message : typeof found === "string" ? found : Options_.renderValue(found)
}

const makeWith = <R>(
  options: ResolvedOptions<R>,
  scope: Scope.Scope,
  context: Context.Context<never>
): Effect.Effect<Alert, never, R> =>
  Effect.gen(function* () {
    const { name } = options
    const hub = Hub.make<Event>()
    const registrar = Metrics.registrar(context)
    yield* Scope.addFinalizer(scope, Effect.andThen(hub.end, Effect.sync(registrar.removeAll)))
    let sinkErrors = 0
    let sinkDropped = 0
    // bounded: behind a stuck sink the oldest events go, so the sinks catch up with the latest
    const outbox = yield* Queue.sliding<Event>(options.sinkQueue)
    const toSinks = (event: Event) => {
      if (Queue.sizeUnsafe(outbox) >= options.sinkQueue) sinkDropped++
      Queue.offerUnsafe(outbox, event)
    }
    if (options.sinks.length > 0) {
      yield* Effect.forkIn(
        Effect.forever(
          Effect.flatMap(Queue.take(outbox), (event) =>
            Effect.forEach(
              options.sinks,
              (sink) =>
                Effect.catchCause(
                  Effect.suspend(() => sink(event)),
                  () =>
                    Effect.sync(() => {
                      sinkErrors++
                    })
                ),
              { discard: true }
            )
          )
        ),
        scope
      )
    }
    registrar.counter(Telemetry.alert.sinkErrors, { [Telemetry.attributes.name]: name }, () => sinkErrors)
    registrar.counter(Telemetry.alert.sinkDropped, { [Telemetry.attributes.name]: name }, () => sinkDropped)

    const entries = options.rules.map((rule) => ({
      rule,
      config: {
        forMillis: Duration.toMillis(rule.forDuration),
        resolveAfterMillis: Duration.toMillis(rule.resolveAfterDuration)
      },
      state: machine.initial(0),
      reading: { active: false } as Reading,
      firings: 0,
      resolutions: 0,
      errors: 0,
      lastError: undefined as string | undefined
    }))

    const now = Clock.clockWith((clock) => Effect.sync(() => clock.currentTimeMillisUnsafe()))
    const start = yield* now

    for (const entry of entries) {
      entry.state = machine.initial(start)
      const { rule } = entry
      const attributes = { [Telemetry.attributes.name]: name, [Telemetry.attributes.rule]: rule.name }
      registrar.gauge(Telemetry.alert.firing, attributes, () => (entry.state.phase === "firing" ? 1 : 0))
      registrar.counter(
        Telemetry.alert.transitions,
        { ...attributes, [Telemetry.attributes.to]: "firing" },
        () => entry.firings
      )
      registrar.counter(
        Telemetry.alert.transitions,
        { ...attributes, [Telemetry.attributes.to]: "resolved" },
        () => entry.resolutions
      )

      const signals = yield* Queue.unbounded<Signal>()
      const { read, readings, triggers } = rule.evaluated

      /** Steps the machine with the entry's reading at `at`; returns when to wake next. */
      const apply = (at: number): number | undefined => {
        const episode = entry.state.since
        const next = machine.step(entry.state, entry.reading.active, at, entry.config)
        entry.state = next.state
        if (next.transition !== undefined) {
          if (next.transition === "firing") entry.firings++
          else entry.resolutions++
          const event: Event = {
            _tag: next.transition === "firing" ? "AlertFiring" : "AlertResolved",
            alert: name,
            rule: rule.name,
            kind: rule.kind,
            severity: rule.severity,
            description: rule.description,
            // when the condition became true: the start of the episode
            since: next.transition === "firing" ? next.state.since : episode,
            at,
            value: entry.reading.value,
            detail: entry.reading.detail
          }
          hub.emit(event)
          if (options.sinks.length > 0) toSinks(event)
        }
        return next.wakeAt
      }

      const readNow: Effect.Effect<void, never, R> =
        read === undefined
          ? Effect.void
          : Effect.matchCause(read, {
              onFailure: (cause) => {
                entry.errors++
                entry.lastError = renderCause(cause)
              },
              onSuccess: (reading) => {
                entry.reading = reading
              }
            })

      let wakeAt: number | undefined
      const loop: Effect.Effect<never, never, R> = Effect.forever(
        Effect.gen(function* () {
          const before = yield* now
          const signal =
            wakeAt === undefined
              ? Option.some(yield* Queue.take(signals))
              : yield* Effect.timeoutOption(Queue.take(signals), Duration.millis(Math.max(0, wakeAt - before)))
          if (Option.isSome(signal)) {
            if (signal.value._tag === "Reading") entry.reading = signal.value.reading
            else yield* readNow
          }
          wakeAt = apply(yield* now)
        }).pipe(Effect.catchCause(() => Effect.void))
      )
      yield* Effect.forkIn(loop, scope)

      if (readings !== undefined) {
        yield* Effect.forkIn(
          Effect.catchCause(
            Stream.runForEach(readings, (reading) => Queue.offer(signals, { _tag: "Reading", reading })),
            (cause) =>
              Effect.sync(() => {
                entry.errors++
                entry.lastError = renderCause(cause)
              })
          ),
          scope
        )
      }
      if (read !== undefined) {
        yield* Effect.forkIn(
          Effect.forever(Effect.andThen(Queue.offer(signals, readSignal), Effect.sleep(rule.intervalDuration))),
          scope
        )
      }
      if (triggers !== undefined && read !== undefined) {
        yield* Effect.forkIn(
          Effect.ignoreCause(Stream.runForEach(triggers, () => Queue.offer(signals, readSignal))),
          scope
        )
      }
    }

    const statusOf = (entry: (typeof entries)[number]): RuleStatus => ({
      name: entry.rule.name,
      kind: entry.rule.kind,
      severity: entry.rule.severity,
      description: entry.rule.description,
      state: entry.state.phase,
      since: entry.state.since,
      firedAt: entry.state.firedAt,
      value: entry.reading.value,
      detail: entry.reading.detail,
      transitions: entry.firings + entry.resolutions,
      errors: entry.errors,
      lastError: entry.lastError
    })

    const service: Alert = {
      [TypeId]: TypeId,
      name,
      options: options as ResolvedOptions,
      status: Effect.sync(() => entries.map(statusOf)),
      firing: Effect.sync(() => entries.filter((e) => e.state.phase === "firing").map(statusOf)),
      sinkErrors: Effect.sync(() => sinkErrors),
      stats: Effect.sync(() => ({ sinkErrors, sinkDropped, sinkQueued: Queue.sizeUnsafe(outbox) })),
      subscribe: hub.subscribe,
      events: hub.events
    }
    return service
  })
