import { assert, describe, it } from "@effect/vitest"
import * as BuiltPackage from "@effect-resilience/test-harness/BuiltPackage"

describe("built @effect-resilience/core", () => {
  it("runs on Node >= 22.19", () => {
    const [major = 0, minor = 0] = BuiltPackage.run("").nodeVersion.slice(1).split(".").map(Number)
    assert.isTrue(major > 22 || (major === 22 && minor >= 19), `node ${major}.${minor}`)
  })

  it("imports the root and a subpath from dist through exports", () => {
    const out = BuiltPackage.runJson(`
      import { Telemetry } from "@effect-resilience/core"
      import * as TelemetrySub from "@effect-resilience/core/Telemetry"
      const resolved = import.meta.resolve("@effect-resilience/core")
      console.log(JSON.stringify({ resolved, name: Telemetry.attributes.name, same: Telemetry.metricsTable === TelemetrySub.metricsTable }))
    `)
    assert.deepStrictEqual(out, {
      resolved: `file://${BuiltPackage.repoRoot}/packages/core/dist/index.js`,
      name: "resilience.name",
      same: true
    })
  })

  it("keeps internals closed off", () => {
    const result = BuiltPackage.run(`await import("@effect-resilience/core/internal/anything")`)
    assert.notStrictEqual(result.status, 0)
    assert.include(result.stderr, "ERR_PACKAGE_PATH_NOT_EXPORTED")
  })
})
