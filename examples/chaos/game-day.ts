/**
 * A game day without a flaky server: `HttpChaos.client` puts faults between a
 * `ResilientHttpClient` and its upstream, and the log shows what the policy
 * made of them.
 *
 * - The upstream, an inventory service, always answers 200 in 20 ms.
 * - Chaos answers 30% of its requests with a 503 and delays 20% of them by
 *   200–400 ms (past the 150 ms attempt timeout: those attempts never reach
 *   the upstream), drawn from `Random`: under `Random.withSeed` every run
 *   injects the same faults, so this log is exact (the root test checks it).
 * - The client retries a 503 or a timed-out attempt (150 ms per attempt) up
 *   to three times, 10 ms apart: most requests the chaos hit still succeed.
 * - Then chaos fails every request: five failures in a row open the circuit,
 *   and later calls are refused at once without reaching the network.
 *   Switched off again, the next call after the open duration closes it.
 *
 * Run it with `node examples/chaos/game-day.ts` (after `npm run build`); it
 * takes about 4 seconds.
 */
import { Chaos, CircuitBreaker, Retry } from "@effect-resilience/core"
import { HttpChaos, ResilientHttpClient } from "@effect-resilience/http"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as Random from "effect/Random"

/**
 * What the game day saw, in order:
 * `["round 1: 20 requests, 20 answered 200 after 37 attempts",
 *   "chaos: 7 answered 503, 10 delayed past the attempt timeout; upstream reached 20 times",
 *   "round 2: 503, 503, 503, 503, 503 then CircuitBreakerError (circuit Open)",
 *   "round 3: 200 (circuit Closed)"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const log: Array<string> = []
  let attempts = 0
  const upstream = HttpClient.make((request) =>
    Effect.as(
      Effect.sleep("20 millis"),
      HttpClientResponse.fromWeb(request, new Response('{"sku":"A-1","stock":42}', { status: 200 }))
    ).pipe(Effect.tap(() => Effect.sync(() => attempts++)))
  )

  const chaos = yield* Chaos.make({
    name: "inventory-game-day",
    failureRate: 0.3,
    latencyRate: 0.2,
    latencyMin: "200 millis",
    latencyMax: "400 millis"
  })
  const breaker = yield* CircuitBreaker.make({ name: "inventory", consecutiveFailures: 5, openDuration: "2 seconds" })
  const client = yield* ResilientHttpClient.make(upstream.pipe(HttpChaos.client(chaos)), {
    retry: Retry.constant({ delay: "10 millis", maxAttempts: 4 }),
    circuitBreaker: breaker,
    attemptTimeout: "150 millis"
  })
  const get = Effect.flatMap(client.get("http://inventory.internal/sku/A-1"), (response) =>
    Effect.succeed(response.status)
  )

  // round 1: chaos at its rates
  let ok = 0
  for (let i = 0; i < 20; i++) if ((yield* Effect.orElseSucceed(get, () => 0)) === 200) ok++
  const seen = yield* chaos.stats
  log.push(`round 1: 20 requests, ${ok} answered 200 after ${seen.calls} attempts`)
  log.push(
    `chaos: ${seen.failure} answered 503, ${seen.latency} delayed past the attempt timeout; upstream reached ${attempts} times`
  )

  // round 2: every request fails until the circuit opens
  const always = yield* Chaos.make({ name: "inventory-outage", failureRate: 1 })
  const down = yield* ResilientHttpClient.make(upstream.pipe(HttpChaos.client(always)), {
    circuitBreaker: breaker
  })
  const outcomes: Array<string> = []
  for (let i = 0; i < 6; i++) {
    const outcome = yield* Effect.match(down.get("http://inventory.internal/sku/A-1"), {
      onFailure: (error) => error._tag,
      onSuccess: (response) => String(response.status)
    })
    outcomes.push(outcome)
  }
  const open = (yield* breaker.state("inventory.internal"))._tag
  log.push(`round 2: ${outcomes.slice(0, -1).join(", ")} then ${outcomes.at(-1)} (circuit ${open})`)

  // round 3: the outage is over; after the open duration a probe closes the circuit
  yield* Effect.sleep("2 seconds")
  const status = yield* Effect.orElseSucceed(get, () => 0)
  log.push(`round 3: ${status} (circuit ${(yield* breaker.state("inventory.internal"))._tag})`)
  return log
}).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()), Random.withSeed("game-day"), Effect.orDie)

if (import.meta.main) {
  for (const line of await Effect.runPromise(program)) console.log(line)
}
