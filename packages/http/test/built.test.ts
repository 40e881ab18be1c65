import { assert, describe, it } from "@effect/vitest"
import * as BuiltPackage from "@effect-resilience/test-harness/BuiltPackage"

describe("built @effect-resilience/http", () => {
  it("imports from dist through exports", () => {
    const out = BuiltPackage.runJson(`
      import { HealthHttp, RateLimitHeaders, RateLimitMiddleware, ResilientHttpClient } from "@effect-resilience/http"
      const resolved = import.meta.resolve("@effect-resilience/http")
      console.log(JSON.stringify({
        resolved,
        field: RateLimitHeaders.rateLimit([{ name: "api", remaining: 3, resetSeconds: 1 }]),
        status: HealthHttp.statusCode("unhealthy"),
        excluded: RateLimitMiddleware.matchesPath("/health/ready", ["/health/*"]),
        classified: [503, 404, 200].map(ResilientHttpClient.classifyStatus)
      }))
    `)
    assert.deepStrictEqual(out, {
      resolved: `file://${BuiltPackage.repoRoot}/packages/http/dist/index.js`,
      field: '"api";r=3;t=1',
      status: 503,
      excluded: true,
      classified: ["failure", "permanent", "success"]
    })
  })
})
