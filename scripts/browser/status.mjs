// Opens dime-edge's status page (GET / on the admin listener) in Debian's chromium, headless, and checks what it
// shows against /metrics and /config read at the same moment: the table version, every route with its requests,
// hit ratio and origin offload, every upstream address with its health, TCP routes with their open streams,
// certificates with their expiry, the cache tiers, and the last refused table's errors. Also checks that the
// page refuses a request without the token, and that no secret given with --secret appears in it.
// Prints what it compared as JSON; exit 0 when everything matches, 1 otherwise.
//
//   node scripts/browser/status.mjs --admin http://127.0.0.1:9901 --token TOKEN [--secret S]... [--screenshot F]
import { parseArgs } from "node:util";
import { withChromium } from "./chromium.mjs";

const { values: opt } = parseArgs({
  options: {
    admin: { type: "string" },
    token: { type: "string" },
    secret: { type: "string", multiple: true, default: [] },
    screenshot: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
if (!opt.admin || !opt.token) {
  console.error("status.mjs: --admin and --token are required");
  process.exit(2);
}
const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };
const near = (a, b) => Math.abs(Number(a) - Number(b)) <= 1e-6 * Math.max(1, Math.abs(Number(b)));

// The Prometheus text format, as far as this check needs it: name, labels, value.
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}
const sum = (metrics, name, keep = () => true) =>
  metrics.filter((s) => s.name === name && keep(s.labels)).reduce((a, s) => a + s.value, 0);

// Without the token: refused, and a browser is asked for it.
const bare = await fetch(`${opt.admin}/`);
check(bare.status === 401, `without the token the page answered ${bare.status}, not 401`);
check((bare.headers.get("www-authenticate") || "").startsWith("Basic"), "the refusal does not ask for credentials");

let html = "";
const seen = await withChromium(opt.chromium, [], async (page) => {
  await page.setViewport({ width: 1100, height: 1000 });
  await page.authenticate({ username: "admin", password: opt.token });
  const answer = await page.goto(`${opt.admin}/`, { waitUntil: "load", timeout: 20000 });
  check(answer.status() === 200, `with the token the page answered ${answer.status()}`);
  html = await page.content();
  const state = await page.evaluate(() => {
    const value = (row, field) => row.querySelector(`[data-field="${field}"]`)?.dataset.value;
    // Each table's rows carry the attribute that names them.
    const key = { routes: "route", upstreams: "address", tcp: "route", certificates: "cert", cache: "tier" };
    const rows = (table) => [...document.querySelectorAll(`#${table} tr[data-${key[table]}]`)];
    return {
      version: document.querySelector('#table [data-field="version"]')?.dataset.value,
      routes: rows("routes").map((r) => ({ name: r.dataset.route, requests: value(r, "requests"),
        hitRatio: value(r, "hit-ratio"), offload: value(r, "offload") })),
      upstreams: rows("upstreams").map((r) => ({ address: r.dataset.address, upstream: r.dataset.upstream,
        healthy: value(r, "healthy") })),
      tcp: rows("tcp").map((r) => ({ name: r.dataset.route, open: value(r, "open") })),
      certificates: rows("certificates").map((r) => ({ name: r.dataset.cert, expiry: value(r, "expiry") })),
      cache: rows("cache").map((r) => ({ tier: r.dataset.tier, stored: value(r, "stored"), budget: value(r, "budget"),
        objects: value(r, "objects"), evictions: value(r, "evictions") })),
      refused: [...document.querySelectorAll("#refused li")].map((li) => li.textContent),
      chart: !!document.querySelector("svg.chart"),
    };
  });
  if (opt.screenshot) await page.screenshot({ path: opt.screenshot, fullPage: true });
  return state;
});

const auth = { headers: { authorization: `Bearer ${opt.token}` } };
const metrics = parseMetrics(await (await fetch(`${opt.admin}/metrics`)).text());
const config = await (await fetch(`${opt.admin}/config`, auth)).json();
const active = config.active;
check(seen.version === active.version, `version ${seen.version} on the page, ${active.version} in /config`);
const routeNames = active.table.http.routes.map((r) => r.name);
check(JSON.stringify(seen.routes.map((r) => r.name)) === JSON.stringify(routeNames),
  `routes ${seen.routes.map((r) => r.name)} on the page, ${routeNames} in /config`);
for (const r of seen.routes) {
  const of = (l) => l.route === r.name;
  check(near(r.requests, sum(metrics, "dime_http_requests_total", of)), `route ${r.name}: requests ${r.requests}`);
  const lookups = sum(metrics, "dime_cache_requests_total", of);
  const hits = sum(metrics, "dime_cache_requests_total", (l) => of(l) && (l.result === "hit" || l.result === "stale"));
  if (lookups > 0) check(near(r.hitRatio, hits / lookups), `route ${r.name}: hit ratio ${r.hitRatio}, ${hits}/${lookups} in /metrics`);
  const sent = sum(metrics, "dime_http_response_body_bytes_total", of);
  const fetched = sum(metrics, "dime_cache_origin_bytes_total", of);
  if (lookups > 0 && sent > 0) check(near(r.offload, 1 - fetched / sent), `route ${r.name}: offload ${r.offload}, 1 - ${fetched}/${sent} in /metrics`);
}
const addresses = active.upstreams.flatMap((u) => u.addresses.map((a) => ({ ...a, upstream: u.name })));
check(seen.upstreams.length === addresses.length, `${seen.upstreams.length} upstream addresses shown, ${addresses.length} in /config`);
for (const a of addresses) {
  const row = seen.upstreams.find((u) => u.address === a.address && u.upstream === a.upstream);
  check(row && row.healthy === String(a.healthy), `upstream ${a.upstream} ${a.address}: ${row?.healthy} shown, healthy=${a.healthy} in /config`);
}
for (const t of seen.tcp) {
  check(near(t.open, sum(metrics, "dime_tcp_connections_active", (l) => l.route === t.name)), `TCP route ${t.name}: open ${t.open}`);
}
const certs = metrics.filter((s) => s.name === "dime_tls_certificate_expiry_timestamp_seconds");
check(seen.certificates.length === certs.length, `${seen.certificates.length} certificates shown, ${certs.length} in /metrics`);
for (const c of certs) {
  const row = seen.certificates.find((r) => r.name === c.labels.cert);
  check(row && Math.abs(Number(row.expiry) - c.value) < 1, `certificate ${c.labels.cert}: expiry ${row?.expiry}, ${c.value} in /metrics`);
}
const memory = seen.cache.find((c) => c.tier === "memory");
check(memory && near(memory.stored, sum(metrics, "dime_cache_stored_bytes")), `memory cache in use ${memory?.stored}`);
check(memory && near(memory.budget, sum(metrics, "dime_cache_budget_bytes")), `memory cache budget ${memory?.budget}`);
check(memory && near(memory.objects, sum(metrics, "dime_cache_objects")), `memory cache objects ${memory?.objects}`);
const rejected = config.last_rejected;
if (rejected) {
  check(JSON.stringify(seen.refused) === JSON.stringify(rejected.errors), `refused errors ${JSON.stringify(seen.refused)} shown, ${JSON.stringify(rejected.errors)} in /config`);
} else {
  check(seen.refused.length === 0, "a refused table is shown but /config has none");
}
check(seen.chart, "no chart");
for (const s of [opt.token, ...opt.secret]) check(!html.includes(s), "a secret appears in the page");
console.log(JSON.stringify({ ...seen, problems }, null, 2));
process.exit(problems.length ? 1 : 0);
