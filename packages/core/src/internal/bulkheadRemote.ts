/**
 * A bulkhead whose permits live in a remote store (`Bulkhead.RemotePermits`,
 * Redis in `@effect-resilience/redis`), chosen once by `Bulkhead.make` when
 * the `BulkheadStore` in context has `remote`. The in-process bulkhead
 * (`internal/bulkheadCompartments.ts`) is untouched by it.
 *
 * - A call asks the store for a named permit (its lease); granted, it runs
 *   while a fiber renews the lease every `renewMillis`, and gives it back
 *   when it ends, however it ends.
 * - Refused, it waits in this process's line for its key (at most
 *   `maxQueue`, ordered by priority then arrival, `internal/bulkheadPoll.ts`):
 *   only the head asks the store, again and again with capped backoff and
 *   jitter, until it is granted or `maxWait` runs out. A permit this process
 *   gives back, or a head that leaves, makes the (new) head ask at once.
 * - A store failure follows `onStoreError`: `allow` runs the call without a
 *   permit, `fail` rejects it with `BulkheadStoreError`.
 * - A key is held in memory only while it has calls running or waiting here.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type {
  BulkheadError,
  BulkheadErrorReason,
  BulkheadStoreError,
  Event,
  IsolateOptions,
  RemotePermits,
  ResolvedOptions
} from "../Bulkhead.ts"
import * as Telemetry from "../Telemetry.ts"
import {
  type Compartments,
  type Errors,
  invalidCost,
  invalidPriority,
  listCompartments,
  registerMetrics,
  rejectionReason,
  urgencyOrder
} from "./bulkheadCompartments.ts"
import * as poll from "./bulkheadPoll.ts"
import * as Hub from "./events.ts"
import { construct } from "./fastError.ts"
import * as Metrics from "./metrics.ts"

/** A call waiting in this process for a permit of its key. */
interface Ticket extends poll.Place {
  readonly cost: number
  readonly enqueuedAt: number
  /** When the head asks the store next (clock milliseconds). */
  due: number
  /** Polls made since it joined the line (for the backoff). */
  polls: number
  /** Wakes the waiter early: it became the head, or a permit was given back here. */
  wake: Deferred.Deferred<void> | undefined
}

/** One key's calls in this process: the permits they hold, and the line. */
interface KeyState {
  readonly key: string
  held: number
  readonly line: Array<Ticket>
}

/** How a wait ended. */
type Waited = "granted" | "timeout"

/** The bulkhead over `permits`, but for its identity (`Bulkhead.make` adds it). */
export const makeRemote = (
  options: ResolvedOptions,
  permits: RemotePermits,
  scope: Scope.Scope,
  context: Context.Context<never>,
  errors: Errors
): Compartments => {
  const { maxConcurrent, maxQueue, name, onStoreError } = options
  const maxWaitMillis = Duration.toMillis(options.maxWait)
  const pollConfig: poll.PollConfig = permits.poll
  const renewEvery = Duration.millis(permits.renewMillis)
  // permits are named: this bulkhead's prefix (random, so processes never share one) and a counter
  const permitPrefix = `${name}:${Math.random().toString(36).slice(2, 10)}${Math.random().toString(36).slice(2, 10)}`
  let permitCount = 0
  let seq = 0
  const keys = new Map<string, KeyState>()
  const counters = {
    admitted: 0,
    waited: 0,
    full: 0,
    timeout: 0,
    cost_exceeded: 0,
    store_error: 0,
    storeErrors: 0,
    waits: Metrics.makeHistogram()
  }
  const hub = Hub.make<Event>()

  // ---- keys and lines
  const stateFor = (key: string): KeyState => {
    let k = keys.get(key)
    if (k === undefined) {
      k = { key, held: 0, line: [] }
      keys.set(key, k)
    }
    return k
  }
  const dropIfIdle = (k: KeyState) => {
    if (k.held === 0 && k.line.length === 0 && keys.get(k.key) === k) keys.delete(k.key)
  }
  /** Makes the head of the line ask the store at once. */
  const nudge = (k: KeyState, now: number) => {
    const head = k.line[0]
    if (head === undefined) return
    head.due = now
    const wake = head.wake
    if (wake !== undefined) {
      head.wake = undefined
      Deferred.doneUnsafe(wake, Exit.void)
    }
  }
  const leaveLine = (k: KeyState, t: Ticket, now: number) => {
    const at = k.line.indexOf(t)
    if (at < 0) return
    k.line.splice(at, 1)
    if (at === 0) nudge(k, now)
    dropIfIdle(k)
  }

  // ---- rejections
  const spanEvent = (fiber: Fiber.Fiber<unknown, unknown>, reason: string) => {
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span === undefined || span._tag !== "Span") return
    span.event("Rejected", fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), {
      [Telemetry.attributes.name]: name,
      [Telemetry.attributes.reason]: reason
    })
  }
  const rejected = (
    fiber: Fiber.Fiber<unknown, unknown>,
    key: string,
    reason: BulkheadErrorReason,
    cost: number,
    priority: number,
    active: number,
    queued: number
  ): BulkheadError => {
    const tag = reason._tag
    counters[rejectionReason[tag]]++
    spanEvent(fiber, rejectionReason[tag])
    if (hub.listening()) {
      hub.emit({
        _tag: "Rejected",
        bulkhead: name,
        key,
        reason: tag,
        cost,
        priority,
        active,
        queued,
        retryAfter: undefined
      })
    }
    return construct(errors.BulkheadError, { _tag: "BulkheadError", [errors.ErrorTypeId]: errors.ErrorTypeId, reason })
  }
  const full = (fiber: Fiber.Fiber<unknown, unknown>, k: KeyState, cost: number, priority: number, held: number) =>
    rejected(
      fiber,
      k.key,
      construct(errors.BulkheadFull, {
        _tag: "BulkheadFull",
        bulkhead: name,
        key: k.key,
        maxConcurrent,
        active: held,
        queued: k.line.length
      }),
      cost,
      priority,
      held,
      k.line.length
    )

  // ---- store failures
  const failedStore = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    k: KeyState,
    cost: number,
    priority: number,
    error: BulkheadStoreError
  ): Effect.Effect<A, E | BulkheadError, R> => {
    counters.storeErrors++
    if (onStoreError === "allow") {
      // fail-open: the call runs without a permit
      counters.admitted++
      return self
    }
    return Exit.fail(
      rejected(
        fiber,
        k.key,
        construct(errors.BulkheadStoreError, {
          _tag: "BulkheadStoreError",
          bulkhead: name,
          key: k.key,
          message: error.message,
          cause: error
        }),
        cost,
        priority,
        k.held,
        k.line.length
      )
    )
  }

  // ---- holding a permit
  /** Renews the lease every `renewMillis` until it is lost (a lease that ran out is gone for good). */
  const renewing = (key: string, permit: string, cost: number): Effect.Effect<void> => {
    const loop: Effect.Effect<void> = Effect.andThen(
      Effect.sleep(renewEvery),
      Effect.matchEffect(permits.renew(key, permit, cost), {
        onFailure: () => {
          // the store failed: try again next time, while the lease may still be live
          counters.storeErrors++
          return loop
        },
        onSuccess: (live) => {
          if (live) return loop
          counters.storeErrors++
          return Effect.void
        }
      })
    )
    return loop
  }
  /** Gives the permit back (a failed release leaves it to its lease), then forgets it here. */
  const giveBack = (k: KeyState, permit: string, cost: number): Effect.Effect<void> =>
    Effect.matchEffect(permits.release(k.key, permit, cost), {
      onFailure: () =>
        Effect.sync(() => {
          counters.storeErrors++
          forget(k, cost)
        }),
      onSuccess: () => Effect.sync(() => forget(k, cost))
    })
  const forget = (k: KeyState, cost: number) => {
    k.held -= cost
    // a permit given back here may let this process's head in
    if (k.line.length > 0) nudge(k, 0)
    dropIfIdle(k)
  }
  /** Runs `self` holding `permit` (granted): renewed while it runs, given back however it ends. */
  const holding = <A, E, R>(
    restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
    self: Effect.Effect<A, E, R>,
    k: KeyState,
    permit: string,
    cost: number
  ): Effect.Effect<A, E, R> => {
    k.held += cost
    counters.admitted++
    return Effect.flatMap(Effect.forkIn(Effect.interruptible(renewing(k.key, permit, cost)), scope), (renewer) =>
      Effect.onExit(restore(self), () => Effect.andThen(Fiber.interrupt(renewer), giveBack(k, permit, cost)))
    )
  }

  // ---- waiting
  /**
   * Waits in line until granted or `maxWait` ran out: the head asks the store
   * when due, the others sleep until woken or their deadline.
   */
  const waitTurn = (
    restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
    k: KeyState,
    t: Ticket,
    permit: string,
    deadline: number
  ): Effect.Effect<Waited, BulkheadStoreError> => {
    const step: Effect.Effect<Waited, BulkheadStoreError> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const isHead = k.line[0] === t
      /** Sleeps from `from` (a clock reading) until `dueAt`, a wake-up or the deadline. */
      const sleepFor = (from: number, dueAt: number): Effect.Effect<Waited, BulkheadStoreError> => {
        if (from >= deadline) return Effect.succeed("timeout")
        const wake = Deferred.makeUnsafe<void>()
        t.wake = wake
        // whole milliseconds: the clock's unit (a test clock's sleeps too)
        const millis = Math.max(0, Math.ceil(Math.min(dueAt, deadline) - from))
        const woken = Deferred.await(wake)
        return Effect.andThen(
          restore(millis === Number.POSITIVE_INFINITY ? woken : Effect.timeoutOption(woken, Duration.millis(millis))),
          Effect.suspend(() => {
            t.wake = undefined
            return step
          })
        )
      }
      if (!isHead || t.due > now) return sleepFor(now, isHead ? t.due : deadline)
      // the head, due: ask the store (not interruptible: a grant must not be lost)
      return Effect.flatMap(permits.acquire(k.key, permit, t.cost, maxConcurrent), (outcome) => {
        if (outcome.granted) return Effect.succeed<Waited>("granted")
        // the time the answer came, not the time it was asked: a slow store must not push the wait past maxWait
        return Effect.flatMap(Effect.zip(Clock.currentTimeMillis, Random.next), ([answeredAt, random]) => {
          t.polls++
          t.due = answeredAt + poll.pollDelay(pollConfig, t.polls, random, deadline - answeredAt)
          return sleepFor(answeredAt, t.due)
        })
      })
    })
    return step
  }

  /** Joins the line (or is rejected), waits, then runs `self` holding the permit. */
  const wait = <A, E, R>(
    restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    k: KeyState,
    cost: number,
    priority: number,
    permit: string,
    held: number,
    polled: boolean
  ): Effect.Effect<A, E | BulkheadError, R> => {
    if (k.line.length >= maxQueue) {
      const error = full(fiber, k, cost, priority, held)
      dropIfIdle(k)
      return Exit.fail(error)
    }
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    const t: Ticket = { priority, seq: ++seq, cost, enqueuedAt: now, due: now, polls: 0, wake: undefined }
    k.line.splice(poll.placeOf(k.line, t), 0, t)
    if (polled && k.line[0] === t) {
      // it asked the store just now: the next time after the first backoff
      t.polls = 1
      t.due = now + poll.pollDelay(pollConfig, 1, fiber.getRef(Random.Random).nextDoubleUnsafe(), maxWaitMillis)
    }
    if (hub.listening()) {
      hub.emit({ _tag: "Queued", bulkhead: name, key: k.key, cost, priority, queued: k.line.length })
    }
    const deadline = now + maxWaitMillis
    return Effect.matchCauseEffect(waitTurn(restore, k, t, permit, deadline), {
      onFailure: (cause) => {
        leaveLine(k, t, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe())
        const error = Cause.findError(cause)
        return Result.isFailure(error)
          ? Exit.failCause(error.failure)
          : failedStore(fiber, self, k, cost, priority, error.success)
      },
      onSuccess: (waited) =>
        Effect.withFiber<A, E | BulkheadError, R>((running) => {
          const at = running.getRef(Clock.Clock).currentTimeMillisUnsafe()
          leaveLine(k, t, at)
          if (waited === "timeout") {
            const error = rejected(
              running,
              k.key,
              construct(errors.BulkheadTimeout, {
                _tag: "BulkheadTimeout",
                bulkhead: name,
                key: k.key,
                maxConcurrent,
                active: k.held,
                queued: k.line.length,
                maxWait: options.maxWait
              }),
              cost,
              priority,
              k.held,
              k.line.length
            )
            dropIfIdle(k)
            return Exit.fail(error)
          }
          counters.waited++
          Metrics.observe(counters.waits, (at - t.enqueuedAt) / 1000)
          if (hub.listening()) {
            hub.emit({
              _tag: "Acquired",
              bulkhead: name,
              key: k.key,
              cost,
              priority,
              waited: Duration.millis(at - t.enqueuedAt)
            })
          }
          return holding(restore, self, k, permit, cost)
        })
    })
  }

  const isolate = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions?: IsolateOptions | undefined
  ): Effect.Effect<A, E | BulkheadError, R> =>
    Effect.withFiber<A, E | BulkheadError, R>((fiber) => {
      const cost = callOptions?.cost ?? 1
      const priority = callOptions?.priority ?? 0
      if (cost !== 1 && !(Number.isInteger(cost) && cost >= 1)) return Effect.die(invalidCost(cost))
      if (priority !== 0 && !Number.isFinite(priority)) return Effect.die(invalidPriority(priority))
      const key = callOptions?.key ?? name
      if (cost > maxConcurrent) {
        const k = keys.get(key)
        return Exit.fail(
          rejected(
            fiber,
            key,
            construct(errors.BulkheadCostExceeded, {
              _tag: "BulkheadCostExceeded",
              bulkhead: name,
              key,
              cost,
              maxConcurrent
            }),
            cost,
            priority,
            k?.held ?? 0,
            k?.line.length ?? 0
          )
        )
      }
      const k = stateFor(key)
      const permit = `${permitPrefix}:${++permitCount}`
      return Effect.uninterruptibleMask((restore) => {
        if (!poll.mayGoFirst(k.line, priority))
          return wait(restore, fiber, self, k, cost, priority, permit, k.held, false)
        return Effect.matchEffect(permits.acquire(key, permit, cost, maxConcurrent), {
          onFailure: (error) => {
            dropIfIdle(k)
            return failedStore(fiber, self, k, cost, priority, error)
          },
          onSuccess: (outcome) =>
            outcome.granted
              ? holding(restore, self, k, permit, cost)
              : wait(restore, fiber, self, k, cost, priority, permit, outcome.held, true)
        })
      })
    })

  // ---- reading
  const view = {
    key: (k: KeyState) => k.key,
    active: (k: KeyState) => k.held,
    queued: (k: KeyState) => k.line.length,
    limit: () => maxConcurrent
  }
  const order = urgencyOrder(view)
  const totals = () => {
    let active = 0
    let queued = 0
    for (const k of keys.values()) {
      active += k.held
      queued += k.line.length
    }
    return { active, queued }
  }
  const rejectedTotal = () => counters.full + counters.timeout + counters.cost_exceeded + counters.store_error

  // metrics, read when exported
  const registrar = registerMetrics(context, name, {
    totals,
    keys: () => keys.size,
    limit: () => maxConcurrent,
    counters,
    reasons: Object.values(rejectionReason),
    rejectedTotal
  })
  registrar.counter(Telemetry.bulkhead.storeErrors, { [Telemetry.attributes.name]: name }, () => counters.storeErrors)
  const close = Effect.andThen(
    hub.end,
    Effect.sync(() => registrar.removeAll())
  )

  return {
    isolate,
    state: (key) => {
      const name_ = key ?? name
      const local = keys.get(name_)
      const snapshot = (active: number) => ({
        key: name_,
        active,
        queued: local?.line.length ?? 0,
        available: Math.max(0, maxConcurrent - active),
        limit: maxConcurrent
      })
      // the permits held over every process; this process's own when the store fails
      return Effect.match(permits.held(name_), {
        onFailure: () => snapshot(local?.held ?? 0),
        onSuccess: snapshot
      })
    },
    stats: Effect.sync(() => ({
      ...totals(),
      admitted: counters.admitted,
      rejected: rejectedTotal(),
      keys: keys.size,
      limit: maxConcurrent,
      limitChanges: 0,
      storeErrors: counters.storeErrors
    })),
    // this process's compartments only: its permits and its lines (no store round trip per key)
    compartments: (max) =>
      listCompartments(max, view, order, (offer) => {
        for (const k of keys.values()) offer(k)
        return keys.size
      }),
    subscribe: hub.subscribe,
    events: hub.events,
    sweep: () => undefined,
    close
  }
}
