/**
 * A `redis-server` for the suites that measure Redis stores: started on a
 * loopback port the first time a suite's `setup` asks for it (every suite's
 * module loads in every bench process; only these start Redis), with one
 * ioredis connection (`enableOfflineQueue: false`). Its scope is never
 * closed: the harness's watchdog stops the server with the process.
 */
import { IoRedis } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redis from "effect/persistence/Redis"
import * as Scope from "effect/Scope"

export interface RedisFixture {
  /** The connection: `IoRedis` and Effect's `Redis` service on it. */
  readonly connection: Context.Context<IoRedis.IoRedis | Redis.Redis>
  /** A scope that stays open for the process. */
  readonly scope: Scope.Scope
}

let starting: Promise<RedisFixture> | undefined

/** The process's server and connection, started once. */
export const redisFixture = (): Promise<RedisFixture> => {
  starting ??= Effect.runPromise(
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const node = yield* RedisServer.startServer().pipe(Scope.provide(scope))
      const connection = yield* Layer.buildWithScope(
        IoRedis.layer({ host: node.host, port: node.port, enableOfflineQueue: false }),
        scope
      )
      return { connection, scope }
    })
  )
  return starting
}

/**
 * A suite's instances over the process's Redis, made once by `setup` (give
 * it to every contender) and read by `ready` in the contenders' loops.
 */
export const onRedis = <A>(
  suite: string,
  make: Effect.Effect<A, unknown, IoRedis.IoRedis | Redis.Redis | Scope.Scope>
): { readonly setup: () => Promise<void>; readonly ready: () => A } => {
  let made: { readonly value: A } | undefined
  return {
    setup: async () => {
      if (made !== undefined) return
      const { connection, scope } = await redisFixture()
      made = { value: await Effect.runPromise(make.pipe(Effect.provide(connection), Scope.provide(scope))) }
    },
    ready: () => {
      if (made === undefined) throw new Error(`${suite} bench: setup did not run`)
      return made.value
    }
  }
}
