import { assert, describe, it } from "@effect/vitest"
import { Chaos, CircuitBreaker, Options, Retry } from "@effect-resilience/core"
import { HttpChaos, ResilientHttpClient } from "@effect-resilience/http"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import { TestClock } from "effect/testing"
import { serveLoopback } from "./server.ts"

/** A real-time pause: lets a response that should not come yet show up. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 30)))

/**
 * A loopback server whose routes count the requests that reach them, with
 * the chaos middleware (validated, global) in front; `send` answers a status
 * and body, or the error fetch failed with (a dropped connection), and can be
 * interrupted (the client gives up).
 */
const serveWithChaos = (chaos: Chaos.Chaos, options: HttpChaos.ServerOptions = {}) =>
  Effect.gen(function* () {
    const reached: Array<string> = []
    const route = (path: HttpRouter.PathInput) =>
      HttpRouter.add(
        "*",
        path,
        Effect.sync(() => {
          reached.push(path)
          return HttpServerResponse.text(`hello ${path}`)
        })
      )
    const app = Layer.mergeAll(
      route("/api/quotes"),
      route("/api/orders"),
      route("/health"),
      HttpChaos.layer(options).pipe(Layer.provide(Layer.succeed(Chaos.Chaos, chaos)))
    )
    const { port } = yield* serveLoopback(app)
    const send = (path: string, init: { readonly method?: string; readonly headers?: Record<string, string> } = {}) =>
      Effect.tryPromise({
        try: async (signal) => {
          const res = await fetch(`http://127.0.0.1:${port}${path}`, {
            method: init.method ?? "GET",
            headers: { connection: "close", ...init.headers },
            signal
          })
          return { status: res.status, text: await res.text(), retryAfter: res.headers.get("retry-after") ?? undefined }
        },
        catch: (cause) => cause
      }).pipe(
        Effect.catch((cause) =>
          Effect.succeed({
            status: 0,
            text: `failed: ${cause instanceof Error ? cause.message : String(cause)}`,
            retryAfter: undefined
          })
        )
      )
    const status = (path: string, headers?: Record<string, string>) =>
      Effect.map(send(path, headers === undefined ? {} : { headers }), (reply) => reply.status)
    return {
      send,
      status,
      reached,
      url: (path: string) => `http://127.0.0.1:${port}${path}`,
      host: `127.0.0.1:${port}`
    }
  })

/** Fetch underneath, one connection per request. */
const fetchClient = Effect.map(HttpClient.HttpClient, (client) =>
  client.pipe(HttpClient.mapRequest(HttpClientRequest.setHeader("connection", "close")))
).pipe(Effect.provide(FetchHttpClient.layer))

/** An in-memory upstream answering 200 and counting its calls. */
const countingUpstream = () => {
  const calls: Array<string> = []
  const client = HttpClient.make((request) =>
    Effect.sync(() => {
      calls.push(request.url)
      return HttpClientResponse.fromWeb(request, new Response("upstream", { status: 200 }))
    })
  )
  return { client, calls }
}

describe("HttpChaos", () => {
  describe("server middleware", () => {
    it.effect("abort rate 1: exactly the configured status and body, the handler never runs", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ name: "api", failureRate: 1 })
        const server = yield* serveWithChaos(chaos)
        const reply = yield* server.send("/api/quotes")
        assert.deepStrictEqual([reply.status, reply.text], [503, "fault injected by chaos api"])
        const custom = yield* Chaos.make({ name: "custom", failureRate: 1 })
        const other = yield* serveWithChaos(custom, {
          responses: [{ status: 429, body: "slow down", retryAfter: "1500 millis", headers: { "x-why": "chaos" } }]
        })
        const limited = yield* other.send("/api/orders")
        assert.deepStrictEqual([limited.status, limited.text, limited.retryAfter], [429, "slow down", "2"])
        assert.deepStrictEqual([server.reached, other.reached], [[], []])
        assert.deepStrictEqual(yield* chaos.stats, { calls: 1, latency: 0, failure: 1, defect: 0, hang: 0 })
      }).pipe(Effect.scoped)
    )

    it.effect("a seeded run gives the same sequence of answers twice (weighted statuses included)", () =>
      Effect.gen(function* () {
        const run = Effect.gen(function* () {
          const chaos = yield* Chaos.make({ failureRate: 0.5 })
          const server = yield* serveWithChaos(chaos, {
            responses: [
              { status: 503, weight: 2 },
              { status: 500, weight: 1 }
            ]
          })
          const statuses: Array<number> = []
          for (let i = 0; i < 24; i++) statuses.push(yield* server.status("/api/quotes"))
          return statuses
        }).pipe(Effect.scoped, Random.withSeed("http-chaos"))
        const first = yield* run
        const second = yield* run
        assert.deepStrictEqual(first, second)
        assert.includeMembers(first, [200, 500, 503])
        assert.sameMembers([...new Set(first)], [200, 500, 503])
      })
    )

    it.effect("a delay is on the TestClock: the response comes only after TestClock.adjust", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ latencyRate: 1, latencyMin: "200 millis" })
        const events = yield* chaos.subscribe
        const server = yield* serveWithChaos(chaos)
        const reply = yield* Effect.forkChild(server.send("/api/quotes"))
        const [event] = yield* Queue.takeN(events, 1)
        assert.strictEqual(event?.fault, "latency")
        yield* Effect.yieldNow
        yield* TestClock.adjust("199 millis")
        yield* settle
        assert.isUndefined(reply.pollUnsafe())
        assert.deepStrictEqual(server.reached, []) // the delay is before the handler
        yield* TestClock.adjust("1 millis")
        const answered = yield* Fiber.join(reply)
        assert.deepStrictEqual([answered.status, answered.text], [200, "hello /api/quotes"])
      }).pipe(Effect.scoped)
    )

    it.effect("header-driven faults are honoured only when headerControl is on (and the instance enabled)", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ name: "staging" }) // every rate 0: only the headers inject
        const events = yield* chaos.subscribe
        const off = yield* serveWithChaos(chaos)
        assert.strictEqual(yield* off.status("/api/quotes", { "x-chaos-abort": "503" }), 200)
        assert.strictEqual(yield* off.status("/api/quotes", { "x-chaos-delay": "100" }), 200)

        const on = yield* serveWithChaos(chaos, { headerControl: true, maxHeaderDelay: "1 second" })
        assert.strictEqual(yield* on.status("/api/quotes", { "x-chaos-abort": "418" }), 418)
        // not a status in [200, 600), not a number: ignored
        assert.strictEqual(yield* on.status("/api/quotes", { "x-chaos-abort": "700" }), 200)
        assert.strictEqual(yield* on.status("/api/quotes", { "x-chaos-delay": "soon" }), 200)
        // a delay above maxHeaderDelay is capped
        const delayed = yield* Effect.forkChild(on.status("/api/quotes", { "x-chaos-delay": "60000" }))
        const [abortEvent, delayEvent] = yield* Queue.takeN(events, 2)
        assert.strictEqual(abortEvent?.fault, "failure")
        assert.deepStrictEqual(
          [delayEvent?.fault, delayEvent?.delay === undefined ? -1 : Duration.toMillis(delayEvent.delay)],
          ["latency", 1_000]
        )
        yield* Effect.yieldNow
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Fiber.join(delayed), 200)
        // both at once: the delay, then the abort
        const both = yield* Effect.forkChild(
          on.status("/api/orders", { "x-chaos-delay": "50", "x-chaos-abort": "502" })
        )
        yield* Queue.takeN(events, 1) // the delay; the abort comes after it
        yield* Effect.yieldNow
        yield* TestClock.adjust("50 millis")
        assert.strictEqual(yield* Fiber.join(both), 502)
        assert.deepStrictEqual(
          (yield* Queue.takeAll(events)).map((event) => event.fault),
          ["failure"]
        )
        yield* chaos.disable
        assert.strictEqual(yield* on.status("/api/quotes", { "x-chaos-abort": "503" }), 200)
        assert.deepStrictEqual(yield* chaos.stats, { calls: 8, latency: 2, failure: 2, defect: 0, hang: 0 })
      }).pipe(Effect.scoped)
    )

    it.effect("excluded paths, other paths, other methods and requests without the selected header are untouched", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ failureRate: 1 })
        const server = yield* serveWithChaos(chaos, {
          paths: ["/api/*"],
          exclude: ["/api/orders"],
          methods: ["get"],
          headers: { "X-Canary": true, "x-tenant": "acme" }
        })
        const canary = { "x-canary": "1", "x-tenant": "acme" }
        assert.strictEqual(yield* server.status("/api/quotes", canary), 503)
        assert.strictEqual(yield* server.status("/api/quotes?symbol=eurusd", canary), 503)
        assert.strictEqual(yield* server.status("/api/orders", canary), 200) // excluded
        assert.strictEqual(yield* server.status("/health", canary), 200) // not under /api/
        assert.strictEqual((yield* server.send("/api/quotes", { method: "POST", headers: canary })).status, 200)
        assert.strictEqual(yield* server.status("/api/quotes", { "x-canary": "1", "x-tenant": "other" }), 200)
        assert.strictEqual(yield* server.status("/api/quotes", { "x-tenant": "acme" }), 200)
        assert.deepStrictEqual(server.reached, ["/api/orders", "/health", "/api/quotes", "/api/quotes", "/api/quotes"])
        // only the matching requests were calls of the instance
        assert.strictEqual((yield* chaos.stats).calls, 2)
      }).pipe(Effect.scoped)
    )

    it.effect("the instance's keys target paths (the default key), or a key of the request", () =>
      Effect.gen(function* () {
        const byPath = yield* Chaos.make({ failureRate: 1, keys: ["/api/orders"] })
        const server = yield* serveWithChaos(byPath)
        assert.deepStrictEqual(
          [yield* server.status("/api/quotes"), yield* server.status("/api/orders?id=1")],
          [200, 503]
        )
        const byTenant = yield* Chaos.make({ failureRate: 1, keys: ["tenant:acme"] })
        const other = yield* serveWithChaos(byTenant, { key: (request) => `tenant:${request.headers["x-tenant"]}` })
        assert.deepStrictEqual(
          [yield* other.status("/api/quotes", { "x-tenant": "acme" }), yield* other.status("/api/quotes")],
          [503, 200]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("disabled chaos passes everything; enable and disable switch at run time", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ enabled: false, failureRate: 1 })
        const server = yield* serveWithChaos(chaos)
        assert.strictEqual(yield* server.status("/api/quotes"), 200)
        yield* chaos.enable
        assert.strictEqual(yield* server.status("/api/quotes"), 503)
        yield* chaos.disable
        assert.strictEqual(yield* server.status("/api/quotes"), 200)
        assert.deepStrictEqual(server.reached, ["/api/quotes", "/api/quotes"])
      }).pipe(Effect.scoped)
    )

    it.effect("drop: the connection closes without an answer; the server keeps serving", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ defectRate: 1 })
        const server = yield* serveWithChaos(chaos)
        const dropped = yield* server.send("/api/quotes")
        assert.strictEqual(dropped.status, 0)
        assert.match(dropped.text, /^failed: /)
        assert.deepStrictEqual(server.reached, [])
        assert.strictEqual((yield* chaos.stats).defect, 1)
        yield* chaos.disable
        assert.strictEqual(yield* server.status("/api/quotes"), 200)
      }).pipe(Effect.scoped)
    )

    it.effect("hang: no answer until the client gives up", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ hangRate: 1 })
        const server = yield* serveWithChaos(chaos)
        const waiting = yield* Effect.forkChild(server.send("/api/quotes"))
        yield* TestClock.adjust("1 hour")
        yield* settle
        assert.isUndefined(waiting.pollUnsafe())
        yield* Fiber.interrupt(waiting) // aborts the fetch: the server interrupts the handler
        assert.deepStrictEqual([server.reached, (yield* chaos.stats).hang], [[], 1])
      }).pipe(Effect.scoped)
    )

    it.effect("options are validated: one InvalidOptions naming each bad field, also when the layer is built", () =>
      Effect.gen(function* () {
        // as JavaScript or parsed configuration may give them: not type-checked
        const fromJson: HttpChaos.ServerOptions = JSON.parse(
          '{"headers": {"x-canary": 1}, "responses": [{"status": 503}, {"status": 1000, "weight": -1, "retryAfter": "later"}],' +
            ' "maxHeaderDelay": "a while"}'
        )
        const error = yield* Effect.flip(
          HttpChaos.validateServerOptions({
            ...fromJson,
            paths: ["api/*"],
            exclude: ["/health", "metrics"],
            methods: ["GET", "NOT A METHOD"],
            dropTimeout: 0
          })
        )
        assert.strictEqual(error.pattern, "HttpChaos")
        assert.deepStrictEqual(
          error.issues.map((issue) => [issue.path, issue.value]),
          [
            ["paths.0", '"api/*"'],
            ["exclude.1", '"metrics"'],
            ["methods.1", '"NOT A METHOD"'],
            ["headers.x-canary", "1"],
            ["responses.1.status", "1000"],
            ["responses.1.weight", "-1"],
            ["responses.1.retryAfter", '"later"'],
            ["maxHeaderDelay", '"a while"'],
            ["dropTimeout", "0"]
          ]
        )
        const empty = yield* Effect.flip(HttpChaos.validateServerOptions({ responses: [] }))
        assert.deepStrictEqual(
          empty.issues.map((issue) => issue.path),
          ["responses"]
        )
        const valid: HttpChaos.ServerOptions = {
          paths: ["/api/*"],
          responses: [{ status: 429, retryAfter: "1 second" }],
          headerControl: true
        }
        assert.deepStrictEqual(yield* HttpChaos.validateServerOptions(valid), valid)
        const chaos = yield* Chaos.make()
        const built = yield* Effect.flip(serveWithChaos(chaos, { exclude: ["health"] }))
        assert.isTrue(built instanceof Options.InvalidOptions)
      }).pipe(Effect.scoped)
    )
  })

  describe("client wrapper", () => {
    it.effect(
      "over a real server: failures are synthetic responses, defects transport errors; the request never leaves",
      () =>
        Effect.gen(function* () {
          const chaos = yield* Chaos.make({ name: "upstream", failureRate: 0.5, defectRate: 0.5 })
          const server = yield* serveWithChaos(yield* Chaos.make({ enabled: false }))
          const client = (yield* fetchClient).pipe(
            HttpChaos.client(chaos, {
              responses: [
                { status: 503, weight: 1 },
                { status: 429, weight: 1, retryAfter: "3 seconds", body: "busy" }
              ]
            })
          )
          const outcomes: Array<string> = []
          for (let i = 0; i < 30; i++) {
            const result = yield* Effect.result(client.get(server.url("/api/quotes")))
            if (result._tag === "Success") {
              const text = yield* result.success.text
              outcomes.push(`${result.success.status} ${result.success.headers["retry-after"] ?? "-"} ${text}`)
            } else {
              const error = result.failure
              assert.isTrue(HttpClientError.isHttpClientError(error))
              outcomes.push(error.reason._tag)
            }
          }
          assert.sameMembers(
            [...new Set(outcomes)],
            ["503 - fault injected by chaos upstream", "429 3 busy", "TransportError"]
          )
          assert.deepStrictEqual(server.reached, [])
          yield* chaos.disable
          const response = yield* client.get(server.url("/api/quotes"))
          assert.deepStrictEqual([response.status, yield* response.text], [200, "hello /api/quotes"])
        }).pipe(Effect.scoped)
    )

    it.effect("per-host targeting: hosts (any port, host:port, *.suffix), methods and a predicate", () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ failureRate: 1 })
        const upstream = countingUpstream()
        const client = HttpChaos.client(upstream.client, chaos, {
          hosts: ["payments.internal", "*.eu.example.com", "quotes.internal:8443"],
          methods: ["GET"],
          match: (request) => !request.url.endsWith("/ping")
        })
        const statusOf = (url: string, method: "GET" | "POST" = "GET") =>
          Effect.map(method === "GET" ? client.get(url) : client.post(url), (response) => response.status)
        assert.deepStrictEqual(
          [
            yield* statusOf("http://payments.internal/charge"),
            yield* statusOf("http://payments.internal:9000/charge"),
            yield* statusOf("https://api.eu.example.com/x"),
            yield* statusOf("https://eu.example.com/x"),
            yield* statusOf("https://quotes.internal:8443/eurusd"),
            yield* statusOf("https://quotes.internal/eurusd"),
            yield* statusOf("http://payments.internal/charge", "POST"),
            yield* statusOf("http://payments.internal/ping"),
            yield* statusOf("http://orders.internal/")
          ],
          [503, 503, 503, 200, 503, 200, 200, 200, 200]
        )
        assert.strictEqual(upstream.calls.length, 5)
      }).pipe(Effect.scoped)
    )

    it.effect("latency on the TestClock, a hang until interrupted, and a seeded run reproducible", () =>
      Effect.gen(function* () {
        const slow = yield* Chaos.make({ latencyRate: 1, latencyMin: "2 seconds" })
        const upstream = countingUpstream()
        const fiber = yield* Effect.forkChild(HttpChaos.client(upstream.client, slow).get("http://a.internal/"))
        yield* Effect.yieldNow
        yield* TestClock.adjust("1999 millis")
        assert.deepStrictEqual([fiber.pollUnsafe(), upstream.calls.length], [undefined, 0])
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* Fiber.join(fiber)).status, 200)

        const hanging = yield* Chaos.make({ hangRate: 1 })
        const timedOut = yield* HttpChaos.client(upstream.client, hanging)
          .get("http://a.internal/")
          .pipe(Effect.timeoutOption("5 seconds"), Effect.forkChild)
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual((yield* Fiber.join(timedOut))._tag, "None")

        const flaky = yield* Chaos.make({ failureRate: 0.3, defectRate: 0.2 })
        const client = HttpChaos.client(upstream.client, flaky)
        const sequence = Effect.gen(function* () {
          const out: Array<string> = []
          for (let i = 0; i < 20; i++) {
            const result = yield* Effect.result(client.get("http://a.internal/"))
            out.push(result._tag === "Success" ? String(result.success.status) : result.failure.reason._tag)
          }
          return out
        })
        const first = yield* sequence.pipe(Random.withSeed(7))
        const second = yield* sequence.pipe(Random.withSeed(7))
        assert.deepStrictEqual(first, second)
        assert.sameMembers([...new Set(first)], ["200", "503", "TransportError"])
      }).pipe(Effect.scoped)
    )

    it.effect("the point: a ResilientHttpClient over it retries the injected 503s and opens its breaker", () =>
      Effect.gen(function* () {
        const server = yield* serveWithChaos(yield* Chaos.make({ enabled: false }))
        const chaos = yield* Chaos.make({ name: "quotes", failureRate: 1 })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, openDuration: "30 seconds" })
        const client = yield* ResilientHttpClient.make((yield* fetchClient).pipe(HttpChaos.client(chaos)), {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
          circuitBreaker: breaker
        })
        // three attempts, each a 503 from chaos: the last one is returned, and the breaker opens
        const response = yield* client.get(server.url("/api/quotes"))
        assert.strictEqual(response.status, 503)
        assert.deepStrictEqual([(yield* chaos.stats).failure, (yield* breaker.state(server.host))._tag], [3, "Open"])
        // a POST is not retried: the open circuit's rejection comes at once (a GET would wait for it to half-open)
        const rejected = yield* Effect.flip(client.post(server.url("/api/quotes")))
        assert.isTrue(CircuitBreaker.isCircuitBreakerError(rejected))
        assert.strictEqual((yield* chaos.stats).calls, 3) // rejected before chaos: nothing sent
        // the fault goes away: after the open duration the probe reaches the real server and closes the circuit
        yield* chaos.disable
        yield* TestClock.adjust("30 seconds")
        const recovered = yield* client.get(server.url("/api/quotes"))
        assert.deepStrictEqual([recovered.status, yield* recovered.text], [200, "hello /api/quotes"])
        assert.strictEqual((yield* breaker.state(server.host))._tag, "Closed")
        assert.deepStrictEqual(server.reached, ["/api/quotes"])
      }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
    )

    it.effect("transport errors and a 429's Retry-After reach the retry: it waits the hint on the TestClock", () =>
      Effect.gen(function* () {
        const upstream = countingUpstream()
        const dropping = yield* Chaos.make({ defectRate: 1, keys: ["down.internal"] })
        const limited = yield* Chaos.make({ failureRate: 1, keys: ["busy.internal"] })
        const client = yield* ResilientHttpClient.make(
          upstream.client.pipe(
            HttpChaos.client(dropping),
            HttpChaos.client(limited, { responses: [{ status: 429, retryAfter: "4 seconds" }] })
          ),
          { retry: Retry.constant({ delay: 0, maxAttempts: 2, maxRetryAfter: "1 minute" }) }
        )
        const error = yield* Effect.flip(client.get("http://down.internal/"))
        assert.isTrue(HttpClientError.isHttpClientError(error) && error.reason._tag === "TransportError")
        assert.strictEqual((yield* dropping.stats).defect, 2) // retried once
        const waiting = yield* Effect.forkChild(client.get("http://busy.internal/"))
        yield* Effect.yieldNow
        yield* TestClock.adjust("3999 millis")
        assert.strictEqual((yield* limited.stats).failure, 1)
        yield* TestClock.adjust("1 millis")
        const response = yield* Fiber.join(waiting)
        assert.deepStrictEqual([response.status, (yield* limited.stats).failure], [429, 2])
        assert.strictEqual(upstream.calls.length, 0)
      }).pipe(Effect.scoped)
    )

    it.effect("client options are validated; layerClient wraps the HttpClient service", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          HttpChaos.validateClientOptions({
            hosts: ["ok.internal", "", "http://api.internal/"],
            methods: [""],
            responses: [{ status: 503, weight: Number.POSITIVE_INFINITY }]
          })
        )
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.path),
          ["hosts.1", "hosts.2", "methods.0", "responses.0.weight"]
        )
        const upstream = countingUpstream()
        const layer = HttpChaos.layerClient({ hosts: ["*.internal"] }).pipe(
          Layer.provide([Layer.succeed(HttpClient.HttpClient, upstream.client), Chaos.layer({ failureRate: 1 })])
        )
        const statuses = yield* Effect.gen(function* () {
          const client = yield* HttpClient.HttpClient
          return [(yield* client.get("http://a.internal/")).status, (yield* client.get("http://example.com/")).status]
        }).pipe(Effect.provide(layer))
        assert.deepStrictEqual([statuses, upstream.calls], [[503, 200], ["http://example.com/"]])
        const bad = yield* Effect.flip(
          Effect.provide(
            HttpClient.HttpClient.useSync((client) => client),
            HttpChaos.layerClient({ hosts: [""] }).pipe(Layer.provide([layer, Chaos.layer()]))
          )
        )
        assert.isTrue(bad instanceof Options.InvalidOptions)
      })
    )
  })
})
