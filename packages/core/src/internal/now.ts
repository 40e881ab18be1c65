/**
 * The current fiber's clock, read without a run-loop step.
 *
 * `Clock.clockWith(f)` costs a `withFiber` primitive and the effect `f`
 * returns: two steps. A decision that only needs the time can run in one
 * `Effect.sync` and read the running fiber's clock here instead (the fiber
 * running a `sync` thunk is the current fiber), which is about 20 ns less per
 * call. Outside a fiber (never, for a thunk run by Effect) it is the system
 * clock.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Fiber from "effect/Fiber"

/** Milliseconds since the epoch on the current fiber's `Clock` (a `TestClock` in tests). */
export const currentTimeMillis = (): number => {
  const fiber = Fiber.getCurrent()
  return fiber === undefined ? Date.now() : fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
}

// `performance` is an accessor on Node's global object: reading it costs a
// getter call (about 5 ns) on every read, so the object is read once.
const performanceSource: { now(): number } = globalThis.performance

/**
 * Monotonic milliseconds (`performance.now()`), for durations and timers on
 * the live clock.
 */
export const monotonicMillis = (): number => performanceSource.now()
