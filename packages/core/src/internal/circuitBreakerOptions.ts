/**
 * The breaker's options behind `CircuitBreaker.validateOptions`: the
 * duration fields to normalize, the rules beyond the schema's own checks
 * (`minimumCalls` at most a count window's size, `halfOpenSuccessesToClose`
 * at most `halfOpenPermittedCalls`, positive open and half-open durations,
 * at least a millisecond per time-window bucket), the resolution of every
 * default, and the engine's configuration from resolved options.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Schedule from "effect/Schedule"
import type { Options, ResolvedOptions } from "../CircuitBreaker.ts"
import type * as Options_ from "../Options.ts"
import type * as engine from "./circuitBreaker.ts"

/** The fields given as `Duration.Input`, normalized before validation (`openDuration` unless a `Schedule`). */
export const durationFields = [
  "slowCallDuration",
  "slidingWindowDuration",
  "maxOpenDuration",
  "halfOpenMaxDuration",
  "idleTimeToLive",
  "openDuration"
] as const

const intAtLeast1 = (u: unknown): u is number => typeof u === "number" && Number.isInteger(u) && u >= 1
const millisOf = (u: unknown): number | undefined => (Duration.isDuration(u) ? Duration.toMillis(u) : undefined)

/** The cross-field and duration rules, checked with the schema's own. */
export const rules: ReadonlyArray<Options_.Rule> = [
  (o) => {
    const size = o.slidingWindowSize ?? 100
    const minimum = o.minimumCalls ?? 20
    return (o.slidingWindowType ?? "count") === "count" && intAtLeast1(size) && intAtLeast1(minimum) && minimum > size
      ? [{ path: "minimumCalls", message: `Expected at most slidingWindowSize (${size}) for a count-based window` }]
      : []
  },
  (o) => {
    const permitted = o.halfOpenPermittedCalls ?? 1
    const toClose = o.halfOpenSuccessesToClose ?? 1
    return intAtLeast1(permitted) && intAtLeast1(toClose) && toClose > permitted
      ? [{ path: "halfOpenSuccessesToClose", message: `Expected at most halfOpenPermittedCalls (${permitted})` }]
      : []
  },
  (o) => {
    const open = millisOf(o.openDuration)
    return open !== undefined && open <= 0
      ? [{ path: "openDuration", message: "Expected a duration greater than zero" }]
      : []
  },
  (o) => {
    const window = millisOf(o.slidingWindowDuration)
    const buckets = o.slidingWindowBuckets ?? 10
    return window !== undefined && intAtLeast1(buckets) && window / buckets < 1
      ? [{ path: "slidingWindowDuration", message: "Expected at least 1 millisecond per bucket" }]
      : []
  },
  (o) => {
    const max = millisOf(o.halfOpenMaxDuration)
    return max !== undefined && max <= 0
      ? [{ path: "halfOpenMaxDuration", message: "Expected a duration greater than zero" }]
      : []
  }
]

/**
 * Validated options with every default applied (the schema's `default`
 * annotations); `schedule` is an `openDuration` given as a `Schedule`,
 * which the schema does not see.
 */
export const resolveOptions = (
  o: Options,
  schedule: Schedule.Schedule<unknown, number> | undefined
): ResolvedOptions => ({
  name: o.name ?? "default",
  consecutiveFailures: o.consecutiveFailures,
  failureRateThreshold:
    o.failureRateThreshold ??
    (o.consecutiveFailures === undefined && o.slowCallRateThreshold === undefined ? 0.5 : undefined),
  slowCallRateThreshold: o.slowCallRateThreshold,
  slowCallDuration: o.slowCallDuration ?? Duration.seconds(60),
  slidingWindowType: o.slidingWindowType ?? "count",
  slidingWindowSize: o.slidingWindowSize ?? 100,
  slidingWindowDuration: o.slidingWindowDuration ?? Duration.seconds(10),
  slidingWindowBuckets: o.slidingWindowBuckets ?? 10,
  minimumCalls: o.minimumCalls ?? 20,
  openDuration: schedule ?? o.openDuration ?? Duration.seconds(30),
  maxOpenDuration: o.maxOpenDuration ?? Duration.hours(1),
  halfOpenPermittedCalls: o.halfOpenPermittedCalls ?? 1,
  halfOpenSuccessesToClose: o.halfOpenSuccessesToClose ?? 1,
  halfOpenSuccessRate: o.halfOpenSuccessRate,
  halfOpenMaxDuration: o.halfOpenMaxDuration,
  maxKeys: o.maxKeys ?? 10_000,
  idleTimeToLive: o.idleTimeToLive ?? Duration.hours(1),
  recordCallDuration: o.recordCallDuration ?? false,
  countDefectsAsFailures: o.countDefectsAsFailures ?? true,
  spanEvents: o.spanEvents ?? "transitions",
  onStoreError: o.onStoreError ?? "allow",
  initialState: o.initialState ?? "Closed"
})

/** The engine's configuration from resolved options. */
export const toConfig = (o: ResolvedOptions): engine.Config => {
  const timeWindow = o.slidingWindowType === "time"
  return {
    consecutiveFailures: o.consecutiveFailures ?? 0,
    failureRateThreshold: o.failureRateThreshold ?? 0,
    slowCallRateThreshold: o.slowCallRateThreshold ?? 0,
    slowCallMillis:
      o.slowCallRateThreshold === undefined ? Number.POSITIVE_INFINITY : Duration.toMillis(o.slowCallDuration),
    windowType: o.slidingWindowType,
    windowSize: timeWindow ? o.slidingWindowBuckets : o.slidingWindowSize,
    bucketMillis: timeWindow ? Duration.toMillis(o.slidingWindowDuration) / o.slidingWindowBuckets : 1,
    minimumCalls: o.minimumCalls,
    halfOpenPermittedCalls: o.halfOpenPermittedCalls,
    halfOpenSuccessesToClose: o.halfOpenSuccessesToClose,
    halfOpenSuccessRate: o.halfOpenSuccessRate ?? 0,
    halfOpenMaxMillis:
      o.halfOpenMaxDuration === undefined ? Number.POSITIVE_INFINITY : Duration.toMillis(o.halfOpenMaxDuration),
    maxOpenMillis: Duration.toMillis(o.maxOpenDuration)
  }
}
