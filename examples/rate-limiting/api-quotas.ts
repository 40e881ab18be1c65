/**
 * API quotas per API key, as an HTTP API would enforce them:
 *
 * - two limits at once: 10 items per second (a token bucket, for bursts) and
 *   15 items per minute (an exact sliding log, for the quota); a request
 *   passes only when both allow it, and a refused one consumes nothing;
 * - a `deny` list: a revoked key is refused whatever its usage;
 * - `RateLimiter.limitFn` wraps the handler, taking the key (the API key)
 *   and the cost (the number of items in the batch) from the request itself;
 * - a refusal is a `RateLimiterError` whose reason names the deciding limit
 *   and carries `retryAfter`: what a `429` response's `Retry-After` needs.
 *
 * Run it with `node examples/rate-limiting/api-quotas.ts` (after
 * `npm run build`); it waits 600 ms once. The `retryAfter` values below are
 * those of the root test's `TestClock`; a live run's last one may be a few
 * milliseconds shorter.
 */
import { RateLimiter } from "@effect-resilience/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** An incoming request: who sends it, and how many items it writes. */
interface BatchRequest {
  readonly apiKey: string
  readonly items: number
}

/** The handler being protected: stores a batch. */
const storeBatch = (request: BatchRequest): Effect.Effect<string> =>
  Effect.succeed(`${request.apiKey}: 200, stored ${request.items} items`)

/**
 * Each request's response:
 * `["alice: 200, stored 6 items", "alice: 429 by per-second, retry after 200ms",
 *   "bob: 200, stored 6 items", "mallory: 403, key revoked",
 *   "alice: 200, stored 8 items", "alice: 429 by per-minute, retry after 59s 400ms"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const limiter = yield* RateLimiter.make({
    name: "public-api",
    limits: [
      { name: "per-second", algorithm: "token-bucket", limit: 10, window: "1 second" },
      { name: "per-minute", algorithm: "sliding-log", limit: 15, window: "1 minute" }
    ],
    deny: ["mallory"] // revoked: always refused, never counted against a limit
  })

  // the handler, limited per API key, each request costing its number of items
  const handle = RateLimiter.limitFn(limiter, {
    key: (request: BatchRequest) => request.apiKey,
    cost: (request: BatchRequest) => request.items
  })(storeBatch)

  const respond = (request: BatchRequest) =>
    handle(request).pipe(
      Effect.catchReason("RateLimiterError", "RateLimitExceeded", (reason) =>
        Effect.succeed(
          reason.policy === "deny"
            ? `${reason.key}: 403, key revoked`
            : `${reason.key}: 429 by ${reason.policy}, retry after ${Duration.format(reason.retryAfter)}`
        )
      )
    )

  const seen: Array<string> = []
  seen.push(yield* respond({ apiKey: "alice", items: 6 })) // 4 of 10 tokens left; 9 of 15 left this minute
  seen.push(yield* respond({ apiKey: "alice", items: 6 })) // 2 tokens short: 200 ms at 10 per second
  seen.push(yield* respond({ apiKey: "bob", items: 6 })) // another key, its own limits
  seen.push(yield* respond({ apiKey: "mallory", items: 1 })) // on the deny list

  yield* Effect.sleep("600 millis") // alice's bucket is full again (10 tokens) ...
  seen.push(yield* respond({ apiKey: "alice", items: 8 })) // ... and 14 of 15 are used this minute
  seen.push(yield* respond({ apiKey: "alice", items: 2 })) // the bucket allows it, the minute does not
  return seen
}).pipe(
  Effect.scoped, // the limiter (and its background sweeper) lives as long as this scope
  Effect.provide(RateLimiter.layerStoreMemory()),
  Effect.orDie // constant options: an invalid one is a bug
)

if (import.meta.main) Effect.runPromise(program).then(console.log)
