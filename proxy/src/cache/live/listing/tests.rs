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
