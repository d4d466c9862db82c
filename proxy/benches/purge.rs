//! What a purge costs on one edge, against the cache's size: a tag purge of 1,000 objects in caches of 10,000
//! and 100,000 objects (goal: under 10 ms at 100,000), and, for contrast, a URL purge and a prefix purge of the
//! same cache (those look at every object). Release build; medians of 10 purges each.
//!
//!     cargo bench -p dime-edge --bench purge
//!
//! Bounded: fixed object and purge counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dime_edge::cache::select::Selector;
use dime_edge::cache::storage::MemStore;
use pingora_cache::key::CacheKey;
use pingora_cache::trace::Span;
use pingora_cache::{CacheMeta, Storage};
use pingora_http::ResponseHeader;

const TAGGED: usize = 1000;
const ROUNDS: usize = 10;

fn meta(tags: &str) -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).unwrap();
    h.insert_header("surrogate-key", tags).unwrap();
    CacheMeta::new(now + Duration::from_secs(600), now, 10, 30, h)
}

/// A store of `objects` objects, each with one of `objects / TAGGED` tags (so each tag names 1,000 objects) and
/// a tag of its own.
async fn store(objects: usize) -> &'static MemStore {
    let s: &'static MemStore = Box::leak(Box::new(MemStore::new(None, None)));
    let span = Span::inactive().handle();
    let groups = objects / TAGGED;
    for i in 0..objects {
        let key = CacheKey::new(format!("v.test\n/g{}/o{i}", i % groups), "");
        let mut w = s.get_miss_handler(&key, &meta(&format!("g{} o{i}", i % groups)), &span).await.unwrap();
        w.write_body(Bytes::from_static(b"0123456789abcdef"), true).await.unwrap();
        w.finish().await.unwrap();
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("| cache objects | tag purge of 1,000 objects (ms) | URL purge of 1 (ms) | prefix purge of 1,000 (ms) |");
    println!("| ---: | ---: | ---: | ---: |");
    for objects in [10_000, 100_000] {
        let s = store(objects).await;
        let groups = objects / TAGGED;
        let (mut tag, mut url, mut prefix) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS.min(groups / 3) {
            let t = Instant::now();
            let n = s.purge_selected(&Selector::Tag(format!("g{round}")), false, SystemTime::now()).objects.len();
            tag.push(t.elapsed());
            assert_eq!(n, TAGGED);
            let victim = format!("v.test\n/g{}/o{}", groups - 1, groups * round + groups - 1);
            let t = Instant::now();
            assert_eq!(s.purge_selected(&Selector::Key(victim), false, SystemTime::now()).objects.len(), 1);
            url.push(t.elapsed());
            let g = groups - 2 - round;
            let t = Instant::now();
            let n =
                s.purge_selected(&Selector::Prefix(format!("v.test\n/g{g}/")), false, SystemTime::now()).objects.len();
            prefix.push(t.elapsed());
            assert_eq!(n, TAGGED);
        }
        println!("| {objects} | {:.2} | {:.2} | {:.2} |", ms(median(tag)), ms(median(url)), ms(median(prefix)));
    }
}
