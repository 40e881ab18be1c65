/**
 * One process-wide timer for many deadlines: a binary min-heap of entries
 * with lazy cancellation and a single `setTimeout` armed for the earliest.
 *
 * A `setTimeout` plus `clearTimeout` per call costs about 780 ns here; a
 * heap insert and a cancelled flag cost a few tens. Calls with the same
 * timeout arrive in deadline order, so the armed timer rarely moves.
 *
 * @internal
 */
import * as Now from "./now.ts"

/** A scheduled callback; drop it with `cancel`. */
export interface Entry {
  readonly at: number
  /** Cancelled, or already run: either way no longer live. */
  cancelled: boolean
  readonly run: () => void
}

/** Cancelled entries still in the heap. */
let cancelledCount = 0
/** Entries neither cancelled nor run: the timer is ref'd exactly while there are some. */
let live = 0
let refed = false

const heap: Array<Entry> = []
let armedAt = Number.POSITIVE_INFINITY
let timer: ReturnType<typeof setTimeout> | undefined

const swap = (i: number, j: number) => {
  const a = heap[i]
  const b = heap[j]
  if (a === undefined || b === undefined) return
  heap[i] = b
  heap[j] = a
}

const up = (index: number) => {
  let i = index
  while (i > 0) {
    const parent = (i - 1) >> 1
    if ((heap[parent]?.at ?? 0) <= (heap[i]?.at ?? 0)) return
    swap(i, parent)
    i = parent
  }
}

const down = (index: number) => {
  let i = index
  for (;;) {
    const left = 2 * i + 1
    const right = left + 1
    let smallest = i
    if (left < heap.length && (heap[left]?.at ?? 0) < (heap[smallest]?.at ?? 0)) smallest = left
    if (right < heap.length && (heap[right]?.at ?? 0) < (heap[smallest]?.at ?? 0)) smallest = right
    if (smallest === i) return
    swap(i, smallest)
    i = smallest
  }
}

const pop = (): Entry | undefined => {
  const top = heap[0]
  if (top?.cancelled === true) cancelledCount--
  const last = heap.pop()
  if (heap.length > 0 && last !== undefined) {
    heap[0] = last
    down(0)
  }
  return top
}

/** The longest delay `setTimeout` honours (a signed 32-bit count of milliseconds). */
export const maxDelay = 2 ** 31 - 1

const arm = () => {
  while (heap.length > 0 && heap[0]?.cancelled === true) pop()
  const next = heap[0]
  if (next === undefined) {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    armedAt = Number.POSITIVE_INFINITY
    return
  }
  if (timer !== undefined && armedAt <= next.at) return
  if (timer !== undefined) clearTimeout(timer)
  // Node fires a delay past 2^31 - 1 ms (~24.8 days) after 1 ms: wake at most that far ahead, and re-arm then
  const now = Now.monotonicMillis()
  const delay = Math.min(maxDelay, Math.max(0, next.at - now))
  armedAt = now + delay
  timer = setTimeout(fire, delay)
  refed = true
  if (live === 0) unref()
}

/** Lets the process exit although the timer is armed (no live entry is pending). */
const unref = () => {
  refed = false
  timer?.unref?.()
}

const fire = () => {
  timer = undefined
  refed = false
  armedAt = Number.POSITIVE_INFINITY
  const now = Now.monotonicMillis()
  for (;;) {
    const next = heap[0]
    if (next === undefined || next.at > now) break
    pop()
    if (!next.cancelled) {
      // run: no longer live, and a later `cancel` of it is a no-op
      next.cancelled = true
      live--
      next.run()
    }
  }
  arm()
}

/**
 * Drops a scheduled entry. Cancelled entries leave the heap lazily; once they
 * are more than half of it, it is rebuilt, so memory stays proportional to the
 * live deadlines however long the timeouts are.
 */
export const cancel = (entry: Entry): void => {
  if (entry.cancelled) return
  entry.cancelled = true
  cancelledCount++
  live--
  if (live === 0 && refed) unref()
  if (cancelledCount > 1024 && cancelledCount * 2 > heap.length) {
    const kept = heap.filter((e) => !e.cancelled)
    heap.length = 0
    for (const e of kept) heap.push(e)
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i)
    cancelledCount = 0
  }
}

/** Schedules `run` at `at` (a `Now.monotonicMillis()` time). */
export const schedule = (at: number, run: () => void): Entry => {
  const entry: Entry = { at, cancelled: false, run }
  heap.push(entry)
  up(heap.length - 1)
  live++
  if (at < armedAt) arm()
  else if (!refed && timer !== undefined) {
    refed = true
    timer.ref?.()
  }
  return entry
}

/** Entries held, cancelled ones not yet dropped included (for tests). */
export const size = (): number => heap.length

/** Entries neither cancelled nor run (for tests). */
export const liveCount = (): number => live

/** Whether the armed timer keeps the process alive (`false` when none is armed; for tests). */
export const keepsAlive = (): boolean => timer !== undefined && (timer.hasRef?.() ?? refed)
