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
/** The same policy, timed (`maxElapsed`) and budgeted: the first attempt reads the clock and records a request. */
const budgeted = Retry.exponential({
  base: "50 millis",
  cap: "2 seconds",
  jitter: "decorrelated",
  maxAttempts: 4,
  maxElapsed: "10 seconds",
  budgetRatio: 0.1
})

const asyncOp = async (i: number): Promise<number> => i

export const retrySuccessEffect: Suite = {
  id: "retry-success-effect",
  title: "Retry and timeout: successful call (Effect)",
  description:
    "A call that succeeds at once, through a retry policy (exponential, decorrelated jitter, 4 attempts), the " +
    "same policy with `maxElapsed` and a retry budget (its first attempt reads the clock and records a request), " +
    "an attempt timeout of 1 s, and both composed (timeout inside, retry outside). Effect's own `Effect.retry` " +
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
      name: "effect-resilience Retry.retry, maxElapsed + budget",
      library: ours,
      run: effectLoop((i) =>
        Retry.retry(
          Effect.sync(() => i),
          budgeted
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

/** A call that completes on a later microtask: the timeout's timer is armed and cancelled on every call. */
const asyncCall = (i: number) => Effect.promise(() => asyncOp(i))

export const timeoutAsync: Suite = {
  id: "timeout-async",
  title: "Timeout: a call that suspends (Effect)",
  description:
    "An attempt timeout of 1 s around `Effect.promise` of an `async` function that resolves, so the call " +
    "suspends and every timeout arms a timer and cancels it: effect-resilience's `Timeout.attempt` (one shared " +
    "timer for every pending timeout), Effect's `Effect.timeout`, and each inside a retry policy. The baseline " +
    "is the `Effect.promise` call alone. (cockatiel's `timeout` around a resolving promise is in the promise " +
    "suite above.)",
  iterations: 100_000,
  baseline: "Effect.promise (bare)",
  contenders: [
    { name: "Effect.promise (bare)", library: effect, run: effectLoop(asyncCall) },
    {
      name: "effect-resilience Timeout.attempt",
      library: ours,
      run: effectLoop((i) => Timeout.attempt(asyncCall(i), "1 second"))
    },
    { name: "Effect.timeout", library: effect, run: effectLoop((i) => Effect.timeout(asyncCall(i), "1 second")) },
    {
      name: "effect-resilience Timeout.attempt + Retry.retry",
      library: ours,
      run: effectLoop((i) => Retry.retry(Timeout.attempt(asyncCall(i), "1 second"), policy))
    },
    {
      name: "Effect.timeout + Effect.retry",
      library: effect,
      run: effectLoop((i) =>
        Effect.retry(Effect.timeout(asyncCall(i), "1 second"), { schedule: effectSchedule, times: 3 })
      )
    }
  ]
}

export const retrySuites: ReadonlyArray<Suite> = [retrySuccessEffect, retrySuccessPromise, timeoutAsync]
