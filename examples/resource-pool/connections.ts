/**
 * A pool of database connections: borrowed per query, waited for in order,
 * checked before reuse, reported when held too long, renewed when too old.
 *
 * - `orders-db` keeps 1 connection open (`min`) and opens up to 2 (`max`);
 *   a query waits at most 500 ms for one (`acquireTimeout`);
 * - three queries at once: two run, the third waits for the first
 *   connection back (100 ms);
 * - a report holds a connection for 3 seconds: past `leakDetection` (2 s)
 *   the pool reports a suspected leak; meanwhile a query holds the other
 *   connection for a second, and a third query times out after 500 ms;
 * - the database drops connection #1 while it is idle: the next borrow
 *   checks it first (`validate`, as it was idle `validateAfterIdle` or
 *   longer), retires it and takes #2 (checked too);
 * - connections live 10 seconds (`maxLifetime`, no jitter here): #2 is
 *   closed at 10 s and #3 opened for the next query (and for `min`).
 *
 * Run it with `node examples/resource-pool/connections.ts` (after
 * `npm run build`); it takes about 12 seconds. The times below are those of
 * the root test's `TestClock`; a live run logs a few milliseconds more.
 */
import { ResourcePool } from "@effect-resilience/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

/** A fake connection: its number, and whether the database still has it. */
interface Connection {
  readonly id: number
  alive: boolean
}

/**
 * What happened, in order:
 * `["0ms open #1", "q1 on #1 at 0ms", "0ms open #2", "q2 on #2 at 0ms", "q3 on #1 at 100ms",
 *   "report on #1 at 200ms", "q4 on #2 at 200ms", "q5: AcquireTimeout after 500ms",
 *   "2200ms leak suspected: held 2s", "3200ms report done", "q6 on #2 at 4200ms", "4200ms close (Invalidated)",
 *   "10000ms open #3", "q7 on #3 at 10000ms", "10000ms close (MaxLifetime)",
 *   "stats: 3 opened, 2 closed, 1 invalidated, 1 timed out, 1 leak"]`.
 */
export const program: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const log: Array<string> = []
  const start = yield* Clock.currentTimeMillis
  const at = Effect.map(Clock.currentTimeMillis, (now) => `${now - start}ms`)
  const connections: Array<Connection> = []

  // the driver: open a connection, close it when its scope closes
  const connect = Effect.acquireRelease(
    Effect.gen(function* () {
      const connection: Connection = { id: connections.length + 1, alive: true }
      connections.push(connection)
      log.push(`${yield* at} open #${connection.id}`)
      return connection
    }),
    (connection) =>
      Effect.sync(() => {
        connection.alive = false // the driver's `close()`
      })
  )

  const pool = yield* ResourcePool.make({
    name: "orders-db", // the metrics' `resilience.name`
    min: 1,
    max: 2,
    acquireTimeout: "500 millis", // the longest a query waits for a connection
    maxLifetime: "10 seconds",
    maxLifetimeJitter: 0, // deterministic here; keep the default in production
    housekeepingInterval: "1 second",
    validate: (connection) => Effect.succeed(connection.alive), // a `SELECT 1`
    validateAfterIdle: "1 second",
    leakDetection: "2 seconds",
    acquire: connect
  })

  // what the pool reports: leaks and closed connections
  yield* pool.events.pipe(
    Stream.runForEach((event) =>
      Effect.flatMap(at, (now) =>
        Effect.sync(() => {
          if (event._tag === "LeakSuspected") log.push(`${now} leak suspected: held ${Duration.format(event.heldFor)}`)
          if (event._tag === "Released") log.push(`${now} close (${event.reason})`)
        })
      )
    ),
    Effect.forkScoped
  )
  yield* Effect.yieldNow

  const query = (label: string, millis: number) =>
    ResourcePool.use(pool, (connection) =>
      Effect.gen(function* () {
        log.push(`${label} on #${connection.id} at ${yield* at}`)
        yield* Effect.sleep(Duration.millis(millis))
      })
    ).pipe(
      Effect.catchTag("ResourcePoolError", ({ reason }) =>
        Effect.sync(() => {
          log.push(
            reason._tag === "AcquireTimeout"
              ? `${label}: AcquireTimeout after ${Duration.toMillis(reason.acquireTimeout)}ms`
              : `${label}: ${reason._tag}`
          )
        })
      )
    )

  // three queries at once over two connections
  yield* Effect.all([query("q1", 100), query("q2", 100), query("q3", 100)], { concurrency: "unbounded" })
  // a report holds a connection for 3 s; two queries arrive meanwhile
  const report = Effect.andThen(
    query("report", 3_000),
    Effect.flatMap(at, (now) => Effect.sync(() => log.push(`${now} report done`)))
  )
  yield* Effect.all([report, query("q4", 1_000), Effect.andThen(Effect.sleep("1 millis"), query("q5", 100))], {
    concurrency: "unbounded"
  })
  // the database drops connection #1 while it is idle
  for (const c of connections) if (c.id === 1) c.alive = false
  yield* Effect.sleep("1 second")
  yield* query("q6", 100)
  // connections live 10 seconds
  yield* Effect.sleep(Duration.millis(10_000 - 4_300))
  yield* query("q7", 100)

  const stats = yield* pool.stats
  return [
    ...log,
    `stats: ${stats.acquired} opened, ${stats.released} closed, ${stats.invalidated} invalidated, ` +
      `${stats.timeouts} timed out, ${stats.leaksSuspected} leak`
  ]
}).pipe(
  Effect.scoped, // the pool (its connections, fibers, events and metrics) lives as long as this scope
  Effect.orDie // constant options: an invalid one is a bug, not an expected failure
)

if (import.meta.main) Effect.runPromise(program).then(console.log)
