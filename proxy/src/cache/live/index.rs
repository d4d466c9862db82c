//! The edge's memory of live playlists: the last fetch of each, judged against the next ([`super::judge`]).
//! Bounded: past [`MAX_PLAYLISTS`] records the oldest are forgotten, which only makes their next fetch `first`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::RwLock;

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
    /// The wall clock as the store judges it (a fetch older than the last judged one while the clock reads
    /// before that one too is the clock stepped back, not fills finishing out of order).
    pub now: SystemTime,
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
    /// Read on every hit ([`LiveIndex::servable`]), written once per playlist fetch.
    inner: RwLock<Inner>,
    /// Whether any segment was ever listed: until then a hit needs no look at the index.
    any: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last judged fetch of each playlist.
    seen: HashMap<Hash, Seen>,
    /// What the index knows of each object a playlist listed (not of playlists a master playlist lists).
    segments: HashMap<Hash, Segment>,
}

/// One object a playlist listed.
#[derive(Debug, Clone)]
struct Segment {
    /// The record of the playlist that listed it last.
    record: Hash,
    /// Listed from another directory than its playlist's (`/live/s/index.m3u8` listing `seg/0.ts`): the first
    /// such playlist's ring key ([`stream_key`]), so that the fleet gives a stream's playlist and segments one
    /// owner however they are laid out. Segments beside their playlist need none (their directory is it).
    stream: Option<std::sync::Arc<str>>,
    /// Listed by an ended (VOD) playlist.
    vod: bool,
    /// That playlist's [`Seen::bound`]: how long a copy nothing vouches for stays servable.
    bound: Duration,
    /// When a fetch listed it last, to forget the longest unlisted first.
    listed: SystemTime,
}

/// Objects listed by playlists remembered at once (twice the most one playlist may list); past it the longest
/// unlisted half is forgotten (a forgotten object is served like any cached object until a playlist lists its
/// name again, which judges it). Checked before a fetch adds its new names: one large playlist fetched again
/// and again adds nothing and prunes nothing.
const MAX_SEGMENTS: usize = 2 * listing::MAX_ENTRIES;

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
            // Gone (or failing) at the origin: whatever comes back under this name starts afresh, and what it
            // listed is vouched for by nothing (see `servable`).
            self.inner.write().seen.remove(&record);
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
                self.inner.write().seen.remove(&record);
                return Some(Action { unreadable: Some(reason), ..Default::default() });
            }
        };
        let listed = Listed::read(done.primary, host, path, &listing);
        let mut next = Seen::new(&listing, done.created, |e| entry_hash(host, path, e));
        let mut inner = self.inner.write();
        let prev = inner.seen.get(&record);
        let mut continuity = judge(prev, &next);
        if continuity == Continuity::Older && prev.and_then(|p| p.at).is_some_and(|at| done.now < at) {
            // The wall clock stepped back past the last fetch: a new run rather than a fetch ignored until the
            // clock catches up.
            continuity = Continuity::Gap;
        }
        let mut listed = listed;
        if continuity == Continuity::Continuous {
            // A delta playlist (`#EXT-X-SKIP`) leaves out the start of its window: those names are still listed,
            // at their numbers, and the next full playlist finds them vouched for.
            let skipped: Vec<(Hash, Option<u64>)> = prev
                .into_iter()
                .flat_map(|p| p.entries.iter())
                .filter(|(h, seq)| seq.is_some_and(|n| n >= next.shape.first_seq) && !next.entries.contains_key(*h))
                .map(|(h, seq)| (*h, *seq))
                .collect();
            for (hash, seq) in skipped {
                next.entries.insert(hash, seq);
                listed.0.push((hash, None));
            }
        }
        let Verdict { new, retired } = verdict(prev, &next, continuity);
        if continuity != Continuity::Older {
            if continuity == Continuity::Continuous {
                next.since = prev.and_then(|p| p.since);
            }
            if inner.seen.len() >= MAX_PLAYLISTS && prev.is_none() {
                forget_oldest(&mut inner.seen);
            }
            let vod = next.shape.ended;
            let bound = next.bound();
            inner.seen.insert(record, next);
            inner.remember(record, listed, vod, bound, done.created);
            self.any.store(true, Ordering::Relaxed);
        }
        drop(inner);
        let mut drop = new;
        drop.extend(retired);
        Some(Action { continuity: Some(continuity), drop, vod: listing.shape.ended, unreadable: None })
    }

    /// Whether a cached copy of `hash` created at `created` may be served at `now`. Objects no playlist listed
    /// may. A listed object may while its playlist's last fetch still speaks for the stream ([`Seen::current`])
    /// if it was created since that fetch's run began (a copy from before is another run's, perhaps another
    /// stream's: a restarted stream reuses names, and a viewer can ask for a name before this edge's playlist
    /// lists it, from a DASH template, an LL-HLS preload hint or a playlist fetched elsewhere). When the
    /// playlist is forgotten, gone (404) or has not been fetched for longer than its bound, nothing vouches for
    /// the stream: only a copy younger than that bound is served (VOD copies always are).
    pub fn servable(&self, hash: &Hash, created: SystemTime, now: SystemTime) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return true;
        }
        let inner = self.inner.read();
        let Some(segment) = inner.segments.get(hash) else { return true };
        match inner.seen.get(&segment.record) {
            Some(seen) if seen.current(now) => {
                // Stored during this run (a run that began over a bound in the future is a clock stepped back:
                // no telling), and listed by it lately or young: a name the run listed long ago and no longer
                // does may be reused by a restart this edge has not fetched the playlist of yet, so an old copy
                // of it is refetched (once per bound, for a viewer far behind).
                let bound = seen.bound();
                let this_run = seen.since.is_none_or(|since| created >= since || since > now + bound);
                let lately = seen.at.is_none_or(|at| at.duration_since(segment.listed).map_or(true, |d| d <= bound));
                this_run && (lately || young(created, now, bound))
            }
            None if segment.vod => true,
            _ => young(created, now, segment.bound),
        }
    }

    /// The ring key of the stream whose playlist lists segment `hash` from another directory, if one did.
    pub fn stream_of(&self, hash: &Hash) -> Option<std::sync::Arc<str>> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.inner.read().segments.get(hash).and_then(|s| s.stream.clone())
    }

    /// The origin confirmed a playlist unchanged (304) at `at`: it was seen then, as a fetch with the same body.
    pub fn revalidated(&self, primary: &str, at: SystemTime) {
        let Some(Playlist { record, .. }) = Playlist::of(primary) else { return };
        let mut inner = self.inner.write();
        let Inner { seen, segments } = &mut *inner;
        if let Some(seen) = seen.get_mut(&record) {
            if seen.at.is_some_and(|t| t < at) {
                seen.at = Some(at);
                // Listed again, as the same body.
                for hash in seen.entries.keys() {
                    if let Some(s) = segments.get_mut(hash).filter(|s| s.record == record) {
                        s.listed = s.listed.max(at);
                    }
                }
            }
        }
    }
}

/// The objects a playlist lists that are not playlists themselves (a master playlist's variants are judged on
/// their own fetches), each with the ring key it takes when listed from another directory.
struct Listed(Vec<(Hash, Option<std::sync::Arc<str>>)>);

impl Listed {
    fn read(primary: &str, host: &str, playlist_path: &str, listing: &listing::Listing) -> Listed {
        let dir = |p: &str| p.rfind('/').map_or(0, |i| i + 1);
        let own_dir = &playlist_path[..dir(playlist_path)];
        let mut stream: Option<std::sync::Arc<str>> = None;
        let mut out = Vec::with_capacity(listing.entries.len());
        for entry in &listing.entries {
            let Some((h, path, query)) = listing::resolve(host, playlist_path, &entry.uri) else { continue };
            if Format::of(&path).is_some() {
                continue;
            }
            let nested = h == host && path[..dir(&path)] != *own_dir;
            let nested = nested.then(|| stream.get_or_insert_with(|| stream_key(primary).into()).clone());
            let kind = policy::classify(&path);
            out.push((pingora_cache::key::hash_key(key::primary_key(&h, &path, query, kind, None)), nested));
        }
        Listed(out)
    }
}

impl Inner {
    fn remember(&mut self, record: Hash, listed: Listed, vod: bool, bound: Duration, at: SystemTime) {
        if self.segments.len() >= MAX_SEGMENTS {
            forget_unlisted_half(&mut self.segments);
        }
        for (hash, nested) in listed.0 {
            match self.segments.entry(hash) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let s = e.get_mut();
                    (s.record, s.vod, s.bound, s.listed) = (record, vod, bound, at);
                    // The first playlist that listed it from another directory keeps it (a segment two
                    // playlists share, e.g. `../audio/`, would otherwise change owner with every fetch).
                    if s.stream.is_none() {
                        s.stream = nested;
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Segment { record, stream: nested, vod, bound, listed: at });
                }
            }
        }
    }
}

/// Whether a copy created at `created` is no older than `bound` at `now` (one from the future is).
fn young(created: SystemTime, now: SystemTime, bound: Duration) -> bool {
    now.duration_since(created).map_or(true, |age| age <= bound)
}

/// Forgets the half of the segments listed longest ago.
fn forget_unlisted_half(segments: &mut HashMap<Hash, Segment>) {
    let mut times: Vec<SystemTime> = segments.values().map(|s| s.listed).collect();
    if times.is_empty() {
        return;
    }
    let mid = times.len() / 2;
    let median = *times.select_nth_unstable(mid).1;
    segments.retain(|_, s| s.listed > median);
}

/// Forgets the least recently fetched tenth of the records (one scan per tenth of the capacity).
fn forget_oldest(seen: &mut HashMap<Hash, Seen>) {
    let mut ages: Vec<(Option<SystemTime>, Hash)> = seen.iter().map(|(h, s)| (s.at, *h)).collect();
    ages.sort_unstable();
    for (_, hash) in ages.iter().take((MAX_PLAYLISTS / 10).max(1)) {
        seen.remove(hash);
    }
}
