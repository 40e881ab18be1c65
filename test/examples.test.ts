/**
 * Runs every example program under `TestClock` and checks what it returns, so
 * the examples stay correct as well as type-checked.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { program as basic } from "../examples/circuit-breaker/basic.ts"
import { program as keyedHttp } from "../examples/circuit-breaker/keyed-http.ts"
import { program as withRetryAndTimeout } from "../examples/circuit-breaker/with-retry-and-timeout.ts"

describe("examples/circuit-breaker", () => {
  it.effect("basic.ts: opens after two failures, rejects, probes after openDuration and closes", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(basic)
      yield* TestClock.adjust("20 millis") // the example's one sleep
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "failed",
        "failed",
        "rejected for 10ms",
        "Open",
        "charged",
        "Closed"
      ])
    })
  )

  it.effect("keyed-http.ts: a 503 host's circuit opens, another host's stays closed", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* keyedHttp, [
        "a.example.com/quote 503",
        "a.example.com/quote 503",
        "a.example.com/quote CircuitOpen",
        "b.example.com/quote 200",
        "b.example.com/missing 404",
        "b.example.com/quote 200",
        "a.example.com Open",
        "b.example.com Closed"
      ])
    })
  )

  it.effect("with-retry-and-timeout.ts: timeout inside, breaker, retry outside waiting for retryAfter", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(withRetryAndTimeout)
      // 10 ms timeout + 2 ms backoff + 4 ms backoff + 21 ms retryAfter = 37 ms
      yield* TestClock.adjust("37 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "EURUSD attempt 1: TimeoutError",
        "EURUSD attempt 2: Unavailable",
        "EURUSD attempt 3: CircuitOpen, retry after 21ms",
        "EURUSD attempt 4: 1.0842",
        "EURUSD = 1.0842",
        "XXX attempt 1: InvalidSymbol",
        "XXX failed: InvalidSymbol",
        "Closed"
      ])
    })
  )
})
