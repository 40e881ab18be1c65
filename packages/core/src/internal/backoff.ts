/**
 * Retry delays: plain functions over plain data.
 *
 * No Effect, no clock reads, no randomness: the retry number, the previous
 * delay and a random number in [0, 1) are arguments. The public Retry module
 * draws the random number from `Random` and passes it in, so a test can pin
 * every delay.
 *
 * The jitter modes are the ones of the AWS Architecture Blog post
 * "Exponential Backoff And Jitter" (Marc Brooker, 2015), with
 * `temp = min(cap, rawDelay(config, retry))`:
 *
 * - `none`: `temp`;
 * - `full`: `random_between(0, temp)`;
 * - `equal`: `temp / 2 + random_between(0, temp / 2)`;
 * - `decorrelated`: `min(cap, random_between(base, previous * 3))`, where
 *   `previous` is the delay returned for the previous retry (`base` before the
 *   first); it ignores `kind`.
 *
 * The post counts attempts from 0 (`base * 2 ** attempt`); here retries count
 * from 1 and the first retry waits `base`, so `exponential` is
 * `base * factor ** (retry - 1)`.
 *
 * Every function is total: out-of-range arguments are read as the nearest
 * valid value (see each function), the result is never `NaN`, and it is
 * `Infinity` only when `capMillis` is.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------

/** How the un-jittered delay grows with the retry number. */
export type Kind = "exponential" | "linear" | "constant" | "fibonacci"

/** How the delay is randomized (see the module comment for the formulas). */
export type Jitter = "none" | "full" | "equal" | "decorrelated"

/** Normalized configuration: every duration in milliseconds. */
export interface Config {
  readonly kind: Kind
  /** The first retry's un-jittered delay: > 0, except that `constant` may be 0. */
  readonly baseMillis: number
  /** No delay is longer than this; `>= baseMillis`, and `Infinity` for no cap. */
  readonly capMillis: number
  /** The `exponential` multiplier, `>= 1` (AWS uses 2); the other kinds ignore it. */
  readonly factor: number
  readonly jitter: Jitter
}

// ---------------------------------------------------------------------------
// reading arguments
// ---------------------------------------------------------------------------

/** `x`, with a negative or `NaN` one read as 0. */
const nonNegative = (x: number): number => (Number.isNaN(x) ? 0 : Math.max(0, x))

/** `baseMillis`, with a negative or `NaN` one read as 0. */
const baseOf = (config: Config): number => nonNegative(config.baseMillis)

/** `capMillis`, with a negative or `NaN` one read as 0. */
const capOf = (config: Config): number => nonNegative(config.capMillis)

/** The retry number as an integer >= 1: below 1 (and `NaN`) is 1, a fraction is floored; `Infinity` stays. */
const retryOf = (retry: number): number => (retry >= 1 ? Math.floor(retry) : 1)

/** The random number clamped to [0, 1]; `NaN` is 0. */
const randomOf = (random: number): number => Math.min(1, nonNegative(random))

/**
 * `random_between(lo, hi)` for `random` in [0, 1]: `lo + random * (hi - lo)`,
 * clamped to [lo, hi] against rounding, and `lo` when the range is empty
 * (which also keeps `Infinity - Infinity` and `0 * Infinity` out).
 */
const between = (lo: number, hi: number, random: number): number => {
  if (!(hi > lo) || random === 0) return lo
  const x = lo + random * (hi - lo)
  return Math.min(hi, Math.max(lo, x))
}

// ---------------------------------------------------------------------------
// delays
// ---------------------------------------------------------------------------

/** The n-th Fibonacci number (fib(1) = fib(2) = 1), `Infinity` once it overflows (n > 1476). */
const fibonacci = (n: number): number => {
  let previous = 0
  let current = 1
  for (let i = 1; i < n && current < Infinity; i++) {
    const next = previous + current
    previous = current
    current = next
  }
  return current
}

/**
 * The un-jittered, uncapped delay before retry number `retry` (1 = first retry):
 *
 * - `exponential`: `base * factor ** (retry - 1)`;
 * - `linear`: `base * retry`;
 * - `constant`: `base`;
 * - `fibonacci`: `base * fib(retry)`, with fib(1) = fib(2) = 1, fib(3) = 2.
 *
 * So the first retry waits `base` whatever the kind. Never `NaN`: a delay too
 * large for a double is `Infinity` (the jittered `delay` caps it). A retry
 * number below 1 (or `NaN`) is read as 1 and a fraction is floored; a factor
 * below 1 (or `NaN`) is read as 1.
 */
export const rawDelay = (config: Config, retry: number): number => {
  const base = baseOf(config)
  if (base === 0) return 0
  const n = retryOf(retry)
  switch (config.kind) {
    case "constant":
      return base
    case "linear":
      return base * n
    case "exponential":
      // `1 ** Infinity` is NaN, so a factor of 1 is handled apart
      return config.factor > 1 ? base * config.factor ** (n - 1) : base
    case "fibonacci":
      return base * fibonacci(n)
  }
}

/** `temp` in the AWS formulas: the raw delay, capped. */
const capped = (config: Config, retry: number): number => Math.min(capOf(config), rawDelay(config, retry))

/** The decorrelated range's upper end before the cap: `previous * 3`, but never below `base`. */
const decorrelatedHigh = (base: number, previousMillis: number): number =>
  Math.max(base, nonNegative(previousMillis) * 3)

/**
 * The delay before retry `retry`, in milliseconds, for `random` in [0, 1):
 *
 * - `none`: `temp = min(cap, rawDelay(config, retry))`;
 * - `full`: `random_between(0, temp)`;
 * - `equal`: `temp / 2 + random_between(0, temp / 2)`;
 * - `decorrelated`: `min(cap, random_between(base, previous * 3))`, ignoring
 *   `kind` and `retry`.
 *
 * `random_between(lo, hi)` is `lo + random * (hi - lo)`. `previousMillis` is
 * this function's result for the previous retry; pass `baseMillis` before the
 * first. When `previous * 3 < base` (only a previous delay below `base / 3`,
 * which decorrelated never returns itself) the range is empty and the delay is
 * `min(cap, base)`: AWS's Python `random.uniform` would go below `base` there.
 * A negative or `NaN` `previousMillis` is read as 0; `random` is clamped to
 * [0, 1] (`NaN` is 0). The result is always within `bounds`.
 */
export const delay = (config: Config, retry: number, previousMillis: number, random: number): number => {
  const r = randomOf(random)
  switch (config.jitter) {
    case "none":
      return capped(config, retry)
    case "full":
      return between(0, capped(config, retry), r)
    case "equal": {
      const half = capped(config, retry) / 2
      // half + [0, half] rounds to at most 2 * half = temp
      return half + between(0, half, r)
    }
    case "decorrelated": {
      const base = baseOf(config)
      return Math.min(capOf(config), between(base, decorrelatedHigh(base, previousMillis), r))
    }
  }
}

/**
 * The bounds `[min, max]` that `delay` stays within for this retry, with
 * `temp = min(cap, rawDelay(config, retry))`:
 *
 * - `none`: `[temp, temp]`;
 * - `full`: `[0, temp]`;
 * - `equal`: `[temp / 2, temp]`;
 * - `decorrelated`: `[min(cap, base), min(cap, max(base, previous * 3))]`.
 *
 * Both are within `[0, cap]`. Arguments are read as in `delay`.
 */
export const bounds = (config: Config, retry: number, previousMillis: number): readonly [number, number] => {
  switch (config.jitter) {
    case "none": {
      const temp = capped(config, retry)
      return [temp, temp]
    }
    case "full":
      return [0, capped(config, retry)]
    case "equal": {
      const temp = capped(config, retry)
      return [temp / 2, temp]
    }
    case "decorrelated": {
      const base = baseOf(config)
      const cap = capOf(config)
      return [Math.min(cap, base), Math.min(cap, decorrelatedHigh(base, previousMillis))]
    }
  }
}
