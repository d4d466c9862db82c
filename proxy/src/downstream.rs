//! What happens to a client connection before and around the proxy's requests: it waits for the first route
//! table (so a starting edge never answers 503 because it is starting), is refused past `--max-connections`, and
//! is closed when it is too slow to send a request header (`--header-timeout`) or idle too long between
//! requests (`--keepalive-timeout`).
//!
//! The clock is per connection and lives in a task-local: HTTP/1 requests run in their connection's task, so
//! the proxy phases mark "request header read" and "response done" ([`request_started`], [`request_done`])
//! without any lookup. HTTP/2 streams run in tasks of their own, so HTTP/2 connections (negotiated by ALPN) get
//! no clock; Pingora's h2 idle timeout bounds them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;

use crate::metrics::http::Closed;
use crate::metrics::Metrics;
use crate::state::State;

/// Bounds on downstream client connections (HTTP and HTTPS entrypoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// From accepting a connection to its first complete request header.
    pub header_timeout: Duration,
    /// Idle time allowed between requests on a kept-alive connection (which also bounds a later request's
    /// header).
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(15),
            keepalive_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// How long a connection accepted before the first route table waits for one; after that its request is
/// answered as usual (503 without a table).
pub const START_HOLD: Duration = Duration::from_secs(30);

const HEADER: u64 = 0;
const BUSY: u64 = 1;
const IDLE: u64 = 2;

/// Where a connection is in its request cycle: the phase in the low 2 bits, a count of phase changes above
/// them. The proxy phases only store to it (no clock read, no wake-up: this runs twice per request); the
/// watchdog reads it when its own timer fires.
#[derive(Debug, Default)]
struct Clock {
    state: AtomicU64,
}

impl Clock {
    fn set(&self, phase: u64) {
        let changes = (self.state.load(Ordering::Relaxed) >> 2) + 1;
        self.state.store((changes << 2) | phase, Ordering::Relaxed);
    }
}

tokio::task_local! {
    static CLOCK: Arc<Clock>;
}

/// A request header was read on this connection: no timeout runs while it is served.
pub fn request_started() {
    let _ = CLOCK.try_with(|c| c.set(BUSY));
}

/// The response was sent: the connection is idle until its next request.
pub fn request_done() {
    let _ = CLOCK.try_with(|c| c.set(IDLE));
}

/// Waits until the connection has stayed in the header or idle phase, unchanged, for that phase's limit; the
/// reason (counted in `dime_downstream_closed_total`). The watchdog looks every quarter of the
/// shorter limit and times a phase from when it first sees it, so a connection is closed at most half that
/// shorter limit late, and an idle one never early.
async fn watch(clock: &Clock, limits: ClientLimits) -> Closed {
    let step = (limits.header_timeout.min(limits.keepalive_timeout) / 4).max(Duration::from_millis(10));
    let mut seen = clock.state.load(Ordering::Relaxed);
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(step).await;
        let now = clock.state.load(Ordering::Relaxed);
        if now != seen {
            (seen, since) = (now, tokio::time::Instant::now());
            continue;
        }
        let (limit, reason) = match seen & 3 {
            HEADER => (limits.header_timeout, Closed::HeaderTimeout),
            IDLE => (limits.keepalive_timeout, Closed::KeepaliveTimeout),
            // Serving: requests have their own upstream timeouts.
            _ => continue,
        };
        if since.elapsed() >= limit {
            return reason;
        }
    }
}

/// Wraps the HTTP proxy app with the connection rules above and counts connections (`dime_http_connections_*`,
/// which the shutdown drain waits on).
pub struct Downstream<A> {
    pub inner: Arc<A>,
    pub metrics: Arc<Metrics>,
    pub state: Arc<State>,
    pub limits: ClientLimits,
}

impl<A> std::fmt::Debug for Downstream<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstream").field("limits", &self.limits).finish()
    }
}

struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.http.connections_open.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Downstream<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let m = &self.metrics.http;
        m.connections.inc();
        if m.connections_open.get() >= self.limits.max_connections as i64 {
            // Closed before a byte is read: the client sees a clean close, everyone else is unaffected.
            m.closed(Closed::MaxConnections).inc();
            return None;
        }
        m.connections_open.inc();
        let _open = OpenConnection(self.metrics.clone());
        if !self.state.wait_ready(START_HOLD).await {
            tracing::warn!(waited = ?START_HOLD, "a client connection waited for the first route table in vain; it gets 503");
        }
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2 streams run in tasks of their own, out of this clock's sight: Pingora's h2 idle timeout
            // bounds these connections instead (set from --keepalive-timeout).
            let mut next = self.inner.process_new(stream, shutdown).await;
            while let Some(stream) = next {
                next = self.inner.process_new(stream, shutdown).await;
            }
            return None;
        }
        let clock = Arc::new(Clock::default());
        let serve = CLOCK.scope(clock.clone(), async {
            let mut next = self.inner.process_new(stream, shutdown).await;
            while let Some(stream) = next {
                next = self.inner.process_new(stream, shutdown).await;
            }
        });
        tokio::select! {
            // The connection first: no random branch order on every wake-up of this task.
            biased;
            () = serve => {}
            reason = watch(&clock, self.limits) => {
                // Dropping the connection's future closes it; a request in progress is never cut (BUSY).
                self.metrics.http.closed(reason).inc();
                tracing::debug!(reason = reason.as_str(), "closed a client connection");
            }
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn limits() -> ClientLimits {
        ClientLimits {
            header_timeout: Duration::from_secs(15),
            keepalive_timeout: Duration::from_secs(60),
            max_connections: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_header_is_closed_at_the_header_timeout() {
        let clock = Clock::default();
        let started = Instant::now();
        assert_eq!(watch(&clock, limits()).await.as_str(), "header-timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_is_never_cut_and_idle_time_counts_from_the_response() {
        let clock = Arc::new(Clock::default());
        clock.set(BUSY);
        let started = Instant::now();
        let c = clock.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(100)).await;
            c.set(IDLE);
        });
        assert_eq!(watch(&clock, limits()).await.as_str(), "keepalive-timeout");
        let closed = started.elapsed();
        // Idle from 100 s: closed after the 60 s keep-alive, at most two looks (3.75 s each) later.
        assert!(closed >= Duration::from_secs(160) && closed <= Duration::from_millis(167_500), "{closed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn activity_keeps_a_connection_open() {
        let clock = Arc::new(Clock::default());
        let c = clock.clone();
        tokio::spawn(async move {
            // A request every 50 s for 500 s, each answered at once.
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(50)).await;
                c.set(BUSY);
                c.set(IDLE);
            }
        });
        let started = Instant::now();
        let mut limits = limits();
        limits.header_timeout = Duration::from_secs(60);
        assert_eq!(watch(&clock, limits).await.as_str(), "keepalive-timeout");
        assert!(started.elapsed() >= Duration::from_secs(500 + 60), "{:?}", started.elapsed());
    }
}
