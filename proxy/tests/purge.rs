//! Purge on one edge's admin listener, against a real origin: the token, by URL, by prefix and by cache tag, hard
//! or soft, the tag headers kept off viewers' responses. (The whole fleet's purge: control/tests/purge.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{ask, cached_route, Edge, Origin};

const TOKEN: &str = "test-admin-token-0123456789";

async fn edge_with_cache(origin: &Origin, cache: &str, extra: &[&str]) -> Edge {
    Edge::start(&cached_route("c", "c.test", &origin.url(), cache), extra).await
}

/// A caching edge whose admin listener takes purges with [`TOKEN`] (from a token file with a comment line); the
/// directory holding the file lives as long as the edge must.
async fn edge_with_purge(origin: &Origin) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# admin tokens\n{TOKEN}\n")).unwrap();
    (edge_with_cache(origin, "{}", &["--admin-token-file", tokens.to_str().unwrap()]).await, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_needs_a_token_and_removes_by_url_and_by_prefix() {
    let origin = Origin::start("o").await;
    let (edge, _dir) = edge_with_purge(&origin).await;
    let page = &ask("/index.html").cache_control("max-age=60").to_string();
    for p in ["/hls/a.ts", "/hls/b.ts", page] {
        edge.get("c.test", p).await;
    }
    assert_eq!(edge.metric("dime_cache_objects").await, 3.0);
    let purge = |query: &str, token: Option<&str>| {
        let mut req = edge.client.post(format!("http://{}/purge?{query}", edge.admin));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send()
    };
    assert_eq!(purge("host=c.test&prefix=/hls/", None).await.unwrap().status(), 401);
    assert_eq!(purge("host=c.test&prefix=/hls/", Some("wrong-token-wrong-token")).await.unwrap().status(), 403);
    assert_eq!(edge.metric("dime_cache_objects").await, 3.0);

    let r = purge("host=c.test&prefix=/hls/", Some(TOKEN)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":2,"soft":false}"#);
    let url =
        form_urlencoded::Serializer::new(String::new()).append_pair("url", &format!("http://c.test{page}")).finish();
    let r = purge(&url, Some(TOKEN)).await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":1,"soft":false}"#);
    assert_eq!(edge.metric("dime_cache_objects").await, 0.0);
    assert!(edge.get("c.test", "/hls/a.ts").await.header("cache-status").contains("fwd=miss"));
    assert_eq!(edge.metric(r#"dime_cache_purged_total{kind="prefix"}"#).await, 2.0);
    assert_eq!(edge.metric(r#"dime_cache_purged_total{kind="url"}"#).await, 1.0);
    // Bad purges name what is wrong and purge nothing.
    for (query, want) in [
        ("", "give one of"),
        ("tag=a&url=http://c.test/x", "give one of"),
        ("tag=", "a tag is 1 to"),
        ("host=c.test&prefix=hls", "does not start with /"),
        ("tag=a&soft=maybe", "soft is 1 or 0"),
    ] {
        let r = purge(query, Some(TOKEN)).await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        assert!(r.text().await.unwrap().contains(want), "{query}");
    }
    assert_eq!(edge.metric("dime_cache_objects").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_purge_what_they_name_hard_or_soft_and_stay_off_the_viewers_response() {
    let origin = Origin::start("o").await;
    let (edge, _dir) = edge_with_purge(&origin).await;
    let cc = "max-age=60, stale-if-error=60";
    let a = ask("/a.html").cache_control(cc).surrogate_key("site news").to_string();
    let b = ask("/b.html").cache_control(cc).cache_tag("news,sports").to_string();
    let c = ask("/c.html").cache_control(cc).cache_tag("sports").to_string();
    for p in [&a, &b, &c] {
        let r = edge.get("c.test", p.as_str()).await;
        assert!(r.header("surrogate-key").is_empty() && r.header("cache-tag").is_empty(), "tags reached the viewer");
        let r = edge.get("c.test", p.as_str()).await;
        assert!(r.header("cache-status").contains("hit"), "{p}");
        assert!(r.header("surrogate-key").is_empty() && r.header("cache-tag").is_empty(), "tags on a hit");
    }
    let purge = |query: &'static str| {
        edge.client
            .post(format!("http://{}/purge?{query}", edge.admin))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
    };
    // Both headers' tags are indexed: `news` names a (Surrogate-Key) and b (Cache-Tag), not c.
    let r = purge("tag=news").await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":2,"soft":false}"#);
    assert!(edge.get("c.test", a.as_str()).await.header("cache-status").contains("fwd=miss"));
    assert!(edge.get("c.test", b.as_str()).await.header("cache-status").contains("fwd=miss"));
    assert!(edge.get("c.test", c.as_str()).await.header("cache-status").contains("hit"), "c was not named");
    assert_eq!(edge.metric(r#"dime_cache_purged_total{kind="tag"}"#).await, 2.0);

    // Soft: c is kept but stale; with the origin down it is served stale (stale-if-error), not an error.
    let r = purge("tag=sports&soft=1").await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":2,"soft":true}"#);
    let before = origin.hits_for("/c.html");
    let r = edge.get("c.test", c.as_str()).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.hits_for("/c.html"),
        before + 1,
        "a soft-purged object is revalidated: {}",
        r.header("cache-status")
    );
    purge("tag=sports&soft=1").await.unwrap();
    origin.stop();
    let r = edge.get("c.test", c.as_str()).await;
    assert_eq!(r.status, 200, "served stale while the origin is down");
    // (A stopped origin closes its connections too: the edge cannot reach it, and serves the stale copy.)
    assert!(r.header("cache-status").contains("detail=stale"), "{}", r.header("cache-status"));
}

/// A purge's path is read as a request's is: dot segments and encoded unreserved characters name the objects
/// their reading was cached under, and a path that does not read is refused, naming the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_path_is_read_as_a_request_path_is() {
    let origin = Origin::start("o").await;
    let (edge, _dir) = edge_with_purge(&origin).await;
    for p in ["/hls/a.ts", "/hls/b.ts", "/vod/c.ts", "/vod/d.ts"] {
        assert_eq!(edge.get("c.test", p).await.status, 200, "{p}");
    }
    assert_eq!(edge.metric("dime_cache_objects").await, 4.0);
    let purge = |pairs: &[(&str, &str)]| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        edge.client
            .post(format!("http://{}/purge?{}", edge.admin, query.finish()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
    };
    // `/vod/../hls/` is `/hls/`: both segments go, the /vod/ objects stay.
    let r = purge(&[("host", "c.test"), ("prefix", "/vod/../hls/")]).await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":2,"soft":false}"#);
    assert!(edge.get("c.test", "/vod/c.ts").await.header("cache-status").contains("hit"), "/vod/ was not named");
    // `%2e%2e` and `%63` are `..` and `c`: the URL is /vod/c.ts.
    let r = purge(&[("url", "http://c.test/hls/%2e%2e/vod/%63.ts")]).await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":1,"soft":false}"#);
    assert!(edge.get("c.test", "/vod/c.ts").await.header("cache-status").contains("fwd=miss"));
    assert!(edge.get("c.test", "/vod/d.ts").await.header("cache-status").contains("hit"), "d was not named");
    // Unreadable paths are refused, the entry named, and purge nothing.
    for (pairs, want) in [
        (vec![("host", "c.test"), ("prefix", "/vod/..")], "prefix `/vod/..`: it ends in the dot segment `..`"),
        (vec![("host", "c.test"), ("prefix", "/vod\\d.ts")], "prefix `/vod\\\\d.ts`: backslash at byte 4"),
        (vec![("url", "http://c.test/vod/%zz")], "url: `http://c.test/vod/%zz`: the path: bad percent-encoding"),
    ] {
        let r = purge(&pairs).await.unwrap();
        assert_eq!(r.status(), 400, "{pairs:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains(want), "{pairs:?}: {body}");
    }
    assert!(edge.get("c.test", "/vod/d.ts").await.header("cache-status").contains("hit"), "a refused purge purged");
}
