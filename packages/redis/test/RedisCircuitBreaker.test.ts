import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "@effect-resilience/core"
import { IoRedis, RedisCircuitBreaker } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import { TestClock } from "effect/testing"
import { config, suite } from "../../core/test/CircuitBreakerStoreSuite.ts"
import * as fixtures from "./fixtures.ts"

const standalone = fixtures.standalone()
const cluster = fixtures.cluster()

/** Redis keeps its own time: the cases wait for real, briefly. */
const realTime = {
  adjust: (duration: Duration.Input) => TestClock.withLive(Effect.sleep(duration)),
  openMillis: 150
}

suite("Redis", RedisCircuitBreaker.layerStore().pipe(Layer.provide(standalone)), realTime)
suite("Redis Cluster", RedisCircuitBreaker.layerStore().pipe(Layer.provide(cluster)), realTime)

class Boom extends Data.TaggedError("Boom") {}

const unique = fixtures.unique

/** A store's circuits for one breaker, on the shared standalone server. */
const circuitsOn = (store: RedisCircuitBreaker.StoreOptions, overrides: Partial<CircuitBreaker.CircuitsOptions> = {}) =>
  Effect.flatMap(RedisCircuitBreaker.makeStore(store), (s) =>
    s.circuits({
      name: unique("backend"),
      config: config({ consecutiveFailures: 1, halfOpenPermittedCalls: 1, halfOpenSuccessesToClose: 1 }),
      openMillisFor: () => 100,
      initialState: "Closed",
      maxKeys: 1000,
      idleTimeToLiveMillis: 3_600_000,
      ...overrides
    })
  )

const wait = (millis: number) => TestClock.withLive(Effect.sleep(Duration.millis(millis)))

describe("RedisCircuitBreaker: what only Redis does", () => {
  it.effect("breakers in two processes (two connections) share one circuit: one trips it, the other rejects", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.RedisServer
      const name = unique("shared")
      // each breaker on a connection of its own, open for the whole test
      const breakerOn = (connection: Layer.Layer<Redis.Redis, unknown>) =>
        Effect.flatMap(
          Layer.build(RedisCircuitBreaker.layerStore().pipe(Layer.provide(connection), Layer.orDie)),
          (store) =>
            CircuitBreaker.make({ name, consecutiveFailures: 2, openDuration: "1 minute" }).pipe(Effect.provide(store))
        )
      const first = yield* breakerOn(IoRedis.layer({ host: server.host, port: server.port }))
      const second = yield* breakerOn(IoRedis.layer({ host: server.host, port: server.port }))
      yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), first))
      // one failure from each process: the circuit counts both
      yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), second))
      const rejected = yield* Effect.flip(CircuitBreaker.protect(Effect.succeed(1), first))
      assert.strictEqual(rejected._tag === "CircuitBreakerError" ? rejected.reason._tag : "", "CircuitOpen")
      assert.strictEqual((yield* second.state())._tag, "Open")
      yield* second.reset()
      assert.strictEqual(yield* CircuitBreaker.protect(Effect.succeed("again"), first), "again")
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("time is Redis TIME: a client clock decades off changes no open time", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(2100, 0, 1))
      const c = yield* circuitsOn({})
      const admitted = yield* c.admit("k")
      const opened = yield* c.record({
        key: "k",
        generation: admitted.generation,
        outcome: "Failure",
        durationMillis: 0,
        hintMillis: 0
      })
      assert.strictEqual(opened?.to, "Open")
      const rejected = yield* c.admit("k")
      assert.strictEqual(rejected.verdict, "RejectOpen")
      assert.isTrue(rejected.retryAfterMillis > 0 && rejected.retryAfterMillis <= 100)
      yield* wait(110)
      assert.strictEqual((yield* c.admit("k")).verdict, "Probe")
    }).pipe(Effect.provide(standalone))
  )

  it.effect(
    "state() and metrics() read on the client's clock: a clock decades off still sees the true retryAfter",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.UTC(2100, 0, 1))
        const server = yield* RedisServer.RedisServer
        const store = yield* Layer.build(
          RedisCircuitBreaker.layerStore().pipe(
            Layer.provide(IoRedis.layer({ host: server.host, port: server.port })),
            Layer.orDie
          )
        )
        const breaker = yield* CircuitBreaker.make({
          name: unique("skewed"),
          consecutiveFailures: 1,
          openDuration: "1 minute",
          ...CircuitBreaker.timeRate({ threshold: 0.5, window: "10 seconds", buckets: 10, minimumCalls: 5 })
        }).pipe(Effect.provide(store))
        yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), breaker))
        const state = yield* breaker.state()
        // the circuit opened on Redis time; read against the client's clock 74 years ahead it would be long over
        assert.strictEqual(state._tag, "Open")
        const retryAfter = state._tag === "Open" ? Duration.toMillis(state.retryAfter) : 0
        assert.isTrue(retryAfter > 55_000 && retryAfter <= 60_000, `retryAfter ${retryAfter}`)
        // a time window's bucket is the current one on the client's clock too: a call just made still counts
        yield* CircuitBreaker.protect(Effect.succeed("ok"), breaker, { key: "other" })
        const metrics = yield* breaker.metrics("other")
        assert.deepStrictEqual([metrics.bufferedCalls, metrics.failedCalls], [1, 0])
      }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("a probe lost with its process: its slot is freed once its lease runs out, its late outcome dropped", () =>
    Effect.gen(function* () {
      const c = yield* circuitsOn({ probeLease: Duration.millis(100) })
      const admitted = yield* c.admit("k")
      yield* c.record({
        key: "k",
        generation: admitted.generation,
        outcome: "Failure",
        durationMillis: 0,
        hintMillis: 0
      })
      yield* wait(110)
      const lost = yield* c.admit("k")
      assert.strictEqual(lost.verdict, "Probe")
      assert.strictEqual((yield* c.admit("k")).verdict, "RejectHalfOpen")
      yield* wait(110)
      const next = yield* c.admit("k")
      assert.strictEqual(next.verdict, "Probe")
      assert.notStrictEqual(next.generation, lost.generation)
      // the lost probe reports at last: dropped, the circuit stays half-open
      const late = yield* c.record({
        key: "k",
        generation: lost.generation,
        outcome: "Failure",
        durationMillis: 0,
        hintMillis: 0
      })
      assert.strictEqual(late, undefined)
      assert.strictEqual((yield* c.read("k")).state, "HalfOpen")
      const closed = yield* c.record({
        key: "k",
        generation: next.generation,
        outcome: "Success",
        durationMillis: 0,
        hintMillis: 0
      })
      assert.deepStrictEqual([closed?.from, closed?.to], ["HalfOpen", "Closed"])
    }).pipe(Effect.provide(standalone))
  )

  it.effect("an opening's duration is asked of the breaker only when a circuit opens", () =>
    Effect.gen(function* () {
      const asked: Array<number> = []
      const c = yield* circuitsOn(
        {},
        {
          config: config({ consecutiveFailures: 5 }),
          openMillisFor: (n) => {
            asked.push(n)
            return 100 * n
          }
        }
      )
      for (let i = 0; i < 4; i++) {
        const a = yield* c.admit("k")
        yield* c.record({ key: "k", generation: a.generation, outcome: "Failure", durationMillis: 0, hintMillis: 0 })
      }
      assert.deepStrictEqual(asked, [])
      const a = yield* c.admit("k")
      const opened = yield* c.record({
        key: "k",
        generation: a.generation,
        outcome: "Failure",
        durationMillis: 0,
        hintMillis: 0
      })
      assert.deepStrictEqual(asked, [1])
      assert.deepStrictEqual([opened?.to, opened?.openMillis, opened?.consecutiveOpenings], ["Open", 100, 1])
    }).pipe(Effect.provide(standalone))
  )

  it.effect("idle circuits expire in Redis; a ForcedOpen one stays until forced otherwise", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const name = unique("idle")
      const c = yield* circuitsOn({ prefix: "idle:" }, { name, idleTimeToLiveMillis: 150 })
      yield* c.admit("idle")
      yield* c.force("forced", "ForcedOpen")
      const ttl = yield* redis.send<number>("PTTL", `idle:{${name}}:c:idle`)
      assert.isTrue(ttl > 0 && ttl <= 150, `ttl ${ttl}`)
      assert.strictEqual(yield* redis.send<number>("PTTL", `idle:{${name}}:c:forced`), -1)
      yield* wait(200)
      assert.strictEqual(yield* redis.send<number>("EXISTS", `idle:{${name}}:c:idle`), 0)
      assert.strictEqual(yield* c.size, 1)
      assert.strictEqual((yield* c.admit("forced")).verdict, "RejectForced")
    }).pipe(Effect.provide(standalone))
  )

  it.effect("a script refuses bad arguments before writing: the call fails with CircuitBreakerStoreError", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const name = unique("bad")
      const c = yield* circuitsOn({ prefix: "bad:" }, { name, config: config({ windowSize: 0 }) })
      const error = yield* Effect.flip(c.admit("k"))
      assert.strictEqual(error.reason._tag, "CircuitBreakerStoreError")
      assert.include(error.reason._tag === "CircuitBreakerStoreError" ? error.reason.message : "", "windowSize")
      assert.strictEqual(yield* redis.send<number>("EXISTS", `bad:{${name}}:c:k`), 0)
    }).pipe(Effect.provide(standalone))
  )

  it.effect("a snapshot taken over Redis restores into an in-memory breaker, and back", () =>
    Effect.gen(function* () {
      const name = unique("moved")
      const options = { name, consecutiveFailures: 1, openDuration: "1 minute" } as const
      const overRedis = yield* CircuitBreaker.make(options).pipe(
        Effect.provide(RedisCircuitBreaker.layerStore().pipe(Layer.provide(standalone), Layer.orDie))
      )
      yield* Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), overRedis, { key: "tenant-1" }))
      const snapshot = yield* overRedis.snapshot
      const inMemory = yield* CircuitBreaker.make(options).pipe(Effect.provide(CircuitBreaker.layerStoreMemory()))
      yield* inMemory.restore(snapshot)
      assert.strictEqual((yield* inMemory.state("tenant-1"))._tag, "Open")
      const again = yield* CircuitBreaker.make({ ...options, name: unique("back") }).pipe(
        Effect.provide(RedisCircuitBreaker.layerStore().pipe(Layer.provide(standalone), Layer.orDie))
      )
      yield* again.restore(yield* inMemory.snapshot)
      assert.strictEqual((yield* again.state("tenant-1"))._tag, "Open")
    }).pipe(Effect.scoped)
  )

  it.effect(
    "while Redis is down, calls run unrecorded (onStoreError allow, the default) or fail with CircuitBreakerStoreError",
    () =>
      Effect.gen(function* () {
        const node = yield* RedisServer.startServer()
        const store = yield* Layer.build(
          RedisCircuitBreaker.layerStore().pipe(
            // fail fast while disconnected instead of queueing commands until a reconnection
            Layer.provide(IoRedis.layer({ host: node.host, port: node.port, enableOfflineQueue: false })),
            Layer.orDie
          )
        )
        const allow = yield* CircuitBreaker.make({ name: unique("allow"), consecutiveFailures: 1 }).pipe(
          Effect.provide(store)
        )
        const strict = yield* CircuitBreaker.make({
          name: unique("strict"),
          consecutiveFailures: 1,
          onStoreError: "fail"
        }).pipe(Effect.provide(store))
        assert.strictEqual(yield* CircuitBreaker.protect(Effect.succeed("up"), allow), "up")
        yield* Effect.promise(() => RedisServer.rawCommand(node.port, "SHUTDOWN NOSAVE").catch(() => ""))
        assert.strictEqual(yield* CircuitBreaker.protect(Effect.succeed("ran"), allow), "ran")
        assert.isAtLeast((yield* allow.stats).storeErrors, 1)
        const error = yield* Effect.flip(CircuitBreaker.protect(Effect.succeed("never"), strict))
        assert.strictEqual(error._tag === "CircuitBreakerError" ? error.reason._tag : error, "CircuitBreakerStoreError")
      }).pipe(Effect.scoped)
  )

  it.effect("layerStoreConfig reads the prefix and the probe lease from Config", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const name = unique("configured")
      const store = RedisCircuitBreaker.layerStoreConfig().pipe(
        Layer.provide(
          ConfigProvider.layer(
            ConfigProvider.fromEnv({
              env: { CIRCUIT_BREAKER_STORE_PREFIX: "configured:", CIRCUIT_BREAKER_STORE_PROBE_LEASE: "100 millis" }
            })
          )
        )
      )
      const c = yield* Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (s) =>
        s.circuits({
          name,
          config: config({ consecutiveFailures: 1, halfOpenPermittedCalls: 1 }),
          openMillisFor: () => 50,
          initialState: "Closed",
          maxKeys: 10,
          idleTimeToLiveMillis: 60_000
        })
      ).pipe(Effect.provide(store))
      const admitted = yield* c.admit("k")
      yield* c.record({
        key: "k",
        generation: admitted.generation,
        outcome: "Failure",
        durationMillis: 0,
        hintMillis: 0
      })
      assert.strictEqual(yield* redis.send<number>("EXISTS", `configured:{${name}}:c:k`), 1)
      yield* wait(60)
      assert.strictEqual((yield* c.admit("k")).verdict, "Probe")
      // the probe's lease (100 ms, from Config) runs out: its slot is free again
      yield* wait(110)
      assert.strictEqual((yield* c.admit("k")).verdict, "Probe")
    }).pipe(Effect.provide(standalone))
  )
})
