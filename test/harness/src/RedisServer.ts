/**
 * Real `redis-server` processes for tests: one standalone server, or a Redis
 * Cluster of 3 masters and 3 replicas, each on a free loopback port.
 *
 * **Details**
 *
 * - `layer` starts a server (or uses `REDIS_URL` when set), waits until it
 *   answers `PING`, and stops it when the layer's scope closes — also when a
 *   test fails.
 * - `layerCluster` starts six `--cluster-enabled yes` servers, joins them with
 *   `redis-cli --cluster create`, and waits until every node reports
 *   `cluster_state:ok` (or uses `REDIS_CLUSTER_NODES=host:port,...` when set).
 * - Every spawned server has a watchdog process that kills it when the test
 *   process dies without running finalizers (a crashed or killed worker), so no
 *   server outlives the run.
 * - Without `redis-server` on PATH and without `REDIS_URL`, acquisition fails at
 *   once with {@link RedisFixtureError} saying how to install it.
 *
 * **Example** (Sharing one server across a block)
 *
 * ```ts
 * import { it } from "@effect-resilience/test-harness/vitest"
 * import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
 *
 * it.layer(RedisServer.layer)((it) => {
 *   it.effect("pings", () => RedisServer.RedisServer)
 * })
 * ```
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"

/** How to get a Redis server for the tests, printed when none can be had. */
export const installHint: string =
  "redis-server is not on PATH and REDIS_URL is not set. The Redis tests need a real Redis 7 server: " +
  "install it (Debian/Ubuntu: `apt-get update && apt-get install -y redis-server`; macOS: `brew install redis`) " +
  "or point REDIS_URL at a running server (and REDIS_CLUSTER_NODES=host:port,... at a cluster)."

/** A fixture could not start, reach or stop Redis. */
export class RedisFixtureError extends Data.TaggedError("RedisFixtureError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** A loopback address of one Redis node. */
export interface RedisNode {
  readonly host: string
  readonly port: number
  /** The server's process id when this fixture started it; `undefined` for an external server. */
  readonly pid: number | undefined
}

/** A standalone Redis server. */
export class RedisServer extends Context.Service<
  RedisServer,
  RedisNode & {
    /** `redis://host:port` */
    readonly url: string
  }
>()("@effect-resilience/test-harness/RedisServer") {}

/** A Redis Cluster: three masters, each with one replica. */
export class RedisCluster extends Context.Service<
  RedisCluster,
  {
    /** Every node, masters and replicas; any of them seeds a cluster client. */
    readonly nodes: ReadonlyArray<RedisNode>
  }
>()("@effect-resilience/test-harness/RedisCluster") {}

// ---------------------------------------------------------------------------
// process helpers
// ---------------------------------------------------------------------------

/** Whether a binary answers `--version`. */
export const hasBinary = (name: string): boolean => {
  const result = spawnSync(name, ["--version"], { stdio: "ignore" })
  return result.error === undefined && result.status === 0
}

/** Whether a process with this id is alive. */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const listenOnce = (port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.unref()
    server.once("error", () => resolve(undefined))
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : undefined
      server.close(() => resolve(bound))
    })
  })

/**
 * A free loopback port. With `withBus`, `port + 10000` (the cluster bus port)
 * is free too.
 */
export const freePort = (withBus = false): Effect.Effect<number, RedisFixtureError> =>
  Effect.tryPromise({
    try: async () => {
      for (let i = 0; i < 200; i++) {
        const port = await listenOnce(0)
        if (port === undefined) continue
        if (!withBus) return port
        if (port + 10000 > 65535) continue
        if ((await listenOnce(port + 10000)) !== undefined) return port
      }
      throw new Error("no free loopback port after 200 tries")
    },
    catch: (cause) => new RedisFixtureError({ message: "could not find a free loopback port", cause })
  })

/** Sends one inline command over a fresh socket and returns the raw reply. */
export const rawCommand = (port: number, command: string, host = "127.0.0.1"): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = Net.createConnection({ host, port })
    let data = ""
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no reply to ${command} from ${host}:${port}`))
    }, 1000)
    socket.setEncoding("utf8")
    socket.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on("data", (chunk: string) => {
      data += chunk
      // a simple or error reply ends with one CRLF; a bulk reply has its length first
      const bulk = /^\$(\d+)\r\n/.exec(data)
      const done = bulk === null ? data.endsWith("\r\n") : data.length >= bulk[0].length + Number(bulk[1]) + 2
      if (done) {
        clearTimeout(timer)
        socket.end()
        resolve(data)
      }
    })
    socket.write(`${command}\r\n`)
  })

const waitUntil = (
  what: string,
  check: () => Promise<boolean>,
  timeout: Duration.Input,
  exited: () => string | undefined = () => undefined
): Effect.Effect<void, RedisFixtureError> =>
  Effect.tryPromise({
    try: async () => {
      const deadline = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(timeout))
      for (;;) {
        const early = exited()
        if (early !== undefined) throw new Error(early)
        if (await check().catch(() => false)) return
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    },
    catch: (cause) =>
      new RedisFixtureError({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
  })

interface Spawned {
  readonly port: number
  readonly child: ChildProcess
  readonly dir: string
  readonly watchdog: ChildProcess
  readonly output: () => string
}

const spawnServer = (port: number, extraArgs: ReadonlyArray<string>): Spawned => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), `effect-resilience-redis-${port}-`))
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--protected-mode",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--dir",
      dir,
      "--loglevel",
      "warning",
      ...extraArgs
    ],
    { stdio: ["ignore", "pipe", "pipe"] }
  )
  let output = ""
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output = (output + chunk).slice(-4000)
  })
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output = (output + chunk).slice(-4000)
  })
  const watchdog =
    child.pid === undefined
      ? spawn("true", { stdio: "ignore" })
      : spawn(
          "sh",
          [
            "-c",
            'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null',
            "watchdog",
            String(process.pid),
            String(child.pid)
          ],
          { detached: true, stdio: "ignore" }
        )
  watchdog.unref()
  return { port, child, dir, watchdog, output: () => output }
}

const stopServer = (server: Spawned): Effect.Effect<void> =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        let hard: ReturnType<typeof setTimeout> | undefined
        const done = () => {
          clearTimeout(hard)
          try {
            server.watchdog.kill("SIGKILL")
          } catch {
            // already gone
          }
          Fs.rmSync(server.dir, { recursive: true, force: true })
          resolve()
        }
        if (server.child.exitCode !== null || server.child.signalCode !== null) return done()
        hard = setTimeout(() => server.child.kill("SIGKILL"), 3000)
        server.child.once("exit", done)
        server.child.kill("SIGTERM")
      })
  )

const exitedEarly = (server: Spawned) => (): string | undefined =>
  server.child.exitCode !== null || server.child.signalCode !== null
    ? `redis-server on port ${server.port} exited early (${server.child.exitCode ?? server.child.signalCode}): ${server.output().trim()}`
    : undefined

const pingOk = (port: number) => async (): Promise<boolean> => (await rawCommand(port, "PING")).startsWith("+PONG")

/**
 * Starts one `redis-server` on a free loopback port, scoped: the server stops
 * when the scope closes. A start that loses a port race is retried.
 */
export const startServer = (
  extraArgs: ReadonlyArray<string> = [],
  options: { readonly withBus?: boolean } = {}
): Effect.Effect<RedisNode, RedisFixtureError, Scope.Scope> =>
  Effect.gen(function* () {
    if (!hasBinary("redis-server")) return yield* new RedisFixtureError({ message: installHint })
    let lastError: RedisFixtureError | undefined
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = yield* freePort(options.withBus === true)
      const server = yield* Effect.acquireRelease(
        Effect.sync(() => spawnServer(port, extraArgs)),
        stopServer
      )
      const ready = yield* Effect.result(
        waitUntil(`redis-server on port ${port}`, pingOk(port), "10 seconds", exitedEarly(server))
      )
      if (ready._tag === "Success") return { host: "127.0.0.1", port, pid: server.child.pid }
      lastError = ready.failure
      yield* stopServer(server)
    }
    return yield* lastError ?? new RedisFixtureError({ message: "redis-server did not start" })
  })

const parseNodes = (value: string): ReadonlyArray<RedisNode> =>
  value
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)
    .map((entry) => {
      const at = entry.lastIndexOf(":")
      return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)), pid: undefined }
    })

// ---------------------------------------------------------------------------
// layers
// ---------------------------------------------------------------------------

/**
 * A standalone Redis server: `REDIS_URL` when set, otherwise a fresh
 * `redis-server` on a free loopback port, stopped when the layer is released.
 */
export const layer: Layer.Layer<RedisServer, RedisFixtureError> = Layer.effect(
  RedisServer,
  Effect.gen(function* () {
    const external = process.env.REDIS_URL
    if (external !== undefined && external !== "") {
      const url = new URL(external)
      return RedisServer.of({
        host: url.hostname,
        port: Number(url.port === "" ? 6379 : url.port),
        pid: undefined,
        url: external
      })
    }
    const node = yield* startServer()
    return RedisServer.of({ ...node, url: `redis://${node.host}:${node.port}` })
  })
)

/** The node serves every slot and knows all six nodes (gossip reaches the last node a little after the first). */
const clusterStateOk = (node: RedisNode) => async (): Promise<boolean> => {
  const info = await rawCommand(node.port, "CLUSTER INFO", node.host)
  return info.includes("cluster_state:ok") && info.includes("cluster_known_nodes:6") && info.includes("cluster_size:3")
}

/**
 * A Redis Cluster of 3 masters and 3 replicas: `REDIS_CLUSTER_NODES` when set,
 * otherwise six fresh `redis-server --cluster-enabled yes` processes joined by
 * `redis-cli --cluster create` and waited on until every node reports
 * `cluster_state:ok` and knows all six nodes.
 */
export const layerCluster: Layer.Layer<RedisCluster, RedisFixtureError> = Layer.effect(
  RedisCluster,
  Effect.gen(function* () {
    const external = process.env.REDIS_CLUSTER_NODES
    if (external !== undefined && external !== "") return RedisCluster.of({ nodes: parseNodes(external) })
    if (!hasBinary("redis-cli")) return yield* new RedisFixtureError({ message: installHint })
    const nodes = yield* Effect.forEach(
      [0, 1, 2, 3, 4, 5],
      () =>
        startServer(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000", "--appendonly", "no"], {
          withBus: true
        }),
      { concurrency: "unbounded" }
    )
    const create = yield* Effect.promise(
      () =>
        new Promise<{ readonly code: number | null; readonly output: string }>((resolve) => {
          const child = spawn(
            "redis-cli",
            [
              "--cluster",
              "create",
              ...nodes.map((node) => `${node.host}:${node.port}`),
              "--cluster-replicas",
              "1",
              "--cluster-yes"
            ],
            { stdio: ["ignore", "pipe", "pipe"] }
          )
          let output = ""
          child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
          child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
          child.once("error", (error) => resolve({ code: -1, output: String(error) }))
          child.once("exit", (code) => resolve({ code, output }))
        })
    )
    if (create.code !== 0) {
      return yield* new RedisFixtureError({
        message: `redis-cli --cluster create failed: ${create.output.slice(-2000)}`
      })
    }
    yield* Effect.forEach(
      nodes,
      (node) => waitUntil(`cluster_state:ok with 6 nodes on port ${node.port}`, clusterStateOk(node), "30 seconds"),
      {
        concurrency: "unbounded",
        discard: true
      }
    )
    return RedisCluster.of({ nodes })
  })
)
