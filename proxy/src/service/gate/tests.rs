use super::*;

const TABLE: &str = r#"
version: 1
http:
  routes:
    - name: web
      match: [{ hosts: [web.test] }]
      upstream: o
    - name: secure
      match: [{ hosts: [secure.test] }]
      upstream: o
      https: { redirect: true }
    - name: signed
      match: [{ hosts: [video.test] }]
      upstream: o
      signed_urls: { keys: [k1] }
  upstreams:
    o: { servers: [{ url: "http://127.0.0.1:9" }] }
"#;

fn arrival<'a>(host: &'a str, path: &'a str, query: Option<&'a str>, tls: bool) -> Arrival<'a> {
    Arrival { host, path, query, tls, client: Some("127.0.0.1".parse().unwrap()), sender: Sender::Viewer }
}

/// The same request on the peer listener, from an edge whose token was `token`.
fn from_peer<'a>(token: PeerToken, host: &'a str, path: &'a str, query: Option<&'a str>) -> Arrival<'a> {
    Arrival { sender: Sender::Peer(token), ..arrival(host, path, query, false) }
}

/// An answer in words, with the route by name (the table orders routes by priority, not as written).
fn said(table: &RouteTable, admit: Admit) -> String {
    let name = |i: usize| table.routes()[i].name.clone();
    match admit {
        Admit::Route(i) => format!("route {}", name(i)),
        Admit::Challenge(answer) => format!("challenge {answer}"),
        Admit::NoTable => "503 no table".into(),
        Admit::NoRoute => "404 no route".into(),
        Admit::RedirectToHttps(i) => format!("308 {}", name(i)),
        Admit::Forbidden(i, reason) => format!("403 {} {}", name(i), reason.as_str()),
        Admit::PeerRefused(status) => format!("{status} peer refused"),
    }
}

#[test]
fn the_gate_decides_in_order() {
    let table = dime_routes::parse("gate.yaml", TABLE).unwrap();
    let keys = crate::signed::Keys::parse("keys", "k1 0123456789abcdef0123456789abcdef\n").unwrap();
    let now = 1_800_000_000;
    let token = crate::signed::token(&keys, "k1", "/hls/", now + 60, None).unwrap();
    let challenges = crate::acme::Challenges::default();
    challenges.insert("tok", "tok.thumbprint".into());
    let challenge = format!("{}tok", crate::acme::CHALLENGE_PREFIX);
    let unknown = format!("{}other", crate::acme::CHALLENGE_PREFIX);
    let cases: [(&str, Arrival<'_>, bool, &str); 17] = [
        ("plain route", arrival("web.test", "/", None, false), true, "route web"),
        ("no table yet", arrival("web.test", "/", None, false), false, "503 no table"),
        ("unknown host", arrival("other.test", "/", None, false), true, "404 no route"),
        ("https wanted", arrival("secure.test", "/a", Some("b"), false), true, "308 secure"),
        ("https given", arrival("secure.test", "/a", None, true), true, "route secure"),
        ("no token", arrival("video.test", "/hls/a.ts", None, false), true, "403 signed missing"),
        ("valid token", arrival("video.test", "/hls/a.ts", Some(&token), false), true, "route signed"),
        // ACME tokens come first: before the table, routing and redirects.
        ("acme, no table", arrival("x.test", &challenge, None, false), false, "challenge tok.thumbprint"),
        ("acme, https route", arrival("secure.test", &challenge, None, false), true, "challenge tok.thumbprint"),
        ("another edge's token", arrival("web.test", &unknown, None, false), true, "route web"),
        // The peer listener: only edges with a peer token, only hosts the table routes; the asking edge already
        // checked the viewer's signed URL, and peers speak plain HTTP to each other.
        ("peer without token", from_peer(PeerToken::Missing, "web.test", "/", None), true, "401 peer refused"),
        ("peer, wrong token", from_peer(PeerToken::Wrong, "web.test", "/", None), true, "403 peer refused"),
        ("peer, before acme", from_peer(PeerToken::Missing, "x.test", &challenge, None), false, "401 peer refused"),
        ("peer", from_peer(PeerToken::Accepted, "web.test", "/", None), true, "route web"),
        ("peer, unknown host", from_peer(PeerToken::Accepted, "other.test", "/", None), true, "404 no route"),
        ("peer, https route", from_peer(PeerToken::Accepted, "secure.test", "/a", None), true, "route secure"),
        ("peer, signed route", from_peer(PeerToken::Accepted, "video.test", "/hls/a.ts", None), true, "route signed"),
    ];
    for (name, arrival, with_table, want) in cases {
        let got = admit(&arrival, with_table.then_some(&table), &challenges, &keys, || now);
        assert_eq!(said(&table, got), want, "{name}");
    }
}

#[test]
fn the_clock_is_read_only_for_signed_routes() {
    let table = dime_routes::parse("gate.yaml", TABLE).unwrap();
    let keys = crate::signed::Keys::default();
    let challenges = crate::acme::Challenges::default();
    let unread = || -> u64 { panic!("the clock was read") };
    let got = admit(&arrival("web.test", "/", None, false), Some(&table), &challenges, &keys, unread);
    assert_eq!(said(&table, got), "route web");
}

#[test]
fn the_path_is_read_for_the_route_that_serves_it_and_the_query_kept() {
    let table = dime_routes::parse(
        "paths.yaml",
        r#"
version: 1
http:
  routes:
    - { name: files, match: [{ hosts: [v.test], paths: [{ prefix: /files/ }] }], upstream: o, allow_encoded_slash: true }
    - { name: web, match: [{ hosts: [v.test] }], upstream: o }
  upstreams:
    o: { servers: [{ url: "http://127.0.0.1:9" }] }
"#,
    )
    .unwrap();
    let read = |target: &str, table: Option<&RouteTable>| {
        let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        req.insert_header("host", "v.test").unwrap();
        normalize_path(&mut req, table).map(|()| req.uri.to_string()).map_err(|e| e.to_string())
    };
    assert_eq!(read("/files/x/../a%2fb?q=%2F..", Some(&table)).unwrap(), "/files/a%2Fb?q=%2F..");
    assert_eq!(read("/files/a/b", Some(&table)).unwrap(), "/files/a/b");
    assert!(read("/web/a%2fb", Some(&table)).unwrap_err().contains("encoded slash `%2f` at byte 6"));
    assert!(read("/files/a%2fb", None).unwrap_err().contains("encoded slash"), "no table: the strict reading");
    assert!(read("/files/..%2fweb", Some(&table)).unwrap_err().contains("dot segment behind an encoded slash"));
    assert_eq!(read("/web/%2e%2e/files/%7e", None).unwrap(), "/files/~");
}
