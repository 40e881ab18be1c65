/**
 * The bulkhead over a remote store (`Bulkhead.BulkheadStore` with `remote`):
 * the store conformance suite (`BulkheadStoreSuite.ts`) over an in-memory
 * double that keeps leases on the test clock, as the Redis store keeps them
 * on Redis TIME, then what only a double can show — operations counted,
 * latency, a store that fails or loses leases. The Redis store runs the same
 * suite in `packages/redis/test/RedisBulkhead.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead } from "@effect-resilience/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"
import { makeRemoteDouble as makeDouble, suite } from "./BulkheadStoreSuite.ts"

// one double for the whole suite: every case uses bulkheads of its own names
suite("in-memory double", makeDouble().layer, { leaseMillis: 3_000 })

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

  // each wait after a refused poll runs from when the answer came: a slow store does not push the
  // rejection past maxWait by its round trips (it did by two: found by the conformance suite's author)
  it.effect("a waiter whose polls are slow times out within one round trip of maxWait", () =>
    Effect.gen(function* () {
      const double = makeDouble({ baseMillis: 10, capMillis: 100 })
      const [a, b] = yield* pair(double, { maxConcurrent: 1, maxQueue: 5, maxWait: "500 millis" })
      const gate = yield* Deferred.make<void>()
      yield* start(Bulkhead.isolate(Deferred.await(gate), a))
      // every request to the store now takes 100 ms
      double.control.latencyMillis = 100
      const waiter = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, b)))
      // refused after 100 ms, it waits until 600 ms; a poll in flight then may take it to 700 ms
      // (today it is rejected at 800 ms: it sleeps and polls once more after its deadline)
      let elapsed = 0
      for (; elapsed < 2_000 && waiter.pollUnsafe() === undefined; elapsed += 10) yield* TestClock.adjust("10 millis")
      double.control.latencyMillis = 0
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual((yield* Fiber.join(waiter)).reason._tag, "BulkheadTimeout")
      assert.isAtMost(elapsed, 700)
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
      double.lose("default")
      yield* TestClock.adjust("250 millis")
      assert.strictEqual(double.calls.renew, 11)
      assert.strictEqual((yield* bulkhead.stats).storeErrors, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(double.calls.renew, 11)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(call)
      assert.strictEqual(double.calls.release, 1)
      // a call's renewer ends with it: renewals while it runs, none after
      const second = yield* Deferred.make<void>()
      const again = yield* start(Bulkhead.isolate(Deferred.await(second), bulkhead))
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(double.calls.renew, 16)
      yield* Deferred.succeed(second, undefined)
      yield* Fiber.join(again)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(double.calls.renew, 16)
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
