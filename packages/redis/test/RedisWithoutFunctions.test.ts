/**
 * The stores on a server without Redis functions (as before Redis 7): the
 * server here has FCALL and FUNCTION renamed away, so every call that tries
 * a function gets "unknown command" and the client runs the same code as a
 * script from then on. Both conformance suites run over it.
 */
import { assert, describe, it } from "@effect/vitest"
import { IoRedis, RedisCircuitBreaker, RedisRateLimiter } from "@effect-resilience/redis"
import * as RedisServer from "@effect-resilience/test-harness/RedisServer"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redis from "effect/persistence/Redis"
import { TestClock } from "effect/testing"
import { suite as circuitBreakerSuite } from "../../core/test/CircuitBreakerStoreSuite.ts"
import { suite as rateLimiterSuite } from "../../core/test/RateLimiterStoreSuite.ts"
import * as fixtures from "./fixtures.ts"

const withoutFunctions = fixtures.shared(
  Layer.unwrap(
    Effect.map(
      RedisServer.startServer([
        "--rename-command",
        "FCALL",
        "FCALL_OFF",
        "--rename-command",
        "FUNCTION",
        "FUNCTION_OFF"
      ]),
      (node) => IoRedis.layer({ host: node.host, port: node.port })
    )
  )
)

const wait = (duration: Duration.Input) =>
  Effect.andThen(TestClock.withLive(Effect.sleep(duration)), TestClock.adjust(duration))

describe("a server without functions", () => {
  it.effect("FCALL is unknown there, and the stores' scripts run as scripts", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const error = yield* Effect.flip(redis.send("FCALL", "anything", "0"))
      assert.match(String(error.cause), /unknown command/i)
    }).pipe(Effect.provide(withoutFunctions))
  )
})

circuitBreakerSuite("Redis without functions", RedisCircuitBreaker.layerStore().pipe(Layer.provide(withoutFunctions)), {
  adjust: (duration) => TestClock.withLive(Effect.sleep(duration)),
  openMillis: 150
})

rateLimiterSuite("Redis without functions", RedisRateLimiter.layerStore().pipe(Layer.provide(withoutFunctions)), {
  adjust: wait,
  windowMillis: 400,
  align: (windowMillis) =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const [seconds, micros] = yield* Effect.orDie(redis.send<ReadonlyArray<string>>("TIME"))
      const into = (Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)) % windowMillis
      if (into > windowMillis / 4) yield* wait(Duration.millis(windowMillis - into + 2))
    }).pipe(Effect.provide(withoutFunctions))
})
