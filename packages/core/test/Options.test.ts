import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, CircuitBreaker, Options, RateLimiter } from "@effect-resilience/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

describe("Options", () => {
  it.effect("an option given as undefined means its default, in every pattern", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.validateOptions({ maxKeys: undefined, openDuration: undefined })
      assert.strictEqual(breaker.maxKeys, (yield* CircuitBreaker.validateOptions({})).maxKeys)
      const limiter = yield* RateLimiter.validateOptions({
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 second" }],
        maxKeys: undefined,
        maxWait: undefined
      })
      assert.isUndefined(limiter.maxKeys)
      const bulkhead = yield* Bulkhead.validateOptions({ maxConcurrent: undefined, maxWait: undefined })
      const defaults = yield* Bulkhead.validateOptions({})
      assert.deepStrictEqual(
        [bulkhead.maxConcurrent, Duration.toMillis(bulkhead.maxWait)],
        [defaults.maxConcurrent, Duration.toMillis(defaults.maxWait)]
      )
    })
  )

  it("normalizeDurations drops undefined fields and reports every bad duration", () => {
    const { issues, normalized } = Options.normalizeDurations({ a: undefined, b: "1 second", c: "soon", d: 3 }, [
      "a",
      "b",
      "c"
    ])
    assert.deepStrictEqual(Object.keys(normalized).sort(), ["b", "c", "d"])
    assert.isTrue(Duration.isDuration(normalized.b))
    assert.deepStrictEqual(
      issues.map((issue) => issue.path),
      ["c"]
    )
  })

  it("positiveDuration flags a zero duration only, with the message every pattern uses", () => {
    const rule = Options.positiveDuration("interval")
    assert.deepStrictEqual(rule({ interval: Duration.zero }), [
      { path: "interval", message: "Expected a duration greater than zero" }
    ])
    // above zero, left out, or not a duration (that has an issue of its own): nothing
    assert.deepStrictEqual(
      [rule({ interval: Duration.millis(1) }), rule({}), rule({ interval: "soon" }), rule({ other: Duration.zero })],
      [[], [], [], []]
    )
  })
})
