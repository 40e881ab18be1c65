/**
 * The pool's options behind `ResourcePool.validateOptions`: the defaults the
 * schema documents, the duration fields to normalize, the rules beyond the
 * schema's own checks (positive durations, `max` at least `min`, the
 * backoff's cap at least its base, `keepalive` only with `validate`), and
 * the resolution of every default.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Options_ from "../Options.ts"
import type { Options, ResolvedOptions } from "../ResourcePool.ts"

/** The options' defaults: the schema's `default` annotations, applied by `resolveOptions`. */
export const defaults = {
  name: "default",
  min: 0,
  max: 10,
  acquireTimeout: Duration.seconds(30),
  idleTimeout: Duration.minutes(10),
  maxLifetime: Duration.minutes(30),
  maxLifetimeJitter: 0.025,
  validateAfterIdle: Duration.millis(500),
  validationTimeout: Duration.seconds(5),
  maxWaiters: 1_000,
  invalidateOnInterrupt: false,
  shutdownTimeout: Duration.seconds(30),
  housekeepingInterval: Duration.seconds(30),
  acquireRetryBase: Duration.millis(100),
  acquireRetryCap: Duration.seconds(10)
} as const

/** The fields given as `Duration.Input`, normalized before validation. */
export const durationFields = [
  "acquireTimeout",
  "idleTimeout",
  "maxLifetime",
  "validateAfterIdle",
  "validationTimeout",
  "keepalive",
  "leakDetection",
  "shutdownTimeout",
  "housekeepingInterval",
  "acquireRetryBase",
  "acquireRetryCap"
] as const

/** The durations that must be above zero (`validateAfterIdle` and `shutdownTimeout` may be zero). */
const positiveFields = [
  "acquireTimeout",
  "idleTimeout",
  "maxLifetime",
  "validationTimeout",
  "keepalive",
  "leakDetection",
  "housekeepingInterval",
  "acquireRetryBase",
  "acquireRetryCap"
] as const

const millisOf = (value: unknown): number | undefined =>
  Duration.isDuration(value) ? Duration.toMillis(value) : undefined

/** The rules beyond the schema's own checks, each issue named by its path. */
export const rules: ReadonlyArray<Options_.Rule> = [
  ...positiveFields.map((field) => Options_.positiveDuration(field)),
  (o) => {
    const min = typeof o.min === "number" ? o.min : defaults.min
    return typeof o.max === "number" && Number.isInteger(o.max) && o.max >= 1 && o.max < min
      ? [{ path: "max", message: `Expected a value at least min (${min})` }]
      : typeof o.max !== "number" && Number.isInteger(min) && min > defaults.max
        ? [{ path: "min", message: `Expected a value at most max (${defaults.max})` }]
        : []
  },
  (o) => {
    const base = millisOf(o.acquireRetryBase) ?? Duration.toMillis(defaults.acquireRetryBase)
    const cap = millisOf(o.acquireRetryCap)
    return cap !== undefined && cap > 0 && base > 0 && cap < base
      ? [{ path: "acquireRetryCap", message: `Expected a duration at least acquireRetryBase (${base} millis)` }]
      : []
  },
  // `hasValidate` is set by `validateOptions` (not a field of the schema: dropped by the decoding)
  (o) =>
    o.keepalive !== undefined && !o.hasValidate
      ? [{ path: "keepalive", message: "Expected a `validate` function to check idle resources with" }]
      : []
]

/** The options with every default applied (`keepalive` and `leakDetection` left undefined when off). */
export const resolveOptions = (o: Options): ResolvedOptions => ({
  ...Options_.withDefaults(o, defaults),
  // no defaults: left undefined when off
  keepalive: o.keepalive,
  leakDetection: o.leakDetection
})
