/**
 * The events every pattern publishes: one sliding queue per subscriber, and
 * nothing built when nobody listens (`listening` guards the hot path).
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** A publisher of `E`s to any number of scoped subscribers. */
export interface Hub<E> {
  /** Whether anyone subscribes: build an event only when this is true. */
  readonly listening: () => boolean
  readonly emit: (event: E) => void
  /** A queue of the events from now on, for the scope's lifetime. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<E, Cause.Done>, never, Scope.Scope>
  readonly events: Stream.Stream<E>
  /** Ends every subscriber's queue (the publisher's scope closed). */
  readonly end: Effect.Effect<void>
}

/** A hub whose subscribers each hold a sliding queue of `capacity` events (the oldest dropped when full). */
export const make = <E>(capacity = 1024): Hub<E> => {
  const subscribers = new Set<Queue.Queue<E, Cause.Done>>()
  const subscribe: Effect.Effect<Queue.Dequeue<E, Cause.Done>, never, Scope.Scope> = Effect.acquireRelease(
    Effect.map(Queue.sliding<E, Cause.Done>(capacity), (queue) => {
      subscribers.add(queue)
      return queue
    }),
    (queue) =>
      Effect.sync(() => {
        subscribers.delete(queue)
        Queue.endUnsafe(queue)
      })
  )
  return {
    listening: () => subscribers.size > 0,
    emit: (event) => {
      for (const queue of subscribers) Queue.offerUnsafe(queue, event)
    },
    subscribe,
    events: Stream.unwrap(Effect.map(subscribe, Stream.fromQueue)),
    end: Effect.sync(() => {
      for (const queue of subscribers) Queue.endUnsafe(queue)
      subscribers.clear()
    })
  }
}
