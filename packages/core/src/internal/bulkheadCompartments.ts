/**
 * The bulkhead's compartments behind `Bulkhead.make`: one per key, each with
 * its permits and its line (`internal/bulkhead.ts` decides who runs), the
 * waiters' tickets and timers, the continuation frames that give permits
 * back, the adaptive limit's samples (`internal/adaptiveLimit.ts`), the
 * rejections, events, metrics and totals.
 *
 * The admitted-call path (`isolate` → `admitFixed` → `Frame.observed`) is one
 * closure over the bulkhead's state, as it was in the public module.
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
import * as Tracer from "effect/Tracer"
import type {
  Bulkhead,
  BulkheadCostExceeded,
  BulkheadError,
  BulkheadErrorReason,
  BulkheadFull,
  BulkheadStoreError,
  BulkheadTimeout,
  CompartmentList,
  CompartmentState,
  ErrorTypeId,
  Event,
  IsolateOptions,
  ResolvedLimit,
  ResolvedOptions,
  TypeId
} from "../Bulkhead.ts"
import * as Options_ from "../Options.ts"
import * as Telemetry from "../Telemetry.ts"
import * as adaptive from "./adaptiveLimit.ts"
import * as engine from "./bulkhead.ts"
import * as ClockTimer from "./clockTimer.ts"
import * as Hub from "./events.ts"
import { construct } from "./fastError.ts"
import * as Frame from "./frame.ts"
import * as Metrics from "./metrics.ts"

/** A waiting call: its place in line, and how to wake its fiber. */
class Ticket implements engine.Waiter {
  status: engine.Status = "waiting"
  readonly cost: number
  readonly priority: number
  readonly enqueuedAt: number
  grantedAt = 0
  /** Wakes the waiter's fiber, once it has suspended. */
  resume: ((effect: Effect.Effect<void, BulkheadError>) => void) | undefined = undefined
  /** The waiter's fate, decided before it suspended. */
  pending: Effect.Effect<void, BulkheadError> | undefined = undefined
  cancelTimer: (() => void) | undefined = undefined
  constructor(cost: number, priority: number, enqueuedAt: number) {
    this.cost = cost
    this.priority = priority
    this.enqueuedAt = enqueuedAt
  }
  wake(effect: Effect.Effect<void, BulkheadError>): void {
    const resume = this.resume
    if (resume === undefined) {
      this.pending = effect
      return
    }
    this.resume = undefined
    resume(effect)
  }
}

type Release = (c: Compartment, cost: number, start: number, fiber: Fiber.Fiber<unknown, unknown>) => void

/** A compartment's limits: shared by every key of a fixed bulkhead; one per key, its limit moving, when adaptive. */
interface Limits {
  maxConcurrent: number
  readonly maxQueue: number
}

/** One key's permits and line (`internal/bulkhead.ts` decides), with what the wiring needs. */
class Compartment implements engine.Compartment<Ticket> {
  /** The limits `internal/bulkhead.ts` enforces for this key. */
  readonly config: Limits
  /** The adaptive limit's state (`internal/adaptiveLimit.ts`); undefined for a fixed bulkhead. */
  limiter: adaptive.State | undefined
  /** When a call last ended (monotonic ms; adaptive keys only): a key is swept once idle a whole `sweepInterval`. */
  lastUsed = Number.NEGATIVE_INFINITY
  active = 0
  queued = 0
  queuedCost = 0
  levels: Array<engine.Level<Ticket>> | undefined = undefined
  holdMillis = -1
  /** Set once a call waited or was rejected: from then on, calls that fill it are timed for `retryAfter`. */
  contended = false
  readonly key: string
  /** The continuation of its calls of cost 1 that are not timed, shared. */
  observer: ReleaseObserver | undefined = undefined
  constructor(key: string, config: Limits, limiter: adaptive.State | undefined) {
    this.key = key
    this.config = config
    this.limiter = limiter
  }
}

/** Gives a call's permits back when it ends, however it ends (`internal/frame.ts`). */
class ReleaseObserver extends Frame.Observer {
  readonly release: Release
  readonly compartment: Compartment
  readonly cost: number
  /** When the call started, for the mean duration; -1 when not timed. */
  readonly start: number
  constructor(release: Release, compartment: Compartment, cost: number, start: number) {
    super()
    this.release = release
    this.compartment = compartment
    this.cost = cost
    this.start = start
  }
  observe(_exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.release(this.compartment, this.cost, this.start, fiber)
  }
}

/** Records an adaptive call's sample and gives its permits back (`makeCompartments`'s `finish`). */
type Finish = (
  c: Compartment,
  cost: number,
  start: number,
  inflight: number,
  exit: Exit.Exit<unknown, unknown>,
  fiber: Fiber.Fiber<unknown, unknown>
) => void

/** The continuation of a call under an adaptive limit: its duration and outcome feed the key's limit. */
class SampleObserver extends Frame.Observer {
  readonly finish: Finish
  readonly compartment: Compartment
  readonly cost: number
  /** When the call started, monotonic milliseconds (`monotonicMillis`). */
  readonly start: number
  /** Permits held in the compartment once the call had its own. */
  readonly inflight: number
  constructor(finish: Finish, compartment: Compartment, cost: number, start: number, inflight: number) {
    super()
    this.finish = finish
    this.compartment = compartment
    this.cost = cost
    this.start = start
    this.inflight = inflight
  }
  observe(exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.finish(this.compartment, this.cost, this.start, this.inflight, exit, fiber)
  }
}

// Durations of adaptive calls: the live clock's monotonic source (performance.now), as the
// breaker times its calls; under any other clock (TestClock), that clock's milliseconds.
export const monotonicMillis = ClockTimer.monotonicMillis

/** The pure algorithm's parameters, in milliseconds. */
const algorithmConfig = (limit: ResolvedLimit): adaptive.Config => {
  switch (limit.algorithm) {
    case "aimd":
      return {
        algorithm: "aimd",
        minLimit: limit.minLimit,
        maxLimit: limit.maxLimit,
        backoffRatio: limit.backoffRatio,
        latencyThresholdMillis: Duration.toMillis(limit.latencyThreshold)
      }
    case "gradient":
      return {
        algorithm: "gradient",
        minLimit: limit.minLimit,
        maxLimit: limit.maxLimit,
        smoothing: limit.smoothing,
        queueSize: limit.queueSize,
        longWindow: limit.longWindow,
        windowMillis: Duration.toMillis(limit.window),
        minWindowSamples: limit.minWindowSamples
      }
    case "vegas":
      return {
        algorithm: "vegas",
        minLimit: limit.minLimit,
        maxLimit: limit.maxLimit,
        alpha: limit.alpha,
        beta: limit.beta,
        smoothing: limit.smoothing,
        probeMultiplier: limit.probeMultiplier
      }
  }
}

export const invalidCost = (cost: number): RangeError =>
  new RangeError(`Bulkhead: a call's cost must be an integer >= 1, got ${cost}`)

export const invalidPriority = (priority: number): RangeError =>
  new RangeError(`Bulkhead: a call's priority must be a finite number, got ${priority}`)

/** The metric `reason` of each rejection tag. */
export const rejectionReason = {
  BulkheadFull: "full",
  BulkheadTimeout: "timeout",
  BulkheadCostExceeded: "cost_exceeded",
  BulkheadStoreError: "store_error"
} as const

/** The rejection reasons of a bulkhead in memory (its metric series): a store error needs a remote store. */
const memoryRejectionReasons = ["full", "timeout", "cost_exceeded"] as const

/** What a bulkhead's metrics read when exported (the memory and the remote wiring alike). */
export interface MetricSource {
  readonly totals: () => { readonly active: number; readonly queued: number }
  readonly keys: () => number
  readonly limit: () => number
  readonly counters: {
    readonly admitted: number
    /** Admitted after waiting (the rest waited 0). */
    readonly waited: number
    readonly waits: Metrics.Histogram
  } & { readonly [reason in (typeof rejectionReason)[keyof typeof rejectionReason]]?: number }
  /** The rejection reasons this wiring can give. */
  readonly reasons: ReadonlyArray<(typeof rejectionReason)[keyof typeof rejectionReason]>
  readonly rejectedTotal: () => number
}

/** Registers a bulkhead's metrics in the context's registry, read from `source` when exported. */
export const registerMetrics = (
  context: Context.Context<never>,
  name: string,
  source: MetricSource
): ReturnType<typeof Metrics.registrar> => {
  const { counters } = source
  /** The wait histogram with the calls admitted at once (a wait of 0) added to its first bucket. */
  const waitHistogram = (): Metrics.Histogram => {
    const waits = counters.waits
    const immediate = counters.admitted - counters.waited
    if (immediate <= 0) return waits
    const buckets = Float64Array.from(waits.buckets)
    buckets[0] = (buckets[0] ?? 0) + immediate
    return { buckets, count: waits.count + immediate, sum: waits.sum, min: 0, max: Math.max(0, waits.max) }
  }
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  const spec = Telemetry.bulkhead
  registrar.gauge(spec.active, base, () => source.totals().active)
  registrar.gauge(spec.queued, base, () => source.totals().queued)
  registrar.gauge(spec.keys, base, source.keys)
  registrar.gauge(spec.limit, base, source.limit)
  registrar.counter(spec.calls, { ...base, [Telemetry.attributes.outcome]: "admitted" }, () => counters.admitted)
  registrar.counter(spec.calls, { ...base, [Telemetry.attributes.outcome]: "rejected" }, source.rejectedTotal)
  for (const reason of source.reasons) {
    registrar.counter(spec.rejected, { ...base, [Telemetry.attributes.reason]: reason }, () => counters[reason] ?? 0)
  }
  registrar.histogram(spec.waitDuration, base, waitHistogram)
  return registrar
}

// ---------------------------------------------------------------------------
// the most urgent compartments (`Bulkhead.compartments`): pure, over any representation of a compartment
// ---------------------------------------------------------------------------

/** How the ranking reads a compartment: accessors over the wiring's own objects, so nothing is built per key. */
export interface UrgencyView<T> {
  readonly key: (t: T) => string
  readonly active: (t: T) => number
  readonly queued: (t: T) => number
  /** A positive integer. */
  readonly limit: (t: T) => number
}

/**
 * The order of `compartments(max)`, negative when `a` is more urgent than
 * `b`: the most queued first; then the highest `active / limit` (compared
 * without dividing); then the lowest limit (an adaptive one furthest below
 * `maxLimit`, which every key shares); then by key. A total order on
 * compartments with distinct keys.
 */
export const urgencyOrder =
  <T>(view: UrgencyView<T>) =>
  (a: T, b: T): number => {
    const queued = view.queued(b) - view.queued(a)
    if (queued !== 0) return queued
    const limitA = view.limit(a)
    const limitB = view.limit(b)
    const fuller = view.active(b) * limitA - view.active(a) * limitB
    if (fuller !== 0) return fuller
    if (limitA !== limitB) return limitA - limitB
    const keyA = view.key(a)
    const keyB = view.key(b)
    return keyA < keyB ? -1 : keyA > keyB ? 1 : 0
  }

/**
 * Offers `item` to a bounded selection of the `max` first items under
 * `order`: `heap` is a binary heap of at most `max` items whose root is the
 * last of them, replaced when a better item comes. O(log max) per item.
 */
export const offer = <T>(heap: Array<T>, max: number, order: (a: T, b: T) => number, item: T): void => {
  if (heap.length < max) {
    // sift up: the item rises above every parent it comes after
    let i = heap.length
    heap.push(item)
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = heap[parent] as T
      if (order(p, item) >= 0) break
      heap[i] = p
      i = parent
    }
    heap[i] = item
    return
  }
  const root = heap[0]
  if (root === undefined || order(item, root) >= 0) return
  // sift down from the root: the item sinks below every child that comes after it
  const n = heap.length
  let i = 0
  for (;;) {
    const left = 2 * i + 1
    if (left >= n) break
    const right = left + 1
    let child = left
    if (right < n && order(heap[right] as T, heap[left] as T) > 0) child = right
    const c = heap[child] as T
    if (order(c, item) <= 0) break
    heap[i] = c
    i = child
  }
  heap[i] = item
}

/** The selection in order, first first (sorted in place). */
export const selected = <T>(heap: Array<T>, order: (a: T, b: T) => number): Array<T> => heap.sort(order)

/** A compartment as `state(key)` reports it. */
export const compartmentState = <T>(view: UrgencyView<T>, t: T): CompartmentState => {
  const active = view.active(t)
  const limit = view.limit(t)
  return { key: view.key(t), active, queued: view.queued(t), available: Math.max(0, limit - active), limit }
}

/** `compartments(max)` with a `max` that is not a positive integer: a defect naming it. */
export const invalidMax = (max: number): Options_.InvalidOptions =>
  new Options_.InvalidOptions({
    pattern: "Bulkhead",
    issues: [
      new Options_.Issue({
        path: "max",
        value: Options_.renderValue(max),
        message: "Expected a positive integer (the most compartments to list)"
      })
    ]
  })

/** Whether `max` is a valid bound of `compartments(max)`. */
export const isValidMax = (max: number): boolean => Number.isInteger(max) && max >= 1

/**
 * `compartments(max)` over a view: `each` offers every compartment held,
 * `total` counts them. Reads the state once, when the effect runs.
 */
export const listCompartments = <T>(
  max: number,
  view: UrgencyView<T>,
  order: (a: T, b: T) => number,
  each: (offer: (t: T) => void) => number
): Effect.Effect<CompartmentList> => {
  if (!isValidMax(max)) return Effect.die(invalidMax(max))
  return Effect.sync(() => {
    const heap: Array<T> = []
    const total = each((t) => offer(heap, max, order, t))
    return { total, compartments: selected(heap, order).map((t) => compartmentState(view, t)) }
  })
}

/** The view of an in-process compartment. */
const memoryView: UrgencyView<Compartment> = {
  key: (c) => c.key,
  active: (c) => c.active,
  queued: (c) => c.queued,
  limit: (c) => c.config.maxConcurrent
}
const memoryOrder = urgencyOrder(memoryView)

/**
 * The public module's error classes and brand: rejections are built from
 * them (without running their constructors, `internal/fastError.ts`).
 */
export interface Errors {
  readonly BulkheadError: typeof BulkheadError
  readonly BulkheadFull: typeof BulkheadFull
  readonly BulkheadTimeout: typeof BulkheadTimeout
  readonly BulkheadCostExceeded: typeof BulkheadCostExceeded
  readonly BulkheadStoreError: typeof BulkheadStoreError
  readonly ErrorTypeId: ErrorTypeId
}

/**
 * A bulkhead's compartments and the service's operations over them; `sweep`
 * drops idle keys, `close` ends its event streams and unregisters its metrics.
 */
export interface Compartments extends Omit<Bulkhead, TypeId | "name" | "options"> {
  readonly sweep: (now: number) => void
  readonly close: Effect.Effect<void>
}

/** The bulkhead itself, but for its identity (`Bulkhead.make` adds it). */
export const makeCompartments = (
  options: ResolvedOptions,
  context: Context.Context<never>,
  errors: Errors
): Compartments => {
  const { maxConcurrent, maxKeys, maxQueue, name } = options
  /** The fixed bulkhead's limits, shared by every key. */
  const shared: Limits = { maxConcurrent, maxQueue }
  const limitConfig = options.limit === undefined ? undefined : algorithmConfig(options.limit)
  /** The most a call may cost: every permit of a fixed key, the floor of an adaptive one (so it always fits). */
  const costCap = limitConfig === undefined ? maxConcurrent : limitConfig.minLimit
  const newCompartment = (key: string): Compartment =>
    limitConfig === undefined
      ? new Compartment(key, shared, undefined)
      : new Compartment(key, { maxConcurrent, maxQueue }, adaptive.make(limitConfig, maxConcurrent))
  const sweepMillis = Duration.toMillis(options.sweepInterval)
  const maxWaitMillis = Duration.toMillis(options.maxWait)
  const main = newCompartment(name)
  const compartments = new Map<string, Compartment>()
  let limitChanges = 0
  const counters = {
    admitted: 0,
    /** Admitted after waiting (the rest waited 0). */
    waited: 0,
    full: 0,
    timeout: 0,
    cost_exceeded: 0,
    store_error: 0,
    waits: Metrics.makeHistogram()
  }
  const noneGranted: Array<Ticket> = []
  const hub = Hub.make<Event>()

  // ---- keys
  const batch = Math.max(1, Math.floor(maxKeys / 64))
  const makeRoom = () => {
    // idle keys first, oldest first; busy ones stay (their permits must not be forgotten)
    const target = maxKeys - batch
    let scanned = 0
    for (const [key, c] of compartments) {
      if (compartments.size <= target || ++scanned > 4 * batch) break
      if (engine.isIdle(c)) compartments.delete(key)
    }
  }
  const compartmentFor = (key: string): Compartment => {
    if (key === name) return main
    let c = compartments.get(key)
    if (c === undefined) {
      if (compartments.size >= maxKeys) makeRoom()
      c = newCompartment(key)
      compartments.set(key, c)
    }
    return c
  }
  const sweep = (now: number) => {
    for (const [key, c] of compartments) {
      // an adaptive key keeps what it learned while it is in use: it goes once idle a whole interval
      if (engine.isIdle(c) && (c.limiter === undefined || now - c.lastUsed >= sweepMillis)) compartments.delete(key)
    }
  }

  // ---- rejections
  const spanEvent = (fiber: Fiber.Fiber<unknown, unknown>, attributes: Record<string, unknown>) => {
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span === undefined || span._tag !== "Span") return
    span.event("Rejected", fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
  }
  const rejected = (
    fiber: Fiber.Fiber<unknown, unknown> | undefined,
    c: Compartment,
    reason: BulkheadErrorReason,
    cost: number,
    priority: number
  ): BulkheadError => {
    const tag = reason._tag
    counters[rejectionReason[tag]]++
    if (fiber !== undefined) {
      spanEvent(fiber, {
        [Telemetry.attributes.name]: name,
        [Telemetry.attributes.reason]: rejectionReason[tag]
      })
    }
    if (hub.listening()) {
      hub.emit({
        _tag: "Rejected",
        bulkhead: name,
        key: c.key,
        reason: tag,
        cost,
        priority,
        active: c.active,
        queued: c.queued,
        retryAfter: tag === "BulkheadFull" || tag === "BulkheadTimeout" ? reason.retryAfter : undefined
      })
    }
    return construct(errors.BulkheadError, { _tag: "BulkheadError", [errors.ErrorTypeId]: errors.ErrorTypeId, reason })
  }
  const hint = (c: Compartment, cost: number, priority: number): { retryAfter?: Duration.Duration } => {
    const millis = engine.estimateMillis(c, cost, priority, c.config)
    return millis < 0 ? {} : { retryAfter: Duration.millis(millis) }
  }
  const full = (fiber: Fiber.Fiber<unknown, unknown>, c: Compartment, cost: number, priority: number) => {
    c.contended = true
    return rejected(
      fiber,
      c,
      construct(errors.BulkheadFull, {
        _tag: "BulkheadFull",
        bulkhead: name,
        key: c.key,
        maxConcurrent: c.config.maxConcurrent,
        active: c.active,
        queued: c.queued,
        ...hint(c, cost, priority)
      }),
      cost,
      priority
    )
  }

  // ---- permits
  /** Wakes the waiters just granted: later on the dispatcher of the fiber that freed the permits, or now. */
  const wakeGranted = (
    granted: ReadonlyArray<Ticket>,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown> | undefined
  ) => {
    for (const t of granted) {
      t.cancelTimer?.()
      t.cancelTimer = undefined
      t.grantedAt = now
      if (fiber === undefined) t.wake(Exit.void)
      else fiber.currentDispatcher.scheduleTask(() => t.wake(Exit.void), 0)
    }
  }
  const release: Release = (c, cost, start, fiber) => {
    if (start < 0 && c.queued === 0) {
      // the uncontended end: no clock read, nobody to serve
      engine.release(c, cost, shared, noneGranted)
      return
    }
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    if (start >= 0) engine.recordHold(c, now - start)
    const granted: Array<Ticket> = []
    engine.release(c, cost, shared, granted)
    wakeGranted(granted, now, fiber)
  }
  /** Feeds an adaptive call's sample to its key's limit, then gives its permits back (with the new limit). */
  const finish: Finish = (c, cost, start, inflight, exit, fiber) => {
    const clock = fiber.getRef(Clock.Clock)
    const end = monotonicMillis(clock)
    c.lastUsed = end
    const limiter = c.limiter
    // an interrupted call says nothing about the dependency: nothing is recorded
    if (
      limitConfig !== undefined &&
      limiter !== undefined &&
      !(exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause))
    ) {
      const rtt = end - start
      if (c.contended) engine.recordHold(c, rtt)
      const next = adaptive.update(limiter, { rtt, inflight, dropped: exit._tag === "Failure", now: end }, limitConfig)
      c.limiter = next
      const from = c.config.maxConcurrent
      const to = adaptive.limitOf(next)
      if (to !== from) {
        c.config.maxConcurrent = to
        limitChanges++
        if (hub.listening()) {
          hub.emit({ _tag: "LimitChanged", bulkhead: name, key: c.key, algorithm: limitConfig.algorithm, from, to })
        }
      }
    }
    if (c.queued === 0) {
      engine.release(c, cost, c.config, noneGranted)
      return
    }
    // a limit that rose lets the head of the line in at once; one that fell below the calls running admits nobody
    const granted: Array<Ticket> = []
    engine.release(c, cost, c.config, granted)
    wakeGranted(granted, clock.currentTimeMillisUnsafe(), fiber)
  }
  /** The waiter leaves (interrupted): out of the line, or its permits given back if granted and not started. */
  const settle = (t: Ticket, c: Compartment, fiber: Fiber.Fiber<unknown, unknown>) => {
    t.cancelTimer?.()
    t.cancelTimer = undefined
    if (t.status === "left") return
    const granted: Array<Ticket> = []
    engine.leave(c, t, c.config, granted)
    wakeGranted(granted, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber)
  }
  /** `maxWait` ran out for a waiter still in line (`fiber` is the waiter's, suspended). */
  const timeOut = (t: Ticket, c: Compartment, clock: Clock.Clock, fiber: Fiber.Fiber<unknown, unknown>) => {
    t.cancelTimer = undefined
    if (t.status !== "waiting") return
    const granted: Array<Ticket> = []
    engine.leave(c, t, c.config, granted)
    const now = clock.currentTimeMillisUnsafe()
    const error = rejected(
      fiber,
      c,
      construct(errors.BulkheadTimeout, {
        _tag: "BulkheadTimeout",
        bulkhead: name,
        key: c.key,
        maxConcurrent: c.config.maxConcurrent,
        active: c.active,
        queued: c.queued,
        maxWait: options.maxWait,
        ...hint(c, t.cost, t.priority)
      }),
      t.cost,
      t.priority
    )
    wakeGranted(granted, now, undefined)
    t.wake(Exit.fail(error))
  }
  const awaitTurn = (t: Ticket, c: Compartment, fiber: Fiber.Fiber<unknown, unknown>) =>
    Effect.callback<void, BulkheadError>((resume) => {
      const pending = t.pending
      if (pending !== undefined) {
        t.pending = undefined
        resume(pending)
        return
      }
      t.resume = resume
      if (maxWaitMillis === Number.POSITIVE_INFINITY) return
      const clock = fiber.getRef(Clock.Clock)
      const left = t.enqueuedAt + maxWaitMillis - clock.currentTimeMillisUnsafe()
      t.cancelTimer = ClockTimer.schedule(fiber.context, clock, Math.max(0, left), () => timeOut(t, c, clock, fiber))
    })

  /** The contended path: joins the line (or is rejected), waits, then runs `self` holding the permits. */
  const wait = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    c: Compartment,
    cost: number,
    priority: number
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (c.queued >= maxQueue) return Exit.fail(full(fiber, c, cost, priority))
    c.contended = true
    const t = new Ticket(cost, priority, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe())
    engine.enqueue(c, t, c.config)
    if (hub.listening()) {
      hub.emit({ _tag: "Queued", bulkhead: name, key: c.key, cost, priority, queued: c.queued })
    }
    return Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(awaitTurn(t, c, fiber)), {
        onFailure: (cause) => {
          settle(t, c, fiber)
          return Exit.failCause(cause)
        },
        onSuccess: () =>
          Effect.withFiber<A, E | BulkheadError, R>((running) => {
            const now = running.getRef(Clock.Clock).currentTimeMillisUnsafe()
            counters.admitted++
            counters.waited++
            Metrics.observe(counters.waits, (t.grantedAt - t.enqueuedAt) / 1000)
            if (hub.listening()) {
              hub.emit({
                _tag: "Acquired",
                bulkhead: name,
                key: c.key,
                cost,
                priority,
                waited: Duration.millis(t.grantedAt - t.enqueuedAt)
              })
            }
            if (limitConfig !== undefined) {
              const started = monotonicMillis(running.getRef(Clock.Clock))
              return Frame.observed<A, E, R>(
                running,
                restore(self),
                new SampleObserver(finish, c, cost, started, c.active)
              )
            }
            return Frame.observed<A, E, R>(running, restore(self), new ReleaseObserver(release, c, cost, now))
          })
      })
    )
  }

  const admitFixed = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    c: Compartment,
    cost: number,
    priority: number
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (!engine.tryAcquire(c, cost, priority, shared)) return wait(fiber, self, c, cost, priority)
    counters.admitted++
    if (c.contended && c.active >= maxConcurrent) {
      // it fills the compartment: timed, for the mean duration behind `retryAfter`
      const start = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      return Frame.observed<A, E, R>(fiber, self, new ReleaseObserver(release, c, cost, start))
    }
    if (cost !== 1) return Frame.observed<A, E, R>(fiber, self, new ReleaseObserver(release, c, cost, -1))
    let observer = c.observer
    if (observer === undefined) {
      observer = new ReleaseObserver(release, c, 1, -1)
      c.observer = observer
    }
    return Frame.observed<A, E, R>(fiber, self, observer)
  }

  /** Every call is timed: its duration and outcome feed the key's limit when it ends. */
  const admitAdaptive = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    c: Compartment,
    cost: number,
    priority: number
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (!engine.tryAcquire(c, cost, priority, c.config)) return wait(fiber, self, c, cost, priority)
    counters.admitted++
    const start = monotonicMillis(fiber.getRef(Clock.Clock))
    return Frame.observed<A, E, R>(fiber, self, new SampleObserver(finish, c, cost, start, c.active))
  }

  const admit = limitConfig === undefined ? admitFixed : admitAdaptive

  const isolate = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions?: IsolateOptions | undefined
  ): Effect.Effect<A, E | BulkheadError, R> =>
    Effect.withFiber<A, E | BulkheadError, R>((fiber) => {
      if (callOptions === undefined) return admit(fiber, self, main, 1, 0)
      const cost = callOptions.cost ?? 1
      const priority = callOptions.priority ?? 0
      if (cost !== 1 && !(Number.isInteger(cost) && cost >= 1)) return Effect.die(invalidCost(cost))
      if (priority !== 0 && !Number.isFinite(priority)) return Effect.die(invalidPriority(priority))
      const c = callOptions.key === undefined ? main : compartmentFor(callOptions.key)
      if (cost > costCap) {
        return Exit.fail(
          rejected(
            fiber,
            c,
            construct(errors.BulkheadCostExceeded, {
              _tag: "BulkheadCostExceeded",
              bulkhead: name,
              key: c.key,
              cost,
              maxConcurrent: costCap
            }),
            cost,
            priority
          )
        )
      }
      return admit(fiber, self, c, cost, priority)
    })

  // ---- reading
  const totals = () => {
    let active = main.active
    let queued = main.queued
    for (const c of compartments.values()) {
      active += c.active
      queued += c.queued
    }
    return { active, queued }
  }
  const rejectedTotal = () => counters.full + counters.timeout + counters.cost_exceeded
  const registrar = registerMetrics(context, name, {
    totals,
    keys: () => compartments.size,
    limit: () => main.config.maxConcurrent,
    counters,
    reasons: memoryRejectionReasons,
    rejectedTotal
  })
  const close = Effect.andThen(
    hub.end,
    Effect.sync(() => registrar.removeAll())
  )

  return {
    isolate,
    state: (key) =>
      Effect.sync(() => {
        const c = key === undefined || key === name ? main : compartments.get(key)
        const active = c?.active ?? 0
        const limit = c?.config.maxConcurrent ?? maxConcurrent
        return { key: key ?? name, active, queued: c?.queued ?? 0, available: Math.max(0, limit - active), limit }
      }),
    stats: Effect.sync(() => ({
      ...totals(),
      admitted: counters.admitted,
      rejected: rejectedTotal(),
      keys: compartments.size,
      limit: main.config.maxConcurrent,
      limitChanges,
      storeErrors: 0
    })),
    compartments: (max) =>
      listCompartments(max, memoryView, memoryOrder, (offer) => {
        // the bulkhead's own compartment is always held
        offer(main)
        for (const c of compartments.values()) offer(c)
        return compartments.size + 1
      }),
    subscribe: hub.subscribe,
    events: hub.events,
    sweep,
    close
  }
}
