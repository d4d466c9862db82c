//! Route file hot reload: valid edits go live atomically under load; invalid ones change nothing.

mod support;

use indoc::indoc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{one_route, Edge, Origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_continuous_load_fail_no_request() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let routes = |o: &Origin| one_route("live", "live.test", &[(&o.url(), 1)]);
    let edge = Arc::new(Edge::start(&routes(&a), &["--access-log", "false"]).await);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (edge, stop, ok, failed) = (edge.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            // Bounded: at most 20,000 requests per task, and the test stops it after the reloads.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let url = format!("http://{}/", edge.http);
                match edge.client.get(url).header("host", "live.test").send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    let mut reload_to_live = Vec::new();
    for i in 0..10 {
        let target = if i % 2 == 0 { &b } else { &a };
        let written = Instant::now();
        edge.write_routes(&routes(target));
        loop {
            if edge.get("live.test", "/").await.header("x-origin") == target.name {
                break;
            }
            assert!(written.elapsed() < Duration::from_secs(5), "reload {i} not live after 5s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        reload_to_live.push(written.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    reload_to_live.sort();
    eprintln!(
        "reload-to-live over 10 reloads: median {:?}, max {:?}; {} requests during reloads",
        reload_to_live[5],
        reload_to_live[9],
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during reloads");
    assert!(ok.load(Ordering::Relaxed) > 100);
    assert_eq!(edge.metric(r#"dime_config_reloads_total{result="ok"}"#).await, 11.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_old_table_serving_and_says_why() {
    let origin = Origin::start("good").await;
    let edge = Edge::start(&one_route("r", "r.test", &[(&origin.url(), 1)]), &[]).await;
    let version = edge.version().await;

    edge.write_routes(indoc!(
        r#"
            version: 1
            http:
              routes:
                - { name: r, match: [{ hosts: [r.test] }], upstream: nowhere }
            "#
    ));
    wait_for_failed_reloads(&edge, 1.0).await;
    assert_eq!(edge.get("r.test", "/").await.header("x-origin"), "good");
    assert_eq!(edge.version().await, version);
    let (_, config) = edge.admin("/config").await;
    let path = edge.routes.display().to_string();
    assert!(
        config.contains(&format!("{path}:4: http.routes[0] (r).upstream: `nowhere` is not a defined upstream")),
        "{config}"
    );
    let log = edge.log_with("`nowhere` is not a defined upstream").await;
    assert!(log.contains("route reload rejected") && log.contains("`nowhere` is not a defined upstream"), "{log}");

    // Not YAML at all, and an empty file: same outcome, the old table stays.
    edge.write_routes(indoc!(
        r#"
        version: 1
        http: [unclosed
        "#
    ));
    wait_for_failed_reloads(&edge, 2.0).await;
    edge.write_routes("");
    wait_for_failed_reloads(&edge, 3.0).await;
    assert_eq!(edge.get("r.test", "/").await.status, 200);
    assert_eq!(edge.version().await, version);
    let (status, _) = edge.admin("/readyz").await;
    assert_eq!(status, 200);
}

async fn wait_for_failed_reloads(edge: &Edge, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while edge.metric(r#"dime_config_reloads_total{result="failed"}"#).await < n {
        assert!(Instant::now() < deadline, "reload not rejected; log:\n{}", edge.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
