/**
 * The `RateLimiterStore` contract as a reusable suite: every store (memory,
 * memory through the remote interface, Redis and Redis Cluster in
 * @effect-resilience/redis) runs the same cases through a `RateLimiter`, so
 * the in-process and remote paths cannot drift.
 *
 * Time: the cases move time with `TestClock.adjust`; a store that reads
 * another clock (Redis `TIME`) passes `adjust` that waits for real instead,
 * and a `window` short enough to do so.
 */
import { assert, describe, it } from "@effect/vitest"
import { RateLimiter } from "@effect-resilience/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { TestClock } from "effect/testing"
import * as engine from "../src/internal/rateLimiter.ts"

export interface SuiteOptions {
  /** Moves the store's time forward. */
  readonly adjust?: ((duration: Duration.Input) => Effect.Effect<void>) | undefined
  /** The window the cases use, in ms (short for stores on real time). */
  readonly windowMillis?: number | undefined
  /**
   * Waits until the store's time is early in a window aligned to
   * `windowMillis` (fixed windows restart at multiples of it), so a case's
   * requests fall in one window. Time under `TestClock` starts aligned.
   */
  readonly align?: ((windowMillis: number) => Effect.Effect<void>) | undefined
}

/**
 * The memory store behind the remote interface: the limiter takes the path a
 * Redis store uses (one effectful decision per request over all of a key's
 * limits), over state it can inspect.
 */
export const remoteOverMemory: Layer.Layer<RateLimiter.RateLimiterStore> = Layer.effect(
  RateLimiter.RateLimiterStore,
  Effect.map(RateLimiter.RateLimiterStore, (memory) =>
    RateLimiter.RateLimiterStore.of({
      compile: memory.compile,
      // the remote interface, over compiled limits of its own
      remote: (options) =>
        Effect.sync(() => {
          const tiers = options.tiers.map((specs) => specs.map((spec) => RateLimiter.compileSpec(spec, 100_000)))
          const limitsOf = (tier: number) => tiers[tier] ?? []
          return {
            decide: (key, tier, cost, commit) =>
              Effect.clockWith((clock) =>
                Effect.sync(() => {
                  const at = clock.currentTimeMillisUnsafe()
                  const limits = limitsOf(tier)
                  const outs = limits.map(() => engine.makeDecision())
                  if (limits.length === 1) {
                    const [only] = limits
                    const [out] = outs
                    if (only !== undefined && out !== undefined) {
                      if (commit) only.consume(key, at, cost, out)
                      else only.check(key, at, cost, out)
                    }
                    return outs
                  }
                  limits.forEach((l, i) => {
                    const out = outs[i]
                    if (out !== undefined) l.check(key, at, cost, out)
                  })
                  if (commit && outs.every((o) => o.allowed)) {
                    limits.forEach((l, i) => {
                      const out = outs[i]
                      if (out !== undefined) l.consume(key, at, cost, out)
                    })
                  }
                  return outs
                })
              ),
            refund: (key, tier, cost) =>
              Effect.clockWith((clock) =>
                Effect.sync(() => {
                  for (const l of limitsOf(tier)) l.refund(key, clock.currentTimeMillisUnsafe(), cost)
                })
              ),
            penalize: (key, tier, cost) =>
              Effect.clockWith((clock) =>
                Effect.sync(() => {
                  for (const l of limitsOf(tier)) l.penalize(key, clock.currentTimeMillisUnsafe(), cost)
                })
              ),
            release: (key, tier, cost) =>
              Effect.sync(() => {
                for (const l of limitsOf(tier)) if (l.concurrency) l.release(key, cost)
              })
          } satisfies RateLimiter.RemoteLimits
        })
    })
  )
).pipe(Layer.provide(RateLimiter.layerStoreMemory()))

/**
 * Registers the conformance cases for a store layer.
 */
export const suite = (
  name: string,
  layer: Layer.Layer<RateLimiter.RateLimiterStore>,
  options: SuiteOptions = {}
): void => {
  const adjust = options.adjust ?? TestClock.adjust
  const windowMillis = options.windowMillis ?? 10_000
  const align = () => (options.align === undefined ? Effect.void : options.align(windowMillis))
  const window = Duration.millis(windowMillis)
  const make = (input: RateLimiter.Input) =>
    RateLimiter.make({ name: `suite-${Math.random().toString(36).slice(2)}`, ...input }).pipe(Effect.provide(layer))
  const key = () => `k-${Math.random().toString(36).slice(2)}`
  const allowedOf = (limiter: RateLimiter.RateLimiter, k: string, n: number, cost = 1) =>
    Effect.map(
      Effect.forEach(Array.from({ length: n }), () => limiter.consume(k, cost)),
      (decisions) => decisions.filter((d) => d.allowed).length
    )

  describe(`RateLimiterStore conformance: ${name}`, () => {
    it.effect("a fixed window: limit per window, then refused with the time left; the next window allows again", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({ limits: [{ algorithm: "fixed-window", limit: 3, window, name: "w" }] })
          const k = key()
          yield* align()
          const first = yield* limiter.consume(k)
          assert.deepStrictEqual([first.allowed, first.policy, first.limit, first.remaining], [true, "w", 3, 2])
          assert.strictEqual(yield* allowedOf(limiter, k, 5), 2)
          const refused = yield* limiter.consume(k)
          assert.isFalse(refused.allowed)
          const retryAfter = Duration.toMillis(refused.retryAfter)
          assert.isTrue(retryAfter > 0 && retryAfter <= windowMillis, `retryAfter ${retryAfter}`)
          yield* adjust(Duration.millis(windowMillis))
          assert.isTrue((yield* limiter.consume(k)).allowed)
        })
      )
    )

    it.effect("every algorithm allows its limit, then refuses", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limits: ReadonlyArray<RateLimiter.LimitInput> = [
            { algorithm: "fixed-window", limit: 2, window },
            { algorithm: "sliding-window", limit: 2, window },
            { algorithm: "sliding-log", limit: 2, window },
            { algorithm: "token-bucket", limit: 2, window },
            { algorithm: "gcra", limit: 2, window },
            { algorithm: "leaky-bucket", capacity: 2, leakPerSecond: 2_000 / windowMillis }
          ]
          for (const limit of limits) {
            yield* align()
            const limiter = yield* make({ limits: [limit] })
            const k = key()
            assert.strictEqual(yield* allowedOf(limiter, k, 4), 2, limit.algorithm)
            const refused = yield* limiter.consume(k)
            assert.isFalse(refused.allowed, limit.algorithm)
            assert.isTrue(Duration.toMillis(refused.retryAfter) > 0, limit.algorithm)
          }
        })
      )
    )

    it.effect("check decides without charging; weighted costs count their weight", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({ limits: [{ algorithm: "token-bucket", limit: 10, window }] })
          const k = key()
          for (let i = 0; i < 5; i++) assert.isTrue((yield* limiter.check(k, 10)).allowed)
          assert.strictEqual((yield* limiter.consume(k, 7)).remaining, 3)
          assert.isFalse((yield* limiter.check(k, 4)).allowed)
          assert.isTrue((yield* limiter.consume(k, 3)).allowed)
          assert.isFalse((yield* limiter.consume(k, 1)).allowed)
        })
      )
    )

    it.effect("several limits: all must pass, and a refusal by one charges none", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({
            limits: [
              { algorithm: "fixed-window", limit: 10, window, name: "wide" },
              { algorithm: "fixed-window", limit: 2, window, name: "narrow" }
            ]
          })
          const k = key()
          yield* align()
          assert.strictEqual(yield* allowedOf(limiter, k, 5), 2)
          const refused = yield* limiter.consume(k)
          assert.deepStrictEqual([refused.allowed, refused.policy], [false, "narrow"])
          // nothing charged by the refusal: the wide limit reports what it holds
          assert.deepStrictEqual(
            refused.policies.map((p) => [p.policy, p.allowed, p.remaining]),
            [
              ["wide", true, 8],
              ["narrow", false, 0]
            ]
          )
          const wide = (yield* limiter.check(k)).policies.find((p) => p.policy === "wide")
          // a check the narrow limit refuses: the wide limit, charged for the two allowed requests only, holds 8
          assert.strictEqual(wide?.remaining, 8)
        })
      )
    )

    it.effect("penalize takes, reward gives back", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({ limits: [{ algorithm: "fixed-window", limit: 5, window }] })
          const k = key()
          yield* align()
          yield* limiter.penalize(k, 4)
          // remaining counts the request checked: 5 - 4 - 1
          assert.strictEqual((yield* limiter.check(k)).remaining, 0)
          yield* limiter.reward(k, 3)
          assert.strictEqual((yield* limiter.check(k)).remaining, 3)
        })
      )
    )

    it.effect("tiers have their own limits and state; limiters never share state", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({
            limits: [{ algorithm: "fixed-window", limit: 1, window }],
            tiers: { premium: [{ algorithm: "fixed-window", limit: 3, window }] },
            tierOf: (k) => (k.startsWith("premium") ? "premium" : undefined)
          })
          const suffix = key()
          yield* align()
          assert.strictEqual(yield* allowedOf(limiter, `free-${suffix}`, 5), 1)
          assert.strictEqual(yield* allowedOf(limiter, `premium-${suffix}`, 5), 3)
          const other = yield* make({ limits: [{ algorithm: "fixed-window", limit: 1, window }] })
          assert.strictEqual(yield* allowedOf(other, `free-${suffix}`, 5), 1)
        })
      )
    )

    it.effect("concurrency: permits held while the call runs, released on exit and on interruption", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({ limits: [{ algorithm: "concurrency", limit: 1 }] })
          const k = key()
          const started = yield* Deferred.make<void>()
          const gate = yield* Deferred.make<void>()
          const held = RateLimiter.limit(
            Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(gate)),
            limiter,
            { key: k }
          )
          const running = yield* Effect.forkChild(held)
          yield* Deferred.await(started)
          const refused = yield* Effect.flip(RateLimiter.limit(Effect.void, limiter, { key: k }))
          assert.strictEqual(refused.reason._tag, "RateLimitExceeded")
          yield* Fiber.interrupt(running)
          // the interrupted call gave its permit back
          yield* RateLimiter.limit(Effect.void, limiter, { key: k })
          assert.isTrue((yield* limiter.check(k)).allowed)
        })
      )
    )

    it.effect("shape mode: a refused request waits in line and runs once its window allows it", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({
            mode: "shape",
            maxWait: Duration.millis(3 * windowMillis),
            limits: [{ algorithm: "fixed-window", limit: 1, window }]
          })
          const k = key()
          yield* align()
          assert.strictEqual(yield* RateLimiter.limit(Effect.succeed("first"), limiter, { key: k }), "first")
          const second = yield* Effect.forkChild(RateLimiter.limit(Effect.succeed("second"), limiter, { key: k }))
          yield* Effect.yieldNow
          assert.isUndefined(second.pollUnsafe())
          yield* adjust(Duration.millis(windowMillis))
          assert.strictEqual(yield* Fiber.join(second), "second")
        })
      )
    )

    it.effect("limit fails with RateLimitExceeded carrying the deciding policy and retryAfter", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const limiter = yield* make({ limits: [{ algorithm: "gcra", limit: 1, window, name: "g" }] })
          const k = key()
          assert.strictEqual(yield* RateLimiter.limit(Effect.succeed("ok"), limiter, { key: k }), "ok")
          const error = yield* Effect.flip(RateLimiter.limit(Effect.succeed("no"), limiter, { key: k }))
          assert.strictEqual(error.reason._tag, "RateLimitExceeded")
          if (error.reason._tag === "RateLimitExceeded") {
            assert.strictEqual(error.reason.policy, "g")
            assert.isTrue(Duration.toMillis(error.reason.retryAfter) > 0)
          }
        })
      )
    )
  })
}
