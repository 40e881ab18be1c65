/**
 * A quote service behind one `Policy`: the parts named once, composed in the
 * library's order, keys per call.
 *
 * - a flaky upstream is retried (the retry outside the breaker);
 * - a hanging upstream times out per attempt (inside the breaker, so the
 *   timeouts open its circuit), and the last good quote answers
 *   (`fallback: { cached }`, outermost);
 * - while the circuit is open, callers get the cached quote at once, without
 *   an upstream call: the rejection's `retryAfter` would end past the total
 *   timeout, so the retry does not wait for it;
 * - a client over its quota is refused by the limiter, and the breaker, which
 *   sees the refusal, does not count it as a failure;
 * - once the open duration has passed, a probe closes the circuit.
 *
 * Run it with `node examples/policy/quotes.ts` (after `npm run build`); it
 * takes about 3 seconds. The times below are those of the root test's
 * `TestClock`; a live run logs a few milliseconds more.
 */
import { CircuitBreaker, Fallback, Policy, RateLimiter, Retry } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

class QuoteError extends Data.TaggedError("QuoteError")<{ readonly pair: string; readonly reason: string }> {}

const prices: Record<string, number> = { EURUSD: 1.0842, GBPUSD: 1.265 }

/**
 * What each request got, in order:
 * `["alice EURUSD at 20ms: 1.0842 (upstream calls: 1)", "bob GBPUSD at 90ms: 1.265 (upstream calls: 2)",
 *   "alice EURUSD at 490ms: 1.0842 (upstream calls: 3), circuit Open",
 *   "carol EURUSD at 490ms: 1.0842 (upstream calls: 0)",
 *   "mallory GBPUSD x5 at 590ms: 1.265 (upstream calls: 5)",
 *   "mallory GBPUSD #6 at 590ms: 1.265 (upstream calls: 0), circuit Closed",
 *   "alice EURUSD at 2510ms: 1.0842 (upstream calls: 1), circuit Closed"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const log: Array<string> = []
  const start = yield* Clock.currentTimeMillis
  let mode: "up" | "flaky" | "hanging" = "up"
  let upstreamCalls = 0

  // the upstream: 20 ms per answer; once flaky, its next call fails at once; hanging, it never answers
  const upstream = (pair: string): Effect.Effect<number, QuoteError> =>
    Effect.suspend(() => {
      upstreamCalls++
      if (mode === "hanging") return Effect.never
      if (mode === "flaky") {
        mode = "up"
        return Effect.fail(new QuoteError({ pair, reason: "connection reset" }))
      }
      const price = prices[pair]
      return price === undefined
        ? Effect.fail(new QuoteError({ pair, reason: "unknown pair" }))
        : Effect.as(Effect.sleep("20 millis"), price)
    })

  const breaker = yield* CircuitBreaker.make({ name: "quotes", consecutiveFailures: 3, openDuration: "2 seconds" })
  const limiter = yield* RateLimiter.make({
    name: "quotes",
    limits: [{ algorithm: "fixed-window", limit: 5, window: "1 minute" }]
  })
  // the parts in any order: `apply` always wraps them the same way
  const policy = yield* Policy.make({
    name: "quotes",
    fallback: { cached: { maxStale: "5 minutes" } },
    attemptTimeout: "100 millis",
    circuitBreaker: breaker,
    rateLimiter: limiter,
    retry: Retry.constant({ delay: "50 millis", maxAttempts: 3 }),
    totalTimeout: "1 second"
  })

  // the circuit per pair, the quota per client, the cached value per pair
  const getQuote = Policy.fn(policy, (client: string, pair: string) => ({
    key: pair,
    rateLimiter: { key: client },
    fallback: { key: `quote:${pair}` }
  }))((_client: string, pair: string) => upstream(pair))

  const request = (label: string, client: string, pair: string, circuit = false) =>
    Effect.gen(function* () {
      const before = upstreamCalls
      const answer = yield* getQuote(client, pair).pipe(
        Effect.catch((error) =>
          Effect.succeed(error._tag === "QuoteError" ? error.reason : `${error._tag} (${error.reason._tag})`)
        )
      )
      const at = (yield* Clock.currentTimeMillis) - start
      const state = circuit ? `, circuit ${(yield* breaker.state(pair))._tag}` : ""
      log.push(`${label} at ${at}ms: ${answer} (upstream calls: ${upstreamCalls - before})${state}`)
    })

  yield* request("alice EURUSD", "alice", "EURUSD")
  mode = "flaky"
  yield* request("bob GBPUSD", "bob", "GBPUSD")
  // three attempts time out (100 ms each, 50 ms apart): the circuit opens, the cached quote answers
  mode = "hanging"
  yield* request("alice EURUSD", "alice", "EURUSD", true)
  // the circuit is open: answered from the cache at once
  yield* request("carol EURUSD", "carol", "EURUSD")
  // a client over its quota: refused by the limiter, answered from the cache, and the circuit stays closed
  mode = "up"
  const before = upstreamCalls
  const answers = yield* Effect.forEach([1, 2, 3, 4, 5], () => getQuote("mallory", "GBPUSD"))
  log.push(
    `mallory GBPUSD x5 at ${(yield* Clock.currentTimeMillis) - start}ms: ${[...new Set(answers)].join(", ")} (upstream calls: ${upstreamCalls - before})`
  )
  yield* request("mallory GBPUSD #6", "mallory", "GBPUSD", true)
  // after the open duration, a probe closes the circuit
  yield* Effect.sleep("1900 millis")
  yield* request("alice EURUSD", "alice", "EURUSD", true)
  return log
}).pipe(
  Effect.scoped, // the breaker's and the limiter's events and metrics live as long as this scope
  Effect.provide(
    Layer.mergeAll(
      CircuitBreaker.layerStoreMemory(),
      RateLimiter.layerStoreMemory(),
      Fallback.layer({ name: "quotes" })
    )
  ),
  Effect.orDie // constant options: an invalid one is a bug, not an expected failure
)

if (import.meta.main) Effect.runPromise(program).then(console.log)
