import { assert, describe, it } from "@effect/vitest"
import { Options, RateLimiter } from "@effect-resilience/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"

const make = (input: RateLimiter.Input) => RateLimiter.make(input).pipe(Effect.provide(RateLimiter.layerStoreMemory()))

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
      // the per-second bucket was not charged by the refused request
      assert.strictEqual(hourly.policies[0]?.remaining, 1)
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
      // traffic that passes: fresh keys
      for (let second = 0; second < 2; second++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume(`fresh-${second}-${i}`)
        yield* TestClock.adjust("1 second")
      }
      assert.deepStrictEqual(yield* alerts(), ["AlertResolved"])
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
