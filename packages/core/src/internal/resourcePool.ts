/**
 * The resource pool's bookkeeping behind `ResourcePool.make`: which resource
 * a borrower gets, who waits, when a resource is retired, how many to
 * acquire, and when the next acquisition may start after failures.
 *
 * Plain functions over plain mutable data, in the style of
 * `internal/bulkhead.ts`: no Effect, no clock reads, no randomness (`now` and
 * `random` are arguments). The public module reads the clock once per
 * operation, calls these, and performs what they decide: hands a resource to
 * a waiter's fiber, closes a retired resource's scope, starts acquisitions.
 *
 * Invariants (property-tested in `test/internal/resourcePool.test.ts`):
 *
 * - `size + acquiring <= max`, where `size` counts every open resource
 *   (idle, borrowed or being checked);
 * - a resource is in exactly one place: the idle stack, one borrower (or one
 *   granted waiter), a keepalive check, or retired for good;
 * - while anyone waits, nothing is idle (a resource that comes back goes to
 *   the head of the line first);
 * - `idle.length`, `borrowed` and `checking` count the resources in each
 *   state.
 *
 * @internal
 */
import * as backoff from "./backoff.ts"

/** Where a resource is. */
export type SlotState = "idle" | "borrowed" | "checking" | "retired"

/** Why a resource was retired (its scope closed). */
export type RetireReason = "IdleTimeout" | "MaxLifetime" | "Invalidated" | "Shutdown"

/** One open resource, as the bookkeeping sees it. */
export interface Slot {
  readonly id: number
  state: SlotState
  /** When it was acquired (ms). */
  readonly createdAt: number
  /** When it must be retired: `createdAt` + its (jittered) lifetime; `Infinity` for none. */
  readonly expiresAt: number
  /** When it last became idle (acquired or given back), ms. */
  idleSince: number
  /** When it was last known good: acquired, validated, or checked by a keepalive (ms). */
  lastCheckedAt: number
  /** Invalidation asked for while borrowed or checked: retired when it comes back. */
  invalidated: boolean
  /** Why it was retired, once it is. */
  retireReason: RetireReason | undefined
}

/** A borrower waiting for a resource, in a doubly linked FIFO line. */
export interface Waiter<S extends Slot> {
  status: "waiting" | "granted" | "left"
  /** The resource handed to it (status `granted`). */
  slot: S | undefined
  prev: Waiter<S> | undefined
  next: Waiter<S> | undefined
}

/** The pool's limits, every duration in milliseconds. */
export interface Config {
  readonly min: number
  readonly max: number
  readonly maxWaiters: number
  /** An idle resource above `min` is retired after this long idle; `Infinity` for never. */
  readonly idleTimeoutMillis: number
  /** An idle resource is checked when it was last known good this long ago; `Infinity` for never. */
  readonly keepaliveMillis: number
  /** The background acquisitions' backoff after failures (`internal/backoff.ts`, exponential, equal jitter). */
  readonly backoff: backoff.Config
}

/** The pool's state. */
export interface State<S extends Slot> {
  /** Idle resources, a stack: the last is the most recently given back (borrowed first). */
  readonly idle: Array<S>
  borrowed: number
  checking: number
  /** Acquisitions in flight. */
  acquiring: number
  head: Waiter<S> | undefined
  tail: Waiter<S> | undefined
  /** Waiters in line (status `waiting`). */
  waiting: number
  closed: boolean
  /** Acquisitions failed in a row (0 after a success). */
  failures: number
  /** No acquisition starts before this (ms): the backoff after a failure. */
  retryAt: number
  /** The last backoff delay (ms), for the next one. */
  lastDelay: number
}

/** An empty pool. */
export const make = <S extends Slot>(): State<S> => ({
  idle: [],
  borrowed: 0,
  checking: 0,
  acquiring: 0,
  head: undefined,
  tail: undefined,
  waiting: 0,
  closed: false,
  failures: 0,
  retryAt: Number.NEGATIVE_INFINITY,
  lastDelay: 0
})

/** A new waiter, not yet in line. */
export const makeWaiter = <S extends Slot>(): Waiter<S> => ({
  status: "waiting",
  slot: undefined,
  prev: undefined,
  next: undefined
})

/** Open resources: idle, borrowed and being checked. */
export const size = <S extends Slot>(s: State<S>): number => s.idle.length + s.borrowed + s.checking

/** What the wiring does next: waiters granted a resource, resources to close. */
export interface Outcome<S extends Slot> {
  readonly granted: Array<Waiter<S>>
  readonly retired: Array<S>
}

/** An empty outcome. */
export const outcome = <S extends Slot>(): Outcome<S> => ({ granted: [], retired: [] })

const retire = <S extends Slot>(slot: S, reason: RetireReason, out: Outcome<S>): void => {
  slot.state = "retired"
  slot.retireReason = reason
  out.retired.push(slot)
}

const unlink = <S extends Slot>(s: State<S>, w: Waiter<S>): void => {
  if (w.prev === undefined) s.head = w.next
  else w.prev.next = w.next
  if (w.next === undefined) s.tail = w.prev
  else w.next.prev = w.prev
  w.prev = undefined
  w.next = undefined
}

/**
 * Borrows the most recently used idle resource, when nobody waits (a borrower
 * never overtakes the line). Idle resources past their lifetime are retired
 * on the way, never handed out. `undefined`: the caller must wait.
 */
export const borrow = <S extends Slot>(s: State<S>, now: number, out: Outcome<S>): S | undefined => {
  if (s.closed || s.waiting > 0) return undefined
  for (;;) {
    const slot = s.idle.pop()
    if (slot === undefined) return undefined
    if (slot.invalidated) {
      retire(slot, "Invalidated", out)
      continue
    }
    if (now >= slot.expiresAt) {
      retire(slot, "MaxLifetime", out)
      continue
    }
    slot.state = "borrowed"
    s.borrowed++
    return slot
  }
}

/** Whether one more borrower may wait (`maxWaiters`). */
export const canWait = <S extends Slot>(s: State<S>, c: Config): boolean => s.waiting < c.maxWaiters

/**
 * Puts a waiter in line: at the back, or at the front for a borrower that
 * was served already and lost its resource to a failed validation.
 */
export const enqueue = <S extends Slot>(s: State<S>, w: Waiter<S>, front = false): void => {
  w.status = "waiting"
  w.slot = undefined
  if (front) {
    w.next = s.head
    w.prev = undefined
    if (s.head === undefined) s.tail = w
    else s.head.prev = w
    s.head = w
  } else {
    w.prev = s.tail
    w.next = undefined
    if (s.tail === undefined) s.head = w
    else s.tail.next = w
    s.tail = w
  }
  s.waiting++
}

/**
 * A resource became available (given back, acquired, or checked): to the
 * head of the line if anyone waits, else on top of the idle stack.
 */
const offer = <S extends Slot>(s: State<S>, slot: S, now: number, out: Outcome<S>): void => {
  const w = s.head
  if (w !== undefined) {
    unlink(s, w)
    s.waiting--
    w.status = "granted"
    w.slot = slot
    slot.state = "borrowed"
    s.borrowed++
    out.granted.push(w)
    return
  }
  slot.state = "idle"
  slot.idleSince = now
  s.idle.push(slot)
}

/**
 * A waiter leaves (timed out, interrupted, or the pool closed): out of the
 * line; one already granted gives its resource back (returned: the wiring
 * passes it to `giveBack`).
 */
export const leave = <S extends Slot>(s: State<S>, w: Waiter<S>): S | undefined => {
  const status = w.status
  w.status = "left"
  if (status === "waiting") {
    unlink(s, w)
    s.waiting--
    return undefined
  }
  if (status === "granted") {
    const slot = w.slot
    w.slot = undefined
    return slot
  }
  return undefined
}

/**
 * A borrowed resource comes back. Retired instead of reused when `retireAs`
 * is given (invalidated by its borrower, an interrupted use), when it was
 * invalidated meanwhile, when its lifetime is over, or when the pool is
 * closed; otherwise offered. A resource already retired (forced at shutdown)
 * is left alone.
 */
export const giveBack = <S extends Slot>(
  s: State<S>,
  slot: S,
  now: number,
  out: Outcome<S>,
  retireAs?: RetireReason | undefined
): void => {
  if (slot.state !== "borrowed") return
  s.borrowed--
  if (retireAs !== undefined) retire(slot, retireAs, out)
  else if (slot.invalidated) retire(slot, "Invalidated", out)
  else if (s.closed) retire(slot, "Shutdown", out)
  else if (now >= slot.expiresAt) retire(slot, "MaxLifetime", out)
  else offer(s, slot, now, out)
}

/** An acquisition succeeded: the new resource is offered (or retired at once if the pool closed meanwhile). */
export const added = <S extends Slot>(s: State<S>, slot: S, now: number, out: Outcome<S>): void => {
  s.acquiring--
  s.failures = 0
  s.retryAt = Number.NEGATIVE_INFINITY
  if (s.closed) {
    retire(slot, "Shutdown", out)
    return
  }
  offer(s, slot, now, out)
}

/**
 * An acquisition failed (`interrupted`: stopped by the pool's shutdown, not
 * counted). Returns the backoff delay before the next one may start (ms; 0
 * when interrupted): exponential from `backoff.baseMillis` with equal jitter,
 * so never below half of it.
 */
export const acquireFailed = <S extends Slot>(
  s: State<S>,
  now: number,
  random: number,
  c: Config,
  interrupted = false
): number => {
  s.acquiring--
  if (interrupted) return 0
  s.failures++
  const delay = backoff.delay(c.backoff, s.failures, s.lastDelay, random)
  s.lastDelay = delay
  s.retryAt = Math.max(s.retryAt, now + delay)
  return delay
}

/**
 * How many acquisitions to start now, counted as in flight: enough for
 * `min` open resources and for every waiter not already served by an
 * acquisition in flight, within `max`; none while closed or backing off.
 */
export const toAcquire = <S extends Slot>(s: State<S>, now: number, c: Config): number => {
  if (s.closed || now < s.retryAt) return 0
  const total = size(s) + s.acquiring
  const forMin = c.min - total
  const forWaiters = s.waiting - s.acquiring - s.idle.length
  const n = Math.min(c.max - total, Math.max(forMin, forWaiters))
  if (n <= 0) return 0
  // after a failure, probe with one acquisition until one succeeds
  const allowed = s.failures > 0 ? Math.min(n, 1 - s.acquiring) : n
  if (allowed <= 0) return 0
  s.acquiring += allowed
  return allowed
}

/**
 * Invalidates a resource: an idle one is retired at once; a borrowed or
 * checked one is marked and retired when it comes back. Returns whether the
 * resource was open.
 */
export const invalidate = <S extends Slot>(s: State<S>, slot: S, out: Outcome<S>): boolean => {
  switch (slot.state) {
    case "idle": {
      const i = s.idle.indexOf(slot)
      if (i >= 0) s.idle.splice(i, 1)
      retire(slot, "Invalidated", out)
      return true
    }
    case "borrowed":
    case "checking":
      slot.invalidated = true
      return true
    case "retired":
      return false
  }
}

/**
 * The periodic sweep: idle resources past their lifetime are retired; those
 * idle `idleTimeout` or longer are retired, oldest first, while more than
 * `min` are open; those last known good `keepalive` ago or more are moved to
 * `check` (the wiring validates them, then calls `checked`).
 */
export const housekeep = <S extends Slot>(s: State<S>, now: number, c: Config, out: Outcome<S>): ReadonlyArray<S> => {
  const check: Array<S> = []
  if (s.closed) return check
  const kept: Array<S> = []
  // the stack's bottom holds the resources idle longest
  for (const slot of s.idle) {
    if (slot.invalidated) retire(slot, "Invalidated", out)
    else if (now >= slot.expiresAt) retire(slot, "MaxLifetime", out)
    else kept.push(slot)
  }
  s.idle.length = 0
  let open = kept.length + s.borrowed + s.checking
  for (const slot of kept) {
    if (open > c.min && now - slot.idleSince >= c.idleTimeoutMillis) {
      retire(slot, "IdleTimeout", out)
      open--
    } else if (now - slot.lastCheckedAt >= c.keepaliveMillis) {
      slot.state = "checking"
      s.checking++
      check.push(slot)
    } else {
      s.idle.push(slot)
    }
  }
  return check
}

/** A keepalive check ended: a good resource is offered again, a bad (or invalidated) one retired. */
export const checked = <S extends Slot>(s: State<S>, slot: S, ok: boolean, now: number, out: Outcome<S>): void => {
  if (slot.state !== "checking") return
  s.checking--
  if (!ok || slot.invalidated) retire(slot, "Invalidated", out)
  else if (s.closed) retire(slot, "Shutdown", out)
  else if (now >= slot.expiresAt) retire(slot, "MaxLifetime", out)
  else {
    slot.lastCheckedAt = now
    offer(s, slot, now, out)
  }
}

/**
 * Closes the pool: every waiter leaves (returned, to be failed), every idle
 * resource is retired. Borrowed and checked resources are retired as they
 * come back.
 */
export const close = <S extends Slot>(s: State<S>, out: Outcome<S>): Array<Waiter<S>> => {
  s.closed = true
  const waiters: Array<Waiter<S>> = []
  for (let w = s.head; w !== undefined; ) {
    const next = w.next
    w.prev = undefined
    w.next = undefined
    w.status = "left"
    waiters.push(w)
    w = next
  }
  s.head = undefined
  s.tail = undefined
  s.waiting = 0
  for (const slot of s.idle) retire(slot, "Shutdown", out)
  s.idle.length = 0
  return waiters
}

/** Retires a borrowed or checked resource without waiting for it (the end of the shutdown grace period). */
export const forceRetire = <S extends Slot>(s: State<S>, slot: S, out: Outcome<S>): void => {
  if (slot.state === "borrowed") s.borrowed--
  else if (slot.state === "checking") s.checking--
  else return
  retire(slot, "Shutdown", out)
}

/**
 * A resource's lifetime with jitter: `maxLifetime × (1 − jitter × random)`,
 * so the resources acquired together do not all expire at once (HikariCP
 * takes up to 2.5% off). `Infinity` stays `Infinity`.
 */
export const lifetime = (maxLifetimeMillis: number, jitter: number, random: number): number =>
  maxLifetimeMillis === Number.POSITIVE_INFINITY
    ? maxLifetimeMillis
    : maxLifetimeMillis * (1 - Math.min(1, Math.max(0, jitter)) * Math.min(1, Math.max(0, random)))
