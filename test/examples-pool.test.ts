/**
 * Runs the resource-pool example program under `TestClock` and checks the
 * exact log it returns, so the example stays correct as well as type-checked.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { program as connections } from "../examples/resource-pool/connections.ts"

describe("examples/resource-pool", () => {
  it.effect("connections.ts: waiters in order, a suspected leak, a timeout, a dropped connection, renewal", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(connections)
      // the example's queries, sleeps and housekeeping, in steps so that every timer fires in order
      for (let i = 0; i < 101; i++) yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "0ms open #1",
        "q1 on #1 at 0ms",
        "0ms open #2",
        "q2 on #2 at 0ms",
        "q3 on #1 at 100ms",
        "report on #1 at 200ms",
        "q4 on #2 at 200ms",
        "q5: AcquireTimeout after 500ms",
        "2200ms leak suspected: held 2s",
        "3200ms report done",
        "q6 on #2 at 4200ms",
        "4200ms close (Invalidated)",
        "10000ms open #3",
        "q7 on #3 at 10000ms",
        "10000ms close (MaxLifetime)",
        "stats: 3 opened, 2 closed, 1 invalidated, 1 timed out, 1 leak"
      ])
    })
  )
})
