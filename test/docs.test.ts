import { assert, describe, it } from "@effect/vitest"
import { stale } from "../scripts/docs.ts"

describe("generated docs", () => {
  it("are up to date with the code that defines them (run `npm run docs`)", () => {
    assert.deepStrictEqual(stale(), [])
  })
})
