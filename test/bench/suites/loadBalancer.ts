/**
 * Load balancing: what `LoadBalancer.call` adds to a call, for each strategy,
 * over 10 endpoints. The floor is the least a balancer can do: a
 * hand-written `endpoints[i++ % n]` before the effect. Effect 4's own
 * `HashRing.get` stands in for the ring-hash pick.
 *
 * Every call succeeds, in one fiber, one after another, so nothing is ever
 * ejected and one call is in flight at a time: the cost measured is the
 * pick, the in-flight tracking and the outcome recorded at the end of each
 * call, plus the latency EWMA (two clock reads) where calls are timed:
 * `peakEwma`, and `roundRobin` with `recordLatency: true`. Every instance is
 * built once, at module load.
 */
import { LoadBalancer } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as HashRing from "effect/HashRing"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Scope from "effect/Scope"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"

// Every balancer lives in one scope that stays open for the process.
const scope = Effect.runSync(Scope.make())

const endpoints: ReadonlyArray<LoadBalancer.Endpoint> = Array.from({ length: 10 }, (_, i) => ({
  id: `10.0.0.${i + 1}:8080`
}))
const weighted: ReadonlyArray<LoadBalancer.Endpoint> = endpoints.map((e, i) => ({ ...e, weight: 1 + (i % 3) }))

const makeOurs = (input: LoadBalancer.Input): LoadBalancer.LoadBalancer =>
  Effect.runSync(LoadBalancer.make(input).pipe(Scope.provide(scope)))

const roundRobin = makeOurs({ name: "bench-rr", strategy: "roundRobin", endpoints })
const roundRobinTimed = makeOurs({ name: "bench-rr-timed", strategy: "roundRobin", endpoints, recordLatency: true })
const weightedRoundRobin = makeOurs({ name: "bench-swrr", strategy: "roundRobin", endpoints: weighted })
const random = makeOurs({ name: "bench-random", strategy: "random", endpoints })
const leastRequests = makeOurs({ name: "bench-p2c", strategy: "leastRequests", endpoints })
const peakEwma = makeOurs({ name: "bench-ewma", strategy: "peakEwma", endpoints })
const ringHash = makeOurs({ name: "bench-ring", strategy: "ringHash", endpoints })

/** The endpoint's id, as the call's result. */
const useEndpoint = (endpoint: LoadBalancer.Endpoint) => Effect.sync(() => endpoint.id)

// the floor: a counter and an index
let cursor = 0
const byHand = (): Effect.Effect<string> => {
  const endpoint = endpoints[cursor++ % endpoints.length]
  return Effect.sync(() => endpoint?.id ?? "")
}

// Effect's HashRing over the same ids
class Node implements PrimaryKey.PrimaryKey {
  readonly id: string
  constructor(id: string) {
    this.id = id
  }
  [PrimaryKey.symbol](): string {
    return this.id
  }
}
const effectRing = HashRing.addMany(
  HashRing.make<Node>(),
  endpoints.map((e) => new Node(e.id))
)
const keys = Array.from({ length: 1024 }, (_, i) => `user-${i}`)
const keyOf = (i: number): string => keys[i & 1023] ?? ""

export const loadBalancerCall: Suite = {
  id: "load-balancer-call",
  title: "LoadBalancer: a call over 10 endpoints",
  description:
    "`LoadBalancer.call(lb, (endpoint) => Effect.sync(() => endpoint.id))` over 10 endpoints, one call after " +
    "another in one fiber, for each strategy; every call succeeds, so nothing is ejected. The baseline is " +
    "`Effect.sync` alone; the floor picks by hand (`endpoints[i++ % 10]`) before the same effect. " +
    "`roundRobin` with equal weights rotates; with weights 1–3 it is nginx's smooth weighted round robin; with " +
    "`recordLatency: true` each call is also timed (two monotonic clock reads) for the latency EWMA in `stats`, " +
    "which only `peakEwma` does by default. " +
    "`leastRequests` and `peakEwma` draw two candidates from Effect's `Random`. `ringHash` hashes a key out of " +
    "1,024 and searches a ring of 1,600 points; Effect 4's `HashRing.get` (128 points per node) over the same " +
    "keys, before `Effect.sync`, is the peer.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    { name: "endpoints[i++ % n] then Effect.sync (floor)", library: "javascript", run: effectLoop(byHand) },
    {
      name: "effect-resilience LoadBalancer.call, roundRobin",
      library: ours,
      run: effectLoop(() => LoadBalancer.call(roundRobin, useEndpoint))
    },
    {
      name: "effect-resilience LoadBalancer.call, roundRobin, recordLatency",
      library: ours,
      run: effectLoop(() => LoadBalancer.call(roundRobinTimed, useEndpoint))
    },
    {
      name: "effect-resilience LoadBalancer.call, roundRobin weighted (smooth)",
      library: ours,
      run: effectLoop(() => LoadBalancer.call(weightedRoundRobin, useEndpoint))
    },
    {
      name: "effect-resilience LoadBalancer.call, random",
      library: ours,
      run: effectLoop(() => LoadBalancer.call(random, useEndpoint))
    },
    {
      name: "effect-resilience LoadBalancer.call, leastRequests (P2C)",
      library: ours,
      run: effectLoop(() => LoadBalancer.call(leastRequests, useEndpoint))
    },
    {
      name: "effect-resilience LoadBalancer.call, peakEwma",
      library: ours,
      run: effectLoop(() => LoadBalancer.call(peakEwma, useEndpoint))
    },
    {
      name: "effect-resilience LoadBalancer.call, ringHash { key }",
      library: ours,
      run: effectLoop((i) => LoadBalancer.call(ringHash, useEndpoint, { key: keyOf(i) }))
    },
    {
      name: "HashRing.get then Effect.sync",
      library: effect,
      run: effectLoop((i) => {
        const node = HashRing.get(effectRing, keyOf(i))
        return Effect.sync(() => node?.id ?? "")
      })
    }
  ]
}

export const loadBalancerSuites: ReadonlyArray<Suite> = [loadBalancerCall]
