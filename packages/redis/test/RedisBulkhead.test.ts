/**
 * The Redis bulkhead store: the conformance suite (`BulkheadStoreSuite.ts`)
 * on a standalone server (each "process" on a connection of its own), on a
 * cluster and on a server without Redis functions (the scripts then run as
 * scripts), then what only Redis shows: the keys' layout, the scripts'
 * argument checks, options, Config and a server that goes away.
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead } from "@effect-resilience/core"
import { IoRedis, RedisBulkhead } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as ConfigProvider from "effect/ConfigProvider"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import { TestClock } from "effect/testing"
import { suite } from "../../core/test/BulkheadStoreSuite.ts"
import * as fixtures from "./fixtures.ts"

/** One server (and one cluster, and one server without functions) for the whole file, started before the cases. */
const standalone = fixtures.standalone()
const cluster = fixtures.cluster()
const withoutFunctions = fixtures.shared(
  Layer.unwrap(
    Effect.map(
      RedisServer.startServer([
        "--rename-command",
        "FCALL",
        "FCALL_OFF",
        "--rename-command",
        "FUNCTION",
        "FUNCTION_OFF"
      ]),
      (node) => IoRedis.layer({ host: node.host, port: node.port })
    )
  )
)

/**
 * Waits for real (Redis keeps its own time) and moves the test clock as far,
 * so the bulkheads' polls and renewals (on the test clock) run too.
 */
const wait = (duration: Duration.Input) =>
  Effect.andThen(TestClock.withLive(Effect.sleep(duration)), TestClock.adjust(duration))

/** Short leases and polls, so the suite's waits for real stay short. */
const suiteStore = { permitLease: "600 millis", pollInterval: "5 millis", maxPollInterval: "20 millis" } as const
const realTime = {
  leaseMillis: 600,
  adjust: wait,
  settle: TestClock.withLive(Effect.sleep("1 millis"))
} as const

suite(
  "Redis",
  // each build is a process: a connection of its own
  Layer.unwrap(
    Effect.map(RedisServer.RedisServer, (server) =>
      RedisBulkhead.layerStore(suiteStore).pipe(Layer.provide(IoRedis.layer({ host: server.host, port: server.port })))
    )
  ).pipe(Layer.provide(standalone)),
  realTime
)
suite("Redis Cluster", RedisBulkhead.layerStore(suiteStore).pipe(Layer.provide(cluster)), realTime)
suite("Redis without functions", RedisBulkhead.layerStore(suiteStore).pipe(Layer.provide(withoutFunctions)), realTime)

const unique = fixtures.unique

/** Forks `effect` and lets it run until it suspends (it holds its permit, or it waits). */
const start = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect, { startImmediately: true })
    yield* Effect.yieldNow
    return fiber
  })

/** A "process": its own connection to the server and its own store over it. */
const processStore = (options: RedisBulkhead.StoreOptions = {}) =>
  Effect.flatMap(RedisServer.RedisServer, (server) =>
    Layer.build(
      RedisBulkhead.layerStore(options).pipe(
        Layer.provide(IoRedis.layer({ host: server.host, port: server.port })),
        Layer.orDie
      )
    )
  )

/** Builds a bulkhead over a store context. */
const bulkheadOn = (store: Context.Context<never>, input: Bulkhead.Input) =>
  Bulkhead.make(input).pipe(Effect.provide(store))

/** The permits of bulkhead `name` in a store (what a bulkhead made over it uses), to play a process by hand. */
const permitsOf = (store: Bulkhead.BulkheadStore, name: string) =>
  store.remote === undefined ? Effect.die("the Redis store is remote") : store.remote({ name })

const keyOf = (name: string, key: string, prefix = "resilience:bh:") => `${prefix}{${name}:${key}}`

describe("RedisBulkhead: permits shared across processes", () => {
  it.effect("one sorted set per bulkhead and key, expiring with its last lease", () =>
    Effect.gen(function* () {
      const name = unique("layout")
      const redis = yield* Redis.Redis
      const bulkhead = yield* bulkheadOn(yield* processStore({ prefix: "layout:", permitLease: "10 seconds" }), {
        name,
        maxConcurrent: 4
      })
      const gate = yield* Deferred.make<void>()
      const call = yield* start(Bulkhead.isolate(Deferred.await(gate), bulkhead, { key: "tenant-1", cost: 3 }))
      yield* wait("20 millis")
      const key = keyOf(name, "tenant-1", "layout:")
      const members = yield* redis.send<ReadonlyArray<string>>("ZRANGE", key, "0", "-1")
      assert.strictEqual(members.length, 1)
      assert.match(members[0] ?? "", /\|3$/)
      const ttl = yield* redis.send<number>("PTTL", key)
      assert.isTrue(ttl > 9_000 && ttl <= 10_001, `ttl ${ttl}`)
      assert.deepStrictEqual(yield* bulkhead.state("tenant-1"), {
        key: "tenant-1",
        active: 3,
        queued: 0,
        available: 1,
        limit: 4
      })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(call)
      assert.strictEqual(yield* redis.send<number>("EXISTS", key), 0)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("the scripts check their arguments before they write, naming the bad one", () =>
    Effect.gen(function* () {
      const name = unique("scripts")
      const redis = yield* Redis.Redis
      const permits = yield* permitsOf(yield* RedisBulkhead.makeStore(), name)
      const refused = (effect: Effect.Effect<unknown, Bulkhead.BulkheadStoreError>) =>
        Effect.map(Effect.flip(effect), (error) => error.message)
      assert.match(yield* refused(permits.acquire("k", "p", 0, 3)), /bad argument cost/)
      assert.match(yield* refused(permits.acquire("k", "p", 1, 0)), /bad argument limit/)
      assert.match(yield* refused(permits.acquire("k", "p", 1.5, 3)), /bad argument/)
      assert.match(yield* refused(permits.acquire("k", "p", 1, 2.5)), /bad argument limit/)
      // nothing was written
      assert.strictEqual(yield* redis.send<number>("EXISTS", keyOf(name, "k")), 0)
      assert.deepStrictEqual(yield* permits.acquire("k", "p", 1, 1), { granted: true, held: 1 })
      assert.isTrue(yield* permits.release("k", "p", 1))
    }).pipe(Effect.scoped, Effect.provide(RedisBulkhead.layerStore().pipe(Layer.provideMerge(standalone))))
  )

  it.effect("a lease that ran out is fenced: never renewed nor released, even before anyone pruned it", () =>
    Effect.gen(function* () {
      const name = unique("fenced")
      const redis = yield* Redis.Redis
      const store = yield* RedisBulkhead.makeStore({ permitLease: "100 millis" })
      const permits = yield* permitsOf(store, name)
      // a process with a longer lease keeps the set alive
      const longer = yield* RedisBulkhead.makeStore({ permitLease: "10 seconds" })
      const keeper = yield* permitsOf(longer, name)
      assert.isTrue((yield* keeper.acquire("k", "keeper", 1, 3)).granted)
      assert.isTrue((yield* permits.acquire("k", "slow", 1, 3)).granted)
      assert.isTrue((yield* permits.acquire("k", "gone", 1, 3)).granted)
      yield* wait("150 millis")
      // two leases ran out; nothing dropped them yet
      assert.strictEqual(yield* redis.send<number>("ZCARD", keyOf(name, "k")), 3)
      assert.strictEqual(yield* permits.held("k"), 1)
      assert.isFalse(yield* permits.renew("k", "slow", 1))
      assert.isFalse(yield* permits.release("k", "gone", 1))
      assert.isFalse(yield* permits.release("k", "slow", 1))
      assert.strictEqual(yield* permits.held("k"), 1)
      assert.isTrue(yield* keeper.release("k", "keeper", 1))
      assert.strictEqual(yield* redis.send<number>("EXISTS", keyOf(name, "k")), 0)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("bad options are one InvalidOptions listing every field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        RedisBulkhead.makeStore({ permitLease: "1 millis", pollInterval: 0, maxPollInterval: Duration.infinity })
      )
      assert.strictEqual(error.pattern, "RedisBulkhead")
      assert.deepStrictEqual(error.issues.map((issue) => issue.path).sort(), [
        "maxPollInterval",
        "permitLease",
        "pollInterval"
      ])
      const below = yield* Effect.flip(
        RedisBulkhead.makeStore({ pollInterval: "50 millis", maxPollInterval: "10 millis" })
      )
      assert.deepStrictEqual(
        below.issues.map((issue) => issue.path),
        ["maxPollInterval"]
      )
      // an adaptive limit is per process: refused over Redis, with the bulkhead's other bad fields
      const store = yield* processStore()
      const adaptive = yield* Effect.flip(bulkheadOn(store, { maxQueue: -1, limit: { algorithm: "aimd" } }))
      assert.deepStrictEqual(
        adaptive.issues.map((issue) => issue.path),
        ["maxQueue", "limit"]
      )
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("while Redis is down: calls run (onStoreError allow), or fail with BulkheadStoreError", () =>
    Effect.gen(function* () {
      const node = yield* RedisServer.startServer()
      const store = yield* Layer.build(
        RedisBulkhead.layerStore().pipe(
          Layer.provide(IoRedis.layer({ host: node.host, port: node.port, enableOfflineQueue: false })),
          Layer.orDie
        )
      )
      const open = yield* bulkheadOn(store, { name: unique("open"), maxConcurrent: 1 })
      const strict = yield* bulkheadOn(store, { name: unique("strict"), maxConcurrent: 1, onStoreError: "fail" })
      yield* Bulkhead.isolate(Effect.void, open)
      yield* Effect.promise(() => RedisServer.rawCommand(node.port, "SHUTDOWN NOSAVE").catch(() => ""))
      assert.strictEqual(yield* Bulkhead.isolate(Effect.succeed("ran"), open), "ran")
      assert.strictEqual((yield* open.stats).storeErrors, 1)
      const error = yield* Effect.flip(Bulkhead.isolate(Effect.succeed("ran"), strict))
      assert.strictEqual(error.reason._tag, "BulkheadStoreError")
      assert.match(error.message, /Redis bulkhead store: acquire failed/)
    }).pipe(Effect.scoped)
  )

  it.effect("layerStoreConfig reads its options from Config", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const name = unique("configured")
      const store = RedisBulkhead.layerStoreConfig().pipe(
        Layer.provide(
          ConfigProvider.layer(
            ConfigProvider.fromEnv({
              env: { BULKHEAD_STORE_PREFIX: "configured:", BULKHEAD_STORE_PERMIT_LEASE: "5 seconds" }
            })
          )
        )
      )
      const bulkhead = yield* Bulkhead.make({ name }).pipe(Effect.provide(store))
      const gate = yield* Deferred.make<void>()
      const call = yield* start(Bulkhead.isolate(Deferred.await(gate), bulkhead))
      yield* wait("20 millis")
      const ttl = yield* redis.send<number>("PTTL", keyOf(name, name, "configured:"))
      assert.isTrue(ttl > 4_000 && ttl <= 5_001, `ttl ${ttl}`)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(call)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("on Redis Cluster: keys spread over the nodes, each key's permits on one", () =>
    Effect.gen(function* () {
      const name = unique("cluster")
      const bulkhead = yield* Bulkhead.make({ name, maxConcurrent: 1 })
      const gate = yield* Deferred.make<void>()
      const held = []
      for (let i = 0; i < 8; i++)
        held.push(yield* start(Bulkhead.isolate(Deferred.await(gate), bulkhead, { key: `k${i}` })))
      yield* wait("50 millis")
      for (let i = 0; i < 8; i++) {
        const error = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: `k${i}` }))
        assert.strictEqual(error.reason._tag, "BulkheadFull")
      }
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(held, Fiber.join)
      assert.strictEqual((yield* bulkhead.state("k3")).active, 0)
    }).pipe(Effect.scoped, Effect.provide(RedisBulkhead.layerStore().pipe(Layer.provide(cluster))))
  )
})
