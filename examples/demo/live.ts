/**
 * `npm run demo:live`: a simulated service under load, watched live on the
 * dashboard at http://127.0.0.1:8787/dashboard.
 *
 * Ten clients call an `orders` service of three replicas through the whole
 * toolkit: a per-client rate limiter, an adaptive bulkhead, client-side
 * adaptive throttling, a load balancer with outlier ejection and a circuit
 * breaker per replica. A scenario repeats every 40 seconds:
 *
 * - 0–10 s: calm;
 * - 10–25 s: `replica-b` fails most calls and slows down (chaos injection):
 *   its circuit opens, the balancer ejects it, the throttle and the health
 *   registry notice, an alert fires, then everything recovers;
 * - 25–40 s: `client-9` floods the service: the rate limiter refuses its
 *   excess and lists it among the top clients; the others are unaffected.
 *
 * Options: `--port N` (default 8787; 0 picks a free port), `--seconds N`
 * (stop after N seconds; default: run until interrupted), `--cycle N` (the
 * scenario's length in seconds, default 40; its phases scale with it). Runs
 * against the built packages (`npm run demo:live` builds them first).
 */
import * as Http from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import {
  AdaptiveThrottle,
  Alert,
  Bulkhead,
  Chaos,
  CircuitBreaker,
  Health,
  LoadBalancer,
  RateLimiter
} from "@effect-resilience/core"
import { Dashboard } from "@effect-resilience/http"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"

class ReplicaDown extends Data.TaggedError("ReplicaDown")<{ readonly replica: string }> {}

/** `--name value` of the command line, as a number. */
const numberArg = (name: string): number | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  const value = at === -1 ? undefined : Number(process.argv[at + 1])
  return value === undefined || Number.isNaN(value) ? undefined : value
}
const port = numberArg("port") ?? 8787
const seconds = numberArg("seconds")
const cycleMillis = (numberArg("cycle") ?? 40) * 1000

/** Which phase of the scenario `elapsed` falls in: a quarter calm, three eighths each failing and flooding. */
const phaseOf = (elapsedMillis: number): "calm" | "replica-b failing" | "client-9 flooding" => {
  const t = (elapsedMillis % cycleMillis) / cycleMillis
  return t < 0.25 ? "calm" : t < 0.625 ? "replica-b failing" : "client-9 flooding"
}

/** The patterns, the traffic through them, and the dashboard's routes over them. */
const Simulation = Layer.unwrap(
  Effect.gen(function* () {
    const replicas = ["replica-a", "replica-b", "replica-c"]
    const chaos = yield* Chaos.make({
      name: "replica-b",
      enabled: false,
      failureRate: 0.7,
      latencyRate: 0.5,
      latencyMin: "50 millis",
      latencyMax: "250 millis"
    })
    const breaker = yield* CircuitBreaker.make({
      name: "replicas",
      ...CircuitBreaker.rate({ threshold: 0.5, size: 20, minimumCalls: 10 }),
      openDuration: "5 seconds"
    })
    const balancer = yield* LoadBalancer.make({
      name: "orders",
      strategy: "roundRobin",
      // the dashboard shows each replica's latency: time the calls
      recordLatency: true,
      endpoints: replicas.map((id) => ({ id })),
      consecutiveFailures: 5,
      baseEjectionTime: "5 seconds",
      maxEjectionPercent: 34
    })
    const limiter = yield* RateLimiter.make({
      name: "clients",
      limits: [{ algorithm: "token-bucket", limit: 10, window: "1 second", name: "per-second" }],
      topClients: 5
    })
    const bulkhead = yield* Bulkhead.make({
      name: "orders",
      maxConcurrent: 16,
      maxQueue: 32,
      maxWait: "500 millis",
      limit: { algorithm: "gradient", minLimit: 4, maxLimit: 64 }
    })
    const throttle = yield* AdaptiveThrottle.make({ name: "orders", window: "20 seconds" })
    const health = yield* Health.make({
      name: "orders",
      components: [
        Health.fromCircuitBreaker(breaker, { key: "replica-b", name: "replica-b circuit" }),
        Health.fromRateLimiter(limiter, { name: "client quotas" })
      ]
    })
    const alerts = yield* Alert.make({
      name: "orders",
      rules: [
        Alert.circuitOpen(breaker, { key: "replica-b", for: "1 second" }),
        Alert.rejectionRate(limiter, { threshold: 0.2, for: "2 seconds" })
      ]
    })

    /** One call to a replica: 5–25 ms, and replica-b through the chaos injector. */
    const replicaCall = (replica: string) =>
      Effect.flatMap(Random.nextIntBetween(5, 25), (millis) => Effect.sleep(Duration.millis(millis))).pipe(
        (call) =>
          replica === "replica-b"
            ? Chaos.inject(call, chaos).pipe(Effect.mapError(() => new ReplicaDown({ replica })))
            : call,
        CircuitBreaker.protect(breaker, { key: replica })
      )
    const request = (client: string) =>
      LoadBalancer.call(balancer, (replica) => replicaCall(replica.id)).pipe(
        AdaptiveThrottle.throttle(throttle, { key: "orders" }),
        Bulkhead.isolate(bulkhead),
        RateLimiter.limit(limiter, { key: client })
      )

    // the traffic: ten clients, a request every 10 ms; the scenario switches chaos on and off
    const start = yield* Clock.currentTimeMillis
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        let phase = phaseOf(0)
        for (let tick = 0; ; tick++) {
          const now = phaseOf((yield* Clock.currentTimeMillis) - start)
          if (now !== phase) {
            phase = now
            yield* now === "replica-b failing" ? chaos.enable : chaos.disable
            yield* Console.log(`phase: ${now}`)
          }
          const flooding = phase === "client-9 flooding"
          const burst = flooding ? 4 : 1
          for (let i = 0; i < burst; i++) {
            const client = flooding && i > 0 ? "client-9" : `client-${tick % 10}`
            yield* Effect.forkChild(Effect.ignore(request(client)))
          }
          yield* Effect.sleep("10 millis")
        }
      })
    )

    return Layer.mergeAll(
      Dashboard.layer({
        title: "effect-resilience live demo",
        breakers: [breaker],
        limiters: [limiter],
        bulkheads: [bulkhead],
        throttles: [throttle],
        balancers: [balancer],
        health,
        alerts
      }),
      HttpRouter.add("GET", "/", Effect.succeed(HttpServerResponse.redirect("/dashboard")))
    )
  })
).pipe(Layer.provide([CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory()]))

const Server = HttpRouter.serve(Simulation, { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port, host: "127.0.0.1" }))
)

const program = Effect.gen(function* () {
  const address = (yield* HttpServer.HttpServer).address
  const listening = address._tag === "InetAddressV4" || address._tag === "InetAddressV6" ? address.port : port
  yield* Console.log(`dashboard: http://127.0.0.1:${listening}/dashboard`)
  yield* seconds === undefined ? Effect.never : Effect.sleep(Duration.seconds(seconds))
}).pipe(Effect.provide(Server), Effect.scoped)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
