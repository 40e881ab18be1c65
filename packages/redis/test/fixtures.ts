/**
 * The Redis a test file runs against: one server (or one cluster) started
 * before the file's cases and stopped after them, provided as a layer every
 * case can use (a store layer built per case connects to the same server).
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { IoRedis } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Redis from "effect/persistence/Redis"
import * as Scope from "effect/Scope"

/** Builds `layer` once for the file (in `beforeAll`), and releases it after the file's cases. */
export const shared = <A>(layer: Layer.Layer<A, unknown>): Layer.Layer<A> => {
  const scope = Effect.runSync(Scope.make())
  let context: Context.Context<A> | undefined
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

/** A standalone server for the file, its `RedisServer` and an ioredis connection to it. */
export const standalone = (): Layer.Layer<RedisServer.RedisServer | IoRedis.IoRedis | Redis.Redis> =>
  shared(
    Layer.unwrap(
      Effect.map(RedisServer.RedisServer, (server) => IoRedis.layer({ host: server.host, port: server.port }))
    ).pipe(Layer.provideMerge(RedisServer.layer))
  )

/** A cluster (three masters, three replicas) for the file, and a cluster connection to it. */
export const cluster = (): Layer.Layer<IoRedis.IoRedis | Redis.Redis> =>
  shared(
    Layer.unwrap(
      Effect.map(RedisServer.RedisCluster, (c) =>
        IoRedis.layerCluster(c.nodes.map(({ host, port }) => ({ host, port })))
      )
    ).pipe(Layer.provide(RedisServer.layerCluster))
  )
