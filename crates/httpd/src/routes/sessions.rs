//! Recorded SMTP sessions: transcripts and the envelopes they gave.
//! Callers who see everything see every session; a sandbox or an account
//! sees the sessions that gave mail to one of its addresses (with the
//! whole transcript, and only its own recipients in the envelopes).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use store::{Envelope, SmtpSessionId};

use super::parse_id;
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Params};
use crate::view::{EnvelopeView, SessionSummary, SessionView};
use crate::AppState;

/// Sessions per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 50;

#[derive(Debug, Serialize)]
pub struct Sessions {
    sessions: Vec<SessionSummary>,
}

fn concerns(caller: &Caller, envelopes: &[Envelope]) -> bool {
    caller.sees_all()
        || envelopes
            .iter()
            .any(|e| e.recipients.iter().any(|r| caller.owns_address(&r.address)))
}

/// `GET /api/v1/sessions?before=ID&limit=N`: newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Sessions>> {
    let max = state.ctx.shared.config.http.max_page_size as u64;
    let limit = match params.number("limit", DEFAULT_LIMIT)? {
        0 => DEFAULT_LIMIT,
        n if n > max => {
            return Err(ApiError::bad_request(format!(
                "limit {n} is more than the largest page, {max}"
            )))
        }
        n => n,
    };
    let before = match params.get("before").filter(|b| !b.is_empty()) {
        Some(b) => Some(SmtpSessionId(
            i64::try_from(parse_id(b)?).unwrap_or(i64::MAX),
        )),
        None => None,
    };
    let store = &state.ctx.shared.store;
    let records = store.smtp_sessions(before, limit as usize).await?;
    let mut sessions = Vec::with_capacity(records.len());
    for record in &records {
        if !caller.sees_all() && !concerns(&caller, &store.session_envelopes(record.id).await?) {
            continue;
        }
        sessions.push(SessionSummary::of(record));
    }
    Ok(Json(Sessions { sessions }))
}

/// `GET /api/v1/sessions/{id}`: the session, transcript and envelopes.
pub async fn view(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SessionView>> {
    let not_found = || ApiError::not_found(format!("session {id} not found"));
    let number = i64::try_from(parse_id(&id)?).map_err(|_| not_found())?;
    let store = &state.ctx.shared.store;
    let record = store
        .smtp_session(SmtpSessionId(number))
        .await?
        .ok_or_else(not_found)?;
    let envelopes = store.session_envelopes(record.id).await?;
    if !concerns(&caller, &envelopes) {
        return Err(not_found());
    }
    Ok(Json(SessionView {
        summary: SessionSummary::of(&record),
        transcript: record.transcript.clone(),
        envelopes: envelopes
            .iter()
            .map(|e| EnvelopeView::of(e, |a| caller.owns_address(a)))
            .collect(),
    }))
}
