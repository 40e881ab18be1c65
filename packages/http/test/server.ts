import * as Http from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"

/** What a test reads of a response: status, headers, and the body (parsed when JSON). */
export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: unknown
}

/**
 * Serves `app` on a real Node HTTP server on 127.0.0.1, port 0, for the
 * scope; `get(path, headers)` requests it with Node's fetch.
 */
export const serveLoopback = <S = never>(
  app: Layer.Layer<never, unknown, unknown>,
  services?: Layer.Layer<S, unknown> | undefined
): Effect.Effect<
  { readonly port: number; readonly get: (path: string, headers?: Record<string, string>) => Effect.Effect<Reply> },
  unknown,
  Scope.Scope
> =>
  Effect.gen(function* () {
    // the app's requirements (the router, services for its routes) are met here or by `services`: a test's
    // mistake is a failure at build time, not a type error
    const served = HttpRouter.serve(app as Layer.Layer<never>, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" })),
      Layer.provide((services ?? Layer.empty) as Layer.Layer<never>)
    )
    const context = yield* Layer.build(served as Layer.Layer<HttpServer.HttpServer, unknown, never>)
    const server = Context.get(context, HttpServer.HttpServer)
    const address = server.address
    if (address._tag !== "InetAddressV4") return yield* Effect.die(new Error("expected an IPv4 address"))
    const port = address.port
    const get = (path: string, headers: Record<string, string> = {}): Effect.Effect<Reply> =>
      Effect.promise(async () => {
        const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: "close", ...headers } })
        const text = await res.text()
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        return { status: res.status, headers: res.headers, text, json }
      })
    return { port, get }
  })
