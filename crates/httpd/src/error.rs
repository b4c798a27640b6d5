//! Errors as the API answers them: a status and a JSON body
//! `{"Error": "…"}`, the shape Mailpit gives its JSON errors
//! (`JSONErrorMessage`), sometimes with more fields beside it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use store::StoreError;

/// The realm the `WWW-Authenticate` challenges name.
pub const REALM: &str = "Postern";

/// The `Retry-After` of a `503` for a temporary store failure (a locked or
/// busy database, an I/O error, the store shutting down): a few seconds,
/// as long as such a failure usually lasts.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// More fields beside `Error` (the wait endpoint's `cursor`).
    pub extra: Map<String, Value>,
    /// Seconds for the `Retry-After` header, if the client should retry.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.extra.insert(key.to_owned(), value.into());
        self
    }
}

/// A store failure: first the variants HTTP has a status for (`404`,
/// `400`, `409`), then by [`StoreError::is_full`] and
/// [`StoreError::is_temporary`] alone (the table of every daemon's
/// answers is on the latter): `507 Insufficient Storage` (RFC 4918) when
/// full, `503` with `Retry-After` when trying again may work, else `500`.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Invalid(what) => ApiError::bad_request(format!("invalid {what}")),
            StoreError::AlreadyExists(what) => {
                ApiError::new(StatusCode::CONFLICT, format!("{what} already exists"))
            }
            e if e.is_full() => {
                tracing::warn!("store: {e}");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the store is full; make space and try again",
                )
            }
            e if e.is_over_quota() => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the account's quota is exceeded",
            ),
            e if e.is_temporary() => {
                tracing::warn!("store: {e}");
                ApiError {
                    retry_after: Some(STORE_RETRY_AFTER_SECS),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the store could not answer; try again later",
                    )
                }
            }
            e => {
                tracing::error!("store: {e}");
                ApiError::internal("the store could not answer")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("Error".into(), Value::String(self.message));
        body.extend(self.extra);
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // Both ways in (RFC 7235 4.1: one header per challenge).
            let headers = response.headers_mut();
            for challenge in [
                format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
                format!("Bearer realm=\"{REALM}\""),
            ] {
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.append(header::WWW_AUTHENTICATE, value);
                }
            }
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: StoreError) -> Response {
        ApiError::from(e).into_response()
    }

    #[test]
    fn store_failures_follow_the_stores_classification() {
        let full = answer(StoreError::Full("disk".into()));
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert!(full.headers().get(header::RETRY_AFTER).is_none());

        for e in [
            StoreError::Closed,
            StoreError::Database("database is locked".into()),
            StoreError::Io(std::io::Error::other("EIO")),
        ] {
            let what = e.to_string();
            let r = answer(e);
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
            assert_eq!(
                r.headers().get(header::RETRY_AFTER).unwrap(),
                &STORE_RETRY_AFTER_SECS.to_string(),
                "{what}"
            );
        }

        for (e, status) in [
            (
                StoreError::NotFound("message 7".into()),
                StatusCode::NOT_FOUND,
            ),
            (
                StoreError::Invalid("address".into()),
                StatusCode::BAD_REQUEST,
            ),
            (
                StoreError::AlreadyExists("account a@localhost".into()),
                StatusCode::CONFLICT,
            ),
            (
                StoreError::SchemaTooNew {
                    found: 9,
                    supported: 1,
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ] {
            let r = answer(e);
            assert_eq!(r.status(), status);
            assert!(r.headers().get(header::RETRY_AFTER).is_none());
        }
    }
}
