//! The purge endpoints: `POST /v1/purge` and `GET /v1/purge/ID` (purge tokens), `GET /v1/purges` (the edges'
//! feed, edge tokens, long-polled).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use dime_routes::purge::{Entry, Purge};
use dime_routes::wire::{EdgeAck, FeedQuery, PurgeStatus, WaitQuery};
use http::StatusCode;
use tokio::time::Instant;

use crate::api::{json, ApiError, EdgeToken, PurgeToken, Query};
use crate::state::Shared;

/// The largest purge request body.
pub const MAX_BODY: usize = 64 * 1024;
/// How much of a refused body is read and dropped before the answer, and for how long, so that a client still
/// sending it reads the answer instead of a connection reset (nginx's lingering close does the same).
const DRAIN: (usize, Duration) = (4 * 1024 * 1024, Duration::from_secs(2));
/// How long after a purge this replica keeps watching for the last acknowledgement (for the histogram).
const TRACK_FOR: Duration = Duration::from_secs(60);

fn no_log() -> ApiError {
    ApiError::Unavailable("no purge log: not connected to Kubernetes".into())
}

/// The body if it is at most `limit` bytes; else (or if it breaks off) what is left of it, unread.
async fn read_up_to(mut body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, axum::body::Body> {
    use http_body_util::BodyExt;
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(body) };
        let Ok(data) = frame.into_data() else { continue };
        if read.len() + data.len() > limit {
            return Err(body);
        }
        read.extend_from_slice(&data);
    }
    Ok(read.freeze())
}

/// `refusal`, sent without reading the request's `body`: with `Connection: close`, because the connection cannot
/// carry another request. What is left of the body is read and dropped first, up to [`DRAIN`].
async fn closing(refusal: ApiError, mut body: axum::body::Body) -> Response {
    use http_body_util::BodyExt;
    let drain = async {
        let mut left = DRAIN.0;
        while let Some(Ok(frame)) = body.frame().await {
            left = left.saturating_sub(frame.data_ref().map_or(0, |d| d.len()));
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN.1, drain).await;
    let mut refusal = refusal.into_response();
    refusal.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    refusal
}

/// What became of a `POST /v1/purge`, as `dime_control_purge_requests_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Accepted,
    Invalid,
    Unauthorized,
    Unavailable,
}

impl Submitted {
    pub const ALL: [Submitted; 4] =
        [Submitted::Accepted, Submitted::Invalid, Submitted::Unauthorized, Submitted::Unavailable];

    pub fn as_str(self) -> &'static str {
        match self {
            Submitted::Accepted => "accepted",
            Submitted::Invalid => "invalid",
            Submitted::Unauthorized => "unauthorized",
            Submitted::Unavailable => "unavailable",
        }
    }
}

/// `POST /v1/purge`: validates, appends to the log, and with `?wait=` waits for the edges' acknowledgements.
/// A refusal before the body is read drains it and closes the connection ([`closing`]).
pub async fn submit(
    State(shared): State<Arc<Shared>>,
    auth: Result<PurgeToken, ApiError>,
    query: Result<Query<WaitQuery>, ApiError>,
    body: axum::body::Body,
) -> Response {
    let (result, response) = match (auth, query) {
        (Err(e), _) => (Submitted::Unauthorized, closing(e, body).await),
        (Ok(_), Err(e)) => (Submitted::Invalid, closing(e, body).await),
        (Ok(_), Ok(Query(q))) => match submitted(&shared, q.wait.duration(), body).await {
            Ok(status) => (Submitted::Accepted, json(StatusCode::OK, &status)),
            Err((result, response)) => (result, response),
        },
    };
    shared.metrics.purge.requests(result).inc();
    response
}

async fn submitted(
    shared: &Arc<Shared>,
    wait: Duration,
    body: axum::body::Body,
) -> Result<PurgeStatus, (Submitted, Response)> {
    let invalid = |e: ApiError| (Submitted::Invalid, e.into_response());
    let body = match read_up_to(body, MAX_BODY).await {
        Ok(body) => body,
        Err(rest) => {
            let why = format!("the purge is over {} KiB: split it into several", MAX_BODY / 1024);
            return Err((Submitted::Invalid, closing(ApiError::TooLarge(why), rest).await));
        }
    };
    let purge: Purge = serde_json::from_slice(&body)
        .map_err(|e| invalid(ApiError::BadRequest(format!("the purge is not valid JSON: {e}"))))?;
    purge.check().map_err(|errors| invalid(ApiError::Invalid(errors)))?;
    let unavailable = |e: ApiError| (Submitted::Unavailable, e.into_response());
    let (Some(log), Some(_)) = (shared.purges.get(), shared.fleet.get()) else { return Err(unavailable(no_log())) };
    let accepted = Instant::now();
    let entry = log.append(purge).await.map_err(|e| {
        tracing::warn!(error = %e, "purge not taken");
        unavailable(ApiError::Unavailable(format!("{e}; nothing was purged")))
    })?;
    let uid = log.snapshot().uid.clone();
    tracing::info!(id = entry.seq, targets = entry.purge.targets(), soft = entry.purge.soft, "purge accepted");
    let tracked = (shared.clone(), uid.clone(), entry.clone());
    tokio::spawn(async move {
        let (shared, uid, entry) = tracked;
        if wait_acked(&shared, &uid, &entry, accepted + TRACK_FOR).await.1 {
            shared.metrics.purge.ack_seconds.observe(accepted.elapsed().as_secs_f64());
        }
    });
    let (edges, done) = wait_acked(shared, &uid, &entry, accepted + wait).await;
    Ok(view(&uid, &entry, edges, done))
}

/// `GET /v1/purge/ID`: one purge of the log and every edge's answer to it (`?wait=` for the rest).
pub async fn status(
    State(shared): State<Arc<Shared>>,
    _: PurgeToken,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let id = id.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("`{id}` is not a purge id (a number)")))?;
    let log = shared.purges.get().ok_or_else(no_log)?;
    let snapshot = log.snapshot();
    let Some(entry) = snapshot.entries.get(&id).cloned() else {
        let held = match (snapshot.entries.keys().next(), snapshot.entries.keys().next_back()) {
            (Some(first), Some(last)) => format!("it holds {first} to {last}"),
            _ => "it is empty".into(),
        };
        return Err(ApiError::NotFound(format!("purge {id} is not in the log ({held})")));
    };
    let deadline = Instant::now() + q.wait.duration();
    let (edges, done) = wait_acked(&shared, &snapshot.uid, &entry, deadline).await;
    Ok(json(StatusCode::OK, &view(&snapshot.uid, &entry, edges, done)))
}

fn view(log: &str, entry: &Entry, edges: BTreeMap<String, EdgeAck>, done: bool) -> PurgeStatus {
    PurgeStatus {
        id: entry.seq,
        log: log.to_owned(),
        accepted_at_ms: entry.at_ms,
        purge: entry.purge.clone(),
        all_acked: done,
        edges,
    }
}

/// Every edge's answer to `entry`, once no live edge is pending or at `deadline`.
async fn wait_acked(shared: &Shared, log: &str, entry: &Entry, deadline: Instant) -> (BTreeMap<String, EdgeAck>, bool) {
    let mut changed = shared.edges_seen.subscribe();
    loop {
        let edges = shared.fleet.get().map(|f| f.edges(None)).unwrap_or_default();
        let (answers, done) = shared.acks.of(log, entry, &edges);
        if done || Instant::now() >= deadline {
            return (answers, done);
        }
        tokio::select! {
            c = changed.changed() => if c.is_err() { return (answers, done) },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// `GET /v1/purges?after=SEQ&log=UID&wait=30s` (edge tokens): the purges after the edge's, at once when there
/// are, else when one comes or the wait is over. `after` is also the edge's acknowledgement of every purge up to
/// it, recorded in its Lease.
pub async fn feed(
    State(shared): State<Arc<Shared>>,
    EdgeToken { report, .. }: EdgeToken,
    Query(q): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    let log = shared.purges.get().ok_or_else(no_log)?;
    let mut rx = log.subscribe();
    if !rx.borrow().loaded {
        return Err(ApiError::Unavailable("the purge log is not read yet".into()));
    }
    let cursor = q.cursor();
    // The acknowledgement is taken for the edge the credential names only (EdgeToken refused any other name).
    if let (Some(fleet), Some(report), Some(c)) = (shared.fleet.get(), report, &cursor) {
        fleet.purge_acked(&report.name, &c.log, c.applied);
    }
    let mut feed = rx.borrow().feed(cursor.as_ref());
    if cursor.as_ref().is_some_and(|c| rx.borrow().is_behind(c)) {
        shared.metrics.purge.feed_behind.inc();
        tracing::debug!(cursor = ?cursor, head = feed.head, "an edge is ahead of this replica's purge log; its watch lags");
    }
    if cursor.is_some() && !feed.gap && feed.purges.is_empty() {
        // Nothing new for this edge: wait until there is (a purge after its cursor, another log), or the wait is
        // over. An edge ahead of this replica (its watch lags another's) waits here too, until the watch has
        // caught up past it; it is never told it missed something.
        let news = |s: &crate::purge::Snapshot| {
            let f = s.feed(cursor.as_ref());
            f.gap || !f.purges.is_empty()
        };
        let _ = tokio::time::timeout(q.wait.duration(), async {
            while rx.changed().await.is_ok() {
                if news(&rx.borrow()) {
                    return;
                }
            }
        })
        .await;
        feed = rx.borrow().feed(cursor.as_ref());
    }
    Ok(json(StatusCode::OK, &feed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    const EDGE: &str = "edge-token-0123456789";
    const PURGER: &str = "purge-token-0123456789";

    async fn call(shared: &Arc<Shared>, method: &str, uri: &str, token: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let mut req = http::Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let app = crate::serve::app(shared.clone());
        let resp = app.oneshot(req.body(axum::body::Body::from(body)).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn purge_tokens_purge_and_edge_tokens_read_and_neither_does_the_other() {
        let shared = Arc::new(Shared::new(vec![], vec![PURGER.into()]).unwrap());
        let edge = std::collections::HashMap::from([(crate::credentials::hash(EDGE), "edge-a".to_owned())]);
        shared.credentials.set(edge);
        let tag = br#"{"tags":["a"]}"#.to_vec();
        let cases = [
            ("POST", "/v1/purge", None, 401, "missing `Authorization"),
            ("POST", "/v1/purge", Some(EDGE), 403, "an edge token cannot purge"),
            ("POST", "/v1/purge", Some("nobody-knows-this-token"), 401, "wrong purge token"),
            ("GET", "/v1/purge/1", Some(EDGE), 403, "an edge token cannot purge"),
            ("GET", "/v1/routes", Some(PURGER), 403, "a purge token cannot read"),
            ("GET", "/v1/edges", Some(PURGER), 403, "a purge token cannot read"),
            ("GET", "/v1/purges", Some(PURGER), 403, "a purge token cannot read"),
            // Right token, but this replica has no Kubernetes client: nothing taken.
            ("POST", "/v1/purge", Some(PURGER), 503, "no purge log"),
            ("GET", "/v1/purges", Some(EDGE), 503, "no purge log"),
        ];
        for (method, uri, token, status, says) in cases {
            let (got, body) = call(&shared, method, uri, token, tag.clone()).await;
            assert_eq!(got, status, "{method} {uri} with {token:?}: {body}");
            assert!(body.contains(says), "{method} {uri}: {body}");
        }
        let off = Arc::new(Shared::new(vec![EDGE.into()], vec![]).unwrap());
        off.credentials.set(Default::default());
        let (status, body) = call(&off, "POST", "/v1/purge", Some(EDGE), tag).await;
        assert_eq!(status, 403);
        assert!(body.contains("--purge-token-file"), "{body}");
    }

    #[tokio::test]
    async fn a_bad_purge_is_a_located_4xx_and_nothing_is_taken() {
        let shared = Arc::new(Shared::new(vec![EDGE.into()], vec![PURGER.into()]).unwrap());
        let huge = format!(r#"{{"tags":[{}]}}"#, vec!["\"t\""; 300_000].join(","));
        let cases: [(&[u8], u16, &str); 5] = [
            (br#"{"tags":["a"],"hosts":["x"]}"#, 400, "unknown field `hosts`"),
            (br#"{}"#, 400, "an empty purge"),
            (br#"{"urls":["v.test/a"]}"#, 400, "urls[0]"),
            (b"not json", 400, "not valid JSON"),
            (huge.as_bytes(), 413, "over 64 KiB"),
        ];
        for (body, status, says) in cases {
            let (got, text) = call(&shared, "POST", "/v1/purge", Some(PURGER), body.to_vec()).await;
            assert_eq!(got, status, "{text}");
            assert!(text.contains(says), "{text}");
        }
        let metrics = String::from_utf8(shared.metrics.render()).unwrap();
        assert!(metrics.contains("dime_control_purge_requests_total{result=\"invalid\"} 5"), "{metrics}");
        assert!(!metrics.contains("result=\"accepted\""));
        let (status, text) = call(&shared, "GET", "/v1/purge/x", Some(PURGER), vec![]).await;
        assert_eq!((status, text.contains("not a purge id")), (400, true), "{text}");
    }

    /// Over a real socket with a pooling client: a refused body (too large, or sent with the wrong token) ends
    /// its connection with `Connection: close`, and the client's next request, on a new connection, is answered.
    /// Without the header the client reused the connection the server had closed and got no answer.
    #[tokio::test]
    async fn a_refused_body_closes_its_connection_and_says_so() {
        let shared = Arc::new(Shared::new(vec![EDGE.into()], vec![PURGER.into()]).unwrap());
        let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        tokio::spawn(crate::serve::serve(listen, shared, None, crate::serve::ClientLimits::default()));
        let http = reqwest::Client::new();
        let url = format!("http://{listen}/v1/purge");
        let huge = format!(r#"{{"tags":[{}]}}"#, vec!["\"t\""; 300_000].join(","));
        let mut up = false;
        for _ in 0..50 {
            up = http.get(format!("http://{listen}/healthz")).send().await.is_ok();
            if up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(up, "the API never listened on {listen}");
        for round in 0..20 {
            for (token, body, status) in [(PURGER, &huge, 413), (EDGE, &huge, 403), (PURGER, &"{}".to_owned(), 400)] {
                let r = http.post(&url).bearer_auth(token).body(body.clone()).send().await;
                let r = r.unwrap_or_else(|e| panic!("round {round}, {status} expected: {e:?}"));
                assert_eq!(r.status().as_u16(), status, "round {round}");
                let close = r.headers().get("connection").is_some_and(|v| v == "close");
                assert_eq!(close, status != 400, "round {round}: only a refusal with the body unread closes");
            }
        }
    }
}
