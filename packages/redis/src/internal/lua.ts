/**
 * The Lua every store script starts with: argument checks, exact number
 * formatting and the server's time.
 *
 * - Times come from `TIME` only, never from a caller: processes with skewed
 *   clocks share one timeline.
 * - Redis replies truncate Lua numbers to integers, and `tostring` prints 14
 *   significant digits, so numbers that must stay exact (fencing tokens in
 *   microseconds, fractional milliseconds) leave a script as strings made by
 *   `int` or `num`.
 * - A script checks its arguments before it writes anything, and answers a
 *   bad one with an error reply naming it.
 *
 * @internal
 */
import { createHash } from "node:crypto"

/** Functions without per-call state: `int` and `num`. */
export const definitions = `
local function int(n) return string.format("%.0f", n) end
local function num(n)
  if n == math.huge then return "inf" end
  if n == -math.huge then return "-inf" end
  return string.format("%.17g", n)
end
`

/** `arg(i, name)`: the numeric argument `ARGV[i]` ("inf" is infinity), or an error naming it. */
export const argLua = `
-- a numeric argument: "inf" is infinity; anything else must parse
local function arg(i, name)
  local v = ARGV[i]
  if v == "inf" then return math.huge end
  local n = tonumber(v)
  if n == nil or n ~= n then error("bad argument " .. name .. ": " .. tostring(v)) end
  return n
end
`

/** The server's time: `now` (ms) and `nowMicros`, from `TIME`. */
export const clockLua = `
local time = redis.call("TIME")
local nowMicros = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = math.floor(nowMicros / 1000)
`

/** What each call needs (after `definitions`): `now` (ms), `nowMicros`, `arg` and `nextGeneration`. */
export const perCall = `${clockLua}${argLua}-- fencing tokens never repeat, even after a key expired and came back
local function nextGeneration(current)
  return int(math.max((tonumber(current) or 0) + 1, nowMicros))
end
`

/** Defines `now` (ms), `nowMicros`, `int`, `num`, `arg` and `nextGeneration`. */
export const prelude = `${definitions}${perCall}`

/** A number as a script argument (`"inf"` for infinity). */
export const numberArg = (n: number): string =>
  n === Number.POSITIVE_INFINITY ? "inf" : n === Number.NEGATIVE_INFINITY ? "-inf" : String(n)

/** A number from a script reply: an integer reply, or a string made by `num` or `int`. */
export const numberReply = (s: unknown): number =>
  typeof s === "number"
    ? s
    : s === "inf"
      ? Number.POSITIVE_INFINITY
      : s === "-inf"
        ? Number.NEGATIVE_INFINITY
        : Number(s)

// ---------------------------------------------------------------------------
// scripts as Redis functions
// ---------------------------------------------------------------------------

/** A script that can also run as a Redis function (Redis 7+): see `asFunction`. */
export interface FunctionForm {
  /** The library's name, and its function's. */
  readonly name: string
  /** The library's code, for `FUNCTION LOAD`. */
  readonly code: string
}

const functionForms = new WeakMap<object, FunctionForm>()

/**
 * Marks `script` (whose `lua` is `definitions .. body`) as runnable as a
 * Redis function: a library that defines `definitions` once, when it is
 * loaded, and registers `body` as a function of `KEYS` and `ARGV`. A script
 * runs its whole text on every call, so its functions are made again each
 * time; a library's are made once. `IoRedis` calls it with `FCALL` where the
 * server has functions (loading the library where it is missing) and with
 * `EVALSHA` elsewhere.
 */
export const asFunction = <S extends { readonly lua: string }>(script: S, definitionsLua: string, body: string): S => {
  const name = `effect_resilience_${createHash("sha1").update(script.lua).digest("hex").slice(0, 16)}`
  functionForms.set(script, {
    name,
    code: `#!lua name=${name}\n${definitionsLua}\nredis.register_function("${name}", function(KEYS, ARGV)\n${body}\nend)\n`
  })
  return script
}

/** The function form of a script, if it has one. */
export const functionFormOf = (script: object): FunctionForm | undefined => functionForms.get(script)
