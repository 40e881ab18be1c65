/**
 * Rate limiting: what one allowed decision costs, against
 * rate-limiter-flexible's `RateLimiterMemory` and Effect 4's
 * `effect/persistence` RateLimiter memory store.
 *
 * Limits are set so nothing is ever refused during the run: the suite
 * measures the decision path every request takes.
 */
import { RateLimiter } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as EffectRateLimiter from "effect/persistence/RateLimiter"
import * as Scope from "effect/Scope"
import { RateLimiterMemory } from "rate-limiter-flexible"
import { effectLoop, promiseLoop } from "../drivers.ts"
import { packageVersion, type Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"
const flexible = `rate-limiter-flexible ${packageVersion("rate-limiter-flexible")}`

const huge = 1_000_000_000
const scope = Effect.runSync(Scope.make())

const makeOurs = (algorithm: "fixed-window" | "token-bucket" | "gcra" | "sliding-window"): RateLimiter.RateLimiter =>
  Effect.runSync(
    RateLimiter.make({ limits: [{ algorithm, limit: huge, window: "1 hour" }] }).pipe(
      Scope.provide(scope),
      Effect.provide(RateLimiter.layerStoreMemory())
    )
  )

const oursFixed = makeOurs("fixed-window")
const oursBucket = makeOurs("token-bucket")
const oursGcra = makeOurs("gcra")
const oursSliding = makeOurs("sliding-window")
const effectLimiter = Effect.runSync(EffectRateLimiter.make.pipe(Effect.provide(EffectRateLimiter.layerStoreMemory)))
const flexibleLimiter = new RateLimiterMemory({ points: huge, duration: 3600 })

export const rateLimiterDecision: Suite = {
  id: "rate-limiter-decision",
  title: "Rate limiter: one allowed decision",
  description:
    "One decision for one key, allowed. effect-resilience runs `limiter.consume(key)` (an Effect) with each " +
    "algorithm; Effect's `effect/persistence` RateLimiter (memory store) runs `consume({ algorithm: " +
    '"fixed-window", window, limit, key })`; the baseline is `Effect.sync`. rate-limiter-flexible\'s ' +
    "`RateLimiterMemory.consume(key)` returns a promise; it is compared with the promise floor (second baseline " +
    "row, not subtracted automatically).",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    { name: "effect-resilience fixed-window", library: ours, run: effectLoop(() => oursFixed.consume("client")) },
    { name: "effect-resilience token-bucket", library: ours, run: effectLoop(() => oursBucket.consume("client")) },
    { name: "effect-resilience gcra", library: ours, run: effectLoop(() => oursGcra.consume("client")) },
    { name: "effect-resilience sliding-window", library: ours, run: effectLoop(() => oursSliding.consume("client")) },
    {
      name: "effect/persistence RateLimiter fixed-window",
      library: effect,
      run: effectLoop(() =>
        effectLimiter.consume({ algorithm: "fixed-window", window: "1 hour", limit: huge, key: "client" })
      )
    },
    { name: "await async fn (promise floor)", library: "javascript", run: promiseLoop(async (i) => i) },
    {
      name: "rate-limiter-flexible RateLimiterMemory.consume",
      library: flexible,
      run: promiseLoop(() => flexibleLimiter.consume("client"))
    }
  ]
}

export const rateLimiterSuites: ReadonlyArray<Suite> = [rateLimiterDecision]
