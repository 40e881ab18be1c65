/**
 * Client-side adaptive throttling: what the throttle adds to a call it
 * admits (the common case: a healthy backend, probability 0, no coin drawn),
 * and what a call it rejects locally costs.
 *
 * No peer library has adaptive throttling (cockatiel and opossum have
 * breakers only), so the reference rows are this library's own per-call
 * guards around the same effect: a closed `CircuitBreaker.protect` and a
 * `RateLimiter.limit` far from its limit. Every instance is built once, at
 * module load.
 */
import { AdaptiveThrottle, CircuitBreaker, RateLimiter } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"

// Every instance lives in one scope that stays open for the process.
const scope = Effect.runSync(Scope.make())

const makeThrottle = (input: AdaptiveThrottle.Input): AdaptiveThrottle.AdaptiveThrottle =>
  Effect.runSync(AdaptiveThrottle.make(input).pipe(Scope.provide(scope)))

const check = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`adaptive-throttle bench setup: ${message}`)
}

// ---------------------------------------------------------------------------
// admitted: a backend that accepts everything
// ---------------------------------------------------------------------------

const throttle = makeThrottle({ name: "bench" })
const keyed = makeThrottle({ name: "bench-keyed" })
const breaker = Effect.runSync(
  CircuitBreaker.make({ consecutiveFailures: 1_000_000 }).pipe(
    Scope.provide(scope),
    Effect.provide(CircuitBreaker.layerStoreMemory())
  )
)
const limiter = Effect.runSync(
  RateLimiter.make({ limits: [{ algorithm: "fixed-window", limit: 1_000_000_000, window: "1 hour" }] }).pipe(
    Scope.provide(scope),
    Effect.provide(RateLimiter.layerStoreMemory())
  )
)

export const adaptiveThrottleAdmitted: Suite = {
  id: "adaptive-throttle-admitted",
  title: "Adaptive throttle: admitted call",
  description:
    "A throttle around an effect that succeeds, one call after another in one fiber: the backend accepts every " +
    "call, so the probability stays 0, no random number is drawn and no clock is read to admit a call; the call " +
    "is counted when it ends, in the bucket of the live clock read once per bucket. The baseline is `Effect.sync(() => i)` " +
    "alone; the rows below wrap that same effect. effect-resilience runs `AdaptiveThrottle.throttle(effect, " +
    "throttle)` (the throttle's own window) and with `{ key }` (a window per key). No peer library has adaptive " +
    "throttling; the reference rows are this library's closed `CircuitBreaker.protect` (consecutive-failures " +
    "policy, memory store, `{ key }`) and `RateLimiter.limit` (fixed window, far from its limit, `{ key }`) around " +
    "the same effect.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience AdaptiveThrottle.throttle",
      library: ours,
      run: effectLoop((i) =>
        AdaptiveThrottle.throttle(
          Effect.sync(() => i),
          throttle
        )
      ),
      setup: () => {
        check(Effect.runSync(throttle.state()).probability === 0, "the throttle rejects")
      }
    },
    {
      name: "effect-resilience AdaptiveThrottle.throttle { key }",
      library: ours,
      run: effectLoop((i) =>
        AdaptiveThrottle.throttle(
          Effect.sync(() => i),
          keyed,
          { key: "backend" }
        )
      )
    },
    {
      name: "effect-resilience CircuitBreaker.protect { key } (reference)",
      library: ours,
      run: effectLoop((i) =>
        CircuitBreaker.protect(
          Effect.sync(() => i),
          breaker,
          { key: "backend" }
        )
      )
    },
    {
      name: "effect-resilience RateLimiter.limit { key } (reference)",
      library: ours,
      run: effectLoop((i) =>
        RateLimiter.limit(
          Effect.sync(() => i),
          limiter,
          { key: "backend" }
        )
      )
    }
  ]
}

// ---------------------------------------------------------------------------
// throttled: a backend that refused everything
// ---------------------------------------------------------------------------

const refusing = makeThrottle({ name: "bench-refusing", window: "1 hour", maxRejectProbability: 1 })

export const adaptiveThrottleRejected: Suite = {
  id: "adaptive-throttle-rejected",
  title: "Adaptive throttle: call rejected locally",
  description:
    "A throttle whose window (one hour, uncapped) holds only refusals, so the probability is above 0.999 and " +
    "almost every measured call is rejected locally with a typed `AdaptiveThrottleError` (built without a stack " +
    "trace; collected as an `Exit`) after one draw from Effect's `Random`; the few admitted calls succeed. The " +
    "baseline is the bare effect.",
  iterations: 100_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience AdaptiveThrottle.throttle (Throttled)",
      library: ours,
      run: effectLoop((i) =>
        AdaptiveThrottle.throttle(
          Effect.sync(() => i),
          refusing
        )
      ),
      setup: () => {
        Effect.runSync(
          Effect.forEach(Array.from({ length: 2_000 }), () =>
            Effect.exit(AdaptiveThrottle.throttle(Effect.fail("refused"), refusing))
          )
        )
        const state = Effect.runSync(refusing.state())
        check(state.probability > 0.999, `the probability is only ${state.probability}`)
      }
    }
  ]
}

/** The suites, in the order docs/benchmarks.md lists them. */
export const adaptiveThrottleSuites: ReadonlyArray<Suite> = [adaptiveThrottleAdmitted, adaptiveThrottleRejected]
