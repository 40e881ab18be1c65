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

// ---------------------------------------------------------------------------
// memory: what each key costs once it has been seen
// ---------------------------------------------------------------------------

type KeyedAlgorithm = "fixed-window" | "sliding-window" | "sliding-log" | "token-bucket" | "gcra" | "leaky-bucket"

/** Room for every key the suite makes: nothing is evicted, so the heap holds each key's state. */
const roomForAll = 2_000_000

const makeKeyed = (algorithm: KeyedAlgorithm): RateLimiter.RateLimiter =>
  Effect.runSync(
    RateLimiter.make({
      limits: [
        algorithm === "leaky-bucket"
          ? { algorithm, capacity: huge, leakPerSecond: huge / 3600 }
          : { algorithm, limit: huge, window: "1 hour" }
      ],
      maxKeys: roomForAll
    }).pipe(Scope.provide(scope), Effect.provide(RateLimiter.layerStoreMemory()))
  )

/** Each call of a contender decides for a key it has never seen (`k0`, `k1`, … per contender). */
const freshKeys = () => {
  let next = 0
  return () => `k${next++}`
}

const oursKeyed = (algorithm: KeyedAlgorithm) => {
  const limiter = makeKeyed(algorithm)
  const key = freshKeys()
  return {
    name: `effect-resilience ${algorithm}`,
    library: ours,
    run: effectLoop(() => limiter.consume(key()))
  }
}

const effectKeyed = Effect.runSync(EffectRateLimiter.make.pipe(Effect.provide(EffectRateLimiter.layerStoreMemory)))
const effectKey = freshKeys()
const flexibleKeyed = new RateLimiterMemory({ points: huge, duration: 3600 })
const flexibleKey = freshKeys()

export const rateLimiterKeys: Suite = {
  id: "rate-limiter-keys",
  title: "Rate limiter: memory per key",
  description:
    "Every call decides for a key the limiter has never seen, so the heap retained per call is what one more " +
    "key costs: its state, its map entry and its key string (`k123456`, the same strings for every contender). " +
    "effect-resilience runs each algorithm with `maxKeys` above the keys made, so nothing is evicted; Effect's " +
    "`effect/persistence` RateLimiter memory store (fixed window) and rate-limiter-flexible's `RateLimiterMemory` " +
    "keep every key until it expires (an hour here). The time column is the cost of a decision for a new key. " +
    "A key whose state is idle (a full bucket, an expired window) is what the background sweep drops.",
  iterations: 50_000,
  rounds: 6,
  warmup: 1,
  contenders: [
    oursKeyed("fixed-window"),
    oursKeyed("sliding-window"),
    oursKeyed("sliding-log"),
    oursKeyed("token-bucket"),
    oursKeyed("gcra"),
    oursKeyed("leaky-bucket"),
    {
      name: "effect/persistence RateLimiter fixed-window",
      library: effect,
      run: effectLoop(() =>
        effectKeyed.consume({ algorithm: "fixed-window", window: "1 hour", limit: huge, key: effectKey() })
      )
    },
    {
      name: "rate-limiter-flexible RateLimiterMemory.consume",
      library: flexible,
      run: promiseLoop(() => flexibleKeyed.consume(flexibleKey()))
    }
  ]
}

export const rateLimiterSuites: ReadonlyArray<Suite> = [rateLimiterDecision, rateLimiterKeys]
