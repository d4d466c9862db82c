use super::*;

fn header(fields: &[(&'static str, &str)]) -> ResponseHeader {
    let mut h = ResponseHeader::build(200, None).unwrap();
    for (name, value) in fields {
        h.append_header(*name, *value).unwrap();
    }
    h
}

fn texts(tags: &[Arc<str>]) -> Vec<&str> {
    tags.iter().map(|t| &**t).collect()
}

#[test]
fn tags_come_from_both_headers_in_their_own_syntax() {
    type Case<'a> = (&'a str, &'a [(&'static str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        ("none", &[], &[]),
        ("Fastly: spaces", &[(SURROGATE_KEY, "video  live/stream1 ")], &["video", "live/stream1"]),
        ("Cloudflare: commas", &[(CACHE_TAG, "a, b,,c ")], &["a", "b", "c"]),
        (
            "both, repeated fields, duplicates once",
            &[(SURROGATE_KEY, "a b"), (SURROGATE_KEY, "c"), (CACHE_TAG, "b,d")],
            &["a", "b", "c", "d"],
        ),
        ("a comma is part of a surrogate key", &[(SURROGATE_KEY, "x,y")], &["x,y"]),
    ];
    for (what, fields, want) in cases {
        assert_eq!(texts(&of(&header(fields))), *want, "{what}");
    }
}

#[test]
fn tags_are_bounded_in_number_and_length() {
    let many: Vec<String> = (0..MAX_TAGS + 10).map(|i| format!("t{i}")).collect();
    let tags = of(&header(&[(SURROGATE_KEY, &many.join(" "))]));
    assert_eq!(tags.len(), MAX_TAGS);
    let long = "x".repeat(MAX_TAG_LEN + 1);
    assert_eq!(texts(&of(&header(&[(CACHE_TAG, &format!("{long},ok"))]))), ["ok"]);
    assert_eq!(cost(&of(&header(&[(CACHE_TAG, "ab,c")]))), 2 + 1 + 2 * TAG_OVERHEAD);
}

#[test]
fn the_index_finds_what_holds_a_tag_and_forgets_removed_objects() {
    let index = TagIndex::default();
    let (a, b) = ([1u8; 16], [2u8; 16]);
    let (ta, tb): (Vec<Arc<str>>, Vec<Arc<str>>) = (vec!["x".into(), "y".into()], vec!["y".into()]);
    index.add(a, &ta);
    index.add(b, &tb);
    assert_eq!(index.tagged("x"), [a]);
    let mut y = index.tagged("y");
    y.sort();
    assert_eq!(y, [a, b]);
    index.remove(&a, &ta);
    assert_eq!(index.tagged("y"), [b]);
    assert!(index.tagged("x").is_empty());
    assert_eq!(index.len(), 1, "an emptied tag is forgotten");
    index.remove(&b, &tb);
    assert!(index.is_empty());
}
