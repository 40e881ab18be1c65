/**
 * The remote `BulkheadStore` contract as a reusable suite: every store that
 * holds permits outside the process (the in-memory double here, Redis, Redis
 * Cluster and Redis without functions in @effect-resilience/redis) runs the
 * same cases, so the implementations cannot drift.
 *
 * Two kinds of case:
 *
 * - store cases drive the `RemotePermits` operations (`acquire`, `renew`,
 *   `release`, `held`) directly: what any store must do;
 * - bulkhead cases run two `Bulkhead`s ("processes", each over its own build
 *   of the store layer: over Redis, its own connection where the layer makes
 *   one) sharing the store's permits through `isolate`.
 *
 * Time: the bulkheads' polls, renewals and deadlines run on the `TestClock`.
 * `adjust` moves time for the bulkheads and the store alike (a store on
 * another clock, Redis `TIME`, waits for real as well, so its leases are
 * short); `settle` lets requests in flight reach the store and answer without
 * moving the bulkheads' clock (a yield for a store on the test clock, a real
 * millisecond for Redis).
 */
import { assert, describe, it } from "@effect/vitest"
import { Bulkhead } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"

// ---------------------------------------------------------------------------
// the in-memory double
// ---------------------------------------------------------------------------

/** A lease in the double: its cost, and when it runs out (test clock, ms). */
interface Lease {
  readonly cost: number
  expiresAt: number
}

/**
 * A remote store double: named leases per bulkhead and key on the test
 * clock (as the Redis store keeps them on Redis `TIME`), its operations
 * counted, with switches to make every operation fail or take time.
 */
export const makeRemoteDouble = (
  options: { readonly leaseMillis?: number; readonly baseMillis?: number; readonly capMillis?: number } = {}
) => {
  const leaseMillis = options.leaseMillis ?? 3_000
  /** Leases by `<bulkhead>\u0000<key>`, then by permit. */
  const leases = new Map<string, Map<string, Lease>>()
  const calls = { acquire: 0, renew: 0, release: 0 }
  const control = { down: false, latencyMillis: 0 }
  const live = (slot: string, now: number) => {
    const held = leases.get(slot) ?? new Map<string, Lease>()
    for (const [permit, lease] of held) if (lease.expiresAt <= now) held.delete(permit)
    if (held.size === 0) leases.delete(slot)
    else leases.set(slot, held)
    return held
  }
  const sum = (held: ReadonlyMap<string, Lease>) => {
    let total = 0
    for (const lease of held.values()) total += lease.cost
    return total
  }
  const permitsOf = (name: string): Bulkhead.RemotePermits => {
    const slotOf = (key: string) => `${name}\u0000${key}`
    const op = <A>(
      key: string,
      operation: string,
      f: (slot: string, now: number) => A
    ): Effect.Effect<A, Bulkhead.BulkheadStoreError> =>
      Effect.andThen(
        control.latencyMillis > 0 ? Effect.sleep(control.latencyMillis) : Effect.void,
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          control.down
            ? Effect.fail(
                new Bulkhead.BulkheadStoreError({ bulkhead: name, key, message: `${operation} failed: store down` })
              )
            : Effect.sync(() => f(slotOf(key), now))
        )
      )
    return {
      acquire: (key, permit, cost, limit) =>
        op(key, "acquire", (slot, now) => {
          calls.acquire++
          const held = live(slot, now)
          const total = sum(held)
          if (held.has(permit)) return { granted: true, held: total }
          if (total + cost > limit) return { granted: false, held: total }
          held.set(permit, { cost, expiresAt: now + leaseMillis })
          leases.set(slot, held)
          return { granted: true, held: total + cost }
        }),
      renew: (key, permit) =>
        op(key, "renew", (slot, now) => {
          calls.renew++
          const lease = live(slot, now).get(permit)
          if (lease === undefined) return false
          lease.expiresAt = now + leaseMillis
          return true
        }),
      release: (key, permit) =>
        op(key, "release", (slot, now) => {
          calls.release++
          const released = live(slot, now).delete(permit)
          live(slot, now)
          return released
        }),
      held: (key) => op(key, "held", (slot, now) => sum(live(slot, now))),
      renewMillis: Math.max(1, Math.floor(leaseMillis / 3)),
      poll: { baseMillis: options.baseMillis ?? 10, capMillis: options.capMillis ?? 100 }
    }
  }
  const store: Bulkhead.BulkheadStore = { remote: ({ name }) => Effect.sync(() => permitsOf(name)) }
  /** The permits held on a bulkhead's key now. */
  const heldNow = (name: string, key = name) =>
    Effect.map(Clock.currentTimeMillis, (now) => sum(live(`${name}\u0000${key}`, now)))
  /** Drops every lease of a bulkhead's key, as a store that lost them. */
  const lose = (name: string, key = name) => leases.delete(`${name}\u0000${key}`)
  return {
    store,
    layer: Layer.succeed(Bulkhead.BulkheadStore, store),
    leaseMillis,
    calls,
    control,
    heldNow,
    lose
  }
}

// ---------------------------------------------------------------------------
// the suite
// ---------------------------------------------------------------------------

export interface SuiteOptions {
  /** How long a permit's lease lasts without a renewal in this store, in ms (as its layer was configured). */
  readonly leaseMillis: number
  /** Moves time forward for the bulkheads and the store (default `TestClock.adjust`). */
  readonly adjust?: ((duration: Duration.Input) => Effect.Effect<void>) | undefined
  /** Lets requests in flight answer, without moving the bulkheads' clock (default one `Effect.yieldNow`). */
  readonly settle?: Effect.Effect<void> | undefined
}

/**
 * Registers the conformance cases for a remote store layer: each build of
 * `layer` is one process's store, and every build shares the permits.
 */
export const suite = (name: string, layer: Layer.Layer<never, unknown>, options: SuiteOptions): void => {
  const adjust = options.adjust ?? TestClock.adjust
  const settle = options.settle ?? Effect.yieldNow
  const leaseMillis = options.leaseMillis
  const store = Layer.orDie(layer)

  const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2)}`
  /** One process's store. */
  const processStore: Effect.Effect<Context.Context<never>, never, Scope.Scope> = Layer.build(store)
  /** A bulkhead in a process. */
  const bulkheadOn = (process: Context.Context<never>, input: Bulkhead.Input) =>
    Bulkhead.make(input).pipe(Effect.provide(process), Effect.orDie)
  /** The permits of bulkhead `bulkhead` in a process's store, to play a process by hand. */
  const permitsOn = (process: Context.Context<never>, bulkhead: string) =>
    Effect.suspend(() => {
      const remote = Context.get(process, Bulkhead.BulkheadStore).remote
      return remote === undefined ? Effect.die(`${name}: the store is not remote`) : remote({ name: bulkhead })
    })
  /** Forks `effect` and lets it run until it suspends (its request may still be in flight). */
  const start = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(effect, { startImmediately: true })
      yield* Effect.yieldNow
      return fiber
    })
  /** Settles until `condition` holds (bounded: fails the case naming `what`). */
  const eventually = (condition: Effect.Effect<boolean, unknown>, what: string) =>
    Effect.gen(function* () {
      for (let i = 0; i < 2_000; i++) {
        if (yield* Effect.orDie(condition)) return
        yield* settle
      }
      assert.fail(`${name}: never ${what}`)
    })
  const isDone = (fiber: Fiber.Fiber<unknown, unknown>) => Effect.sync(() => fiber.pollUnsafe() !== undefined)
  /** What a call came to: "ran", or its rejection's reason. */
  const outcome = <E extends Bulkhead.BulkheadError>(call: Effect.Effect<unknown, E>) =>
    Effect.match(call, { onFailure: (error) => error.reason._tag, onSuccess: () => "ran" as const })
  const activeOf = (bulkhead: Bulkhead.Bulkhead, key?: string) =>
    Effect.map(bulkhead.state(key), (state) => state.active)
  const queuedOf = (...bulkheads: ReadonlyArray<Bulkhead.Bulkhead>) =>
    Effect.map(
      Effect.forEach(bulkheads, (b) => b.stats),
      (stats) => stats.reduce((total, s) => total + s.queued, 0)
    )
  /** Asserts no call runs or waits in these bulkheads, and no key is held in them. */
  const assertIdle = (...bulkheads: ReadonlyArray<Bulkhead.Bulkhead>) =>
    Effect.gen(function* () {
      for (const b of bulkheads) {
        const stats = yield* b.stats
        assert.deepStrictEqual([stats.active, stats.queued, stats.keys], [0, 0, 0], `${b.name} idle`)
      }
    })

  describe(`BulkheadStore conformance: ${name}`, () => {
    it.effect("permits: granted under the limit, costs add up, granted once per permit, released once", () =>
      Effect.gen(function* () {
        const permits = yield* permitsOn(yield* processStore, unique("permits"))
        assert.deepStrictEqual(yield* permits.acquire("k", "p1", 2, 3), { granted: true, held: 2 })
        // idempotent: the same permit again is granted, nothing more held
        assert.deepStrictEqual(yield* permits.acquire("k", "p1", 2, 3), { granted: true, held: 2 })
        assert.deepStrictEqual(yield* permits.acquire("k", "p2", 2, 3), { granted: false, held: 2 })
        assert.deepStrictEqual(yield* permits.acquire("k", "p3", 1, 3), { granted: true, held: 3 })
        // another key has its permits of its own
        assert.deepStrictEqual(yield* permits.acquire("other", "p2", 2, 3), { granted: true, held: 2 })
        assert.isTrue(yield* permits.renew("k", "p1", 2))
        assert.isTrue(yield* permits.release("k", "p1", 2))
        // a second release frees nothing, and a released permit is never renewed
        assert.isFalse(yield* permits.release("k", "p1", 2))
        assert.isFalse(yield* permits.renew("k", "p1", 2))
        assert.deepStrictEqual([yield* permits.held("k"), yield* permits.held("other")], [1, 2])
        assert.isTrue(yield* permits.release("k", "p3", 1))
        assert.isTrue(yield* permits.release("other", "p2", 2))
        assert.deepStrictEqual([yield* permits.held("k"), yield* permits.held("other")], [0, 0])
        assert.isAtLeast(permits.renewMillis, 1)
        assert.isBelow(permits.renewMillis, leaseMillis)
      }).pipe(Effect.scoped)
    )

    it.effect("two bulkheads sharing the store never run more than maxConcurrent between them", () =>
      Effect.gen(function* () {
        const bulkhead = unique("shared")
        const input = { name: bulkhead, maxConcurrent: 3 } as const
        const a = yield* bulkheadOn(yield* processStore, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        const gate = yield* Deferred.make<void>()
        let running = 0
        let peak = 0
        const guarded = Effect.gen(function* () {
          running++
          peak = Math.max(peak, running)
          yield* Deferred.await(gate)
          running--
        })
        const fibers: Array<Fiber.Fiber<string>> = []
        for (let i = 0; i < 5; i++) {
          fibers.push(yield* start(outcome(Bulkhead.isolate(guarded, a))))
          fibers.push(yield* start(outcome(Bulkhead.isolate(guarded, b))))
        }
        // every call has its answer: three run, seven were refused (maxQueue 0)
        yield* eventually(
          Effect.sync(() => fibers.filter((f) => f.pollUnsafe() !== undefined).length === 7),
          "7 calls refused"
        )
        assert.deepStrictEqual([running, yield* activeOf(a), yield* activeOf(b)], [3, 3, 3])
        yield* Deferred.succeed(gate, undefined)
        const outcomes = yield* Effect.forEach(fibers, Fiber.join)
        assert.deepStrictEqual(
          [outcomes.filter((o) => o === "ran").length, outcomes.filter((o) => o === "BulkheadFull").length, peak],
          [3, 7, 3]
        )
        assert.strictEqual(yield* activeOf(a), 0)
        const [sa, sb] = [yield* a.stats, yield* b.stats]
        assert.deepStrictEqual([sa.admitted + sb.admitted, sa.rejected + sb.rejected], [3, 7])
        yield* assertIdle(a, b)
      }).pipe(Effect.scoped)
    )

    it.effect("a permit given back in a process lets that process's waiter in at once, without a poll", () =>
      Effect.gen(function* () {
        const a = yield* bulkheadOn(yield* processStore, {
          name: unique("handoff"),
          maxConcurrent: 1,
          maxQueue: 1,
          maxWait: "1 minute"
        })
        const gate = yield* Deferred.make<void>()
        const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
        yield* eventually(
          Effect.map(a.stats, (s) => s.active === 1),
          "the holder ran"
        )
        const waiter = yield* start(Bulkhead.isolate(Effect.succeed("waiter"), a))
        yield* eventually(
          Effect.map(a.stats, (s) => s.queued === 1),
          "the waiter queued"
        )
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        // the clock does not move: only the hand-off can let the waiter in
        yield* eventually(isDone(waiter), "the waiter let in")
        assert.strictEqual(yield* Fiber.join(waiter), "waiter")
        yield* assertIdle(a)
      }).pipe(Effect.scoped)
    )

    it.effect("callers waiting in both processes all run in turn, never more than maxConcurrent at once", () =>
      Effect.gen(function* () {
        const bulkhead = unique("waiting")
        const input = { name: bulkhead, maxConcurrent: 2, maxQueue: 20, maxWait: "1 minute" } as const
        const a = yield* bulkheadOn(yield* processStore, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        let running = 0
        let peak = 0
        let done = 0
        const guarded = Effect.gen(function* () {
          running++
          peak = Math.max(peak, running)
          yield* Effect.sleep("20 millis")
          running--
          done++
        })
        const fibers = []
        for (let i = 0; i < 6; i++) {
          fibers.push(yield* start(Bulkhead.isolate(guarded, a)))
          fibers.push(yield* start(Bulkhead.isolate(guarded, b)))
        }
        for (let i = 0; i < 500 && done < 12; i++) yield* adjust("5 millis")
        yield* Effect.forEach(fibers, Fiber.join)
        assert.deepStrictEqual([done, peak], [12, 2])
        const permits = yield* permitsOn(yield* processStore, bulkhead)
        assert.strictEqual(yield* permits.held(bulkhead), 0)
        yield* assertIdle(a, b)
      }).pipe(Effect.scoped)
    )

    it.effect("a waiter that runs out of maxWait is rejected with BulkheadTimeout, leaving nothing behind", () =>
      Effect.gen(function* () {
        const bulkhead = unique("timeout")
        const input = { name: bulkhead, maxConcurrent: 1, maxQueue: 5, maxWait: "500 millis" } as const
        const a = yield* bulkheadOn(yield* processStore, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        const gate = yield* Deferred.make<void>()
        const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
        yield* eventually(
          Effect.map(a.stats, (s) => s.active === 1),
          "the holder ran"
        )
        const waiter = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, b)))
        yield* eventually(
          Effect.map(b.stats, (s) => s.queued === 1),
          "the waiter queued"
        )
        // the deadline is on the bulkhead's clock, moved in steps the store's answers keep up with
        let elapsed = 0
        const step = Effect.andThen(TestClock.adjust("10 millis"), settle)
        for (; elapsed < 490; elapsed += 10) yield* step
        assert.isUndefined(waiter.pollUnsafe(), "rejected before maxWait")
        for (; elapsed < 1_000 && waiter.pollUnsafe() === undefined; elapsed += 10) yield* step
        // never before maxWait; at most a few steps after it (a poll in flight when it runs out)
        assert.isAtLeast(elapsed, 500)
        assert.isAtMost(elapsed, 550)
        const error = yield* Fiber.join(waiter)
        assert.strictEqual(error.reason._tag, "BulkheadTimeout")
        assert.isTrue(Bulkhead.isRejection(error))
        if (error.reason._tag === "BulkheadTimeout") {
          assert.deepStrictEqual(
            [error.reason.key, error.reason.maxConcurrent, Duration.toMillis(error.reason.maxWait)],
            [bulkhead, 1, 500]
          )
        }
        const stats = yield* b.stats
        assert.deepStrictEqual([stats.queued, stats.keys, stats.rejected], [0, 0, 1])
        // the holder's permit is untouched
        assert.strictEqual(yield* activeOf(b), 1)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        yield* assertIdle(a, b)
      }).pipe(Effect.scoped)
    )

    it.effect("interruption while asking, waiting or running leaks nothing: every permit comes back", () =>
      Effect.gen(function* () {
        const bulkhead = unique("interrupted")
        const input = { name: bulkhead, maxConcurrent: 2, maxQueue: 10, maxWait: "1 minute" } as const
        const a = yield* bulkheadOn(yield* processStore, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        const permits = yield* permitsOn(yield* processStore, bulkhead)
        const gate = yield* Deferred.make<void>()
        const running = [
          yield* start(Bulkhead.isolate(Deferred.await(gate), a)),
          yield* start(Bulkhead.isolate(Deferred.await(gate), b))
        ]
        yield* eventually(
          Effect.map(permits.held(bulkhead), (held) => held === 2),
          "two running"
        )
        const waiters = []
        for (let i = 0; i < 6; i++)
          waiters.push(yield* start(Bulkhead.isolate(Effect.void, i % 2 === 0 ? a : b, { priority: i % 3 })))
        // one interrupted at once (its first request may be in flight), the others while they wait
        yield* Effect.forEach(waiters.slice(0, 1), Fiber.interrupt)
        yield* eventually(
          Effect.map(queuedOf(a, b), (queued) => queued === 5),
          "five waiting"
        )
        yield* adjust("50 millis")
        yield* Effect.forEach(waiters, Fiber.interrupt)
        assert.strictEqual(yield* queuedOf(a, b), 0)
        assert.strictEqual(yield* permits.held(bulkhead), 2)
        yield* Effect.forEach(running, Fiber.interrupt)
        assert.strictEqual(yield* permits.held(bulkhead), 0)
        yield* assertIdle(a, b)
        // nothing was lost: both processes get every permit again
        yield* Bulkhead.isolate(Effect.void, a, { cost: 2 })
        yield* Bulkhead.isolate(Effect.void, b, { cost: 2 })
      }).pipe(Effect.scoped)
    )

    it.effect("a dead process's permit comes back once its lease runs out; its late release frees nothing", () =>
      Effect.gen(function* () {
        const bulkhead = unique("dead")
        const live = yield* bulkheadOn(yield* processStore, { name: bulkhead, maxConcurrent: 1 })
        // the dead process: it took the permit, then stopped (no renewal, no release)
        const ghost = yield* permitsOn(yield* processStore, bulkhead)
        assert.isTrue((yield* ghost.acquire(bulkhead, "ghost", 1, 1)).granted)
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, live)), "BulkheadFull")
        yield* adjust(Duration.millis(Math.ceil(leaseMillis * 1.5)))
        // the ghost's lease ran out: its permit is back
        const gate = yield* Deferred.make<void>()
        const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), live))
        yield* eventually(
          Effect.map(live.stats, (s) => s.active === 1),
          "the live call ran"
        )
        assert.strictEqual(yield* activeOf(live), 1)
        // the ghost's release, late, frees nothing: the live call still holds the only permit
        assert.isFalse(yield* ghost.release(bulkhead, "ghost", 1))
        assert.isFalse(yield* ghost.renew(bulkhead, "ghost", 1))
        assert.strictEqual(yield* ghost.held(bulkhead), 1)
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, live)), "BulkheadFull")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        assert.strictEqual(yield* ghost.held(bulkhead), 0)
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, live)), "ran")
      }).pipe(Effect.scoped)
    )

    it.effect("a call longer than the lease keeps its permit: it is renewed while the call runs", () =>
      Effect.gen(function* () {
        const bulkhead = unique("renewed")
        const input = { name: bulkhead, maxConcurrent: 1 } as const
        const a = yield* bulkheadOn(yield* processStore, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        const gate = yield* Deferred.make<void>()
        const long = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
        yield* eventually(
          Effect.map(a.stats, (s) => s.active === 1),
          "the long call ran"
        )
        const step = Duration.millis(Math.max(1, Math.floor(leaseMillis / 3)))
        // five renewals' worth: well past the first lease
        for (let i = 1; i <= 5; i++) {
          yield* adjust(step)
          assert.strictEqual(
            yield* outcome(Bulkhead.isolate(Effect.void, b)),
            "BulkheadFull",
            `still held after ${i} thirds of the lease`
          )
        }
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(long)
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, b)), "ran")
        yield* assertIdle(a, b)
      }).pipe(Effect.scoped)
    )

    it.effect("costs: a call holds its cost across processes; a cost above maxConcurrent is refused", () =>
      Effect.gen(function* () {
        const bulkhead = unique("costs")
        const input = { name: bulkhead, maxConcurrent: 3 } as const
        const a = yield* bulkheadOn(yield* processStore, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        const gate = yield* Deferred.make<void>()
        const heavy = yield* start(Bulkhead.isolate(Deferred.await(gate), a, { key: "t", cost: 2 }))
        yield* eventually(
          Effect.map(a.stats, (s) => s.active === 2),
          "the heavy call ran"
        )
        const full = yield* Effect.flip(Bulkhead.isolate(Effect.void, b, { key: "t", cost: 2 }))
        assert.strictEqual(full.reason._tag, "BulkheadFull")
        if (full.reason._tag === "BulkheadFull") {
          assert.deepStrictEqual(
            [full.reason.key, full.reason.active, full.reason.queued, full.reason.maxConcurrent],
            ["t", 2, 0, 3]
          )
        }
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, b, { key: "t", cost: 1 })), "ran")
        assert.deepStrictEqual(yield* b.state("t"), { key: "t", active: 2, queued: 0, available: 1, limit: 3 })
        const tooBig = yield* Effect.flip(Bulkhead.isolate(Effect.void, b, { key: "t", cost: 4 }))
        assert.strictEqual(tooBig.reason._tag, "BulkheadCostExceeded")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(heavy)
        assert.strictEqual(yield* activeOf(b, "t"), 0)
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, b, { key: "t", cost: 3 })), "ran")
      }).pipe(Effect.scoped)
    )

    it.effect("per-key compartments are independent, and bulkheads never share permits", () =>
      Effect.gen(function* () {
        const bulkhead = unique("keys")
        const input = { name: bulkhead, maxConcurrent: 1 } as const
        const process = yield* processStore
        const a = yield* bulkheadOn(process, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        const other = yield* bulkheadOn(process, { ...input, name: unique("other") })
        const gate = yield* Deferred.make<void>()
        const held = yield* start(Bulkhead.isolate(Deferred.await(gate), a, { key: "t" }))
        yield* eventually(
          Effect.map(a.stats, (s) => s.active === 1),
          "key t held"
        )
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, b, { key: "t" })), "BulkheadFull")
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, b, { key: "u" })), "ran")
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, b)), "ran")
        assert.strictEqual(yield* outcome(Bulkhead.isolate(Effect.void, other, { key: "t" })), "ran")
        assert.deepStrictEqual(
          [yield* activeOf(b, "t"), yield* activeOf(b, "u"), yield* activeOf(other, "t")],
          [1, 0, 0]
        )
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(held)
        assert.strictEqual(yield* activeOf(b, "t"), 0)
      }).pipe(Effect.scoped)
    )

    it.effect("in one process the line is served by priority, then arrival", () =>
      Effect.gen(function* () {
        const bulkhead = unique("priority")
        const input = { name: bulkhead, maxConcurrent: 1, maxQueue: 5, maxWait: "1 minute" } as const
        const a = yield* bulkheadOn(yield* processStore, input)
        const b = yield* bulkheadOn(yield* processStore, input)
        const gate = yield* Deferred.make<void>()
        const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), a))
        yield* eventually(
          Effect.map(a.stats, (s) => s.active === 1),
          "the holder ran"
        )
        const ran: Array<string> = []
        const waiters = []
        for (const [id, priority] of [
          ["low", 0],
          ["low2", 0],
          ["high", 5]
        ] as const) {
          waiters.push(
            yield* start(
              Bulkhead.isolate(
                Effect.sync(() => ran.push(id)),
                b,
                { priority }
              )
            )
          )
          yield* eventually(
            Effect.map(b.stats, (s) => s.queued === waiters.length),
            `${id} queued`
          )
        }
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        for (let i = 0; i < 200 && ran.length < 3; i++) yield* adjust("10 millis")
        yield* Effect.forEach(waiters, Fiber.join)
        assert.deepStrictEqual(ran, ["high", "low", "low2"])
        yield* assertIdle(a, b)
      }).pipe(Effect.scoped)
    )
  })
}
