import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { differences, headingSlug, renderSuite, runSuite, schedule, stats } from "./bench/harness.ts"

describe("bench harness", () => {
  it("stats: the median splits the sample and min <= median <= max", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true, min: -1e9, max: 1e9 }), { minLength: 1, maxLength: 50 }), (xs) => {
        const s = stats(xs)
        const below = xs.filter((x) => x < s.median).length
        const above = xs.filter((x) => x > s.median).length
        return (
          s.min === Math.min(...xs) &&
          s.max === Math.max(...xs) &&
          s.min <= s.median &&
          s.median <= s.max &&
          below <= xs.length / 2 &&
          above <= xs.length / 2
        )
      })
    )
  })

  it("schedule: every round runs each contender once, and each contender takes each position equally often", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 6 }), (contenders, cycles) => {
        const rounds = schedule(contenders, contenders * cycles)
        const everyRoundComplete = rounds.every(
          (order) => [...order].sort((a, b) => a - b).join() === [...Array(contenders).keys()].join()
        )
        const positions = Array.from({ length: contenders }, (_, c) =>
          Array.from({ length: contenders }, (_, p) => rounds.filter((order) => order[p] === c).length)
        )
        return everyRoundComplete && positions.every((counts) => counts.every((n) => n === cycles))
      })
    )
  })

  it("differences: pairwise per round", () => {
    assert.deepStrictEqual(differences([10, 20, 30], [1, 2, 3]), [9, 18, 27])
  })

  it("runSuite interleaves contenders and reports added time over the baseline", async () => {
    const calls: Array<string> = []
    const result = await runSuite(
      {
        id: "t",
        title: "T",
        description: "d",
        iterations: 10_000,
        rounds: 3,
        warmup: 0,
        baseline: "a",
        contenders: [
          { name: "a", library: "x", run: () => void calls.push("a") },
          { name: "b", library: "x", run: () => void calls.push("b") }
        ]
      },
      { quick: false }
    )
    assert.deepStrictEqual(calls, ["a", "b", "b", "a", "a", "b"])
    assert.strictEqual(result.results[0]?.addedNs, undefined)
    assert.isDefined(result.results[1]?.addedNs)
    const md = renderSuite(result)
    assert.include(md, "| a | x |")
    assert.include(md, "(baseline)")
    assert.include(md, `Node ${process.version}`)
  })

  it("headingSlug: the anchors GitHub gives the suites' headings", () => {
    assert.deepStrictEqual(
      [
        "Circuit breaker: successful call (Effect)",
        "Policy: successful call through retry, breaker and attempt timeout",
        "LoadBalancer: a call over 10 endpoints",
        "Registry: a policy looked up by name at call time vs the same Policy applied directly"
      ].map(headingSlug),
      [
        "circuit-breaker-successful-call-effect",
        "policy-successful-call-through-retry-breaker-and-attempt-timeout",
        "loadbalancer-a-call-over-10-endpoints",
        "registry-a-policy-looked-up-by-name-at-call-time-vs-the-same-policy-applied-directly"
      ]
    )
  })
})
