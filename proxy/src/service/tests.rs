use super::*;

fn req(headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/", None).unwrap();
    for (k, v) in headers {
        r.insert_header(k.to_string(), v.to_string()).unwrap();
    }
    r
}

fn header<'a>(r: &'a RequestHeader, name: &str) -> &'a str {
    r.headers.get(name).unwrap().to_str().unwrap()
}

#[test]
fn untrusted_clients_cannot_forge_forwarded_headers() {
    let mut r = req(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil")]);
    set_forwarded_headers(&mut r, Some("192.0.2.1".parse().unwrap()), false, "video.example.com", false).unwrap();
    assert_eq!(header(&r, "x-forwarded-for"), "192.0.2.1");
    assert_eq!(header(&r, "x-forwarded-proto"), "http");
    assert_eq!(header(&r, "x-forwarded-host"), "video.example.com");
}

#[test]
fn trusted_proxies_values_are_kept_and_appended_to() {
    let mut r =
        req(&[("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "cdn.example")]);
    set_forwarded_headers(&mut r, Some("10.0.0.2".parse().unwrap()), true, "video.example.com", false).unwrap();
    assert_eq!(header(&r, "x-forwarded-for"), "203.0.113.7, 10.0.0.2");
    assert_eq!(header(&r, "x-forwarded-proto"), "https");
    assert_eq!(header(&r, "x-forwarded-host"), "cdn.example");
}
