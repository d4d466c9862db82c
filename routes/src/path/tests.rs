use proptest::prelude::*;

use super::*;

const DEFAULT: PathOptions = PathOptions { merge_slashes: true, allow_encoded_slash: false };
const KEEP_SLASHES: PathOptions = PathOptions { merge_slashes: false, allow_encoded_slash: false };
const ALLOW_SLASH: PathOptions = PathOptions { merge_slashes: true, allow_encoded_slash: true };

fn ok(path: &str) -> Result<String, PathError> {
    Ok(path.to_owned())
}

fn seq(s: &str) -> String {
    s.to_owned()
}

/// Every rule, by the input that shows it. The same table is in docs/edge.md ("How the edge reads a path").
#[rustfmt::skip]
fn table() -> Vec<(&'static str, PathOptions, Result<String, PathError>)> {
    use PathError::*;
    vec![
        // Normal paths: unchanged.
        ("/", DEFAULT, ok("/")),
        ("/live/s1/index.m3u8", DEFAULT, ok("/live/s1/index.m3u8")),
        ("/a/b/", DEFAULT, ok("/a/b/")),
        ("/.well-known/acme-challenge/t0k", DEFAULT, ok("/.well-known/acme-challenge/t0k")),
        ("/a/.../b/..a/.b", DEFAULT, ok("/a/.../b/..a/.b")),
        // Dot segments, raw, encoded and mixed-case: removed; `..` at the root stays at the root.
        ("/public/../premium/x", DEFAULT, ok("/premium/x")),
        ("/public/%2e%2e/premium/x", DEFAULT, ok("/premium/x")),
        ("/public/%2E%2e/premium/x", DEFAULT, ok("/premium/x")),
        ("/public/%2E./premium/x", DEFAULT, ok("/premium/x")),
        ("/public/.%2e/premium/x", DEFAULT, ok("/premium/x")),
        ("/live/s1/%2E%2e/s2/index.m3u8", DEFAULT, ok("/live/s2/index.m3u8")),
        ("/a/./b", DEFAULT, ok("/a/b")),
        ("/a/%2e/b", DEFAULT, ok("/a/b")),
        ("/./a", DEFAULT, ok("/a")),
        ("/../a", DEFAULT, ok("/a")),
        ("/../../a/%2e%2e/%2e%2e/b", DEFAULT, ok("/b")),
        ("/..", DEFAULT, ok("/")),
        ("/.", DEFAULT, ok("/")),
        ("/a/..", DEFAULT, ok("/")),
        ("/a/b/..", DEFAULT, ok("/a/")),
        ("/a/b/.", DEFAULT, ok("/a/b/")),
        ("/a/b/../", DEFAULT, ok("/a/")),
        // Repeated slashes: merged after dot segments are removed (so `..` takes out an empty segment first).
        ("//a///b", DEFAULT, ok("/a/b")),
        ("/a//", DEFAULT, ok("/a/")),
        ("//", DEFAULT, ok("/")),
        ("/a//../b", DEFAULT, ok("/a/b")),
        ("//a///b", KEEP_SLASHES, ok("//a///b")),
        ("/a//../b", KEEP_SLASHES, ok("/a/b")),
        ("/a//b/..//", KEEP_SLASHES, ok("/a///")),
        // Percent-encoding: unreserved characters decoded, the rest kept with uppercase hex digits.
        ("/caf%7Ee", DEFAULT, ok("/caf~e")),
        ("/%41%62%63/%2D%5f%2E%7e", DEFAULT, ok("/Abc/-_.~")),
        ("/a%3Fb", DEFAULT, ok("/a%3Fb")),
        ("/a%3fb", DEFAULT, ok("/a%3Fb")),
        ("/a%20b", DEFAULT, ok("/a%20b")),
        ("/%c3%a9t%C3%A9", DEFAULT, ok("/%C3%A9t%C3%A9")),
        ("/a%25b", DEFAULT, ok("/a%25b")),
        // Double-encoded: decoded once only. `%25` is the escape; the `2e` after it is text, kept as written.
        ("/%252e%252e/x", DEFAULT, ok("/%252e%252e/x")),
        ("/a/%252E%252E/b", DEFAULT, ok("/a/%252E%252E/b")),
        // `;` is an ordinary character...
        ("/a;v=1/b;jsessionid=x", DEFAULT, ok("/a;v=1/b;jsessionid=x")),
        ("/a/...;/b", DEFAULT, ok("/a/...;/b")),
        // ... but a dot segment with parameters is refused.
        ("/a/..;/b", DEFAULT, Err(DotParam { at: 3, segment: seq("..;") })),
        ("/a/..;x=1/b", DEFAULT, Err(DotParam { at: 3, segment: seq("..;x=1") })),
        ("/a/.;/b", DEFAULT, Err(DotParam { at: 3, segment: seq(".;") })),
        ("/a/%2e%2E;/b", DEFAULT, Err(DotParam { at: 3, segment: seq("%2e%2E;") })),
        ("/a/..%3b/b", DEFAULT, Err(DotParam { at: 3, segment: seq("..%3b") })),
        // Encoded slash and backslash: refused, or kept encoded (not a separator) when allowed.
        ("/a%2fb", DEFAULT, Err(EncodedSlash { at: 2, sequence: seq("%2f") })),
        ("/live/s1/..%2fs2/index.m3u8", DEFAULT, Err(EncodedSlash { at: 11, sequence: seq("%2f") })),
        ("/a%5Cb", DEFAULT, Err(EncodedBackslash { at: 2, sequence: seq("%5C") })),
        ("/a%2fb/%5cc", ALLOW_SLASH, ok("/a%2Fb/%5Cc")),
        ("/a%2F..b/c", ALLOW_SLASH, ok("/a%2F..b/c")),
        ("/a%2F../b", ALLOW_SLASH, Err(EncodedDotSegment { at: 1, segment: seq("a%2F..") })),
        ("/live/s1/..%2fs2/index.m3u8", ALLOW_SLASH, Err(EncodedDotSegment { at: 9, segment: seq("..%2fs2") })),
        ("/a/b%2F%2e%2e", ALLOW_SLASH, Err(EncodedDotSegment { at: 3, segment: seq("b%2F%2e%2e") })),
        ("/a/.%5C..;", ALLOW_SLASH, Err(EncodedDotSegment { at: 3, segment: seq(".%5C..;") })),
        // NUL, bad escapes, raw backslash, controls, spaces and non-ASCII: refused, wherever they are.
        ("/a%00b", DEFAULT, Err(EncodedNul { at: 2 })),
        ("/a%00b", ALLOW_SLASH, Err(EncodedNul { at: 2 })),
        ("/a%", DEFAULT, Err(BadPercent { at: 2, sequence: seq("%") })),
        ("/a%2", DEFAULT, Err(BadPercent { at: 2, sequence: seq("%2") })),
        ("/a%zz/..", DEFAULT, Err(BadPercent { at: 2, sequence: seq("%zz") })),
        ("/a%2g", DEFAULT, Err(BadPercent { at: 2, sequence: seq("%2g") })),
        ("/%\u{e9}", DEFAULT, Err(BadPercent { at: 1, sequence: seq("%\u{e9}") })),
        ("/a\\..\\b", DEFAULT, Err(Backslash { at: 2 })),
        ("/a b", DEFAULT, Err(Control { at: 2, byte: b' ' })),
        ("/a\tb", DEFAULT, Err(Control { at: 2, byte: b'\t' })),
        ("/a\u{7f}", DEFAULT, Err(Control { at: 2, byte: 0x7F })),
        ("/a\r\nX: y", DEFAULT, Err(Control { at: 2, byte: b'\r' })),
        ("/caf\u{e9}", DEFAULT, Err(NonAscii { at: 4, ch: '\u{e9}' })),
        // Not a path: the caller's business.
        ("", DEFAULT, Err(NotAbsolute)),
        ("*", DEFAULT, Err(NotAbsolute)),
        ("a/b", DEFAULT, Err(NotAbsolute)),
        ("http://x/a", DEFAULT, Err(NotAbsolute)),
    ]
}

#[test]
fn the_table_of_inputs_and_outcomes() {
    let table = table();
    assert!(table.len() >= 40);
    for (raw, options, want) in table {
        let got = normalize(raw, options).map(|p| p.as_str().to_owned());
        assert_eq!(got, want, "{raw:?} with {options:?}");
    }
}

#[test]
fn a_path_already_normal_is_borrowed() {
    for raw in ["/live/s1/index.m3u8", "/", "/.well-known/x", "/a%3Fb", "/a;b=1/c"] {
        assert!(normalize(raw, DEFAULT).unwrap().is_unchanged(), "{raw}");
    }
    for raw in ["/a/../b", "/caf%7Ee", "//a", "/a%3fb"] {
        assert!(!normalize(raw, DEFAULT).unwrap().is_unchanged(), "{raw}");
    }
}

#[test]
fn errors_name_the_sequence_and_where_it_is() {
    let message = |raw: &str| normalize(raw, DEFAULT).unwrap_err().to_string();
    assert_eq!(
        message("/videos/ab/%2F"),
        "encoded slash `%2F` at byte 11: refused (a route may allow it with allow_encoded_slash)"
    );
    assert_eq!(
        message("/caf\u{e9}"),
        "non-ASCII character `\u{e9}` (U+00E9) at byte 4: refused; percent-encode its UTF-8 bytes (%C3%A9)"
    );
    assert_eq!(message("/a b"), "space (0x20) at byte 2: refused; encode it as `%20`");
    assert_eq!(message("/a\u{1}"), "control character (0x01) at byte 2: refused; encode it as `%01`");
    assert_eq!(
        message("/a/..;/b"),
        "segment `..;` at byte 3: a dot segment with `;` parameters, refused (Tomcat-style origins read `..;` as `..`)"
    );
}

// ---- properties ----

/// RFC 3986 §5.2.4 as written: an input and an output buffer.
fn rfc_remove_dot_segments(path: &str) -> String {
    fn drop_last(output: &mut String) {
        let cut = output.rfind('/').unwrap_or(0);
        output.truncate(cut);
    }
    let (mut input, mut output) = (path.to_owned(), String::new());
    while !input.is_empty() {
        if input.starts_with("../") {
            input.drain(..3);
        } else if input.starts_with("./") {
            input.drain(..2);
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".to_owned();
        } else if input.starts_with("/../") {
            input.replace_range(..4, "/");
            drop_last(&mut output);
        } else if input == "/.." {
            input = "/".to_owned();
            drop_last(&mut output);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let from = usize::from(input.starts_with('/'));
            let end = input[from..].find('/').map_or(input.len(), |i| i + from);
            output.extend(input.drain(..end));
        }
    }
    output
}

/// Rule 2 on its own: unreserved escapes decoded, the others uppercased; `None` for what is refused.
fn reference_decode(raw: &str, options: PathOptions) -> Option<String> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let hex: String = chars.by_ref().take(2).collect();
                let value = u8::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 2 && !hex.starts_with('+'))?;
                match value {
                    0 => return None,
                    b'/' | b'\\' if !options.allow_encoded_slash => return None,
                    v if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => out.push(char::from(v)),
                    v => out.push_str(&format!("%{v:02X}")),
                }
            }
            '\\' => return None,
            c if !c.is_ascii() || c.is_ascii_control() || c == ' ' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn reference(raw: &str, options: PathOptions) -> Option<String> {
    let mut path = rfc_remove_dot_segments(&reference_decode(raw, options)?);
    if options.merge_slashes {
        while path.contains("//") {
            path = path.replace("//", "/");
        }
    }
    Some(path)
}

/// Paths made of the pieces that matter: dots raw and encoded, slashes raw and encoded, escapes good and bad.
fn paths() -> impl Strategy<Value = String> {
    const PLAIN: [&str; 22] = [
        "/", "/", "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%25", "%252e", "%41", "%7e", "%3b", "%3F",
        ";", "a", "~", "x.y", "..;",
    ];
    const REFUSED: [&str; 7] = ["%00", "%", "%g", "\\", " ", "\u{e9}", "\u{7f}"];
    let piece = prop_oneof![12 => proptest::sample::select(&PLAIN[..]), 1 => proptest::sample::select(&REFUSED[..])];
    (any::<bool>(), proptest::collection::vec(piece, 0..16))
        .prop_map(|(slash, pieces)| format!("{}{}", if slash { "/" } else { "" }, pieces.concat()))
}

fn options() -> impl Strategy<Value = PathOptions> {
    (any::<bool>(), any::<bool>())
        .prop_map(|(merge_slashes, allow_encoded_slash)| PathOptions { merge_slashes, allow_encoded_slash })
}

fn well_encoded(path: &str) -> bool {
    let b = path.as_bytes();
    let upper_hex = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c));
    b.iter().enumerate().all(|(i, &c)| c != b'%' || (upper_hex(i + 1) && upper_hex(i + 2)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn normalizing_twice_changes_nothing(raw in paths(), options in options()) {
        if let Ok(once) = normalize(&raw, options) {
            let twice = normalize(once.as_str(), options);
            prop_assert_eq!(twice.as_ref().map(NormalizedPath::as_str), Ok(once.as_str()));
            prop_assert!(twice.is_ok_and(|t| t.is_unchanged()), "a normal path is borrowed");
        }
    }

    #[test]
    fn the_result_has_no_dot_segment_no_double_slash_and_uppercase_escapes(raw in paths(), options in options()) {
        if let Ok(path) = normalize(&raw, options) {
            prop_assert!(path.starts_with('/'));
            prop_assert!(path.split('/').all(|s| s != "." && s != ".."), "{}", path);
            prop_assert!(!options.merge_slashes || !path.contains("//"), "{}", path);
            prop_assert!(well_encoded(&path), "{}", path);
        }
    }

    /// The prefix property: what the edge checks (does the result start with the route's or token's prefix) is
    /// what the path means once decoded and resolved, so no spelling of `..` climbs out of a prefix unseen.
    #[test]
    fn the_result_is_rfc_dot_removal_of_the_decoded_path(raw in paths(), options in options()) {
        // Refusals are the table's: a refused path is answered 400 and goes nowhere.
        if let Ok(path) = normalize(&raw, options) {
            prop_assert_eq!(Some(path.as_str().to_owned()), reference(&raw, options));
        }
        if raw.starts_with('/') && reference_decode(&raw, options).is_none() {
            prop_assert!(normalize(&raw, options).is_err(), "what rule 2 refuses is refused");
        }
    }

    #[test]
    fn any_text_returns(raw in prop_oneof![".{0,64}", "/.{0,64}"], bytes in proptest::collection::vec(any::<u8>(), 0..64), options in options()) {
        let limit = std::time::Duration::from_secs(1);
        let lossy = format!("/{}", String::from_utf8_lossy(&bytes));
        let input = format!("{raw:?} and {lossy:?}");
        crate::tests::within(limit, &input, move || {
            let _ = normalize(&raw, options);
            let _ = normalize(&lossy, options);
        });
    }
}
