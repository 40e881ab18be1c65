import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Options, Registry } from "@effect-resilience/core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { metricValue } from "./metrics.ts"

/** An effect that fails `n` times, then succeeds with the number of calls. */
const failing = (n: number) => {
  let calls = 0
  return Effect.suspend(() => (++calls <= n ? Effect.fail("boom" as const) : Effect.succeed(calls)))
}

/** Collects the registry's events from now on (the subscription is in place when this returns). */
const collect = (registry: Registry.Registry) =>
  Effect.gen(function* () {
    const queue = yield* registry.subscribe
    return Effect.map(Queue.clear(queue), (events) =>
      events.map((e) =>
        e._tag === "PolicyReplaced"
          ? `${e._tag}:${e.policy}:${e.parts.join(",")}`
          : e._tag === "ReloadFailed"
            ? e._tag
            : `${e._tag}:${e.policy}`
      )
    )
  })

const breakerOf = (registry: Registry.Registry, name: string) =>
  Effect.map(registry.get(name), (policy) => {
    const breaker = policy.parts.circuitBreaker
    assert.isDefined(breaker)
    return breaker
  })

describe("Registry", () => {
  it.effect("builds policies from data and applies them by name (registry.apply and Registry.apply)", () =>
    Effect.gen(function* () {
      const registry = yield* Registry.make({
        policies: {
          payments: {
            retry: { kind: "constant", base: "10 millis", maxAttempts: 3 },
            circuitBreaker: { consecutiveFailures: 5 },
            attemptTimeout: "1 second"
          }
        }
      })
      const fiber = yield* Effect.forkChild(failing(2).pipe(registry.apply("payments")))
      yield* TestClock.adjust("20 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 3)
      const policy = yield* registry.get("payments")
      assert.deepStrictEqual(policy.layers, ["retry", "circuitBreaker", "attemptTimeout"])
      // each part is named after its policy
      assert.strictEqual(policy.parts.circuitBreaker?.name, "payments")
      assert.strictEqual(policy.parts.retry?.name, "payments")
      assert.strictEqual(yield* registry.version, 1)
      assert.deepStrictEqual(yield* registry.names, ["payments"])
      // the module-level combinator reads the registry from the context (data-first too)
      const viaContext = yield* Registry.apply(Effect.succeed("ok"), "payments").pipe(
        Effect.provideService(Registry.Registry, registry)
      )
      assert.strictEqual(viaContext, "ok")
    })
  )

  it.effect("defaults: a policy's part is merged over the default part, field by field", () =>
    Effect.gen(function* () {
      const registry = yield* Registry.make({
        defaults: { circuitBreaker: { consecutiveFailures: 3, openDuration: "10 seconds" } },
        policies: { a: { circuitBreaker: { consecutiveFailures: 7 } }, b: {} }
      })
      const a = yield* breakerOf(registry, "a")
      assert.strictEqual(a.options.consecutiveFailures, 7)
      assert.strictEqual(
        Duration.isDuration(a.options.openDuration) ? Duration.toMillis(a.options.openDuration) : -1,
        10_000
      )
      const b = yield* breakerOf(registry, "b")
      assert.strictEqual(b.options.consecutiveFailures, 3)
      assert.notStrictEqual(a, b)
    })
  )

  it.effect(
    "an unknown name fails with RegistryError (UnknownPolicy) naming it and the known names, without running",
    () =>
      Effect.gen(function* () {
        const registry = yield* Registry.make({ policies: { a: {}, b: {} } })
        let ran = false
        const error = yield* Effect.flip(
          Effect.sync(() => {
            ran = true
          }).pipe(registry.apply("c"))
        )
        assert.isFalse(ran)
        assert.isTrue(Registry.isRegistryError(error))
        assert.strictEqual(error._tag, "RegistryError")
        if (!Registry.isRegistryError(error)) return
        assert.strictEqual(error.reason._tag, "UnknownPolicy")
        assert.strictEqual(error.reason.name, "c")
        assert.deepStrictEqual(error.reason.known, ["a", "b"])
        assert.strictEqual(error.message, 'Unknown policy "c" (known: a, b)')
        // built without a stack trace
        assert.notInclude(error.stack ?? "", "Registry.test.ts")
        const got = yield* Effect.flip(registry.get("c"))
        assert.strictEqual(got.reason.name, "c")
      })
  )

  it.effect("an invalid configuration: one InvalidOptions listing every bad field with its path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Registry.make({
          defaults: { bulkhead: { maxConcurrent: 0 } },
          policies: {
            payments: {
              circuitBreaker: { failureRateThreshold: 1.5, minimumCalls: 0 },
              retry: { maxAttempts: 0 },
              bulkhead: {}
            },
            search: {
              totalTimeout: "1 second",
              attemptTimeout: "2 seconds",
              rateLimiter: { limits: [{ algorithm: "fixed-window", limit: 0, window: "1 minute" }] },
              bulkhead: { maxQueue: -1 }
            },
            reports: { hedge: { delay: 0 }, rateLimiter: {} }
          }
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "Registry")
      assert.deepStrictEqual(
        error.issues.map((issue) => `${issue.path} = ${issue.value}`),
        [
          "policies.payments.retry.maxAttempts = 0",
          "policies.payments.circuitBreaker.failureRateThreshold = 1.5",
          "policies.payments.circuitBreaker.minimumCalls = 0",
          "defaults.bulkhead.maxConcurrent = 0",
          "policies.search.rateLimiter.limits.0.limit = 0",
          "policies.search.bulkhead.maxQueue = -1",
          'policies.search.attemptTimeout = "2 seconds"',
          "policies.reports.rateLimiter.limits = undefined",
          "policies.reports.hedge.delay = 0"
        ]
      )
    })
  )

  it.effect("a reload leaving a policy's data unchanged keeps its instances: an open circuit stays open", () =>
    Effect.gen(function* () {
      const config: Registry.Input = {
        policies: { payments: { circuitBreaker: { consecutiveFailures: 1, openDuration: "1 minute" } } }
      }
      const registry = yield* Registry.make(config)
      const events = yield* collect(registry)
      const before = yield* registry.get("payments")
      yield* Effect.flip(failing(1).pipe(registry.apply("payments")))
      const breaker = yield* breakerOf(registry, "payments")
      assert.strictEqual((yield* breaker.state("payments"))._tag, "Open")
      // the same data, spelled differently (a duration in milliseconds, a default made explicit)
      const result = yield* registry.reload({
        policies: { payments: { circuitBreaker: { consecutiveFailures: 1, openDuration: 60_000, minimumCalls: 20 } } }
      })
      assert.deepStrictEqual(result.unchanged, ["payments"])
      assert.strictEqual(yield* registry.get("payments"), before)
      assert.strictEqual(yield* breakerOf(registry, "payments"), breaker)
      const rejected = yield* Effect.flip(Effect.succeed(1).pipe(registry.apply("payments")))
      assert.isTrue(CircuitBreaker.isCircuitBreakerError(rejected))
      assert.strictEqual(yield* registry.version, 2)
      assert.deepStrictEqual(yield* events, [])
    })
  )

  it.effect(
    "a reload changing the breaker's thresholds carries an open circuit over; the new thresholds apply after",
    () =>
      Effect.gen(function* () {
        const registry = yield* Registry.make({
          policies: {
            payments: {
              circuitBreaker: { consecutiveFailures: 1, openDuration: "30 seconds" },
              attemptTimeout: "5 seconds"
            }
          }
        })
        const events = yield* collect(registry)
        const call = (effect: Effect.Effect<number, "boom">) => effect.pipe(registry.apply("payments", { key: "eu" }))
        yield* Effect.flip(call(failing(1)))
        const old = yield* breakerOf(registry, "payments")
        assert.strictEqual((yield* old.state("eu"))._tag, "Open")
        yield* TestClock.adjust("10 seconds")
        const result = yield* registry.reload({
          policies: {
            payments: {
              circuitBreaker: { consecutiveFailures: 3, openDuration: "30 seconds" },
              attemptTimeout: "5 seconds"
            }
          }
        })
        assert.deepStrictEqual(result.replaced, [{ name: "payments", parts: ["circuitBreaker"] }])
        assert.deepStrictEqual(yield* events, ["PolicyReplaced:payments:circuitBreaker"])
        const breaker = yield* breakerOf(registry, "payments")
        assert.notStrictEqual(breaker, old)
        assert.strictEqual(breaker.options.consecutiveFailures, 3)
        // still open, with the time it had left
        const state = yield* breaker.state("eu")
        assert.strictEqual(state._tag, "Open")
        const rejected = yield* Effect.flip(call(Effect.succeed(1)))
        assert.isTrue(CircuitBreaker.isRejection(rejected))
        yield* TestClock.adjust("20 seconds")
        // half-open: a probe succeeds and closes it
        assert.strictEqual(yield* call(Effect.succeed(7)), 7)
        assert.strictEqual((yield* breaker.state("eu"))._tag, "Closed")
        // the new threshold: two failures in a row no longer open it, the third does
        yield* Effect.flip(call(failing(1)))
        yield* Effect.flip(call(failing(1)))
        assert.strictEqual((yield* breaker.state("eu"))._tag, "Closed")
        yield* Effect.flip(call(failing(1)))
        assert.strictEqual((yield* breaker.state("eu"))._tag, "Open")
      })
  )

  it.effect(
    "a removed policy: UnknownPolicy on the next call; a call in flight completes, and its limiter is released only after it",
    () =>
      Effect.gen(function* () {
        const registry = yield* Registry.make({
          policies: {
            search: { rateLimiter: { limits: [{ algorithm: "fixed-window", limit: 10, window: "1 minute" }] } },
            reports: {}
          }
        })
        const events = yield* collect(registry)
        const limiter = (yield* registry.get("search")).parts.rateLimiter
        assert.isDefined(limiter)
        if (limiter === undefined) return
        // the limiter's event stream ends when its scope closes
        const closed = yield* Effect.forkChild(Stream.runDrain(limiter.events))
        const gate = yield* Deferred.make<string>()
        const inFlight = yield* Effect.forkChild(Deferred.await(gate).pipe(registry.apply("search", { key: "k" })))
        yield* Effect.yieldNow
        const result = yield* registry.reload({ policies: { reports: {} } })
        assert.deepStrictEqual(result.removed, ["search"])
        assert.deepStrictEqual(yield* events, ["PolicyRemoved:search"])
        const error = yield* Effect.flip(Effect.succeed(1).pipe(registry.apply("search")))
        assert.isTrue(Registry.isRegistryError(error))
        yield* Effect.yieldNow
        assert.isUndefined(closed.pollUnsafe(), "released while a call is in flight")
        yield* Deferred.succeed(gate, "done")
        assert.strictEqual(yield* Fiber.join(inFlight), "done")
        yield* Fiber.join(closed)
        assert.isDefined(closed.pollUnsafe())
      })
  )

  it.effect("a call in flight that is interrupted ends its count: the removed policy's bulkhead is released", () =>
    Effect.gen(function* () {
      const registry = yield* Registry.make({ policies: { reports: { bulkhead: { maxConcurrent: 1 } } } })
      const bulkhead = (yield* registry.get("reports")).parts.bulkhead
      if (bulkhead === undefined) return assert.fail("no bulkhead")
      const closed = yield* Effect.forkChild(Stream.runDrain(bulkhead.events))
      const inFlight = yield* Effect.forkChild(Effect.never.pipe(registry.apply("reports")))
      yield* Effect.yieldNow
      yield* registry.reload({ policies: {} })
      yield* Effect.yieldNow
      assert.isUndefined(closed.pollUnsafe())
      yield* Fiber.interrupt(inFlight)
      yield* Fiber.join(closed)
    })
  )

  it.effect("a replaced limiter with nothing in flight is released at once; an unchanged one is kept", () =>
    Effect.gen(function* () {
      const limits = [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }] as const
      const registry = yield* Registry.make({
        policies: { a: { rateLimiter: { limits } }, b: { rateLimiter: { limits } } }
      })
      const a = (yield* registry.get("a")).parts.rateLimiter
      const b = (yield* registry.get("b")).parts.rateLimiter
      if (a === undefined || b === undefined) return assert.fail("no limiter")
      const aClosed = yield* Effect.forkChild(Stream.runDrain(a.events))
      yield* Effect.yieldNow
      // b's only token is spent: an unchanged limiter keeps its counts
      yield* Effect.succeed(1).pipe(registry.apply("b", { key: "k" }))
      yield* registry.reload({
        policies: {
          a: { rateLimiter: { limits: [{ algorithm: "fixed-window", limit: 2, window: "1 minute" }] } },
          b: { rateLimiter: { limits } }
        }
      })
      yield* Fiber.join(aClosed)
      assert.strictEqual((yield* registry.get("b")).parts.rateLimiter, b)
      const refused = yield* Effect.flip(Effect.succeed(1).pipe(registry.apply("b", { key: "k" })))
      assert.strictEqual(refused._tag, "RateLimiterError")
    })
  )

  it.effect("an invalid reload keeps the old configuration, emits ReloadFailed and fails with the InvalidOptions", () =>
    Effect.gen(function* () {
      const registry = yield* Registry.make({ policies: { a: { attemptTimeout: "1 second" } } })
      const queue = yield* registry.subscribe
      const before = yield* registry.get("a")
      const error = yield* Effect.flip(
        registry.reload({ policies: { a: { attemptTimeout: "2 seconds" }, b: { bulkhead: { maxConcurrent: -1 } } } })
      )
      assert.deepStrictEqual(
        error.issues.map((issue) => issue.path),
        ["policies.b.bulkhead.maxConcurrent"]
      )
      assert.strictEqual(yield* registry.get("a"), before)
      assert.deepStrictEqual(yield* registry.names, ["a"])
      assert.strictEqual(yield* registry.version, 1)
      const event = yield* Queue.take(queue)
      assert.strictEqual(event._tag, "ReloadFailed")
      if (event._tag !== "ReloadFailed") return
      assert.strictEqual(event.error, error)
      assert.strictEqual(event.version, 1)
      const snapshots = yield* Metric.snapshot
      const name = { "resilience.name": "default" }
      assert.strictEqual(
        metricValue(snapshots, "resilience.registry.reloads", { ...name, "resilience.outcome": "ok" }),
        1
      )
      assert.strictEqual(
        metricValue(snapshots, "resilience.registry.reloads", { ...name, "resilience.outcome": "failed" }),
        1
      )
      assert.strictEqual(metricValue(snapshots, "resilience.registry.policies", name), 1)
    })
  )

  it.effect("a source stream applies configurations in order and goes on past an invalid one", () =>
    Effect.gen(function* () {
      const source = yield* Queue.unbounded<Registry.Input>()
      const registry = yield* Registry.make({ policies: { a: {} }, source: Stream.fromQueue(source) })
      const events = yield* collect(registry)
      yield* Queue.offer(source, { policies: { a: {}, b: {} } })
      yield* Queue.offer(source, { policies: { a: { retry: { maxAttempts: 0 } } } })
      yield* Queue.offer(source, { policies: { b: { attemptTimeout: "1 second" } } })
      // let the source fiber drain the queue
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(yield* registry.names, ["b"])
      assert.strictEqual(yield* registry.version, 3)
      assert.deepStrictEqual(yield* events, [
        "PolicyAdded:b",
        "ReloadFailed",
        "PolicyReplaced:b:attemptTimeout",
        "PolicyRemoved:a"
      ])
      assert.deepStrictEqual(yield* registry.snapshot, { policies: { b: { attemptTimeout: "1 second" } } })
    })
  )

  it.effect("concurrent reloads are serialised: each applies whole, in the order they took the lock", () =>
    Effect.gen(function* () {
      const registry = yield* Registry.make({ policies: {} })
      const results = yield* Effect.all(
        [
          registry.reload({ policies: { a: { circuitBreaker: {} } } }),
          registry.reload({ policies: { b: { circuitBreaker: {} } } })
        ],
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        results.map((r) => [r.version, r.added, r.removed]),
        [
          [2, ["a"], []],
          [3, ["b"], ["a"]]
        ]
      )
      assert.deepStrictEqual(yield* registry.names, ["b"])
    })
  )

  it.effect("layerConfig reads a nested structure (ConfigProvider.fromUnknown)", () =>
    Effect.gen(function* () {
      const provider = ConfigProvider.fromUnknown({
        resilience: {
          defaults: { retry: { maxAttempts: 2 } },
          policies: {
            payments: { circuitBreaker: { consecutiveFailures: 3, openDuration: "10 seconds" }, retry: {} },
            search: { rateLimiter: { limits: [{ algorithm: "token-bucket", limit: 5, window: "1 second" }] } }
          }
        }
      })
      const registry = yield* Effect.provide(
        Registry.Registry,
        Registry.layerConfig("resilience").pipe(Layer.provide(ConfigProvider.layer(provider)))
      )
      assert.strictEqual(registry.name, "resilience")
      assert.deepStrictEqual(yield* registry.names, ["payments", "search"])
      const payments = yield* registry.get("payments")
      assert.strictEqual(payments.parts.circuitBreaker?.options.consecutiveFailures, 3)
      assert.strictEqual(payments.parts.retry?.maxAttempts, 2)
    })
  )

  it.effect("layerConfig reads a JSON string (ConfigProvider.fromEnv); bad values fail with every path", () =>
    Effect.gen(function* () {
      const good = ConfigProvider.fromEnv({
        env: { RESILIENCE: JSON.stringify({ policies: { payments: { bulkhead: { maxConcurrent: 4 } } } }) }
      })
      const registry = yield* Effect.provide(
        Registry.Registry,
        Registry.layerConfig("RESILIENCE").pipe(Layer.provide(ConfigProvider.layer(good)))
      )
      assert.strictEqual((yield* registry.get("payments")).parts.bulkhead?.options.maxConcurrent, 4)
      const bad = ConfigProvider.fromEnv({
        env: {
          RESILIENCE: JSON.stringify({
            policies: { payments: { bulkhead: { maxConcurrent: "four" }, circuitBreaker: { failureRateThreshold: 2 } } }
          })
        }
      })
      const error = yield* Effect.flip(
        Effect.provide(
          Registry.Registry,
          Registry.layerConfig("RESILIENCE").pipe(Layer.provide(ConfigProvider.layer(bad)))
        )
      )
      assert.strictEqual(error._tag, "InvalidOptions")
      if (error._tag !== "InvalidOptions") return
      assert.deepStrictEqual(
        error.issues.map((issue) => `${issue.path} = ${issue.value}`),
        [
          "policies.payments.circuitBreaker.failureRateThreshold = 2",
          'policies.payments.bulkhead.maxConcurrent = "four"'
        ]
      )
    })
  )

  it.effect(
    "layerConfig with reloadEvery re-reads the config on the clock and reloads only when its data changed",
    () =>
      Effect.gen(function* () {
        const json = (threshold: number) =>
          JSON.stringify({ policies: { payments: { circuitBreaker: { consecutiveFailures: threshold } } } })
        let env: Record<string, string> = { RESILIENCE: json(3) }
        const provider = ConfigProvider.make((path) => ConfigProvider.fromEnv({ env }).load(path))
        yield* Effect.gen(function* () {
          const registry = yield* Registry.Registry
          const events = yield* collect(registry)
          yield* TestClock.adjust("30 seconds")
          assert.strictEqual(yield* registry.version, 1, "unchanged data: no reload")
          env = { RESILIENCE: json(5) }
          yield* TestClock.adjust("29 seconds")
          assert.strictEqual(yield* registry.version, 1)
          yield* TestClock.adjust("1 second")
          assert.strictEqual(yield* registry.version, 2)
          assert.strictEqual((yield* breakerOf(registry, "payments")).options.consecutiveFailures, 5)
          // an invalid read: reported once, the old configuration kept
          env = { RESILIENCE: json(0) }
          yield* TestClock.adjust("60 seconds")
          assert.strictEqual(yield* registry.version, 2)
          assert.deepStrictEqual(yield* events, ["PolicyReplaced:payments:circuitBreaker", "ReloadFailed"])
        }).pipe(
          Effect.provide(
            Registry.layerConfig("RESILIENCE", { reloadEvery: "30 seconds" }).pipe(
              Layer.provide(ConfigProvider.layer(provider))
            )
          )
        )
      })
  )

  it.effect("the instances of a registry are released with its scope", () =>
    Effect.gen(function* () {
      const scoped = yield* Effect.scoped(
        Effect.gen(function* () {
          const registry = yield* Registry.make({ policies: { a: { bulkhead: { maxConcurrent: 1 } } } })
          const bulkhead = (yield* registry.get("a")).parts.bulkhead
          if (bulkhead === undefined) return assert.fail("no bulkhead")
          const fiber = yield* Effect.forkDetach(Stream.runDrain(bulkhead.events))
          yield* Effect.yieldNow
          return fiber
        })
      )
      yield* Fiber.join(scoped)
    })
  )
})

describe("Registry lastFailure", () => {
  it.effect(
    "undefined before any refused reload; then the last refusal (version kept, clock time, error) until the next",
    () =>
      Effect.gen(function* () {
        const registry = yield* Registry.make({ policies: { a: { attemptTimeout: "1 second" } } })
        assert.isUndefined(yield* registry.lastFailure)
        yield* TestClock.adjust("5 seconds")
        const first = yield* Effect.flip(registry.reload({ policies: { b: { bulkhead: { maxConcurrent: -1 } } } }))
        assert.deepStrictEqual(yield* registry.lastFailure, { version: 1, failedAt: 5_000, error: first })
        // a reload applied moves the version on, and leaves the last refusal as it was
        yield* registry.reload({ policies: { a: {} } })
        assert.deepStrictEqual(yield* registry.lastFailure, { version: 1, failedAt: 5_000, error: first })
        yield* TestClock.adjust("1 second")
        const second = yield* Effect.flip(
          registry.reload({ policies: { c: { retry: { kind: "constant", base: 0, maxAttempts: 0 } } } })
        )
        assert.notStrictEqual(second, first)
        assert.deepStrictEqual(yield* registry.lastFailure, { version: 2, failedAt: 6_000, error: second })
      })
  )
})
