//! `dime-edge`: Dime's edge, a reverse proxy on Pingora.
//!
//! Requests are routed by host and path with the route table of [`dime_routes`], held in [`state::State`] and
//! swapped whole when the routes file changes ([`source`]). Upstream pools ([`upstream`]) spread requests by
//! weight, take failing servers out of rotation, and keep DNS answers fresh. [`service`] holds the Pingora
//! phases, [`admin`] the `/metrics`, `/healthz`, `/readyz` and `/config` listener. `main.rs` only parses
//! flags ([`config`]) and calls [`server::run`]. Usage: `dime-edge run --routes examples/routes.yaml`.

pub mod access;
pub mod acme;
pub mod admin;
pub mod cache;
pub mod config;
pub mod downstream;
pub mod files;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod service;
pub mod signed;
pub mod source;
pub mod state;
pub mod tcp;
pub mod tls;
pub mod upstream;
pub mod zerocopy;
