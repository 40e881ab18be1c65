/**
 * The stale cache's options behind `Fallback.validateOptions`: the defaults
 * the schema documents, the rules beyond the schema's checks (positive
 * durations, a `ttl` at most `maxStale`), and the resolution of every default.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type { Options, ResolvedOptions } from "../Fallback.ts"
import * as Options_ from "../Options.ts"

/** The options' defaults: the schema's `default` annotations, applied by `resolveOptions`. */
export const defaults = {
  name: "default",
  maxKeys: 10_000,
  ttl: Duration.zero,
  maxStale: Duration.minutes(5),
  sweepInterval: Duration.seconds(30)
} as const

const ttlWithinMaxStale: Options_.Rule = (o) => {
  const ttl = o.ttl
  const maxStale = Duration.isDuration(o.maxStale) ? o.maxStale : defaults.maxStale
  return Duration.isDuration(ttl) && Duration.toMillis(ttl) > Duration.toMillis(maxStale)
    ? [{ path: "ttl", message: `Expected a duration at most maxStale (${Duration.format(maxStale)})` }]
    : []
}

/** The rules beyond the schema's own checks, each issue named by its path. */
export const rules: ReadonlyArray<Options_.Rule> = [
  Options_.positiveDuration("maxStale"),
  Options_.positiveDuration("sweepInterval"),
  ttlWithinMaxStale
]

/** The options with every default applied. */
export const resolveOptions = (o: Options): ResolvedOptions => Options_.withDefaults(o, defaults)
