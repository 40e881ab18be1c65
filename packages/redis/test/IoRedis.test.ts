import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { IoRedis } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EffectCircuitBreaker from "effect/persistence/CircuitBreaker"
import * as Redis from "effect/persistence/Redis"
import * as Queue from "effect/Queue"
import { Cluster } from "ioredis"
import { asFunction } from "../src/internal/lua.ts"

const incrBoth = Redis.script((a: string, b: string, by: number) => [a, b, by], {
  lua: "return redis.call('INCRBY', KEYS[1], ARGV[1]) + redis.call('INCRBY', KEYS[2], ARGV[1])",
  numberOfKeys: 2
}).withReturnType<number>()

/** The same script, runnable as a Redis function: its definitions made once, when the library loads. */
const incrBothFunction = asFunction(
  Redis.script((a: string, b: string, by: number) => [a, b, by], {
    lua: "local function incr(key, by) return redis.call('INCRBY', key, by) end\nreturn incr(KEYS[1], ARGV[1]) + incr(KEYS[2], ARGV[1])",
    numberOfKeys: 2
  }).withReturnType<number>(),
  "local function incr(key, by) return redis.call('INCRBY', key, by) end\n",
  "return incr(KEYS[1], ARGV[1]) + incr(KEYS[2], ARGV[1])"
)
const libraries = (redis: Redis.Redis["Service"]) =>
  Effect.map(redis.send<ReadonlyArray<unknown>>("FUNCTION", "LIST"), (list) => list.length)

const standalone = Layer.unwrap(
  Effect.map(RedisServer.RedisServer, (server) => IoRedis.layer({ host: server.host, port: server.port }))
).pipe(Layer.provideMerge(RedisServer.layer))

const cluster = Layer.unwrap(
  Effect.map(RedisServer.RedisCluster, (c) => IoRedis.layerCluster(c.nodes.map(({ host, port }) => ({ host, port }))))
).pipe(Layer.provideMerge(RedisServer.layerCluster))

describe("IoRedis as effect/persistence/Redis", () => {
  it.layer(standalone, { timeout: "30 seconds" })("standalone", (it) => {
    it.effect("send, and eval falling back from EVALSHA to EVAL once, then cached", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.Redis
        assert.strictEqual(yield* redis.send<string>("PING"), "PONG")
        yield* redis.send("SCRIPT", "FLUSH")
        const sha = createHash("sha1").update(incrBoth.lua).digest("hex")
        assert.deepStrictEqual(yield* redis.send<ReadonlyArray<number>>("SCRIPT", "EXISTS", sha), [0])
        const run = redis.eval(incrBoth)
        // EVALSHA answers NOSCRIPT; the fallback EVAL runs it and caches it on the server
        assert.strictEqual(yield* run("{t}:a", "{t}:b", 2), 4)
        assert.deepStrictEqual(yield* redis.send<ReadonlyArray<number>>("SCRIPT", "EXISTS", sha), [1])
        assert.strictEqual(yield* run("{t}:a", "{t}:b", 3), 10)
      })
    )

    it.effect(
      "a script with a function form runs as FCALL: its library loaded where missing, again after a flush",
      () =>
        Effect.gen(function* () {
          const redis = yield* Redis.Redis
          yield* redis.send("FUNCTION", "FLUSH")
          const run = redis.eval(incrBothFunction)
          assert.strictEqual(yield* run("{f}:a", "{f}:b", 2), 4)
          assert.strictEqual(yield* libraries(redis), 1)
          // a restarted or new server has no library: loaded again on the call that misses it
          yield* redis.send("FUNCTION", "FLUSH")
          assert.strictEqual(yield* run("{f}:a", "{f}:b", 3), 10)
          assert.strictEqual(yield* libraries(redis), 1)
          // and never sent as a script
          assert.deepStrictEqual(
            yield* redis.send<ReadonlyArray<number>>(
              "SCRIPT",
              "EXISTS",
              createHash("sha1").update(incrBothFunction.lua).digest("hex")
            ),
            [0]
          )
        })
    )

    it.effect("subscribe receives what is published", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.Redis
        const messages = yield* redis.subscribe("news")
        // wait (on real round trips, no timer) until the subscription reached the server
        for (let i = 0; i < 1_000; i++) {
          const counts = yield* redis.send<ReadonlyArray<string | number>>("PUBSUB", "NUMSUB", "news")
          if (Number(counts[1]) > 0) break
        }
        assert.strictEqual(yield* redis.send<number>("PUBLISH", "news", "hello 1"), 1)
        const message = yield* Queue.take(messages)
        assert.strictEqual(message.channel, "news")
        assert.match(message.message, /^hello \d+$/)
      }).pipe(Effect.scoped)
    )

    it.effect("Effect's own CircuitBreaker.layerStoreRedis runs on it: two breakers share one circuit", () =>
      Effect.gen(function* () {
        const store = EffectCircuitBreaker.layerStoreRedis({ prefix: `cb-${Date.now()}:` })
        const make = EffectCircuitBreaker.make({
          tripPolicy: EffectCircuitBreaker.consecutive(1),
          openDuration: "1 minute"
        }).pipe(Effect.provide(store))
        const first = yield* make
        const second = yield* make
        yield* Effect.exit(Effect.fail("down").pipe(first.execute({ key: "payments" })))
        const state = yield* second.state("payments")
        assert.strictEqual(state._tag, "Open")
      }).pipe(Effect.scoped)
    )
  })

  it.layer(cluster, { timeout: "90 seconds" })("cluster", (it) => {
    it.effect("eval is cluster-safe: hash-tagged keys on every master, NOSCRIPT answered on the same node", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.Redis
        const run = redis.eval(incrBoth)
        const tags = Array.from({ length: 12 }, (_, i) => `tenant-${i}`)
        const slots = new Set<number>()
        for (const tag of tags) {
          slots.add(yield* redis.send<number>("CLUSTER", "KEYSLOT", `{${tag}}`))
          assert.strictEqual(yield* run(`{${tag}}:a`, `{${tag}}:b`, 1), 2)
          assert.strictEqual(yield* run(`{${tag}}:a`, `{${tag}}:b`, 1), 4)
        }
        assert.isAbove(slots.size, 3)
      })
    )

    it.effect("a function-form script on a cluster: the library is loaded on every master, calls routed by key", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.Redis
        const { client } = yield* IoRedis.IoRedis
        const run = redis.eval(incrBothFunction)
        for (let i = 0; i < 12; i++) assert.strictEqual(yield* run(`{fn-${i}}:a`, `{fn-${i}}:b`, 1), 2)
        if (!(client instanceof Cluster)) return assert.fail("a cluster client")
        for (const node of client.nodes("master")) {
          const list = yield* Effect.promise(() => node.call("FUNCTION", "LIST"))
          assert.isTrue(Array.isArray(list) && list.length === 1, `${node.options.port} holds the library`)
        }
      })
    )
  })
})
