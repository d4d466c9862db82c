//! What a purge names in the cache, and what it met. Both tiers read a [`Selector`] (the memory store in
//! [`super::storage`], the disk tier in [`super::disk`]), so it lives beside them, not in either.

use std::collections::HashSet;
use std::sync::Arc;

use pingora_cache::key::{CompactCacheKey, HashBinary};

/// What a purge names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One URL, every variant of it: its primary key (`host\npath?query`).
    Key(String),
    /// Several URLs at once (a fleet purge's list): one pass over the store for all of them.
    Keys(HashSet<String>),
    /// Every URL whose primary key starts with this (`host\n/prefix`).
    Prefix(String),
    /// Every object stored with this cache tag ([`crate::cache::tags`]).
    Tag(String),
    /// Everything (an edge that missed purges it can no longer learn: nothing it holds is provably fresh).
    All,
}

impl Selector {
    /// What it names, in a word: the `kind` label of `dime_cache_purged_total` (and of the purge's log line).
    pub fn label(&self) -> &'static str {
        match self {
            Selector::Key(_) | Selector::Keys(_) => "url",
            Selector::Prefix(_) => "prefix",
            Selector::Tag(_) => "tag",
            Selector::All => "all",
        }
    }

    pub(crate) fn matches(&self, primary: &str, tags: impl FnOnce() -> Box<[Arc<str>]>) -> bool {
        match self {
            Selector::Key(key) => primary == key,
            Selector::Keys(keys) => keys.contains(primary),
            Selector::Prefix(prefix) => primary.starts_with(prefix.as_str()),
            Selector::Tag(tag) => tags().iter().any(|t| **t == **tag),
            Selector::All => true,
        }
    }
}

/// What a purge met: the stored objects (removed or made stale), the fills in flight it abandoned, the disk
/// copies it removed.
#[derive(Debug, Default)]
pub struct Purged {
    pub objects: Vec<CompactCacheKey>,
    pub fills: Vec<HashBinary>,
    /// The disk copies removed (many of them also in `objects`, the memory ones).
    pub disk: Vec<HashBinary>,
}
