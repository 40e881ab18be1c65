/**
 * Runs a snippet in a plain Node process — no test runner, no source
 * condition — so that `import "@effect-resilience/core"` resolves through the
 * package's `exports` map to its built `dist/`. The packages' smoke tests use it
 * to prove what users get from npm works, not just the TypeScript sources.
 */
import { spawnSync } from "node:child_process"
import * as Path from "node:path"

/** The repository root: where `node_modules/@effect-resilience/*` link to the packages. */
export const repoRoot: string = Path.resolve(import.meta.dirname, "..", "..", "..")

/** What the snippet printed and how it ended. */
export interface Result {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  /** The Node version the snippet ran on. */
  readonly nodeVersion: string
}

/**
 * Runs an ES module snippet with the `node` on PATH, from the repository root.
 * Print a JSON line from the snippet and parse `stdout` to assert on it.
 */
export const run = (source: string): Result => {
  const result = spawnSync(process.execPath, ["--input-type=module", "--eval", source], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "" },
    timeout: 60_000
  })
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    nodeVersion: spawnSync(process.execPath, ["--version"], { encoding: "utf8" }).stdout.trim()
  }
}

/** Runs a snippet that prints one JSON value and returns it parsed; throws with stderr on failure. */
export const runJson = (source: string): unknown => {
  const result = run(source)
  if (result.status !== 0) throw new Error(`snippet exited ${result.status}:\n${result.stderr}`)
  return JSON.parse(result.stdout)
}
