/**
 * Validation of every pattern's options, with one error that lists every bad
 * field and its value.
 *
 * Each pattern defines its options once, as a `Schema.Struct` whose fields
 * carry `description` and `default` annotations. That schema is the source of
 * the TypeScript type, of the rules (ranges, integers), of `layerConfig` (Effect
 * `Config` derives the string encoding for environment variables) and of the
 * generated Defaults tables in the docs. Rules that relate two fields
 * (`minimumCalls <= slidingWindowSize`) are plain functions run next to it.
 *
 * **Details**
 *
 * - Programmatic options accept any `Duration.Input` (`"30 seconds"`, `5000`,
 *   `Duration.seconds(30)`); they are normalized first, then checked against
 *   the schema's type side.
 * - Bad input never throws: it fails with {@link InvalidOptions}, whose
 *   `issues` name each field, the value given and what was expected (Polly's
 *   aggregated message).
 *
 * **Example** (Reading every problem at once)
 *
 * ```ts import.meta.vitest
 * import { CircuitBreaker, Options } from "@effect-resilience/core"
 * import { Effect } from "effect"
 *
 * const error = await Effect.runPromise(
 *   Effect.flip(CircuitBreaker.validateOptions({ failureRateThreshold: 1.5, slidingWindowSize: 0 }))
 * )
 * error instanceof Options.InvalidOptions
 * // => true
 * error.issues.map((issue) => issue.path)
 * // => ["failureRateThreshold", "slidingWindowSize"]
 * ```
 *
 * @stability experimental
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as SchemaIssue from "effect/SchemaIssue"
import * as Struct from "effect/Struct"

/**
 * One bad field: where it is, what was given, what was expected.
 *
 * @category models
 * @since 0.1.0
 */
export class Issue extends Schema.Class<Issue>("@effect-resilience/core/Options/Issue")({
  /** The field's path, dot-separated: `halfOpen.permittedCalls`. */
  path: Schema.String,
  /** The value given, rendered for humans (`1.5`, `"abc"`, `undefined`). */
  value: Schema.String,
  /** What was expected. */
  message: Schema.String
}) {}

/**
 * Options that failed validation, with every problem listed.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>(
  "@effect-resilience/core/Options/InvalidOptions"
)("InvalidOptions", {
  /** The pattern whose options were rejected: `CircuitBreaker`, `Retry`, … */
  pattern: Schema.String,
  issues: Schema.Array(Issue)
}) {
  /**
   * One line per issue: `CircuitBreaker options are invalid: failureRateThreshold = 1.5: Expected …`.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `${this.pattern} options are invalid: ${this.issues
      .map((issue) => `${issue.path} = ${issue.value}: ${issue.message}`)
      .join("; ")}`
  }
}

/**
 * Renders any value for an issue: strings quoted, durations formatted.
 *
 * @category rendering
 * @since 0.1.0
 */
export const renderValue = (value: unknown): string => {
  if (value === undefined) return "undefined"
  if (Duration.isDuration(value)) return Duration.format(value)
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let current: unknown = input
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined
    current = (current as Record<PropertyKey, unknown>)[key]
  }
  return current
}

/**
 * A cross-field rule over the (normalized, not yet validated) input: returns
 * the issues it finds. Rules run even when fields fail their own checks, so
 * one error lists everything; a rule skips fields that are not valid values
 * themselves (those already have an issue).
 *
 * @category models
 * @since 0.1.0
 */
export type Rule = (
  options: Readonly<Record<string, unknown>>
) => ReadonlyArray<{ readonly path: string; readonly message: string }>

/**
 * A {@link Rule}: the duration field `field` (at the top level of the
 * options), when given, is greater than zero.
 *
 * **When to use**
 *
 * For an interval, a window or a wait that means nothing at zero:
 * {@link normalizeDurations} accepts any non-negative duration, so zero
 * passes the schema and needs this rule.
 *
 * **Details**
 *
 * - The issue reads `Expected a duration greater than zero`, the same in
 *   every pattern.
 * - A field left out, or one that is not a duration (it has an issue of its
 *   own already), passes.
 *
 * **Example** (A zero interval)
 *
 * ```ts import.meta.vitest
 * import { Options } from "@effect-resilience/core"
 * import { Effect, Schema } from "effect"
 *
 * const PollerOptions = Schema.Struct({ interval: Schema.optionalKey(Schema.DurationFromString) })
 * const { issues, normalized } = Options.normalizeDurations({ interval: 0 }, ["interval"])
 * const error = await Effect.runPromise(
 *   Effect.flip(
 *     Options.validate("Poller", PollerOptions, normalized, [Options.positiveDuration("interval")], issues)
 *   )
 * )
 * error.message
 * // => "Poller options are invalid: interval = 0: Expected a duration greater than zero"
 * ```
 *
 * @see {@link validate}
 * @category validation
 * @since 0.1.0
 */
export const positiveDuration =
  (field: string): Rule =>
  (options) => {
    const value = options[field]
    return Duration.isDuration(value) && Duration.toMillis(value) <= 0
      ? [{ path: field, message: "Expected a duration greater than zero" }]
      : []
  }

/**
 * Normalizes the named `Duration.Input` fields of `input` to `Duration`s,
 * collecting an issue for each one that is not a duration. A field given as
 * `undefined` is left out: options are written `x?: T | undefined`, and an
 * explicit `undefined` means the default.
 *
 * @category validation
 * @since 0.1.0
 */
export const normalizeDurations = (
  input: Readonly<Record<string, unknown>>,
  fields: ReadonlyArray<string>
): { readonly normalized: Record<string, unknown>; readonly issues: ReadonlyArray<Issue> } => {
  const normalized: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) if (value !== undefined) normalized[key] = value
  const issues: Array<Issue> = []
  for (const field of fields) {
    const value = input[field]
    if (value === undefined) continue
    const duration = Duration.isDuration(value) ? Option.some(value) : Duration.fromInput(value as Duration.Input)
    if (Option.isSome(duration) && Duration.toMillis(duration.value) >= 0) {
      normalized[field] = duration.value
    } else {
      issues.push(new Issue({ path: field, value: renderValue(value), message: "Expected a non-negative duration" }))
    }
  }
  return { normalized, issues }
}

/**
 * Validates options against the type side of their schema and the
 * cross-field rules, collecting every issue. Succeeds with the typed options.
 *
 * @category validation
 * @since 0.1.0
 */
export const validate = <S extends Schema.Top & Schema.ConstraintDecoder<unknown>>(
  pattern: string,
  schema: S,
  input: Readonly<Record<string, unknown>>,
  rules: ReadonlyArray<Rule> = [],
  preIssues: ReadonlyArray<Issue> = []
): Effect.Effect<S["Type"], InvalidOptions> => {
  const issues: Array<Issue> = [...preIssues]
  const skip = new Set(preIssues.map((issue) => issue.path))
  const decoded = Schema.decodeUnknownResult(Schema.toType(schema), { errors: "all" })(input)
  if (Result.isFailure(decoded)) collectIssues(decoded.failure.issue, input, skip, issues)
  for (const rule of rules) {
    for (const found of rule(input)) {
      if (skip.has(found.path)) continue
      skip.add(found.path)
      issues.push(
        new Issue({
          path: found.path,
          value: renderValue(valueAt(input, found.path.split("."))),
          message: found.message
        })
      )
    }
  }
  if (issues.length > 0) return Effect.fail(new InvalidOptions({ pattern, issues }))
  return Result.isSuccess(decoded)
    ? Effect.succeed(decoded.success)
    : Effect.fail(new InvalidOptions({ pattern, issues }))
}

/** Adds an `Issue` per field a schema issue names (one per field), with the value found in `input`. */
const collectIssues = (found: SchemaIssue.Issue, input: unknown, skip: Set<string>, into: Array<Issue>): void => {
  for (const issue of SchemaIssue.makeFormatterStandardSchemaV1()(found).issues) {
    const path = (issue.path ?? []).map((segment) =>
      typeof segment === "object" && segment !== null && "key" in segment ? segment.key : segment
    )
    const name = path.map(String).join(".")
    if (skip.has(name)) continue
    skip.add(name)
    into.push(new Issue({ path: name, value: renderValue(valueAt(input, path)), message: issue.message }))
  }
}

/**
 * The options {@link withDefaults} resolves: each key of the defaults `D`,
 * with the type of the input's field (without `undefined`) or of its default.
 *
 * @category options
 * @since 0.1.0
 */
export type WithDefaults<I, D> = {
  readonly [K in keyof D]: K extends keyof I ? Exclude<I[K], undefined> | D[K] : D[K]
}

/**
 * Resolves options: every field of `defaults` takes the value `input` gives
 * it, or its default when `input` leaves it out or gives `undefined`.
 *
 * **When to use**
 *
 * After {@link validate}, to apply the defaults of the fields that resolve
 * with a plain `??`. Write the others next to it: durations converted to
 * milliseconds, values derived from other fields, nested options.
 *
 * **Details**
 *
 * - Only the keys of `defaults` are read and returned; other fields of
 *   `input` are left out.
 * - A field's type is the input's (without `undefined`) joined with the
 *   default's: a default written `as const` (`"default"`) still resolves to
 *   `string`. Each default must be a value of its field's type, and each key
 *   of `defaults` a field of `input`.
 * - `null` also takes the default, as `??` does.
 *
 * **Example** (An option given as `undefined` means its default)
 *
 * ```ts import.meta.vitest
 * import { Options } from "@effect-resilience/core"
 *
 * const defaults = { name: "default", maxKeys: 10_000, enabled: true } as const
 * const input: {
 *   readonly name?: string | undefined
 *   readonly maxKeys?: number | undefined
 *   readonly enabled?: boolean | undefined
 * } = { name: undefined, maxKeys: 5 }
 * Options.withDefaults(input, defaults)
 * // => { name: "default", maxKeys: 5, enabled: true }
 * ```
 *
 * @see {@link validate}
 * @category options
 * @since 0.1.0
 */
export const withDefaults = <
  I extends object,
  D extends { readonly [K in keyof D]: K extends keyof I ? Exclude<I[K], undefined> : never }
>(
  input: I,
  defaults: D
): WithDefaults<I, D> => {
  // read as `o.field` reads: own or inherited, getters included
  const given = input as Readonly<Record<string, unknown>>
  const resolved: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(defaults)) resolved[key] = given[key] ?? value
  // the loop sets every key of `defaults`: TypeScript cannot follow a mapped type key by key
  return resolved as WithDefaults<I, D>
}

/**
 * Reads a pattern's options from `Config` under `path` (environment variables
 * `path_field=value` with the default provider; nested fields and arrays as
 * the provider spells them), every option optional.
 *
 * A config with bad values fails with one `InvalidOptions` naming each bad
 * field and the text it held, not with a `ConfigError` for the first: each
 * field is read again on its own to find them all. A `ConfigError` remains
 * for a provider that cannot be read. Cross-field rules run when the options
 * are used (`make`).
 *
 * @category validation
 * @since 0.1.0
 */
export const fromConfig = <
  Fields extends {
    readonly [x: string]: Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }
  },
  T
>(
  pattern: string,
  schema: Schema.Struct<Fields> & Schema.ConstraintCodec<T, unknown>,
  path: string
): Effect.Effect<T, InvalidOptions | Config.ConfigError> =>
  Effect.flatMap(
    Effect.catchTag(
      Config.option(Config.schema(schema, path)),
      "ConfigError",
      (error): Effect.Effect<never, InvalidOptions | Config.ConfigError> =>
        error.cause._tag === "SourceError"
          ? Effect.fail(error)
          : Effect.flatMap(
              Effect.forEach(Object.keys(schema.fields), (field) =>
                fieldIssues(schema.mapFields(Struct.pick([field])), path)
              ),
              (found): Effect.Effect<never, InvalidOptions | Config.ConfigError> => {
                const issues = found.flat()
                return issues.length === 0 ? Effect.fail(error) : Effect.fail(new InvalidOptions({ pattern, issues }))
              }
            )
    ),
    // nothing under `path`: every option takes its default
    (found) => (Option.isSome(found) ? Effect.succeed(found.value) : validate(pattern, schema, {}))
  )

/** The issues of one field (a struct of it alone) read from `Config`, each with the text the provider held. */
const fieldIssues = <T>(
  single: Schema.ConstraintCodec<T, unknown>,
  path: string
): Effect.Effect<ReadonlyArray<Issue>, Config.ConfigError> =>
  Effect.matchEffect(Config.schema(single, path), {
    onSuccess: () => Effect.succeed([]),
    onFailure: (error) => {
      if (error.cause._tag === "SourceError") return Effect.fail(error)
      const found = tidyUnionIssues(
        SchemaIssue.makeFormatterStandardSchemaV1()(error.cause.issue).issues.map((issue) => {
          // the pointer starts at `path`; the field's own path follows it
          const at = (issue.path ?? []).map((segment) =>
            typeof segment === "object" && segment !== null && "key" in segment ? segment.key : segment
          )
          return { at: String(at[0]) === path ? at.slice(1) : at, message: issue.message }
        })
      )
      return Effect.forEach(found, ({ at, message }) =>
        Effect.map(
          Effect.orElseSucceed(
            Config.schema(Schema.String, [
              path,
              ...at.map((segment) => (typeof segment === "number" ? segment : String(segment)))
            ]),
            () => undefined
          ),
          (text) => new Issue({ path: at.map(String).join("."), value: renderValue(text), message })
        )
      )
    }
  })

/**
 * A union (a rate limit's `algorithm`) reports every member it tried. Keeps
 * what helps: a member's real issue over the other members' "Expected
 * <literal>" mismatches of the same element, and those mismatches, when
 * nothing else is wrong there, as one issue listing the literals.
 */
const tidyUnionIssues = (
  issues: ReadonlyArray<{ readonly at: ReadonlyArray<PropertyKey>; readonly message: string }>
): ReadonlyArray<{ readonly at: ReadonlyArray<PropertyKey>; readonly message: string }> => {
  const literal = /^Expected ("[^"]*")$/
  const key = (at: ReadonlyArray<PropertyKey>) => at.map(String).join(".")
  const parent = (at: ReadonlyArray<PropertyKey>) => key(at.slice(0, -1))
  const realParents = new Set(issues.filter((i) => !literal.test(i.message)).map((i) => parent(i.at)))
  const out: Array<{ readonly at: ReadonlyArray<PropertyKey>; readonly message: string }> = []
  const merged = new Map<string, { readonly at: ReadonlyArray<PropertyKey>; readonly literals: Array<string> }>()
  for (const issue of issues) {
    const match = literal.exec(issue.message)
    if (match === null) {
      if (!out.some((o) => key(o.at) === key(issue.at))) out.push(issue)
      continue
    }
    if (realParents.has(parent(issue.at))) continue
    const entry = merged.get(key(issue.at)) ?? { at: issue.at, literals: [] }
    entry.literals.push(match[1] ?? "")
    merged.set(key(issue.at), entry)
  }
  for (const { at, literals } of merged.values()) out.push({ at, message: `Expected ${literals.join(" | ")}` })
  return out
}

/**
 * One row of a generated Defaults table.
 *
 * @category models
 * @since 0.1.0
 */
export interface FieldDoc {
  readonly name: string
  readonly type: string
  readonly default: string
  readonly description: string
}

const typeName = (ast: SchemaAST.AST): string => {
  const described = SchemaAST.resolve(ast)
  const identifier = described?.identifier
  if (typeof identifier === "string") return identifier
  switch (ast._tag) {
    case "String":
      return "string"
    case "Number":
      return "number"
    case "Boolean":
      return "boolean"
    case "Literal":
      return JSON.stringify(ast.literal)
    case "Union":
      return ast.types.map(typeName).join(" \\| ")
    case "Objects":
      return "object"
    case "Arrays":
      return ast.rest.length > 0 ? `Array<${ast.rest.map(typeName).join(" \\| ")}>` : "tuple"
    case "Declaration":
      return "Duration"
    default:
      return ast._tag
  }
}

/**
 * Reads the `description` and `default` annotations of a struct schema's
 * fields, for the generated Defaults tables.
 *
 * @category rendering
 * @since 0.1.0
 */
export const fieldDocs = (schema: Schema.Struct<Schema.Struct.Fields>): ReadonlyArray<FieldDoc> =>
  Object.entries(schema.fields).map(([name, field]) => {
    const ast = Schema.toType(field).ast
    const annotations = SchemaAST.resolve(ast) ?? {}
    const defaultValue = (annotations as { readonly default?: unknown }).default
    return {
      name,
      type: typeName(ast),
      default: defaultValue === undefined ? "—" : renderValue(defaultValue),
      description: typeof annotations.description === "string" ? annotations.description : ""
    }
  })

/**
 * Renders a Defaults table in Markdown.
 *
 * @category rendering
 * @since 0.1.0
 */
export const defaultsTable = (docs: ReadonlyArray<FieldDoc>): string =>
  [
    "| option | type | default | description |",
    "|---|---|---|---|",
    ...docs.map((doc) => `| \`${doc.name}\` | ${doc.type} | ${doc.default} | ${doc.description} |`)
  ].join("\n")
