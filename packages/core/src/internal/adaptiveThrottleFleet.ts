/**
 * The fleet side of the adaptive throttle: how one process's counts merge
 * with the fleet's when a store shares them (`AdaptiveThrottleStore`, e.g.
 * `RedisAdaptiveThrottle.layerStoreLocalFirst`). Plain functions over plain
 * data (no Effect, no clock reads); the ring of buckets is ported to Lua in
 * `@effect-resilience/redis` (`internal/adaptiveThrottleLua.ts`) with the
 * same names, order and comments.
 *
 * - The fleet keeps, per key, a ring of `buckets` time buckets of the
 *   throttle's window on the store's clock (Redis `TIME`): each sync adds a
 *   process's deltas (requests and accepts counted since its previous sync)
 *   to the bucket of the sync, and answers the ring's totals
 *   (`addToRing`, `ringTotals`).
 * - Between syncs a process decides on the fleet's totals as last answered
 *   plus its own deltas since (`effective`): the answer already holds every
 *   delta it pushed, so nothing counts twice.
 * - A delta is pushed at most as large as the process's own window holds
 *   (`pushable`): deltas kept through failed syncs (Redis down) never reach
 *   the fleet older than the window, nor inflated.
 *
 * @internal
 */

/** Requests and accepts: a delta, a window's counts, the fleet's totals. */
export interface Counts {
  readonly requests: number
  readonly accepts: number
}

/** No counts: the identity of `add`. */
export const empty: Counts = { requests: 0, accepts: 0 }

/** The sum of two counts. */
export const add = (a: Counts, b: Counts): Counts => ({
  requests: a.requests + b.requests,
  accepts: a.accepts + b.accepts
})

/**
 * What a process decides on between syncs: the fleet's totals at its last
 * sync (which hold every delta it pushed) plus its deltas since.
 */
export const effective = (fleet: Counts, delta: Counts): Counts => add(fleet, delta)

/**
 * The part of a delta to push: at most what the process's own window holds
 * now (requests and accepts bounded each). A delta kept through failed syncs
 * for longer than the window is thus cut to the window's counts, and accepts
 * never exceed requests (`delta.accepts ≤ delta.requests` and `window.accepts
 * ≤ window.requests`).
 */
export const pushable = (delta: Counts, window: Counts): Counts => ({
  requests: Math.max(0, Math.min(delta.requests, window.requests)),
  accepts: Math.max(0, Math.min(delta.accepts, window.accepts, delta.requests, window.requests))
})

// ---------------------------------------------------------------------------
// the fleet's ring of buckets (ported to Lua)
// ---------------------------------------------------------------------------

/** The ring's shape: the throttle's window and its buckets. */
export interface RingConfig {
  readonly windowMillis: number
  readonly buckets: number
}

/** A key's ring: bucket `i` holds epoch `epochs[i]` (-1 when empty). */
export interface Ring {
  readonly epochs: ReadonlyArray<number>
  readonly counts: ReadonlyArray<Counts>
}

/** An empty ring. */
export const emptyRing = (config: RingConfig): Ring => ({
  epochs: Array.from({ length: config.buckets }, () => -1),
  counts: Array.from({ length: config.buckets }, () => empty)
})

/** The bucket epoch of `now`: `floor(now × buckets / windowMillis)`, as the in-process window's. */
export const epochOf = (now: number, config: RingConfig): number =>
  Math.floor((now * config.buckets) / config.windowMillis)

/**
 * Adds a delta to the bucket of `now`, after dropping the buckets that fell
 * out of the window (and any from a later epoch: a clock that went back).
 */
export const addToRing = (ring: Ring, delta: Counts, now: number, config: RingConfig): Ring => {
  const epoch = epochOf(now, config)
  const oldest = epoch - config.buckets + 1
  const epochs = [...ring.epochs]
  const counts = [...ring.counts]
  for (let i = 0; i < config.buckets; i++) {
    const e = epochs[i] ?? -1
    if (e >= 0 && (e < oldest || e > epoch)) {
      epochs[i] = -1
      counts[i] = empty
    }
  }
  const i = epoch % config.buckets
  const held = epochs[i] === epoch ? (counts[i] ?? empty) : empty
  epochs[i] = epoch
  counts[i] = add(held, delta)
  return { epochs, counts }
}

/** The totals of the buckets inside the window at `now`. */
export const ringTotals = (ring: Ring, now: number, config: RingConfig): Counts => {
  const epoch = epochOf(now, config)
  const oldest = epoch - config.buckets + 1
  let requests = 0
  let accepts = 0
  for (let i = 0; i < ring.epochs.length; i++) {
    const e = ring.epochs[i] ?? -1
    if (e < oldest || e > epoch) continue
    const c = ring.counts[i]
    if (c === undefined) continue
    requests += c.requests
    accepts += c.accepts
  }
  return { requests, accepts }
}
