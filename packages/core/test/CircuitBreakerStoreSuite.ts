/**
 * The `CircuitBreakerStore` contract as a reusable suite: every store (memory
 * here; Redis and Redis Cluster in @effect-resilience/redis) runs the same
 * cases, so the implementations cannot drift.
 *
 * Time: the cases move time with `TestClock.adjust`; a store that reads
 * another clock (Redis `TIME`) passes `adjust` that waits for real instead,
 * and durations small enough to do so.
 */

import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "@effect-resilience/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import { TestClock } from "effect/testing"

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
  })
}
