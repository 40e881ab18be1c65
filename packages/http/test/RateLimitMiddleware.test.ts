import { assert, describe, it } from "@effect/vitest"
import { Health, RateLimiter } from "@effect-resilience/core"
import { HealthHttp, RateLimitMiddleware } from "@effect-resilience/http"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HttpMiddleware from "effect/http/HttpMiddleware"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as IpNetwork from "effect/net/IpNetwork"
import { TestClock } from "effect/testing"
import { type Reply, serveLoopback } from "./server.ts"

const hello = HttpRouter.add("GET", "/api", Effect.succeed(HttpServerResponse.text("hello")))

const perMinute = (limit: number): RateLimiter.Input => ({
  name: "api",
  limits: [{ algorithm: "fixed-window", limit, window: "1 minute", name: "per-minute" }]
})

/** The routes and the global middleware, served with a memory limiter of `input`. */
const serveLimited = (
  input: RateLimiter.Input,
  options: RateLimitMiddleware.Options = {},
  routes: Layer.Layer<never, unknown, HttpRouter.HttpRouter> = hello
) => serveLoopback(Layer.mergeAll(routes, RateLimitMiddleware.layer(options)), RateLimiter.layerMemory(input))

const fields = (reply: Reply) => ({
  status: reply.status,
  policy: reply.headers.get("ratelimit-policy"),
  ratelimit: reply.headers.get("ratelimit"),
  retryAfter: reply.headers.get("retry-after")
})

describe("RateLimitMiddleware", () => {
  it.effect(
    "N requests pass with RateLimit fields, then 429 with Retry-After; the window's end lets them in again",
    () =>
      Effect.gen(function* () {
        const { get } = yield* serveLimited(perMinute(3))
        const passed: Array<ReturnType<typeof fields>> = []
        for (let i = 0; i < 3; i++) {
          const reply = yield* get("/api")
          assert.strictEqual(reply.text, "hello")
          passed.push(fields(reply))
        }
        assert.deepStrictEqual(passed, [
          { status: 200, policy: '"per-minute";q=3;w=60', ratelimit: '"per-minute";r=2;t=60', retryAfter: null },
          { status: 200, policy: '"per-minute";q=3;w=60', ratelimit: '"per-minute";r=1;t=60', retryAfter: null },
          { status: 200, policy: '"per-minute";q=3;w=60', ratelimit: '"per-minute";r=0;t=60', retryAfter: null }
        ])
        const refused = yield* get("/api")
        assert.deepStrictEqual(fields(refused), {
          status: 429,
          policy: '"per-minute";q=3;w=60',
          ratelimit: '"per-minute";r=0;t=60',
          retryAfter: "60"
        })
        assert.strictEqual(refused.text, "Too Many Requests")
        // time runs on the limiter's clock: the test clock
        yield* TestClock.adjust("20500 millis")
        const later = yield* get("/api")
        assert.deepStrictEqual(fields(later), {
          status: 429,
          policy: '"per-minute";q=3;w=60',
          ratelimit: '"per-minute";r=0;t=40',
          retryAfter: "40" // 39.5 s, rounded up
        })
        yield* TestClock.adjust("39500 millis")
        assert.deepStrictEqual(fields(yield* get("/api")), {
          status: 200,
          policy: '"per-minute";q=3;w=60',
          ratelimit: '"per-minute";r=2;t=60',
          retryAfter: null
        })
      }).pipe(Effect.scoped)
  )

  it.effect(
    "keys: by client address by default; keyByHeader isolates API keys from each other and from addresses",
    () =>
      Effect.gen(function* () {
        const byAddress = yield* serveLimited(perMinute(1))
        assert.strictEqual((yield* byAddress.get("/api", { "x-api-key": "alice" })).status, 200)
        // same address (127.0.0.1), another API key: the default key ignores it
        assert.strictEqual((yield* byAddress.get("/api", { "x-api-key": "bob" })).status, 429)

        const byKey = yield* serveLimited(perMinute(1), { key: RateLimitMiddleware.keyByHeader("X-Api-Key") })
        assert.strictEqual((yield* byKey.get("/api", { "x-api-key": "alice" })).status, 200)
        assert.strictEqual((yield* byKey.get("/api", { "x-api-key": "alice" })).status, 429)
        assert.strictEqual((yield* byKey.get("/api", { "x-api-key": "bob" })).status, 200)
        // no API key: keyed by address, apart from the API keys (even one equal to the address)
        assert.strictEqual((yield* byKey.get("/api")).status, 200)
        assert.strictEqual((yield* byKey.get("/api", { "x-api-key": "127.0.0.1" })).status, 200)
        assert.strictEqual((yield* byKey.get("/api")).status, 429)
      }).pipe(Effect.scoped)
  )

  it.effect("excluded paths (the health routes) skip the limiter: never charged, never refused, no fields", () =>
    Effect.gen(function* () {
      const routes = Layer.mergeAll(hello, HealthHttp.layer().pipe(Layer.provide(Health.layer())))
      const { get } = yield* serveLimited(perMinute(1), { exclude: ["/health", "/health/*"] }, routes)
      for (const path of ["/health", "/health/ready", "/health/live", "/health/ready?verbose=1"]) {
        const reply = yield* get(path)
        assert.deepStrictEqual(fields(reply), { status: 200, policy: null, ratelimit: null, retryAfter: null }, path)
      }
      assert.strictEqual((yield* get("/api")).status, 200) // the probes charged nothing
      assert.strictEqual((yield* get("/api")).status, 429)
      assert.strictEqual((yield* get("/health/live")).status, 200) // and are never refused
      assert.strictEqual((yield* get("/healthy")).status, 429) // not under /health/
    }).pipe(Effect.scoped)
  )

  it.effect("an exclude predicate; headers: false leaves allowed responses alone but still answers 429 in full", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLimited(perMinute(1), {
        exclude: (request) => request.headers["x-internal"] === "yes",
        headers: false
      })
      assert.strictEqual((yield* get("/api", { "x-internal": "yes" })).status, 200)
      assert.deepStrictEqual(fields(yield* get("/api")), {
        status: 200,
        policy: null,
        ratelimit: null,
        retryAfter: null
      })
      assert.deepStrictEqual(fields(yield* get("/api")), {
        status: 429,
        policy: '"per-minute";q=1;w=60',
        ratelimit: '"per-minute";r=0;t=60',
        retryAfter: "60"
      })
    }).pipe(Effect.scoped)
  )

  it.effect("cost per request; every limit of the limiter in the fields; a refusal names the longest wait", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLimited(
        {
          name: "api",
          limits: [
            { algorithm: "fixed-window", limit: 10, window: "1 second", name: "per-second" },
            { algorithm: "fixed-window", limit: 12, window: "1 hour", name: "per-hour" }
          ]
        },
        { cost: (request) => Number(request.headers["x-cost"] ?? "1") }
      )
      assert.deepStrictEqual(fields(yield* get("/api", { "x-cost": "4" })), {
        status: 200,
        policy: '"per-second";q=10;w=1, "per-hour";q=12;w=3600',
        ratelimit: '"per-second";r=6;t=1, "per-hour";r=8;t=3600',
        retryAfter: null
      })
      assert.strictEqual((yield* get("/api", { "x-cost": "7" })).status, 429) // more than the second's 6 left
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* get("/api", { "x-cost": "8" })).status, 200)
      const refused = fields(yield* get("/api"))
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(refused.policy, '"per-second";q=10;w=1, "per-hour";q=12;w=3600')
      // one item per limit, in order; the hour is spent until its window ends, 3599 s from now
      assert.match(refused.ratelimit ?? "", /^"per-second";r=\d+;t=1, "per-hour";r=0;t=3599$/)
      assert.strictEqual(refused.retryAfter, "3599")
    }).pipe(Effect.scoped)
  )

  it.effect("allowed requests' fields reach responses the server renders from failures (404)", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLimited(perMinute(2))
      assert.deepStrictEqual(fields(yield* get("/missing")), {
        status: 404,
        policy: '"per-minute";q=2;w=60',
        ratelimit: '"per-minute";r=1;t=60',
        retryAfter: null
      })
    }).pipe(Effect.scoped)
  )

  it.effect("onRejected shapes the refusal; the fields are still set on it", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLimited(perMinute(1), {
        onRejected: (decision) =>
          HttpServerResponse.jsonUnsafe({ error: "slow down", policy: decision.policy }, { status: 429 })
      })
      yield* get("/api")
      const refused = yield* get("/api")
      assert.deepStrictEqual(refused.json, { error: "slow down", policy: "per-minute" })
      assert.strictEqual(refused.headers.get("retry-after"), "60")
    }).pipe(Effect.scoped)
  )

  it.effect(
    "the limiter's allow and deny lists: allowed keys pass without fields, denied ones get 429 without Retry-After",
    () =>
      Effect.gen(function* () {
        const { get } = yield* serveLimited(
          { ...perMinute(1), allow: ["x-api-key:ops"], deny: ["x-api-key:abuser"] },
          { key: RateLimitMiddleware.keyByHeader("x-api-key") }
        )
        for (let i = 0; i < 3; i++) {
          const reply = yield* get("/api", { "x-api-key": "ops" })
          assert.deepStrictEqual(fields(reply), { status: 200, policy: null, ratelimit: null, retryAfter: null })
        }
        assert.deepStrictEqual(fields(yield* get("/api", { "x-api-key": "abuser" })), {
          status: 429,
          policy: null,
          ratelimit: null,
          retryAfter: null
        })
      }).pipe(Effect.scoped)
  )

  it.effect("behind a trusted proxy: xForwardedHeaders first, then each forwarded client has its own quota", () =>
    Effect.gen(function* () {
      const behindProxy = HttpRouter.middleware(
        Effect.map(
          RateLimiter.RateLimiter,
          (limiter) => (app) =>
            RateLimitMiddleware.make(limiter)(app).pipe(
              HttpMiddleware.xForwardedHeaders({ trustedProxies: [IpNetwork.fromStringUnsafe("127.0.0.0/8")] })
            )
        ),
        { global: true }
      )
      const { get } = yield* serveLoopback(Layer.mergeAll(hello, behindProxy), RateLimiter.layerMemory(perMinute(1)))
      const client = (address: string) => get("/api", { "x-forwarded-for": address })
      assert.strictEqual((yield* client("198.51.100.7")).status, 200)
      assert.strictEqual((yield* client("198.51.100.7")).status, 429)
      assert.strictEqual((yield* client("203.0.113.9")).status, 200)
      // a spoofed entry before the client's own address (appended by the proxy) changes nothing
      assert.strictEqual((yield* client("6.6.6.6, 198.51.100.7")).status, 429)
    }).pipe(Effect.scoped)
  )

  it.effect("concurrent requests: exactly the limit passes", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLimited(perMinute(3))
      const replies = yield* Effect.forEach(Array.from({ length: 10 }), () => get("/api"), { concurrency: "unbounded" })
      const statuses = replies.map((reply) => reply.status).sort()
      assert.deepStrictEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429, 429, 429])
      const remaining = replies
        .filter((reply) => reply.status === 200)
        .map((reply) => reply.headers.get("ratelimit"))
        .sort()
      assert.deepStrictEqual(remaining, ['"per-minute";r=0;t=60', '"per-minute";r=1;t=60', '"per-minute";r=2;t=60'])
    }).pipe(Effect.scoped)
  )

  it.effect("options: the layer fails listing every bad field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        serveLimited(perMinute(1), {
          exclude: ["health", "/metrics", "health/*"],
          quotaUnit: "bytes" as "content-bytes"
        })
      )
      assert.strictEqual(
        String((error as { readonly message?: unknown }).message),
        'RateLimitMiddleware options are invalid: exclude.0 = "health": Expected a path starting with "/" ' +
          '(or "/prefix/*"); exclude.2 = "health/*": Expected a path starting with "/" (or "/prefix/*"); ' +
          'quotaUnit = "bytes": Expected "request" or "content-bytes"'
      )
    }).pipe(Effect.scoped)
  )

  it.effect("make: per-route middleware on one route, the other route unlimited", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make(perMinute(1)).pipe(Effect.provide(RateLimiter.layerStoreMemory()))
      const limited = HttpRouter.add("GET", "/search", Effect.succeed(HttpServerResponse.text("results"))).pipe(
        Layer.provide(HttpRouter.middleware(RateLimitMiddleware.make(limiter)).layer)
      )
      const { get } = yield* serveLoopback(Layer.mergeAll(limited, hello))
      assert.strictEqual((yield* get("/search")).status, 200)
      assert.strictEqual((yield* get("/search")).status, 429)
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* get("/api")).status, 200)
    }).pipe(Effect.scoped)
  )

  it.effect("a concurrency limit holds each request: a second is refused while the first runs, then passes", () =>
    Effect.gen(function* () {
      const entered = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const routes = Layer.mergeAll(
        hello,
        HttpRouter.add(
          "GET",
          "/slow",
          Deferred.succeed(entered, undefined).pipe(
            Effect.andThen(Deferred.await(gate)),
            Effect.as(HttpServerResponse.text("slow"))
          )
        ),
        HttpRouter.add("GET", "/broken", Effect.die("broken"))
      )
      const { get } = yield* serveLimited(
        { name: "api", limits: [{ algorithm: "concurrency", limit: 1, name: "in-flight" }] },
        {},
        routes
      )
      const slow = yield* Effect.forkChild(get("/slow"))
      yield* Effect.log("forked")
      yield* Deferred.await(entered)
      const refused = yield* get("/api")
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(refused.headers.get("ratelimit"), '"in-flight";r=0;t=0')
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual((yield* Fiber.join(slow)).text, "slow")
      // the permit came back with the response: the next requests pass, one after the other
      assert.strictEqual((yield* get("/api")).status, 200)
      // a failing app is answered by the server (500), not as a refusal, and gives its permit back
      assert.strictEqual((yield* get("/broken")).status, 500)
      assert.strictEqual((yield* get("/api")).status, 200)
    }).pipe(Effect.scoped)
  )

  it.effect("shape mode: a request over the limit waits its turn instead of a 429 (TestClock)", () =>
    Effect.gen(function* () {
      let arrivals = 0
      const secondArrived = yield* Deferred.make<void>()
      const { get } = yield* serveLimited(
        {
          name: "api",
          mode: "shape",
          maxWait: "10 seconds",
          limits: [{ algorithm: "fixed-window", limit: 1, window: "1 second", name: "per-second" }]
        },
        {
          key: () => {
            if (++arrivals === 2) Deferred.doneUnsafe(secondArrived, Effect.void)
            return "client"
          }
        }
      )
      assert.strictEqual((yield* get("/api")).status, 200)
      const second = yield* Effect.forkChild(get("/api"))
      // the second request reached the limiter in the first window: in reject mode it would be a 429
      yield* Deferred.await(secondArrived)
      yield* Effect.yieldNow
      assert.isUndefined(second.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const reply = yield* Fiber.join(second)
      assert.deepStrictEqual([reply.status, reply.text], [200, "hello"])
    }).pipe(Effect.scoped)
  )
})

/** A remote store whose every call fails (a Redis that is down). */
const failingStore: Layer.Layer<RateLimiter.RateLimiterStore> = Layer.succeed(
  RateLimiter.RateLimiterStore,
  RateLimiter.RateLimiterStore.of({
    compile: (limit, maxKeys) => RateLimiter.compileSpec(RateLimiter.limitSpec(limit), maxKeys),
    remote: (options) => {
      const down = (key: string) =>
        Effect.fail(new RateLimiter.RateLimiterStoreError({ limiter: options.name, key, message: "store down" }))
      return Effect.succeed({
        decide: (key) => down(key),
        refund: (key) => down(key),
        penalize: (key) => down(key),
        release: (key) => down(key)
      })
    }
  })
)

describe("RateLimitMiddleware over a failing store", () => {
  const serveOver = (onStoreError: "allow" | "fail") =>
    serveLoopback(
      Layer.mergeAll(hello, RateLimitMiddleware.layer()),
      RateLimiter.layer({ ...perMinute(1), onStoreError }).pipe(Layer.provide(failingStore))
    )

  it.effect("onStoreError: allow lets every request through, without fields", () =>
    Effect.gen(function* () {
      const { get } = yield* serveOver("allow")
      for (let i = 0; i < 3; i++) {
        assert.deepStrictEqual(fields(yield* get("/api")), {
          status: 200,
          policy: null,
          ratelimit: null,
          retryAfter: null
        })
      }
    }).pipe(Effect.scoped)
  )

  it.effect("onStoreError: fail answers 503", () =>
    Effect.gen(function* () {
      const { get } = yield* serveOver("fail")
      const reply = yield* get("/api")
      assert.deepStrictEqual(fields(reply), { status: 503, policy: null, ratelimit: null, retryAfter: null })
      assert.strictEqual(reply.text, "Service Unavailable")
    }).pipe(Effect.scoped)
  )
})
