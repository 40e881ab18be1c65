/**
 * Order statistics without sorting: the k-th smallest of a sample in
 * expected linear time (Hoare's selection with median-of-three pivots), on
 * a scratch array the caller keeps, so a percentile costs no allocation.
 *
 * @internal
 */

/**
 * The `k`-th smallest (0-based) of `source[0 .. n)`, using `scratch` (length
 * at least `n`) as working space; `source` is left as it was. `NaN` when
 * `n` is 0; `k` is clamped to `[0, n)`.
 */
export const kthSmallest = (source: Float64Array, n: number, k: number, scratch: Float64Array): number => {
  if (n <= 0) return Number.NaN
  for (let i = 0; i < n; i++) scratch[i] = source[i] ?? 0
  let lo = 0
  let hi = n - 1
  const target = Math.min(n - 1, Math.max(0, k))
  while (hi > lo) {
    // median of three as the pivot: sorted input (latencies often are) stays linear
    const mid = (lo + hi) >>> 1
    const a = scratch[lo] ?? 0
    const b = scratch[mid] ?? 0
    const c = scratch[hi] ?? 0
    const pivot = Math.max(Math.min(a, b), Math.min(Math.max(a, b), c))
    let i = lo
    let j = hi
    while (i <= j) {
      while ((scratch[i] ?? 0) < pivot) i++
      while ((scratch[j] ?? 0) > pivot) j--
      if (i <= j) {
        const t = scratch[i] ?? 0
        scratch[i] = scratch[j] ?? 0
        scratch[j] = t
        i++
        j--
      }
    }
    // [lo, j] <= pivot <= [i, hi], and everything strictly between equals the pivot
    if (target <= j) hi = j
    else if (target >= i) lo = i
    else return scratch[target] ?? 0
  }
  return scratch[target] ?? 0
}
