import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Options } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { histogramAwareMetricValue as metricValue } from "./metrics.ts"

class Boom extends Data.TaggedError("Boom")<{ readonly retryAfterMillis?: number }> {}
class NotFound extends Data.TaggedError("NotFound") {}
class Invalid extends Data.TaggedError("Invalid") {}

const store = CircuitBreaker.layerStoreMemory()
const make = (options: CircuitBreaker.Input) => CircuitBreaker.make(options).pipe(Effect.provide(store))

const ok = Effect.succeed("ok")
const boom = Effect.fail(new Boom({}))

/** Runs a call and returns how it ended: "ok", the error's tag, or the rejection reason's tag. */
const call = <A, E>(breaker: CircuitBreaker.CircuitBreaker, effect: Effect.Effect<A, E>, key?: string) =>
  Effect.map(Effect.exit(CircuitBreaker.protect(effect, breaker, key === undefined ? undefined : { key })), (exit) => {
    if (Exit.isSuccess(exit)) return "ok"
    const error = exit.cause.reasons.find((r) => r._tag === "Fail")
    if (error === undefined || error._tag !== "Fail") return "defect-or-interrupt"
    return CircuitBreaker.isCircuitBreakerError(error.error)
      ? error.error.reason._tag
      : String(Reflect.get(Object(error.error), "_tag"))
  })

const stateTag = (breaker: CircuitBreaker.CircuitBreaker, key?: string) => Effect.map(breaker.state(key), (s) => s._tag)

/** Runs `effect` through the breaker after `millis` of TestClock time: how it ended, as `call` reports it. */
const timedCall = <A, E>(breaker: CircuitBreaker.CircuitBreaker, effect: Effect.Effect<A, E>, millis: number) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(call(breaker, Effect.andThen(Effect.sleep(Duration.millis(millis)), effect)))
    yield* TestClock.adjust(Duration.millis(millis))
    return yield* Fiber.join(fiber)
  })

describe("CircuitBreaker", () => {
  describe("consecutive failures", () => {
    it.effect(
      "Closed -> Open after N failures, rejects with retryAfter, HalfOpen at openDuration, Closed on success",
      () =>
        Effect.gen(function* () {
          const breaker = yield* make({ consecutiveFailures: 3, openDuration: "10 seconds" })
          assert.strictEqual(yield* call(breaker, boom), "Boom")
          assert.strictEqual(yield* call(breaker, ok), "ok") // a success resets the streak
          assert.strictEqual(yield* call(breaker, boom), "Boom")
          assert.strictEqual(yield* call(breaker, boom), "Boom")
          assert.strictEqual((yield* breaker.metrics()).consecutiveFailures, 2)
          assert.strictEqual(yield* stateTag(breaker), "Closed")
          assert.strictEqual(yield* call(breaker, boom), "Boom")
          const open = yield* breaker.state()
          assert.strictEqual(open._tag, "Open")
          assert.deepStrictEqual(open._tag === "Open" ? Duration.toMillis(open.retryAfter) : -1, 10_000)

          // rejected with the exact time left
          yield* TestClock.adjust("4 seconds")
          const rejected = yield* Effect.flip(CircuitBreaker.protect(ok, breaker))
          assert.strictEqual(rejected.reason._tag, "CircuitOpen")
          assert.strictEqual(
            rejected.reason._tag === "CircuitOpen" ? Duration.toMillis(rejected.reason.retryAfter) : -1,
            6_000
          )
          assert.strictEqual(rejected.message, "Circuit open")
          assert.isTrue(CircuitBreaker.isRejection(rejected))

          yield* TestClock.adjust(Duration.millis(5_999))
          assert.strictEqual(yield* call(breaker, ok), "CircuitOpen")
          yield* TestClock.adjust(Duration.millis(1))
          // the first call at openDuration is the probe; success closes
          assert.strictEqual(yield* call(breaker, ok), "ok")
          assert.strictEqual(yield* stateTag(breaker), "Closed")
          const stats = yield* breaker.stats
          assert.deepStrictEqual([stats.successes, stats.failures, stats.rejected], [2, 4, 2])
        })
    )

    it.effect("HalfOpen -> Open again when the probe fails", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, openDuration: "1 second" })
        yield* call(breaker, boom)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* call(breaker, boom), "Boom")
        const state = yield* breaker.state()
        assert.strictEqual(state._tag, "Open")
        assert.strictEqual(state._tag === "Open" ? state.consecutiveOpenings : 0, 2)
      })
    )
  })

  describe("count-based sliding window (Resilience4j style)", () => {
    it.effect("exact rates and counts after each scripted call", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          failureRateThreshold: 0.5,
          slidingWindowType: "count",
          slidingWindowSize: 4,
          minimumCalls: 4
        })
        // call, then [buffered, failed, failure rate, state] read right after it
        const script: ReadonlyArray<readonly [Effect.Effect<string, Boom>, ReadonlyArray<number | string>]> = [
          [ok, [1, 0, 0, "Closed"]],
          [boom, [2, 1, 0.5, "Closed"]], // below minimumCalls: no decision yet
          [ok, [3, 1, 1 / 3, "Closed"]],
          [ok, [4, 1, 0.25, "Closed"]],
          // the window slides: the oldest success leaves, [F, S, S, F] = 0.5 trips; an opening empties the window
          [boom, [0, 0, 0, "Open"]]
        ]
        for (const [effect, expected] of script) {
          yield* call(breaker, effect)
          const m = yield* breaker.metrics()
          assert.deepStrictEqual([m.bufferedCalls, m.failedCalls, m.failureRate, m.state], expected)
        }
      })
    )

    it.effect("minimumCalls defers the decision; ignored calls do not count", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ failureRateThreshold: 0.5, slidingWindowSize: 10, minimumCalls: 3 })
        yield* call(breaker, boom)
        yield* call(breaker, boom)
        yield* Effect.exit(
          CircuitBreaker.protect(Effect.fail(new NotFound()), breaker, {
            isIgnored: (e: NotFound) => e._tag === "NotFound"
          })
        )
        const before = yield* breaker.metrics()
        assert.deepStrictEqual([before.bufferedCalls, before.failedCalls, before.state], [2, 2, "Closed"])
        yield* call(breaker, Effect.interrupt)
        assert.strictEqual((yield* breaker.metrics()).bufferedCalls, 2)
        yield* call(breaker, ok)
        // 2 failures of 3 counted calls reach 0.5: open
        assert.strictEqual(yield* stateTag(breaker), "Open")
      })
    )
  })

  describe("combined policies", () => {
    it.effect("the circuit opens when any policy trips", () =>
      Effect.gen(function* () {
        const options = { consecutiveFailures: 3, failureRateThreshold: 0.5, slidingWindowSize: 10, minimumCalls: 4 }
        // the rate policy trips first: F S F S = 0.5 at the minimum of 4 calls, never 3 failures in a row
        const byRate = yield* make(options)
        for (const effect of [boom, ok, boom, ok]) yield* call(byRate, effect)
        assert.strictEqual(yield* stateTag(byRate), "Open")
        // the consecutive policy trips first: F F F before the window reaches its minimum
        const byStreak = yield* make({ ...options, minimumCalls: 10 })
        for (const effect of [ok, boom, boom]) yield* call(byStreak, effect)
        assert.strictEqual(yield* stateTag(byStreak), "Closed")
        yield* call(byStreak, boom)
        assert.strictEqual(yield* stateTag(byStreak), "Open")
      })
    )
  })

  describe("time-based sliding window", () => {
    it.effect("counts calls of the last window only", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          failureRateThreshold: 0.6,
          slidingWindowType: "time",
          slidingWindowDuration: "10 seconds",
          slidingWindowBuckets: 10,
          minimumCalls: 3
        })
        yield* call(breaker, boom)
        yield* call(breaker, boom)
        yield* TestClock.adjust("10 seconds")
        // the two failures left the window
        assert.strictEqual((yield* breaker.metrics()).bufferedCalls, 0)
        yield* call(breaker, ok)
        yield* call(breaker, ok)
        yield* call(breaker, boom)
        const m = yield* breaker.metrics()
        assert.deepStrictEqual([m.bufferedCalls, m.failedCalls, m.state], [3, 1, "Closed"])
        yield* TestClock.adjust("5 seconds")
        yield* call(breaker, boom)
        yield* call(breaker, boom)
        // 3 failures of 5 in the window = 0.6
        assert.strictEqual(yield* stateTag(breaker), "Open")
      })
    )
  })

  describe("slow calls", () => {
    it.effect("slow successes trip the slow-call policy; durations come from the clock", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          slowCallRateThreshold: 0.5,
          slowCallDuration: "2 seconds",
          slidingWindowSize: 4,
          minimumCalls: 2
        })
        const slow = Effect.sleep("3 seconds").pipe(Effect.as("slow"))
        const fiber = yield* Effect.forkChild(call(breaker, slow))
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual(yield* Fiber.join(fiber), "ok")
        const m1 = yield* breaker.metrics()
        assert.deepStrictEqual([m1.slowCalls, m1.slowCallRate], [1, 1])
        assert.strictEqual(yield* stateTag(breaker), "Closed") // below minimumCalls
        yield* call(breaker, ok)
        // one slow call of two reaches the 0.5 threshold: open (an opening empties the window)
        assert.strictEqual(yield* stateTag(breaker), "Open")
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.successes, stats.slowSuccesses], [2, 1])
      })
    )
  })

  describe("open duration", () => {
    it.effect("a Schedule lengthens consecutive openings and resets after staying closed", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: Schedule.exponential("1 second")
        })
        const openFor = Effect.map(breaker.state(), (s) => (s._tag === "Open" ? Duration.toMillis(s.retryAfter) : -1))
        yield* call(breaker, boom)
        assert.strictEqual(yield* openFor, 1_000)
        yield* TestClock.adjust("1 second")
        yield* call(breaker, boom) // probe fails
        assert.strictEqual(yield* openFor, 2_000)
        yield* TestClock.adjust("2 seconds")
        yield* call(breaker, boom)
        assert.strictEqual(yield* openFor, 4_000)
        yield* TestClock.adjust("4 seconds")
        yield* call(breaker, ok) // closes; the backoff resets after 4 s closed
        yield* TestClock.adjust("4 seconds")
        yield* call(breaker, boom)
        assert.strictEqual(yield* openFor, 1_000)
      })
    )

    it.effect("a capped Schedule: exponential up to a maximum", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("5 seconds")])
        })
        const openings: Array<number> = []
        for (let i = 0; i < 5; i++) {
          yield* call(breaker, boom)
          const state = yield* breaker.state()
          const millis = state._tag === "Open" ? Duration.toMillis(state.retryAfter) : -1
          openings.push(millis)
          yield* TestClock.adjust(Duration.millis(millis))
        }
        assert.deepStrictEqual(openings, [1_000, 2_000, 4_000, 5_000, 5_000])
      })
    )

    it.effect("a jittered Schedule: each opening within 0.8 to 1.2 of its exponential step, drawn afresh", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: Schedule.exponential("1 second").pipe(Schedule.jittered)
        })
        const openings: Array<number> = []
        for (let i = 0; i < 6; i++) {
          yield* call(breaker, boom) // trips, then every failed probe reopens
          const state = yield* breaker.state()
          assert.strictEqual(state._tag === "Open" ? state.consecutiveOpenings : -1, i + 1)
          const millis = state._tag === "Open" ? Duration.toMillis(state.retryAfter) : -1
          const step = 1_000 * 2 ** i
          assert.isTrue(millis >= 0.8 * step && millis <= 1.2 * step, `opening ${i + 1}: ${millis} ms`)
          openings.push(millis / step)
          yield* TestClock.adjust(Duration.millis(Math.ceil(millis)))
        }
        // not the bare exponential steps, and not one jitter factor reused for every opening
        assert.isTrue(openings.some((factor) => factor !== 1))
        assert.isAbove(new Set(openings).size, 1)
      })
    )

    it.effect("a failure's retry-after hint lengthens the opening, capped by maxOpenDuration", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, openDuration: "1 second", maxOpenDuration: "1 minute" })
        const hinted = (millis: number) =>
          Effect.exit(
            CircuitBreaker.protect(Effect.fail(new Boom({ retryAfterMillis: millis })), breaker, {
              retryAfter: (e: Boom) => e.retryAfterMillis
            })
          )
        yield* hinted(30_000)
        const state = yield* breaker.state()
        assert.strictEqual(state._tag === "Open" ? Duration.toMillis(state.retryAfter) : -1, 30_000)
        yield* breaker.reset()
        yield* hinted(3_600_000)
        const capped = yield* breaker.state()
        assert.strictEqual(capped._tag === "Open" ? Duration.toMillis(capped.retryAfter) : -1, 60_000)
      })
    )
  })

  describe("half-open", () => {
    it.effect("admits exactly the permitted probes, closes after enough successes", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: "1 second",
          halfOpenPermittedCalls: 3,
          halfOpenSuccessesToClose: 2
        })
        yield* call(breaker, boom)
        yield* TestClock.adjust("1 second")
        const gate = yield* Deferred.make<void>()
        const held = Effect.as(Deferred.await(gate), "ok")
        const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(call(breaker, held)))
        yield* Effect.yieldNow
        const state = yield* breaker.state()
        assert.deepStrictEqual(state, {
          _tag: "HalfOpen",
          key: "default",
          probesInFlight: 3,
          probesAdmitted: 3,
          consecutiveOpenings: 1
        })
        const rejected = yield* Effect.flip(CircuitBreaker.protect(ok, breaker))
        assert.strictEqual(rejected.reason._tag, "CircuitHalfOpen")
        yield* Deferred.succeed(gate, undefined)
        const results = yield* Effect.forEach(fibers, Fiber.join)
        assert.deepStrictEqual(results, ["ok", "ok", "ok"])
        assert.strictEqual(yield* stateTag(breaker), "Closed")
      })
    )

    it.effect("an interrupted probe frees its slot and counts as nothing", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, openDuration: "1 second" })
        yield* call(breaker, boom)
        yield* TestClock.adjust("1 second")
        const probe = yield* Effect.forkChild(CircuitBreaker.protect(Effect.never, breaker))
        yield* Effect.yieldNow
        assert.strictEqual(yield* call(breaker, ok), "CircuitHalfOpen")
        yield* Fiber.interrupt(probe)
        const state = yield* breaker.state()
        assert.deepStrictEqual(state._tag === "HalfOpen" ? [state.probesAdmitted, state.probesInFlight] : [], [0, 0])
        assert.strictEqual(yield* call(breaker, ok), "ok")
        assert.strictEqual(yield* stateTag(breaker), "Closed")
        assert.strictEqual((yield* breaker.stats).ignored, 1)
      })
    )

    it.effect("success-rate mode decides once every permitted probe completed", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: "1 second",
          halfOpenPermittedCalls: 4,
          halfOpenSuccessRate: 0.75
        })
        yield* call(breaker, boom)
        yield* TestClock.adjust("1 second")
        yield* call(breaker, ok)
        yield* call(breaker, boom) // a failure does not reopen in rate mode
        yield* call(breaker, ok)
        assert.strictEqual(yield* stateTag(breaker), "HalfOpen")
        yield* call(breaker, ok) // 3 of 4 = 0.75
        assert.strictEqual(yield* stateTag(breaker), "Closed")
      })
    )

    it.effect("reopens a circuit that stays half-open past halfOpenMaxDuration", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: "1 second",
          halfOpenMaxDuration: "5 seconds"
        })
        yield* call(breaker, boom)
        yield* TestClock.adjust("1 second")
        yield* Effect.forkChild(CircuitBreaker.protect(Effect.never, breaker))
        yield* Effect.yieldNow
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(yield* call(breaker, ok), "CircuitOpen")
        assert.strictEqual(yield* stateTag(breaker), "Open")
      })
    )

    it.effect("10,000 concurrent fibres at the half-open instant: exactly the permitted probes run", () =>
      Effect.gen(function* () {
        const permitted = 5
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: "1 second",
          halfOpenPermittedCalls: permitted,
          halfOpenSuccessesToClose: permitted
        })
        yield* call(breaker, boom)
        yield* TestClock.adjust("1 second")
        const gate = yield* Deferred.make<void>()
        let running = 0
        const probe = Effect.suspend(() => {
          running++
          return Deferred.await(gate)
        })
        // forked from this fibre, so all 10,000 are concurrent children of the test
        const fibers = yield* Effect.forEach(Array.from({ length: 10_000 }), () =>
          Effect.forkChild(call(breaker, probe))
        )
        // let every fibre reach the breaker: each is either running (a probe) or rejected
        for (let i = 0; i < 1000 && running + (yield* breaker.stats).rejected < 10_000; i++) yield* Effect.yieldNow
        assert.strictEqual((yield* breaker.stats).rejected, 10_000 - permitted)
        assert.strictEqual(running, permitted)
        yield* Deferred.succeed(gate, undefined)
        const results = yield* Effect.forEach(fibers, Fiber.join)
        assert.strictEqual(results.filter((r) => r === "ok").length, permitted)
        assert.strictEqual(results.filter((r) => r === "CircuitHalfOpen").length, 10_000 - permitted)
        assert.strictEqual(yield* stateTag(breaker), "Closed")
      })
    )
  })

  describe("classification", () => {
    it.effect("a success value can be a failure; a typed error can be ignored", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 2 })
        const response = (status: number) => Effect.succeed({ status })
        const options = { isFailureResult: (r: { readonly status: number }) => r.status === 503 }
        yield* CircuitBreaker.protect(response(503), breaker, options)
        assert.strictEqual((yield* breaker.metrics()).consecutiveFailures, 1)
        const notFound = Effect.fail(new NotFound())
        yield* Effect.exit(
          CircuitBreaker.protect(notFound, breaker, { isIgnored: (e: NotFound) => e._tag === "NotFound" })
        )
        assert.strictEqual((yield* breaker.metrics()).consecutiveFailures, 1)
        yield* CircuitBreaker.protect(response(503), breaker, options)
        assert.strictEqual(yield* stateTag(breaker), "Open")
      })
    )

    it.effect("isFailure decides which typed errors count", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1 })
        yield* Effect.exit(CircuitBreaker.protect(boom, breaker, { isFailure: () => false }))
        assert.strictEqual(yield* stateTag(breaker), "Closed")
        assert.strictEqual((yield* breaker.stats).successes, 1)
      })
    )

    it.effect("breaker-wide isFailure, isIgnored and isFailureResult from make, on the closed fast path too", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          consecutiveFailures: 1,
          isIgnored: (e) => e instanceof NotFound,
          isFailure: (e) => !(e instanceof Invalid),
          isFailureResult: (r) => typeof r === "object" && r !== null && Reflect.get(r, "status") === 503
        })
        assert.strictEqual(yield* call(breaker, Effect.fail(new NotFound())), "NotFound")
        assert.strictEqual(yield* call(breaker, Effect.fail(new Invalid())), "Invalid")
        assert.strictEqual(yield* call(breaker, Effect.succeed({ status: 200 })), "ok")
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.ignored, stats.successes, stats.failures], [1, 2, 0])
        assert.strictEqual(yield* stateTag(breaker), "Closed")
        // no per-call options: the shared closed-state frame still applies the breaker's isFailureResult
        assert.strictEqual(yield* call(breaker, Effect.succeed({ status: 503 })), "ok")
        assert.strictEqual(yield* stateTag(breaker), "Open")
        // an unclassified typed error is a failure
        const other = yield* make({ consecutiveFailures: 1, isFailure: (e) => !(e instanceof Invalid) })
        yield* call(other, boom)
        assert.strictEqual(yield* stateTag(other), "Open")
      })
    )

    it.effect("per-call predicates are consulted before the breaker-wide ones", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, isFailure: () => true, isIgnored: () => false })
        yield* Effect.exit(CircuitBreaker.protect(boom, breaker, { isIgnored: (e: Boom) => e._tag === "Boom" }))
        yield* Effect.exit(CircuitBreaker.protect(boom, breaker, { isFailure: () => false }))
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.ignored, stats.successes, stats.failures], [1, 1, 0])
        assert.strictEqual(yield* stateTag(breaker), "Closed")
      })
    )

    it.effect("defects are failures by default, ignored when countDefectsAsFailures is off", () =>
      Effect.gen(function* () {
        const strict = yield* make({ consecutiveFailures: 1 })
        yield* call(strict, Effect.die("bug"))
        assert.strictEqual(yield* stateTag(strict), "Open")
        const lenient = yield* make({ consecutiveFailures: 1, countDefectsAsFailures: false })
        yield* call(lenient, Effect.die("bug"))
        assert.strictEqual(yield* stateTag(lenient), "Closed")
      })
    )

    it.effect("interruption is never a failure", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1 })
        const fiber = yield* Effect.forkChild(CircuitBreaker.protect(Effect.never, breaker))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(yield* stateTag(breaker), "Closed")
        assert.strictEqual((yield* breaker.stats).ignored, 1)
      })
    )
  })

  describe("manual states", () => {
    it.effect("forceOpen rejects, disable runs unrecorded, metricsOnly records and never trips, reset closes", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1 })
        yield* breaker.forceOpen()
        const forced = yield* Effect.flip(CircuitBreaker.protect(ok, breaker))
        assert.deepStrictEqual(forced.reason._tag === "CircuitOpen" ? [forced.reason.state, forced.reason.key] : [], [
          "ForcedOpen",
          "default"
        ])
        yield* breaker.disable()
        assert.strictEqual(yield* call(breaker, boom), "Boom")
        assert.strictEqual(yield* call(breaker, boom), "Boom")
        assert.strictEqual((yield* breaker.metrics()).bufferedCalls, 0)
        assert.strictEqual(yield* stateTag(breaker), "Disabled")
        yield* breaker.metricsOnly()
        yield* call(breaker, boom)
        yield* call(breaker, boom)
        const m = yield* breaker.metrics()
        assert.deepStrictEqual([m.state, m.failedCalls, m.consecutiveFailures], ["MetricsOnly", 2, 2])
        yield* breaker.reset()
        assert.deepStrictEqual(yield* breaker.metrics(), {
          key: "default",
          state: "Closed",
          health: "healthy",
          bufferedCalls: 0,
          failedCalls: 0,
          slowCalls: 0,
          failureRate: 0,
          slowCallRate: 0,
          consecutiveFailures: 0
        })
      })
    )
  })

  describe("keyed", () => {
    it.effect("each key has its own circuit", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1 })
        yield* call(breaker, boom, "a.example.com")
        assert.strictEqual(yield* call(breaker, ok, "a.example.com"), "CircuitOpen")
        assert.strictEqual(yield* call(breaker, ok, "b.example.com"), "ok")
        assert.strictEqual(yield* stateTag(breaker, "b.example.com"), "Closed")
      })
    )

    it.effect("maxKeys bounds the circuits held; closed ones are evicted before open ones", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, maxKeys: 3 })
        yield* call(breaker, boom, "open")
        for (const key of ["k1", "k2", "k3", "k4", "k5"]) yield* call(breaker, ok, key)
        const stats = yield* breaker.stats
        assert.strictEqual(stats.circuits, 3)
        assert.strictEqual(stats.evicted, 3)
        assert.strictEqual(yield* call(breaker, ok, "open"), "CircuitOpen")
      })
    )

    it.effect("idle circuits are evicted after idleTimeToLive when new keys arrive", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, idleTimeToLive: "1 minute" })
        for (let i = 0; i < 10; i++) yield* call(breaker, ok, `old-${i}`)
        yield* TestClock.adjust("2 minutes")
        for (let i = 0; i < 6; i++) {
          yield* call(breaker, ok, `new-${i}`)
          yield* TestClock.adjust("20 seconds")
        }
        // the ten old circuits, idle since t=0, and new-0, idle since t=120s, are gone by t=220s;
        // nothing is evicted before it has been idle for idleTimeToLive
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.evicted, stats.circuits], [11, 5])
      })
    )
  })

  describe("snapshots", () => {
    it.effect("export and import: an open circuit restored later keeps only its remaining open time", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ name: "payments", consecutiveFailures: 1, openDuration: "30 seconds" })
        yield* call(breaker, boom, "eu")
        yield* call(breaker, ok, "us")
        const snapshot = yield* breaker.snapshot
        const json = JSON.stringify(Schema.encodeSync(CircuitBreaker.Snapshot)(snapshot))
        yield* TestClock.adjust("10 seconds")
        const restored = yield* make({
          name: "payments",
          consecutiveFailures: 1,
          openDuration: "30 seconds",
          initialSnapshot: Schema.decodeUnknownSync(CircuitBreaker.Snapshot)(JSON.parse(json))
        })
        const state = yield* restored.state("eu")
        assert.strictEqual(state._tag === "Open" ? Duration.toMillis(state.retryAfter) : -1, 20_000)
        assert.strictEqual(yield* stateTag(restored, "us"), "Closed")
        assert.strictEqual((yield* restored.metrics("us")).bufferedCalls, 1)
      })
    )
  })

  describe("restore", () => {
    it.effect("restore loads a snapshot into a running breaker: its circuits replace the live ones", () =>
      Effect.gen(function* () {
        const options = { name: "payments", consecutiveFailures: 1, openDuration: "30 seconds" } as const
        const source = yield* make(options)
        yield* call(source, boom) // the default key
        yield* call(source, boom, "eu")
        const snapshot = yield* source.snapshot
        yield* TestClock.adjust("10 seconds")
        const target = yield* make(options)
        // the default key is Closed here and served by the shared closed-state frame
        assert.strictEqual(yield* call(target, ok), "ok")
        yield* call(target, ok, "us")
        yield* target.restore(snapshot)
        const state = yield* target.state()
        assert.strictEqual(state._tag === "Open" ? Duration.toMillis(state.retryAfter) : -1, 20_000)
        assert.strictEqual(yield* call(target, ok), "CircuitOpen")
        assert.strictEqual(yield* call(target, ok, "eu"), "CircuitOpen")
        // a key the snapshot does not hold keeps its circuit
        assert.strictEqual((yield* target.metrics("us")).bufferedCalls, 1)
        yield* TestClock.adjust("20 seconds")
        assert.strictEqual(yield* call(target, ok), "ok")
        assert.strictEqual(yield* stateTag(target), "Closed")
      })
    )
  })

  describe("rejections", () => {
    it.effect("carry no captured stack trace", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, openDuration: "1 second" })
        yield* call(breaker, boom)
        const open = yield* Effect.flip(CircuitBreaker.protect(ok, breaker))
        yield* TestClock.adjust("1 second")
        const probe = yield* Effect.forkChild(CircuitBreaker.protect(Effect.never, breaker))
        yield* Effect.yieldNow
        const halfOpen = yield* Effect.flip(CircuitBreaker.protect(ok, breaker))
        yield* Fiber.interrupt(probe)
        yield* breaker.forceOpen()
        const forced = yield* Effect.flip(CircuitBreaker.protect(ok, breaker))
        assert.deepStrictEqual(
          [open, halfOpen, forced].map((e) => e.reason._tag),
          ["CircuitOpen", "CircuitHalfOpen", "CircuitOpen"]
        )
        for (const error of [open, halfOpen, forced]) {
          assert.instanceOf(error, CircuitBreaker.CircuitBreakerError)
          assert.notInclude(String(error.stack), "    at ")
          assert.notInclude(String(error.reason.stack), "    at ")
        }
        // an error built the ordinary way does capture one: the check above can fail
        const built = new CircuitBreaker.CircuitBreakerError({ reason: halfOpen.reason })
        assert.include(String(built.stack), "    at ")
      })
    )
  })

  describe("state is derived at admission", () => {
    it.effect("state() reports Open with retryAfter 0 once the open time has passed, until a call is admitted", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, openDuration: "1 second" })
        yield* call(breaker, boom)
        yield* TestClock.adjust("1 minute") // no timer fires
        const state = yield* breaker.state()
        assert.deepStrictEqual(state._tag === "Open" ? [Duration.toMillis(state.retryAfter)] : [], [0])
        assert.deepStrictEqual([(yield* breaker.metrics()).state, yield* breaker.health()], ["Open", "unhealthy"])
        // the next call is admitted as a probe: HalfOpen only now
        const gate = yield* Deferred.make<void>()
        const probe = yield* Effect.forkChild(call(breaker, Effect.as(Deferred.await(gate), "ok")))
        yield* Effect.yieldNow
        assert.strictEqual(yield* stateTag(breaker), "HalfOpen")
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(probe), "ok")
        assert.strictEqual(yield* stateTag(breaker), "Closed")
      })
    )
  })

  describe("composition (the docs' tables)", () => {
    /** How a call ended, for the caller: "ok", a rejection reason's tag, or the error's tag. */
    const endedWith = (exit: Exit.Exit<unknown, unknown>): string => {
      if (Exit.isSuccess(exit)) return "ok"
      const error = Cause.squash(exit.cause)
      return CircuitBreaker.isCircuitBreakerError(error)
        ? error.reason._tag
        : String(Reflect.get(Object(error), "_tag"))
    }
    /** Three calls against a dependency that never answers, each given 5 ms of TestClock time. */
    const threeHanging = (call: Effect.Effect<unknown, unknown>) =>
      Effect.gen(function* () {
        const seen: Array<string> = []
        for (let i = 0; i < 3; i++) {
          const fiber = yield* Effect.forkChild(Effect.exit(call))
          yield* TestClock.adjust("5 millis")
          seen.push(endedWith(yield* Fiber.join(fiber)))
        }
        return seen
      })

    it.effect("timeout inside the breaker: each TimeoutError is a failure, and the circuit opens", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 2 })
        const seen = yield* threeHanging(Effect.never.pipe(Effect.timeout("5 millis"), CircuitBreaker.protect(breaker)))
        assert.deepStrictEqual(seen, ["TimeoutError", "TimeoutError", "CircuitOpen"])
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.failures, stats.ignored, stats.rejected], [2, 0, 1])
        assert.strictEqual(yield* stateTag(breaker), "Open")
      })
    )

    it.effect("timeout outside the breaker: the breaker sees interruptions, ignores them, and stays Closed", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 2 })
        const seen = yield* threeHanging(Effect.never.pipe(CircuitBreaker.protect(breaker), Effect.timeout("5 millis")))
        assert.deepStrictEqual(seen, ["TimeoutError", "TimeoutError", "TimeoutError"])
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.failures, stats.ignored, stats.rejected], [0, 3, 0])
        assert.strictEqual(yield* stateTag(breaker), "Closed")
      })
    )

    it.effect("retry outside the breaker: rejections stop the attempts after 2 calls reach the dependency", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 2 })
        let reached = 0
        const dependency = Effect.suspend(() => {
          reached++
          return boom
        })
        const seen: Array<string> = []
        for (let i = 0; i < 3; i++) {
          seen.push(
            endedWith(yield* Effect.exit(dependency.pipe(CircuitBreaker.protect(breaker), Effect.retry({ times: 3 }))))
          )
        }
        assert.deepStrictEqual(seen, ["CircuitOpen", "CircuitOpen", "CircuitOpen"])
        assert.strictEqual(reached, 2)
      })
    )

    it.effect("retry inside the breaker: one outcome per retry sequence, 8 calls reach the dependency", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 2 })
        let reached = 0
        const dependency = Effect.suspend(() => {
          reached++
          return boom
        })
        const seen: Array<string> = []
        for (let i = 0; i < 3; i++) {
          seen.push(
            endedWith(yield* Effect.exit(dependency.pipe(Effect.retry({ times: 3 }), CircuitBreaker.protect(breaker))))
          )
        }
        assert.deepStrictEqual(seen, ["Boom", "Boom", "CircuitOpen"])
        assert.strictEqual(reached, 8)
      })
    )
  })

  describe("events", () => {
    it.effect("transitions, rejections, outcomes and health changes", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ name: "orders", consecutiveFailures: 1, openDuration: "1 second" })
        const events = yield* breaker.subscribe
        yield* call(breaker, boom)
        yield* call(breaker, ok)
        yield* TestClock.adjust("1 second")
        yield* call(breaker, ok)
        const received = yield* Queue.takeAll(events)
        assert.deepStrictEqual(
          received.map((e) =>
            e._tag === "StateTransition"
              ? `${e.from}->${e.to}`
              : e._tag === "HealthChanged"
                ? `health:${e.to}`
                : e._tag === "CallOutcome"
                  ? `outcome:${e.outcome}`
                  : `rejected:${e.state}`
          ),
          [
            "Closed->Open",
            "outcome:Failure",
            "health:unhealthy",
            "rejected:Open",
            "Open->HalfOpen",
            "health:degraded",
            "HalfOpen->Closed",
            "outcome:Success",
            "health:healthy"
          ]
        )
        const opened = received[0]
        assert.isTrue(
          opened?._tag === "StateTransition" &&
            opened.breaker === "orders" &&
            opened.retryAfter !== undefined &&
            Duration.toMillis(opened.retryAfter) === 1_000
        )
      })
    )
  })

  describe("events: stream, health and durations", () => {
    it.effect("the events Stream delivers transitions, outcomes, health changes and rejections", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ name: "stream", consecutiveFailures: 1, openDuration: "1 second" })
        const collected = yield* Effect.forkChild(Stream.runCollect(Stream.take(breaker.events, 4)))
        // let the stream subscribe before the calls
        for (let i = 0; i < 10; i++) yield* Effect.yieldNow
        yield* call(breaker, boom)
        yield* call(breaker, ok)
        const events = yield* Fiber.join(collected)
        assert.deepStrictEqual(
          events.map((e) => e._tag),
          ["StateTransition", "CallOutcome", "HealthChanged", "CallRejected"]
        )
        assert.isTrue(events.every((e) => e.breaker === "stream" && e.key === "stream"))
        const rejected = events[3]
        assert.strictEqual(rejected?._tag === "CallRejected" ? Duration.toMillis(rejected.retryAfter) : -1, 1_000)
      })
    )

    it.effect("health(): degraded once the failure rate reaches half its threshold, unhealthy when open", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ failureRateThreshold: 0.5, slidingWindowSize: 10, minimumCalls: 4 })
        const events = yield* breaker.subscribe
        for (const effect of [ok, ok, boom]) yield* call(breaker, effect)
        assert.strictEqual(yield* breaker.health(), "healthy") // below minimumCalls
        yield* call(breaker, ok) // 1 of 4 = 0.25: half of 0.5
        assert.strictEqual(yield* breaker.health(), "degraded")
        assert.strictEqual(yield* stateTag(breaker), "Closed")
        for (const effect of [boom, boom]) yield* call(breaker, effect) // 3 of 6 = 0.5: opens
        assert.strictEqual(yield* breaker.health(), "unhealthy")
        const changes = (yield* Queue.takeAll(events)).flatMap((e) =>
          e._tag === "HealthChanged" ? [`${e.from}->${e.to}`] : []
        )
        assert.deepStrictEqual(changes, ["healthy->degraded", "degraded->unhealthy"])
      })
    )

    it.effect("a subscriber joining after a change sees the next one from the right state", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1 })
        // changes while nobody listens: forced open, then tripped on another key
        yield* breaker.forceOpen()
        yield* call(breaker, boom, "other")
        const events = yield* breaker.subscribe
        yield* breaker.reset()
        yield* breaker.reset("other")
        const changes = (yield* Queue.takeAll(events)).flatMap((e) =>
          e._tag === "HealthChanged" ? [`${e.key}:${e.from}->${e.to}`] : []
        )
        assert.deepStrictEqual(changes, ["default:unhealthy->healthy", "other:unhealthy->healthy"])
      })
    )

    it.effect("health(): degraded once the slow-call rate reaches half its threshold", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          ...CircuitBreaker.slowCalls({ duration: "1 second", threshold: 0.8 }),
          slidingWindowSize: 10,
          minimumCalls: 4
        })
        for (let i = 0; i < 3; i++) yield* call(breaker, ok)
        yield* timedCall(breaker, ok, 1_000) // 1 slow of 4 = 0.25: below 0.4
        assert.strictEqual(yield* breaker.health(), "healthy")
        yield* timedCall(breaker, ok, 1_000) // 2 of 5 = 0.4: half of 0.8
        assert.strictEqual(yield* breaker.health(), "degraded")
        const m = yield* breaker.metrics()
        assert.deepStrictEqual([m.state, m.slowCalls, m.slowCallRate], ["Closed", 2, 0.4])
      })
    )

    it.effect("a CallOutcome carries the call's duration when durations are measured, zero otherwise", () =>
      Effect.gen(function* () {
        const durations = (options: CircuitBreaker.Input) =>
          Effect.gen(function* () {
            const breaker = yield* make(options)
            const events = yield* breaker.subscribe
            yield* timedCall(breaker, ok, 2_000)
            yield* timedCall(breaker, boom, 250)
            return (yield* Queue.takeAll(events)).flatMap((e) =>
              e._tag === "CallOutcome" ? [[e.outcome, Duration.toMillis(e.duration)]] : []
            )
          })
        assert.deepStrictEqual(yield* durations({ recordCallDuration: true }), [
          ["Success", 2_000],
          ["Failure", 250]
        ])
        // per-call options take the admission path rather than the shared closed-state frame
        const keyed = yield* make({ recordCallDuration: true })
        const events = yield* keyed.subscribe
        const fiber = yield* Effect.forkChild(
          Effect.exit(CircuitBreaker.protect(Effect.sleep("3 seconds"), keyed, { key: "tenant" }))
        )
        yield* TestClock.adjust("3 seconds")
        yield* Fiber.join(fiber)
        const outcome = (yield* Queue.takeAll(events)).find((e) => e._tag === "CallOutcome")
        assert.strictEqual(outcome?._tag === "CallOutcome" ? Duration.toMillis(outcome.duration) : -1, 3_000)
        assert.deepStrictEqual(yield* durations({}), [
          ["Success", 0],
          ["Failure", 0]
        ])
      })
    )
  })

  describe("telemetry", () => {
    it.effect("every outcome series, slow calls, the rate gauges and the duration histogram in seconds", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          name: "catalogue",
          ...CircuitBreaker.slowCalls({ duration: "2 seconds", threshold: 0.9 }),
          failureRateThreshold: 0.9,
          slidingWindowSize: 10,
          minimumCalls: 10,
          recordCallDuration: true
        })
        yield* timedCall(breaker, ok, 3_000) // slow success
        yield* timedCall(breaker, boom, 2_000) // slow failure
        yield* timedCall(breaker, ok, 500)
        yield* Effect.exit(
          CircuitBreaker.protect(Effect.fail(new NotFound()), breaker, {
            isIgnored: (e: NotFound) => e._tag === "NotFound"
          })
        )
        const snapshots = yield* Metric.snapshot
        const value = (id: string, attributes: Record<string, string> = {}) =>
          metricValue(snapshots, `resilience.circuit_breaker.${id}`, { "resilience.name": "catalogue", ...attributes })
        const outcome = (o: string) => ({ "resilience.outcome": o })
        assert.deepStrictEqual(
          ["success", "failure", "ignored", "rejected"].map((o) => value("calls", outcome(o))),
          [2, 1, 1, 0]
        )
        assert.deepStrictEqual(
          [value("slow_calls", outcome("success")), value("slow_calls", outcome("failure"))],
          [1, 1]
        )
        // 1 failure and 2 slow calls of the 3 counted (the ignored call is not in the window)
        assert.strictEqual(value("failure_rate"), 1 / 3)
        assert.strictEqual(value("slow_call_rate"), 2 / 3)
        // [count, sum]: seconds, not milliseconds
        assert.deepStrictEqual(value("call.duration", outcome("success")), [2, 3.5])
        assert.deepStrictEqual(value("call.duration", outcome("failure")), [1, 2])
        assert.strictEqual(value("state", { "resilience.state": "closed" }), 1)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
    )

    it.effect("the rate gauges of a time-based window leave out the calls older than the window", () =>
      Effect.gen(function* () {
        const breaker = yield* make({
          name: "windowed",
          ...CircuitBreaker.timeRate({ window: "10 seconds", minimumCalls: 10 })
        })
        for (const effect of [boom, ok]) yield* call(breaker, effect)
        const failureRate = Effect.map(Metric.snapshot, (snapshots) =>
          metricValue(snapshots, "resilience.circuit_breaker.failure_rate", { "resilience.name": "windowed" })
        )
        assert.strictEqual(yield* failureRate, 0.5)
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* failureRate, 0)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
    )

    it.effect("spanEvents: all adds CallOutcome; each span event names the breaker and its state or outcome", () =>
      Effect.gen(function* () {
        const spanEvents = (spanEvents: "none" | "transitions" | "all") =>
          Effect.gen(function* () {
            const breaker = yield* make({ name: "billing", consecutiveFailures: 1, spanEvents })
            return yield* Effect.gen(function* () {
              yield* call(breaker, ok)
              yield* call(breaker, boom)
              yield* call(breaker, ok)
              const span = yield* Effect.currentSpan
              return "events" in span && Array.isArray(span.events)
                ? span.events.map((e: ReadonlyArray<unknown>) => [e[0], e[2]])
                : []
            }).pipe(Effect.withSpan("request"))
          })
        assert.deepStrictEqual(yield* spanEvents("all"), [
          ["CallOutcome", { "resilience.name": "billing", "resilience.outcome": "success", "resilience.slow": false }],
          ["StateTransition", { "resilience.name": "billing", "resilience.from": "closed", "resilience.to": "open" }],
          ["CallOutcome", { "resilience.name": "billing", "resilience.outcome": "failure", "resilience.slow": false }],
          ["CallRejected", { "resilience.name": "billing", "resilience.state": "open" }]
        ])
        assert.deepStrictEqual(
          (yield* spanEvents("transitions")).map(([name]) => name),
          ["StateTransition", "CallRejected"]
        )
        assert.deepStrictEqual(yield* spanEvents("none"), [])
      })
    )

    it.effect("metrics from the catalogue, with breaker name and outcome but never the key", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ name: "search", consecutiveFailures: 2, recordCallDuration: true })
        yield* call(breaker, ok, "tenant-1")
        yield* call(breaker, boom, "tenant-1")
        yield* call(breaker, boom, "tenant-1")
        yield* call(breaker, ok, "tenant-1")
        const snapshots = yield* Metric.snapshot
        const find = (id: string, attributes: Record<string, string>) =>
          snapshots.find((s) => s.id === id && Object.entries(attributes).every(([k, v]) => s.attributes?.[k] === v))
        const calls = (outcome: string) => {
          const s = find("resilience.circuit_breaker.calls", {
            "resilience.name": "search",
            "resilience.outcome": outcome
          })
          return s !== undefined && "count" in s.state ? s.state.count : -1
        }
        assert.deepStrictEqual([calls("success"), calls("failure"), calls("rejected")], [1, 2, 1])
        const opened = find("resilience.circuit_breaker.transitions", {
          "resilience.name": "search",
          "resilience.from": "closed",
          "resilience.to": "open"
        })
        assert.isTrue(opened !== undefined && "count" in opened.state && opened.state.count === 1)
        const open = find("resilience.circuit_breaker.state", {
          "resilience.name": "search",
          "resilience.state": "open"
        })
        assert.isTrue(open !== undefined && "value" in open.state && open.state.value === 1)
        const durations = find("resilience.circuit_breaker.call.duration", {
          "resilience.name": "search",
          "resilience.outcome": "failure"
        })
        assert.isTrue(durations !== undefined && "count" in durations.state && durations.state.count === 2)
        for (const s of snapshots.filter((s) => s.id.startsWith("resilience.circuit_breaker"))) {
          assert.notInclude(Object.values(s.attributes ?? {}), "tenant-1")
        }
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
    )

    it.effect("span events for transitions and rejections on the current span", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ name: "billing", consecutiveFailures: 1 })
        const events = yield* Effect.gen(function* () {
          yield* call(breaker, boom)
          yield* call(breaker, ok)
          const span = yield* Effect.currentSpan
          return "events" in span && Array.isArray(span.events)
            ? span.events.map((e: ReadonlyArray<unknown>) => e[0])
            : []
        }).pipe(Effect.withSpan("request"))
        assert.deepStrictEqual(events, ["StateTransition", "CallRejected"])
      })
    )
  })

  describe("options", () => {
    it.effect("defaults", () =>
      Effect.gen(function* () {
        const options = yield* CircuitBreaker.validateOptions({})
        assert.deepStrictEqual(
          {
            name: options.name,
            failureRateThreshold: options.failureRateThreshold,
            consecutiveFailures: options.consecutiveFailures,
            slidingWindowSize: options.slidingWindowSize,
            minimumCalls: options.minimumCalls,
            openDuration: Duration.isDuration(options.openDuration) ? Duration.toMillis(options.openDuration) : -1,
            halfOpenPermittedCalls: options.halfOpenPermittedCalls,
            maxKeys: options.maxKeys,
            onStoreError: options.onStoreError
          },
          {
            name: "default",
            failureRateThreshold: 0.5,
            consecutiveFailures: undefined,
            slidingWindowSize: 100,
            minimumCalls: 20,
            openDuration: 30_000,
            halfOpenPermittedCalls: 1,
            maxKeys: 10_000,
            onStoreError: "allow"
          }
        )
      })
    )

    it.effect("minimum valid values are accepted", () =>
      Effect.gen(function* () {
        const options = yield* CircuitBreaker.validateOptions({
          consecutiveFailures: 1,
          failureRateThreshold: 1,
          slidingWindowSize: 1,
          minimumCalls: 1,
          openDuration: 1,
          halfOpenPermittedCalls: 1,
          halfOpenSuccessesToClose: 1,
          maxKeys: 1,
          slidingWindowBuckets: 1
        })
        assert.strictEqual(options.slidingWindowSize, 1)
      })
    )

    it.effect("invalid input fails with one typed error listing every bad field and value", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          CircuitBreaker.make({
            failureRateThreshold: 1.5,
            slidingWindowSize: 0,
            minimumCalls: 200,
            slidingWindowBuckets: 10,
            halfOpenPermittedCalls: 2,
            halfOpenSuccessesToClose: 3,
            openDuration: "soon" as Duration.Input
          }).pipe(Effect.provide(store))
        )
        assert.instanceOf(error, Options.InvalidOptions)
        assert.deepStrictEqual(error._tag === "InvalidOptions" ? error.issues.map((i) => [i.path, i.value]) : [], [
          ["openDuration", '"soon"'],
          ["failureRateThreshold", "1.5"],
          ["slidingWindowSize", "0"],
          ["halfOpenSuccessesToClose", "3"]
        ])
      })
    )

    it.effect("minimumCalls above a count window's size is refused", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(CircuitBreaker.validateOptions({ slidingWindowSize: 10, minimumCalls: 11 }))
        assert.deepStrictEqual(
          error.issues.map((i) => [i.path, i.value, i.message]),
          [["minimumCalls", "11", "Expected at most slidingWindowSize (10) for a count-based window"]]
        )
      })
    )

    it.effect("layerConfig reads options from Config, and reports every bad value in one InvalidOptions", () =>
      Effect.gen(function* () {
        const read = (env: Record<string, string>) =>
          Effect.exit(
            Effect.map(CircuitBreaker.CircuitBreaker, (b) => b.options).pipe(
              Effect.provide(
                CircuitBreaker.layerConfig("cb").pipe(
                  Layer.provide(store),
                  Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
                )
              )
            )
          )
        const issuesOf = (exit: Exit.Exit<unknown, unknown>) => {
          const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
          assert.instanceOf(error, Options.InvalidOptions)
          return error instanceof Options.InvalidOptions ? error.issues.map((i) => [i.path, i.value]) : []
        }
        const good = yield* read({
          cb_failureRateThreshold: "0.25",
          cb_openDuration: "5 seconds",
          cb_slidingWindowType: "time"
        })
        assert.isTrue(Exit.isSuccess(good))
        if (Exit.isSuccess(good)) {
          assert.deepStrictEqual(
            [good.value.name, good.value.failureRateThreshold, good.value.slidingWindowType],
            ["cb", 0.25, "time"]
          )
        }
        // every bad field with the text it held, not the first one alone
        assert.deepStrictEqual(
          issuesOf(
            yield* read({
              cb_failureRateThreshold: "1.5",
              cb_slidingWindowSize: "0",
              cb_openDuration: "soon",
              cb_slidingWindowType: "sometimes"
            })
          ).sort(),
          [
            ["failureRateThreshold", '"1.5"'],
            ["openDuration", '"soon"'],
            ["slidingWindowSize", '"0"'],
            ["slidingWindowType", '"sometimes"']
          ]
        )
        // a cross-field rule fails with the same error type
        assert.deepStrictEqual(issuesOf(yield* read({ cb_minimumCalls: "11", cb_slidingWindowSize: "10" })), [
          ["minimumCalls", "11"]
        ])
        const empty = yield* read({})
        assert.isTrue(Exit.isSuccess(empty))
      })
    )
  })
})
