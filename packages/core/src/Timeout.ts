/**
 * Timeouts: per attempt and in total (a deadline), failing with a typed
 * `TimeoutExceeded` that carries the limit, and interrupting the timed-out
 * work instead of leaving it running.
 *
 * **Details**
 *
 * - `Timeout.attempt(d)` bounds one attempt. Inside a `Timeout.deadline`, the
 *   attempt's limit is the smaller of `d` and the time left, and an attempt
 *   whose remaining time is below `minAttemptTime` does not start at all.
 * - `Timeout.deadline(d)` bounds everything inside it, retries and their
 *   waits included: `Retry` stops at once when a wait would end past it.
 * - The timed-out effect is interrupted and awaited before the failure is
 *   returned, so no fiber of it remains.
 * - Under the live clock, every pending deadline shares one process-wide
 *   timer (a heap with lazy cancellation) instead of a `setTimeout` per call;
 *   it keeps the process alive exactly while a timeout is pending, as a
 *   `setTimeout` would. Under another clock (a `TestClock`) the clock's own
 *   `sleep` is used.
 *
 * **Example** (Timing out an attempt)
 *
 * ```ts import.meta.vitest
 * import { Timeout } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.never.pipe(Timeout.attempt(0), Effect.flip)
 * const error = await Effect.runPromise(program)
 * error.reason._tag
 * // => "TimeoutExceeded"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import { MetricRegistry } from "effect/Metric"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as ClockTimer from "./internal/clockTimer.ts"
import { Deadline as DeadlineRef } from "./internal/deadline.ts"
import { dualBy } from "./internal/dual.ts"
import { toMillisOrUndefined } from "./internal/duration.ts"
import * as Hub from "./internal/events.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Options_ from "./Options.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * The enclosing deadline as absolute clock milliseconds (`Infinity` without one).
 *
 * @category models
 * @since 0.1.0
 */
export const Deadline = DeadlineRef

/**
 * The options of `attempt` as a schema: the source of the generated Defaults
 * table.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  minAttemptTime: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        'Inside a deadline, an attempt with at most this much time left fails at once (`kind: "deadline"`) without starting.',
      default: Duration.zero
    })
  )
})

/**
 * The Defaults table of `attempt`'s options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

/**
 * An attempt or a deadline ran out.
 *
 * @category errors
 * @since 0.1.0
 */
export class TimeoutExceeded extends Schema.TaggedError<TimeoutExceeded>(
  "@effect-resilience/core/Timeout/TimeoutExceeded"
)("TimeoutExceeded", {
  /** `attempt`: an attempt timeout; `deadline`: the enclosing deadline (also when an attempt could not start). */
  kind: Schema.Literals(["attempt", "deadline"]),
  /** The limit that ran out. */
  limit: Schema.DurationFromMillis
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Timed out after ${Duration.format(this.limit)}`
  }
}

/**
 * Runtime identifier of `TimeoutError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const ErrorTypeId: ErrorTypeId = "~@effect-resilience/core/Timeout/TimeoutError"

/**
 * Type-level identifier of `TimeoutError`.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type ErrorTypeId = "~@effect-resilience/core/Timeout/TimeoutError"

/**
 * The one error the timeouts add.
 *
 * @category errors
 * @since 0.1.0
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>(ErrorTypeId)("TimeoutError", {
  reason: TimeoutExceeded
}) {
  /**
   * Brand for the `isTimeoutError` guard.
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
 * Whether a value is a `TimeoutError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isTimeoutError = (u: unknown): u is TimeoutError => typeof u === "object" && u !== null && ErrorTypeId in u

const counts = { attempt: 0, deadline: 0 }

/**
 * Timeouts since the process started, by kind (what the
 * `resilience.timeout.timeouts` metric reports).
 *
 * @category models
 * @since 0.1.0
 */
export const stats: Effect.Effect<{ readonly attempt: number; readonly deadline: number }> = Effect.sync(() => ({
  ...counts
}))

// series in the default registry; other registries get them on their first timeout
const registered = new WeakSet<object>()
const register = (context: Context.Context<never>) => {
  const registry = Context.get(context, MetricRegistry)
  if (registered.has(registry)) return
  registered.add(registry)
  const registrar = Metrics.registrar(context)
  for (const kind of ["attempt", "deadline"] as const) {
    registrar.counter(Telemetry.timeout.timeouts, { [Telemetry.attributes.reason]: kind }, () => counts[kind])
  }
}
register(Context.empty())

/**
 * What the timeouts emit: one `TimedOut` per timeout, process-wide.
 *
 * @category models
 * @since 0.1.0
 */
export interface Event {
  readonly _tag: "TimedOut"
  readonly kind: "attempt" | "deadline"
  readonly limit: Duration.Duration
}

const hub = Hub.make<Event>()

/**
 * Subscribes to every timeout in the process for the scope's lifetime.
 *
 * @category models
 * @since 0.1.0
 */
export const subscribe: Effect.Effect<Queue.Dequeue<Event, Cause.Done>, never, Scope.Scope> = hub.subscribe

/**
 * Every timeout in the process, as a stream.
 *
 * @category models
 * @since 0.1.0
 */
export const events: Stream.Stream<Event> = hub.events

/** Bad arguments are a defect listing each one (they come from code, not from input). */
const invalid = (bad: ReadonlyArray<readonly [string, unknown]>): Options_.InvalidOptions =>
  new Options_.InvalidOptions({
    pattern: "Timeout",
    issues: bad.map(
      ([path, value]) =>
        new Options_.Issue({ path, value: Options_.renderValue(value), message: "Expected a duration" })
    )
  })

const timeoutError = (kind: "attempt" | "deadline", limitMillis: number) => {
  counts[kind]++
  if (hub.listening()) hub.emit({ _tag: "TimedOut", kind, limit: Duration.millis(Math.max(0, limitMillis)) })
  const fiber = Fiber.getCurrent()
  if (fiber !== undefined) register(fiber.context)
  return new TimeoutError({ reason: new TimeoutExceeded({ kind, limit: Duration.millis(Math.max(0, limitMillis)) }) })
}

/**
 * Runs `self` in a child fiber and waits for it or for `limitMillis`,
 * whichever comes first; on timeout the child is interrupted and awaited.
 * `context` is the caller's: the child runs with it.
 */
const race = <A, E, R>(
  context: Context.Context<R>,
  self: Effect.Effect<A, E, R>,
  limitMillis: number,
  kind: "attempt" | "deadline",
  reportedLimit: number
): Effect.Effect<A, E | TimeoutError, R> => {
  if (limitMillis <= 0) return Effect.fail(timeoutError(kind, reportedLimit))
  // The child runs synchronously until it first suspends; one that never
  // does completes here, before any timer is armed. It is not linked to the
  // parent as a forkChild child is (that bookkeeping costs more than the
  // rest of the timeout): the parent interrupts it itself when interrupted.
  const child = Effect.runForkWith(context)(self)
  const done = child.pollUnsafe()
  if (done !== undefined) return done
  const clock = Context.get(context, Clock.Clock)
  return Effect.onInterrupt(
    Effect.callback<A, E | TimeoutError>((resume) => {
      let timedOut = false
      const fire = () => {
        timedOut = true
        child.interruptUnsafe()
      }
      const cancel = ClockTimer.schedule(context, clock, limitMillis, fire)
      child.addObserver((exit) => {
        cancel()
        resume(timedOut && Exit.hasInterrupts(exit) ? Exit.fail(timeoutError(kind, reportedLimit)) : exit)
      })
    }),
    () => Fiber.interrupt(child)
  )
}

/**
 * Bounds one attempt. Inside a `deadline`, the limit is the smaller of
 * `duration` and the time left, and an attempt with less than
 * `minAttemptTime` left fails at once without starting.
 *
 * @category combinators
 * @since 0.1.0
 */
export const attempt: {
  /**
   * Bounds one attempt (data-last).
   *
   * @since 0.1.0
   */
  (
    duration: Duration.Input,
    options?: { readonly minAttemptTime?: Duration.Input | undefined } | undefined
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  /**
   * Bounds one attempt (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.Input,
    options?: { readonly minAttemptTime?: Duration.Input | undefined } | undefined
  ): Effect.Effect<A, E | TimeoutError, R>
} = dualBy(
  Effect.isEffect,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.Input,
    options?: { readonly minAttemptTime?: Duration.Input | undefined } | undefined
  ): Effect.Effect<A, E | TimeoutError, R> => {
    const limit = toMillisOrUndefined(duration)
    const floor = options?.minAttemptTime === undefined ? 0 : toMillisOrUndefined(options.minAttemptTime)
    if (limit === undefined || floor === undefined) {
      return Effect.die(
        invalid([
          ...(limit === undefined ? [["duration", duration] as const] : []),
          ...(floor === undefined ? [["minAttemptTime", options?.minAttemptTime] as const] : [])
        ])
      )
    }
    return Effect.contextWith((context: Context.Context<R>) => {
      const deadline = Context.get(context, DeadlineRef)
      if (deadline === Number.POSITIVE_INFINITY) return race(context, self, limit, "attempt", limit)
      const left = deadline - Context.get(context, Clock.Clock).currentTimeMillisUnsafe()
      if (left <= floor) return Effect.fail(timeoutError("deadline", Math.max(0, left)))
      return left < limit ? race(context, self, left, "deadline", left) : race(context, self, limit, "attempt", limit)
    })
  }
)

/**
 * Bounds everything inside it, retries and their waits included; inner
 * attempt timeouts and retries read the deadline and never outlive it.
 *
 * **Example** (A deadline around retries)
 *
 * ```ts import.meta.vitest
 * import { Retry, Timeout } from "@effect-resilience/core"
 * import { Clock, Effect, Fiber } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const fiber = yield* Effect.fail("unavailable").pipe(
 *     Retry.retry(Retry.constant({ delay: "1 second", maxAttempts: 100 })),
 *     Timeout.deadline("3500 millis"),
 *     Effect.flip,
 *     Effect.forkChild
 *   )
 *   yield* TestClock.adjust("4 seconds")
 *   const error = yield* Fiber.join(fiber)
 *   return [error, yield* Clock.currentTimeMillis]
 * })
 * // the wait that would end past the deadline is not started: the last error is returned at once (at 3 s)
 * await Effect.runPromise(program.pipe(Effect.provide(TestClock.layer())))
 * // => ["unavailable", 4000]
 * ```
 *
 * @category combinators
 * @since 0.1.0
 */
export const deadline: {
  /**
   * Bounds everything inside it (data-last).
   *
   * @since 0.1.0
   */
  (duration: Duration.Input): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  /**
   * Bounds everything inside it (data-first).
   *
   * @since 0.1.0
   */
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.Input): Effect.Effect<A, E | TimeoutError, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.Input): Effect.Effect<A, E | TimeoutError, R> => {
    const limit = toMillisOrUndefined(duration)
    if (limit === undefined) return Effect.die(invalid([["duration", duration]]))
    return Effect.contextWith((context: Context.Context<R>) => {
      const now = Context.get(context, Clock.Clock).currentTimeMillisUnsafe()
      const at = Math.min(Context.get(context, DeadlineRef), now + limit)
      return race(context, Effect.provideService(self, DeadlineRef, at), at - now, "deadline", limit)
    })
  }
)
