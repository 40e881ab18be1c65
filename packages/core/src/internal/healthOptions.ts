/**
 * The registry's options behind `Health.validateOptions`: the defaults the
 * schemas document, the duration fields to normalize, the rules beyond the
 * schemas' own checks (durations above zero), the validation of one struct
 * of options (its issues prefixed), the resolution of every default (a
 * component's thresholds falling back to the registry's), and the
 * components' options checked with unique names.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"
import type {
  Component,
  ComponentOptions,
  Options,
  Probe,
  ResolvedComponentOptions,
  ResolvedOptions,
  Status
} from "../Health.ts"
import * as Options_ from "../Options.ts"

/** The most samples (and status changes) a component keeps: its memory is bounded by this. */
export const maxHistory = 10_000

/** The options' defaults: the schemas' `default` annotations, applied by `resolve`. */
export const defaults = {
  name: "default",
  interval: Duration.seconds(10),
  timeout: Duration.seconds(2),
  unhealthyAfter: 3,
  healthyAfter: 2,
  slowThreshold: Duration.seconds(1),
  history: 60,
  flapThreshold: 4,
  flapWindow: Duration.minutes(5),
  trendWindow: Duration.minutes(5),
  jitter: 0.1,
  stagger: 0.1,
  initialStatus: "healthy" as Status,
  critical: true,
  probe: "both" as Probe
} as const

/** The registry's defaults, applied by `resolve`: `critical` and `probe` are a component's only. */
const registryDefaults = Struct.omit(defaults, ["critical", "probe"])

/** The fields given as `Duration.Input`, normalized before validation. */
const durationFields = ["interval", "timeout", "slowThreshold", "flapWindow", "trendWindow"] as const

/** The rules beyond the schema's own checks: durations above zero. */
const rules: ReadonlyArray<Options_.Rule> = [
  Options_.positiveDuration("interval"),
  Options_.positiveDuration("timeout"),
  Options_.positiveDuration("flapWindow"),
  Options_.positiveDuration("trendWindow")
]

/**
 * Validates one struct of options, succeeding with its issues (prefixed) or
 * the typed value. A field given as `undefined` takes its default, as the
 * `Input` types promise.
 */
export const issuesOf = <S extends Schema.Top & Schema.ConstraintDecoder<unknown>>(
  schema: S,
  input: Readonly<Record<string, unknown>>,
  prefix: string
): Effect.Effect<{ readonly value?: S["Type"]; readonly issues: ReadonlyArray<Options_.Issue> }> => {
  const defined = Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined))
  const { issues, normalized } = Options_.normalizeDurations(defined, durationFields)
  return Effect.match(Options_.validate("Health", schema, normalized, rules, issues), {
    onSuccess: (value) => ({ value, issues: [] }),
    onFailure: (error) => ({
      issues: error.issues.map(
        (issue) => new Options_.Issue({ path: `${prefix}${issue.path}`, value: issue.value, message: issue.message })
      )
    })
  })
}

/** The registry's options with every default applied. */
export const resolve = (o: Options): ResolvedOptions => Options_.withDefaults(o, registryDefaults)

/** A component's options: its own, else the registry's (`base`). */
const resolveComponent = (o: ComponentOptions, base: ResolvedOptions): ResolvedComponentOptions =>
  Options_.withDefaults(o, { ...Struct.omit(base, ["name"]), critical: defaults.critical, probe: defaults.probe })

/**
 * The components' options checked, with names unique among themselves and
 * against `taken`. `schema` is `Health.ComponentOptions`.
 */
export const validateComponents = (
  schema: typeof ComponentOptions,
  components: ReadonlyArray<Component<unknown>>,
  base: ResolvedOptions | undefined,
  taken: ReadonlySet<string>
): Effect.Effect<{
  readonly resolved: ReadonlyArray<ResolvedComponentOptions>
  readonly issues: ReadonlyArray<Options_.Issue>
}> =>
  Effect.map(
    Effect.forEach(components, (component) =>
      issuesOf(schema, { ...component.options }, `components.${component.name}.`)
    ),
    (results) => {
      const issues: Array<Options_.Issue> = []
      const resolved: Array<ResolvedComponentOptions> = []
      const seen = new Set(taken)
      components.forEach((component, i) => {
        if (component.name.length === 0 || seen.has(component.name)) {
          issues.push(
            new Options_.Issue({
              path: `components.${component.name}`,
              value: Options_.renderValue(component.name),
              message: "Expected a unique, non-empty component name"
            })
          )
        }
        seen.add(component.name)
        const result = results[i]
        if (result === undefined) return
        issues.push(...result.issues)
        if (result.value !== undefined && base !== undefined) resolved.push(resolveComponent(result.value, base))
      })
      return { resolved, issues }
    }
  )
