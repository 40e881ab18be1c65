import { assert, describe, it } from "@effect/vitest"
import { LoadBalancer, Options } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { TestClock } from "effect/testing"
import { metricValue } from "./metrics.ts"

const endpoints = (...ids: ReadonlyArray<string>): ReadonlyArray<LoadBalancer.Endpoint> => ids.map((id) => ({ id }))

/** `n` calls one after another; the ids of the endpoints that ran them. */
const picks = <E extends LoadBalancer.Endpoint>(
  lb: LoadBalancer.LoadBalancer<E>,
  n: number,
  options?: LoadBalancer.CallOptions<string, never>
) => Effect.forEach(Array.from({ length: n }), () => LoadBalancer.call(lb, (e) => Effect.succeed(e.id), options))

/** A call that fails on the endpoints listed, succeeds elsewhere; the endpoint's id either way. */
const failingOn = <E extends LoadBalancer.Endpoint>(lb: LoadBalancer.LoadBalancer<E>, failing: ReadonlyArray<string>) =>
  Effect.exit(LoadBalancer.call(lb, (e) => (failing.includes(e.id) ? Effect.fail(e.id) : Effect.succeed(e.id))))

const idOf = (exit: Exit.Exit<string, string | LoadBalancer.LoadBalancerError>): string =>
  Exit.isSuccess(exit) ? exit.value : String(Cause.squash(exit.cause))

/** Lets forked fibers (discovery, calls) run until they suspend. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow
})

const hostState = <E extends LoadBalancer.Endpoint>(lb: LoadBalancer.LoadBalancer<E>, id: string) =>
  Effect.map(lb.stats, (s) => s.hosts.find((h) => h.id === id))

const count = (ids: ReadonlyArray<string>) => {
  const counts: Record<string, number> = {}
  for (const id of ids) counts[id] = (counts[id] ?? 0) + 1
  return counts
}

describe("LoadBalancer strategies", () => {
  it.effect("roundRobin: plain rotation with equal weights, smooth weighted (nginx) otherwise", () =>
    Effect.gen(function* () {
      const plain = yield* LoadBalancer.make({ endpoints: endpoints("a", "b", "c") })
      assert.deepStrictEqual(yield* picks(plain, 6), ["a", "b", "c", "a", "b", "c"])
      const weighted = yield* LoadBalancer.make({
        endpoints: [{ id: "a", weight: 5 }, { id: "b" }, { id: "c" }]
      })
      assert.deepStrictEqual(yield* picks(weighted, 7), ["a", "a", "b", "a", "c", "a", "a"])
    })
  )

  it.effect("call is dual: data-first, and data-last under Effect.flatMap; adds only LoadBalancerError", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ endpoints: endpoints("a") })
      const first: Effect.Effect<string, "boom" | LoadBalancer.LoadBalancerError> = LoadBalancer.call(lb, (e) =>
        e.id === "x" ? Effect.fail("boom" as const) : Effect.succeed(e.id)
      )
      const last = Effect.flatMap(
        Effect.succeed(lb),
        LoadBalancer.call((e: LoadBalancer.Endpoint) => Effect.succeed(`${e.id}!`))
      )
      assert.deepStrictEqual([yield* first, yield* last], ["a", "a!"])
    })
  )

  it.effect("random: weighted, and reproducible under Random.withSeed", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        strategy: "random",
        endpoints: [{ id: "a", weight: 3 }, { id: "b" }]
      })
      const run = picks(lb, 400).pipe(Random.withSeed("lb"))
      const one = yield* run
      assert.deepStrictEqual(yield* run, one)
      const counts = count(one)
      assert.isAbove(counts.a ?? 0, 240)
      assert.isAbove(counts.b ?? 0, 60)
    })
  )

  it.effect("leastRequests: a busy endpoint loses to an idle one among the two candidates", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ strategy: "leastRequests", endpoints: endpoints("a", "b") })
      const gate = yield* Deferred.make<void>()
      const held: Array<string> = []
      yield* Effect.forkChild(
        LoadBalancer.call(lb, (e) =>
          Effect.andThen(
            Effect.sync(() => held.push(e.id)),
            Deferred.await(gate)
          )
        )
      )
      yield* settle
      const idle = held[0] === "a" ? "b" : "a"
      assert.deepStrictEqual(
        yield* picks(lb, 10),
        Array.from({ length: 10 }, () => idle)
      )
      assert.strictEqual((yield* hostState(lb, held[0] ?? ""))?.inFlight, 1)
      yield* Deferred.succeed(gate, undefined)
    }).pipe(Random.withSeed(7))
  )

  it.effect("peakEwma: once the slow endpoint's latency is known, calls go to the fast one", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ strategy: "peakEwma", endpoints: endpoints("fast", "slow") })
      const timed = Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(
          LoadBalancer.call(lb, (e) => Effect.as(Effect.sleep(e.id === "slow" ? "1 second" : "10 millis"), e.id))
        )
        yield* TestClock.adjust("1 second")
        return yield* Fiber.join(fiber)
      })
      // until both have answered once, the pick is a coin toss
      const seen = new Set<string>()
      while (seen.size < 2) seen.add(yield* timed)
      const slow = yield* hostState(lb, "slow")
      assert.isAbove(Duration.toMillis(slow?.latency ?? Duration.zero), 0)
      const after: Array<string> = []
      for (let i = 0; i < 10; i++) after.push(yield* timed)
      assert.deepStrictEqual(
        after,
        Array.from({ length: 10 }, () => "fast")
      )
    }).pipe(Random.withSeed(3))
  )

  it.effect("ringHash: a key sticks to its endpoint; keys spread; an ejected endpoint's keys move, and come back", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        strategy: "ringHash",
        endpoints: endpoints("a", "b", "c", "d"),
        consecutiveFailures: 1,
        maxEjectionPercent: 25,
        baseEjectionTime: "10 seconds",
        interval: "1 hour"
      })
      const owner = (key: string) => LoadBalancer.call(lb, (e) => Effect.succeed(e.id), { key })
      const first = yield* owner("user-42")
      assert.deepStrictEqual(
        yield* picks(lb, 5, { key: "user-42" }),
        Array.from({ length: 5 }, () => first)
      )
      const owners = new Set<string>()
      for (let i = 0; i < 50; i++) owners.add(yield* owner(`user-${i}`))
      assert.strictEqual(owners.size, 4)
      // the owner fails once: ejected; the key goes elsewhere, other keys stay put
      const others = Array.from({ length: 50 }, (_, i) => `user-${i}`)
      const before = yield* Effect.forEach(others, owner)
      yield* Effect.exit(LoadBalancer.call(lb, () => Effect.fail("boom"), { key: "user-42" }))
      const moved = yield* owner("user-42")
      assert.notStrictEqual(moved, first)
      const during = yield* Effect.forEach(others, owner)
      during.forEach((id, i) => {
        if (before[i] !== first) assert.strictEqual(id, before[i])
      })
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* owner("user-42"), first)
    })
  )
})

describe("LoadBalancer outlier ejection", () => {
  it.effect("consecutive failures eject; the ejected endpoint gets no calls, and returns after baseEjectionTime", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        name: "users",
        endpoints: endpoints("a", "b", "c"),
        consecutiveFailures: 2,
        maxEjectionPercent: 50,
        baseEjectionTime: "10 seconds",
        maxEjectionTime: "25 seconds",
        interval: "1 hour"
      })
      const events = yield* lb.subscribe
      const round = Effect.forEach(Array.from({ length: 6 }), () => Effect.map(failingOn(lb, ["a"]), idOf))
      assert.deepStrictEqual(yield* round, ["a", "b", "c", "a", "b", "c"])
      // "a" failed twice in a row: ejected for 10 s
      assert.deepStrictEqual(yield* round, ["b", "c", "b", "c", "b", "c"])
      const a = yield* hostState(lb, "a")
      assert.deepStrictEqual(
        [a?.state, a?.ejections, a?.consecutiveFailures, Duration.toMillis(a?.ejectedFor ?? Duration.zero)],
        ["ejected", 1, 0, 10_000]
      )
      yield* TestClock.adjust("9999 millis")
      assert.isFalse((yield* round).includes("a"))
      yield* TestClock.adjust("1 millis")
      assert.isTrue((yield* picks(lb, 3)).includes("a"))
      assert.deepStrictEqual(
        (yield* Queue.clear(events)).map((e) =>
          e._tag === "EndpointEjected"
            ? [e._tag, e.endpoint, e.reason, Duration.toMillis(e.duration), e.multiplier, e.ejected, e.endpoints]
            : e._tag === "EndpointReturned"
              ? [e._tag, e.endpoint, Duration.toMillis(e.ejectedFor)]
              : [e._tag]
        ),
        [
          ["EndpointEjected", "a", "ConsecutiveFailures", 10_000, 1, 1, 3],
          ["EndpointReturned", "a", 10_000]
        ]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("each ejection in a row lasts baseEjectionTime × its multiplier, capped at maxEjectionTime", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        endpoints: endpoints("a", "b"),
        consecutiveFailures: 1,
        maxEjectionPercent: 50,
        baseEjectionTime: "10 seconds",
        maxEjectionTime: "25 seconds",
        interval: "1 hour"
      })
      const durations: Array<number> = []
      for (let k = 0; k < 4; k++) {
        // call until "a" is picked (and fails), then read its ejection
        let picked = ""
        while (picked !== "a") picked = idOf(yield* failingOn(lb, ["a"]))
        const a = yield* hostState(lb, "a")
        durations.push(Duration.toMillis(a?.ejectedFor ?? Duration.zero))
        yield* TestClock.adjust(a?.ejectedFor ?? Duration.zero)
      }
      assert.deepStrictEqual(durations, [10_000, 20_000, 25_000, 25_000])
    })
  )

  it.effect("maxEjectionPercent: a second failing endpoint is not ejected while the first is", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        endpoints: endpoints("a", "b", "c", "d"),
        consecutiveFailures: 1,
        maxEjectionPercent: 25,
        interval: "1 hour"
      })
      const ids = Effect.forEach(Array.from({ length: 8 }), () => Effect.map(failingOn(lb, ["a", "b"]), idOf))
      yield* ids
      const stats = yield* lb.stats
      assert.deepStrictEqual(
        [stats.ejected, stats.hosts.map((h) => h.state)],
        [1, ["ejected", "active", "active", "active"]]
      )
      // "b" keeps failing and keeps getting its share: the cap holds
      const next = count(yield* ids)
      assert.isUndefined(next.a)
      assert.isAtLeast(next.b ?? 0, 2)
      assert.strictEqual((yield* lb.stats).ejected, 1)
    })
  )

  it.effect("enforcingConsecutiveFailures is a chance: 0 never ejects, 100 always does", () =>
    Effect.gen(function* () {
      const make = (enforcing: number) =>
        LoadBalancer.make({
          endpoints: endpoints("a", "b"),
          consecutiveFailures: 1,
          enforcingConsecutiveFailures: enforcing,
          maxEjectionPercent: 50,
          interval: "1 hour"
        })
      const never = yield* make(0)
      for (let i = 0; i < 6; i++) yield* failingOn(never, ["a"])
      assert.strictEqual((yield* never.stats).ejected, 0)
      const always = yield* make(100)
      yield* failingOn(always, ["a"])
      assert.strictEqual((yield* always.stats).ejected, 1)
    })
  )

  it.effect("minAvailable keeps the last endpoint in service, whatever the percentage", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        endpoints: endpoints("a"),
        consecutiveFailures: 1,
        maxEjectionPercent: 100
      })
      yield* failingOn(lb, ["a"])
      yield* failingOn(lb, ["a"])
      assert.deepStrictEqual(yield* picks(lb, 2), ["a", "a"])
      assert.strictEqual((yield* lb.stats).ejected, 0)
    })
  )

  it.effect("every endpoint ejected, panic mode off: AllEjected with retryAfter when the earliest ejection ends", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        name: "orders",
        endpoints: endpoints("a", "b"),
        consecutiveFailures: 1,
        maxEjectionPercent: 100,
        minAvailable: 0,
        panicThreshold: 0,
        interval: "1 hour"
      })
      const events = yield* lb.subscribe
      yield* failingOn(lb, ["a", "b"]) // a, ejected at 0 for 30 s
      yield* TestClock.adjust("5 seconds")
      yield* failingOn(lb, ["a", "b"]) // b, ejected at 5 s
      const error = yield* Effect.flip(LoadBalancer.call(lb, (e) => Effect.succeed(e.id)))
      assert.isTrue(LoadBalancer.isLoadBalancerError(error))
      assert.isTrue(LoadBalancer.isRejection(error))
      assert.strictEqual(error.message, "Every endpoint is ejected")
      assert.strictEqual(error.reason._tag, "AllEjected")
      if (error.reason._tag === "AllEjected") {
        assert.deepStrictEqual(
          [error.reason.balancer, error.reason.endpoints, Duration.toMillis(error.reason.retryAfter)],
          ["orders", 2, 25_000]
        )
      }
      // no captured stack: rejections are cheap
      assert.notInclude(String(error.stack), "    at ")
      const rejected = (yield* Queue.clear(events)).filter((e) => e._tag === "Rejected")
      assert.deepStrictEqual(
        rejected.map((e) =>
          e._tag === "Rejected" ? [e.reason, Duration.toMillis(e.retryAfter ?? Duration.zero)] : []
        ),
        [["AllEjected", 25_000]]
      )
      yield* TestClock.adjust("25 seconds")
      assert.deepStrictEqual(yield* picks(lb, 2), ["a", "a"])
    }).pipe(Effect.scoped)
  )

  it.effect("panic mode: below panicThreshold % in service, calls go to every endpoint", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        endpoints: endpoints("a", "b", "c"),
        consecutiveFailures: 1,
        maxEjectionPercent: 100,
        panicThreshold: 50,
        interval: "1 hour"
      })
      yield* failingOn(lb, ["a"])
      const stats = yield* lb.stats
      assert.deepStrictEqual([stats.ejected, stats.panic], [1, false])
      assert.isFalse((yield* picks(lb, 4)).includes("a"))
      yield* failingOn(lb, ["b"])
      yield* failingOn(lb, ["b"])
      // two of three ejected: 33% in service, below 50%
      const panicked = yield* lb.stats
      assert.deepStrictEqual([panicked.ejected, panicked.panic], [2, true])
      assert.deepStrictEqual(Object.keys(count(yield* picks(lb, 6))).sort(), ["a", "b", "c"])
    })
  )

  it.effect("success rate: evaluated each interval, the endpoint below mean − factor × stdev is ejected", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        endpoints: endpoints("a", "b", "c", "d", "e"),
        consecutiveFailures: 0, // only the success rate
        successRateRequestVolume: 10,
        maxEjectionPercent: 20,
        interval: "10 seconds",
        baseEjectionTime: "30 seconds"
      })
      const events = yield* lb.subscribe
      const calls = (n: number) =>
        Effect.forEach(Array.from({ length: n }), () => Effect.map(failingOn(lb, ["e"]), idOf))
      // 10 calls each, "e" failing all of its own: nothing happens before the interval ends
      yield* calls(50)
      assert.strictEqual((yield* lb.stats).ejected, 0)
      yield* TestClock.adjust("10 seconds")
      const ejected = (yield* Queue.clear(events)).flatMap((e) =>
        e._tag === "EndpointEjected"
          ? [[e.endpoint, e.reason, e.successRate, Duration.toMillis(e.duration), e.threshold?.toFixed(2)]]
          : []
      )
      assert.deepStrictEqual(ejected, [["e", "SuccessRate", 0, 30_000, "0.04"]])
      assert.isFalse((yield* calls(8)).includes("e"))
      // the next intervals have too little volume to judge; "e" returns when its time is up
      yield* TestClock.adjust("30 seconds")
      assert.isTrue((yield* calls(5)).includes("e"))
      assert.deepStrictEqual(
        (yield* Queue.clear(events)).map((e) => [e._tag, "endpoint" in e ? e.endpoint : ""]),
        [["EndpointReturned", "e"]]
      )
    }).pipe(Effect.scoped)
  )
})

describe("LoadBalancer discovery", () => {
  it.effect("no endpoints: NoEndpoints (not a transient rejection) until a set arrives", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ name: "empty" })
      const error = yield* Effect.flip(LoadBalancer.call(lb, (e) => Effect.succeed(e.id)))
      assert.strictEqual(error.reason._tag, "NoEndpoints")
      assert.strictEqual(error.message, "No endpoints")
      assert.isFalse(LoadBalancer.isRejection(error))
      yield* lb.update(endpoints("a"))
      assert.deepStrictEqual(yield* picks(lb, 1), ["a"])
      assert.strictEqual((yield* lb.stats).rejected, 1)
    })
  )

  it.effect(
    "a discovery stream: removed endpoints get no new calls and their calls in flight finish; new ones get traffic; stats of those that stay are kept",
    () =>
      Effect.gen(function* () {
        const discovered = yield* Queue.unbounded<ReadonlyArray<LoadBalancer.Endpoint>>()
        const lb = yield* LoadBalancer.make({ name: "disco", endpoints: Stream.fromQueue(discovered) })
        const events = yield* lb.subscribe
        yield* Queue.offer(discovered, endpoints("a", "b"))
        yield* settle
        assert.deepStrictEqual(yield* picks(lb, 4), ["a", "b", "a", "b"])
        // a call in flight on the next endpoint ("a")
        const gate = yield* Deferred.make<string>()
        const inFlight = yield* Effect.forkChild(
          LoadBalancer.call(lb, (e) => Effect.map(Deferred.await(gate), (v) => `${e.id}:${v}`))
        )
        yield* settle
        yield* Queue.offer(discovered, endpoints("b", "c"))
        yield* settle
        const stats = yield* lb.stats
        assert.deepStrictEqual(
          stats.hosts.map((h) => [h.id, h.state, h.inFlight, h.successes]),
          [
            ["b", "active", 0, 2],
            ["c", "active", 0, 0],
            ["a", "draining", 1, 2]
          ]
        )
        assert.deepStrictEqual([stats.endpoints, stats.inFlight], [2, 1])
        assert.deepStrictEqual(count(yield* picks(lb, 6)), { b: 3, c: 3 })
        yield* Deferred.succeed(gate, "done")
        assert.strictEqual(yield* Fiber.join(inFlight), "a:done")
        assert.deepStrictEqual(
          (yield* lb.stats).hosts.map((h) => h.id),
          ["b", "c"]
        )
        assert.deepStrictEqual(
          (yield* Queue.clear(events)).flatMap((e) =>
            e._tag === "EndpointsChanged" ? [[e.added, e.removed, e.endpoints]] : []
          ),
          [
            [["a", "b"], [], 2],
            [["c"], ["a"], 2]
          ]
        )
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a SubscriptionRef: its current set applies at once, then each change; ejections of endpoints that stay are kept",
    () =>
      Effect.gen(function* () {
        const ref = yield* SubscriptionRef.make(endpoints("a", "b", "c"))
        const lb = yield* LoadBalancer.make({
          endpoints: ref,
          consecutiveFailures: 1,
          maxEjectionPercent: 50,
          interval: "1 hour"
        })
        assert.deepStrictEqual(yield* picks(lb, 3), ["a", "b", "c"])
        yield* failingOn(lb, ["a"])
        yield* SubscriptionRef.set(ref, [{ id: "a" }, { id: "c", weight: 2 }])
        yield* settle
        const stats = yield* lb.stats
        assert.deepStrictEqual(
          stats.hosts.map((h) => [h.id, h.state, h.weight]),
          [
            ["a", "ejected", 1],
            ["c", "active", 2]
          ]
        )
        assert.deepStrictEqual(yield* lb.endpoints, [{ id: "a" }, { id: "c", weight: 2 }])
      })
  )

  it.effect(
    "endpoints are validated: a fixed list fails make, update fails changing nothing, discovery leaves bad ones out",
    () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          LoadBalancer.make({ endpoints: [{ id: "a" }, { id: "" }, { id: "a" }, { id: "b", weight: 0 }] })
        )
        assert.instanceOf(error, Options.InvalidOptions)
        assert.deepStrictEqual(
          error.issues.map((i) => [i.path, i.value, i.message]),
          [
            ["endpoints.1.id", '""', "Expected a non-empty string"],
            ["endpoints.2.id", '"a"', "Expected a unique id"],
            ["endpoints.3.weight", "0", "Expected a finite number greater than zero"]
          ]
        )
        const lb = yield* LoadBalancer.make({ endpoints: endpoints("a") })
        const bad = yield* Effect.flip(lb.update([{ id: "b", weight: Number.NaN }]))
        assert.deepStrictEqual(
          bad.issues.map((i) => i.path),
          ["endpoints.0.weight"]
        )
        assert.deepStrictEqual(yield* lb.endpoints, endpoints("a"))
        const ref = yield* SubscriptionRef.make<ReadonlyArray<LoadBalancer.Endpoint>>([
          { id: "x" },
          { id: "y", weight: -1 }
        ])
        const discovered = yield* LoadBalancer.make({ endpoints: ref })
        assert.deepStrictEqual(yield* discovered.endpoints, [{ id: "x" }])
      })
  )
})

describe("LoadBalancer calls", () => {
  it.effect("an interrupted call is released and is not a failure", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        endpoints: endpoints("a"),
        consecutiveFailures: 1,
        maxEjectionPercent: 100,
        minAvailable: 0
      })
      const fiber = yield* Effect.forkChild(LoadBalancer.call(lb, () => Effect.never))
      yield* settle
      assert.strictEqual((yield* lb.stats).inFlight, 1)
      yield* Fiber.interrupt(fiber)
      const stats = yield* lb.stats
      assert.deepStrictEqual(
        [stats.inFlight, stats.ignored, stats.failures, stats.ejected, stats.hosts[0]?.consecutiveFailures],
        [0, 1, 0, 0, 0]
      )
      assert.deepStrictEqual(yield* picks(lb, 1), ["a"])
    })
  )

  it.effect(
    "classification: isIgnored, isFailure and isFailureResult per call then balancer-wide; a defect fails",
    () =>
      Effect.gen(function* () {
        const lb = yield* LoadBalancer.make({
          endpoints: endpoints("a"),
          consecutiveFailures: 0,
          isFailure: (error) => error !== "client-error",
          isFailureResult: (value) => value === 503
        })
        yield* Effect.exit(
          LoadBalancer.call(lb, () => Effect.fail("not-found"), { isIgnored: (e) => e === "not-found" })
        )
        yield* Effect.exit(LoadBalancer.call(lb, () => Effect.fail("client-error"))) // success for the endpoint
        yield* Effect.exit(LoadBalancer.call(lb, () => Effect.fail("client-error"), { isFailure: () => true }))
        yield* LoadBalancer.call(lb, () => Effect.succeed(503))
        yield* LoadBalancer.call(lb, () => Effect.succeed(200), { isFailureResult: (v) => v === 200 })
        yield* Effect.exit(LoadBalancer.call(lb, () => Effect.die("defect")))
        yield* LoadBalancer.call(lb, () => Effect.succeed(200))
        const stats = yield* lb.stats
        assert.deepStrictEqual([stats.successes, stats.failures, stats.ignored], [2, 4, 1])
      })
  )

  it.effect("a throw from f is a defect of the call: nothing stays in flight, no endpoint is charged", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ endpoints: endpoints("a") })
      const exit = yield* Effect.exit(
        LoadBalancer.call(lb, (): Effect.Effect<string> => {
          throw new Error("bad request builder")
        })
      )
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      const stats = yield* lb.stats
      assert.deepStrictEqual([stats.inFlight, stats.failures, stats.successes], [0, 0, 0])
    })
  )
})

describe("LoadBalancer latency", () => {
  /** A call that takes `millis` on the TestClock; fails on the endpoints listed. */
  const timedCall = <E extends LoadBalancer.Endpoint>(
    lb: LoadBalancer.LoadBalancer<E>,
    millis: number,
    failing: ReadonlyArray<string> = []
  ) =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(
        Effect.exit(
          LoadBalancer.call(lb, (e) =>
            Effect.andThen(
              Effect.sleep(Duration.millis(millis)),
              failing.includes(e.id) ? Effect.fail(e.id) : Effect.succeed(e.id)
            )
          )
        )
      )
      yield* TestClock.adjust(Duration.millis(millis))
      return idOf(yield* Fiber.join(fiber))
    })

  const latencies = <E extends LoadBalancer.Endpoint>(lb: LoadBalancer.LoadBalancer<E>) =>
    Effect.map(lb.stats, (s) =>
      s.hosts.map((h) => [h.id, h.latency === undefined ? undefined : Duration.toMillis(h.latency)])
    )

  it.effect("roundRobin does not time its calls by default: the latency stays 0 once calls ended", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ endpoints: endpoints("a", "b", "c") })
      assert.isFalse(lb.options.recordLatency)
      for (let i = 0; i < 2; i++) yield* timedCall(lb, 100)
      assert.deepStrictEqual(yield* latencies(lb), [
        ["a", 0],
        ["b", 0],
        ["c", undefined]
      ])
    })
  )

  it.effect("recordLatency: roundRobin's endpoints get their latency EWMA", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ endpoints: endpoints("a", "b"), recordLatency: true })
      yield* timedCall(lb, 100)
      yield* timedCall(lb, 250)
      const [a, b] = (yield* lb.stats).hosts.map((h) => Duration.toMillis(h.latency ?? Duration.zero))
      // a's average decays as it is read, 250 ms later (latencyDecay 10 s)
      assert.closeTo(a ?? 0, 100 * Math.exp(-250 / 10_000), 1e-3)
      assert.strictEqual(b, 250)
    })
  )

  it.effect("peakEwma times its calls whatever recordLatency says: it picks by latency", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        strategy: "peakEwma",
        endpoints: endpoints("a"),
        recordLatency: false
      })
      yield* timedCall(lb, 40)
      assert.deepStrictEqual(yield* latencies(lb), [["a", 40]])
    })
  )

  it.effect(
    "untimed calls still eject on consecutive failures, at the time of the failure, and return after baseEjectionTime",
    () =>
      Effect.gen(function* () {
        const lb = yield* LoadBalancer.make({
          endpoints: endpoints("a", "b"),
          consecutiveFailures: 2,
          maxEjectionPercent: 50,
          baseEjectionTime: "10 seconds"
        })
        const ejected = yield* Effect.forkChild(
          lb.events.pipe(
            Stream.filter((e) => e._tag === "EndpointEjected"),
            Stream.take(1),
            Stream.runCollect
          )
        )
        yield* settle
        // each call takes a second: b fails at 1 s and at 3 s
        const seen: Array<string> = []
        for (let i = 0; i < 4; i++) seen.push(yield* timedCall(lb, 1_000, ["b"]))
        assert.deepStrictEqual(seen, ["a", "b", "a", "b"])
        const [event] = yield* Fiber.join(ejected)
        assert.strictEqual(event?._tag === "EndpointEjected" ? event.reason : undefined, "ConsecutiveFailures")
        // ejected at 4 s (when the second failure ended), for 10 s
        const b = yield* hostState(lb, "b")
        assert.deepStrictEqual(
          [b?.state, b?.failures, b?.latency === undefined ? undefined : Duration.toMillis(b.latency)],
          ["ejected", 2, 0]
        )
        assert.strictEqual(Duration.toMillis(b?.ejectedFor ?? Duration.zero), 10_000)
        assert.deepStrictEqual(yield* picks(lb, 3), ["a", "a", "a"])
        yield* TestClock.adjust("9999 millis")
        assert.strictEqual((yield* hostState(lb, "b"))?.state, "ejected")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* hostState(lb, "b"))?.state, "active")
      })
  )

  it.effect("untimed calls share an endpoint's continuation, per-call predicates included or not", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        endpoints: endpoints("a"),
        consecutiveFailures: 0,
        isIgnored: (error) => error === "ignored"
      })
      const call = (result: Effect.Effect<string, string>, options?: LoadBalancer.CallOptions<string, string>) =>
        Effect.exit(LoadBalancer.call(lb, () => result, options))
      yield* call(Effect.succeed("ok"))
      yield* call(Effect.succeed("ok"), { key: "user-1" })
      yield* call(Effect.fail("boom"))
      yield* call(Effect.fail("ignored"))
      yield* call(Effect.fail("boom"), { isFailure: () => false })
      yield* call(Effect.succeed("503"), { isFailureResult: (value) => value === "503" })
      yield* call(Effect.fail("boom"), { isIgnored: () => true })
      const stats = yield* lb.stats
      assert.deepStrictEqual([stats.successes, stats.failures, stats.ignored, stats.inFlight], [3, 2, 2, 0])
    })
  )
})

describe("LoadBalancer avoid", () => {
  it.effect(
    "every strategy passes over the endpoints a call avoids while another is eligible; picks anyway otherwise",
    () =>
      Effect.gen(function* () {
        for (const strategy of ["roundRobin", "random", "leastRequests", "peakEwma", "ringHash"] as const) {
          const lb = yield* LoadBalancer.make({ strategy, endpoints: endpoints("a", "b", "c") })
          const some = yield* picks(lb, 30, { avoid: new Set(["a", "b"]), key: "user-1" })
          assert.deepStrictEqual(count(some), { c: 30 }, strategy)
          // every endpoint avoided: a preference, not a filter
          const all = yield* picks(lb, 30, { avoid: new Set(["a", "b", "c"]), key: "user-1" })
          assert.strictEqual(all.length, 30, strategy)
        }
      })
  )

  it.effect("roundRobin takes the next endpoint in rotation; ringHash the key's next endpoint on the ring", () =>
    Effect.gen(function* () {
      const rr = yield* LoadBalancer.make({ endpoints: endpoints("a", "b", "c") })
      assert.deepStrictEqual(yield* picks(rr, 3, { avoid: new Set(["a"]) }), ["b", "c", "b"])
      assert.deepStrictEqual(yield* picks(rr, 3), ["c", "a", "b"])
      const ring = yield* LoadBalancer.make({ strategy: "ringHash", endpoints: endpoints("a", "b", "c", "d") })
      const [owner] = yield* picks(ring, 1, { key: "user-1" })
      const others = yield* picks(ring, 5, { key: "user-1", avoid: new Set([owner ?? ""]) })
      assert.strictEqual(new Set(others).size, 1)
      assert.notStrictEqual(others[0], owner)
    })
  )

  it.effect("an ejected endpoint is not picked in place of an avoided one", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({ endpoints: endpoints("a", "b", "c"), consecutiveFailures: 1 })
      yield* failingOn(lb, ["a"]) // a is ejected
      assert.strictEqual((yield* hostState(lb, "a"))?.state, "ejected")
      const ids = yield* picks(lb, 6, { avoid: new Set(["b"]) })
      assert.deepStrictEqual(count(ids), { c: 6 })
      const both = yield* picks(lb, 6, { avoid: new Set(["b", "c"]) })
      assert.isFalse(both.includes("a"))
    })
  )
})

describe("LoadBalancer monitoring", () => {
  it.effect(
    "metrics: calls by outcome, rejections and ejections by reason, endpoint and ejected gauges; no endpoint id",
    () =>
      Effect.gen(function* () {
        const lb = yield* LoadBalancer.make({
          name: "catalog",
          endpoints: endpoints("10.0.0.1:80", "10.0.0.2:80"),
          consecutiveFailures: 1,
          maxEjectionPercent: 50,
          interval: "1 hour"
        })
        yield* failingOn(lb, ["10.0.0.1:80"])
        yield* picks(lb, 3)
        yield* lb.update([])
        yield* Effect.exit(picks(lb, 1))
        const snapshots = yield* Metric.snapshot
        const name = { "resilience.name": "catalog" }
        const read = (id: string, extra: Record<string, string> = {}) =>
          metricValue(snapshots, `resilience.load_balancer.${id}`, { ...name, ...extra })
        assert.deepStrictEqual(
          {
            success: read("calls", { "resilience.outcome": "success" }),
            failure: read("calls", { "resilience.outcome": "failure" }),
            rejected: read("calls", { "resilience.outcome": "rejected" }),
            noEndpoints: read("rejected", { "resilience.reason": "no_endpoints" }),
            consecutive: read("ejections", { "resilience.reason": "consecutive_failures" }),
            endpoints: read("endpoints"),
            ejected: read("ejected"),
            inFlight: read("in_flight")
          },
          { success: 3, failure: 1, rejected: 1, noEndpoints: 1, consecutive: 1, endpoints: 0, ejected: 0, inFlight: 0 }
        )
        for (const s of snapshots) {
          if (!s.id.startsWith("resilience.load_balancer.")) continue
          assert.notInclude(JSON.stringify(s.attributes ?? {}), "10.0.0.")
        }
      })
  )

  it.effect("span events: a rejection and an ejection by a call are recorded on its span", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make({
        name: "spans",
        endpoints: endpoints("a"),
        consecutiveFailures: 1,
        maxEjectionPercent: 100,
        minAvailable: 0,
        panicThreshold: 0
      })
      const events = yield* Effect.gen(function* () {
        yield* failingOn(lb, ["a"])
        yield* Effect.exit(picks(lb, 1))
        const span = yield* Effect.currentSpan
        return "events" in span && Array.isArray(span.events)
          ? span.events.map((e: ReadonlyArray<unknown>) => [e[0], e[2]])
          : []
      }).pipe(Effect.withSpan("request"))
      assert.deepStrictEqual(events, [
        ["EndpointEjected", { "resilience.name": "spans", "resilience.reason": "consecutive_failures" }],
        ["Rejected", { "resilience.name": "spans", "resilience.reason": "all_ejected" }]
      ])
    })
  )

  it.effect("the events stream and metrics end with the scope", () =>
    Effect.gen(function* () {
      const collected = yield* Effect.scoped(
        Effect.gen(function* () {
          const lb = yield* LoadBalancer.make({ name: "scoped", endpoints: endpoints("a") })
          const fiber = yield* Effect.forkChild(Stream.runCollect(lb.events))
          yield* settle
          yield* lb.update(endpoints("a", "b"))
          return fiber
        })
      )
      const events = yield* Fiber.join(collected)
      assert.deepStrictEqual(
        events.map((e) => e._tag),
        ["EndpointsChanged"]
      )
      const snapshots = yield* Metric.snapshot
      assert.isUndefined(metricValue(snapshots, "resilience.load_balancer.endpoints", { "resilience.name": "scoped" }))
    })
  )
})

describe("LoadBalancer options", () => {
  it.effect("defaults: Envoy's outlier detection", () =>
    Effect.gen(function* () {
      const lb = yield* LoadBalancer.make()
      const o = lb.options
      assert.deepStrictEqual(
        {
          ...o,
          interval: Duration.toMillis(o.interval),
          baseEjectionTime: Duration.toMillis(o.baseEjectionTime),
          maxEjectionTime: Duration.toMillis(o.maxEjectionTime),
          latencyDecay: Duration.toMillis(o.latencyDecay)
        },
        {
          name: "default",
          strategy: "roundRobin",
          consecutiveFailures: 5,
          enforcingConsecutiveFailures: 100,
          interval: 10_000,
          baseEjectionTime: 30_000,
          maxEjectionTime: 300_000,
          maxEjectionPercent: 10,
          minAvailable: 1,
          enforcingSuccessRate: 100,
          successRateMinimumHosts: 5,
          successRateRequestVolume: 100,
          successRateStdevFactor: 1.9,
          panicThreshold: 50,
          recordLatency: false,
          latencyDecay: 10_000,
          virtualNodes: 160,
          boundedLoad: 0
        }
      )
    })
  )

  it.effect("invalid options fail with one InvalidOptions listing every bad field and value", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        LoadBalancer.validateOptions({
          maxEjectionPercent: 150,
          interval: 0,
          consecutiveFailures: -1,
          strategy: "fastest" as LoadBalancer.Strategy,
          baseEjectionTime: "1 minute",
          maxEjectionTime: "30 seconds",
          boundedLoad: 0.5
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "LoadBalancer")
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value]),
        [
          ["strategy", '"fastest"'],
          ["consecutiveFailures", "-1"],
          ["maxEjectionPercent", "150"],
          ["boundedLoad", "0.5"],
          ["interval", "0"],
          ["maxEjectionTime", "30s"]
        ]
      )
    })
  )

  it.effect("layerConfig: options from the environment, endpoints from code; bad values name each field", () =>
    Effect.gen(function* () {
      const read = (env: Record<string, string>) =>
        Effect.exit(
          Effect.map(LoadBalancer.LoadBalancer, (lb) => [
            lb.name,
            lb.options.strategy,
            lb.options.maxEjectionPercent
          ]).pipe(
            Effect.provide(
              LoadBalancer.layerConfig("search", { endpoints: endpoints("a") }).pipe(
                Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
              )
            )
          )
        )
      assert.deepStrictEqual(
        yield* read({ search_strategy: "peakEwma", search_maxEjectionPercent: "30" }),
        Exit.succeed(["search", "peakEwma", 30])
      )
      const fromLayer = yield* LoadBalancer.LoadBalancer.pipe(
        Effect.flatMap(LoadBalancer.call((e: LoadBalancer.Endpoint) => Effect.succeed(e.id))),
        Effect.provide(LoadBalancer.layer({ name: "layered", endpoints: endpoints("x") }))
      )
      assert.strictEqual(fromLayer, "x")
      const bad = yield* read({ search_maxEjectionPercent: "150", search_interval: "soon" })
      assert.isTrue(Exit.isFailure(bad))
      if (Exit.isFailure(bad)) {
        const error = Cause.squash(bad.cause)
        assert.instanceOf(error, Options.InvalidOptions)
        if (error instanceof Options.InvalidOptions) {
          assert.deepStrictEqual(error.issues.map((i) => i.path).sort(), ["interval", "maxEjectionPercent"])
        }
      }
    })
  )
})
