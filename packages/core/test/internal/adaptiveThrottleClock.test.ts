import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/adaptiveThrottle.ts"
import * as Tick from "../../src/internal/adaptiveThrottleClock.ts"

const config = (overrides: Partial<engine.Config>): engine.Config => ({
  windowMillis: 120_000,
  buckets: 12,
  k: 2,
  minRequests: 0,
  maxRejectProbability: 1,
  ...overrides
})

/** A hand-driven clock and timers: `advance` moves the time and fires the timers due, punctually. */
const fakeTime = (start: number) => {
  let time = start
  let reads = 0
  const timers: Array<{ at: number; fire: () => void; cancelled: boolean }> = []
  const now = () => {
    reads++
    return time
  }
  const schedule: Tick.Schedule = (millis, fire) => {
    const timer = { at: time + millis, fire, cancelled: false }
    timers.push(timer)
    return () => {
      timer.cancelled = true
    }
  }
  const advance = (millis: number) => {
    time += millis
    for (const timer of timers.splice(0)) {
      if (timer.cancelled) continue
      if (timer.at <= time) timer.fire()
      else timers.push(timer)
    }
  }
  return {
    now,
    schedule,
    advance,
    time: () => time,
    reads: () => reads,
    pending: () => timers.filter((t) => !t.cancelled)
  }
}

describe("adaptiveThrottleClock", () => {
  it("one clock read per bucket: the reading is reused until the bucket's end", () => {
    const c = config({})
    const fake = fakeTime(1_000)
    const tick = Tick.make(c, fake.now, fake.schedule)
    assert.strictEqual(tick.read(), 1_000)
    // one timer, for the bucket's end at 10 s
    assert.deepStrictEqual(
      fake.pending().map((t) => t.at),
      [10_000]
    )
    fake.advance(5_000)
    assert.strictEqual(tick.read(), 1_000)
    fake.advance(3_999)
    assert.strictEqual(tick.read(), 1_000)
    assert.strictEqual(fake.reads(), 1)
    // the bucket ends: the next read is the clock's
    fake.advance(1)
    assert.strictEqual(tick.read(), 10_000)
    assert.strictEqual(fake.reads(), 2)
    assert.deepStrictEqual(
      fake.pending().map((t) => t.at),
      [20_000]
    )
  })

  it("an idle tick holds no timer: after a bucket's end, nothing until the next read", () => {
    const fake = fakeTime(0)
    const tick = Tick.make(config({}), fake.now, fake.schedule)
    tick.read()
    fake.advance(60_000)
    assert.strictEqual(fake.pending().length, 0)
    assert.strictEqual(tick.read(), 60_000)
    assert.strictEqual(fake.pending().length, 1)
  })

  it("a bucket longer than a timer can wait (2^31 - 1 ms) is waited for in several timers", () => {
    // one bucket of 100 days
    const c = config({ windowMillis: 100 * 86_400_000, buckets: 1 })
    const fake = fakeTime(0)
    const tick = Tick.make(c, fake.now, fake.schedule)
    tick.read()
    assert.deepStrictEqual(
      fake.pending().map((t) => t.at),
      [Tick.maxTimerMillis]
    )
    fake.advance(Tick.maxTimerMillis)
    // the timer expired inside the bucket: the next read reads the clock and waits on
    assert.strictEqual(tick.read(), Tick.maxTimerMillis)
    assert.deepStrictEqual(
      fake.pending().map((t) => t.at),
      [2 * Tick.maxTimerMillis]
    )
  })

  it("close cancels the timer, and the next read is the clock's", () => {
    const fake = fakeTime(0)
    const tick = Tick.make(config({}), fake.now, fake.schedule)
    tick.read()
    tick.close()
    assert.strictEqual(fake.pending().length, 0)
    fake.advance(1)
    assert.strictEqual(tick.read(), 1)
    assert.strictEqual(fake.reads(), 2)
  })

  it("with punctual timers, every reading is in the bucket of the real time, at most one read per bucket", () => {
    fc.assert(
      fc.property(
        fc.record({
          windowMillis: fc.integer({ min: 1, max: 20_000 }),
          buckets: fc.integer({ min: 1, max: 24 })
        }),
        fc.integer({ min: 0, max: 2e12 }),
        fc.array(fc.integer({ min: 0, max: 5_000 }), { maxLength: 100 }),
        ({ buckets, windowMillis }, start, gaps) => {
          const c = config({ windowMillis, buckets })
          const fake = fakeTime(start)
          const tick = Tick.make(c, fake.now, fake.schedule)
          const epochs = new Set<number>()
          for (const gap of gaps) {
            fake.advance(gap)
            const reading = tick.read()
            assert.isAtMost(reading, fake.time())
            assert.strictEqual(engine.epochOf(reading, c), engine.epochOf(fake.time(), c))
            epochs.add(engine.epochOf(fake.time(), c))
            assert.isAtMost(fake.pending().length, 1)
          }
          assert.isAtMost(fake.reads(), epochs.size)
        }
      )
    )
  })
})
