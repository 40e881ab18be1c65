/**
 * A live dashboard for Effect's HTTP server: one self-contained page showing
 * the circuit breakers, rate limiters, bulkheads (with their adaptive
 * limits), adaptive throttles, load balancers, policy registries, health
 * registries and alerts of a process as they change, the same data as JSON,
 * and a Server-Sent Events stream the page renders from.
 *
 * Three routes under `prefix` (`/dashboard` by default):
 *
 * - `GET <prefix>` (and `<prefix>/`): the page, one HTML document with its CSS
 *   and script inline (no CDN, no build step, no external asset), served with
 *   a Content-Security-Policy allowing only its own nonce-tagged script.
 * - `GET <prefix>/snapshot`: a {@link Snapshot} as JSON, a versioned,
 *   Schema-described shape (`version: 2`).
 * - `GET <prefix>/events`: `text/event-stream`. A full snapshot on connect,
 *   then one every `interval` (on Effect's `Clock`) and one at once after a
 *   breaker transition, a health status change, an alert firing or
 *   resolving, an adaptive bulkhead's `LimitChanged`, a throttle's
 *   `Throttled`, an endpoint ejected or returned or the endpoint set
 *   changing, and a registry's policy added, replaced or removed or a reload
 *   refused. A browser that loses the stream shows it and reconnects.
 *
 * **Details**
 *
 * - Circuits are listed from each breaker's `snapshot` (every circuit its
 *   store holds), most urgent first (Open, ForcedOpen, HalfOpen, …): at most
 *   `maxCircuits` per breaker, with the count of the rest. A breaker that
 *   has not run a call yet shows its default circuit.
 * - The other keyed lists are cut the same way: at most `maxEndpoints`
 *   endpoints per load balancer (ejected ones first), `maxThrottleKeys`
 *   keys per adaptive throttle (the highest rejection probability first)
 *   and `maxCompartments` compartments per bulkhead (the most queued, then
 *   the fullest), with the count of the rest.
 * - Slow clients cannot grow memory: every change only marks the stream as
 *   due (a sliding queue of one), and a snapshot is taken when the client is
 *   ready for it, so intermediate snapshots are dropped and the latest sent.
 *   At most `maxClients` streams are open at once; more are answered 503.
 * - Everything a stream holds (its event subscriptions, its timer fiber)
 *   lives in the stream's scope: a client that goes away ends it.
 * - Open streams end, cleanly (the response is finished and its HTTP/1.1
 *   connection closed: `Connection: close`), when their Node server stops
 *   listening — checked every 100 ms, so a graceful shutdown does not wait
 *   for them — and when the scope the dashboard was made in (or one
 *   enclosing it) closes. A browser then shows the drop and reconnects after
 *   `reconnect`.
 * - Names, keys, error messages and the title are shown as text: the page
 *   renders with `textContent`, never `innerHTML`, and the title is escaped.
 *
 * **Gotchas**
 *
 * - The dashboard exposes internal state (circuit keys, client keys of the
 *   top-clients sketch, error messages): mount it behind authentication, or on
 *   a port the public cannot reach (docs/patterns/dashboard.md shows both).
 * - While a page is open the dashboard subscribes to the events of the
 *   breakers, adaptive bulkheads, throttles, balancers and registries, so
 *   they build their events (a breaker one per call). Over a remote store a
 *   subscribed breaker also reads each circuit's health back after every
 *   call.
 * - A bulkhead's `limit` is its own compartment's (calls without a key); a
 *   bulkhead keyed per tenant shows its most urgent compartments too (at
 *   most `maxCompartments`: the most queued, then the fullest, then the
 *   lowest limit, from `Bulkhead.compartments`), each with its own limit.
 *   Over a remote store they are this process's compartments.
 * - An open event stream is a request in flight, which a server shutting
 *   down waits for: the dashboard ends its streams itself on a Node server
 *   (`NodeHttpServer`) stopping; on another server (Bun, a web handler) they
 *   end when the dashboard's scope closes, or when the server gives up
 *   waiting.
 *
 * **Example** (A dashboard next to the app's routes)
 *
 * ```ts
 * import { Dashboard } from "@effect-resilience/http"
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import * as Http from "node:http"
 *
 * const DashboardRoutes = Layer.unwrap(
 *   Effect.gen(function* () {
 *     const payments = yield* CircuitBreaker.make({ name: "payments" })
 *     return Dashboard.layer({ breakers: [payments], title: "Checkout", interval: "2 seconds" })
 *   })
 * ).pipe(Layer.provide(CircuitBreaker.layerStoreMemory()))
 *
 * const Server = HttpRouter.serve(DashboardRoutes).pipe(
 *   Layer.provide(NodeHttpServer.layer(Http.createServer, { port: 8080 }))
 * )
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import type { AdaptiveThrottle, Bulkhead, CircuitBreaker, LoadBalancer, RateLimiter } from "@effect-resilience/core"
import { Alert, Health, Options as Options_, Registry } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Base64 from "effect/encoding/Base64"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as internal from "./internal/dashboardPage.ts"

// ---------------------------------------------------------------------------
// type ids
// ---------------------------------------------------------------------------

/**
 * Runtime identifier of `Dashboard` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export const TypeId: TypeId = "~@effect-resilience/http/Dashboard"

/**
 * Type-level identifier of `Dashboard` values.
 *
 * @category type IDs
 * @since 0.1.0
 */
export type TypeId = "~@effect-resilience/http/Dashboard"

// ---------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------

/**
 * A dashboard over a set of resilience instances: its snapshot, its stream of
 * snapshots and the routes serving them.
 *
 * @category models
 * @since 0.1.0
 */
export interface Dashboard {
  readonly [TypeId]: TypeId
  /** The validated options, with the instances shown. */
  readonly options: ResolvedOptions
  /** Reads every instance now. Never fails: an instance that cannot be read carries an `error`. */
  readonly snapshot: Effect.Effect<Snapshot>
  /**
   * A snapshot now, then one every `interval` and one after each breaker
   * transition, health change, alert change, adaptive limit change,
   * throttling, endpoint ejection, return or set change, and policy change
   * or refused reload. Pull-driven: while the
   * consumer is busy, changes coalesce into one pending snapshot, taken when
   * it pulls. Each run holds its subscriptions for as long as it runs.
   */
  readonly changes: Stream.Stream<Snapshot>
  /** Event streams (`GET <prefix>/events`) open now. */
  readonly clients: Effect.Effect<number>
  /** The routes: the page, `/snapshot` and `/events` under `prefix`. */
  readonly routes: ReadonlyArray<HttpRouter.Route<never, never>>
}

// ---------------------------------------------------------------------------
// the snapshot
// ---------------------------------------------------------------------------

const Status = Schema.Literals(["healthy", "degraded", "unhealthy"])
const Count = Schema.Number

/**
 * One circuit of a breaker, as the page shows it.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const CircuitView = Schema.Struct({
  key: Schema.String,
  state: Schema.Literals(["Closed", "Open", "HalfOpen", "Disabled", "ForcedOpen", "MetricsOnly"]),
  health: Status,
  /** Failed over buffered calls, 0 to 1. */
  failureRate: Schema.Number,
  /** Slow over buffered calls, 0 to 1. */
  slowCallRate: Schema.Number,
  bufferedCalls: Count,
  failedCalls: Count,
  slowCalls: Count,
  consecutiveFailures: Count,
  consecutiveOpenings: Count,
  /** For an Open circuit: milliseconds until a call may probe (0 once due); `null` otherwise. */
  retryAfterMillis: Schema.NullOr(Schema.Number)
})

/**
 * A circuit breaker: its totals and its most urgent circuits.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const BreakerView = Schema.Struct({
  name: Schema.String,
  stats: Schema.Struct({
    successes: Count,
    failures: Count,
    ignored: Count,
    rejected: Count,
    slowSuccesses: Count,
    slowFailures: Count,
    evicted: Count,
    storeErrors: Count
  }),
  /** Circuits the store holds; at most `maxCircuits` of them are in `circuits`. */
  circuitCount: Count,
  circuits: Schema.Array(CircuitView),
  /** Why the circuits could not be read (a remote store down); `null` when they were. */
  error: Schema.NullOr(Schema.String)
})

/**
 * A rate limiter: decisions so far, its rejection-rate alert and its
 * heaviest clients.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const LimiterView = Schema.Struct({
  name: Schema.String,
  allowed: Count,
  rejected: Count,
  keys: Count,
  evicted: Count,
  storeErrors: Count,
  alerting: Schema.Boolean,
  /** The rejection rate over the last monitoring tick, 0 to 1. */
  rejectionRate: Schema.Number,
  /** The heaviest keys by cost, at most `topClients` of them. */
  topClients: Schema.Array(Schema.Struct({ key: Schema.String, cost: Count }))
})

/**
 * One compartment of a bulkhead (a key: a tenant, a host; or the bulkhead's
 * own, its name as the key), as `Bulkhead.compartments` lists it.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const CompartmentView = Schema.Struct({
  key: Schema.String,
  /** Permits held. */
  active: Count,
  /** Calls waiting. */
  queued: Count,
  /** Permits free: `limit - active`, at least 0. */
  available: Count,
  /** The compartment's limit now: its adaptive limit with one, else `maxConcurrent`. */
  limit: Count
})

/**
 * A bulkhead: permits held, calls waiting, the totals, its limit (the
 * adaptive one when it has one) and its most urgent compartments.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const BulkheadView = Schema.Struct({
  name: Schema.String,
  active: Count,
  queued: Count,
  admitted: Count,
  rejected: Count,
  keys: Count,
  maxConcurrent: Count,
  maxQueue: Count,
  /**
   * The limit of the bulkhead's own compartment (calls without a key) now:
   * `maxConcurrent` for a fixed bulkhead, the adaptive limit with one. (Since version 2.)
   */
  limit: Count,
  /** Changes of an adaptive limit over every key since the start (0 for a fixed bulkhead). (Since version 2.) */
  limitChanges: Count,
  /** The adaptive limit's algorithm and bounds; `null` for a fixed bulkhead. (Since version 2.) */
  adaptive: Schema.NullOr(
    Schema.Struct({
      algorithm: Schema.Literals(["aimd", "gradient", "vegas"]),
      minLimit: Count,
      maxLimit: Count
    })
  ),
  /**
   * Compartments held (in memory the bulkhead's own included; over a remote
   * store this process's); at most `maxCompartments` of them are in
   * `compartments`. (Added within version 2: optional, absent from the
   * snapshots of earlier dashboards.)
   */
  compartmentCount: Schema.optionalKey(Count),
  /**
   * The most urgent compartments: the most queued first, then the highest
   * `active / limit`, then the lowest limit, then by key. (Added within
   * version 2: optional, as `compartmentCount`.)
   */
  compartments: Schema.optionalKey(Schema.Array(CompartmentView))
})

/**
 * One key's window of an adaptive throttle.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const ThrottleWindowView = Schema.Struct({
  key: Schema.String,
  /** Requests in the window (local rejections included). */
  requests: Count,
  /** Requests the backend accepted, in the window. */
  accepts: Count,
  /** The probability that the key's next call is rejected locally, 0 to 1. */
  probability: Schema.Number
})

/**
 * An adaptive throttle: its totals and its keys with the highest rejection
 * probability.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const ThrottleView = Schema.Struct({
  name: Schema.String,
  /** Calls run, since the start. */
  admitted: Count,
  /** Calls rejected locally, since the start. */
  throttled: Count,
  accepted: Count,
  notAccepted: Count,
  ignored: Count,
  /** Keys held (the throttle's own window not counted). */
  keys: Count,
  /** The accepts multiplier K, and the cap of the probability. */
  k: Schema.Number,
  maxRejectProbability: Schema.Number,
  windowMillis: Schema.Number,
  /** Windows held; at most `maxThrottleKeys` of them are in `windows`. */
  windowCount: Count,
  /**
   * The windows, highest probability first. The throttle's own window (its
   * name as the key) is listed when it has requests or no key is held.
   */
  windows: Schema.Array(ThrottleWindowView)
})

/**
 * One endpoint of a load balancer.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const EndpointView = Schema.Struct({
  id: Schema.String,
  /** `active` (in the set), `ejected` (in the set, ejected), `draining` (removed, calls still in flight). */
  state: Schema.Literals(["active", "ejected", "draining"]),
  zone: Schema.NullOr(Schema.String),
  weight: Schema.Number,
  inFlight: Count,
  /** The peak EWMA of its latency, in milliseconds; `null` before its first call ended. */
  latencyMillis: Schema.NullOr(Schema.Number),
  successes: Count,
  failures: Count,
  consecutiveFailures: Count,
  /** Times it was ejected since it joined. */
  ejections: Count,
  /** For an ejected endpoint: the clock millis its ejection ends; `null` otherwise. */
  ejectedUntil: Schema.NullOr(Schema.Number)
})

/**
 * A load balancer: its set, its totals and its endpoints, ejected ones first.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const BalancerView = Schema.Struct({
  name: Schema.String,
  strategy: Schema.String,
  /** Endpoints in the set. */
  endpointCount: Count,
  /** Endpoints of the set ejected now. */
  ejected: Count,
  /** Whether calls go to every endpoint, ejected or not (panic mode). */
  panic: Schema.Boolean,
  inFlight: Count,
  successes: Count,
  failures: Count,
  ignored: Count,
  rejected: Count,
  /** Endpoints known: the set's and the draining ones; at most `maxEndpoints` of them are in `endpoints`. */
  hostCount: Count,
  endpoints: Schema.Array(EndpointView)
})

/**
 * A policy registry: the version served, each policy with its parts, and the
 * last reload it refused.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const RegistryView = Schema.Struct({
  name: Schema.String,
  /** Configurations applied so far. */
  version: Count,
  /** The policies served, in configuration order, each with its parts outermost first. */
  policies: Schema.Array(Schema.Struct({ name: Schema.String, parts: Schema.Array(Schema.String) })),
  /** The last reload refused (the version then served, when, and every bad field); `null` before any. */
  lastFailure: Schema.NullOr(
    Schema.Struct({
      version: Count,
      failedAt: Schema.Number,
      issues: Schema.Array(Schema.Struct({ path: Schema.String, value: Schema.String, message: Schema.String }))
    })
  )
})

/**
 * A health registry: its overall status and its components.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const HealthView = Schema.Struct({
  name: Schema.String,
  status: Status,
  components: Schema.Array(
    Schema.Struct({
      name: Schema.String,
      status: Status,
      critical: Schema.Boolean,
      probe: Schema.Literals(["readiness", "liveness", "both"]),
      flapping: Schema.Boolean,
      consecutiveFailures: Count,
      latencyMillis: Schema.NullOr(Schema.Number),
      lastError: Schema.NullOr(Schema.String)
    })
  )
})

/**
 * An alert registry: every rule's state (the page lists the firing and
 * pending ones).
 *
 * @category snapshot
 * @since 0.1.0
 */
export const AlertsView = Schema.Struct({
  name: Schema.String,
  rules: Schema.Array(
    Schema.Struct({
      name: Schema.String,
      kind: Schema.String,
      severity: Schema.Literals(["debug", "info", "warning", "error", "critical"]),
      description: Schema.String,
      state: Schema.Literals(["inactive", "pending", "firing", "resolved"]),
      /** Clock millis: when the condition became true, or when the state began. */
      since: Schema.Number,
      firedAt: Schema.NullOr(Schema.Number),
      value: Schema.NullOr(Schema.Number),
      detail: Schema.NullOr(Schema.String)
    })
  )
})

/**
 * Everything the dashboard shows, as `GET <prefix>/snapshot` answers it and
 * each event of `GET <prefix>/events` carries it. Versioned: `version` 2
 * added the bulkheads' limits and the `throttles`, `balancers` and
 * `registries` sections; every field of version 1 is unchanged. Within a
 * version, fields may only be added, as optional fields (a bulkhead's
 * `compartmentCount` and `compartments`): a reader ignores the fields it
 * does not know, and a snapshot without them still decodes. A removed or
 * changed field, or a required new one, takes a new version.
 *
 * @category snapshot
 * @since 0.1.0
 */
export const Snapshot = Schema.Struct({
  version: Schema.Literal(2),
  title: Schema.String,
  /** Clock millis when the snapshot was taken. */
  takenAt: Schema.Number,
  /** The interval between two snapshots of the stream, in milliseconds. */
  intervalMillis: Schema.Number,
  /** The worst status of the health registries (`healthy` with none). */
  status: Status,
  /** Rules firing now, over every alert registry. */
  firing: Count,
  breakers: Schema.Array(BreakerView),
  limiters: Schema.Array(LimiterView),
  bulkheads: Schema.Array(BulkheadView),
  health: Schema.Array(HealthView),
  alerts: Schema.Array(AlertsView),
  throttles: Schema.Array(ThrottleView),
  balancers: Schema.Array(BalancerView),
  registries: Schema.Array(RegistryView)
})

/**
 * @category snapshot
 * @since 0.1.0
 */
export type Snapshot = typeof Snapshot.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type CircuitView = typeof CircuitView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type BreakerView = typeof BreakerView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type LimiterView = typeof LimiterView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type BulkheadView = typeof BulkheadView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type CompartmentView = typeof CompartmentView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type HealthView = typeof HealthView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type ThrottleWindowView = typeof ThrottleWindowView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type ThrottleView = typeof ThrottleView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type EndpointView = typeof EndpointView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type BalancerView = typeof BalancerView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type RegistryView = typeof RegistryView.Type

/**
 * @category snapshot
 * @since 0.1.0
 */
export type AlertsView = typeof AlertsView.Type

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

/**
 * The defaults of the options.
 *
 * @category options
 * @since 0.1.0
 */
export const defaults: {
  readonly prefix: `/${string}`
  readonly title: string
  readonly interval: Duration.Duration
  readonly reconnect: Duration.Duration
  readonly maxCircuits: number
  readonly topClients: number
  readonly maxClients: number
  readonly maxEndpoints: number
  readonly maxThrottleKeys: number
  readonly maxCompartments: number
} = {
  prefix: "/dashboard",
  title: "Resilience dashboard",
  interval: Duration.seconds(1),
  reconnect: Duration.seconds(1),
  maxCircuits: 50,
  topClients: 5,
  maxClients: 16,
  maxEndpoints: 50,
  maxThrottleKeys: 50,
  maxCompartments: 10
}

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/**
 * The dashboard's options as a schema: the single source of their rules and
 * of the Defaults table. The instances shown (`breakers`, `limiters`,
 * `bulkheads`, `health`, `alerts`, `throttles`, `balancers`, `registries`)
 * are programmatic only.
 *
 * @category options
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  prefix: Schema.optionalKey(
    Schema.String.check(
      Schema.isPattern(/^(\/[A-Za-z0-9._~-]+)+$/, {
        expected: "a path such as /dashboard (segments of letters, digits and . _ ~ -, no trailing slash)"
      })
    ).annotate({
      description: "The path the routes are mounted under: the page at `prefix`, `prefix/snapshot`, `prefix/events`.",
      default: defaults.prefix
    })
  ),
  title: Schema.optionalKey(
    Schema.String.check(Schema.isNonEmpty(), Schema.isMaxLength(200)).annotate({
      description: "The page's title (shown as text: escaped).",
      default: defaults.title
    })
  ),
  interval: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How often the event stream sends a snapshot besides the ones sent on changes. Above zero.",
      default: defaults.interval
    })
  ),
  reconnect: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "How long a browser waits before reconnecting a dropped stream (the SSE `retry` field).",
      default: defaults.reconnect
    })
  ),
  maxCircuits: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Circuits shown per breaker, the most urgent first; the rest are counted.",
      default: defaults.maxCircuits
    })
  ),
  topClients: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 100 })).annotate({
      description: "Heaviest clients shown per rate limiter (0 to 100; 0 hides them).",
      default: defaults.topClients
    })
  ),
  maxClients: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Event streams open at once; more are answered 503 (the browser retries).",
      default: defaults.maxClients
    })
  ),
  maxEndpoints: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Endpoints shown per load balancer, the ejected ones first; the rest are counted.",
      default: defaults.maxEndpoints
    })
  ),
  maxThrottleKeys: Schema.optionalKey(
    PositiveInt.annotate({
      description: "Keys shown per adaptive throttle, the highest rejection probability first; the rest are counted.",
      default: defaults.maxThrottleKeys
    })
  ),
  maxCompartments: Schema.optionalKey(
    PositiveInt.annotate({
      description:
        "Compartments (keys) shown per bulkhead, the most queued, then the fullest, first; the rest are counted.",
      default: defaults.maxCompartments
    })
  )
})

/**
 * @category options
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * What the dashboard reads of a load balancer: any `LoadBalancer<E>` fits,
 * whatever its endpoint type `E` (only the endpoints' ids are shown).
 *
 * @category options
 * @since 0.1.0
 */
export type Balancer = Pick<LoadBalancer.LoadBalancer, "name" | "options" | "stats" | "subscribe">

/**
 * Options as `make` and `layer` take them: durations as any
 * `Duration.Input`, with the instances to show.
 *
 * @category options
 * @since 0.1.0
 */
export interface Input {
  readonly breakers?: ReadonlyArray<CircuitBreaker.CircuitBreaker> | undefined
  readonly limiters?: ReadonlyArray<RateLimiter.RateLimiter> | undefined
  readonly bulkheads?: ReadonlyArray<Bulkhead.Bulkhead> | undefined
  readonly health?: Health.Health | ReadonlyArray<Health.Health> | undefined
  readonly alerts?: Alert.Alert | ReadonlyArray<Alert.Alert> | undefined
  readonly throttles?: ReadonlyArray<AdaptiveThrottle.AdaptiveThrottle> | undefined
  /** Load balancers over any endpoint type. */
  readonly balancers?: ReadonlyArray<Balancer> | undefined
  readonly registries?: Registry.Registry | ReadonlyArray<Registry.Registry> | undefined
  /** The routes' path (default `/dashboard`). */
  readonly prefix?: `/${string}` | undefined
  /** The page's title (default `Resilience dashboard`). */
  readonly title?: string | undefined
  /** How often the stream sends a snapshot besides changes (default 1 second). */
  readonly interval?: Duration.Input | undefined
  /** How long a browser waits before reconnecting (default 1 second). */
  readonly reconnect?: Duration.Input | undefined
  /** Circuits shown per breaker (default 50). */
  readonly maxCircuits?: number | undefined
  /** Heaviest clients shown per limiter (default 5). */
  readonly topClients?: number | undefined
  /** Event streams open at once (default 16). */
  readonly maxClients?: number | undefined
  /** Endpoints shown per load balancer (default 50). */
  readonly maxEndpoints?: number | undefined
  /** Keys shown per adaptive throttle (default 50). */
  readonly maxThrottleKeys?: number | undefined
  /** Compartments shown per bulkhead (default 10). */
  readonly maxCompartments?: number | undefined
}

/**
 * Validated options, every default applied.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly breakers: ReadonlyArray<CircuitBreaker.CircuitBreaker>
  readonly limiters: ReadonlyArray<RateLimiter.RateLimiter>
  readonly bulkheads: ReadonlyArray<Bulkhead.Bulkhead>
  readonly health: ReadonlyArray<Health.Health>
  readonly alerts: ReadonlyArray<Alert.Alert>
  readonly throttles: ReadonlyArray<AdaptiveThrottle.AdaptiveThrottle>
  readonly balancers: ReadonlyArray<Balancer>
  readonly registries: ReadonlyArray<Registry.Registry>
  readonly prefix: `/${string}`
  readonly title: string
  readonly interval: Duration.Duration
  readonly reconnect: Duration.Duration
  readonly maxCircuits: number
  readonly topClients: number
  readonly maxClients: number
  readonly maxEndpoints: number
  readonly maxThrottleKeys: number
  readonly maxCompartments: number
}

const healthList = (value: Input["health"]): ReadonlyArray<Health.Health> =>
  value === undefined ? [] : Health.TypeId in value ? [value] : value

const alertList = (value: Input["alerts"]): ReadonlyArray<Alert.Alert> =>
  value === undefined ? [] : Alert.TypeId in value ? [value] : value

const registryList = (value: Input["registries"]): ReadonlyArray<Registry.Registry> =>
  value === undefined ? [] : Registry.TypeId in value ? [value] : value

/** The schema checked the pattern (segments after slashes); this tells the compiler. */
const isPath = (path: string): path is `/${string}` => path.startsWith("/")

/** Two instances of a kind under one name would be one card on the page: the second is named. */
const uniqueNames = (
  field: string,
  instances: ReadonlyArray<{ readonly name: string }>,
  into: Array<Options_.Issue>
): void => {
  const seen = new Set<string>()
  instances.forEach((instance, index) => {
    if (seen.has(instance.name)) {
      into.push(
        new Options_.Issue({
          path: `${field}.${index}`,
          value: Options_.renderValue(instance.name),
          message: `Expected a name not used by another of the ${field}`
        })
      )
    }
    seen.add(instance.name)
  })
}

/**
 * Checks the options and fills in the defaults: fails with one
 * `Options.InvalidOptions` listing every bad field (a prefix that is not a
 * path, an empty title, a non-positive interval, two instances of a kind
 * under one name, …).
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { Dashboard } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(Dashboard.validateOptions({ prefix: "/ops/", interval: 0, maxCircuits: 0 }))
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["prefix", "maxCircuits", "interval"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (input: Input = {}): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> => {
  const {
    alerts,
    balancers = [],
    breakers = [],
    bulkheads = [],
    health,
    limiters = [],
    registries,
    throttles = [],
    ...rest
  } = input
  const healths = healthList(health)
  const alertRegistries = alertList(alerts)
  const policyRegistries = registryList(registries)
  const { issues, normalized } = Options_.normalizeDurations({ ...rest }, ["interval", "reconnect"])
  const instanceIssues: Array<Options_.Issue> = []
  uniqueNames("breakers", breakers, instanceIssues)
  uniqueNames("limiters", limiters, instanceIssues)
  uniqueNames("bulkheads", bulkheads, instanceIssues)
  uniqueNames("health", healths, instanceIssues)
  uniqueNames("alerts", alertRegistries, instanceIssues)
  uniqueNames("throttles", throttles, instanceIssues)
  uniqueNames("balancers", balancers, instanceIssues)
  uniqueNames("registries", policyRegistries, instanceIssues)
  return Effect.map(
    Options_.validate(
      "Dashboard",
      Options,
      normalized,
      [Options_.positiveDuration("interval"), Options_.positiveDuration("reconnect")],
      [...issues, ...instanceIssues]
    ),
    (o: Options): ResolvedOptions => ({
      breakers,
      limiters,
      bulkheads,
      health: healths,
      alerts: alertRegistries,
      throttles,
      balancers,
      registries: policyRegistries,
      ...Options_.withDefaults(o, defaults),
      // after the spread: a prefix that is not a `/path` takes the default
      prefix: o.prefix !== undefined && isPath(o.prefix) ? o.prefix : defaults.prefix
    })
  )
}

/**
 * The Defaults table of the options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(Options)

// ---------------------------------------------------------------------------
// constructors and layers
// ---------------------------------------------------------------------------

/**
 * Makes a dashboard over the instances given. Fails with
 * `Options.InvalidOptions` listing every bad option. Nothing runs until a
 * snapshot is read or a stream is pulled: the dashboard itself holds no
 * fiber and no subscription.
 *
 * **Example** (A snapshot after a breaker opens)
 *
 * ```ts import.meta.vitest
 * import { Dashboard } from "@effect-resilience/http"
 * import { CircuitBreaker } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments", consecutiveFailures: 1 })
 *   yield* Effect.ignore(Effect.fail("down").pipe(CircuitBreaker.protect(breaker, { key: "eu" })))
 *   const dashboard = yield* Dashboard.make({ breakers: [breaker] })
 *   const snapshot = yield* dashboard.snapshot
 *   return snapshot.breakers[0]?.circuits.map((c) => [c.key, c.state])
 * }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
 *
 * await Effect.runPromise(program)
 * // => [["eu", "Open"]]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (input?: Input | undefined) => Effect.Effect<Dashboard, Options_.InvalidOptions> = Effect.fnUntraced(
  function* (input?: Input | undefined) {
    const options = yield* validateOptions(input ?? {})
    // the scope the dashboard lives in (the layer's, with `layer`): its event streams end when it closes
    return makeWith(options, Option.getOrUndefined(yield* Effect.serviceOption(Scope.Scope)))
  }
)

/**
 * A layer adding the dashboard's routes to the `HttpRouter`. Fails with
 * `Options.InvalidOptions` listing every bad option.
 *
 * **Example** (Routes under /ops, checked at build time)
 *
 * ```ts
 * import { Dashboard } from "@effect-resilience/http"
 * import type { Bulkhead, Options } from "@effect-resilience/core"
 * import type { Layer } from "effect"
 * import type { HttpRouter } from "effect/http"
 *
 * const routes = (search: Bulkhead.Bulkhead): Layer.Layer<never, Options.InvalidOptions, HttpRouter.HttpRouter> =>
 *   Dashboard.layer({ bulkheads: [search], prefix: "/ops" })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (input: Input = {}): Layer.Layer<never, Options_.InvalidOptions, HttpRouter.HttpRouter> =>
  HttpRouter.use((router) => Effect.flatMap(make(input), (dashboard) => router.addAll(dashboard.routes)))

// ---------------------------------------------------------------------------
// private helpers
// ---------------------------------------------------------------------------

const message = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

const breakerView = (breaker: CircuitBreaker.CircuitBreaker, maxCircuits: number): Effect.Effect<BreakerView> =>
  Effect.flatMap(breaker.stats, (stats) => {
    const base = {
      name: breaker.name,
      stats: {
        successes: stats.successes,
        failures: stats.failures,
        ignored: stats.ignored,
        rejected: stats.rejected,
        slowSuccesses: stats.slowSuccesses,
        slowFailures: stats.slowFailures,
        evicted: stats.evicted,
        storeErrors: stats.storeErrors
      }
    }
    const read = Effect.gen(function* () {
      const exported = yield* breaker.snapshot
      // a breaker that has not run a call holds no circuit yet: show its default one
      const held =
        exported.circuits.length > 0
          ? exported.circuits
          : [{ key: breaker.name, state: "Closed", openUntil: 0, consecutiveOpenings: 0 }]
      const shown = internal.pickCircuits(held, maxCircuits)
      const circuits = yield* Effect.forEach(shown, (c) =>
        Effect.map(
          breaker.metrics(c.key),
          (m): CircuitView => ({
            key: c.key,
            state: m.state,
            health: m.health,
            failureRate: m.failureRate,
            slowCallRate: m.slowCallRate,
            bufferedCalls: m.bufferedCalls,
            failedCalls: m.failedCalls,
            slowCalls: m.slowCalls,
            consecutiveFailures: m.consecutiveFailures,
            consecutiveOpenings: c.consecutiveOpenings,
            retryAfterMillis: m.state === "Open" ? Math.max(0, c.openUntil - exported.takenAt) : null
          })
        )
      )
      return { ...base, circuitCount: exported.circuits.length, circuits, error: null }
    })
    return Effect.catch(
      read,
      (error): Effect.Effect<BreakerView> =>
        Effect.succeed({ ...base, circuitCount: stats.circuits, circuits: [], error: message(error) })
    )
  })

const limiterView = (limiter: RateLimiter.RateLimiter, topClients: number): Effect.Effect<LimiterView> =>
  Effect.all([limiter.stats, limiter.alert, topClients > 0 ? limiter.topClients(topClients) : Effect.succeed([])]).pipe(
    Effect.map(([stats, alert, top]) => ({
      name: limiter.name,
      allowed: stats.allowed,
      rejected: stats.rejected,
      keys: stats.keys,
      evicted: stats.evicted,
      storeErrors: stats.storeErrors,
      alerting: alert.alerting,
      rejectionRate: alert.rejectionRate,
      topClients: top.map(({ cost, key }) => ({ key, cost }))
    }))
  )

const bulkheadView = (bulkhead: Bulkhead.Bulkhead, maxCompartments: number): Effect.Effect<BulkheadView> =>
  Effect.map(Effect.all([bulkhead.stats, bulkhead.compartments(maxCompartments)]), ([stats, list]) => {
    const limit = bulkhead.options.limit
    return {
      name: bulkhead.name,
      active: stats.active,
      queued: stats.queued,
      admitted: stats.admitted,
      rejected: stats.rejected,
      keys: stats.keys,
      maxConcurrent: bulkhead.options.maxConcurrent,
      maxQueue: bulkhead.options.maxQueue,
      limit: stats.limit,
      limitChanges: stats.limitChanges,
      adaptive:
        limit === undefined ? null : { algorithm: limit.algorithm, minLimit: limit.minLimit, maxLimit: limit.maxLimit },
      compartmentCount: list.total,
      compartments: list.compartments.map(({ active, available, key, limit, queued }) => ({
        key,
        active,
        queued,
        available,
        limit
      }))
    }
  })

const throttleView = (throttle: AdaptiveThrottle.AdaptiveThrottle, maxKeys: number): Effect.Effect<ThrottleView> =>
  Effect.map(Effect.all([throttle.stats, throttle.states]), ([stats, states]) => {
    // the throttle's own window comes first; a keyed throttle's is empty: shown only when it has history
    const [own, ...keyed] = states
    const held = own !== undefined && (own.requests > 0 || keyed.length === 0) ? states : keyed
    return {
      name: throttle.name,
      admitted: stats.admitted,
      throttled: stats.throttled,
      accepted: stats.accepted,
      notAccepted: stats.notAccepted,
      ignored: stats.ignored,
      keys: stats.keys,
      k: throttle.options.k,
      maxRejectProbability: throttle.options.maxRejectProbability,
      windowMillis: Duration.toMillis(throttle.options.window),
      windowCount: held.length,
      windows: internal
        .pickWindows(held, maxKeys)
        .map(({ accepts, key, probability, requests }) => ({ key, requests, accepts, probability }))
    }
  })

const balancerView = (balancer: Balancer, maxEndpoints: number): Effect.Effect<BalancerView> =>
  Effect.map(Effect.all([balancer.stats, Clock.currentTimeMillis]), ([stats, now]) => ({
    name: balancer.name,
    strategy: balancer.options.strategy,
    endpointCount: stats.endpoints,
    ejected: stats.ejected,
    panic: stats.panic,
    inFlight: stats.inFlight,
    successes: stats.successes,
    failures: stats.failures,
    ignored: stats.ignored,
    rejected: stats.rejected,
    hostCount: stats.hosts.length,
    endpoints: internal.pickEndpoints(stats.hosts, maxEndpoints).map(
      (h): EndpointView => ({
        id: h.id,
        state: h.state,
        zone: h.zone ?? null,
        weight: h.weight,
        inFlight: h.inFlight,
        latencyMillis: h.latency === undefined ? null : Duration.toMillis(h.latency),
        successes: h.successes,
        failures: h.failures,
        consecutiveFailures: h.consecutiveFailures,
        ejections: h.ejections,
        ejectedUntil: h.state === "ejected" && h.ejectedFor !== undefined ? now + Duration.toMillis(h.ejectedFor) : null
      })
    )
  }))

const registryView = (registry: Registry.Registry): Effect.Effect<RegistryView> =>
  Effect.gen(function* () {
    const version = yield* registry.version
    const names = yield* registry.names
    // a reload between reading the names and a policy drops it: the next snapshot has the new set
    const policies = yield* Effect.forEach(names, (name) =>
      Effect.match(registry.get(name), {
        onFailure: () => [],
        onSuccess: (policy) => [{ name, parts: [...policy.layers] }]
      })
    )
    const failure = yield* registry.lastFailure
    return {
      name: registry.name,
      version,
      policies: policies.flat(),
      lastFailure:
        failure === undefined
          ? null
          : {
              version: failure.version,
              failedAt: failure.failedAt,
              issues: failure.error.issues.map(({ message, path, value }) => ({ path, value, message }))
            }
    }
  })

const healthView = (health: Health.Health): Effect.Effect<HealthView> =>
  Effect.map(health.status, (report) => ({
    name: report.name,
    status: report.status,
    components: report.components.map((c) => ({
      name: c.name,
      status: c.status,
      critical: c.critical,
      probe: c.probe,
      flapping: c.flapping,
      consecutiveFailures: c.consecutiveFailures,
      latencyMillis: c.latency === undefined ? null : Duration.toMillis(c.latency),
      lastError: c.lastError ?? null
    }))
  }))

const alertsView = (alerts: Alert.Alert): Effect.Effect<AlertsView> =>
  Effect.map(alerts.status, (rules) => ({
    name: alerts.name,
    rules: rules.map((r) => ({
      name: r.name,
      kind: r.kind,
      severity: r.severity,
      description: r.description,
      state: r.state,
      since: r.since,
      firedAt: r.firedAt ?? null,
      value: r.value ?? null,
      detail: r.detail ?? null
    }))
  }))

const statusRank = { healthy: 0, degraded: 1, unhealthy: 2 } as const

const worst = (statuses: ReadonlyArray<Health.Status>): Health.Status =>
  statuses.reduce<Health.Status>((a, b) => (statusRank[b] > statusRank[a] ? b : a), "healthy")

const encoder = new TextEncoder()

/** A random nonce for the page's Content-Security-Policy. */
const nonce = (): string => Base64.encode(globalThis.crypto.getRandomValues(new Uint8Array(16)))

/**
 * Ties an event stream to the dashboard's scope: `stop` runs as soon as
 * `anchor`, or a scope enclosing it, starts closing — at once if one already
 * is. Each tie is a child scope of the scope it watches, forked when the
 * stream starts, so it runs before the finalizers added earlier (a server
 * started in the same scope after the dashboard was made waits for no
 * stream). The returned effect unties the stream (closing a child takes it
 * out of its parent). No anchor, or one already closed (a dashboard
 * outliving the scope it was made in): nothing to watch.
 */
const tieToScopes = (anchor: Scope.Scope | undefined, stop: Effect.Effect<void>): Effect.Effect<Effect.Effect<void>> =>
  Effect.suspend(() => {
    if (anchor === undefined || anchor.state._tag === "Closed") return Effect.succeed(Effect.void)
    const ties: Array<Scope.Closeable> = []
    for (let scope: Scope.Scope | undefined = anchor; scope !== undefined; scope = scope.parent) {
      ties.push(Scope.forkUnsafe(scope))
    }
    return Effect.as(
      Effect.forEach(ties, (tie) => Scope.addFinalizer(tie, stop), { discard: true }),
      Effect.forEach(ties, (tie) => Scope.close(tie, Exit.void), { discard: true })
    )
  })

/** How often an open event stream checks that the Node server it is served by still listens. */
const serverCheck = Duration.millis(100)

/**
 * Whether the Node server a request came in on still listens (`false` once
 * its `close()` was called), read from the request's Node socket; `undefined`
 * for a request of another server (no Node socket to read).
 */
const listeningOf = (source: unknown): (() => boolean) | undefined => {
  if (typeof source !== "object" || source === null || !("socket" in source)) return undefined
  const socket = source.socket
  if (typeof socket !== "object" || socket === null || !("server" in socket)) return undefined
  const server = socket.server
  if (typeof server !== "object" || server === null || !("listening" in server)) return undefined
  return () => server.listening !== false
}

const makeWith = (options: ResolvedOptions, anchor: Scope.Scope | undefined): Dashboard => {
  const intervalMillis = Duration.toMillis(options.interval)

  const snapshot: Effect.Effect<Snapshot> = Effect.gen(function* () {
    const breakers = yield* Effect.forEach(options.breakers, (b) => breakerView(b, options.maxCircuits))
    const limiters = yield* Effect.forEach(options.limiters, (l) => limiterView(l, options.topClients))
    const bulkheads = yield* Effect.forEach(options.bulkheads, (b) => bulkheadView(b, options.maxCompartments))
    const health = yield* Effect.forEach(options.health, healthView)
    const alerts = yield* Effect.forEach(options.alerts, alertsView)
    const throttles = yield* Effect.forEach(options.throttles, (t) => throttleView(t, options.maxThrottleKeys))
    const balancers = yield* Effect.forEach(options.balancers, (b) => balancerView(b, options.maxEndpoints))
    const registries = yield* Effect.forEach(options.registries, registryView)
    const takenAt = yield* Clock.currentTimeMillis
    return {
      version: 2,
      title: options.title,
      takenAt,
      intervalMillis,
      status: worst(health.map((h) => h.status)),
      firing: alerts.reduce((n, a) => n + a.rules.filter((r) => r.state === "firing").length, 0),
      breakers,
      limiters,
      bulkheads,
      health,
      alerts,
      throttles,
      balancers,
      registries
    } as const
  })

  // What makes a snapshot due at once: subscribed before the first snapshot, so no change after it is missed.
  // Limiters emit per call and are read on the interval only; so are fixed bulkheads (only an adaptive one
  // has a `LimitChanged` to push, and a subscribed bulkhead builds its queue and rejection events too).
  const triggers: ReadonlyArray<Effect.Effect<Stream.Stream<unknown>, never, Scope.Scope>> = [
    ...options.bulkheads
      .filter((b) => b.options.limit !== undefined)
      .map((b) =>
        Effect.map(b.subscribe, (queue) => Stream.filter(Stream.fromQueue(queue), (e) => e._tag === "LimitChanged"))
      ),
    // at most one `Throttled` per key and bucket of the window
    ...options.throttles.map((t) => Effect.map(t.subscribe, Stream.fromQueue)),
    ...options.balancers.map((b) =>
      Effect.map(b.subscribe, (queue) => Stream.filter(Stream.fromQueue(queue), (e) => e._tag !== "Rejected"))
    ),
    ...options.registries.map((r) => Effect.map(r.subscribe, Stream.fromQueue)),
    ...options.breakers.map((b) =>
      Effect.map(b.subscribe, (queue) => Stream.filter(Stream.fromQueue(queue), (e) => e._tag === "StateTransition"))
    ),
    ...options.health.map((h) =>
      Effect.map(h.subscribe, (queue) => Stream.filter(Stream.fromQueue(queue), (e) => e._tag !== "CheckFailed"))
    ),
    ...options.alerts.map((a) => Effect.map(a.subscribe, Stream.fromQueue))
  ]

  const changes: Stream.Stream<Snapshot> = Stream.unwrap(
    Effect.gen(function* () {
      // one pending wake-up at most: changes while the consumer is busy coalesce into it
      const due = yield* Queue.sliding<void>(1)
      const wake = Queue.offer(due, undefined)
      const streams = yield* Effect.all(triggers)
      for (const stream of streams) yield* Effect.forkScoped(Stream.runForEach(stream, () => wake))
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(options.interval), wake)))
      yield* wake
      return Stream.mapEffect(Stream.fromQueue(due), () => snapshot)
    })
  )

  let open = 0
  const clients = Effect.sync(() => open)

  const retryFrame = encoder.encode(`retry: ${Duration.toMillis(options.reconnect)}\n\n`)
  const busyFrame = encoder.encode(": too many dashboard clients\n\n")
  // the count is taken when the stream starts and given back when it ends, however it ends; a counted stream
  // ends (cleanly: the response is finished) when its Node server stops listening (a graceful shutdown would wait
  // for it), or when the dashboard's scope, or one enclosing it, starts closing
  const eventStream = (listening: (() => boolean) | undefined): Stream.Stream<Uint8Array> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const counted = yield* Effect.acquireRelease(
          Effect.sync(() => {
            if (open >= options.maxClients) return false
            open++
            return true
          }),
          (counted) =>
            Effect.sync(() => {
              if (counted) open--
            })
        )
        if (!counted) return Stream.make(retryFrame, busyFrame)
        const closing = yield* Deferred.make<void>()
        const close = Effect.asVoid(Deferred.succeed(closing, undefined))
        yield* Effect.acquireRelease(tieToScopes(anchor, close), (untie) => untie)
        if (listening !== undefined) {
          const watch: Effect.Effect<void> = Effect.flatMap(Effect.sleep(serverCheck), () =>
            listening() ? watch : close
          )
          yield* Effect.forkScoped(watch)
        }
        return Stream.concat(
          Stream.succeed(retryFrame),
          Stream.map(changes, (s) => encoder.encode(internal.dataFrame(JSON.stringify(s))))
        ).pipe(Stream.interruptWhen(Deferred.await(closing)))
      })
    )

  const noStore = { "cache-control": "no-store" }
  const events = Effect.map(Effect.serviceOption(HttpServerRequest.HttpServerRequest), (request) =>
    open >= options.maxClients
      ? HttpServerResponse.text("Too many dashboard clients", {
          status: 503,
          headers: { ...noStore, "retry-after": String(Math.ceil(Duration.toSeconds(options.reconnect))) }
        })
      : HttpServerResponse.stream(eventStream(Option.isSome(request) ? listeningOf(request.value.source) : undefined), {
          contentType: "text/event-stream",
          // HTTP/1.1: the connection closes with the stream (a server shutting down waits for no idle keep-alive
          // connection); HTTP/2 servers drop the header
          headers: { ...noStore, "x-accel-buffering": "no", connection: "close" }
        })
  )

  const snapshotPath = `${options.prefix}/snapshot` as const
  const eventsPath = `${options.prefix}/events` as const
  const pageResponse = Effect.sync(() => {
    const n = nonce()
    return HttpServerResponse.text(
      internal.page({
        title: options.title,
        eventsPath,
        snapshotPath,
        reconnectMillis: Duration.toMillis(options.reconnect),
        nonce: n
      }),
      {
        contentType: "text/html; charset=utf-8",
        headers: {
          ...noStore,
          "content-security-policy": internal.contentSecurityPolicy(n),
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer"
        }
      }
    )
  })
  const snapshotResponse = Effect.map(snapshot, (s) => HttpServerResponse.jsonUnsafe(s, { headers: noStore }))

  return {
    [TypeId]: TypeId,
    options,
    snapshot,
    changes,
    clients,
    routes: [
      // the router ignores a trailing slash: this serves `<prefix>/` too
      HttpRouter.route("GET", options.prefix, pageResponse),
      HttpRouter.route("GET", snapshotPath, snapshotResponse),
      HttpRouter.route("GET", eventsPath, events)
    ]
  }
}
