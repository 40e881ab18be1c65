/**
 * The sync script of the local-first adaptive throttle store: one call per
 * throttle per sync, every reported key's delta added to the fleet's ring of
 * buckets for the key on Redis `TIME`, and the fleet's totals answered.
 *
 * A port of the ring in `@effect-resilience/core`'s
 * `internal/adaptiveThrottleFleet.ts` (`addToRing`, `ringTotals`), with the
 * same names, order and comments; a bucket epoch is `floor(now × buckets /
 * windowMillis)`, as the in-process window's.
 *
 * @internal
 */

/** Fields per key in the script's arguments: key, requests, accepts. */
export const reportFields = 3

/** Fields per key in the script's reply: key, requests, accepts. */
export const replyFields = 3

/**
 * One sync of one throttle.
 *
 * KEYS: [1] unused (the throttle's tag, for routing on a cluster).
 *
 * ARGV: base, windowMillis, buckets, then per key (`reportFields`): key,
 * requests, accepts (the process's delta since its previous report; 0 and 0
 * to read the fleet's totals only).
 *
 * Reply: { now, then per key (`replyFields`): key, requests, accepts } (the
 * fleet's totals over the window at `now`, the delta included).
 *
 * The fleet hash (`base .. key`): e<i>, r<i>, a<i> per bucket `i` (its
 * epoch, requests and accepts). A hash written by a sync expires one window
 * later: by then every bucket it holds is out of the window.
 */
export const syncLua = `
local base = ARGV[1]
local windowMillis = arg(2, "windowMillis")
local buckets = arg(3, "buckets")
local first = 4
local fields = ${reportFields}
if windowMillis <= 0 or windowMillis == math.huge then error("bad argument windowMillis: " .. tostring(ARGV[2])) end
if buckets < 1 or buckets ~= math.floor(buckets) or buckets > 10000 then error("bad argument buckets: " .. tostring(ARGV[3])) end
if (#ARGV - first + 1) % fields ~= 0 then error("bad argument reports: " .. tostring(#ARGV - first + 1)) end
for i = first, #ARGV, fields do
  local r, a = arg(i + 1, "requests"), arg(i + 2, "accepts")
  if r < 0 or a < 0 or a > r or r == math.huge then error("bad argument report: " .. tostring(ARGV[i])) end
end

-- epochOf
local epoch = math.floor(now * buckets / windowMillis)
local oldest = epoch - buckets + 1

local out = { int(now) }
for i = first, #ARGV, fields do
  local key = ARGV[i]
  local requests, accepts = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local h = base .. key
  local raw = redis.call("HGETALL", h)
  local f = {}
  for j = 1, #raw, 2 do f[raw[j]] = raw[j + 1] end
  if requests > 0 then
    -- addToRing: drop the buckets out of the window (or from a later epoch), add to the bucket of now
    local write = {}
    for b = 0, buckets - 1 do
      local e = tonumber(f["e" .. b]) or -1
      if e >= 0 and (e < oldest or e > epoch) then
        f["e" .. b], f["r" .. b], f["a" .. b] = "-1", "0", "0"
        write[#write + 1] = b
      end
    end
    local b = epoch % buckets
    if tonumber(f["e" .. b]) ~= epoch then f["e" .. b], f["r" .. b], f["a" .. b] = int(epoch), "0", "0" end
    f["r" .. b] = num((tonumber(f["r" .. b]) or 0) + requests)
    f["a" .. b] = num((tonumber(f["a" .. b]) or 0) + accepts)
    write[#write + 1] = b
    local flat = {}
    for _, w in ipairs(write) do
      flat[#flat + 1] = "e" .. w
      flat[#flat + 1] = f["e" .. w]
      flat[#flat + 1] = "r" .. w
      flat[#flat + 1] = f["r" .. w]
      flat[#flat + 1] = "a" .. w
      flat[#flat + 1] = f["a" .. w]
    end
    redis.call("HSET", h, unpack(flat))
    redis.call("PEXPIRE", h, math.max(1, math.ceil(windowMillis)))
  end
  -- ringTotals: the buckets inside the window at now
  local r, a = 0, 0
  for b = 0, buckets - 1 do
    local e = tonumber(f["e" .. b]) or -1
    if e >= oldest and e <= epoch then
      r = r + (tonumber(f["r" .. b]) or 0)
      a = a + (tonumber(f["a" .. b]) or 0)
    end
  end
  out[#out + 1] = key
  out[#out + 1] = num(r)
  out[#out + 1] = num(a)
end
return out
`
