import { assert, describe, it } from "@effect/vitest"
import { Hedge, Options, Retry } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"

/** Attempts whose latencies come from `latencies` in order; records starts and interruptions. */
const calls = (latencies: ReadonlyArray<number>, fail: ReadonlyArray<number> = []) => {
  const log = { started: 0, interrupted: 0 }
  const effect = Effect.suspend(() => {
    const n = ++log.started
    const latency = latencies[n - 1] ?? 0
    const result = fail.includes(n) ? Effect.fail(`attempt ${n} failed`) : Effect.succeed(`attempt ${n}`)
    return Effect.andThen(Effect.sleep(`${latency} millis`), result).pipe(
      Effect.onInterrupt(() => Effect.sync(() => log.interrupted++))
    )
  })
  return { effect, log }
}

const run = <A, E>(effect: Effect.Effect<A, E>, millis: number) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    for (let i = 0; i < millis / 10 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("10 millis")
    return yield* Fiber.await(fiber)
  })

describe("Hedge", () => {
  it.effect("a fast first attempt sends no hedge", () =>
    Effect.gen(function* () {
      const { effect, log } = calls([50])
      const policy = Hedge.make({ delay: "100 millis" })
      assert.deepStrictEqual(yield* run(Hedge.hedge(effect, policy), 1_000), Exit.succeed("attempt 1"))
      assert.strictEqual(log.started, 1)
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 0, won: 0, refused: 0 })
    })
  )

  it.effect("after the delay a hedge starts; the first success wins and the other attempt is interrupted", () =>
    Effect.gen(function* () {
      const { effect, log } = calls([1_000, 20])
      const policy = Hedge.make({ delay: "100 millis" })
      assert.deepStrictEqual(yield* run(Hedge.hedge(effect, policy), 2_000), Exit.succeed("attempt 2"))
      assert.deepStrictEqual([log.started, log.interrupted], [2, 1])
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 1, won: 1, refused: 0 })
    })
  )

  it.effect("up to maxHedges further attempts; when all fail the last failure is returned", () =>
    Effect.gen(function* () {
      const { effect, log } = calls([500, 500, 500], [1, 2, 3])
      const exit = yield* run(Hedge.hedge(effect, Hedge.make({ delay: "100 millis", maxHedges: 2 })), 2_000)
      assert.strictEqual(log.started, 3)
      assert.isTrue(Exit.isFailure(exit))
    })
  )

  it.effect("a failed attempt with nothing else running starts the next hedge at once", () =>
    Effect.gen(function* () {
      const { effect, log } = calls([10, 10], [1])
      const exit = yield* run(Hedge.hedge(effect, Hedge.make({ delay: "1 second" })), 100)
      assert.deepStrictEqual(exit, Exit.succeed("attempt 2"))
      assert.strictEqual(log.started, 2)
    })
  )

  it.effect("hedges spend the retry budget; a refused hedge is not started", () =>
    Effect.gen(function* () {
      const budget = Retry.constant({
        delay: 0,
        budgetRatio: 0,
        budgetMinRetriesPerSecond: 0.1,
        budgetWindow: "10 seconds"
      })
      const policy = Hedge.make({ delay: "100 millis", budget })
      // the floor allows one retry in the window: the first call hedges, the second cannot
      const first = calls([1_000, 10])
      assert.deepStrictEqual(yield* run(Hedge.hedge(first.effect, policy), 2_000), Exit.succeed("attempt 2"))
      const second = calls([1_000, 10])
      assert.deepStrictEqual(yield* run(Hedge.hedge(second.effect, policy), 2_000), Exit.succeed("attempt 1"))
      assert.strictEqual(second.log.started, 1)
      assert.deepStrictEqual(yield* policy.stats, { calls: 2, started: 1, won: 1, refused: 1 })
    })
  )

  it.effect("a ratio budget used only by hedges: each hedged call records a request, so hedges pass the floor", () =>
    Effect.gen(function* () {
      // the floor alone allows one hedge per window; the ratio one per two calls
      const budget = Retry.constant({ delay: 0, budgetRatio: 0.5, budgetMinRetriesPerSecond: 0.1 })
      const policy = Hedge.make({ delay: "100 millis", budget })
      for (let i = 0; i < 10; i++) yield* run(Hedge.hedge(calls([1_000, 10]).effect, policy), 2_000)
      // call n may hedge while hedges + 1 <= 0.5 * n + 1: calls 1, 2, 4, 6, 8 and 10
      assert.deepStrictEqual(yield* policy.stats, { calls: 10, started: 6, won: 6, refused: 4 })
    })
  )

  it.effect("key: a call records its request and withdraws its hedges under its own key", () =>
    Effect.gen(function* () {
      const budget = Retry.constant({ delay: 0, budgetRatio: 0, budgetMinRetriesPerSecond: 0.1 })
      const policy = Hedge.make({ delay: "100 millis", budget })
      const hedged = (key: string) => run(Hedge.hedge(calls([1_000, 10]).effect, policy, { key }), 2_000)
      // one hedge per key and window: the second call of "a" is refused, "b" has a budget of its own
      assert.deepStrictEqual(
        [yield* hedged("a"), yield* hedged("a"), yield* hedged("b")],
        [Exit.succeed("attempt 2"), Exit.succeed("attempt 1"), Exit.succeed("attempt 2")]
      )
      assert.deepStrictEqual(yield* policy.stats, { calls: 3, started: 2, won: 2, refused: 1 })
      // the data-last form takes the key too
      const third = calls([1_000, 10])
      assert.deepStrictEqual(
        yield* run(third.effect.pipe(Hedge.hedge(policy, { key: "c" })), 2_000),
        Exit.succeed("attempt 2")
      )
    })
  )

  it.effect("inside Retry.retry with the same budget and key, the hedged call records no second request", () =>
    Effect.gen(function* () {
      // ratio 1, no floor: one recorded request allows one hedge, two would allow two
      const budget = Retry.constant({ delay: 0, maxAttempts: 2, budgetRatio: 1, budgetMinRetriesPerSecond: 0 })
      const policy = Hedge.make({ delay: "100 millis", maxHedges: 2, budget })
      const { effect } = calls([1_000, 1_000, 10])
      const exit = yield* run(effect.pipe(Hedge.hedge(policy, { key: "k" }), Retry.retry(budget, { key: "k" })), 2_000)
      assert.deepStrictEqual(exit, Exit.succeed("attempt 1"))
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 1, won: 0, refused: 1 })
      // under another key the retry's request is not the hedge's: the hedged call records its own
      const other = Hedge.make({ delay: "100 millis", maxHedges: 2, budget })
      yield* run(calls([1_000, 1_000, 10]).effect.pipe(Hedge.hedge(other, { key: "j" }), Retry.retry(budget)), 2_000)
      assert.deepStrictEqual(yield* other.stats, { calls: 1, started: 1, won: 0, refused: 1 })
    })
  )

  it.effect("a win by a hedge that started before a refusal is counted", () =>
    Effect.gen(function* () {
      // the floor allows one hedge: attempt 2 starts at 100 ms, attempt 3 is refused at 200 ms, attempt 2 wins at 250 ms
      const budget = Retry.constant({ delay: 0, budgetRatio: 0, budgetMinRetriesPerSecond: 0.1 })
      const policy = Hedge.make({ delay: "100 millis", maxHedges: 2, budget })
      const events = yield* policy.subscribe
      const { effect, log } = calls([1_000, 150])
      assert.deepStrictEqual(yield* run(Hedge.hedge(effect, policy), 2_000), Exit.succeed("attempt 2"))
      assert.deepStrictEqual([log.started, log.interrupted], [2, 1])
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 1, won: 1, refused: 1 })
      assert.deepStrictEqual(
        (yield* Queue.takeAll(events)).map((e) => (e._tag === "HedgeRefused" ? e._tag : `${e._tag} ${e.attempt}`)),
        ["HedgeStarted 2", "HedgeRefused", "HedgeWon 2"]
      )
    })
  )

  it.effect("a win by a hedge that started after a refusal is counted", () =>
    Effect.gen(function* () {
      // one hedge per 1 s window: attempt 2 at 100 ms, refused at 200 ms; attempt 2 fails at 1150 ms,
      // the window has freed by 1250 ms: attempt 3 starts then and wins at 1260 ms
      const budget = Retry.constant({
        delay: 0,
        budgetRatio: 0,
        budgetMinRetriesPerSecond: 1,
        budgetWindow: "1 second"
      })
      const policy = Hedge.make({ delay: "100 millis", maxHedges: 2, budget })
      const { effect, log } = calls([5_000, 1_050, 10], [2])
      assert.deepStrictEqual(yield* run(Hedge.hedge(effect, policy), 3_000), Exit.succeed("attempt 3"))
      assert.deepStrictEqual([log.started, log.interrupted], [3, 1])
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 2, won: 1, refused: 1 })
    })
  )

  it.effect("an adaptive delay follows the observed percentile", () =>
    Effect.gen(function* () {
      const policy = Hedge.make({ delay: { percentile: 0.9, initial: "500 millis", minSamples: 16 } })
      for (let i = 0; i < 32; i++) {
        const { effect } = calls([10 * ((i % 10) + 1)])
        yield* run(Hedge.hedge(effect, policy), 1_000)
      }
      // latencies 10..100 ms: the 90th percentile is 90 ms (TestClock steps of 10 ms)
      assert.strictEqual(policy.currentDelayMillis(), 90)
    })
  )

  it.effect("a zero delay is refused", () =>
    Effect.gen(function* () {
      const policy = Hedge.make({ delay: 0 })
      assert.instanceOf(policy.invalid, Options.InvalidOptions)
      assert.deepStrictEqual(
        policy.invalid?.issues.map((i) => i.path),
        ["delay"]
      )
      const exit = yield* Effect.exit(Hedge.hedge(Effect.succeed(1), policy))
      assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Die"))
    })
  )

  it.effect("metrics: hedges started and won", () =>
    Effect.gen(function* () {
      const policy = Hedge.make({ name: "search", delay: "100 millis" })
      yield* run(Hedge.hedge(calls([1_000, 10]).effect, policy), 2_000)
      const snapshot = yield* Metric.snapshot
      const count = (id: string) => {
        const s = snapshot.find((m) => m.id === id && m.attributes?.["resilience.name"] === "search")
        return s !== undefined && "count" in s.state ? s.state.count : -1
      }
      assert.deepStrictEqual([count("resilience.hedge.started"), count("resilience.hedge.won")], [1, 1])
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("metrics: hedges refused by the budget", () =>
    Effect.gen(function* () {
      const budget = Retry.constant({
        delay: 0,
        budgetRatio: 0,
        budgetMinRetriesPerSecond: 0.1,
        budgetWindow: "10 seconds"
      })
      const policy = Hedge.make({ name: "lookup", delay: "100 millis", budget })
      // the floor allows one hedge in the window: the first call hedges, the next two are refused
      for (let i = 0; i < 3; i++) yield* run(Hedge.hedge(calls([1_000, 10]).effect, policy), 2_000)
      const snapshot = yield* Metric.snapshot
      const count = (id: string) => {
        const s = snapshot.find((m) => m.id === id && m.attributes?.["resilience.name"] === "lookup")
        return s !== undefined && "count" in s.state ? s.state.count : -1
      }
      assert.deepStrictEqual(
        [count("resilience.hedge.started"), count("resilience.hedge.won"), count("resilience.hedge.refused")],
        [1, 1, 2]
      )
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Hedge: interruption and the fast path", () => {
  it.effect("a call that completes before it first suspends answers at once: no timer, no hedge", () =>
    Effect.gen(function* () {
      const policy = Hedge.make({ delay: { percentile: 0.5, initial: "1 second", minSamples: 1 } })
      let runs = 0
      const exit = yield* Effect.exit(
        Hedge.hedge(
          Effect.sync(() => ++runs),
          policy
        )
      )
      // no TestClock.adjust: a call that waited for a timer would never get here
      assert.deepStrictEqual([exit, runs], [Exit.succeed(1), 1])
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 0, won: 0, refused: 0 })
    })
  )

  it.effect("a first attempt failing before it suspends starts the hedge at once, with no delay", () =>
    Effect.gen(function* () {
      let runs = 0
      const effect = Effect.suspend(() =>
        ++runs === 1 ? Effect.fail("first failed") : Effect.succeed(`attempt ${runs}`)
      )
      const policy = Hedge.make({ delay: "1 second" })
      assert.deepStrictEqual(yield* Effect.exit(Hedge.hedge(effect, policy)), Exit.succeed("attempt 2"))
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 1, won: 1, refused: 0 })
    })
  )

  it.effect("interrupting the caller interrupts every running attempt and waits for them to end", () =>
    Effect.gen(function* () {
      const { effect, log } = calls([1_000, 1_000, 1_000])
      let finalized = 0
      const slowToStop = Effect.onInterrupt(effect, () =>
        Effect.andThen(
          Effect.sleep("50 millis"),
          Effect.sync(() => finalized++)
        )
      )
      const policy = Hedge.make({ delay: "100 millis", maxHedges: 2 })
      const fiber = yield* Effect.forkChild(Hedge.hedge(slowToStop, policy))
      yield* TestClock.adjust("250 millis")
      assert.strictEqual(log.started, 3)
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(fiber))
      yield* TestClock.adjust("10 millis")
      // the attempts' finalizers are still running: the interruption has not completed
      assert.isUndefined(interrupting.pollUnsafe())
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(interrupting)
      assert.deepStrictEqual([log.interrupted, finalized], [3, 3])
      // no timer is left to start a further attempt
      yield* TestClock.adjust("1 second")
      assert.strictEqual(log.started, 3)
    })
  )

  it.effect("the loser is interrupted and has ended before the winner's value is returned", () =>
    Effect.gen(function* () {
      const ended: Array<string> = []
      let n = 0
      const effect = Effect.suspend(() => {
        const attempt = ++n
        return Effect.sleep(attempt === 1 ? "1 second" : "10 millis").pipe(
          Effect.as(`attempt ${attempt}`),
          Effect.onExit(() => Effect.sync(() => ended.push(`attempt ${attempt}`)))
        )
      })
      const exit = yield* run(
        Effect.tap(Hedge.hedge(effect, Hedge.make({ delay: "100 millis" })), () =>
          Effect.sync(() => ended.push("returned"))
        ),
        2_000
      )
      assert.deepStrictEqual(exit, Exit.succeed("attempt 2"))
      assert.deepStrictEqual(ended, ["attempt 2", "attempt 1", "returned"])
    })
  )

  it.live("under the live clock the hedge fires from the shared timer", () =>
    Effect.gen(function* () {
      let n = 0
      const effect = Effect.suspend(() => {
        const attempt = ++n
        return Effect.as(Effect.sleep(attempt === 1 ? "10 seconds" : "1 millis"), `attempt ${attempt}`)
      })
      const policy = Hedge.make({ delay: "5 millis" })
      assert.deepStrictEqual(yield* Effect.exit(Hedge.hedge(effect, policy)), Exit.succeed("attempt 2"))
      assert.deepStrictEqual(yield* policy.stats, { calls: 1, started: 1, won: 1, refused: 0 })
    })
  )
})

describe("Hedge events", () => {
  it.effect("HedgeStarted and HedgeWon", () =>
    Effect.gen(function* () {
      const policy = Hedge.make({ delay: "100 millis" })
      const events = yield* policy.subscribe
      yield* run(Hedge.hedge(calls([1_000, 10]).effect, policy), 2_000)
      const received = yield* Queue.takeAll(events)
      assert.deepStrictEqual(
        received.map((e) => (e._tag === "HedgeRefused" ? e._tag : `${e._tag} ${e.attempt}`)),
        ["HedgeStarted 2", "HedgeWon 2"]
      )
    })
  )
})
