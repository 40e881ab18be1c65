/**
 * Time on the fiber's `Clock`, outside any fiber and at the live clock's
 * cheapest: whether a clock is Effect's live clock, a monotonic reading
 * (`performance.now` on the live clock, the clock's own milliseconds under a
 * `TestClock`), and a one-shot timer — the shared process-wide timer heap on
 * the live clock (a heap insert instead of a fiber and a `setTimeout`), the
 * clock's own `sleep` in a fiber of its own otherwise (a `TestClock` moves it
 * with `adjust`).
 *
 * Used where a combinator waits for "the call, or a time limit" inside one
 * `Effect.callback` (Timeout, Hedge), for the waiting lines' `maxWait`
 * (Bulkhead, ResourcePool) and to time calls (CircuitBreaker, Bulkhead).
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Now from "./now.ts"
import * as timerHeap from "./timerHeap.ts"

const liveClockConstructor: unknown = Effect.runSync(Clock.clockWith((clock) => Effect.succeed(clock.constructor)))

/** Whether `clock` is Effect's live clock (real time, the shared heap serves it). */
export const isLive = (clock: Clock.Clock): boolean => clock.constructor === liveClockConstructor

/** Monotonic milliseconds: `performance.now` on the live clock, the clock's own milliseconds otherwise. */
export const monotonicMillis = (clock: Clock.Clock): number =>
  clock.constructor === liveClockConstructor ? Now.monotonicMillis() : clock.currentTimeMillisUnsafe()

/**
 * Calls `fire` once `millis` have passed on `clock` (at once for a negative
 * one, never for an infinite one); returns the cancel function (idempotent;
 * after the fire it does nothing). `context` is the caller's: a non-live
 * clock's sleep runs with it.
 */
export const schedule = <R>(
  context: Context.Context<R>,
  clock: Clock.Clock,
  millis: number,
  fire: () => void
): (() => void) => {
  if (millis === Number.POSITIVE_INFINITY) return noCancel
  const delay = Math.max(0, millis)
  if (clock.constructor === liveClockConstructor) {
    const entry = timerHeap.schedule(Now.monotonicMillis() + delay, fire)
    return () => timerHeap.cancel(entry)
  }
  const sleeper = Effect.runForkWith(context)(clock.sleep(Duration.millis(delay)))
  sleeper.addObserver((exit) => {
    if (Exit.isSuccess(exit)) fire()
  })
  return () => sleeper.interruptUnsafe()
}

const noCancel = (): void => {}
