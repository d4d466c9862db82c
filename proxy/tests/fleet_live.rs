//! The fleet tier on a live stream, all real: a real nginx-rtmp origin fed by ffmpeg (HLS, `Cache-Control:
//! no-cache`), four edges on loopback that know each other (`--peers`), viewers spread over all four. The whole
//! fleet asks the origin once per segment (not four times) and about once per playlist TTL; when the edge that
//! owns the stream is killed mid-stream, the viewers of the other three see no error.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::live::{Publisher, RtmpOrigin};
use support::{cached_route, free_addr, Edge};

const EDGES: usize = 4;
const VIEWERS_PER_EDGE: usize = 10;
const WATCH: Duration = Duration::from_secs(12);
const KILL_AT: Duration = Duration::from_secs(6);

fn segments(playlist: &str) -> Vec<String> {
    playlist.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.trim().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_edges_cost_the_live_origin_one_fetch_per_segment_and_survive_losing_one() {
    let origin = RtmpOrigin::start();
    let publisher = Publisher::ffmpeg(&format!("rtmp://{}/live/stream", origin.rtmp), 60);
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("peer-tokens");
    std::fs::write(&tokens, "live-fleet-peer-token-0123456789\n").unwrap();
    let listens: Vec<_> = (0..EDGES).map(|_| free_addr()).collect();
    let peers: Vec<String> = listens.iter().enumerate().map(|(i, a)| format!("e{i}=http://{a}")).collect();
    let peers = peers.join(",");
    let routes = cached_route("live", "live.test", &origin.url(), "{}");
    let mut edges = Vec::new();
    for (i, listen) in listens.iter().enumerate() {
        let (name, listen) = (format!("e{i}"), listen.to_string());
        let token = tokens.to_str().unwrap();
        let args = ["--edge-name", &name, "--peer-listen", &listen, "--peers", &peers, "--peer-token-file", token];
        edges.push(Edge::start(&routes, &[&args[..], &["--access-log", "false"]].concat()).await);
    }
    let edges: Vec<Arc<Edge>> = edges.into_iter().map(Arc::new).collect();

    // The stream is up when a playlist lists a few segments.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = edges[0].get("live.test", "/hls/stream.m3u8").await;
        if r.status == 200 && segments(&r.body).len() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no live playlist after 30s; ffmpeg: {}", publisher.log_text());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let playlists_before = origin.requests().get("/hls/stream.m3u8").copied().unwrap_or(0);
    // Which edge was killed (none yet).
    let killed = Arc::new(AtomicUsize::new(usize::MAX));
    let fetched = Arc::new(Mutex::new(HashSet::<String>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut viewers = Vec::new();
    for v in 0..EDGES * VIEWERS_PER_EDGE {
        let on = v % EDGES;
        let (edge, killed, fetched, errors) = (edges[on].clone(), killed.clone(), fetched.clone(), errors.clone());
        viewers.push(tokio::spawn(async move {
            let mut seen = HashSet::new();
            // Bounded: at most 40 rounds, and no longer than WATCH.
            for _ in 0..40 {
                if started.elapsed() > WATCH || killed.load(Ordering::SeqCst) == on {
                    break;
                }
                let Some(p) = edge.try_get("live.test", "/hls/stream.m3u8").await.filter(|p| p.status == 200) else {
                    errors.lock().unwrap().push(format!("edge e{on}: playlist failed"));
                    continue;
                };
                for seg in segments(&p.body).iter().rev().take(2) {
                    if seen.insert(seg.clone()) {
                        match edge.try_get("live.test", format!("/hls/{seg}")).await {
                            Some(s) if s.status == 200 && s.bytes.first() == Some(&0x47) => {
                                fetched.lock().unwrap().insert(seg.clone());
                            }
                            other => {
                                errors.lock().unwrap().push(format!("edge e{on}: {seg}: {:?}", other.map(|s| s.status)))
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }

    // Mid-stream, the edge that owns the stream (the one serving the others) dies, as in a crash (SIGKILL); its
    // viewers stop, the others keep watching.
    tokio::time::sleep(KILL_AT).await;
    let before_kill = origin.requests();
    let fetched_before_kill = fetched.lock().unwrap().clone();
    // The owner is the edge that serves the others (from its cache or by filling): every peer request of the
    // stream goes to it, whether or not it had to ask the origin for that one.
    let mut served = Vec::new();
    for edge in &edges {
        served.push(edge.metric("dime_peer_served_bytes_total").await);
    }
    let owners: Vec<usize> = (0..EDGES).filter(|&i| served[i] > 0.0).collect();
    assert_eq!(owners.len(), 1, "one edge serves the stream to the others; bytes served to peers per edge: {served:?}");
    let owner = owners[0];
    killed.store(owner, Ordering::SeqCst);
    let _ = std::process::Command::new("kill").args(["-9", &edges[owner].pid().to_string()]).status();
    for v in viewers {
        v.await.unwrap();
    }
    let watched = started.elapsed();
    let after = origin.requests();

    let errors = errors.lock().unwrap().clone();
    let errors: Vec<&String> = errors.iter().filter(|e| !e.starts_with(&format!("edge e{owner}:"))).collect();
    assert!(errors.is_empty(), "viewers of the surviving edges saw errors: {errors:?}");
    let fetched = fetched.lock().unwrap().clone();
    assert!(fetched.len() >= 6, "viewers followed the stream: {fetched:?}");
    // Before the kill: one origin request per segment for the whole fleet.
    for seg in &fetched_before_kill {
        let n = before_kill.get(&format!("/hls/{seg}")).copied().unwrap_or(0);
        assert_eq!(n, 1, "before the kill, {seg} was fetched {n} times from the origin (4 edges)");
    }
    // After it: a segment being fetched when the owner died may be fetched once more by the member that took over.
    let counts: HashMap<&String, usize> =
        fetched.iter().map(|s| (s, after.get(&format!("/hls/{s}")).copied().unwrap_or(0))).collect();
    assert!(counts.values().all(|n| (1..=2).contains(n)), "{counts:?}");
    // The playlist: about one origin request per TTL window (1 s) for the fleet, not one per edge.
    let playlist_fetches = after.get("/hls/stream.m3u8").copied().unwrap_or(0) - playlists_before;
    let allowed = watched.as_secs_f64().ceil() as usize + 2;
    assert!(playlist_fetches <= allowed, "{playlist_fetches} playlist fetches in {watched:?} for {EDGES} edges");
    eprintln!(
        "{} viewers on {EDGES} edges for {watched:?}: {} segments, origin requests per segment {:?}, {playlist_fetches} playlist fetches",
        EDGES * VIEWERS_PER_EDGE,
        fetched.len(),
        counts.values().copied().collect::<Vec<_>>()
    );
    drop(publisher);
}
