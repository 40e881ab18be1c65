/**
 * The Redis a test file runs against: one server (or one cluster) started
 * before the file's cases and stopped after them, provided as a layer every
 * case can use (a store layer built per case connects to the same server);
 * and, for the cases that stop and restart Redis, a server of their own.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
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

/** A name no other case or run uses (keys of different cases never meet on the shared server). */
export const unique = (label: string): string => `${label}-${Math.random().toString(36).slice(2)}`

/** A redis-server on a fixed port that the test can stop and start again. */
export const ownServer = (port: number, label = "redis") =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), `${label}-${port}-`))
      const child = ChildProcess.spawn(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
        { stdio: "ignore" }
      )
      for (let i = 0; i < 400; i++) {
        const pong = await RedisServer.rawCommand(port, "PING").catch(() => "")
        if (pong.startsWith("+PONG")) break
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
      return { child, dir }
    }),
    ({ child, dir }) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            const done = () => {
              Fs.rmSync(dir, { recursive: true, force: true })
              resolve()
            }
            if (child.exitCode !== null || child.signalCode !== null) return done()
            child.once("exit", done)
            child.kill("SIGKILL")
          })
      )
  )
