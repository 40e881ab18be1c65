/**
 * Fallbacks: what a call answers when its dependency cannot — another
 * source, a default, the last good value, a degraded answer — and request
 * coalescing, so a burst of identical calls costs the dependency one.
 *
 * Fallback is the outermost pattern of a policy: it sees what is left after
 * the timeouts, retries, breaker and limiters inside it have given up, and
 * turns those failures into an answer. Its combinators add no error of their
 * own, and remove from the type the errors they handle.
 *
 * **Details**
 *
 * - `orElse` runs an alternative on failure, `chain` tries alternatives in
 *   order, `orElseSucceed` answers a static default. A `when` predicate on
 *   the typed error decides which failures fall back (the others
 *   propagate); defects fall back only with `catchDefects: true`;
 *   interruption never does.
 * - A `FallbackCache` keeps the last good value per key (LRU, `maxKeys`):
 *   `orElseCached` stores each success and, when the call fails, answers the
 *   last value younger than `maxStale`; with a `ttl` it also answers fresh
 *   values without calling. `withStaleness` says which answer was stale, and
 *   how old.
 * - A `Degradation` is a switch per dependency: `whenDegraded` answers from
 *   the fallback without calling while it is degraded.
 * - A `Coalescer` shares one execution among the concurrent calls of a key
 *   (single flight): each caller gets its exit, a caller interrupted alone
 *   leaves the others unaffected, and the execution is interrupted only when
 *   every caller has gone.
 * - Monitoring: `events` (`FallbackUsed`, `StaleServed`, `Coalesced`,
 *   `DegradedModeChanged`), metrics named in `Telemetry.fallback`, span
 *   events, and each instance's `stats`.
 *
 * **Gotchas**
 *
 * - A fallback hides failures from the caller, not from you: watch
 *   `resilience.fallback.used` and the stale ratio, or an outage can run for
 *   days on stale answers.
 * - One `FallbackCache` holds values of any type under string keys: a key
 *   must always be stored with values of one type (prefix keys per call
 *   site: `"quote:42"`).
 *
 * **Example** (A replica, then a default)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const primary = Effect.fail("primary down")
 * const replica = Effect.fail("replica down")
 * const program = primary.pipe(Fallback.chain([replica, Effect.succeed("cached default")]))
 *
 * await Effect.runPromise(program)
 * // => "cached default"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Predicate from "effect/Predicate"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import { type CacheImpl, makeCache } from "./internal/fallbackCache.ts"
import { type CoalescerImpl, makeFlights } from "./internal/fallbackCoalescer.ts"
import { makeSwitch } from "./internal/fallbackDegradation.ts"
import {
  defaultName,
  dualOnEffect,
  handler,
  processHub,
  recovering,
  reportUsed,
  triggerOf,
  usedCounts
} from "./internal/fallbackHandler.ts"
import { defaults, resolveOptions, rules } from "./internal/fallbackOptions.ts"
import * as Options_ from "./Options.ts"

/**
 * Runtime identifier of `FallbackCache` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Fallback"

/**
 * Type-level identifier of `FallbackCache` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Fallback"

// ---------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------

/**
 * What the fallbacks emit.
 *
 * @category models
 * @since 0.1.0
 */
export type Event = Event.FallbackUsed | Event.StaleServed | Event.Coalesced | Event.DegradedModeChanged

/**
 * The members of {@link Event}.
 *
 * @category models
 * @since 0.1.0
 */
export declare namespace Event {
  /**
   * An alternative answered in place of the call (`orElse`, `chain`,
   * `orElseSucceed`), or in place of a degraded dependency (`whenDegraded`).
   *
   * @category models
   * @since 0.1.0
   */
  export interface FallbackUsed {
    readonly _tag: "FallbackUsed"
    /** The combinator's `name`, or the degradation's. */
    readonly name: string
    /** What triggered it: a typed failure, a defect (with `catchDefects`), or degraded mode. */
    readonly reason: "failure" | "defect" | "degraded"
    /** Which alternative runs: 1 for the first (`orElse`, `orElseSucceed`, `whenDegraded`), 2 for the second of a chain, … */
    readonly alternative: number
    /** The typed error or the defect that triggered it; the degradation's reason in degraded mode. */
    readonly error: unknown
  }
  /**
   * A call failed and the last good value of its key answered in its place.
   *
   * @category models
   * @since 0.1.0
   */
  export interface StaleServed {
    readonly _tag: "StaleServed"
    /** The cache's name. */
    readonly name: string
    readonly key: string
    /** How old the value served is. */
    readonly age: Duration.Duration
    /** The oldest the call accepted. */
    readonly maxStale: Duration.Duration
    /** What the call failed with: a typed failure, or a defect (with `catchDefects`). */
    readonly reason: "failure" | "defect"
  }
  /**
   * A call joined an execution of its key already in flight instead of
   * starting one.
   *
   * @category models
   * @since 0.1.0
   */
  export interface Coalesced {
    readonly _tag: "Coalesced"
    /** The coalescer's name. */
    readonly name: string
    readonly key: string
    /** Callers now waiting for the execution, this one included. */
    readonly waiters: number
  }
  /**
   * A degradation switched between normal and degraded (or changed its reason).
   *
   * @category models
   * @since 0.1.0
   */
  export interface DegradedModeChanged {
    readonly _tag: "DegradedModeChanged"
    /** The degradation's name. */
    readonly name: string
    readonly degraded: boolean
    /** Why it is degraded; undefined once recovered. */
    readonly reason: string | undefined
  }
}

/**
 * Every fallback event of the process (of the combinators and of every
 * instance), as a stream; each run subscribes.
 *
 * **Example** (Watching fallbacks)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect, Fiber, Stream } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const watching = yield* Effect.forkChild(Stream.runCollect(Stream.take(Fallback.events, 1)))
 *   yield* Effect.yieldNow
 *   yield* Effect.fail("down").pipe(Fallback.orElseSucceed("default", { name: "quotes" }))
 *   const [event] = yield* Fiber.join(watching)
 *   return event?._tag === "FallbackUsed" ? [event.name, event.reason, event.error] : []
 * })
 *
 * await Effect.runPromise(program)
 * // => ["quotes", "failure", "down"]
 * ```
 *
 * @category monitoring
 * @since 0.1.0
 */
export const events: Stream.Stream<Event> = processHub.events

/**
 * Subscribes to every fallback event of the process for the scope's lifetime.
 *
 * @category monitoring
 * @since 0.1.0
 */
export const subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope> = processHub.subscribe

// ---------------------------------------------------------------------------
// orElse, chain, orElseSucceed
// ---------------------------------------------------------------------------

/**
 * Which failures of `orElse`, `chain` and `orElseSucceed` fall back.
 *
 * @category models
 * @since 0.1.0
 */
export interface HandleOptions<E> {
  /**
   * Which typed failures fall back (default: every one); the others
   * propagate unchanged. A refinement also removes the errors it matches
   * from the type.
   */
  readonly when?: Predicate.Predicate<E> | undefined
  /** Whether defects fall back too (default false: they propagate). Interruption never does. */
  readonly catchDefects?: boolean | undefined
  /** The `resilience.name` of the metrics and events (default `"default"`): a constant, never a per-request value. */
  readonly name?: string | undefined
}

/** The argument an alternative receives: the typed error, or anything (`unknown`) when defects fall back too. */
type Handled<D, E> = D extends true ? unknown : E

/**
 * The combinators' fallbacks since the process started, by name and reason
 * (what the `resilience.fallback.used` metric reports for them).
 *
 * @category monitoring
 * @since 0.1.0
 */
export const usedStats = (
  name: string = defaultName
): Effect.Effect<{ readonly failure: number; readonly defect: number }> => Effect.sync(() => usedCounts(name))

/**
 * Runs an alternative when the effect fails: the typed failures `when`
 * accepts (every one by default) and, with `catchDefects: true`, defects.
 * Interruption never falls back. The errors handled leave the type: with no
 * `when` the result fails only as the alternative does; a refinement removes
 * what it matches; a plain predicate keeps the error type.
 *
 * **When to use**
 *
 * A second source for the same answer: a replica, another region, a
 * secondary provider, a computed approximation.
 *
 * **Details**
 *
 * - The success path is one failure-only continuation on the fiber
 *   (Effect's `catchCause` primitive): a call that succeeds pays a few tens
 *   of nanoseconds and allocates nothing else.
 * - The alternative receives the typed error (with a refinement, typed as
 *   the input's errors: narrow it in the alternative), or the defect as
 *   `unknown` when `catchDefects` is true.
 * - Each fallback counts in `resilience.fallback.used` under `name` and
 *   reason, adds a `FallbackUsed` span event and is published on
 *   `Fallback.events`.
 *
 * **Example** (Only unavailability falls back)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Data, Effect } from "effect"
 *
 * class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
 * class NotFound extends Data.TaggedError("NotFound")<{}> {}
 *
 * const fromReplica = Effect.succeed("from the replica")
 * const call = (error: Unavailable | NotFound) =>
 *   Effect.fail(error).pipe(
 *     Fallback.orElse(() => fromReplica, { when: (e): e is Unavailable => e._tag === "Unavailable" })
 *   )
 * // Effect<string, NotFound>
 *
 * await Effect.runPromise(call(new Unavailable()))
 * // => "from the replica"
 * await Effect.runPromise(Effect.flip(call(new NotFound()))).then((e) => e._tag)
 * // => "NotFound"
 * ```
 *
 * @see {@link chain} for several alternatives in order
 * @category combinators
 * @since 0.1.0
 */
export const orElse: {
  /**
   * Falls back on the failures a refinement matches, which leave the type (data-last).
   *
   * @since 0.1.0
   */
  <E, EH extends E, A2, E2 = never, R2 = never, D extends boolean = false>(
    alternative: (error: Handled<D, EH>) => Effect.Effect<A2, E2, R2>,
    options: {
      readonly when: Predicate.Refinement<NoInfer<E>, EH>
      readonly catchDefects?: D | undefined
      readonly name?: string | undefined
    }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, Exclude<E, EH> | E2, R | R2>
  /**
   * Falls back on the failures a predicate accepts; the error type stays (data-last).
   *
   * @since 0.1.0
   */
  <E, A2, E2 = never, R2 = never, D extends boolean = false>(
    alternative: (error: Handled<D, NoInfer<E>>) => Effect.Effect<A2, E2, R2>,
    options: {
      readonly when: Predicate.Predicate<NoInfer<E>>
      readonly catchDefects?: D | undefined
      readonly name?: string | undefined
    }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E | E2, R | R2>
  /**
   * Falls back on every typed failure, which leaves the type (data-last).
   *
   * @since 0.1.0
   */
  <E, A2, E2 = never, R2 = never, D extends boolean = false>(
    alternative: (error: Handled<D, NoInfer<E>>) => Effect.Effect<A2, E2, R2>,
    options?: {
      readonly when?: undefined
      readonly catchDefects?: D | undefined
      readonly name?: string | undefined
    }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E2, R | R2>
  /**
   * Falls back on the failures a refinement matches, which leave the type (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, EH extends E, A2, E2 = never, R2 = never, D extends boolean = false>(
    self: Effect.Effect<A, E, R>,
    alternative: (error: Handled<D, EH>) => Effect.Effect<A2, E2, R2>,
    options: {
      readonly when: Predicate.Refinement<NoInfer<E>, EH>
      readonly catchDefects?: D | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | A2, Exclude<E, EH> | E2, R | R2>
  /**
   * Falls back on the failures a predicate accepts; the error type stays (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, A2, E2 = never, R2 = never, D extends boolean = false>(
    self: Effect.Effect<A, E, R>,
    alternative: (error: Handled<D, NoInfer<E>>) => Effect.Effect<A2, E2, R2>,
    options: {
      readonly when: Predicate.Predicate<NoInfer<E>>
      readonly catchDefects?: D | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | A2, E | E2, R | R2>
  /**
   * Falls back on every typed failure, which leaves the type (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, A2, E2 = never, R2 = never, D extends boolean = false>(
    self: Effect.Effect<A, E, R>,
    alternative: (error: Handled<D, NoInfer<E>>) => Effect.Effect<A2, E2, R2>,
    options?: {
      readonly when?: undefined
      readonly catchDefects?: D | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | A2, E2, R | R2>
} = recovering(
  (alternative: (error: unknown) => Effect.Effect<unknown, unknown, unknown>, options?: HandleOptions<unknown>) =>
    handler(alternative, options)
)

/**
 * Answers a static value when the effect fails (the failures `when`
 * accepts; defects with `catchDefects`; never an interruption). The value is
 * used as given, and cannot itself be an effect (it would be read as the
 * data-first form): for a computed or effectful answer use {@link orElse}.
 *
 * **Example** (A default answer)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const recommendations = Effect.fail("recommender down").pipe(
 *   Fallback.orElseSucceed(["bestsellers"], { name: "recommendations" })
 * )
 * // Effect<Array<string>, never>
 *
 * await Effect.runPromise(recommendations)
 * // => ["bestsellers"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const orElseSucceed: {
  /**
   * Answers `value` on the failures a refinement matches, which leave the type (data-last).
   *
   * @since 0.1.0
   */
  <E, EH extends E, A2>(
    value: A2,
    options: {
      readonly when: Predicate.Refinement<NoInfer<E>, EH>
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, Exclude<E, EH>, R>
  /**
   * Answers `value` on the failures a predicate accepts; the error type stays (data-last).
   *
   * @since 0.1.0
   */
  <E, A2>(
    value: A2,
    options: {
      readonly when: Predicate.Predicate<NoInfer<E>>
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E, R>
  /**
   * Answers `value` on every typed failure, which leaves the type (data-last).
   *
   * @since 0.1.0
   */
  <A2>(
    value: A2,
    options?: {
      readonly when?: undefined
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, never, R>
  /**
   * Answers `value` on the failures a refinement matches, which leave the type (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, EH extends E, A2>(
    self: Effect.Effect<A, E, R>,
    value: A2,
    options: {
      readonly when: Predicate.Refinement<NoInfer<E>, EH>
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | A2, Exclude<E, EH>, R>
  /**
   * Answers `value` on the failures a predicate accepts; the error type stays (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, A2>(
    self: Effect.Effect<A, E, R>,
    value: A2,
    options: {
      readonly when: Predicate.Predicate<NoInfer<E>>
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | A2, E, R>
  /**
   * Answers `value` on every typed failure, which leaves the type (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, A2>(
    self: Effect.Effect<A, E, R>,
    value: A2,
    options?: {
      readonly when?: undefined
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | A2, never, R>
} = recovering((value: unknown, options?: HandleOptions<unknown>) => {
  const answer = Exit.succeed(value)
  return handler(() => answer, options)
})

/** The alternatives of a chain: one or more effects. */
type Alternatives = readonly [
  Effect.Effect<unknown, unknown, unknown>,
  ...Array<Effect.Effect<unknown, unknown, unknown>>
]

/** The errors of the last alternative of a chain. */
type LastError<T extends Alternatives> = T extends readonly [...Array<unknown>, infer L] ? Effect.Error<L> : never

/**
 * Tries alternatives in order when the effect fails: the first alternative
 * runs when the effect fails, the second when the first fails, and so on;
 * the first success answers. `when` (on the typed error of the effect or of
 * an alternative) decides which failures move on to the next alternative;
 * one it refuses, a defect (unless `catchDefects`), an interruption or the
 * last alternative's failure propagates.
 *
 * **Details**
 *
 * - Without `when`, the chain fails only as its last alternative does; with
 *   it, with any of the errors.
 * - Each step counts in `resilience.fallback.used` and is published as a
 *   `FallbackUsed` event whose `alternative` is the step's position (1 for
 *   the first alternative).
 *
 * **Example** (Region, then replica, then default)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const tried: Array<string> = []
 * const source = (name: string, ok: boolean) =>
 *   Effect.suspend(() => {
 *     tried.push(name)
 *     return ok ? Effect.succeed(`price from ${name}`) : Effect.fail(`${name} down`)
 *   })
 * const price = source("eu", false).pipe(
 *   Fallback.chain([source("us", false), source("replica", true), source("default", true)])
 * )
 *
 * await Effect.runPromise(price)
 * // => "price from replica"
 * tried
 * // => ["eu", "us", "replica"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const chain: {
  /**
   * Tries the alternatives on the failures `when` accepts; every error stays in the type (data-last).
   *
   * @since 0.1.0
   */
  <const Alts extends Alternatives, E>(
    alternatives: Alts,
    options: {
      readonly when: Predicate.Predicate<NoInfer<E> | Effect.Error<Alts[number]>>
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): <A, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<
    A | Effect.Success<Alts[number]>,
    E | Effect.Error<Alts[number]>,
    R | Effect.Services<Alts[number]>
  >
  /**
   * Tries the alternatives on every typed failure; the chain fails as its last alternative does (data-last).
   *
   * @since 0.1.0
   */
  <const Alts extends Alternatives>(
    alternatives: Alts,
    options?: {
      readonly when?: undefined
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A | Effect.Success<Alts[number]>, LastError<Alts>, R | Effect.Services<Alts[number]>>
  /**
   * Tries the alternatives on the failures `when` accepts; every error stays in the type (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, const Alts extends Alternatives>(
    self: Effect.Effect<A, E, R>,
    alternatives: Alts,
    options: {
      readonly when: Predicate.Predicate<NoInfer<E> | Effect.Error<Alts[number]>>
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | Effect.Success<Alts[number]>, E | Effect.Error<Alts[number]>, R | Effect.Services<Alts[number]>>
  /**
   * Tries the alternatives on every typed failure; the chain fails as its last alternative does (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, const Alts extends Alternatives>(
    self: Effect.Effect<A, E, R>,
    alternatives: Alts,
    options?: {
      readonly when?: undefined
      readonly catchDefects?: boolean | undefined
      readonly name?: string | undefined
    }
  ): Effect.Effect<A | Effect.Success<Alts[number]>, LastError<Alts>, R | Effect.Services<Alts[number]>>
} = recovering(
  (alternatives: ReadonlyArray<Effect.Effect<unknown, unknown, unknown>>, options?: HandleOptions<unknown>) => {
    const name = options?.name ?? defaultName
    const when = options?.when
    const catchDefects = options?.catchDefects === true
    const last = alternatives.length - 1
    // the continuation after step i runs alternative i, recovered by the next step (built on failure only)
    const step =
      (i: number) =>
      (cause: Cause.Cause<unknown>): Effect.Effect<unknown, unknown, unknown> => {
        const trigger = triggerOf(cause, when, catchDefects)
        const alternative = alternatives[i]
        if (trigger === undefined || alternative === undefined) return Exit.failCause(cause)
        reportUsed(name, trigger, i + 1)
        return i === last ? alternative : Effect.catchCause(alternative, step(i + 1))
      }
    return step(0)
  }
)

// ---------------------------------------------------------------------------
// the stale cache
// ---------------------------------------------------------------------------

/**
 * The last good value of each key, for `orElseCached`: keyed, bounded
 * (least recently used out past `maxKeys`), each value stored with its time.
 *
 * @category models
 * @since 0.1.0
 */
export interface FallbackCache {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly options: ResolvedOptions
  /** `orElseCached` on this cache; see {@link orElseCached}. */
  readonly orElseCached: <A, E, R>(self: Effect.Effect<A, E, R>, options: CachedOptions<E>) => Effect.Effect<A, E, R>
  /** `withStaleness` on this cache; see {@link withStaleness}. */
  readonly withStaleness: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options: CachedOptions<E>
  ) => Effect.Effect<Served<A>, E, R>
  /** The value held for `key` and its age, without marking it as used. */
  readonly get: (key: string) => Effect.Effect<Option.Option<CachedValue>>
  /** Stores `value` for `key` now (warming the cache). */
  readonly set: (key: string, value: unknown) => Effect.Effect<void>
  /** Drops `key`. */
  readonly invalidate: (key: string) => Effect.Effect<void>
  /** What the cache has done, and the keys it holds. */
  readonly stats: Effect.Effect<CacheStats>
  /** A queue of the cache's events (`StaleServed`) from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The cache's events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the cache `orElseCached` uses.
 *
 * @category services
 * @since 0.1.0
 */
export const FallbackCache: Context.Service<FallbackCache, FallbackCache> = Context.Service<FallbackCache>(TypeId)

/**
 * A value held by the cache.
 *
 * @category models
 * @since 0.1.0
 */
export interface CachedValue {
  readonly value: unknown
  readonly age: Duration.Duration
}

/**
 * What a cache has done since it was made.
 *
 * @category models
 * @since 0.1.0
 */
export interface CacheStats {
  /** Keys held now. */
  readonly keys: number
  /** Successes stored. */
  readonly stored: number
  /** Calls answered with a fresh value, without calling (`serveFresh`). */
  readonly fresh: number
  /** Failed calls answered with a stale value. */
  readonly stale: number
  /** Failed calls whose key's value was too old. */
  readonly expired: number
  /** Failed calls whose key had no value. */
  readonly miss: number
  /** Keys dropped to make room (`maxKeys`). */
  readonly evicted: number
}

/**
 * Per-call options of `orElseCached` and `withStaleness`.
 *
 * @category models
 * @since 0.1.0
 */
export interface CachedOptions<E> {
  /** The key the value is stored and looked up under: one type of value per key. */
  readonly key: string
  /** The oldest value this call accepts after a failure (default and upper bound: the cache's `maxStale`). */
  readonly maxStale?: Duration.Input | undefined
  /** How long a stored value is fresh for this call (default: the cache's `ttl`). */
  readonly ttl?: Duration.Input | undefined
  /** Whether a fresh value answers without calling (default: when the `ttl` is above zero). */
  readonly serveFresh?: boolean | undefined
  /** Which typed failures are answered from the cache (default: every one); the others propagate. */
  readonly when?: Predicate.Predicate<E> | undefined
  /** Whether defects are answered from the cache too (default false). Interruption never is. */
  readonly catchDefects?: boolean | undefined
}

/**
 * An answer of `withStaleness`, with where it came from.
 *
 * @category models
 * @since 0.1.0
 */
export interface Served<A> {
  readonly value: A
  /**
   * `call`: the call answered (its value is now stored); `fresh`: a value
   * younger than the `ttl`, the call not made; `stale`: the call failed and
   * the last good value answered.
   */
  readonly source: "call" | "fresh" | "stale"
  /** The value's age when it is a stale answer; none otherwise. */
  readonly stale: Option.Option<Duration.Duration>
}

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/**
 * The cache's options: the source of the type, the rules, `layerConfig` and
 * the generated Defaults table.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description: "Name of the cache: the `resilience.name` metric attribute.",
      default: defaults.name
    })
  ),
  maxKeys: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Keys held at most; storing a new key when full drops the least recently used one.",
      default: defaults.maxKeys
    })
  ),
  ttl: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "How long a stored value is fresh: `orElseCached` answers it without calling (`serveFresh`). 0: never; at most `maxStale`.",
      default: defaults.ttl
    })
  ),
  maxStale: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "The oldest value served when a call fails (a call may ask for less), and how long values are kept; above zero.",
      default: defaults.maxStale
    })
  ),
  sweepInterval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How often the background fiber drops values older than `maxStale`; above zero.",
      default: defaults.sweepInterval
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * Options as `make` takes them: durations as any `Duration.Input`.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly name?: string | undefined
  readonly maxKeys?: number | undefined
  readonly ttl?: Duration.Input | undefined
  readonly maxStale?: Duration.Input | undefined
  readonly sweepInterval?: Duration.Input | undefined
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly name: string
  readonly maxKeys: number
  readonly ttl: Duration.Duration
  readonly maxStale: Duration.Duration
  readonly sweepInterval: Duration.Duration
}

/**
 * Validates cache options: succeeds with them resolved (defaults applied),
 * or fails with one `Options.InvalidOptions` listing every bad field and its
 * value.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(Effect.flip(Fallback.validateOptions({ maxKeys: 0, maxStale: -1 })))
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["maxStale = -1", "maxKeys = 0"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input = {}): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const { issues, normalized } = Options_.normalizeDurations({ ...input }, ["ttl", "maxStale", "sweepInterval"])
  return Effect.map(Options_.validate("Fallback", Options, normalized, rules, issues), resolveOptions)
}

/**
 * The Defaults table of the cache's options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

// ---------------------------------------------------------------------------
// cache constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a fallback cache that lives as long as the scope (its sweep fiber,
 * event streams and metrics end with it). Fails with `Options.InvalidOptions`
 * listing every bad option.
 *
 * **Example** (The last good value after a failure)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const cache = yield* Fallback.make({ maxStale: "5 minutes" })
 *   const first = yield* cache.orElseCached(Effect.succeed(1.0842), { key: "EURUSD" })
 *   const second = yield* cache.orElseCached(Effect.fail("quotes down"), { key: "EURUSD" })
 *   return [first, second]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => [1.0842, 1.0842]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (input?: Input | undefined) => Effect.Effect<FallbackCache, Options_.InvalidOptions, Scope.Scope> =
  Effect.fnUntraced(function* (input?: Input | undefined) {
    const options = yield* validateOptions(input ?? {})
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    const cache = makeCache(options, context)
    // values older than maxStale are dropped by a fiber that lives as long as the cache
    yield* Effect.forkIn(
      Effect.forever(
        Effect.andThen(Effect.sleep(options.sweepInterval), Effect.flatMap(Clock.currentTimeMillis, cache.sweep))
      ),
      scope
    )
    yield* Scope.addFinalizer(scope, cache.close)
    const service: CacheImpl = {
      [TypeId]: TypeId,
      name: options.name,
      options,
      run: cache.run,
      orElseCached: cache.orElseCached,
      withStaleness: cache.withStaleness,
      get: cache.get,
      set: cache.set,
      invalidate: cache.invalidate,
      stats: cache.stats,
      subscribe: cache.subscribe,
      events: cache.events
    }
    return FallbackCache.of(service)
  })

/**
 * Provides `FallbackCache` for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (input?: Input | undefined): Layer.Layer<FallbackCache, Options_.InvalidOptions> =>
  Layer.effect(FallbackCache, make(input))

/**
 * Provides `FallbackCache` with options read from `Config` under `path`
 * (environment variables such as `quotes_maxStale="10 minutes"` with the
 * default provider), every option defaulted and the name defaulting to
 * `path`. Bad values fail with one `Options.InvalidOptions` naming each field
 * and the text it held.
 *
 * **Example** (Options from the environment)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { ConfigProvider, Duration, Effect, Layer } from "effect"
 *
 * const env = ConfigProvider.fromEnv({ env: { quotes_maxKeys: "500", quotes_maxStale: "10 minutes" } })
 * const program = Effect.map(Fallback.FallbackCache, (cache) => [
 *   cache.name,
 *   cache.options.maxKeys,
 *   Duration.toMinutes(cache.options.maxStale)
 * ]).pipe(Effect.provide(Fallback.layerConfig("quotes").pipe(Layer.provide(ConfigProvider.layer(env)))))
 *
 * await Effect.runPromise(program)
 * // => ["quotes", 500, 10]
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (path: string): Layer.Layer<FallbackCache, Options_.InvalidOptions | Config.ConfigError> =>
  Layer.effect(
    FallbackCache,
    Effect.flatMap(Options_.fromConfig("Fallback", Options, path), (options: Options) =>
      make({ name: path, ...options })
    )
  )

// ---------------------------------------------------------------------------
// cache combinators
// ---------------------------------------------------------------------------

/**
 * Keeps the last good value: stores each success of the effect under `key`
 * in the `FallbackCache` of the context and, when the effect fails (the
 * failures `when` accepts; defects with `catchDefects`; never an
 * interruption), answers the value stored last if it is younger than
 * `maxStale`. With no such value the failure propagates, so the error type
 * stays: put `orElse` or `orElseSucceed` after it for a last resort.
 *
 * **When to use**
 *
 * Reads whose last known answer beats no answer: prices, profiles,
 * configuration, feature lists, a search index.
 *
 * **Details**
 *
 * - A value's age counts from when the call that produced it **started**: a
 *   slow call that started before a fresher one completes later without
 *   overwriting it.
 * - With a `ttl` (the cache's or the call's) a value younger than it answers
 *   at once without calling (`serveFresh`, on by default when the `ttl` is
 *   above zero).
 * - A stale answer is a `StaleServed` event (with its `age`) and a span
 *   event; {@link withStaleness} returns it with the answer.
 * - Lookups count in `resilience.fallback.cache.lookups` by outcome
 *   (`fresh`, `stale`, `expired`, `miss`).
 *
 * **Example** (The architecture's quote service)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * let up = true
 * const fetchQuote = (id: string): Effect.Effect<string, string> =>
 *   up ? Effect.succeed(`${id}: 1.0842`) : Effect.fail("quotes down")
 * const getQuote = (id: string) => fetchQuote(id).pipe(Fallback.orElseCached({ key: id, maxStale: "5 minutes" }))
 *
 * const program = Effect.gen(function* () {
 *   yield* getQuote("EURUSD")
 *   up = false
 *   yield* TestClock.adjust("4 minutes")
 *   const stale = yield* getQuote("EURUSD")
 *   yield* TestClock.adjust("2 minutes")
 *   const tooOld = yield* Effect.flip(getQuote("EURUSD"))
 *   return [stale, tooOld]
 * }).pipe(Effect.provide(Fallback.layer({ name: "quotes" })))
 *
 * await Effect.runPromise(program.pipe(Effect.provide(TestClock.layer())))
 * // => ["EURUSD: 1.0842", "quotes down"]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const orElseCached: {
  /**
   * Stores each success and answers the last good value on failure (data-last).
   *
   * @since 0.1.0
   */
  <E>(
    options: CachedOptions<NoInfer<E>>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | FallbackCache>
  /**
   * Stores each success and answers the last good value on failure (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(self: Effect.Effect<A, E, R>, options: CachedOptions<NoInfer<E>>): Effect.Effect<A, E, R | FallbackCache>
} = dualOnEffect(
  <A, E, R>(self: Effect.Effect<A, E, R>, options: CachedOptions<E>): Effect.Effect<A, E, R | FallbackCache> =>
    Effect.withFiber<A, E, R>((fiber) => cacheOf(fiber).run(fiber, self, options, false) as Effect.Effect<A, E, R>)
)

/**
 * `orElseCached` that says where its answer came from: the value with its
 * `source` (`call`, `fresh` or `stale`) and, for a stale answer, its age
 * (`stale: Option<Duration>`), so a caller can mark the answer (a
 * `Warning` header, a "prices may be out of date" banner).
 *
 * **Example** (Telling a stale answer)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Duration, Effect, Option } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const cache = yield* Fallback.make()
 *   const fresh = yield* cache.withStaleness(Effect.succeed(42), { key: "stock:sku-1" })
 *   yield* TestClock.adjust("90 seconds")
 *   const stale = yield* cache.withStaleness(Effect.fail("inventory down"), { key: "stock:sku-1" })
 *   return [fresh.source, stale.source, stale.value, Option.map(stale.stale, Duration.toSeconds)]
 * }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => ["call", "stale", 42, Option.some(90)]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const withStaleness: {
  /**
   * `orElseCached`, answering where the value came from (data-last).
   *
   * @since 0.1.0
   */
  <E>(
    options: CachedOptions<NoInfer<E>>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<Served<A>, E, R | FallbackCache>
  /**
   * `orElseCached`, answering where the value came from (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options: CachedOptions<NoInfer<E>>
  ): Effect.Effect<Served<A>, E, R | FallbackCache>
} = dualOnEffect(
  <A, E, R>(self: Effect.Effect<A, E, R>, options: CachedOptions<E>): Effect.Effect<Served<A>, E, R | FallbackCache> =>
    Effect.withFiber<Served<A>, E, R>(
      (fiber) => cacheOf(fiber).run(fiber, self, options, true) as Effect.Effect<Served<A>, E, R>
    )
)

// ---------------------------------------------------------------------------
// degraded mode
// ---------------------------------------------------------------------------

/**
 * Runtime identifier of `Degradation` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const DegradationTypeId: DegradationTypeId = "~@effect-resilience/core/Fallback/Degradation"

/**
 * Type-level identifier of `Degradation` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type DegradationTypeId = "~@effect-resilience/core/Fallback/Degradation"

/**
 * A degraded-mode switch for one dependency: while it is degraded,
 * `whenDegraded` answers from the fallback without calling the dependency.
 *
 * @category models
 * @since 0.1.0
 */
export interface Degradation {
  readonly [DegradationTypeId]: DegradationTypeId
  readonly name: string
  /** Switches to degraded mode (or changes the reason); a `DegradedModeChanged` event when it changed. */
  readonly degrade: (reason: string) => Effect.Effect<void>
  /** Switches back to normal; a `DegradedModeChanged` event when it was degraded. */
  readonly recover: Effect.Effect<void>
  /** The mode now. */
  readonly state: Effect.Effect<DegradationState>
  /** `whenDegraded` on this switch; see {@link whenDegraded}. */
  readonly whenDegraded: <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    alternative: (reason: string) => Effect.Effect<A2, E2, R2>
  ) => Effect.Effect<A | A2, E | E2, R | R2>
  /** What the switch has done. */
  readonly stats: Effect.Effect<DegradationStats>
  /** A queue of the switch's events (`DegradedModeChanged`, `FallbackUsed`) from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The switch's events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * A degradation's mode.
 *
 * @category models
 * @since 0.1.0
 */
export type DegradationState =
  | { readonly _tag: "Normal" }
  | { readonly _tag: "Degraded"; readonly reason: string; readonly since: DateTime.Utc }

/**
 * What a degradation has done since it was made.
 *
 * @category models
 * @since 0.1.0
 */
export interface DegradationStats {
  readonly degraded: boolean
  /** Switches into degraded mode. */
  readonly degradations: number
  /** Calls answered by the fallback while degraded. */
  readonly fallbacks: number
}

/**
 * Makes a degraded-mode switch (normal at first) that lives as long as the
 * scope (its events and metrics end with it).
 *
 * **Example** (A switch flipped by an operator)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const search = yield* Fallback.makeDegradation({ name: "search" })
 *   let calls = 0
 *   const query = Effect.sync(() => ++calls).pipe(
 *     Effect.as("live results"),
 *     Fallback.whenDegraded(search, () => Effect.succeed("popular results"))
 *   )
 *   const before = yield* query
 *   yield* search.degrade("index rebuild")
 *   const during = yield* query
 *   yield* search.recover
 *   const after = yield* query
 *   return [before, during, after, calls]
 * }).pipe(Effect.scoped)
 *
 * await Effect.runPromise(program)
 * // => ["live results", "popular results", "live results", 2]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeDegradation = (options?: {
  readonly name?: string | undefined
}): Effect.Effect<Degradation, never, Scope.Scope> =>
  Effect.flatMap(Effect.context<never>(), (context) => {
    const name = options?.name ?? defaultName
    return Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => makeSwitch(name, context)),
        ({ close }) => close
      ),
      (degradation): Degradation => ({
        [DegradationTypeId]: DegradationTypeId,
        name,
        degrade: degradation.degrade,
        recover: degradation.recover,
        state: degradation.state,
        whenDegraded: degradation.whenDegraded,
        stats: degradation.stats,
        subscribe: degradation.subscribe,
        events: degradation.events
      })
    )
  })

/**
 * While the switch is degraded, answers with the alternative (given the
 * degradation's reason) without running the effect; otherwise runs the
 * effect as it is. Each degraded answer counts in
 * `resilience.fallback.used` with reason `degraded` and is a `FallbackUsed`
 * event.
 *
 * **Details**
 *
 * - The mode is read when the effect runs, not when it is built.
 * - Pair it with a breaker or a health check that calls `degrade` and
 *   `recover` (see the guide), or flip it by hand during maintenance.
 *
 * @category combinators
 * @since 0.1.0
 */
export const whenDegraded: {
  /**
   * Answers from the alternative while degraded (data-last).
   *
   * @since 0.1.0
   */
  <A2, E2, R2>(
    degradation: Degradation,
    alternative: (reason: string) => Effect.Effect<A2, E2, R2>
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E | E2, R | R2>
  /**
   * Answers from the alternative while degraded (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    degradation: Degradation,
    alternative: (reason: string) => Effect.Effect<A2, E2, R2>
  ): Effect.Effect<A | A2, E | E2, R | R2>
} = dualOnEffect(
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    degradation: Degradation,
    alternative: (reason: string) => Effect.Effect<A2, E2, R2>
  ): Effect.Effect<A | A2, E | E2, R | R2> => degradation.whenDegraded(self, alternative)
)

// ---------------------------------------------------------------------------
// request coalescing
// ---------------------------------------------------------------------------

/**
 * Runtime identifier of `Coalescer` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const CoalescerTypeId: CoalescerTypeId = "~@effect-resilience/core/Fallback/Coalescer"

/**
 * Type-level identifier of `Coalescer` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type CoalescerTypeId = "~@effect-resilience/core/Fallback/Coalescer"

/**
 * Request coalescing (single flight): concurrent calls with the same key
 * share one execution.
 *
 * @category models
 * @since 0.1.0
 */
export interface Coalescer {
  readonly [CoalescerTypeId]: CoalescerTypeId
  readonly name: string
  /** `coalesce` on this coalescer; see {@link coalesce}. */
  readonly coalesce: <A, E, R>(self: Effect.Effect<A, E, R>, options: CoalesceOptions) => Effect.Effect<A, E, R>
  /** Executions in flight now, and what the coalescer has done. */
  readonly stats: Effect.Effect<CoalescerStats>
  /** A queue of the coalescer's events (`Coalesced`) from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  /** The coalescer's events as a stream (each run subscribes). */
  readonly events: Stream.Stream<Event>
}

/**
 * The service tag of the coalescer `coalesce` uses.
 *
 * @category services
 * @since 0.1.0
 */
export const Coalescer: Context.Service<Coalescer, Coalescer> = Context.Service<Coalescer>(CoalescerTypeId)

/**
 * Per-call options of `coalesce`.
 *
 * @category models
 * @since 0.1.0
 */
export interface CoalesceOptions {
  /** Calls with the same key share an execution while it is in flight: one kind of effect per key. */
  readonly key: string
}

/**
 * What a coalescer has done since it was made.
 *
 * @category models
 * @since 0.1.0
 */
export interface CoalescerStats {
  /** Executions in flight now (keys with callers waiting). */
  readonly inFlight: number
  /** Executions started. */
  readonly executions: number
  /** Calls that shared an execution in flight instead of starting one. */
  readonly coalesced: number
}

/**
 * Makes a coalescer that lives as long as the scope (its events and metrics
 * end with it; executions in flight are interrupted).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeCoalescer = (options?: {
  readonly name?: string | undefined
}): Effect.Effect<Coalescer, never, Scope.Scope> =>
  Effect.flatMap(Effect.context<never>(), (context) => {
    const name = options?.name ?? defaultName
    return Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => makeFlights(name, context)),
        ({ close }) => close
      ),
      (flights) => {
        const service: CoalescerImpl = {
          [CoalescerTypeId]: CoalescerTypeId,
          name,
          run: flights.run,
          coalesce: flights.coalesce,
          stats: flights.stats,
          subscribe: flights.subscribe,
          events: flights.events
        }
        return Coalescer.of(service)
      }
    )
  })

/**
 * Provides `Coalescer` for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerCoalescer = (options?: { readonly name?: string | undefined }): Layer.Layer<Coalescer> =>
  Layer.effect(Coalescer, makeCoalescer(options))

/**
 * Shares one execution of the effect among the concurrent calls with the
 * same key (single flight), through the `Coalescer` of the context. The
 * first call starts the execution; the calls that arrive while it runs wait
 * for it; every caller gets its exit (success, failure or defect).
 *
 * **Details**
 *
 * - A caller interrupted while waiting leaves alone: the others still get
 *   the exit. The execution is interrupted when **every** caller waiting for
 *   it has been interrupted.
 * - The execution runs in a fiber of its own, with the context of the call
 *   that started it; one that completes without suspending returns at once.
 * - Nothing is kept once an execution completes: the next call starts a new
 *   one (for a cache of results, put `orElseCached` with a `ttl` outside).
 * - Each call that joins an execution counts in `resilience.fallback.coalesced`
 *   and is a `Coalesced` event.
 *
 * **Example** (Three concurrent calls, one execution)
 *
 * ```ts import.meta.vitest
 * import { Fallback } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * let executions = 0
 * const loadProfile = Effect.sync(() => ++executions).pipe(Effect.delay("10 millis"), Effect.as("profile"))
 * const program = Effect.all(
 *   [1, 2, 3].map(() => loadProfile.pipe(Fallback.coalesce({ key: "user:42" }))),
 *   { concurrency: "unbounded" }
 * ).pipe(Effect.provide(Fallback.layerCoalescer({ name: "profiles" })))
 *
 * await Effect.runPromise(program)
 * // => ["profile", "profile", "profile"]
 * executions
 * // => 1
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const coalesce: {
  /**
   * Shares one execution among concurrent calls of a key (data-last).
   *
   * @since 0.1.0
   */
  (options: CoalesceOptions): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | Coalescer>
  /**
   * Shares one execution among concurrent calls of a key (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(self: Effect.Effect<A, E, R>, options: CoalesceOptions): Effect.Effect<A, E, R | Coalescer>
} = dualOnEffect(
  <A, E, R>(self: Effect.Effect<A, E, R>, options: CoalesceOptions): Effect.Effect<A, E, R | Coalescer> =>
    Effect.withFiber<A, E, R>((fiber) =>
      (Context.getUnsafe(fiber.context, Coalescer) as CoalescerImpl).run(fiber, self, options.key)
    )
)

// ---------------------------------------------------------------------------
// the implementation: internal/fallbackHandler.ts (what falls back and how it
// is reported), fallbackCache.ts, fallbackDegradation.ts, fallbackCoalescer.ts
// ---------------------------------------------------------------------------

const cacheOf = (fiber: Fiber.Fiber<unknown, unknown>): CacheImpl =>
  Context.getUnsafe(fiber.context, FallbackCache) as CacheImpl
