/**
 * Hedged requests: when the first attempt is slow, start another; the first
 * success wins and the others are interrupted.
 *
 * A hedge trades a little extra load for a shorter tail: with the delay at
 * the observed p95 latency, at most about 5% of calls send a second attempt,
 * and those calls no longer wait for the slow 5%.
 *
 * **Details**
 *
 * - `delay` is fixed, or adaptive: the given percentile of recent successful
 *   latencies (with an `initial` delay until enough samples are seen, and a
 *   `minDelay` floor). A zero delay is refused: it would double every call.
 * - Up to `maxHedges` further attempts start, one per delay. An attempt that
 *   fails while no other is running starts the next one at once.
 * - The first success wins; the other attempts are interrupted and awaited.
 *   When every attempt fails, the last failure is returned.
 * - With `budget`, each hedged call records one request in that retry
 *   policy's budget (none inside a `Retry.retry` of the same policy and key,
 *   which has recorded it) and each hedge spends one retry from it, so hedges
 *   and retries share it; a refused hedge is not started. The per-call `key`
 *   option picks the budget's key, as `Retry.retry`'s does.
 * - Metrics `resilience.hedge.started`, `…won`, `…refused`.
 *
 * **Example** (Hedging a slow call)
 *
 * ```ts import.meta.vitest
 * import { Hedge } from "@effect-resilience/core"
 * import { Effect, Fiber } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * let calls = 0
 * // the first attempt takes 1 s, the hedge 10 ms
 * const call = Effect.suspend(() => Effect.as(Effect.sleep(++calls === 1 ? "1 second" : "10 millis"), `attempt ${calls}`))
 *
 * const program = Effect.gen(function* () {
 *   const fiber = yield* call.pipe(Hedge.hedge(Hedge.make({ delay: "100 millis" })), Effect.forkChild)
 *   yield* TestClock.adjust("110 millis")
 *   return yield* Fiber.join(fiber)
 * })
 * await Effect.runPromise(program.pipe(Effect.provide(TestClock.layer())))
 * // => "attempt 2"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { MetricRegistry } from "effect/Metric"
import * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as ClockTimer from "./internal/clockTimer.ts"
import { dualBy } from "./internal/dual.ts"
import * as Hub from "./internal/events.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Select from "./internal/select.ts"
import * as Options_ from "./Options.ts"
import * as Retry from "./Retry.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * Runtime identifier of hedging policies.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/core/Hedge"

/**
 * Type-level identifier of hedging policies.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/core/Hedge"

/**
 * An adaptive delay: a percentile of recent successful latencies.
 *
 * @category models
 * @since 0.1.0
 */
export interface AdaptiveDelay {
  /** The percentile, in (0, 1): 0.95 hedges the slowest ~5%. */
  readonly percentile: number
  /** The delay until `minSamples` latencies are known. */
  readonly initial: Duration.Input
  /** Latencies needed before the percentile is used (default 20). */
  readonly minSamples?: number | undefined
  /** The smallest delay the percentile may give (default 1 ms). */
  readonly minDelay?: Duration.Input | undefined
}

/**
 * Options of a hedging policy.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly name?: string | undefined
  /** Fixed (greater than zero) or adaptive. */
  readonly delay: Duration.Input | AdaptiveDelay
  /** Further attempts at most (default 1). */
  readonly maxHedges?: number | undefined
  /** A retry policy whose budget hedged calls record their requests in and hedges spend. */
  readonly budget?: Retry.Policy | undefined
}

/**
 * What a hedging policy emits.
 *
 * @category models
 * @since 0.1.0
 */
export type Event =
  | {
      readonly _tag: "HedgeStarted"
      readonly policy: string
      readonly attempt: number
      readonly delay: Duration.Duration
    }
  | { readonly _tag: "HedgeWon"; readonly policy: string; readonly attempt: number }
  | { readonly _tag: "HedgeRefused"; readonly policy: string }

/**
 * The options as a schema: the source of the generated Defaults table
 * (`make` checks the same rules and lists every bad field).
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({ description: "The metrics' `resilience.name`.", default: "default" })
  ),
  delay: Schema.Union([
    Schema.DurationFromString,
    Schema.Struct({
      percentile: Schema.Number.check(
        Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMinimum: true, exclusiveMaximum: true })
      ),
      initial: Schema.DurationFromString,
      minSamples: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
      minDelay: Schema.optionalKey(Schema.DurationFromString)
    })
  ]).annotate({
    description:
      "Fixed (greater than zero: a zero delay would double every call), or adaptive: `{ percentile, initial, minSamples = 20, minDelay = 1 ms }`."
  }),
  maxHedges: Schema.optionalKey(
    Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)).annotate({
      description: "Further attempts at most.",
      default: 1
    })
  )
})

/**
 * The Defaults table of the options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

/**
 * A hedging policy with its latency samples and counters.
 *
 * @category models
 * @since 0.1.0
 */
export interface Policy {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly maxHedges: number
  /** The delay the next call would use, in milliseconds. */
  readonly currentDelayMillis: () => number
  /** `HedgeStarted` for every hedged attempt started, `HedgeWon` when one wins, `HedgeRefused` when the budget says no. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<Event>
  readonly stats: Effect.Effect<{
    readonly calls: number
    readonly started: number
    readonly won: number
    readonly refused: number
  }>
  /** Options that failed validation: applying the policy dies with this error. */
  readonly invalid: Options_.InvalidOptions | undefined
}

interface Internal {
  readonly fixedMillis: number | undefined
  readonly adaptive:
    | {
        readonly percentile: number
        readonly initialMillis: number
        readonly minSamples: number
        readonly minMillis: number
      }
    | undefined
  readonly samples: Float64Array
  /** Working space of the percentile's selection. */
  readonly scratch: Float64Array
  count: number
  cachedMillis: number
  calls: number
  started: number
  won: number
  refused: number
  readonly budget: Retry.Policy | undefined
  readonly registered: WeakSet<object>
  readonly hub: Hub.Hub<Event>
}

const internals = new WeakMap<Policy, Internal>()
const sampleCapacity = 512

const isAdaptive = (delay: Duration.Input | AdaptiveDelay): delay is AdaptiveDelay =>
  typeof delay === "object" && delay !== null && "percentile" in delay

const millisOf = (input: Duration.Input): number | undefined => {
  const duration = Duration.fromInput(input)
  return Option.isSome(duration) ? Duration.toMillis(duration.value) : undefined
}

/**
 * Makes a hedging policy. Invalid options (a zero or negative delay, a
 * percentile outside (0, 1), `maxHedges` below 1) make a policy whose use
 * dies with `Options.InvalidOptions` listing them.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (input: Input): Policy => {
  const issues: Array<Options_.Issue> = []
  const issue = (path: string, value: unknown, message: string) =>
    issues.push(new Options_.Issue({ path, value: Options_.renderValue(value), message }))
  const maxHedges = input.maxHedges ?? 1
  if (!Number.isInteger(maxHedges) || maxHedges < 1) issue("maxHedges", maxHedges, "Expected an integer of at least 1")
  let fixedMillis: number | undefined
  let adaptive: Internal["adaptive"]
  if (isAdaptive(input.delay)) {
    const d = input.delay
    if (!(d.percentile > 0 && d.percentile < 1)) issue("delay.percentile", d.percentile, "Expected a number in (0, 1)")
    const initialMillis = millisOf(d.initial)
    if (initialMillis === undefined || initialMillis <= 0)
      issue("delay.initial", d.initial, "Expected a duration greater than zero")
    const minMillis = d.minDelay === undefined ? 1 : millisOf(d.minDelay)
    if (minMillis === undefined || minMillis <= 0)
      issue("delay.minDelay", d.minDelay, "Expected a duration greater than zero")
    const minSamples = d.minSamples ?? 20
    if (!Number.isInteger(minSamples) || minSamples < 1)
      issue("delay.minSamples", minSamples, "Expected an integer of at least 1")
    adaptive = { percentile: d.percentile, initialMillis: initialMillis ?? 1, minSamples, minMillis: minMillis ?? 1 }
  } else {
    fixedMillis = millisOf(input.delay)
    if (fixedMillis === undefined || fixedMillis <= 0) {
      issue("delay", input.delay, "Expected a duration greater than zero (a zero delay would double every call)")
    }
  }
  const internal: Internal = {
    fixedMillis,
    adaptive,
    samples: new Float64Array(sampleCapacity),
    scratch: new Float64Array(sampleCapacity),
    count: 0,
    cachedMillis: adaptive?.initialMillis ?? fixedMillis ?? 1,
    calls: 0,
    started: 0,
    won: 0,
    refused: 0,
    budget: input.budget,
    registered: new WeakSet(),
    hub: Hub.make<Event>()
  }
  const policy: Policy = {
    [TypeId]: TypeId,
    name: input.name ?? "default",
    maxHedges,
    currentDelayMillis: () => internal.cachedMillis,
    subscribe: internal.hub.subscribe,
    events: internal.hub.events,
    stats: Effect.sync(() => ({
      calls: internal.calls,
      started: internal.started,
      won: internal.won,
      refused: internal.refused
    })),
    invalid: issues.length === 0 ? undefined : new Options_.InvalidOptions({ pattern: "Hedge", issues })
  }
  internals.set(policy, internal)
  return policy
}

const emit = (internal: Internal, event: Event) => {
  internal.hub.emit(event)
}

/** Records a winning latency; recomputes the percentile every 16 samples. */
const sample = (internal: Internal, millis: number) => {
  const adaptive = internal.adaptive
  if (adaptive === undefined) return
  internal.samples[internal.count % sampleCapacity] = millis
  internal.count++
  if (internal.count < adaptive.minSamples || internal.count % 16 !== 0) return
  const n = Math.min(internal.count, sampleCapacity)
  const rank = Select.kthSmallest(internal.samples, n, Math.ceil(adaptive.percentile * n) - 1, internal.scratch)
  internal.cachedMillis = Math.max(adaptive.minMillis, Number.isNaN(rank) ? adaptive.initialMillis : rank)
}

const registerIn = (policy: Policy, internal: Internal, context: Context.Context<never>) => {
  const registry = Context.get(context, MetricRegistry)
  if (internal.registered.has(registry)) return
  internal.registered.add(registry)
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: policy.name }
  registrar.counter(Telemetry.hedge.started, base, () => internal.started)
  registrar.counter(Telemetry.hedge.won, base, () => internal.won)
  registrar.counter(Telemetry.hedge.refused, base, () => internal.refused)
}

/**
 * Per-call options of `hedge`.
 *
 * @category models
 * @since 0.1.0
 */
export interface HedgeOptions {
  /**
   * The key of the `budget` this call records its request under and its
   * hedges withdraw from (default: the budget policy's name), as
   * `Retry.retry`'s `key`: pass the same key to both when they share a budget.
   */
  readonly key?: string | undefined
}

/**
 * Hedges an effect: if it has not succeeded after the delay, a further
 * attempt starts, up to `maxHedges`; the first success wins and the rest are
 * interrupted. Adds no error: when every attempt fails, the last failure is
 * returned.
 *
 * With a `budget`, the call records one request in it (`Retry.recordRequest`:
 * nothing when a `Retry.retry` of the same policy and key around it has
 * recorded the call already) and each hedge withdraws one retry, under
 * `options.key`.
 *
 * @category combinators
 * @since 0.1.0
 */
export const hedge: {
  /**
   * Hedges an effect (data-last).
   *
   * @since 0.1.0
   */
  (
    policy: Policy,
    options?: HedgeOptions | undefined
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Hedges an effect (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy, options?: HedgeOptions | undefined): Effect.Effect<A, E, R>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    policy: Policy,
    options?: HedgeOptions | undefined
  ): Effect.Effect<A, E, R> => {
    const internal = internals.get(policy)
    if (policy.invalid !== undefined || internal === undefined) {
      return Effect.die(policy.invalid ?? new Error("Hedge.hedge: not a policy made by this module"))
    }
    const key = options?.key
    const budget = internal.budget
    const run = Effect.contextWith((context: Context.Context<R>) => {
      registerIn(policy, internal, context)
      internal.calls++
      return hedged(policy, internal, context, self, key)
    })
    return budget === undefined ? run : Effect.andThen(Retry.recordRequest(budget, key), run)
  }
)

/**
 * One hedged call. The first attempt runs in a child fiber of its own (not
 * linked to the caller: the caller interrupts it itself, as `Timeout` does);
 * one that completes before it first suspends answers at once, with no timer
 * armed. Otherwise one `Effect.callback` waits for the attempts' ends and
 * the hedge timer (a shared timer on the live clock, the clock's `sleep`
 * otherwise), and starts further attempts from them: no queue, no fiber
 * per wait.
 */
const hedged = <A, E, R>(
  policy: Policy,
  internal: Internal,
  context: Context.Context<R>,
  self: Effect.Effect<A, E, R>,
  key: string | undefined
): Effect.Effect<A, E, R> => {
  const clock = Context.get(context, Clock.Clock)
  const adaptive = internal.adaptive !== undefined
  const startedAt = adaptive ? clock.currentTimeMillisUnsafe() : 0
  const first = Effect.runForkWith(context)(self)
  const done = first.pollUnsafe()
  if (done !== undefined && Exit.isSuccess(done)) {
    if (adaptive) sample(internal, clock.currentTimeMillisUnsafe() - startedAt)
    return done
  }
  const delayMillis = internal.cachedMillis
  const delay = Duration.millis(delayMillis)
  const fibers = new Set<Fiber.Fiber<A, E>>()
  return Effect.callback<A, E, R>((resume) => {
    let started = 1
    /** A hedge was just refused: wait for an attempt to end before asking the budget again. */
    let refused = false
    let last: Exit.Exit<A, E> | undefined
    let result: Exit.Exit<A, E> | undefined
    let cancelTimer: (() => void) | undefined

    /** Ends the call with `exit` once every other attempt is interrupted and has ended. */
    const finish = (exit: Exit.Exit<A, E>) => {
      result = exit
      cancelTimer?.()
      cancelTimer = undefined
      if (fibers.size === 0) return resume(exit)
      for (const fiber of fibers) fiber.interruptUnsafe()
    }

    const watch = (fiber: Fiber.Fiber<A, E>, attempt: number, at: number) => {
      fibers.add(fiber)
      fiber.addObserver((exit) => {
        fibers.delete(fiber)
        if (result !== undefined) {
          if (fibers.size === 0) resume(result)
          return
        }
        ended(attempt, exit, at)
      })
    }

    /** Starts the next attempt; whether it is still running (one that ended at once was handled by `ended`). */
    const launch = (): boolean => {
      const attempt = ++started
      const at = adaptive ? clock.currentTimeMillisUnsafe() : 0
      const fiber = Effect.runForkWith(context)(self)
      watch(fiber, attempt, at)
      return fibers.has(fiber)
    }

    /** The delay passed with no success (or nothing is running): hedge, if the budget allows. */
    const hedge = () => {
      cancelTimer = undefined
      const allowed =
        internal.budget === undefined || Effect.runSyncWith(context)(Retry.tryWithdraw(internal.budget, key))
      if (allowed) {
        internal.started++
        emit(internal, { _tag: "HedgeStarted", policy: policy.name, attempt: started + 1, delay })
        if (launch() && result === undefined) wait()
        return
      }
      internal.refused++
      emit(internal, { _tag: "HedgeRefused", policy: policy.name })
      if (fibers.size === 0) return finish(last ?? Exit.failCause(Cause.empty))
      refused = true
    }

    /** Arms the hedge timer, hedges at once with nothing running, or waits for an end. */
    const wait = () => {
      if (refused || started > policy.maxHedges) return
      if (fibers.size === 0) return hedge()
      cancelTimer = ClockTimer.schedule(context, clock, delayMillis, hedge)
    }

    /** Every attempt's end, whether or not a hedge was refused before it. */
    const ended = (attempt: number, exit: Exit.Exit<A, E>, at: number) => {
      cancelTimer?.()
      cancelTimer = undefined
      const afterRefusal = refused
      refused = false
      last = exit
      if (Exit.isSuccess(exit)) {
        if (attempt > 1) {
          internal.won++
          emit(internal, { _tag: "HedgeWon", policy: policy.name, attempt })
        }
        if (adaptive) sample(internal, clock.currentTimeMillisUnsafe() - at)
        return finish(exit)
      }
      // nothing left running: the budget refused the next attempt already, or there is none to start
      if (fibers.size === 0 && (afterRefusal || started > policy.maxHedges)) return finish(exit)
      wait()
    }

    if (done === undefined) {
      watch(first, 1, startedAt)
      wait()
    } else {
      last = done
      wait()
    }
    return Effect.suspend(() => {
      cancelTimer?.()
      cancelTimer = undefined
      result ??= Exit.failCause(Cause.empty)
      return fibers.size === 0 ? Effect.void : Fiber.interruptAll(fibers)
    })
  })
}
