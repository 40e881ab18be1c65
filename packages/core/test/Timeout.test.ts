import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Retry, Timeout } from "@effect-resilience/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"

const reasonOf = <A, E>(exit: Exit.Exit<A, E>) => {
  if (exit._tag === "Success") return undefined
  const fail = exit.cause.reasons.find((r) => r._tag === "Fail")
  return fail?._tag === "Fail" && Timeout.isTimeoutError(fail.error)
    ? { kind: fail.error.reason.kind, limit: Duration.toMillis(fail.error.reason.limit) }
    : undefined
}

describe("Timeout", () => {
  it.effect("attempt: fails with TimeoutExceeded carrying the limit, and interrupts the work", () =>
    Effect.gen(function* () {
      let interrupted = false
      const work = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
      const fiber = yield* Effect.forkChild(Effect.exit(Timeout.attempt(work, "2 seconds")))
      yield* TestClock.adjust("1999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.join(fiber)
      assert.deepStrictEqual(reasonOf(exit), { kind: "attempt", limit: 2000 })
      assert.isTrue(interrupted)
    })
  )

  it.effect("attempt: successes and failures pass through unchanged", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* Timeout.attempt(Effect.succeed(1), "1 second"), 1)
      const error = yield* Effect.flip(Timeout.attempt(Effect.fail("boom"), "1 second"))
      assert.strictEqual(error, "boom")
      const slowOk = yield* Effect.forkChild(Timeout.attempt(Effect.as(Effect.sleep("500 millis"), "ok"), "1 second"))
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* Fiber.join(slowOk), "ok")
    })
  )

  it.effect("deadline: caps the attempt timeout and refuses an attempt with less than minAttemptTime left", () =>
    Effect.gen(function* () {
      const attempt = Timeout.attempt(Effect.never, "10 seconds", { minAttemptTime: "500 millis" })
      const capped = yield* Effect.forkChild(Effect.exit(Timeout.deadline(attempt, "3 seconds")))
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual(reasonOf(yield* Fiber.join(capped)), { kind: "deadline", limit: 3000 })

      const late = Effect.andThen(Effect.sleep("2600 millis"), attempt)
      const refused = yield* Effect.forkChild(Effect.exit(Timeout.deadline(late, "3 seconds")))
      yield* TestClock.adjust("2600 millis")
      // 400 ms left is below the 500 ms floor: the attempt never starts
      assert.deepStrictEqual(reasonOf(yield* Fiber.join(refused)), { kind: "deadline", limit: 400 })
    })
  )

  it.effect("deadline: retries inside it never outlive it", () =>
    Effect.gen(function* () {
      let attempts = 0
      const down = Effect.suspend(() => {
        attempts++
        return Effect.fail("down")
      })
      const fiber = yield* Effect.forkChild(
        Effect.exit(
          down.pipe(
            Timeout.attempt("1 second"),
            Retry.retry(Retry.constant({ delay: "1 second", maxAttempts: 100 })),
            Timeout.deadline("4500 millis")
          )
        )
      )
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.join(fiber)
      assert.isTrue(Exit.isFailure(exit))
      // attempts at 0, 1, 2, 3, 4 s; the wait to 5 s would end past the deadline
      assert.strictEqual(attempts, 5)
    })
  )

  it.live("under the live clock, deadlines share one timer and the work is interrupted", () =>
    Effect.gen(function* () {
      let interrupted = 0
      const work = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++)))
      const exits = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => 5 + (i % 5)),
        (millis) => Effect.exit(Timeout.attempt(work, Duration.millis(millis))),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(exits.filter((exit) => reasonOf(exit)?.kind === "attempt").length, 50)
      assert.strictEqual(interrupted, 50)
      // fast calls cancel their deadlines
      for (let i = 0; i < 2_000; i++) yield* Timeout.attempt(Effect.succeed(i), "1 minute")
    })
  )
})

describe("Timeout telemetry", () => {
  it.effect("TimedOut events carry the kind and the limit", () =>
    Effect.gen(function* () {
      const events = yield* Timeout.subscribe
      yield* Effect.exit(Timeout.attempt(Effect.never, 0))
      const received = yield* Queue.takeAll(events)
      assert.deepStrictEqual(
        received.map((e) => [e._tag, e.kind, Duration.toMillis(e.limit)]),
        [["TimedOut", "attempt", 0]]
      )
    })
  )

  it.effect("counts timeouts by kind in resilience.timeout.timeouts", () =>
    Effect.gen(function* () {
      const before = yield* Timeout.stats
      yield* Effect.exit(Timeout.attempt(Effect.never, 0))
      const after = yield* Timeout.stats
      assert.strictEqual(after.attempt - before.attempt, 1)
      const snapshot = yield* Metric.snapshot
      const series = snapshot.find(
        (s) => s.id === "resilience.timeout.timeouts" && s.attributes?.["resilience.reason"] === "attempt"
      )
      assert.isTrue(series !== undefined && "count" in series.state && series.state.count === after.attempt)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Timeout telemetry of deadlines", () => {
  it.effect("counts deadline timeouts (run out, and an attempt refused) as kind deadline", () =>
    Effect.gen(function* () {
      const before = yield* Timeout.stats
      const ranOut = yield* Effect.forkChild(Effect.exit(Timeout.deadline(Effect.never, "1 second")))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(reasonOf(yield* Fiber.join(ranOut)), { kind: "deadline", limit: 1000 })
      const refused = Timeout.attempt(Effect.never, "1 second", { minAttemptTime: "600 millis" })
      const late = Timeout.deadline(Effect.andThen(Effect.sleep("500 millis"), refused), "1 second")
      const lateFiber = yield* Effect.forkChild(Effect.exit(late))
      yield* TestClock.adjust("500 millis")
      assert.deepStrictEqual(reasonOf(yield* Fiber.join(lateFiber)), { kind: "deadline", limit: 500 })
      const after = yield* Timeout.stats
      assert.deepStrictEqual([after.deadline - before.deadline, after.attempt - before.attempt], [2, 0])
      const snapshot = yield* Metric.snapshot
      const series = (kind: string) => {
        const s = snapshot.find(
          (m) => m.id === "resilience.timeout.timeouts" && m.attributes?.["resilience.reason"] === kind
        )
        return s !== undefined && "count" in s.state ? s.state.count : -1
      }
      assert.deepStrictEqual([series("deadline"), series("attempt")], [after.deadline, after.attempt])
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

describe("Timeout leaves nothing running", () => {
  it.effect("the timed-out work's fibre has ended when the timeout failure is returned", () =>
    Effect.gen(function* () {
      let worker: Fiber.Fiber<unknown, unknown> | undefined
      const work = Effect.andThen(
        Effect.sync(() => {
          worker = Fiber.getCurrent()
        }),
        Effect.never
      )
      const fiber = yield* Effect.forkChild(Effect.exit(Timeout.attempt(work, "1 second")))
      yield* Effect.yieldNow
      assert.isDefined(worker)
      assert.isUndefined(worker?.pollUnsafe())
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(reasonOf(yield* Fiber.join(fiber)), { kind: "attempt", limit: 1000 })
      const exit = worker?.pollUnsafe()
      assert.isTrue(exit !== undefined && exit._tag === "Failure")
    })
  )
})

describe("Timeout arguments", () => {
  it.effect("an invalid duration is a defect naming the argument, never a thrown exception", () =>
    Effect.gen(function* () {
      const bad = "soon" as Duration.Input
      const exit = yield* Effect.exit(Timeout.attempt(Effect.succeed(1), bad))
      assert.isTrue(exit._tag === "Failure" && exit.cause.reasons.some((r) => r._tag === "Die"))
      const deadlineExit = yield* Effect.exit(Timeout.deadline(Effect.succeed(1), bad))
      assert.isTrue(deadlineExit._tag === "Failure")
    })
  )
})

/** Runs an ES module `source` in a fresh `node` (the package's directory as cwd); its stdout's last line as JSON. */
const runNode = (source: string): Promise<{ readonly code: number | null; readonly output: unknown }> =>
  new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--input-type=module", "--eval", source],
      { cwd: fileURLToPath(new URL("..", import.meta.url)), timeout: 5_000, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error?.killed) return reject(new Error(`node did not exit within 5 s: ${stderr}`))
        const last = stdout.trim().split("\n").at(-1) ?? ""
        resolve({
          code: error === null ? 0 : (error.code as number | null),
          output: last === "" ? stderr : JSON.parse(last)
        })
      }
    )
  })

const timeoutModule = JSON.stringify(new URL("../src/Timeout.ts", import.meta.url).href)

describe("Timeout under the live clock, in a process of its own", () => {
  it("a pending timeout keeps the process alive until it fires with TimeoutError", async () => {
    const { code, output } = await runNode(`
      import * as Effect from "effect/Effect"
      const Timeout = await import(${timeoutModule})
      const started = performance.now()
      const error = await Effect.runPromise(
        Effect.flip(Timeout.attempt(Effect.promise(() => new Promise(() => {})), "50 millis"))
      )
      console.log(JSON.stringify({ tag: error._tag, kind: error.reason.kind, waited: performance.now() - started >= 45 }))
    `)
    assert.deepStrictEqual(
      { code, output },
      { code: 0, output: { tag: "TimeoutError", kind: "attempt", waited: true } }
    )
  })

  it("a program whose timeouts all completed exits at once, though their cancelled entries are pending", async () => {
    const { code, output } = await runNode(`
      import * as Effect from "effect/Effect"
      const Timeout = await import(${timeoutModule})
      const call = (i) => Timeout.attempt(Effect.as(Effect.sleep("5 millis"), i), "1 minute")
      const values = await Effect.runPromise(
        Effect.forEach([1, 2, 3], call, { concurrency: "unbounded" }).pipe(Timeout.deadline("2 minutes"))
      )
      const done = performance.now()
      process.on("exit", () => console.log(JSON.stringify({ values, prompt: performance.now() - done < 500 })))
    `)
    assert.deepStrictEqual({ code, output }, { code: 0, output: { values: [1, 2, 3], prompt: true } })
  })
})
