/**
 * Rate limiting: how much each client may do, by any of the classic
 * algorithms, with several limits at once, weighted costs, and the numbers
 * the IETF `RateLimit` headers need.
 *
 * A limiter holds one or more limits (e.g. 10 per second AND 1,000 per hour).
 * A request of some cost from some key is allowed only when every limit
 * allows it, and then every limit is charged; when one refuses, nothing is
 * consumed.
 *
 * **Details**
 *
 * - Algorithms: `fixed-window`, `sliding-window` (the two-window counter
 *   estimate), `sliding-log` (exact), `token-bucket`, `leaky-bucket` (a meter),
 *   `gcra` (redis-cell's semantics) and `concurrency` (permits held while a
 *   call runs, released on exit or interruption). The decision logic is pure
 *   (`internal/rateLimiter.ts`), shared with the Redis scripts.
 * - Every decision carries `allowed`, `limit`, `remaining`, `reset`,
 *   `retryAfter` and the deciding `policy`.
 * - `allow` keys are never limited; `deny` keys are always refused.
 *   `penalize` and `reward` take or give back points for a key.
 * - Memory is bounded: at most `maxKeys` keys per limit; idle keys (whose
 *   state equals a fresh one) are swept by a background fiber tied to the
 *   limiter's scope, and dropped first when the cap is reached.
 * - Monitoring: decisions by result and policy as metrics, limit-hit events
 *   on a stream, and the heaviest clients from a bounded heavy-hitters sketch.
 *
 * - Modes: `reject` fails a refused request at once (`RateLimitExceeded`
 *   with `retryAfter`); `shape` makes it wait in a FIFO line per key until
 *   allowed, up to `maxWait`, with at most `maxQueue` waiting; an interrupted
 *   waiter leaves the line (and gets its cost back if it was already charged).
 *
 * **Gotchas**
 *
 * - In shape mode, a request arriving while others wait for the same key lines
 *   up behind them even if it could pass at once: order is kept.
 *
 * **Example** (Ten requests per second and a thousand per hour)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({
 *     limits: [
 *       { algorithm: "token-bucket", limit: 10, window: "1 second" },
 *       { algorithm: "fixed-window", limit: 1000, window: "1 hour" }
 *     ]
 *   })
 *   const decisions = yield* Effect.forEach(Array.from({ length: 12 }), () => limiter.consume("client-1"))
 *   return decisions.map((d) => d.allowed).filter(Boolean).length
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => 10
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Hub from "./internal/events.ts"
import { construct } from "./internal/fastError.ts"
import * as hh from "./internal/heavyHitters.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Now from "./internal/now.ts"
import * as algorithms from "./internal/rateLimiter.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of `RateLimiter` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/RateLimiter"

/**
 * Type-level identifier of `RateLimiter` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/RateLimiter"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const Positive = Schema.Number.check(Schema.isGreaterThan(0))

const common = {
  /** The policy's name (the `RateLimit-Policy` item); default `<algorithm>-<limit>-<window ms>`. */
  name: Schema.optionalKey(Schema.String)
}

/**
 * One limit. `limit` requests (cost units) per `window`; `burst` (token
 * bucket, GCRA) allows more at once, up to `burst` in total.
 *
 * @category options
 * @since 0.1.0
 */
export const Limit = Schema.Union([
  ...(["fixed-window", "sliding-window", "sliding-log"] as const).map((algorithm) =>
    Schema.Struct({
      ...common,
      algorithm: Schema.Literal(algorithm),
      limit: PositiveInt,
      window: Schema.DurationFromString
    })
  ),
  ...(["token-bucket", "gcra"] as const).map((algorithm) =>
    Schema.Struct({
      ...common,
      algorithm: Schema.Literal(algorithm),
      limit: PositiveInt,
      window: Schema.DurationFromString,
      burst: Schema.optionalKey(PositiveInt)
    })
  ),
  Schema.Struct({
    ...common,
    algorithm: Schema.Literal("leaky-bucket"),
    /** The bucket's size (the most cost held at once). */
    capacity: PositiveInt,
    /** Cost drained per second. */
    leakPerSecond: Positive
  }),
  Schema.Struct({
    ...common,
    algorithm: Schema.Literal("concurrency"),
    limit: PositiveInt
  })
])

/**
 * @category options
 * @since 0.1.0
 */
export type Limit = typeof Limit.Type

/**
 * A limit as the constructors take it: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export type LimitInput = Limit extends infer L
  ? L extends { readonly window: Duration.Duration }
    ? Omit<L, "window"> & { readonly window: Duration.Input }
    : L
  : never

/**
 * The limiter's options.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the limiter: the `resilience.name` metric attribute.",
      default: "default"
    })
  ),
  limits: Schema.NonEmptyArray(Limit).annotate({ description: "The limits; a request must pass all of them." }),
  maxKeys: Schema.optionalKey(
    PositiveInt.annotate({ description: "Keys held per limit at most; idle ones are dropped first.", default: 100_000 })
  ),
  allow: Schema.optionalKey(Schema.Array(Schema.String).annotate({ description: "Keys never limited.", default: [] })),
  deny: Schema.optionalKey(Schema.Array(Schema.String).annotate({ description: "Keys always refused.", default: [] })),
  topClients: Schema.optionalKey(
    PositiveInt.annotate({ description: "Capacity of the heavy-hitters sketch behind `topClients`.", default: 64 })
  ),
  mode: Schema.optionalKey(
    Schema.Literals(["reject", "shape"]).annotate({
      description:
        "`reject`: a refused request fails at once; `shape`: it waits in a FIFO queue per key until allowed (up to `maxWait`).",
      default: "reject"
    })
  ),
  maxWait: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Shape mode: the longest a request waits in line.",
      default: Duration.seconds(10)
    })
  ),
  maxQueue: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Shape mode: requests waiting per key at most; more are refused.",
      default: 100
    })
  ),
  alertRejectionRate: Schema.optionalKey(
    Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMinimum: true })).annotate({
      description:
        "Alert: emit `AlertTriggered` when rejections / decisions stay at or above this for `alertFor` (off when unset)."
    })
  ),
  alertFor: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "Alert: how long the rejection rate must stay high.",
      default: Duration.minutes(1)
    })
  ),
  sweepInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How often the background fiber drops idle keys.",
      default: Duration.seconds(30)
    })
  ),
  onStoreError: Schema.optionalKey(
    Schema.Literals(["allow", "fail"]).annotate({
      description:
        "Over a remote store (Redis), when the store fails: `allow` lets the request through (counted in `stats.storeErrors`); `fail` refuses it (`limit` fails with `RateLimiterStoreError`).",
      default: "allow"
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` takes them.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly name?: string | undefined
  readonly limits: readonly [LimitInput, ...Array<LimitInput>]
  readonly maxKeys?: number | undefined
  readonly allow?: ReadonlyArray<string> | undefined
  readonly deny?: ReadonlyArray<string> | undefined
  readonly topClients?: number | undefined
  readonly mode?: "reject" | "shape" | undefined
  readonly maxWait?: Duration.Input | undefined
  readonly maxQueue?: number | undefined
  readonly alertRejectionRate?: number | undefined
  readonly alertFor?: Duration.Input | undefined
  readonly sweepInterval?: Duration.Input | undefined
  readonly onStoreError?: "allow" | "fail" | undefined
  /**
   * Quotas by client class: each tier has its own limits (and its own state).
   * `tierOf(key)` picks a key's tier; keys without one use `limits`.
   */
  readonly tiers?: Readonly<Record<string, readonly [LimitInput, ...Array<LimitInput>]>> | undefined
  readonly tierOf?: ((key: string) => string | undefined) | undefined
}

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

const validateTop = (input: Input): Effect.Effect<Options, Options_.InvalidOptions> => {
  const { issues, normalized } = normalizeInput(input)
  return Options_.validate("RateLimiter", Options, normalized, rules, issues)
}

/**
 * The options and every tier's limits, validated together: one
 * `InvalidOptions` lists the bad fields of the top level and of every tier
 * (a tier's under `tiers.<name>.`).
 */
const validateAll = (
  input: Input
): Effect.Effect<
  { readonly options: Options; readonly tiers: ReadonlyArray<readonly [string, ReadonlyArray<Limit>]> },
  Options_.InvalidOptions
> => {
  const tierInputs = Object.entries(input.tiers ?? {})
  return Effect.map(
    Effect.all([
      Effect.result(validateTop(input)),
      ...tierInputs.map(([, limits]) => Effect.result(validateTop({ limits })))
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

/**
 * Validates options: succeeds with them decoded, or fails listing every bad
 * field, those of every tier included (`tiers.<name>.limits.0.window`).
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input): Effect.Effect<Options, Options_.InvalidOptions> =>
  Effect.map(validateAll(input), ({ options }) => options)

/**
 * The Defaults table of the limiter's options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * One limit's part of a decision.
 *
 * @category models
 * @since 0.1.0
 */
export interface PolicyDecision {
  readonly policy: string
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  readonly reset: Duration.Duration
  readonly retryAfter: Duration.Duration
  /** The window in seconds, for `RateLimit-Policy` (`w`); undefined for concurrency. */
  readonly windowSeconds: number | undefined
}

/**
 * A decision: everything the IETF `RateLimit` and `RateLimit-Policy` headers need.
 *
 * @category models
 * @since 0.1.0
 */
export interface Decision {
  readonly allowed: boolean
  /** The deciding policy: the refusing one that frees up last, else the one with the least remaining. */
  readonly policy: string
  readonly limit: number
  readonly remaining: number
  readonly reset: Duration.Duration
  /** Zero when allowed. */
  readonly retryAfter: Duration.Duration
  readonly policies: ReadonlyArray<PolicyDecision>
  /**
   * The remote store failed and `onStoreError: "fail"` refused the request
   * (its `policy` is `"store-error"`): not a limit's refusal.
   */
  readonly storeError: boolean
}

/**
 * The limiter's events.
 *
 * @category models
 * @since 0.1.0
 */
export type Event =
  | {
      readonly _tag: "LimitHit"
      readonly limiter: string
      readonly key: string
      readonly policy: string
      readonly cost: number
      readonly retryAfter: Duration.Duration
    }
  | {
      /** The rejection rate stayed at or above `alertRejectionRate` for `alertFor`. */
      readonly _tag: "AlertTriggered"
      readonly limiter: string
      readonly rejectionRate: number
      readonly since: number
    }
  | {
      /** The rejection rate fell below `alertRejectionRate` again. */
      readonly _tag: "AlertResolved"
      readonly limiter: string
      readonly rejectionRate: number
    }

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/**
 * A request refused by a limit.
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimitExceeded extends Schema.TaggedError<RateLimitExceeded>(
  "@effect-resilience/core/RateLimiter/RateLimitExceeded"
)("RateLimitExceeded", {
  limiter: Schema.String,
  key: Schema.String,
  policy: Schema.String,
  limit: Schema.Number,
  remaining: Schema.Number,
  retryAfter: Schema.DurationFromMillis
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "Rate limit exceeded"
  }
}

/**
 * The store behind the limiter failed (only over a remote store, under
 * `onStoreError: "fail"`).
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimiterStoreError extends Schema.TaggedError<RateLimiterStoreError>(
  "@effect-resilience/core/RateLimiter/RateLimiterStoreError"
)("RateLimiterStoreError", {
  limiter: Schema.String,
  key: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * Runtime identifier of `RateLimiterError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/RateLimiter/RateLimiterError"

/**
 * Type-level identifier of `RateLimiterError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/RateLimiter/RateLimiterError"

/**
 * The one error `limit` adds.
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimiterError extends Schema.TaggedError<RateLimiterError>(ErrorTypeId)("RateLimiterError", {
  reason: Schema.Union([RateLimitExceeded, RateLimiterStoreError])
}) {
  /**
   * Brand for the guards.
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
 * Whether a value is a `RateLimiterError` (a rejection, with `retryAfter`).
 *
 * @category guards
 * @since 0.1.0
 */
export const isRateLimiterError = (u: unknown): u is RateLimiterError =>
  typeof u === "object" && u !== null && ErrorTypeId in u

/**
 * Whether a value is a limiter's rejection: the predicate for `Retry`'s
 * `while` option (its `retryAfter` is honoured as a hint).
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection: (u: unknown) => u is RateLimiterError = isRateLimiterError

// ---------------------------------------------------------------------------
// compiled limits: typed closures over one algorithm, states per key
// ---------------------------------------------------------------------------

/**
 * One limit's per-key state in a store, behind plain functions of the key:
 * what the limiter checks and charges. In-process stores hold the states in a
 * `Map` per limit.
 *
 * @category store
 * @since 0.1.0
 */
export interface CompiledLimit {
  readonly name: string
  readonly windowSeconds: number | undefined
  readonly concurrency: boolean
  readonly check: (key: string, now: number, cost: number, out: algorithms.Decision) => algorithms.Decision
  readonly consume: (key: string, now: number, cost: number, out: algorithms.Decision) => algorithms.Decision
  readonly refund: (key: string, now: number, cost: number) => void
  readonly penalize: (key: string, now: number, cost: number) => void
  readonly release: (key: string, cost: number) => void
  /** Drops idle states; returns how many. */
  readonly sweep: (now: number) => number
  /** States dropped (not idle) to stay within `maxKeys`, since the start. */
  readonly evicted: () => number
  readonly size: () => number
}

/**
 * The sliding log's codec, whose size varies with its entries. As an object
 * with two growing arrays, a key with one entry took ~470 bytes (V8 reserves
 * 17 elements on an array's first push); here a key's log is packed: a log of
 * at most one entry lives in its slot (`[total, time, cost]`: 24 bytes), a
 * longer one in a packed array of doubles of its own (`[time, cost, time,
 * cost, ...]`, with room for 1.5 times its entries), and its slot holds
 * `[total, entries, -1]`. One codec per limit: it owns the spilled arrays.
 */
const slidingLogCodec = (): Codec<algorithms.SlidingLogState> => {
  const spilled = new Map<number, Array<number>>()
  const scratch: algorithms.SlidingLogState = { times: [], costs: [], total: 0 }
  return {
    size: 3,
    scratch,
    load: (data, at, into) => {
      const { costs, times } = into
      const second = data[at + 1] ?? 0
      const third = data[at + 2] ?? 0
      if (third >= 0) {
        // inline: one entry (a cost is > 0), or none
        const n = third > 0 ? 1 : 0
        times.length = n
        costs.length = n
        if (n === 1) {
          times[0] = second
          costs[0] = third
        }
      } else {
        const entries = spilled.get(at) ?? []
        times.length = second
        costs.length = second
        for (let i = 0; i < second; i++) {
          times[i] = entries[2 * i] ?? 0
          costs[i] = entries[2 * i + 1] ?? 0
        }
      }
      into.total = data[at] ?? 0
    },
    store: (from, data, at) => {
      const { costs, times } = from
      const n = times.length
      data[at] = from.total
      if (n <= 1) {
        data[at + 1] = n === 1 ? (times[0] ?? 0) : 0
        data[at + 2] = n === 1 ? (costs[0] ?? 0) : 0
        spilled.delete(at)
        return
      }
      let entries = spilled.get(at)
      // room for 1.5 n entries, reallocated when too small or more than twice that
      if (entries === undefined || entries.length < 2 * n || entries.length > 6 * n) {
        entries = new Array<number>(2 * (n + (n >> 1)))
        spilled.set(at, entries)
      }
      for (let i = 0; i < n; i++) {
        entries[2 * i] = times[i] ?? 0
        entries[2 * i + 1] = costs[i] ?? 0
      }
      data[at + 1] = n
      data[at + 2] = -1
    },
    dropped: (at) => {
      spilled.delete(at)
    }
  }
}

/**
 * How a fixed-size state is kept in a `Float64Array` slot: `size` numbers,
 * loaded into and stored from one scratch state object.
 */
interface Codec<S> {
  readonly size: number
  readonly scratch: S
  readonly load: (from: Float64Array, at: number, into: S) => void
  readonly store: (from: S, into: Float64Array, at: number) => void
  /** The slot at `at` was freed (a codec holding more than the slot lets go of it). */
  readonly dropped?: ((at: number) => void) | undefined
}

/**
 * `compile` for states of a fixed size: the states live in one growing
 * `Float64Array` (a key costs its `Map` entry, its string and `8 * size`
 * bytes, instead of an object whose epoch-millisecond fields are boxed
 * doubles), reached through a `Map` from key to slot.
 */
const compileSlots = <C, S>(
  algorithm: algorithms.Algorithm<C, S>,
  config: C,
  name: string,
  windowSeconds: number | undefined,
  maxKeys: number,
  codec: Codec<S>,
  release?: ((state: S, cost: number) => void) | undefined
): CompiledLimit => {
  const { size, scratch } = codec
  const slots = new Map<string, number>()
  const free: Array<number> = []
  let data = new Float64Array(size * Math.min(maxKeys, 1024))
  let next = 0
  let evicted = 0
  const load = (slot: number): S => {
    codec.load(data, slot * size, scratch)
    return scratch
  }
  const store = (slot: number) => codec.store(scratch, data, slot * size)
  const drop = (key: string, slot: number) => {
    slots.delete(key)
    codec.dropped?.(slot * size)
    free.push(slot)
  }
  const allocate = (): number => {
    const reused = free.pop()
    if (reused !== undefined) return reused
    if ((next + 1) * size > data.length) {
      const grown = new Float64Array(Math.min(data.length * 2, size * maxKeys))
      grown.set(data)
      data = grown
    }
    return next++
  }
  const batch = Math.max(1, Math.floor(maxKeys / 64))
  const makeRoom = (now: number) => {
    const target = maxKeys - batch
    let scanned = 0
    for (const [key, slot] of slots) {
      if (slots.size <= target || ++scanned > 4 * batch) break
      if (algorithm.isIdle(load(slot), now, config)) drop(key, slot)
    }
    for (const [key, slot] of slots) {
      if (slots.size <= target) break
      if (release !== undefined && !algorithm.isIdle(load(slot), now, config)) continue
      drop(key, slot)
      evicted++
    }
  }
  const slotOf = (key: string, now: number): number => {
    let slot = slots.get(key)
    if (slot === undefined) {
      if (slots.size >= maxKeys) makeRoom(now)
      slot = allocate()
      codec.store(algorithm.make(config, now), data, slot * size)
      slots.set(key, slot)
    }
    return slot
  }
  return {
    name,
    windowSeconds,
    concurrency: release !== undefined,
    check: (key, now, cost, out) => {
      const slot = slots.get(key)
      return algorithm.check(slot === undefined ? algorithm.make(config, now) : load(slot), now, cost, config, out)
    },
    consume: (key, now, cost, out) => {
      const slot = slotOf(key, now)
      algorithm.consume(load(slot), now, cost, config, out)
      if (out.allowed) store(slot)
      return out
    },
    refund: (key, now, cost) => {
      const slot = slots.get(key)
      if (slot === undefined) return
      algorithm.refund(load(slot), now, cost, config)
      store(slot)
    },
    penalize: (key, now, cost) => {
      const slot = slotOf(key, now)
      algorithm.penalize(load(slot), now, cost, config)
      store(slot)
    },
    release: (key, cost) => {
      const slot = slots.get(key)
      if (slot === undefined || release === undefined) return
      release(load(slot), cost)
      store(slot)
    },
    sweep: (now) => {
      let dropped = 0
      for (const [key, slot] of slots) {
        if (algorithm.isIdle(load(slot), now, config)) {
          drop(key, slot)
          dropped++
        }
      }
      return dropped
    },
    evicted: () => evicted,
    size: () => slots.size
  }
}

const tokenBucketCodec: Codec<algorithms.TokenBucketState> = {
  size: 2,
  scratch: { milliTokens: 0, lastRefill: 0 },
  load: (from, at, into) => {
    into.milliTokens = from[at] ?? 0
    into.lastRefill = from[at + 1] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.milliTokens
    into[at + 1] = from.lastRefill
  }
}

const leakyMeterCodec: Codec<algorithms.LeakyMeterState> = {
  size: 2,
  scratch: { milliLevel: 0, lastLeak: 0 },
  load: (from, at, into) => {
    into.milliLevel = from[at] ?? 0
    into.lastLeak = from[at + 1] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.milliLevel
    into[at + 1] = from.lastLeak
  }
}

const gcraCodec: Codec<algorithms.GcraState> = {
  size: 1,
  scratch: { tat: 0 },
  load: (from, at, into) => {
    into.tat = from[at] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.tat
  }
}

const fixedWindowCodec: Codec<algorithms.FixedWindowState> = {
  size: 2,
  scratch: { window: 0, count: 0 },
  load: (from, at, into) => {
    into.window = from[at] ?? 0
    into.count = from[at + 1] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.window
    into[at + 1] = from.count
  }
}

const slidingCounterCodec: Codec<algorithms.SlidingCounterState> = {
  size: 3,
  scratch: { window: 0, previous: 0, current: 0 },
  load: (from, at, into) => {
    into.window = from[at] ?? 0
    into.previous = from[at + 1] ?? 0
    into.current = from[at + 2] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.window
    into[at + 1] = from.previous
    into[at + 2] = from.current
  }
}

const concurrencyCodec: Codec<algorithms.ConcurrencyState> = {
  size: 1,
  scratch: { inFlight: 0 },
  load: (from, at, into) => {
    into.inFlight = from[at] ?? 0
  },
  store: (from, into, at) => {
    into[at] = from.inFlight
  }
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

/**
 * A limit as a store runs it: the algorithm, its configuration in the units
 * the decision logic uses, the policy's name and its window (for
 * `RateLimit-Policy`). In-process stores compile it; a remote store (Redis)
 * sends it to its scripts.
 *
 * @category store
 * @since 0.1.0
 */
export type LimitSpec = {
  readonly name: string
  /** The window in seconds, for `RateLimit-Policy` (`w`); undefined for concurrency. */
  readonly windowSeconds: number | undefined
} & (
  | { readonly algorithm: "fixedWindow"; readonly config: algorithms.FixedWindowConfig }
  | { readonly algorithm: "slidingCounter"; readonly config: algorithms.SlidingCounterConfig }
  | { readonly algorithm: "slidingLog"; readonly config: algorithms.SlidingLogConfig }
  | { readonly algorithm: "tokenBucket"; readonly config: algorithms.TokenBucketConfig }
  | { readonly algorithm: "gcra"; readonly config: algorithms.GcraConfig }
  | { readonly algorithm: "leakyMeter"; readonly config: algorithms.LeakyMeterConfig }
  | { readonly algorithm: "concurrency"; readonly config: algorithms.ConcurrencyConfig }
)

/**
 * The spec of a validated limit.
 *
 * @category store
 * @since 0.1.0
 */
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

/**
 * A limit's per-key state in memory (what `layerStoreMemory` compiles), for
 * stores built on it.
 *
 * @category store
 * @since 0.1.0
 */
export const compileSpec = (spec: LimitSpec, maxKeys: number): CompiledLimit => {
  const { name, windowSeconds } = spec
  switch (spec.algorithm) {
    case "fixedWindow":
      return compileSlots(algorithms.fixedWindow, spec.config, name, windowSeconds, maxKeys, fixedWindowCodec)
    case "slidingCounter":
      return compileSlots(algorithms.slidingCounter, spec.config, name, windowSeconds, maxKeys, slidingCounterCodec)
    case "slidingLog":
      // the log's size varies with its entries: packed, see `slidingLogCodec`
      return compileSlots(algorithms.slidingLog, spec.config, name, windowSeconds, maxKeys, slidingLogCodec())
    case "tokenBucket":
      return compileSlots(algorithms.tokenBucket, spec.config, name, windowSeconds, maxKeys, tokenBucketCodec)
    case "gcra":
      return compileSlots(algorithms.gcra, spec.config, name, windowSeconds, maxKeys, gcraCodec)
    case "leakyMeter":
      return compileSlots(algorithms.leakyMeter, spec.config, name, windowSeconds, maxKeys, leakyMeterCodec)
    case "concurrency":
      return compileSlots(
        algorithms.concurrency,
        spec.config,
        name,
        windowSeconds,
        maxKeys,
        concurrencyCodec,
        algorithms.concurrencyRelease
      )
  }
}

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A rate limiter.
 *
 * @category models
 * @since 0.1.0
 */
export interface RateLimiter {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: Options
  /**
   * Whether `limit` holds a call beyond its admission: a `concurrency` limit
   * (in any tier) gives its permits back when the call ends, and shape mode
   * makes calls wait in line. Such a limiter must guard calls with `limit`;
   * `consume` alone would keep the permits and never wait.
   */
  readonly holdsCalls: boolean
  /** Decides for `key` and, when allowed, charges every limit `cost` (default 1). */
  readonly consume: (key: string, cost?: number | undefined) => Effect.Effect<Decision>
  /** Decides without charging. */
  readonly check: (key: string, cost?: number | undefined) => Effect.Effect<Decision>
  /** Takes `points` extra from every limit of `key` (debt where the algorithm allows). */
  readonly penalize: (key: string, points: number) => Effect.Effect<void>
  /** Gives back up to `points` to every limit of `key`. */
  readonly reward: (key: string, points: number) => Effect.Effect<void>
  readonly limit: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options: LimitOptions
  ) => Effect.Effect<A, E | RateLimiterError, R>
  /**
   * The rejection-rate alert now (`alertRejectionRate`): whether it is raised,
   * the rate over the last monitoring tick, and since when (clock millis)
   * while raised.
   */
  readonly alert: Effect.Effect<{
    readonly alerting: boolean
    readonly rejectionRate: number
    readonly since: number | undefined
  }>
  /** The heaviest keys by cost seen (allowed or not), from a bounded sketch. */
  readonly topClients: (n: number) => Effect.Effect<ReadonlyArray<{ readonly key: string; readonly cost: number }>>
  readonly stats: Effect.Effect<{
    readonly allowed: number
    readonly rejected: number
    readonly keys: number
    /** States dropped (not idle) to stay within `maxKeys`. */
    readonly evicted: number
    /** Remote store failures the limiter let through (`onStoreError: "allow"`) or refused on. */
    readonly storeErrors: number
  }>
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<Event>
}

/**
 * Per-call options of `limit`.
 *
 * @category models
 * @since 0.1.0
 */
export interface LimitOptions {
  readonly key: string
  /** The request's cost (default 1). */
  readonly cost?: number | undefined
}

/**
 * The service tag of the limiter a layer provides.
 *
 * @category services
 * @since 0.1.0
 */
export const RateLimiter: Context.Service<RateLimiter, RateLimiter> = Context.Service<RateLimiter>(TypeId)

/**
 * Where limiters keep their state. `layerStoreMemory` is the embedded default.
 *
 * @category store
 * @since 0.1.0
 */
export class RateLimiterStore extends Context.Service<
  RateLimiterStore,
  {
    /** Per-limit state for one limiter, as compiled closures (in-process stores). */
    readonly compile: (limit: Limit, maxKeys: number) => CompiledLimit
    /**
     * A remote store (Redis): when present, the limiter decides through it
     * instead of compiled limits, one atomic operation per decision.
     */
    readonly remote?: ((options: RemoteOptions) => Effect.Effect<RemoteLimits, never, Scope.Scope>) | undefined
  }
>()("@effect-resilience/core/RateLimiter/RateLimiterStore") {}

/**
 * What a remote store needs to hold a limiter's state.
 *
 * @category store
 * @since 0.1.0
 */
export interface RemoteOptions {
  /** The limiter's name: a namespace, so limiters sharing a store never share state. */
  readonly name: string
  /** The limits of each tier: index 0 is the default limits, then the named tiers. */
  readonly tiers: ReadonlyArray<ReadonlyArray<LimitSpec>>
}

/**
 * One limit's part of a remote decision (the decision logic's own numbers,
 * in milliseconds; `Infinity` where a request can never pass).
 *
 * @category store
 * @since 0.1.0
 */
export interface LimitOutcome {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  readonly resetMillis: number
  readonly retryAfterMillis: number
}

/**
 * A limiter's state in a remote store. Every operation acts on all the limits
 * of one key's tier at once, atomically, with the store's own clock.
 *
 * @category store
 * @since 0.1.0
 */
export interface RemoteLimits {
  /**
   * Decides `cost` for `key` under tier `tier`'s limits, one outcome per limit
   * in order. With `commit`, every limit is charged when all allow (one limit:
   * charged when it allows); otherwise nothing changes.
   */
  readonly decide: (
    key: string,
    tier: number,
    cost: number,
    commit: boolean,
    permit?: string | undefined
  ) => Effect.Effect<ReadonlyArray<LimitOutcome>, RateLimiterStoreError>
  /**
   * Gives back up to `cost` to every limit of the tier; with `permit`, the
   * concurrency limits give back that admission's permits (once).
   */
  readonly refund: (
    key: string,
    tier: number,
    cost: number,
    permit?: string | undefined
  ) => Effect.Effect<void, RateLimiterStoreError>
  /** Takes `cost` extra from every limit of the tier. */
  readonly penalize: (key: string, tier: number, cost: number) => Effect.Effect<void, RateLimiterStoreError>
  /** Releases `cost` concurrency permits of the tier's concurrency limits: `permit`'s, once, when given. */
  readonly release: (
    key: string,
    tier: number,
    cost: number,
    permit?: string | undefined
  ) => Effect.Effect<void, RateLimiterStoreError>
  /**
   * Concurrency permits as leases: an admission's `permit` (a `decide` with
   * `commit`) holds its permits until released or until its lease runs out,
   * so a process that dies holding permits loses them; `renew` extends the
   * lease, and the limiter calls it every `renewMillis` while the call runs.
   */
  readonly leases?:
    | {
        readonly renewMillis: number
        readonly renew: (
          key: string,
          tier: number,
          cost: number,
          permit: string
        ) => Effect.Effect<void, RateLimiterStoreError>
      }
    | undefined
}

/**
 * The in-memory store.
 *
 * @category store
 * @since 0.1.0
 */
export const layerStoreMemory = (): Layer.Layer<RateLimiterStore> =>
  Layer.succeed(
    RateLimiterStore,
    RateLimiterStore.of({ compile: (limit, maxKeys) => compileSpec(limitSpec(limit), maxKeys) })
  )

const toDuration = (millis: number): Duration.Duration =>
  millis === Number.POSITIVE_INFINITY ? Duration.infinity : Duration.millis(millis)

const validCost = (cost: number): boolean => cost >= 0 && cost !== Number.POSITIVE_INFINITY

const invalidCost = (cost: number): RangeError =>
  new RangeError(`RateLimiter: a request's cost must be a finite number >= 0 (0 only peeks), got ${cost}`)

interface Tier {
  /** The tier's position in `RemoteOptions.tiers`. */
  readonly index: number
  readonly limits: ReadonlyArray<CompiledLimit>
  readonly names: ReadonlyArray<string>
  readonly windows: ReadonlyArray<number | undefined>
  readonly scratch: ReadonlyArray<algorithms.Decision>
  readonly single: CompiledLimit | undefined
  readonly hasConcurrency: boolean
}

/**
 * A decision with its durations made on first read: a decision is made per
 * request, and most callers read only `allowed`.
 */
class DecisionImpl implements Decision, PolicyDecision {
  readonly allowed: boolean
  readonly policy: string
  readonly limit: number
  readonly remaining: number
  readonly resetMillis: number
  readonly retryAfterMillis: number
  readonly windowSeconds: number | undefined
  /** Every limit's part, for several limits; undefined for one limit (then `policies` is `[this]`). */
  readonly list: ReadonlyArray<DecisionImpl> | undefined
  constructor(
    allowed: boolean,
    policy: string,
    limit: number,
    remaining: number,
    resetMillis: number,
    retryAfterMillis: number,
    windowSeconds: number | undefined,
    policies?: ReadonlyArray<DecisionImpl>
  ) {
    this.allowed = allowed
    this.policy = policy
    this.limit = limit
    this.remaining = remaining
    this.resetMillis = resetMillis
    this.retryAfterMillis = retryAfterMillis
    this.windowSeconds = windowSeconds
    this.list = policies
  }
  get reset(): Duration.Duration {
    return toDuration(this.resetMillis)
  }
  get retryAfter(): Duration.Duration {
    return toDuration(this.retryAfterMillis)
  }
  get storeError(): boolean {
    return this === storeFailedDecision
  }
  get policies(): ReadonlyArray<PolicyDecision> {
    return this.list ?? (this.policy === "allow" || this.policy === "deny" ? [] : [this])
  }
  /**
   * For a refusal held in the block cache: how long it holds as made, every
   * refusing limit still refusing (the shortest `retryAfter` among them).
   */
  holdMillis(): number {
    if (this.list === undefined) return this.retryAfterMillis
    let hold = Number.POSITIVE_INFINITY
    for (const p of this.list) if (!p.allowed && p.retryAfterMillis < hold) hold = p.retryAfterMillis
    return hold
  }
  /** The same decision `elapsed` milliseconds later: `reset` and `retryAfter` counted down (within `holdMillis`). */
  later(elapsed: number): DecisionImpl {
    if (elapsed === 0) return this
    return new DecisionImpl(
      this.allowed,
      this.policy,
      this.limit,
      this.remaining,
      this.resetMillis > elapsed ? this.resetMillis - elapsed : 0,
      this.retryAfterMillis > elapsed ? this.retryAfterMillis - elapsed : 0,
      this.windowSeconds,
      this.list?.map((p) => p.later(elapsed))
    )
  }
}

/** The refusal of a request whose remote store failed, under `onStoreError: "fail"`. */
const storeFailedDecision = new DecisionImpl(false, "store-error", 0, 0, 0, 0, undefined, [])

const allowDecision: Decision = new DecisionImpl(
  true,
  "allow",
  Number.POSITIVE_INFINITY,
  Number.POSITIVE_INFINITY,
  0,
  0,
  undefined,
  []
)

/**
 * Makes a limiter over the current store. Fails with `Options.InvalidOptions`
 * listing every bad option.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  input: Input
) => Effect.Effect<RateLimiter, Options_.InvalidOptions, RateLimiterStore | Scope.Scope> = Effect.fnUntraced(function* (
  input: Input
) {
  const { options, tiers: tierLimits } = yield* validateAll(input)
  const store = yield* RateLimiterStore
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const name = options.name ?? "default"
  const maxKeys = options.maxKeys ?? 100_000
  // a remote store holds the state itself: nothing is compiled in the process
  const remoteStore = store.remote
  const makeTier = (tierLimits: ReadonlyArray<Limit>, index: number): Tier => {
    const specs = tierLimits.map(limitSpec)
    const compiled = remoteStore === undefined ? tierLimits.map((limit) => store.compile(limit, maxKeys)) : []
    return {
      index,
      limits: compiled,
      names: specs.map((spec) => spec.name),
      windows: specs.map((spec) => spec.windowSeconds),
      scratch: compiled.map(() => algorithms.makeDecision()),
      single: compiled.length === 1 ? compiled[0] : undefined,
      hasConcurrency: specs.some((spec) => spec.algorithm === "concurrency")
    }
  }
  const defaultTier = makeTier(options.limits, 0)
  const tiers = new Map<string, Tier>()
  for (const [tierName, limits] of tierLimits) tiers.set(tierName, makeTier(limits, tiers.size + 1))
  const remote =
    remoteStore === undefined
      ? undefined
      : yield* remoteStore({
          name,
          tiers: [options.limits.map(limitSpec), ...[...tierLimits].map(([, limits]) => limits.map(limitSpec))]
        })
  const onStoreError = options.onStoreError ?? "allow"
  // concurrency permits over a store with leases are named: this limiter's prefix and a counter
  const permitPrefix = `${name}:${Math.random().toString(36).slice(2, 10)}`
  let permits = 0
  const tierOf = input.tierOf
  const tierFor = (key: string): Tier => {
    if (tierOf === undefined) return defaultTier
    const tierName = tierOf(key)
    return (tierName === undefined ? undefined : tiers.get(tierName)) ?? defaultTier
  }
  const allLimits = [...defaultTier.limits, ...[...tiers.values()].flatMap((tier) => tier.limits)]
  const limits = allLimits
  const allow = new Set(options.allow ?? [])
  const deny = new Set(options.deny ?? [])
  const sketch = hh.make(options.topClients ?? 64)
  // a local block cache: a key refused at `at` is refused again, without touching the store, until `until`
  const blocked = new Map<
    string,
    { readonly at: number; readonly until: number; readonly cost: number; readonly decision: DecisionImpl }
  >()
  const counters = { allowed: 0, rejected: 0, storeErrors: 0, byPolicy: new Map<string, number>() }

  // idle keys are swept by a fiber that lives as long as the limiter
  const sweepMillis = Duration.toMillis(options.sweepInterval ?? Duration.seconds(30))
  yield* Effect.forkIn(
    Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(sweepMillis)),
        Clock.clockWith((clock) =>
          Effect.sync(() => {
            const now = clock.currentTimeMillisUnsafe()
            for (const limit of limits) limit.sweep(now)
            // (a remote store expires idle state itself: there are no compiled limits)
          })
        )
      )
    ),
    scope
  )

  // usage and alerting: a tick of a tenth of `alertFor` (or of 10 s)
  const alertRate = options.alertRejectionRate
  const alertForMillis = Duration.toMillis(options.alertFor ?? Duration.minutes(1))
  const tickMillis = Math.max(1, Math.floor(alertForMillis / 10))
  // per-tick counts are differences of the running totals, so the decision path counts once
  const monitor = { allowedAt: 0, rejectedAt: 0, usage: 0, lastUsage: 0, aboveSince: -1, alerting: false, lastRate: 0 }
  yield* Effect.forkIn(
    Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(tickMillis)),
        Clock.clockWith((clock) =>
          Effect.sync(() => {
            const now = clock.currentTimeMillisUnsafe()
            const allowed = counters.allowed - monitor.allowedAt
            const rejected = counters.rejected - monitor.rejectedAt
            const total = allowed + rejected
            const rate = total === 0 ? 0 : rejected / total
            monitor.lastRate = rate
            monitor.lastUsage = monitor.usage
            monitor.allowedAt = counters.allowed
            monitor.rejectedAt = counters.rejected
            monitor.usage = 0
            if (alertRate === undefined) return
            if (total > 0 && rate >= alertRate) {
              if (monitor.aboveSince < 0) monitor.aboveSince = now - tickMillis
              if (!monitor.alerting && now - monitor.aboveSince >= alertForMillis) {
                monitor.alerting = true
                hub.emit({ _tag: "AlertTriggered", limiter: name, rejectionRate: rate, since: monitor.aboveSince })
              }
            } else {
              monitor.aboveSince = -1
              if (monitor.alerting) {
                monitor.alerting = false
                hub.emit({ _tag: "AlertResolved", limiter: name, rejectionRate: rate })
              }
            }
          })
        )
      )
    ),
    scope
  )

  const hub = Hub.make<Event>()
  yield* Scope.addFinalizer(scope, hub.end)

  const lists = allow.size > 0 || deny.size > 0

  /** The decision made without the store (allow and deny lists, a held refusal), if any. */
  const precheck = (key: string, cost: number, now: number, count: boolean): Decision | undefined => {
    if (count) hh.add(sketch, key, cost)
    if (lists) {
      if (allow.has(key)) return allowDecision
      if (deny.has(key)) return new DecisionImpl(false, "deny", 0, 0, 0, Number.POSITIVE_INFINITY, undefined)
    }
    if (blocked.size > 0) {
      const block = blocked.get(key)
      if (block !== undefined) {
        // a request of the cost refused gets the store's refusal again, its times counted down; any other
        // request (which may pass and change the state) goes to the store and ends the entry
        if (cost === block.cost && now >= block.at && now < block.until) return block.decision.later(now - block.at)
        blocked.delete(key)
      }
    }
    return undefined
  }
  /** Holds a committed refusal while every refusing limit still refuses: until then, the store would decide the same. */
  const hold = (key: string, cost: number, now: number, decision: DecisionImpl): void => {
    const holdMillis = decision.holdMillis()
    if (holdMillis > 0 && holdMillis !== Number.POSITIVE_INFINITY) {
      if (blocked.size >= maxKeys) blocked.clear()
      blocked.set(key, { at: now, until: now + holdMillis, cost, decision })
    }
  }
  const decide = (key: string, cost: number, now: number, commit: boolean, count: boolean): Decision => {
    const early = precheck(key, cost, now, count)
    if (early !== undefined) return early
    const decision = decideIn(tierOf === undefined ? defaultTier : tierFor(key), key, cost, now, commit)
    if (commit && !decision.allowed) hold(key, cost, now, decision)
    return decision
  }

  /** One limit's decision. */
  const fromOutcome = (out: LimitOutcome, name: string, windowSeconds: number | undefined): DecisionImpl =>
    new DecisionImpl(
      out.allowed,
      name,
      out.limit,
      out.allowed ? out.remaining : 0,
      out.resetMillis,
      out.allowed ? 0 : out.retryAfterMillis,
      windowSeconds
    )

  /**
   * Several limits' decision: every part, and the deciding one's numbers. A
   * limit's `remaining` counts the request as charged; when another limit
   * refuses, nothing is charged, so the limits that would have allowed it
   * report what they hold (their `remaining` plus the cost).
   */
  const combine = (tier: Tier, outs: ReadonlyArray<LimitOutcome>, allowed: boolean, cost: number): DecisionImpl => {
    let deciding = 0
    const policies: Array<DecisionImpl> = []
    for (let i = 0; i < outs.length; i++) {
      const out = outs[i]
      if (out === undefined) continue
      const name = tier.names[i] ?? "default"
      policies.push(
        new DecisionImpl(
          out.allowed,
          name,
          out.limit,
          !allowed && out.allowed ? out.remaining + cost : out.remaining,
          out.resetMillis,
          out.retryAfterMillis,
          tier.windows[i]
        )
      )
      const best = outs[deciding]
      if (best === undefined) continue
      const refusing = !out.allowed
      if (
        (refusing && (best.allowed || out.retryAfterMillis > best.retryAfterMillis)) ||
        (!refusing && best.allowed && out.remaining < best.remaining)
      ) {
        deciding = i
      }
    }
    const d = outs[deciding] ?? algorithms.makeDecision()
    return new DecisionImpl(
      allowed,
      tier.names[deciding] ?? "default",
      d.limit,
      allowed ? d.remaining : 0,
      d.resetMillis,
      allowed ? 0 : d.retryAfterMillis,
      tier.windows[deciding],
      policies
    )
  }

  const decideIn = (tier: Tier, key: string, cost: number, now: number, commit: boolean): DecisionImpl => {
    const { limits, scratch, single } = tier
    if (single !== undefined) {
      // one limit: consume decides exactly as check, and charges only if allowed
      const out = scratch[0] ?? algorithms.makeDecision()
      if (commit) single.consume(key, now, cost, out)
      else single.check(key, now, cost, out)
      return fromOutcome(out, single.name, single.windowSeconds)
    }
    let allowed = true
    for (let i = 0; i < limits.length; i++) {
      const out = scratch[i]
      const limit = limits[i]
      if (out === undefined || limit === undefined) continue
      limit.check(key, now, cost, out)
      if (!out.allowed) allowed = false
    }
    if (allowed && commit) {
      for (let i = 0; i < limits.length; i++)
        limits[i]?.consume(key, now, cost, scratch[i] ?? algorithms.makeDecision())
    }
    return combine(tier, scratch, allowed, cost)
  }

  // ---- over a remote store: the same decisions, one store round trip each
  /** Decides through the remote store (lists and held refusals first, as in-process). */
  const decideRemote = (
    r: RemoteLimits,
    key: string,
    cost: number,
    commit: boolean,
    count: boolean,
    permit?: string | undefined
  ): Effect.Effect<Decision, RateLimiterStoreError> =>
    Effect.suspend(() => {
      // held refusals count time on the limiter's clock (the store's own runs alongside it)
      const now = Now.currentTimeMillis()
      const early = precheck(key, cost, now, count)
      if (early !== undefined) return Effect.succeed(early)
      const tier = tierFor(key)
      return Effect.map(r.decide(key, tier.index, cost, commit, permit), (outs) => {
        const first = outs[0]
        const decision =
          outs.length === 1 && first !== undefined
            ? fromOutcome(first, tier.names[0] ?? "default", tier.windows[0])
            : combine(
                tier,
                outs,
                outs.every((out) => out.allowed),
                cost
              )
        if (commit && !decision.allowed) hold(key, cost, now, decision)
        return decision
      })
    })
  /** A store that failed: the request passes (`allow`) or is refused (`fail`), never lost silently. */
  const afterStoreError = (): Decision => {
    counters.storeErrors++
    return onStoreError === "allow" ? allowDecision : storeFailedDecision
  }
  /** A decision now, in-process or remote; a store failure decided by `onStoreError`. */
  const decideNow = (
    key: string,
    cost: number,
    commit: boolean,
    count: boolean,
    permit?: string | undefined
  ): Effect.Effect<Decision> =>
    remote === undefined
      ? Effect.sync(() => decide(key, cost, Now.currentTimeMillis(), commit, count))
      : Effect.catch(decideRemote(remote, key, cost, commit, count, permit), () => Effect.sync(afterStoreError))
  /** A name for the concurrency permits a call is about to take, when the store holds them as leases. */
  const permitFor = (key: string): string | undefined =>
    remote?.leases !== undefined && tierFor(key).hasConcurrency ? `${permitPrefix}:${++permits}` : undefined
  /** Gives `cost` back to every limit of `key` (a store failure is dropped: the charge stands). */
  const refundNow = (key: string, cost: number, permit?: string | undefined): Effect.Effect<void> =>
    Effect.suspend(() => {
      blocked.delete(key)
      if (remote !== undefined) return Effect.ignore(remote.refund(key, tierFor(key).index, cost, permit))
      const now = Now.currentTimeMillis()
      for (const l of tierFor(key).limits) l.refund(key, now, cost)
      return Effect.void
    })

  const record = (key: string, cost: number, decision: Decision) => {
    if (decision.limit > 0 && decision.limit !== Number.POSITIVE_INFINITY) {
      const usage = 1 - decision.remaining / decision.limit
      if (usage > monitor.usage) monitor.usage = usage
    }
    if (decision.allowed) {
      counters.allowed++
      return
    }
    counters.rejected++
    counters.byPolicy.set(decision.policy, (counters.byPolicy.get(decision.policy) ?? 0) + 1)
    if (hub.listening()) {
      const event: Event = {
        _tag: "LimitHit",
        limiter: name,
        key,
        policy: decision.policy,
        cost,
        retryAfter: decision.retryAfter
      }
      hub.emit(event)
    }
  }

  // one `sync` step per decision: the clock is the running fiber's
  const consume = (key: string, cost = 1): Effect.Effect<Decision> =>
    !validCost(cost)
      ? Effect.die(invalidCost(cost))
      : remote === undefined
        ? Effect.sync(() => {
            const decision = decide(key, cost, Now.currentTimeMillis(), true, true)
            record(key, cost, decision)
            return decision
          })
        : Effect.tap(decideNow(key, cost, true, true), (decision) => Effect.sync(() => record(key, cost, decision)))

  const check = (key: string, cost = 1): Effect.Effect<Decision> =>
    !validCost(cost)
      ? Effect.die(invalidCost(cost))
      : remote === undefined
        ? Effect.sync(() => decide(key, cost, Now.currentTimeMillis(), false, false))
        : decideNow(key, cost, false, false)

  const exceeded = (key: string, decision: Decision) =>
    construct(RateLimiterError, {
      _tag: "RateLimiterError",
      [ErrorTypeId]: ErrorTypeId,
      reason: construct(RateLimitExceeded, {
        _tag: "RateLimitExceeded",
        limiter: name,
        key,
        policy: decision.policy,
        limit: decision.limit,
        remaining: decision.remaining,
        retryAfter: decision.retryAfter
      })
    })

  const releasing = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    permit?: string | undefined
  ): Effect.Effect<A, E, R> =>
    !tierFor(key).hasConcurrency || allow.has(key)
      ? self
      : remote !== undefined
        ? holding(remote, self, key, cost, permit)
        : // concurrency permits are held while the call runs, released however it ends
          Effect.onExitPrimitive(self, () => {
            for (const l of tierFor(key).limits) if (l.concurrency) l.release(key, cost)
            return undefined
          })

  /**
   * Runs `self` holding concurrency permits of a remote store: released
   * however it ends (a store failure leaves them to their lease), the lease
   * renewed while it runs.
   */
  const holding = <A, E, R>(
    r: RemoteLimits,
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    permit: string | undefined
  ): Effect.Effect<A, E, R> => {
    const tier = tierFor(key).index
    const release = Effect.ignore(r.release(key, tier, cost, permit))
    const leases = r.leases
    if (permit === undefined || leases === undefined) return Effect.onExit(self, () => release)
    const renewing = Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(leases.renewMillis)),
        Effect.ignore(leases.renew(key, tier, cost, permit))
      )
    )
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.forkIn(renewing, scope), (renewer) =>
        Effect.onExit(restore(self), () => Effect.andThen(Fiber.interrupt(renewer), release))
      )
    )
  }

  // ---- shape mode: a FIFO line per key, served by one driver fiber per busy key
  const shaping = options.mode === "shape"
  const maxWaitMillis = Duration.toMillis(options.maxWait ?? Duration.seconds(10))
  const maxQueue = options.maxQueue ?? 100
  interface Waiter {
    readonly cost: number
    /** The name of the concurrency permits it takes, over a store with leases. */
    readonly permit: string | undefined
    readonly admitted: Deferred.Deferred<void, RateLimiterError>
    /** Set once the driver charged the waiter's cost. */
    charged: boolean
    /** Set once the waiter's effect starts: from then on, the charge stands. */
    started: boolean
    /** Set once the waiter left (timed out or interrupted). */
    left: boolean
  }
  const lines = new Map<string, Array<Waiter>>()
  const drive = (key: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const line = lines.get(key)
      const head = line?.[0]
      if (line === undefined || head === undefined) {
        lines.delete(key)
        return Effect.void
      }
      return Effect.flatMap(decideNow(key, head.cost, true, false, head.permit), (decision) => {
        if (head.left) {
          // it left while being decided (the store ran its interruption): give back what was charged
          return decision.allowed ? Effect.andThen(refundNow(key, head.cost, head.permit), drive(key)) : drive(key)
        }
        if (decision.allowed) {
          record(key, head.cost, decision)
          line.shift()
          head.charged = true
          Deferred.doneUnsafe(head.admitted, Exit.void)
          return drive(key)
        }
        if (Duration.toMillis(decision.retryAfter) > maxWaitMillis) {
          // it can never pass in time (a cost above the limit, a deny): refuse it, serve the next
          record(key, head.cost, decision)
          line.shift()
          Deferred.doneUnsafe(head.admitted, Exit.fail(exceeded(key, decision)))
          return drive(key)
        }
        return Effect.andThen(Effect.sleep(Duration.max(decision.retryAfter, Duration.millis(1))), drive(key))
      })
    })
  const leave = (key: string, waiter: Waiter): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (waiter.left) return Effect.void
      waiter.left = true
      const current = lines.get(key)
      const index = current?.indexOf(waiter) ?? -1
      if (current !== undefined && index >= 0) current.splice(index, 1)
      // admitted but not started: give the cost back
      return waiter.charged && !waiter.started ? refundNow(key, waiter.cost, waiter.permit) : Effect.void
    })
  /** Waits in `key`'s line until admitted, then runs `self`; refused after `maxWait`. */
  const shape = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    refused: Decision
  ): Effect.Effect<A, E | RateLimiterError, R> =>
    Effect.suspend(() => {
      let line = lines.get(key)
      if (line !== undefined && line.length >= maxQueue) {
        record(key, cost, refused)
        return Effect.fail(exceeded(key, refused))
      }
      const waiter: Waiter = {
        cost,
        permit: permitFor(key),
        admitted: Deferred.makeUnsafe<void, RateLimiterError>(),
        charged: false,
        started: false,
        left: false
      }
      if (line === undefined) {
        line = []
        lines.set(key, line)
      }
      line.push(waiter)
      const start = line.length === 1 ? Effect.asVoid(Effect.forkIn(drive(key), scope)) : Effect.void
      const admitted = Deferred.await(waiter.admitted).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(maxWaitMillis),
          orElse: () =>
            Effect.andThen(
              leave(key, waiter),
              Effect.suspend(() => {
                record(key, cost, refused)
                return Effect.fail(exceeded(key, refused))
              })
            )
        })
      )
      // interrupted anywhere from joining the line until `self` starts, the waiter leaves and, if it was
      // already charged, gives the cost back
      return Effect.onInterrupt(
        Effect.andThen(
          Effect.andThen(start, admitted),
          Effect.suspend(() => {
            waiter.started = true
            return releasing(self, key, cost, waiter.permit)
          })
        ),
        () => leave(key, waiter)
      )
    })

  /** Someone already waits in `key`'s line: line up behind them (FIFO), unless it could never pass in time. */
  const behind = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    peek: Decision
  ): Effect.Effect<A, E | RateLimiterError, R> => {
    if (peek.policy === "deny" || Duration.toMillis(peek.retryAfter) > maxWaitMillis) {
      record(key, cost, peek)
      return Exit.fail(exceeded(key, peek))
    }
    return shape(self, key, cost, peek)
  }
  /** Runs, queues or refuses `self` on a committed decision. */
  const decided = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    decision: Decision,
    permit?: string | undefined
  ): Effect.Effect<A, E | RateLimiterError, R> => {
    if (!decision.allowed && shaping && decision.policy !== "deny" && !decision.storeError) {
      if (Duration.toMillis(decision.retryAfter) <= maxWaitMillis) return shape(self, key, cost, decision)
    }
    record(key, cost, decision)
    if (!decision.allowed) return Exit.fail(exceeded(key, decision))
    return releasing(self, key, cost, permit)
  }

  const limit = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions: LimitOptions
  ): Effect.Effect<A, E | RateLimiterError, R> =>
    remote !== undefined
      ? limitRemote(remote, self, callOptions)
      : Effect.withFiber((fiber) => {
          const cost = callOptions.cost ?? 1
          const key = callOptions.key
          if (!validCost(cost)) return Effect.die(invalidCost(cost))
          const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
          if (shaping && (lines.get(key)?.length ?? 0) > 0)
            return behind(self, key, cost, decide(key, cost, now, false, true))
          return decided(self, key, cost, decide(key, cost, now, true, true))
        })

  const storeFailure = (key: string, cause: RateLimiterStoreError) =>
    new RateLimiterError({ reason: new RateLimiterStoreError({ limiter: name, key, message: cause.message, cause }) })

  const limitRemote = <A, E, R>(
    r: RemoteLimits,
    self: Effect.Effect<A, E, R>,
    callOptions: LimitOptions
  ): Effect.Effect<A, E | RateLimiterError, R> =>
    Effect.suspend(() => {
      const cost = callOptions.cost ?? 1
      const key = callOptions.key
      if (!validCost(cost)) return Effect.die(invalidCost(cost))
      const waiting = shaping && (lines.get(key)?.length ?? 0) > 0
      const permit = waiting ? undefined : permitFor(key)
      return Effect.matchEffect(decideRemote(r, key, cost, !waiting, true, permit), {
        onFailure: (error): Effect.Effect<A, E | RateLimiterError, R> => {
          counters.storeErrors++
          // fail-open runs the call unlimited (no permit was taken); fail-closed refuses it
          return onStoreError === "allow" ? self : Effect.fail(storeFailure(key, error))
        },
        onSuccess: (decision) =>
          waiting ? behind(self, key, cost, decision) : decided(self, key, cost, decision, permit)
      })
    })

  // metrics, read when exported
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  registrar.counter(
    Telemetry.rateLimiter.decisions,
    { ...base, [Telemetry.attributes.outcome]: "allowed" },
    () => counters.allowed
  )
  for (const l of limits) {
    registrar.counter(
      Telemetry.rateLimiter.decisions,
      { ...base, [Telemetry.attributes.outcome]: "rejected", [Telemetry.attributes.policy]: l.name },
      () => counters.byPolicy.get(l.name) ?? 0
    )
  }
  registrar.gauge(Telemetry.rateLimiter.keys, base, () => Math.max(0, ...limits.map((l) => l.size())))
  registrar.gauge(Telemetry.rateLimiter.usage, base, () => monitor.lastUsage)
  registrar.gauge(Telemetry.rateLimiter.rejectionRate, base, () => monitor.lastRate)
  yield* Scope.addFinalizer(scope, Effect.sync(registrar.removeAll))

  return RateLimiter.of({
    [TypeId]: TypeId,
    name,
    options,
    holdsCalls: options.mode === "shape" || allLimits.some((l) => l.concurrency),
    consume,
    check,
    penalize: (key, points) =>
      remote !== undefined
        ? Effect.suspend(() => {
            blocked.delete(key)
            return Effect.catch(remote.penalize(key, tierFor(key).index, points), () =>
              Effect.sync(() => {
                counters.storeErrors++
              })
            )
          })
        : Clock.clockWith((clock) =>
            Effect.sync(() => {
              const now = clock.currentTimeMillisUnsafe()
              blocked.delete(key)
              for (const l of tierFor(key).limits) l.penalize(key, now, points)
            })
          ),
    reward: (key, points) => refundNow(key, points),
    limit,
    alert: Effect.sync(() => ({
      alerting: monitor.alerting,
      rejectionRate: monitor.lastRate,
      since: monitor.alerting ? monitor.aboveSince : undefined
    })),
    topClients: (n) => Effect.sync(() => hh.top(sketch, n).map(({ count, key }) => ({ key, cost: count }))),
    stats: Effect.sync(() => ({
      allowed: counters.allowed,
      rejected: counters.rejected,
      keys: Math.max(0, ...limits.map((l) => l.size())),
      evicted: limits.reduce((total, l) => total + l.evicted(), 0),
      storeErrors: counters.storeErrors
    })),
    subscribe: hub.subscribe,
    events: hub.events
  })
})

/**
 * Provides `RateLimiter` over the current store.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (input: Input): Layer.Layer<RateLimiter, Options_.InvalidOptions, RateLimiterStore> =>
  Layer.effect(RateLimiter, make(input))

/**
 * Provides `RateLimiter` with its own in-memory store.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (input: Input): Layer.Layer<RateLimiter, Options_.InvalidOptions> =>
  layer(input).pipe(Layer.provide(layerStoreMemory()))

/**
 * Provides `RateLimiter` with options read from `Config` under `path`, over
 * the current store. `extra` adds what config cannot hold (tiers' `tierOf`).
 *
 * **Example** (Limits from structured config)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { ConfigProvider, Effect, Layer } from "effect"
 *
 * const provider = ConfigProvider.fromUnknown({
 *   api: { limits: [{ algorithm: "fixed-window", limit: 100, window: "1 minute", name: "per-minute" }] }
 * })
 * const program = Effect.map(RateLimiter.RateLimiter, (limiter) => limiter.options.limits[0]?.name).pipe(
 *   Effect.provide(
 *     RateLimiter.layerConfig("api").pipe(
 *       Layer.provide(RateLimiter.layerStoreMemory()),
 *       Layer.provide(ConfigProvider.layer(provider))
 *     )
 *   )
 * )
 *
 * await Effect.runPromise(program)
 * // => "per-minute"
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  path: string,
  extra?: Pick<Input, "tiers" | "tierOf"> | undefined
): Layer.Layer<RateLimiter, Options_.InvalidOptions | Config.ConfigError, RateLimiterStore> =>
  Layer.effect(
    RateLimiter,
    Effect.flatMap(Options_.fromConfig("RateLimiter", Options, path), (options: Options) =>
      make({ name: path, ...options, ...extra })
    )
  )

/**
 * Runs an effect only if the limiter allows `key` its `cost`; otherwise fails
 * at once with `RateLimiterError` (`RateLimitExceeded`, with `retryAfter`; over
 * a remote store that failed under `onStoreError: "fail"`, `RateLimiterStoreError`).
 * Concurrency limits hold their permits while the effect runs.
 *
 * **Example** (Limiting per client)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Duration, Effect } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({ limits: [{ algorithm: "fixed-window", limit: 1, window: "1 minute" }] })
 *   yield* Effect.succeed("first").pipe(RateLimiter.limit(limiter, { key: "alice" }))
 *   return yield* Effect.succeed("second").pipe(
 *     RateLimiter.limit(limiter, { key: "alice" }),
 *     Effect.catchReason("RateLimiterError", "RateLimitExceeded", (reason) =>
 *       Effect.succeed(`${reason._tag}, retry after ${Duration.toMillis(reason.retryAfter)} ms`)
 *     )
 *   )
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()), Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => "RateLimitExceeded, retry after 60000 ms"
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const limit: {
  /**
   * Limits an effect (data-last).
   *
   * @since 0.1.0
   */
  (
    limiter: RateLimiter,
    options: LimitOptions
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimiterError, R>
  /**
   * Limits an effect (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    limiter: RateLimiter,
    options: LimitOptions
  ): Effect.Effect<A, E | RateLimiterError, R>
} = dual(3, <A, E, R>(self: Effect.Effect<A, E, R>, limiter: RateLimiter, options: LimitOptions) =>
  limiter.limit(self, options)
)

/**
 * Limits a function by a key computed from its arguments (a client id, an
 * API key, an IP prefix) and, optionally, a cost computed from them: the
 * wrapped function fails with `RateLimiterError` when its key is over the limit.
 *
 * **Example** (Per-client keys from a key function)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * interface Request { readonly apiKey: string; readonly items: number }
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({ limits: [{ algorithm: "sliding-log", limit: 10, window: "1 minute" }] })
 *   const handle = RateLimiter.limitFn(limiter, {
 *     key: (request: Request) => request.apiKey,
 *     cost: (request: Request) => request.items
 *   })((request: Request) => Effect.succeed(`stored ${request.items}`))
 *   yield* handle({ apiKey: "alice", items: 8 })
 *   const refused = yield* Effect.flip(handle({ apiKey: "alice", items: 3 }))
 *   const other = yield* handle({ apiKey: "bob", items: 3 })
 *   return [refused.reason._tag, other]
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => ["RateLimitExceeded", "stored 3"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const limitFn =
  <Args extends ReadonlyArray<unknown>>(
    limiter: RateLimiter,
    options: {
      readonly key: (...args: Args) => string
      readonly cost?: ((...args: Args) => number) | undefined
    }
  ) =>
  <A, E, R>(f: (...args: Args) => Effect.Effect<A, E, R>) =>
  (...args: Args): Effect.Effect<A, E | RateLimiterError, R> =>
    limiter.limit(
      Effect.suspend(() => f(...args)),
      options.cost === undefined
        ? { key: options.key(...args) }
        : { key: options.key(...args), cost: options.cost(...args) }
    )
