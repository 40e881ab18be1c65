import { assert, describe, it } from "@effect/vitest"
import { Chaos, Telemetry } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"

/** How many of `n` calls through `chaos` ended each way. */
const tally = (chaos: Chaos.Chaos, n: number, key?: string) =>
  Effect.gen(function* () {
    const counts = { success: 0, failure: 0, defect: 0 }
    for (let i = 0; i < n; i++) {
      const exit = yield* Effect.exit(Chaos.inject(Effect.succeed(i), chaos, key === undefined ? undefined : { key }))
      if (Exit.isSuccess(exit)) counts.success++
      else if (Cause.hasDies(exit.cause)) counts.defect++
      else counts.failure++
    }
    return counts
  })

describe("Chaos", () => {
  it.effect("rate 0 never injects, rate 1 always does; a failure is a typed ChaosError, a defect a ChaosDefect", () =>
    Effect.gen(function* () {
      const none = yield* Chaos.make({ failureRate: 0, defectRate: 0 })
      assert.deepStrictEqual(yield* tally(none, 100), { success: 100, failure: 0, defect: 0 })
      const failing = yield* Chaos.make({ name: "pay", failureRate: 1 })
      const error = yield* Effect.flip(Chaos.inject(Effect.succeed(1), failing, { key: "eu" }))
      assert.deepStrictEqual([error._tag, error.chaos, error.key], ["ChaosError", "pay", "eu"])
      const dying = yield* Chaos.make({ defectRate: 1 })
      const exit = yield* Effect.exit(Chaos.inject(Effect.succeed(1), dying))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      const defect = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Die") : undefined
      assert.instanceOf(defect?._tag === "Die" ? defect.defect : undefined, Chaos.ChaosDefect)
    }).pipe(Effect.scoped)
  )

  it.effect("the share of calls faulted follows the rates, reproducibly under a seed", () =>
    Effect.gen(function* () {
      const chaos = yield* Chaos.make({ failureRate: 0.2, defectRate: 0.1 })
      const first = yield* tally(chaos, 4_000).pipe(Random.withSeed("rates"))
      const again = yield* tally(chaos, 4_000).pipe(Random.withSeed("rates"))
      assert.deepStrictEqual(first, again)
      assert.approximately(first.failure / 4_000, 0.2, 0.03)
      assert.approximately(first.defect / 4_000, 0.1, 0.03)
    }).pipe(Effect.scoped)
  )

  it.effect("property: over random rates and seeds, each fault's share is within four deviations of its rate", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.double({ min: 0, max: 0.5, noNaN: true }),
          fc.double({ min: 0, max: 0.5, noNaN: true }),
          fc.string({ minLength: 1, maxLength: 8 }),
          async (failureRate, defectRate, seed) => {
            const n = 2_000
            const counts = await Effect.runPromise(
              Effect.flatMap(Chaos.make({ failureRate, defectRate }), (chaos) => tally(chaos, n)).pipe(
                Effect.scoped,
                Random.withSeed(seed)
              )
            )
            // four deviations, plus three events: for rates so small that n × rate is far below one, the normal
            // approximation fails (one defect at a rate of 7e-7 was "beyond four deviations")
            const within = (observed: number, rate: number) =>
              Math.abs(observed - n * rate) <= 4 * Math.sqrt(n * rate * (1 - rate)) + 3
            return within(counts.failure, failureRate) && within(counts.defect, defectRate)
          }
        ),
        { numRuns: 40 }
      )
    )
  )

  it.effect("latency: a delay between latencyMin and latencyMax on the clock, before the call runs", () =>
    Effect.gen(function* () {
      const chaos = yield* Chaos.make({ latencyRate: 1, latencyMin: "1 second", latencyMax: "3 seconds" })
      const events = yield* chaos.subscribe
      let ran = false
      const call = yield* Effect.forkChild(
        Chaos.inject(
          Effect.sync(() => {
            ran = true
            return "done"
          }),
          chaos
        )
      )
      yield* TestClock.adjust("999 millis")
      assert.isFalse(ran)
      yield* TestClock.adjust("2001 millis")
      assert.strictEqual(yield* Fiber.join(call), "done")
      const [event] = yield* Queue.takeAll(events)
      const delay = event?.delay === undefined ? -1 : Duration.toMillis(event.delay)
      assert.isTrue(delay >= 1_000 && delay <= 3_000, `delay ${delay}`)
      assert.deepStrictEqual([event?.fault, (yield* chaos.stats).latency], ["latency", 1])
    }).pipe(Effect.scoped)
  )

  it.effect("hang: the call never ends until interrupted (a timeout around it fires)", () =>
    Effect.gen(function* () {
      const chaos = yield* Chaos.make({ hangRate: 1 })
      const call = yield* Effect.forkChild(
        Chaos.inject(Effect.succeed("never"), chaos).pipe(Effect.timeoutOption("5 seconds"))
      )
      yield* TestClock.adjust("1 hour")
      assert.isTrue(Option.isNone(yield* Fiber.join(call)))
      assert.strictEqual((yield* chaos.stats).hang, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("disable and enable at run time; keys limit faults to some keys", () =>
    Effect.gen(function* () {
      const chaos = yield* Chaos.make({ name: "api", failureRate: 1, keys: ["tenant-a"] })
      assert.strictEqual((yield* tally(chaos, 10, "tenant-b")).success, 10)
      assert.strictEqual((yield* tally(chaos, 10)).success, 10) // the instance's name is not listed
      assert.strictEqual((yield* tally(chaos, 10, "tenant-a")).failure, 10)
      yield* chaos.disable
      assert.isFalse(yield* chaos.enabled)
      assert.strictEqual((yield* tally(chaos, 10, "tenant-a")).success, 10)
      yield* chaos.enable
      assert.strictEqual((yield* tally(chaos, 10, "tenant-a")).failure, 10)
      const off = yield* Chaos.make({ enabled: false, failureRate: 1 })
      assert.strictEqual((yield* tally(off, 10)).success, 10)
    }).pipe(Effect.scoped)
  )

  it.effect(
    "force: caller-chosen faults, whatever the rates, only while enabled and targeted, counted and published",
    () =>
      Effect.gen(function* () {
        const chaos = yield* Chaos.make({ name: "api", keys: ["tenant-a"] }) // every rate 0
        const events = yield* chaos.subscribe
        const late = yield* Effect.forkChild(
          chaos.force(Effect.succeed("late"), { delay: Duration.seconds(2) }, { key: "tenant-a" })
        )
        yield* TestClock.adjust("1999 millis")
        assert.isUndefined(late.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(late), "late")
        const error = yield* Effect.flip(chaos.force(Effect.succeed(1), { fault: "failure" }, { key: "tenant-a" }))
        assert.deepStrictEqual([error._tag, error.key], ["ChaosError", "tenant-a"])
        const died = yield* Effect.exit(chaos.force(Effect.succeed(1), { fault: "defect" }, { key: "tenant-a" }))
        assert.isTrue(Exit.isFailure(died) && Cause.hasDies(died.cause))
        // not targeted, or disabled: the call runs as it is
        assert.strictEqual(yield* chaos.force(Effect.succeed(2), { fault: "failure" }, { key: "tenant-b" }), 2)
        yield* chaos.disable
        assert.strictEqual(yield* chaos.force(Effect.succeed(3), { fault: "hang" }, { key: "tenant-a" }), 3)
        assert.deepStrictEqual(yield* chaos.stats, { calls: 5, latency: 1, failure: 1, defect: 1, hang: 0 })
        const published = yield* Queue.takeAll(events)
        assert.deepStrictEqual(
          published.map((event) => [event.fault, event.key]),
          [
            ["latency", "tenant-a"],
            ["failure", "tenant-a"],
            ["defect", "tenant-a"]
          ]
        )
      }).pipe(Effect.scoped)
  )

  it.effect("invalid options fail with one InvalidOptions listing every bad field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Chaos.validateOptions({ latencyRate: -0.1, latencyMin: "2 seconds", latencyMax: "1 second", hangRate: 2 })
      )
      assert.deepStrictEqual(
        error.issues.map((issue) => [issue.path, issue.value]),
        [
          ["latencyRate", "-0.1"],
          ["hangRate", "2"],
          ["latencyMax", "1s"]
        ]
      )
      const sum = yield* Effect.flip(Chaos.validateOptions({ failureRate: 0.6, defectRate: 0.3, hangRate: 0.2 }))
      assert.deepStrictEqual(
        sum.issues.map((issue) => issue.path),
        ["failureRate"]
      )
    })
  )

  it.effect("metrics: calls and faults by kind, named by the instance, never a key", () =>
    Effect.gen(function* () {
      const chaos = yield* Chaos.make({ name: "metered", failureRate: 1 })
      yield* tally(chaos, 3, "secret-key")
      const snapshot = yield* Metric.snapshot
      const value = (id: string, reason?: string) =>
        snapshot.find(
          (m) =>
            m.id === id &&
            m.attributes?.[Telemetry.attributes.name] === "metered" &&
            (reason === undefined || m.attributes?.[Telemetry.attributes.reason] === reason)
        )
      const count = (m: ReturnType<typeof value>) => (m !== undefined && m.type === "Counter" ? m.state.count : -1)
      assert.strictEqual(count(value(Telemetry.chaos.calls.name)), 3)
      assert.strictEqual(count(value(Telemetry.chaos.injected.name, "failure")), 3)
      assert.strictEqual(count(value(Telemetry.chaos.injected.name, "latency")), 0)
      for (const m of snapshot) assert.notInclude(Object.values(m.attributes ?? {}), "secret-key")
    }).pipe(Effect.scoped)
  )

  it.effect("layerConfig reads the options from the environment", () =>
    Effect.gen(function* () {
      const chaos = yield* Chaos.Chaos
      assert.deepStrictEqual(
        [chaos.name, chaos.options.enabled, chaos.options.failureRate, Duration.toMillis(chaos.options.latencyMin)],
        ["chaos", false, 0.25, 50]
      )
    }).pipe(
      Effect.provide(
        Chaos.layerConfig("chaos").pipe(
          Layer.provide(
            ConfigProvider.layer(
              ConfigProvider.fromEnv({
                env: { chaos_enabled: "false", chaos_failureRate: "0.25", chaos_latencyMin: "50 millis" }
              })
            )
          )
        )
      )
    )
  )
})
