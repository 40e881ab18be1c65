/**
 * Pure helpers of `HttpDeadline`: the two header formats (whole milliseconds,
 * and gRPC's `grpc-timeout`), parsed and written, and the arithmetic of a
 * budget on each side of a hop. No Effect, no clock reads: `now` and the
 * deadline are arguments.
 *
 * @internal
 */

/** How a budget travels: `milliseconds` (`x-request-timeout-ms: 1500`) or `grpc` (`grpc-timeout: 1500m`). */
export type Format = "milliseconds" | "grpc"

/** gRPC's TimeoutValue: at most 8 ASCII digits. */
const grpcMaxValue = 99_999_999

/**
 * gRPC's TimeoutUnits (Hours, Minutes, Seconds, milliseconds, microseconds,
 * nanoseconds) as milliseconds: a multiplier, or a divisor for the units
 * below one (integer arithmetic: exact).
 */
const grpcUnits: Readonly<Record<string, { readonly times: number; readonly per: number }>> = {
  H: { times: 3_600_000, per: 1 },
  M: { times: 60_000, per: 1 },
  S: { times: 1_000, per: 1 },
  m: { times: 1, per: 1 },
  u: { times: 1, per: 1_000 },
  n: { times: 1, per: 1_000_000 }
}

/** The largest number of milliseconds a header value may stand for; anything larger is read as this. */
const largest = Number.MAX_SAFE_INTEGER

/**
 * The milliseconds of a `milliseconds` header value: decimal digits only
 * (surrounding spaces allowed), read as a whole number of milliseconds.
 * Anything else — empty, negative, a fraction, an exponent, several values
 * joined by a comma — is `undefined` (the header is treated as absent).
 * A value past `Number.MAX_SAFE_INTEGER` is read as that (the server clamps
 * it to its `maxTimeout` anyway).
 */
export const parseMillis = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (!/^\d+$/.test(trimmed)) return undefined
  return trimmed.length > 15 ? Math.min(Number(trimmed), largest) : Number(trimmed)
}

/** A `milliseconds` header value: the whole milliseconds of `millis`, rounded down (0 for anything below 1). */
export const formatMillis = (millis: number): string =>
  String(Number.isFinite(millis) && millis > 0 ? Math.min(Math.floor(millis), largest) : 0)

/**
 * The milliseconds of a `grpc-timeout` value (`<1 to 8 digits><H|M|S|m|u|n>`,
 * gRPC's HTTP/2 protocol), rounded down to whole milliseconds (`1500u` is 1
 * ms). Anything else, more than 8 digits included, is `undefined`.
 */
export const parseGrpc = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const match = /^(\d{1,8})([HMSmun])$/.exec(value.trim())
  if (match === null) return undefined
  const unit = grpcUnits[match[2] ?? ""]
  if (unit === undefined) return undefined
  // at most 8 digits times 3.6e6 stays below 2^53: exact; round down so a budget never grows
  return Math.floor((Number(match[1]) * unit.times) / unit.per)
}

/**
 * A `grpc-timeout` value for `millis`, rounded down: `<n>m` while `n` fits
 * in 8 digits, then seconds, minutes, hours (the coarser unit never states
 * more time than there is); at most `99999999H`.
 */
export const formatGrpc = (millis: number): string => {
  const whole = Number.isFinite(millis) && millis > 0 ? Math.floor(millis) : 0
  for (const [unit, size] of [
    ["m", 1],
    ["S", 1_000],
    ["M", 60_000],
    ["H", 3_600_000]
  ] as const) {
    const value = Math.floor(whole / size)
    if (value <= grpcMaxValue) return `${value}${unit}`
  }
  return `${grpcMaxValue}H`
}

/** Parses a header value in a format. */
export const parse = (format: Format, value: string | undefined): number | undefined =>
  format === "grpc" ? parseGrpc(value) : parseMillis(value)

/** Writes a header value in a format. */
export const format = (format: Format, millis: number): string =>
  format === "grpc" ? formatGrpc(millis) : formatMillis(millis)

/**
 * The budget a server gives a request, in milliseconds: the header's value
 * bounded by `maxMillis`, `defaultMillis` when there is no (valid) header,
 * `undefined` for no deadline at all (no header and no default).
 */
export const serverBudget = (
  requested: number | undefined,
  maxMillis: number,
  defaultMillis: number | undefined
): number | undefined => {
  if (requested === undefined) return defaultMillis === undefined ? undefined : Math.min(defaultMillis, maxMillis)
  return Math.min(requested, maxMillis)
}

/**
 * What a client sends for a deadline at `deadline` (absolute clock
 * milliseconds) read at `now`, keeping `marginMillis` for the network: the
 * whole milliseconds left, rounded down, or `undefined` when not even one is
 * left (the request must not be sent). A request that already carries a
 * smaller valid budget (`existing`) keeps it.
 */
export const clientBudget = (
  deadline: number,
  now: number,
  marginMillis: number,
  existing: number | undefined
): number | undefined => {
  const left = Math.floor(deadline - now - marginMillis)
  if (!(left >= 1)) return undefined
  return existing !== undefined && existing < left ? existing : left
}
