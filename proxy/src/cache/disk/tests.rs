use std::sync::atomic::AtomicUsize;
use std::sync::Mutex as StdMutex;

use std::os::unix::fs::FileExt;

use super::*;

#[derive(Default)]
struct Counts {
    errors: StdMutex<Vec<&'static str>>,
    hits: AtomicUsize,
    written: AtomicUsize,
    evicted: AtomicUsize,
    enabled: StdMutex<Vec<bool>>,
}

struct Seen(Arc<Counts>);

impl DiskObserver for Seen {
    fn stored(&self, _bytes: usize, _objects: usize) {}
    fn hit(&self) {
        self.0.hits.fetch_add(1, Ordering::Relaxed);
    }
    fn written(&self) {
        self.0.written.fetch_add(1, Ordering::Relaxed);
    }
    fn evicted(&self) {
        self.0.evicted.fetch_add(1, Ordering::Relaxed);
    }
    fn error(&self, kind: DiskError) {
        self.0.errors.lock().unwrap().push(kind.as_str());
    }
    fn enabled(&self, on: bool) {
        self.0.enabled.lock().unwrap().push(on);
    }
    fn loaded(&self, _seconds: f64) {}
}

struct Obj {
    head: Head,
    body: Vec<u8>,
}

impl Persist for Obj {
    fn head(&self) -> io::Result<Head> {
        Ok(self.head.clone())
    }
    fn body_len(&self) -> u64 {
        self.body.len() as u64
    }
    fn body(&self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        for piece in self.body.chunks(1000) {
            out(piece)?;
        }
        Ok(())
    }
}

fn key(url: &str) -> CompactCacheKey {
    let mut primary = HashBinary::default();
    let digest = crc32fast::hash(url.as_bytes()).to_le_bytes();
    primary[..4].copy_from_slice(&digest);
    primary[4..8].copy_from_slice(&(url.len() as u32).to_le_bytes());
    CompactCacheKey { primary, variance: None, user_tag: "".into() }
}

fn obj(url: &str, tags: &[&str], len: usize) -> (HashBinary, Arc<Obj>) {
    let compact = key(url);
    let head = Head {
        primary: url.to_owned(),
        compact: compact.clone(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        meta_internal: vec![1],
        meta_header: vec![2],
    };
    let body = (0..len).map(|i| (i % 251) as u8).collect();
    (compact.combined_bin(), Arc::new(Obj { head, body }))
}

fn open(dir: &Path, size: usize) -> (Arc<DiskTier>, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let tier = DiskTier::open(&DiskSettings { dir: dir.to_owned(), size }, Box::new(Seen(counts.clone()))).unwrap();
    tier.load_now();
    (tier, counts)
}

fn put(tier: &Arc<DiskTier>, url: &str, tags: &[&str], len: usize) -> HashBinary {
    let (hash, o) = obj(url, tags, len);
    let tags: Box<[Arc<str>]> = tags.iter().map(|t| Arc::from(*t)).collect();
    tier.write(hash, url.into(), tags, o.head.compact.clone(), o);
    hash
}

/// Waits for the blocking writes to land.
async fn settle(tier: &DiskTier, counts: &Counts, writes: usize) {
    for _ in 0..500 {
        if counts.written.load(Ordering::Relaxed) + counts.errors.lock().unwrap().len() >= writes
            && tier.pending.load(Ordering::Relaxed) == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("writes did not finish");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for d in std::fs::read_dir(dir.join("objects")).unwrap().flatten() {
        all.extend(std::fs::read_dir(d.path()).unwrap().flatten().map(|f| f.path()));
    }
    all
}

#[tokio::test]
async fn objects_survive_a_restart_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 10 << 20);
    let a = put(&tier, "v.test\n/a.mp4", &["show"], 300_000);
    let b = put(&tier, "v.test\n/b.mp4", &[], 10);
    settle(&tier, &counts, 2).await;
    drop(tier);

    let (again, counts) = open(dir.path(), 10 << 20);
    assert_eq!(again.held().0, 2);
    for (hash, len) in [(a, 300_000), (b, 10)] {
        let ticket = again.lookup(&hash).expect("indexed after the restart");
        let open = again.open_checked(&hash, ticket).expect("read back");
        assert_eq!(open.body_len, len as u64);
        let mut body = vec![0; len];
        open.file.read_exact_at(&mut body, open.body_offset).unwrap();
        assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }
    assert_eq!(counts.hits.load(Ordering::Relaxed), 2);
    // A new write after the restart does not reuse a ticket (a file of the old run is never overwritten).
    let c = put(&again, "v.test\n/c.mp4", &[], 10);
    settle(&again, &counts, 1).await;
    assert!(again.lookup(&c).unwrap() > again.lookup(&a).unwrap().max(again.lookup(&b).unwrap()));
}

#[tokio::test]
async fn damaged_files_are_never_served_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 10 << 20);
    let urls = ["v.test\n/flip", "v.test\n/cut", "v.test\n/gone", "v.test\n/garbage", "v.test\n/fine"];
    let hashes: Vec<HashBinary> = urls.iter().map(|u| put(&tier, u, &[], 5000)).collect();
    settle(&tier, &counts, urls.len()).await;
    let path = |i: usize| tier.object_path(&hashes[i], tier.lookup(&hashes[i]).unwrap());
    // A flipped byte in the body: found when read (the index loads heads only).
    let mut bytes = std::fs::read(path(0)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(path(0), bytes).unwrap();
    // Truncated, deleted, garbage.
    let cut = std::fs::OpenOptions::new().write(true).open(path(1)).unwrap();
    cut.set_len(100).unwrap();
    std::fs::remove_file(path(2)).unwrap();
    std::fs::write(path(3), vec![0x42; 6000]).unwrap();

    // Read in this run: every damaged one is refused and forgotten; the intact one is served.
    for (i, hash) in hashes.iter().enumerate().take(3) {
        let ticket = tier.lookup(hash).unwrap();
        assert!(tier.open_checked(hash, ticket).is_none(), "{} was served", urls[i]);
        assert!(tier.lookup(hash).is_none(), "{} still indexed", urls[i]);
    }
    assert!(tier.open_checked(&hashes[4], tier.lookup(&hashes[4]).unwrap()).is_some());
    assert_eq!(*counts.errors.lock().unwrap(), ["checksum", "truncated", "io"]);

    // At the next start, the garbage file is refused from its head.
    drop(tier);
    let (again, counts) = open(dir.path(), 10 << 20);
    assert_eq!(again.held().0, 1, "only the intact object is indexed");
    assert_eq!(*counts.errors.lock().unwrap(), ["garbled"]);
    assert_eq!(files(dir.path()).len(), 1, "damaged files are deleted");
}

#[tokio::test]
async fn purges_remove_disk_copies_by_url_prefix_and_tag_and_cancel_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 10 << 20);
    let a = put(&tier, "v.test\n/show/1.ts", &["show"], 100);
    let b = put(&tier, "v.test\n/show/2.ts", &[], 100);
    let c = put(&tier, "v.test\n/other.ts", &["other", "show"], 100);
    let d = put(&tier, "v.test\n/kept.ts", &["other"], 100);
    settle(&tier, &counts, 4).await;
    assert_eq!(tier.purge(&Selector::Key("v.test\n/show/1.ts".into())).len(), 1);
    assert!(tier.lookup(&a).is_none());
    assert_eq!(tier.purge(&Selector::Prefix("v.test\n/show/".into())).len(), 1);
    assert!(tier.lookup(&b).is_none());
    assert_eq!(tier.purge(&Selector::Tag("show".into())).len(), 1);
    assert!(tier.lookup(&c).is_none());
    assert!(tier.lookup(&d).is_some(), "an object the purges did not name stays");
    assert_eq!(files(dir.path()).len(), 1);

    // A write the purge meets before its file is in place is cancelled, not stored after the purge.
    let e = put(&tier, "v.test\n/late.ts", &[], 100);
    assert_eq!(tier.purge(&Selector::Key("v.test\n/late.ts".into())).len(), 1);
    // Written and then removed, or cancelled before its file was in place: either way settled and gone.
    settle(&tier, &counts, 4).await;
    assert!(tier.lookup(&e).is_none());
    assert_eq!(files(dir.path()).len(), 1);
}

#[tokio::test]
async fn purges_met_while_the_index_loads_apply_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 10 << 20);
    let a = put(&tier, "v.test\n/a", &["t"], 100);
    let b = put(&tier, "v.test\n/b", &[], 100);
    settle(&tier, &counts, 2).await;
    drop(tier);
    let counts = Arc::new(Counts::default());
    let settings = DiskSettings { dir: dir.path().to_owned(), size: 10 << 20 };
    let again = DiskTier::open(&settings, Box::new(Seen(counts))).unwrap();
    assert!(again.lookup(&a).is_none(), "nothing is served before the index is loaded");
    assert!(again.purge(&Selector::Tag("t".into())).is_empty(), "kept for later");
    again.load_now();
    assert!(again.lookup(&a).is_none(), "the purge met while loading applied");
    assert!(again.lookup(&b).is_some());
}

#[tokio::test]
async fn a_crash_during_the_load_loses_no_purge() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 10 << 20);
    let a = put(&tier, "v.test\n/a", &["t"], 100);
    put(&tier, "v.test\n/b", &[], 100);
    settle(&tier, &counts, 2).await;
    tier.save_cursor("log", 4);
    drop(tier);
    let reopen = || {
        let settings = DiskSettings { dir: dir.path().to_owned(), size: 10 << 20 };
        DiskTier::open(&settings, Box::new(Seen(Arc::new(Counts::default())))).unwrap()
    };
    // Purge 5 arrives while the index loads, and the edge saves its cursor past it; then the process dies
    // (SIGKILL) before the load ends.
    let loading = reopen();
    assert!(loading.purge(&Selector::Tag("t".into())).is_empty(), "queued");
    loading.save_cursor("log", 5);
    assert_eq!(loading.saved_cursor(), Some(("log".to_owned(), 4)), "not past a purge that is not on disk yet");
    drop(loading);
    assert_eq!(files(dir.path()).len(), 2, "the purged file is still on disk");
    // The restart asks control for what came after 4, purge 5 again, and applies it; only then is 5 kept.
    let restarted = reopen();
    assert_eq!(restarted.saved_cursor(), Some(("log".to_owned(), 4)));
    assert!(restarted.purge(&Selector::Tag("t".into())).is_empty());
    restarted.save_cursor("log", 5);
    restarted.load_now();
    assert!(restarted.lookup(&a).is_none(), "the purged object is never served");
    assert_eq!(files(dir.path()).len(), 1, "its file is gone");
    assert_eq!(restarted.saved_cursor(), Some(("log".to_owned(), 5)), "saved once the purge is on disk");
    restarted.save_cursor("log", 6);
    assert_eq!(restarted.saved_cursor(), Some(("log".to_owned(), 6)), "loaded: saved at once");
}

#[tokio::test]
async fn a_cursor_of_no_log_yet_reads_back_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 10 << 20);
    put(&tier, "v.test\n/a", &[], 100);
    settle(&tier, &counts, 1).await;
    // Control had no purge log yet: nothing to apply, and the disk cache is provably fresh.
    tier.save_cursor("", 0);
    assert_eq!(tier.saved_cursor(), Some((String::new(), 0)), "not 'no cursor', which drops the disk cache");
}

#[tokio::test]
async fn the_byte_budget_holds_and_evicts_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 50_000);
    // One at a time, so the order of the writes is the order of the keys.
    let mut hashes = Vec::new();
    for i in 0..30 {
        hashes.push(put(&tier, &format!("v.test\n/{i}"), &[], 5000));
        settle(&tier, &counts, i + 1).await;
    }
    let (objects, bytes) = tier.held();
    assert!(bytes <= 50_000, "{bytes} bytes on disk with a 50,000-byte budget");
    assert!(objects >= 8, "{objects} objects kept");
    assert!(counts.evicted.load(Ordering::Relaxed) >= 20);
    let on_disk: u64 = files(dir.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(on_disk, bytes, "the files are what the index counts");
    assert!(tier.lookup(&hashes[29]).is_some(), "the newest is kept");
    assert!(tier.lookup(&hashes[0]).is_none(), "the oldest went");
}

#[tokio::test]
async fn a_directory_that_refuses_writes_turns_the_tier_off_without_errors_to_callers() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, counts) = open(dir.path(), 10 << 20);
    // The tmp directory vanishing stands for a disk that refuses writes (root ignores permission bits).
    std::fs::remove_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(dir.path().join("tmp"), b"not a directory").unwrap();
    let a = put(&tier, "v.test\n/a", &[], 100);
    settle(&tier, &counts, 1).await;
    assert!(tier.lookup(&a).is_none());
    assert_eq!(*counts.errors.lock().unwrap(), ["io"]);
    // An ENOSPC/EROFS error (not simulated here) also disables the tier; ordinary I/O errors only drop the object.
    assert_eq!(*counts.enabled.lock().unwrap(), [true]);
}

#[test]
fn file_names_parse_back() {
    let hash: HashBinary = [0xab; 16];
    let name = format!("{}.{:x}", hex(&hash), 4242u64);
    assert_eq!(load::tests_parse_name(&name), Some((hash, 4242)));
    assert_eq!(load::tests_parse_name("zz.1"), None);
    assert_eq!(load::tests_parse_name(&format!("{}.", hex(&hash))), None);
}
