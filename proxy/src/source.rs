//! Route sources. `FileSource` watches a routes file: each change is read, validated and applied atomically; an
//! invalid change is rejected as a whole and the table in service stays. [`control::ControlSource`] pulls the
//! table from dime-control, and [`purges::PurgeFeed`] the fleet's purges.

pub mod control;
pub mod purges;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::state::{EmptyTable, State};

/// How often the file is looked at. Reading a small file four times a second costs nothing and catches every
/// way editors and Kubernetes volume updates replace files (in place, rename, symlink swap).
pub const POLL: Duration = Duration::from_millis(250);
/// How long a changed file must stay unchanged before it is read as final.
pub const SETTLE: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct FileSource {
    pub path: PathBuf,
    pub state: Arc<State>,
}

/// A fast fingerprint to notice changes; the table's own version is its real identity.
fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl FileSource {
    fn source(&self) -> String {
        format!("file:{}", self.path.display())
    }

    /// Reads and validates the file. Errors name the file and every problem in it.
    pub fn load(&self) -> Result<dime_routes::RouteTable, dime_routes::RouteErrors> {
        let name = self.path.display().to_string();
        match std::fs::read_to_string(&self.path) {
            Ok(text) => dime_routes::parse(&name, &text),
            Err(e) => Err(dime_routes::RouteErrors(vec![dime_routes::RouteError::new(
                dime_routes::Location::new(&name, ""),
                format!("cannot read: {e}"),
            )])),
        }
    }

    /// One look at the file; `last` is the fingerprint of the content last handled.
    async fn poll_once(&self, last: &mut Option<u64>) {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                let fingerprint = Some(u64::MAX);
                if *last != fingerprint {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot read routes file; the active table keeps serving");
                    *last = fingerprint;
                }
                return;
            }
        };
        let fingerprint = Some(content_hash(&bytes));
        if *last == fingerprint {
            return;
        }
        // A writer that truncates and rewrites in place can be caught half way: only take content that reads
        // the same twice in a row.
        tokio::time::sleep(SETTLE).await;
        if std::fs::read(&self.path).ok().map(|b| content_hash(&b)) != fingerprint {
            return;
        }
        *last = fingerprint;
        let name = self.path.display().to_string();
        let text = String::from_utf8_lossy(&bytes);
        match dime_routes::parse(&name, &text) {
            Ok(table) => self.state.apply(table, &self.source(), EmptyTable::Refused).await,
            Err(errors) => self.state.reject(&self.source(), &errors),
        }
    }
}

#[async_trait]
impl BackgroundService for FileSource {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut last = None;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.poll_once(&mut last).await;
        }
    }
}
