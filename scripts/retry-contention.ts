/**
 * The contention experiment of the AWS Architecture Blog post "Exponential
 * Backoff And Jitter" (Marc Brooker, 2015), run on Effect's `TestClock` with
 * `Retry.retry` from `@effect-resilience/core`.
 *
 * `clients` clients each make one optimistic-concurrency write to one shared
 * in-memory record, all starting at time 0. An attempt reads the record's
 * version, works for `workMillis` (an `Effect.sleep` on the `TestClock`), then
 * commits only if the version is unchanged (compare-and-set); otherwise it
 * fails with `Conflict`, which the retry policy retries. Two attempts conflict
 * when one commits while the other is working, so the first attempt to commit
 * in a group of overlapping attempts wins and the others retry.
 *
 * Every client uses the same policy: `Retry.exponential({ base, cap, jitter })`
 * with `maxAttempts` high enough never to give up. The result counts the
 * attempts ("calls", the AWS post's "work") and the `TestClock` time at which
 * the last client's write committed ("completion time").
 *
 * The run is deterministic: time is the `TestClock`'s (a run takes no real
 * time beyond the computation), the jitter draws come from
 * `Random.withSeed(seed)`, and the `TestClock` wakes sleepers in time order,
 * registration order breaking ties.
 *
 * Used by `test/retry-contention.test.ts` (pins the results for one seed) and
 * `scripts/retry-contention-figure.ts` (draws `docs/patterns/retry-contention.svg`).
 */
import { Retry } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import { TestClock } from "effect/testing"

/** The jitter modes compared, in the order of the AWS post. */
export const jitters: ReadonlyArray<Jitter> = ["none", "equal", "full", "decorrelated"]

/** A jitter mode of `Retry.exponential`. */
export type Jitter = "none" | "full" | "equal" | "decorrelated"

/** One run of the experiment. */
export interface Config {
  /** Clients, each making one write. */
  readonly clients: number
  readonly jitter: Jitter
  /** The policy's `base`: the first retry's un-jittered delay. */
  readonly baseMillis: number
  /** The policy's `cap`: the longest delay. */
  readonly capMillis: number
  /** How long an attempt works between reading the version and committing. */
  readonly workMillis: number
  /** Seed of the random numbers the jitter draws. */
  readonly seed: string | number
}

/** The defaults: every `Config` field but `clients` and `jitter`. */
export const defaults: Omit<Config, "clients" | "jitter"> = {
  baseMillis: 10,
  capMillis: 1_000,
  workMillis: 1,
  seed: "retry-contention"
}

/** What one run measured. */
export interface Result {
  readonly clients: number
  readonly jitter: Jitter
  /** Attempts made by all clients together, first attempts included (the AWS post's "work"). */
  readonly calls: number
  /** Attempts that failed with `Conflict` (`calls - clients`). */
  readonly conflicts: number
  /** `TestClock` milliseconds from the start until the last client's write committed. */
  readonly completionMillis: number
  /** The policy's own totals (`Retry.Policy.stats`), which must agree with the counts above. */
  readonly stats: Retry.Stats
}

/** The record's version changed while the attempt worked: the write was not made. */
export class Conflict extends Data.TaggedError("Conflict")<{
  readonly expected: number
  readonly actual: number
}> {}

/**
 * High enough that no client ever gives up. A run is bounded by its horizon
 * instead: ten times the worst case, no jitter, where each client costs one
 * round of at most `cap` plus the work.
 */
export const maxAttempts: number = 1_000_000

/**
 * Runs the experiment once. The effect provides its own `TestClock` and
 * seeded `Random`, so it gives the same result under any runtime; it dies if
 * a client has not committed by the horizon (which would be a bug here).
 */
export const simulate = (input: Pick<Config, "clients" | "jitter"> & Partial<Config>): Effect.Effect<Result> => {
  const config: Config = { ...defaults, ...input }
  const record = { version: 0 }
  let calls = 0
  let completionMillis = 0
  const work = Duration.millis(config.workMillis)

  /** One attempt: read the version, work, compare-and-set. */
  const write: Effect.Effect<void, Conflict> = Effect.suspend(() => {
    calls++
    const expected = record.version
    return Effect.andThen(
      Effect.sleep(work),
      Effect.suspend(() => {
        if (record.version !== expected) return Effect.fail(new Conflict({ expected, actual: record.version }))
        record.version++
        return Effect.void
      })
    )
  })

  const policy = Retry.exponential({
    name: "retry-contention",
    base: Duration.millis(config.baseMillis),
    cap: Duration.millis(config.capMillis),
    jitter: config.jitter,
    maxAttempts
  })

  const client = write.pipe(
    Retry.retry(policy),
    Effect.andThen(Clock.currentTimeMillis),
    Effect.map((now) => {
      completionMillis = Math.max(completionMillis, now)
      return now
    })
  )

  const horizonMillis = (config.clients + 1) * (config.capMillis + config.workMillis) * 10

  return Effect.gen(function* () {
    const all = yield* Effect.forkChild(
      Effect.forEach(Array.from({ length: config.clients }), () => client, { concurrency: "unbounded", discard: true })
    )
    yield* TestClock.adjust(Duration.millis(horizonMillis))
    if (all.pollUnsafe() === undefined) {
      return yield* Effect.die(new Error(`retry-contention: not every client committed within ${horizonMillis} ms`))
    }
    yield* Effect.orDie(Fiber.join(all))
    const stats = yield* policy.stats
    return {
      clients: config.clients,
      jitter: config.jitter,
      calls,
      conflicts: calls - record.version,
      completionMillis,
      stats
    }
  }).pipe(Effect.provide(TestClock.layer()), Random.withSeed(config.seed))
}

/** Runs every jitter mode for every client count, one run at a time. */
export const sweep = (
  clientCounts: ReadonlyArray<number>,
  options: Partial<Omit<Config, "clients" | "jitter">> = {}
): Effect.Effect<ReadonlyArray<Result>> =>
  Effect.forEach(clientCounts, (clients) =>
    Effect.forEach(jitters, (jitter) => simulate({ ...options, clients, jitter }))
  ).pipe(Effect.map((rows) => rows.flat()))
