/**
 * Drivers shared by the suites: how `n` calls of an operation are issued, so
 * every contender of every suite pays the same loop overhead and the
 * differences are the operations' own.
 */
import * as Effect from "effect/Effect"

/**
 * Runs `n` calls of an effect inside one fiber (one `runPromise` per batch).
 * Each call is wrapped in `Effect.exit` (about 10 ns here, where `Effect.ignore`
 * costs over 100 ns), so failures are measured without ending the batch.
 */
export const effectLoop =
  <A, E>(make: (i: number) => Effect.Effect<A, E>) =>
  (n: number): Promise<void> =>
    Effect.runPromise(
      Effect.gen(function* () {
        for (let i = 0; i < n; i++) {
          yield* Effect.exit(make(i))
        }
      })
    )

/** Awaits `n` promise-returning calls one after another. */
export const promiseLoop =
  (call: (i: number) => Promise<unknown>) =>
  async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      try {
        await call(i)
      } catch {
        // rejections are part of what some suites measure
      }
    }
  }

/** Makes `n` synchronous calls. */
export const syncLoop =
  (call: (i: number) => unknown) =>
  (n: number): void => {
    let sink: unknown
    for (let i = 0; i < n; i++) sink = call(i)
    if (sink === Symbol.for("never")) throw new Error("unreachable")
  }
