/**
 * The registry: what looking a policy up by name at call time costs over
 * applying the same `Policy` directly. Both wrap a call that succeeds in an
 * attempt timeout and a closed breaker; the registry adds the lookup and the
 * in-flight count that lets a reload release the breaker only once its calls
 * have finished.
 */
import { Policy, Registry } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const ours = "effect-resilience"

const scope = Effect.runSync(Scope.make())
const registry = Effect.runSync(
  Registry.make({
    policies: {
      bench: { circuitBreaker: { consecutiveFailures: 1_000_000 }, attemptTimeout: "1 second" }
    }
  }).pipe(Scope.provide(scope))
)
const policy = Effect.runSync(registry.get("bench"))

export const registrySuite: Suite = {
  id: "registry-apply",
  title: "Registry: a policy looked up by name at call time vs the same Policy applied directly",
  description:
    "`Effect.sync(() => i)` through a policy of a closed circuit breaker (consecutive-failures policy) and an " +
    "attempt timeout (1 s). `Policy.apply` applies the policy the registry built; `registry.apply` looks it up by " +
    "name on every call and counts the call in flight on the breaker.",
  iterations: 200_000,
  baseline: "Policy.apply",
  contenders: [
    { name: "Policy.apply", library: ours, run: effectLoop((i) => Effect.sync(() => i).pipe(Policy.apply(policy))) },
    {
      name: "registry.apply (lookup at call time)",
      library: ours,
      run: effectLoop((i) => Effect.sync(() => i).pipe(registry.apply("bench")))
    }
  ]
}
