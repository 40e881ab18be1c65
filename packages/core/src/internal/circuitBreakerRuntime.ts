/**
 * The breaker behind `CircuitBreaker.make`: its circuits in the store, the
 * synchronous protect path over an in-process store (a closed circuit admits
 * without a clock read or an allocation, an admitted call's exit is recorded
 * by a frame observer) and the effectful one over a remote store, the
 * classification of outcomes, rejections, transitions and health, events,
 * span events, and the metrics read from its counters.
 *
 * The per-call path (`protect` → `protectLocal` → `Frame.observed` →
 * `finish`) is one closure over the breaker's state, as it was in the public
 * module.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as References from "effect/References"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type {
  CircuitBreaker,
  CircuitBreakerError,
  CircuitBreakerStore,
  CircuitHalfOpen,
  CircuitMetrics,
  CircuitOpen,
  ErrorTypeId,
  Event,
  Health,
  Input,
  LocalCircuits,
  ProtectOptions,
  ResolvedOptions,
  Snapshot,
  State,
  StateTag,
  Stats,
  TypeId
} from "../CircuitBreaker.ts"
import * as Telemetry from "../Telemetry.ts"
import * as engine from "./circuitBreaker.ts"
import { toConfig } from "./circuitBreakerOptions.ts"
import * as ClockTimer from "./clockTimer.ts"
import * as Hub from "./events.ts"
import { construct } from "./fastError.ts"
import * as Frame from "./frame.ts"
import * as Metrics from "./metrics.ts"
import * as Now from "./now.ts"

/**
 * The public module's error classes and brand: rejections are built from
 * them (without running their constructors, `internal/fastError.ts`).
 */
export interface Errors {
  readonly CircuitBreakerError: typeof CircuitBreakerError
  readonly CircuitOpen: typeof CircuitOpen
  readonly CircuitHalfOpen: typeof CircuitHalfOpen
  readonly ErrorTypeId: ErrorTypeId
}

/** The breaker's operations, but for its identity (`CircuitBreaker.make` adds it). */
export type Runtime = Omit<CircuitBreaker, TypeId | "name" | "options">

const rejectOpen = (
  errors: Errors,
  breaker: string,
  key: string,
  state: "Open" | "ForcedOpen",
  retryAfterMillis: number
) =>
  construct(errors.CircuitBreakerError, {
    _tag: "CircuitBreakerError",
    [errors.ErrorTypeId]: errors.ErrorTypeId,
    reason: construct(errors.CircuitOpen, {
      _tag: "CircuitOpen",
      breaker,
      key,
      state,
      retryAfter: Duration.millis(Math.max(0, retryAfterMillis))
    })
  })

const rejectHalfOpen = (errors: Errors, breaker: string, key: string, retryAfterMillis: number) =>
  construct(errors.CircuitBreakerError, {
    _tag: "CircuitBreakerError",
    [errors.ErrorTypeId]: errors.ErrorTypeId,
    reason: construct(errors.CircuitHalfOpen, {
      _tag: "CircuitHalfOpen",
      breaker,
      key,
      retryAfter: Duration.millis(Math.max(0, retryAfterMillis))
    })
  })

const stateAttribute: Record<StateTag, string> = {
  Closed: "closed",
  Open: "open",
  HalfOpen: "half_open",
  Disabled: "disabled",
  ForcedOpen: "forced_open",
  MetricsOnly: "metrics_only"
}

const stateTags: ReadonlyArray<StateTag> = ["Closed", "Open", "HalfOpen", "Disabled", "ForcedOpen", "MetricsOnly"]

/** Records one call's exit into its circuit (`make`'s `finish`). */
type Finish = <A, E>(
  fiber: Fiber.Fiber<unknown, unknown>,
  local: LocalCircuits,
  key: string,
  circuit: engine.Circuit,
  generation: number,
  callOptions: ProtectOptions<A, E> | undefined,
  start: number,
  exit: Exit.Exit<A, E>
) => void

/** The continuation of an admitted call: records its exit, however it ends. */
class CallObserver<A, E> extends Frame.Observer<A, E> {
  readonly finish: Finish
  readonly local: LocalCircuits
  readonly key: string
  readonly circuit: engine.Circuit
  readonly generation: number
  readonly callOptions: ProtectOptions<A, E> | undefined
  readonly start: number
  constructor(
    finish: Finish,
    local: LocalCircuits,
    key: string,
    circuit: engine.Circuit,
    generation: number,
    callOptions: ProtectOptions<A, E> | undefined,
    start: number
  ) {
    super()
    this.finish = finish
    this.local = local
    this.key = key
    this.circuit = circuit
    this.generation = generation
    this.callOptions = callOptions
    this.start = start
  }
  observe(exit: Exit.Exit<A, E>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.finish(fiber, this.local, this.key, this.circuit, this.generation, this.callOptions, this.start, exit)
  }
}

// The live clock's monotonic source is performance.now; under any other clock
// (TestClock) durations come from that clock's milliseconds.
const monotonicMillis = ClockTimer.monotonicMillis

interface Counters {
  storeErrors: number
  success: number
  failure: number
  ignored: number
  rejected: number
  slowSuccess: number
  slowFailure: number
  readonly transitions: Map<string, number>
  readonly durations: Record<
    "success" | "failure",
    { buckets: Float64Array; count: number; sum: number; min: number; max: number }
  >
}

const makeOpenMillisFor = (
  openDuration: Duration.Duration | Schedule.Schedule<unknown, number>,
  maxOpenMillis: number,
  context: Context.Context<never>
): ((consecutiveOpenings: number) => number) => {
  if (!Schedule.isSchedule(openDuration)) {
    const millis = Duration.toMillis(openDuration)
    return () => millis
  }
  // Replays the schedule against a simulated clock, once per opening: rare,
  // so jitter is drawn afresh each time.
  const run = Effect.runSyncWith(context)
  return (consecutiveOpenings) =>
    run(
      Effect.gen(function* () {
        const step = yield* Schedule.toStep(openDuration)
        let now = 0
        let delay = 0
        for (let attempt = 1; attempt <= consecutiveOpenings; attempt++) {
          const result = yield* Effect.exit(step(now, attempt))
          if (Exit.isFailure(result)) break
          delay = Duration.toMillis(result.value[1])
          now += delay
        }
        return Math.min(Math.max(0, delay), maxOpenMillis)
      })
    )
}

/**
 * Makes a breaker's runtime over `store` from validated options (`input`
 * adds the predicates and the initial snapshot). Its events end, and its
 * metrics are unregistered, when the scope closes.
 */
export const makeRuntime: (
  options: ResolvedOptions,
  input: Input,
  store: Context.Service.Shape<typeof CircuitBreakerStore>,
  errors: Errors
) => Effect.Effect<Runtime, CircuitBreakerError, Scope.Scope> = Effect.fnUntraced(function* (
  options: ResolvedOptions,
  input: Input,
  store: Context.Service.Shape<typeof CircuitBreakerStore>,
  errors: Errors
) {
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const name = options.name
  const config = toConfig(options)
  const openMillisFor = makeOpenMillisFor(options.openDuration, config.maxOpenMillis, context)
  const circuits = yield* store.circuits({
    name,
    config,
    openMillisFor,
    initialState: options.initialState,
    maxKeys: options.maxKeys,
    idleTimeToLiveMillis: Duration.toMillis(options.idleTimeToLive)
  })
  if (input.initialSnapshot !== undefined) {
    yield* circuits.import(input.initialSnapshot.circuits.map((c) => [c.key, c] as const))
  }

  const timed = options.recordCallDuration || config.slowCallRateThreshold > 0
  // Durations use performance.now when the breaker is made under the live
  // clock, and the fiber's clock (a TestClock, say) otherwise.
  const liveTimer = ClockTimer.isLive(Context.get(context, Clock.Clock))
  const timeWindow = config.windowType === "time"
  const spanTransitions = options.spanEvents !== "none"
  const spanOutcomes = options.spanEvents === "all"
  const defectsFail = options.countDefectsAsFailures
  const breakerIsFailure = input.isFailure
  const breakerIsIgnored = input.isIgnored
  const breakerIsFailureResult = input.isFailureResult

  const counters: Counters = {
    storeErrors: 0,
    success: 0,
    failure: 0,
    ignored: 0,
    rejected: 0,
    slowSuccess: 0,
    slowFailure: 0,
    transitions: new Map(),
    durations: { success: Metrics.makeHistogram(), failure: Metrics.makeHistogram() }
  }

  // ---- events: one sliding queue per subscriber, nothing built without one
  const hub = Hub.make<Event>()
  yield* Scope.addFinalizer(scope, hub.end)
  const emit = hub.emit

  // ---- span events
  const spanEvent = (fiber: Fiber.Fiber<unknown, unknown>, event: string, attributes: Record<string, unknown>) => {
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span === undefined || span._tag !== "Span") return
    span.event(event, fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
  }

  // ---- transitions
  const onTransition = (
    fiber: Fiber.Fiber<unknown, unknown> | undefined,
    key: string,
    transition: engine.Transition,
    now: number
  ) => {
    const id = `${transition.from}>${transition.to}`
    counters.transitions.set(id, (counters.transitions.get(id) ?? 0) + 1)
    const retryAfter = transition.to === "Open" ? Duration.millis(transition.openMillis) : undefined
    if (fiber !== undefined && spanTransitions) {
      spanEvent(fiber, "StateTransition", {
        [Telemetry.attributes.name]: name,
        [Telemetry.attributes.from]: stateAttribute[transition.from],
        [Telemetry.attributes.to]: stateAttribute[transition.to]
      })
    }
    if (hub.listening()) {
      emit({
        _tag: "StateTransition",
        breaker: name,
        key,
        from: transition.from,
        to: transition.to,
        at: now,
        retryAfter,
        consecutiveOpenings: transition.consecutiveOpenings
      })
    }
  }

  // An in-process circuit's last health, followed on every transition
  // whether anyone listens or not (so a subscriber joining later sees the
  // next change from the right state), and after outcomes while someone does.
  const healthOf = new WeakMap<engine.Circuit, Health>()
  const checkHealth = (key: string, circuit: engine.Circuit) => {
    const before = healthOf.get(circuit) ?? "healthy"
    const after = engine.health(circuit, config)
    if (before !== after) {
      healthOf.set(circuit, after)
      if (hub.listening()) emit({ _tag: "HealthChanged", breaker: name, key, from: before, to: after })
    }
  }
  // A remote store hands out copies of its circuits, so their health is
  // kept per key instead: only while not healthy, at most `maxKeys` keys.
  const remoteHealth = new Map<string, Health>()
  const noteHealth = (key: string, after: Health) => {
    const before = remoteHealth.get(key) ?? "healthy"
    if (before === after) return
    if (after === "healthy") remoteHealth.delete(key)
    else {
      if (!remoteHealth.has(key) && remoteHealth.size >= options.maxKeys) {
        const oldest = remoteHealth.keys().next()
        if (oldest.done !== true) remoteHealth.delete(oldest.value)
      }
      remoteHealth.set(key, after)
    }
    emit({ _tag: "HealthChanged", breaker: name, key, from: before, to: after })
  }
  /** Reads a remote circuit and publishes a change of its health (only while someone listens: a store read). */
  const readHealth = (key: string, clock: Clock.Clock): Effect.Effect<void, CircuitBreakerError> =>
    Effect.map(circuits.read(key), (c) => {
      if (timeWindow) engine.expireBuckets(c, clock.currentTimeMillisUnsafe(), config)
      noteHealth(key, engine.health(c, config))
    })

  // ---- rejection
  const reject = (
    fiber: Fiber.Fiber<unknown, unknown>,
    key: string,
    verdict: engine.Verdict,
    retryAfterMillis: number
  ): Effect.Effect<never, CircuitBreakerError> => {
    counters.rejected++
    const error =
      verdict === "RejectHalfOpen"
        ? rejectHalfOpen(errors, name, key, retryAfterMillis)
        : rejectOpen(errors, name, key, verdict === "RejectForced" ? "ForcedOpen" : "Open", retryAfterMillis)
    if (spanTransitions) {
      spanEvent(fiber, "CallRejected", {
        [Telemetry.attributes.name]: name,
        [Telemetry.attributes.state]:
          verdict === "RejectHalfOpen" ? "half_open" : verdict === "RejectForced" ? "forced_open" : "open"
      })
    }
    if (hub.listening()) {
      emit({
        _tag: "CallRejected",
        breaker: name,
        key,
        state: verdict === "RejectHalfOpen" ? "HalfOpen" : verdict === "RejectForced" ? "ForcedOpen" : "Open",
        retryAfter: error.reason._tag === "CircuitBreakerStoreError" ? Duration.zero : error.reason.retryAfter
      })
    }
    return Exit.fail(error)
  }

  // ---- classification
  const classify = <A, E>(exit: Exit.Exit<A, E>, options: ProtectOptions<A, E> | undefined): engine.Outcome => {
    if (exit._tag === "Success") {
      const value = exit.value
      if (options?.isFailureResult?.(value) === true) return "Failure"
      return breakerIsFailureResult?.(value) === true ? "Failure" : "Success"
    }
    let interruptedOnly = true
    for (const reason of exit.cause.reasons) {
      if (reason._tag === "Fail") {
        const error = reason.error
        if (options?.isIgnored?.(error) === true || breakerIsIgnored?.(error) === true) return "Ignored"
        if (options?.isFailure !== undefined) return options.isFailure(error) ? "Failure" : "Success"
        if (breakerIsFailure !== undefined) return breakerIsFailure(error) ? "Failure" : "Success"
        return "Failure"
      }
      if (reason._tag === "Die") return defectsFail ? "Failure" : "Ignored"
      if (reason._tag !== "Interrupt") interruptedOnly = false
    }
    return interruptedOnly ? "Ignored" : "Failure"
  }

  const hintOf = <A, E>(exit: Exit.Exit<A, E>, options: ProtectOptions<A, E> | undefined): number => {
    if (options?.retryAfter === undefined || exit._tag === "Success") return 0
    const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
    if (reason === undefined || reason._tag !== "Fail") return 0
    const hint = options.retryAfter(reason.error)
    return hint === undefined ? 0 : Duration.toMillis(Duration.fromInputUnsafe(hint))
  }

  const count = (outcome: engine.Outcome, slow: boolean, durationMillis: number) => {
    switch (outcome) {
      case "Success": {
        counters.success++
        if (slow) counters.slowSuccess++
        if (timed) Metrics.observe(counters.durations.success, durationMillis / 1000)
        return
      }
      case "Failure": {
        counters.failure++
        if (slow) counters.slowFailure++
        if (timed) Metrics.observe(counters.durations.failure, durationMillis / 1000)
        return
      }
      case "Ignored":
        counters.ignored++
    }
  }

  const afterOutcome = (
    fiber: Fiber.Fiber<unknown, unknown>,
    key: string,
    outcome: engine.Outcome,
    slow: boolean,
    durationMillis: number
  ) => {
    if (spanOutcomes) {
      spanEvent(fiber, "CallOutcome", {
        [Telemetry.attributes.name]: name,
        [Telemetry.attributes.outcome]: outcome.toLowerCase(),
        "resilience.slow": slow
      })
    }
    if (hub.listening()) {
      emit({
        _tag: "CallOutcome",
        breaker: name,
        key,
        outcome,
        slow,
        duration: Duration.millis(durationMillis)
      })
    }
  }

  // ---- protect: the synchronous path for in-process stores
  const local = circuits.local
  local?.setTransitionListener?.((key, circuit, transition, now) => {
    onTransition(undefined, key, transition, now)
    checkHealth(key, circuit)
  })
  const protectLocal = <A, E, R>(
    local: LocalCircuits,
    self: Effect.Effect<A, E, R>,
    callOptions: ProtectOptions<A, E> | undefined
  ): Effect.Effect<A, E | CircuitBreakerError, R> =>
    Effect.withFiber<A, E | CircuitBreakerError, R>((fiber) => {
      if (callOptions === undefined) {
        // a closed circuit admits without bookkeeping
        const circuit = local.peek(name)
        if (circuit !== undefined && circuit.state === "Closed") {
          if (timed) {
            const start = liveTimer ? Now.monotonicMillis() : fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
            return Frame.observed(
              fiber,
              self,
              new CallObserver(finish, local, name, circuit, circuit.generation, undefined, start)
            )
          }
          const observer =
            closedObserver !== undefined &&
            closedObserver.circuit === circuit &&
            closedObserver.generation === circuit.generation
              ? closedObserver
              : closedObserverFor(local, circuit)
          return Frame.observed<A, E, R>(fiber, self, observer)
        }
      }
      const key = callOptions === undefined || callOptions.key === undefined ? name : callOptions.key
      let circuit = local.peek(key)
      let clock: Clock.Clock | undefined
      if (circuit === undefined) {
        clock = fiber.getRef(Clock.Clock)
        circuit = local.insert(key, clock.currentTimeMillisUnsafe())
      }
      let now = 0
      if (circuit.state !== "Closed") {
        clock ??= fiber.getRef(Clock.Clock)
        now = clock.currentTimeMillisUnsafe()
      }
      const admission = engine.admit(circuit, now, config, openMillisFor, local.nextGeneration, scratch)
      if (admission.transition !== undefined) {
        onTransition(fiber, key, admission.transition, now)
        checkHealth(key, circuit)
      }
      const verdict = admission.verdict
      if (verdict !== "Admit" && verdict !== "Probe") {
        return reject(
          fiber,
          key,
          verdict,
          verdict === "RejectOpen" ? circuit.openUntil - now : verdict === "RejectForced" ? config.maxOpenMillis : 0
        )
      }
      if (circuit.state === "Disabled") return self
      let start = 0
      if (timed) {
        if (liveTimer) start = Now.monotonicMillis()
        else {
          clock ??= fiber.getRef(Clock.Clock)
          start = clock.currentTimeMillisUnsafe()
        }
      }
      // the frame runs however the call ends, interruption included
      return Frame.observed(
        fiber,
        self,
        new CallObserver(finish, local, key, circuit, circuit.generation, callOptions, start)
      )
    })

  /** Records a call's exit: classify, time, count, record, publish. */
  const finish: Finish = (fiber, local, key, circuit, generation, callOptions, start, exit) => {
    const outcome =
      exit._tag === "Success" && callOptions === undefined && breakerIsFailureResult === undefined
        ? "Success"
        : classify(exit, callOptions)
    let durationMillis = 0
    let slow = false
    if (timed) {
      durationMillis = (liveTimer ? Now.monotonicMillis() : fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()) - start
      slow = durationMillis >= config.slowCallMillis
      count(outcome, slow, durationMillis)
    } else if (outcome === "Success") {
      counters.success++
    } else {
      count(outcome, false, 0)
    }
    let at = 0
    if (timeWindow || outcome !== "Success" || circuit.state !== "Closed" || slow) {
      at = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    }
    const onRecord = local.onRecord
    if (onRecord !== undefined) onRecord(key, circuit, generation, outcome, slow)
    const transition = engine.record(
      circuit,
      generation,
      outcome,
      durationMillis,
      outcome === "Failure" ? hintOf(exit, callOptions) : 0,
      at,
      config,
      openMillisFor,
      local.nextGeneration
    )
    if (transition !== undefined) onTransition(fiber, key, transition, at)
    if (spanOutcomes || hub.listening()) {
      afterOutcome(fiber, key, outcome, slow, durationMillis)
      checkHealth(key, circuit)
    } else if (transition !== undefined) {
      checkHealth(key, circuit)
    }
  }

  // The closed fast path for the default key without per-call options: no
  // clock read, no admission bookkeeping, and no allocation: the observer is
  // made once per circuit generation (the fencing token it records with)
  // and shared by every call until the next transition.
  let closedObserver: CallObserver<unknown, unknown> | undefined
  const closedObserverFor = (local: LocalCircuits, circuit: engine.Circuit) => {
    closedObserver = new CallObserver(finish, local, name, circuit, circuit.generation, undefined, 0)
    return closedObserver
  }
  const scratch: engine.Admission = { verdict: "Admit", transition: undefined }

  // ---- protect: the effectful path for remote stores
  const protectRemote = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions: ProtectOptions<A, E> | undefined
  ): Effect.Effect<A, E | CircuitBreakerError, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => {
        const key = callOptions?.key ?? name
        const clock = fiber.getRef(Clock.Clock)
        return Effect.matchCauseEffect(circuits.admit(key), {
          onFailure: (cause): Effect.Effect<A, E | CircuitBreakerError, R> => {
            if (options.onStoreError === "fail" || !Cause.hasFails(cause) || Cause.hasDies(cause)) {
              return Effect.failCause(cause)
            }
            counters.storeErrors++
            return Effect.andThen(
              reportUnhandled("CircuitBreaker store unavailable, running the call unrecorded", cause),
              restore(self)
            )
          },
          onSuccess: (admission): Effect.Effect<A, E | CircuitBreakerError, R> => {
            const now = clock.currentTimeMillisUnsafe()
            if (admission.transition !== undefined) {
              onTransition(fiber, key, admission.transition, now)
              // admission only half-opens an Open circuit or reopens a HalfOpen one
              if (hub.listening()) noteHealth(key, admission.transition.to === "HalfOpen" ? "degraded" : "unhealthy")
            }
            const verdict = admission.verdict
            if (verdict !== "Admit" && verdict !== "Probe") {
              return reject(fiber, key, verdict, admission.retryAfterMillis)
            }
            const start = timed ? monotonicMillis(clock) : 0
            return Effect.flatMap(Effect.exit(restore(self)), (exit) => {
              const outcome = classify(exit, callOptions)
              const durationMillis = timed ? monotonicMillis(clock) - start : 0
              const slow = durationMillis >= config.slowCallMillis
              count(outcome, slow, durationMillis)
              afterOutcome(fiber, key, outcome, slow, durationMillis)
              return circuits
                .record({
                  key,
                  generation: admission.generation,
                  outcome,
                  durationMillis,
                  hintMillis: outcome === "Failure" ? hintOf(exit, callOptions) : 0
                })
                .pipe(
                  Effect.tap((transition) =>
                    Effect.sync(() => {
                      if (transition !== undefined) {
                        onTransition(fiber, key, transition, clock.currentTimeMillisUnsafe())
                      }
                    })
                  ),
                  Effect.andThen(() => (hub.listening() ? readHealth(key, clock) : Effect.void)),
                  Effect.catchCause((cause) =>
                    Cause.hasDies(cause)
                      ? Effect.failCause(cause)
                      : Effect.suspend(() => {
                          counters.storeErrors++
                          return reportUnhandled("CircuitBreaker failed to record an outcome", cause)
                        })
                  ),
                  Effect.flatMap(() => exit)
                )
            })
          }
        })
      })
    )

  const protect = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions?: ProtectOptions<A, E> | undefined
  ): Effect.Effect<A, E | CircuitBreakerError, R> =>
    local !== undefined ? protectLocal(local, self, callOptions) : protectRemote(self, callOptions)

  // ---- reading and forcing
  const keyOf = (key: string | undefined) => key ?? name

  const state = (key?: string): Effect.Effect<State, CircuitBreakerError> =>
    Effect.flatMap(circuits.read(keyOf(key)), (c) =>
      Clock.clockWith((clock) => Effect.succeed(toState(keyOf(key), c, clock.currentTimeMillisUnsafe())))
    )

  const metrics = (key?: string): Effect.Effect<CircuitMetrics, CircuitBreakerError> =>
    Effect.flatMap(circuits.read(keyOf(key)), (c) =>
      Clock.clockWith((clock) => {
        if (timeWindow) engine.expireBuckets(c, clock.currentTimeMillisUnsafe(), config)
        return Effect.succeed<CircuitMetrics>({
          key: keyOf(key),
          state: c.state,
          health: engine.health(c, config),
          bufferedCalls: c.calls,
          failedCalls: c.failures,
          slowCalls: c.slow,
          failureRate: engine.failureRate(c),
          slowCallRate: engine.slowCallRate(c),
          consecutiveFailures: c.consecutive
        })
      })
    )

  const force =
    (to: engine.ManualState) =>
    (key?: string): Effect.Effect<void, CircuitBreakerError> =>
      Effect.flatMap(circuits.force(keyOf(key), to), (transition) =>
        Clock.clockWith((clock) => {
          if (transition !== undefined) onTransition(undefined, keyOf(key), transition, clock.currentTimeMillisUnsafe())
          // even without a transition: a reset of a Closed circuit empties its window
          if (local === undefined) return hub.listening() ? readHealth(keyOf(key), clock) : Effect.void
          const circuit = local.peek(keyOf(key))
          if (circuit !== undefined) checkHealth(keyOf(key), circuit)
          return Effect.void
        })
      )

  const stats: Effect.Effect<Stats> = Effect.map(circuits.size, (size) => ({
    successes: counters.success,
    failures: counters.failure,
    ignored: counters.ignored,
    rejected: counters.rejected,
    slowSuccesses: counters.slowSuccess,
    slowFailures: counters.slowFailure,
    circuits: size,
    evicted: local?.evicted() ?? 0,
    storeErrors: counters.storeErrors
  }))

  const snapshot: Effect.Effect<Snapshot, CircuitBreakerError> = Effect.flatMap(circuits.export, (entries) =>
    Clock.clockWith((clock) =>
      Effect.succeed<Snapshot>({
        version: 1,
        breaker: name,
        takenAt: clock.currentTimeMillisUnsafe(),
        circuits: entries.map(([key, c]) => ({ key, ...c, window: c.window.map((entry) => [...entry]) }))
      })
    )
  )

  const restoreSnapshot = (s: Snapshot): Effect.Effect<void, CircuitBreakerError> =>
    circuits.import(s.circuits.map((c) => [c.key, c] as const))

  // ---- metrics: read from the counters when exported, never pushed per call
  const metricsRegistrar = Metrics.registrar(context)
  const spec = Telemetry.circuitBreaker
  const base = { [Telemetry.attributes.name]: name }
  // The state and rate gauges read in-process circuits. A remote store's
  // circuits are shared by every process and read with an effect, so over
  // one these gauges are not registered (rather than reading 0).
  if (local !== undefined) {
    for (const tag of stateTags) {
      metricsRegistrar.gauge(spec.state, { ...base, [Telemetry.attributes.state]: stateAttribute[tag] }, () => {
        let n = 0
        for (const c of local.circuits()) if (c.state === tag) n++
        return n
      })
    }
    const clock = Context.get(context, Clock.Clock)
    const windowRate = (numerator: "failures" | "slow") => () => {
      let calls = 0
      let part = 0
      const now = timeWindow ? clock.currentTimeMillisUnsafe() : 0
      for (const c of local.circuits()) {
        if (timeWindow) engine.expireBuckets(c, now, config)
        calls += c.calls
        part += c[numerator]
      }
      return calls === 0 ? 0 : part / calls
    }
    metricsRegistrar.gauge(spec.failureRate, base, windowRate("failures"))
    metricsRegistrar.gauge(spec.slowCallRate, base, windowRate("slow"))
  }
  for (const outcome of ["success", "failure", "ignored", "rejected"] as const) {
    metricsRegistrar.counter(spec.calls, { ...base, [Telemetry.attributes.outcome]: outcome }, () => counters[outcome])
  }
  for (const outcome of ["success", "failure"] as const) {
    const attributes = { ...base, [Telemetry.attributes.outcome]: outcome }
    metricsRegistrar.counter(spec.slowCalls, attributes, () =>
      outcome === "success" ? counters.slowSuccess : counters.slowFailure
    )
    metricsRegistrar.histogram(spec.callDuration, attributes, () => counters.durations[outcome])
  }
  for (const from of stateTags) {
    for (const to of stateTags) {
      if (from === to) continue
      metricsRegistrar.counter(
        spec.transitions,
        { ...base, [Telemetry.attributes.from]: stateAttribute[from], [Telemetry.attributes.to]: stateAttribute[to] },
        () => counters.transitions.get(`${from}>${to}`) ?? 0
      )
    }
  }
  yield* Scope.addFinalizer(scope, Effect.sync(metricsRegistrar.removeAll))
  return {
    protect,
    state,
    metrics,
    health: (key) => Effect.map(metrics(key), (m) => m.health),
    stats,
    reset: force("Closed"),
    forceOpen: force("ForcedOpen"),
    disable: force("Disabled"),
    metricsOnly: force("MetricsOnly"),
    snapshot,
    restore: restoreSnapshot,
    subscribe: hub.subscribe,
    events: hub.events
  }
})

// Reports a failure nobody receives (a fail-open admission, a failed record)
// at `References.UnhandledLogLevel`, as Effect's own breaker does; an
// undefined level silences it.
const reportUnhandled = (message: string, cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    const level = fiber.getRef(References.UnhandledLogLevel)
    return level === undefined ? Effect.void : Effect.logWithLevel(level)(message, cause)
  })

const toState = (key: string, c: engine.Circuit, now: number): State => {
  switch (c.state) {
    case "Open":
      return {
        _tag: "Open",
        key,
        retryAfter: Duration.millis(Math.max(0, c.openUntil - now)),
        consecutiveOpenings: c.consecutiveOpenings
      }
    case "HalfOpen":
      return {
        _tag: "HalfOpen",
        key,
        probesInFlight: c.probesInFlight,
        probesAdmitted: c.probesAdmitted,
        consecutiveOpenings: c.consecutiveOpenings
      }
    default:
      return { _tag: c.state, key }
  }
}
