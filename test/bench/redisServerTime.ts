/**
 * `node test/bench/redisServerTime.ts [suite ...] [--calls N] [--rounds R]`
 * (after `tsc -b tsconfig.build.json`, as `npm run bench` does): what the
 * Redis suites' contenders cost the Redis server, next to what they cost in
 * all. Writes nothing.
 *
 * Per contender and round, interleaved as the harness does (A B C, then
 * B C A, …): `CONFIG RESETSTAT`, N calls, then `INFO commandstats`, summing
 * the `usec` of `fcall`, `evalsha` and `eval` (the scripts' and functions'
 * time inside Redis, not the round trip) over N. Prints, per contender, the
 * median over the rounds of Redis µs per call and of total µs per call, and
 * the script calls per call. The first round is a warm-up.
 *
 * Suites: `circuit-breaker-redis` (default) and `rate-limiter-redis`.
 */

import { performance } from "node:perf_hooks"
import { IoRedis } from "@effect-resilience/redis"
import * as Context from "effect/Context"
import type { Suite } from "./harness.ts"
import { redisFixture } from "./redis.ts"
import { circuitBreakerRedis } from "./suites/circuitBreakerRedis.ts"
import { rateLimiterRedis } from "./suites/rateLimiterRedis.ts"

const known: ReadonlyArray<Suite> = [circuitBreakerRedis, rateLimiterRedis]

const args = process.argv.slice(2)
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(name)
  const value = at === -1 ? undefined : Number(args[at + 1])
  return value !== undefined && Number.isInteger(value) && value > 0 ? value : fallback
}
const calls = option("--calls", 2_000)
const rounds = option("--rounds", 7)
const wanted = args.filter((arg, i) => !arg.startsWith("--") && !args[i - 1]?.startsWith("--"))
const selected = wanted.length === 0 ? [circuitBreakerRedis] : known.filter((s) => wanted.includes(s.id))
if (selected.length === 0) {
  console.error(`no suite matches ${wanted.join(", ")}; suites: ${known.map((s) => s.id).join(", ")}`)
  process.exit(2)
}

const { connection } = await redisFixture()
const { client } = Context.get(connection, IoRedis.IoRedis)

/** Calls and µs spent in scripts and functions since the last `CONFIG RESETSTAT`. */
const scriptStats = async (): Promise<{ readonly calls: number; readonly usec: number }> => {
  const info = String(await client.call("INFO", "commandstats"))
  let total = { calls: 0, usec: 0 }
  for (const line of info.split("\r\n")) {
    const match = /^cmdstat_(fcall|evalsha|eval):calls=(\d+),usec=(\d+)/.exec(line)
    if (match !== null) total = { calls: total.calls + Number(match[2]), usec: total.usec + Number(match[3]) }
  }
  return total
}

const median = (sample: ReadonlyArray<number>): number => {
  const sorted = [...sample].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

for (const suite of selected) {
  for (const contender of suite.contenders) await contender.setup?.()
  const server = suite.contenders.map((): Array<number> => [])
  const total = suite.contenders.map((): Array<number> => [])
  const perCall = suite.contenders.map(() => 0)
  for (let round = 0; round <= rounds; round++) {
    const count = suite.contenders.length
    for (let k = 0; k < count; k++) {
      const at = (round + k) % count
      const contender = suite.contenders[at]
      if (contender === undefined) continue
      await client.call("CONFIG", "RESETSTAT")
      const start = performance.now()
      await contender.run(calls)
      const elapsed = performance.now() - start
      const stats = await scriptStats()
      // round 0 warms up
      if (round === 0) continue
      server[at]?.push(stats.usec / calls)
      total[at]?.push((elapsed * 1000) / calls)
      perCall[at] = stats.calls / calls
    }
  }
  console.log(`${suite.id}: Redis server time per call (median of ${rounds} rounds of ${calls} calls)`)
  console.log(
    `${"contender".padEnd(56)} ${"server µs".padStart(10)} ${"total µs".padStart(10)} ${"scripts".padStart(8)}`
  )
  for (const [i, contender] of suite.contenders.entries()) {
    const serverMicros = median(server[i] ?? []).toFixed(2)
    const totalMicros = median(total[i] ?? []).toFixed(1)
    const scripts = (perCall[i] ?? 0).toFixed(2)
    console.log(
      `${contender.name.padEnd(56)} ${serverMicros.padStart(10)} ${totalMicros.padStart(10)} ${scripts.padStart(8)}`
    )
  }
}
process.exit(0)
