//! Sending a cached response straight to a client socket, past Pingora's writer. A body in a file goes with
//! `sendfile(2)` after the header, so the kernel moves page references instead of copying the body out of the
//! edge's memory (zero-copy); a body in memory goes in the same `sendmsg` as its header (the kernel copies it once
//! into the socket buffer, as any write does; what is saved is Pingora's copies and a second send).
//!
//! The header is not held back (`MSG_MORE`) to share a packet with the body: the client gets its first byte at
//! once, as from nginx, and measured on loopback, holding it back made the edge pay for most of the client's
//! receive processing (the receiver's TCP work runs in the sender's context when the receiver is asleep), which
//! doubled the edge's system time per 1 MiB hit (docs/benchmarks.md).
//!
//! Used for every plain GET hit (see `service::direct`).
//!
//! This is the one module that may use `unsafe`, for one reason: Pingora owns the client socket and exposes only
//! its raw descriptor, and `sendfile` needs a borrowed descriptor. The borrow is tied to the lifetime of Pingora's
//! stream (see [`socket`]). Waiting for the socket to drain uses a duplicate of the descriptor registered with
//! tokio's reactor, so Pingora's own registration of the socket is left untouched.

#![allow(unsafe_code)]

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use pingora_core::protocols::l4::stream::Stream as PlainStream;
use pingora_proxy::Session;
use rustix::io::Errno;
use rustix::net::SendFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::cache::body::BodyFile;

/// The client socket of a plain-text HTTP/1.x session, or `None` for anything else (TLS, HTTP/2, subrequests,
/// in-memory test streams).
pub fn socket(session: &Session) -> Option<BorrowedFd<'_>> {
    let v1 = session.as_downstream().as_http1()?;
    let stream: &PlainStream = v1.stream().as_any().downcast_ref()?;
    let raw = stream.as_raw_fd();
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is the descriptor of the socket that `stream` owns and closes only when dropped. The returned
    // borrow carries the lifetime of `session`, which owns `stream`, so the descriptor stays open, and cannot be
    // reused for another file, for as long as the borrow lives.
    Some(unsafe { BorrowedFd::borrow_raw(raw) })
}

/// Why a direct send stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("client socket: {0}")]
    Io(#[from] io::Error),
    #[error("client read nothing for {0:?}")]
    Stalled(Duration),
}

/// How far a send got: header bytes and body bytes written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    pub header: usize,
    pub body: usize,
}

/// A response body to send: from a file with `sendfile`, or from memory in the same `sendmsg` as the header.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    File(&'a BodyFile),
    Memory(&'a [u8]),
}

/// Writes `header` and then all of `body` to `socket`. Waits, at most `idle` each time, while the socket's send
/// buffer is full. On error, [`Sent`] says how much went out; the caller must then close the connection.
pub async fn send(
    socket: BorrowedFd<'_>,
    header: &[u8],
    body: Payload<'_>,
    idle: Duration,
) -> Result<Sent, (SendError, Sent)> {
    let mut out = Sender { socket, idle, waiter: None, sent: Sent::default() };
    let (in_memory, file) = match body {
        Payload::Memory(bytes) => (bytes, None),
        Payload::File(file) => (&[][..], Some(file)),
    };
    // Header and a body from memory: one `sendmsg` of both, continued where it stopped.
    while out.sent.header < header.len() || out.sent.body < in_memory.len() {
        let parts = [IoSlice::new(&header[out.sent.header..]), IoSlice::new(&in_memory[out.sent.body..])];
        let result = rustix::net::sendmsg(socket, &parts, &mut Default::default(), SendFlags::NOSIGNAL);
        let n = out.step(result, "sendmsg").await?;
        let to_header = n.min(header.len() - out.sent.header);
        out.sent.header += to_header;
        out.sent.body += n - to_header;
    }
    let Some(file) = file else { return Ok(out.sent) };
    let (start, end) = (file.offset(), file.offset() + file.len() as u64);
    let mut offset = start;
    while offset < end {
        let want = usize::try_from(end - offset).unwrap_or(usize::MAX);
        let result = rustix::fs::sendfile(socket, file.fd(), Some(&mut offset), want);
        out.step(result, "sendfile").await?;
        out.sent.body = (offset - start) as usize;
    }
    Ok(out.sent)
}

/// One response's writes to a non-blocking socket.
struct Sender<'a> {
    socket: BorrowedFd<'a>,
    idle: Duration,
    waiter: Option<AsyncFd<OwnedFd>>,
    sent: Sent,
}

impl Sender<'_> {
    /// The outcome of one write: the bytes it took, or 0 after waiting for room (socket full) or an interrupt, so
    /// the caller tries again; an error (including a write that took nothing) ends the response.
    async fn step(&mut self, result: rustix::io::Result<usize>, call: &str) -> Result<usize, (SendError, Sent)> {
        let e = match result {
            Ok(0) => io::Error::new(io::ErrorKind::WriteZero, format!("{call} sent nothing")).into(),
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => return Ok(0),
            Err(Errno::AGAIN) => match wait(self.socket, &mut self.waiter, self.idle).await {
                Ok(()) => return Ok(0),
                Err(e) => e,
            },
            Err(e) => io::Error::from(e).into(),
        };
        Err((e, self.sent))
    }
}

/// Waits until the socket can take more bytes. The first wait registers a duplicate descriptor with the reactor;
/// readiness is cleared before returning, so the caller's next attempt decides whether to wait again.
async fn wait(socket: BorrowedFd<'_>, waiter: &mut Option<AsyncFd<OwnedFd>>, idle: Duration) -> Result<(), SendError> {
    let fd = match waiter {
        Some(fd) => fd,
        None => {
            let dup = rustix::io::fcntl_dupfd_cloexec(socket, 0).map_err(io::Error::from)?;
            // SAFETY: the `AsyncFd` owns `dup`, an `OwnedFd`, so the descriptor stays open and names the same socket
            // until the `AsyncFd` is dropped.
            let registered = unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) };
            waiter.insert(registered.map_err(io::Error::from)?)
        }
    };
    match tokio::time::timeout(idle, fd.writable()).await {
        Ok(Ok(mut ready)) => {
            ready.clear_ready();
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(SendError::Stalled(idle)),
    }
}
