/**
 * The floor: what running an operation costs before any pattern is added.
 * Every later suite reports "ns added over" one of these.
 */
import * as Effect from "effect/Effect"
import { effectLoop, promiseLoop, syncLoop } from "../drivers.ts"
import type { Suite } from "../harness.ts"

const effectVersion = "effect"

export const floor: Suite = {
  id: "floor",
  title: "Floor: the bare operation",
  description:
    "The cost of the operations every pattern wraps, issued by the same drivers the pattern suites use: " +
    "`Effect.succeed` and `Effect.promise` run in one fiber (one `runPromise` per batch), an `async` " +
    "function awaited in a loop, and a plain synchronous call for reference.",
  iterations: 200_000,
  contenders: [
    { name: "sync function call", library: "javascript", run: syncLoop((i) => i + 1) },
    { name: "Effect.succeed", library: effectVersion, run: effectLoop((i) => Effect.succeed(i)) },
    {
      name: "Effect.promise(() => Promise.resolve())",
      library: effectVersion,
      run: effectLoop((i) => Effect.promise(() => Promise.resolve(i)))
    },
    { name: "await Promise.resolve()", library: "javascript", run: promiseLoop(async (i) => i) }
  ]
}
