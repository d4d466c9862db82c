//! The floor under dime-edge's pass-through cost: a Pingora reverse proxy with nothing of Dime in it. It has no
//! routing, cache, metrics, access log or forwarding headers; it sends every request to one upstream, over
//! pooled keep-alive connections, with the runtime settings dime-edge uses (one thread, no work stealing,
//! mimalloc). `benches/suite.py` runs it next to dime-edge and nginx in its `uncached` scenario, so the report can
//! say how much of the gap to nginx is Pingora's own and how much is Dime's.
//!
//! With `--lean` it does not use Pingora's proxy phases at all: `request_filter` takes every request to the
//! upstream itself with pingora-core's HTTP/1 client and connection pool, and writes the answer back. That is the
//! least any path inside Pingora can do (its server session still reads the request and writes the response), so
//! it measures the floor of the leaner path issue 19 asks about. It is a measuring device, not a proxy: it skips
//! the request checks Pingora makes before a request goes upstream (hop-by-hop headers, authority, framing), takes
//! no request body, and has no retry or error handling beyond answering 502.
//!
//! `cargo run --release -p dime-edge --example bare_pingora -- [--lean] LISTEN UPSTREAM [CERT KEY]` (`host:port`;
//! with a PEM certificate and key, LISTEN takes TLS with HTTP/2 by ALPN, as dime-edge's `--https`).

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::connectors::http::v1::Connector;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_proxy::{ProxyHttp, Session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: std::net::SocketAddr,
    /// `--lean`: the pool `request_filter` fetches through.
    lean: Option<Connector>,
}

impl Bare {
    fn peer(&self) -> HttpPeer {
        HttpPeer::new(self.upstream, false, String::new())
    }

    /// `--lean`: one exchange with the upstream over a pooled connection, the answer streamed back as it comes.
    async fn exchange(&self, conn: &Connector, session: &mut Session) -> Result<()> {
        let peer = self.peer();
        let (mut up, _reused) = conn.get_http_session(&peer).await?;
        let mut req = session.req_header().clone();
        if req.version == http::Version::HTTP_2 {
            req.set_version(http::Version::HTTP_11);
            let authority = req.uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
            req.insert_header(http::header::HOST, authority)?;
        }
        up.write_request_header(Box::new(req)).await?;
        up.read_response().await?;
        let Some(resp) = up.resp_header() else {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "no response header");
        };
        let head_only = session.req_header().method == http::Method::HEAD;
        session.write_response_header(Box::new(resp.clone()), head_only).await?;
        while let Some(chunk) = up.read_body_ref().await? {
            let chunk = Bytes::copy_from_slice(chunk);
            session.write_response_body(Some(chunk), false).await?;
        }
        session.write_response_body(None, true).await?;
        conn.release_http_session(up, &peer, None).await;
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let Some(conn) = &self.lean else { return Ok(false) };
        if let Err(e) = self.exchange(conn, session).await {
            if session.response_written().is_none() {
                session.respond_error(502).await?;
            }
            return Err(e);
        }
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer()))
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let lean = args.first().is_some_and(|a| a == "--lean");
    if lean {
        args.remove(0);
    }
    let (listen, upstream, tls) = match args.as_slice() {
        [listen, upstream] => (listen, upstream, None),
        [listen, upstream, cert, key] => (listen, upstream, Some((cert, key))),
        _ => {
            eprintln!("usage: bare_pingora [--lean] LISTEN UPSTREAM [CERT KEY]  (host:port; PEM files for TLS)");
            std::process::exit(2);
        }
    };
    let Ok(upstream) = upstream.parse() else {
        eprintln!("bare_pingora: UPSTREAM `{upstream}` is not an address:port");
        std::process::exit(2);
    };
    let conf = ServerConf { threads: 1, work_stealing: false, ..Default::default() };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let bare = Bare { upstream, lean: lean.then(|| Connector::new(None)) };
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, bare);
    match tls {
        None => proxy.add_tcp(listen),
        Some((cert, key)) => {
            let mut settings = match pingora_core::listeners::tls::TlsSettings::intermediate(cert, key) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("bare_pingora: {cert}, {key}: {e}");
                    std::process::exit(2);
                }
            };
            settings.enable_h2();
            proxy.add_tls_with_settings(listen, None, settings);
        }
    }
    server.add_service(proxy);
    server.run_forever();
}
