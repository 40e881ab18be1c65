import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/resourcePool.ts"

// ---------------------------------------------------------------------------
// a driver: random traces of borrows, returns, waits, acquisitions, checks and time
// ---------------------------------------------------------------------------

interface TestSlot extends engine.Slot {}

type Op =
  | { readonly _tag: "borrow" }
  | { readonly _tag: "giveBack"; readonly pick: number; readonly retire: boolean }
  | { readonly _tag: "leave"; readonly pick: number }
  | { readonly _tag: "acquired"; readonly pick: number }
  | { readonly _tag: "acquireFailed"; readonly pick: number; readonly random: number }
  | { readonly _tag: "invalidate"; readonly pick: number }
  | { readonly _tag: "tick"; readonly millis: number }
  | { readonly _tag: "housekeep" }
  | { readonly _tag: "checked"; readonly pick: number; readonly ok: boolean }
  | { readonly _tag: "close" }

const configArb = fc
  .record({
    min: fc.integer({ min: 0, max: 4 }),
    extra: fc.integer({ min: 0, max: 4 }),
    maxWaiters: fc.integer({ min: 1, max: 6 }),
    idleTimeoutMillis: fc.integer({ min: 1, max: 100 }),
    keepaliveMillis: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.constant(Number.POSITIVE_INFINITY)),
    lifetimeMillis: fc.integer({ min: 1, max: 200 })
  })
  .map(({ extra, lifetimeMillis, ...rest }) => ({
    config: {
      ...rest,
      max: Math.max(1, rest.min + extra),
      backoff: { kind: "exponential", baseMillis: 10, capMillis: 80, factor: 2, jitter: "equal" } as const
    } satisfies engine.Config,
    lifetimeMillis
  }))

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 40, arbitrary: fc.constant({ _tag: "borrow" as const }) },
  {
    weight: 30,
    arbitrary: fc.record({ _tag: fc.constant("giveBack" as const), pick: fc.nat(), retire: fc.boolean() })
  },
  { weight: 10, arbitrary: fc.record({ _tag: fc.constant("leave" as const), pick: fc.nat() }) },
  { weight: 30, arbitrary: fc.record({ _tag: fc.constant("acquired" as const), pick: fc.nat() }) },
  {
    weight: 10,
    arbitrary: fc.record({
      _tag: fc.constant("acquireFailed" as const),
      pick: fc.nat(),
      random: fc.double({ min: 0, max: 1, noNaN: true })
    })
  },
  { weight: 10, arbitrary: fc.record({ _tag: fc.constant("invalidate" as const), pick: fc.nat() }) },
  { weight: 20, arbitrary: fc.record({ _tag: fc.constant("tick" as const), millis: fc.integer({ min: 0, max: 60 }) }) },
  { weight: 10, arbitrary: fc.constant({ _tag: "housekeep" as const }) },
  { weight: 10, arbitrary: fc.record({ _tag: fc.constant("checked" as const), pick: fc.nat(), ok: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "close" as const }) }
)

interface Trace {
  readonly c: { readonly config: engine.Config; readonly lifetimeMillis: number }
  readonly ops: ReadonlyArray<Op>
}

const traceArb: fc.Arbitrary<Trace> = configArb.chain((c) =>
  fc.record({ c: fc.constant(c), ops: fc.array(opArb, { maxLength: 120 }) })
)

const pickFrom = <A>(items: ReadonlyArray<A>, pick: number): A | undefined =>
  items.length === 0 ? undefined : items[pick % items.length]

/** Runs a trace through the bookkeeping as the wiring would, checking the invariants after every step. */
const run = (
  { c: { config, lifetimeMillis }, ops }: Trace,
  check: (s: engine.State<TestSlot>, world: World) => void
) => {
  const s = engine.make<TestSlot>()
  const world: World = {
    holders: new Set(),
    waiters: new Set(),
    checking: new Set(),
    retired: new Set(),
    pendingAcquisitions: 0,
    now: 0
  }
  let nextId = 0
  const apply = (out: engine.Outcome<TestSlot>) => {
    for (const w of out.granted) {
      assert.isTrue(world.waiters.has(w), "granted a waiter not in line")
      world.waiters.delete(w)
      const slot = w.slot
      assert.isDefined(slot)
      if (slot === undefined) continue
      assert.isFalse(world.holders.has(slot), `slot ${slot.id} handed to two borrowers`)
      world.holders.add(slot)
    }
    for (const slot of out.retired) {
      assert.isFalse(world.retired.has(slot), `slot ${slot.id} retired twice`)
      world.retired.add(slot)
      world.checking.delete(slot)
    }
  }
  const fill = () => {
    world.pendingAcquisitions += engine.toAcquire(s, world.now, config)
  }
  fill()
  for (const op of ops) {
    const out = engine.outcome<TestSlot>()
    switch (op._tag) {
      case "borrow": {
        const slot = engine.borrow(s, world.now, out)
        if (slot !== undefined) {
          assert.isFalse(world.holders.has(slot), `slot ${slot.id} borrowed twice`)
          assert.isTrue(world.now < slot.expiresAt, "an expired slot was handed out")
          world.holders.add(slot)
        } else if (!s.closed && engine.canWait(s, config)) {
          const w = engine.makeWaiter<TestSlot>()
          engine.enqueue(s, w)
          world.waiters.add(w)
        }
        break
      }
      case "giveBack": {
        const slot = pickFrom([...world.holders], op.pick)
        if (slot === undefined) break
        world.holders.delete(slot)
        engine.giveBack(s, slot, world.now, out, op.retire ? "Invalidated" : undefined)
        break
      }
      case "leave": {
        const w = pickFrom([...world.waiters], op.pick)
        if (w === undefined) break
        world.waiters.delete(w)
        const slot = engine.leave(s, w)
        assert.isUndefined(slot)
        break
      }
      case "acquired": {
        if (world.pendingAcquisitions === 0) break
        world.pendingAcquisitions--
        const slot: TestSlot = {
          id: ++nextId,
          state: "idle",
          createdAt: world.now,
          expiresAt: world.now + lifetimeMillis,
          idleSince: world.now,
          lastCheckedAt: world.now,
          invalidated: false,
          retireReason: undefined
        }
        engine.added(s, slot, world.now, out)
        break
      }
      case "acquireFailed": {
        if (world.pendingAcquisitions === 0) break
        world.pendingAcquisitions--
        const delay = engine.acquireFailed(s, world.now, op.random, config)
        const temp = Math.min(config.backoff.capMillis, config.backoff.baseMillis * 2 ** (s.failures - 1))
        assert.isTrue(delay >= temp / 2 && delay <= temp, `delay ${delay} outside [${temp / 2}, ${temp}]`)
        assert.isTrue(s.retryAt > world.now, "no backoff after a failure")
        break
      }
      case "invalidate": {
        const open = [...world.holders, ...s.idle, ...world.checking]
        const slot = pickFrom(open, op.pick)
        if (slot !== undefined) engine.invalidate(s, slot, out)
        break
      }
      case "tick":
        world.now += op.millis
        break
      case "housekeep": {
        for (const slot of engine.housekeep(s, world.now, config, out)) world.checking.add(slot)
        break
      }
      case "checked": {
        const slot = pickFrom([...world.checking], op.pick)
        if (slot === undefined) break
        world.checking.delete(slot)
        engine.checked(s, slot, op.ok, world.now, out)
        break
      }
      case "close": {
        for (const w of engine.close(s, out)) world.waiters.delete(w)
        break
      }
    }
    apply(out)
    // a granted waiter is a holder: the wiring's borrower takes it from here
    fill()
    check(s, world)
  }
  return { s, world }
}

interface World {
  readonly holders: Set<TestSlot>
  readonly waiters: Set<engine.Waiter<TestSlot>>
  readonly checking: Set<TestSlot>
  readonly retired: Set<TestSlot>
  pendingAcquisitions: number
  now: number
}

const lineLength = (s: engine.State<TestSlot>): number => {
  let n = 0
  for (let w = s.head; w !== undefined; w = w.next) n++
  return n
}

describe("internal/resourcePool", () => {
  it("never more than max open or acquiring; each resource in exactly one place; counts consistent", () => {
    fc.assert(
      fc.property(traceArb, (trace) => {
        const max = trace.c.config.max
        run(trace, (s, world) => {
          assert.isAtMost(engine.size(s) + s.acquiring, max)
          assert.strictEqual(s.acquiring, world.pendingAcquisitions)
          const places = [...s.idle, ...world.holders, ...world.checking]
          assert.strictEqual(new Set(places).size, places.length, "a resource in two places")
          for (const slot of places) assert.isFalse(world.retired.has(slot), "a retired resource is still in use")
          assert.strictEqual(s.borrowed, world.holders.size)
          assert.strictEqual(s.checking, world.checking.size)
          for (const slot of s.idle) assert.strictEqual(slot.state, "idle")
          for (const slot of world.holders) assert.strictEqual(slot.state, "borrowed")
          for (const slot of world.retired) assert.strictEqual(slot.state, "retired")
        })
      })
    )
  })

  it("waiters: FIFO, counted, bounded by maxWaiters, and nobody waits while a resource is idle", () => {
    fc.assert(
      fc.property(traceArb, (trace) => {
        run(trace, (s, world) => {
          assert.strictEqual(s.waiting, world.waiters.size)
          assert.strictEqual(lineLength(s), s.waiting)
          assert.isAtMost(s.waiting, trace.c.config.maxWaiters)
          if (s.waiting > 0) assert.strictEqual(s.idle.length, 0)
        })
      })
    )
  })

  it("closed: nobody waits, nothing idle, nothing acquired; borrowed resources retire as they come back", () => {
    fc.assert(
      fc.property(traceArb, (trace) => {
        const { s, world } = run(trace, () => {})
        const out = engine.outcome<TestSlot>()
        engine.close(s, out)
        for (const slot of world.holders) engine.giveBack(s, slot, world.now, out)
        for (const slot of world.checking) engine.checked(s, slot, true, world.now, out)
        assert.deepStrictEqual([engine.size(s), s.waiting, engine.toAcquire(s, world.now, trace.c.config)], [0, 0, 0])
        for (const slot of out.retired) assert.strictEqual(slot.state, "retired")
      })
    )
  })

  it("idle trim never goes below min, and keeps the most recently used", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 8 }),
        (min, extra, idleSince) => {
          const config: engine.Config = {
            min,
            max: min + extra + idleSince.length,
            maxWaiters: 1,
            idleTimeoutMillis: 50,
            keepaliveMillis: Number.POSITIVE_INFINITY,
            backoff: { kind: "exponential", baseMillis: 10, capMillis: 80, factor: 2, jitter: "equal" }
          }
          const s = engine.make<TestSlot>()
          const sorted = [...idleSince].sort((a, b) => a - b)
          sorted.forEach((t, i) => {
            s.idle.push({
              id: i,
              state: "idle",
              createdAt: 0,
              expiresAt: Number.POSITIVE_INFINITY,
              idleSince: t,
              lastCheckedAt: t,
              invalidated: false,
              retireReason: undefined
            })
          })
          const out = engine.outcome<TestSlot>()
          engine.housekeep(s, 120, config, out)
          const stale = sorted.filter((t) => 120 - t >= 50).length
          assert.strictEqual(s.idle.length, Math.max(sorted.length - stale, Math.min(min, sorted.length)))
          for (const slot of out.retired) {
            assert.strictEqual(slot.retireReason, "IdleTimeout")
            for (const kept of s.idle) assert.isAtMost(slot.idleSince, kept.idleSince)
          }
        }
      )
    )
  })

  it("lifetime: within [maxLifetime × (1 − jitter), maxLifetime], Infinity kept", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (max, jitter, random) => {
          const l = engine.lifetime(max, jitter, random)
          assert.isTrue(l <= max && l >= max * (1 - jitter) - 1e-6)
        }
      )
    )
    assert.strictEqual(engine.lifetime(Number.POSITIVE_INFINITY, 0.5, 0.5), Number.POSITIVE_INFINITY)
  })

  it("after a failure, one probe at a time until an acquisition succeeds", () => {
    const config: engine.Config = {
      min: 0,
      max: 10,
      maxWaiters: 10,
      idleTimeoutMillis: 1000,
      keepaliveMillis: Number.POSITIVE_INFINITY,
      backoff: { kind: "exponential", baseMillis: 100, capMillis: 1000, factor: 2, jitter: "equal" }
    }
    const s = engine.make<TestSlot>()
    for (let i = 0; i < 5; i++) engine.enqueue(s, engine.makeWaiter())
    assert.strictEqual(engine.toAcquire(s, 0, config), 5)
    for (let i = 0; i < 5; i++) engine.acquireFailed(s, 0, 0, config)
    // five failures in a row at once: the backoff grew to min(cap, 100 × 2^4) / 2
    assert.strictEqual(s.retryAt, 500)
    assert.strictEqual(engine.toAcquire(s, 499, config), 0)
    assert.strictEqual(engine.toAcquire(s, 500, config), 1)
    assert.strictEqual(engine.toAcquire(s, 500, config), 0)
    // an interruption (shutdown) is not a failure
    engine.acquireFailed(s, 500, 0, config, true)
    assert.strictEqual(s.failures, 5)
  })
})
