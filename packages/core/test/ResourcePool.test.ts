import { assert, describe, it } from "@effect/vitest"
import { Options, ResourcePool } from "@effect-resilience/core"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { histogramAwareMetricValue as metricValue } from "./metrics.ts"

/** A fake connection: its id, and whether its scope was closed. */
interface Connection {
  readonly id: number
  closed: boolean
}

/** Connections numbered from 1, each closed (and logged) when its scope closes. */
const connections = () => {
  const log: Array<string> = []
  const all: Array<Connection> = []
  const acquire = Effect.acquireRelease(
    Effect.sync(() => {
      const connection: Connection = { id: all.length + 1, closed: false }
      all.push(connection)
      log.push(`open ${connection.id}`)
      return connection
    }),
    (connection) =>
      Effect.sync(() => {
        connection.closed = true
        log.push(`close ${connection.id}`)
      })
  )
  return { acquire, log, all }
}

/** Forks `effect` and lets it run until it suspends. */
const start = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    yield* Effect.yieldNow
    return fiber
  })

/** Holds a resource until `gate` is done; returns its id. */
const hold = (pool: ResourcePool.ResourcePool<Connection>, gate: Deferred.Deferred<void>) =>
  ResourcePool.use(pool, (c) => Effect.as(Deferred.await(gate), c.id))

const counts = (pool: ResourcePool.ResourcePool<Connection>) =>
  Effect.map(pool.stats, (s) => ({ size: s.size, idle: s.idle, borrowed: s.borrowed, waiters: s.waiters }))

/** The events seen so far on a subscription (without waiting). */
const drain = <A>(queue: Queue.Dequeue<A, unknown>) => Effect.map(Queue.clear(queue), (events) => [...events])

const settle = Effect.gen(function* () {
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow
})

describe("ResourcePool", () => {
  it.effect("borrows an idle resource, most recently used first, and gives it back however the use ends", () =>
    Effect.gen(function* () {
      const { acquire, all } = connections()
      const pool = yield* ResourcePool.make({ name: "db", max: 3, acquire })
      // two at once: two connections
      const gate = yield* Deferred.make<void>()
      const a = yield* start(hold(pool, gate))
      const b = yield* start(hold(pool, gate))
      assert.deepStrictEqual(yield* counts(pool), { size: 2, idle: 0, borrowed: 2, waiters: 0 })
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual([yield* Fiber.join(a), yield* Fiber.join(b)], [1, 2])
      assert.deepStrictEqual(yield* counts(pool), { size: 2, idle: 2, borrowed: 0, waiters: 0 })
      // LIFO: the last one given back (2) is borrowed next
      assert.strictEqual(yield* ResourcePool.use(pool, (c) => Effect.succeed(c.id)), 2)
      // failure, defect: given back
      assert.strictEqual(yield* Effect.flip(ResourcePool.use(pool, () => Effect.fail("boom"))), "boom")
      const died = yield* Effect.exit(ResourcePool.use(pool, () => Effect.die("defect")))
      assert.isTrue(Exit.hasDies(died))
      const thrown = yield* Effect.exit(
        ResourcePool.use(pool, (): Effect.Effect<void> => {
          throw new Error("thrown")
        })
      )
      assert.isTrue(Exit.hasDies(thrown))
      assert.deepStrictEqual(yield* counts(pool), { size: 2, idle: 2, borrowed: 0, waiters: 0 })
      assert.strictEqual(all.length, 2)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.acquired, stats.borrows, stats.released], [2, 6, 0])
    }).pipe(Effect.scoped)
  )

  it.effect("use and invalidate are dual and use adds only ResourcePoolError", () =>
    Effect.gen(function* () {
      class NotFound {
        readonly _tag = "NotFound"
      }
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({ acquire })
      const f = (c: Connection): Effect.Effect<number, NotFound> => Effect.succeed(c.id)
      const dataFirst: Effect.Effect<number, NotFound | ResourcePool.ResourcePoolError> = ResourcePool.use(pool, f)
      const dataLast: Effect.Effect<number, NotFound | ResourcePool.ResourcePoolError> = ResourcePool.use(f)(pool)
      const method: Effect.Effect<number, NotFound | ResourcePool.ResourcePoolError> = pool.use(f)
      assert.deepStrictEqual(yield* Effect.all([dataFirst, dataLast, method]), [1, 1, 1])
      assert.isTrue(ResourcePool.isResourcePool(pool))
      yield* ResourcePool.use(pool, (c) => ResourcePool.invalidate(c)(pool))
      assert.strictEqual((yield* pool.stats).invalidated, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("options: defaults, and one InvalidOptions listing every bad field", () =>
    Effect.gen(function* () {
      const resolved = yield* ResourcePool.validateOptions()
      assert.deepStrictEqual(
        [
          resolved.name,
          resolved.min,
          resolved.max,
          Duration.toMillis(resolved.acquireTimeout),
          Duration.toMillis(resolved.idleTimeout),
          Duration.toMillis(resolved.maxLifetime),
          resolved.maxLifetimeJitter,
          resolved.maxWaiters,
          resolved.keepalive,
          resolved.leakDetection,
          resolved.invalidateOnInterrupt
        ],
        ["default", 0, 10, 30_000, 600_000, 1_800_000, 0.025, 1_000, undefined, undefined, false]
      )
      const minimal = yield* ResourcePool.validateOptions({ min: 1, max: 1, validateAfterIdle: 0, shutdownTimeout: 0 })
      assert.deepStrictEqual([minimal.min, minimal.max], [1, 1])
      const error = yield* Effect.flip(
        ResourcePool.validateOptions({
          min: 3,
          max: 2,
          acquireTimeout: 0,
          idleTimeout: -1,
          maxLifetimeJitter: 0.9,
          maxWaiters: 0,
          acquireRetryBase: "1 second",
          acquireRetryCap: "10 millis",
          keepalive: "1 minute"
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "ResourcePool")
      assert.deepStrictEqual(
        error.issues.map((issue) => `${issue.path} = ${issue.value}`),
        [
          "idleTimeout = -1",
          "maxLifetimeJitter = 0.9",
          "maxWaiters = 0",
          "acquireTimeout = 0",
          "max = 2",
          "acquireRetryCap = 10ms",
          "keepalive = 1m"
        ]
      )
      // make fails the same way, and keepalive is fine with a validate function
      const made = yield* Effect.flip(ResourcePool.make({ max: 0, acquire: Effect.succeed(1) }))
      assert.deepStrictEqual(
        made.issues.map((issue) => issue.path),
        ["max"]
      )
      const withValidate = yield* ResourcePool.validateOptions({
        keepalive: "1 minute",
        validate: () => Effect.succeed(true)
      })
      assert.strictEqual(Duration.toMillis(withValidate.keepalive ?? Duration.zero), 60_000)
      assert.deepStrictEqual(ResourcePool.optionsDocs.map((doc) => doc.name).slice(0, 4), [
        "name",
        "min",
        "max",
        "acquireTimeout"
      ])
    })
  )

  it.effect("acquire timeout: a borrower waiting past acquireTimeout fails with AcquireTimeout", () =>
    Effect.gen(function* () {
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({ name: "db", max: 1, acquireTimeout: "2 seconds", acquire })
      const events = yield* pool.subscribe
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(hold(pool, gate))
      const waiter = yield* start(ResourcePool.use(pool, (c) => Effect.succeed(c.id)))
      assert.deepStrictEqual(yield* counts(pool), { size: 1, idle: 0, borrowed: 1, waiters: 1 })
      yield* TestClock.adjust("1999 millis")
      assert.isUndefined(waiter.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(waiter))
      assert.isTrue(ResourcePool.isResourcePoolError(error))
      assert.isTrue(ResourcePool.isRejection(error))
      assert.strictEqual(error.message, "Resource pool wait timed out")
      assert.isFalse((error.stack ?? "").includes("ResourcePool.test.ts"))
      const reason = error.reason
      assert.strictEqual(reason._tag, "AcquireTimeout")
      if (reason._tag !== "AcquireTimeout") return
      assert.deepStrictEqual(
        [reason.pool, Duration.toMillis(reason.acquireTimeout), reason.size, reason.waiters],
        ["db", 2000, 1, 0]
      )
      const seen = (yield* drain(events)).filter((e) => e._tag === "WaitTimeout")
      assert.deepStrictEqual(
        seen.map((e) => (e._tag === "WaitTimeout" ? [e.reason, Duration.toMillis(e.waited)] : [])),
        [["AcquireTimeout", 2000]]
      )
      assert.deepStrictEqual(yield* counts(pool), { size: 1, idle: 0, borrowed: 1, waiters: 0 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual((yield* pool.stats).timeouts, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("waiters are served first in, first out, and an arrival does not overtake them", () =>
    Effect.gen(function* () {
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({ max: 1, acquire })
      const order: Array<string> = []
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(hold(pool, gate))
      const waiters = []
      for (const id of ["a", "b", "c"]) {
        waiters.push(yield* start(ResourcePool.use(pool, () => Effect.sync(() => order.push(id)))))
      }
      assert.strictEqual((yield* pool.stats).waiters, 3)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      // an arrival while the line drains takes its place at the back
      const late = yield* Effect.forkChild(ResourcePool.use(pool, () => Effect.sync(() => order.push("late"))))
      yield* Fiber.joinAll([...waiters, late])
      assert.deepStrictEqual(order, ["a", "b", "c", "late"])
    }).pipe(Effect.scoped)
  )

  it.effect(
    "maxLifetime: an idle resource past it is retired and replaced; a borrowed one only when it comes back",
    () =>
      Effect.gen(function* () {
        const { acquire, all, log } = connections()
        const pool = yield* ResourcePool.make({
          min: 1,
          max: 2,
          maxLifetime: "1 minute",
          maxLifetimeJitter: 0,
          housekeepingInterval: "10 seconds",
          acquire
        })
        const events = yield* pool.subscribe
        yield* settle
        assert.deepStrictEqual(log, ["open 1"])
        // idle past its lifetime: the sweep retires it, and `min` brings a new one
        yield* TestClock.adjust("60 seconds")
        yield* settle
        assert.deepStrictEqual(log, ["open 1", "close 1", "open 2"])
        const released = (yield* drain(events)).flatMap((e) =>
          e._tag === "Released" ? [[e.reason, Duration.toMillis(e.age)]] : []
        )
        assert.deepStrictEqual(released, [["MaxLifetime", 60_000]])
        // borrowed past its lifetime: its borrower keeps it, it is retired when it comes back
        const gate = yield* Deferred.make<void>()
        const holder = yield* start(hold(pool, gate))
        yield* TestClock.adjust("90 seconds")
        yield* settle
        assert.isFalse(all[1]?.closed)
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(holder), 2)
        yield* settle
        assert.isTrue(all[1]?.closed)
        assert.deepStrictEqual(log, ["open 1", "close 1", "open 2", "close 2", "open 3"])
        // never handed out past its lifetime, even between sweeps
        yield* TestClock.adjust("59 seconds")
        const id = yield* Effect.flatMap(TestClock.adjust("1 second"), () =>
          ResourcePool.use(pool, (c) => Effect.succeed(c.id))
        )
        assert.notStrictEqual(id, 3)
      }).pipe(Effect.scoped)
  )

  it.effect("a borrower finding every idle resource expired gets the replacement acquired for min at once", () =>
    Effect.gen(function* () {
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({
        min: 1,
        max: 1,
        maxLifetime: "1 second",
        maxLifetimeJitter: 0,
        housekeepingInterval: "1 hour",
        acquireTimeout: "100 millis",
        // with `validate`, every borrow takes the path that waits
        validate: () => Effect.succeed(true),
        acquire
      })
      yield* settle
      yield* TestClock.adjust("1 second")
      // #1 expired between sweeps: retired on the borrow, and #2 (acquired without suspending) handed over
      assert.strictEqual(yield* ResourcePool.use(pool, (c) => Effect.succeed(c.id)), 2)
      assert.deepStrictEqual(yield* counts(pool), { size: 1, idle: 1, borrowed: 0, waiters: 0 })
    }).pipe(Effect.scoped)
  )

  it.effect("maxLifetimeJitter: resources acquired together get different lifetimes, within the bound", () =>
    Effect.gen(function* () {
      const { acquire, all } = connections()
      const pool = yield* ResourcePool.make({
        min: 4,
        max: 4,
        maxLifetime: "100 seconds",
        maxLifetimeJitter: 0.5,
        housekeepingInterval: "1 second",
        acquire
      })
      yield* settle
      assert.strictEqual(all.length, 4)
      const closedAt: Array<number> = []
      for (let t = 1; t <= 100; t++) {
        yield* TestClock.adjust("1 second")
        yield* settle
        for (const c of all.slice(0, 4)) if (c.closed && closedAt[c.id - 1] === undefined) closedAt[c.id - 1] = t
      }
      assert.strictEqual(closedAt.filter((t) => t !== undefined).length, 4)
      for (const t of closedAt) assert.isTrue(t >= 50 && t <= 100, `closed at ${t}`)
      assert.isTrue(new Set(closedAt).size > 1, `all closed at ${closedAt}`)
      assert.strictEqual((yield* pool.stats).size, 4)
    }).pipe(Effect.scoped, Effect.provide(Layer.empty))
  )

  it.effect("validation on borrow: a resource that fails it is retired and the borrower gets another", () =>
    Effect.gen(function* () {
      const { acquire, all, log } = connections()
      const bad = new Set([1])
      const checked: Array<number> = []
      const pool = yield* ResourcePool.make({
        max: 2,
        validateAfterIdle: "1 second",
        validate: (c) =>
          Effect.sync(() => {
            checked.push(c.id)
            return !bad.has(c.id)
          }),
        acquire
      })
      const events = yield* pool.subscribe
      // fresh: not idle long enough to be checked
      assert.strictEqual(yield* ResourcePool.use(pool, (c) => Effect.succeed(c.id)), 1)
      assert.deepStrictEqual(checked, [])
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* ResourcePool.use(pool, (c) => Effect.succeed(c.id)), 2)
      yield* settle
      assert.deepStrictEqual(checked, [1])
      assert.deepStrictEqual(log, ["open 1", "close 1", "open 2"])
      assert.isTrue(all[0]?.closed)
      const seen = (yield* drain(events)).flatMap((e) =>
        e._tag === "Invalidated" ? [e.reason] : e._tag === "Released" ? [e.reason] : []
      )
      assert.deepStrictEqual(seen, ["ValidationFailed", "Invalidated"])
      // a check that fails or hangs counts as false
      const hanging = yield* ResourcePool.make({
        max: 1,
        validateAfterIdle: 0,
        validationTimeout: "100 millis",
        validate: (c) => (c.id === 3 ? Effect.never : Effect.fail("unreachable")),
        acquire
      })
      yield* ResourcePool.use(hanging, () => Effect.void)
      yield* TestClock.adjust("1 millis")
      const next = yield* start(ResourcePool.use(hanging, (c) => Effect.succeed(c.id)))
      yield* TestClock.adjust("100 millis")
      // the hung check counts as failed: resource 3 is retired, and 4, acquired for this borrow, is not checked
      assert.strictEqual(yield* Fiber.join(next), 4)
      yield* settle
      assert.isTrue(all[2]?.closed)
    }).pipe(Effect.scoped)
  )

  it.effect("idle trim: resources idle past idleTimeout are released down to min, oldest first", () =>
    Effect.gen(function* () {
      const { acquire, log } = connections()
      const pool = yield* ResourcePool.make({
        min: 1,
        max: 3,
        idleTimeout: "1 minute",
        housekeepingInterval: "10 seconds",
        acquire
      })
      yield* settle
      const gate = yield* Deferred.make<void>()
      const fibers = [yield* start(hold(pool, gate)), yield* start(hold(pool, gate)), yield* start(hold(pool, gate))]
      assert.strictEqual((yield* pool.stats).size, 3)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(fibers)
      yield* TestClock.adjust("50 seconds")
      assert.strictEqual((yield* pool.stats).size, 3)
      yield* TestClock.adjust("10 seconds")
      yield* settle
      assert.deepStrictEqual(yield* counts(pool), { size: 1, idle: 1, borrowed: 0, waiters: 0 })
      assert.deepStrictEqual(log.slice(3).sort(), ["close 1", "close 2"])
      // never below min, however long it stays idle
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual((yield* pool.stats).size, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("failing acquire: retried in the background with backoff, the last failure reported to waiters", () =>
    Effect.gen(function* () {
      const attempts: Array<number> = []
      let up = false
      let n = 0
      const acquire = Effect.suspend(() =>
        Effect.flatMap(
          Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe())),
          (now) => {
            attempts.push(now)
            return up
              ? Effect.succeed({ id: ++n, closed: false })
              : Effect.fail(new Error(`refused #${attempts.length}`))
          }
        )
      )
      const pool = yield* ResourcePool.make({
        name: "db",
        min: 1,
        max: 4,
        acquireTimeout: "1 second",
        acquireRetryBase: "100 millis",
        acquireRetryCap: "400 millis",
        acquire
      })
      const events = yield* pool.subscribe
      const waiter = yield* start(ResourcePool.use(pool, (c) => Effect.succeed(c.id)))
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(Fiber.join(waiter))
      const reason = error.reason
      assert.strictEqual(reason._tag, "AcquireFailed")
      if (reason._tag !== "AcquireFailed") return
      assert.strictEqual(error.message, "Resource pool could not acquire a resource")
      assert.isTrue(reason.attempts >= 3 && reason.attempts <= attempts.length)
      assert.strictEqual((reason.cause as Error).message, `refused #${reason.attempts}`)
      // one probe at a time, each after a backoff of at least half the (doubling, capped) delay: no hot loop
      assert.isTrue(attempts.length >= 3 && attempts.length <= 8, `${attempts.length} attempts in 1 s`)
      const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0))
      for (const [i, gap] of gaps.entries()) {
        const temp = Math.min(400, 100 * 2 ** i)
        assert.isTrue(gap >= temp / 2 && gap <= temp, `gap ${i + 1}: ${gap}`)
      }
      const failed = (yield* drain(events)).filter((e) => e._tag === "AcquireFailed")
      // the first acquisition (for `min`) failed while `make` ran, before the subscription
      assert.strictEqual(failed.length, (yield* pool.stats).acquireFailures - 1)
      // the dependency comes back: the next retry fills the pool and a borrower gets it
      up = true
      yield* TestClock.adjust("400 millis")
      yield* settle
      assert.strictEqual(yield* ResourcePool.use(pool, (c) => Effect.succeed(c.id)), 1)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.consecutiveFailures, stats.acquired, stats.timeouts], [0, 1, 1])
    }).pipe(Effect.scoped)
  )

  it.effect("an acquisition that hangs is bounded by acquireTimeout and counted as a failure", () =>
    Effect.gen(function* () {
      const pool = yield* ResourcePool.make({
        max: 1,
        acquireTimeout: "1 second",
        acquireRetryBase: "10 seconds",
        acquireRetryCap: "10 seconds",
        acquire: Effect.never
      })
      const waiter = yield* start(ResourcePool.use(pool, () => Effect.void))
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(Fiber.join(waiter))
      assert.strictEqual(error.reason._tag, "AcquireFailed")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.acquireFailures, stats.acquiring], [1, 0])
    }).pipe(Effect.scoped)
  )

  it.effect("a borrower interrupted mid-use gives its resource back (or retires it with invalidateOnInterrupt)", () =>
    Effect.gen(function* () {
      const { acquire, all } = connections()
      const pool = yield* ResourcePool.make({ max: 1, acquire })
      const user = yield* start(ResourcePool.use(pool, () => Effect.never))
      assert.strictEqual((yield* pool.stats).borrowed, 1)
      yield* Fiber.interrupt(user)
      assert.deepStrictEqual(yield* counts(pool), { size: 1, idle: 1, borrowed: 0, waiters: 0 })
      assert.strictEqual(yield* ResourcePool.use(pool, (c) => Effect.succeed(c.id)), 1)

      const strict = yield* ResourcePool.make({ max: 1, invalidateOnInterrupt: true, acquire })
      const events = yield* strict.subscribe
      const interrupted = yield* start(ResourcePool.use(strict, () => Effect.never))
      yield* Fiber.interrupt(interrupted)
      yield* settle
      assert.isTrue(all[1]?.closed)
      assert.strictEqual(yield* ResourcePool.use(strict, (c) => Effect.succeed(c.id)), 3)
      const seen = (yield* drain(events)).flatMap((e) =>
        e._tag === "Invalidated" || e._tag === "Released" ? [`${e._tag} ${e.reason}`] : []
      )
      assert.deepStrictEqual(seen, ["Invalidated Interrupted", "Released Invalidated"])
      // a failure is not an interruption: given back
      yield* Effect.exit(ResourcePool.use(strict, () => Effect.fail("boom")))
      assert.strictEqual((yield* strict.stats).idle, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("an interrupted waiter never gets a resource, even one handed to it just before", () =>
    Effect.gen(function* () {
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({ max: 1, acquire })
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(hold(pool, gate))
      const ran: Array<string> = []
      const first = yield* start(ResourcePool.use(pool, () => Effect.sync(() => ran.push("first"))))
      // interrupted while waiting: it leaves the line
      yield* Fiber.interrupt(first)
      assert.strictEqual((yield* pool.stats).waiters, 0)
      // interrupted just as it is granted: the holder's return hands it the resource, then interrupts it at once
      let second: Fiber.Fiber<number, ResourcePool.ResourcePoolError> | undefined
      const releasing = yield* start(
        Effect.andThen(
          Fiber.join(holder),
          Effect.sync(() => second?.interruptUnsafe())
        )
      )
      second = yield* start(ResourcePool.use(pool, () => Effect.sync(() => ran.push("second"))))
      const third = yield* start(ResourcePool.use(pool, () => Effect.sync(() => ran.push("third"))))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(releasing)
      yield* Fiber.await(second)
      yield* Fiber.join(third)
      assert.deepStrictEqual(ran, ["third"])
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(second)))
      assert.deepStrictEqual(yield* counts(pool), { size: 1, idle: 1, borrowed: 0, waiters: 0 })
    }).pipe(Effect.scoped)
  )

  it.effect("leak detection: a borrow held longer than leakDetection is reported once", () =>
    Effect.gen(function* () {
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({ name: "db", max: 2, leakDetection: "10 seconds", acquire })
      const events = yield* pool.subscribe
      const short = yield* start(ResourcePool.use(pool, () => Effect.sleep("9 seconds")))
      yield* TestClock.adjust("9 seconds")
      yield* Fiber.join(short)
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(hold(pool, gate))
      yield* TestClock.adjust("30 seconds")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      const leaks = (yield* drain(events)).filter((e) => e._tag === "LeakSuspected")
      assert.deepStrictEqual(
        leaks.map((e) => (e._tag === "LeakSuspected" ? [e.pool, Duration.toMillis(e.heldFor), e.fiberId] : [])),
        [["db", 10_000, holder.id]]
      )
      assert.strictEqual((yield* pool.stats).leaksSuspected, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("shutdown: waiters fail with PoolClosed, idle resources close, borrowed ones close when returned", () =>
    Effect.gen(function* () {
      const { acquire, log } = connections()
      const scope = yield* Scope.make()
      const pool = yield* ResourcePool.make({ max: 2, acquire }).pipe(Scope.provide(scope))
      const gate = yield* Deferred.make<void>()
      const a = yield* start(hold(pool, gate))
      yield* ResourcePool.use(pool, () => Effect.void) // a second one, idle
      const b = yield* start(hold(pool, gate))
      const waiter = yield* start(ResourcePool.use(pool, () => Effect.void))
      const closing = yield* start(Scope.close(scope, Exit.void))
      const error = yield* Effect.flip(Fiber.join(waiter))
      assert.strictEqual(error.reason._tag, "PoolClosed")
      assert.isFalse(ResourcePool.isRejection(error))
      assert.isUndefined(closing.pollUnsafe())
      assert.deepStrictEqual(log, ["open 1", "open 2"])
      const after = yield* Effect.flip(ResourcePool.use(pool, () => Effect.void))
      assert.strictEqual(after.reason._tag, "PoolClosed")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll([a, b])
      yield* Fiber.join(closing)
      assert.deepStrictEqual(log.slice(2).sort(), ["close 1", "close 2"])
    })
  )

  it.effect("shutdown: after shutdownTimeout the borrowers still holding resources are interrupted", () =>
    Effect.gen(function* () {
      const { acquire, all } = connections()
      const scope = yield* Scope.make()
      const pool = yield* ResourcePool.make({ max: 1, shutdownTimeout: "5 seconds", acquire }).pipe(
        Scope.provide(scope)
      )
      const holder = yield* start(ResourcePool.use(pool, () => Effect.never))
      const closing = yield* start(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("4 seconds")
      assert.isUndefined(closing.pollUnsafe())
      assert.isFalse(all[0]?.closed)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      assert.isTrue(all[0]?.closed)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(holder)))
      assert.deepStrictEqual(yield* counts(pool), { size: 0, idle: 0, borrowed: 0, waiters: 0 })
    })
  )

  it.effect("bounded memory: at most maxWaiters wait; more are rejected at once with TooManyWaiters", () =>
    Effect.gen(function* () {
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({ max: 1, maxWaiters: 2, acquire })
      const events = yield* pool.subscribe
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(hold(pool, gate))
      const w1 = yield* start(hold(pool, gate))
      const w2 = yield* start(hold(pool, gate))
      const error = yield* Effect.flip(hold(pool, gate))
      const reason = error.reason
      assert.strictEqual(reason._tag, "TooManyWaiters")
      if (reason._tag !== "TooManyWaiters") return
      assert.strictEqual(reason.maxWaiters, 2)
      assert.isTrue(ResourcePool.isRejection(error))
      const rejected = (yield* drain(events)).filter((e) => e._tag === "Rejected")
      assert.deepStrictEqual(
        rejected.map((e) => (e._tag === "Rejected" ? e.reason : "")),
        ["TooManyWaiters"]
      )
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.joinAll([holder, w1, w2]), [1, 1, 1])
      assert.strictEqual((yield* pool.stats).rejected, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("64 borrowers over 8 resources: never more than max open, every one served", () =>
    Effect.gen(function* () {
      const { acquire, all } = connections()
      const pool = yield* ResourcePool.make({ max: 8, acquire })
      let inUse = 0
      let peak = 0
      const seenTwice: Array<number> = []
      const busy = new Set<number>()
      const results = yield* Effect.forEach(
        Array.from({ length: 64 }, (_, i) => i),
        () =>
          ResourcePool.use(pool, (c) =>
            Effect.gen(function* () {
              if (busy.has(c.id)) seenTwice.push(c.id)
              busy.add(c.id)
              inUse++
              peak = Math.max(peak, inUse)
              yield* Effect.sleep("10 millis")
              inUse--
              busy.delete(c.id)
              return c.id
            })
          ),
        { concurrency: "unbounded" }
      ).pipe(Effect.forkChild)
      yield* TestClock.adjust("100 millis")
      const ids = yield* Fiber.join(results)
      assert.strictEqual(ids.length, 64)
      assert.strictEqual(all.length, 8)
      assert.strictEqual(peak, 8)
      assert.deepStrictEqual(seenTwice, [])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.size, stats.idle, stats.borrows], [8, 8, 64])
    }).pipe(Effect.scoped)
  )

  it.effect("invalidate: an idle resource is released at once, a borrowed one when it comes back", () =>
    Effect.gen(function* () {
      const { acquire, all } = connections()
      const pool = yield* ResourcePool.make({ max: 2, acquire })
      const first = yield* ResourcePool.use(pool, (c) => Effect.succeed(c))
      yield* pool.invalidate(first)
      yield* settle
      assert.isTrue(first.closed)
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(
        ResourcePool.use(pool, (c) => Effect.andThen(pool.invalidate(c), Effect.as(Deferred.await(gate), c)))
      )
      assert.isFalse(all[1]?.closed)
      yield* Deferred.succeed(gate, undefined)
      const second = yield* Fiber.join(holder)
      yield* settle
      assert.isTrue(second.closed)
      // a value the pool does not hold: nothing happens
      yield* pool.invalidate({ id: 99, closed: false })
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.invalidated, stats.released, stats.size], [2, 2, 0])
    }).pipe(Effect.scoped)
  )

  it.effect("keepalive: idle resources are validated in the background; a bad one is replaced", () =>
    Effect.gen(function* () {
      const { acquire, log } = connections()
      const bad = new Set<number>()
      const pool = yield* ResourcePool.make({
        min: 1,
        max: 1,
        keepalive: "1 minute",
        housekeepingInterval: "30 seconds",
        validate: (c) => Effect.succeed(!bad.has(c.id)),
        acquire
      })
      yield* settle
      yield* TestClock.adjust("60 seconds")
      yield* settle
      assert.deepStrictEqual(log, ["open 1"])
      bad.add(1)
      yield* TestClock.adjust("60 seconds")
      yield* settle
      assert.deepStrictEqual(log, ["open 1", "close 1", "open 2"])
      assert.strictEqual((yield* pool.stats).invalidated, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("metrics: size, idle, borrowed, waiters, waits, timeouts, acquisitions and releases by name", () =>
    Effect.gen(function* () {
      const { acquire } = connections()
      const pool = yield* ResourcePool.make({ name: "metrics-db", max: 1, acquireTimeout: "1 second", acquire })
      const name = { "resilience.name": "metrics-db" }
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(hold(pool, gate))
      const timedOut = yield* start(ResourcePool.use(pool, () => Effect.void))
      yield* TestClock.adjust("500 millis")
      const waiting = yield* start(hold(pool, gate))
      const read = Effect.map(Metric.snapshot, (snapshots) => ({
        size: metricValue(snapshots, "resilience.pool.size", name),
        idle: metricValue(snapshots, "resilience.pool.idle", name),
        borrowed: metricValue(snapshots, "resilience.pool.borrowed", name),
        waiters: metricValue(snapshots, "resilience.pool.waiters", name),
        waits: metricValue(snapshots, "resilience.pool.wait.duration", name),
        timeouts: metricValue(snapshots, "resilience.pool.timeouts", {
          ...name,
          "resilience.reason": "acquire_timeout"
        }),
        acquired: metricValue(snapshots, "resilience.pool.acquisitions", { ...name, "resilience.outcome": "success" })
      }))
      assert.deepStrictEqual(yield* read, {
        size: 1,
        idle: 0,
        borrowed: 1,
        waiters: 2,
        waits: [1, 0],
        timeouts: 0,
        acquired: 1
      })
      yield* TestClock.adjust("500 millis")
      yield* Effect.exit(Fiber.join(timedOut))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll([holder, waiting])
      assert.deepStrictEqual(yield* read, {
        size: 1,
        idle: 1,
        borrowed: 0,
        waiters: 0,
        waits: [2, 0.5],
        timeouts: 1,
        acquired: 1
      })
    }).pipe(Effect.scoped)
  )

  it.effect("layer: a pool provided under your own tag, released with the layer", () =>
    Effect.gen(function* () {
      const { acquire, log } = connections()
      class Db extends Context.Service<Db, ResourcePool.ResourcePool<Connection>>()("test/Db") {}
      const id = yield* Effect.flatMap(
        Db,
        ResourcePool.use((c: Connection) => Effect.succeed(c.id))
      ).pipe(Effect.provide(ResourcePool.layer(Db, { name: "db", acquire })))
      assert.strictEqual(id, 1)
      assert.deepStrictEqual(log, ["open 1", "close 1"])
    })
  )
})
