//! # httpd — Postern's HTTP API and web page
//!
//! httpd lets tests, scripts and a web page see the mail in the
//! store: a Mailpit-compatible subset of Mailpit's `/api/v1`, so the
//! Mailpit clients people already have work unchanged, and what Mailpit
//! lacks: a server-side wait for "the message that matches", an event
//! stream, sandboxes, envelopes and SMTP transcripts. It runs inside
//! `postern up` beside the other daemons on the same store, or alone as
//! the `httpd` binary on a data dir the others share. It never writes
//! SQL and never decides SMTP policy: it reads and changes mail through
//! the store's API, and hands released mail to the queue.
//!
//! ## Listeners (`[http]`)
//!
//! `listen` (default `127.0.0.1:8025`; `[]` disables), plain HTTP/1.1, or
//! HTTPS with the `[tls]` certificate when `tls = true`; `https_listen`
//! adds HTTPS listeners. The `[limits]` connection caps apply as on every
//! listener. A client gets `request_timeout_secs` to send a request's
//! header and again its body.
//!
//! ## Access
//!
//! See [`access`]: the admin token (`Authorization: Bearer`, `[http]
//! token`) sees everything; a sandbox's token sees its domain; an account
//! with HTTP Basic (address and password) sees its own mail; in capture
//! mode on a loopback listener no credentials are needed. Otherwise `401`
//! with `WWW-Authenticate: Basic …` and `Bearer …` (without them to a
//! script's request, so no browser login box covers the page). `/livez`
//! and `/readyz` need no credentials.
//!
//! The web page logs in once and gets a session cookie instead
//! ([`web_session`]): every `POST`, `PUT` and `DELETE` made with it must
//! carry the session's CSRF token as `X-CSRF-Token`, and a change a
//! browser sends from another site's page is refused (`403`).
//!
//! ## The web page
//!
//! `GET /` and its files under `/ui/` (`crates/httpd/web`, embedded in
//! the binary): the live fixture view in capture mode, webmail for an
//! account that logged in. `routes::page` gives its Content-Security-Policy,
//! `routes::frame` how message HTML is kept from running script or
//! loading remote images.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/v1/login` `{"username", "password"}` or `{"token"}` | the session (below) and `Set-Cookie: postern_session=…` (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS); `401` for a wrong login (behind the shared login throttle), `403` for a password in clear where `[auth]` refuses it or a login from another site |
//! | `POST /api/v1/logout` | ends the session; `ok` |
//! | `GET /api/v1/session` | `{"identity": "open"\|"admin"\|"sandbox"\|"account"\|null, "address", "domain", "capture", "csrf_token", "can_send", "webmail"}` |
//! | `GET /api/v1/message/{ID}/html[?remote=1]` | the message's HTML as a document for a sandboxed frame, under its own policy; remote images only with `remote=1` |
//! | `GET /api/v1/mailboxes` | an account's folders: `{"mailboxes": [{name, special_use, messages, unread, subscribed, uid_validity, uid_next, highest_modseq}]}` |
//! | `GET /api/v1/mailboxes/{name}/messages?start&limit&query&tz` | a page of one folder, as `/api/v1/messages` (or `/api/v1/search` with `query`) answers |
//! | `PUT /api/v1/message/{ID}/flags` `{"Add": [..], "Remove": [..]}` | IMAP flags and keywords; `ok` |
//! | `POST /api/v1/message/{ID}/move` `{"Mailbox": "Trash"}` | `{"ID": "…"}`, the moved copy's new ID |
//! | `POST /api/v1/send` (Mailpit's `SendRequest`) | `{"ID": "…"}`: captured in capture mode; otherwise an account's, queued under the submission policy with a copy in Sent |
//!
//! Folders, flags and moves go through the store calls IMAP uses, so an
//! IMAP client sees the page's changes at once, and the page sees IMAP's
//! through the `mailboxes` event.
//!
//! ## Messages
//!
//! A message's `ID` is its arrival number in decimal: every copy in every
//! mailbox has one, it only grows and is never given again. A message
//! sent to three recipients is three copies with three IDs.
//!
//! Mailpit-compatible (field names and shapes as Mailpit's swagger):
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/v1/messages?start=0&limit=50` | newest first: `{total, unread, count, messages_count, messages_unread, start, tags, messages: [MessageSummary]}`; also `before=ID` to page by cursor |
//! | `GET /api/v1/search?query=…&start&limit&tz` | the same, for messages the query matches |
//! | `DELETE /api/v1/search?query=…` | deletes what the query matches; `ok` |
//! | `PUT /api/v1/messages` `{"IDs": [..], "Read": true}` | read/unread by IDs, by `"Search"`, or all; `ok` |
//! | `DELETE /api/v1/messages` `{"IDs": [..]}` | by IDs, or all without IDs (or without a body); `ok` |
//! | `GET /api/v1/message/{ID}` | `Message` (Text, HTML, Attachments, Inline, …); `latest` for the newest; marks it read |
//! | `GET /api/v1/message/{ID}/headers` | `{"Name": ["value", …]}`, names as Go writes them (`Message-Id`), sorted |
//! | `GET /api/v1/message/{ID}/raw` | the stored bytes, `text/plain` |
//! | `GET /api/v1/message/{ID}/part/{PartID}` | one part, decoded, with its content type |
//! | `POST /api/v1/message/{ID}/release` `{"To": [..]}` | queued for those recipients; the queue manager delivers or relays it; `ok` |
//! | `GET /api/v1/info` | `{Version, Database, DatabaseSize, Messages, Unread, Tags, RuntimeStats}` |
//! | `GET /livez`, `GET /readyz` | `ok`; `/readyz` is `503` until the store answers a read |
//!
//! Search syntax: see [`query`] (`to: from: cc: bcc: reply-to:
//! addressed: subject: message-id: tag: is:read is:unread is:tagged
//! has:attachment after: before:`, bare words, quoted phrases, `-`/`!`).
//! A search looks at no more than `[http] max_search_scan` messages,
//! newest first. `Tags` are a message's IMAP keywords; the top-level
//! `tags` list is not collected (always empty). Part IDs are IMAP section
//! numbers (`1`, `1.2`). `Username` (the SMTP AUTH user) is in the
//! message view, not in lists.
//!
//! Postern's own:
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/v1/cursor` | `{"cursor": N}`: the last arrival number now |
//! | `GET /api/v1/wait?query=…&after=N&timeout=30` | the first message after cursor `N` (oldest first) that the query matches: `{"cursor": ID, "message": Message}`; `408 {"Error", "cursor"}` at the timeout |
//! | `GET /api/v1/events?after=N` | Server-Sent Events (below) |
//! | `POST /api/v1/sandboxes` | `201 {"domain", "token"}` (admin or open access) |
//! | `GET /api/v1/sandboxes` | `{"sandboxes": [{"domain", "created_at"}]}` (admin or open access) |
//! | `DELETE /api/v1/sandboxes/{domain}` | purges its mail; with its own token or the admin token; `ok` |
//! | `GET /api/v1/message/{ID}/envelope` | `{id, session, mail_from, mail_params, recipients: [{address, params}], helo, client, tls, auth_user, received_at, warnings}` |
//! | `GET /api/v1/sessions?before=ID&limit=N` | `{"sessions": [{id, client, role, started_at, ended_at, refusals}]}`, newest first |
//! | `GET /api/v1/sessions/{id}` | the session with `transcript` and `envelopes` |
//!
//! The wait is race-free: it looks at what arrived after the cursor, then
//! sleeps on the store's change counter and looks again from where it
//! left off, so a message committed between the client's last look and
//! the wait is found. Without `after`, the cursor is the last arrival when
//! the request came in; take one from `/api/v1/cursor` (or a previous
//! answer) before making the app send, to be sure. `timeout` is in
//! seconds (default 30, fractions allowed, at most `max_wait_secs`).
//!
//! ## Events (`GET /api/v1/events`)
//!
//! `text/event-stream`, one JSON object per event, names stable:
//!
//! - `new`: a message arrived (read from the store, so mail another
//!   process stored counts); `id:` is its arrival number, data the
//!   `MessageSummary`. A client that reconnects with `Last-Event-ID` (or
//!   `?after=N`) gets every message after that one first.
//! - `read`, `unread`: `{"IDs": ["12", …]}`, changes made through this
//!   API.
//! - `deleted`: `{"IDs": [..]}`, deletions made through this API.
//! - `rejected`: smtpd refused a command: `{"stage", "code",
//!   "enhanced_code", "text", "client", "sender", "recipient", "session",
//!   "at"}`, `stage` one of `connect helo auth mail rcpt data`
//!   ([`common::events::Rejection`]); a sandbox or account sees those
//!   whose recipient is theirs.
//! - `lagged`: `{"missed": N}`, the client fell behind the in-process
//!   event buffer and missed N `read`/`unread`/`deleted`/`rejected`
//!   events (never `new` ones).
//! - `mailboxes`: `{"mailboxes": [..]}` as `GET /api/v1/mailboxes`
//!   answers, for an account: once at the start, then whenever a folder's
//!   counts or state change (by IMAP, POP3, delivery or this API).
//!
//! A comment line every 15 seconds keeps proxies from closing the stream.
//! At most `max_event_clients` streams at once (then `429`).
//!
//! ## Errors
//!
//! Every failure is a 4xx or 5xx with `{"Error": "…"}` (Mailpit's JSON
//! error shape): `400` for malformed queries, IDs, parameters or bodies,
//! `401`/`403` for access, `404` for unknown messages, parts and routes,
//! `405` for a wrong method, `408` for slow bodies and wait timeouts,
//! `413` for bodies over `max_body_size`, `429` past `max_event_clients`,
//! `503` while shutting down. A store failure is answered as
//! `store::StoreError::is_temporary` tabulates for every daemon: `507`
//! when the store is full, `503` with `Retry-After` when trying again may
//! work, `500` otherwise. Mailpit answers its successful changes
//! with a plain-text `ok`; so does httpd.
//!
//! ## Failure rules
//!
//! `GET/PUT/DELETE /api/v1/rules`, `GET/DELETE /api/v1/rules/log` and
//! Mailpit's `GET/PUT /api/v1/chaos` set and show the failure rules
//! ([`common::rules`]) that the smtpd of the same process applies
//! (`routes::rules` says who may set which). Without an smtpd in the
//! process (the standalone `httpd`), they answer `501`.
#![forbid(unsafe_code)]

pub mod access;
mod error;
mod extract;
pub mod query;
mod routes;
mod scan;
mod view;
pub mod web_session;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use common::daemon::Shared;
use common::events::EventBus;
use common::listener::{Connection, ListenerRole, Refusal, RoleInfo, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::ApiError;

/// What every request of this daemon shares.
pub struct HttpContext {
    /// Its `tls` `None` disables the HTTPS listeners.
    pub shared: Shared,
    /// The process's event bus: what the event stream passes on, and
    /// where httpd tells of the changes made through it.
    pub events: EventBus,
    /// The failure rules smtpd applies; `/api/v1/rules` and
    /// `/api/v1/chaos` set them. Rules live in memory: only an smtpd in
    /// the same process (`postern up`) applies them, so the standalone
    /// `httpd` has none and answers those endpoints with 501.
    pub rules: Option<common::rules::Rules>,
    /// What really listens where (role name such as `imaps`, address),
    /// once the process has started its daemons: what autoconfig tells
    /// mail clients. Unset: the configured listeners.
    pub listeners: std::sync::OnceLock<Vec<(String, std::net::SocketAddr)>>,
}

impl HttpContext {
    pub fn new(
        shared: Shared,
        events: EventBus,
        rules: Option<common::rules::Rules>,
    ) -> HttpContext {
        HttpContext {
            shared,
            events,
            rules,
            listeners: std::sync::OnceLock::new(),
        }
    }
}

/// The handlers' state.
pub(crate) struct AppState {
    pub ctx: Arc<HttpContext>,
    /// Cancelled on shutdown: waits and event streams end.
    pub shutdown: CancellationToken,
    /// One permit per open event stream.
    pub event_clients: Arc<Semaphore>,
    pub logins: access::LoginCache,
    /// The web page's logins (session cookies).
    pub sessions: web_session::WebSessions,
    pub started: Instant,
    /// Messages deleted through the API since start (`/api/v1/info`).
    pub deleted: AtomicU64,
    /// Filters of body text, so searches skip bodies that lack a word.
    pub bodies: scan::BodyIndex,
}

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Http,
    Https,
}

impl ListenerRole for Role {
    fn info(self) -> RoleInfo {
        match self {
            Role::Http => RoleInfo::plain("http", ""),
            Role::Https => RoleInfo::tls("https", "TLS"),
        }
    }
}

/// A listener httpd has bound.
pub type Bound = common::listener::Bound<Role>;

struct HttpService {
    router: Router,
    header_timeout: Duration,
    grace: Duration,
}

impl Service for HttpService {
    async fn serve(self: Arc<Self>, conn: Connection) {
        let info = access::ConnInfo {
            peer: conn.peer,
            local: conn.local,
            tls: conn.stream.is_tls(),
        };
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(info);
            let router = router.clone();
            async move {
                use tower::ServiceExt as _;
                router.oneshot(request.map(axum::body::Body::new)).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(64 * 1024);
        let connection = builder.serve_connection(TokioIo::new(conn.stream), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection: {e}");
                }
                return;
            }
            () = conn.shutdown.cancelled() => {}
        }
        // Finish the request in progress (waits and event streams end on
        // the same signal), then close.
        connection.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(self.grace, connection).await;
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        let text = match why {
            Refusal::ShuttingDown => "server shutting down",
            Refusal::TooManyConnections | Refusal::TooManyFromAddress => {
                "too many connections; try again later"
            }
        };
        let body = serde_json::json!({ "Error": text }).to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// The API's routes over its state, without listeners: for tests that
/// drive it in-process.
fn router(state: Arc<AppState>) -> Router {
    routes::router(state)
}

/// Binds every configured listener, starts them on `tracker`, and returns
/// what is listening where. Everything stops when `shutdown` is cancelled.
pub async fn start(
    ctx: Arc<HttpContext>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<Vec<Bound>> {
    let http = &ctx.shared.config.http;
    // With `tls`, the main port is HTTPS too (and not served without TLS).
    let main_role = if http.tls { Role::Https } else { Role::Http };
    let plan = [
        (main_role, &http.listen[..]),
        (Role::Https, &http.https_listen[..]),
    ];
    let state = Arc::new(AppState {
        event_clients: Arc::new(Semaphore::new(
            http.max_event_clients.min(Semaphore::MAX_PERMITS),
        )),
        shutdown: shutdown.clone(),
        logins: access::LoginCache::default(),
        sessions: web_session::WebSessions::new(
            Duration::from_secs(http.session_idle_secs.max(1)),
            http.max_sessions,
        ),
        started: Instant::now(),
        deleted: AtomicU64::new(0),
        bodies: scan::BodyIndex::with_budget(http.search_cache_mb.saturating_mul(1024 * 1024)),
        ctx: ctx.clone(),
    });
    let service = Arc::new(HttpService {
        router: router(state),
        header_timeout: Duration::from_secs(http.request_timeout_secs.max(1)),
        grace: Duration::from_secs(ctx.shared.config.limits.shutdown_grace_secs),
    });
    ctx.shared.listen(&plan, service, &shutdown, tracker).await
}
