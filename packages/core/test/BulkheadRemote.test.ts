/**
 * The bulkhead over a remote store (`Bulkhead.BulkheadStore` with `remote`),
 * driven by hand over a store double that keeps leases on the test clock, as
 * the Redis store keeps them on Redis TIME. The Redis store itself is tested
 * on a real server in `packages/redis/test/RedisBulkhead.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"

/** A store double: named leases per key on the test clock, with a switch to make every operation fail. */
const makeDouble = (
  options: { readonly leaseMillis?: number; readonly baseMillis?: number; readonly capMillis?: number } = {}
) => {
  const leaseMillis = options.leaseMillis ?? 3_000
  const leases = new Map<string, Map<string, { readonly cost: number; expiresAt: number }>>()
  const calls = { acquire: 0, renew: 0, release: 0 }
  const control = { down: false, latencyMillis: 0 }
  const failure = (key: string, operation: string) =>
    new Bulkhead.BulkheadStoreError({ bulkhead: "double", key, message: `${operation} failed: store down` })
  const live = (key: string, now: number) => {
    const held = leases.get(key) ?? new Map()
    for (const [permit, lease] of held) if (lease.expiresAt <= now) held.delete(permit)
    leases.set(key, held)
    return held
  }
  const sum = (held: Map<string, { readonly cost: number }>) => {
    let total = 0
    for (const lease of held.values()) total += lease.cost
    return total
  }
  const op = <A>(
    key: string,
    operation: string,
    f: (now: number) => A
  ): Effect.Effect<A, Bulkhead.BulkheadStoreError> =>
    Effect.andThen(
      control.latencyMillis > 0 ? Effect.sleep(control.latencyMillis) : Effect.void,
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        control.down ? Effect.fail(failure(key, operation)) : Effect.sync(() => f(now))
      )
    )
  const permits: Bulkhead.RemotePermits = {
    acquire: (key, permit, cost, limit) =>
      op(key, "acquire", (now) => {
        calls.acquire++
        const held = live(key, now)
        if (held.has(permit)) return { granted: true, held: sum(held) }
        const total = sum(held)
        if (total + cost > limit) return { granted: false, held: total }
        held.set(permit, { cost, expiresAt: now + leaseMillis })
        return { granted: true, held: total + cost }
      }),
    renew: (key, permit) =>
      op(key, "renew", (now) => {
        calls.renew++
        const lease = live(key, now).get(permit)
        if (lease === undefined) return false
        lease.expiresAt = now + leaseMillis
        return true
      }),
    release: (key, permit) =>
      op(key, "release", (now) => {
        calls.release++
        return live(key, now).delete(permit)
      }),
    held: (key) => op(key, "held", (now) => sum(live(key, now))),
    renewMillis: Math.floor(leaseMillis / 3),
    poll: { baseMillis: options.baseMillis ?? 10, capMillis: options.capMillis ?? 100 }
  }
  const store: Bulkhead.BulkheadStore = { remote: () => Effect.succeed(permits) }
  const heldNow = (key: string) => Effect.map(Clock.currentTimeMillis, (now) => sum(live(key, now)))
  return { store, layer: Layer.succeed(Bulkhead.BulkheadStore, store), calls, control, heldNow, leases }
}

/** Forks `effect` and lets it run until it suspends. */
const start = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    return fiber
  })

/** Two bulkheads ("processes") over one store double. */
const pair = (double: ReturnType<typeof makeDouble>, input: Bulkhead.Input) =>
  Effect.all([Bulkhead.make(input), Bulkhead.make(input)]).pipe(Effect.provide(double.layer))

describe("Bulkhead over a remote store", () => {
  it.effect("two bulkheads over one store never run more than maxConcurrent between them", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const [a, b] = yield* pair(double, { name: "shared", maxConcurrent: 3 })
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
      for (let i = 0; i < 4; i++) {
        fibers.push(yield* start(Effect.exit(Bulkhead.isolate(guarded, a))))
        fibers.push(yield* start(Effect.exit(Bulkhead.isolate(guarded, b))))
      }
      assert.strictEqual(running, 3)
      assert.strictEqual((yield* a.state()).active, 3)
      yield* Deferred.succeed(gate, undefined)
      const exits = yield* Effect.forEach(fibers, Fiber.join)
      assert.strictEqual(exits.filter(Exit.isSuccess).length, 3)
      assert.strictEqual(exits.filter(Exit.isFailure).length, 5)
      assert.strictEqual(peak, 3)
      assert.strictEqual(yield* double.heldNow("shared"), 0)
      const [sa, sb] = [yield* a.stats, yield* b.stats]
      assert.strictEqual(sa.admitted + sb.admitted, 3)
      assert.strictEqual(sa.rejected + sb.rejected, 5)
      assert.deepStrictEqual([sa.keys, sb.keys, sa.active, sb.active], [0, 0, 0, 0])
    })
  )

  it.effect("a waiter polls with capped backoff until another process gives its permit back", () =>
    Effect.gen(function* () {
      const double = makeDouble({ baseMillis: 10, capMillis: 100 })
      const [a, b] = yield* pair(double, { maxConcurrent: 1, maxQueue: 5, maxWait: "10 seconds" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      const waiter = yield* start(Bulkhead.isolate(Effect.succeed("ran"), b))
      assert.strictEqual(double.calls.acquire, 2)
      assert.deepStrictEqual((yield* b.stats).queued, 1)
      // a second of polling: the waits double from ~10 ms up to the 100 ms cap
      const before = double.calls.acquire
      yield* TestClock.adjust("1 second")
      const polls = double.calls.acquire - before
      // at least one poll per cap (100 ms) after the ramp; at most one per half the first wait (5 ms) ramping
      assert.isAtLeast(polls, 8)
      assert.isAtMost(polls, 25)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.isUndefined(waiter.pollUnsafe())
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(waiter), "ran")
    })
  )

  it.effect("a waiter that runs out of maxWait is rejected with BulkheadTimeout, leaving nothing behind", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const [a, b] = yield* pair(double, { maxConcurrent: 1, maxQueue: 5, maxWait: "500 millis" })
      const gate = yield* Deferred.make<void>()
      yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      const waiter = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, b)))
      yield* TestClock.adjust("499 millis")
      assert.isUndefined(waiter.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(waiter)
      assert.strictEqual(error.reason._tag, "BulkheadTimeout")
      assert.isTrue(Bulkhead.isRejection(error))
      const stats = yield* b.stats
      assert.deepStrictEqual([stats.queued, stats.keys, stats.rejected], [0, 0, 1])
      assert.strictEqual(yield* double.heldNow("default"), 1)
    })
  )

  it.effect("with maxQueue 0 a call finding the permits taken elsewhere is rejected at once with BulkheadFull", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const [a, b] = yield* pair(double, { maxConcurrent: 2 })
      const gate = yield* Deferred.make<void>()
      yield* start(Bulkhead.isolate(Deferred.await(gate), a, { key: "t", cost: 2 }))
      const error = yield* Effect.flip(Bulkhead.isolate(Effect.void, b, { key: "t" }))
      assert.strictEqual(error.reason._tag, "BulkheadFull")
      if (error.reason._tag === "BulkheadFull") {
        assert.deepStrictEqual([error.reason.active, error.reason.queued, error.reason.maxConcurrent], [2, 0, 2])
      }
      // another key has its own permits
      yield* Bulkhead.isolate(Effect.void, b, { key: "u" })
      const cost = yield* Effect.flip(Bulkhead.isolate(Effect.void, b, { cost: 3 }))
      assert.strictEqual(cost.reason._tag, "BulkheadCostExceeded")
    })
  )

  it.effect("in one process the line is served by priority, then arrival", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const [a, b] = yield* pair(double, { maxConcurrent: 1, maxQueue: 5, maxWait: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      const ran: Array<string> = []
      const call = (id: string, priority: number) =>
        Bulkhead.isolate(
          Effect.sync(() => ran.push(id)),
          b,
          { priority }
        )
      const low = yield* start(call("low", 0))
      const low2 = yield* start(call("low2", 0))
      const high = yield* start(call("high", 5))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* TestClock.adjust("1 second")
      yield* Effect.forEach([low, low2, high], Fiber.join)
      assert.deepStrictEqual(ran, ["high", "low", "low2"])
    })
  )

  it.effect("a permit given back in this process lets its waiter in at once, without waiting for a poll", () =>
    Effect.gen(function* () {
      const double = makeDouble({ baseMillis: 1_000, capMillis: 10_000 })
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 1, maxWait: "1 minute" }).pipe(
        Effect.provide(double.layer)
      )
      const gate = yield* Deferred.make<void>()
      const first = yield* start(Bulkhead.isolate(Deferred.await(gate), bulkhead))
      const second = yield* start(Bulkhead.isolate(Effect.succeed("second"), bulkhead))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      assert.strictEqual(yield* Fiber.join(second), "second")
    })
  )

  it.effect("interruption while waiting or running leaks nothing, here or in the store", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const [a, b] = yield* pair(double, { maxConcurrent: 2, maxQueue: 10, maxWait: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const running = [
        yield* start(Bulkhead.isolate(Deferred.await(gate), a)),
        yield* start(Bulkhead.isolate(Deferred.await(gate), b))
      ]
      const waiting = []
      for (let i = 0; i < 6; i++)
        waiting.push(yield* start(Bulkhead.isolate(Effect.void, i % 2 === 0 ? a : b, { priority: i % 3 })))
      yield* TestClock.adjust("250 millis")
      assert.strictEqual((yield* a.stats).queued + (yield* b.stats).queued, 6)
      yield* Effect.forEach(waiting, Fiber.interrupt)
      assert.strictEqual((yield* a.stats).queued + (yield* b.stats).queued, 0)
      assert.strictEqual(yield* double.heldNow("default"), 2)
      yield* Effect.forEach(running, Fiber.interrupt)
      assert.strictEqual(yield* double.heldNow("default"), 0)
      const [sa, sb] = [yield* a.stats, yield* b.stats]
      assert.deepStrictEqual([sa.active, sb.active, sa.keys, sb.keys], [0, 0, 0, 0])
      // the renewers stopped with their calls: no renewal after a lease's worth of time
      const renewals = double.calls.renew
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(double.calls.renew, renewals)
    })
  )

  it.effect("a call interrupted while its request is in flight gives back the permit it was granted", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 }).pipe(Effect.provide(double.layer))
      double.control.latencyMillis = 10
      let ran = false
      const call = yield* start(
        Bulkhead.isolate(
          Effect.sync(() => (ran = true)),
          bulkhead
        )
      )
      // interrupting waits for the answer (a grant must not be lost), then gives the permit back
      const interrupting = yield* start(Fiber.interrupt(call))
      yield* TestClock.adjust("10 millis")
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(interrupting)
      assert.isFalse(ran)
      assert.strictEqual(double.calls.acquire, 1)
      assert.strictEqual(double.calls.release, 1)
      double.control.latencyMillis = 0
      assert.strictEqual(yield* double.heldNow("default"), 0)
      assert.deepStrictEqual([(yield* bulkhead.stats).active, (yield* bulkhead.stats).keys], [0, 0])
    })
  )

  it.effect("a running call's lease is renewed every renewMillis; a lease lost on renewal is counted", () =>
    Effect.gen(function* () {
      const double = makeDouble({ leaseMillis: 300 })
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 }).pipe(Effect.provide(double.layer))
      const gate = yield* Deferred.make<void>()
      const call = yield* start(Bulkhead.isolate(Deferred.await(gate), bulkhead))
      yield* TestClock.adjust("1 second")
      // ten renewals (every 100 ms) kept the 300 ms lease live
      assert.strictEqual(double.calls.renew, 10)
      assert.strictEqual(yield* double.heldNow("default"), 1)
      // the lease is taken away (the store lost it): the next renewal finds it gone, and renewals stop
      double.leases.get("default")?.clear()
      yield* TestClock.adjust("250 millis")
      assert.strictEqual(double.calls.renew, 11)
      assert.strictEqual((yield* bulkhead.stats).storeErrors, 1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(call)
      assert.strictEqual(double.calls.release, 1)
    })
  )

  it.effect("a failing store: onStoreError allow runs the call; fail rejects it with BulkheadStoreError", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const open = yield* Bulkhead.make({ name: "open" }).pipe(Effect.provide(double.layer))
      const strict = yield* Bulkhead.make({ name: "strict", onStoreError: "fail" }).pipe(Effect.provide(double.layer))
      double.control.down = true
      assert.strictEqual(yield* Bulkhead.isolate(Effect.succeed("ran"), open), "ran")
      const error = yield* Effect.flip(Bulkhead.isolate(Effect.succeed("ran"), strict))
      assert.strictEqual(error.reason._tag, "BulkheadStoreError")
      assert.isFalse(Bulkhead.isRejection(error))
      assert.strictEqual((yield* open.stats).storeErrors, 1)
      assert.deepStrictEqual([(yield* strict.stats).storeErrors, (yield* strict.stats).rejected], [1, 1])
      // state falls back to this process's own permits
      assert.strictEqual((yield* open.state()).active, 0)
    })
  )

  it.effect("a store failing while a call waits: the waiter follows onStoreError", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const input = { maxConcurrent: 1, maxQueue: 2, maxWait: "1 minute" } as const
      const [a, b] = yield* pair(double, input)
      const strict = yield* Bulkhead.make({ ...input, onStoreError: "fail" }).pipe(Effect.provide(double.layer))
      const gate = yield* Deferred.make<void>()
      yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      const open = yield* start(Bulkhead.isolate(Effect.succeed("ran without a permit"), b))
      const refused = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, strict)))
      double.control.down = true
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(open), "ran without a permit")
      assert.strictEqual((yield* Fiber.join(refused)).reason._tag, "BulkheadStoreError")
      assert.deepStrictEqual([(yield* b.stats).keys, (yield* strict.stats).keys], [0, 0])
    })
  )

  it.effect("events: Queued, Acquired and Rejected, as in memory", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const [a, b] = yield* pair(double, { maxConcurrent: 1, maxQueue: 1, maxWait: "1 minute" })
      const events = yield* b.subscribe
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      const waiter = yield* start(Bulkhead.isolate(Effect.void, b))
      yield* Effect.exit(Bulkhead.isolate(Effect.void, b))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiter)
      const tags = []
      for (let i = 0; i < 3; i++) tags.push((yield* Queue.take(events))._tag)
      assert.deepStrictEqual(tags, ["Queued", "Rejected", "Acquired"])
    }).pipe(Effect.scoped)
  )

  it.effect("an adaptive limit over a remote store is InvalidOptions, listed with every other bad field", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const error = yield* Effect.flip(
        Bulkhead.make({ maxConcurrent: 0, limit: { algorithm: "aimd" } }).pipe(Effect.provide(double.layer))
      )
      assert.deepStrictEqual(
        error.issues.map((issue) => issue.path),
        ["maxConcurrent", "limit"]
      )
      const alone = yield* Effect.flip(
        Bulkhead.make({ limit: { algorithm: "vegas" } }).pipe(Effect.provide(double.layer))
      )
      assert.deepStrictEqual(
        alone.issues.map((issue) => issue.path),
        ["limit"]
      )
      // in memory the same limit is fine
      const memory = yield* Bulkhead.make({ limit: { algorithm: "vegas" } })
      assert.strictEqual(memory.options.limit?.algorithm, "vegas")
    })
  )

  it.effect("layerStoreMemory puts a bulkhead back in the process over a remote store", () =>
    Effect.gen(function* () {
      const double = makeDouble()
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 }).pipe(
        Effect.provide(Bulkhead.layerStoreMemory()),
        Effect.provide(double.layer)
      )
      yield* Bulkhead.isolate(Effect.void, bulkhead)
      assert.strictEqual(double.calls.acquire, 0)
    })
  )
})
