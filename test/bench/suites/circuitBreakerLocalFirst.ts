/**
 * A local-first breaker (`RedisCircuitBreaker.layerStoreLocalFirst`): its
 * circuits decided in-process and synced with Redis in the background every
 * `syncInterval`, against the memory store (no sharing) and the Redis store
 * (every call two script round trips).
 *
 * The server and the breakers are made in the first contender's `setup`
 * (suites' modules load in every bench process; only the Redis suites start
 * Redis). The server stops with the process.
 */
import { CircuitBreaker } from "@effect-resilience/core"
import { RedisCircuitBreaker } from "@effect-resilience/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"
import { onRedis } from "../redis.ts"

const options: CircuitBreaker.Input = { name: "bench-local-first", consecutiveFailures: 1_000_000 }

const { ready, setup } = onRedis(
  "circuit-breaker-local-first",
  Effect.gen(function* () {
    const memory = yield* CircuitBreaker.make(options).pipe(Effect.provide(CircuitBreaker.layerStoreMemory()))
    const localFirstStore = yield* Layer.build(
      RedisCircuitBreaker.layerStoreLocalFirst({ prefix: "bench-lf:", syncInterval: "250 millis" })
    )
    const localFirst = yield* CircuitBreaker.make(options).pipe(Effect.provide(localFirstStore))
    const keyed = yield* CircuitBreaker.make({ ...options, name: "bench-local-first-keyed" }).pipe(
      Effect.provide(localFirstStore)
    )
    const redis = yield* CircuitBreaker.make({ ...options, name: "bench-redis-store" }).pipe(
      Effect.provide(RedisCircuitBreaker.layerStore({ prefix: "bench-lf-store:" }))
    )
    return { memory, localFirst, keyed, redis }
  })
)

export const circuitBreakerLocalFirst: Suite = {
  id: "circuit-breaker-local-first",
  title: "Circuit breaker, local-first over Redis: successful call",
  description:
    "A closed breaker around `Effect.sync(() => i)`, one call after another, over three stores: the memory " +
    "store (`layerStoreMemory`, nothing shared), the local-first store (`RedisCircuitBreaker.layerStoreLocalFirst`, " +
    "decided in-process, synced with a local `redis-server` every 250 ms by a background fiber while the loop runs) " +
    "and the Redis store (`RedisCircuitBreaker.layerStore`, an admission and a record in Redis per call). The " +
    "local-first breaker also runs with a per-call key (`protect(b, { key })`), the keyed path. Baseline: the " +
    "memory store.",
  iterations: 10_000,
  baseline: "memory store",
  contenders: [
    {
      name: "memory store",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) => ready().memory.protect(Effect.sync(() => i)))
    },
    {
      name: "local-first store (Redis sync every 250 ms)",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) => ready().localFirst.protect(Effect.sync(() => i)))
    },
    {
      name: "local-first store, keyed call",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) =>
        ready().keyed.protect(
          Effect.sync(() => i),
          { key: "tenant-1" }
        )
      )
    },
    {
      name: "Redis store (two round trips a call)",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) => ready().redis.protect(Effect.sync(() => i)))
    }
  ]
}
