import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, CircuitBreaker, Options, Retry, Timeout } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
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
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Compartments from "../src/internal/bulkheadCompartments.ts"
import { histogramAwareMetricValue as metricValue } from "./metrics.ts"

/** A call that holds its permits until `gate` is done, then ends as the gate says. */
const held = <E>(
  bulkhead: Bulkhead.Bulkhead,
  gate: Deferred.Deferred<void, E>,
  options?: Bulkhead.IsolateOptions
): Effect.Effect<void, E | Bulkhead.BulkheadError> => Bulkhead.isolate(Deferred.await(gate), bulkhead, options)

/** Forks `effect` and lets it run until it suspends (it has its permits, or it waits in line). */
const start = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    return fiber
  })

/** A call that records its id when it runs. */
const recording = (
  ran: Array<string>,
  id: string,
  bulkhead: Bulkhead.Bulkhead,
  options?: Bulkhead.IsolateOptions
): Effect.Effect<void, Bulkhead.BulkheadError> =>
  Bulkhead.isolate(
    Effect.sync(() => {
      ran.push(id)
    }),
    bulkhead,
    options
  )

const counts = (bulkhead: Bulkhead.Bulkhead, key?: string) =>
  Effect.map(bulkhead.state(key), (s) => ({ active: s.active, queued: s.queued }))

describe("Bulkhead", () => {
  it.effect("runs calls at once while permits are free; with maxQueue 0 a call finding none is rejected", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "reports", maxConcurrent: 2 })
      assert.strictEqual(yield* Bulkhead.isolate(Effect.succeed("free"), bulkhead), "free")
      const gate = yield* Deferred.make<void>()
      const a = yield* start(held(bulkhead, gate))
      const b = yield* start(held(bulkhead, gate))
      assert.deepStrictEqual(yield* bulkhead.state(), {
        key: "reports",
        active: 2,
        queued: 0,
        available: 0,
        limit: 2
      })
      const error = yield* Effect.flip(Bulkhead.isolate(Effect.succeed("third"), bulkhead))
      assert.isTrue(Bulkhead.isBulkheadError(error))
      assert.isTrue(Bulkhead.isRejection(error))
      assert.strictEqual(error.message, "Bulkhead full")
      const reason = error.reason
      assert.strictEqual(reason._tag, "BulkheadFull")
      if (reason._tag !== "BulkheadFull") return
      assert.deepStrictEqual(
        [reason.bulkhead, reason.key, reason.maxConcurrent, reason.active, reason.queued, reason.retryAfter],
        ["reports", "reports", 2, 2, 0, undefined]
      )
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
    })
  )

  it.effect("isolate is dual (pipeable and data-first) and adds only BulkheadError", () =>
    Effect.gen(function* () {
      class NotFound {
        readonly _tag = "NotFound"
      }
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      const call: Effect.Effect<number, NotFound> = Effect.succeed(1)
      const piped: Effect.Effect<number, NotFound | Bulkhead.BulkheadError> = call.pipe(
        Bulkhead.isolate(bulkhead, { key: "a", priority: 1, cost: 1 })
      )
      const dataFirst: Effect.Effect<number, NotFound | Bulkhead.BulkheadError> = Bulkhead.isolate(call, bulkhead)
      const method: Effect.Effect<number, NotFound | Bulkhead.BulkheadError> = bulkhead.isolate(call, { key: "b" })
      assert.deepStrictEqual(yield* Effect.all([piped, dataFirst, method]), [1, 1, 1])
    })
  )

  it.effect("a running call's permits come back on success, failure, defect and interruption", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 4 })
      const succeeds = yield* Deferred.make<void, string>()
      const fails = yield* Deferred.make<void, string>()
      const dies = yield* Deferred.make<void, string>()
      const never = yield* Deferred.make<void, string>()
      const a = yield* start(held(bulkhead, succeeds))
      const b = yield* start(held(bulkhead, fails))
      const c = yield* start(held(bulkhead, dies))
      const d = yield* start(held(bulkhead, never))
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 4, queued: 0 })
      yield* Deferred.succeed(succeeds, undefined)
      yield* Fiber.join(a)
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 3, queued: 0 })
      yield* Deferred.fail(fails, "boom")
      assert.deepStrictEqual(yield* Effect.flip(Fiber.join(b)), "boom")
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 2, queued: 0 })
      yield* Deferred.die(dies, new Error("defect"))
      assert.isTrue(Exit.hasDies(yield* Fiber.await(c)))
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 0 })
      yield* Fiber.interrupt(d)
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
      assert.deepStrictEqual(yield* bulkhead.stats, {
        active: 0,
        queued: 0,
        admitted: 4,
        rejected: 0,
        keys: 0,
        limit: 4,
        limitChanges: 0,
        storeErrors: 0
      })
    })
  )

  it.effect("an interrupted running call lets the next waiter in", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 5, maxWait: "1 minute" })
      const ran: Array<string> = []
      const running = yield* start(Bulkhead.isolate(Effect.never, bulkhead))
      const next = yield* start(recording(ran, "next", bulkhead))
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 1 })
      yield* Fiber.interrupt(running)
      yield* Fiber.join(next)
      assert.deepStrictEqual(ran, ["next"])
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
    })
  )

  it.effect("waiters are served FIFO within a priority, higher priorities first", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 10, maxWait: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const first = yield* start(held(bulkhead, gate))
      const waiters = []
      for (const [id, priority] of [
        ["a", 0],
        ["b", 0],
        ["c", 5],
        ["d", 1],
        ["e", 5],
        ["f", 0],
        ["g", -3]
      ] as const) {
        waiters.push(yield* start(recording(ran, id, bulkhead, { priority })))
      }
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 7 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      for (const w of waiters) yield* Fiber.join(w)
      assert.deepStrictEqual(ran, ["c", "e", "d", "a", "b", "f", "g"])
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
    })
  )

  it.effect("an arrival of a priority above every waiter's takes free permits at once", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3, maxQueue: 10, maxWait: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const holder = yield* start(held(bulkhead, gate, { cost: 2 }))
      // needs 2, 1 is free: it waits at the head of the line
      const big = yield* start(recording(ran, "big", bulkhead, { cost: 2 }))
      // fits in the free permit but lines up behind the head (same priority): order is kept
      const small = yield* start(recording(ran, "small", bulkhead))
      assert.deepStrictEqual(yield* bulkhead.state(), {
        key: "default",
        active: 2,
        queued: 2,
        available: 1,
        limit: 3
      })
      assert.deepStrictEqual(ran, [])
      // a higher priority than every waiter's goes first
      yield* recording(ran, "urgent", bulkhead, { priority: 1 })
      assert.deepStrictEqual(ran, ["urgent"])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(big)
      yield* Fiber.join(small)
      assert.deepStrictEqual(ran, ["urgent", "big", "small"])
    })
  )

  it.effect("weighted costs: a call takes `cost` permits; a cost above maxConcurrent is a typed error", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "exports", maxConcurrent: 3 })
      const gate = yield* Deferred.make<void>()
      const heavy = yield* start(held(bulkhead, gate, { cost: 3 }))
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 3, queued: 0 })
      const refused = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead))
      assert.strictEqual(refused.reason._tag, "BulkheadFull")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(heavy)
      const tooBig = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "tenant", cost: 4 }))
      assert.isFalse(Bulkhead.isRejection(tooBig))
      assert.strictEqual(tooBig.message, "Bulkhead call cost exceeds maxConcurrent")
      const reason = tooBig.reason
      assert.strictEqual(reason._tag, "BulkheadCostExceeded")
      if (reason._tag === "BulkheadCostExceeded") {
        assert.deepStrictEqual(
          [reason.bulkhead, reason.key, reason.cost, reason.maxConcurrent],
          ["exports", "tenant", 4, 3]
        )
      }
      assert.strictEqual((yield* bulkhead.stats).rejected, 2)
    })
  )

  it.effect("a cost that is not an integer >= 1, or a priority that is not finite, is a defect", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3 })
      for (const options of [
        { cost: 0 },
        { cost: 1.5 },
        { cost: -1 },
        { cost: Number.NaN },
        { priority: Number.NaN }
      ]) {
        const exit = yield* Effect.exit(Bulkhead.isolate(Effect.void, bulkhead, options))
        assert.isTrue(Exit.hasDies(exit), JSON.stringify(options))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.instanceOf(defect, RangeError)
      }
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
    })
  )

  it.effect("the line holds maxQueue calls; one more is rejected with BulkheadFull", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueue: 2, maxWait: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const holder = yield* start(held(bulkhead, gate))
      const w1 = yield* start(recording(ran, "w1", bulkhead))
      const w2 = yield* start(recording(ran, "w2", bulkhead))
      const error = yield* Effect.flip(recording(ran, "w3", bulkhead))
      const reason = error.reason
      assert.strictEqual(reason._tag, "BulkheadFull")
      if (reason._tag === "BulkheadFull") {
        assert.deepStrictEqual([reason.bulkhead, reason.active, reason.queued], ["db", 1, 2])
      }
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 2 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(w1)
      yield* Fiber.join(w2)
      assert.deepStrictEqual(ran, ["w1", "w2"])
    })
  )

  it.effect("a waiter that waits maxWait is rejected with BulkheadTimeout and leaves the line", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 5, maxWait: "1 second" })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const holder = yield* start(held(bulkhead, gate))
      const w1 = yield* start(Effect.flip(recording(ran, "w1", bulkhead)))
      yield* TestClock.adjust("500 millis")
      const w2 = yield* start(Effect.flip(recording(ran, "w2", bulkhead)))
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 2 })
      yield* TestClock.adjust("499 millis")
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 2 })
      yield* TestClock.adjust("1 millis")
      const timedOut = yield* Fiber.join(w1)
      assert.strictEqual(timedOut.message, "Bulkhead wait timed out")
      const reason = timedOut.reason
      assert.strictEqual(reason._tag, "BulkheadTimeout")
      if (reason._tag === "BulkheadTimeout") {
        assert.deepStrictEqual(
          [reason.key, reason.active, reason.queued, Duration.toMillis(reason.maxWait), reason.retryAfter],
          ["default", 1, 1, 1_000, undefined]
        )
      }
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 1 })
      yield* TestClock.adjust("500 millis")
      assert.strictEqual((yield* Fiber.join(w2)).reason._tag, "BulkheadTimeout")
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 0 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.deepStrictEqual(ran, [])
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
    })
  )

  it.effect("a waiter granted before maxWait runs, and its timer is cancelled", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 5, maxWait: "1 second" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(held(bulkhead, gate))
      const second = yield* Deferred.make<void>()
      const waiter = yield* start(held(bulkhead, second))
      yield* TestClock.adjust("900 millis")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Effect.yieldNow
      // past the waiter's maxWait: it holds its permit, running
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 0 })
      yield* Deferred.succeed(second, undefined)
      yield* Fiber.join(waiter)
      assert.deepStrictEqual(yield* bulkhead.stats, {
        active: 0,
        queued: 0,
        admitted: 2,
        rejected: 0,
        keys: 0,
        limit: 1,
        limitChanges: 0,
        storeErrors: 0
      })
    })
  )

  it.effect("an interrupted waiter leaves the line and never gets a permit later", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 5, maxWait: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const holder = yield* start(held(bulkhead, gate))
      const w1 = yield* start(recording(ran, "w1", bulkhead))
      const w2 = yield* start(recording(ran, "w2", bulkhead))
      const w3 = yield* start(recording(ran, "w3", bulkhead))
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 3 })
      yield* Fiber.interrupt(w2)
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 2 })
      yield* Fiber.interrupt(w1)
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 1 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(w3)
      // a minute later nothing else ran and nothing is held
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(ran, ["w3"])
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(w1)))
    })
  )

  it.effect("a waiter interrupted just as it is granted gives its permits back to the next", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 5, maxWait: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const seen: Array<{ active: number; queued: number }> = []
      let victim: Fiber.Fiber<void, Bulkhead.BulkheadError> | undefined
      // when the holder ends, its permit is granted to w1; right then (before w1's fiber resumes) w1 is interrupted
      const holder = yield* start(
        held(bulkhead, gate).pipe(
          Effect.ensuring(
            Effect.gen(function* () {
              seen.push(yield* counts(bulkhead))
              victim?.interruptUnsafe()
              seen.push(yield* counts(bulkhead))
            })
          )
        )
      )
      const w1 = yield* start(recording(ran, "w1", bulkhead))
      victim = w1
      const w2 = yield* start(recording(ran, "w2", bulkhead))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(w1)))
      assert.deepStrictEqual(seen, [
        // w1 granted (its permit held, not started), w2 waiting
        { active: 1, queued: 1 },
        // w1 gave its permit back, and w2 was granted it
        { active: 1, queued: 0 }
      ])
      yield* Effect.yieldNow
      assert.deepStrictEqual(ran, ["w2"])
      yield* Fiber.join(w2)
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
      assert.strictEqual((yield* bulkhead.stats).admitted, 2)
    })
  )

  it.live("under the live clock, waiters' maxWait timers share the timer heap; a granted waiter's is cancelled", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 50, maxWait: "10 millis" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(held(bulkhead, gate))
      const exits = yield* Effect.forEach(
        Array.from({ length: 20 }, () => Effect.exit(Bulkhead.isolate(Effect.void, bulkhead))),
        (call) => call,
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        exits
          .map((exit) => (Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined))
          .map((e) => (Bulkhead.isBulkheadError(e) ? e.reason._tag : "none")),
        Array.from({ length: 20 }, () => "BulkheadTimeout")
      )
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 0 })
      // a waiter granted in time runs, and its timer never fires after
      const second = yield* Deferred.make<void>()
      const waiter = yield* start(held(bulkhead, second))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Effect.sleep("30 millis")
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 0 })
      yield* Deferred.succeed(second, undefined)
      yield* Fiber.join(waiter)
      assert.deepStrictEqual(yield* bulkhead.stats, {
        active: 0,
        queued: 0,
        admitted: 2,
        rejected: 20,
        keys: 0,
        limit: 1,
        limitChanges: 0,
        storeErrors: 0
      })
    })
  )

  it.effect("rejections carry no captured stack trace", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 1, maxWait: "1 second" })
      const gate = yield* Deferred.make<void>()
      yield* start(held(bulkhead, gate))
      const waiter = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, bulkhead)))
      const full = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead))
      const cost = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { cost: 2 }))
      yield* TestClock.adjust("1 second")
      const timeout = yield* Fiber.join(waiter)
      assert.deepStrictEqual(
        [full, cost, timeout].map((e) => e.reason._tag),
        ["BulkheadFull", "BulkheadCostExceeded", "BulkheadTimeout"]
      )
      for (const error of [full, cost, timeout]) {
        assert.instanceOf(error, Bulkhead.BulkheadError)
        assert.notInclude(String(error.stack), "    at ")
        assert.notInclude(String(error.reason.stack), "    at ")
      }
      // an error built the ordinary way does capture one: the check above can fail
      assert.include(String(new Bulkhead.BulkheadError({ reason: full.reason }).stack), "    at ")
    })
  )
})

describe("Bulkhead retryAfter", () => {
  it.effect("absent until the key saw contention and a timed call ended; then the mean duration times the rounds", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 2, maxWait: "1 minute" })
      const sleepy = Bulkhead.isolate(Effect.sleep("100 millis"), bulkhead)
      const retryAfter = (options?: Bulkhead.IsolateOptions) =>
        Effect.map(Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, options)), (e) =>
          Bulkhead.isRejection(e) && e.reason.retryAfter !== undefined
            ? Duration.toMillis(e.reason.retryAfter)
            : undefined
        )
      // at 0: one runs (not timed: no contention yet), two wait (timed when they start), the next is rejected
      const fibers = [yield* start(sleepy), yield* start(sleepy), yield* start(sleepy)]
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 2 })
      assert.strictEqual(yield* retryAfter(), undefined)
      // at 200 ms the first waiter ended after 100 ms: the mean is 100 ms
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("100 millis")
      fibers.push(yield* start(sleepy), yield* start(sleepy))
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 1, queued: 2 })
      // two waiting ahead and itself, one permit: three rounds of 100 ms
      assert.strictEqual(yield* retryAfter(), 300)
      // a higher priority has nobody ahead: one round
      assert.strictEqual(yield* retryAfter({ priority: 1 }), 100)
      yield* TestClock.adjust("300 millis")
      for (const f of fibers) yield* Fiber.join(f)
      assert.deepStrictEqual(yield* counts(bulkhead), { active: 0, queued: 0 })
    })
  )

  it.effect("with maxQueue 0, calls that fill the compartment are timed once it has rejected one", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2 })
      const call = (millis: number) => Bulkhead.isolate(Effect.sleep(Duration.millis(millis)), bulkhead)
      const hint = Effect.map(Effect.flip(Bulkhead.isolate(Effect.void, bulkhead)), (e) =>
        e.reason._tag === "BulkheadFull" && e.reason.retryAfter !== undefined
          ? Duration.toMillis(e.reason.retryAfter)
          : undefined
      )
      yield* start(call(100))
      yield* start(call(100))
      assert.strictEqual(yield* hint, undefined)
      yield* TestClock.adjust("100 millis")
      // only the second call of a pair fills the compartment: it is the one timed
      yield* start(call(50))
      yield* start(call(80))
      yield* TestClock.adjust("80 millis")
      yield* start(call(1_000))
      yield* start(call(1_000))
      assert.strictEqual(yield* hint, 80)
    })
  )
})

describe("Bulkhead keys", () => {
  it.effect("each key has its own permits and line", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      const gate = yield* Deferred.make<void>()
      const a = yield* start(held(bulkhead, gate, { key: "tenant-a" }))
      const refused = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "tenant-a" }))
      assert.strictEqual(refused.reason.key, "tenant-a")
      yield* Bulkhead.isolate(Effect.void, bulkhead, { key: "tenant-b" })
      yield* Bulkhead.isolate(Effect.void, bulkhead)
      assert.deepStrictEqual(yield* counts(bulkhead, "tenant-a"), { active: 1, queued: 0 })
      assert.deepStrictEqual(yield* counts(bulkhead, "tenant-b"), { active: 0, queued: 0 })
      assert.deepStrictEqual(yield* counts(bulkhead, "never-seen"), { active: 0, queued: 0 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(a)
      assert.strictEqual((yield* bulkhead.stats).keys, 2)
    })
  )

  it.effect("idle keys are swept every sweepInterval; busy ones stay", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, sweepInterval: "10 seconds" })
      const gate = yield* Deferred.make<void>()
      const busy = yield* start(held(bulkhead, gate, { key: "busy" }))
      for (let i = 0; i < 5; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `idle-${i}` })
      assert.strictEqual((yield* bulkhead.stats).keys, 6)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* bulkhead.stats).keys, 1)
      assert.deepStrictEqual(yield* counts(bulkhead, "busy"), { active: 1, queued: 0 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(busy)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* bulkhead.stats).keys, 0)
    })
  )

  it.effect("maxKeys: idle keys are dropped to make room; a busy key is never dropped (its permits stand)", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxKeys: 64, sweepInterval: "1 hour" })
      for (let i = 0; i < 1_000; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `k${i}` })
      assert.isAtMost((yield* bulkhead.stats).keys, 64)
      // fill the cap with busy keys: they are all kept, and still refuse a second call
      const gate = yield* Deferred.make<void>()
      const busy = []
      for (let i = 0; i < 80; i++) busy.push(yield* start(held(bulkhead, gate, { key: `busy-${i}` })))
      const stats = yield* bulkhead.stats
      assert.strictEqual(stats.active, 80)
      assert.isAtLeast(stats.keys, 80)
      const refused = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "busy-0" }))
      assert.strictEqual(refused.reason._tag, "BulkheadFull")
      yield* Deferred.succeed(gate, undefined)
      for (const f of busy) yield* Fiber.join(f)
      for (let i = 0; i < 200; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `later-${i}` })
      assert.isAtMost((yield* bulkhead.stats).keys, 64)
    })
  )

  it.effect("the sweep fiber ends with the scope", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Bulkhead.layer({ sweepInterval: "10 seconds" }), scope)
      const bulkhead = Context.get(context, Bulkhead.Bulkhead)
      for (let i = 0; i < 3; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `k${i}` })
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* bulkhead.stats).keys, 0, "swept while the scope is open")
      for (let i = 0; i < 3; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `k${i}` })
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual((yield* bulkhead.stats).keys, 3, "no sweep after the scope closed")
    })
  )
})

/** The keys listed by `compartments(max)`, in order, with their counts. */
const listed = (bulkhead: Bulkhead.Bulkhead, max: number) =>
  Effect.map(bulkhead.compartments(max), ({ compartments, total }) => ({
    total,
    listed: compartments.map((c) => [c.key, c.active, c.queued, c.limit])
  }))

/** A remote store double: leases per key that never run out (enough to list this process's compartments). */
const remoteDouble = (): Bulkhead.BulkheadStore => {
  const held = new Map<string, Map<string, number>>()
  const of = (key: string) => {
    let permits = held.get(key)
    if (permits === undefined) {
      permits = new Map()
      held.set(key, permits)
    }
    return permits
  }
  const sum = (key: string) => [...of(key).values()].reduce((n, cost) => n + cost, 0)
  const permits: Bulkhead.RemotePermits = {
    acquire: (key, permit, cost, limit) =>
      Effect.sync(() => {
        const total = sum(key)
        if (!of(key).has(permit) && total + cost > limit) return { granted: false, held: total }
        of(key).set(permit, cost)
        return { granted: true, held: sum(key) }
      }),
    renew: (key, permit) => Effect.sync(() => of(key).has(permit)),
    release: (key, permit) => Effect.sync(() => of(key).delete(permit)),
    held: (key) => Effect.sync(() => sum(key)),
    renewMillis: 1_000,
    poll: { baseMillis: 10, capMillis: 100 }
  }
  return { remote: () => Effect.succeed(permits) }
}

/** A compartment as the ranking's property sees it. */
interface Plain {
  readonly key: string
  readonly active: number
  readonly queued: number
  readonly limit: number
}

const plainView: Compartments.UrgencyView<Plain> = {
  key: (c) => c.key,
  active: (c) => c.active,
  queued: (c) => c.queued,
  limit: (c) => c.limit
}

/** The documented order, written independently: most queued, highest active / limit, lowest limit, then key. */
const referenceOrder = (a: Plain, b: Plain): number =>
  b.queued - a.queued ||
  b.active / b.limit - a.active / a.limit ||
  a.limit - b.limit ||
  (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)

const plains = fc.uniqueArray(
  fc.record({
    key: fc.string({ maxLength: 3 }),
    active: fc.integer({ min: 0, max: 12 }),
    queued: fc.integer({ min: 0, max: 4 }),
    limit: fc.integer({ min: 1, max: 10 })
  }),
  { selector: (c) => c.key, maxLength: 80 }
)

describe("Bulkhead compartments", () => {
  it("the bounded selection is sort-and-take under the documented order, and never holds more than max", () => {
    const order = Compartments.urgencyOrder(plainView)
    fc.assert(
      fc.property(plains, fc.integer({ min: 1, max: 100 }), (items, max) => {
        const heap: Array<Plain> = []
        for (const item of items) {
          Compartments.offer(heap, max, order, item)
          assert.isAtMost(heap.length, max)
        }
        const expected = [...items].sort(referenceOrder).slice(0, max)
        assert.deepStrictEqual(Compartments.selected(heap, order), expected)
      })
    )
  })

  it("the order is the reference's on every pair (a total order on distinct keys)", () => {
    const order = Compartments.urgencyOrder(plainView)
    fc.assert(
      fc.property(plains, (items) => {
        for (const a of items) {
          for (const b of items) assert.strictEqual(Math.sign(order(a, b)), Math.sign(referenceOrder(a, b)))
        }
      })
    )
  })

  it.effect("the most queued first, then the fullest, then by key; at most max; total counts every one held", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        name: "api",
        maxConcurrent: 2,
        maxQueue: 10,
        maxWait: "1 minute",
        sweepInterval: "10 seconds"
      })
      for (let i = 0; i < 50; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `idle-${i}` })
      const gate = yield* Deferred.make<void>()
      const calls = []
      // "q2": full, 2 waiting; "q1": full, 1 waiting; "full": 2 of 2; "half": 1 of 2
      for (const [key, n] of [
        ["half", 1],
        ["full", 2],
        ["q1", 3],
        ["q2", 4]
      ] as const) {
        for (let i = 0; i < n; i++) calls.push(yield* start(held(bulkhead, gate, { key })))
      }
      assert.deepStrictEqual(yield* listed(bulkhead, 4), {
        total: 55,
        listed: [
          ["q2", 2, 2, 2],
          ["q1", 2, 1, 2],
          ["full", 2, 0, 2],
          ["half", 1, 0, 2]
        ]
      })
      const one = yield* bulkhead.compartments(1)
      assert.deepStrictEqual(one, {
        total: 55,
        compartments: [{ key: "q2", active: 2, queued: 2, available: 0, limit: 2 }]
      })
      // every one, the idle ones (the bulkhead's own, "api", among them) by key
      const all = yield* listed(bulkhead, 1_000)
      assert.strictEqual(all.listed.length, 55)
      assert.deepStrictEqual(
        all.listed.slice(4, 7).map(([key]) => key),
        ["api", "idle-0", "idle-1"]
      )
      assert.strictEqual(all.total, (yield* bulkhead.stats).keys + 1)

      // the idle keys are swept: gone from the list; then the busy ones, once idle
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(
        (yield* listed(bulkhead, 10)).listed.map(([key]) => key),
        ["q2", "q1", "full", "half", "api"]
      )
      yield* Deferred.succeed(gate, undefined)
      for (const call of calls) yield* Fiber.join(call)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* listed(bulkhead, 10), { total: 1, listed: [["api", 0, 0, 2]] })
    })
  )

  it.effect("keys dropped at maxKeys are gone from the list; the total stays bounded", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "api", maxConcurrent: 1, maxKeys: 64, sweepInterval: "1 hour" })
      for (let i = 0; i < 1_000; i++) yield* Bulkhead.isolate(Effect.void, bulkhead, { key: `k${i}` })
      const { compartments, total } = yield* bulkhead.compartments(10_000)
      assert.isAtMost(total, 65)
      assert.strictEqual(compartments.length, total)
      const keys = new Set(compartments.map((c) => c.key))
      assert.isFalse(keys.has("k0"))
      assert.isTrue(keys.has("k999"))
    })
  )

  it.effect("a max that is not a positive integer is a defect: InvalidOptions naming max", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "api" })
      for (const max of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        const exit = yield* Effect.exit(bulkhead.compartments(max))
        assert.isTrue(Exit.hasDies(exit), String(max))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.instanceOf(defect, Options.InvalidOptions)
        if (defect instanceof Options.InvalidOptions) {
          assert.deepStrictEqual(
            defect.issues.map((issue) => [issue.path, issue.value]),
            [["max", String(max)]]
          )
        }
      }
    })
  )

  it.effect("over a remote store: this process's compartments, the keys with calls running or waiting here", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "api", maxConcurrent: 1, maxQueue: 5, maxWait: "1 minute" })
      // nothing held here: nothing listed (the own compartment only while it has calls)
      assert.deepStrictEqual(yield* listed(bulkhead, 10), { total: 0, listed: [] })
      const gate = yield* Deferred.make<void>()
      const a = yield* start(held(bulkhead, gate, { key: "a" }))
      const b = yield* start(held(bulkhead, gate, { key: "b" }))
      const waiting = yield* start(held(bulkhead, gate, { key: "b" }))
      assert.deepStrictEqual(yield* listed(bulkhead, 10), {
        total: 2,
        listed: [
          ["b", 1, 1, 1],
          ["a", 1, 0, 1]
        ]
      })
      const exit = yield* Effect.exit(bulkhead.compartments(0))
      assert.isTrue(Exit.hasDies(exit))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiting)
      assert.deepStrictEqual(yield* listed(bulkhead, 10), { total: 0, listed: [] })
    }).pipe(Effect.provide(Layer.succeed(Bulkhead.BulkheadStore, remoteDouble())))
  )
})

describe("Bulkhead monitoring", () => {
  it.effect("events: Queued, Acquired and Rejected (each reason), with key, cost, priority and counts", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "search", maxConcurrent: 2, maxQueue: 1, maxWait: "1 second" })
      const events = yield* bulkhead.subscribe
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(held(bulkhead, gate, { key: "t", cost: 2 }))
      const waiter = yield* start(Bulkhead.isolate(Effect.void, bulkhead, { key: "t", priority: 3 }))
      yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "t" }))
      yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "t", cost: 5 }))
      yield* TestClock.adjust("200 millis")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(waiter)
      const late = yield* start(held(bulkhead, gate, { key: "u", cost: 2 }))
      yield* Fiber.join(late)
      const blocker = yield* Deferred.make<void>()
      const blocking = yield* start(held(bulkhead, blocker, { key: "u", cost: 2 }))
      const timesOut = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "u" })))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(timesOut)
      yield* Fiber.interrupt(blocking)
      const all = yield* Queue.takeAll(events)
      assert.deepStrictEqual(
        all.map((e) => {
          switch (e._tag) {
            case "Queued":
              return [e._tag, e.bulkhead, e.key, e.cost, e.priority, e.queued]
            case "Acquired":
              return [e._tag, e.bulkhead, e.key, e.cost, e.priority, Duration.toMillis(e.waited)]
            case "LimitChanged":
              return [e._tag, e.bulkhead, e.key, e.from, e.to]
            default:
              return [e._tag, e.bulkhead, e.key, e.reason, e.cost, e.priority, e.active, e.queued]
          }
        }),
        [
          ["Queued", "search", "t", 1, 3, 1],
          ["Rejected", "search", "t", "BulkheadFull", 1, 0, 2, 1],
          ["Rejected", "search", "t", "BulkheadCostExceeded", 5, 0, 2, 1],
          ["Acquired", "search", "t", 1, 3, 200],
          ["Queued", "search", "u", 1, 0, 1],
          ["Rejected", "search", "u", "BulkheadTimeout", 1, 0, 2, 0]
        ]
      )
    })
  )

  it.effect("span events: a Rejected event with the bulkhead's name and the reason, on the caller's span", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "search", maxConcurrent: 1, maxQueue: 1, maxWait: "1 second" })
      const gate = yield* Deferred.make<void>()
      const events = yield* Effect.gen(function* () {
        yield* start(held(bulkhead, gate, { key: "tenant-secret" }))
        const waiter = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "tenant-secret" })))
        yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "tenant-secret" }))
        yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { cost: 2 }))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(waiter)
        const span = yield* Effect.currentSpan
        return "events" in span && Array.isArray(span.events)
          ? span.events.map((e: ReadonlyArray<unknown>) => [e[0], e[2]])
          : []
      }).pipe(Effect.withSpan("request"))
      const attributes = (reason: string) => ({ "resilience.name": "search", "resilience.reason": reason })
      assert.deepStrictEqual(events, [
        ["Rejected", attributes("full")],
        ["Rejected", attributes("cost_exceeded")],
        ["Rejected", attributes("timeout")]
      ])
      yield* Deferred.succeed(gate, undefined)
    })
  )

  it.effect("events on the events Stream, taken with Stream.take", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "stream", maxConcurrent: 1 })
      const taken = yield* Effect.forkChild(Stream.runCollect(Stream.take(bulkhead.events, 2)))
      yield* Effect.yieldNow
      const gate = yield* Deferred.make<void>()
      yield* start(held(bulkhead, gate))
      yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead))
      yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "other", cost: 2 }))
      const events = yield* Fiber.join(taken)
      assert.deepStrictEqual(
        events.map((e) => (e._tag === "Rejected" ? [e.key, e.reason] : [e._tag])),
        [
          ["stream", "BulkheadFull"],
          ["other", "BulkheadCostExceeded"]
        ]
      )
      yield* Deferred.succeed(gate, undefined)
    })
  )

  it.effect("metrics: active, queued, calls, rejections by reason, wait histogram in seconds, keys; no raw key", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 2, maxQueue: 1, maxWait: "1 second" })
      const name = { "resilience.name": "db" }
      const read = Effect.map(Metric.snapshot, (snapshots) => ({
        active: metricValue(snapshots, "resilience.bulkhead.active", name),
        queued: metricValue(snapshots, "resilience.bulkhead.queued", name),
        admitted: metricValue(snapshots, "resilience.bulkhead.calls", { ...name, "resilience.outcome": "admitted" }),
        rejected: metricValue(snapshots, "resilience.bulkhead.calls", { ...name, "resilience.outcome": "rejected" }),
        full: metricValue(snapshots, "resilience.bulkhead.rejected", { ...name, "resilience.reason": "full" }),
        timeout: metricValue(snapshots, "resilience.bulkhead.rejected", { ...name, "resilience.reason": "timeout" }),
        cost: metricValue(snapshots, "resilience.bulkhead.rejected", { ...name, "resilience.reason": "cost_exceeded" }),
        wait: metricValue(snapshots, "resilience.bulkhead.wait.duration", name),
        keys: metricValue(snapshots, "resilience.bulkhead.keys", name)
      }))
      const gate = yield* Deferred.make<void>()
      yield* Bulkhead.isolate(Effect.void, bulkhead, { key: "tenant-secret-1" })
      const a = yield* start(held(bulkhead, gate, { key: "tenant-secret-2" }))
      const b = yield* start(held(bulkhead, gate, { key: "tenant-secret-2" }))
      const c = yield* start(held(bulkhead, gate, { key: "tenant-secret-2" }))
      yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { key: "tenant-secret-2" }))
      yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { cost: 3 }))
      assert.deepStrictEqual(yield* read, {
        active: 2,
        queued: 1,
        admitted: 3,
        rejected: 2,
        full: 1,
        timeout: 0,
        cost: 1,
        wait: [3, 0],
        keys: 2
      })
      // the waiter is admitted after 250 ms: 0.25 s in the histogram
      yield* TestClock.adjust("250 millis")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      yield* Fiber.join(c)
      const after = yield* read
      assert.deepStrictEqual([after.active, after.queued, after.admitted, after.wait], [0, 0, 4, [4, 0.25]])
      // a timeout
      const blocker = yield* Deferred.make<void>()
      const blocking = yield* start(held(bulkhead, blocker, { cost: 2 }))
      const late = yield* start(Effect.flip(Bulkhead.isolate(Effect.void, bulkhead)))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(late)
      yield* Fiber.interrupt(blocking)
      const final = yield* read
      assert.deepStrictEqual([final.rejected, final.timeout, final.active, final.admitted], [3, 1, 0, 5])
      // five calls admitted (the blocker too): four waits of 0 in the first bucket (<= 1 ms), one of 0.25 s
      const snapshots = yield* Metric.snapshot
      const histogram = snapshots.find((s) => s.id === "resilience.bulkhead.wait.duration")
      const state: object | undefined = histogram?.state
      assert.isTrue(state !== undefined && "buckets" in state)
      if (state !== undefined && "buckets" in state) {
        const buckets = new Map(state.buckets as ReadonlyArray<readonly [number, number]>)
        assert.deepStrictEqual([buckets.get(0.001), buckets.get(0.1), buckets.get(0.25)], [4, 4, 5])
      }
      for (const s of snapshots.filter((m) => m.id.startsWith("resilience.bulkhead"))) {
        for (const value of Object.values(s.attributes ?? {})) assert.notInclude(String(value), "tenant-secret")
      }
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Bulkhead options", () => {
  it.effect("defaults", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make()
      assert.deepStrictEqual(
        {
          ...bulkhead.options,
          maxWait: Duration.toMillis(bulkhead.options.maxWait),
          sweepInterval: Duration.toMillis(bulkhead.options.sweepInterval)
        },
        {
          name: "default",
          maxConcurrent: 10,
          maxQueue: 0,
          maxWait: 1_000,
          maxKeys: 10_000,
          sweepInterval: 30_000,
          onStoreError: "allow"
        }
      )
      assert.strictEqual(bulkhead.name, "default")
    })
  )

  it.effect("the smallest valid values", () =>
    Effect.gen(function* () {
      const options = yield* Bulkhead.validateOptions({
        maxConcurrent: 1,
        maxQueue: 0,
        maxWait: 1,
        maxKeys: 1,
        sweepInterval: "1 millis"
      })
      assert.deepStrictEqual(
        [options.maxConcurrent, options.maxQueue, Duration.toMillis(options.maxWait), options.maxKeys],
        [1, 0, 1, 1]
      )
      // an infinite wait is allowed: no timer is armed
      const forever = yield* Bulkhead.validateOptions({ maxWait: Duration.infinity })
      assert.isFalse(Duration.isFinite(forever.maxWait))
    })
  )

  it.effect("invalid options fail with one InvalidOptions listing every bad field and value", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Bulkhead.validateOptions({
          maxConcurrent: 0,
          maxQueue: -1,
          maxWait: 0,
          maxKeys: 2.5,
          sweepInterval: -5
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "Bulkhead")
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["sweepInterval", "-5", "Expected a non-negative duration"],
          ["maxConcurrent", "0", "Expected a value greater than or equal to 1"],
          ["maxQueue", "-1", "Expected a value greater than or equal to 0"],
          ["maxKeys", "2.5", "Expected an integer"],
          ["maxWait", "0", "Expected a duration greater than zero"]
        ]
      )
      const fromMake = yield* Effect.flip(Bulkhead.make({ maxConcurrent: 0 }))
      assert.strictEqual(
        fromMake.message,
        "Bulkhead options are invalid: maxConcurrent = 0: Expected a value greater than or equal to 1"
      )
    })
  )
})

describe("Bulkhead.layerConfig", () => {
  const read = (env: Record<string, string>) =>
    Effect.exit(
      Effect.map(Bulkhead.Bulkhead, (bulkhead) => ({
        name: bulkhead.name,
        maxConcurrent: bulkhead.options.maxConcurrent,
        maxQueue: bulkhead.options.maxQueue,
        maxWait: Duration.toMillis(bulkhead.options.maxWait)
      })).pipe(
        Effect.provide(
          Bulkhead.layerConfig("search").pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))
        )
      )
    )

  it.effect("reads options from environment variables, the name defaulting to the path", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(
        yield* read({ search_maxConcurrent: "20", search_maxQueue: "50", search_maxWait: "250 millis" }),
        Exit.succeed({ name: "search", maxConcurrent: 20, maxQueue: 50, maxWait: 250 })
      )
      assert.deepStrictEqual(
        yield* read({}),
        Exit.succeed({ name: "search", maxConcurrent: 10, maxQueue: 0, maxWait: 1_000 })
      )
    })
  )

  it.effect("bad values fail with one InvalidOptions naming each field and the text it held", () =>
    Effect.gen(function* () {
      const exit = yield* read({ search_maxConcurrent: "0", search_maxQueue: "lots", search_maxWait: "0 millis" })
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(error, Options.InvalidOptions)
      if (!(error instanceof Options.InvalidOptions)) return
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["maxConcurrent", '"0"', "Expected a value greater than or equal to 1"],
          ["maxQueue", '"lots"', "Expected a string representing a finite number"]
        ]
      )
      // a cross-field rule (maxWait above zero) runs when the options are used
      const zeroWait = yield* read({ search_maxWait: "0 millis" })
      const zeroError = Exit.isFailure(zeroWait) ? Cause.squash(zeroWait.cause) : undefined
      assert.instanceOf(zeroError, Options.InvalidOptions)
      if (zeroError instanceof Options.InvalidOptions) {
        assert.deepStrictEqual(
          zeroError.issues.map((i) => i.path),
          ["maxWait"]
        )
      }
    })
  )
})

describe("Bulkhead composition (the guide's tables)", () => {
  /** How an effect ended and when, on the TestClock. */
  const outcome = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(effect)
      const at = yield* Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe()))
      if (Exit.isSuccess(exit)) return [String(exit.value), at] as const
      const error = Cause.squash(exit.cause)
      const tag =
        typeof error === "object" && error !== null && "reason" in error
          ? String((error.reason as { readonly _tag: string })._tag)
          : String(error)
      return [tag, at] as const
    })

  it.effect("an attempt timeout inside the bulkhead bounds the run; outside, the wait too", () =>
    Effect.gen(function* () {
      const work = Effect.as(Effect.sleep("500 millis"), "ok")
      const orders = {
        inside: (b: Bulkhead.Bulkhead) => work.pipe(Timeout.attempt("1 second"), Bulkhead.isolate(b)),
        outside: (b: Bulkhead.Bulkhead) => work.pipe(Bulkhead.isolate(b), Timeout.attempt("1 second"))
      }
      const seen: Record<string, readonly [string, number]> = {}
      for (const [order, call] of Object.entries(orders)) {
        const b = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 10, maxWait: "1 minute" })
        const t0 = yield* Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe()))
        // a call already holds the only permit for 3 s
        yield* start(Bulkhead.isolate(Effect.sleep("3 seconds"), b))
        const second = yield* start(outcome(call(b)))
        yield* TestClock.adjust("4 seconds")
        const [result, at] = yield* Fiber.join(second)
        seen[order] = [result, at - t0]
        assert.deepStrictEqual(yield* counts(b), { active: 0, queued: 0 })
      }
      assert.deepStrictEqual(seen, { inside: ["ok", 3_500], outside: ["TimeoutExceeded", 1_000] })
    })
  )

  it.effect("a hung call under an attempt timeout inside the bulkhead frees its permit when it times out", () =>
    Effect.gen(function* () {
      const b = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 10, maxWait: "1 minute" })
      const hung = yield* start(outcome(Effect.never.pipe(Timeout.attempt("1 second"), Bulkhead.isolate(b))))
      const next = yield* start(outcome(Bulkhead.isolate(Effect.succeed("ok"), b)))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(hung), ["TimeoutExceeded", 1_000])
      assert.deepStrictEqual(yield* Fiber.join(next), ["ok", 1_000])
    })
  )

  it.effect("bulkhead rejections trip a breaker outside it, unless the breaker ignores them", () =>
    Effect.gen(function* () {
      const call = Effect.succeed("ok")
      const orders = {
        "breaker outside": (b: Bulkhead.Bulkhead, cb: CircuitBreaker.CircuitBreaker) =>
          call.pipe(Bulkhead.isolate(b), CircuitBreaker.protect(cb)),
        "breaker outside, isIgnored: Bulkhead.isRejection": (b: Bulkhead.Bulkhead, cb: CircuitBreaker.CircuitBreaker) =>
          call.pipe(Bulkhead.isolate(b), CircuitBreaker.protect(cb, { isIgnored: Bulkhead.isRejection })),
        "breaker inside": (b: Bulkhead.Bulkhead, cb: CircuitBreaker.CircuitBreaker) =>
          call.pipe(CircuitBreaker.protect(cb), Bulkhead.isolate(b))
      }
      const states: Record<string, string> = {}
      for (const [order, run] of Object.entries(orders)) {
        const b = yield* Bulkhead.make({ maxConcurrent: 1 })
        const cb = yield* CircuitBreaker.make({ consecutiveFailures: 3 }).pipe(
          Effect.provide(CircuitBreaker.layerStoreMemory())
        )
        const gate = yield* Deferred.make<void>()
        yield* start(held(b, gate))
        for (let i = 0; i < 3; i++) yield* Effect.exit(run(b, cb))
        states[order] = (yield* cb.state())._tag
        yield* Deferred.succeed(gate, undefined)
      }
      assert.deepStrictEqual(states, {
        "breaker outside": "Open",
        "breaker outside, isIgnored: Bulkhead.isRejection": "Closed",
        "breaker inside": "Closed"
      })
    })
  )

  it.effect("a retry outside the bulkhead waits for the rejection's retryAfter", () =>
    Effect.gen(function* () {
      const b = yield* Bulkhead.make({ maxConcurrent: 1 })
      const call = (millis: number) => Bulkhead.isolate(Effect.sleep(Duration.millis(millis)), b)
      // contention seen, then a timed call of 400 ms: the mean is 400 ms
      const first = yield* start(call(100))
      yield* Effect.exit(call(0))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(first)
      const timed = yield* start(call(400))
      yield* TestClock.adjust("400 millis")
      yield* Fiber.join(timed)
      // now a call holds the permit for 300 ms; another, retried, is refused with retryAfter 400 ms
      yield* start(call(300))
      const retried = yield* start(
        outcome(
          Effect.as(call(0), "ran").pipe(
            Retry.retry(Retry.constant({ delay: "10 millis", maxAttempts: 3 }), { while: Bulkhead.isRejection })
          )
        )
      )
      yield* TestClock.adjust("1 second")
      const [result, at] = yield* Fiber.join(retried)
      // started at 500 ms, retried 400 ms later (the hint, not the 10 ms delay)
      assert.deepStrictEqual([result, at], ["ran", 900])
    })
  )
})
