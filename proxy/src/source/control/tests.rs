use super::*;

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
