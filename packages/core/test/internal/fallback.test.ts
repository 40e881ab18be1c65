import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/fallback.ts"

// ---------------------------------------------------------------------------
// the stale cache against a naive model
// ---------------------------------------------------------------------------

/**
 * One step of a trace. Time only moves forward (`advance`), but a store may
 * be stamped `lag` milliseconds in the past: the start of a slow call that
 * completes now.
 */
type CacheOp =
  | { readonly _tag: "advance"; readonly millis: number }
  | { readonly _tag: "store"; readonly key: number; readonly lag: number }
  | { readonly _tag: "readFresh"; readonly key: number; readonly ttl: number }
  | { readonly _tag: "readStale"; readonly key: number; readonly maxStale: number }
  | { readonly _tag: "remove"; readonly key: number }
  | { readonly _tag: "sweep" }

const cacheOpArb = (keys: number): fc.Arbitrary<CacheOp> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({ _tag: fc.constant("advance" as const), millis: fc.integer({ min: 0, max: 40 }) })
    },
    {
      weight: 4,
      arbitrary: fc.record({
        _tag: fc.constant("store" as const),
        key: fc.integer({ min: 0, max: keys - 1 }),
        lag: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 60 }))
      })
    },
    {
      weight: 2,
      arbitrary: fc.record({
        _tag: fc.constant("readFresh" as const),
        key: fc.integer({ min: 0, max: keys - 1 }),
        ttl: fc.integer({ min: 0, max: 50 })
      })
    },
    {
      weight: 3,
      arbitrary: fc.record({
        _tag: fc.constant("readStale" as const),
        key: fc.integer({ min: 0, max: keys - 1 }),
        maxStale: fc.integer({ min: 0, max: 120 })
      })
    },
    {
      weight: 1,
      arbitrary: fc.record({ _tag: fc.constant("remove" as const), key: fc.integer({ min: 0, max: keys - 1 }) })
    },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("sweep" as const) }) }
  )

const cacheTraceArb = fc
  .record({
    maxKeys: fc.integer({ min: 1, max: 6 }),
    keys: fc.integer({ min: 1, max: 10 }),
    retention: fc.integer({ min: 1, max: 150 })
  })
  .chain((config) =>
    fc.record({ config: fc.constant(config), ops: fc.array(cacheOpArb(config.keys), { maxLength: 120 }) })
  )

interface ModelEntry {
  readonly key: string
  value: number
  storedAt: number
}

/** The naive model: entries in recency order (the least recently used first), found by a scan. */
class CacheModel {
  readonly entries: Array<ModelEntry> = []
  readonly maxKeys: number
  constructor(maxKeys: number) {
    this.maxKeys = maxKeys
  }
  find(key: string): ModelEntry | undefined {
    return this.entries.find((e) => e.key === key)
  }
  touch(entry: ModelEntry): void {
    this.entries.splice(this.entries.indexOf(entry), 1)
    this.entries.push(entry)
  }
  drop(key: string): void {
    const i = this.entries.findIndex((e) => e.key === key)
    if (i >= 0) this.entries.splice(i, 1)
  }
  store(key: string, value: number, at: number): { readonly stored: boolean; readonly evicted: string | undefined } {
    const entry = this.find(key)
    if (entry !== undefined) {
      if (entry.storedAt > at) return { stored: false, evicted: undefined }
      entry.value = value
      entry.storedAt = at
      this.touch(entry)
      return { stored: true, evicted: undefined }
    }
    let evicted: string | undefined
    if (this.entries.length >= this.maxKeys) evicted = this.entries.shift()?.key
    this.entries.push({ key, value, storedAt: at })
    return { stored: true, evicted }
  }
}

/** Every property's view of one step. */
interface Step {
  readonly op: CacheOp
  readonly now: number
  /** What a read returned: the value and its stamp, or nothing. */
  readonly served?: { readonly value: number; readonly storedAt: number; readonly age: number } | undefined
  /** The newest stamp ever stored for the key read (undefined: never stored). */
  readonly newestStored?: { readonly value: number; readonly storedAt: number } | undefined
  readonly evicted?: string | undefined
  /** The least recently used key before the step. */
  readonly lruBefore?: string | undefined
}

/** Runs a trace on the cache and the model, checking they agree after every step; reports each step. */
const runCache = (
  config: { readonly maxKeys: number; readonly retention: number },
  ops: ReadonlyArray<CacheOp>,
  onStep: (cache: engine.Cache<number>, step: Step) => void = () => {}
): engine.Cache<number> => {
  const cache = engine.make<number>(config.maxKeys)
  const model = new CacheModel(config.maxKeys)
  /** Per key, the value with the newest stamp ever stored (what a read may serve, if anything). */
  const newest = new Map<string, { value: number; storedAt: number }>()
  let now = 1_000
  let nextValue = 0
  for (const op of ops) {
    const lruBefore = model.entries[0]?.key
    let step: Step = { op, now, lruBefore }
    switch (op._tag) {
      case "advance":
        now += op.millis
        step = { op, now, lruBefore }
        break
      case "store": {
        const key = String(op.key)
        const value = nextValue++
        const at = now - op.lag
        const expected = model.store(key, value, at)
        const evictedBefore = cache.evicted
        const before = new Set(cache.entries.keys())
        assert.strictEqual(engine.store(cache, key, value, at), expected.stored)
        const evicted = [...before].find((k) => !cache.entries.has(k))
        assert.strictEqual(evicted, expected.evicted)
        assert.strictEqual(cache.evicted - evictedBefore, evicted === undefined ? 0 : 1)
        if (evicted !== undefined) newest.delete(evicted)
        const best = newest.get(key)
        if (best === undefined || best.storedAt <= at) newest.set(key, { value, storedAt: at })
        step = { op, now, evicted, lruBefore }
        break
      }
      case "readFresh": {
        const key = String(op.key)
        const entry = model.find(key)
        const fresh = op.ttl > 0 && entry !== undefined && Math.max(0, now - entry.storedAt) < op.ttl
        if (fresh && entry !== undefined) model.touch(entry)
        const got = engine.readFresh(cache, key, now, op.ttl)
        assert.strictEqual(got?.value, fresh ? entry?.value : undefined)
        step = {
          op,
          now,
          lruBefore,
          newestStored: newest.get(key),
          served: got === undefined ? undefined : { ...got, age: engine.ageOf(got, now) }
        }
        break
      }
      case "readStale": {
        const key = String(op.key)
        const maxStale = Math.min(op.maxStale, config.retention)
        const entry = model.find(key)
        const got = engine.readStale(cache, key, now, maxStale, config.retention)
        if (entry === undefined) {
          assert.strictEqual(got._tag, "Miss")
        } else {
          const age = Math.max(0, now - entry.storedAt)
          if (age < maxStale) {
            model.touch(entry)
            assert.deepStrictEqual(got._tag === "Stale" ? [got.entry.value, got.age] : got._tag, [entry.value, age])
          } else {
            assert.deepStrictEqual(got, { _tag: "Expired", age })
            if (age >= config.retention) model.drop(key)
          }
        }
        step = {
          op,
          now,
          lruBefore,
          newestStored: newest.get(key),
          served: got._tag === "Stale" ? { ...got.entry, age: got.age } : undefined
        }
        break
      }
      case "remove":
        model.drop(String(op.key))
        engine.remove(cache, String(op.key))
        newest.delete(String(op.key))
        break
      case "sweep":
        for (const e of [...model.entries]) if (Math.max(0, now - e.storedAt) >= config.retention) model.drop(e.key)
        engine.sweep(cache, now, config.retention)
        break
    }
    // the same keys, in the same recency order, with the same values and stamps
    assert.deepStrictEqual(
      [...cache.entries].map(([key, e]) => [key, e.value, e.storedAt]),
      model.entries.map((e) => [e.key, e.value, e.storedAt])
    )
    onStep(cache, step)
  }
  return cache
}

describe("fallback cache logic", () => {
  it("random traces match the naive model: same keys, values, stamps and recency order after every step", () => {
    fc.assert(
      fc.property(cacheTraceArb, ({ config, ops }) => {
        runCache(config, ops)
      }),
      { numRuns: 500 }
    )
  })

  it("never holds more than maxKeys keys, and a new key evicts the least recently used one", () => {
    fc.assert(
      fc.property(cacheTraceArb, ({ config, ops }) => {
        runCache(config, ops, (cache, step) => {
          assert.isAtMost(cache.entries.size, config.maxKeys)
          if (step.evicted !== undefined) {
            assert.strictEqual(step.evicted, step.lruBefore)
            assert.strictEqual(cache.entries.size, config.maxKeys)
          }
        })
      }),
      { numRuns: 500 }
    )
  })

  it("serves a stale value only younger than maxStale, and a fresh one only younger than the ttl", () => {
    fc.assert(
      fc.property(cacheTraceArb, ({ config, ops }) => {
        runCache(config, ops, (_cache, step) => {
          if (step.served === undefined) return
          if (step.op._tag === "readStale") {
            assert.isBelow(step.served.age, Math.min(step.op.maxStale, config.retention))
          }
          if (step.op._tag === "readFresh") assert.isBelow(step.served.age, step.op.ttl)
          assert.strictEqual(step.served.age, Math.max(0, step.now - step.served.storedAt))
        })
      }),
      { numRuns: 500 }
    )
  })

  it("never serves a value older than the one stored last: a store stamped earlier never overwrites a later one", () => {
    fc.assert(
      fc.property(cacheTraceArb, ({ config, ops }) => {
        runCache(config, ops, (_cache, step) => {
          if (step.served === undefined) return
          // what is served is exactly the value with the newest stamp stored for the key
          assert.deepStrictEqual(
            { value: step.served.value, storedAt: step.served.storedAt },
            step.newestStored ?? "never stored"
          )
        })
      }),
      { numRuns: 500 }
    )
  })

  it("freshness: fresh, then stale, then expired as a value ages; ttl 0 is never fresh, maxStale 0 never stale", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: 0, max: 2_000 }),
        (ttl, extra, age) => {
          const maxStale = ttl + extra
          const rank = { fresh: 0, stale: 1, expired: 2 } as const
          const at = engine.freshness(age, ttl, maxStale)
          assert.isAtMost(rank[at], rank[engine.freshness(age + 1, ttl, maxStale)])
          assert.strictEqual(at === "fresh", age < ttl)
          assert.strictEqual(at === "expired", age >= maxStale && age >= ttl)
          assert.notStrictEqual(engine.freshness(age, 0, maxStale), "fresh")
          assert.strictEqual(engine.freshness(age, 0, 0), "expired")
        }
      )
    )
  })

  it("a clock that steps back reads as age 0, and a sweep drops exactly the entries at least `retention` old", () => {
    const cache = engine.make<string>(10)
    engine.store(cache, "a", "a", 100)
    engine.store(cache, "b", "b", 150)
    assert.strictEqual(engine.ageOf(cache.entries.get("a") ?? { value: "", storedAt: 0 }, 50), 0)
    assert.strictEqual(engine.sweep(cache, 200, 100), 1)
    assert.deepStrictEqual([...cache.entries.keys()], ["b"])
  })

  it("a million keys through a cache of 1,000: the map stays at 1,000", () => {
    const cache = engine.make<number>(1_000)
    for (let i = 0; i < 1_000_000; i++) engine.store(cache, `key-${i}`, i, i)
    assert.strictEqual(cache.entries.size, 1_000)
    assert.strictEqual(cache.evicted, 999_000)
    assert.deepStrictEqual([...cache.entries.keys()][0], "key-999000")
  })
})

// ---------------------------------------------------------------------------
// coalescing against a model
// ---------------------------------------------------------------------------

type FlightOp =
  | { readonly _tag: "arrive"; readonly key: number }
  | { readonly _tag: "complete"; readonly key: number }
  | { readonly _tag: "interrupt"; readonly pick: number }

const flightOpArb = (keys: number): fc.Arbitrary<FlightOp> =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ _tag: fc.constant("arrive" as const), key: fc.integer({ min: 0, max: keys - 1 }) })
    },
    {
      weight: 2,
      arbitrary: fc.record({ _tag: fc.constant("complete" as const), key: fc.integer({ min: 0, max: keys - 1 }) })
    },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("interrupt" as const), pick: fc.nat() }) }
  )

const flightTraceArb = fc
  .integer({ min: 1, max: 4 })
  .chain((keys) => fc.record({ keys: fc.constant(keys), ops: fc.array(flightOpArb(keys), { maxLength: 100 }) }))

interface TestFlight extends engine.Flight {
  readonly id: number
  readonly key: string
}

/** A caller waiting for a flight. */
interface Caller {
  readonly flight: TestFlight
  settled: boolean
}

describe("coalescing logic", () => {
  it("executions = arrivals that found no execution of their key in flight; every caller gets its flight's result", () => {
    fc.assert(
      fc.property(flightTraceArb, ({ ops }) => {
        const flights = new Map<string, TestFlight>()
        let nextId = 0
        let executions = 0
        /** The model: per key, the callers waiting for the execution in flight (none: nothing in flight). */
        const model = new Map<string, Array<Caller>>()
        const waiting: Array<Caller> = []
        const interrupted: Array<number> = []
        for (const op of ops) {
          if (op._tag === "arrive") {
            const key = String(op.key)
            const startsOne = !model.has(key)
            const flight = engine.join(flights, key, () => ({ id: nextId++, key, waiters: 0, done: false }))
            // the caller started an execution exactly when its key had none in flight
            assert.strictEqual(flight.waiters === 1, startsOne)
            if (startsOne) {
              executions++
              model.set(key, [])
            }
            const caller: Caller = { flight, settled: false }
            model.get(key)?.push(caller)
            waiting.push(caller)
          } else if (op._tag === "complete") {
            const key = String(op.key)
            const flight = flights.get(key)
            const callers = model.get(key)
            assert.strictEqual(flight === undefined, callers === undefined)
            if (flight === undefined || callers === undefined) continue
            engine.finish(flights, key, flight)
            // everyone waiting gets this execution's result: they all joined this very flight
            for (const caller of callers) {
              assert.strictEqual(caller.flight, flight)
              caller.settled = true
              waiting.splice(waiting.indexOf(caller), 1)
            }
            model.delete(key)
          } else {
            const caller = waiting[op.pick % Math.max(1, waiting.length)]
            if (caller === undefined) continue
            const key = caller.flight.key
            const callers = model.get(key) ?? []
            callers.splice(callers.indexOf(caller), 1)
            waiting.splice(waiting.indexOf(caller), 1)
            caller.settled = true
            const last = engine.leave(flights, key, caller.flight)
            // the execution is stopped when, and only when, its last caller left
            assert.strictEqual(last, callers.length === 0)
            if (last) {
              interrupted.push(caller.flight.id)
              model.delete(key)
            }
          }
          // the table holds exactly the keys in flight, each flight counting its waiting callers
          assert.deepStrictEqual([...flights.keys()].sort(), [...model.keys()].sort())
          for (const [key, flight] of flights) assert.strictEqual(flight.waiters, model.get(key)?.length)
          assert.strictEqual(nextId, executions)
        }
        // an abandoned flight completing later (its fiber interrupted) changes nothing in the table
        for (const id of interrupted) {
          const before = [...flights.entries()]
          engine.finish(flights, "any", { id, key: "any", waiters: 0, done: true })
          assert.deepStrictEqual([...flights.entries()], before)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("without interruptions, executions = the busy periods of each key (runs of overlapping calls)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.integer({ min: 0, max: 2 }),
            start: fc.integer({ min: 0, max: 100 }),
            length: fc.integer({ min: 1, max: 20 })
          }),
          { maxLength: 40 }
        ),
        (calls) => {
          // a call arriving while its key's execution runs joins it; the execution ends when the call that started it would
          const events = calls
            .map((c, i) => ({ i, key: String(c.key), at: c.start }))
            .sort((a, b) => a.at - b.at || a.i - b.i)
          const flights = new Map<string, TestFlight & { endsAt: number }>()
          let executions = 0
          let expected = 0
          const busyUntil = new Map<string, number>()
          for (const event of events) {
            for (const [key, flight] of [...flights]) if (flight.endsAt <= event.at) engine.finish(flights, key, flight)
            const length = calls[event.i]?.length ?? 1
            const flight = engine.join(flights, event.key, () => ({
              id: executions,
              key: event.key,
              waiters: 0,
              done: false,
              endsAt: event.at + length
            }))
            if (flight.waiters === 1) executions++
            // the model: a busy period starts when the key's previous one has ended
            if ((busyUntil.get(event.key) ?? Number.NEGATIVE_INFINITY) <= event.at) {
              expected++
              busyUntil.set(event.key, event.at + length)
            }
          }
          assert.strictEqual(executions, expected)
          assert.isAtMost(executions, calls.length)
          assert.isAtMost(flights.size, 3)
        }
      ),
      { numRuns: 500 }
    )
  })
})
