import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Select from "../../src/internal/select.ts"

const sample = fc
  .array(fc.oneof(fc.integer({ min: 0, max: 20 }), fc.double({ min: 0, max: 1e6, noNaN: true })), {
    minLength: 1,
    maxLength: 600
  })
  .map((values) => Float64Array.from(values))

describe("internal/select", () => {
  it("kthSmallest is the k-th element of the sorted sample, for every k (duplicates and sorted runs included)", () => {
    fc.assert(
      fc.property(sample, fc.nat(), fc.boolean(), (values, seed, sortFirst) => {
        const source = sortFirst ? values.slice().sort() : values
        const before = source.slice()
        const sorted = source.slice().sort()
        const scratch = new Float64Array(source.length)
        const k = seed % source.length
        assert.strictEqual(Select.kthSmallest(source, source.length, k, scratch), sorted[k])
        // the source is left as it was
        assert.deepStrictEqual(source, before)
      })
    )
  })

  it("kthSmallest reads only the first n values and clamps k; NaN for an empty sample", () => {
    fc.assert(
      fc.property(sample, fc.nat(), fc.integer({ min: -5, max: 1_000 }), (values, cut, k) => {
        const n = cut % (values.length + 1)
        const expected = values.slice(0, n).sort()[Math.min(n - 1, Math.max(0, k))]
        const result = Select.kthSmallest(values, n, k, new Float64Array(values.length))
        if (n === 0) assert.isNaN(result)
        else assert.strictEqual(result, expected)
      })
    )
  })
})
