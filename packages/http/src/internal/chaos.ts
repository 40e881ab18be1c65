/**
 * Pure helpers of `HttpChaos`: the weighted pick of a fault response, the
 * parsing of the fault headers, request matching by host and by header.
 * No Effect, no clock, no randomness (the draw is an argument).
 */

/**
 * The index picked by a draw `r` in [0, 1) over `weights` (each finite and
 * positive): the index whose cumulative interval holds `r × total`. An empty
 * list picks -1; a draw outside [0, 1) is clamped, so the result is always
 * an index of a positive weight.
 */
export const pickWeighted = (weights: ReadonlyArray<number>, r: number): number => {
  let total = 0
  for (const weight of weights) if (weight > 0 && Number.isFinite(weight)) total += weight
  if (total === 0) return -1
  const target = Math.min(Math.max(r, 0), 1) * total
  let cumulative = 0
  let last = -1
  for (let i = 0; i < weights.length; i++) {
    const weight = weights[i] ?? 0
    if (!(weight > 0 && Number.isFinite(weight))) continue
    cumulative += weight
    last = i
    if (target < cumulative) return i
  }
  return last
}

/** Whether `status` is one a fault may answer with: an integer in [200, 600), as Envoy's abort. */
export const isFaultStatus = (status: unknown): status is number =>
  typeof status === "number" && Number.isInteger(status) && status >= 200 && status < 600

/**
 * The status asked for by an abort header (`x-chaos-abort: 503`): an integer
 * in [200, 600) written in decimal digits only; anything else is ignored
 * (`undefined`).
 */
export const parseAbortHeader = (value: string | undefined): number | undefined => {
  if (value === undefined || !/^\s*\d{3}\s*$/.test(value)) return undefined
  const status = Number(value.trim())
  return isFaultStatus(status) ? status : undefined
}

/**
 * The delay in milliseconds asked for by a delay header
 * (`x-chaos-delay: 200`): a whole number of milliseconds, capped at
 * `maxMillis`; anything else is ignored (`undefined`).
 */
export const parseDelayHeader = (value: string | undefined, maxMillis: number): number | undefined => {
  if (value === undefined || !/^\s*\d{1,15}\s*$/.test(value)) return undefined
  return Math.min(Number(value.trim()), Math.max(maxMillis, 0))
}

/** A `Retry-After` value in whole seconds, rounded up (never negative). */
export const retryAfterSeconds = (millis: number): string =>
  String(millis > 0 ? Math.max(1, Math.ceil(millis / 1000)) : 0)

/**
 * Whether a host (`host` or `host:port`, as in a URL) matches one of
 * `patterns`: the same host with or without its port (`api.internal`
 * matches `api.internal:8443`), the exact `host:port`, or `*.suffix` for
 * every subdomain of `suffix` (not `suffix` itself). Case-insensitive.
 */
export const matchesHost = (host: string, patterns: ReadonlyArray<string>): boolean => {
  const withPort = host.toLowerCase()
  const bare = hostname(withPort)
  for (const raw of patterns) {
    const pattern = raw.toLowerCase()
    if (pattern.startsWith("*.")) {
      if (bare.endsWith(pattern.slice(1))) return true
    } else if (pattern === withPort || pattern === bare) {
      return true
    }
  }
  return false
}

/** The host without its port (IPv6 literals keep their brackets). */
const hostname = (host: string): string => {
  if (host.startsWith("[")) {
    const end = host.indexOf("]")
    return end === -1 ? host : host.slice(0, end + 1)
  }
  const colon = host.lastIndexOf(":")
  return colon === -1 ? host : host.slice(0, colon)
}

/**
 * Whether request headers (lower-case names) carry every header of
 * `selector` (names any case): with the value given, or present at all for
 * `true` — Envoy's header match for fault injection.
 */
export const matchesHeaders = (
  headers: Readonly<Record<string, string | undefined>>,
  selector: ReadonlyArray<readonly [name: string, value: string | true]>
): boolean => {
  for (const [name, value] of selector) {
    const actual = headers[name]
    if (actual === undefined || (value !== true && actual !== value)) return false
  }
  return true
}
