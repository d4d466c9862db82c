//! A route's `allow_encoded_slash`: how a table reads a request's path for the route that serves it, the option
//! in the native schema and in the Traefik subset, and the match paths checked against it.
#![allow(clippy::unwrap_used)]

use crate::{parse, PathError};

const ROUTES: &str = r#"
version: 1
http:
  routes:
    - { name: files, match: [{ hosts: [v.test], paths: [{ prefix: /files/ }] }], upstream: o, allow_encoded_slash: true }
    - { name: premium, match: [{ hosts: [v.test], paths: [{ prefix: /premium/ }] }], upstream: o }
    - { name: other, match: [{ hosts: [v.test] }], upstream: o }
  upstreams:
    o: { servers: [{ url: "http://127.0.0.1:9" }] }
"#;

#[test]
fn an_encoded_slash_is_read_only_for_the_route_that_allows_it() {
    let table = parse("routes.yaml", ROUTES).unwrap();
    assert!(table.find("v.test", "/files/a").unwrap().allow_encoded_slash);
    assert!(!table.find("v.test", "/premium/a").unwrap().allow_encoded_slash);
    let read = |path: &str| table.read_path("v.test", path).map(|p| p.as_str().to_owned());
    // Allowed: kept encoded (uppercased), one segment; the rest of the reading as on any route.
    assert_eq!(read("/files/a%2fb").unwrap(), "/files/a%2Fb");
    assert_eq!(read("/files/x/../a%5cb/%7e").unwrap(), "/files/a%5Cb/~");
    assert_eq!(read("/Files/../files/a%2Fb").unwrap(), "/files/a%2Fb", "the route is found by the path as read");
    // Not allowed: the strict reading's refusal, wherever the encoded slash is.
    assert!(matches!(read("/premium/a%2Fb"), Err(PathError::EncodedSlash { at: 10, .. })));
    assert!(matches!(read("/premium/a%5cb"), Err(PathError::EncodedBackslash { .. })));
    assert!(matches!(read("/a%2Fb"), Err(PathError::EncodedSlash { .. })), "the catch-all route does not allow it");
    assert!(matches!(read("/files/../premium/a%2Fb"), Err(PathError::EncodedSlash { .. })));
    assert!(parse("r.yaml", "version: 1").unwrap().read_path("v.test", "/files/a%2Fb").is_err(), "no route");
    // Refused even where allowed: a dot segment behind one, and whatever else is wrong.
    for climb in ["/files/..%2Fpremium/x", "/files/a%2F..%2F..%2Fpremium/x", "/files/%2e%2e%2fpremium/x"] {
        assert!(matches!(read(climb), Err(PathError::EncodedDotSegment { .. })), "{climb}");
    }
    assert!(matches!(read("/files/a%2Fb%00"), Err(PathError::EncodedNul { .. })));
    assert!(matches!(read("/files/a%2Fb/%zz"), Err(PathError::BadPercent { .. })));
    // Without an encoded slash, one reading for every route, as before.
    assert_eq!(read("/premium/./x").unwrap(), "/premium/x");
    assert!(table.read_path("v.test", "/files/a/b").unwrap().is_unchanged());
}

#[test]
fn the_option_round_trips_and_match_paths_are_checked_against_it() {
    let table = parse("routes.yaml", ROUTES).unwrap();
    let again = parse("payload.json", &table.to_json()).unwrap();
    assert_eq!(again.version(), table.version());
    assert!(again.find("v.test", "/files/").unwrap().allow_encoded_slash);
    let text = r#"
version: 1
http:
  routes:
    - name: a
      match: [{ paths: [{ prefix: "/a%2Fb/" }, { exact: "/a/../b" }] }]
      upstream: o
    - { name: b, match: [{ paths: [{ prefix: "/b%2fc/" }] }], upstream: o, allow_encoded_slash: true }
    - { name: c, match: [{ paths: [{ prefix: "/c%2Fd/" }] }], upstream: o, allow_encoded_slash: true }
  upstreams:
    o: { servers: [{ url: "http://127.0.0.1:9" }] }
"#;
    let errors: Vec<String> = parse("routes.yaml", text).unwrap_err().iter().map(|e| e.to_string()).collect();
    let want = [
        "routes.yaml:6: http.routes[0] (a).match[0].paths[0]: `/a%2Fb/` never matches: encoded slash `%2F` at byte 2",
        "routes.yaml:6: http.routes[0] (a).match[0].paths[1]: `/a/../b` never matches",
        "routes.yaml:8: http.routes[1] (b).match[0].paths[0]: `/b%2fc/` never matches",
    ];
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(want) {
        assert!(got.starts_with(want), "{got}\nwant {want}");
    }
    assert!(errors[0].contains("add `allow_encoded_slash: true` to the route"), "{}", errors[0]);
    assert!(errors[2].contains("write `/b%2Fc/`"), "{}", errors[2]);
}

#[test]
fn a_traefik_encoded_characters_middleware_allows_encoded_slashes_on_its_routers() {
    let text = r#"
http:
  middlewares:
    slashes: { encodedCharacters: { allowEncodedSlash: true, allowEncodedBackSlash: true, allowEncodedPercent: true } }
    strict: { encodedCharacters: {} }
  routers:
    files: { rule: "Host(`v.test`) && PathPrefix(`/files/`)", service: s, middlewares: [slashes] }
    plain: { rule: "Host(`v.test`)", service: s, middlewares: [strict] }
  services:
    s: { loadBalancer: { servers: [{ url: "http://127.0.0.1:9" }] } }
"#;
    let table = parse("traefik.yaml", text).unwrap();
    assert!(table.find("v.test", "/files/x").unwrap().allow_encoded_slash);
    assert!(!table.find("v.test", "/x").unwrap().allow_encoded_slash);
    assert_eq!(table.read_path("v.test", "/files/a%2Fb").unwrap().as_str(), "/files/a%2Fb");

    let text = r#"
http:
  middlewares:
    half: { encodedCharacters: { allowEncodedSlash: true } }
    nul: { encodedCharacters: { allowEncodedNullCharacter: true, allowEncodedHash: false, allowEncodedTab: true } }
    both: { encodedCharacters: {}, plugin: { plugin-simplecache: {} } }
  routers:
    r: { rule: "PathPrefix(`/a%2Fb`)", service: s, middlewares: [half] }
  services:
    s: { loadBalancer: { servers: [{ url: "http://127.0.0.1:9" }] } }
"#;
    let errors: Vec<String> = parse("traefik.yaml", text).unwrap_err().iter().map(|e| e.to_string()).collect();
    let want = [
        "traefik.yaml:4: http.middlewares.half.encodedCharacters.allowEncodedSlash: Dime allows `%2F` and `%5C` together",
        "traefik.yaml:5: http.middlewares.nul.encodedCharacters.allowEncodedNullCharacter: Dime refuses `%00`",
        "traefik.yaml:5: http.middlewares.nul.encodedCharacters.allowEncodedHash: Dime does not refuse `%23`",
        "traefik.yaml:5: http.middlewares.nul.encodedCharacters.allowEncodedTab: `allowEncodedTab` is not a field",
        "traefik.yaml:6: http.middlewares.both.encodedCharacters: a middleware has one kind",
        "traefik.yaml:8: http.routers.r.rule: `/a%2Fb` never matches",
    ];
    for w in want {
        assert!(errors.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
}
