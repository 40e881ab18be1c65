import { spawnSync } from "node:child_process"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"

describe("npm run demo", () => {
  it("runs against the built packages and shows the breaker opening, rejecting and closing", () => {
    const result = spawnSync(process.execPath, [Path.join(import.meta.dirname, "..", "examples", "demo", "main.ts")], {
      encoding: "utf8",
      timeout: 30_000
    })
    assert.strictEqual(result.status, 0, result.stderr)
    for (const line of [
      "rejected: CircuitOpen (fail fast)",
      "quotes: Closed -> Open",
      "quotes: HalfOpen -> Closed",
      "stats: 3 succeeded, 3 failed, 2 rejected, 1 circuit",
      "resilience.circuit_breaker.calls {resilience.name=quotes resilience.outcome=rejected} 2",
      "fast after 3 attempts",
      "cost 2: allowed, remaining 1",
      "cost 1: refused by per-second"
    ]) {
      assert.include(result.stdout, line)
    }
  })
})
