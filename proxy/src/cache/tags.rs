//! Cache tags: the names an origin gives its responses for purging them together (`Surrogate-Key`, Fastly's,
//! space-separated; `Cache-Tag`, Cloudflare's, comma-separated), and the index from tag to stored objects that
//! makes a purge by tag cost what it removes, not what the cache holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use pingora_cache::key::HashBinary;
use pingora_http::ResponseHeader;

/// The response headers that carry tags.
pub const SURROGATE_KEY: &str = "surrogate-key";
pub const CACHE_TAG: &str = "cache-tag";

/// At most this many tags per object, and this long each; more are ignored (Fastly's own limits are of this
/// order), so that one response cannot make the index grow without bound.
pub const MAX_TAGS: usize = 128;
pub const MAX_TAG_LEN: usize = dime_routes::purge::MAX_TAG_LEN;

/// Bytes one indexed tag of an object costs beyond its text (its place in two hash sets and the object's list),
/// counted in the cache budget.
pub const TAG_OVERHEAD: usize = 64;

/// The tags of a response: every `Surrogate-Key` (split on spaces) and `Cache-Tag` (split on commas) value,
/// trimmed, without empty or repeated ones, in order of appearance, bounded by [`MAX_TAGS`] / [`MAX_TAG_LEN`].
pub fn of(header: &ResponseHeader) -> Box<[Arc<str>]> {
    let mut tags: Vec<Arc<str>> = Vec::new();
    let surrogate = header.headers.get_all(SURROGATE_KEY).into_iter().map(|v| (v, ' '));
    let cache_tag = header.headers.get_all(CACHE_TAG).into_iter().map(|v| (v, ','));
    for (value, separator) in surrogate.chain(cache_tag) {
        let Ok(text) = value.to_str() else { continue };
        for tag in text.split(separator).map(str::trim) {
            if tags.len() == MAX_TAGS {
                return tags.into();
            }
            if !tag.is_empty() && tag.len() <= MAX_TAG_LEN && !tags.iter().any(|t| &**t == tag) {
                tags.push(tag.into());
            }
        }
    }
    tags.into()
}

/// What `tags` cost an object in the budget.
pub fn cost(tags: &[Arc<str>]) -> usize {
    tags.iter().map(|t| t.len() + TAG_OVERHEAD).sum()
}

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Arc<str>, HashSet<HashBinary>>>;

/// Tag → the objects (by key hash) stored with it.
pub struct TagIndex {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for TagIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagIndex").field("tags", &self.len()).finish()
    }
}

impl Default for TagIndex {
    fn default() -> Self {
        TagIndex { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

impl TagIndex {
    fn shard(&self, tag: &str) -> &Shard {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(tag);
        &self.shards[(h % SHARDS as u64) as usize]
    }

    pub fn add(&self, hash: HashBinary, tags: &[Arc<str>]) {
        for tag in tags {
            self.shard(tag).lock().entry(tag.clone()).or_default().insert(hash);
        }
    }

    pub fn remove(&self, hash: &HashBinary, tags: &[Arc<str>]) {
        for tag in tags {
            let mut shard = self.shard(tag).lock();
            if let Some(set) = shard.get_mut(&**tag) {
                set.remove(hash);
                if set.is_empty() {
                    shard.remove(&**tag);
                }
            }
        }
    }

    /// The objects stored with `tag`.
    pub fn tagged(&self, tag: &str) -> Vec<HashBinary> {
        self.shard(tag).lock().get(tag).map(|set| set.iter().copied().collect()).unwrap_or_default()
    }

    /// How many distinct tags are indexed.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
