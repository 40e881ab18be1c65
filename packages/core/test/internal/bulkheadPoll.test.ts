import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as poll from "../../src/internal/bulkheadPoll.ts"

/** A valid schedule: base > 0, cap >= base. */
const configArb: fc.Arbitrary<poll.PollConfig> = fc
  .record({ base: fc.integer({ min: 1, max: 1_000 }), extra: fc.integer({ min: 0, max: 60_000 }) })
  .map(({ base, extra }) => ({ baseMillis: base, capMillis: base + extra }))

const randomArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
const pollArb = fc.integer({ min: 1, max: 10_000 })
const remainingArb = fc.oneof(
  fc.double({ min: 0, max: 1e7, noNaN: true }),
  fc.constant(Number.POSITIVE_INFINITY),
  fc.constant(0)
)

describe("bulkheadPoll: the waiters' polling schedule", () => {
  it("every wait is within [temp / 2, temp], temp = min(cap, base * 2 ** (poll - 1)), cut to the time left", () =>
    fc.assert(
      fc.property(configArb, pollArb, randomArb, remainingArb, (config, n, random, remaining) => {
        const d = poll.pollDelay(config, n, random, remaining)
        const temp = Math.min(config.capMillis, config.baseMillis * 2 ** (n - 1))
        const [lo, hi] = poll.pollBounds(config, n)
        assert.strictEqual(lo, temp / 2)
        assert.strictEqual(hi, temp)
        assert.isTrue(d >= Math.min(lo, remaining) && d <= Math.min(hi, remaining), `${d} in [${lo}, ${hi}]`)
      })
    ))

  it("never longer than the cap nor the time left, never negative, and at least base / 2 while time is left", () =>
    fc.assert(
      fc.property(configArb, pollArb, randomArb, remainingArb, (config, n, random, remaining) => {
        const d = poll.pollDelay(config, n, random, remaining)
        assert.isTrue(d >= 0 && d <= config.capMillis && d <= remaining)
        if (remaining >= config.capMillis) assert.isAtLeast(d, config.baseMillis / 2)
      })
    ))

  it("the bounds never shrink from one poll to the next, and reach the cap", () =>
    fc.assert(
      fc.property(configArb, pollArb, (config, n) => {
        const [lo, hi] = poll.pollBounds(config, n)
        const [nextLo, nextHi] = poll.pollBounds(config, n + 1)
        assert.isTrue(nextLo >= lo && nextHi >= hi)
        assert.strictEqual(poll.pollBounds(config, 64)[1], config.capMillis)
      })
    ))

  it("a waiter polls at most 2 + 2 * (window / cap) + 2 * log2(cap / base) times in a window", () =>
    fc.assert(
      fc.property(
        configArb,
        fc.array(randomArb, { minLength: 1, maxLength: 64 }),
        fc.integer({ min: 1, max: 120_000 }),
        (config, randoms, window) => {
          let elapsed = 0
          let polls = 0
          for (let n = 1; elapsed < window; n++) {
            elapsed += poll.pollDelay(config, n, randoms[n % randoms.length] ?? 0, Number.POSITIVE_INFINITY)
            polls++
          }
          const ramp = Math.ceil(Math.log2(config.capMillis / config.baseMillis)) + 1
          assert.isAtMost(polls, 2 + 2 * Math.ceil(window / config.capMillis) + 2 * ramp)
        }
      )
    ))
})

describe("bulkheadPoll: a process's line", () => {
  const placeArb = fc.record({ priority: fc.integer({ min: -2, max: 2 }), seq: fc.nat() })

  it("inserting at placeOf keeps the line in serving order: priority first, then arrival", () =>
    fc.assert(
      fc.property(fc.array(placeArb, { maxLength: 40 }), (arrivals) => {
        const line: Array<poll.Place> = []
        arrivals.forEach((arrival, i) => {
          const w = { priority: arrival.priority, seq: i }
          line.splice(poll.placeOf(line, w), 0, w)
        })
        const sorted = [...line].sort((a, b) => b.priority - a.priority || a.seq - b.seq)
        assert.deepStrictEqual(line, sorted)
      })
    ))

  it("an arrival goes first only when it outranks every waiter", () =>
    fc.assert(
      fc.property(fc.array(placeArb, { maxLength: 20 }), fc.integer({ min: -3, max: 3 }), (arrivals, priority) => {
        const line: Array<poll.Place> = []
        arrivals.forEach((arrival, i) => {
          const w = { priority: arrival.priority, seq: i }
          line.splice(poll.placeOf(line, w), 0, w)
        })
        const top = line[0]?.priority
        assert.strictEqual(poll.mayGoFirst(line, priority), top === undefined || priority > top)
        // going first is going to the head of the line
        if (poll.mayGoFirst(line, priority)) assert.strictEqual(poll.placeOf(line, { priority, seq: line.length }), 0)
      })
    ))
})
