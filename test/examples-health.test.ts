/**
 * Runs the health example program under `TestClock` and checks the exact log
 * it returns, so the example stays correct as well as type-checked.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { program as readiness } from "../examples/health/readiness.ts"

describe("examples/health", () => {
  it.effect("readiness.ts: hysteresis on a failing database, a non-critical breaker degrading the whole", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(readiness)
      for (let i = 0; i < 25; i++) yield* Effect.yieldNow
      yield* TestClock.adjust("11 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "2000ms database: healthy -> degraded",
        "2000ms whole: healthy -> degraded",
        "4000ms database: degraded -> unhealthy",
        "4000ms whole: degraded -> unhealthy",
        "7000ms database: unhealthy -> healthy",
        "7000ms whole: unhealthy -> healthy",
        "8500ms payments: healthy -> unhealthy",
        "8500ms whole: healthy -> degraded",
        "database: healthy, 11 checks, 4 failures, success rate 0.64, last error: connection refused",
        "payments: unhealthy (not critical)",
        "readiness: degraded"
      ])
    })
  )
})
