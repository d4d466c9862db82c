//! What the test origin does for one request, typed: [`Behaviour`] is written into the request's query by
//! [`Ask`]'s `Display` and read back by the origin with [`Behaviour::from_query`], both with `serde_urlencoded`,
//! so the two sides cannot drift apart and a parameter the origin does not know is refused, not ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A request to the test origin: a path and what the origin does with it,
/// `ask("/a.ts").size(1000).cache_control("max-age=60")`. Its `Display` is the request target (the path, and the
/// [`Behaviour`] as the query), so it goes wherever a path does: `edge.get("c.test", ask("/a.ts").size(10))`.
/// Without any behaviour the target is the bare path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    path: String,
    behaviour: Behaviour,
}

pub fn ask(path: &str) -> Ask {
    Ask { path: path.to_owned(), behaviour: Behaviour::default() }
}

/// Every behaviour of the test origin, each a typed field set by the [`Ask`] method of the same name (`chunks`
/// sets `chunk_every` too); `None`/`false` is the origin's default. On the wire it is the whole query
/// (`size=1000&cache_control=max-age%3D60`, durations in milliseconds in `*_ms`), in field order; the origin
/// answers `400` with the reason for a query that does not read back into it (an unknown or repeated name, a value
/// of the wrong type, a status that is not one, a setting without the one it qualifies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// A body of this many bytes of [`crate::pattern`] (instead of the one-line text body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surrogate_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, rename = "delay_ms", with = "millis", skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// The body in this many chunks (4 when only [`Behaviour::abort_after`] is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    /// The pause after each chunk (none when not given).
    #[serde(default, rename = "chunk_every_ms", with = "millis", skip_serializing_if = "Option::is_none")]
    pub chunk_every: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_after: Option<usize>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hang_up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub vary_encoding: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub announce_length: bool,
    /// Answers with the edge's own marks (`x-dime-owner`, `x-dime-peer-refused`, `x-dime-edge`), as a hostile or
    /// confused origin could.
    #[serde(default, skip_serializing_if = "is_false")]
    pub internal_marks: bool,
    /// More response header fields, `name: value` lines (each [`Ask::header`] adds one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// A duration on the wire: whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Some(Duration::from_millis(u64::deserialize(d)?)))
    }
}

impl Behaviour {
    /// The behaviour a request's query asks for (none for no query). The one place the origin reads it.
    pub fn from_query(query: Option<&str>) -> Result<Behaviour, String> {
        let behaviour: Behaviour = serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| e.to_string())?;
        if let Some(status) = behaviour.status {
            if hyper::StatusCode::from_u16(status).is_err() {
                return Err(format!("status {status} is not an HTTP status"));
            }
        }
        if behaviour.announce_length && behaviour.abort_after.is_none() {
            return Err("announce_length is only for abort_after".into());
        }
        if behaviour.chunk_every.is_some() && behaviour.chunks.is_none() {
            return Err("chunk_every_ms is only for chunks".into());
        }
        Ok(behaviour)
    }

    /// The query that asks for this behaviour (empty for none). The one place it is written.
    fn to_query(&self) -> String {
        // Every field is a number, a string, a bool or an optional one of them: serde_urlencoded takes them all.
        serde_urlencoded::to_string(self).unwrap()
    }
}

impl Ask {
    /// A body of `n` bytes of [`crate::pattern`] (instead of the one-line text body).
    pub fn size(mut self, n: usize) -> Self {
        self.behaviour.size = Some(n);
        self
    }
    /// The `Cache-Control` header of the answer.
    pub fn cache_control(mut self, value: &str) -> Self {
        self.behaviour.cache_control = Some(value.to_owned());
        self
    }
    /// The answer's `Surrogate-Key` (space-separated cache tags, Fastly's header).
    pub fn surrogate_key(mut self, keys: &str) -> Self {
        self.behaviour.surrogate_key = Some(keys.to_owned());
        self
    }
    /// The answer's `Cache-Tag` (comma-separated cache tags, Cloudflare's header).
    pub fn cache_tag(mut self, tags: &str) -> Self {
        self.behaviour.cache_tag = Some(tags.to_owned());
        self
    }
    /// The answer's `Access-Control-Allow-Origin` (cross-origin pages may read it).
    pub fn allow_origin(mut self, origin: &str) -> Self {
        self.behaviour.allow_origin = Some(origin.to_owned());
        self
    }
    /// The answer's `Access-Control-Expose-Headers`.
    pub fn expose_headers(mut self, names: &str) -> Self {
        self.behaviour.expose_headers = Some(names.to_owned());
        self
    }
    /// The answer's status.
    pub fn status(mut self, status: u16) -> Self {
        self.behaviour.status = Some(status);
        self
    }
    /// Waits this long before the header.
    pub fn delay(mut self, wait: Duration) -> Self {
        self.behaviour.delay = Some(wait);
        self
    }
    /// Sends the body in `n` chunks, `every` apart (chunked encoding unless [`Ask::announce_length`]).
    pub fn chunks(mut self, n: usize, every: Duration) -> Self {
        self.behaviour.chunks = Some(n);
        self.behaviour.chunk_every = Some(every);
        self
    }
    /// Sends `n` bytes of the body, then drops the connection.
    pub fn abort_after(mut self, n: usize) -> Self {
        self.behaviour.abort_after = Some(n);
        self
    }
    /// Reads the request, then drops the connection without a byte of answer.
    pub fn hang_up(mut self) -> Self {
        self.behaviour.hang_up = true;
        self
    }
    /// The answer's `ETag` (quoted); a request whose `If-None-Match` names it gets `304 Not Modified`.
    pub fn etag(mut self, tag: &str) -> Self {
        self.behaviour.etag = Some(tag.to_owned());
        self
    }
    /// Answers with `Vary: Accept-Encoding` and a body that starts with the line `encoding=<the request's
    /// Accept-Encoding>`, so each variant can be told apart.
    pub fn vary_encoding(mut self) -> Self {
        self.behaviour.vary_encoding = true;
        self
    }
    /// Answers with the edge's own marks, `x-dime-owner`, `x-dime-peer-refused` and `x-dime-edge` (see
    /// [`Behaviour::internal_marks`]).
    pub fn internal_marks(mut self) -> Self {
        self.behaviour.internal_marks = true;
        self
    }
    /// One more response header field, `name: value` (repeat for more; a name given twice is sent twice).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let line = format!("{name}: {value}");
        self.behaviour.headers = Some(match self.behaviour.headers.take() {
            Some(lines) => format!("{lines}\n{line}"),
            None => line,
        });
        self
    }
    /// With [`Ask::abort_after`]: announces the full `Content-Length` before breaking off.
    pub fn announce_length(mut self) -> Self {
        self.behaviour.announce_length = true;
        self
    }
}

impl std::fmt::Display for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)?;
        let query = self.behaviour.to_query();
        if !query.is_empty() {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_of(ask: &Ask) -> Option<String> {
        ask.to_string().split_once('?').map(|(_, q)| q.to_owned())
    }

    #[test]
    fn every_behaviour_reads_back_as_written() {
        let full = ask("/a.ts")
            .size(1000)
            .cache_control("max-age=60, stale-if-error=30")
            .surrogate_key("site news")
            .cache_tag("news,sports")
            .allow_origin("*")
            .expose_headers("X-Stream")
            .status(404)
            .delay(Duration::from_millis(300))
            .chunks(5, Duration::from_millis(50))
            .abort_after(500)
            .hang_up()
            .etag("v1")
            .vary_encoding()
            .announce_length()
            .internal_marks();
        let read = Behaviour::from_query(query_of(&full).as_deref()).unwrap();
        assert_eq!(read, full.behaviour);
        assert_eq!(Behaviour::from_query(None).unwrap(), Behaviour::default());
    }

    #[test]
    fn the_target_is_the_path_and_the_behaviour_in_field_order() {
        assert_eq!(ask("/plain.html").to_string(), "/plain.html");
        assert_eq!(
            ask("/a.ts").cache_control("max-age=60").size(1000).delay(Duration::from_secs(1)).to_string(),
            "/a.ts?size=1000&cache_control=max-age%3D60&delay_ms=1000"
        );
        assert_eq!(ask("/h").hang_up().to_string(), "/h?hang_up=true");
    }

    #[test]
    fn a_query_the_origin_does_not_know_is_refused_with_the_reason() {
        for (query, reason) in [
            ("sise=10", "unknown field `sise`"),
            ("size=10&size=20", "duplicate field `size`"),
            ("size=ten", "invalid digit"),
            ("delay_ms=1s", "invalid digit"),
            ("status=1000", "not an HTTP status"),
            ("announce_length=true", "only for abort_after"),
            ("chunk_every_ms=10", "only for chunks"),
        ] {
            let e = Behaviour::from_query(Some(query)).unwrap_err();
            assert!(e.contains(reason), "{query}: {e}");
        }
    }
}
