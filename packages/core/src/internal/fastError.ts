/**
 * Builds an instance of an error class without running its constructor.
 *
 * A `Schema.TaggedError` constructor parses its fields and captures a stack
 * trace: about 7 µs here, most of a rejected call's cost. A rejection is a
 * hot path (an open circuit rejects at the rate calls arrive) and its stack
 * says nothing a caller can act on, so rejections are built from the class's
 * prototype with their fields assigned directly: the result is
 * `instanceof` the class, has its `_tag`, fields and `message` getter, and
 * no captured stack (its `stack` is the name and message).
 *
 * Use only with fields already known to be valid.
 *
 * @internal
 */
export const construct = <T extends object>(
  ctor: abstract new (...args: never) => T,
  fields: { readonly [K in keyof T]?: T[K] }
): T => {
  const instance: T = Object.create(ctor.prototype)
  Object.assign(instance, fields)
  return instance
}
