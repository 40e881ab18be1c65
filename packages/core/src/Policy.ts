/**
 * Policies: the patterns composed in one well-defined order, whatever order
 * their parts are given in.
 *
 * A policy names its parts — `fallback`, `totalTimeout`, `retry`,
 * `adaptiveThrottle`, `circuitBreaker`, `rateLimiter`, `bulkhead`, `hedge`,
 * `attemptTimeout` — and `Policy.apply` wraps an effect in them, outermost
 * first:
 *
 * fallback → total timeout → retry → adaptive throttle → circuit breaker →
 * rate limit → bulkhead → hedging → attempt timeout
 *
 * **Details**
 *
 * - A part left out is absent: no layer, no cost. Every part keeps its own
 *   metrics, events and spans; the policy adds no metric, only a
 *   `Policy.apply` event on the caller's span naming its layers in order.
 * - The applied effect fails with exactly the errors of the parts present
 *   (`TimeoutError`, `RetryError`, `CircuitBreakerError`, `RateLimiterError`,
 *   `BulkheadError`; hedging adds none), minus what the fallback handles, and
 *   needs what the effect needs (plus `FallbackCache` for a cached fallback).
 * - The breaker sits outside the limiter and the bulkhead, so an open circuit
 *   rejects before a call takes a rate-limit token or a place in line. Their
 *   rejections reach the breaker: the policy makes the breaker ignore them
 *   (they say this process is busy, not that the dependency fails). Inside a
 *   `totalTimeout` it also ignores an attempt cut short by the deadline.
 * - The adaptive throttle sits just outside the breaker and inside the
 *   retry, so every retry counts as a request. It ignores the rejections of
 *   the policy's own breaker, limiter and bulkhead, and attempts cut short by
 *   the total timeout: they say nothing about the backend.
 * - Per-call keys (a tenant, a host) go to the throttle, the breaker, the
 *   limiter and the bulkhead: `Policy.apply(policy, { key })`, or `Policy.fn` to compute them
 *   from a function's arguments.
 * - `make` fails with one `Options.InvalidOptions` listing every problem of
 *   the combination (an attempt timeout longer than the total one, a hedge
 *   delay no shorter than the attempt timeout, invalid retry or hedge
 *   policies).
 *
 * **Gotchas**
 *
 * - For another order, pipe the combinators yourself: in a `pipe` the later
 *   combinator is the outer one. docs/patterns/policy.md shows what each
 *   position is for.
 * - The `fallback` part's `orElse` sees `unknown`. A policy is made before
 *   the effects it wraps, and their own errors reach the fallback beside the
 *   parts' `Errors<P>`, so at `make` nothing narrower is true. A refinement
 *   `when` would be, but `Parts` holds the handler apart from it: typing one
 *   by the other needs a generic part that `Parts` cannot hold without a
 *   cast. For a typed handler, pipe `Fallback.orElse` after `Policy.apply`:
 *   it sits where the part would (outermost) and sees `E | Errors<P>`, or
 *   what its refinement `when` keeps (see {@link FallbackPart}).
 *
 * **Example** (A policy around a call)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker, Policy, Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * let calls = 0
 * const flaky = Effect.suspend(() => (++calls < 3 ? Effect.fail("unavailable") : Effect.succeed(`answer ${calls}`)))
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 5 })
 *   const policy = yield* Policy.make({
 *     retry: Retry.constant({ delay: 0, maxAttempts: 3 }),
 *     circuitBreaker: breaker,
 *     attemptTimeout: "1 second"
 *   })
 *   return yield* flaky.pipe(Policy.apply(policy))
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => "answer 3"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Predicate from "effect/Predicate"
import * as Tracer from "effect/Tracer"
import * as AdaptiveThrottle from "./AdaptiveThrottle.ts"
import * as Bulkhead from "./Bulkhead.ts"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import * as Fallback from "./Fallback.ts"
import * as Hedge from "./Hedge.ts"
import { dualBy } from "./internal/dual.ts"
import { toMillisOrUndefined } from "./internal/duration.ts"
import * as Options_ from "./Options.ts"
import * as RateLimiter from "./RateLimiter.ts"
import * as Retry from "./Retry.ts"
import * as Telemetry from "./Telemetry.ts"
import * as Timeout from "./Timeout.ts"

/**
 * Runtime identifier of policies.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Policy"

/**
 * Type-level identifier of policies.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Policy"

// ---------------------------------------------------------------------------
// parts
// ---------------------------------------------------------------------------

/**
 * The parts, outermost first: the order `apply` wraps an effect in.
 *
 * @category models
 * @since 0.1.0
 */
export const order: ReadonlyArray<PartName> = [
  "fallback",
  "totalTimeout",
  "retry",
  "adaptiveThrottle",
  "circuitBreaker",
  "rateLimiter",
  "bulkhead",
  "hedge",
  "attemptTimeout"
]

/**
 * The name of a part.
 *
 * @category models
 * @since 0.1.0
 */
export type PartName =
  | "fallback"
  | "totalTimeout"
  | "retry"
  | "adaptiveThrottle"
  | "circuitBreaker"
  | "rateLimiter"
  | "bulkhead"
  | "hedge"
  | "attemptTimeout"

/**
 * The fallback part: an alternative run on the failures `when` accepts
 * (every typed failure by default), as `Fallback.orElse`; or the last good
 * value under the call's key, as `Fallback.orElseCached`.
 *
 * **Gotchas**
 *
 * - `orElse` is given the error as `unknown`: the policy is made before the
 *   effects it wraps, whose own errors reach it too. `when` narrows the
 *   applied effect's error type, not the handler's parameter. For a handler
 *   typed by what reaches it, pipe `Fallback.orElse` after `Policy.apply`
 *   instead of this part: same place, same behaviour.
 *
 * **Example** (A typed fallback around a policy)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker, Fallback, Policy } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
 *   const policy = yield* Policy.make({ circuitBreaker: breaker })
 *   const call = Effect.fail("down" as const).pipe(
 *     Policy.apply(policy),
 *     // `error` is a CircuitBreakerError: the refinement keeps it out of "down" | CircuitBreakerError
 *     Fallback.orElse((error) => Effect.succeed(`stale (${error.reason._tag})`), {
 *       when: CircuitBreaker.isCircuitBreakerError
 *     })
 *   )
 *   // Effect<string, "down">
 *   const first = yield* Effect.flip(call)
 *   const second = yield* call
 *   return [first, second]
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => ["down", "stale (CircuitOpen)"]
 * ```
 *
 * @see {@link Handled} for the errors the part removes from the applied effect
 * @category models
 * @since 0.1.0
 */
export type FallbackPart =
  | {
      /** The alternative, given the final error (after every retry). */
      readonly orElse: (error: unknown) => Effect.Effect<unknown, unknown, unknown>
      /** Which failures fall back; a refinement removes them from the error type (default: every one). */
      readonly when?: Predicate.Predicate<unknown> | undefined
      /** The `resilience.name` of the fallback's metrics and events. */
      readonly name?: string | undefined
    }
  | {
      /** `Fallback.orElseCached` under the call's key (else `key` here): the stored value answers a failure. */
      readonly cached: Omit<Fallback.CachedOptions<unknown>, "key"> & { readonly key?: string | undefined }
    }

/**
 * The retry part: a policy, or a policy with what to retry.
 *
 * @category models
 * @since 0.1.0
 */
export type RetryPart =
  | Retry.Policy
  | {
      readonly policy: Retry.Policy
      /** Retry this typed error (default: every typed error). */
      readonly while?: ((error: unknown) => boolean) | undefined
      /** Retry defects too (default: never). */
      readonly retryDefects?: boolean | undefined
      /** The retry budget's key (default: the policy's name). */
      readonly key?: string | undefined
    }

/**
 * The adaptive throttle part: a throttle, or a throttle with a default key
 * and how to classify outcomes. Rejections of the policy's own breaker,
 * limiter and bulkhead, and attempts cut short by its total timeout, are
 * ignored in addition to `isIgnored`.
 *
 * @category models
 * @since 0.1.0
 */
export type AdaptiveThrottlePart =
  | AdaptiveThrottle.AdaptiveThrottle
  | {
      readonly throttle: AdaptiveThrottle.AdaptiveThrottle
      /** The window when the call gives no key (default: the throttle's own). */
      readonly key?: string | undefined
      readonly isAccepted?: ((error: unknown) => boolean) | undefined
      readonly isAcceptedResult?: ((value: unknown) => boolean) | undefined
      readonly isIgnored?: ((error: unknown) => boolean) | undefined
    }

/**
 * The circuit breaker part: a breaker, or a breaker with how to classify
 * outcomes. Rejections of the policy's own limiter and bulkhead are ignored
 * in addition to `isIgnored`.
 *
 * @category models
 * @since 0.1.0
 */
export type CircuitBreakerPart =
  | CircuitBreaker.CircuitBreaker
  | {
      readonly breaker: CircuitBreaker.CircuitBreaker
      /** The circuit when the call gives no key (default: the breaker's name). */
      readonly key?: string | undefined
      readonly isFailure?: ((error: unknown) => boolean) | undefined
      readonly isIgnored?: ((error: unknown) => boolean) | undefined
      readonly isFailureResult?: ((value: unknown) => boolean) | undefined
      readonly retryAfter?: ((error: unknown) => Duration.Input | undefined) | undefined
    }

/**
 * The rate limiter part: a limiter, or a limiter with a default key and cost.
 *
 * @category models
 * @since 0.1.0
 */
export type RateLimiterPart =
  | RateLimiter.RateLimiter
  | {
      readonly limiter: RateLimiter.RateLimiter
      /** The key when the call gives none (default: the limiter's name). */
      readonly key?: string | undefined
      readonly cost?: number | undefined
    }

/**
 * The bulkhead part: a bulkhead, or a bulkhead with a default compartment,
 * priority and cost.
 *
 * @category models
 * @since 0.1.0
 */
export type BulkheadPart =
  | Bulkhead.Bulkhead
  | {
      readonly bulkhead: Bulkhead.Bulkhead
      readonly key?: string | undefined
      readonly priority?: number | undefined
      readonly cost?: number | undefined
    }

/**
 * The hedging part: a hedging policy, or one with its budget key.
 *
 * @category models
 * @since 0.1.0
 */
export type HedgePart = Hedge.Policy | { readonly policy: Hedge.Policy; readonly key?: string | undefined }

/**
 * What `make` takes: every part optional, in any order.
 *
 * @category models
 * @since 0.1.0
 */
export interface Parts {
  /** The policy's name (default `"default"`): for spans and error messages. */
  readonly name?: string | undefined
  readonly fallback?: FallbackPart | undefined
  /** A deadline around everything inside, retries and their waits included. */
  readonly totalTimeout?: Duration.Input | undefined
  readonly retry?: RetryPart | undefined
  /** Client-side adaptive throttling, just outside the breaker (every retry counts as a request). */
  readonly adaptiveThrottle?: AdaptiveThrottlePart | undefined
  readonly circuitBreaker?: CircuitBreakerPart | undefined
  readonly rateLimiter?: RateLimiterPart | undefined
  readonly bulkhead?: BulkheadPart | undefined
  readonly hedge?: HedgePart | undefined
  /** A timeout on each attempt (each hedged attempt), inside the breaker. */
  readonly attemptTimeout?: Duration.Input | undefined
}

/**
 * A validated policy: `apply` wraps effects in its parts.
 *
 * @category models
 * @since 0.1.0
 */
export interface Policy<P extends Parts = Parts> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** The parts as given. */
  readonly parts: P
  /** The names of the parts present, outermost first. */
  readonly layers: ReadonlyArray<PartName>
}

/**
 * Whether a value is a policy.
 *
 * @category guards
 * @since 0.1.0
 */
export const isPolicy = (u: unknown): u is Policy => typeof u === "object" && u !== null && TypeId in u

// ---------------------------------------------------------------------------
// types of an applied policy
// ---------------------------------------------------------------------------

/** `T` when part `K` of `P` may be present. */
type Has<P, K extends PropertyKey, T> = K extends keyof P ? ([P[K]] extends [undefined] ? never : T) : never

type FallbackOf<P> = "fallback" extends keyof P ? Exclude<P["fallback" & keyof P], undefined> : never

/**
 * The errors the parts of `P` add (before the fallback).
 *
 * @category models
 * @since 0.1.0
 */
export type Errors<P> =
  | Has<P, "totalTimeout", Timeout.TimeoutError>
  | Has<P, "attemptTimeout", Timeout.TimeoutError>
  | Has<P, "retry", Retry.RetryError>
  | Has<P, "adaptiveThrottle", AdaptiveThrottle.AdaptiveThrottleError>
  | Has<P, "circuitBreaker", CircuitBreaker.CircuitBreakerError>
  | Has<P, "rateLimiter", RateLimiter.RateLimiterError>
  | Has<P, "bulkhead", Bulkhead.BulkheadError>

/**
 * The errors the fallback of `P` handles: every one without `when`, what a
 * refinement matches, none for a plain predicate or a cached fallback.
 *
 * @category models
 * @since 0.1.0
 */
export type Handled<P> = [FallbackOf<P>] extends [never]
  ? never
  : FallbackOf<P> extends { readonly orElse: unknown }
    ? FallbackOf<P> extends { readonly when: (u: unknown) => u is infer H }
      ? H
      : FallbackOf<P> extends { readonly when: (u: never) => boolean }
        ? never
        : unknown
    : never

type FallbackEffect<P> = [FallbackOf<P>] extends [never]
  ? { readonly A: never; readonly E: never; readonly R: never }
  : FallbackOf<P> extends {
        readonly orElse: (error: never) => Effect.Effect<infer A2, infer E2, infer R2>
      }
    ? { readonly A: A2; readonly E: E2; readonly R: R2 }
    : FallbackOf<P> extends { readonly cached: unknown }
      ? { readonly A: never; readonly E: never; readonly R: Fallback.FallbackCache }
      : { readonly A: never; readonly E: never; readonly R: never }

/**
 * The effect `apply` returns for an effect `Effect<A, E, R>` and a policy of parts `P`.
 *
 * @category models
 * @since 0.1.0
 */
export type Applied<A, E, R, P> = Effect.Effect<
  A | FallbackEffect<P>["A"],
  Exclude<E | Errors<P>, Handled<P>> | FallbackEffect<P>["E"],
  R | FallbackEffect<P>["R"]
>

// ---------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------

const durationOf = (input: Duration.Input | undefined): number | undefined =>
  input === undefined ? undefined : toMillisOrUndefined(input)

const isRetryPolicy = (u: unknown): u is Retry.Policy => typeof u === "object" && u !== null && Retry.TypeId in u
const isHedgePolicy = (u: unknown): u is Hedge.Policy => typeof u === "object" && u !== null && Hedge.TypeId in u
const isBreaker = (u: unknown): u is CircuitBreaker.CircuitBreaker =>
  typeof u === "object" && u !== null && CircuitBreaker.TypeId in u
const isLimiter = (u: unknown): u is RateLimiter.RateLimiter =>
  typeof u === "object" && u !== null && RateLimiter.TypeId in u
const isBulkhead = (u: unknown): u is Bulkhead.Bulkhead => typeof u === "object" && u !== null && Bulkhead.TypeId in u
const isThrottle = (u: unknown): u is AdaptiveThrottle.AdaptiveThrottle =>
  typeof u === "object" && u !== null && AdaptiveThrottle.TypeId in u

const retryPolicyOf = (part: RetryPart): Retry.Policy => (isRetryPolicy(part) ? part : part.policy)
const hedgePolicyOf = (part: HedgePart): Hedge.Policy => (isHedgePolicy(part) ? part : part.policy)

/**
 * The issues of a combination of parts: each bad duration, an attempt
 * timeout longer than the total one, a hedge delay no shorter than the
 * attempt timeout, and the issues of invalid retry and hedging policies
 * (their paths prefixed with the part's name).
 */
const issuesOf = (parts: Parts): ReadonlyArray<Options_.Issue> => {
  const issues: Array<Options_.Issue> = []
  const issue = (path: string, value: unknown, message: string) =>
    issues.push(new Options_.Issue({ path, value: Options_.renderValue(value), message }))
  const positive = (path: "totalTimeout" | "attemptTimeout"): number | undefined => {
    const input = parts[path]
    if (input === undefined) return undefined
    const millis = durationOf(input)
    if (millis === undefined || millis <= 0) {
      issue(path, input, "Expected a duration greater than zero")
      return undefined
    }
    return millis
  }
  const total = positive("totalTimeout")
  const attempt = positive("attemptTimeout")
  if (total !== undefined && attempt !== undefined && attempt > total) {
    issue(
      "attemptTimeout",
      parts.attemptTimeout,
      `Expected at most totalTimeout (${Duration.format(Duration.millis(total))})`
    )
  }
  if (parts.retry !== undefined) {
    const invalid = retryPolicyOf(parts.retry).invalid
    for (const found of invalid?.issues ?? [])
      issues.push(new Options_.Issue({ ...found, path: `retry.${found.path}` }))
  }
  if (parts.hedge !== undefined) {
    const policy = hedgePolicyOf(parts.hedge)
    if (policy.invalid !== undefined) {
      for (const found of policy.invalid.issues)
        issues.push(new Options_.Issue({ ...found, path: `hedge.${found.path}` }))
    } else if (attempt !== undefined && policy.currentDelayMillis() >= attempt) {
      issues.push(
        new Options_.Issue({
          path: "hedge.delay",
          value: Duration.format(Duration.millis(policy.currentDelayMillis())),
          message: `Expected less than attemptTimeout (${Duration.format(Duration.millis(attempt))}): every attempt would time out before its hedge starts`
        })
      )
    }
  }
  if (parts.bulkhead !== undefined && !isBulkhead(parts.bulkhead)) {
    const { cost, priority } = parts.bulkhead
    if (cost !== undefined && !(Number.isInteger(cost) && cost >= 1)) {
      issue("bulkhead.cost", cost, "Expected an integer of at least 1")
    }
    if (priority !== undefined && !Number.isFinite(priority))
      issue("bulkhead.priority", priority, "Expected a finite number")
  }
  if (parts.rateLimiter !== undefined && !isLimiter(parts.rateLimiter)) {
    const { cost } = parts.rateLimiter
    if (cost !== undefined && !(Number.isFinite(cost) && cost >= 0)) {
      issue("rateLimiter.cost", cost, "Expected a non-negative number")
    }
  }
  return issues
}

/**
 * Makes a policy from its parts, given in any order. Fails with one
 * `Options.InvalidOptions` listing every problem of the combination.
 *
 * **Example** (Every problem at once)
 *
 * ```ts import.meta.vitest
 * import { Policy, Retry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     Policy.make({
 *       totalTimeout: "1 second",
 *       attemptTimeout: "2 seconds",
 *       retry: Retry.exponential({ maxAttempts: 0 })
 *     })
 *   )
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["attemptTimeout", "retry.maxAttempts"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <P extends Parts>(parts: P): Effect.Effect<Policy<P>, Options_.InvalidOptions> =>
  Effect.suspend(() => {
    const issues = issuesOf(parts)
    if (issues.length > 0) return Effect.fail(new Options_.InvalidOptions({ pattern: "Policy", issues }))
    const layers = order.filter((name) => parts[name] !== undefined)
    return Effect.succeed({ [TypeId]: TypeId, name: parts.name ?? "default", parts, layers })
  })

// ---------------------------------------------------------------------------
// apply
// ---------------------------------------------------------------------------

/**
 * Per-call options of `apply`: the key of this call (a tenant, a host, an
 * id) for the breaker's circuit, the limiter and the bulkhead's compartment,
 * and per-part overrides.
 *
 * @category models
 * @since 0.1.0
 */
export interface CallOptions {
  /** The key of the throttle, the breaker, the limiter, the bulkhead and a cached fallback, unless overridden below. */
  readonly key?: string | undefined
  readonly adaptiveThrottle?: { readonly key?: string | undefined } | undefined
  readonly circuitBreaker?: { readonly key?: string | undefined } | undefined
  readonly rateLimiter?: { readonly key?: string | undefined; readonly cost?: number | undefined } | undefined
  readonly bulkhead?:
    | {
        readonly key?: string | undefined
        readonly priority?: number | undefined
        readonly cost?: number | undefined
      }
    | undefined
  /** The key of a cached fallback's value (prefix it per call site: `quote:EURUSD`). */
  readonly fallback?: { readonly key?: string | undefined } | undefined
}

type Any = Effect.Effect<unknown, unknown, unknown>

const ignoredByPolicy = (parts: Parts): ((error: unknown) => boolean) | undefined => {
  const limiter = parts.rateLimiter !== undefined
  const bulkhead = parts.bulkhead !== undefined
  const deadline = parts.totalTimeout !== undefined
  if (!limiter && !bulkhead && !deadline) return undefined
  return (error) =>
    (limiter && RateLimiter.isRateLimiterError(error)) ||
    (bulkhead && Bulkhead.isBulkheadError(error)) ||
    (deadline && Timeout.isTimeoutError(error) && error.reason.kind === "deadline")
}

/** What the throttle ignores: the local rejections inside it, and attempts cut short by the total timeout. */
const throttleIgnoredByPolicy = (parts: Parts): ((error: unknown) => boolean) | undefined =>
  parts.circuitBreaker === undefined
    ? ignoredByPolicy(parts)
    : either(CircuitBreaker.isCircuitBreakerError, ignoredByPolicy(parts))

/** Ignored when either predicate ignores it (the first asked first); undefined when neither is given. */
const either = (
  first: ((error: unknown) => boolean) | undefined,
  second: ((error: unknown) => boolean) | undefined
): ((error: unknown) => boolean) | undefined =>
  first === undefined ? second : second === undefined ? first : (error) => first(error) || second(error)

/**
 * What `wrap` needs of a policy, worked out once (the first time it is
 * applied): each part's options with the part's own key, and the predicates
 * the policy adds, so a call without options of its own allocates no option
 * objects and no closures.
 */
interface Plan {
  readonly attemptTimeout: Duration.Input | undefined
  readonly hedge: { readonly policy: Hedge.Policy; readonly options: Hedge.HedgeOptions | undefined } | undefined
  readonly bulkhead:
    | { readonly bulkhead: Bulkhead.Bulkhead; readonly options: Bulkhead.IsolateOptions | undefined }
    | undefined
  readonly rateLimiter:
    | {
        readonly limiter: RateLimiter.RateLimiter
        readonly options: RateLimiter.LimitOptions & { readonly key: string }
      }
    | undefined
  readonly circuitBreaker:
    | {
        readonly breaker: CircuitBreaker.CircuitBreaker
        readonly options: CircuitBreaker.ProtectOptions<unknown, unknown> | undefined
      }
    | undefined
  readonly adaptiveThrottle:
    | {
        readonly throttle: AdaptiveThrottle.AdaptiveThrottle
        readonly options: AdaptiveThrottle.ThrottleOptions<unknown, unknown> | undefined
      }
    | undefined
  readonly retry:
    | { readonly policy: Retry.Policy; readonly options: Retry.RetryOptions<unknown, unknown> | undefined }
    | undefined
  readonly totalTimeout: Duration.Input | undefined
}

const plans = new WeakMap<Policy, Plan>()

/** The options, or `undefined` when every field is: the parts take their fast paths without options. */
const orUndefined = <O extends object>(options: O): O | undefined =>
  Object.values(options).every((value) => value === undefined) ? undefined : options

const planOf = (policy: Policy): Plan => {
  const known = plans.get(policy)
  if (known !== undefined) return known
  const parts = policy.parts
  const hedge = parts.hedge
  const bulkhead = parts.bulkhead
  const limiter = parts.rateLimiter
  const breaker = parts.circuitBreaker
  const throttle = parts.adaptiveThrottle
  const retry = parts.retry
  const plan: Plan = {
    attemptTimeout: parts.attemptTimeout,
    hedge:
      hedge === undefined
        ? undefined
        : isHedgePolicy(hedge)
          ? { policy: hedge, options: undefined }
          : { policy: hedge.policy, options: { key: hedge.key } },
    bulkhead:
      bulkhead === undefined
        ? undefined
        : isBulkhead(bulkhead)
          ? { bulkhead, options: undefined }
          : {
              bulkhead: bulkhead.bulkhead,
              options: orUndefined({ key: bulkhead.key, priority: bulkhead.priority, cost: bulkhead.cost })
            },
    rateLimiter:
      limiter === undefined
        ? undefined
        : isLimiter(limiter)
          ? { limiter, options: { key: limiter.name, cost: undefined } }
          : { limiter: limiter.limiter, options: { key: limiter.key ?? limiter.limiter.name, cost: limiter.cost } },
    circuitBreaker:
      breaker === undefined
        ? undefined
        : isBreaker(breaker)
          ? { breaker, options: orUndefined({ isIgnored: ignoredByPolicy(parts) }) }
          : {
              breaker: breaker.breaker,
              options: orUndefined({
                key: breaker.key,
                isFailure: breaker.isFailure,
                isFailureResult: breaker.isFailureResult,
                retryAfter: breaker.retryAfter,
                isIgnored: either(ignoredByPolicy(parts), breaker.isIgnored)
              })
            },
    adaptiveThrottle:
      throttle === undefined
        ? undefined
        : isThrottle(throttle)
          ? { throttle, options: orUndefined({ isIgnored: throttleIgnoredByPolicy(parts) }) }
          : {
              throttle: throttle.throttle,
              options: orUndefined({
                key: throttle.key,
                isAccepted: throttle.isAccepted,
                isAcceptedResult: throttle.isAcceptedResult,
                isIgnored: either(throttleIgnoredByPolicy(parts), throttle.isIgnored)
              })
            },
    retry:
      retry === undefined
        ? undefined
        : isRetryPolicy(retry)
          ? { policy: retry, options: undefined }
          : { policy: retry.policy, options: { while: retry.while, retryDefects: retry.retryDefects, key: retry.key } },
    totalTimeout: parts.totalTimeout
  }
  plans.set(policy, plan)
  return plan
}

const wrap = (self: Any, policy: Policy, call: CallOptions | undefined): Any => {
  const parts = policy.parts
  const plan = planOf(policy)
  let effect = self
  if (plan.attemptTimeout !== undefined) effect = Timeout.attempt(effect, plan.attemptTimeout)
  if (plan.hedge !== undefined) effect = Hedge.hedge(effect, plan.hedge.policy, plan.hedge.options)
  const bulkhead = plan.bulkhead
  if (bulkhead !== undefined) {
    const own = call?.bulkhead
    const options = bulkhead.options
    effect = Bulkhead.isolate(
      effect,
      bulkhead.bulkhead,
      call === undefined
        ? options
        : {
            key: own?.key ?? call.key ?? options?.key,
            priority: own?.priority ?? options?.priority,
            cost: own?.cost ?? options?.cost
          }
    )
  }
  const limiter = plan.rateLimiter
  if (limiter !== undefined) {
    const own = call?.rateLimiter
    const options = limiter.options
    effect = RateLimiter.limit(
      effect,
      limiter.limiter,
      call === undefined ? options : { key: own?.key ?? call.key ?? options.key, cost: own?.cost ?? options.cost }
    )
  }
  const breaker = plan.circuitBreaker
  if (breaker !== undefined) {
    const key = call === undefined ? undefined : (call.circuitBreaker?.key ?? call.key)
    effect = CircuitBreaker.protect(
      effect,
      breaker.breaker,
      key === undefined ? breaker.options : { ...breaker.options, key }
    )
  }
  const throttle = plan.adaptiveThrottle
  if (throttle !== undefined) {
    const key = call === undefined ? undefined : (call.adaptiveThrottle?.key ?? call.key)
    effect = AdaptiveThrottle.throttle(
      effect,
      throttle.throttle,
      key === undefined ? throttle.options : { ...throttle.options, key }
    )
  }
  if (plan.retry !== undefined) effect = Retry.retry(effect, plan.retry.policy, plan.retry.options)
  if (plan.totalTimeout !== undefined) effect = Timeout.deadline(effect, plan.totalTimeout)
  if (parts.fallback !== undefined) {
    const fallback = parts.fallback
    if ("orElse" in fallback) {
      effect =
        fallback.when === undefined
          ? Fallback.orElse(effect, fallback.orElse, { name: fallback.name })
          : Fallback.orElse(effect, fallback.orElse, { when: fallback.when, name: fallback.name })
    } else {
      const key = call?.fallback?.key ?? call?.key ?? fallback.cached.key
      if (key === undefined) {
        return Effect.die(
          new Options_.InvalidOptions({
            pattern: "Policy",
            issues: [
              new Options_.Issue({
                path: "fallback.cached.key",
                value: "undefined",
                message: "Expected a key: in the cached fallback or the call's options"
              })
            ]
          })
        )
      }
      effect = Fallback.orElseCached(effect, { ...fallback.cached, key })
    }
  }
  return withSpanEvent(effect, policy)
}

/**
 * The name of the span event `apply` adds to the caller's span (when there is
 * one): its attributes are the policy's name and its layers, outermost first.
 *
 * @category telemetry
 * @since 0.1.0
 */
export const spanEventName = Telemetry.policyEvents["Policy.apply"].name

/** Adds the `Policy.apply` event to the caller's span, if any; nothing else when there is none. */
const withSpanEvent = (effect: Any, policy: Policy): Any =>
  Effect.withFiber((fiber) => {
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span !== undefined && span._tag === "Span") {
      span.event(spanEventName, fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), {
        [Telemetry.attributes.name]: policy.name,
        [Telemetry.attributes.layers]: policy.layers.join(" > ")
      })
    }
    return effect
  })

/**
 * Wraps an effect in a policy's parts, in the one order (outermost first:
 * fallback, total timeout, retry, adaptive throttle, circuit breaker, rate
 * limit, bulkhead, hedging, attempt timeout). The result fails with the errors of the parts
 * present, minus those the fallback handles.
 *
 * **Example** (A timeout inside the breaker is a breaker failure)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker, Policy } from "@effect-resilience/core"
 * import { Effect, Fiber } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
 *   const policy = yield* Policy.make({ circuitBreaker: breaker, attemptTimeout: "100 millis" })
 *   const fiber = yield* Effect.never.pipe(Policy.apply(policy, { key: "quotes" }), Effect.flip, Effect.forkChild)
 *   yield* TestClock.adjust("100 millis")
 *   const error = yield* Fiber.join(fiber)
 *   const state = yield* breaker.state("quotes")
 *   return [error.reason._tag, state._tag]
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()), Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => ["TimeoutExceeded", "Open"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const apply: {
  /**
   * Wraps an effect in a policy (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  <P extends Parts>(
    policy: Policy<P>,
    options?: CallOptions | undefined
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Applied<A, E, R, P>
  /**
   * Wraps an effect in a policy (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, P extends Parts>(
    self: Effect.Effect<A, E, R>,
    policy: Policy<P>,
    options?: CallOptions | undefined
  ): Applied<A, E, R, P>
} = dualBy(
  Effect.isEffect,
  (self: Any, policy: Policy, options?: CallOptions | undefined): Any => wrap(self, policy, options)
)

/**
 * Wraps a function's effects in a policy, with per-call options computed
 * from its arguments (the key of a tenant, a host, an id).
 *
 * **Example** (Keys from the arguments)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker, Policy } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
 *   const policy = yield* Policy.make({ circuitBreaker: breaker })
 *   const fetchUser = Policy.fn(policy, (tenant: string, _id: number) => ({ key: tenant }))((tenant, id) =>
 *     tenant === "acme" ? Effect.fail("acme down") : Effect.succeed(`${tenant}/${id}`)
 *   )
 *   yield* Effect.flip(fetchUser("acme", 1))
 *   const other = yield* fetchUser("globex", 2)
 *   return [(yield* breaker.state("acme"))._tag, (yield* breaker.state("globex"))._tag, other]
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => ["Open", "Closed", "globex/2"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const fn =
  <P extends Parts, Args extends ReadonlyArray<unknown>>(policy: Policy<P>, options: (...args: Args) => CallOptions) =>
  <A, E, R>(f: (...args: Args) => Effect.Effect<A, E, R>) =>
  (...args: Args): Applied<A, E, R, P> =>
    apply(
      Effect.suspend(() => f(...args)),
      policy,
      options(...args)
    )
