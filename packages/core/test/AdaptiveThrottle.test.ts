import { assert, describe, it } from "@effect/vitest"
import { AdaptiveThrottle, Options, Retry } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { heapAfterGc } from "./heap.ts"
import { metricValue } from "./metrics.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

class Overloaded {
  readonly _tag = "Overloaded"
}

/** A backend that accepts at most `perSecond` calls in each second of the clock and refuses the rest. */
const capacityBackend = (perSecond: number) => {
  const served = new Map<number, number>()
  const backend = {
    received: 0,
    accepted: 0,
    call: Clock.clockWith((clock) => {
      backend.received++
      const second = Math.floor(clock.currentTimeMillisUnsafe() / 1000)
      const n = served.get(second) ?? 0
      if (n >= perSecond) return Effect.fail(new Overloaded())
      served.set(second, n + 1)
      backend.accepted++
      return Effect.succeed(n)
    })
  }
  return backend
}

/** A random source that counts its draws and answers `value`. */
const countingRandom = (value: number) => {
  const random = {
    draws: 0,
    nextDoubleUnsafe: () => {
      random.draws++
      return value
    },
    nextIntUnsafe: () => {
      random.draws++
      return 0
    }
  }
  return random
}

/** Runs `calls` calls of `effect` through `throttle`; returns how many were throttled. */
const drive = <A, E>(
  throttle: AdaptiveThrottle.AdaptiveThrottle,
  effect: Effect.Effect<A, E>,
  calls: number,
  key?: string
): Effect.Effect<number> =>
  Effect.gen(function* () {
    let throttled = 0
    for (let i = 0; i < calls; i++) {
      const exit = yield* Effect.exit(AdaptiveThrottle.throttle(effect, throttle, { key }))
      if (
        exit._tag === "Failure" &&
        exit.cause.reasons.some((r) => r._tag === "Fail" && AdaptiveThrottle.isAdaptiveThrottleError(r.error))
      ) {
        throttled++
      }
    }
    return throttled
  })

const refused = Effect.fail(new Overloaded())

/** Runs `effect` with coins that never fall under a probability: every call is admitted. */
const admitAll = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, Random.Random, countingRandom(0.999_999))

// ---------------------------------------------------------------------------
// decisions
// ---------------------------------------------------------------------------

describe("AdaptiveThrottle", () => {
  it.effect("a backend accepting every call: nothing is throttled and no coin is drawn", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ name: "quotes" })
      const random = countingRandom(0)
      const throttled = yield* drive(throttle, Effect.succeed(1), 500).pipe(
        Effect.provideService(Random.Random, random)
      )
      assert.strictEqual(throttled, 0)
      assert.strictEqual(random.draws, 0)
      assert.deepStrictEqual(yield* throttle.state(), { key: "quotes", requests: 500, accepts: 500, probability: 0 })
    })
  )

  it.effect("a refusing backend: calls are rejected locally with a typed Throttled, counted as requests", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ name: "quotes", maxRejectProbability: 1 })
      // 4 refusals: the next call is decided at (4 - 0) / 5
      yield* admitAll(drive(throttle, refused, 4))
      assert.deepStrictEqual(yield* throttle.state(), { key: "quotes", requests: 4, accepts: 0, probability: 0.8 })
      // a coin under 0.8 rejects: the call does not run
      let ran = false
      const error = yield* Effect.flip(
        AdaptiveThrottle.throttle(
          Effect.sync(() => {
            ran = true
          }),
          throttle
        )
      ).pipe(Effect.provideService(Random.Random, countingRandom(0.79)))
      assert.isFalse(ran)
      assert.isTrue(AdaptiveThrottle.isAdaptiveThrottleError(error))
      assert.isTrue(AdaptiveThrottle.isRejection(error))
      assert.strictEqual(error._tag, "AdaptiveThrottleError")
      assert.strictEqual(error.reason._tag, "Throttled")
      assert.deepStrictEqual(
        [
          error.reason.throttle,
          error.reason.key,
          error.reason.probability,
          error.reason.requests,
          error.reason.accepts
        ],
        ["quotes", "quotes", 0.8, 4, 0]
      )
      assert.strictEqual(error.message, "Throttled locally: the backend accepts too few requests")
      assert.instanceOf(error, AdaptiveThrottle.AdaptiveThrottleError)
      assert.instanceOf(error.reason, AdaptiveThrottle.Throttled)
      assert.strictEqual(error.reason.message, error.message)
      // built without a captured stack trace
      assert.notInclude(String(error.stack), "    at ")
      // the local rejection counted as a request: (5 - 0) / 6
      assert.deepStrictEqual(yield* throttle.state(), { key: "quotes", requests: 5, accepts: 0, probability: 5 / 6 })
      // a coin at or above the probability admits the call
      const admitted = yield* AdaptiveThrottle.throttle(Effect.succeed("sent"), throttle).pipe(
        Effect.provideService(Random.Random, countingRandom(5 / 6))
      )
      assert.strictEqual(admitted, "sent")
      assert.deepStrictEqual(yield* throttle.stats, {
        admitted: 5,
        throttled: 1,
        accepted: 1,
        notAccepted: 4,
        ignored: 0,
        keys: 0
      })
    })
  )

  it.effect(
    "a backend of fixed capacity: the local rejection rate converges near 1 - K * accepts / requests, and the backend is sent about K times what it accepts",
    () =>
      Effect.gen(function* () {
        // 100 calls a second offered, 20 a second accepted, K = 2: reject about 1 - 2 * 20 / 100 = 60% locally
        const throttle = yield* AdaptiveThrottle.make({ window: "10 seconds", buckets: 10, k: 2 })
        const backend = capacityBackend(20)
        const tick = (calls: number) =>
          Effect.gen(function* () {
            const throttled = yield* drive(throttle, backend.call, calls)
            yield* TestClock.adjust("100 millis")
            return throttled
          })
        // five windows to settle
        for (let i = 0; i < 500; i++) yield* tick(10)
        // then one window measured
        const received = backend.received
        const accepted = backend.accepted
        let throttled = 0
        for (let i = 0; i < 100; i++) throttled += yield* tick(10)
        const rate = throttled / 1000
        const state = yield* throttle.state()
        const formula = 1 - (2 * state.accepts) / state.requests
        assert.approximately(rate, 0.6, 0.06, `local rejection rate ${rate}`)
        assert.approximately(rate, formula, 0.06, `rate ${rate} against the formula ${formula}`)
        // the backend saw about K x 20 a second and accepted its 20
        assert.approximately((backend.received - received) / 10, 40, 5)
        assert.approximately((backend.accepted - accepted) / 10, 20, 1)
        // within bounds
        assert.isAtMost(state.probability, throttle.options.maxRejectProbability)
      }).pipe(Random.withSeed("capacity"))
  )

  it.effect("recovery: a window after the last refusal the probability is 0 again", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ window: "10 seconds", buckets: 10 })
      yield* drive(throttle, refused, 200)
      assert.strictEqual((yield* throttle.state()).probability, 0.9)
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual((yield* throttle.state()).probability, 0.9)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* throttle.state(), { key: "default", requests: 0, accepts: 0, probability: 0 })
      const random = countingRandom(0)
      assert.strictEqual(
        yield* drive(throttle, Effect.succeed(1), 10).pipe(Effect.provideService(Random.Random, random)),
        0
      )
      assert.strictEqual(random.draws, 0)
    })
  )

  it.effect(
    "recovery under steady traffic: once the backend accepts again, throttling fades within a few windows",
    () =>
      Effect.gen(function* () {
        const throttle = yield* AdaptiveThrottle.make({ window: "10 seconds", buckets: 10 })
        let healthy = false
        const backend = Effect.suspend(() => (healthy ? Effect.succeed(1) : Effect.fail(new Overloaded())))
        const tick = Effect.andThen(drive(throttle, backend, 10), TestClock.adjust("100 millis"))
        for (let i = 0; i < 200; i++) yield* tick
        assert.strictEqual((yield* throttle.state()).probability, 0.9)
        healthy = true
        for (let i = 0; i < 300; i++) yield* tick
        const state = yield* throttle.state()
        assert.strictEqual(state.probability, 0)
        assert.isAtLeast(state.accepts * 2, state.requests)
      }).pipe(Random.withSeed("recovery"))
  )

  it.effect("per-key isolation: one backend's refusals do not throttle another's calls", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ name: "hosts" })
      yield* drive(throttle, refused, 100, "a.example")
      yield* drive(throttle, Effect.succeed(1), 100, "b.example")
      assert.strictEqual((yield* throttle.state("a.example")).probability, 0.9)
      assert.deepStrictEqual(yield* throttle.state("b.example"), {
        key: "b.example",
        requests: 100,
        accepts: 100,
        probability: 0
      })
      // the throttle's own window (calls without a key) and an unknown key are untouched
      assert.deepStrictEqual(yield* throttle.state(), { key: "hosts", requests: 0, accepts: 0, probability: 0 })
      assert.deepStrictEqual(yield* throttle.state("c.example"), {
        key: "c.example",
        requests: 0,
        accepts: 0,
        probability: 0
      })
      const random = countingRandom(0)
      assert.strictEqual(
        yield* drive(throttle, Effect.succeed(1), 50, "b.example").pipe(Effect.provideService(Random.Random, random)),
        0
      )
      assert.strictEqual(random.draws, 0)
      // the key named as the throttle is its own window
      yield* drive(throttle, Effect.succeed(1), 3, "hosts")
      assert.strictEqual((yield* throttle.state()).requests, 3)
      assert.strictEqual((yield* throttle.stats).keys, 2)
    })
  )

  it.effect("an interrupted call counts for nothing", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make()
      const fiber = yield* Effect.forkChild(AdaptiveThrottle.throttle(Effect.never, throttle, { key: "slow" }))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* throttle.state("slow"), { key: "slow", requests: 0, accepts: 0, probability: 0 })
      const stats = yield* throttle.stats
      assert.deepStrictEqual([stats.admitted, stats.accepted, stats.notAccepted, stats.ignored], [1, 0, 0, 1])
    })
  )

  it.effect("classification: defects are not accepted; isAccepted, isAcceptedResult and isIgnored decide", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({
        maxRejectProbability: 0,
        isIgnored: (error) => error === "local"
      })
      const state = (key: string) => Effect.map(throttle.state(key), (s) => [s.requests, s.accepts] as const)
      yield* Effect.exit(AdaptiveThrottle.throttle(Effect.die("boom"), throttle, { key: "defect" }))
      assert.deepStrictEqual(yield* state("defect"), [1, 0])
      // a 404 is an answer, a 503 a refusal
      const http = (status: number) =>
        Effect.fail({ status }).pipe(
          AdaptiveThrottle.throttle(throttle, { key: "http", isAccepted: (e: { status: number }) => e.status === 404 }),
          Effect.flip
        )
      yield* http(404)
      yield* http(503)
      assert.deepStrictEqual(yield* state("http"), [2, 1])
      // a success value that is a refusal
      const response = (status: number) =>
        Effect.succeed({ status }).pipe(
          AdaptiveThrottle.throttle(throttle, {
            key: "responses",
            isAcceptedResult: (r: { status: number }) => r.status !== 503
          })
        )
      yield* response(200)
      yield* response(503)
      assert.deepStrictEqual(yield* state("responses"), [2, 1])
      // ignored, throttle-wide and per call
      yield* Effect.flip(AdaptiveThrottle.throttle(Effect.fail("local"), throttle, { key: "ignored" }))
      yield* Effect.flip(
        AdaptiveThrottle.throttle(Effect.fail("busy"), throttle, { key: "ignored", isIgnored: (e) => e === "busy" })
      )
      assert.deepStrictEqual(yield* state("ignored"), [0, 0])
      const stats = yield* throttle.stats
      assert.deepStrictEqual([stats.accepted, stats.notAccepted, stats.ignored], [2, 3, 2])
    })
  )

  it.effect("retries through the throttle count as requests, so a retry storm throttles itself", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ maxRejectProbability: 1 })
      let sent = 0
      const backend = Effect.suspend(() => {
        sent++
        return Effect.fail(new Overloaded())
      })
      // 50 callers, each retrying up to 5 attempts: 250 attempts
      for (let i = 0; i < 50; i++) {
        yield* Effect.exit(
          backend.pipe(AdaptiveThrottle.throttle(throttle), Retry.retry(Retry.constant({ delay: 0, maxAttempts: 5 })))
        )
      }
      const state = yield* throttle.state()
      assert.strictEqual(state.requests, 250)
      // most attempts never left the process
      assert.isBelow(sent, 40)
      assert.strictEqual((yield* throttle.stats).throttled, 250 - sent)
    }).pipe(Random.withSeed("retry-storm"))
  )

  it.effect("the combinator is dual and keeps the effect's types", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make()
      const piped: Effect.Effect<number, Overloaded | AdaptiveThrottle.AdaptiveThrottleError> = Effect.succeed(1).pipe(
        Effect.flatMap((n) => (n > 1 ? Effect.fail(new Overloaded()) : Effect.succeed(n))),
        AdaptiveThrottle.throttle(throttle)
      )
      const direct: Effect.Effect<string, AdaptiveThrottle.AdaptiveThrottleError> = AdaptiveThrottle.throttle(
        Effect.succeed("x"),
        throttle
      )
      assert.deepStrictEqual([yield* piped, yield* direct], [1, "x"])
    })
  )
})

// ---------------------------------------------------------------------------
// events and metrics
// ---------------------------------------------------------------------------

describe("AdaptiveThrottle clock reads", () => {
  /** The fiber's clock (the TestClock), counting the reads of the time in milliseconds. */
  const countingClock = Effect.map(
    Clock.clockWith((clock) => Effect.succeed(clock)),
    (clock) => {
      const counting = {
        reads: 0,
        currentTimeMillisUnsafe: () => {
          counting.reads++
          return clock.currentTimeMillisUnsafe()
        },
        currentTimeMillis: Effect.sync(() => clock.currentTimeMillisUnsafe()),
        currentTimeNanosUnsafe: () => clock.currentTimeNanosUnsafe(),
        currentTimeNanos: clock.currentTimeNanos,
        monotonicTimeNanosUnsafe: () => clock.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: clock.monotonicTimeNanos,
        sleep: (duration: Duration.Duration) => clock.sleep(duration)
      }
      return counting
    }
  )

  it.effect(
    "a window holding only accepts admits without reading the clock (a call reads it once, when it ends); one refusal and admission reads it again",
    () =>
      Effect.gen(function* () {
        const clock = yield* countingClock
        yield* Effect.gen(function* () {
          const throttle = yield* AdaptiveThrottle.make({ name: "quotes" })
          yield* drive(throttle, Effect.succeed(1), 10)
          assert.strictEqual(clock.reads, 10)
          yield* drive(throttle, refused, 1)
          assert.strictEqual(clock.reads, 11)
          // the window now holds a refusal: the admission reads the time to decide
          yield* drive(throttle, Effect.succeed(1), 10)
          assert.strictEqual(clock.reads, 31)
          // the decisions are the formula's, and every count is in the window
          assert.deepStrictEqual(yield* throttle.state(), { key: "quotes", requests: 21, accepts: 20, probability: 0 })
        }).pipe(Effect.provideService(Clock.Clock, clock))
      })
  )

  it.effect("a call counts in the bucket of its end, even when it began in an earlier one", () =>
    Effect.gen(function* () {
      // 12 buckets of 10 s
      const throttle = yield* AdaptiveThrottle.make({ name: "slow", maxRejectProbability: 1 })
      const fiber = yield* Effect.forkChild(
        Effect.exit(AdaptiveThrottle.throttle(Effect.andThen(Effect.sleep("15 seconds"), refused), throttle))
      )
      yield* TestClock.adjust("15 seconds")
      yield* Fiber.join(fiber)
      // ended at 15 s, in the bucket [10 s, 20 s): in the window until 130 s
      yield* TestClock.adjust("114999 millis")
      assert.strictEqual((yield* throttle.state()).requests, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* throttle.state()).requests, 0)
    })
  )

  it.live("on the live clock (read once per bucket): calls count and refusals throttle", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ name: "live", maxRejectProbability: 1 })
      yield* drive(throttle, Effect.succeed(1), 3)
      yield* admitAll(drive(throttle, refused, 9))
      assert.deepStrictEqual(yield* throttle.state(), { key: "live", requests: 12, accepts: 3, probability: 6 / 13 })
      const throttled = yield* drive(throttle, Effect.succeed(1), 1).pipe(
        Effect.provideService(Random.Random, countingRandom(0))
      )
      assert.strictEqual(throttled, 1)
      assert.strictEqual((yield* throttle.stats).throttled, 1)
    }).pipe(Effect.scoped)
  )
})

describe("AdaptiveThrottle telemetry", () => {
  it.effect("Throttled events: at most one per key and bucket, with the rejections suppressed since the last", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ name: "quotes", window: "10 seconds", buckets: 10 })
      const queue = yield* throttle.subscribe
      yield* admitAll(drive(throttle, refused, 20, "api"))
      const first = yield* drive(throttle, refused, 100, "api").pipe(
        Effect.provideService(Random.Random, countingRandom(0))
      )
      assert.strictEqual(first, 100)
      const events = yield* Queue.takeAll(queue)
      assert.strictEqual(events.length, 1)
      const event = events[0]
      assert.deepStrictEqual(
        event && [event._tag, event.throttle, event.key, event.requests, event.accepts, event.suppressed],
        ["Throttled", "quotes", "api", 20, 0, 0]
      )
      // (20 - 0) / 21, capped at maxRejectProbability
      assert.strictEqual(event?.probability, 0.9)
      // the next bucket: one more event, reporting the 99 left out
      yield* TestClock.adjust("1 second")
      yield* drive(throttle, refused, 1, "api").pipe(Effect.provideService(Random.Random, countingRandom(0)))
      const next = yield* Queue.takeAll(queue)
      assert.deepStrictEqual(
        next.map((e) => e.suppressed),
        [99]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("metrics: decisions and results by outcome, the highest probability, the keys; never a raw key", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ name: "quotes", maxRejectProbability: 1 })
      yield* drive(throttle, Effect.succeed(1), 3, "secret-host-1")
      yield* admitAll(drive(throttle, refused, 3, "secret-host-2"))
      yield* Effect.flip(
        AdaptiveThrottle.throttle(Effect.succeed(1), throttle, { key: "secret-host-2" }).pipe(
          Effect.provideService(Random.Random, countingRandom(0))
        )
      )
      const snapshots = yield* Metric.snapshot
      const base = { "resilience.name": "quotes" }
      const value = (id: string, attributes: Record<string, string> = {}) =>
        metricValue(snapshots, id, { ...base, ...attributes })
      assert.deepStrictEqual(
        [
          value("resilience.adaptive_throttle.decisions", { "resilience.outcome": "admitted" }),
          value("resilience.adaptive_throttle.decisions", { "resilience.outcome": "throttled" }),
          value("resilience.adaptive_throttle.results", { "resilience.outcome": "accepted" }),
          value("resilience.adaptive_throttle.results", { "resilience.outcome": "not_accepted" }),
          value("resilience.adaptive_throttle.results", { "resilience.outcome": "ignored" }),
          value("resilience.adaptive_throttle.keys")
        ],
        [6, 1, 3, 3, 0, 2]
      )
      // secret-host-2: 4 requests, 0 accepts
      assert.closeTo(value("resilience.adaptive_throttle.probability") ?? -1, 4 / 5, 1e-12)
      for (const s of snapshots.filter((m) => m.id.startsWith("resilience.adaptive_throttle"))) {
        for (const v of Object.values(s.attributes ?? {})) assert.notInclude(String(v), "secret-host")
      }
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("the scope's end unregisters the metrics and ends the event streams", () =>
    Effect.gen(function* () {
      const registry = new Map()
      const ids = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>) =>
        snapshots.filter((s) => s.id.startsWith("resilience.adaptive_throttle")).length
      const events = yield* Effect.gen(function* () {
        const throttle = yield* AdaptiveThrottle.make({ name: "scoped" })
        const fiber = yield* Effect.forkChild(Stream.runCollect(throttle.events))
        yield* Effect.yieldNow
        assert.strictEqual(ids(yield* Metric.snapshot), 7)
        return fiber
      }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, registry))
      assert.deepStrictEqual(yield* Fiber.join(events), [])
      assert.strictEqual(ids(yield* Metric.snapshot.pipe(Effect.provideService(Metric.MetricRegistry, registry))), 0)
    })
  )
})

// ---------------------------------------------------------------------------
// keys and memory
// ---------------------------------------------------------------------------

describe("AdaptiveThrottle keys", () => {
  it.effect("maxKeys bounds the keys held; idle keys are dropped once their window is empty", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ window: "10 seconds", maxKeys: 64 })
      for (let i = 0; i < 1000; i++) yield* drive(throttle, Effect.succeed(1), 1, `k${i}`)
      assert.isAtMost((yield* throttle.stats).keys, 64)
      // a window later every key is idle: the next new key sweeps them
      yield* TestClock.adjust("10 seconds")
      yield* drive(throttle, Effect.succeed(1), 1, "fresh")
      assert.strictEqual((yield* throttle.stats).keys, 1)
    })
  )

  it.effect("a key with a call running is not dropped as idle", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ window: "10 seconds" })
      const fiber = yield* Effect.forkChild(
        AdaptiveThrottle.throttle(Effect.andThen(Effect.sleep("15 seconds"), Effect.fail("refused")), throttle, {
          key: "busy"
        })
      )
      yield* Effect.yieldNow
      yield* drive(throttle, Effect.succeed(1), 1, "quiet")
      yield* TestClock.adjust("10 seconds")
      yield* drive(throttle, Effect.succeed(1), 1, "fresh")
      // "quiet" was dropped, "busy" was kept: its refusal still counts when it ends
      assert.strictEqual((yield* throttle.stats).keys, 2)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.await(fiber)
      assert.deepStrictEqual(yield* throttle.state("busy"), { key: "busy", requests: 1, accepts: 0, probability: 0.5 })
    })
  )

  it.effect(
    "heap stays flat while 1,000,000 distinct keys pass through",
    () =>
      Effect.gen(function* () {
        const throttle = yield* AdaptiveThrottle.make({ maxKeys: 10_000 })
        const pass = (from: number, to: number) =>
          Effect.gen(function* () {
            for (let i = from; i < to; i++) yield* AdaptiveThrottle.throttle(Effect.void, throttle, { key: `k${i}` })
          })
        yield* pass(0, 200_000)
        const warm = heapAfterGc()
        yield* pass(200_000, 1_000_000)
        const after = heapAfterGc()
        const stats = yield* throttle.stats
        assert.isAtMost(stats.keys, 10_000)
        assert.strictEqual(stats.admitted, 1_000_000)
        // 800,000 more keys grew the heap by less than 8 MB (holding every key would take hundreds of MB)
        assert.isBelow(after - warm, 8 * 1024 * 1024, `heap grew by ${after - warm} bytes`)
      }),
    60_000
  )
})

// ---------------------------------------------------------------------------
// options and layers
// ---------------------------------------------------------------------------

describe("AdaptiveThrottle options", () => {
  it.effect("defaults", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make()
      assert.deepStrictEqual(
        { ...throttle.options, window: Duration.toMillis(throttle.options.window) },
        {
          name: "default",
          window: 120_000,
          buckets: 12,
          k: 2,
          minRequests: 0,
          maxRejectProbability: 0.9,
          maxKeys: 10_000
        }
      )
      assert.strictEqual(throttle.name, "default")
    })
  )

  it.effect("the smallest valid values", () =>
    Effect.gen(function* () {
      const options = yield* AdaptiveThrottle.validateOptions({
        window: 1,
        buckets: 1,
        k: 1,
        minRequests: 0,
        maxRejectProbability: 0,
        maxKeys: 1
      })
      assert.deepStrictEqual(
        [
          Duration.toMillis(options.window),
          options.buckets,
          options.k,
          options.minRequests,
          options.maxRejectProbability,
          options.maxKeys
        ],
        [1, 1, 1, 0, 0, 1]
      )
      // maxRejectProbability 0: counts and metrics only, never a rejection
      const throttle = yield* AdaptiveThrottle.make({ maxRejectProbability: 0 })
      assert.strictEqual(yield* drive(throttle, refused, 100), 0)
    })
  )

  it.effect("invalid options fail with one InvalidOptions listing every bad field and value", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        AdaptiveThrottle.validateOptions({
          window: 0,
          buckets: 0,
          k: 0.5,
          minRequests: -1,
          maxRejectProbability: 1.5,
          maxKeys: 2.5
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "AdaptiveThrottle")
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value]),
        [
          ["buckets", "0"],
          ["k", "0.5"],
          ["minRequests", "-1"],
          ["maxRejectProbability", "1.5"],
          ["maxKeys", "2.5"],
          ["window", "0"]
        ]
      )
      // more buckets than milliseconds in the window; a window that is not a duration
      const tooFine = yield* Effect.flip(AdaptiveThrottle.validateOptions({ window: "10 millis", buckets: 20 }))
      assert.deepStrictEqual(
        tooFine.issues.map((i) => [i.path, i.message]),
        [["buckets", "Expected at most 10: at least 1 millisecond per bucket"]]
      )
      const notDuration = yield* Effect.flip(AdaptiveThrottle.make({ window: -5, k: Number.NaN }))
      assert.deepStrictEqual(
        notDuration.issues.map((i) => i.path),
        ["window", "k"]
      )
    })
  )
})

describe("AdaptiveThrottle.layerConfig", () => {
  const read = (env: Record<string, string>) =>
    Effect.exit(
      Effect.map(AdaptiveThrottle.AdaptiveThrottle, (throttle) => ({
        name: throttle.name,
        k: throttle.options.k,
        window: Duration.toMillis(throttle.options.window),
        maxRejectProbability: throttle.options.maxRejectProbability
      })).pipe(
        Effect.provide(
          AdaptiveThrottle.layerConfig("search").pipe(
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
          )
        )
      )
    )

  it.effect("reads the options under the path, the name defaulting to it", () =>
    Effect.gen(function* () {
      const exit = yield* read({ search_k: "1.5", search_window: "30 seconds", search_maxRejectProbability: "1" })
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : exit, {
        name: "search",
        k: 1.5,
        window: 30_000,
        maxRejectProbability: 1
      })
    })
  )

  it.effect("bad values fail with one InvalidOptions naming each", () =>
    Effect.gen(function* () {
      const exit = yield* read({ search_k: "0.5", search_buckets: "many" })
      assert.strictEqual(exit._tag, "Failure")
      if (exit._tag === "Failure") {
        const reason = exit.cause.reasons[0]
        const error = reason?._tag === "Fail" ? reason.error : undefined
        assert.instanceOf(error, Options.InvalidOptions)
        if (error instanceof Options.InvalidOptions) {
          assert.deepStrictEqual(
            error.issues.map((i) => [i.path, i.value]),
            [
              ["buckets", '"many"'],
              ["k", '"0.5"']
            ]
          )
        }
      }
    })
  )

  it.effect("layer provides the service", () =>
    Effect.gen(function* () {
      const name = yield* Effect.map(AdaptiveThrottle.AdaptiveThrottle, (t) => t.name).pipe(
        Effect.provide(AdaptiveThrottle.layer({ name: "layered" }))
      )
      assert.strictEqual(name, "layered")
    })
  )
})

describe("AdaptiveThrottle states", () => {
  it.effect("every window held: the throttle's own first, then each key's oldest first, with its counts now", () =>
    Effect.gen(function* () {
      const throttle = yield* AdaptiveThrottle.make({ name: "quotes", window: "10 seconds", buckets: 10 })
      assert.deepStrictEqual(yield* throttle.states, [{ key: "quotes", requests: 0, accepts: 0, probability: 0 }])
      yield* admitAll(drive(throttle, refused, 2, "eu"))
      yield* admitAll(drive(throttle, Effect.succeed(1), 1, "us"))
      yield* admitAll(drive(throttle, refused, 1))
      const states = yield* throttle.states
      assert.deepStrictEqual(states, [
        { key: "quotes", requests: 1, accepts: 0, probability: 1 / 2 },
        { key: "eu", requests: 2, accepts: 0, probability: 2 / 3 },
        { key: "us", requests: 1, accepts: 1, probability: 0 }
      ])
      // the same windows state(key) reads, one by one
      for (const s of states) assert.deepStrictEqual(yield* throttle.state(s.key), s)
      // the counts leave with the window; the keys stay until they are swept
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(
        (yield* throttle.states).map((s) => [s.key, s.requests, s.probability]),
        [
          ["quotes", 0, 0],
          ["eu", 0, 0],
          ["us", 0, 0]
        ]
      )
    })
  )
})

// ---------------------------------------------------------------------------
// a store: the fleet's counts (the hook `RedisAdaptiveThrottle` syncs through)
// ---------------------------------------------------------------------------

describe("AdaptiveThrottle with an AdaptiveThrottleStore", () => {
  /** A store that only hands out what joined it: the test plays the sync. */
  const fakeStore = () => {
    const members: Array<AdaptiveThrottle.FleetMember> = []
    const finalized: Array<string> = []
    const layer = Layer.succeed(
      AdaptiveThrottle.AdaptiveThrottleStore,
      AdaptiveThrottle.AdaptiveThrottleStore.of({
        join: (member) =>
          Effect.andThen(
            Effect.sync(() => members.push(member)),
            Effect.addFinalizer(() => Effect.sync(() => finalized.push(member.name)))
          )
      })
    )
    return { members, finalized, layer }
  }

  it.effect(
    "decides on the fleet's totals plus its counts since; on its own window until the first sync and after a failed one",
    () =>
      Effect.gen(function* () {
        const store = fakeStore()
        const throttle = yield* AdaptiveThrottle.make({ name: "t", maxRejectProbability: 1 }).pipe(
          Effect.provide(store.layer)
        )
        const member = store.members[0]
        assert.isDefined(member)
        if (member === undefined) return
        const refused = Effect.fail("503").pipe(AdaptiveThrottle.throttle(throttle, { key: "api" }), Effect.ignore)
        yield* refused
        yield* refused
        // no sync yet: its own window
        assert.deepStrictEqual(yield* throttle.state("api"), {
          key: "api",
          requests: 2,
          accepts: 0,
          probability: 2 / 3
        })
        const now = yield* Clock.currentTimeMillis
        const reports = member.take(10, now)
        assert.deepStrictEqual(reports, [{ key: "api", requests: 2, accepts: 0 }])
        // the fleet answers its totals, the report included: 100 requests, 90 accepted
        member.apply([{ key: "api", requests: 100, accepts: 90 }], now)
        assert.deepStrictEqual(yield* throttle.state("api"), { key: "api", requests: 100, accepts: 90, probability: 0 })
        // the fleet says the backend is fine: nothing is rejected, whatever the local window says
        for (let i = 0; i < 20; i++) yield* refused
        assert.strictEqual((yield* throttle.stats).throttled, 0)
        assert.deepStrictEqual(yield* throttle.state("api"), {
          key: "api",
          requests: 120,
          accepts: 90,
          probability: 0
        })
        // the next report holds the 20 since; its sync fails: back to its own window (22 refusals)
        const next = member.take(10, now)
        assert.deepStrictEqual(next, [{ key: "api", requests: 20, accepts: 0 }])
        member.failed(next)
        assert.deepStrictEqual(yield* throttle.state("api"), {
          key: "api",
          requests: 22,
          accepts: 0,
          probability: 22 / 23
        })
        // the failed sync's counts are reported again, with the key's fleet view to refresh
        assert.deepStrictEqual(member.take(10, now), [{ key: "api", requests: 20, accepts: 0 }])
      }).pipe(Effect.scoped, Random.withSeed("store"))
  )

  it.effect(
    "reports at most the asked number of keys, counted keys first, and never more than its own window holds",
    () =>
      Effect.gen(function* () {
        const store = fakeStore()
        const throttle = yield* AdaptiveThrottle.make({ name: "t", window: "10 seconds", buckets: 2 }).pipe(
          Effect.provide(store.layer)
        )
        const member = store.members[0]
        if (member === undefined) return assert.fail("not joined")
        for (const key of ["a", "b", "c"]) yield* Effect.succeed(1).pipe(AdaptiveThrottle.throttle(throttle, { key }))
        const now = yield* Clock.currentTimeMillis
        assert.deepStrictEqual(
          member.take(2, now).map((r) => r.key),
          ["a", "b"]
        )
        member.failed([
          { key: "a", requests: 1, accepts: 1 },
          { key: "b", requests: 1, accepts: 1 }
        ])
        // a failed sync's counts older than the window are dropped: the window holds nothing any more
        yield* TestClock.adjust("11 seconds")
        const later = yield* Clock.currentTimeMillis
        assert.deepStrictEqual(member.take(10, later), [])
      }).pipe(Effect.scoped)
  )

  it.effect("joins the store for the throttle's scope; without a store nothing joins", () =>
    Effect.gen(function* () {
      const store = fakeStore()
      yield* Effect.scoped(AdaptiveThrottle.make({ name: "scoped" }).pipe(Effect.provide(store.layer)))
      assert.deepStrictEqual(store.finalized, ["scoped"])
      yield* Effect.scoped(AdaptiveThrottle.make({ name: "alone" }))
      assert.strictEqual(store.members.length, 1)
    })
  )
})
