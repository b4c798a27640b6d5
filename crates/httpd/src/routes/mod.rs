//! The routes, one module per family.

mod autoconfig;
mod events;
mod frame;
mod info;
mod login;
mod mailboxes;
mod message;
mod messages;
pub(crate) mod page;
mod rules;
mod sandboxes;
mod send;
mod sessions;
mod wait;

use std::sync::Arc;

use axum::http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
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
        .merge(rules::routes())
        .merge(webmail_routes());
    Router::new()
        .route("/", get(page::index))
        .route("/ui/{*file}", get(page::file))
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
        // What a browser makes of an API answer: never a page that runs
        // script (a message part served as text/html, an SVG), never
        // sniffed into another type, never framed, never a Referer. Page
        // responses set their own policy first.
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(API_CSP),
            ),
        )
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        )
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        )
        .layer(axum::middleware::from_fn(no_login_box_for_scripts))
        .with_state(state)
}

/// A `401` to a script's request (`fetch`, `EventSource`: `Sec-Fetch-Dest:
/// empty`) goes without `WWW-Authenticate`: the challenge would make the
/// browser pop its own Basic login box over the page, which has a login
/// form of its own. Navigations and other clients keep the challenge.
async fn no_login_box_for_scripts(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let script = request
        .headers()
        .get("sec-fetch-dest")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"empty"));
    let mut response = next.run(request).await;
    if script && response.status() == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .remove(axum::http::header::WWW_AUTHENTICATE);
    }
    response
}

/// The policy of every response that is not the page or a message frame.
pub(crate) const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// The web page's login and webmail routes, relative to `/api/v1`.
fn webmail_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", post(login::login))
        .route("/logout", post(login::logout))
        .route("/session", get(login::session))
        .route("/send", post(send::send))
        .route("/mailboxes", get(mailboxes::list))
        .route("/mailboxes/{name}/messages", get(mailboxes::messages))
        .route("/message/{id}/html", get(frame::html))
        .route("/message/{id}/flags", put(mailboxes::set_flags))
        .route("/message/{id}/move", post(mailboxes::move_message))
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
            .shared
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
