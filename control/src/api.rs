//! What every handler of control's API shares: who may call it ([`EdgeToken`], [`PurgeToken`]: extractors, so
//! no handler reads a token itself), how its query is read ([`Query`]), and how it refuses ([`ApiError`]: one
//! type, answered as a [`wire::Problem`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use dime_routes::wire;
use http::request::Parts;
use http::StatusCode;

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

/// The request presents an edge token: it may read the table, the fleet and the purge feed. A purge token is
/// refused (403): it cannot read what edges read.
#[derive(Debug, Clone, Copy)]
pub struct EdgeToken;

impl FromRequestParts<Arc<Shared>> for EdgeToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let token = bearer(parts);
        if token.is_some_and(|t| dime_routes::token_accepted(&shared.tokens, t)) {
            return Ok(EdgeToken);
        }
        if token.is_some_and(|t| dime_routes::token_accepted(&shared.purge_tokens, t)) {
            return Err(ApiError::Forbidden("a purge token cannot read what edges read: use an edge token".into()));
        }
        Err(ApiError::Unauthorized("missing or wrong bearer token".into()))
    }
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
        if dime_routes::token_accepted(&shared.tokens, token) {
            return Err(ApiError::Forbidden("an edge token cannot purge: use a token of --purge-token-file".into()));
        }
        Err(ApiError::Unauthorized("wrong purge token".into()))
    }
}

/// The edge a poll comes from, by the [`wire::Report`] in its headers; absent for a client that names no edge.
#[derive(Debug, Clone)]
pub struct Reported(pub wire::Report);

impl OptionalFromRequestParts<Arc<Shared>> for Reported {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<Shared>) -> Result<Option<Self>, Self::Rejection> {
        Ok(wire::Report::from_headers(&parts.headers).map(Reported))
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
