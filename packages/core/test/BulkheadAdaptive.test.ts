import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, Options } from "@effect-resilience/core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"

/** Forks `effect` and lets it run until it suspends. */
const start = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    return fiber
  })

const limitOf = (bulkhead: Bulkhead.Bulkhead, key?: string) => Effect.map(bulkhead.state(key), (s) => s.limit)

/**
 * A wave: `n` calls at once, each taking `millis` (then failing when `fail`),
 * on the TestClock; returns how many were admitted.
 */
const wave = (
  bulkhead: Bulkhead.Bulkhead,
  n: number,
  millis: number,
  options: { readonly key?: string; readonly fail?: boolean } = {}
) =>
  Effect.gen(function* () {
    const call = Effect.sleep(Duration.millis(millis)).pipe(
      Effect.andThen(options.fail === true ? Effect.fail("boom" as const) : Effect.void),
      Bulkhead.isolate(bulkhead, options.key === undefined ? undefined : { key: options.key }),
      Effect.exit
    )
    const fiber = yield* Effect.forkChild(
      Effect.all(
        Array.from({ length: n }, () => call),
        { concurrency: "unbounded" }
      )
    )
    yield* Effect.yieldNow
    yield* TestClock.adjust(Duration.millis(millis))
    const exits = yield* Fiber.join(fiber)
    return exits.filter((exit) => exit._tag === "Success" || options.fail === true).length
  })

/** Waves of `limit` calls at a time (the limit in use), `rounds` times; returns the limit after each. */
const waves = (
  bulkhead: Bulkhead.Bulkhead,
  rounds: number,
  millis: number,
  options: { readonly key?: string; readonly fail?: boolean } = {}
) =>
  Effect.gen(function* () {
    const limits: Array<number> = []
    for (let i = 0; i < rounds; i++) {
      yield* wave(bulkhead, yield* limitOf(bulkhead, options.key), millis, options)
      limits.push(yield* limitOf(bulkhead, options.key))
    }
    return limits
  })

const isNonIncreasing = (xs: ReadonlyArray<number>) => xs.every((x, i) => i === 0 || x <= (xs[i - 1] ?? x))
const isNonDecreasing = (xs: ReadonlyArray<number>) => xs.every((x, i) => i === 0 || x >= (xs[i - 1] ?? x))

describe("Bulkhead adaptive limits", () => {
  it.effect("aimd: calls slower than latencyThreshold drive the limit down, fast calls drive it up", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 10,
        limit: { algorithm: "aimd", minLimit: 2, maxLimit: 12, latencyThreshold: "100 millis" }
      })
      assert.strictEqual(yield* limitOf(bulkhead), 10)
      // each wave of slow calls is one episode: one decrease (× 0.9, at least 1 less)
      const down = yield* waves(bulkhead, 6, 200)
      assert.deepStrictEqual(down, [9, 8, 7, 6, 5, 4])
      // fast calls with the limit in use: +1 per window of `limit` successes (a call that started with under
      // half the limit in flight does not count), up to maxLimit
      const up = yield* waves(bulkhead, 16, 10)
      assert.deepStrictEqual(up, [4, 5, 6, 6, 7, 7, 8, 9, 9, 10, 10, 11, 11, 12, 12, 12])
      // failures are drops too
      assert.deepStrictEqual(yield* waves(bulkhead, 2, 10, { fail: true }), [10, 9])
      assert.strictEqual((yield* bulkhead.stats).limitChanges, 6 + 8 + 2)
    }).pipe(Effect.scoped)
  )

  it.effect("gradient: a steady RTT lets the limit grow; when the calls slow down, it falls", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 10,
        limit: { algorithm: "gradient", minLimit: 2, maxLimit: 40, window: "50 millis", minWindowSamples: 5 }
      })
      const up = yield* waves(bulkhead, 40, 20)
      assert.isTrue(isNonDecreasing(up), `grew: ${up}`)
      const top = up[up.length - 1] ?? 0
      assert.isAbove(top, 15)
      // four times slower: gradient 0.5 while the long-term RTT lags
      const down = yield* waves(bulkhead, 10, 80)
      assert.isTrue(isNonIncreasing(down), `fell: ${down}`)
      assert.isBelow(down[down.length - 1] ?? top, top - 5)
    }).pipe(Effect.scoped)
  )

  it.effect("vegas: a queue building at the dependency (the RTT above rttNoLoad) shrinks the limit", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 20,
        limit: { algorithm: "vegas", minLimit: 2, maxLimit: 100, probeMultiplier: 1_000 }
      })
      // rttNoLoad = 10 ms, then nothing queues: the limit grows
      const up = yield* waves(bulkhead, 3, 10)
      assert.isTrue(isNonDecreasing(up) && (up[2] ?? 0) > 20, `grew: ${up}`)
      // twice rttNoLoad: half the calls are estimated queued, above beta: it shrinks
      const down = yield* waves(bulkhead, 3, 20)
      assert.isTrue(isNonIncreasing(down) && (down[2] ?? 100) < (up[2] ?? 0), `fell: ${down}`)
    }).pipe(Effect.scoped)
  )

  it.effect("calls in flight never exceed the current limit (checked by every call as it starts)", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 8,
        maxQueue: 1_000,
        maxWait: "1 hour",
        limit: { algorithm: "aimd", minLimit: 1, maxLimit: 16, latencyThreshold: "30 millis", backoffRatio: 0.5 }
      })
      let running = 0
      let most = 0
      const violations: Array<string> = []
      const call = (millis: number) =>
        Effect.gen(function* () {
          running++
          most = Math.max(most, running)
          const limit = yield* limitOf(bulkhead)
          if (running > limit) violations.push(`${running} running, limit ${limit}`)
          yield* Effect.sleep(Duration.millis(millis))
        }).pipe(Effect.ensuring(Effect.sync(() => running--)), Bulkhead.isolate(bulkhead))
      // durations cycling through fast and slow (above the threshold): the limit goes up and down
      const durations = Array.from({ length: 300 }, (_, i) => [5, 10, 50, 5, 20, 80, 5][i % 7] ?? 5)
      const fiber = yield* Effect.forkChild(Effect.all(durations.map(call), { concurrency: "unbounded" }))
      yield* Effect.yieldNow
      const seen = new Set<number>()
      for (let t = 0; t < 1_000 && fiber.pollUnsafe() === undefined; t++) {
        yield* TestClock.adjust("5 millis")
        seen.add(yield* limitOf(bulkhead))
      }
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(violations, [])
      assert.isAbove(seen.size, 3, "the limit moved")
      assert.isAtMost(most, 16)
      assert.deepStrictEqual(yield* bulkhead.state(), {
        key: "default",
        active: 0,
        queued: 0,
        available: 0 + (yield* limitOf(bulkhead)),
        limit: yield* limitOf(bulkhead)
      })
    }).pipe(Effect.scoped)
  )

  it.effect("a limit that falls below the calls running lets them finish; new calls wait until fewer run", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 4,
        maxQueue: 5,
        maxWait: "1 minute",
        limit: { algorithm: "aimd", minLimit: 1, maxLimit: 10, backoffRatio: 0.5 }
      })
      const gate = () => Deferred.make<void, string>()
      const [g0, g1, g2, g3] = [yield* gate(), yield* gate(), yield* gate(), yield* gate()]
      const run = (g: Deferred.Deferred<void, string>) => start(Bulkhead.isolate(Deferred.await(g), bulkhead))
      const [r0, r1, r2, r3] = [yield* run(g0), yield* run(g1), yield* run(g2), yield* run(g3)]
      // one fails: 4 × 0.5 = 2, under the 3 still running
      yield* Deferred.fail(g0, "boom")
      assert.strictEqual(yield* Effect.flip(Fiber.join(r0)), "boom")
      assert.deepStrictEqual(yield* bulkhead.state(), { key: "default", active: 3, queued: 0, available: 0, limit: 2 })
      // a new call waits
      const waiter = yield* start(Bulkhead.isolate(Effect.succeed("waited"), bulkhead))
      assert.deepStrictEqual(yield* bulkhead.state(), { key: "default", active: 3, queued: 1, available: 0, limit: 2 })
      // one ends: 2 running, still not under the limit
      yield* Deferred.succeed(g3, undefined)
      yield* Fiber.join(r3)
      assert.deepStrictEqual(yield* bulkhead.state(), { key: "default", active: 2, queued: 1, available: 0, limit: 2 })
      // another ends (its success completes a window of 2: the limit is 3): the waiter runs
      yield* Deferred.succeed(g2, undefined)
      yield* Fiber.join(r2)
      assert.strictEqual(yield* Fiber.join(waiter), "waited")
      // the first one left was never interrupted
      yield* Deferred.succeed(g1, undefined)
      yield* Fiber.join(r1)
      assert.deepStrictEqual(yield* bulkhead.state(), { key: "default", active: 0, queued: 0, available: 3, limit: 3 })
    }).pipe(Effect.scoped)
  )

  it.effect("when the limit rises, the waiters at the head of the line are admitted at once; LimitChanged", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 2,
        maxQueue: 10,
        maxWait: "1 minute",
        limit: { algorithm: "aimd", minLimit: 1, maxLimit: 10 }
      })
      const events = yield* bulkhead.subscribe
      // one success towards the window of 2
      yield* Bulkhead.isolate(Effect.void, bulkhead)
      const gateA = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const a = yield* start(Bulkhead.isolate(Deferred.await(gateA), bulkhead))
      const b = yield* start(Bulkhead.isolate(Deferred.await(gate), bulkhead))
      const ran: Array<number> = []
      const waiters = yield* Effect.forEach([1, 2, 3], (id) =>
        start(
          Bulkhead.isolate(
            Effect.andThen(
              Effect.sync(() => ran.push(id)),
              Deferred.await(gate)
            ),
            bulkhead
          )
        )
      )
      assert.deepStrictEqual(yield* bulkhead.state(), { key: "default", active: 2, queued: 3, available: 0, limit: 2 })
      // `a` ends: the window of 2 completes, the limit is 3, and two waiters start for the one permit freed
      yield* Deferred.succeed(gateA, undefined)
      yield* Fiber.join(a)
      yield* Effect.yieldNow
      assert.deepStrictEqual(ran, [1, 2])
      assert.deepStrictEqual(yield* bulkhead.state(), { key: "default", active: 3, queued: 1, available: 0, limit: 3 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(b)
      for (const w of waiters) yield* Fiber.join(w)
      assert.deepStrictEqual(ran, [1, 2, 3])
      // one event per change of the integer limit, in order
      const changes = (yield* Queue.takeAll(events)).flatMap((e) =>
        e._tag === "LimitChanged" ? [[e.bulkhead, e.key, e.algorithm, e.from, e.to] as const] : []
      )
      assert.deepStrictEqual(changes[0], ["default", "default", "aimd", 2, 3])
      changes.forEach(([, , , from, to], i) => {
        assert.notStrictEqual(from, to)
        if (i > 0) assert.strictEqual(from, changes[i - 1]?.[4])
      })
      assert.strictEqual(changes.length, (yield* bulkhead.stats).limitChanges)
      assert.strictEqual(changes[changes.length - 1]?.[4], yield* limitOf(bulkhead))
    }).pipe(Effect.scoped)
  )

  it.effect("an interrupted call gives its permit back and records nothing (a failure would lower the limit)", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 4,
        limit: { algorithm: "aimd", minLimit: 1, maxLimit: 10 }
      })
      for (let i = 0; i < 3; i++) {
        const running = yield* start(Bulkhead.isolate(Effect.never, bulkhead))
        assert.strictEqual((yield* bulkhead.state()).active, 1)
        yield* Fiber.interrupt(running)
        assert.deepStrictEqual(yield* bulkhead.state(), {
          key: "default",
          active: 0,
          queued: 0,
          available: 4,
          limit: 4
        })
      }
      // a waiter interrupted in line records nothing either
      const full = yield* Bulkhead.make({
        maxConcurrent: 1,
        maxQueue: 1,
        maxWait: "1 minute",
        limit: { algorithm: "vegas", minLimit: 1, maxLimit: 10 }
      })
      const gate = yield* Deferred.make<void>()
      const holder = yield* start(Bulkhead.isolate(Deferred.await(gate), full))
      const waiter = yield* start(Bulkhead.isolate(Effect.void, full))
      yield* Fiber.interrupt(waiter)
      assert.deepStrictEqual(yield* full.state(), { key: "default", active: 1, queued: 0, available: 0, limit: 1 })
      yield* Fiber.interrupt(holder)
      assert.strictEqual((yield* full.stats).limitChanges, 0)
      // the control: a failure is a drop
      yield* Effect.flip(Bulkhead.isolate(Effect.fail("boom"), bulkhead))
      assert.strictEqual(yield* limitOf(bulkhead), 3)
    }).pipe(Effect.scoped)
  )

  it.effect("keyed: each key has its own limit", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 6,
        limit: { algorithm: "aimd", minLimit: 1, maxLimit: 20, latencyThreshold: "100 millis" }
      })
      yield* waves(bulkhead, 3, 500, { key: "slow" })
      yield* waves(bulkhead, 3, 10, { key: "fast" })
      assert.deepStrictEqual(
        [yield* limitOf(bulkhead, "slow"), yield* limitOf(bulkhead, "fast"), yield* limitOf(bulkhead)],
        [3, 7, 6]
      )
      // a key not held reports the initial limit
      assert.strictEqual(yield* limitOf(bulkhead, "unknown"), 6)
    }).pipe(Effect.scoped)
  )

  it.effect("an adaptive key is swept only once idle a whole sweepInterval (it keeps what it learned meanwhile)", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: 6,
        sweepInterval: "1 second",
        limit: { algorithm: "aimd", minLimit: 1, maxLimit: 20, latencyThreshold: "100 millis" }
      })
      yield* TestClock.adjust("500 millis")
      yield* waves(bulkhead, 2, 200, { key: "a" })
      // the sweep at 1 s finds "a" idle for 300 ms: kept, with its limit
      yield* TestClock.adjust("300 millis")
      assert.deepStrictEqual([(yield* bulkhead.stats).keys, yield* limitOf(bulkhead, "a")], [1, 4])
      // the sweep at 2 s finds it idle for 1.3 s: dropped (a new call starts at the initial limit)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual([(yield* bulkhead.stats).keys, yield* limitOf(bulkhead, "a")], [0, 6])
    }).pipe(Effect.scoped)
  )

  it.effect("compartments(max): keyed limits listed, the busiest first, then the limit furthest below maxLimit", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({
        name: "search",
        maxConcurrent: 10,
        sweepInterval: "1 second",
        limit: { algorithm: "aimd", minLimit: 2, maxLimit: 20 }
      })
      const failing = (key: string) => Effect.ignore(Effect.fail("timeout").pipe(Bulkhead.isolate(bulkhead, { key })))
      // aimd drops ×0.9 on each failure: "a" 10 → 9, "b" 10 → 9 → 8; "c" succeeds and keeps 10
      yield* failing("a")
      yield* failing("b")
      yield* failing("b")
      yield* Bulkhead.isolate(Effect.void, bulkhead, { key: "c" })
      const gate = yield* Deferred.make<void>()
      // "d": one call running (1 of 10) comes before every idle one
      const running = yield* start(Bulkhead.isolate(Deferred.await(gate), bulkhead, { key: "d" }))
      const list = yield* bulkhead.compartments(4)
      assert.deepStrictEqual(
        [list.total, list.compartments.map((c) => [c.key, c.active, c.limit, c.available])],
        [
          5,
          [
            ["d", 1, 10, 9],
            ["b", 0, 8, 8],
            ["a", 0, 9, 9],
            ["c", 0, 10, 10]
          ]
        ]
      )
      // one more drop on "a" (9 → 8): "a" ties "b", the key breaks the tie
      yield* failing("a")
      assert.deepStrictEqual(
        (yield* bulkhead.compartments(3)).compartments.map((c) => [c.key, c.limit]),
        [
          ["d", 10],
          ["a", 8],
          ["b", 8]
        ]
      )
      // idle a whole sweepInterval, the adaptive keys are swept and gone from the list; "d" stays while it runs
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(
        (yield* bulkhead.compartments(10)).compartments.map((c) => [c.key, c.limit]),
        [
          ["d", 10],
          ["search", 10]
        ]
      )
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(running)
    }).pipe(Effect.scoped)
  )

  it.effect("a cost above minLimit is BulkheadCostExceeded (naming minLimit): a cost must always fit", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 8, limit: { algorithm: "gradient", minLimit: 2 } })
      assert.strictEqual(yield* Bulkhead.isolate(Effect.succeed("ok"), bulkhead, { cost: 2 }), "ok")
      const error = yield* Effect.flip(Bulkhead.isolate(Effect.void, bulkhead, { cost: 3 }))
      assert.deepStrictEqual(
        [error.reason._tag, error.reason._tag === "BulkheadCostExceeded" && error.reason.maxConcurrent],
        ["BulkheadCostExceeded", 2]
      )
      // a full key reports its current limit
      const gate = yield* Deferred.make<void>()
      const fixed = yield* Bulkhead.make({ maxConcurrent: 1, limit: { algorithm: "aimd", minLimit: 1 } })
      yield* start(Bulkhead.isolate(Deferred.await(gate), fixed))
      const full = yield* Effect.flip(Bulkhead.isolate(Effect.void, fixed))
      assert.deepStrictEqual(
        [full.reason._tag, full.reason._tag === "BulkheadFull" && full.reason.maxConcurrent],
        ["BulkheadFull", 1]
      )
      yield* Deferred.succeed(gate, undefined)
    }).pipe(Effect.scoped)
  )

  it.effect("metrics: the resilience.bulkhead.limit gauge follows the bulkhead's own limit", () =>
    Effect.gen(function* () {
      const read = Effect.map(Metric.snapshot, (snapshots) => {
        const s = snapshots.find(
          (m) => m.id === "resilience.bulkhead.limit" && m.attributes?.["resilience.name"] === "adaptive"
        )
        const state: object | undefined = s?.state
        return state !== undefined && "value" in state ? Number(state.value) : undefined
      })
      const bulkhead = yield* Bulkhead.make({
        name: "adaptive",
        maxConcurrent: 5,
        limit: { algorithm: "aimd", latencyThreshold: "100 millis" }
      })
      assert.strictEqual(yield* read, 5)
      yield* waves(bulkhead, 2, 200)
      assert.strictEqual(yield* read, 3)
      // a fixed bulkhead reports maxConcurrent
      yield* Bulkhead.make({ name: "fixed", maxConcurrent: 7 })
      const snapshots = yield* Metric.snapshot
      const fixed = snapshots.find(
        (m) => m.id === "resilience.bulkhead.limit" && m.attributes?.["resilience.name"] === "fixed"
      )
      const state: object | undefined = fixed?.state
      assert.isTrue(state !== undefined && "value" in state && Number(state.value) === 7)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Bulkhead adaptive options", () => {
  it.effect("defaults: each algorithm's, maxConcurrent as the initial limit (10 within the bounds when unset)", () =>
    Effect.gen(function* () {
      const aimd = yield* Bulkhead.validateOptions({ limit: { algorithm: "aimd" } })
      assert.strictEqual(aimd.maxConcurrent, 10)
      assert.deepStrictEqual(
        aimd.limit?.algorithm === "aimd"
          ? { ...aimd.limit, latencyThreshold: Duration.toMillis(aimd.limit.latencyThreshold) }
          : undefined,
        { algorithm: "aimd", minLimit: 1, maxLimit: 200, backoffRatio: 0.9, latencyThreshold: 5_000 }
      )
      const gradient = yield* Bulkhead.validateOptions({ limit: { algorithm: "gradient", minLimit: 20 } })
      assert.strictEqual(gradient.maxConcurrent, 20)
      assert.deepStrictEqual(
        gradient.limit?.algorithm === "gradient"
          ? { ...gradient.limit, window: Duration.toMillis(gradient.limit.window) }
          : undefined,
        {
          algorithm: "gradient",
          minLimit: 20,
          maxLimit: 200,
          smoothing: 0.2,
          queueSize: undefined,
          longWindow: 600,
          window: 1_000,
          minWindowSamples: 10
        }
      )
      const vegas = yield* Bulkhead.validateOptions({ maxConcurrent: 3, limit: { algorithm: "vegas", maxLimit: 5 } })
      assert.deepStrictEqual(
        [vegas.maxConcurrent, vegas.limit],
        [
          3,
          {
            algorithm: "vegas",
            minLimit: 1,
            maxLimit: 5,
            alpha: undefined,
            beta: undefined,
            smoothing: 1,
            probeMultiplier: 30
          }
        ]
      )
      // without `limit`, nothing changes
      assert.isFalse("limit" in (yield* Bulkhead.validateOptions({})))
      // the smallest valid values
      const smallest = yield* Bulkhead.validateOptions({
        maxConcurrent: 1,
        limit: {
          algorithm: "gradient",
          minLimit: 1,
          maxLimit: 1,
          smoothing: 1e-9,
          queueSize: 0,
          longWindow: 1,
          window: 1,
          minWindowSamples: 1
        }
      })
      assert.strictEqual(smallest.limit?.maxLimit, 1)
    })
  )

  it.effect("invalid options fail with one InvalidOptions listing every bad field and value", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Bulkhead.validateOptions({
          maxQueue: -1,
          limit: { algorithm: "aimd", minLimit: 0, maxLimit: 2.5, backoffRatio: 1, latencyThreshold: 0 }
        })
      )
      assert.instanceOf(error, Options.InvalidOptions)
      assert.deepStrictEqual(
        error.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["maxQueue", "-1", "Expected a value greater than or equal to 0"],
          ["limit.minLimit", "0", "Expected a value greater than or equal to 1"],
          ["limit.maxLimit", "2.5", "Expected an integer"],
          ["limit.backoffRatio", "1", "Expected a value between 0 (excluded) and 1 (excluded)"],
          ["limit.latencyThreshold", "0", "Expected a duration greater than zero"]
        ]
      )
      const bounds = yield* Effect.flip(
        Bulkhead.validateOptions({
          maxConcurrent: 50,
          limit: { algorithm: "gradient", minLimit: 5, maxLimit: 20, smoothing: 0 }
        })
      )
      assert.deepStrictEqual(
        bounds.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["limit.smoothing", "0", "Expected a value between 0 (excluded) and 1"],
          ["maxConcurrent", "50", "Expected the initial limit within [minLimit, maxLimit] = [5, 20]"]
        ]
      )
      const order = yield* Effect.flip(
        Bulkhead.validateOptions({
          limit: { algorithm: "vegas", minLimit: 5, maxLimit: 4, alpha: 6, beta: 3, probeMultiplier: 0 }
        })
      )
      assert.deepStrictEqual(
        order.issues.map((i) => [i.path, i.value, i.message]),
        [
          ["limit.probeMultiplier", "0", "Expected a value greater than or equal to 1"],
          ["limit.maxLimit", "4", "Expected a value at least minLimit (5)"],
          ["limit.beta", "3", "Expected a value above alpha (6)"]
        ]
      )
    })
  )

  it.effect("layerConfig reads the limit from the environment (path_limit_algorithm, …)", () =>
    Effect.gen(function* () {
      const read = (env: Record<string, string>) =>
        Effect.exit(
          Effect.map(Bulkhead.Bulkhead, (b) => [
            b.options.maxConcurrent,
            b.options.limit?.algorithm,
            b.options.limit?.maxLimit
          ]).pipe(
            Effect.provide(
              Bulkhead.layerConfig("db").pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))
            )
          )
        )
      const ok = yield* read({ db_maxConcurrent: "4", db_limit_algorithm: "vegas", db_limit_maxLimit: "40" })
      assert.deepStrictEqual(ok._tag === "Success" ? ok.value : ok, [4, "vegas", 40])
      const bad = yield* read({ db_limit_algorithm: "aimd", db_limit_backoffRatio: "2" })
      assert.isTrue(bad._tag === "Failure")
    })
  )
})
