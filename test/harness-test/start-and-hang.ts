// Starts a redis-server through the fixture, prints its pid and hangs until
// killed — used to prove the watchdog stops servers of a killed test process.
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Effect from "effect/Effect"

await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const node = yield* RedisServer.startServer()
      process.stdout.write(`pid=${node.pid}\n`)
      yield* Effect.never
    })
  )
)
