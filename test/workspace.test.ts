/**
 * The workspace contract (issue 2): packages, exports, peers, pins, compiler
 * flags, the formatter's rules, the README's two commands and where the
 * benchmark peers live. Each assertion reads the real files.
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"

const root = Path.resolve(import.meta.dirname, "..")
const json = (file: string): Record<string, unknown> => JSON.parse(Fs.readFileSync(Path.join(root, file), "utf8"))
const record = (value: unknown): Record<string, unknown> =>
  typeof value === "object" && value !== null ? Object.fromEntries(Object.entries(value)) : {}

const packages = ["core", "redis", "opentelemetry", "http"] as const

describe("workspace contract", () => {
  it("four ESM packages with exports maps closing internals, effect as a peer, dist with .d.ts", () => {
    for (const name of packages) {
      const pkg = json(`packages/${name}/package.json`)
      assert.strictEqual(pkg.name, `@effect-resilience/${name}`)
      assert.strictEqual(pkg.type, "module")
      const exports = record(pkg.exports)
      assert.strictEqual(exports["./internal/*"], null, `${name} closes ./internal/*`)
      assert.strictEqual(record(record(exports["."])).types, "./dist/index.d.ts")
      assert.strictEqual(record(pkg.peerDependencies).effect, "^4.1.0")
      assert.isUndefined(record(pkg.dependencies).effect)
      assert.isTrue(Fs.existsSync(Path.join(root, `packages/${name}/dist/index.d.ts`)), `${name} is built`)
    }
    for (const dir of ["examples", "test", "test/bench", "docs"]) assert.isTrue(Fs.existsSync(Path.join(root, dir)))
  })

  it("root scripts, engines, .nvmrc and exact pins in one lock file", () => {
    const pkg = json("package.json")
    const scripts = record(pkg.scripts)
    for (const script of ["build", "check", "test", "bench", "demo", "docs"]) assert.isString(scripts[script], script)
    assert.strictEqual(record(pkg.engines).node, ">=22.19.0")
    assert.strictEqual(Fs.readFileSync(Path.join(root, ".nvmrc"), "utf8").trim(), "24")
    const lock = record(json("package-lock.json").packages)
    const version = (name: string) => String(record(lock[`node_modules/${name}`]).version)
    assert.match(version("effect"), /^4\.1\./)
    assert.match(version("@effect/platform-node"), /^4\.1\./)
    assert.match(version("@effect/opentelemetry"), /^4\.1\./)
    assert.match(version("@effect/vitest"), /^4\./)
    assert.match(version("vitest"), /^5\./)
    assert.match(version("ioredis"), /^6\./)
    assert.match(version("fast-check"), /^\d/)
    assert.match(version("typescript"), /^7\./)
    const devDependencies = record(pkg.devDependencies)
    for (const [name, range] of Object.entries(devDependencies))
      assert.match(String(range), /^\d/, `${name} is pinned exactly`)
  })

  it("strict TypeScript with exactOptionalPropertyTypes and noUncheckedIndexedAccess; references mirror the graph", () => {
    const options = record(json("tsconfig.base.json").compilerOptions)
    for (const flag of ["strict", "exactOptionalPropertyTypes", "noUncheckedIndexedAccess", "verbatimModuleSyntax"]) {
      assert.strictEqual(options[flag], true, flag)
    }
    for (const name of ["redis", "opentelemetry", "http"]) {
      const references = JSON.stringify(json(`packages/${name}/tsconfig.src.json`).references)
      assert.include(references, "../core/tsconfig.src.json", `${name} references core`)
    }
    assert.strictEqual(JSON.stringify(json("packages/core/tsconfig.src.json").references), "[]")
  })

  it("Biome fails on a semicolon and on single quotes, and passes Effect's look", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "biome-contract-"))
    const check = (source: string) => {
      const file = Path.join(dir, "sample.ts")
      Fs.writeFileSync(file, source)
      return spawnSync(
        process.execPath,
        [
          Path.join(root, "node_modules/@biomejs/biome/bin/biome"),
          "ci",
          `--config-path=${root}/biome.json`,
          "--vcs-enabled=false",
          file
        ],
        { encoding: "utf8" }
      ).status
    }
    try {
      assert.strictEqual(check('export const greeting = "hello"\n'), 0)
      assert.notStrictEqual(check('export const greeting = "hello";\n'), 0)
      assert.notStrictEqual(check("export const greeting = 'hello'\n"), 0)
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("the README gives exactly the two set-up commands, and requirements", () => {
    const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
    const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => (match[1] ?? "").trim())
    assert.deepStrictEqual(blocks, ["npm ci && npm run demo", "npm test"])
    assert.include(readme, "Node.js >= 22.19")
    assert.include(readme, "redis-server")
  })

  it("benchmark peers are dev dependencies of the bench workspace only", () => {
    const peers = ["cockatiel", "opossum", "rate-limiter-flexible"]
    const bench = record(json("test/bench/package.json").devDependencies)
    for (const peer of peers) assert.isString(bench[peer], peer)
    const others = [json("package.json"), ...packages.map((name) => json(`packages/${name}/package.json`))]
    for (const pkg of others) {
      for (const field of ["dependencies", "devDependencies", "peerDependencies"]) {
        for (const peer of peers) assert.isUndefined(record(pkg[field])[peer], `${peer} in ${String(pkg.name)}`)
      }
    }
    assert.match(String(record(bench).cockatiel), /^4\./)
    assert.match(String(record(bench).opossum), /^10\./)
    assert.match(String(record(bench)["rate-limiter-flexible"]), /^11\./)
  })
})
