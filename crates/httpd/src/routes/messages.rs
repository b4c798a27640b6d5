//! Lists, searches, and changes to many messages at once (Mailpit's
//! `/api/v1/messages` and `/api/v1/search`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::events::{EventMessage, MailEvent};
use serde::Deserialize;
use store::{ArrivalScope, ArrivedMessage, FlagChange};

use super::{ok, parse_id};
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params};
use crate::query::{is_read, parse_zone, Query};
use crate::scan;
use crate::view::{MessageSummary, MessagesSummary};
use crate::AppState;

/// Mailpit's default page size.
const DEFAULT_LIMIT: u64 = 50;

/// `start` and `limit` of a list or search, checked.
pub(crate) fn page(params: &Params, state: &AppState) -> ApiResult<(u64, usize)> {
    let start = params.number("start", 0)?;
    let max = state.ctx.shared.config.http.max_page_size;
    let limit = match params.number("limit", DEFAULT_LIMIT)? {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    if limit > max as u64 {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is more than the largest page, {max}"
        )));
    }
    Ok((start, limit as usize))
}

/// The query of a search parameter, parsed in the request's `tz`.
pub(crate) fn parse_query(text: &str, params: &Params) -> ApiResult<Query> {
    let zone = parse_zone(params.get("tz")).map_err(ApiError::bad_request)?;
    Query::parse(text, &zone).map_err(ApiError::bad_request)
}

/// `GET /api/v1/messages`: newest first, `start`/`limit` (or `before=ID`).
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<MessagesSummary>> {
    let (start, limit) = page(&params, &state)?;
    let scope = caller.scope();
    let store = &state.ctx.shared.store;
    let before = match params.get("before").filter(|b| !b.is_empty()) {
        Some(b) => Some(parse_id(b)?),
        None => None,
    };
    // A page among the newest is read as it is (a page and the counts, in
    // one snapshot), which touches only its own summaries; a page deeper
    // down is cut from the scope's list as the store keeps it, or paged
    // from the store past that list's end.
    let (total, unread, messages) = match usize::try_from(start) {
        Ok(skip) if skip.saturating_add(limit) <= DIRECT_PAGE => {
            let page = store
                .arrival_page(scope.clone(), before, skip, limit)
                .await?;
            (page.total, page.unseen, page.messages)
        }
        _ => {
            let list = store
                .arrival_list(
                    scope.clone(),
                    state.ctx.shared.config.http.max_search_scan.max(1),
                )
                .await?;
            (
                list.total,
                list.unseen,
                deep_page(store, &scope, &list, before, start, limit).await?,
            )
        }
    };
    Ok(Json(MessagesSummary {
        total,
        unread,
        count: messages.len(),
        messages_count: total,
        messages_unread: unread,
        start,
        tags: Vec::new(),
        messages: messages.iter().map(MessageSummary::of).collect(),
    }))
}

/// Pages that end within the newest this many messages are read
/// directly ([`store::Store::arrival_page`]).
pub(crate) const DIRECT_PAGE: usize = 1_000;

/// The page `start`/`limit` (below `before`) cut from `list`, or paged from
/// the store where the list ends first.
pub(crate) async fn deep_page(
    store: &store::Store,
    scope: &store::ArrivalScope,
    list: &store::ArrivalList,
    before: Option<u64>,
    start: u64,
    limit: usize,
) -> ApiResult<Vec<ArrivedMessage>> {
    let first = before.map_or(0, |b| list.messages.partition_point(|m| m.arrival >= b));
    let first = usize::try_from(start)
        .ok()
        .and_then(|start| first.checked_add(start));
    Ok(match first {
        Some(first) if list.complete() || first.saturating_add(limit) <= list.messages.len() => {
            list.messages
                .iter()
                .skip(first)
                .take(limit)
                .cloned()
                .collect()
        }
        _ => {
            // Skip `start` messages a page at a time: the store pages by
            // cursor (a cursor of 0 lists nothing: no arrival is below it).
            let mut cursor = before;
            let mut skip = start;
            while skip > 0 {
                let step = skip.min(1000) as usize;
                let skipped = store.arrivals_newest(scope.clone(), cursor, step).await?;
                cursor = Some(skipped.last().map_or(0, |m| m.arrival));
                if skipped.len() < step {
                    cursor = Some(0);
                    break;
                }
                skip -= step as u64;
            }
            store.arrivals_newest(scope.clone(), cursor, limit).await?
        }
    })
}

/// Set to `true` on a search answer that stopped at `[http]
/// max_search_scan` messages before the oldest.
pub const TRUNCATED_HEADER: &str = "x-postern-search-truncated";

/// `GET /api/v1/search?query=…`: what the query matches, newest first.
pub async fn search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let text = params.get("query").unwrap_or("").trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("query is required"));
    }
    let query = parse_query(text, &params)?;
    let (start, limit) = page(&params, &state)?;
    let scope = caller.scope();
    let found = scan::search(
        &state.ctx.shared.store,
        &state.bodies,
        &scope,
        &query,
        state.ctx.shared.config.http.max_search_scan,
    )
    .await?;
    let (total, unread) = (found.total, found.unseen);
    let matched_unread = found.matches.iter().filter(|m| !is_read(m)).count() as u64;
    let messages: Vec<MessageSummary> = found
        .matches
        .iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(limit)
        .map(MessageSummary::of)
        .collect();
    let mut response = Json(MessagesSummary {
        total,
        unread,
        count: messages.len(),
        messages_count: found.matches.len() as u64,
        messages_unread: matched_unread,
        start,
        tags: Vec::new(),
        messages,
    })
    .into_response();
    if !found.complete {
        response.headers_mut().insert(
            TRUNCATED_HEADER,
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

pub(crate) fn event_messages<'a>(
    messages: impl IntoIterator<Item = &'a ArrivedMessage>,
) -> Vec<EventMessage> {
    messages
        .into_iter()
        .map(|m| EventMessage {
            arrival: m.arrival,
            account: m.account.0,
            address: m.address.clone(),
        })
        .collect()
}

/// The messages in scope that these IDs name (unknown ones left out).
async fn by_ids(
    state: &AppState,
    scope: &ArrivalScope,
    ids: &[u64],
) -> ApiResult<Vec<ArrivedMessage>> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        // The first arrival after id - 1 is id itself if it is in scope.
        let found = state
            .ctx
            .shared
            .store
            .arrivals_after(scope.clone(), id.saturating_sub(1), 1)
            .await?;
        if let Some(m) = found.into_iter().next().filter(|m| m.arrival == id) {
            out.push(m);
        }
    }
    Ok(out)
}

fn parse_ids(ids: &[String]) -> ApiResult<Vec<u64>> {
    ids.iter().map(|id| parse_id(id)).collect()
}

/// Sets or clears `\Seen` on these messages, telling the event bus of
/// those that changed.
pub(crate) async fn mark(
    state: &AppState,
    scope: &ArrivalScope,
    messages: &[ArrivedMessage],
    read: bool,
) -> ApiResult<()> {
    let changing: Vec<&ArrivedMessage> = messages.iter().filter(|m| is_read(m) != read).collect();
    if changing.is_empty() {
        return Ok(());
    }
    let arrivals: Vec<u64> = changing.iter().map(|m| m.arrival).collect();
    let change = if read {
        FlagChange::Add
    } else {
        FlagChange::Remove
    };
    state
        .ctx
        .shared
        .store
        .set_arrival_flags(scope.clone(), &arrivals, change, &["\\Seen".to_owned()])
        .await?;
    state.ctx.events.publish(MailEvent::Read {
        read,
        messages: event_messages(changing),
    });
    Ok(())
}

/// Deletes these messages, telling the event bus.
pub(crate) async fn remove(
    state: &AppState,
    scope: &ArrivalScope,
    messages: &[ArrivedMessage],
) -> ApiResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let arrivals: Vec<u64> = messages.iter().map(|m| m.arrival).collect();
    let gone = state
        .ctx
        .shared
        .store
        .delete_arrivals(scope.clone(), &arrivals)
        .await?;
    state.deleted.fetch_add(gone as u64, Ordering::Relaxed);
    state.ctx.events.publish(MailEvent::Deleted {
        messages: event_messages(messages),
    });
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReadRequest {
    #[serde(rename = "IDs")]
    ids: Vec<String>,
    #[serde(rename = "Read")]
    read: bool,
    #[serde(rename = "Search")]
    search: String,
}

/// `PUT /api/v1/messages`: `Read` for `IDs`, else for what `Search`
/// matches, else for every message.
pub async fn set_read(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    JsonBody(body): JsonBody<ReadRequest>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    let scope = caller.scope();
    if !body.ids.is_empty() {
        let ids = parse_ids(&body.ids)?;
        let messages = by_ids(&state, &scope, &ids).await?;
        mark(&state, &scope, &messages, body.read).await?;
    } else if !body.search.trim().is_empty() {
        let query = parse_query(&body.search, &params)?;
        let found = scan::search(
            &state.ctx.shared.store,
            &state.bodies,
            &scope,
            &query,
            state.ctx.shared.config.http.max_search_scan,
        )
        .await?;
        for chunk in found.matches.chunks(500) {
            mark(&state, &scope, chunk, body.read).await?;
        }
    } else {
        let read = body.read;
        scan::every(&state.ctx.shared.store, &scope, |page| {
            let state = &state;
            let scope = &scope;
            async move { mark(state, scope, &page, read).await }
        })
        .await?;
    }
    Ok(ok())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteRequest {
    #[serde(rename = "IDs")]
    ids: Vec<String>,
}

/// `DELETE /api/v1/messages`: `IDs`, or every message without them.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<DeleteRequest>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    let scope = caller.scope();
    if body.ids.is_empty() {
        scan::every(&state.ctx.shared.store, &scope, |page| {
            let state = &state;
            let scope = &scope;
            async move { remove(state, scope, &page).await }
        })
        .await?;
    } else {
        let ids = parse_ids(&body.ids)?;
        let messages = by_ids(&state, &scope, &ids).await?;
        remove(&state, &scope, &messages).await?;
    }
    Ok(ok())
}

/// `DELETE /api/v1/search?query=…`: deletes what the query matches.
pub async fn delete_search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let text = params.get("query").unwrap_or("").trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("query is required"));
    }
    let query = parse_query(text, &params)?;
    let scope = caller.scope();
    let found = scan::search(
        &state.ctx.shared.store,
        &state.bodies,
        &scope,
        &query,
        state.ctx.shared.config.http.max_search_scan,
    )
    .await?;
    for chunk in found.matches.chunks(500) {
        remove(&state, &scope, chunk).await?;
    }
    Ok(ok().into_response())
}
