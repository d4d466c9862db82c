//! Fleet purge, all real: etcd + kube-apiserver (RBAC) → two dime-control replicas (as their ServiceAccount,
//! sharing the purge log ConfigMap and the edges' Leases) → five dime-edge processes, three pulling from
//! replica A and two from replica B. A purge sent to either replica reaches every edge and is acknowledged by
//! all; URL, prefix and tag purges remove exactly what they name; a soft purge revalidates and serves stale while
//! the origin fails; a fill in flight is not stored; bad purges are refused and lose nothing; an edge stopped
//! during a purge applies it when it returns; an edge frozen past the log's bound drops its whole cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::time::Duration;

use indoc::formatdoc;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::Api;
use support::*;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
/// The log keeps this many purges in the test, so that a gap is quick to make.
const LOG_ENTRIES: &str = "6";

fn routes(origin: &Origin) -> String {
    formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: video, match: [{{ hosts: [video.test] }}], upstream: o, cache: {{}} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    )
}

/// An object of the test: its request target (the origin's behaviour in the query) and its URL.
struct Object {
    target: String,
}

impl Object {
    fn new(ask: dime_testkit::Ask) -> Object {
        Object { target: ask.cache_control("max-age=300, stale-if-error=300").to_string() }
    }
    fn url(&self) -> String {
        format!("http://video.test{}", self.target)
    }
}

async fn hit(edge: &Edge, object: &Object) -> bool {
    let r = edge.get("video.test", object.target.as_str()).await;
    assert_eq!(r.status, 200, "{}: {}", object.target, r.body);
    r.header("cache-status").contains("hit")
}

/// Every edge: each object is (`true`) or is not a hit now.
async fn hits(edges: &[Edge], objects: &[(&Object, bool)], when: &str) {
    for (i, edge) in edges.iter().enumerate() {
        for (object, want) in objects {
            assert_eq!(hit(edge, object).await, *want, "{when}: edge {} {}", NAMES[i], object.target);
        }
    }
}

/// POSTs a purge (JSON) to `control` with `token`: status and answer.
async fn purge(http: &reqwest::Client, control: &Control, token: &str, body: &str) -> (u16, serde_json::Value) {
    let r = http
        .post(format!("{}/v1/purge?wait=5s", control.url))
        .bearer_auth(token)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// A purge every edge acknowledged: its id.
async fn purged_everywhere(http: &reqwest::Client, control: &Control, body: &str) -> u64 {
    let (status, answer) = purge(http, control, PURGE_TOKEN, body).await;
    assert_eq!(status, 200, "{answer}");
    let log = std::fs::read_to_string(control.dir.path().join("control.log")).unwrap_or_default();
    assert_eq!(answer["all_acked"], true, "{answer}\ncontrol's log:\n{log}");
    let edges = answer["edges"].as_object().unwrap();
    assert_eq!(edges.len(), NAMES.len(), "{answer}");
    assert!(edges.values().all(|e| e["state"] == "acked" && e["acked_ms"].as_i64().is_some()), "{answer}");
    answer["id"].as_u64().unwrap()
}

/// A real API server with control's RBAC, an origin, and the `video` routes ConfigMap in front of it.
async fn cluster() -> (Kube, kube::Client, Origin) {
    let kube = Kube::start();
    let k = kube.client().await;
    apply_rbac(&k).await;
    let origin = Origin::start("o").await;
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    let routes = configmap("video", ("dime-routes", "true"), "routes.yaml", &routes(&origin));
    cms.create(&PostParams::default(), &routes).await.unwrap();
    (kube, k, origin)
}

/// An edge with a disk tier, so purges are checked on disk copies too and a restart keeps the cache.
async fn start_edge(controls: &[&str], dir: &std::path::Path, name: &str) -> Edge {
    let state = dir.join(format!("state-{name}"));
    let cache = dir.join(format!("cache-{name}"));
    let args = ["--edge-name", name, "--cache-dir", cache.to_str().unwrap()];
    Edge::with_control(controls, &dir.join(format!("token-{name}")), &state, &args).await
}

fn signal(edge: &Edge, which: &str) {
    let status = Command::new("kill").args([which, &edge.pid().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_sent_to_any_replica_reaches_every_edge() {
    let (kube, k, origin) = cluster().await;
    let a = start_control_args(&kube, None, &["--purge-log-entries", LOG_ENTRIES]);
    let b = start_control_args(&kube, None, &["--purge-log-entries", LOG_ENTRIES]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut edges = Vec::new();
    for name in NAMES {
        edge_credential(&k, w, name).await;
    }
    for (i, name) in NAMES.iter().enumerate() {
        let control = if i < 3 { &a.url } else { &b.url };
        edges.push(start_edge(&[control], w, name).await);
    }
    for edge in &edges {
        let what = "an edge never got its table";
        eventually(
            secs(20),
            ms(100),
            what,
            || edge.log_text(),
            || async move { (edge.admin("/readyz").await.0 == 200).then_some(()) },
        )
        .await;
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    // Every edge follows the log (its Lease says which purge it applied last), on either replica.
    let (h, c) = (&http, &b);
    eventually(secs(20), ms(100), "the edges never all followed the purge log", String::new, || async move {
        let r = h.get(format!("{}/v1/edges", c.url)).bearer_auth(TOKEN).send().await.ok()?;
        let view: serde_json::Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
        let following = view["edges"].as_array()?.iter().filter(|e| e["purge_applied"].is_u64()).count();
        (following == NAMES.len()).then_some(())
    })
    .await;

    let keep = Object::new(dime_testkit::ask("/keep.html").surrogate_key("site"));
    let page = Object::new(dime_testkit::ask("/page.html"));
    let seg_x = Object::new(dime_testkit::ask("/hls/x.ts").size(3000));
    let seg_y = Object::new(dime_testkit::ask("/hls/y.ts").size(3000));
    let news = Object::new(dime_testkit::ask("/news.html").surrogate_key("news site"));
    let sport = Object::new(dime_testkit::ask("/sport.html").cache_tag("sport,site"));
    let all = [&keep, &page, &seg_x, &seg_y, &news, &sport];
    for edge in &edges {
        for o in all {
            hit(edge, o).await;
        }
    }
    let cached: Vec<(&Object, bool)> = all.iter().map(|o| (*o, true)).collect();
    hits(&edges, &cached, "filled").await;

    // URL purge through A; every edge, on A or B, acknowledges it; only that URL is gone.
    purged_everywhere(&http, &a, &serde_json::json!({ "urls": [page.url()] }).to_string()).await;
    hits(&edges, &[(&page, false), (&keep, true), (&news, true)], "after the URL purge").await;
    // Prefix purge through B.
    let prefix = r#"{"prefixes": [{"host": "video.test", "prefix": "/hls/"}]}"#;
    purged_everywhere(&http, &b, prefix).await;
    hits(&edges, &[(&seg_x, false), (&seg_y, false), (&keep, true)], "after the prefix purge").await;
    // Tag purge with the CLI, through B: `news` names news.html only (sport.html's tags are sport, site).
    let out = Command::new(env!("CARGO_BIN_EXE_dime-control"))
        .args(["purge", "--tag", "news", "--control", &b.url, "--token-file"])
        .arg(b.dir.path().join("purge-tokens"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dime-control purge: {said}");
    assert!(said.contains("applied by 5 of 5 live edges"), "{said}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["all_acked"], true);
    hits(&edges, &[(&news, false), (&sport, true), (&keep, true)], "after the tag purge").await;
    let tagged = edges[0].metric(r#"dime_cache_purged_total{kind="tag"}"#).await;
    assert_eq!(tagged, 1.0, "edge a purged one object by tag");

    // Soft purge: kept but stale, so revalidated; served stale while the origin fails.
    purged_everywhere(&http, &a, r#"{"tags": ["sport"], "soft": true}"#).await;
    let before = origin.hits_for("/sport.html");
    assert!(!hit(&edges[0], &sport).await, "a soft-purged object is revalidated");
    assert_eq!(origin.hits_for("/sport.html"), before + 1);
    assert!(hit(&edges[0], &sport).await, "and fresh again after");
    purged_everywhere(&http, &a, r#"{"tags": ["sport"], "soft": true}"#).await;
    origin.set_down(true);
    let r = edges[1].get("video.test", sport.target.as_str()).await;
    assert_eq!(r.status, 200, "served stale while the origin is down");
    assert!(r.header("cache-status").contains("detail=stale"), "{}", r.header("cache-status"));
    origin.set_down(false);

    // A fill in flight when the purge arrives is not stored: the next request fetches again.
    let slow = Object::new(dime_testkit::ask("/slow.html").size(4000).chunks(4, Duration::from_millis(400)));
    let filling = {
        let (e, target) = (&edges[2], slow.target.clone());
        let url = format!("http://{}{target}", e.http);
        let client = e.client.clone();
        tokio::spawn(async move { client.get(url).header("host", "video.test").send().await.unwrap().status() })
    };
    eventually(secs(5), ms(20), "the slow fill never started", String::new, || async {
        (origin.hits_for("/slow.html") == 1).then_some(())
    })
    .await;
    purged_everywhere(&http, &b, &serde_json::json!({ "urls": [slow.url()] }).to_string()).await;
    assert_eq!(filling.await.unwrap(), 200, "the viewer of the abandoned fill still gets it");
    assert!(!hit(&edges[2], &slow).await, "the fill that began before the purge was not stored");
    assert_eq!(origin.hits_for("/slow.html"), 2);

    // Bad purges: a clear 4xx each, and nothing purged.
    let head = purge(&http, &a, PURGE_TOKEN, r#"{"tags":["site"],"soft":true}"#).await.1["id"].as_u64().unwrap();
    let huge = serde_json::json!({ "tags": vec!["t".repeat(200); 5000] }).to_string();
    assert!(huge.len() > 1_000_000);
    let edge_a = edge_token("a");
    let bad: [(&str, &str, u16, &str); 6] = [
        (PURGE_TOKEN, r#"{"tags":["site"],"host":"video.test"}"#, 400, "unknown field `host`"),
        (PURGE_TOKEN, "{}", 400, "an empty purge"),
        (PURGE_TOKEN, &huge, 413, "over 64 KiB"),
        (TOKEN, r#"{"tags":["site"]}"#, 403, "an edge token cannot purge"),
        (&edge_a, r#"{"tags":["site"]}"#, 403, "an edge token cannot purge"),
        ("not-a-token-of-this-control", r#"{"tags":["site"]}"#, 401, "wrong purge token"),
    ];
    for (token, body, status, says) in bad {
        let (got, answer) = purge(&http, &b, token, body).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer.to_string().contains(says), "{answer}");
    }
    let r = http.get(format!("{}/v1/routes", a.url)).bearer_auth(PURGE_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 403, "a purge token cannot read the route table");
    let r = http.get(format!("{}/v1/purge/{}", a.url, head + 1)).bearer_auth(PURGE_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404, "no purge was added by the bad ones");
    // (`site` soft-purged just above: keep.html revalidates once, then is a hit again.)
    let before = origin.hits_for("/keep.html");
    hits(&edges, &[(&keep, false)], "revalidated after the soft purge").await;
    assert_eq!(origin.hits_for("/keep.html"), before + NAMES.len(), "one revalidation per edge");
    hits(&edges, &[(&keep, true)], "the bad purges removed nothing").await;

    // An edge stopped (SIGKILL) during a purge: pending while away, acknowledged once back; never the purged
    // object, though its disk tier kept it; what the purge did not name is served from disk without the origin.
    let on_disk = Object::new(dime_testkit::ask("/vod/site.mp4").size(5000).surrogate_key("site"));
    let untouched = Object::new(dime_testkit::ask("/vod/other.mp4").size(5000));
    let e = &edges[4];
    let written = e.metric("dime_cache_disk_writes_total").await;
    for o in [&on_disk, &untouched] {
        hit(e, o).await;
    }
    e.metric_at_least(
        "dime_cache_disk_writes_total",
        written + 2.0,
        secs(10),
        "edge e never wrote its objects to disk",
    )
    .await;
    edges[4].stop();
    let (status, answer) = purge(&http, &a, PURGE_TOKEN, r#"{"tags":["site"]}"#).await;
    assert_eq!(status, 200);
    assert_eq!((answer["all_acked"].clone(), answer["edges"]["e"]["state"].clone()), (false.into(), "pending".into()));
    let id = answer["id"].as_u64().unwrap();
    edges[4] = start_edge(&[&b.url], w, "e").await;
    let status_of = format!("{}/v1/purge/{id}?wait=20s", b.url);
    let later = http.get(&status_of).bearer_auth(PURGE_TOKEN).send().await.unwrap().text().await.unwrap();
    let later: serde_json::Value = serde_json::from_str(&later).unwrap();
    assert_eq!(later["all_acked"], true, "{later}");
    assert_eq!(later["edges"]["e"]["state"], "acked");
    hits(&edges, &[(&keep, false)], "purged by tag site").await;
    let before = origin.hits_for("/vod/other.mp4");
    assert!(hit(&edges[4], &untouched).await, "edge e serves what the purge did not name from its disk");
    assert_eq!(origin.hits_for("/vod/other.mp4"), before);
    assert!(!hit(&edges[4], &on_disk).await, "edge e applied the purge it missed to its disk");

    // An edge frozen (SIGSTOP) while more purges pass than the log keeps: back, it cannot prove anything fresh
    // and drops its whole cache; the others keep theirs.
    hits(&edges, &[(&keep, true)], "refilled").await;
    signal(&edges[3], "-STOP");
    for i in 0..8 {
        let (status, _) = purge(&http, &a, PURGE_TOKEN, &format!(r#"{{"tags":["other-{i}"]}}"#)).await;
        assert_eq!(status, 200);
    }
    signal(&edges[3], "-CONT");
    let d = &edges[3];
    eventually(
        secs(20),
        ms(100),
        "edge d never saw the gap",
        || d.log_text(),
        || async move { (d.metric("dime_purge_gaps_total").await == 1.0).then_some(()) },
    )
    .await;
    assert!(d.log_with("missed fleet purges").await.contains("dropped every cached object"));
    assert!(!hit(d, &keep).await, "edge d dropped what it could not prove fresh");
    assert!(hit(&edges[0], &keep).await, "edge a missed nothing and keeps its cache");

    let metrics = http.get(format!("{}/metrics", a.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dime_control_purge_requests_total{result=\"accepted\"}"), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("dime_control_purge_ack_seconds_count ")), "{metrics}");
}

/// Two replicas, one whose watch of the purge log hangs (its API connection held by a proxy the test pauses): an
/// edge that applied purges through the other replica and then polls the lagging one is ahead of it, and must
/// not be told it missed anything (the old answer, a gap, dropped its whole disk cache). It waits, and applies
/// what comes once the replica catches up. Then the purge fence: a fleet of three whose owner follows the lagging
/// replica applies a purge last; the others, which applied it, never refill from the owner's old copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_lag_neither_empty_caches_nor_let_the_tier_undo_a_purge() {
    let (kube, k, origin) = cluster().await;
    let proxy = Pausable::start(Pausable::api_addr(&kube.control_kubeconfig())).await;
    let a = start_control_args(&kube, None, &[]);
    let lagging_kubeconfig = proxy.kubeconfig(&kube.control_kubeconfig(), "lagging-kubeconfig");
    let b = start_control_through(&kube, &lagging_kubeconfig, None, &[]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    edge_credential(&k, w, "a").await;
    for c in [&a, &b] {
        eventually(secs(20), ms(100), "a replica never got ready", String::new, || async move {
            let r = reqwest::get(format!("{}/readyz", c.url)).await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }
    // The first purge both replicas read; then b's API access hangs and two more pass through a only.
    let (status, _) = purge(&http, &a, PURGE_TOKEN, r#"{"tags":["first"]}"#).await;
    assert_eq!(status, 200);
    let lagging_head = 1;
    eventually(secs(20), ms(100), "replica b never read the first purge", String::new, || {
        let (http, b) = (&http, &b);
        async move {
            let url = format!("{}/v1/purges?wait=0s", b.url);
            let text = http.get(url).bearer_auth(edge_token("a")).send().await.ok()?.text().await.ok()?;
            let feed: serde_json::Value = serde_json::from_str(&text).ok()?;
            (feed["head"] == lagging_head).then_some(())
        }
    })
    .await;
    proxy.pause();
    let mut edge = start_edge(&[&a.url], w, "a").await;
    let keep = Object::new(dime_testkit::ask("/keep.html").size(3000));
    assert!(!hit(&edge, &keep).await);
    edge.metric_at_least("dime_cache_disk_writes_total", 1.0, secs(10), "the edge never wrote keep.html to disk").await;
    for tag in ["second", "third"] {
        let (status, _) = purge(&http, &a, PURGE_TOKEN, &format!(r#"{{"tags":["{tag}"]}}"#)).await;
        assert_eq!(status, 200);
    }
    eventually(
        secs(20),
        ms(50),
        "the edge never applied purge 3",
        || edge.log_text(),
        || {
            let edge = &edge;
            async move { (edge.metric("dime_purge_applied_seq").await == 3.0).then_some(()) }
        },
    )
    .await;

    // The edge restarts on replica b alone, which still thinks the log ends at purge 1.
    edge.stop();
    let edge = start_edge(&[&b.url], w, "a").await;
    eventually(
        secs(20),
        ms(100),
        "the restarted edge never got its table",
        || edge.log_text(),
        || {
            let edge = &edge;
            async move { (edge.admin("/readyz").await.0 == 200).then_some(()) }
        },
    )
    .await;
    let before = origin.hits_for("/keep.html");
    assert!(hit(&edge, &keep).await, "keep.html from the disk: the edge was told no gap");
    assert_eq!(origin.hits_for("/keep.html"), before);
    assert_eq!(edge.metric("dime_purge_gaps_total").await, 0.0, "{}", edge.log_text());
    assert_eq!(edge.metric("dime_purge_applied_seq").await, 3.0, "the edge stays where it was");
    let metrics = http.get(format!("{}/metrics", b.url)).send().await.unwrap().text().await.unwrap();
    let behind = metrics.lines().find_map(|l| l.strip_prefix("dime_control_purge_feed_behind_total ")).unwrap_or("0");
    assert!(behind.parse::<f64>().unwrap() >= 1.0, "the lagging replica counts the edge ahead of it: {behind}");
    assert!(edge.metric("dime_purge_replica_behind_total").await >= 1.0, "the edge counts the replica behind it");

    // Given both replicas, the lagging one first, the edge is not held by it: told it is behind, the edge asks
    // the other first from then on, and a purge made meanwhile reaches it while b still hangs.
    let mut edge = edge;
    edge.stop();
    let mut edge = start_edge(&[&b.url, &a.url], w, "a").await;
    let e = &edge;
    e.metric_at_least("dime_purge_replica_behind_total", 1.0, secs(20), "the edge never heard that b is behind").await;
    let (status, _) = purge(&http, &a, PURGE_TOKEN, r#"{"tags":["fourth"]}"#).await;
    assert_eq!(status, 200);
    eventually(
        secs(20),
        ms(50),
        "the edge never applied purge 4 through a",
        || e.log_text(),
        || async move { (e.metric("dime_purge_applied_seq").await == 4.0).then_some(()) },
    )
    .await;
    edge.stop();
    let edge = start_edge(&[&b.url], w, "a").await;

    // b's API access comes back: its watch catches up, and the next purge reaches the edge through b.
    proxy.resume();
    let (status, _) = purge(&http, &a, PURGE_TOKEN, r#"{"tags":["fifth"]}"#).await;
    assert_eq!(status, 200);
    eventually(
        secs(60),
        ms(100),
        "the edge never applied purge 5 through b",
        || edge.log_text(),
        || {
            let edge = &edge;
            async move { (edge.metric("dime_purge_applied_seq").await == 5.0).then_some(()) }
        },
    )
    .await;
    assert_eq!(edge.metric("dime_purge_gaps_total").await, 0.0);
    assert!(hit(&edge, &keep).await, "still kept: nothing it should keep was dropped");

    fence(&k, &http, (&a, &b), &proxy, &origin, w).await;
}

/// The purge fence (issue 33): edges `o1` (the shield, so the owner of every key of `fenced.test`, following the
/// lagging replica b), `e1` and `e2` (following a). A purge reaches e1 and e2 while o1's replica hangs: their next
/// requests must not refill from o1's old copy (o1 answers "behind" and they go to the origin); once o1 applies
/// it too and the purge is acknowledged by all, 200 requests through every edge get no copy older than the purge.
async fn fence(
    k: &kube::Client,
    http: &reqwest::Client,
    (a, b): (&Control, &Control),
    proxy: &Pausable,
    origin: &Origin,
    w: &std::path::Path,
) {
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: fenced, match: [{{ hosts: [fenced.test] }}], upstream: o, cache: {{}}, tier: {{ shield: [o1] }} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let cms: Api<ConfigMap> = Api::namespaced(k.clone(), "default");
    cms.create(&PostParams::default(), &configmap("fenced", ("dime-routes", "true"), "routes.yaml", &routes))
        .await
        .unwrap();
    let mut edges = Vec::new();
    for (name, control) in [("o1", b), ("e1", a), ("e2", a)] {
        let token = edge_credential(k, w, name).await;
        let peer = dime_testkit::free_addr().to_string();
        let state = w.join(format!("state-{name}"));
        let args = ["--edge-name", name, "--peer-listen", &peer];
        edges.push(Edge::with_control(&[&control.url], &token, &state, &args).await);
    }
    for edge in &edges {
        eventually(
            secs(30),
            ms(100),
            "an edge never saw the three members and the route",
            || edge.log_text(),
            || async move {
                let routed = edge.try_get("fenced.test", "/health-of-route").await.is_some_and(|r| r.status != 404);
                (edge.metric("dime_fleet_members").await == 3.0 && routed).then_some(())
            },
        )
        .await;
    }
    let object = dime_testkit::ask("/fenced/seg.ts").size(2000).cache_control("max-age=600").to_string();
    let fetch_of = |r: &dime_testkit::Reply| r.header("x-origin-fetch").parse::<usize>().unwrap();
    for edge in &edges {
        let r = edge.get("fenced.test", object.as_str()).await;
        assert_eq!((r.status, fetch_of(&r)), (200, 1), "cached from the first fetch everywhere");
    }
    let before = origin.hits_for("/fenced/seg.ts");

    // o1's replica hangs; the purge reaches e1 and e2 only.
    proxy.pause();
    let url = format!(r#"{{"urls":["http://fenced.test{object}"]}}"#);
    let (status, answer) = purge(http, a, PURGE_TOKEN, &url).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["id"].as_u64().unwrap();
    for edge in &edges[1..] {
        let seq = id as f64;
        edge.metric_at_least("dime_purge_applied_seq", seq, secs(20), "e1/e2 never applied the purge").await;
    }
    for edge in &edges[1..] {
        let r = edge.get("fenced.test", object.as_str()).await;
        assert_eq!(r.status, 200);
        assert!(fetch_of(&r) > 1, "an edge that applied the purge refilled from the owner's old copy");
    }
    assert!(edges[0].metric(r#"dime_peer_requests_total{direction="served",result="behind"}"#).await >= 1.0);
    let sent_behind = r#"dime_peer_requests_total{direction="sent",result="behind"}"#;
    assert!(edges[1].metric(sent_behind).await + edges[2].metric(sent_behind).await >= 1.0, "the askers count it");
    assert!(origin.hits_for("/fenced/seg.ts") > before);

    // o1 catches up; once every edge acknowledged, no edge serves a copy from before the purge.
    proxy.resume();
    let status_of = format!("{}/v1/purge/{id}?wait=30s", a.url);
    let later = http.get(&status_of).bearer_auth(PURGE_TOKEN).send().await.unwrap().text().await.unwrap();
    let later: serde_json::Value = serde_json::from_str(&later).unwrap();
    assert_eq!(
        (later["all_acked"].clone(), later["edges"]["o1"]["state"].clone()),
        (true.into(), "acked".into()),
        "{later}"
    );
    let mut old = 0;
    // 200 requests through every edge.
    for i in 0..600 {
        let r = edges[i % 3].get("fenced.test", object.as_str()).await;
        assert_eq!(r.status, 200);
        old += usize::from(fetch_of(&r) == 1);
    }
    assert_eq!(old, 0, "copies from before the purge served after it was acknowledged");
}

/// A purge that reaches an edge while its disk index is still loading is queued for the load; the edge is killed
/// (SIGKILL) before the load ends. The load is held on an object file that does not answer (a FIFO nobody
/// writes: a read that hangs, as on a failing disk). Restarted, the edge never serves the purged object from its
/// disk: the purge cursor it kept does not claim a purge whose files were not deleted yet, so it gets the purge
/// from control again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_met_while_the_disk_index_loads_survives_a_sigkill() {
    let (kube, k, origin) = cluster().await;
    let control = start_control(&kube);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    edge_credential(&k, w, "a").await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    let purged = Object::new(dime_testkit::ask("/vod/purged.mp4").size(5000));
    let kept = Object::new(dime_testkit::ask("/vod/kept.mp4").size(5000));
    let mut edge = start_edge(&[&control.url], w, "a").await;
    following(&http, &control, &edge).await;
    for o in [&purged, &kept] {
        assert!(!hit(&edge, o).await);
    }
    let e = &edge;
    e.metric_at_least("dime_cache_disk_objects", 2.0, secs(10), "the objects never reached the disk").await;
    edge.stop();

    // The next start's load hangs on this file until the test lets it go.
    let hung = w.join("cache-a").join("objects").join("00");
    std::fs::create_dir_all(&hung).unwrap();
    let fifo = hung.join(format!("{}.1", "00".repeat(16)));
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    edge = start_edge(&[&control.url], w, "a").await;
    following(&http, &control, &edge).await;
    let (status, answer) =
        purge(&http, &control, PURGE_TOKEN, &serde_json::json!({ "urls": [purged.url()] }).to_string()).await;
    assert_eq!((status, answer["all_acked"].clone()), (200, true.into()), "{answer}");
    assert!(!edge.log_text().contains("disk cache index loaded"), "the load was held: {}", edge.log_text());
    edge.stop();

    std::fs::remove_file(&fifo).unwrap();
    let before = (origin.hits_for("/vod/purged.mp4"), origin.hits_for("/vod/kept.mp4"));
    edge = start_edge(&[&control.url], w, "a").await;
    let e = &edge;
    eventually(
        secs(10),
        ms(50),
        "the disk index never loaded",
        || e.log_text(),
        || async move { e.log_text().contains("disk cache index loaded").then_some(()) },
    )
    .await;
    following(&http, &control, &edge).await;
    let id = answer["id"].as_f64().unwrap();
    e.metric_at_least("dime_purge_applied_seq", id, secs(10), "the restarted edge never caught up with the purge log")
        .await;
    let r = edge.get("video.test", kept.target.as_str()).await;
    assert!(
        r.header("cache-status").contains("hit"),
        "what the purge did not name is served from disk: {} {}\n{}",
        r.status,
        r.header("cache-status"),
        edge.log_text()
    );
    assert!(!hit(&edge, &purged).await, "the purged object is never served from disk after the crash");
    assert_eq!(
        (origin.hits_for("/vod/purged.mp4"), origin.hits_for("/vod/kept.mp4")),
        (before.0 + 1, before.1),
        "only the purged object went to the origin"
    );
}

/// Waits until `edge` has its table and follows control's purge log.
async fn following(http: &reqwest::Client, control: &Control, edge: &Edge) {
    eventually(
        secs(20),
        ms(100),
        "the edge never got its table",
        || edge.log_text(),
        || async move { (edge.admin("/readyz").await.0 == 200).then_some(()) },
    )
    .await;
    eventually(
        secs(20),
        ms(100),
        "the edge never followed the purge log",
        || edge.log_text(),
        || async move {
            let r = http.get(format!("{}/v1/edges", control.url)).bearer_auth(TOKEN).send().await.ok()?;
            let view: serde_json::Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
            view["edges"].as_array()?.iter().any(|e| e["purge_applied"].is_u64()).then_some(())
        },
    )
    .await;
}
