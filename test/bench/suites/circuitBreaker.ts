/**
 * Circuit breakers: what a closed breaker adds to a successful call, and what
 * a rejected call costs once the circuit is open.
 *
 * Effect-based breakers are compared with the Effect floor and promise-based
 * ones with the promise floor, since that is what a user of each pays before
 * adding a breaker. Every instance is built once, at module load, with
 * thresholds the success suites never reach.
 */
import { CircuitBreaker } from "@effect-resilience/core"
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleAll } from "cockatiel"
import * as Effect from "effect/Effect"
import * as EffectCircuitBreaker from "effect/persistence/CircuitBreaker"
import * as Scope from "effect/Scope"
import OpossumBreaker from "opossum"
import { effectLoop, promiseLoop } from "../drivers.ts"
import { packageVersion, type Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"
const cockatiel = `cockatiel ${packageVersion("cockatiel")}`
const opossum = `opossum ${packageVersion("opossum")}`

/** Large enough that no success suite trips a breaker. */
const neverTrips = 1_000_000
/** Long enough that an opened breaker stays open for the whole run. */
const openMillis = 10 * 60 * 1000
const key = "bench"

// Every breaker lives in one scope that stays open for the process.
const scope = Effect.runSync(Scope.make())

const makeOurs = (options: CircuitBreaker.Input): CircuitBreaker.CircuitBreaker =>
  Effect.runSync(
    CircuitBreaker.make(options).pipe(Scope.provide(scope), Effect.provide(CircuitBreaker.layerStoreMemory()))
  )

const makeEffect = (failures: number): EffectCircuitBreaker.CircuitBreaker =>
  Effect.runSync(
    EffectCircuitBreaker.make({
      tripPolicy: EffectCircuitBreaker.consecutive(failures),
      openDuration: `${openMillis} millis`
    }).pipe(Scope.provide(scope), Effect.provide(EffectCircuitBreaker.layerStoreMemory()))
  )

/** The async operation the promise-based breakers wrap. */
const asyncOp = async (i: number): Promise<number> => i

/**
 * Opossum without its per-call `setTimeout` (`timeout: false`: no other
 * contender times calls out) and without its once-per-bucket snapshot event,
 * which would otherwise run during the other contenders' batches. Its
 * remaining timers are `unref`ed, so they do not keep the process alive.
 */
const makeOpossum = (): OpossumBreaker<[number], number> =>
  new OpossumBreaker(asyncOp, { timeout: false, resetTimeout: openMillis, enableSnapshots: false })

const check = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`circuit-breaker bench setup: ${message}`)
}

// ---------------------------------------------------------------------------
// success: a closed breaker around a call that succeeds
// ---------------------------------------------------------------------------

const oursPlain = makeOurs({ consecutiveFailures: neverTrips })
const oursTimed = makeOurs({ consecutiveFailures: neverTrips, recordCallDuration: true })
const oursSlowCalls = makeOurs({ slowCallRateThreshold: 0.5, slowCallDuration: "1 second" })
const effectPlain = makeEffect(neverTrips)

export const circuitBreakerSuccessEffect: Suite = {
  id: "circuit-breaker-success-effect",
  title: "Circuit breaker: successful call (Effect)",
  description:
    "A closed breaker around an effect that succeeds, one call after another in one fiber. The baseline is " +
    "`Effect.sync(() => i)` alone; the rows below it wrap that same effect. effect-resilience runs with a " +
    "consecutive-failures policy and no call timing (data-first, and piped: `effect.pipe(CircuitBreaker.protect(" +
    "breaker))`), with `recordCallDuration: true` (every call timed for the " +
    "duration histogram), and with a slow-call policy (`slowCallRateThreshold: 0.5`, `slowCallDuration: " +
    '"1 second"`: every call timed and counted in a 100-call window). Effect\'s own `effect/persistence` breaker ' +
    "(`consecutive` policy, memory store) runs the same effect through `execute({ key })`. The last two rows " +
    "repeat the bare call and the untimed breaker over `Effect.succeed(i)`, which has no thunk to run.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience, consecutive policy",
      library: ours,
      run: effectLoop((i) => oursPlain.protect(Effect.sync(() => i)))
    },
    {
      name: "effect-resilience, consecutive policy, piped",
      library: ours,
      run: effectLoop((i) => Effect.sync(() => i).pipe(CircuitBreaker.protect(oursPlain)))
    },
    {
      name: "effect-resilience, recordCallDuration",
      library: ours,
      run: effectLoop((i) => oursTimed.protect(Effect.sync(() => i)))
    },
    {
      name: "effect-resilience, slow-call policy",
      library: ours,
      run: effectLoop((i) => oursSlowCalls.protect(Effect.sync(() => i)))
    },
    {
      name: "effect/persistence CircuitBreaker execute",
      library: effect,
      run: effectLoop((i) =>
        effectPlain.execute(
          Effect.sync(() => i),
          { key }
        )
      )
    },
    { name: "Effect.succeed (bare)", library: effect, run: effectLoop((i) => Effect.succeed(i)) },
    {
      name: "effect-resilience over Effect.succeed",
      library: ours,
      run: effectLoop((i) => oursPlain.protect(Effect.succeed(i)))
    }
  ]
}

const cockatielPlain = circuitBreaker(handleAll, {
  halfOpenAfter: openMillis,
  breaker: new ConsecutiveBreaker(neverTrips)
})
const opossumPlain = makeOpossum()

export const circuitBreakerSuccessPromise: Suite = {
  id: "circuit-breaker-success-promise",
  title: "Circuit breaker: successful call (promise)",
  description:
    "A closed breaker around an `async` function that resolves, awaited one call after another. The baseline " +
    "awaits the function alone. cockatiel runs it through `circuitBreaker(handleAll, { breaker: new " +
    "ConsecutiveBreaker(n) }).execute`; opossum through `breaker.fire(i)`, with `timeout: false` (no per-call " +
    "timer) and `enableSnapshots: false` (no periodic snapshot event), its other defaults kept (rolling counts " +
    "and latency percentiles).",
  iterations: 200_000,
  baseline: "await async fn (bare)",
  contenders: [
    { name: "await async fn (bare)", library: "javascript", run: promiseLoop(asyncOp) },
    {
      name: "cockatiel circuitBreaker execute",
      library: cockatiel,
      run: promiseLoop((i) => cockatielPlain.execute(() => asyncOp(i)))
    },
    { name: "opossum fire", library: opossum, run: promiseLoop((i) => opossumPlain.fire(i)) }
  ]
}

// ---------------------------------------------------------------------------
// rejected: an open breaker failing a call fast
// ---------------------------------------------------------------------------

const oursForcedOpen = makeOurs({ initialState: "ForcedOpen" })
const oursTripped = makeOurs({ consecutiveFailures: 1, openDuration: `${openMillis} millis` })
const effectTripped = makeEffect(1)
const cockatielTripped = circuitBreaker(handleAll, {
  halfOpenAfter: openMillis,
  breaker: new ConsecutiveBreaker(1)
})
const opossumOpened = makeOpossum()

export const circuitBreakerRejected: Suite = {
  id: "circuit-breaker-rejected",
  title: "Circuit breaker: rejected call",
  description:
    "Total time per call rejected by an open breaker, the wrapped operation never running. effect-resilience " +
    'is measured forced open (`initialState: "ForcedOpen"`) and tripped open (one failure with ' +
    "`consecutiveFailures: 1`); Effect's `effect/persistence` breaker and cockatiel are tripped open by one " +
    "failure; opossum is opened with `breaker.open()`. Effect breakers fail the effect with a typed error " +
    "(collected as an `Exit`); the promise breakers reject (cockatiel with `BrokenCircuitError`, opossum with " +
    "an `EOPENBREAKER` error), caught by the loop. The open duration outlasts the run. No baseline: the " +
    "Effect and promise drivers differ, so compare within each kind.",
  iterations: 100_000,
  contenders: [
    {
      name: "effect-resilience, ForcedOpen",
      library: ours,
      run: effectLoop((i) => oursForcedOpen.protect(Effect.sync(() => i))),
      setup: () => {
        const state = Effect.runSync(oursForcedOpen.state())
        check(state._tag === "ForcedOpen", `effect-resilience forced breaker is ${state._tag}`)
      }
    },
    {
      name: "effect-resilience, tripped Open",
      library: ours,
      run: effectLoop((i) => oursTripped.protect(Effect.sync(() => i))),
      setup: () => {
        Effect.runSync(Effect.exit(oursTripped.protect(Effect.fail("boom"))))
        const state = Effect.runSync(oursTripped.state())
        check(state._tag === "Open", `effect-resilience tripped breaker is ${state._tag}`)
      }
    },
    {
      name: "effect/persistence CircuitBreaker, tripped Open",
      library: effect,
      run: effectLoop((i) =>
        effectTripped.execute(
          Effect.sync(() => i),
          { key }
        )
      ),
      setup: () => {
        Effect.runSync(Effect.exit(effectTripped.execute(Effect.fail("boom"), { key })))
        const state = Effect.runSync(effectTripped.state(key))
        check(state._tag === "Open", `effect/persistence breaker is ${state._tag}`)
      }
    },
    {
      name: "cockatiel, tripped Open",
      library: cockatiel,
      run: promiseLoop((i) => cockatielTripped.execute(() => asyncOp(i))),
      setup: async () => {
        await cockatielTripped
          .execute(() => Promise.reject(new Error("boom")))
          .catch((error: unknown) => {
            check(!(error instanceof BrokenCircuitError), "cockatiel breaker was open before its trip")
          })
        check(
          cockatielTripped.state === CircuitState.Open,
          `cockatiel breaker is ${CircuitState[cockatielTripped.state]}`
        )
      }
    },
    {
      name: "opossum, open()",
      library: opossum,
      run: promiseLoop((i) => opossumOpened.fire(i)),
      setup: () => {
        opossumOpened.open()
        check(opossumOpened.opened, "opossum breaker did not open")
      }
    }
  ]
}

/** Every circuit-breaker suite, in the order docs/benchmarks.md lists them. */
export const circuitBreakerSuites: ReadonlyArray<Suite> = [
  circuitBreakerSuccessEffect,
  circuitBreakerSuccessPromise,
  circuitBreakerRejected
]
