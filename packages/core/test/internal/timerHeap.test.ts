import { assert, describe, it } from "@effect/vitest"
import { vi } from "vitest"
import * as timerHeap from "../../src/internal/timerHeap.ts"

const minute = 60_000

describe("timerHeap", () => {
  it("the timer keeps the process alive exactly while a live entry is pending", () => {
    const first = timerHeap.schedule(performance.now() + minute, () => {})
    const second = timerHeap.schedule(performance.now() + 2 * minute, () => {})
    assert.deepStrictEqual([timerHeap.liveCount(), timerHeap.keepsAlive()], [2, true])
    timerHeap.cancel(first)
    assert.deepStrictEqual([timerHeap.liveCount(), timerHeap.keepsAlive()], [1, true])
    timerHeap.cancel(second)
    // both entries still sit in the heap (lazy cancellation), and the timer is armed for the first, unref'd
    assert.deepStrictEqual([timerHeap.size(), timerHeap.liveCount(), timerHeap.keepsAlive()], [2, 0, false])
    // an entry after the armed one does not move the timer, but refs it again
    const third = timerHeap.schedule(performance.now() + 3 * minute, () => {})
    assert.deepStrictEqual([timerHeap.liveCount(), timerHeap.keepsAlive()], [1, true])
    timerHeap.cancel(third)
    timerHeap.cancel(third)
    assert.deepStrictEqual([timerHeap.liveCount(), timerHeap.keepsAlive()], [0, false])
  })

  it("an entry that ran is no longer live, and cancelling it afterwards changes nothing", async () => {
    let ran = 0
    const due = timerHeap.schedule(performance.now(), () => ran++)
    const later = timerHeap.schedule(performance.now() + minute, () => {})
    assert.strictEqual(timerHeap.liveCount(), 2)
    // the heap's timer (armed first, for the due entry) fires before this one
    await new Promise((resolve) => setTimeout(resolve, 0))
    assert.deepStrictEqual([ran, timerHeap.liveCount(), timerHeap.keepsAlive()], [1, 1, true])
    timerHeap.cancel(due)
    assert.deepStrictEqual([timerHeap.liveCount(), timerHeap.keepsAlive()], [1, true])
    timerHeap.cancel(later)
    assert.deepStrictEqual([timerHeap.liveCount(), timerHeap.keepsAlive()], [0, false])
  })

  it("a deadline weeks away arms the timer at most 2^31 - 1 ms ahead, so it neither fires early nor spins", async () => {
    // a heap of its own: the shared one may be armed already for an earlier (cancelled) entry
    vi.resetModules()
    const heap: typeof timerHeap = await import("../../src/internal/timerHeap.ts")
    const arm = vi.spyOn(globalThis, "setTimeout")
    try {
      let ran = 0
      const far = heap.schedule(performance.now() + 30 * 24 * 60 * minute, () => ran++)
      // Node turns a longer delay into 1 ms: the heap would wake, find nothing due and re-arm, every millisecond
      await new Promise((resolve) => setTimeout(resolve, 25))
      const delays = arm.mock.calls.map((call) => call[1]).filter((delay) => delay !== 25)
      assert.deepStrictEqual([ran, delays], [0, [heap.maxDelay]])
      heap.cancel(far)
    } finally {
      arm.mockRestore()
    }
  })
})
