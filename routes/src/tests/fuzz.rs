//! The fuzz set: every parser of this crate that reads text from outside — the route loader (native documents),
//! the Traefik reader (documents and router rules), the migration report (and the kubectl dump it reads) and the
//! path normalizer — over arbitrary bytes, and over valid examples with a few bytes or lines inserted, removed or
//! replaced (which gets past the YAML reader into the schema, the validators and the translation).
//!
//! Each property: the call returns, a value or errors, without panicking and within [`LIMIT`] ([`within`]), and
//! every error it gives is located inside the input. The calls run on threads with the default stack, as the
//! edge's and control's workers are, so unbounded recursion fails here too. `routes/fuzz` has libFuzzer targets
//! for longer runs; these run in every `cargo test` (`PROPTEST_CASES=20000` for a longer run).
//!
//! The generators are the test kit's (`dime_testkit::fuzz`, which the proxy's properties use), copied: this
//! crate does not depend on the test kit.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use super::within;
use crate::path::{normalize, PathError, PathOptions};
use crate::report::{configmap_fragments, migration_report, Verdict};
use crate::{compile, parse, rule, Fragment, RouteErrors};

/// How long one parser call may take on one input, in a debug build on a busy machine. A typical input takes
/// well under 10 ms.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Cases per property: 512, so that each runs in a few seconds in a debug build; `PROPTEST_CASES` sets more for a
/// longer run. A hang costs [`LIMIT`] per shrink step and leaves its thread spinning until the run ends, hence the
/// few shrink steps.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 512 };
    ProptestConfig { cases, max_shrink_iters: 64, ..default }
}

/// A native document using every section of the schema; it compiles.
const NATIVE: &str = r#"version: 1
http:
  routes:
    - name: video-hls
      match:
        - hosts: [video.example.com]
          paths: [{ prefix: /hls/ }]
      upstream: video
      cache:
        default_ttl: 10s
        max_ttl: 1h
        stale_if_error: 60s
        playlist_ttl: 1s
        segment_ttl: 1h
        query_keys: [v]
      signed_urls: { keys: [k1, k2], bind_client_ip: true }
      tier: { shield: [edge-a] }
    - name: site
      match:
        - hosts: [www.example.com, "*.example.com"]
          paths: [{ exact: /ping }, { prefix: /app/ }]
      upstream: secure
      priority: 1000
      https: { redirect: true, hsts_max_age: 8760h, hsts_include_subdomains: false }
  upstreams:
    video:
      servers:
        - { url: "http://10.0.0.1:8080", weight: 3 }
        - url: http://video.cluster.example.com
      health_check: { path: /healthz, interval: 2s, timeout: 1s, hostname: video.internal }
      pass_host_header: false
      connect_timeout: 500ms
      read_timeout: 30s
      dns_refresh: 30s
    secure:
      servers: [{ url: "https://origin.example.com:8443" }]
      tls: { server_name: origin.example.com, insecure_skip_verify: false }
tcp:
  routes:
    - name: rtmp
      entrypoints: [rtmp]
      upstream: rtmp-origin
      allow: [10.0.0.0/8, "::1"]
      max_connections: 100
      idle_timeout: 5m
      proxy_protocol: v1
  upstreams:
    rtmp-origin:
      servers:
        - address: nginx.cluster.example.com:1935
      health_check: { interval: 5s, timeout: 2s }
      connect_timeout: 2s
tls:
  certificates:
    - cert_file: /etc/dime/tls/video.crt
      key_file: /etc/dime/tls/video.key
"#;

/// A Traefik configuration using the whole subset Dime reads; it compiles.
const TRAEFIK: &str = r#"http:
  routers:
    video:
      rule: Host(`video.example.com`) && (PathPrefix(`/hls/`) || Path(`/live.mpd`))
      service: video
      middlewares: [cache]
      priority: 10
    www:
      rule: "Host(`www.example.com`) || Host(`example.com`)"
      service: video
      tls: {}
  middlewares:
    cache:
      plugin:
        plugin-simplecache: { path: /tmp, maxExpiry: 300 }
  services:
    video:
      loadBalancer:
        servers:
          - url: http://video.cluster.example.com:8080
            weight: 2
          - url: http://10.0.0.2:8080
        passHostHeader: true
        healthCheck: { path: /healthz, interval: 5s, timeout: 2s }
tcp:
  routers:
    rtmp:
      rule: HostSNI(`*`)
      entryPoints: [rtmp]
      service: rtmp
  services:
    rtmp:
      loadBalancer:
        servers:
          - address: nginx.cluster.example.com:1935
tls:
  certificates:
    - certFile: /etc/traefik/video.crt
      keyFile: /etc/traefik/video.key
      stores: [default]
"#;

/// Route documents: the two above, the repository's examples (valid, and with mistakes of every kind).
const DOCUMENTS: [&str; 7] = [
    NATIVE,
    TRAEFIK,
    include_str!("../../../examples/routes.yaml"),
    include_str!("../../../examples/invalid/routes-mistakes.yaml"),
    include_str!("../../../examples/traefik/migration-unsupported.yaml"),
    include_str!("../../../examples/traefik/docs-shapes.yaml"),
    include_str!("../../../examples/traefik/wrong-types.yaml"),
];

/// A `kubectl get configmap -o yaml` dump of two fragments, as `check --report` reads it.
const DUMP: &str = r#"apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: { name: video-config, namespace: media, labels: { traefik-config-fragment: "true" } }
    data:
      video.yaml: |
        http:
          routers:
            video: { rule: "Host(`v.test`)", service: shared }
  - apiVersion: v1
    kind: ConfigMap
    metadata: { name: shared, namespace: media }
    data:
      s.yaml: "http:\n  services:\n    shared: { loadBalancer: { servers: [{ url: \"http://127.0.0.1:1\" }] } }\n"
"#;

/// Pieces that mean something to YAML, to the schema or to a Traefik rule, inserted by the mutations.
const YAML_PIECES: [&str; 48] = [
    "http:\n",
    "tcp:\n",
    "tls:\n",
    "version: 1\n",
    "  routers:\n",
    "  services:\n",
    "  routes:\n",
    "    r: { rule: \"Host(`a.test`)\", service: s }\n",
    "    s: { loadBalancer: { servers: [{ url: \"http://127.0.0.1:1\" }] } }\n",
    "    - name: a\n",
    "      upstream: o\n",
    "url: \"http://x/",
    "'",
    "\"",
    "{",
    "[",
    "}",
    "]",
    "---\n",
    "--- ",
    "...\n",
    "- ",
    ": ",
    "? ",
    "&a ",
    "*a ",
    "<<: *a\n",
    "!!binary ",
    "!custom ",
    "|\n",
    ">-\n",
    "%YAML 1.2\n",
    "#",
    "\t",
    "\r",
    "\n",
    "  ",
    "~",
    "null",
    "-1",
    "18446744073709551616",
    "1e999",
    "99999999999999999999h",
    "0.0000001ms",
    "Host(`",
    "`) && (",
    ") || PathPrefix(`/",
    "HostRegexp(`.+`)",
];

/// Pieces of router rules, for the rule parser's own mutations.
const RULE_PIECES: [&str; 16] = [
    "Host(`a.test`)",
    "PathPrefix(`/a/`)",
    "Path(`/x`)",
    "HostSNI(`*`)",
    " && ",
    " || ",
    "(",
    ")",
    "!",
    "`",
    "``",
    ",",
    "\\`",
    "Host(`*.a.test`)",
    "HostRegexp(`^.+$`)",
    " ",
];

/// Router rules: the first two read, the others use what Dime does not have.
const RULES: [&str; 4] = [
    "Host(`video.example.com`) && (PathPrefix(`/hls/`) || Path(`/live.mpd`))",
    "(Host(`a.test`) || Host(`b.test`)) && (PathPrefix(`/x`) || PathPrefix(`/y`))",
    "Host(`a.test`,`b.test`) && PathPrefix(`/p`) || Path(`/q`)",
    "Host(`a.test`) && Method(`GET`) && !ClientIP(`10.0.0.0/8`)",
];

/// Request paths with dots, escapes and slashes of every kind.
const PATHS: [&str; 6] = [
    "/hls/stream-1/index.m3u8",
    "/public/%2e%2E/premium//x",
    "/live/s1/..%2Fs2/x.ts?dime_exp=1",
    "/a/..;/b/./c/%41%7e%252e",
    "/%E2%82%AC/%c3%a9/x",
    "//a///b/../../../c",
];

const PATH_PIECES: [&str; 16] =
    ["/", "//", ".", "..", "%2e", "%2F", "%5c", "%00", "%", "%g", "\\", ";", " ", "\u{e9}", "\u{7f}", "%25"];

/// One of `seeds` with one edit (half the cases) or up to six, some of which insert one of `pieces` (what means
/// something to the format); read as the parsers read text (invalid UTF-8 replaced).
fn mutated(seeds: &'static [&'static str], pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    let edits = prop_oneof![vec(edit(pieces), 1..2), vec(edit(pieces), 2..7)];
    (select(seeds), edits).prop_map(|(seed, edits)| String::from_utf8_lossy(&apply(seed, &edits)).into_owned())
}

/// One change to a valid example.
#[derive(Debug, Clone)]
enum Edit {
    InsertBytes(Index, Vec<u8>),
    InsertPiece(Index, &'static str),
    Remove(Index, usize),
    Replace(Index, u8),
    /// Copies of a line (the first index), up to 64, before another (the second).
    CopyLine(Index, Index, usize),
    RemoveLine(Index),
}

fn edit(pieces: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Edit::InsertBytes(at, b)),
        3 => (any::<Index>(), select(pieces)).prop_map(|(at, p)| Edit::InsertPiece(at, p)),
        1 => (any::<Index>(), 1usize..24).prop_map(|(at, n)| Edit::Remove(at, n)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Replace(at, b)),
        1 => (any::<Index>(), any::<Index>(), prop_oneof![3 => Just(1usize), 1 => 2usize..65])
            .prop_map(|(from, to, n)| Edit::CopyLine(from, to, n)),
        1 => any::<Index>().prop_map(Edit::RemoveLine),
    ]
}

/// Where line `n` starts, and where it ends after its `\n` (or at the end).
fn line_span(text: &[u8], n: &Index) -> (usize, usize) {
    let breaks = text.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1);
    let starts: Vec<usize> = std::iter::once(0).chain(breaks).collect();
    let start = starts[n.index(starts.len())];
    let end = text[start..].iter().position(|b| *b == b'\n').map_or(text.len(), |i| start + i + 1);
    (start, end)
}

fn apply(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut text = seed.as_bytes().to_vec();
    for e in edits {
        let place = |at: &Index, text: &Vec<u8>| at.index(text.len() + 1);
        match e {
            Edit::InsertBytes(at, bytes) => {
                let at = place(at, &text);
                text.splice(at..at, bytes.iter().copied());
            }
            Edit::InsertPiece(at, piece) => {
                let at = place(at, &text);
                text.splice(at..at, piece.bytes());
            }
            Edit::Remove(at, n) => {
                let at = place(at, &text);
                text.drain(at..(at + n).min(text.len()));
            }
            Edit::Replace(at, byte) => {
                if !text.is_empty() {
                    let at = at.index(text.len());
                    text[at] = *byte;
                }
            }
            Edit::CopyLine(from, to, n) => {
                let (start, end) = line_span(&text, from);
                let line = text[start..end].repeat(*n);
                let (to, _) = line_span(&text, to);
                text.splice(to..to, line);
            }
            Edit::RemoveLine(n) => {
                let (start, end) = line_span(&text, n);
                text.drain(start..end);
            }
        }
    }
    text
}

/// Arbitrary bytes, read as the parsers read text (invalid UTF-8 replaced).
fn text() -> impl Strategy<Value = String> {
    vec(any::<u8>(), 0..4096).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Pieces put together from nothing: documents made of YAML and schema fragments.
fn pieces() -> impl Strategy<Value = String> {
    vec(select(&YAML_PIECES[..]), 0..40).prop_map(|p| p.concat())
}

/// Any route text: arbitrary bytes or characters, mutated from a valid or invalid document, or put together from
/// pieces.
fn route_texts() -> impl Strategy<Value = String> {
    prop_oneof![1 => text(), 1 => ".{0,400}", 4 => mutated(&DOCUMENTS, &YAML_PIECES), 2 => pieces()]
}

/// The last line of `text`, as YAML counts lines: it breaks them at `\n`, `\r\n` and a lone `\r` (and, as YAML
/// 1.1 does, at NEL, LS and PS); the line after the last break is a line, empty when the text ends with one.
fn last_line(text: &str) -> usize {
    let breaks = text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count();
    breaks + 1
}

/// Every error names one of `fragments` and, where it has a line, a line of that fragment.
fn errors_are_located(fragments: &[Fragment<'_>], errors: &RouteErrors) -> Result<(), TestCaseError> {
    for e in errors.iter() {
        let Some(f) = fragments.iter().find(|f| f.source == e.location.source) else {
            return Err(TestCaseError::fail(format!("{e}: names no fragment")));
        };
        if let Some(line) = e.location.line {
            prop_assert!((1..=last_line(f.text)).contains(&line), "{e}: line {line} is outside {:?}", f.text);
        }
    }
    Ok(())
}

/// Compiles `fragments` within the time bound, checks where its errors are, and that a table it gives
/// serializes to a document that compiles to the same version.
fn compiles_or_locates(fragments: Vec<(String, String)>) -> Result<(), TestCaseError> {
    let input = format!("{fragments:?}");
    let owned = fragments.clone();
    let result = within(LIMIT, &input, move || {
        let refs: Vec<Fragment<'_>> = owned.iter().map(|(s, t)| Fragment { source: s, text: t }).collect();
        compile(&refs).map(|table| (table.version().to_owned(), table.to_json()))
    });
    let refs: Vec<Fragment<'_>> = fragments.iter().map(|(s, t)| Fragment { source: s, text: t }).collect();
    match result {
        Ok((version, json)) => {
            let again = within(LIMIT, &json, {
                let json = json.clone();
                move || parse("again.json", &json).map(|t| t.version().to_owned())
            });
            prop_assert_eq!(again, Ok(version), "a compiled table re-reads as itself: {}", json);
            Ok(())
        }
        Err(errors) => errors_are_located(&refs, &errors),
    }
}

/// The report of `fragments`, within the time bound: every entry is of one of them, the counts add up, the text
/// renders, and every note's line is a line of its fragment.
fn reports(fragments: Vec<(String, String)>) -> Result<(), TestCaseError> {
    let input = format!("{fragments:?}");
    let owned = fragments.clone();
    let (report, text) = within(LIMIT, &input, move || {
        let refs: Vec<Fragment<'_>> = owned.iter().map(|(s, t)| Fragment { source: s, text: t }).collect();
        let report = migration_report(&refs);
        let text = report.to_text();
        (report, text)
    });
    let c = report.counts();
    prop_assert_eq!(c.as_is + c.with_change + c.not_supported + c.to_fix, report.entries.len());
    prop_assert!(text.ends_with(" to fix\n"), "{}", text);
    for entry in &report.entries {
        let Some((_, fragment)) = fragments.iter().find(|(s, _)| *s == entry.source) else {
            return Err(TestCaseError::fail(format!("{entry:?}: names no fragment")));
        };
        let notes = match &entry.verdict {
            Verdict::AsIs => &[][..],
            Verdict::WithChange(n) | Verdict::NotSupported(n) | Verdict::ToFix(n) => &n[..],
        };
        for note in notes {
            let line = note.strip_prefix("line ").and_then(|r| r.split_once(':')).map(|(n, _)| n.parse::<usize>());
            if let Some(line) = line {
                let line = line.map_err(|e| TestCaseError::fail(format!("{note}: {e}")))?;
                prop_assert!((1..=last_line(fragment)).contains(&line), "{}: outside {:?}", note, fragment);
            }
        }
    }
    Ok(())
}

/// Where a refused path's error points, in the path as written: at what it names.
fn path_error_is_located(raw: &str, e: &PathError) -> Result<(), TestCaseError> {
    let rest = |at: usize| raw.get(at..).unwrap_or_default();
    let starts_ci = |at: usize, s: &str| rest(at).get(..s.len()).is_some_and(|r| r.eq_ignore_ascii_case(s));
    let pointed = match e {
        PathError::NotAbsolute => !raw.starts_with('/'),
        PathError::BadPercent { at, sequence } => rest(*at).starts_with(sequence.as_str()) && sequence.starts_with('%'),
        PathError::EncodedSlash { at, sequence } | PathError::EncodedBackslash { at, sequence } => {
            rest(*at).starts_with(sequence.as_str())
        }
        PathError::EncodedNul { at } => starts_ci(*at, "%00"),
        PathError::Backslash { at } => rest(*at).starts_with('\\'),
        PathError::Control { at, byte } => raw.as_bytes().get(*at) == Some(byte),
        PathError::NonAscii { at, ch } => rest(*at).starts_with(*ch),
        PathError::DotParam { at, segment } | PathError::EncodedDotSegment { at, segment } => {
            rest(*at).starts_with(segment.as_str())
        }
    };
    prop_assert!(pointed, "{} does not point into {:?}", e, raw);
    Ok(())
}

/// Paths: arbitrary, arbitrary after a `/`, request paths with a few edits, or made of the pieces that matter.
fn path_texts() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        text().prop_map(|b| format!("/{b}")),
        mutated(&PATHS, &PATH_PIECES),
        vec(select(&PATH_PIECES[..]), 0..32).prop_map(|p| format!("/{}", p.concat())),
    ]
}

/// Router rules: arbitrary, rules with a few edits, or made of rule pieces.
fn rule_texts() -> impl Strategy<Value = String> {
    let pieces = vec(select(&RULE_PIECES[..]), 0..48).prop_map(|p| p.concat());
    prop_oneof![1 => text(), 3 => mutated(&RULES, &RULE_PIECES), 1 => pieces]
}

proptest! {
    #![proptest_config(config())]

    /// The route loader and the Traefik reader: any text compiles or gives located errors, in bounded time.
    #[test]
    fn any_route_text_compiles_or_gives_located_errors(text in route_texts()) {
        compiles_or_locates(vec![("fuzz.yaml".to_owned(), text)])?;
    }

    /// Fragments compiled together, as control compiles a namespace's ConfigMaps: errors name the right one.
    #[test]
    fn fragments_compile_together_or_give_errors_located_in_their_own_fragment(
        a in mutated(&DOCUMENTS, &YAML_PIECES),
        b in mutated(&DOCUMENTS, &YAML_PIECES),
    ) {
        compiles_or_locates(vec![("ns/a/a.yaml".to_owned(), a), ("ns/b/b.yaml".to_owned(), b)])?;
    }

    /// Traefik router rules, read on their own: an error's offset is a place in the rule, and what reads
    /// expands to a bounded number of alternatives.
    #[test]
    fn any_rule_parses_or_gives_an_offset_inside_it(text in rule_texts()) {
        let owned = text.clone();
        let result = within(LIMIT, &text, move || {
            rule::parse(&owned).map(|expr| rule::alternatives(&expr).map(|alts| alts.len()).map_err(|e| e.0))
        });
        match result {
            Ok(Ok(n)) => prop_assert!(n <= rule::MAX_ALTERNATIVES),
            Ok(Err(_)) => {}
            Err(e) => prop_assert!(e.offset <= text.len() && text.is_char_boundary(e.offset), "{e:?} in {text:?}"),
        }
    }

    /// `check --report`: any text gives a report whose notes point into it.
    #[test]
    fn any_text_gives_a_report_with_located_notes(text in route_texts()) {
        reports(vec![("t.yaml".to_owned(), text)])?;
    }

    /// `check --report` on a kubectl dump: any text is a dump or not; the fragments of one give a report.
    #[test]
    fn any_kubectl_dump_gives_fragments_and_a_report(
        text in prop_oneof![1 => text(), 3 => mutated(&[DUMP], &YAML_PIECES)],
    ) {
        let owned = text.clone();
        if let Some(fragments) = within(LIMIT, &text, move || configmap_fragments(&owned)) {
            reports(fragments)?;
        }
    }

    /// The path normalizer on long arbitrary input: a refusal points at what it refuses.
    #[test]
    fn any_path_normalizes_or_is_refused_where_it_goes_wrong(
        raw in path_texts(),
        merge_slashes in any::<bool>(),
        allow_encoded_slash in any::<bool>(),
    ) {
        let options = PathOptions { merge_slashes, allow_encoded_slash };
        let owned = raw.clone();
        let result = within(LIMIT, &raw, move || normalize(&owned, options).map(|p| p.as_str().to_owned()));
        match result {
            Ok(path) => prop_assert!(path.starts_with('/') && path.len() <= raw.len(), "{raw:?} gave {path:?}"),
            Err(e) => path_error_is_located(&raw, &e)?,
        }
    }
}

/// The hang this set was made for: serde_yaml's multi-document iterator gives the same error forever after a
/// syntax error, and `check --report` looped on it.
#[test]
fn an_unterminated_quoted_string_gives_its_yaml_error_not_a_hang() {
    let text = "http:\n  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: \"http://x/\n";
    let report = within(LIMIT, text, move || migration_report(&[Fragment { source: "t.yaml", text }]));
    let [entry] = &report.entries[..] else { panic!("one entry: {report:#?}") };
    assert_eq!(entry.kind, "document");
    let Verdict::ToFix(notes) = &entry.verdict else { panic!("to fix: {report:#?}") };
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].starts_with("line 6: found unexpected end of stream") && notes[0].contains("quoted scalar"));
}

/// The seeds are what they say: the valid ones compile, so the mutations start from documents that read.
#[test]
fn the_valid_seeds_compile() {
    for (name, text) in [("native", NATIVE), ("traefik", TRAEFIK), ("example", DOCUMENTS[2])] {
        if let Err(e) = parse(name, text) {
            panic!("{name}: {e}");
        }
    }
    let fragments = configmap_fragments(DUMP).expect("a dump");
    let refs: Vec<Fragment<'_>> = fragments.iter().map(|(s, t)| Fragment { source: s, text: t }).collect();
    assert_eq!(compile(&refs).map(|t| t.routes().len()).map_err(|e| e.to_string()), Ok(1));
    for rule in &RULES[..2] {
        assert!(rule::parse(rule).is_ok(), "{rule}");
    }
}
