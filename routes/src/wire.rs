//! Every message between an edge and dime-control, and between edges, declared once: the paths, the header
//! names, the query parameters and the JSON bodies. Control writes them and the edge reads them (or the other
//! way round) through these types, so a change to the conversation is a change here that the compiler carries
//! to both sides.
//!
//! | exchange | request | answer |
//! | --- | --- | --- |
//! | [`ROUTES`] (long-poll) | [`WaitQuery`], [`Report`] headers, `If-None-Match: `[`Etag`] | the table with its [`Fleet`] ([`encode_table`], [`decode_table`]), `ETag` |
//! | [`EDGES`] | — | [`EdgesAnswer`] |
//! | [`PURGES`] (the feed, long-poll) | [`FeedQuery`] (its cursor is the edge's acknowledgement), [`Report`] | [`Feed`] |
//! | [`PURGE`] (`POST`), `PURGE/ID` | [`Purge`], [`WaitQuery`] | [`PurgeStatus`] |
//! | any refusal | — | [`Problem`] |
//! | edge → edge (the tier) | [`PEER_HEADER`] with [`PEER_TIME_HEADER`] and [`PEER_SIGNATURE_HEADER`] over [`peer_message`] (a fleet from control), or [`PEER_TOKEN_HEADER`] (a static `--peers` fleet) | [`OWNER_HEADER`] or [`PEER_REFUSED_HEADER`] |

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

pub use crate::purge::{Entry, Prefix, Purge};
use crate::schema::Document;

/// The route table, long-polled by every edge (edge token).
pub const ROUTES: &str = "/v1/routes";
/// The fleet as control sees it (edge token).
pub const EDGES: &str = "/v1/edges";
/// The purge feed, long-polled by every edge (edge token).
pub const PURGES: &str = "/v1/purges";
/// `POST` a purge; `GET PURGE/ID` its status (purge token).
pub const PURGE: &str = "/v1/purge";

/// The longest long-poll a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// `?wait=30s`: how long a long-poll may be held. Lenient, since a wait is a hint: absent or unreadable is no
/// wait, and it is capped at [`MAX_WAIT`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wait(Duration);

impl Wait {
    pub fn new(wait: Duration) -> Wait {
        Wait(wait.min(MAX_WAIT))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    /// The query value as it is read: `DURATION` text (`30s`, `250ms`), anything else is no wait.
    pub fn parse(text: &str) -> Wait {
        Wait::new(crate::parse_duration(text).unwrap_or(Duration::ZERO))
    }
}

impl Serialize for Wait {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}ms", self.0.as_millis()))
    }
}

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(Wait::parse(&text))
    }
}

/// The query of a long-poll or a purge: `?wait=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait: Wait,
}

// ---------------------------------------------------------------------------------------------------------------
// The route table and the fleet

/// One edge of the fleet as the edges get it with the table: its name, its peer listener's URL and the public
/// key it signs its peer requests with (an edge that reported none, an older one, has none and cannot be heard
/// by the others' peer listeners).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub url: String,
    /// Its Ed25519 public key, base64url without padding ([`Report::peer_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The fleet's part of a table answer: the live members with a peer URL, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    pub members: Vec<Member>,
}

/// The body of a `GET /v1/routes` answer: the table in the native schema, canonical form, and beside its own
/// fields a `fleet` field when control knows members. The same bytes are what an edge keeps in its state dir.
pub fn encode_table(document: &Document, fleet: Option<&Fleet>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Answer<'a> {
        #[serde(flatten)]
        document: &'a Document,
        #[serde(skip_serializing_if = "Option::is_none")]
        fleet: Option<&'a Fleet>,
    }
    serde_json::to_vec_pretty(&Answer { document, fleet }).unwrap_or_default()
}

/// A table answer, taken apart: the table's text (for [`crate::parse`], which validates and locates errors) and
/// the fleet, if it came with one. A `fleet` that does not read is left out, and why is in `fleet_error` (the
/// table is still the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAnswer {
    pub table: String,
    pub fleet: Option<Fleet>,
    pub fleet_error: Option<String>,
}

/// Takes a table answer apart. A first pass reads only the top-level `fleet` (every other value is skipped,
/// nothing kept); without one the body is the table as it is. A body that is not a JSON object goes whole to the
/// table's parser, which names what is wrong and where.
pub fn decode_table(body: &str) -> TableAnswer {
    let whole = || TableAnswer { table: body.to_owned(), fleet: None, fleet_error: None };
    let Ok(TopLevelFleet(Some(fleet))) = serde_json::from_str::<TopLevelFleet>(body) else { return whole() };
    let Ok(mut table) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body) else {
        return whole();
    };
    table.remove("fleet");
    let table = serde_json::to_string(&table).unwrap_or_default();
    match serde_json::from_value::<Fleet>(fleet) {
        Ok(fleet) => TableAnswer { table, fleet: Some(fleet), fleet_error: None },
        Err(e) => TableAnswer { table, fleet: None, fleet_error: Some(format!("`fleet`: {e}")) },
    }
}

/// The top-level `fleet` value of a JSON object, the rest skipped.
struct TopLevelFleet(Option<serde_json::Value>);

impl<'de> Deserialize<'de> for TopLevelFleet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TopLevelFleet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TopLevelFleet, A::Error> {
                let mut fleet = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "fleet" {
                        fleet = Some(map.next_value::<serde_json::Value>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(TopLevelFleet(fleet))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A table answer's `ETag`: the table's content version and, when members came with it, a short hash of them,
/// so that a membership change reaches the long-polls like a table edit (`"3f2a….9c1d0b7e"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etag {
    table: String,
    members: Option<String>,
}

impl Etag {
    /// The tag of `table_version` served with `members`.
    pub fn of(table_version: &str, members: &[Member]) -> Etag {
        let members = (!members.is_empty()).then(|| {
            let text = serde_json::to_string(members).unwrap_or_default();
            let digest = sha2::Sha256::digest(text.as_bytes());
            digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
        });
        Etag { table: table_version.to_owned(), members }
    }

    /// A tag as `ETag`/`If-None-Match` carry it (quoted, maybe weak) or as it was kept (bare).
    pub fn parse(text: &str) -> Etag {
        let bare = text.trim().trim_start_matches("W/").trim_matches('"');
        match bare.split_once('.') {
            Some((table, members)) => Etag { table: table.to_owned(), members: Some(members.to_owned()) },
            None => Etag { table: bare.to_owned(), members: None },
        }
    }

    /// The table's content version ([`crate::RouteTable::version`]).
    pub fn table_version(&self) -> &str {
        &self.table
    }

    /// The header value: quoted.
    pub fn header(&self) -> String {
        format!("\"{self}\"")
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.members {
            Some(m) => write!(f, "{}.{m}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What an edge says of itself on every poll

/// The request headers of an edge's report.
pub const EDGE_HEADER: &str = "x-dime-edge";
pub const PEER_URL_HEADER: &str = "x-dime-peer-url";
pub const APPLIED_HEADER: &str = "x-dime-applied";
pub const REFUSED_HEADER: &str = "x-dime-refused";
pub const REFUSED_WHY_HEADER: &str = "x-dime-refused-reason";
pub const PEER_KEY_HEADER: &str = "x-dime-peer-key";
/// The longest refusal reason sent (a header value: one printable line).
pub const REFUSED_WHY_MAX: usize = 200;

/// Whether `name` can name an edge: a DNS-1123 label (1 to 63 lowercase letters, digits and `-`, starting and
/// ending with a letter or digit), so that it is its Lease's name as written (`dime-edge-NAME`) and a label value.
/// A name that is not one is refused, never folded into one: `EDGE-A` and `edge_a` would otherwise land on the
/// Lease of `edge-a`.
pub fn edge_name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&b.len())
        && b.iter().all(|c| inner(c) || *c == b'-')
        && b.first().is_some_and(inner)
        && b.last().is_some_and(inner)
}

/// Whether `key` can be an edge's peer key: 32 bytes (an Ed25519 public key) in base64url without padding, which
/// is 43 characters of `A-Z a-z 0-9 - _` (the last one of 16 of them, since only 4 of its 6 bits are the key's).
pub fn peer_key_ok(key: &str) -> bool {
    let b = key.as_bytes();
    let alphabet = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    b.len() == 43 && b.iter().all(alphabet) && b"AEIMQUYcgkosw048".contains(&b[42])
}

/// Why `name` cannot name an edge, for an error message.
pub const EDGE_NAME_RULE: &str =
    "an edge name is a DNS-1123 label: 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit";

/// What an edge says of itself on a poll: its name, its peer URL, the table version it runs and the last
/// version it refused and why (the Envoy ACK/NACK view, `GET /v1/edges`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub name: String,
    pub peer_url: Option<String>,
    pub applied: Option<String>,
    pub refused: Option<Refusal>,
    /// The Ed25519 public key the edge signs its peer requests with (base64url, no padding); control serves it
    /// with the edge's [`Member`] entry.
    pub peer_key: Option<String>,
}

/// Why a poll's report is refused (its value shown, cut to 80 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReport {
    #[error("{EDGE_HEADER} `{0}`: {EDGE_NAME_RULE}")]
    Name(String),
    #[error("{PEER_KEY_HEADER} `{0}`: not an Ed25519 public key (43 base64url characters)")]
    PeerKey(String),
}

/// A table an edge refused: the version (control's ETag) and the first error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub version: String,
    pub reason: String,
}

impl Report {
    /// A report that only names the edge (the purge feed's).
    pub fn named(name: &str) -> Report {
        Report { name: name.to_owned(), ..Default::default() }
    }

    /// The headers that carry it. A value that cannot be a header value is left out; the reason is cut to one
    /// printable line of at most [`REFUSED_WHY_MAX`] characters.
    pub fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        put(EDGE_HEADER, &self.name);
        if let Some(url) = &self.peer_url {
            put(PEER_URL_HEADER, url);
        }
        if let Some(applied) = &self.applied {
            put(APPLIED_HEADER, applied);
        }
        if let Some(key) = &self.peer_key {
            put(PEER_KEY_HEADER, key);
        }
        if let Some(r) = &self.refused {
            put(REFUSED_HEADER, &r.version);
            let why: String = r.reason.chars().filter(|c| !c.is_control()).take(REFUSED_WHY_MAX).collect();
            put(REFUSED_WHY_HEADER, &why);
        }
        headers
    }

    /// The report in a poll's headers: `Ok(None)` for a client that names no edge (not an edge of the fleet),
    /// an error naming what is wrong for one whose name cannot be an edge's ([`edge_name_ok`]) or whose peer key
    /// is not one ([`peer_key_ok`]).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Report>, BadReport> {
        let text =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
        let shown = |v: &str| v.chars().take(80).collect::<String>();
        let Some(name) = text(EDGE_HEADER) else {
            return match headers.get(EDGE_HEADER) {
                Some(v) if !v.is_empty() => Err(BadReport::Name(String::new())),
                _ => Ok(None),
            };
        };
        if !edge_name_ok(name) {
            return Err(BadReport::Name(shown(name)));
        }
        let refused = text(REFUSED_HEADER)
            .map(|v| Refusal { version: v.to_owned(), reason: text(REFUSED_WHY_HEADER).unwrap_or("").to_owned() });
        let peer_key = text(PEER_KEY_HEADER);
        if let Some(key) = peer_key.filter(|k| !peer_key_ok(k)) {
            return Err(BadReport::PeerKey(shown(key)));
        }
        Ok(Some(Report {
            name: name.to_owned(),
            peer_url: text(PEER_URL_HEADER).map(str::to_owned),
            applied: text(APPLIED_HEADER).map(str::to_owned),
            refused,
            peer_key: peer_key.map(str::to_owned),
        }))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The fleet as control sees it

/// `GET /v1/edges`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgesAnswer {
    /// The table version served now (without the members' part of the ETag).
    pub served_version: Option<String>,
    pub edges: Vec<EdgeView>,
}

/// One edge as `GET /v1/edges` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeView {
    pub name: String,
    pub peer_url: Option<String>,
    /// The public key it signs its peer requests with ([`Member::key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_key: Option<String>,
    pub applied_version: Option<String>,
    pub refused_version: Option<String>,
    pub refused_reason: Option<String>,
    /// Unix seconds of the last renewal.
    pub last_seen: i64,
    /// The purge log this edge follows (its uid), the last purge it applied, and when that was heard (Unix ms).
    pub purge_log: Option<String>,
    pub purge_applied: Option<u64>,
    pub purge_acked_at_ms: Option<i64>,
    pub state: EdgeState,
}

/// An edge against the table served now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeState {
    /// Runs the table served now.
    Current,
    /// Runs an older one.
    Stale,
    /// Refused the one served now.
    Refusing,
    /// Its Lease expired.
    Gone,
}

impl EdgeState {
    pub const ALL: [EdgeState; 4] = [EdgeState::Current, EdgeState::Stale, EdgeState::Refusing, EdgeState::Gone];

    /// As JSON and the `state` label of `dime_control_edges` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeState::Current => "current",
            EdgeState::Stale => "stale",
            EdgeState::Refusing => "refusing",
            EdgeState::Gone => "gone",
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Purges

/// Where an edge is in control's purge log: the log's uid and the last purge it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub log: String,
    pub applied: u64,
}

impl Cursor {
    /// As [`PURGE_CURSOR_HEADER`] carries it: `LOG SEQ`.
    pub fn header_value(&self) -> String {
        format!("{} {}", self.log, self.applied)
    }

    /// A [`PURGE_CURSOR_HEADER`] value; `None` for one that does not read.
    pub fn from_header(value: &str) -> Option<Cursor> {
        let (log, seq) = value.trim().split_once(' ')?;
        Some(Cursor { log: log.to_owned(), applied: seq.trim().parse().ok()? })
    }

    /// Whether an edge at `this` has applied every purge an edge at `other` has (`None`: no purge known yet). A
    /// cursor at 0 has applied nothing, so anything covers it; cursors of different logs cannot be compared: not
    /// covered.
    pub fn covers(this: Option<&Cursor>, other: &Cursor) -> bool {
        other.applied == 0 || this.is_some_and(|c| c.log == other.log && c.applied >= other.applied)
    }
}

/// `GET /v1/purges?after=SEQ&log=UID&wait=30s`. Without `after` (an edge that followed no log yet): every purge
/// the log holds. `after` is also the edge's acknowledgement of every purge up to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(default)]
    pub wait: Wait,
}

impl FeedQuery {
    pub fn new(cursor: Option<&Cursor>, wait: Duration) -> FeedQuery {
        FeedQuery { after: cursor.map(|c| c.applied), log: cursor.map(|c| c.log.clone()), wait: Wait::new(wait) }
    }

    /// The cursor the edge says it is at (`log` absent: the empty uid, which no log has).
    pub fn cursor(&self) -> Option<Cursor> {
        self.after.map(|applied| Cursor { log: self.log.clone().unwrap_or_default(), applied })
    }
}

/// One answer of the feed: the log's identity and last sequence number (as the answering replica has read it: a
/// replica whose watch lags may answer with a head below the edge's cursor, and an empty list), and the purges
/// after the edge's. `gap`: the log no longer holds every purge the edge missed (or is another log than the
/// edge's), so the edge cannot prove any of its objects fresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    pub log: String,
    pub head: u64,
    #[serde(default)]
    pub gap: bool,
    #[serde(default)]
    pub purges: Vec<Entry>,
}

impl Feed {
    /// Where the edge is once it applied this answer, coming from `before`. Never behind `before` on the same
    /// log: a replica whose watch lags answers with its own, older head, and the edge has applied more than that.
    pub fn cursor_after(&self, before: Option<&Cursor>) -> Cursor {
        let mut applied = self.purges.last().map_or(self.head, |e| e.seq.max(self.head));
        if let Some(b) = before.filter(|b| !self.gap && b.log == self.log) {
            applied = applied.max(b.applied);
        }
        Cursor { log: self.log.clone(), applied }
    }

    /// Whether the replica that answered has not read purges of this log that the edge at `before` applied
    /// (through another replica): it can give that edge nothing new until its watch catches up.
    pub fn behind(&self, before: Option<&Cursor>) -> bool {
        !self.gap && before.is_some_and(|b| b.log == self.log && self.head < b.applied)
    }
}

/// `POST /v1/purge?wait=` and `GET /v1/purge/ID?wait=`: one purge of the log and every edge's answer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeStatus {
    pub id: u64,
    pub log: String,
    pub accepted_at_ms: i64,
    pub purge: Purge,
    /// No live edge is still pending.
    pub all_acked: bool,
    pub edges: BTreeMap<String, EdgeAck>,
}

/// One edge's answer to one purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeAck {
    /// Milliseconds from control taking the purge to the edge having applied it; `null` while not.
    pub acked_ms: Option<i64>,
    pub state: AckState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckState {
    Acked,
    /// Live, not applied yet.
    Pending,
    /// Its Lease expired before it acknowledged.
    Gone,
    /// A state this reader does not know (a newer control): counted as neither applied nor pending.
    #[serde(other)]
    Other,
}

impl PurgeStatus {
    /// One line for a person: how many live edges applied the purge, the slowest, and who did not yet.
    pub fn summary(&self) -> String {
        let acked: Vec<i64> = self.edges.values().filter_map(|e| e.acked_ms).collect();
        let of = |state| self.edges.iter().filter(move |(_, e)| e.state == state).map(|(n, _)| n.as_str());
        let pending: Vec<&str> = of(AckState::Pending).collect();
        let gone = of(AckState::Gone).count();
        let slowest = acked.iter().max().map_or(String::new(), |ms| format!(", the last after {ms} ms"));
        let live = acked.len() + pending.len();
        let mut line = format!("purge {}: applied by {} of {live} live edges{slowest}", self.id, acked.len());
        if !pending.is_empty() {
            line.push_str(&format!("; not yet: {}", pending.join(", ")));
        }
        if gone > 0 {
            line.push_str(&format!("; {gone} gone (they apply it when they return)"));
        }
        line
    }
}

/// The body of every refusal of control's API: one error, or every problem of a purge, each located.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<&str> =
            self.error.iter().map(String::as_str).chain(self.errors.iter().map(String::as_str)).collect();
        f.write_str(&all.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Between edges (the fleet tier)

/// Every header named `x-dime-*` is the edge's own: one an origin sends is removed before the cache stores the
/// response or anyone sees it, and one a viewer sends never reaches an origin or a peer (an origin could otherwise
/// answer as if it were a peer, and a viewer pose as one).
pub const INTERNAL_PREFIX: &str = "x-dime-";

/// Whether a header name is one of the edge's own ([`INTERNAL_PREFIX`], in any case).
pub fn is_internal(name: &str) -> bool {
    name.len() >= INTERNAL_PREFIX.len()
        && name.as_bytes()[..INTERNAL_PREFIX.len()].eq_ignore_ascii_case(INTERNAL_PREFIX.as_bytes())
}

/// On a peer request: the asking edge's name (and the mark that stops a second hop).
pub const PEER_HEADER: &str = "x-dime-peer";
/// On a peer request in a static `--peers` fleet: the fleet's shared peer token, checked by the peer listener.
pub const PEER_TOKEN_HEADER: &str = "x-dime-peer-token";
/// On a peer request in a fleet from control: when it was signed (Unix seconds).
pub const PEER_TIME_HEADER: &str = "x-dime-peer-time";
/// On a peer request in a fleet from control: the asking edge's Ed25519 signature of [`peer_message`],
/// base64url without padding. The peer listener checks it with the key control lists for the edge named in
/// [`PEER_HEADER`], so an edge proves its name to the others and no secret is sent to any of them.
pub const PEER_SIGNATURE_HEADER: &str = "x-dime-peer-signature";
/// How far a peer request's time may be from the receiver's clock (either way) for its signature to count.
pub const PEER_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// What an edge signs for a peer request: the request (method, host, target) and who sends it to whom, when.
/// The receiver's name is in it, so a request signed for one member is no use at another; the time bounds how
/// long it can be replayed to the same one (and a replay only fetches the same object again).
pub fn peer_message(method: &str, host: &str, target: &str, sender: &str, receiver: &str, time: u64) -> Vec<u8> {
    format!("dime-peer-v1\n{method}\n{host}\n{target}\n{sender}\n{receiver}\n{time}").into_bytes()
}
/// On an answer of the peer listener: the owner itself refused (no table, no route, no peer token), so the
/// asking edge tries the next member or the origin. Its value: the status the owner would have answered, and
/// [`PEER_REFUSED_ORIGIN`] after it when what failed was the owner's request to the origin (then the asking
/// edge asks the origin itself and no other member: one more origin request at most, never one per member).
pub const PEER_REFUSED_HEADER: &str = "x-dime-peer-refused";
/// The word in a [`PEER_REFUSED_HEADER`] value that says the owner's origin request failed: `504 origin`.
pub const PEER_REFUSED_ORIGIN: &str = "origin";
/// The word in a [`PEER_REFUSED_HEADER`] value that says the owner has not applied every fleet purge the asking
/// edge has ([`PURGE_CURSOR_HEADER`]): its copy may be one a purge removed, so the asking edge goes to the origin.
pub const PEER_REFUSED_BEHIND: &str = "behind";
/// On a peer request (a fleet from control): the asking edge's purge position, a [`Cursor`] as `LOG SEQ`. An
/// owner that has not applied as much refuses ([`PEER_REFUSED_BEHIND`]), so no edge refills from a copy that a
/// purge it already applied removed (the purge fence).
pub const PURGE_CURSOR_HEADER: &str = "x-dime-purge-cursor";
/// How many members one request may ask before the origin: the owner and one more. Pingora's attempt budget
/// counts them, so the origin is always asked after them.
pub const MAX_PEER_ATTEMPTS: usize = 2;
/// How much longer an edge waits on a member's answer than the route's connect and read timeouts together: the
/// owner gives up on a hung origin first, and says so, rather than the asking edge giving up on the owner and
/// asking another member, which would ask the origin again.
pub const PEER_READ_MARGIN: Duration = Duration::from_secs(1);
/// On an owner's answer from its cache: how long it had held the object, in milliseconds. The asking edge takes
/// it off a live object's freshness (`playlist_ttl`, `segment_ttl`), so a playlist is never older than its TTL
/// however many edges it passed (whole-second `Age` would let it reach almost twice that).
pub const AGE_MS_HEADER: &str = "x-dime-age-ms";
/// On every other answer of the peer listener: the answering edge's name. The asking edge takes an answer only
/// from the member it asked.
pub const OWNER_HEADER: &str = "x-dime-owner";

#[cfg(test)]
mod tests;
