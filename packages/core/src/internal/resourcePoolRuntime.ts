/**
 * The pool behind `ResourcePool.make`: its open resources and waiters (the
 * bookkeeping in `internal/resourcePool.ts` decides who gets what), the
 * acquisitions in the background with their backoff, the checks before a
 * borrow and in the background, the housekeeping, leak detection, the
 * shutdown, and the events, metrics and totals.
 *
 * The borrow path (`use` → `lease` → `Frame.observed`) is one closure over
 * the pool's state, as it was in the public module.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type {
  AcquireFailed,
  AcquireTimeout,
  ErrorTypeId,
  Event,
  InvalidationReason,
  MakeOptions,
  PoolClosed,
  ResolvedOptions,
  ResourcePool,
  ResourcePoolError,
  ResourcePoolErrorReason,
  TooManyWaiters,
  TypeId
} from "../ResourcePool.ts"
import * as Telemetry from "../Telemetry.ts"
import * as ClockTimer from "./clockTimer.ts"
import * as Hub from "./events.ts"
import { construct } from "./fastError.ts"
import * as Frame from "./frame.ts"
import * as Metrics from "./metrics.ts"
import * as engine from "./resourcePool.ts"

/**
 * The public module's error classes and brand: rejections are built from
 * them (without running their constructors, `internal/fastError.ts`).
 */
export interface Errors {
  readonly ResourcePoolError: typeof ResourcePoolError
  readonly AcquireTimeout: typeof AcquireTimeout
  readonly AcquireFailed: typeof AcquireFailed
  readonly PoolClosed: typeof PoolClosed
  readonly TooManyWaiters: typeof TooManyWaiters
  readonly ErrorTypeId: ErrorTypeId
}

/** The pool's operations, but for its identity (`ResourcePool.make` adds it). */
export type Runtime<A> = Omit<ResourcePool<A>, TypeId | "name" | "options">

/** An open resource: the bookkeeping's slot, with the value, its scope and its borrower. */
class PoolSlot<A> implements engine.Slot {
  state: engine.SlotState = "idle"
  readonly id: number
  readonly createdAt: number
  readonly expiresAt: number
  idleSince: number
  lastCheckedAt: number
  invalidated = false
  retireReason: engine.RetireReason | undefined = undefined
  readonly value: A
  readonly scope: Scope.Closeable
  borrower: Fiber.Fiber<unknown, unknown> | undefined = undefined
  cancelLeak: (() => void) | undefined = undefined
  constructor(id: number, value: A, scope: Scope.Closeable, now: number, expiresAt: number) {
    this.id = id
    this.value = value
    this.scope = scope
    this.createdAt = now
    this.expiresAt = expiresAt
    this.idleSince = now
    this.lastCheckedAt = now
  }
}

/** A borrower waiting: its place in line, and how to wake its fiber. */
class PoolWaiter<A> implements engine.Waiter<PoolSlot<A>> {
  status: "waiting" | "granted" | "left" = "waiting"
  slot: PoolSlot<A> | undefined = undefined
  prev: PoolWaiter<A> | undefined = undefined
  next: PoolWaiter<A> | undefined = undefined
  grantedAt = 0
  resume: ((effect: Effect.Effect<PoolSlot<A>, ResourcePoolError>) => void) | undefined = undefined
  pending: Effect.Effect<PoolSlot<A>, ResourcePoolError> | undefined = undefined
  cancelTimer: (() => void) | undefined = undefined
  wake(effect: Effect.Effect<PoolSlot<A>, ResourcePoolError>): void {
    const resume = this.resume
    if (resume === undefined) {
      this.pending = effect
      return
    }
    this.resume = undefined
    resume(effect)
  }
}

/** Gives a borrowed resource back when its use ends, however it ends (`internal/frame.ts`). */
class ReturnObserver<A> extends Frame.Observer {
  readonly giveBack: (
    slot: PoolSlot<A>,
    exit: Exit.Exit<unknown, unknown>,
    fiber: Fiber.Fiber<unknown, unknown>
  ) => void
  readonly slot: PoolSlot<A>
  constructor(
    giveBack: (slot: PoolSlot<A>, exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>) => void,
    slot: PoolSlot<A>
  ) {
    super()
    this.giveBack = giveBack
    this.slot = slot
  }
  observe(exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>): void {
    this.giveBack(this.slot, exit, fiber)
  }
}

const releaseMetricReason = {
  IdleTimeout: "idle_timeout",
  MaxLifetime: "max_lifetime",
  Invalidated: "invalidated",
  Shutdown: "shutdown"
} as const

const spanEvent = (
  fiber: Fiber.Fiber<unknown, unknown> | undefined,
  name: string,
  attributes: Record<string, unknown>
) => {
  if (fiber === undefined) return
  const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
  if (span === undefined || span._tag !== "Span") return
  span.event(name, fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
}

/**
 * Starts a pool in the scope of `context`: closing it shuts the pool down.
 * `min` resources are acquired in the background.
 */
export const makeRuntime = <A, E, R>(
  options: ResolvedOptions,
  input: MakeOptions<A, E, R>,
  context: Context.Context<Exclude<R, Scope.Scope> | Scope.Scope>,
  errors: Errors
): Effect.Effect<Runtime<A>> =>
  Effect.withFiber((makeFiber) => {
    const name = options.name
    const scope = Context.get(context, Scope.Scope)
    // the pool's own work (acquisitions, checks, closes, timers) runs with the services `make` had
    // (an acquisition is given a scope of its own)
    const background = context
    const clock = makeFiber.getRef(Clock.Clock)
    const random = makeFiber.getRef(Random.Random)
    const acquire = input.acquire
    const validate = input.validate
    const config: engine.Config = {
      min: options.min,
      max: options.max,
      maxWaiters: options.maxWaiters,
      idleTimeoutMillis: Duration.toMillis(options.idleTimeout),
      keepaliveMillis:
        options.keepalive === undefined || validate === undefined
          ? Number.POSITIVE_INFINITY
          : Duration.toMillis(options.keepalive),
      backoff: {
        kind: "exponential",
        baseMillis: Duration.toMillis(options.acquireRetryBase),
        capMillis: Duration.toMillis(options.acquireRetryCap),
        factor: 2,
        jitter: "equal"
      }
    }
    const acquireTimeoutMillis = Duration.toMillis(options.acquireTimeout)
    const maxLifetimeMillis = Duration.toMillis(options.maxLifetime)
    const validateAfterIdleMillis = Duration.toMillis(options.validateAfterIdle)
    const leakMillis = options.leakDetection === undefined ? undefined : Duration.toMillis(options.leakDetection)
    const state = engine.make<PoolSlot<A>>()
    /** Every open resource, by value (for `invalidate`) and for the shutdown. */
    const open = new Map<A, PoolSlot<A>>()
    const workers = new Set<Fiber.Fiber<unknown, unknown>>()
    const closing = new Set<Fiber.Fiber<unknown, unknown>>()
    const hub = Hub.make<Event>()
    let nextId = 0
    let lastFailure: unknown
    let retryTimer: (() => void) | undefined
    let onDrained: (() => void) | undefined
    const counters = {
      acquired: 0,
      released: 0,
      invalidated: 0,
      borrows: 0,
      waited: 0,
      acquire_timeout: 0,
      acquire_failed: 0,
      too_many_waiters: 0,
      closed: 0,
      acquireFailures: 0,
      leaks: 0,
      waits: Metrics.makeHistogram(),
      idle_timeout: 0,
      max_lifetime: 0,
      invalidated_released: 0,
      shutdown: 0
    }

    const fork = (
      set: Set<Fiber.Fiber<unknown, unknown>>,
      effect: Effect.Effect<void, never, Exclude<R, Scope.Scope>>
    ) => {
      const fiber = Effect.runForkWith(background)(effect)
      set.add(fiber)
      fiber.addObserver(() => {
        set.delete(fiber)
      })
    }

    // ---- resources leaving
    const closeSlot = (slot: PoolSlot<A>, now: number) => {
      if (open.get(slot.value) === slot) open.delete(slot.value)
      slot.cancelLeak?.()
      slot.cancelLeak = undefined
      const reason = slot.retireReason ?? "Shutdown"
      counters.released++
      counters[reason === "Invalidated" ? "invalidated_released" : releaseMetricReason[reason]]++
      if (hub.listening()) {
        hub.emit({
          _tag: "Released",
          pool: name,
          reason,
          age: Duration.millis(Math.max(0, now - slot.createdAt)),
          size: engine.size(state)
        })
      }
      fork(closing, Scope.close(slot.scope, Exit.void))
    }
    const invalidated = (reason: InvalidationReason, borrowed: boolean) => {
      counters.invalidated++
      if (hub.listening()) hub.emit({ _tag: "Invalidated", pool: name, reason, borrowed })
    }

    /** Performs what the bookkeeping decided: wakes the waiters granted, closes the resources retired, acquires more. */
    const settle = (
      out: engine.Outcome<PoolSlot<A>>,
      now: number,
      fiber: Fiber.Fiber<unknown, unknown> | undefined
    ) => {
      for (const w of out.granted) {
        const waiter = w as PoolWaiter<A>
        waiter.cancelTimer?.()
        waiter.cancelTimer = undefined
        waiter.grantedAt = now
        const slot = waiter.slot
        if (slot === undefined) continue
        const done = Exit.succeed(slot)
        if (fiber === undefined) waiter.wake(done)
        else fiber.currentDispatcher.scheduleTask(() => waiter.wake(done), 0)
      }
      for (const slot of out.retired) closeSlot(slot, now)
      if (state.closed) {
        if (onDrained !== undefined && state.borrowed + state.checking === 0) onDrained()
        return
      }
      fill(now)
    }

    // ---- acquisitions
    const fill = (now: number) => {
      const n = engine.toAcquire(state, now, config)
      for (let i = 0; i < n; i++) fork(workers, acquireOne)
      if (n === 0 && now < state.retryAt && retryTimer === undefined) {
        const at = state.retryAt
        retryTimer = ClockTimer.schedule(background, clock, at - now, () => {
          retryTimer = undefined
          // the timer's time, at least: a clock read a little early must not arm it again
          fill(Math.max(clock.currentTimeMillisUnsafe(), at))
        })
      }
    }
    const onAcquired = (value: A, slotScope: Scope.Closeable, started: number) => {
      const now = clock.currentTimeMillisUnsafe()
      const lifetime = engine.lifetime(maxLifetimeMillis, options.maxLifetimeJitter, random.nextDoubleUnsafe())
      const slot = new PoolSlot(++nextId, value, slotScope, now, now + lifetime)
      open.set(value, slot)
      counters.acquired++
      const out = engine.outcome<PoolSlot<A>>()
      engine.added(state, slot, now, out)
      if (hub.listening() && slot.state !== "retired") {
        hub.emit({
          _tag: "Acquired",
          pool: name,
          duration: Duration.millis(Math.max(0, now - started)),
          size: engine.size(state)
        })
      }
      settle(out, now, undefined)
    }
    const onAcquireFailed = (cause: Cause.Cause<unknown>) => {
      const now = clock.currentTimeMillisUnsafe()
      const interrupted = Cause.hasInterruptsOnly(cause)
      const delay = engine.acquireFailed(state, now, random.nextDoubleUnsafe(), config, interrupted)
      if (!interrupted) {
        counters.acquireFailures++
        lastFailure = Cause.squash(cause)
        if (hub.listening()) {
          hub.emit({
            _tag: "AcquireFailed",
            pool: name,
            error: lastFailure,
            attempts: state.failures,
            retryIn: Duration.millis(delay)
          })
        }
      }
      if (!state.closed) fill(now)
    }
    const acquireOne: Effect.Effect<void, never, Exclude<R, Scope.Scope>> = Effect.uninterruptibleMask((restore) => {
      const slotScope = Scope.makeUnsafe()
      const started = clock.currentTimeMillisUnsafe()
      const attempt = Effect.timeout(Effect.provideService(acquire, Scope.Scope, slotScope), acquireTimeoutMillis)
      return Effect.flatMap(Effect.exit(restore(attempt)), (exit) =>
        Exit.isSuccess(exit)
          ? Effect.sync(() => onAcquired(exit.value, slotScope, started))
          : Effect.andThen(
              Scope.close(slotScope, exit),
              Effect.sync(() => onAcquireFailed(exit.cause))
            )
      )
    })

    // ---- keepalive checks
    const validated = (value: A, check: (resource: A) => Effect.Effect<boolean, unknown>): Effect.Effect<boolean> =>
      Effect.timeout(check(value), options.validationTimeout).pipe(
        Effect.catchCause((cause) => (Cause.hasInterrupts(cause) ? Effect.failCause(cause) : Effect.succeed(false))),
        Effect.orDie
      )
    const keepaliveCheck = (slot: PoolSlot<A>, check: (resource: A) => Effect.Effect<boolean, unknown>) =>
      Effect.onExit(validated(slot.value, check), (exit) =>
        Effect.sync(() => {
          const now = clock.currentTimeMillisUnsafe()
          const ok = Exit.isSuccess(exit) && exit.value
          if (!ok && slot.state === "checking" && !Exit.hasInterrupts(exit)) invalidated("KeepaliveFailed", false)
          const out = engine.outcome<PoolSlot<A>>()
          engine.checked(state, slot, ok, now, out)
          settle(out, now, undefined)
        })
      )
    const housekeep = Effect.sync(() => {
      const now = clock.currentTimeMillisUnsafe()
      const out = engine.outcome<PoolSlot<A>>()
      const check = engine.housekeep(state, now, config, out)
      if (validate !== undefined) for (const slot of check) fork(workers, Effect.asVoid(keepaliveCheck(slot, validate)))
      settle(out, now, undefined)
    })

    // ---- borrowing
    const giveBack = (slot: PoolSlot<A>, exit: Exit.Exit<unknown, unknown>, fiber: Fiber.Fiber<unknown, unknown>) => {
      slot.cancelLeak?.()
      slot.cancelLeak = undefined
      slot.borrower = undefined
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      let retireAs: engine.RetireReason | undefined
      if (options.invalidateOnInterrupt && exit._tag === "Failure" && Cause.hasInterrupts(exit.cause)) {
        if (slot.state === "borrowed") invalidated("Interrupted", true)
        retireAs = "Invalidated"
      }
      const out = engine.outcome<PoolSlot<A>>()
      engine.giveBack(state, slot, now, out, retireAs)
      settle(out, now, fiber)
    }
    const suspectLeak = (slot: PoolSlot<A>, fiber: Fiber.Fiber<unknown, unknown>, millis: number) => () => {
      slot.cancelLeak = undefined
      if (slot.borrower !== fiber) return
      counters.leaks++
      spanEvent(fiber, "LeakSuspected", { [Telemetry.attributes.name]: name })
      if (hub.listening()) {
        hub.emit({ _tag: "LeakSuspected", pool: name, heldFor: Duration.millis(millis), fiberId: fiber.id })
      }
    }
    /** Runs `f` with a borrowed resource, giving it back when it ends. */
    const lease = <B, E2, R2>(
      fiber: Fiber.Fiber<unknown, unknown>,
      slot: PoolSlot<A>,
      f: (resource: A) => Effect.Effect<B, E2, R2>,
      waitedMillis: number,
      restore: (<X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>) | undefined
    ): Effect.Effect<B, E2, R2> => {
      counters.borrows++
      if (waitedMillis > 0) {
        counters.waited++
        Metrics.observe(counters.waits, waitedMillis / 1000)
      }
      slot.borrower = fiber
      if (leakMillis !== undefined) {
        slot.cancelLeak = ClockTimer.schedule(
          background,
          fiber.getRef(Clock.Clock),
          leakMillis,
          suspectLeak(slot, fiber, leakMillis)
        )
      }
      let body: Effect.Effect<B, E2, R2>
      try {
        body = f(slot.value)
      } catch (defect) {
        body = Effect.die(defect)
      }
      return Frame.observed<B, E2, R2>(
        fiber,
        restore === undefined ? body : restore(body),
        new ReturnObserver(giveBack, slot)
      )
    }

    const rejected = (
      fiber: Fiber.Fiber<unknown, unknown> | undefined,
      reason: ResourcePoolErrorReason
    ): ResourcePoolError => {
      const tag = reason._tag
      if (tag === "AcquireTimeout" || tag === "AcquireFailed") {
        counters[tag === "AcquireTimeout" ? "acquire_timeout" : "acquire_failed"]++
        spanEvent(fiber, "WaitTimeout", { [Telemetry.attributes.name]: name, [Telemetry.attributes.reason]: tag })
        if (hub.listening()) {
          hub.emit({
            _tag: "WaitTimeout",
            pool: name,
            reason: tag,
            waited: options.acquireTimeout,
            waiters: state.waiting
          })
        }
      } else {
        counters[tag === "TooManyWaiters" ? "too_many_waiters" : "closed"]++
        spanEvent(fiber, "Rejected", { [Telemetry.attributes.name]: name, [Telemetry.attributes.reason]: tag })
        if (hub.listening()) hub.emit({ _tag: "Rejected", pool: name, reason: tag })
      }
      return construct(errors.ResourcePoolError, {
        _tag: "ResourcePoolError",
        [errors.ErrorTypeId]: errors.ErrorTypeId,
        reason
      })
    }
    const closedError = (fiber: Fiber.Fiber<unknown, unknown> | undefined) =>
      rejected(fiber, construct(errors.PoolClosed, { _tag: "PoolClosed", pool: name }))

    /** `acquireTimeout` ran out for a waiter still in line. */
    const timeOut = (w: PoolWaiter<A>, fiber: Fiber.Fiber<unknown, unknown>) => {
      w.cancelTimer = undefined
      if (w.status !== "waiting") return
      engine.leave(state, w)
      const reason: ResourcePoolErrorReason =
        state.failures > 0
          ? construct(errors.AcquireFailed, {
              _tag: "AcquireFailed",
              pool: name,
              acquireTimeout: options.acquireTimeout,
              attempts: state.failures,
              cause: lastFailure
            })
          : construct(errors.AcquireTimeout, {
              _tag: "AcquireTimeout",
              pool: name,
              acquireTimeout: options.acquireTimeout,
              size: engine.size(state),
              waiters: state.waiting
            })
      w.wake(Exit.fail(rejected(fiber, reason)))
    }
    const awaitTurn = (w: PoolWaiter<A>, fiber: Fiber.Fiber<unknown, unknown>, deadline: number) =>
      Effect.callback<PoolSlot<A>, ResourcePoolError>((resume) => {
        const pending = w.pending
        if (pending !== undefined) {
          w.pending = undefined
          resume(pending)
          return
        }
        w.resume = resume
        const fiberClock = fiber.getRef(Clock.Clock)
        w.cancelTimer = ClockTimer.schedule(
          fiber.context,
          fiberClock,
          deadline - fiberClock.currentTimeMillisUnsafe(),
          () => timeOut(w, fiber)
        )
      })
    /** The borrower leaves its place (interrupted): out of the line, or its resource passed on if granted. */
    const abandon = (w: PoolWaiter<A>, fiber: Fiber.Fiber<unknown, unknown>) => {
      w.cancelTimer?.()
      w.cancelTimer = undefined
      w.resume = undefined
      w.pending = undefined
      const slot = engine.leave(state, w)
      if (slot === undefined) return
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const out = engine.outcome<PoolSlot<A>>()
      engine.giveBack(state, slot, now, out)
      settle(out, now, fiber)
    }

    type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

    /**
     * A borrowed resource (validated when due), in the caller's uninterruptible
     * region: waits (interruptibly) when none is idle; `front` for a borrower
     * that lost its resource to a failed validation.
     */
    const obtain = (restore: Restore, start: number, front: boolean): Effect.Effect<PoolSlot<A>, ResourcePoolError> =>
      Effect.withFiber((fiber) => {
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        if (state.closed) return Exit.fail(closedError(fiber))
        let slot: PoolSlot<A> | undefined
        for (;;) {
          const out = engine.outcome<PoolSlot<A>>()
          slot = engine.borrow(state, now, out)
          if (out.retired.length === 0) break
          // replacements for the resources retired on the way may be idle already (an acquisition that did not suspend)
          settle(out, now, fiber)
          if (slot !== undefined) break
        }
        if (slot !== undefined) return checkBeforeUse(restore, slot, start, now)
        if (!front && !engine.canWait(state, config)) {
          return Exit.fail(
            rejected(
              fiber,
              construct(errors.TooManyWaiters, { _tag: "TooManyWaiters", pool: name, maxWaiters: options.maxWaiters })
            )
          )
        }
        const w = new PoolWaiter<A>()
        engine.enqueue(state, w, front)
        fill(now)
        return Effect.matchCauseEffect(restore(awaitTurn(w, fiber, start + acquireTimeoutMillis)), {
          onFailure: (cause) => {
            abandon(w, fiber)
            return Exit.failCause(cause)
          },
          onSuccess: (granted) => checkBeforeUse(restore, granted, start, w.grantedAt)
        })
      })
    /** Validates a resource idle `validateAfterIdle` or longer; a bad one is retired and another obtained. */
    const checkBeforeUse = (
      restore: Restore,
      slot: PoolSlot<A>,
      start: number,
      now: number
    ): Effect.Effect<PoolSlot<A>, ResourcePoolError> => {
      // known good since it came back, was acquired or was checked (a resource acquired for this borrow is not checked)
      const knownGood = Math.max(slot.idleSince, slot.lastCheckedAt)
      if (validate === undefined || now <= knownGood || now - knownGood < validateAfterIdleMillis) {
        return Exit.succeed(slot)
      }
      return Effect.matchCauseEffect(restore(validated(slot.value, validate)), {
        onFailure: (cause) =>
          Effect.withFiber((fiber) => {
            // interrupted while checking: the resource goes back as it was
            giveBack(slot, Exit.void, fiber)
            return Exit.failCause(cause)
          }),
        onSuccess: (ok) =>
          Effect.withFiber((fiber) => {
            const at = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
            if (ok) {
              slot.lastCheckedAt = at
              return Exit.succeed(slot)
            }
            invalidated("ValidationFailed", false)
            const out = engine.outcome<PoolSlot<A>>()
            engine.giveBack(state, slot, at, out, "Invalidated")
            settle(out, at, fiber)
            return obtain(restore, start, true)
          })
      })
    }

    const use = <B, E2, R2>(
      f: (resource: A) => Effect.Effect<B, E2, R2>
    ): Effect.Effect<B, E2 | ResourcePoolError, R2> =>
      Effect.withFiber((fiber) => {
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        if (validate === undefined && !state.closed && state.waiting === 0) {
          // the fast path: an idle resource, nobody waiting, nothing to check
          const out = engine.outcome<PoolSlot<A>>()
          const slot = engine.borrow(state, now, out)
          if (out.retired.length > 0) settle(out, now, fiber)
          if (slot !== undefined) return lease(fiber, slot, f, 0, undefined)
        }
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(obtain(restore, now, false), (slot) =>
            Effect.withFiber((running) =>
              lease(running, slot, f, running.getRef(Clock.Clock).currentTimeMillisUnsafe() - now, restore)
            )
          )
        )
      })

    const invalidate = (resource: A): Effect.Effect<void> =>
      Effect.withFiber((fiber) => {
        const slot = open.get(resource)
        if (slot === undefined || slot.state === "retired") return Effect.void
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        const borrowed = slot.state !== "idle"
        const out = engine.outcome<PoolSlot<A>>()
        if (engine.invalidate(state, slot, out)) invalidated("Invalidate", borrowed)
        settle(out, now, fiber)
        return Effect.void
      })

    // ---- shutdown
    const awaitDrained = Effect.callback<void>((resume) => {
      if (state.borrowed + state.checking === 0) {
        resume(Effect.void)
        return
      }
      onDrained = () => {
        onDrained = undefined
        resume(Effect.void)
      }
      return Effect.sync(() => {
        onDrained = undefined
      })
    })
    const shutdown = Effect.gen(function* () {
      const now = clock.currentTimeMillisUnsafe()
      const out = engine.outcome<PoolSlot<A>>()
      const waiters = engine.close(state, out)
      retryTimer?.()
      retryTimer = undefined
      for (const w of waiters) {
        const waiter = w as PoolWaiter<A>
        waiter.cancelTimer?.()
        waiter.cancelTimer = undefined
        waiter.wake(Exit.fail(closedError(undefined)))
      }
      settle(out, now, undefined)
      // acquisitions in flight and keepalive checks stop (their resources are released as they end)
      yield* Fiber.interruptAll(Array.from(workers))
      if (state.borrowed + state.checking > 0) {
        yield* Effect.ignore(Effect.timeout(awaitDrained, options.shutdownTimeout))
      }
      if (state.borrowed + state.checking > 0) {
        // the grace period is over: the borrowers are interrupted and their resources released under them
        for (const slot of open.values()) slot.borrower?.interruptUnsafe(makeFiber.id)
        yield* Effect.yieldNow
        const forced = engine.outcome<PoolSlot<A>>()
        for (const slot of Array.from(open.values())) engine.forceRetire(state, slot, forced)
        settle(forced, clock.currentTimeMillisUnsafe(), undefined)
      }
      yield* Fiber.awaitAll(Array.from(closing))
      yield* hub.end
      registrar.removeAll()
    })

    // ---- metrics, read when exported
    const registrar = Metrics.registrar(makeFiber.context)
    const base = { [Telemetry.attributes.name]: name }
    const spec = Telemetry.resourcePool
    const attr = (key: string, value: string) => ({ ...base, [key]: value })
    registrar.gauge(spec.size, base, () => engine.size(state))
    registrar.gauge(spec.idle, base, () => state.idle.length)
    registrar.gauge(spec.borrowed, base, () => state.borrowed)
    registrar.gauge(spec.waiters, base, () => state.waiting)
    registrar.histogram(spec.waitDuration, base, () => {
      const waits = counters.waits
      const immediate = counters.borrows - counters.waited
      if (immediate === 0) return waits
      const buckets = Float64Array.from(waits.buckets)
      buckets[0] = (buckets[0] ?? 0) + immediate
      return { buckets, count: waits.count + immediate, sum: waits.sum, min: 0, max: Math.max(0, waits.max) }
    })
    for (const reason of ["acquire_timeout", "acquire_failed"] as const) {
      registrar.counter(spec.timeouts, attr(Telemetry.attributes.reason, reason), () => counters[reason])
    }
    for (const reason of ["too_many_waiters", "closed"] as const) {
      registrar.counter(spec.rejected, attr(Telemetry.attributes.reason, reason), () => counters[reason])
    }
    registrar.counter(spec.acquisitions, attr(Telemetry.attributes.outcome, "success"), () => counters.acquired)
    registrar.counter(spec.acquisitions, attr(Telemetry.attributes.outcome, "failure"), () => counters.acquireFailures)
    for (const reason of ["idle_timeout", "max_lifetime", "shutdown"] as const) {
      registrar.counter(spec.releases, attr(Telemetry.attributes.reason, reason), () => counters[reason])
    }
    registrar.counter(
      spec.releases,
      attr(Telemetry.attributes.reason, "invalidated"),
      () => counters.invalidated_released
    )
    registrar.counter(spec.leaks, base, () => counters.leaks)

    const pool: Runtime<A> = {
      use,
      invalidate,
      stats: Effect.sync(() => ({
        size: engine.size(state),
        idle: state.idle.length,
        borrowed: state.borrowed,
        acquiring: state.acquiring,
        waiters: state.waiting,
        acquired: counters.acquired,
        released: counters.released,
        invalidated: counters.invalidated,
        borrows: counters.borrows,
        timeouts: counters.acquire_timeout + counters.acquire_failed,
        rejected: counters.too_many_waiters + counters.closed,
        acquireFailures: counters.acquireFailures,
        consecutiveFailures: state.failures,
        leaksSuspected: counters.leaks
      })),
      subscribe: hub.subscribe,
      events: hub.events
    }

    return Effect.gen(function* () {
      yield* Scope.addFinalizer(scope, shutdown)
      yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(options.housekeepingInterval), housekeep)), scope)
      fill(clock.currentTimeMillisUnsafe())
      return pool
    })
  })
