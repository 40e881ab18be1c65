/**
 * ioredis — standalone or Redis Cluster — as Effect services: the client
 * (`IoRedis`) and Effect's own `effect/persistence/Redis` service on it.
 *
 * Every Redis store of this library needs only `Redis.Redis`, and so do
 * Effect's own (`CircuitBreaker.layerStoreRedis`, `RateLimiter` Redis store):
 * with this layer they all run on ioredis.
 *
 * **Details**
 *
 * - `layer(options)` connects one server, `layerCluster(nodes, options)` a
 *   cluster; both connect when built (an unreachable server fails the layer
 *   with `IoRedisError`) and quit when their scope closes (a server that
 *   does not answer `QUIT` within a second has its socket closed).
 * - `eval` is cluster-safe: `EVALSHA` is routed by the script's first key, and
 *   on `NOSCRIPT` the same call is sent as `EVAL`, which lands on the same
 *   node and caches the script there. Scripts touching several keys must
 *   hash-tag them (`{tenant}:a`, `{tenant}:b`).
 * - The library's own scripts also have a Redis function form: on a server
 *   with functions (Redis 7+) they run as `FCALL`, routed the same way, their
 *   library loaded on every master where it is missing; on an older server,
 *   as scripts.
 * - `subscribe` uses a dedicated connection per subscription; `reserve` a
 *   pooled duplicate connection (Effect's pool).
 *
 * **Example** (Round-tripping a command)
 *
 * ```ts
 * import { IoRedis } from "@effect-resilience/redis"
 * import { Effect } from "effect"
 * import { Redis } from "effect/persistence"
 *
 * const program = Effect.gen(function* () {
 *   const redis = yield* Redis.Redis
 *   yield* redis.send("SET", "greeting", "hello")
 *   return yield* redis.send<string>("GET", "greeting")
 * }).pipe(Effect.provide(IoRedis.layer({ host: "127.0.0.1", port: 6379 })))
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis_ from "effect/persistence/Redis"
import type * as Scope from "effect/Scope"
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis"
import { functionFormOf } from "./internal/lua.ts"

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

/** How long closing a connection waits for the server's reply to `QUIT` before closing the socket. */
const quitTimeout = Duration.seconds(1)

const fromClient = (client: Client) =>
  Effect.gen(function* () {
    // Connection errors reach callers as failed commands (IoRedisError,
    // RedisError); without a listener ioredis also prints each one to stderr.
    client.on("error", () => undefined)
    // QUIT, waiting for a server that never answers at most `quitTimeout`: then the socket is closed
    yield* Effect.addFinalizer(() =>
      Effect.tryPromise(() => client.quit()).pipe(
        Effect.timeout(quitTimeout),
        Effect.catchCause(() => Effect.sync(() => client.disconnect()))
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

// ---------------------------------------------------------------------------
// effect/persistence/Redis on ioredis
// ---------------------------------------------------------------------------

const redisError = (cause: unknown) => new Redis_.RedisError({ cause })

// The `Redis.Redis` contract leaves a reply's type to the caller (`send<A>`),
// as Effect's own NodeRedis does: the one unchecked conversion is here.
const reply = <A>(promise: Promise<unknown>): Promise<A> => promise as Promise<A>

const sendWith =
  (client: Client) =>
  <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis_.RedisError> =>
    Effect.tryPromise({ try: () => reply<A>(client.call(command, ...args)), catch: redisError })

const duplicate = (client: Client): Client => (client instanceof Cluster ? client.duplicate() : client.duplicate())

// A script's digest, computed once per script (hashing a large script on
// every call would cost tens of microseconds).
const digests = new WeakMap<object, string>()
const sha1Of = (script: { readonly lua: string }): string => {
  let sha = digests.get(script)
  if (sha === undefined) {
    sha = createHash("sha1").update(script.lua).digest("hex")
    digests.set(script, sha)
  }
  return sha
}

/**
 * Loads a function library on every node that may run it: the client's
 * server, or every master of a cluster (replicas get it by replication).
 */
const loadLibrary = async (client: Client, code: string): Promise<void> => {
  const nodes: ReadonlyArray<Redis<"legacy">> = client instanceof Cluster ? client.nodes("master") : [client]
  await Promise.all(nodes.map((node) => node.call("FUNCTION", "LOAD", "REPLACE", code)))
}

/** Clients whose server has no functions (before Redis 7): their scripts run as scripts. */
const withoutFunctions = new WeakSet<Client>()

/**
 * `Redis.eval`, cluster-safe: `EVALSHA` routed by the script's first key, and
 * on `NOSCRIPT` the same call as `EVAL`, which ioredis routes to the same node
 * (no `SCRIPT LOAD`, which a cluster would send to a random node).
 *
 * A script with a function form (`internal/lua.ts`, `asFunction`) runs as
 * `FCALL` instead, routed the same way; where the function is missing (a new
 * or restarted node), its library is loaded on every node and the call made
 * again; on a server without functions, as a script from then on.
 */
const evalWith =
  (client: Client): Redis_.Redis["Service"]["eval"] =>
  (script) => {
    const sha = sha1Of(script)
    const form = functionFormOf(script)
    const evalScript = async (keys: string, args: ReadonlyArray<string>) => {
      try {
        return await reply(client.call("EVALSHA", sha, keys, ...args))
      } catch (error) {
        if (!String(error).includes("NOSCRIPT")) throw error
        return await reply(client.call("EVAL", script.lua, keys, ...args))
      }
    }
    const callFunction = async (name: string, code: string, keys: string, args: ReadonlyArray<string>) => {
      try {
        return await reply(client.call("FCALL", name, keys, ...args))
      } catch (error) {
        const message = String(error)
        if (/unknown command/i.test(message)) {
          withoutFunctions.add(client)
          return await evalScript(keys, args)
        }
        if (!/function not found/i.test(message)) throw error
        await loadLibrary(client, code)
        return await reply(client.call("FCALL", name, keys, ...args))
      }
    }
    return (...params) => {
      const keys = String(script.numberOfKeys(...params))
      const args = script.params(...params).map((param) => String(param))
      return Effect.tryPromise({
        try: () =>
          form === undefined || withoutFunctions.has(client)
            ? evalScript(keys, args)
            : callFunction(form.name, form.code, keys, args),
        catch: redisError
      })
    }
  }

const makeRedis = (client: Client) =>
  Effect.map(
    Redis_.make({
      send: sendWith(client),
      connect: Effect.tryPromise({
        try: async () => {
          const connection = duplicate(client)
          await connection.connect().catch(() => undefined)
          return connection
        },
        catch: redisError
      }).pipe(
        Effect.map((connection) => ({
          send: sendWith(connection),
          close: Effect.sync(() => connection.disconnect())
        }))
      ),
      subscribe: (channel, onMessage) =>
        Effect.gen(function* () {
          const ended = yield* Deferred.make<void, Redis_.RedisError>()
          const subscriber = yield* Effect.acquireRelease(
            Effect.tryPromise({
              try: async () => {
                const connection = duplicate(client)
                connection.on("message", (from: string, message: string) => onMessage({ channel: from, message }))
                connection.on("end", () => Deferred.doneUnsafe(ended, Effect.void))
                await connection.subscribe(channel)
                return connection
              },
              catch: redisError
            }),
            (connection) => Effect.sync(() => connection.disconnect())
          )
          void subscriber
          return Deferred.await(ended)
        })
    }),
    (redis) => Redis_.Redis.of({ ...redis, eval: evalWith(client) })
  )

const withRedis = (made: Effect.Effect<IoRedis["Service"], IoRedisError, Scope.Scope>) =>
  Layer.effectContext(
    Effect.gen(function* () {
      const ioredis = yield* made
      const redis = yield* makeRedis(ioredis.client)
      return Context.make(IoRedis, ioredis).pipe(Context.add(Redis_.Redis, redis))
    })
  )

/**
 * Connects one standalone Redis server: provides the client (`IoRedis`) and
 * Effect's `Redis` service on it, so every Redis store (ours, and Effect's own
 * `layerStoreRedis`) runs on ioredis.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: RedisOptions & { readonly replyMapping?: "legacy" } = {}
): Layer.Layer<IoRedis | Redis_.Redis, IoRedisError> =>
  withRedis(
    Effect.suspend(() => fromClient(new Redis<"legacy">({ maxRetriesPerRequest: 1, ...options, lazyConnect: true })))
  )

/**
 * Connects a Redis Cluster through any of its nodes: provides the client
 * (`IoRedis`) and Effect's `Redis` service with a cluster-safe `eval`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerCluster = (
  nodes: ReadonlyArray<ClusterNode>,
  options: ClusterOptions & { readonly redisOptions?: { readonly replyMapping?: "legacy" } } = {}
): Layer.Layer<IoRedis | Redis_.Redis, IoRedisError> =>
  withRedis(Effect.suspend(() => fromClient(new Cluster<"legacy">([...nodes], { ...options, lazyConnect: true }))))
