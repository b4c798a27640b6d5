//! The routes, one module per family.

mod autoconfig;
mod events;
mod info;
mod message;
mod messages;
mod rules;
mod sandboxes;
mod sessions;
mod wait;

use std::sync::Arc;

use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use store::ArrivalScope;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/info", get(info::info))
        .route("/livez", get(info::livez))
        .route("/readyz", get(info::readyz))
        .route(
            "/messages",
            get(messages::list)
                .put(messages::set_read)
                .delete(messages::delete),
        )
        .route(
            "/search",
            get(messages::search).delete(messages::delete_search),
        )
        .route("/message/{id}", get(message::view))
        .route("/message/{id}/headers", get(message::headers))
        .route("/message/{id}/raw", get(message::raw))
        .route("/message/{id}/part/{part}", get(message::part))
        .route("/message/{id}/release", post(message::release))
        .route("/message/{id}/envelope", get(message::envelope))
        .route("/cursor", get(wait::cursor))
        .route("/wait", get(wait::wait))
        .route("/events", get(events::events))
        .route("/sandboxes", post(sandboxes::create).get(sandboxes::list))
        .route("/sandboxes/{domain}", delete(sandboxes::delete))
        .route("/sessions", get(sessions::list))
        .route("/sessions/{id}", get(sessions::view))
        .merge(rules::routes());
    Router::new()
        .route("/livez", get(info::livez))
        .route("/readyz", get(info::readyz))
        .nest("/api/v1", api)
        .merge(autoconfig::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed for this endpoint",
    )
}

/// A handler that panicked: a 500 with the usual JSON error (the
/// connection and the server go on).
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal("internal error").into_response()
}

/// Mailpit's answer to a change that worked.
pub(crate) fn ok() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "ok",
    )
        .into_response()
}

/// A message id from a path or a body: decimal digits, at most 19.
pub(crate) fn parse_id(text: &str) -> ApiResult<u64> {
    let text = text.trim();
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "invalid message ID {text:?}: IDs are decimal numbers"
        )));
    }
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid message ID {text:?}")))
}

/// The arrival number a path's `{id}` names: a number, or `latest` (the
/// newest message the caller may see).
pub(crate) async fn resolve_id(state: &AppState, scope: &ArrivalScope, id: &str) -> ApiResult<u64> {
    if id.eq_ignore_ascii_case("latest") {
        let newest = state
            .ctx
            .store
            .arrivals_newest(scope.clone(), None, 1)
            .await?;
        return newest
            .first()
            .map(|m| m.arrival)
            .ok_or_else(|| ApiError::not_found("no messages"));
    }
    parse_id(id)
}
