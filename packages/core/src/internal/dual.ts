/**
 * `dual` for the combinators told apart by their first argument (an effect,
 * a client, a balancer), without the `arguments` object `Function.dual`'s
 * predicate form reads: that form materialises `arguments` on every call and
 * spreads it into the data-last closure, about 250 ns per data-last call here
 * (`effect.pipe(CircuitBreaker.protect(breaker))` cost twice the breaker
 * itself). Bodies take at most three parameters (the data and two more).
 *
 * Typed as `Function.dual`: the two call signatures come from the caller's
 * annotation (a type parameter left to its `any` bound takes it).
 *
 * @internal
 */
export const dualBy = <
  // biome-ignore lint/suspicious/noExplicitAny: as Function.dual, so the annotation of the export gives both forms
  DataLast extends (...args: Array<any>) => any,
  // biome-ignore lint/suspicious/noExplicitAny: as Function.dual
  DataFirst extends (...args: Array<any>) => any
>(
  isDataFirst: (first: unknown) => boolean,
  body: DataFirst
): DataLast & DataFirst => {
  const dual = (a: unknown, b: unknown, c: unknown): unknown =>
    isDataFirst(a) ? body(a, b, c) : (self: unknown) => body(self, a, b)
  return dual as DataLast & DataFirst
}
