/**
 * The fallbacks' bookkeeping, as plain data: the stale cache (the last good
 * value per key, least recently used first out) and the table of calls in
 * flight that request coalescing shares.
 *
 * The cache keeps, per key, the last value stored and the time it was
 * stored at. A value is **fresh** while it is younger than the `ttl` a call
 * asks for (it may be served without calling), **stale** while it is
 * younger than `maxStale` (it may be served when the call fails), and
 * **expired** after that. The cache holds at most `maxKeys` keys: storing a
 * new key when it is full drops the least recently used one (stored or
 * served). A store older than the entry it would replace is ignored, so a
 * slow call that started before a fresher one cannot overwrite its value.
 *
 * A flight is one execution shared by every call of its key that arrives
 * while it runs; its callers are counted, so the wiring knows when the last
 * one left (then the execution is interrupted) and a flight is dropped from
 * the table as soon as it completes or is abandoned: the table holds the
 * executions in flight and nothing else.
 *
 * No function here reads a clock: times are arguments, in milliseconds.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// the stale cache
// ---------------------------------------------------------------------------

/** One key's last good value and when it was stored. */
export interface Entry<V> {
  value: V
  storedAt: number
}

/** The cache: entries in least-recently-used order (a `Map` keeps insertion order; a use moves a key last). */
export interface Cache<V> {
  readonly entries: Map<string, Entry<V>>
  readonly maxKeys: number
  /** The key used last (the last of `entries`): using it again needs no move. */
  newest: string | undefined
  /** Keys dropped to make room, since the start. */
  evicted: number
}

/** An empty cache holding at most `maxKeys` keys (an integer >= 1). */
export const make = <V>(maxKeys: number): Cache<V> => ({
  entries: new Map(),
  maxKeys: Math.max(1, Math.floor(maxKeys)),
  newest: undefined,
  evicted: 0
})

/** Marks `key` (holding `entry`) as the most recently used. */
const use = <V>(cache: Cache<V>, key: string, entry: Entry<V>): void => {
  if (cache.newest === key) return
  cache.entries.delete(key)
  cache.entries.set(key, entry)
  cache.newest = key
}

/**
 * Stores `value` for `key`, stored at `now`, as the most recently used key,
 * dropping the least recently used key when a new one does not fit. Ignored
 * (returns false) when the entry held was stored later than `now`.
 */
export const store = <V>(cache: Cache<V>, key: string, value: V, now: number): boolean => {
  const entry = cache.entries.get(key)
  if (entry !== undefined) {
    if (entry.storedAt > now) return false
    entry.value = value
    entry.storedAt = now
    use(cache, key, entry)
    return true
  }
  if (cache.entries.size >= cache.maxKeys) {
    const oldest = cache.entries.keys().next()
    if (oldest.done !== true) {
      cache.entries.delete(oldest.value)
      cache.evicted++
      if (cache.newest === oldest.value) cache.newest = undefined
    }
  }
  cache.entries.set(key, { value, storedAt: now })
  cache.newest = key
  return true
}

/** How old an entry is at `now`: never negative (a clock that stepped back reads as age 0). */
export const ageOf = <V>(entry: Entry<V>, now: number): number => Math.max(0, now - entry.storedAt)

/** Where an entry of `age` stands for a call asking for `ttl` and `maxStale`. */
export type Freshness = "fresh" | "stale" | "expired"

/** Fresh while younger than `ttl`, stale while younger than `maxStale`, expired after. */
export const freshness = (age: number, ttl: number, maxStale: number): Freshness =>
  age < ttl ? "fresh" : age < maxStale ? "stale" : "expired"

/**
 * The value of `key` if it is fresh (younger than `ttl`) at `now`, marked as
 * used; undefined otherwise (nothing is changed then).
 */
export const readFresh = <V>(cache: Cache<V>, key: string, now: number, ttl: number): Entry<V> | undefined => {
  if (ttl <= 0) return undefined
  const entry = cache.entries.get(key)
  if (entry === undefined || ageOf(entry, now) >= ttl) return undefined
  use(cache, key, entry)
  return entry
}

/** What a failed call finds in the cache. */
export type Lookup<V> =
  | { readonly _tag: "Stale"; readonly entry: Entry<V>; readonly age: number }
  | { readonly _tag: "Expired"; readonly age: number }
  | { readonly _tag: "Miss" }

const miss: Lookup<never> = { _tag: "Miss" }

/**
 * The value of `key` if it is younger than `maxStale` at `now` (marked as
 * used); otherwise `Expired` with its age, or `Miss` when there is none. An
 * entry at least `retention` old is dropped (no call may serve it).
 */
export const readStale = <V>(
  cache: Cache<V>,
  key: string,
  now: number,
  maxStale: number,
  retention: number
): Lookup<V> => {
  const entry = cache.entries.get(key)
  if (entry === undefined) return miss
  const age = ageOf(entry, now)
  if (age < maxStale) {
    use(cache, key, entry)
    return { _tag: "Stale", entry, age }
  }
  if (age >= retention) remove(cache, key)
  return { _tag: "Expired", age }
}

/** Drops `key`; returns whether it was held. */
export const remove = <V>(cache: Cache<V>, key: string): boolean => {
  if (cache.newest === key) cache.newest = undefined
  return cache.entries.delete(key)
}

/** Drops every entry at least `retention` old at `now`; returns how many. */
export const sweep = <V>(cache: Cache<V>, now: number, retention: number): number => {
  let dropped = 0
  for (const [key, entry] of cache.entries) {
    if (ageOf(entry, now) >= retention) {
      remove(cache, key)
      dropped++
    }
  }
  return dropped
}

// ---------------------------------------------------------------------------
// request coalescing
// ---------------------------------------------------------------------------

/** One execution in flight, as the logic sees it; the wiring adds its fiber and its waiting callers. */
export interface Flight {
  /** Callers waiting for it (the one that started it included). */
  waiters: number
  /** Set once it completed or was abandoned: it is out of the table. */
  done: boolean
}

/**
 * A caller of `key` arrives: it joins the flight in the table, or a new one
 * made by `start` is put there. Returns the flight; the caller started it
 * when its `waiters` is 1 right after.
 */
export const join = <F extends Flight>(flights: Map<string, F>, key: string, start: () => F): F => {
  let flight = flights.get(key)
  if (flight === undefined) {
    flight = start()
    flight.waiters = 0
    flight.done = false
    flights.set(key, flight)
  }
  flight.waiters++
  return flight
}

/**
 * A caller waiting for `flight` leaves (interrupted). Returns true when it
 * was the last one: the flight is abandoned and out of the table, and its
 * execution should be stopped.
 */
export const leave = <F extends Flight>(flights: Map<string, F>, key: string, flight: F): boolean => {
  if (flight.done) return false
  flight.waiters--
  if (flight.waiters > 0) return false
  finish(flights, key, flight)
  return true
}

/** `flight` completed (or was abandoned): out of the table, if it is still the one there. */
export const finish = <F extends Flight>(flights: Map<string, F>, key: string, flight: F): void => {
  flight.done = true
  if (flights.get(key) === flight) flights.delete(key)
}
