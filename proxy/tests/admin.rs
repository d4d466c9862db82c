//! The admin surface: with admin tokens configured, `/config` (like purge) needs one; `--metrics` serves
//! Prometheus on its own listener and nothing else there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{one_route, Edge, Origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_needs_a_token_and_metrics_have_their_own_listener() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "admin-token-0123456789abcdef\n").unwrap();
    let metrics = support::free_addr();
    let edge = Edge::start(
        &one_route("web", "web.test", &[(&origin.url(), 1)]),
        &["--admin-token-file", tokens.to_str().unwrap(), "--metrics", &metrics.to_string()],
    )
    .await;
    let http = reqwest::Client::new();
    let config = |token: Option<&'static str>| {
        let mut req = http.get(format!("http://{}/config", edge.admin));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(config(None).await.unwrap().status(), 401);
    assert_eq!(config(Some("wrong-token-0123456789")).await.unwrap().status(), 403);
    let ok = config(Some("admin-token-0123456789abcdef")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("\"version\""));

    let scrape = http.get(format!("http://{metrics}/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.text().await.unwrap().contains("dime_config_routes 1"));
    assert_eq!(http.get(format!("http://{metrics}/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("http://{metrics}/config")).send().await.unwrap().status(), 404);
    let purge = http.post(format!("http://{metrics}/purge?url=http://web.test/")).send().await.unwrap();
    assert_eq!(purge.status(), 404, "purge is not on the metrics listener");
}
