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

/** Defines `now` (ms), `nowMicros`, `int`, `num`, `arg` and `nextGeneration`. */
export const prelude = `
local time = redis.call("TIME")
local nowMicros = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = math.floor(nowMicros / 1000)
local function int(n) return string.format("%.0f", n) end
local function num(n)
  if n == math.huge then return "inf" end
  if n == -math.huge then return "-inf" end
  return string.format("%.17g", n)
end
-- a numeric argument: "inf" is infinity; anything else must parse
local function arg(i, name)
  local v = ARGV[i]
  if v == "inf" then return math.huge end
  local n = tonumber(v)
  if n == nil or n ~= n then error("bad argument " .. name .. ": " .. tostring(v)) end
  return n
end
-- fencing tokens never repeat, even after a key expired and came back
local function nextGeneration(current)
  return int(math.max((tonumber(current) or 0) + 1, nowMicros))
end
`

/** A number as a script argument (`"inf"` for infinity). */
export const numberArg = (n: number): string =>
  n === Number.POSITIVE_INFINITY ? "inf" : n === Number.NEGATIVE_INFINITY ? "-inf" : String(n)

/** A number from a script reply made by `num` or `int`. */
export const numberReply = (s: unknown): number =>
  s === "inf" ? Number.POSITIVE_INFINITY : s === "-inf" ? Number.NEGATIVE_INFINITY : Number(s)
