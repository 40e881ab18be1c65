import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Fallback, Options, Retry, Timeout } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { metricValue } from "./metrics.ts"

class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
class NotFound extends Data.TaggedError("NotFound")<{ readonly id: string }> {}

/** Forks `effect` and lets it run until it suspends. */
const start = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    return fiber
  })

/** An effect that counts its runs and ends as `exit` says. */
const counted = <A, E>(exit: Exit.Exit<A, E>) => {
  const runs = { count: 0 }
  const effect = Effect.suspend(() => {
    runs.count++
    return exit
  })
  return { runs, effect }
}

/** Drains what a subscription holds now. */
const drain = <A>(queue: Queue.Dequeue<A, Cause.Done>) => Effect.map(Queue.clear(queue), (items) => [...items])

describe("Fallback.orElse", () => {
  it.effect("runs the alternative on a typed failure; a success never runs it", () =>
    Effect.gen(function* () {
      const alternative = counted(Exit.succeed("alternative"))
      const ok = yield* Effect.succeed("primary").pipe(Fallback.orElse(() => alternative.effect))
      assert.deepStrictEqual([ok, alternative.runs.count], ["primary", 0])
      const failed = yield* Effect.fail(new Unavailable()).pipe(Fallback.orElse(() => alternative.effect))
      assert.deepStrictEqual([failed, alternative.runs.count], ["alternative", 1])
      // the alternative receives the error, and its own failure is the result's
      const received = yield* Effect.fail(new NotFound({ id: "42" })).pipe(
        Fallback.orElse((error) => Effect.succeed(`missing ${error.id}`))
      )
      assert.strictEqual(received, "missing 42")
      const second = yield* Effect.flip(Effect.fail("first").pipe(Fallback.orElse(() => Effect.fail("second"))))
      assert.strictEqual(second, "second")
    })
  )

  it.effect("is dual and removes the errors it handles from the type", () =>
    Effect.gen(function* () {
      const call: Effect.Effect<number, Unavailable | NotFound> = Effect.fail(new Unavailable())
      const all: Effect.Effect<number | string, never> = call.pipe(Fallback.orElse(() => Effect.succeed("x")))
      const dataFirst: Effect.Effect<number | string, never> = Fallback.orElse(call, () => Effect.succeed("y"))
      const refined: Effect.Effect<number | string, NotFound> = call.pipe(
        Fallback.orElse(() => Effect.succeed("z"), { when: (e): e is Unavailable => e._tag === "Unavailable" })
      )
      const refinedFirst: Effect.Effect<number | string, NotFound> = Fallback.orElse(call, () => Effect.succeed("w"), {
        when: (e): e is Unavailable => e._tag === "Unavailable"
      })
      const predicate: Effect.Effect<number | string, Unavailable | NotFound> = call.pipe(
        Fallback.orElse(() => Effect.succeed("v"), { when: (e) => e._tag === "Unavailable" })
      )
      const replaced: Effect.Effect<number, "alt"> = call.pipe(Fallback.orElse(() => Effect.fail("alt" as const)))
      const defects: Effect.Effect<number | string, never> = call.pipe(
        Fallback.orElse((error: unknown) => Effect.succeed(String(error)), { catchDefects: true })
      )
      const succeeded: Effect.Effect<number | string, never> = call.pipe(Fallback.orElseSucceed("default"))
      const succeededRefined: Effect.Effect<number | string, NotFound> = call.pipe(
        Fallback.orElseSucceed("default", { when: (e): e is Unavailable => e._tag === "Unavailable" })
      )
      assert.deepStrictEqual(
        yield* Effect.all([all, dataFirst, refined, refinedFirst, predicate, defects, succeeded, succeededRefined]),
        ["x", "y", "z", "w", "v", "Unavailable", "default", "default"]
      )
      assert.strictEqual(yield* Effect.flip(replaced), "alt")
    })
  )

  it.effect("when: the failures it refuses propagate unchanged, the alternative not run", () =>
    Effect.gen(function* () {
      const alternative = counted(Exit.succeed("replica"))
      const call = (error: Unavailable | NotFound) =>
        Effect.fail(error).pipe(
          Fallback.orElse(() => alternative.effect, { when: (e): e is Unavailable => e._tag === "Unavailable" })
        )
      assert.strictEqual(yield* call(new Unavailable()), "replica")
      const refused = yield* Effect.exit(call(new NotFound({ id: "7" })))
      assert.deepStrictEqual(refused, Exit.fail(new NotFound({ id: "7" })))
      assert.strictEqual(alternative.runs.count, 1)
    })
  )

  it.effect("defects propagate unless catchDefects; then the alternative receives the defect", () =>
    Effect.gen(function* () {
      const boom = new Error("boom")
      const propagated = yield* Effect.exit(Effect.die(boom).pipe(Fallback.orElse(() => Effect.succeed("alt"))))
      assert.isTrue(Exit.hasDies(propagated))
      const caught = yield* Effect.die(boom).pipe(
        Fallback.orElse((defect) => Effect.succeed(defect === boom ? "got the defect" : "other"), {
          catchDefects: true
        })
      )
      assert.strictEqual(caught, "got the defect")
      // a defect beside a typed failure (a parallel failure) propagates unless defects are caught
      const both = Effect.failCause(Cause.combine(Cause.fail("typed"), Cause.die(boom)))
      assert.isTrue(Exit.hasDies(yield* Effect.exit(both.pipe(Fallback.orElse(() => Effect.succeed("alt"))))))
      assert.strictEqual(yield* both.pipe(Fallback.orElse(() => Effect.succeed("alt"), { catchDefects: true })), "alt")
    })
  )

  it.effect("interruption never falls back: an interrupted call, or an interruption in the cause", () =>
    Effect.gen(function* () {
      const alternative = counted(Exit.succeed("alt"))
      const running = yield* start(Effect.never.pipe(Fallback.orElse(() => alternative.effect, { catchDefects: true })))
      yield* Fiber.interrupt(running)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(running)))
      // a cause holding an interruption beside a failure (Effect.catch would recover it)
      const mixed = Effect.failCause(Cause.combine(Cause.fail(new Unavailable()), Cause.interrupt()))
      const exit = yield* Effect.exit(mixed.pipe(Fallback.orElse(() => alternative.effect, { catchDefects: true })))
      assert.isTrue(Exit.hasInterrupts(exit))
      const chained = yield* Effect.exit(mixed.pipe(Fallback.chain([alternative.effect])))
      assert.isTrue(Exit.hasInterrupts(chained))
      assert.strictEqual(alternative.runs.count, 0)
    })
  )

  it.effect("orElseSucceed answers a static value, under when and catchDefects", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* Effect.fail("down").pipe(Fallback.orElseSucceed(0)), 0)
      assert.strictEqual(yield* Effect.succeed(5).pipe(Fallback.orElseSucceed(0)), 5)
      const failing: Effect.Effect<number, NotFound | Unavailable> = Effect.fail(new NotFound({ id: "1" }))
      const refused = yield* Effect.exit(
        failing.pipe(Fallback.orElseSucceed(0, { when: (e): e is Unavailable => e._tag === "Unavailable" }))
      )
      assert.deepStrictEqual(refused, Exit.fail(new NotFound({ id: "1" })))
      assert.isTrue(Exit.hasDies(yield* Effect.exit(Effect.die("x").pipe(Fallback.orElseSucceed(0)))))
      assert.strictEqual(yield* Effect.die("x").pipe(Fallback.orElseSucceed(0, { catchDefects: true })), 0)
      assert.strictEqual(yield* Fallback.orElseSucceed(Effect.fail("down"), "data-first"), "data-first")
    })
  )
})

describe("Fallback.chain", () => {
  const source = (log: Array<string>, name: string, exit: Exit.Exit<string, string>) =>
    Effect.suspend(() => {
      log.push(name)
      return exit
    })

  it.effect("tries the alternatives in order; the first success answers and the rest never run", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const result = yield* source(log, "primary", Exit.fail("primary down")).pipe(
        Fallback.chain([
          source(log, "a", Exit.fail("a down")),
          source(log, "b", Exit.succeed("from b")),
          source(log, "c", Exit.succeed("from c"))
        ])
      )
      assert.deepStrictEqual([result, log], ["from b", ["primary", "a", "b"]])
      log.length = 0
      const ok = yield* source(log, "primary", Exit.succeed("primary")).pipe(
        Fallback.chain([source(log, "a", Exit.succeed("a"))])
      )
      assert.deepStrictEqual([ok, log], ["primary", ["primary"]])
    })
  )

  it.effect("fails as its last alternative does; typed so without when", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const chained: Effect.Effect<string, "last"> = Effect.fail("first" as const).pipe(
        Fallback.chain([Effect.fail("middle" as const), Effect.fail("last" as const)])
      )
      assert.strictEqual(yield* Effect.flip(chained), "last")
      const dataFirst: Effect.Effect<string | number, never> = Fallback.chain(Effect.fail("x"), [
        source(log, "a", Exit.fail("a")),
        Effect.succeed(1)
      ])
      assert.strictEqual(yield* dataFirst, 1)
    })
  )

  it.effect("when: a failure it refuses (of the effect or of an alternative) propagates, the rest not tried", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const transient = (e: string) => e.endsWith("down")
      const chained: Effect.Effect<string, string> = source(log, "primary", Exit.fail("primary down")).pipe(
        Fallback.chain([source(log, "a", Exit.fail("a: bad request")), source(log, "b", Exit.succeed("from b"))], {
          when: transient
        })
      )
      assert.strictEqual(yield* Effect.flip(chained), "a: bad request")
      assert.deepStrictEqual(log, ["primary", "a"])
    })
  )

  it.effect("catchDefects: a defect of the effect or of an alternative moves on to the next", () =>
    Effect.gen(function* () {
      const result = yield* Effect.die("primary bug").pipe(
        Fallback.chain([Effect.die("a bug"), Effect.succeed("from b")], { catchDefects: true })
      )
      assert.strictEqual(result, "from b")
      const exit = yield* Effect.exit(Effect.die("bug").pipe(Fallback.chain([Effect.succeed("never")])))
      assert.isTrue(Exit.hasDies(exit))
    })
  )
})

describe("Fallback monitoring (combinators)", () => {
  it.effect("events: FallbackUsed with the name, reason, alternative position and error", () =>
    Effect.gen(function* () {
      const queue = yield* Fallback.subscribe
      yield* Effect.fail("down").pipe(Fallback.orElse(() => Effect.succeed(1), { name: "events-1" }))
      yield* Effect.die("bug").pipe(Fallback.orElseSucceed(2, { name: "events-1", catchDefects: true }))
      yield* Effect.fail("p").pipe(Fallback.chain([Effect.fail("a"), Effect.succeed(3)], { name: "events-2" }))
      yield* Effect.succeed(4).pipe(Fallback.orElseSucceed(0, { name: "events-1" }))
      const events = yield* drain(queue)
      assert.deepStrictEqual(
        events.map((e) => (e._tag === "FallbackUsed" ? [e.name, e.reason, e.alternative, e.error] : [e._tag])),
        [
          ["events-1", "failure", 1, "down"],
          ["events-1", "defect", 1, "bug"],
          ["events-2", "failure", 1, "p"],
          ["events-2", "failure", 2, "a"]
        ]
      )
    })
  )

  it.effect("metrics: resilience.fallback.used by name and reason, in the fiber's registry", () =>
    Effect.gen(function* () {
      const name = "metrics-combinators"
      const read = Effect.map(Metric.snapshot, (snapshots) => [
        metricValue(snapshots, "resilience.fallback.used", {
          "resilience.name": name,
          "resilience.reason": "failure"
        }),
        metricValue(snapshots, "resilience.fallback.used", {
          "resilience.name": name,
          "resilience.reason": "defect"
        })
      ])
      // registered on the first fallback of the name
      assert.deepStrictEqual(yield* read, [undefined, undefined])
      yield* Effect.fail("x").pipe(Fallback.orElseSucceed(0, { name }))
      yield* Effect.fail("x").pipe(Fallback.orElse(() => Effect.succeed(0), { name }))
      yield* Effect.die("x").pipe(Fallback.orElse(() => Effect.succeed(0), { name, catchDefects: true }))
      yield* Effect.fail("x").pipe(Fallback.chain([Effect.fail("y"), Effect.succeed(0)], { name }))
      yield* Effect.succeed(1).pipe(Fallback.orElseSucceed(0, { name }))
      assert.deepStrictEqual(yield* read, [4, 1])
      assert.deepStrictEqual(yield* Fallback.usedStats(name), { failure: 4, defect: 1 })
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("span events: FallbackUsed with the name and reason, on the caller's span", () =>
    Effect.gen(function* () {
      const events = yield* Effect.gen(function* () {
        yield* Effect.fail("x").pipe(Fallback.orElseSucceed(0, { name: "spans" }))
        yield* Effect.die("x").pipe(Fallback.orElseSucceed(0, { name: "spans", catchDefects: true }))
        const span = yield* Effect.currentSpan
        return "events" in span && Array.isArray(span.events)
          ? span.events.map((e: ReadonlyArray<unknown>) => [e[0], e[2]])
          : []
      }).pipe(Effect.withSpan("request"))
      assert.deepStrictEqual(events, [
        ["FallbackUsed", { "resilience.name": "spans", "resilience.reason": "failure" }],
        ["FallbackUsed", { "resilience.name": "spans", "resilience.reason": "defect" }]
      ])
    })
  )
})

describe("Fallback.orElseCached", () => {
  it.effect("stores each success; a failure answers the last good value younger than maxStale, else propagates", () =>
    Effect.gen(function* () {
      // no sweep in this test: an expired value is found (and dropped) by the lookup
      const cache = yield* Fallback.make({ name: "quotes", maxStale: "5 minutes", sweepInterval: "1 hour" })
      let up = true
      const call = Effect.suspend(() => source("other quote"))
      const source = (value: string): Effect.Effect<string, string> =>
        up ? Effect.succeed(value) : Effect.fail("down")
      const get = (value: string) => source(value).pipe(Fallback.orElseCached({ key: "EURUSD" }))
      assert.strictEqual(yield* get("v1").pipe(Effect.provideService(Fallback.FallbackCache, cache)), "v1")
      assert.strictEqual(yield* cache.orElseCached(call, { key: "other" }), "other quote")
      up = false
      yield* TestClock.adjust("4 minutes")
      assert.strictEqual(yield* get("v2").pipe(Effect.provideService(Fallback.FallbackCache, cache)), "v1")
      // younger than maxStale only: at 5 minutes it is expired
      yield* TestClock.adjust("1 minute")
      const expired = yield* Effect.exit(get("v3").pipe(Effect.provideService(Fallback.FallbackCache, cache)))
      assert.deepStrictEqual(expired, Exit.fail("down"))
      // no value for a key: the failure propagates
      assert.deepStrictEqual(
        yield* Effect.exit(cache.orElseCached(Effect.fail("down"), { key: "new" })),
        Exit.fail("down")
      )
      assert.deepStrictEqual(yield* cache.stats, {
        keys: 1,
        stored: 2,
        fresh: 0,
        stale: 1,
        expired: 1,
        miss: 1,
        evicted: 0
      })
    })
  )

  it.effect("a call's maxStale narrows the cache's; one above it is capped by it", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make({ maxStale: "1 minute" })
      yield* cache.orElseCached(Effect.succeed("v"), { key: "k" })
      yield* TestClock.adjust("30 seconds")
      const narrow = yield* Effect.exit(cache.orElseCached(Effect.fail("down"), { key: "k", maxStale: "10 seconds" }))
      assert.deepStrictEqual(narrow, Exit.fail("down"))
      assert.strictEqual(yield* cache.orElseCached(Effect.fail("down"), { key: "k", maxStale: "1 hour" }), "v")
      yield* TestClock.adjust("30 seconds")
      const capped = yield* Effect.exit(cache.orElseCached(Effect.fail("down"), { key: "k", maxStale: "1 hour" }))
      assert.deepStrictEqual(capped, Exit.fail("down"))
    })
  )

  it.effect("a value's age counts from when its call started; an older call ending later does not overwrite", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make()
      const slowGate = yield* Deferred.make<string>()
      const slow = yield* start(cache.orElseCached(Deferred.await(slowGate), { key: "k" }))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* cache.orElseCached(Effect.succeed("fresh"), { key: "k" }), "fresh")
      yield* TestClock.adjust("10 seconds")
      // the slow call started 10 s before the fresh one: its value is older, and is not stored over it
      yield* Deferred.succeed(slowGate, "older")
      assert.strictEqual(yield* Fiber.join(slow), "older")
      const served = yield* cache.withStaleness(Effect.fail("down"), { key: "k" })
      assert.deepStrictEqual([served.value, served.stale], ["fresh", Option.some(Duration.seconds(10))])
      // a value stored by a call that took 20 s is 20 s old when it ends
      const gate = yield* Deferred.make<string>()
      const long = yield* start(cache.orElseCached(Deferred.await(gate), { key: "long" }))
      yield* TestClock.adjust("20 seconds")
      yield* Deferred.succeed(gate, "long value")
      yield* Fiber.join(long)
      const entry = yield* cache.get("long")
      assert.deepStrictEqual(
        Option.map(entry, (e) => [e.value, Duration.toSeconds(e.age)]),
        Option.some(["long value", 20])
      )
    })
  )

  it.effect("with a ttl, a value younger than it answers without calling; serveFresh: false calls", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make({ ttl: "30 seconds" })
      const call = counted(Exit.succeed("live"))
      assert.strictEqual(yield* cache.orElseCached(call.effect, { key: "k" }), "live")
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual(yield* cache.orElseCached(Effect.succeed("not called"), { key: "k" }), "live")
      assert.strictEqual(yield* cache.orElseCached(Effect.succeed("called"), { key: "k", serveFresh: false }), "called")
      yield* TestClock.adjust("30 seconds")
      // stored 30 s ago by the last call: no longer fresh, the call runs
      assert.strictEqual(yield* cache.orElseCached(call.effect, { key: "k" }), "live")
      assert.strictEqual(call.runs.count, 2)
      // a call's own ttl; without a ttl no value is fresh
      const plain = yield* Fallback.make()
      yield* plain.orElseCached(Effect.succeed("a"), { key: "k" })
      assert.strictEqual(yield* plain.orElseCached(Effect.succeed("b"), { key: "k" }), "b")
      assert.strictEqual(yield* plain.orElseCached(Effect.succeed("c"), { key: "k", ttl: "1 minute" }), "b")
      assert.deepStrictEqual((yield* cache.stats).fresh, 1)
    })
  )

  it.effect("when, catchDefects and interruption decide which failures the cache answers", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make()
      yield* cache.orElseCached(Effect.succeed("good"), { key: "k" })
      const failing: Effect.Effect<string, NotFound | Unavailable> = Effect.fail(new NotFound({ id: "k" }))
      const refused = yield* Effect.exit(
        cache.orElseCached(failing, {
          key: "k",
          when: (e) => e._tag === "Unavailable"
        })
      )
      assert.deepStrictEqual(refused, Exit.fail(new NotFound({ id: "k" })))
      assert.isTrue(Exit.hasDies(yield* Effect.exit(cache.orElseCached(Effect.die("bug"), { key: "k" }))))
      assert.strictEqual(yield* cache.orElseCached(Effect.die("bug"), { key: "k", catchDefects: true }), "good")
      const running = yield* start(cache.orElseCached(Effect.never, { key: "k", catchDefects: true }))
      yield* Fiber.interrupt(running)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(running)))
      const stats = yield* cache.stats
      assert.deepStrictEqual([stats.stale, stats.miss, stats.expired], [1, 0, 0])
    })
  )

  it.effect("withStaleness: the value with its source, and the age of a stale answer", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make({ ttl: "10 seconds" })
      const layer = Layer.succeed(Fallback.FallbackCache, cache)
      const served = (effect: Effect.Effect<number, string>) =>
        effect.pipe(Fallback.withStaleness({ key: "n" }), Effect.provide(layer))
      assert.deepStrictEqual(yield* served(Effect.succeed(1)), { value: 1, source: "call", stale: Option.none() })
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* served(Effect.succeed(2)), { value: 1, source: "fresh", stale: Option.none() })
      yield* TestClock.adjust("60 seconds")
      assert.deepStrictEqual(yield* served(Effect.fail("down")), {
        value: 1,
        source: "stale",
        stale: Option.some(Duration.seconds(65))
      })
      assert.deepStrictEqual(
        yield* Effect.exit(served(Effect.fail("down")).pipe(Effect.provide(layer))),
        Exit.succeed({
          value: 1,
          source: "stale" as const,
          stale: Option.some(Duration.seconds(65))
        })
      )
    })
  )

  it.effect("maxKeys: storing a new key when full drops the least recently used one (stored or served)", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make({ maxKeys: 2 })
      yield* cache.orElseCached(Effect.succeed("a"), { key: "a" })
      yield* cache.orElseCached(Effect.succeed("b"), { key: "b" })
      // serving "a" stale makes it the most recently used: "b" goes first
      assert.strictEqual(yield* cache.orElseCached(Effect.fail("down"), { key: "a" }), "a")
      yield* cache.orElseCached(Effect.succeed("c"), { key: "c" })
      const held = yield* Effect.forEach(["a", "b", "c"], (key) => Effect.map(cache.get(key), Option.isSome))
      assert.deepStrictEqual(held, [true, false, true])
      assert.deepStrictEqual([(yield* cache.stats).keys, (yield* cache.stats).evicted], [2, 1])
    })
  )

  it.effect("a flood of keys: the cache holds maxKeys, the most recent ones", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make({ maxKeys: 1_000 })
      for (let i = 0; i < 100_000; i++) yield* cache.orElseCached(Effect.succeed(i), { key: `user-${i}` })
      const stats = yield* cache.stats
      assert.deepStrictEqual([stats.keys, stats.stored, stats.evicted], [1_000, 100_000, 99_000])
      assert.isTrue(Option.isNone(yield* cache.get("user-98999")))
      assert.deepStrictEqual(
        Option.map(yield* cache.get("user-99000"), (e) => e.value),
        Option.some(99_000)
      )
    })
  )

  it.effect("values older than maxStale are swept every sweepInterval; the sweep ends with the scope", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const cache = yield* Fallback.make({ maxStale: "1 minute", sweepInterval: "30 seconds" }).pipe(
        Scope.provide(scope)
      )
      yield* cache.set("old", 1)
      yield* TestClock.adjust("40 seconds")
      yield* cache.set("young", 2)
      yield* TestClock.adjust("20 seconds")
      // at 60 s: "old" is 60 s old (dropped by the sweep at 60 s), "young" 20 s
      assert.deepStrictEqual((yield* cache.stats).keys, 1)
      assert.isTrue(Option.isSome(yield* cache.get("young")))
      yield* Scope.close(scope, Exit.void)
      yield* cache.set("late", 3)
      yield* TestClock.adjust("10 minutes")
      assert.deepStrictEqual((yield* cache.stats).keys, 2)
    })
  )

  it.effect("get, set and invalidate", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make()
      assert.isTrue(Option.isNone(yield* cache.get("k")))
      yield* cache.set("k", { price: 1 })
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual(yield* cache.get("k"), Option.some({ value: { price: 1 }, age: Duration.seconds(3) }))
      assert.strictEqual(
        yield* cache.orElseCached(Effect.fail("down"), { key: "k" }).pipe(Effect.map((v) => JSON.stringify(v))),
        '{"price":1}'
      )
      yield* cache.invalidate("k")
      assert.deepStrictEqual(
        yield* Effect.exit(cache.orElseCached(Effect.fail("down"), { key: "k" })),
        Exit.fail("down")
      )
    })
  )

  it.effect("a bad per-call duration is a defect, the call not run", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make()
      const call = counted(Exit.succeed(1))
      for (const bad of [{ maxStale: -1 }, { ttl: "soon" as Duration.Input }]) {
        const exit = yield* Effect.exit(cache.orElseCached(call.effect, { key: "k", ...bad }))
        assert.isTrue(Exit.hasDies(exit))
      }
      assert.strictEqual(call.runs.count, 0)
    })
  )

  it.effect("events: StaleServed with the key, age and maxStale, on the cache's and the process's streams", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make({ name: "stale-events" })
      const own = yield* cache.subscribe
      const all = yield* Fallback.subscribe
      yield* cache.orElseCached(Effect.succeed(1), { key: "k" })
      yield* TestClock.adjust("2 seconds")
      yield* cache.orElseCached(Effect.die("bug"), { key: "k", maxStale: "1 minute", catchDefects: true })
      yield* Effect.exit(cache.orElseCached(Effect.fail("down"), { key: "missing" }))
      const expected: Fallback.Event = {
        _tag: "StaleServed",
        name: "stale-events",
        key: "k",
        age: Duration.seconds(2),
        maxStale: Duration.minutes(1),
        reason: "defect"
      }
      assert.deepStrictEqual(yield* drain(own), [expected])
      assert.deepStrictEqual(
        (yield* drain(all)).filter((e) => e._tag === "StaleServed" && e.name === "stale-events"),
        [expected]
      )
    })
  )

  it.effect("metrics: lookups by outcome and keys held, with the cache's name, never a key", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make({
        name: "prices",
        ttl: "10 seconds",
        maxStale: "1 minute",
        sweepInterval: "1 hour"
      })
      const lookups = (outcome: string) => ({ "resilience.name": "prices", "resilience.outcome": outcome })
      yield* cache.orElseCached(Effect.succeed(1), { key: "secret-key-1" })
      yield* cache.orElseCached(Effect.succeed(2), { key: "secret-key-1" })
      yield* TestClock.adjust("20 seconds")
      yield* cache.orElseCached(Effect.fail("down"), { key: "secret-key-1" })
      yield* Effect.exit(cache.orElseCached(Effect.fail("down"), { key: "secret-key-2" }))
      yield* TestClock.adjust("1 minute")
      yield* Effect.exit(cache.orElseCached(Effect.fail("down"), { key: "secret-key-1" }))
      const snapshots = yield* Metric.snapshot
      assert.deepStrictEqual(
        [
          metricValue(snapshots, "resilience.fallback.cache.lookups", lookups("fresh")),
          metricValue(snapshots, "resilience.fallback.cache.lookups", lookups("stale")),
          metricValue(snapshots, "resilience.fallback.cache.lookups", lookups("expired")),
          metricValue(snapshots, "resilience.fallback.cache.lookups", lookups("miss")),
          metricValue(snapshots, "resilience.fallback.cache.keys", { "resilience.name": "prices" })
        ],
        [1, 1, 1, 1, 0]
      )
      for (const s of snapshots.filter((m) => m.id.startsWith("resilience.fallback"))) {
        for (const value of Object.values(s.attributes ?? {})) assert.notInclude(String(value), "secret-key")
      }
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Fallback.Degradation", () => {
  it.effect("while degraded, whenDegraded answers from the fallback without calling; recover calls again", () =>
    Effect.gen(function* () {
      const degradation = yield* Fallback.makeDegradation({ name: "search" })
      const primary = counted(Exit.succeed("live"))
      const reasons: Array<string> = []
      const query = primary.effect.pipe(
        Fallback.whenDegraded(degradation, (reason) => {
          reasons.push(reason)
          return Effect.succeed("cached results")
        })
      )
      assert.strictEqual(yield* query, "live")
      assert.deepStrictEqual(yield* degradation.state, { _tag: "Normal" })
      yield* TestClock.adjust("1 second")
      yield* degradation.degrade("index rebuild")
      // the mode is read when the effect runs, not when it is built
      assert.deepStrictEqual([yield* query, yield* query], ["cached results", "cached results"])
      assert.deepStrictEqual(yield* degradation.state, {
        _tag: "Degraded",
        reason: "index rebuild",
        since: DateTime.makeUnsafe(1_000)
      })
      yield* degradation.recover
      assert.strictEqual(yield* Fallback.whenDegraded(primary.effect, degradation, () => Effect.succeed("x")), "live")
      assert.deepStrictEqual([primary.runs.count, reasons], [2, ["index rebuild", "index rebuild"]])
      assert.deepStrictEqual(yield* degradation.stats, { degraded: false, degradations: 1, fallbacks: 2 })
    })
  )

  it.effect("events: DegradedModeChanged on each change (not a repeat), FallbackUsed per degraded answer", () =>
    Effect.gen(function* () {
      const degradation = yield* Fallback.makeDegradation({ name: "recs" })
      const queue = yield* degradation.subscribe
      yield* degradation.recover
      yield* degradation.degrade("breaker open")
      yield* degradation.degrade("breaker open")
      yield* degradation.degrade("maintenance")
      yield* Effect.succeed(1).pipe(Fallback.whenDegraded(degradation, () => Effect.succeed(0)))
      yield* degradation.recover
      yield* degradation.recover
      const events = yield* drain(queue)
      assert.deepStrictEqual(events, [
        { _tag: "DegradedModeChanged", name: "recs", degraded: true, reason: "breaker open" },
        { _tag: "DegradedModeChanged", name: "recs", degraded: true, reason: "maintenance" },
        { _tag: "FallbackUsed", name: "recs", reason: "degraded", alternative: 1, error: "maintenance" },
        { _tag: "DegradedModeChanged", name: "recs", degraded: false, reason: undefined }
      ])
      // a change of reason keeps `since`, and counts one degradation
      assert.deepStrictEqual((yield* degradation.stats).degradations, 1)
    })
  )

  it.effect("metrics: the degraded gauge and fallbacks used with reason degraded", () =>
    Effect.gen(function* () {
      const degradation = yield* Fallback.makeDegradation({ name: "payments" })
      const read = Effect.map(Metric.snapshot, (snapshots) => [
        metricValue(snapshots, "resilience.fallback.degraded", { "resilience.name": "payments" }),
        metricValue(snapshots, "resilience.fallback.used", {
          "resilience.name": "payments",
          "resilience.reason": "degraded"
        })
      ])
      assert.deepStrictEqual(yield* read, [0, 0])
      yield* degradation.degrade("provider outage")
      yield* Effect.succeed(1).pipe(Fallback.whenDegraded(degradation, () => Effect.succeed(0)))
      yield* Effect.succeed(1).pipe(Fallback.whenDegraded(degradation, () => Effect.succeed(0)))
      assert.deepStrictEqual(yield* read, [1, 2])
      yield* degradation.recover
      assert.deepStrictEqual(yield* read, [0, 2])
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Fallback.coalesce", () => {
  /** An execution held until `gate` is done, counting its runs and whether it was interrupted. */
  const held = <A, E>(gate: Deferred.Deferred<A, E>) => {
    const runs = { started: 0, interrupted: 0 }
    const effect = Effect.suspend(() => {
      runs.started++
      return Deferred.await(gate)
    }).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          runs.interrupted++
        })
      )
    )
    return { runs, effect }
  }

  it.effect("concurrent calls with the same key share one execution; every caller gets its value", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer({ name: "profiles" })
      const gate = yield* Deferred.make<string>()
      const { effect, runs } = held(gate)
      const callers = []
      for (let i = 0; i < 5; i++) callers.push(yield* start(coalescer.coalesce(effect, { key: "user:1" })))
      assert.deepStrictEqual(yield* coalescer.stats, { inFlight: 1, executions: 1, coalesced: 4 })
      yield* Deferred.succeed(gate, "profile")
      for (const caller of callers) assert.strictEqual(yield* Fiber.join(caller), "profile")
      assert.strictEqual(runs.started, 1)
      // nothing is kept: the next call starts a new execution
      assert.deepStrictEqual((yield* coalescer.stats).inFlight, 0)
      assert.strictEqual(yield* coalescer.coalesce(Effect.succeed("again"), { key: "user:1" }), "again")
      assert.deepStrictEqual(yield* coalescer.stats, { inFlight: 0, executions: 2, coalesced: 4 })
    })
  )

  it.effect("a failure and a defect are shared as they are", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer()
      for (const exit of [Exit.fail("down"), Exit.die("bug")] as const) {
        const gate = yield* Deferred.make<string, string>()
        const { effect, runs } = held(gate)
        const a = yield* start(Effect.exit(coalescer.coalesce(effect, { key: "k" })))
        const b = yield* start(Effect.exit(coalescer.coalesce(effect, { key: "k" })))
        yield* Deferred.done(gate, exit)
        const [ea, eb] = [yield* Fiber.join(a), yield* Fiber.join(b)]
        assert.strictEqual(runs.started, 1)
        const squashed = (e: Exit.Exit<string, string>) => (Exit.isFailure(e) ? Cause.squash(e.cause) : e.value)
        assert.deepStrictEqual([squashed(ea), squashed(eb)], [squashed(exit), squashed(exit)])
      }
    })
  )

  it.effect("different keys run separately; a key runs again once its execution completed", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer()
      const gateA = yield* Deferred.make<string>()
      const gateB = yield* Deferred.make<string>()
      const a = held(gateA)
      const b = held(gateB)
      const a1 = yield* start(coalescer.coalesce(a.effect, { key: "a" }))
      const b1 = yield* start(coalescer.coalesce(b.effect, { key: "b" }))
      const a2 = yield* start(coalescer.coalesce(a.effect, { key: "a" }))
      assert.deepStrictEqual(yield* coalescer.stats, { inFlight: 2, executions: 2, coalesced: 1 })
      yield* Deferred.succeed(gateA, "A")
      assert.deepStrictEqual([yield* Fiber.join(a1), yield* Fiber.join(a2)], ["A", "A"])
      const b2 = yield* start(coalescer.coalesce(b.effect, { key: "b" }))
      yield* Deferred.succeed(gateB, "B")
      assert.deepStrictEqual([yield* Fiber.join(b1), yield* Fiber.join(b2)], ["B", "B"])
      assert.deepStrictEqual([a.runs.started, b.runs.started], [1, 1])
    })
  )

  it.effect("a caller interrupted alone leaves; the others, and the execution, are unaffected", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer()
      const gate = yield* Deferred.make<string>()
      const { effect, runs } = held(gate)
      // the caller that started the execution leaves first
      const first = yield* start(coalescer.coalesce(effect, { key: "k" }))
      const second = yield* start(coalescer.coalesce(effect, { key: "k" }))
      const third = yield* start(coalescer.coalesce(effect, { key: "k" }))
      yield* Fiber.interrupt(first)
      yield* Fiber.interrupt(third)
      assert.deepStrictEqual([runs.started, runs.interrupted, (yield* coalescer.stats).inFlight], [1, 0, 1])
      yield* Deferred.succeed(gate, "value")
      assert.strictEqual(yield* Fiber.join(second), "value")
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(first)))
      assert.deepStrictEqual([runs.started, runs.interrupted], [1, 0])
    })
  )

  it.effect("the execution is interrupted only when every waiting caller has been interrupted", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer()
      const gate = yield* Deferred.make<string>()
      const { effect, runs } = held(gate)
      const callers = []
      for (let i = 0; i < 3; i++) callers.push(yield* start(coalescer.coalesce(effect, { key: "k" })))
      for (const [i, caller] of callers.entries()) {
        assert.strictEqual(runs.interrupted, 0, `before caller ${i} left`)
        yield* Fiber.interrupt(caller)
      }
      yield* Effect.yieldNow
      assert.deepStrictEqual([runs.started, runs.interrupted], [1, 1])
      assert.deepStrictEqual((yield* coalescer.stats).inFlight, 0)
      // a new call starts a new execution (the abandoned one is not joined)
      const next = yield* start(coalescer.coalesce(effect, { key: "k" }))
      assert.deepStrictEqual([runs.started, (yield* coalescer.stats).executions], [2, 2])
      yield* Deferred.succeed(gate, "done")
      assert.strictEqual(yield* Fiber.join(next), "done")
    })
  )

  it.effect("ten thousand keys in flight at once: one execution each, and nothing kept once they complete", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer()
      const gate = yield* Deferred.make<void>()
      const callers = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: 20_000 }, (_, i) => i),
          (i) => coalescer.coalesce(Effect.as(Deferred.await(gate), i % 10_000), { key: `key-${i % 10_000}` }),
          { concurrency: "unbounded" }
        )
      )
      yield* Effect.yieldNow
      assert.deepStrictEqual(yield* coalescer.stats, { inFlight: 10_000, executions: 10_000, coalesced: 10_000 })
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(callers)
      assert.deepStrictEqual(results.slice(9_998, 10_002), [9_998, 9_999, 0, 1])
      assert.deepStrictEqual((yield* coalescer.stats).inFlight, 0)
    })
  )

  it.effect("an effect that completes without suspending returns at once and keeps nothing", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer()
      const call = counted(Exit.succeed(7))
      assert.deepStrictEqual(
        [yield* coalescer.coalesce(call.effect, { key: "k" }), yield* coalescer.coalesce(call.effect, { key: "k" })],
        [7, 7]
      )
      assert.deepStrictEqual(yield* coalescer.stats, { inFlight: 0, executions: 2, coalesced: 0 })
    })
  )

  it.effect("Fallback.coalesce uses the Coalescer of the context; closing its scope interrupts executions", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const coalescer = yield* Fallback.makeCoalescer({ name: "ctx" }).pipe(Scope.provide(scope))
      const gate = yield* Deferred.make<string>()
      const { effect, runs } = held(gate)
      const call: Effect.Effect<string, never, Fallback.Coalescer> = effect.pipe(Fallback.coalesce({ key: "k" }))
      const a = yield* start(call.pipe(Effect.provideService(Fallback.Coalescer, coalescer)))
      const b = yield* start(
        Fallback.coalesce(effect, { key: "k" }).pipe(Effect.provideService(Fallback.Coalescer, coalescer))
      )
      assert.deepStrictEqual(yield* coalescer.stats, { inFlight: 1, executions: 1, coalesced: 1 })
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(runs.interrupted, 1)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(a)))
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(b)))
    })
  )

  it.effect("monitoring: Coalesced events and the coalesced and executions counters", () =>
    Effect.gen(function* () {
      const coalescer = yield* Fallback.makeCoalescer({ name: "lookups" })
      const queue = yield* coalescer.subscribe
      const gate = yield* Deferred.make<string>()
      const { effect } = held(gate)
      const callers = []
      for (let i = 0; i < 3; i++) callers.push(yield* start(coalescer.coalesce(effect, { key: "k" })))
      yield* Deferred.succeed(gate, "v")
      for (const caller of callers) yield* Fiber.join(caller)
      assert.deepStrictEqual(yield* drain(queue), [
        { _tag: "Coalesced", name: "lookups", key: "k", waiters: 2 },
        { _tag: "Coalesced", name: "lookups", key: "k", waiters: 3 }
      ])
      const snapshots = yield* Metric.snapshot
      assert.deepStrictEqual(
        [
          metricValue(snapshots, "resilience.fallback.coalesced", { "resilience.name": "lookups" }),
          metricValue(snapshots, "resilience.fallback.coalesce.executions", { "resilience.name": "lookups" })
        ],
        [2, 1]
      )
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Fallback options", () => {
  it.effect("defaults", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make()
      assert.deepStrictEqual(
        {
          ...cache.options,
          ttl: Duration.toMillis(cache.options.ttl),
          maxStale: Duration.toMillis(cache.options.maxStale),
          sweepInterval: Duration.toMillis(cache.options.sweepInterval)
        },
        { name: "default", maxKeys: 10_000, ttl: 0, maxStale: 300_000, sweepInterval: 30_000 }
      )
      assert.strictEqual(cache.name, "default")
      // an option given as undefined takes its default (as `Input` allows)
      const explicit = yield* Fallback.validateOptions({ name: undefined, maxKeys: undefined, ttl: undefined })
      assert.deepStrictEqual([explicit.name, explicit.maxKeys, Duration.toMillis(explicit.ttl)], ["default", 10_000, 0])
    })
  )

  it.effect("the smallest valid values", () =>
    Effect.gen(function* () {
      const options = yield* Fallback.validateOptions({ maxKeys: 1, ttl: 0, maxStale: 1, sweepInterval: "1 millis" })
      assert.deepStrictEqual(
        [options.maxKeys, Duration.toMillis(options.ttl), Duration.toMillis(options.maxStale)],
        [1, 0, 1]
      )
      // ttl may equal maxStale
      const equal = yield* Fallback.validateOptions({ ttl: "1 minute", maxStale: "1 minute" })
      assert.strictEqual(Duration.toMillis(equal.ttl), 60_000)
    })
  )

  it.effect("invalid options fail with one InvalidOptions listing every bad field and value", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Fallback.validateOptions({
          name: "quotes",
          maxKeys: 0,
          ttl: -1,
          maxStale: "soon" as Duration.Input,
          sweepInterval: 0
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "Fallback")
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["ttl", "-1", "Expected a non-negative duration"],
          ["maxStale", '"soon"', "Expected a non-negative duration"],
          ["maxKeys", "0", "Expected a value greater than or equal to 1"],
          ["sweepInterval", "0", "Expected a duration greater than zero"]
        ]
      )
      // cross-field: a ttl above maxStale; maxStale zero
      const crossed = yield* Effect.flip(Fallback.validateOptions({ ttl: "10 minutes", maxStale: 0 }))
      assert.deepStrictEqual(
        crossed.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["maxStale", "0", "Expected a duration greater than zero"],
          ["ttl", "10m", "Expected a duration at most maxStale (0)"]
        ]
      )
      const exit = yield* Effect.exit(Fallback.make({ maxKeys: 1.5 }))
      assert.isTrue(Exit.isFailure(exit))
    })
  )
})

describe("Fallback.layerConfig", () => {
  const fromEnv = (env: Record<string, string>) =>
    Effect.exit(
      Effect.map(Fallback.FallbackCache, (cache) => cache.options).pipe(
        Effect.provide(
          Fallback.layerConfig("quotes").pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))
        )
      )
    )

  it.effect("reads options from environment variables, the name defaulting to the path", () =>
    Effect.gen(function* () {
      const exit = yield* fromEnv({ quotes_maxKeys: "100", quotes_ttl: "5 seconds", quotes_maxStale: "2 minutes" })
      assert.isTrue(Exit.isSuccess(exit))
      if (!Exit.isSuccess(exit)) return
      const o = exit.value
      assert.deepStrictEqual(
        [
          o.name,
          o.maxKeys,
          Duration.toMillis(o.ttl),
          Duration.toMillis(o.maxStale),
          Duration.toMillis(o.sweepInterval)
        ],
        ["quotes", 100, 5_000, 120_000, 30_000]
      )
    })
  )

  it.effect("bad values fail with one InvalidOptions naming each field and the text it held", () =>
    Effect.gen(function* () {
      const exit = yield* fromEnv({ quotes_maxKeys: "none", quotes_maxStale: "later" })
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(error, Options.InvalidOptions)
      if (!(error instanceof Options.InvalidOptions)) return
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value]),
        [
          ["maxKeys", '"none"'],
          ["maxStale", '"later"']
        ]
      )
    })
  )
})

describe("Fallback composition (the guide's tables)", () => {
  it.effect("outside a retry, the fallback answers once the retries are exhausted; inside, it stops them", () =>
    Effect.gen(function* () {
      const results: Record<string, readonly [string, number]> = {}
      const orders = {
        "fallback outside": (call: Effect.Effect<string, string>) =>
          call.pipe(Retry.retry(Retry.constant({ delay: 0, maxAttempts: 3 })), Fallback.orElseSucceed("default")),
        "fallback inside": (call: Effect.Effect<string, string>) =>
          call.pipe(Fallback.orElseSucceed("default"), Retry.retry(Retry.constant({ delay: 0, maxAttempts: 3 })))
      }
      for (const [order, wrap] of Object.entries(orders)) {
        let attempts = 0
        const call = Effect.suspend(() => (++attempts < 3 ? Effect.fail("flaky") : Effect.succeed("live")))
        results[order] = [yield* wrap(call), attempts]
      }
      assert.deepStrictEqual(results, { "fallback outside": ["live", 3], "fallback inside": ["default", 1] })
    })
  )

  it.effect("an attempt timeout inside is a failure the fallback answers; interrupting the whole is not", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make()
      yield* cache.orElseCached(Effect.succeed("last good"), { key: "k" })
      const slow = Effect.as(Effect.sleep("5 seconds"), "slow answer")
      const timedOut = yield* start(cache.orElseCached(slow.pipe(Timeout.attempt("1 second")), { key: "k" }))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(timedOut), "last good")
      const interrupted = yield* start(cache.orElseCached(slow, { key: "k" }))
      yield* Fiber.interrupt(interrupted)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(interrupted)))
    })
  )

  it.effect("an open breaker's rejections are answered from the cache without calling the dependency", () =>
    Effect.gen(function* () {
      const cache = yield* Fallback.make()
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 }).pipe(
        Effect.provide(CircuitBreaker.layerStoreMemory())
      )
      let calls = 0
      let up = true
      const dependency = Effect.suspend(() => {
        calls++
        return up ? Effect.succeed("fresh") : Effect.fail("down")
      })
      const get = dependency.pipe(CircuitBreaker.protect(breaker), (e) => cache.orElseCached(e, { key: "k" }))
      assert.strictEqual(yield* get, "fresh")
      up = false
      assert.deepStrictEqual([yield* get, yield* get], ["fresh", "fresh"])
      assert.strictEqual((yield* breaker.state())._tag, "Open")
      assert.deepStrictEqual([yield* get, yield* get, calls], ["fresh", "fresh", 3])
    })
  )

  it.effect("events on the process stream are taken with Stream.take", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(Stream.runCollect(Stream.take(Fallback.events, 1)))
      yield* Effect.yieldNow
      yield* Effect.fail("x").pipe(Fallback.orElseSucceed(0, { name: "stream" }))
      const events = yield* Fiber.join(fiber)
      assert.deepStrictEqual(
        events.map((e) => e._tag),
        ["FallbackUsed"]
      )
    })
  )
})

// the success path adds no frame of its own, so deep nesting stays cheap and correct
describe("Fallback nesting", () => {
  it.effect("a thousand nested orElse around a success run it once", () =>
    Effect.gen(function* () {
      const call = counted(Exit.succeed(1))
      let effect: Effect.Effect<number, string> = call.effect
      for (let i = 0; i < 1_000; i++) effect = effect.pipe(Fallback.orElse(() => Effect.fail("never")))
      assert.deepStrictEqual([yield* effect, call.runs.count], [1, 1])
      // and around a failure, the innermost alternative answers
      let failing: Effect.Effect<number, string> = Effect.fail("x")
      for (let i = 0; i < 1_000; i++) failing = failing.pipe(Fallback.orElse(() => Effect.succeed(i)))
      assert.strictEqual(yield* failing, 0)
    })
  )
})
