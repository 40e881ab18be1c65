/**
 * The registry behind `Health.make`: its components' running state, the
 * checks run on a jittered schedule (forked, awaited up to their timeout,
 * interrupted past it, skipped while the last run still goes), the sources
 * followed, the statuses folded by `internal/health.ts`, the views
 * aggregated, the reports and trends, the events, and the metrics read from
 * each component's state.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type {
  Component,
  ComponentOptions,
  ComponentReport,
  Event,
  Health,
  Probe,
  Report,
  ResolvedComponentOptions,
  ResolvedOptions,
  reportVersion,
  Status,
  Trend,
  TypeId,
  View
} from "../Health.ts"
import * as Options_ from "../Options.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Hub from "./events.ts"
import * as engine from "./health.ts"
import { validateComponents } from "./healthOptions.ts"
import * as Metrics from "./metrics.ts"

/** The public module's values the registry uses: the component options' schema and the report's version. */
export interface Api {
  readonly ComponentOptions: typeof ComponentOptions
  readonly reportVersion: typeof reportVersion
}

/** The registry's operations, but for its identity (`Health.make` adds it). */
export type Runtime = Omit<Health, TypeId | "name" | "options">

/** A registry: its operations, how a component starts, and how it closes. */
export interface Registry {
  readonly service: Runtime
  readonly start: <R>(
    component: Component<R>,
    resolved: ResolvedComponentOptions,
    context: Context.Context<R>
  ) => Effect.Effect<void>
  readonly close: Effect.Effect<void>
}

/** A component's running state. */
interface Entry {
  readonly name: string
  readonly kind: "check" | "source"
  readonly options: ResolvedComponentOptions
  readonly config: engine.Config
  state: engine.State
  lastCheck: number | undefined
  lastError: string | undefined
  latencyMillis: number | undefined
  checks: number
  failures: number
  timeouts: number
  skipped: number
  /** The check's run still going, if any. */
  running: Fiber.Fiber<unknown, unknown> | undefined
  /** When that run started. */
  runStart: number
  /** Whether that run passed its timeout (each skipped tick then counts as a timeout). */
  overdue: boolean
  readonly durations: Metrics.Histogram
  /** The last window trend computed, for the state and the time it was computed at (the gauges read it six times). */
  windowCache: { readonly state: engine.State; readonly now: number; readonly trend: engine.WindowTrend } | undefined
}

const views: ReadonlyArray<View> = ["all", "readiness", "liveness"]

const inView = (probe: Probe, view: View): boolean => view === "all" || probe === "both" || probe === view

/** A failure's message: an error's `message`, a string as it is, anything else rendered. */
const messageOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (Predicate.isString(error)) return error
  if (Predicate.hasProperty(error, "message") && Predicate.isString(error.message)) return error.message
  return Options_.renderValue(error)
}

const toUtc = (millis: number): DateTime.Utc => DateTime.makeUnsafe(millis)

/** The window trend of `entry` at `now`, computed once per state and instant. */
const windowTrendOf = (entry: Entry, now: number): engine.WindowTrend => {
  const cached = entry.windowCache
  if (cached !== undefined && cached.state === entry.state && cached.now === now) return cached.trend
  const trend = engine.windowTrend(entry.state, now, Duration.toMillis(entry.options.trendWindow))
  entry.windowCache = { state: entry.state, now, trend }
  return trend
}

const optionalMillis = (millis: number | undefined): Duration.Duration | undefined =>
  millis === undefined ? undefined : Duration.millis(millis)

/** A component's trend at `now`: over its history, and over the trailing `trendWindow`. */
const trendOf = (entry: Entry, now: number): Trend => {
  const trend = engine.trend(entry.state.history)
  const window = windowTrendOf(entry, now)
  return {
    samples: trend.samples,
    successRate: trend.successRate,
    meanLatency: optionalMillis(trend.meanLatencyMillis),
    statusChanges: trend.statusChanges,
    flapping: entry.state.flapping,
    window: {
      duration: entry.options.trendWindow,
      covered: Duration.millis(window.coveredMillis),
      availability: window.availability,
      degraded: Duration.millis(window.degradedMillis),
      unhealthy: Duration.millis(window.unhealthyMillis),
      statusChanges: window.statusChanges,
      samples: window.samples,
      latencyP50: optionalMillis(window.latencyP50Millis),
      latencyP95: optionalMillis(window.latencyP95Millis),
      latencyMax: optionalMillis(window.latencyMaxMillis)
    }
  }
}

/**
 * Makes a registry's runtime: components are added with `start` (forked in
 * `scope`), and `close` ends its events and unregisters its metrics.
 */
export const makeRuntime = (
  options: ResolvedOptions,
  scope: Scope.Scope,
  registryContext: Context.Context<never>,
  clock: Clock.Clock,
  api: Api
): Registry => {
  const name = options.name
  const entries = new Map<string, Entry>()
  const hub = Hub.make<Event>()
  const overall: Record<View, Status> = { all: "healthy", readiness: "healthy", liveness: "healthy" }
  const registrar = Metrics.registrar(registryContext)
  const spec = Telemetry.health
  const base = { [Telemetry.attributes.name]: name }
  registrar.gauge(spec.overall, base, () => engine.severity[overall.all])

  const aggregate = (view: View): Status =>
    engine.aggregate(
      Array.from(entries.values())
        .filter((entry) => inView(entry.options.probe, view))
        .map((entry) => ({ status: entry.state.status, critical: entry.options.critical }))
    )

  /** Publishes what a new state of `entry` changed: its status, flapping, the views. */
  const update = (entry: Entry, next: engine.State, now: number) => {
    const before = entry.state
    entry.state = next
    const at = toUtc(now)
    if (hub.listening() && before.status !== next.status) {
      hub.emit({ _tag: "StatusChanged", health: name, component: entry.name, from: before.status, to: next.status, at })
    }
    if (hub.listening() && next.flapping && !before.flapping) {
      hub.emit({ _tag: "Flapping", health: name, component: entry.name, changes: next.changes.length, at })
    }
    for (const view of views) {
      const after = aggregate(view)
      if (after === overall[view]) continue
      const from = overall[view]
      overall[view] = after
      if (hub.listening()) hub.emit({ _tag: "OverallStatusChanged", health: name, view, from, to: after, at })
    }
  }

  const failed = (entry: Entry, error: string, timedOut: boolean, now: number) => {
    entry.failures++
    if (timedOut) entry.timeouts++
    entry.lastError = error
    if (hub.listening()) {
      hub.emit({
        _tag: "CheckFailed",
        health: name,
        component: entry.name,
        error,
        timedOut,
        consecutiveFailures: entry.state.consecutiveFailures,
        at: toUtc(now)
      })
    }
  }

  /** Records one check result (a run that ended or timed out, or a tick finding an overdue run still going). */
  const result = (
    entry: Entry,
    ok: boolean,
    latencyMillis: number,
    now: number,
    error?: string,
    timedOut = false,
    stillRunning = false
  ) => {
    entry.checks++
    entry.lastCheck = now
    entry.latencyMillis = latencyMillis
    if (!stillRunning) Metrics.observe(entry.durations, latencyMillis / 1000)
    update(entry, engine.record(entry.state, ok, latencyMillis, now, entry.config), now)
    if (!ok) failed(entry, error ?? "failed", timedOut, now)
  }

  /** One run of a check: forked in the registry's scope, awaited up to the timeout, interrupted past it. */
  const runCheck = <R>(entry: Entry, run: Effect.Effect<unknown, unknown, R>): Effect.Effect<void, never, R> =>
    Effect.gen(function* () {
      const start = yield* Clock.currentTimeMillis
      entry.runStart = start
      entry.overdue = false
      const fiber = yield* Effect.forkIn(
        run.pipe(
          Effect.onExit((exit) =>
            Effect.annotateCurrentSpan(Telemetry.attributes.outcome, Exit.isSuccess(exit) ? "success" : "failure")
          ),
          Effect.withSpan("Health.check", {
            attributes: { [Telemetry.attributes.name]: name, [Telemetry.attributes.component]: entry.name }
          })
        ),
        scope
      )
      entry.running = fiber
      fiber.addObserver(() => {
        if (entry.running === fiber) entry.running = undefined
      })
      const exit = yield* Effect.timeoutOption(Fiber.await(fiber), entry.options.timeout)
      const now = yield* Clock.currentTimeMillis
      if (Option.isNone(exit)) {
        entry.overdue = true
        fiber.interruptUnsafe()
        result(entry, false, now - start, now, `timed out after ${Duration.format(entry.options.timeout)}`, true)
        return
      }
      if (Exit.isSuccess(exit.value)) result(entry, true, now - start, now)
      else result(entry, false, now - start, now, messageOf(exit.value.cause))
    })

  /** A tick of a check's schedule: a run, unless the last one is still going. */
  const tick = <R>(entry: Entry, run: Effect.Effect<unknown, unknown, R>): Effect.Effect<void, never, R> =>
    Effect.suspend(() => {
      if (entry.running === undefined) return Effect.asVoid(Effect.forkIn(runCheck(entry, run), scope))
      entry.skipped++
      if (!entry.overdue) return Effect.void
      return Effect.map(Clock.currentTimeMillis, (now) => {
        const timeout = Duration.format(entry.options.timeout)
        result(entry, false, now - entry.runStart, now, `still running past its timeout (${timeout})`, true, true)
      })
    })

  const start = <R>(
    component: Component<R>,
    resolved: ResolvedComponentOptions,
    context: Context.Context<R>
  ): Effect.Effect<void> => {
    const config: engine.Config = {
      unhealthyAfter: resolved.unhealthyAfter,
      healthyAfter: resolved.healthyAfter,
      slowThresholdMillis: Duration.toMillis(resolved.slowThreshold),
      historySize: resolved.history,
      flapThreshold: resolved.flapThreshold,
      flapWindowMillis: Duration.toMillis(resolved.flapWindow)
    }
    const entry: Entry = {
      name: component.name,
      kind: component._tag === "Check" ? "check" : "source",
      options: resolved,
      config,
      state: engine.initial(resolved.initialStatus, clock.currentTimeMillisUnsafe()),
      lastCheck: undefined,
      lastError: undefined,
      latencyMillis: undefined,
      checks: 0,
      failures: 0,
      timeouts: 0,
      skipped: 0,
      running: undefined,
      runStart: 0,
      overdue: false,
      durations: Metrics.makeHistogram(),
      windowCache: undefined
    }
    entries.set(entry.name, entry)
    const attributes = { ...base, [Telemetry.attributes.component]: entry.name }
    registrar.gauge(spec.status, attributes, () => engine.severity[entry.state.status])
    // the trend over the window, computed from the ring when the metrics are read
    const windowNow = () => windowTrendOf(entry, clock.currentTimeMillisUnsafe())
    registrar.gauge(spec.trendAvailability, attributes, () => windowNow().availability)
    registrar.gauge(spec.trendStatusChanges, attributes, () => windowNow().statusChanges)
    registrar.gauge(spec.trendFlapping, attributes, () => (entry.state.flapping ? 1 : 0))
    if (component._tag === "Check") {
      registrar.histogram(spec.checkDuration, attributes, () => entry.durations)
      registrar.counter(spec.checkFailures, { ...attributes, [Telemetry.attributes.reason]: "error" }, () =>
        Math.max(0, entry.failures - entry.timeouts)
      )
      registrar.counter(
        spec.checkFailures,
        { ...attributes, [Telemetry.attributes.reason]: "timeout" },
        () => entry.timeouts
      )
      registrar.counter(spec.checkSkipped, attributes, () => entry.skipped)
      registrar.gauge(spec.trendLatencyP50, attributes, () => (windowNow().latencyP50Millis ?? 0) / 1000)
      registrar.gauge(spec.trendLatencyP95, attributes, () => (windowNow().latencyP95Millis ?? 0) / 1000)
      registrar.gauge(spec.trendLatencyMax, attributes, () => (windowNow().latencyMaxMillis ?? 0) / 1000)
    }
    const intervalMillis = Duration.toMillis(resolved.interval)
    // waits drawn from the fiber's Random: none drawn when jitter (or stagger) is 0
    const pause = (spread: (random: number) => number, amount: number, exact: number): Effect.Effect<void> =>
      amount === 0
        ? exact === 0
          ? Effect.void
          : Effect.sleep(Duration.millis(exact))
        : Effect.flatMap(Random.next, (random) => Effect.sleep(Duration.millis(Math.round(spread(random)))))
    const firstWait = pause((r) => engine.staggered(intervalMillis, resolved.stagger, r), resolved.stagger, 0)
    const nextWait = pause((r) => engine.jittered(intervalMillis, resolved.jitter, r), resolved.jitter, intervalMillis)
    const program: Effect.Effect<void, never, R> =
      component._tag === "Check"
        ? Effect.andThen(firstWait, Effect.forever(Effect.andThen(tick(entry, component.run), nextWait)))
        : Effect.andThen(
            Effect.forkChild(
              // flapping ages out even when the source is quiet
              Effect.forever(
                Effect.andThen(
                  Effect.sleep(resolved.interval),
                  Effect.map(Clock.currentTimeMillis, (now) =>
                    update(entry, engine.tick(entry.state, now, config), now)
                  )
                )
              )
            ),
            Stream.runForEach(component.statuses, (status) =>
              Effect.map(Clock.currentTimeMillis, (now) => {
                entry.lastCheck = now
                entry.checks++
                update(entry, engine.observe(entry.state, status, now, config), now)
              })
            ).pipe(
              Effect.catchCause((cause) =>
                Cause.hasInterruptsOnly(cause)
                  ? Effect.interrupt
                  : Effect.map(Clock.currentTimeMillis, (now) => {
                      entry.lastCheck = now
                      entry.failures++
                      entry.lastError = messageOf(cause)
                      update(entry, engine.observe(entry.state, "unhealthy", now, config), now)
                    })
              ),
              Effect.andThen(Effect.never)
            )
          )
    return Effect.andThen(
      // the new component may change the views (an initial status other than healthy)
      Effect.map(Clock.currentTimeMillis, (now) => update(entry, entry.state, now)),
      Effect.asVoid(Effect.forkIn(Effect.provideContext(program, context), scope))
    )
  }

  const componentReport = (entry: Entry, now: number): ComponentReport => {
    const last = entry.state.transitions.at(-1)
    return {
      name: entry.name,
      kind: entry.kind,
      status: entry.state.status,
      critical: entry.options.critical,
      probe: entry.options.probe,
      flapping: entry.state.flapping,
      lastCheck: entry.lastCheck === undefined ? undefined : toUtc(entry.lastCheck),
      lastError: entry.lastError,
      consecutiveFailures: entry.state.consecutiveFailures,
      consecutiveSuccesses: entry.state.consecutiveSuccesses,
      latency: entry.latencyMillis === undefined ? undefined : Duration.millis(entry.latencyMillis),
      checks: entry.checks,
      failures: entry.failures,
      timeouts: entry.timeouts,
      skipped: entry.skipped,
      trend: trendOf(entry, now),
      history: entry.state.history.map((sample) => ({
        at: toUtc(sample.at),
        ok: sample.ok,
        latency: sample.latencyMillis === undefined ? undefined : Duration.millis(sample.latencyMillis),
        status: sample.status
      })),
      transitions: entry.state.transitions.map((t) => ({ at: toUtc(t.at), from: t.from, to: t.to })),
      since: last === undefined ? undefined : toUtc(last.at)
    }
  }

  const report = (view: View): Effect.Effect<Report> =>
    Clock.clockWith((c) =>
      Effect.sync(() => {
        const now = c.currentTimeMillisUnsafe()
        const components = Array.from(entries.values())
          .filter((entry) => inView(entry.options.probe, view))
          .map((entry) => componentReport(entry, now))
        return { version: api.reportVersion, name, view, status: aggregate(view), components }
      })
    )

  const trend = (component: string): Effect.Effect<Option.Option<Trend>> =>
    Clock.clockWith((c) =>
      Effect.sync(() => {
        const entry = entries.get(component)
        return entry === undefined ? Option.none() : Option.some(trendOf(entry, c.currentTimeMillisUnsafe()))
      })
    )

  const register = <R>(component: Component<R>): Effect.Effect<void, Options_.InvalidOptions, R> =>
    Effect.flatMap(Effect.context<R>(), (context) =>
      Effect.flatMap(
        // the names taken when the effect runs, and again just before the component is added
        Effect.suspend(() => validateComponents(api.ComponentOptions, [component], options, new Set(entries.keys()))),
        ({ issues, resolved }) => {
          const one = resolved[0]
          if (issues.length > 0 || one === undefined || entries.has(component.name)) {
            return Effect.fail(
              new Options_.InvalidOptions({
                pattern: "Health",
                issues:
                  issues.length > 0
                    ? issues
                    : [
                        new Options_.Issue({
                          path: `components.${component.name}`,
                          value: Options_.renderValue(component.name),
                          message: "Expected a unique, non-empty component name"
                        })
                      ]
              })
            )
          }
          return start(component, one, context)
        }
      )
    )

  const close = Effect.andThen(
    hub.end,
    Effect.sync(() => registrar.removeAll())
  )

  const service: Runtime = {
    status: report("all"),
    readiness: report("readiness"),
    liveness: report("liveness"),
    trend,
    register,
    subscribe: hub.subscribe,
    events: hub.events
  }
  return { service, start, close }
}
