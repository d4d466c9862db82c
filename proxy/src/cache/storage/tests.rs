use std::time::{Duration, SystemTime};

use pingora_cache::trace::Span;
use pingora_http::ResponseHeader;

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
    let purged = s.purge_selected(&Selector::Prefix("v.test\n/hls/".into()), false, SystemTime::now());
    assert_eq!((purged.objects.len(), purged.fills.len()), (2, 0));
    let other = key("/other.html");
    let outcome = s.purge(PurgeTarget::Active(&other.to_compact()), PurgeType::Invalidation, &span()).await.unwrap();
    assert_eq!(outcome, PurgeOutcome::Purged(None));
    assert_eq!((s.objects(), s.bytes()), (0, 0));
}

#[tokio::test]
async fn a_list_of_urls_is_purged_in_one_pass_exactly() {
    let s = store();
    for p in ["/a", "/b", "/c"] {
        fill(s, p, &meta()).await;
    }
    let keys = ["v.test\n/a", "v.test\n/c", "v.test\n/not-stored"].map(str::to_owned).into_iter().collect();
    let purged = s.purge_selected(&Selector::Keys(keys), false, SystemTime::now());
    assert_eq!(purged.objects.len(), 2);
    assert!(s.lookup(&key("/b"), &span()).await.unwrap().is_some());
    assert_eq!(s.objects(), 1);
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

fn tagged_meta(tags: &str) -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).unwrap();
    h.insert_header("surrogate-key", tags).unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 10, 30, h)
}

async fn fill(s: &'static MemStore, path: &str, meta: &CacheMeta) {
    let mut w = s.get_miss_handler(&key(path), meta, &span()).await.unwrap();
    w.write_body(Bytes::from_static(b"body"), true).await.unwrap();
    w.finish().await.unwrap();
}

#[tokio::test]
async fn a_tag_purge_removes_exactly_the_tagged_objects_and_their_index() {
    let s = store();
    fill(s, "/a", &tagged_meta("red blue")).await;
    fill(s, "/b", &tagged_meta("blue")).await;
    fill(s, "/c", &tagged_meta("green")).await;
    let before = s.bytes();
    assert_eq!(s.tag_count(), 3);
    let purged = s.purge_selected(&Selector::Tag("blue".into()), false, SystemTime::now());
    assert_eq!(purged.objects.len(), 2);
    assert!(s.lookup(&key("/a"), &span()).await.unwrap().is_none());
    assert!(s.lookup(&key("/b"), &span()).await.unwrap().is_none());
    assert!(s.lookup(&key("/c"), &span()).await.unwrap().is_some());
    assert_eq!(s.tag_count(), 1, "only green is left in the index");
    assert!(s.bytes() < before);
    // Replacing an object re-indexes it under its new tags only.
    fill(s, "/c", &tagged_meta("yellow")).await;
    assert_eq!(s.purge_selected(&Selector::Tag("green".into()), false, SystemTime::now()).objects.len(), 0);
    assert_eq!(s.purge_selected(&Selector::Tag("yellow".into()), false, SystemTime::now()).objects.len(), 1);
    assert_eq!((s.objects(), s.bytes(), s.tag_count()), (0, 0, 0));
}

#[tokio::test]
async fn a_soft_purge_keeps_the_object_stale_with_its_stale_windows() {
    let s = store();
    fill(s, "/soft", &tagged_meta("t")).await;
    let now = SystemTime::now();
    let purged = s.purge_selected(&Selector::Tag("t".into()), true, now);
    assert_eq!(purged.objects.len(), 1);
    let (meta, mut hit) = s.lookup(&key("/soft"), &span()).await.unwrap().unwrap();
    assert!(!meta.is_fresh(now + Duration::from_millis(1)), "stale after the purge");
    assert!(meta.serve_stale_while_revalidate(now + Duration::from_secs(5)));
    assert!(meta.serve_stale_if_error(now + Duration::from_secs(20)));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
    assert_eq!(s.objects(), 1);
    assert_eq!(s.tag_count(), 1, "still indexed: a later hard purge by tag finds it");
}

#[tokio::test]
async fn a_fill_in_flight_when_a_purge_names_it_is_not_stored() {
    let s = store();
    let k = key("/inflight.ts");
    let stored = |t: MissFinishType| matches!(t, MissFinishType::Created(n) if n > 0);
    for what in [Selector::Tag("live".into()), Selector::Key("v.test\n/inflight.ts".into())] {
        let mut w = s.get_miss_handler(&k, &tagged_meta("live"), &span()).await.unwrap();
        w.write_body(Bytes::from_static(b"before "), false).await.unwrap();
        let (_, mut joined) = s.lookup(&k, &span()).await.unwrap().unwrap();
        assert_eq!(&joined.read_body().await.unwrap().unwrap()[..], b"before ");
        let purged = s.purge_selected(&what, false, SystemTime::now());
        assert_eq!((purged.objects.len(), purged.fills.len()), (0, 1), "{what:?}");
        // No new reader joins it; it finishes for the readers it has and is not stored.
        assert!(s.lookup(&k, &span()).await.unwrap().is_none(), "{what:?}");
        w.write_body(Bytes::from_static(b"after"), true).await.unwrap();
        assert!(!stored(w.finish().await.unwrap()), "{what:?}: stored after the purge");
        assert_eq!(read_all(&mut joined).await.unwrap(), b"after", "{what:?}: a reader that had joined gets the rest");
        assert_eq!(s.objects(), 0);
    }
    // A fill that starts after the purge is stored as usual.
    let mut w = s.get_miss_handler(&k, &tagged_meta("live"), &span()).await.unwrap();
    w.write_body(Bytes::from_static(b"new"), true).await.unwrap();
    assert!(stored(w.finish().await.unwrap()));
}

#[tokio::test]
async fn a_tag_purge_in_a_large_tagged_cache_removes_exactly_its_objects() {
    // 100,000 objects over 10,000 tags (ten objects each), every object also tagged `all`.
    let s = store();
    for i in 0..100_000 {
        fill(s, &format!("/o/{i}"), &tagged_meta(&format!("t{} all", i % 10_000))).await;
    }
    assert_eq!((s.objects(), s.tag_count()), (100_000, 10_001));
    let purged = s.purge_selected(&Selector::Tag("t42".into()), false, SystemTime::now());
    assert_eq!(purged.objects.len(), 10);
    assert_eq!((s.objects(), s.tag_count()), (99_990, 10_000));
    assert!(s.lookup(&key("/o/42"), &span()).await.unwrap().is_none());
    assert!(s.lookup(&key("/o/43"), &span()).await.unwrap().is_some());
    assert_eq!(s.purge_selected(&Selector::Tag("all".into()), false, SystemTime::now()).objects.len(), 99_990);
    assert_eq!((s.objects(), s.bytes(), s.tag_count()), (0, 0, 0));
}
