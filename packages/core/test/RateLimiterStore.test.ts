import { assert, describe, it } from "@effect/vitest"
import { RateLimiter } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { remoteOverMemory, suite } from "./RateLimiterStoreSuite.ts"

suite("memory", RateLimiter.layerStoreMemory())
suite("memory through the remote interface", remoteOverMemory)

/** A remote store whose every operation fails, counting the calls it gets. */
const failing = (calls: { n: number }): Layer.Layer<RateLimiter.RateLimiterStore> =>
  Layer.succeed(
    RateLimiter.RateLimiterStore,
    RateLimiter.RateLimiterStore.of({
      compile: (limit, maxKeys) => RateLimiter.compileSpec(RateLimiter.limitSpec(limit), maxKeys),
      remote: (options) => {
        const down = (key: string) =>
          Effect.suspend(() => {
            calls.n++
            return Effect.fail(
              new RateLimiter.RateLimiterStoreError({ limiter: options.name, key, message: "connection refused" })
            )
          })
        return Effect.succeed({
          decide: (key) => down(key),
          refund: (key) => down(key),
          penalize: (key) => down(key),
          release: (key) => down(key)
        })
      }
    })
  )

describe("RateLimiter over a remote store that fails", () => {
  it.effect("onStoreError allow (the default): requests pass and are counted as store errors", () =>
    Effect.gen(function* () {
      const calls = { n: 0 }
      const limiter = yield* RateLimiter.make({
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
      }).pipe(Effect.provide(failing(calls)))
      const passed = yield* limiter.consume("k")
      assert.deepStrictEqual([passed.allowed, passed.storeError], [true, false])
      assert.strictEqual(yield* RateLimiter.limit(Effect.succeed("ran"), limiter, { key: "k" }), "ran")
      yield* limiter.penalize("k", 1)
      assert.strictEqual((yield* limiter.stats).storeErrors, 3)
      assert.strictEqual(calls.n, 3)
    }).pipe(Effect.scoped)
  )

  it.effect("onStoreError fail: limit fails with RateLimiterStoreError, consume refuses with policy store-error", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        name: "strict",
        onStoreError: "fail",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
      }).pipe(Effect.provide(failing({ n: 0 })))
      const error = yield* Effect.flip(RateLimiter.limit(Effect.succeed("never"), limiter, { key: "k" }))
      assert.strictEqual(error.reason._tag, "RateLimiterStoreError")
      assert.deepStrictEqual(
        error.reason._tag === "RateLimiterStoreError" ? [error.reason.limiter, error.reason.key] : [],
        ["strict", "k"]
      )
      const refused = yield* limiter.consume("k")
      assert.deepStrictEqual([refused.allowed, refused.policy, refused.storeError], [false, "store-error", true])
    }).pipe(Effect.scoped)
  )

  it.effect("allow and deny lists decide without the store", () =>
    Effect.gen(function* () {
      const calls = { n: 0 }
      const limiter = yield* RateLimiter.make({
        allow: ["vip"],
        deny: ["banned"],
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
      }).pipe(Effect.provide(failing(calls)))
      assert.isTrue((yield* limiter.consume("vip")).allowed)
      assert.deepStrictEqual((yield* limiter.consume("banned")).policy, "deny")
      assert.strictEqual(calls.n, 0)
    }).pipe(Effect.scoped)
  )
})
