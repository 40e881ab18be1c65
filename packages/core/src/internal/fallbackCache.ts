/**
 * The stale cache behind `Fallback.make`: each call's frame (stores a
 * success stamped with when its call started, answers a failure from the
 * last good value), fresh reads under a `ttl`, the counters, events and
 * metrics. The bookkeeping itself (LRU, ages, sweep) is `internal/fallback.ts`.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type { CachedOptions, Event, FallbackCache, ResolvedOptions, Served, TypeId } from "../Fallback.ts"
import * as Options_ from "../Options.ts"
import * as Telemetry from "../Telemetry.ts"
import * as DurationInput from "./duration.ts"
import * as Hub from "./events.ts"
import * as engine from "./fallback.ts"
import { processHub, spanEvent, type Trigger, triggerOf } from "./fallbackHandler.ts"
import * as Frame from "./frame.ts"
import * as Metrics from "./metrics.ts"

/** The cache as the combinators run it. */
export interface CacheImpl extends FallbackCache {
  readonly run: <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    options: CachedOptions<E>,
    served: boolean
  ) => Effect.Effect<unknown, E, R>
}

const noStaleness: Option.Option<Duration.Duration> = Option.none()

const invalidDuration = (field: string, value: unknown): RangeError =>
  new RangeError(`Fallback: a call's ${field} must be a non-negative duration, got ${Options_.renderValue(value)}`)

interface CacheCounters {
  stored: number
  fresh: number
  stale: number
  expired: number
  miss: number
}

/**
 * Stores a call's success (stamped with when the call started), or answers
 * its failure from the cache: the call's one allocation, with what its
 * failure needs.
 */
class CachedCall<A, E> extends Frame.Frame<A, E> {
  readonly owner: CacheState
  readonly call: CachedOptions<E>
  readonly start: number
  /** The oldest value the call accepts, in milliseconds (at most the cache's `maxStale`). */
  readonly maxStale: number
  readonly served: boolean
  constructor(owner: CacheState, call: CachedOptions<E>, start: number, maxStale: number, served: boolean) {
    super()
    this.owner = owner
    this.call = call
    this.start = start
    this.maxStale = maxStale
    this.served = served
  }
  onSuccess(value: A, _fiber: Fiber.Fiber<unknown, unknown>, exit: Exit.Exit<A, E> | undefined): Exit.Exit<A, E> {
    const owner = this.owner
    if (engine.store(owner.cache, this.call.key, value, this.start)) owner.counters.stored++
    if (this.served) return Exit.succeed({ value, source: "call", stale: noStaleness } as Served<A>) as never
    return Frame.succeeded(value, exit)
  }
  onFailure(cause: Cause.Cause<E>, fiber: Fiber.Fiber<unknown, unknown>, exit: Exit.Exit<A, E> | undefined) {
    const { call, maxStale, owner } = this
    const trigger = triggerOf(cause, call.when, call.catchDefects === true)
    if (trigger === undefined) return Frame.failed(cause, exit)
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    const found = engine.readStale(owner.cache, call.key, now, maxStale, owner.retention)
    if (found._tag !== "Stale") {
      if (found._tag === "Expired") owner.counters.expired++
      else owner.counters.miss++
      return Frame.failed(cause, exit)
    }
    owner.counters.stale++
    const age = Duration.millis(found.age)
    owner.staleServed(fiber, call.key, maxStale, age, trigger)
    const value = found.entry.value as A
    if (this.served) return Exit.succeed({ value, source: "stale", stale: Option.some(age) } as Served<A>) as never
    return Exit.succeed(value)
  }
}

interface CacheState {
  readonly cache: engine.Cache<unknown>
  readonly counters: CacheCounters
  /** The cache's `maxStale`, in milliseconds: how long values are kept, and the most any call may accept. */
  readonly retention: number
  readonly staleServed: (
    fiber: Fiber.Fiber<unknown, unknown>,
    key: string,
    maxStale: number,
    age: Duration.Duration,
    trigger: Trigger
  ) => void
}

/**
 * A cache's operations (`Fallback.make` adds its identity); `sweep` drops
 * values older than `maxStale`, `close` ends its event streams and
 * unregisters its metrics.
 */
export interface Cache extends Omit<CacheImpl, TypeId | "name" | "options"> {
  readonly sweep: (now: number) => Effect.Effect<void>
  readonly close: Effect.Effect<void>
}

/** The cache itself, but for its identity. */
export const makeCache = (options: ResolvedOptions, context: Context.Context<never>): Cache => {
  const { name } = options
  const ttl = Duration.toMillis(options.ttl)
  const retention = Duration.toMillis(options.maxStale)
  const hub = Hub.make<Event>()
  const state: CacheState = {
    cache: engine.make<unknown>(options.maxKeys),
    counters: { stored: 0, fresh: 0, stale: 0, expired: 0, miss: 0 },
    retention,
    staleServed: (fiber, key, maxStale, age, trigger) => {
      spanEvent(fiber, "StaleServed", {
        [Telemetry.attributes.name]: name,
        [Telemetry.attributes.reason]: trigger.reason
      })
      if (hub.listening() || processHub.listening()) {
        const event: Event = {
          _tag: "StaleServed",
          name,
          key,
          age,
          maxStale: Duration.millis(maxStale),
          reason: trigger.reason
        }
        hub.emit(event)
        processHub.emit(event)
      }
    }
  }
  const { cache, counters } = state

  const run = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    call: CachedOptions<E>,
    served: boolean
  ): Effect.Effect<unknown, E, R> => {
    // a bad per-call duration is a defect (it comes from code), the call not run
    let callTtl = ttl
    if (call.ttl !== undefined) {
      const millis = DurationInput.toMillisOrUndefined(call.ttl)
      if (millis === undefined || millis < 0) return Effect.die(invalidDuration("ttl", call.ttl))
      callTtl = millis
    }
    let maxStale = retention
    if (call.maxStale !== undefined) {
      const millis = DurationInput.toMillisOrUndefined(call.maxStale)
      if (millis === undefined || millis < 0) return Effect.die(invalidDuration("maxStale", call.maxStale))
      maxStale = Math.min(millis, retention)
    }
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    if (callTtl > 0 && call.serveFresh !== false) {
      const entry = engine.readFresh(cache, call.key, now, callTtl)
      if (entry !== undefined) {
        counters.fresh++
        return Exit.succeed(served ? { value: entry.value, source: "fresh", stale: noStaleness } : entry.value)
      }
    }
    return Frame.within(fiber, self, new CachedCall<A, E>(state, call, now, maxStale, served))
  }

  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  const spec = Telemetry.fallback
  for (const outcome of ["fresh", "stale", "expired", "miss"] as const) {
    registrar.counter(spec.cacheLookups, { ...base, [Telemetry.attributes.outcome]: outcome }, () => counters[outcome])
  }
  registrar.gauge(spec.cacheKeys, base, () => cache.entries.size)

  return {
    run,
    orElseCached: <A, E, R>(self: Effect.Effect<A, E, R>, call: CachedOptions<E>) =>
      Effect.withFiber((fiber) => run(fiber, self, call, false) as Effect.Effect<A, E, R>),
    withStaleness: <A, E, R>(self: Effect.Effect<A, E, R>, call: CachedOptions<E>) =>
      Effect.withFiber((fiber) => run(fiber, self, call, true) as Effect.Effect<Served<A>, E, R>),
    get: (key) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const entry = cache.entries.get(key)
        return entry === undefined
          ? Option.none()
          : Option.some({ value: entry.value, age: Duration.millis(engine.ageOf(entry, now)) })
      }),
    set: (key, value) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (engine.store(cache, key, value, now)) counters.stored++
      }),
    invalidate: (key) =>
      Effect.sync(() => {
        engine.remove(cache, key)
      }),
    stats: Effect.sync(() => ({ keys: cache.entries.size, ...counters, evicted: cache.evicted })),
    subscribe: hub.subscribe,
    events: hub.events,
    sweep: (now) =>
      Effect.sync(() => {
        engine.sweep(cache, now, retention)
      }),
    close: Effect.andThen(
      hub.end,
      Effect.sync(() => registrar.removeAll())
    )
  }
}
