/**
 * Turns the examples in doc comments into code that CI compiles and runs.
 *
 * `@effect/doctest` is not on the npm registry, so this small generator follows
 * its convention:
 *
 * - a ```` ```ts import.meta.vitest ```` fence becomes a vitest test
 *   (`build/doctests/<package>/<Module>.<n>.test.ts`): its imports are hoisted,
 *   its body runs inside `it(...)`, and a `// => value` line asserts that the
 *   line before it equals `value` (`assert.deepStrictEqual`);
 * - a plain ```` ```ts ```` fence (one that needs a server, say) becomes
 *   `…<n>.check.ts`, type-checked by `tsc -b` but not run.
 *
 * The guides in `docs/patterns/` and `docs/guides/` are checked too. A
 * guide's ```` ```ts ```` fences read as one program (later snippets use what
 * earlier ones declare), so each guide becomes one module,
 * `build/doctests/docs/<guide>.check.ts` (`guides-<guide>.check.ts` for
 * `docs/guides/`, `readme.check.ts` for the README's usage example), with the
 * snippets' imports merged at the top, type-checked
 * by `tsc -b`. Fences in other languages (```` ```js ````, ```` ```text ````)
 * are not checked.
 * Words after `ts` on a fence's opening line change that:
 *
 * - `from=<file>`: an excerpt of a program in the repository (an example CI
 *   runs); the generator fails unless the snippet is still in that file
 *   (whitespace and whole-line comments aside);
 * - `gen`: the snippet is the body of an `Effect.gen` (it uses `yield*`);
 * - `scope`: the snippet is a block of its own (its names do not clash with
 *   other snippets');
 * - `fragment`: left out (a signature or a partial expression shown for
 *   reading).
 *
 * A guide's hidden `<!-- doctest … -->` blocks (the comment's first line is
 * `<!-- doctest`, its last `-->`) hold what the snippets assume: imports and
 * `declare`d stand-ins for the caller's own functions.
 *
 * Generated files import the packages by name, so they see exactly what users
 * see. Run by `npm run check` and `npm test` before tsc and vitest.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
const outDir = Path.join(root, "build", "doctests")

/** One fenced example found in a source file. */
export interface Fence {
  readonly file: string
  readonly line: number
  readonly runnable: boolean
  readonly code: string
}

/** Finds the ```ts fences inside the doc comments of a source text. */
export const extractFences = (file: string, source: string): ReadonlyArray<Fence> => {
  const fences: Array<Fence> = []
  const lines = source.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const open = /^\s*\*\s?```ts( import\.meta\.vitest)?\s*$/.exec(lines[i] ?? "")
    if (open === null) continue
    const body: Array<string> = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const line = lines[j] ?? ""
      if (/^\s*\*\s?```\s*$/.test(line)) break
      body.push(line.replace(/^\s*\* ?/, ""))
    }
    fences.push({ file, line: i + 1, runnable: open[1] !== undefined, code: body.join("\n") })
    i = j
  }
  return fences
}

/**
 * Rewrites `// => value` lines into assertions on the line before them.
 * `const x = expr` followed by `// => v` asserts on `x`.
 */
export const toAssertions = (code: string): string => {
  const out: Array<string> = []
  for (const line of code.split("\n")) {
    const expected = /^(\s*)\/\/ => (.*)$/.exec(line)
    if (expected === null) {
      out.push(line)
      continue
    }
    let k = out.length - 1
    while (k >= 0 && (out[k] ?? "").trim() === "") k--
    const previous = out[k] ?? ""
    const declaration = /^(\s*)(?:const|let) (\w+)\s*=/.exec(previous)
    if (declaration !== null) {
      out.push(`${declaration[1]}assert.deepStrictEqual(${declaration[2]}, ${expected[2]})`)
    } else {
      out[k] = `${expected[1]}assert.deepStrictEqual(${previous.trim()}, ${expected[2]})`
    }
  }
  return out.join("\n")
}

const splitImports = (code: string): { readonly imports: ReadonlyArray<string>; readonly body: string } => {
  const imports: Array<string> = []
  const body: Array<string> = []
  for (const line of code.split("\n")) {
    if (/^import\s/.test(line)) imports.push(line)
    else body.push(line)
  }
  return { imports, body: body.join("\n") }
}

const sourceFiles = (dir: string): ReadonlyArray<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = Path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "internal" ? [] : sourceFiles(path)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : []
  })

/** A ```` ```ts ```` fence of a guide, with the words after `ts` on its opening line. */
export interface GuideFence {
  readonly line: number
  readonly info: ReadonlyArray<string>
  readonly code: string
}

/** What a guide holds for the checker: its ```` ```ts ```` fences and its hidden `<!-- doctest … -->` preludes. */
export const guideParts = (
  text: string
): { readonly fences: ReadonlyArray<GuideFence>; readonly preludes: ReadonlyArray<string> } => {
  const fences: Array<GuideFence> = []
  const preludes: Array<string> = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ""
    if (/^<!-- doctest\s*$/.test(line)) {
      let j = i + 1
      while (j < lines.length && !/^-->\s*$/.test(lines[j] ?? "")) j++
      preludes.push(lines.slice(i + 1, j).join("\n"))
      i = j
      continue
    }
    const open = /^```(\S*)(.*)$/.exec(line)
    if (open === null) continue
    let j = i + 1
    while (j < lines.length && !/^```\s*$/.test(lines[j] ?? "")) j++
    if (open[1] === "ts") {
      const info = (open[2] ?? "")
        .trim()
        .split(/\s+/)
        .filter((word) => word !== "")
      fences.push({ line: i + 1, info, code: lines.slice(i + 1, j).join("\n") })
    }
    i = j
  }
  return { fences, preludes }
}

/** Whether `snippet` appears in `source`, whitespace and whole-line comments aside. */
export const isExcerptOf = (snippet: string, source: string): boolean => squash(source).includes(squash(snippet))

/** Text without whitespace differences or whole-line comments, to find an excerpt in the file it was taken from. */
const squash = (text: string): string =>
  text
    .split("\n")
    .filter((line) => !/^\s*(\/\/.*|\/\*\*.*\*\/)\s*$/.test(line))
    .join("\n")
    .replace(/\s+/g, " ")
    .trim()

/** An import declaration, parsed enough to merge it with others from the same module. */
interface ParsedImport {
  readonly from: string
  readonly typeOnly: boolean
  readonly namespace: string | undefined
  readonly names: ReadonlyArray<string>
}

const parseImport = (line: string): ParsedImport | undefined => {
  const namespace = /^import (type )?\* as (\w+) from "([^"]+)"/.exec(line)
  if (namespace !== null) {
    return { from: namespace[3] ?? "", typeOnly: namespace[1] !== undefined, namespace: namespace[2], names: [] }
  }
  const named = /^import (type )?\{([^}]*)\} from "([^"]+)"/.exec(line)
  if (named === null) return undefined
  const names = (named[2] ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "")
  return { from: named[3] ?? "", typeOnly: named[1] !== undefined, namespace: undefined, names }
}

/**
 * Merges import lines: one named import per module (type-only where every
 * snippet imported it as a type), namespace imports kept once each.
 */
export const mergeImports = (lines: ReadonlyArray<string>): ReadonlyArray<string> => {
  const named = new Map<string, Map<string, boolean>>()
  const namespaces = new Set<string>()
  const other: Array<string> = []
  for (const line of lines) {
    const parsed = parseImport(line)
    if (parsed === undefined) {
      if (!other.includes(line)) other.push(line)
      continue
    }
    if (parsed.namespace !== undefined) {
      namespaces.add(`import ${parsed.typeOnly ? "type " : ""}* as ${parsed.namespace} from "${parsed.from}"`)
      continue
    }
    const names = named.get(parsed.from) ?? new Map<string, boolean>()
    for (const raw of parsed.names) {
      const typeOnly = parsed.typeOnly || raw.startsWith("type ")
      const name = raw.replace(/^type /, "")
      names.set(name, (names.get(name) ?? true) && typeOnly)
    }
    named.set(parsed.from, names)
  }
  const merged = [...named].map(([from, names]) => {
    const list = [...names]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, typeOnly]) => (typeOnly ? `type ${name}` : name))
    return `import { ${list.join(", ")} } from "${from}"`
  })
  return [...merged, ...namespaces, ...other]
}

/**
 * The folders of guides, and the prefix of their output files so that two
 * guides of the same name in different folders cannot overwrite each other.
 */
const guideDirs: ReadonlyArray<{ readonly dir: string; readonly prefix: string }> = [
  { dir: "patterns", prefix: "" },
  { dir: "guides", prefix: "guides-" }
]

/**
 * Writes one module per guide of every folder in `guideDirs`; returns how
 * many guides and fences. Throws when an excerpt (`from=<file>`) is not found
 * in its file.
 */
const generateGuides = (): { readonly guides: number; readonly fences: number } => {
  let guides = 0
  let count = 0
  for (const { dir, prefix } of guideDirs) {
    const generated = generateGuidesIn(Path.join(root, "docs", dir), prefix)
    guides += generated.guides
    count += generated.fences
  }
  // the README's usage example, as the guides' snippets
  const readme = generateGuide(Path.join(root, "README.md"), "readme")
  if (readme !== undefined) {
    guides++
    count += readme
  }
  return { guides, fences: count }
}

/** Writes one module per guide of one folder, named `<prefix><guide>.check.ts`. */
const generateGuidesIn = (guidesDir: string, prefix: string): { readonly guides: number; readonly fences: number } => {
  if (!Fs.existsSync(guidesDir)) return { guides: 0, fences: 0 }
  let guides = 0
  let count = 0
  for (const name of Fs.readdirSync(guidesDir).filter((file) => file.endsWith(".md"))) {
    const fences = generateGuide(Path.join(guidesDir, name), `${prefix}${Path.basename(name, ".md")}`)
    if (fences === undefined) continue
    guides++
    count += fences
  }
  return { guides, fences: count }
}

/**
 * Writes the module of one guide (`build/doctests/docs/<outName>.check.ts`):
 * the number of its fences, or `undefined` when it has none.
 */
const generateGuide = (file: string, outName: string): number | undefined => {
  const relative = Path.relative(root, file)
  const { fences, preludes } = guideParts(Fs.readFileSync(file, "utf8"))
  if (fences.length === 0) return undefined
  let count = 0
  const imports: Array<string> = []
  const sections: Array<string> = []
  for (const prelude of preludes) {
    const { imports: own, body } = splitImports(prelude)
    imports.push(...own)
    sections.push(`// ${relative}: prelude\n${body.trim()}`)
  }
  for (const fence of fences) {
    if (fence.info.includes("fragment")) continue
    count++
    const from = fence.info.find((word) => word.startsWith("from="))?.slice("from=".length)
    if (from !== undefined) {
      // an excerpt of a program CI compiles and runs: it must still be in it
      const source = Path.resolve(root, from)
      if (!Fs.existsSync(source) || !isExcerptOf(fence.code, Fs.readFileSync(source, "utf8"))) {
        throw new Error(`${relative}:${fence.line}: this snippet is not in ${from} (update one or the other)`)
      }
      continue
    }
    const { imports: own, body } = splitImports(fence.code)
    imports.push(...own)
    const code = fence.info.includes("gen")
      ? `export const snippet${fence.line} = Effect.gen(function* () {\n${body.trim()}\n})`
      : fence.info.includes("scope")
        ? `{\n${body.trim()}\n}`
        : body.trim()
    sections.push(`// ${relative}:${fence.line}\n${code}`)
  }
  const out = Path.join(outDir, "docs", `${outName}.check.ts`)
  Fs.mkdirSync(Path.dirname(out), { recursive: true })
  Fs.writeFileSync(
    out,
    [
      `// generated by scripts/doctests.ts from ${relative}; type-checked, not run`,
      ...mergeImports(imports),
      "",
      sections.join("\n\n"),
      "",
      "export {}",
      ""
    ].join("\n")
  )
  return count
}

/** Generates every doctest file; returns how many fences were found, runnable and checked-only. */
export const generate = (): {
  readonly runnable: number
  readonly checked: number
  readonly guides: number
  readonly guideFences: number
} => {
  Fs.rmSync(outDir, { recursive: true, force: true })
  let runnable = 0
  let checked = 0
  const packagesDir = Path.join(root, "packages")
  for (const pkg of Fs.readdirSync(packagesDir)) {
    const src = Path.join(packagesDir, pkg, "src")
    if (!Fs.existsSync(src)) continue
    for (const file of sourceFiles(src)) {
      const fences = extractFences(file, Fs.readFileSync(file, "utf8"))
      fences.forEach((fence, index) => {
        const relative = Path.relative(root, file)
        const base = Path.join(outDir, pkg, `${Path.basename(file, ".ts")}.${index + 1}`)
        Fs.mkdirSync(Path.dirname(base), { recursive: true })
        const { imports, body } = splitImports(fence.code)
        if (fence.runnable) {
          runnable++
          Fs.writeFileSync(
            `${base}.test.ts`,
            [
              `// generated by scripts/doctests.ts from ${relative}:${fence.line}; do not edit`,
              'import { assert, it } from "@effect/vitest"',
              ...imports,
              "",
              `it(${JSON.stringify(`${relative}:${fence.line}`)}, async () => {`,
              toAssertions(body)
                .split("\n")
                .map((line) => (line === "" ? line : `  ${line}`))
                .join("\n"),
              "})",
              ""
            ].join("\n")
          )
        } else {
          checked++
          Fs.writeFileSync(
            `${base}.check.ts`,
            [
              `// generated by scripts/doctests.ts from ${relative}:${fence.line}; type-checked, not run`,
              ...imports,
              "",
              "export const example = async () => {",
              body
                .split("\n")
                .map((line) => (line === "" ? line : `  ${line}`))
                .join("\n"),
              "}",
              ""
            ].join("\n")
          )
        }
      })
    }
  }
  const { guides, fences } = generateGuides()
  return { runnable, checked, guides, guideFences: fences }
}

if (import.meta.main) {
  const { runnable, checked, guides, guideFences } = generate()
  console.log(
    `doctests: ${runnable} runnable, ${checked} type-checked only; ${guideFences} snippets of ${guides} guides type-checked`
  )
}
