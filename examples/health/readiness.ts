/**
 * Readiness from a database check and a circuit breaker: the hysteresis keeps
 * one blip from flipping the answer, and a non-critical component degrades
 * the whole instead of taking it down.
 *
 * - "database" is pinged every second (timeout 500 ms); it refuses
 *   connections from 2 s to 6 s. The first failure makes it `degraded`, the
 *   third in a row (4 s) `unhealthy`; it is `healthy` again after two
 *   successes in a row (6 s and 7 s).
 * - "payments" follows a circuit breaker's health, `critical: false`: when
 *   the circuit is forced open at 8.5 s, the whole is only `degraded`.
 *
 * Run it with `node examples/health/readiness.ts` (after `npm run build`); it
 * takes about ten seconds. The times below are those of the root test's
 * `TestClock`; a live run logs a few milliseconds more.
 */
import { CircuitBreaker, Health } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

/**
 * The status changes as they happened, then a summary:
 * `["2000ms database: healthy -> degraded", "2000ms whole: healthy -> degraded",
 *   "4000ms database: degraded -> unhealthy", "4000ms whole: degraded -> unhealthy",
 *   "7000ms database: unhealthy -> healthy", "7000ms whole: unhealthy -> healthy",
 *   "8500ms payments: healthy -> unhealthy", "8500ms whole: healthy -> degraded",
 *   "database: healthy, 11 checks, 4 failures, success rate 0.64, last error: connection refused",
 *   "payments: unhealthy (not critical)", "readiness: degraded"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const log: Array<string> = []
  const start = yield* Clock.currentTimeMillis
  const elapsed = Effect.map(Clock.currentTimeMillis, (now) => now - start)

  // the database refuses connections from 2 s to 6 s
  const pingDatabase = Effect.flatMap(elapsed, (t) =>
    t >= 2_000 && t < 6_000 ? Effect.fail(new Error("connection refused")) : Effect.void
  )
  const payments = yield* CircuitBreaker.make({ name: "payments" })

  const health = yield* Health.make({
    name: "orders-service",
    interval: "1 second",
    timeout: "500 millis",
    // exact ticks (the first run at once, then every second) so that the log above is reproducible;
    // keep the defaults in production: they spread the checks of many components and replicas apart
    jitter: 0,
    stagger: 0,
    components: [
      Health.check("database", pingDatabase, { probe: "readiness" }),
      Health.fromCircuitBreaker(payments, { critical: false })
    ]
  })

  // log every change of a component and of the whole
  yield* Effect.forkChild(
    Stream.runForEach(health.events, (event) =>
      Effect.map(elapsed, (t) => {
        if (event._tag === "StatusChanged") log.push(`${t}ms ${event.component}: ${event.from} -> ${event.to}`)
        if (event._tag === "OverallStatusChanged" && event.view === "all") {
          log.push(`${t}ms whole: ${event.from} -> ${event.to}`)
        }
      })
    )
  )
  // an operator forces the payments circuit open at 8.5 s
  yield* Effect.forkChild(Effect.andThen(Effect.sleep("8500 millis"), payments.forceOpen()))

  yield* Effect.sleep("10500 millis")
  const report = yield* health.status
  for (const c of report.components) {
    log.push(
      c.kind === "check"
        ? `${c.name}: ${c.status}, ${c.checks} checks, ${c.failures} failures, success rate ${c.trend.successRate?.toFixed(2)}, last error: ${c.lastError}`
        : `${c.name}: ${c.status}${c.critical ? "" : " (not critical)"}`
    )
  }
  log.push(`readiness: ${(yield* health.readiness).status}`)
  return log
}).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()), Effect.orDie)

if (import.meta.main) {
  for (const line of await Effect.runPromise(program)) console.log(line)
}
