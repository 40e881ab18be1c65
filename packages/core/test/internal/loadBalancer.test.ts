import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as engine from "../../src/internal/loadBalancer.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const poolOf = (weights: ReadonlyArray<number>, inFlight: ReadonlyArray<number> = []) =>
  engine.makePool(
    weights.map((w, i) => {
      const h = engine.makeHost(`h${i}`, w)
      h.inFlight = inFlight[i] ?? 0
      return h
    })
  )

/** Marks hosts ejected (until `until`), keeping the pool's counts right. */
const ejectHosts = (pool: engine.Pool, indices: ReadonlyArray<number>, until = 1_000) => {
  for (const i of indices) {
    const h = pool.hosts[i]
    if (h !== undefined) h.ejectedUntil = until
  }
  engine.refresh(pool)
}

/** A `random()` replaying `values` (cycling), in [0, 1). */
const replay = (values: ReadonlyArray<number>) => {
  let i = 0
  return () => {
    const v = values[i++ % Math.max(1, values.length)] ?? 0
    return v
  }
}

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
const weightsArb = fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 8 })

const config = (overrides: Partial<engine.OutlierConfig> = {}): engine.OutlierConfig => ({
  consecutiveFailures: 5,
  enforcingConsecutiveFailures: 100,
  baseEjectionMillis: 30_000,
  maxEjectionMillis: 300_000,
  maxEjectionPercent: 10,
  minAvailable: 1,
  successRate: true,
  enforcingSuccessRate: 100,
  successRateMinimumHosts: 5,
  successRateRequestVolume: 100,
  successRateStdevFactor: 1.9,
  ...overrides
})

const configArb: fc.Arbitrary<engine.OutlierConfig> = fc.record({
  consecutiveFailures: fc.integer({ min: 0, max: 5 }),
  enforcingConsecutiveFailures: fc.constant(100),
  baseEjectionMillis: fc.integer({ min: 1, max: 60_000 }),
  maxEjectionMillis: fc.integer({ min: 60_000, max: 600_000 }),
  maxEjectionPercent: fc.integer({ min: 0, max: 100 }),
  minAvailable: fc.integer({ min: 0, max: 4 }),
  successRate: fc.boolean(),
  enforcingSuccessRate: fc.constant(100),
  successRateMinimumHosts: fc.integer({ min: 1, max: 5 }),
  successRateRequestVolume: fc.integer({ min: 1, max: 10 }),
  successRateStdevFactor: fc.double({ min: 0, max: 3, noNaN: true })
})

// ---------------------------------------------------------------------------
// round robin
// ---------------------------------------------------------------------------

describe("loadBalancer: smooth weighted round robin", () => {
  it("nginx's example: weights 5, 1, 1 give a a b a c a a", () => {
    const pool = poolOf([5, 1, 1])
    const picks = Array.from({ length: 7 }, () => ["a", "b", "c"][engine.pickRoundRobin(pool, false)])
    assert.deepStrictEqual(picks, ["a", "a", "b", "a", "c", "a", "a"])
  })

  it("over each cycle of sum(weights) picks, each endpoint is picked exactly `weight` times", () => {
    fc.assert(
      fc.property(weightsArb, fc.integer({ min: 1, max: 3 }), (weights, cycles) => {
        const pool = poolOf(weights)
        const total = weights.reduce((a, b) => a + b, 0)
        for (let c = 0; c < cycles; c++) {
          const counts = weights.map(() => 0)
          for (let k = 0; k < total; k++) {
            const i = engine.pickRoundRobin(pool, false)
            counts[i] = (counts[i] ?? 0) + 1
          }
          assert.deepStrictEqual(counts, weights)
        }
      })
    )
  })

  it("smooth: after t picks no endpoint has more than t × weight / total + 1 (never a whole pick ahead of its share)", () => {
    fc.assert(
      fc.property(weightsArb, (weights) => {
        const pool = poolOf(weights)
        const total = weights.reduce((a, b) => a + b, 0)
        const counts = weights.map(() => 0)
        for (let t = 1; t <= 2 * total; t++) {
          const i = engine.pickRoundRobin(pool, false)
          counts[i] = (counts[i] ?? 0) + 1
          weights.forEach((w, j) => {
            assert.isBelow(counts[j] ?? 0, (t * w) / total + 1)
          })
        }
      })
    )
  })

  it("so an endpoint is picked twice in a row only when its weight calls for it: never with equal weights", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 9 }), fc.integer({ min: 1, max: 5 }), (n, w) => {
        const pool = poolOf(Array.from({ length: n }, () => w))
        let previous = -1
        for (let k = 0; k < 3 * n; k++) {
          const i = engine.pickRoundRobin(pool, false)
          assert.notStrictEqual(i, previous)
          assert.strictEqual(i, k % n)
          previous = i
        }
      })
    )
  })

  it("never picks an ejected endpoint; the others share the picks by weight; panic picks over all", () => {
    fc.assert(
      fc.property(
        weightsArb.chain((weights) =>
          fc.record({
            weights: fc.constant(weights),
            ejected: fc.subarray(weights.map((_, i) => i))
          })
        ),
        ({ ejected, weights }) => {
          const pool = poolOf(weights)
          ejectHosts(pool, ejected)
          const eligible = weights.map((_, i) => i).filter((i) => !ejected.includes(i))
          const total = eligible.reduce((a, i) => a + (weights[i] ?? 0), 0)
          if (eligible.length === 0) {
            assert.strictEqual(engine.pickRoundRobin(pool, false), -1)
            assert.isAtLeast(engine.pickRoundRobin(pool, true), 0)
            return
          }
          const counts = weights.map(() => 0)
          for (let k = 0; k < total; k++) {
            const i = engine.pickRoundRobin(pool, false)
            assert.isFalse(ejected.includes(i))
            counts[i] = (counts[i] ?? 0) + 1
          }
          for (const i of eligible) assert.strictEqual(counts[i], weights[i])
        }
      )
    )
  })
})

// ---------------------------------------------------------------------------
// random and power of two choices
// ---------------------------------------------------------------------------

describe("loadBalancer: weighted random", () => {
  it("random values spread evenly over [0, 1) pick each eligible endpoint in proportion to its weight, exactly", () => {
    fc.assert(
      fc.property(weightsArb, fc.integer({ min: 1, max: 4 }), (weights, k) => {
        const pool = poolOf(weights)
        const total = weights.reduce((a, b) => a + b, 0)
        const m = total * k
        const counts = weights.map(() => 0)
        for (let j = 0; j < m; j++) {
          const i = engine.pickRandom(pool, false, () => (j + 0.5) / m)
          counts[i] = (counts[i] ?? 0) + 1
        }
        assert.deepStrictEqual(
          counts,
          weights.map((w) => w * k)
        )
      })
    )
  })

  it("never returns an ejected endpoint (nor -1 while one is eligible), whatever the random values", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.array(unit, { minLength: 1, maxLength: 20 }),
        (weights, ejectedFlags, randoms) => {
          const pool = poolOf(weights)
          ejectHosts(
            pool,
            weights.map((_, i) => i).filter((i) => ejectedFlags[i] === true)
          )
          const random = replay(randoms)
          const anyEligible = pool.hosts.some((h) => h.ejectedUntil === 0)
          for (let k = 0; k < 10; k++) {
            const i = engine.pickRandom(pool, false, random)
            if (!anyEligible) assert.strictEqual(i, -1)
            else assert.strictEqual(pool.hosts[i]?.ejectedUntil, 0)
          }
        }
      )
    )
  })
})

describe("loadBalancer: least requests (power of two choices)", () => {
  it("picks one of two distinct eligible candidates, never the one with strictly more calls in flight", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 8, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.array(unit, { minLength: 2, maxLength: 12 }),
        (weights, inFlight, ejectedFlags, randoms) => {
          const pool = poolOf(
            weights.map((w) => w + 1),
            inFlight
          )
          ejectHosts(
            pool,
            weights.map((_, i) => i).filter((i) => ejectedFlags[i] === true)
          )
          // replay the same random values to see which candidates the pick drew
          const a = engine.sample(pool, false, replay(randoms), -1)
          const random = replay(randoms)
          const picked = engine.pickLeastRequests(pool, false, random)
          const eligible = pool.hosts.filter((h) => h.ejectedUntil === 0).length
          if (eligible === 0) {
            assert.strictEqual(picked, -1)
            return
          }
          const rest = replay(randoms)
          engine.sample(pool, false, rest, -1)
          const b = engine.sample(pool, false, rest, a)
          assert.isTrue(picked === a || picked === b)
          assert.strictEqual(pool.hosts[picked]?.ejectedUntil, 0)
          if (eligible === 1) return
          assert.notStrictEqual(a, b)
          const inFlightOf = (i: number) => pool.hosts[i]?.inFlight ?? 0
          assert.isAtMost(inFlightOf(picked), Math.min(inFlightOf(a), inFlightOf(b)))
        }
      )
    )
  })

  it("with two endpoints both are always the candidates: the idle one is always picked", () => {
    fc.assert(
      fc.property(fc.array(unit, { minLength: 2, maxLength: 10 }), fc.integer({ min: 1, max: 9 }), (randoms, busy) => {
        const pool = poolOf([1, 1], [busy, 0])
        assert.strictEqual(engine.pickLeastRequests(pool, false, replay(randoms)), 1)
      })
    )
  })
})

describe("loadBalancer: peak EWMA", () => {
  it("a sample above the average replaces it; below, it is averaged in, more the longer since the last", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        (first, second, gap) => {
          const h = engine.makeHost("h", 1)
          engine.observeLatency(h, first, 1_000, 10_000)
          assert.strictEqual(h.ewma, first)
          engine.observeLatency(h, second, 1_000 + gap, 10_000)
          if (second > first) assert.strictEqual(h.ewma, second)
          else {
            // between the two, to rounding (first × w + first × (1 − w) may land an ulp above first)
            assert.isAtMost(h.ewma, first + 1e-9)
            assert.isAtLeast(h.ewma, second - 1e-9)
            const w = Math.exp(-gap / 10_000)
            assert.approximately(h.ewma, first * w + second * (1 - w), 1e-9)
          }
        }
      )
    )
  })

  it("the load decays with time, grows with calls in flight, and an unmeasured busy host pays the penalty", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 60_000 }),
        (latency, inFlight, later) => {
          const h = engine.makeHost("h", 1)
          engine.observeLatency(h, latency, 0, 10_000)
          h.inFlight = inFlight
          const now = engine.peakEwmaLoad(h, 0, 10_000)
          assert.strictEqual(now, latency * (inFlight + 1))
          assert.isAtMost(engine.peakEwmaLoad(h, later, 10_000), now)
          h.inFlight = inFlight + 1
          assert.isAbove(engine.peakEwmaLoad(h, 0, 10_000), now)
          const fresh = engine.makeHost("f", 1)
          fresh.inFlight = inFlight + 1
          assert.isAtLeast(engine.peakEwmaLoad(fresh, 0, 10_000), engine.penalty)
        }
      )
    )
  })

  it("of the two candidates, the one with the lower load is picked", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ latency: fc.integer({ min: 0, max: 500 }), inFlight: fc.integer({ min: 0, max: 5 }) }), {
          minLength: 2,
          maxLength: 6
        }),
        fc.array(unit, { minLength: 2, maxLength: 6 }),
        (hosts, randoms) => {
          const pool = poolOf(
            hosts.map(() => 1),
            hosts.map((h) => h.inFlight)
          )
          hosts.forEach((h, i) => {
            const host = pool.hosts[i]
            if (host !== undefined && h.latency > 0) engine.observeLatency(host, h.latency, 0, 10_000)
          })
          const rest = replay(randoms)
          const a = engine.sample(pool, false, rest, -1)
          const b = engine.sample(pool, false, rest, a)
          const picked = engine.pickPeakEwma(pool, false, replay(randoms), 0, 10_000)
          const load = (i: number) => {
            const h = pool.hosts[i]
            return h === undefined ? Number.POSITIVE_INFINITY : engine.peakEwmaLoad(h, 0, 10_000)
          }
          assert.isTrue(picked === a || picked === b)
          assert.strictEqual(load(picked), Math.min(load(a), load(b)))
        }
      )
    )
  })
})

// ---------------------------------------------------------------------------
// ring hash
// ---------------------------------------------------------------------------

const idsArb = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 10 })
const keys = Array.from({ length: 2_000 }, (_, i) => `user-${i}`)

const ringPool = (ids: ReadonlyArray<string>, virtualNodes = 160) => {
  const pool = engine.makePool(ids.map((id) => engine.makeHost(id, 1)))
  pool.ring = engine.buildRing(pool.hosts, virtualNodes)
  return pool
}

const mapping = (pool: engine.Pool): ReadonlyArray<string | undefined> =>
  keys.map((key) => pool.hosts[engine.pickRing(pool, false, engine.hash32(key), 0)]?.id)

describe("loadBalancer: ring hash", () => {
  it("hash32 is a deterministic unsigned 32-bit integer", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const h = engine.hash32(s)
        assert.strictEqual(h, engine.hash32(s))
        assert.isTrue(Number.isInteger(h) && h >= 0 && h < 2 ** 32)
      })
    )
  })

  it("stable: the same key maps to the same endpoint, whatever order the set is listed in", () => {
    fc.assert(
      fc.property(
        idsArb.chain((ids) =>
          fc.record({ ids: fc.constant(ids), shuffled: fc.shuffledSubarray(ids, { minLength: ids.length }) })
        ),
        ({ ids, shuffled }) => {
          assert.deepStrictEqual(mapping(ringPool(ids)), mapping(ringPool(shuffled)))
        }
      ),
      { numRuns: 30 }
    )
  })

  it("an endpoint joining takes keys only for itself, and about 1/(N+1) of them (at most 2/(N+1))", () => {
    fc.assert(
      fc.property(
        idsArb
          .chain((ids) => fc.record({ ids: fc.constant(ids), joining: fc.string({ minLength: 1, maxLength: 12 }) }))
          .filter(({ ids, joining }) => !ids.includes(joining)),
        ({ ids, joining }) => {
          const before = mapping(ringPool(ids))
          const after = mapping(ringPool([...ids, joining]))
          let moved = 0
          before.forEach((id, i) => {
            if (after[i] !== id) {
              moved++
              assert.strictEqual(after[i], joining)
            }
          })
          assert.isAtMost(moved / keys.length, 2 / (ids.length + 1))
        }
      ),
      { numRuns: 30 }
    )
  })

  it("an endpoint leaving (or ejected) moves only its own keys", () => {
    fc.assert(
      fc.property(
        idsArb
          .filter((ids) => ids.length >= 2)
          .chain((ids) => fc.record({ ids: fc.constant(ids), leaving: fc.nat(ids.length - 1) })),
        ({ ids, leaving }) => {
          const pool = ringPool(ids)
          const before = mapping(pool)
          const gone = ids[leaving]
          const after = mapping(ringPool(ids.filter((id) => id !== gone)))
          ejectHosts(pool, [leaving])
          const ejected = mapping(pool)
          before.forEach((id, i) => {
            if (id !== gone) {
              assert.strictEqual(after[i], id)
              assert.strictEqual(ejected[i], id)
            } else {
              assert.notStrictEqual(after[i], gone)
              assert.notStrictEqual(ejected[i], gone)
            }
          })
          // leaving and being ejected send its keys to the same successors
          assert.deepStrictEqual(after, ejected)
        }
      ),
      { numRuns: 30 }
    )
  })

  it("bounded load: the picked endpoint is under ceil(c × (in flight + 1) / n) when any is", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 1, maxLength: 8 }),
        fc.double({ min: 1, max: 3, noNaN: true }),
        fc.string(),
        (inFlight, c, key) => {
          const pool = engine.makePool(
            inFlight.map((f, i) => Object.assign(engine.makeHost(`h${i}`, 1), { inFlight: f }))
          )
          pool.ring = engine.buildRing(pool.hosts, 20)
          const capacity = Math.ceil((c * (pool.inFlight + 1)) / pool.hosts.length)
          const picked = engine.pickRing(pool, false, engine.hash32(key), c)
          const under = pool.hosts.some((h) => h.inFlight < capacity)
          assert.isAtLeast(picked, 0)
          if (under) assert.isBelow(pool.hosts[picked]?.inFlight ?? Number.POSITIVE_INFINITY, capacity)
        }
      )
    )
  })

  it("weights: an endpoint of weight w has round(virtualNodes × w) points", () => {
    const ring = engine.buildRing(
      [
        { id: "a", weight: 1 },
        { id: "b", weight: 2.5 }
      ],
      10
    )
    const owned = [0, 0]
    for (const owner of ring.owners) owned[owner] = (owned[owner] ?? 0) + 1
    assert.deepStrictEqual(owned, [10, 25])
    // sorted
    for (let i = 1; i < ring.points.length; i++) assert.isAtLeast(ring.points[i] ?? 0, ring.points[i - 1] ?? 0)
  })
})

// ---------------------------------------------------------------------------
// outlier detection
// ---------------------------------------------------------------------------

describe("loadBalancer: ejection cap and time", () => {
  it("maxEjectable: at most floor(n × percent / 100), one when that rounds to 0, and never below minAvailable left", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 50 }), configArb, (n, c) => {
        const cap = engine.maxEjectable(n, c)
        const byPercent = Math.floor((n * c.maxEjectionPercent) / 100)
        assert.isAtLeast(cap, 0)
        assert.isAtMost(cap, Math.max(byPercent, c.maxEjectionPercent > 0 ? 1 : 0))
        assert.isAtMost(n - cap, n)
        if (n > 0) assert.isAtLeast(n - cap, Math.min(n, c.minAvailable))
        if (c.maxEjectionPercent === 0) assert.strictEqual(cap, 0)
      })
    )
  })

  it("ejection time = base × multiplier, non-decreasing in the multiplier, capped at maxEjectionMillis", () => {
    fc.assert(
      fc.property(configArb, fc.integer({ min: 1, max: 30 }), (c, m) => {
        const t = engine.ejectionMillis(m, c)
        assert.strictEqual(t, Math.min(c.baseEjectionMillis * m, c.maxEjectionMillis))
        assert.isAtMost(engine.ejectionMillis(m, c), engine.ejectionMillis(m + 1, c))
        assert.isAtMost(t, c.maxEjectionMillis)
      })
    )
  })

  it("a host ejected again and again is ejected longer each time, up to the cap; returns reset nothing but the flag", () => {
    const c = config({ baseEjectionMillis: 10, maxEjectionMillis: 35, maxEjectionPercent: 100, minAvailable: 0 })
    const pool = poolOf([1])
    const h = pool.hosts[0]
    if (h === undefined) throw new Error("no host")
    let now = 0
    const durations: Array<number> = []
    for (let k = 0; k < 5; k++) {
      const millis = engine.eject(pool, h, now, c)
      durations.push(millis)
      assert.strictEqual(pool.ejected, 1)
      assert.strictEqual(engine.eject(pool, h, now, c), -1) // already ejected
      now += millis
      engine.returnExpired(pool, now - 1, () => assert.fail("returned early"))
      let returned = 0
      engine.returnExpired(pool, now, () => returned++)
      assert.strictEqual(returned, 1)
      assert.strictEqual(pool.ejected, 0)
    }
    assert.deepStrictEqual(durations, [10, 20, 30, 35, 35])
    assert.strictEqual(h.ejections, 5)
  })

  it("whatever the trace of failures, returns and intervals, the ejected never exceed maxEjectable(n)", () => {
    type Op =
      | { readonly _tag: "fail"; readonly host: number }
      | { readonly _tag: "succeed"; readonly host: number }
      | { readonly _tag: "advance"; readonly millis: number }
      | { readonly _tag: "interval" }
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ _tag: fc.constant("fail" as const), host: fc.nat(9) }) },
      { weight: 2, arbitrary: fc.record({ _tag: fc.constant("succeed" as const), host: fc.nat(9) }) },
      {
        weight: 2,
        arbitrary: fc.record({ _tag: fc.constant("advance" as const), millis: fc.integer({ min: 0, max: 400_000 }) })
      },
      { weight: 1, arbitrary: fc.record({ _tag: fc.constant("interval" as const) }) }
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        configArb,
        fc.array(opArb, { maxLength: 120 }),
        fc.array(unit, { minLength: 1, maxLength: 5 }),
        (n, c, ops, randoms) => {
          const pool = poolOf(Array.from({ length: n }, () => 1))
          const cap = engine.maxEjectable(n, c)
          let now = 0
          for (const op of ops) {
            if (op._tag === "advance") now += op.millis
            else if (op._tag === "interval") engine.evaluateInterval(pool, now, c, replay(randoms), () => {})
            else {
              const h = pool.hosts[op.host % n]
              if (h === undefined) continue
              engine.returnExpired(pool, now, () => {})
              if (engine.recordOutcome(h, op._tag === "fail" ? "failure" : "success", c)) engine.eject(pool, h, now, c)
            }
            const ejected = pool.hosts.filter((h) => h.ejectedUntil !== 0).length
            assert.strictEqual(pool.ejected, ejected)
            assert.isAtMost(ejected, cap)
            for (const h of pool.hosts) {
              if (h.ejectedUntil !== 0) assert.isAtMost(h.ejectedUntil - h.ejectedAt, c.maxEjectionMillis)
            }
          }
        }
      )
    )
  })

  it("consecutive failures: the threshold-th failure in a row asks for an ejection; a success resets the count", () => {
    const c = config({ consecutiveFailures: 3 })
    const h = engine.makeHost("h", 1)
    assert.isFalse(engine.recordOutcome(h, "failure", c))
    assert.isFalse(engine.recordOutcome(h, "failure", c))
    assert.isFalse(engine.recordOutcome(h, "success", c))
    assert.isFalse(engine.recordOutcome(h, "failure", c))
    assert.isFalse(engine.recordOutcome(h, "ignored", c))
    assert.isFalse(engine.recordOutcome(h, "failure", c))
    assert.isTrue(engine.recordOutcome(h, "failure", c))
    assert.deepStrictEqual([h.successes, h.failures, h.intervalSuccesses, h.intervalFailures], [1, 5, 1, 5])
    assert.isFalse(engine.recordOutcome(h, "failure", config({ consecutiveFailures: 0 })))
  })
})

describe("loadBalancer: success rate", () => {
  const naive = (
    counts: ReadonlyArray<{ readonly successes: number; readonly failures: number }>,
    c: engine.OutlierConfig
  ) => {
    const qualifying = counts
      .map((x, i) => ({ i, volume: x.successes + x.failures, rate: x.successes / (x.successes + x.failures) }))
      .filter((x) => x.volume > 0 && x.volume >= c.successRateRequestVolume)
    if (qualifying.length === 0 || qualifying.length < c.successRateMinimumHosts) return undefined
    const mean = qualifying.reduce((s, x) => s + x.rate, 0) / qualifying.length
    const stdev = Math.sqrt(qualifying.reduce((s, x) => s + (x.rate - mean) ** 2, 0) / qualifying.length)
    return new Set(qualifying.filter((x) => x.rate < mean - c.successRateStdevFactor * stdev).map((x) => x.i))
  }

  it("outliers are exactly the hosts with enough calls whose rate is below mean − factor × stdev, lowest first", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ successes: fc.nat(30), failures: fc.nat(30) }), { maxLength: 10 }),
        configArb,
        (counts, c) => {
          const found = engine.successRateOutliers(counts, c)
          const expected = naive(counts, c)
          if (expected === undefined) {
            assert.isUndefined(found)
            return
          }
          assert.isDefined(found)
          if (found === undefined) return
          assert.deepStrictEqual(new Set(found.outliers), expected)
          const rate = (i: number) => {
            const x = counts[i]
            return x === undefined ? 0 : x.successes / (x.successes + x.failures)
          }
          for (let k = 1; k < found.outliers.length; k++) {
            assert.isAtMost(rate(found.outliers[k - 1] ?? 0), rate(found.outliers[k] ?? 0))
          }
        }
      )
    )
  })

  it("Envoy's defaults: one host at 50% among four at 100%, 100 calls each, is ejected; a fifth host short of volume is not counted", () => {
    const pool = poolOf([1, 1, 1, 1, 1, 1])
    const volumes = [
      [100, 0],
      [100, 0],
      [100, 0],
      [100, 0],
      [50, 50],
      [0, 99]
    ]
    volumes.forEach(([s, f], i) => {
      const h = pool.hosts[i]
      if (h === undefined) return
      h.intervalSuccesses = s ?? 0
      h.intervalFailures = f ?? 0
    })
    const c = config({ maxEjectionPercent: 50 })
    const { ejections, stats } = engine.evaluateInterval(
      pool,
      0,
      c,
      () => 0,
      () => {}
    )
    assert.deepStrictEqual(
      ejections.map((e) => [e.host.id, e.millis, e.successRate]),
      [["h4", 30_000, 0.5]]
    )
    assert.strictEqual(stats?.hosts, 5)
    assert.approximately(stats?.mean ?? 0, 0.9, 1e-12)
    // a new interval starts
    assert.isTrue(pool.hosts.every((h) => h.intervalSuccesses === 0 && h.intervalFailures === 0))
    // too few hosts with volume: nothing
    assert.isUndefined(engine.successRateOutliers([{ successes: 1, failures: 99 }], c))
  })

  it("an interval lowers the multiplier of each host not ejected, and brings back those whose time is up", () => {
    const c = config({ maxEjectionPercent: 100, minAvailable: 0, baseEjectionMillis: 100 })
    const pool = poolOf([1, 1])
    const [a, b] = pool.hosts
    if (a === undefined || b === undefined) throw new Error("no hosts")
    engine.eject(pool, a, 0, c)
    b.multiplier = 3
    const returned: Array<string> = []
    engine.evaluateInterval(
      pool,
      50,
      c,
      () => 0,
      (h) => returned.push(h.id)
    )
    assert.deepStrictEqual([a.multiplier, b.multiplier, returned], [1, 2, []])
    engine.evaluateInterval(
      pool,
      100,
      c,
      () => 0,
      (h) => returned.push(h.id)
    )
    assert.deepStrictEqual([a.multiplier, b.multiplier, returned, pool.ejected], [0, 1, ["h0"], 0])
  })

  it("enforcingSuccessRate 0 ejects nothing; the panic threshold compares the share in service", () => {
    const pool = poolOf([1, 1, 1, 1, 1])
    pool.hosts.forEach((h, i) => {
      h.intervalSuccesses = i === 0 ? 0 : 100
      h.intervalFailures = i === 0 ? 100 : 0
    })
    const { ejections } = engine.evaluateInterval(
      pool,
      0,
      config({ enforcingSuccessRate: 0 }),
      () => 0.5,
      () => {}
    )
    assert.strictEqual(ejections.length, 0)
    ejectHosts(pool, [0, 1, 2])
    assert.isTrue(engine.inPanic(pool, 50))
    assert.isFalse(engine.inPanic(pool, 40))
    assert.isFalse(engine.inPanic(pool, 0))
  })
})

describe("loadBalancer: avoiding hosts", () => {
  const strategies = ["roundRobin", "random", "leastRequests", "peakEwma", "ringHash"] as const

  it("keeps a pick that is not avoided; else returns an eligible host not avoided when one exists; else the pick", () => {
    fc.assert(
      fc.property(
        weightsArb,
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.constantFrom(...strategies),
        fc.boolean(),
        fc.array(unit, { minLength: 1, maxLength: 10 }),
        fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
        fc.nat(),
        (weights, ejectedFlags, avoidedFlags, strategy, panic, randoms, hash, at) => {
          const pool = poolOf(weights)
          ejectHosts(
            pool,
            weights.map((_, i) => i).filter((i) => ejectedFlags[i] === true)
          )
          if (strategy === "ringHash") pool.ring = engine.buildRing(pool.hosts, 8)
          const avoided = new Set(pool.hosts.filter((_, i) => avoidedFlags[i] === true).map((h) => h.id))
          const eligible = (h: engine.Host) => panic || h.ejectedUntil === 0
          const candidates = pool.hosts.map((h, i) => (eligible(h) ? i : -1)).filter((i) => i >= 0)
          // the strategy's own pick: any eligible host (or -1 when none)
          const picked = candidates.length === 0 ? -1 : (candidates[at % candidates.length] ?? -1)
          const result = engine.pickAvoiding(
            pool,
            strategy,
            panic,
            picked,
            (h) => avoided.has(h.id),
            replay(randoms),
            0,
            10_000,
            hash,
            0
          )
          const host = pool.hosts[picked]
          if (host === undefined || !avoided.has(host.id)) return assert.strictEqual(result, picked)
          const better = candidates.some((i) => !avoided.has(pool.hosts[i]?.id ?? ""))
          if (!better) return assert.strictEqual(result, picked)
          const chosen = pool.hosts[result]
          assert.isDefined(chosen)
          assert.isTrue(chosen !== undefined && eligible(chosen) && !avoided.has(chosen.id))
        }
      )
    )
  })

  it("ring hash with bounded load: a retry's host is not tried and under capacity whenever such a host exists", () => {
    fc.assert(
      fc.property(
        weightsArb,
        // loads from idle to several times the average, so some hosts are over the bound
        fc.array(fc.oneof(fc.constant(0), fc.nat({ max: 3 }), fc.integer({ min: 8, max: 20 })), {
          minLength: 8,
          maxLength: 8
        }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.double({ min: 1, max: 1.5, noNaN: true }),
        (weights, inFlight, avoidedFlags, hash, boundedLoad) => {
          const pool = poolOf(weights)
          pool.ring = engine.buildRing(pool.hosts, 8)
          pool.hosts.forEach((h, i) => {
            h.inFlight = inFlight[i] ?? 0
          })
          pool.inFlight = pool.hosts.reduce((total, h) => total + h.inFlight, 0)
          const avoided = new Set(pool.hosts.filter((_, i) => avoidedFlags[i] === true).map((h) => h.id))
          const picked = engine.pickRing(pool, false, hash, boundedLoad)
          const result = engine.pickAvoiding(
            pool,
            "ringHash",
            false,
            picked,
            (h) => avoided.has(h.id),
            () => 0,
            0,
            1,
            hash,
            boundedLoad
          )
          const first = pool.hosts[picked]
          if (first === undefined || !avoided.has(first.id)) return assert.strictEqual(result, picked)
          const capacity = Math.ceil((boundedLoad * (pool.inFlight + 1)) / pool.hosts.length)
          const fits = (h: engine.Host) => !avoided.has(h.id) && h.inFlight < capacity
          const chosen = pool.hosts[result]
          assert.isDefined(chosen)
          if (pool.hosts.some(fits)) assert.isTrue(chosen !== undefined && fits(chosen))
          else if (pool.hosts.some((h) => !avoided.has(h.id))) assert.isFalse(avoided.has(chosen?.id ?? ""))
        }
      )
    )
  })

  it("smooth weighted round robin: the turn passes to the host taking the call (the running weights still sum to 0)", () => {
    fc.assert(
      fc.property(weightsArb, fc.array(fc.nat(), { maxLength: 30 }), (weights, avoidIndices) => {
        const pool = poolOf(weights)
        for (const k of avoidIndices) {
          const picked = engine.pickRoundRobin(pool, false)
          const avoid = pool.hosts[k % pool.hosts.length]?.id
          engine.pickAvoiding(
            pool,
            "roundRobin",
            false,
            picked,
            (h) => h.id === avoid,
            () => 0,
            0,
            1,
            undefined,
            0
          )
          const sum = pool.hosts.reduce((a, h) => a + h.current, 0)
          assert.isTrue(Math.abs(sum) < 1e-9)
        }
      })
    )
  })
})
