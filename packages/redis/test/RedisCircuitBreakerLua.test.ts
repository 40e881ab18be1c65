/**
 * The breaker's Lua engine against the TypeScript one it ports: random
 * configurations and random traces of admissions, outcomes (current and
 * stale) and forced states, run in one EVAL on a real redis-server, compared
 * after every operation — verdicts, transitions and every counter of the
 * circuit. Generations differ by design (Lua's are Redis microseconds), so
 * outcomes are matched by which admission they belong to.
 */
import { assert, describe, it } from "@effect/vitest"
import { IoRedis } from "@effect-resilience/redis"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import * as engine from "../../core/src/internal/circuitBreaker.ts"
import * as Lua from "../src/internal/circuitBreakerLua.ts"
import * as fixtures from "./fixtures.ts"

const standalone = fixtures.standalone()

type Op =
  | { readonly op: "admit"; readonly step: number }
  | {
      readonly op: "record"
      readonly step: number
      /** Which admission (counted back from the last) the outcome belongs to. */
      readonly back: number
      readonly outcome: engine.Outcome
      readonly durationMillis: number
      readonly hintMillis: number
    }
  | { readonly op: "force"; readonly step: number; readonly to: engine.ManualState }

/** The duration of the n-th consecutive opening, on both sides. */
const openMillisFor = (n: number): number => Math.min(50 * 2 ** (n - 1), 1_000)

/**
 * Runs the ops on a circuit held in the script (no keys touched): each op on
 * a copy, redone with the opening's duration when the engine asks for it.
 * Returns, per op, `[verdict, from, to, openMillis, openings, circuit JSON]`.
 */
const driver = `${Lua.definitions}${Lua.perCall}
local ops = cjson.decode(ARGV[2])
local start = tonumber(ARGV[3])
local function copy(c) return cjson.decode(cjson.encode(c)) end
local c = make(nextGeneration(0))
local gens = {}
local t = start
local out = {}
for _, o in ipairs(ops) do
  t = t + o.step
  local verdict, transition = "", nil
  for _ = 1, 5 do
    local attempt = copy(c)
    local need = nil
    if o.op == "admit" then
      local v, tr = admit(attempt, t)
      if v == "need" then need = tr else verdict, transition = v, tr end
    elseif o.op == "record" then
      local generation = gens[#gens - o.back]
      -- a rejected call never runs, so it has no outcome
      if generation ~= false then
        local tr, n = record(attempt, generation or "none", o.outcome, o.durationMillis, o.hintMillis, t)
        if tr == "need" then need = n else transition = tr end
      end
    else
      transition = force(attempt, o.to, t)
    end
    if need == nil then
      c = attempt
      break
    end
    -- the engine asked for the duration of the n-th opening: the same as the TypeScript side's
    openN = need
    openMillisGiven = math.min(50 * 2 ^ (need - 1), 1000)
  end
  if o.op == "admit" then gens[#gens + 1] = (verdict == "Admit" or verdict == "Probe") and c.generation end
  local from, to, millis, openings = "", "", "0", "0"
  if transition ~= nil then
    from, to, millis, openings = transition[1], transition[2], num(transition[3]), int(transition[4])
  end
  out[#out + 1] = { verdict, from, to, millis, openings, cjson.encode(c) }
end
return out
`

/**
 * The same ops through the store's operations (`admitCall`, `recordCall`,
 * `forceCall`) on a real key, with the script's clock set to the trace's
 * time: the hot paths (an admission on three fields, a record writing back
 * only the numbers and window), the reused tables, load and save, the index
 * touch and the replies as the client reads them; before each op, another
 * circuit (a longer time window, a ring) is loaded into the same tables, as
 * a library's breakers share them. Returns, per op,
 * `[verdict, from, to, openMillis, openings, circuit JSON]` read back from
 * the key; deletes its keys.
 */
const storeDriver = `${Lua.definitions}${Lua.perCall}
local ops = cjson.decode(ARGV[2])
local start = tonumber(ARGV[3])
local key = KEYS[1]
-- another breaker's circuit, loaded before every op into the same reused tables: a longer time window and a ring
local decoy = KEYS[3]
redis.call("HSET", decoy, "s", "Open", "g", "1", "t", "0", "n", struct.pack(PACKED, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
  12, 13, 14, 15, 16, 17, 18), "r", "0123012", "b", string.rep(struct.pack("<dddd", 1, 2, 3, 4), 12))
local VERDICTS = { "Admit", "Probe", "RejectOpen", "RejectHalfOpen", "RejectForced" }
local function text(x) if type(x) == "string" then return x end return num(x) end
local gens = {}
local t = start
local out = {}
for _, o in ipairs(ops) do
  t = t + o.step
  now, nowMicros = t, t * 1000
  openN, openMillisGiven = 0, 0
  load(decoy)
  local verdict, transition, admitted = "", nil, false
  for _ = 1, 5 do
    local need = nil
    if o.op == "admit" then
      local reply = admitCall(key)
      if type(reply) == "number" then
        need = reply
      elseif type(reply) == "string" then
        verdict, admitted = "Admit", reply
      else
        verdict = VERDICTS[reply[1]]
        if reply[4] ~= "" then transition = { reply[4], reply[5], reply[6], reply[7] } end
        admitted = (verdict == "Admit" or verdict == "Probe") and reply[2]
      end
    else
      local reply = 0
      if o.op == "record" then
        local generation = gens[#gens - o.back]
        -- a rejected call never runs, so it has no outcome
        if generation ~= false then
          reply = recordCall(key, generation or "none", o.outcome, o.durationMillis, o.hintMillis)
        end
      else
        reply = forceCall(key, o.to)
      end
      if type(reply) == "table" then transition = reply elseif reply > 0 then need = reply end
    end
    if need == nil then break end
    openN = need
    openMillisGiven = math.min(50 * 2 ^ (need - 1), 1000)
  end
  if o.op == "admit" then gens[#gens + 1] = admitted end
  local from, to, millis, openings = "", "", "0", "0"
  if transition ~= nil then
    from, to, millis, openings = transition[1], transition[2], text(transition[3]), text(transition[4])
  end
  out[#out + 1] = { verdict, from, to, millis, openings, cjson.encode(load(key) or make("0")) }
end
redis.call("DEL", key, KEYS[2], decoy)
return out
`

interface LuaCircuit {
  readonly state: string
  readonly consecutive: number
  readonly calls: number
  readonly failures: number
  readonly slow: number
  readonly openUntil: number
  readonly consecutiveOpenings: number
  readonly lastOpenMillis: number
  readonly backoffResetAt: number
  readonly halfOpenSince: number
  readonly probesAdmitted: number
  readonly probesInFlight: number
  readonly probeSuccesses: number
  readonly probeFailures: number
  readonly ring?: string
  readonly bucketEpoch?: ReadonlyArray<number>
  readonly bucketCalls?: ReadonlyArray<number>
  readonly bucketFailures?: ReadonlyArray<number>
  readonly bucketSlow?: ReadonlyArray<number>
}

type Numbers = ArrayLike<number> | undefined

/** A window as both sides compare it: the ring as its digits, the buckets as arrays. */
const windowOf = (
  ring: string | undefined,
  epoch: Numbers,
  calls: Numbers,
  failures: Numbers,
  slow: Numbers
): { readonly ring: string | undefined; readonly buckets: ReadonlyArray<ReadonlyArray<number>> | undefined } => ({
  ring,
  buckets:
    epoch === undefined
      ? undefined
      : [Array.from(epoch), Array.from(calls ?? []), Array.from(failures ?? []), Array.from(slow ?? [])]
})

const luaFields = (c: LuaCircuit) => ({
  ...fields(c),
  ...windowOf(c.ring, c.bucketEpoch, c.bucketCalls, c.bucketFailures, c.bucketSlow)
})

const tsFields = (c: engine.Circuit) => ({
  ...fields(c),
  ...windowOf(
    c.ring === undefined ? undefined : Array.from(c.ring).join(""),
    c.bucketEpoch,
    c.bucketCalls,
    c.bucketFailures,
    c.bucketSlow
  )
})

const fields = (c: LuaCircuit | engine.Circuit) => ({
  state: c.state,
  consecutive: c.consecutive,
  calls: c.calls,
  failures: c.failures,
  slow: c.slow,
  openUntil: c.openUntil,
  consecutiveOpenings: c.consecutiveOpenings,
  lastOpenMillis: c.lastOpenMillis,
  backoffResetAt: c.backoffResetAt,
  halfOpenSince: c.halfOpenSince,
  probesAdmitted: c.probesAdmitted,
  probesInFlight: c.probesInFlight,
  probeSuccesses: c.probeSuccesses,
  probeFailures: c.probeFailures
})

const isLuaCircuit = (u: unknown): u is LuaCircuit => typeof u === "object" && u !== null && "state" in u

/** The same trace through the TypeScript engine. */
const runTs = (config: engine.Config, ops: ReadonlyArray<Op>, start: number) => {
  let generation = 0
  const nextGeneration = () => ++generation
  const c = engine.make(nextGeneration())
  // the generation each admission ran with; undefined for a rejection (it never runs, so has no outcome)
  const gens: Array<number | undefined> = []
  const scratch: engine.Admission = { verdict: "Admit", transition: undefined }
  let t = start
  return ops.map((o) => {
    t += o.step
    let verdict = ""
    let transition: engine.Transition | undefined
    switch (o.op) {
      case "admit":
        engine.admit(c, t, config, openMillisFor, nextGeneration, scratch)
        verdict = scratch.verdict
        transition = scratch.transition
        gens.push(scratch.verdict === "Admit" || scratch.verdict === "Probe" ? c.generation : undefined)
        break
      case "record": {
        const index = gens.length - 1 - o.back
        if (index >= 0 && gens[index] === undefined) break
        transition = engine.record(
          c,
          gens[index] ?? -1,
          o.outcome,
          o.durationMillis,
          o.hintMillis,
          t,
          config,
          openMillisFor,
          nextGeneration
        )
        break
      }
      case "force":
        transition = engine.force(c, o.to, t, nextGeneration())
    }
    return {
      verdict,
      transition:
        transition === undefined
          ? undefined
          : [transition.from, transition.to, transition.openMillis, transition.consecutiveOpenings],
      circuit: tsFields(c)
    }
  })
}

const configArb: fc.Arbitrary<engine.Config> = fc
  .record({
    consecutiveFailures: fc.integer({ min: 0, max: 4 }),
    failureRateThreshold: fc.constantFrom(0, 0.25, 0.5, 1),
    slowCallRateThreshold: fc.constantFrom(0, 0.5, 1),
    slowCallMillis: fc.constantFrom(50, 200),
    windowType: fc.constantFrom("count" as const, "time" as const),
    windowSize: fc.integer({ min: 1, max: 6 }),
    bucketMillis: fc.constantFrom(100, 250, 1000),
    minimumCalls: fc.integer({ min: 1, max: 6 }),
    halfOpenPermittedCalls: fc.integer({ min: 1, max: 3 }),
    halfOpenSuccessesToClose: fc.integer({ min: 1, max: 3 }),
    halfOpenSuccessRate: fc.constantFrom(0, 0.5, 1),
    halfOpenMaxMillis: fc.constantFrom(Number.POSITIVE_INFINITY, 300, 2_000),
    maxOpenMillis: fc.constantFrom(1_000, 10_000)
  })
  .map((c) => ({
    ...c,
    slowCallMillis: c.slowCallRateThreshold > 0 ? c.slowCallMillis : Number.POSITIVE_INFINITY,
    bucketMillis: c.windowType === "time" ? c.bucketMillis : 1,
    minimumCalls: c.windowType === "count" ? Math.min(c.minimumCalls, c.windowSize) : c.minimumCalls,
    halfOpenSuccessesToClose: Math.min(c.halfOpenSuccessesToClose, c.halfOpenPermittedCalls)
  }))

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("admit" as const), step: fc.integer({ min: 0, max: 300 }) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("record" as const),
      step: fc.integer({ min: 0, max: 300 }),
      back: fc.constantFrom(0, 0, 0, 1, 2),
      outcome: fc.constantFrom("Success" as const, "Failure" as const, "Failure" as const, "Ignored" as const),
      durationMillis: fc.constantFrom(0, 10, 100, 300),
      hintMillis: fc.constantFrom(0, 0, 0, 700, 20_000)
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("force" as const),
      step: fc.integer({ min: 0, max: 300 }),
      to: fc.constantFrom(
        "Closed" as const,
        "Closed" as const,
        "Disabled" as const,
        "ForcedOpen" as const,
        "MetricsOnly" as const
      )
    })
  }
)

/**
 * A trace as calls make it: each admission's outcome is recorded at most once
 * (an outcome of an admission already recorded, or of none, is dropped).
 */
const realistic = (ops: ReadonlyArray<Op>): ReadonlyArray<Op> => {
  let admissions = 0
  const recorded = new Set<number>()
  return ops.filter((o) => {
    if (o.op === "admit") admissions++
    if (o.op !== "record") return true
    const target = admissions - 1 - o.back
    if (target < 0 || recorded.has(target)) return false
    recorded.add(target)
    return true
  })
}

/** The settings both drivers run with. */
const settingsOf = (config: engine.Config, base: string): string =>
  Lua.settingsText(config, {
    // long enough that no key expires (in real time) during a run; short enough that traces touch the index
    idleMillis: 60_000,
    maxKeys: 1000,
    // probe leases never lapse here: the TypeScript engine has none
    leaseMillis: 1e15,
    base,
    initialState: "Closed"
  })

const argsOf = (config: engine.Config, ops: ReadonlyArray<Op>, start: number, base: string): ReadonlyArray<string> => [
  settingsOf(config, base),
  JSON.stringify(ops),
  String(start)
]

const strings = (u: unknown): ReadonlyArray<ReadonlyArray<string>> =>
  Array.isArray(u) ? u.map((row) => (Array.isArray(row) ? row.map(String) : [])) : []

const base = (keys: ReadonlyArray<string>): string => keys[0]?.slice(0, -1) ?? "unused:"

/** Runs a driver over random configurations and traces, and compares every op's row with the TypeScript engine's. */
const sameAsEngine = (lua: string, keys: (run: number) => ReadonlyArray<string>, numRuns: number) =>
  Effect.gen(function* () {
    const { client } = yield* IoRedis.IoRedis
    const sha = String(yield* Effect.promise(() => client.call("SCRIPT", "LOAD", lua)))
    let run = 0
    yield* Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          configArb,
          fc.array(opArb, { minLength: 20, maxLength: 80 }).map(realistic),
          fc.integer({ min: 1_700_000_000_000, max: 1_800_000_000_000 }),
          async (config, ops, start) => {
            const runKeys = keys(run++)
            // the circuit's key is the base and its name, "k"
            const rows = strings(
              await client.call(
                "EVALSHA",
                sha,
                String(runKeys.length),
                ...runKeys,
                ...argsOf(config, ops, start, base(runKeys))
              )
            )
            const expected = runTs(config, ops, start)
            assert.strictEqual(rows.length, expected.length)
            for (const [i, row] of rows.entries()) {
              const [verdict = "", from = "", to = "", millis = "0", openings = "0", json = "{}"] = row
              const want = expected[i]
              if (want === undefined) continue
              const parsed: unknown = JSON.parse(json)
              if (!isLuaCircuit(parsed)) assert.fail(`op ${i}: not a circuit: ${json}`)
              const context = `op ${i} (${JSON.stringify(ops[i])})`
              assert.strictEqual(verdict, want.verdict, `${context}: verdict`)
              assert.deepStrictEqual(
                from === "" ? undefined : [from, to, Number(millis), Number(openings)],
                want.transition,
                `${context}: transition`
              )
              assert.deepStrictEqual(luaFields(parsed), want.circuit, `${context}: circuit`)
            }
          }
        ),
        { numRuns }
      )
    )
  }).pipe(Effect.provide(standalone))

describe("the breaker's Lua engine decides as the TypeScript one", () => {
  it.effect("random configurations and traces: same verdicts, transitions and counters after every operation", () =>
    sameAsEngine(driver, () => [], 500)
  )

  it.effect(
    "through the store's operations on a real key (hot paths, partial writes, reused tables): the same after every operation",
    () =>
      sameAsEngine(
        storeDriver,
        (run) => {
          const tag = `{lua-store-${run}-${Math.random().toString(36).slice(2)}}`
          return [`${tag}:c:k`, `${tag}:i`, `${tag}:c:decoy`]
        },
        300
      )
  )
})
