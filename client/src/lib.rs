//! `dime-client`: the one HTTP client of Dime's own calls. An edge long-polls dime-control for its route table
//! and its purges, `dime-control purge` sends a purge, and the edge's ACME client talks to its CA: all of them
//! through [`http`] (reqwest, with rustls and the trust of [`trust`]), and the control calls through the typed
//! [`Control`], which speaks the messages of [`dime_routes::wire`].
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use dime_client::{Control, ControlUrl};
//! let url = ControlUrl::parse("https://dime-control.example.com:8443")?;
//! let control = Control::new(url, "edge-token".into(), dime_client::http(dime_client::Trust::CaFile("ca.pem".as_ref()))?);
//! let feed = control.purges(&Default::default(), &dime_routes::wire::Report::named("edge-a")).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod control;
pub mod trust;

use std::time::Duration;

pub use control::{CallError, Control, ControlUrl, Reason, Routes};

/// A failed request and its causes, on one line.
pub fn describe(e: &reqwest::Error) -> String {
    control::error_chain(e)
}
pub use trust::{Trust, TrustError};

/// How long an idle connection is kept for reuse.
pub const POOL_IDLE: Duration = Duration::from_secs(10);
/// Connecting (TCP and TLS) to control or an ACME server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The HTTP client: HTTPS verified as `trust` says; HTTP/1.1; connections kept for reuse; connecting bounded by [`CONNECT_TIMEOUT`]; no proxy from the
/// environment, no redirects followed (control and ACME never redirect, and a redirect must not carry a token
/// elsewhere).
pub fn http(trust: Trust<'_>) -> Result<reqwest::Client, TrustError> {
    let tls = trust::client_config(trust)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // Below dime-control's idle close (its --header-timeout, 15 s by default): a kept connection is never
        // reused just as the server closes it.
        .pool_idle_timeout(POOL_IDLE)
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dime/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TrustError::Client(e.to_string()))
}
