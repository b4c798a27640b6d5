//! Request parts read the API's way: every failure is an [`ApiError`]
//! with a JSON body, never axum's plain-text rejections.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// The query string's parameters (the last of a repeated name wins).
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A whole number parameter, `default` when absent or empty.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, ApiError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ApiError::bad_request(format!("{name} must be a whole number, not {v:?}"))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Params, ApiError> {
        let pairs: axum::extract::Query<Vec<(String, String)>> =
            axum::extract::Query::try_from_uri(&parts.uri)
                .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        Ok(Params(pairs.0.into_iter().collect()))
    }
}

/// A JSON request body, `None` when the body is empty (Mailpit clients
/// send `DELETE /api/v1/messages` without one to mean "all"). Larger than
/// `[http] max_body_size`: 413; slower than `request_timeout_secs`: 408.
pub struct JsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<JsonBody<T>, ApiError> {
        json_body(req, state, state.ctx.shared.config.http.max_body_size).await
    }
}

/// A JSON request body read as [`JsonBody`] reads one, with a limit of
/// the caller's (larger bodies: 413).
pub async fn json_body<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
    limit: usize,
) -> Result<JsonBody<T>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let timeout = Duration::from_secs(state.ctx.shared.config.http.request_timeout_secs);
    let mut stream = req.into_body().into_data_stream();
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let body = tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )
    })??;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(JsonBody(None));
    }
    serde_json::from_slice(&body)
        .map(|v| JsonBody(Some(v)))
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// Path parameters, with a JSON error when they cannot be read.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiPath<T>, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request(format!("malformed path: {e}")))
    }
}
