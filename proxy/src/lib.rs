//! `dime-edge`: Dime's edge, a caching reverse proxy on Pingora. docs/development.md walks through the layout.
//!
//! - Settings: [`config`] (every flag, `DIME_*` variable and TOML key declared once, in `RunArgs`); `main.rs`
//!   parses them and calls [`server::run`], which opens what they name and assembles Pingora's services.
//! - Route tables: [`dime_routes`] validates and compiles them; [`source`] gets them from a watched file or from
//!   dime-control (long-poll, with a state file); [`state`] prepares, installs (one atomic swap) and reports them.
//! - Requests: [`downstream`] (connection limits, start hold, watchdog) → [`service`] (Pingora's phases: the gate,
//!   direct hits, the cache phases, the origin) → [`upstream`] (pools, health, DNS; the loop that keeps them up:
//!   [`upkeep`]); [`tcp`] for TCP routes.
//! - Cache: [`cache`] (policy, keys, storage with its byte budget, the disk tier behind it, live playlists, locks); [`socket_send`] writes
//!   direct hits to the client socket (`sendfile` for file bodies).
//! - TLS: [`tls`] (one SNI certificate store for flags, tables and ACME), [`acme`] (HTTP-01 orders, with `instant-acme`).
//! - Fleet: [`fleet`] (members from `--peers` or control, the ketama ring, peer tokens); `service/tier.rs` sends a
//!   cache miss to the edge that owns it, and the peer listener serves the other edges.
//! - Around them: [`admin`] (`/metrics`, `/healthz`, `/readyz`, `/config`, purge), [`metrics`], [`logging`] and
//!   [`access`] (buffered, off the request path), [`signed`] (signed viewer URLs), [`files`].
//!
//! Usage: `dime-edge run --routes examples/routes.yaml`.

pub mod access;
pub mod acme;
pub mod admin;
pub mod cache;
pub mod config;
pub mod downstream;
pub mod files;
pub mod fleet;
pub mod logging;
pub mod metrics;
pub mod purge;
pub mod server;
pub mod service;
pub mod signed;
pub mod socket_send;
pub mod source;
pub mod state;
pub mod tcp;
pub mod tls;
pub mod upkeep;
pub mod upstream;
