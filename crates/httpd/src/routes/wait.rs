//! The wait: "give me the first message after this cursor that matches",
//! answered by the server as soon as it is stored.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::message::message_view;
use super::messages::parse_query;
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::scan;
use crate::view::Message;
use crate::AppState;

/// The timeout when the request gives none, in seconds.
const DEFAULT_TIMEOUT_SECS: f64 = 30.0;

#[derive(Debug, Serialize)]
pub struct Cursor {
    cursor: u64,
}

/// `GET /api/v1/cursor`: the last arrival number now, to wait after.
pub async fn cursor(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> ApiResult<Json<Cursor>> {
    Ok(Json(Cursor {
        cursor: state.ctx.shared.store.last_arrival().await?,
    }))
}

#[derive(Debug, Serialize)]
pub struct Waited {
    /// The message's arrival number: the cursor for the next wait.
    cursor: u64,
    message: Message,
}

fn timeout(params: &Params, max_secs: u64) -> ApiResult<Duration> {
    let secs = match params.get("timeout").map(str::trim) {
        None | Some("") => DEFAULT_TIMEOUT_SECS.min(max_secs as f64),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                ApiError::bad_request(format!("timeout must be a number of seconds, not {text:?}"))
            })?,
    };
    if secs > max_secs as f64 {
        return Err(ApiError::bad_request(format!(
            "timeout {secs} is more than the longest wait, {max_secs} seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `GET /api/v1/wait?query=…&after=CURSOR&timeout=SECS`.
///
/// Race-free: the change counter is taken before the first look, so a
/// commit after any look wakes the next one, and every look goes on from
/// the last arrival it saw. A message stored before the request (but
/// after the cursor) is found by the first look.
pub async fn wait(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Waited>> {
    let query = parse_query(params.get("query").unwrap_or(""), &params)?;
    let timeout = timeout(&params, state.ctx.shared.config.http.max_wait_secs)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let store = &state.ctx.shared.store;
    let mut changes = store.watch_changes();
    changes.borrow_and_update();
    let mut cursor = match params.get("after").map(str::trim) {
        None | Some("") => store.last_arrival().await?,
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_request(format!("after must be an arrival number, not {text:?}"))
        })?,
    };
    let scope = caller.scope();
    loop {
        let (found, seen) = scan::first_after(store, &scope, &query, cursor).await?;
        cursor = seen;
        if let Some(m) = found {
            let arrival = m.arrival;
            let raw = store
                .arrival_raw(scope.clone(), arrival)
                .await?
                .unwrap_or_default();
            let message = message_view(&state, m, raw).await?;
            return Ok(Json(Waited {
                cursor: arrival,
                message,
            }));
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the store is shut down"));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("no matching message arrived within {} s", timeout.as_secs_f64()),
                )
                .with("cursor", cursor));
            }
            () = state.shutdown.cancelled() => {
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server shutting down")
                    .with("cursor", cursor));
            }
        }
    }
}
