/**
 * The `CircuitBreakerStore` contract as a reusable suite: every store (memory
 * here; Redis and Redis Cluster in @effect-resilience/redis) runs the same
 * cases, so the implementations cannot drift.
 *
 * Two kinds of case:
 *
 * - store cases drive the effectful `Circuits` operations (`admit`, `record`,
 *   `force`, `read`, …) directly: what any store must do;
 * - breaker cases run a `CircuitBreaker` over the store through `protect`.
 *   Over a store with a synchronous `local` twin (memory) they exercise the
 *   breaker's in-process path, over one without (Redis, or the memory store
 *   with `local` hidden) its effectful path, so two runs over the same
 *   circuits differ here. The `local` case checks that the twin and the
 *   effectful operations share one state.
 *
 * Time: the cases move time with `TestClock.adjust`; a store that reads
 * another clock (Redis `TIME`) passes `adjust` that waits for real instead,
 * and durations small enough to do so.
 */

import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "@effect-resilience/core"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"

class Boom extends Data.TaggedError("Boom") {}

/** A circuit configuration with every policy off but consecutive failures. */
export const config = (overrides: Partial<CircuitBreaker.CircuitsOptions["config"]> = {}) => ({
  consecutiveFailures: 2,
  failureRateThreshold: 0,
  slowCallRateThreshold: 0,
  slowCallMillis: Number.POSITIVE_INFINITY,
  windowType: "count" as const,
  windowSize: 10,
  bucketMillis: 1,
  minimumCalls: 1,
  halfOpenPermittedCalls: 2,
  halfOpenSuccessesToClose: 2,
  halfOpenSuccessRate: 0,
  halfOpenMaxMillis: Number.POSITIVE_INFINITY,
  maxOpenMillis: 3_600_000,
  ...overrides
})

export interface SuiteOptions {
  /** Moves the store's time forward. */
  readonly adjust?: ((duration: Duration.Input) => Effect.Effect<void>) | undefined
  /** The open duration the cases use, in ms (short for stores on real time). */
  readonly openMillis?: number | undefined
}

/**
 * Registers the conformance cases for a store layer.
 */
export const suite = (
  name: string,
  layer: Layer.Layer<CircuitBreaker.CircuitBreakerStore>,
  options: SuiteOptions = {}
): void => {
  const adjust = options.adjust ?? TestClock.adjust
  const openMillis = options.openMillis ?? 10_000
  const circuits = (overrides: Partial<CircuitBreaker.CircuitsOptions> = {}) =>
    Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (store) =>
      store.circuits({
        name: `suite-${Math.random().toString(36).slice(2)}`,
        config: config(),
        openMillisFor: (n) => openMillis * 2 ** (n - 1),
        initialState: "Closed",
        maxKeys: 1000,
        idleTimeToLiveMillis: 3_600_000,
        ...overrides
      })
    ).pipe(Effect.provide(layer))

  type Outcome = "Success" | "Failure" | "Ignored"
  /** Admits a call on `key` (it must run) and records its outcome: the transition the record made. */
  const runCall = (c: CircuitBreaker.Circuits, key: string, outcome: Outcome, hintMillis = 0) =>
    Effect.flatMap(c.admit(key), (admission) => {
      assert.include(["Admit", "Probe"], admission.verdict)
      return c.record({ key, generation: admission.generation, outcome, durationMillis: 0, hintMillis })
    })
  /** Trips `key` of a circuit with `consecutiveFailures: 1` and waits out the first opening. */
  const tripAndWait = (c: CircuitBreaker.Circuits, key: string) =>
    Effect.andThen(runCall(c, key, "Failure"), adjust(Duration.millis(openMillis)))

  describe(`CircuitBreakerStore conformance: ${name}`, () => {
    it.effect("admits on a fresh key, trips on the configured failures, rejects with the time left", () =>
      Effect.gen(function* () {
        const c = yield* circuits()
        const first = yield* c.admit("k")
        assert.strictEqual(first.verdict, "Admit")
        assert.strictEqual(
          yield* c.record({
            key: "k",
            generation: first.generation,
            outcome: "Failure",
            durationMillis: 0,
            hintMillis: 0
          }),
          undefined
        )
        const second = yield* c.admit("k")
        const opened = yield* c.record({
          key: "k",
          generation: second.generation,
          outcome: "Failure",
          durationMillis: 0,
          hintMillis: 0
        })
        assert.deepStrictEqual(opened, { from: "Closed", to: "Open", openMillis, consecutiveOpenings: 1 })
        const rejected = yield* c.admit("k")
        assert.strictEqual(rejected.verdict, "RejectOpen")
        assert.isTrue(rejected.retryAfterMillis > 0 && rejected.retryAfterMillis <= openMillis)
      })
    )

    it.effect("moves Open to HalfOpen at admission once the open time is up; probes close it", () =>
      Effect.gen(function* () {
        const c = yield* circuits({ config: config({ consecutiveFailures: 1 }) })
        const a = yield* c.admit("k")
        yield* c.record({ key: "k", generation: a.generation, outcome: "Failure", durationMillis: 0, hintMillis: 0 })
        yield* adjust(Duration.millis(openMillis))
        const p1 = yield* c.admit("k")
        assert.strictEqual(p1.verdict, "Probe")
        assert.deepStrictEqual(p1.transition, { from: "Open", to: "HalfOpen", openMillis: 0, consecutiveOpenings: 1 })
        const p2 = yield* c.admit("k")
        assert.strictEqual(p2.verdict, "Probe")
        assert.strictEqual((yield* c.admit("k")).verdict, "RejectHalfOpen")
        yield* c.record({ key: "k", generation: p1.generation, outcome: "Success", durationMillis: 0, hintMillis: 0 })
        const closed = yield* c.record({
          key: "k",
          generation: p2.generation,
          outcome: "Success",
          durationMillis: 0,
          hintMillis: 0
        })
        assert.deepStrictEqual(closed, { from: "HalfOpen", to: "Closed", openMillis: 0, consecutiveOpenings: 1 })
      })
    )

    it.effect("an ignored probe frees its slot; a failed probe reopens with the next backoff step", () =>
      Effect.gen(function* () {
        const c = yield* circuits({ config: config({ consecutiveFailures: 1, halfOpenPermittedCalls: 1 }) })
        const a = yield* c.admit("k")
        yield* c.record({ key: "k", generation: a.generation, outcome: "Failure", durationMillis: 0, hintMillis: 0 })
        yield* adjust(Duration.millis(openMillis))
        const p = yield* c.admit("k")
        assert.strictEqual((yield* c.admit("k")).verdict, "RejectHalfOpen")
        yield* c.record({ key: "k", generation: p.generation, outcome: "Ignored", durationMillis: 0, hintMillis: 0 })
        const again = yield* c.admit("k")
        assert.strictEqual(again.verdict, "Probe")
        const reopened = yield* c.record({
          key: "k",
          generation: again.generation,
          outcome: "Failure",
          durationMillis: 0,
          hintMillis: 0
        })
        assert.deepStrictEqual(reopened, {
          from: "HalfOpen",
          to: "Open",
          openMillis: openMillis * 2,
          consecutiveOpenings: 2
        })
      })
    )

    it.effect("drops an outcome whose generation is stale", () =>
      Effect.gen(function* () {
        const c = yield* circuits({ config: config({ consecutiveFailures: 1 }) })
        const early = yield* c.admit("k")
        const late = yield* c.admit("k")
        yield* c.record({ key: "k", generation: late.generation, outcome: "Failure", durationMillis: 0, hintMillis: 0 })
        const before = yield* c.read("k")
        // the early call finishes after the trip: its outcome changes nothing
        assert.strictEqual(
          yield* c.record({
            key: "k",
            generation: early.generation,
            outcome: "Success",
            durationMillis: 0,
            hintMillis: 0
          }),
          undefined
        )
        const after = yield* c.read("k")
        assert.deepStrictEqual([after.state, after.consecutiveOpenings], [before.state, before.consecutiveOpenings])
        assert.strictEqual(after.state, "Open")
      })
    )

    it.effect("forces manual states", () =>
      Effect.gen(function* () {
        const c = yield* circuits()
        assert.deepStrictEqual(yield* c.force("k", "ForcedOpen"), {
          from: "Closed",
          to: "ForcedOpen",
          openMillis: 0,
          consecutiveOpenings: 0
        })
        assert.strictEqual((yield* c.admit("k")).verdict, "RejectForced")
        yield* c.force("k", "Disabled")
        assert.strictEqual((yield* c.admit("k")).verdict, "Admit")
        yield* c.force("k", "Closed")
        assert.strictEqual((yield* c.read("k")).state, "Closed")
      })
    )

    it.effect("breakers sharing a store never share circuits", () =>
      Effect.gen(function* () {
        const a = yield* circuits({ name: "breaker-a", config: config({ consecutiveFailures: 1 }) })
        const b = yield* circuits({ name: "breaker-b", config: config({ consecutiveFailures: 1 }) })
        const admitted = yield* a.admit("shared-key")
        yield* a.record({
          key: "shared-key",
          generation: admitted.generation,
          outcome: "Failure",
          durationMillis: 0,
          hintMillis: 0
        })
        assert.strictEqual((yield* a.admit("shared-key")).verdict, "RejectOpen")
        assert.strictEqual((yield* b.admit("shared-key")).verdict, "Admit")
      })
    )

    it.effect("exports and imports circuits", () =>
      Effect.gen(function* () {
        const c = yield* circuits({ config: config({ consecutiveFailures: 3 }) })
        for (const outcome of ["Failure", "Success", "Failure"] as const) {
          const a = yield* c.admit("k")
          yield* c.record({ key: "k", generation: a.generation, outcome, durationMillis: 0, hintMillis: 0 })
        }
        const exported = yield* c.export
        const copy = yield* circuits({ config: config({ consecutiveFailures: 3 }) })
        yield* copy.import(exported)
        const restored = yield* copy.read("k")
        assert.deepStrictEqual([restored.calls, restored.failures, restored.consecutive], [3, 2, 1])
        assert.deepStrictEqual(yield* copy.export, exported)
      })
    )

    it.effect("concurrent admissions at the half-open instant admit exactly the permitted probes", () =>
      Effect.gen(function* () {
        const permitted = 3
        const c = yield* circuits({
          config: config({ consecutiveFailures: 1, halfOpenPermittedCalls: permitted, halfOpenSuccessesToClose: 1 })
        })
        yield* tripAndWait(c, "k")
        const admissions = yield* Effect.forEach(Array.from({ length: 1_000 }), () => c.admit("k"), {
          concurrency: "unbounded"
        })
        const verdicts = admissions.map((a) => a.verdict)
        assert.strictEqual(verdicts.filter((v) => v === "Probe").length, permitted)
        assert.strictEqual(verdicts.filter((v) => v === "RejectHalfOpen").length, 1_000 - permitted)
        // exactly one admission made the Open -> HalfOpen transition
        assert.deepStrictEqual(
          admissions.flatMap((a) => (a.transition === undefined ? [] : [`${a.transition.from}->${a.transition.to}`])),
          ["Open->HalfOpen"]
        )
        const circuit = yield* c.read("k")
        assert.deepStrictEqual([circuit.state, circuit.probesAdmitted, circuit.probesInFlight], ["HalfOpen", 3, 3])
      })
    )

    it.effect("holds at most maxKeys circuits, and a flood of closed keys does not evict an open one", () =>
      Effect.gen(function* () {
        const c = yield* circuits({ config: config({ consecutiveFailures: 1 }), maxKeys: 4 })
        yield* runCall(c, "open", "Failure")
        for (let i = 0; i < 20; i++) {
          yield* runCall(c, `closed-${i}`, "Success")
          assert.isAtMost(yield* c.size, 4)
        }
        assert.strictEqual(yield* c.size, 4)
        assert.strictEqual((yield* c.admit("open")).verdict, "RejectOpen")
        // the newest key is held with its outcome
        assert.strictEqual((yield* c.read("closed-19")).calls, 1)
      })
    )

    it.effect("a time-based window counts only the outcomes of the last window", () =>
      Effect.gen(function* () {
        // ten buckets spanning openMillis
        const c = yield* circuits({
          config: config({
            consecutiveFailures: 0,
            failureRateThreshold: 0.6,
            windowType: "time",
            windowSize: 10,
            bucketMillis: openMillis / 10,
            minimumCalls: 3
          })
        })
        yield* runCall(c, "k", "Failure")
        yield* runCall(c, "k", "Failure")
        // a window and a bucket later: the calls land in another bucket than the failures, which expired
        yield* adjust(Duration.millis(openMillis + openMillis / 10))
        // the two failures left the window: 1 of 3 stays below 0.6 (3 of 5 would trip)
        for (const outcome of ["Success", "Success", "Failure"] as const) {
          assert.strictEqual(yield* runCall(c, "k", outcome), undefined)
        }
        const closed = yield* c.read("k")
        assert.deepStrictEqual([closed.state, closed.calls, closed.failures], ["Closed", 3, 1])
        yield* adjust(Duration.millis(openMillis / 2))
        assert.strictEqual(yield* runCall(c, "k", "Failure"), undefined) // 2 of 4
        // 3 of 5 = 0.6
        assert.deepStrictEqual(yield* runCall(c, "k", "Failure"), {
          from: "Closed",
          to: "Open",
          openMillis,
          consecutiveOpenings: 1
        })
      })
    )

    it.effect("halfOpenMaxMillis reopens a circuit whose probes never complete, at the next admission", () =>
      Effect.gen(function* () {
        const c = yield* circuits({
          config: config({ consecutiveFailures: 1, halfOpenPermittedCalls: 1, halfOpenMaxMillis: openMillis })
        })
        yield* tripAndWait(c, "k")
        assert.strictEqual((yield* c.admit("k")).verdict, "Probe") // never recorded
        yield* adjust(Duration.millis(openMillis / 2))
        assert.strictEqual((yield* c.admit("k")).verdict, "RejectHalfOpen")
        yield* adjust(Duration.millis(openMillis / 2))
        const reopened = yield* c.admit("k")
        assert.strictEqual(reopened.verdict, "RejectOpen")
        assert.deepStrictEqual(reopened.transition, {
          from: "HalfOpen",
          to: "Open",
          openMillis: openMillis * 2,
          consecutiveOpenings: 2
        })
        assert.isTrue(reopened.retryAfterMillis > openMillis && reopened.retryAfterMillis <= openMillis * 2)
      })
    )

    it.effect("success-rate mode decides once every permitted probe completed: closes at the rate, reopens below", () =>
      Effect.gen(function* () {
        const c = yield* circuits({
          config: config({ consecutiveFailures: 1, halfOpenPermittedCalls: 4, halfOpenSuccessRate: 0.75 })
        })
        const probeRound = (key: string, outcomes: ReadonlyArray<Outcome>) =>
          Effect.gen(function* () {
            const admissions = []
            for (let i = 0; i < outcomes.length; i++) admissions.push(yield* c.admit(key))
            assert.deepStrictEqual(
              admissions.map((a) => a.verdict),
              outcomes.map(() => "Probe")
            )
            const transitions = []
            for (const [i, outcome] of outcomes.entries()) {
              const generation = admissions[i]?.generation ?? -1
              transitions.push(yield* c.record({ key, generation, outcome, durationMillis: 0, hintMillis: 0 }))
            }
            return transitions
          })
        yield* tripAndWait(c, "closes")
        // a failed probe does not reopen in rate mode; 3 of 4 = 0.75 closes
        assert.deepStrictEqual(yield* probeRound("closes", ["Success", "Failure", "Success", "Success"]), [
          undefined,
          undefined,
          undefined,
          { from: "HalfOpen", to: "Closed", openMillis: 0, consecutiveOpenings: 1 }
        ])
        yield* tripAndWait(c, "reopens")
        // 2 of 4 = 0.5: reopens with the next backoff step
        assert.deepStrictEqual(yield* probeRound("reopens", ["Success", "Failure", "Failure", "Success"]), [
          undefined,
          undefined,
          undefined,
          { from: "HalfOpen", to: "Open", openMillis: openMillis * 2, consecutiveOpenings: 2 }
        ])
      })
    )

    it.effect("a failure's retry-after hint lengthens the opening, never shortens it, capped at maxOpenMillis", () =>
      Effect.gen(function* () {
        const c = yield* circuits({ config: config({ consecutiveFailures: 1, maxOpenMillis: openMillis * 5 }) })
        const longer = yield* runCall(c, "longer", "Failure", openMillis * 3)
        assert.strictEqual(longer?.openMillis, openMillis * 3)
        const rejected = yield* c.admit("longer")
        assert.strictEqual(rejected.verdict, "RejectOpen")
        assert.isTrue(rejected.retryAfterMillis > openMillis * 2 && rejected.retryAfterMillis <= openMillis * 3)
        assert.strictEqual((yield* runCall(c, "shorter", "Failure", openMillis / 2))?.openMillis, openMillis)
        assert.strictEqual((yield* runCall(c, "capped", "Failure", openMillis * 100))?.openMillis, openMillis * 5)
      })
    )

    it.effect("a store's synchronous `local` twin, if any, holds the state its effectful operations act on", () =>
      Effect.gen(function* () {
        const c = yield* circuits({ config: config({ consecutiveFailures: 1 }) })
        const local = c.local
        if (local === undefined) return // a remote store: the breaker takes its effectful path
        yield* runCall(c, "k", "Failure")
        assert.strictEqual(local.peek("k")?.state, "Open")
        assert.strictEqual(local.size(), yield* c.size)
        // a change made through the twin is what the effectful operations read
        const inserted = local.insert("fresh", 0)
        inserted.consecutive = 7
        assert.strictEqual((yield* c.read("fresh")).consecutive, 7)
        assert.strictEqual(yield* c.size, 2)
      })
    )
  })

  describe(`CircuitBreaker over the store: ${name}`, () => {
    const make = (options: CircuitBreaker.Input) =>
      CircuitBreaker.make({ name: `suite-${Math.random().toString(36).slice(2)}`, ...options }).pipe(
        Effect.provide(layer)
      )
    const tag = (exit: Exit.Exit<unknown, unknown>): string => {
      if (Exit.isSuccess(exit)) return "ok"
      const error = exit.cause.reasons.find((r) => r._tag === "Fail")
      if (error === undefined || error._tag !== "Fail") return "interrupt-or-defect"
      return CircuitBreaker.isCircuitBreakerError(error.error)
        ? error.error.reason._tag
        : String(Reflect.get(Object(error.error), "_tag"))
    }
    const call = (breaker: CircuitBreaker.CircuitBreaker, effect: Effect.Effect<unknown, Boom>) =>
      Effect.map(Effect.exit(CircuitBreaker.protect(effect, breaker)), tag)

    it.effect("trips, rejects with the time left, probes and closes, publishing transitions and health", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 2, openDuration: Duration.millis(openMillis) })
        const events = yield* breaker.subscribe
        assert.strictEqual(yield* call(breaker, Effect.fail(new Boom())), "Boom")
        assert.strictEqual(yield* call(breaker, Effect.fail(new Boom())), "Boom")
        const rejected = yield* Effect.flip(CircuitBreaker.protect(Effect.succeed(1), breaker))
        assert.isTrue(CircuitBreaker.isRejection(rejected))
        const retryAfter = rejected.reason._tag === "CircuitOpen" ? Duration.toMillis(rejected.reason.retryAfter) : -1
        assert.isTrue(retryAfter > 0 && retryAfter <= openMillis)
        assert.strictEqual(yield* breaker.health(), "unhealthy")
        yield* adjust(Duration.millis(openMillis))
        assert.strictEqual(yield* call(breaker, Effect.succeed(1)), "ok")
        assert.strictEqual((yield* breaker.state())._tag, "Closed")
        assert.strictEqual(yield* breaker.health(), "healthy")
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.successes, stats.failures, stats.rejected], [1, 2, 1])
        const received = yield* Queue.takeAll(events)
        const seen = (e: CircuitBreaker.Event) =>
          e._tag === "StateTransition" ? [`${e.from}->${e.to}`] : e._tag === "HealthChanged" ? [`health:${e.to}`] : []
        assert.deepStrictEqual(received.flatMap(seen), [
          "Closed->Open",
          "health:unhealthy",
          "Open->HalfOpen",
          "health:degraded",
          "HalfOpen->Closed",
          "health:healthy"
        ])
      })
    )

    it.effect("many fibres at the half-open instant: exactly the permitted probes run", () =>
      Effect.gen(function* () {
        const permitted = 3
        const fibres = 1_000
        const breaker = yield* make({
          consecutiveFailures: 1,
          openDuration: Duration.millis(openMillis),
          halfOpenPermittedCalls: permitted,
          halfOpenSuccessesToClose: permitted
        })
        yield* call(breaker, Effect.fail(new Boom()))
        yield* adjust(Duration.millis(openMillis))
        const gate = yield* Deferred.make<void>()
        let running = 0
        const probe = Effect.suspend(() => {
          running++
          return Deferred.await(gate)
        })
        const fibers = yield* Effect.forEach(Array.from({ length: fibres }), () =>
          Effect.forkChild(call(breaker, probe))
        )
        for (let i = 0; i < 1_000 && running + (yield* breaker.stats).rejected < fibres; i++) yield* Effect.yieldNow
        assert.strictEqual(running, permitted)
        assert.strictEqual((yield* breaker.stats).rejected, fibres - permitted)
        yield* Deferred.succeed(gate, undefined)
        const results = yield* Effect.forEach(fibers, Fiber.join)
        assert.strictEqual(results.filter((r) => r === "ok").length, permitted)
        assert.strictEqual(results.filter((r) => r === "CircuitHalfOpen").length, fibres - permitted)
        assert.strictEqual((yield* breaker.state())._tag, "Closed")
      })
    )

    it.effect("an interrupted probe frees its slot and counts as nothing", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1, openDuration: Duration.millis(openMillis) })
        yield* call(breaker, Effect.fail(new Boom()))
        yield* adjust(Duration.millis(openMillis))
        const probe = yield* Effect.forkChild(CircuitBreaker.protect(Effect.never, breaker))
        yield* Effect.yieldNow
        assert.strictEqual(yield* call(breaker, Effect.succeed(1)), "CircuitHalfOpen")
        yield* Fiber.interrupt(probe)
        const state = yield* breaker.state()
        assert.deepStrictEqual(state._tag === "HalfOpen" ? [state.probesAdmitted, state.probesInFlight] : [], [0, 0])
        assert.strictEqual((yield* breaker.stats).ignored, 1)
        assert.strictEqual(yield* call(breaker, Effect.succeed(1)), "ok")
        assert.strictEqual((yield* breaker.state())._tag, "Closed")
      })
    )

    it.effect("forced states reach the store and publish health", () =>
      Effect.gen(function* () {
        const breaker = yield* make({ consecutiveFailures: 1 })
        const events = yield* breaker.subscribe
        yield* breaker.forceOpen("k")
        assert.strictEqual((yield* breaker.state("k"))._tag, "ForcedOpen")
        const rejected = yield* Effect.flip(CircuitBreaker.protect(Effect.succeed(1), breaker, { key: "k" }))
        assert.strictEqual(rejected.reason._tag === "CircuitOpen" ? rejected.reason.state : "", "ForcedOpen")
        yield* breaker.disable("k")
        assert.strictEqual((yield* breaker.state("k"))._tag, "Disabled")
        yield* breaker.reset("k")
        assert.strictEqual((yield* breaker.state("k"))._tag, "Closed")
        const health = (yield* Queue.takeAll(events)).flatMap((e) => (e._tag === "HealthChanged" ? [e.to] : []))
        assert.deepStrictEqual(health, ["unhealthy", "healthy"])
      })
    )
  })
}
