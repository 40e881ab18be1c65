import { assert, describe, it } from "@effect/vitest"
import * as BuiltPackage from "@effect-resilience/test-harness/BuiltPackage"

describe("built @effect-resilience/redis", () => {
  it("imports from dist through exports and builds a layer", () => {
    const out = BuiltPackage.runJson(`
      import { IoRedis } from "@effect-resilience/redis"
      import * as Layer from "effect/Layer"
      const resolved = import.meta.resolve("@effect-resilience/redis/IoRedis")
      const layer = IoRedis.layer({ host: "127.0.0.1", port: 1 })
      console.log(JSON.stringify({ resolved, isLayer: Layer.isLayer(layer), key: IoRedis.IoRedis.key }))
    `)
    assert.deepStrictEqual(out, {
      resolved: `file://${BuiltPackage.repoRoot}/packages/redis/dist/IoRedis.js`,
      isLayer: true,
      key: "@effect-resilience/redis/IoRedis"
    })
  })
})
