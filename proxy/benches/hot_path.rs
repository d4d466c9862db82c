//! The pure functions on the request path. Caching: the cache key (host + path + kept query parameters), the
//! object kind (playlist, segment, other) and Cache-Control parsing. Every request, pass-through included: the
//! route lookup in a table of 200 routes and the forwarding headers set on the request to the origin.
//!
//!     cargo bench -p dime-edge --bench hot_path
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dime_edge::cache::key::primary_key;
use dime_edge::cache::policy::{classify, Directives, Kind};
use dime_edge::service::set_forwarded_headers;

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache");
    group.bench_function("key_segment_no_query", |b| {
        b.iter(|| {
            primary_key(
                black_box("Video.Example.com:8080"),
                black_box("/hls/stream-1234.ts"),
                None,
                Kind::Segment,
                None,
            )
        })
    });
    group.bench_function("key_playlist_ll_hls_query", |b| {
        b.iter(|| {
            primary_key(
                black_box("video.example.com"),
                black_box("/hls/stream.m3u8"),
                Some(black_box("session=abc123&_HLS_msn=1200&_HLS_part=3&cb=99")),
                Kind::Playlist,
                None,
            )
        })
    });
    group.bench_function("key_other_with_query", |b| {
        b.iter(|| {
            primary_key(black_box("www.example.com"), black_box("/a/b/c.html"), Some("x=1&y=2"), Kind::Other, None)
        })
    });
    group.bench_function("classify", |b| b.iter(|| classify(black_box("/hls/live/stream_720p/segment-000123.ts"))));
    group.bench_function("cache_control_parse", |b| {
        b.iter(|| Directives::parse(black_box(["public, max-age=3600, s-maxage=600, stale-if-error=60"]).into_iter()))
    });
    group.finish();
}

/// A table of 200 routes over 100 hosts (a site, and its `/api/` prefix on another upstream), as control compiles
/// it from many ConfigMaps.
fn table() -> dime_routes::RouteTable {
    let mut doc = String::from("version: 1\nhttp:\n  routes:\n");
    for i in 0..100 {
        doc += &format!("    - {{ name: site-{i}, match: [{{ hosts: [site{i}.example.com] }}], upstream: web }}\n");
        doc += &format!(
            "    - {{ name: api-{i}, match: [{{ hosts: [site{i}.example.com], paths: [{{ prefix: /api/ }}] }}], upstream: api }}\n"
        );
    }
    doc += "  upstreams:\n    web: { servers: [{ url: \"http://127.0.0.1:8080\" }] }\n";
    doc += "    api: { servers: [{ url: \"http://127.0.0.1:8081\" }] }\n";
    dime_routes::parse("bench.yaml", &doc).unwrap()
}

fn pass_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("pass");
    let routes = table();
    group.bench_function("route_lookup_200_routes", |b| {
        b.iter(|| routes.find(black_box("site57.example.com"), black_box("/api/v1/items?page=2")))
    });
    let request = || {
        let mut req = pingora_http::RequestHeader::build("GET", b"/api/v1/items", None).unwrap();
        req.insert_header("host", "site57.example.com").unwrap();
        req.insert_header("user-agent", "bench/1.0").unwrap();
        req.insert_header("accept", "*/*").unwrap();
        req
    };
    let client = Some("192.0.2.10".parse().unwrap());
    group.bench_function("forwarding_headers", |b| {
        b.iter_batched(
            request,
            |mut req| set_forwarded_headers(&mut req, client, false, "site57.example.com", false).map(|()| req),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, hot_path, pass_path);
criterion_main!(benches);
