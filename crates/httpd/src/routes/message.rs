//! One message: its view, headers, raw bytes, parts, envelope, and
//! release (Mailpit's `/api/v1/message/{ID}…`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use store::{ArrivalScope, ArrivedMessage, BodyType, NewQueuedMessage};

use super::messages::mark;
use super::{ok, resolve_id};
use crate::access::{Caller, Identity};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, JsonBody};
use crate::view::{self, EnvelopeView, Message};
use crate::AppState;

/// Raw messages larger than this are parsed on a blocking thread.
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// The message `id` names, with its raw bytes.
async fn load(
    state: &AppState,
    scope: &ArrivalScope,
    id: &str,
) -> ApiResult<(ArrivedMessage, Vec<u8>)> {
    let arrival = resolve_id(state, scope, id).await?;
    let store = &state.ctx.shared.store;
    let not_found = || ApiError::not_found(format!("message {id} not found"));
    let m = store
        .arrival(scope.clone(), arrival)
        .await?
        .ok_or_else(not_found)?;
    let raw = store
        .arrival_raw(scope.clone(), arrival)
        .await?
        .ok_or_else(not_found)?;
    Ok((m, raw))
}

/// The whole message view of `m` (parsed off the workers when large).
pub(crate) async fn message_view(
    state: &AppState,
    m: ArrivedMessage,
    raw: Vec<u8>,
) -> ApiResult<Message> {
    let username = match m.envelope {
        Some(id) => state
            .ctx
            .shared
            .store
            .envelope(id)
            .await?
            .and_then(|e| e.auth_user),
        None => None,
    };
    if raw.len() > INLINE_PARSE_LIMIT {
        tokio::task::spawn_blocking(move || view::message(&m, &raw, username))
            .await
            .map_err(|_| ApiError::internal("parsing the message failed"))
    } else {
        Ok(view::message(&m, &raw, username))
    }
}

/// `GET /api/v1/message/{ID}`: the message, marked read (as Mailpit does).
pub async fn view(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Message>> {
    let scope = caller.scope();
    let (m, raw) = load(&state, &scope, &id).await?;
    mark(&state, &scope, std::slice::from_ref(&m), true).await?;
    Ok(Json(message_view(&state, m, raw).await?))
}

/// `GET /api/v1/message/{ID}/headers`.
pub async fn headers(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<BTreeMap<String, Vec<String>>>> {
    let (m, raw) = load(&state, &caller.scope(), &id).await?;
    // The header section the store measured at delivery, as IMAP and POP3
    // see it: a body line that looks like a field is not a header.
    let header_len = usize::try_from(m.summary.header_len).map_or(raw.len(), |h| h.min(raw.len()));
    Ok(Json(view::headers(&raw[..header_len])))
}

/// `GET /api/v1/message/{ID}/raw`: the bytes as stored.
pub async fn raw(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let (_, raw) = load(&state, &caller.scope(), &id).await?;
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        raw,
    )
        .into_response())
}

/// `Content-Disposition` naming a file (RFC 6266; non-ASCII names as
/// RFC 8187 `filename*`).
fn disposition(name: &str) -> Option<HeaderValue> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ');
    let value = if plain {
        format!("inline; filename=\"{name}\"")
    } else {
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("inline; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).ok()
}

/// `GET /api/v1/message/{ID}/part/{PartID}`: one part, decoded.
pub async fn part(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath((id, part_id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, raw) = load(&state, &caller.scope(), &id).await?;
    let wanted = part_id.clone();
    let found = tokio::task::spawn_blocking(move || view::part(&raw, &wanted))
        .await
        .map_err(|_| ApiError::internal("parsing the message failed"))?;
    let (bytes, content_type, name) =
        found.ok_or_else(|| ApiError::not_found(format!("message {id} has no part {part_id}")))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    if let Some(value) = name.as_deref().and_then(disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `GET /api/v1/message/{ID}/envelope`: how the message arrived over SMTP.
/// A sandbox or account sees only its own recipients in it.
pub async fn envelope(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EnvelopeView>> {
    let scope = caller.scope();
    let arrival = resolve_id(&state, &scope, &id).await?;
    let store = &state.ctx.shared.store;
    let m = store
        .arrival(scope, arrival)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))?;
    let envelope_id = m
        .envelope
        .ok_or_else(|| ApiError::not_found(format!("message {id} has no envelope")))?;
    let envelope = store
        .envelope(envelope_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id} has no envelope")))?;
    Ok(Json(EnvelopeView::of(&envelope, |a| {
        caller.owns_address(a)
    })))
}

#[derive(Debug, Deserialize)]
pub struct ReleaseRequest {
    #[serde(rename = "To", default)]
    to: Vec<String>,
}

/// An address as `release` takes it: `local@domain`, nothing around it.
pub(crate) fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && address.len() <= 254
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"\\()[]".contains(c))
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// The stored bytes without the `Return-Path:` line that final delivery
/// put on top (RFC 5321 4.4: it belongs to the delivered copy, not to mail
/// sent on).
fn without_return_path(raw: &[u8]) -> &[u8] {
    let mut rest = raw;
    while rest.len() >= 12 && rest[..12].eq_ignore_ascii_case(b"Return-Path:") {
        let mut end = 0;
        loop {
            match rest[end..].iter().position(|&b| b == b'\n') {
                Some(n) => {
                    end += n + 1;
                    if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
                None => return raw,
            }
        }
        rest = &rest[end..];
    }
    rest
}

/// `POST /api/v1/message/{ID}/release` `{"To": [..]}`: queues the message
/// for those recipients; the queue manager delivers or relays it as it
/// does any queued mail.
pub async fn release(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<ReleaseRequest>,
) -> ApiResult<Response> {
    let to: Vec<String> = body
        .map(|b| b.to)
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.trim().to_owned())
        .collect();
    if to.is_empty() {
        return Err(ApiError::bad_request(
            "To: at least one recipient is needed",
        ));
    }
    let max = state.ctx.shared.config.smtp.max_recipients;
    if to.len() > max {
        return Err(ApiError::bad_request(format!(
            "To: at most {max} recipients"
        )));
    }
    if let Some(bad) = to.iter().find(|a| !valid_address(a)) {
        return Err(ApiError::bad_request(format!("invalid address {bad:?}")));
    }
    let (m, raw) = load(&state, &caller.scope(), &id).await?;
    let store = &state.ctx.shared.store;
    let envelope = match m.envelope {
        Some(e) => store.envelope(e).await?,
        None => None,
    };
    let sender = envelope
        .map(|e| e.mail_from)
        .or_else(|| m.summary.return_path.clone())
        .or_else(|| m.summary.from.iter().find_map(|a| a.address.clone()))
        .unwrap_or_default();
    let raw = without_return_path(&raw).to_vec();
    let body_type = if raw.iter().any(|b| !b.is_ascii()) {
        BodyType::EightBitMime
    } else {
        BodyType::SevenBit
    };
    let smtputf8 = !sender.is_ascii() || to.iter().any(|a| !a.is_ascii());
    let auth_user = match &caller.identity {
        Identity::Account(_, address) => Some(address.clone()),
        _ => None,
    };
    store
        .enqueue(NewQueuedMessage {
            raw,
            sender,
            recipients: to,
            auth_user,
            body_type,
            smtputf8,
            received_at: chrono::Utc::now().timestamp(),
        })
        .await?;
    Ok(ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_strips_only_the_delivered_return_path() {
        let raw = b"Return-Path: <a@x>\r\nReceived: by x\r\n\tfolded\r\nSubject: s\r\n\r\nbody";
        assert_eq!(
            without_return_path(raw),
            b"Received: by x\r\n\tfolded\r\nSubject: s\r\n\r\nbody"
        );
        let folded = b"return-path:\r\n <a@x>\r\nSubject: s\r\n\r\n";
        assert_eq!(without_return_path(folded), b"Subject: s\r\n\r\n");
        let none = b"Subject: s\r\nReturn-Path: <a@x>\r\n\r\n";
        assert_eq!(without_return_path(none), none);
    }

    #[test]
    fn release_addresses() {
        assert!(valid_address("user@example.org"));
        for bad in ["", "user", "@x", "u@", "u@x.", "a b@x", "<u@x>", "u@x,v@y"] {
            assert!(!valid_address(bad), "{bad}");
        }
    }

    #[test]
    fn file_names_in_dispositions() {
        assert_eq!(disposition("r.pdf").unwrap(), "inline; filename=\"r.pdf\"");
        assert_eq!(
            disposition("été.txt").unwrap(),
            "inline; filename*=UTF-8''%C3%A9t%C3%A9.txt"
        );
    }
}
