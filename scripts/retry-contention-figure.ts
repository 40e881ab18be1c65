/**
 * Draws the contention figure of the retry guide: runs the experiment of
 * `scripts/retry-contention.ts` (the AWS Architecture Blog's "Exponential
 * Backoff And Jitter") for 10 to 100 clients, every jitter mode and ten
 * seeds, and writes
 *
 * - `docs/patterns/retry-contention.svg`: two line charts of the means over
 *   the seeds, total calls and completion time against clients (log scales);
 * - `docs/patterns/retry-contention.json`: the parameters, the means with
 *   their ranges, and every run;
 *
 * then prints the guide's tables (Markdown) to stdout. The library is imported
 * by name, so build first:
 *
 * ```sh
 * npx tsc -b tsconfig.build.json && node scripts/retry-contention-figure.ts
 * ```
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import { defaults, type Jitter, jitters, maxAttempts, type Result, sweep } from "./retry-contention.ts"

const root = Path.resolve(import.meta.dirname, "..")
const svgPath = Path.join(root, "docs", "patterns", "retry-contention.svg")
const jsonPath = Path.join(root, "docs", "patterns", "retry-contention.json")

/** The client counts on the x axis. */
export const clientCounts: ReadonlyArray<number> = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]

/** The seeds each point is averaged over. */
export const seeds: ReadonlyArray<number> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

/** A measurement over the seeds. */
export interface Spread {
  readonly mean: number
  readonly min: number
  readonly max: number
}

/** One point of the figure: a client count and a jitter mode, over every seed. */
export interface Point {
  readonly clients: number
  readonly jitter: Jitter
  readonly calls: Spread
  readonly completionMillis: Spread
}

/** One run, as stored in the JSON. */
export interface Run {
  readonly seed: number
  readonly clients: number
  readonly jitter: Jitter
  readonly calls: number
  readonly completionMillis: number
}

const round = (x: number, digits: number): number => {
  const scale = 10 ** digits
  return Math.round(x * scale) / scale
}

const spread = (xs: ReadonlyArray<number>): Spread => ({
  mean: round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length), 1),
  min: round(Math.min(...xs), 1),
  max: round(Math.max(...xs), 1)
})

/** Every run of the figure. */
export const runAll: Effect.Effect<ReadonlyArray<Run>> = Effect.forEach(seeds, (seed) =>
  Effect.map(sweep(clientCounts, { seed }), (results: ReadonlyArray<Result>) =>
    results.map(
      (r): Run => ({
        seed,
        clients: r.clients,
        jitter: r.jitter,
        calls: r.calls,
        completionMillis: round(r.completionMillis, 3)
      })
    )
  )
).pipe(Effect.map((rows) => rows.flat()))

/** The means over the seeds, by client count then jitter mode. */
export const summarize = (runs: ReadonlyArray<Run>): ReadonlyArray<Point> =>
  clientCounts.flatMap((clients) =>
    jitters.map((jitter): Point => {
      const mine = runs.filter((r) => r.clients === clients && r.jitter === jitter)
      return {
        clients,
        jitter,
        calls: spread(mine.map((r) => r.calls)),
        completionMillis: spread(mine.map((r) => r.completionMillis))
      }
    })
  )

// ---------------------------------------------------------------------------
// SVG
// ---------------------------------------------------------------------------

const colors: Record<Jitter, string> = {
  none: "#d62728",
  equal: "#ff7f0e",
  full: "#1f77b4",
  decorrelated: "#2ca02c"
}

const dashes: Record<Jitter, string> = {
  none: "",
  equal: "6 3",
  full: "",
  decorrelated: "2 3"
}

const escape = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const fmt = (x: number): string => String(round(x, 1))

const label = (value: number): string =>
  value >= 1_000_000 ? `${value / 1_000_000}M` : value >= 1_000 ? `${value / 1_000}k` : String(value)

interface Panel {
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
  readonly title: string
  readonly yTitle: string
  readonly value: (point: Point) => number
  readonly unit: string
}

/** One chart: axes, log-scale grid, a line per jitter mode. */
const panel = (points: ReadonlyArray<Point>, p: Panel): string => {
  const values = points.map(p.value).filter((v) => v > 0)
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values)))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)))
  const xMin = clientCounts[0] ?? 0
  const xMax = clientCounts[clientCounts.length - 1] ?? 1
  const sx = (clients: number) => p.x + ((clients - xMin) / (xMax - xMin)) * p.width
  const sy = (v: number) =>
    p.y + p.height - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * p.height
  const out: Array<string> = []
  out.push(`<g class="panel">`)
  out.push(
    `<text x="${fmt(p.x + p.width / 2)}" y="${fmt(p.y - 14)}" text-anchor="middle" class="title">${escape(p.title)}</text>`
  )
  // horizontal grid: 1, 2, 5 per decade; labels on powers of ten (and on 2 and 5 when the range is short)
  const decades = Math.round(Math.log10(hi / lo))
  for (let decade = lo; decade <= hi; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m
      if (v > hi) break
      const y = sy(v)
      const major = m === 1
      out.push(
        `<line x1="${fmt(p.x)}" x2="${fmt(p.x + p.width)}" y1="${fmt(y)}" y2="${fmt(y)}" class="${major ? "grid major" : "grid"}"/>`
      )
      if (major || decades <= 3) {
        out.push(`<text x="${fmt(p.x - 6)}" y="${fmt(y + 4)}" text-anchor="end" class="tick">${label(v)}</text>`)
      }
    }
  }
  // x axis ticks
  for (const clients of clientCounts) {
    const x = sx(clients)
    out.push(
      `<line x1="${fmt(x)}" x2="${fmt(x)}" y1="${fmt(p.y + p.height)}" y2="${fmt(p.y + p.height + 4)}" class="axis"/>`
    )
    out.push(`<text x="${fmt(x)}" y="${fmt(p.y + p.height + 18)}" text-anchor="middle" class="tick">${clients}</text>`)
  }
  out.push(`<rect x="${fmt(p.x)}" y="${fmt(p.y)}" width="${fmt(p.width)}" height="${fmt(p.height)}" class="frame"/>`)
  out.push(
    `<text x="${fmt(p.x + p.width / 2)}" y="${fmt(p.y + p.height + 38)}" text-anchor="middle" class="axis-title">clients</text>`
  )
  const yMid = p.y + p.height / 2
  out.push(
    `<text x="${fmt(p.x - 52)}" y="${fmt(yMid)}" text-anchor="middle" transform="rotate(-90 ${fmt(p.x - 52)} ${fmt(yMid)})" class="axis-title">${escape(p.yTitle)}</text>`
  )
  // one line per jitter mode
  for (const jitter of jitters) {
    const mine = points.filter((point) => point.jitter === jitter)
    const path = mine.map((point) => `${fmt(sx(point.clients))},${fmt(sy(p.value(point)))}`).join(" ")
    const dash = dashes[jitter] === "" ? "" : ` stroke-dasharray="${dashes[jitter]}"`
    out.push(`<polyline points="${path}" fill="none" stroke="${colors[jitter]}" stroke-width="2"${dash}/>`)
    for (const point of mine) {
      const v = p.value(point)
      out.push(
        `<circle cx="${fmt(sx(point.clients))}" cy="${fmt(sy(v))}" r="3" fill="${colors[jitter]}"><title>${jitter}, ${point.clients} clients: ${fmt(v)} ${p.unit}</title></circle>`
      )
    }
  }
  out.push(`</g>`)
  return out.join("\n")
}

/** The whole figure: a legend and the two panels. */
export const svg = (points: ReadonlyArray<Point>): string => {
  const width = 980
  const height = 470
  const legend = jitters
    .map((jitter, i) => {
      const x = 250 + i * 140
      const dash = dashes[jitter] === "" ? "" : ` stroke-dasharray="${dashes[jitter]}"`
      return [
        `<line x1="${x}" x2="${x + 28}" y1="52" y2="52" stroke="${colors[jitter]}" stroke-width="2"${dash}/>`,
        `<circle cx="${x + 14}" cy="52" r="3" fill="${colors[jitter]}"/>`,
        `<text x="${x + 34}" y="56" class="legend">${jitter}</text>`
      ].join("\n")
    })
    .join("\n")
  const common = { y: 100, width: 380, height: 290 }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-labelledby="retry-contention-title">`,
    `<title id="retry-contention-title">Retry contention: total calls and completion time by jitter mode (exponential backoff, base ${defaults.baseMillis} ms, cap ${defaults.capMillis} ms)</title>`,
    `<style>`,
    `text { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; fill: #222; }`,
    `.heading { font-size: 16px; font-weight: 600; }`,
    `.subheading { font-size: 12px; fill: #555; }`,
    `.title { font-size: 14px; font-weight: 600; }`,
    `.tick { font-size: 11px; fill: #444; }`,
    `.legend { font-size: 12px; }`,
    `.axis-title { font-size: 12px; }`,
    `.grid { stroke: #eee; stroke-width: 1; }`,
    `.grid.major { stroke: #ccc; }`,
    `.axis { stroke: #444; stroke-width: 1; }`,
    `.frame { fill: none; stroke: #444; stroke-width: 1; }`,
    `</style>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" class="heading">N clients, one compare-and-set write each, retried with Retry.exponential</text>`,
    `<text x="${width / 2}" y="${height - 12}" text-anchor="middle" class="subheading">base ${defaults.baseMillis} ms, cap ${defaults.capMillis} ms, ${defaults.workMillis} ms of work per attempt; TestClock; mean of ${seeds.length} seeds; generated by scripts/retry-contention-figure.ts</text>`,
    legend,
    panel(points, {
      ...common,
      x: 90,
      title: "Total calls (work)",
      yTitle: "calls (log scale)",
      value: (point) => point.calls.mean,
      unit: "calls"
    }),
    panel(points, {
      ...common,
      x: 570,
      title: "Completion time",
      yTitle: "TestClock ms until the last write (log scale)",
      value: (point) => point.completionMillis.mean,
      unit: "ms"
    }),
    `</svg>`,
    ``
  ].join("\n")
}

// ---------------------------------------------------------------------------
// Markdown tables (for docs/patterns/retry.md)
// ---------------------------------------------------------------------------

/** A table with a row per client count and a column per jitter mode. */
export const table = (points: ReadonlyArray<Point>, value: (point: Point) => Spread): string => {
  const header = `| clients | ${jitters.join(" | ")} |`
  const rule = `|---:|${jitters.map(() => "---:").join("|")}|`
  const rows = clientCounts.map((clients) => {
    const cells = jitters.map((jitter) => {
      const point = points.find((p) => p.clients === clients && p.jitter === jitter)
      if (point === undefined) return "—"
      const s = value(point)
      return s.min === s.max
        ? `${Math.round(s.mean)}`
        : `${Math.round(s.mean)} (${Math.round(s.min)}–${Math.round(s.max)})`
    })
    return `| ${clients} | ${cells.join(" | ")} |`
  })
  return [header, rule, ...rows].join("\n")
}

/** JSON with one line per field, and one line per element of an array of objects (diff-friendly, compact). */
export const json = (data: Record<string, unknown>): string => {
  const value = (v: unknown): string =>
    Array.isArray(v) && v.some((x) => typeof x === "object" && x !== null)
      ? `[\n${v.map((x) => `    ${JSON.stringify(x)}`).join(",\n")}\n  ]`
      : JSON.stringify(v)
  const fields = Object.entries(data).map(([key, v]) => `  ${JSON.stringify(key)}: ${value(v)}`)
  return `{\n${fields.join(",\n")}\n}\n`
}

if (import.meta.main) {
  const runs = await Effect.runPromise(runAll)
  const points = summarize(runs)
  const data = {
    description:
      "AWS Architecture Blog, Exponential Backoff And Jitter: N clients each make one optimistic-concurrency " +
      "(compare-and-set) write to one shared record, all starting at time 0, retrying Conflict with " +
      "Retry.exponential of @effect-resilience/core on Effect's TestClock. calls: attempts by all clients, first " +
      "attempts included; completionMillis: TestClock ms until the last write committed.",
    regenerate: "npx tsc -b tsconfig.build.json && node scripts/retry-contention-figure.ts",
    parameters: {
      baseMillis: defaults.baseMillis,
      capMillis: defaults.capMillis,
      workMillis: defaults.workMillis,
      factor: 2,
      maxAttempts,
      seeds,
      clients: clientCounts,
      jitters
    },
    summary: points,
    runs
  }
  Fs.writeFileSync(jsonPath, json(data))
  Fs.writeFileSync(svgPath, svg(points))
  console.log(`wrote ${Path.relative(root, svgPath)} and ${Path.relative(root, jsonPath)}`)
  console.log("\nTotal calls, mean of the seeds (min–max):\n")
  console.log(table(points, (point) => point.calls))
  console.log("\nCompletion time in TestClock ms, mean of the seeds (min–max):\n")
  console.log(table(points, (point) => point.completionMillis))
}
