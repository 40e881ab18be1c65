/**
 * A circuit breaker in front of one flaky dependency: two failures in a row
 * open the circuit, an open circuit rejects at once with `CircuitOpen` and a
 * `retryAfter`, and once the open duration has passed the next call is a probe
 * whose success closes the circuit again.
 *
 * Run it with `node examples/circuit-breaker/basic.ts` (after `npm run build`).
 */
import { CircuitBreaker } from "@effect-resilience/core"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/** The dependency's own error: what the breaker counts as a failure. */
class PaymentsDown extends Data.TaggedError("PaymentsDown") {}

/**
 * What each step saw, in order:
 * `["failed", "failed", "rejected for 10ms", "Open", "charged", "Closed"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.make({
    name: "payments",
    consecutiveFailures: 2, // trips after two failures in a row
    openDuration: "10 millis" // then rejects for 10 ms before letting a probe through
  })

  // a stand-in for the payments API: down until `recovered` is set
  const recovered = yield* Ref.make(false)
  const charge = Effect.flatMap(Ref.get(recovered), (up) =>
    up ? Effect.succeed("charged") : Effect.fail(new PaymentsDown())
  )

  const chargeProtected = charge.pipe(
    CircuitBreaker.protect(breaker), // adds only CircuitBreakerError to the error channel
    Effect.catchTag("PaymentsDown", () => Effect.succeed("failed")),
    Effect.catchReason(
      "CircuitBreakerError",
      "CircuitOpen",
      (open) => Effect.succeed(`rejected for ${Duration.format(open.retryAfter)}`),
      (other) => Effect.succeed(`rejected: ${other._tag}`) // CircuitHalfOpen or a store error
    )
  )
  const stateOf = Effect.map(breaker.state(), (state) => state._tag)

  const seen: Array<string> = []
  seen.push(yield* chargeProtected) // "failed"
  seen.push(yield* chargeProtected) // "failed": the second failure in a row opens the circuit
  seen.push(yield* chargeProtected) // rejected without calling the API
  seen.push(yield* stateOf) // "Open"

  yield* Ref.set(recovered, true)
  yield* Effect.sleep("20 millis") // longer than openDuration: the next call is the half-open probe
  seen.push(yield* chargeProtected) // "charged": the probe succeeds ...
  seen.push(yield* stateOf) // ... and closes the circuit
  return seen
}).pipe(
  Effect.scoped, // the breaker lives as long as this scope
  Effect.provide(CircuitBreaker.layerStoreMemory()), // circuits kept in memory
  Effect.orDie // the options above are constants: an invalid one is a bug, not an expected failure
)

if (import.meta.main) Effect.runPromise(program).then(console.log)
