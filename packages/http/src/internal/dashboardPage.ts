/**
 * The dashboard's page: one self-contained HTML document (inline CSS and
 * script, no external assets), and the pure helpers the module uses to build
 * and order what it shows.
 *
 * The script renders every value with `textContent` and `setAttribute`,
 * never `innerHTML`: names and keys come from users and are shown as text.
 * The only server-side interpolations (the title, the events URL, the
 * reconnection delay and the nonce) go through `escapeHtml`.
 *
 * @internal
 */

/** Escapes the five characters that matter in HTML text and quoted attribute values. */
export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) =>
    c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;"
  )

/** How urgent a circuit state is on the page: open ones first. */
export const stateRank = (state: string): number => {
  switch (state) {
    case "Open":
      return 0
    case "ForcedOpen":
      return 1
    case "HalfOpen":
      return 2
    case "MetricsOnly":
      return 3
    case "Disabled":
      return 4
    default:
      return 5
  }
}

/**
 * The `max` circuits to show out of many: the most urgent states first, then
 * by key, so an open circuit is never hidden behind closed ones.
 */
export const pickCircuits = <C extends { readonly key: string; readonly state: string }>(
  circuits: ReadonlyArray<C>,
  max: number
): ReadonlyArray<C> =>
  [...circuits]
    .sort((a, b) => stateRank(a.state) - stateRank(b.state) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .slice(0, Math.max(0, max))

/** How urgent a load-balanced endpoint's state is on the page: ejected ones first, draining ones last. */
export const endpointRank = (state: string): number => (state === "ejected" ? 0 : state === "active" ? 1 : 2)

/**
 * The `max` endpoints to show out of a balancer's: the ejected ones first,
 * then the active ones, then the draining ones, each group in the balancer's
 * own order (so rows do not move between snapshots while nothing changes).
 */
export const pickEndpoints = <H extends { readonly state: string }>(
  hosts: ReadonlyArray<H>,
  max: number
): ReadonlyArray<H> =>
  hosts
    .map((host, index) => ({ host, index, rank: endpointRank(host.state) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .slice(0, Math.max(0, max))
    .map(({ host }) => host)

/**
 * The `max` windows to show out of an adaptive throttle's: the highest
 * rejection probability first, then the most requests, then by key.
 */
export const pickWindows = <
  W extends { readonly key: string; readonly requests: number; readonly probability: number }
>(
  windows: ReadonlyArray<W>,
  max: number
): ReadonlyArray<W> =>
  [...windows]
    .sort(
      (a, b) => b.probability - a.probability || b.requests - a.requests || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
    )
    .slice(0, Math.max(0, max))

/** One Server-Sent Events frame of `data` (a single line: JSON has no raw newlines). */
export const dataFrame = (data: string): string => `data: ${data.replace(/\r\n|\r|\n/g, "\ndata: ")}\n\n`

/** What the page is built from. */
export interface PageOptions {
  readonly title: string
  readonly eventsPath: string
  readonly snapshotPath: string
  readonly reconnectMillis: number
  readonly nonce: string
}

/** The Content-Security-Policy of the page: only its own inline script and style (by nonce) and its own origin. */
export const contentSecurityPolicy = (nonce: string): string =>
  [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; ")

const css = `
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--muted:#667085;--line:#e3e6eb;
--ok:#1a7f37;--warn:#b7791f;--bad:#c62828;--crit:#7f1d1d;--info:#2563eb;--off:#6b7280}
@media (prefers-color-scheme:dark){:root{--bg:#11151c;--card:#19202a;--fg:#e6e9ef;--muted:#98a2b3;--line:#2a3340}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:12px 20px;border-bottom:1px solid var(--line);
background:var(--card);position:sticky;top:0}
header h1{font-size:18px;margin:0 auto 0 0}
main{padding:16px 20px;display:grid;gap:16px;grid-template-columns:repeat(auto-fill,minmax(420px,1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}
h3{font-size:14px;margin:12px 0 6px;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:500;font-size:12px}
td.key{overflow-wrap:anywhere;max-width:260px}
.muted{color:var(--muted)}
.empty{color:var(--muted);font-style:italic}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--off)}
.s-Closed,.s-healthy,.s-live,.s-inactive,.s-resolved{background:var(--ok)}
.s-HalfOpen,.s-degraded,.s-pending,.s-warning,.s-connecting{background:var(--warn)}
.s-Open,.s-unhealthy,.s-firing,.s-error,.s-reconnecting{background:var(--bad)}
.s-ForcedOpen,.s-critical{background:var(--crit)}
.s-MetricsOnly,.s-info,.s-debug{background:var(--info)}
.s-Disabled{background:var(--off)}
.s-active{background:var(--ok)}
.s-ejected,.s-panic{background:var(--bad)}
.s-draining,.s-fixed{background:var(--off)}
.s-aimd,.s-gradient,.s-vegas{background:var(--info)}
ul.issues{margin:4px 0 0;padding-left:18px}
.bar{position:relative;height:6px;background:var(--line);border-radius:3px;margin-top:3px;min-width:60px}
.bar>span{position:absolute;left:0;top:0;bottom:0;background:var(--bad);border-radius:3px}
.stats{display:flex;flex-wrap:wrap;gap:4px 14px;color:var(--muted);font-size:12px;margin-bottom:6px}
.stats b{color:var(--fg);font-weight:600}
.error{color:var(--bad)}
.alert{border-left:4px solid var(--bad);padding:4px 10px;margin:6px 0}
.alert.pending{border-color:var(--warn)}
#conn{min-width:110px;text-align:center}
`

const script = `
(function () {
  "use strict";
  var body = document.body;
  var eventsUrl = body.getAttribute("data-events");
  var reconnectMs = Number(body.getAttribute("data-reconnect")) || 1000;
  var conn = document.getElementById("conn");
  var overall = document.getElementById("overall");
  var updated = document.getElementById("updated");
  var everLive = false;

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) for (var name in attrs) if (attrs[name] !== undefined && attrs[name] !== null) el.setAttribute(name, String(attrs[name]));
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) { for (var i = 0; i < child.length; i++) append(el, child[i]); return; }
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  function badge(value, extra) {
    return h("span", { "class": "badge s-" + String(value).replace(/[^A-Za-z]/g, ""), "data-state": value }, extra === undefined ? value : extra);
  }
  function pct(rate) { return (Math.round(rate * 1000) / 10).toFixed(1) + "%"; }
  function dur(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (Math.round(ms / 100) / 10) + " s";
    if (ms < 3600000) return (Math.round(ms / 6000) / 10) + " min";
    return (Math.round(ms / 360000) / 10) + " h";
  }
  function bar(rate) {
    var fill = h("span");
    fill.style.width = Math.max(0, Math.min(100, rate * 100)) + "%";
    return h("div", { "class": "bar" }, fill);
  }
  function stat(label, value) { return h("span", null, label + " ", h("b", null, value)); }
  function table(headers, rows) {
    return h("table", null, h("thead", null, h("tr", null, headers.map(function (x) { return h("th", null, x); }))), h("tbody", null, rows));
  }
  function fill(id, nodes, empty) {
    var el = document.getElementById(id);
    var content = nodes.length === 0 ? [h("p", { "class": "empty" }, empty)] : nodes;
    el.replaceChildren.apply(el, content);
  }
  function setConn(state, text) {
    conn.className = "badge s-" + state;
    conn.setAttribute("data-state", state);
    conn.textContent = text;
  }

  function renderAlerts(s) {
    var items = [];
    s.alerts.forEach(function (registry) {
      registry.rules.forEach(function (r) {
        if (r.state !== "firing" && r.state !== "pending") return;
        items.push(h("div", { "class": "alert " + r.state, "data-rule": r.name },
          badge(r.state), " ", badge(r.severity), " ", h("b", null, r.name), " ",
          h("span", { "class": "muted" }, r.state + " for " + dur(s.takenAt - (r.state === "firing" && r.firedAt !== null ? r.firedAt : r.since))),
          h("div", null, r.description),
          r.detail !== null || r.value !== null ? h("div", { "class": "muted" }, [r.value !== null ? "value " + r.value : "", r.detail !== null ? " " + r.detail : ""]) : null));
      });
    });
    fill("alerts", items, "No alert firing.");
  }

  function renderBreakers(s) {
    fill("breakers", s.breakers.map(function (b) {
      var rows = b.circuits.map(function (c) {
        return h("tr", { "class": "circuit", "data-key": c.key, "data-state": c.state },
          h("td", { "class": "key" }, c.key),
          h("td", { "class": "state" }, badge(c.state), c.retryAfterMillis !== null ? h("div", { "class": "muted retry" }, "retry in " + dur(c.retryAfterMillis)) : null),
          h("td", null, pct(c.failureRate), bar(c.failureRate)),
          h("td", null, pct(c.slowCallRate), bar(c.slowCallRate)),
          h("td", null, c.bufferedCalls + " / " + c.failedCalls + " / " + c.slowCalls));
      });
      var more = b.circuitCount > b.circuits.length ? h("p", { "class": "muted" }, "+" + (b.circuitCount - b.circuits.length) + " more circuits (most urgent shown)") : null;
      return h("div", { "class": "breaker", "data-breaker": b.name },
        h("h3", null, b.name),
        h("div", { "class": "stats" }, stat("successes", b.stats.successes), stat("failures", b.stats.failures), stat("rejected", b.stats.rejected), stat("circuits", b.circuitCount)),
        b.error !== null ? h("p", { "class": "error" }, b.error) : null,
        table(["circuit", "state", "failure rate", "slow-call rate", "buffered / failed / slow"], rows), more);
    }), "No circuit breaker registered.");
  }

  function renderLimiters(s) {
    fill("limiters", s.limiters.map(function (l) {
      var total = l.allowed + l.rejected;
      var top = l.topClients.map(function (c) { return h("tr", null, h("td", { "class": "key" }, c.key), h("td", null, c.cost)); });
      return h("div", { "class": "limiter", "data-limiter": l.name },
        h("h3", null, l.name, " ", l.alerting ? badge("firing", "alerting") : null),
        h("div", { "class": "stats" }, stat("allowed", l.allowed), stat("refused", l.rejected),
          stat("refused share", total === 0 ? "0.0%" : pct(l.rejected / total)), stat("keys", l.keys)),
        top.length > 0 ? table(["top client", "cost"], top) : null);
    }), "No rate limiter registered.");
  }

  function renderBulkheads(s) {
    fill("bulkheads", s.bulkheads.length === 0 ? [] : [table(["bulkhead", "in flight / limit", "limit", "queued", "admitted", "rejected"], s.bulkheads.map(function (b) {
      var a = b.adaptive;
      return h("tr", { "class": "bulkhead", "data-bulkhead": b.name },
        h("td", { "class": "key" }, b.name),
        h("td", null, b.active + " / " + b.limit, bar(b.limit === 0 ? 0 : b.active / b.limit)),
        h("td", { "class": "limit", "data-limit": b.limit },
          h("b", { "class": "value" }, b.limit), " ", badge(a === null ? "fixed" : a.algorithm),
          a === null ? null : h("div", { "class": "muted" }, a.minLimit + "–" + a.maxLimit + ", " + b.limitChanges + (b.limitChanges === 1 ? " change" : " changes"))),
        h("td", null, b.queued + " / " + b.maxQueue),
        h("td", null, b.admitted),
        h("td", null, b.rejected));
    }))].concat(s.bulkheads.map(renderCompartments).filter(Boolean)), "No bulkhead registered.");
  }

  // a keyed bulkhead's most urgent compartments (none for a bulkhead used without keys: its row says it all)
  function renderCompartments(b) {
    var list = b.compartments || [];
    var count = b.compartmentCount === undefined ? list.length : b.compartmentCount;
    if (!list.some(function (c) { return c.key !== b.name; })) return null;
    var rows = list.map(function (c) {
      return h("tr", { "class": "compartment", "data-key": c.key, "data-limit": c.limit, "data-queued": c.queued },
        h("td", { "class": "key" }, c.key),
        h("td", null, c.active + " / " + c.limit, bar(c.limit === 0 ? 0 : c.active / c.limit)),
        h("td", { "class": "limit" }, h("b", { "class": "value" }, c.limit)),
        h("td", { "class": "queued" }, c.queued));
    });
    var more = count > list.length ? h("p", { "class": "muted" }, "+" + (count - list.length) + " more compartments (most queued, then fullest, shown)") : null;
    return h("div", { "class": "compartments", "data-compartments": b.name },
      h("h3", null, b.name, " ", h("span", { "class": "muted" }, count + (count === 1 ? " compartment" : " compartments"))),
      table(["key", "in flight / limit", "limit", "queued"], rows), more);
  }

  function renderThrottles(s) {
    fill("throttles", s.throttles.map(function (t) {
      var rows = t.windows.map(function (w) {
        return h("tr", { "class": "window", "data-key": w.key, "data-probability": w.probability },
          h("td", { "class": "key" }, w.key),
          h("td", null, w.requests),
          h("td", null, w.accepts),
          h("td", { "class": "probability" }, pct(w.probability), bar(w.probability)));
      });
      var more = t.windowCount > t.windows.length ? h("p", { "class": "muted" }, "+" + (t.windowCount - t.windows.length) + " more keys (highest probability shown)") : null;
      return h("div", { "class": "throttle", "data-throttle": t.name },
        h("h3", null, t.name),
        h("div", { "class": "stats" }, stat("admitted", t.admitted), stat("throttled locally", t.throttled),
          stat("accepted", t.accepted), stat("not accepted", t.notAccepted), stat("keys", t.keys), stat("K", t.k)),
        rows.length > 0 ? table(["key", "requests", "accepts", "rejection probability"], rows) : null, more);
    }), "No adaptive throttle registered.");
  }

  function renderBalancers(s) {
    fill("balancers", s.balancers.map(function (b) {
      var rows = b.endpoints.map(function (e) {
        return h("tr", { "class": "endpoint", "data-endpoint": e.id, "data-state": e.state },
          h("td", { "class": "key" }, e.id, e.zone !== null ? h("span", { "class": "muted" }, " " + e.zone) : null),
          h("td", { "class": "state" }, badge(e.state),
            e.ejectedUntil !== null ? h("div", { "class": "muted back" }, "back in " + dur(Math.max(0, e.ejectedUntil - s.takenAt))) : null),
          h("td", null, e.inFlight),
          h("td", null, dur(e.latencyMillis)),
          h("td", null, e.successes + " / " + e.failures),
          h("td", null, e.ejections));
      });
      var more = b.hostCount > b.endpoints.length ? h("p", { "class": "muted" }, "+" + (b.hostCount - b.endpoints.length) + " more endpoints (ejected shown first)") : null;
      return h("div", { "class": "balancer", "data-balancer": b.name },
        h("h3", null, b.name, " ", b.panic ? badge("panic") : null),
        h("div", { "class": "stats" }, stat("strategy", b.strategy), stat("endpoints", b.endpointCount), stat("ejected", b.ejected),
          stat("in flight", b.inFlight), stat("successes", b.successes), stat("failures", b.failures), stat("rejected", b.rejected)),
        table(["endpoint", "state", "in flight", "latency (EWMA)", "successes / failures", "times ejected"], rows), more);
    }), "No load balancer registered.");
  }

  function renderRegistries(s) {
    fill("registries", s.registries.map(function (r) {
      var f = r.lastFailure;
      return h("div", { "class": "policies", "data-registry": r.name },
        h("h3", null, r.name, " ", h("span", { "class": "muted version" }, "version " + r.version)),
        table(["policy", "parts (outermost first)"], r.policies.map(function (p) {
          return h("tr", { "class": "policy", "data-policy": p.name },
            h("td", { "class": "key" }, p.name),
            h("td", null, p.parts.length === 0 ? h("span", { "class": "muted" }, "none") : p.parts.join(" → ")));
        })),
        f === null ? null : h("div", { "class": "alert reload-failure" },
          h("b", null, "last reload refused"), " ",
          h("span", { "class": "muted" }, dur(s.takenAt - f.failedAt) + " ago; version " + f.version + " kept serving"),
          h("ul", { "class": "issues" }, f.issues.map(function (i) {
            return h("li", { "class": "issue", "data-path": i.path }, i.path + ": " + i.message + " (" + i.value + ")");
          }))));
    }), "No policy registry registered.");
  }

  function renderHealth(s) {
    fill("health", s.health.map(function (r) {
      return h("div", { "class": "registry", "data-health": r.name },
        h("h3", null, r.name, " ", badge(r.status)),
        table(["component", "status", "failures in a row", "latency", "last error"], r.components.map(function (c) {
          return h("tr", { "class": "component", "data-component": c.name },
            h("td", { "class": "key" }, c.name, c.critical ? "" : " (optional)", c.flapping ? " (flapping)" : ""),
            h("td", null, badge(c.status)),
            h("td", null, c.consecutiveFailures),
            h("td", null, dur(c.latencyMillis)),
            h("td", { "class": "key" }, c.lastError === null ? "" : c.lastError));
        })));
    }), "No health registry registered.");
  }

  function render(s) {
    if (!s || s.version !== 2) return;
    overall.replaceChildren(badge(s.status));
    updated.textContent = "updated " + new Date(s.takenAt).toLocaleTimeString();
    renderAlerts(s);
    renderBreakers(s);
    renderLimiters(s);
    renderBulkheads(s);
    renderHealth(s);
    renderThrottles(s);
    renderBalancers(s);
    renderRegistries(s);
  }

  var source = null;
  function connect() {
    source = new EventSource(eventsUrl);
    source.onopen = function () { everLive = true; setConn("live", "live"); };
    source.onmessage = function (event) {
      var snapshot;
      try { snapshot = JSON.parse(event.data); } catch (e) { return; }
      setConn("live", "live");
      render(snapshot);
    };
    source.onerror = function () {
      setConn(everLive ? "reconnecting" : "connecting", everLive ? "reconnecting" : "connecting");
      // the browser retries by itself unless the answer was not an event stream (a 503, say): then we do
      if (source.readyState === 2) { source.close(); setTimeout(connect, reconnectMs); }
    };
  }
  setConn("connecting", "connecting");
  connect();
})();
`

/** The page: the title, the sections, and the script that fills them from the event stream. */
export const page = (options: PageOptions): string => {
  const title = escapeHtml(options.title)
  const nonce = escapeHtml(options.nonce)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${title}</title>
<style nonce="${nonce}">${css}</style>
</head>
<body data-events="${escapeHtml(options.eventsPath)}" data-snapshot="${escapeHtml(options.snapshotPath)}" data-reconnect="${options.reconnectMillis}">
<header>
<h1 id="title">${title}</h1>
<span id="overall" title="overall health"></span>
<span id="updated" class="muted"></span>
<span id="conn" class="badge s-connecting" data-state="connecting" role="status" aria-live="polite">connecting</span>
</header>
<main>
<section class="wide"><h2>Alerts</h2><div id="alerts"><p class="empty">Waiting for data…</p></div></section>
<section class="wide"><h2>Circuit breakers</h2><div id="breakers"></div></section>
<section><h2>Rate limiters</h2><div id="limiters"></div></section>
<section><h2>Bulkheads</h2><div id="bulkheads"></div></section>
<section class="wide"><h2>Load balancers</h2><div id="balancers"></div></section>
<section><h2>Adaptive throttles</h2><div id="throttles"></div></section>
<section><h2>Policies</h2><div id="registries"></div></section>
<section class="wide"><h2>Health</h2><div id="health"></div></section>
</main>
<noscript>This dashboard needs JavaScript; the same data is at <a href="${escapeHtml(options.snapshotPath)}">${escapeHtml(options.snapshotPath)}</a>.</noscript>
<script nonce="${nonce}">${script}</script>
</body>
</html>
`
}
