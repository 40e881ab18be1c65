/**
 * The bulkhead's options behind `Bulkhead.validateOptions`: the defaults the
 * schema documents, the cross-field rules (positive durations, the adaptive
 * limit's bounds and initial value, alpha below beta), the normalization of
 * the limit's durations, and the resolution of every default.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import type { Limit, Options, ResolvedLimit, ResolvedOptions } from "../Bulkhead.ts"
import * as Options_ from "../Options.ts"

/** The options' defaults: the schema's `default` annotations, applied by `resolveOptions`. */
export const defaults = {
  name: "default",
  maxConcurrent: 10,
  maxQueue: 0,
  maxWait: Duration.seconds(1),
  maxKeys: 10_000,
  sweepInterval: Duration.seconds(30),
  onStoreError: "allow"
} as const

/** The adaptive limits' defaults, likewise. */
export const limitDefaults = {
  minLimit: 1,
  maxLimit: 200,
  backoffRatio: 0.9,
  latencyThreshold: Duration.seconds(5),
  gradientSmoothing: 0.2,
  longWindow: 600,
  window: Duration.seconds(1),
  minWindowSamples: 10,
  vegasSmoothing: 1,
  probeMultiplier: 30
} as const

const fieldOf = (o: unknown, field: string): unknown => (Predicate.hasProperty(o, field) ? o[field] : undefined)

const numberAt = (o: unknown, field: string): number | undefined => {
  const value = fieldOf(o, field)
  return typeof value === "number" && Number.isFinite(value) ? value : undefined
}

/** The adaptive limit's cross-field rules: bounds in order, the initial limit within them, alpha below beta. */
const limitRule: Options_.Rule = (o) => {
  const limit = o.limit
  if (typeof limit !== "object" || limit === null) return []
  const issues: Array<{ readonly path: string; readonly message: string }> = []
  const min = numberAt(limit, "minLimit") ?? limitDefaults.minLimit
  const max = numberAt(limit, "maxLimit") ?? limitDefaults.maxLimit
  if (max < min) issues.push({ path: "limit.maxLimit", message: `Expected a value at least minLimit (${min})` })
  else {
    const initial = numberAt(o, "maxConcurrent")
    if (initial !== undefined && (initial < min || initial > max)) {
      issues.push({
        path: "maxConcurrent",
        message: `Expected the initial limit within [minLimit, maxLimit] = [${min}, ${max}]`
      })
    }
  }
  for (const field of ["latencyThreshold", "window"]) {
    const value = fieldOf(limit, field)
    if (Duration.isDuration(value) && Duration.toMillis(value) <= 0) {
      issues.push({ path: `limit.${field}`, message: "Expected a duration greater than zero" })
    }
  }
  const alpha = numberAt(limit, "alpha")
  const beta = numberAt(limit, "beta")
  if (alpha !== undefined && beta !== undefined && beta <= alpha) {
    issues.push({ path: "limit.beta", message: `Expected a value above alpha (${alpha})` })
  }
  return issues
}

/** The rules beyond the schema's own checks, each issue named by its path. */
export const rules: ReadonlyArray<Options_.Rule> = [
  Options_.positiveDuration("maxWait"),
  Options_.positiveDuration("sweepInterval"),
  limitRule
]

/** Normalizes the durations of `limit` (its issues named `limit.<field>`). */
export const normalizeLimit = (
  normalized: Record<string, unknown>,
  issues: ReadonlyArray<Options_.Issue>
): ReadonlyArray<Options_.Issue> => {
  const limit = normalized.limit
  if (typeof limit !== "object" || limit === null) return issues
  const inner = Options_.normalizeDurations({ ...limit }, ["latencyThreshold", "window"])
  normalized.limit = inner.normalized
  return [
    ...issues,
    ...inner.issues.map(
      (issue) => new Options_.Issue({ path: `limit.${issue.path}`, value: issue.value, message: issue.message })
    )
  ]
}

/** An adaptive limit with every default applied. */
const resolveLimit = (limit: Limit): ResolvedLimit => {
  const bounds = {
    minLimit: limit.minLimit ?? limitDefaults.minLimit,
    maxLimit: limit.maxLimit ?? limitDefaults.maxLimit
  }
  switch (limit.algorithm) {
    case "aimd":
      return {
        algorithm: "aimd",
        ...bounds,
        backoffRatio: limit.backoffRatio ?? limitDefaults.backoffRatio,
        latencyThreshold: limit.latencyThreshold ?? limitDefaults.latencyThreshold
      }
    case "gradient":
      return {
        algorithm: "gradient",
        ...bounds,
        smoothing: limit.smoothing ?? limitDefaults.gradientSmoothing,
        queueSize: limit.queueSize,
        longWindow: limit.longWindow ?? limitDefaults.longWindow,
        window: limit.window ?? limitDefaults.window,
        minWindowSamples: limit.minWindowSamples ?? limitDefaults.minWindowSamples
      }
    case "vegas":
      return {
        algorithm: "vegas",
        ...bounds,
        alpha: limit.alpha,
        beta: limit.beta,
        smoothing: limit.smoothing ?? limitDefaults.vegasSmoothing,
        probeMultiplier: limit.probeMultiplier ?? limitDefaults.probeMultiplier
      }
  }
}

/** The options with every default applied (the initial adaptive limit within its bounds). */
export const resolveOptions = (o: Options): ResolvedOptions => {
  const resolved = Options_.withDefaults(o, defaults)
  if (o.limit === undefined) return resolved
  const limit = resolveLimit(o.limit)
  // the initial limit: maxConcurrent when given (checked within the bounds), else the default within them
  const initial = o.maxConcurrent ?? Math.min(limit.maxLimit, Math.max(limit.minLimit, defaults.maxConcurrent))
  return { ...resolved, maxConcurrent: initial, limit }
}
