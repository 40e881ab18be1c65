import { assert, describe, it } from "@effect/vitest"
import { Health, Options } from "@effect-resilience/core"
import { LoadShedding } from "@effect-resilience/http"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as ExitObserver from "../src/internal/exitObserver.ts"
import { serveLoopback } from "./server.ts"

/** A real-time pause, for what crosses the loopback socket (a request's arrival, a client leaving). */
const pause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))

/** Waits, in real time and at most about 5 seconds, until `condition` holds. */
const eventually = (condition: Effect.Effect<boolean>): Effect.Effect<void> =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      if (yield* condition) return
      yield* pause
    }
    return yield* Effect.die(new Error("condition not met in time"))
  })

/** A probe the test sets by hand: each sample reads `reading`, and `reads` counts the samples. */
interface FakeProbe {
  reading: LoadShedding.Reading
  reads: number
  readonly set: (reading: LoadShedding.Reading) => void
  readonly probe: LoadShedding.Probe
}

const fakeProbe = (): FakeProbe => {
  const fake: FakeProbe = {
    reading: {},
    reads: 0,
    set: (reading) => {
      fake.reading = reading
    },
    probe: {
      read: Effect.sync(() => {
        fake.reads++
        return fake.reading
      })
    }
  }
  return fake
}

interface Reply {
  readonly status: number
  readonly text: string
  readonly retryAfter: string | null
}

/**
 * A loopback server whose routes are behind a shedder (made here, with a fake
 * probe, its middleware global): `/api/fast`, `/api/critical`, `/reports`,
 * `/health`, `/health/ready` answer at once; `/api/slow` waits for `open`.
 */
const serveShedding = (options: LoadShedding.Input = {}) =>
  Effect.gen(function* () {
    const probe = fakeProbe()
    const shedder = yield* LoadShedding.make({ probe: probe.probe, ...options })
    const gate = yield* Deferred.make<void>()
    const arrivals = { slow: 0 }
    const route = (path: HttpRouter.PathInput) =>
      HttpRouter.add("*", path, Effect.succeed(HttpServerResponse.text(`hello ${path}`)))
    const app = Layer.mergeAll(
      route("/api/fast"),
      route("/api/critical"),
      route("/reports"),
      route("/health"),
      route("/health/ready"),
      HttpRouter.add(
        "*",
        "/api/slow",
        Effect.suspend(() => {
          arrivals.slow++
          return Effect.as(Deferred.await(gate), HttpServerResponse.text("slow"))
        })
      ),
      HttpRouter.middleware(LoadShedding.middleware(shedder), { global: true })
    )
    const { port } = yield* serveLoopback(app)
    const send = (path: string, headers: Record<string, string> = {}): Effect.Effect<Reply> =>
      Effect.tryPromise({
        try: async (signal) => {
          const res = await fetch(`http://127.0.0.1:${port}${path}`, {
            headers: { connection: "close", ...headers },
            signal
          })
          return { status: res.status, text: await res.text(), retryAfter: res.headers.get("retry-after") }
        },
        catch: (cause) => cause
      }).pipe(Effect.orDie)
    const status = (path: string, headers?: Record<string, string>) =>
      Effect.map(send(path, headers), (reply) => reply.status)
    /** Sets the probe's reading and lets one sample interval pass on the TestClock. */
    const sampleWith = (reading: LoadShedding.Reading) =>
      Effect.andThen(
        Effect.sync(() => probe.set(reading)),
        TestClock.adjust(shedder.options.sampleInterval)
      )
    return { shedder, probe, send, status, sampleWith, arrivals, open: Deferred.succeed(gate, undefined) }
  })

const levelOf = (shedder: LoadShedding.LoadShedder) => Effect.map(shedder.state, (state) => state.level)

describe("LoadShedding", () => {
  describe("pressure signals on a loopback server (fake probe, TestClock)", () => {
    it.effect("shedding starts on a breach and stops with hysteresis: the band keeps it, calm samples end it", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({
          eventLoopDelayThreshold: "100 millis",
          recoveryMargin: 0.2,
          calmSamples: 2
        })
        const events = yield* server.shedder.subscribe
        // calm: admitted
        yield* server.sampleWith({ eventLoopDelay: 50 })
        assert.strictEqual(yield* server.status("/api/fast"), 200)
        // over the threshold: shed at once, with Retry-After (sampleInterval × calmSamples = 2 s)
        yield* server.sampleWith({ eventLoopDelay: 150 })
        const shed = yield* server.send("/api/fast")
        assert.deepStrictEqual(shed, { status: 503, text: "Service Unavailable", retryAfter: "2" })
        assert.strictEqual(yield* levelOf(server.shedder), "normal")
        // under the threshold but above its recovery mark (80 ms): still shed, however long
        for (const delay of [95, 85, 99, 81]) {
          yield* server.sampleWith({ eventLoopDelay: delay })
          assert.strictEqual(yield* server.status("/api/fast"), 503, `at ${delay} ms`)
        }
        // below the mark: one calm sample is not enough
        yield* server.sampleWith({ eventLoopDelay: 70 })
        assert.strictEqual(yield* server.status("/api/fast"), 503)
        // the second ends shedding of normal requests; 70 ms is still over the sheddable level's mark (64 ms)
        yield* server.sampleWith({ eventLoopDelay: 70 })
        assert.strictEqual(yield* server.status("/api/fast"), 200)
        assert.strictEqual(yield* levelOf(server.shedder), "sheddable")
        yield* server.sampleWith({ eventLoopDelay: 10 })
        yield* server.sampleWith({ eventLoopDelay: 10 })
        assert.strictEqual(yield* levelOf(server.shedder), "none")
        const seen = yield* Queue.takeAll(events)
        assert.deepStrictEqual(
          seen.map((event) =>
            event._tag === "SheddingStarted"
              ? [event._tag, event.level, event.reasons, event.readings.event_loop_delay]
              : event._tag === "SheddingLevelChanged"
                ? [event._tag, event.from, event.to]
                : [event._tag, event.from, Duration.toMillis(event.duration), event.shed]
          ),
          [
            ["SheddingStarted", "normal", ["event_loop_delay"], 150],
            ["SheddingLevelChanged", "normal", "sheddable"],
            ["SheddingStopped", "sheddable", 8000, 6]
          ]
        )
        const stats = yield* server.shedder.stats
        assert.deepStrictEqual(
          [stats.admitted, stats.shed, stats.shedBy.event_loop_delay, stats.episodes, stats.samples],
          [2, 6, 6, 1, 10]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("priorities: critical requests pass while normal and sheddable ones are shed; sheddable go first", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({
          heapUsedThreshold: 1000,
          critical: ["/api/critical"],
          sheddable: ["/reports"],
          // a trusted header may raise a request's priority; others fall back to the paths
          classify: (request) => (request.headers["x-internal"] === "yes" ? "critical" : undefined)
        })
        const all = Effect.all({
          fast: server.status("/api/fast"),
          critical: server.status("/api/critical"),
          reports: server.status("/reports"),
          internalReports: server.status("/reports", { "x-internal": "yes" })
        })
        // over threshold × sheddableAt (800 bytes): only sheddable requests are shed
        yield* server.sampleWith({ heapUsed: 900 })
        assert.deepStrictEqual(yield* all, { fast: 200, critical: 200, reports: 503, internalReports: 200 })
        // over the threshold: normal ones too, never critical ones
        yield* server.sampleWith({ heapUsed: 5000 })
        assert.deepStrictEqual(yield* all, { fast: 503, critical: 200, reports: 503, internalReports: 200 })
        const stats = yield* server.shedder.stats
        assert.deepStrictEqual([stats.shed, stats.shedBy.heap_used], [3, 3])
        const state = yield* server.shedder.state
        assert.deepStrictEqual(
          [state.reasons, state.signals.heap_used, state.signals.rss],
          [
            ["heap_used"],
            { value: 5000, threshold: 1000, level: "normal" },
            { value: undefined, threshold: undefined, level: "none" }
          ]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("rss and requests in flight are signals too (in flight: the most during the interval)", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({ rssThreshold: 1_000_000, inFlightThreshold: 2, sheddableAt: 1 })
        yield* server.sampleWith({ rss: 2_000_000 })
        assert.deepStrictEqual([yield* server.status("/api/fast"), (yield* server.shedder.stats).shedBy.rss], [503, 1])
        yield* server.sampleWith({ rss: 1 })
        yield* server.sampleWith({ rss: 1 })
        yield* server.sampleWith({ rss: 1 })
        assert.strictEqual(yield* server.status("/api/fast"), 200)
        // three slow requests in flight during the interval: over 2
        const slow = yield* Effect.forkChild(
          Effect.all([server.send("/api/slow"), server.send("/api/slow"), server.send("/api/slow")], {
            concurrency: "unbounded"
          })
        )
        yield* eventually(Effect.sync(() => server.arrivals.slow === 3))
        yield* server.open
        yield* Fiber.join(slow)
        // all three are done, but the interval's peak was 3
        yield* server.sampleWith({ rss: 1 })
        assert.strictEqual(yield* server.status("/api/fast"), 503)
        const state = yield* server.shedder.state
        assert.deepStrictEqual([state.reasons, state.signals.in_flight.value, state.inFlight], [["in_flight"], 3, 0])
        assert.strictEqual((yield* server.shedder.stats).shedBy.in_flight, 1)
      }).pipe(Effect.scoped)
    )
  })

  describe("maxInFlight", () => {
    it.effect("N concurrent slow requests, cap k: exactly N − k answered 503 at once, k run", () =>
      Effect.gen(function* () {
        const n = 9
        const k = 4
        const server = yield* serveShedding({ maxInFlight: k })
        const replies = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: n }), () => server.send("/api/slow"), { concurrency: "unbounded" })
        )
        // every request reached the shedder: k are held by the handler, the rest were answered
        yield* eventually(Effect.map(server.shedder.stats, (stats) => stats.admitted === k && stats.shed === n - k))
        assert.deepStrictEqual([server.arrivals.slow, (yield* server.shedder.state).inFlight], [k, k])
        yield* server.open
        const statuses = (yield* Fiber.join(replies)).map((reply) => reply.status)
        assert.deepStrictEqual(
          [statuses.filter((s) => s === 200).length, statuses.filter((s) => s === 503).length],
          [k, n - k]
        )
        const stats = yield* server.shedder.stats
        assert.deepStrictEqual([stats.shedBy.max_in_flight, stats.shed], [n - k, n - k])
        assert.strictEqual((yield* server.shedder.state).inFlight, 0)
        // the slots are free again
        assert.strictEqual(yield* server.status("/api/slow"), 200)
      }).pipe(Effect.scoped)
    )

    it.effect("the cap holds for critical requests too; a shed answer carries Retry-After", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({ maxInFlight: 1, critical: ["/api/critical"], retryAfter: "1500 millis" })
        const held = yield* Effect.forkChild(server.send("/api/slow"))
        yield* eventually(Effect.sync(() => server.arrivals.slow === 1))
        const critical = yield* server.send("/api/critical")
        assert.deepStrictEqual([critical.status, critical.retryAfter], [503, "2"])
        yield* server.open
        assert.strictEqual((yield* Fiber.join(held)).status, 200)
      }).pipe(Effect.scoped)
    )

    it.effect("interruption of a request (the client leaves) frees its in-flight slot", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({ maxInFlight: 1 })
        const leaving = yield* Effect.forkChild(server.send("/api/slow"))
        yield* eventually(Effect.map(server.shedder.state, (state) => state.inFlight === 1))
        assert.strictEqual(yield* server.status("/api/fast"), 503)
        yield* Fiber.interrupt(leaving) // aborts the fetch: the server interrupts the handler
        yield* eventually(Effect.map(server.shedder.state, (state) => state.inFlight === 0))
        assert.strictEqual(yield* server.status("/api/fast"), 200)
        assert.deepStrictEqual((yield* server.shedder.stats).shedBy.max_in_flight, 1)
      }).pipe(Effect.scoped)
    )
  })

  describe("excluded paths", () => {
    it.effect("health probes pass while shedding and at the cap, and are not counted in flight", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({
          maxInFlight: 1,
          eventLoopDelayThreshold: "50 millis",
          critical: ["/api/slow"]
        })
        yield* server.sampleWith({ eventLoopDelay: 1000 })
        assert.deepStrictEqual([yield* server.status("/health"), yield* server.status("/api/fast")], [200, 503])
        // a critical request holds the only slot
        const held = yield* Effect.forkChild(server.send("/api/slow"))
        yield* eventually(Effect.sync(() => server.arrivals.slow === 1))
        assert.deepStrictEqual(
          [yield* server.status("/health/ready?verbose"), yield* server.status("/api/critical")],
          [200, 503]
        )
        assert.strictEqual((yield* server.shedder.state).inFlight, 1)
        yield* server.open
        assert.strictEqual((yield* Fiber.join(held)).status, 200)
        const stats = yield* server.shedder.stats
        assert.deepStrictEqual(
          [stats.excluded, stats.admitted, stats.shedBy.event_loop_delay, stats.shedBy.max_in_flight],
          [2, 1, 1, 1]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("exclude: paths of one's own, or a predicate, replace the default", () =>
      Effect.gen(function* () {
        const byPath = yield* serveShedding({ maxInFlight: 1, exclude: ["/reports"] })
        const held = yield* Effect.forkChild(byPath.send("/api/slow"))
        yield* eventually(Effect.sync(() => byPath.arrivals.slow === 1))
        assert.deepStrictEqual([yield* byPath.status("/reports"), yield* byPath.status("/health")], [200, 503])
        yield* byPath.open
        yield* Fiber.join(held)
        const byPredicate = yield* serveShedding({
          heapUsedThreshold: 1,
          exclude: (request) => request.headers["x-probe"] === "kubelet"
        })
        yield* byPredicate.sampleWith({ heapUsed: 10 })
        assert.deepStrictEqual(
          [yield* byPredicate.status("/api/fast", { "x-probe": "kubelet" }), yield* byPredicate.status("/api/fast")],
          [200, 503]
        )
      }).pipe(Effect.scoped)
    )
  })

  describe("answers", () => {
    it.effect("status, body and Retry-After from the options; onShed builds its own answer", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({
          heapUsedThreshold: 1,
          status: 429,
          body: "busy",
          retryAfter: "10 seconds"
        })
        yield* server.sampleWith({ heapUsed: 2 })
        assert.deepStrictEqual(yield* server.send("/api/fast"), { status: 429, text: "busy", retryAfter: "10" })
        const seen: Array<LoadShedding.Shed> = []
        const custom = yield* serveShedding({
          heapUsedThreshold: 1,
          sheddable: ["/reports"],
          onShed: (shed, request) => {
            seen.push(shed)
            return request.url.startsWith("/reports")
              ? HttpServerResponse.text(`shed: ${shed.reason}`, { status: 503 })
              : HttpServerResponse.text("later", { status: 503, headers: { "retry-after": "60" } })
          }
        })
        yield* custom.sampleWith({ heapUsed: 2 })
        assert.deepStrictEqual(yield* custom.send("/reports"), {
          status: 503,
          text: "shed: heap_used",
          retryAfter: "3"
        })
        assert.deepStrictEqual(yield* custom.send("/api/fast"), { status: 503, text: "later", retryAfter: "60" })
        assert.deepStrictEqual(
          seen.map((shed) => [shed.reason, shed.priority, shed.level, Duration.toMillis(shed.retryAfter)]),
          [
            ["heap_used", "sheddable", "normal", 3000],
            ["heap_used", "normal", "normal", 3000]
          ]
        )
      }).pipe(Effect.scoped)
    )
  })

  describe("layers", () => {
    it.effect("layer: the shedder as a service and its middleware global in the router", () =>
      Effect.gen(function* () {
        const probe = fakeProbe()
        const app = Layer.mergeAll(
          HttpRouter.add("GET", "/quotes", Effect.succeed(HttpServerResponse.text("quotes"))),
          LoadShedding.layer({ name: "api", rssThreshold: 100, probe: probe.probe })
        )
        const server = yield* serveLoopback(app)
        assert.strictEqual((yield* server.get("/quotes")).status, 200)
        probe.set({ rss: 1000 })
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(
          [
            (yield* server.get("/quotes")).status,
            (yield* server.get("/unknown")).status,
            (yield* server.get("/health")).status
          ],
          [503, 503, 404]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("layerConfig: options from the environment, named after the path; code options beside", () =>
      Effect.gen(function* () {
        const probe = fakeProbe()
        const env = ConfigProvider.fromEnv({
          env: {
            shed_maxInFlight: "7",
            shed_sampleInterval: "250 millis",
            shed_critical_0: "/a",
            shed_critical_1: "/b"
          }
        })
        const context = yield* Layer.build(
          LoadShedding.layerConfig("shed", { probe: probe.probe }).pipe(
            Layer.provide([HttpRouter.layer, ConfigProvider.layer(env)])
          )
        )
        const shedder = Context.get(context, LoadShedding.LoadShedder)
        assert.deepStrictEqual(
          [
            shedder.name,
            shedder.options.maxInFlight,
            Duration.toMillis(shedder.options.sampleInterval),
            shedder.options.critical
          ],
          ["shed", 7, 250, ["/a", "/b"]]
        )
        yield* TestClock.adjust("250 millis")
        assert.strictEqual(probe.reads, 1)
        const bad = ConfigProvider.fromEnv({ env: { shed_maxInFlight: "0", shed_status: "200" } })
        const error = yield* Effect.flip(
          Effect.provide(
            LoadShedding.LoadShedder,
            LoadShedding.layerConfig("shed", { probe: probe.probe }).pipe(
              Layer.provide([HttpRouter.layer, ConfigProvider.layer(bad)])
            )
          )
        )
        assert.isTrue(error instanceof Options.InvalidOptions)
        assert.deepStrictEqual(
          error instanceof Options.InvalidOptions ? error.issues.map((issue) => `${issue.path} = ${issue.value}`) : [],
          ['maxInFlight = "0"', 'status = "200"']
        )
      }).pipe(Effect.scoped)
    )
  })

  describe("options", () => {
    it.effect("defaults", () =>
      Effect.gen(function* () {
        const options = yield* LoadShedding.validateOptions()
        assert.deepStrictEqual(
          {
            ...options,
            sampleInterval: Duration.toMillis(options.sampleInterval),
            retryAfter: Duration.toMillis(options.retryAfter)
          },
          {
            name: "http",
            sampleInterval: 1000,
            eventLoopDelayThreshold: undefined,
            heapUsedThreshold: undefined,
            rssThreshold: undefined,
            inFlightThreshold: undefined,
            maxInFlight: undefined,
            sheddableAt: 0.8,
            recoveryMargin: 0.1,
            calmSamples: 3,
            exclude: ["/health", "/health/*"],
            critical: [],
            sheddable: [],
            status: 503,
            body: "Service Unavailable",
            retryAfter: 3000,
            classify: undefined,
            onShed: undefined,
            probe: undefined
          }
        )
        // the smallest valid values
        const smallest = yield* LoadShedding.validateOptions({
          sampleInterval: 1,
          eventLoopDelayThreshold: 1,
          heapUsedThreshold: 1,
          rssThreshold: 1,
          inFlightThreshold: 1,
          maxInFlight: 1,
          sheddableAt: Number.MIN_VALUE,
          recoveryMargin: 0,
          calmSamples: 1,
          exclude: [],
          status: 400
        })
        assert.deepStrictEqual(
          [smallest.maxInFlight, smallest.calmSamples, Duration.toMillis(smallest.retryAfter)],
          [1, 1, 1]
        )
      })
    )

    it.effect("bad options: one InvalidOptions naming every bad field; make fails with it", () =>
      Effect.gen(function* () {
        const input = {
          sampleInterval: 0,
          eventLoopDelayThreshold: "soon",
          heapUsedThreshold: 1.5,
          rssThreshold: -1,
          inFlightThreshold: 0,
          maxInFlight: 0,
          sheddableAt: 0,
          recoveryMargin: 1,
          calmSamples: 0,
          exclude: ["/ok", "health"],
          critical: ["critical"],
          sheddable: [7],
          status: 200,
          retryAfter: -5,
          classify: "header",
          onShed: 503,
          probe: { read: 1 }
        }
        // @ts-expect-error: wrong types on purpose, as JavaScript callers or parsed configuration could give
        const error = yield* Effect.flip(LoadShedding.validateOptions(input))
        assert.strictEqual(error.pattern, "LoadShedding")
        assert.deepStrictEqual(
          error.issues.map((issue) => `${issue.path} = ${issue.value}`),
          [
            'eventLoopDelayThreshold = "soon"',
            "retryAfter = -5",
            'classify = "header"',
            "onShed = 503",
            'probe = {"read":1}',
            "heapUsedThreshold = 1.5",
            "rssThreshold = -1",
            "inFlightThreshold = 0",
            "maxInFlight = 0",
            "sheddableAt = 0",
            "recoveryMargin = 1",
            "calmSamples = 0",
            'exclude.1 = "health"',
            'critical.0 = "critical"',
            "sheddable.0 = 7",
            "status = 200",
            "sampleInterval = 0"
          ]
        )
        // @ts-expect-error: as above
        const failed = yield* Effect.flip(LoadShedding.make(input))
        assert.deepStrictEqual(failed.issues.length, 17)
      }).pipe(Effect.scoped)
    )
  })

  describe("observability", () => {
    it.effect("metrics: requests by outcome, shed by reason, level, in flight, the signals; no request data", () =>
      Effect.gen(function* () {
        const server = yield* serveShedding({ name: "api", eventLoopDelayThreshold: "100 millis" })
        const value = (id: string, attributes: Record<string, string> = {}) =>
          Effect.map(Metric.snapshot, (snapshots) => {
            const found = snapshots.find(
              (s) =>
                s.id === id &&
                s.attributes?.["resilience.name"] === "api" &&
                Object.entries(attributes).every(([k, v]) => s.attributes?.[k] === v)
            )
            const state: object | undefined = found?.state
            return state === undefined
              ? undefined
              : "count" in state
                ? Number(state.count)
                : "value" in state
                  ? Number(state.value)
                  : undefined
          })
        yield* server.status("/api/fast?user=secret")
        yield* server.sampleWith({ eventLoopDelay: 250, heapUsed: 1234, rss: 5678 })
        yield* server.status("/api/fast?user=secret")
        yield* server.status("/health")
        assert.deepStrictEqual(
          yield* Effect.all([
            value("resilience.load_shedding.requests", { "resilience.outcome": "admitted" }),
            value("resilience.load_shedding.requests", { "resilience.outcome": "shed" }),
            value("resilience.load_shedding.requests", { "resilience.outcome": "excluded" }),
            value("resilience.load_shedding.shed", { "resilience.reason": "event_loop_delay" }),
            value("resilience.load_shedding.shed", { "resilience.reason": "max_in_flight" }),
            value("resilience.load_shedding.episodes"),
            value("resilience.load_shedding.level"),
            value("resilience.load_shedding.in_flight"),
            value("resilience.load_shedding.event_loop_delay"),
            value("resilience.load_shedding.heap_used"),
            value("resilience.load_shedding.rss")
          ]),
          [1, 1, 1, 1, 0, 1, 2, 0, 0.25, 1234, 5678]
        )
        for (const s of (yield* Metric.snapshot).filter((m) => m.id.startsWith("resilience.load_shedding"))) {
          for (const v of Object.values(s.attributes ?? {})) assert.notInclude(String(v), "secret")
        }
      }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
    )

    it.effect("healthSource: healthy, then degraded (or whenShedding) while shedding, healthy again", () =>
      Effect.gen(function* () {
        const probe = fakeProbe()
        const shedder = yield* LoadShedding.make({
          name: "edge",
          heapUsedThreshold: 10,
          calmSamples: 1,
          probe: probe.probe
        })
        const health = yield* Health.make({
          components: [
            LoadShedding.healthSource(shedder),
            LoadShedding.healthSource(shedder, { name: "edge-strict", whenShedding: "unhealthy", critical: false })
          ]
        })
        const statuses = Effect.map(health.status, (report) => report.components.map((c) => [c.name, c.status]))
        yield* Effect.sleep(0)
        assert.deepStrictEqual(yield* statuses, [
          ["edge", "healthy"],
          ["edge-strict", "healthy"]
        ])
        probe.set({ heapUsed: 9 })
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* statuses, [
          ["edge", "degraded"],
          ["edge-strict", "unhealthy"]
        ])
        probe.set({ heapUsed: 1 })
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* statuses, [
          ["edge", "healthy"],
          ["edge-strict", "healthy"]
        ])
      }).pipe(Effect.scoped)
    )

    it.effect("the real probe: every signal read, and sane (no timing asserted)", () =>
      Effect.gen(function* () {
        const probe = yield* LoadShedding.nodeProbe({ resolution: "5 millis" })
        yield* pause
        const reading = yield* probe.read
        const heapUsed = reading.heapUsed ?? 0
        assert.isTrue(heapUsed > 0, "heap used read")
        assert.isTrue((reading.rss ?? 0) >= heapUsed, "rss at least the heap used")
        assert.isTrue(
          reading.eventLoopDelay === undefined ||
            (Number.isFinite(reading.eventLoopDelay) && reading.eventLoopDelay >= 0),
          "event-loop delay a non-negative number when read"
        )
        // a shedder without a probe uses it: its first sample has every memory signal
        const shedder = yield* LoadShedding.make({ heapUsedThreshold: Number.MAX_SAFE_INTEGER })
        yield* TestClock.adjust("1 second")
        const state = yield* shedder.state
        assert.deepStrictEqual(
          [state.level, (state.signals.heap_used.value ?? 0) > 0, (state.signals.rss.value ?? 0) > 0],
          ["none", true, true]
        )
      }).pipe(Effect.scoped)
    )
  })

  // In process (no sockets): the app runs with a request provided, as the router runs it. Each case runs twice: with
  // the release observer pushed on the fiber's stack, and on the public-API fallback (uninterruptibleMask + onExit).
  describe("the in-flight count, exact however a request ends", () => {
    const requestTo = (path: string) => HttpServerRequest.fromWeb(new Request(`http://localhost${path}`))
    const through = <E>(
      shedder: LoadShedding.LoadShedder,
      app: Effect.Effect<HttpServerResponse.HttpServerResponse, E>,
      path = "/api/x"
    ) => Effect.provideService(shedder.middleware(app), HttpServerRequest.HttpServerRequest, requestTo(path))
    const inFlight = (shedder: LoadShedding.LoadShedder) => Effect.map(shedder.state, (state) => state.inFlight)
    const ok = HttpServerResponse.text("ok")
    const quiet: LoadShedding.Probe = { read: Effect.succeed({}) }

    /** Runs `body` with the observer path on or off, restoring the setting after. */
    const withMode = <A, E, R>(frames: boolean, body: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => ExitObserver.setEnabled(frames)),
        () => body,
        (previous) => Effect.sync(() => ExitObserver.setEnabled(previous))
      )

    for (const frames of [true, false]) {
      const mode = frames ? "observer" : "fallback"

      it.effect(
        `${mode}: success, typed failure, defect and a handler interrupting itself each free the slot once`,
        () =>
          withMode(
            frames,
            Effect.gen(function* () {
              assert.strictEqual(ExitObserver.active(), frames && ExitObserver.supported)
              const shedder = yield* LoadShedding.make({ probe: quiet, maxInFlight: 1 })
              const seen: Array<number> = []
              const look = Effect.flatMap(inFlight(shedder), (n) => Effect.sync(() => seen.push(n)))
              const exits = [
                yield* Effect.exit(through(shedder, Effect.as(look, ok))),
                yield* Effect.exit(through(shedder, Effect.andThen(look, Effect.fail("bad request")))),
                yield* Effect.exit(through(shedder, Effect.andThen(look, Effect.die("boom")))),
                yield* Effect.exit(through(shedder, Effect.andThen(look, Effect.interrupt)))
              ]
              assert.deepStrictEqual(
                exits.map((exit) =>
                  Exit.isSuccess(exit)
                    ? exit.value.status
                    : Exit.hasInterrupts(exit)
                      ? "interrupted"
                      : Exit.hasDies(exit)
                        ? "died"
                        : "failed"
                ),
                [200, "failed", "died", "interrupted"]
              )
              // each ran holding the only slot, and gave it back: the cap of 1 never shed the next one
              assert.deepStrictEqual([seen, yield* inFlight(shedder)], [[1, 1, 1, 1], 0])
              assert.deepStrictEqual(Object.values((yield* shedder.stats).shedBy), [0, 0, 0, 0, 0])
            }).pipe(Effect.scoped)
          )
      )

      it.effect(
        `${mode}: a request interrupted while suspended, or in an uninterruptible part, frees its slot once`,
        () =>
          withMode(
            frames,
            Effect.gen(function* () {
              const shedder = yield* LoadShedding.make({ probe: quiet, maxInFlight: 2 })
              const gate = yield* Deferred.make<void>()
              const suspended = yield* Effect.forkChild(through(shedder, Effect.as(Effect.never, ok)))
              // the interruption arrives during an uninterruptible part: the slot is freed when the part ends
              const guarded = yield* Effect.forkChild(
                through(shedder, Effect.as(Effect.uninterruptible(Deferred.await(gate)), ok))
              )
              yield* Effect.yieldNow
              assert.strictEqual(yield* inFlight(shedder), 2)
              assert.strictEqual(Exit.isFailure(yield* Effect.exit(through(shedder, Effect.succeed(ok)))), false)
              assert.strictEqual((yield* shedder.stats).shedBy.max_in_flight, 1)
              yield* Fiber.interrupt(suspended)
              assert.strictEqual(yield* inFlight(shedder), 1)
              const interrupting = yield* Effect.forkChild(Fiber.interrupt(guarded))
              yield* Effect.yieldNow
              assert.strictEqual(yield* inFlight(shedder), 1)
              yield* Deferred.succeed(gate, undefined)
              yield* Fiber.join(interrupting)
              assert.strictEqual(yield* inFlight(shedder), 0)
            }).pipe(Effect.scoped)
          )
      )

      it.effect(`${mode}: middleware nested in the same shedder, and under an uninterruptible caller`, () =>
        withMode(
          frames,
          Effect.gen(function* () {
            const shedder = yield* LoadShedding.make({ probe: quiet })
            const inner = shedder.middleware(Effect.as(Effect.never, ok))
            const nested = yield* Effect.forkChild(
              Effect.provideService(shedder.middleware(inner), HttpServerRequest.HttpServerRequest, requestTo("/a"))
            )
            yield* Effect.yieldNow
            assert.strictEqual(yield* inFlight(shedder), 2)
            yield* Fiber.interrupt(nested)
            assert.strictEqual(yield* inFlight(shedder), 0)
            // the caller uninterruptible, the handler interruptible inside: interrupted there
            const masked = yield* Effect.forkChild(
              Effect.uninterruptible(through(shedder, Effect.interruptible(Effect.as(Effect.never, ok))))
            )
            yield* Effect.yieldNow
            assert.strictEqual(yield* inFlight(shedder), 1)
            yield* Fiber.interrupt(masked)
            assert.strictEqual(yield* inFlight(shedder), 0)
          }).pipe(Effect.scoped)
        )
      )

      it(`${mode}: property — requests interrupted at any point leave the count at zero, never below`, () =>
        fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({
                steps: fc.integer({ min: 0, max: 4 }),
                end: fc.constantFrom("succeed", "fail", "die", "interrupt", "never"),
                guarded: fc.boolean(),
                interruptAfter: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined })
              }),
              { minLength: 1, maxLength: 8 }
            ),
            fc.integer({ min: 1, max: 8 }),
            (requests, cap) =>
              Effect.runPromise(
                withMode(
                  frames,
                  Effect.gen(function* () {
                    const shedder = yield* LoadShedding.make({ probe: quiet, maxInFlight: cap })
                    let low = 0
                    let high = 0
                    const look = Effect.flatMap(inFlight(shedder), (n) =>
                      Effect.sync(() => {
                        low = Math.min(low, n)
                        high = Math.max(high, n)
                      })
                    )
                    const handler = (r: (typeof requests)[number]) => {
                      const step = r.guarded
                        ? Effect.uninterruptible(Effect.andThen(Effect.yieldNow, look))
                        : Effect.andThen(Effect.yieldNow, look)
                      const body = Effect.andThen(Effect.replicateEffect(step, r.steps), look)
                      const ending =
                        r.end === "succeed"
                          ? Effect.succeed(ok)
                          : r.end === "fail"
                            ? Effect.fail("bad")
                            : r.end === "die"
                              ? Effect.die("boom")
                              : r.end === "interrupt"
                                ? Effect.interrupt
                                : Effect.never
                      return Effect.andThen(body, ending)
                    }
                    const fibers = []
                    for (const r of requests) fibers.push(yield* Effect.forkChild(through(shedder, handler(r))))
                    for (let tick = 0; tick <= 6; tick++) {
                      for (const [i, r] of requests.entries()) {
                        const fiber = fibers[i]
                        if (fiber !== undefined && (r.interruptAfter === tick || (tick === 6 && r.end === "never"))) {
                          yield* Fiber.interrupt(fiber)
                        }
                      }
                      yield* Effect.yieldNow
                    }
                    for (const fiber of fibers) yield* Fiber.await(fiber)
                    const stats = yield* shedder.stats
                    return { low, high, end: yield* inFlight(shedder), admitted: stats.admitted, shed: stats.shed }
                  }).pipe(Effect.scoped)
                )
              ).then((result) => {
                assert.strictEqual(result.end, 0)
                assert.isTrue(
                  result.low >= 0 && result.high <= cap,
                  `count within [0, ${cap}]: ${result.low}..${result.high}`
                )
                // a request interrupted before it started was neither admitted nor shed
                assert.isTrue(result.admitted + result.shed <= requests.length)
              })
          ),
          { numRuns: 150 }
        ))
    }
  })
})
