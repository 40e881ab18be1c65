import { assert, describe, it } from "@effect/vitest"
import { Bulkhead } from "@effect-resilience/core"
import { IoRedis, RedisBulkhead } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as ConfigProvider from "effect/ConfigProvider"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import { TestClock } from "effect/testing"
import * as fixtures from "./fixtures.ts"

/** One server (and one cluster) for the whole file, started before the cases. */
const standalone = fixtures.standalone()
const cluster = fixtures.cluster()

/**
 * Waits for real (Redis keeps its own time) and moves the test clock as far,
 * so the bulkheads' polls and renewals (on the test clock) run too.
 */
const wait = (duration: Duration.Input) =>
  Effect.andThen(TestClock.withLive(Effect.sleep(duration)), TestClock.adjust(duration))

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2)}`

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
  it.effect("two bulkheads on two connections never run more than maxConcurrent between them", () =>
    Effect.gen(function* () {
      const name = unique("shared")
      const a = yield* bulkheadOn(yield* processStore(), { name, maxConcurrent: 3 })
      const b = yield* bulkheadOn(yield* processStore(), { name, maxConcurrent: 3 })
      const gate = yield* Deferred.make<void>()
      let running = 0
      let peak = 0
      const guarded = Effect.gen(function* () {
        running++
        peak = Math.max(peak, running)
        yield* Deferred.await(gate)
        running--
      })
      const fibers = []
      for (let i = 0; i < 5; i++) {
        fibers.push(yield* start(Effect.exit(Bulkhead.isolate(guarded, a))))
        fibers.push(yield* start(Effect.exit(Bulkhead.isolate(guarded, b))))
      }
      // every call has its answer from Redis: three run, seven were refused
      yield* wait("100 millis")
      assert.strictEqual(running, 3)
      assert.strictEqual((yield* a.state()).active, 3)
      assert.strictEqual((yield* b.state()).active, 3)
      yield* Deferred.succeed(gate, undefined)
      const exits = yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual([exits.filter(Exit.isSuccess).length, peak], [3, 3])
      assert.strictEqual((yield* a.state()).active, 0)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("callers waiting in both processes all run in turn, never more than maxConcurrent at once", () =>
    Effect.gen(function* () {
      const name = unique("waiting")
      const input = { name, maxConcurrent: 2, maxQueue: 20, maxWait: "1 minute" } as const
      const options = { pollInterval: "5 millis", maxPollInterval: "20 millis" } as const
      const a = yield* bulkheadOn(yield* processStore(options), input)
      const b = yield* bulkheadOn(yield* processStore(options), input)
      let running = 0
      let peak = 0
      let done = 0
      const guarded = Effect.gen(function* () {
        running++
        peak = Math.max(peak, running)
        yield* TestClock.withLive(Effect.sleep("15 millis"))
        running--
        done++
      })
      const fibers = []
      for (let i = 0; i < 6; i++) {
        fibers.push(yield* start(Bulkhead.isolate(guarded, a)))
        fibers.push(yield* start(Bulkhead.isolate(guarded, b)))
      }
      for (let i = 0; i < 400 && done < 12; i++) yield* wait("5 millis")
      yield* Effect.forEach(fibers, Fiber.join)
      assert.strictEqual(done, 12)
      assert.strictEqual(peak, 2)
      const redis = yield* Redis.Redis
      assert.strictEqual(yield* redis.send<number>("EXISTS", keyOf(name, name)), 0)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("a dead process's permit comes back once its lease runs out; its late release frees nothing", () =>
    Effect.gen(function* () {
      const name = unique("dead")
      const store = yield* processStore({ permitLease: "150 millis" })
      const live = yield* bulkheadOn(store, { name, maxConcurrent: 1 })
      // the dead process: it took the permit, then stopped (no renewal, no release)
      const permits = yield* RedisBulkhead.makeStore({ permitLease: "150 millis" }).pipe(
        Effect.flatMap((s) => permitsOf(s, name)),
        Effect.orDie
      )
      assert.isTrue((yield* permits.acquire(name, "ghost", 1, 1)).granted)
      const refused = yield* Effect.flip(Bulkhead.isolate(Effect.void, live))
      assert.strictEqual(refused.reason._tag, "BulkheadFull")
      yield* wait("200 millis")
      // the ghost's lease ran out: its permit is back
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), live))
      yield* wait("20 millis")
      assert.strictEqual((yield* live.state()).active, 1)
      // the ghost's release, late, frees nothing: the live call still holds the only permit
      assert.isFalse(yield* permits.release(name, "ghost", 1))
      assert.isFalse(yield* permits.renew(name, "ghost", 1))
      const still = yield* Effect.flip(Bulkhead.isolate(Effect.void, live))
      assert.strictEqual(still.reason._tag, "BulkheadFull")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Bulkhead.isolate(Effect.void, live)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("a call longer than the lease keeps its permit: it is renewed while the call runs", () =>
    Effect.gen(function* () {
      const name = unique("renewed")
      const input = { name, maxConcurrent: 1 } as const
      const a = yield* bulkheadOn(yield* processStore({ permitLease: "300 millis" }), input)
      const b = yield* bulkheadOn(yield* processStore({ permitLease: "300 millis" }), input)
      const gate = yield* Deferred.make<void>()
      const long = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      for (let i = 0; i < 5; i++) {
        yield* wait("100 millis")
        const error = yield* Effect.flip(Bulkhead.isolate(Effect.void, b))
        assert.strictEqual(error.reason._tag, "BulkheadFull", `still held after ${(i + 1) * 100} ms`)
      }
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(long)
      yield* Bulkhead.isolate(Effect.void, b)
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

  it.effect("interruption while waiting or while acquiring leaks no permit, in the process or in Redis", () =>
    Effect.gen(function* () {
      const name = unique("interrupted")
      const redis = yield* Redis.Redis
      const input = { name, maxConcurrent: 1, maxQueue: 10, maxWait: "1 minute" } as const
      const a = yield* bulkheadOn(yield* processStore(), input)
      const b = yield* bulkheadOn(yield* processStore(), input)
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      yield* wait("20 millis")
      const waiters = []
      for (let i = 0; i < 6; i++) waiters.push(yield* start(Bulkhead.isolate(Effect.void, i % 2 === 0 ? a : b)))
      // interrupt some in the middle of their first request, the others while they wait
      yield* Fiber.interrupt(waiters[0] as Fiber.Fiber<void, Bulkhead.BulkheadError>)
      yield* wait("50 millis")
      yield* Effect.forEach(waiters, Fiber.interrupt)
      assert.strictEqual((yield* a.stats).queued + (yield* b.stats).queued, 0)
      assert.strictEqual(yield* redis.send<number>("ZCARD", keyOf(name, name)), 1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* redis.send<number>("EXISTS", keyOf(name, name)), 0)
      const [sa, sb] = [yield* a.stats, yield* b.stats]
      assert.deepStrictEqual([sa.active, sb.active, sa.keys, sb.keys], [0, 0, 0, 0])
    }).pipe(Effect.scoped, Effect.provide(standalone))
  )

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

  it.effect("the scripts: a repeated acquire is granted once, costs add up, bad arguments are refused", () =>
    Effect.gen(function* () {
      const name = unique("scripts")
      const store = yield* RedisBulkhead.makeStore()
      const permits = yield* permitsOf(store, name)
      assert.deepStrictEqual(yield* permits.acquire("k", "p1", 2, 3), { granted: true, held: 2 })
      assert.deepStrictEqual(yield* permits.acquire("k", "p1", 2, 3), { granted: true, held: 2 })
      assert.deepStrictEqual(yield* permits.acquire("k", "p2", 2, 3), { granted: false, held: 2 })
      assert.deepStrictEqual(yield* permits.acquire("k", "p3", 1, 3), { granted: true, held: 3 })
      assert.isTrue(yield* permits.renew("k", "p1", 2))
      assert.isTrue(yield* permits.release("k", "p1", 2))
      assert.isFalse(yield* permits.release("k", "p1", 2))
      assert.isFalse(yield* permits.renew("k", "p1", 2))
      assert.strictEqual(yield* permits.held("k"), 1)
      const bad = yield* Effect.flip(permits.acquire("k", "p4", 0, 3))
      assert.match(bad.message, /bad argument/)
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
