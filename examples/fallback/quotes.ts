/**
 * A quote service that keeps answering while its upstream does not: the
 * fallback patterns in one program.
 *
 * - concurrent requests for one pair share one upstream call
 *   (`Fallback.coalesce`);
 * - each answer is kept, and when the upstream fails the last good quote
 *   answers if it is younger than 2 seconds, marked with its age
 *   (`Fallback.withStaleness`);
 * - older than that, a replica answers, and when it has nothing either, a
 *   placeholder does (`Fallback.chain`);
 * - during a maintenance window an operator switches the service to
 *   degraded mode: requests are answered at once, the upstream not called
 *   (`Fallback.whenDegraded`).
 *
 * Run it with `node examples/fallback/quotes.ts` (after `npm run build`); it
 * takes about 3 seconds. The times below are those of the root test's
 * `TestClock`; a live run logs a few milliseconds more.
 */
import { Fallback } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

class QuoteError extends Data.TaggedError("QuoteError")<{ readonly pair: string; readonly reason: string }> {}

const live: Record<string, number> = { EURUSD: 1.0842, GBPUSD: 1.265 }
const replicaQuotes: Record<string, number> = { EURUSD: 1.084 }

/**
 * What each request got, in order:
 * `["EURUSD #1 at 100ms: 1.0842", "EURUSD #2 at 100ms: 1.0842", "EURUSD #3 at 100ms: 1.0842",
 *   "GBPUSD at 100ms: 1.265", "upstream down",
 *   "EURUSD at 1200ms: 1.0842 (stale, 1s 200ms old)", "USDJPY at 1300ms: no quote",
 *   "EURUSD at 2400ms: 1.084 (replica)", "maintenance: started",
 *   "EURUSD at 2400ms: quotes paused (maintenance window)", "maintenance: over, upstream back",
 *   "EURUSD at 2500ms: 1.0842",
 *   "upstream calls: 6, coalesced: 2, stale answers: 1, answered while degraded: 1"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const log: Array<string> = []
  const start = yield* Clock.currentTimeMillis
  const elapsed = Effect.map(Clock.currentTimeMillis, (now) => `${now - start}ms`)
  let upstreamUp = true
  let upstreamCalls = 0

  // the upstream: 100 ms per call, and no protection of its own
  const upstream = (pair: string): Effect.Effect<number, QuoteError> =>
    Effect.gen(function* () {
      upstreamCalls++
      yield* Effect.sleep("100 millis")
      const price = live[pair]
      if (!upstreamUp || price === undefined) return yield* new QuoteError({ pair, reason: "upstream down" })
      return price
    })
  const replica = (pair: string): Effect.Effect<string, QuoteError> => {
    const price = replicaQuotes[pair]
    return price === undefined
      ? Effect.fail(new QuoteError({ pair, reason: "not on the replica" }))
      : Effect.succeed(`${price} (replica)`)
  }

  // switched by an operator (or by a breaker's or a health check's events)
  const quotes = yield* Fallback.makeDegradation({ name: "quotes" })

  const getQuote = (pair: string) =>
    upstream(pair).pipe(
      // concurrent requests for a pair share one upstream call
      Fallback.coalesce({ key: pair }),
      // each quote is kept; on failure the last good one, with its age
      Fallback.withStaleness({ key: `quote:${pair}` }),
      Effect.map(({ stale, value }) =>
        Option.match(stale, {
          onNone: () => `${value}`,
          onSome: (age) => `${value} (stale, ${Duration.format(age)} old)`
        })
      ),
      // too old or never seen: the replica, then a placeholder
      Fallback.chain([Effect.suspend(() => replica(pair)), Effect.succeed("no quote")]),
      // maintenance: answer at once, without calling anything
      Fallback.whenDegraded(quotes, (reason) => Effect.succeed(`quotes paused (${reason})`))
    )
  const request = (label: string, pair: string) =>
    Effect.gen(function* () {
      const answer = yield* getQuote(pair)
      log.push(`${label} at ${yield* elapsed}: ${answer}`)
    })

  // three concurrent requests for EURUSD and one for GBPUSD: two upstream calls
  yield* Effect.all(
    [
      request("EURUSD #1", "EURUSD"),
      request("EURUSD #2", "EURUSD"),
      request("EURUSD #3", "EURUSD"),
      request("GBPUSD", "GBPUSD")
    ],
    { concurrency: "unbounded", discard: true }
  )

  upstreamUp = false
  log.push("upstream down")
  yield* Effect.sleep("1 second")
  yield* request("EURUSD", "EURUSD") // the quote kept at 0 ms
  yield* request("USDJPY", "USDJPY") // never seen, not on the replica
  yield* Effect.sleep("1 second")
  yield* request("EURUSD", "EURUSD") // its quote is too old now: the replica's

  yield* quotes.degrade("maintenance window")
  log.push("maintenance: started")
  yield* request("EURUSD", "EURUSD")
  yield* quotes.recover
  upstreamUp = true
  log.push("maintenance: over, upstream back")
  yield* request("EURUSD", "EURUSD")

  const coalescer = yield* Fallback.Coalescer
  const cache = yield* Fallback.FallbackCache
  const coalesced = (yield* coalescer.stats).coalesced
  const stale = (yield* cache.stats).stale
  const degraded = (yield* quotes.stats).fallbacks
  log.push(
    `upstream calls: ${upstreamCalls}, coalesced: ${coalesced}, stale answers: ${stale}, answered while degraded: ${degraded}`
  )
  return log
}).pipe(
  Effect.scoped, // the degradation's events and metrics live as long as this scope
  Effect.provide(
    Layer.mergeAll(
      Fallback.layer({ name: "quotes", maxStale: "2 seconds" }),
      Fallback.layerCoalescer({ name: "quotes" })
    )
  ),
  Effect.orDie // constant options: an invalid one is a bug, not an expected failure
)

if (import.meta.main) Effect.runPromise(program).then(console.log)
