use super::*;

#[test]
fn proxy_v1_headers_name_client_and_entrypoint() {
    let h = proxy_v1_header("192.0.2.7:50000".parse().unwrap(), "10.0.0.1:1935".parse().unwrap());
    assert_eq!(h, "PROXY TCP4 192.0.2.7 10.0.0.1 50000 1935\r\n");
    let h = proxy_v1_header("[2001:db8::1]:50000".parse().unwrap(), "10.0.0.1:1935".parse().unwrap());
    assert_eq!(h, "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 50000 1935\r\n");
}
