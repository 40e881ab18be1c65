/**
 * The limiter's options behind `RateLimiter.validateOptions`: durations
 * normalized (those of every limit included), the rules beyond the schema's
 * own checks (a limit's window above zero), the validation of the top level
 * and of every tier at once (one error listing them all), and a validated
 * limit's spec (`RateLimiter.limitSpec`): its algorithm, its configuration in
 * the decision logic's units and its policy name.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Options_ from "../Options.ts"
import type { Input, Limit, LimitSpec, Options } from "../RateLimiter.ts"

/** Every `Duration.Input` as a `Duration`, a limit's `window` included (an issue per unreadable one). */
const normalizeInput = (
  input: Input
): { readonly normalized: Record<string, unknown>; readonly issues: ReadonlyArray<Options_.Issue> } => {
  const issues: Array<Options_.Issue> = []
  const top = Options_.normalizeDurations({ ...input }, ["sweepInterval", "maxWait", "alertFor"])
  issues.push(...top.issues)
  const limits = input.limits.map((limit, i) => {
    if (!("window" in limit)) return limit
    const one = Options_.normalizeDurations({ ...limit }, ["window"])
    for (const issue of one.issues) {
      issues.push(new Options_.Issue({ path: `limits.${i}.window`, value: issue.value, message: issue.message }))
    }
    return one.normalized
  })
  return { normalized: { ...top.normalized, limits }, issues }
}

/** The rules beyond the schema's own checks. */
const rules: ReadonlyArray<Options_.Rule> = [
  (o) => {
    const limits = Array.isArray(o.limits) ? o.limits : []
    const found: Array<{ readonly path: string; readonly message: string }> = []
    limits.forEach((limit: unknown, i) => {
      if (typeof limit !== "object" || limit === null) return
      if ("window" in limit && Duration.isDuration(limit.window) && Duration.toMillis(limit.window) <= 0) {
        found.push({ path: `limits.${i}.window`, message: "Expected a duration greater than zero" })
      }
    })
    return found
  }
]

const validateTop = (schema: typeof Options, input: Input): Effect.Effect<Options, Options_.InvalidOptions> => {
  const { issues, normalized } = normalizeInput(input)
  return Options_.validate("RateLimiter", schema, normalized, rules, issues)
}

/**
 * The options and every tier's limits, validated together: one
 * `InvalidOptions` lists the bad fields of the top level and of every tier
 * (a tier's under `tiers.<name>.`). `schema` is `RateLimiter.Options`.
 */
export const validateAll = (
  schema: typeof Options,
  input: Input
): Effect.Effect<
  { readonly options: Options; readonly tiers: ReadonlyArray<readonly [string, ReadonlyArray<Limit>]> },
  Options_.InvalidOptions
> => {
  const tierInputs = Object.entries(input.tiers ?? {})
  return Effect.map(
    Effect.all([
      Effect.result(validateTop(schema, input)),
      ...tierInputs.map(([, limits]) => Effect.result(validateTop(schema, { limits })))
    ]),
    ([top, ...tiers]) => ({ top, tiers })
  ).pipe(
    Effect.flatMap(({ tiers, top }) => {
      const issues: Array<Options_.Issue> = Result.isFailure(top) ? [...top.failure.issues] : []
      const valid: Array<readonly [string, ReadonlyArray<Limit>]> = []
      for (let i = 0; i < tiers.length; i++) {
        const tier = tiers[i]
        const tierName = tierInputs[i]?.[0] ?? String(i)
        if (tier === undefined) continue
        if (Result.isSuccess(tier)) {
          valid.push([tierName, tier.success.limits])
          continue
        }
        for (const issue of tier.failure.issues) {
          issues.push(
            new Options_.Issue({ path: `tiers.${tierName}.${issue.path}`, value: issue.value, message: issue.message })
          )
        }
      }
      if (issues.length > 0 || Result.isFailure(top)) {
        return Effect.fail(new Options_.InvalidOptions({ pattern: "RateLimiter", issues }))
      }
      return Effect.succeed({ options: top.success, tiers: valid })
    })
  )
}

const defaultName = (limit: Limit): string => {
  switch (limit.algorithm) {
    case "leaky-bucket":
      return `leaky-bucket-${limit.capacity}-${limit.leakPerSecond}ps`
    case "concurrency":
      return `concurrency-${limit.limit}`
    default:
      return `${limit.algorithm}-${limit.limit}-${Duration.toMillis(limit.window)}ms`
  }
}

/** The spec of a validated limit (`RateLimiter.limitSpec`). */
export const limitSpec = (limit: Limit): LimitSpec => {
  const name = limit.name ?? defaultName(limit)
  switch (limit.algorithm) {
    case "fixed-window":
    case "sliding-window":
    case "sliding-log": {
      const windowMillis = Duration.toMillis(limit.window)
      const config = { limit: limit.limit, windowMillis }
      const windowSeconds = windowMillis / 1000
      if (limit.algorithm === "fixed-window") return { name, windowSeconds, algorithm: "fixedWindow", config }
      if (limit.algorithm === "sliding-window") return { name, windowSeconds, algorithm: "slidingCounter", config }
      return { name, windowSeconds, algorithm: "slidingLog", config }
    }
    case "token-bucket": {
      const windowMillis = Duration.toMillis(limit.window)
      return {
        name,
        windowSeconds: windowMillis / 1000,
        algorithm: "tokenBucket",
        config: { capacity: limit.burst ?? limit.limit, refillPerSecond: (limit.limit * 1000) / windowMillis }
      }
    }
    case "gcra": {
      const windowMillis = Duration.toMillis(limit.window)
      return {
        name,
        windowSeconds: windowMillis / 1000,
        algorithm: "gcra",
        config: { burst: (limit.burst ?? limit.limit) - 1, ratePerPeriod: limit.limit, periodMillis: windowMillis }
      }
    }
    case "leaky-bucket":
      return {
        name,
        windowSeconds: limit.capacity / limit.leakPerSecond,
        algorithm: "leakyMeter",
        config: { capacity: limit.capacity, leakPerSecond: limit.leakPerSecond }
      }
    case "concurrency":
      return { name, windowSeconds: undefined, algorithm: "concurrency", config: { limit: limit.limit } }
  }
}
