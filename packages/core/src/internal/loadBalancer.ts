/**
 * The load balancer's decisions, as plain functions over plain data: the
 * strategies (smooth weighted round robin, weighted random, power of two
 * choices on requests in flight, peak EWMA, a consistent-hash ring with
 * optional bounded load) and Envoy's outlier detection (consecutive
 * failures, success rate, ejection time, the ejection cap).
 *
 * No Effect, no clock reads, no `Math.random`: the time (`now`, in
 * milliseconds on whatever monotonic source the caller uses) and random
 * numbers in [0, 1) (`random()`) are arguments, so every function is
 * property-tested (`test/internal/loadBalancer.test.ts`). The state objects
 * are mutated in place: a pick runs once per call and must not allocate.
 *
 * @internal
 */

// ---------------------------------------------------------------------------
// state
// ---------------------------------------------------------------------------

/** One endpoint's state: what the strategies read and the outlier detector keeps. */
export interface Host {
  readonly id: string
  /** A positive finite weight (1 by default). */
  weight: number
  /** Calls running on it now. */
  inFlight: number
  /** Smooth weighted round robin's running weight. */
  current: number
  /** Peak EWMA of its latency, in milliseconds (0: no sample yet). */
  ewma: number
  /** When `ewma` was last updated. */
  ewmaStamp: number
  /** Calls that succeeded and failed since the start (ignored and interrupted ones aside). */
  successes: number
  failures: number
  /** Failures in a row, reset by a success and by an ejection. */
  consecutiveFailures: number
  /** Successes and failures in the current success-rate interval. */
  intervalSuccesses: number
  intervalFailures: number
  /** When its ejection ends; 0 when not ejected. */
  ejectedUntil: number
  /** When it was last ejected. */
  ejectedAt: number
  /** Envoy's ejection multiplier: +1 per ejection, -1 per interval spent not ejected. */
  multiplier: number
  /** Ejections since the start. */
  ejections: number
}

/** A host with nothing recorded. */
export const makeHost = (id: string, weight: number): Host => ({
  id,
  weight,
  inFlight: 0,
  current: 0,
  ewma: 0,
  ewmaStamp: 0,
  successes: 0,
  failures: 0,
  consecutiveFailures: 0,
  intervalSuccesses: 0,
  intervalFailures: 0,
  ejectedUntil: 0,
  ejectedAt: 0,
  multiplier: 0,
  ejections: 0
})

/** The current set of hosts and what the strategies precompute over it. */
export interface Pool<H extends Host = Host> {
  hosts: Array<H>
  /** Hosts ejected now (`ejectedUntil !== 0`). */
  ejected: number
  /** The earliest `ejectedUntil` of an ejected host (`Infinity` when none). */
  nextReturn: number
  /** The sum of the weights. */
  totalWeight: number
  /** Whether every weight is the same (the strategies take their unweighted paths). */
  equalWeights: boolean
  /** Calls in flight over every host of the set. */
  inFlight: number
  /** Plain round robin's cursor (equal weights). */
  cursor: number
  /** The consistent-hash ring, when the strategy is `ringHash`. */
  ring: Ring | undefined
}

/** A pool over `hosts` (the caller keeps `inFlight` and the ring). */
export const makePool = <H extends Host>(hosts: Array<H>): Pool<H> => {
  const pool: Pool<H> = {
    hosts,
    ejected: 0,
    nextReturn: Number.POSITIVE_INFINITY,
    totalWeight: 0,
    equalWeights: true,
    inFlight: 0,
    cursor: 0,
    ring: undefined
  }
  refresh(pool)
  return pool
}

/** Recomputes what the pool derives from its hosts (after the set, a weight or an ejection changed). */
export const refresh = <H extends Host>(pool: Pool<H>): void => {
  let total = 0
  let ejected = 0
  let nextReturn = Number.POSITIVE_INFINITY
  let inFlight = 0
  const first = pool.hosts[0]?.weight ?? 1
  let equal = true
  for (const h of pool.hosts) {
    total += h.weight
    inFlight += h.inFlight
    if (h.weight !== first) equal = false
    if (h.ejectedUntil !== 0) {
      ejected++
      if (h.ejectedUntil < nextReturn) nextReturn = h.ejectedUntil
    }
  }
  if (!equal && pool.equalWeights) for (const h of pool.hosts) h.current = 0
  pool.totalWeight = total
  pool.equalWeights = equal
  pool.ejected = ejected
  pool.nextReturn = nextReturn
  pool.inFlight = inFlight
}

/** Whether a host may be picked: not ejected, or anything goes (`panic`). */
const eligible = (h: Host, panic: boolean): boolean => panic || h.ejectedUntil === 0

// ---------------------------------------------------------------------------
// strategies
// ---------------------------------------------------------------------------

/**
 * Round robin: plain rotation when every weight is the same, otherwise
 * nginx's smooth weighted round robin (each eligible host's running weight
 * grows by its weight, the largest is picked and loses the total), which
 * picks each host exactly `weight` times per `sum(weights)` picks, spread
 * out. Returns the index of the host, or -1 when none is eligible.
 */
export const pickRoundRobin = (pool: Pool, panic: boolean): number => {
  const hosts = pool.hosts
  const n = hosts.length
  if (pool.equalWeights) {
    for (let k = 0; k < n; k++) {
      const i = (pool.cursor + k) % n
      const h = hosts[i]
      if (h !== undefined && eligible(h, panic)) {
        pool.cursor = (i + 1) % n
        return i
      }
    }
    return -1
  }
  let best = -1
  let bestCurrent = Number.NEGATIVE_INFINITY
  let total = 0
  for (let i = 0; i < n; i++) {
    const h = hosts[i]
    if (h === undefined || !eligible(h, panic)) continue
    h.current += h.weight
    total += h.weight
    if (h.current > bestCurrent) {
      best = i
      bestCurrent = h.current
    }
  }
  const chosen = hosts[best]
  if (chosen !== undefined) chosen.current -= total
  return best
}

/**
 * A host drawn at random, each eligible one with probability weight / total,
 * leaving out `exclude` (-1: none). Returns -1 when none is eligible.
 */
export const sample = (pool: Pool, panic: boolean, random: () => number, exclude: number): number => {
  const hosts = pool.hosts
  const n = hosts.length
  if (pool.equalWeights) {
    if (panic || pool.ejected === 0) {
      // every host is eligible: one draw
      const m = exclude < 0 ? n : n - 1
      if (m <= 0) return -1
      const i = Math.min(m - 1, Math.floor(random() * m))
      return exclude >= 0 && i >= exclude ? i + 1 : i
    }
    // a few draws, most hosts being eligible; then an exact draw among them
    for (let attempt = 0; attempt < 4; attempt++) {
      const i = Math.min(n - 1, Math.floor(random() * n))
      const h = hosts[i]
      if (i !== exclude && h !== undefined && eligible(h, panic)) return i
    }
    let count = 0
    for (let i = 0; i < n; i++) {
      const h = hosts[i]
      if (i !== exclude && h !== undefined && eligible(h, panic)) count++
    }
    if (count === 0) return -1
    let k = Math.min(count - 1, Math.floor(random() * count))
    for (let i = 0; i < n; i++) {
      const h = hosts[i]
      if (i !== exclude && h !== undefined && eligible(h, panic) && k-- === 0) return i
    }
    return -1
  }
  let total = 0
  for (let i = 0; i < n; i++) {
    const h = hosts[i]
    if (i !== exclude && h !== undefined && eligible(h, panic)) total += h.weight
  }
  if (total <= 0) return -1
  let r = random() * total
  let last = -1
  for (let i = 0; i < n; i++) {
    const h = hosts[i]
    if (i === exclude || h === undefined || !eligible(h, panic)) continue
    last = i
    r -= h.weight
    if (r < 0) return i
  }
  return last
}

/** Weighted random. */
export const pickRandom = (pool: Pool, panic: boolean, random: () => number): number => sample(pool, panic, random, -1)

/**
 * Power of two choices over the requests in flight (Envoy's least request):
 * two distinct hosts drawn at random (by weight), the one with fewer calls in
 * flight picked, the first on a tie. With one eligible host, that host.
 */
export const pickLeastRequests = (pool: Pool, panic: boolean, random: () => number): number => {
  const a = sample(pool, panic, random, -1)
  if (a < 0) return -1
  const b = sample(pool, panic, random, a)
  if (b < 0) return a
  return choose(pool.hosts, a, b)
}

/** Of two candidates, the one with fewer calls in flight (`a` on a tie). */
export const choose = (hosts: ReadonlyArray<Host>, a: number, b: number): number =>
  (hosts[b]?.inFlight ?? 0) < (hosts[a]?.inFlight ?? 0) ? b : a

/** Finagle's penalty for a host with calls in flight and no latency sample yet. */
export const penalty = 1e9

/** The latency EWMA of a host decayed to `now` (Finagle reads it as if observing a 0 ms call). */
export const decayedLatency = (h: Host, now: number, decayMillis: number): number => {
  if (h.ewma === 0) return 0
  const elapsed = now - h.ewmaStamp
  return elapsed <= 0 ? h.ewma : h.ewma * Math.exp(-elapsed / decayMillis)
}

/** Finagle's peak EWMA load: latency × (in flight + 1), or the penalty for an unmeasured busy host. */
export const peakEwmaLoad = (h: Host, now: number, decayMillis: number): number => {
  const latency = decayedLatency(h, now, decayMillis)
  if (latency === 0 && h.inFlight !== 0) return penalty + h.inFlight
  return latency * (h.inFlight + 1)
}

/**
 * Records a call's latency: a sample above the average replaces it (peak
 * sensitive, so a host that slows down is avoided at once), one below is
 * averaged in with a weight that grows with the time since the last sample.
 */
export const observeLatency = (h: Host, millis: number, now: number, decayMillis: number): void => {
  const sample = Math.max(0, millis)
  if (h.ewma === 0 || sample > h.ewma) {
    h.ewma = sample
  } else {
    const elapsed = Math.max(0, now - h.ewmaStamp)
    const w = Math.exp(-elapsed / decayMillis)
    h.ewma = h.ewma * w + sample * (1 - w)
  }
  h.ewmaStamp = now
}

/** Power of two choices over the peak EWMA load (Finagle's `p2cPeakEwma`). */
export const pickPeakEwma = (
  pool: Pool,
  panic: boolean,
  random: () => number,
  now: number,
  decayMillis: number
): number => {
  const a = sample(pool, panic, random, -1)
  if (a < 0) return -1
  const b = sample(pool, panic, random, a)
  if (b < 0) return a
  const ha = pool.hosts[a]
  const hb = pool.hosts[b]
  if (ha === undefined || hb === undefined) return a
  return peakEwmaLoad(hb, now, decayMillis) < peakEwmaLoad(ha, now, decayMillis) ? b : a
}

// ---------------------------------------------------------------------------
// consistent hashing
// ---------------------------------------------------------------------------

/** A 32-bit hash of a string: FNV-1a over its UTF-16 code units, then murmur3's finalizer (avalanche). */
export const hash32 = (s: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** A hash ring: sorted points, each owned by a host index. */
export interface Ring {
  readonly points: Uint32Array
  readonly owners: Int32Array
}

/** Envoy's largest ring. */
export const maxRingSize = 8_388_608

/**
 * Builds the ring: `round(virtualNodes × weight)` points per host (at least
 * one), at `hash32("<id>#<i>")`. A host's points depend only on its id and
 * weight, so adding a host moves only the keys that land on its points, and
 * removing one only the keys that were on its points. When the total would
 * pass `maxRingSize`, every count is scaled down to fit.
 */
export const buildRing = (hosts: ReadonlyArray<Pick<Host, "id" | "weight">>, virtualNodes: number): Ring => {
  const counts = hosts.map((h) => Math.max(1, Math.round(virtualNodes * h.weight)))
  let size = counts.reduce((a, b) => a + b, 0)
  if (size > maxRingSize) {
    const scale = maxRingSize / size
    for (let i = 0; i < counts.length; i++) counts[i] = Math.max(1, Math.floor((counts[i] ?? 1) * scale))
    size = counts.reduce((a, b) => a + b, 0)
  }
  const entries: Array<{ readonly point: number; readonly owner: number; readonly id: string }> = []
  hosts.forEach((h, owner) => {
    const count = counts[owner] ?? 1
    for (let i = 0; i < count; i++) entries.push({ point: hash32(`${h.id}#${i}`), owner, id: h.id })
  })
  // ties (rare) are broken by id, so the ring does not depend on the order the hosts came in
  entries.sort((x, y) => x.point - y.point || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))
  const points = new Uint32Array(size)
  const owners = new Int32Array(size)
  entries.forEach((e, i) => {
    points[i] = e.point
    owners[i] = e.owner
  })
  return { points, owners }
}

/** The position of the first point at or after `hash` (wrapping to 0). */
export const ringIndex = (ring: Ring, hash: number): number => {
  const points = ring.points
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((points[mid] ?? 0) < hash) lo = mid + 1
    else hi = mid
  }
  return lo === points.length ? 0 : lo
}

/**
 * The host for a key's hash: the owner of the first point at or after it
 * that is eligible and, with a `boundedLoad` factor c (0: unbounded), has
 * fewer than ceil(c × (calls in flight + 1) / eligible hosts) calls in
 * flight (consistent hashing with bounded loads). Walks on clockwise past
 * hosts that do not qualify. Returns -1 when none is eligible.
 */
export const pickRing = (pool: Pool, panic: boolean, hash: number, boundedLoad: number): number =>
  walkRing(pool, panic, hash, boundedLoad, undefined)

/**
 * The ring walk of `pickRing`, skipping the hosts `skip` names: the first
 * eligible one clockwise from `hash` under its bounded-load capacity, else
 * the first eligible one (every one is over capacity), else -1.
 */
const walkRing = (
  pool: Pool,
  panic: boolean,
  hash: number,
  boundedLoad: number,
  skip: ((h: Host) => boolean) | undefined
): number => {
  const ring = pool.ring
  if (ring === undefined || ring.points.length === 0) return -1
  const hosts = pool.hosts
  const size = ring.points.length
  const eligibleCount = panic ? hosts.length : hosts.length - pool.ejected
  if (eligibleCount <= 0) return -1
  const capacity = boundedLoad > 0 ? Math.ceil((boundedLoad * (pool.inFlight + 1)) / eligibleCount) : 0
  const start = ringIndex(ring, hash)
  let fallback = -1
  for (let k = 0; k < size; k++) {
    const owner = ring.owners[(start + k) % size] ?? -1
    const h = hosts[owner]
    if (h === undefined || !eligible(h, panic) || skip?.(h) === true) continue
    if (capacity === 0 || h.inFlight < capacity) return owner
    if (fallback < 0) fallback = owner
  }
  return fallback
}

// ---------------------------------------------------------------------------
// avoiding hosts (a retry's earlier endpoints)
// ---------------------------------------------------------------------------

/** The strategies, as `pickAvoiding` tells them apart. */
export type StrategyName = "roundRobin" | "random" | "leastRequests" | "peakEwma" | "ringHash"

/** A weighted draw among the eligible hosts `skip` leaves, or -1 when it leaves none (O(n): retries are rare). */
export const sampleWhere = (
  pool: Pool,
  panic: boolean,
  random: () => number,
  skip: (h: Host, i: number) => boolean
): number => {
  const hosts = pool.hosts
  let total = 0
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i]
    if (h !== undefined && eligible(h, panic) && !skip(h, i)) total += h.weight
  }
  if (total <= 0) return -1
  let r = random() * total
  let last = -1
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i]
    if (h === undefined || !eligible(h, panic) || skip(h, i)) continue
    last = i
    r -= h.weight
    if (r < 0) return i
  }
  return last
}

/**
 * A pick that passes over hosts the call should avoid — a retry's earlier
 * endpoints, as Envoy's `previous_hosts` retry predicate: `picked` when it
 * is not avoided, or when no other eligible host is left (avoiding is a
 * preference, never a reason to fail); otherwise another eligible host that
 * is not avoided, chosen as the strategy would: the next one in the set's
 * order after `picked` (round robin, which then moves on past it), the next
 * one clockwise from the key's point under its bounded-load capacity (ring
 * hash with a key; past the capacity only when every such host is), or two weighted
 * random candidates compared (least requests, peak EWMA), one (random).
 */
export const pickAvoiding = (
  pool: Pool,
  strategy: StrategyName,
  panic: boolean,
  picked: number,
  avoided: (h: Host) => boolean,
  random: () => number,
  now: number,
  decayMillis: number,
  hash: number | undefined,
  boundedLoad: number
): number => {
  const hosts = pool.hosts
  const first = hosts[picked]
  if (first === undefined || !avoided(first)) return picked
  const skip = (h: Host) => avoided(h)
  switch (strategy) {
    case "roundRobin": {
      const n = hosts.length
      for (let k = 1; k < n; k++) {
        const i = (picked + k) % n
        const h = hosts[i]
        if (h === undefined || !eligible(h, panic) || avoided(h)) continue
        if (pool.equalWeights) {
          pool.cursor = (i + 1) % n
        } else {
          // the turn goes to the host that takes the call: the avoided one gets it back
          let total = 0
          for (const other of hosts) if (eligible(other, panic)) total += other.weight
          first.current += total
          h.current -= total
        }
        return i
      }
      return picked
    }
    case "ringHash": {
      const ring = pool.ring
      if (hash === undefined || ring === undefined || ring.points.length === 0) {
        const i = sampleWhere(pool, panic, random, skip)
        return i < 0 ? picked : i
      }
      // the bound holds for a retry too: the first host clockwise not tried and under capacity
      const i = walkRing(pool, panic, hash, boundedLoad, skip)
      return i < 0 ? picked : i
    }
    case "random": {
      const i = sampleWhere(pool, panic, random, skip)
      return i < 0 ? picked : i
    }
    case "leastRequests":
    case "peakEwma": {
      const a = sampleWhere(pool, panic, random, skip)
      if (a < 0) return picked
      const b = sampleWhere(pool, panic, random, (h, i) => i === a || avoided(h))
      const ha = hosts[a]
      const hb = hosts[b]
      if (ha === undefined || hb === undefined) return a
      if (strategy === "leastRequests") return choose(hosts, a, b)
      return peakEwmaLoad(hb, now, decayMillis) < peakEwmaLoad(ha, now, decayMillis) ? b : a
    }
  }
}

// ---------------------------------------------------------------------------
// outlier detection
// ---------------------------------------------------------------------------

/** The outlier detector's settings (milliseconds, percentages 0–100). */
export interface OutlierConfig {
  /** Failures in a row that eject a host; 0 turns it off. */
  readonly consecutiveFailures: number
  /** % chance an ejection by consecutive failures is enforced. */
  readonly enforcingConsecutiveFailures: number
  readonly baseEjectionMillis: number
  readonly maxEjectionMillis: number
  /** The most hosts ejected at once, in % of the set (at least one host when above 0). */
  readonly maxEjectionPercent: number
  /** Hosts ejection always leaves in the set. */
  readonly minAvailable: number
  /** Whether success-rate ejection runs. */
  readonly successRate: boolean
  /** % chance an ejection by success rate is enforced. */
  readonly enforcingSuccessRate: number
  readonly successRateMinimumHosts: number
  readonly successRateRequestVolume: number
  readonly successRateStdevFactor: number
}

/**
 * How many of `n` hosts may be ejected at once: `floor(n × maxEjectionPercent
 * / 100)`, but at least one when the percentage is above 0 (Envoy ejects one
 * host whatever the percentage), and never so many that fewer than
 * `minAvailable` are left.
 */
export const maxEjectable = (n: number, config: OutlierConfig): number => {
  if (config.maxEjectionPercent <= 0 || n <= 0) return 0
  const byPercent = Math.max(1, Math.floor((n * config.maxEjectionPercent) / 100))
  return Math.max(0, Math.min(byPercent, n - config.minAvailable))
}

/** How long the `multiplier`-th ejection in a row lasts: base × multiplier, capped. */
export const ejectionMillis = (multiplier: number, config: OutlierConfig): number =>
  Math.min(config.baseEjectionMillis * Math.max(1, multiplier), config.maxEjectionMillis)

/**
 * Ejects `host` (a member of `pool`, not ejected) at `now` if the cap
 * allows: returns how long it is ejected for, or -1 when the cap refused.
 */
export const eject = <H extends Host>(pool: Pool<H>, host: H, now: number, config: OutlierConfig): number => {
  if (host.ejectedUntil !== 0) return -1
  if (pool.ejected >= maxEjectable(pool.hosts.length, config)) return -1
  host.multiplier++
  host.ejections++
  const millis = ejectionMillis(host.multiplier, config)
  host.ejectedAt = now
  host.ejectedUntil = now + millis
  host.consecutiveFailures = 0
  pool.ejected++
  if (host.ejectedUntil < pool.nextReturn) pool.nextReturn = host.ejectedUntil
  return millis
}

/**
 * Brings back every host whose ejection is over at `now`, calling `returned`
 * for each (in set order); the pool's counts follow.
 */
export const returnExpired = <H extends Host>(pool: Pool<H>, now: number, returned: (host: H) => void): void => {
  if (pool.ejected === 0 || now < pool.nextReturn) return
  let ejected = 0
  let nextReturn = Number.POSITIVE_INFINITY
  for (const h of pool.hosts) {
    if (h.ejectedUntil === 0) continue
    if (h.ejectedUntil <= now) {
      h.ejectedUntil = 0
      h.consecutiveFailures = 0
      h.current = 0
      returned(h)
    } else {
      ejected++
      if (h.ejectedUntil < nextReturn) nextReturn = h.ejectedUntil
    }
  }
  pool.ejected = ejected
  pool.nextReturn = nextReturn
}

/** A call's outcome as the detector counts it. */
export type Outcome = "success" | "failure" | "ignored"

/**
 * Counts a call's outcome; returns true when it is the failure that reaches
 * `consecutiveFailures` (the caller then tries to eject the host).
 */
export const recordOutcome = (host: Host, outcome: Outcome, config: OutlierConfig): boolean => {
  if (outcome === "success") {
    host.successes++
    host.intervalSuccesses++
    host.consecutiveFailures = 0
    return false
  }
  if (outcome === "ignored") return false
  host.failures++
  host.intervalFailures++
  host.consecutiveFailures++
  return config.consecutiveFailures > 0 && host.consecutiveFailures >= config.consecutiveFailures
}

/** The statistics of one success-rate evaluation. */
export interface SuccessRateStats {
  /** Hosts with at least `successRateRequestVolume` calls in the interval. */
  readonly hosts: number
  readonly mean: number
  readonly stdev: number
  /** mean − stdev × factor: hosts below it are outliers. */
  readonly threshold: number
  /** The outliers' indices, lowest success rate first. */
  readonly outliers: ReadonlyArray<number>
}

/**
 * Envoy's success-rate outliers over one interval's counts: among the hosts
 * with at least `successRateRequestVolume` calls, when there are at least
 * `successRateMinimumHosts` of them, those whose success rate is below the
 * mean minus `successRateStdevFactor` standard deviations (population).
 * Returns undefined when too few hosts have enough calls.
 */
export const successRateOutliers = (
  counts: ReadonlyArray<{ readonly successes: number; readonly failures: number }>,
  config: OutlierConfig
): SuccessRateStats | undefined => {
  const rates: Array<{ readonly index: number; readonly rate: number }> = []
  counts.forEach((c, index) => {
    const volume = c.successes + c.failures
    if (volume > 0 && volume >= config.successRateRequestVolume) rates.push({ index, rate: c.successes / volume })
  })
  if (rates.length === 0 || rates.length < config.successRateMinimumHosts) return undefined
  const mean = rates.reduce((sum, r) => sum + r.rate, 0) / rates.length
  const variance = rates.reduce((sum, r) => sum + (r.rate - mean) ** 2, 0) / rates.length
  const stdev = Math.sqrt(variance)
  const threshold = mean - stdev * config.successRateStdevFactor
  const outliers = rates
    .filter((r) => r.rate < threshold)
    .sort((x, y) => x.rate - y.rate || x.index - y.index)
    .map((r) => r.index)
  return { hosts: rates.length, mean, stdev, threshold, outliers }
}

/** One ejection an evaluation made. */
export interface Ejection<H extends Host = Host> {
  readonly host: H
  readonly millis: number
  /** The host's success rate in the interval. */
  readonly successRate: number
}

/**
 * The work of one interval, at `now`: brings back the hosts whose ejection
 * is over, lowers the ejection multiplier of each host not ejected (Envoy's
 * backoff decay), ejects the success-rate outliers as far as the cap allows
 * (each enforced with probability `enforcingSuccessRate`), then starts a new
 * interval. Returns the ejections and the statistics (undefined when
 * success-rate ejection is off or too few hosts had enough calls).
 */
export const evaluateInterval = <H extends Host>(
  pool: Pool<H>,
  now: number,
  config: OutlierConfig,
  random: () => number,
  returned: (host: H) => void
): { readonly ejections: ReadonlyArray<Ejection<H>>; readonly stats: SuccessRateStats | undefined } => {
  returnExpired(pool, now, returned)
  for (const h of pool.hosts) if (h.ejectedUntil === 0 && h.multiplier > 0) h.multiplier--
  const ejections: Array<Ejection<H>> = []
  let stats: SuccessRateStats | undefined
  if (config.successRate) {
    const counts = pool.hosts.map((h) => ({ successes: h.intervalSuccesses, failures: h.intervalFailures }))
    stats = successRateOutliers(counts, config)
    if (stats !== undefined) {
      for (const index of stats.outliers) {
        const h = pool.hosts[index]
        if (h === undefined || h.ejectedUntil !== 0) continue
        if (random() * 100 >= config.enforcingSuccessRate) continue
        const millis = eject(pool, h, now, config)
        if (millis < 0) break
        const c = counts[index]
        const volume = c === undefined ? 0 : c.successes + c.failures
        ejections.push({ host: h, millis, successRate: volume === 0 ? 0 : (c?.successes ?? 0) / volume })
      }
    }
  }
  for (const h of pool.hosts) {
    h.intervalSuccesses = 0
    h.intervalFailures = 0
  }
  return { ejections, stats }
}

/**
 * Whether the pool is in panic: fewer than `panicThreshold` % of its hosts
 * are not ejected (then every host is eligible, ejected or not).
 */
export const inPanic = (pool: Pool, panicThreshold: number): boolean => {
  const n = pool.hosts.length
  return pool.ejected > 0 && (n - pool.ejected) * 100 < panicThreshold * n
}
