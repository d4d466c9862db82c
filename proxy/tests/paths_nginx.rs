//! The edge in front of a real nginx, which reads a request's path itself: it decodes `%2e%2e` and `%2F`,
//! resolves `..` and merges `//` before it opens a file. An edge that routed, checked tokens, keyed its cache
//! or chose an owner on the path as written, and sent it on as written, would hand nginx paths it resolves into
//! the signed `/premium/` or another stream's `/live/s2/`. Here every spelling of a climb (raw, encoded,
//! double-encoded, mixed case, backslash, `;` parameters, repeated slashes, encoded slash) is tried against
//! routing, a signed prefix, a per-stream token, a route that allows encoded slashes, purge by prefix and the
//! fleet's ring: none reaches bytes it should not, and legitimate paths with escapes still work.
//! One nginx for the whole file (one test, in three steps, each with its own edge); requests are written on a
//! raw socket, as an attacker would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use indoc::formatdoc;

use support::nginx::StaticNginx;
use support::{free_addr, raw_get, Edge};

const KEYS: &str = "k1 0123456789abcdef0123456789abcdef-edge-secret\n";
const TOKEN: &str = "test-admin-token-0123456789";
const PEER_TOKEN: &str = "fleet-peer-token-0123456789";

/// What nginx holds. The bytes no climb may reach carry `SECRET`.
const FILES: [(&str, &str); 10] = [
    ("public/a.ts", "PUBLIC-A"),
    ("public/b.ts", "PUBLIC-B"),
    ("public/caf~e.txt", "PUBLIC-TILDE"),
    ("premium/x.ts", "PREMIUM-SECRET"),
    ("live/s1/index.m3u8", "S1-PLAYLIST"),
    ("live/s1/seg.ts", "S1-SEGMENT"),
    ("live/s2/index.m3u8", "S2-SECRET-PLAYLIST"),
    ("live/s2/seg.ts", "S2-SECRET-SEGMENT"),
    ("shared/ok.txt", "SHARED"),
    ("index.html", "ROOT"),
];

/// An open route, a signed one, signed streams (a token per stream prefix) and an open route that allows
/// encoded slashes, all caching, all from `origin`.
fn routes(origin: &str) -> String {
    formatdoc!(
        r#"
            version: 1
            http:
              routes:
                - {{ name: open, match: [{{ hosts: [v.test], paths: [{{ prefix: /public/ }}] }}], upstream: o, cache: {{}} }}
                - {{ name: premium, match: [{{ hosts: [v.test], paths: [{{ prefix: /premium/ }}] }}], upstream: o, cache: {{}}, signed_urls: {{ keys: [k1] }} }}
                - {{ name: live, match: [{{ hosts: [v.test], paths: [{{ prefix: /live/ }}] }}], upstream: o, cache: {{}}, signed_urls: {{ keys: [k1] }} }}
                - {{ name: shared, match: [{{ hosts: [v.test], paths: [{{ prefix: /shared/ }}] }}], upstream: o, cache: {{}}, allow_encoded_slash: true }}
              upstreams:
                o: {{ servers: [{{ url: "{origin}" }}] }}
            "#
    )
}

/// The query of a token for `prefix` minted by `dime-edge sign` (10 minutes).
fn token_query(keys: &std::path::Path, prefix: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dime-edge"))
        .arg("sign")
        .arg("--keys")
        .arg(keys)
        .args(["--key-id", "k1", "--prefix", prefix, "--ttl", "10m"])
        .arg(format!("http://v.test{prefix}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().split_once('?').unwrap().1.to_owned()
}

/// The keys file, the admin and peer token files.
fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys"), KEYS).unwrap();
    std::fs::write(dir.path().join("admin-tokens"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("peer-tokens"), format!("{PEER_TOKEN}\n")).unwrap();
    dir
}

fn arg(dir: &tempfile::TempDir, file: &str) -> String {
    dir.path().join(file).to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_origin_that_resolves_paths_itself_no_spelling_reaches_what_it_should_not() {
    let nginx = StaticNginx::start(&FILES);
    let dir = files();
    no_spelling_reaches_protected_bytes(&nginx, &dir).await;
    a_spelled_purge_prefix_purges_what_it_reads_as_and_nothing_else(&nginx, &dir).await;
    spellings_of_one_path_have_one_owner_in_the_fleet(&nginx, &dir).await;
}

/// How many times nginx was asked for `path` (as it read it) so far.
fn fetches(nginx: &StaticNginx, path: &str) -> usize {
    nginx.served().iter().filter(|(p, _)| p == path).count()
}

/// Nothing an attacker can spell reaches `SECRET` bytes through the edge, nor makes nginx serve them; what
/// the legitimate spellings name is served.
async fn no_spelling_reaches_protected_bytes(nginx: &StaticNginx, dir: &tempfile::TempDir) {
    let edge = Edge::start(&routes(&nginx.url()), &["--signing-keys", &arg(dir, "keys")]).await;
    let keys = dir.path().join("keys");
    let s1 = token_query(&keys, "/live/s1/");
    let premium = token_query(&keys, "/premium/");

    // The protected bytes are there to be had with the right token: the refusals below are the edge's doing.
    for (target, body) in
        [(format!("/premium/x.ts?{premium}"), "PREMIUM-SECRET"), (format!("/live/s1/index.m3u8?{s1}"), "S1-PLAYLIST")]
    {
        assert_eq!(raw_get(edge.http, "v.test", &target).await, (200, body.to_owned()), "{target}");
    }
    let before = nginx.served().len();

    // (spelling, the status it gets, why). 403: read as a signed path the token (if any) does not cover.
    // 400: refused as written. 404: read as a path nginx does not have, or no route.
    let climbs: Vec<(String, u16)> = [
        // From the open route into the signed one, no token.
        ("/public/../premium/x.ts", 403),
        ("/public/./../premium/x.ts", 403),
        ("/public/a/../../premium/x.ts", 403),
        ("/public/%2e%2e/premium/x.ts", 403),
        ("/public/%2E%2E/premium/x.ts", 403),
        ("/public/%2e%2E/premium/x.ts", 403),
        ("/public/.%2e/premium/x.ts", 403),
        ("/public/%2E./premium/x.ts", 403),
        ("/public/./%2e%2e/./premium/./x.ts", 403),
        ("/public/sub/%2e%2e/%2e%2e/premium/x.ts", 403),
        ("/public/%2e%2e/%70remium/%78.ts", 403),
        ("/PUBLIC/../premium/x.ts", 403),
        ("/public/..//premium/x.ts", 403),
        ("/public/%2e%2e//premium/x.ts", 403),
        ("//premium/x.ts", 403),
        ("/./premium/x.ts", 403),
        ("/../premium/x.ts", 403),
        ("/public/../premium/x.ts?dime_sig=forged&dime_exp=9999999999", 403),
        ("/public/../live/s2/index.m3u8", 403),
        // Encoded and raw slashes and backslashes, `;` parameters, NUL: refused as written.
        ("/public/..%2fpremium/x.ts", 400),
        ("/public/..%2Fpremium/x.ts", 400),
        ("/public/%2e%2e%2fpremium/x.ts", 400),
        ("/public/..%2f..%2fpremium/x.ts", 400),
        ("/public/..%5cpremium/x.ts", 400),
        ("/public/..%5Cpremium/x.ts", 400),
        ("/public/..\\premium/x.ts", 400),
        ("/public\\..\\premium/x.ts", 400),
        ("/public/..;/premium/x.ts", 400),
        ("/public/..;x=1/premium/x.ts", 400),
        ("/public/.;/../premium/x.ts", 400),
        ("/public/..%3b/premium/x.ts", 400),
        ("/public/..%3B/premium/x.ts", 400),
        ("/public/..%00/premium/x.ts", 400),
        ("/public/%00/../premium/x.ts", 400),
        // Read as open paths nginx does not have: `..` after `//` takes out the empty segment (nginx would
        // merge first and climb); double-encoded and overlong dots are text, decoded once by nginx.
        ("/public//../premium/x.ts", 404),
        ("/public/%252e%252e/premium/x.ts", 404),
        ("/public/%25%32%65%25%32%65/premium/x.ts", 404),
        ("/public/..%252fpremium/x.ts", 404),
        ("/public/%c0%ae%c0%ae/premium/x.ts", 404),
        ("/public/../PREMIUM/x.ts", 404),
        // The route that allows encoded slashes (nginx decodes them): never next to a dot segment.
        ("/shared/..%2fpremium/x.ts", 400),
        ("/shared/%2e%2e%2Fpremium/x.ts", 400),
        ("/shared/a%2f..%2f..%2fpremium/x.ts", 400),
        ("/shared/..%5cpremium/x.ts", 400),
        ("/shared/.%2f..%2fpremium/x.ts", 400),
        ("/shared/x%2F..%2F..%2Flive%2Fs2%2Fseg.ts", 400),
        ("/shared/%2Fpremium%2Fx.ts", 404),
    ]
    .into_iter()
    .map(|(t, s)| (t.to_owned(), s))
    // With stream 1's token, into stream 2.
    .chain(
        [
            ("/live/s1/../s2/index.m3u8", 403),
            ("/live/s1/%2e%2e/s2/index.m3u8", 403),
            ("/live/s1/%2E%2E/s2/seg.ts", 403),
            ("/live/s1/./../s2/seg.ts", 403),
            ("/live/S1/../s2/index.m3u8", 403),
            ("/live/s1/..//s2/index.m3u8", 403),
            ("/live/s2/index.m3u8", 403),
            ("/live/s1/..%2fs2/index.m3u8", 400),
            ("/live/s1/..%5Cs2/index.m3u8", 400),
            ("/live/s1%2f..%2fs2/index.m3u8", 400),
            ("/live/s1/..\\s2/index.m3u8", 400),
            ("/live/s1/..;/s2/index.m3u8", 400),
            ("/live/s1//../s2/index.m3u8", 404),
            ("/live/s1/%252e%252e/s2/index.m3u8", 404),
        ]
        .into_iter()
        .map(|(t, s)| (format!("{t}?{s1}"), s)),
    )
    .collect();
    assert!(climbs.len() >= 40, "{} spellings", climbs.len());
    let mut got = Vec::new();
    for (target, want) in &climbs {
        let (status, body) = raw_get(edge.http, "v.test", target).await;
        assert!(!body.contains("SECRET"), "{target}: protected bytes reached the viewer ({status}): {body}");
        got.push(format!("{status} {target}"));
        assert_eq!(status, *want, "{target}: {body}");
    }
    println!("{}", got.join("\n"));
    // What nginx was asked for, as it read it: only paths it does not have (the 404s above), none protected.
    let asked = &nginx.served()[before..];
    let protected = |path: &str| path.starts_with("/premium/") || path.starts_with("/live/s2/");
    assert!(asked.iter().all(|(path, status)| *status == 404 && !protected(path)), "nginx was asked for {asked:?}");

    // Legitimate paths with escapes still work, as nginx reads them.
    for (target, body) in [
        ("/public/a.ts".to_owned(), "PUBLIC-A"),
        ("/public/%61.ts".to_owned(), "PUBLIC-A"),
        ("/%70ublic/b.ts".to_owned(), "PUBLIC-B"),
        ("/public/x/../b.ts".to_owned(), "PUBLIC-B"),
        ("/public/./b.ts".to_owned(), "PUBLIC-B"),
        ("/public//b.ts".to_owned(), "PUBLIC-B"),
        ("/public/caf%7Ee.txt".to_owned(), "PUBLIC-TILDE"),
        ("/public/caf%7ee.txt".to_owned(), "PUBLIC-TILDE"),
        ("/shared/ok.txt".to_owned(), "SHARED"),
        (format!("/live/s1/%69ndex.m3u8?{s1}"), "S1-PLAYLIST"),
        (format!("/live/s2/../s1/seg.ts?{s1}"), "S1-SEGMENT"),
        (format!("/live/s1/./seg.ts?{s1}"), "S1-SEGMENT"),
    ] {
        assert_eq!(raw_get(edge.http, "v.test", &target).await, (200, body.to_owned()), "{target}");
    }
}

/// A purge by a spelled prefix purges what the prefix reads as, on an edge in front of nginx.
async fn a_spelled_purge_prefix_purges_what_it_reads_as_and_nothing_else(nginx: &StaticNginx, dir: &tempfile::TempDir) {
    let args = ["--signing-keys", &arg(dir, "keys"), "--admin-token-file", &arg(dir, "admin-tokens")];
    let edge = Edge::start(&routes(&nginx.url()), &args).await;
    let keys = dir.path().join("keys");
    let (premium, s1) = (token_query(&keys, "/premium/"), token_query(&keys, "/live/s1/"));
    let objects = [
        "/public/a.ts".to_owned(),
        "/public/b.ts".to_owned(),
        format!("/premium/x.ts?{premium}"),
        format!("/live/s1/seg.ts?{s1}"),
    ];
    for target in &objects {
        assert_eq!(raw_get(edge.http, "v.test", target).await.0, 200, "{target}");
    }
    let cached = |target: String| {
        let edge = &edge;
        async move { edge.get("v.test", &target).await.header("cache-status").contains("hit") }
    };
    for target in &objects {
        assert!(cached(target.clone()).await, "{target} is cached");
    }
    let purge = |host: &str, prefix: &str| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("host", host)
            .append_pair("prefix", prefix)
            .finish();
        edge.client
            .post(format!("http://{}/purge?{query}", edge.admin))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
    };
    // `/public/x/../` is `/public/`: both open objects go, the signed ones stay.
    let r = purge("v.test", "/public/x/../").await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":2,"soft":false}"#);
    assert!(!cached(objects[0].clone()).await && !cached(objects[1].clone()).await, "/public/ was purged");
    assert!(cached(objects[2].clone()).await && cached(objects[3].clone()).await, "the signed ones were not named");
    // `/public/%2e%2e/premium/` is `/premium/`: not the stream.
    let r = purge("v.test", "/public/%2e%2e/premium/").await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"fills_abandoned":0,"purged":1,"soft":false}"#);
    assert!(cached(objects[3].clone()).await, "/live/s1/ was not named");
    let fetched = fetches(nginx, "/premium/x.ts");
    assert_eq!(raw_get(edge.http, "v.test", &objects[2]).await.0, 200);
    assert_eq!(fetches(nginx, "/premium/x.ts"), fetched + 1, "purged: fetched again");
    // A prefix that does not read purges nothing and says why.
    for (prefix, want) in [("/live/s1/..", "ends in the dot segment"), ("/live/..%2fs1/", "dot segment behind")] {
        let r = purge("v.test", prefix).await.unwrap();
        assert_eq!(r.status(), 400, "{prefix}");
        assert!(r.text().await.unwrap().contains(want), "{prefix}");
    }
    assert!(cached(objects[3].clone()).await, "a refused purge purged nothing");
}

/// In a fleet, the ring's owner of an object is chosen by its path as read (the ring key is the cache key, made
/// from the request's path once it is read): two edges asked for one object in different spellings ask the same
/// owner, and nginx is asked once.
async fn spellings_of_one_path_have_one_owner_in_the_fleet(nginx: &StaticNginx, dir: &tempfile::TempDir) {
    let routes = routes(&nginx.url());
    let peers = [free_addr(), free_addr()];
    let members = format!("a=http://{},b=http://{}", peers[0], peers[1]);
    let mut edges = Vec::new();
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let listen = peers[i].to_string();
        let (keys, tokens) = (arg(dir, "keys"), arg(dir, "peer-tokens"));
        let args = ["--edge-name", name, "--peer-listen", &listen, "--peers", &members];
        let args = [&args[..], &["--peer-token-file", &tokens, "--signing-keys", &keys]].concat();
        edges.push(Edge::start(&routes, &args).await);
    }
    // Each object's spellings, asked of one edge after the other. Several objects, so that spellings keyed
    // apart would have landed on different owners.
    let objects = [
        ("/public/a.ts", ["/public/a.ts", "/public/x/../a.ts", "/public/%61.ts", "//public/./a.ts"]),
        ("/public/b.ts", ["/public/%2e/b.ts", "/public/b.ts", "/%70ublic//b.ts", "/public/y/%2E%2e/b.ts"]),
    ];
    for (path, spellings) in objects {
        let before = fetches(nginx, path);
        for (i, target) in spellings.iter().enumerate() {
            let (status, _) = raw_get(edges[i % 2].http, "v.test", target).await;
            assert_eq!(status, 200, "{target}");
        }
        assert_eq!(fetches(nginx, path), before + 1, "{path}: four spellings on two edges, one owner, one fetch");
    }
    let mut peer_fetches = 0.0;
    for edge in &edges {
        peer_fetches += edge.metric(r#"dime_peer_requests_total{direction="sent",result="ok"}"#).await;
    }
    assert!(peer_fetches >= 2.0, "the edge that does not own an object asked its owner ({peer_fetches})");
}
