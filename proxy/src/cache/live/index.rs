//! The edge's memory of live playlists: the last fetch of each, judged against the next ([`super::judge`]).
//! Bounded: past [`MAX_PLAYLISTS`] records the oldest are forgotten, which only makes their next fetch `first`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;

use super::listing::{self, Format, ListingError};
use super::{judge, verdict, Continuity, Hash, Seen, Verdict};
use crate::cache::key;
use crate::cache::policy;

/// Playlists remembered at once.
pub const MAX_PLAYLISTS: usize = 10_000;

/// Largest playlist body read; a larger one is treated as unreadable.
const MAX_BODY: usize = 4 << 20;

/// How long a VOD playlist stays fresh (the route's `segment_ttl`), carried from the proxy's cache policy to the
/// store on the object's metadata.
#[derive(Debug, Clone, Copy)]
pub struct VodTtl(pub Duration);

/// A playlist fetch that just completed, as the store sees it.
#[derive(Debug)]
pub struct Completed<'a> {
    /// `host\npath?query`.
    pub primary: &'a str,
    pub status: u16,
    /// When the response arrived.
    pub created: SystemTime,
    pub body: &'a [Bytes],
}

/// What the store does with a completed playlist.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Action {
    pub continuity: Option<Continuity>,
    /// Objects to drop if created before the playlist's response.
    pub drop: Vec<Hash>,
    /// The playlist is VOD: store it with the VOD freshness.
    pub vod: bool,
    /// The body could not be read as a playlist (the reason, for the log).
    pub unreadable: Option<Unreadable>,
}

/// Why a fetched playlist's body could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("playlist of {len} bytes is larger than {MAX_BODY}")]
    TooLarge { len: usize },
    #[error(transparent)]
    Listing(#[from] ListingError),
}

#[derive(Debug, Default)]
pub struct LiveIndex {
    seen: Mutex<HashMap<Hash, Seen>>,
    /// Segments listed from another directory than their playlist's (`/live/s/index.m3u8` listing `seg/0.ts`):
    /// the playlist's ring key ([`stream_key`]), so that the fleet gives a stream's playlist and segments one
    /// owner however they are laid out. Segments beside their playlist need no entry (their directory is it).
    streams: Mutex<HashMap<Hash, std::sync::Arc<str>>>,
}

/// Segments remembered in [`LiveIndex::streams`] at once; past it the map starts over (a segment forgotten is
/// owned by its own directory's owner until its playlist is fetched again, a second or so later).
const MAX_STREAM_ENTRIES: usize = 200_000;

/// The fleet ring key of a stream: its playlist's key up to the last `/` of the path (`host\n/live/s/`).
pub fn stream_key(primary: &str) -> &str {
    let path_end = primary.find('?').unwrap_or(primary.len());
    primary[..path_end].rfind('/').map_or(primary, |slash| &primary[..=slash])
}

/// A playlist's primary key, read.
struct Playlist<'a> {
    host: &'a str,
    path: &'a str,
    format: Format,
    /// The record's key: one per playlist path, so the variants of a Low-Latency HLS playlist (`_HLS_msn`,
    /// `_HLS_skip`) are views of one listing.
    record: Hash,
}

impl<'a> Playlist<'a> {
    fn of(primary: &'a str) -> Option<Self> {
        let (host, rest) = key::split_primary(primary);
        let path = rest.split('?').next().unwrap_or(rest);
        let format = Format::of(path)?;
        Some(Playlist { host, path, format, record: pingora_cache::key::hash_key(format!("{host}\n{path}")) })
    }
}

/// The store key of a viewer's request for `entry` of the playlist at `host`/`path`.
fn entry_hash(host: &str, playlist_path: &str, entry: &listing::Entry) -> Option<Hash> {
    let (host, path, query) = listing::resolve(host, playlist_path, &entry.uri)?;
    let kind = policy::classify(&path);
    let primary = key::primary_key(&host, &path, query, kind, None);
    Some(pingora_cache::key::hash_key(&primary))
}

impl LiveIndex {
    pub fn new() -> Self {
        LiveIndex::default()
    }

    /// Judges a completed playlist fetch and remembers it. `None` when the object is not a playlist.
    pub fn completed(&self, done: &Completed<'_>) -> Option<Action> {
        let Playlist { host, path, format, record } = Playlist::of(done.primary)?;
        if done.status != 200 {
            // Gone (or failing) at the origin: whatever comes back under this name starts afresh.
            self.seen.lock().remove(&record);
            return Some(Action::default());
        }
        let len: usize = done.body.iter().map(Bytes::len).sum();
        let parsed = if len > MAX_BODY {
            Err(Unreadable::TooLarge { len })
        } else {
            let body: Vec<u8> = done.body.iter().flat_map(|b| b.iter().copied()).collect();
            listing::parse(format, &body).map_err(Unreadable::Listing)
        };
        let listing = match parsed {
            Ok(Some(listing)) => listing,
            Ok(None) => return Some(Action::default()),
            Err(reason) => {
                // Nothing it lists can be vouched for; the next readable fetch starts afresh.
                self.seen.lock().remove(&record);
                return Some(Action { unreadable: Some(reason), ..Default::default() });
            }
        };
        self.remember_streams(done.primary, host, path, &listing);
        let next = Seen::new(&listing, done.created, |e| entry_hash(host, path, e));
        let mut seen = self.seen.lock();
        let prev = seen.get(&record);
        let continuity = judge(prev, &next);
        let Verdict { new, retired } = verdict(prev, &next, continuity);
        if continuity != Continuity::Older {
            if seen.len() >= MAX_PLAYLISTS && prev.is_none() {
                forget_oldest(&mut seen);
            }
            seen.insert(record, next);
        }
        let mut drop = new;
        drop.extend(retired);
        Some(Action { continuity: Some(continuity), drop, vod: listing.shape.ended, unreadable: None })
    }
}

impl LiveIndex {
    /// The playlist's ring key for each segment it lists from another directory.
    fn remember_streams(&self, primary: &str, host: &str, playlist_path: &str, listing: &listing::Listing) {
        let dir = |p: &str| p.rfind('/').map_or(0, |i| i + 1);
        let own_dir = &playlist_path[..dir(playlist_path)];
        let mut nested: Vec<Hash> = Vec::new();
        for entry in &listing.entries {
            let Some((h, path, query)) = listing::resolve(host, playlist_path, &entry.uri) else { continue };
            if h != host || path[..dir(&path)] == *own_dir {
                continue;
            }
            let kind = policy::classify(&path);
            nested.push(pingora_cache::key::hash_key(key::primary_key(&h, &path, query, kind, None)));
        }
        if nested.is_empty() {
            return;
        }
        let stream: std::sync::Arc<str> = stream_key(primary).into();
        let mut streams = self.streams.lock();
        if streams.len() + nested.len() > MAX_STREAM_ENTRIES {
            streams.clear();
        }
        for hash in nested {
            // The first playlist that listed it keeps it (a segment two playlists share, e.g. `../audio/`, would
            // otherwise change owner with every playlist fetch).
            streams.entry(hash).or_insert_with(|| stream.clone());
        }
    }

    /// The ring key of the stream whose playlist lists segment `hash` from another directory, if one did.
    pub fn stream_of(&self, hash: &Hash) -> Option<std::sync::Arc<str>> {
        self.streams.lock().get(hash).cloned()
    }

    /// The origin confirmed a playlist unchanged (304) at `at`: it was seen then, as a fetch with the same body.
    pub fn revalidated(&self, primary: &str, at: SystemTime) {
        let Some(Playlist { record, .. }) = Playlist::of(primary) else { return };
        if let Some(seen) = self.seen.lock().get_mut(&record) {
            if seen.at.is_some_and(|t| t < at) {
                seen.at = Some(at);
            }
        }
    }
}

/// Forgets the least recently fetched tenth of the records (one scan per tenth of the capacity).
fn forget_oldest(seen: &mut HashMap<Hash, Seen>) {
    let mut ages: Vec<(Option<SystemTime>, Hash)> = seen.iter().map(|(h, s)| (s.at, *h)).collect();
    ages.sort_unstable();
    for (_, hash) in ages.iter().take((MAX_PLAYLISTS / 10).max(1)) {
        seen.remove(hash);
    }
}
