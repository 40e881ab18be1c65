import { assert, describe, it } from "@effect/vitest"
import * as BuiltPackage from "@effect-resilience/test-harness/BuiltPackage"

describe("built @effect-resilience/opentelemetry", () => {
  it("imports from dist through exports and builds a layer", () => {
    const out = BuiltPackage.runJson(`
      import { ResilienceOtel } from "@effect-resilience/opentelemetry"
      import * as Layer from "effect/Layer"
      const resolved = import.meta.resolve("@effect-resilience/opentelemetry")
      console.log(JSON.stringify({ resolved, isLayer: Layer.isLayer(ResilienceOtel.layer({ serviceName: "smoke" })) }))
    `)
    assert.deepStrictEqual(out, {
      resolved: `file://${BuiltPackage.repoRoot}/packages/opentelemetry/dist/index.js`,
      isLayer: true
    })
  })
})
