//! Path normalization, which every request goes through before routing: a path already normal (the fast path,
//! borrowed), one with encoded unreserved characters, and one with dot segments.
//!
//!     cargo bench -p dime-routes --bench path
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dime_routes::path::{normalize, PathOptions};

fn path(c: &mut Criterion) {
    let mut group = c.benchmark_group("path_normalize");
    let cases = [
        ("segments", "/live/stream-42/1080p/segment-00123.ts"),
        ("encoded_unreserved", "/live/caf%7Ee/%41lbum%2Dphotos/segment-00123.ts"),
        ("dot_segments", "/public/./a/../../premium/%2e%2e/live/stream-42/segment-00123.ts"),
    ];
    for (name, raw) in cases {
        assert!(normalize(raw, PathOptions::default()).is_ok(), "{name}");
        group.bench_function(name, |b| b.iter(|| normalize(black_box(raw), PathOptions::default())));
    }
    group.finish();
}

criterion_group!(benches, path);
criterion_main!(benches);
