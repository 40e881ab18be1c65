/**
 * The dashboard in a real browser: Debian's `chromium` driven by playwright-core. One browser launch for the file
 * (launching is slow on a small machine), one page per test. Every wait is a playwright auto-waiting locator with a
 * bound of a few seconds; nothing sleeps for a fixed time.
 *
 * Without `/usr/bin/chromium` the file is skipped with a message outside CI, and fails in CI (`CI` set).
 */
import * as Fs from "node:fs"
import * as Http from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { AdaptiveThrottle, Bulkhead, CircuitBreaker, LoadBalancer, Registry } from "@effect-resilience/core"
import { Dashboard } from "@effect-resilience/http"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import { type Browser, chromium, type Page } from "playwright-core"

const executablePath = "/usr/bin/chromium"
const installed = Fs.existsSync(executablePath)
const missing = `Chromium is not installed at ${executablePath}: install the Debian package \`chromium\` (apt-get install --no-install-recommends chromium)`
if (!installed && process.env.CI === undefined) console.warn(`Dashboard browser tests skipped: ${missing}`)

/** Bound of every wait for the page: generous for a loaded 2-core machine, far below the test's 30 s. */
const wait = { timeout: 8_000 }

const xssKey = `<img src=x onerror="window.__xss=1">`
const xssTitle = `<b id="injected">Ops</b> & co`

/** Runs an effect in the test's (live) runtime. */
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

/**
 * The server side: a breaker, an adaptive bulkhead, a throttle, a balancer, a registry and a dashboard living for the
 * whole file, and a server that can be stopped and restarted on its port. The interval is an hour: what the page
 * shows after it loaded was pushed on an event.
 */
const setup = Effect.gen(function* () {
  const scope = yield* Scope.make()
  const { balancer, breaker, bulkhead, dashboard, registry, throttle } = yield* Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({ name: "payments", consecutiveFailures: 2, openDuration: "1 hour" })
    const bulkhead = yield* Bulkhead.make({
      name: "search",
      maxConcurrent: 10,
      limit: { algorithm: "aimd", minLimit: 2, maxLimit: 20 }
    })
    const throttle = yield* AdaptiveThrottle.make({ name: "quotes" })
    const balancer = yield* LoadBalancer.make({
      name: "users",
      endpoints: [{ id: "a" }, { id: "b" }, { id: "c" }],
      consecutiveFailures: 2,
      maxEjectionPercent: 50,
      baseEjectionTime: "1 hour",
      interval: "1 hour"
    })
    const registry = yield* Registry.make({ name: "policies", policies: { search: { attemptTimeout: "1 second" } } })
    const dashboard = yield* Dashboard.make({
      breakers: [breaker],
      bulkheads: [bulkhead],
      throttles: [throttle],
      balancers: [balancer],
      registries: registry,
      title: xssTitle,
      interval: "1 hour",
      reconnect: "200 millis"
    })
    return { balancer, breaker, bulkhead, dashboard, registry, throttle }
  }).pipe(Scope.provide(scope), Effect.provide(CircuitBreaker.layerStoreMemory()))

  /** Serves the dashboard on `port` (0: any free port) until the returned scope closes. */
  const serve = (port: number) =>
    Effect.gen(function* () {
      const serverScope = yield* Scope.make()
      const served = HttpRouter.serve(HttpRouter.addAll(dashboard.routes), {
        disableLogger: true,
        disableListenLog: true
      }).pipe(
        Layer.provideMerge(
          // a graceful shutdown (Node's default): the dashboard ends its streams at once, so the server stops without
          // waiting out `gracefulShutdownTimeout`, and the browser sees the drop
          NodeHttpServer.layer(() => Http.createServer(), { port, host: "127.0.0.1" })
        )
      )
      const context = yield* Layer.buildWithScope(served, serverScope)
      const address = Context.get(context, HttpServer.HttpServer).address
      if (address._tag !== "InetAddressV4") return yield* Effect.die(new Error("expected an IPv4 address"))
      return { scope: serverScope, port: address.port }
    })

  const fail = (key: string) => Effect.ignore(Effect.fail("down").pipe(CircuitBreaker.protect(breaker, { key })))
  /** A refused call through the throttle under `key`, its coin always 0: rejected locally once the probability is above 0. */
  const refuse = (key: string) =>
    Effect.ignore(Effect.fail("503").pipe(AdaptiveThrottle.throttle(throttle, { key }))).pipe(
      Effect.provideService(Random.Random, { nextDoubleUnsafe: () => 0, nextIntUnsafe: () => 0 })
    )
  /** One call through the balancer, failing on `failing`. */
  const balanced = (failing: string) =>
    Effect.ignore(LoadBalancer.call(balancer, (e) => (e.id === failing ? Effect.fail("down") : Effect.void)))

  return { scope, breaker, bulkhead, registry, dashboard, serve, fail, refuse, balanced }
})

type Setup = Effect.Success<typeof setup>

describe.skipIf(!installed && process.env.CI === undefined)("Dashboard in a browser", () => {
  let browser: Browser | undefined
  let server: Setup | undefined
  let current: { scope: Scope.Closeable; port: number } | undefined

  beforeAll(async () => {
    if (!installed) throw new Error(missing)
    server = await run(setup)
    current = await run(server.serve(0))
    browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--headless=new"] })
  })

  afterAll(async () => {
    await browser?.close()
    if (current !== undefined) await run(Scope.close(current.scope, Exit.void))
    if (server !== undefined) await run(Scope.close(server.scope, Exit.void))
  })

  /** A new page on the dashboard, with every page error and console error collected. */
  const open = async (): Promise<{ readonly page: Page; readonly errors: Array<string> }> => {
    if (browser === undefined || current === undefined) throw new Error("the browser or the server did not start")
    const page = await browser.newPage()
    const errors: Array<string> = []
    page.on("pageerror", (error) => errors.push(error.message))
    page.on("console", (message) => {
      // a dropped stream logs a network error while the server is down: that one is expected
      if (message.type() === "error" && !/ERR_CONNECTION_REFUSED|net::/.test(message.text()))
        errors.push(message.text())
    })
    await page.goto(`http://127.0.0.1:${current.port}/dashboard`)
    await page.locator('#conn[data-state="live"]').waitFor(wait)
    return { page, errors }
  }

  const circuit = (page: Page, state: string) =>
    page.locator(`[data-breaker="payments"] tr.circuit[data-state="${state}"]`)

  it("shows the breaker Closed, then Open as soon as it trips: live over the stream, no reload", {
    timeout: 30_000
  }, async () => {
    if (server === undefined) throw new Error("no server")
    const { errors, page } = await open()
    await circuit(page, "Closed").filter({ hasText: "payments" }).waitFor(wait)
    assert.strictEqual(await page.locator("#conn").textContent(), "live")
    // a mark on the window: a reload would clear it
    await page.evaluate(() => Object.assign(globalThis, { __mark: "kept" }))
    const navigations: Array<string> = []
    page.on("framenavigated", (frame) => navigations.push(frame.url()))

    await run(Effect.andThen(server.fail("payments"), server.fail("payments")))
    const open_ = circuit(page, "Open").filter({ hasText: "payments" })
    await open_.waitFor(wait)
    assert.strictEqual(await open_.locator(".state .badge").textContent(), "Open")
    assert.match((await open_.locator(".retry").textContent()) ?? "", /^retry in \d+(\.\d)? (min|h)$/)
    assert.strictEqual(await page.evaluate(() => (globalThis as unknown as { __mark?: string }).__mark), "kept")
    assert.deepStrictEqual(navigations, [])
    assert.deepStrictEqual(errors, [])
    await page.close()
  })

  it("renders a user's key and title as text, never as markup", { timeout: 30_000 }, async () => {
    if (server === undefined) throw new Error("no server")
    await run(server.fail(xssKey))
    const { errors, page } = await open()
    const row = page.locator("tr.circuit td.key").filter({ hasText: xssKey })
    await row.waitFor(wait)
    assert.strictEqual(await row.textContent(), xssKey)
    assert.strictEqual(await page.locator("img").count(), 0)
    assert.strictEqual(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined)
    // the title is escaped on the server
    assert.strictEqual(await page.locator("#title").textContent(), xssTitle)
    assert.strictEqual(await page.title(), xssTitle)
    assert.strictEqual(await page.locator("#injected").count(), 0)
    assert.deepStrictEqual(errors, [])
    await page.close()
  })

  it("shows the stream dropping and coming back when the server stops and restarts", { timeout: 30_000 }, async () => {
    if (server === undefined || current === undefined) throw new Error("no server")
    const { page } = await open()
    const port = current.port
    await run(Scope.close(current.scope, Exit.void))
    current = undefined
    await page.locator('#conn[data-state="reconnecting"]').waitFor(wait)
    assert.strictEqual(await page.locator("#conn").textContent(), "reconnecting")

    current = await run(server.serve(port))
    await page.locator('#conn[data-state="live"]').waitFor(wait)
    // the new stream is live: a change made now shows without a reload
    await run(server.breaker.forceOpen("after-restart"))
    await circuit(page, "ForcedOpen").filter({ hasText: "after-restart" }).waitFor(wait)
    await page.close()
  })

  it("shows an adaptive limit, an ejected endpoint, a throttle's probability and a refused reload, pushed live", {
    timeout: 30_000
  }, async () => {
    if (server === undefined) throw new Error("no server")
    // before the page opens: a refused reload (shown from the first snapshot)
    await run(
      Effect.ignore(
        server.registry.reload({ policies: { search: { retry: { kind: "constant", base: 0, maxAttempts: 0 } } } })
      )
    )
    const { errors, page } = await open()
    const limit = page.locator('[data-bulkhead="search"] td.limit')
    await limit.and(page.locator('[data-limit="10"]')).waitFor(wait)
    assert.strictEqual(await limit.locator(".value").textContent(), "10")
    assert.strictEqual(await limit.locator(".badge").textContent(), "aimd")
    const policies = page.locator('[data-registry="policies"]')
    assert.strictEqual(
      await policies.locator('tr.policy[data-policy="search"] td').nth(1).textContent(),
      "attemptTimeout"
    )
    assert.strictEqual(
      await policies.locator(".reload-failure li.issue").textContent(),
      "policies.search.retry.maxAttempts: Expected a value greater than or equal to 1 (0)"
    )
    await page.evaluate(() => Object.assign(globalThis, { __mark: "kept" }))

    // LimitChanged: one failed call drops the limit, 10 → 9
    await run(Effect.ignore(Effect.fail("timeout").pipe(Bulkhead.isolate(server.bulkhead))))
    await limit.and(page.locator('[data-limit="9"]')).waitFor(wait)
    assert.strictEqual(await limit.locator(".value").textContent(), "9")
    assert.match((await limit.locator(".muted").textContent()) ?? "", /^2–20, 1 change$/)

    // EndpointEjected: round robin a, b, c, a, b; "b" fails twice in a row
    const { balanced } = server
    await run(Effect.forEach([1, 2, 3, 4, 5], () => balanced("b"), { discard: true }))
    const ejected = page.locator('[data-balancer="users"] tr.endpoint[data-endpoint="b"][data-state="ejected"]')
    await ejected.waitFor(wait)
    assert.strictEqual(await ejected.locator(".state .badge").textContent(), "ejected")
    assert.match((await ejected.locator(".back").textContent()) ?? "", /^back in \d+(\.\d)? (min|h)$/)
    // ejected endpoints come first
    assert.strictEqual(
      await page.locator('[data-balancer="users"] tr.endpoint').first().getAttribute("data-endpoint"),
      "b"
    )

    // Throttled: a refusal (probability 1/2), then a local rejection pushes the window at 2/3
    await run(Effect.andThen(server.refuse("eu"), server.refuse("eu")))
    const window = page.locator('[data-throttle="quotes"] tr.window[data-key="eu"]')
    await window.waitFor(wait)
    assert.strictEqual(await window.locator(".probability").textContent(), "66.7%")
    assert.strictEqual(await page.evaluate(() => (globalThis as unknown as { __mark?: string }).__mark), "kept")
    assert.deepStrictEqual(errors, [])
    await page.close()
  })

  it("shows a keyed compartment's own limit, updated live as it changes", { timeout: 30_000 }, async () => {
    if (server === undefined) throw new Error("no server")
    const { bulkhead } = server
    const { errors, page } = await open()
    const tenant = page.locator('[data-compartments="search"] tr.compartment[data-key="tenant-a"]')
    // LimitChanged on a key: its first failed call drops its limit, 10 → 9, pushed at once
    const failing = Effect.ignore(Effect.fail("timeout").pipe(Bulkhead.isolate(bulkhead, { key: "tenant-a" })))
    await run(failing)
    await tenant.and(page.locator('[data-limit="9"]')).waitFor(wait)
    assert.strictEqual(await tenant.locator("td.key").textContent(), "tenant-a")
    assert.strictEqual(await tenant.locator(".limit .value").textContent(), "9")
    await run(failing)
    await tenant.and(page.locator('[data-limit="8"]')).waitFor(wait)
    assert.strictEqual(await tenant.locator(".limit .value").textContent(), "8")
    // the furthest below maxLimit comes first; the bulkhead's own row keeps its own limit
    assert.strictEqual(
      await page.locator('[data-compartments="search"] tr.compartment').first().getAttribute("data-key"),
      "tenant-a"
    )
    assert.notStrictEqual(await page.locator('[data-bulkhead="search"] td.limit').getAttribute("data-limit"), "8")
    assert.deepStrictEqual(errors, [])
    await page.close()
  })
})
