//! The fleet tier: edges that know each other fetch a cache miss from the edge that owns the object's key, so
//! the whole fleet asks the origin about once per object (Apache Traffic Server's consistent-hash parents,
//! Fastly's shielding). The owner is chosen on a ketama ring (`pingora-ketama`, nginx's consistent hash) over the
//! members' peer addresses; every edge given the same members computes the same owner for a key, and a member
//! joining or leaving moves about 1/N of the keys.
//!
//! A request that came from a peer is never sent to another peer; an owner that cannot be reached or fails is
//! skipped for the next member on the ring, and when the next one is this edge, for the origin.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dime_routes::Invalid;
use parking_lot::Mutex;
use pingora_ketama::{Bucket, Continuum};

/// Failures in a row after which a member is skipped for [`EJECT_FOR`].
const EJECT_AFTER: u32 = 3;
const EJECT_FOR: Duration = Duration::from_secs(10);

pub mod identity;

/// One edge of the fleet: its name, the peer listener other edges fetch from, and (in a fleet from control) the
/// public key its peer requests are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// As advertised: `http://IP:PORT`.
    pub url: String,
    pub addr: SocketAddr,
    /// Its Ed25519 public key ([`identity`]); `None` in a static `--peers` fleet, or for a member that reported none.
    pub key: Option<Vec<u8>>,
}

impl Member {
    /// `NAME=http://IP:PORT`, as `--peers` lists members.
    pub fn parse(entry: &str) -> Result<Member, Invalid> {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| Invalid(format!("`{entry}`: expected NAME=URL, e.g. edge-a=http://10.147.17.5:8444")))?;
        let name = name.trim();
        if !dime_routes::wire::edge_name_ok(name) {
            return Err(Invalid(format!("`{entry}`: {}", dime_routes::wire::EDGE_NAME_RULE)));
        }
        let url = url.trim();
        Ok(Member { name: name.to_owned(), url: url.to_owned(), addr: peer_addr(url)?, key: None })
    }
}

/// The socket address of a peer URL. Only `http://IP:PORT`: the ring hashes addresses, so every edge must see the
/// same one for a member, which a DNS name would not promise.
pub fn peer_addr(url: &str) -> Result<SocketAddr, Invalid> {
    url.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|rest| rest.parse::<SocketAddr>().ok())
        .ok_or_else(|| Invalid(format!("`{url}`: a peer URL is http://IP:PORT (e.g. http://10.147.17.5:8444)")))
}

/// The members as given, checked: no name or address twice, this edge among them with the URL it advertises.
pub fn check_members(me: &str, advertise: &str, members: &[Member]) -> Result<(), Invalid> {
    for (i, m) in members.iter().enumerate() {
        if let Some(first) = members[..i].iter().find(|o| o.name == m.name) {
            return Err(Invalid(format!("edge `{}` is listed twice ({} and {})", m.name, first.url, m.url)));
        }
        if let Some(first) = members[..i].iter().find(|o| o.addr == m.addr) {
            return Err(Invalid(format!("`{}` and `{}` have the same address {}", first.name, m.name, m.addr)));
        }
    }
    match members.iter().find(|m| m.name == me) {
        None => Err(Invalid(format!("this edge, `{me}`, is not in the list (add {me}={advertise})"))),
        Some(m) if peer_addr(advertise)? != m.addr => {
            Err(Invalid(format!("this edge, `{me}`, is listed as {} but advertises {advertise}", m.url)))
        }
        Some(_) => Ok(()),
    }
}

/// The fleet settings (`--edge-name`, `--peer-*`, `--peers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    pub name: String,
    pub listen: SocketAddr,
    pub advertise: String,
    pub members: Vec<Member>,
    /// The shared peer token of a static `--peers` fleet; a fleet from control signs instead ([`identity`]).
    pub token_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// How this edge proves its name to its peers, and checks theirs.
#[derive(Debug)]
pub enum PeerAuth {
    /// A static `--peers` fleet: one token every edge has (the first is the one sent; several for rotation). It
    /// tells a fleet edge from anyone else, not one edge from another.
    Shared(Vec<String>),
    /// A fleet from control: this edge's key pair; the members' public keys come with their entries.
    Signed(identity::PeerKey),
}

/// Whether a request on the peer listener comes from a member that proved its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCheck {
    /// It did (in a static fleet: it has the fleet's token).
    Heard,
    /// No peer credentials at all (`401`).
    Missing,
    /// Credentials that do not prove the name it claims (`403`), and why.
    Refused(&'static str),
}

/// A peer request as the peer listener checks it: the headers that carry the sender's proof, and what it signed.
#[derive(Debug, Clone, Copy)]
pub struct PeerRequest<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub target: &'a str,
    pub sender: Option<&'a str>,
    pub token: Option<&'a str>,
    pub time: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// The members on a ketama ring.
pub struct Ring {
    members: Vec<Member>,
    continuum: Continuum,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("members", &self.members).finish_non_exhaustive()
    }
}

impl Ring {
    pub fn new(members: Vec<Member>) -> Ring {
        let buckets: Vec<Bucket> = members.iter().map(|m| Bucket::new(m.addr, 1)).collect();
        Ring { continuum: Continuum::new(&buckets), members }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The members in the order a key tries them: its owner first, then the next distinct members on the ring.
    pub fn candidates<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = &'a Member> + 'a {
        let mut seen: Vec<SocketAddr> = Vec::with_capacity(self.members.len());
        let limit = self.members.len();
        self.continuum
            .node_iter(key)
            .take(limit.saturating_mul(160).max(1))
            .filter(move |addr| {
                if seen.len() == limit || seen.contains(addr) {
                    return false;
                }
                seen.push(**addr);
                true
            })
            .filter_map(|addr| self.members.iter().find(|m| m.addr == *addr))
    }

    /// The member that owns `key`.
    pub fn owner(&self, key: &[u8]) -> Option<&Member> {
        self.candidates(key).next()
    }
}

/// This edge's view of the fleet while it runs.
#[derive(Debug)]
pub struct Fleet {
    pub me: String,
    /// This edge as a member (its advertised peer URL), on the ring whatever control's list says.
    own: Option<Member>,
    ring: ArcSwap<Ring>,
    auth: PeerAuth,
    /// The last fleet purge this edge applied (with control): what it answers members with, and the fence an
    /// asking edge must not be ahead of.
    purged: Mutex<Option<dime_routes::wire::Cursor>>,
    /// The purges it is applying now (set before, cleared after): what an owner's answer must already cover, so
    /// an answer racing the application is not stored.
    purging: Mutex<Option<dime_routes::wire::Cursor>>,
    pub timeout: Duration,
    failures: Mutex<HashMap<SocketAddr, (u32, Instant)>>,
}

impl Fleet {
    pub fn new(settings: &FleetSettings, auth: PeerAuth) -> Fleet {
        let key = match &auth {
            PeerAuth::Signed(k) => identity::public_key(k.public()),
            PeerAuth::Shared(_) => None,
        };
        let own = peer_addr(&settings.advertise).ok().map(|addr| Member {
            name: settings.name.clone(),
            url: settings.advertise.clone(),
            addr,
            key,
        });
        Fleet {
            me: settings.name.clone(),
            own,
            ring: ArcSwap::from_pointee(Ring::new(settings.members.clone())),
            auth,
            purged: Mutex::new(None),
            purging: Mutex::new(None),
            timeout: settings.timeout,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn ring(&self) -> Arc<Ring> {
        self.ring.load_full()
    }

    /// The members control serves with the table (this edge added if it is not among them yet, e.g. before its
    /// first Lease): the ring is rebuilt when they changed. Entries with a bad URL are skipped and logged.
    pub fn set_members(&self, listed: &[dime_routes::wire::Member]) {
        let mut members: Vec<Member> = Vec::new();
        for dime_routes::wire::Member { name, url, key } in listed {
            let key = key.as_deref().and_then(identity::public_key);
            if key.is_none() && matches!(self.auth, PeerAuth::Signed(_)) {
                // It can ask nobody (its requests cannot be checked), and nobody should ask it to prove nothing:
                // it stays on the ring as owner, and its own requests are refused until it reports a key.
                tracing::debug!(edge = name, "control lists a member without a peer key");
            }
            match peer_addr(url) {
                Ok(addr) if !members.iter().any(|m| m.name == *name || m.addr == addr) => {
                    members.push(Member { name: name.clone(), url: url.clone(), addr, key });
                }
                Ok(_) => tracing::warn!(edge = name, url, "control lists a member twice; keeping the first"),
                Err(e) => tracing::warn!(edge = name, error = %e, "control lists a member with an unusable URL"),
            }
        }
        if let Some(own) = &self.own {
            members.retain(|m| m.name == own.name || m.addr != own.addr);
            if !members.iter().any(|m| m.name == own.name) {
                members.push(own.clone());
            }
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        if self.ring().members() == members.as_slice() {
            return;
        }
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        tracing::info!(members = ?names, "fleet members changed");
        self.ring.store(Arc::new(Ring::new(members)));
    }

    /// The member to ask for `key`: the first on the ring (among `only`, a route's shield, when given) that this
    /// request has not tried and that is not ejected; `None` when that is this edge (it fetches from the origin
    /// itself) or no member is left.
    pub fn ask_for(&self, key: &[u8], tried: &[SocketAddr], only: Option<&[String]>) -> Option<Member> {
        let ring = self.ring();
        let now = Instant::now();
        let failures = self.failures.lock();
        let ejected =
            |addr: &SocketAddr| failures.get(addr).is_some_and(|(n, until)| *n >= EJECT_AFTER && *until > now);
        let eligible = |m: &Member| only.is_none_or(|names| names.contains(&m.name));
        let usable = |m: &Member| m.name == self.me || !(tried.contains(&m.addr) || ejected(&m.addr));
        let next = ring.candidates(key).filter(|m| eligible(m)).find(|m| usable(m))?;
        (next.name != self.me).then(|| next.clone())
    }

    /// This edge starts applying the fleet purges up to `cursor`: from now on, an owner's answer must cover them.
    /// A cursor of no log (control has no purge log yet: nothing was ever purged) covers and requires nothing.
    pub fn set_purging(&self, cursor: dime_routes::wire::Cursor) {
        *self.purging.lock() = Some(cursor).filter(|c| !c.log.is_empty());
    }

    /// This edge applied every fleet purge up to `cursor` (its purge feed says so after each answer).
    pub fn set_purged(&self, cursor: dime_routes::wire::Cursor) {
        *self.purged.lock() = Some(cursor).filter(|c| !c.log.is_empty());
        *self.purging.lock() = None;
    }

    /// What an owner must have applied for its answer to be stored here: every purge this edge applied or is
    /// applying.
    pub fn required(&self) -> Option<dime_routes::wire::Cursor> {
        self.purging.lock().clone().or_else(|| self.purged())
    }

    /// The last fleet purge this edge applied, if it follows control's purge log.
    pub fn purged(&self) -> Option<dime_routes::wire::Cursor> {
        self.purged.lock().clone()
    }

    /// Whether an asking edge at `asker` has applied a fleet purge this edge has not: then this edge's copy may
    /// be one that purge removed, and it must not answer from it (nor fetch for it: the asker goes to the origin).
    pub fn behind(&self, asker: &dime_routes::wire::Cursor) -> bool {
        !dime_routes::wire::Cursor::covers(self.purged.lock().as_ref(), asker)
    }

    /// This edge's public key, reported to control with its own credential (a fleet from control).
    pub fn public_key(&self) -> Option<&str> {
        match &self.auth {
            PeerAuth::Signed(k) => Some(k.public()),
            PeerAuth::Shared(_) => None,
        }
    }

    /// The headers that prove this edge's name to `to` on a request for `target` of `host` (beside
    /// [`dime_routes::wire::PEER_HEADER`]): the shared token of a static fleet, or the time and the signature.
    pub fn proof(&self, method: &str, host: &str, target: &str, to: &Member, now: u64) -> Vec<(&'static str, String)> {
        use dime_routes::wire;
        match &self.auth {
            PeerAuth::Shared(tokens) => {
                vec![(wire::PEER_TOKEN_HEADER, tokens.first().cloned().unwrap_or_default())]
            }
            PeerAuth::Signed(key) => {
                let message = wire::peer_message(method, host, target, &self.me, &to.name, now);
                vec![(wire::PEER_TIME_HEADER, now.to_string()), (wire::PEER_SIGNATURE_HEADER, key.sign(&message))]
            }
        }
    }

    /// Whether a request on the peer listener proves that it comes from the member it names: in a fleet from
    /// control, signed for this edge, within [`dime_routes::wire::PEER_CLOCK_SKEW`] of `now`, by the key control
    /// lists for that member; in a static fleet, with one of the fleet's tokens.
    pub fn check(&self, req: &PeerRequest<'_>, now: u64) -> PeerCheck {
        match &self.auth {
            PeerAuth::Shared(tokens) => match req.token {
                None => PeerCheck::Missing,
                Some(t) if dime_routes::token_accepted(tokens, t) => PeerCheck::Heard,
                Some(_) => PeerCheck::Refused("not the fleet's peer token"),
            },
            PeerAuth::Signed(_) => {
                let (Some(sender), Some(time), Some(signature)) = (req.sender, req.time, req.signature) else {
                    return PeerCheck::Missing;
                };
                let Ok(time) = time.trim().parse::<u64>() else { return PeerCheck::Refused("a time that is not one") };
                if !identity::timely(time, now) {
                    return PeerCheck::Refused("signed too long ago or ahead (clocks apart, or a replay)");
                }
                let ring = self.ring();
                let Some(member) = ring.members().iter().find(|m| m.name == sender && m.name != self.me) else {
                    return PeerCheck::Refused("not a member");
                };
                let Some(key) = &member.key else { return PeerCheck::Refused("a member without a key") };
                let message = dime_routes::wire::peer_message(req.method, req.host, req.target, sender, &self.me, time);
                if identity::verify(key, &message, signature) {
                    PeerCheck::Heard
                } else {
                    PeerCheck::Refused("a signature that is not the member's")
                }
            }
        }
    }

    /// A request to `member` failed (connect, timeout, a refusal); after `EJECT_AFTER` (3) in a row it is
    /// skipped for `EJECT_FOR` (10 s). Returns true when this failure ejected it.
    pub fn record_failure(&self, member: SocketAddr) -> bool {
        let mut failures = self.failures.lock();
        let entry = failures.entry(member).or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now() + EJECT_FOR;
        entry.0 == EJECT_AFTER
    }

    /// `member` broke a response after its header had gone on to the viewer (a truncated or garbled body): it is
    /// skipped for `EJECT_FOR` at once. Returns true when it was not ejected already.
    pub fn eject(&self, member: SocketAddr) -> bool {
        let mut failures = self.failures.lock();
        let now = Instant::now();
        let entry = failures.entry(member).or_insert((0, now));
        let was = entry.0 >= EJECT_AFTER && entry.1 > now;
        *entry = (entry.0.max(EJECT_AFTER), now + EJECT_FOR);
        !was
    }

    pub fn record_success(&self, member: SocketAddr) {
        self.failures.lock().remove(&member);
    }
}

#[cfg(test)]
mod tests;
