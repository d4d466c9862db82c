//! Live HLS through the edge with real parts: an nginx-rtmp origin (HLS, `Cache-Control: no-cache`, as the old
//! cluster's origin) fed by a real ffmpeg publisher, and hundreds of simulated viewers following the stream.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::live::{Publisher, RtmpOrigin};
use support::{cached_route, Edge};

const VIEWERS: usize = 200;
const WATCH: Duration = Duration::from_secs(8);

fn segments(playlist: &str) -> Vec<String> {
    playlist.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.trim().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_live_viewers_cost_one_origin_fetch_per_segment_and_playlist_ttl() {
    let mut origin = RtmpOrigin::start();
    let publisher = Publisher::ffmpeg(&format!("rtmp://{}/live/stream", origin.rtmp), 60);
    let edge = Arc::new(
        Edge::start(&cached_route("live", "live.test", &origin.url(), "{}"), &["--access-log", "false"]).await,
    );

    // Wait for the stream to have a playlist with a few segments.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = edge.get("live.test", "/hls/stream.m3u8").await;
        if r.status == 200 && segments(&r.body).len() >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no live playlist after 30s; ffmpeg: {}\nnginx: {}",
            publisher.log_text(),
            origin.error_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let before = origin.requests();
    let playlists_before = before.get("/hls/stream.m3u8").copied().unwrap_or(0);
    let statuses = Arc::new(Mutex::new(Vec::<String>::new()));
    let fetched = Arc::new(Mutex::new(HashSet::<String>::new()));
    let started = Instant::now();
    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        let (edge, statuses, fetched) = (edge.clone(), statuses.clone(), fetched.clone());
        viewers.push(tokio::spawn(async move {
            let mut seen = HashSet::new();
            // Bounded: at most 40 rounds, and no longer than WATCH.
            for _ in 0..40 {
                if started.elapsed() > WATCH {
                    break;
                }
                let p = edge.get("live.test", "/hls/stream.m3u8").await;
                assert_eq!(p.status, 200);
                statuses.lock().unwrap().push(p.header("cache-status").to_owned());
                for seg in segments(&p.body).iter().rev().take(2) {
                    if seen.insert(seg.clone()) {
                        let s = edge.get("live.test", &format!("/hls/{seg}")).await;
                        assert_eq!(s.status, 200, "{seg}");
                        assert_eq!(s.bytes.first(), Some(&0x47), "{seg} is an MPEG-TS segment");
                        fetched.lock().unwrap().insert(seg.clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    for v in viewers {
        v.await.unwrap();
    }
    let watched = started.elapsed();
    let after = origin.requests();

    // One origin request per segment, however many viewers.
    let fetched = fetched.lock().unwrap().clone();
    assert!(fetched.len() >= 4, "viewers followed the stream: {fetched:?}");
    for seg in &fetched {
        let n = after.get(&format!("/hls/{seg}")).copied().unwrap_or(0);
        assert_eq!(
            n,
            1,
            "segment {seg} fetched {n} times from the origin; origin log:\n{}",
            std::fs::read_to_string(origin.dir.path().join("access.log")).unwrap_or_default()
        );
    }
    // At most one playlist request per TTL window (1 s), plus the window in progress.
    let playlist_fetches = after.get("/hls/stream.m3u8").copied().unwrap_or(0) - playlists_before;
    let allowed = watched.as_secs_f64().ceil() as usize + 1;
    assert!(playlist_fetches <= allowed, "{playlist_fetches} playlist fetches in {watched:?}");
    // Never a stale playlist: every answer was fetched now or is within its TTL.
    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.len() >= VIEWERS * 10);
    for s in &statuses {
        let fresh = s.contains("fwd=miss")
            || s.contains("fwd=stale; stored")
            || s.split("ttl=").nth(1).is_some_and(|t| !t.starts_with('-'));
        assert!(fresh, "a viewer got a stale playlist: {s}");
    }
    eprintln!(
        "{VIEWERS} viewers for {watched:?}: {} playlist responses from {playlist_fetches} origin fetches; {} segments, each fetched once",
        statuses.len(),
        fetched.len()
    );

    // A segment that does not exist: many viewers, one origin request within the negative TTL.
    let mut misses = Vec::new();
    for _ in 0..50 {
        let edge = edge.clone();
        misses.push(tokio::spawn(async move { edge.get("live.test", "/hls/stream-999999.ts").await.status }));
    }
    for m in misses {
        assert_eq!(m.await.unwrap(), 404);
    }
    assert_eq!(origin.requests().get("/hls/stream-999999.ts").copied(), Some(1));

    // Origin down: segments already cached are still served, and the playlist stays available (stale-if-error).
    let cached = fetched.iter().next().unwrap().clone();
    drop(publisher);
    origin.stop();
    let s = edge.get("live.test", &format!("/hls/{cached}")).await;
    assert_eq!(s.status, 200);
    assert!(s.header("cache-status").contains("hit"), "{}", s.header("cache-status"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let p = edge.get("live.test", "/hls/stream.m3u8").await;
    assert_eq!(p.status, 200, "playlist served stale while the origin is down");
    assert!(p.header("cache-status").contains("detail=stale"), "{}", p.header("cache-status"));
}
