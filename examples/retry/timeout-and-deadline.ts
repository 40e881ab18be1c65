/**
 * Timeouts at two levels around a retry, innermost first:
 *
 * 1. `Timeout.attempt("50 millis")` bounds each attempt: a slow one fails with
 *    `TimeoutError` (`kind: "attempt"`) and its work is interrupted;
 * 2. `Retry.retry` retries the timeouts, 50 ms apart;
 * 3. `Timeout.deadline("175 millis")` bounds the whole call, retries and
 *    waits included. Retry reads it: when the next wait would end past the
 *    deadline, retrying stops at once with the last attempt's error, instead
 *    of sleeping into a deadline it cannot meet.
 *
 * `/quote` is slow once, then answers: one timeout, one retry, a result.
 * `/report` is always slow: two timeouts, then the deadline ends the retries.
 *
 * Run it with `node examples/retry/timeout-and-deadline.ts` (after
 * `npm run build`); it takes about 250 ms. The times below are those of the
 * root test's `TestClock`; a live run logs a few milliseconds more.
 */
import { Retry, Timeout } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/**
 * Each attempt and each call's outcome, with times from the call's start:
 * `["/quote attempt 1 at 0ms: attempt timed out after 50ms", "/quote attempt 2 at 100ms: 1.0842",
 *   "/quote = 1.0842 at 100ms",
 *   "/report attempt 1 at 0ms: attempt timed out after 50ms",
 *   "/report attempt 2 at 100ms: attempt timed out after 50ms",
 *   "/report gave up at 150ms: attempt timed out after 50ms (the next wait would end past the deadline)"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  // a stand-in upstream: `/quote` hangs on its first call only, `/report` always
  const quoteCalls = yield* Ref.make(0)
  const fetch = (path: string): Effect.Effect<string> =>
    path === "/quote"
      ? Effect.flatMap(
          Ref.updateAndGet(quoteCalls, (n) => n + 1),
          (n) => (n === 1 ? Effect.as(Effect.sleep("1 second"), "1.0842") : Effect.succeed("1.0842"))
        )
      : Effect.as(Effect.sleep("1 second"), "report.pdf") // never in time

  const policy = Retry.constant({ delay: "50 millis", maxAttempts: 10 }) // the deadline, not maxAttempts, ends it

  const seen: Array<string> = []
  const get = (path: string) =>
    Effect.gen(function* () {
      const start = yield* Clock.currentTimeMillis
      const since = Effect.map(Clock.currentTimeMillis, (now) => `${now - start}ms`)
      const outcome = (error: Timeout.TimeoutError) =>
        `${error.reason.kind} timed out after ${Duration.format(error.reason.limit)}`

      const attempt = Effect.gen(function* () {
        const { attempt } = yield* Retry.Attempt
        const at = yield* since
        return yield* fetch(path).pipe(
          Timeout.attempt("50 millis"), // 1. each attempt: at most 50 ms
          Effect.tap((value) => Effect.sync(() => seen.push(`${path} attempt ${attempt} at ${at}: ${value}`))),
          Effect.tapError((error) =>
            Effect.sync(() => seen.push(`${path} attempt ${attempt} at ${at}: ${outcome(error)}`))
          )
        )
      })

      const result = yield* attempt.pipe(
        Retry.retry(policy, { while: Timeout.isTimeoutError }), // 2. retry timeouts
        Timeout.deadline("175 millis"), // 3. the whole call: at most 175 ms
        Effect.result
      )
      const at = yield* since
      seen.push(
        result._tag === "Success"
          ? `${path} = ${result.success} at ${at}`
          : result.failure._tag === "TimeoutError"
            ? `${path} gave up at ${at}: ${outcome(result.failure)} (the next wait would end past the deadline)`
            : `${path} failed at ${at}: ${result.failure._tag}`
      )
    })

  yield* get("/quote")
  yield* get("/report")
  return seen
})

if (import.meta.main) Effect.runPromise(program).then(console.log)
