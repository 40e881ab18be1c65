/**
 * Request coalescing behind `Fallback.makeCoalescer`: one execution per key
 * in flight, in a fiber of its own, its exit handed to every caller waiting;
 * a caller interrupted alone leaves, the last one interrupts the execution.
 * The bookkeeping itself (joining, leaving, finishing) is `internal/fallback.ts`.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type { Coalescer, CoalescerTypeId, Event } from "../Fallback.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Hub from "./events.ts"
import * as engine from "./fallback.ts"
import { processHub } from "./fallbackHandler.ts"
import * as Metrics from "./metrics.ts"

/** One execution in flight: its fiber, its exit once done, and the callers waiting for it. */
class Flight implements engine.Flight {
  waiters = 0
  done = false
  fiber: Fiber.Fiber<unknown, unknown> | undefined = undefined
  exit: Exit.Exit<unknown, unknown> | undefined = undefined
  readonly resumes = new Set<(exit: Exit.Exit<unknown, unknown>) => void>()
}

/** The coalescer as `coalesce` runs it. */
export interface CoalescerImpl extends Coalescer {
  readonly run: <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    key: string
  ) => Effect.Effect<A, E, R>
}

const newFlight = (): Flight => new Flight()

/**
 * A coalescer's operations (`Fallback.makeCoalescer` adds its identity);
 * `close` ends its event streams, unregisters its metrics and interrupts the
 * executions in flight.
 */
export interface Flights extends Omit<CoalescerImpl, CoalescerTypeId | "name"> {
  readonly close: Effect.Effect<void>
}

/** The coalescer itself, but for its identity. */
export const makeFlights = (name: string, context: Context.Context<never>): Flights => {
  const hub = Hub.make<Event>()
  const flights = new Map<string, Flight>()
  const counters = { executions: 0, coalesced: 0 }

  /** Waits for the flight's exit; a caller interrupted while waiting leaves, the last one stops the execution. */
  const wait = (flight: Flight, key: string): Effect.Effect<unknown, unknown> =>
    Effect.callback<unknown, unknown>((resume) => {
      if (flight.exit !== undefined) {
        resume(flight.exit)
        return
      }
      flight.resumes.add(resume)
      return Effect.sync(() => {
        flight.resumes.delete(resume)
        if (engine.leave(flights, key, flight)) flight.fiber?.interruptUnsafe()
      })
    })

  const run = <A, E, R>(
    fiber: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    key: string
  ): Effect.Effect<A, E, R> => {
    const flight = engine.join(flights, key, newFlight)
    if (flight.waiters > 1) {
      counters.coalesced++
      if (hub.listening() || processHub.listening()) {
        const event: Event = { _tag: "Coalesced", name, key, waiters: flight.waiters }
        hub.emit(event)
        processHub.emit(event)
      }
      return wait(flight, key) as Effect.Effect<A, E>
    }
    counters.executions++
    // the execution runs in a fiber of its own (not the caller's child), so
    // that the caller who started it can leave without stopping it; it runs
    // synchronously until it first suspends
    const execution = Effect.runForkWith(fiber.context as Context.Context<R>)(self)
    const done = execution.pollUnsafe()
    if (done !== undefined) {
      engine.finish(flights, key, flight)
      return done
    }
    flight.fiber = execution
    execution.addObserver((exit) => {
      engine.finish(flights, key, flight)
      flight.exit = exit
      for (const resume of flight.resumes) resume(exit)
      flight.resumes.clear()
    })
    return wait(flight, key) as Effect.Effect<A, E>
  }

  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  registrar.counter(Telemetry.fallback.coalesced, base, () => counters.coalesced)
  registrar.counter(Telemetry.fallback.coalesceExecutions, base, () => counters.executions)

  return {
    run,
    coalesce: (self, options) => Effect.withFiber((fiber) => run(fiber, self, options.key)),
    stats: Effect.sync(() => ({ inFlight: flights.size, ...counters })),
    subscribe: hub.subscribe,
    events: hub.events,
    close: Effect.andThen(
      Effect.andThen(
        hub.end,
        Effect.sync(() => registrar.removeAll())
      ),
      Effect.suspend(() => {
        const running = Array.from(flights.values(), (flight) => flight.fiber)
        flights.clear()
        return Effect.forEach(
          running,
          (execution) => (execution === undefined ? Effect.void : Fiber.interrupt(execution)),
          {
            discard: true
          }
        )
      })
    )
  }
}
