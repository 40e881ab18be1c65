/**
 * The documented composition order, innermost first:
 *
 * 1. `Effect.timeout` *inside* the breaker, so an attempt that times out is a
 *    failure the breaker counts (outside, the breaker would never see it);
 * 2. `CircuitBreaker.protect`, which sees one outcome per attempt;
 * 3. `Effect.retry` *outside*, retrying only what is worth retrying — breaker
 *    rejections, timeouts and `Unavailable` — with exponential backoff that
 *    waits at least the rejection's `retryAfter`, so it never hammers an open
 *    circuit. A bad request is neither retried nor counted by the breaker.
 *
 * Run it with `node examples/circuit-breaker/with-retry-and-timeout.ts` (after
 * `npm run build`); it takes about 40 ms.
 */
import { CircuitBreaker } from "@effect-resilience/core"
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"

/** A transient upstream failure: worth retrying. */
class Unavailable extends Data.TaggedError("Unavailable") {}

/** The caller's mistake: retrying cannot help, and it says nothing about the upstream's health. */
class InvalidSymbol extends Data.TaggedError("InvalidSymbol")<{ readonly symbol: string }> {}

/** Every error a protected attempt can fail with. */
type AttemptError = Unavailable | InvalidSymbol | Cause.TimeoutError | CircuitBreaker.CircuitBreakerError

/** Retry rejections (`CircuitOpen`, `CircuitHalfOpen`), timeouts and `Unavailable`; nothing else. */
const isTransient = (error: AttemptError): boolean =>
  CircuitBreaker.isRejection(error) || error._tag === "TimeoutError" || error._tag === "Unavailable"

/** Exponential backoff (2 ms, 4 ms, 8 ms, …), but never shorter than a rejection's `retryAfter`. */
const backoff: Schedule.Schedule<Duration.Duration, AttemptError> = Schedule.modifyDelay(
  Schedule.exponential("2 millis").pipe(Schedule.setInputType<AttemptError>()),
  ({ duration, input }) =>
    Effect.succeed(CircuitBreaker.isRejection(input) ? Duration.max(duration, input.reason.retryAfter) : duration)
)

const summarize = (error: AttemptError): string =>
  CircuitBreaker.isRejection(error)
    ? `${error.reason._tag}, retry after ${Duration.format(error.reason.retryAfter)}`
    : error._tag

/**
 * Each attempt, each call's result, and the circuit's final state:
 * `["EURUSD attempt 1: TimeoutError", "EURUSD attempt 2: Unavailable",
 *   "EURUSD attempt 3: CircuitOpen, retry after 21ms", "EURUSD attempt 4: 1.0842", "EURUSD = 1.0842",
 *   "XXX attempt 1: InvalidSymbol", "XXX failed: InvalidSymbol", "Closed"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.make({ name: "quotes", consecutiveFailures: 2, openDuration: "25 millis" })

  // a stand-in for the quotes API: its first call hangs, its second fails, then it answers
  const calls = yield* Ref.make(0)
  const fetchQuote = (symbol: string): Effect.Effect<string, Unavailable | InvalidSymbol> =>
    symbol.length !== 6
      ? Effect.fail(new InvalidSymbol({ symbol }))
      : Effect.flatMap(
          Ref.updateAndGet(calls, (n) => n + 1),
          (n) =>
            n === 1
              ? Effect.as(Effect.sleep("1 second"), "1.0842") // never answers in time
              : n === 2
                ? Effect.fail(new Unavailable())
                : Effect.succeed("1.0842")
        )

  const seen: Array<string> = []
  const getQuote = (symbol: string) =>
    Effect.suspend(() => {
      let attempt = 0 // per call: the retry below reruns everything above it, not this
      const log = (line: string) => Effect.sync(() => seen.push(`${symbol} attempt ${++attempt}: ${line}`))
      return fetchQuote(symbol).pipe(
        Effect.timeout("10 millis"), // 1. inside: a timeout is a failure the breaker counts
        CircuitBreaker.protect(breaker, {
          isIgnored: (error: AttemptError) => error._tag === "InvalidSymbol" // the caller's fault, not the upstream's
        }), // 2. one outcome per attempt
        Effect.tap(log),
        Effect.tapError((error) => log(summarize(error))),
        Effect.retry({ schedule: backoff, while: isTransient, times: 5 }) // 3. outside: retries rejections too
      )
    })

  seen.push(`EURUSD = ${yield* getQuote("EURUSD")}`)
  const bad = yield* Effect.flip(getQuote("XXX")) // not transient: one attempt, then the error
  seen.push(`XXX failed: ${bad._tag}`)
  seen.push((yield* breaker.state())._tag)
  return seen
}).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()), Effect.orDie)

if (import.meta.main) Effect.runPromise(program).then(console.log)
