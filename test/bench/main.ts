/**
 * `npm run bench [-- --quick] [-- suite-id ...]`: runs the benchmark suites
 * interleaved in this process and writes docs/benchmarks/<suite>.json and
 * docs/benchmarks.md. Run it on an idle machine; `--expose-gc` is set by the
 * npm script so heap figures are measured after a collection.
 */
import * as Path from "node:path"
import { runSuite, type Suite, type SuiteResult, writeResults } from "./harness.ts"
import { circuitBreakerSuites } from "./suites/circuitBreaker.ts"
import { floor } from "./suites/floor.ts"
import { rateLimiterSuites } from "./suites/rateLimiter.ts"
import { retrySuites } from "./suites/retry.ts"

/** Every suite, in the order docs/benchmarks.md lists them. */
export const suites: ReadonlyArray<Suite> = [floor, ...circuitBreakerSuites, ...retrySuites, ...rateLimiterSuites]

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const wanted = args.filter((arg) => !arg.startsWith("--"))
const selected = wanted.length === 0 ? suites : suites.filter((suite) => wanted.includes(suite.id))
if (selected.length === 0) {
  console.error(`no suite matches ${wanted.join(", ")}; suites: ${suites.map((s) => s.id).join(", ")}`)
  process.exit(2)
}

const results: Array<SuiteResult> = []
for (const suite of selected) {
  console.log(`${suite.title}${quick ? " (quick)" : ""}`)
  results.push(await runSuite(suite, { quick, log: console.log }))
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

// suites keep their instances (and a limiter's sweep fiber) alive in scopes
// that are never closed; the run is over
process.exit(0)
