//! Which edge applied which purge, and how long after control took it: read from the edges' Leases (each says
//! the last purge its edge applied and when a replica heard that), so every replica answers the same, whichever
//! replica the edge polls. An edge's acknowledgement covers every purge up to the one it names; the time a purge
//! was acknowledged is the first Lease this replica saw covering it (for purges older than the replica's own
//! start, the Lease it first read: an upper bound).

use std::collections::BTreeMap;

use dime_routes::purge::Entry;
use parking_lot::Mutex;

use super::Snapshot;
use dime_routes::wire::{AckState, EdgeAck, EdgeState, EdgeView};

#[derive(Debug, Default)]
struct Seen {
    /// The log the times below belong to.
    log: String,
    /// Per edge: up to which purge its times are recorded.
    recorded: BTreeMap<String, u64>,
    /// Per purge: when each edge was first seen to have applied it (Unix ms).
    first: BTreeMap<u64, BTreeMap<String, i64>>,
}

/// What this replica has seen of the edges' acknowledgements.
#[derive(Debug, Default)]
pub struct Acks {
    seen: Mutex<Seen>,
}

impl Acks {
    /// Learns from the edges (their Leases) and the log; called when either changes. Bounded by the log.
    pub fn learn(&self, log: &Snapshot, edges: &[EdgeView]) {
        let mut seen = self.seen.lock();
        if seen.log != log.uid {
            *seen = Seen { log: log.uid.clone(), ..Default::default() };
        }
        for edge in edges {
            let (Some(applied), Some(at)) = (edge.purge_applied, edge.purge_acked_at_ms) else { continue };
            if edge.purge_log.as_deref().unwrap_or("") != log.uid {
                continue;
            }
            // Not past the log as read: a purge this replica has not read yet is recorded when it is.
            let upto = applied.min(log.head);
            let from = seen.recorded.get(&edge.name).copied().unwrap_or(0);
            if upto <= from {
                continue;
            }
            for seq in log.entries.range(from + 1..=upto).map(|(s, _)| *s).collect::<Vec<_>>() {
                seen.first.entry(seq).or_default().entry(edge.name.clone()).or_insert(at);
            }
            seen.recorded.insert(edge.name.clone(), upto);
        }
        let oldest = log.entries.keys().next().copied().unwrap_or(u64::MAX);
        seen.first.retain(|seq, _| *seq >= oldest);
    }

    /// Every edge's answer to `entry` of `log`; `true` when no live edge is still pending.
    pub fn of(&self, log: &str, entry: &Entry, edges: &[EdgeView]) -> (BTreeMap<String, EdgeAck>, bool) {
        let seen = self.seen.lock();
        let times = seen.first.get(&entry.seq).filter(|_| seen.log == log);
        let mut answers = BTreeMap::new();
        let mut done = true;
        for edge in edges {
            let applied =
                edge.purge_log.as_deref().unwrap_or("") == log && edge.purge_applied.is_some_and(|a| a >= entry.seq);
            let answer = if applied {
                let at = times.and_then(|t| t.get(&edge.name)).copied().or(edge.purge_acked_at_ms);
                EdgeAck { acked_ms: at.map(|at| (at - entry.at_ms).max(0)), state: AckState::Acked }
            } else if edge.state == EdgeState::Gone {
                EdgeAck { acked_ms: None, state: AckState::Gone }
            } else {
                done = false;
                EdgeAck { acked_ms: None, state: AckState::Pending }
            };
            answers.insert(edge.name.clone(), answer);
        }
        (answers, done)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use dime_routes::purge::Purge;

    use super::*;

    fn edge(name: &str, state: EdgeState, ack: Option<(&str, u64, i64)>) -> EdgeView {
        EdgeView {
            name: name.into(),
            peer_url: None,
            peer_key: None,
            applied_version: None,
            refused_version: None,
            refused_reason: None,
            last_seen: 0,
            purge_log: ack.map(|a| a.0.to_owned()),
            purge_applied: ack.map(|a| a.1),
            purge_acked_at_ms: ack.map(|a| a.2),
            state,
        }
    }

    fn log(uid: &str, seqs: &[u64]) -> Snapshot {
        let entries = seqs
            .iter()
            .map(|&seq| (seq, Arc::new(Entry { seq, at_ms: 1000 * seq as i64, purge: Purge::default() })))
            .collect();
        Snapshot { loaded: true, uid: uid.into(), head: seqs.last().copied().unwrap_or(0), entries }
    }

    #[test]
    fn an_acknowledgement_covers_every_purge_up_to_it_timed_when_first_seen() {
        let acks = Acks::default();
        let l = log("L", &[1, 2]);
        acks.learn(&l, &[edge("a", EdgeState::Current, Some(("L", 1, 1010)))]);
        // a acknowledges 2 later: 1 keeps its first time.
        let edges = [
            edge("a", EdgeState::Current, Some(("L", 2, 2030))),
            edge("b", EdgeState::Current, None),
            edge("c", EdgeState::Gone, None),
        ];
        acks.learn(&l, &edges);
        let (one, done) = acks.of("L", &l.entries[&1], &edges);
        assert_eq!(one["a"], EdgeAck { acked_ms: Some(10), state: AckState::Acked });
        assert_eq!(one["b"], EdgeAck { acked_ms: None, state: AckState::Pending });
        assert_eq!(one["c"], EdgeAck { acked_ms: None, state: AckState::Gone });
        assert!(!done, "b is live and pending");
        let (two, _) = acks.of("L", &l.entries[&2], &edges);
        assert_eq!(two["a"].acked_ms, Some(30));
        let edges = [edge("a", EdgeState::Current, Some(("L", 2, 2030))), edge("c", EdgeState::Gone, None)];
        assert!(acks.of("L", &l.entries[&2], &edges).1, "only a gone edge left: done");
    }

    #[test]
    fn an_ack_for_a_purge_not_read_yet_is_timed_once_it_is_read() {
        let acks = Acks::default();
        let edges = [edge("a", EdgeState::Current, Some(("L", 3, 3005)))];
        acks.learn(&log("L", &[1, 2]), &edges);
        let full = log("L", &[1, 2, 3]);
        acks.learn(&full, &edges);
        // An older Lease read after a newer one (another replica's write arriving late) changes nothing.
        acks.learn(&full, &[edge("a", EdgeState::Current, Some(("L", 1, 9999)))]);
        assert_eq!(acks.of("L", &full.entries[&3], &edges).0["a"].acked_ms, Some(5));
        // Another log (made again): the old acknowledgements do not count for it.
        let other = log("M", &[1]);
        acks.learn(&other, &edges);
        assert_eq!(acks.of("M", &other.entries[&1], &edges).0["a"].state, AckState::Pending);
    }
}
