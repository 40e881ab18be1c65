/**
 * The local-first store: breakers decide in-process, and their stores sync
 * with the fleet through a real redis-server. Each "process" is a store layer
 * of its own (its own instance id, circuits and sync) over the same server.
 *
 * Syncs run through `LocalFirstSync.syncNow` (the interval is an hour) so the
 * cases are deterministic, except the case that drives the interval with
 * `TestClock`. Redis keeps its own time: cases that need the fleet's open time
 * to pass wait for real, briefly.
 */
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Telemetry } from "@effect-resilience/core"
import { IoRedis, RedisCircuitBreaker } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Redis from "effect/persistence/Redis"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { suite } from "../../core/test/CircuitBreakerStoreSuite.ts"
import * as fixtures from "./fixtures.ts"

const standalone = fixtures.standalone()

// The conformance cases over one process, its sync out of the way: the
// local twin is the memory store's, so every case applies. With syncs
// running, see the guide's table for what becomes eventual.
suite(
  "Redis local-first (one process)",
  RedisCircuitBreaker.layerStoreLocalFirst({ syncInterval: "1000 hours" }).pipe(Layer.provide(standalone), Layer.orDie)
)

class Boom extends Data.TaggedError("Boom") {}

const unique = fixtures.unique

/** One process: a local-first store of its own and a breaker on it. */
const processOn = (
  breaker: CircuitBreaker.Input,
  store: RedisCircuitBreaker.LocalFirstInput = {},
  connection: Layer.Layer<Redis.Redis, unknown> = standalone
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      RedisCircuitBreaker.layerStoreLocalFirst({ syncInterval: "1 hour", ...store }).pipe(
        Layer.provide(connection),
        Layer.orDie
      )
    )
    const b = yield* CircuitBreaker.make(breaker).pipe(Effect.provide(context))
    const sync = yield* Effect.provide(Effect.service(RedisCircuitBreaker.LocalFirstSync), context)
    return { breaker: b, sync }
  })

const fail = (b: CircuitBreaker.CircuitBreaker, key?: string) =>
  Effect.exit(CircuitBreaker.protect(Effect.fail(new Boom()), b, key === undefined ? undefined : { key }))
const succeed = (b: CircuitBreaker.CircuitBreaker, key?: string) =>
  Effect.exit(CircuitBreaker.protect(Effect.succeed("ok"), b, key === undefined ? undefined : { key }))

/** The reason a call was rejected with, or "ran". */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "ran"
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (error === undefined || error._tag !== "Fail") return "defect"
  return CircuitBreaker.isCircuitBreakerError(error.error) ? error.error.reason._tag : "ran"
}

const wait = (millis: number) => TestClock.withLive(Effect.sleep(Duration.millis(millis)))

describe("RedisCircuitBreaker.layerStoreLocalFirst", () => {
  it.effect("failures on A and on B that trip neither alone open the key on both after one sync", () =>
    Effect.gen(function* () {
      const name = unique("rate")
      const options: CircuitBreaker.Input = { name, failureRateThreshold: 0.5, slidingWindowSize: 10, minimumCalls: 4 }
      const a = yield* processOn(options)
      const b = yield* processOn(options)
      const transitions = yield* Effect.forkScoped(
        Stream.runCollect(
          Stream.take(
            Stream.filter(b.breaker.events, (e) => e._tag === "StateTransition"),
            1
          )
        )
      )
      yield* Effect.yieldNow
      yield* fail(a.breaker)
      yield* fail(a.breaker)
      yield* fail(b.breaker)
      yield* fail(b.breaker)
      // each alone is under minimumCalls
      assert.strictEqual((yield* a.breaker.state())._tag, "Closed")
      assert.strictEqual((yield* b.breaker.state())._tag, "Closed")
      yield* a.sync.syncNow
      assert.strictEqual((yield* a.breaker.state())._tag, "Closed")
      // B's flush brings the fleet to 4 failures in 4 calls: the fleet opens, B applies it at once
      yield* b.sync.syncNow
      assert.strictEqual((yield* b.breaker.state())._tag, "Open")
      assert.strictEqual(outcomeOf(yield* succeed(b.breaker)), "CircuitOpen")
      // A learns it at its next sync
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "ran")
      yield* a.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "CircuitOpen")
      // the fleet's decision is published as the breaker's own transition
      const [event] = yield* Fiber.join(transitions)
      assert.strictEqual(event?._tag, "StateTransition")
      if (event?._tag === "StateTransition") {
        assert.strictEqual(event.from, "Closed")
        assert.strictEqual(event.to, "Open")
      }
      const stats = yield* b.breaker.stats
      assert.strictEqual(stats.failures, 2)
    }).pipe(Effect.scoped)
  )

  it.effect("a key A trips is rejected on B after B's next sync, though B never used it", () =>
    Effect.gen(function* () {
      const name = unique("trip")
      const a = yield* processOn({ name, consecutiveFailures: 2, openDuration: "1 minute" })
      const b = yield* processOn({ name, consecutiveFailures: 2, openDuration: "1 minute" })
      yield* b.sync.syncNow
      yield* fail(a.breaker, "eu")
      yield* fail(a.breaker, "eu")
      // tripping is local and immediate
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker, "eu")), "CircuitOpen")
      assert.strictEqual((yield* b.breaker.state("eu"))._tag, "Closed")
      yield* a.sync.syncNow
      yield* b.sync.syncNow
      const rejected = yield* succeed(b.breaker, "eu")
      assert.strictEqual(outcomeOf(rejected), "CircuitOpen")
      // with the fleet's time left (Redis TIME), about the minute
      if (Exit.isFailure(rejected)) {
        const error = rejected.cause.reasons.find((r) => r._tag === "Fail")
        if (error?._tag === "Fail" && CircuitBreaker.isCircuitBreakerError(error.error)) {
          const reason = error.error.reason
          if (reason._tag === "CircuitOpen") {
            const left = Duration.toMillis(reason.retryAfter)
            assert.isTrue(left > 55_000 && left <= 60_000, String(left))
          }
        }
      }
      // other keys are untouched
      assert.strictEqual(outcomeOf(yield* succeed(b.breaker, "us")), "ran")
    }).pipe(Effect.scoped)
  )

  it.effect("quorum mode: a key opens fleet-wide only once `quorum` processes report it open", () =>
    Effect.gen(function* () {
      const name = unique("quorum")
      const options: CircuitBreaker.Input = { name, consecutiveFailures: 1, openDuration: "1 minute" }
      const a = yield* processOn(options, { quorum: 2 })
      const b = yield* processOn(options, { quorum: 2 })
      const c = yield* processOn(options, { quorum: 2 })
      yield* fail(a.breaker)
      yield* a.sync.syncNow
      yield* c.sync.syncNow
      // one vote: A stays open on its own, the fleet does not
      assert.strictEqual((yield* a.breaker.state())._tag, "Open")
      assert.strictEqual(outcomeOf(yield* succeed(c.breaker)), "ran")
      yield* fail(b.breaker)
      yield* b.sync.syncNow
      yield* c.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(c.breaker)), "CircuitOpen")
    }).pipe(Effect.scoped)
  )

  it.effect("quorum mode: a process that stops syncing stops counting once its vote's time to live is up", () =>
    Effect.gen(function* () {
      const name = unique("votes")
      const options: CircuitBreaker.Input = { name, consecutiveFailures: 1, openDuration: "1 minute" }
      const store: RedisCircuitBreaker.LocalFirstInput = { quorum: 2, voteTimeToLive: "150 millis" }
      const a = yield* processOn(options, store)
      const b = yield* processOn(options, store)
      const c = yield* processOn(options, store)
      yield* fail(a.breaker)
      yield* a.sync.syncNow
      // A goes quiet; its vote expires (Redis time)
      yield* wait(250)
      yield* fail(b.breaker)
      yield* b.sync.syncNow
      yield* c.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(c.breaker)), "ran")
      // A syncing again renews its vote: two live votes open the key
      yield* a.sync.syncNow
      yield* c.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(c.breaker)), "CircuitOpen")
    }).pipe(Effect.scoped)
  )

  it.effect("half-open: one process holds the fleet's probe lease and probes; the others keep rejecting", () =>
    Effect.gen(function* () {
      const name = unique("probe")
      const options: CircuitBreaker.Input = { name, consecutiveFailures: 1, openDuration: "100 millis" }
      const a = yield* processOn(options)
      const b = yield* processOn(options)
      yield* fail(a.breaker)
      yield* a.sync.syncNow
      yield* b.sync.syncNow
      assert.strictEqual((yield* b.breaker.state())._tag, "Open")
      yield* wait(150)
      // A syncs first once the fleet's open time is up: it takes the lease
      yield* a.sync.syncNow
      yield* b.sync.syncNow
      // B's own clock never moved, but B must not probe: it is held open until a later sync
      assert.strictEqual(outcomeOf(yield* succeed(b.breaker)), "CircuitOpen")
      // nor does a process that joins now
      const c = yield* processOn(options)
      yield* c.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(c.breaker)), "CircuitOpen")
      // A probes and closes; the fleet follows at A's sync, the others at theirs
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "ran")
      assert.strictEqual((yield* a.breaker.state())._tag, "Closed")
      yield* a.sync.syncNow
      yield* c.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(c.breaker)), "ran")
      assert.strictEqual((yield* c.breaker.state())._tag, "Closed")
    }).pipe(Effect.scoped)
  )

  it.effect("fencing: a process's opening from a fleet generation since closed is dropped, its circuit closed", () =>
    Effect.gen(function* () {
      const name = unique("fence")
      const options: CircuitBreaker.Input = { name, consecutiveFailures: 2, openDuration: "100 millis" }
      const a = yield* processOn(options)
      const stale = yield* processOn(options)
      // both know generation G0 of the key
      yield* succeed(a.breaker)
      yield* succeed(stale.breaker)
      yield* a.sync.syncNow
      yield* stale.sync.syncNow
      // the fleet opens (G1), half-opens with A probing (G2) and closes (G3); `stale` sleeps through it
      yield* fail(a.breaker)
      yield* fail(a.breaker)
      yield* a.sync.syncNow
      yield* wait(150)
      yield* a.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "ran")
      yield* a.sync.syncNow
      // `stale` trips on G0 and reports it: the fleet is at G3, so the report is dropped
      yield* fail(stale.breaker)
      yield* fail(stale.breaker)
      assert.strictEqual((yield* stale.breaker.state())._tag, "Open")
      yield* stale.sync.syncNow
      // the fleet stays closed, and the stale process is brought back to it
      assert.strictEqual((yield* stale.breaker.state())._tag, "Closed")
      yield* a.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "ran")
      // whereas a fresh opening from the same process does open the fleet
      yield* fail(stale.breaker)
      yield* fail(stale.breaker)
      yield* stale.sync.syncNow
      yield* a.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "CircuitOpen")
    }).pipe(Effect.scoped)
  )

  it.effect("the sync runs every syncInterval on the Clock (TestClock here)", () =>
    Effect.gen(function* () {
      const name = unique("interval")
      const options: CircuitBreaker.Input = { name, consecutiveFailures: 1, openDuration: "1 minute" }
      const a = yield* processOn(options, { syncInterval: "250 millis" })
      const b = yield* processOn(options, { syncInterval: "250 millis" })
      yield* fail(a.breaker)
      const syncs = (yield* b.sync.stats).syncs
      assert.strictEqual(syncs, 0)
      // one interval: both syncs start; wait (for real, bounded) for their replies
      yield* TestClock.adjust("250 millis")
      yield* untilSynced(a.sync, 1)
      yield* untilSynced(b.sync, 1)
      // B may have synced before A's opening landed: a second interval settles it
      yield* TestClock.adjust("250 millis")
      yield* untilSynced(a.sync, 2)
      yield* untilSynced(b.sync, 2)
      assert.strictEqual(outcomeOf(yield* succeed(b.breaker)), "CircuitOpen")
      // nothing else synced the key: no sync without the Clock moving
      const before = (yield* b.sync.stats).syncs
      yield* wait(50)
      assert.strictEqual((yield* b.sync.stats).syncs, before)
    }).pipe(Effect.scoped)
  )

  it.effect("only keys with activity (or not closed) are reported, at most maxKeysPerSync per sync", () =>
    Effect.gen(function* () {
      const name = unique("bounded")
      const a = yield* processOn({ name, consecutiveFailures: 3 }, { maxKeysPerSync: 2 })
      for (const key of ["k1", "k2", "k3"]) yield* succeed(a.breaker, key)
      yield* a.sync.syncNow
      assert.strictEqual((yield* a.sync.stats).keysSynced, 2)
      yield* a.sync.syncNow
      assert.strictEqual((yield* a.sync.stats).keysSynced, 3)
      // no activity since: nothing reported
      yield* a.sync.syncNow
      assert.strictEqual((yield* a.sync.stats).keysSynced, 3)
      assert.strictEqual((yield* a.sync.stats).syncs, 3)
    }).pipe(Effect.scoped)
  )

  it.effect("a breaker's outcomes not yet synced are flushed in one last sync when its scope closes", () =>
    Effect.gen(function* () {
      const name = unique("flush")
      const options: CircuitBreaker.Input = { name, failureRateThreshold: 0.5, slidingWindowSize: 10, minimumCalls: 4 }
      const scope = yield* Scope.make()
      const a = yield* processOn(options).pipe(Scope.provide(scope))
      yield* fail(a.breaker)
      yield* fail(a.breaker)
      // A shuts down before its next sync (an hour away)
      yield* Scope.close(scope, Exit.void)
      const b = yield* processOn(options)
      yield* fail(b.breaker)
      yield* fail(b.breaker)
      // B's two failures alone are under minimumCalls: the fleet holds A's two as well
      yield* b.sync.syncNow
      assert.strictEqual((yield* b.breaker.state())._tag, "Open")
    }).pipe(Effect.scoped)
  )

  it.effect("bad options: one InvalidOptions naming every bad field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        RedisCircuitBreaker.validateLocalFirstOptions({
          syncInterval: "0 millis",
          quorum: 0,
          maxKeysPerSync: 1.5,
          probeLease: -1
        })
      )
      assert.deepStrictEqual(
        error.issues.map((issue) => issue.path),
        ["probeLease", "quorum", "maxKeysPerSync", "syncInterval"]
      )
      const defaults = yield* RedisCircuitBreaker.validateLocalFirstOptions({ syncInterval: "100 millis" })
      assert.strictEqual(defaults.voteTimeToLiveMillis, 300)
      assert.strictEqual(defaults.probeLeaseMillis, 400)
      assert.strictEqual(defaults.syncTimeoutMillis, 1000)
      assert.strictEqual(defaults.prefix, "resilience:cbf:")
    })
  )
})

const cluster = fixtures.cluster()

describe("RedisCircuitBreaker.layerStoreLocalFirst on Redis Cluster", () => {
  it.effect("one script call per breaker on its hash tag's node: a trip on A reaches B, and the fleet half-opens", () =>
    Effect.gen(function* () {
      const options: CircuitBreaker.Input = {
        name: unique("cluster"),
        consecutiveFailures: 2,
        openDuration: "100 millis"
      }
      const a = yield* processOn(options, {}, cluster)
      const b = yield* processOn(options, {}, cluster)
      yield* fail(a.breaker, "k")
      yield* fail(a.breaker, "k")
      yield* a.sync.syncNow
      yield* b.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(b.breaker, "k")), "CircuitOpen")
      yield* wait(150)
      yield* b.sync.syncNow
      yield* a.sync.syncNow
      // B holds the lease: it probes and closes; A keeps rejecting until B's close reaches it
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker, "k")), "CircuitOpen")
      assert.strictEqual(outcomeOf(yield* succeed(b.breaker, "k")), "ran")
      yield* b.sync.syncNow
      yield* a.sync.syncNow
      assert.strictEqual(outcomeOf(yield* succeed(a.breaker, "k")), "ran")
      assert.strictEqual((yield* a.sync.stats).errors + (yield* b.sync.stats).errors, 0)
    }).pipe(Effect.scoped)
  )
})

/** Waits (for real, up to 5 seconds) until the store completed `n` syncs. */
const untilSynced = (sync: RedisCircuitBreaker.LocalFirstSync["Service"], n: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 500; i++) {
      const stats = yield* sync.stats
      if (stats.syncs + stats.errors >= n) return
      yield* wait(10)
    }
    assert.fail(`no sync ${n} within 5 seconds`)
  })

// ---------------------------------------------------------------------------
// Redis going away and coming back: a redis-server of this test's own
// ---------------------------------------------------------------------------

const ownServer = (port: number) => fixtures.ownServer(port, "local-first-redis")

describe("RedisCircuitBreaker.layerStoreLocalFirst without Redis", () => {
  const rate: Omit<CircuitBreaker.Input, "name"> = { failureRateThreshold: 0.5, slidingWindowSize: 10, minimumCalls: 4 }

  /** Syncs until one succeeds (the connection is back), for up to 10 seconds. */
  const syncedAgain = (sync: RedisCircuitBreaker.LocalFirstSync["Service"]) =>
    Effect.gen(function* () {
      const before = (yield* sync.stats).syncs
      for (let i = 0; i < 400; i++) {
        yield* sync.syncNow
        if ((yield* sync.stats).syncs > before) return
        yield* Effect.sleep("25 millis")
      }
      assert.fail("no successful sync within 10 seconds")
    })

  it.live(
    "a failed sync's outcomes are kept and flushed by the next one that succeeds",
    () =>
      Effect.gen(function* () {
        const port = yield* RedisServer.freePort()
        const options: CircuitBreaker.Input = { name: unique("carried"), ...rate }
        const serverScope = yield* Scope.make()
        yield* ownServer(port).pipe(Scope.provide(serverScope))
        const connection = () => IoRedis.layer({ host: "127.0.0.1", port, enableOfflineQueue: false })
        const a = yield* processOn(options, {}, connection())
        yield* Scope.close(serverScope, Exit.void)
        // two failures while Redis is away: the sync that reports them fails
        yield* fail(a.breaker)
        yield* fail(a.breaker)
        yield* a.sync.syncNow
        assert.strictEqual((yield* a.sync.stats).errors, 1)
        yield* ownServer(port)
        yield* syncedAgain(a.sync)
        // B's two failures and A's carried two: four in four, the fleet opens
        const b = yield* processOn(options, {}, connection())
        yield* fail(b.breaker)
        yield* fail(b.breaker)
        yield* b.sync.syncNow
        assert.strictEqual((yield* b.breaker.state())._tag, "Open")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a failed sync's outcomes are kept no longer than a time window spans",
    () =>
      Effect.gen(function* () {
        const port = yield* RedisServer.freePort()
        const options: CircuitBreaker.Input = {
          name: unique("aged"),
          ...CircuitBreaker.timeRate({ threshold: 0.5, window: "600 millis", buckets: 2, minimumCalls: 4 })
        }
        const serverScope = yield* Scope.make()
        yield* ownServer(port).pipe(Scope.provide(serverScope))
        const connection = () => IoRedis.layer({ host: "127.0.0.1", port, enableOfflineQueue: false })
        const a = yield* processOn(options, {}, connection())
        yield* Scope.close(serverScope, Exit.void)
        yield* fail(a.breaker)
        yield* fail(a.breaker)
        yield* a.sync.syncNow
        assert.strictEqual((yield* a.sync.stats).errors, 1)
        // A's failures leave the window before Redis is back: they are dropped, not flushed
        yield* Effect.sleep("700 millis")
        yield* ownServer(port)
        yield* syncedAgain(a.sync)
        const b = yield* processOn(options, {}, connection())
        yield* fail(b.breaker)
        yield* fail(b.breaker)
        yield* b.sync.syncNow
        assert.strictEqual((yield* b.breaker.state())._tag, "Closed")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "the last sync when a breaker's scope closes is bounded: a Redis that never answers does not hold up shutdown",
    () =>
      Effect.gen(function* () {
        const port = yield* RedisServer.freePort()
        const server = yield* ownServer(port)
        // the connection outlives the process's scope (its own close is bounded too: see IoRedis)
        const connection = yield* Layer.build(IoRedis.layer({ host: "127.0.0.1", port }))
        const scope = yield* Scope.make()
        const a = yield* processOn(
          { name: unique("bounded-flush"), ...rate },
          { syncTimeout: "200 millis" },
          Layer.succeedContext(connection)
        ).pipe(Scope.provide(scope))
        yield* fail(a.breaker)
        // the server stops answering, its connections still open
        server.child.kill("SIGSTOP")
        const start = Date.now()
        yield* Scope.close(scope, Exit.void)
        const elapsed = Date.now() - start
        // it tried (a sync timeout), and gave up within two
        assert.isAtLeast(elapsed, 190, `shutdown took ${elapsed} ms: no last sync`)
        assert.isBelow(elapsed, 1_000, `shutdown took ${elapsed} ms`)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "Redis stopped: calls keep being decided locally, sync errors are counted, and a restart syncs again",
    () =>
      Effect.gen(function* () {
        const port = yield* RedisServer.freePort()
        const name = unique("down")
        const options: CircuitBreaker.Input = { name, consecutiveFailures: 2, openDuration: "1 minute" }
        const serverScope = yield* Scope.make()
        yield* ownServer(port).pipe(Scope.provide(serverScope))
        // connections that fail commands at once while the server is away (no offline queue)
        const connection = () => IoRedis.layer({ host: "127.0.0.1", port, enableOfflineQueue: false })
        const a = yield* processOn(options, {}, connection())
        yield* succeed(a.breaker)
        yield* a.sync.syncNow
        assert.strictEqual((yield* a.sync.stats).syncs, 1)

        // the server goes away
        yield* Scope.close(serverScope, Exit.void)
        assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "ran")
        yield* a.sync.syncNow
        const down = yield* a.sync.stats
        assert.strictEqual(down.errors, 1)
        assert.isDefined(down.lastError)
        // the breaker still decides alone: it trips, rejects, and never fails a call for Redis
        yield* fail(a.breaker)
        yield* fail(a.breaker)
        assert.strictEqual(outcomeOf(yield* succeed(a.breaker)), "CircuitOpen")
        yield* a.sync.syncNow
        assert.strictEqual((yield* a.sync.stats).errors, 2)
        assert.strictEqual((yield* a.breaker.stats).storeErrors, 0)
        // and in the sync metrics, by breaker name
        const snapshots = yield* Metric.snapshot
        const series = (id: string) =>
          snapshots.find((m) => m.id === id && m.attributes?.[Telemetry.attributes.name] === name)?.state
        const errors = series(Telemetry.circuitBreakerSync.errors.name)
        assert.strictEqual(errors !== undefined && "count" in errors ? Number(errors.count) : -1, 2)
        const durations = series(Telemetry.circuitBreakerSync.duration.name)
        assert.strictEqual(durations !== undefined && "count" in durations ? Number(durations.count) : -1, 3)

        // the server comes back (empty): A reconnects, and its opening reaches the fleet
        yield* ownServer(port)
        for (let i = 0; i < 400; i++) {
          yield* a.sync.syncNow
          if ((yield* a.sync.stats).syncs >= 2) break
          yield* Effect.sleep("25 millis")
        }
        const back = yield* a.sync.stats
        assert.strictEqual(back.syncs, 2)
        assert.isUndefined(back.lastError)
        const b = yield* processOn(options, {}, connection())
        yield* b.sync.syncNow
        assert.strictEqual(outcomeOf(yield* succeed(b.breaker)), "CircuitOpen")
      }).pipe(Effect.scoped),
    60_000
  )
})
