import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { RateLimiter } from "@effect-resilience/core"
import { IoRedis } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as fc from "fast-check"
import * as engine from "../../core/src/internal/rateLimiter.ts"
import { numberArg, numberReply, prelude } from "../src/internal/lua.ts"
import {
  type AlgorithmConfigs,
  type AlgorithmName,
  algorithmNames,
  algorithms,
  configArgs,
  configArity,
  decodeDecision,
  decodeDecisionAt,
  inputArgs,
  type ReplyValue
} from "../src/internal/rateLimiterLua.ts"

// ---------------------------------------------------------------------------
// the Lua driver: one EVAL runs a whole trace
// ---------------------------------------------------------------------------

/**
 * ARGV: "trace", algorithm, k, k config values, start, then (kind, now, cost)
 * per operation. Replies { { ttlMillis, nextIndex }, dump(make), then per
 * operation its reply and dump(state) }, the state going through
 * encode/decode after make and after every operation.
 *
 * ARGV: "codec", algorithm, then a state's numbers as `dump` writes them.
 * Replies { { hex(encode(state)) }, dump(decode(encode(state))) }.
 *
 * ARGV: "minmax", a, b. Replies { { max(a, b), min(a, b) } }.
 *
 * ARGV: "decision", allowed ("1" or "0"), then a decision's five numbers.
 * Replies { decisionReply(decision) }.
 *
 * ARGV: "many", "", n, then per limit its algorithm, k and k config values,
 * then start, then (kind, now, cost) per operation, kind "check", "consume"
 * or "untouched" (a consume whose states must stay untouched when refused).
 * Replies, per operation, { charged ("1" or "0"), then each limit's
 * decision } from decideLimits and dump of every state in turn; after a
 * refused "consume" the states are decoded from their bytes before it, as
 * the store reads them again (it writes states back only when charged).
 */
const driver = `${prelude}${algorithms}
local FIELDS = {
  fixedWindow = { "window", "count" },
  slidingCounter = { "window", "previous", "current" },
  tokenBucket = { "milliTokens", "lastRefill" },
  leakyMeter = { "milliLevel", "lastLeak" },
  leakyQueue = { "nextFreeAt" },
  gcra = { "tat" },
  concurrency = { "inFlight" }
}
local name = ARGV[2]
local A = ALGORITHMS[name]
if A == nil and ARGV[1] ~= "minmax" and ARGV[1] ~= "decision" and ARGV[1] ~= "many" then
  error("no algorithm " .. tostring(name))
end
-- the state's numbers (of algorithm, by default name's): its fields in order; for the log, total then (time, cost) per entry
local function dump(s, algorithm)
  algorithm = algorithm or name
  local r = {}
  if algorithm == "slidingLog" then
    r[1] = num(s.total)
    for j = 1, #s.times do
      r[#r + 1] = num(s.times[j])
      r[#r + 1] = num(s.costs[j])
    end
  else
    for j, f in ipairs(FIELDS[algorithm]) do r[j] = num(s[f]) end
  end
  return r
end
local function undump(from)
  local s = {}
  if name == "slidingLog" then
    s = { total = arg(from, "total"), times = {}, costs = {} }
    local j = from + 1
    while j <= #ARGV do
      s.times[#s.times + 1] = arg(j, "time")
      s.costs[#s.costs + 1] = arg(j + 1, "cost")
      j = j + 2
    end
  else
    for j, f in ipairs(FIELDS[name]) do s[f] = arg(from + j - 1, f) end
  end
  return s
end
local function roundTrip(s) return A.decode(A.encode(s)) end

if ARGV[1] == "minmax" then
  local a, b = arg(2, "a"), arg(3, "b")
  return { { num(max(a, b)), num(min(a, b)) } }
end

if ARGV[1] == "many" then
  local count = tonumber(ARGV[3])
  local limits, i = {}, 4
  for j = 1, count do
    local algorithm = ALGORITHMS[ARGV[i]]
    local k = tonumber(ARGV[i + 1])
    local values = {}
    for v = 1, k do values[v] = arg(i + 1 + v, "config") end
    limits[j] = { algorithm = algorithm, config = algorithm.configOf(values, 1), name = ARGV[i] }
    i = i + 2 + k
  end
  local start = arg(i, "start")
  local states = {}
  for j = 1, count do states[j] = limits[j].algorithm.make(limits[j].config, start) end
  local outs = {}
  local function outAt(j)
    if outs[j] == nil then outs[j] = newDecision() end
    return outs[j]
  end
  local replies = {}
  i = i + 1
  while i <= #ARGV do
    local kind, at, cost = ARGV[i], arg(i + 1, "now"), arg(i + 2, "cost")
    local before = {}
    for j = 1, count do before[j] = limits[j].algorithm.encode(states[j]) end
    local charged = decideLimits(limits, count, states, at, cost, kind ~= "check", outAt, kind == "untouched")
    local r = { charged and "1" or "0" }
    for j = 1, count do appendDecision(r, 6 * j - 4, outAt(j)) end
    local d = {}
    for j = 1, count do
      local algorithm = limits[j].algorithm
      -- as the store: a charge is written back; after a refused consume, the states are read again as stored
      if charged or kind ~= "consume" then
        states[j] = algorithm.decode(algorithm.encode(states[j]))
      else
        states[j] = algorithm.decode(before[j])
      end
      for _, v in ipairs(dump(states[j], limits[j].name)) do d[#d + 1] = v end
    end
    replies[#replies + 1] = r
    replies[#replies + 1] = d
    i = i + 3
  end
  return replies
end

if ARGV[1] == "decision" then
  local out = { allowed = ARGV[2] == "1", limit = arg(3, "limit"), remaining = arg(4, "remaining"),
    resetMillis = arg(5, "resetMillis"), retryAfterMillis = arg(6, "retryAfterMillis"), delayMillis = arg(7, "delayMillis") }
  return { decisionReply(out) }
end

if ARGV[1] == "codec" then
  local bytes = A.encode(undump(3))
  local hex = string.gsub(bytes, ".", function(c) return string.format("%02x", string.byte(c)) end)
  return { { hex }, dump(A.decode(bytes)) }
end

local k = tonumber(ARGV[3])
local values = {}
for j = 1, k do values[j] = arg(3 + j, "config") end
local config, nextIndex = A.configOf(values, 1)
local i = 4 + k
local state = roundTrip(A.make(config, arg(i, "start")))
local replies = { { num(A.ttlMillis(config)), int(nextIndex) }, dump(state) }
local out = newDecision()
i = i + 1
while i <= #ARGV do
  local kind, at, cost = ARGV[i], arg(i + 1, "now"), arg(i + 2, "cost")
  local r = {}
  if kind == "check" then r = decisionReply(A.check(state, at, cost, config, out))
  elseif kind == "consume" then r = decisionReply(A.consume(state, at, cost, config, out))
  elseif kind == "refund" then A.refund(state, at, cost, config)
  elseif kind == "penalize" then A.penalize(state, at, cost, config)
  elseif kind == "isIdle" then r = { A.isIdle(state, at, config) and "1" or "0" }
  elseif kind == "release" then A.release(state, cost, config)
  else error("bad op " .. tostring(kind)) end
  state = roundTrip(state)
  replies[#replies + 1] = r
  replies[#replies + 1] = dump(state)
  i = i + 3
end
return replies
`

// ---------------------------------------------------------------------------
// one server for the file
// ---------------------------------------------------------------------------

const scope = Effect.runSync(Scope.make())
let client: IoRedis.Client | undefined
let sha = ""

beforeAll(async () => {
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      Layer.unwrap(
        Effect.map(RedisServer.RedisServer, (server) => IoRedis.layer({ host: server.host, port: server.port }))
      ).pipe(Layer.provide(RedisServer.layer)),
      scope
    )
  )
  client = Context.get(context, IoRedis.IoRedis).client
  sha = String(await client.call("SCRIPT", "LOAD", driver))
}, 120_000)

afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)), 60_000)

/** A reply's values: integer replies and strings, nothing else. */
const values = (u: unknown): Array<ReplyValue> => {
  if (!Array.isArray(u)) throw new Error(`expected an array reply, got ${String(u)}`)
  return u.map((x) => {
    if (typeof x !== "string" && typeof x !== "number")
      throw new Error(`expected a string or integer, got ${String(x)}`)
    return x
  })
}

const runDriver = async (args: ReadonlyArray<string>): Promise<Array<Array<ReplyValue>>> => {
  if (client === undefined) throw new Error("the Redis fixture did not start")
  const reply: unknown = await client.call("EVALSHA", sha, "0", ...args)
  if (!Array.isArray(reply)) throw new Error(`expected an array reply, got ${String(reply)}`)
  return reply.map(values)
}

/** A number as text that tells every float64 apart (`-0` included). */
const exact = (n: number): string => (Object.is(n, -0) ? "-0" : String(n))

// ---------------------------------------------------------------------------
// subjects: the TypeScript algorithms, with their Lua names
// ---------------------------------------------------------------------------

type OpKind = "check" | "consume" | "refund" | "penalize" | "isIdle" | "release"

interface Op {
  readonly kind: OpKind
  /** Added to the clock before the call: mostly >= 0, sometimes a small step back. */
  readonly dt: number
  readonly cost: number
}

interface Subject<A extends AlgorithmName, S> {
  readonly name: A
  readonly algo: engine.Algorithm<AlgorithmConfigs[A], S>
  readonly config: fc.Arbitrary<AlgorithmConfigs[A]>
  /** Characteristic time: the window, or the time to refill or drain a full capacity. */
  readonly span: (config: AlgorithmConfigs[A]) => number
  /** The most cost a single request can ever be allowed. */
  readonly limit: (config: AlgorithmConfigs[A]) => number
  /** The state's numbers, as the driver's `dump` writes them. */
  readonly numbers: (state: S) => ReadonlyArray<number>
  readonly release?: (state: S, cost: number) => void
}

const windowMillisArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 10 }) },
  { weight: 3, arbitrary: fc.integer({ min: 10, max: 5000 }) },
  { weight: 1, arbitrary: fc.constantFrom(1.5, 2.5, 333.3, 1000.25) }
)

/** Integer rates, fractions, and `limit * 1000 / windowMillis` as the public module computes them. */
const perSecondArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 1000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0.25, 0.5, 1 / 3, 2.5, 7.3) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 100_000 }))
      .map(([limit, window]) => (limit * 1000) / window)
  }
)

const capacityArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 20 }) },
  { weight: 1, arbitrary: fc.integer({ min: 21, max: 10_000 }) }
)

const windowConfigArb = fc.record({ limit: fc.integer({ min: 1, max: 20 }), windowMillis: windowMillisArb })

const fixedWindow: Subject<"fixedWindow", engine.FixedWindowState> = {
  name: "fixedWindow",
  algo: engine.fixedWindow,
  config: windowConfigArb,
  span: (c) => c.windowMillis,
  limit: (c) => c.limit,
  numbers: (s) => [s.window, s.count]
}

const logNumbers = (s: engine.SlidingLogState): ReadonlyArray<number> => [
  s.total,
  ...s.times.flatMap((t, i) => [t, s.costs[i] ?? Number.NaN])
]

const slidingLog: Subject<"slidingLog", engine.SlidingLogState> = {
  name: "slidingLog",
  algo: engine.slidingLog,
  config: windowConfigArb,
  span: (c) => c.windowMillis,
  limit: (c) => c.limit,
  numbers: logNumbers
}

const slidingCounter: Subject<"slidingCounter", engine.SlidingCounterState> = {
  name: "slidingCounter",
  algo: engine.slidingCounter,
  config: windowConfigArb,
  span: (c) => c.windowMillis,
  limit: (c) => c.limit,
  numbers: (s) => [s.window, s.previous, s.current]
}

const tokenBucket: Subject<"tokenBucket", engine.TokenBucketState> = {
  name: "tokenBucket",
  algo: engine.tokenBucket,
  config: fc.record({ capacity: capacityArb, refillPerSecond: perSecondArb }),
  span: (c) => (c.capacity * 1000) / c.refillPerSecond,
  limit: (c) => c.capacity,
  numbers: (s) => [s.milliTokens, s.lastRefill]
}

const leakyMeter: Subject<"leakyMeter", engine.LeakyMeterState> = {
  name: "leakyMeter",
  algo: engine.leakyMeter,
  config: fc.record({ capacity: capacityArb, leakPerSecond: perSecondArb }),
  span: (c) => (c.capacity * 1000) / c.leakPerSecond,
  limit: (c) => c.capacity,
  numbers: (s) => [s.milliLevel, s.lastLeak]
}

const leakyQueue: Subject<"leakyQueue", engine.LeakyQueueState> = {
  name: "leakyQueue",
  algo: engine.leakyQueue,
  config: fc.record({ capacity: capacityArb, leakPerSecond: perSecondArb }),
  span: (c) => (c.capacity * 1000) / c.leakPerSecond,
  limit: (c) => c.capacity,
  numbers: (s) => [s.nextFreeAt]
}

const gcra: Subject<"gcra", engine.GcraState> = {
  name: "gcra",
  algo: engine.gcra,
  config: fc.record({
    burst: fc.integer({ min: 0, max: 20 }),
    ratePerPeriod: fc.integer({ min: 1, max: 50 }),
    periodMillis: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 100 }) },
      { weight: 3, arbitrary: fc.integer({ min: 100, max: 60_000 }) },
      { weight: 1, arbitrary: fc.constantFrom(0.5, 1.5, 333.3, 2500.75) }
    )
  }),
  span: (c) => ((c.burst + 1) * c.periodMillis) / c.ratePerPeriod,
  limit: (c) => c.burst + 1,
  numbers: (s) => [s.tat]
}

const concurrency: Subject<"concurrency", engine.ConcurrencyState> = {
  name: "concurrency",
  algo: engine.concurrency,
  config: fc.record({ limit: fc.integer({ min: 1, max: 20 }) }),
  span: () => 100,
  limit: (c) => c.limit,
  numbers: (s) => [s.inFlight],
  release: engine.concurrencyRelease
}

// ---------------------------------------------------------------------------
// traces
// ---------------------------------------------------------------------------

/** Near 0, or at epoch-millisecond magnitudes, where float64 rounding would show. */
const startArb = fc
  .tuple(fc.boolean(), fc.integer({ min: 0, max: 1_000_000_000 }))
  .map(([epoch, offset]) => (epoch ? 1_700_000_000_000 : 0) + offset)

/** Bursts (0), short steps, gaps long enough to refill or empty, small steps back, and fractions. */
const dtArb = (span: number): fc.Arbitrary<number> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 6, arbitrary: fc.integer({ min: 1, max: Math.min(1e9, Math.max(1, Math.ceil(span / 8))) }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: Math.min(1e9, Math.max(1, Math.ceil(span * 2.5))) }) },
    { weight: 1, arbitrary: fc.integer({ min: -Math.min(50, Math.max(1, Math.ceil(span / 4))), max: -1 }) },
    // whole milliseconds in practice; fractions reach the roundings' corner cases
    { weight: 1, arbitrary: fc.constantFrom(0.5, 1 / 3, 0.1, 2.7, -0.25) }
  )

/** Unit costs, small ones, up to one above the limit, far above it, peeks (0) and fractions. */
const costArb = (limit: number): fc.Arbitrary<number> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(1) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: Math.min(3, limit) }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: limit + 1 }) },
    { weight: 1, arbitrary: fc.integer({ min: limit + 1, max: 2 * limit + 3 }) },
    { weight: 1, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.constantFrom(0.5, 0.1, 1.5, 2.25) }
  )

const kindArb = (withRelease: boolean): fc.Arbitrary<OpKind> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant<OpKind>("consume") },
    { weight: 2, arbitrary: fc.constant<OpKind>("check") },
    { weight: 1, arbitrary: fc.constant<OpKind>("refund") },
    { weight: 1, arbitrary: fc.constant<OpKind>("penalize") },
    { weight: 1, arbitrary: fc.constant<OpKind>("isIdle") },
    { weight: withRelease ? 2 : 0, arbitrary: fc.constant<OpKind>("release") }
  )

interface Trace<C> {
  readonly config: C
  readonly start: number
  readonly ops: ReadonlyArray<Op>
}

const traceArb = <A extends AlgorithmName, S>(subject: Subject<A, S>): fc.Arbitrary<Trace<AlgorithmConfigs[A]>> =>
  subject.config.chain((config) =>
    fc.record({
      config: fc.constant(config),
      start: startArb,
      ops: fc.array(
        fc.record({
          kind: kindArb(subject.release !== undefined),
          dt: dtArb(subject.span(config)),
          cost: costArb(subject.limit(config))
        }),
        { maxLength: 80, size: "max" }
      )
    })
  )

/** What the driver replies for a trace, computed with the TypeScript functions (numbers as `exact` text). */
const expected = <A extends AlgorithmName, S>(
  subject: Subject<A, S>,
  trace: Trace<AlgorithmConfigs[A]>
): Array<Array<string>> => {
  const { algo } = subject
  const { config } = trace
  let now = trace.start
  const state = algo.make(config, now)
  const out = engine.makeDecision()
  const dump = () => subject.numbers(state).map(exact)
  const decision = (d: engine.Decision) => [
    d.allowed ? "1" : "0",
    ...[d.limit, d.remaining, d.resetMillis, d.retryAfterMillis, d.delayMillis].map(exact)
  ]
  const result = [[exact(algo.ttlMillis(config)), String(1 + configArity[subject.name])], dump()]
  for (const op of trace.ops) {
    now += op.dt
    let reply: Array<string> = []
    switch (op.kind) {
      case "check":
        reply = decision(algo.check(state, now, op.cost, config, out))
        break
      case "consume":
        reply = decision(algo.consume(state, now, op.cost, config, out))
        break
      case "refund":
        algo.refund(state, now, op.cost, config)
        break
      case "penalize":
        algo.penalize(state, now, op.cost, config)
        break
      case "isIdle":
        reply = [algo.isIdle(state, now, config) ? "1" : "0"]
        break
      case "release":
        subject.release?.(state, op.cost)
        break
    }
    result.push(reply, dump())
  }
  return result
}

/** The same trace run by the Lua port in one EVAL, its numbers parsed back and shown as `exact` text. */
const actual = async <A extends AlgorithmName>(
  name: A,
  trace: Trace<AlgorithmConfigs[A]>
): Promise<Array<Array<string>>> => {
  const config = configArgs(name, trace.config)
  const args = ["trace", name, String(config.length), ...config, numberArg(trace.start)]
  let now = trace.start
  for (const op of trace.ops) {
    now += op.dt
    args.push(op.kind, numberArg(now), numberArg(op.cost))
  }
  const replies = await runDriver(args)
  return replies.map((reply, i) => {
    // decisions go through decodeDecision; states, isIdle and the header are numbers or flags
    if (i >= 2 && i % 2 === 0 && reply.length === 6) {
      const d = decodeDecision(reply)
      return [
        d.allowed ? "1" : "0",
        ...[d.limit, d.remaining, d.resetMillis, d.retryAfterMillis, d.delayMillis].map(exact)
      ]
    }
    if (i >= 2 && i % 2 === 0) return reply.map(String)
    return reply.map((s) => exact(numberReply(s)))
  })
}

const differential = <A extends AlgorithmName, S>(subject: Subject<A, S>): void => {
  it(`${subject.name}: every decision and every state, bit for bit, on random traces`, async () => {
    await fc.assert(
      fc.asyncProperty(traceArb(subject), async (trace) => {
        assert.deepStrictEqual(await actual(subject.name, trace), expected(subject, trace))
      }),
      { numRuns: 200 }
    )
  })
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

describe("rate limiter algorithms in Lua: the port decides as the TypeScript, bit for bit", () => {
  differential(fixedWindow)
  differential(slidingLog)
  differential(slidingCounter)
  differential(tokenBucket)
  differential(leakyMeter)
  differential(leakyQueue)
  differential(gcra)
  differential(concurrency)
})

// ---------------------------------------------------------------------------
// several limits decided at once (decideLimits, the store's decision)
// ---------------------------------------------------------------------------

/** One limit of a tier, with its own state, run by the TypeScript functions. */
interface LimitRun {
  readonly name: AlgorithmName
  readonly config: ReadonlyArray<string>
  readonly limit: number
  readonly span: number
  readonly check: (now: number, cost: number) => engine.Decision
  readonly consume: (now: number, cost: number) => engine.Decision
  readonly numbers: () => ReadonlyArray<number>
}

/** A limit of a subject with a random config, its state made fresh at `start`. */
const limitRunArb = <A extends AlgorithmName, S>(subject: Subject<A, S>): fc.Arbitrary<(start: number) => LimitRun> =>
  subject.config.map((config) => (start: number): LimitRun => {
    const state = subject.algo.make(config, start)
    const out = engine.makeDecision()
    return {
      name: subject.name,
      config: configArgs(subject.name, config),
      limit: subject.limit(config),
      span: subject.span(config),
      check: (now, cost) => ({ ...subject.algo.check(state, now, cost, config, out) }),
      consume: (now, cost) => ({ ...subject.algo.consume(state, now, cost, config, out) }),
      numbers: () => subject.numbers(state)
    }
  })

type ManyKind = "check" | "consume" | "untouched"

const manyArb = fc
  .record({
    makers: fc.array(
      fc.oneof(
        limitRunArb(fixedWindow),
        limitRunArb(slidingLog),
        limitRunArb(slidingCounter),
        limitRunArb(tokenBucket),
        limitRunArb(leakyMeter),
        limitRunArb(leakyQueue),
        limitRunArb(gcra),
        limitRunArb(concurrency)
      ),
      { minLength: 1, maxLength: 3 }
    ),
    start: startArb
  })
  .chain(({ makers, start }) => {
    // a sample of the limits only sizes the operations (each trace makes its own, fresh)
    const sample = makers.map((make) => make(start))
    const span = Math.min(...sample.map((run) => run.span))
    const limit = Math.min(...sample.map((run) => run.limit))
    return fc.record({
      makers: fc.constant(makers),
      start: fc.constant(start),
      ops: fc.array(
        fc.record({
          kind: fc.constantFrom<ManyKind>("consume", "consume", "untouched", "check"),
          dt: dtArb(span),
          cost: costArb(limit)
        }),
        { maxLength: 60, size: "max" }
      )
    })
  })

describe("rate limiter algorithms in Lua: several limits at once", () => {
  it("decideLimits decides as checking every limit then charging all when all allow, bit for bit", async () => {
    await fc.assert(
      fc.asyncProperty(manyArb, async ({ makers, start, ops }) => {
        // TypeScript: check all; with a consume, and all allowed, consume all (each decides as its check did)
        const runs = makers.map((make) => make(start))
        const decision = (d: engine.Decision) => [
          d.allowed ? "1" : "0",
          ...[d.limit, d.remaining, d.resetMillis, d.retryAfterMillis, d.delayMillis].map(exact)
        ]
        const expected: Array<Array<string>> = []
        let now = start
        for (const op of ops) {
          now += op.dt
          let decisions = runs.map((run) => run.check(now, op.cost))
          const charged = op.kind !== "check" && decisions.every((d) => d.allowed)
          if (charged) decisions = runs.map((run) => run.consume(now, op.cost))
          expected.push([charged ? "1" : "0", ...decisions.flatMap(decision)])
          expected.push(runs.flatMap((run) => run.numbers().map(exact)))
        }
        // Lua: the same trace through decideLimits
        const args = [
          "many",
          "",
          String(runs.length),
          ...runs.flatMap((run) => [run.name, String(run.config.length), ...run.config]),
          numberArg(start)
        ]
        now = start
        for (const op of ops) {
          now += op.dt
          args.push(op.kind, numberArg(now), numberArg(op.cost))
        }
        const replies = await runDriver(args)
        const actual = replies.map((reply, i) => {
          if (i % 2 === 1) return reply.map((s) => exact(numberReply(s)))
          return [
            String(reply[0]),
            ...runs.flatMap((_, j) => {
              const d = decodeDecisionAt(reply, 1 + 6 * j)
              return [
                d.allowed ? "1" : "0",
                ...[d.limit, d.remaining, d.resetMillis, d.retryAfterMillis, d.delayMillis].map(exact)
              ]
            })
          ]
        })
        assert.deepStrictEqual(actual, expected)
      }),
      { numRuns: 300 }
    )
  })
})

/** Runs consume-only operations in Lua: the decisions. */
const consumeInLua = async <A extends AlgorithmName>(
  name: A,
  config: AlgorithmConfigs[A],
  start: number,
  ops: ReadonlyArray<readonly [at: number, cost: number]>
) => {
  const args = configArgs(name, config)
  const replies = await runDriver([
    "trace",
    name,
    String(args.length),
    ...args,
    numberArg(start),
    ...ops.flatMap(([at, cost]) => ["consume", numberArg(at), numberArg(cost)])
  ])
  return replies.filter((_, i) => i >= 2 && i % 2 === 0).map(decodeDecision)
}

describe("rate limiter algorithms in Lua: examples", () => {
  const epoch = 1_700_000_000_000

  it("GCRA: CL.THROTTLE user123 15 30 60 1 on a fresh key returns 0, 16, 15, -1, 2", async () => {
    const [d] = await consumeInLua("gcra", { burst: 15, ratePerPeriod: 30, periodMillis: 60_000 }, epoch, [[epoch, 1]])
    assert.deepStrictEqual(d, {
      allowed: true,
      limit: 16,
      remaining: 15,
      resetMillis: 2000,
      retryAfterMillis: 0,
      delayMillis: 0
    })
  })

  // redis-cell's own table (`it_rate_limits`): max_burst 4, 1 per second, so limit 5.
  // (offset ms, quantity, limited, remaining, reset ms, retry ms; redis-cell's -1 is 0, or
  // Infinity when the quantity can never pass)
  const table: ReadonlyArray<readonly [number, number, boolean, number, number, number]> = [
    [0, 6, true, 5, 0, Infinity],
    [0, 1, false, 4, 1000, 0],
    [0, 1, false, 3, 2000, 0],
    [0, 1, false, 2, 3000, 0],
    [0, 1, false, 1, 4000, 0],
    [0, 1, false, 0, 5000, 0],
    [0, 1, true, 0, 5000, 1000],
    [3000, 1, false, 2, 3000, 0],
    [3100, 1, false, 1, 3900, 0],
    [4000, 1, false, 1, 4000, 0],
    [8000, 1, false, 4, 1000, 0],
    [9500, 1, false, 4, 1000, 0],
    [9500, 0, false, 4, 1000, 0],
    [9500, 2, false, 2, 3000, 0],
    [9500, 5, true, 2, 3000, 3000]
  ]

  it("GCRA: reproduces redis-cell's rate limit table", async () => {
    const decisions = await consumeInLua(
      "gcra",
      { burst: 4, ratePerPeriod: 1, periodMillis: 1000 },
      epoch,
      table.map(([offset, quantity]) => [epoch + offset, quantity] as const)
    )
    assert.deepStrictEqual(
      decisions.map((d) => [!d.allowed, d.limit, d.remaining, d.resetMillis, d.retryAfterMillis]),
      table.map(([, , limited, remaining, reset, retry]) => [limited, 5, remaining, reset, retry])
    )
  })

  it("GCRA: the emission interval is rounded up to 1/1024 ms (10 per 3 s: 11th retries after 300 ms)", async () => {
    const decisions = await consumeInLua(
      "gcra",
      { burst: 9, ratePerPeriod: 10, periodMillis: 3000 },
      epoch,
      Array.from({ length: 11 }, () => [epoch, 1] as const)
    )
    assert.deepStrictEqual(
      decisions.map((d) => d.remaining),
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0]
    )
    const last = decisions[10]
    assert.deepStrictEqual([last?.allowed, last?.retryAfterMillis, last?.resetMillis], [false, 300, 3000])
  })

  it("fixed window: the limit per aligned window, retry at the next window", async () => {
    const decisions = await consumeInLua("fixedWindow", { limit: 3, windowMillis: 1000 }, 10_250, [
      [10_250, 1],
      [10_250, 1],
      [10_250, 1],
      [10_400, 1],
      [11_000, 3]
    ])
    assert.deepStrictEqual(decisions[3], {
      allowed: false,
      limit: 3,
      remaining: 0,
      resetMillis: 600,
      retryAfterMillis: 600,
      delayMillis: 0
    })
    assert.isTrue(decisions[4]?.allowed)
  })

  it("shaping queue: delays instead of refusing until the queue is full", async () => {
    const decisions = await consumeInLua("leakyQueue", { capacity: 3, leakPerSecond: 10 }, 0, [
      [0, 1],
      [0, 1],
      [0, 1],
      [50, 1],
      [100, 1]
    ])
    assert.deepStrictEqual(
      decisions.map((d) => d.delayMillis),
      [0, 100, 200, 0, 200]
    )
    assert.deepStrictEqual(decisions[3], {
      allowed: false,
      limit: 3,
      remaining: 0,
      resetMillis: 250,
      retryAfterMillis: 50,
      delayMillis: 0
    })
  })

  it("token bucket: burst of capacity, then the refill rate", async () => {
    const decisions = await consumeInLua("tokenBucket", { capacity: 5, refillPerSecond: 2 }, 0, [
      [0, 5],
      [100, 1],
      [100, 6]
    ])
    assert.deepStrictEqual(decisions[1], {
      allowed: false,
      limit: 5,
      remaining: 0,
      resetMillis: 2400,
      retryAfterMillis: 400,
      delayMillis: 0
    })
    assert.strictEqual(decisions[2]?.retryAfterMillis, Infinity)
  })
})

describe("rate limiter algorithms in Lua: state codec and arguments", () => {
  /** Little-endian float64s, as hex. */
  const float64s = (numbers: ReadonlyArray<number>): string => {
    const view = new DataView(new ArrayBuffer(8 * numbers.length))
    for (let i = 0; i < numbers.length; i++) view.setFloat64(8 * i, numbers[i] ?? Number.NaN, true)
    return Buffer.from(view.buffer).toString("hex")
  }

  const fieldArb = fc.oneof(
    fc.double({ noNaN: true }),
    fc.integer({ min: -1_000_000, max: 1_000_000 }),
    fc.integer({ min: 1_700_000_000_000, max: 1_800_000_000_000 }).map((n) => n + 1 / 1024),
    fc.constantFrom(0, -0, 1 / 65536, -20_000, Infinity, Number.MAX_VALUE, Number.MIN_VALUE)
  )

  const stateArb = (name: AlgorithmName): fc.Arbitrary<ReadonlyArray<number>> => {
    switch (name) {
      case "slidingLog":
        return fc
          .tuple(fieldArb, fc.array(fc.tuple(fieldArb, fieldArb), { maxLength: 40 }))
          .map(([total, entries]) => [total, ...entries.flat()])
      case "fixedWindow":
      case "tokenBucket":
      case "leakyMeter":
        return fc.tuple(fieldArb, fieldArb)
      case "slidingCounter":
        return fc.tuple(fieldArb, fieldArb, fieldArb)
      case "leakyQueue":
      case "gcra":
      case "concurrency":
        return fc.tuple(fieldArb)
    }
  }

  for (const name of algorithmNames) {
    it(`${name}: decode(encode(state)) is the state, and encode is its numbers as little-endian float64s`, async () => {
      await fc.assert(
        fc.asyncProperty(stateArb(name), async (numbers) => {
          const [hex, back] = await runDriver(["codec", name, ...numbers.map(exact)])
          assert.strictEqual(hex?.[0], float64s(numbers))
          assert.deepStrictEqual(
            (back ?? []).map((s) => exact(numberReply(s))),
            numbers.map(exact)
          )
        }),
        { numRuns: 50 }
      )
    })
  }

  it("max and min order -0 below +0, as Math.max and Math.min do", async () => {
    const values = [0, -0, 1, -1, 0.5]
    for (const a of values) {
      for (const b of values) {
        const [reply] = await runDriver(["minmax", exact(a), exact(b)])
        assert.deepStrictEqual(
          (reply ?? []).map((s) => exact(numberReply(s))),
          [exact(Math.max(a, b)), exact(Math.min(a, b))],
          `${exact(a)}, ${exact(b)}`
        )
      }
    }
  })

  it("a decision leaves as integer replies where every client reads them exactly (whole, below 2^52, not -0), as num strings elsewhere", async () => {
    const numbers = [
      0,
      -0,
      7,
      -7,
      2 ** 52 - 1,
      -(2 ** 52 - 1),
      2 ** 52,
      -(2 ** 52),
      2 ** 53 - 1,
      2 ** 60,
      0.5,
      1 / 3,
      1_700_000_000_000 + 1 / 1024,
      Infinity,
      -Infinity,
      Number.MAX_VALUE,
      Number.MIN_VALUE
    ]
    for (const n of numbers) {
      const [reply] = await runDriver(["decision", "1", exact(n), exact(n), exact(n), exact(n), exact(n)])
      const integer = Number.isInteger(n) && Math.abs(n) < 2 ** 52 && !Object.is(n, -0)
      assert.deepStrictEqual(
        (reply ?? []).map((v) => typeof v),
        ["number", ...Array.from({ length: 5 }, () => (integer ? "number" : "string"))],
        exact(n)
      )
      const decision = decodeDecision(reply ?? [])
      assert.deepStrictEqual(
        [decision.limit, decision.remaining, decision.resetMillis, decision.retryAfterMillis, decision.delayMillis].map(
          exact
        ),
        Array.from({ length: 5 }, () => exact(n)),
        exact(n)
      )
    }
    const [refused] = await runDriver(["decision", "0", "1", "0", "0", "0", "0"])
    assert.isFalse(decodeDecision(refused ?? []).allowed)
  })

  it("configArgs: the config's numbers in configOf's order, Infinity as inf", () => {
    assert.deepStrictEqual(configArgs("gcra", { burst: 4, ratePerPeriod: 1, periodMillis: 1000 }), ["4", "1", "1000"])
    assert.deepStrictEqual(configArgs("tokenBucket", { capacity: 5, refillPerSecond: 1 / 3 }), ["5", String(1 / 3)])
    assert.deepStrictEqual(configArgs("concurrency", { limit: Infinity }), ["inf"])
    assert.deepStrictEqual(inputArgs({ algorithm: "slidingLog", config: { limit: 3, windowMillis: 1500 } }), [
      "3",
      "1500"
    ])
  })

  it("inputArgs takes core's LimitSpec as it is (the local configs are core's)", () => {
    const specs: ReadonlyArray<RateLimiter.LimitSpec> = [
      RateLimiter.limitSpec({ algorithm: "fixed-window", limit: 10, window: Duration.seconds(1) }),
      RateLimiter.limitSpec({ algorithm: "sliding-window", limit: 10, window: Duration.seconds(1) }),
      RateLimiter.limitSpec({ algorithm: "sliding-log", limit: 10, window: Duration.seconds(1) }),
      RateLimiter.limitSpec({ algorithm: "token-bucket", limit: 3, window: Duration.seconds(7), burst: 5 }),
      RateLimiter.limitSpec({ algorithm: "gcra", limit: 30, window: Duration.minutes(1), burst: 16 }),
      RateLimiter.limitSpec({ algorithm: "leaky-bucket", capacity: 4, leakPerSecond: 2.5 }),
      RateLimiter.limitSpec({ algorithm: "concurrency", limit: 2 })
    ]
    assert.deepStrictEqual(
      specs.map((spec) => [spec.algorithm, ...inputArgs(spec)]),
      [
        ["fixedWindow", "10", "1000"],
        ["slidingCounter", "10", "1000"],
        ["slidingLog", "10", "1000"],
        ["tokenBucket", "5", String(3000 / 7000)],
        ["gcra", "15", "30", "60000"],
        ["leakyMeter", "4", "2.5"],
        ["concurrency", "2"]
      ]
    )
  })

  it("configOf refuses a missing or out-of-range value, naming it", async () => {
    const refusal = async (args: ReadonlyArray<string>) => {
      try {
        await runDriver(args)
        return "accepted"
      } catch (error) {
        return String(error)
      }
    }
    assert.match(await refusal(["trace", "fixedWindow", "2", "3", "0", "0"]), /bad argument windowMillis: 0/)
    assert.match(await refusal(["trace", "gcra", "2", "3", "1", "0"]), /bad argument periodMillis: nil/)
    assert.match(await refusal(["trace", "tokenBucket", "2", "-1", "1", "0"]), /bad argument capacity: -1/)
  })
})
