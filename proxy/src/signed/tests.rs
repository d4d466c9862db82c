use super::*;

const KEYS: &str =
    "# rotation: k2 is new\nk1 0123456789abcdef0123456789abcdef\nk2 fedcba9876543210fedcba9876543210fedcba\n";

fn route(keys: &[&str], bind: bool) -> dime_routes::SignedUrls {
    dime_routes::SignedUrls { keys: keys.iter().map(|k| k.to_string()).collect(), bind_client_ip: bind }
}

#[test]
fn a_token_covers_its_prefix_until_it_expires() {
    let keys = Keys::parse("keys", KEYS).unwrap();
    let q = token(&keys, "k1", "/hls/stream one/", 2_000, None).unwrap();
    let r = route(&["k1", "k2"], false);
    assert!(q.contains("dime_prefix=/hls/stream%20one/"), "{q}");
    assert_eq!(verify(&keys, &r, "/hls/stream one/index.m3u8", Some(&q), None, 1_000), Ok(()));
    assert_eq!(verify(&keys, &r, "/hls/stream one/seg-1.ts", Some(&format!("a=1&{q}")), None, 1_000), Ok(()));
    assert_eq!(verify(&keys, &r, "/hls/other/index.m3u8", Some(&q), None, 1_000), Err(Reject::OutsidePrefix));
    assert_eq!(verify(&keys, &r, "/hls/stream one/../other/x.ts", Some(&q), None, 1_000), Err(Reject::OutsidePrefix));
    assert_eq!(verify(&keys, &r, "/hls/stream one/x.ts", Some(&q), None, 2_000), Err(Reject::Expired));
}

#[test]
fn tampering_unknown_keys_and_missing_parts_are_refused() {
    let keys = Keys::parse("keys", KEYS).unwrap();
    let r = route(&["k1"], false);
    let q = token(&keys, "k1", "/hls/", 2_000, None).unwrap();
    let longer = q.replace("dime_exp=2000", "dime_exp=9000");
    assert_eq!(verify(&keys, &r, "/hls/a.ts", Some(&longer), None, 1_000), Err(Reject::BadSignature));
    let wider = q.replace("dime_prefix=/hls/", "dime_prefix=/");
    assert_eq!(verify(&keys, &r, "/hls/a.ts", Some(&wider), None, 1_000), Err(Reject::BadSignature));
    let by_k2 = token(&keys, "k2", "/hls/", 2_000, None).unwrap();
    assert_eq!(
        verify(&keys, &r, "/hls/a.ts", Some(&by_k2), None, 1_000),
        Err(Reject::UnknownKey),
        "k2 not accepted by this route"
    );
    assert_eq!(verify(&keys, &r, "/hls/a.ts", None, None, 1_000), Err(Reject::Missing));
    assert_eq!(verify(&keys, &r, "/hls/a.ts", Some(&format!("{q}&dime_exp=1")), None, 1_000), Err(Reject::Malformed));
    assert_eq!(
        verify(&keys, &r, "/hls/a.ts", Some(&q.replace("dime_sig=", "dime_sig=zz")), None, 1_000),
        Err(Reject::Malformed)
    );
}

#[test]
fn a_bound_token_is_valid_from_its_client_only() {
    let keys = Keys::parse("keys", KEYS).unwrap();
    let r = route(&["k1"], true);
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    let q = token(&keys, "k1", "/", 2_000, Some(ip)).unwrap();
    assert_eq!(verify(&keys, &r, "/a", Some(&q), Some(ip), 1_000), Ok(()));
    assert_eq!(
        verify(&keys, &r, "/a", Some(&q), Some("198.51.100.8".parse().unwrap()), 1_000),
        Err(Reject::BadSignature)
    );
}

#[test]
fn key_files_are_checked() {
    assert!(Keys::parse("f", "k1 short\n").unwrap_err().to_string().contains("f:1: the secret of `k1` is shorter"));
    assert!(Keys::parse("f", "\nk1\n").unwrap_err().to_string().contains("f:2: expected `ID SECRET`"));
    assert!(Keys::parse("f", "# nothing\n").unwrap_err().to_string().contains("no key"));
    let dup = "k 0123456789abcdef0123456789abcdef\nk 0123456789abcdef0123456789abcdef\n";
    assert!(Keys::parse("f", dup).unwrap_err().to_string().contains("f:2: key id `k` appears twice"));
    assert!(!format!("{:?}", Keys::parse("f", KEYS).unwrap()).contains("0123"), "Debug never shows secrets");
}

#[test]
fn dime_parameters_are_stripped() {
    assert_eq!(strip("a=1&dime_exp=2&b&dime_sig=x"), Some("a=1&b".to_owned()));
    assert_eq!(strip("dime_exp=2&dime_sig=x"), None);
}
