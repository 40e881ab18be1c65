/**
 * Continuation frames: the cheapest way to run code when an effect ends.
 *
 * Effect 4's fiber keeps its continuations on a stack. Every combinator that
 * observes an exit (`onExit`, `matchCauseEffect`) allocates a primitive that
 * pushes itself there and costs a run-loop step; `onExit` adds another to
 * make its finalizer uninterruptible. Effect's own HTTP server
 * (`effect/http/HttpEffect`) skips all of that for its per-request frame: in
 * `withFiber` it pushes an object with the success and failure continuations
 * onto the fiber's stack and returns the effect to run. The fiber calls the
 * frame when the effect succeeds, fails, dies or is interrupted, exactly as
 * it calls `onExit`'s.
 *
 * The patterns' hot paths (a closed breaker, a retry whose first attempt
 * succeeds) do the same through `within`: about 40 ns less per call than
 * `onExitPrimitive`, and no allocation at all when the frame is shared.
 *
 * The continuation keys belong to Effect's internal protocol, so the module
 * checks at load that a pushed frame is called (on success and on failure)
 * and otherwise falls back to `matchCauseEffect`, the public equivalent:
 * slower, never wrong. `EFFECT_RESILIENCE_FRAMES=0` forces the fallback.
 *
 * A frame's handlers run synchronously when the effect ends and must not
 * throw (a throw becomes a defect of the call, as in `onExit`).
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"

/** The fiber's success continuation key (`contA` in `effect/internal/core`). */
const successCont = "~effect/Effect/successCont"
/** The fiber's failure continuation key (`contE` in `effect/internal/core`). */
const failureCont = "~effect/Effect/failureCont"
/** The key naming a primitive (`identifier` in `effect/internal/core`): marks a frame as a handler. */
const identifier = "~effect/Effect/identifier"
/** The key of the hook a fiber calls on every frame it pops (`contAll` in `effect/internal/core`). */
const ensureCont = "~effect/Effect/ensureCont"

/** What a frame reads of the fiber that pops it. */
interface FiberState extends Fiber.Fiber<unknown, unknown> {
  readonly interruptible: boolean
  readonly _interruptedCause: Cause.Cause<never> | undefined
}

/**
 * A continuation: given how the effect ended, the effect the fiber goes on
 * with (usually the exit itself, after recording it).
 */
export abstract class Frame<A, E, E2 = E, R2 = never> {
  // A handler, like `matchCauseEffect`'s: an interruption that skips it drops
  // the typed failures from the cause, as Effect does for its own handlers.
  get [identifier](): string {
    return "Frame"
  }
  /** The effect succeeded with `value` (`exit` is its exit when the fiber has one). */
  abstract onSuccess(
    value: A,
    fiber: Fiber.Fiber<unknown, unknown>,
    exit: Exit.Exit<A, E> | undefined
  ): Effect.Effect<A, E | E2, R2>
  /** The effect failed, died or was interrupted with `cause`. */
  abstract onFailure(
    cause: Cause.Cause<E>,
    fiber: Fiber.Fiber<unknown, unknown>,
    exit: Exit.Exit<A, E> | undefined
  ): Effect.Effect<A, E | E2, R2>
  [successCont](value: A, fiber: Fiber.Fiber<unknown, unknown>, exit?: Exit.Exit<A, E>): Effect.Effect<A, E | E2, R2> {
    return this.onSuccess(value, fiber, exit)
  }
  [failureCont](
    cause: Cause.Cause<E>,
    fiber: Fiber.Fiber<unknown, unknown>,
    exit?: Exit.Exit<A, E>
  ): Effect.Effect<A, E | E2, R2> {
    return this.onFailure(cause, fiber, exit)
  }
}

/** The exit to continue with after a success, reusing the fiber's when it has one. */
export const succeeded = <A, E>(value: A, exit: Exit.Exit<A, E> | undefined): Exit.Exit<A, E> =>
  exit ?? Exit.succeed(value)

/** The exit to continue with after a failure, reusing the fiber's when it has one. */
export const failed = <A, E>(cause: Cause.Cause<E>, exit: Exit.Exit<A, E> | undefined): Exit.Exit<A, E> =>
  exit ?? Exit.failCause(cause)

/**
 * A frame that only watches: it sees the exit and passes it on unchanged, so
 * one instance can watch effects of any type (a breaker's closed-state frame
 * is shared by every call of a circuit generation).
 */
export abstract class Observer<A = unknown, E = unknown> {
  /** Called once with the effect's exit, on the fiber that ran it. */
  abstract observe(exit: Exit.Exit<A, E>, fiber: Fiber.Fiber<unknown, unknown>): void
  // the fiber continues with the exit it is handed back
  [successCont](value: A, fiber: Fiber.Fiber<unknown, unknown>, exit?: Exit.Exit<A, E>): unknown {
    const done = exit ?? Exit.succeed(value)
    this.observe(done, fiber)
    return done
  }
  [failureCont](cause: Cause.Cause<E>, fiber: Fiber.Fiber<unknown, unknown>, exit?: Exit.Exit<A, E>): unknown {
    const done = exit ?? Exit.failCause(cause)
    this.observe(done, fiber)
    return done
  }
  // An interruption unwinds an interruptible fiber's stack without calling
  // the continuations, but calls this hook on every frame it pops: the frame
  // sees the interruption here. (`onExit` instead makes the fiber
  // uninterruptible so that its continuation runs; a watcher has no need to.)
  [ensureCont](fiber: FiberState): undefined {
    const interrupted = fiber._interruptedCause
    if (interrupted !== undefined && fiber.interruptible) this.observe(Exit.failCause(interrupted), fiber)
    return undefined
  }
}

const stackOf = (fiber: object): Array<unknown> | undefined =>
  "_stack" in fiber && Array.isArray(fiber._stack) ? fiber._stack : undefined

/**
 * Runs `self` with `frame` as its continuation. Call inside `withFiber`, with
 * that fiber, and return the result.
 */
export const within = <A, E, R, E2, R2>(
  fiber: Fiber.Fiber<unknown, unknown>,
  self: Effect.Effect<A, E, R>,
  frame: Frame<A, E, E2, R2>
): Effect.Effect<A, E | E2, R | R2> => {
  if (enabled) {
    const stack = stackOf(fiber)
    if (stack !== undefined) {
      stack.push(frame)
      return self
    }
  }
  return Effect.matchCauseEffect(self, {
    onSuccess: (value) => frame.onSuccess(value, fiber, undefined),
    onFailure: (cause) => frame.onFailure(cause, fiber, undefined)
  })
}

/**
 * Runs `self` with `observer` watching its exit. Call inside `withFiber`,
 * with that fiber, and return the result. The fallback is `onExitPrimitive`.
 */
export const observed = <A, E, R>(
  fiber: Fiber.Fiber<unknown, unknown>,
  self: Effect.Effect<A, E, R>,
  observer: Observer<A, E>
): Effect.Effect<A, E, R> => {
  if (enabled) {
    const stack = stackOf(fiber)
    if (stack !== undefined) {
      stack.push(observer)
      return self
    }
  }
  return Effect.onExitPrimitive(self, (exit) => {
    observer.observe(exit, fiber)
    return undefined
  })
}

/**
 * Whether pushed frames work on this Effect: a frame is called on success and
 * on failure, and an observer sees an interruption (checked once, at load).
 */
const probe = (): boolean => {
  const push = (frame: object) => (fiber: Fiber.Fiber<unknown, unknown>) => {
    const stack = stackOf(fiber)
    if (stack === undefined) return false
    stack.push(frame)
    return true
  }
  let calls = 0
  class Probe extends Frame<number, string> {
    onSuccess(value: number) {
      calls++
      return Exit.succeed(value + 1)
    }
    onFailure(cause: Cause.Cause<string>) {
      calls++
      return Exit.failCause(cause)
    }
  }
  const seen: Array<Exit.Exit<unknown, unknown>> = []
  class Watch extends Observer {
    observe(exit: Exit.Exit<unknown, unknown>) {
      seen.push(exit)
    }
  }
  const run = (self: Effect.Effect<number, string>, frame: object) =>
    Effect.runSyncExit(Effect.withFiber((fiber) => (push(frame)(fiber) ? self : Effect.fail("no stack"))))
  try {
    const success = run(
      Effect.sync(() => 1),
      new Probe()
    )
    const failure = run(Effect.fail("boom"), new Probe())
    const watched = run(
      Effect.sync(() => 1),
      new Watch()
    )
    const suspended = Effect.runFork(
      Effect.withFiber((fiber) => (push(new Watch())(fiber) ? Effect.never : Effect.fail("no stack")))
    )
    suspended.interruptUnsafe()
    const interrupted = suspended.pollUnsafe()
    return (
      calls === 2 &&
      Exit.isSuccess(success) &&
      success.value === 2 &&
      Exit.isFailure(failure) &&
      failure.cause.reasons[0]?._tag === "Fail" &&
      Exit.isSuccess(watched) &&
      watched.value === 1 &&
      seen.length === 2 &&
      Exit.isSuccess(seen[0] ?? Exit.void) &&
      interrupted !== undefined &&
      Exit.hasInterrupts(interrupted) &&
      Exit.hasInterrupts(seen[1] ?? Exit.void)
    )
  } catch {
    return false
  }
}

const optedOut = typeof process !== "undefined" && process.env.EFFECT_RESILIENCE_FRAMES === "0"

/** Whether `within` pushes frames (true on every Effect 4 release with this protocol). */
export const supported: boolean = probe()

let enabled = supported && !optedOut

/** Whether `within` and `observed` push frames now. */
export const active = (): boolean => enabled

/**
 * Turns frames off (the `matchCauseEffect` fallback) or back on, for tests of
 * the fallback; returns the previous setting.
 */
export const setEnabled = (on: boolean): boolean => {
  const previous = enabled
  enabled = on && supported
  return previous
}
