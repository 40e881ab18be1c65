/**
 * `npm run demo:live` end to end: the live demo process serves the dashboard
 * over its simulation, and the snapshot shows each phase of the scenario
 * (run with a short cycle): the balancer ejecting replica-b or its circuit
 * opening while it fails, then client-9 refused and on top of the
 * limiter's clients while it floods. Real time, bounded: the process stops
 * itself after 9 seconds.
 */
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"

interface Snapshot {
  readonly breakers: ReadonlyArray<{
    readonly circuits: ReadonlyArray<{ readonly key: string; readonly state: string }>
  }>
  readonly balancers: ReadonlyArray<{ readonly ejected: number; readonly failures: number }>
  readonly limiters: ReadonlyArray<{
    readonly rejected: number
    readonly topClients: ReadonlyArray<{ readonly key: string }>
  }>
  readonly bulkheads: ReadonlyArray<{ readonly admitted: number }>
  readonly throttles: ReadonlyArray<{ readonly admitted: number }>
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

describe("npm run demo:live", () => {
  it("serves the dashboard over the simulation; the snapshot follows the scenario", { timeout: 30_000 }, async () => {
    const child = spawn(
      process.execPath,
      [
        Path.join(import.meta.dirname, "..", "examples", "demo", "live.ts"),
        "--port",
        "0",
        "--cycle",
        "8",
        "--seconds",
        "12"
      ],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
    try {
      let url: string | undefined
      for (let i = 0; i < 100 && url === undefined; i++) {
        url = /dashboard: (http:\/\/\S+)/.exec(stdout)?.[1]
        if (url === undefined) await sleep(100)
      }
      assert.isDefined(url, `no dashboard line; stderr: ${stderr}`)
      const snapshot = async (): Promise<Snapshot> => (await fetch(`${url}/snapshot`)).json() as Promise<Snapshot>
      const page = await fetch(url ?? "")
      assert.strictEqual(page.status, 200)
      assert.include(await page.text(), "effect-resilience live demo")

      // replica-b fails from 2 s to 5 s: the balancer ejects it, or its circuit opens (whichever sees enough first)
      let failing = false
      for (let i = 0; i < 60 && !failing; i++) {
        const s = await snapshot()
        const b = s.breakers[0]?.circuits.find((c) => c.key === "replica-b")
        failing = (s.balancers[0]?.ejected ?? 0) > 0 || (b !== undefined && b.state !== "Closed")
        if (!failing) await sleep(100)
      }
      assert.isTrue(failing, "replica-b was ejected or its circuit opened while it failed")

      // client-9 floods from 5 s to 8 s: refused by the limiter, and its heaviest client
      let flooded = false
      for (let i = 0; i < 60 && !flooded; i++) {
        const s = await snapshot()
        const limiter = s.limiters[0]
        flooded = limiter !== undefined && limiter.rejected > 0 && limiter.topClients[0]?.key === "client-9"
        if (!flooded) await sleep(100)
      }
      assert.isTrue(flooded, "client-9 was refused and tops the limiter's clients")
      const s = await snapshot()
      assert.isAbove(s.bulkheads[0]?.admitted ?? 0, 0)
      assert.isAbove(s.throttles[0]?.admitted ?? 0, 0)
      assert.strictEqual(await exited, 0, stderr)
    } finally {
      child.kill()
    }
  })
})
