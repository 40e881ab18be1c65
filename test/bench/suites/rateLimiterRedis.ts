/**
 * Rate limiters over Redis: one decision per call, each a script round trip
 * on a local `redis-server` (see ../redis.ts), against the peers' Redis
 * limiters on the same ioredis connection.
 */
import { RateLimiter } from "@effect-resilience/core"
import { IoRedis, RedisRateLimiter } from "@effect-resilience/redis"
import * as Effect from "effect/Effect"
import * as EffectRateLimiter from "effect/persistence/RateLimiter"
import * as Redis from "effect/persistence/Redis"
import { RateLimiterRedis } from "rate-limiter-flexible"
import { effectLoop, promiseLoop } from "../drivers.ts"
import { packageVersion, type Suite } from "../harness.ts"
import { onRedis } from "../redis.ts"

const huge = 1_000_000_000

const { ready, setup: start } = onRedis(
  "rate-limiter-redis",
  Effect.gen(function* () {
    const redis = yield* Redis.Redis
    const { client } = yield* IoRedis.IoRedis
    const store = RedisRateLimiter.layerStore({ prefix: "bench:" })
    const gcra = yield* RateLimiter.make({
      name: "gcra",
      limits: [{ algorithm: "gcra", limit: huge, window: "1 hour" }]
    }).pipe(Effect.provide(store))
    const twoLimits = yield* RateLimiter.make({
      name: "two",
      limits: [
        { algorithm: "fixed-window", limit: huge, window: "1 hour" },
        { algorithm: "token-bucket", limit: huge, window: "1 hour" }
      ]
    }).pipe(Effect.provide(store))
    const effect = yield* EffectRateLimiter.make.pipe(
      Effect.provide(EffectRateLimiter.layerStoreRedis({ prefix: "bench-effect:" }))
    )
    const flexible = new RateLimiterRedis({ storeClient: client, points: huge, duration: 3600, keyPrefix: "flex" })
    return { ping: redis.send("PING"), gcra, twoLimits, effect, flexible }
  })
)

export const rateLimiterRedis: Suite = {
  id: "rate-limiter-redis",
  title: "Rate limiter over Redis: allowed decision",
  description:
    "One allowed decision per call for one key, the limiter's state in a local `redis-server` (loopback, one " +
    "ioredis connection with `enableOfflineQueue: false`, shared by every contender). The baseline is one `PING` " +
    "round trip. effect-resilience runs `RedisRateLimiter.layerStore()` with one GCRA limit and with two limits " +
    "(fixed window and token bucket, decided in one script); Effect's own `effect/persistence` RateLimiter runs " +
    '`layerStoreRedis` (`consume({ algorithm: "token-bucket" })`); rate-limiter-flexible runs `RateLimiterRedis` ' +
    "on the same ioredis client, awaited in a promise loop (the loops differ by well under a microsecond).",
  iterations: 2_000,
  baseline: "one PING round trip",
  contenders: [
    { name: "one PING round trip", library: "ioredis", setup: start, run: effectLoop(() => ready().ping) },
    {
      name: "effect-resilience over Redis, GCRA",
      library: "effect-resilience",
      setup: start,
      run: effectLoop(() => ready().gcra.consume("client"))
    },
    {
      name: "effect-resilience over Redis, two limits",
      library: "effect-resilience",
      setup: start,
      run: effectLoop(() => ready().twoLimits.consume("client"))
    },
    {
      name: "effect/persistence RateLimiter layerStoreRedis",
      library: "effect",
      setup: start,
      run: effectLoop(() =>
        ready().effect.consume({ algorithm: "token-bucket", window: "1 hour", limit: huge, key: "client" })
      )
    },
    {
      name: "rate-limiter-flexible RateLimiterRedis.consume",
      library: `rate-limiter-flexible ${packageVersion("rate-limiter-flexible")}`,
      setup: start,
      run: promiseLoop(() => ready().flexible.consume("client"))
    }
  ]
}
