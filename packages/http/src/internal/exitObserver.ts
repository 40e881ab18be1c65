/**
 * An exit observer pushed straight onto the fiber's continuation stack: the
 * cheapest way to run code exactly once when an effect ends, however it ends.
 *
 * `Effect.onExit` allocates a primitive per call, costs run-loop steps, makes
 * the fiber uninterruptible to run its finalizer, and must be wrapped in
 * `uninterruptibleMask` so that nothing interrupts the fiber between the
 * bookkeeping and the finalizer's registration. Effect's own HTTP server
 * (`effect/http/HttpEffect`) instead pushes an object with the success and
 * failure continuations onto the fiber's stack from inside `withFiber`, and
 * `@effect-resilience/core` does the same for its patterns (its internal
 * `frame.ts`, private to core): this is the same protocol, for the HTTP
 * package.
 *
 * Inside `withFiber` the caller's bookkeeping and the push run synchronously,
 * before the fiber evaluates anything else, so no interruption can fall in
 * between. Once pushed, the observer is popped exactly once, and observes
 * exactly once:
 *
 * - on success or failure (a defect included) the fiber calls its success or
 *   failure continuation;
 * - on an interruption the fiber unwinds its stack without calling the
 *   continuations of an interruptible region, but calls the `ensureCont` hook
 *   of every frame it pops: the observer observes there, and hands the fiber
 *   a continuation that goes on with the interruption (as Effect's own
 *   `setInterruptible` frame does), so its own continuations are never called
 *   after that.
 *
 * An observer carries no per-call state, so one instance serves every call.
 *
 * The continuation keys belong to Effect's internal protocol: the module
 * checks at load that a pushed observer sees a success, a failure, a defect,
 * and an interruption (suspended and while running), each exactly once, and
 * otherwise `active()` is false and callers take their public-API path
 * (`uninterruptibleMask` + `onExit`). `EFFECT_RESILIENCE_FRAMES=0` forces that
 * fallback, as in core.
 *
 * `observe` runs synchronously on the fiber and must not throw.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"

/** The fiber's success continuation key (`contA` in `effect/internal/core`). */
const successCont = "~effect/Effect/successCont"
/** The fiber's failure continuation key (`contE` in `effect/internal/core`). */
const failureCont = "~effect/Effect/failureCont"
/** The key of the hook a fiber calls on every frame it pops (`contAll` in `effect/internal/core`). */
const ensureCont = "~effect/Effect/ensureCont"

/** What the observer reads of the fiber that pops it. */
interface FiberState {
  readonly interruptible: boolean
  readonly _interruptedCause: Cause.Cause<never> | undefined
}

/** Goes on with the fiber's interruption: what the fiber runs after an observer saw it. */
const interrupted = (_: unknown, fiber: FiberState): Exit.Exit<never> =>
  Exit.failCause(fiber._interruptedCause ?? Cause.interrupt())

/** A continuation that watches an effect's end and passes its outcome on unchanged. */
export abstract class Observer {
  /** Called once when the watched effect ends, on the fiber that ran it. */
  abstract observe(): void
  [successCont](value: unknown, _fiber: unknown, exit?: unknown): unknown {
    this.observe()
    return exit ?? Exit.succeed(value)
  }
  [failureCont](cause: Cause.Cause<unknown>, _fiber: unknown, exit?: unknown): unknown {
    this.observe()
    return exit ?? Exit.failCause(cause)
  }
  [ensureCont](fiber: FiberState): typeof interrupted | undefined {
    if (fiber._interruptedCause === undefined || !fiber.interruptible) return undefined
    this.observe()
    return interrupted
  }
}

const stackOf = (fiber: object): Array<unknown> | undefined =>
  "_stack" in fiber && Array.isArray(fiber._stack) ? fiber._stack : undefined

/**
 * Pushes `observer` onto the fiber's stack, to observe the end of the effect
 * the caller returns next from `withFiber` (with that fiber). Only call when
 * {@link active}; false when the fiber has no stack (nothing pushed).
 */
export const push = (fiber: Fiber.Fiber<unknown, unknown>, observer: Observer): boolean => {
  const stack = stackOf(fiber)
  if (stack === undefined) return false
  stack.push(observer)
  return true
}

/**
 * Whether pushed observers work on this Effect: each of a success, a typed
 * failure, a defect, an interruption while suspended and one while running
 * is observed exactly once and its outcome passed on (checked once, at load).
 */
const probe = (): boolean => {
  let seen = 0
  class Count extends Observer {
    observe() {
      seen++
    }
  }
  const count = new Count()
  const watched = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E | string> =>
    Effect.withFiber<A, E | string>((fiber) => (push(fiber, count) ? self : Effect.fail("no stack")))
  const once = (check: () => boolean): boolean => {
    seen = 0
    return check() && seen === 1
  }
  try {
    const succeeded = once(() => {
      const exit = Effect.runSyncExit(Effect.map(watched(Effect.sync(() => 1)), (n) => n + 1))
      return exit._tag === "Success" && exit.value === 2
    })
    const failed = once(() => {
      const exit = Effect.runSyncExit(Effect.flip(watched(Effect.fail("boom"))))
      return exit._tag === "Success" && exit.value === "boom"
    })
    const died = once(() => {
      const exit = Effect.runSyncExit(
        watched(
          Effect.sync(() => {
            throw new Error("defect")
          })
        )
      )
      return exit._tag === "Failure" && exit.cause.reasons.some((reason) => reason._tag === "Die")
    })
    const suspended = once(() => {
      const fiber = Effect.runFork(watched(Effect.never))
      fiber.interruptUnsafe()
      const exit = fiber.pollUnsafe()
      return exit !== undefined && exit._tag === "Failure" && exit.cause.reasons.some((r) => r._tag === "Interrupt")
    })
    const running = once(() => {
      const exit = Effect.runSyncExit(
        Effect.withFiber((fiber) =>
          watched(
            Effect.andThen(
              Effect.sync(() => fiber.interruptUnsafe()),
              Effect.succeed(1)
            )
          )
        )
      )
      return exit._tag === "Failure" && exit.cause.reasons.some((r) => r._tag === "Interrupt")
    })
    return succeeded && failed && died && suspended && running
  } catch {
    return false
  }
}

const optedOut = typeof process !== "undefined" && process.env.EFFECT_RESILIENCE_FRAMES === "0"

/** Whether pushed observers work on this Effect (checked once, at load). */
export const supported: boolean = probe()

let enabled = supported && !optedOut

/** Whether callers push observers now (otherwise they take their public-API path). */
export const active = (): boolean => enabled

/** Turns observers off (the fallback) or back on, for tests of the fallback; returns the previous setting. */
export const setEnabled = (on: boolean): boolean => {
  const previous = enabled
  enabled = on && supported
  return previous
}
