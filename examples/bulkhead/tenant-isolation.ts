/**
 * Tenant isolation: one bulkhead, one compartment per tenant, so a tenant
 * that floods a slow report service cannot take the capacity the others need.
 *
 * - each tenant may run 2 report calls at once (`maxConcurrent`), and keep 2
 *   more waiting (`maxQueue`) for at most 300 ms (`maxWait`);
 * - "noisy" fires six reports at once: two run, two wait their turn (FIFO),
 *   and the last two are rejected at once with `BulkheadFull`;
 * - "quiet" is unaffected: its report runs at once, and its export (a
 *   weighted call, `cost: 2`, both of its permits) waits for the report;
 * - "stuck" calls a report that hangs for a second: its third call waits
 *   300 ms and is rejected with `BulkheadTimeout`.
 *
 * Run it with `node examples/bulkhead/tenant-isolation.ts` (after
 * `npm run build`); it takes about a second. The times below are those of the
 * root test's `TestClock`; a live run logs a few milliseconds more.
 */
import { Bulkhead } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** One incoming call: the tenant, its label, how long the report takes, and its cost in permits. */
interface Call {
  readonly tenant: string
  readonly label: string
  readonly millis: number
  readonly cost?: number
}

const calls: ReadonlyArray<Call> = [
  ...[1, 2, 3, 4, 5, 6].map((n) => ({ tenant: "noisy", label: `report #${n}`, millis: 200 })),
  { tenant: "quiet", label: "report", millis: 200 },
  { tenant: "quiet", label: "export", millis: 200, cost: 2 },
  ...[1, 2, 3].map((n) => ({ tenant: "stuck", label: `report #${n}`, millis: 1_000 }))
]

/**
 * What happened to each call, in the order they were made:
 * `["noisy report #1: ran 0-200ms", "noisy report #2: ran 0-200ms",
 *   "noisy report #3: ran 200-400ms", "noisy report #4: ran 200-400ms",
 *   "noisy report #5: BulkheadFull (2 running, 2 waiting)", "noisy report #6: BulkheadFull (2 running, 2 waiting)",
 *   "quiet report: ran 0-200ms", "quiet export: ran 200-400ms",
 *   "stuck report #1: ran 0-1000ms", "stuck report #2: ran 0-1000ms",
 *   "stuck report #3: BulkheadTimeout after 300ms", "stats: 8 admitted, 3 rejected, 0 active"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const reports = yield* Bulkhead.make({
    name: "reports", // the metrics' `resilience.name`
    maxConcurrent: 2, // per tenant
    maxQueue: 2, // waiting per tenant; more are rejected at once
    maxWait: "300 millis" // the longest a call waits for its turn
  })
  const start = yield* Clock.currentTimeMillis
  const elapsed = Effect.map(Clock.currentTimeMillis, (now) => now - start)

  // the report service: slow, and it has no protection of its own
  const runReport = (call: Call) =>
    Effect.gen(function* () {
      const from = yield* elapsed
      yield* Effect.sleep(Duration.millis(call.millis))
      return `ran ${from}-${yield* elapsed}ms`
    })

  const handle = (call: Call) =>
    runReport(call).pipe(
      // one compartment per tenant; a weighted call takes `cost` permits
      Bulkhead.isolate(reports, { key: call.tenant, cost: call.cost }),
      Effect.catchTag("BulkheadError", ({ reason }) =>
        reason._tag === "BulkheadFull"
          ? Effect.succeed(`BulkheadFull (${reason.active} running, ${reason.queued} waiting)`)
          : reason._tag === "BulkheadTimeout"
            ? Effect.succeed(`BulkheadTimeout after ${Duration.toMillis(reason.maxWait)}ms`)
            : Effect.succeed(reason._tag)
      ),
      Effect.map((outcome) => `${call.tenant} ${call.label}: ${outcome}`)
    )

  // every call at once, as concurrent requests would arrive
  const outcomes = yield* Effect.forEach(calls, handle, { concurrency: "unbounded" })
  const stats = yield* reports.stats
  return [...outcomes, `stats: ${stats.admitted} admitted, ${stats.rejected} rejected, ${stats.active} active`]
}).pipe(
  Effect.scoped, // the bulkhead (its sweep fiber, events and metrics) lives as long as this scope
  Effect.orDie // constant options: an invalid one is a bug, not an expected failure
)

if (import.meta.main) Effect.runPromise(program).then(console.log)
