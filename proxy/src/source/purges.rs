//! `PurgeFeed`: the fleet's purges from dime-control. Beside the route table's long-poll, the edge long-polls
//! `GET /v1/purges?after=SEQ&log=UID` on the same control URLs (same token, TLS and failover; the edge opens no
//! port), applies each purge in order as it comes, and its next poll's `after` tells control it did (control
//! writes that into the edge's Lease, where every replica reads it). An edge that was cut off gets every purge it
//! missed on its first poll back; one that missed more than the log holds is told so and drops its whole cache,
//! since nothing in it is provably fresh.
//!
//! With a disk tier, the cursor is kept in the cache directory after each answer, and the disk tier serves
//! nothing after a start until the first answer is applied: a restarted edge first applies what it missed (or
//! drops its disk cache on a gap, or when it has no cursor to prove where it stopped).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dime_routes::purge::Feed;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::control::{backoff, body, fail, get, open, ControlUrl, FetchError, ANSWER_SLACK, LONG_POLL};
use crate::cache::storage::Selector;
use crate::cache::Cache;
use crate::metrics::config::FetchFailure;
use crate::state::State;

/// The largest feed answer accepted (control's log is bounded well under this).
const MAX_FEED: usize = 8 << 20;

pub struct PurgeFeed {
    pub urls: Vec<ControlUrl>,
    pub tls: Option<pingora_rustls::TlsConnector>,
    pub token: String,
    pub edge_name: String,
    pub state: Arc<State>,
    pub cache: Arc<Cache>,
}

impl std::fmt::Debug for PurgeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurgeFeed").field("urls", &self.urls).finish_non_exhaustive()
    }
}

/// Where this edge is in control's purge log: the log's uid and the last purge applied.
pub type Cursor = Option<(String, u64)>;

/// The feed request for `cursor`: `None` (this edge followed no log yet) asks for every purge held.
pub fn target(cursor: &Cursor, wait: Duration) -> String {
    let mut target = format!("/v1/purges?wait={}s", wait.as_secs());
    if let Some((log, seq)) = cursor {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("after", &seq.to_string())
            .append_pair("log", log)
            .finish();
        target.push('&');
        target.push_str(&query);
    }
    target
}

impl PurgeFeed {
    async fn poll(&self, url: &ControlUrl, cursor: &Cursor, wait: Duration) -> Result<Feed, FetchError> {
        let exchange = async {
            let stream = open(url, self.tls.as_ref()).await?;
            let said = [("x-dime-edge", self.edge_name.clone())];
            let resp = get(stream, url, &self.token, &target(cursor, wait), &said).await?;
            if resp.status() != http::StatusCode::OK {
                return Err(fail(FetchFailure::Status, format!("the purge feed answered {}", resp.status())));
            }
            let bytes = body(resp, MAX_FEED).await?;
            serde_json::from_slice::<Feed>(&bytes).map_err(|e| fail(FetchFailure::Body, format!("the purge feed: {e}")))
        };
        tokio::time::timeout(wait + ANSWER_SLACK, exchange)
            .await
            .map_err(|_| fail(FetchFailure::Timeout, format!("no answer within {:?}", wait + ANSWER_SLACK)))?
    }

    /// Applies what the feed gave, in order; the cursor after it.
    pub fn apply(&self, cursor: &Cursor, feed: Feed) -> Cursor {
        if feed.gap {
            let (dropped, fills) = crate::purge::purge_one(&self.state, &self.cache, &Selector::All, false);
            self.state.metrics.purge.gaps.inc();
            tracing::warn!(
                applied = ?cursor,
                log = feed.log,
                log_head = feed.head,
                dropped,
                fills_abandoned = fills,
                "missed fleet purges that control's purge log no longer holds: dropped every cached object, since none is provably fresh"
            );
        }
        for entry in &feed.purges {
            let (purged, fills) = crate::purge::apply(&self.state, &self.cache, &entry.purge);
            self.state.metrics.purge.applied.inc();
            tracing::info!(
                id = entry.seq,
                targets = entry.purge.targets(),
                soft = entry.purge.soft,
                purged,
                fills_abandoned = fills,
                "fleet purge applied"
            );
        }
        let applied = feed.purges.last().map_or(feed.head, |e| e.seq.max(feed.head));
        self.state.metrics.purge.applied_seq.set(applied as i64);
        if let Some(disk) = self.cache.store.disk() {
            disk.save_cursor(&feed.log, applied);
            disk.caught_up();
        }
        Some((feed.log, applied))
    }

    /// Where to start: the cursor kept with the disk cache. Without one, objects on disk cannot be shown to have
    /// outlived no purge, so they are dropped before the disk tier opens.
    fn first_cursor(&self) -> Cursor {
        let disk = self.cache.store.disk()?;
        let saved = disk.saved_cursor();
        if saved.is_none() {
            let dropped = disk.purge(&Selector::All).len();
            tracing::warn!(
                dropped,
                "no record of the fleet purges this edge applied before it stopped: the disk cache is dropped (objects still loading are dropped as they load)"
            );
        }
        saved
    }

    /// One pass over the control URLs, in order, until one answers.
    async fn pass(&self, cursor: &mut Cursor, wait: Duration, failures: u32) -> bool {
        for url in &self.urls {
            match self.poll(url, cursor, wait).await {
                Ok(feed) => {
                    *cursor = self.apply(cursor, feed);
                    return true;
                }
                Err(e) => {
                    self.state.metrics.purge.feed_failures(e.reason).inc();
                    if failures == 0 || failures.is_power_of_two() {
                        tracing::warn!(control = %url.text, reason = e.reason.as_str(), error = %e.message, consecutive_failures = failures, "cannot get purges from control; purges made meanwhile are applied when it answers");
                    }
                }
            }
        }
        false
    }
}

#[async_trait]
impl BackgroundService for PurgeFeed {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut cursor: Cursor = self.first_cursor();
        let mut failures: u32 = 0;
        let mut first = true;
        loop {
            // The first poll does not wait: control answers it at once with every purge it holds after the
            // cursor (a restarted edge's disk cache waits for that answer).
            let wait = if first { Duration::ZERO } else { LONG_POLL };
            let answered = tokio::select! {
                a = self.pass(&mut cursor, wait, failures) => a,
                _ = shutdown.changed() => return,
            };
            if answered {
                first = false;
                failures = 0;
                continue;
            }
            failures = failures.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(backoff(failures, fastrand::f64())) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_is_asked_from_the_cursor() {
        assert_eq!(target(&None, Duration::ZERO), "/v1/purges?wait=0s");
        let at = Some(("0c1d-uid".to_owned(), 42));
        assert_eq!(target(&at, LONG_POLL), "/v1/purges?wait=30s&after=42&log=0c1d-uid");
    }
}
