/**
 * `npm run demo`: a small tour that grows with the library. It runs against the
 * built packages, exactly as a user's program would.
 */
import { Telemetry } from "@effect-resilience/core"
import { RateLimitHeaders } from "@effect-resilience/http"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"

const program = Effect.gen(function* () {
  yield* Console.log("effect-resilience demo")
  yield* Console.log(`metrics in the catalogue: ${Telemetry.metrics.length}`)
  yield* Console.log(`RateLimit: ${RateLimitHeaders.rateLimit([{ name: "default", remaining: 9, resetSeconds: 0.4 }])}`)
})

Effect.runFork(program)
