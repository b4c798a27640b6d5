//! The web page's login (Postern's own; [`crate::web_session`] says why
//! a cookie and how it is kept safe):
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/v1/login` `{"username", "password"}` or `{"token"}` | `Set-Cookie: postern_session=…` and the session (below) |
//! | `POST /api/v1/logout` | forgets the session, clears the cookie; `ok` |
//! | `GET /api/v1/session` | who the caller is: `{"identity": "open"\|"admin"\|"sandbox"\|"account", "address", "domain", "capture", "csrf_token", "can_send", "webmail"}`; `{"identity": null, …}` without credentials where they are needed |
//!
//! A login checks an account's address and password (or an admin or
//! sandbox token) as Basic and Bearer do, behind the login throttle the
//! other protocols share; a password goes in clear only where
//! `[auth]` allows plaintext logins (TLS, or loopback by default). A
//! login posted from another site's page is refused, so no page can log
//! a browser in as someone else.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{HeaderValue, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::ok;
use crate::access::{self, Caller, ConnInfo, Identity};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::web_session::{clear_cookie, cookie, set_cookie, SESSION_COOKIE};
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginRequest {
    username: String,
    password: String,
    token: String,
}

/// Who the page is talking as.
#[derive(Debug, Serialize)]
pub struct SessionInfo {
    /// `open`, `admin`, `sandbox`, `account`, or `null` before a login.
    identity: Option<&'static str>,
    /// The account's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    /// The sandbox's domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    /// Capture mode is on.
    capture: bool,
    /// To send back as `X-CSRF-Token` on changes (cookie logins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    /// `POST /api/v1/send` is open to this caller.
    can_send: bool,
    /// The caller has folders (`/api/v1/mailboxes`): an account.
    webmail: bool,
}

impl SessionInfo {
    fn of(state: &AppState, identity: Option<&Identity>, csrf_token: Option<String>) -> Self {
        let capture = state.ctx.shared.config.capture.enabled;
        let (name, address, domain) = match identity {
            None => (None, None, None),
            Some(Identity::Open) => (Some("open"), None, None),
            Some(Identity::Admin) => (Some("admin"), None, None),
            Some(Identity::Sandbox(d)) => (Some("sandbox"), None, Some(d.clone())),
            Some(Identity::Account(_, a)) => (Some("account"), Some(a.clone()), None),
        };
        let account = matches!(identity, Some(Identity::Account(..)));
        SessionInfo {
            identity: name,
            address,
            domain,
            capture,
            csrf_token,
            can_send: identity.is_some() && (capture || account),
            webmail: account,
        }
    }
}

/// `POST /api/v1/login`.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Extension(info): Extension<ConnInfo>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    if access::cross_site(&headers) {
        return Err(ApiError::forbidden(
            "a login posted from another site's page is refused",
        ));
    }
    let body = body.unwrap_or_default();
    let ip = info.peer.ip();
    // Whether the throttle made this attempt wait (failures are counted).
    let mut delayed = false;
    let identity = if !body.token.is_empty() {
        let admin = state.ctx.shared.config.http.token.as_deref().unwrap_or("");
        if !admin.is_empty() && access::same_secret(&body.token, admin) {
            Some(Identity::Admin)
        } else {
            delayed = access::throttle(&state, Some(ip)).await;
            state
                .ctx
                .shared
                .store
                .sandbox_for_token(&body.token)
                .await?
                .map(Identity::Sandbox)
        }
    } else if !body.username.is_empty() {
        if !common::sasl::plaintext_allowed(&state.ctx.shared.config.auth, ip, info.tls) {
            return Err(ApiError::forbidden(
                "log in over HTTPS: a password in clear is refused on this connection",
            ));
        }
        delayed = access::throttle(&state, Some(ip)).await;
        state
            .ctx
            .shared
            .store
            .authenticate(&body.username, &body.password)
            .await?
            .map(|a| Identity::Account(a.id, a.address))
    } else {
        return Err(ApiError::bad_request(
            "username and password, or token, are required",
        ));
    };
    let Some(identity) = identity else {
        access::failed(&state, Some(ip)).await;
        return Err(ApiError::unauthorized("wrong address, password or token"));
    };
    let shared = &state.ctx.shared;
    shared.throttle.success(ip, &shared.store, delayed).await;
    let (id, session) = state
        .sessions
        .create(identity)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let info_body = SessionInfo::of(&state, Some(&session.identity), Some(session.csrf_token));
    let mut response = Json(info_body).into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(&id, info.tls)) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /api/v1/logout` (with the session's CSRF token, as every change).
pub async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(info): Extension<ConnInfo>,
    _caller: Caller,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.remove(id);
    }
    let mut response = ok();
    if let Ok(value) = HeaderValue::from_str(&clear_cookie(info.tls)) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// `GET /api/v1/session`.
pub async fn session(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
) -> ApiResult<Json<SessionInfo>> {
    let caller = match caller {
        Ok(caller) => caller,
        // No credentials at all: the page shows its login form. Wrong
        // ones stay an error.
        Err(e)
            if e.status == StatusCode::UNAUTHORIZED && !headers.contains_key("authorization") =>
        {
            return Ok(Json(SessionInfo::of(&state, None, None)))
        }
        Err(e) => return Err(e),
    };
    let csrf = cookie(&headers, SESSION_COOKIE)
        .filter(|_| !headers.contains_key("authorization"))
        .and_then(|id| state.sessions.get(id))
        .map(|s| s.csrf_token);
    Ok(Json(SessionInfo::of(&state, Some(&caller.identity), csrf)))
}
