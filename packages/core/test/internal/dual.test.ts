import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { dualBy } from "../../src/internal/dual.ts"

interface Box {
  readonly box: number
}
const isBox = (u: unknown): u is Box => typeof u === "object" && u !== null && "box" in u

const add: {
  (n: number, times?: number | undefined): (self: Box) => number
  (self: Box, n: number, times?: number | undefined): number
} = dualBy(isBox, (self: Box, n: number, times?: number | undefined): number => self.box + n * (times ?? 1))

describe("internal/dual", () => {
  it("data-first and data-last give the same result, with and without the optional argument", () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer(), fc.option(fc.integer(), { nil: undefined }), (box, n, times) => {
        const self = { box }
        assert.strictEqual(add(self, n, times), add(n, times)(self))
        assert.strictEqual(add(self, n), add(n)(self))
      })
    )
  })
})
