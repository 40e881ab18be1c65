/**
 * One breaker, one circuit per host. Responses are plain values here (no
 * network): a `503` is a *successful* effect that `isFailureResult` counts as
 * a failure, while a `404` is the caller's problem and counts as a success. The
 * failing host's circuit opens; the healthy host is never affected.
 *
 * The breaker comes from `CircuitBreaker.layerMemory`, the embedded default
 * (the service plus its in-memory store), so any code can reach it through the
 * `CircuitBreaker.CircuitBreaker` tag.
 *
 * Run it with `node examples/circuit-breaker/keyed-http.ts` (after `npm run build`).
 */
import { CircuitBreaker } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** A response, as an HTTP client would return it. */
interface Response {
  readonly status: number
}

/** The simulated upstreams: `a.example.com` is overloaded, `b.example.com` is fine. */
const send = (host: string, path: string): Effect.Effect<Response> =>
  Effect.succeed({ status: host === "a.example.com" ? 503 : path === "/missing" ? 404 : 200 })

/** A GET through the host's own circuit; a 5xx response counts as a failure. */
const get = (host: string, path: string) =>
  Effect.flatMap(CircuitBreaker.CircuitBreaker, (breaker) =>
    send(host, path).pipe(
      CircuitBreaker.protect(breaker, {
        key: host, // one circuit per host: never a per-request value such as a URL with a query string
        isFailureResult: (response: Response) => response.status >= 500
      }),
      Effect.map((response) => `${host}${path} ${response.status}`),
      Effect.catchTag("CircuitBreakerError", (error) => Effect.succeed(`${host}${path} ${error.reason._tag}`))
    )
  )

/** The breaker as a layer: its own memory store, bounded to 1,000 hosts. */
const Breaker = CircuitBreaker.layerMemory({
  name: "http-client", // the metrics' `resilience.name`; host keys never reach the metrics
  consecutiveFailures: 2,
  openDuration: "30 seconds",
  maxKeys: 1_000, // a flood of hosts cannot grow memory past this ...
  idleTimeToLive: "10 minutes" // ... and circuits of hosts no longer called are evicted
}).pipe(Layer.orDie) // constant options: an invalid one is a bug

/**
 * Every response or rejection, then each host's state:
 * `["a.example.com/quote 503", "a.example.com/quote 503", "a.example.com/quote CircuitOpen",
 *   "b.example.com/quote 200", "b.example.com/missing 404", "b.example.com/quote 200",
 *   "a.example.com Open", "b.example.com Closed"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const seen: Array<string> = []
  seen.push(yield* get("a.example.com", "/quote")) // 503: failure 1 for a.example.com
  seen.push(yield* get("a.example.com", "/quote")) // 503: failure 2, its circuit opens
  seen.push(yield* get("a.example.com", "/quote")) // rejected without sending
  seen.push(yield* get("b.example.com", "/quote")) // another host, another circuit: 200
  seen.push(yield* get("b.example.com", "/missing")) // 404 is not a 5xx: a success for the breaker
  seen.push(yield* get("b.example.com", "/quote")) // 200
  const breaker = yield* CircuitBreaker.CircuitBreaker
  for (const host of ["a.example.com", "b.example.com"]) {
    const state = yield* Effect.orDie(breaker.state(host))
    seen.push(`${host} ${state._tag}`)
  }
  return seen
}).pipe(Effect.provide(Breaker))

if (import.meta.main) Effect.runPromise(program).then(console.log)
