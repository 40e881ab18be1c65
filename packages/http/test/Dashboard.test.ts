import * as Http from "node:http"
import { assert, describe, it } from "@effect/vitest"
import { Alert, Bulkhead, CircuitBreaker, Health, Options, RateLimiter } from "@effect-resilience/core"
import { Dashboard } from "@effect-resilience/http"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Sse from "effect/encoding/Sse"
import * as Fiber from "effect/Fiber"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
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
  readonly close: Effect.Effect<void>
}

/**
 * Opens `GET path` as an event stream (parsed with Effect's SSE parser) on a connection of its own (node:http without
 * an agent, so no pooled or spare socket outlives it); the connection is destroyed when the scope closes.
 */
const openEvents = (port: number, path = "/dashboard/events") =>
  Effect.acquireRelease(
    Effect.callback<{ readonly request: Http.ClientRequest; readonly response: Http.IncomingMessage }>((resume) => {
      const request = Http.get({
        host: "127.0.0.1",
        port,
        path,
        agent: false,
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
      const headers = new Headers()
      for (const [name, value] of Object.entries(response.headers)) {
        if (typeof value === "string") headers.set(name, value)
      }
      return {
        status: response.statusCode ?? 0,
        headers,
        retry: () => retry,
        next,
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
      assert.deepStrictEqual([snapshot.version, snapshot.title, snapshot.takenAt], [1, "Resilience dashboard", 0])
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
        { name: "reports", active: 0, queued: 0, admitted: 1, rejected: 0, keys: 0, maxConcurrent: 3, maxQueue: 5 }
      ])
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
      assert.strictEqual((yield* again.next).version, 1)
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
      const error = yield* Effect.flip(
        Dashboard.validateOptions({
          breakers: [a, b],
          prefix: "/ops/",
          title: "",
          interval: "0 seconds",
          reconnect: "soon" as never,
          maxCircuits: 0,
          topClients: 101,
          maxClients: 1.5
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "Dashboard")
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["reconnect", '"soon"', "Expected a non-negative duration"],
          ["breakers.1", '"same"', "Expected a name not used by another of the breakers"],
          [
            "prefix",
            '"/ops/"',
            "Expected a path such as /dashboard (segments of letters, digits and . _ ~ -, no trailing slash)"
          ],
          ["title", '""', "Expected a value with a length of at least 1"],
          ["maxCircuits", "0", "Expected a value greater than or equal to 1"],
          ["topClients", "101", "Expected a value between 0 and 100"],
          ["maxClients", "1.5", "Expected an integer"],
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
          alerts: []
        }
      )
      assert.deepStrictEqual(
        Dashboard.optionsDocs.map((doc) => doc.name),
        ["prefix", "title", "interval", "reconnect", "maxCircuits", "topClients", "maxClients"]
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
