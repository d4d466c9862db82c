use super::*;

#[test]
fn control_urls_parse_strictly() {
    let u = ControlUrl::parse("http://control.example.com:8080/").unwrap();
    assert_eq!(
        (u.authority.as_str(), u.prefix.as_str(), u.text.as_str()),
        ("control.example.com:8080", "", "http://control.example.com:8080")
    );
    let u = ControlUrl::parse("http://10.0.0.1/dime").unwrap();
    assert_eq!((u.authority.as_str(), u.prefix.as_str()), ("10.0.0.1:80", "/dime"));
    assert_eq!(ControlUrl::parse("http://[::1]:9000").unwrap().authority, "[::1]:9000");
    assert_eq!(ControlUrl::parse("http://[::1]").unwrap().authority, "[::1]:80");
    for bad in ["control:8080", "ftp://x", "http://", "http://u:p@x:1", "http://x/?a=1"] {
        assert!(ControlUrl::parse(bad).is_err(), "{bad}");
    }
    let u = ControlUrl::parse("https://control.example.com").unwrap();
    assert_eq!((u.authority.as_str(), u.tls_name.as_deref()), ("control.example.com:443", Some("control.example.com")));
    assert_eq!(ControlUrl::parse("http://x:1").unwrap().tls_name, None);
}

#[test]
fn backoff_grows_to_the_cap_with_jitter() {
    assert_eq!(backoff(1, 1.0), BACKOFF_FIRST);
    assert_eq!(backoff(3, 1.0), BACKOFF_FIRST * 4);
    assert_eq!(backoff(40, 1.0), BACKOFF_CAP);
    assert!(backoff(5, 0.5) < backoff(5, 1.0));
    assert_eq!(backoff(5, 0.0), Duration::from_millis(50), "never a busy loop");
}

#[test]
fn persist_replaces_the_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    persist(dir.path(), b"one").unwrap();
    persist(dir.path(), b"two").unwrap();
    assert_eq!(std::fs::read(dir.path().join(STATE_FILE)).unwrap(), b"two");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)], "no temporary file left behind");
}
