//! The test origin: an HTTP/1.1 server on loopback that says who it is and does, per request, what the test
//! asked for with [`ask`] (a typed [`Behaviour`], carried in the request's query).

mod ask;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use ask::{ask, Ask, Behaviour};

/// An HTTP/1.1 origin that says who it is and what it received (like the whoami workload): `x-origin`, the
/// `x-seen-*` headers (`x-seen-headers` names every request header), `x-origin-fetch` (which request for this path
/// this is, from 1: a cached copy tells which fetch it came from) and, by default, a one-line body naming
/// itself and the path. What else it does for one request is written at the test site with [`ask`] and travels
/// in the request's query, which is that [`Behaviour`] and nothing else: a query that is not one is answered
/// `400` with the reason. The path never changes what it does, except [`Origin::HEALTH_PATH`]. What holds for
/// every request is set on the origin: `set_down(true)` makes each one answer 503 (an outage that still accepts
/// connections), `set_healthy(false)` fails the health endpoint.
#[derive(Clone)]
pub struct Origin {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    per_path: Arc<Mutex<HashMap<String, usize>>>,
    healthy: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    /// `304 Not Modified` answers given (see [`Ask::etag`]).
    pub not_modified: Arc<AtomicUsize>,
    task: Arc<tokio::task::JoinHandle<()>>,
    stopped: Arc<tokio::sync::watch::Sender<bool>>,
}

#[derive(Clone)]
struct Shared {
    name: String,
    hits: Arc<AtomicUsize>,
    per_path: Arc<Mutex<HashMap<String, usize>>>,
    healthy: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    not_modified: Arc<AtomicUsize>,
}

impl Origin {
    /// The health endpoint, for a route's `health_check: { path: ... }`: 200, or 503 after `set_healthy(false)`;
    /// not counted in [`Origin::hits`], whatever the outage.
    pub const HEALTH_PATH: &'static str = "/healthz";

    pub async fn start(name: &str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            name: name.to_owned(),
            hits: Arc::new(AtomicUsize::new(0)),
            per_path: Arc::new(Mutex::new(HashMap::new())),
            healthy: Arc::new(AtomicBool::new(true)),
            down: Arc::new(AtomicBool::new(false)),
            not_modified: Arc::new(AtomicUsize::new(0)),
        };
        let s = shared.clone();
        let (stopped, stop_seen) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let s = s.clone();
                let mut stop_seen = stop_seen.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| answer(req, s.clone()));
                    let serve = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    // A stopped origin closes its kept-alive connections too.
                    tokio::select! {
                        _ = serve => {}
                        _ = stop_seen.wait_for(|stopped| *stopped) => {}
                    }
                });
            }
        });
        Origin {
            name: name.to_owned(),
            addr,
            hits: shared.hits,
            per_path: shared.per_path,
            healthy: shared.healthy,
            down: shared.down,
            not_modified: shared.not_modified,
            task: Arc::new(task),
            stopped: Arc::new(stopped),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Requests received for one path (query excluded).
    pub fn hits_for(&self, path: &str) -> usize {
        self.per_path.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Stops listening and closes every connection: the origin cannot be reached.
    pub fn stop(&self) {
        self.task.abort();
        let _ = self.stopped.send(true);
    }
}

/// The byte at position `i` of every generated body: lets a test spot a truncated or shifted body.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

pub fn pattern_body(n: usize) -> Vec<u8> {
    (0..n).map(pattern).collect()
}

/// A body fed by a channel, so the origin can pace it or break it off.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}

type OriginBody = http_body_util::Either<Full<Bytes>, ChannelBody>;

fn full(body: impl Into<Bytes>) -> OriginBody {
    http_body_util::Either::Left(Full::new(body.into()))
}

/// A short text answer (health, outage, a refused ask).
fn text(status: u16, body: String) -> Response<OriginBody> {
    Response::builder().status(status).body(full(body)).unwrap()
}

/// `Err` only for [`Ask::hang_up`]: hyper then closes the connection without answering.
async fn answer(req: Request<Incoming>, s: Shared) -> Result<Response<OriginBody>, std::io::Error> {
    if req.uri().path() == Origin::HEALTH_PATH {
        let status = if s.healthy.load(Ordering::SeqCst) { 200 } else { 503 };
        return Ok(text(status, "health\n".into()));
    }
    s.hits.fetch_add(1, Ordering::SeqCst);
    let fetch = {
        let mut per_path = s.per_path.lock().unwrap();
        let n = per_path.entry(req.uri().path().to_owned()).or_default();
        *n += 1;
        *n
    };
    if s.down.load(Ordering::SeqCst) {
        return Ok(text(503, "origin down\n".into()));
    }
    let behaviour = match Behaviour::from_query(req.uri().query()) {
        Ok(behaviour) => behaviour,
        Err(reason) => return Ok(refuse(&s, &req, &reason)),
    };
    if behaviour.hang_up {
        return Err(std::io::Error::other("origin hangs up before answering"));
    }
    if let Some(wait) = behaviour.delay {
        tokio::time::sleep(wait).await;
    }
    // Which fetch of this path made the answer: a copy kept by a cache says which one it is.
    let head = head(&req, &behaviour, &s).header("x-origin-fetch", fetch);
    Ok(match respond(&req, &behaviour, &s, head) {
        Ok(resp) => resp,
        // A header value the test asked for that HTTP cannot carry (a line break in `cache_control`).
        Err(e) => refuse(&s, &req, &e.to_string()),
    })
}

/// The answer to a request whose query is not a [`Behaviour`]: `400` with the reason, also on stderr, so a test
/// that asks for something the origin does not do fails there, saying why.
fn refuse(s: &Shared, req: &Request<Incoming>, reason: &str) -> Response<OriginBody> {
    let said = format!("origin {}: {} is not a behaviour of the test origin: {reason}\n", s.name, req.uri());
    eprint!("{said}");
    text(400, said)
}

/// What a request saw, for the `x-seen-*` headers.
fn seen(req: &Request<Incoming>, name: &str) -> String {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// The status and headers of the answer: who the origin is, what it saw, and the headers the test asked for.
fn head(req: &Request<Incoming>, b: &Behaviour, s: &Shared) -> hyper::http::response::Builder {
    let mut resp = Response::builder()
        .status(b.status.unwrap_or(200))
        .header("x-origin", &s.name)
        .header("x-seen-host", seen(req, "host"))
        .header("x-seen-xff", seen(req, "x-forwarded-for"))
        .header("x-seen-xfp", seen(req, "x-forwarded-proto"))
        .header("x-seen-xfh", seen(req, "x-forwarded-host"))
        .header("x-seen-query", req.uri().query().unwrap_or(""))
        .header("x-seen-headers", req.headers().keys().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
    let asked = [
        ("cache-control", &b.cache_control),
        ("surrogate-key", &b.surrogate_key),
        ("cache-tag", &b.cache_tag),
        ("access-control-allow-origin", &b.allow_origin),
        ("access-control-expose-headers", &b.expose_headers),
    ];
    for (name, value) in asked {
        if let Some(value) = value {
            resp = resp.header(name, value);
        }
    }
    if b.internal_marks {
        resp = resp.header("x-dime-owner", "origin").header("x-dime-peer-refused", "503").header("x-dime-edge", "o");
    }
    for line in b.headers.iter().flat_map(|h| h.lines()) {
        if let Some((name, value)) = line.split_once(':') {
            resp = resp.header(name.trim(), value.trim());
        }
    }
    resp
}

/// The answer after its head: `304` for a matching `If-None-Match`, else the body, whole or streamed.
fn respond(
    req: &Request<Incoming>,
    b: &Behaviour,
    s: &Shared,
    mut resp: hyper::http::response::Builder,
) -> Result<Response<OriginBody>, hyper::http::Error> {
    if let Some(tag) = &b.etag {
        let etag = format!("\"{tag}\"");
        if seen(req, "if-none-match").split(',').any(|t| t.trim() == etag) {
            s.not_modified.fetch_add(1, Ordering::SeqCst);
            return resp.status(304).header("etag", etag).body(full(Bytes::new()));
        }
        resp = resp.header("etag", etag);
    }
    let mut body = match b.size {
        Some(n) => pattern_body(n),
        None => format!("origin={} path={}\n", s.name, req.uri().path()).into_bytes(),
    };
    if b.vary_encoding {
        resp = resp.header("vary", "Accept-Encoding");
        body.splice(0..0, format!("encoding={}\n", seen(req, "accept-encoding")).into_bytes());
    }
    if b.chunks.is_none() && b.abort_after.is_none() {
        return resp.body(full(body));
    }
    if b.announce_length {
        resp = resp.header("content-length", body.len());
    }
    resp.body(http_body_util::Either::Right(stream(body, b)))
}

/// The body in [`Behaviour::chunks`] pieces, [`Behaviour::chunk_every`] apart, broken off after
/// [`Behaviour::abort_after`] bytes.
fn stream(body: Vec<u8>, b: &Behaviour) -> ChannelBody {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let every = b.chunk_every.unwrap_or(Duration::ZERO);
    let (abort, n) = (b.abort_after, b.chunks.unwrap_or(4).max(1));
    tokio::spawn(async move {
        let limit = abort.unwrap_or(body.len()).min(body.len());
        let step = limit.div_ceil(n).max(1);
        let mut at = 0;
        while at < limit {
            let end = (at + step).min(limit);
            if tx.send(Ok(Bytes::copy_from_slice(&body[at..end]))).await.is_err() {
                return;
            }
            at = end;
            tokio::time::sleep(every).await;
        }
        if abort.is_some() {
            let _ = tx.send(Err(std::io::Error::other("origin aborts mid-body"))).await;
        }
    });
    ChannelBody(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(origin: &Origin, target: impl std::fmt::Display) -> (u16, String) {
        let r = reqwest::get(format!("{}{target}", origin.url())).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    #[tokio::test]
    async fn does_what_is_asked_and_refuses_what_it_does_not_know() {
        let origin = Origin::start("o").await;
        assert_eq!(get(&origin, ask("/a").size(3).status(201)).await, (201, "\u{0}\u{1}\u{2}".into()));
        assert_eq!(get(&origin, "/slow").await, (200, "origin=o path=/slow\n".into()), "no magic paths");
        let (status, body) = get(&origin, "/a?sise=3").await;
        assert_eq!(status, 400);
        assert!(body.contains("/a?sise=3 is not a behaviour") && body.contains("unknown field `sise`"), "{body}");
        let (status, body) = get(&origin, "/a?cache_control=a%0Ab").await;
        assert_eq!(status, 400, "a header value HTTP cannot carry: {body}");
        assert_eq!((origin.hits(), origin.hits_for("/a")), (4, 3));
        assert_eq!(get(&origin, Origin::HEALTH_PATH).await.0, 200);
        origin.set_healthy(false);
        assert_eq!(get(&origin, Origin::HEALTH_PATH).await.0, 503);
        assert_eq!(origin.hits(), 4, "health checks are not hits");
    }
}
