/**
 * `Duration.Input` to milliseconds, with the parse of string inputs
 * (`"1 second"`, about 160 ns) cached: combinators such as
 * `Timeout.attempt(self, "1 second")` are applied once per call, and the same
 * few strings come back every time.
 *
 * @internal
 */
import * as Duration from "effect/Duration"

const cache = new Map<string, number>()
const maxEntries = 256

/** Milliseconds of a duration input; throws on an invalid one, as `Duration.fromInputUnsafe` does. */
export const toMillis = (input: Duration.Input): number => {
  if (typeof input === "number") return input
  if (typeof input !== "string") return Duration.toMillis(Duration.fromInputUnsafe(input))
  const cached = cache.get(input)
  if (cached !== undefined) return cached
  const millis = Duration.toMillis(Duration.fromInputUnsafe(input))
  if (cache.size >= maxEntries) cache.clear()
  cache.set(input, millis)
  return millis
}

/** Milliseconds of a duration input, or `undefined` when it is not one (never throws). */
export const toMillisOrUndefined = (input: Duration.Input): number | undefined => {
  try {
    const millis = toMillis(input)
    return Number.isNaN(millis) ? undefined : millis
  } catch {
    return undefined
  }
}
