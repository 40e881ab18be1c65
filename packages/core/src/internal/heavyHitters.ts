/**
 * A heavy-hitters sketch: the top-N heaviest keys (rate-limiter clients) of a
 * weighted stream in bounded memory, instead of a map of every key.
 *
 * The algorithm is Space-Saving (Metwally, Agrawal and El Abbadi, "Efficient
 * Computation of Frequent and Top-k Elements in Data Streams", ICDT 2005),
 * with weighted increments (a request's cost). The sketch holds at most
 * `capacity` counters. Adding `weight` to a key:
 *
 * - tracked: its count grows by `weight`;
 * - not tracked, a counter free: it takes the counter, count `weight`, error 0;
 * - not tracked, all counters taken: it takes the counter with the least
 *   count `min` (whose key is forgotten), count `min + weight`, error `min`.
 *
 * So, for the weight `total` added so far (without decay):
 *
 * - counts sum to `total`, so the least count is at most `total / capacity`;
 * - every key not tracked has a true count at most the least count, and every
 *   tracked key has `count - error <= true count <= count`;
 * - hence every key whose true count exceeds `total / capacity` is tracked,
 *   and with at most `capacity` distinct keys every count is exact.
 *
 * **Data structure.** Counters are slots `0 .. size - 1` in parallel arrays
 * (`keys`, `counts`, `errors`), a `Map` from key to slot, and a binary
 * min-heap of slots ordered by count (`heap`, with each slot's heap position
 * in `position`) whose root is the counter to replace. Weighted increments
 * rule out the stream-summary's O(1) step (a count can jump past any number
 * of others), so an update costs one `Map` lookup and O(log capacity) heap
 * swaps. An update of a tracked key allocates nothing; a new key costs one
 * `Map` entry (and, until the sketch is full, one element per array: the
 * arrays grow to `capacity`, never beyond).
 *
 * **Recency.** `decay(sketch, factor)` multiplies every count and error by
 * `factor`, in O(size); applied periodically (say by 0.5 every minute) the
 * sketch ranks keys by exponentially decayed weight, "heaviest recently". The
 * guarantees above then hold for the decayed true counts and the decayed
 * total, since scaling by a positive factor keeps the heap's order.
 *
 * No Effect, no clock reads, no randomness, nothing thrown: inputs outside
 * their domain are normalized as each function documents. The functions
 * mutate the `Sketch` they are given, as the rate limiters' do.
 *
 * **Arithmetic.** Counts are float64 sums: with integer weights whose total
 * stays below 2^53 (and decay factors that are dyadic fractions such as 0.5
 * or 0.75) every bound above holds exactly; otherwise up to rounding.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// state
// ---------------------------------------------------------------------------

/** A Space-Saving sketch. Mutable: see the module comment. Slot arrays have one element per tracked key. */
export interface Sketch {
  /** The most keys tracked at once: an integer >= 1 (`Infinity` tracks every key, exactly). */
  readonly capacity: number
  /** The key each slot holds. Its length is the number of tracked keys. */
  readonly keys: Array<string>
  /** Each slot's estimated count: an over-estimate of its key's true (decayed) count. */
  readonly counts: Array<number>
  /** Each slot's largest possible over-estimate: the least count when its key took the slot. */
  readonly errors: Array<number>
  /** The slot of each tracked key. */
  readonly index: Map<string, number>
  /** A binary min-heap of slots by count: `heap[0]` is the slot with the least count, the next to be replaced. */
  readonly heap: Array<number>
  /** Each slot's position in `heap` (`heap[position[s]] === s`). */
  readonly position: Array<number>
}

/** One entry of `top`: an estimate with its error bound. */
export interface Entry {
  /** The tracked key. */
  readonly key: string
  /** The estimated count, an over-estimate: `count - error <= true count <= count`. */
  readonly count: number
  /** The most `count` over-estimates the true count by, `>= 0`. */
  readonly error: number
}

/**
 * An empty sketch tracking at most `capacity` keys. `capacity` is floored;
 * `NaN` and values below 1 are read as 1. Memory grows with the keys seen, up
 * to `capacity` slots.
 */
export const make = (capacity: number): Sketch => ({
  capacity: capacity >= 1 ? Math.floor(capacity) : 1,
  keys: [],
  counts: [],
  errors: [],
  index: new Map(),
  heap: [],
  position: []
})

/** The number of keys tracked, at most `capacity`. */
export const size = (sketch: Sketch): number => sketch.keys.length

/** Forgets every key, as a fresh sketch of the same capacity. */
export const clear = (sketch: Sketch): void => {
  sketch.keys.length = 0
  sketch.counts.length = 0
  sketch.errors.length = 0
  sketch.heap.length = 0
  sketch.position.length = 0
  sketch.index.clear()
}

// ---------------------------------------------------------------------------
// heap
// ---------------------------------------------------------------------------

/** The count of the slot at heap position `i`. */
const countAt = (sketch: Sketch, i: number): number => sketch.counts[sketch.heap[i] ?? 0] ?? 0

/** Exchanges heap positions `i` and `j`, keeping `position` in step. */
const swap = (sketch: Sketch, i: number, j: number): void => {
  const a = sketch.heap[i] ?? 0
  const b = sketch.heap[j] ?? 0
  sketch.heap[i] = b
  sketch.heap[j] = a
  sketch.position[b] = i
  sketch.position[a] = j
}

/** Moves the slot at heap position `index` towards the root while its count is below its parent's. */
const siftUp = (sketch: Sketch, index: number): void => {
  let i = index
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (countAt(sketch, parent) <= countAt(sketch, i)) return
    swap(sketch, i, parent)
    i = parent
  }
}

/** Moves the slot at heap position `index` towards the leaves while a child's count is below its own. */
const siftDown = (sketch: Sketch, index: number): void => {
  const length = sketch.heap.length
  let i = index
  for (;;) {
    const left = 2 * i + 1
    const right = left + 1
    let least = i
    if (left < length && countAt(sketch, left) < countAt(sketch, least)) least = left
    if (right < length && countAt(sketch, right) < countAt(sketch, least)) least = right
    if (least === i) return
    swap(sketch, i, least)
    i = least
  }
}

// ---------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------

/**
 * Adds `weight` (a request's cost) to `key`'s count, replacing the counter
 * with the least count when `key` is new and the sketch is full. A `weight`
 * that is not a finite number `> 0` is ignored. O(log capacity); allocates
 * nothing when `key` is already tracked.
 */
export const add = (sketch: Sketch, key: string, weight: number): void => {
  if (!(weight > 0 && weight < Number.POSITIVE_INFINITY)) return
  const slot = sketch.index.get(key)
  if (slot !== undefined) {
    sketch.counts[slot] = (sketch.counts[slot] ?? 0) + weight
    siftDown(sketch, sketch.position[slot] ?? 0)
    return
  }
  const tracked = sketch.keys.length
  if (tracked < sketch.capacity) {
    sketch.keys.push(key)
    sketch.counts.push(weight)
    sketch.errors.push(0)
    sketch.heap.push(tracked)
    sketch.position.push(tracked)
    sketch.index.set(key, tracked)
    siftUp(sketch, tracked)
    return
  }
  // full: the least counter changes hands, and its count bounds the new key's past weight
  const least = sketch.heap[0] ?? 0
  const min = sketch.counts[least] ?? 0
  sketch.index.delete(sketch.keys[least] ?? "")
  sketch.index.set(key, least)
  sketch.keys[least] = key
  sketch.errors[least] = min
  sketch.counts[least] = min + weight
  siftDown(sketch, 0)
}

/**
 * Multiplies every count and error by `factor`, so that weight added `k`
 * decays ago counts `factor^k` times. O(size). A `factor` of 1 or more (or
 * `NaN`) changes nothing; one of 0 or less forgets everything, as `clear`.
 * The heap needs no repair: scaling by a positive factor keeps counts in order.
 */
export const decay = (sketch: Sketch, factor: number): void => {
  if (!(factor < 1)) return
  if (!(factor > 0)) {
    clear(sketch)
    return
  }
  const { counts, errors } = sketch
  for (let i = 0; i < counts.length; i++) {
    counts[i] = (counts[i] ?? 0) * factor
    errors[i] = (errors[i] ?? 0) * factor
  }
}

/**
 * The top `n` keys by estimated count, heaviest first (equal counts by key),
 * as `min(n, size)` fresh entries: key, count (an over-estimate) and error
 * (`count - error <= true count <= count`). `n` is floored; `NaN` and values
 * below 1 give none. O(size log size).
 */
export const top = (sketch: Sketch, n: number): ReadonlyArray<Entry> => {
  const tracked = sketch.keys.length
  const wanted = n >= tracked ? tracked : n >= 1 ? Math.floor(n) : 0
  if (wanted === 0) return []
  const { keys, counts, errors } = sketch
  const slots: Array<number> = []
  for (let s = 0; s < tracked; s++) slots.push(s)
  slots.sort((a, b) => {
    const ca = counts[a] ?? 0
    const cb = counts[b] ?? 0
    if (ca !== cb) return ca > cb ? -1 : 1
    const ka = keys[a] ?? ""
    const kb = keys[b] ?? ""
    return ka < kb ? -1 : ka > kb ? 1 : 0
  })
  const out: Array<Entry> = []
  for (let i = 0; i < wanted; i++) {
    const s = slots[i] ?? 0
    out.push({ key: keys[s] ?? "", count: counts[s] ?? 0, error: errors[s] ?? 0 })
  }
  return out
}
