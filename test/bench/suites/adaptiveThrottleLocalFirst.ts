/**
 * A local-first adaptive throttle (`RedisAdaptiveThrottle.layerStoreLocalFirst`):
 * decided in-process on the fleet's counts, synced with Redis in the
 * background every `syncInterval`, against the same throttle with no store.
 *
 * The server and the throttles are made in the first contender's `setup`
 * (suites' modules load in every bench process; only the Redis suites start
 * Redis). The server stops with the process.
 */
import { AdaptiveThrottle } from "@effect-resilience/core"
import { RedisAdaptiveThrottle } from "@effect-resilience/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"
import { onRedis } from "../redis.ts"

const { ready, setup } = onRedis(
  "adaptive-throttle-local-first",
  Effect.gen(function* () {
    const memory = yield* AdaptiveThrottle.make({ name: "bench-at-memory" })
    const store = yield* Layer.build(
      RedisAdaptiveThrottle.layerStoreLocalFirst({ prefix: "bench-at:", syncInterval: "250 millis" })
    )
    const localFirst = yield* AdaptiveThrottle.make({ name: "bench-at-local-first" }).pipe(Effect.provide(store))
    return { memory, localFirst }
  })
)

export const adaptiveThrottleLocalFirst: Suite = {
  id: "adaptive-throttle-local-first",
  title: "Adaptive throttle, local-first over Redis: admitted call",
  description:
    "`Effect.sync(() => i)` admitted by an adaptive throttle, one call after another, with no store (each process " +
    "on its own counts) and over the local-first store (`RedisAdaptiveThrottle.layerStoreLocalFirst`: decided " +
    "in-process on the fleet's counts plus its own since the last sync, synced with a local `redis-server` every " +
    "250 ms by a background fiber while the loop runs). Baseline: no store.",
  iterations: 20_000,
  baseline: "no store",
  contenders: [
    {
      name: "no store",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) =>
        AdaptiveThrottle.throttle(
          Effect.sync(() => i),
          ready().memory
        )
      )
    },
    {
      name: "local-first store (Redis sync every 250 ms)",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) =>
        AdaptiveThrottle.throttle(
          Effect.sync(() => i),
          ready().localFirst
        )
      )
    }
  ]
}
