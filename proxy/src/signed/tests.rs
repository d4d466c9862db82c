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

mod fuzz {
    //! The signed-URL parser over bad input: any query and path, and minted tokens with a few edits.

    use dime_testkit::fuzz::{config, mutated, text, within};
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// Queries as viewers send them: a minted token (k1, `/hls/stream one/`, until 2000, bound to 198.51.100.7),
    /// alone, among other parameters (where most edits leave it whole), or with its parameters in another order.
    const QUERIES: [&str; 4] = [
        "dime_exp=2000&dime_prefix=/hls/stream%20one/&dime_kid=k1&dime_sig=SIG",
        "a=1&b=%2F&dime_exp=2000&dime_prefix=/hls/stream%20one/&dime_kid=k1&dime_sig=SIG&c",
        "dime_sig=SIG&dime_kid=k1&dime_prefix=%2Fhls%2Fstream+one%2F&dime_exp=2000",
        "player=hls.js&session=8f2a9c41d7e3b605&quality=auto&start=0&dime_exp=2000&dime_prefix=/hls/stream%20one/\
         &dime_kid=k1&dime_sig=SIG&_HLS_msn=1204&_HLS_part=3&utm_source=newsletter&utm_medium=email&ref=%2Fhome",
    ];

    const QUERY_PIECES: [&str; 20] = [
        "&",
        "=",
        "&&",
        "%",
        "%2",
        "%2B",
        "%20",
        "+",
        "%00",
        "%FF",
        "dime_exp=",
        "dime_prefix=/",
        "dime_kid=k2",
        "dime_sig=",
        "0",
        "/",
        "..",
        "%2e%2e",
        "\u{e9}",
        "18446744073709551616",
    ];

    const KEY_FILES: [&str; 2] = [
        "# rotation: k2 is new\nk1 0123456789abcdef0123456789abcdef\nk2 fedcba9876543210fedcba9876543210fedcba\n",
        "k.1-a_b\t0123456789abcdef0123456789abcdef0123\n\n   # spaces first\n  k2 fedcba9876543210fedcba9876543210\n",
    ];

    const KEY_PIECES: [&str; 10] = ["#", " ", "\t", "\n", "\r", "k1", "k1 ", "\u{a0}", "\u{2028}", "0123456789abcdef"];

    fn client() -> Option<IpAddr> {
        "198.51.100.7".parse().ok()
    }

    /// The token the queries carry: its signature in hex.
    fn signature() -> String {
        let keys = Keys::parse("keys", &format!("k1 {SECRET}\n")).unwrap();
        let query = token(&keys, "k1", "/hls/stream one/", 2_000, client()).unwrap();
        query.rsplit_once("dime_sig=").unwrap().1.to_owned()
    }

    /// `(exp, prefix, kid, signature bytes)` of a query, as the edge reads them.
    fn read(query: &str) -> (Option<u64>, Option<String>, Option<String>, Option<Vec<u8>>) {
        let get = |name: &str| form_urlencoded::parse(query.as_bytes()).find(|(n, _)| n == name).map(|(_, v)| v);
        (
            get(EXP).and_then(|v| v.parse().ok()),
            get(PREFIX).map(|v| v.into_owned()),
            get(KID).map(|v| v.into_owned()),
            get(SIG).and_then(|v| unhex(&v)),
        )
    }

    fn verified(path: String, query: String) -> Result<(), Reject> {
        let input = format!("{path} ? {query}").into_bytes();
        within(&input, move || {
            let keys = Keys::parse("keys", &format!("k1 {SECRET}\nk2 {SECRET}2\n")).unwrap();
            verify(&keys, &route(&["k1", "k2"], true), &path, Some(&query), client(), 1_000)
        })
    }

    proptest! {
        #![proptest_config(config())]

        /// Any query and any path: refused (or, by a fluke, accepted) without a panic, in bounded time.
        #[test]
        fn any_query_and_path_are_answered(path in text(), query in text()) {
            let _ = verified(path, query);
        }

        /// A token with a few edits is accepted only if it still says what was signed: the same expiry, prefix,
        /// key and signature, for a path under the prefix; the query's other parameters are free.
        #[test]
        fn an_edited_token_is_accepted_only_if_it_says_what_was_signed(
            query in mutated(&QUERIES, &QUERY_PIECES),
            path in prop_oneof![
                Just(b"/hls/stream one/seg-1.ts".to_vec()),
                mutated(&["/hls/stream one/seg-1.ts"], &["/", "..", ".", "%2e", " ", "one"]),
            ],
        ) {
            let query = String::from_utf8_lossy(&query).replace("SIG", &signature());
            let path = String::from_utf8_lossy(&path).into_owned();
            if verified(path.clone(), query.clone()).is_ok() {
                let original = read(&QUERIES[0].replace("SIG", &signature()));
                prop_assert_eq!(read(&query), original, "{}", query);
                prop_assert!(path.starts_with("/hls/stream one/") && !path.split('/').any(|s| s == ".."), "{}", path);
            }
        }

        /// Key files: read, or refused with the line that is wrong (a line of the file).
        #[test]
        fn any_key_file_is_read_or_refused_at_one_of_its_lines(
            file in prop_oneof![text().prop_map(String::into_bytes), mutated(&KEY_FILES, &KEY_PIECES)],
        ) {
            let file = String::from_utf8_lossy(&file).into_owned();
            let owned = file.clone();
            if let Err(e) = within(file.as_bytes(), move || Keys::parse("keys", &owned).map(|k| k.ids().count())) {
                let e = e.to_string();
                let rest = e.strip_prefix("keys:").unwrap_or_default();
                let line = rest.split_once(':').and_then(|(n, _)| n.parse::<usize>().ok());
                prop_assert!(line.is_some() || rest == " no key in the file", "{}", e);
                let lines = file.lines().count();
                prop_assert!(line.is_none_or(|n| (1..=lines).contains(&n)), "{} in a file of {} lines", e, lines);
            }
        }
    }
}
