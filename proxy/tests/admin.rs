//! The admin surface: with admin tokens configured, `/config` (like purge) needs one; `--metrics` serves
//! Prometheus on its own listener and nothing else there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{one_route, Edge, Origin};

/// An edge with route `web` (host web.test) to `origin` and the admin token `admin-token-0123456789abcdef`; the
/// directory holds the token file.
async fn edge_with_admin_token(origin: &Origin, extra: &[&str]) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "admin-token-0123456789abcdef\n").unwrap();
    let mut args = vec!["--admin-token-file", tokens.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Edge::start(&one_route("web", "web.test", &[(&origin.url(), 1)]), &args).await, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_needs_a_token_and_metrics_have_their_own_listener() {
    let origin = Origin::start("o").await;
    let metrics = support::free_addr();
    let (edge, _dir) = edge_with_admin_token(&origin, &["--metrics", &metrics.to_string()]).await;
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

/// The status page (`/`) takes the same token as `/config`, from a browser as the Basic password; without it the
/// answer asks for credentials. It shows the live table and routes, and never the token. (Its values are checked
/// against /metrics and /config in a real browser by `scripts/live-demo --smoke`, scripts/browser/status.mjs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_takes_the_admin_token_and_shows_the_table() {
    let origin = Origin::start("o").await;
    let (edge, _dir) = edge_with_admin_token(&origin, &[]).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/", edge.admin);
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic realm="));
    let wrong = http.get(&url).basic_auth("admin", Some("wrong-token-0123456789")).send().await.unwrap();
    assert_eq!(wrong.status(), 403);
    let bearer = http.get(&url).bearer_auth("admin-token-0123456789abcdef").send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    assert_eq!(edge.get("web.test", "/page").await.status, 200);
    // The request is counted once its answer is sent, so the page may be asked for a moment before that.
    let (http2, url2) = (&http, &url);
    let html = support::eventually(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(50),
        "the status page never counted the request",
        String::new,
        || async move {
            let page = http2.get(url2).basic_auth("anyone", Some("admin-token-0123456789abcdef")).send().await.ok()?;
            assert_eq!(page.status(), 200);
            assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
            let html = page.text().await.ok()?;
            html.contains("data-field=\"requests\" data-value=\"1\"").then_some(html)
        },
    )
    .await;
    let config: serde_json::Value = serde_json::from_str(
        &http
            .get(format!("http://{}/config", edge.admin))
            .bearer_auth("admin-token-0123456789abcdef")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let version = config["active"]["version"].as_str().unwrap();
    assert!(html.contains(&format!("data-field=\"version\" data-value=\"{version}\"")), "{html}");
    assert!(html.contains("<tr data-route=\"web\">"), "{html}");
    assert!(!html.contains("admin-token-0123456789abcdef"), "the token is never rendered");
}

/// A purge changes the cache: it takes the bearer token, never the Basic password a browser keeps for the status
/// page and would send with a cross-site form's POST too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_takes_the_bearer_token_not_a_browsers_basic_password() {
    let origin = Origin::start("o").await;
    let (edge, _dir) = edge_with_admin_token(&origin, &[]).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/purge?url=http://web.test/page", edge.admin);
    let token = "admin-token-0123456789abcdef";
    // What a cross-site form makes: a POST, with the password the browser remembers for this origin.
    let form = http
        .post(&url)
        .basic_auth("admin", Some(token))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 401);
    assert!(form.text().await.unwrap().contains("Bearer"), "the refusal says what to send");
    let bearer = http.post(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(bearer.status(), 200, "{}", bearer.text().await.unwrap());
}
