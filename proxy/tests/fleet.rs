//! The fleet tier with static members (`--peers`), all real processes on loopback: three edges in front of one
//! origin fetch each object from the origin once between them, however many viewers ask which edge; an edge
//! that goes away costs the viewers nothing; the peer listener is not an open proxy; bad member lists are refused
//! at start, by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use support::{ask, cached_route, eventually, free_addr, Edge, Origin};

use support::fleet::PEER_TOKEN;

/// Three edges, `a`, `b` and `c`, each knowing all three; with their peer listeners.
struct Fleet {
    edges: Vec<Edge>,
    members: support::fleet::Static,
    peers: Vec<SocketAddr>,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

impl Fleet {
    /// What member `i` runs with: its name, its peer listener, the member list and the peer token.
    fn member_args(&self, i: usize) -> Vec<String> {
        self.members.args(i)
    }

    /// Starts member `i` with `routes`, and `extra` arguments.
    async fn start_member(&self, i: usize, routes: &str, extra: &[String]) -> Edge {
        let mut args = self.member_args(i);
        args.extend_from_slice(extra);
        Edge::start(routes, &args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }
}

async fn fleet(origin: &Origin) -> Fleet {
    fleet_with(&cached_route("v", "video.test", &origin.url(), "{}")).await
}

/// The three edges with `routes`.
async fn fleet_with(routes: &str) -> Fleet {
    fleet_extra(routes, |_| Vec::new()).await
}

/// The three edges with `routes`, member `i` with the arguments `extra(i)` too.
async fn fleet_extra(routes: &str, extra: impl Fn(usize) -> Vec<String>) -> Fleet {
    let members = support::fleet::Static::named(&NAMES);
    let mut fleet = Fleet { edges: Vec::new(), peers: members.peers.clone(), members };
    for i in 0..NAMES.len() {
        let edge = fleet.start_member(i, routes, &extra(i)).await;
        fleet.edges.push(edge);
    }
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_object_is_fetched_from_the_origin_once_for_the_whole_fleet() {
    let origin = Origin::start("o").await;
    let fleet = fleet(&origin).await;
    // Every viewer of every edge asks for every object, one edge after the other.
    // One directory per object: a stream's objects share an owner (one directory), these spread over the ring.
    let paths: Vec<String> = (0..24).map(|i| format!("/vod/{i}/seg.ts")).collect();
    for path in &paths {
        for edge in &fleet.edges {
            let r = edge.get("video.test", ask(path).size(20_000).cache_control("max-age=60")).await;
            assert_eq!((r.status, r.bytes.len()), (200, 20_000), "{path}");
        }
    }
    for path in &paths {
        assert_eq!(origin.hits_for(path), 1, "{path} fetched from the origin more than once");
    }
    // The two edges that do not own an object each asked its owner once.
    let mut sent = 0.0;
    for edge in &fleet.edges {
        sent += edge.metric(r#"dime_peer_requests_total{direction="sent",result="ok"}"#).await;
    }
    assert_eq!(sent, 48.0, "two peer fetches per object");
    // Origin offload for the fleet: three viewers' bytes for each byte from the origin (bytes sent to other edges
    // are not counted as served to viewers). Counted in Pingora's logging phase, just after each response.
    let edges = &fleet.edges;
    let want = (3.0 * 24.0 * 20_000.0, 24.0 * 20_000.0);
    let last = std::sync::Mutex::new((0.0, 0.0));
    let detail = || format!("served, fetched: {:?}, want {want:?}", last.lock().unwrap());
    support::eventually(Duration::from_secs(5), Duration::from_millis(20), "offload", detail, || async {
        let (mut served, mut fetched) = (0.0, 0.0);
        for edge in edges {
            served += edge.metric(r#"dime_http_response_body_bytes_total{route="v"}"#).await;
            fetched += edge.metric(r#"dime_cache_origin_bytes_total{route="v"}"#).await;
        }
        *last.lock().unwrap() = (served, fetched);
        ((served, fetched) == want).then_some(())
    })
    .await;
}

/// A hung origin behind the fleet (it answers after 3 s; the route's read timeout is 1 s): the owner gives up on
/// it first (a member is waited on for the read timeout plus a margin) and says its origin failed, and the asking
/// edge then asks the origin once itself, never another member: at most two origin requests per miss, and the
/// viewer gets a 504 (a gateway timeout), never a 502 of the tier's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_origin_costs_at_most_two_origin_requests_per_miss_and_never_a_502() {
    let origin = Origin::start("o").await;
    let routes = format!(
        "version: 1\nhttp:\n  routes:\n    - {{ name: v, match: [{{ hosts: [video.test] }}], upstream: o, cache: {{}} }}\n  upstreams:\n    o: {{ servers: [{{ url: \"{}\" }}], read_timeout: 1s }}\n",
        origin.url()
    );
    let fleet = fleet_with(&routes).await;
    let mut per_miss = Vec::new();
    for i in 0..2 {
        let path = format!("/vod/hung-{i}/seg.ts");
        for edge in &fleet.edges {
            let before = origin.hits_for(&path);
            let r = edge.get("video.test", ask(&path).delay(Duration::from_secs(3)).cache_control("max-age=60")).await;
            assert_eq!(r.status, 504, "{path}: {}", r.body);
            per_miss.push(origin.hits_for(&path) - before);
        }
    }
    assert!(per_miss.iter().all(|n| (1..=2).contains(n)), "origin requests per miss: {per_miss:?}");
    assert!(per_miss.contains(&2), "the owners were asked and said so: {per_miss:?}");
    let mut origin_failed = 0.0;
    for edge in &fleet.edges {
        origin_failed += edge.metric(r#"dime_peer_requests_total{direction="sent",result="origin_failed"}"#).await;
    }
    assert!(origin_failed >= 1.0, "the askers counted the owners' origin failures");
    // An origin that answers within the timeout: one origin request for the whole fleet, as ever.
    let path = "/vod/slow/seg.ts";
    for edge in &fleet.edges {
        let r = edge.get("video.test", ask(path).delay(Duration::from_millis(300)).cache_control("max-age=60")).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(origin.hits_for(path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_opts_out_of_the_tier_or_names_its_shield() {
    let origin = Origin::start("o").await;
    let routes = indoc::formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: islands, match: [{{ hosts: [islands.test] }}], upstream: o, cache: {{}}, tier: none }}
                - {{ name: shielded, match: [{{ hosts: [far.test] }}], upstream: o, cache: {{}}, tier: {{ shield: [a] }} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let fleet = fleet_with(&routes).await;
    for i in 0..6 {
        for (host, path) in [("islands.test", format!("/own/{i}.ts")), ("far.test", format!("/far/{i}.ts"))] {
            for edge in &fleet.edges {
                let r = edge.get(host, ask(&path).size(1000).cache_control("max-age=60")).await;
                assert_eq!(r.status, 200);
            }
        }
        assert_eq!(origin.hits_for(&format!("/own/{i}.ts")), 3, "tier: none: each edge fetches for itself");
        assert_eq!(origin.hits_for(&format!("/far/{i}.ts")), 1, "the shield fetches once for the fleet");
    }
    // Only the shield asked the origin for the shielded route; b and c asked the shield.
    let sent = |e: usize| fleet.edges[e].metric(r#"dime_peer_requests_total{direction="sent",result="ok"}"#);
    assert_eq!(sent(0).await, 0.0);
    assert_eq!(sent(1).await, 6.0);
    assert_eq!(sent(2).await, 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_every_edge_wait_on_one_origin_fetch() {
    let origin = Origin::start("o").await;
    let fleet = Arc::new(fleet(&origin).await);
    let target = ask("/hls/herd.ts").size(100_000).delay(Duration::from_millis(300)).cache_control("no-cache");
    let mut viewers = Vec::new();
    for i in 0..45 {
        let (fleet, target) = (fleet.clone(), target.clone());
        viewers.push(tokio::spawn(async move { fleet.edges[i % 3].get("video.test", target).await }));
    }
    for v in viewers {
        let r = v.await.unwrap();
        assert_eq!((r.status, r.bytes.len()), (200, 100_000));
    }
    assert_eq!(origin.hits_for("/hls/herd.ts"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_goes_away_costs_the_viewers_nothing() {
    let origin = Origin::start("o").await;
    let mut fleet = fleet(&origin).await;
    fleet.edges[2].stop();
    for i in 0..30 {
        // One directory each, so that the stopped edge owns some of them.
        let path = format!("/vod/after-{i}/seg.ts");
        for edge in &fleet.edges[..2] {
            let r = edge.get("video.test", ask(&path).size(1000).cache_control("max-age=60")).await;
            assert_eq!(r.status, 200, "{path} through a fleet with a stopped member");
        }
        // A key the stopped edge owned is fetched by the next member or from the origin: still once, or twice at
        // most (each remaining edge on its own), never an error.
        assert!((1..=2).contains(&origin.hits_for(&path)), "{path}: {}", origin.hits_for(&path));
    }
    let failed = fleet.edges[0].metric(r#"dime_peer_requests_total{direction="sent",result="connect_failed"}"#).await
        + fleet.edges[1].metric(r#"dime_peer_requests_total{direction="sent",result="connect_failed"}"#).await;
    assert!(failed >= 1.0, "the stopped member was tried and counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_refuses_costs_the_viewers_nothing() {
    // Edge c was given another peer token: it refuses a and b, and they refuse it; viewers never see it.
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let (good, other) = (dir.path().join("good"), dir.path().join("other"));
    std::fs::write(&good, format!("{PEER_TOKEN}\n")).unwrap();
    std::fs::write(&other, "another-peer-token-0123456789\n").unwrap();
    let peers: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let list = format!("a=http://{},b=http://{},c=http://{}", peers[0], peers[1], peers[2]);
    let routes = cached_route("v", "video.test", &origin.url(), "{}");
    let mut edges = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let (listen, token) = (peers[i].to_string(), if i == 2 { &other } else { &good });
        let token = token.to_str().unwrap();
        let args = ["--edge-name", name, "--peer-listen", &listen, "--peers", &list, "--peer-token-file", token];
        edges.push(Edge::start(&routes, &args).await);
    }
    for i in 0..20 {
        let path = format!("/vod/refused-{i}/seg.ts");
        for edge in &edges {
            let r = edge.get("video.test", ask(&path).size(1000).cache_control("max-age=60")).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
        }
    }
    let refused = r#"dime_peer_requests_total{direction="sent",result="refused"}"#;
    let (a, c) = (edges[0].metric(refused).await, edges[2].metric(refused).await);
    assert!(a >= 1.0 && c >= 1.0, "refusals were met and counted: a {a}, c {c}");
}

/// What a member that is not a working Dime edge answers, for [`answers_that_are_not_the_owners_are_never_used`].
#[derive(Debug, Clone, Copy)]
enum Bad {
    /// Bytes that are not HTTP.
    Garbage,
    /// An error of whatever listens there, without the owner's mark.
    ErrorUnmarked,
    /// A whole answer, but not from the edge listed at that address (no mark).
    OkUnmarked,
    /// The owner's answer, broken off after its header and part of its body.
    Truncated,
}

/// A member at `addr` that answers every request the `bad` way; counts the connections it was sent.
fn fake_member(bad: Bad) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer: Vec<u8> = match bad {
                    Bad::Garbage => b"\x00\x01 this is not HTTP \xff\r\n\r\n".to_vec(),
                    Bad::ErrorUnmarked => {
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops"
                            .to_vec()
                    }
                    Bad::OkUnmarked => [
                        &b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\ncache-control: max-age=60\r\n"[..],
                        b"connection: close\r\n\r\n",
                        &[b'F'; 5000],
                    ]
                    .concat(),
                    Bad::Truncated => [
                        &b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\ncache-control: max-age=60\r\n"[..],
                        b"x-dime-owner: bad\r\n\r\n",
                        &[b'F'; 1000],
                    ]
                    .concat(),
                };
                let _ = conn.write_all(&answer).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (addr, asked)
}

/// Edge `a` in a fleet of itself and the member `bad` at `fake`.
async fn shielded_edge(routes: &str, fake: SocketAddr, tokens: &std::path::Path) -> Edge {
    let me = free_addr().to_string();
    let list = format!("a=http://{me},bad=http://{fake}");
    let args =
        ["--edge-name", "a", "--peer-listen", &me, "--peers", &list, "--peer-token-file", tokens.to_str().unwrap()];
    Edge::start(routes, &args).await
}

/// An origin that answers with the edge's own marks (`x-dime-owner`, `x-dime-peer-refused`, `x-dime-edge`)
/// cannot make an owner's answer look like a refusal or like another edge's: the marks are removed before the
/// cache stores the response, so every edge takes its owner's answer (one origin fetch per object for the fleet),
/// no member is charged, and no viewer sees them, on a miss or a hit. A viewer's own `x-dime-*` request headers
/// never reach the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_own_headers_are_never_taken_from_an_origin_or_a_viewer() {
    let origin = Origin::start("o").await;
    let fleet = fleet(&origin).await;
    let paths: Vec<String> = (0..12).map(|i| format!("/marks/{i}/seg.ts")).collect();
    for round in ["miss", "hit"] {
        for path in &paths {
            for edge in &fleet.edges {
                let target = ask(path).size(1000).cache_control("max-age=60").internal_marks();
                let r = edge.get("video.test", target).await;
                assert_eq!((r.status, r.bytes.len()), (200, 1000), "{round} {path}");
                let marks: Vec<&str> =
                    r.headers.keys().map(|k| k.as_str()).filter(|k| k.starts_with("x-dime-")).collect();
                assert!(marks.is_empty(), "{round} {path}: a viewer got {marks:?}");
            }
        }
    }
    for path in &paths {
        assert_eq!(origin.hits_for(path), 1, "{path}: the owner's answers were taken, not refused");
    }
    for edge in &fleet.edges {
        for result in ["refused", "error"] {
            let sample = format!(r#"dime_peer_requests_total{{direction="sent",result="{result}"}}"#);
            assert_eq!(edge.metric(&sample).await, 0.0, "{sample}");
        }
    }
    let posing = [("x-dime-peer", "b"), ("x-dime-peer-token", PEER_TOKEN), ("X-Dime-Owner", "c"), ("x-dime-edge", "a")];
    let r = fleet.edges[0].request(reqwest::Method::GET, "video.test", ask("/posing/x.html"), &posing).await;
    let seen = r.headers.get("x-seen-headers").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!seen.is_empty() && !seen.contains("x-dime-"), "the origin saw {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_are_not_the_owners_are_never_used() {
    // Edge `a` shields its route behind member `bad`, a listener in this test that is not a working Dime edge.
    let origin = Origin::start("o").await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{PEER_TOKEN}\n")).unwrap();
    let routes = indoc::formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: v, match: [{{ hosts: [video.test] }}], upstream: o, cache: {{}}, tier: {{ shield: [bad] }} }}
              upstreams:
                o: {{ servers: [{{ url: "{}" }}] }}
            "#,
        origin.url()
    );
    let sent = |result: &str| format!(r#"dime_peer_requests_total{{direction="sent",result="{result}"}}"#);
    for bad in [Bad::Garbage, Bad::ErrorUnmarked, Bad::OkUnmarked] {
        let (fake, asked) = fake_member(bad);
        let edge = shielded_edge(&routes, fake, &tokens).await;
        let path = format!("/vod/{bad:?}/seg.ts");
        // The viewer gets the origin's object; the second viewer gets it from the cache: what was stored is the
        // origin's, not the member's.
        for viewer in 0..2 {
            let r = edge.get("video.test", ask(&path).size(5000).cache_control("max-age=60")).await;
            assert_eq!(r.status, 200, "{bad:?}, viewer {viewer}: {}", r.body);
            assert_eq!(r.bytes, support::pattern_body(5000), "{bad:?}, viewer {viewer}: not the origin's bytes");
            assert!(r.headers.get("x-dime-owner").is_none(), "{bad:?}: the mark is the fleet's, not the viewer's");
        }
        assert_eq!(origin.hits_for(&path), 1, "{bad:?}");
        assert!(asked.load(std::sync::atomic::Ordering::SeqCst) >= 1, "{bad:?}: the member was asked");
        assert_eq!(edge.metric(&sent("error")).await, 1.0, "{bad:?}: counted as the member's failure");
        assert_eq!(edge.metric(&sent("ok")).await, 0.0, "{bad:?}");
    }

    // An answer broken off after its header was accepted, before anything reached the viewer: the fill it began
    // is given up, the viewer gets the origin's object, nothing of the broken answer is stored, and the member
    // is skipped at once.
    let (fake, asked) = fake_member(Bad::Truncated);
    let edge = shielded_edge(&routes, fake, &tokens).await;
    let segment = || ask("/vod/t/seg.ts").size(5000).cache_control("max-age=60");
    let r = edge.get("video.test", segment()).await;
    assert_eq!((r.status, &r.bytes), (200, &support::pattern_body(5000)), "the viewer of the broken answer");
    assert_eq!((asked.load(std::sync::atomic::Ordering::SeqCst), origin.hits_for("/vod/t/seg.ts")), (1, 1));
    // That answer was not stored either (its fill was given up): the next viewer's fetch is stored.
    for hits in [2, 2] {
        let r = edge.get("video.test", segment()).await;
        assert_eq!((r.status, &r.bytes), (200, &support::pattern_body(5000)));
        assert_eq!(origin.hits_for("/vod/t/seg.ts"), hits, "{}", r.header("cache-status"));
    }
    let r = edge.get("video.test", ask("/vod/t/next.ts").size(5000).cache_control("max-age=60")).await;
    assert_eq!((r.status, &r.bytes), (200, &support::pattern_body(5000)), "the stream's next segment");
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "the member that broke an answer is skipped");
    assert_eq!(edge.metric(&sent("error")).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_listener_serves_only_authenticated_peers_and_routed_hosts() {
    let origin = Origin::start("o").await;
    let fleet = fleet(&origin).await;
    let client = reqwest::Client::new();
    let peer = |token: Option<&str>, host: &str| {
        let mut req = client.get(format!("http://{}/hls/x.ts", fleet.peers[0])).header("host", host);
        if let Some(t) = token {
            req = req.header("x-dime-peer-token", t).header("x-dime-peer", "b");
        }
        req.send()
    };
    assert_eq!(peer(None, "video.test").await.unwrap().status(), 401);
    let wrong = peer(Some("not-the-peer-token-0123"), "video.test").await.unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(wrong.headers()["x-dime-peer-refused"], "403", "marked as the owner's refusal, not the origin's");
    assert_eq!(peer(Some(PEER_TOKEN), "elsewhere.test").await.unwrap().status(), 404);
    let ok = peer(Some(PEER_TOKEN), "video.test").await.unwrap();
    assert_eq!(ok.status(), 200);
    // The origin never sees the fleet's name or token.
    let seen = ok.headers()["x-seen-headers"].to_str().unwrap().to_owned();
    assert!(seen.contains("host") && !seen.contains("x-dime-peer"), "the origin was sent: {seen}");
    assert_eq!(origin.hits_for("/hls/x.ts"), 1);
    let refused = fleet.edges[0].metric(r#"dime_peer_requests_total{direction="served",result="unauthorized"}"#).await;
    assert_eq!(refused, 1.0);
}

#[test]
fn bad_member_lists_are_refused_at_start_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, cached_route("v", "video.test", "http://127.0.0.1:9", "{}")).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{PEER_TOKEN}\n")).unwrap();
    let start = |extra: &[&str]| {
        let out = Command::new(support::workspace_binary("dime-edge"))
            .args(["run", "--routes", routes.to_str().unwrap(), "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--peer-token-file", tokens.to_str().unwrap(), "--edge-name", "a"])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let listen = ["--peer-listen", "127.0.0.1:18444"];
    let cases: [(&[&str], &str); 5] = [
        (&["--peers", "a=http://127.0.0.1:18444,a=http://127.0.0.1:18445"], "edge `a` is listed twice"),
        (&["--peers", "b=http://127.0.0.1:18445"], "this edge, `a`, is not in the list"),
        (&["--peers", "a=http://127.0.0.1:18444,b=https://peer-b:8444"], "a peer URL is http://IP:PORT"),
        (&["--peers", "a=http://127.0.0.1:18999"], "advertises http://127.0.0.1:18444"),
        (&["--peers", "a=http://127.0.0.1:18444,b=http://127.0.0.1:18444"], "the same address"),
    ];
    for (extra, want) in cases {
        let (code, stderr) = start(&[&listen[..], extra].concat());
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("peers") && stderr.contains(want), "{extra:?}: {stderr}");
    }
    let (code, stderr) = start(&["--peers", "a=http://127.0.0.1:18444"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--peer-listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_answer_their_peers_from_disk_after_a_restart() {
    let origin = Origin::start("o").await;
    let routes = cached_route("v", "video.test", &origin.url(), "{}");
    let caches = tempfile::tempdir().unwrap();
    let disk = |i: usize, run: &str| {
        let dir = caches.path().join(format!("{}-{run}", NAMES[i]));
        ["--cache-dir", dir.to_str().unwrap(), "--cache-disk-size", "64MiB"].map(str::to_owned).to_vec()
    };
    let mut fleet = fleet_extra(&routes, |i| disk(i, "1")).await;
    let paths: Vec<String> = (0..12)
        .map(|i| ask(&format!("/vod/disk-{i}/seg.ts")).size(30_000).cache_control("max-age=600").to_string())
        .collect();
    for path in &paths {
        for edge in &fleet.edges {
            assert_eq!(edge.get("video.test", path).await.bytes.len(), 30_000, "{path}");
        }
    }
    assert_eq!(origin.hits(), paths.len(), "once per object for the fleet");
    // Every edge's copies are on its disk (written off the request path).
    for edge in &fleet.edges {
        let log = || edge.log_text();
        eventually(Duration::from_secs(10), Duration::from_millis(50), "copies on disk", log, || async {
            let memory = edge.metric("dime_cache_objects").await;
            (memory > 0.0 && edge.metric("dime_cache_disk_objects").await == memory).then_some(())
        })
        .await;
    }

    // All three killed; `b` and `c` come back with their disks, `a` with an empty one.
    for edge in &mut fleet.edges {
        edge.stop();
    }
    fleet.edges.clear();
    for i in 0..NAMES.len() {
        let edge = fleet.start_member(i, &routes, &disk(i, if i == 0 { "2" } else { "1" })).await;
        edge.log_with("disk cache index loaded").await;
        fleet.edges.push(edge);
    }
    let before = origin.hits();
    for path in &paths {
        let r = fleet.edges[0].get("video.test", path).await;
        assert_eq!((r.status, r.bytes.len()), (200, 30_000), "{path}");
    }
    // What `a` owns it fetches again (its disk is new); the rest its owners answer from their disks.
    let asked = fleet.edges[0].metric(r#"dime_peer_requests_total{direction="sent",result="ok"}"#).await as usize;
    assert!(asked >= 1, "a asked its peers");
    let from_disk = fleet.edges[1].metric("dime_cache_disk_hits_total").await
        + fleet.edges[2].metric("dime_cache_disk_hits_total").await;
    assert_eq!(from_disk as usize, asked, "each peer request answered from the owner's disk");
    assert_eq!(origin.hits() - before, paths.len() - asked, "only a's own objects went to the origin");
}

/// An unsafe request invalidates the edge's copy, and the edge's next miss on that URL is not refilled from
/// the owner's copy (which the invalidation did not reach): it is fetched from the origin, after the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_object_is_not_refilled_from_the_owners_old_copy() {
    let origin = Origin::start("o").await;
    let fleet = fleet(&origin).await;
    let a = ask("/inv/item.html").cache_control("max-age=600");
    for edge in &fleet.edges {
        assert_eq!(edge.get("video.test", &a).await.status, 200);
    }
    for edge in &fleet.edges {
        let posted = edge.request(reqwest::Method::POST, "video.test", &a, &[]).await;
        assert_eq!(posted.status, 200);
        let r = edge.get("video.test", &a).await;
        let fetch: usize = r.header("x-origin-fetch").parse().unwrap();
        assert_eq!(
            fetch,
            origin.hits_for("/inv/item.html"),
            "the answer is the origin's latest: {}",
            r.header("cache-status")
        );
        assert!(!r.header("cache-status").contains("hit"), "{}", r.header("cache-status"));
    }
}
