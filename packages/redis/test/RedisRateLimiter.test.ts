import { assert, describe, it } from "@effect/vitest"
import { RateLimiter } from "@effect-resilience/core"
import { IoRedis, RedisRateLimiter } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import { TestClock } from "effect/testing"
import { suite } from "../../core/test/RateLimiterStoreSuite.ts"
import * as fixtures from "./fixtures.ts"

/** One server (and one cluster) for the whole file, started before the cases. */
const standalone = fixtures.standalone()
const cluster = fixtures.cluster()

/**
 * Waits for real (Redis keeps its own time) and moves the test clock as far,
 * so the limiter's in-process bookkeeping (held refusals) sees the same time.
 */
const wait = (duration: Duration.Input) =>
  Effect.andThen(TestClock.withLive(Effect.sleep(duration)), TestClock.adjust(duration))

/** Redis keeps its own time: the cases wait for real, early in a window. */
const realTime = (connection: Layer.Layer<Redis.Redis>) => ({
  adjust: wait,
  windowMillis: 400,
  align: (windowMillis: number) =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const [seconds, micros] = yield* Effect.orDie(redis.send<ReadonlyArray<string>>("TIME"))
      const into = (Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)) % windowMillis
      if (into > windowMillis / 4) yield* wait(Duration.millis(windowMillis - into + 2))
    }).pipe(Effect.provide(connection))
})

suite("Redis", RedisRateLimiter.layerStore().pipe(Layer.provide(standalone)), realTime(standalone))
suite("Redis Cluster", RedisRateLimiter.layerStore().pipe(Layer.provide(cluster)), realTime(cluster))

const unique = fixtures.unique

describe("RedisRateLimiter: what only Redis does", () => {
  it.effect("limiters in two processes (two connections) share one quota", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.RedisServer
      const name = unique("shared")
      const limiterOn = () =>
        Effect.flatMap(
          Layer.build(
            RedisRateLimiter.layerStore().pipe(
              Layer.provide(IoRedis.layer({ host: server.host, port: server.port })),
              Layer.orDie
            )
          ),
          (store) =>
            RateLimiter.make({ name, limits: [{ algorithm: "gcra", limit: 4, window: "1 minute" }] }).pipe(
              Effect.provide(store)
            )
        )
      const first = yield* limiterOn()
      const second = yield* limiterOn()
      const decisions = []
      for (let i = 0; i < 3; i++) {
        decisions.push((yield* first.consume("client")).allowed, (yield* second.consume("client")).allowed)
      }
      assert.deepStrictEqual(decisions, [true, true, true, true, false, false])
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("time is Redis TIME: a client clock decades off changes nothing", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(1990, 0, 1))
      const limiter = yield* RateLimiter.make({
        name: unique("skew"),
        limits: [{ algorithm: "sliding-log", limit: 1, window: "200 millis" }]
      }).pipe(Effect.provide(RedisRateLimiter.layerStore().pipe(Layer.provide(standalone))))
      assert.isTrue((yield* limiter.consume("k")).allowed)
      const refused = yield* limiter.consume("k")
      assert.isFalse(refused.allowed)
      assert.isTrue(Duration.toMillis(refused.retryAfter) <= 200)
      yield* wait("210 millis")
      assert.isTrue((yield* limiter.consume("k")).allowed)
    }).pipe(Effect.scoped)
  )

  it.effect("one hash per limiter and key, expiring with its longest limit; idle states are deleted", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const name = unique("layout")
      const limiter = yield* RateLimiter.make({
        name,
        limits: [
          { algorithm: "fixed-window", limit: 5, window: "300 millis", name: "short" },
          { algorithm: "token-bucket", limit: 5, window: "1 minute", name: "long" }
        ]
      }).pipe(Effect.provide(RedisRateLimiter.layerStore({ prefix: "layout:" })))
      yield* limiter.consume("k")
      const key = `layout:{${name}:k}`
      assert.deepStrictEqual([...(yield* redis.send<ReadonlyArray<string>>("HKEYS", key))].sort(), [
        "0:long:tokenBucket",
        "0:short:fixedWindow"
      ])
      const ttl = yield* redis.send<number>("PTTL", key)
      // the longest limit's time to idle (a token bucket's covers a full debt: two windows)
      assert.isTrue(ttl > 60_000 && ttl <= 120_000, `ttl ${ttl}`)
      // the refund puts both limits back to fresh: their states are dropped, and the key with them
      yield* limiter.reward("k", 1)
      assert.strictEqual(yield* redis.send<number>("EXISTS", key), 0)
      assert.strictEqual((yield* limiter.check("k", 5)).allowed, true)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("policy names with colons, braces and characters of several bytes reach their fields whole", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const name = unique("names")
      const limiter = yield* RateLimiter.make({
        name,
        limits: [
          { algorithm: "fixed-window", limit: 1, window: "1 minute", name: "a:1:{b}" },
          { algorithm: "gcra", limit: 5, window: "1 minute", name: "Ünïcødé ✓ 限流" }
        ]
      }).pipe(Effect.provide(RedisRateLimiter.layerStore({ prefix: "names:" })))
      assert.isTrue((yield* limiter.consume("k")).allowed)
      const refused = yield* limiter.consume("k")
      assert.isFalse(refused.allowed)
      assert.strictEqual(refused.policy, "a:1:{b}")
      assert.deepStrictEqual([...(yield* redis.send<ReadonlyArray<string>>("HKEYS", `names:{${name}:k}`))].sort(), [
        "0:a:1:{b}:fixedWindow",
        "0:Ünïcødé ✓ 限流:gcra"
      ])
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("a changed limit (another policy name) starts from a fresh state", () =>
    Effect.gen(function* () {
      const name = unique("changed")
      const store = RedisRateLimiter.layerStore().pipe(Layer.provide(standalone))
      const before = yield* RateLimiter.make({
        name,
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
      }).pipe(Effect.provide(store))
      yield* before.consume("k")
      assert.isFalse((yield* before.consume("k")).allowed)
      const after = yield* RateLimiter.make({
        name,
        limits: [{ algorithm: "fixed-window", limit: 2, window: "1 minute" }]
      }).pipe(Effect.provide(store))
      assert.isTrue((yield* after.consume("k")).allowed)
    }).pipe(Effect.scoped)
  )

  it.effect("while Redis is down: requests pass (onStoreError allow), or limit fails with RateLimiterStoreError", () =>
    Effect.gen(function* () {
      const node = yield* RedisServer.startServer()
      const store = yield* Layer.build(
        RedisRateLimiter.layerStore().pipe(
          Layer.provide(IoRedis.layer({ host: node.host, port: node.port, enableOfflineQueue: false })),
          Layer.orDie
        )
      )
      const limits = [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }] as const
      const open = yield* RateLimiter.make({ name: unique("open"), limits }).pipe(Effect.provide(store))
      const strict = yield* RateLimiter.make({ name: unique("strict"), limits, onStoreError: "fail" }).pipe(
        Effect.provide(store)
      )
      assert.isTrue((yield* open.consume("k")).allowed)
      assert.isFalse((yield* open.consume("k")).allowed)
      yield* Effect.promise(() => RedisServer.rawCommand(node.port, "SHUTDOWN NOSAVE").catch(() => ""))
      assert.isTrue((yield* open.consume("other")).allowed)
      assert.strictEqual((yield* open.stats).storeErrors, 1)
      const error = yield* Effect.flip(RateLimiter.limit(Effect.void, strict, { key: "k" }))
      assert.strictEqual(error.reason._tag, "RateLimiterStoreError")
    }).pipe(Effect.scoped)
  )

  it.effect("layerStoreConfig reads the prefix from Config", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const name = unique("configured")
      const store = RedisRateLimiter.layerStoreConfig().pipe(
        Layer.provide(
          ConfigProvider.layer(ConfigProvider.fromEnv({ env: { RATE_LIMITER_STORE_PREFIX: "configured:" } }))
        )
      )
      const limiter = yield* RateLimiter.make({
        name,
        limits: [{ algorithm: "fixed-window", limit: 2, window: "1 minute" }]
      }).pipe(Effect.provide(store))
      yield* limiter.consume("k")
      assert.strictEqual(yield* redis.send<number>("EXISTS", `configured:{${name}:k}`), 1)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect(
    "a process that dies holding concurrency permits: they come back once the lease runs out, never twice",
    () =>
      Effect.gen(function* () {
        const name = unique("lease")
        const store = yield* RedisRateLimiter.makeStore({ permitLease: "100 millis" })
        const remote = store.remote
        if (remote === undefined) return assert.fail("the Redis store is remote")
        const limits = yield* remote({
          name,
          tiers: [[RateLimiter.limitSpec({ algorithm: "concurrency", limit: 1 })]]
        })
        const admitted = (permit: string) =>
          Effect.map(limits.decide("k", 0, 1, true, permit), (outs) => outs[0]?.allowed)
        // a call takes the permit, and its process dies: no release, no renewal
        assert.isTrue(yield* admitted("ghost"))
        assert.isFalse(yield* admitted("second"))
        yield* wait("120 millis")
        // the ghost's lease ran out: its permit came back
        assert.isTrue(yield* admitted("third"))
        // the ghost's release, late, gives back nothing: the third call still holds the only permit
        yield* limits.release("k", 0, 1, "ghost")
        assert.isFalse(yield* admitted("fourth"))
        yield* limits.release("k", 0, 1, "third")
        assert.isTrue(yield* admitted("fifth"))
      }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("a call longer than the lease keeps its permits: the limiter renews them while it runs", () =>
    Effect.gen(function* () {
      const name = unique("renewed")
      const store = RedisRateLimiter.layerStore({ permitLease: "150 millis" }).pipe(Layer.provide(standalone))
      const limiter = yield* RateLimiter.make({ name, limits: [{ algorithm: "concurrency", limit: 1 }] }).pipe(
        Effect.provide(store)
      )
      const other = yield* RateLimiter.make({ name, limits: [{ algorithm: "concurrency", limit: 1 }] }).pipe(
        Effect.provide(store)
      )
      const long = yield* Effect.forkChild(
        RateLimiter.limit(TestClock.withLive(Effect.sleep("450 millis")), limiter, { key: "k" }),
        { startImmediately: true }
      )
      // keep the test clock moving with real time, so the renewals (on the limiter's clock) run
      for (let i = 0; i < 3; i++) {
        yield* wait("120 millis")
        const error = yield* Effect.flip(RateLimiter.limit(Effect.void, other, { key: "k" }))
        assert.strictEqual(error.reason._tag, "RateLimitExceeded", `still held after ${(i + 1) * 120} ms`)
      }
      yield* Fiber.join(long)
      yield* RateLimiter.limit(Effect.void, other, { key: "k" })
    }).pipe(Effect.scoped)
  )
})
