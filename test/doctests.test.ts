import { assert, describe, it } from "@effect/vitest"
import { guideParts, isExcerptOf, mergeImports, toAssertions } from "../scripts/doctests.ts"

describe("doctests generator", () => {
  it("reads a guide's ts fences with their info words, and its hidden doctest preludes", () => {
    const guide = [
      "# Guide",
      "<!-- doctest",
      "declare const call: Effect.Effect<string>",
      "-->",
      "```ts gen",
      "const x = yield* call",
      "```",
      "```sh",
      "npm test",
      "```",
      "```ts from=examples/a.ts",
      "const a = 1",
      "```"
    ].join("\n")
    const { fences, preludes } = guideParts(guide)
    assert.deepStrictEqual(preludes, ["declare const call: Effect.Effect<string>"])
    assert.deepStrictEqual(
      fences.map((f) => [f.line, f.info, f.code]),
      [
        [5, ["gen"], "const x = yield* call"],
        [11, ["from=examples/a.ts"], "const a = 1"]
      ]
    )
  })

  it("merges imports: one named import per module, type-only only where every snippet said so", () => {
    assert.deepStrictEqual(
      mergeImports([
        'import { Effect } from "effect"',
        'import { Effect, Layer } from "effect"',
        'import type { Duration } from "effect"',
        'import * as Fs from "node:fs"',
        'import * as Fs from "node:fs"'
      ]),
      ['import { type Duration, Effect, Layer } from "effect"', 'import * as Fs from "node:fs"']
    )
  })

  it("finds an excerpt in its source whatever the indentation and whole-line comments, and notices drift", () => {
    const source = [
      "export const program = Effect.gen(function* () {",
      "  const breaker = yield* make({",
      "    name: 'payments' // inline comments count",
      "  })",
      "",
      "  /** a doc line the excerpt leaves out */",
      "  const charge = call",
      "})"
    ].join("\n")
    assert.isTrue(
      isExcerptOf(
        "const breaker = yield* make({\n  name: 'payments' // inline comments count\n})\nconst charge = call",
        source
      )
    )
    assert.isFalse(isExcerptOf("const breaker = yield* make({\n  name: 'orders'\n})", source))
  })

  it("turns `// => value` lines into assertions", () => {
    assert.strictEqual(toAssertions("const x = 1 + 1\n// => 2"), "const x = 1 + 1\nassert.deepStrictEqual(x, 2)")
    assert.strictEqual(toAssertions("f()\n// => 3"), "assert.deepStrictEqual(f(), 3)")
  })
})
