import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as chaos from "../../src/internal/chaos.ts"

const sum = (weights: ReadonlyArray<number>): number => weights.reduce((total, w) => total + w, 0)

/** Weights as options give them: zeros mixed with positive integers and fractions. */
const weightsArb: fc.Arbitrary<ReadonlyArray<number>> = fc.array(
  fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 }), fc.double({ min: 0.001, max: 100, noNaN: true })),
  { minLength: 1, maxLength: 8 }
)

describe("internal/chaos", () => {
  it("pickWeighted: always an index of a positive weight (-1 when there is none), whatever the draw", () => {
    fc.assert(
      fc.property(weightsArb, fc.double({ noNaN: false }), (weights, r) => {
        const index = chaos.pickWeighted(weights, r)
        if (sum(weights) === 0) return index === -1
        return (weights[index] ?? 0) > 0
      })
    )
  })

  it("pickWeighted: the index whose cumulative interval holds the draw, and monotone in the draw", () => {
    fc.assert(
      fc.property(
        weightsArb,
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (weights, r, s) => {
          const total = sum(weights)
          if (total === 0) return true
          const index = chaos.pickWeighted(weights, r)
          const before = sum(weights.slice(0, index))
          const weight = weights[index] ?? 0
          const target = r * total
          // within rounding of the running sums
          const holds = target >= before - 1e-9 * total && target < before + weight + 1e-9 * total
          const [low, high] = r <= s ? [r, s] : [s, r]
          return holds && chaos.pickWeighted(weights, low) <= chaos.pickWeighted(weights, high)
        }
      )
    )
  })

  it("pickWeighted: over evenly spread draws, each index is picked in proportion to its weight", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 6 }), (weights) => {
        const total = sum(weights)
        if (total === 0) return chaos.pickWeighted(weights, 0.5) === -1
        const n = total * 20
        const counts = weights.map(() => 0)
        for (let i = 0; i < n; i++) {
          const index = chaos.pickWeighted(weights, (i + 0.5) / n)
          counts[index] = (counts[index] ?? 0) + 1
        }
        return counts.every((count, i) => count === (weights[i] ?? 0) * 20)
      })
    )
  })

  it("parseAbortHeader: a status in [200, 600) written as three digits, or nothing", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.integer({ min: -10, max: 1000 }).map(String)), (text) => {
        const status = chaos.parseAbortHeader(text)
        const expected =
          /^\s*\d{3}\s*$/.test(text) && Number(text) >= 200 && Number(text) < 600 ? Number(text) : undefined
        return status === expected
      })
    )
    assert.deepStrictEqual(["503", " 429 ", "199", "600", "5e2", "0503", "", undefined].map(chaos.parseAbortHeader), [
      503,
      429,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined
    ])
  })

  it("parseDelayHeader: whole milliseconds capped at the maximum, or nothing", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 100_000 }), (n, max) => {
        return (
          chaos.parseDelayHeader(String(n), max) === Math.min(n, max) &&
          chaos.parseDelayHeader(`-${n}`, max) === undefined &&
          chaos.parseDelayHeader(`${n}.5`, max) === undefined
        )
      })
    )
    assert.deepStrictEqual(
      ["200", "soon", "", undefined].map((v) => chaos.parseDelayHeader(v, 1000)),
      [200, undefined, undefined, undefined]
    )
  })

  it("matchesHost: a host with or without its port, host:port exactly, *.suffix for subdomains only", () => {
    const patterns = ["api.internal", "*.example.com", "db.internal:5432", "[::1]"]
    const hosts = [
      "api.internal",
      "API.internal:8080",
      "a.b.example.com",
      "example.com",
      "db.internal",
      "db.internal:5432",
      "[::1]:80",
      "other.internal"
    ]
    assert.deepStrictEqual(
      hosts.map((host) => chaos.matchesHost(host, patterns)),
      [true, true, true, false, false, true, true, false]
    )
  })

  it("matchesHeaders: every selected header present, with its value or any for true", () => {
    const selector = [
      ["x-canary", true],
      ["x-tenant", "acme"]
    ] as const
    assert.isTrue(chaos.matchesHeaders({ "x-canary": "", "x-tenant": "acme" }, selector))
    assert.isFalse(chaos.matchesHeaders({ "x-tenant": "acme" }, selector))
    assert.isFalse(chaos.matchesHeaders({ "x-canary": "1", "x-tenant": "ACME" }, selector))
    assert.isTrue(chaos.matchesHeaders({}, []))
  })

  it("retryAfterSeconds: whole seconds rounded up, never negative", () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e9, noNaN: true }), (millis) => {
        const seconds = Number(chaos.retryAfterSeconds(millis))
        return (
          Number.isInteger(seconds) &&
          seconds >= 0 &&
          seconds * 1000 >= millis &&
          (seconds === 0 || (seconds - 1) * 1000 < millis)
        )
      })
    )
  })
})
