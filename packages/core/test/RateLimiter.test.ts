import { assert, describe, it } from "@effect/vitest"
import { Options, RateLimiter } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Scheduler from "effect/Scheduler"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as engine from "../src/internal/rateLimiter.ts"

const make = (input: RateLimiter.Input) => RateLimiter.make(input).pipe(Effect.provide(RateLimiter.layerStoreMemory()))

/** What the instrumented store saw: every call a limiter made to it, and a hook run after each `consume`. */
interface Spy {
  calls: number
  afterConsume: ((key: string, allowed: boolean) => void) | undefined
}

/** The memory store, with every call a limiter makes to it counted in `spy`. */
const instrumented = (spy: Spy): Layer.Layer<RateLimiter.RateLimiterStore> =>
  Layer.effect(
    RateLimiter.RateLimiterStore,
    Effect.map(RateLimiter.RateLimiterStore, (memory) =>
      RateLimiter.RateLimiterStore.of({
        compile: (limit, maxKeys) => {
          const inner = memory.compile(limit, maxKeys)
          return {
            ...inner,
            check: (key, now, cost, out) => {
              spy.calls++
              return inner.check(key, now, cost, out)
            },
            consume: (key, now, cost, out) => {
              spy.calls++
              const decision = inner.consume(key, now, cost, out)
              spy.afterConsume?.(key, decision.allowed)
              return decision
            },
            refund: (key, now, cost) => {
              spy.calls++
              inner.refund(key, now, cost)
            },
            penalize: (key, now, cost) => {
              spy.calls++
              inner.penalize(key, now, cost)
            }
          }
        }
      })
    )
  ).pipe(Layer.provide(RateLimiter.layerStoreMemory()))

/**
 * A scheduler that, once armed, parks the next fiber (other than `except`) at
 * its next step, until `release`: a deterministic handle on "after this
 * happened, before that fiber goes on".
 */
const parkingScheduler = () => {
  const base = new Scheduler.MixedScheduler()
  const parked: Array<() => void> = []
  let armed = false
  let except: unknown
  let holdNext = false
  const scheduler: Scheduler.Scheduler = {
    executionMode: base.executionMode,
    shouldYield: (fiber) => {
      if (armed && fiber !== except) {
        armed = false
        holdNext = true
        return true
      }
      return base.shouldYield(fiber)
    },
    makeDispatcher: () => {
      const inner = base.makeDispatcher()
      return {
        scheduleTask: (task, priority) => {
          if (!holdNext) return inner.scheduleTask(task, priority)
          holdNext = false
          parked.push(task)
        },
        flush: () => inner.flush()
      }
    }
  }
  return {
    scheduler,
    parked,
    arm: (exceptFiber: unknown) => {
      armed = true
      except = exceptFiber
    },
    release: () => {
      for (const task of parked.splice(0)) task()
    }
  }
}

/** Every field of a decision, durations in milliseconds, its policies included. */
const fields = (d: RateLimiter.Decision) => ({
  allowed: d.allowed,
  policy: d.policy,
  limit: d.limit,
  remaining: d.remaining,
  reset: Duration.toMillis(d.reset),
  retryAfter: Duration.toMillis(d.retryAfter),
  policies: d.policies.map((p) => ({
    policy: p.policy,
    allowed: p.allowed,
    limit: p.limit,
    remaining: p.remaining,
    reset: Duration.toMillis(p.reset),
    retryAfter: Duration.toMillis(p.retryAfter),
    windowSeconds: p.windowSeconds
  }))
})

const allowedCount = (limiter: RateLimiter.RateLimiter, key: string, n: number, cost = 1) =>
  Effect.map(
    Effect.forEach(Array.from({ length: n }), () => limiter.consume(key, cost)),
    (decisions) => decisions.filter((d) => d.allowed).length
  )

describe("RateLimiter", () => {
  it.effect("a fixed window: limit per window, retryAfter to the window's end, remaining and reset", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [{ algorithm: "fixed-window", limit: 3, window: "10 seconds", name: "api" }]
      })
      yield* TestClock.adjust("4 seconds")
      const first = yield* limiter.consume("k")
      assert.deepStrictEqual(
        [first.allowed, first.policy, first.limit, first.remaining, Duration.toMillis(first.reset)],
        [true, "api", 3, 2, 6_000]
      )
      assert.strictEqual(yield* allowedCount(limiter, "k", 5), 2)
      const refused = yield* limiter.consume("k")
      assert.deepStrictEqual(
        [refused.allowed, refused.remaining, Duration.toMillis(refused.retryAfter)],
        [false, 0, 6_000]
      )
      yield* TestClock.adjust("6 seconds")
      assert.strictEqual(yield* allowedCount(limiter, "k", 5), 3)
    })
  )

  it.effect("several limits at once: all must pass, and nothing is consumed when one refuses", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [
          { algorithm: "token-bucket", limit: 5, window: "1 second", name: "per-second" },
          { algorithm: "fixed-window", limit: 8, window: "1 hour", name: "per-hour" }
        ]
      })
      assert.strictEqual(yield* allowedCount(limiter, "k", 7), 5)
      const refused = yield* limiter.consume("k")
      assert.strictEqual(refused.policy, "per-second")
      yield* TestClock.adjust("1 second")
      // the hourly window saw only the 5 allowed requests: 3 more fit
      assert.strictEqual(yield* allowedCount(limiter, "k", 3), 3)
      const hourly = yield* limiter.consume("k")
      assert.deepStrictEqual([hourly.allowed, hourly.policy], [false, "per-hour"])
      assert.deepStrictEqual(
        hourly.policies.map((p) => [p.policy, p.allowed]),
        [
          ["per-second", true],
          ["per-hour", false]
        ]
      )
      // the per-second bucket was not charged by the refused request: it still holds 2
      assert.strictEqual(hourly.policies[0]?.remaining, 2)
    })
  )

  it.effect("weighted costs", () =>
    Effect.gen(function* () {
      const limiter = yield* make({ limits: [{ algorithm: "sliding-log", limit: 10, window: "1 minute" }] })
      assert.strictEqual(yield* allowedCount(limiter, "k", 4, 3), 3)
      const tooBig = yield* limiter.consume("other", 11)
      assert.deepStrictEqual([tooBig.allowed, tooBig.retryAfter], [false, Duration.infinity])
    })
  )

  it.effect("GCRA as redis-cell: burst 15, 30 per minute", () =>
    Effect.gen(function* () {
      const limiter = yield* make({ limits: [{ algorithm: "gcra", limit: 30, window: "1 minute", burst: 16 }] })
      const first = yield* limiter.consume("user123")
      assert.deepStrictEqual(
        [first.allowed, first.limit, first.remaining, Duration.toMillis(first.reset)],
        [true, 16, 15, 2_000]
      )
      assert.strictEqual(yield* allowedCount(limiter, "user123", 20), 15)
      const limited = yield* limiter.consume("user123")
      assert.strictEqual(Duration.toMillis(limited.retryAfter), 2_000)
    })
  )

  it.effect("allow and deny lists, penalties and rewards", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [{ algorithm: "token-bucket", limit: 2, window: "1 minute" }],
        allow: ["trusted"],
        deny: ["banned"]
      })
      assert.strictEqual(yield* allowedCount(limiter, "trusted", 10), 10)
      const banned = yield* limiter.consume("banned")
      assert.deepStrictEqual([banned.allowed, banned.policy, banned.retryAfter], [false, "deny", Duration.infinity])
      yield* limiter.penalize("k", 2)
      assert.strictEqual(yield* allowedCount(limiter, "k", 1), 0)
      yield* limiter.reward("k", 10)
      assert.strictEqual(yield* allowedCount(limiter, "k", 5), 2)
    })
  )

  it.effect("limit: rejects with a typed RateLimitExceeded carrying retryAfter and the policy", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        name: "orders",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute", name: "per-minute" }]
      })
      assert.strictEqual(yield* RateLimiter.limit(Effect.succeed("ok"), limiter, { key: "alice" }), "ok")
      const error = yield* Effect.flip(RateLimiter.limit(Effect.succeed("ok"), limiter, { key: "alice" }))
      assert.isTrue(RateLimiter.isRateLimiterError(error))
      if (error.reason._tag !== "RateLimitExceeded") return assert.fail(error.reason._tag)
      assert.deepStrictEqual(
        [
          error.reason.limiter,
          error.reason.key,
          error.reason.policy,
          error.reason.remaining,
          Duration.toMillis(error.reason.retryAfter)
        ],
        ["orders", "alice", "per-minute", 0, 60_000]
      )
      assert.strictEqual(error.message, "Rate limit exceeded")
    })
  )

  it.effect("concurrency: permits held while the call runs, released on exit and on interruption", () =>
    Effect.gen(function* () {
      const limiter = yield* make({ limits: [{ algorithm: "concurrency", limit: 2 }] })
      const gate = yield* Deferred.make<void>()
      const held = RateLimiter.limit(Deferred.await(gate), limiter, { key: "db" })
      const a = yield* Effect.forkChild(held)
      const b = yield* Effect.forkChild(held)
      yield* Effect.yieldNow
      const third = yield* Effect.flip(RateLimiter.limit(Effect.void, limiter, { key: "db" }))
      assert.strictEqual(third.reason._tag, "RateLimitExceeded")
      yield* Fiber.interrupt(a)
      // an interrupted call gives its permit back
      yield* RateLimiter.limit(Effect.void, limiter, { key: "db" })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(b)
      assert.strictEqual((yield* limiter.check("db", 2)).allowed, true)
    })
  )

  it.effect("monitoring: limit-hit events, decisions metrics by policy, top clients", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        name: "search",
        limits: [{ algorithm: "fixed-window", limit: 2, window: "1 minute", name: "burst" }]
      })
      const events = yield* limiter.subscribe
      yield* allowedCount(limiter, "heavy", 10)
      yield* allowedCount(limiter, "light", 1)
      const hits = (yield* Queue.takeAll(events)).flatMap((e) => (e._tag === "LimitHit" ? [e] : []))
      assert.strictEqual(hits.length, 8)
      const first = hits[0]
      assert.deepStrictEqual(
        [first?.key, first?.policy, first === undefined ? -1 : Duration.toMillis(first.retryAfter)],
        ["heavy", "burst", 60_000]
      )
      const top = yield* limiter.topClients(2)
      assert.deepStrictEqual(top, [
        { key: "heavy", cost: 10 },
        { key: "light", cost: 1 }
      ])
      const snapshot = yield* Metric.snapshot
      const count = (attributes: Record<string, string>) => {
        const s = snapshot.find(
          (m) =>
            m.id === "resilience.rate_limiter.decisions" &&
            Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
        )
        return s !== undefined && "count" in s.state ? s.state.count : -1
      }
      assert.deepStrictEqual(
        [
          count({ "resilience.name": "search", "resilience.outcome": "allowed" }),
          count({ "resilience.name": "search", "resilience.outcome": "rejected", "resilience.policy": "burst" })
        ],
        [3, 8]
      )
      for (const s of snapshot.filter((m) => m.id.startsWith("resilience.rate_limiter"))) {
        assert.notInclude(Object.values(s.attributes ?? {}), "heavy")
      }
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("bounded memory: maxKeys per limit, idle keys swept by the background fiber", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [{ algorithm: "token-bucket", limit: 10, window: "1 second" }],
        maxKeys: 100,
        sweepInterval: "10 seconds"
      })
      for (let i = 0; i < 1_000; i++) yield* limiter.consume(`client-${i}`)
      assert.strictEqual((yield* limiter.stats).keys, 100)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* limiter.stats).keys, 0)
    })
  )

  it.effect("invalid options fail with one error listing every bad field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        RateLimiter.validateOptions({
          limits: [
            { algorithm: "token-bucket", limit: 0, window: "1 second", burst: 5 },
            { algorithm: "fixed-window", limit: 10, window: 0 }
          ],
          maxKeys: -1
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.deepStrictEqual(
        error.issues.map((i) => i.path),
        ["limits.0.limit", "maxKeys", "limits.1.window"]
      )
    })
  )
})

describe("RateLimiter shape mode", () => {
  const shaped = (maxWait: Duration.Input, maxQueue = 100) =>
    make({
      limits: [{ algorithm: "token-bucket", limit: 1, window: "1 second" }],
      mode: "shape",
      maxWait,
      maxQueue
    })

  it.effect("waits in line until allowed, served in order", () =>
    Effect.gen(function* () {
      const limiter = yield* shaped("10 seconds")
      const ran: Array<string> = []
      const call = (id: string) =>
        RateLimiter.limit(
          Effect.flatMap(
            Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe())),
            (now) => Effect.sync(() => ran.push(`${id}@${now}`))
          ),
          limiter,
          { key: "k" }
        )
      const fibers = yield* Effect.forEach(["a", "b", "c", "d"], (id) => Effect.forkChild(call(id)))
      yield* Effect.yieldNow
      for (let i = 0; i < 4; i++) yield* TestClock.adjust("1 second")
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(ran, ["a@0", "b@1000", "c@2000", "d@3000"])
    })
  )

  it.effect("a request that would wait past maxWait, or join a full line, is refused", () =>
    Effect.gen(function* () {
      const limiter = yield* shaped("1500 millis", 2)
      yield* RateLimiter.limit(Effect.void, limiter, { key: "k" })
      const waiting = yield* Effect.forkChild(RateLimiter.limit(Effect.void, limiter, { key: "k" }))
      const alsoWaiting = yield* Effect.forkChild(Effect.exit(RateLimiter.limit(Effect.void, limiter, { key: "k" })))
      yield* Effect.yieldNow
      const full = yield* Effect.flip(RateLimiter.limit(Effect.void, limiter, { key: "k" }))
      assert.strictEqual(full.reason._tag, "RateLimitExceeded")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiting)
      // the second waiter would be served at 2 s: past its 1.5 s maxWait
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.join(alsoWaiting)
      assert.isTrue(exit._tag === "Failure")
    })
  )

  it.effect("an interrupted waiter gives back its place; the next one moves up", () =>
    Effect.gen(function* () {
      const limiter = yield* shaped("10 seconds")
      const ran: Array<string> = []
      yield* RateLimiter.limit(Effect.void, limiter, { key: "k" })
      const b = yield* Effect.forkChild(
        RateLimiter.limit(
          Effect.sync(() => ran.push("b")),
          limiter,
          { key: "k" }
        )
      )
      const c = yield* Effect.forkChild(
        RateLimiter.limit(
          Effect.sync(() => ran.push("c")),
          limiter,
          { key: "k" }
        )
      )
      yield* Effect.yieldNow
      yield* Fiber.interrupt(b)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(c)
      assert.deepStrictEqual(ran, ["c"])
      // c consumed the token at 1 s; nothing else was charged
      const next = yield* limiter.check("k")
      assert.strictEqual(Duration.toMillis(next.retryAfter), 1_000)
    })
  )
})

describe("RateLimiter monitoring over time", () => {
  it.effect("an alert triggers when the rejection rate stays high for alertFor, and resolves when it falls", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        name: "api",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 hour" }],
        alertRejectionRate: 0.5,
        alertFor: "10 seconds"
      })
      const events = yield* limiter.subscribe
      const alerts = () =>
        Effect.map(Queue.takeAll(events), (all) => all.filter((e) => e._tag !== "LimitHit").map((e) => e._tag))
      for (let second = 0; second < 9; second++) {
        yield* allowedCount(limiter, "hot", 4)
        yield* TestClock.adjust("1 second")
      }
      assert.deepStrictEqual(yield* alerts(), [])
      for (let second = 0; second < 3; second++) {
        yield* allowedCount(limiter, "hot", 4)
        yield* TestClock.adjust("1 second")
      }
      assert.deepStrictEqual(yield* alerts(), ["AlertTriggered"])
      const raised = yield* limiter.alert
      assert.deepStrictEqual([raised.alerting, raised.rejectionRate], [true, 1])
      assert.isDefined(raised.since)
      // traffic that passes: fresh keys
      for (let second = 0; second < 2; second++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume(`fresh-${second}-${i}`)
        yield* TestClock.adjust("1 second")
      }
      assert.deepStrictEqual(yield* alerts(), ["AlertResolved"])
      assert.deepStrictEqual(yield* limiter.alert, { alerting: false, rejectionRate: 0, since: undefined })
    })
  )
})

describe("RateLimiter tiers and block cache", () => {
  it.effect("tiers give client classes their own quotas", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [{ algorithm: "fixed-window", limit: 2, window: "1 minute", name: "free" }],
        tiers: { pro: [{ algorithm: "fixed-window", limit: 5, window: "1 minute", name: "pro" }] },
        tierOf: (key) => (key.startsWith("pro:") ? "pro" : undefined)
      })
      assert.strictEqual(yield* allowedCount(limiter, "anon", 10), 2)
      assert.strictEqual(yield* allowedCount(limiter, "pro:acme", 10), 5)
      assert.strictEqual((yield* limiter.consume("pro:acme")).policy, "pro")
    })
  )

  it.effect("a key over its limit is refused from the block cache until its reset, with the time left", () =>
    Effect.gen(function* () {
      const limiter = yield* make({ limits: [{ algorithm: "fixed-window", limit: 1, window: "10 seconds" }] })
      yield* limiter.consume("k")
      const first = yield* limiter.consume("k")
      yield* TestClock.adjust("4 seconds")
      const cached = yield* limiter.consume("k")
      assert.deepStrictEqual(
        [first.allowed, Duration.toMillis(first.retryAfter), cached.allowed, Duration.toMillis(cached.retryAfter)],
        [false, 10_000, false, 6_000]
      )
      yield* TestClock.adjust("6 seconds")
      assert.strictEqual((yield* limiter.consume("k")).allowed, true)
      // a reward clears the block
      yield* limiter.consume("k")
      yield* limiter.reward("k", 1)
      assert.strictEqual((yield* limiter.consume("k")).allowed, true)
    })
  )
})

describe("RateLimiter edge cases", () => {
  it.effect("an invalid cost is a defect with a clear message; cost 0 only peeks", () =>
    Effect.gen(function* () {
      const limiter = yield* make({ limits: [{ algorithm: "token-bucket", limit: 1, window: "1 second" }] })
      const exit = yield* Effect.exit(limiter.consume("k", -5))
      assert.isTrue(exit._tag === "Failure" && exit.cause.reasons.some((r) => r._tag === "Die"))
      assert.strictEqual((yield* limiter.consume("k", 0)).remaining, 1)
    })
  )

  it.effect("the block cache refuses only requests at least as costly as the one refused", () =>
    Effect.gen(function* () {
      const limiter = yield* make({ limits: [{ algorithm: "token-bucket", limit: 4, window: "1 second" }] })
      yield* limiter.consume("k", 2)
      assert.strictEqual((yield* limiter.consume("k", 3)).allowed, false)
      assert.strictEqual((yield* limiter.consume("k", 1)).allowed, true)
    })
  )

  it.effect("shape mode: refusals (full line, too long a wait, a cost above the limit) are recorded", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [{ algorithm: "token-bucket", limit: 1, window: "1 second" }],
        mode: "shape",
        maxWait: "5 seconds"
      })
      yield* RateLimiter.limit(Effect.void, limiter, { key: "k" })
      const waiting = yield* Effect.forkChild(RateLimiter.limit(Effect.void, limiter, { key: "k" }))
      yield* Effect.yieldNow
      const tooBig = yield* Effect.flip(RateLimiter.limit(Effect.void, limiter, { key: "k", cost: 5 }))
      assert.strictEqual(tooBig.reason._tag, "RateLimitExceeded")
      assert.strictEqual((yield* limiter.stats).rejected, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiting)
    })
  )

  it.effect("tier limits report their bad fields under tiers.<name>", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        make({
          limits: [{ algorithm: "fixed-window", limit: 1, window: "1 second" }],
          tiers: { pro: [{ algorithm: "fixed-window", limit: 0, window: "1 second" }] }
        })
      )
      assert.deepStrictEqual(
        error.issues.map((i) => i.path),
        ["tiers.pro.limits.0.limit"]
      )
    })
  )
})

describe("RateLimiter block cache (audit)", () => {
  it.effect("while a key is blocked, its decisions do not touch the store until its reset", () =>
    Effect.gen(function* () {
      const spy: Spy = { calls: 0, afterConsume: undefined }
      const limiter = yield* RateLimiter.make({
        limits: [{ algorithm: "fixed-window", limit: 2, window: "10 seconds" }]
      }).pipe(Effect.provide(instrumented(spy)))
      assert.strictEqual(yield* allowedCount(limiter, "k", 3), 2)
      const touched = spy.calls
      assert.strictEqual(touched, 3)
      for (let second = 0; second < 10; second++) {
        for (let i = 0; i < 5; i++) {
          const d = yield* limiter.consume("k")
          assert.deepStrictEqual([d.allowed, Duration.toMillis(d.retryAfter)], [false, 10_000 - second * 1_000])
        }
        assert.strictEqual((yield* limiter.check("k")).allowed, false)
        if (second < 9) yield* TestClock.adjust("1 second")
      }
      // 60 refusals over 10 seconds, none of them from the store
      assert.strictEqual(spy.calls, touched)
      yield* TestClock.adjust("1 second")
      // the block ends at the window's reset: the next decision is the store's again
      assert.strictEqual((yield* limiter.consume("k")).allowed, true)
      assert.strictEqual(spy.calls, touched + 1)
      // other keys are decided by the store meanwhile
      yield* limiter.consume("other")
      assert.strictEqual(spy.calls, touched + 2)
    })
  )

  it.effect("with several limits, a blocked key does not touch the store either", () =>
    Effect.gen(function* () {
      const spy: Spy = { calls: 0, afterConsume: undefined }
      const limiter = yield* RateLimiter.make({
        limits: [
          { algorithm: "token-bucket", limit: 10, window: "1 second", name: "per-second" },
          { algorithm: "fixed-window", limit: 5, window: "1 minute", name: "per-minute" }
        ]
      }).pipe(Effect.provide(instrumented(spy)))
      assert.strictEqual(yield* allowedCount(limiter, "k", 6), 5)
      const touched = spy.calls
      for (let i = 0; i < 30; i++) {
        assert.strictEqual((yield* limiter.consume("k")).policy, "per-minute")
        yield* TestClock.adjust("1 second")
      }
      assert.strictEqual(spy.calls, touched)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual((yield* limiter.consume("k")).allowed, true)
      assert.isAbove(spy.calls, touched)
    })
  )

  it.effect("a cached refusal is the store's decision, counted down: its reset, not its retryAfter", () =>
    Effect.gen(function* () {
      const limits: RateLimiter.Input["limits"] = [{ algorithm: "token-bucket", limit: 4, window: "4 seconds" }]
      const cached = yield* make({ limits })
      // the same history without the refusal: nothing in its block cache, every answer from the store
      const reference = yield* make({ limits })
      yield* allowedCount(cached, "k", 4)
      yield* allowedCount(reference, "k", 4)
      const refused = yield* cached.consume("k")
      assert.deepStrictEqual(
        [refused.allowed, Duration.toMillis(refused.retryAfter), Duration.toMillis(refused.reset)],
        [false, 1_000, 4_000]
      )
      yield* TestClock.adjust("400 millis")
      const fromCache = yield* cached.consume("k")
      const fromStore = yield* reference.check("k")
      assert.deepStrictEqual(fields(fromCache), fields(fromStore))
      assert.deepStrictEqual([fields(fromCache).retryAfter, fields(fromCache).reset], [600, 3_600])
    })
  )

  it.effect("a cached refusal of several limits reports every policy as the store would", () =>
    Effect.gen(function* () {
      const limits: RateLimiter.Input["limits"] = [
        { algorithm: "fixed-window", limit: 3, window: "10 seconds", name: "burst" },
        { algorithm: "fixed-window", limit: 100, window: "1 hour", name: "hourly" }
      ]
      const spy: Spy = { calls: 0, afterConsume: undefined }
      const cached = yield* RateLimiter.make({ limits }).pipe(Effect.provide(instrumented(spy)))
      const reference = yield* make({ limits })
      yield* TestClock.adjust("2 seconds")
      yield* allowedCount(cached, "k", 3)
      yield* allowedCount(reference, "k", 3)
      assert.strictEqual((yield* cached.consume("k")).allowed, false)
      const touched = spy.calls
      yield* TestClock.adjust("5 seconds")
      const fromCache = yield* cached.consume("k")
      assert.strictEqual(spy.calls, touched, "answered from the block cache")
      assert.deepStrictEqual(fields(fromCache), fields(yield* reference.check("k")))
      assert.deepStrictEqual(fields(fromCache), {
        allowed: false,
        policy: "burst",
        limit: 3,
        remaining: 0,
        reset: 3_000,
        retryAfter: 3_000,
        policies: [
          {
            policy: "burst",
            allowed: false,
            limit: 3,
            remaining: 0,
            reset: 3_000,
            retryAfter: 3_000,
            windowSeconds: 10
          },
          {
            policy: "hourly",
            allowed: true,
            limit: 100,
            remaining: 97,
            reset: 3_600_000 - 7_000,
            retryAfter: 0,
            windowSeconds: 3_600
          }
        ]
      })
    })
  )

  it.effect("a request of another cost is decided by the store, and a refusal is held only at its own cost", () =>
    Effect.gen(function* () {
      const spy: Spy = { calls: 0, afterConsume: undefined }
      const limiter = yield* RateLimiter.make({
        limits: [{ algorithm: "token-bucket", limit: 4, window: "4 seconds" }]
      }).pipe(Effect.provide(instrumented(spy)))
      yield* limiter.consume("k", 3)
      const refused = yield* limiter.consume("k", 2)
      assert.strictEqual(Duration.toMillis(refused.retryAfter), 1_000)
      // cost 3 needs two more tokens: the store says 2 s, where the cost-2 refusal would say 1 s
      const costlier = yield* limiter.consume("k", 3)
      assert.deepStrictEqual([costlier.allowed, Duration.toMillis(costlier.retryAfter)], [false, 2_000])
      // the cheaper request passes and changes the state: the cost-3 refusal is not reused after it
      assert.strictEqual((yield* limiter.consume("k", 1)).allowed, true)
      const after = yield* limiter.consume("k", 3)
      assert.deepStrictEqual([after.allowed, Duration.toMillis(after.retryAfter)], [false, 3_000])
    })
  )
})

describe("RateLimiter several limits, options, shape mode, monitoring, scope (audit)", () => {
  it.effect("several limits: when the second refuses, the first is not charged (seen in later allowed counts)", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [
          { algorithm: "fixed-window", limit: 6, window: "1 hour", name: "hourly" },
          { algorithm: "fixed-window", limit: 2, window: "10 seconds", name: "burst" }
        ]
      })
      assert.strictEqual(yield* allowedCount(limiter, "k", 2), 2)
      // refused by the second limit, at alternating costs so that each is decided by the limits themselves
      const refused = [yield* limiter.consume("k", 1), yield* limiter.consume("k", 2), yield* limiter.consume("k", 1)]
      assert.deepStrictEqual(
        refused.map((d) => [d.allowed, d.policy]),
        [
          [false, "burst"],
          [false, "burst"],
          [false, "burst"]
        ]
      )
      // had they charged the hourly limit, it would be full (2 + 1 + 2 + 1 = 6) and nothing more would pass
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* allowedCount(limiter, "k", 3), 2)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* allowedCount(limiter, "k", 3), 2)
      yield* TestClock.adjust("10 seconds")
      const full = yield* limiter.consume("k")
      assert.deepStrictEqual([full.allowed, full.policy], [false, "hourly"])
    })
  )

  it.effect("bad top-level limits and two bad tiers: one InvalidOptions listing every issue", () =>
    Effect.gen(function* () {
      const input: RateLimiter.Input = {
        limits: [{ algorithm: "fixed-window", limit: 0, window: "1 second" }],
        maxKeys: 0,
        tiers: {
          gold: [{ algorithm: "fixed-window", limit: 5, window: 0 }],
          silver: [
            { algorithm: "token-bucket", limit: 1.5, window: "1 second" },
            { algorithm: "leaky-bucket", capacity: 5, leakPerSecond: 0 }
          ]
        },
        tierOf: () => undefined
      }
      const expected = [
        "limits.0.limit",
        "maxKeys",
        "tiers.gold.limits.0.window",
        "tiers.silver.limits.0.limit",
        "tiers.silver.limits.1.leakPerSecond"
      ]
      const fromMake = yield* Effect.flip(make(input))
      assert.instanceOf(fromMake, Options.InvalidOptions)
      assert.deepStrictEqual(
        fromMake.issues.map((i) => i.path),
        expected
      )
      const fromValidate = yield* Effect.flip(RateLimiter.validateOptions(input))
      assert.deepStrictEqual(
        fromValidate.issues.map((i) => i.path),
        expected
      )
      assert.include(fromMake.message, "tiers.silver.limits.0.limit = 1.5")
    })
  )

  it.effect("shape mode: a waiter charged and then interrupted before its effect starts gives its cost back", () =>
    Effect.gen(function* () {
      const spy: Spy = { calls: 0, afterConsume: undefined }
      const limiter = yield* RateLimiter.make({
        limits: [{ algorithm: "token-bucket", limit: 1, window: "1 second" }],
        mode: "shape",
        maxWait: "10 seconds"
      }).pipe(Effect.provide(instrumented(spy)))
      const ran: Array<string> = []
      const call = (id: string) =>
        RateLimiter.limit(
          Effect.flatMap(
            Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe())),
            (now) => Effect.sync(() => ran.push(`${id}@${now}`))
          ),
          limiter,
          { key: "k" }
        )
      yield* call("a")
      const b = yield* Effect.forkChild(call("b"))
      const c = yield* Effect.forkChild(call("c"))
      yield* Effect.yieldNow
      // at 1 s the store charges b its token; b is interrupted right then, before its effect starts
      spy.afterConsume = (key, allowed) => {
        if (key !== "k" || !allowed) return
        spy.afterConsume = undefined
        b.interruptUnsafe()
      }
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(b)
      assert.isTrue(Exit.hasInterrupts(exit))
      // b's token came back: c, next in line, ran at 1 s instead of 2 s
      assert.deepStrictEqual(ran, ["a@0", "c@1000"])
      yield* Fiber.join(c)
      assert.strictEqual(Duration.toMillis((yield* limiter.check("k")).retryAfter), 1_000)
    })
  )

  it.effect("shape mode: a waiter admitted (charged) and interrupted before it resumes gives its cost back", () =>
    Effect.gen(function* () {
      const spy: Spy = { calls: 0, afterConsume: undefined }
      const limiter = yield* RateLimiter.make({
        limits: [{ algorithm: "token-bucket", limit: 1, window: "1 second" }],
        mode: "shape",
        maxWait: "10 seconds"
      }).pipe(Effect.provide(instrumented(spy)))
      const parking = parkingScheduler()
      const ran: Array<string> = []
      yield* RateLimiter.limit(Effect.void, limiter, { key: "k" })
      const b = yield* Effect.forkChild(
        RateLimiter.limit(
          Effect.sync(() => ran.push("b")),
          limiter,
          { key: "k" }
        ).pipe(Effect.provideService(Scheduler.Scheduler, parking.scheduler))
      )
      yield* Effect.yieldNow
      // at 1 s the line's driver charges b and admits it; b's fiber is parked as it wakes up
      spy.afterConsume = (key, allowed) => {
        if (key !== "k" || !allowed) return
        spy.afterConsume = undefined
        parking.arm(Fiber.getCurrent())
      }
      yield* TestClock.adjust("1 second")
      assert.strictEqual(parking.parked.length, 1)
      assert.isFalse((yield* limiter.check("k")).allowed, "the token is b's")
      yield* Fiber.interrupt(b)
      parking.release()
      assert.deepStrictEqual(ran, [])
      // b's token came back
      assert.strictEqual(yield* allowedCount(limiter, "k", 2), 1)
    })
  )

  it.effect("shape mode: a new arrival lines up behind the waiters, even a cheap one that could pass at once", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        limits: [{ algorithm: "token-bucket", limit: 2, window: "2 seconds" }],
        mode: "shape",
        maxWait: "10 seconds"
      })
      const ran: Array<string> = []
      const call = (id: string, cost: number) =>
        RateLimiter.limit(
          Effect.flatMap(
            Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe())),
            (now) => Effect.sync(() => ran.push(`${id}@${now}`))
          ),
          limiter,
          { key: "k", cost }
        )
      yield* call("a", 1)
      // b needs 2 tokens, 1 is left: it waits 1 s
      const b = yield* Effect.forkChild(call("b", 2))
      yield* Effect.yieldNow
      // c needs the 1 token that is there, but b waits ahead of it
      assert.isTrue((yield* limiter.check("k", 1)).allowed)
      const c = yield* Effect.forkChild(call("c", 1))
      yield* Effect.yieldNow
      assert.deepStrictEqual(ran, ["a@0"])
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(b)
      yield* Fiber.join(c)
      assert.deepStrictEqual(ran, ["a@0", "b@1000", "c@2000"])
    })
  )

  it.effect("the usage and rejection-rate gauges read the last monitoring tick", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        name: "gauges",
        limits: [{ algorithm: "fixed-window", limit: 4, window: "1 hour" }],
        deny: ["banned"],
        // a tick of a tenth of alertFor: 1 s
        alertFor: "10 seconds"
      })
      const gauges = Effect.map(Metric.snapshot, (snapshot) => {
        const value = (id: string) => {
          const s = snapshot.find((m) => m.id === id && m.attributes?.["resilience.name"] === "gauges")
          return s !== undefined && "value" in s.state ? s.state.value : -1
        }
        return {
          usage: value("resilience.rate_limiter.usage"),
          rejectionRate: value("resilience.rate_limiter.rejection_rate")
        }
      })
      assert.deepStrictEqual(yield* gauges, { usage: 0, rejectionRate: 0 })
      // tick 1: 3 of 4 used by "a" (usage 0.75); 1 of 4 decisions refused (a denied key: no usage)
      yield* allowedCount(limiter, "a", 3)
      yield* limiter.consume("banned")
      // read at the tick, not as decisions happen
      assert.deepStrictEqual(yield* gauges, { usage: 0, rejectionRate: 0 })
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* gauges, { usage: 0.75, rejectionRate: 0.25 })
      // tick 2: "b" uses all 4 and is refused twice: usage 1, 2 of 6 refused
      yield* allowedCount(limiter, "b", 6)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* gauges, { usage: 1, rejectionRate: 2 / 6 })
      // tick 3: no traffic
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* gauges, { usage: 0, rejectionRate: 0 })
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("events: LimitHit on the events Stream, taken with Stream.take", () =>
    Effect.gen(function* () {
      const limiter = yield* make({
        name: "stream",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute", name: "one" }]
      })
      const taken = yield* Effect.forkChild(Stream.runCollect(Stream.take(limiter.events, 2)))
      yield* Effect.yieldNow
      yield* allowedCount(limiter, "a", 2)
      yield* allowedCount(limiter, "b", 3)
      const events = yield* Fiber.join(taken)
      assert.deepStrictEqual(
        events.map((e) =>
          e._tag === "LimitHit"
            ? [e._tag, e.limiter, e.key, e.policy, e.cost, Duration.toMillis(e.retryAfter)]
            : [e._tag]
        ),
        [
          ["LimitHit", "stream", "a", "one", 1, 60_000],
          ["LimitHit", "stream", "b", "one", 1, 60_000]
        ]
      )
    })
  )

  it.effect("the sweep fiber ends with the layer's scope: once it closes, idle keys are no longer swept", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        RateLimiter.layerMemory({
          limits: [{ algorithm: "token-bucket", limit: 10, window: "1 second" }],
          sweepInterval: "10 seconds"
        }),
        scope
      )
      const limiter = Context.get(context, RateLimiter.RateLimiter)
      for (let i = 0; i < 5; i++) yield* limiter.consume(`k${i}`)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* limiter.stats).keys, 0, "swept while the scope is open")
      for (let i = 0; i < 5; i++) yield* limiter.consume(`k${i}`)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual((yield* limiter.stats).keys, 5, "no sweep after the scope closed")
    })
  )
})

describe("RateLimiter memory store: the packed sliding log", () => {
  type Op =
    | {
        readonly kind: "consume" | "check" | "refund" | "penalize"
        readonly key: number
        readonly dt: number
        readonly cost: number
      }
    | { readonly kind: "sweep"; readonly dt: number }

  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 12,
      arbitrary: fc.record({
        kind: fc.constantFrom(
          "consume" as const,
          "consume" as const,
          "consume" as const,
          "check" as const,
          "refund" as const,
          "penalize" as const
        ),
        key: fc.integer({ min: 0, max: 3 }),
        dt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 3_000 })),
        cost: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 12 }), fc.constantFrom(0.5, 1.5, 2.25))
      })
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("sweep" as const), dt: fc.integer({ min: 0, max: 2_000 }) }) }
  )

  it("decides exactly as the pure algorithm on random traces (several keys, refunds, penalties, sweeps, evictions)", () => {
    const store = Effect.runSync(
      Effect.provide(
        Effect.map(RateLimiter.RateLimiterStore, (memory) => memory),
        RateLimiter.layerStoreMemory()
      )
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 2_000 }),
        fc.array(opArb, { maxLength: 150 }),
        fc.constantFrom(2, 3, 1_000),
        (limit, windowMillis, ops, maxKeys) => {
          const config = { limit, windowMillis }
          const compiled = store.compile(
            { algorithm: "sliding-log", limit, window: Duration.millis(windowMillis) },
            maxKeys
          )
          const reference = new Map<string, engine.SlidingLogState>()
          const stateOf = (key: string, now: number) => {
            let state = reference.get(key)
            if (state === undefined) {
              if (reference.size >= maxKeys) {
                // the store's eviction at the cap (a batch of 1 here): idle keys among the oldest, then the oldest
                let scanned = 0
                for (const [k, s] of reference) {
                  if (reference.size <= maxKeys - 1 || ++scanned > 4) break
                  if (engine.slidingLogIsIdle(s, now, config)) reference.delete(k)
                }
                for (const [k] of reference) {
                  if (reference.size <= maxKeys - 1) break
                  reference.delete(k)
                }
              }
              state = engine.slidingLogMake(config, now)
              reference.set(key, state)
            }
            return state
          }
          let now = 1_700_000_000_000
          for (const op of ops) {
            now += op.dt
            if (op.kind === "sweep") {
              let idle = 0
              for (const [key, state] of reference) {
                if (engine.slidingLogIsIdle(state, now, config)) {
                  reference.delete(key)
                  idle++
                }
              }
              assert.strictEqual(compiled.sweep(now), idle)
              assert.strictEqual(compiled.size(), reference.size)
              continue
            }
            const key = `k${op.key}`
            switch (op.kind) {
              case "consume":
                assert.deepStrictEqual(
                  { ...compiled.consume(key, now, op.cost, engine.makeDecision()) },
                  { ...engine.slidingLogConsume(stateOf(key, now), now, op.cost, config, engine.makeDecision()) }
                )
                break
              case "check": {
                const state = reference.get(key) ?? engine.slidingLogMake(config, now)
                assert.deepStrictEqual(
                  { ...compiled.check(key, now, op.cost, engine.makeDecision()) },
                  { ...engine.slidingLogCheck(state, now, op.cost, config, engine.makeDecision()) }
                )
                break
              }
              case "refund": {
                compiled.refund(key, now, op.cost)
                const state = reference.get(key)
                if (state !== undefined) engine.slidingLogRefund(state, now, op.cost, config)
                break
              }
              case "penalize":
                compiled.penalize(key, now, op.cost)
                engine.slidingLogPenalize(stateOf(key, now), now, op.cost, config)
                break
            }
          }
          // the same remaining for every key at the end (the whole state, seen through decisions)
          for (const [key, state] of reference) {
            assert.deepStrictEqual(
              { ...compiled.check(key, now, 1, engine.makeDecision()) },
              { ...engine.slidingLogCheck(state, now, 1, config, engine.makeDecision()) }
            )
          }
        }
      ),
      { numRuns: 300 }
    )
  })
})

describe("RateLimiter.layerConfig", () => {
  const read = (provider: ConfigProvider.ConfigProvider) =>
    Effect.exit(
      Effect.map(RateLimiter.RateLimiter, (limiter) => limiter.options.limits.map((l) => l.algorithm)).pipe(
        Effect.provide(
          RateLimiter.layerConfig("api").pipe(
            Layer.provide(RateLimiter.layerStoreMemory()),
            Layer.provide(ConfigProvider.layer(provider))
          )
        )
      )
    )
  const issuesOf = (exit: Exit.Exit<unknown, unknown>) => {
    assert.isTrue(Exit.isFailure(exit))
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
    assert.instanceOf(error, Options.InvalidOptions)
    return error instanceof Options.InvalidOptions ? error.issues.map((i) => [i.path, i.value, i.message]) : []
  }

  it.effect("reads limits from environment variables", () =>
    Effect.gen(function* () {
      const exit = yield* read(
        ConfigProvider.fromEnv({
          env: { api_limits_0_algorithm: "gcra", api_limits_0_limit: "10", api_limits_0_window: "1 second" }
        })
      )
      assert.deepStrictEqual(exit, Exit.succeed(["gcra"]))
    })
  )

  it.effect("bad values fail with one InvalidOptions naming each field and the text it held", () =>
    Effect.gen(function* () {
      // a union member's real issue, not every member's algorithm mismatch
      assert.deepStrictEqual(
        issuesOf(
          yield* read(
            ConfigProvider.fromEnv({
              env: {
                api_limits_0_algorithm: "gcra",
                api_limits_0_limit: "0",
                api_limits_0_window: "1 second",
                api_maxKeys: "many"
              }
            })
          )
        ),
        [
          ["limits.0.limit", '"0"', "Expected a value greater than or equal to 1"],
          ["maxKeys", '"many"', "Expected a string representing a finite number"]
        ]
      )
      // an unknown algorithm: one issue listing the algorithms
      const [unknown] = issuesOf(
        yield* read(
          ConfigProvider.fromEnv({
            env: { api_limits_0_algorithm: "fastest", api_limits_0_limit: "5", api_limits_0_window: "1 second" }
          })
        )
      )
      assert.strictEqual(unknown?.[0], "limits.0.algorithm")
      assert.strictEqual(unknown?.[1], '"fastest"')
      assert.include(unknown?.[2], '"token-bucket"')
      assert.include(unknown?.[2], '"gcra"')
    })
  )
})
