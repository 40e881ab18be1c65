/**
 * What falls back and how it is reported, for `Fallback`'s combinators and
 * instances: the process-wide event hub, the classification of a failed
 * call's cause (`triggerOf`), the process-wide `resilience.fallback.used`
 * counts of the combinators, span events, and the builders of the dual
 * combinators (one failure continuation built when the data-last form is
 * applied, no `arguments` object).
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import type * as Predicate from "effect/Predicate"
import * as Tracer from "effect/Tracer"
import type { Event, HandleOptions } from "../Fallback.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Hub from "./events.ts"
import * as Metrics from "./metrics.ts"

/** Every fallback event of the process (`Fallback.events`); each instance has a hub of its own as well. */
export const processHub = Hub.make<Event>()

/** The `name` of a combinator or instance given none. */
export const defaultName = "default"

/** Process-wide counts of the combinators' fallbacks, by name. */
interface UsedCounters {
  failure: number
  defect: number
}

const usedByName = new Map<string, UsedCounters>()
const usedRegistered = new WeakMap<object, Set<string>>()

/** Registers a name's series in the fiber's metric registry, once per registry. */
const registerUsed = (name: string, counters: UsedCounters, fiber: Fiber.Fiber<unknown, unknown>): void => {
  const registry: object = fiber.getRef(Metric.MetricRegistry)
  let names = usedRegistered.get(registry)
  if (names === undefined) {
    names = new Set()
    usedRegistered.set(registry, names)
  }
  if (names.has(name)) return
  names.add(name)
  const registrar = Metrics.registrar(fiber.context)
  for (const reason of ["failure", "defect"] as const) {
    registrar.counter(
      Telemetry.fallback.used,
      { [Telemetry.attributes.name]: name, [Telemetry.attributes.reason]: reason },
      () => counters[reason]
    )
  }
}

/** Adds an event to the fiber's current span, if it has one. */
export const spanEvent = (
  fiber: Fiber.Fiber<unknown, unknown>,
  event: string,
  attributes: Record<string, unknown>
): void => {
  const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
  if (span === undefined || span._tag !== "Span") return
  span.event(event, fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
}

/** What made a call fall back; undefined when its failure propagates. */
export interface Trigger {
  readonly reason: "failure" | "defect"
  readonly error: unknown
}

/**
 * Whether a failed call falls back: never when interrupted; for a defect
 * only with `catchDefects`; for a typed failure when `when` accepts it.
 */
export const triggerOf = <E>(
  cause: Cause.Cause<E>,
  when: Predicate.Predicate<E> | undefined,
  catchDefects: boolean
): Trigger | undefined => {
  let fail: Cause.Fail<E> | undefined
  let die: Cause.Die | undefined
  for (const reason of cause.reasons) {
    if (reason._tag === "Interrupt") return undefined
    if (reason._tag === "Fail") fail ??= reason
    else die ??= reason
  }
  if (die !== undefined) return catchDefects ? { reason: "defect", error: die.defect } : undefined
  if (fail === undefined) return undefined
  return when === undefined || when(fail.error) ? { reason: "failure", error: fail.error } : undefined
}

/** Counts and reports a combinator's fallback (on the fallback path only). */
export const reportUsed = (name: string, trigger: Trigger, alternative: number): void => {
  let counters = usedByName.get(name)
  if (counters === undefined) {
    counters = { failure: 0, defect: 0 }
    usedByName.set(name, counters)
  }
  counters[trigger.reason]++
  const fiber = Fiber.getCurrent()
  if (fiber !== undefined) {
    registerUsed(name, counters, fiber)
    spanEvent(fiber, "FallbackUsed", {
      [Telemetry.attributes.name]: name,
      [Telemetry.attributes.reason]: trigger.reason
    })
  }
  if (processHub.listening()) {
    processHub.emit({ _tag: "FallbackUsed", name, reason: trigger.reason, alternative, error: trigger.error })
  }
}

/** The combinators' fallbacks under `name` since the process started. */
export const usedCounts = (name: string): { readonly failure: number; readonly defect: number } => {
  const counters = usedByName.get(name)
  return { failure: counters?.failure ?? 0, defect: counters?.defect ?? 0 }
}

/** The failure continuation of `orElse` and `orElseSucceed`. */
export const handler = <E, A2, E2, R2>(
  alternative: (error: unknown) => Effect.Effect<A2, E2, R2>,
  options: HandleOptions<E> | undefined
): ((cause: Cause.Cause<E>) => Effect.Effect<A2, E | E2, R2>) => {
  const name = options?.name ?? defaultName
  const when = options?.when
  const catchDefects = options?.catchDefects === true
  return (cause) => {
    const trigger = triggerOf(cause, when, catchDefects)
    if (trigger === undefined) return Exit.failCause(cause)
    reportUsed(name, trigger, 1)
    return alternative(trigger.error)
  }
}

/**
 * A dual combinator that recovers with a failure continuation (Effect's
 * `catchCause` primitive), like `dual` but without its `arguments` object:
 * the data-last form builds its continuation once, when it is applied.
 */
export const recovering = <F>(
  continuation: (a: never, b: never) => (cause: Cause.Cause<unknown>) => Effect.Effect<unknown, unknown, unknown>
): F =>
  ((first: unknown, a: unknown, b: unknown) => {
    if (Effect.isEffect(first)) return Effect.catchCause(first, continuation(a as never, b as never))
    const recover = continuation(first as never, a as never)
    return (self: Effect.Effect<unknown, unknown, unknown>) => Effect.catchCause(self, recover)
  }) as never

/** `dual` for the combinators whose data-first form starts with the effect, without an `arguments` object. */
export const dualOnEffect = <F>(body: (self: never, a: never, b: never) => unknown): F =>
  ((first: unknown, a: unknown, b: unknown) =>
    Effect.isEffect(first)
      ? body(first as never, a as never, b as never)
      : (self: unknown) => body(self as never, first as never, a as never)) as never
