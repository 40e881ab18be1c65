/**
 * Load shedding: what the HTTP middleware adds to a request it admits (no
 * pressure, a `maxInFlight` cap counting), what a shed request costs, and an
 * excluded path; against the bare handler and Effect 4's own primitive for a
 * concurrency cap, `Semaphore.withPermitsIfAvailable`.
 *
 * In process, without sockets: each call runs the app (an effect answering
 * `HttpServerResponse.text`) with the request provided, as the router does
 * after parsing it. Every shedder is built once, at module load, with a
 * probe that reads nothing (no timer, no `perf_hooks`), its sampling fiber
 * parked in a scope that stays open.
 */
import { LoadShedding } from "@effect-resilience/http"
import * as Effect from "effect/Effect"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"

const scope = Effect.runSync(Scope.make())

let heapUsed = 0
const probe: LoadShedding.Probe = { read: Effect.sync(() => ({ heapUsed })) }

const makeShedder = (input: LoadShedding.Input): LoadShedding.LoadShedder =>
  Effect.runSync(LoadShedding.make({ probe, sampleInterval: "1 hour", ...input }).pipe(Scope.provide(scope)))

const check = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`load-shedding bench setup: ${message}`)
}

const request = HttpServerRequest.fromWeb(new Request("http://localhost/api/quotes?id=7"))
const probeRequest = HttpServerRequest.fromWeb(new Request("http://localhost/health/ready"))
const response = HttpServerResponse.text("ok")
const handler = Effect.sync(() => response)

const serve = (
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>,
  req: HttpServerRequest.HttpServerRequest = request
) => Effect.provideService(app, HttpServerRequest.HttpServerRequest, req)

// every signal watched, nothing over: the admitted path with its checks and the in-flight count
const calm = makeShedder({
  eventLoopDelayThreshold: "200 millis",
  heapUsedThreshold: 1_000_000,
  maxInFlight: 1_000,
  critical: ["/api/payments", "/api/payments/*"],
  sheddable: ["/api/reports/*"]
})
// the heap over its threshold: every normal request shed
const pressured = makeShedder({ heapUsedThreshold: 1_000 })
heapUsed = 10_000
Effect.runSync(pressured.sample)
heapUsed = 0

const calmApp = serve(calm.middleware(handler))
const shedApp = serve(pressured.middleware(handler))
const excludedApp = serve(pressured.middleware(handler), probeRequest)
const bareApp = serve(handler)
const semaphore = Semaphore.makeUnsafe(1_000)
const semaphoreApp = serve(Effect.map(Semaphore.withPermitsIfAvailable(semaphore, 1)(handler), Option.getOrThrow))

check(Effect.runSync(calmApp).status === 200, "a calm shedder admits")
check(Effect.runSync(shedApp).status === 503, "a pressured shedder sheds")
check(Effect.runSync(excludedApp).status === 200, "an excluded path passes")

export const loadSheddingRequest: Suite = {
  id: "load-shedding-request",
  title: "Load shedding: a request through the HTTP middleware (in process)",
  description:
    "One request after another in one fiber, each an app answering `HttpServerResponse.text` with an " +
    "`HttpServerRequest` provided (what the router runs after parsing a request; no socket). The baseline is the " +
    "bare handler. effect-resilience runs it through `LoadShedding.middleware`: admitted (every signal watched and " +
    "calm, a `maxInFlight` of 1,000 counting the request, critical and sheddable path lists to match), shed (the " +
    "heap over its threshold: a 503 with `Retry-After`, the handler not run), and on an excluded path (`/health/*`, " +
    "under pressure). Effect 4's `Semaphore.withPermitsIfAvailable(semaphore, 1)` (1,000 permits) is the nearest " +
    "primitive for the concurrency cap alone.",
  iterations: 200_000,
  baseline: "bare handler",
  contenders: [
    { name: "bare handler", library: effect, run: effectLoop(() => bareApp) },
    { name: "effect-resilience LoadShedding.middleware, admitted", library: ours, run: effectLoop(() => calmApp) },
    { name: "effect-resilience LoadShedding.middleware, shed (503)", library: ours, run: effectLoop(() => shedApp) },
    {
      name: "effect-resilience LoadShedding.middleware, excluded path",
      library: ours,
      run: effectLoop(() => excludedApp)
    },
    { name: "Semaphore.withPermitsIfAvailable(semaphore, 1)", library: effect, run: effectLoop(() => semaphoreApp) }
  ]
}

export const loadSheddingSuites: ReadonlyArray<Suite> = [loadSheddingRequest]
