//! The pure functions on the caching request path: the cache key (host + path + kept query parameters), the
//! object kind (playlist, segment, other) and Cache-Control parsing.
//!
//!     cargo bench -p dime-edge --bench hot_path
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dime_edge::cache::key::primary_key;
use dime_edge::cache::policy::{classify, Directives, Kind};

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

criterion_group!(benches, hot_path);
criterion_main!(benches);
