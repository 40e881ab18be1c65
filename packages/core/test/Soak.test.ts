/**
 * The patterns together under injected faults: many concurrent calls through
 * one `Policy` (total timeout, retry, circuit breaker, bulkhead, hedging,
 * attempt timeout) around an operation that `Chaos` delays, fails, kills and
 * hangs, on the `TestClock`, over random configurations and seeds.
 *
 * What must hold whatever happens: every call ends by its total timeout; no
 * more attempts run at once than the bulkhead allows (times the hedges); when
 * everything has ended nothing is left running, waiting or holding a permit;
 * every failure is one of the typed errors the policy declares (or the
 * injected defect); and the counters of the parts agree with what the callers
 * saw.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  AdaptiveThrottle,
  Bulkhead,
  Chaos,
  CircuitBreaker,
  Hedge,
  LoadBalancer,
  Policy,
  RateLimiter,
  Retry
} from "@effect-resilience/core"
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"

const scenario = fc.record({
  seed: fc.string({ minLength: 1, maxLength: 8 }),
  calls: fc.integer({ min: 10, max: 120 }),
  /** Calls start over this many milliseconds. */
  spread: fc.integer({ min: 0, max: 3_000 }),
  maxConcurrent: fc.integer({ min: 1, max: 6 }),
  maxQueue: fc.integer({ min: 0, max: 8 }),
  hedge: fc.boolean(),
  latencyRate: fc.double({ min: 0, max: 0.6, noNaN: true }),
  failureRate: fc.double({ min: 0, max: 0.5, noNaN: true }),
  defectRate: fc.double({ min: 0, max: 0.1, noNaN: true }),
  hangRate: fc.double({ min: 0, max: 0.2, noNaN: true })
})

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never

const totalTimeoutMillis = 3_000

/**
 * Starts `calls` calls of `call` at random offsets within `spread` ms, moves the TestClock in 10 ms steps
 * (timers fire in order) until they have all ended or their total timeout has passed for every one, and
 * reports the calls still running, the exits of the others and the longest call's duration.
 */
const drive = <A, E>(
  s: { readonly calls: number; readonly spread: number },
  call: (i: number) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const offsets = yield* Effect.forEach(Array.from({ length: s.calls }), () => Random.nextBetween(0, s.spread + 1))
    let longestCall = 0
    const timed = (i: number) =>
      Effect.gen(function* () {
        const start = yield* Clock.currentTimeMillis
        const exit = yield* Effect.exit(call(i))
        longestCall = Math.max(longestCall, (yield* Clock.currentTimeMillis) - start)
        return exit
      })
    const fibers = yield* Effect.forEach(offsets, (offset, i) =>
      Effect.forkChild(Effect.delay(timed(i), `${Math.floor(offset)} millis`))
    )
    const horizon = s.spread + totalTimeoutMillis + 100
    for (let t = 0; t < horizon && fibers.some((f) => f.pollUnsafe() === undefined); t += 10) {
      yield* TestClock.adjust("10 millis")
    }
    const pending = fibers.filter((f) => f.pollUnsafe() === undefined).length
    const exits = yield* Effect.forEach(
      fibers.filter((f) => f.pollUnsafe() !== undefined),
      (f) => Fiber.join(f)
    )
    return { pending, exits, longestCall }
  })

const run = (s: Scenario) =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({ name: "soak", consecutiveFailures: 4, openDuration: "500 millis" })
    const bulkhead = yield* Bulkhead.make({
      name: "soak",
      maxConcurrent: s.maxConcurrent,
      maxQueue: s.maxQueue,
      maxWait: "400 millis"
    })
    const chaos = yield* Chaos.make({
      name: "soak",
      latencyRate: s.latencyRate,
      latencyMin: "10 millis",
      latencyMax: "400 millis",
      failureRate: s.failureRate,
      defectRate: s.defectRate,
      hangRate: s.hangRate
    })
    const hedge = Hedge.make({ name: "soak", delay: "150 millis" })
    const policy = yield* Policy.make({
      name: "soak",
      totalTimeout: `${totalTimeoutMillis} millis`,
      retry: Retry.exponential({ base: "20 millis", cap: "200 millis", maxAttempts: 3 }),
      circuitBreaker: breaker,
      bulkhead,
      ...(s.hedge ? { hedge } : {}),
      attemptTimeout: "250 millis"
    })

    let inFlight = 0
    let mostInFlight = 0
    let started = 0
    const operation = (i: number) =>
      Effect.suspend(() => {
        started++
        inFlight++
        mostInFlight = Math.max(mostInFlight, inFlight)
        return chaos.inject(Effect.as(Effect.sleep("20 millis"), i))
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            inFlight--
          })
        )
      )

    const { pending, exits, longestCall } = yield* drive(s, (i) => Policy.apply(operation(i), policy))
    return {
      pending,
      exits,
      inFlight,
      mostInFlight,
      longestCall,
      started,
      bulkhead: yield* bulkhead.stats,
      breaker: yield* breaker.stats,
      chaos: yield* chaos.stats
    }
  }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()), Random.withSeed(s.seed))

/** Why a call failed, when the policy declares it: an error tag, or the injected defect. */
const failureKind = (cause: Cause.Cause<unknown>): string => {
  const reason = cause.reasons[0]
  if (reason === undefined) return "empty cause"
  if (reason._tag === "Fail") {
    const error = reason.error
    return typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "untagged error"
  }
  if (reason._tag === "Die") return reason.defect instanceof Chaos.ChaosDefect ? "ChaosDefect" : "other defect"
  return "interrupted"
}

describe("Soak: the patterns together under injected faults", () => {
  it.effect(
    "every call ends, the bulkhead bound holds, nothing is left running or held, failures are typed, counters agree",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(scenario, async (s) => {
            const r = await Effect.runPromise(run(s).pipe(Effect.provide(TestClock.layer())))
            assert.strictEqual(r.pending, 0, "calls still running after their total timeout")
            // the deadline bounds the whole call, retries and their waits included (to the clock's 10 ms step)
            assert.isAtMost(r.longestCall, totalTimeoutMillis + 10, "a call outlived its total timeout")
            assert.isAtMost(r.mostInFlight, s.maxConcurrent * (s.hedge ? 2 : 1), "attempts beyond the bulkhead")
            assert.strictEqual(r.inFlight, 0, "attempts left running")
            assert.deepStrictEqual([r.bulkhead.active, r.bulkhead.queued], [0, 0], "permits or waiters left")
            const kinds = r.exits.map((exit) => (Exit.isSuccess(exit) ? "success" : failureKind(exit.cause)))
            const allowed = [
              "success",
              "ChaosError",
              "ChaosDefect",
              "TimeoutError",
              "CircuitBreakerError",
              "BulkheadError"
            ]
            for (const kind of kinds) assert.include(allowed, kind)
            // one breaker success per successful call (the attempt that answered); every attempt went through chaos
            const successes = kinds.filter((kind) => kind === "success").length
            assert.strictEqual(r.breaker.successes, successes, "breaker successes vs successful calls")
            assert.strictEqual(r.chaos.calls, r.started, "chaos saw every attempt")
            assert.isAtMost(
              r.bulkhead.admitted + r.bulkhead.rejected,
              s.calls * 3,
              "bulkhead entries beyond the attempts"
            )
          }),
          { numRuns: 40 }
        )
      ),
    60_000
  )

  it.effect(
    "over replicas: a fallback answers every typed failure, the balancer and throttle hold nothing after, counts agree",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(replicaScenario, async (s) => {
            const r = await Effect.runPromise(runReplicas(s).pipe(Effect.provide(TestClock.layer())))
            assert.strictEqual(r.pending, 0, "calls still running after their total timeout")
            assert.isAtMost(r.longestCall, totalTimeoutMillis + 10, "a call outlived its total timeout")
            // the fallback answers every typed failure; only the injected defect passes through
            const kinds = r.exits.map((exit) =>
              Exit.isSuccess(exit) ? (exit.value === -1 ? "fallback" : "value") : failureKind(exit.cause)
            )
            for (const kind of kinds) assert.include(["value", "fallback", "ChaosDefect"], kind)
            assert.deepStrictEqual([r.inFlight, r.balancer.inFlight], [0, 0], "attempts left running")
            // every admitted call of the throttle ended, and was counted once
            const t = r.throttle
            assert.strictEqual(t.admitted, t.accepted + t.notAccepted + t.ignored, "throttle counts")
            // one breaker success per call answered by a replica
            assert.strictEqual(
              r.breaker.successes,
              kinds.filter((kind) => kind === "value").length,
              "breaker successes vs answered calls"
            )
          }),
          { numRuns: 25 }
        )
      ),
    60_000
  )
})

const replicaScenario = fc.record({
  seed: fc.string({ minLength: 1, maxLength: 8 }),
  calls: fc.integer({ min: 10, max: 100 }),
  spread: fc.integer({ min: 0, max: 3_000 }),
  strategy: fc.constantFrom("roundRobin", "leastRequests", "random"),
  /** How often the failing replica fails, hangs or dies. */
  failureRate: fc.double({ min: 0, max: 1, noNaN: true }),
  hangRate: fc.double({ min: 0, max: 0.3, noNaN: true }),
  defectRate: fc.double({ min: 0, max: 0.1, noNaN: true }),
  /** Requests per second the limiter lets through. */
  rate: fc.integer({ min: 5, max: 100 })
})

type ReplicaScenario = typeof replicaScenario extends fc.Arbitrary<infer T> ? T : never

const runReplicas = (s: ReplicaScenario) =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({
      name: "soak-replicas",
      consecutiveFailures: 5,
      openDuration: "300 millis"
    })
    const limiter = yield* RateLimiter.make({
      name: "soak-replicas",
      limits: [{ algorithm: "token-bucket", limit: s.rate, window: "1 second" }]
    })
    const throttle = yield* AdaptiveThrottle.make({ name: "soak-replicas" })
    const balancer = yield* LoadBalancer.make({
      name: "soak-replicas",
      strategy: s.strategy,
      endpoints: [{ id: "a" }, { id: "b" }, { id: "c" }],
      consecutiveFailures: 3
    })
    // replica b is the bad one: its calls fail, hang or die at the scenario's rates; every reply takes 20 ms
    const chaos = yield* Chaos.make({
      name: "soak-replicas",
      keys: ["b"],
      failureRate: s.failureRate * (1 - s.hangRate - s.defectRate),
      hangRate: s.hangRate,
      defectRate: s.defectRate
    })
    const policy = yield* Policy.make({
      name: "soak-replicas",
      fallback: { orElse: () => Effect.succeed(-1) },
      totalTimeout: `${totalTimeoutMillis} millis`,
      retry: Retry.constant({ delay: "20 millis", maxAttempts: 3 }),
      adaptiveThrottle: throttle,
      circuitBreaker: breaker,
      rateLimiter: limiter,
      attemptTimeout: "250 millis"
    })

    let inFlight = 0
    const operation = (i: number) =>
      LoadBalancer.call(balancer, (endpoint) =>
        Effect.suspend(() => {
          inFlight++
          return chaos.inject(Effect.as(Effect.sleep("20 millis"), i), { key: endpoint.id })
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              inFlight--
            })
          )
        )
      )

    const { pending, exits, longestCall } = yield* drive(s, (i) => Policy.apply(operation(i), policy))
    return {
      pending,
      exits,
      inFlight,
      longestCall,
      balancer: yield* balancer.stats,
      throttle: yield* throttle.stats,
      breaker: yield* breaker.stats
    }
  }).pipe(
    Effect.scoped,
    Effect.provide(Layer.mergeAll(CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory())),
    Random.withSeed(s.seed)
  )
