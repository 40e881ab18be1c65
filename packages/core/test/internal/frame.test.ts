import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Frame from "../../src/internal/frame.ts"

/** How an exit ended, in a word. */
const kind = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isSuccess(exit)
    ? `success:${String(exit.value)}`
    : Exit.hasInterrupts(exit)
      ? "interrupt"
      : Exit.hasDies(exit)
        ? "die"
        : `fail:${String(Cause.squash(exit.cause))}`

class Recorder extends Frame.Observer {
  readonly seen: Array<string> = []
  observe(exit: Exit.Exit<unknown, unknown>) {
    this.seen.push(kind(exit))
  }
}

/** A frame that maps a success and recovers a failure, as the retry's first attempt does. */
class Recover extends Frame.Frame<number, string, never> {
  readonly seen: Array<string> = []
  onSuccess(value: number, _fiber: Fiber.Fiber<unknown, unknown>, exit: Exit.Exit<number, string> | undefined) {
    this.seen.push(`success:${value}`)
    return Frame.succeeded(value, exit)
  }
  onFailure(cause: Cause.Cause<string>) {
    this.seen.push(Cause.hasInterrupts(cause) ? "interrupt" : "failure")
    return Effect.succeed(-1)
  }
}

const observed = <A, E, R>(self: Effect.Effect<A, E, R>, observer: Frame.Observer<A, E>) =>
  Effect.withFiber<A, E, R>((fiber) => Frame.observed(fiber, self, observer))

const within = <R>(self: Effect.Effect<number, string, R>, frame: Recover) =>
  Effect.withFiber<number, string, R>((fiber) => Frame.within(fiber, self, frame))

/** Runs every case with frames pushed and with the public fallback. */
const modes = [
  { name: "frames", on: true },
  { name: "fallback", on: false }
] as const

describe("internal/frame", () => {
  it("pushes frames on this Effect (the load-time probe passed)", () => {
    assert.isTrue(Frame.supported)
  })

  it("pushes frames unless EFFECT_RESILIENCE_FRAMES=0 (the core-portable test project)", () => {
    assert.strictEqual(Frame.active(), process.env.EFFECT_RESILIENCE_FRAMES !== "0")
  })

  for (const mode of modes) {
    describe(mode.name, () => {
      const scoped = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.acquireUseRelease(
          Effect.sync(() => Frame.setEnabled(mode.on)),
          () => effect,
          (previous) => Effect.sync(() => Frame.setEnabled(previous))
        )

      it.effect("an observer sees a success, a failure and a defect, and passes each on unchanged", () =>
        scoped(
          Effect.gen(function* () {
            const recorder = new Recorder()
            const a = yield* Effect.exit(observed(Effect.succeed(1), recorder))
            const b = yield* Effect.exit(
              observed(
                Effect.sync(() => 2),
                recorder
              )
            )
            const c = yield* Effect.exit(observed(Effect.fail("boom"), recorder))
            const d = yield* Effect.exit(observed(Effect.die("bug"), recorder))
            assert.deepStrictEqual(recorder.seen, ["success:1", "success:2", "fail:boom", "die"])
            assert.deepStrictEqual([a, b, c].map(kind), ["success:1", "success:2", "fail:boom"])
            assert.strictEqual(kind(d), "die")
          })
        )
      )

      it.effect("an observer sees an interruption of a suspended effect, once", () =>
        scoped(
          Effect.gen(function* () {
            const recorder = new Recorder()
            const started = yield* Deferred.make<void>()
            const fiber = yield* Effect.forkChild(
              observed(Effect.andThen(Deferred.succeed(started, undefined), Effect.never), recorder)
            )
            yield* Deferred.await(started)
            const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
            assert.isTrue(Exit.hasInterrupts(exit))
            assert.deepStrictEqual(recorder.seen, ["interrupt"])
          })
        )
      )

      it.effect("an observer sees an interruption that arrives while the fiber runs", () =>
        scoped(
          Effect.gen(function* () {
            const recorder = new Recorder()
            const fiber = yield* Effect.forkChild(
              observed(
                Effect.withFiber((self) => {
                  // interrupted by itself mid-run: the interruption is deferred to the next step
                  self.interruptUnsafe()
                  return Effect.succeed(1)
                }),
                recorder
              )
            )
            const exit = yield* Fiber.await(fiber)
            assert.isTrue(Exit.hasInterrupts(exit))
            assert.deepStrictEqual(recorder.seen, ["interrupt"])
          })
        )
      )

      it.effect("an observer inside an uninterruptible region sees the real outcome", () =>
        scoped(
          Effect.gen(function* () {
            const recorder = new Recorder()
            const gate = yield* Deferred.make<void>()
            const started = yield* Deferred.make<void>()
            const fiber = yield* Effect.forkChild(
              Effect.uninterruptible(
                observed(
                  Effect.andThen(Deferred.succeed(started, undefined), Effect.as(Deferred.await(gate), 7)),
                  recorder
                )
              )
            )
            yield* Deferred.await(started)
            // requested while the region runs; it lands when the region ends
            fiber.interruptUnsafe()
            yield* Deferred.succeed(gate, undefined)
            const exit = yield* Fiber.await(fiber)
            // the region finished its work; the interruption lands after it
            assert.deepStrictEqual(recorder.seen, ["success:7"])
            assert.isTrue(Exit.hasInterrupts(exit))
          })
        )
      )

      it.effect("a self-interrupting effect is seen as interrupted", () =>
        scoped(
          Effect.gen(function* () {
            const recorder = new Recorder()
            const exit = yield* Effect.exit(observed(Effect.interrupt, recorder))
            assert.isTrue(Exit.hasInterrupts(exit))
            assert.deepStrictEqual(recorder.seen, ["interrupt"])
          })
        )
      )

      it.effect("one shared observer watches many concurrent effects", () =>
        scoped(
          Effect.gen(function* () {
            const recorder = new Recorder()
            const results = yield* Effect.forEach(
              Array.from({ length: 50 }, (_, i) => i),
              (i) =>
                observed(
                  Effect.andThen(Effect.yieldNow, i % 5 === 0 ? Effect.fail(`e${i}`) : Effect.succeed(i)),
                  recorder
                ).pipe(Effect.exit),
              { concurrency: 10 }
            )
            assert.strictEqual(recorder.seen.length, 50)
            assert.strictEqual(recorder.seen.filter((s) => s.startsWith("fail")).length, 10)
            assert.deepStrictEqual(results.map(kind).sort(), recorder.seen.slice().sort())
          })
        )
      )

      it.effect("a frame replaces the outcome: maps a success through, recovers a failure", () =>
        scoped(
          Effect.gen(function* () {
            const frame = new Recover()
            assert.strictEqual(yield* within(Effect.succeed(3), frame), 3)
            assert.strictEqual(yield* within(Effect.fail("boom"), frame), -1)
            assert.deepStrictEqual(frame.seen, ["success:3", "failure"])
          })
        )
      )

      it.effect("an interruption skips a frame, as it skips matchCauseEffect's handlers", () =>
        scoped(
          Effect.gen(function* () {
            const frame = new Recover()
            const started = yield* Deferred.make<void>()
            const fiber = yield* Effect.forkChild(
              within(Effect.andThen(Deferred.succeed(started, undefined), Effect.never), frame)
            )
            yield* Deferred.await(started)
            const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
            assert.isTrue(Exit.hasInterrupts(exit))
            assert.deepStrictEqual(frame.seen, [])
          })
        )
      )
    })
  }
})
