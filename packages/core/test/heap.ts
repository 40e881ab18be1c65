/**
 * Measuring the heap for the memory-bound tests (a million distinct keys
 * through a keyed pattern must leave the heap flat).
 */
import * as v8 from "node:v8"
import * as vm from "node:vm"

/** A full collection (`gc` exposed at run time, as in `CircuitBreakerStore.test.ts`), then the heap in use. */
export const heapAfterGc = (): number => {
  v8.setFlagsFromString("--expose-gc")
  const gc: unknown = vm.runInNewContext("gc")
  if (typeof gc === "function") {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed
}
