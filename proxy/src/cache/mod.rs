//! The edge's HTTP cache: policy (what to store, for how long), key (what identifies an object), storage (the
//! in-memory store) and the shared cache runtime (store, eviction, lock) the proxy phases use.

pub mod key;
pub mod policy;
pub mod storage;
