/**
 * The adaptive throttle's time on the live clock, read once per bucket of
 * its window instead of once per call.
 *
 * The window only needs to know which bucket a call falls in (buckets are
 * 10 seconds wide by default), and a clock read costs about 40 ns here, as
 * much as the rest of an admitted call's bookkeeping. So the first read in a
 * bucket is kept, with a timer set for the bucket's end: until it fires,
 * every caller gets that reading, which is in the same bucket as the real
 * time. When the timer fires the next caller reads the clock again (and sets
 * the next timer), so an idle throttle holds no timer at all and a busy one
 * one per bucket.
 *
 * The only error is the timer's lateness (an event loop busy past a bucket's
 * end): a call ending in that lag counts in the bucket before, as if the
 * clock read late by that much. The reading itself is the time of the first
 * call of the bucket; the window reads every time as "at least the latest
 * seen", so an earlier reading never moves a count backwards.
 *
 * Only for Effect's live clock: with any other `Clock` (a `TestClock`) the
 * throttle reads the fiber's clock on every call.
 *
 * @internal
 */
import * as engine from "./adaptiveThrottle.ts"

/** A time source read at most once per bucket. */
export interface Tick {
  /** The time now, in milliseconds, as far as the window's buckets can tell. */
  readonly read: () => number
  /** Cancels the pending timer: `read` then reads the clock again. */
  readonly close: () => void
}

/** Sets a one-shot timer; returns its cancel function. */
export type Schedule = (millis: number, fire: () => void) => () => void

/**
 * A timer that does not keep the process alive (`unref` where the platform
 * has it): a throttle's bucket boundary is no reason to keep running.
 */
export const unrefTimer: Schedule = (millis, fire) => {
  const handle = setTimeout(fire, millis)
  if (typeof handle === "object" && handle !== null && "unref" in handle) handle.unref()
  return () => clearTimeout(handle)
}

/**
 * The longest timer set: `setTimeout` fires at once beyond 2^31 - 1 ms. A
 * longer bucket is waited for in several timers (each expiry reads the
 * clock again and sets the next one).
 */
export const maxTimerMillis = 2 ** 31 - 1

/** A tick over `now` (`Date.now` for the live clock) with timers from `schedule`. */
export const make = (config: engine.Config, now: () => number, schedule: Schedule = unrefTimer): Tick => {
  let reading = 0
  let valid = false
  let cancel: (() => void) | undefined
  const expire = () => {
    valid = false
    cancel = undefined
  }
  const read = (): number => {
    if (valid) return reading
    const t = now()
    const end = engine.epochEnd(t, config)
    if (end > t) {
      reading = t
      valid = true
      cancel = schedule(Math.min(end - t, maxTimerMillis), expire)
    }
    return t
  }
  const close = () => {
    cancel?.()
    expire()
  }
  return { read, close }
}
