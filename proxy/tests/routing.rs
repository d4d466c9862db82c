//! The edge routes real requests to real origins by host and path, with priority, weights and failover.

mod support;

use indoc::formatdoc;
use support::{ask, closed_port, one_route, Edge, Origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_path_routing_with_priority_and_404_for_unknown_hosts() {
    let (site, api, pinned) = (Origin::start("site").await, Origin::start("api").await, Origin::start("pinned").await);
    let routes = format!(
        r#"
version: 1
http:
  routes:
    - name: site
      match: [{{ hosts: [www.example.test, "*.example.test"] }}]
      upstream: site
    - name: api
      match: [{{ hosts: [www.example.test], paths: [{{ prefix: /api/ }}] }}]
      upstream: api
    - name: pinned
      match: [{{ paths: [{{ exact: /robots.txt }}] }}]
      upstream: pinned
      priority: 1000
  upstreams:
    site: {{ servers: [{{ url: "{}" }}] }}
    api: {{ servers: [{{ url: "{}" }}] }}
    pinned: {{ servers: [{{ url: "{}" }}] }}
"#,
        site.url(),
        api.url(),
        pinned.url()
    );
    let edge = Edge::start(&routes, &[]).await;

    // The longer (host + path) rule beats the host-only rule.
    assert_eq!(edge.get("www.example.test", "/api/users").await.header("x-origin"), "api");
    assert_eq!(edge.get("www.example.test", "/index.html").await.header("x-origin"), "site");
    // Case, port and trailing dot in the Host header do not matter; wildcard covers subdomains.
    assert_eq!(edge.get("WWW.Example.Test.:8080", "/api/x").await.header("x-origin"), "api");
    assert_eq!(edge.get("img.example.test", "/api/x").await.header("x-origin"), "site");
    // Explicit priority beats a longer rule, on any host.
    assert_eq!(edge.get("www.example.test", "/robots.txt").await.header("x-origin"), "pinned");
    assert_eq!(edge.get("elsewhere.test", "/robots.txt").await.header("x-origin"), "pinned");

    let miss = edge.get("unknown.test", "/").await;
    assert_eq!(miss.status, 404);
    assert!(miss.body.contains("no route for host `unknown.test`"), "{}", miss.body);
    let unmatched = r#"dime_http_requests_total{method="GET",route="unmatched",status="4xx"}"#;
    assert_eq!(edge.metric_reaches(unmatched, 1.0).await, 1.0);
    // Once the 404's access line is written, nothing about it was logged as an error.
    let log = edge.log_with("host=\"unknown.test\"").await;
    assert!(log.contains("host=\"unknown.test\""), "{log}");
    assert!(!log.lines().any(|l| l.contains("ERROR") && l.contains("unknown.test")), "a 404 is not an error:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_observed_over_many_requests() {
    let (heavy, light) = (Origin::start("heavy").await, Origin::start("light").await);
    let edge = Edge::start(&one_route("w", "w.test", &[(&heavy.url(), 3), (&light.url(), 1)]), &[]).await;
    for _ in 0..400 {
        assert_eq!(edge.get("w.test", "/").await.status, 200);
    }
    // Smooth weighted round robin is exact over whole cycles.
    assert_eq!((heavy.hits(), light.hits()), (300, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_fail_over_when_one_upstream_is_down() {
    let alive = Origin::start("alive").await;
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let edge = Edge::start(&one_route("f", "f.test", &[(&dead, 1), (&alive.url(), 1)]), &[]).await;
    for _ in 0..50 {
        let r = edge.get("f.test", "/").await;
        assert_eq!((r.status, r.header("x-origin")), (200, "alive"));
    }
    assert!(edge.metric(r#"dime_upstream_connect_failures_total{upstream="f"}"#).await >= 1.0);
    // After repeated failures the dead address leaves rotation.
    let dead_addr = dead.trim_start_matches("http://");
    let sample = format!("dime_upstream_endpoint_healthy{{address=\"{dead_addr}\",upstream=\"f\"}}");
    assert_eq!(edge.metric_reaches(&sample, 0.0).await, 0.0, "the dead address never left rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_checks_take_servers_out_and_none_left_gives_503() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let routes = formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: h, match: [{{ hosts: [h.test] }}], upstream: h }}
              upstreams:
                h:
                  servers: [{{ url: "{}" }}, {{ url: "{}" }}]
                  health_check: {{ path: {}, interval: 200ms, timeout: 500ms }}
            "#,
        a.url(),
        b.url(),
        Origin::HEALTH_PATH
    );
    let edge = Edge::start(&routes, &[]).await;
    let healthy = |o: &Origin| {
        let address = o.url().trim_start_matches("http://").to_owned();
        format!("dime_upstream_endpoint_healthy{{address=\"{address}\",upstream=\"h\"}}")
    };
    b.set_healthy(false);
    assert_eq!(edge.metric_reaches(&healthy(&b), 0.0).await, 0.0, "b never marked unhealthy");
    for _ in 0..20 {
        assert_eq!(edge.get("h.test", "/").await.header("x-origin"), "a");
    }
    a.set_healthy(false);
    assert_eq!(edge.metric_reaches(&healthy(&a), 0.0).await, 0.0, "a never marked unhealthy");
    let r = edge.get("h.test", "/").await;
    assert_eq!(r.status, 503);
    let log = edge.log_with("no healthy upstream server").await;
    assert!(
        log.contains("no healthy upstream server") && log.contains("route=\"h\"") && log.contains("upstream=\"h\""),
        "{log}"
    );
    b.set_healthy(true);
    assert_eq!(edge.metric_reaches(&healthy(&b), 1.0).await, 1.0, "b never came back");
    assert_eq!(edge.get("h.test", "/").await.header("x-origin"), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_reach_the_origin_and_only_trusted_values_are_kept() {
    let origin = Origin::start("o").await;
    let routes = one_route("x", "x.test", &[(&origin.url(), 1)]);
    let forged =
        [("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil.test")];

    let untrusting = Edge::start(&routes, &[]).await;
    let r = untrusting.request(reqwest::Method::GET, "x.test", "/", &forged).await;
    assert_eq!(r.header("x-seen-xff"), "127.0.0.1");
    assert_eq!(r.header("x-seen-xfp"), "http");
    assert_eq!(r.header("x-seen-xfh"), "x.test");
    assert_eq!(r.header("x-seen-host"), "x.test", "the Host header passes through by default");
    drop(untrusting);

    let trusting = Edge::start(&routes, &["--trusted-proxies", "127.0.0.0/8"]).await;
    let r = trusting.request(reqwest::Method::GET, "x.test", "/", &forged).await;
    assert_eq!(r.header("x-seen-xff"), "203.0.113.9, 127.0.0.1");
    assert_eq!(r.header("x-seen-xfp"), "https");
    assert_eq!(r.header("x-seen-xfh"), "evil.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_traefik_fragments_route_unchanged() {
    let (video, whoami) = (Origin::start("video").await, Origin::start("whoami").await);
    // The fragments name the cluster's real hosts; public DNS cannot run here, so --resolve points those names
    // at the local origins (the only stand-in in this test).
    let fragments = format!(
        "{}\n---\n{}",
        include_str!("../../examples/traefik/video-config.yaml"),
        include_str!("../../examples/traefik/whoami-config.yaml")
    );
    let video_map = format!("video.cluster.mycdndomain.us:8080={}", video.addr);
    let whoami_map = format!("whoami.cluster.mycdndomain.us:80={}", whoami.addr);
    let edge = Edge::start(&fragments, &["--resolve", &video_map, "--resolve", &whoami_map]).await;
    assert_eq!(edge.get("video.edge.mycdndomain.us", "/hls/stream.m3u8").await.header("x-origin"), "video");
    assert_eq!(edge.get("whoami.edge.mycdndomain.us", "/").await.header("x-origin"), "whoami");
    assert_eq!(edge.get("other.edge.mycdndomain.us", "/").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_requests_are_not_retried_on_another_server() {
    let alive = Origin::start("alive").await;
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let edge = Edge::start(&one_route("p", "p.test", &[(&dead, 1), (&alive.url(), 1)]), &["--retries", "2"]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(edge.request(reqwest::Method::POST, "p.test", "/", &[]).await.status);
    }
    assert!(statuses.contains(&502), "a POST whose server refused the connection is not replayed: {statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_hangs_up_mid_exchange_gets_the_client_a_502_on_a_route_without_cache() {
    // Pingora reports a failure after the connection (here: the origin closed before answering) through
    // `error_while_proxy`. On a route without a cache that once panicked in Dime's handler (the cache's
    // `miss_handler` outside a miss), so the client's connection was dropped without an answer, nothing was
    // counted and the panic's backtrace kept ~30 MiB of debug information resident.
    let origin = Origin::start("h").await;
    let edge = Edge::start(&one_route("h", "h.test", &[(&origin.url(), 1)]), &[]).await;
    for _ in 0..3 {
        let r = edge.get("h.test", ask("/").hang_up()).await;
        assert_eq!(r.status, 502, "{}", r.body);
    }
    let sample = r#"dime_http_requests_total{method="GET",route="h",status="5xx"}"#;
    assert_eq!(edge.metric(sample).await, 3.0);
    let log = edge.log_text();
    assert!(!log.contains("panicked"), "the edge panicked:\n{log}");
    let (_, metrics) = edge.admin("/metrics").await;
    assert!(metrics.lines().any(|l| l == "dime_panics_total 0"), "dime_panics_total is not 0:\n{metrics}");
}
