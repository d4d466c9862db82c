//! How long a restarted edge takes to rebuild its disk index: 10,000 and 100,000 object files (goal: 100,000 in
//! under 1 s), with the files in the page cache (a restart) and, when this runs as root, after dropping the
//! page cache (a reboot). Release build.
//!
//!     cargo bench -p dime-edge --bench disk_index
//!
//! Bounded: fixed object counts, three timed loads each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use dime_edge::cache::disk::record::{self, Head};
use dime_edge::cache::disk::{DiskObserver, DiskSettings, DiskTier};
use dime_edge::metrics::disk::DiskError;
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;

struct Quiet;

impl DiskObserver for Quiet {
    fn stored(&self, _: usize, _: usize) {}
    fn hit(&self) {}
    fn written(&self) {}
    fn evicted(&self) {}
    fn error(&self, _: DiskError) {}
    fn enabled(&self, _: bool) {}
    fn loaded(&self, _: f64) {}
}

/// `n` object files of 2 KiB bodies with a realistic header, written the way the tier writes them.
fn fill(dir: &std::path::Path, n: usize) {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).unwrap();
    for (k, v) in [("content-type", "video/mp2t"), ("cache-control", "max-age=3600"), ("etag", "\"5f3a-1b2c\"")] {
        h.insert_header(k, v).unwrap();
    }
    let (meta_internal, meta_header) =
        CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, h).serialize().unwrap();
    let body = vec![0x5a_u8; 2048];
    let body_crc = crc32fast::hash(&body);
    for i in 0..n {
        let primary = format!("v.test\n/vod/show-{}/seg-{i}.ts", i % 100);
        let key = CacheKey::new(primary.clone(), "");
        let hash = key.combined_bin();
        let head = Head {
            primary,
            compact: key.to_compact(),
            tags: vec![format!("show-{}", i % 100)],
            meta_internal: meta_internal.clone(),
            meta_header: meta_header.clone(),
        };
        let sub = dir.join("objects").join(format!("{:02x}", hash[0]));
        std::fs::create_dir_all(&sub).unwrap();
        let name: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let mut f = std::fs::File::create(sub.join(format!("{name}.{:x}", i + 1))).unwrap();
        f.write_all(&record::encode(&head, body.len() as u64, body_crc)).unwrap();
        f.write_all(&body).unwrap();
    }
}

fn load(dir: &std::path::Path) -> (Duration, usize) {
    let settings = DiskSettings { dir: dir.to_owned(), size: 100 << 30 };
    let start = Instant::now();
    let tier = DiskTier::open(&settings, Box::new(Quiet)).unwrap();
    tier.load_now();
    (start.elapsed(), tier.held().0)
}

fn main() {
    for n in [10_000, 100_000] {
        let dir = tempfile::tempdir_in(std::env::var("DIME_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).unwrap();
        fill(dir.path(), n);
        let mut warm: Vec<Duration> = (0..3)
            .map(|_| load(dir.path()))
            .map(|(t, held)| {
                assert_eq!(held, n);
                t
            })
            .collect();
        warm.sort();
        let cold = std::fs::write("/proc/sys/vm/drop_caches", "3").ok().map(|()| load(dir.path()).0);
        println!(
            "disk index of {n:>7} objects: {:>7.1} ms (page cache warm, median of 3){}",
            warm[1].as_secs_f64() * 1e3,
            cold.map(|t| format!(", {:.1} ms after dropping the page cache", t.as_secs_f64() * 1e3))
                .unwrap_or_default()
        );
    }
}
