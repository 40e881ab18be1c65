/**
 * Resource pools: what borrowing an idle resource and giving it back costs,
 * and the waiting path when borrowers outnumber the resources; against
 * Effect 4's `Pool` (`Pool.use`, and `Pool.get` inside `Effect.scoped`, the
 * form its docs show).
 *
 * Every pool is built once, at module load, in a scope that stays open, and
 * filled before the run: every measured borrow finds its resources acquired.
 */
import { ResourcePool } from "@effect-resilience/core"
import * as Effect from "effect/Effect"
import * as Pool from "effect/Pool"
import * as Scope from "effect/Scope"
import { effectLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const ours = "effect-resilience"
const effect = "effect"

const scope = Effect.runSync(Scope.make())

interface Connection {
  readonly id: number
}

let opened = 0
const acquire = Effect.sync((): Connection => ({ id: ++opened }))

const makeOurs = (max: number): ResourcePool.ResourcePool<Connection> =>
  Effect.runSync(ResourcePool.make({ name: `bench-${max}`, min: max, max, acquire }).pipe(Scope.provide(scope)))

const makeEffectPool = (size: number): Pool.Pool<Connection> =>
  Effect.runSync(Pool.make({ acquire, size }).pipe(Scope.provide(scope)))

const check = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`resource pool bench setup: ${message}`)
}

/** Waits until the pool holds `size` idle resources (its `min`, acquired in the background). */
const filled = (pool: ResourcePool.ResourcePool<Connection>, size: number): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function* () {
      for (let i = 0; i < 1_000; i++) {
        const stats = yield* pool.stats
        if (stats.idle === size) return
        yield* Effect.yieldNow
      }
      check(false, `the pool did not fill to ${size}`)
    })
  )

// ---------------------------------------------------------------------------
// idle: one borrower, a resource always idle
// ---------------------------------------------------------------------------

const oursIdle = makeOurs(8)
const effectPoolIdle = makeEffectPool(8)
const work = (c: Connection) => Effect.sync(() => c.id)

export const resourcePoolIdle: Suite = {
  id: "resource-pool-idle",
  title: "Resource pool: borrow and return an idle resource",
  description:
    "One fiber borrows a resource of a pool of 8 (all acquired before the run), runs `Effect.sync` with it, and " +
    "gives it back, one call after another, so a resource is always idle. The baseline is the `Effect.sync` alone. " +
    "effect-resilience: `ResourcePool.use(pool, f)` (LIFO idle stack, lifetime check, no validation configured). " +
    "Effect 4: `Pool.use(pool, f)` and `Effect.scoped(Effect.flatMap(Pool.get(pool), f))` over `Pool.make({ size: 8 })`.",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience ResourcePool.use",
      library: ours,
      run: effectLoop(() => ResourcePool.use(oursIdle, work)),
      setup: () => filled(oursIdle, 8)
    },
    {
      name: "Pool.use (effect)",
      library: effect,
      run: effectLoop(() => Pool.use(effectPoolIdle, work))
    },
    {
      name: "Effect.scoped(Pool.get) (effect)",
      library: effect,
      run: effectLoop(() => Effect.scoped(Effect.flatMap(Pool.get(effectPoolIdle), work)))
    }
  ]
}

// ---------------------------------------------------------------------------
// contended: 64 borrowers over 8 resources
// ---------------------------------------------------------------------------

const callers = 64
const size = 8
const oursContended = makeOurs(size)
const effectPoolContended = makeEffectPool(size)
const yielded = (c: Connection) => Effect.as(Effect.yieldNow, c.id)

/** `n` borrows issued by `callers` concurrent fibers, each use yielding once (so borrowers outnumber resources). */
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

export const resourcePoolContended: Suite = {
  id: "resource-pool-contended",
  title: `Resource pool: ${callers} borrowers over ${size} resources`,
  description:
    `${callers} concurrent fibers borrow from a pool of ${size} resources, each use suspending once ` +
    "(`Effect.yieldNow`), so most borrowers wait their turn. The time is per borrow, for the whole batch; the first " +
    `row is the same \`Effect.forEach(calls, call, { concurrency: ${callers} })\` without a pool. effect-resilience: ` +
    "`ResourcePool.use` (FIFO waiters, an `acquireTimeout` timer per waiter); Effect 4: `Pool.use` and " +
    "`Effect.scoped(Pool.get)`.",
  iterations: 100_000,
  baseline: "Effect.forEach, no pool",
  contenders: [
    {
      name: "Effect.forEach, no pool",
      library: effect,
      run: effectCallers((i) => Effect.as(Effect.yieldNow, i))
    },
    {
      name: "effect-resilience ResourcePool.use",
      library: ours,
      run: effectCallers(() => ResourcePool.use(oursContended, yielded)),
      setup: () => filled(oursContended, size)
    },
    {
      name: "Pool.use (effect)",
      library: effect,
      run: effectCallers(() => Pool.use(effectPoolContended, yielded))
    },
    {
      name: "Effect.scoped(Pool.get) (effect)",
      library: effect,
      run: effectCallers(() => Effect.scoped(Effect.flatMap(Pool.get(effectPoolContended), yielded)))
    }
  ]
}

export const resourcePoolSuites: ReadonlyArray<Suite> = [resourcePoolIdle, resourcePoolContended]
