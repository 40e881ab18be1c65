/**
 * The deadline of the enclosing `Timeout.deadline`, as absolute clock
 * milliseconds (`Infinity` without one): read by attempt timeouts (an attempt
 * never outlives it) and by retries (a wait that ends past it stops retrying).
 *
 * @internal
 */
import * as Context from "effect/Context"

/** The absolute deadline in clock milliseconds. */
export const Deadline: Context.Reference<number> = Context.Reference<number>(
  "@effect-resilience/core/Timeout/Deadline",
  {
    defaultValue: () => Number.POSITIVE_INFINITY
  }
)
