import { spawn } from "node:child_process"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { IoRedis } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"

const waitForDeath = (pid: number, timeoutMs: number) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (!RedisServer.isAlive(pid)) return true
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return !RedisServer.isAlive(pid)
  })

describe("RedisServer fixture", () => {
  it.layer(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.map(RedisServer.RedisServer, (server) => IoRedis.layer({ host: server.host, port: server.port }))
      ),
      RedisServer.layer
    ),
    { timeout: "30 seconds" }
  )("standalone", (it) => {
    it.effect("round-trips commands through ioredis", () =>
      Effect.gen(function* () {
        const redis = yield* IoRedis.IoRedis
        assert.strictEqual(yield* redis.send("PING"), "PONG")
        yield* redis.send("SET", "fixture:key", "value-1")
        assert.strictEqual(yield* redis.send("GET", "fixture:key"), "value-1")
        assert.strictEqual(yield* redis.send("INCRBY", "fixture:counter", 41), 41)
        assert.strictEqual(yield* redis.send("INCR", "fixture:counter"), 42)
        const time = yield* redis.send("TIME")
        assert.isTrue(Array.isArray(time) && time.length === 2)
      })
    )

    it.effect("maps a command error to IoRedisError", () =>
      Effect.gen(function* () {
        const redis = yield* IoRedis.IoRedis
        yield* redis.send("SET", "fixture:string", "x")
        const error = yield* Effect.flip(redis.send("INCR", "fixture:string"))
        assert.strictEqual(error._tag, "IoRedisError")
        assert.match(error.message, /not an integer/)
      })
    )
  })

  it.layer(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.map(RedisServer.RedisCluster, (cluster) =>
          IoRedis.layerCluster(cluster.nodes.map(({ host, port }) => ({ host, port })))
        )
      ),
      RedisServer.layerCluster
    ),
    { timeout: "90 seconds" }
  )("cluster", (it) => {
    it.effect("has 3 masters and 3 replicas in cluster_state:ok", () =>
      Effect.gen(function* () {
        const cluster = yield* RedisServer.RedisCluster
        assert.strictEqual(cluster.nodes.length, 6)
        const redis = yield* IoRedis.IoRedis
        const info = String(yield* redis.send("CLUSTER", "INFO"))
        assert.include(info, "cluster_state:ok")
        assert.include(info, "cluster_size:3")
        assert.include(info, "cluster_known_nodes:6")
      })
    )

    it.effect("round-trips commands across slots through ioredis", () =>
      Effect.gen(function* () {
        const redis = yield* IoRedis.IoRedis
        // keys spread over all three masters; hash-tagged keys share a slot
        const keys = Array.from({ length: 30 }, (_, i) => `fixture:${i}`)
        yield* Effect.forEach(keys, (key, i) => redis.send("SET", key, String(i)), { discard: true })
        const values = yield* Effect.forEach(keys, (key) => redis.send("GET", key))
        assert.deepStrictEqual(
          values,
          keys.map((_, i) => String(i))
        )
        const slots = new Set(
          yield* Effect.forEach(keys, (key) => Effect.map(redis.send("CLUSTER", "KEYSLOT", key), Number))
        )
        assert.isAbove(slots.size, 3)
        const script = "return redis.call('INCRBY', KEYS[1], ARGV[1]) + redis.call('INCRBY', KEYS[2], ARGV[1])"
        assert.strictEqual(yield* redis.send("EVAL", script, 2, "{tenant}:a", "{tenant}:b", 5), 10)
      })
    )
  })

  it.effect("stops the server when the scope closes after a failing test body", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const node = yield* RedisServer.startServer().pipe(Scope.provide(scope))
      assert.isDefined(node.pid)
      const pid = node.pid ?? 0
      assert.isTrue(RedisServer.isAlive(pid))
      // the test body fails while the server is up …
      const exit = yield* Effect.exit(Effect.fail("boom").pipe(Scope.provide(scope)))
      assert.isTrue(Exit.isFailure(exit))
      // … and closing the scope (what it.layer / it.effect do) still stops it
      yield* Scope.close(scope, exit)
      assert.isTrue(yield* waitForDeath(pid, 5000))
    })
  )

  it.effect("a watchdog kills the server when the test process dies without finalizers", () =>
    Effect.gen(function* () {
      const script = Path.join(import.meta.dirname, "harness-test", "start-and-hang.ts")
      const child = spawn(process.execPath, ["--conditions=@effect-resilience/source", script], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      const pid = yield* Effect.promise(
        () =>
          new Promise<number>((resolve, reject) => {
            let out = ""
            child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
              out += chunk
              const match = /pid=(\d+)/.exec(out)
              if (match) resolve(Number(match[1]))
            })
            child.once("exit", (code) => reject(new Error(`child exited ${code}: ${out}`)))
          })
      )
      assert.isTrue(RedisServer.isAlive(pid))
      child.kill("SIGKILL")
      assert.isTrue(yield* waitForDeath(pid, 10_000))
    })
  )

  it.effect("fails at once with install instructions when redis-server is missing", () =>
    Effect.gen(function* () {
      const path = process.env.PATH
      const url = process.env.REDIS_URL
      process.env.PATH = "/nonexistent"
      delete process.env.REDIS_URL
      const started = Date.now()
      const exit = yield* Effect.exit(Layer.build(RedisServer.layer)).pipe(
        Effect.scoped,
        Effect.ensuring(
          Effect.sync(() => {
            process.env.PATH = path
            if (url !== undefined) process.env.REDIS_URL = url
          })
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.isBelow(Date.now() - started, 2000)
      const error = Exit.isFailure(exit) ? String(exit.cause) : ""
      assert.include(error, "redis-server is not on PATH")
      assert.include(error, "apt-get install -y redis-server")
    })
  )
})
