/**
 * Bulkheads: what isolating a call adds when a permit is free, what a call
 * costs when every permit is taken and there is no line, and the waiting
 * path when callers outnumber the permits; against Effect 4's `Semaphore`
 * (`withPermits`, `withPermitsIfAvailable`) and cockatiel's `bulkhead`; and
 * a call over Redis (`RedisBulkhead`) against the rate limiter's
 * `concurrency` limit over Redis, the same lease design.
 *
 * Effect contenders are compared with the Effect floor and promise ones with
 * the promise floor, as in the circuit-breaker suites. Every instance is
 * built once, at module load.
 */
import { Bulkhead, RateLimiter } from "@effect-resilience/core"
import { RedisBulkhead, RedisRateLimiter } from "@effect-resilience/redis"
import { bulkhead as cockatielBulkhead } from "cockatiel"
import * as Effect from "effect/Effect"
import * as Redis from "effect/persistence/Redis"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { effectLoop, promiseLoop } from "../drivers.ts"
import { packageVersion, type Suite } from "../harness.ts"
import { onRedis } from "../redis.ts"

const ours = "effect-resilience"
const effect = "effect"
const cockatiel = `cockatiel ${packageVersion("cockatiel")}`

// Every bulkhead lives in one scope that stays open for the process.
const scope = Effect.runSync(Scope.make())

const makeOurs = (input: Bulkhead.Input): Bulkhead.Bulkhead =>
  Effect.runSync(Bulkhead.make(input).pipe(Scope.provide(scope)))

const check = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`bulkhead bench setup: ${message}`)
}

/** The async operation the promise-based bulkhead wraps. */
const asyncOp = async (i: number): Promise<number> => i

// ---------------------------------------------------------------------------
// success: a permit is free, nobody waits
// ---------------------------------------------------------------------------

const oursPlain = makeOurs({ maxConcurrent: 10 })
const oursWithLine = makeOurs({ maxConcurrent: 10, maxQueue: 100 })
const oursKeyed = makeOurs({ maxConcurrent: 10 })
// adaptive limits: every call is timed (monotonic clock) and its sample updates the key's limit
const oursAimd = makeOurs({ maxConcurrent: 10, limit: { algorithm: "aimd", minLimit: 1, maxLimit: 10 } })
const oursGradient = makeOurs({ maxConcurrent: 10, limit: { algorithm: "gradient", minLimit: 1, maxLimit: 10 } })
const semaphore = Semaphore.makeUnsafe(10)
const withOnePermit = Semaphore.withPermits(semaphore, 1)
const withOnePermitIfAvailable = Semaphore.withPermitsIfAvailable(semaphore, 1)
const cockatielPlain = cockatielBulkhead(10)
const cockatielWithQueue = cockatielBulkhead(10, 100)

export const bulkheadSuccessEffect: Suite = {
  id: "bulkhead-success-effect",
  title: "Bulkhead: call with a free permit (Effect)",
  description:
    "A bulkhead of 10 permits around an effect that succeeds, one call after another in one fiber, so a permit " +
    "is always free. The baseline is `Effect.sync(() => i)` alone; the rows below wrap that same effect. " +
    "effect-resilience runs `Bulkhead.isolate(effect, bulkhead)` with no line (`maxQueue` 0, the default), with " +
    "a line of 100 configured, with a key (`{ key }`, one compartment per key) and with a weighted cost " +
    '(`{ key, cost: 2 }`), and with an adaptive limit (`limit: { algorithm: "aimd" }` and `"gradient"`, ' +
    "between 1 and 10 permits, starting at 10: each call is timed and feeds the limit). Effect 4's `Semaphore` " +
    "(10 permits) runs it through `withPermits(semaphore, 1)` " +
    "(waits when none is free) and `withPermitsIfAvailable(semaphore, 1)` (returns `None` when none is).",
  iterations: 200_000,
  baseline: "Effect.sync (bare)",
  contenders: [
    { name: "Effect.sync (bare)", library: effect, run: effectLoop((i) => Effect.sync(() => i)) },
    {
      name: "effect-resilience Bulkhead.isolate",
      library: ours,
      run: effectLoop((i) =>
        Bulkhead.isolate(
          Effect.sync(() => i),
          oursPlain
        )
      )
    },
    {
      name: "effect-resilience Bulkhead.isolate, maxQueue 100",
      library: ours,
      run: effectLoop((i) =>
        Bulkhead.isolate(
          Effect.sync(() => i),
          oursWithLine
        )
      )
    },
    {
      name: "effect-resilience Bulkhead.isolate { key }",
      library: ours,
      run: effectLoop((i) =>
        Bulkhead.isolate(
          Effect.sync(() => i),
          oursKeyed,
          { key: "tenant" }
        )
      )
    },
    {
      name: "effect-resilience Bulkhead.isolate { key, cost: 2 }",
      library: ours,
      run: effectLoop((i) =>
        Bulkhead.isolate(
          Effect.sync(() => i),
          oursKeyed,
          { key: "tenant", cost: 2 }
        )
      )
    },
    {
      name: "effect-resilience Bulkhead.isolate, adaptive aimd",
      library: ours,
      run: effectLoop((i) =>
        Bulkhead.isolate(
          Effect.sync(() => i),
          oursAimd
        )
      )
    },
    {
      name: "effect-resilience Bulkhead.isolate, adaptive gradient",
      library: ours,
      run: effectLoop((i) =>
        Bulkhead.isolate(
          Effect.sync(() => i),
          oursGradient
        )
      )
    },
    {
      name: "Semaphore.withPermits(semaphore, 1)",
      library: effect,
      run: effectLoop((i) => withOnePermit(Effect.sync(() => i)))
    },
    {
      name: "Semaphore.withPermitsIfAvailable(semaphore, 1)",
      library: effect,
      run: effectLoop((i) => withOnePermitIfAvailable(Effect.sync(() => i)))
    }
  ]
}

export const bulkheadSuccessPromise: Suite = {
  id: "bulkhead-success-promise",
  title: "Bulkhead: call with a free permit (promise)",
  description:
    "cockatiel's `bulkhead(10)` (no queue) and `bulkhead(10, 100)` around an `async` function that resolves, " +
    "awaited one call after another, so a slot is always free. The baseline awaits the function alone.",
  iterations: 200_000,
  baseline: "await async fn (bare)",
  contenders: [
    { name: "await async fn (bare)", library: "javascript", run: promiseLoop(asyncOp) },
    {
      name: "cockatiel bulkhead(10).execute",
      library: cockatiel,
      run: promiseLoop((i) => cockatielPlain.execute(() => asyncOp(i)))
    },
    {
      name: "cockatiel bulkhead(10, 100).execute",
      library: cockatiel,
      run: promiseLoop((i) => cockatielWithQueue.execute(() => asyncOp(i)))
    }
  ]
}

// ---------------------------------------------------------------------------
// rejected: every permit taken, no line
// ---------------------------------------------------------------------------

const oursFull = makeOurs({ maxConcurrent: 1 })
const semaphoreFull = Semaphore.makeUnsafe(1)
const semaphoreFullIfAvailable = Semaphore.withPermitsIfAvailable(semaphoreFull, 1)
const cockatielFull = cockatielBulkhead(1)

export const bulkheadRejected: Suite = {
  id: "bulkhead-rejected",
  title: "Bulkhead: call finding every permit taken",
  description:
    "A bulkhead of one permit held for the whole run by a call that never ends, and no line: every measured " +
    "call is turned away without running. effect-resilience fails it with a typed `BulkheadError` " +
    "(`BulkheadFull`, built without a stack trace; collected as an `Exit`); Effect 4's " +
    "`Semaphore.withPermitsIfAvailable` returns `None`; cockatiel's `bulkhead(1)` rejects with " +
    "`BulkheadRejectedError`, caught by the loop. No baseline: the Effect and promise drivers differ, so " +
    "compare within each kind.",
  iterations: 100_000,
  contenders: [
    {
      name: "effect-resilience Bulkhead.isolate (BulkheadFull)",
      library: ours,
      run: effectLoop((i) =>
        Bulkhead.isolate(
          Effect.sync(() => i),
          oursFull
        )
      ),
      setup: () => {
        Effect.runFork(Bulkhead.isolate(Effect.never, oursFull))
        const state = Effect.runSync(oursFull.state())
        check(state.active === 1, `effect-resilience bulkhead holds ${state.active} permits`)
      }
    },
    {
      name: "Semaphore.withPermitsIfAvailable (None)",
      library: effect,
      run: effectLoop((i) => semaphoreFullIfAvailable(Effect.sync(() => i))),
      setup: () => {
        Effect.runFork(Semaphore.withPermits(semaphoreFull, 1)(Effect.never))
        const free = Effect.runSync(Semaphore.withPermitsIfAvailable(semaphoreFull, 1)(Effect.void))
        check(free._tag === "None", "the semaphore still has a free permit")
      }
    },
    {
      name: "cockatiel bulkhead(1).execute (rejected)",
      library: cockatiel,
      run: promiseLoop((i) => cockatielFull.execute(() => asyncOp(i))),
      setup: () => {
        void cockatielFull.execute(() => new Promise<never>(() => {}))
        check(cockatielFull.executionSlots === 0, "cockatiel still has a free slot")
      }
    }
  ]
}

// ---------------------------------------------------------------------------
// queued: more callers than permits, each call suspending once
// ---------------------------------------------------------------------------

const callers = 64
const permits = 8
const oursQueued = makeOurs({ maxConcurrent: permits, maxQueue: 1_000, maxWait: "1 minute" })
const adaptiveQueued = (algorithm: "aimd" | "gradient") =>
  makeOurs({
    maxConcurrent: permits,
    maxQueue: 1_000,
    maxWait: "1 minute",
    limit: { algorithm, minLimit: permits, maxLimit: permits }
  })
const oursQueuedAimd = adaptiveQueued("aimd")
const oursQueuedGradient = adaptiveQueued("gradient")
const semaphoreQueued = Semaphore.makeUnsafe(permits)
const withQueuedPermit = Semaphore.withPermits(semaphoreQueued, 1)
const cockatielQueued = cockatielBulkhead(permits, 1_000)

/** `n` calls issued by `callers` concurrent fibers, each call yielding once (so callers outnumber permits). */
const effectCallers =
  (make: (i: number) => Effect.Effect<unknown, unknown>) =>
  (n: number): Promise<void> =>
    Effect.runPromise(
      Effect.forEach(
        Array.from({ length: n }, (_, i) => i),
        (i) => Effect.exit(make(i)),
        {
          concurrency: callers,
          discard: true
        }
      )
    )

/** `n` calls issued by `callers` concurrent async loops, each call awaiting once. */
const promiseCallers =
  (call: (i: number) => Promise<unknown>) =>
  async (n: number): Promise<void> => {
    let next = 0
    const worker = async () => {
      while (next < n) {
        const i = next++
        try {
          await call(i)
        } catch {
          // counted as done
        }
      }
    }
    await Promise.all(Array.from({ length: callers }, worker))
  }

const yielded = (i: number) => Effect.as(Effect.yieldNow, i)
const awaited = async (i: number): Promise<number> => {
  await Promise.resolve()
  return i
}

export const bulkheadQueued: Suite = {
  id: "bulkhead-queued",
  title: "Bulkhead: 64 callers over 8 permits",
  description:
    `${callers} concurrent callers issue the calls, each call suspending once (\`Effect.yieldNow\`, or one ` +
    `\`await\`), through a bulkhead of ${permits} permits with a line long enough for everyone: most calls wait ` +
    "their turn. The time is per call, for the whole batch. Effect contenders run as " +
    `\`Effect.forEach(calls, call, { concurrency: ${callers} })\`; the first row is that without a bulkhead. ` +
    `effect-resilience: \`Bulkhead.isolate\` with \`maxConcurrent: ${permits}, maxQueue: 1000\` (FIFO line, ` +
    `a \`maxWait\` timer per waiter), and the same with an adaptive limit (\`aimd\`, \`gradient\`) whose bounds ` +
    `are both ${permits}, so the same calls wait and only the timing and limit updates are added; Effect 4: ` +
    `\`Semaphore.withPermits(semaphore, 1)\` over ${permits} permits. ` +
    `Promise contenders run ${callers} async loops; cockatiel: \`bulkhead(${permits}, 1000)\`. Compare within ` +
    "each kind.",
  iterations: 100_000,
  baseline: "Effect.forEach, no bulkhead",
  contenders: [
    { name: "Effect.forEach, no bulkhead", library: effect, run: effectCallers(yielded) },
    {
      name: "effect-resilience Bulkhead.isolate",
      library: ours,
      run: effectCallers((i) => Bulkhead.isolate(yielded(i), oursQueued))
    },
    {
      name: "effect-resilience Bulkhead.isolate, adaptive aimd",
      library: ours,
      run: effectCallers((i) => Bulkhead.isolate(yielded(i), oursQueuedAimd))
    },
    {
      name: "effect-resilience Bulkhead.isolate, adaptive gradient",
      library: ours,
      run: effectCallers((i) => Bulkhead.isolate(yielded(i), oursQueuedGradient))
    },
    {
      name: "Semaphore.withPermits(semaphore, 1)",
      library: effect,
      run: effectCallers((i) => withQueuedPermit(yielded(i)))
    },
    { name: "async loops, no bulkhead", library: "javascript", run: promiseCallers(awaited) },
    {
      name: "cockatiel bulkhead(8, 1000).execute",
      library: cockatiel,
      run: promiseCallers((i) => cockatielQueued.execute(() => awaited(i)))
    }
  ]
}

// ---------------------------------------------------------------------------
// over Redis: permits shared across processes
// ---------------------------------------------------------------------------

const { ready: redisReady, setup: redisSetup } = onRedis(
  "bulkhead-redis",
  Effect.gen(function* () {
    const redis = yield* Redis.Redis
    const bulkhead = yield* Bulkhead.make({ name: "bench-bulkhead", maxConcurrent: 1_000 }).pipe(
      Effect.provide(RedisBulkhead.layerStore({ prefix: "bench:" }))
    )
    const limiter = yield* RateLimiter.make({
      name: "bench-concurrency",
      limits: [{ algorithm: "concurrency", limit: 1_000 }]
    }).pipe(Effect.provide(RedisRateLimiter.layerStore({ prefix: "bench:" })))
    return { ping: redis.send("PING"), bulkhead, limiter }
  })
)

export const bulkheadRedis: Suite = {
  id: "bulkhead-redis",
  title: "Bulkhead over Redis: call with a free permit",
  description:
    "One call at a time through a bulkhead whose permits live in a local `redis-server` (loopback, one ioredis " +
    "connection with `enableOfflineQueue: false`), so a permit is always free. The baseline is one `PING` round " +
    "trip. effect-resilience runs `Bulkhead.isolate(Effect.void, bulkhead)` over `RedisBulkhead.layerStore()`: " +
    "an acquire script, a renewal fiber forked and interrupted, and a release script (two round trips). The peer " +
    "is the rate limiter's own `concurrency` limit over `RedisRateLimiter.layerStore()` (`limit`: a decide and a " +
    "release, the same lease design).",
  iterations: 2_000,
  baseline: "one PING round trip",
  contenders: [
    { name: "one PING round trip", library: "ioredis", setup: redisSetup, run: effectLoop(() => redisReady().ping) },
    {
      name: "effect-resilience Bulkhead.isolate over Redis",
      library: ours,
      setup: redisSetup,
      run: effectLoop(() => Bulkhead.isolate(Effect.void, redisReady().bulkhead))
    },
    {
      name: "effect-resilience RateLimiter concurrency over Redis",
      library: ours,
      setup: redisSetup,
      run: effectLoop(() => RateLimiter.limit(Effect.void, redisReady().limiter, { key: "bench" }))
    }
  ]
}

export const bulkheadSuites: ReadonlyArray<Suite> = [
  bulkheadSuccessEffect,
  bulkheadSuccessPromise,
  bulkheadRejected,
  bulkheadQueued,
  bulkheadRedis
]
