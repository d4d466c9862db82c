//! Live streams that stop, restart, end and disappear, with real parts: an nginx-rtmp origin (HLS and DASH, its
//! default cleanup and continuous numbering) fed by real ffmpeg publishers with visibly different sources. The
//! promise under test: a viewer of the current stream gets the current stream's bytes, whatever the origin does
//! with segment names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dime_edge::cache::live::listing::{self, Format};
use support::live::{OriginOptions, Publisher, RtmpOrigin};
use support::{cached_route, Edge};

const HOST: &str = "live.test";

/// The paths a playlist lists (segments, init segments), resolved against it.
fn listed(playlist_path: &str, body: &[u8]) -> Vec<String> {
    let format = Format::of(playlist_path).unwrap();
    let Ok(Some(listing)) = listing::parse(format, body) else { return Vec::new() };
    listing
        .entries
        .iter()
        .filter_map(|e| listing::resolve(HOST, playlist_path, &e.uri))
        .map(|(_, path, _)| path)
        .collect()
}

fn media_count(playlist_path: &str, body: &[u8]) -> usize {
    let format = Format::of(playlist_path).unwrap();
    match listing::parse(format, body) {
        Ok(Some(l)) => l.entries.iter().filter(|e| e.seq.is_some()).count(),
        _ => 0,
    }
}

/// A viewer through the edge: fetches the playlist and every entry it has not fetched yet. Returns the playlist
/// body when it answered 200.
async fn watch_once(edge: &Edge, playlist: &str, fetched: &mut HashSet<String>) -> Option<Vec<u8>> {
    let p = edge.get(HOST, playlist).await;
    if p.status != 200 {
        return None;
    }
    for path in listed(playlist, &p.bytes) {
        if fetched.insert(path.clone()) {
            edge.get(HOST, &path).await;
        }
    }
    Some(p.bytes)
}

/// One viewer round ([`watch_once`]); whether the playlist answered and lists at least `n` media segments.
async fn lists_at_least(edge: &Edge, playlist: &str, fetched: &mut HashSet<String>, n: usize) -> bool {
    watch_once(edge, playlist, fetched).await.is_some_and(|b| media_count(playlist, &b) >= n)
}

/// A bounded wait: each `tick` sleeps 300 ms, and fails the test once `limit` has passed.
struct Wait {
    what: &'static str,
    limit: Duration,
    deadline: Instant,
}

impl Wait {
    fn for_(what: &'static str, limit: Duration) -> Wait {
        Wait { what, limit, deadline: Instant::now() + limit }
    }

    async fn tick(&self) {
        assert!(Instant::now() < self.deadline, "timed out after {:?} waiting for {}", self.limit, self.what);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Every entry the edge's current playlist lists is byte-identical through the edge and at the origin. Returns
/// the entries compared.
async fn assert_current_bytes(edge: &Edge, origin: &RtmpOrigin, playlist: &str) -> Vec<String> {
    let p = edge.get(HOST, playlist).await;
    assert_eq!(p.status, 200, "{playlist}");
    let entries = listed(playlist, &p.bytes);
    assert!(!entries.is_empty(), "{playlist} lists nothing:\n{}", p.body);
    for path in &entries {
        let through = edge.get(HOST, path).await;
        let (status, direct) = origin.get(path).await;
        if status != 200 {
            // Rotated out at the origin between the two requests.
            continue;
        }
        assert_eq!(through.status, 200, "{path}");
        assert!(
            through.bytes == direct,
            "{path}: the edge served {} bytes ({}) that are not the origin's current {} bytes",
            through.bytes.len(),
            through.header("cache-status"),
            direct.len()
        );
    }
    entries
}

fn rtmp(origin: &RtmpOrigin) -> String {
    format!("rtmp://{}/live/stream", origin.rtmp)
}

/// An nginx-rtmp origin set up with `opts`, an edge caching it, and a first publisher (test pattern) whose stream a
/// viewer has followed through the edge until `playlist` listed `segments` media segments.
struct Running {
    origin: RtmpOrigin,
    edge: Edge,
    first: Publisher,
    /// What the viewer fetched through the edge so far.
    fetched: HashSet<String>,
}

async fn first_stream(opts: OriginOptions, playlist: &str, segments: usize) -> Running {
    let origin = RtmpOrigin::start_opts(opts);
    let edge = Edge::start(&cached_route("live", HOST, &origin.url(), "{}"), &["--access-log", "false"]).await;
    let first = Publisher::ffmpeg_source(&rtmp(&origin), 30, "testsrc");
    let mut fetched = HashSet::new();
    let wait = Wait::for_("the first stream's segments cached at the edge", Duration::from_secs(40));
    while !lists_at_least(&edge, playlist, &mut fetched, segments).await {
        wait.tick().await;
    }
    Running { origin, edge, first, fetched }
}

/// The publisher goes away for longer than nginx-rtmp's cleanup window and comes back with another picture: its
/// numbering restarts at 0 and the old names get new content. `poll_during_gap`: viewers keep asking through the
/// edge while the stream is gone (the edge sees the playlist's 404), or nobody does (the edge only sees the new
/// playlist, with the same names at lower numbers).
async fn restart_after_cleanup(poll_during_gap: bool) {
    let playlist = "/hls/stream.m3u8";
    let Running { origin, edge, mut first, mut fetched } =
        first_stream(OriginOptions { playlist_length: "3s", ..Default::default() }, playlist, 3).await;
    let old: HashSet<String> = fetched.clone();
    first.stop();

    let wait = Wait::for_("nginx-rtmp's cleanup to remove the stopped stream", Duration::from_secs(90));
    while origin.get(playlist).await.0 != 404 {
        if poll_during_gap {
            watch_once(&edge, playlist, &mut fetched).await;
        }
        wait.tick().await;
    }
    if poll_during_gap {
        let wait = Wait::for_("the edge to answer 404 for the vanished stream", Duration::from_secs(5));
        while edge.get(HOST, playlist).await.status != 404 {
            wait.tick().await;
        }
    }

    let _second = Publisher::ffmpeg_source(&rtmp(&origin), 30, "smptebars");
    let wait = Wait::for_("the new stream to reuse a name the edge cached from the old one", Duration::from_secs(40));
    loop {
        let p = edge.get(HOST, playlist).await;
        let reused = listed(playlist, &p.bytes).iter().any(|s| old.contains(s));
        if p.status == 200 && media_count(playlist, &p.bytes) >= 3 && reused {
            break;
        }
        wait.tick().await;
    }
    let compared = assert_current_bytes(&edge, &origin, playlist).await;
    assert!(compared.iter().any(|s| old.contains(s)), "no reused name among {compared:?}");
    assert!(edge.metric("dime_cache_live_dropped_total").await >= 1.0, "old segments were dropped, not served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_restarted_after_cleanup_is_served_its_own_segments_while_viewers_wait() {
    restart_after_cleanup(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_restarted_after_cleanup_is_served_its_own_segments_with_nobody_watching_the_gap() {
    restart_after_cleanup(false).await;
}

/// A publisher that reconnects within the cleanup window: numbering continues, viewers through the edge follow
/// without a stall, and each segment still costs the origin exactly one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_inside_the_window_continues_with_one_origin_fetch_per_segment() {
    let playlist = "/hls/stream.m3u8";
    let Running { origin, edge, mut first, mut fetched } = first_stream(OriginOptions::default(), playlist, 3).await;
    let before = fetched.len();
    first.stop();
    // The publisher's reconnect gap.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _second = Publisher::ffmpeg_source(&rtmp(&origin), 30, "smptebars");
    let wait = Wait::for_("viewers to follow past the reconnect", Duration::from_secs(40));
    loop {
        // A viewer never sees the playlist disappear during a reconnect.
        assert!(watch_once(&edge, playlist, &mut fetched).await.is_some(), "playlist missing during the reconnect");
        if fetched.len() >= before + 4 {
            break;
        }
        wait.tick().await;
    }
    let requests = origin.requests();
    for path in &fetched {
        let n = requests.get(path).copied().unwrap_or(0);
        assert_eq!(n, 1, "{path} fetched {n} times from the origin");
    }
    assert_current_bytes(&edge, &origin, playlist).await;
    assert_eq!(edge.metric("dime_cache_live_dropped_total").await, 0.0, "nothing needed dropping");
    assert!(edge.metric(r#"dime_cache_live_playlists_total{continuity="continuous"}"#).await >= 2.0);
}

/// nginx-rtmp's DASH names segments by a timestamp that restarts at 0 on every publish, and rewrites the init
/// segments under the same names: a new publisher reuses names at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_dash_stream_is_served_its_own_segments() {
    let manifest = "/dash/stream.mpd";
    let Running { origin, edge, mut first, fetched } =
        first_stream(OriginOptions { dash: true, ..Default::default() }, manifest, 6).await;
    let old = fetched.clone();
    let epoch = |body: &[u8]| listing::parse(Format::Dash, body).ok().flatten().and_then(|l| l.shape.epoch);
    let old_epoch = epoch(&edge.get(HOST, manifest).await.bytes);
    assert!(old_epoch.is_some(), "nginx-rtmp's MPD names its stream by availabilityStartTime");
    first.stop();
    // The publisher's reconnect gap.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _second = Publisher::ffmpeg_source(&rtmp(&origin), 30, "smptebars");
    let wait = Wait::for_("the new DASH stream to reuse the old names", Duration::from_secs(40));
    loop {
        let p = edge.get(HOST, manifest).await;
        let reused = listed(manifest, &p.bytes).iter().filter(|s| old.contains(*s)).count();
        let new_stream = epoch(&p.bytes) != old_epoch;
        if p.status == 200 && new_stream && media_count(manifest, &p.bytes) >= 4 && reused >= 4 {
            break;
        }
        wait.tick().await;
    }
    let compared = assert_current_bytes(&edge, &origin, manifest).await;
    assert!(compared.iter().any(|s| s.ends_with("init.m4v")), "{compared:?}");
    let (_, metrics) = edge.admin("/metrics").await;
    assert!(
        edge.metric(r#"dime_cache_live_playlists_total{continuity="epoch"}"#).await >= 1.0,
        "{}",
        metrics.lines().filter(|l| l.contains("cache") && !l.starts_with("#")).collect::<Vec<_>>().join("\n")
    );
}

/// `hls_fragment_naming system`: names from the wall clock, never reused; a restart changes nothing for the
/// edge but must not cost extra fetches or serve anything but the origin's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_named_fragments_survive_a_restart() {
    let playlist = "/hls/stream.m3u8";
    let Running { origin, edge, mut first, mut fetched } =
        first_stream(OriginOptions { naming: "system", ..Default::default() }, playlist, 3).await;
    let before = fetched.len();
    first.stop();
    let _second = Publisher::ffmpeg_source(&rtmp(&origin), 30, "smptebars");
    let wait = Wait::for_("the second stream", Duration::from_secs(40));
    loop {
        watch_once(&edge, playlist, &mut fetched).await;
        if fetched.len() >= before + 3 {
            break;
        }
        wait.tick().await;
    }
    let requests = origin.requests();
    for path in &fetched {
        assert_eq!(requests.get(path).copied().unwrap_or(0), 1, "{path}");
    }
    assert_current_bytes(&edge, &origin, playlist).await;
}

/// A playlist with `#EXT-X-ENDLIST` is kept like VOD; a playlist that disappears answers 404 within the negative
/// TTL at one origin request per TTL, and is back within one playlist TTL when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_streams_are_vod_and_vanished_ones_404_then_return() {
    let origin = RtmpOrigin::start();
    let edge = Edge::start(&cached_route("live", HOST, &origin.url(), "{}"), &["--access-log", "false"]).await;
    let dir = origin.hls_dir();
    let live_playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nshow-0.ts\n";
    std::fs::write(dir.join("show-0.ts"), [0x47u8; 188 * 10]).unwrap();

    // Live: the playlist TTL (1 s).
    std::fs::write(dir.join("show.m3u8"), live_playlist).unwrap();
    let p = edge.get(HOST, "/hls/show.m3u8").await;
    assert_eq!(p.status, 200);
    assert!(p.header("cache-status").contains("fwd=miss"), "{}", p.header("cache-status"));
    let ttl = |r: &support::Reply| -> i64 {
        r.header("cache-status")
            .split("ttl=")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(-1)
    };

    // Ended: after the live copy expires, the ENDLIST version is kept for segment_ttl (1 h).
    std::fs::write(dir.join("show.m3u8"), format!("{live_playlist}#EXT-X-ENDLIST\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    edge.get(HOST, "/hls/show.m3u8").await;
    let hit = edge.get(HOST, "/hls/show.m3u8").await;
    assert!(hit.body.contains("#EXT-X-ENDLIST"), "{}", hit.body);
    assert!(ttl(&hit) > 3000, "an ended playlist is cached like VOD: {}", hit.header("cache-status"));

    // Vanished: a live playlist removed at the origin.
    std::fs::write(dir.join("gone.m3u8"), live_playlist).unwrap();
    assert_eq!(edge.get(HOST, "/hls/gone.m3u8").await.status, 200);
    std::fs::remove_file(dir.join("gone.m3u8")).unwrap();
    let removed = Instant::now();
    let before = origin.requests().get("/hls/gone.m3u8").copied().unwrap_or(0);
    let mut first_404 = None;
    // 20 viewers polling every 100 ms for 3 s (bounded: 30 rounds).
    for _ in 0..30 {
        let answers = poll_many(&edge, "/hls/gone.m3u8", 20).await;
        if first_404.is_none() && answers.iter().all(|s| *s == 404) {
            first_404 = Some(removed.elapsed());
        }
        if first_404.is_some() {
            assert!(answers.iter().all(|s| *s == 404), "once gone, every viewer gets 404: {answers:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_404 = first_404.expect("the vanished playlist answered 404");
    assert!(first_404 <= Duration::from_millis(2200), "404 seen after {first_404:?} (playlist TTL + negative TTL)");
    let origin_asks = origin.requests().get("/hls/gone.m3u8").copied().unwrap_or(0) - before;
    let window = removed.elapsed().as_secs_f64().ceil() as usize;
    assert!(origin_asks <= window + 1, "{origin_asks} origin requests in {window} s for a vanished playlist");

    // Back: within one TTL.
    std::fs::write(dir.join("gone.m3u8"), live_playlist).unwrap();
    let back = Instant::now();
    let wait = Wait::for_("the returned playlist", Duration::from_secs(3));
    while edge.get(HOST, "/hls/gone.m3u8").await.status != 200 {
        wait.tick().await;
    }
    assert!(back.elapsed() <= Duration::from_millis(1500), "returned after {:?}", back.elapsed());
}

/// `n` viewers asking for `path` one after another; their statuses.
async fn poll_many(edge: &Edge, path: &str, n: usize) -> Vec<u16> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(edge.get(HOST, path).await.status);
    }
    all
}

/// Issue 33's third scenario, as a new user tried it: stream A is watched for 12 s, the publisher stops, nobody
/// watches while nginx-rtmp cleans the stream up, stream B comes under the same name and renumbers from 0, and is
/// watched for 9 s (longer if needed until B reuses a name A's viewers fetched). Viewers are spread over `edges`
/// edges (a fleet when more than one); half read the edge's playlist, half the origin's, which is up to a playlist
/// TTL ahead of the edge's (as a player's is that learns names another way: a DASH template, an LL-HLS preload
/// hint, a playlist from another edge). Every segment a viewer of B fetches through an edge is byte-identical to
/// the origin's copy fetched at the same moment.
async fn restart_unwatched(edges: usize, playlist: &str) {
    let origin = RtmpOrigin::start_opts(OriginOptions { playlist_length: "3s", ..Default::default() });
    let routes = cached_route("live", HOST, &origin.url(), "{}");
    let fleet = support::fleet::Static::new(edges);
    let mut all = Vec::new();
    for i in 0..edges {
        let mut args = fleet.args(i);
        args.extend(["--access-log".to_owned(), "false".to_owned()]);
        all.push(Edge::start(&routes, &args.iter().map(String::as_str).collect::<Vec<_>>()).await);
    }
    let mut first = Publisher::ffmpeg_source(&rtmp(&origin), 60, "testsrc");
    let mut old = HashSet::new();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(12) {
        watch_once(&all[round % edges], playlist, &mut old).await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(old.len() >= 4, "stream A's viewers fetched {old:?}");
    first.stop();
    let wait = Wait::for_("nginx-rtmp's cleanup to remove the stopped stream", Duration::from_secs(90));
    while origin.get(playlist).await.0 != 404 {
        wait.tick().await;
    }

    let _second = Publisher::ffmpeg_source(&rtmp(&origin), 60, "smptebars");
    let mut fetched: Vec<HashSet<String>> = vec![HashSet::new(); 2 * edges];
    let mut wrong = Vec::new();
    let mut compared = 0;
    let watching = Instant::now();
    let reused = |fetched: &[HashSet<String>]| fetched.iter().flatten().any(|s| old.contains(s));
    while watching.elapsed() < Duration::from_secs(9) || !reused(&fetched) {
        assert!(watching.elapsed() < Duration::from_secs(40), "stream B never reused a name of A's: {fetched:?}");
        for (viewer, seen) in fetched.iter_mut().enumerate() {
            let edge = &all[viewer % edges];
            let body = if viewer < edges {
                let p = edge.get(HOST, playlist).await;
                (p.status == 200).then_some(p.bytes)
            } else {
                let (status, body) = origin.get(playlist).await;
                (status == 200).then_some(body)
            };
            for path in body.map(|b| listed(playlist, &b)).unwrap_or_default() {
                if !seen.insert(path.clone()) {
                    continue;
                }
                let through = edge.get(HOST, &path).await;
                let (status, direct) = origin.get(&path).await;
                if status != 200 {
                    continue;
                }
                compared += 1;
                if through.bytes != direct {
                    wrong.push(format!(
                        "{path} through edge {}: {} (age {}), a name of stream A's: {}",
                        viewer % edges,
                        through.header("cache-status"),
                        through.header("age"),
                        old.contains(&path)
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(wrong.is_empty(), "segments of stream B served with other bytes than the origin's:\n{}", wrong.join("\n"));
    assert!(compared >= 4 * edges, "only {compared} segments compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_restarted_while_nobody_watches_never_gets_the_old_streams_segments() {
    restart_unwatched(1, "/hls/stream.m3u8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_restarted_while_nobody_watches_never_gets_the_old_streams_segments_from_a_fleet() {
    restart_unwatched(3, "/hls/stream.m3u8").await;
}

/// The same with the segments in a sub-directory of their playlist (`/nested/stream/index.m3u8` listing
/// `seg/stream-0.ts`): a segment's owner in the fleet is its playlist's, which judges the playlist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_stream_restarted_while_nobody_watches_never_gets_the_old_streams_segments_from_a_fleet() {
    restart_unwatched(3, "/nested/stream/index.m3u8").await;
}
