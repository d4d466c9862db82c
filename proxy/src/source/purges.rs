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
use dime_client::Control;
use dime_routes::wire::{Cursor, Feed, FeedQuery, Report};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::control::{backoff, LONG_POLL};
use crate::cache::select::Selector;
use crate::cache::Cache;
use crate::state::State;

pub struct PurgeFeed {
    /// The route table's control URLs, token and client.
    pub controls: Vec<Control>,
    pub edge_name: String,
    pub state: Arc<State>,
    pub cache: Arc<Cache>,
    /// The fleet, told each cursor once its purges are applied (the purge fence, [`crate::fleet::Fleet::behind`]).
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

impl std::fmt::Debug for PurgeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.controls.iter().map(|c| c.url.text.as_str()).collect();
        f.debug_struct("PurgeFeed").field("urls", &urls).finish_non_exhaustive()
    }
}

impl PurgeFeed {
    /// Applies what the feed gave, in order; the cursor after it.
    pub fn apply(&self, cursor: Option<&Cursor>, feed: Feed) -> Cursor {
        if let Some(fleet) = &self.fleet {
            // Before anything is purged: an owner's answer that does not cover these purges is not stored here.
            fleet.set_purging(feed.cursor_after(cursor));
        }
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
        let after = feed.cursor_after(cursor);
        self.state.metrics.purge.applied_seq.set(after.applied as i64);
        if let Some(disk) = self.cache.store.disk() {
            disk.save_cursor(&after.log, after.applied);
            disk.caught_up();
        }
        if let Some(fleet) = &self.fleet {
            fleet.set_purged(after.clone());
        }
        after
    }

    /// Where to start: the cursor kept with the disk cache. Without one, objects on disk cannot be shown to have
    /// outlived no purge, so they are dropped before the disk tier opens.
    fn first_cursor(&self) -> Option<Cursor> {
        let disk = self.cache.store.disk()?;
        let saved = disk.saved_cursor().map(|(log, applied)| Cursor { log, applied });
        if saved.is_none() {
            let dropped = disk.purge(&Selector::All).len();
            tracing::warn!(
                dropped,
                "no record of the fleet purges this edge applied before it stopped: the disk cache is dropped (objects still loading are dropped as they load)"
            );
        }
        saved
    }

    /// One pass over the control URLs, from `first` on and around, until one answers. After an answer with
    /// nothing new (a long-poll that ended empty), the next pass asks the next URL first: a replica whose watch
    /// is stuck holds no edge for longer than one long-poll, whether the edge is ahead of it (it applied purges
    /// through another replica: counted) or level with it (purges taken by another replica never reach it).
    async fn pass(&self, cursor: &mut Option<Cursor>, first: &mut usize, wait: Duration, failures: u32) -> bool {
        let query = FeedQuery::new(cursor.as_ref(), wait);
        let n = self.controls.len();
        for k in (0..n).map(|i| (*first + i) % n) {
            let control = &self.controls[k];
            match control.purges(&query, &Report::named(&self.edge_name)).await {
                Ok(feed) => {
                    if feed.behind(cursor.as_ref()) {
                        self.state.metrics.purge.replica_behind.inc();
                        tracing::debug!(control = %control.url.text, log_head = feed.head, applied = ?cursor, "control replica is behind this edge's purges");
                    }
                    if n > 1 && !feed.gap && feed.purges.is_empty() {
                        *first = (k + 1) % n;
                    }
                    *cursor = Some(self.apply(cursor.as_ref(), feed));
                    return true;
                }
                Err(e) => {
                    self.state.metrics.purge.feed_failures(e.reason.into()).inc();
                    if failures == 0 || failures.is_power_of_two() {
                        let url = &control.url.text;
                        tracing::warn!(control = %url, reason = e.reason.as_str(), error = %e.message, consecutive_failures = failures, "cannot get purges from control; purges made meanwhile are applied when it answers");
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
        let mut cursor = self.first_cursor();
        let mut first_url = 0;
        let mut failures: u32 = 0;
        let mut first = true;
        loop {
            // The first poll does not wait: control answers it at once with every purge it holds after the
            // cursor (a restarted edge's disk cache waits for that answer).
            let wait = if first { Duration::ZERO } else { LONG_POLL };
            let answered = tokio::select! {
                a = self.pass(&mut cursor, &mut first_url, wait, failures) => a,
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
