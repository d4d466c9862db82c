//! The status page (`GET /` on the admin listener): what an operator without Grafana reads at a glance. One HTML
//! page with no external asset, rendered here from the same sources as `/metrics` and `/config`: the route table
//! (version, source, age, control and failovers), the last refused table, a chart of the last 10 minutes,
//! routes with hit ratio and origin offload, upstream servers, TCP routes, certificates and the cache.
//!
//! Every value a test compares is also in a `data-value` attribute, unformatted. No secret is rendered: no token,
//! no signing key, no certificate or key material; a control URL loses any user:password part.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::metrics::Metrics;
use crate::state::{unix, State};

/// How often the chart's counters are sampled, and how many samples are kept (10 minutes).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SAMPLES: usize = 61;

/// The page reloads itself this often.
const REFRESH_SECONDS: u32 = 10;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    requests: f64,
    hits: f64,
    lookups: f64,
}

/// The last 10 minutes of request and cache counters, for the chart: a fixed number of samples.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    fn sample(&self, metrics: &Metrics) {
        let requests = metrics.http.requests_total();
        let (hits, lookups) = metrics.cache.hits_and_lookups();
        self.push(Sample { at: unix(SystemTime::now()), requests, hits, lookups });
    }

    fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock();
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// (seconds ago, requests/s, hit ratio if there were cache lookups) between consecutive samples, oldest first.
    fn rates(&self, now: f64) -> Vec<(f64, f64, Option<f64>)> {
        let samples = self.samples.lock();
        samples
            .iter()
            .zip(samples.iter().skip(1))
            .filter(|(a, b)| b.at > a.at)
            .map(|(a, b)| {
                let lookups = b.lookups - a.lookups;
                let ratio = (lookups > 0.0).then(|| (b.hits - a.hits) / lookups);
                (now - b.at, (b.requests - a.requests) / (b.at - a.at), ratio)
            })
            .collect()
    }
}

/// Samples the counters every [`SAMPLE_EVERY`] while the edge runs.
#[derive(Debug)]
pub struct Sampler {
    pub history: Arc<History>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.history.sample(&self.metrics),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The value of `route` in a per-route map from the metrics (0 when it has no series yet).
fn of(map: &HashMap<String, f64>, route: &str) -> f64 {
    map.get(route).copied().unwrap_or(0.0)
}

/// Escapes text for HTML content and attribute values. (Five characters: no template engine is needed for them.)
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A URL without its `user:password@` part.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

fn value_attr(ratio: Option<f64>) -> String {
    ratio.map_or_else(String::new, |r| format!("{r:.6}"))
}

fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut unit) = (n, 0);
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The chart: requests/s (line) and hit ratio (dashed, 0 to 100 %) over the last 10 minutes, as inline SVG.
fn chart(rates: &[(f64, f64, Option<f64>)]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 110.0;
    let span = (SAMPLES - 1) as f64 * SAMPLE_EVERY.as_secs_f64();
    let x = |ago: f64| W - (ago / span * W).min(W);
    let peak = rates.iter().map(|r| r.1).fold(1.0_f64, f64::max);
    let rps: Vec<String> = rates.iter().map(|r| format!("{:.1},{:.1}", x(r.0), H - r.1 / peak * (H - 4.0))).collect();
    let hits: Vec<String> =
        rates.iter().filter_map(|r| r.2.map(|h| format!("{:.1},{:.1}", x(r.0), H - h * (H - 4.0)))).collect();
    format!(
        r##"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="requests per second and hit ratio, last 10 minutes">
<line x1="0" y1="{H}" x2="{W}" y2="{H}" class="axis"/>
<polyline class="rps" points="{}"/><polyline class="hits" points="{}"/>
</svg>
<p class="legend"><span class="k-rps">━</span> requests/s (peak {peak:.1}) &nbsp; <span class="k-hits">┅</span> hit ratio (0–100 %) &nbsp; last 10 minutes, sampled every {} s{}</p>"##,
        rps.join(" "),
        hits.join(" "),
        SAMPLE_EVERY.as_secs(),
        if rates.is_empty() { " — no samples yet" } else { "" },
    )
}

/// The whole page.
pub fn render(state: &State, history: &History) -> String {
    let m = &state.metrics;
    let now = unix(SystemTime::now());
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>dime-edge status</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }}
main {{ max-width: 1100px; margin: 0 auto; padding: 16px 20px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 15px; margin: 22px 0 6px; }}
table {{ border-collapse: collapse; width: 100%; background: #fff; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #e4e4e0; font-variant-numeric: tabular-nums; }}
th {{ font-weight: 600; color: #555; font-size: 12px; }}
.ok {{ color: #17692a; }} .bad {{ color: #b3261e; font-weight: 600; }} .dim {{ color: #777; }}
.refused {{ background: #fdecea; border: 1px solid #f1b0a8; padding: 8px 12px; }}
.refused li {{ font-family: ui-monospace, monospace; font-size: 12px; }}
.chart {{ width: 100%; max-width: 600px; height: 110px; background: #fff; display: block; }}
.chart .rps {{ fill: none; stroke: #2c5fb3; stroke-width: 2; }} .chart .hits {{ fill: none; stroke: #17692a; stroke-width: 2; stroke-dasharray: 5 3; }}
.chart .axis {{ stroke: #bbb; }} .legend {{ font-size: 12px; color: #555; margin: 4px 0 0; }}
.k-rps {{ color: #2c5fb3; }} .k-hits {{ color: #17692a; }}
</style></head><body><main>
<h1>dime-edge status</h1>
<p class="dim">dime-edge {} &middot; refreshed every {REFRESH_SECONDS} s &middot; <a href="/metrics">/metrics</a> &middot; <a href="/config">/config</a></p>
"##,
        esc(env!("CARGO_PKG_VERSION")),
    );
    table_section(&mut html, state, now);
    html.push_str("<h2>Traffic</h2>\n");
    html.push_str(&chart(&history.rates(now)));
    routes_section(&mut html, state, m);
    upstreams_section(&mut html, state);
    tcp_section(&mut html, state, m);
    certificates_section(&mut html, m, now);
    cache_section(&mut html, m);
    html.push_str("</main></body></html>\n");
    html
}

fn table_section(html: &mut String, state: &State, now: f64) {
    html.push_str("<h2>Route table</h2>\n<table id=\"table\">");
    match state.current() {
        Some(a) => {
            let applied = unix(a.applied_at);
            let _ = write!(
                html,
                "<tr><th>version</th><td data-field=\"version\" data-value=\"{v}\">{v}</td></tr>\
                 <tr><th>source</th><td data-field=\"source\">{}</td></tr>\
                 <tr><th>applied</th><td data-field=\"age\" data-value=\"{:.0}\">{}</td></tr>",
                esc(&a.source),
                now - applied,
                ago(now - applied),
                v = esc(a.table.version()),
            );
        }
        None => html.push_str("<tr><td class=\"bad\" data-field=\"version\">no route table yet</td></tr>"),
    }
    if let Some(sync) = state.sync_status() {
        let _ = write!(
            html,
            "<tr><th>control</th><td data-field=\"control\">{}</td></tr>\
             <tr><th>last answer</th><td>{}</td></tr>\
             <tr><th>failovers</th><td data-field=\"failovers\" data-value=\"{f}\">{f}</td></tr>",
            esc(&without_credentials(&sync.control)),
            sync.last_success.map_or_else(|| "never".to_owned(), |t| ago(now - unix(t))),
            f = sync.failovers,
        );
        if let Some(e) = &sync.last_error {
            let _ = write!(html, "<tr><th>last error</th><td class=\"bad\">{}</td></tr>", esc(e));
        }
    }
    html.push_str("</table>\n");
    if let Some(r) = state.last_rejected() {
        let _ = write!(
            html,
            "<div class=\"refused\" id=\"refused\"><strong>Last refused table</strong> from {} ({}), {} error(s); \
             the table above kept serving:<ul>",
            esc(&r.source),
            ago(now - r.at_unix),
            r.errors.len(),
        );
        for e in &r.errors {
            let _ = write!(html, "<li>{}</li>", esc(e));
        }
        html.push_str("</ul></div>\n");
    }
}

fn routes_section(html: &mut String, state: &State, m: &Metrics) {
    html.push_str(
        "<h2>Routes</h2>\n<table id=\"routes\"><tr><th>route</th><th>matches</th><th>upstream</th><th>requests</th>\
         <th>hit ratio</th><th>origin offload</th></tr>",
    );
    let Some(active) = state.current() else {
        html.push_str("</table>\n");
        return;
    };
    let requests = m.http.requests_by_route();
    let (hits, lookups) = m.cache.hits_and_lookups_by_route();
    let (sent, fetched) = (m.http.response_bytes_by_route(), m.cache.origin_bytes_by_route());
    for route in active.table.routes() {
        let name = route.name.as_str();
        let mut matches: Vec<String> = route
            .matches
            .iter()
            .map(|mt| {
                let hosts: Vec<String> = mt.hosts.iter().map(|h| h.to_string()).collect();
                let hosts = if hosts.is_empty() { "any host".to_owned() } else { hosts.join(", ") };
                format!("{hosts} {}", mt.paths.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))
            })
            .collect();
        if matches.is_empty() {
            matches.push("any host, any path".to_owned());
        }
        let requests = of(&requests, name);
        let (hit_ratio, offload) = if route.cache.is_some() {
            let (hits, lookups, sent) = (of(&hits, name), of(&lookups, name), of(&sent, name));
            ((lookups > 0.0).then(|| hits / lookups), (sent > 0.0).then(|| 1.0 - of(&fetched, name) / sent))
        } else {
            (None, None)
        };
        let cached = if route.cache.is_some() { "" } else { " <span class=\"dim\">(not cached)</span>" };
        let _ = write!(
            html,
            "<tr data-route=\"{n}\"><td>{n}{cached}</td><td>{}</td><td>{}</td>\
             <td data-field=\"requests\" data-value=\"{requests}\">{requests}</td>\
             <td data-field=\"hit-ratio\" data-value=\"{}\">{}</td>\
             <td data-field=\"offload\" data-value=\"{}\">{}</td></tr>",
            esc(&matches.join("; ")),
            esc(&route.upstream),
            value_attr(hit_ratio),
            percent(hit_ratio),
            value_attr(offload),
            percent(offload),
            n = esc(name),
        );
    }
    html.push_str("</table>\n");
}

fn upstreams_section(html: &mut String, state: &State) {
    html.push_str(
        "<h2>Upstream servers</h2>\n<table id=\"upstreams\"><tr><th>upstream</th><th>server</th><th>address</th>\
         <th>weight</th><th>health check</th><th>passive ejection</th></tr>",
    );
    if let Some(active) = state.current() {
        let now_ms = crate::upstream::pool::now_ms();
        for pool in active.pools.values() {
            for e in pool.endpoints().list.iter() {
                let healthy = e.is_healthy();
                let ejected = e.is_ejected(now_ms);
                let _ = write!(
                    html,
                    "<tr data-upstream=\"{}\" data-address=\"{addr}\"><td>{}</td><td>{}</td><td>{addr}</td><td>{}</td>\
                     <td data-field=\"healthy\" data-value=\"{healthy}\" class=\"{}\">{}</td>\
                     <td data-field=\"ejected\" data-value=\"{ejected}\" class=\"{}\">{}</td></tr>",
                    esc(pool.name()),
                    esc(pool.name()),
                    esc(&pool.spec.servers[e.server].authority()),
                    e.weight,
                    if healthy { "ok" } else { "bad" },
                    if healthy { "passing" } else { "failing" },
                    if ejected { "bad" } else { "ok" },
                    if ejected { "ejected" } else { "in rotation" },
                    addr = e.addr,
                );
            }
        }
    }
    html.push_str("</table>\n");
}

fn tcp_section(html: &mut String, state: &State, m: &Metrics) {
    let Some(active) = state.current() else { return };
    if active.table.tcp_routes().is_empty() {
        return;
    }
    html.push_str(
        "<h2>TCP routes</h2>\n<table id=\"tcp\"><tr><th>route</th><th>entrypoints</th><th>upstream</th>\
         <th>open streams</th><th>connections</th></tr>",
    );
    let (open, total) = (m.tcp.active_by_route(), m.tcp.connections_by_route());
    for route in active.table.tcp_routes() {
        let name = route.name.as_str();
        let (open, total) = (of(&open, name), of(&total, name));
        let _ = write!(
            html,
            "<tr data-route=\"{n}\"><td>{n}</td><td>{}</td><td>{}</td>\
             <td data-field=\"open\" data-value=\"{open}\">{open}</td><td data-field=\"connections\" data-value=\"{total}\">{total}</td></tr>",
            esc(&route.entrypoints.join(", ")),
            esc(&route.upstream),
            n = esc(name),
        );
    }
    html.push_str("</table>\n");
}

fn certificates_section(html: &mut String, m: &Metrics, now: f64) {
    let certs = m.tls.cert_expiries();
    if certs.is_empty() {
        return;
    }
    html.push_str("<h2>Certificates</h2>\n<table id=\"certificates\"><tr><th>certificate</th><th>expires</th></tr>");
    for (name, expiry) in certs {
        let days = (expiry - now) / 86_400.0;
        let when = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(expiry.max(0.0)));
        let _ = write!(
            html,
            "<tr data-cert=\"{n}\"><td>{n}</td><td data-field=\"expiry\" data-value=\"{expiry:.0}\" class=\"{}\">{} ({:.0} days)</td></tr>",
            if days < 14.0 { "bad" } else { "ok" },
            esc(&when),
            days,
            n = esc(&name),
        );
    }
    html.push_str("</table>\n");
}

fn cache_section(html: &mut String, m: &Metrics) {
    html.push_str(
        "<h2>Cache</h2>\n<table id=\"cache\"><tr><th>tier</th><th>budget</th><th>in use</th><th>objects</th>\
         <th>evictions</th></tr>",
    );
    let (d, mem) = (&m.disk, &m.memory);
    let memory = ("memory", [&mem.budget_bytes, &mem.stored_bytes, &mem.objects], &mem.evictions);
    let disk = ("disk", [&d.budget_bytes, &d.stored_bytes, &d.objects], &d.evictions);
    let tiers = if d.enabled.get() == 1 { vec![memory, disk] } else { vec![memory] };
    for (tier, [budget, stored, objects], evictions) in tiers {
        let (budget, stored, objects, evictions) = (budget.get(), stored.get(), objects.get(), evictions.get());
        let _ = write!(
            html,
            "<tr data-tier=\"{tier}\"><td>{tier}</td><td data-field=\"budget\" data-value=\"{budget}\">{}</td>\
             <td data-field=\"stored\" data-value=\"{stored}\">{}</td><td data-field=\"objects\" data-value=\"{objects}\">{objects}</td>\
             <td data-field=\"evictions\" data-value=\"{evictions}\">{evictions}</td></tr>",
            bytes(budget as f64),
            bytes(stored as f64),
        );
    }
    html.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_credentials_are_dropped() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(without_credentials("https://u:secret@control.test:8443/v1"), "https://control.test:8443/v1");
        assert_eq!(without_credentials("http://control.test"), "http://control.test");
    }

    #[test]
    fn the_history_keeps_ten_minutes_and_gives_rates() {
        let history = History::default();
        for i in 0..100 {
            let i = f64::from(i);
            history.push(Sample { at: i * 10.0, requests: i * 50.0, hits: i * 3.0, lookups: i * 4.0 });
        }
        let rates = history.rates(990.0);
        assert_eq!(rates.len(), SAMPLES - 1, "bounded");
        assert_eq!(rates.last().map(|r| (r.0, r.1, r.2)), Some((0.0, 5.0, Some(0.75))));
    }
}
