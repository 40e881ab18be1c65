/**
 * A scoped ioredis client — standalone or Redis Cluster — as an Effect service.
 *
 * The Redis stores of this package run their atomic Lua scripts through this
 * client. The layer connects when it is built (a server that cannot be reached
 * fails the layer with a typed error) and quits the client when its scope
 * closes.
 *
 * **Details**
 *
 * - `layer(options)` connects one standalone server, `layerCluster(nodes, options)`
 *   a Redis Cluster; both provide the same {@link IoRedis} service, whose
 *   `use` maps any client failure to {@link IoRedisError}.
 * - `send` issues one raw command. On a cluster, ioredis routes it by its first
 *   key, so scripts that touch several keys must hash-tag them (`{tenant}:a`).
 *
 * **Gotchas**
 *
 * - The client is created with `lazyConnect` and connected explicitly, so no
 *   command is queued before the layer has proven the server answers.
 *
 * **Example** (Round-tripping a command)
 *
 * ```ts
 * import { IoRedis } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const redis = yield* IoRedis.IoRedis
 *   yield* redis.send("SET", "greeting", "hello")
 *   return yield* redis.send("GET", "greeting")
 * }).pipe(Effect.provide(IoRedis.layer({ host: "127.0.0.1", port: 6379 })))
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis"

/**
 * A command or connection failure of the ioredis client.
 *
 * @category errors
 * @since 0.1.0
 */
export class IoRedisError extends Data.TaggedError("IoRedisError")<{
  readonly message: string
  readonly cause: unknown
}> {}

/**
 * The client, standalone or cluster.
 *
 * @category models
 * @since 0.1.0
 */
export type Client = Redis<"legacy"> | Cluster<"legacy">

/**
 * The ioredis client service.
 *
 * @category services
 * @since 0.1.0
 */
export class IoRedis extends Context.Service<
  IoRedis,
  {
    readonly client: Client
    /** Runs a promise-returning function of the client, mapping its rejection to `IoRedisError`. */
    readonly use: <A>(f: (client: Client) => Promise<A>) => Effect.Effect<A, IoRedisError>
    /** Sends one raw command. */
    readonly send: (command: string, ...args: ReadonlyArray<string | number>) => Effect.Effect<unknown, IoRedisError>
  }
>()("@effect-resilience/redis/IoRedis") {}

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const fromClient = (client: Client) =>
  Effect.gen(function* () {
    yield* Effect.addFinalizer(() =>
      Effect.promise(() =>
        client.quit().then(
          () => undefined,
          () => client.disconnect()
        )
      )
    )
    yield* Effect.tryPromise({
      try: () => client.connect(),
      catch: (cause) => new IoRedisError({ message: `could not connect: ${describe(cause)}`, cause })
    })
    const use = <A>(f: (client: Client) => Promise<A>): Effect.Effect<A, IoRedisError> =>
      Effect.tryPromise({
        try: () => f(client),
        catch: (cause) => new IoRedisError({ message: describe(cause), cause })
      })
    return IoRedis.of({
      client,
      use,
      send: (command, ...args) => use((client) => client.call(command, ...args))
    })
  })

/**
 * Connects one standalone Redis server.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: RedisOptions & { readonly replyMapping?: "legacy" } = {}
): Layer.Layer<IoRedis, IoRedisError> =>
  Layer.effect(
    IoRedis,
    Effect.suspend(() => fromClient(new Redis<"legacy">({ maxRetriesPerRequest: 1, ...options, lazyConnect: true })))
  )

/**
 * Connects a Redis Cluster through any of its nodes.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerCluster = (
  nodes: ReadonlyArray<ClusterNode>,
  options: ClusterOptions & { readonly redisOptions?: { readonly replyMapping?: "legacy" } } = {}
): Layer.Layer<IoRedis, IoRedisError> =>
  Layer.effect(
    IoRedis,
    Effect.suspend(() => fromClient(new Cluster<"legacy">([...nodes], { ...options, lazyConnect: true })))
  )
