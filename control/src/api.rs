//! What every handler of control's API shares: who may call it ([`EdgeToken`], [`PurgeToken`]: extractors, so
//! no handler reads a token or a report itself), how its query is read ([`Query`]), and how it refuses ([`ApiError`]: one
//! type, answered as a [`wire::Problem`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use dime_routes::wire;
use http::request::Parts;
use http::StatusCode;

use crate::metrics::api::IdentityRefusal;
use crate::state::Shared;

/// Why a request is refused; its answer is a JSON [`wire::Problem`] with the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    /// Every problem of a purge, each located.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn problem(&self) -> wire::Problem {
        match self {
            ApiError::Invalid(errors) => wire::Problem { error: None, errors: errors.clone() },
            other => wire::Problem { error: Some(other.to_string()), errors: Vec::new() },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(self.status(), &self.problem())
    }
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let mut r = (status, serde_json::to_vec_pretty(value).unwrap_or_default()).into_response();
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// The bearer token a request presents.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim())
}

/// Who an edge request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The edge whose credential it presents ([`crate::credentials`]).
    Edge(String),
    /// An old shared edge token (`--token-file`): it reads, and nothing it says of itself is taken.
    Shared,
}

/// The request presents an edge's credential (or an old shared token): it may read the table, the fleet and the
/// purge feed. What it says of itself ([`wire::Report`]: a Lease renewal, a membership, a purge acknowledgement)
/// is taken only for the name its credential is bound to: another edge's name is refused (403, counted in
/// `dime_control_identity_refusals_total{reason="another-edge"}`, logged with both names), a name that is not one
/// is refused (400), and a shared token's report is ignored (counted in `dime_control_shared_token_requests_total`).
/// A purge token is refused (403): it cannot read what edges read.
#[derive(Debug, Clone)]
pub struct EdgeToken {
    pub caller: Caller,
    /// The caller's report, checked: always of the edge the credential names.
    pub report: Option<wire::Report>,
}

impl FromRequestParts<Arc<Shared>> for EdgeToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let caller = caller(parts, shared)?;
        if caller == Caller::Shared {
            // Read-only: what an old edge says of itself is not read at all (its name may be an old-style one,
            // a host name with dots, and it must keep getting the table for this release).
            return Ok(EdgeToken { caller, report: None });
        }
        let api = &shared.metrics.api;
        let report = wire::Report::from_headers(&parts.headers).map_err(|why| {
            if let wire::BadReport::Name(_) = why {
                api.identity_refused(IdentityRefusal::BadName).inc();
            }
            ApiError::BadRequest(why.to_string())
        })?;
        let report = match (&caller, report) {
            (_, None) | (Caller::Shared, _) => None,
            (Caller::Edge(name), Some(report)) if report.name == *name => Some(report),
            (Caller::Edge(name), Some(report)) => {
                api.identity_refused(IdentityRefusal::AnotherEdge).inc();
                tracing::warn!(
                    credential = name,
                    claimed = report.name,
                    path = parts.uri.path(),
                    "refused: an edge's credential presented with another edge's name"
                );
                return Err(ApiError::Forbidden(format!(
                    "this credential is edge `{name}`'s; it cannot speak for `{}`",
                    report.name
                )));
            }
        };
        Ok(EdgeToken { caller, report })
    }
}

/// The caller a bearer token names.
fn caller(parts: &Parts, shared: &Shared) -> Result<Caller, ApiError> {
    use crate::credentials::Lookup;
    let Some(token) = bearer(parts) else {
        return Err(ApiError::Unauthorized("missing `Authorization: Bearer <edge credential>`".into()));
    };
    let lookup = shared.credentials.lookup(token);
    if let Lookup::Edge(name) = lookup {
        return Ok(Caller::Edge(name));
    }
    if dime_routes::token_accepted(&shared.shared_tokens, token) {
        shared.metrics.api.shared_token_requests.inc();
        return Ok(Caller::Shared);
    }
    if dime_routes::token_accepted(&shared.purge_tokens, token) {
        return Err(ApiError::Forbidden("a purge token cannot read what edges read: use an edge credential".into()));
    }
    if lookup == Lookup::NotLoaded {
        return Err(ApiError::Unavailable("the edge credentials are not read yet".into()));
    }
    shared.metrics.api.identity_refused(IdentityRefusal::UnknownToken).inc();
    Err(ApiError::Unauthorized("not an edge credential".into()))
}

/// The request presents a purge token: it may purge and read purges. Refused: purging off (no
/// `--purge-token-file`), no token, an edge token, a wrong one.
#[derive(Debug, Clone, Copy)]
pub struct PurgeToken;

impl FromRequestParts<Arc<Shared>> for PurgeToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        if shared.purge_tokens.is_empty() {
            return Err(ApiError::Forbidden("purging is off: start dime-control with --purge-token-file".into()));
        }
        let Some(token) = bearer(parts) else {
            return Err(ApiError::Unauthorized("missing `Authorization: Bearer <purge token>`".into()));
        };
        if dime_routes::token_accepted(&shared.purge_tokens, token) {
            return Ok(PurgeToken);
        }
        let edges = matches!(shared.credentials.lookup(token), crate::credentials::Lookup::Edge(_));
        if edges || dime_routes::token_accepted(&shared.shared_tokens, token) {
            return Err(ApiError::Forbidden("an edge token cannot purge: use a token of --purge-token-file".into()));
        }
        Err(ApiError::Unauthorized("wrong purge token".into()))
    }
}

/// The query string read into a [`wire`] type; one that does not read is a 400 naming what is wrong.
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|e| ApiError::BadRequest(format!("the query `{query}`: {e}")))
    }
}
