use std::time::{Duration, SystemTime};

use pingora_cache::trace::Span;

use super::*;

fn store() -> &'static MemStore {
    Box::leak(Box::new(MemStore::new(None, None)))
}

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).unwrap();
    h.insert_header("content-type", "video/mp2t").unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 60, h)
}

fn key(path: &str) -> CacheKey {
    CacheKey::new(format!("v.test\n{path}"), "")
}

fn span() -> SpanHandle {
    Span::inactive().handle()
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

#[tokio::test]
async fn a_finished_write_is_served_whole_without_copying() {
    let s = store();
    let k = key("/a.ts");
    let mut w = s.get_miss_handler(&k, &meta(), &span()).await.unwrap();
    w.write_body(Bytes::from_static(b"hello "), false).await.unwrap();
    w.write_body(Bytes::from_static(b"world"), true).await.unwrap();
    let MissFinishType::Created(size) = w.finish().await.unwrap() else { panic!("created") };
    assert!(size > 11);
    assert_eq!((s.objects(), s.bytes()), (1, size));

    let (m, mut hit) = s.lookup(&k, &span()).await.unwrap().unwrap();
    assert_eq!(m.response_header().headers.get("content-type").unwrap(), "video/mp2t");
    let first = hit.read_body().await.unwrap().unwrap();
    assert_eq!(&first[..], b"hello world");
    let (_, mut again) = s.lookup(&k, &span()).await.unwrap().unwrap();
    let second = again.read_body().await.unwrap().unwrap();
    assert_eq!(first.as_ptr(), second.as_ptr(), "hits share one body buffer");
}

#[tokio::test]
async fn readers_get_chunks_while_the_write_is_in_progress() {
    let s = store();
    let k = key("/live.ts");
    let mut w = s.get_miss_handler(&k, &meta(), &span()).await.unwrap();
    w.write_body(Bytes::from_static(b"one,"), false).await.unwrap();
    let (_, mut reader) = s.lookup(&k, &span()).await.unwrap().unwrap();
    assert_eq!(&reader.read_body().await.unwrap().unwrap()[..], b"one,");
    let pending = tokio::spawn(async move { read_all(&mut reader).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    w.write_body(Bytes::from_static(b"two"), true).await.unwrap();
    w.finish().await.unwrap();
    assert_eq!(pending.await.unwrap().unwrap(), b"two");
}

#[tokio::test]
async fn an_unfinished_write_fails_its_readers_and_stores_nothing() {
    let s = store();
    let k = key("/broken.ts");
    let mut w = s.get_miss_handler(&k, &meta(), &span()).await.unwrap();
    w.write_body(Bytes::from_static(b"partial"), false).await.unwrap();
    let (_, mut reader) = s.lookup(&k, &span()).await.unwrap().unwrap();
    let pending = tokio::spawn(async move { read_all(&mut reader).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let told = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let hook = told.clone();
    s.set_drop_hook(Box::new(move |key, gone| hook.lock().push((key.primary_bin(), gone))));
    drop(w); // the origin aborted mid-body
    assert!(pending.await.unwrap().is_err(), "a reader must see an error, not a clean end of body");
    assert!(s.lookup(&k, &span()).await.unwrap().is_none());
    assert_eq!((s.objects(), s.bytes()), (0, 0));
    // The fill lock is told, so the next request fetches instead of waiting on the failed fill's release.
    assert_eq!(*told.lock(), [(k.to_compact().primary_bin(), Gone::Fill)]);
}

#[tokio::test]
async fn seek_serves_a_single_range_of_a_complete_object() {
    let s = store();
    let k = key("/r.mp4");
    let mut w = s.get_miss_handler(&k, &meta(), &span()).await.unwrap();
    w.write_body(Bytes::from_static(b"0123456789"), true).await.unwrap();
    w.finish().await.unwrap();
    let (_, mut hit) = s.lookup(&k, &span()).await.unwrap().unwrap();
    assert!(hit.can_seek());
    hit.seek(2, Some(5)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"234");
    assert!(hit.seek(10, None).is_err());
}

#[tokio::test]
async fn purge_and_prefix_removal_keep_the_byte_count_right() {
    let s = store();
    for p in ["/hls/a.ts", "/hls/b.ts", "/other.html"] {
        let mut w = s.get_miss_handler(&key(p), &meta(), &span()).await.unwrap();
        w.write_body(Bytes::from(vec![b'x'; 100]), true).await.unwrap();
        w.finish().await.unwrap();
    }
    assert_eq!(s.objects(), 3);
    let removed = s.remove_matching(|k| k.starts_with("v.test\n/hls/"));
    assert_eq!(removed.len(), 2);
    let other = key("/other.html");
    let outcome = s.purge(PurgeTarget::Active(&other.to_compact()), PurgeType::Invalidation, &span()).await.unwrap();
    assert_eq!(outcome, PurgeOutcome::Purged(None));
    assert_eq!((s.objects(), s.bytes()), (0, 0));
}

#[tokio::test]
async fn replacing_an_object_does_not_double_count_it() {
    let s = store();
    let k = key("/same");
    for _ in 0..3 {
        let mut w = s.get_miss_handler(&k, &meta(), &span()).await.unwrap();
        w.write_body(Bytes::from(vec![b'x'; 50]), true).await.unwrap();
        w.finish().await.unwrap();
    }
    assert_eq!(s.objects(), 1);
    let (_, hit) = s.lookup(&k, &span()).await.unwrap().unwrap();
    assert_eq!(s.bytes(), hit.get_eviction_weight());
}
