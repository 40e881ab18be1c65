import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, CircuitBreaker, Options, RateLimiter } from "@effect-resilience/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"

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

  it("withDefaults: each field is the input's when defined, else the default's", () => {
    const defaults = { name: "default", maxKeys: 10_000, enabled: true, wait: Duration.seconds(1) } as const
    // each field absent, given as undefined or set; `other` is not an option with a default
    const input = fc.record(
      {
        name: fc.option(fc.string(), { nil: undefined }),
        maxKeys: fc.option(fc.integer(), { nil: undefined }),
        enabled: fc.option(fc.boolean(), { nil: undefined }),
        wait: fc.option(
          fc.nat().map((millis) => Duration.millis(millis)),
          { nil: undefined }
        ),
        other: fc.option(fc.string(), { nil: undefined })
      },
      { requiredKeys: [] }
    )
    fc.assert(
      fc.property(input, (o) => {
        const resolved = Options.withDefaults(o, defaults)
        assert.deepStrictEqual(Object.keys(resolved), Object.keys(defaults))
        assert.strictEqual(resolved.name, o.name !== undefined ? o.name : defaults.name)
        assert.strictEqual(resolved.maxKeys, o.maxKeys !== undefined ? o.maxKeys : defaults.maxKeys)
        assert.strictEqual(resolved.enabled, o.enabled !== undefined ? o.enabled : defaults.enabled)
        assert.strictEqual(resolved.wait, o.wait !== undefined ? o.wait : defaults.wait)
      })
    )
  })

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
