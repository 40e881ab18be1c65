/**
 * Policies: what `Policy.apply` costs over piping the same combinators by
 * hand, in the same order, around a call that succeeds. Instances are built
 * once, at module load, with thresholds the runs never reach.
 */
import { CircuitBreaker, Policy, Retry, Timeout } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const ours = "effect-resilience"

const scope = Effect.runSync(Scope.make())
const breaker = Effect.runSync(
  CircuitBreaker.make({ name: "policy-bench", consecutiveFailures: 1_000_000 }).pipe(
    Scope.provide(scope),
    Effect.provide(CircuitBreaker.layerStoreMemory())
  )
)
const retry = Retry.exponential({ base: "10 millis", maxAttempts: 3 })
const policy = Effect.runSync(
  Policy.make({ name: "bench", retry, circuitBreaker: breaker, attemptTimeout: "1 second" })
)

export const policySuite: Suite = {
  id: "policy-success",
  title: "Policy: successful call through retry, breaker and attempt timeout",
  description:
    "`Effect.sync(() => i)` wrapped in an attempt timeout (1 s), a closed circuit breaker (consecutive-failures " +
    "policy) and a retry (exponential, 3 attempts), outermost last. The baseline is the bare call; " +
    '"by hand" pipes `Timeout.attempt`, `CircuitBreaker.protect` and `Retry.retry` in that order; `Policy.apply` ' +
    "applies a policy made of the same three parts, which it nests in the same order.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: "effect", run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "by hand: attempt timeout, breaker, retry",
      library: ours,
      run: effectLoop((i) =>
        Effect.sync(() => i).pipe(Timeout.attempt("1 second"), CircuitBreaker.protect(breaker), Retry.retry(retry))
      )
    },
    {
      name: "Policy.apply (the same three parts)",
      library: ours,
      run: effectLoop((i) => Effect.sync(() => i).pipe(Policy.apply(policy)))
    }
  ]
}
