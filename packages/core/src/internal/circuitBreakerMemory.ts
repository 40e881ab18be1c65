/**
 * The in-memory circuit store behind `CircuitBreaker.layerStoreMemory`: one
 * `Map` of circuits per breaker, bounded by `maxKeys`, with idle eviction
 * amortized over the arrival of new keys.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { Circuits, CircuitsOptions, LocalCircuits } from "../CircuitBreaker.ts"
import * as engine from "./circuitBreaker.ts"

interface Entry extends engine.Circuit {
  seen: number
}

/** A breaker's circuits in memory. */
export const memoryCircuits = (options: CircuitsOptions): Circuits => {
  const { config, openMillisFor } = options
  const entries = new Map<string, Entry>()
  let generation = 0
  let evicted = 0
  let epoch = 0
  let epochStartedAt = Number.NEGATIVE_INFINITY
  const epochMillis = Math.max(1, options.idleTimeToLiveMillis / 4)
  const nextGeneration = () => ++generation
  const scratch: engine.Admission = { verdict: "Admit", transition: undefined }

  const fresh = (): Entry => {
    const entry: Entry = { ...engine.make(nextGeneration()), seen: epoch }
    if (options.initialState !== "Closed") engine.force(entry, options.initialState, 0, nextGeneration())
    return entry
  }

  const makeRoom = (now: number) => {
    if (now - epochStartedAt >= epochMillis) {
      epoch++
      epochStartedAt = now
      for (const [key, entry] of entries) {
        if (epoch - entry.seen > 4 && engine.evictable(entry)) {
          entries.delete(key)
          evicted++
        }
      }
    }
    if (entries.size < options.maxKeys) return
    let scanned = 0
    for (const [key, entry] of entries) {
      if (engine.evictable(entry)) {
        entries.delete(key)
        evicted++
        if (entries.size < options.maxKeys) return
      }
      if (++scanned >= 64) break
    }
    // every scanned candidate is open or probing: drop the oldest anyway, memory comes first
    for (const key of entries.keys()) {
      entries.delete(key)
      evicted++
      if (entries.size < options.maxKeys) return
    }
  }

  const peek = (key: string): Entry | undefined => {
    const entry = entries.get(key)
    if (entry !== undefined) entry.seen = epoch
    return entry
  }
  const insert = (key: string, now: number): Entry => {
    makeRoom(now)
    const entry = fresh()
    entries.set(key, entry)
    return entry
  }
  const get = (key: string, now: number): Entry => peek(key) ?? insert(key, now)

  const local: LocalCircuits = {
    peek,
    insert,
    nextGeneration,
    circuits: () => entries.values(),
    size: () => entries.size,
    evicted: () => evicted
  }

  const retryAfter = (c: engine.Circuit, now: number): number => {
    switch (c.state) {
      case "Open":
        return c.openUntil - now
      case "ForcedOpen":
        return config.maxOpenMillis
      default:
        return 0
    }
  }

  return {
    local,
    admit: (key) =>
      Clock.clockWith((clock) => {
        const now = clock.currentTimeMillisUnsafe()
        const c = get(key, now)
        engine.admit(c, now, config, openMillisFor, nextGeneration, scratch)
        return Effect.succeed({
          verdict: scratch.verdict,
          generation: c.generation,
          retryAfterMillis: retryAfter(c, now),
          transition: scratch.transition
        })
      }),
    record: ({ durationMillis, generation: gen, hintMillis, key, outcome }) =>
      Clock.clockWith((clock) => {
        const c = entries.get(key)
        if (c === undefined) return Effect.undefined
        const now = clock.currentTimeMillisUnsafe()
        return Effect.succeed(
          engine.record(c, gen, outcome, durationMillis, hintMillis, now, config, openMillisFor, nextGeneration)
        )
      }),
    force: (key, to) =>
      Clock.clockWith((clock) => {
        const now = clock.currentTimeMillisUnsafe()
        return Effect.succeed(engine.force(get(key, now), to, now, nextGeneration()))
      }),
    read: (key) =>
      Effect.sync(() => {
        const c = entries.get(key)
        return c === undefined ? fresh() : engine.clone(c)
      }),
    export: Effect.sync(() => [...entries].map(([key, c]) => [key, engine.toSnapshot(c)] as const)),
    import: (circuits) =>
      Effect.sync(() => {
        for (const [key, snapshot] of circuits) {
          if (!entries.has(key) && entries.size >= options.maxKeys) continue
          entries.set(key, { ...engine.fromSnapshot(snapshot, config, nextGeneration()), seen: epoch })
        }
      }),
    size: Effect.sync(() => entries.size)
  }
}
