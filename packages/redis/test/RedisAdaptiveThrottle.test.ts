/**
 * The local-first adaptive throttle store: throttles decide in-process, and
 * their stores sync with the fleet through a real redis-server. Each
 * "process" is a store layer of its own (its own connection, throttle and
 * sync) over the same server.
 *
 * Syncs run through `LocalFirstSync.syncNow` (the interval is an hour) so the
 * cases are deterministic. Redis keeps its own time: the case that needs a
 * key to expire waits for real, briefly.
 */
import { assert, describe, it } from "@effect/vitest"
import { AdaptiveThrottle, Telemetry } from "@effect-resilience/core"
import { IoRedis, RedisAdaptiveThrottle } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Redis from "effect/persistence/Redis"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as fixtures from "./fixtures.ts"

const standalone = fixtures.standalone()

/** A connection of its own to the file's server. */
const ownConnection: Layer.Layer<Redis.Redis> = Layer.unwrap(
  Effect.map(RedisServer.RedisServer, (server) => IoRedis.layer({ host: server.host, port: server.port }))
).pipe(Layer.provide(standalone), Layer.orDie)

const unique = fixtures.unique

/** One process: a local-first store of its own, on a connection of its own, and a throttle on it. */
const processOn = (
  throttle: AdaptiveThrottle.Input,
  store: RedisAdaptiveThrottle.LocalFirstInput = {},
  connection: Layer.Layer<Redis.Redis, unknown> = ownConnection
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      RedisAdaptiveThrottle.layerStoreLocalFirst({ syncInterval: "1 hour", ...store }).pipe(
        Layer.provide(connection),
        Layer.orDie
      )
    )
    const t = yield* AdaptiveThrottle.make(throttle).pipe(Effect.provide(context))
    const sync = yield* Effect.provide(Effect.service(RedisAdaptiveThrottle.LocalFirstSync), context)
    return { throttle: t, sync }
  })

/** A backend that accepts one call in `every`, refusing the others (with "503"). */
const backend = (every: number) => {
  let calls = 0
  return Effect.suspend(() => (++calls % every === 0 ? Effect.succeed("ok") : Effect.fail("503")))
}

/** Runs `n` calls through a throttle; how many it rejected locally. */
const run = (t: AdaptiveThrottle.AdaptiveThrottle, call: Effect.Effect<string, string>, n: number, key: string) =>
  Effect.gen(function* () {
    let throttled = 0
    for (let i = 0; i < n; i++) {
      const exit = yield* Effect.exit(call.pipe(AdaptiveThrottle.throttle(t, { key })))
      if (
        Exit.isFailure(exit) &&
        exit.cause.reasons.some((r) => r._tag === "Fail" && AdaptiveThrottle.isRejection(r.error))
      ) {
        throttled++
      }
    }
    return throttled
  })

const formula = (requests: number, accepts: number, k: number) => Math.max(0, (requests - k * accepts) / (requests + 1))

const pttl = (port: number, key: string) =>
  Effect.promise(() => RedisServer.rawCommand(port, `PTTL ${key}`)).pipe(Effect.map((reply) => Number(reply.slice(1))))

describe("RedisAdaptiveThrottle.layerStoreLocalFirst", () => {
  it.effect("two processes with few requests each converge on the fleet's counts and reject at its probability", () =>
    Effect.gen(function* () {
      const name = unique("fleet")
      // alone, fewer than 8 requests never throttle
      const options: AdaptiveThrottle.Input = { name, minRequests: 8, maxRejectProbability: 1 }
      const a = yield* processOn(options)
      const b = yield* processOn(options)
      const refusing = backend(4)
      // each sends what it alone does not throttle on
      assert.strictEqual(yield* run(a.throttle, refusing, 6, "api"), 0)
      assert.strictEqual(yield* run(b.throttle, refusing, 6, "api"), 0)
      assert.strictEqual((yield* b.throttle.state("api")).probability, 0)
      yield* a.sync.syncNow
      yield* b.sync.syncNow
      yield* a.sync.syncNow
      // both see the fleet's 12 requests, 3 accepted
      const expected = { key: "api", requests: 12, accepts: 3, probability: formula(12, 3, 2) }
      assert.deepStrictEqual(yield* a.throttle.state("api"), expected)
      assert.deepStrictEqual(yield* b.throttle.state("api"), expected)
      // and reject at about that probability: B's next calls, sampled
      const rejections: Array<number> = []
      const sampled = yield* Effect.forEach(Array.from({ length: 20 }), () =>
        Effect.flip(Effect.fail("503").pipe(AdaptiveThrottle.throttle(b.throttle, { key: "api" })))
      )
      for (const error of sampled) {
        if (AdaptiveThrottle.isAdaptiveThrottleError(error)) rejections.push(error.reason.probability)
      }
      assert.isAbove(rejections.length, 5)
      // the first rejection's probability is the fleet's plus B's own calls since
      assert.isAtLeast(rejections[0] ?? 0, expected.probability)
      // A's own calls since its sync count on top of the fleet's, before and after B's reach it
      const before = yield* a.throttle.state("api")
      assert.strictEqual(before.requests, 12)
      yield* b.sync.syncNow
      yield* a.sync.syncNow
      assert.strictEqual((yield* a.throttle.state("api")).requests, 32)
      assert.deepStrictEqual(yield* a.throttle.state("api"), yield* b.throttle.state("api"))
    }).pipe(Effect.scoped, Random.withSeed("fleet"))
  )

  it.effect("a process that saw only refusals stops throttling once the fleet's accepts reach it", () =>
    Effect.gen(function* () {
      const name = unique("split")
      const options: AdaptiveThrottle.Input = { name, k: 1.5, maxRejectProbability: 1 }
      const a = yield* processOn(options)
      const b = yield* processOn(options)
      yield* run(a.throttle, Effect.fail("503"), 10, "db")
      yield* run(b.throttle, Effect.succeed("ok"), 30, "db")
      assert.isAbove((yield* a.throttle.state("db")).probability, 0.5)
      assert.strictEqual((yield* b.throttle.state("db")).probability, 0)
      yield* a.sync.syncNow
      yield* b.sync.syncNow
      yield* a.sync.syncNow
      const a1 = yield* a.throttle.state("db")
      const b1 = yield* b.throttle.state("db")
      assert.deepStrictEqual(a1, b1)
      assert.strictEqual(a1.accepts, 30)
      assert.strictEqual(a1.probability, 0)
    }).pipe(Effect.scoped, Random.withSeed("split"))
  )

  it.effect("only keys with counts are reported, at most maxKeysPerSync per sync", () =>
    Effect.gen(function* () {
      const a = yield* processOn({ name: unique("bounded") }, { maxKeysPerSync: 2 })
      for (const key of ["k1", "k2", "k3"])
        yield* Effect.succeed("ok").pipe(AdaptiveThrottle.throttle(a.throttle, { key }))
      yield* a.sync.syncNow
      assert.strictEqual((yield* a.sync.stats).keysSynced, 2)
      yield* a.sync.syncNow
      assert.strictEqual((yield* a.sync.stats).keysSynced, 3)
      // nothing counted since, and every fleet view all accepts: nothing to report, no script call
      yield* a.sync.syncNow
      const stats = yield* a.sync.stats
      assert.strictEqual(stats.keysSynced, 3)
      assert.strictEqual(stats.syncs, 2)
    }).pipe(Effect.scoped)
  )

  it.effect("a key expires with the window", () =>
    Effect.gen(function* () {
      const server = yield* Effect.provide(Effect.service(RedisServer.RedisServer), standalone)
      const name = unique("expiry")
      const prefix = `${unique("p")}:`
      const a = yield* processOn({ name, window: "600 millis", buckets: 2, maxRejectProbability: 1 }, { prefix })
      yield* run(a.throttle, Effect.fail("503"), 4, "gone")
      yield* a.sync.syncNow
      const key = `${prefix}{${name}}:gone`
      const ttl = yield* pttl(server.port, key)
      assert.isAbove(ttl, 0)
      assert.isAtMost(ttl, 600)
      // meanwhile, another process sees A's counts
      const c = yield* processOn({ name, window: "600 millis", buckets: 2, maxRejectProbability: 1 }, { prefix })
      yield* Effect.succeed("ok").pipe(AdaptiveThrottle.throttle(c.throttle, { key: "gone" }))
      yield* c.sync.syncNow
      assert.strictEqual((yield* c.throttle.state("gone")).requests, 5)
      yield* TestClock.withLive(Effect.sleep(Duration.millis(700)))
      assert.strictEqual(yield* pttl(server.port, key), -2)
      // a new process reporting the key finds the fleet's counts gone
      const b = yield* processOn({ name, window: "600 millis", buckets: 2, maxRejectProbability: 1 }, { prefix })
      yield* Effect.succeed("ok").pipe(AdaptiveThrottle.throttle(b.throttle, { key: "gone" }))
      yield* b.sync.syncNow
      const state = yield* b.throttle.state("gone")
      assert.strictEqual(state.requests, 1)
      assert.strictEqual(state.accepts, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("a throttle's counts not yet synced are flushed in one last sync when its scope closes", () =>
    Effect.gen(function* () {
      const name = unique("flush")
      const options: AdaptiveThrottle.Input = { name, maxRejectProbability: 1 }
      const scope = yield* Scope.make()
      const a = yield* processOn(options).pipe(Scope.provide(scope))
      yield* run(a.throttle, Effect.fail("503"), 5, "api")
      // A shuts down before its next sync (an hour away)
      yield* Scope.close(scope, Exit.void)
      const b = yield* processOn(options)
      yield* Effect.succeed("ok").pipe(AdaptiveThrottle.throttle(b.throttle, { key: "api" }))
      yield* b.sync.syncNow
      const state = yield* b.throttle.state("api")
      assert.strictEqual(state.requests, 6)
      assert.strictEqual(state.accepts, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("bad options: one InvalidOptions naming every bad field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        RedisAdaptiveThrottle.validateLocalFirstOptions({ syncInterval: "0 millis", maxKeysPerSync: 0 })
      )
      assert.deepStrictEqual(error.issues.map((issue) => issue.path).sort(), ["maxKeysPerSync", "syncInterval"])
    })
  )
})

// ---------------------------------------------------------------------------
// Redis going away and coming back: a redis-server of this test's own
// ---------------------------------------------------------------------------

const ownServer = (port: number) => fixtures.ownServer(port, "adaptive-throttle-redis")

const cluster = fixtures.cluster()

describe("RedisAdaptiveThrottle.layerStoreLocalFirst on Redis Cluster", () => {
  it.effect("one script call per throttle on its hash tag's node: every key's counts reach the other process", () =>
    Effect.gen(function* () {
      const options: AdaptiveThrottle.Input = { name: unique("cluster"), maxRejectProbability: 1 }
      const a = yield* processOn(options, {}, cluster)
      const b = yield* processOn(options, {}, cluster)
      // several keys of one throttle: all under its hash tag, so one call serves them on one node
      yield* run(a.throttle, backend(4), 8, "api")
      yield* run(a.throttle, Effect.succeed("ok"), 5, "db")
      yield* run(b.throttle, Effect.succeed("ok"), 4, "api")
      // a process learns the fleet's counts of the keys it reports (a key it never used needs no decision)
      yield* run(b.throttle, Effect.succeed("ok"), 1, "db")
      yield* a.sync.syncNow
      yield* b.sync.syncNow
      yield* a.sync.syncNow
      // "api" may reject (refusals in it): A refreshes it without new calls; "db" only accepts: refreshed when used
      assert.deepStrictEqual(yield* a.throttle.state("api"), yield* b.throttle.state("api"))
      assert.deepStrictEqual(
        [(yield* b.throttle.state("api")).requests, (yield* b.throttle.state("db")).requests],
        [12, 6]
      )
      assert.strictEqual((yield* a.sync.stats).errors + (yield* b.sync.stats).errors, 0)
    }).pipe(Effect.scoped, Random.withSeed("cluster"))
  )
})

describe("RedisAdaptiveThrottle.layerStoreLocalFirst without Redis", () => {
  it.live(
    "Redis stopped: calls are decided on the process's own window, sync errors are counted, and a restart syncs again",
    () =>
      Effect.gen(function* () {
        const port = yield* RedisServer.freePort()
        const name = unique("down")
        const options: AdaptiveThrottle.Input = { name, maxRejectProbability: 1 }
        const serverScope = yield* Scope.make()
        yield* ownServer(port).pipe(Scope.provide(serverScope))
        const connection = () => IoRedis.layer({ host: "127.0.0.1", port, enableOfflineQueue: false })
        const a = yield* processOn(options, {}, connection())
        const b = yield* processOn(options, {}, connection())
        // A alone sees refusals; the fleet (B's accepts) says the backend is fine
        yield* run(a.throttle, Effect.fail("503"), 10, "api")
        yield* run(b.throttle, Effect.succeed("ok"), 30, "api")
        yield* a.sync.syncNow
        yield* b.sync.syncNow
        yield* a.sync.syncNow
        assert.strictEqual((yield* a.throttle.state("api")).probability, 0)

        // the server goes away: A's next sync fails, and A decides on its own window again
        yield* Scope.close(serverScope, Exit.void)
        const exit = yield* Effect.exit(
          Effect.succeed("ok").pipe(AdaptiveThrottle.throttle(a.throttle, { key: "api" }))
        )
        // never a failure because of Redis: the call ran, or was throttled
        assert.isTrue(
          Exit.isSuccess(exit) ||
            exit.cause.reasons.every((r) => r._tag === "Fail" && AdaptiveThrottle.isRejection(r.error))
        )
        yield* a.sync.syncNow
        const down = yield* a.sync.stats
        assert.strictEqual(down.errors, 1)
        assert.isDefined(down.lastError)
        // and in the sync metrics, by throttle name: one error, and every sync timed (3 good ones and this one)
        const snapshots = yield* Metric.snapshot
        const series = (id: string) =>
          snapshots.find((m) => m.id === id && m.attributes?.[Telemetry.attributes.name] === name)?.state
        const errors = series(Telemetry.adaptiveThrottleSync.errors.name)
        assert.strictEqual(errors !== undefined && "count" in errors ? Number(errors.count) : -1, 1)
        const durations = series(Telemetry.adaptiveThrottleSync.duration.name)
        assert.strictEqual(durations !== undefined && "count" in durations ? Number(durations.count) : -1, 4)
        const local = yield* a.throttle.state("api")
        assert.isAtMost(local.requests, 11)
        assert.isAbove(local.probability, 0.5)

        // the server comes back (empty): A reconnects, pushes what it counted, and decides on the fleet's again
        yield* ownServer(port)
        const before = (yield* a.sync.stats).syncs
        for (let i = 0; i < 400; i++) {
          yield* a.sync.syncNow
          if ((yield* a.sync.stats).syncs > before) break
          yield* Effect.sleep("25 millis")
        }
        const back = yield* a.sync.stats
        assert.strictEqual(back.syncs, before + 1)
        assert.isUndefined(back.lastError)
      }).pipe(Effect.scoped, Random.withSeed("down")),
    60_000
  )

  it.live(
    "the last sync when a throttle's scope closes is bounded: a Redis that never answers does not hold up shutdown",
    () =>
      Effect.gen(function* () {
        const port = yield* RedisServer.freePort()
        const server = yield* ownServer(port)
        const connection = yield* Layer.build(IoRedis.layer({ host: "127.0.0.1", port }))
        const scope = yield* Scope.make()
        const a = yield* processOn(
          { name: unique("bounded-flush") },
          { syncTimeout: "200 millis" },
          Layer.succeedContext(connection)
        ).pipe(Scope.provide(scope))
        yield* Effect.fail("503").pipe(AdaptiveThrottle.throttle(a.throttle, { key: "api" }), Effect.ignore)
        // the server stops answering, its connections still open
        server.child.kill("SIGSTOP")
        const start = Date.now()
        yield* Scope.close(scope, Exit.void)
        const elapsed = Date.now() - start
        server.child.kill("SIGCONT")
        assert.isAtLeast(elapsed, 190, `shutdown took ${elapsed} ms: no last sync`)
        assert.isBelow(elapsed, 1_000, `shutdown took ${elapsed} ms`)
      }).pipe(Effect.scoped),
    60_000
  )
})
