use std::time::{Duration, SystemTime};

use super::*;

fn h(n: u8) -> Hash {
    [n; 16]
}

/// A live HLS window of `count` one-second segments starting at `first`, seen at `at` seconds; segment `n` is
/// the object `h(n)`.
fn window(first: u64, count: u64, at: u64) -> Seen {
    Seen {
        at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + at)),
        since: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + at)),
        shape: Shape {
            first_seq: first,
            last_seq: Some(first + count - 1),
            window: Duration::from_secs(count),
            target: Duration::from_secs(1),
            ..Default::default()
        },
        entries: (first..first + count).map(|n| (h(n as u8), Some(n))).collect(),
    }
}

#[test]
fn judging_a_fetch_against_the_previous_one() {
    let restarted = {
        // nginx-rtmp after its cleanup window: the same names from 0 again, with new content.
        window(0, 3, 30)
    };
    let mut dash_new_epoch = window(0, 3, 1);
    dash_new_epoch.shape.epoch = Some("2026-12-01T22:46:57Z".into());
    let mut renumbered = window(5, 3, 1);
    renumbered.entries.insert(h(5), Some(9));
    let mut disc_back = window(5, 3, 1);
    disc_back.shape.discontinuity_seq = 0;
    let mut prev_disc = window(4, 3, 0);
    prev_disc.shape.discontinuity_seq = 2;
    let mut vod = window(0, 3, 0);
    vod.shape.ended = true;
    let mut vod_later = window(0, 3, 86_400);
    vod_later.shape.ended = true;

    let cases: [(&str, Option<Seen>, Seen, Continuity); 9] = [
        ("nothing remembered", None, window(0, 3, 0), Continuity::First),
        ("sliding window", Some(window(0, 5, 0)), window(1, 5, 1), Continuity::Continuous),
        ("paused within the window", Some(window(0, 5, 0)), window(3, 5, 6), Continuity::Continuous),
        ("paused longer than the window", Some(window(0, 5, 0)), window(3, 5, 8), Continuity::Gap),
        ("numbering restarted", Some(window(4, 5, 0)), restarted, Continuity::Restart("media-sequence")),
        ("new DASH stream", Some(window(0, 3, 0)), dash_new_epoch, Continuity::Restart("epoch")),
        ("a name at another number", Some(window(4, 3, 0)), renumbered, Continuity::Restart("renumbered")),
        ("discontinuity sequence back", Some(prev_disc), disc_back, Continuity::Restart("discontinuity-sequence")),
        ("VOD refetched a day later", Some(vod), vod_later, Continuity::Continuous),
    ];
    for (name, prev, next, want) in cases {
        assert_eq!(judge(prev.as_ref(), &next), want, "{name}");
    }
}

#[test]
fn window_shrinking_at_the_same_sequence_is_a_restart() {
    // A short stream (s-0..s-4), then a new one at s-0..s-2 before anyone fetched in between.
    assert_eq!(judge(Some(&window(0, 5, 0)), &window(0, 3, 2)), Continuity::Restart("media-sequence"));
}

#[test]
fn out_of_order_completion_is_ignored() {
    let prev = window(3, 3, 10);
    let next = window(2, 3, 9);
    assert_eq!(judge(Some(&prev), &next), Continuity::Older);
    assert_eq!(verdict(Some(&prev), &next, Continuity::Older), Verdict::default());
}

#[test]
fn only_names_first_listed_now_are_new_while_continuous() {
    let prev = window(0, 5, 0);
    let next = window(2, 5, 1);
    let v = verdict(Some(&prev), &next, judge(Some(&prev), &next));
    let mut new = v.new.clone();
    new.sort();
    assert_eq!(new, vec![h(5), h(6)], "segments 5 and 6 appear for the first time");
    assert!(v.retired.is_empty());
}

#[test]
fn after_a_restart_every_name_is_new_and_the_old_window_retires() {
    let prev = window(4, 5, 0);
    let next = window(0, 3, 30);
    let c = judge(Some(&prev), &next);
    let v = verdict(Some(&prev), &next, c);
    let mut new = v.new.clone();
    new.sort();
    assert_eq!(new, vec![h(0), h(1), h(2)]);
    let mut retired = v.retired.clone();
    retired.sort();
    assert_eq!(retired, vec![h(4), h(5), h(6), h(7), h(8)]);
}

#[test]
fn segments_in_a_sub_directory_take_their_playlist_s_ring_key() {
    let index = index::LiveIndex::new();
    let body = bytes::Bytes::from_static(
        b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg/0.ts\n#EXTINF:1.0,\nbeside-1.ts\n",
    );
    let done = index::Completed {
        primary: "live.test\n/live/s/index.m3u8",
        status: 200,
        created: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        body: &[body],
    };
    index.completed(&done).unwrap();
    let segment = |path: &str| {
        let primary =
            crate::cache::key::primary_key("live.test", path, None, crate::cache::policy::Kind::Segment, None);
        index.stream_of(&pingora_cache::key::hash_key(&primary)).map(|s| s.to_string())
    };
    assert_eq!(segment("/live/s/seg/0.ts").as_deref(), Some("live.test\n/live/s/"), "nested: the playlist's key");
    assert_eq!(segment("/live/s/beside-1.ts"), None, "beside its playlist: its own directory is the key already");
    assert_eq!(index::stream_key("live.test\n/live/s/seg/0.ts?v=1"), "live.test\n/live/s/seg/");
}

/// An index fed HLS playlists of `/live/s.m3u8` (3 one-second segments `s-N.ts`, N from `first`) at `at` seconds.
struct Feed(index::LiveIndex);

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + secs)
}

/// `index` judging a `200` of `/live/s.m3u8` with `body`, arrived at `at` seconds.
fn judged(index: &index::LiveIndex, body: bytes::Bytes, at: u64) -> index::Action {
    let body = [body];
    let done =
        index::Completed { primary: "live.test\n/live/s.m3u8", status: 200, created: t(at), now: t(at), body: &body };
    index.completed(&done).unwrap()
}

impl Feed {
    fn playlist(&self, first: u64, at: u64, ended: bool) -> Option<Continuity> {
        let mut body = format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
        for n in first..first + 3 {
            body.push_str(&format!("#EXTINF:1.0,\ns-{n}.ts\n"));
        }
        if ended {
            body.push_str("#EXT-X-ENDLIST\n");
        }
        judged(&self.0, bytes::Bytes::from(body), at).continuity
    }

    fn gone(&self, at: u64) {
        let done =
            index::Completed { primary: "live.test\n/live/s.m3u8", status: 404, created: t(at), now: t(at), body: &[] };
        self.0.completed(&done);
    }

    /// Whether a copy of `s-n.ts` stored at `created` may be served at `now` (seconds).
    fn serves(&self, n: u64, created: u64, now: u64) -> bool {
        let path = format!("/live/s-{n}.ts");
        let primary =
            crate::cache::key::primary_key("live.test", &path, None, crate::cache::policy::Kind::Segment, None);
        self.0.servable(&pingora_cache::key::hash_key(&primary), t(created), t(now))
    }
}

#[test]
fn a_copy_is_served_only_if_it_was_stored_during_the_run_its_playlist_is_in() {
    let feed = Feed(index::LiveIndex::new());
    assert!(feed.serves(3, 0, 500), "nothing listed yet: the index knows nothing to refuse");
    // Stream A: s-0..s-5 over 4 s, each stored just after the fetch that listed it.
    for (first, at) in [(0, 0), (1, 1), (2, 2), (3, 3)] {
        feed.playlist(first, at, false);
    }
    assert!(feed.serves(5, 3, 4), "stored during the current run");
    assert!(feed.serves(3, 1, 4), "stored during the current run, before its name was listed (a guess ahead)");
    // Nobody fetches the playlist for a minute: it no longer speaks for the stream (window 3 s + 1 s + 1 s).
    assert!(!feed.serves(3, 1, 60), "A's copy, a minute later with nothing vouching for it");
    assert!(feed.serves(3, 58, 60), "a copy the origin gave 2 s ago, with nothing vouching against it");
    // Stream B renumbers from 0: a restart, and a new run.
    assert_eq!(feed.playlist(0, 61, false), Some(Continuity::Restart("media-sequence")));
    assert!(!feed.serves(3, 3, 62), "A's s-3, asked for before B's playlist lists it");
    assert!(feed.serves(1, 61, 62), "listed by B's run and stored since it began");
    assert!(!feed.serves(3, 3, 62) && !feed.serves(3, 40, 62), "a name A's run listed long ago, an old copy");
    assert!(feed.serves(3, 61, 62), "fetched ahead of B's listing: young, and refetched once per bound until listed");
    assert_eq!(feed.playlist(1, 63, false), Some(Continuity::Continuous));
    assert!(feed.serves(3, 63, 64), "B's run lists s-3 now");
    // B's playlist vanishes (404): nothing speaks for the stream; only young copies are served.
    feed.gone(70);
    assert!(!feed.serves(3, 61, 80));
    assert!(feed.serves(3, 79, 80));
    // First fetch after the 404: a new run again.
    assert_eq!(feed.playlist(0, 90, false), Some(Continuity::First));
    assert!(!feed.serves(1, 79, 91) && feed.serves(1, 90, 91));
}

#[test]
fn vod_copies_are_served_however_old() {
    let feed = Feed(index::LiveIndex::new());
    feed.playlist(0, 0, true);
    assert!(feed.serves(1, 1, 86_400), "VOD listed once speaks for its segments as long as they are cached");
    assert!(feed.serves(1, 0, 86_400), "stored as its playlist arrived: the same run");
    feed.gone(100);
    assert!(feed.serves(1, 1, 86_400), "the playlist forgotten, VOD names are still the ones it listed");
}

#[test]
fn a_clock_stepped_back_starts_a_new_run_and_refuses_nothing_for_it() {
    let feed = Feed(index::LiveIndex::new());
    feed.playlist(0, 100, false);
    assert!(feed.serves(1, 100, 101));
    // The wall clock steps back 90 s: copies look created in the future, the run began in the future.
    assert!(feed.serves(1, 100, 11), "a run that began over a bound in the future cannot refuse anything");
    assert_eq!(feed.playlist(1, 10, false), Some(Continuity::Gap), "further back than a fill's moment: a new run");
    assert!(feed.serves(3, 10, 11));
}

#[test]
fn delta_and_full_playlists_alternating_keep_every_name_vouched_for() {
    let index = index::LiveIndex::new();
    let playlist = |first: u64, skip: u64, last: u64| {
        let mut body = format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=6.0\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        if skip > 0 {
            body.push_str(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skip}\n"));
        }
        for n in first + skip..=last {
            body.push_str(&format!("#EXTINF:1.0,\ns-{n}.ts\n"));
        }
        bytes::Bytes::from(body)
    };
    let judge_at = |body: bytes::Bytes, at: u64| judged(&index, body, at);
    judge_at(playlist(10, 0, 15), 0);
    let delta = judge_at(playlist(11, 3, 16), 1);
    assert_eq!((delta.continuity, delta.drop.len()), (Some(Continuity::Continuous), 1), "only s-16 is new");
    let full = judge_at(playlist(11, 0, 16), 2);
    assert_eq!(
        (full.continuity, full.drop),
        (Some(Continuity::Continuous), Vec::new()),
        "s-11..s-13 were skipped, not new"
    );
    let hash = |n: u64| {
        let primary = crate::cache::key::primary_key(
            "live.test",
            &format!("/live/s-{n}.ts"),
            None,
            crate::cache::policy::Kind::Segment,
            None,
        );
        pingora_cache::key::hash_key(&primary)
    };
    judge_at(playlist(12, 3, 17), 3);
    assert!(index.servable(&hash(12), t(0), t(3)), "skipped by the delta, still listed lately");
}
