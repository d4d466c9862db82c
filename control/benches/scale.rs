//! Control at scale: 1,000 routes in 200 ConfigMaps on a real kube-apiserver, 100 long-polling clients speaking
//! the edges' protocol (GET /v1/routes, If-None-Match, ?wait=30s; simulated in-process because 100 edge processes
//! would measure this machine rather than control). Reports initial sync time, propagation from a ConfigMap
//! edit to every client (p50/p99), control's CPU per edit and its memory.
//!
//!   cargo bench -p dime-control --bench scale -- [--configmaps N] [--routes-per-configmap N] [--clients N] [--edits N]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::Api;
use support::*;
use tokio::sync::watch;

fn option(args: &[String], name: &str, default: usize) -> usize {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].parse().expect(name)).unwrap_or(default)
}

fn routes_text(cm: usize, routes: usize, generation: usize) -> String {
    let mut text = String::from("version: 1\nhttp:\n  routes:\n");
    for r in 0..routes {
        text.push_str(&format!(
            "    - {{ name: cm{cm}-r{r}, match: [{{ hosts: [h{cm}.example.com], paths: [{{ prefix: /g{generation}/p{r}/ }}] }}], upstream: u{cm} }}\n"
        ));
    }
    text.push_str(&format!(
        "  upstreams:\n    u{cm}: {{ servers: [{{ url: \"http://10.0.{}.{}:8080\" }}] }}\n",
        cm / 250,
        cm % 250
    ));
    text
}

/// CPU seconds (user + system) and peak/current resident memory (KiB) of a process.
fn usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> u64 {
        status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
    };
    (ticks / 100.0, kib("VmHWM:"), kib("VmRSS:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One simulated edge: long-polls forever, publishing (tables received, when the last arrived).
async fn client(url: String, tx: watch::Sender<(usize, Instant)>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().unwrap();
    let mut etag: Option<String> = None;
    loop {
        let mut req = http.get(format!("{url}/v1/routes?wait=30s")).bearer_auth(TOKEN);
        if let Some(e) = &etag {
            req = req.header("if-none-match", e);
        }
        let Ok(resp) = req.send().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if resp.status() == 200 {
            etag = resp.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
            let _ = resp.bytes().await;
            let at = Instant::now();
            tx.send_modify(|(n, t)| {
                *n += 1;
                *t = at;
            });
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let configmaps = option(&args, "--configmaps", 200);
    let per = option(&args, "--routes-per-configmap", 5);
    let clients = option(&args, "--clients", 100);
    let edits = option(&args, "--edits", 20);
    eprintln!(
        "==> control scale: {configmaps} ConfigMaps x {per} routes, {clients} long-polling clients, {edits} edits"
    );

    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    let pp = PostParams::default();
    for i in 0..configmaps {
        let cm = configmap(&format!("routes-{i:03}"), ("dime-routes", "true"), "routes.yaml", &routes_text(i, per, 0));
        cms.create(&pp, &cm).await.unwrap();
    }
    eprintln!("==> {configmaps} ConfigMaps created; starting dime-control");
    let started = Instant::now();
    let control = start_control(&kube);
    let pid = control.child.id();
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(format!("{}/v1/routes", control.url)).bearer_auth(TOKEN).send().await {
            if r.status() == 200 {
                let body = r.text().await.unwrap();
                let table = dime_routes::parse("served", &body).unwrap();
                assert_eq!(table.routes().len(), configmaps * per, "every route served");
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "control never served the table");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sync_time = started.elapsed();
    eprintln!("==> first full table after {sync_time:?}; starting {clients} clients");

    let mut receivers = Vec::new();
    for _ in 0..clients {
        let (tx, rx) = watch::channel((0usize, Instant::now()));
        tokio::spawn(client(control.url.clone(), tx));
        receivers.push(rx);
    }
    // Every client holds the current table and is waiting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receivers.iter().any(|r| r.borrow().0 == 0) {
        assert!(Instant::now() < deadline, "clients never got the first table");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (cpu_before, _, _) = usage(pid);
    let mut samples = Vec::new();
    let mut per_edit = Vec::new();
    for e in 0..edits {
        let target = (e * 37) % configmaps;
        let counts: Vec<usize> = receivers.iter().map(|r| r.borrow().0).collect();
        let name = format!("routes-{target:03}");
        let mut cm = cms.get(&name).await.unwrap();
        cm.data = Some(BTreeMap::from([("routes.yaml".to_owned(), routes_text(target, per, e + 1))]));
        let t0 = Instant::now();
        cms.replace(&name, &pp, &cm).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while receivers.iter().zip(&counts).any(|(r, c)| r.borrow().0 <= *c) {
            assert!(Instant::now() < deadline, "edit {e} did not reach every client");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut lat: Vec<Duration> = receivers.iter().map(|r| r.borrow().1.saturating_duration_since(t0)).collect();
        lat.sort();
        per_edit.push(lat[lat.len() - 1]);
        samples.extend(lat);
        eprintln!("  edit {}/{edits}: all {clients} clients updated after {:?}", e + 1, per_edit[e]);
        // Let the debounce window close so edits are measured one by one.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let (cpu_after, peak_kib, rss_kib) = usage(pid);
    samples.sort();
    per_edit.sort();
    let cpu_per_edit = (cpu_after - cpu_before) / edits as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!(
        "control scale ({configmaps} ConfigMaps, {} routes, {clients} clients, {edits} edits; this machine)",
        configmaps * per
    );
    println!("  first full table after start       {:>8.0} ms", ms(sync_time));
    println!("  propagation edit -> client  p50    {:>8.1} ms", ms(percentile(&samples, 0.50)));
    println!("  propagation edit -> client  p99    {:>8.1} ms", ms(percentile(&samples, 0.99)));
    println!("  edit -> last of all clients  max   {:>8.1} ms", ms(per_edit[per_edit.len() - 1]));
    println!("  control CPU per edit               {:>8.1} ms (compile + {clients} answers)", cpu_per_edit * 1000.0);
    println!(
        "  control memory                     {:>8.1} MiB resident, {:.1} MiB peak",
        rss_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
}
