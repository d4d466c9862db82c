use std::time::Duration;

use super::*;

/// What nginx-rtmp writes after a reconnect inside its cleanup window (numbering continues, a discontinuity).
const NGINX_HLS: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:4
#EXT-X-TARGETDURATION:1
#EXTINF:1.000,
stream-4.ts
#EXTINF:0.991,
stream-5.ts
#EXT-X-DISCONTINUITY
#EXTINF:1.000,
stream-6.ts
";

#[test]
fn hls_media_playlist_lists_segments_with_their_numbers() {
    let l = parse(Format::Hls, NGINX_HLS.as_bytes()).unwrap().unwrap();
    let got: Vec<_> = l.entries.iter().map(|e| (e.uri.as_str(), e.seq)).collect();
    assert_eq!(got, [("stream-4.ts", Some(4)), ("stream-5.ts", Some(5)), ("stream-6.ts", Some(6))]);
    assert_eq!((l.shape.first_seq, l.shape.last_seq, l.shape.ended), (4, Some(6), false));
    assert_eq!(l.shape.target, Duration::from_secs(1));
    assert!(
        l.shape.window > Duration::from_millis(2900) && l.shape.window < Duration::from_millis(3100),
        "{:?}",
        l.shape.window
    );
}

#[test]
fn an_ll_hls_delta_playlist_numbers_its_segments_as_the_full_one_does() {
    let full = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12.0
#EXT-X-MEDIA-SEQUENCE:20
#EXTINF:2.0,
seg20.m4s
#EXTINF:2.0,
seg21.m4s
#EXTINF:2.0,
seg22.m4s
#EXTINF:2.0,
seg23.m4s
";
    let delta = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12.0
#EXT-X-MEDIA-SEQUENCE:20
#EXT-X-SKIP:SKIPPED-SEGMENTS=2
#EXTINF:2.0,
seg22.m4s
#EXTINF:2.0,
seg23.m4s
";
    let numbered = |body: &str| {
        let l = parse(Format::Hls, body.as_bytes()).unwrap().unwrap();
        let entries: Vec<(String, Option<u64>)> = l.entries.iter().map(|e| (e.uri.clone(), e.seq)).collect();
        (entries, l.shape.first_seq, l.shape.last_seq)
    };
    let (full_entries, full_first, full_last) = numbered(full);
    let (delta_entries, delta_first, delta_last) = numbered(delta);
    assert_eq!(delta_entries, [("seg22.m4s".to_owned(), Some(22)), ("seg23.m4s".to_owned(), Some(23))]);
    assert!(full_entries.ends_with(&delta_entries), "the same numbers as in the full playlist");
    assert_eq!((delta_first, delta_last), (full_first, full_last), "the same window");
}

#[test]
fn hls_endlist_init_segment_parts_and_discontinuity_sequence() {
    let body = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-DISCONTINUITY-SEQUENCE:3
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:2.0,
seg10.m4s
#EXT-X-PART:DURATION=0.5,URI=\"seg11.0.m4s\"
#EXTINF:2.0,
seg11.m4s
#EXT-X-ENDLIST
";
    let l = parse(Format::Hls, body.as_bytes()).unwrap().unwrap();
    assert!(l.shape.ended);
    assert_eq!(l.shape.discontinuity_seq, 3);
    let uris: Vec<_> = l.entries.iter().map(|e| (e.uri.as_str(), e.seq)).collect();
    assert!(uris.contains(&("init.mp4", None)), "{uris:?}");
    assert!(uris.contains(&("seg11.0.m4s", None)), "{uris:?}");
    assert!(uris.contains(&("seg11.m4s", Some(11))), "{uris:?}");
}

#[test]
fn hls_multivariant_playlist_lists_no_segments() {
    let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n";
    assert_eq!(parse(Format::Hls, body.as_bytes()).unwrap(), None);
}

#[test]
fn garbage_is_an_error_not_an_empty_listing() {
    assert!(parse(Format::Hls, b"<html>not found</html>").is_err());
    assert!(parse(Format::Dash, b"#EXTM3U\n").is_err());
    assert!(parse(Format::Dash, b"<html><body>503</body></html>").is_err());
}

/// The shape nginx-rtmp's `dash on` writes: `$Time$` templates with a timeline, one per representation.
const NGINX_MPD: &str = r#"<?xml version="1.0"?>
<MPD type="dynamic" xmlns="urn:mpeg:dash:schema:mpd:2011" availabilityStartTime="2026-12-01T22:46:46Z">
  <Period start="PT0S" id="dash">
    <AdaptationSet id="1" segmentAlignment="true">
      <Representation id="stream_H264" mimeType="video/mp4" bandwidth="0">
        <SegmentTemplate timescale="1000" media="stream-$Time$.m4v" initialization="stream-init.m4v">
          <SegmentTimeline>
             <S t="0" d="1023"/>
             <S t="1023" d="1000" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="2">
      <SegmentTemplate timescale="1000" media="$RepresentationID$/seg-$Number%05d$.m4a" initialization="$RepresentationID$/init.m4a" startNumber="7">
        <SegmentTimeline><S d="2000" r="1"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="audio" bandwidth="64000"/>
    </AdaptationSet>
  </Period>
</MPD>"#;

#[test]
fn dash_timeline_templates_expand_to_segment_names() {
    let l = parse(Format::Dash, NGINX_MPD.as_bytes()).unwrap().unwrap();
    assert_eq!(l.shape.epoch.as_deref(), Some("2026-12-01T22:46:46Z"));
    assert!(!l.shape.ended);
    let got: Vec<_> = l.entries.iter().map(|e| (e.uri.as_str(), e.seq)).collect();
    assert_eq!(
        got,
        [
            ("stream-init.m4v", None),
            ("stream-0.m4v", Some(0)),
            ("stream-1023.m4v", Some(1023)),
            ("stream-2023.m4v", Some(2023)),
            ("audio/init.m4a", None),
            ("audio/seg-00007.m4a", Some(7)),
            ("audio/seg-00008.m4a", Some(8)),
        ]
    );
    assert_eq!(l.shape.window, Duration::from_millis(4000));
    assert_eq!(l.shape.target, Duration::from_millis(2000));
}

#[test]
fn static_mpd_is_vod() {
    let body = r#"<MPD type="static"><Period/></MPD>"#;
    assert!(parse(Format::Dash, body.as_bytes()).unwrap().unwrap().shape.ended);
}

#[test]
fn entries_resolve_against_the_playlist() {
    let cases = [
        ("s-1.ts", ("live.test", "/hls/s-1.ts", None)),
        ("../v/s-1.ts?_HLS_msn=3", ("live.test", "/v/s-1.ts", Some("_HLS_msn=3"))),
        ("/abs/s.ts", ("live.test", "/abs/s.ts", None)),
        ("http://other.test/x/./s.ts", ("other.test", "/x/s.ts", None)),
    ];
    for (uri, (host, path, query)) in cases {
        let (h, p, q) = resolve("live.test", "/hls/stream.m3u8", uri).unwrap();
        assert_eq!((h.as_ref(), p.as_str(), q), (host, path, query), "{uri}");
    }
    assert_eq!(resolve("live.test", "/hls/stream.m3u8", "//cdn.test/s.ts"), None);
}

mod fuzz {
    //! The playlist parser over bad input: any body, and the playlists above (with the other shapes players
    //! meet) with a few edits; every entry of what reads resolves against the playlist's path.

    use dime_testkit::fuzz::{bytes, config, mutated, within};
    use proptest::prelude::*;

    use super::*;

    const LL_HLS: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-PART-INF:PART-TARGET=1.0
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T22:46:46.000Z
#EXTINF:4.00008,
fileSequence266.mp4
#EXT-X-BYTERANGE:1024@0
#EXTINF:4.00008,
https://cdn.example.com/live/fileSequence267.mp4?token=a
#EXT-X-PART:DURATION=1.0,URI=\"filePart268.0.mp4\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart268.1.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2
";

    const MULTIVARIANT: &str = "#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"en\",DEFAULT=YES,URI=\"audio/index.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aac\"
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720
hi/index.m3u8
";

    const HLS: [&str; 3] = [NGINX_HLS, LL_HLS, MULTIVARIANT];

    const HLS_PIECES: [&str; 22] = [
        "#EXTM3U\n",
        "#EXTINF:",
        "#EXTINF:1e308,\n",
        "#EXTINF:-1,\n",
        "#EXTINF:NaN,\n",
        "#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n",
        "#EXT-X-DISCONTINUITY-SEQUENCE:18446744073709551615\n",
        "#EXT-X-TARGETDURATION:18446744073709551616\n",
        "#EXT-X-ENDLIST\n",
        "#EXT-X-MAP:URI=\"",
        "#EXT-X-PART:URI=\"",
        "#EXT-X-BYTERANGE:",
        "#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n",
        "#EXT-X-STREAM-INF:BANDWIDTH=1\n",
        "URI=\"",
        "\"",
        ",",
        "@",
        "\r\n",
        "\n",
        "../",
        "//",
    ];

    const DASH: [&str; 2] = [
        NGINX_MPD,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S">
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate media="v/$RepresentationID$/$Number%03d$.m4s" initialization="v/$RepresentationID$/init.mp4"
                       timescale="90000" startNumber="0">
        <SegmentTimeline><S t="0" d="180000" r="-1"/><S d="90000"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="720p" bandwidth="2400000"/>
      <Representation id="360p" bandwidth="800000"><SegmentTemplate media="$$x$Bandwidth$-$Time$.m4s"/></Representation>
    </AdaptationSet>
  </Period>
</MPD>"#,
    ];

    const DASH_PIECES: [&str; 22] = [
        "<S d=\"1\" r=\"10000\"/>\n",
        "<S t=\"18446744073709551615\" d=\"18446744073709551615\" r=\"3\"/>",
        " r=\"-2\"",
        " startNumber=\"18446744073709551615\"",
        " timescale=\"0\"",
        "$Number%0999999999999d$",
        "$Number%0d$",
        "$Time$",
        "$",
        "<Representation id=\"r\">",
        "</Representation>",
        "<SegmentTemplate media=\"m-$Number$\">",
        "</SegmentTemplate>",
        "<AdaptationSet>",
        "</AdaptationSet>",
        "<!--",
        "-->",
        "<![CDATA[",
        "&amp;",
        "&#0;",
        "\"",
        "<",
    ];

    /// Parses `body` within the time bound; every entry of a listing resolves (or is refused) without a panic.
    fn parses(format: Format, body: Vec<u8>) -> Result<(), TestCaseError> {
        let input = body.clone();
        let listing = within(&input, move || {
            let listing = parse(format, &body);
            if let Ok(Some(listing)) = &listing {
                for e in &listing.entries {
                    let _ = resolve("live.test", "/hls/stream.m3u8", &e.uri);
                }
            }
            listing
        });
        // HLS numbers its segments from the media sequence on; the last is the shape's.
        if let (Format::Hls, Ok(Some(listing))) = (format, listing) {
            let numbered: Vec<u64> = listing.entries.iter().filter_map(|e| e.seq).collect();
            prop_assert!(numbered.iter().all(|n| *n >= listing.shape.first_seq), "{:?}", listing);
            prop_assert_eq!(numbered.iter().max().copied(), listing.shape.last_seq, "{:?}", listing);
        }
        Ok(())
    }

    /// An MPD whose representation has `timeline` and a media template `media`.
    fn mpd(media: &str, id: &str, timeline: &str) -> Vec<u8> {
        format!(
            "<MPD><Period><AdaptationSet><SegmentTemplate media=\"{media}\"><SegmentTimeline>{timeline}\
             </SegmentTimeline></SegmentTemplate><Representation id=\"{id}\"/></AdaptationSet></Period></MPD>"
        )
        .into_bytes()
    }

    /// Found by the fuzz set: `#EXT-X-MEDIA-SEQUENCE:18446744073709551615` and a second segment overflowed the
    /// segment number (a panic in a debug build, a wrap in a release one).
    #[test]
    fn hls_a_media_sequence_at_the_top_of_u64_does_not_overflow() {
        let body = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n";
        let listing = within(body.as_bytes(), move || parse(Format::Hls, body.as_bytes())).unwrap().unwrap();
        assert_eq!(listing.shape.last_seq, Some(u64::MAX));
    }

    /// Found by the fuzz set: `<S t="18446744073709551615" d="1"/>` overflowed the segment time.
    #[test]
    fn dash_a_time_at_the_top_of_u64_does_not_overflow() {
        let body = mpd("$Time$.m4s", "v", r#"<S t="18446744073709551615" d="18446744073709551615" r="2"/>"#);
        let listing = within(&body.clone(), move || parse(Format::Dash, &body)).unwrap().unwrap();
        assert_eq!(listing.entries.len(), 3);
    }

    /// Found by the fuzz set: `$Number%0999999999999d$` asked for a trillion zeros (the allocation aborted the
    /// process).
    #[test]
    fn dash_a_template_width_of_a_trillion_digits_is_capped() {
        let body = mpd("s-$Number%0999999999999d$.m4s", "v", r#"<S d="1"/>"#);
        let listing = within(&body.clone(), move || parse(Format::Dash, &body)).unwrap().unwrap();
        assert_eq!(listing.entries[0].uri, format!("s-{:0>32}.m4s", 1));
    }

    /// A timeline of 20-byte `<S d="1" r="10000"/>` elements listed 10 001 segments per element: 4 KiB of
    /// manifest listed two million, and the 4 MiB a playlist may have, billions (the edge ran out of memory).
    #[test]
    fn dash_a_timeline_of_millions_of_segments_is_unreadable() {
        let body = mpd("s-$Number$.m4s", "v", &r#"<S d="1" r="10000"/>"#.repeat(200));
        let result = within(&body.clone(), move || parse(Format::Dash, &body));
        assert!(matches!(&result, Err(ListingError::Dash(e)) if e.starts_with("lists more than 200000")), "{result:?}");
    }

    /// The same with a long `$RepresentationID$` named many times in one template: one URI of gigabytes.
    #[test]
    fn dash_a_template_that_expands_to_a_huge_uri_is_unreadable() {
        let body = mpd(&"$RepresentationID$".repeat(1000), &"v".repeat(100_000), r#"<S d="1"/>"#);
        let result = within(&body.clone(), move || parse(Format::Dash, &body));
        assert!(matches!(&result, Err(ListingError::Dash(e)) if e.starts_with("lists more than")), "{result:?}");
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_body_is_a_listing_or_an_error(body in bytes(), dash in any::<bool>()) {
            parses(if dash { Format::Dash } else { Format::Hls }, body)?;
        }

        #[test]
        fn an_edited_hls_playlist_is_a_listing_or_an_error(body in mutated(&HLS, &HLS_PIECES)) {
            parses(Format::Hls, body)?;
        }

        #[test]
        fn an_edited_dash_manifest_is_a_listing_or_an_error(body in mutated(&DASH, &DASH_PIECES)) {
            parses(Format::Dash, body)?;
        }
    }
}
