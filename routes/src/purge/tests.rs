//! What a purge names, checked: every problem located; its paths read as the edge reads a request's.
#![allow(clippy::unwrap_used)]

use super::*;

fn purge(json: &str) -> Result<Purge, String> {
    let p: Purge = serde_json::from_str(json).map_err(|e| e.to_string())?;
    p.check().map_err(|e| e.join("; "))?;
    Ok(p)
}

#[test]
fn a_purge_names_urls_prefixes_or_tags_and_every_problem_is_located() {
    let ok =
        purge(r#"{"urls":["https://v.test/a.ts?x=1"],"prefixes":[{"host":"v.test","prefix":"/hls/"}],"tags":["t1"]}"#)
            .unwrap();
    assert_eq!((ok.targets(), ok.soft), (3, false));
    assert!(purge(r#"{"tags":["a"],"soft":true}"#).unwrap().soft);
    let cases = [
        (r#"{}"#, "an empty purge"),
        (r#"{"urls":[],"tags":[]}"#, "an empty purge"),
        (r#"{"tag":["a"]}"#, "unknown field `tag`"),
        (r#"{"prefixes":[{"host":"v.test","prefix":"/","regex":"x"}]}"#, "unknown field `regex`"),
        (r#"{"urls":["ftp://v.test/a"]}"#, "urls[0]: `ftp://v.test/a` is not an http(s)://host/path URL"),
        (r#"{"urls":["https:///a"]}"#, "urls[0]"),
        (r#"{"prefixes":[{"host":"v.test","prefix":"hls"}]}"#, "prefixes[0].prefix: `hls` is not a path"),
        (r#"{"prefixes":[{"host":"bad host","prefix":"/"}]}"#, "prefixes[0].host"),
        (r#"{"tags":["ok","two words"]}"#, "tags[1]: `two words` is not a tag"),
        (r#"{"tags":["a,b"]}"#, "tags[0]"),
        (r#"{"tags":[""]}"#, "tags[0]"),
        (r#"{"soft":"yes","tags":["a"]}"#, "invalid type"),
    ];
    for (json, want) in cases {
        let got = purge(json).unwrap_err();
        assert!(got.contains(want), "{json}: {got}");
    }
    let long = format!(r#"{{"tags":["{}"]}}"#, "x".repeat(MAX_TAG_LEN + 1));
    assert!(purge(&long).unwrap_err().contains("tags[0]: `xxx"), "a long tag is quoted shortened");
    let many: Vec<String> = (0..=MAX_TARGETS).map(|i| format!("t{i}")).collect();
    let many = Purge { tags: many, ..Default::default() };
    assert!(many.check().unwrap_err()[0].contains("at most 1000"));
}

#[test]
fn urls_split_into_host_path_and_query() {
    assert_eq!(split_url("http://v.test"), Some(("v.test", "/", None)));
    assert_eq!(split_url("https://v.test:8443/a/b?x=1"), Some(("v.test:8443", "/a/b", Some("x=1"))));
    assert_eq!(split_url("v.test/a"), None);
    assert_eq!(split_url("http:///a"), None);
}

#[test]
fn a_purge_path_is_read_as_the_edge_reads_a_request_path() {
    let read = |p: &str| read_path(p).map(|r| r.as_str().to_owned()).map_err(|e| e.to_string());
    assert_eq!(read("/public/../premium/x.ts").unwrap(), "/premium/x.ts");
    assert_eq!(read("/public/%2e%2E/premium//x.ts").unwrap(), "/premium/x.ts");
    assert_eq!(read("/%7Eu/caf%c3%a9").unwrap(), "/~u/caf%C3%A9");
    assert_eq!(read("/files/a%2fb").unwrap(), "/files/a%2Fb", "a key of a route with allow_encoded_slash");
    assert!(read("/files/..%2Fpremium/x").unwrap_err().contains("dot segment behind an encoded slash"));
    assert!(read("/a%zz").unwrap_err().contains("bad percent-encoding `%zz` at byte 2"));
    assert!(read("/a\\b").unwrap_err().contains("backslash at byte 2"));

    let prefix = |p: &str| read_prefix(p).map(|r| r.as_str().to_owned()).map_err(|e| e.to_string());
    for (written, read) in [
        ("/public/../premium/", "/premium/"),
        ("/public/x/../", "/public/"),
        ("/hls/seg-", "/hls/seg-"),
        ("/hls/%2e%2e/live/s%31/", "/live/s1/"),
        ("/a/..x", "/a/..x"),
        ("/a/...", "/a/..."),
        ("//hls//", "/hls/"),
        ("/", "/"),
    ] {
        assert_eq!(prefix(written).unwrap(), read, "{written}");
    }
    // A last segment that reads as a dot segment: `/a/..x` or `/`? Refused, whatever its spelling.
    for ambiguous in ["/a/..", "/a/.", "/a/%2e%2E", "/a/.%2e", "/.."] {
        assert!(prefix(ambiguous).unwrap_err().contains("ends in the dot segment"), "{ambiguous}");
    }
    assert!(prefix("/a/..;").unwrap_err().contains("`;` parameters"));
}

#[test]
fn a_purge_whose_path_does_not_read_is_refused_naming_the_entry() {
    let ok =
        purge(r#"{"urls":["https://v.test/a/../b.ts?x=%2F"],"prefixes":[{"host":"v.test","prefix":"/p/%2e%2e/q/"}]}"#);
    assert!(ok.is_ok(), "{ok:?}");
    let cases = [
        (
            r#"{"urls":["https://v.test/ok","https://v.test/a%zz"]}"#,
            "urls[1]: `https://v.test/a%zz`: the path: bad percent-encoding",
        ),
        (r#"{"urls":["http://v.test/a%00"]}"#, "urls[0]: `http://v.test/a%00`: the path: encoded NUL"),
        (r#"{"prefixes":[{"host":"v.test","prefix":"/a\\b/"}]}"#, "prefixes[0].prefix: `/a\\b/`: backslash at byte 2"),
        (
            r#"{"prefixes":[{"host":"v.test","prefix":"/public/.."}]}"#,
            "prefixes[0].prefix: `/public/..`: it ends in the dot segment `..`",
        ),
        (
            r#"{"prefixes":[{"host":"v.test","prefix":"/f/..%2fp/"}]}"#,
            "prefixes[0].prefix: `/f/..%2fp/`: segment `..%2fp`",
        ),
    ];
    for (json, want) in cases {
        let got = purge(json).unwrap_err();
        assert!(got.starts_with(want), "{json}: {got}");
    }
}
