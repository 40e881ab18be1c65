import { assert, describe, it } from "@effect/vitest"
import { Alert, Bulkhead, CircuitBreaker, Health, RateLimiter, Telemetry } from "@effect-resilience/core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"

/** Lets the forked evaluators reach their next suspension. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 25; i++) yield* Effect.yieldNow
})

/** Lets every fiber reach its sleep, moves the clock, then lets what woke up finish. */
const advance = (duration: Duration.Input) =>
  settle.pipe(Effect.andThen(TestClock.adjust(duration)), Effect.andThen(settle))

/** A condition the test pushes: a rule over a queue-fed stream. */
const pushed = Effect.gen(function* () {
  const queue = yield* Queue.unbounded<boolean>()
  const set = (value: boolean) => Effect.andThen(Queue.offer(queue, value), settle)
  return { stream: Stream.fromQueue(queue), set }
})

const stateOf = (alerts: Alert.Alert, name: string) =>
  Effect.map(alerts.status, (all) => all.find((status) => status.name === name)?.state)

/** The events so far, as `[tag, rule, at]`. */
const drain = (events: Queue.Dequeue<Alert.Event, unknown>) =>
  Effect.map(Queue.clear(events), (all) => all.map((e) => [e._tag, e.rule, e.at] as const))

/** The events so far by rule (each rule's in order; the rules' interleaving is the scheduler's). */
const drainByRule = (events: Queue.Dequeue<Alert.Event, unknown>) =>
  Effect.map(drain(events), (all) => [...all].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)))

const breakerStore = CircuitBreaker.layerStoreMemory()
const limiterStore = RateLimiter.layerStoreMemory()

describe("Alert", () => {
  it.effect("pending, then firing only once the condition held for `for`; the event carries since and at", () =>
    Effect.gen(function* () {
      const condition = yield* pushed
      const alerts = yield* Alert.make({
        name: "ops",
        rules: [Alert.fromStream("queue-deep", condition.stream, { for: "30 seconds", severity: "critical" })]
      })
      const events = yield* alerts.subscribe
      yield* advance("1 second")
      assert.strictEqual(yield* stateOf(alerts, "queue-deep"), "inactive")
      yield* condition.set(true)
      assert.strictEqual(yield* stateOf(alerts, "queue-deep"), "pending")
      yield* advance("29 seconds")
      assert.strictEqual(yield* stateOf(alerts, "queue-deep"), "pending")
      assert.deepStrictEqual(yield* drain(events), [])
      yield* advance("1 second")
      assert.strictEqual(yield* stateOf(alerts, "queue-deep"), "firing")
      const [firing] = yield* Queue.clear(events)
      assert.deepStrictEqual(
        [firing?._tag, firing?.alert, firing?.rule, firing?.severity, firing?.since, firing?.at],
        ["AlertFiring", "ops", "queue-deep", "critical", 1_000, 31_000]
      )
    }).pipe(Effect.scoped)
  )

  it.effect("a condition that flickers shorter than `for` never fires", () =>
    Effect.gen(function* () {
      const condition = yield* pushed
      const alerts = yield* Alert.make({ rules: [Alert.fromStream("flaky", condition.stream, { for: "10 seconds" })] })
      const events = yield* alerts.subscribe
      for (let i = 0; i < 20; i++) {
        yield* condition.set(true)
        yield* advance("9 seconds")
        yield* condition.set(false)
        yield* advance("5 seconds")
      }
      assert.deepStrictEqual(yield* drain(events), [])
      assert.strictEqual((yield* alerts.status)[0]?.transitions, 0)
    }).pipe(Effect.scoped)
  )

  it.effect("resolves after `resolveAfter` clear (hysteresis), then fires again", () =>
    Effect.gen(function* () {
      const condition = yield* pushed
      const alerts = yield* Alert.make({
        resolveAfter: "20 seconds",
        rules: [Alert.fromStream("errors", condition.stream, { for: "5 seconds" })]
      })
      const events = yield* alerts.subscribe
      yield* condition.set(true)
      yield* advance("5 seconds")
      yield* condition.set(false)
      yield* advance("10 seconds")
      yield* condition.set(true) // back before resolveAfter: still firing, no new firing
      yield* advance("1 second")
      yield* condition.set(false)
      yield* advance("19 seconds")
      assert.strictEqual(yield* stateOf(alerts, "errors"), "firing")
      yield* advance("1 second")
      assert.strictEqual(yield* stateOf(alerts, "errors"), "resolved")
      yield* condition.set(true)
      yield* advance("5 seconds")
      assert.deepStrictEqual(yield* drain(events), [
        ["AlertFiring", "errors", 5_000],
        ["AlertResolved", "errors", 36_000],
        ["AlertFiring", "errors", 41_000]
      ])
      assert.strictEqual((yield* alerts.status)[0]?.transitions, 3)
    }).pipe(Effect.scoped)
  )

  it.effect("property: on the TestClock, a pushed condition fires exactly when it held for `for`, and resolves", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.integer({ min: 1, max: 20 }), fc.boolean()), { minLength: 1, maxLength: 12 }),
          fc.integer({ min: 1, max: 15 }),
          fc.integer({ min: 0, max: 15 }),
          (steps, forSeconds, resolveSeconds) =>
            Effect.runPromise(
              Effect.gen(function* () {
                const condition = yield* pushed
                const alerts = yield* Alert.make({
                  rules: [
                    Alert.fromStream("p", condition.stream, {
                      for: Duration.seconds(forSeconds),
                      resolveAfter: Duration.seconds(resolveSeconds)
                    })
                  ]
                })
                const events = yield* alerts.subscribe
                yield* settle
                // the naive model: the condition as runs of one value, each reading holding until the next; a
                // reading pushed at the very instant `for` (or `resolveAfter`) elapses comes after the wake-up
                // there, so a run of exactly `for` fires (the pure machine's test covers the other order)
                const expected: Array<readonly [string, number]> = []
                let firing = false
                let runValue = false
                let runStart = 0
                let time = 0
                const close = (end: number) => {
                  const length = end - runStart
                  if (!firing && runValue && length >= forSeconds) {
                    expected.push(["AlertFiring", (runStart + forSeconds) * 1000])
                    firing = true
                  } else if (firing && !runValue && length >= resolveSeconds) {
                    expected.push(["AlertResolved", (runStart + resolveSeconds) * 1000])
                    firing = false
                  }
                }
                for (const [gap, value] of steps) {
                  yield* advance(Duration.seconds(gap))
                  time += gap
                  yield* condition.set(value)
                  if (value !== runValue) {
                    close(time)
                    runValue = value
                    runStart = time
                  }
                }
                yield* advance("100 seconds")
                close(time + 100)
                assert.deepStrictEqual(
                  (yield* Queue.clear(events)).map((e) => [e._tag, e.at] as const),
                  expected
                )
              }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))
            )
        ),
        { numRuns: 100 }
      )
    )
  )

  it.effect("circuitOpen: a breaker forced open fires after `for` and resolves when it closes", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "payments" })
      const alerts = yield* Alert.make({ interval: "1 hour", rules: [Alert.circuitOpen(breaker, { for: "1 minute" })] })
      const events = yield* alerts.subscribe
      yield* settle
      yield* breaker.forceOpen()
      yield* advance("59 seconds")
      assert.strictEqual(yield* stateOf(alerts, "circuit-open:payments"), "pending")
      yield* advance("1 second")
      const [status] = yield* alerts.status
      assert.deepStrictEqual([status?.state, status?.severity, status?.value], ["firing", "error", 1])
      yield* breaker.reset()
      yield* settle
      // the interval is an hour: only the breaker's StateTransition event can have resolved it
      assert.deepStrictEqual(yield* drain(events), [
        ["AlertFiring", "circuit-open:payments", 60_000],
        ["AlertResolved", "circuit-open:payments", 60_000]
      ])
    }).pipe(Effect.scoped, Effect.provide(breakerStore))
  )

  it.effect("circuitOpen: a breaker tripped by failures counts HalfOpen as still open", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "db",
        slidingWindowSize: 2,
        minimumCalls: 2,
        openDuration: "10 seconds"
      })
      const alerts = yield* Alert.make({ rules: [Alert.circuitOpen(breaker, { for: "25 seconds" })] })
      yield* settle
      const fail = Effect.ignore(breaker.protect(Effect.fail("down")))
      yield* fail
      yield* fail
      yield* settle
      assert.strictEqual(yield* stateOf(alerts, "circuit-open:db"), "pending")
      // at 10 s a probe starts (HalfOpen) and fails 5 s later (Open again): the wait goes on from 0 s
      yield* advance("10 seconds")
      yield* Effect.forkChild(
        Effect.ignore(breaker.protect(Effect.andThen(Effect.sleep("5 seconds"), Effect.fail("down"))))
      )
      yield* settle
      assert.strictEqual((yield* breaker.state())._tag, "HalfOpen")
      yield* advance("5 seconds")
      assert.strictEqual((yield* breaker.state())._tag, "Open")
      yield* advance("11 seconds")
      assert.strictEqual(yield* stateOf(alerts, "circuit-open:db"), "firing")
    }).pipe(Effect.scoped, Effect.provide(breakerStore))
  )

  it.effect("limiterAlert: the limiter's rejection alert maps to the rule, and its resolution too", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        name: "api",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 hour" }],
        alertRejectionRate: 0.5,
        alertFor: "10 seconds"
      })
      const alerts = yield* Alert.make({ interval: "1 hour", rules: [Alert.limiterAlert(limiter)] })
      const events = yield* alerts.subscribe
      yield* settle
      for (let second = 0; second < 12; second++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume("hot")
        yield* advance("1 second")
      }
      assert.isTrue((yield* limiter.alert).alerting)
      const [status] = yield* alerts.status
      assert.deepStrictEqual(
        [status?.name, status?.state, status?.severity, status?.value],
        ["limiter-alert:api", "firing", "warning", 1]
      )
      for (let second = 0; second < 2; second++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume(`fresh-${second}-${i}`)
        yield* advance("1 second")
      }
      assert.deepStrictEqual(
        (yield* drain(events)).map(([tag]) => tag),
        ["AlertFiring", "AlertResolved"]
      )
    }).pipe(Effect.scoped, Effect.provide(limiterStore))
  )

  it.effect("rejectionRate: the share rejected between two readings, at or above the threshold for `for`", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        name: "search",
        limits: [{ algorithm: "fixed-window", limit: 2, window: "1 hour" }]
      })
      const alerts = yield* Alert.make({
        interval: "1 second",
        rules: [Alert.rejectionRate(limiter, { threshold: 0.5, for: "3 seconds" })]
      })
      yield* settle
      for (let second = 0; second < 5; second++) {
        for (let i = 0; i < 4; i++) yield* limiter.consume("k")
        yield* advance("1 second")
      }
      const [status] = yield* alerts.status
      assert.deepStrictEqual([status?.name, status?.state, status?.value], ["rejection-rate:search", "firing", 1])
      yield* advance("2 seconds") // no decisions: clear
      assert.strictEqual(yield* stateOf(alerts, "rejection-rate:search"), "resolved")
    }).pipe(Effect.scoped, Effect.provide(limiterStore))
  )

  it.effect("rejectionRate: one rule value in two registries, each with its own window", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        name: "shared",
        limits: [{ algorithm: "fixed-window", limit: 1, window: "1 hour" }]
      })
      const rule = Alert.rejectionRate(limiter, { threshold: 0.5, for: 0 })
      const first = yield* Alert.make({ interval: "1 second", rules: [rule] })
      const second = yield* Alert.make({ interval: "1 second", rules: [rule] })
      yield* settle
      for (let i = 0; i < 4; i++) yield* limiter.consume("k")
      yield* advance("1 second")
      // with the counts shared, the second read would see no new decisions and stay clear
      assert.deepStrictEqual([(yield* first.status)[0]?.value, (yield* second.status)[0]?.value], [0.75, 0.75])
    }).pipe(Effect.scoped, Effect.provide(limiterStore))
  )

  it.effect("healthStatus: a component unhealthy fires; degraded does not unless atLeast is degraded", () =>
    Effect.gen(function* () {
      let failing = false
      const health = yield* Health.make({
        name: "app",
        interval: "1 second",
        jitter: 0, // exact ticks: the first check at once, then every second
        stagger: 0,
        unhealthyAfter: 3,
        components: [
          Health.check(
            "db",
            Effect.suspend(() => (failing ? Effect.fail("refused") : Effect.void))
          )
        ]
      })
      const alerts = yield* Alert.make({
        interval: "1 hour",
        rules: [
          Alert.healthStatus(health, { component: "db", for: "5 seconds" }),
          Alert.healthStatus(health, { atLeast: "degraded", name: "app-degraded" })
        ]
      })
      yield* advance("1 second")
      failing = true
      yield* advance("1 second")
      assert.deepStrictEqual(
        (yield* alerts.status).map((s) => [s.name, s.state, s.detail]),
        [
          ["health-status:app/db", "inactive", "degraded"],
          ["app-degraded", "firing", "degraded"]
        ]
      )
      yield* advance("2 seconds") // the third failure: unhealthy
      assert.strictEqual(yield* stateOf(alerts, "health-status:app/db"), "pending")
      yield* advance("5 seconds")
      const [db] = yield* alerts.status
      assert.deepStrictEqual([db?.state, db?.value, db?.detail], ["firing", 2, "unhealthy"])
    }).pipe(Effect.scoped)
  )

  it.effect("bulkheadSaturation: every permit held for `for` fires", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ name: "io", maxConcurrent: 2 })
      const alerts = yield* Alert.make({
        interval: "1 second",
        rules: [Alert.bulkheadSaturation(bulkhead, { for: "10 seconds" })]
      })
      yield* settle
      yield* Effect.forkChild(bulkhead.isolate(Effect.sleep("1 minute")))
      yield* Effect.forkChild(bulkhead.isolate(Effect.sleep("1 minute")))
      yield* advance("10 seconds")
      // polled: seen full at the read of 1 s (calls admitted at once publish no event)
      assert.strictEqual(yield* stateOf(alerts, "bulkhead-saturation:io"), "pending")
      yield* advance("1 second")
      const [status] = yield* alerts.status
      assert.deepStrictEqual([status?.name, status?.state, status?.value], ["bulkhead-saturation:io", "firing", 1])
      yield* advance("1 minute")
      assert.strictEqual(yield* stateOf(alerts, "bulkhead-saturation:io"), "resolved")
    }).pipe(Effect.scoped)
  )

  it.effect("fromEffect is polled every interval; a failing read keeps the last reading and is reported", () =>
    Effect.gen(function* () {
      let value: boolean | "error" = false
      const alerts = yield* Alert.make({
        interval: "10 seconds",
        rules: [
          Alert.fromEffect(
            "custom",
            Effect.suspend(() => (value === "error" ? Effect.fail("unreachable") : Effect.succeed(value))),
            { for: "20 seconds" }
          )
        ]
      })
      yield* settle
      value = true
      yield* advance("5 seconds")
      assert.strictEqual(yield* stateOf(alerts, "custom"), "inactive") // not read yet
      yield* advance("5 seconds")
      assert.strictEqual(yield* stateOf(alerts, "custom"), "pending")
      value = "error"
      yield* advance("20 seconds")
      const [status] = yield* alerts.status
      assert.deepStrictEqual([status?.state, status?.errors, status?.lastError], ["firing", 2, "unreachable"])
    }).pipe(Effect.scoped)
  )

  it.effect("a sink that fails or dies does not stop the evaluation nor the other sinks", () =>
    Effect.gen(function* () {
      const condition = yield* pushed
      const seen: Array<string> = []
      const alerts = yield* Alert.make({
        rules: [Alert.fromStream("x", condition.stream)],
        sinks: [
          () => Effect.fail("webhook down"),
          () => Effect.die(new Error("bug")),
          (event) =>
            Effect.sync(() => {
              seen.push(event._tag)
            })
        ]
      })
      yield* condition.set(true)
      yield* condition.set(false)
      yield* condition.set(true)
      assert.deepStrictEqual(seen, ["AlertFiring", "AlertResolved", "AlertFiring"])
      assert.strictEqual(yield* alerts.sinkErrors, 6)
      assert.strictEqual(yield* stateOf(alerts, "x"), "firing")
    }).pipe(Effect.scoped)
  )

  it.effect("a blocked sink: its queue holds sinkQueue events, the oldest dropped and counted (stats, metric)", () =>
    Effect.gen(function* () {
      const condition = yield* pushed
      const gate = yield* Deferred.make<void>()
      const received: Array<readonly [string, number]> = []
      const alerts = yield* Alert.make({
        name: "stuck-sink",
        sinkQueue: 3,
        rules: [Alert.fromStream("flip", condition.stream)],
        // records each event it is given, then blocks until the gate opens
        sinks: [
          (event) =>
            Effect.andThen(
              Effect.sync(() => received.push([event._tag, event.at])),
              Deferred.await(gate)
            )
        ]
      })
      // ten events, one a second: the first is in the sink, three wait, six are dropped
      for (let i = 0; i < 10; i++) {
        yield* condition.set(i % 2 === 0)
        yield* advance("1 second")
      }
      assert.deepStrictEqual(received, [["AlertFiring", 0]])
      assert.deepStrictEqual(yield* alerts.stats, { sinkErrors: 0, sinkDropped: 6, sinkQueued: 3 })
      const snapshot = yield* Metric.snapshot
      const dropped = snapshot.find(
        (m) => m.id === Telemetry.alert.sinkDropped.name && m.attributes?.[Telemetry.attributes.name] === "stuck-sink"
      )
      assert.strictEqual(Telemetry.alert.sinkDropped.name, "resilience.alert.sink.dropped")
      assert.strictEqual(dropped?.type === "Counter" ? dropped.state.count : -1, 6)
      // the evaluation never waited for the sink
      assert.strictEqual((yield* alerts.status)[0]?.transitions, 10)
      // unblocked, the sink sees the latest three (drop-oldest): the last state it hears of is the current one
      yield* Deferred.succeed(gate, void 0)
      yield* settle
      assert.deepStrictEqual(received, [
        ["AlertFiring", 0],
        ["AlertResolved", 7_000],
        ["AlertFiring", 8_000],
        ["AlertResolved", 9_000]
      ])
      assert.deepStrictEqual(yield* alerts.stats, { sinkErrors: 0, sinkDropped: 6, sinkQueued: 0 })
    }).pipe(Effect.scoped)
  )

  it.effect(
    "a breaker opening and closing between two polls: `for: 0` fires and resolves, a longer `for` does not",
    () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ name: "payments" })
        const alerts = yield* Alert.make({
          interval: "1 hour", // no poll in between: only the transitions can tell
          rules: [
            Alert.circuitOpen(breaker, { name: "any-0", for: 0 }),
            Alert.circuitOpen(breaker, { name: "eu-0", key: "eu", for: 0 }),
            Alert.circuitOpen(breaker, { name: "any-30s", for: "30 seconds" })
          ]
        })
        const events = yield* alerts.subscribe
        yield* advance("1 second")
        // open and closed again before any rule reads the breaker
        yield* breaker.forceOpen("eu")
        yield* breaker.reset("eu")
        yield* advance("1 second")
        assert.deepStrictEqual(yield* drainByRule(events), [
          ["AlertFiring", "any-0", 1_000],
          ["AlertResolved", "any-0", 1_000],
          ["AlertFiring", "eu-0", 1_000],
          ["AlertResolved", "eu-0", 1_000]
        ])
        const firing = (yield* alerts.status).find((status) => status.name === "any-0")
        assert.deepStrictEqual([firing?.state, firing?.transitions, firing?.detail], ["resolved", 2, ""])
        // the blip was shorter than 30 seconds: that rule never fires
        yield* advance("1 minute")
        assert.deepStrictEqual(yield* drain(events), [])
        assert.strictEqual(yield* stateOf(alerts, "any-30s"), "inactive")
        // a real outage still fires after its `for`
        yield* breaker.forceOpen("eu")
        yield* advance("30 seconds")
        assert.deepStrictEqual(
          (yield* drain(events)).filter(([, rule]) => rule === "any-30s"),
          [["AlertFiring", "any-30s", 92_000]] // opened at 62 s
        )
      }).pipe(Effect.scoped, Effect.provide(breakerStore))
  )

  it.effect("healthStatus: a component unhealthy and healthy again between two polls still fires a `for: 0` rule", () =>
    Effect.gen(function* () {
      const statuses = yield* Queue.unbounded<Health.Status>()
      const health = yield* Health.make({ components: [Health.source("db", Stream.fromQueue(statuses))] })
      const alerts = yield* Alert.make({
        interval: "1 hour",
        rules: [
          Alert.healthStatus(health, { name: "db-0", component: "db", for: 0 }),
          Alert.healthStatus(health, { name: "whole-0", for: 0 }),
          Alert.healthStatus(health, { name: "db-1m", component: "db", for: "1 minute" })
        ]
      })
      const events = yield* alerts.subscribe
      yield* advance("1 second")
      yield* Queue.offerAll(statuses, ["unhealthy", "healthy"])
      yield* advance("1 second")
      assert.deepStrictEqual(yield* drainByRule(events), [
        ["AlertFiring", "db-0", 1_000],
        ["AlertResolved", "db-0", 1_000],
        ["AlertFiring", "whole-0", 1_000],
        ["AlertResolved", "whole-0", 1_000]
      ])
      yield* advance("2 minutes")
      assert.strictEqual(yield* stateOf(alerts, "db-1m"), "inactive")
    }).pipe(Effect.scoped)
  )

  it.effect("closing the scope stops everything: no evaluation, no sink, events ended, metrics removed", () =>
    Effect.gen(function* () {
      const condition = yield* pushed
      const scope = yield* Scope.make()
      const seen: Array<string> = []
      const alerts = yield* Alert.make({
        name: "closing",
        rules: [Alert.fromStream("y", condition.stream, { for: "1 second" })],
        sinks: [(event) => Effect.sync(() => seen.push(event._tag))]
      }).pipe(Scope.provide(scope))
      const events = yield* alerts.subscribe
      yield* condition.set(true)
      yield* Scope.close(scope, Exit.void)
      yield* advance("10 seconds")
      assert.deepStrictEqual(seen, [])
      assert.strictEqual(yield* stateOf(alerts, "y"), "pending")
      assert.isTrue(Exit.isFailure(yield* Effect.exit(Queue.take(events))))
      const snapshot = yield* Metric.snapshot
      assert.isUndefined(snapshot.find((m) => m.attributes?.[Telemetry.attributes.name] === "closing"))
    }).pipe(Effect.scoped)
  )

  it.effect("metrics: a firing gauge per rule name and transitions by target state", () =>
    Effect.gen(function* () {
      const condition = yield* pushed
      yield* Alert.make({ name: "metered", rules: [Alert.fromStream("hot", condition.stream)] })
      yield* condition.set(true)
      yield* condition.set(false)
      yield* condition.set(true)
      const snapshot = yield* Metric.snapshot
      const find = (id: string, to?: string) =>
        snapshot.find(
          (m) =>
            m.id === id &&
            m.attributes?.[Telemetry.attributes.name] === "metered" &&
            m.attributes?.[Telemetry.attributes.rule] === "hot" &&
            (to === undefined || m.attributes?.[Telemetry.attributes.to] === to)
        )
      const gauge = find(Telemetry.alert.firing.name)
      assert.strictEqual(gauge?.type === "Gauge" ? gauge.state.value : -1, 1)
      const fired = find(Telemetry.alert.transitions.name, "firing")
      const resolved = find(Telemetry.alert.transitions.name, "resolved")
      assert.deepStrictEqual(
        [fired?.type === "Counter" ? fired.state.count : -1, resolved?.type === "Counter" ? resolved.state.count : -1],
        [2, 1]
      )
    }).pipe(Effect.scoped)
  )

  it("the built-in rules take their defaults from the catalogue, which renders the guide's table", () => {
    const limiter = { name: "api" } as RateLimiter.RateLimiter
    const rule = Alert.rejectionRate(limiter)
    assert.deepStrictEqual(
      [rule.name, rule.severity, rule.for, rule.description],
      [
        "rejection-rate:api",
        Alert.builtins.rejectionRate.severity,
        Alert.builtins.rejectionRate.for,
        Alert.builtins.rejectionRate.description
      ]
    )
    const custom = Alert.rejectionRate(limiter, { name: "r", severity: "critical", for: "5 minutes" })
    assert.deepStrictEqual([custom.name, custom.severity, custom.for], ["r", "critical", "5 minutes"])
    const table = Alert.rulesTable()
    for (const spec of Object.values(Alert.builtins)) assert.include(table, `\`${spec.constructor}\``)
  })

  it.effect("invalid options and rules fail with one InvalidOptions listing every bad field", () =>
    Effect.gen(function* () {
      const limiter = { name: "api" } as RateLimiter.RateLimiter
      const error = yield* Effect.flip(
        Alert.validateOptions({
          interval: "0 seconds",
          resolveAfter: "soon" as Duration.Input,
          sinkQueue: 0,
          rules: [
            Alert.fromStream("a", Stream.empty, { for: -5 }),
            Alert.fromStream("a", Stream.empty),
            Alert.fromEffect("", Effect.succeed(true), { resolveAfter: "never" as Duration.Input, interval: 0 }),
            Alert.rejectionRate(limiter, { threshold: 1.5 }),
            Alert.rule("nothing", {})
          ]
        })
      )
      assert.strictEqual(error.pattern, "Alert")
      assert.deepStrictEqual(
        error.issues.map((issue) => [issue.path, issue.value, issue.message]),
        [
          ["rules.a.for", "-5", "Expected a non-negative duration"],
          ["rules.1.name", '"a"', "Expected a rule name not used by another rule"],
          ["rules.2.name", '""', "Expected a non-empty rule name"],
          ["rules.2.resolveAfter", '"never"', "Expected a non-negative duration"],
          ["rules.2.interval", "0", "Expected a duration greater than zero"],
          ["rules.rejection-rate:api.threshold", "1.5", "Expected a number greater than 0 and at most 1"],
          ["rules.nothing.condition", "undefined", "Expected a condition with a read effect or a readings stream"],
          ["resolveAfter", '"soon"', "Expected a non-negative duration"],
          ["sinkQueue", "0", "Expected a value greater than or equal to 1"],
          ["interval", "0", "Expected a duration greater than zero"]
        ]
      )
      const ok = yield* Alert.validateOptions({ rules: [Alert.fromStream("b", Stream.empty, { for: "1 minute" })] })
      assert.deepStrictEqual(
        [
          ok.name,
          Duration.toMillis(ok.interval),
          Duration.toMillis(ok.rules[0]?.forDuration ?? Duration.zero),
          ok.sinkQueue
        ],
        ["default", 10_000, 60_000, 1_000]
      )
      // the smallest queue: one event waiting
      assert.strictEqual((yield* Alert.validateOptions({ sinkQueue: 1 })).sinkQueue, 1)
    })
  )

  it.effect("layerConfig reads the options from the environment; the rules come from code", () =>
    Effect.gen(function* () {
      const alerts = yield* Alert.Alert
      assert.deepStrictEqual(
        [
          alerts.name,
          Duration.toMillis(alerts.options.interval),
          Duration.toMillis(alerts.options.resolveAfter),
          alerts.options.sinkQueue
        ],
        ["alerts", 5_000, 30_000, 50]
      )
      assert.deepStrictEqual(
        (yield* alerts.status).map((s) => s.name),
        ["never"]
      )
    }).pipe(
      Effect.provide(
        Alert.layerConfig("alerts", { rules: [Alert.fromStream("never", Stream.never)] }).pipe(
          Layer.provide(
            ConfigProvider.layer(
              ConfigProvider.fromEnv({
                env: { alerts_interval: "5 seconds", alerts_resolveAfter: "30 seconds", alerts_sinkQueue: "50" }
              })
            )
          )
        )
      )
    )
  )

  it.effect("layerConfig: bad values fail with InvalidOptions naming each field", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Layer.build(
          Alert.layerConfig("alerts", {}).pipe(
            Layer.provide(
              ConfigProvider.layer(
                ConfigProvider.fromEnv({ env: { alerts_interval: "often", alerts_resolveAfter: "1 second" } })
              )
            )
          )
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      const found = error?._tag === "Fail" ? error.error : undefined
      assert.deepStrictEqual(found?._tag === "InvalidOptions" ? found.issues.map((i) => [i.path, i.value]) : found, [
        ["interval", '"often"']
      ])
    }).pipe(Effect.scoped)
  )
})
