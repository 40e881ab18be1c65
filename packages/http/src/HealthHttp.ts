/**
 * Health endpoints for Effect's HTTP server: `GET /health` (every component),
 * `GET /health/ready` (the readiness view) and `GET /health/live` (the
 * liveness view), served from the `Health` service of
 * `@effect-resilience/core` as JSON, for Kubernetes probes, load balancers
 * and dashboards.
 *
 * **Details**
 *
 * - Status codes: `healthy` answers 200, `degraded` answers `degradedStatus`
 *   (200 by default: a degraded process still takes traffic; the body says
 *   `"degraded"`), `unhealthy` answers `unhealthyStatus` (503 by default).
 * - Every answer carries `Cache-Control: no-store`: a cached health answer is
 *   a wrong one.
 * - Bodies: `detail: "full"` (the default) is the report as JSON (its
 *   `version`, status, view, components with their counters, trend — over
 *   the history and over the trailing `trendWindow` — and transitions;
 *   timestamps as ISO strings, durations in milliseconds); `detail:
 *   "compact"` is `{"status":"…"}` only. Versions only add fields: version 2
 *   added `version` and each trend's `window`.
 * - Reading a view never runs a check: the checks run on their own schedule
 *   in the `Health` service, so a probe is as cheap as reading a few numbers.
 *
 * **Gotchas**
 *
 * - The full body carries each component's `lastError` message: serve it on a
 *   port or path the public cannot reach, or use `detail: "compact"`.
 * - Exclude the health paths from rate limiting (`RateLimitMiddleware`'s
 *   `exclude`): a probe refused with 429 fails like a dead process.
 *
 * **Example** (The three endpoints on a router)
 *
 * ```ts
 * import { HealthHttp } from "@effect-resilience/http"
 * import { Health } from "@effect-resilience/core"
 * import { Effect, Layer, Stream } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import * as Http from "node:http"
 *
 * const HealthLive = Health.layer({
 *   components: [Health.check("db", Effect.void, { probe: "readiness" }), Health.source("loop", Stream.never)]
 * })
 *
 * const App = HealthHttp.layer({ degradedStatus: 200 }).pipe(Layer.provide(HealthLive))
 *
 * const Server = HttpRouter.serve(App).pipe(
 *   Layer.provide(NodeHttpServer.layer(Http.createServer, { port: 8080 }))
 * )
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { Health, Options as Options_ } from "@effect-resilience/core"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

/**
 * How much of a report a response body carries: the whole report, or its
 * status only.
 *
 * @category models
 * @since 0.1.0
 */
export type Detail = "full" | "compact"

const Path = Schema.String.check(Schema.isStartingWith("/"))
const StatusCode = Schema.Int.check(Schema.isBetween({ minimum: 100, maximum: 599 }))

/**
 * The endpoints' options as a schema: the single source of their rules and
 * of the Defaults table. Every field is optional.
 *
 * @category options
 * @since 0.1.0
 */
export const OptionsSchema = Schema.Struct({
  path: Schema.optionalKey(Path.annotate({ description: "The full report's path.", default: "/health" })),
  readinessPath: Schema.optionalKey(
    Path.annotate({ description: "The readiness view's path.", default: "/health/ready" })
  ),
  livenessPath: Schema.optionalKey(
    Path.annotate({ description: "The liveness view's path.", default: "/health/live" })
  ),
  degradedStatus: Schema.optionalKey(
    StatusCode.annotate({ description: "The status code of a `degraded` view (100 to 599).", default: 200 })
  ),
  unhealthyStatus: Schema.optionalKey(
    StatusCode.annotate({ description: "The status code of an `unhealthy` view (100 to 599).", default: 503 })
  ),
  detail: Schema.optionalKey(
    Schema.Literals(["full", "compact"]).annotate({
      description: 'The body: the `full` report, or `compact` (`{"status":"…"}` only).',
      default: "full"
    })
  )
})

/**
 * Options of the endpoints. Every field is optional.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The full report's path (default `/health`). */
  readonly path?: HttpRouter.PathInput | undefined
  /** The readiness view's path (default `/health/ready`). */
  readonly readinessPath?: HttpRouter.PathInput | undefined
  /** The liveness view's path (default `/health/live`). */
  readonly livenessPath?: HttpRouter.PathInput | undefined
  /** The status code of a `degraded` answer (default 200: the body says `degraded`). */
  readonly degradedStatus?: number | undefined
  /** The status code of an `unhealthy` answer (default 503). */
  readonly unhealthyStatus?: number | undefined
  /** The body: the full report (default) or `{"status":"…"}` only. */
  readonly detail?: Detail | undefined
}

/**
 * The options with their defaults filled in.
 *
 * @category options
 * @since 0.1.0
 */
export interface ResolvedOptions {
  readonly path: HttpRouter.PathInput
  readonly readinessPath: HttpRouter.PathInput
  readonly livenessPath: HttpRouter.PathInput
  readonly degradedStatus: number
  readonly unhealthyStatus: number
  readonly detail: Detail
}

/**
 * The defaults: `/health`, `/health/ready`, `/health/live`, 200 for
 * `degraded`, 503 for `unhealthy`, full bodies.
 *
 * @category options
 * @since 0.1.0
 */
export const defaults: ResolvedOptions = {
  path: "/health",
  readinessPath: "/health/ready",
  livenessPath: "/health/live",
  degradedStatus: 200,
  unhealthyStatus: 503,
  detail: "full"
}

/**
 * Fills in the defaults of the fields left out (or given as undefined),
 * without checking the values: see {@link validateOptions}.
 *
 * @category options
 * @since 0.1.0
 */
export const resolveOptions = (options: Options = {}): ResolvedOptions => Options_.withDefaults(options, defaults)

/** Two views on one path: the issue names the field given (of the two), the other one in its message. */
const distinctPaths: Options_.Rule = (o) => {
  const seen = new Map<unknown, "path" | "readinessPath" | "livenessPath">()
  const found: Array<{ readonly path: string; readonly message: string }> = []
  for (const field of ["path", "readinessPath", "livenessPath"] as const) {
    const value = o[field] ?? defaults[field]
    const before = seen.get(value)
    if (before === undefined) {
      seen.set(value, field)
      continue
    }
    const [given, other] = o[field] !== undefined ? [field, before] : [before, field]
    found.push({ path: given, message: `Expected a path other than ${other}'s` })
  }
  return found
}

/**
 * Checks the options and fills in the defaults: fails with
 * `Options.InvalidOptions` listing every bad field (a path not starting with
 * `/`, two views on one path, a status code outside 100 to 599).
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { HealthHttp } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(HealthHttp.validateOptions({ readinessPath: "/health", degradedStatus: 1000 }))
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["degradedStatus", "readinessPath"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateOptions = (options: Options = {}): Effect.Effect<ResolvedOptions, Options_.InvalidOptions> =>
  Effect.map(
    Options_.validate(
      "HealthHttp",
      OptionsSchema,
      Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
      [distinctPaths]
    ),
    () => resolveOptions(options)
  )

/**
 * The Defaults table of the options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const optionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(OptionsSchema)

// ---------------------------------------------------------------------------
// rendering
// ---------------------------------------------------------------------------

/**
 * The status code answering a status: 200 for `healthy`, `degradedStatus`
 * (200) for `degraded`, `unhealthyStatus` (503) for `unhealthy`.
 *
 * **Example** (Degraded answers 200 unless configured)
 *
 * ```ts import.meta.vitest
 * import { HealthHttp } from "@effect-resilience/http"
 *
 * const codes = [HealthHttp.statusCode("degraded"), HealthHttp.statusCode("degraded", { degradedStatus: 503 })]
 * codes
 * // => [200, 503]
 * ```
 *
 * @category rendering
 * @since 0.1.0
 */
export const statusCode = (status: Health.Status, options: Options = {}): number =>
  status === "healthy"
    ? 200
    : status === "degraded"
      ? (options.degradedStatus ?? defaults.degradedStatus)
      : (options.unhealthyStatus ?? defaults.unhealthyStatus)

/**
 * A JSON body of a report.
 *
 * @category models
 * @since 0.1.0
 */
export type Body = CompactBody | FullBody

/**
 * The compact body: the status only.
 *
 * @category models
 * @since 0.1.0
 */
export interface CompactBody {
  readonly status: Health.Status
}

/**
 * The full body: the report, timestamps as ISO strings, durations in
 * milliseconds, without the per-sample history (the trend sums it up).
 *
 * @category models
 * @since 0.1.0
 */
export interface FullBody {
  /** The report's shape version (`Health.reportVersion`); versions only add fields. Absent means 1. */
  readonly version: typeof Health.reportVersion
  readonly status: Health.Status
  readonly name: string
  readonly view: Health.View
  readonly components: ReadonlyArray<ComponentBody>
}

/**
 * One component of the full body.
 *
 * @category models
 * @since 0.1.0
 */
export interface ComponentBody {
  readonly name: string
  readonly kind: "check" | "source"
  readonly status: Health.Status
  readonly critical: boolean
  readonly probe: Health.Probe
  readonly flapping: boolean
  readonly lastCheck?: string | undefined
  readonly lastError?: string | undefined
  readonly consecutiveFailures: number
  readonly consecutiveSuccesses: number
  readonly latencyMillis?: number | undefined
  readonly checks: number
  readonly failures: number
  readonly timeouts: number
  readonly skipped: number
  readonly trend: {
    readonly samples: number
    readonly successRate?: number | undefined
    readonly meanLatencyMillis?: number | undefined
    readonly statusChanges: number
    /** The figures over the trailing `trendWindow` (version 2). */
    readonly window: WindowBody
  }
  readonly transitions: ReadonlyArray<{ readonly at: string; readonly from: Health.Status; readonly to: Health.Status }>
  readonly since?: string | undefined
}

/**
 * A component's trend over the trailing `trendWindow`, durations in
 * milliseconds (see `Health.WindowTrend`).
 *
 * @category models
 * @since 0.2.0
 */
export interface WindowBody {
  readonly durationMillis: number
  readonly coveredMillis: number
  readonly availability: number
  readonly degradedMillis: number
  readonly unhealthyMillis: number
  readonly statusChanges: number
  readonly samples: number
  readonly latencyP50Millis?: number | undefined
  readonly latencyP95Millis?: number | undefined
  readonly latencyMaxMillis?: number | undefined
}

const iso = (at: DateTime.Utc | undefined): string | undefined =>
  at === undefined ? undefined : DateTime.formatIso(at)

const millis = (duration: Duration.Duration | undefined): number | undefined =>
  duration === undefined ? undefined : Duration.toMillis(duration)

const componentBody = (c: Health.ComponentReport): ComponentBody => ({
  name: c.name,
  kind: c.kind,
  status: c.status,
  critical: c.critical,
  probe: c.probe,
  flapping: c.flapping,
  lastCheck: iso(c.lastCheck),
  lastError: c.lastError,
  consecutiveFailures: c.consecutiveFailures,
  consecutiveSuccesses: c.consecutiveSuccesses,
  latencyMillis: millis(c.latency),
  checks: c.checks,
  failures: c.failures,
  timeouts: c.timeouts,
  skipped: c.skipped,
  trend: {
    samples: c.trend.samples,
    successRate: c.trend.successRate,
    meanLatencyMillis: millis(c.trend.meanLatency),
    statusChanges: c.trend.statusChanges,
    window: {
      durationMillis: Duration.toMillis(c.trend.window.duration),
      coveredMillis: Duration.toMillis(c.trend.window.covered),
      availability: c.trend.window.availability,
      degradedMillis: Duration.toMillis(c.trend.window.degraded),
      unhealthyMillis: Duration.toMillis(c.trend.window.unhealthy),
      statusChanges: c.trend.window.statusChanges,
      samples: c.trend.window.samples,
      latencyP50Millis: millis(c.trend.window.latencyP50),
      latencyP95Millis: millis(c.trend.window.latencyP95),
      latencyMaxMillis: millis(c.trend.window.latencyMax)
    }
  },
  transitions: c.transitions.map((t) => ({ at: DateTime.formatIso(t.at), from: t.from, to: t.to })),
  since: iso(c.since)
})

/**
 * The JSON body of a report: `{ status }` for `compact`, the report (as
 * {@link FullBody}) for `full`.
 *
 * **Example** (A compact body)
 *
 * ```ts import.meta.vitest
 * import { HealthHttp } from "@effect-resilience/http"
 *
 * HealthHttp.body({ version: 2, name: "api", view: "readiness", status: "degraded", components: [] }, "compact")
 * // => { status: "degraded" }
 * ```
 *
 * @category rendering
 * @since 0.1.0
 */
export const body = (report: Health.Report, detail: Detail = "full"): Body =>
  detail === "compact"
    ? { status: report.status }
    : {
        version: report.version,
        status: report.status,
        name: report.name,
        view: report.view,
        components: report.components.map(componentBody)
      }

/**
 * The HTTP response of a report: its status code, its JSON body and
 * `Cache-Control: no-store`.
 *
 * @category rendering
 * @since 0.1.0
 */
export const response = (report: Health.Report, options: Options = {}): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(body(report, options.detail ?? defaults.detail), {
    status: statusCode(report.status, options),
    headers: { "cache-control": "no-store" }
  })

// ---------------------------------------------------------------------------
// handlers and routes
// ---------------------------------------------------------------------------

const reportOf = (health: Health.Health, view: Health.View): Effect.Effect<Health.Report> =>
  view === "readiness" ? health.readiness : view === "liveness" ? health.liveness : health.status

/**
 * A handler answering one view of a registry (`all`, `readiness` or
 * `liveness`): usable with `HttpRouter.add`, `HttpRouter.route` or as a
 * whole app.
 *
 * @category handlers
 * @since 0.1.0
 */
export const handlerWith = (
  health: Health.Health,
  view: Health.View,
  options: Options = {}
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.map(reportOf(health, view), (report) => response(report, options))

/**
 * A handler answering one view of the `Health` service in context.
 *
 * @category handlers
 * @since 0.1.0
 */
export const handler = (
  view: Health.View,
  options: Options = {}
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Health.Health> =>
  Effect.flatMap(Health.Health, (health) => handlerWith(health, view, options))

/**
 * The three routes (`GET` on `path`, `readinessPath` and `livenessPath`)
 * over a registry, for `HttpRouter.addAll` or a router of one's own. The
 * options are taken as given: check them first with {@link validateOptions}
 * (`layer` does).
 *
 * **Example** (Routes over a registry made earlier)
 *
 * ```ts
 * import { HealthHttp } from "@effect-resilience/http"
 * import type { Health } from "@effect-resilience/core"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 *
 * const probes = (health: Health.Health): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
 *   HttpRouter.addAll(
 *     HealthHttp.routesWith(health, { path: "/healthz", readinessPath: "/readyz", livenessPath: "/livez" })
 *   )
 * ```
 *
 * @category routes
 * @since 0.1.0
 */
export const routesWith = (
  health: Health.Health,
  options: Options = {}
): ReadonlyArray<HttpRouter.Route<never, never>> => {
  const o = resolveOptions(options)
  return [
    HttpRouter.route("GET", o.path, handlerWith(health, "all", o)),
    HttpRouter.route("GET", o.readinessPath, handlerWith(health, "readiness", o)),
    HttpRouter.route("GET", o.livenessPath, handlerWith(health, "liveness", o))
  ]
}

/**
 * A layer adding the three routes to the `HttpRouter`, over the `Health`
 * service (read once, when the layer is built). Fails with
 * `Options.InvalidOptions` listing every bad option.
 *
 * **Example** (Probes for Kubernetes on their own paths)
 *
 * ```ts
 * import { HealthHttp } from "@effect-resilience/http"
 * import type { Health, Options } from "@effect-resilience/core"
 * import type { Layer } from "effect"
 * import type { HttpRouter } from "effect/http"
 *
 * type Needs = HttpRouter.HttpRouter | Health.Health
 *
 * const Probes: Layer.Layer<never, Options.InvalidOptions, Needs> = HealthHttp.layer({
 *   readinessPath: "/readyz",
 *   livenessPath: "/livez",
 *   detail: "compact"
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<never, Options_.InvalidOptions, HttpRouter.HttpRouter | Health.Health> =>
  HttpRouter.use((router) =>
    Effect.flatMap(validateOptions(options), (resolved) =>
      Effect.flatMap(Health.Health, (health) => router.addAll(routesWith(health, resolved)))
    )
  )
