import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import {
  AdaptiveThrottle,
  Bulkhead,
  CircuitBreaker,
  Hedge,
  LoadBalancer,
  RateLimiter,
  Retry,
  Timeout
} from "@effect-resilience/core"
import { HttpDeadline, ResilientHttpClient } from "@effect-resilience/http"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
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
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { TestClock } from "effect/testing"
import { serveLoopback } from "./server.ts"

/** One scripted answer of the loopback server; `hang` waits until the test ends; `body` (default: the status). */
interface Step {
  readonly status: number
  readonly headers?: Record<string, string>
  readonly hang?: boolean
  readonly body?: string
}

/**
 * A real Node HTTP server on 127.0.0.1 answering each path from a script
 * (200 once the script is spent), recording every request it receives.
 */
const scriptedServer = Effect.gen(function* () {
  const scripts = new Map<string, Array<Step>>()
  const seen: Array<{ readonly method: string; readonly path: string; readonly host: string | undefined }> = []
  const release = yield* Deferred.make<void>()
  const app = HttpRouter.add("*", "*", (request) =>
    Effect.gen(function* () {
      seen.push({ method: request.method, path: request.url, host: request.headers.host })
      const step = scripts.get(request.url)?.shift() ?? { status: 200 }
      if (step.hang === true) yield* Deferred.await(release)
      return HttpServerResponse.text(step.body ?? String(step.status), {
        status: step.status,
        headers: step.headers ?? {}
      })
    })
  )
  const { port } = yield* serveLoopback(app)
  // runs before the server closes (finalizers run in reverse): a hanging handler ends
  yield* Effect.addFinalizer(() => Deferred.succeed(release, undefined))
  return {
    host: `127.0.0.1:${port}`,
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    script: (path: string, ...steps: ReadonlyArray<Step>) => void scripts.set(path, [...steps]),
    hits: (path: string, method?: string) =>
      seen.filter((r) => r.path === path && (method === undefined || r.method === method)).length,
    /** The Host headers it received. */
    hosts: () => [...new Set(seen.map((r) => r.host))],
    /** The Host header of each request for `path`, in order. */
    hostsAt: (path: string) => seen.filter((r) => r.path === path).map((r) => r.host)
  }
})

/** Fetch underneath, one connection per request (the server closes cleanly). */
const fetchClient = Effect.map(HttpClient.HttpClient, (client) =>
  client.pipe(HttpClient.mapRequest(HttpClientRequest.setHeader("connection", "close")))
).pipe(Effect.provide(FetchHttpClient.layer))

/** Waits in real time (the server runs on real I/O) until `condition` holds. */
const eventually = (condition: () => boolean, what: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 400; i++) {
      if (condition()) return
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

/** A short real-time pause: lets a request that should not happen show up. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 30)))

const breakerLayer = CircuitBreaker.layerStoreMemory()

describe("ResilientHttpClient", () => {
  describe("retry", () => {
    it.effect("retries 503 until a 200: exactly three attempts, one answer", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/flaky", { status: 503 }, { status: 503 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 5 })
        })
        const response = yield* client.get(server.url("/flaky"))
        assert.strictEqual(response.status, 200)
        assert.strictEqual(yield* response.text, "200")
        assert.strictEqual(server.hits("/flaky"), 3)
      }).pipe(Effect.scoped)
    )

    it.effect("when retries run out, the last failure response is returned as a response", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/down", { status: 502 }, { status: 500 }, { status: 503 }, { status: 504 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 })
        })
        const response = yield* client.get(server.url("/down"))
        assert.strictEqual(response.status, 503)
        assert.strictEqual(server.hits("/down"), 3)
      }).pipe(Effect.scoped)
    )

    it.effect("a request refused by the caller's deadline (HttpDeadline.client) is neither retried nor counted", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        const breaker = yield* CircuitBreaker.make({ name: "deadline", consecutiveFailures: 1 })
        const client = yield* ResilientHttpClient.make(HttpDeadline.client(yield* fetchClient), {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
          circuitBreaker: breaker
        })
        const before = (yield* Timeout.stats).deadline
        // no time left in the deadline: the wrapped client refuses without sending
        const error = yield* client.get(server.url("/late")).pipe(Timeout.deadline("0.5 millis"), Effect.flip)
        assert.isTrue(Timeout.isTimeoutError(error) && error.reason.kind === "deadline")
        assert.strictEqual(server.hits("/late"), 0)
        // one refusal, not one per attempt; the circuit did not count it
        assert.strictEqual((yield* Timeout.stats).deadline, before + 1)
        assert.deepStrictEqual(
          [(yield* breaker.stats).failures, (yield* breaker.state(server.host))._tag],
          [0, "Closed"]
        )
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("429 and 408 are retried too", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/busy", { status: 429 }, { status: 408 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 5 })
        })
        assert.strictEqual((yield* client.get(server.url("/busy"))).status, 200)
        assert.strictEqual(server.hits("/busy"), 3)
      }).pipe(Effect.scoped)
    )

    it.effect("POST is not retried; POST with an Idempotency-Key is; PUT and DELETE are", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/orders", { status: 503 }, { status: 503 }, { status: 503 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 })
        })
        const post = yield* client.post(server.url("/orders"), { body: undefined })
        assert.strictEqual(post.status, 503)
        assert.strictEqual(server.hits("/orders"), 1)
        const keyed = yield* client.post(server.url("/orders"), { headers: { "Idempotency-Key": "order-42" } })
        assert.strictEqual(keyed.status, 200)
        assert.strictEqual(server.hits("/orders", "POST"), 4) // 1, then 503, 503, 200
        server.script("/orders/1", { status: 503 }, { status: 503 })
        assert.strictEqual((yield* client.put(server.url("/orders/1"))).status, 200)
        assert.strictEqual((yield* client.del(server.url("/orders/1"))).status, 200)
        assert.deepStrictEqual([server.hits("/orders/1", "PUT"), server.hits("/orders/1", "DELETE")], [3, 1])
        // PATCH neither, unless `retryable` says so
        server.script("/orders/2", { status: 503 })
        assert.strictEqual((yield* client.patch(server.url("/orders/2"))).status, 503)
        const patching = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
          retryable: () => true
        })
        server.script("/orders/3", { status: 503 })
        assert.strictEqual((yield* patching.patch(server.url("/orders/3"))).status, 200)
        assert.deepStrictEqual([server.hits("/orders/2"), server.hits("/orders/3")], [1, 2])
      }).pipe(Effect.scoped)
    )

    it.effect("Retry-After in seconds on a 503 is the retry's delay (TestClock)", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/busy", { status: 503, headers: { "retry-after": "5" } })
        const policy = Retry.constant({ delay: "100 millis", maxAttempts: 3 })
        const events = yield* policy.subscribe
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { retry: policy })
        const fiber = yield* Effect.forkChild(client.get(server.url("/busy")))
        const scheduled = yield* Queue.take(events)
        assert.strictEqual(scheduled._tag, "RetryScheduled")
        assert.strictEqual(scheduled._tag === "RetryScheduled" && Duration.toMillis(scheduled.delay), 5000)
        // the retry's sleep follows its event in the same fiber, with no I/O between: one scheduler turn registers it
        yield* Effect.yieldNow
        yield* TestClock.adjust("4999 millis")
        yield* settle
        assert.strictEqual(server.hits("/busy"), 1) // not the policy's 100 ms
        yield* TestClock.adjust("1 millis")
        const response = yield* Fiber.join(fiber)
        assert.strictEqual(response.status, 200)
        assert.strictEqual(server.hits("/busy"), 2)
      }).pipe(Effect.scoped)
    )

    it.effect("Retry-After as an HTTP date on a 429 is the retry's delay, bounded by maxRetryAfter", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        // the test clock starts at the epoch: the date is 7 s from now
        server.script("/date", { status: 429, headers: { "retry-after": new Date(7_000).toUTCString() } })
        server.script("/long", { status: 429, headers: { "retry-after": "3600" } })
        const policy = Retry.constant({ delay: 0, maxAttempts: 2, maxRetryAfter: "10 seconds" })
        const events = yield* policy.subscribe
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { retry: policy })
        // the scheduled delay, once the retry's sleep is registered
        const delayOf = Effect.map(Queue.take(events), (event) =>
          event._tag === "RetryScheduled" ? Duration.toMillis(event.delay) : -1
        ).pipe(Effect.tap(() => settle))

        const dated = yield* Effect.forkChild(client.get(server.url("/date")))
        assert.strictEqual(yield* delayOf, 7000)
        yield* TestClock.adjust("7 seconds")
        assert.strictEqual((yield* Fiber.join(dated)).status, 200)

        const long = yield* Effect.forkChild(client.get(server.url("/long")))
        assert.strictEqual(yield* delayOf, 10_000) // an hour asked, 10 s allowed
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual((yield* Fiber.join(long)).status, 200)
        assert.deepStrictEqual([server.hits("/date"), server.hits("/long")], [2, 2])
      }).pipe(Effect.scoped)
    )
  })

  describe("circuit breaker", () => {
    it.effect("opens for a failing host while another host keeps working", () =>
      Effect.gen(function* () {
        const failing = yield* scriptedServer
        const healthy = yield* scriptedServer
        failing.script("/api", { status: 500 }, { status: 500 }, { status: 500 })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2, openDuration: "30 seconds" })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { circuitBreaker: breaker })
        assert.strictEqual((yield* client.get(failing.url("/api"))).status, 500)
        assert.strictEqual((yield* client.get(failing.url("/api"))).status, 500)
        const rejected = yield* Effect.flip(client.get(failing.url("/api")))
        assert.isTrue(CircuitBreaker.isCircuitBreakerError(rejected))
        assert.strictEqual(failing.hits("/api"), 2) // rejected without a request
        assert.strictEqual((yield* client.get(healthy.url("/api"))).status, 200)
        assert.strictEqual((yield* breaker.state(failing.host))._tag, "Open")
        assert.strictEqual((yield* breaker.state(healthy.host))._tag, "Closed")
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("a 404 is not retried and is a breaker success (the host answered); a 503 is counted", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/missing", { status: 404 }, { status: 404 }, { status: 404 })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
          circuitBreaker: breaker
        })
        for (let i = 0; i < 3; i++) assert.strictEqual((yield* client.get(server.url("/missing"))).status, 404)
        assert.strictEqual(server.hits("/missing"), 3) // one attempt each
        const metrics = yield* breaker.metrics(server.host)
        assert.deepStrictEqual([metrics.state, metrics.failedCalls], ["Closed", 0])
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.successes, stats.failures, stats.ignored], [3, 0, 0])
        server.script("/gone", { status: 503 })
        // a POST (not retried): its 503 is returned, and counted
        assert.strictEqual((yield* client.post(server.url("/gone"))).status, 503)
        assert.strictEqual((yield* breaker.state(server.host))._tag, "Open")
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("adaptive throttle: a host answering 503 is asked less; 404s are accepts, never throttled", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        const n = 40
        server.script("/missing", ...Array.from({ length: n }, () => ({ status: 404 })))
        const m = 3 * n // with K = 2, the n accepts cover 2n requests: the 503s beyond them are throttled
        server.script("/busy", ...Array.from({ length: m }, () => ({ status: 503 })))
        const throttle = yield* AdaptiveThrottle.make({ name: "upstream" })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { adaptiveThrottle: throttle })
        for (let i = 0; i < n; i++) assert.strictEqual((yield* client.get(server.url("/missing"))).status, 404)
        assert.strictEqual(server.hits("/missing"), n)
        const answered = yield* throttle.state(server.host)
        assert.deepStrictEqual([answered.requests, answered.accepts, answered.probability], [n, n, 0])
        let throttled = 0
        for (let i = 0; i < m; i++) {
          const result = yield* Effect.result(client.get(server.url("/busy")))
          if (result._tag === "Failure") {
            assert.isTrue(AdaptiveThrottle.isAdaptiveThrottleError(result.failure))
            throttled++
          } else assert.strictEqual(result.success.status, 503)
        }
        // every request either reached the host or was refused here; once 503s outweigh the accepts, some are refused
        assert.strictEqual(server.hits("/busy") + throttled, m)
        assert.isAbove(throttled, 0)
        assert.isAbove((yield* throttle.state(server.host)).probability, 0)
      }).pipe(Effect.scoped)
    )

    it.effect("a half-open probe answered with a 404 closes the circuit", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/api", { status: 503 }, { status: 404 })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second" })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { circuitBreaker: breaker })
        assert.strictEqual((yield* client.get(server.url("/api"))).status, 503)
        assert.strictEqual((yield* breaker.state(server.host))._tag, "Open")
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* client.get(server.url("/api"))).status, 404)
        assert.strictEqual((yield* breaker.state(server.host))._tag, "Closed")
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("a request that never leaves (a URL that does not parse) is neither retried nor counted", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
          circuitBreaker: breaker,
          key: () => "one"
        })
        const error = yield* Effect.flip(client.get("http://[::1"))
        assert.isTrue(HttpClientError.isHttpClientError(error))
        const stats = yield* breaker.stats
        assert.deepStrictEqual([stats.successes, stats.failures, stats.ignored], [0, 0, 1])
        assert.strictEqual((yield* breaker.state("one"))._tag, "Closed")
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("Retry-After on a 503 keeps the circuit open that long (past openDuration)", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/api", { status: 503, headers: { "retry-after": "60" } })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second" })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { circuitBreaker: breaker })
        assert.strictEqual((yield* client.get(server.url("/api"))).status, 503)
        const state = yield* breaker.state(server.host)
        assert.strictEqual(state._tag === "Open" && Duration.toMillis(state.retryAfter), 60_000)
        yield* TestClock.adjust("59 seconds")
        assert.isTrue(CircuitBreaker.isCircuitBreakerError(yield* Effect.flip(client.get(server.url("/api")))))
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* client.get(server.url("/api"))).status, 200) // the probe goes through
        assert.strictEqual(server.hits("/api"), 2)
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("a refused connection is retried and counted", () =>
      Effect.gen(function* () {
        const closed = yield* Effect.scoped(scriptedServer) // its port refuses connections now
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 2 }),
          circuitBreaker: breaker
        })
        const error = yield* Effect.flip(client.get(closed.url("/api")))
        assert.isTrue(HttpClientError.isHttpClientError(error) && error.reason._tag === "TransportError")
        // two attempts, two failures: the circuit opens
        assert.strictEqual((yield* breaker.stats).failures, 2)
        assert.strictEqual((yield* breaker.state(closed.host))._tag, "Open")
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )
  })

  describe("rate limiter", () => {
    it.effect("keyed by host: one host over its quota is refused without a request, another passes", () =>
      Effect.gen(function* () {
        const busy = yield* scriptedServer
        const other = yield* scriptedServer
        const limiter = yield* RateLimiter.make({
          name: "upstream",
          limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }]
        })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          rateLimiter: limiter,
          circuitBreaker: breaker
        })
        assert.strictEqual((yield* client.get(busy.url("/api"))).status, 200)
        const refused = yield* Effect.flip(client.get(busy.url("/api")))
        assert.isTrue(RateLimiter.isRateLimiterError(refused))
        assert.strictEqual(busy.hits("/api"), 1)
        assert.strictEqual((yield* client.get(other.url("/api"))).status, 200)
        // the refusal says this process is busy, not that the host fails
        assert.strictEqual((yield* breaker.state(busy.host))._tag, "Closed")
      }).pipe(Effect.scoped, Effect.provide([breakerLayer, RateLimiter.layerStoreMemory()]))
    )
  })

  describe("bulkhead", () => {
    it.effect("keyed by host: a host with its permit taken rejects the next call, another host passes", () =>
      Effect.gen(function* () {
        const slow = yield* scriptedServer
        const other = yield* scriptedServer
        slow.script("/report", { status: 200, hang: true })
        const bulkhead = yield* Bulkhead.make({ name: "upstream", maxConcurrent: 1, maxQueue: 0 })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { bulkhead, circuitBreaker: breaker })
        const running = yield* Effect.forkChild(client.get(slow.url("/report")))
        yield* eventually(() => slow.hits("/report") === 1, "the first call")
        const rejected = yield* Effect.flip(client.get(slow.url("/report")))
        assert.isTrue(Bulkhead.isBulkheadError(rejected))
        assert.strictEqual(slow.hits("/report"), 1)
        assert.strictEqual((yield* client.get(other.url("/report"))).status, 200)
        // a full bulkhead is this process being busy, not the host failing
        assert.strictEqual((yield* breaker.state(slow.host))._tag, "Closed")
        yield* Fiber.interrupt(running)
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )
  })

  describe("attempt timeout", () => {
    it.effect("a slow endpoint times out per attempt; each timeout is a breaker failure (TestClock)", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/slow", { status: 200, hang: true }, { status: 200, hang: true })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          attemptTimeout: "1 second",
          retry: Retry.constant({ delay: 0, maxAttempts: 2 }),
          circuitBreaker: breaker
        })
        const fiber = yield* Effect.forkChild(Effect.flip(client.get(server.url("/slow"))))
        yield* eventually(() => server.hits("/slow") === 1, "the first attempt")
        yield* TestClock.adjust("1 second")
        yield* eventually(() => server.hits("/slow") === 2, "the second attempt")
        yield* TestClock.adjust("1 second")
        const error = yield* Fiber.join(fiber)
        assert.isTrue(Timeout.isTimeoutError(error))
        assert.strictEqual((yield* breaker.state(server.host))._tag, "Open")
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )
  })

  describe("hedge", () => {
    it.effect("a slow GET is hedged; a 404 or a POST is not (TestClock)", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/quote", { status: 200, hang: true })
        server.script("/missing", { status: 404 }, { status: 404 })
        server.script("/orders", { status: 200, hang: true }, { status: 200, hang: true })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          hedge: Hedge.make({ delay: "100 millis" }),
          attemptTimeout: "5 seconds"
        })
        const fiber = yield* Effect.forkChild(client.get(server.url("/quote")))
        yield* eventually(() => server.hits("/quote") === 1, "the first attempt")
        yield* TestClock.adjust("100 millis")
        const response = yield* Fiber.join(fiber) // the hedge's answer; the first attempt is interrupted
        assert.deepStrictEqual([response.status, server.hits("/quote")], [200, 2])

        // the first response wins whatever its status: a 404 does not start the next attempt
        assert.strictEqual((yield* client.get(server.url("/missing"))).status, 404)
        yield* settle
        assert.strictEqual(server.hits("/missing"), 1)

        const post = yield* Effect.forkChild(client.post(server.url("/orders")))
        yield* eventually(() => server.hits("/orders") === 1, "the POST")
        yield* TestClock.adjust("100 millis")
        yield* settle
        assert.strictEqual(server.hits("/orders"), 1) // not hedged
        yield* Fiber.interrupt(post)
      }).pipe(Effect.scoped)
    )
  })

  describe("options", () => {
    it("isRetryable: idempotent methods or an Idempotency-Key, never a stream body", () => {
      const url = "http://api.internal/orders"
      const stream = HttpClientRequest.bodyStream(Stream.make(new Uint8Array([1])))
      const requests = [
        HttpClientRequest.get(url),
        HttpClientRequest.head(url),
        HttpClientRequest.options(url),
        HttpClientRequest.post(url),
        HttpClientRequest.patch(url),
        HttpClientRequest.patch(url, { headers: { "idempotency-key": "k" } }),
        stream(HttpClientRequest.put(url)),
        stream(HttpClientRequest.post(url, { headers: { "Idempotency-Key": "k" } }))
      ]
      assert.deepStrictEqual(requests.map(ResilientHttpClient.isRetryable), [
        true,
        true,
        true,
        false,
        false,
        true,
        false,
        false
      ])
    })

    it.effect("layer: the service over the HttpClient service; invalid parts fail the layer", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/l", { status: 503 })
        const FetchLive = Layer.effect(HttpClient.HttpClient, fetchClient)
        const client = yield* Effect.provide(
          ResilientHttpClient.ResilientHttpClient,
          ResilientHttpClient.layer({ retry: Retry.constant({ delay: 0, maxAttempts: 2 }) }).pipe(
            Layer.provide(FetchLive)
          )
        )
        assert.strictEqual((yield* client.get(server.url("/l"))).status, 200)
        assert.strictEqual(server.hits("/l"), 2)
        const error = yield* Effect.flip(
          Layer.build(ResilientHttpClient.layer({ attemptTimeout: -1 }).pipe(Layer.provide(FetchLive)))
        )
        assert.deepStrictEqual(
          [error.pattern, error.issues.map((issue) => issue.path)],
          ["ResilientHttpClient", ["attemptTimeout"]]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("key: a custom key shares one circuit between two hosts", () =>
      Effect.gen(function* () {
        const first = yield* scriptedServer
        const second = yield* scriptedServer
        first.script("/api", { status: 500 })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          circuitBreaker: breaker,
          key: () => "upstream"
        })
        assert.strictEqual((yield* client.get(first.url("/api"))).status, 500)
        assert.isTrue(CircuitBreaker.isCircuitBreakerError(yield* Effect.flip(client.get(second.url("/api")))))
        assert.strictEqual(second.hits("/api"), 0)
        assert.strictEqual((yield* breaker.state("upstream"))._tag, "Open")
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("hosts get parts of their own; invalid parts fail make with every issue", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        server.script("/a", { status: 503 }, { status: 503 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
          hosts: { [server.host]: { name: "no-retry" } }
        })
        assert.strictEqual((yield* client.get(server.url("/a"))).status, 503)
        assert.strictEqual(server.hits("/a"), 1)

        const error = yield* Effect.flip(
          ResilientHttpClient.make(yield* fetchClient, {
            attemptTimeout: 0,
            hosts: { "slow.internal": { attemptTimeout: "2 seconds", totalTimeout: "1 second" } }
          })
        )
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.path),
          ["attemptTimeout", "hosts.slow.internal.attemptTimeout"]
        )
      }).pipe(Effect.scoped)
    )
  })

  describe("logical services", () => {
    /** Scripted servers behind one balancer named `payments` (ids `127.0.0.1:<port>`), with their weights. */
    const endpointsOf = (weights: ReadonlyArray<number>, input: Omit<LoadBalancer.Input, "endpoints"> = {}) =>
      Effect.gen(function* () {
        const servers: Array<Effect.Success<typeof scriptedServer>> = []
        for (const _ of weights) servers.push(yield* scriptedServer)
        const lb = yield* LoadBalancer.make({
          name: "payments",
          ...input,
          endpoints: servers.map((server, i) => ({ id: server.host, weight: weights[i] }))
        })
        return { servers, lb }
      })

    const hitsOf = (servers: ReadonlyArray<{ readonly hits: (path: string) => number }>, path: string) =>
      servers.map((server) => server.hits(path))

    it.effect("round robin spreads requests; each endpoint sees the path, the query and its own Host", () =>
      Effect.gen(function* () {
        const { servers, lb } = yield* endpointsOf([1, 1, 1])
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { services: { payments: lb } })
        for (let i = 0; i < 6; i++) {
          const response = yield* client.get("http://payments/charge?amount=5&currency=EUR")
          assert.strictEqual(response.status, 200)
        }
        assert.deepStrictEqual(hitsOf(servers, "/charge?amount=5&currency=EUR"), [2, 2, 2])
        // query parameters given apart from the URL, and another method, reach the endpoint as well
        yield* client.post("http://payments/refunds/7", { urlParams: { reason: "dup licate" } })
        assert.deepStrictEqual(hitsOf(servers, "/refunds/7?reason=dup+licate"), [1, 0, 0])
        assert.deepStrictEqual(
          servers.map((server) => server.hosts()),
          servers.map((server) => [server.host])
        )
        // another host is not a service: sent as it is
        assert.strictEqual((yield* client.get(servers[1]?.url("/direct") ?? "")).status, 200)
        assert.deepStrictEqual(hitsOf(servers, "/direct"), [0, 1, 0])
      }).pipe(Effect.scoped)
    )

    it.effect(
      "an endpoint answering 503 is ejected after consecutive failures, and returns after its ejection time (TestClock)",
      () =>
        Effect.gen(function* () {
          const { servers, lb } = yield* endpointsOf([1, 1, 1], {
            consecutiveFailures: 2,
            baseEjectionTime: "30 seconds"
          })
          const [, , failing] = servers
          failing?.script("/pay", { status: 503 }, { status: 503 })
          const client = yield* ResilientHttpClient.make(yield* fetchClient, { services: { payments: lb } })
          const statuses: Array<number> = []
          for (let i = 0; i < 6; i++) statuses.push((yield* client.get("http://payments/pay")).status)
          assert.deepStrictEqual(statuses, [200, 200, 503, 200, 200, 503])
          const ejected = (yield* lb.stats).hosts.find((host) => host.id === failing?.host)
          assert.deepStrictEqual([ejected?.state, ejected?.failures], ["ejected", 2])
          for (let i = 0; i < 6; i++) assert.strictEqual((yield* client.get("http://payments/pay")).status, 200)
          assert.deepStrictEqual(hitsOf(servers, "/pay"), [5, 5, 2]) // no traffic while ejected
          yield* TestClock.adjust("30 seconds")
          for (let i = 0; i < 3; i++) assert.strictEqual((yield* client.get("http://payments/pay")).status, 200)
          assert.deepStrictEqual(hitsOf(servers, "/pay"), [6, 6, 3]) // back in the rotation
        }).pipe(Effect.scoped)
    )

    it.effect("a 404 is a success for the balancer; a refused connection is a failure that ejects", () =>
      Effect.gen(function* () {
        const answering = yield* scriptedServer
        const closed = yield* Effect.scoped(scriptedServer) // its port refuses connections now
        answering.script("/missing", { status: 404 }, { status: 404 }, { status: 404 })
        const lb = yield* LoadBalancer.make({
          name: "payments",
          consecutiveFailures: 2,
          endpoints: [{ id: answering.host }, { id: closed.host }]
        })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { services: { payments: lb } })
        const outcomes: Array<number | string> = []
        for (let i = 0; i < 6; i++) {
          const result = yield* Effect.result(client.get("http://payments/missing"))
          outcomes.push(result._tag === "Success" ? result.success.status : result.failure._tag)
        }
        // the refused endpoint is ejected after its second failure: the rest go to the one answering
        assert.deepStrictEqual(outcomes, [404, "HttpClientError", 404, "HttpClientError", 404, 200])
        const stats = yield* lb.stats
        const byId = new Map(stats.hosts.map((host) => [host.id, host]))
        assert.deepStrictEqual(
          [byId.get(answering.host)?.successes, byId.get(answering.host)?.failures, byId.get(answering.host)?.state],
          [4, 0, "active"]
        )
        assert.deepStrictEqual([byId.get(closed.host)?.failures, byId.get(closed.host)?.state], [2, "ejected"])
      }).pipe(Effect.scoped)
    )

    it.effect("a retry after a 503 goes to another endpoint; once every endpoint was tried, to any", () =>
      Effect.gen(function* () {
        // weights 100 to 1: without avoiding it, the retry would go back to the first endpoint
        const { servers, lb } = yield* endpointsOf([100, 1])
        const [heavy, light] = servers
        heavy?.script("/pay", { status: 503 })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
          services: { payments: lb }
        })
        assert.strictEqual((yield* client.get("http://payments/pay")).status, 200)
        assert.deepStrictEqual(hitsOf(servers, "/pay"), [1, 1])

        heavy?.script("/down", { status: 503 }, { status: 503 })
        light?.script("/down", { status: 502 })
        const response = yield* client.get("http://payments/down")
        assert.strictEqual(response.status, 503) // the third attempt, back on the heavy endpoint
        assert.deepStrictEqual(hitsOf(servers, "/down"), [2, 1])
      }).pipe(Effect.scoped)
    )

    it.effect("a hedged attempt goes to another endpoint (TestClock)", () =>
      Effect.gen(function* () {
        const { servers, lb } = yield* endpointsOf([100, 1])
        const [slow] = servers
        slow?.script("/quote", { status: 200, hang: true })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          hedge: Hedge.make({ delay: "100 millis" }),
          attemptTimeout: "5 seconds",
          services: { payments: lb }
        })
        const fiber = yield* Effect.forkChild(client.get("http://payments/quote"))
        yield* eventually(() => slow?.hits("/quote") === 1, "the first attempt")
        yield* TestClock.adjust("100 millis")
        assert.strictEqual((yield* Fiber.join(fiber)).status, 200)
        assert.deepStrictEqual(hitsOf(servers, "/quote"), [1, 1])
        // the loser was interrupted: neither a failure nor a success of its endpoint
        const stats = yield* lb.stats
        assert.deepStrictEqual([stats.successes, stats.failures, stats.inFlight], [1, 0, 0])
      }).pipe(Effect.scoped)
    )

    it.effect("discovery: a new set of endpoints moves the traffic", () =>
      Effect.gen(function* () {
        const a = yield* scriptedServer
        const b = yield* scriptedServer
        const c = yield* scriptedServer
        const discovered = yield* SubscriptionRef.make<ReadonlyArray<LoadBalancer.Endpoint>>([
          { id: a.host },
          { id: b.host }
        ])
        const lb = yield* LoadBalancer.make({ name: "payments", endpoints: discovered })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, { services: { payments: lb } })
        for (let i = 0; i < 4; i++) yield* client.get("http://payments/pay")
        assert.deepStrictEqual(hitsOf([a, b, c], "/pay"), [2, 2, 0])
        yield* SubscriptionRef.set(discovered, [{ id: c.host }])
        yield* eventually(() => true, "") // lets the discovery fiber apply the set
        yield* Effect.yieldNow
        for (let i = 0; i < 4; i++) yield* client.get("http://payments/pay")
        assert.deepStrictEqual(hitsOf([a, b, c], "/pay"), [2, 2, 4])
      }).pipe(Effect.scoped)
    )

    it.effect(
      "every endpoint ejected: LoadBalancerError, retried after its retryAfter (TestClock); no endpoints: NoEndpoints",
      () =>
        Effect.gen(function* () {
          const server = yield* scriptedServer
          server.script("/pay", { status: 503 })
          const lb = yield* LoadBalancer.make({
            name: "payments",
            endpoints: [{ id: server.host }],
            consecutiveFailures: 1,
            baseEjectionTime: "10 seconds",
            maxEjectionPercent: 100,
            minAvailable: 0,
            panicThreshold: 0
          })
          const plain = yield* ResilientHttpClient.make(yield* fetchClient, { services: { payments: lb } })
          assert.strictEqual((yield* plain.get("http://payments/pay")).status, 503)
          const rejected = yield* Effect.flip(plain.get("http://payments/pay"))
          assert.isTrue(LoadBalancer.isLoadBalancerError(rejected))
          assert.strictEqual(LoadBalancer.isLoadBalancerError(rejected) && rejected.reason._tag, "AllEjected")
          assert.strictEqual(server.hits("/pay"), 1)

          const policy = Retry.constant({ delay: 0, maxAttempts: 2 })
          const events = yield* policy.subscribe
          const retrying = yield* ResilientHttpClient.make(yield* fetchClient, {
            retry: policy,
            services: { payments: lb }
          })
          const fiber = yield* Effect.forkChild(retrying.get("http://payments/pay"))
          const scheduled = yield* Queue.take(events)
          assert.strictEqual(scheduled._tag === "RetryScheduled" && Duration.toMillis(scheduled.delay), 10_000)
          yield* Effect.yieldNow
          yield* TestClock.adjust("10 seconds")
          assert.strictEqual((yield* Fiber.join(fiber)).status, 200)
          assert.strictEqual(server.hits("/pay"), 2)

          const empty = yield* LoadBalancer.make({ name: "empty" })
          const client = yield* ResilientHttpClient.make(yield* fetchClient, { services: { empty } })
          const none = yield* Effect.flip(client.get("http://empty/pay"))
          assert.strictEqual(LoadBalancer.isLoadBalancerError(none) && none.reason._tag, "NoEndpoints")
        }).pipe(Effect.scoped)
    )

    it.effect("the breaker is per endpoint: an open circuit sends the request on to another endpoint at once", () =>
      Effect.gen(function* () {
        const { servers, lb } = yield* endpointsOf([1, 1, 1])
        const [a, b, c] = servers
        a?.script("/pay", { status: 503 })
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 minute" })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          circuitBreaker: breaker,
          services: { payments: lb }
        })
        // POSTs: never retried, so only the re-pick can save them
        assert.strictEqual((yield* client.post("http://payments/pay")).status, 503)
        for (let i = 0; i < 4; i++) assert.strictEqual((yield* client.post("http://payments/pay")).status, 200)
        assert.deepStrictEqual(hitsOf(servers, "/pay"), [1, 2, 2])
        const states = yield* Effect.forEach([a, b, c], (server) => breaker.state(server?.host ?? ""))
        assert.deepStrictEqual(
          states.map((state) => state._tag),
          ["Open", "Closed", "Closed"]
        )
        // the refused pick is neither a success nor a failure of the endpoint
        const stats = yield* lb.stats
        assert.deepStrictEqual([stats.successes, stats.failures, stats.ignored], [4, 1, 1])
      }).pipe(Effect.scoped, Effect.provide(breakerLayer))
    )

    it.effect("the rate limiter is per service: its quota is shared by every endpoint", () =>
      Effect.gen(function* () {
        const { servers, lb } = yield* endpointsOf([1, 1, 1])
        const limiter = yield* RateLimiter.make({
          name: "payments",
          limits: [{ algorithm: "fixed-window", limit: 3, window: "1 minute" }]
        })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          rateLimiter: limiter,
          services: { payments: lb }
        })
        for (let i = 0; i < 3; i++) assert.strictEqual((yield* client.get("http://payments/pay")).status, 200)
        assert.isTrue(RateLimiter.isRateLimiterError(yield* Effect.flip(client.get("http://payments/pay"))))
        assert.deepStrictEqual(hitsOf(servers, "/pay"), [1, 1, 1])
      }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()))
    )

    it.effect("hostHeader: the endpoint's Host by default; the logical one (with its port) with 'service'", () =>
      Effect.gen(function* () {
        const { servers, lb } = yield* endpointsOf([1])
        const [server] = servers
        if (server === undefined) return assert.fail("no server")
        // undici lets a caller set Host (fetch does not)
        const undici = Context.get(yield* Layer.build(NodeHttpClient.layerUndici), HttpClient.HttpClient)
        const plain = yield* ResilientHttpClient.make(undici, { services: { payments: lb } })
        assert.strictEqual((yield* plain.get("http://payments/a")).status, 200)
        const logical = yield* ResilientHttpClient.make(undici, {
          services: { payments: lb, "payments:8080": lb },
          hostHeader: "service",
          retry: Retry.constant({ delay: 0, maxAttempts: 2 })
        })
        server.script("/b?x=1", { status: 503 })
        assert.strictEqual((yield* logical.get("http://payments/b?x=1")).status, 200)
        assert.strictEqual((yield* logical.get("http://payments:8080/c")).status, 200)
        // a Host the caller set is sent as it is
        assert.strictEqual((yield* logical.get("http://payments/d", { headers: { host: "www.internal" } })).status, 200)
        assert.deepStrictEqual(
          [server.hostsAt("/a"), server.hostsAt("/b?x=1"), server.hostsAt("/c"), server.hostsAt("/d")],
          [[server.host], ["payments", "payments"], ["payments:8080"], ["www.internal"]]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("hostHeader and hashKey: bad values fail make, each named with the other issues", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          ResilientHttpClient.make(yield* fetchClient, {
            attemptTimeout: -1,
            hostHeader: "logical" as unknown as "service",
            hashKey: "x-tenant" as unknown as () => string
          })
        )
        assert.deepStrictEqual(
          error.issues.map((issue) => [issue.path, issue.message]),
          [
            ["attemptTimeout", error.issues[0]?.message],
            ["hostHeader", 'Expected "endpoint" or "service"'],
            ["hashKey", "Expected a function of the request"]
          ]
        )
        assert.deepStrictEqual(
          error.issues.slice(1).map((issue) => issue.value),
          ['"logical"', '"x-tenant"']
        )
      })
    )

    it.effect("hashKey: a ringHash service sends one key to one endpoint; a retry goes to another", () =>
      Effect.gen(function* () {
        const { servers, lb } = yield* endpointsOf([1, 1, 1], { strategy: "ringHash" })
        const client = yield* ResilientHttpClient.make(yield* fetchClient, {
          services: { cache: lb },
          hashKey: (request) => request.headers["x-tenant"],
          retry: Retry.constant({ delay: 0, maxAttempts: 2 })
        })
        const tenants = [
          "acme",
          "globex",
          "initech",
          "umbrella",
          "hooli",
          "stark",
          "wayne",
          "tyrell",
          "soylent",
          "cyberdyne",
          "wonka",
          "oscorp"
        ]
        const homes: Array<number> = []
        for (const tenant of tenants) {
          const path = `/entries?tenant=${tenant}`
          for (let i = 0; i < 3; i++) {
            assert.strictEqual(
              (yield* client.get(`http://cache${path}`, { headers: { "x-tenant": tenant } })).status,
              200
            )
          }
          // all three on one endpoint
          const hits = hitsOf(servers, path)
          assert.deepStrictEqual([...hits].sort(), [0, 0, 3])
          homes.push(hits.indexOf(3))
        }
        assert.isAbove(new Set(homes).size, 1) // the keys spread over the endpoints (all on one: p = 3 / 3^12)
        // the key's endpoint answers 503: the retry goes elsewhere
        const home = homes[0] ?? 0
        servers[home]?.script("/entries?tenant=acme", { status: 503 })
        assert.strictEqual(
          (yield* client.get("http://cache/entries?tenant=acme", { headers: { "x-tenant": "acme" } })).status,
          200
        )
        const after = hitsOf(servers, "/entries?tenant=acme")
        assert.strictEqual(after[home], 4)
        assert.strictEqual(
          after.reduce((a, b) => a + b, 0),
          5
        )
      }).pipe(Effect.scoped)
    )

    it.effect("services: a value that is neither a balancer nor a service fails make", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          ResilientHttpClient.make(yield* fetchClient, {
            services: { payments: {} as unknown as LoadBalancer.LoadBalancer }
          })
        )
        assert.deepStrictEqual(
          error.issues.map((issue) => issue.path),
          ["services.payments"]
        )
      })
    )
  })

  describe("bodies of retried responses", () => {
    it.effect("a retried 503's body is released: retries over one keep-alive connection complete", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        // bodies larger than the socket buffers: unread, one would hold the only connection
        const big = { status: 503, body: "x".repeat(1 << 20) }
        server.script("/big", big, big, big)
        const undici = Context.get(
          yield* Layer.build(NodeHttpClient.layerUndiciOptions({ connections: 1 })),
          HttpClient.HttpClient
        )
        const client = yield* ResilientHttpClient.make(undici, { retry: Retry.constant({ delay: 0, maxAttempts: 4 }) })
        const stalled = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5_000))).pipe(
          Effect.andThen(Effect.die(new Error("stalled: a retried response's body kept the connection")))
        )
        const response = yield* Effect.raceFirst(client.get(server.url("/big")), stalled)
        assert.deepStrictEqual([response.status, yield* response.text], [200, "200"])
        assert.strictEqual(server.hits("/big"), 4)
        // the last failure response, when retries run out, is returned with its body intact
        server.script("/big", big, big)
        const last = yield* ResilientHttpClient.make(undici, { retry: Retry.constant({ delay: 0, maxAttempts: 2 }) })
        const failed = yield* Effect.raceFirst(last.get(server.url("/big")), stalled)
        assert.deepStrictEqual([failed.status, (yield* failed.text).length], [503, 1 << 20])
      }).pipe(Effect.scoped)
    )

    /** node:http over one keep-alive socket: a response whose body is not read to its end keeps the socket. */
    const oneSocket = Effect.map(
      Layer.build(NodeHttpClient.layerNodeHttpOptions({ keepAlive: true, maxSockets: 1 })),
      Context.get(HttpClient.HttpClient)
    )

    /** Fails the test when `effect` waits on a connection held by a response nobody reads (a real-time hang guard). */
    const unlessStalled = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
      Effect.raceFirst(
        effect,
        Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 3_000))).pipe(
          Effect.andThen(Effect.die(new Error(`stalled: ${what}`)))
        )
      )

    it.effect("a retried 503 is released before the retry's wait: the only connection serves others meanwhile", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        const node = yield* oneSocket
        const policy = Retry.constant({ delay: "10 seconds", maxAttempts: 2 })
        const events = yield* policy.subscribe
        const direct = yield* ResilientHttpClient.make(node, { retry: policy })
        const lb = yield* LoadBalancer.make({ name: "flaky", endpoints: [{ id: server.host }] })
        const viaService = yield* ResilientHttpClient.make(node, { retry: policy, services: { flaky: lb } })
        const cases = [
          [direct, server.url("/flaky")],
          [viaService, "http://flaky/flaky"]
        ] as const
        for (const [client, url] of cases) {
          server.script("/flaky", { status: 503, body: "busy" })
          const fiber = yield* Effect.forkChild(client.get(url))
          assert.strictEqual((yield* Queue.take(events))._tag, "RetryScheduled")
          yield* settle
          // the request waits out its backoff (the test clock stands still): its 503 no longer holds the socket
          const other = yield* unlessStalled(node.get(server.url("/other")), `the 503 of ${url} kept the connection`)
          assert.deepStrictEqual([other.status, yield* other.text], [200, "200"])
          yield* TestClock.adjust("10 seconds")
          const response = yield* Fiber.join(fiber)
          assert.deepStrictEqual([response.status, yield* response.text], [200, "200"])
        }
        assert.strictEqual(server.hits("/flaky"), 4)
      }).pipe(Effect.scoped)
    )

    it.effect("when retries run out, the released failure response is returned whole, and holds no connection", () =>
      Effect.gen(function* () {
        const server = yield* scriptedServer
        const down = { status: 503, headers: { "x-reason": "maintenance" }, body: '{"error":"down"}' }
        server.script("/down", down, down)
        const node = yield* oneSocket
        const client = yield* ResilientHttpClient.make(node, { retry: Retry.constant({ delay: 0, maxAttempts: 2 }) })
        const response = yield* unlessStalled(client.get(server.url("/down")), "the first 503 kept the connection")
        // not read yet: the connection is free all the same
        const other = yield* unlessStalled(node.get(server.url("/other")), "the returned 503 kept the connection")
        assert.strictEqual(other.status, 200)
        assert.deepStrictEqual(
          [response.status, response.headers["x-reason"], response.url, yield* response.json],
          [503, "maintenance", server.url("/down"), { error: "down" }]
        )
        assert.deepStrictEqual(
          [yield* response.text, (yield* response.arrayBuffer).byteLength],
          ['{"error":"down"}', 16]
        )
        assert.strictEqual(new TextDecoder().decode((yield* Stream.runCollect(response.stream))[0]), '{"error":"down"}')
        const error = yield* Effect.flip(HttpClientResponse.filterStatusOk(response))
        assert.strictEqual(error.reason._tag, "StatusCodeError")
        assert.strictEqual(server.hits("/down"), 2)
      }).pipe(Effect.scoped)
    )
  })
})
