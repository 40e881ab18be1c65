import * as Http from "node:http"
import { assert, describe, it } from "@effect/vitest"
import {
  AdaptiveThrottle,
  Alert,
  Bulkhead,
  CircuitBreaker,
  Health,
  LoadBalancer,
  Options,
  RateLimiter,
  Registry
} from "@effect-resilience/core"
import { Dashboard } from "@effect-resilience/http"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Sse from "effect/encoding/Sse"
import * as Fiber from "effect/Fiber"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as page from "../src/internal/dashboardPage.ts"
import { serveLoopback } from "./server.ts"

const decodeSnapshot = Schema.decodeUnknownSync(Dashboard.Snapshot)

/** Fails `times` calls through `key`'s circuit. */
const fail = (breaker: CircuitBreaker.CircuitBreaker, key: string, times = 1) =>
  Effect.repeat(Effect.ignore(Effect.fail("down").pipe(CircuitBreaker.protect(breaker, { key }))), { times: times - 1 })

const succeed = (breaker: CircuitBreaker.CircuitBreaker, key: string) =>
  Effect.asVoid(Effect.succeed("ok").pipe(CircuitBreaker.protect(breaker, { key })))

/** Fails the test when `effect` does not complete within 2 s of real time: a guard against a hang, not a timing. */
const hangGuard = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
  Effect.raceFirst(
    effect,
    Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 2_000))).pipe(
      Effect.andThen(Effect.die(new Error(what)))
    )
  )

/** Lets the event loop turn once (I/O callbacks run): no timer, no fixed delay. */
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Waits for `condition` over at most `turns` turns of the event loop. */
const eventually = (condition: Effect.Effect<boolean>, turns = 2_000) =>
  Effect.gen(function* () {
    for (let i = 0; i < turns; i++) {
      if (yield* condition) return
      yield* turn
    }
    assert.fail(`condition not met within ${turns} event-loop turns`)
  })

/** What a test reads of an event stream: the status, headers, the `retry` field and the snapshots, in order. */
interface EventsClient {
  readonly status: number
  readonly headers: Headers
  readonly retry: () => number | undefined
  readonly next: Effect.Effect<Dashboard.Snapshot>
  /** Reads what is left of the stream: `"end"` when the server finished it, `"reset"` when the connection broke. */
  readonly rest: Effect.Effect<"end" | "reset">
  /** Whether the connection has closed. */
  readonly closed: () => boolean
  readonly close: Effect.Effect<void>
}

/**
 * Opens `GET path` as an event stream (parsed with Effect's SSE parser) on a connection of its own (node:http without
 * an agent, so no pooled or spare socket outlives it, unless `agent` is given); the connection is destroyed when the
 * scope closes.
 */
const openEvents = (port: number, path = "/dashboard/events", agent: Http.Agent | false = false) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly request: Http.ClientRequest; readonly response: Http.IncomingMessage }>((resume) => {
      const request = Http.get({
        host: "127.0.0.1",
        port,
        path,
        agent,
        headers: { accept: "text/event-stream" }
      })
      request.once("response", (response) => resume(Effect.succeed({ request, response })))
      request.once("error", (error) => resume(Effect.die(error)))
    }),
    ({ request }) => Effect.sync(() => request.destroy())
  ).pipe(
    Effect.map(({ request, response }): EventsClient => {
      const chunks = response[Symbol.asyncIterator]()
      const decoder = new TextDecoder()
      const pending: Array<Sse.Event> = []
      let retry: number | undefined
      const parser = Sse.makeParser((event) => {
        if (event._tag === "Retry") retry = Duration.toMillis(event.duration)
        else pending.push(event)
      })
      const next = Effect.promise(async () => {
        for (;;) {
          const event = pending.shift()
          if (event !== undefined) return decodeSnapshot(JSON.parse(event.data))
          const chunk: IteratorResult<Uint8Array> = await chunks.next()
          if (chunk.done) throw new Error("the event stream ended")
          parser.feed(decoder.decode(chunk.value, { stream: true }))
        }
      })
      const rest = Effect.promise(async (): Promise<"end" | "reset"> => {
        try {
          for (;;) if ((await chunks.next()).done) return "end"
        } catch {
          return "reset"
        }
      })
      let closed = false
      response.socket.once("close", () => {
        closed = true
      })
      const headers = new Headers()
      for (const [name, value] of Object.entries(response.headers)) {
        if (typeof value === "string") headers.set(name, value)
      }
      return {
        status: response.statusCode ?? 0,
        headers,
        retry: () => retry,
        next,
        rest,
        closed: () => closed,
        close: Effect.sync(() => request.destroy())
      }
    })
  )

/** A breaker whose event subscriptions are counted (and the last release signalled). */
const countingSubscriptions = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.map(Deferred.make<void>(), (released) => {
    let open = 0
    const counted: CircuitBreaker.CircuitBreaker = {
      ...breaker,
      subscribe: Effect.andThen(
        Effect.acquireRelease(
          Effect.sync(() => open++),
          () =>
            Effect.andThen(
              Effect.sync(() => open--),
              Deferred.succeed(released, undefined)
            )
        ),
        breaker.subscribe
      )
    }
    return { counted, open: Effect.sync(() => open), released }
  })

const circuits = (snapshot: Dashboard.Snapshot, breaker = 0) =>
  snapshot.breakers[breaker]?.circuits.map((c) => [c.key, c.state, c.retryAfterMillis]) ?? []

/** A random source whose every draw is `value`: with 0, a throttle rejects every call it may (probability above 0). */
const fixedRandom = (value: number): Random.Random => ({ nextDoubleUnsafe: () => value, nextIntUnsafe: () => 0 })

/** Runs `self` through `throttle` under key `key` with every coin at 0; the error, if any, is dropped. */
const throttled = (throttle: AdaptiveThrottle.AdaptiveThrottle, key: string, self: Effect.Effect<unknown, string>) =>
  Effect.ignore(self.pipe(AdaptiveThrottle.throttle(throttle, { key }))).pipe(
    Effect.provideService(Random.Random, fixedRandom(0))
  )

/** An endpoint type of the app's own: the dashboard takes a balancer over it and shows its ids only. */
interface Replica extends LoadBalancer.Endpoint {
  readonly url: string
}

const replicas = (...ids: ReadonlyArray<string>): ReadonlyArray<Replica> =>
  ids.map((id) => ({ id, url: `http://${id}.internal:8080`, ...(id === "a" ? { zone: "eu-1" } : {}) }))

/** One call through the balancer, failing on the endpoints listed. */
const balanced = (lb: LoadBalancer.LoadBalancer<Replica>, failing: ReadonlyArray<string> = []) =>
  Effect.ignore(LoadBalancer.call(lb, (e) => (failing.includes(e.id) ? Effect.fail(e.url) : Effect.succeed(e.url))))

const registryPolicies = {
  payments: {
    retry: { kind: "constant", base: 0, maxAttempts: 3 },
    circuitBreaker: { consecutiveFailures: 5 }
  },
  search: { attemptTimeout: "1 second" }
} as const

/** Makes the instances of the version-2 sections: an adaptive bulkhead, a throttle, a balancer, a registry. */
const makeV2Instances = Effect.gen(function* () {
  const search = yield* Bulkhead.make({
    name: "search",
    maxConcurrent: 10,
    limit: { algorithm: "aimd", minLimit: 2, maxLimit: 20 }
  })
  const quotes = yield* AdaptiveThrottle.make({ name: "quotes" })
  const users = yield* LoadBalancer.make({
    name: "users",
    endpoints: replicas("a", "b", "c"),
    consecutiveFailures: 2,
    maxEjectionPercent: 50,
    baseEjectionTime: "10 seconds",
    interval: "1 hour"
  })
  const registry = yield* Registry.make({ name: "policies", policies: registryPolicies })
  return { search, quotes, users, registry }
})

/** A reload the registry refuses: a threshold above 1 and a negative attempt count. */
const badReload = {
  policies: {
    payments: { circuitBreaker: { failureRateThreshold: 2 } },
    search: { retry: { kind: "constant", base: 0, maxAttempts: -1 } }
  }
} as const

describe("Dashboard", () => {
  it.effect("snapshot JSON: every kind of instance, circuits most urgent first, retryAfter on the TestClock", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "payments",
        consecutiveFailures: 2,
        openDuration: "30 seconds"
      })
      const limiter = yield* RateLimiter.make({
        name: "api",
        limits: [{ algorithm: "fixed-window", limit: 2, window: "1 minute" }]
      })
      const bulkhead = yield* Bulkhead.make({ name: "reports", maxConcurrent: 3, maxQueue: 5 })
      const health = yield* Health.make({
        name: "svc",
        components: [
          Health.source("db", Stream.never, { initialStatus: "unhealthy" }),
          Health.source("cache", Stream.never, { initialStatus: "healthy", critical: false })
        ]
      })
      const alerts = yield* Alert.make({
        name: "ops",
        rules: [Alert.circuitOpen(breaker, { for: "0 seconds" }), Alert.fromEffect("never", Effect.succeed(false))]
      })
      yield* succeed(breaker, "us")
      yield* fail(breaker, "eu", 2)
      yield* succeed(breaker, "asia")
      yield* fail(breaker, "asia")
      for (const key of ["alice", "alice", "alice", "bob"]) yield* limiter.consume(key)
      yield* Effect.succeed(1).pipe(Bulkhead.isolate(bulkhead))

      const { get } = yield* serveLoopback(
        Dashboard.layer({ breakers: [breaker], limiters: [limiter], bulkheads: [bulkhead], health, alerts })
      )
      const res = yield* get("/dashboard/snapshot")
      assert.strictEqual(res.status, 200)
      assert.strictEqual(res.headers.get("cache-control"), "no-store")
      assert.match(res.headers.get("content-type") ?? "", /application\/json/)
      const snapshot = decodeSnapshot(res.json)
      assert.deepStrictEqual([snapshot.version, snapshot.title, snapshot.takenAt], [2, "Resilience dashboard", 0])
      assert.strictEqual(snapshot.intervalMillis, 1000)
      // Open first, then the Closed ones by key
      assert.deepStrictEqual(circuits(snapshot), [
        ["eu", "Open", 30_000],
        ["asia", "Closed", null],
        ["us", "Closed", null]
      ])
      const asia = snapshot.breakers[0]?.circuits[1]
      assert.deepStrictEqual(
        [asia?.failureRate, asia?.bufferedCalls, asia?.failedCalls, asia?.consecutiveFailures],
        [0.5, 2, 1, 1]
      )
      const stats = snapshot.breakers[0]?.stats
      assert.deepStrictEqual([stats?.successes, stats?.failures, snapshot.breakers[0]?.circuitCount], [2, 3, 3])
      const api = snapshot.limiters[0]
      assert.deepStrictEqual([api?.name, api?.allowed, api?.rejected, api?.keys], ["api", 3, 1, 2])
      assert.deepStrictEqual(api?.topClients, [
        { key: "alice", cost: 3 },
        { key: "bob", cost: 1 }
      ])
      assert.deepStrictEqual(snapshot.bulkheads, [
        {
          name: "reports",
          active: 0,
          queued: 0,
          admitted: 1,
          rejected: 0,
          keys: 0,
          maxConcurrent: 3,
          maxQueue: 5,
          limit: 3,
          limitChanges: 0,
          adaptive: null,
          // a bulkhead used without keys: its own compartment only
          compartmentCount: 1,
          compartments: [{ key: "reports", active: 0, queued: 0, available: 3, limit: 3 }]
        }
      ])
      // sections given no instance are empty
      assert.deepStrictEqual([snapshot.throttles, snapshot.balancers, snapshot.registries], [[], [], []])
      assert.strictEqual(snapshot.status, "unhealthy")
      assert.deepStrictEqual(
        snapshot.health[0]?.components.map((c) => [c.name, c.status, c.critical]),
        [
          ["db", "unhealthy", true],
          ["cache", "healthy", false]
        ]
      )
      assert.strictEqual(snapshot.alerts[0]?.name, "ops")
      assert.deepStrictEqual(
        snapshot.alerts[0]?.rules.map((r) => [r.name, r.state, r.severity]),
        [
          ["circuit-open:payments", "firing", "error"],
          ["never", "inactive", "warning"]
        ]
      )
      assert.strictEqual(snapshot.firing, 1)

      // the open circuit's wait counts down on the clock
      yield* TestClock.adjust("10 seconds")
      const later = decodeSnapshot((yield* get("/dashboard/snapshot")).json)
      assert.strictEqual(later.takenAt, 10_000)
      assert.deepStrictEqual(circuits(later)[0], ["eu", "Open", 20_000])
    }).pipe(Effect.scoped, Effect.provide([CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory()]))
  )

  it.effect(
    "snapshot JSON v2: an adaptive bulkhead's limit, throttle windows, balancer endpoints, registry policies and its last refused reload",
    () =>
      Effect.gen(function* () {
        const { quotes, registry, search, users } = yield* makeV2Instances
        const fixed = yield* Bulkhead.make({ name: "reports", maxConcurrent: 3 })
        const plain = yield* AdaptiveThrottle.make({ name: "plain" })
        const idle = yield* AdaptiveThrottle.make({ name: "idle" })
        yield* Effect.ignore(Effect.fail("503").pipe(AdaptiveThrottle.throttle(plain)))
        // one failed call: aimd's drop, 10 → ⌊10 × 0.9⌋ = 9
        yield* Effect.ignore(Effect.fail("timeout").pipe(Bulkhead.isolate(search)))
        // "eu": a refusal (1 request, 0 accepts: probability 1/2), then a local rejection (2, 0: 2/3)
        yield* throttled(quotes, "eu", Effect.fail("503"))
        yield* throttled(quotes, "eu", Effect.fail("503"))
        yield* throttled(quotes, "us", Effect.void)
        yield* throttled(quotes, "us", Effect.void)
        yield* throttled(quotes, "ap", Effect.fail("503"))
        // round robin a, b, c, a, b: "b" fails twice in a row and is ejected for 10 s
        for (let i = 0; i < 5; i++) yield* balanced(users, ["b"])
        yield* TestClock.adjust("4 seconds")
        yield* Effect.flip(registry.reload(badReload))
        yield* TestClock.adjust("1 second")

        const { get } = yield* serveLoopback(
          Dashboard.layer({
            bulkheads: [search, fixed],
            throttles: [quotes, plain, idle],
            balancers: [users],
            registries: registry,
            maxEndpoints: 2,
            maxThrottleKeys: 2
          })
        )
        const snapshot = decodeSnapshot((yield* get("/dashboard/snapshot")).json)
        assert.deepStrictEqual([snapshot.version, snapshot.takenAt], [2, 5_000])
        assert.deepStrictEqual(
          snapshot.bulkheads.map((b) => [b.name, b.limit, b.limitChanges, b.adaptive, b.maxConcurrent, b.admitted]),
          [
            ["search", 9, 1, { algorithm: "aimd", minLimit: 2, maxLimit: 20 }, 10, 1],
            ["reports", 3, 0, null, 3, 0]
          ]
        )
        // the highest probabilities first, two of the three keys; the throttle's own empty window left out
        assert.deepStrictEqual(snapshot.throttles[0], {
          name: "quotes",
          admitted: 4,
          throttled: 1,
          accepted: 2,
          notAccepted: 2,
          ignored: 0,
          keys: 3,
          k: 2,
          maxRejectProbability: 0.9,
          windowMillis: 120_000,
          windowCount: 3,
          windows: [
            { key: "eu", requests: 2, accepts: 0, probability: 2 / 3 },
            { key: "ap", requests: 1, accepts: 0, probability: 1 / 2 }
          ]
        })
        // without keys, the throttle's own window (its name as the key): with history, or empty when nothing ran
        assert.deepStrictEqual(
          snapshot.throttles.slice(1).map((t) => [t.name, t.keys, t.windowCount, t.windows]),
          [
            ["plain", 0, 1, [{ key: "plain", requests: 1, accepts: 0, probability: 1 / 2 }]],
            ["idle", 0, 1, [{ key: "idle", requests: 0, accepts: 0, probability: 0 }]]
          ]
        )
        // the ejected endpoint first, then the set's order; two of the three shown
        assert.deepStrictEqual(snapshot.balancers, [
          {
            name: "users",
            strategy: "roundRobin",
            endpointCount: 3,
            ejected: 1,
            panic: false,
            inFlight: 0,
            successes: 3,
            failures: 2,
            ignored: 0,
            rejected: 0,
            hostCount: 3,
            endpoints: [
              {
                id: "b",
                state: "ejected",
                zone: null,
                weight: 1,
                inFlight: 0,
                latencyMillis: 0,
                successes: 0,
                failures: 2,
                consecutiveFailures: 0,
                ejections: 1,
                ejectedUntil: 10_000
              },
              {
                id: "a",
                state: "active",
                zone: "eu-1",
                weight: 1,
                inFlight: 0,
                latencyMillis: 0,
                successes: 2,
                failures: 0,
                consecutiveFailures: 0,
                ejections: 0,
                ejectedUntil: null
              }
            ]
          }
        ])
        assert.deepStrictEqual(snapshot.registries, [
          {
            name: "policies",
            version: 1,
            policies: [
              { name: "payments", parts: ["retry", "circuitBreaker"] },
              { name: "search", parts: ["attemptTimeout"] }
            ],
            lastFailure: {
              version: 1,
              failedAt: 4_000,
              issues: [
                {
                  path: "policies.payments.circuitBreaker.failureRateThreshold",
                  value: "2",
                  message: "Expected a value between 0 (excluded) and 1"
                },
                {
                  path: "policies.search.retry.maxAttempts",
                  value: "-1",
                  message: "Expected a value greater than or equal to 1"
                }
              ]
            }
          }
        ])

        // a reload that is applied moves the version on; the refused one stays shown until the next refusal
        yield* registry.reload({ policies: { ...registryPolicies, reports: {} } })
        const after = decodeSnapshot((yield* get("/dashboard/snapshot")).json)
        assert.deepStrictEqual(
          after.registries.map((r) => [r.version, r.policies.map((p) => p.name), r.lastFailure?.failedAt]),
          [[2, ["payments", "search", "reports"], 4_000]]
        )
      }).pipe(Effect.scoped)
  )

  it.effect(
    "circuits: at most maxCircuits per breaker, the open ones kept; a fresh breaker shows its default circuit",
    () =>
      Effect.gen(function* () {
        const busy = yield* CircuitBreaker.make({ name: "busy", consecutiveFailures: 1 })
        const fresh = yield* CircuitBreaker.make({ name: "fresh" })
        for (const key of ["a", "b", "c", "d"]) yield* succeed(busy, key)
        yield* fail(busy, "z")
        const dashboard = yield* Dashboard.make({ breakers: [busy, fresh], maxCircuits: 2 })
        const snapshot = yield* dashboard.snapshot
        assert.deepStrictEqual(circuits(snapshot, 0), [
          ["z", "Open", 30_000],
          ["a", "Closed", null]
        ])
        assert.strictEqual(snapshot.breakers[0]?.circuitCount, 5)
        assert.deepStrictEqual(circuits(snapshot, 1), [["fresh", "Closed", null]])
        assert.strictEqual(snapshot.breakers[1]?.circuitCount, 0)
        // forced states show as they are
        yield* fresh.forceOpen()
        assert.deepStrictEqual(circuits(yield* dashboard.snapshot, 1), [["fresh", "ForcedOpen", null]])
      }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )

  it.effect(
    "compartments: a keyed bulkhead's most urgent at most maxCompartments, each with its limit, the rest counted",
    () =>
      Effect.gen(function* () {
        const search = yield* Bulkhead.make({
          name: "search",
          maxConcurrent: 10,
          maxQueue: 5,
          maxWait: "1 minute",
          limit: { algorithm: "aimd", minLimit: 2, maxLimit: 20 }
        })
        const fixed = yield* Bulkhead.make({ name: "reports", maxConcurrent: 1, maxQueue: 5, maxWait: "1 minute" })
        // 40 tenants that ran once; "slow" failed twice (10 → 9 → 8), "flaky" once (10 → 9)
        for (let i = 0; i < 40; i++) yield* Bulkhead.isolate(Effect.void, search, { key: `tenant-${i}` })
        for (const key of ["slow", "slow", "flaky"]) {
          yield* Effect.ignore(Effect.fail("timeout").pipe(Bulkhead.isolate(search, { key })))
        }
        // "reports": "eu" holds its permit with one call waiting behind it
        const gate = yield* Deferred.make<void>()
        yield* Effect.forkChild(Deferred.await(gate).pipe(Bulkhead.isolate(fixed, { key: "eu" })))
        yield* Effect.yieldNow
        yield* Effect.forkChild(Deferred.await(gate).pipe(Bulkhead.isolate(fixed, { key: "eu" })))
        yield* Effect.yieldNow

        const { get } = yield* serveLoopback(Dashboard.layer({ bulkheads: [search, fixed], maxCompartments: 3 }))
        const json = (yield* get("/dashboard/snapshot")).json
        const snapshot = decodeSnapshot(json)
        assert.deepStrictEqual(
          snapshot.bulkheads.map((b) => [
            b.name,
            b.compartmentCount,
            b.compartments?.map((c) => [c.key, c.active, c.queued, c.limit])
          ]),
          [
            [
              "search",
              43,
              [
                ["slow", 0, 0, 8],
                ["flaky", 0, 0, 9],
                ["search", 0, 0, 10]
              ]
            ],
            [
              "reports",
              2,
              [
                ["eu", 1, 1, 1],
                ["reports", 0, 0, 1]
              ]
            ]
          ]
        )
        // the default: 10 per bulkhead
        const byDefault = yield* (yield* Dashboard.make({ bulkheads: [search] })).snapshot
        assert.deepStrictEqual(
          [byDefault.bulkheads[0]?.compartmentCount, byDefault.bulkheads[0]?.compartments?.length],
          [43, 10]
        )
        // added within version 2: a snapshot without the new fields still decodes
        const older = decodeSnapshot({
          ...snapshot,
          bulkheads: snapshot.bulkheads.map(({ compartmentCount: _count, compartments: _list, ...rest }) => rest)
        })
        assert.deepStrictEqual([older.version, older.bulkheads[0]?.compartments], [2, undefined])
        yield* Deferred.succeed(gate, undefined)
      }).pipe(Effect.scoped)
  )

  it.effect("the page: one HTML document, inline script and style under a nonce CSP, the title escaped", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLoopback(
        Dashboard.layer({ prefix: "/ops/resilience", title: "<script>alert(1)</script> & co" })
      )
      const res = yield* get("/ops/resilience")
      assert.strictEqual(res.status, 200)
      assert.match(res.headers.get("content-type") ?? "", /^text\/html/)
      assert.strictEqual(res.headers.get("cache-control"), "no-store")
      assert.strictEqual(res.headers.get("x-content-type-options"), "nosniff")
      const csp = res.headers.get("content-security-policy") ?? ""
      const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1]
      assert.isDefined(nonce)
      assert.include(csp, "default-src 'none'")
      assert.include(res.text, `<script nonce="${nonce}">`)
      assert.include(res.text, `<style nonce="${nonce}">`)
      // self-contained: no external script, stylesheet, font or image
      assert.notMatch(res.text, /<script[^>]+src=|rel="stylesheet"|@import|url\(|https?:\/\//)
      assert.deepStrictEqual(res.text.match(/<link[^>]*>/g), ['<link rel="icon" href="data:,">'])
      assert.include(res.text, "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>")
      assert.notInclude(res.text, "<script>alert(1)")
      assert.include(res.text, 'data-events="/ops/resilience/events"')
      // a new nonce per answer; the trailing slash serves the page too
      const again = yield* get("/ops/resilience/")
      assert.strictEqual(again.status, 200)
      assert.notInclude(again.headers.get("content-security-policy") ?? "", `'nonce-${nonce}'`)
      assert.strictEqual((yield* get("/ops/resilience/snapshot")).status, 200)
      assert.strictEqual((yield* get("/dashboard")).status, 404)
    }).pipe(Effect.scoped)
  )

  it.effect("events: a snapshot on connect, at once on a transition, then on the interval", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "payments",
        consecutiveFailures: 2,
        openDuration: "30 seconds"
      })
      const bulkhead = yield* Bulkhead.make({ name: "reports" })
      const { port } = yield* serveLoopback(
        Dashboard.layer({ breakers: [breaker], bulkheads: [bulkhead], interval: "5 seconds", reconnect: "250 millis" })
      )
      const events = yield* openEvents(port)
      assert.strictEqual(events.status, 200)
      assert.match(events.headers.get("content-type") ?? "", /^text\/event-stream/)
      assert.strictEqual(events.headers.get("cache-control"), "no-store")

      const first = yield* events.next
      assert.strictEqual(events.retry(), 250)
      assert.strictEqual(first.takenAt, 0)
      assert.deepStrictEqual(circuits(first), [["payments", "Closed", null]])

      // a transition is pushed without the clock moving
      yield* fail(breaker, "payments", 2)
      const onTransition = yield* events.next
      assert.strictEqual(onTransition.takenAt, 0)
      assert.deepStrictEqual(circuits(onTransition), [["payments", "Open", 30_000]])

      // what changes without an event (a bulkhead's counts) comes with the next interval
      yield* Effect.succeed(1).pipe(Bulkhead.isolate(bulkhead))
      yield* TestClock.adjust("5 seconds")
      const onInterval = yield* events.next
      assert.strictEqual(onInterval.takenAt, 5_000)
      assert.strictEqual(onInterval.bulkheads[0]?.admitted, 1)
      assert.deepStrictEqual(circuits(onInterval), [["payments", "Open", 25_000]])
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual((yield* events.next).takenAt, 10_000)
    }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )

  it.effect("events: alert firings and health changes are pushed at once too", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "payments", consecutiveFailures: 1 })
      const alerts = yield* Alert.make({ rules: [Alert.circuitOpen(breaker, { for: "0 seconds" })] })
      const health = yield* Health.make({ components: [Health.fromCircuitBreaker(breaker)] })
      const { port } = yield* serveLoopback(
        Dashboard.layer({ breakers: [breaker], alerts, health, interval: "1 hour" })
      )
      const events = yield* openEvents(port)
      const first = yield* events.next
      assert.deepStrictEqual([first.firing, first.status], [0, "healthy"])
      yield* fail(breaker, "payments")
      // the breaker's transition, the alert's firing and the health change each make a snapshot due: the alert
      // and health registries react to the transition on their own fibers, so they may come in a later snapshot
      let latest = yield* events.next
      for (let i = 0; i < 5 && (latest.firing === 0 || latest.status === "healthy"); i++) latest = yield* events.next
      assert.deepStrictEqual([latest.takenAt, latest.firing, latest.status], [0, 1, "unhealthy"])
      assert.strictEqual(latest.alerts[0]?.rules[0]?.state, "firing")
    }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )

  it.effect(
    "events: pushed at once on LimitChanged, Throttled, an endpoint ejected or returned, the set changing, a policy added and a reload refused",
    () =>
      Effect.gen(function* () {
        const { quotes, registry, search, users } = yield* makeV2Instances
        const fixed = yield* Bulkhead.make({ name: "reports" })
        const { port } = yield* serveLoopback(
          Dashboard.layer({
            bulkheads: [search, fixed],
            throttles: [quotes],
            balancers: [users],
            registries: [registry],
            interval: "1 hour"
          })
        )
        const events = yield* openEvents(port)
        const first = yield* events.next
        assert.deepStrictEqual(
          [first.takenAt, first.bulkheads[0]?.limit, first.throttles[0]?.windows.length, first.balancers[0]?.ejected],
          [0, 10, 1, 0]
        )
        // every step below makes exactly one event, and the clock stands still (the interval is an hour): each
        // snapshot read is the one that event pushed

        // LimitChanged: aimd's drop on a failure
        yield* Effect.ignore(Effect.fail("timeout").pipe(Bulkhead.isolate(search)))
        const onLimit = yield* events.next
        assert.deepStrictEqual(
          [onLimit.takenAt, onLimit.bulkheads[0]?.limit, onLimit.bulkheads[0]?.limitChanges],
          [0, 9, 1]
        )

        // Throttled: the refusal emits nothing; the local rejection after it does
        yield* throttled(quotes, "eu", Effect.fail("503"))
        yield* throttled(quotes, "eu", Effect.fail("503"))
        const onThrottled = yield* events.next
        assert.deepStrictEqual(
          [onThrottled.takenAt, onThrottled.throttles[0]?.throttled, onThrottled.throttles[0]?.windows],
          [0, 1, [{ key: "eu", requests: 2, accepts: 0, probability: 2 / 3 }]]
        )

        // EndpointEjected: "b" fails twice in a row
        for (let i = 0; i < 5; i++) yield* balanced(users, ["b"])
        const onEjected = yield* events.next
        assert.deepStrictEqual(
          [onEjected.takenAt, onEjected.balancers[0]?.ejected, onEjected.balancers[0]?.endpoints[0]],
          [
            0,
            1,
            {
              id: "b",
              state: "ejected",
              zone: null,
              weight: 1,
              inFlight: 0,
              latencyMillis: 0,
              successes: 0,
              failures: 2,
              consecutiveFailures: 0,
              ejections: 1,
              ejectedUntil: 10_000
            }
          ]
        )

        // EndpointReturned: its time is up, noticed by the next call's pick
        yield* TestClock.adjust("10 seconds")
        yield* balanced(users)
        const onReturned = yield* events.next
        assert.deepStrictEqual(
          [
            onReturned.takenAt,
            onReturned.balancers[0]?.ejected,
            onReturned.balancers[0]?.endpoints.map((e) => [e.id, e.state, e.ejectedUntil, e.ejections])
          ],
          [
            10_000,
            0,
            [
              ["a", "active", null, 0],
              ["b", "active", null, 1],
              ["c", "active", null, 0]
            ]
          ]
        )

        // EndpointsChanged: a discovery update
        yield* users.update(replicas("a", "b", "c", "d"))
        const onChanged = yield* events.next
        assert.deepStrictEqual(
          [onChanged.takenAt, onChanged.balancers[0]?.endpointCount, onChanged.balancers[0]?.endpoints.at(-1)?.id],
          [10_000, 4, "d"]
        )

        // PolicyAdded
        yield* registry.reload({ policies: { ...registryPolicies, reports: {} } })
        const onAdded = yield* events.next
        assert.deepStrictEqual(
          [onAdded.takenAt, onAdded.registries[0]?.version, onAdded.registries[0]?.policies.at(-1)],
          [10_000, 2, { name: "reports", parts: [] }]
        )

        // ReloadFailed: shown with every bad field
        yield* Effect.flip(registry.reload(badReload))
        const onFailed = yield* events.next
        assert.deepStrictEqual(
          [
            onFailed.takenAt,
            onFailed.registries[0]?.version,
            onFailed.registries[0]?.lastFailure?.version,
            onFailed.registries[0]?.lastFailure?.failedAt,
            onFailed.registries[0]?.lastFailure?.issues.map((i) => i.path)
          ],
          [
            10_000,
            2,
            2,
            10_000,
            ["policies.payments.circuitBreaker.failureRateThreshold", "policies.search.retry.maxAttempts"]
          ]
        )

        // a fixed bulkhead is read on the interval only: nothing pushed for its calls
        yield* Effect.succeed(1).pipe(Bulkhead.isolate(fixed))
        yield* TestClock.adjust("1 hour")
        const onInterval = yield* events.next
        // the interval counts from the stream's start
        assert.deepStrictEqual([onInterval.takenAt, onInterval.bulkheads[1]?.admitted], [3_600_000, 1])
      }).pipe(Effect.scoped)
  )

  it.effect(
    "maxClients: a second stream racing past the check (both answered before either started) ends with a comment frame",
    () =>
      Effect.gen(function* () {
        const dashboard = yield* Dashboard.make({ maxClients: 1, reconnect: "2 seconds" })
        const route = dashboard.routes.find((r) => r.path === "/dashboard/events")
        if (route === undefined) return assert.fail("no events route")
        // both requests pass the check before either stream is pulled: both are answered 200
        const first = yield* route.handler
        const second = yield* route.handler
        assert.deepStrictEqual([first.status, second.status], [200, 200])
        const bodyOf = (response: HttpServerResponse.HttpServerResponse) =>
          response.body._tag === "Stream" ? response.body.stream : Stream.die(new Error("not a stream"))
        const decoder = new TextDecoder()

        // the first stream starts: it takes the only place
        const firstPull = yield* Stream.toPull(bodyOf(first))
        let received = ""
        while (!received.includes("data: ")) {
          received += (yield* firstPull).map((chunk) => decoder.decode(chunk)).join("")
        }
        assert.match(received, /^retry: 2000\n\ndata: \{"version":2,/)
        assert.strictEqual(yield* dashboard.clients, 1)

        // the second finds it taken when it starts: the reconnection delay, a comment, and the end
        const refused = yield* Stream.runCollect(bodyOf(second))
        assert.deepStrictEqual(
          refused.map((chunk) => decoder.decode(chunk)),
          ["retry: 2000\n\n", ": too many dashboard clients\n\n"]
        )
        // it neither took a place nor gave one back
        assert.strictEqual(yield* dashboard.clients, 1)
      }).pipe(Effect.scoped)
  )

  it.effect("a client that goes away: its stream ends, its subscriptions are released, the count drops", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "payments" })
      const { counted, open, released } = yield* countingSubscriptions(breaker)
      const dashboard = yield* Dashboard.make({ breakers: [counted] })
      const { port } = yield* serveLoopback(HttpRouter.addAll(dashboard.routes))
      const events = yield* openEvents(port)
      yield* events.next
      assert.deepStrictEqual([yield* open, yield* dashboard.clients], [1, 1])
      const second = yield* openEvents(port)
      yield* second.next
      assert.deepStrictEqual([yield* open, yield* dashboard.clients], [2, 2])

      yield* events.close
      yield* Deferred.await(released)
      yield* eventually(Effect.map(dashboard.clients, (n) => n === 1))
      assert.strictEqual(yield* open, 1)
      // the other client still gets its snapshots
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* second.next).takenAt, 1_000)
      yield* second.close
      yield* eventually(Effect.map(Effect.all([open, dashboard.clients]), ([s, c]) => s === 0 && c === 0))
    }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )

  it.effect(
    "closing the server's scope ends open event streams at once: clients see the end, the server stops without waiting",
    () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ name: "payments" })
        const { counted, open } = yield* countingSubscriptions(breaker)
        const serverScope = yield* Scope.make()
        // the dashboard as a layer of the server (the usual set-up): its scope is inside the server's
        const { port } = yield* serveLoopback(Dashboard.layer({ breakers: [counted] })).pipe(Scope.provide(serverScope))
        // a browser keeps its connections alive: the server must not wait for an idle one either
        const agent = new Http.Agent({ keepAlive: true })
        yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
        const first = yield* openEvents(port, "/dashboard/events", agent)
        const second = yield* openEvents(port, "/dashboard/events", agent)
        yield* Effect.all([first.next, second.next])
        assert.strictEqual(yield* open, 2)
        assert.strictEqual(first.headers.get("connection"), "close")

        // Node's graceful shutdown would wait up to 20 s (on the test clock: for ever) for the streams
        const shutdown = yield* Effect.forkChild(Scope.close(serverScope, Exit.void))
        const ends = yield* Effect.forkChild(Effect.all([first.rest, second.rest]))
        // each stream checks its server every 100 ms (of the test clock)
        const checks = Effect.gen(function* () {
          while (ends.pollUnsafe() === undefined) {
            yield* TestClock.adjust("100 millis")
            yield* turn
          }
        })
        yield* hangGuard(checks, "the streams did not end")
        assert.deepStrictEqual(yield* Fiber.join(ends), ["end", "end"])
        yield* hangGuard(Fiber.join(shutdown), "the server did not stop")
        assert.deepStrictEqual([first.closed(), second.closed()], [true, true])
        assert.strictEqual(yield* open, 0)
      }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )

  it.effect("the dashboard's scope closing ends its running streams; a dashboard outliving it serves new ones on", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const dashboard = yield* Dashboard.make().pipe(Scope.provide(scope))
      const route = dashboard.routes.find((r) => r.path === "/dashboard/events")
      if (route === undefined) return assert.fail("no events route")
      const bodyOf = (response: HttpServerResponse.HttpServerResponse) =>
        response.body._tag === "Stream" ? response.body.stream : Stream.die(new Error("not a stream"))
      // a stream running when the scope closes: it ends
      const running = yield* Effect.forkChild(Stream.runCount(bodyOf(yield* route.handler)))
      yield* eventually(Effect.map(dashboard.clients, (n) => n === 1))
      yield* Scope.close(scope, Exit.void)
      assert.isAtLeast(yield* Fiber.join(running), 1)
      assert.strictEqual(yield* dashboard.clients, 0)
      // the scope is gone: a later stream runs on (the dashboard outlived it), until its reader stops
      const later = yield* Stream.toPull(bodyOf(yield* route.handler))
      yield* later
      yield* later
      assert.strictEqual(yield* dashboard.clients, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("a slow consumer: changes coalesce into one pending snapshot, the latest", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "payments", consecutiveFailures: 1 })
      const dashboard = yield* Dashboard.make({ breakers: [breaker] })
      const pull = yield* Stream.toPull(dashboard.changes)
      const first = yield* pull
      assert.deepStrictEqual(
        first.map((s) => s.takenAt),
        [0]
      )
      // ten intervals and a dozen transitions while the consumer does not pull
      for (let i = 0; i < 6; i++) {
        yield* fail(breaker, "payments")
        yield* breaker.reset()
      }
      yield* fail(breaker, "payments")
      yield* TestClock.adjust("10 seconds")
      const next = yield* pull
      assert.strictEqual(next.length, 1)
      assert.strictEqual(next[0]?.takenAt, 10_000)
      assert.deepStrictEqual(circuits(next[0] ?? first[0]), [["payments", "Open", 20_000]])
      // nothing else is pending: the next pull waits for the next interval
      const waiting = yield* Effect.forkChild(pull)
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      assert.isUndefined(waiting.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const after = yield* Fiber.join(waiting)
      assert.deepStrictEqual(
        after.map((s) => s.takenAt),
        [11_000]
      )
    }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )

  it.effect("maxClients: one stream more is answered 503 with Retry-After, and served again once one ends", () =>
    Effect.gen(function* () {
      const dashboard = yield* Dashboard.make({ maxClients: 1, reconnect: "2 seconds" })
      const { get, port } = yield* serveLoopback(HttpRouter.addAll(dashboard.routes))
      const events = yield* openEvents(port)
      yield* events.next
      const refused = yield* get("/dashboard/events")
      assert.deepStrictEqual([refused.status, refused.headers.get("retry-after")], [503, "2"])
      yield* events.close
      yield* eventually(Effect.map(dashboard.clients, (n) => n === 0))
      const again = yield* openEvents(port)
      assert.strictEqual(again.status, 200)
      assert.strictEqual((yield* again.next).version, 2)
    }).pipe(Effect.scoped)
  )

  it.effect("behind auth: a middleware provided to the dashboard's layer guards its routes only", () =>
    Effect.gen(function* () {
      const expected = `Basic ${Buffer.from("ops:secret").toString("base64")}`
      const basicAuth = HttpRouter.middleware((app) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          request.headers.authorization === expected
            ? app
            : Effect.succeed(
                HttpServerResponse.text("Unauthorized", {
                  status: 401,
                  headers: { "www-authenticate": 'Basic realm="dashboard"' }
                })
              )
        )
      )
      const app = Layer.mergeAll(
        HttpRouter.add("GET", "/api", HttpServerResponse.text("api")),
        Dashboard.layer().pipe(Layer.provide(basicAuth.layer))
      )
      const { get } = yield* serveLoopback(app)
      for (const path of ["/dashboard", "/dashboard/snapshot", "/dashboard/events"]) {
        const refused = yield* get(path)
        assert.deepStrictEqual(
          [refused.status, refused.headers.get("www-authenticate")],
          [401, 'Basic realm="dashboard"']
        )
      }
      assert.strictEqual((yield* get("/dashboard/snapshot", { authorization: expected })).status, 200)
      assert.strictEqual((yield* get("/dashboard", { authorization: expected })).status, 200)
      assert.strictEqual((yield* get("/api")).text, "api")
    }).pipe(Effect.scoped)
  )

  it.effect("options: one InvalidOptions naming every bad field; defaults fill what is left out", () =>
    Effect.gen(function* () {
      const a = yield* CircuitBreaker.make({ name: "same" })
      const b = yield* CircuitBreaker.make({ name: "same" })
      const throttle = yield* AdaptiveThrottle.make({ name: "edge" })
      const error = yield* Effect.flip(
        Dashboard.validateOptions({
          breakers: [a, b],
          throttles: [throttle, throttle],
          prefix: "/ops/",
          title: "",
          interval: "0 seconds",
          reconnect: "soon" as never,
          maxCircuits: 0,
          topClients: 101,
          maxClients: 1.5,
          maxEndpoints: 0,
          maxThrottleKeys: -1,
          maxCompartments: 0.5
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "Dashboard")
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["reconnect", '"soon"', "Expected a non-negative duration"],
          ["breakers.1", '"same"', "Expected a name not used by another of the breakers"],
          ["throttles.1", '"edge"', "Expected a name not used by another of the throttles"],
          [
            "prefix",
            '"/ops/"',
            "Expected a path such as /dashboard (segments of letters, digits and . _ ~ -, no trailing slash)"
          ],
          ["title", '""', "Expected a value with a length of at least 1"],
          ["maxCircuits", "0", "Expected a value greater than or equal to 1"],
          ["topClients", "101", "Expected a value between 0 and 100"],
          ["maxClients", "1.5", "Expected an integer"],
          ["maxEndpoints", "0", "Expected a value greater than or equal to 1"],
          ["maxThrottleKeys", "-1", "Expected a value greater than or equal to 1"],
          ["maxCompartments", "0.5", "Expected an integer"],
          ["interval", "0", "Expected a duration greater than zero"]
        ]
      )
      // the layer fails with the same error when it is built
      const fromLayer = yield* Effect.flip(
        Layer.build(Dashboard.layer({ prefix: "dashboard" as never }).pipe(Layer.provide(HttpRouter.layer)))
      )
      assert.deepStrictEqual(
        fromLayer.issues.map((i) => i.path),
        ["prefix"]
      )
      const resolved = yield* Dashboard.validateOptions({ health: undefined, title: "Ops" })
      assert.deepStrictEqual(
        {
          ...resolved,
          interval: Duration.toMillis(resolved.interval),
          reconnect: Duration.toMillis(resolved.reconnect)
        },
        {
          ...Dashboard.defaults,
          interval: 1_000,
          reconnect: 1_000,
          title: "Ops",
          breakers: [],
          limiters: [],
          bulkheads: [],
          health: [],
          alerts: [],
          throttles: [],
          balancers: [],
          registries: []
        }
      )
      assert.deepStrictEqual(
        Dashboard.optionsDocs.map((doc) => doc.name),
        [
          "prefix",
          "title",
          "interval",
          "reconnect",
          "maxCircuits",
          "topClients",
          "maxClients",
          "maxEndpoints",
          "maxThrottleKeys",
          "maxCompartments"
        ]
      )
    }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )
})

describe("dashboard page helpers", () => {
  const unescape = (text: string) =>
    text
      .replaceAll("&lt;", "<")
      .replaceAll("&gt;", ">")
      .replaceAll("&quot;", '"')
      .replaceAll("&#39;", "'")
      .replaceAll("&amp;", "&")

  it("escapeHtml: no markup character survives, and unescaping gives the text back", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        const escaped = page.escapeHtml(text)
        assert.notMatch(escaped, /[<>"']/)
        assert.strictEqual(unescape(escaped), text)
      }),
      { numRuns: 500 }
    )
    assert.strictEqual(
      page.escapeHtml(`<img src=x onerror="a('b')">&`),
      "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
    )
  })

  const stateArb = fc.constantFrom("Closed", "Open", "HalfOpen", "Disabled", "ForcedOpen", "MetricsOnly")

  it("pickCircuits: at most max, the most urgent states kept, ordered by urgency then key", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ key: fc.string({ maxLength: 4 }), state: stateArb }), {
          selector: (c) => c.key,
          maxLength: 30
        }),
        fc.integer({ min: 0, max: 35 }),
        (all, max) => {
          const shown = page.pickCircuits(all, max)
          assert.strictEqual(shown.length, Math.min(max, all.length))
          const hidden = all.filter((c) => !shown.includes(c))
          const worstShown = Math.max(-1, ...shown.map((c) => page.stateRank(c.state)))
          for (const c of hidden) assert.isAtLeast(page.stateRank(c.state), worstShown)
          for (let i = 1; i < shown.length; i++) {
            const [a, b] = [shown[i - 1], shown[i]]
            if (a === undefined || b === undefined) continue
            const order = page.stateRank(a.state) - page.stateRank(b.state)
            assert.isTrue(order < 0 || (order === 0 && a.key < b.key))
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("pickEndpoints: at most max, every ejected endpoint before any other, each group in the balancer's order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("active", "ejected", "draining"), { maxLength: 30 }),
        fc.integer({ min: 0, max: 35 }),
        (states, max) => {
          const hosts = states.map((state, index) => ({ index, state }))
          const shown = page.pickEndpoints(hosts, max)
          assert.strictEqual(shown.length, Math.min(max, hosts.length))
          const hidden = hosts.filter((h) => !shown.includes(h))
          const worstShown = Math.max(-1, ...shown.map((h) => page.endpointRank(h.state)))
          for (const h of hidden) assert.isAtLeast(page.endpointRank(h.state), worstShown)
          for (let i = 1; i < shown.length; i++) {
            const [a, b] = [shown[i - 1], shown[i]]
            if (a === undefined || b === undefined) continue
            const order = page.endpointRank(a.state) - page.endpointRank(b.state)
            assert.isTrue(order < 0 || (order === 0 && a.index < b.index))
          }
        }
      ),
      { numRuns: 300 }
    )
    assert.deepStrictEqual(
      page
        .pickEndpoints(
          [
            { id: "a", state: "active" },
            { id: "b", state: "draining" },
            { id: "c", state: "ejected" },
            { id: "d", state: "active" }
          ],
          3
        )
        .map((h) => h.id),
      ["c", "a", "d"]
    )
  })

  it("pickWindows: at most max, no hidden window above a shown one, by probability, then requests, then key", () => {
    const windowArb = fc.record({
      key: fc.string({ maxLength: 3 }),
      requests: fc.integer({ min: 0, max: 5 }),
      probability: fc.constantFrom(0, 0.25, 0.5, 2 / 3, 0.9)
    })
    fc.assert(
      fc.property(
        fc.uniqueArray(windowArb, { selector: (w) => w.key, maxLength: 30 }),
        fc.integer({ min: 0, max: 35 }),
        (all, max) => {
          const shown = page.pickWindows(all, max)
          assert.strictEqual(shown.length, Math.min(max, all.length))
          const hidden = all.filter((w) => !shown.includes(w))
          const last = shown.at(-1)
          for (const w of hidden) {
            if (last === undefined) continue
            assert.isTrue(
              w.probability < last.probability || (w.probability === last.probability && w.requests <= last.requests)
            )
          }
          for (let i = 1; i < shown.length; i++) {
            const [a, b] = [shown[i - 1], shown[i]]
            if (a === undefined || b === undefined) continue
            assert.isTrue(
              a.probability > b.probability ||
                (a.probability === b.probability &&
                  (a.requests > b.requests || (a.requests === b.requests && a.key < b.key)))
            )
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("dataFrame: one event whose data is the text, whatever its line breaks", () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const events: Array<Sse.AnyEvent> = []
        const parser = Sse.makeParser((event) => events.push(event))
        parser.feed(page.dataFrame(text))
        assert.strictEqual(events.length, 1)
        const event = events[0]
        assert.strictEqual(event?._tag === "Event" ? event.data : undefined, text.replace(/\r\n|\r/g, "\n"))
      }),
      { numRuns: 300 }
    )
  })
})
