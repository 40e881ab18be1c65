import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Health, Options, RateLimiter } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { TestClock } from "effect/testing"

/** Exact ticks: no jitter and no stagger (the first run at once, then every interval); jitter has tests of its own. */
const exact = { jitter: 0, stagger: 0 } as const

/** Lets the forked checks and sources run to their next suspension (a run takes a few fiber hops). */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 25; i++) yield* Effect.yieldNow
})

/** Lets every fiber reach its sleep, moves the clock, then lets what woke up finish. */
const advance = (duration: Duration.Input) =>
  settle.pipe(Effect.andThen(TestClock.adjust(duration)), Effect.andThen(settle))

/** A check whose outcome the test sets: `"ok"`, `"fail"`, or a delay in milliseconds before succeeding. */
const controlled = () => {
  const control = { next: "ok" as "ok" | "fail" | number, runs: 0 }
  const run = Effect.suspend(() => {
    control.runs++
    const next = control.next
    if (next === "ok") return Effect.void
    if (next === "fail") return Effect.fail(new Error("connection refused"))
    return Effect.sleep(Duration.millis(next))
  })
  return { control, run }
}

const componentOf = (report: Health.Report, name: string): Health.ComponentReport => {
  const found = report.components.find((c) => c.name === name)
  if (found === undefined) throw new Error(`no component ${name}`)
  return found
}

/** The status of one component after each adjustment of the clock by `step`. */
const statuses = (health: Health.Health, name: string) =>
  Effect.map(health.status, (report) => componentOf(report, name).status)

/** A source the test feeds by hand. */
const manualSource = Effect.gen(function* () {
  const queue = yield* Queue.unbounded<Health.Status>()
  return { queue, statuses: Stream.fromQueue(queue) }
})

/** The value of a snapshotted metric series: a counter's count, a gauge's value, a histogram's count. */
const metricValue = (
  snapshots: ReadonlyArray<Metric.Metric.Snapshot>,
  id: string,
  attributes: Record<string, string>
): number | undefined => {
  const s = snapshots.find((s) => s.id === id && Object.entries(attributes).every(([k, v]) => s.attributes?.[k] === v))
  if (s === undefined) return undefined
  const state: object = s.state
  if ("count" in state) return Number(state.count)
  if ("value" in state) return Number(state.value)
  return undefined
}

describe("Health checks", () => {
  it.effect("hysteresis: degraded at the 1st and 2nd failure, unhealthy at the 3rd; out after 2 successes", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      control.next = "fail"
      const health = yield* Health.make({ ...exact, interval: "1 second", components: [Health.check("db", run)] })
      const seen: Array<Health.Status> = []
      yield* settle
      seen.push(yield* statuses(health, "db")) // t=0: 1st failure
      for (let i = 0; i < 3; i++) {
        yield* advance("1 second")
        seen.push(yield* statuses(health, "db"))
      }
      assert.deepStrictEqual(seen, ["degraded", "degraded", "unhealthy", "unhealthy"])
      const failing = componentOf(yield* health.status, "db")
      assert.strictEqual(failing.consecutiveFailures, 4)
      assert.strictEqual(failing.lastError, "connection refused")
      control.next = "ok"
      const back: Array<Health.Status> = []
      for (let i = 0; i < 3; i++) {
        yield* advance("1 second")
        back.push(yield* statuses(health, "db"))
      }
      // 1 success: still unhealthy; 2: healthy (both fast)
      assert.deepStrictEqual(back, ["unhealthy", "healthy", "healthy"])
      const healed = componentOf(yield* health.status, "db")
      assert.strictEqual(healed.consecutiveFailures, 0)
      assert.strictEqual(healed.consecutiveSuccesses, 3)
      assert.strictEqual(healed.lastError, "connection refused") // kept after recovery
      assert.strictEqual(healed.checks, 7)
      assert.strictEqual(healed.failures, 4)
      assert.strictEqual(control.runs, 7)
    }).pipe(Effect.scoped)
  )

  it.effect("a degraded component (one failure) needs healthyAfter fast successes to be healthy again", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      control.next = "fail"
      const health = yield* Health.make({
        ...exact,
        interval: "1 second",
        components: [Health.check("db", run, { healthyAfter: 3 })]
      })
      yield* settle
      control.next = "ok"
      const seen: Array<Health.Status> = [yield* statuses(health, "db")]
      for (let i = 0; i < 3; i++) {
        yield* advance("1 second")
        seen.push(yield* statuses(health, "db"))
      }
      assert.deepStrictEqual(seen, ["degraded", "degraded", "degraded", "healthy"])
    }).pipe(Effect.scoped)
  )

  it.effect("a success slower than slowThreshold makes the component degraded; the latency is reported", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      control.next = 300
      const health = yield* Health.make({
        ...exact,
        interval: "1 second",
        components: [Health.check("api", run, { slowThreshold: "200 millis" })]
      })
      yield* advance("300 millis")
      const slow = componentOf(yield* health.status, "api")
      assert.strictEqual(slow.status, "degraded")
      assert.strictEqual(slow.failures, 0)
      assert.deepStrictEqual(slow.latency, Duration.millis(300))
      control.next = 100
      yield* advance("800 millis") // t=1.1 s: the 2nd run ends at 1.1 s
      yield* advance("1 second") // the 3rd ends at 2.1 s
      const fast = componentOf(yield* health.status, "api")
      assert.strictEqual(fast.status, "healthy")
      assert.deepStrictEqual(fast.latency, Duration.millis(100))
      assert.deepStrictEqual(fast.trend.meanLatency, Duration.millis((300 + 100 + 100) / 3))
      assert.strictEqual(fast.trend.successRate, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("a hanging check is interrupted at its timeout and counts as a failure (a timeout)", () =>
    Effect.gen(function* () {
      const interrupted = yield* Deferred.make<void>()
      const hang = Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))
      const health = yield* Health.make({
        ...exact,
        interval: "10 seconds",
        timeout: "2 seconds",
        components: [Health.check("queue", hang)]
      })
      yield* advance("1999 millis")
      assert.strictEqual(componentOf(yield* health.status, "queue").checks, 0)
      yield* advance("1 millis")
      const report = componentOf(yield* health.status, "queue")
      assert.deepStrictEqual(
        [report.status, report.checks, report.failures, report.timeouts, report.lastError],
        ["degraded", 1, 1, 1, "timed out after 2s"]
      )
      assert.deepStrictEqual(report.latency, Duration.seconds(2))
      yield* Deferred.await(interrupted)
    }).pipe(Effect.scoped)
  )

  it.effect("a check never overlaps itself: ticks while it runs are skipped and counted", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      control.next = 2500
      let inFlight = 0
      let most = 0
      const tracked = Effect.acquireUseRelease(
        Effect.sync(() => {
          inFlight++
          most = Math.max(most, inFlight)
        }),
        () => run,
        () => Effect.sync(() => inFlight--)
      )
      const health = yield* Health.make({
        ...exact,
        interval: "1 second",
        timeout: "5 seconds",
        slowThreshold: "10 seconds",
        components: [Health.check("slow", tracked)]
      })
      // runs start at 0 s (ticks at 1 s and 2 s skipped), 3 s (4 s, 5 s skipped)
      yield* advance("5750 millis")
      const report = componentOf(yield* health.status, "slow")
      assert.deepStrictEqual([control.runs, report.checks, report.skipped, report.failures], [2, 2, 4, 0])
      assert.strictEqual(report.status, "healthy")
      assert.strictEqual(most, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("a check that ignores interruption: later ticks count as timeouts until it ends, never a 2nd run", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      control.next = 9_500
      const health = yield* Health.make({
        ...exact,
        interval: "1 second",
        timeout: "1500 millis",
        components: [Health.check("stuck", Effect.uninterruptible(run))]
      })
      yield* advance("1500 millis") // tick 1 s skipped; the timeout at 1.5 s
      const first = componentOf(yield* health.status, "stuck")
      assert.deepStrictEqual([first.status, first.timeouts, first.skipped], ["degraded", 1, 1])
      yield* advance("1500 millis") // ticks at 2 s and 3 s: still running past its timeout
      const later = componentOf(yield* health.status, "stuck")
      assert.deepStrictEqual([later.status, later.timeouts, later.skipped, control.runs], ["unhealthy", 3, 3, 1])
      assert.deepStrictEqual(later.lastError, "still running past its timeout (1s 500ms)")
      assert.deepStrictEqual(later.latency, Duration.seconds(3)) // the run started at 0 s
      control.next = "ok"
      yield* advance("7500 millis") // it ends at 9.5 s (its result dropped: it timed out); a run at 10 s
      const resumed = componentOf(yield* health.status, "stuck")
      assert.deepStrictEqual(
        [resumed.status, resumed.timeouts, resumed.skipped, resumed.checks, control.runs],
        ["unhealthy", 9, 9, 10, 2]
      )
      yield* advance("1 second") // the 2nd success in a row at 11 s
      assert.strictEqual(yield* statuses(health, "stuck"), "healthy")
    }).pipe(Effect.scoped)
  )

  it.effect("closing the scope interrupts the running checks and stops the schedule", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const interrupted = yield* Deferred.make<void>()
      let runs = 0
      const check = Effect.sync(() => runs++).pipe(
        Effect.andThen(Effect.never),
        Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
      )
      yield* Health.make({
        ...exact,
        interval: "1 second",
        timeout: "1 minute",
        components: [Health.check("c", check)]
      }).pipe(Scope.provide(scope))
      yield* settle
      assert.strictEqual(runs, 1)
      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(interrupted)
      yield* advance("1 minute")
      assert.strictEqual(runs, 1)
    })
  )

  it.effect("a defect counts as a failure with its message", () =>
    Effect.gen(function* () {
      const health = yield* Health.make({ ...exact, components: [Health.check("c", Effect.die(new Error("boom")))] })
      yield* settle
      const report = componentOf(yield* health.status, "c")
      assert.deepStrictEqual([report.status, report.lastError, report.failures], ["degraded", "boom", 1])
    }).pipe(Effect.scoped)
  )
})

describe("Health aggregation", () => {
  it.effect("the whole is the worst component; a non-critical unhealthy one makes it only degraded", () =>
    Effect.gen(function* () {
      const cache = yield* manualSource
      const db = yield* manualSource
      const health = yield* Health.make({
        ...exact,
        components: [Health.source("cache", cache.statuses, { critical: false }), Health.source("db", db.statuses)]
      })
      const overall = Effect.map(health.status, (r) => r.status)
      yield* settle
      assert.strictEqual(yield* overall, "healthy")
      yield* Queue.offer(cache.queue, "unhealthy")
      yield* settle
      assert.strictEqual(yield* overall, "degraded")
      yield* Queue.offer(db.queue, "degraded")
      yield* settle
      assert.strictEqual(yield* overall, "degraded")
      yield* Queue.offer(db.queue, "unhealthy")
      yield* settle
      assert.strictEqual(yield* overall, "unhealthy")
      const report = yield* health.status
      assert.deepStrictEqual(
        report.components.map((c) => [c.name, c.kind, c.status, c.critical]),
        [
          ["cache", "source", "unhealthy", false],
          ["db", "source", "unhealthy", true]
        ]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("readiness and liveness views take the components tagged for them", () =>
    Effect.gen(function* () {
      const health = yield* Health.make({
        ...exact,
        components: [
          Health.source("database", Stream.succeed("unhealthy"), { probe: "readiness" }),
          Health.source("worker", Stream.succeed("degraded"), { probe: "liveness" }),
          Health.source("loop", Stream.succeed("healthy"))
        ]
      })
      yield* settle
      const all = yield* health.status
      const readiness = yield* health.readiness
      const liveness = yield* health.liveness
      assert.deepStrictEqual(
        [all.view, all.status, all.components.map((c) => c.name)],
        ["all", "unhealthy", ["database", "worker", "loop"]]
      )
      assert.deepStrictEqual(
        [readiness.view, readiness.status, readiness.components.map((c) => c.name)],
        ["readiness", "unhealthy", ["database", "loop"]]
      )
      assert.deepStrictEqual(
        [liveness.view, liveness.status, liveness.components.map((c) => c.name)],
        ["liveness", "degraded", ["worker", "loop"]]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("a failing source is unhealthy with its error; register adds components at run time", () =>
    Effect.gen(function* () {
      const health = yield* Health.make({ ...exact, components: [] })
      assert.strictEqual((yield* health.status).status, "healthy")
      yield* health.register(Health.source("feed", Stream.fail(new Error("disconnected"))))
      yield* settle
      const feed = componentOf(yield* health.status, "feed")
      assert.deepStrictEqual([feed.status, feed.lastError], ["unhealthy", "disconnected"])
      // built before "feed" was registered, run after: the name is checked when it runs
      const late = health.register(Health.check("late", Effect.void))
      yield* health.register(Health.check("late", Effect.void))
      const lateError = yield* Effect.flip(late)
      assert.deepStrictEqual(
        lateError.issues.map((i) => i.path),
        ["components.late"]
      )
      // two at once: one wins
      const both = yield* Effect.all(
        [health.register(Health.check("twin", Effect.void)), health.register(Health.check("twin", Effect.void))],
        { concurrency: "unbounded", mode: "result" }
      )
      assert.deepStrictEqual(
        both.map((r) => r._tag),
        ["Success", "Failure"]
      )
      const duplicate = yield* Effect.flip(health.register(Health.check("feed", Effect.void)))
      assert.deepStrictEqual(
        duplicate.issues.map((i) => [i.path, i.value, i.message]),
        [["components.feed", '"feed"', "Expected a unique, non-empty component name"]]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("initialStatus: a component can start unhealthy until its checks pass", () =>
    Effect.gen(function* () {
      const health = yield* Health.make({
        ...exact,
        interval: "1 second",
        initialStatus: "unhealthy",
        components: [Health.check("db", Effect.void)]
      })
      assert.strictEqual((yield* health.readiness).status, "unhealthy")
      yield* settle
      assert.strictEqual((yield* health.readiness).status, "unhealthy") // 1 success of 2
      yield* advance("1 second")
      assert.strictEqual((yield* health.readiness).status, "healthy")
    }).pipe(Effect.scoped)
  )
})

describe("Health.fromCircuitBreaker", () => {
  it.effect("follows the circuit's health: its current health, then each HealthChanged", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "payments" })
      yield* breaker.forceOpen()
      const health = yield* Health.make({
        ...exact,
        components: [Health.fromCircuitBreaker(breaker), Health.fromCircuitBreaker(breaker, { key: "eu" })]
      })
      yield* settle
      const read = Effect.map(health.status, (r) => r.components.map((c) => [c.name, c.status]))
      assert.deepStrictEqual(yield* read, [
        ["payments", "unhealthy"],
        ["payments:eu", "healthy"]
      ])
      yield* breaker.reset()
      yield* breaker.forceOpen("eu")
      yield* settle
      assert.deepStrictEqual(yield* read, [
        ["payments", "healthy"],
        ["payments:eu", "unhealthy"]
      ])
      yield* breaker.reset("eu")
      yield* settle
      assert.strictEqual((yield* health.status).status, "healthy")
    }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )
})

describe("Health.fromCircuitBreaker through calls", () => {
  it.effect("a failure rate at half the threshold is degraded (no transition), an opening unhealthy", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "search",
        failureRateThreshold: 0.5,
        slidingWindowSize: 4,
        minimumCalls: 4
      })
      const health = yield* Health.make({ ...exact, components: [Health.fromCircuitBreaker(breaker)] })
      yield* settle
      const status = Effect.map(health.status, (r) => r.status)
      const call = (ok: boolean) =>
        Effect.exit((ok ? Effect.void : Effect.fail("boom")).pipe(CircuitBreaker.protect(breaker)))
      for (const ok of [true, true, true, false]) yield* call(ok) // 1 failure in 4: 25%, half of 50%
      yield* settle
      assert.strictEqual(yield* status, "degraded")
      yield* call(false) // 2 in the last 4: 50%, the circuit opens
      yield* settle
      assert.strictEqual(yield* status, "unhealthy")
      const report = componentOf(yield* health.status, "search")
      assert.deepStrictEqual(
        report.history.map((s) => s.status),
        ["healthy", "degraded", "unhealthy"]
      )
    }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
  )
})

describe("Health.fromRateLimiter", () => {
  it.effect("follows the limiter's rejection alert: whenAlerting from AlertTriggered, healthy from AlertResolved", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        name: "api",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 hour" }],
        alertRejectionRate: 0.5,
        alertFor: "2 seconds"
      })
      const health = yield* Health.make({
        ...exact,
        components: [Health.fromRateLimiter(limiter, { whenAlerting: "unhealthy", critical: false })]
      })
      yield* settle
      const read = Effect.map(health.status, (r) => [r.status, componentOf(r, "api").status])
      assert.deepStrictEqual(yield* read, ["healthy", "healthy"])
      // the limiter measures the rate every tenth of alertFor (200 ms): refuse most requests in each
      for (let tick = 0; tick < 12; tick++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume("hot")
        yield* advance("200 millis")
      }
      assert.deepStrictEqual(yield* read, ["degraded", "unhealthy"]) // not critical: the whole is degraded
      for (let tick = 0; tick < 2; tick++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume(`fresh-${tick}-${i}`)
        yield* advance("200 millis")
      }
      assert.deepStrictEqual(yield* read, ["healthy", "healthy"])
    }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()))
  )

  it.effect("an alert raised before the source started counts from the start", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        name: "api",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 hour" }],
        alertRejectionRate: 0.5,
        alertFor: "2 seconds"
      })
      for (let tick = 0; tick < 12; tick++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume("hot")
        yield* advance("200 millis")
      }
      assert.isTrue((yield* limiter.alert).alerting)
      const health = yield* Health.make({ ...exact, components: [Health.fromRateLimiter(limiter)] })
      yield* settle
      assert.strictEqual(componentOf(yield* health.status, "api").status, "degraded")
    }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()))
  )
})

describe("Health trends and flapping", () => {
  it.effect("the history is bounded; the trend is the success rate and mean latency over it", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      const health = yield* Health.make({
        ...exact,
        interval: "1 second",
        history: 3,
        components: [Health.check("db", run)]
      })
      yield* settle // ok
      control.next = "fail"
      yield* advance("1 second") // fail
      control.next = "ok"
      yield* advance("1 second") // ok
      yield* advance("1 second") // ok
      const report = componentOf(yield* health.status, "db")
      assert.strictEqual(report.history.length, 3)
      assert.deepStrictEqual(
        report.history.map((s) => [s.ok, s.status]),
        [
          [false, "degraded"],
          [true, "degraded"],
          [true, "healthy"]
        ]
      )
      assert.deepStrictEqual(report.trend.samples, 3)
      assert.strictEqual(report.trend.successRate, 2 / 3)
      assert.deepStrictEqual(report.trend.meanLatency, Duration.zero)
      assert.strictEqual(report.trend.statusChanges, 1)
      assert.strictEqual(report.checks, 4)
      // the status changes, kept apart from the samples: degraded at 1 s, healthy at 3 s
      assert.deepStrictEqual(
        report.transitions.map((t) => [DateTime.toEpochMillis(t.at), t.from, t.to]),
        [
          [1_000, "healthy", "degraded"],
          [3_000, "degraded", "healthy"]
        ]
      )
      assert.deepStrictEqual(report.since === undefined ? undefined : DateTime.toEpochMillis(report.since), 3_000)
      assert.deepStrictEqual(
        report.lastCheck === undefined ? undefined : DateTime.toEpochMillis(report.lastCheck),
        3_000
      )
    }).pipe(Effect.scoped)
  )

  it.effect("more than flapThreshold changes within flapWindow is flapping: degraded until they age out", () =>
    Effect.gen(function* () {
      const feed = yield* manualSource
      const health = yield* Health.make({
        ...exact,
        interval: "1 second",
        flapThreshold: 2,
        flapWindow: "1 minute",
        components: [Health.source("link", feed.statuses)]
      })
      const events = yield* health.subscribe
      const read = Effect.map(health.status, (r) => {
        const c = componentOf(r, "link")
        return [c.status, c.flapping]
      })
      for (const status of ["unhealthy", "healthy"] as const) {
        yield* Queue.offer(feed.queue, status)
        yield* advance("1 second")
      }
      assert.deepStrictEqual(yield* read, ["healthy", false]) // 2 changes: not more than 2
      yield* Queue.offer(feed.queue, "unhealthy")
      yield* advance("1 second")
      yield* Queue.offer(feed.queue, "healthy")
      yield* advance("1 second")
      assert.deepStrictEqual(yield* read, ["degraded", true]) // healthy, but flapping
      const flapping = (yield* Queue.takeAll(events)).filter((e) => e._tag === "Flapping")
      assert.deepStrictEqual(
        flapping.map((e) => [e.component, e.changes]),
        [["link", 3]]
      )
      yield* advance("1 minute")
      assert.deepStrictEqual(yield* read, ["healthy", false])
    }).pipe(Effect.scoped)
  )
})

describe("Health trends over a window", () => {
  it.effect(
    "availability, status changes and check latency p50/p95/max over trendWindow; health.trend; the gauges",
    () =>
      Effect.gen(function* () {
        const feed = yield* manualSource
        const latencies = [30, 10, 100, 20, 90, 40, 80, 50, 70, 60]
        let runs = 0
        const db = Effect.suspend(() => Effect.sleep(Duration.millis(latencies[runs++ % latencies.length] as number)))
        const health = yield* Health.make({
          ...exact,
          name: "trends",
          interval: "1 second",
          trendWindow: "10 seconds",
          components: [Health.source("link", feed.statuses), Health.check("db", db)]
        })
        yield* advance("2 seconds")
        yield* Queue.offer(feed.queue, "unhealthy") // at 2 s
        yield* settle
        for (let i = 0; i < 3; i++) yield* advance("1 second")
        yield* Queue.offer(feed.queue, "healthy") // at 5 s
        yield* settle
        for (let i = 0; i < 5; i++) yield* advance("1 second") // now 10 s
        const report = yield* health.status
        assert.strictEqual(report.version, 2)
        assert.strictEqual(Health.reportVersion, 2)
        const window = (trend: Health.Trend) => ({
          covered: Duration.toMillis(trend.window.covered),
          availability: trend.window.availability,
          unhealthy: Duration.toMillis(trend.window.unhealthy),
          statusChanges: trend.window.statusChanges,
          samples: trend.window.samples,
          p50: trend.window.latencyP50 === undefined ? undefined : Duration.toMillis(trend.window.latencyP50),
          p95: trend.window.latencyP95 === undefined ? undefined : Duration.toMillis(trend.window.latencyP95),
          max: trend.window.latencyMax === undefined ? undefined : Duration.toMillis(trend.window.latencyMax)
        })
        const link = componentOf(report, "link").trend
        // healthy 0-2 s and 5-10 s, unhealthy 2-5 s: 7 s of 10
        assert.deepStrictEqual(window(link), {
          covered: 10_000,
          availability: 0.7,
          unhealthy: 3_000,
          statusChanges: 2,
          samples: 2,
          p50: undefined,
          p95: undefined,
          max: undefined
        })
        assert.strictEqual(Duration.toMillis(link.window.duration), 10_000)
        assert.strictEqual(link.flapping, false)
        // the runs at 0 s … 9 s took 10 ms … 100 ms (the run at 10 s has not ended): nearest-rank percentiles
        assert.deepStrictEqual(window(componentOf(report, "db").trend), {
          covered: 10_000,
          availability: 1,
          unhealthy: 0,
          statusChanges: 0,
          samples: 10,
          p50: 50,
          p95: 100,
          max: 100
        })
        // the same trend as an effect of its own; None for a name not registered
        assert.deepStrictEqual(yield* health.trend("link"), Option.some(link))
        assert.deepStrictEqual(yield* health.trend("nope"), Option.none())
        // the gauges, computed from the ring when read
        const gauges = Effect.map(Metric.snapshot, (snapshots) => {
          const of = (id: string, component: string) =>
            metricValue(snapshots, id, { "resilience.name": "trends", "resilience.component": component })
          return {
            availability: of("resilience.health.trend.availability", "link"),
            changes: of("resilience.health.trend.status_changes", "link"),
            flapping: of("resilience.health.trend.flapping", "link"),
            p50: of("resilience.health.trend.latency.p50", "db"),
            p95: of("resilience.health.trend.latency.p95", "db"),
            max: of("resilience.health.trend.latency.max", "db"),
            sourceLatency: of("resilience.health.trend.latency.p50", "link")
          }
        })
        assert.deepStrictEqual(yield* gauges, {
          availability: 0.7,
          changes: 2,
          flapping: 0,
          p50: 0.05,
          p95: 0.1,
          max: 0.1,
          sourceLatency: undefined // a source has no check durations: no latency series
        })
        // the window trails the clock without new results: at 14 s it holds 1 s unhealthy (4-5 s) and one change
        yield* TestClock.adjust("4 seconds")
        assert.deepStrictEqual([(yield* gauges).availability, (yield* gauges).changes], [0.9, 1])
        yield* TestClock.adjust("6 seconds")
        const later = Option.getOrThrow(yield* health.trend("link"))
        assert.deepStrictEqual([later.window.availability, later.window.statusChanges, later.window.samples], [1, 0, 0])
      }).pipe(Effect.scoped)
  )

  it.effect("memory is bounded by history: a window longer than the ring holds is covered from its oldest change", () =>
    Effect.gen(function* () {
      const feed = yield* manualSource
      const health = yield* Health.make({
        ...exact,
        history: 2,
        trendWindow: "1 minute",
        components: [Health.source("link", feed.statuses)]
      })
      for (const status of ["unhealthy", "healthy", "unhealthy", "healthy"] as const) {
        yield* advance("1 second")
        yield* Queue.offer(feed.queue, status) // at 1 s, 2 s, 3 s, 4 s
        yield* settle
      }
      yield* advance("6 seconds") // now 10 s
      const link = componentOf(yield* health.status, "link")
      assert.deepStrictEqual([link.history.length, link.transitions.length], [2, 2])
      // the ring dropped the changes at 1 s and 2 s: known from 2 s on, unhealthy 3-4 s
      assert.deepStrictEqual(
        [Duration.toMillis(link.trend.window.covered), link.trend.window.availability, link.trend.window.statusChanges],
        [8_000, 7 / 8, 2]
      )
    }).pipe(Effect.scoped)
  )
})

describe("Health jitter", () => {
  /** A registry of `n` checks with the same interval, recording when each run starts. */
  const herd = (n: number, options: Health.ThresholdInput) =>
    Effect.gen(function* () {
      const starts = new Map<string, Array<number>>()
      const components = Array.from({ length: n }, (_, i) => {
        const name = `c${i}`
        starts.set(name, [])
        return Health.check(
          name,
          Effect.map(Clock.currentTimeMillis, (now) => starts.get(name)?.push(now))
        )
      })
      yield* Health.make({ interval: "10 seconds", ...options, components })
      return starts
    })

  /** Runs `n` checks for `seconds`, returning each check's run start times (from the start). */
  const runHerd = (n: number, seconds: number, options: Health.ThresholdInput) =>
    Effect.gen(function* () {
      const start = yield* Clock.currentTimeMillis
      const starts = yield* herd(n, options)
      yield* settle
      for (let i = 0; i < seconds; i++) yield* advance("1 second")
      return Array.from(starts.values(), (times) => times.map((t) => t - start))
    }).pipe(Effect.scoped)

  it.effect("without jitter every check probes at the same instants: the thundering herd", () =>
    Effect.gen(function* () {
      const runs = yield* runHerd(20, 30, { jitter: 0, stagger: 0 })
      for (const times of runs) assert.deepStrictEqual(times, [0, 10_000, 20_000, 30_000])
    })
  )

  it.effect("stagger spreads the first runs across the interval and jitter moves each wait by up to ±10 %", () =>
    Effect.gen(function* () {
      const runs = yield* runHerd(20, 40, { stagger: 1, jitter: 0.1 }).pipe(Random.withSeed("health-jitter"))
      const firsts = runs.map((times) => times[0] as number)
      // the first runs fall all over the first interval: in at least 6 of its ten seconds, none at the same instant
      for (const first of firsts) assert.isTrue(first >= 0 && first < 10_000, `${first}`)
      assert.isAtLeast(new Set(firsts.map((t) => Math.floor(t / 1_000))).size, 6)
      assert.strictEqual(new Set(firsts).size, firsts.length)
      // each later wait is the interval ± 10 %, and they differ (drawn for each wait)
      const gaps = runs.flatMap((times) => times.slice(1).map((t, i) => t - (times[i] as number)))
      assert.isAtLeast(gaps.length, 3 * 20)
      for (const gap of gaps) assert.isTrue(gap >= 9_000 && gap <= 11_000, `${gap}`)
      assert.isAtLeast(new Set(gaps).size, gaps.length / 2)
      // deterministic on Effect's Random: the same seed gives the same schedule
      const again = yield* runHerd(20, 40, { stagger: 1, jitter: 0.1 }).pipe(Random.withSeed("health-jitter"))
      assert.deepStrictEqual(again, runs)
    })
  )

  it.effect(
    "the waits follow the draws exactly: first at stagger × draw × interval, then interval × (1 + jitter × (2 × draw − 1))",
    () =>
      Effect.gen(function* () {
        const draws = [0.5, 0, 0.75]
        let i = 0
        const scripted: Random.Random = {
          nextDoubleUnsafe: () => draws[i++ % draws.length] as number,
          nextIntUnsafe: () => 0
        }
        const [times] = yield* runHerd(1, 30, { stagger: 0.5, jitter: 0.2 }).pipe(
          Effect.provideService(Random.Random, scripted)
        )
        // 0.5 × 0.5 × 10 s = 2.5 s; then 10 s × 0.8 = 8 s; then 10 s × 1.1 = 11 s; then 10 s × 1.0 = 10 s
        assert.deepStrictEqual(times, [2_500, 10_500, 21_500])
      })
  )
})

describe("Health events and metrics", () => {
  it.effect("StatusChanged per component and per view, CheckFailed per failure", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      control.next = "fail"
      const health = yield* Health.make({
        ...exact,
        name: "api",
        interval: "1 second",
        unhealthyAfter: 2,
        components: [Health.check("db", run, { probe: "readiness" })]
      })
      const events = yield* health.subscribe
      yield* advance("1 second")
      const seen = (yield* Queue.takeAll(events)).map((e) =>
        e._tag === "CheckFailed"
          ? `${e._tag} ${e.component} ${e.error} ${e.consecutiveFailures} ${e.timedOut}`
          : e._tag === "StatusChanged"
            ? `${e._tag} ${e.component} ${e.from}->${e.to}`
            : e._tag === "OverallStatusChanged"
              ? `${e._tag} ${e.view} ${e.from}->${e.to}`
              : e._tag
      )
      assert.deepStrictEqual(seen, [
        "StatusChanged db healthy->degraded",
        "OverallStatusChanged all healthy->degraded",
        "OverallStatusChanged readiness healthy->degraded",
        "CheckFailed db connection refused 1 false",
        "StatusChanged db degraded->unhealthy",
        "OverallStatusChanged all degraded->unhealthy",
        "OverallStatusChanged readiness degraded->unhealthy",
        "CheckFailed db connection refused 2 false"
      ])
    }).pipe(Effect.scoped)
  )

  it.effect("each run is a Health.check span with the registry, the component and the outcome", () =>
    Effect.gen(function* () {
      const spans: Array<Tracer.NativeSpan> = []
      const tracer = Tracer.make({
        span(options) {
          const span = new Tracer.NativeSpan(options)
          spans.push(span)
          return span
        }
      })
      const { control, run } = controlled()
      yield* Health.make({ ...exact, name: "api", interval: "1 second", components: [Health.check("db", run)] }).pipe(
        Effect.withTracer(tracer)
      )
      yield* settle
      control.next = "fail"
      yield* advance("1 second")
      assert.deepStrictEqual(
        spans.map((span) => [
          span.name,
          span.attributes.get("resilience.name"),
          span.attributes.get("resilience.component"),
          span.attributes.get("resilience.outcome"),
          span.status._tag
        ]),
        [
          ["Health.check", "api", "db", "success", "Ended"],
          ["Health.check", "api", "db", "failure", "Ended"]
        ]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("metrics: status gauges, check durations, failures by reason, skipped ticks", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      control.next = "fail"
      const health = yield* Health.make({
        ...exact,
        name: "metrics-test",
        interval: "1 second",
        components: [Health.check("db", run), Health.check("hang", Effect.never, { timeout: "500 millis" })]
      })
      yield* advance("2 seconds")
      const snapshots = yield* Metric.snapshot
      const name = { "resilience.name": "metrics-test" }
      const db = { ...name, "resilience.component": "db" }
      const hang = { ...name, "resilience.component": "hang" }
      assert.deepStrictEqual(
        {
          dbStatus: metricValue(snapshots, "resilience.health.status", db),
          hangStatus: metricValue(snapshots, "resilience.health.status", hang),
          overall: metricValue(snapshots, "resilience.health.overall", name),
          dbDurations: metricValue(snapshots, "resilience.health.check.duration", db),
          dbErrors: metricValue(snapshots, "resilience.health.check.failures", { ...db, "resilience.reason": "error" }),
          hangTimeouts: metricValue(snapshots, "resilience.health.check.failures", {
            ...hang,
            "resilience.reason": "timeout"
          }),
          skipped: metricValue(snapshots, "resilience.health.check.skipped", db)
        },
        // "hang" timed out at 0.5 s and 1.5 s (its 3rd run times out at 2.5 s): degraded
        { dbStatus: 2, hangStatus: 1, overall: 2, dbDurations: 3, dbErrors: 3, hangTimeouts: 2, skipped: 0 }
      )
      assert.strictEqual(health.name, "metrics-test")
    }).pipe(Effect.scoped)
  )
})

describe("Health options", () => {
  it.effect("defaults", () =>
    Effect.gen(function* () {
      const { components, options } = yield* Health.validateOptions({ components: [Health.check("a", Effect.void)] })
      assert.deepStrictEqual(
        {
          name: options.name,
          interval: Duration.toMillis(options.interval),
          timeout: Duration.toMillis(options.timeout),
          unhealthyAfter: options.unhealthyAfter,
          healthyAfter: options.healthyAfter,
          slowThreshold: Duration.toMillis(options.slowThreshold),
          history: options.history,
          flapThreshold: options.flapThreshold,
          flapWindow: Duration.toMillis(options.flapWindow),
          trendWindow: Duration.toMillis(options.trendWindow),
          jitter: options.jitter,
          stagger: options.stagger,
          initialStatus: options.initialStatus
        },
        {
          name: "default",
          interval: 10_000,
          timeout: 2_000,
          unhealthyAfter: 3,
          healthyAfter: 2,
          slowThreshold: 1_000,
          history: 60,
          flapThreshold: 4,
          flapWindow: 300_000,
          trendWindow: 300_000,
          jitter: 0.1,
          stagger: 0.1,
          initialStatus: "healthy"
        }
      )
      assert.deepStrictEqual(
        components.map((c) => [c.critical, c.probe, Duration.toMillis(c.interval)]),
        [[true, "both", 10_000]]
      )
      // a field given as undefined takes its default
      const undefinedFields = yield* Health.validateOptions({
        interval: undefined,
        unhealthyAfter: undefined,
        components: [Health.check("a", Effect.void, { critical: undefined, timeout: undefined })]
      })
      assert.deepStrictEqual(
        [
          Duration.toMillis(undefinedFields.options.interval),
          undefinedFields.options.unhealthyAfter,
          undefinedFields.components[0]?.critical,
          undefinedFields.components.map((c) => Duration.toMillis(c.timeout))
        ],
        [10_000, 3, true, [2_000]]
      )
      // the minimum valid values
      const min = yield* Health.validateOptions({
        unhealthyAfter: 1,
        healthyAfter: 1,
        history: 1,
        flapThreshold: 0,
        interval: 1,
        timeout: 1,
        flapWindow: 1,
        trendWindow: 1,
        slowThreshold: 0,
        jitter: 0,
        stagger: 0
      })
      assert.strictEqual(min.options.history, 1)
      // and the maximum ones: a ring of 10000, jitter and stagger of a whole interval
      const max = yield* Health.validateOptions({ history: 10_000, jitter: 1, stagger: 1 })
      assert.deepStrictEqual([max.options.history, max.options.jitter, max.options.stagger], [10_000, 1, 1])
      // a component overrides them
      const own = yield* Health.validateOptions({
        jitter: 0.2,
        components: [Health.check("a", Effect.void, { jitter: 0, stagger: 1, trendWindow: "1 hour" })]
      })
      assert.deepStrictEqual(
        own.components.map((c) => [c.jitter, c.stagger, Duration.toMillis(c.trendWindow)]),
        [[0, 1, 3_600_000]]
      )
    })
  )

  it.effect("invalid options fail with one InvalidOptions listing every bad field and value, components included", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Health.validateOptions({
          interval: 0,
          timeout: "soon" as Duration.Input,
          unhealthyAfter: 0,
          healthyAfter: 1.5,
          history: 10_001,
          jitter: 1.5,
          stagger: -0.1,
          trendWindow: 0,
          flapThreshold: -1,
          initialStatus: "unknown" as Health.Status,
          components: [
            Health.check("db", Effect.void, { timeout: 0, critical: "yes" as unknown as boolean }),
            Health.source("db", Stream.empty, { probe: "startup" as Health.Probe })
          ]
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.strictEqual(error.pattern, "Health")
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["timeout", '"soon"', "Expected a non-negative duration"],
          ["jitter", "1.5", "Expected a value between 0 and 1"],
          ["stagger", "-0.1", "Expected a value between 0 and 1"],
          ["unhealthyAfter", "0", "Expected a value greater than or equal to 1"],
          ["healthyAfter", "1.5", "Expected an integer"],
          ["history", "10001", "Expected a value between 1 and 10000"],
          ["flapThreshold", "-1", "Expected a value greater than or equal to 0"],
          ["initialStatus", '"unknown"', 'Expected "healthy" | "degraded" | "unhealthy"'],
          ["interval", "0", "Expected a duration greater than zero"],
          ["trendWindow", "0", "Expected a duration greater than zero"],
          ["components.db.critical", '"yes"', "Expected boolean"],
          ["components.db.timeout", "0", "Expected a duration greater than zero"],
          ["components.db", '"db"', "Expected a unique, non-empty component name"],
          ["components.db.probe", '"startup"', 'Expected "readiness" | "liveness" | "both"']
        ]
      )
      const fromMake = yield* Effect.flip(Health.make({ ...exact, unhealthyAfter: 0 }).pipe(Effect.scoped))
      assert.strictEqual(
        fromMake.message,
        "Health options are invalid: unhealthyAfter = 0: Expected a value greater than or equal to 1"
      )
    })
  )
})

describe("Health.layer and layerConfig", () => {
  it.effect("layer runs the checks for the layer's lifetime", () =>
    Effect.gen(function* () {
      const { control, run } = controlled()
      const program = Effect.gen(function* () {
        const health = yield* Health.Health
        yield* advance("2 seconds")
        return (yield* health.status).components.map((c) => c.checks)
      }).pipe(Effect.provide(Health.layer({ ...exact, interval: "1 second", components: [Health.check("db", run)] })))
      assert.deepStrictEqual(yield* program, [3])
      yield* advance("10 seconds")
      assert.strictEqual(control.runs, 3)
    })
  )

  const read = (env: Record<string, string>) =>
    Effect.exit(
      Effect.map(Health.Health, (health) => ({
        name: health.name,
        interval: Duration.toMillis(health.options.interval),
        unhealthyAfter: health.options.unhealthyAfter,
        components: health.options.history
      })).pipe(
        Effect.provide(
          Health.layerConfig("health", [Health.check("db", Effect.void)]).pipe(
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
          )
        )
      )
    )

  it.effect("layerConfig reads the registry's options from the environment; bad values fail with every field", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(
        yield* read({ health_interval: "5 seconds", health_unhealthyAfter: "5" }),
        Exit.succeed({ name: "health", interval: 5_000, unhealthyAfter: 5, components: 60 })
      )
      const exit = yield* read({ health_unhealthyAfter: "0", health_history: "many" })
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(error, Options.InvalidOptions)
      if (!(error instanceof Options.InvalidOptions)) return
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["unhealthyAfter", '"0"', "Expected a value greater than or equal to 1"],
          ["history", '"many"', "Expected a string representing a finite number"]
        ]
      )
    })
  )
})
