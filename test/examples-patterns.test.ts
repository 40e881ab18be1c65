/**
 * Runs the retry, timeout, hedging, rate-limiting, bulkhead, fallback, policy, load-balancing, adaptive-throttling,
 * registry and chaos example programs under
 * `TestClock` and checks the exact log each returns, so the examples stay
 * correct as well as type-checked. Jittered delays never appear in a log:
 * those examples log attempts and counts instead.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { program as overloadedBackend } from "../examples/adaptive-throttling/overloaded-backend.ts"
import { program as tenantIsolation } from "../examples/bulkhead/tenant-isolation.ts"
import { program as gameDay } from "../examples/chaos/game-day.ts"
import { program as quotes } from "../examples/fallback/quotes.ts"
import { program as slowReplica } from "../examples/hedging/slow-replica.ts"
import { program as replicas } from "../examples/load-balancing/replicas.ts"
import { program as policyQuotes } from "../examples/policy/quotes.ts"
import { program as apiQuotas } from "../examples/rate-limiting/api-quotas.ts"
import { program as shaping } from "../examples/rate-limiting/shaping.ts"
import { program as reload } from "../examples/registry/reload.ts"
import { program as backoffAndHints } from "../examples/retry/backoff-and-hints.ts"
import { program as timeoutAndDeadline } from "../examples/retry/timeout-and-deadline.ts"

describe("examples/retry", () => {
  it.effect(
    "backoff-and-hints.ts: jittered backoff, `while` for a permanent error, a retryAfter hint, Retry.Attempt",
    () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(backoffAndHints)
        // two decorrelated delays (at most 30 ms + 90 ms) and the 250 ms hint; more time changes nothing
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), [
          "/inventory attempt 1: Unavailable",
          "/inventory attempt 2: Unavailable",
          "/inventory attempt 3: 42 in stock",
          "/inventory = 42 in stock",
          "/orders attempt 1: InvalidOrder",
          "/orders failed: InvalidOrder (not retried)",
          "/prices attempt 1: Throttled, retry after 250ms",
          "/prices attempt 2 (250ms after Throttled): 9.99 EUR",
          "/prices = 9.99 EUR",
          "stats: 2 successes, 4 failed attempts, 3 retries, 0 exhausted"
        ])
      })
  )

  it.effect("timeout-and-deadline.ts: a slow attempt times out and is retried; the deadline ends the retries", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(timeoutAndDeadline)
      // /quote: 50 ms timeout + 50 ms wait; /report: two timeouts and one wait, then no time for another
      yield* TestClock.adjust("250 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "/quote attempt 1 at 0ms: attempt timed out after 50ms",
        "/quote attempt 2 at 100ms: 1.0842",
        "/quote = 1.0842 at 100ms",
        "/report attempt 1 at 0ms: attempt timed out after 50ms",
        "/report attempt 2 at 100ms: attempt timed out after 50ms",
        "/report gave up at 150ms: attempt timed out after 50ms (the next wait would end past the deadline)"
      ])
    })
  )
})

describe("examples/hedging", () => {
  it.effect("slow-replica.ts: the hedge sent after 50 ms wins; a fast call sends none", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(slowReplica)
      // call 1 ends at 70 ms (the hedge's 50 ms + 20 ms), call 2 10 ms later
      yield* TestClock.adjust("80 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "call 1: replica-a started at 0ms",
        "call 1: replica-b started at 50ms",
        "call 1: replica-b answered at 70ms",
        "call 1: replica-a interrupted at 70ms",
        "call 1 = row 42 from replica-b",
        "call 2: replica-a started at 0ms",
        "call 2: replica-a answered at 10ms",
        "call 2 = row 42 from replica-a",
        "stats: 2 calls, 1 hedge started, 1 won, 0 refused"
      ])
    })
  )
})

describe("examples/rate-limiting", () => {
  it.effect("api-quotas.ts: two limits per API key, a deny list, weighted costs, retryAfter from the error", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(apiQuotas)
      yield* TestClock.adjust("600 millis") // the example's one sleep
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "alice: 200, stored 6 items",
        "alice: 429 by per-second, retry after 200ms",
        "bob: 200, stored 6 items",
        "mallory: 403, key revoked",
        "alice: 200, stored 8 items",
        "alice: 429 by per-minute, retry after 59s 400ms"
      ])
    })
  )

  it.effect("shaping.ts: a burst of five is served one every 100 ms, in order", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(shaping)
      yield* TestClock.adjust("400 millis") // four waits of 100 ms
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "request 1 served at 0ms",
        "request 2 served at 100ms",
        "request 3 served at 200ms",
        "request 4 served at 300ms",
        "request 5 served at 400ms"
      ])
    })
  )
})

describe("examples/bulkhead", () => {
  it.effect(
    "tenant-isolation.ts: one compartment per tenant; a flood waits or is rejected, a hung call times out",
    () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(tenantIsolation)
        yield* TestClock.adjust("1 second") // the hung reports' second
        assert.deepStrictEqual(yield* Fiber.join(fiber), [
          "noisy report #1: ran 0-200ms",
          "noisy report #2: ran 0-200ms",
          "noisy report #3: ran 200-400ms",
          "noisy report #4: ran 200-400ms",
          "noisy report #5: BulkheadFull (2 running, 2 waiting)",
          "noisy report #6: BulkheadFull (2 running, 2 waiting)",
          "quiet report: ran 0-200ms",
          "quiet export: ran 200-400ms",
          "stuck report #1: ran 0-1000ms",
          "stuck report #2: ran 0-1000ms",
          "stuck report #3: BulkheadTimeout after 300ms",
          "stats: 8 admitted, 3 rejected, 0 active"
        ])
      })
  )
})

describe("examples/fallback", () => {
  it.effect(
    "quotes.ts: concurrent requests coalesced, a stale quote with its age, the replica, a placeholder, maintenance",
    () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(quotes)
        yield* TestClock.adjust("3 seconds") // the example's two sleeps and its upstream calls
        assert.deepStrictEqual(yield* Fiber.join(fiber), [
          "EURUSD #1 at 100ms: 1.0842",
          "EURUSD #2 at 100ms: 1.0842",
          "EURUSD #3 at 100ms: 1.0842",
          "GBPUSD at 100ms: 1.265",
          "upstream down",
          "EURUSD at 1200ms: 1.0842 (stale, 1s 200ms old)",
          "USDJPY at 1300ms: no quote",
          "EURUSD at 2400ms: 1.084 (replica)",
          "maintenance: started",
          "EURUSD at 2400ms: quotes paused (maintenance window)",
          "maintenance: over, upstream back",
          "EURUSD at 2500ms: 1.0842",
          "upstream calls: 6, coalesced: 2, stale answers: 1, answered while degraded: 1"
        ])
      })
  )
})

describe("examples/policy", () => {
  it.effect(
    "quotes.ts: retried, timed out into an open circuit, answered from the cache, a quota the breaker ignores",
    () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(policyQuotes)
        yield* TestClock.adjust("3 seconds") // the upstream's 20 ms answers, the timeouts, the waits and the 1.9 s sleep
        assert.deepStrictEqual(yield* Fiber.join(fiber), [
          "alice EURUSD at 20ms: 1.0842 (upstream calls: 1)",
          // a connection reset, 50 ms, then an answer: retried
          "bob GBPUSD at 90ms: 1.265 (upstream calls: 2)",
          // three 100 ms timeouts 50 ms apart: three breaker failures, the circuit opens, the cache answers
          "alice EURUSD at 490ms: 1.0842 (upstream calls: 3), circuit Open",
          // CircuitOpen's retryAfter (2 s) ends past the 1 s total timeout: not waited for, the cache answers
          "carol EURUSD at 490ms: 1.0842 (upstream calls: 0)",
          "mallory GBPUSD x5 at 590ms: 1.265 (upstream calls: 5)",
          // over the quota: RateLimitExceeded, answered from the cache, ignored by the breaker
          "mallory GBPUSD #6 at 590ms: 1.265 (upstream calls: 0), circuit Closed",
          // the open duration has passed: a probe answers and closes the circuit
          "alice EURUSD at 2510ms: 1.0842 (upstream calls: 1), circuit Closed"
        ])
      })
  )
})

describe("examples/load-balancing", () => {
  it.effect(
    "replicas.ts: a failing replica is ejected after 3 failures in a row, retries go elsewhere, it returns",
    () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(replicas)
        yield* TestClock.adjust("30 seconds")
        assert.deepStrictEqual(yield* Fiber.join(fiber), [
          "call 1: replica-a",
          "call 2: replica-b 503, retried",
          "call 2: replica-c",
          "call 3: replica-a",
          "call 4: replica-b 503, retried",
          "call 4: replica-c",
          "call 5: replica-a",
          "call 6: replica-b 503, retried",
          "call 6: replica-c",
          // replica-b is out of the rotation
          "call 7: replica-a",
          "call 8: replica-c",
          "call 9: replica-a",
          "replica-b ejected for 30s after 3 failures in a row",
          "after 30s: replica-b back",
          "call 10: replica-b",
          "call 11: replica-c",
          "call 12: replica-a",
          "call 13: replica-b",
          "call 14: replica-c",
          "call 15: replica-a"
        ])
      })
  )
})

describe("examples/adaptive-throttling", () => {
  it.effect("overloaded-backend.ts: the backend sees about K x its capacity, then the throttling fades", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(overloadedBackend)
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        // 100 a second offered, 20 a second accepted: once refusals outweigh accepts, ~40 a second are sent
        "0-5s: 500 offered, 264 sent, 100 accepted",
        "5-10s: 500 offered, 212 sent, 100 accepted",
        "10-15s: 500 offered, 189 sent, 100 accepted",
        "15-20s: 500 offered, 190 sent, 100 accepted",
        // recovered at 20 s: the refusals age out of the 10 s window
        "20-25s: 500 offered, 261 sent, 261 accepted",
        "25-30s: 500 offered, 470 sent, 470 accepted"
      ])
    })
  )
})

describe("examples/registry", () => {
  it.effect("reload.ts: a reload keeps an open circuit open, a bad reload is refused whole, a probe closes it", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(reload)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [
        "charge 1: declined by upstream",
        "charge 2: declined by upstream",
        "charge 3: rejected, circuit open",
        "reload to version 2: payments replaced (circuitBreaker)",
        "charge 4: rejected, circuit open",
        "reload refused: policies.payments.circuitBreaker.failureRateThreshold = 1.5",
        "version 2 still serving",
        "after 10s:",
        "charge 5: ok",
        "charge 6: ok"
      ])
    })
  )
})

describe("examples/chaos", () => {
  it.effect(
    "game-day.ts: seeded faults between the client and its upstream; retries absorb them, an outage opens the circuit",
    () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(gameDay)
        yield* TestClock.adjust("30 seconds")
        assert.deepStrictEqual(yield* Fiber.join(fiber), [
          "round 1: 20 requests, 20 answered 200 after 37 attempts",
          "chaos: 7 answered 503, 10 delayed past the attempt timeout; upstream reached 20 times",
          "round 2: 503, 503, 503, 503, 503 then CircuitBreakerError (circuit Open)",
          "round 3: 200 (circuit Closed)"
        ])
      })
  )
})
