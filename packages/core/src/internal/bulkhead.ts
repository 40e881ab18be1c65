/**
 * The bulkhead's decision logic: permits and a waiting line, as plain data.
 *
 * A compartment holds `maxConcurrent` permits. A call takes `cost` of them
 * at once when they are free and nobody it must let pass waits; otherwise it
 * joins the line, unless `maxQueue` calls already wait. The line is ordered by
 * priority (higher first), and FIFO within a priority. It is served strictly
 * from its head: a head that does not fit yet (a costly call) holds back every
 * call behind it, even a cheaper one that would fit, so no call starves behind
 * a stream of cheaper ones of its own priority. An arrival of a priority
 * higher than every waiter's goes ahead of the line, and takes its permits at
 * once when they are free.
 *
 * Waiters that leave (timed out, interrupted) are marked and skipped lazily;
 * a level's array is compacted when most of it is dead, so a line's memory is
 * bounded by the live waiters.
 *
 * The module also keeps the figure behind a rejection's `retryAfter` hint: the
 * mean duration of calls timed while the compartment was saturated. No
 * function here reads a clock: times are arguments.
 *
 * @internal
 */

/** The limits a compartment enforces. */
export interface Config {
  readonly maxConcurrent: number
  readonly maxQueue: number
}

/** Where a waiter is: in line, holding its permits, or gone (timed out, interrupted, or gave its permits back). */
export type Status = "waiting" | "granted" | "left"

/** A waiting call, as the logic sees it; the wiring adds how to wake it. */
export interface Waiter {
  readonly cost: number
  readonly priority: number
  status: Status
}

/** The waiters of one priority, FIFO: `items[head..]`, dead ones (status `left`) included until skipped. */
export interface Level<W extends Waiter> {
  readonly priority: number
  items: Array<W>
  head: number
  /** Waiters of this level still waiting. */
  live: number
}

/** One key's permits and line. */
export interface Compartment<W extends Waiter> {
  /** Permits held: by running calls, and by granted waiters that have not started yet. */
  active: number
  /** Waiters in line. */
  queued: number
  /** Permits the waiters in line ask for, in all. */
  queuedCost: number
  /** Levels by priority, highest first; only levels with live waiters. Undefined until someone waits. */
  levels: Array<Level<W>> | undefined
  /** Mean duration of the calls timed while saturated, in milliseconds; -1 before the first. */
  holdMillis: number
}

/** An empty compartment: every permit free, nobody waiting. */
export const make = <W extends Waiter>(): Compartment<W> => ({
  active: 0,
  queued: 0,
  queuedCost: 0,
  levels: undefined,
  holdMillis: -1
})

/** The highest priority among the waiters; -Infinity when nobody waits. */
export const topPriority = <W extends Waiter>(c: Compartment<W>): number =>
  c.levels === undefined || c.levels.length === 0
    ? Number.NEGATIVE_INFINITY
    : (c.levels[0]?.priority ?? Number.NEGATIVE_INFINITY)

/**
 * Takes `cost` permits at once if they are free and no waiter comes first
 * (nobody waits, or every waiter has a lower priority). Returns whether it did.
 */
export const tryAcquire = <W extends Waiter>(
  c: Compartment<W>,
  cost: number,
  priority: number,
  config: Config
): boolean => {
  if (c.active + cost > config.maxConcurrent) return false
  if (c.queued > 0 && priority <= topPriority(c)) return false
  c.active += cost
  return true
}

/**
 * Puts `w` in line (behind every waiter of its priority or higher). Returns
 * false, and changes nothing, when `maxQueue` waiters already wait.
 */
export const enqueue = <W extends Waiter>(c: Compartment<W>, w: W, config: Config): boolean => {
  if (c.queued >= config.maxQueue) return false
  let levels = c.levels
  if (levels === undefined) {
    levels = []
    c.levels = levels
  }
  let i = 0
  while (i < levels.length && (levels[i]?.priority ?? 0) > w.priority) i++
  let level = levels[i]
  if (level === undefined || level.priority !== w.priority) {
    level = { priority: w.priority, items: [], head: 0, live: 0 }
    levels.splice(i, 0, level)
  }
  w.status = "waiting"
  level.items.push(w)
  level.live++
  c.queued++
  c.queuedCost += w.cost
  return true
}

/** Drops the dead waiters at the front of a level, and compacts it when it is mostly dead. */
const tidy = <W extends Waiter>(level: Level<W>): void => {
  const items = level.items
  while (level.head < items.length && items[level.head]?.status !== "waiting") level.head++
  const span = items.length - level.head
  if (level.head > 16 && level.head * 2 > items.length) {
    level.items = items.slice(level.head)
    level.head = 0
  } else if (span > 32 && level.live * 4 < span) {
    level.items = items.slice(level.head).filter((w) => w.status === "waiting")
    level.head = 0
  }
}

const removeLevel = <W extends Waiter>(c: Compartment<W>, level: Level<W>): void => {
  const levels = c.levels
  if (levels === undefined) return
  const i = levels.indexOf(level)
  if (i >= 0) levels.splice(i, 1)
}

/**
 * Grants permits to the line from its head while the head fits, appending
 * each waiter granted to `granted` (in grant order). Returns how many.
 */
export const drain = <W extends Waiter>(c: Compartment<W>, config: Config, granted: Array<W>): number => {
  let n = 0
  const levels = c.levels
  if (levels === undefined) return 0
  while (c.queued > 0) {
    const level = levels[0]
    if (level === undefined) break
    tidy(level)
    const head = level.items[level.head]
    if (head === undefined) {
      // unreachable while `live` counts the waiting items; keep the state consistent anyway
      levels.shift()
      continue
    }
    if (c.active + head.cost > config.maxConcurrent) break
    level.head++
    level.live--
    head.status = "granted"
    c.active += head.cost
    c.queued--
    c.queuedCost -= head.cost
    granted.push(head)
    n++
    if (level.live === 0) levels.shift()
  }
  return n
}

/**
 * Gives back `cost` permits (a call ended), then serves the line; the
 * waiters granted are appended to `granted`. Returns how many.
 */
export const release = <W extends Waiter>(
  c: Compartment<W>,
  cost: number,
  config: Config,
  granted: Array<W>
): number => {
  c.active -= cost
  return c.queued > 0 ? drain(c, config, granted) : 0
}

/**
 * `w` leaves: out of the line if it waits, or its permits given back if it
 * was granted and never started (then `w` is marked `left` too). The line is
 * served after, since the head may have changed or permits freed. Returns
 * what `w` was: `"waiting"`, `"granted"` or `"left"` (nothing done).
 */
export const leave = <W extends Waiter>(c: Compartment<W>, w: W, config: Config, granted: Array<W>): Status => {
  const was = w.status
  if (was === "left") return was
  w.status = "left"
  if (was === "granted") {
    release(c, w.cost, config, granted)
    return was
  }
  c.queued--
  c.queuedCost -= w.cost
  const levels = c.levels
  const level = levels?.find((l) => l.priority === w.priority)
  if (level !== undefined) {
    level.live--
    if (level.live === 0) removeLevel(c, level)
    else tidy(level)
  }
  drain(c, config, granted)
  return was
}

/** Whether the compartment is as a fresh one (nothing held, nobody waiting): it can be dropped. */
export const isIdle = <W extends Waiter>(c: Compartment<W>): boolean => c.active === 0 && c.queued === 0

/** The permits asked for by the waiters a call of `priority` would line up behind (priority at least its own). */
export const costAhead = <W extends Waiter>(c: Compartment<W>, priority: number): number => {
  const levels = c.levels
  if (levels === undefined || c.queued === 0) return 0
  let total = 0
  for (const level of levels) {
    if (level.priority < priority) break
    for (let i = level.head; i < level.items.length; i++) {
      const w = level.items[i]
      if (w !== undefined && w.status === "waiting") total += w.cost
    }
  }
  return total
}

/** The waiters in line, in the order they will be served (for tests and state snapshots). */
export const waiting = <W extends Waiter>(c: Compartment<W>): ReadonlyArray<W> => {
  const out: Array<W> = []
  for (const level of c.levels ?? []) {
    for (let i = level.head; i < level.items.length; i++) {
      const w = level.items[i]
      if (w !== undefined && w.status === "waiting") out.push(w)
    }
  }
  return out
}

/** Weight of a new duration in the mean (an exponentially weighted moving average). */
export const holdWeight = 0.2

/** Adds the duration of a call timed while the compartment was saturated. */
export const recordHold = <W extends Waiter>(c: Compartment<W>, millis: number): void => {
  const d = Math.max(0, millis)
  c.holdMillis = c.holdMillis < 0 ? d : c.holdMillis + holdWeight * (d - c.holdMillis)
}

/**
 * Whether a call taking `cost` permits should be timed for the mean: it
 * waited, or it left no permit free (its end is what the next call waits for).
 */
export const saturatedAfter = <W extends Waiter>(c: Compartment<W>, config: Config): boolean =>
  c.active >= config.maxConcurrent

/**
 * The `retryAfter` hint for a call of `cost` and `priority` refused now: the
 * rounds of `maxConcurrent` permits needed to serve the waiters ahead of it
 * and itself, times the mean call duration. -1 (no hint) before any call was
 * timed.
 */
export const estimateMillis = <W extends Waiter>(
  c: Compartment<W>,
  cost: number,
  priority: number,
  config: Config
): number => {
  if (c.holdMillis < 0) return -1
  const rounds = Math.ceil((costAhead(c, priority) + cost) / config.maxConcurrent)
  return Math.round(rounds * c.holdMillis)
}
