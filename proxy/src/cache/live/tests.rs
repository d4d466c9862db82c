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
