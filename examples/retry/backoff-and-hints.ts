/**
 * One retry policy in front of a stand-in API, used for three calls:
 *
 * 1. a flaky call, `Unavailable` twice, retried with exponential backoff and
 *    decorrelated jitter until it succeeds on its third attempt;
 * 2. a call failing with a permanent error, which `while` keeps from being
 *    retried: one attempt, then the error as it was;
 * 3. a throttled call whose error carries a `retryAfter` hint: the next
 *    attempt waits the hint (250 ms), longer than any backoff delay here.
 *
 * The stand-in reads `Retry.Attempt` to know which attempt it is serving,
 * how long after the first one it runs and why the previous one failed.
 * The jittered delays are random, so the log shows attempts, not delays.
 *
 * Run it with `node examples/retry/backoff-and-hints.ts` (after `npm run build`);
 * it takes about half a second. The 250 ms is that of the root test's
 * `TestClock`; a live run may log a millisecond or two more.
 */
import { Retry } from "@effect-resilience/core"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** A transient failure: worth retrying. */
class Unavailable extends Data.TaggedError("Unavailable") {}

/** The caller's mistake: no retry can fix it. */
class InvalidOrder extends Data.TaggedError("InvalidOrder")<{ readonly field: string }> {}

/** Too many requests: retry, but not before `retryAfter` (a `Retry-After` header, say). */
class Throttled extends Data.TaggedError("Throttled")<{ readonly retryAfter: Duration.Duration }> {}

/** Every error the stand-in API can fail with. */
type ApiError = Unavailable | InvalidOrder | Throttled

/** What to retry: everything but the caller's mistakes (kept apart from how long to wait). */
const isTransient = (error: ApiError): boolean => error._tag !== "InvalidOrder"

/**
 * The stand-in API, one behaviour per endpoint, by attempt number (from `Retry.Attempt`):
 * `/inventory` is unavailable for two attempts, `/orders` always rejects the order,
 * `/prices` is throttled once for 250 ms.
 */
const serve = (endpoint: string, info: Retry.AttemptInfo): Effect.Effect<string, ApiError> => {
  switch (endpoint) {
    case "/inventory":
      return info.attempt < 3 ? Effect.fail(new Unavailable()) : Effect.succeed("42 in stock")
    case "/orders":
      return Effect.fail(new InvalidOrder({ field: "quantity" }))
    default:
      return info.attempt === 1
        ? Effect.fail(new Throttled({ retryAfter: Duration.millis(250) }))
        : Effect.succeed("9.99 EUR")
  }
}

/** How an attempt is named in the log: its number and, after a hint, how long after the first attempt it ran. */
const label = (endpoint: string, info: Retry.AttemptInfo): string =>
  info.lastError instanceof Throttled
    ? `${endpoint} attempt ${info.attempt} (${Duration.toMillis(info.elapsed)}ms after Throttled)`
    : `${endpoint} attempt ${info.attempt}`

/**
 * Each attempt, each call's result, then the policy's totals:
 * `["/inventory attempt 1: Unavailable", "/inventory attempt 2: Unavailable",
 *   "/inventory attempt 3: 42 in stock", "/inventory = 42 in stock",
 *   "/orders attempt 1: InvalidOrder", "/orders failed: InvalidOrder (not retried)",
 *   "/prices attempt 1: Throttled, retry after 250ms",
 *   "/prices attempt 2 (250ms after Throttled): 9.99 EUR", "/prices = 9.99 EUR",
 *   "stats: 2 successes, 4 failed attempts, 3 retries, 0 exhausted"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const policy = Retry.exponential({
    name: "api",
    base: "10 millis", // the first retry waits 10 to 30 ms ...
    cap: "100 millis", // ... each later one up to three times the previous, never more than 100 ms
    jitter: "decorrelated", // AWS's decorrelated jitter: spreads out clients that failed together
    maxAttempts: 5, // the first attempt included
    maxRetryAfter: "1 second" // a hint longer than this is cut to it
  })

  const seen: Array<string> = []
  const call = (endpoint: string) =>
    Effect.flatMap(Retry.Attempt, (info) =>
      serve(endpoint, info).pipe(
        Effect.tap((value) => Effect.sync(() => seen.push(`${label(endpoint, info)}: ${value}`))),
        Effect.tapError((error) =>
          Effect.sync(() =>
            seen.push(
              error._tag === "Throttled"
                ? `${label(endpoint, info)}: Throttled, retry after ${Duration.format(error.retryAfter)}`
                : `${label(endpoint, info)}: ${error._tag}`
            )
          )
        )
      )
    ).pipe(
      // `while` decides what to retry; a `retryAfter` on the error is honoured without any option
      Retry.retry(policy, { while: isTransient }),
      Effect.match({
        onFailure: (error) =>
          `${endpoint} failed: ${error._tag}${error._tag === "InvalidOrder" ? " (not retried)" : ""}`,
        onSuccess: (value) => `${endpoint} = ${value}`
      }),
      Effect.flatMap((line) => Effect.sync(() => seen.push(line)))
    )

  yield* call("/inventory")
  yield* call("/orders")
  yield* call("/prices")

  const stats = yield* policy.stats
  seen.push(
    `stats: ${stats.successes} successes, ${stats.failures} failed attempts, ${stats.retries} retries, ${stats.exhausted} exhausted`
  )
  return seen
})

if (import.meta.main) Effect.runPromise(program).then(console.log)
