//! Errors as the API answers them: a status and a JSON body
//! `{"Error": "…"}`, the shape Mailpit gives its JSON errors
//! (`JSONErrorMessage`), sometimes with more fields beside it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use store::StoreError;

/// The realm the `WWW-Authenticate` challenges name.
pub const REALM: &str = "Postern";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// More fields beside `Error` (the wait endpoint's `cursor`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            extra: Map::new(),
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Invalid(what) => ApiError::bad_request(format!("invalid {what}")),
            StoreError::AlreadyExists(what) => {
                ApiError::new(StatusCode::CONFLICT, format!("{what} already exists"))
            }
            e => {
                tracing::warn!("store: {e}");
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
