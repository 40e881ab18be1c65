/**
 * Retry and timeout on the success path: what a retry policy and an attempt
 * timeout add to a call that succeeds at once, and the two composed.
 *
 * Effect-based contenders are compared with the Effect floor, promise-based
 * ones with the promise floor.
 */
import { Retry, Timeout } from "@effect-resilience/core"
import { ExponentialBackoff, handleAll, retry, TimeoutStrategy, timeout, wrap } from "cockatiel"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { effectLoop, promiseLoop } from "../drivers.ts"
import { packageVersion, type Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"
const cockatiel = `cockatiel ${packageVersion("cockatiel")}`

const policy = Retry.exponential({ base: "50 millis", cap: "2 seconds", jitter: "decorrelated", maxAttempts: 4 })
const effectSchedule = Schedule.exponential("50 millis").pipe(Schedule.jittered)

const asyncOp = async (i: number): Promise<number> => i

export const retrySuccessEffect: Suite = {
  id: "retry-success-effect",
  title: "Retry and timeout: successful call (Effect)",
  description:
    "A call that succeeds at once, through a retry policy (exponential, decorrelated jitter, 4 attempts), an " +
    "attempt timeout of 1 s, and both composed (timeout inside, retry outside). Effect's own `Effect.retry` " +
    "(jittered exponential schedule, 3 retries) and `Effect.timeout` run the same call. The baseline is " +
    "`Effect.sync(() => i)` alone.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience Retry.retry",
      library: ours,
      run: effectLoop((i) =>
        Retry.retry(
          Effect.sync(() => i),
          policy
        )
      )
    },
    {
      name: "Effect.retry (schedule, times: 3)",
      library: effect,
      run: effectLoop((i) =>
        Effect.retry(
          Effect.sync(() => i),
          { schedule: effectSchedule, times: 3 }
        )
      )
    },
    {
      name: "effect-resilience Timeout.attempt",
      library: ours,
      run: effectLoop((i) =>
        Timeout.attempt(
          Effect.sync(() => i),
          "1 second"
        )
      )
    },
    {
      name: "Effect.timeout",
      library: effect,
      run: effectLoop((i) =>
        Effect.timeout(
          Effect.sync(() => i),
          "1 second"
        )
      )
    },
    {
      name: "effect-resilience Timeout.attempt + Retry.retry",
      library: ours,
      run: effectLoop((i) =>
        Retry.retry(
          Timeout.attempt(
            Effect.sync(() => i),
            "1 second"
          ),
          policy
        )
      )
    },
    {
      name: "Effect.timeout + Effect.retry",
      library: effect,
      run: effectLoop((i) =>
        Effect.retry(
          Effect.timeout(
            Effect.sync(() => i),
            "1 second"
          ),
          { schedule: effectSchedule, times: 3 }
        )
      )
    }
  ]
}

const cockatielRetry = retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() })
const cockatielTimeout = timeout(1_000, TimeoutStrategy.Aggressive)
const cockatielBoth = wrap(cockatielRetry, cockatielTimeout)

export const retrySuccessPromise: Suite = {
  id: "retry-success-promise",
  title: "Retry and timeout: successful call (promise)",
  description:
    "cockatiel's `retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() })`, its aggressive " +
    "`timeout(1000)`, and both wrapped (`wrap(retry, timeout)`), around an `async` function that resolves. The " +
    "baseline awaits the function alone.",
  iterations: 200_000,
  baseline: "await async fn (bare)",
  contenders: [
    { name: "await async fn (bare)", library: "javascript", run: promiseLoop(asyncOp) },
    { name: "cockatiel retry", library: cockatiel, run: promiseLoop((i) => cockatielRetry.execute(() => asyncOp(i))) },
    {
      name: "cockatiel timeout",
      library: cockatiel,
      run: promiseLoop((i) => cockatielTimeout.execute(() => asyncOp(i)))
    },
    {
      name: "cockatiel retry + timeout",
      library: cockatiel,
      run: promiseLoop((i) => cockatielBoth.execute(() => asyncOp(i)))
    }
  ]
}

export const retrySuites: ReadonlyArray<Suite> = [retrySuccessEffect, retrySuccessPromise]
