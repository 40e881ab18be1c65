/**
 * Policies defined as data and reloaded while they serve. `payments` opens
 * its circuit after two failures; a reload that raises the threshold keeps
 * that circuit open (its state is carried over, not reset by a config
 * change); a reload with a bad value is refused as a whole, naming the
 * field, and the old configuration keeps serving; once the open duration
 * has passed a probe closes the circuit under the new thresholds.
 *
 * In an application the data comes from `Registry.layerConfig` (env vars or
 * a config file, re-read with `reloadEvery`) or a `source` stream. Run it
 * with `node examples/registry/reload.ts` (after `npm run build`); it waits
 * 10 seconds for the open duration. The root test runs it on the
 * `TestClock`.
 */
import { Registry } from "@effect-resilience/core"
import * as Effect from "effect/Effect"

const config = (consecutiveFailures: number, failureRateThreshold = 0.5): Registry.Input => ({
  policies: {
    payments: {
      attemptTimeout: "2 seconds",
      circuitBreaker: {
        consecutiveFailures,
        failureRateThreshold,
        slidingWindowSize: 20,
        minimumCalls: 10,
        openDuration: "10 seconds"
      }
    }
  }
})

/**
 * `["charge 1: declined by upstream", "charge 2: declined by upstream", "charge 3: rejected, circuit open",
 *   "reload to version 2: payments replaced (circuitBreaker)", "charge 4: rejected, circuit open",
 *   "reload refused: policies.payments.circuitBreaker.failureRateThreshold = 1.5", "version 2 still serving",
 *   "after 10s:", "charge 5: ok", "charge 6: ok"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const registry = yield* Registry.make(config(2))
  const lines: Array<string> = []
  let upstreamDown = true
  const charge = (n: number) =>
    Effect.suspend(() => (upstreamDown ? Effect.fail("declined by upstream") : Effect.succeed("ok"))).pipe(
      registry.apply("payments"),
      Effect.match({
        onFailure: (error) =>
          lines.push(
            `charge ${n}: ${typeof error === "string" ? error : error._tag === "CircuitBreakerError" ? "rejected, circuit open" : error._tag}`
          ),
        onSuccess: (answer) => lines.push(`charge ${n}: ${answer}`)
      })
    )

  yield* charge(1)
  yield* charge(2)
  yield* charge(3)
  const reloaded = yield* registry.reload(config(5))
  const parts = reloaded.replaced.map((r) => `${r.name} replaced (${r.parts.join(", ")})`)
  lines.push(`reload to version ${reloaded.version}: ${parts.join("; ")}`)
  yield* charge(4)
  const refused = yield* Effect.flip(registry.reload(config(5, 1.5)))
  lines.push(`reload refused: ${refused.issues.map((issue) => `${issue.path} = ${issue.value}`).join("; ")}`)
  lines.push(`version ${yield* registry.version} still serving`)
  upstreamDown = false
  yield* Effect.sleep("10 seconds")
  lines.push("after 10s:")
  yield* charge(5)
  yield* charge(6)
  return lines
}).pipe(Effect.scoped, Effect.orDie)

if (import.meta.main) Effect.runPromise(program).then((lines) => console.log(lines.join("\n")))
