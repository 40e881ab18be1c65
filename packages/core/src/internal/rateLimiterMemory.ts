/**
 * The in-memory limits behind `RateLimiter.layerStoreMemory` and
 * `RateLimiter.compileSpec`: each limit's per-key states packed in one
 * growing `Float64Array` (a codec per algorithm says how a state is laid
 * out; the sliding log spills its longer logs to arrays of their own),
 * reached through a `Map` from key to slot, bounded by `maxKeys` (idle keys
 * dropped first) and swept of idle keys.
 *
 * @internal
 */
import type { CompiledLimit, LimitSpec } from "../RateLimiter.ts"
import * as algorithms from "./rateLimiter.ts"

/**
 * The sliding log's codec, whose size varies with its entries. As an object
 * with two growing arrays, a key with one entry took ~470 bytes (V8 reserves
 * 17 elements on an array's first push); here a key's log is packed: a log of
 * at most one entry lives in its slot (`[total, time, cost]`: 24 bytes), a
 * longer one in a packed array of doubles of its own (`[time, cost, time,
 * cost, ...]`, with room for 1.5 times its entries), and its slot holds
 * `[total, entries, -1]`. One codec per limit: it owns the spilled arrays.
 */
const slidingLogCodec = (): Codec<algorithms.SlidingLogState> => {
  const spilled = new Map<number, Array<number>>()
  const scratch: algorithms.SlidingLogState = { times: [], costs: [], total: 0 }
  return {
    size: 3,
    scratch,
    load: (data, at, into) => {
      const { costs, times } = into
      const second = data[at + 1] ?? 0
      const third = data[at + 2] ?? 0
      if (third >= 0) {
        // inline: one entry (a cost is > 0), or none
        const n = third > 0 ? 1 : 0
        times.length = n
        costs.length = n
        if (n === 1) {
          times[0] = second
          costs[0] = third
        }
      } else {
        const entries = spilled.get(at) ?? []
        times.length = second
        costs.length = second
        for (let i = 0; i < second; i++) {
          times[i] = entries[2 * i] ?? 0
          costs[i] = entries[2 * i + 1] ?? 0
        }
      }
      into.total = data[at] ?? 0
    },
    store: (from, data, at) => {
      const { costs, times } = from
      const n = times.length
      data[at] = from.total
      if (n <= 1) {
        data[at + 1] = n === 1 ? (times[0] ?? 0) : 0
        data[at + 2] = n === 1 ? (costs[0] ?? 0) : 0
        spilled.delete(at)
        return
      }
      let entries = spilled.get(at)
      // room for 1.5 n entries, reallocated when too small or more than twice that
      if (entries === undefined || entries.length < 2 * n || entries.length > 6 * n) {
        entries = new Array<number>(2 * (n + (n >> 1)))
        spilled.set(at, entries)
      }
      for (let i = 0; i < n; i++) {
        entries[2 * i] = times[i] ?? 0
        entries[2 * i + 1] = costs[i] ?? 0
      }
      data[at + 1] = n
      data[at + 2] = -1
    },
    dropped: (at) => {
      spilled.delete(at)
    }
  }
}

/**
 * How a fixed-size state is kept in a `Float64Array` slot: `size` numbers,
 * loaded into and stored from one scratch state object.
 */
interface Codec<S> {
  readonly size: number
  readonly scratch: S
  readonly load: (from: Float64Array, at: number, into: S) => void
  readonly store: (from: S, into: Float64Array, at: number) => void
  /** The slot at `at` was freed (a codec holding more than the slot lets go of it). */
  readonly dropped?: ((at: number) => void) | undefined
}

/**
 * `compile` for states of a fixed size: the states live in one growing
 * `Float64Array` (a key costs its `Map` entry, its string and `8 * size`
 * bytes, instead of an object whose epoch-millisecond fields are boxed
 * doubles), reached through a `Map` from key to slot.
 */
const compileSlots = <C, S>(
  algorithm: algorithms.Algorithm<C, S>,
  config: C,
  name: string,
  windowSeconds: number | undefined,
  maxKeys: number,
  codec: Codec<S>,
  release?: ((state: S, cost: number) => void) | undefined
): CompiledLimit => {
  const { size, scratch } = codec
  const slots = new Map<string, number>()
  const free: Array<number> = []
  let data = new Float64Array(size * Math.min(maxKeys, 1024))
  let next = 0
  let evicted = 0
  const load = (slot: number): S => {
    codec.load(data, slot * size, scratch)
    return scratch
  }
  const store = (slot: number) => codec.store(scratch, data, slot * size)
  const drop = (key: string, slot: number) => {
    slots.delete(key)
    codec.dropped?.(slot * size)
    free.push(slot)
  }
  const allocate = (): number => {
    const reused = free.pop()
    if (reused !== undefined) return reused
    if ((next + 1) * size > data.length) {
      const grown = new Float64Array(Math.min(data.length * 2, size * maxKeys))
      grown.set(data)
      data = grown
    }
    return next++
  }
  const batch = Math.max(1, Math.floor(maxKeys / 64))
  const makeRoom = (now: number) => {
    const target = maxKeys - batch
    let scanned = 0
    for (const [key, slot] of slots) {
      if (slots.size <= target || ++scanned > 4 * batch) break
      if (algorithm.isIdle(load(slot), now, config)) drop(key, slot)
    }
    for (const [key, slot] of slots) {
      if (slots.size <= target) break
      if (release !== undefined && !algorithm.isIdle(load(slot), now, config)) continue
      drop(key, slot)
      evicted++
    }
  }
  const slotOf = (key: string, now: number): number => {
    let slot = slots.get(key)
    if (slot === undefined) {
      if (slots.size >= maxKeys) makeRoom(now)
      slot = allocate()
      codec.store(algorithm.make(config, now), data, slot * size)
      slots.set(key, slot)
    }
    return slot
  }
  return {
    name,
    windowSeconds,
    concurrency: release !== undefined,
    check: (key, now, cost, out) => {
      const slot = slots.get(key)
      return algorithm.check(slot === undefined ? algorithm.make(config, now) : load(slot), now, cost, config, out)
    },
    consume: (key, now, cost, out) => {
      const slot = slotOf(key, now)
      algorithm.consume(load(slot), now, cost, config, out)
      if (out.allowed) store(slot)
      return out
    },
    refund: (key, now, cost) => {
      const slot = slots.get(key)
      if (slot === undefined) return
      algorithm.refund(load(slot), now, cost, config)
      store(slot)
    },
    penalize: (key, now, cost) => {
      const slot = slotOf(key, now)
      algorithm.penalize(load(slot), now, cost, config)
      store(slot)
    },
    release: (key, cost) => {
      const slot = slots.get(key)
      if (slot === undefined || release === undefined) return
      release(load(slot), cost)
      store(slot)
    },
    sweep: (now) => {
      let dropped = 0
      for (const [key, slot] of slots) {
        if (algorithm.isIdle(load(slot), now, config)) {
          drop(key, slot)
          dropped++
        }
      }
      return dropped
    },
    evicted: () => evicted,
    size: () => slots.size
  }
}

const tokenBucketCodec: Codec<algorithms.TokenBucketState> = {
  size: 2,
  scratch: { milliTokens: 0, lastRefill: 0 },
  load: (from, at, into) => {
    into.milliTokens = from[at] ?? 0
    into.lastRefill = from[at + 1] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.milliTokens
    into[at + 1] = from.lastRefill
  }
}

const leakyMeterCodec: Codec<algorithms.LeakyMeterState> = {
  size: 2,
  scratch: { milliLevel: 0, lastLeak: 0 },
  load: (from, at, into) => {
    into.milliLevel = from[at] ?? 0
    into.lastLeak = from[at + 1] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.milliLevel
    into[at + 1] = from.lastLeak
  }
}

const gcraCodec: Codec<algorithms.GcraState> = {
  size: 1,
  scratch: { tat: 0 },
  load: (from, at, into) => {
    into.tat = from[at] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.tat
  }
}

const fixedWindowCodec: Codec<algorithms.FixedWindowState> = {
  size: 2,
  scratch: { window: 0, count: 0 },
  load: (from, at, into) => {
    into.window = from[at] ?? 0
    into.count = from[at + 1] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.window
    into[at + 1] = from.count
  }
}

const slidingCounterCodec: Codec<algorithms.SlidingCounterState> = {
  size: 3,
  scratch: { window: 0, previous: 0, current: 0 },
  load: (from, at, into) => {
    into.window = from[at] ?? 0
    into.previous = from[at + 1] ?? 0
    into.current = from[at + 2] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.window
    into[at + 1] = from.previous
    into[at + 2] = from.current
  }
}

const concurrencyCodec: Codec<algorithms.ConcurrencyState> = {
  size: 1,
  scratch: { inFlight: 0 },
  load: (from, at, into) => {
    into.inFlight = from[at] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.inFlight
  }
}

/** A limit's per-key state in memory (`RateLimiter.compileSpec`). */
export const compileSpec = (spec: LimitSpec, maxKeys: number): CompiledLimit => {
  const { name, windowSeconds } = spec
  switch (spec.algorithm) {
    case "fixedWindow":
      return compileSlots(algorithms.fixedWindow, spec.config, name, windowSeconds, maxKeys, fixedWindowCodec)
    case "slidingCounter":
      return compileSlots(algorithms.slidingCounter, spec.config, name, windowSeconds, maxKeys, slidingCounterCodec)
    case "slidingLog":
      // the log's size varies with its entries: packed, see `slidingLogCodec`
      return compileSlots(algorithms.slidingLog, spec.config, name, windowSeconds, maxKeys, slidingLogCodec())
    case "tokenBucket":
      return compileSlots(algorithms.tokenBucket, spec.config, name, windowSeconds, maxKeys, tokenBucketCodec)
    case "gcra":
      return compileSlots(algorithms.gcra, spec.config, name, windowSeconds, maxKeys, gcraCodec)
    case "leakyMeter":
      return compileSlots(algorithms.leakyMeter, spec.config, name, windowSeconds, maxKeys, leakyMeterCodec)
    case "concurrency":
      return compileSlots(
        algorithms.concurrency,
        spec.config,
        name,
        windowSeconds,
        maxKeys,
        concurrencyCodec,
        algorithms.concurrencyRelease
      )
  }
}
