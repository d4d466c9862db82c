#![allow(clippy::unwrap_used)]
use super::*;

fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug>(value: &T) -> String {
    let json = serde_json::to_string(value).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), value, "{json}");
    json
}

fn members() -> Vec<Member> {
    vec![
        Member { name: "edge-a".into(), url: "http://10.0.0.1:8444".into(), key: Some("a-key".into()) },
        Member { name: "edge-b".into(), url: "http://10.0.0.2:8444".into(), key: None },
    ]
}

#[test]
fn a_table_answer_carries_the_table_and_its_fleet_and_comes_apart_again() {
    let table = crate::parse(
        "t.yaml",
        "version: 1\nhttp:\n  routes:\n    - { name: web, match: [{ hosts: [a.test] }], upstream: web }\n  upstreams:\n    web: { servers: [{ url: \"http://10.0.0.1:80\" }] }\n",
    )
    .unwrap();
    let fleet = Fleet { members: members() };
    let body = String::from_utf8(encode_table(table.document(), Some(&fleet))).unwrap();
    let answer = decode_table(&body);
    assert_eq!(answer.fleet.as_ref(), Some(&fleet));
    let again = crate::parse("control", &answer.table).unwrap();
    assert_eq!(again.version(), table.version(), "the table survives the trip: {}", answer.table);

    // Without members: the table's own canonical JSON, byte for byte, and no fleet.
    let bare = String::from_utf8(encode_table(table.document(), None)).unwrap();
    assert_eq!(bare, table.to_json());
    assert_eq!(decode_table(&bare), TableAnswer { table: bare.clone(), fleet: None, fleet_error: None });
}

#[test]
fn a_fleet_that_does_not_read_is_left_out_and_said_and_the_table_stays() {
    for fleet in ["null", "3", "{\"members\": [{\"name\": \"a\"}]}"] {
        let body = format!("{{\"version\": 1, \"fleet\": {fleet}}}");
        let answer = decode_table(&body);
        assert_eq!((answer.table.as_str(), answer.fleet), ("{\"version\":1}", None), "{body}");
        assert!(answer.fleet_error.unwrap().starts_with("`fleet`: "), "{body}");
    }
}

#[test]
fn a_table_answer_that_is_not_json_goes_whole_to_the_parser() {
    for body in ["version: 1\n", "[1,2]", "", "{\"version\": 1, \"fleet\": "] {
        assert_eq!(decode_table(body), TableAnswer { table: body.into(), fleet: None, fleet_error: None }, "{body}");
    }
}

#[test]
fn the_etag_names_the_table_and_the_members() {
    let tag = Etag::of("3f2a00aa11bb22cc", &members());
    let text = tag.to_string();
    let (table, hash) = text.split_once('.').unwrap();
    assert_eq!((table, hash.len()), ("3f2a00aa11bb22cc", 8));
    assert_eq!(tag.header(), format!("\"{text}\""));
    assert_eq!(Etag::parse(&tag.header()), tag);
    assert_eq!(Etag::parse(&format!("W/{}", tag.header())), tag);
    assert_eq!(Etag::parse(&text).table_version(), "3f2a00aa11bb22cc");
    assert_ne!(Etag::of("3f2a00aa11bb22cc", &members()[..1]), tag, "another membership, another tag");
    let bare = Etag::of("3f2a00aa11bb22cc", &[]);
    assert_eq!((bare.to_string(), Etag::parse("\"3f2a00aa11bb22cc\"")), ("3f2a00aa11bb22cc".into(), bare));
}

#[test]
fn a_report_goes_through_headers_and_a_bad_name_is_refused_not_folded() {
    let report = Report {
        name: "edge-a".into(),
        peer_url: Some("http://10.0.0.1:8444".into()),
        applied: Some("v1".into()),
        refused: Some(Refusal { version: "v2.ab12cd34".into(), reason: "no key `k`".into() }),
        peer_key: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
    };
    assert_eq!(Report::from_headers(&report.to_headers()), Ok(Some(report.clone())));
    let named = Report::named("edge-b");
    assert_eq!(Report::from_headers(&named.to_headers()), Ok(Some(named)));
    assert_eq!(Report::from_headers(&HeaderMap::new()), Ok(None), "no name: not an edge");

    // Every spelling that an older control folded onto `edge-a`'s Lease is refused, and says why.
    let x64 = "x".repeat(64);
    for bad in ["EDGE-A", "Edge-a", "edge_a", "edge.a", "-edge", "edge-", "not a name/", "é", x64.as_str()] {
        let mut headers = report.to_headers();
        headers.insert(EDGE_HEADER, HeaderValue::from_bytes(bad.as_bytes()).unwrap());
        let err = Report::from_headers(&headers).unwrap_err();
        assert!(matches!(err, BadReport::Name(_)), "{bad}: {err}");
        let said = err.to_string();
        assert!(said.contains(EDGE_HEADER) && said.contains("DNS-1123"), "{bad}: {said}");
    }
    for bad_key in [
        "MCowBQYDK2VwAyEA",
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp",
        "11qYAYKxCrfVS+7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    ] {
        let mut headers = report.to_headers();
        headers.insert(PEER_KEY_HEADER, HeaderValue::from_str(bad_key).unwrap());
        let err = Report::from_headers(&headers).unwrap_err();
        assert_eq!(err, BadReport::PeerKey(bad_key.to_owned()));
        assert!(err.to_string().contains(PEER_KEY_HEADER), "{bad_key}: {err}");
    }
    for good in ["a", "edge-a", "e0", "0", "a-b-c", &"x".repeat(63)] {
        assert!(edge_name_ok(good), "{good}");
    }

    let long = Report {
        refused: Some(Refusal { version: "v".into(), reason: format!("line\n{}", "y".repeat(500)) }),
        ..Report::named("e")
    };
    let why = long.to_headers()[REFUSED_WHY_HEADER].to_str().unwrap().to_owned();
    assert_eq!((why.len(), why.starts_with("liney")), (REFUSED_WHY_MAX, true), "one line, bounded");
}

#[test]
fn the_fleet_view_round_trips_with_its_states_as_words() {
    let edge = |name: &str, state| EdgeView {
        name: name.into(),
        peer_url: Some("http://10.0.0.1:8444".into()),
        peer_key: None,
        applied_version: Some("v1".into()),
        refused_version: None,
        refused_reason: None,
        last_seen: 1_800_000_000,
        purge_log: Some("uid".into()),
        purge_applied: Some(4),
        purge_acked_at_ms: Some(1_800_000_000_123),
        state,
    };
    let answer = EdgesAnswer {
        served_version: Some("v1".into()),
        edges: EdgeState::ALL.iter().enumerate().map(|(i, s)| edge(&format!("e{i}"), *s)).collect(),
    };
    let json = round_trip(&answer);
    for s in EdgeState::ALL {
        assert!(json.contains(&format!("\"state\":\"{}\"", s.as_str())), "{json}");
    }
}

#[test]
fn the_feed_query_carries_the_cursor_and_the_wait() {
    let cursor = Cursor { log: "0c1d-uid".into(), applied: 42 };
    let q = FeedQuery::new(Some(&cursor), Duration::from_secs(30));
    let json = round_trip(&q);
    assert!(json.contains("\"wait\":\"30000ms\""), "{json}");
    assert_eq!(q.cursor(), Some(cursor));
    let first = FeedQuery::new(None, Duration::ZERO);
    assert_eq!((first.cursor(), round_trip(&first)), (None, "{\"wait\":\"0ms\"}".into()));
}

#[test]
fn queries_read_as_they_travel_in_a_url_and_as_older_edges_wrote_them() {
    let q = FeedQuery::new(Some(&Cursor { log: "0c1d uid".into(), applied: 42 }), Duration::from_secs(30));
    let text = serde_urlencoded::to_string(&q).unwrap();
    assert_eq!(text, "after=42&log=0c1d+uid&wait=30000ms");
    assert_eq!(serde_urlencoded::from_str::<FeedQuery>(&text).unwrap(), q);
    let older: FeedQuery = serde_urlencoded::from_str("wait=30s&after=42&log=0c1d-uid").unwrap();
    assert_eq!((older.after, older.wait.duration()), (Some(42), Duration::from_secs(30)));
    assert_eq!(serde_urlencoded::from_str::<FeedQuery>("").unwrap(), FeedQuery::default());
    assert!(serde_urlencoded::from_str::<FeedQuery>("after=x").is_err(), "`after` is a number");
    assert_eq!(serde_urlencoded::from_str::<WaitQuery>("wait=soon&other=1").unwrap(), WaitQuery::default());
}

#[test]
fn waits_are_bounded_and_lenient() {
    assert_eq!(Wait::parse("30s").duration(), Duration::from_secs(30));
    assert_eq!(Wait::parse("10m").duration(), MAX_WAIT);
    assert_eq!(Wait::parse("soon").duration(), Duration::ZERO);
    assert_eq!(WaitQuery::default().wait.duration(), Duration::ZERO);
    assert_eq!(serde_json::from_str::<WaitQuery>("{\"wait\":\"250ms\"}").unwrap().wait.duration().as_millis(), 250);
}

#[test]
fn a_feed_round_trips_and_says_where_the_edge_is_after_it() {
    let entry = |seq| Entry { seq, at_ms: 1000, purge: Purge { tags: vec!["t".into()], ..Default::default() } };
    let feed = Feed { log: "uid".into(), head: 7, gap: false, purges: vec![entry(6), entry(7)] };
    round_trip(&feed);
    assert_eq!(feed.cursor_after(None), Cursor { log: "uid".into(), applied: 7 });
    let empty = Feed { log: "uid".into(), head: 9, ..Default::default() };
    assert_eq!(empty.cursor_after(None).applied, 9);
    // A lagging replica's answer (its head 9, the edge at 12) leaves the edge where it was; another log, or a
    // gap, starts over from the answer.
    let at = |log: &str, applied| Cursor { log: log.into(), applied };
    assert_eq!(empty.cursor_after(Some(&at("uid", 12))).applied, 12);
    assert_eq!(empty.cursor_after(Some(&at("other", 12))), at("uid", 9));
    let gap = Feed { gap: true, ..empty.clone() };
    assert_eq!(gap.cursor_after(Some(&at("uid", 12))).applied, 9);
    assert!(empty.behind(Some(&at("uid", 12))), "the replica has not read purges 10 to 12 the edge applied");
    assert!(!empty.behind(Some(&at("uid", 9))) && !empty.behind(None) && !empty.behind(Some(&at("other", 12))));
    assert!(!gap.behind(Some(&at("uid", 12))), "a gap is not a lag");
    assert_eq!(serde_json::from_str::<Feed>("{\"log\":\"uid\",\"head\":3}").unwrap().head, 3, "gap, purges optional");
}

#[test]
fn a_purge_status_round_trips_and_sums_up_for_a_person() {
    let ack = |ms: Option<i64>, state| EdgeAck { acked_ms: ms, state };
    let status = PurgeStatus {
        id: 7,
        log: "uid".into(),
        accepted_at_ms: 1000,
        purge: Purge { tags: vec!["t".into()], ..Default::default() },
        all_acked: false,
        edges: BTreeMap::from([
            ("a".into(), ack(Some(3), AckState::Acked)),
            ("b".into(), ack(Some(12), AckState::Acked)),
            ("c".into(), ack(None, AckState::Pending)),
            ("d".into(), ack(None, AckState::Gone)),
        ]),
    };
    let json = round_trip(&status);
    assert!(json.contains("\"state\":\"pending\""), "{json}");
    assert_eq!(
        status.summary(),
        "purge 7: applied by 2 of 3 live edges, the last after 12 ms; not yet: c; 1 gone (they apply it when they return)"
    );
}

#[test]
fn a_problem_round_trips_and_reads_as_one_line() {
    let one = Problem { error: Some("wrong purge token".into()), errors: vec![] };
    assert_eq!(round_trip(&one), "{\"error\":\"wrong purge token\"}");
    let many = Problem { error: None, errors: vec!["urls[0]: x".into(), "tags[1]: y".into()] };
    round_trip(&many);
    assert_eq!(many.to_string(), "urls[0]: x; tags[1]: y");
}

#[test]
fn the_edges_own_headers_are_told_apart_in_any_case() {
    for name in [PEER_HEADER, PEER_TOKEN_HEADER, PEER_REFUSED_HEADER, OWNER_HEADER, EDGE_HEADER, "X-Dime-Owner"] {
        assert!(is_internal(name), "{name}");
    }
    for name in ["x-dime", "x-dimes-a", "dime-owner", "x-forwarded-for", ""] {
        assert!(!is_internal(name), "{name}");
    }
}

#[test]
fn a_peer_message_names_the_request_both_edges_and_the_time() {
    let m = peer_message("GET", "video.test", "/hls/a.ts?x=1", "edge-a", "edge-b", 1_800_000_000);
    assert_eq!(m, b"dime-peer-v1\nGET\nvideo.test\n/hls/a.ts?x=1\nedge-a\nedge-b\n1800000000".to_vec());
    // A field cannot run into the next: every one is on its own line, and none may hold a newline (header values
    // and names cannot).
    assert_ne!(m, peer_message("GET", "video.test", "/hls/a.ts?x=1", "edge-a", "edge-c", 1_800_000_000));
}

#[test]
fn a_purge_cursor_goes_through_a_header_and_covers_what_is_behind_it() {
    let c = Cursor { log: "uid-1".into(), applied: 7 };
    assert_eq!(Cursor::from_header(&c.header_value()), Some(c.clone()));
    assert_eq!(Cursor::from_header("uid-1"), None);
    assert_eq!(Cursor::from_header("uid-1 seven"), None);
    let at = |log: &str, applied| Cursor { log: log.into(), applied };
    assert!(Cursor::covers(Some(&c), &at("uid-1", 7)) && Cursor::covers(Some(&c), &at("uid-1", 3)));
    assert!(!Cursor::covers(Some(&c), &at("uid-1", 8)), "behind");
    assert!(!Cursor::covers(Some(&c), &at("uid-2", 1)), "another log: not covered");
    assert!(!Cursor::covers(None, &at("uid-1", 1)), "no purge known yet");
    assert!(Cursor::covers(None, &at("uid-1", 0)) && Cursor::covers(Some(&c), &at("uid-2", 0)), "nothing to cover");
}
