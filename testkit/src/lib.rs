//! What Dime's integration tests share: the test origin ([`Origin`], told what to do by [`ask`]), one harness for
//! a real `dime-edge` process ([`Edge`]), waiting on a condition ([`eventually`]), where the workspace's
//! binaries are, and what the property tests over bad input share ([`fuzz`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_debug_implementations)]

pub mod edge;
pub mod fuzz;
pub mod origin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use edge::{Edge, Reply};
pub use origin::{ask, pattern, pattern_body, Ask, Behaviour, Origin};

/// A port that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    free_addr().port()
}

/// A free loopback port (see [`free_addr`]).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A loopback address free when asked (bound, then released), for a process the test starts to listen on. It
/// is taken below the kernel's ephemeral range (32768–60999 by default), where port 0 would put it: there, any
/// outgoing connection of a parallel test may take it as its local port before the process binds it (seen:
/// Pingora retrying "address in use" while an ACME validation failed). Each call in a test binary gets another
/// port; the start differs per process.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let port = FIRST + start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            return listener.local_addr().unwrap();
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A binary of this workspace (`dime-edge`, `dime-control`), from the target directory the running test was
/// built in. Cargo builds a package's own binaries before its integration tests, and `cargo test --workspace`
/// (what `scripts/test` runs) builds every binary before any test; a test of one package that runs another
/// package's binary after `cargo test -p` alone stops here, saying what to build, rather than run a stale one.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join(name);
    // The binary's own sources: an edit there always makes cargo link it again (test-only edits do not).
    let dir = match name {
        "dime-edge" => "proxy/src",
        "dime-control" => "control/src",
        other => panic!("no binary {other} in this workspace"),
    };
    let sources = [dir, "routes/src", "client/src"].iter().map(|p| newest(&repo().join(p))).max().unwrap();
    let built = binary.metadata().and_then(|m| m.modified()).ok();
    assert!(
        built.is_some_and(|b| b >= sources),
        "{} is missing or older than its sources: build it with `cargo build --bin {name}` (or run `cargo test --workspace`)",
        binary.display()
    );
    binary
}

/// Newest modification time of `path` (a file, or the files under a directory), leaving out unit-test files
/// (`tests.rs`): the binary is not linked again when only they change.
fn newest(path: &Path) -> std::time::SystemTime {
    let own = path.metadata().and_then(|m| m.modified()).unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    if !path.is_dir() {
        return if path.file_name().is_some_and(|n| n == "tests.rs") { std::time::SystemTime::UNIX_EPOCH } else { own };
    }
    std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| newest(&e.path())).fold(own, std::cmp::max)
}

/// Calls `check` every `every` until it gives a value; after `limit`, fails with `what` and `detail()` (read at
/// failure time, e.g. a log).
pub async fn eventually<T, Fut>(
    limit: Duration,
    every: Duration,
    what: &str,
    detail: impl Fn() -> String,
    mut check: impl FnMut() -> Fut,
) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}\n{}", detail());
        tokio::time::sleep(every).await;
    }
}
