/**
 * Separate Node processes sharing state through Redis: a quota holds across
 * all of them, and a circuit one process opens is open for the others.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Effect from "effect/Effect"

const worker = Path.join(import.meta.dirname, "fixtures", "shared-state-worker.ts")

/** Runs the worker in a Node process of its own; its JSON line. */
const run = (url: string, ...args: ReadonlyArray<string>): Effect.Effect<unknown> =>
  Effect.promise(
    () =>
      new Promise<unknown>((resolve, reject) => {
        ChildProcess.execFile(
          process.execPath,
          ["--conditions=@effect-resilience/source", worker, url, ...args],
          { timeout: 30_000 },
          (error, stdout, stderr) => {
            if (error !== null) reject(new Error(`${error.message}\n${stderr}`))
            else resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? "null"))
          }
        )
      })
  )

const allowedOf = (result: unknown): number =>
  typeof result === "object" && result !== null && "allowed" in result && typeof result.allowed === "number"
    ? result.allowed
    : -1

describe("state shared through Redis by separate processes", () => {
  it.live(
    "three processes asking 40 times each for one key of a 50-per-minute limiter: exactly 50 pass in all",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.startServer()
        const url = `redis://${server.host}:${server.port}`
        const results = yield* Effect.all(
          [run(url, "limit", "quota", "40"), run(url, "limit", "quota", "40"), run(url, "limit", "quota", "40")],
          { concurrency: "unbounded" }
        )
        const allowed = results.map(allowedOf)
        assert.isTrue(
          allowed.every((n) => n >= 0 && n <= 40),
          String(allowed)
        )
        assert.strictEqual(
          allowed.reduce((a, b) => a + b, 0),
          50
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a circuit one process opens is open in the next",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.startServer()
        const url = `redis://${server.host}:${server.port}`
        assert.deepStrictEqual(yield* run(url, "state", "payments"), { state: "Closed" })
        yield* run(url, "trip", "payments")
        assert.deepStrictEqual(yield* run(url, "state", "payments"), { state: "Open" })
      }).pipe(Effect.scoped),
    60_000
  )
})
