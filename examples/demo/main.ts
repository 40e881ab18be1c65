/**
 * `npm run demo`: a short tour that grows with the library. It runs against
 * the built packages, exactly as a user's program would.
 *
 * Today: a flaky "quotes" dependency behind a circuit breaker (the demo watches
 * it open, reject, probe and close, and prints the events, the stats and the
 * metrics it exports), a timeout inside a retry, and a two-limit rate limiter.
 */
import { CircuitBreaker, RateLimiter, Retry, Telemetry, Timeout } from "@effect-resilience/core"
import { RateLimitHeaders } from "@effect-resilience/http"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"

class QuotesDown extends Data.TaggedError("QuotesDown") {}

const program = Effect.gen(function* () {
  yield* Console.log("effect-resilience demo\n")
  const breaker = yield* CircuitBreaker.make({
    name: "quotes",
    consecutiveFailures: 3,
    openDuration: "50 millis",
    halfOpenPermittedCalls: 2,
    halfOpenSuccessesToClose: 2
  })
  const events = yield* breaker.subscribe
  let healthy = false
  const fetchQuote = Effect.suspend(() => (healthy ? Effect.succeed(1.0842) : Effect.fail(new QuotesDown())))
  const getQuote = fetchQuote.pipe(
    CircuitBreaker.protect(breaker),
    Effect.map((quote) => `quote ${quote}`),
    Effect.catchTag("QuotesDown", () => Effect.succeed("failed: quotes down")),
    Effect.catchTag("CircuitBreakerError", (error) =>
      Effect.succeed(`rejected: ${error.reason._tag}${error.reason._tag === "CircuitOpen" ? " (fail fast)" : ""}`)
    )
  )

  yield* Console.log("1. the dependency fails")
  for (let i = 0; i < 5; i++) yield* Console.log(`   ${yield* getQuote}`)
  yield* Console.log("2. it recovers; after the open duration two probes close the circuit")
  healthy = true
  yield* Effect.sleep("60 millis")
  for (let i = 0; i < 3; i++) yield* Console.log(`   ${yield* getQuote}`)

  yield* Console.log("\nevents:")
  for (const event of yield* Queue.takeAll(events)) {
    if (event._tag === "StateTransition") yield* Console.log(`   ${event.key}: ${event.from} -> ${event.to}`)
    if (event._tag === "HealthChanged") yield* Console.log(`   ${event.key}: health ${event.from} -> ${event.to}`)
  }
  const stats = yield* breaker.stats
  yield* Console.log(
    `\nstats: ${stats.successes} succeeded, ${stats.failures} failed, ${stats.rejected} rejected, ${stats.circuits} circuit`
  )
  yield* Console.log("\nexported metrics (what an OpenTelemetry exporter sees):")
  for (const snapshot of yield* Metric.snapshot) {
    if (!snapshot.id.startsWith("resilience.")) continue
    const value =
      "count" in snapshot.state ? snapshot.state.count : "value" in snapshot.state ? snapshot.state.value : ""
    if (value === 0 || value === "") continue
    const attributes = Object.entries(snapshot.attributes ?? {})
      .filter(([key]) => key !== "unit")
      .map(([key, v]) => `${key}=${v}`)
      .join(" ")
    yield* Console.log(`   ${snapshot.id} {${attributes}} ${value}`)
  }
  yield* Console.log("\n3. a slow, flaky call: a 20 ms attempt timeout inside, decorrelated-jitter retries outside")
  let attempts = 0
  const slowThenFast = Effect.suspend(() =>
    ++attempts < 3 ? Effect.as(Effect.sleep("100 millis"), "slow") : Effect.succeed("fast")
  )
  const retried = yield* slowThenFast.pipe(
    Timeout.attempt("20 millis"),
    Retry.retry(
      Retry.exponential({ name: "demo", base: "5 millis", cap: "50 millis", jitter: "decorrelated", maxAttempts: 4 })
    )
  )
  yield* Console.log(`   ${retried} after ${attempts} attempts`)

  yield* Console.log("4. a rate limiter: 3 per second and 5 per minute per client, one request of cost 2")
  const limiter = yield* RateLimiter.make({
    name: "api",
    limits: [
      { algorithm: "token-bucket", limit: 3, window: "1 second", name: "per-second" },
      { algorithm: "fixed-window", limit: 5, window: "1 minute", name: "per-minute" }
    ]
  })
  for (const cost of [2, 1, 1]) {
    const decision = yield* limiter.consume("client-1", cost)
    yield* Console.log(
      `   cost ${cost}: ${decision.allowed ? "allowed" : `refused by ${decision.policy}, retry after ${Duration.toMillis(decision.retryAfter)} ms`}, remaining ${decision.remaining}`
    )
  }

  yield* Console.log(`\ncatalogue: ${Telemetry.metrics.length} metrics, ${Telemetry.events.length} events`)
  yield* Console.log(
    `RateLimit header, as the HTTP package renders it: ${RateLimitHeaders.rateLimit([{ name: "default", remaining: 9, resetSeconds: 0.4 }])}`
  )
}).pipe(Effect.scoped, Effect.provide([CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory()]))

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
