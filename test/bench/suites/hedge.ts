/**
 * Hedging and chaos on the success path: what a hedge adds to a call that
 * answers before its delay, and what chaos injection adds when it injects
 * nothing (switched off, or on with no fault drawn) — both sit on production
 * call paths, so their idle cost is what matters.
 *
 * The peer for a hedge is Effect's own way to write one: the call raced with
 * a delayed copy of itself (`Effect.race`); cockatiel and opossum have no hedge.
 */
import { Chaos, Hedge } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"

const fixed = Hedge.make({ delay: "1 second" })
const adaptive = Hedge.make({ delay: { percentile: 0.95, initial: "1 second" } })

/** A call that answers after one scheduler hop: what a real (asynchronous) call looks like to a hedge. */
const hop = (i: number) => Effect.as(Effect.yieldNow, i)

export const hedgeSuccess: Suite = {
  id: "hedge-success",
  title: "Hedge: a call answered before the hedge delay",
  description:
    "A call that answers after one scheduler hop (`Effect.yieldNow`), through a hedge with a fixed 1 s delay, an " +
    "adaptive one (p95 of recent latencies, 1 s until enough samples) and Effect's own way to write a hedge: " +
    "`Effect.race(call, Effect.delay(call, 1 s))`. No hedge starts. The baseline is the call alone.",
  iterations: 50_000,
  baseline: "Effect.yieldNow (bare)",
  contenders: [
    { name: "Effect.yieldNow (bare)", library: effect, run: effectLoop(hop) },
    {
      name: "effect-resilience Hedge.hedge (fixed delay)",
      library: ours,
      run: effectLoop((i) => Hedge.hedge(hop(i), fixed))
    },
    {
      name: "effect-resilience Hedge.hedge (adaptive delay)",
      library: ours,
      run: effectLoop((i) => Hedge.hedge(hop(i), adaptive))
    },
    {
      name: "Effect.race(call, Effect.delay(call, 1 s))",
      library: effect,
      run: effectLoop((i) => Effect.race(hop(i), Effect.delay(hop(i), "1 second")))
    }
  ]
}

const scope = Effect.runSync(Scope.make())
const chaos = (input: Chaos.Input) => Effect.runSync(Chaos.make(input).pipe(Scope.provide(scope)))
const off = chaos({ name: "off", enabled: false, failureRate: 0.5 })
const idle = chaos({ name: "idle", failureRate: 0 })
const rare = chaos({ name: "rare", failureRate: 1e-9, latencyRate: 1e-9 })

export const chaosIdle: Suite = {
  id: "chaos-idle",
  title: "Chaos: a call that gets no fault",
  description:
    "`Effect.sync(() => i)` through a chaos instance that is switched off, one with every rate 0, and one with tiny " +
    "failure and latency rates (two draws from `Random` per call, no fault in practice). The baseline is the call " +
    "alone.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience Chaos (disabled)",
      library: ours,
      run: effectLoop((i) => off.inject(Effect.sync(() => i)))
    },
    {
      name: "effect-resilience Chaos (rates 0)",
      library: ours,
      run: effectLoop((i) => idle.inject(Effect.sync(() => i)))
    },
    {
      name: "effect-resilience Chaos (rates 1e-9)",
      library: ours,
      run: effectLoop((i) => rare.inject(Effect.sync(() => i)))
    }
  ]
}

export const hedgeSuites: ReadonlyArray<Suite> = [hedgeSuccess, chaosIdle]
