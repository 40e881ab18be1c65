/**
 * `npm run bench [-- --quick] [-- suite-id-or-prefix ...]`: runs the benchmark suites
 * and writes docs/benchmarks/<suite>.json and docs/benchmarks.md. Run it on an
 * idle machine; `--expose-gc` is set by the npm script so heap figures are
 * measured after a collection.
 *
 * Each suite runs in a Node process of its own, its contenders interleaved
 * in it: code the JIT compiled for one suite (a megamorphic run loop, say)
 * never slows the next one, so a suite's figures do not depend on which
 * suites ran before it.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { runSuite, type Suite, type SuiteResult, writeResults } from "./harness.ts"
import { adaptiveThrottleSuites } from "./suites/adaptiveThrottle.ts"
import { adaptiveThrottleLocalFirst } from "./suites/adaptiveThrottleLocalFirst.ts"
import { bulkheadSuites } from "./suites/bulkhead.ts"
import { circuitBreakerSuites } from "./suites/circuitBreaker.ts"
import { circuitBreakerLocalFirst } from "./suites/circuitBreakerLocalFirst.ts"
import { circuitBreakerRedis } from "./suites/circuitBreakerRedis.ts"
import { fallbackSuites } from "./suites/fallback.ts"
import { floor } from "./suites/floor.ts"
import { hedgeSuites } from "./suites/hedge.ts"
import { loadBalancerSuites } from "./suites/loadBalancer.ts"
import { loadSheddingSuites } from "./suites/loadShedding.ts"
import { policySuite } from "./suites/policy.ts"
import { rateLimiterSuites } from "./suites/rateLimiter.ts"
import { rateLimiterRedis } from "./suites/rateLimiterRedis.ts"
import { registrySuite } from "./suites/registry.ts"
import { resourcePoolSuites } from "./suites/resourcePool.ts"
import { retrySuites } from "./suites/retry.ts"

/** Every suite, in the order docs/benchmarks.md lists them. */
export const suites: ReadonlyArray<Suite> = [
  floor,
  ...circuitBreakerSuites,
  circuitBreakerRedis,
  circuitBreakerLocalFirst,
  ...retrySuites,
  ...hedgeSuites,
  ...rateLimiterSuites,
  rateLimiterRedis,
  ...bulkheadSuites,
  ...resourcePoolSuites,
  ...fallbackSuites,
  ...loadBalancerSuites,
  ...loadSheddingSuites,
  ...adaptiveThrottleSuites,
  adaptiveThrottleLocalFirst,
  policySuite,
  registrySuite
]

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const childAt = args.indexOf("--child")

if (childAt !== -1) {
  // a child: run one suite, hand its result back through a file
  const [id, out] = args.slice(childAt + 1)
  const suite = suites.find((s) => s.id === id)
  if (suite === undefined || out === undefined) {
    console.error(`bench child: no suite ${id ?? "(none)"} or no output file`)
    process.exit(2)
  }
  const result = await runSuite(suite, { quick, log: console.log })
  Fs.writeFileSync(out, JSON.stringify(result))
  // suites keep their instances (and a limiter's sweep fiber) alive in scopes
  // that are never closed; the run is over
  process.exit(0)
}

const wanted = args.filter((arg) => !arg.startsWith("--"))
// a name selects the suite of that id, or every suite whose id starts with it and a dash (`bulkhead`: bulkhead-*)
const selected =
  wanted.length === 0
    ? suites
    : suites.filter((suite) => wanted.some((name) => suite.id === name || suite.id.startsWith(`${name}-`)))
if (selected.length === 0) {
  console.error(`no suite matches ${wanted.join(", ")}; suites: ${suites.map((s) => s.id).join(", ")}`)
  process.exit(2)
}

const scratch = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-resilience-bench-"))
const results: Array<SuiteResult> = []
try {
  for (const suite of selected) {
    console.log(`${suite.title}${quick ? " (quick)" : ""}`)
    const out = Path.join(scratch, `${suite.id}.json`)
    const child = ChildProcess.spawnSync(
      process.execPath,
      [...process.execArgv, import.meta.filename, ...(quick ? ["--quick"] : []), "--child", suite.id, out],
      { stdio: "inherit" }
    )
    if (child.status !== 0) {
      console.error(`suite ${suite.id} failed (exit ${child.status ?? child.signal})`)
      process.exit(1)
    }
    results.push(JSON.parse(Fs.readFileSync(out, "utf8")) as SuiteResult)
  }
} finally {
  Fs.rmSync(scratch, { recursive: true, force: true })
}
if (quick) {
  console.log("quick run: results not written")
} else {
  const docs = Path.join(import.meta.dirname, "..", "..", "docs")
  writeResults(
    docs,
    results,
    suites.map((suite) => suite.id)
  )
  console.log(`wrote ${Path.join(docs, "benchmarks.md")}`)
}
process.exit(0)
