//! The floor under dime-edge's pass-through cost: a Pingora reverse proxy with nothing of Dime in it. It has no
//! routing, cache, metrics, access log or forwarding headers; it sends every request to one upstream, over
//! pooled keep-alive connections, with the runtime settings dime-edge uses (one thread, no work stealing,
//! mimalloc). `benches/suite.py` runs it next to dime-edge and nginx in its `uncached` scenario, so the report can
//! say how much of the gap to nginx is Pingora's own and how much is Dime's.
//!
//! `cargo run --release -p dime-edge --example bare_pingora -- LISTEN UPSTREAM [CERT KEY]` (`host:port`; with a
//! PEM certificate and key, LISTEN takes TLS with HTTP/2 by ALPN, as dime-edge's `--https`).

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream, tls) = match args.as_slice() {
        [listen, upstream] => (listen, upstream, None),
        [listen, upstream, cert, key] => (listen, upstream, Some((cert, key))),
        _ => {
            eprintln!("usage: bare_pingora LISTEN UPSTREAM [CERT KEY]  (host:port; PEM files for TLS)");
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
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Bare { upstream });
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
