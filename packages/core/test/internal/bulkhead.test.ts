import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/bulkhead.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

interface TestWaiter extends engine.Waiter {
  readonly id: number
}

const waiter = (id: number, cost: number, priority: number): TestWaiter => ({ id, cost, priority, status: "waiting" })

/** One step of a trace: a call arrives, a running call ends, or a call leaves (timed out or interrupted). */
type Op =
  | { readonly _tag: "arrive"; readonly cost: number; readonly priority: number }
  | { readonly _tag: "release"; readonly pick: number }
  | { readonly _tag: "leave"; readonly pick: number }

const configArb: fc.Arbitrary<engine.Config> = fc.record({
  maxConcurrent: fc.integer({ min: 1, max: 5 }),
  maxQueue: fc.integer({ min: 0, max: 6 })
})

const opArb = (maxConcurrent: number): fc.Arbitrary<Op> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        _tag: fc.constant("arrive" as const),
        cost: fc.integer({ min: 1, max: maxConcurrent }),
        priority: fc.integer({ min: 0, max: 2 })
      })
    },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("release" as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("leave" as const), pick: fc.nat() }) }
  )

const traceArb = configArb.chain((config) =>
  fc.record({ config: fc.constant(config), ops: fc.array(opArb(config.maxConcurrent), { maxLength: 80 }) })
)

/**
 * The naive model: an array of waiters kept sorted by priority (higher
 * first), then arrival; the head is served while it fits.
 */
class Model {
  readonly config: engine.Config
  active = 0
  readonly waiting: Array<{ readonly id: number; readonly cost: number; readonly priority: number }> = []
  constructor(config: engine.Config) {
    this.config = config
  }
  arrive(id: number, cost: number, priority: number): "admitted" | "queued" | "full" {
    const top = this.waiting[0]
    if (this.active + cost <= this.config.maxConcurrent && (top === undefined || priority > top.priority)) {
      this.active += cost
      return "admitted"
    }
    if (this.waiting.length >= this.config.maxQueue) return "full"
    let i = 0
    while (i < this.waiting.length && (this.waiting[i]?.priority ?? 0) >= priority) i++
    this.waiting.splice(i, 0, { id, cost, priority })
    return "queued"
  }
  serve(): Array<number> {
    const granted: Array<number> = []
    for (;;) {
      const head = this.waiting[0]
      if (head === undefined || this.active + head.cost > this.config.maxConcurrent) return granted
      this.waiting.shift()
      this.active += head.cost
      granted.push(head.id)
    }
  }
  release(cost: number): Array<number> {
    this.active -= cost
    return this.serve()
  }
  leave(id: number): Array<number> {
    const i = this.waiting.findIndex((w) => w.id === id)
    if (i >= 0) this.waiting.splice(i, 1)
    return this.serve()
  }
}

/** The engine and the model driven by one trace, checked against each other and the invariants after every step. */
const run = (config: engine.Config, ops: ReadonlyArray<Op>) => {
  const c = engine.make<TestWaiter>()
  const model = new Model(config)
  /** Calls holding permits: admitted at once, or granted from the line. */
  const running: Array<TestWaiter> = []
  /** Calls in line. */
  const inLine: Array<TestWaiter> = []
  /** Every grant from the line, in order. */
  const grants: Array<TestWaiter> = []
  let next = 0
  const granted = (list: ReadonlyArray<TestWaiter>, expected: ReadonlyArray<number>) => {
    assert.deepStrictEqual(
      list.map((w) => w.id),
      expected
    )
    for (const w of list) {
      assert.strictEqual(w.status, "granted")
      inLine.splice(inLine.indexOf(w), 1)
      running.push(w)
      grants.push(w)
    }
  }
  const check = () => {
    // never more than maxConcurrent permits in use, and exactly those of the calls holding them
    assert.isAtMost(c.active, config.maxConcurrent)
    assert.strictEqual(
      c.active,
      running.reduce((total, w) => total + w.cost, 0)
    )
    assert.strictEqual(c.active, model.active)
    // the line never holds more than maxQueue
    assert.isAtMost(c.queued, config.maxQueue)
    assert.strictEqual(c.queued, inLine.length)
    assert.strictEqual(
      c.queuedCost,
      inLine.reduce((total, w) => total + w.cost, 0)
    )
    // the same line as the model, in the same order
    assert.deepStrictEqual(
      engine.waiting(c).map((w) => w.id),
      model.waiting.map((w) => w.id)
    )
    // served as far as it can be: the head, if any, does not fit
    const head = engine.waiting(c)[0]
    if (head !== undefined) assert.isAbove(c.active + head.cost, config.maxConcurrent)
    assert.strictEqual(engine.isIdle(c), c.active === 0 && c.queued === 0)
    // a line's memory is bounded by its live waiters (dead ones are skipped and compacted)
    for (const level of c.levels ?? []) {
      assert.isAbove(level.live, 0)
      assert.isAtMost(level.items.length, 8 * level.live + 100)
    }
  }
  for (const op of ops) {
    switch (op._tag) {
      case "arrive": {
        const w = waiter(next++, op.cost, op.priority)
        const expected = model.arrive(w.id, w.cost, w.priority)
        if (engine.tryAcquire(c, w.cost, w.priority, config)) {
          assert.strictEqual(expected, "admitted")
          w.status = "granted"
          running.push(w)
        } else if (engine.enqueue(c, w, config)) {
          assert.strictEqual(expected, "queued")
          inLine.push(w)
        } else {
          assert.strictEqual(expected, "full")
        }
        break
      }
      case "release": {
        const w = running[op.pick % Math.max(1, running.length)]
        if (w === undefined) break
        running.splice(running.indexOf(w), 1)
        const out: Array<TestWaiter> = []
        engine.release(c, w.cost, config, out)
        granted(out, model.release(w.cost))
        break
      }
      case "leave": {
        // a waiter in line, or one granted that has not started (it gives its permits back)
        const candidates = [...inLine, ...running.filter((w) => grants.includes(w))]
        const w = candidates[op.pick % Math.max(1, candidates.length)]
        if (w === undefined) break
        const out: Array<TestWaiter> = []
        const was = w.status
        assert.strictEqual(engine.leave(c, w, config, out), was)
        assert.strictEqual(w.status, "left")
        if (was === "waiting") {
          inLine.splice(inLine.indexOf(w), 1)
          granted(out, model.leave(w.id))
        } else {
          running.splice(running.indexOf(w), 1)
          granted(out, model.release(w.cost))
        }
        // leaving twice changes nothing
        assert.strictEqual(engine.leave(c, w, config, out), "left")
        break
      }
    }
    check()
  }
  return { c, model, running, inLine, grants }
}

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

describe("bulkhead logic", () => {
  it("random traces match the naive model, within maxConcurrent and maxQueue at every step", () => {
    fc.assert(
      fc.property(traceArb, ({ config, ops }) => {
        run(config, ops)
      }),
      { numRuns: 500 }
    )
  })

  it("every grant is the head of the line: higher priority first, FIFO within a priority", () => {
    fc.assert(
      fc.property(traceArb, ({ config, ops }) => {
        const c = engine.make<TestWaiter>()
        const line: Array<TestWaiter> = []
        const running: Array<TestWaiter> = []
        let next = 0
        const order = (a: TestWaiter, b: TestWaiter) => b.priority - a.priority || a.id - b.id
        const onGrants = (out: ReadonlyArray<TestWaiter>) => {
          for (const w of out) {
            // nobody still in line comes before it
            const before = line.filter((o) => o !== w && order(o, w) < 0)
            assert.deepStrictEqual(
              before.map((o) => o.id),
              []
            )
            line.splice(line.indexOf(w), 1)
            running.push(w)
          }
        }
        for (const op of ops) {
          if (op._tag === "arrive") {
            const w = waiter(next++, op.cost, op.priority)
            if (engine.tryAcquire(c, w.cost, w.priority, config)) {
              // at once only when nobody of its priority or higher waits
              assert.isTrue(line.every((o) => o.priority < w.priority))
              running.push(w)
            } else if (engine.enqueue(c, w, config)) line.push(w)
          } else if (op._tag === "release") {
            const w = running[op.pick % Math.max(1, running.length)]
            if (w === undefined) continue
            running.splice(running.indexOf(w), 1)
            const out: Array<TestWaiter> = []
            engine.release(c, w.cost, config, out)
            onGrants(out)
          } else {
            const w = line[op.pick % Math.max(1, line.length)]
            if (w === undefined) continue
            line.splice(line.indexOf(w), 1)
            const out: Array<TestWaiter> = []
            engine.leave(c, w, config, out)
            onGrants(out)
          }
        }
      }),
      { numRuns: 500 }
    )
  })

  it("every waiter still in line is granted once the running calls end, and every permit comes back", () => {
    fc.assert(
      fc.property(traceArb, ({ config, ops }) => {
        const { c, inLine, running } = run(config, ops)
        const waiting = [...inLine]
        // end the running calls, and then the calls granted, one at a time
        while (running.length > 0) {
          const w = running.shift()
          if (w === undefined) break
          const out: Array<TestWaiter> = []
          engine.release(c, w.cost, config, out)
          for (const g of out) {
            inLine.splice(inLine.indexOf(g), 1)
            running.push(g)
          }
        }
        assert.isTrue(waiting.every((w) => w.status === "granted"))
        assert.deepStrictEqual([c.active, c.queued, c.queuedCost, c.levels?.length ?? 0], [0, 0, 0, 0])
        assert.isTrue(engine.isIdle(c))
      }),
      { numRuns: 300 }
    )
  })

  it("many waiters leaving from the middle of a long line: memory stays bounded by the live ones", () => {
    const config: engine.Config = { maxConcurrent: 1, maxQueue: 1_000_000 }
    const c = engine.make<TestWaiter>()
    assert.isTrue(engine.tryAcquire(c, 1, 0, config))
    const line: Array<TestWaiter> = []
    for (let i = 0; i < 100_000; i++) {
      const w = waiter(i, 1, 0)
      engine.enqueue(c, w, config)
      line.push(w)
      // all but every hundredth leave (time out), from anywhere in the line
      if (i % 100 !== 0) engine.leave(c, w, config, [])
    }
    assert.strictEqual(c.queued, 1_000)
    const level = c.levels?.[0]
    assert.isDefined(level)
    assert.isAtMost(level?.items.length ?? 0, 4 * 1_000 + 100)
    // served in order
    const out: Array<TestWaiter> = []
    for (let i = 0; i < 1_000; i++) engine.release(c, 1, config, out)
    assert.deepStrictEqual(
      out.map((w) => w.id),
      line.filter((w) => w.id % 100 === 0).map((w) => w.id)
    )
  })
})

describe("bulkhead retryAfter estimate", () => {
  it("none before a call was timed; then the rounds needed for the calls ahead and itself, times the mean", () => {
    const config: engine.Config = { maxConcurrent: 2, maxQueue: 10 }
    const c = engine.make<TestWaiter>()
    assert.strictEqual(engine.estimateMillis(c, 1, 0, config), -1)
    engine.recordHold(c, 100)
    assert.strictEqual(c.holdMillis, 100)
    // nobody ahead: one round
    assert.strictEqual(engine.estimateMillis(c, 1, 0, config), 100)
    assert.isTrue(engine.tryAcquire(c, 2, 0, config))
    engine.enqueue(c, waiter(1, 2, 0), config)
    engine.enqueue(c, waiter(2, 1, 5), config)
    // 3 ahead of a call of priority 0 (both), + 1 = 4 permits: 2 rounds; only 1 ahead of priority 5: 1 round
    assert.strictEqual(engine.estimateMillis(c, 1, 0, config), 200)
    assert.strictEqual(engine.estimateMillis(c, 1, 5, config), 100)
    assert.strictEqual(engine.estimateMillis(c, 2, 9, config), 100)
    // the mean moves a fifth of the way towards each new duration
    engine.recordHold(c, 200)
    assert.strictEqual(c.holdMillis, 120)
  })

  it("the mean stays within the durations recorded", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 50 }), (durations) => {
        const c = engine.make<TestWaiter>()
        for (const d of durations) engine.recordHold(c, d)
        assert.isAtLeast(c.holdMillis, Math.min(...durations) - 1e-9)
        assert.isAtMost(c.holdMillis, Math.max(...durations) + 1e-9)
      })
    )
  })
})
