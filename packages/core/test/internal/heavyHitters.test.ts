import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as hh from "../../src/internal/heavyHitters.ts"

// ---------------------------------------------------------------------------
// reference model and helpers
// ---------------------------------------------------------------------------

/** The exact (decayed) weight of every key: a map of every key, which the sketch avoids. */
class Exact {
  readonly counts = new Map<string, number>()
  total = 0
  add(key: string, weight: number): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + weight)
    this.total += weight
  }
  scale(factor: number): void {
    for (const [key, count] of this.counts) this.counts.set(key, count * factor)
    this.total *= factor
  }
  of(key: string): number {
    return this.counts.get(key) ?? 0
  }
}

/** One request: its client and its cost. */
interface Step {
  readonly key: string
  readonly weight: number
}

/**
 * Skewed clients: a few hot keys most of the time, otherwise a long tail where
 * low indices are much likelier than high ones (a cubed uniform draw).
 */
const keyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("hot-a", "hot-b", "hot-c") },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 999 }).map((u) => `k${Math.floor(40 * (u / 1000) ** 3)}`) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 39 }).map((i) => `k${i}`) }
)

/** Integer costs, mostly small, so that every sum is exact in float64. */
const weightArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 5 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 100 }) }
)

const stepArb: fc.Arbitrary<Step> = fc.record({ key: keyArb, weight: weightArb })

const streamArb: fc.Arbitrary<ReadonlyArray<Step>> = fc.array(stepArb, { maxLength: 200 })

const capacityArb: fc.Arbitrary<number> = fc.integer({ min: 1, max: 8 })

/** Decay factors that are dyadic fractions: with integer weights every product and sum stays exact. */
const dyadicFactorArb: fc.Arbitrary<number> = fc.constantFrom(1, 0.5, 0.75, 0.25, 0.875, 0.375)

/** Every tracked entry, heaviest first. */
const all = (sketch: hh.Sketch): ReadonlyArray<hh.Entry> => hh.top(sketch, hh.size(sketch))

/** The least tracked count; 0 when nothing is tracked. */
const leastCount = (sketch: hh.Sketch): number => {
  const entries = all(sketch)
  return entries[entries.length - 1]?.count ?? 0
}

/** The slot arrays, the index and the heap describe the same keys, and the heap is ordered. */
const assertConsistent = (sketch: hh.Sketch): void => {
  const n = hh.size(sketch)
  assert.isAtMost(n, sketch.capacity)
  assert.strictEqual(sketch.counts.length, n)
  assert.strictEqual(sketch.errors.length, n)
  assert.strictEqual(sketch.heap.length, n)
  assert.strictEqual(sketch.position.length, n)
  assert.strictEqual(sketch.index.size, n)
  for (let s = 0; s < n; s++) {
    assert.strictEqual(sketch.index.get(sketch.keys[s] ?? ""), s)
    assert.strictEqual(sketch.heap[sketch.position[s] ?? -1], s)
  }
  for (let i = 1; i < n; i++) {
    const parent = sketch.counts[sketch.heap[(i - 1) >> 1] ?? -1] ?? Number.NaN
    const child = sketch.counts[sketch.heap[i] ?? -1] ?? Number.NaN
    assert.isAtMost(parent, child)
  }
}

/** Every tracked estimate brackets the true count. */
const assertBrackets = (sketch: hh.Sketch, exact: Exact): void => {
  for (const { key, count, error } of all(sketch)) {
    const truth = exact.of(key)
    assert.isAtLeast(error, 0)
    assert.isAtMost(count - error, truth, `lower bound of ${key}`)
    assert.isAtMost(truth, count, `upper bound of ${key}`)
  }
}

/** Untracked keys weigh at most the least count (0 when a counter is free), so heavy hitters are tracked. */
const assertHeavyTracked = (sketch: hh.Sketch, exact: Exact): void => {
  const floor = hh.size(sketch) < sketch.capacity ? 0 : leastCount(sketch)
  for (const [key, truth] of exact.counts) {
    if (truth > exact.total / sketch.capacity) assert.isTrue(sketch.index.has(key), `${key} is a heavy hitter`)
    if (!sketch.index.has(key)) assert.isAtMost(truth, floor, `untracked ${key}`)
  }
}

const sumOfCounts = (sketch: hh.Sketch): number => sketch.counts.reduce((sum, c) => sum + c, 0)

// ---------------------------------------------------------------------------
// examples
// ---------------------------------------------------------------------------

describe("heavyHitters", () => {
  it("replaces the least counter and carries its count as the newcomer's error", () => {
    const s = hh.make(2)
    hh.add(s, "a", 5)
    hh.add(s, "b", 3)
    assert.deepStrictEqual(hh.top(s, 10), [
      { key: "a", count: 5, error: 0 },
      { key: "b", count: 3, error: 0 }
    ])
    // full: "c" takes b's counter (3), so its count 4 over-estimates its true 1 by at most 3
    hh.add(s, "c", 1)
    assert.deepStrictEqual(hh.top(s, 10), [
      { key: "a", count: 5, error: 0 },
      { key: "c", count: 4, error: 3 }
    ])
    // "b" comes back and takes c's counter (4): true count 5, in [6 - 4, 6]
    hh.add(s, "b", 2)
    assert.deepStrictEqual(hh.top(s, 10), [
      { key: "b", count: 6, error: 4 },
      { key: "a", count: 5, error: 0 }
    ])
    hh.add(s, "a", 2)
    assert.deepStrictEqual(hh.top(s, 1), [{ key: "a", count: 7, error: 0 }])
    assert.strictEqual(hh.size(s), 2)
    assert.strictEqual(sumOfCounts(s), 13)
    // halve: everything halves, the order stays
    hh.decay(s, 0.5)
    assert.deepStrictEqual(hh.top(s, 10), [
      { key: "a", count: 3.5, error: 0 },
      { key: "b", count: 3, error: 2 }
    ])
    hh.clear(s)
    assert.strictEqual(hh.size(s), 0)
    assert.deepStrictEqual(hh.top(s, 10), [])
    hh.add(s, "z", 1)
    assert.deepStrictEqual(hh.top(s, 10), [{ key: "z", count: 1, error: 0 }])
  })

  it("equal counts come out by key", () => {
    const s = hh.make(4)
    for (const key of ["d", "b", "c", "a"]) hh.add(s, key, 2)
    assert.deepStrictEqual(
      hh.top(s, 4).map((e) => e.key),
      ["a", "b", "c", "d"]
    )
  })

  it("normalizes inputs outside their domain instead of throwing", () => {
    assert.strictEqual(hh.make(0).capacity, 1)
    assert.strictEqual(hh.make(-3).capacity, 1)
    assert.strictEqual(hh.make(Number.NaN).capacity, 1)
    assert.strictEqual(hh.make(2.7).capacity, 2)

    const s = hh.make(3)
    for (const weight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) hh.add(s, "x", weight)
    assert.strictEqual(hh.size(s), 0)
    hh.add(s, "x", 4)
    hh.add(s, "y", 2)
    assert.deepStrictEqual(hh.top(s, -1), [])
    assert.deepStrictEqual(hh.top(s, Number.NaN), [])
    assert.deepStrictEqual(hh.top(s, 0.9), [])
    assert.deepStrictEqual(hh.top(s, 1.9), [{ key: "x", count: 4, error: 0 }])
    assert.strictEqual(hh.top(s, Number.POSITIVE_INFINITY).length, 2)

    hh.decay(s, Number.NaN)
    hh.decay(s, 1)
    hh.decay(s, 2)
    assert.deepStrictEqual(hh.top(s, 1), [{ key: "x", count: 4, error: 0 }])
    hh.decay(s, 0)
    assert.strictEqual(hh.size(s), 0)
  })

  // -------------------------------------------------------------------------
  // properties
  // -------------------------------------------------------------------------

  it("memory is bounded: at most capacity keys, with slots, index and heap consistent", () => {
    fc.assert(
      fc.property(capacityArb, streamArb, (capacity, stream) => {
        const s = hh.make(capacity)
        for (const { key, weight } of stream) {
          hh.add(s, key, weight)
          assertConsistent(s)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("every tracked estimate brackets the true count: count - error <= true <= count", () => {
    fc.assert(
      fc.property(capacityArb, streamArb, (capacity, stream) => {
        const s = hh.make(capacity)
        const exact = new Exact()
        for (const { key, weight } of stream) {
          hh.add(s, key, weight)
          exact.add(key, weight)
          assertBrackets(s, exact)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("every key heavier than total / capacity is tracked; no untracked key outweighs the least count", () => {
    fc.assert(
      fc.property(capacityArb, streamArb, (capacity, stream) => {
        const s = hh.make(capacity)
        const exact = new Exact()
        for (const { key, weight } of stream) {
          hh.add(s, key, weight)
          exact.add(key, weight)
          assertHeavyTracked(s, exact)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("without decay, counts sum to the total weight added", () => {
    fc.assert(
      fc.property(capacityArb, streamArb, (capacity, stream) => {
        const s = hh.make(capacity)
        let total = 0
        for (const { key, weight } of stream) {
          hh.add(s, key, weight)
          total += weight
          assert.strictEqual(sumOfCounts(s), total)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("top(n) gives min(n, size) distinct tracked keys, heaviest first, and is a prefix of the full ranking", () => {
    fc.assert(
      fc.property(capacityArb, streamArb, fc.integer({ min: -2, max: 12 }), (capacity, stream, n) => {
        const s = hh.make(capacity)
        for (const { key, weight } of stream) hh.add(s, key, weight)
        const entries = hh.top(s, n)
        assert.strictEqual(entries.length, Math.max(0, Math.min(n, hh.size(s))))
        assert.strictEqual(new Set(entries.map((e) => e.key)).size, entries.length)
        for (let i = 1; i < entries.length; i++) {
          assert.isAtLeast(entries[i - 1]?.count ?? Number.NaN, entries[i]?.count ?? Number.NaN)
        }
        for (const e of entries) {
          const slot = s.index.get(e.key)
          assert.isDefined(slot)
          assert.strictEqual(s.counts[slot ?? -1], e.count)
          assert.strictEqual(s.errors[slot ?? -1], e.error)
        }
        assert.deepStrictEqual(entries, all(s).slice(0, entries.length))
        // the tracked keys left out weigh no more than the last one returned
        const last = entries[entries.length - 1]
        if (last !== undefined) {
          for (const e of all(s).slice(entries.length)) assert.isAtMost(e.count, last.count)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("with at most capacity distinct keys, the sketch is exact", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 8 })
          .chain((distinct) =>
            fc.tuple(
              fc.integer({ min: distinct, max: 10 }),
              fc.array(
                fc.record({ key: fc.integer({ min: 0, max: distinct - 1 }).map((i) => `k${i}`), weight: weightArb }),
                { maxLength: 200 }
              )
            )
          ),
        ([capacity, stream]) => {
          const s = hh.make(capacity)
          const exact = new Exact()
          for (const { key, weight } of stream) {
            hh.add(s, key, weight)
            exact.add(key, weight)
          }
          assert.strictEqual(hh.size(s), exact.counts.size)
          for (const { key, count, error } of all(s)) {
            assert.strictEqual(count, exact.of(key))
            assert.strictEqual(error, 0)
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("decay multiplies every count and error by the factor and keeps the ranking", () => {
    fc.assert(
      fc.property(capacityArb, streamArb, dyadicFactorArb, (capacity, stream, factor) => {
        const s = hh.make(capacity)
        for (const { key, weight } of stream) hh.add(s, key, weight)
        const before = all(s)
        hh.decay(s, factor)
        assertConsistent(s)
        assert.deepStrictEqual(
          all(s),
          before.map((e) => ({ key: e.key, count: e.count * factor, error: e.error * factor }))
        )
      }),
      { numRuns: 300 }
    )
  })

  it("decay by any factor in (0, 1] scales each entry and keeps counts descending and the heap ordered", () => {
    fc.assert(
      fc.property(
        capacityArb,
        streamArb,
        fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }),
        (capacity, stream, factor) => {
          const s = hh.make(capacity)
          for (const { key, weight } of stream) hh.add(s, key, weight)
          const before = new Map(all(s).map((e) => [e.key, e]))
          hh.decay(s, factor)
          assertConsistent(s)
          const after = all(s)
          assert.strictEqual(after.length, before.size)
          for (let i = 0; i < after.length; i++) {
            const e = after[i]
            const old = before.get(e?.key ?? "")
            assert.strictEqual(e?.count, (old?.count ?? Number.NaN) * factor)
            assert.strictEqual(e?.error, (old?.error ?? Number.NaN) * factor)
            if (i > 0) assert.isAtLeast(after[i - 1]?.count ?? Number.NaN, e?.count ?? Number.NaN)
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("with periodic decay, every guarantee holds for the decayed true counts and total", () => {
    const opArb = fc.oneof(
      { weight: 12, arbitrary: stepArb },
      { weight: 1, arbitrary: dyadicFactorArb.map((factor) => ({ factor })) }
    )
    fc.assert(
      fc.property(capacityArb, fc.array(opArb, { maxLength: 200 }), (capacity, ops) => {
        const s = hh.make(capacity)
        const exact = new Exact()
        for (const op of ops) {
          if ("factor" in op) {
            hh.decay(s, op.factor)
            exact.scale(op.factor)
          } else {
            hh.add(s, op.key, op.weight)
            exact.add(op.key, op.weight)
          }
          assertConsistent(s)
          assertBrackets(s, exact)
          assertHeavyTracked(s, exact)
          assert.strictEqual(sumOfCounts(s), exact.total)
        }
      }),
      { numRuns: 300 }
    )
  })
})
