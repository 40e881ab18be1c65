/**
 * The benchmark harness: contenders of one suite run interleaved in one
 * process (A B C, then B C A, …), several rounds, each round timing a batch of
 * calls per contender. A suite reports, per contender, the median time per
 * call and its range over the rounds, and — when the suite names a baseline —
 * the time added over the baseline, computed round by round (each round's
 * contender minus the same round's baseline) so drift between rounds cancels.
 *
 * Results are written per suite to `docs/benchmarks/<suite>.json`, and
 * `docs/benchmarks.md` is re-rendered from every stored suite, so running one
 * suite updates its table and keeps the others.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"

/** One contender: `run(n)` performs `n` calls of the measured operation. */
export interface Contender {
  readonly name: string
  /** Where the contender comes from: `effect-resilience`, `cockatiel 4.0.0`, … */
  readonly library: string
  readonly run: (iterations: number) => Promise<void> | void
  /** Called once before the first round (open a breaker, fill a cache, …). */
  readonly setup?: (() => Promise<void> | void) | undefined
}

/** A suite: contenders measured against each other. */
export interface Suite {
  readonly id: string
  readonly title: string
  readonly description: string
  readonly contenders: ReadonlyArray<Contender>
  /** The contender every other one is compared with ("ns added over"). */
  readonly baseline?: string | undefined
  /** Calls per contender per round. */
  readonly iterations: number
  /** Rounds (default 10). */
  readonly rounds?: number | undefined
  /** Untimed warm-up rounds (default 2). */
  readonly warmup?: number | undefined
}

/** Median and range of a sample. */
export interface Stats {
  readonly median: number
  readonly min: number
  readonly max: number
}

/** What one contender measured. */
export interface ContenderResult {
  readonly name: string
  readonly library: string
  /** Nanoseconds per call. */
  readonly nsPerCall: Stats
  /** Nanoseconds added per call over the baseline, when the suite has one. */
  readonly addedNs?: Stats | undefined
  /** Heap bytes retained per call across the timed rounds (negative means freed). */
  readonly heapBytesPerCall: number
}

/** What one suite measured, with the environment it ran in. */
export interface SuiteResult {
  readonly id: string
  readonly title: string
  readonly description: string
  readonly baseline?: string | undefined
  readonly iterations: number
  readonly rounds: number
  readonly environment: Environment
  readonly results: ReadonlyArray<ContenderResult>
}

/** Where and when a suite ran. */
export interface Environment {
  readonly date: string
  readonly node: string
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly packages: Readonly<Record<string, string>>
}

// ---------------------------------------------------------------------------
// pure helpers (property-tested in test/bench-harness.test.ts)
// ---------------------------------------------------------------------------

/** Median, min and max of a non-empty sample; zeros for an empty one. */
export const stats = (sample: ReadonlyArray<number>): Stats => {
  if (sample.length === 0) return { median: 0, min: 0, max: 0 }
  const sorted = [...sample].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
  return { median, min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0 }
}

/**
 * The order contenders run in, round by round: a rotation, so every contender
 * takes every position equally often (A B C, B C A, C A B, …).
 */
export const schedule = (contenders: number, rounds: number): ReadonlyArray<ReadonlyArray<number>> =>
  Array.from({ length: rounds }, (_, round) =>
    Array.from({ length: contenders }, (_, position) => (position + round) % contenders)
  )

/** Per-round differences `a[i] - b[i]`. */
export const differences = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): ReadonlyArray<number> =>
  a.map((value, i) => value - (b[i] ?? 0))

// ---------------------------------------------------------------------------
// running
// ---------------------------------------------------------------------------

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect !== undefined) collect()
}

const timeBatch = async (contender: Contender, iterations: number): Promise<number> => {
  const start = performance.now()
  await contender.run(iterations)
  return ((performance.now() - start) * 1e6) / iterations
}

/** Reads the installed version of a package, or `"-"`. */
export const packageVersion = (name: string): string => {
  try {
    const file = Path.join(import.meta.dirname, "..", "..", "node_modules", name, "package.json")
    return (JSON.parse(Fs.readFileSync(file, "utf8")) as { version: string }).version
  } catch {
    return "-"
  }
}

/** The environment of this process. */
export const environment = (packages: ReadonlyArray<string>): Environment => ({
  date: new Date().toISOString(),
  node: process.version,
  cpu: Os.cpus()[0]?.model ?? "unknown",
  cores: Os.cpus().length,
  memoryGiB: Math.round(Os.totalmem() / 2 ** 30),
  packages: Object.fromEntries(packages.map((name) => [name, packageVersion(name)]))
})

/** The packages whose versions every result records. */
export const trackedPackages: ReadonlyArray<string> = [
  "effect",
  "@effect-resilience/core",
  "cockatiel",
  "opossum",
  "rate-limiter-flexible"
]

/** Runs one suite: warm-up, then interleaved timed rounds. */
export const runSuite = async (
  suite: Suite,
  options: { readonly quick?: boolean | undefined; readonly log?: ((line: string) => void) | undefined } = {}
): Promise<SuiteResult> => {
  const log = options.log ?? (() => {})
  const rounds = options.quick === true ? 2 : (suite.rounds ?? 10)
  const warmup = options.quick === true ? 1 : (suite.warmup ?? 2)
  const iterations = options.quick === true ? Math.max(10, Math.floor(suite.iterations / 1000)) : suite.iterations
  const contenders = suite.contenders
  for (const contender of contenders) await contender.setup?.()
  for (let round = 0; round < warmup; round++) {
    for (const contender of contenders) await contender.run(iterations)
  }
  const samples: Array<Array<number>> = contenders.map(() => [])
  const heap: Array<number> = contenders.map(() => 0)
  for (const order of schedule(contenders.length, rounds)) {
    for (const index of order) {
      const contender = contenders[index]
      if (contender === undefined) continue
      gc()
      const before = process.memoryUsage().heapUsed
      samples[index]?.push(await timeBatch(contender, iterations))
      gc()
      heap[index] = (heap[index] ?? 0) + (process.memoryUsage().heapUsed - before)
    }
  }
  const baselineIndex = suite.baseline === undefined ? -1 : contenders.findIndex((c) => c.name === suite.baseline)
  const baselineSample = samples[baselineIndex]
  const results = contenders.map((contender, index): ContenderResult => {
    const sample = samples[index] ?? []
    return {
      name: contender.name,
      library: contender.library,
      nsPerCall: stats(sample),
      ...(baselineSample !== undefined && index !== baselineIndex
        ? { addedNs: stats(differences(sample, baselineSample)) }
        : {}),
      heapBytesPerCall: (heap[index] ?? 0) / (iterations * rounds)
    }
  })
  for (const result of results) {
    log(
      `  ${result.name.padEnd(48)} ${result.nsPerCall.median.toFixed(0).padStart(8)} ns/call` +
        (result.addedNs === undefined ? "" : `  (+${result.addedNs.median.toFixed(0)} ns)`)
    )
  }
  return {
    id: suite.id,
    title: suite.title,
    description: suite.description,
    ...(suite.baseline === undefined ? {} : { baseline: suite.baseline }),
    iterations,
    rounds,
    environment: environment(trackedPackages),
    results
  }
}

// ---------------------------------------------------------------------------
// reporting
// ---------------------------------------------------------------------------

const fmt = (n: number): string => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2))

const range = (s: Stats): string => `${fmt(s.min)} – ${fmt(s.max)}`

/** Renders one suite as a Markdown section. */
export const renderSuite = (suite: SuiteResult): string => {
  const env = suite.environment
  const hasBaseline = suite.baseline !== undefined
  const header = hasBaseline
    ? "| contender | library | ns/call (median) | range | ns added over baseline (median) | range | heap B/call |"
    : "| contender | library | ns/call (median) | range | heap B/call |"
  const divider = hasBaseline ? "|---|---|--:|--:|--:|--:|--:|" : "|---|---|--:|--:|--:|"
  const rows = suite.results.map((r) => {
    const base = `| ${r.name} | ${r.library} | ${fmt(r.nsPerCall.median)} | ${range(r.nsPerCall)} |`
    const added = hasBaseline
      ? r.addedNs === undefined
        ? " (baseline) | |"
        : ` ${fmt(r.addedNs.median)} | ${range(r.addedNs)} |`
      : ""
    return `${base}${added} ${fmt(r.heapBytesPerCall)} |`
  })
  return [
    `## ${suite.title}`,
    "",
    suite.description,
    "",
    `${suite.rounds} interleaved rounds of ${suite.iterations.toLocaleString("en-US")} calls per contender. ` +
      `Node ${env.node}, ${env.cpu} (${env.cores} cores, ${env.memoryGiB} GiB), ${env.date.slice(0, 10)}. ` +
      `Packages: ${Object.entries(env.packages)
        .map(([name, version]) => `${name} ${version}`)
        .join(", ")}.`,
    "",
    header,
    divider,
    ...rows,
    ""
  ].join("\n")
}

/** Renders `docs/benchmarks.md` from stored suite results, in suite order. */
/** The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens. */
export const headingSlug = (title: string): string =>
  title
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-")

export const renderAll = (suites: ReadonlyArray<SuiteResult>): string =>
  [
    "# Benchmarks",
    "",
    "<!-- generated by `npm run bench` from docs/benchmarks/*.json; do not edit by hand -->",
    "",
    "Every contender of a suite runs in one Node process, interleaved round by round (A B C, B C A, …), " +
      "so machine noise lands on all of them alike; each suite gets a fresh process, so no suite runs on code the " +
      "JIT compiled for another. Each row gives the median time per call over the rounds and " +
      "its range; where a suite has a baseline, the time a contender adds over it is computed per round and its " +
      "median and range reported. Heap bytes per call is the heap retained across timed batches divided by calls " +
      "(about zero when nothing accumulates). Numbers come from the machine named in each section; compare " +
      "contenders within a section, not across machines.",
    "",
    ...suites.map((suite) => `- [${suite.title}](#${headingSlug(suite.title)})`),
    "",
    ...suites.map(renderSuite)
  ].join("\n")

/** Writes one suite's JSON and re-renders the Markdown page from all stored suites. */
export const writeResults = (docsDir: string, results: ReadonlyArray<SuiteResult>, order: ReadonlyArray<string>) => {
  const dir = Path.join(docsDir, "benchmarks")
  Fs.mkdirSync(dir, { recursive: true })
  for (const result of results) {
    Fs.writeFileSync(Path.join(dir, `${result.id}.json`), `${JSON.stringify(result, null, 2)}\n`)
  }
  const stored = Fs.readdirSync(dir)
    .filter((file) => file.endsWith(".json"))
    .map((file) => JSON.parse(Fs.readFileSync(Path.join(dir, file), "utf8")) as SuiteResult)
    .sort((a, b) => {
      const ia = order.indexOf(a.id)
      const ib = order.indexOf(b.id)
      return (ia === -1 ? order.length : ia) - (ib === -1 ? order.length : ib)
    })
  Fs.writeFileSync(Path.join(docsDir, "benchmarks.md"), renderAll(stored))
}
