/**
 * Traffic shaping: instead of refusing a burst, `mode: "shape"` makes the
 * requests over the rate wait in a first-in, first-out line per key, so the
 * upstream sees a smooth flow. Here a burst of five requests to a partner API
 * that accepts 10 requests per second and no burst (`burst: 1`) is served one
 * every 100 ms, in the order the requests arrived.
 *
 * A request that would wait longer than `maxWait`, or find `maxQueue`
 * requests already waiting, is refused with `RateLimiterError` instead.
 *
 * Run it with `node examples/rate-limiting/shaping.ts` (after `npm run build`);
 * it takes about 400 ms. The times below are those of the root test's
 * `TestClock`; a live run logs a few milliseconds more.
 */
import { RateLimiter } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/**
 * When each request of the burst was served (sent upstream), from the burst's start:
 * `["request 1 served at 0ms", "request 2 served at 100ms", "request 3 served at 200ms",
 *   "request 4 served at 300ms", "request 5 served at 400ms"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const limiter = yield* RateLimiter.make({
    name: "partner-api",
    limits: [{ algorithm: "token-bucket", limit: 10, window: "1 second", burst: 1 }], // one token every 100 ms
    mode: "shape", // over the rate: wait in line rather than fail
    maxWait: "1 second", // the longest a request may wait before being refused
    maxQueue: 20 // requests waiting per key at most
  })

  const start = yield* Clock.currentTimeMillis
  const seen: Array<string> = []
  // the upstream call: records when it was actually made
  const send = (id: number) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => seen.push(`request ${id} served at ${now - start}ms`))
    )

  // a burst: five requests at once, all for the same key
  yield* Effect.forEach([1, 2, 3, 4, 5], (id) => RateLimiter.limit(send(id), limiter, { key: "partner" }), {
    concurrency: "unbounded",
    discard: true
  })
  return seen
}).pipe(
  Effect.scoped, // the limiter and its waiting lines live as long as this scope
  Effect.provide(RateLimiter.layerStoreMemory()),
  Effect.orDie // constant options, and nothing is refused within maxWait: a failure here is a bug
)

if (import.meta.main) Effect.runPromise(program).then(console.log)
