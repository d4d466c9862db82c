//! What a live playlist lists: its segments with their sequence numbers, its window, and what marks its stream.
//! HLS media playlists are read with `m3u8-rs`, DASH manifests with `quick-xml`; both are pure functions of the
//! body, tested against what nginx-rtmp writes.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::XmlVersion;

/// One thing a playlist names that a viewer will fetch: a media segment (with its number, or its start time for
/// DASH `$Time$` templates), or an initialization segment / LL-HLS part (no number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As written in the playlist: relative to it, absolute-path, or an absolute URL.
    pub uri: String,
    pub seq: Option<u64>,
}

/// What a playlist says about its stream as a whole, beside the entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shape {
    /// `#EXT-X-ENDLIST`, or a `static` MPD: the stream will not change any more (VOD).
    pub ended: bool,
    /// What names the stream instance, where the format has it: DASH `availabilityStartTime`.
    pub epoch: Option<String>,
    /// HLS `#EXT-X-MEDIA-SEQUENCE` (0 for DASH).
    pub first_seq: u64,
    /// HLS `#EXT-X-DISCONTINUITY-SEQUENCE` (0 for DASH).
    pub discontinuity_seq: u64,
    /// The number of the last media segment listed.
    pub last_seq: Option<u64>,
    /// How much media the playlist spans (sum of segment durations; for DASH, the longest representation's).
    pub window: Duration,
    /// The longest segment (HLS `#EXT-X-TARGETDURATION`).
    pub target: Duration,
}

/// A parsed media playlist (HLS) or manifest (DASH).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    pub shape: Shape,
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListingError {
    #[error("not an HLS playlist: {0}")]
    Hls(String),
    #[error("not a DASH manifest: {0}")]
    Dash(String),
}

/// Which format a playlist path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hls,
    Dash,
}

impl Format {
    pub fn of(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let ext = name.rsplit_once('.')?.1;
        if ext.eq_ignore_ascii_case("m3u8") {
            Some(Format::Hls)
        } else if ext.eq_ignore_ascii_case("mpd") {
            Some(Format::Dash)
        } else {
            None
        }
    }
}

/// Parses a playlist body. `Ok(None)`: a valid document that lists no segments of its own (an HLS multivariant
/// playlist names other playlists, each tracked when fetched).
pub fn parse(format: Format, body: &[u8]) -> Result<Option<Listing>, ListingError> {
    match format {
        Format::Hls => parse_hls(body),
        Format::Dash => parse_dash(body).map(Some),
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

fn parse_hls(body: &[u8]) -> Result<Option<Listing>, ListingError> {
    let playlist = m3u8_rs::parse_playlist_res(body).map_err(|e| ListingError::Hls(short(&format!("{e:?}"))))?;
    let media = match playlist {
        m3u8_rs::Playlist::MasterPlaylist(_) => return Ok(None),
        m3u8_rs::Playlist::MediaPlaylist(m) => m,
    };
    let mut listing = Listing {
        shape: Shape {
            ended: media.end_list,
            first_seq: media.media_sequence,
            discontinuity_seq: media.discontinuity_sequence,
            target: Duration::from_secs(media.target_duration),
            ..Default::default()
        },
        entries: Vec::new(),
    };
    // A Low-Latency HLS delta playlist (`_HLS_skip=YES`) leaves out the window's first segments and says how many
    // (`#EXT-X-SKIP:SKIPPED-SEGMENTS=N`): the first segment listed is number MEDIA-SEQUENCE + N, so a delta and
    // the full playlist it stands for number every segment alike (else each alternation would read as a restart).
    let skipped = skipped_segments(&media);
    let mut window = 0.0f64;
    for (i, segment) in media.segments.iter().enumerate() {
        // Saturating: a media sequence near 2^64 is nonsense, not a reason to panic.
        let seq = media.media_sequence.saturating_add(skipped).saturating_add(i as u64);
        if let Some(map) = &segment.map {
            listing.entries.push(Entry { uri: map.uri.clone(), seq: None });
        }
        // Low-Latency HLS parts and the preload hint are fetched by players before their segment is complete.
        for tag in &segment.unknown_tags {
            if matches!(tag.tag.as_str(), "X-PART" | "X-PRELOAD-HINT") {
                if let Some(uri) = tag.rest.as_deref().and_then(quoted_uri) {
                    listing.entries.push(Entry { uri, seq: None });
                }
            }
        }
        if !segment.uri.is_empty() {
            listing.entries.push(Entry { uri: segment.uri.clone(), seq: Some(seq) });
            listing.shape.last_seq = Some(seq);
            window += f64::from(segment.duration);
        }
    }
    // The skipped segments are still in the window (at most a target duration each): a delta playlist's window
    // bounds continuity like the full playlist's.
    window += skipped as f64 * media.target_duration as f64;
    listing.shape.window = secs(window);
    Ok(Some(listing))
}

/// `SKIPPED-SEGMENTS` of the playlist's `#EXT-X-SKIP` (0 without one). The tag comes before the first segment
/// listed; the parser keeps it among the playlist's or that segment's unknown tags.
fn skipped_segments(media: &m3u8_rs::MediaPlaylist) -> u64 {
    let first = media.segments.first().map(|s| s.unknown_tags.as_slice()).unwrap_or_default();
    media
        .unknown_tags
        .iter()
        .chain(first)
        .filter(|t| t.tag == "X-SKIP")
        .find_map(|t| {
            let rest = t.rest.as_deref()?;
            rest.split(',').find_map(|a| a.trim().strip_prefix("SKIPPED-SEGMENTS=")?.trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// The `URI="..."` attribute of an HLS tag's attribute list.
fn quoted_uri(attributes: &str) -> Option<String> {
    let start = attributes.find("URI=\"")? + 5;
    let len = attributes[start..].find('"')?;
    Some(attributes[start..start + len].to_owned())
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// At most this many entries, and this many bytes of their URIs, in a DASH listing, each URI at most
/// [`MAX_URI`] bytes. A timeline repeats a segment up to 10 000 times in 20 bytes (`<S d="1" r="10000"/>`), each
/// representation expands its adaptation set's template again, and a template may name a long
/// `$RepresentationID$` many times: a manifest within the body limit could otherwise list billions of bytes.
/// 200 000 is 24 hours of 2-second segments in four representations; a manifest beyond these is unreadable
/// (nothing it lists is vouched for).
pub const MAX_ENTRIES: usize = 200_000;
const MAX_LISTED_BYTES: usize = 32 << 20;
const MAX_URI: usize = 16 << 10;

/// The widest `%0Nd` a DASH template may ask for: a `u64` has 20 digits.
const MAX_WIDTH: usize = 32;

/// A `SegmentTemplate` in scope, with its timeline.
#[derive(Debug, Clone, Default)]
struct Template {
    media: Option<String>,
    initialization: Option<String>,
    timescale: u64,
    start_number: u64,
    /// `(t, d, r)` of each `S` element.
    timeline: Vec<(Option<u64>, u64, i64)>,
}

/// Where in the manifest the reader is, for templates that apply to the representations below them.
#[derive(Debug, Default)]
struct DashScope {
    adaptation: Option<Template>,
    representation: Option<(String, String)>,
    representation_template: Option<Template>,
    /// Whether the template being read belongs to the representation (else to the adaptation set).
    in_representation: bool,
    /// The bytes of the URIs listed so far, and whether the listing went over [`MAX_ENTRIES`],
    /// [`MAX_LISTED_BYTES`] or [`MAX_URI`].
    listed_bytes: usize,
    too_long: bool,
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

fn template_of(e: &BytesStart<'_>, inherit: Option<&Template>) -> Template {
    let base = inherit.cloned().unwrap_or(Template { timescale: 1, start_number: 1, ..Default::default() });
    let num = |name: &[u8]| attr(e, name).and_then(|v| v.parse::<u64>().ok());
    Template {
        media: attr(e, b"media").or(base.media),
        initialization: attr(e, b"initialization").or(base.initialization),
        timescale: num(b"timescale").unwrap_or(base.timescale).max(1),
        start_number: num(b"startNumber").unwrap_or(base.start_number),
        timeline: Vec::new(),
    }
}

fn parse_dash(body: &[u8]) -> Result<Listing, ListingError> {
    let text = std::str::from_utf8(body).map_err(|_| ListingError::Dash("not UTF-8".into()))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut listing = Listing::default();
    let mut scope = DashScope::default();
    let mut seen_mpd = false;
    loop {
        match reader.read_event().map_err(|e| ListingError::Dash(short(&e.to_string())))? {
            Event::Start(e) => {
                seen_mpd |= e.local_name().as_ref() == b"MPD";
                dash_element(&e, false, &mut listing, &mut scope);
            }
            Event::Empty(e) => {
                seen_mpd |= e.local_name().as_ref() == b"MPD";
                dash_element(&e, true, &mut listing, &mut scope);
            }
            Event::End(end) => match end.local_name().as_ref() {
                b"Representation" => finish_representation(&mut listing, &mut scope),
                b"AdaptationSet" => scope.adaptation = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        if scope.too_long {
            return Err(ListingError::Dash(format!(
                "lists more than {MAX_ENTRIES} segments, {MAX_LISTED_BYTES} bytes or a URI of {MAX_URI}"
            )));
        }
    }
    if !seen_mpd {
        return Err(ListingError::Dash("no MPD element".into()));
    }
    Ok(listing)
}

/// One opening (or empty) element of an MPD, read into the listing or the template scope.
fn dash_element(e: &quick_xml::events::BytesStart<'_>, empty: bool, listing: &mut Listing, scope: &mut DashScope) {
    match e.local_name().as_ref() {
        b"MPD" => {
            listing.shape.ended = attr(e, b"type").is_some_and(|t| t == "static");
            listing.shape.epoch = attr(e, b"availabilityStartTime");
        }
        b"AdaptationSet" => scope.adaptation = None,
        b"Representation" => {
            let id = attr(e, b"id").unwrap_or_default();
            let bandwidth = attr(e, b"bandwidth").unwrap_or_default();
            scope.representation = Some((id, bandwidth));
            scope.representation_template = None;
            scope.in_representation = true;
            if empty {
                finish_representation(listing, scope);
            }
        }
        b"SegmentTemplate" => {
            let template = template_of(e, scope.adaptation.as_ref());
            if scope.in_representation {
                scope.representation_template = Some(template);
            } else {
                scope.adaptation = Some(template);
            }
        }
        b"S" => {
            let target = if scope.in_representation {
                scope.representation_template.as_mut()
            } else {
                scope.adaptation.as_mut()
            };
            if let Some(t) = target {
                let num = |name: &[u8]| attr(e, name).and_then(|v| v.parse::<u64>().ok());
                let r = attr(e, b"r").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                t.timeline.push((num(b"t"), num(b"d").unwrap_or(0), r));
            }
        }
        _ => {}
    }
}

/// Expands the template in scope for the representation just read into its initialization and media segments.
fn finish_representation(listing: &mut Listing, scope: &mut DashScope) {
    scope.in_representation = false;
    let Some((id, bandwidth)) = scope.representation.take() else { return };
    let Some(template) = scope.representation_template.take().or_else(|| scope.adaptation.clone()) else { return };
    let fill = |pattern: &str, number: Option<u64>, time: Option<u64>| expand(pattern, &id, &bandwidth, number, time);
    // Lists an entry (`None`: its URI is too long); false once the listing is too long.
    let mut list = |uri: Option<String>, seq: Option<u64>| {
        let len = uri.as_ref().map_or(usize::MAX, String::len);
        scope.listed_bytes = scope.listed_bytes.saturating_add(len);
        scope.too_long |= listing.entries.len() >= MAX_ENTRIES || scope.listed_bytes > MAX_LISTED_BYTES;
        match uri {
            Some(uri) if !scope.too_long => listing.entries.push(Entry { uri, seq }),
            _ => scope.too_long = true,
        }
        !scope.too_long
    };
    if let Some(init) = &template.initialization {
        list(fill(init, None, None), None);
    }
    let Some(media) = &template.media else { return };
    let by_time = media.contains("$Time");
    let (mut t, mut number, mut total, mut longest) = (0u64, template.start_number, 0u64, 0u64);
    for &(start, d, r) in &template.timeline {
        if let Some(start) = start {
            t = start;
        }
        // A negative repeat count means "until the next S or the period end": one segment is what is known.
        for _ in 0..=r.clamp(0, 10_000) {
            let seq = if by_time { t } else { number };
            if !list(fill(media, Some(number), Some(t)), Some(seq)) {
                return;
            }
            // Saturating: times and numbers near 2^64 are nonsense, not a reason to panic.
            t = t.saturating_add(d);
            number = number.saturating_add(1);
            total = total.saturating_add(d);
            longest = longest.max(d);
        }
    }
    let scale = template.timescale as f64;
    listing.shape.window = listing.shape.window.max(secs(total as f64 / scale));
    listing.shape.target = listing.shape.target.max(secs(longest as f64 / scale));
}

/// Fills a DASH template (`$RepresentationID$`, `$Bandwidth$`, `$Number$`, `$Time$`, `$$`, with an optional
/// `%0Nd` width); `None` when the result would be longer than [`MAX_URI`].
fn expand(pattern: &str, id: &str, bandwidth: &str, number: Option<u64>, time: Option<u64>) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('$') else {
            out.push_str(&rest[start..]);
            return (out.len() <= MAX_URI).then_some(out);
        };
        let token = &after[..end];
        let (name, width) = match token.split_once('%') {
            Some((n, f)) => {
                (n, f.trim_start_matches('0').trim_end_matches('d').parse::<usize>().ok().map(|w| w.min(MAX_WIDTH)))
            }
            None => (token, None),
        };
        let value = match name {
            "" => Some("$".to_owned()),
            "RepresentationID" => Some(id.to_owned()),
            "Bandwidth" => Some(bandwidth.to_owned()),
            "Number" => number.map(|n| n.to_string()),
            "Time" => time.map(|t| t.to_string()),
            _ => None,
        };
        match value {
            Some(v) => {
                let pad = width.unwrap_or(0).saturating_sub(v.len());
                out.extend(std::iter::repeat_n('0', pad));
                out.push_str(&v);
            }
            None => {
                out.push('$');
                out.push_str(token);
                out.push('$');
            }
        }
        if out.len() > MAX_URI {
            return None;
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out.len() <= MAX_URI).then_some(out)
}

/// Resolves a playlist entry against the playlist's path: `(host, path, query)` of the object a viewer fetches.
/// Absolute URLs keep their own host; `..` and `.` segments are folded.
pub fn resolve<'a>(
    host: &'a str,
    playlist_path: &str,
    uri: &'a str,
) -> Option<(std::borrow::Cow<'a, str>, String, Option<&'a str>)> {
    let (uri, query) = match uri.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (uri, None),
    };
    let uri = uri.split('#').next().unwrap_or(uri);
    let (host, path): (std::borrow::Cow<'a, str>, String) =
        if let Some(rest) = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://")) {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            (authority.into(), format!("/{path}"))
        } else if uri.starts_with("//") {
            return None;
        } else if uri.starts_with('/') {
            (host.into(), uri.to_owned())
        } else {
            let dir = playlist_path.rsplit_once('/').map_or("", |(d, _)| d);
            (host.into(), format!("{dir}/{uri}"))
        };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/').skip(1) {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some((host, format!("/{}", parts.join("/")), query))
}

#[cfg(test)]
mod tests;
