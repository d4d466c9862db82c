use super::*;

#[test]
fn streaming_paths_keep_only_ll_hls_parameters_by_default() {
    let k = primary_key(
        "Video.Example.com:8080",
        "/hls/s.m3u8",
        Some("token=abc&_HLS_msn=12&x=1&_HLS_part=3"),
        Kind::Playlist,
        None,
    );
    assert_eq!(k, "video.example.com\n/hls/s.m3u8?_HLS_msn=12&_HLS_part=3");
    let k = primary_key("v.example", "/hls/s-1.ts", Some("session=42"), Kind::Segment, None);
    assert_eq!(k, "v.example\n/hls/s-1.ts");
}

#[test]
fn ordinary_paths_keep_the_whole_query_by_default() {
    assert_eq!(primary_key("a.test", "/x", Some("b=2&a=1"), Kind::Other, None), "a.test\n/x?b=2&a=1");
    assert_eq!(primary_key("a.test", "/x", Some(""), Kind::Other, None), "a.test\n/x");
    assert_eq!(primary_key("a.test", "/x", None, Kind::Other, None), "a.test\n/x");
}

#[test]
fn a_route_list_decides_for_every_path() {
    let keys = vec!["v".to_owned()];
    assert_eq!(primary_key("a.test", "/x", Some("v=2&w=1"), Kind::Other, Some(&keys)), "a.test\n/x?v=2");
    assert_eq!(
        primary_key("a.test", "/s.m3u8", Some("_HLS_msn=1&v=3"), Kind::Playlist, Some(&keys)),
        "a.test\n/s.m3u8?v=3"
    );
}

#[test]
fn different_hosts_never_share_a_key() {
    assert_ne!(
        primary_key("a.test", "/x", None, Kind::Other, None),
        primary_key("b.test", "/x", None, Kind::Other, None)
    );
    assert_eq!(split_primary("a.test\n/x?y"), ("a.test", "/x?y"));
}

#[test]
fn signed_url_tokens_are_never_part_of_the_key() {
    let token = "dime_exp=9&dime_prefix=/hls/&dime_kid=k1&dime_sig=ab";
    assert_eq!(primary_key("a.test", "/x", Some(&format!("b=2&{token}")), Kind::Other, None), "a.test\n/x?b=2");
    assert_eq!(
        primary_key("a.test", "/hls/s.m3u8", Some(&format!("_HLS_msn=3&{token}")), Kind::Playlist, None),
        "a.test\n/hls/s.m3u8?_HLS_msn=3"
    );
    let list = vec!["dime_exp".to_owned(), "v".to_owned()];
    assert_eq!(primary_key("a.test", "/x", Some(&format!("v=1&{token}")), Kind::Other, Some(&list)), "a.test\n/x?v=1");
}

#[test]
fn accept_encoding_variants_are_normalized_and_only_for_objects_that_vary() {
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    };
    let varies = headers(&[("vary", "Origin, Accept-Encoding")]);
    let a = encoding_variance(&varies, &headers(&[("accept-encoding", "gzip, br")]));
    let b = encoding_variance(&varies, &headers(&[("accept-encoding", "br;q=1"), ("accept-encoding", "GZIP,gzip")]));
    assert!(a.is_some());
    assert_eq!(a, b, "same set of encodings, same variant");
    assert_ne!(a, encoding_variance(&varies, &headers(&[("accept-encoding", "identity")])));
    assert_eq!(encoding_variance(&headers(&[]), &headers(&[("accept-encoding", "gzip")])), None);
}
