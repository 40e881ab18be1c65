/**
 * The IETF `RateLimit-Policy` and `RateLimit` HTTP response fields
 * (draft-ietf-httpapi-ratelimit-headers-10), rendered as Structured Field
 * lists from the decisions the rate limiters return.
 *
 * **Details**
 *
 * - `RateLimit-Policy` advertises each quota policy: `"name";q=<quota>;w=<window seconds>`,
 *   with an optional `qu` (quota unit) and `pk` (partition key) parameter.
 * - `RateLimit` reports what is left of each policy right now:
 *   `"name";r=<remaining>;t=<seconds until reset>`.
 * - Several policies go into one field as a comma-separated list.
 * - Numbers are non-negative integers (Structured Field integers); seconds are
 *   rounded up so a client never retries too early.
 *
 * **Example** (Rendering both fields)
 *
 * ```ts import.meta.vitest
 * import { RateLimitHeaders } from "@effect-resilience/http"
 *
 * RateLimitHeaders.policy([{ name: "default", quota: 100, windowSeconds: 60 }])
 * // => "\"default\";q=100;w=60"
 * RateLimitHeaders.rateLimit([{ name: "default", remaining: 42, resetSeconds: 12.2 }])
 * // => "\"default\";r=42;t=13"
 * ```
 *
 * **Example** (The headers of a limiter's decision)
 *
 * ```ts import.meta.vitest
 * import { RateLimiter } from "@effect-resilience/core"
 * import { RateLimitHeaders } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { TestClock } from "effect/testing"
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({
 *     limits: [{ algorithm: "fixed-window", limit: 2, window: "1 minute", name: "api" }]
 *   })
 *   yield* limiter.consume("alice")
 *   yield* limiter.consume("alice")
 *   return RateLimitHeaders.fromDecision(yield* limiter.consume("alice"))
 * }).pipe(Effect.scoped, Effect.provide(RateLimiter.layerStoreMemory()), Effect.provide(TestClock.layer()))
 *
 * await Effect.runPromise(program)
 * // => { "ratelimit-policy": "\"api\";q=2;w=60", ratelimit: "\"api\";r=0;t=60", "retry-after": "60" }
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type { RateLimiter } from "@effect-resilience/core"
import * as Duration from "effect/Duration"

/**
 * One quota policy, as advertised in `RateLimit-Policy`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Policy {
  readonly name: string
  readonly quota: number
  readonly windowSeconds?: number | undefined
  readonly quotaUnit?: "request" | "content-bytes" | "concurrent-requests" | undefined
  readonly partitionKey?: string | undefined
}

/**
 * The current state of one policy, as reported in `RateLimit`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Limit {
  readonly name: string
  readonly remaining: number
  readonly resetSeconds?: number | undefined
  readonly partitionKey?: string | undefined
}

/**
 * Serializes a Structured Field string (RFC 9651 §4.1.6): printable ASCII,
 * with `"` and `\` escaped; other characters are dropped.
 *
 * @category encoding
 * @since 0.1.0
 */
export const sfString = (value: string): string => {
  let out = '"'
  for (const char of value) {
    const code = char.charCodeAt(0)
    if (code < 0x20 || code > 0x7e) continue
    out += char === '"' || char === "\\" ? `\\${char}` : char
  }
  return `${out}"`
}

/**
 * Serializes a Structured Field integer: non-negative, whole, at most 15 digits.
 *
 * @category encoding
 * @since 0.1.0
 */
export const sfInteger = (value: number): string =>
  String(Number.isFinite(value) ? Math.min(999_999_999_999_999, Math.max(0, Math.ceil(value))) : 0)

/**
 * Renders the `RateLimit-Policy` field value.
 *
 * @category rendering
 * @since 0.1.0
 */
export const policy = (policies: ReadonlyArray<Policy>): string =>
  policies
    .map((p) => {
      let item = `${sfString(p.name)};q=${sfInteger(p.quota)}`
      if (p.quotaUnit !== undefined) item += `;qu=${sfString(p.quotaUnit)}`
      if (p.windowSeconds !== undefined) item += `;w=${sfInteger(p.windowSeconds)}`
      if (p.partitionKey !== undefined) item += `;pk=:${Buffer.from(p.partitionKey).toString("base64")}:`
      return item
    })
    .join(", ")

/**
 * Renders the `RateLimit` field value.
 *
 * @category rendering
 * @since 0.1.0
 */
export const rateLimit = (limits: ReadonlyArray<Limit>): string =>
  limits
    .map((l) => {
      let item = `${sfString(l.name)};r=${sfInteger(l.remaining)}`
      if (l.resetSeconds !== undefined) item += `;t=${sfInteger(l.resetSeconds)}`
      if (l.partitionKey !== undefined) item += `;pk=:${Buffer.from(l.partitionKey).toString("base64")}:`
      return item
    })
    .join(", ")

/**
 * Options of {@link fromDecision}.
 *
 * @category models
 * @since 0.1.0
 */
export interface DecisionOptions {
  /**
   * The quota unit advertised for the windowed policies (`qu`; omitted by
   * default, which means `request`). A `concurrency` policy (no window) is
   * always advertised as `concurrent-requests`.
   */
  readonly quotaUnit?: "request" | "content-bytes" | undefined
}

/**
 * Seconds as `Retry-After` delay-seconds: rounded up, at least 1 (a refused
 * client retrying at once only adds load). Undefined for an infinite wait.
 */
const retryAfterSeconds = (duration: Duration.Duration): string | undefined =>
  Duration.isFinite(duration) ? String(Math.max(1, Math.ceil(Duration.toSeconds(duration)))) : undefined

/**
 * The response fields of a limiter's decision, lower-case named:
 * `ratelimit-policy` and `ratelimit` (one item per policy, in the limiter's
 * order), and `retry-after` (seconds, rounded up, at least 1) when the
 * decision refuses and the wait is finite.
 *
 * **Details**
 *
 * - A policy's `t` is the time until its `reset`; it is left out when the
 *   reset is infinite (a cost larger than the burst can never pass).
 * - Allow- and deny-listed keys, and a decision taken while a remote store
 *   failed, have no policies: no `ratelimit*` fields then.
 *
 * @see {@link policy} and {@link rateLimit} for the field syntax.
 * @category rendering
 * @since 0.1.0
 */
export const fromDecision = (decision: RateLimiter.Decision, options: DecisionOptions = {}): Record<string, string> => {
  const out: Record<string, string> = {}
  const policies = decision.policies
  if (policies.length > 0) {
    out["ratelimit-policy"] = policy(
      policies.map((p) => ({
        name: p.policy,
        quota: p.limit,
        windowSeconds: p.windowSeconds,
        quotaUnit: p.windowSeconds === undefined ? "concurrent-requests" : options.quotaUnit
      }))
    )
    out.ratelimit = rateLimit(
      policies.map((p) => ({
        name: p.policy,
        remaining: p.remaining,
        resetSeconds: Duration.isFinite(p.reset) ? Duration.toSeconds(p.reset) : undefined
      }))
    )
  }
  if (!decision.allowed) {
    const seconds = retryAfterSeconds(decision.retryAfter)
    if (seconds !== undefined) out["retry-after"] = seconds
  }
  return out
}
