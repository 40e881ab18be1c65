import { afterAll, beforeAll } from "@effect/vitest"
import { IoRedis, RedisCircuitBreaker } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Redis from "effect/persistence/Redis"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { suite } from "../../core/test/CircuitBreakerStoreSuite.ts"

/**
 * One server (and one cluster) for the whole file: the suite provides its
 * store layer to every case, so the servers start once, before the cases,
 * and stop after them.
 */
const shared = (layer: Layer.Layer<IoRedis.IoRedis | Redis.Redis, unknown>) => {
  const scope = Effect.runSync(Scope.make())
  let context: Context.Context<IoRedis.IoRedis | Redis.Redis> | undefined
  beforeAll(async () => {
    context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  }, 120_000)
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)), 60_000)
  return Layer.effectContext(
    Effect.suspend(() =>
      context === undefined ? Effect.die("the Redis fixture did not start") : Effect.succeed(context)
    )
  )
}

const standalone = shared(
  Layer.unwrap(
    Effect.map(RedisServer.RedisServer, (server) => IoRedis.layer({ host: server.host, port: server.port }))
  ).pipe(Layer.provide(RedisServer.layer))
)

const cluster = shared(
  Layer.unwrap(
    Effect.map(RedisServer.RedisCluster, (c) => IoRedis.layerCluster(c.nodes.map(({ host, port }) => ({ host, port }))))
  ).pipe(Layer.provide(RedisServer.layerCluster))
)

/** Redis keeps its own time: the cases wait for real, briefly. */
const realTime = {
  adjust: (duration: Duration.Input) => TestClock.withLive(Effect.sleep(duration)),
  openMillis: 150
}

suite("Redis", RedisCircuitBreaker.layerStore().pipe(Layer.provide(standalone)), realTime)
suite("Redis Cluster", RedisCircuitBreaker.layerStore().pipe(Layer.provide(cluster)), realTime)
