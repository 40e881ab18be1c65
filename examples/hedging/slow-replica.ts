/**
 * A read hedged across replicas: if the first replica has not answered after
 * 50 ms, the same read goes to a second one, the first answer wins and the
 * other attempt is interrupted. A read that answers within 50 ms sends no
 * hedge at all, so the extra load is confined to the slow calls.
 *
 * Call 1 hits `replica-a` during a pause (it would take a full second):
 * `replica-b` is asked at 50 ms, answers at 70 ms and wins. Call 2 finds
 * `replica-a` fast again: it answers at 10 ms and no hedge starts.
 *
 * Run it with `node examples/hedging/slow-replica.ts` (after `npm run build`);
 * it takes about 80 ms. The times below are those of the root test's
 * `TestClock`; a live run logs a few milliseconds more.
 */
import { Hedge } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/** Which replica each attempt reaches and how long it takes, in order. */
const plan: ReadonlyArray<readonly [replica: string, latencyMillis: number]> = [
  ["replica-a", 1_000], // call 1, first attempt: replica-a is paused
  ["replica-b", 20], // call 1, the hedge
  ["replica-a", 10] // call 2, first attempt: replica-a is back
]

/**
 * Every attempt's start and end, each call's result, then the policy's totals:
 * `["call 1: replica-a started at 0ms", "call 1: replica-b started at 50ms",
 *   "call 1: replica-b answered at 70ms", "call 1: replica-a interrupted at 70ms",
 *   "call 1 = row 42 from replica-b",
 *   "call 2: replica-a started at 0ms", "call 2: replica-a answered at 10ms",
 *   "call 2 = row 42 from replica-a",
 *   "stats: 2 calls, 1 hedge started, 1 won, 0 refused"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const policy = Hedge.make({ delay: "50 millis" }) // about the p95 latency of the replicas; maxHedges defaults to 1

  const seen: Array<string> = []
  let attempts = 0
  const read = (call: number, start: number) =>
    Effect.suspend(() => {
      const [replica, latency] = plan[attempts++] ?? ["replica-a", 0]
      const log = (what: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => seen.push(`call ${call}: ${replica} ${what} at ${now - start}ms`))
        )
      return log("started").pipe(
        Effect.andThen(Effect.sleep(`${latency} millis`)),
        Effect.andThen(log("answered")),
        Effect.as(`row 42 from ${replica}`),
        Effect.onInterrupt(() => log("interrupted")) // the losing attempt is interrupted and awaited
      )
    })

  for (const call of [1, 2]) {
    const start = yield* Clock.currentTimeMillis
    const row = yield* Hedge.hedge(read(call, start), policy)
    seen.push(`call ${call} = ${row}`)
  }

  const stats = yield* policy.stats
  seen.push(`stats: ${stats.calls} calls, ${stats.started} hedge started, ${stats.won} won, ${stats.refused} refused`)
  return seen
})

if (import.meta.main) Effect.runPromise(program).then(console.log)
