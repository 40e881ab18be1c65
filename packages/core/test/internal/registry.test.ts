import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/registry.ts"

const isList = (u: engine.Data): u is ReadonlyArray<engine.Data> => Array.isArray(u)

/** A reference equality: JSON with sorted keys, `undefined` keys left out. */
const canonical = (u: engine.Data): string => {
  if (u === undefined) return "undefined"
  if (u === null || typeof u !== "object") return JSON.stringify(u)
  if (isList(u)) return `[${u.map(canonical).join(",")}]`
  const record: { readonly [key: string]: engine.Data } = u
  return `{${Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonical(record[key])}`)
    .join(",")}}`
}

const leaf: fc.Arbitrary<engine.Data> = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.constantFrom("a", "b"),
  fc.boolean(),
  fc.constant(undefined)
)
const data: fc.Arbitrary<engine.Data> = fc.letrec<{ value: engine.Data }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom("x", "y", "z"), tie("value"), { maxKeys: 3 })
  )
})).value

const policyData: fc.Arbitrary<engine.PolicyData> = fc.record(
  {
    totalTimeout: fc.integer({ min: 1, max: 3 }),
    retry: data,
    circuitBreaker: data,
    rateLimiter: data,
    bulkhead: data,
    hedge: data,
    attemptTimeout: fc.integer({ min: 1, max: 3 })
  },
  { requiredKeys: [] }
)

describe("registry (pure)", () => {
  it("equalData agrees with a canonical rendering", () => {
    fc.assert(
      fc.property(data, data, (a, b) => {
        assert.strictEqual(engine.equalData(a, b), canonical(a) === canonical(b))
        assert.isTrue(engine.equalData(a, a))
      })
    )
  })

  it("changedParts: a part is reported exactly when its data differ, outermost first", () => {
    fc.assert(
      fc.property(policyData, policyData, (a, b) => {
        const changed = engine.changedParts(a, b)
        const expected = engine.partNames.filter((part) => canonical(a[part]) !== canonical(b[part]))
        assert.deepStrictEqual(changed, expected)
        assert.deepStrictEqual(engine.changedParts(a, a), [])
      })
    )
  })

  it("diff: every name lands in exactly one list; replaced carry their changed parts", () => {
    const config = fc.dictionary(fc.constantFrom("p", "q", "r", "s"), policyData)
    fc.assert(
      fc.property(config, config, (before, after) => {
        const previous = new Map(Object.entries(before))
        const next = new Map(Object.entries(after))
        const d = engine.diff(previous, next)
        const all = [...d.added, ...d.replaced.map((r) => r.name), ...d.unchanged, ...d.removed]
        assert.strictEqual(new Set(all).size, all.length)
        assert.deepStrictEqual(new Set(all), new Set([...previous.keys(), ...next.keys()]))
        assert.deepStrictEqual(
          d.added,
          [...next.keys()].filter((name) => !previous.has(name))
        )
        assert.deepStrictEqual(
          d.removed,
          [...previous.keys()].filter((name) => !next.has(name))
        )
        for (const { name, parts } of d.replaced) {
          assert.isAbove(parts.length, 0)
          assert.deepStrictEqual(parts, engine.changedParts(previous.get(name) ?? {}, next.get(name) ?? {}))
        }
        for (const name of d.unchanged)
          assert.deepStrictEqual(engine.changedParts(previous.get(name) ?? {}, next.get(name) ?? {}), [])
      })
    )
  })

  it("mergePart: the policy's defined fields win, the defaults fill in the rest; non-objects replace whole", () => {
    const fields = fc.dictionary(fc.constantFrom("x", "y", "z"), leaf, { maxKeys: 3 })
    fc.assert(
      fc.property(fields, fields, (defaults, own) => {
        const merged = engine.mergePart<Record<string, engine.Data>>(defaults, own)
        for (const key of ["x", "y", "z"]) {
          const expected = own[key] !== undefined ? own[key] : defaults[key]
          assert.strictEqual(merged?.[key], expected)
        }
        assert.strictEqual(engine.mergePart(defaults, undefined), defaults)
        assert.strictEqual(engine.mergePart(undefined, own), own)
        assert.deepStrictEqual(engine.mergePart<engine.Data>([1], [2]), [2])
        assert.strictEqual(engine.mergePart<engine.Data>(defaults, 5), 5)
      })
    )
  })

  it("mergePolicy: parts the defaults have and the policy lacks are added; others kept", () => {
    const merged = engine.mergePolicy<engine.PolicyData>(
      { retry: { maxAttempts: 2 }, attemptTimeout: 1000 },
      { retry: { base: 5 }, bulkhead: {} }
    )
    assert.deepStrictEqual(merged, { retry: { maxAttempts: 2, base: 5 }, bulkhead: {}, attemptTimeout: 1000 })
  })
})
