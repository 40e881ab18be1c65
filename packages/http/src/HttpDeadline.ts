/**
 * Deadline propagation across HTTP hops, as gRPC does with `grpc-timeout`
 * and Envoy with `x-envoy-expected-rq-timeout-ms`: a `Timeout.deadline` set
 * in one process bounds the work it causes in the next one.
 *
 * - **Client side**, {@link client} wraps an `HttpClient`: a request made
 *   inside a `Timeout.deadline` carries the time left, in whole
 *   milliseconds (`x-request-timeout-ms: 1234`, or `grpc-timeout: 1234m`),
 *   minus an optional `margin` for the network; with no time left it fails
 *   at once with `Timeout.TimeoutError` (`kind: "deadline"`) and nothing is
 *   sent. Outside a deadline nothing changes.
 * - **Server side**, {@link middleware} (and the global {@link layer}) reads
 *   that header, bounds it by `maxTimeout`, falls back to `defaultTimeout`
 *   when it is absent, and runs the handler inside `Timeout.deadline(...)`:
 *   every resilient call the handler makes — `Timeout.attempt`, `Retry`,
 *   `Policy` total timeouts, this module's client for the next hop — sees
 *   the budget that is left. When it runs out, the handler is interrupted
 *   and the answer is a 504.
 *
 * **Details**
 *
 * - Budgets are rounded down to whole milliseconds on both sides, so a hop
 *   never gets more time than its caller had.
 * - What the server makes of a header: decimal digits only (`gRPC`: 1 to 8
 *   digits and a unit, `H M S m u n`). Anything else — empty, negative, a
 *   fraction, `1e3`, two values joined by a comma — is **ignored**, as if
 *   the header were absent (`defaultTimeout` applies, if any). A value above
 *   `maxTimeout` (however large) is **clamped** to it. `0` means no time
 *   left: the answer is the 504 at once, and the handler does not run.
 * - A handler that fails with a `TimeoutError` of kind `"deadline"` (a call
 *   inside it found too little of the budget left) is answered the same
 *   504 as one interrupted by the deadline.
 * - Only the handler is bounded, up to the response it returns: a streamed
 *   body is not cut. Requests asking for a protocol upgrade (WebSocket) and
 *   `exclude`d paths get no deadline.
 *
 * **Gotchas**
 *
 * - The header is a request from the client, not an order: keep
 *   `maxTimeout` no longer than what you would let any request take.
 * - Clocks are not compared across hosts: a budget is a duration, measured
 *   from the moment each hop reads it. Time on the wire is not counted;
 *   that is what `margin` is for.
 * - Put the server middleware first (global), so the budget covers the other
 *   middleware too, and the client wrapper *under* a `ResilientHttpClient`
 *   (wrap the client you give it): then every retry sends the time left at
 *   that attempt.
 * - Once the response has started (a handler that wrote to the platform's
 *   response itself), a 504 can no longer be sent: the handler is still
 *   interrupted, and the connection is closed (a partial body must not look
 *   complete).
 *
 * **Example** (The time left travels with the request; without a deadline, no header)
 *
 * ```ts import.meta.vitest
 * import { Timeout } from "@effect-resilience/core"
 * import { HttpDeadline } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { HttpClient, HttpClientResponse } from "effect/http"
 * import { TestClock } from "effect/testing"
 *
 * // an upstream that answers with the budget it was given
 * const upstream = HttpClient.make((request) =>
 *   Effect.sync(() => HttpClientResponse.fromWeb(request, new Response(request.headers["x-request-timeout-ms"] ?? "none")))
 * )
 * const client = upstream.pipe(HttpDeadline.client({ margin: "20 millis" }))
 * const budget = Effect.flatMap(client.get("http://quotes.internal/eurusd"), (response) => response.text)
 *
 * const program = Effect.all([budget.pipe(Timeout.deadline("1500 millis")), budget])
 * await Effect.runPromise(program.pipe(Effect.provide(TestClock.layer())))
 * // => ["1480", "none"]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import { Options as Options_, Timeout } from "@effect-resilience/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Internal from "./internal/deadline.ts"
import { matchesPath } from "./RateLimitMiddleware.ts"

// ---------------------------------------------------------------------------
// headers
// ---------------------------------------------------------------------------

/**
 * The header of the `milliseconds` format, the default: the time left in
 * whole milliseconds (`x-request-timeout-ms: 1500`).
 *
 * @category headers
 * @since 0.1.0
 */
export const millisecondsHeader: string = "x-request-timeout-ms"

/**
 * The header of the `grpc` format (`grpc-timeout: 1500m`), gRPC's own, read
 * by gRPC servers and by Envoy.
 *
 * @category headers
 * @since 0.1.0
 */
export const grpcHeader: string = "grpc-timeout"

/**
 * How a budget is written: `milliseconds` (decimal digits) or `grpc`
 * (`<1 to 8 digits><unit>`, unit one of `H M S m u n`).
 *
 * @category headers
 * @since 0.1.0
 */
export type Format = Internal.Format

/**
 * Parses a header value in a format: the whole milliseconds it stands for,
 * or `undefined` for a value that is not one (see the module's details).
 *
 * **Example** (What a server makes of header values)
 *
 * ```ts import.meta.vitest
 * import { HttpDeadline } from "@effect-resilience/http"
 *
 * const millis = ["1500", " 250 ", "-5", "1.5", "soon", "100, 200"].map((v) => HttpDeadline.parseHeader("milliseconds", v))
 * // => [1500, 250, undefined, undefined, undefined, undefined]
 * const grpc = ["2S", "1500u", "150m", "123456789m"].map((v) => HttpDeadline.parseHeader("grpc", v))
 * // => [2000, 1, 150, undefined]
 * ```
 *
 * @category headers
 * @since 0.1.0
 */
export const parseHeader: (format: Format, value: string | undefined) => number | undefined = Internal.parse

/**
 * Writes a budget in a format, rounded down to whole milliseconds (`grpc`
 * switches to a coarser unit past 8 digits, rounding down again).
 *
 * **Example** (Both formats)
 *
 * ```ts import.meta.vitest
 * import { HttpDeadline } from "@effect-resilience/http"
 *
 * const both = [HttpDeadline.formatHeader("milliseconds", 1499.9), HttpDeadline.formatHeader("grpc", 1500)]
 * // => ["1499", "1500m"]
 * HttpDeadline.formatHeader("grpc", 123_456_789)
 * // => "123456S"
 * ```
 *
 * @category headers
 * @since 0.1.0
 */
export const formatHeader: (format: Format, millis: number) => string = Internal.format

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const defaults = {
  format: "milliseconds" as Format,
  maxTimeout: Duration.seconds(30),
  status: 504,
  margin: Duration.zero
}

const headerName = Schema.String.check(
  Schema.isPattern(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { expected: "an HTTP header name such as x-request-timeout-ms" })
)

const formatSchema = Schema.Literals(["milliseconds", "grpc"])

/**
 * The server options that are data, as a schema: the source of the
 * generated Defaults table and of {@link layerConfig}.
 *
 * @category options
 * @since 0.1.0
 */
export const ServerOptions = Schema.Struct({
  header: Schema.optionalKey(
    headerName.annotate({
      description: "The request header read (`grpc-timeout` when `format` is `grpc`).",
      default: millisecondsHeader
    })
  ),
  format: Schema.optionalKey(
    formatSchema.annotate({
      description: "How the header is written: `milliseconds` (`1500`) or `grpc` (`1500m`, `2S`).",
      default: defaults.format
    })
  ),
  maxTimeout: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description: "The longest budget a request gets: a larger header is clamped to it. Finite, above zero.",
      default: defaults.maxTimeout
    })
  ),
  defaultTimeout: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "The budget of a request without a (valid) header; none by default (no deadline). Finite, above zero, at most `maxTimeout`."
    })
  ),
  status: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 400, maximum: 599 })).annotate({
      description: "The status of the answer when the budget runs out (400 to 599).",
      default: defaults.status
    })
  )
})

/**
 * The server options that are data, as the schema types them.
 *
 * @category options
 * @since 0.1.0
 */
export type ServerOptions = typeof ServerOptions.Type

/**
 * The server options as code gives them: durations as any
 * `Duration.Input`, and which requests get no deadline. Every field is
 * optional.
 *
 * @category options
 * @since 0.1.0
 */
export interface ServerInput {
  /** The request header read (default `x-request-timeout-ms`; `grpc-timeout` for the `grpc` format). */
  readonly header?: string | undefined
  /** How the header is written (default `milliseconds`). */
  readonly format?: Format | undefined
  /** The longest budget a request gets (default 30 seconds): a larger header is clamped to it. */
  readonly maxTimeout?: Duration.Input | undefined
  /** The budget of a request without a (valid) header (default: none, no deadline). */
  readonly defaultTimeout?: Duration.Input | undefined
  /** The status of the answer when the budget runs out (default 504). */
  readonly status?: number | undefined
  /**
   * Requests that get no deadline: paths (`"/events"` that path,
   * `"/events/*"` every path under it) or a predicate. Long polls and
   * event streams belong here; upgrade requests (WebSocket) are always left
   * alone.
   */
  readonly exclude?: ReadonlyArray<string> | ((request: HttpServerRequest.HttpServerRequest) => boolean) | undefined
}

/**
 * The client options, as a schema: the source of the generated Defaults
 * table.
 *
 * @category options
 * @since 0.1.0
 */
export const ClientOptions = Schema.Struct({
  header: Schema.optionalKey(
    headerName.annotate({
      description: "The request header written (`grpc-timeout` when `format` is `grpc`).",
      default: millisecondsHeader
    })
  ),
  format: Schema.optionalKey(
    formatSchema.annotate({
      description: "How the header is written: `milliseconds` (`1500`) or `grpc` (`1500m`).",
      default: defaults.format
    })
  ),
  margin: Schema.optionalKey(
    Schema.DurationFromString.annotate({
      description:
        "Subtracted from the time left before it is sent (the network and (de)serialization); with no more than this left, the request fails without being sent.",
      default: defaults.margin
    })
  )
})

/**
 * The client options, as the schema types them.
 *
 * @category options
 * @since 0.1.0
 */
export type ClientOptions = typeof ClientOptions.Type

/**
 * The client options as code gives them (durations as any
 * `Duration.Input`). Every field is optional.
 *
 * @category options
 * @since 0.1.0
 */
export interface ClientInput {
  /** The request header written (default `x-request-timeout-ms`; `grpc-timeout` for the `grpc` format). */
  readonly header?: string | undefined
  /** How the header is written (default `milliseconds`). */
  readonly format?: Format | undefined
  /** Subtracted from the time left before it is sent (default 0). */
  readonly margin?: Duration.Input | undefined
}

/**
 * The Defaults table of the server options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const serverOptionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(ServerOptions)

/**
 * The Defaults table of the client options, generated from the schema.
 *
 * @category options
 * @since 0.1.0
 */
export const clientOptionsDocs: ReadonlyArray<Options_.FieldDoc> = Options_.fieldDocs(ClientOptions)

/** A finite duration: an infinite budget is no bound at all (leave `defaultTimeout` out for no deadline). */
const finite =
  (field: string): Options_.Rule =>
  (options) => {
    const value = options[field]
    return Duration.isDuration(value) && !Duration.isFinite(value)
      ? [{ path: field, message: "Expected a finite duration" }]
      : []
  }

/** `defaultTimeout` no longer than `maxTimeout` (when both are valid durations). */
const defaultWithinMax: Options_.Rule = (options) => {
  const fallback = options.defaultTimeout
  const max = options.maxTimeout ?? defaults.maxTimeout
  return Duration.isDuration(fallback) && Duration.isDuration(max) && Duration.isGreaterThan(fallback, max)
    ? [{ path: "defaultTimeout", message: "Expected a duration no longer than maxTimeout" }]
    : []
}

const excludeIssues = (exclude: ServerInput["exclude"]): ReadonlyArray<Options_.Issue> => {
  const raw: unknown = exclude
  if (raw === undefined || typeof raw === "function") return []
  if (!Array.isArray(raw)) {
    return [
      new Options_.Issue({
        path: "exclude",
        value: Options_.renderValue(raw),
        message: "Expected an array of paths or a predicate"
      })
    ]
  }
  return raw.flatMap((path: unknown, i) =>
    typeof path === "string" && path.startsWith("/")
      ? []
      : [
          new Options_.Issue({
            path: `exclude.${i}`,
            value: Options_.renderValue(path),
            message: 'Expected a path starting with "/" (or "/prefix/*")'
          })
        ]
  )
}

/**
 * Checks the server options: fails with one `Options.InvalidOptions`
 * (pattern `HttpDeadline`) naming every bad field — a header name that is
 * not one, an unknown format, a `maxTimeout` or `defaultTimeout` that is not
 * a finite duration above zero, a `defaultTimeout` longer than `maxTimeout`, a
 * status outside 400–599, an `exclude` path without its `/`. Succeeds with
 * the options as given.
 *
 * **Example** (Every bad field at once)
 *
 * ```ts import.meta.vitest
 * import { HttpDeadline } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     HttpDeadline.validateServerOptions({
 *       header: "x timeout",
 *       maxTimeout: "5 seconds",
 *       defaultTimeout: "10 seconds",
 *       status: 200,
 *       exclude: ["events"]
 *     })
 *   )
 * )
 * error.issues.map((issue) => issue.path)
 * // => ["exclude.0", "header", "status", "defaultTimeout"]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateServerOptions = (
  options: ServerInput = {}
): Effect.Effect<ServerInput, Options_.InvalidOptions> => {
  const { exclude, ...data } = options
  const { issues, normalized } = Options_.normalizeDurations({ ...data }, ["maxTimeout", "defaultTimeout"])
  return Effect.as(
    Options_.validate(
      "HttpDeadline",
      ServerOptions,
      normalized,
      [
        Options_.positiveDuration("maxTimeout"),
        Options_.positiveDuration("defaultTimeout"),
        finite("maxTimeout"),
        finite("defaultTimeout"),
        defaultWithinMax
      ],
      [...excludeIssues(exclude), ...issues]
    ),
    options
  )
}

/**
 * Checks the client options: fails with one `Options.InvalidOptions`
 * (pattern `HttpDeadline`) naming every bad field — a header name that is
 * not one, an unknown format, a `margin` that is not a duration of zero or
 * more. Succeeds with the options as given.
 *
 * **Example** (A negative margin and an unknown format)
 *
 * ```ts import.meta.vitest
 * import { HttpDeadline } from "@effect-resilience/http"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(HttpDeadline.validateClientOptions({ header: "x timeout", margin: -5 }))
 * )
 * error.issues.map((issue) => `${issue.path} = ${issue.value}`)
 * // => ["margin = -5", "header = \"x timeout\""]
 * ```
 *
 * @category options
 * @since 0.1.0
 */
export const validateClientOptions = (
  options: ClientInput = {}
): Effect.Effect<ClientInput, Options_.InvalidOptions> => {
  const { issues, normalized } = Options_.normalizeDurations({ ...options }, ["margin"])
  return Effect.as(Options_.validate("HttpDeadline", ClientOptions, normalized, [], issues), options)
}

// ---------------------------------------------------------------------------
// the server middleware
// ---------------------------------------------------------------------------

const millisOr = (input: Duration.Input | undefined, fallback: Duration.Duration): number =>
  Duration.toMillis(input === undefined ? fallback : Option.getOrElse(Duration.fromInput(input), () => fallback))

const formatOf = (format: unknown): Format => (format === "grpc" ? "grpc" : "milliseconds")

const headerOf = (header: string | undefined, format: Format): string =>
  (header ?? (format === "grpc" ? grpcHeader : millisecondsHeader)).toLowerCase()

/** Whether a `TimeoutError` is about a deadline (ran out, or too little of it left to start). */
const isDeadlineTimeout = (u: unknown): u is Timeout.TimeoutError =>
  Timeout.isTimeoutError(u) && u.reason.kind === "deadline"

/**
 * Whether the platform has sent the response's head already (Node: the
 * `ServerResponse` behind the request, when the handler wrote to it itself).
 */
const responseStarted = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const response = Predicate.hasProperty(request, "response") ? request.response : undefined
  return Predicate.hasProperty(response, "headersSent") && response.headersSent === true
}

/** Whether a request asks to switch protocols (a WebSocket): its connection outlives any budget. */
const isUpgrade = (request: HttpServerRequest.HttpServerRequest): boolean => request.headers.upgrade !== undefined

/**
 * The middleware: a function from an HTTP app (an effect answering the
 * current request) to the app run inside the request's deadline. Use it
 * with `HttpRouter.middleware` (global or per route), `HttpServer.serve`, or
 * by hand. The options are taken as given: check them first with
 * {@link validateServerOptions} ({@link layer} does).
 *
 * **Details**
 *
 * - The budget: the header's value bounded by `maxTimeout`; without a valid
 *   header, `defaultTimeout`; without either, no deadline and the app runs
 *   as it is.
 * - Inside it, `Timeout.Deadline` holds the deadline: the handler's
 *   `Timeout.attempt`s, retries and {@link client} calls read it.
 * - When it runs out the app is interrupted (its finalizers run) and the
 *   answer is `status` (504) with the text `Deadline Exceeded` — or, when
 *   the response has already started, the request ends interrupted and the
 *   platform closes the connection.
 *
 * **Example** (A route whose calls downstream share the caller's budget)
 *
 * ```ts
 * import { HttpDeadline } from "@effect-resilience/http"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 *
 * const Quotes = HttpRouter.add("GET", "/quotes", Effect.succeed(HttpServerResponse.text("quotes"))).pipe(
 *   Layer.provide(HttpRouter.middleware(HttpDeadline.middleware({ maxTimeout: "5 seconds" })).layer)
 * )
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const middleware = (
  options: ServerInput = {}
): (<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>) => {
  const format = formatOf(options.format)
  const header = headerOf(options.header, format)
  const maxMillis = millisOr(options.maxTimeout, defaults.maxTimeout)
  const defaultMillis =
    options.defaultTimeout === undefined
      ? undefined
      : Option.getOrUndefined(Option.map(Duration.fromInput(options.defaultTimeout), Duration.toMillis))
  const status = options.status ?? defaults.status
  const exclude = options.exclude
  const skip =
    exclude === undefined
      ? undefined
      : typeof exclude === "function"
        ? exclude
        : exclude.length === 0
          ? undefined
          : (request: HttpServerRequest.HttpServerRequest) => matchesPath(request.url, exclude)

  // once the head is out, a 504 cannot follow: the request ends interrupted, as when a client leaves, and the
  // platform closes the connection rather than end a partial body as if it were complete
  const expired = (
    request: HttpServerRequest.HttpServerRequest
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
    responseStarted(request)
      ? Effect.interrupt
      : Effect.succeed(HttpServerResponse.text("Deadline Exceeded", { status }))

  return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.flatMap(
      HttpServerRequest.HttpServerRequest,
      (request): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> => {
        if (isUpgrade(request) || skip?.(request)) return app
        const budget = Internal.serverBudget(Internal.parse(format, request.headers[header]), maxMillis, defaultMillis)
        if (budget === undefined) return app
        // the app's own outcome travels in the Exit: the only failure of the deadline is its own timeout. A global
        // middleware runs where the server made the request uninterruptible: the wait must end when the client leaves
        return Effect.matchEffect(Effect.interruptible(Timeout.deadline(Effect.exit(app), budget)), {
          onFailure: () => expired(request),
          onSuccess: (exit): Effect.Effect<HttpServerResponse.HttpServerResponse, E> => {
            if (Exit.isFailure(exit)) {
              const error = Cause.findErrorOption(exit.cause)
              if (Option.isSome(error) && isDeadlineTimeout(error.value)) return expired(request)
            }
            return exit
          }
        })
      }
    )
}

/**
 * A global router middleware: every request the `HttpRouter` answers,
 * unmatched ones included, runs inside its deadline (see
 * {@link middleware}). Fails with `Options.InvalidOptions` for bad options
 * (see {@link validateServerOptions}).
 *
 * **Example** (A budget from every caller, 10 seconds at most, 2 seconds without one)
 *
 * ```ts
 * import { HttpDeadline } from "@effect-resilience/http"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 *
 * const App = Layer.mergeAll(
 *   HttpRouter.add("GET", "/quotes", Effect.succeed(HttpServerResponse.text("quotes"))),
 *   HttpDeadline.layer({ maxTimeout: "10 seconds", defaultTimeout: "2 seconds", exclude: ["/events"] })
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: ServerInput = {}): Layer.Layer<never, Options_.InvalidOptions, HttpRouter.HttpRouter> =>
  HttpRouter.middleware(
    Effect.map(validateServerOptions(options), (valid) => middleware(valid)),
    { global: true }
  )

/**
 * {@link layer} with the data options read from `Config` under `path`
 * (environment variables `path_maxTimeout="10 seconds"`, …, every one
 * optional); `exclude` is given in code. A bad value fails with
 * `Options.InvalidOptions` naming it.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  path: string,
  options: Pick<ServerInput, "exclude"> = {}
): Layer.Layer<never, Options_.InvalidOptions | Config.ConfigError, HttpRouter.HttpRouter> =>
  HttpRouter.middleware(
    Effect.flatMap(Options_.fromConfig("HttpDeadline", ServerOptions, path), (data) =>
      Effect.map(validateServerOptions({ ...data, ...options }), (valid) => middleware(valid))
    ),
    { global: true }
  )

// ---------------------------------------------------------------------------
// the client wrapper
// ---------------------------------------------------------------------------

/**
 * Refuses a request with `left` milliseconds of its deadline left (at most
 * the margin): through `Timeout.attempt`, whose refusal of an attempt with
 * at most `minAttemptTime` left is exactly this one, so it is counted
 * (`resilience.timeout.timeouts`, `Timeout.stats`) and emitted on
 * `Timeout.events` as every other deadline timeout. It fails at once: the
 * effect never starts.
 */
const refuse = (left: number): Effect.Effect<never, Timeout.TimeoutError> =>
  Timeout.attempt(Effect.never, 0, { minAttemptTime: Duration.millis(Math.max(0, left)) })

/**
 * Wraps an `HttpClient` so that a request sent inside a `Timeout.deadline`
 * carries the time left (minus `margin`) in a header, read when the request
 * is sent: under a retry, each attempt sends what is left then. With no
 * whole millisecond left (after the margin), the request fails at once with
 * `Timeout.TimeoutError` (`kind: "deadline"`) and is not sent. Outside a
 * deadline the request is sent as it is; a request that carries a smaller
 * budget already keeps it. Adds only `TimeoutError` to the error channel.
 * The options are taken as given: check them first with
 * {@link validateClientOptions} ({@link layerClient} does).
 *
 * **Example** (Nothing left: refused without a request)
 *
 * ```ts import.meta.vitest
 * import { Timeout } from "@effect-resilience/core"
 * import { HttpDeadline } from "@effect-resilience/http"
 * import { Effect } from "effect"
 * import { HttpClient, HttpClientResponse } from "effect/http"
 * import { TestClock } from "effect/testing"
 *
 * let sent = 0
 * const upstream = HttpClient.make((request) =>
 *   Effect.sync(() => {
 *     sent++
 *     return HttpClientResponse.fromWeb(request, new Response("ok"))
 *   })
 * )
 * const client = HttpDeadline.client(upstream, { format: "grpc", margin: "50 millis" })
 *
 * const error = await Effect.runPromise(
 *   client.get("http://quotes.internal/").pipe(
 *     Timeout.deadline("40 millis"),
 *     Effect.flip,
 *     Effect.provide(TestClock.layer())
 *   )
 * )
 * const seen = [error._tag, Timeout.isTimeoutError(error) ? error.reason.kind : "other", sent]
 * // => ["TimeoutError", "deadline", 0]
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const client: {
  /**
   * Wraps a client (data-last, for `pipe`).
   *
   * @since 0.1.0
   */
  (
    options?: ClientInput | undefined
  ): <E, R>(self: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | Timeout.TimeoutError, R>
  /**
   * Wraps a client (data-first).
   *
   * @since 0.1.0
   */
  <E, R>(
    self: HttpClient.HttpClient.With<E, R>,
    options?: ClientInput | undefined
  ): HttpClient.HttpClient.With<E | Timeout.TimeoutError, R>
} = dual(
  (args) => HttpClient.isHttpClient(args[0]),
  <E, R>(
    self: HttpClient.HttpClient.With<E, R>,
    options: ClientInput = {}
  ): HttpClient.HttpClient.With<E | Timeout.TimeoutError, R> => {
    const format = formatOf(options.format)
    const header = headerOf(options.header, format)
    const margin = millisOr(options.margin, defaults.margin)
    const send = (
      request: HttpClientRequest.HttpClientRequest
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, E | Timeout.TimeoutError, R> =>
      Effect.withFiber<HttpClientResponse.HttpClientResponse, E | Timeout.TimeoutError, R>((fiber) => {
        const deadline = fiber.getRef(Timeout.Deadline)
        if (deadline === Number.POSITIVE_INFINITY) return self.postprocess(Effect.succeed(request))
        const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        const budget = Internal.clientBudget(deadline, now, margin, Internal.parse(format, request.headers[header]))
        if (budget === undefined) return refuse(deadline - now)
        return self.postprocess(
          Effect.succeed(HttpClientRequest.setHeader(request, header, Internal.format(format, budget)))
        )
      })
    // in the postprocess, not the preprocess: a retry around this client runs it again, with the time left then
    return HttpClient.makeWith((request) => Effect.flatMap(request, send), self.preprocess)
  }
)

/**
 * Wraps the `HttpClient` service (see {@link client}): provide it over the
 * real client, under anything built on the `HttpClient`. The service's
 * type allows only `HttpClientError`, so a refused request fails with an
 * `HttpClientError` whose reason is a `TransportError` (the request was not
 * sent) with the `Timeout.TimeoutError` as its `cause`. Fails with
 * `Options.InvalidOptions` for bad options (see
 * {@link validateClientOptions}).
 *
 * **Example** (Fetch underneath, the gRPC header)
 *
 * ```ts
 * import { HttpDeadline } from "@effect-resilience/http"
 * import { Layer } from "effect"
 * import { FetchHttpClient } from "effect/http"
 *
 * const Client = HttpDeadline.layerClient({ format: "grpc", margin: "10 millis" }).pipe(
 *   Layer.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerClient = (
  options: ClientInput = {}
): Layer.Layer<HttpClient.HttpClient, Options_.InvalidOptions, HttpClient.HttpClient> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function* () {
      const valid = yield* validateClientOptions(options)
      const underlying = yield* HttpClient.HttpClient
      const wrapped = client(underlying, valid)
      return HttpClient.makeWith(
        (requestEffect) =>
          Effect.flatMap(requestEffect, (request) =>
            Effect.catchIf(wrapped.postprocess(Effect.succeed(request)), Timeout.isTimeoutError, (cause) =>
              Effect.fail(
                new HttpClientError.HttpClientError({
                  reason: new HttpClientError.TransportError({
                    request,
                    cause,
                    description: "no time left before the deadline: the request was not sent"
                  })
                })
              )
            )
          ),
        underlying.preprocess
      )
    })
  )
