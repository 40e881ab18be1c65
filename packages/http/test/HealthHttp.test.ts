import { assert, describe, it } from "@effect/vitest"
import { Health } from "@effect-resilience/core"
import { HealthHttp } from "@effect-resilience/http"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { serveLoopback } from "./server.ts"

/** A component whose status the test fixes: a source that never emits, starting at `status`. */
const fixed = (name: string, status: Health.Status, options: Health.ComponentInput = {}) =>
  Health.source(name, Stream.never, { ...options, initialStatus: status })

const withHealth = (components: ReadonlyArray<Health.Component>, options: HealthHttp.Options = {}) =>
  HealthHttp.layer(options).pipe(Layer.provide(Health.layer({ name: "api", components })))

describe("HealthHttp", () => {
  it.effect("healthy: 200 on all three paths, full report, Cache-Control: no-store", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLoopback(withHealth([fixed("db", "healthy"), fixed("cache", "healthy")]))
      for (const path of ["/health", "/health/ready", "/health/live"]) {
        const res = yield* get(path)
        assert.strictEqual(res.status, 200, path)
        assert.strictEqual(res.headers.get("cache-control"), "no-store", path)
        assert.match(res.headers.get("content-type") ?? "", /application\/json/)
      }
      const full = yield* get("/health")
      const body = full.json as HealthHttp.FullBody
      assert.strictEqual(body.status, "healthy")
      assert.strictEqual(body.name, "api")
      assert.strictEqual(body.view, "all")
      assert.deepStrictEqual(
        body.components.map((c) => [c.name, c.status, c.kind, c.critical, c.probe]),
        [
          ["db", "healthy", "source", true, "both"],
          ["cache", "healthy", "source", true, "both"]
        ]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("degraded: 200 with the status in the body by default; degradedStatus changes the code", () =>
    Effect.gen(function* () {
      const components = [fixed("db", "healthy"), fixed("search", "degraded")]
      const byDefault = yield* serveLoopback(withHealth(components))
      for (const path of ["/health", "/health/ready", "/health/live"]) {
        const res = yield* byDefault.get(path)
        assert.strictEqual(res.status, 200, path)
        assert.strictEqual((res.json as HealthHttp.FullBody).status, "degraded", path)
      }
      const strict = yield* serveLoopback(withHealth(components, { degradedStatus: 429 }))
      const res = yield* strict.get("/health")
      assert.strictEqual(res.status, 429)
      assert.strictEqual((res.json as HealthHttp.FullBody).status, "degraded")
    }).pipe(Effect.scoped)
  )

  it.effect("unhealthy: 503 (unhealthyStatus configurable); a non-critical unhealthy component only degrades", () =>
    Effect.gen(function* () {
      const critical = yield* serveLoopback(withHealth([fixed("db", "unhealthy"), fixed("cache", "healthy")]))
      const res = yield* critical.get("/health")
      assert.strictEqual(res.status, 503)
      assert.strictEqual(res.headers.get("cache-control"), "no-store")
      const body = res.json as HealthHttp.FullBody
      assert.strictEqual(body.status, "unhealthy")
      assert.deepStrictEqual(
        body.components.map((c) => [c.name, c.status]),
        [
          ["db", "unhealthy"],
          ["cache", "healthy"]
        ]
      )
      // HEAD (some load balancers probe with it) answers like GET, without the body
      const head = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${critical.port}/health/ready`, { method: "HEAD", headers: { connection: "close" } })
      )
      assert.deepStrictEqual([head.status, head.headers.get("cache-control")], [503, "no-store"])
      assert.strictEqual(yield* Effect.promise(() => head.text()), "")
      const custom = yield* serveLoopback(withHealth([fixed("db", "unhealthy")], { unhealthyStatus: 500 }))
      assert.strictEqual((yield* custom.get("/health/live")).status, 500)
      const optional = yield* serveLoopback(withHealth([fixed("recs", "unhealthy", { critical: false })]))
      const soft = yield* optional.get("/health")
      assert.strictEqual(soft.status, 200)
      assert.strictEqual((soft.json as HealthHttp.FullBody).status, "degraded")
    }).pipe(Effect.scoped)
  )

  it.effect("readiness vs liveness: each path aggregates only the components of its probe", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLoopback(
        withHealth([
          fixed("db", "unhealthy", { probe: "readiness" }),
          fixed("event-loop", "healthy", { probe: "liveness" }),
          fixed("config", "healthy")
        ])
      )
      const ready = yield* get("/health/ready")
      const live = yield* get("/health/live")
      const all = yield* get("/health")
      assert.deepStrictEqual([ready.status, live.status, all.status], [503, 200, 503])
      const names = (reply: typeof ready) => (reply.json as HealthHttp.FullBody).components.map((c) => c.name)
      assert.deepStrictEqual(names(ready), ["db", "config"])
      assert.deepStrictEqual(names(live), ["event-loop", "config"])
      assert.deepStrictEqual(
        [(ready.json as HealthHttp.FullBody).view, (live.json as HealthHttp.FullBody).view],
        ["readiness", "liveness"]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("compact bodies carry the status only; paths are configurable", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLoopback(
        withHealth([fixed("db", "degraded")], {
          detail: "compact",
          path: "/healthz",
          readinessPath: "/readyz",
          livenessPath: "/livez"
        })
      )
      for (const path of ["/healthz", "/readyz", "/livez"]) {
        const res = yield* get(path)
        assert.strictEqual(res.status, 200, path)
        assert.strictEqual(res.text, '{"status":"degraded"}', path)
        assert.strictEqual(res.headers.get("cache-control"), "no-store", path)
      }
      assert.strictEqual((yield* get("/health")).status, 404)
    }).pipe(Effect.scoped)
  )

  it.effect("full bodies: a failed check's error, its time as an ISO string, its latency in milliseconds", () =>
    Effect.gen(function* () {
      const { get } = yield* serveLoopback(
        withHealth([
          Health.check("db", Effect.fail(new Error("connection refused")), { interval: "1 minute", stagger: 0 })
        ])
      )
      yield* TestClock.adjust("1 millis") // lets the first check (at 0 ms) finish on the test clock
      const res = yield* get("/health")
      const db = (res.json as HealthHttp.FullBody).components[0]
      assert.strictEqual(res.status, 200) // one failure degrades (hysteresis)
      assert.strictEqual(db?.status, "degraded")
      assert.strictEqual(db?.lastError, "connection refused")
      // the run ended when the test clock moved 1 ms past its start (TestClock's epoch)
      assert.strictEqual(db?.lastCheck, "1970-01-01T00:00:00.001Z")
      assert.strictEqual(db?.latencyMillis, 1)
      assert.deepStrictEqual((res.json as HealthHttp.FullBody).version, 2)
      // the trend over the history, and (version 2) over the trailing trendWindow: healthy 0-1 ms, degraded from 1 ms
      assert.deepStrictEqual(db?.trend, {
        samples: 1,
        successRate: 0,
        meanLatencyMillis: 1,
        statusChanges: 0,
        window: {
          durationMillis: 300_000,
          coveredMillis: 1,
          availability: 1,
          degradedMillis: 0,
          unhealthyMillis: 0,
          statusChanges: 1,
          samples: 1,
          latencyP50Millis: 1,
          latencyP95Millis: 1,
          latencyMaxMillis: 1
        }
      })
      assert.deepStrictEqual(db?.transitions, [{ at: "1970-01-01T00:00:00.001Z", from: "healthy", to: "degraded" }])
      assert.strictEqual(db?.since, "1970-01-01T00:00:00.001Z")
    }).pipe(Effect.scoped)
  )

  it.effect("handler: one view as an app of its own, over the Health service in context", () =>
    Effect.gen(function* () {
      const app = HttpRouter.add("GET", "/status", HealthHttp.handler("readiness", { detail: "compact" }))
      const { get } = yield* serveLoopback(
        app,
        Health.layer({ components: [fixed("db", "unhealthy", { probe: "readiness" })] })
      )
      const res = yield* get("/status")
      assert.deepStrictEqual([res.status, res.json], [503, { status: "unhealthy" }])
    }).pipe(Effect.scoped)
  )

  it.effect("options: the layer fails listing every bad field; defaults fill what is left out", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(
          HealthHttp.layer({
            path: "health" as HttpRouter.PathInput,
            readinessPath: "/health/live",
            degradedStatus: 99,
            unhealthyStatus: 503.5
          }).pipe(Layer.provide([Health.layer(), HttpRouter.layer]))
        )
      )
      assert.strictEqual(error._tag, "InvalidOptions")
      assert.deepStrictEqual(
        error.issues.map((issue) => [issue.path, issue.value]),
        [
          ["path", '"health"'],
          ["degradedStatus", "99"],
          ["unhealthyStatus", "503.5"],
          ["readinessPath", '"/health/live"'] // the liveness view's default path
        ]
      )
      assert.strictEqual(
        error.message,
        'HealthHttp options are invalid: path = "health": Expected a string starting with "/"; ' +
          "degradedStatus = 99: Expected a value between 100 and 599; unhealthyStatus = 503.5: Expected an integer; " +
          `readinessPath = "/health/live": Expected a path other than livenessPath's`
      )
      const resolved = yield* HealthHttp.validateOptions({ detail: "compact", degradedStatus: undefined })
      assert.deepStrictEqual(resolved, { ...HealthHttp.defaults, detail: "compact" })
      assert.deepStrictEqual(
        HealthHttp.optionsDocs.map((doc) => [doc.name, doc.default]),
        [
          ["path", '"/health"'],
          ["readinessPath", '"/health/ready"'],
          ["livenessPath", '"/health/live"'],
          ["degradedStatus", "200"],
          ["unhealthyStatus", "503"],
          ["detail", '"full"']
        ]
      )
    })
  )
})
