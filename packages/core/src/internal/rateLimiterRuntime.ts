/**
 * The limiter behind `RateLimiter.make`: its tiers of compiled limits (or a
 * remote store's), the decisions (allow and deny lists, a block cache of
 * held refusals, every limit of a key's tier checked, then charged), the
 * concurrency permits held while a call runs (leases renewed over a remote
 * store), shape mode's FIFO line per key, the idle sweep, the rejection-rate
 * alert, the heavy-hitters sketch, events, and the metrics read from its
 * counters.
 *
 * The per-call path (`limit` → `decide` → `decided`) is one closure over the
 * limiter's state, as it was in the public module.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import type {
  CompiledLimit,
  Decision,
  ErrorTypeId,
  Event,
  Input,
  Limit,
  LimitOptions,
  LimitOutcome,
  Options,
  PolicyDecision,
  RateLimitExceeded,
  RateLimiter,
  RateLimiterError,
  RateLimiterStore,
  RateLimiterStoreError,
  RemoteLimits,
  TypeId
} from "../RateLimiter.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Hub from "./events.ts"
import { construct } from "./fastError.ts"
import * as hh from "./heavyHitters.ts"
import * as Metrics from "./metrics.ts"
import * as Now from "./now.ts"
import * as algorithms from "./rateLimiter.ts"
import { limitSpec } from "./rateLimiterOptions.ts"

/**
 * The public module's error classes and brand: rejections are built from
 * them (`RateLimitExceeded` without running its constructor,
 * `internal/fastError.ts`).
 */
export interface Errors {
  readonly RateLimiterError: typeof RateLimiterError
  readonly RateLimitExceeded: typeof RateLimitExceeded
  readonly RateLimiterStoreError: typeof RateLimiterStoreError
  readonly ErrorTypeId: ErrorTypeId
}

/** The limiter's operations, but for its identity (`RateLimiter.make` adds it). */
export type Runtime = Omit<RateLimiter, TypeId | "name" | "options">

const toDuration = (millis: number): Duration.Duration =>
  millis === Number.POSITIVE_INFINITY ? Duration.infinity : Duration.millis(millis)

const validCost = (cost: number): boolean => cost >= 0 && cost !== Number.POSITIVE_INFINITY

const invalidCost = (cost: number): RangeError =>
  new RangeError(`RateLimiter: a request's cost must be a finite number >= 0 (0 only peeks), got ${cost}`)

interface Tier {
  /** The tier's position in `RemoteOptions.tiers`. */
  readonly index: number
  readonly limits: ReadonlyArray<CompiledLimit>
  readonly names: ReadonlyArray<string>
  readonly windows: ReadonlyArray<number | undefined>
  readonly scratch: ReadonlyArray<algorithms.Decision>
  readonly single: CompiledLimit | undefined
  readonly hasConcurrency: boolean
}

/**
 * A decision with its durations made on first read: a decision is made per
 * request, and most callers read only `allowed`.
 */
class DecisionImpl implements Decision, PolicyDecision {
  readonly allowed: boolean
  readonly policy: string
  readonly limit: number
  readonly remaining: number
  readonly resetMillis: number
  readonly retryAfterMillis: number
  readonly windowSeconds: number | undefined
  /** Every limit's part, for several limits; undefined for one limit (then `policies` is `[this]`). */
  readonly list: ReadonlyArray<DecisionImpl> | undefined
  constructor(
    allowed: boolean,
    policy: string,
    limit: number,
    remaining: number,
    resetMillis: number,
    retryAfterMillis: number,
    windowSeconds: number | undefined,
    policies?: ReadonlyArray<DecisionImpl>
  ) {
    this.allowed = allowed
    this.policy = policy
    this.limit = limit
    this.remaining = remaining
    this.resetMillis = resetMillis
    this.retryAfterMillis = retryAfterMillis
    this.windowSeconds = windowSeconds
    this.list = policies
  }
  get reset(): Duration.Duration {
    return toDuration(this.resetMillis)
  }
  get retryAfter(): Duration.Duration {
    return toDuration(this.retryAfterMillis)
  }
  get storeError(): boolean {
    return this === storeFailedDecision
  }
  get policies(): ReadonlyArray<PolicyDecision> {
    return this.list ?? (this.policy === "allow" || this.policy === "deny" ? [] : [this])
  }
  /**
   * For a refusal held in the block cache: how long it holds as made, every
   * refusing limit still refusing (the shortest `retryAfter` among them).
   */
  holdMillis(): number {
    if (this.list === undefined) return this.retryAfterMillis
    let hold = Number.POSITIVE_INFINITY
    for (const p of this.list) if (!p.allowed && p.retryAfterMillis < hold) hold = p.retryAfterMillis
    return hold
  }
  /** The same decision `elapsed` milliseconds later: `reset` and `retryAfter` counted down (within `holdMillis`). */
  later(elapsed: number): DecisionImpl {
    if (elapsed === 0) return this
    return new DecisionImpl(
      this.allowed,
      this.policy,
      this.limit,
      this.remaining,
      this.resetMillis > elapsed ? this.resetMillis - elapsed : 0,
      this.retryAfterMillis > elapsed ? this.retryAfterMillis - elapsed : 0,
      this.windowSeconds,
      this.list?.map((p) => p.later(elapsed))
    )
  }
}

/** The refusal of a request whose remote store failed, under `onStoreError: "fail"`. */
const storeFailedDecision = new DecisionImpl(false, "store-error", 0, 0, 0, 0, undefined, [])

const allowDecision: Decision = new DecisionImpl(
  true,
  "allow",
  Number.POSITIVE_INFINITY,
  Number.POSITIVE_INFINITY,
  0,
  0,
  undefined,
  []
)

/**
 * Makes a limiter's runtime over `store` from validated options and tiers
 * (`input` adds `tierOf`). Its background fibers (idle sweep, alert ticks,
 * shape mode's drivers, lease renewals) run in the scope, and its events end
 * and its metrics are unregistered when the scope closes.
 */
export const makeRuntime: (
  options: Options,
  tierLimits: ReadonlyArray<readonly [string, ReadonlyArray<Limit>]>,
  input: Input,
  store: Context.Service.Shape<typeof RateLimiterStore>,
  errors: Errors
) => Effect.Effect<Runtime, never, Scope.Scope> = Effect.fnUntraced(function* (
  options: Options,
  tierLimits: ReadonlyArray<readonly [string, ReadonlyArray<Limit>]>,
  input: Input,
  store: Context.Service.Shape<typeof RateLimiterStore>,
  errors: Errors
) {
  const scope = yield* Effect.scope
  const context = yield* Effect.context<never>()
  const name = options.name ?? "default"
  const maxKeys = options.maxKeys ?? 100_000
  // a remote store holds the state itself: nothing is compiled in the process
  const remoteStore = store.remote
  const makeTier = (tierLimits: ReadonlyArray<Limit>, index: number): Tier => {
    const specs = tierLimits.map(limitSpec)
    const compiled = remoteStore === undefined ? tierLimits.map((limit) => store.compile(limit, maxKeys)) : []
    return {
      index,
      limits: compiled,
      names: specs.map((spec) => spec.name),
      windows: specs.map((spec) => spec.windowSeconds),
      scratch: compiled.map(() => algorithms.makeDecision()),
      single: compiled.length === 1 ? compiled[0] : undefined,
      hasConcurrency: specs.some((spec) => spec.algorithm === "concurrency")
    }
  }
  const defaultTier = makeTier(options.limits, 0)
  const tiers = new Map<string, Tier>()
  for (const [tierName, limits] of tierLimits) tiers.set(tierName, makeTier(limits, tiers.size + 1))
  const remote =
    remoteStore === undefined
      ? undefined
      : yield* remoteStore({
          name,
          tiers: [options.limits.map(limitSpec), ...[...tierLimits].map(([, limits]) => limits.map(limitSpec))]
        })
  const onStoreError = options.onStoreError ?? "allow"
  // concurrency permits over a store with leases are named: this limiter's prefix and a counter
  const permitPrefix = `${name}:${Math.random().toString(36).slice(2, 10)}`
  let permits = 0
  const tierOf = input.tierOf
  const tierFor = (key: string): Tier => {
    if (tierOf === undefined) return defaultTier
    const tierName = tierOf(key)
    return (tierName === undefined ? undefined : tiers.get(tierName)) ?? defaultTier
  }
  const allLimits = [...defaultTier.limits, ...[...tiers.values()].flatMap((tier) => tier.limits)]
  const limits = allLimits
  const allow = new Set(options.allow ?? [])
  const deny = new Set(options.deny ?? [])
  const sketch = hh.make(options.topClients ?? 64)
  // a local block cache: a key refused at `at` is refused again, without touching the store, until `until`
  const blocked = new Map<
    string,
    { readonly at: number; readonly until: number; readonly cost: number; readonly decision: DecisionImpl }
  >()
  const counters = { allowed: 0, rejected: 0, storeErrors: 0, byPolicy: new Map<string, number>() }

  // idle keys are swept by a fiber that lives as long as the limiter
  const sweepMillis = Duration.toMillis(options.sweepInterval ?? Duration.seconds(30))
  yield* Effect.forkIn(
    Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(sweepMillis)),
        Clock.clockWith((clock) =>
          Effect.sync(() => {
            const now = clock.currentTimeMillisUnsafe()
            for (const limit of limits) limit.sweep(now)
            // (a remote store expires idle state itself: there are no compiled limits)
          })
        )
      )
    ),
    scope
  )

  // usage and alerting: a tick of a tenth of `alertFor` (or of 10 s)
  const alertRate = options.alertRejectionRate
  const alertForMillis = Duration.toMillis(options.alertFor ?? Duration.minutes(1))
  const tickMillis = Math.max(1, Math.floor(alertForMillis / 10))
  // per-tick counts are differences of the running totals, so the decision path counts once
  const monitor = { allowedAt: 0, rejectedAt: 0, usage: 0, lastUsage: 0, aboveSince: -1, alerting: false, lastRate: 0 }
  yield* Effect.forkIn(
    Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(tickMillis)),
        Clock.clockWith((clock) =>
          Effect.sync(() => {
            const now = clock.currentTimeMillisUnsafe()
            const allowed = counters.allowed - monitor.allowedAt
            const rejected = counters.rejected - monitor.rejectedAt
            const total = allowed + rejected
            const rate = total === 0 ? 0 : rejected / total
            monitor.lastRate = rate
            monitor.lastUsage = monitor.usage
            monitor.allowedAt = counters.allowed
            monitor.rejectedAt = counters.rejected
            monitor.usage = 0
            if (alertRate === undefined) return
            if (total > 0 && rate >= alertRate) {
              if (monitor.aboveSince < 0) monitor.aboveSince = now - tickMillis
              if (!monitor.alerting && now - monitor.aboveSince >= alertForMillis) {
                monitor.alerting = true
                hub.emit({ _tag: "AlertTriggered", limiter: name, rejectionRate: rate, since: monitor.aboveSince })
              }
            } else {
              monitor.aboveSince = -1
              if (monitor.alerting) {
                monitor.alerting = false
                hub.emit({ _tag: "AlertResolved", limiter: name, rejectionRate: rate })
              }
            }
          })
        )
      )
    ),
    scope
  )

  const hub = Hub.make<Event>()
  yield* Scope.addFinalizer(scope, hub.end)

  const lists = allow.size > 0 || deny.size > 0

  /** The decision made without the store (allow and deny lists, a held refusal), if any. */
  const precheck = (key: string, cost: number, now: number, count: boolean): Decision | undefined => {
    if (count) hh.add(sketch, key, cost)
    if (lists) {
      if (allow.has(key)) return allowDecision
      if (deny.has(key)) return new DecisionImpl(false, "deny", 0, 0, 0, Number.POSITIVE_INFINITY, undefined)
    }
    if (blocked.size > 0) {
      const block = blocked.get(key)
      if (block !== undefined) {
        // a request of the cost refused gets the store's refusal again, its times counted down; any other
        // request (which may pass and change the state) goes to the store and ends the entry
        if (cost === block.cost && now >= block.at && now < block.until) return block.decision.later(now - block.at)
        blocked.delete(key)
      }
    }
    return undefined
  }
  /** Holds a committed refusal while every refusing limit still refuses: until then, the store would decide the same. */
  const hold = (key: string, cost: number, now: number, decision: DecisionImpl): void => {
    const holdMillis = decision.holdMillis()
    if (holdMillis > 0 && holdMillis !== Number.POSITIVE_INFINITY) {
      if (blocked.size >= maxKeys) blocked.clear()
      blocked.set(key, { at: now, until: now + holdMillis, cost, decision })
    }
  }
  const decide = (key: string, cost: number, now: number, commit: boolean, count: boolean): Decision => {
    const early = precheck(key, cost, now, count)
    if (early !== undefined) return early
    const decision = decideIn(tierOf === undefined ? defaultTier : tierFor(key), key, cost, now, commit)
    if (commit && !decision.allowed) hold(key, cost, now, decision)
    return decision
  }

  /** One limit's decision. */
  const fromOutcome = (out: LimitOutcome, name: string, windowSeconds: number | undefined): DecisionImpl =>
    new DecisionImpl(
      out.allowed,
      name,
      out.limit,
      out.allowed ? out.remaining : 0,
      out.resetMillis,
      out.allowed ? 0 : out.retryAfterMillis,
      windowSeconds
    )

  /**
   * Several limits' decision: every part, and the deciding one's numbers. A
   * limit's `remaining` counts the request as charged; when another limit
   * refuses, nothing is charged, so the limits that would have allowed it
   * report what they hold (their `remaining` plus the cost).
   */
  const combine = (tier: Tier, outs: ReadonlyArray<LimitOutcome>, allowed: boolean, cost: number): DecisionImpl => {
    let deciding = 0
    const policies: Array<DecisionImpl> = []
    for (let i = 0; i < outs.length; i++) {
      const out = outs[i]
      if (out === undefined) continue
      const name = tier.names[i] ?? "default"
      policies.push(
        new DecisionImpl(
          out.allowed,
          name,
          out.limit,
          !allowed && out.allowed ? out.remaining + cost : out.remaining,
          out.resetMillis,
          out.retryAfterMillis,
          tier.windows[i]
        )
      )
      const best = outs[deciding]
      if (best === undefined) continue
      const refusing = !out.allowed
      if (
        (refusing && (best.allowed || out.retryAfterMillis > best.retryAfterMillis)) ||
        (!refusing && best.allowed && out.remaining < best.remaining)
      ) {
        deciding = i
      }
    }
    const d = outs[deciding] ?? algorithms.makeDecision()
    return new DecisionImpl(
      allowed,
      tier.names[deciding] ?? "default",
      d.limit,
      allowed ? d.remaining : 0,
      d.resetMillis,
      allowed ? 0 : d.retryAfterMillis,
      tier.windows[deciding],
      policies
    )
  }

  const decideIn = (tier: Tier, key: string, cost: number, now: number, commit: boolean): DecisionImpl => {
    const { limits, scratch, single } = tier
    if (single !== undefined) {
      // one limit: consume decides exactly as check, and charges only if allowed
      const out = scratch[0] ?? algorithms.makeDecision()
      if (commit) single.consume(key, now, cost, out)
      else single.check(key, now, cost, out)
      return fromOutcome(out, single.name, single.windowSeconds)
    }
    let allowed = true
    for (let i = 0; i < limits.length; i++) {
      const out = scratch[i]
      const limit = limits[i]
      if (out === undefined || limit === undefined) continue
      limit.check(key, now, cost, out)
      if (!out.allowed) allowed = false
    }
    if (allowed && commit) {
      for (let i = 0; i < limits.length; i++)
        limits[i]?.consume(key, now, cost, scratch[i] ?? algorithms.makeDecision())
    }
    return combine(tier, scratch, allowed, cost)
  }

  // ---- over a remote store: the same decisions, one store round trip each
  /** Decides through the remote store (lists and held refusals first, as in-process). */
  const decideRemote = (
    r: RemoteLimits,
    key: string,
    cost: number,
    commit: boolean,
    count: boolean,
    permit?: string | undefined
  ): Effect.Effect<Decision, RateLimiterStoreError> =>
    Effect.suspend(() => {
      // held refusals count time on the limiter's clock (the store's own runs alongside it)
      const now = Now.currentTimeMillis()
      const early = precheck(key, cost, now, count)
      if (early !== undefined) return Effect.succeed(early)
      const tier = tierFor(key)
      return Effect.map(r.decide(key, tier.index, cost, commit, permit), (outs) => {
        const first = outs[0]
        const decision =
          outs.length === 1 && first !== undefined
            ? fromOutcome(first, tier.names[0] ?? "default", tier.windows[0])
            : combine(
                tier,
                outs,
                outs.every((out) => out.allowed),
                cost
              )
        if (commit && !decision.allowed) hold(key, cost, now, decision)
        return decision
      })
    })
  /** A store that failed: the request passes (`allow`) or is refused (`fail`), never lost silently. */
  const afterStoreError = (): Decision => {
    counters.storeErrors++
    return onStoreError === "allow" ? allowDecision : storeFailedDecision
  }
  /** A decision now, in-process or remote; a store failure decided by `onStoreError`. */
  const decideNow = (
    key: string,
    cost: number,
    commit: boolean,
    count: boolean,
    permit?: string | undefined
  ): Effect.Effect<Decision> =>
    remote === undefined
      ? Effect.sync(() => decide(key, cost, Now.currentTimeMillis(), commit, count))
      : Effect.catch(decideRemote(remote, key, cost, commit, count, permit), () => Effect.sync(afterStoreError))
  /** A name for the concurrency permits a call is about to take, when the store holds them as leases. */
  const permitFor = (key: string): string | undefined =>
    remote?.leases !== undefined && tierFor(key).hasConcurrency ? `${permitPrefix}:${++permits}` : undefined
  /** Gives `cost` back to every limit of `key` (a store failure is dropped: the charge stands). */
  const refundNow = (key: string, cost: number, permit?: string | undefined): Effect.Effect<void> =>
    Effect.suspend(() => {
      blocked.delete(key)
      if (remote !== undefined) return Effect.ignore(remote.refund(key, tierFor(key).index, cost, permit))
      const now = Now.currentTimeMillis()
      for (const l of tierFor(key).limits) l.refund(key, now, cost)
      return Effect.void
    })

  const record = (key: string, cost: number, decision: Decision) => {
    if (decision.limit > 0 && decision.limit !== Number.POSITIVE_INFINITY) {
      const usage = 1 - decision.remaining / decision.limit
      if (usage > monitor.usage) monitor.usage = usage
    }
    if (decision.allowed) {
      counters.allowed++
      return
    }
    counters.rejected++
    counters.byPolicy.set(decision.policy, (counters.byPolicy.get(decision.policy) ?? 0) + 1)
    if (hub.listening()) {
      const event: Event = {
        _tag: "LimitHit",
        limiter: name,
        key,
        policy: decision.policy,
        cost,
        retryAfter: decision.retryAfter
      }
      hub.emit(event)
    }
  }

  // one `sync` step per decision: the clock is the running fiber's
  const consume = (key: string, cost = 1): Effect.Effect<Decision> =>
    !validCost(cost)
      ? Effect.die(invalidCost(cost))
      : remote === undefined
        ? Effect.sync(() => {
            const decision = decide(key, cost, Now.currentTimeMillis(), true, true)
            record(key, cost, decision)
            return decision
          })
        : Effect.tap(decideNow(key, cost, true, true), (decision) => Effect.sync(() => record(key, cost, decision)))

  const check = (key: string, cost = 1): Effect.Effect<Decision> =>
    !validCost(cost)
      ? Effect.die(invalidCost(cost))
      : remote === undefined
        ? Effect.sync(() => decide(key, cost, Now.currentTimeMillis(), false, false))
        : decideNow(key, cost, false, false)

  const exceeded = (key: string, decision: Decision) =>
    construct(errors.RateLimiterError, {
      _tag: "RateLimiterError",
      [errors.ErrorTypeId]: errors.ErrorTypeId,
      reason: construct(errors.RateLimitExceeded, {
        _tag: "RateLimitExceeded",
        limiter: name,
        key,
        policy: decision.policy,
        limit: decision.limit,
        remaining: decision.remaining,
        retryAfter: decision.retryAfter
      })
    })

  const releasing = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    permit?: string | undefined
  ): Effect.Effect<A, E, R> =>
    !tierFor(key).hasConcurrency || allow.has(key)
      ? self
      : remote !== undefined
        ? holding(remote, self, key, cost, permit)
        : // concurrency permits are held while the call runs, released however it ends
          Effect.onExitPrimitive(self, () => {
            for (const l of tierFor(key).limits) if (l.concurrency) l.release(key, cost)
            return undefined
          })

  /**
   * Runs `self` holding concurrency permits of a remote store: released
   * however it ends (a store failure leaves them to their lease), the lease
   * renewed while it runs.
   */
  const holding = <A, E, R>(
    r: RemoteLimits,
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    permit: string | undefined
  ): Effect.Effect<A, E, R> => {
    const tier = tierFor(key).index
    const release = Effect.ignore(r.release(key, tier, cost, permit))
    const leases = r.leases
    if (permit === undefined || leases === undefined) return Effect.onExit(self, () => release)
    const renewing = Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(leases.renewMillis)),
        Effect.ignore(leases.renew(key, tier, cost, permit))
      )
    )
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.forkIn(renewing, scope), (renewer) =>
        Effect.onExit(restore(self), () => Effect.andThen(Fiber.interrupt(renewer), release))
      )
    )
  }

  // ---- shape mode: a FIFO line per key, served by one driver fiber per busy key
  const shaping = options.mode === "shape"
  const maxWaitMillis = Duration.toMillis(options.maxWait ?? Duration.seconds(10))
  const maxQueue = options.maxQueue ?? 100
  interface Waiter {
    readonly cost: number
    /** The name of the concurrency permits it takes, over a store with leases. */
    readonly permit: string | undefined
    readonly admitted: Deferred.Deferred<void, RateLimiterError>
    /** Set once the driver charged the waiter's cost. */
    charged: boolean
    /** Set once the waiter's effect starts: from then on, the charge stands. */
    started: boolean
    /** Set once the waiter left (timed out or interrupted). */
    left: boolean
  }
  const lines = new Map<string, Array<Waiter>>()
  const drive = (key: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const line = lines.get(key)
      const head = line?.[0]
      if (line === undefined || head === undefined) {
        lines.delete(key)
        return Effect.void
      }
      return Effect.flatMap(decideNow(key, head.cost, true, false, head.permit), (decision) => {
        if (head.left) {
          // it left while being decided (the store ran its interruption): give back what was charged
          return decision.allowed ? Effect.andThen(refundNow(key, head.cost, head.permit), drive(key)) : drive(key)
        }
        if (decision.allowed) {
          record(key, head.cost, decision)
          line.shift()
          head.charged = true
          Deferred.doneUnsafe(head.admitted, Exit.void)
          return drive(key)
        }
        if (Duration.toMillis(decision.retryAfter) > maxWaitMillis) {
          // it can never pass in time (a cost above the limit, a deny): refuse it, serve the next
          record(key, head.cost, decision)
          line.shift()
          Deferred.doneUnsafe(head.admitted, Exit.fail(exceeded(key, decision)))
          return drive(key)
        }
        return Effect.andThen(Effect.sleep(Duration.max(decision.retryAfter, Duration.millis(1))), drive(key))
      })
    })
  const leave = (key: string, waiter: Waiter): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (waiter.left) return Effect.void
      waiter.left = true
      const current = lines.get(key)
      const index = current?.indexOf(waiter) ?? -1
      if (current !== undefined && index >= 0) current.splice(index, 1)
      // admitted but not started: give the cost back
      return waiter.charged && !waiter.started ? refundNow(key, waiter.cost, waiter.permit) : Effect.void
    })
  /** Waits in `key`'s line until admitted, then runs `self`; refused after `maxWait`. */
  const shape = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    refused: Decision
  ): Effect.Effect<A, E | RateLimiterError, R> =>
    Effect.suspend(() => {
      let line = lines.get(key)
      if (line !== undefined && line.length >= maxQueue) {
        record(key, cost, refused)
        return Effect.fail(exceeded(key, refused))
      }
      const waiter: Waiter = {
        cost,
        permit: permitFor(key),
        admitted: Deferred.makeUnsafe<void, RateLimiterError>(),
        charged: false,
        started: false,
        left: false
      }
      if (line === undefined) {
        line = []
        lines.set(key, line)
      }
      line.push(waiter)
      const start = line.length === 1 ? Effect.asVoid(Effect.forkIn(drive(key), scope)) : Effect.void
      const admitted = Deferred.await(waiter.admitted).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(maxWaitMillis),
          orElse: () =>
            Effect.andThen(
              leave(key, waiter),
              Effect.suspend(() => {
                record(key, cost, refused)
                return Effect.fail(exceeded(key, refused))
              })
            )
        })
      )
      // interrupted anywhere from joining the line until `self` starts, the waiter leaves and, if it was
      // already charged, gives the cost back
      return Effect.onInterrupt(
        Effect.andThen(
          Effect.andThen(start, admitted),
          Effect.suspend(() => {
            waiter.started = true
            return releasing(self, key, cost, waiter.permit)
          })
        ),
        () => leave(key, waiter)
      )
    })

  /** Someone already waits in `key`'s line: line up behind them (FIFO), unless it could never pass in time. */
  const behind = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    peek: Decision
  ): Effect.Effect<A, E | RateLimiterError, R> => {
    if (peek.policy === "deny" || Duration.toMillis(peek.retryAfter) > maxWaitMillis) {
      record(key, cost, peek)
      return Exit.fail(exceeded(key, peek))
    }
    return shape(self, key, cost, peek)
  }
  /** Runs, queues or refuses `self` on a committed decision. */
  const decided = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    key: string,
    cost: number,
    decision: Decision,
    permit?: string | undefined
  ): Effect.Effect<A, E | RateLimiterError, R> => {
    if (!decision.allowed && shaping && decision.policy !== "deny" && !decision.storeError) {
      if (Duration.toMillis(decision.retryAfter) <= maxWaitMillis) return shape(self, key, cost, decision)
    }
    record(key, cost, decision)
    if (!decision.allowed) return Exit.fail(exceeded(key, decision))
    return releasing(self, key, cost, permit)
  }

  const limit = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    callOptions: LimitOptions
  ): Effect.Effect<A, E | RateLimiterError, R> =>
    remote !== undefined
      ? limitRemote(remote, self, callOptions)
      : Effect.withFiber((fiber) => {
          const cost = callOptions.cost ?? 1
          const key = callOptions.key
          if (!validCost(cost)) return Effect.die(invalidCost(cost))
          const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
          if (shaping && (lines.get(key)?.length ?? 0) > 0)
            return behind(self, key, cost, decide(key, cost, now, false, true))
          return decided(self, key, cost, decide(key, cost, now, true, true))
        })

  const storeFailure = (key: string, cause: RateLimiterStoreError) =>
    new errors.RateLimiterError({
      reason: new errors.RateLimiterStoreError({ limiter: name, key, message: cause.message, cause })
    })

  const limitRemote = <A, E, R>(
    r: RemoteLimits,
    self: Effect.Effect<A, E, R>,
    callOptions: LimitOptions
  ): Effect.Effect<A, E | RateLimiterError, R> =>
    Effect.suspend(() => {
      const cost = callOptions.cost ?? 1
      const key = callOptions.key
      if (!validCost(cost)) return Effect.die(invalidCost(cost))
      const waiting = shaping && (lines.get(key)?.length ?? 0) > 0
      const permit = waiting ? undefined : permitFor(key)
      return Effect.matchEffect(decideRemote(r, key, cost, !waiting, true, permit), {
        onFailure: (error): Effect.Effect<A, E | RateLimiterError, R> => {
          counters.storeErrors++
          // fail-open runs the call unlimited (no permit was taken); fail-closed refuses it
          return onStoreError === "allow" ? self : Effect.fail(storeFailure(key, error))
        },
        onSuccess: (decision) =>
          waiting ? behind(self, key, cost, decision) : decided(self, key, cost, decision, permit)
      })
    })

  // metrics, read when exported
  const registrar = Metrics.registrar(context)
  const base = { [Telemetry.attributes.name]: name }
  registrar.counter(
    Telemetry.rateLimiter.decisions,
    { ...base, [Telemetry.attributes.outcome]: "allowed" },
    () => counters.allowed
  )
  for (const l of limits) {
    registrar.counter(
      Telemetry.rateLimiter.decisions,
      { ...base, [Telemetry.attributes.outcome]: "rejected", [Telemetry.attributes.policy]: l.name },
      () => counters.byPolicy.get(l.name) ?? 0
    )
  }
  registrar.gauge(Telemetry.rateLimiter.keys, base, () => Math.max(0, ...limits.map((l) => l.size())))
  registrar.gauge(Telemetry.rateLimiter.usage, base, () => monitor.lastUsage)
  registrar.gauge(Telemetry.rateLimiter.rejectionRate, base, () => monitor.lastRate)
  yield* Scope.addFinalizer(scope, Effect.sync(registrar.removeAll))

  return {
    holdsCalls: options.mode === "shape" || allLimits.some((l) => l.concurrency),
    consume,
    check,
    penalize: (key, points) =>
      remote !== undefined
        ? Effect.suspend(() => {
            blocked.delete(key)
            return Effect.catch(remote.penalize(key, tierFor(key).index, points), () =>
              Effect.sync(() => {
                counters.storeErrors++
              })
            )
          })
        : Clock.clockWith((clock) =>
            Effect.sync(() => {
              const now = clock.currentTimeMillisUnsafe()
              blocked.delete(key)
              for (const l of tierFor(key).limits) l.penalize(key, now, points)
            })
          ),
    reward: (key, points) => refundNow(key, points),
    limit,
    alert: Effect.sync(() => ({
      alerting: monitor.alerting,
      rejectionRate: monitor.lastRate,
      since: monitor.alerting ? monitor.aboveSince : undefined
    })),
    topClients: (n) => Effect.sync(() => hh.top(sketch, n).map(({ count, key }) => ({ key, cost: count }))),
    stats: Effect.sync(() => ({
      allowed: counters.allowed,
      rejected: counters.rejected,
      keys: Math.max(0, ...limits.map((l) => l.size())),
      evicted: limits.reduce((total, l) => total + l.evicted(), 0),
      storeErrors: counters.storeErrors
    })),
    subscribe: hub.subscribe,
    events: hub.events
  }
})
