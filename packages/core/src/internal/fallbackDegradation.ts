/**
 * The degraded-mode switch behind `Fallback.makeDegradation`: its mode, the
 * answers from the alternative while degraded, counters, events and metrics.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type { Degradation, DegradationState, DegradationTypeId, Event } from "../Fallback.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Hub from "./events.ts"
import { processHub, spanEvent } from "./fallbackHandler.ts"
import * as Metrics from "./metrics.ts"

/**
 * A degradation's operations (`Fallback.makeDegradation` adds its identity);
 * `close` ends its event streams and unregisters its metrics.
 */
export interface Switch extends Omit<Degradation, DegradationTypeId | "name"> {
  readonly close: Effect.Effect<void>
}

/** The switch itself (normal at first), but for its identity. */
export const makeSwitch = (name: string, context: Context.Context<never>): Switch => {
  const hub = Hub.make<Event>()
  let mode: DegradationState = { _tag: "Normal" }
  const counters = { degradations: 0, fallbacks: 0 }
  const emit = (event: Event) => {
    hub.emit(event)
    processHub.emit(event)
  }
  const listening = () => hub.listening() || processHub.listening()
  const changed = (reason: string | undefined) => {
    if (listening()) emit({ _tag: "DegradedModeChanged", name, degraded: reason !== undefined, reason })
  }

  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  registrar.gauge(Telemetry.fallback.degraded, base, () => (mode._tag === "Degraded" ? 1 : 0))
  registrar.counter(
    Telemetry.fallback.used,
    { ...base, [Telemetry.attributes.reason]: "degraded" },
    () => counters.fallbacks
  )

  return {
    degrade: (reason) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (mode._tag === "Degraded" && mode.reason === reason) return
        if (mode._tag === "Normal") counters.degradations++
        mode = { _tag: "Degraded", reason, since: mode._tag === "Degraded" ? mode.since : DateTime.makeUnsafe(now) }
        changed(reason)
      }),
    recover: Effect.sync(() => {
      if (mode._tag === "Normal") return
      mode = { _tag: "Normal" }
      changed(undefined)
    }),
    state: Effect.sync(() => mode),
    whenDegraded: <A, E, R, A2, E2, R2>(
      self: Effect.Effect<A, E, R>,
      alternative: (reason: string) => Effect.Effect<A2, E2, R2>
    ) =>
      Effect.suspend((): Effect.Effect<A | A2, E | E2, R | R2> => {
        if (mode._tag === "Normal") return self
        const reason = mode.reason
        counters.fallbacks++
        const fiber = Fiber.getCurrent()
        if (fiber !== undefined) {
          spanEvent(fiber, "FallbackUsed", {
            [Telemetry.attributes.name]: name,
            [Telemetry.attributes.reason]: "degraded"
          })
        }
        if (listening()) emit({ _tag: "FallbackUsed", name, reason: "degraded", alternative: 1, error: reason })
        return alternative(reason)
      }),
    stats: Effect.sync(() => ({ degraded: mode._tag === "Degraded", ...counters })),
    subscribe: hub.subscribe,
    events: hub.events,
    close: Effect.andThen(
      hub.end,
      Effect.sync(() => registrar.removeAll())
    )
  }
}
