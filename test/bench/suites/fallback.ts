/**
 * Fallbacks: what a fallback adds to a call that succeeds (the path nearly
 * every call takes), what answering a failed call costs, and request
 * coalescing under concurrent callers of one key; against Effect's own
 * `Effect.catch` / `Effect.orElseSucceed` / `Effect.catchCause` and
 * cockatiel's `fallback` policy.
 *
 * Effect contenders are compared with the Effect floor and promise ones with
 * the promise floor, as in the other suites. Every instance is built once,
 * at module load.
 */
import { Fallback } from "@effect-resilience/core"
import { fallback as cockatielFallback, handleAll } from "cockatiel"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { effectLoop, promiseLoop } from "../drivers.ts"
import { packageVersion, type Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"
const cockatiel = `cockatiel ${packageVersion("cockatiel")}`

// Every cache and coalescer lives in one scope that stays open for the process.
const scope = Effect.runSync(Scope.make())
const cache = Effect.runSync(Fallback.make({ name: "bench" }).pipe(Scope.provide(scope)))
const freshCache = Effect.runSync(
  Fallback.make({ name: "bench-fresh", ttl: "1 hour", maxStale: "1 hour" }).pipe(Scope.provide(scope))
)
const coalescer = Effect.runSync(Fallback.makeCoalescer({ name: "bench" }).pipe(Scope.provide(scope)))
const degradation = Effect.runSync(Fallback.makeDegradation({ name: "bench" }).pipe(Scope.provide(scope)))
/** Degraded for the whole run (by the failure suite's setup). */
const degradedSwitch = Effect.runSync(Fallback.makeDegradation({ name: "bench-degraded" }).pipe(Scope.provide(scope)))

const check = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`fallback bench setup: ${message}`)
}

const alternative = Effect.succeed(-1)
const alternativeLazy = () => alternative
/** Effect's own cheapest recovery, recovering every cause the way `orElse` does (interruptions aside). */
const catchAll = (cause: Cause.Cause<unknown>) => (Cause.hasInterrupts(cause) ? Exit.failCause(cause) : alternative)
const asyncOp = async (i: number): Promise<number> => i
const asyncFail = async (_i: number): Promise<number> => {
  throw new Error("down")
}
const cockatielDefault = cockatielFallback(handleAll, -1)

// ---------------------------------------------------------------------------
// success: the call succeeds, the fallback is never used
// ---------------------------------------------------------------------------

export const fallbackSuccessEffect: Suite = {
  id: "fallback-success-effect",
  title: "Fallback: successful call (Effect)",
  description:
    "An effect that succeeds, one call after another in one fiber, so no fallback ever runs. The baseline is " +
    "`Effect.sync(() => i)` alone; the rows below wrap that same effect. effect-resilience: `Fallback.orElse(effect, " +
    "() => alt)`, `orElseSucceed(effect, -1)`, a `chain` of two alternatives, `whenDegraded` on a switch in " +
    "normal mode, and `FallbackCache.orElseCached(effect, { key })` (each success stored in the cache: a clock read " +
    "and an LRU touch) and the same on a cache with a ttl answering from the cache without calling (a fresh read). " +
    "Effect 4: `Effect.catch(effect, () => alt)`, `Effect.orElseSucceed(effect, () => -1)` and " +
    "`Effect.catchCause` with a handler that leaves interruptions alone, the primitive `orElse` is built on.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience Fallback.orElse",
      library: ours,
      run: effectLoop((i) =>
        Fallback.orElse(
          Effect.sync(() => i),
          alternativeLazy
        )
      )
    },
    {
      name: "effect-resilience Fallback.orElseSucceed",
      library: ours,
      run: effectLoop((i) =>
        Fallback.orElseSucceed(
          Effect.sync(() => i),
          -1
        )
      )
    },
    {
      name: "effect-resilience Fallback.chain (2 alternatives)",
      library: ours,
      run: effectLoop((i) =>
        Fallback.chain(
          Effect.sync(() => i),
          [alternative, alternative]
        )
      )
    },
    {
      name: "effect-resilience Fallback.whenDegraded (normal mode)",
      library: ours,
      run: effectLoop((i) =>
        Fallback.whenDegraded(
          Effect.sync(() => i),
          degradation,
          alternativeLazy
        )
      )
    },
    {
      name: "effect-resilience cache.orElseCached (store per success)",
      library: ours,
      run: effectLoop((i) =>
        cache.orElseCached(
          Effect.sync(() => i),
          { key: "quote" }
        )
      )
    },
    {
      name: "effect-resilience cache.orElseCached, ttl (fresh read, no call)",
      library: ours,
      run: effectLoop((i) =>
        freshCache.orElseCached(
          Effect.sync(() => i),
          { key: "quote" }
        )
      ),
      setup: () => {
        Effect.runSync(freshCache.set("quote", 0))
        check(Effect.runSync(freshCache.orElseCached(Effect.succeed(1), { key: "quote" })) === 0, "no fresh value")
      }
    },
    {
      name: "Effect.catch",
      library: effect,
      run: effectLoop((i) =>
        Effect.catch(
          Effect.sync(() => i),
          alternativeLazy
        )
      )
    },
    {
      name: "Effect.orElseSucceed",
      library: effect,
      run: effectLoop((i) =>
        Effect.orElseSucceed(
          Effect.sync(() => i),
          () => -1
        )
      )
    },
    {
      name: "Effect.catchCause (interruptions left alone)",
      library: effect,
      run: effectLoop((i) =>
        Effect.catchCause(
          Effect.sync(() => i),
          catchAll
        )
      )
    }
  ]
}

export const fallbackSuccessPromise: Suite = {
  id: "fallback-success-promise",
  title: "Fallback: successful call (promise)",
  description:
    "cockatiel's `fallback(handleAll, -1)` around an `async` function that resolves, awaited one call after " +
    "another. The baseline awaits the function alone.",
  iterations: 200_000,
  baseline: "await async fn (bare)",
  contenders: [
    { name: "await async fn (bare)", library: "javascript", run: promiseLoop(asyncOp) },
    {
      name: "cockatiel fallback(handleAll, -1).execute",
      library: cockatiel,
      run: promiseLoop((i) => cockatielDefault.execute(() => asyncOp(i)))
    }
  ]
}

// ---------------------------------------------------------------------------
// failure: the call fails, the fallback answers
// ---------------------------------------------------------------------------

const failing = Effect.fail("down")

export const fallbackFailure: Suite = {
  id: "fallback-failure",
  title: "Fallback: failed call answered by the fallback",
  description:
    'A call that fails every time, answered by the fallback. Effect contenders fail with `Effect.fail("down")` ' +
    "and answer `Effect.succeed(-1)`: effect-resilience's `orElse` and `orElseSucceed` (each counting the " +
    "fallback for its metric and checking for subscribers to its events), a `chain` whose first alternative " +
    "fails too, `orElseCached` answering a stale value from the cache (a clock read and a lookup), and " +
    "`whenDegraded` in degraded mode (the call not made); Effect's `Effect.catch` and `Effect.orElseSucceed`. " +
    "cockatiel's `fallback(handleAll, -1)` wraps an `async` function that throws. No baseline: the Effect and " +
    "promise drivers differ, so compare within each kind.",
  iterations: 100_000,
  contenders: [
    {
      name: "effect-resilience Fallback.orElse",
      library: ours,
      run: effectLoop(() => Fallback.orElse(failing, alternativeLazy))
    },
    {
      name: "effect-resilience Fallback.orElseSucceed",
      library: ours,
      run: effectLoop(() => Fallback.orElseSucceed(failing, -1))
    },
    {
      name: "effect-resilience Fallback.chain (second alternative answers)",
      library: ours,
      run: effectLoop(() => Fallback.chain(failing, [failing, alternative]))
    },
    {
      name: "effect-resilience cache.orElseCached (stale value)",
      library: ours,
      run: effectLoop(() => cache.orElseCached(failing, { key: "stale" })),
      setup: () => {
        Effect.runSync(cache.set("stale", -1))
        check(Effect.runSync(cache.orElseCached(failing, { key: "stale" })) === -1, "no stale value")
      }
    },
    {
      name: "effect-resilience Fallback.whenDegraded (degraded mode)",
      library: ours,
      run: effectLoop((i) =>
        Fallback.whenDegraded(
          Effect.sync(() => i),
          degradedSwitch,
          alternativeLazy
        )
      ),
      setup: () => {
        Effect.runSync(degradedSwitch.degrade("bench"))
        check(Effect.runSync(degradedSwitch.state)._tag === "Degraded", "the switch is not degraded")
      }
    },
    { name: "Effect.catch", library: effect, run: effectLoop(() => Effect.catch(failing, alternativeLazy)) },
    {
      name: "Effect.orElseSucceed",
      library: effect,
      run: effectLoop(() => Effect.orElseSucceed(failing, () => -1))
    },
    {
      name: "cockatiel fallback(handleAll, -1).execute (throws)",
      library: cockatiel,
      run: promiseLoop((i) => cockatielDefault.execute(() => asyncFail(i)))
    }
  ]
}

// ---------------------------------------------------------------------------
// coalescing: concurrent callers of one key
// ---------------------------------------------------------------------------

const callers = 64

/** `n` calls issued by `callers` concurrent fibers, each call suspending once. */
const effectCallers =
  (make: (i: number) => Effect.Effect<unknown, unknown>) =>
  (n: number): Promise<void> =>
    Effect.runPromise(
      Effect.forEach(
        Array.from({ length: n }, (_, i) => i),
        (i) => Effect.exit(make(i)),
        { concurrency: callers, discard: true }
      )
    )

const yielded = (i: number) => Effect.as(Effect.yieldNow, i)

export const fallbackCoalesce: Suite = {
  id: "fallback-coalesce",
  title: "Fallback: request coalescing, 64 callers of one key",
  description:
    `${callers} concurrent callers issue the calls, each call suspending once (\`Effect.yieldNow\`), all with one ` +
    `key. The time is per call, for the whole batch. Effect contenders run as ` +
    `\`Effect.forEach(calls, call, { concurrency: ${callers} })\`; the baseline is that without coalescing (every ` +
    "call runs). effect-resilience: `coalescer.coalesce(call, { key })`: the callers that arrive while an " +
    "execution is in flight share it (one fiber per execution, every caller waiting for its exit), and with " +
    "distinct keys (one per call: nothing to share, the cost of the bookkeeping and the execution's fiber).",
  iterations: 100_000,
  baseline: "Effect.forEach, no coalescing",
  contenders: [
    { name: "Effect.forEach, no coalescing", library: effect, run: effectCallers(yielded) },
    {
      name: "effect-resilience coalesce, one key",
      library: ours,
      run: effectCallers((i) => coalescer.coalesce(yielded(i), { key: "hot" }))
    },
    {
      name: "effect-resilience coalesce, distinct keys",
      library: ours,
      run: effectCallers((i) => coalescer.coalesce(yielded(i), { key: `key-${i}` }))
    }
  ]
}

export const fallbackSuites: ReadonlyArray<Suite> = [
  fallbackSuccessEffect,
  fallbackSuccessPromise,
  fallbackFailure,
  fallbackCoalesce
]
