/**
 * A registry of named policies defined as data, reloaded live: Resilience4j's
 * registries with named configs and entry events, Polly v8's
 * `ResiliencePipelineRegistry` with dynamic reload.
 *
 * A registry holds policies by name, each described by plain data — the
 * options of each part (`retry`, `circuitBreaker`, `rateLimiter`, `bulkhead`,
 * `hedge`, `totalTimeout`, `attemptTimeout`), the same options each module's
 * `make` and `layerConfig` take — and builds the instances behind them.
 * `Registry.apply("payments", { key })` looks the policy up **when the call
 * runs** and applies it with `Policy.apply`, so a reload applies to the next
 * call.
 *
 * **Details**
 *
 * - `defaults` are the parts every policy starts from: a policy's part is
 *   merged over the default part field by field (the policy's fields win).
 * - Every entry is validated: one `Options.InvalidOptions` lists every bad
 *   field with its path (`policies.payments.circuitBreaker.failureRateThreshold`,
 *   or `defaults.…` for a value that came from the defaults).
 * - A reload (`reload(config)`, the `source` stream, or `layerConfig`'s
 *   `reloadEvery`) is all-or-nothing and serialised. An unchanged policy keeps
 *   its instances and their state; a changed part is rebuilt, a changed
 *   breaker carrying its circuits over (an open circuit stays open); a
 *   removed policy is dropped. Instances no longer used are released (their
 *   scopes closed) once the calls in flight on them have finished.
 * - `events` reports `PolicyAdded`, `PolicyReplaced` (with the parts that
 *   changed), `PolicyRemoved` and `ReloadFailed`; `version` counts the
 *   configurations applied; metrics are named in `Telemetry.registry`.
 * - Breakers and limiters use the `CircuitBreakerStore` and
 *   `RateLimiterStore` in the context when there is one (Redis, say), and an
 *   in-memory store otherwise.
 *
 * **Gotchas**
 *
 * - Data only: predicates (`isFailure`, a retry's `while`), a `Schedule` open
 *   duration, limiter tiers and fallbacks are code — build those policies
 *   with `Policy.make`.
 * - A policy's applied effect may fail with any part's error (the registry
 *   cannot know at compile time which parts a name will have), plus
 *   `RegistryError` for an unknown name.
 *
 * **Example** (Policies as data, one reloaded)
 *
 * ```ts import.meta.vitest
 * import { Registry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const registry = yield* Registry.make({
 *     policies: {
 *       payments: { retry: { kind: "constant", base: 0, maxAttempts: 3 }, circuitBreaker: { consecutiveFailures: 5 } }
 *     }
 *   })
 *   let calls = 0
 *   const flaky = Effect.suspend(() => (++calls < 3 ? Effect.fail("unavailable") : Effect.succeed(calls)))
 *   const first = yield* flaky.pipe(registry.apply("payments"))
 *   yield* registry.reload({ policies: { payments: { retry: { kind: "constant", base: 0, maxAttempts: 1 } } } })
 *   calls = 0
 *   const second = yield* Effect.flip(flaky.pipe(registry.apply("payments")))
 *   return [first, second, yield* registry.version]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [3, "unavailable", 2]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as Struct from "effect/Struct"
import * as Bulkhead from "./Bulkhead.ts"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import * as Hedge from "./Hedge.ts"
import { dualBy } from "./internal/dual.ts"
import * as Hub from "./internal/events.ts"
import { construct } from "./internal/fastError.ts"
import * as Frame from "./internal/frame.ts"
import * as Metrics from "./internal/metrics.ts"
import * as engine from "./internal/registry.ts"
import * as Options_ from "./Options.ts"
import * as Policy from "./Policy.ts"
import * as RateLimiter from "./RateLimiter.ts"
import * as Retry from "./Retry.ts"
import * as Telemetry from "./Telemetry.ts"
import type * as Timeout from "./Timeout.ts"

/**
 * Runtime identifier of registries.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Registry"

/**
 * Type-level identifier of registries.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Registry"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * The name of a part a registry builds from data, outermost first.
 *
 * @category models
 * @since 0.1.0
 */
export type PartName = engine.PartName

/**
 * The parts of a registry's policies: instances built from the data.
 *
 * @category models
 * @since 0.1.0
 */
export interface Parts {
  readonly name: string
  readonly totalTimeout?: Duration.Duration | undefined
  readonly retry?: Retry.Policy | undefined
  readonly circuitBreaker?: CircuitBreaker.CircuitBreaker | undefined
  readonly rateLimiter?: RateLimiter.RateLimiter | undefined
  readonly bulkhead?: Bulkhead.Bulkhead | undefined
  readonly hedge?: Hedge.Policy | undefined
  readonly attemptTimeout?: Duration.Duration | undefined
}

/**
 * The errors a registry's policy may add to an effect: every part's.
 *
 * @category models
 * @since 0.1.0
 */
export type Errors =
  | Timeout.TimeoutError
  | Retry.RetryError
  | CircuitBreaker.CircuitBreakerError
  | RateLimiter.RateLimiterError
  | Bulkhead.BulkheadError

/**
 * A registry of named policies.
 *
 * @category models
 * @since 0.1.0
 */
export interface Registry {
  readonly [TypeId]: TypeId
  /** The registry's name: the `resilience.name` of its metrics. */
  readonly name: string
  /** The current policy of `name`, or `RegistryError` (`UnknownPolicy`). */
  readonly get: (name: string) => Effect.Effect<Policy.Policy<Parts>, RegistryError>
  /** Wraps an effect in the policy `name` has when the effect runs (data-last); see {@link apply}. */
  readonly apply: (
    name: string,
    options?: Policy.CallOptions | undefined
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Errors | RegistryError, R>
  /**
   * Applies a new configuration, all or nothing: on invalid data the old one
   * keeps serving, `ReloadFailed` is emitted and the effect fails.
   */
  readonly reload: (input: Input) => Effect.Effect<ReloadResult, Options_.InvalidOptions>
  /** The names served now, in configuration order. */
  readonly names: Effect.Effect<ReadonlyArray<string>>
  /** The configuration served now, as given. */
  readonly snapshot: Effect.Effect<Input>
  /** Configurations applied so far: 1 after `make`, one more per successful reload. */
  readonly version: Effect.Effect<number>
  /** The last reload refused (as its `ReloadFailed` event reported it), kept until the next one; undefined before any. */
  readonly lastFailure: Effect.Effect<ReloadFailure | undefined>
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the registry a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const Registry: Context.Service<Registry, Registry> = Context.Service<Registry>(TypeId)

/**
 * What a successful reload did.
 *
 * @category models
 * @since 0.1.0
 */
export interface ReloadResult {
  /** The version now served. */
  readonly version: number
  readonly added: ReadonlyArray<string>
  readonly replaced: ReadonlyArray<{ readonly name: string; readonly parts: ReadonlyArray<PartName> }>
  readonly unchanged: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
}

/**
 * A reload the registry refused: the configuration of `version` kept serving.
 *
 * @category models
 * @since 0.1.0
 */
export interface ReloadFailure {
  /** The version served when the reload was refused (and still served after it). */
  readonly version: number
  /** Clock milliseconds of the refusal. */
  readonly failedAt: number
  /** Every bad field of the refused configuration. */
  readonly error: Options_.InvalidOptions
}

/**
 * The registry's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.PolicyAdded | Event.PolicyReplaced | Event.PolicyRemoved | Event.ReloadFailed

/**
 * The members of {@link Event}.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * A policy was added (by `make` or a reload).
   *
   * @category models
   * @since 0.1.0
   */
  export interface PolicyAdded {
    readonly _tag: "PolicyAdded"
    readonly registry: string
    readonly policy: string
    /** The version that added it. */
    readonly version: number
  }
  /**
   * A policy's data changed: the parts listed were rebuilt, the others kept.
   *
   * @category models
   * @since 0.1.0
   */
  export interface PolicyReplaced {
    readonly _tag: "PolicyReplaced"
    readonly registry: string
    readonly policy: string
    readonly parts: ReadonlyArray<PartName>
    readonly version: number
  }
  /**
   * A policy was dropped by a reload.
   *
   * @category models
   * @since 0.1.0
   */
  export interface PolicyRemoved {
    readonly _tag: "PolicyRemoved"
    readonly registry: string
    readonly policy: string
    readonly version: number
  }
  /**
   * A reload was refused: the configuration of `version` keeps serving.
   *
   * @category models
   * @since 0.1.0
   */
  export interface ReloadFailed {
    readonly _tag: "ReloadFailed"
    readonly registry: string
    readonly version: number
    readonly error: Options_.InvalidOptions
  }
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

/**
 * One policy as data: the options of each part, as the module's own `Options`
 * schema has them (fields the defaults provide may be left out, `limits` and
 * a hedge's `delay` included).
 *
 * @category options
 * @since 0.1.0
 */
export const PolicyOptions = Schema.Struct({
  totalTimeout: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "A deadline around the whole call, retries and their waits included (`Timeout.deadline`)."
    })
  ),
  retry: Schema.optionalKey(
    Retry.Options.annotate({
      identifier: "Retry.Options",
      description: "The retry part (`Retry.make`); its name defaults to the policy's."
    })
  ),
  circuitBreaker: Schema.optionalKey(
    CircuitBreaker.Options.annotate({
      identifier: "CircuitBreaker.Options",
      description: "The breaker part (`CircuitBreaker.make`); its name defaults to the policy's."
    })
  ),
  rateLimiter: Schema.optionalKey(
    RateLimiter.Options.mapFields(Struct.mapPick(["limits"], Schema.optionalKey)).annotate({
      identifier: "RateLimiter.Options",
      description: "The limiter part (`RateLimiter.make`, without tiers); its name defaults to the policy's."
    })
  ),
  bulkhead: Schema.optionalKey(
    Bulkhead.Options.annotate({
      identifier: "Bulkhead.Options",
      description: "The bulkhead part (`Bulkhead.make`); its name defaults to the policy's."
    })
  ),
  hedge: Schema.optionalKey(
    Hedge.Options.mapFields(Struct.mapPick(["delay"], Schema.optionalKey)).annotate({
      identifier: "Hedge.Options",
      description: "The hedging part (`Hedge.make`, without a budget); its name defaults to the policy's."
    })
  ),
  attemptTimeout: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "A timeout on each attempt, inside the breaker (`Timeout.attempt`)."
    })
  )
})

/**
 * The registry's configuration as data: what `layerConfig` decodes (from a
 * JSON string or a nested config structure).
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  policies: Schema.Record(Schema.String, PolicyOptions).annotate({
    description: "The policies by name."
  }),
  defaults: Schema.optionalKey(
    PolicyOptions.annotate({
      description: "The parts every policy starts from: a policy's part is merged over them field by field."
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

type Loose<T> = { readonly [K in keyof T]?: T[K] | undefined }

/**
 * A breaker part as data: `CircuitBreaker.Input` without its code
 * (predicates, a `Schedule`, a snapshot).
 *
 * @category options
 * @since 0.1.0
 */
export type CircuitBreakerInput = Omit<
  CircuitBreaker.Input,
  "isFailure" | "isIgnored" | "isFailureResult" | "initialSnapshot" | "openDuration"
> & { readonly openDuration?: Duration.Input | undefined }

/**
 * A limiter part as data: `RateLimiter.Input` without tiers (`limits` may
 * come from the defaults).
 *
 * @category options
 * @since 0.1.0
 */
export type RateLimiterInput = Loose<Omit<RateLimiter.Input, "tiers" | "tierOf">>

/**
 * A hedging part as data: `Hedge.Input` without a budget (`delay` may come
 * from the defaults).
 *
 * @category options
 * @since 0.1.0
 */
export type HedgeInput = Loose<Omit<Hedge.Input, "budget">>

/**
 * One policy as `make` and `reload` take it: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export interface PolicyInput {
  readonly totalTimeout?: Duration.Input | undefined
  readonly retry?: Retry.Input | undefined
  readonly circuitBreaker?: CircuitBreakerInput | undefined
  readonly rateLimiter?: RateLimiterInput | undefined
  readonly bulkhead?: Bulkhead.Input | undefined
  readonly hedge?: HedgeInput | undefined
  readonly attemptTimeout?: Duration.Input | undefined
}

/**
 * A configuration: the policies by name, and the parts they start from.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly policies: Readonly<Record<string, PolicyInput>>
  readonly defaults?: PolicyInput | undefined
}

/**
 * What `make` takes: a configuration, the registry's name, and a stream of
 * configurations to apply as they arrive.
 *
 * @category options
 * @since 0.1.0
 */
export interface MakeOptions extends Input {
  /** The `resilience.name` of the registry's metrics (default `"default"`). */
  readonly name?: string | undefined
  /**
   * Configurations applied in order as they arrive (a file watcher, a config
   * service). An invalid one is reported (`ReloadFailed`) and skipped; the
   * stream goes on. It runs as long as the registry's scope.
   */
  readonly source?: Stream.Stream<Input> | undefined
}

/**
 * The Defaults table of one policy's parts, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(PolicyOptions)

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/**
 * No policy has that name: the call did not run.
 *
 * @category errors
 * @since 0.1.0
 */
export class UnknownPolicy extends Schema.TaggedError<UnknownPolicy>("@effect-resilience/core/Registry/UnknownPolicy")(
  "UnknownPolicy",
  {
    /** The name asked for. */
    name: Schema.String,
    /** The names served when it was asked for. */
    known: Schema.Array(Schema.String)
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Unknown policy ${JSON.stringify(this.name)} (known: ${this.known.length === 0 ? "none" : this.known.join(", ")})`
  }
}

/**
 * Runtime identifier of `RegistryError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/Registry/RegistryError"

/**
 * Type-level identifier of `RegistryError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/Registry/RegistryError"

/**
 * The one error the registry adds to an applied effect; its reason is
 * `UnknownPolicy`. Built without a stack trace.
 *
 * @category errors
 * @since 0.1.0
 */
export class RegistryError extends Schema.TaggedError<RegistryError>(ErrorTypeId)("RegistryError", {
  reason: UnknownPolicy
}) {
  /**
   * Brand for the `isRegistryError` guard.
   *
   * @since 0.1.0
   */
  readonly [ErrorTypeId]: ErrorTypeId = ErrorTypeId

  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.reason.message
  }
}

/**
 * Whether a value is a `RegistryError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isRegistryError = (u: unknown): u is RegistryError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

const unknownPolicy = (name: string, known: ReadonlyArray<string>): RegistryError =>
  construct(RegistryError, {
    _tag: "RegistryError",
    [ErrorTypeId]: ErrorTypeId,
    reason: construct(UnknownPolicy, { _tag: "UnknownPolicy", name, known })
  })

// ---------------------------------------------------------------------------
// validation
// ---------------------------------------------------------------------------

/** A policy validated: its merged input and its parts as plain data. */
interface Validated {
  readonly name: string
  readonly input: PolicyInput
  readonly data: engine.PolicyData
}

const isDataObject = (u: unknown): u is Readonly<Record<string, unknown>> =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !Duration.isDuration(u)

/** Whether data that should be an object is one (JSON may hold anything); keeps the value's static type. */
const isObjectLike = (u: unknown): boolean => isDataObject(u)

/**
 * Plain data for comparison: durations as milliseconds, objects and arrays
 * walked, anything else (a function) by its text.
 */
const toData = (u: unknown): engine.Data => {
  if (u === undefined || u === null || typeof u === "boolean" || typeof u === "number" || typeof u === "string")
    return u
  if (Duration.isDuration(u)) return Duration.toMillis(u)
  if (Array.isArray(u)) return u.map(toData)
  if (isDataObject(u)) {
    const out: Record<string, engine.Data> = {}
    for (const [key, value] of Object.entries(u)) if (value !== undefined) out[key] = toData(value)
    return out
  }
  return String(u)
}

/** A duration input as milliseconds, or the input itself when it is none (it has an issue of its own). */
const millisData = (input: Duration.Input): engine.Data => {
  const parsed = Duration.fromInput(input)
  return Option.isSome(parsed) ? Duration.toMillis(parsed.value) : toData(input)
}

const hedgeData = (input: HedgeInput, name: string): engine.Data => {
  const delay = input.delay
  if (delay === undefined) return undefined
  const delayData: engine.Data =
    typeof delay === "object" && delay !== null && "percentile" in delay
      ? {
          percentile: toData(delay.percentile),
          initial: millisData(delay.initial),
          minSamples: toData(delay.minSamples ?? 20),
          minDelay: millisData(delay.minDelay ?? 1)
        }
      : millisData(delay)
  return { name: input.name ?? name, delay: delayData, maxHedges: input.maxHedges ?? 1 }
}

/**
 * Validates one policy (merged over the defaults): every bad field as an
 * issue whose path names the policy, or `defaults` when the value came from
 * there.
 */
const validatePolicy = (
  name: string,
  own: PolicyInput,
  defaults: PolicyInput | undefined
): Effect.Effect<Validated, Options_.InvalidOptions> =>
  Effect.suspend(() => {
    const input = engine.mergePolicy<PolicyInput>(defaults, own)
    const issues: Array<Options_.Issue> = []
    const data: { -readonly [K in PartName]?: engine.Data } = {}
    /** Where a field of a part came from: the policy, or the defaults it left it to. */
    const origin = (part: PartName, field: string | undefined): string => {
      const mine: unknown = own[part]
      if (mine === undefined) return "defaults"
      if (field === undefined || !isDataObject(mine) || !isDataObject(defaults?.[part])) return `policies.${name}`
      return mine[field] === undefined ? "defaults" : `policies.${name}`
    }
    const add = (part: PartName, found: ReadonlyArray<Options_.Issue>, prefixed = true) => {
      for (const issue of found) {
        const relative = prefixed ? (issue.path === "" ? part : `${part}.${issue.path}`) : issue.path
        const [, field] = relative.split(".")
        issues.push(new Options_.Issue({ ...issue, path: `${origin(part, field)}.${relative}` }))
      }
    }
    const notAnObject = (part: PartName, value: unknown) =>
      add(part, [new Options_.Issue({ path: "", value: Options_.renderValue(value), message: "Expected an object" })])
    const check = <A>(part: PartName, validated: Effect.Effect<A, Options_.InvalidOptions>, onValid: (a: A) => void) =>
      Effect.map(Effect.result(validated), (result) => {
        if (Result.isSuccess(result)) onValid(result.success)
        else add(part, result.failure.issues)
      })
    const checks: Array<Effect.Effect<void>> = []
    if (input.retry !== undefined) {
      const retry = input.retry
      if (!isObjectLike(retry)) notAnObject("retry", retry)
      else
        checks.push(
          check("retry", Retry.validateOptions({ ...retry, name: retry.name ?? name }), (o) => {
            data.retry = toData(o)
          })
        )
    }
    if (input.circuitBreaker !== undefined) {
      const breaker = input.circuitBreaker
      if (!isObjectLike(breaker)) notAnObject("circuitBreaker", breaker)
      else
        checks.push(
          check("circuitBreaker", CircuitBreaker.validateOptions({ ...breaker, name: breaker.name ?? name }), (o) => {
            data.circuitBreaker = toData(o)
          })
        )
    }
    if (input.rateLimiter !== undefined) {
      const limiter = input.rateLimiter
      const limits = isObjectLike(limiter) ? limiter.limits : undefined
      if (!isObjectLike(limiter)) notAnObject("rateLimiter", limiter)
      else if (limits === undefined || !Array.isArray(limits) || limits.length === 0) {
        add("rateLimiter", [
          new Options_.Issue({
            path: "limits",
            value: Options_.renderValue(limits),
            message: "Expected a non-empty array of limits"
          })
        ])
      } else {
        const bad = limits.flatMap((limit: unknown, i) =>
          isObjectLike(limit)
            ? []
            : [
                new Options_.Issue({
                  path: `limits.${i}`,
                  value: Options_.renderValue(limit),
                  message: "Expected an object"
                })
              ]
        )
        const [first, ...rest] = limits
        if (bad.length > 0 || first === undefined) add("rateLimiter", bad)
        else
          checks.push(
            check(
              "rateLimiter",
              RateLimiter.validateOptions({ ...limiter, limits: [first, ...rest], name: limiter.name ?? name }),
              (o) => {
                data.rateLimiter = toData(o)
              }
            )
          )
      }
    }
    if (input.bulkhead !== undefined) {
      const bulkhead = input.bulkhead
      if (!isObjectLike(bulkhead)) notAnObject("bulkhead", bulkhead)
      else
        checks.push(
          check("bulkhead", Bulkhead.validateOptions({ ...bulkhead, name: bulkhead.name ?? name }), (o) => {
            data.bulkhead = toData(o)
          })
        )
    }
    // the timeouts and the hedge: their own checks and how they fit together, as Policy.make sees them
    let hedge: Hedge.Policy | undefined
    if (input.hedge !== undefined) {
      const part = input.hedge
      if (!isObjectLike(part)) notAnObject("hedge", part)
      else if (part.delay === undefined) {
        add("hedge", [
          new Options_.Issue({
            path: "delay",
            value: "undefined",
            message: "Expected a duration greater than zero, or { percentile, initial }"
          })
        ])
      } else {
        hedge = Hedge.make({ ...part, delay: part.delay, name: part.name ?? name })
        data.hedge = hedgeData(part, name)
      }
    }
    if (input.totalTimeout !== undefined) data.totalTimeout = millisData(input.totalTimeout)
    if (input.attemptTimeout !== undefined) data.attemptTimeout = millisData(input.attemptTimeout)
    checks.push(
      Effect.map(
        Effect.result(Policy.make({ totalTimeout: input.totalTimeout, attemptTimeout: input.attemptTimeout, hedge })),
        (result) => {
          if (Result.isSuccess(result)) return
          for (const issue of result.failure.issues) {
            const part = issue.path.split(".")[0]
            const known = engine.partNames.find((name) => name === part)
            if (known !== undefined) add(known, [issue], false)
          }
        }
      )
    )
    return Effect.flatMap(Effect.all(checks, { discard: true }), () =>
      issues.length > 0
        ? Effect.fail(new Options_.InvalidOptions({ pattern: "Registry", issues }))
        : Effect.succeed({ name, input, data })
    )
  })

/** Validates a whole configuration: one `InvalidOptions` listing every bad field of every policy. */
const validateInput = (input: Input): Effect.Effect<ReadonlyArray<Validated>, Options_.InvalidOptions> =>
  Effect.suspend(() => {
    if (!isDataObject(input) || !isDataObject(input.policies)) {
      return Effect.fail(
        new Options_.InvalidOptions({
          pattern: "Registry",
          issues: [
            new Options_.Issue({
              path: "policies",
              value: Options_.renderValue(isDataObject(input) ? input.policies : input),
              message: "Expected an object of policies by name"
            })
          ]
        })
      )
    }
    const defaults = input.defaults
    const issues: Array<Options_.Issue> = []
    if (defaults !== undefined && !isDataObject(defaults)) {
      issues.push(
        new Options_.Issue({ path: "defaults", value: Options_.renderValue(defaults), message: "Expected an object" })
      )
    }
    const entries = Object.entries(input.policies)
    for (const [name, policy] of entries) {
      if (!isDataObject(policy)) {
        issues.push(
          new Options_.Issue({
            path: `policies.${name}`,
            value: Options_.renderValue(policy),
            message: "Expected an object"
          })
        )
      }
    }
    const usable = isDataObject(defaults) ? defaults : undefined
    return Effect.flatMap(
      Effect.forEach(entries, ([name, policy]) =>
        isDataObject(policy) ? Effect.result(validatePolicy(name, policy, usable)) : Effect.succeed(undefined)
      ),
      (results) => {
        const valid: Array<Validated> = []
        const seen = new Set(issues.map((issue) => issue.path))
        for (const result of results) {
          if (result === undefined) continue
          if (Result.isSuccess(result)) {
            valid.push(result.success)
            continue
          }
          for (const issue of result.failure.issues) {
            // a bad default shows once, not once per policy using it
            if (seen.has(issue.path)) continue
            seen.add(issue.path)
            issues.push(issue)
          }
        }
        return issues.length > 0
          ? Effect.fail(new Options_.InvalidOptions({ pattern: "Registry", issues }))
          : Effect.succeed(valid)
      }
    )
  })

/**
 * Validates a configuration without building anything: succeeds, or fails
 * with one `Options.InvalidOptions` listing every bad field with its path.
 *
 * **Example** (Every bad field, with its path)
 *
 * ```ts import.meta.vitest
 * import { Registry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     Registry.validateOptions({
 *       defaults: { bulkhead: { maxConcurrent: 0 } },
 *       policies: {
 *         payments: { circuitBreaker: { failureRateThreshold: 1.5 }, bulkhead: {} },
 *         search: { totalTimeout: "1 second", attemptTimeout: "2 seconds" }
 *       }
 *     })
 *   )
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["policies.payments.circuitBreaker.failureRateThreshold", "defaults.bulkhead.maxConcurrent", "policies.search.attemptTimeout"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input): Effect.Effect<void, Options_.InvalidOptions> =>
  Effect.asVoid(validateInput(input))

// ---------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------

/** A scoped instance (a breaker, a limiter, a bulkhead): released once retired and idle. */
class Resource {
  inFlight = 0
  retired = false
  closed = false
  readonly scope: Scope.Closeable
  constructor(scope: Scope.Closeable) {
    this.scope = scope
  }
}

/** A policy served: its data, its `Policy`, and the resources its calls hold. */
interface Entry {
  readonly name: string
  readonly data: engine.PolicyData
  readonly policy: Policy.Policy<Parts>
  readonly breaker: Resource | undefined
  readonly limiter: Resource | undefined
  readonly bulkhead: Resource | undefined
  readonly resources: ReadonlyArray<Resource>
  /** Ends a call's count on the resources (none without resources). */
  readonly inFlight: InFlight | undefined
}

/** Ends a call's count on its policy's resources, and releases those retired and now idle. */
class InFlight extends Frame.Observer {
  readonly resources: ReadonlyArray<Resource>
  readonly close: (resource: Resource) => void
  constructor(resources: ReadonlyArray<Resource>, close: (resource: Resource) => void) {
    super()
    this.resources = resources
    this.close = close
  }
  observe(): void {
    for (const r of this.resources) {
      r.inFlight--
      if (r.retired && r.inFlight === 0 && !r.closed) {
        r.closed = true
        this.close(r)
      }
    }
  }
}

/** The same window geometry: a time window's entries are epochs of its bucket width. */
const sameBuckets = (a: CircuitBreaker.ResolvedOptions, b: CircuitBreaker.ResolvedOptions): boolean =>
  a.slidingWindowType !== "time" ||
  b.slidingWindowType !== "time" ||
  Duration.toMillis(a.slidingWindowDuration) / a.slidingWindowBuckets ===
    Duration.toMillis(b.slidingWindowDuration) / b.slidingWindowBuckets

/**
 * The breaker's circuits carried to its replacement: states, open deadlines
 * and counts; the window's entries when it still reads them (see the guide).
 */
const carryOver = (from: CircuitBreaker.CircuitBreaker, to: CircuitBreaker.CircuitBreaker): Effect.Effect<void> =>
  Effect.catchCause(
    Effect.flatMap(from.snapshot, (snapshot) =>
      to.restore(
        sameBuckets(from.options, to.options)
          ? snapshot
          : { ...snapshot, circuits: snapshot.circuits.map((c) => ({ ...c, window: [] })) }
      )
    ),
    (cause) => Effect.logWarning("Registry: a breaker's circuits could not be carried over", cause)
  )

/** The registry and what `layerConfig` needs besides it. */
interface Internal {
  readonly service: Registry
  /** Reports a configuration that could not be read: `ReloadFailed`, counted as a failed reload. */
  readonly failed: (error: Options_.InvalidOptions) => Effect.Effect<void>
}

const makeInternal = Effect.fnUntraced(function* (options: MakeOptions) {
  const registryName = options.name ?? "default"
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const stores = yield* Layer.build(Layer.merge(CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory()))
  const breakerStore = Option.getOrElse(yield* Effect.serviceOption(CircuitBreaker.CircuitBreakerStore), () =>
    Context.get(stores, CircuitBreaker.CircuitBreakerStore)
  )
  const limiterStore = Option.getOrElse(yield* Effect.serviceOption(RateLimiter.RateLimiterStore), () =>
    Context.get(stores, RateLimiter.RateLimiterStore)
  )
  const lock = yield* Semaphore.make(1)
  const hub = Hub.make<Event>()
  let entries = new Map<string, Entry>()
  let current: Input = { policies: {} }
  let version = 0
  const counters = { ok: 0, failed: 0 }

  const closeAll = (resources: ReadonlyArray<Resource>): Effect.Effect<void> =>
    Effect.forEach(resources, (r) => Scope.close(r.scope, Exit.void), { discard: true })
  const closeLater = (resource: Resource) => {
    Effect.runForkWith(context)(Scope.close(resource.scope, Exit.void))
  }

  const applyTo = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    name: string,
    call: Policy.CallOptions | undefined
  ): Effect.Effect<A, E | Errors | RegistryError, R> =>
    Effect.withFiber<A, E | Errors | RegistryError, R>((fiber) => {
      const entry = entries.get(name)
      if (entry === undefined) return Effect.fail(unknownPolicy(name, [...entries.keys()]))
      const applied = Policy.apply(self, entry.policy, call)
      if (entry.inFlight === undefined) return applied
      // counted in flight until the call ends, however it ends (a frame: no extra run-loop step)
      for (const r of entry.resources) r.inFlight++
      return Frame.observed<A, E | Errors, R>(fiber, applied, entry.inFlight)
    })

  /** Makes a scoped instance in a scope of its own, a child of the registry's. */
  const scoped = <A, E>(
    effect: Effect.Effect<A, E, Scope.Scope>,
    made: Array<Resource>
  ): Effect.Effect<{ readonly value: A; readonly resource: Resource }, E> =>
    Effect.flatMap(Scope.fork(scope), (child) => {
      const resource = new Resource(child)
      made.push(resource)
      return Effect.map(Scope.provide(effect, child), (value) => ({ value, resource }))
    })

  /** Builds a policy's entry: the changed (or new) parts made, the others taken from `previous`. */
  const build = Effect.fnUntraced(function* (
    validated: Validated,
    previous: Entry | undefined,
    changed: ReadonlySet<PartName>,
    made: Array<Resource>
  ) {
    const { input, name } = validated
    const keep = (part: PartName) => previous !== undefined && !changed.has(part)
    const old = previous?.policy.parts
    let breaker: { readonly value: CircuitBreaker.CircuitBreaker; readonly resource: Resource } | undefined
    if (input.circuitBreaker !== undefined) {
      if (keep("circuitBreaker") && old?.circuitBreaker !== undefined && previous?.breaker !== undefined) {
        breaker = { value: old.circuitBreaker, resource: previous.breaker }
      } else {
        const part = input.circuitBreaker
        breaker = yield* scoped(
          Effect.provideService(
            // a breaker fails with CircuitBreakerError only importing a snapshot, which is not given here
            Effect.catchTag(
              CircuitBreaker.make({ ...part, name: part.name ?? name }),
              "CircuitBreakerError",
              Effect.die
            ),
            CircuitBreaker.CircuitBreakerStore,
            breakerStore
          ),
          made
        )
        if (old?.circuitBreaker !== undefined) yield* carryOver(old.circuitBreaker, breaker.value)
      }
    }
    let limiter: { readonly value: RateLimiter.RateLimiter; readonly resource: Resource } | undefined
    const limiterPart = input.rateLimiter
    if (limiterPart !== undefined) {
      if (keep("rateLimiter") && old?.rateLimiter !== undefined && previous?.limiter !== undefined) {
        limiter = { value: old.rateLimiter, resource: previous.limiter }
      } else {
        const [first, ...rest] = limiterPart.limits ?? []
        if (first !== undefined) {
          limiter = yield* scoped(
            Effect.provideService(
              RateLimiter.make({ ...limiterPart, limits: [first, ...rest], name: limiterPart.name ?? name }),
              RateLimiter.RateLimiterStore,
              limiterStore
            ),
            made
          )
        }
      }
    }
    let bulkhead: { readonly value: Bulkhead.Bulkhead; readonly resource: Resource } | undefined
    if (input.bulkhead !== undefined) {
      if (keep("bulkhead") && old?.bulkhead !== undefined && previous?.bulkhead !== undefined) {
        bulkhead = { value: old.bulkhead, resource: previous.bulkhead }
      } else {
        const part = input.bulkhead
        bulkhead = yield* scoped(Bulkhead.make({ ...part, name: part.name ?? name }), made)
      }
    }
    const retryPart = input.retry
    const retry =
      retryPart === undefined
        ? undefined
        : keep("retry") && old?.retry !== undefined
          ? old.retry
          : Retry.make({ ...retryPart, name: retryPart.name ?? name })
    const hedgePart = input.hedge
    const hedge =
      hedgePart === undefined || hedgePart.delay === undefined
        ? undefined
        : keep("hedge") && old?.hedge !== undefined
          ? old.hedge
          : Hedge.make({ ...hedgePart, delay: hedgePart.delay, name: hedgePart.name ?? name })
    const durationOf = (d: Duration.Input | undefined) => (d === undefined ? undefined : Duration.fromInputUnsafe(d))
    const parts: Parts = {
      name,
      totalTimeout: durationOf(input.totalTimeout),
      retry,
      circuitBreaker: breaker?.value,
      rateLimiter: limiter?.value,
      bulkhead: bulkhead?.value,
      hedge,
      attemptTimeout: durationOf(input.attemptTimeout)
    }
    const policy = yield* Policy.make(parts)
    const resources = [breaker?.resource, limiter?.resource, bulkhead?.resource].filter(
      (r): r is Resource => r !== undefined
    )
    const entry: Entry = {
      name,
      data: validated.data,
      policy,
      breaker: breaker?.resource,
      limiter: limiter?.resource,
      bulkhead: bulkhead?.resource,
      resources,
      inFlight: resources.length === 0 ? undefined : new InFlight(resources, closeLater)
    }
    return entry
  })

  const emit = (event: Event) => {
    if (hub.listening()) hub.emit(event)
  }

  let lastFailure: ReloadFailure | undefined
  const failed = (error: Options_.InvalidOptions): Effect.Effect<void> =>
    Clock.clockWith((clock) =>
      Effect.sync(() => {
        counters.failed++
        lastFailure = { version, failedAt: clock.currentTimeMillisUnsafe(), error }
        emit({ _tag: "ReloadFailed", registry: registryName, version, error })
      })
    )

  const apply = (input: Input): Effect.Effect<ReloadResult, Options_.InvalidOptions> =>
    Effect.uninterruptible(
      Effect.gen(function* () {
        const validated = yield* Effect.tapError(validateInput(input), failed)
        const next = new Map(validated.map((v) => [v.name, v.data] as const))
        const previousData = new Map([...entries].map(([name, entry]) => [name, entry.data] as const))
        const diff = engine.diff(previousData, next)
        const changedBy = new Map(diff.replaced.map((r) => [r.name, new Set(r.parts)] as const))
        const made: Array<Resource> = []
        const built = yield* Effect.onError(
          Effect.forEach(validated, (v) => {
            const previous = entries.get(v.name)
            const changed = changedBy.get(v.name)
            if (previous !== undefined && changed === undefined) return Effect.succeed(previous)
            return build(v, previous, changed ?? new Set(), made)
          }),
          () => closeAll(made)
        )
        // commit: from here on, calls see the new policies
        const old = entries
        entries = new Map(built.map((entry) => [entry.name, entry] as const))
        current = input
        version++
        counters.ok++
        const live = new Set(built.flatMap((entry) => entry.resources))
        const idle: Array<Resource> = []
        for (const entry of old.values()) {
          for (const r of entry.resources) {
            if (live.has(r) || r.retired) continue
            r.retired = true
            if (r.inFlight === 0) {
              r.closed = true
              idle.push(r)
            }
          }
        }
        for (const policy of diff.added) emit({ _tag: "PolicyAdded", registry: registryName, policy, version })
        for (const { name, parts } of diff.replaced) {
          emit({ _tag: "PolicyReplaced", registry: registryName, policy: name, parts, version })
        }
        for (const policy of diff.removed) emit({ _tag: "PolicyRemoved", registry: registryName, policy, version })
        yield* closeAll(idle)
        return { version, ...diff }
      })
    ).pipe(lock.withPermit)

  const service = Registry.of({
    [TypeId]: TypeId,
    name: registryName,
    get: (name) =>
      Effect.suspend(() => {
        const entry = entries.get(name)
        return entry === undefined
          ? Effect.fail(unknownPolicy(name, [...entries.keys()]))
          : Effect.succeed(entry.policy)
      }),
    apply:
      (name, call) =>
      <A, E, R>(self: Effect.Effect<A, E, R>) =>
        applyTo(self, name, call),
    reload: apply,
    names: Effect.sync(() => [...entries.keys()]),
    snapshot: Effect.sync(() => current),
    version: Effect.sync(() => version),
    lastFailure: Effect.sync(() => lastFailure),
    subscribe: hub.subscribe,
    events: hub.events
  })

  yield* apply({ policies: options.policies, defaults: options.defaults })

  // metrics, read when exported
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: registryName }
  const spec = Telemetry.registry
  registrar.counter(spec.reloads, { ...base, [Telemetry.attributes.outcome]: "ok" }, () => counters.ok)
  registrar.counter(spec.reloads, { ...base, [Telemetry.attributes.outcome]: "failed" }, () => counters.failed)
  registrar.gauge(spec.policies, base, () => entries.size)
  yield* Scope.addFinalizer(
    scope,
    Effect.andThen(
      hub.end,
      Effect.sync(() => registrar.removeAll())
    )
  )

  if (options.source !== undefined) {
    yield* Effect.forkIn(
      Stream.runForEach(options.source, (input) => Effect.ignore(apply(input))),
      scope
    )
  }
  const internal: Internal = { service, failed }
  return internal
})

/**
 * Makes a registry that lives as long as the scope (its instances, its
 * `source` and its metrics end with it). Fails with one
 * `Options.InvalidOptions` listing every bad field of every policy.
 *
 * **Example** (A stream of configurations)
 *
 * ```ts import.meta.vitest
 * import { Registry } from "@effect-resilience/core"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const registry = yield* Registry.make({
 *     policies: { search: { attemptTimeout: "1 second" } },
 *     source: Stream.make({ policies: { search: { attemptTimeout: "2 seconds" }, reports: {} } })
 *   })
 *   yield* Effect.yieldNow
 *   return yield* registry.names
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["search", "reports"]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (options: MakeOptions) => Effect.Effect<Registry, Options_.InvalidOptions, Scope.Scope> = (
  options
) => Effect.map(makeInternal(options), (internal) => internal.service)

/**
 * Provides `Registry` for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: MakeOptions): Layer.Layer<Registry, Options_.InvalidOptions> =>
  Layer.effect(Registry, make(options))

// ---------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

const segmentsOf = (issue: {
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined
}) =>
  (issue.path ?? []).map((segment) =>
    typeof segment === "object" && segment !== null && "key" in segment ? segment.key : segment
  )

const valueAt = (root: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let current = root
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined
    current = Reflect.get(current, key)
  }
  return current
}

const configInvalid = (issues: ReadonlyArray<Options_.Issue>) =>
  new Options_.InvalidOptions({ pattern: "Registry", issues })

const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(Options), { errors: "all" })

/** A configuration from a JSON string: every bad field as an issue with its path. */
const fromJson = (text: string): Effect.Effect<Options, Options_.InvalidOptions> => {
  const decoded = decodeJson(text)
  if (Result.isSuccess(decoded)) return Effect.succeed(decoded.success)
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    return Effect.fail(
      configInvalid([
        new Options_.Issue({
          path: "",
          value: Options_.renderValue(text.length > 80 ? `${text.slice(0, 80)}…` : text),
          message: `Expected JSON: ${error instanceof Error ? error.message : String(error)}`
        })
      ])
    )
  }
  return Effect.fail(
    configInvalid(
      formatter(decoded.failure.issue).issues.map((issue) => {
        const path = segmentsOf(issue)
        return new Options_.Issue({
          path: path.map(String).join("."),
          value: Options_.renderValue(valueAt(raw, path)),
          message: issue.message
        })
      })
    )
  )
}

/** A configuration from a nested config structure: every bad field with the text the provider held. */
const fromStructure = (path: string): Effect.Effect<Options, Options_.InvalidOptions | Config.ConfigError> =>
  Effect.catchTag(
    Config.schema(Options, path),
    "ConfigError",
    (error): Effect.Effect<Options, Options_.InvalidOptions | Config.ConfigError> => {
      if (error.cause._tag === "SourceError") return Effect.fail(error)
      return Effect.flatMap(
        Effect.forEach(formatter(error.cause.issue).issues, (issue) => {
          const full = segmentsOf(issue)
          const at = String(full[0]) === path ? full.slice(1) : full
          return Effect.map(
            Effect.orElseSucceed(
              Config.schema(Schema.String, [
                path,
                ...at.map((segment) => (typeof segment === "number" ? segment : String(segment)))
              ]),
              () => undefined
            ),
            (text) =>
              new Options_.Issue({
                path: at.map(String).join("."),
                value: Options_.renderValue(text),
                message: issue.message
              })
          )
        }),
        (issues) => Effect.fail(configInvalid(issues))
      )
    }
  )

/**
 * Reads a configuration from `Config` under `path`: a JSON string there
 * (`RESILIENCE='{"policies":{…}}'`), else a nested structure
 * (`ConfigProvider.fromUnknown`, or the environment spelled as the provider
 * nests it). Bad values fail with one `Options.InvalidOptions` naming each
 * field; a provider that cannot be read, with `Config.ConfigError`.
 *
 * @category options
 * @since 0.1.0
 */
export const readConfig = (path: string): Effect.Effect<Input, Options_.InvalidOptions | Config.ConfigError> =>
  Effect.flatMap(Config.option(Config.String(path)), (text) =>
    Option.isSome(text) ? fromJson(text.value) : fromStructure(path)
  )

/**
 * Options of `layerConfig`.
 *
 * @category options
 * @since 0.1.0
 */
export interface ConfigOptions {
  /** The registry's name (default: `path`). */
  readonly name?: string | undefined
  /**
   * Reads the config again this often (on Effect's `Clock`) and reloads when
   * its data changed; a read that fails is reported as `ReloadFailed` and the
   * old configuration keeps serving (off when unset).
   */
  readonly reloadEvery?: Duration.Input | undefined
}

/**
 * Provides `Registry` with its configuration read from `Config` under `path`
 * (see {@link readConfig}), re-read every `reloadEvery` when given.
 *
 * **Example** (Policies from a JSON environment variable)
 *
 * ```ts import.meta.vitest
 * import { Registry } from "@effect-resilience/core"
 * import { ConfigProvider, Effect, Layer } from "effect"
 *
 * const env = ConfigProvider.fromEnv({
 *   env: { RESILIENCE: JSON.stringify({ policies: { payments: { circuitBreaker: { consecutiveFailures: 3 } } } }) }
 * })
 * const program = Effect.flatMap(Registry.Registry, (registry) => registry.names).pipe(
 *   Effect.provide(Registry.layerConfig("RESILIENCE").pipe(Layer.provide(ConfigProvider.layer(env))))
 * )
 *
 * await Effect.runPromise(program)
 * // => ["payments"]
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  path: string,
  options?: ConfigOptions | undefined
): Layer.Layer<Registry, Options_.InvalidOptions | Config.ConfigError> =>
  Layer.effect(
    Registry,
    Effect.gen(function* () {
      const first = yield* readConfig(path)
      const internal = yield* makeInternal({ ...first, name: options?.name ?? path })
      const every = options?.reloadEvery
      if (every !== undefined) {
        let last: engine.Data = toData(first)
        const tick = Effect.flatMap(Effect.result(readConfig(path)), (read) => {
          if (Result.isSuccess(read)) {
            const data = toData(read.success)
            if (engine.equalData(data, last)) return Effect.void
            last = data
            return Effect.ignore(internal.service.reload(read.success))
          }
          const error = read.failure
          const data: engine.Data = { failed: error.message }
          if (engine.equalData(data, last)) return Effect.void
          last = data
          return internal.failed(
            error._tag === "InvalidOptions"
              ? error
              : configInvalid([new Options_.Issue({ path, value: "undefined", message: error.message })])
          )
        })
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(every), tick)))
      }
      return internal.service
    })
  )

// ---------------------------------------------------------------------------
// combinators
// ---------------------------------------------------------------------------

/**
 * Wraps an effect in the policy `name` of the `Registry` in the context, as
 * it is **when the effect runs**: a reload applies to the next call. Fails
 * with `RegistryError` (`UnknownPolicy`) for a name not served, without
 * running the effect.
 *
 * **Example** (Looked up at call time)
 *
 * ```ts import.meta.vitest
 * import { Registry } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const call = Effect.succeed("ok").pipe(Registry.apply("reports"))
 * const program = Effect.gen(function* () {
 *   const registry = yield* Registry.Registry
 *   const before = yield* Effect.flip(call)
 *   yield* registry.reload({ policies: { reports: { attemptTimeout: "1 second" } } })
 *   return [before.reason._tag, yield* call]
 * }).pipe(Effect.provide(Registry.layer({ policies: {} })))
 *
 * await Effect.runPromise(program)
 * // => ["UnknownPolicy", "ok"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const apply: {
  /**
   * Wraps an effect in a registry's policy (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  (
    name: string,
    options?: Policy.CallOptions | undefined
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Errors | RegistryError, R | Registry>
  /**
   * Wraps an effect in a registry's policy (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    name: string,
    options?: Policy.CallOptions | undefined
  ): Effect.Effect<A, E | Errors | RegistryError, R | Registry>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    name: string,
    options?: Policy.CallOptions | undefined
  ): Effect.Effect<A, E | Errors | RegistryError, R | Registry> =>
    Effect.flatMap(Registry, (registry) => registry.apply(name, options)(self))
)
