import { assert, describe, it } from "@effect/vitest"
import {
  AdaptiveThrottle,
  Bulkhead,
  CircuitBreaker,
  Fallback,
  Hedge,
  Options,
  Policy,
  RateLimiter,
  Retry,
  Timeout
} from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { vi } from "vitest"

/** Whether two types are identical (not only mutually assignable). */
type Equals<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false
/** An effect's success, error and requirements. */
type Shape<T> = [Effect.Success<T>, Effect.Error<T>, Effect.Services<T>]
/** Compiles only when its argument is `true`. */
const typeIs = <_ extends true>(): void => undefined

// ---------------------------------------------------------------------------
// instrumentation: every combinator the policy calls records its enter and exit
// while `trace` is set (a test double per part, wrapping the real combinator)
// ---------------------------------------------------------------------------

const tracer = vi.hoisted(() => {
  const state: {
    trace: Array<string> | undefined
    instrument: <F>(E: typeof import("effect/Effect"), name: string, real: F) => F
  } = {
    trace: undefined,
    // data-first calls (the policy's) run the real combinator between an `enter` and an `exit` record
    instrument: (E, name, real) =>
      ((...args: Array<unknown>) => {
        const wrapped = (real as (...args: Array<unknown>) => unknown)(...args)
        if (!E.isEffect(args[0])) return wrapped
        return E.ensuring(
          E.suspend(() => {
            state.trace?.push(`enter ${name}`)
            return wrapped as import("effect/Effect").Effect<unknown, unknown, unknown>
          }),
          E.sync(() => {
            state.trace?.push(`exit ${name}`)
          })
        )
      }) as never
  }
  return state
})

vi.mock(import("../src/Timeout.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return {
    ...mod,
    attempt: tracer.instrument(E, "attemptTimeout", mod.attempt),
    deadline: tracer.instrument(E, "totalTimeout", mod.deadline)
  }
})
vi.mock(import("../src/Retry.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return { ...mod, retry: tracer.instrument(E, "retry", mod.retry) }
})
vi.mock(import("../src/AdaptiveThrottle.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return { ...mod, throttle: tracer.instrument(E, "adaptiveThrottle", mod.throttle) }
})
vi.mock(import("../src/CircuitBreaker.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return { ...mod, protect: tracer.instrument(E, "circuitBreaker", mod.protect) }
})
vi.mock(import("../src/RateLimiter.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return { ...mod, limit: tracer.instrument(E, "rateLimiter", mod.limit) }
})
vi.mock(import("../src/Bulkhead.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return { ...mod, isolate: tracer.instrument(E, "bulkhead", mod.isolate) }
})
vi.mock(import("../src/Hedge.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return { ...mod, hedge: tracer.instrument(E, "hedge", mod.hedge) }
})
vi.mock(import("../src/Fallback.ts"), async (importOriginal) => {
  const E = await import("effect/Effect")
  const mod = await importOriginal()
  return {
    ...mod,
    orElse: tracer.instrument(E, "fallback", mod.orElse),
    orElseCached: tracer.instrument(E, "fallback", mod.orElseCached)
  }
})

const stores = Layer.mergeAll(CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory())

/** Every part, each with settings under which a succeeding call passes straight through. */
const allParts = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 5 })
  const limiter = yield* RateLimiter.make({
    limits: [{ algorithm: "fixed-window", limit: 1_000_000_000, window: "1 minute" }]
  })
  const bulkhead = yield* Bulkhead.make({ maxConcurrent: 10 })
  const adaptiveThrottle = yield* AdaptiveThrottle.make()
  return {
    fallback: { orElse: () => Effect.succeed("fallback") },
    totalTimeout: "10 seconds",
    retry: Retry.constant({ delay: 0, maxAttempts: 2 }),
    adaptiveThrottle,
    circuitBreaker: breaker,
    rateLimiter: limiter,
    bulkhead,
    hedge: Hedge.make({ delay: "1 second" }),
    attemptTimeout: "5 seconds"
  } satisfies Required<Omit<Policy.Parts, "name">>
})

const stateOf = (breaker: CircuitBreaker.CircuitBreaker, key?: string) =>
  Effect.map(breaker.state(key), (state) => state._tag)

describe("Policy", () => {
  describe("order", () => {
    it.effect("wraps every part in the documented order, whatever order the parts are given in", () =>
      Effect.gen(function* () {
        const parts = yield* allParts
        const reversed = Object.fromEntries(Object.entries(parts).reverse()) as typeof parts
        const policy = yield* Policy.make(reversed)
        assert.deepStrictEqual(policy.layers, Policy.order)
        const trace: Array<string> = []
        tracer.trace = trace
        const result = yield* Effect.succeed("ok").pipe(
          Policy.apply(policy),
          Effect.ensuring(Effect.sync(() => (tracer.trace = undefined)))
        )
        assert.strictEqual(result, "ok")
        assert.deepStrictEqual(trace, [
          ...Policy.order.map((name) => `enter ${name}`),
          ...[...Policy.order].reverse().map((name) => `exit ${name}`)
        ])
      }).pipe(Effect.provide(stores))
    )

    it.effect("every subset of parts, given in any order, nests in the documented order (property)", () =>
      Effect.gen(function* () {
        const parts = yield* allParts
        const context = yield* Effect.context<never>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.shuffledSubarray([...Policy.order]), async (names) => {
              const given: Record<string, unknown> = {}
              for (const name of names) given[name] = parts[name as keyof typeof parts]
              const trace: Array<string> = []
              await Effect.runPromiseWith(context)(
                Effect.gen(function* () {
                  const policy = yield* Policy.make(given as Policy.Parts)
                  tracer.trace = trace
                  yield* Effect.succeed("ok").pipe(
                    Policy.apply(policy),
                    Effect.ensuring(Effect.sync(() => (tracer.trace = undefined)))
                  )
                })
              )
              const expected = Policy.order.filter((name) => names.includes(name))
              assert.deepStrictEqual(trace, [
                ...expected.map((name) => `enter ${name}`),
                ...[...expected].reverse().map((name) => `exit ${name}`)
              ])
            }),
            { numRuns: 200 }
          )
        )
      }).pipe(Effect.provide(stores))
    )
  })

  describe("behaviour", () => {
    it.effect("an attempt timeout inside the breaker counts as a breaker failure", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
        const policy = yield* Policy.make({ circuitBreaker: breaker, attemptTimeout: "100 millis" })
        let calls = 0
        const hang = Effect.suspend(() => {
          calls++
          return Effect.never
        })
        const outcomes: Array<string> = []
        for (let i = 0; i < 3; i++) {
          const fiber = yield* hang.pipe(Policy.apply(policy), Effect.flip, Effect.forkChild)
          yield* TestClock.adjust("100 millis")
          const error = yield* Fiber.join(fiber)
          outcomes.push(error.reason._tag)
        }
        assert.deepStrictEqual(outcomes, ["TimeoutExceeded", "TimeoutExceeded", "CircuitOpen"])
        assert.strictEqual(calls, 2)
        assert.strictEqual(yield* stateOf(breaker), "Open")
      }).pipe(Effect.provide(stores))
    )

    it.effect("retries happen outside the breaker: one breaker outcome per attempt", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3 })
        const policy = yield* Policy.make({
          circuitBreaker: breaker,
          retry: Retry.constant({ delay: 0, maxAttempts: 3 })
        })
        let calls = 0
        const error = yield* Effect.suspend(() => {
          calls++
          return Effect.fail("down")
        }).pipe(Policy.apply(policy), Effect.flip)
        assert.strictEqual(error, "down")
        assert.strictEqual(calls, 3)
        // three attempts, three failures recorded: the third opens the circuit (one outcome if the retry were inside)
        assert.strictEqual(yield* stateOf(breaker), "Open")
      }).pipe(Effect.provide(stores))
    )

    it.effect("a CircuitOpen rejection is retried after its retryAfter", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second" })
        const policy = yield* Policy.make({
          circuitBreaker: breaker,
          retry: Retry.constant({ delay: "10 millis", maxAttempts: 3 })
        })
        let calls = 0
        const call = Effect.suspend(() =>
          ++calls === 1 ? Effect.fail("down") : Effect.map(Clock.currentTimeMillis, (now) => `ok at ${now}`)
        )
        const fiber = yield* call.pipe(Policy.apply(policy), Effect.forkChild)
        yield* TestClock.adjust("10 millis")
        // attempt 2 (at 10 ms) is rejected by the open circuit: the retry waits its retryAfter (990 ms)
        assert.strictEqual(calls, 1)
        yield* TestClock.adjust("989 millis")
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(fiber), "ok at 1000")
        assert.strictEqual(calls, 2)
      }).pipe(Effect.provide(stores))
    )

    it.effect("a rate-limit rejection reaches the breaker but is not recorded as a failure", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const limiter = yield* RateLimiter.make({
          limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
        })
        const policy = yield* Policy.make({ circuitBreaker: breaker, rateLimiter: limiter })
        yield* Effect.succeed("ok").pipe(Policy.apply(policy, { key: "alice" }))
        const rejected = yield* Effect.succeed("ok").pipe(Policy.apply(policy, { key: "alice" }), Effect.flip)
        assert.isTrue(RateLimiter.isRejection(rejected))
        assert.strictEqual(yield* stateOf(breaker, "alice"), "Closed")
        // the same order piped by hand, without the policy's classification, opens the circuit
        yield* Effect.succeed("ok").pipe(
          RateLimiter.limit(limiter, { key: "alice" }),
          CircuitBreaker.protect(breaker, { key: "alice" }),
          Effect.flip
        )
        assert.strictEqual(yield* stateOf(breaker, "alice"), "Open")
      }).pipe(Effect.provide(stores))
    )

    it.effect("a full bulkhead's rejection reaches the breaker but is not recorded as a failure", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 0 })
        const policy = yield* Policy.make({ circuitBreaker: breaker, bulkhead })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Deferred.await(gate).pipe(Policy.apply(policy), Effect.forkChild)
        yield* Effect.yieldNow
        const rejected = yield* Effect.succeed("ok").pipe(Policy.apply(policy), Effect.flip)
        assert.isTrue(Bulkhead.isRejection(rejected))
        assert.strictEqual(yield* stateOf(breaker), "Closed")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
      }).pipe(Effect.provide(stores))
    )

    it.effect("an attempt cut short by the total deadline is not recorded as a breaker failure", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
        const policy = yield* Policy.make({
          circuitBreaker: breaker,
          retry: Retry.constant({ delay: 0, maxAttempts: 2 }),
          totalTimeout: "150 millis",
          attemptTimeout: "100 millis"
        })
        const fiber = yield* Effect.never.pipe(Policy.apply(policy), Effect.flip, Effect.forkChild)
        yield* TestClock.adjust("150 millis")
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error.reason._tag, "TimeoutExceeded")
        // attempt 1 timed out on its own (a failure), attempt 2 at the deadline (ignored): still closed
        assert.strictEqual(yield* stateOf(breaker), "Closed")
      }).pipe(Effect.provide(stores))
    )

    it.effect("the total timeout bounds every retry and wait", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({
          totalTimeout: "3500 millis",
          retry: Retry.constant({ delay: "1 second", maxAttempts: 100 })
        })
        let calls = 0
        const fiber = yield* Effect.suspend(() => {
          calls++
          return Effect.fail("unavailable")
        }).pipe(
          Policy.apply(policy),
          Effect.flip,
          Effect.flatMap((error) => Effect.map(Clock.currentTimeMillis, (at) => [error, at] as const)),
          Effect.forkChild
        )
        yield* TestClock.adjust("10 seconds")
        // the wait that would end past the deadline is not started: the last error at 3 s
        assert.deepStrictEqual(yield* Fiber.join(fiber), ["unavailable", 3000])
        assert.strictEqual(calls, 4)
      })
    )

    it.effect("the total timeout cuts a retry sequence of hung attempts", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({
          totalTimeout: "1 second",
          retry: Retry.constant({ delay: 0, maxAttempts: 100 })
        })
        const fiber = yield* Effect.never.pipe(Policy.apply(policy), Effect.exit, Effect.forkChild)
        yield* TestClock.adjust("1 second")
        const exit = yield* Fiber.join(fiber)
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        assert.isTrue(error?._tag === "Fail" && Timeout.isTimeoutError(error.error))
      })
    )

    it.effect("the fallback sees the final error, after every retry", () =>
      Effect.gen(function* () {
        const seen: Array<unknown> = []
        const policy = yield* Policy.make({
          fallback: {
            orElse: (error) => {
              seen.push(error)
              return Effect.succeed("default")
            }
          },
          retry: Retry.constant({ delay: 0, maxAttempts: 3 })
        })
        let calls = 0
        const result = yield* Effect.suspend(() => Effect.fail(`error ${++calls}`)).pipe(Policy.apply(policy))
        assert.strictEqual(result, "default")
        assert.deepStrictEqual(seen, ["error 3"])
        assert.strictEqual(calls, 3)
      })
    )

    it.effect("a cached fallback answers the last good value under the call's key", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({ fallback: { cached: { maxStale: "5 minutes" } } })
        let up = true
        const call = Effect.suspend(() => (up ? Effect.succeed("1.0842") : Effect.fail("quotes down")))
        yield* call.pipe(Policy.apply(policy, { key: "quote:EURUSD" }))
        up = false
        assert.strictEqual(yield* call.pipe(Policy.apply(policy, { key: "quote:EURUSD" })), "1.0842")
        assert.strictEqual(yield* Effect.flip(call.pipe(Policy.apply(policy, { key: "quote:GBPUSD" }))), "quotes down")
      }).pipe(Effect.provide(Fallback.layer({ name: "quotes" })))
    )

    it.effect("per-call keys select the circuit, the limiter's key and the bulkhead's compartment", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const limiter = yield* RateLimiter.make({
          limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
        })
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
        const policy = yield* Policy.make({ circuitBreaker: breaker, rateLimiter: limiter, bulkhead })
        const call = Policy.fn(policy, (tenant: string) => ({ key: tenant }))((tenant: string) =>
          tenant === "acme" ? Effect.fail("acme down") : Effect.succeed(tenant)
        )
        yield* Effect.flip(call("acme"))
        assert.strictEqual(yield* call("globex"), "globex")
        assert.strictEqual(yield* stateOf(breaker, "acme"), "Open")
        assert.strictEqual(yield* stateOf(breaker, "globex"), "Closed")
        // each tenant used its own limit once
        assert.isFalse((yield* limiter.check("acme")).allowed)
        assert.isFalse((yield* limiter.check("globex")).allowed)
        assert.isTrue((yield* limiter.check("initech")).allowed)
        // overrides per part
        const overridden = yield* Effect.succeed("ok").pipe(
          Policy.apply(policy, { key: "acme", circuitBreaker: { key: "acme-2" }, rateLimiter: { key: "acme-2" } })
        )
        assert.strictEqual(overridden, "ok")
      }).pipe(Effect.provide(stores))
    )

    it.effect(
      "parts with options: the breaker's own isIgnored is kept beside the policy's, retry's while is honoured",
      () =>
        Effect.gen(function* () {
          const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
          const limiter = yield* RateLimiter.make({
            limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
          })
          let calls = 0
          const policy = yield* Policy.make({
            circuitBreaker: { breaker, key: "catalog", isIgnored: (error) => error === "not found" },
            rateLimiter: { limiter, key: "catalog" },
            retry: { policy: Retry.constant({ delay: 0, maxAttempts: 3 }), while: (error) => error !== "not found" }
          })
          const call = (error: string) =>
            Effect.suspend(() => {
              calls++
              return Effect.fail(error)
            }).pipe(Policy.apply(policy))
          // not retried (while), not a breaker failure (the part's isIgnored)
          assert.strictEqual(yield* Effect.flip(call("not found")), "not found")
          assert.strictEqual(calls, 1)
          assert.strictEqual(yield* stateOf(breaker, "catalog"), "Closed")
          // the limiter's quota (its key from the part) is spent: its rejection reaches the breaker (ignored), and the
          // retry waits its retryAfter, to the next window, where the call runs again
          const fiber = yield* Effect.forkChild(
            Effect.flip(call("not found")).pipe(
              Effect.flatMap((error) => Effect.map(Clock.currentTimeMillis, (at) => [error, at] as const))
            )
          )
          yield* TestClock.adjust("3 minutes")
          assert.deepStrictEqual(yield* Fiber.join(fiber), ["not found", 60_000])
          assert.strictEqual(calls, 2)
          assert.strictEqual(yield* stateOf(breaker, "catalog"), "Closed")
          const stats = yield* limiter.stats
          assert.deepStrictEqual([stats.allowed, stats.rejected], [2, 1])
        }).pipe(Effect.provide(stores))
    )

    it.effect(
      "the parts' own isIgnored and the policy's rejections are both ignored, by the throttle and the breaker",
      () =>
        Effect.gen(function* () {
          const throttle = yield* AdaptiveThrottle.make({ maxRejectProbability: 0 })
          const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
          const limiter = yield* RateLimiter.make({
            limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
          })
          const cancelled = (error: unknown) => error === "cancelled"
          const policy = yield* Policy.make({
            adaptiveThrottle: { throttle, isIgnored: cancelled },
            circuitBreaker: { breaker, isIgnored: cancelled },
            rateLimiter: limiter
          })
          const call = (error: string, key: string) =>
            Effect.flip(Effect.fail(error).pipe(Policy.apply(policy, { key })))
          // the parts' own isIgnored, then the limiter's rejection: neither opens the circuit nor counts for the throttle
          assert.strictEqual(yield* call("cancelled", "a"), "cancelled")
          assert.isTrue(RateLimiter.isRejection(yield* call("boom", "a")))
          assert.strictEqual(yield* stateOf(breaker, "a"), "Closed")
          // a real failure counts and opens the circuit; its rejection is ignored by the throttle
          assert.strictEqual(yield* call("boom", "b"), "boom")
          assert.isTrue(CircuitBreaker.isCircuitBreakerError(yield* call("boom", "b")))
          assert.strictEqual(yield* stateOf(breaker, "b"), "Open")
          const stats = yield* throttle.stats
          assert.deepStrictEqual([stats.admitted, stats.notAccepted, stats.ignored], [4, 1, 3])
        }).pipe(Effect.provide(stores))
    )

    it.effect("the call's options take precedence over a part's key", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const policy = yield* Policy.make({ circuitBreaker: { breaker, key: "static" } })
        yield* Effect.flip(Effect.fail("down").pipe(Policy.apply(policy)))
        yield* Effect.flip(Effect.fail("down").pipe(Policy.apply(policy, { key: "per-call" })))
        yield* Effect.succeed("ok").pipe(Policy.apply(policy, { key: "per-call", circuitBreaker: { key: "override" } }))
        assert.deepStrictEqual(
          [yield* stateOf(breaker, "static"), yield* stateOf(breaker, "per-call"), yield* stateOf(breaker, "override")],
          ["Open", "Open", "Closed"]
        )
      }).pipe(Effect.provide(stores))
    )

    it.effect("a hedge inside the policy: each hedged attempt has its own attempt timeout", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({
          hedge: { policy: Hedge.make({ delay: "100 millis" }) },
          attemptTimeout: "150 millis"
        })
        let calls = 0
        const call = Effect.suspend(() =>
          ++calls === 1 ? Effect.never : Effect.as(Effect.sleep("20 millis"), "hedge")
        )
        const fiber = yield* call.pipe(
          Policy.apply(policy),
          Effect.flatMap((answer) => Effect.map(Clock.currentTimeMillis, (at) => [answer, at] as const)),
          Effect.forkChild
        )
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), ["hedge", 120])
        assert.strictEqual(calls, 2)
      })
    )

    it.effect("a cached fallback without a key dies with the missing key", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({ fallback: { cached: {} } })
        const exit = yield* Effect.exit(Effect.succeed(1).pipe(Policy.apply(policy)))
        assert.isTrue(Exit.isFailure(exit))
        const defect = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Die") : undefined
        assert.isTrue(defect?._tag === "Die" && defect.defect instanceof Options.InvalidOptions)
      }).pipe(Effect.provide(Fallback.layer({ name: "quotes" })))
    )

    it.effect("a part left out is absent: an empty policy runs the effect as it is", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({})
        assert.deepStrictEqual(policy.layers, [])
        tracer.trace = []
        const trace = tracer.trace
        const result = yield* Effect.succeed(42).pipe(Policy.apply(policy))
        tracer.trace = undefined
        assert.strictEqual(result, 42)
        assert.deepStrictEqual(trace, [])
        assert.strictEqual(yield* Effect.flip(Effect.fail("boom").pipe(Policy.apply(policy))), "boom")
      })
    )
  })

  describe("the guide's table (docs/patterns/policy.md)", () => {
    /** Against a dependency that hangs: what the caller sees, when, the calls made and the breaker's state. */
    const measure = (
      wrap: (
        call: Effect.Effect<string>,
        breaker: CircuitBreaker.CircuitBreaker,
        retry: Retry.Policy
      ) => Effect.Effect<string, unknown, never>
    ) =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
        const retry = Retry.constant({ delay: 0, maxAttempts: 3 })
        let calls = 0
        const call = Effect.suspend(() => {
          calls++
          return Effect.never
        })
        const fiber = yield* wrap(call, breaker, retry).pipe(
          Effect.flip,
          Effect.flatMap((error) => Effect.map(Clock.currentTimeMillis, (at) => [error, at] as const)),
          Effect.forkChild
        )
        yield* TestClock.adjust("1 second")
        const [error, at] = yield* Fiber.join(fiber)
        const reason =
          typeof error === "object" && error !== null && "reason" in error
            ? (error.reason as { readonly _tag: string })._tag
            : String(error)
        return { reason, at, calls, breaker: yield* stateOf(breaker) }
      }).pipe(Effect.provide(stores))

    it.effect(
      "the adaptive throttle: each retry is a request; the breaker's rejections inside it are not counted",
      () =>
        Effect.gen(function* () {
          // maxRejectProbability 0: the throttle only counts, so the attempts are deterministic
          const throttle = yield* AdaptiveThrottle.make({ name: "quotes", maxRejectProbability: 0 })
          const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
          const policy = yield* Policy.make({
            retry: {
              policy: Retry.constant({ delay: 0, maxAttempts: 5 }),
              while: (error) => error === "refused"
            },
            adaptiveThrottle: { throttle, isAccepted: (error) => error === "not found" },
            circuitBreaker: breaker
          })
          assert.deepStrictEqual(policy.layers, ["retry", "adaptiveThrottle", "circuitBreaker"])
          let calls = 0
          const refused = Effect.suspend(() => {
            calls++
            return Effect.fail("refused" as const)
          })
          const applied = refused.pipe(Policy.apply(policy, { key: "eu" }))
          typeIs<
            Equals<
              Shape<typeof applied>,
              [
                never,
                (
                  | "refused"
                  | Retry.RetryError
                  | AdaptiveThrottle.AdaptiveThrottleError
                  | CircuitBreaker.CircuitBreakerError
                ),
                never
              ]
            >
          >()
          // two refusals open the circuit; the retry stops at its rejection, which the throttle ignores
          yield* Effect.flip(applied)
          assert.strictEqual(calls, 2)
          yield* Effect.flip(applied)
          assert.strictEqual(calls, 2)
          assert.deepStrictEqual(yield* throttle.state("eu"), { key: "eu", requests: 2, accepts: 0, probability: 0 })
          const stats = yield* throttle.stats
          assert.deepStrictEqual([stats.admitted, stats.notAccepted, stats.ignored], [4, 2, 2])
          // the part's classification applies: an answer the backend gave on purpose is accepted
          yield* Effect.flip(Effect.fail("not found").pipe(Policy.apply(policy, { adaptiveThrottle: { key: "us" } })))
          assert.deepStrictEqual(yield* throttle.state("us"), { key: "us", requests: 1, accepts: 1, probability: 0 })
        }).pipe(Effect.provide(stores))
    )

    it.effect("the policy's order: the timeouts trip the breaker, the retry stops at its rejection", () =>
      Effect.gen(function* () {
        const result = yield* measure((call, breaker, retry) =>
          Effect.flatMap(
            Effect.orDie(Policy.make({ retry, circuitBreaker: breaker, attemptTimeout: "100 millis" })),
            (policy) => call.pipe(Policy.apply(policy))
          )
        )
        assert.deepStrictEqual(result, { reason: "CircuitOpen", at: 200, calls: 2, breaker: "Open" })
      })
    )

    it.effect("the same combinators piped the other way round: the timeout outside cuts everything", () =>
      Effect.gen(function* () {
        const result = yield* measure((call, breaker, retry) =>
          call.pipe(Retry.retry(retry), CircuitBreaker.protect(breaker), Timeout.attempt("100 millis"))
        )
        assert.deepStrictEqual(result, { reason: "TimeoutExceeded", at: 100, calls: 1, breaker: "Closed" })
      })
    )

    it.effect("the retry inside the breaker: three timeouts are one breaker outcome", () =>
      Effect.gen(function* () {
        const result = yield* measure((call, breaker, retry) =>
          call.pipe(Timeout.attempt("100 millis"), Retry.retry(retry), CircuitBreaker.protect(breaker))
        )
        assert.deepStrictEqual(result, { reason: "TimeoutExceeded", at: 300, calls: 3, breaker: "Closed" })
      })
    )
  })

  describe("telemetry", () => {
    it.effect("a Policy.apply span event on the caller's span names the layers in order", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({
          name: "quotes",
          attemptTimeout: "1 second",
          retry: Retry.constant({ delay: 0, maxAttempts: 2 }),
          totalTimeout: "5 seconds"
        })
        const events = yield* Effect.gen(function* () {
          yield* Effect.succeed("ok").pipe(Policy.apply(policy))
          const span = yield* Effect.currentSpan
          return "events" in span && Array.isArray(span.events)
            ? span.events.map((e: ReadonlyArray<unknown>) => [e[0], e[2]])
            : []
        }).pipe(Effect.withSpan("request"))
        assert.deepStrictEqual(events, [
          [
            Policy.spanEventName,
            { "resilience.name": "quotes", "resilience.policy.layers": "totalTimeout > retry > attemptTimeout" }
          ]
        ])
      })
    )
  })

  describe("options", () => {
    it.effect("an invalid combination fails with one InvalidOptions listing every problem", () =>
      Effect.gen(function* () {
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2 })
        const error = yield* Effect.flip(
          Policy.make({
            totalTimeout: "1 second",
            attemptTimeout: "2 seconds",
            retry: Retry.exponential({ maxAttempts: 0, base: "1 second", cap: "10 millis" }),
            hedge: Hedge.make({ delay: "5 seconds" }),
            bulkhead: { bulkhead, cost: 0.5 }
          })
        )
        assert.instanceOf(error, Options.InvalidOptions)
        assert.strictEqual(error.pattern, "Policy")
        assert.deepStrictEqual(
          error.issues.map((issue) => ({ path: issue.path, value: issue.value, message: issue.message })),
          [
            { path: "attemptTimeout", value: '"2 seconds"', message: "Expected at most totalTimeout (1s)" },
            { path: "retry.maxAttempts", value: "0", message: "Expected a value greater than or equal to 1" },
            { path: "retry.cap", value: "10ms", message: "Expected at least base (1000 ms)" },
            {
              path: "hedge.delay",
              value: "5s",
              message: "Expected less than attemptTimeout (2s): every attempt would time out before its hedge starts"
            },
            { path: "bulkhead.cost", value: "0.5", message: "Expected an integer of at least 1" }
          ]
        )
      })
    )

    it.effect("timeouts must be durations greater than zero", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(Policy.make({ totalTimeout: 0, attemptTimeout: "soon" as never }))
        assert.deepStrictEqual(
          error.issues.map((issue) => [issue.path, issue.value, issue.message]),
          [
            ["totalTimeout", "0", "Expected a duration greater than zero"],
            ["attemptTimeout", '"soon"', "Expected a duration greater than zero"]
          ]
        )
      })
    )

    it.effect("a valid combination succeeds, with its layers outermost first", () =>
      Effect.gen(function* () {
        const policy = yield* Policy.make({
          attemptTimeout: "1 second",
          retry: Retry.exponential(),
          totalTimeout: "5 seconds"
        })
        assert.deepStrictEqual(policy.layers, ["totalTimeout", "retry", "attemptTimeout"])
        assert.isTrue(Policy.isPolicy(policy))
      })
    )
  })

  describe("types", () => {
    it.effect("the error type is exactly the union of the parts' errors, minus what the fallback handles", () =>
      Effect.gen(function* () {
        const parts = yield* allParts
        const { fallback: _, ...withoutFallback } = parts
        class Down {
          readonly _tag = "Down"
        }
        const call = Effect.fail(new Down()) as Effect.Effect<string, Down, never>

        const bare = call.pipe(Policy.apply(yield* Policy.make(withoutFallback)))
        typeIs<
          Equals<
            Shape<typeof bare>,
            [
              string,
              (
                | Down
                | Timeout.TimeoutError
                | Retry.RetryError
                | AdaptiveThrottle.AdaptiveThrottleError
                | CircuitBreaker.CircuitBreakerError
                | RateLimiter.RateLimiterError
                | Bulkhead.BulkheadError
              ),
              never
            ]
          >
        >()

        const retryOnly = call.pipe(Policy.apply(yield* Policy.make({ retry: parts.retry, hedge: parts.hedge })))
        typeIs<Equals<Shape<typeof retryOnly>, [string, Down | Retry.RetryError, never]>>()

        const handled = call.pipe(
          Policy.apply(
            yield* Policy.make({
              ...withoutFallback,
              fallback: { orElse: () => Effect.succeed(0) }
            })
          )
        )
        typeIs<Equals<Shape<typeof handled>, [string | number, never, never]>>()

        const refined = call.pipe(
          Policy.apply(
            yield* Policy.make({
              circuitBreaker: parts.circuitBreaker,
              attemptTimeout: "1 second",
              fallback: {
                orElse: () => Effect.succeed("cached"),
                when: CircuitBreaker.isCircuitBreakerError
              }
            })
          )
        )
        typeIs<Equals<Shape<typeof refined>, [string, Down | Timeout.TimeoutError, never]>>()

        const cached = call.pipe(Policy.apply(yield* Policy.make({ fallback: { cached: {} } }), { key: "k" }))
        typeIs<Equals<Shape<typeof cached>, [string, Down, Fallback.FallbackCache]>>()

        const empty = call.pipe(Policy.apply(yield* Policy.make({})))
        typeIs<Equals<Shape<typeof empty>, [string, Down, never]>>()

        // the part's handler sees unknown (the module's Gotchas); Fallback.orElse piped after apply sees the errors
        typeIs<Equals<Parameters<Extract<Policy.FallbackPart, { readonly orElse: unknown }>["orElse"]>[0], unknown>>()
        const policy = yield* Policy.make({ circuitBreaker: parts.circuitBreaker, attemptTimeout: "1 second" })
        const typed = call.pipe(
          Policy.apply(policy),
          Fallback.orElse((error) => {
            typeIs<Equals<typeof error, Down | Timeout.TimeoutError | CircuitBreaker.CircuitBreakerError>>()
            return Effect.succeed(0)
          })
        )
        typeIs<Equals<Shape<typeof typed>, [string | number, never, never]>>()
        const refinedTyped = call.pipe(
          Policy.apply(policy),
          Fallback.orElse(
            (error) => {
              typeIs<Equals<typeof error, CircuitBreaker.CircuitBreakerError>>()
              return Effect.succeed(error.reason._tag)
            },
            { when: CircuitBreaker.isCircuitBreakerError }
          )
        )
        typeIs<Equals<Shape<typeof refinedTyped>, [string, Down | Timeout.TimeoutError, never]>>()
        assert.isTrue(true)
      }).pipe(Effect.provide(stores))
    )
  })
})
