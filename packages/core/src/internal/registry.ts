/**
 * The pure part of the policy registry: merging a policy over the defaults,
 * comparing parts as plain data, and the diff of two configurations that a
 * reload acts on. No Effect, no clock.
 *
 * @internal
 */

/** The parts a registry builds from data, outermost first (as `Policy.order`, without the fallback). */
export type PartName =
  | "totalTimeout"
  | "retry"
  | "circuitBreaker"
  | "rateLimiter"
  | "bulkhead"
  | "hedge"
  | "attemptTimeout"

/** Every part, outermost first. */
export const partNames: ReadonlyArray<PartName> = [
  "totalTimeout",
  "retry",
  "circuitBreaker",
  "rateLimiter",
  "bulkhead",
  "hedge",
  "attemptTimeout"
]

/** Plain data: what a part's options are once durations are milliseconds. */
export type Data = null | undefined | boolean | number | string | ReadonlyArray<Data> | { readonly [key: string]: Data }

/** A policy's parts as data; an absent part is `undefined`. */
export type PolicyData = { readonly [K in PartName]?: Data }

const isRecord = (u: Data): u is { readonly [key: string]: Data } =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Structural equality of plain data: key order does not matter, and a key
 * holding `undefined` is the same as a key left out.
 */
export const equalData = (a: Data, b: Data): boolean => {
  if (a === b) return true
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b)
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!equalData(a[i], b[i])) return false
    return true
  }
  if (!isRecord(a) || !isRecord(b)) return false
  for (const key of Object.keys(a)) if (!equalData(a[key], b[key])) return false
  for (const key of Object.keys(b)) if (!(key in a) && b[key] !== undefined) return false
  return true
}

/**
 * One part of a policy over the same part of the defaults: two objects are
 * merged one level deep (the policy's fields win, a field it leaves
 * `undefined` keeps the default's; arrays and nested objects are replaced
 * whole); otherwise the policy's value, else the default's.
 */
export const mergePart = <T>(defaults: T | undefined, own: T | undefined): T | undefined => {
  if (own === undefined) return defaults
  if (defaults === undefined) return own
  if (!isPlainObject(defaults) || !isPlainObject(own)) return own
  const merged: Record<string, unknown> = { ...defaults }
  for (const [key, value] of Object.entries(own)) if (value !== undefined) merged[key] = value
  // the merge of two objects of T's shape has T's shape
  return merged as T
}

const isPlainObject = (u: unknown): u is Readonly<Record<string, unknown>> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const prototype: unknown = Object.getPrototypeOf(u)
  return prototype === Object.prototype || prototype === null
}

/** Every part of a policy over the defaults (`mergePart` part by part). */
export const mergePolicy = <P extends { readonly [K in PartName]?: unknown }>(defaults: P | undefined, own: P): P => {
  if (defaults === undefined) return own
  const merged: Partial<Record<PartName, unknown>> = {}
  for (const part of partNames) {
    const value = mergePart(defaults[part], own[part])
    if (value !== undefined) merged[part] = value
  }
  // each part merged is of its own type in P
  return merged as P
}

/** The parts whose data differ between two versions of a policy, outermost first. */
export const changedParts = (previous: PolicyData, next: PolicyData): ReadonlyArray<PartName> =>
  partNames.filter((part) => !equalData(previous[part], next[part]))

/** What a reload does to each policy. */
export interface Diff {
  /** New names, in the new configuration's order. */
  readonly added: ReadonlyArray<string>
  /** Names kept whose data changed, with the parts that changed. */
  readonly replaced: ReadonlyArray<{ readonly name: string; readonly parts: ReadonlyArray<PartName> }>
  /** Names kept with every part unchanged. */
  readonly unchanged: ReadonlyArray<string>
  /** Names dropped, in the old configuration's order. */
  readonly removed: ReadonlyArray<string>
}

/** The diff of two configurations: every name lands in exactly one of its lists. */
export const diff = (previous: ReadonlyMap<string, PolicyData>, next: ReadonlyMap<string, PolicyData>): Diff => {
  const added: Array<string> = []
  const replaced: Array<{ readonly name: string; readonly parts: ReadonlyArray<PartName> }> = []
  const unchanged: Array<string> = []
  for (const [name, data] of next) {
    const before = previous.get(name)
    if (before === undefined) {
      added.push(name)
      continue
    }
    const parts = changedParts(before, data)
    if (parts.length === 0) unchanged.push(name)
    else replaced.push({ name, parts })
  }
  const removed = [...previous.keys()].filter((name) => !next.has(name))
  return { added, replaced, unchanged, removed }
}
