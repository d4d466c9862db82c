use super::*;

#[test]
fn dates_are_utc_civil_dates() {
    let cases = [
        (0, "1970-01-01T00:00:00"),
        (951_782_400, "2000-02-29T00:00:00"),
        (1_796_075_999, "2026-11-30T21:59:59"),
        (1_796_169_600, "2026-12-02T00:00:00"),
        (4_107_542_400, "2100-03-01T00:00:00"),
    ];
    for (unix, want) in cases {
        let mut s = String::new();
        date_time(&mut s, unix);
        assert_eq!(s, want, "{unix}");
    }
}

fn line<'a>(uri: &'a http::Uri, error: Option<&'a dyn std::fmt::Display>) -> Line<'a> {
    Line {
        client: Some("127.0.0.1".parse().unwrap()),
        method: "GET",
        host: "r.test",
        path: uri,
        status: 200,
        route: "r",
        upstream: "o",
        server: Some("127.0.0.1:8081".parse().unwrap()),
        bytes: 1024,
        duration: Duration::from_micros(2_436),
        error,
    }
}

#[test]
fn text_lines_look_like_the_other_log_lines() {
    let uri: http::Uri = "/hls/a.ts?x=1".parse().unwrap();
    let mut buf = String::new();
    text(&mut buf, "2026-12-01T23:09:57", 426_670, &line(&uri, None)).unwrap();
    assert_eq!(
        buf,
        "2026-12-01T23:09:57.426670Z  INFO dime::access: client=127.0.0.1 method=GET host=\"r.test\" path=/hls/a.ts?x=1 status=200 route=\"r\" upstream=\"o\" server=127.0.0.1:8081 bytes=1024 duration_ms=2.436 error=\n"
    );
}

#[test]
fn addresses_match_std_fmt() {
    for text in
        ["127.0.0.1", "0.0.0.0", "255.255.255.255", "10.20.3.40", "::1", "2001:db8::8a2e:370:7334", "::ffff:1.2.3.4"]
    {
        let addr: IpAddr = text.parse().unwrap();
        let mut s = String::new();
        ip(&mut s, addr);
        assert_eq!(s, addr.to_string());
    }
    for text in ["127.0.0.1:8081", "192.168.100.200:65535", "[::1]:80", "[fe80::1%3]:443", "[2001:db8::1]:1935"] {
        let addr: SocketAddr = text.parse().unwrap();
        let mut s = String::new();
        socket(&mut s, addr);
        assert_eq!(s, addr.to_string());
    }
}

#[test]
fn numbers_and_quoting_match_std_fmt() {
    for (n, width) in [(0u64, 1), (7, 3), (426_670, 6), (5, 6), (u64::MAX, 1), (1000, 3)] {
        let mut s = String::new();
        number(&mut s, n, width);
        assert_eq!(s, format!("{n:0width$}"));
    }
    for value in ["r.test", "a b", "evil\"host\n", "tab\there", "back\\slash", "ünïcode", ""] {
        let mut s = String::new();
        debug_quoted(&mut s, value);
        assert_eq!(s, format!("{value:?}"), "{value}");
    }
}

#[test]
fn json_lines_parse_and_escape_what_clients_send() {
    let uri: http::Uri = "/p".parse().unwrap();
    let error = "upstream said \"no\"";
    let mut l = line(&uri, Some(&error));
    l.host = "evil\"host\n";
    let mut buf = String::new();
    json(&mut buf, "2026-12-01T23:09:57", 5, &l).unwrap();
    let v: serde_json::Value = serde_json::from_str(buf.trim_end()).unwrap();
    assert_eq!(v["host"], "evil\"host\n");
    assert_eq!(v["error"], "upstream said \"no\"");
    assert_eq!(v["status"], 200);
    assert_eq!(v["duration_ms"], 2.436);
    assert_eq!(v["timestamp"], "2026-12-01T23:09:57.000005Z");
    assert_eq!(v["target"], "dime::access");
}
