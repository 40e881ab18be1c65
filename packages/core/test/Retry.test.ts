import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, Options, Retry, Timeout } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Tracer from "effect/Tracer"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"

class Transient extends Data.TaggedError("Transient")<{ readonly n: number }> {}
class Permanent extends Data.TaggedError("Permanent") {}
class Throttled extends Data.TaggedError("Throttled")<{ readonly retryAfter: Duration.Duration }> {}

/** A call that fails with `Transient` `failures` times, then succeeds with the attempt number; records call times. */
const flaky = (failures: number) => {
  const times: Array<number> = []
  const effect = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    times.push(now)
    return times.length <= failures ? Effect.fail(new Transient({ n: times.length })) : Effect.succeed(times.length)
  })
  return { effect, times }
}

/** The typed error of a failed exit, as plain data (tag and fields). */
const failureOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  if (exit._tag === "Success") return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? { ...Object(reason.error) } : undefined
}

/** Runs `effect` in a fiber, advancing the TestClock by `step` until it completes. */
const drive = <A, E>(effect: Effect.Effect<A, E>, step: Duration.Input = "100 millis", max = 10_000) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    for (let i = 0; i < max && fiber.pollUnsafe() === undefined; i++) {
      yield* TestClock.adjust(step)
    }
    return yield* Fiber.await(fiber)
  })

/** The `elapsed` each attempt reads (in ms) when every attempt takes 500 ms and fails. */
const elapsedOf = (policy: Retry.Policy) => {
  const seen: Array<number> = []
  const effect = Effect.flatMap(Retry.Attempt, (info) => {
    seen.push(Duration.toMillis(info.elapsed))
    return Effect.andThen(Effect.sleep("500 millis"), Effect.fail(new Transient({ n: info.attempt })))
  })
  return Effect.as(drive(Retry.retry(effect, policy), "100 millis"), seen)
}

describe("Retry", () => {
  describe("policies", () => {
    it.effect("exponential without jitter waits base, base*2, … between attempts", () =>
      Effect.gen(function* () {
        const { effect, times } = flaky(3)
        const exit = yield* drive(
          Retry.retry(
            effect,
            Retry.exponential({ base: "100 millis", cap: "10 seconds", jitter: "none", maxAttempts: 5 })
          )
        )
        assert.deepStrictEqual(exit, Exit.succeed(4))
        assert.deepStrictEqual(times, [0, 100, 300, 700])
      })
    )

    it.effect("linear, fibonacci and constant shapes; the cap bounds every delay", () =>
      Effect.gen(function* () {
        const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((t, i) => t - (times[i] ?? 0))
        const linear = flaky(4)
        yield* drive(
          Retry.retry(
            linear.effect,
            Retry.linear({ base: "100 millis", cap: "250 millis", jitter: "none", maxAttempts: 5 })
          )
        )
        assert.deepStrictEqual(gaps(linear.times), [100, 200, 250, 250])
        const fib = flaky(5)
        yield* drive(
          Retry.retry(
            fib.effect,
            Retry.fibonacci({ base: "100 millis", cap: "1 minute", jitter: "none", maxAttempts: 6 })
          )
        )
        assert.deepStrictEqual(gaps(fib.times), [100, 100, 200, 300, 500])
        const constant = flaky(2)
        yield* drive(Retry.retry(constant.effect, Retry.constant({ delay: "1 second", maxAttempts: 3 })))
        assert.deepStrictEqual(gaps(constant.times), [1000, 1000])
      })
    )

    it.effect("maxAttempts bounds the attempts; the last failure is returned as it was", () =>
      Effect.gen(function* () {
        const { effect, times } = flaky(10)
        const exit = yield* drive(
          Retry.retry(effect, Retry.constant({ delay: "10 millis", maxAttempts: 3 })),
          "10 millis"
        )
        assert.deepStrictEqual(failureOf(exit), { _tag: "Transient", n: 3 })
        assert.strictEqual(times.length, 3)
      })
    )

    it.effect("maxElapsed stops before a wait that would end past it", () =>
      Effect.gen(function* () {
        const { effect, times } = flaky(100)
        yield* drive(
          Retry.retry(effect, Retry.constant({ delay: "1 second", maxAttempts: 100, maxElapsed: "3500 millis" })),
          "1 second"
        )
        assert.deepStrictEqual(times, [0, 1000, 2000, 3000])
      })
    )

    it.effect("fromSchedule takes any Schedule as-is", () =>
      Effect.gen(function* () {
        const { effect, times } = flaky(3)
        yield* drive(
          Retry.retry(effect, Retry.fromSchedule(Schedule.spaced("250 millis"), { maxAttempts: 10 })),
          "250 millis"
        )
        assert.deepStrictEqual(times, [0, 250, 500, 750])
        const limited = flaky(10)
        const exit = yield* drive(Retry.retry(limited.effect, Retry.fromSchedule(Schedule.recurs(2))), "1 millis")
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual(limited.times.length, 3)
      })
    )

    it.effect("full jitter stays within [0, the capped exponential delay]", () =>
      Effect.gen(function* () {
        const { effect, times } = flaky(5)
        yield* drive(
          Retry.retry(
            effect,
            Retry.exponential({ base: "100 millis", cap: "300 millis", jitter: "full", maxAttempts: 6 })
          ),
          "1 millis",
          100_000
        )
        const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0))
        const bounds = [100, 200, 300, 300, 300]
        for (const [i, gap] of gaps.entries()) assert.isTrue(gap >= 0 && gap <= (bounds[i] ?? 0), `gap ${i}: ${gap}`)
      })
    )
  })

  describe("what to retry", () => {
    it.effect("`while` keeps permanent errors from being retried", () =>
      Effect.gen(function* () {
        let calls = 0
        const effect = Effect.suspend(() => {
          calls++
          return calls === 1
            ? Effect.fail<Transient | Permanent>(new Transient({ n: 1 }))
            : Effect.fail(new Permanent())
        })
        const exit = yield* drive(
          Retry.retry(effect, Retry.constant({ delay: "10 millis", maxAttempts: 5 }), {
            while: (e: Transient | Permanent) => e._tag === "Transient"
          })
        )
        assert.deepStrictEqual(failureOf(exit), { _tag: "Permanent" })
        assert.strictEqual(calls, 2)
      })
    )

    it.effect("`whileResult` retries a success value (a 503) and returns the last one when attempts run out", () =>
      Effect.gen(function* () {
        let calls = 0
        const request = Effect.sync(() => ({ status: ++calls < 3 ? 503 : 200 }))
        const policy = Retry.constant({ delay: "10 millis", maxAttempts: 5 })
        const retry503 = { whileResult: (r: { readonly status: number }) => r.status === 503 }
        assert.deepStrictEqual(
          yield* drive(Retry.retry(request, policy, retry503), "10 millis"),
          Exit.succeed({ status: 200 })
        )
        const always503 = Effect.succeed({ status: 503 })
        assert.deepStrictEqual(
          yield* drive(Retry.retry(always503, Retry.constant({ delay: 0, maxAttempts: 2 }), retry503)),
          Exit.succeed({ status: 503 })
        )
      })
    )

    it.effect("interruption is never retried; defects only when asked", () =>
      Effect.gen(function* () {
        let calls = 0
        const dies = Effect.suspend(() => {
          calls++
          return Effect.die("bug")
        })
        yield* drive(Retry.retry(dies, Retry.constant({ delay: 0, maxAttempts: 3 })))
        assert.strictEqual(calls, 1)
        yield* drive(Retry.retry(dies, Retry.constant({ delay: 0, maxAttempts: 3 }), { retryDefects: true }))
        assert.strictEqual(calls, 4)
        let interrupted = 0
        const interrupts = Effect.suspend(() => {
          interrupted++
          return Effect.interrupt
        })
        yield* Effect.exit(Retry.retry(interrupts, Retry.constant({ delay: 0, maxAttempts: 3 })))
        assert.strictEqual(interrupted, 1)
      })
    )
    it.effect("a cause holding a Fail and an Interrupt is never retried (fast path, full loop, retryDefects)", () =>
      Effect.gen(function* () {
        let calls = 0
        const failedAndInterrupted = (extra: Cause.Reason<Transient>) =>
          Effect.suspend(() => {
            calls++
            return Effect.failCause(Cause.fromReasons([extra, Cause.makeInterruptReason()]))
          })
        const failed = failedAndInterrupted(Cause.makeFailReason(new Transient({ n: 1 })))
        // the fast path (no maxElapsed, budget or spans on every attempt) and the full loop (maxElapsed)
        for (const policy of [
          Retry.constant({ delay: 0, maxAttempts: 3 }),
          Retry.constant({ delay: 0, maxAttempts: 3, maxElapsed: "1 minute" })
        ]) {
          calls = 0
          const exit = yield* Effect.exit(Retry.retry(failed, policy))
          assert.isTrue(Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause))
          assert.strictEqual(calls, 1)
        }
        calls = 0
        const died = failedAndInterrupted(Cause.makeDieReason("bug"))
        yield* Effect.exit(Retry.retry(died, Retry.constant({ delay: 0, maxAttempts: 3 }), { retryDefects: true }))
        assert.strictEqual(calls, 1)
      })
    )
  })

  describe("hints", () => {
    it.effect("an error's retryAfter delays the next attempt at least that long, bounded by maxRetryAfter", () =>
      Effect.gen(function* () {
        let calls = 0
        const times: Array<number> = []
        const throttled = Effect.flatMap(Clock.currentTimeMillis, (now) => {
          times.push(now)
          return ++calls < 3
            ? Effect.fail(new Throttled({ retryAfter: Duration.seconds(calls === 1 ? 5 : 120) }))
            : Effect.succeed("ok")
        })
        yield* drive(
          Retry.retry(throttled, Retry.constant({ delay: "100 millis", maxAttempts: 5, maxRetryAfter: "30 seconds" })),
          "100 millis",
          100_000
        )
        assert.deepStrictEqual(times, [0, 5_000, 35_000])
      })
    )

    it.effect("a CircuitOpen rejection's retryAfter is honoured", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "2 seconds" }).pipe(
          Effect.provide(CircuitBreaker.layerStoreMemory())
        )
        yield* Effect.exit(CircuitBreaker.protect(Effect.fail("down"), breaker))
        const times: Array<number> = []
        const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
          times.push(now)
          return Effect.succeed("up")
        }).pipe(CircuitBreaker.protect(breaker))
        const exit = yield* drive(
          Retry.retry(call, Retry.constant({ delay: "10 millis", maxAttempts: 3 }), {
            while: CircuitBreaker.isRejection
          }),
          "10 millis",
          10_000
        )
        assert.deepStrictEqual(exit, Exit.succeed("up"))
        assert.deepStrictEqual(times, [2_000])
      })
    )

    it.effect("a hint longer than the remaining deadline ends the retries at once", () =>
      Effect.gen(function* () {
        let calls = 0
        const throttled = Effect.suspend(() => {
          calls++
          return Effect.fail(new Throttled({ retryAfter: Duration.seconds(10) }))
        })
        const started = yield* Clock.currentTimeMillis
        const exit = yield* drive(
          Retry.retry(throttled, Retry.constant({ delay: "10 millis", maxAttempts: 5, maxElapsed: "5 seconds" })),
          "10 millis"
        )
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual(calls, 1)
        assert.isBelow((yield* Clock.currentTimeMillis) - started, 100)
        // and the enclosing Timeout.deadline counts the same way
        const inDeadline = yield* drive(
          Retry.retry(throttled, Retry.constant({ delay: "10 millis", maxAttempts: 5 })).pipe(
            Timeout.deadline("5 seconds")
          ),
          "10 millis"
        )
        assert.isTrue(Exit.isFailure(inDeadline))
        assert.strictEqual(calls, 2)
      })
    )

    it.effect("a hint longer than both maxRetryAfter and the remaining deadline ends the retries at once", () =>
      Effect.gen(function* () {
        const times: Array<number> = []
        const throttled = Effect.flatMap(Clock.currentTimeMillis, (now) => {
          times.push(now)
          return Effect.fail(new Throttled({ retryAfter: Duration.seconds(10) }))
        })
        // capped, the hint is 1 s, well within the 5 s: the uncapped 10 s is what the deadline is compared with
        const capped = { delay: "10 millis", maxAttempts: 5, maxRetryAfter: "1 second" } as const
        const exit = yield* drive(Retry.retry(throttled, Retry.constant({ ...capped, maxElapsed: "5 seconds" })))
        assert.isTrue(Exit.isFailure(exit))
        assert.deepStrictEqual(times, [0])
        // the same under an enclosing Timeout.deadline (and on the fast path: no maxElapsed)
        times.length = 0
        const start = yield* Clock.currentTimeMillis
        yield* drive(Retry.retry(throttled, Retry.constant(capped)).pipe(Timeout.deadline("5 seconds")))
        assert.deepStrictEqual(times, [start])
        // a hint past maxRetryAfter but within the deadline still waits maxRetryAfter
        times.length = 0
        const from = yield* Clock.currentTimeMillis
        yield* drive(
          Retry.retry(throttled, Retry.constant({ ...capped, maxAttempts: 3, maxElapsed: "30 seconds" })),
          "10 millis"
        )
        assert.deepStrictEqual(
          times.map((t) => t - from),
          [0, 1000, 2000]
        )
      })
    )
  })

  describe("attempt context and spans", () => {
    it.effect("Retry.Attempt holds the attempt number, elapsed time and last error", () =>
      Effect.gen(function* () {
        const seen: Array<Retry.AttemptInfo> = []
        const effect = Effect.flatMap(Retry.Attempt, (info) => {
          seen.push(info)
          return info.attempt < 3 ? Effect.fail(new Transient({ n: info.attempt })) : Effect.succeed("done")
        })
        yield* drive(Retry.retry(effect, Retry.constant({ delay: "1 second", maxAttempts: 3 })), "1 second")
        assert.deepStrictEqual(
          seen.map((info) => [
            info.attempt,
            Duration.toMillis(info.elapsed),
            info.lastError instanceof Transient ? info.lastError.n : info.lastError
          ]),
          [
            [1, 0, undefined],
            [2, 1000, 1],
            [3, 2000, 2]
          ]
        )
      })
    )

    it.effect("elapsed on the fast path counts from the first failure: the first attempt reads no clock", () =>
      Effect.gen(function* () {
        // attempts take 500 ms and fail, 1 s apart: they start at 0, 1500 and 3000 ms; the first fails at 500 ms
        assert.deepStrictEqual(yield* elapsedOf(Retry.constant({ delay: "1 second", maxAttempts: 3 })), [0, 1000, 2500])
      })
    )

    it.effect("elapsed counts from the first attempt's start with maxElapsed, a budget or attemptSpans all", () =>
      Effect.gen(function* () {
        const base = { delay: "1 second", maxAttempts: 3 } as const
        for (const policy of [
          Retry.constant({ ...base, maxElapsed: "1 hour" }),
          Retry.constant({ ...base, budgetRatio: 1 }),
          Retry.constant({ ...base, attemptSpans: "all" })
        ]) {
          assert.deepStrictEqual(yield* elapsedOf(policy), [0, 1500, 3000])
        }
      })
    )

    it.effect(
      "attemptSpans default (retries): no span when the first attempt succeeds; one span per retry with its number and outcome",
      () =>
        Effect.gen(function* () {
          const spans: Array<Tracer.NativeSpan> = []
          const tracer = Tracer.make({
            span(options) {
              const span = new Tracer.NativeSpan(options)
              spans.push(span)
              return span
            }
          })
          const policy = Retry.constant({ delay: "10 millis", maxAttempts: 5, name: "quotes" })
          const describeSpans = () =>
            spans.map((span) => [
              span.name,
              Option.getOrUndefined(Option.map(span.parent, (parent) => (parent._tag === "Span" ? parent.name : ""))),
              span.attributes.get("resilience.retry.attempt"),
              span.attributes.get("resilience.outcome"),
              span.status._tag
            ])
          yield* Retry.retry(Effect.succeed("ok"), policy).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
          assert.deepStrictEqual(describeSpans(), [["request", undefined, undefined, undefined, "Ended"]])
          spans.length = 0
          yield* drive(
            Retry.retry(flaky(2).effect, policy).pipe(Effect.withSpan("request"), Effect.withTracer(tracer)),
            "10 millis"
          )
          assert.deepStrictEqual(describeSpans(), [
            ["request", undefined, undefined, undefined, "Ended"],
            ["Retry.attempt", "request", 2, "failure", "Ended"],
            ["Retry.attempt", "request", 3, "success", "Ended"]
          ])
        })
    )

    it.effect("attemptSpans: all gives one child span per attempt with its number and outcome", () =>
      Effect.gen(function* () {
        const spans: Array<Tracer.Span> = []
        const effect = Effect.flatMap(Effect.currentSpan, (span) => {
          spans.push(span)
          return spans.length < 3 ? Effect.fail(new Transient({ n: spans.length })) : Effect.succeed("done")
        })
        yield* drive(
          Retry.retry(
            effect,
            Retry.constant({ delay: "10 millis", maxAttempts: 5, attemptSpans: "all", name: "quotes" })
          ).pipe(Effect.withSpan("request")),
          "10 millis"
        )
        assert.deepStrictEqual(
          spans.map((span) => [
            span.name,
            span.attributes.get("resilience.retry.attempt"),
            span.attributes.get("resilience.outcome"),
            span.attributes.get("resilience.name")
          ]),
          [
            ["Retry.attempt", 1, "failure", "quotes"],
            ["Retry.attempt", 2, "failure", "quotes"],
            ["Retry.attempt", 3, "success", "quotes"]
          ]
        )
      })
    )
  })

  describe("budget", () => {
    it.effect("under 100% failure, attempts stay <= requests x (1 + ratio) + floor, then RetryError", () =>
      Effect.gen(function* () {
        let attempts = 0
        const down = Effect.suspend(() => {
          attempts++
          return Effect.fail(new Transient({ n: attempts }))
        })
        const policy = Retry.constant({
          delay: 0,
          maxAttempts: 4,
          budgetRatio: 0.2,
          budgetMinRetriesPerSecond: 1,
          budgetWindow: "10 seconds"
        })
        const requests = 100
        let budgetErrors = 0
        for (let i = 0; i < requests; i++) {
          const exit = yield* Effect.exit(Retry.retry(down, policy))
          if (Exit.isFailure(exit)) {
            const error = exit.cause.reasons.find((r) => r._tag === "Fail")
            if (error?._tag === "Fail" && Retry.isRetryError(error.error)) budgetErrors++
          }
        }
        const floor = 1 * 10
        assert.isAtMost(attempts, requests * (1 + 0.2) + floor)
        assert.isAbove(budgetErrors, 0)
        const stats = yield* policy.stats
        assert.strictEqual(stats.budgetExhausted, budgetErrors)
      })
    )
  })

  describe("telemetry", () => {
    it.effect("metrics and events", () =>
      Effect.gen(function* () {
        const policy = Retry.constant({ delay: "10 millis", maxAttempts: 2, name: "inventory" })
        const events = yield* policy.subscribe
        yield* drive(Retry.retry(flaky(1).effect, policy), "10 millis")
        yield* drive(Retry.retry(flaky(5).effect, policy), "10 millis")
        const received = yield* Queue.takeAll(events)
        assert.deepStrictEqual(
          received.map((e) => (e._tag === "RetryScheduled" ? `scheduled ${e.attempt}` : `exhausted ${e.reason}`)),
          ["scheduled 2", "scheduled 2", "exhausted max_attempts"]
        )
        const snapshot = yield* Metric.snapshot
        const count = (id: string, attributes: Record<string, string>) => {
          const s = snapshot.find(
            (m) => m.id === id && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
          )
          return s !== undefined && "count" in s.state ? s.state.count : -1
        }
        const name = { "resilience.name": "inventory" }
        assert.deepStrictEqual(
          [
            count("resilience.retry.attempts", { ...name, "resilience.outcome": "success" }),
            count("resilience.retry.attempts", { ...name, "resilience.outcome": "failure" }),
            count("resilience.retry.retries", name),
            count("resilience.retry.exhausted", { ...name, "resilience.reason": "max_attempts" })
          ],
          [1, 3, 2, 1]
        )
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
    )
    it.effect("metrics: the delay histogram, and exhausted by max_elapsed and by budget", () =>
      Effect.gen(function* () {
        const elapsed = Retry.constant({
          delay: "1 second",
          maxAttempts: 10,
          maxElapsed: "2500 millis",
          name: "search"
        })
        // attempts at 0, 1 and 2 s; the wait to 3 s would end past 2.5 s
        yield* drive(Retry.retry(flaky(100).effect, elapsed), "1 second")
        const budgeted = Retry.constant({
          delay: "10 millis",
          maxAttempts: 5,
          name: "billing",
          budgetRatio: 0,
          budgetMinRetriesPerSecond: 0.1,
          budgetWindow: "10 seconds"
        })
        // the floor allows one retry in the window: the second is refused
        const refused = yield* drive(Retry.retry(flaky(100).effect, budgeted), "10 millis")
        const refusedError = Exit.findErrorOption(refused)
        assert.isTrue(refusedError._tag === "Some" && Retry.isRetryError(refusedError.value))
        const snapshot = yield* Metric.snapshot
        const find = (id: string, attributes: Record<string, string>) =>
          snapshot.find((m) => m.id === id && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v))
        const count = (id: string, attributes: Record<string, string>) => {
          const s = find(id, attributes)
          return s !== undefined && "count" in s.state ? s.state.count : -1
        }
        const histogram = (name: string) => {
          const s = find("resilience.retry.delay", { "resilience.name": name })
          return s !== undefined && "sum" in s.state && "buckets" in s.state
            ? { count: s.state.count, sum: s.state.sum, max: s.state.max }
            : undefined
        }
        assert.deepStrictEqual(histogram("search"), { count: 2, sum: 2, max: 1 })
        assert.deepStrictEqual(histogram("billing"), { count: 1, sum: 0.01, max: 0.01 })
        const exhausted = (name: string, reason: string) =>
          count("resilience.retry.exhausted", { "resilience.name": name, "resilience.reason": reason })
        assert.deepStrictEqual(
          [
            exhausted("search", "max_elapsed"),
            exhausted("search", "max_attempts"),
            exhausted("search", "budget"),
            exhausted("billing", "budget"),
            exhausted("billing", "max_elapsed")
          ],
          [1, 0, 0, 1, 0]
        )
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
    )
  })

  describe("options", () => {
    it.effect(
      "invalid options: a typed error listing every bad field from validateOptions; a defect when applied",
      () =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(
            Retry.validateOptions({ base: "2 seconds", cap: "1 second", maxAttempts: 0, factor: 0.5 })
          )
          assert.instanceOf(error, Options.InvalidOptions)
          assert.deepStrictEqual(
            error.issues.map((issue) => issue.path),
            ["factor", "maxAttempts", "cap"]
          )
          const exit = yield* Effect.exit(Retry.retry(Effect.succeed(1), Retry.exponential({ maxAttempts: 0 })))
          assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Die"))
        })
    )
  })
})

describe("Retry properties", () => {
  /** Runs `effect` to its end on the TestClock in one adjustment; the exit and the clock time it ended at. */
  const runTimed = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.gen(function* () {
      const started = yield* Clock.currentTimeMillis
      const fiber = yield* Effect.forkChild(
        Effect.flatMap(Effect.exit(effect), (exit) =>
          Effect.map(Clock.currentTimeMillis, (now) => ({ exit, elapsed: now - started }))
        )
      )
      // the TestClock wakes every sleep up to the target in order, those scheduled meanwhile included
      yield* TestClock.adjust("1 day")
      return yield* Fiber.join(fiber)
    })

  const jitters = fc.constantFrom("none" as const, "full" as const, "equal" as const, "decorrelated" as const)

  it("attempts never exceed maxAttempts; a maxElapsed is overrun by at most one attempt timeout", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          maxAttempts: fc.integer({ min: 1, max: 8 }),
          base: fc.integer({ min: 0, max: 500 }),
          jitter: jitters,
          maxElapsed: fc.integer({ min: 1, max: 5_000 }),
          attemptTimeout: fc.integer({ min: 1, max: 1_000 }),
          latencies: fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: 8, maxLength: 8 })
        }),
        async ({ attemptTimeout, base, jitter, latencies, maxAttempts, maxElapsed }) => {
          let attempts = 0
          const call = Effect.suspend(() => {
            const latency = latencies[attempts % latencies.length] ?? 0
            attempts++
            return Effect.andThen(Effect.sleep(Duration.millis(latency)), Effect.fail(new Transient({ n: attempts })))
          })
          const policy = Retry.exponential({ base, cap: Math.max(base, 1_000), jitter, maxAttempts, maxElapsed })
          const { elapsed } = await Effect.runPromise(
            runTimed(Retry.retry(Timeout.attempt(call, Duration.millis(attemptTimeout)), policy)).pipe(
              Effect.provide(TestClock.layer())
            )
          )
          return attempts <= maxAttempts && elapsed <= maxElapsed + attemptTimeout
        }
      ),
      { numRuns: 300 }
    )
  })

  it("a Timeout.deadline around retries is never overrun by more than one attempt timeout; attempts start before it and end by it", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          deadline: fc.integer({ min: 1, max: 5_000 }),
          attemptTimeout: fc.integer({ min: 1, max: 1_000 }),
          minAttemptTime: fc.integer({ min: 0, max: 300 }),
          maxAttempts: fc.integer({ min: 1, max: 30 }),
          base: fc.integer({ min: 0, max: 500 }),
          jitter: jitters,
          hint: fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }),
          latencies: fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: 8, maxLength: 8 }),
          succeedsAt: fc.integer({ min: 1, max: 40 })
        }),
        async ({
          attemptTimeout,
          base,
          deadline,
          hint,
          jitter,
          latencies,
          maxAttempts,
          minAttemptTime,
          succeedsAt
        }) => {
          const spans: Array<{ start: number; end: number }> = []
          const call = Effect.flatMap(Clock.currentTimeMillis, (start) => {
            const n = spans.length + 1
            const span = { start, end: Number.NaN }
            spans.push(span)
            const outcome =
              n >= succeedsAt
                ? Effect.succeed(n)
                : Effect.fail(
                    hint === undefined ? new Transient({ n }) : new Throttled({ retryAfter: Duration.millis(hint) })
                  )
            return Effect.andThen(Effect.sleep(Duration.millis(latencies[n % latencies.length] ?? 0)), outcome).pipe(
              Effect.onExit(() =>
                Effect.map(Clock.currentTimeMillis, (end) => {
                  span.end = end
                })
              )
            )
          })
          const policy = Retry.exponential({ base, cap: Math.max(base, 1_000), jitter, maxAttempts })
          const { elapsed } = await Effect.runPromise(
            runTimed(
              call.pipe(
                Timeout.attempt(Duration.millis(attemptTimeout), { minAttemptTime: Duration.millis(minAttemptTime) }),
                Retry.retry(policy),
                Timeout.deadline(Duration.millis(deadline))
              )
            ).pipe(Effect.provide(TestClock.layer()))
          )
          return (
            elapsed <= deadline + attemptTimeout &&
            spans.length <= maxAttempts &&
            spans.every(({ end, start }) => start < deadline - minAttemptTime && end <= deadline)
          )
        }
      ),
      { numRuns: 300 }
    )
  })
})
