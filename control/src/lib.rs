//! `dime-control`: Dime's control plane. It watches labelled ConfigMaps (native Dime routes, and the old
//! Traefik fragments), compiles them into one versioned route table with the same code the edges use
//! ([`compile`]), and serves it to edges ([`serve`]), with the fleet ([`fleet`]) and its purges ([`purge`]). `main.rs` parses flags and wires them together.

pub mod api;
pub mod compile;
pub mod credentials;
pub mod fleet;
pub mod metrics;
pub mod purge;
pub mod secrets;
pub mod serve;
pub mod state;
pub mod watch;
