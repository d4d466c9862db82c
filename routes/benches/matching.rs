//! Route matching, the first thing every request does: lookup in tables of 10 to 10,000 routes (exact hosts,
//! wildcard hosts, path prefixes), hits and misses.
//!
//!     cargo bench -p dime-routes --bench matching
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

fn table(routes: usize) -> dime_routes::RouteTable {
    let mut text = String::from("version: 1\nhttp:\n  routes:\n");
    for i in 0..routes {
        let host = if i % 10 == 0 { format!("\"*.w{i}.example.com\"") } else { format!("h{i}.example.com") };
        text.push_str(&format!(
            "    - {{ name: r{i}, match: [{{ hosts: [{host}], paths: [{{ prefix: /p{} }}] }}], upstream: u }}\n",
            i % 7
        ));
    }
    text.push_str("  upstreams:\n    u: { servers: [{ url: \"http://10.0.0.1:80\" }] }\n");
    dime_routes::parse("bench", &text).unwrap_or_else(|e| panic!("{e}"))
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    for routes in [10, 1_000, 10_000] {
        let t = table(routes);
        let exact = format!("h{}.example.com", routes - 1);
        let exact_path = format!("/p{}/segment-42.ts", (routes - 1) % 7);
        group.bench_with_input(BenchmarkId::new("exact_host_hit", routes), &t, |b, t| {
            b.iter(|| t.find(black_box(&exact), black_box(&exact_path)))
        });
        group.bench_with_input(BenchmarkId::new("wildcard_host_hit", routes), &t, |b, t| {
            b.iter(|| t.find(black_box("a.w0.example.com:8080"), black_box("/p0/live/index.m3u8")))
        });
        group.bench_with_input(BenchmarkId::new("miss", routes), &t, |b, t| {
            b.iter(|| t.find(black_box("unknown.example.org"), black_box("/")))
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
