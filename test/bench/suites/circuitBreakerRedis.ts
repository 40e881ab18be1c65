/**
 * Circuit breakers over Redis: what a call through a breaker whose circuits
 * live in Redis costs, where every call is an admission and a record (two
 * script round trips) on a local `redis-server`.
 *
 * The server and the breakers are made in the first contender's `setup`
 * (suites' modules load in every bench process; only this suite's starts
 * Redis). The server stops with the process.
 *
 * What the same contenders cost the Redis server (its script time per call,
 * from `INFO commandstats`): `node test/bench/redisServerTime.ts
 * circuit-breaker-redis` after a build.
 */
import { CircuitBreaker } from "@effect-resilience/core"
import { RedisCircuitBreaker } from "@effect-resilience/redis"
import * as Effect from "effect/Effect"
import * as EffectCircuitBreaker from "effect/persistence/CircuitBreaker"
import * as Redis from "effect/persistence/Redis"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"
import { onRedis } from "../redis.ts"

const { ready, setup } = onRedis(
  "circuit-breaker-redis",
  Effect.gen(function* () {
    const redis = yield* Redis.Redis
    const ours = yield* CircuitBreaker.make({ name: "bench", consecutiveFailures: 1_000_000 }).pipe(
      Effect.provide(RedisCircuitBreaker.layerStore())
    )
    const oursTimeWindow = yield* CircuitBreaker.make({
      name: "bench-time",
      ...CircuitBreaker.timeRate({ threshold: 0.5, window: "10 seconds", buckets: 10, minimumCalls: 1_000_000 })
    }).pipe(Effect.provide(RedisCircuitBreaker.layerStore()))
    const effect = yield* EffectCircuitBreaker.make({
      tripPolicy: EffectCircuitBreaker.consecutive(1_000_000),
      openDuration: "1 minute"
    }).pipe(Effect.provide(EffectCircuitBreaker.layerStoreRedis({ prefix: "bench-effect:" })))
    return { ping: redis.send("PING"), ours, oursTimeWindow, effect }
  })
)

export const circuitBreakerRedis: Suite = {
  id: "circuit-breaker-redis",
  title: "Circuit breaker over Redis: successful call",
  description:
    "A closed breaker whose circuits live in a local `redis-server` (loopback, one ioredis connection with " +
    "`enableOfflineQueue: false`), around `Effect.sync(() => i)`, one call after another. Each call is an " +
    "admission and a record in Redis. The baseline is one `PING` round trip on the same connection. " +
    "effect-resilience runs `RedisCircuitBreaker.layerStore()` with a consecutive-failures policy and with a " +
    "time-based failure-rate window (10 × 1 s buckets); Effect's own `effect/persistence` breaker runs " +
    "`layerStoreRedis` (consecutive policy) through `execute({ key })`, on the same `IoRedis` connection. " +
    "Redis's own time per call (script time from `INFO commandstats`, the same contenders): " +
    "`node test/bench/redisServerTime.ts circuit-breaker-redis`.",
  iterations: 2_000,
  baseline: "one PING round trip",
  contenders: [
    { name: "one PING round trip", library: "ioredis", setup, run: effectLoop(() => ready().ping) },
    {
      name: "effect-resilience over Redis, consecutive policy",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) => ready().ours.protect(Effect.sync(() => i)))
    },
    {
      name: "effect-resilience over Redis, time window",
      library: "effect-resilience",
      setup,
      run: effectLoop((i) => ready().oursTimeWindow.protect(Effect.sync(() => i)))
    },
    {
      name: "effect/persistence CircuitBreaker layerStoreRedis",
      library: "effect",
      setup,
      run: effectLoop((i) =>
        ready().effect.execute(
          Effect.sync(() => i),
          { key: "bench" }
        )
      )
    }
  ]
}
