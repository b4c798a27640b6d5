//! Webmail: an account's folders, flags and moves (Postern's own).
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/v1/mailboxes` | `{"mailboxes": [{name, special_use, messages, unread, subscribed, uid_validity, uid_next, highest_modseq}]}`, INBOX first |
//! | `GET /api/v1/mailboxes/{name}/messages?start&limit&query&tz` | a page of one folder, newest first, as `/api/v1/messages` answers (or `/api/v1/search` with `query`), each message with its `Flags` and `Mailbox` |
//! | `PUT /api/v1/message/{ID}/flags` `{"Add": [..], "Remove": [..]}` | IMAP flags (`\Seen`, `\Flagged`, `\Answered`, `\Draft`, `\Deleted`) and keywords; `ok` |
//! | `POST /api/v1/message/{ID}/move` `{"Mailbox": "Trash"}` | `{"ID": "…"}`: the message's new ID (a copy in another mailbox is another arrival) |
//!
//! Folders are an account's: only an account's login (Basic or the
//! page's) has them (`403` for tokens and open access). Flags and moves
//! work for any caller that sees the message. Every change goes through
//! the store calls IMAP uses ([`store::Store::store_flags`],
//! [`store::Store::move_messages`]), so an IMAP client sees it at once
//! (in IDLE too), and the page sees IMAP's changes through the `mailboxes`
//! event.

#![allow(non_snake_case)]

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use common::events::MailEvent;
use serde::{Deserialize, Serialize};
use store::{AccountId, ArrivalScope, ArrivedMessage, FlagChange, MailboxInfo};

use super::messages::{deep_page, event_messages, page, parse_query, DIRECT_PAGE};
use super::{ok, resolve_id};
use crate::access::{Caller, Identity};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, JsonBody, Params};
use crate::query::is_read;
use crate::scan;
use crate::view::MessageSummary;
use crate::AppState;

/// One folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxView {
    pub name: String,
    /// RFC 6154: `\Sent`, `\Trash`, …
    pub special_use: Option<String>,
    pub messages: u32,
    pub unread: u32,
    pub subscribed: bool,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
}

impl MailboxView {
    pub fn of(m: &MailboxInfo) -> MailboxView {
        MailboxView {
            name: m.name.clone(),
            special_use: m.special_use.clone(),
            messages: m.messages,
            unread: m.unseen,
            subscribed: m.subscribed,
            uid_validity: m.uid_validity,
            uid_next: m.uid_next.0,
            highest_modseq: m.highest_modseq.0,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Mailboxes {
    pub mailboxes: Vec<MailboxView>,
}

/// A message of a folder: Mailpit's summary with its IMAP flags.
#[derive(Debug, Serialize)]
pub struct FolderMessage {
    #[serde(flatten)]
    summary: MessageSummary,
    Flags: Vec<String>,
    Mailbox: String,
}

/// A page of a folder, in `/api/v1/messages`' shape.
#[derive(Debug, Serialize)]
pub struct FolderPage {
    total: u64,
    unread: u64,
    count: usize,
    messages_count: u64,
    messages_unread: u64,
    start: u64,
    tags: Vec<String>,
    messages: Vec<FolderMessage>,
}

fn folder_message(m: &ArrivedMessage) -> FolderMessage {
    FolderMessage {
        summary: MessageSummary::of(m),
        Flags: m.flags.clone(),
        Mailbox: m.mailbox_name.clone(),
    }
}

/// The account a caller acts for, or 403.
fn account_of(caller: &Caller) -> ApiResult<AccountId> {
    match &caller.identity {
        Identity::Account(id, _) => Ok(*id),
        _ => Err(ApiError::forbidden(
            "folders belong to an account: log in with its address and password",
        )),
    }
}

/// The account's mailbox `name` (INBOX in any case), or 404.
async fn find_mailbox(state: &AppState, account: AccountId, name: &str) -> ApiResult<MailboxInfo> {
    let wanted = store::canonical_mailbox_name(name);
    state
        .ctx
        .shared
        .store
        .mailboxes(account)
        .await?
        .into_iter()
        .find(|m| m.name == wanted)
        .ok_or_else(|| ApiError::not_found(format!("mailbox {name:?} not found")))
}

/// `GET /api/v1/mailboxes`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Mailboxes>> {
    let account = account_of(&caller)?;
    let boxes = state.ctx.shared.store.mailboxes(account).await?;
    Ok(Json(Mailboxes {
        mailboxes: boxes.iter().map(MailboxView::of).collect(),
    }))
}

/// `GET /api/v1/mailboxes/{name}/messages`.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    params: Params,
) -> ApiResult<Json<FolderPage>> {
    let account = account_of(&caller)?;
    let mailbox = find_mailbox(&state, account, &name).await?;
    let (start, limit) = page(&params, &state)?;
    let scope = ArrivalScope::Mailbox(mailbox.id);
    let store = &state.ctx.shared.store;
    let max_scan = state.ctx.shared.config.http.max_search_scan.max(1);
    let text = params.get("query").unwrap_or("").trim();
    // As `GET /api/v1/messages` reads its pages: a page among the newest
    // directly, a deeper one from the folder's kept list.
    let (total, unread, messages, matched, matched_unread) = if text.is_empty() {
        let (total, unread, messages) = match usize::try_from(start) {
            Ok(skip) if skip.saturating_add(limit) <= DIRECT_PAGE => {
                let page = store.arrival_page(scope.clone(), None, skip, limit).await?;
                (page.total, page.unseen, page.messages)
            }
            _ => {
                let list = store.arrival_list(scope.clone(), max_scan).await?;
                let page = deep_page(store, &scope, &list, None, start, limit).await?;
                (list.total, list.unseen, page)
            }
        };
        (total, unread, messages, total, unread)
    } else {
        let query = parse_query(text, &params)?;
        let found = scan::search(store, &state.bodies, &scope, &query, max_scan).await?;
        let matched = found.matches.len() as u64;
        let matched_unread = found.matches.iter().filter(|m| !is_read(m)).count() as u64;
        let skip = usize::try_from(start).unwrap_or(usize::MAX);
        let page = found.matches.into_iter().skip(skip).take(limit).collect();
        (found.total, found.unseen, page, matched, matched_unread)
    };
    Ok(Json(FolderPage {
        total,
        unread,
        count: messages.len(),
        messages_count: matched,
        messages_unread: matched_unread,
        start,
        tags: Vec::new(),
        messages: messages.iter().map(folder_message).collect(),
    }))
}

/// The message `id` names in the caller's scope, or 404.
async fn find_message(state: &AppState, caller: &Caller, id: &str) -> ApiResult<ArrivedMessage> {
    let scope = caller.scope();
    let arrival = resolve_id(state, &scope, id).await?;
    state
        .ctx
        .shared
        .store
        .arrival(scope, arrival)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlagsRequest {
    Add: Vec<String>,
    Remove: Vec<String>,
}

/// `PUT /api/v1/message/{ID}/flags`.
pub async fn set_flags(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<FlagsRequest>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    if body.Add.is_empty() && body.Remove.is_empty() {
        return Err(ApiError::bad_request("Add or Remove: name a flag"));
    }
    let m = find_message(&state, &caller, &id).await?;
    let store = &state.ctx.shared.store;
    let was_read = is_read(&m);
    let mut now_read = was_read;
    for (change, flags) in [
        (FlagChange::Add, &body.Add),
        (FlagChange::Remove, &body.Remove),
    ] {
        if flags.is_empty() {
            continue;
        }
        let changed = store
            .store_flags(m.account, m.mailbox, &[m.uid], change, flags)
            .await?;
        if let Some((_, _, flags)) = changed.into_iter().next() {
            now_read = flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"));
        }
    }
    if now_read != was_read {
        state.ctx.events.publish(MailEvent::Read {
            read: now_read,
            messages: event_messages([&m]),
        });
    }
    Ok(ok())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    Mailbox: String,
}

#[derive(Debug, Serialize)]
pub struct Moved {
    ID: String,
}

/// `POST /api/v1/message/{ID}/move`.
pub async fn move_message(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<MoveRequest>,
) -> ApiResult<Json<Moved>> {
    let to = body
        .map(|b| b.Mailbox)
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("Mailbox: the folder to move to is required"))?;
    let m = find_message(&state, &caller, &id).await?;
    let target = find_mailbox(&state, m.account, &to).await?;
    if target.id == m.mailbox.id {
        return Err(ApiError::bad_request(format!(
            "message {id} is in {} already",
            target.name
        )));
    }
    let store = &state.ctx.shared.store;
    let (_, moved) = store
        .move_messages(m.account, m.mailbox, &[m.uid], &target.name)
        .await?;
    let new_uid = moved
        .first()
        .map(|(_, new)| *new)
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))?;
    state.ctx.events.publish(MailEvent::Deleted {
        messages: event_messages([&m]),
    });
    // The copy is among the newest of its mailbox.
    let scope = ArrivalScope::Mailbox(target.id);
    let mut before = None;
    for _ in 0..20 {
        let page = store.arrivals_newest(scope.clone(), before, 100).await?;
        if let Some(found) = page.iter().find(|c| c.uid == new_uid) {
            return Ok(Json(Moved {
                ID: found.arrival.to_string(),
            }));
        }
        match page.last() {
            Some(last) if page.len() == 100 => before = Some(last.arrival),
            _ => break,
        }
    }
    Err(ApiError::not_found(format!(
        "message {id} was moved to {} and is gone from there",
        target.name
    )))
}
