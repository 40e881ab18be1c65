/**
 * The decisions of a bulkhead over a remote store (`internal/bulkheadRemote.ts`)
 * as plain functions: when a waiter asks the store again, and where a waiter
 * stands in its process's line.
 *
 * A remote store cannot wake a waiter when a permit frees in another process,
 * so the head of each key's line in this process polls: capped exponential
 * backoff with equal jitter (`internal/backoff.ts`: the n-th poll waits
 * `temp / 2 + random_between(0, temp / 2)` with `temp = min(cap, base * 2 ** (n - 1))`),
 * never past the waiter's deadline. Equal jitter keeps every wait at least half
 * of `temp`, so waiters of many processes do not poll in step, and none polls
 * faster than `base / 2`.
 *
 * No function here reads a clock or draws a random number: both are arguments.
 *
 * @internal
 */
import * as backoff from "./backoff.ts"

/** The polling schedule, in milliseconds: `baseMillis > 0`, `capMillis >= baseMillis`. */
export interface PollConfig {
  readonly baseMillis: number
  readonly capMillis: number
}

const backoffConfig = (config: PollConfig): backoff.Config => ({
  kind: "exponential",
  baseMillis: config.baseMillis,
  capMillis: config.capMillis,
  factor: 2,
  jitter: "equal"
})

/**
 * The wait before poll number `poll` (1 = the first poll after the one that
 * found the permits taken), for `random` in [0, 1), cut to `remainingMillis`
 * (the time left before the waiter's deadline; never negative). Within
 * `pollBounds`.
 */
export const pollDelay = (config: PollConfig, poll: number, random: number, remainingMillis: number): number =>
  Math.max(
    0,
    Math.min(Number.isNaN(remainingMillis) ? 0 : remainingMillis, backoff.delay(backoffConfig(config), poll, 0, random))
  )

/**
 * The bounds `[min, max]` of `pollDelay` for this poll, before the cut to the
 * time left: `[temp / 2, temp]` with `temp = min(cap, base * 2 ** (poll - 1))`.
 */
export const pollBounds = (config: PollConfig, poll: number): readonly [number, number] =>
  backoff.bounds(backoffConfig(config), poll, 0)

/** A waiter in a process's line for one key: higher `priority` first, then lower `seq` (arrival order). */
export interface Place {
  readonly priority: number
  readonly seq: number
}

/** Whether `a` is served before `b`. */
export const before = (a: Place, b: Place): boolean =>
  a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq)

/**
 * Where `w` goes in `line` (kept in serving order): after every waiter served
 * before it. `line` is not changed.
 */
export const placeOf = (line: ReadonlyArray<Place>, w: Place): number => {
  let lo = 0
  let hi = line.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const at = line[mid]
    if (at !== undefined && before(at, w)) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * Whether an arrival of `priority` may ask the store at once: nobody waits in
 * this process for its key, or it outranks every waiter (as in memory, where
 * an arrival of a priority higher than every waiter's goes first).
 */
export const mayGoFirst = (line: ReadonlyArray<Place>, priority: number): boolean => {
  const head = line[0]
  return head === undefined || priority > head.priority
}
