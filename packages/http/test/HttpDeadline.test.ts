import * as Http from "node:http"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Options, Retry, Timeout } from "@effect-resilience/core"
import { HttpDeadline } from "@effect-resilience/http"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Internal from "../src/internal/deadline.ts"
import { serveLoopback } from "./server.ts"

/** A real-time pause: lets a response that should not come yet show up. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 30)))

/** Fetch underneath, one connection per request. */
const fetchClient = Effect.map(HttpClient.HttpClient, (client) =>
  client.pipe(HttpClient.mapRequest(HttpClientRequest.setHeader("connection", "close")))
).pipe(Effect.provide(FetchHttpClient.layer))

/** The budget the current fiber runs under, in milliseconds, or `none` without a deadline. */
const budgetSeen = Effect.gen(function* () {
  const deadline = yield* Timeout.Deadline
  const now = yield* Clock.currentTimeMillis
  return deadline === Number.POSITIVE_INFINITY ? "none" : String(deadline - now)
})

/** A route answering the budget its handler runs under. */
const budgetRoute = (path: HttpRouter.PathInput) =>
  HttpRouter.add(
    "GET",
    path,
    Effect.map(budgetSeen, (budget) => HttpServerResponse.text(budget))
  )

/** Serves `routes` with the deadline middleware (validated, global) in front. */
const serveWithDeadline = (routes: Layer.Layer<never, unknown, unknown>, options: HttpDeadline.ServerInput = {}) =>
  Effect.map(serveLoopback(Layer.mergeAll(routes, HttpDeadline.layer(options))), (server) => ({
    ...server,
    url: (path: string) => `http://127.0.0.1:${server.port}${path}`
  }))

/** An in-memory upstream recording the budget header of each request it gets (`none` when absent). */
const recordingUpstream = (header = "x-request-timeout-ms") => {
  const seen: Array<string> = []
  const client = HttpClient.make((request) =>
    Effect.sync(() => {
      seen.push(request.headers[header] ?? "none")
      return HttpClientResponse.fromWeb(request, new Response("ok"))
    })
  )
  return { client, seen }
}

/** Options as a program reads them from JSON: untyped, checked at run time only. */
const fromJson = (json: string): HttpDeadline.ServerInput & HttpDeadline.ClientInput => JSON.parse(json)

const text = <E, R>(response: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>) =>
  Effect.flatMap(response, (r) => r.text)

describe("HttpDeadline", () => {
  describe("across two hops", () => {
    it.effect("B receives A's remaining budget minus the time A spent before calling it", () =>
      Effect.gen(function* () {
        const client = HttpDeadline.client(yield* fetchClient)
        const b = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/b",
            Effect.gen(function* () {
              const request = yield* HttpServerRequest.HttpServerRequest
              const header = request.headers["x-request-timeout-ms"] ?? "none"
              return HttpServerResponse.text(`header ${header}, budget ${yield* budgetSeen}`)
            })
          )
        )
        const aStarted = yield* Deferred.make<string>()
        const a = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/a",
            Effect.gen(function* () {
              yield* Deferred.succeed(aStarted, yield* budgetSeen)
              yield* Effect.sleep("300 millis") // A's own work
              const fromB = yield* text(client.get(b.url("/b")))
              return HttpServerResponse.text(fromB)
            })
          )
        )
        const reply = yield* text(client.get(a.url("/a"))).pipe(Timeout.deadline("2 seconds"), Effect.forkChild)
        assert.strictEqual(yield* Deferred.await(aStarted), "2000") // A got the caller's whole budget
        yield* Effect.yieldNow
        yield* TestClock.adjust("300 millis")
        assert.strictEqual(yield* Fiber.join(reply), "header 1700, budget 1700")
      }).pipe(Effect.scoped)
    )

    it.effect("with a margin, each hop sends the time left minus the margin", () =>
      Effect.gen(function* () {
        const client = HttpDeadline.client(yield* fetchClient, { margin: "25 millis" })
        const b = yield* serveWithDeadline(budgetRoute("/b"))
        const a = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/a",
            Effect.gen(function* () {
              const mine = yield* budgetSeen
              const fromB = yield* text(client.get(b.url("/b")))
              return HttpServerResponse.text(`${mine} ${fromB}`)
            })
          )
        )
        const reply = yield* text(client.get(a.url("/a"))).pipe(Timeout.deadline("1 second"))
        assert.strictEqual(reply, "975 950")
      }).pipe(Effect.scoped)
    )

    it.effect("the gRPC format: grpc-timeout both ways", () =>
      Effect.gen(function* () {
        const client = HttpDeadline.client(yield* fetchClient, { format: "grpc" })
        const server = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/g",
            Effect.gen(function* () {
              const request = yield* HttpServerRequest.HttpServerRequest
              return HttpServerResponse.text(`${request.headers["grpc-timeout"] ?? "none"} ${yield* budgetSeen}`)
            })
          ),
          { format: "grpc", defaultTimeout: "5 seconds" }
        )
        assert.strictEqual(
          yield* text(client.get(server.url("/g"))).pipe(Timeout.deadline("1500 millis")),
          "1500m 1500"
        )
        const get = (value: string) => Effect.map(server.get("/g", { "grpc-timeout": value }), (r) => r.text)
        assert.strictEqual(yield* get("2S"), "2S 2000")
        assert.strictEqual(yield* get("1M"), "1M 30000") // clamped to maxTimeout (30 s by default)
        assert.strictEqual(yield* get("1500"), "1500 5000") // no unit: ignored, the default applies
      }).pipe(Effect.scoped)
    )
  })

  describe("server middleware", () => {
    it.effect("a handler past its deadline gets 504, and its work is interrupted", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const server = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/slow",
            Effect.andThen(
              Deferred.succeed(started, undefined),
              Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))
            )
          )
        )
        const before = (yield* Timeout.stats).deadline
        const reply = yield* Effect.forkChild(server.get("/slow", { "x-request-timeout-ms": "500" }))
        yield* Deferred.await(started)
        yield* Effect.yieldNow
        yield* TestClock.adjust("499 millis")
        yield* settle
        assert.isUndefined(reply.pollUnsafe())
        assert.isFalse(yield* Deferred.isDone(interrupted))
        yield* TestClock.adjust("1 millis")
        const answered = yield* Fiber.join(reply)
        assert.deepStrictEqual([answered.status, answered.text], [504, "Deadline Exceeded"])
        assert.isTrue(yield* Deferred.isDone(interrupted))
        assert.strictEqual((yield* Timeout.stats).deadline, before + 1)
      }).pipe(Effect.scoped)
    )

    it.effect("a client that leaves still interrupts the handler running inside the deadline", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const server = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/slow",
            Effect.andThen(
              Deferred.succeed(started, undefined),
              Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))
            )
          )
        )
        const request = yield* Effect.forkChild(
          Effect.tryPromise((signal) =>
            fetch(server.url("/slow"), { headers: { "x-request-timeout-ms": "10000" }, signal })
          )
        )
        yield* Deferred.await(started)
        yield* Fiber.interrupt(request) // aborts the fetch: the connection closes
        yield* Deferred.await(interrupted) // long before the 10 s budget (the TestClock never moves)
      }).pipe(Effect.scoped)
    )

    it.effect("the status is configurable; a handler faster than its deadline is untouched", () =>
      Effect.gen(function* () {
        const slowStarted = yield* Deferred.make<void>()
        const fastStarted = yield* Deferred.make<void>()
        const handler = (started: Deferred.Deferred<void>, sleep: Duration.Input, text: string) =>
          Effect.andThen(
            Deferred.succeed(started, undefined),
            Effect.as(Effect.sleep(sleep), HttpServerResponse.text(text))
          )
        const server = yield* serveWithDeadline(
          Layer.mergeAll(
            HttpRouter.add("GET", "/slow", handler(slowStarted, "1 second", "late")),
            HttpRouter.add("GET", "/fast", handler(fastStarted, "10 millis", "fast"))
          ),
          { status: 503 }
        )
        const slow = yield* Effect.forkChild(server.get("/slow", { "x-request-timeout-ms": "100" }))
        const fast = yield* Effect.forkChild(server.get("/fast", { "x-request-timeout-ms": "100" }))
        // both handlers are inside their deadlines (and about to sleep) before the clock moves
        yield* Deferred.await(slowStarted)
        yield* Deferred.await(fastStarted)
        yield* Effect.yieldNow
        yield* TestClock.adjust("100 millis")
        assert.deepStrictEqual((yield* Fiber.join(fast)).text, "fast")
        assert.deepStrictEqual((yield* Fiber.join(slow)).status, 503)
      }).pipe(Effect.scoped)
    )

    it.effect("no header: the defaultTimeout, or no deadline at all without one", () =>
      Effect.gen(function* () {
        const withDefault = yield* serveWithDeadline(budgetRoute("/budget"), { defaultTimeout: "1 second" })
        const without = yield* serveWithDeadline(budgetRoute("/budget"))
        assert.strictEqual((yield* withDefault.get("/budget")).text, "1000")
        assert.strictEqual((yield* without.get("/budget")).text, "none")
        assert.strictEqual((yield* withDefault.get("/budget", { "x-request-timeout-ms": "250" })).text, "250")
        assert.strictEqual((yield* without.get("/budget", { "x-request-timeout-ms": "250" })).text, "250")
      }).pipe(Effect.scoped)
    )

    it.effect("maxTimeout clamps a larger header, however large", () =>
      Effect.gen(function* () {
        const server = yield* serveWithDeadline(budgetRoute("/budget"), { maxTimeout: "2 seconds" })
        const budget = (value: string) =>
          Effect.map(server.get("/budget", { "x-request-timeout-ms": value }), (reply) => reply.text)
        assert.strictEqual(yield* budget("1500"), "1500")
        assert.strictEqual(yield* budget("2000"), "2000")
        assert.strictEqual(yield* budget("60000"), "2000")
        assert.strictEqual(yield* budget("99999999999999999999999999999"), "2000")
        // the default applies under the cap too (30 seconds when not given)
        const defaulted = yield* serveWithDeadline(budgetRoute("/budget"))
        const big = yield* defaulted.get("/budget", { "x-request-timeout-ms": "86400000" })
        assert.strictEqual(big.text, "30000")
      }).pipe(Effect.scoped)
    )

    it.effect(
      "bad header values are ignored (the default applies); 0 is answered 504 without running the handler",
      () =>
        Effect.gen(function* () {
          let runs = 0
          const counted = HttpRouter.add(
            "GET",
            "/budget",
            Effect.flatMap(
              Effect.sync(() => runs++),
              () => Effect.map(budgetSeen, (budget) => HttpServerResponse.text(budget))
            )
          )
          const server = yield* serveWithDeadline(counted, { defaultTimeout: "1 second" })
          const bad = ["-5", "1.5", "1e3", "soon", "0x10", "", "100, 200", "+100"]
          const answers: Array<string> = []
          for (const value of bad) answers.push((yield* server.get("/budget", { "x-request-timeout-ms": value })).text)
          assert.deepStrictEqual(
            answers,
            bad.map(() => "1000")
          )
          assert.strictEqual(runs, bad.length)
          const zero = yield* server.get("/budget", { "x-request-timeout-ms": "0" })
          assert.deepStrictEqual([zero.status, runs], [504, bad.length])
          const padded = yield* server.get("/budget", { "x-request-timeout-ms": "  42 " })
          assert.strictEqual(padded.text, "42")
        }).pipe(Effect.scoped)
    )

    it.effect("a handler failing with a deadline TimeoutError gets 504; an attempt timeout stays its own error", () =>
      Effect.gen(function* () {
        let sent = 0
        const upstream = HttpDeadline.client(
          HttpClient.make((request) =>
            Effect.sync(() => {
              sent++
              return HttpClientResponse.fromWeb(request, new Response("ok"))
            })
          ),
          { margin: "50 millis" }
        )
        const server = yield* serveWithDeadline(
          Layer.mergeAll(
            // 30 ms left, a 50 ms margin: the call downstream is refused, and the handler does not catch it
            HttpRouter.add(
              "GET",
              "/next-hop",
              Effect.as(upstream.get("http://next.internal/"), HttpServerResponse.text("ok"))
            ),
            HttpRouter.add(
              "GET",
              "/attempt",
              Effect.as(Timeout.attempt(Effect.never, 0), HttpServerResponse.text("never"))
            )
          )
        )
        const refused = yield* server.get("/next-hop", { "x-request-timeout-ms": "30" })
        assert.deepStrictEqual([refused.status, refused.text, sent], [504, "Deadline Exceeded", 0])
        const attempt = yield* server.get("/attempt", { "x-request-timeout-ms": "1000" })
        assert.strictEqual(attempt.status, 500)
      }).pipe(Effect.scoped)
    )

    it.effect("excluded paths get no deadline", () =>
      Effect.gen(function* () {
        const server = yield* serveWithDeadline(Layer.mergeAll(budgetRoute("/events"), budgetRoute("/api")), {
          defaultTimeout: "1 second",
          exclude: ["/events"]
        })
        assert.strictEqual((yield* server.get("/events", { "x-request-timeout-ms": "100" })).text, "none")
        assert.strictEqual((yield* server.get("/api", { "x-request-timeout-ms": "100" })).text, "100")
        const byPredicate = yield* serveWithDeadline(budgetRoute("/api"), {
          defaultTimeout: "1 second",
          exclude: (request) => request.headers["x-long-poll"] !== undefined
        })
        assert.strictEqual((yield* byPredicate.get("/api", { "x-long-poll": "1" })).text, "none")
        assert.strictEqual((yield* byPredicate.get("/api")).text, "1000")
      }).pipe(Effect.scoped)
    )

    it.effect("an upgrade request (WebSocket) gets no deadline; a custom header name is read", () =>
      Effect.gen(function* () {
        const run = (headers: Record<string, string>) =>
          HttpDeadline.middleware({ header: "X-Budget", defaultTimeout: "1 second" })(
            budgetSeen.pipe(Effect.map(HttpServerResponse.text))
          ).pipe(
            Effect.provideService(
              HttpServerRequest.HttpServerRequest,
              HttpServerRequest.fromWeb(new Request("http://api.internal/ws", { headers }))
            ),
            Effect.flatMap((response) =>
              response.body._tag === "Uint8Array"
                ? Effect.succeed(new TextDecoder().decode(response.body.body))
                : Effect.succeed("?")
            )
          )
        assert.strictEqual(yield* run({ "x-budget": "300" }), "300")
        assert.strictEqual(yield* run({ "x-request-timeout-ms": "300" }), "1000")
        assert.strictEqual(yield* run({ "x-budget": "300", upgrade: "websocket" }), "none")
      })
    )

    it.effect("once the response has started, no 504: the handler is interrupted and the connection closed", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const server = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/stream",
            Effect.gen(function* () {
              const response = NodeHttpServerRequest.toServerResponse(yield* HttpServerRequest.HttpServerRequest)
              if (!(response instanceof Http.ServerResponse)) return yield* Effect.die("expected HTTP/1.1")
              response.writeHead(200, { "content-type": "text/plain" })
              response.write("partial")
              yield* Deferred.succeed(started, undefined)
              return yield* Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))
            })
          )
        )
        const reply = yield* Effect.forkChild(
          Effect.promise(async () => {
            const res = await fetch(server.url("/stream"), { headers: { "x-request-timeout-ms": "200" } })
            const body = await res.text().then(
              (t) => `complete: ${t}`,
              () => "body cut"
            )
            return [res.status, body] as const
          })
        )
        yield* Deferred.await(started)
        yield* Effect.yieldNow
        yield* TestClock.adjust("200 millis")
        assert.deepStrictEqual(yield* Fiber.join(reply), [200, "body cut"])
        assert.isTrue(yield* Deferred.isDone(interrupted))
      }).pipe(Effect.scoped)
    )

    it.effect("the middleware never answers over a started response: the request ends interrupted instead", () =>
      Effect.gen(function* () {
        // what Node's platform request exposes: its ServerResponse, whose head may be out already
        const run = (headersSent: boolean) => {
          const request = HttpServerRequest.fromWeb(
            new Request("http://api.internal/stream", { headers: { "x-request-timeout-ms": "100" } })
          )
          Object.assign(request, { response: { headersSent } })
          return HttpDeadline.middleware()(Effect.never).pipe(
            Effect.provideService(HttpServerRequest.HttpServerRequest, request),
            Effect.exit,
            Effect.forkChild
          )
        }
        const started = yield* run(true)
        const notStarted = yield* run(false)
        yield* TestClock.adjust("100 millis")
        const [startedExit, notStartedExit] = [yield* Fiber.join(started), yield* Fiber.join(notStarted)]
        assert.isTrue(Exit.hasInterrupts(startedExit))
        assert.deepStrictEqual(Exit.isSuccess(notStartedExit) ? notStartedExit.value.status : -1, 504)
      })
    )
  })

  describe("client wrapper", () => {
    it.effect("no deadline, no header; inside one, the time left", () =>
      Effect.gen(function* () {
        const { client, seen } = recordingUpstream()
        const wrapped = HttpDeadline.client(client)
        yield* wrapped.get("http://api.internal/")
        yield* wrapped.get("http://api.internal/").pipe(Timeout.deadline("750 millis"))
        yield* Effect.gen(function* () {
          yield* Effect.sleep("200 millis")
          yield* wrapped.get("http://api.internal/")
        }).pipe(
          Timeout.deadline("750 millis"),
          Effect.forkChild,
          Effect.tap(() => TestClock.adjust("200 millis")),
          Effect.flatMap(Fiber.join)
        )
        assert.deepStrictEqual(seen, ["none", "750", "550"])
      })
    )

    it.effect("no time left: TimeoutError (deadline) at once, and no request sent", () =>
      Effect.gen(function* () {
        let sent = 0 // requests that reached the server
        const server = yield* serveWithDeadline(
          HttpRouter.add(
            "GET",
            "/budget",
            Effect.flatMap(
              Effect.sync(() => sent++),
              () => Effect.map(budgetSeen, (budget) => HttpServerResponse.text(budget))
            )
          )
        )
        const counting = yield* fetchClient
        const client = HttpDeadline.client(counting, { margin: "100 millis" })
        const events = yield* Timeout.subscribe
        const before = (yield* Timeout.stats).deadline
        const error = yield* client.get(server.url("/budget")).pipe(Timeout.deadline("100 millis"), Effect.flip)
        assert.isTrue(Timeout.isTimeoutError(error))
        assert.deepStrictEqual(
          Timeout.isTimeoutError(error) ? [error.reason.kind, Duration.toMillis(error.reason.limit)] : [],
          ["deadline", 100]
        )
        assert.strictEqual(sent, 0)
        assert.strictEqual((yield* Timeout.stats).deadline, before + 1)
        const [event] = yield* Queue.takeN(events, 1)
        assert.strictEqual(event?.kind, "deadline")
        // below one whole millisecond left: refused too (nothing to send)
        const fraction = yield* HttpDeadline.client(counting)
          .get(server.url("/budget"))
          .pipe(Timeout.deadline("0.5 millis"), Effect.flip)
        assert.isTrue(Timeout.isTimeoutError(fraction))
        assert.strictEqual(sent, 0)
        // with time left, the request goes
        assert.strictEqual(yield* text(client.get(server.url("/budget"))).pipe(Timeout.deadline("101 millis")), "1")
        assert.strictEqual(sent, 1)
      }).pipe(Effect.scoped)
    )

    it.effect("under a retry, each attempt sends the time left then", () =>
      Effect.gen(function* () {
        const seen: Array<string> = []
        const flaky = HttpClient.make((request) =>
          Effect.suspend(() => {
            seen.push(request.headers["x-request-timeout-ms"] ?? "none")
            return seen.length < 3
              ? Effect.fail(
                  new HttpClientError.HttpClientError({ reason: new HttpClientError.TransportError({ request }) })
                )
              : Effect.succeed(HttpClientResponse.fromWeb(request, new Response("ok")))
          })
        )
        const fiber = yield* HttpDeadline.client(flaky)
          .get("http://api.internal/")
          .pipe(
            Retry.retry(Retry.constant({ delay: "100 millis", maxAttempts: 3 })),
            Timeout.deadline("1 second"),
            Effect.forkChild
          )
        yield* Effect.yieldNow
        yield* TestClock.adjust("100 millis")
        yield* TestClock.adjust("100 millis")
        assert.strictEqual((yield* Fiber.join(fiber)).status, 200)
        assert.deepStrictEqual(seen, ["1000", "900", "800"])
      })
    )

    it.effect("a request carrying a smaller budget keeps it; a larger one is replaced", () =>
      Effect.gen(function* () {
        const { client, seen } = recordingUpstream()
        const wrapped = HttpDeadline.client(client)
        const send = (value: string) =>
          wrapped
            .execute(
              HttpClientRequest.get("http://api.internal/").pipe(
                HttpClientRequest.setHeader("x-request-timeout-ms", value)
              )
            )
            .pipe(Timeout.deadline("1 second"))
        yield* send("300")
        yield* send("5000")
        yield* send("garbage")
        assert.deepStrictEqual(seen, ["300", "1000", "1000"])
      })
    )

    it.effect("the gRPC format and a custom header name", () =>
      Effect.gen(function* () {
        const grpc = recordingUpstream("grpc-timeout")
        yield* HttpDeadline.client(grpc.client, { format: "grpc" })
          .get("http://api.internal/")
          .pipe(Timeout.deadline("2 minutes"))
        const custom = recordingUpstream("x-budget")
        yield* HttpDeadline.client(custom.client, { header: "X-Budget" })
          .get("http://api.internal/")
          .pipe(Timeout.deadline("2 seconds"))
        assert.deepStrictEqual([grpc.seen, custom.seen], [["120000m"], ["2000"]])
      })
    )

    it.effect("layerClient: the refusal is an HttpClientError (TransportError) whose cause is the TimeoutError", () =>
      Effect.gen(function* () {
        const { client, seen } = recordingUpstream()
        const layer = HttpDeadline.layerClient({ margin: "10 millis" }).pipe(
          Layer.provide(Layer.succeed(HttpClient.HttpClient, client))
        )
        const [ok, refused] = yield* Effect.gen(function* () {
          const wrapped = yield* HttpClient.HttpClient
          const ok = yield* wrapped.get("http://api.internal/").pipe(Timeout.deadline("1 second"))
          const refused = yield* wrapped.get("http://api.internal/").pipe(Timeout.deadline("10 millis"), Effect.flip)
          return [ok.status, refused] as const
        }).pipe(Effect.provide(layer))
        assert.strictEqual(ok, 200)
        assert.deepStrictEqual(seen, ["990"])
        assert.isTrue(HttpClientError.isHttpClientError(refused))
        if (HttpClientError.isHttpClientError(refused)) {
          assert.strictEqual(refused.reason._tag, "TransportError")
          const cause = refused.reason._tag === "TransportError" ? refused.reason.cause : undefined
          assert.isTrue(Timeout.isTimeoutError(cause))
        }
      })
    )
  })

  describe("options", () => {
    it.effect("server: one InvalidOptions naming every bad field; the layer fails to build with it", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          HttpDeadline.validateServerOptions({
            ...fromJson('{ "header": "x timeout", "format": "seconds", "defaultTimeout": "forever", "status": 302 }'),
            maxTimeout: 0,
            exclude: ["events", "/ok"]
          })
        )
        assert.instanceOf(error, Options.InvalidOptions)
        assert.strictEqual(error.pattern, "HttpDeadline")
        assert.deepStrictEqual(
          error.issues.map((issue) => [issue.path, issue.value]),
          [
            ["exclude.0", '"events"'],
            ["defaultTimeout", '"forever"'],
            ["header", '"x timeout"'],
            ["format", '"seconds"'],
            ["status", "302"],
            ["maxTimeout", "0"]
          ]
        )
        const tooLong = yield* Effect.flip(
          HttpDeadline.validateServerOptions({ maxTimeout: "1 second", defaultTimeout: "2 seconds" })
        )
        assert.deepStrictEqual(
          tooLong.issues.map((issue) => [issue.path, issue.message]),
          [["defaultTimeout", "Expected a duration no longer than maxTimeout"]]
        )
        const infinite = yield* Effect.flip(
          HttpDeadline.validateServerOptions({ maxTimeout: Duration.infinity, defaultTimeout: Duration.infinity })
        )
        assert.deepStrictEqual(
          infinite.issues.map((issue) => [issue.path, issue.message]),
          [
            ["maxTimeout", "Expected a finite duration"],
            ["defaultTimeout", "Expected a finite duration"]
          ]
        )
        // over the default maxTimeout (30 seconds) too
        const overDefault = yield* Effect.flip(HttpDeadline.validateServerOptions({ defaultTimeout: "1 minute" }))
        assert.deepStrictEqual(
          overDefault.issues.map((issue) => issue.path),
          ["defaultTimeout"]
        )
        const built = yield* Effect.exit(
          Layer.build(HttpDeadline.layer({ status: 600 }).pipe(Layer.provide(HttpRouter.layer)))
        )
        assert.isTrue(Exit.isFailure(built))
        const valid = {
          header: "X-Budget",
          format: "grpc",
          maxTimeout: "10 seconds",
          defaultTimeout: "10 seconds",
          status: 503,
          exclude: ["/events", "/events/*"]
        } as const
        assert.deepStrictEqual(yield* HttpDeadline.validateServerOptions(valid), valid)
        assert.deepStrictEqual(yield* HttpDeadline.validateServerOptions(), {})
      }).pipe(Effect.scoped)
    )

    it.effect("layerConfig: the data options from the environment, exclude in code; bad values named", () =>
      Effect.gen(function* () {
        const env = ConfigProvider.fromEnv({
          env: { deadline_maxTimeout: "2 seconds", deadline_defaultTimeout: "1 second", deadline_status: "503" }
        })
        const server = yield* serveLoopback(
          Layer.mergeAll(
            budgetRoute("/budget"),
            budgetRoute("/events"),
            HttpRouter.add("GET", "/slow", Effect.as(Effect.never, HttpServerResponse.text("never"))),
            HttpDeadline.layerConfig("deadline", { exclude: ["/events"] })
          ),
          ConfigProvider.layer(env)
        )
        const budget = (path: string, headers?: Record<string, string>) =>
          Effect.map(server.get(path, headers), (reply) => reply.text)
        assert.deepStrictEqual(
          [
            yield* budget("/budget"),
            yield* budget("/budget", { "x-request-timeout-ms": "60000" }),
            yield* budget("/events")
          ],
          ["1000", "2000", "none"]
        )
        assert.strictEqual((yield* server.get("/slow", { "x-request-timeout-ms": "0" })).status, 503)
        const bad = ConfigProvider.fromEnv({
          env: { deadline_maxTimeout: "1 second", deadline_defaultTimeout: "5 seconds", deadline_format: "json" }
        })
        const error = yield* Effect.flip(
          Layer.build(
            HttpDeadline.layerConfig("deadline").pipe(Layer.provide([HttpRouter.layer, ConfigProvider.layer(bad)]))
          )
        )
        assert.instanceOf(error, Options.InvalidOptions)
        assert.deepStrictEqual(
          error instanceof Options.InvalidOptions ? error.issues.map((issue) => `${issue.path} = ${issue.value}`) : [],
          ['format = "json"']
        )
        const tooLong = ConfigProvider.fromEnv({
          env: { deadline_maxTimeout: "1 second", deadline_defaultTimeout: "5 seconds" }
        })
        const crossField = yield* Effect.flip(
          Layer.build(
            HttpDeadline.layerConfig("deadline").pipe(Layer.provide([HttpRouter.layer, ConfigProvider.layer(tooLong)]))
          )
        )
        assert.deepStrictEqual(
          crossField instanceof Options.InvalidOptions ? crossField.issues.map((issue) => issue.path) : [],
          ["defaultTimeout"]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("client: one InvalidOptions naming every bad field; layerClient fails with it", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          HttpDeadline.validateClientOptions(fromJson('{ "header": "", "format": "grpc-web", "margin": -1 }'))
        )
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.path),
          ["margin", "header", "format"]
        )
        assert.deepStrictEqual(yield* HttpDeadline.validateClientOptions({ margin: 0 }), { margin: 0 })
        const built = yield* Effect.exit(
          Layer.build(
            HttpDeadline.layerClient(fromJson('{ "margin": "soon" }')).pipe(
              Layer.provide(Layer.succeed(HttpClient.HttpClient, recordingUpstream().client))
            )
          )
        )
        assert.isTrue(Exit.isFailure(built))
      }).pipe(Effect.scoped)
    )

    it("the Defaults tables list every data option", () => {
      assert.deepStrictEqual(
        HttpDeadline.serverOptionsDocs.map((doc) => [doc.name, doc.default]),
        [
          ["header", '"x-request-timeout-ms"'],
          ["format", '"milliseconds"'],
          ["maxTimeout", "30s"],
          ["defaultTimeout", "—"],
          ["status", "504"]
        ]
      )
      assert.deepStrictEqual(
        HttpDeadline.clientOptionsDocs.map((doc) => doc.name),
        ["header", "format", "margin"]
      )
    })
  })

  describe("internal/deadline (properties)", () => {
    const millisArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })

    it("milliseconds: format then parse gives the whole milliseconds back", () => {
      fc.assert(fc.property(millisArb, (n) => Internal.parseMillis(Internal.formatMillis(n)) === n))
      fc.assert(
        fc.property(
          fc.double({ min: 0, max: 1e12, noNaN: true }),
          (x) => Internal.parseMillis(Internal.formatMillis(x)) === Math.floor(x)
        )
      )
    })

    it("gRPC: the value fits the grammar and never states more time than there is, losing less than one unit", () => {
      fc.assert(
        fc.property(millisArb, (n) => {
          const value = Internal.formatGrpc(n)
          if (!/^\d{1,8}[HMSm]$/.test(value)) return false
          const back = Internal.parseGrpc(value)
          if (back === undefined || back > n) return false
          const unit = n <= 99_999_999 ? 1 : n < 1e11 ? 1_000 : n < 6e12 ? 60_000 : 3_600_000
          return n >= 3_600_000 * 99_999_999 || n - back < unit
        })
      )
    })

    it("gRPC: every unit parses to whole milliseconds, rounded down", () => {
      const units = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 } as const
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 99_999_999 }),
          fc.constantFrom("H", "M", "S", "m", "u", "n"),
          (n, unit) => {
            const parsed = Internal.parseGrpc(`${n}${unit}`)
            const exact = n * units[unit]
            return parsed !== undefined && Number.isInteger(parsed) && parsed <= exact + 1e-6 && exact - parsed < 1
          }
        )
      )
      assert.strictEqual(Internal.parseGrpc("123456789m"), undefined) // 9 digits
    })

    it("parsing never throws, and yields undefined or a whole number of milliseconds", () => {
      fc.assert(
        fc.property(fc.string(), fc.constantFrom<Internal.Format>("milliseconds", "grpc"), (value, format) => {
          const parsed = Internal.parse(format, value)
          return parsed === undefined || (Number.isSafeInteger(parsed) && parsed >= 0)
        })
      )
      fc.assert(
        fc.property(fc.integer({ min: -1_000_000, max: -1 }), (n) => Internal.parseMillis(String(n)) === undefined)
      )
    })

    it("serverBudget: never above maxTimeout; the header when it fits; the default only without a header", () => {
      fc.assert(
        fc.property(
          fc.option(millisArb, { nil: undefined }),
          fc.integer({ min: 1, max: 1e9 }),
          fc.option(fc.integer({ min: 1, max: 1e9 }), { nil: undefined }),
          (requested, max, fallback) => {
            const budget = Internal.serverBudget(requested, max, fallback)
            if (requested === undefined && fallback === undefined) return budget === undefined
            if (budget === undefined || budget > max) return false
            if (requested !== undefined) return budget === Math.min(requested, max)
            return budget === Math.min(fallback ?? 0, max)
          }
        )
      )
    })

    it("clientBudget: whole milliseconds left after the margin, none below one, an existing smaller one kept", () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 1e9 }),
          fc.integer({ min: -1e6, max: 1e6 }),
          fc.double({ min: 0, max: 1e4, noNaN: true }),
          fc.option(millisArb, { nil: undefined }),
          (now, left, margin, existing) => {
            const budget = Internal.clientBudget(now + left, now, margin, existing)
            const available = left - margin
            if (available < 1) return budget === undefined
            if (budget === undefined || !Number.isInteger(budget) || budget > available) return false
            return existing !== undefined && existing < Math.floor(available)
              ? budget === existing
              : budget === Math.floor(available)
          }
        )
      )
    })
  })
})
