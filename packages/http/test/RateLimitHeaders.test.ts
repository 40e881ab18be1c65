import { assert, describe, it } from "@effect/vitest"
import { RateLimiter } from "@effect-resilience/core"
import { RateLimitHeaders } from "@effect-resilience/http"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"

const limiterOf = (input: RateLimiter.Input) =>
  RateLimiter.make(input).pipe(Effect.provide(RateLimiter.layerStoreMemory()))

describe("RateLimitHeaders.fromDecision", () => {
  it.effect("allowed: both fields, no Retry-After; t rounded up", () =>
    Effect.gen(function* () {
      const limiter = yield* limiterOf({
        limits: [{ algorithm: "fixed-window", limit: 5, window: "10 seconds", name: "w" }]
      })
      yield* TestClock.adjust("2500 millis")
      assert.deepStrictEqual(RateLimitHeaders.fromDecision(yield* limiter.consume("k")), {
        "ratelimit-policy": '"w";q=5;w=10',
        ratelimit: '"w";r=4;t=8' // 7.5 s left in the window
      })
    })
  )

  it.effect("refused: Retry-After in whole seconds, rounded up, at least 1", () =>
    Effect.gen(function* () {
      const limiter = yield* limiterOf({
        limits: [{ algorithm: "token-bucket", limit: 10, window: "1 second", burst: 1, name: "tb" }]
      })
      yield* limiter.consume("k")
      const refused = yield* limiter.consume("k") // a token every 100 ms
      assert.strictEqual(refused.allowed, false)
      assert.strictEqual(RateLimitHeaders.fromDecision(refused)["retry-after"], "1")
    })
  )

  it.effect("a cost that can never pass: no Retry-After (the wait is infinite)", () =>
    Effect.gen(function* () {
      const limiter = yield* limiterOf({
        limits: [{ algorithm: "gcra", limit: 5, window: "1 second", burst: 2, name: "g" }]
      })
      const refused = yield* limiter.consume("k", 50)
      assert.strictEqual(refused.allowed, false)
      assert.isFalse(Duration.isFinite(refused.retryAfter))
      const headers = RateLimitHeaders.fromDecision(refused)
      assert.strictEqual(headers["retry-after"], undefined)
      assert.match(headers["ratelimit-policy"] ?? "", /^"g";q=\d+;w=1$/)
    })
  )

  it.effect("quotaUnit for windowed policies; a concurrency policy is concurrent-requests without w", () =>
    Effect.gen(function* () {
      const limiter = yield* limiterOf({
        limits: [
          { algorithm: "fixed-window", limit: 1000, window: "1 minute", name: "bytes" },
          { algorithm: "concurrency", limit: 4, name: "inflight" }
        ]
      })
      const decision = yield* limiter.check("k", 1)
      assert.strictEqual(
        RateLimitHeaders.fromDecision(decision, { quotaUnit: "content-bytes" })["ratelimit-policy"],
        '"bytes";q=1000;qu="content-bytes";w=60, "inflight";q=4;qu="concurrent-requests"'
      )
    })
  )

  it.effect("allow- and deny-listed keys: no policies, no fields (deny: no Retry-After, the wait is infinite)", () =>
    Effect.gen(function* () {
      const limiter = yield* limiterOf({
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }],
        allow: ["ops"],
        deny: ["abuser"]
      })
      assert.deepStrictEqual(RateLimitHeaders.fromDecision(yield* limiter.consume("ops")), {})
      assert.deepStrictEqual(RateLimitHeaders.fromDecision(yield* limiter.consume("abuser")), {})
    })
  )
})
