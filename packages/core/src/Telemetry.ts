/**
 * The one catalogue of every metric, span and event name the library emits.
 *
 * Each pattern records Effect `Metric`s and span events whose names, units and
 * attribute keys are defined here, once. The generated reference pages
 * (`docs/reference/metrics.md`) are rendered from this catalogue, so the code
 * and the docs cannot drift.
 *
 * **Details**
 *
 * - Names follow the OpenTelemetry conventions: dot-separated namespaces under
 *   `resilience.`, snake_case words, units as UCUM strings (`s`, `{call}`).
 * - Attributes are low-cardinality: pattern, instance name, outcome, state.
 *   A raw client key (a tenant id, an IP address) is never an attribute.
 * - The unit travels as the `unit` attribute of the Effect metric, which is
 *   where `@effect/opentelemetry` reads it from when exporting.
 *
 * **Example** (Looking up a catalogue entry)
 *
 * ```ts import.meta.vitest
 * import { Telemetry } from "@effect-resilience/core"
 *
 * Telemetry.attributes.name
 * // => "resilience.name"
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */

/**
 * The attribute keys shared by every pattern's metrics and spans.
 *
 * @category constants
 * @since 0.1.0
 */
export const attributes: {
  /** Which pattern recorded the value: `circuit_breaker`, `retry`, `rate_limiter`, … */
  readonly pattern: "resilience.pattern"
  /** The instance's configured name (never a per-request key). */
  readonly name: "resilience.name"
  /** What happened to a call: `success`, `failure`, `ignored`, `rejected`, … */
  readonly outcome: "resilience.outcome"
  /** A state such as `closed`, `open`, `half_open`. */
  readonly state: "resilience.state"
  /** The state a transition left. */
  readonly from: "resilience.from"
  /** The state a transition entered. */
  readonly to: "resilience.to"
  /** Why something stopped or was refused: `max_attempts`, `budget`, … */
  readonly reason: "resilience.reason"
  /** A configured policy's name (a rate limit), never a key. */
  readonly policy: "resilience.policy"
  /** A health component's configured name (configuration, never request data). */
  readonly component: "resilience.component"
  /** A policy's layers, outermost first: `retry > circuitBreaker > attemptTimeout`. */
  readonly layers: "resilience.policy.layers"
  /** An alert rule's configured name (configuration, never request data). */
  readonly rule: "resilience.alert.rule"
  /** The unit, read by `@effect/opentelemetry` when it exports a metric. */
  readonly unit: "unit"
} = {
  pattern: "resilience.pattern",
  name: "resilience.name",
  outcome: "resilience.outcome",
  state: "resilience.state",
  from: "resilience.from",
  to: "resilience.to",
  reason: "resilience.reason",
  policy: "resilience.policy",
  component: "resilience.component",
  layers: "resilience.policy.layers",
  rule: "resilience.alert.rule",
  unit: "unit"
}

/**
 * The kind of an instrument, as OpenTelemetry names them.
 *
 * @category models
 * @since 0.1.0
 */
export type InstrumentKind = "counter" | "gauge" | "histogram"

/**
 * One metric of the catalogue.
 *
 * @category models
 * @since 0.1.0
 */
export interface MetricSpec {
  readonly name: string
  readonly kind: InstrumentKind
  /** UCUM unit: `s`, `1`, `{call}`, `{transition}`. */
  readonly unit: string
  readonly description: string
  /** The attribute keys this metric carries, all low-cardinality. */
  readonly attributes: ReadonlyArray<string>
  /** Histogram bucket boundaries, in the metric's unit. */
  readonly boundaries?: ReadonlyArray<number> | undefined
}

/**
 * Severity of an event, as Polly's `ResilienceEvent` has it.
 *
 * @category models
 * @since 0.1.0
 */
export type Severity = "debug" | "info" | "warning" | "error" | "critical"

/**
 * One event of the catalogue: the `_tag` of an event on a pattern's `events`
 * stream, which is also the name of the span event recorded for it.
 *
 * @category models
 * @since 0.1.0
 */
export interface EventSpec {
  readonly pattern: string
  readonly name: string
  readonly severity: Severity
  readonly description: string
}

/**
 * Histogram boundaries for call durations, in seconds (5 ms to 10 s).
 *
 * @category constants
 * @since 0.1.0
 */
export const durationBoundariesSeconds: ReadonlyArray<number> = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

/**
 * The circuit breaker's metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const circuitBreaker = {
  state: {
    name: "resilience.circuit_breaker.state",
    kind: "gauge",
    unit: "{circuit}",
    description:
      "Circuits of the breaker in each state (`closed`, `open`, `half_open`, `disabled`, `forced_open`, `metrics_only`); 0 or 1 for a breaker with one key. Over an in-process store only (absent over a remote one).",
    attributes: [attributes.name, attributes.state]
  },
  calls: {
    name: "resilience.circuit_breaker.calls",
    kind: "counter",
    unit: "{call}",
    description:
      "Calls by outcome: `success`, `failure`, `ignored` (interrupted or classified as ignored) and `rejected` (not run).",
    attributes: [attributes.name, attributes.outcome]
  },
  slowCalls: {
    name: "resilience.circuit_breaker.slow_calls",
    kind: "counter",
    unit: "{call}",
    description: "Calls at or above the slow-call duration, by outcome (`success`, `failure`).",
    attributes: [attributes.name, attributes.outcome]
  },
  failureRate: {
    name: "resilience.circuit_breaker.failure_rate",
    kind: "gauge",
    unit: "1",
    description:
      "Failures over calls in the sliding windows of all the breaker's circuits, 0 to 1. Over an in-process store only.",
    attributes: [attributes.name]
  },
  slowCallRate: {
    name: "resilience.circuit_breaker.slow_call_rate",
    kind: "gauge",
    unit: "1",
    description:
      "Slow calls over calls in the sliding windows of all the breaker's circuits, 0 to 1. Over an in-process store only.",
    attributes: [attributes.name]
  },
  callDuration: {
    name: "resilience.circuit_breaker.call.duration",
    kind: "histogram",
    unit: "s",
    description:
      "Duration of calls the breaker ran, by outcome (recorded when `recordCallDuration` is on or a slow-call policy is set).",
    attributes: [attributes.name, attributes.outcome],
    boundaries: durationBoundariesSeconds
  },
  transitions: {
    name: "resilience.circuit_breaker.transitions",
    kind: "counter",
    unit: "{transition}",
    description: "State transitions, by the state left and the state entered.",
    attributes: [attributes.name, attributes.from, attributes.to]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The circuit breaker's events: the `_tag`s of `CircuitBreaker.Event`, also
 * recorded as span events.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const circuitBreakerEvents = {
  StateTransition: {
    pattern: "circuit_breaker",
    name: "StateTransition",
    severity: "warning",
    description: "A circuit changed state (`from`, `to`; an opening carries `retryAfter` and `consecutiveOpenings`)."
  },
  CallRejected: {
    pattern: "circuit_breaker",
    name: "CallRejected",
    severity: "info",
    description:
      "A call was rejected without running: the circuit was Open, ForcedOpen, or HalfOpen with every probe taken."
  },
  CallOutcome: {
    pattern: "circuit_breaker",
    name: "CallOutcome",
    severity: "debug",
    description: "A call the breaker ran completed: its outcome, whether it was slow, and its duration."
  },
  HealthChanged: {
    pattern: "circuit_breaker",
    name: "HealthChanged",
    severity: "warning",
    description: "A circuit's derived health (`healthy`, `degraded`, `unhealthy`) changed."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The metrics of a local-first circuit breaker store's background sync
 * (`RedisCircuitBreaker.layerStoreLocalFirst`): one sync per breaker each
 * `syncInterval`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const circuitBreakerSync = {
  errors: {
    name: "resilience.circuit_breaker.sync.errors",
    kind: "counter",
    unit: "{sync}",
    description:
      "Syncs of a local-first store that failed (Redis unreachable, timed out, bad reply); the breaker kept deciding locally.",
    attributes: [attributes.name]
  },
  duration: {
    name: "resilience.circuit_breaker.sync.duration",
    kind: "histogram",
    unit: "s",
    description: "Duration of a local-first store's syncs (one script call per breaker), successful or not.",
    attributes: [attributes.name],
    boundaries: durationBoundariesSeconds
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The local-first adaptive throttle's sync with Redis (`RedisAdaptiveThrottle.layerStoreLocalFirst` of
 * `@effect-resilience/redis`), by throttle name.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const adaptiveThrottleSync = {
  errors: {
    name: "resilience.adaptive_throttle.sync.errors",
    kind: "counter",
    unit: "{sync}",
    description:
      "Syncs of a local-first throttle store that failed (Redis unreachable, timed out, bad reply); the throttle kept deciding on its own window.",
    attributes: [attributes.name]
  },
  duration: {
    name: "resilience.adaptive_throttle.sync.duration",
    kind: "histogram",
    unit: "s",
    description: "Duration of a local-first throttle store's syncs (one script call per throttle), successful or not.",
    attributes: [attributes.name],
    boundaries: durationBoundariesSeconds
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The retry policies' metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const retry = {
  attempts: {
    name: "resilience.retry.attempts",
    kind: "counter",
    unit: "{attempt}",
    description: "Attempts made under a retry policy, first attempts included, by outcome (`success`, `failure`).",
    attributes: [attributes.name, attributes.outcome]
  },
  retries: {
    name: "resilience.retry.retries",
    kind: "counter",
    unit: "{retry}",
    description: "Retries scheduled (attempts after the first).",
    attributes: [attributes.name]
  },
  exhausted: {
    name: "resilience.retry.exhausted",
    kind: "counter",
    unit: "{call}",
    description:
      "Calls that failed after retrying stopped, by `resilience.reason`: `max_attempts`, `max_elapsed` (or deadline) or `budget`.",
    attributes: [attributes.name, attributes.reason]
  },
  delay: {
    name: "resilience.retry.delay",
    kind: "histogram",
    unit: "s",
    description: "Delays waited before retries, hints included.",
    attributes: [attributes.name],
    boundaries: durationBoundariesSeconds
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The retry policies' events.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const retryEvents = {
  RetryScheduled: {
    pattern: "retry",
    name: "RetryScheduled",
    severity: "info",
    description: "An attempt failed with a retryable error and the next one is scheduled after `delay`."
  },
  RetriesExhausted: {
    pattern: "retry",
    name: "RetriesExhausted",
    severity: "warning",
    description: "Retrying stopped (`reason`: max_attempts, max_elapsed, budget) and the last failure is returned."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The timeouts' metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const timeout = {
  timeouts: {
    name: "resilience.timeout.timeouts",
    kind: "counter",
    unit: "{call}",
    description:
      "Calls that failed with `TimeoutExceeded`, by `resilience.reason`: `attempt` (an attempt timeout) or `deadline` (the enclosing deadline ran out, or too little of it was left to start).",
    attributes: [attributes.reason]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * Hedging's and the timeouts' events.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const hedgeAndTimeoutEvents = {
  HedgeStarted: {
    pattern: "hedge",
    name: "HedgeStarted",
    severity: "debug",
    description: "A hedged attempt started after the delay (or at once, when every other attempt had failed)."
  },
  HedgeWon: {
    pattern: "hedge",
    name: "HedgeWon",
    severity: "info",
    description: "A hedged attempt succeeded first; the others were interrupted."
  },
  HedgeRefused: {
    pattern: "hedge",
    name: "HedgeRefused",
    severity: "warning",
    description: "The retry budget refused a hedge."
  },
  TimedOut: {
    pattern: "timeout",
    name: "TimedOut",
    severity: "warning",
    description: "An attempt or a deadline ran out (`kind`, `limit`); the work was interrupted."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The rate limiters' metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const rateLimiter = {
  decisions: {
    name: "resilience.rate_limiter.decisions",
    kind: "counter",
    unit: "{decision}",
    description:
      "Decisions by outcome (`allowed`, `rejected`); rejections also by the deciding policy (`resilience.policy`, a configured name, never a key).",
    attributes: [attributes.name, attributes.outcome, attributes.policy]
  },
  usage: {
    name: "resilience.rate_limiter.usage",
    kind: "gauge",
    unit: "1",
    description:
      "The highest usage ratio (1 - remaining / limit) any key reached in the last monitoring tick (a tenth of `alertFor`).",
    attributes: [attributes.name]
  },
  rejectionRate: {
    name: "resilience.rate_limiter.rejection_rate",
    kind: "gauge",
    unit: "1",
    description: "Rejections over decisions in the last monitoring tick.",
    attributes: [attributes.name]
  },
  keys: {
    name: "resilience.rate_limiter.keys",
    kind: "gauge",
    unit: "{key}",
    description: "Keys held in memory by the limiter (the largest of its limits).",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The rate limiters' events.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const rateLimiterEvents = {
  LimitHit: {
    pattern: "rate_limiter",
    name: "LimitHit",
    severity: "info",
    description: "A request was refused: its key, cost, the deciding policy and `retryAfter`."
  },
  AlertTriggered: {
    pattern: "rate_limiter",
    name: "AlertTriggered",
    severity: "critical",
    description: "The rejection rate stayed at or above `alertRejectionRate` for `alertFor` (for the alert module)."
  },
  AlertResolved: {
    pattern: "rate_limiter",
    name: "AlertResolved",
    severity: "info",
    description: "The rejection rate fell below `alertRejectionRate` again."
  }
} as const satisfies Record<string, EventSpec>

/**
 * Hedging's metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const hedge = {
  started: {
    name: "resilience.hedge.started",
    kind: "counter",
    unit: "{attempt}",
    description: "Hedged attempts started (attempts after the first).",
    attributes: [attributes.name]
  },
  won: {
    name: "resilience.hedge.won",
    kind: "counter",
    unit: "{call}",
    description: "Calls whose first success came from a hedged attempt rather than the first one.",
    attributes: [attributes.name]
  },
  refused: {
    name: "resilience.hedge.refused",
    kind: "counter",
    unit: "{attempt}",
    description: "Hedged attempts not started because the retry budget refused them.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The bulkheads' metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const bulkhead = {
  active: {
    name: "resilience.bulkhead.active",
    kind: "gauge",
    unit: "{permit}",
    description: "Permits held, over every key: by running calls, and by waiters granted that have not started yet.",
    attributes: [attributes.name]
  },
  queued: {
    name: "resilience.bulkhead.queued",
    kind: "gauge",
    unit: "{call}",
    description: "Calls waiting for permits, over every key.",
    attributes: [attributes.name]
  },
  calls: {
    name: "resilience.bulkhead.calls",
    kind: "counter",
    unit: "{call}",
    description:
      "Calls by outcome: `admitted` (ran, at once or after waiting) and `rejected` (never ran; by reason in `resilience.bulkhead.rejected`).",
    attributes: [attributes.name, attributes.outcome]
  },
  rejected: {
    name: "resilience.bulkhead.rejected",
    kind: "counter",
    unit: "{call}",
    description:
      "Rejected calls by `resilience.reason`: `full` (permits taken and no room in the line), `timeout` (waited `maxWait`), `cost_exceeded` (a cost above `maxConcurrent`), `store_error` (a remote store failed, with `onStoreError` `fail`; remote stores only).",
    attributes: [attributes.name, attributes.reason]
  },
  waitDuration: {
    name: "resilience.bulkhead.wait.duration",
    kind: "histogram",
    unit: "s",
    description: "Time admitted calls waited for their permits (0 for calls admitted at once).",
    attributes: [attributes.name],
    boundaries: durationBoundariesSeconds
  },
  keys: {
    name: "resilience.bulkhead.keys",
    kind: "gauge",
    unit: "{key}",
    description: "Keys (compartments) held in memory; idle ones are swept.",
    attributes: [attributes.name]
  },
  limit: {
    name: "resilience.bulkhead.limit",
    kind: "gauge",
    unit: "{permit}",
    description:
      "The limit of the bulkhead's own compartment (calls without a key): `maxConcurrent` when fixed, the current adaptive limit with `limit` (each key's in `state(key)` and the `LimitChanged` events).",
    attributes: [attributes.name]
  },
  storeErrors: {
    name: "resilience.bulkhead.store_errors",
    kind: "counter",
    unit: "{error}",
    description:
      "Over a remote store (Redis) only: store failures (calls let through or rejected by `onStoreError`, failed renewals and releases) and leases found run out on renewal.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The bulkheads' events: the `_tag`s of `Bulkhead.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const bulkheadEvents = {
  Rejected: {
    pattern: "bulkhead",
    name: "Rejected",
    severity: "warning",
    description:
      "A call was rejected without running (`reason`: BulkheadFull, BulkheadTimeout, BulkheadCostExceeded, BulkheadStoreError), with its key, cost, priority and `retryAfter`; also a span event (name and reason only)."
  },
  Queued: {
    pattern: "bulkhead",
    name: "Queued",
    severity: "debug",
    description: "A call found its permits taken and joined the line."
  },
  Acquired: {
    pattern: "bulkhead",
    name: "Acquired",
    severity: "debug",
    description: "A call that waited got its permits and started, after `waited`."
  },
  LimitChanged: {
    pattern: "bulkhead",
    name: "LimitChanged",
    severity: "info",
    description:
      "An adaptive key's integer limit changed (`from`, `to`, its key and the algorithm); emitted only when it changes."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The health registry's metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const health = {
  status: {
    name: "resilience.health.status",
    kind: "gauge",
    unit: "1",
    description:
      "A component's reported status: 0 `healthy`, 1 `degraded`, 2 `unhealthy` (component names are configuration, not request data).",
    attributes: [attributes.name, attributes.component]
  },
  overall: {
    name: "resilience.health.overall",
    kind: "gauge",
    unit: "1",
    description: "The aggregated status of every component: 0 `healthy`, 1 `degraded`, 2 `unhealthy`.",
    attributes: [attributes.name]
  },
  checkDuration: {
    name: "resilience.health.check.duration",
    kind: "histogram",
    unit: "s",
    description: "Duration of completed check runs (a timed-out run counts its timeout).",
    attributes: [attributes.name, attributes.component],
    boundaries: durationBoundariesSeconds
  },
  checkFailures: {
    name: "resilience.health.check.failures",
    kind: "counter",
    unit: "{check}",
    description:
      "Failed check runs by `resilience.reason`: `error` (a failure or defect) or `timeout` (a run past its timeout, and each tick it still ran).",
    attributes: [attributes.name, attributes.component, attributes.reason]
  },
  checkSkipped: {
    name: "resilience.health.check.skipped",
    kind: "counter",
    unit: "{tick}",
    description: "Ticks skipped because the component's previous run was still going (checks never overlap).",
    attributes: [attributes.name, attributes.component]
  },
  trendAvailability: {
    name: "resilience.health.trend.availability",
    kind: "gauge",
    unit: "1",
    description:
      "Time `healthy` over the trailing `trendWindow` (the part the component's history covers), 0 to 1, computed when read.",
    attributes: [attributes.name, attributes.component]
  },
  trendStatusChanges: {
    name: "resilience.health.trend.status_changes",
    kind: "gauge",
    unit: "{change}",
    description: "Changes of the component's reported status within the trailing `trendWindow`.",
    attributes: [attributes.name, attributes.component]
  },
  trendFlapping: {
    name: "resilience.health.trend.flapping",
    kind: "gauge",
    unit: "1",
    description: "1 while the component is flapping (more than `flapThreshold` changes within `flapWindow`), else 0.",
    attributes: [attributes.name, attributes.component]
  },
  trendLatencyP50: {
    name: "resilience.health.trend.latency.p50",
    kind: "gauge",
    unit: "s",
    description: "Nearest-rank median of a check's durations within the trailing `trendWindow` (0 without any).",
    attributes: [attributes.name, attributes.component]
  },
  trendLatencyP95: {
    name: "resilience.health.trend.latency.p95",
    kind: "gauge",
    unit: "s",
    description:
      "Nearest-rank 95th percentile of a check's durations within the trailing `trendWindow` (0 without any).",
    attributes: [attributes.name, attributes.component]
  },
  trendLatencyMax: {
    name: "resilience.health.trend.latency.max",
    kind: "gauge",
    unit: "s",
    description: "The longest of a check's durations within the trailing `trendWindow` (0 without any).",
    attributes: [attributes.name, attributes.component]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The health registry's events: the `_tag`s of `Health.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const healthEvents = {
  StatusChanged: {
    pattern: "health",
    name: "StatusChanged",
    severity: "warning",
    description: "A component's reported status changed (`from`, `to`)."
  },
  OverallStatusChanged: {
    pattern: "health",
    name: "OverallStatusChanged",
    severity: "critical",
    description: "The aggregated status of a view (`all`, `readiness`, `liveness`) changed."
  },
  CheckFailed: {
    pattern: "health",
    name: "CheckFailed",
    severity: "info",
    description: "A check failed or timed out (its error message, `timedOut`, the consecutive failures)."
  },
  Flapping: {
    pattern: "health",
    name: "Flapping",
    severity: "warning",
    description:
      "A component changed status more than `flapThreshold` times within `flapWindow`; it reports at least `degraded`."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The fallbacks' metrics.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const fallback = {
  used: {
    name: "resilience.fallback.used",
    kind: "counter",
    unit: "{call}",
    description:
      "Alternatives that answered in place of a call, by `resilience.reason`: `failure` (a typed failure), `defect` (with `catchDefects`) or `degraded` (degraded mode, the call not made). Under the combinator's `name`, or the degradation's.",
    attributes: [attributes.name, attributes.reason]
  },
  cacheLookups: {
    name: "resilience.fallback.cache.lookups",
    kind: "counter",
    unit: "{lookup}",
    description:
      "Cache reads by `resilience.outcome`: `fresh` (a value younger than the ttl answered, the call not made), `stale` (the call failed, the last good value answered), `expired` (it failed, the value was older than maxStale) and `miss` (it failed, no value).",
    attributes: [attributes.name, attributes.outcome]
  },
  cacheKeys: {
    name: "resilience.fallback.cache.keys",
    kind: "gauge",
    unit: "{key}",
    description: "Keys held by the cache (at most `maxKeys`; values older than `maxStale` are swept).",
    attributes: [attributes.name]
  },
  coalesced: {
    name: "resilience.fallback.coalesced",
    kind: "counter",
    unit: "{call}",
    description: "Calls that shared an execution of their key already in flight instead of starting one.",
    attributes: [attributes.name]
  },
  coalesceExecutions: {
    name: "resilience.fallback.coalesce.executions",
    kind: "counter",
    unit: "{execution}",
    description: "Executions a coalescer started (one per burst of concurrent calls of a key).",
    attributes: [attributes.name]
  },
  degraded: {
    name: "resilience.fallback.degraded",
    kind: "gauge",
    unit: "1",
    description: "1 while the degradation is in degraded mode, 0 otherwise.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The fallbacks' events: the `_tag`s of `Fallback.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const fallbackEvents = {
  FallbackUsed: {
    pattern: "fallback",
    name: "FallbackUsed",
    severity: "warning",
    description:
      "An alternative answered in place of a call (`reason`: failure, defect, degraded; `alternative`: its position in a chain); also a span event (name and reason)."
  },
  StaleServed: {
    pattern: "fallback",
    name: "StaleServed",
    severity: "warning",
    description:
      "A call failed and the last good value of its key answered, `age` old (younger than `maxStale`); also a span event (name and reason)."
  },
  Coalesced: {
    pattern: "fallback",
    name: "Coalesced",
    severity: "debug",
    description: "A call joined an execution of its key already in flight (`waiters`: the callers now waiting)."
  },
  DegradedModeChanged: {
    pattern: "fallback",
    name: "DegradedModeChanged",
    severity: "warning",
    description: "A degradation entered degraded mode (with its `reason`), changed reason, or recovered."
  }
} as const satisfies Record<string, EventSpec>

/**
 * Policies' events: span events only (a policy records no metrics of its
 * own; each of its parts keeps its own).
 *
 * @category catalogue
 * @since 0.1.0
 */
export const policyEvents = {
  "Policy.apply": {
    pattern: "policy",
    name: "Policy.apply",
    severity: "debug",
    description:
      "A span event on the caller's span when `Policy.apply` runs a call, with the policy's `resilience.name` and its `resilience.policy.layers`, outermost first."
  }
} as const satisfies Record<string, EventSpec>

/**
 * Chaos injection's metrics, named `resilience.chaos.*`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const chaos = {
  calls: {
    name: "resilience.chaos.calls",
    kind: "counter",
    unit: "{call}",
    description: "Calls through a chaos instance, faults or not.",
    attributes: [attributes.name]
  },
  injected: {
    name: "resilience.chaos.injected",
    kind: "counter",
    unit: "{fault}",
    description:
      "Faults injected, by `resilience.reason`: `latency` (a delay before the call), `failure` (a `ChaosError` in its place), `defect`, `hang`.",
    attributes: [attributes.name, attributes.reason]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * Chaos injection's events: the `_tag`s of `Chaos.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const chaosEvents = {
  FaultInjected: {
    pattern: "chaos",
    name: "FaultInjected",
    severity: "warning",
    description:
      "A fault was injected into a call (`fault`: latency, failure, defect, hang), with its key and, for latency, the delay; also a span event (name and fault only)."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The alert registry's metrics, named `resilience.alert.*`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const alert = {
  firing: {
    name: "resilience.alert.firing",
    kind: "gauge",
    unit: "1",
    description: "1 while the rule is firing, else 0; one series per rule (rule names are configuration).",
    attributes: [attributes.name, attributes.rule]
  },
  transitions: {
    name: "resilience.alert.transitions",
    kind: "counter",
    unit: "{transition}",
    description: "Rules that fired (`resilience.to` = `firing`) or resolved (`resolved`).",
    attributes: [attributes.name, attributes.rule, attributes.to]
  },
  sinkErrors: {
    name: "resilience.alert.sink_errors",
    kind: "counter",
    unit: "{error}",
    description: "Sinks that failed or died on an event (the evaluation goes on).",
    attributes: [attributes.name]
  },
  sinkDropped: {
    name: "resilience.alert.sink.dropped",
    kind: "counter",
    unit: "{event}",
    description:
      "Events dropped from the sinks' queue because it held `sinkQueue` events (the oldest dropped: sinks see the latest).",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The alert registry's events: the `_tag`s of `Alert.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const alertEvents = {
  AlertFiring: {
    pattern: "alert",
    name: "AlertFiring",
    severity: "warning",
    description:
      "A rule's condition held for its `for`: the rule fires (the event carries the rule's own severity, its `since` and the reading's value)."
  },
  AlertResolved: {
    pattern: "alert",
    name: "AlertResolved",
    severity: "info",
    description: "A firing rule's condition was clear for its `resolveAfter`: the rule resolves."
  }
} as const satisfies Record<string, EventSpec>

/**
 * Client-side adaptive throttling's metrics, named `resilience.adaptive_throttle.*`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const adaptiveThrottle = {
  decisions: {
    name: "resilience.adaptive_throttle.decisions",
    kind: "counter",
    unit: "{decision}",
    description:
      "Local decisions by `resilience.outcome`: `admitted` (the call ran) and `throttled` (rejected locally with `AdaptiveThrottleError`, never sent).",
    attributes: [attributes.name, attributes.outcome]
  },
  results: {
    name: "resilience.adaptive_throttle.results",
    kind: "counter",
    unit: "{call}",
    description:
      "Admitted calls by how they ended (`resilience.outcome`): `accepted` and `not_accepted` by the backend (both count as requests), `ignored` (interrupted, or classified as ignored: not counted).",
    attributes: [attributes.name, attributes.outcome]
  },
  probability: {
    name: "resilience.adaptive_throttle.probability",
    kind: "gauge",
    unit: "1",
    description:
      "The highest local rejection probability of any key now, 0 to `maxRejectProbability`, computed from the in-memory windows when read.",
    attributes: [attributes.name]
  },
  keys: {
    name: "resilience.adaptive_throttle.keys",
    kind: "gauge",
    unit: "{key}",
    description: "Keys (backends, hosts) held in memory; idle ones are dropped as new keys arrive.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * Client-side adaptive throttling's events: the `_tag`s of `AdaptiveThrottle.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const adaptiveThrottleEvents = {
  Throttled: {
    pattern: "adaptive_throttle",
    name: "Throttled",
    severity: "warning",
    description:
      "A call was rejected locally (its key, the probability, the window's requests and accepts). At most one event per key and bucket of the window; `suppressed` counts the rejections of that key not reported since the last one. Every rejection is also a span event (name only)."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The policy registry's metrics, named `resilience.registry.*`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const registry = {
  reloads: {
    name: "resilience.registry.reloads",
    kind: "counter",
    unit: "{reload}",
    description:
      "Configurations offered to the registry (`make`, `reload`, a `source`, a scheduled re-read), by `resilience.outcome`: `ok` (applied) or `failed` (refused, the old one kept).",
    attributes: [attributes.name, attributes.outcome]
  },
  policies: {
    name: "resilience.registry.policies",
    kind: "gauge",
    unit: "{policy}",
    description: "Policies the registry serves now.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The policy registry's events: the `_tag`s of `Registry.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const registryEvents = {
  PolicyAdded: {
    pattern: "registry",
    name: "PolicyAdded",
    severity: "info",
    description: "A policy was added to the registry (with the version that added it)."
  },
  PolicyReplaced: {
    pattern: "registry",
    name: "PolicyReplaced",
    severity: "info",
    description:
      "A policy's data changed on a reload: `parts` lists the parts rebuilt (a changed breaker carries its circuits over); the others keep their instances."
  },
  PolicyRemoved: {
    pattern: "registry",
    name: "PolicyRemoved",
    severity: "info",
    description: "A reload dropped a policy: its instances are released once the calls in flight on them finish."
  },
  ReloadFailed: {
    pattern: "registry",
    name: "ReloadFailed",
    severity: "error",
    description:
      "A configuration was refused (its `InvalidOptions` lists every bad field): the previous version keeps serving."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The load balancers' metrics, named `resilience.load_balancer.*`: by
 * balancer name, outcome and reason, never by endpoint (endpoint ids come
 * and go with discovery; per-endpoint state is in `stats`).
 *
 * @category catalogue
 * @since 0.1.0
 */
export const loadBalancer = {
  calls: {
    name: "resilience.load_balancer.calls",
    kind: "counter",
    unit: "{call}",
    description:
      "Calls by outcome: `success`, `failure` (counted against the endpoint), `ignored` (interrupted or classified as ignored) and `rejected` (no endpoint to pick; not run).",
    attributes: [attributes.name, attributes.outcome]
  },
  rejected: {
    name: "resilience.load_balancer.rejected",
    kind: "counter",
    unit: "{call}",
    description:
      "Rejected calls by `resilience.reason`: `no_endpoints` (an empty set) or `all_ejected` (every endpoint ejected, panic mode off).",
    attributes: [attributes.name, attributes.reason]
  },
  ejections: {
    name: "resilience.load_balancer.ejections",
    kind: "counter",
    unit: "{ejection}",
    description: "Endpoints ejected, by `resilience.reason`: `consecutive_failures` or `success_rate`.",
    attributes: [attributes.name, attributes.reason]
  },
  panic: {
    name: "resilience.load_balancer.panic",
    kind: "counter",
    unit: "{call}",
    description:
      "Calls picked in panic mode: fewer than `panicThreshold` % of the endpoints were in service, so every endpoint was a candidate.",
    attributes: [attributes.name]
  },
  endpoints: {
    name: "resilience.load_balancer.endpoints",
    kind: "gauge",
    unit: "{endpoint}",
    description: "Endpoints in the set (those removed with calls still in flight aside).",
    attributes: [attributes.name]
  },
  ejected: {
    name: "resilience.load_balancer.ejected",
    kind: "gauge",
    unit: "{endpoint}",
    description: "Endpoints of the set ejected now.",
    attributes: [attributes.name]
  },
  inFlight: {
    name: "resilience.load_balancer.in_flight",
    kind: "gauge",
    unit: "{call}",
    description: "Calls in flight over every endpoint, removed ones still draining included.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The load balancers' events: the `_tag`s of `LoadBalancer.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const loadBalancerEvents = {
  EndpointEjected: {
    pattern: "load_balancer",
    name: "EndpointEjected",
    severity: "warning",
    description:
      "An endpoint was ejected (`reason`: ConsecutiveFailures, SuccessRate) for `duration`, with its multiplier and, for SuccessRate, its rate and the threshold; an ejection by a call is also a span event on that call's span (name and reason)."
  },
  EndpointReturned: {
    pattern: "load_balancer",
    name: "EndpointReturned",
    severity: "info",
    description:
      "An ejected endpoint's time was up and it is back in service (noticed by the next call or interval evaluation)."
  },
  EndpointsChanged: {
    pattern: "load_balancer",
    name: "EndpointsChanged",
    severity: "info",
    description: "The set changed (discovery or `update`): the ids `added` and `removed`, and its size."
  },
  Rejected: {
    pattern: "load_balancer",
    name: "Rejected",
    severity: "warning",
    description:
      "A call found no endpoint to pick (`reason`: NoEndpoints, AllEjected, with `retryAfter`); also a span event (name and reason)."
  }
} as const satisfies Record<string, EventSpec>

/**
 * The resource pools' metrics, named `resilience.pool.*`: by pool name, with
 * a reason or outcome, never by resource.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const resourcePool = {
  size: {
    name: "resilience.pool.size",
    kind: "gauge",
    unit: "{resource}",
    description: "Open resources: idle, borrowed and being checked (acquisitions in flight aside).",
    attributes: [attributes.name]
  },
  idle: {
    name: "resilience.pool.idle",
    kind: "gauge",
    unit: "{resource}",
    description: "Idle resources, ready to be borrowed.",
    attributes: [attributes.name]
  },
  borrowed: {
    name: "resilience.pool.borrowed",
    kind: "gauge",
    unit: "{resource}",
    description: "Resources borrowed now (handed to a waiter that has not resumed yet included).",
    attributes: [attributes.name]
  },
  waiters: {
    name: "resilience.pool.waiters",
    kind: "gauge",
    unit: "{borrower}",
    description: "Borrowers waiting for a resource.",
    attributes: [attributes.name]
  },
  waitDuration: {
    name: "resilience.pool.wait.duration",
    kind: "histogram",
    unit: "s",
    description:
      "Time borrowers waited for their resource, validation included (0 for a resource idle and handed out at once).",
    attributes: [attributes.name],
    boundaries: durationBoundariesSeconds
  },
  timeouts: {
    name: "resilience.pool.timeouts",
    kind: "counter",
    unit: "{borrow}",
    description:
      "Borrowers that waited `acquireTimeout` in vain, by `resilience.reason`: `acquire_timeout` (every resource busy) or `acquire_failed` (acquisitions failing).",
    attributes: [attributes.name, attributes.reason]
  },
  rejected: {
    name: "resilience.pool.rejected",
    kind: "counter",
    unit: "{borrow}",
    description:
      "Borrowers rejected without a resource, by `resilience.reason`: `too_many_waiters` (`maxWaiters` waiting) or `closed` (the pool shut down).",
    attributes: [attributes.name, attributes.reason]
  },
  acquisitions: {
    name: "resilience.pool.acquisitions",
    kind: "counter",
    unit: "{acquisition}",
    description: "Acquisitions by `resilience.outcome`: `success` or `failure` (retried with backoff while needed).",
    attributes: [attributes.name, attributes.outcome]
  },
  releases: {
    name: "resilience.pool.releases",
    kind: "counter",
    unit: "{resource}",
    description:
      "Resources released (their scope closed) by `resilience.reason`: `idle_timeout`, `max_lifetime`, `invalidated` or `shutdown`.",
    attributes: [attributes.name, attributes.reason]
  },
  leaks: {
    name: "resilience.pool.leaks_suspected",
    kind: "counter",
    unit: "{borrow}",
    description: "Borrows that held their resource longer than `leakDetection`.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * The resource pools' events: the `_tag`s of `ResourcePool.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const resourcePoolEvents = {
  Acquired: {
    pattern: "resource_pool",
    name: "Acquired",
    severity: "debug",
    description: "A resource was acquired (how long `acquire` took, the pool's size)."
  },
  AcquireFailed: {
    pattern: "resource_pool",
    name: "AcquireFailed",
    severity: "warning",
    description: "An acquisition failed (the error, the failures in a row, `retryIn`: the backoff before the next one)."
  },
  Invalidated: {
    pattern: "resource_pool",
    name: "Invalidated",
    severity: "info",
    description:
      "A resource was invalidated (`reason`: Invalidate, ValidationFailed, KeepaliveFailed, Interrupted); released at once when idle, when it comes back when borrowed."
  },
  Released: {
    pattern: "resource_pool",
    name: "Released",
    severity: "debug",
    description: "A resource's scope was closed (`reason`: IdleTimeout, MaxLifetime, Invalidated, Shutdown; its age)."
  },
  LeakSuspected: {
    pattern: "resource_pool",
    name: "LeakSuspected",
    severity: "warning",
    description:
      "A borrower held a resource longer than `leakDetection` (its fiber id); also a span event on the borrower's span."
  },
  WaitTimeout: {
    pattern: "resource_pool",
    name: "WaitTimeout",
    severity: "warning",
    description:
      "A borrower waited `acquireTimeout` in vain (`reason`: AcquireTimeout, AcquireFailed); also a span event (name and reason)."
  },
  Rejected: {
    pattern: "resource_pool",
    name: "Rejected",
    severity: "warning",
    description:
      "A borrower was rejected without a resource (`reason`: TooManyWaiters, PoolClosed); also a span event (name and reason)."
  }
} as const satisfies Record<string, EventSpec>

/**
 * Load shedding's metrics (the HTTP server middleware of
 * `@effect-resilience/http`), named `resilience.load_shedding.*`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const loadShedding = {
  requests: {
    name: "resilience.load_shedding.requests",
    kind: "counter",
    unit: "{request}",
    description:
      "Requests seen by the shedder, by `resilience.outcome`: `admitted`, `shed` or `excluded` (a path never shed).",
    attributes: [attributes.name, attributes.outcome]
  },
  shed: {
    name: "resilience.load_shedding.shed",
    kind: "counter",
    unit: "{request}",
    description:
      "Requests shed, by `resilience.reason`: the signal over its trigger (`event_loop_delay`, `heap_used`, `rss`, `in_flight`) or `max_in_flight` (the hard cap).",
    attributes: [attributes.name, attributes.reason]
  },
  episodes: {
    name: "resilience.load_shedding.episodes",
    kind: "counter",
    unit: "{episode}",
    description: "Times shedding started (the level left `none`); a fast-growing count means flapping.",
    attributes: [attributes.name]
  },
  level: {
    name: "resilience.load_shedding.level",
    kind: "gauge",
    unit: "1",
    description: "What is shed now: 0 nothing, 1 sheddable requests, 2 normal and sheddable requests (critical never).",
    attributes: [attributes.name]
  },
  inFlight: {
    name: "resilience.load_shedding.in_flight",
    kind: "gauge",
    unit: "{request}",
    description: "Requests admitted and still running (excluded paths not counted).",
    attributes: [attributes.name]
  },
  eventLoopDelay: {
    name: "resilience.load_shedding.event_loop_delay",
    kind: "gauge",
    unit: "s",
    description: "The event-loop delay of the last sample (the probe's p99 over the interval by default).",
    attributes: [attributes.name]
  },
  heapUsed: {
    name: "resilience.load_shedding.heap_used",
    kind: "gauge",
    unit: "By",
    description: "The V8 heap used at the last sample.",
    attributes: [attributes.name]
  },
  rss: {
    name: "resilience.load_shedding.rss",
    kind: "gauge",
    unit: "By",
    description: "The resident set size at the last sample.",
    attributes: [attributes.name]
  }
} as const satisfies Record<string, MetricSpec>

/**
 * Load shedding's events: the `_tag`s of `LoadShedding.Event`.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const loadSheddingEvents = {
  SheddingStarted: {
    pattern: "load_shedding",
    name: "SheddingStarted",
    severity: "warning",
    description: "Shedding started: a sample put a signal over its trigger (`level`, the signals over, the readings)."
  },
  SheddingLevelChanged: {
    pattern: "load_shedding",
    name: "SheddingLevelChanged",
    severity: "warning",
    description: "The level moved between `sheddable` (sheddable requests shed) and `normal` (normal ones too)."
  },
  SheddingStopped: {
    pattern: "load_shedding",
    name: "SheddingStopped",
    severity: "info",
    description:
      "Shedding stopped after `calmSamples` calm samples (how long the episode lasted, the requests shed during it)."
  }
} as const satisfies Record<string, EventSpec>

/**
 * Every metric the library records, in catalogue order. Patterns append their
 * entries here as they are added; the docs generator reads this list.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const metrics: ReadonlyArray<MetricSpec> = [
  ...Object.values(circuitBreaker),
  ...Object.values(circuitBreakerSync),
  ...Object.values(retry),
  ...Object.values(timeout),
  ...Object.values(hedge),
  ...Object.values(rateLimiter),
  ...Object.values(bulkhead),
  ...Object.values(health),
  ...Object.values(fallback),
  ...Object.values(chaos),
  ...Object.values(alert),
  ...Object.values(loadBalancer),
  ...Object.values(adaptiveThrottle),
  ...Object.values(adaptiveThrottleSync),
  ...Object.values(registry),
  ...Object.values(resourcePool),
  ...Object.values(loadShedding)
]

/**
 * Every event the library emits, in catalogue order.
 *
 * @category catalogue
 * @since 0.1.0
 */
export const events: ReadonlyArray<EventSpec> = [
  ...Object.values(circuitBreakerEvents),
  ...Object.values(retryEvents),
  ...Object.values(hedgeAndTimeoutEvents),
  ...Object.values(rateLimiterEvents),
  ...Object.values(bulkheadEvents),
  ...Object.values(healthEvents),
  ...Object.values(fallbackEvents),
  ...Object.values(chaosEvents),
  ...Object.values(policyEvents),
  ...Object.values(alertEvents),
  ...Object.values(loadBalancerEvents),
  ...Object.values(adaptiveThrottleEvents),
  ...Object.values(registryEvents),
  ...Object.values(resourcePoolEvents),
  ...Object.values(loadSheddingEvents)
]

/**
 * Renders metric specs as a Markdown table (the generated reference pages use it).
 *
 * @category rendering
 * @since 0.1.0
 */
export const metricsTable = (specs: ReadonlyArray<MetricSpec>): string => {
  const rows = specs.map(
    (spec) =>
      `| \`${spec.name}\` | ${spec.kind} | \`${spec.unit}\` | ${spec.attributes.map((key) => `\`${key}\``).join(", ")} | ${spec.description} |`
  )
  return ["| name | instrument | unit | attributes | description |", "|---|---|---|---|---|", ...rows].join("\n")
}

/**
 * Renders event specs as a Markdown table.
 *
 * @category rendering
 * @since 0.1.0
 */
export const eventsTable = (specs: ReadonlyArray<EventSpec>): string => {
  const rows = specs.map((spec) => `| \`${spec.name}\` | ${spec.pattern} | ${spec.severity} | ${spec.description} |`)
  return ["| event | pattern | severity | description |", "|---|---|---|---|", ...rows].join("\n")
}
