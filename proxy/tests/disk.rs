//! The disk tier (`--cache-dir`) with a real edge process: objects survive SIGKILL and are served without the
//! origin (Range, HEAD, Vary variants, revalidation, stale-if-error, purges of open files), damaged files are never
//! served, both byte budgets hold, a full disk costs viewers nothing. (The fleet tier on disk objects:
//! tests/fleet.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{ask, cached_route, eventually, pattern_body, Edge, Origin};

const HOST: &str = "c.test";

/// The edge's arguments for a disk tier in `dir` (memory `memory`, disk `disk`).
fn disk_args(dir: &Path, memory: &str, disk: &str) -> Vec<String> {
    let dir = dir.to_str().unwrap().to_owned();
    ["--cache-dir", &dir, "--cache-size", memory, "--cache-disk-size", disk].map(str::to_owned).to_vec()
}

/// A cached route that serves stale objects through an origin outage for a minute.
async fn edge(origin: &Origin, args: &[String]) -> Edge {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Edge::start(&cached_route("c", HOST, &origin.url(), "{ stale_if_error: 60s }"), &args).await
}

/// Waits (at most `within`, reading every `every`) until the edge's `sample` is at least `want`; its value.
async fn at_least(edge: &Edge, sample: &str, want: f64, within: Duration, every: Duration) -> f64 {
    let what = format!("{sample} >= {want}");
    eventually(
        within,
        every,
        &what,
        || edge.log_text(),
        || async {
            let n = edge.metric(sample).await;
            (n >= want).then_some(n)
        },
    )
    .await
}

/// Waits until the disk tier holds `objects` objects (writes land off the request path).
async fn on_disk(edge: &Edge, objects: usize) {
    let (within, every) = (Duration::from_secs(10), Duration::from_millis(50));
    let held = at_least(edge, "dime_cache_disk_objects", objects as f64, within, every).await as usize;
    assert_eq!(held, objects, "{}", edge.log_text());
}

/// Waits until the restarted edge's disk index is loaded.
async fn loaded(edge: &Edge) {
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the disk index loaded",
        || edge.log_text(),
        || async { edge.log_text().contains("disk cache index loaded").then_some(()) },
    )
    .await;
}

fn object_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in std::fs::read_dir(dir.join("objects")).unwrap().flatten() {
        files.extend(std::fs::read_dir(sub.path()).unwrap().flatten().map(|f| f.path()));
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_fresh_objects_are_hits_without_the_origin_and_stale_ones_revalidate_or_outlast_an_outage() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = disk_args(dir.path(), "8MiB", "64MiB");
    let tokens = dir.path().join("admin-tokens");
    std::fs::write(&tokens, "disk-test-admin-token-0123456789\n").unwrap();
    args.extend(["--admin-token-file".to_owned(), tokens.to_str().unwrap().to_owned()]);
    let sizes = [0, 1, 1000, 65_536, 200_000, 1_000_000];
    let fresh: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| ask(&format!("/vod/{i}.mp4")).size(*n).cache_control("max-age=3600").to_string())
        .collect();
    // Fresh for 11 s when stored: long enough to go to disk, stale by the time it is asked for again.
    let short = ask("/page.html").size(5000).cache_control("max-age=11").etag("v1").to_string();
    let outage = ask("/outage.html").size(4000).cache_control("max-age=11").to_string();
    let mut first = edge(&origin, &args).await;
    for path in &fresh {
        assert_eq!(first.get(HOST, path).await.status, 200);
    }
    let filled = Instant::now();
    assert_eq!(first.get(HOST, &short).await.status, 200);
    assert_eq!(first.get(HOST, &outage).await.status, 200);
    on_disk(&first, fresh.len() + 2).await;
    first.stop(); // SIGKILL

    let before = origin.hits();
    let second = edge(&origin, &args).await;
    loaded(&second).await;
    for (path, n) in fresh.iter().zip(sizes) {
        let r = second.get(HOST, path).await;
        assert_eq!(r.status, 200);
        assert!(r.header("cache-status").starts_with("dime; hit"), "{path}: {}", r.header("cache-status"));
        assert_eq!(r.bytes, pattern_body(n), "{path}: the bytes the origin sent");
        // Range and HEAD too, from the file kept open since the first hit.
        let range = second.request(reqwest::Method::GET, HOST, path, &[("range", "bytes=0-0")]).await;
        assert_eq!(range.status, if n == 0 { 416 } else { 206 }, "{path}");
        let head = second.request(reqwest::Method::HEAD, HOST, path, &[]).await;
        assert_eq!(head.header("content-length"), n.to_string(), "{path}");
    }
    assert_eq!(origin.hits(), before, "no origin request for an object fresh on disk");
    // Disk objects are answered from their open files, not copied into memory: all three reads are disk hits.
    assert_eq!(second.metric("dime_cache_disk_hits_total").await, 3.0 * fresh.len() as f64);
    assert_eq!(second.metric("dime_cache_objects").await, 0.0, "nothing was read into the memory tier");

    // The short-lived object is stale now (11 s after its fill: the time must pass): revalidated, 304, served.
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(filled.elapsed()) + Duration::from_millis(300)).await;
    // The other one, stale on disk while the origin is down, is served stale (stale-if-error).
    origin.set_down(true);
    let r = second.get(HOST, &outage).await;
    assert_eq!((r.status, &r.bytes), (200, &pattern_body(4000)), "served through the outage");
    assert!(r.header("cache-status").contains("detail=stale"), "{}", r.header("cache-status"));
    origin.set_down(false);
    let before = origin.hits(); // from here, with the outage's 503 counted
    let r = second.get(HOST, &short).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes, pattern_body(5000));
    assert_eq!(origin.not_modified.load(std::sync::atomic::Ordering::SeqCst), 1, "revalidated with the origin");
    assert_eq!(origin.hits(), before + 1);
    // The 304 made the open file's object fresh again: a hit without the origin.
    let r = second.get(HOST, &short).await;
    assert!(r.header("cache-status").starts_with("dime; hit"), "after the 304: {}", r.header("cache-status"));
    assert_eq!(origin.hits(), before + 1);

    // A purge lets go of the open file: the next request is a miss that goes to the origin.
    let purge = second.client.post(format!("http://{}/purge?url=http://{HOST}{}", second.admin, fresh[4]));
    let purged = purge.bearer_auth("disk-test-admin-token-0123456789").send().await.unwrap();
    assert_eq!(purged.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":1,"soft":false}"#);
    let r = second.get(HOST, &fresh[4]).await;
    assert!(r.header("cache-status").contains("fwd=miss"), "after the purge: {}", r.header("cache-status"));
    assert_eq!(r.bytes, pattern_body(200_000));
    assert_eq!(origin.hits(), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_never_served_counted_and_fetched_again() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let args = disk_args(dir.path(), "8MiB", "64MiB");
    let paths: Vec<String> =
        (0..5).map(|i| ask(&format!("/f/{i}.bin")).size(20_000).cache_control("max-age=3600").to_string()).collect();
    let mut first = edge(&origin, &args).await;
    for p in &paths {
        first.get(HOST, p).await;
    }
    on_disk(&first, paths.len()).await;
    first.stop();

    // Damage four of the five files, as a crash, a bad disk or an operator could.
    let files = object_files(dir.path());
    assert_eq!(files.len(), 5);
    let truncated = &files[0];
    std::fs::OpenOptions::new().write(true).open(truncated).unwrap().set_len(10_000).unwrap();
    let flipped = &files[1];
    let mut bytes = std::fs::read(flipped).unwrap();
    let at = bytes.len() - 7;
    bytes[at] ^= 0x20;
    std::fs::write(flipped, bytes).unwrap();
    let no_body = &files[2];
    let len = std::fs::metadata(no_body).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(no_body).unwrap().set_len(len - 20_000).unwrap();
    let garbage = &files[3];
    let mut bytes = std::fs::read(garbage).unwrap();
    bytes[..64].copy_from_slice(&[0x47; 64]);
    std::fs::write(garbage, bytes).unwrap();

    let second = edge(&origin, &args).await;
    loaded(&second).await;
    let before = origin.hits();
    for p in &paths {
        let r = second.get(HOST, p).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes, pattern_body(20_000), "{p}: never a damaged body");
    }
    assert_eq!(origin.hits(), before + 4, "the four damaged objects were fetched again, the whole one was not");
    let errors = second.metric_sum("dime_cache_disk_errors_total").await;
    assert_eq!(errors, 4.0, "{}", second.log_text());
    assert_eq!(second.metric(r#"dime_cache_disk_errors_total{kind="truncated"}"#).await, 2.0);
    assert_eq!(second.metric(r#"dime_cache_disk_errors_total{kind="garbled"}"#).await, 1.0);
    // The body's flipped byte passes the head check at start and is caught when the body is read.
    assert_eq!(second.metric(r#"dime_cache_disk_errors_total{kind="checksum"}"#).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_fills_never_leaves_a_body_that_differs_from_the_origins() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let args = disk_args(dir.path(), "16MiB", "256MiB");
    // 20 to 120 KB: all of it fits the disk budget, so every object that was written whole is read back from disk.
    let size = |i: usize| 20_000 + (i % 100) * 997;
    // Even objects arrive at once, odd ones over 0.8 s: each round is killed once some are on disk and while
    // the slow ones are still being filled and written.
    let path = |i: usize| {
        let every = Duration::from_millis(if i % 2 == 0 { 1 } else { 100 });
        ask(&format!("/k/{i}.bin")).size(size(i)).chunks(8, every).cache_control("max-age=3600").to_string()
    };
    // Bounded: 20 rounds of 100 concurrent fills, each round's edge SIGKILLed while they are under way.
    for round in 0..20 {
        let edge = Arc::new(edge(&origin, &args).await);
        loaded(&edge).await;
        let fills: Vec<_> = (0..100)
            .map(|i| {
                let (edge, p) = (edge.clone(), path(round * 100 + i));
                tokio::spawn(async move { edge.try_get(HOST, &p).await })
            })
            .collect();
        // Some objects on disk before the kill.
        at_least(&edge, "dime_cache_disk_writes_total", 5.0, Duration::from_secs(20), Duration::from_millis(5)).await;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..50))).await;
        std::process::Command::new("kill").args(["-KILL", &edge.pid().to_string()]).status().unwrap();
        let completed = whole_answers(fills).await;
        assert!(completed < 100, "round {round}: every fill had completed before the kill");
    }
    let last = Arc::new(edge(&origin, &args).await);
    loaded(&last).await;
    // Everything read back, 100 at a time (a refetched slow object takes 0.8 s).
    let mut from_disk = 0;
    for batch in 0..20 {
        let reads: Vec<_> = (batch * 100..batch * 100 + 100)
            .map(|i| {
                let (edge, p) = (last.clone(), path(i));
                tokio::spawn(async move { (i, edge.get(HOST, &p).await) })
            })
            .collect();
        for read in reads {
            let (i, r) = read.await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.bytes, pattern_body(size(i)), "object {i} differs from the origin's bytes");
            from_disk += usize::from(r.header("cache-status").starts_with("dime; hit"));
        }
    }
    assert!(from_disk > 0, "some fills completed and were kept before the kills");
    eprintln!("{from_disk} of 2000 objects were served from disk after 20 kills");
}

/// How many of the fills got a whole response.
async fn whole_answers(fills: Vec<tokio::task::JoinHandle<Option<support::Reply>>>) -> usize {
    let mut whole = 0;
    for f in fills {
        whole += usize::from(matches!(f.await, Ok(Some(r)) if r.status == 200));
    }
    whole
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_byte_budgets_hold_and_the_disk_serves_what_memory_evicted() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let args = disk_args(dir.path(), "1MiB", "2MiB");
    let edge = edge(&origin, &args).await;
    loaded(&edge).await;
    let path = |i: usize| ask(&format!("/b/{i}.bin")).size(65_536).cache_control("max-age=3600").to_string();
    // 6 MiB: three times the disk budget, six times memory's.
    for i in 0..96 {
        assert_eq!(edge.get(HOST, path(i)).await.status, 200);
    }
    // The disk writes settled.
    at_least(&edge, "dime_cache_disk_writes_total", 96.0, Duration::from_secs(10), Duration::from_millis(50)).await;
    let disk = edge.metric("dime_cache_disk_stored_bytes").await;
    let files: u64 = object_files(dir.path()).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(disk > 0.0 && disk <= (2 << 20) as f64, "disk tier holds {disk} bytes with a 2 MiB budget");
    assert_eq!(files as f64, disk, "the files on disk are what the tier counts");
    let memory = edge.metric("dime_cache_stored_bytes").await;
    assert!(memory <= (1 << 20) as f64, "memory holds {memory} bytes with a 1 MiB budget");
    assert!(edge.metric("dime_cache_disk_evictions_total").await > 0.0);

    // Objects memory evicted but the disk kept are hits without the origin: read everything back, newest
    // first (the misses' refills evict in turn).
    let before = origin.hits();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for i in (0..96).rev() {
        let r = edge.get(HOST, path(i)).await;
        assert_eq!(r.bytes, pattern_body(65_536));
        let status = r.header("cache-status");
        *statuses.entry(status.split("; ttl").next().unwrap_or(status).to_owned()).or_default() += 1;
    }
    let disk_hits = edge.metric("dime_cache_disk_hits_total").await as usize;
    assert!(disk_hits >= 10, "{disk_hits} disk hits; {statuses:?}");
    let hits = statuses.get("dime; hit").copied().unwrap_or(0);
    assert_eq!(origin.hits() - before, 96 - hits, "every hit without the origin; {statuses:?}");
    assert!(hits >= disk_hits, "{statuses:?}");
}

/// A tmpfs of 1 MiB under the cache directory: the disk fills up while viewers keep getting every object.
/// Mounting needs root, as CI runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_turns_the_tier_off_without_a_viewer_error() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "dime-test-full", mount.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs (the test needs root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());

    let edge = edge(&origin, &disk_args(&mount, "64MiB", "64MiB")).await;
    loaded(&edge).await;
    for i in 0..40 {
        let p = ask(&format!("/full/{i}.bin")).size(100_000).cache_control("max-age=3600").to_string();
        let r = edge.get(HOST, &p).await;
        assert_eq!((r.status, r.bytes.len()), (200, 100_000), "viewer request {i}");
    }
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the tier turned off",
        || edge.log_text(),
        || async { (edge.metric("dime_cache_disk_enabled").await == 0.0).then_some(()) },
    )
    .await;
    assert!(edge.metric(r#"dime_cache_disk_errors_total{kind="full"}"#).await >= 1.0);
    assert_eq!(edge.log_text().matches("the disk tier is off").count(), 1, "one log line");
    // Memory still caches.
    let p = ask("/full/1.bin").size(100_000).cache_control("max-age=3600").to_string();
    assert!(edge.get(HOST, &p).await.header("cache-status").starts_with("dime; hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_variants_are_kept_apart_on_disk_across_a_restart() {
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let args = disk_args(dir.path(), "8MiB", "64MiB");
    let path = ask("/site.css").size(3000).cache_control("max-age=3600").vary_encoding().to_string();
    let variants: [&[(&str, &str)]; 3] = [&[("accept-encoding", "gzip")], &[("accept-encoding", "br")], &[]];
    let body = |asked: &[(&str, &str)]| {
        let mut body = format!("encoding={}\n", asked.first().map_or("", |h| h.1)).into_bytes();
        body.extend(pattern_body(3000));
        body
    };
    let mut first = edge(&origin, &args).await;
    for asked in variants {
        let r = first.request(reqwest::Method::GET, HOST, &path, asked).await;
        assert_eq!(r.bytes, body(asked), "{asked:?}");
    }
    assert_eq!(origin.hits(), 3, "one fill per variant");
    on_disk(&first, 3).await;
    first.stop(); // SIGKILL

    let second = edge(&origin, &args).await;
    loaded(&second).await;
    // Each variant twice: once when its file is opened, once from the open file.
    for asked in variants.iter().chain(variants.iter()) {
        let r = second.request(reqwest::Method::GET, HOST, &path, asked).await;
        assert!(r.header("cache-status").starts_with("dime; hit"), "{asked:?}: {}", r.header("cache-status"));
        assert_eq!(r.bytes, body(asked), "{asked:?}: its own variant's bytes");
    }
    assert_eq!(origin.hits(), 3, "no origin request after the restart");
}
