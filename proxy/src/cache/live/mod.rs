//! Live streams that restart: a cached segment is served only while a playlist fetched by this edge vouches for it.
//!
//! Live origins reuse segment names. nginx-rtmp restarts its numbering at `s-0.ts` when a publisher comes back
//! after its cleanup window, and its DASH output names segments by a timestamp that restarts at 0 on every
//! publish; an origin may delete and re-create a stream's directory. A segment cached for `segment_ttl` under such
//! a name would be served to viewers of the next stream. The names themselves cannot tell, but the playlists can:
//! a viewer only learns a segment's name from a playlist, and every playlist a viewer gets from this edge was
//! fetched by this edge.
//!
//! # The rule
//! Each time a playlist fetched from the origin completes (before any viewer receives its body: readers of a
//! playlist being filled wait for its end, see `storage`), the edge compares what it lists with what the previous
//! fetch of the same playlist listed ([`judge`]):
//! - **continuous**: the previous fetch is recent (no longer ago than the window it listed plus one target
//!   duration and a second) and nothing went backwards: same DASH `availabilityStartTime`, media sequence,
//!   discontinuity sequence and last segment number not lower, every name listed by both at the same number;
//! - otherwise **first** (no previous fetch remembered, or the playlist answered 404 since), **gap** or
//!   **restart** (which signal, for the metric).
//!
//! An entry of the new playlist is *vouched for* when the comparison is continuous and the previous fetch listed
//! the same name at the same number. Every other entry is *new*: a cached object (or a fill in progress) for it
//! that was created before this playlist's response arrived is dropped, and the next viewer fetches the current
//! bytes. On a gap or a restart, the previous listing's other entries are dropped the same way.
//!
//! Every hit on a listed object is checked too ([`index::LiveIndex::servable`]), because a viewer does not always
//! learn a name from this edge's playlist first (a DASH template, an LL-HLS preload hint, a playlist from the
//! origin or another edge a second ahead of this one's): a copy is served only while its playlist's last fetch
//! still speaks for the stream ([`Seen::current`]), if it was stored since the current run of continuous fetches
//! began ([`Seen::since`]) and the run listed its name lately; with nothing speaking for the stream (the playlist
//! 404'd, was forgotten, or was not fetched for longer than its bound) only a copy younger than the bound is.
//!
//! # Why it is sound
//! A segment object is created when its response arrives. If a name is new in a playlist, any object for it
//! created before that playlist arrived was fetched before the edge had been told of the name by this listing:
//! it was asked for from an older listing (a previous stream) or guessed. Dropping it costs at most one extra
//! origin fetch; keeping it could serve another stream's bytes. If a name is vouched for, the edge saw the same
//! name at the same number in a listing at most one window earlier, and nothing went backwards in between. For
//! the origin to have replaced that segment in the meantime it must have restarted; a restart either renumbers
//! from 0 (caught: numbers go backwards or a name changes number) or continues the numbering (then the names are
//! new). A restart that reaches the old numbers again needs at least as much media as the old window held, so it
//! cannot happen within one window: that is what the time bound is for. What is not covered: an origin that
//! restarts with much shorter segments and no cleanup, reaching the same names at the same numbers in less than
//! one window (no origin we know does this), and a segment response read by the origin before a restart but
//! arriving after the playlist that announced it (one round trip at the moment of a restart).
//!
//! # What it costs
//! Nothing during normal playback: each new segment is new exactly once, in the fetch that first lists it, when
//! nothing is cached for it yet. Playlists are already fetched once per `playlist_ttl`; no origin request is
//! added. A viewer arriving after a pause longer than the window refetches the segments of the new window that
//! were cached before, which in a continuous stream are none. Memory: one record per playlist (bounded, see
//! [`index`]); a forgotten record only makes the next fetch `first`, which is safe.
//!
//! Playlists with `#EXT-X-ENDLIST` (or a `static` MPD) are VOD: cached for `segment_ttl`, and a later fetch that
//! lists the same names at the same numbers vouches for them however long ago the previous one was.

pub mod index;
pub mod listing;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

pub use listing::{Entry, Format, Listing, Shape};

/// The key of a cached object, as the store knows it.
pub type Hash = pingora_cache::key::HashBinary;

/// What the edge remembers of one fetch of a playlist.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// When its response arrived.
    pub at: Option<SystemTime>,
    /// When the run of continuous fetches this one belongs to began (the arrival of its `first`, `gap` or
    /// `restart` fetch): objects created before then are not this run's ([`index::LiveIndex::servable`]).
    pub since: Option<SystemTime>,
    pub shape: Shape,
    /// The object each entry names, with its number.
    pub entries: HashMap<Hash, Option<u64>>,
}

impl Seen {
    /// `resolve` maps each entry to the object key a viewer's request for it uses (None: not one of ours).
    pub fn new(listing: &Listing, at: SystemTime, mut resolve: impl FnMut(&Entry) -> Option<Hash>) -> Seen {
        let mut entries = HashMap::with_capacity(listing.entries.len());
        for entry in &listing.entries {
            if let Some(hash) = resolve(entry) {
                // A name listed twice (byte ranges of one file) is known by its first number.
                entries.entry(hash).or_insert(entry.seq);
            }
        }
        Seen { at: Some(at), since: Some(at), shape: listing.shape.clone(), entries }
    }

    /// How long after this fetch the next one can still be continuous with it: the window it listed, one target
    /// duration and [`SLACK`] (VOD fetches are continuous however far apart: see [`judge`]).
    pub fn bound(&self) -> Duration {
        self.shape.window.max(self.shape.target) + self.shape.target + SLACK
    }

    /// Whether this fetch still speaks for its stream at `now`: VOD, or no longer ago than [`Seen::bound`].
    pub fn current(&self, now: SystemTime) -> bool {
        self.shape.ended || self.at.is_some_and(|at| now.duration_since(at).map_or(true, |gap| gap <= self.bound()))
    }
}

/// How a fetch of a playlist relates to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The same stream, seen recently enough that no name can have been reused.
    Continuous,
    /// No previous fetch is remembered (new playlist, forgotten, or it answered 404 since).
    First,
    /// The previous fetch is older than its window: names may have been reused meanwhile.
    Gap,
    /// Something went backwards: a new stream under the same playlist name.
    Restart(&'static str),
    /// This fetch's response is older than the one already judged (fills finishing out of order): ignored.
    Older,
}

impl Continuity {
    pub fn label(self) -> &'static str {
        match self {
            Continuity::Continuous => "continuous",
            Continuity::First => "first",
            Continuity::Gap => "gap",
            Continuity::Restart(reason) => reason,
            Continuity::Older => "older",
        }
    }
}

/// Slack on the time bound: playlist TTLs and viewer polling add up to about a second.
const SLACK: Duration = Duration::from_secs(1);

pub fn judge(prev: Option<&Seen>, next: &Seen) -> Continuity {
    let Some(prev) = prev else { return Continuity::First };
    let (Some(then), Some(now)) = (prev.at, next.at) else { return Continuity::First };
    let Ok(gap) = now.duration_since(then) else { return Continuity::Older };
    if prev.shape.epoch != next.shape.epoch {
        return Continuity::Restart("epoch");
    }
    if next.shape.first_seq < prev.shape.first_seq || next.shape.last_seq < prev.shape.last_seq {
        return Continuity::Restart("media-sequence");
    }
    if next.shape.discontinuity_seq < prev.shape.discontinuity_seq {
        return Continuity::Restart("discontinuity-sequence");
    }
    if next.entries.iter().any(|(hash, seq)| prev.entries.get(hash).is_some_and(|s| s != seq)) {
        return Continuity::Restart("renumbered");
    }
    let vod = prev.shape.ended && next.shape.ended;
    if !vod && gap > prev.bound() {
        return Continuity::Gap;
    }
    Continuity::Continuous
}

/// What a judged fetch means for the cache: objects to drop when created before the fetch's response.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Entries of the new listing that nothing vouches for.
    pub new: Vec<Hash>,
    /// Entries of the previous listing that belong to a stream no longer current (gap, restart).
    pub retired: Vec<Hash>,
}

pub fn verdict(prev: Option<&Seen>, next: &Seen, continuity: Continuity) -> Verdict {
    let vouched = |hash: &Hash, seq: &Option<u64>| {
        continuity == Continuity::Continuous && prev.is_some_and(|p| p.entries.get(hash) == Some(seq))
    };
    match continuity {
        Continuity::Older => Verdict::default(),
        _ => {
            let new = next.entries.iter().filter(|(h, s)| !vouched(h, s)).map(|(h, _)| *h).collect();
            let retired = match (continuity, prev) {
                (Continuity::Gap | Continuity::Restart(_), Some(p)) => {
                    p.entries.keys().filter(|h| !next.entries.contains_key(*h)).copied().collect()
                }
                _ => Vec::new(),
            };
            Verdict { new, retired }
        }
    }
}

#[cfg(test)]
mod tests;
