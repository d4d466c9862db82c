//! Layer-4 forwarding for TCP entrypoints (RTMP publishing on 1935): every connection of an entrypoint goes to
//! its route's upstream, bytes both ways, half-close preserved.
//!
//! A connection is checked once, when it arrives (allowlist, connection limit), against the route table of that
//! moment, and then lives on its own: route reloads never touch established connections.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::tcp::{TcpDirection, TcpRefusal};
use crate::state::State;

/// Copy buffer per direction. RTMP pushes a few Mbit/s; 64 KiB keeps syscalls few without wasting memory on
/// thousands of idle connections.
const BUFFER: usize = 64 * 1024;

/// One TCP entrypoint (`--tcp NAME=ADDR`).
#[derive(Debug)]
pub struct TcpProxy {
    pub entrypoint: String,
    pub state: Arc<State>,
    /// How long connections of a route that was removed (or moved off this entrypoint) may go on.
    pub drain_timeout: Duration,
    /// Open connections per route name, kept across reloads so limits count connections of older tables too.
    open: Mutex<HashMap<String, Arc<AtomicU32>>>,
}

impl TcpProxy {
    pub fn new(entrypoint: String, state: Arc<State>, drain_timeout: Duration) -> Self {
        TcpProxy { entrypoint, state, drain_timeout, open: Mutex::new(HashMap::new()) }
    }

    /// Does the table in service still route this entrypoint with this route?
    fn route_present(&self, route: &str) -> bool {
        self.state.current().is_some_and(|a| a.table.tcp_route_for(&self.entrypoint).is_some_and(|r| r.name == route))
    }

    fn counter(&self, route: &str) -> Arc<AtomicU32> {
        self.open.lock().entry(route.to_owned()).or_default().clone()
    }

    fn refuse(&self, reason: TcpRefusal) {
        self.state.metrics.tcp.refused(&self.entrypoint, reason).inc();
    }
}

/// Counts one open connection of a route; released on drop however the connection ends.
struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client's and the entrypoint's addresses.
fn addresses(stream: &Stream) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let Some(digest) = stream.get_socket_digest() else { return (None, None) };
    let peer = digest.peer_addr().and_then(|a| a.as_inet()).copied();
    let local = digest.local_addr().and_then(|a| a.as_inet()).copied();
    (peer, local)
}

/// The PROXY protocol v1 line that tells the upstream who the client is.
pub fn proxy_v1_header(client: SocketAddr, local: SocketAddr) -> String {
    let family = if client.is_ipv4() && local.is_ipv4() { "TCP4" } else { "TCP6" };
    let ip = |a: SocketAddr| match (family, a.ip()) {
        ("TCP6", IpAddr::V4(v4)) => v4.to_ipv6_mapped().to_string(),
        (_, ip) => ip.to_string(),
    };
    format!("PROXY {family} {} {} {} {}\r\n", ip(client), ip(local), client.port(), local.port())
}

fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Copies one direction until EOF, then half-closes the writer so the other side sees the end too.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    bytes: IntCounter,
    activity: &AtomicU64,
    start: Instant,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        total += n as u64;
        bytes.inc_by(n as u64);
        activity.store(now_ms(start), Ordering::Relaxed);
    }
}

impl TcpProxy {
    /// Connects to the route's upstream, trying each address in rotation once.
    async fn connect(&self, route: &str, pool: &crate::upstream::Pool) -> Option<(TcpStream, SocketAddr)> {
        let mut tried = Vec::new();
        while let Some(ep) = pool.select(&tried) {
            tried.push(ep.addr);
            match tokio::time::timeout(pool.spec.connect_timeout, TcpStream::connect(ep.addr)).await {
                Ok(Ok(stream)) => {
                    ep.record_success();
                    let _ = stream.set_nodelay(true);
                    return Some((stream, ep.addr));
                }
                Ok(Err(e)) => {
                    tracing::warn!(route, upstream = pool.name(), address = %ep.addr, error = %e, "TCP upstream connect failed")
                }
                Err(_) => {
                    tracing::warn!(route, upstream = pool.name(), address = %ep.addr, "TCP upstream connect timed out")
                }
            }
            self.state.metrics.tcp.connect_failures(route).inc();
            ep.record_failure();
        }
        None
    }
}

#[async_trait]
impl ServerApp for TcpProxy {
    async fn process_new(self: &Arc<Self>, client: Stream, _shutdown: &ShutdownWatch) -> Option<Stream> {
        let (peer, local) = addresses(&client);
        let ip = peer.map(|a| a.ip());
        let Some(active) = self.state.current() else {
            self.refuse(TcpRefusal::NoRoute);
            return None;
        };
        let Some(route) = active.table.tcp_route_for(&self.entrypoint) else {
            tracing::warn!(entrypoint = %self.entrypoint, client = ?ip, "no TCP route for this entrypoint; connection closed");
            self.refuse(TcpRefusal::NoRoute);
            return None;
        };
        if !ip.is_some_and(|ip| route.allows(ip)) {
            tracing::warn!(entrypoint = %self.entrypoint, route = %route.name, client = ?ip, "client not in the route's allowlist; connection closed");
            self.refuse(TcpRefusal::Allowlist);
            return None;
        }
        let counter = self.counter(&route.name);
        let open = counter.fetch_add(1, Ordering::AcqRel) + 1;
        let _slot = Slot(counter);
        if route.max_connections.is_some_and(|max| open > max) {
            tracing::warn!(route = %route.name, limit = route.max_connections, "TCP connection limit reached; connection closed");
            self.refuse(TcpRefusal::Limit);
            return None;
        }
        let (name, idle_timeout, proxy_protocol) = (route.name.clone(), route.idle_timeout, route.proxy_protocol);
        let Some(pool) = active.tcp_pools.get(&route.upstream).cloned() else {
            self.refuse(TcpRefusal::NoUpstream);
            return None;
        };
        drop(active);
        let Some((mut upstream, server)) = self.connect(&name, &pool).await else {
            tracing::warn!(route = %name, upstream = pool.name(), "no TCP upstream server reachable; connection closed");
            self.refuse(TcpRefusal::NoUpstream);
            return None;
        };
        if let (true, Some(peer), Some(local)) = (proxy_protocol, peer, local) {
            if let Err(e) = upstream.write_all(proxy_v1_header(peer, local).as_bytes()).await {
                tracing::warn!(route = %name, server = %server, error = %e, "could not send the PROXY header; connection closed");
                return None;
            }
        }
        self.forward(client, upstream, &name, ip, server, idle_timeout).await;
        None
    }
}

impl TcpProxy {
    async fn forward(
        &self,
        client: Stream,
        upstream: TcpStream,
        route: &str,
        ip: Option<IpAddr>,
        server: SocketAddr,
        idle: Duration,
    ) {
        let m = &self.state.metrics.tcp;
        m.connections(route).inc();
        let active = m.active(route);
        active.inc();
        let start = Instant::now();
        let activity = AtomicU64::new(0);
        tracing::info!(route, client = ?ip, server = %server, "TCP connection forwarded");

        let (client_read, client_write) = tokio::io::split(client);
        let (upstream_read, upstream_write) = upstream.into_split();
        let to_upstream = m.bytes(route, TcpDirection::ToUpstream);
        let to_client = m.bytes(route, TcpDirection::ToClient);
        let up = pump(client_read, upstream_write, to_upstream, &activity, start);
        let down = pump(upstream_read, client_write, to_client, &activity, start);
        tokio::pin!(up, down);
        let (mut up_bytes, mut down_bytes): (Option<u64>, Option<u64>) = (None, None);
        let every = (idle / 4).min(self.drain_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        let mut removed_at: Option<Instant> = None;
        // A clean end of one direction is a half-close: the other goes on. An error on either ends both (the
        // other side would otherwise wait forever for bytes that cannot come).
        let outcome = loop {
            tokio::select! {
                r = &mut up, if up_bytes.is_none() => match r {
                    Ok(n) => up_bytes = Some(n),
                    Err(e) => break format!("ended: client side error: {e}"),
                },
                r = &mut down, if down_bytes.is_none() => match r {
                    Ok(n) => down_bytes = Some(n),
                    Err(e) => break format!("ended: upstream side error: {e}"),
                },
                _ = tick.tick() => {
                    let quiet = Duration::from_millis(now_ms(start).saturating_sub(activity.load(Ordering::Relaxed)));
                    if let Some(end) = self.looked_at(route, ip, quiet, idle, &mut removed_at) {
                        break end;
                    }
                }
            }
            if let (Some(u), Some(d)) = (up_bytes, down_bytes) {
                break format!("closed ({u} bytes up, {d} down)");
            }
        };
        active.dec();
        m.duration(route).observe(start.elapsed().as_secs_f64());
        tracing::info!(route, client = ?ip, server = %server, duration_s = start.elapsed().as_secs_f64(), "TCP connection {outcome}");
    }

    /// The periodic look at a forwarded connection: why it ends now (idle for `idle`, or its route removed for
    /// longer than the drain bound), or `None`. A removed route refuses new connections at once; its open ones
    /// get the drain bound (`removed_at` remembers since when; a route that comes back clears it).
    fn looked_at(
        &self,
        route: &str,
        ip: Option<IpAddr>,
        quiet: Duration,
        idle: Duration,
        removed_at: &mut Option<Instant>,
    ) -> Option<String> {
        if quiet >= idle {
            return Some(format!("idle for {}s; closed", idle.as_secs()));
        }
        match (*removed_at, self.route_present(route)) {
            (None, false) => {
                tracing::info!(route, client = ?ip, drain_s = self.drain_timeout.as_secs_f64(), "TCP route removed; draining its connection");
                *removed_at = Some(Instant::now());
            }
            (Some(_), true) => *removed_at = None,
            (Some(at), false) if at.elapsed() >= self.drain_timeout => {
                return Some("closed: its route was removed and the drain bound passed".to_owned());
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests;
