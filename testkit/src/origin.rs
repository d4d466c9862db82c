//! The test origin: an HTTP/1.1 server on loopback that says who it is and does, per request, what the test
//! asked for with [`ask`].

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

/// An HTTP/1.1 origin that says who it is and what it received (like the whoami workload): `x-origin`, the
/// `x-seen-*` headers (`x-seen-headers` names every request header) and, by default, a one-line body naming
/// itself and the path. What else it does for one request is written at the test site with [`ask`] and travels
/// in the request's query; `/healthz` answers 200 or 503 as `set_healthy` says, `/slow` answers after one
/// second, and `set_down(true)` makes every request answer 503 (an outage that still accepts connections).
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
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| answer(req, s.clone()));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
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

    pub fn stop(&self) {
        self.task.abort();
    }
}

/// What the test origin does for one request: `ask("/a.ts").size(1000).cache_control("max-age=60")`. Its
/// `Display` is the request target (the path, and the behaviour as a query the origin reads back), so it goes
/// wherever a path does: `edge.get("c.test", ask("/a.ts").size(10))`.
#[derive(Debug, Clone)]
pub struct Ask {
    path: String,
    params: Vec<(&'static str, String)>,
}

pub fn ask(path: &str) -> Ask {
    Ask { path: path.to_owned(), params: Vec::new() }
}

impl Ask {
    fn with(mut self, name: &'static str, value: impl ToString) -> Self {
        self.params.push((name, value.to_string()));
        self
    }
    /// A body of `n` bytes of [`pattern`] (instead of the one-line text body).
    pub fn size(self, n: usize) -> Self {
        self.with("size", n)
    }
    /// The `Cache-Control` header of the answer.
    pub fn cache_control(self, value: &str) -> Self {
        self.with("cc", value)
    }
    /// The answer's `Surrogate-Key` (space-separated cache tags, Fastly's header).
    pub fn surrogate_key(self, keys: &str) -> Self {
        self.with("skey", keys)
    }
    /// The answer's `Cache-Tag` (comma-separated cache tags, Cloudflare's header).
    pub fn cache_tag(self, tags: &str) -> Self {
        self.with("ctag", tags)
    }
    /// The answer's `Access-Control-Allow-Origin` (cross-origin pages may read it).
    pub fn allow_origin(self, origin: &str) -> Self {
        self.with("acao", origin)
    }
    /// The answer's `Access-Control-Expose-Headers`.
    pub fn expose_headers(self, names: &str) -> Self {
        self.with("aceh", names)
    }
    /// The answer's status.
    pub fn status(self, status: u16) -> Self {
        self.with("status", status)
    }
    /// Waits this long before the header.
    pub fn delay(self, wait: Duration) -> Self {
        self.with("delay_ms", wait.as_millis())
    }
    /// Sends the body in `n` chunks, `every` apart (chunked encoding unless [`Ask::announce_length`]).
    pub fn chunks(self, n: usize, every: Duration) -> Self {
        self.with("chunks", n).with("every_ms", every.as_millis())
    }
    /// Sends `n` bytes of the body, then drops the connection.
    pub fn abort_after(self, n: usize) -> Self {
        self.with("abort", n)
    }
    /// Reads the request, then drops the connection without a byte of answer.
    pub fn hang_up(self) -> Self {
        self.with("hangup", 1)
    }
    /// The answer's `ETag` (quoted); a request whose `If-None-Match` names it gets `304 Not Modified`.
    pub fn etag(self, tag: &str) -> Self {
        self.with("etag", tag)
    }
    /// Answers with `Vary: Accept-Encoding` and a body that starts with the line `encoding=<the request's
    /// Accept-Encoding>`, so each variant can be told apart.
    pub fn vary_encoding(self) -> Self {
        self.with("vary", 1)
    }
    /// With [`Ask::abort_after`]: announces the full `Content-Length` before breaking off.
    pub fn announce_length(self) -> Self {
        self.with("cl", 1)
    }
}

impl std::fmt::Display for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)?;
        if !self.params.is_empty() {
            let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.params).finish();
            write!(f, "?{query}")?;
        }
        Ok(())
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

/// `Err` only for [`Ask::hang_up`]: hyper then closes the connection without answering.
async fn answer(req: Request<Incoming>, s: Shared) -> Result<Response<OriginBody>, std::io::Error> {
    let full = |b: Bytes| http_body_util::Either::Left(Full::new(b));
    if req.uri().path() == "/healthz" {
        let status = if s.healthy.load(Ordering::SeqCst) { 200 } else { 503 };
        return Ok(Response::builder().status(status).body(full(Bytes::from_static(b"health\n"))).unwrap());
    }
    s.hits.fetch_add(1, Ordering::SeqCst);
    *s.per_path.lock().unwrap().entry(req.uri().path().to_owned()).or_default() += 1;
    if s.down.load(Ordering::SeqCst) {
        return Ok(Response::builder().status(503).body(full(Bytes::from_static(b"origin down\n"))).unwrap());
    }
    // What the test asked for ([`Ask`]).
    let q = |name: &str| -> Option<String> {
        form_urlencoded::parse(req.uri().query()?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    };
    let num = |name: &str| q(name).and_then(|v| v.parse::<usize>().ok());
    if q("hangup").is_some() {
        return Err(std::io::Error::other("origin hangs up before answering"));
    }
    if req.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Some(ms) = num("delay_ms") {
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
    }
    let seen = |h: &str| req.headers().get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut resp = Response::builder()
        .status(num("status").unwrap_or(200) as u16)
        .header("x-origin", &s.name)
        .header("x-seen-host", seen("host"))
        .header("x-seen-xff", seen("x-forwarded-for"))
        .header("x-seen-xfp", seen("x-forwarded-proto"))
        .header("x-seen-xfh", seen("x-forwarded-host"))
        .header("x-seen-query", req.uri().query().unwrap_or(""))
        .header("x-seen-headers", req.headers().keys().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
    if let Some(cc) = q("cc") {
        resp = resp.header("cache-control", cc);
    }
    if let Some(keys) = q("skey") {
        resp = resp.header("surrogate-key", keys);
    }
    if let Some(tags) = q("ctag") {
        resp = resp.header("cache-tag", tags);
    }
    if let Some(origin) = q("acao") {
        resp = resp.header("access-control-allow-origin", origin);
    }
    if let Some(names) = q("aceh") {
        resp = resp.header("access-control-expose-headers", names);
    }
    if let Some(tag) = q("etag") {
        let etag = format!("\"{tag}\"");
        if seen("if-none-match").split(',').any(|t| t.trim() == etag) {
            s.not_modified.fetch_add(1, Ordering::SeqCst);
            return Ok(resp.status(304).header("etag", etag).body(full(Bytes::new())).unwrap());
        }
        resp = resp.header("etag", etag);
    }
    let mut body = match num("size") {
        Some(n) => pattern_body(n),
        None => format!("origin={} path={}\n", s.name, req.uri().path()).into_bytes(),
    };
    if q("vary").is_some() {
        resp = resp.header("vary", "Accept-Encoding");
        body.splice(0..0, format!("encoding={}\n", seen("accept-encoding")).into_bytes());
    }
    let chunks = num("chunks");
    let abort = num("abort");
    if chunks.is_none() && abort.is_none() {
        return Ok(resp.body(full(Bytes::from(body))).unwrap());
    }
    if abort.is_some() && q("cl").is_some() {
        resp = resp.header("content-length", body.len());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let every = Duration::from_millis(num("every_ms").unwrap_or(0) as u64);
    tokio::spawn(async move {
        let limit = abort.unwrap_or(body.len()).min(body.len());
        let n = chunks.unwrap_or(4).max(1);
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
    Ok(resp.body(http_body_util::Either::Right(ChannelBody(rx))).unwrap())
}
