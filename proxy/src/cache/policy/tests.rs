use super::*;

fn resp(status: u16, cc: &str) -> Response<'static> {
    let cc: &'static str = Box::leak(cc.to_owned().into_boxed_str());
    Response { status, cache_control: Directives::parse(std::iter::once(cc)), ..Default::default() }
}

fn fresh(d: &Decision) -> Option<u64> {
    match d {
        Decision::Store { fresh, .. } => Some(fresh.as_secs()),
        Decision::Skip(_) => None,
    }
}

const NOW: SystemTime = SystemTime::UNIX_EPOCH;

#[test]
fn classifies_streaming_paths_by_extension() {
    for (path, kind) in [
        ("/hls/stream.m3u8", Kind::Playlist),
        ("/dash/live.MPD", Kind::Playlist),
        ("/hls/stream-12.ts", Kind::Segment),
        ("/dash/chunk-1.m4s", Kind::Segment),
        ("/index.html", Kind::Other),
        ("/hls/", Kind::Other),
        ("/a.ts/readme", Kind::Other),
    ] {
        assert_eq!(classify(path), kind, "{path}");
    }
}

#[test]
fn playlist_ttl_overrides_origin_no_cache() {
    let p = CachePolicy::default();
    let d = decide(&p, Kind::Playlist, false, &resp(200, "no-cache"), NOW);
    assert_eq!(
        d,
        Decision::Store {
            fresh: Duration::from_secs(1),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::from_secs(60),
            initial_age: Duration::ZERO,
        }
    );
    assert_eq!(fresh(&decide(&p, Kind::Segment, false, &resp(200, "no-cache"), NOW)), Some(3600));
}

#[test]
fn a_live_object_s_time_upstream_counts_against_its_ttl() {
    let p = CachePolicy::default();
    let fresh_ms = |r: &Response<'_>, kind| match decide(&p, kind, false, r, NOW) {
        Decision::Store { fresh, .. } => fresh.as_millis(),
        Decision::Skip(why) => panic!("{why}"),
    };
    // A playlist another edge had held for 600 ms has 400 ms left of its 1 s, not 1 s (whole-second Age says 0).
    let from_member = Response { resident: Some(Duration::from_millis(600)), age: Some("0"), ..resp(200, "no-cache") };
    assert_eq!(fresh_ms(&from_member, Kind::Playlist), 400);
    let old = Response { resident: Some(Duration::from_millis(1500)), ..resp(200, "no-cache") };
    assert_eq!(fresh_ms(&old, Kind::Playlist), 0, "older than its TTL: stale at once");
    // An origin's (or a CDN's in front of it) whole-second Age does not: Dime's live TTLs replace its freshness.
    let aged = Response { age: Some("1"), ..resp(200, "no-cache") };
    assert_eq!(fresh_ms(&aged, Kind::Playlist), 1000);
    assert_eq!(fresh_ms(&resp(200, "no-cache"), Kind::Playlist), 1000);
}

#[test]
fn segment_404_is_cached_for_the_negative_ttl_only() {
    let p = CachePolicy::default();
    assert_eq!(fresh(&decide(&p, Kind::Segment, false, &resp(404, "no-cache"), NOW)), Some(1));
    assert_eq!(decide(&p, Kind::Segment, false, &resp(500, ""), NOW), Decision::Skip("status"));
}

#[test]
fn respect_origin_makes_streaming_paths_follow_rfc_9111() {
    let p = CachePolicy { respect_origin: true, ..Default::default() };
    assert_eq!(decide(&p, Kind::Playlist, false, &resp(200, "no-cache"), NOW), Decision::Skip("no-cache"));
    assert_eq!(fresh(&decide(&p, Kind::Playlist, false, &resp(200, "max-age=2"), NOW)), Some(2));
}

#[test]
fn no_store_and_private_are_never_stored() {
    let p = CachePolicy::default();
    for kind in [Kind::Playlist, Kind::Segment, Kind::Other] {
        assert_eq!(decide(&p, kind, false, &resp(200, "no-store"), NOW), Decision::Skip("no-store"));
        assert_eq!(decide(&p, kind, false, &resp(200, "private, max-age=60"), NOW), Decision::Skip("private"));
    }
}

#[test]
fn ordinary_freshness_follows_s_maxage_then_max_age_then_expires() {
    let p = CachePolicy::default();
    assert_eq!(fresh(&decide(&p, Kind::Other, false, &resp(200, "max-age=60, s-maxage=30"), NOW)), Some(30));
    assert_eq!(fresh(&decide(&p, Kind::Other, false, &resp(200, "max-age=60"), NOW)), Some(60));
    let mut r = resp(200, "");
    r.date = Some("Thu, 01 Jan 1970 00:00:10 GMT");
    r.expires = Some("Thu, 01 Jan 1970 00:01:10 GMT");
    assert_eq!(fresh(&decide(&p, Kind::Other, false, &r, NOW)), Some(60));
    r.expires = Some("0");
    assert_eq!(decide(&p, Kind::Other, false, &r, NOW), Decision::Skip("expired"));
}

#[test]
fn age_reduces_freshness() {
    let mut r = resp(200, "max-age=60");
    r.age = Some("45");
    assert_eq!(fresh(&decide(&CachePolicy::default(), Kind::Other, false, &r, NOW)), Some(15));
}

#[test]
fn no_heuristic_freshness_unless_configured() {
    let mut r = resp(200, "");
    r.has_validator = true; // an old Last-Modified must not make a no-cache playlist-like object fresh
    assert_eq!(decide(&CachePolicy::default(), Kind::Other, false, &r, NOW), Decision::Skip("no-freshness"));
    let p = CachePolicy { default_ttl: Some(Duration::from_secs(5)), ..Default::default() };
    assert_eq!(fresh(&decide(&p, Kind::Other, false, &r, NOW)), Some(5));
    assert_eq!(decide(&p, Kind::Other, false, &resp(500, ""), NOW), Decision::Skip("status"));
}

#[test]
fn no_cache_is_stored_only_to_revalidate() {
    let p = CachePolicy::default();
    assert_eq!(decide(&p, Kind::Other, false, &resp(200, "no-cache, max-age=60"), NOW), Decision::Skip("no-cache"));
    let mut r = resp(200, "no-cache, max-age=60");
    r.has_validator = true;
    assert_eq!(fresh(&decide(&p, Kind::Other, false, &r, NOW)), Some(0));
}

#[test]
fn authorization_needs_explicit_permission() {
    let p = CachePolicy::default();
    assert_eq!(decide(&p, Kind::Other, true, &resp(200, "max-age=60"), NOW), Decision::Skip("authorization"));
    assert_eq!(fresh(&decide(&p, Kind::Other, true, &resp(200, "public, max-age=60"), NOW)), Some(60));
    assert_eq!(fresh(&decide(&p, Kind::Other, true, &resp(200, "s-maxage=9"), NOW)), Some(9));
}

#[test]
fn vary_other_than_accept_encoding_and_set_cookie_are_not_stored() {
    let p = CachePolicy::default();
    let mut r = resp(200, "max-age=60");
    r.vary = Some("Accept-Encoding");
    assert!(fresh(&decide(&p, Kind::Other, false, &r, NOW)).is_some());
    r.vary = Some("Accept-Encoding, Cookie");
    assert_eq!(decide(&p, Kind::Other, false, &r, NOW), Decision::Skip("vary"));
    r.vary = Some("*");
    assert_eq!(decide(&p, Kind::Other, false, &r, NOW), Decision::Skip("vary"));
    let mut r = resp(200, "max-age=60");
    r.set_cookie = true;
    assert_eq!(decide(&p, Kind::Other, false, &r, NOW), Decision::Skip("set-cookie"));
}

#[test]
fn max_ttl_caps_everything_and_stale_windows_come_from_origin_or_route() {
    let p = CachePolicy {
        max_ttl: Some(Duration::from_secs(10)),
        stale_if_error: Duration::from_secs(30),
        ..Default::default()
    };
    assert_eq!(fresh(&decide(&p, Kind::Other, false, &resp(200, "max-age=600"), NOW)), Some(10));
    assert_eq!(fresh(&decide(&p, Kind::Segment, false, &resp(200, ""), NOW)), Some(10));
    match decide(&p, Kind::Other, false, &resp(200, "max-age=60, stale-while-revalidate=5, stale-if-error=7"), NOW) {
        Decision::Store { stale_while_revalidate, stale_if_error, .. } => {
            assert_eq!((stale_while_revalidate.as_secs(), stale_if_error.as_secs()), (5, 7));
        }
        d => panic!("{d:?}"),
    }
}

/// The stale windows a decision grants: (stale-while-revalidate, stale-if-error) seconds.
fn stale_windows(d: &Decision) -> (u64, u64) {
    match d {
        Decision::Store { stale_while_revalidate, stale_if_error, .. } => {
            (stale_while_revalidate.as_secs(), stale_if_error.as_secs())
        }
        Decision::Skip(why) => panic!("not stored: {why}"),
    }
}

#[test]
fn directives_that_forbid_stale_win_over_every_stale_window() {
    let p = CachePolicy {
        stale_if_error: Duration::from_secs(30),
        stale_while_revalidate: Some(Duration::from_secs(20)),
        ..Default::default()
    };
    let with_validator = |cc: &str| Response { has_validator: true, ..resp(200, cc) };
    for cc in [
        "max-age=60, must-revalidate, stale-if-error=300, stale-while-revalidate=300",
        "max-age=60, proxy-revalidate, stale-if-error=300",
        "s-maxage=60, stale-if-error=300",
        "no-cache, max-age=60, stale-while-revalidate=300",
        "Max-Age=60, MUST-REVALIDATE",
    ] {
        assert_eq!(stale_windows(&decide(&p, Kind::Other, false, &with_validator(cc), NOW)), (0, 0), "{cc}");
    }
    assert_eq!(stale_windows(&decide(&p, Kind::Other, false, &resp(200, "max-age=60"), NOW)), (20, 30));
    let own = resp(200, "max-age=60, stale-if-error=7");
    assert_eq!(stale_windows(&decide(&CachePolicy::default(), Kind::Other, false, &own, NOW)), (0, 7));
    // Live paths keep Dime's own windows: their origins send `no-cache` on everything.
    assert_eq!(
        stale_windows(&decide(&p, Kind::Segment, false, &resp(200, "no-cache, must-revalidate"), NOW)),
        (20, 30)
    );
}

#[test]
fn the_initial_age_is_the_larger_of_age_and_the_apparent_age_and_an_unreadable_age_is_ignored() {
    let p = CachePolicy::default();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let decided = |age: Option<&'static str>, date: Option<&'static str>| {
        let r = Response { age, date, ..resp(200, "max-age=3600") };
        decide(&p, Kind::Other, false, &r, now)
    };
    let store = |fresh: u64, initial: u64| Decision::Store {
        fresh: Duration::from_secs(fresh),
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::from_secs(60),
        initial_age: Duration::from_secs(initial),
    };
    let cases: [(Option<&'static str>, Option<&'static str>, Decision); 10] = [
        (None, None, store(3600, 0)),
        (Some("600"), None, store(3000, 600)),
        (Some(" 600 "), None, store(3000, 600)),
        (Some("7200, 0"), None, Decision::Skip("expired")),
        (Some("600, 7200"), None, store(3000, 600)),
        // Unreadable: ignored (RFC 9111 §5.1).
        (Some("1.5"), None, store(3600, 0)),
        (Some("-5"), None, store(3600, 0)),
        (Some("abc"), None, store(3600, 0)),
        // Date 60 s before now: the apparent age wins over a smaller Age.
        (Some("10"), Some("Thu, 01 Jan 1970 00:00:40 GMT"), store(3540, 60)),
        // A Date in the future (the origin's clock ahead) adds nothing.
        (None, Some("Thu, 01 Jan 1970 01:00:00 GMT"), store(3600, 0)),
    ];
    for (age, date, want) in cases {
        assert_eq!(decided(age, date), want, "Age {age:?}, Date {date:?}");
    }
}

#[test]
fn a_fleet_members_answer_is_aged_by_its_age_alone() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let from_member = Response {
        age: Some("5"),
        date: Some("Thu, 01 Jan 1970 00:00:40 GMT"),
        resident: Some(Duration::from_secs(5)),
        ..resp(200, "max-age=3600")
    };
    assert_eq!(initial_age(&from_member, now), Duration::from_secs(5), "the member's clock is not this edge's");
    let whole = Response { date: Some("Thu, 01 Jan 1970 00:01:39 GMT"), ..resp(200, "max-age=3600") };
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(99_900);
    assert_eq!(initial_age(&whole, now), Duration::ZERO, "Date has whole seconds: 0.9 s is no age");
}
