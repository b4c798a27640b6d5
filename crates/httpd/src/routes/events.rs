//! `GET /api/v1/events`: the event stream (Server-Sent Events). `new`
//! events come from the store (every process's mail); `read`, `unread`,
//! `deleted` and `rejected` from the in-process event bus; for an
//! account, `mailboxes` (its folders with their counts, when they change,
//! by IMAP, POP3, delivery or this API, and once at the start) from the
//! store too. The crate's documentation lists the events and their
//! payloads.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use common::events::{EventMessage, MailEvent};
use serde_json::json;
use store::ArrivalScope;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit};

use super::mailboxes::MailboxView;
use crate::access::{Caller, Identity};
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::view::MessageSummary;
use crate::AppState;

/// New messages read from the store per look.
const NEW_BATCH: usize = 100;
/// How often a comment line keeps the stream open through proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Feed {
    state: Arc<AppState>,
    caller: Caller,
    scope: ArrivalScope,
    /// The last arrival sent as `new`.
    cursor: u64,
    /// Look in the store for new arrivals before waiting again.
    look: bool,
    /// An account's folders as last sent (`mailboxes` events), and
    /// whether to look at them again.
    folders: Option<Vec<MailboxView>>,
    look_folders: bool,
    changes: watch::Receiver<u64>,
    bus: broadcast::Receiver<Arc<MailEvent>>,
    pending: VecDeque<Event>,
    _permit: OwnedSemaphorePermit,
}

fn ids(messages: &[&EventMessage]) -> serde_json::Value {
    json!({ "IDs": messages.iter().map(|m| m.arrival.to_string()).collect::<Vec<_>>() })
}

impl Feed {
    /// Queues what the caller may see of one bus event.
    fn take(&mut self, event: &MailEvent) {
        let visible = |messages: &[EventMessage]| -> Vec<EventMessage> {
            messages
                .iter()
                .filter(|m| self.caller.sees_account(m.account, &m.address))
                .cloned()
                .collect()
        };
        let (name, data) = match event {
            MailEvent::Read { read, messages } => {
                let seen = visible(messages);
                if seen.is_empty() {
                    return;
                }
                let name = if *read { "read" } else { "unread" };
                (name, ids(&seen.iter().collect::<Vec<_>>()))
            }
            MailEvent::Deleted { messages } => {
                let seen = visible(messages);
                if seen.is_empty() {
                    return;
                }
                ("deleted", ids(&seen.iter().collect::<Vec<_>>()))
            }
            MailEvent::Rejected(rejection) => {
                let mine = self.caller.sees_all()
                    || rejection
                        .recipient
                        .as_deref()
                        .is_some_and(|r| self.caller.owns_address(r));
                if !mine {
                    return;
                }
                match serde_json::to_value(rejection) {
                    Ok(data) => ("rejected", data),
                    Err(_) => return,
                }
            }
        };
        self.pending
            .push_back(Event::default().event(name).data(data.to_string()));
    }

    /// Queues `new` events for what arrived after the cursor.
    async fn look_for_new(&mut self) {
        match self
            .state
            .ctx
            .shared
            .store
            .arrivals_after(self.scope.clone(), self.cursor, NEW_BATCH)
            .await
        {
            Ok(arrived) => {
                self.look = arrived.len() == NEW_BATCH;
                for m in arrived {
                    self.cursor = m.arrival;
                    let data = serde_json::to_string(&MessageSummary::of(&m)).unwrap_or_default();
                    self.pending.push_back(
                        Event::default()
                            .event("new")
                            .id(m.arrival.to_string())
                            .data(data),
                    );
                }
            }
            Err(e) => {
                tracing::warn!("event stream: reading new arrivals: {e}");
                self.look = false;
            }
        }
    }

    /// Queues a `mailboxes` event if an account's folders changed.
    async fn look_at_folders(&mut self) {
        self.look_folders = false;
        let Identity::Account(account, _) = &self.caller.identity else {
            return;
        };
        match self.state.ctx.shared.store.mailboxes(*account).await {
            Ok(boxes) => {
                let now: Vec<MailboxView> = boxes.iter().map(MailboxView::of).collect();
                if self.folders.as_ref() != Some(&now) {
                    let data = json!({ "mailboxes": &now }).to_string();
                    self.pending
                        .push_back(Event::default().event("mailboxes").data(data));
                    self.folders = Some(now);
                }
            }
            Err(e) => tracing::warn!("event stream: reading mailboxes: {e}"),
        }
    }

    /// The next event, or `None` when the stream ends (shutdown).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.look {
                self.look_for_new().await;
                continue;
            }
            if self.look_folders {
                self.look_at_folders().await;
                continue;
            }
            let shutdown = self.state.shutdown.clone();
            tokio::select! {
                () = shutdown.cancelled() => return None,
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    self.look = true;
                    self.look_folders = matches!(self.caller.identity, Identity::Account(..));
                }
                received = self.bus.recv() => match received {
                    Ok(event) => self.take(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.pending.push_back(
                            Event::default()
                                .event("lagged")
                                .data(json!({ "missed": missed }).to_string()),
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// `GET /api/v1/events[?after=N]` (or `Last-Event-ID: N`).
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let permit = state
        .event_clients
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "more than {} event streams at once",
                    state.ctx.shared.config.http.max_event_clients
                ),
            )
        })?;
    let given = params
        .get("after")
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|t| !t.trim().is_empty());
    // Subscribe first: nothing committed after the cursor is read is lost.
    let changes = state.ctx.shared.store.watch_changes();
    let bus = state.ctx.events.subscribe();
    let cursor = match given {
        Some(text) => text.trim().parse().map_err(|_| {
            ApiError::bad_request(format!("after must be an arrival number, not {text:?}"))
        })?,
        None => state.ctx.shared.store.last_arrival().await?,
    };
    let account = matches!(caller.identity, Identity::Account(..));
    let feed = Feed {
        scope: caller.scope(),
        folders: None,
        look_folders: account,
        caller,
        cursor,
        look: true,
        changes,
        bus,
        pending: VecDeque::new(),
        _permit: permit,
        state: state.clone(),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<Event, Infallible>(event), feed))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
