/**
 * Three replicas behind a round-robin balancer; `replica-b` answers 503 for a
 * while. After three failures in a row it is ejected for 30 seconds: the
 * calls go to `replica-a` and `replica-c` only, the callers of `replica-b`
 * see nothing of it (a retry outside `call` picks again). When its
 * ejection ends it is back in the rotation, healthy again.
 *
 * Run it with `node examples/load-balancing/replicas.ts` (after
 * `npm run build`); it waits 30 seconds for the ejection to end. The root
 * test runs it on the `TestClock`.
 */
import { LoadBalancer, Retry } from "@effect-resilience/core"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

class Unavailable extends Data.TaggedError("Unavailable")<{ readonly replica: string }> {}

/**
 * What each call saw, then the balancer's view: `["call 1: replica-a", "call 2: replica-b 503, retried",
 * "call 2: replica-c", …, "call 7: replica-a", "call 8: replica-c", "call 9: replica-a",
 * "replica-b ejected for 30s after 3 failures in a row", "after 30s: replica-b back", "call 10: replica-b", …]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const lb = yield* LoadBalancer.make({
    name: "orders",
    strategy: "roundRobin",
    endpoints: [{ id: "replica-a" }, { id: "replica-b" }, { id: "replica-c" }],
    consecutiveFailures: 3,
    baseEjectionTime: "30 seconds"
  })
  const seen: Array<string> = []
  let bDown = true
  const request = (call: number) =>
    LoadBalancer.call(lb, (replica) =>
      replica.id === "replica-b" && bDown
        ? Effect.fail(new Unavailable({ replica: replica.id })).pipe(
            Effect.tapError(() => Effect.sync(() => seen.push(`call ${call}: ${replica.id} 503, retried`)))
          )
        : Effect.sync(() => seen.push(`call ${call}: ${replica.id}`))
    ).pipe(
      // outside `call`: each attempt picks an endpoint again
      Retry.retry(Retry.constant({ delay: 0, maxAttempts: 3 }))
    )

  for (let call = 1; call <= 9; call++) yield* request(call)
  for (const host of (yield* lb.stats).hosts) {
    if (host.state === "ejected") {
      const seconds = Duration.toSeconds(host.ejectedFor ?? Duration.zero)
      seen.push(`${host.id} ejected for ${seconds}s after ${host.failures} failures in a row`)
    }
  }
  bDown = false
  yield* Effect.sleep("30 seconds")
  seen.push(`after 30s: replica-b ${(yield* lb.stats).ejected === 0 ? "back" : "still ejected"}`)
  for (let call = 10; call <= 15; call++) yield* request(call)
  return seen
}).pipe(Effect.scoped, Effect.orDie)

if (import.meta.main) Effect.runPromise(program).then((lines) => console.log(lines.join("\n")))
