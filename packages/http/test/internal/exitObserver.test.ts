import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as ExitObserver from "../../src/internal/exitObserver.ts"

class Counter extends ExitObserver.Observer {
  count = 0
  observe() {
    this.count++
  }
}

/** `self` with `observer` pushed under it, as the load-shedding middleware does. */
const watched = <A, E>(observer: ExitObserver.Observer, self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.withFiber((fiber) => {
    assert.isTrue(ExitObserver.push(fiber, observer))
    return self
  })

describe("ExitObserver", () => {
  it("the protocol is supported on this Effect (checked at load)", () => {
    assert.isTrue(ExitObserver.supported)
  })

  it.effect("each outcome observed once and passed on unchanged", () =>
    Effect.gen(function* () {
      const outcomes = [
        Effect.succeed(1),
        Effect.fail("bad"),
        Effect.die("boom"),
        Effect.interrupt,
        Effect.andThen(Effect.yieldNow, Effect.succeed(2))
      ]
      for (const outcome of outcomes) {
        const counter = new Counter()
        const exit = yield* Effect.exit(watched(counter, outcome))
        const bare = yield* Effect.exit(outcome)
        assert.strictEqual(counter.count, 1)
        assert.deepStrictEqual(
          [exit._tag, Exit.hasInterrupts(exit), Exit.hasDies(exit)],
          [bare._tag, Exit.hasInterrupts(bare), Exit.hasDies(bare)]
        )
      }
    })
  )

  it.effect("interruption: suspended, during an uninterruptible part (observed when it ends), nested observers", () =>
    Effect.gen(function* () {
      const suspended = new Counter()
      const fiber = yield* Effect.forkChild(watched(suspended, Effect.never))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(suspended.count, 1)

      const gate = yield* Deferred.make<void>()
      const guarded = new Counter()
      const outer = new Counter()
      const running = yield* Effect.forkChild(
        watched(outer, watched(guarded, Effect.uninterruptible(Deferred.await(gate))))
      )
      yield* Effect.yieldNow
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(running))
      yield* Effect.yieldNow
      assert.deepStrictEqual([guarded.count, outer.count], [0, 0])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(interrupting)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(running)))
      assert.deepStrictEqual([guarded.count, outer.count], [1, 1])
    })
  )

  it("setEnabled turns pushing off and back on, returning the previous setting", () => {
    const before = ExitObserver.active()
    assert.strictEqual(ExitObserver.setEnabled(false), before)
    assert.isFalse(ExitObserver.active())
    assert.isFalse(ExitObserver.setEnabled(before))
    assert.strictEqual(ExitObserver.active(), before)
  })
})
