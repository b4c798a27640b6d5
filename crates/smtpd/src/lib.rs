//! # smtpd — Postern's SMTP daemon and queue manager
//!
//! smtpd receives mail over SMTP, queues it durably in the store and
//! delivers it. It runs inside `postern up` or alone as the `smtpd` binary
//! on a data dir that the other daemons may share.
//!
//! ## Listeners and roles (defaults, all on 127.0.0.1)
//!
//! | port | role | TLS | AUTH |
//! |---|---|---|---|
//! | 2525 | MX: mail for local recipients | STARTTLS offered | not offered |
//! | 2587 | submission (RFC 6409) | STARTTLS | required before MAIL |
//! | 2465 | submission over implicit TLS (RFC 8314) | always | required before MAIL |
//!
//! ## Standards
//!
//! RFC 5321 ESMTP with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
//! (RFC 6152), SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES (RFC 2034/3463),
//! DSN (RFC 3461, reports per RFC 3464), CHUNKING (BDAT, RFC 3030),
//! STARTTLS (RFC 3207), AUTH PLAIN and LOGIN (RFC 4954). The grammar is
//! smtp-proto's, but for the DSN parameters ([`dsn`]); line framing, the
//! DATA receiver and everything after parsing are ours.
//!
//! ## Security stance
//!
//! - Only authenticated clients (submission) and `[relay]
//!   trusted_networks` may relay; everyone else gets local recipients only
//!   and 554 5.7.1 for the rest, whatever address tricks they try
//!   ([`policy`]). An authenticated sender must use one of its own
//!   addresses (553 5.7.1).
//! - A message with more than `max_received_headers` trace lines is
//!   refused at the end of DATA (554 5.4.6): a mail loop.
//! - DATA ends only at `<CRLF>.<CRLF>`; a message with a bare CR or LF,
//!   through DATA or BDAT, is rejected whole (550 5.5.2), or with `[smtp]
//!   bare_newline = "normalize"` and in capture mode stored with its line
//!   ends made CRLF; either defeats SMTP smuggling ([`data`]).
//! - After STARTTLS, anything the client pipelined is discarded and the
//!   session starts over.
//! - Plaintext AUTH only where `[auth]` allows it (loopback by default);
//!   failed logins are throttled per IP and end the session after
//!   `max_failures_per_session`.
//! - Failure rules ([`common::rules`]) make the server refuse, wait or
//!   hang up on purpose, only where a test asked for it; with none set a
//!   session checks one atomic flag per stage.
//! - Every limit has a config key (`[smtp]`, `[limits]`): message size,
//!   recipients, line length, errors per session, timeouts, connections.
//!
//! ## Delivery
//!
//! The queue manager ([`queue`]) delivers local recipients into their
//! INBOX and relays the rest ([`queue::remote`] over [`relay`]: routing by
//! transport table, smarthost or MX, then an SMTP client with PIPELINING,
//! STARTTLS and AUTH). A hop without 8BITMIME gets a 7-bit copy
//! ([`downgrade`]); failures are retried with backoff ([`queue::retry`])
//! or bounced with an RFC 3464 report ([`bounce`]). A failure travels
//! from whoever found it to the queue and the report as one
//! [`status::SmtpError`] (status code, temporary or not, reason, the
//! server's reply), never as text parsed again.
//!
//! ## Durability
//!
//! The `250` after DATA or `BDAT … LAST` is sent only once the store has
//! committed and synced the message and its queue entry. A store failure
//! is answered as `store::StoreError::is_temporary` tabulates for every
//! daemon ([`reply::store_failure`]): `452 4.3.1` when full, `451 4.3.0`
//! when trying again may work, `554 5.3.0` otherwise.
//!
//! ## Diagnostics
//!
//! tracing, one span per session (listener and peer), one line per queued
//! message (`message queued`, with the queue id) and per delivery.
#![forbid(unsafe_code)]

pub mod bounce;
pub mod data;
pub mod downgrade;
pub mod dsn;
pub mod policy;
pub mod queue;
pub mod received;
pub mod relay;
pub mod reply;
mod session;
pub mod status;

use std::sync::Arc;

use common::daemon::Shared;
use common::listener::{self, Connection, ListenerRole, Refusal, RoleInfo, Service};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use queue::{QueueHandle, QueueManager};

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 2525: mail for local recipients, no AUTH.
    Mx,
    /// Port 2587: submission with STARTTLS, AUTH required.
    Submission,
    /// Port 2465: submission over implicit TLS, AUTH required.
    Submissions,
}

impl Role {
    pub fn is_submission(self) -> bool {
        matches!(self, Role::Submission | Role::Submissions)
    }
}

impl ListenerRole for Role {
    fn info(self) -> RoleInfo {
        match self {
            Role::Mx => RoleInfo::plain("smtp", ""),
            Role::Submission => RoleInfo::plain("submission", "STARTTLS, AUTH"),
            Role::Submissions => RoleInfo::tls("submissions", "implicit TLS, AUTH"),
        }
    }
}

/// What every session of this daemon shares.
pub struct SmtpContext {
    pub shared: Shared,
    pub queue: QueueHandle,
    /// The failure rules a test sets (through the HTTP API in `postern
    /// up`), checked at every stage of every session.
    pub rules: common::rules::Rules,
    /// Where refused commands are told (`rejected` events of the HTTP
    /// API's event stream).
    pub events: common::events::EventBus,
}

struct SmtpService {
    ctx: Arc<SmtpContext>,
    role: Role,
    /// `[relay] trusted_networks`, parsed once at start.
    trusted: Arc<policy::TrustedNetworks>,
}

impl Service for SmtpService {
    async fn serve(self: Arc<Self>, conn: Connection) {
        session::Session::new(
            self.ctx.clone(),
            self.role,
            conn.stream,
            conn.peer,
            self.trusted.contains(conn.peer.ip()),
            conn.shutdown,
        )
        .run()
        .await;
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        let reply = match why {
            Refusal::ShuttingDown => reply::shutting_down(),
            Refusal::TooManyConnections | Refusal::TooManyFromAddress => {
                reply::too_many_connections()
            }
        };
        let mut out = Vec::new();
        reply.write_to(&mut out);
        out
    }
}

/// A listener smtpd has bound.
pub type Bound = common::listener::Bound<Role>;

/// Binds every configured listener, starts them and the queue manager on
/// `tracker`, and returns what is listening where. Everything stops when
/// `shutdown` is cancelled.
pub async fn start(
    ctx: Arc<SmtpContext>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<Vec<Bound>> {
    // A typo in the trusted networks must stop the start, not open or
    // close relaying silently.
    let trusted = Arc::new(
        policy::TrustedNetworks::parse(&ctx.shared.config.relay.trusted_networks)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
    );
    let smtp = &ctx.shared.config.smtp;
    let plan = [
        (Role::Mx, &smtp.listen[..]),
        (Role::Submission, &smtp.submission_listen[..]),
        (Role::Submissions, &smtp.submissions_listen[..]),
    ];
    let limits = &ctx.shared.config.limits;
    let bound = listener::start(
        &plan,
        ctx.shared.tls.as_ref(),
        limits,
        &shutdown,
        tracker,
        |role| {
            Arc::new(SmtpService {
                ctx: ctx.clone(),
                role,
                trusted: trusted.clone(),
            })
        },
    )
    .await?;
    let manager = QueueManager::new(
        ctx.shared.store.clone(),
        ctx.shared.config.clone(),
        ctx.queue.clone(),
    );
    tracker.spawn(manager.run(shutdown));
    Ok(bound)
}
