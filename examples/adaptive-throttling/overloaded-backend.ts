/**
 * A backend that can take 20 requests a second, asked for 100 a second. Without
 * throttling every request reaches it and 80 % are refused there, after
 * costing it work. With client-side adaptive throttling (K = 2) the client
 * refuses locally once the backend's refusals outweigh its accepts: the
 * backend sees about K × 20 = 40 requests a second, the rest never leave.
 * At 20 s the backend recovers (it takes everything); the refusals age out
 * of the 10-second window and the local throttling fades away.
 *
 * The coin flips come from Effect's `Random`, seeded here, so every run
 * prints the same lines. Run it with
 * `node examples/adaptive-throttling/overloaded-backend.ts` (after
 * `npm run build`); it takes 30 seconds. The root test runs it on the
 * `TestClock`.
 */
import { AdaptiveThrottle } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"

class Overloaded extends Data.TaggedError("Overloaded")<{}> {}

/** One line per 5 seconds: what the client offered, what reached the backend, what it accepted. */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const throttle = yield* AdaptiveThrottle.make({ name: "backend", window: "10 seconds", buckets: 10 })
  const start = yield* Clock.currentTimeMillis
  let capacity = 20 // requests a second the backend accepts
  let second = -1
  let acceptedThisSecond = 0
  let offered = 0
  let sent = 0
  let accepted = 0
  const backend = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    sent++ // it reached the backend, which spends work on it either way
    const s = Math.floor((now - start) / 1000)
    if (s !== second) {
      second = s
      acceptedThisSecond = 0
    }
    if (acceptedThisSecond >= capacity) return Effect.fail(new Overloaded())
    acceptedThisSecond++
    accepted++
    return Effect.void
  })

  const lines: Array<string> = []
  for (let tick = 0; tick < 3000; tick++) {
    if (tick === 2000) capacity = Number.POSITIVE_INFINITY // the backend recovers at 20 s
    offered++
    // refused by the backend (Overloaded) or locally (AdaptiveThrottleError): the caller gives up on this one
    yield* Effect.ignore(backend.pipe(AdaptiveThrottle.throttle(throttle)))
    if ((tick + 1) % 500 === 0) {
      const from = ((tick + 1) / 100 - 5).toString()
      lines.push(`${from}-${(tick + 1) / 100}s: ${offered} offered, ${sent} sent, ${accepted} accepted`)
      offered = 0
      sent = 0
      accepted = 0
    }
    yield* Effect.sleep("10 millis")
  }
  return lines
}).pipe(Effect.scoped, Random.withSeed("overloaded-backend"), Effect.orDie)

if (import.meta.main) Effect.runPromise(program).then((lines) => console.log(lines.join("\n")))
