//! # pop3d — Postern's POP3 daemon
//!
//! pop3d lets POP3 clients (Thunderbird, fetchmail, Python's poplib, curl)
//! download the mail in an account's INBOX, and delete it or keep it. It
//! runs inside `postern up` or alone as the `pop3d` binary, on a data dir
//! that smtpd and imapd may share.
//!
//! ## Listeners (defaults, all on 127.0.0.1)
//!
//! | port | name | TLS |
//! |---|---|---|
//! | 1110 | `pop3` | STLS offered |
//! | 1995 | `pop3s` | implicit TLS (RFC 8314) |
//!
//! ## Standards
//!
//! RFC 1939 (USER, PASS, STAT, LIST, RETR, DELE, NOOP, RSET, QUIT, TOP,
//! UIDL; APOP is not offered: it needs the password in clear on the
//! server), RFC 2449 (CAPA, RESP-CODES, PIPELINING, AUTH-RESP-CODE, EXPIRE,
//! IMPLEMENTATION), RFC 2595 (STLS), RFC 5034 (AUTH with PLAIN and LOGIN,
//! initial response allowed; `AUTH` alone lists the mechanisms), RFC 3206
//! (the `[AUTH]`, `[IN-USE]`, `[SYS/TEMP]` and `[SYS/PERM]` codes).
//!
//! ## The maildrop
//!
//! - At login the session takes a snapshot of INBOX: message numbers stay
//!   the same all session and mail arriving meanwhile is not shown (the
//!   next session sees it).
//! - DELE only marks; RSET unmarks; the marks take effect at QUIT (RFC
//!   1939's UPDATE state). A connection that drops, times out or is cut by
//!   a shutdown deletes nothing.
//! - What deleting means is `[pop3] delete_mode` (per account in
//!   `[pop3.accounts."…"]`): `expunge` removes the message from the store
//!   for every protocol; `hide` gives it the keyword `$POP3Deleted`, which
//!   later POP3 sessions skip and IMAP shows. With `mark_seen` (default)
//!   messages sent with RETR get `\Seen` at QUIT; TOP never marks.
//! - A message another client removed during the session gets a clear
//!   `-ERR` on RETR and TOP.
//! - Sizes in STAT and LIST are the stored sizes. Messages are stored with
//!   CRLF line ends (smtpd refuses bare LF), so that is exactly what RETR
//!   sends before dot-stuffing. Should a stored message hold a bare LF, it
//!   is sent as CRLF (the protocol needs it) and the listed size is short
//!   by one octet per such line.
//! - UIDL: UIDVALIDITY and UID as eight lower-case hex digits each
//!   (`5f3a0c1200000007`): unique, stable across sessions and restarts,
//!   never reused, and the same message IMAP knows by that UID.
//! - One POP3 session per account at a time: a second login gets
//!   `-ERR [IN-USE]`, whichever process on the data dir serves it
//!   (`postern up`, a standalone `pop3d`): see [`lock`]. IMAP sessions may
//!   run at the same time.
//!
//! ## Security stance
//!
//! - Passwords (USER/PASS, AUTH PLAIN/LOGIN) are accepted without TLS only
//!   where `[auth]` allows it (loopback by default); elsewhere CAPA offers
//!   neither USER nor SASL until STLS, and they are refused with
//!   `-ERR [AUTH]`.
//! - Failed logins are delayed per IP by the shared throttle, and after
//!   `auth.max_failures_per_session` the session is closed.
//! - After STLS, anything the client pipelined before the handshake is
//!   discarded and AUTHORIZATION starts over.
//! - Limits: `[pop3] max_line_length` (longer lines get `-ERR` and are
//!   dropped), `command_timeout_secs` (autologout, at least RFC 1939's ten
//!   minutes by default), and `[limits]` for connections.
//! - USER answers the same for every name; failed logins name no cause.
//!
//! ## Diagnostics
//!
//! tracing, one span per session (listener and peer): logins (`logged
//! in`, `authentication failed`, `maildrop in use`), the UPDATE at QUIT
//! (`session updated` with the number deleted), sessions that end without
//! QUIT, and store errors, which the client sees as `-ERR [SYS/TEMP]` or
//! `-ERR [SYS/PERM]` as `store::StoreError::is_temporary` says.
#![forbid(unsafe_code)]

pub mod lock;
pub mod protocol;
mod session;

use std::sync::Arc;

use common::daemon::Shared;
use common::listener::{Connection, ListenerRole, Refusal, RoleInfo, Service};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use lock::MaildropLocks;
pub use session::maildrop::HIDDEN_KEYWORD;

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 1110: POP3, STLS offered.
    Pop3,
    /// Port 1995: POP3 over implicit TLS.
    Pop3s,
}

impl ListenerRole for Role {
    fn info(self) -> RoleInfo {
        match self {
            Role::Pop3 => RoleInfo::plain("pop3", "STLS"),
            Role::Pop3s => RoleInfo::tls("pop3s", "implicit TLS"),
        }
    }
}

/// What every session of this daemon shares.
pub struct Pop3Context {
    pub shared: Shared,
    /// Which maildrops a session holds.
    pub locks: Arc<MaildropLocks>,
}

impl Pop3Context {
    pub fn new(shared: Shared) -> Pop3Context {
        Pop3Context {
            locks: Arc::new(MaildropLocks::new(shared.store.clone())),
            shared,
        }
    }
}

/// Every pop3d listener serves POP3 sessions over the one context.
impl Service for Pop3Context {
    async fn serve(self: Arc<Self>, conn: Connection) {
        session::Session::new(self, conn.stream, conn.peer, conn.shutdown)
            .run()
            .await;
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        let mut out = Vec::new();
        protocol::err(&mut out, Some(protocol::RespCode::SysTemp), why.text());
        out
    }
}

/// A listener pop3d has bound.
pub type Bound = common::listener::Bound<Role>;

/// Binds every configured listener, starts them on `tracker`, and returns
/// what is listening where. Everything stops when `shutdown` is cancelled.
pub async fn start(
    ctx: Arc<Pop3Context>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<Vec<Bound>> {
    let pop3 = &ctx.shared.config.pop3;
    let plan = [
        (Role::Pop3, &pop3.listen[..]),
        (Role::Pop3s, &pop3.pop3s_listen[..]),
    ];
    ctx.locks.track_releases(tracker);
    ctx.shared
        .listen(&plan, ctx.clone(), &shutdown, tracker)
        .await
}
