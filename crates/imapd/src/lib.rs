//! # imapd — Postern's IMAP daemon
//!
//! imapd lets IMAP clients (Thunderbird, mbsync, Python's imaplib) read the
//! mailboxes of an account in the shared store: folders, flags and UIDs
//! live on the server, the same for every client and session. It runs inside `postern up`, beside smtpd and
//! pop3d on the same store, TLS certificate and login throttle, or alone as
//! the `imapd` binary on a data dir the other daemons may share.
//!
//! ## Listeners (defaults, all on 127.0.0.1)
//!
//! | port | name | TLS |
//! |---|---|---|
//! | 1143 | `imap` | STARTTLS offered |
//! | 1993 | `imaps` | implicit TLS (RFC 8314) |
//!
//! ## Commands
//!
//! - The session: commands are read through the resumable [`protocol`]
//!   parser; synchronising literals get one `+ Ready for literal data`,
//!   LITERAL+ literals none; a literal over `[imap] max_literal_size` gets
//!   `tag NO [LIMIT]` (`[TOOBIG]` in APPEND and REPLACE; a LITERAL+ one is read and thrown away); syntax
//!   errors get `tag BAD` (or `* BAD` when there is no tag); a line over
//!   `max_line_length` is discarded up to its end. Pipelined commands are
//!   all answered before the replies are written out.
//! - States: not authenticated, authenticated, selected, logout.
//!   A command valid in no current state gets `tag BAD`.
//! - Any state: CAPABILITY, NOOP, LOGOUT, ID (RFC 2971).
//! - Not authenticated: STARTTLS (RFC 2595: input pipelined after it is
//!   discarded), LOGIN, AUTHENTICATE PLAIN (with SASL-IR, RFC 4959, or
//!   the `+` continuation; `*` cancels).
//! - Authenticated: ENABLE (RFC 5161: CONDSTORE, QRESYNC, IMAP4rev2,
//!   UTF8=ACCEPT; anything else is ignored), NAMESPACE
//!   (RFC 2342: one personal namespace, `""` with delimiter `/`), LIST with
//!   `%`/`*` (LIST-EXTENDED RFC 5258 selection `SUBSCRIBED`,
//!   `RECURSIVEMATCH`, `SPECIAL-USE` and `RETURN (SUBSCRIBED CHILDREN
//!   SPECIAL-USE STATUS (...))`, RFC 5819, RFC 6154), LSUB, STATUS
//!   (MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN, RECENT, HIGHESTMODSEQ,
//!   DELETED),
//!   SELECT, EXAMINE, CREATE (missing parents made), DELETE (not INBOX,
//!   not a mailbox with children), RENAME (children follow; INBOX's
//!   messages move out), SUBSCRIBE/UNSUBSCRIBE, APPEND (APPENDUID;
//!   MULTIAPPEND RFC 3502, in one store transaction; `~{n}` literal8
//!   messages, RFC 3516, stored with their binary parts base64-encoded;
//!   CATENATE RFC 4469 with IMAP URLs of the user's own messages,
//!   `[BADURL]`; APPENDLIMIT RFC 7889, `[TOOBIG]`), STATUS `SIZE` (RFC
//!   8438) and `APPENDLIMIT`, IDLE (RFC 2177) — `session::mailbox`,
//!   `session::append`, `session::idle`.
//! - Selected: CHECK, CLOSE (expunges `\Deleted` messages when the
//!   mailbox is read-write), UNSELECT (RFC 3691), and in `session::fetch`:
//!   - The session keeps the mailbox's UIDs in message-sequence order from
//!     SELECT; sequence numbers past the end get `tag BAD`, UID sets match
//!     the UIDs that exist (`*` is the last).
//!   - FETCH / UID FETCH (UID always included): FLAGS, UID, INTERNALDATE,
//!     RFC822.SIZE, ENVELOPE (Date, Subject, In-Reply-To and Message-ID as
//!     written in the header; addresses from the stored summary), BODY and
//!     BODYSTRUCTURE (with extension data) from the stored MIME tree,
//!     RFC822, RFC822.HEADER, RFC822.TEXT, `BODY[section]<partial>` and
//!     BODY.PEEK for `HEADER`, `HEADER.FIELDS (..)`, `HEADER.FIELDS.NOT`,
//!     `TEXT`, part numbers with `MIME`/`HEADER`/`TEXT`. The raw bytes come
//!     from one `messages_raw` call per batch of at most 8 MiB, each batch
//!     written out and flushed before the next is read; a large literal
//!     is written from the stored bytes. A non-PEEK body fetch sets
//!     `\Seen` in a read-write mailbox and adds FLAGS to the response.
//!     MODSEQ and `(CHANGEDSINCE n)` (with `VANISHED` under QRESYNC) as
//!     `session::condstore` tells.
//!   - STORE / UID STORE: FLAGS, +FLAGS, -FLAGS, `.SILENT`; the reply lists
//!     every message's flags (with UID for UID STORE); `(UNCHANGEDSINCE
//!     n)` leaves messages changed since alone and names them in `OK
//!     [MODIFIED set]`. Read-only mailbox:
//!     `NO [READ-ONLY]`; `\Recent` or an unknown `\` flag: `BAD`.
//!   - EXPUNGE and UID EXPUNGE (UIDPLUS, RFC 4315): `* n EXPUNGE` from the
//!     highest number down, so every number is right when it is read.
//!   - COPY/UID COPY (COPYUID) and MOVE/UID MOVE (RFC 6851: one store
//!     transaction; `* OK [COPYUID]`, then its EXPUNGEs).
//!   - REPLACE / UID REPLACE (RFC 8508, `session::append`): the new
//!     message appended and the old one expunged in one transaction;
//!     `* OK [APPENDUID]`, then the EXPUNGE.
//!   - OBJECTID (RFC 8474, `session::stored_keys`): FETCH EMAILID (from the
//!     hash of the message's bytes) and THREADID (NIL), SEARCH EMAILID
//!     and THREADID, MAILBOXID in CREATE, SELECT and STATUS.
//!   - SAVEDATE (RFC 8514): FETCH SAVEDATE (when the message was saved
//!     into the mailbox), SEARCH SAVEDBEFORE, SAVEDON, SAVEDSINCE and
//!     SAVEDATESUPPORTED.
//!   - BINARY[part], BINARY.PEEK, BINARY.SIZE (RFC 3516): the part with
//!     base64 or quoted-printable undone (`protocol::binary`), a literal8
//!     when it holds NUL, `NO [UNKNOWN-CTE]` for other encodings.
//! - SEARCH / UID SEARCH (`session::search`): every RFC 3501 key, CHARSET
//!   UTF-8 or US-ASCII (others: `NO [BADCHARSET]`). Keys are decided in
//!   rounds that read only what they need: the index (flags, sizes, UIDs),
//!   then stored summaries (addresses, subject, Date:), then raw bytes in
//!   bounded batches (HEADER, BODY, TEXT, decoded). BEFORE/ON/SINCE use
//!   the internal date's UTC day; SENT* the Date: header's own day.
//!   WITHIN (RFC 5032): OLDER and YOUNGER against the internal date.
//! - Search results (`session::esearch`, `session::context`): ESEARCH
//!   (RFC 4731, `SEARCH RETURN (MIN MAX COUNT ALL)`), PARTIAL (RFC 5267),
//!   SEARCHRES (RFC 5182: `RETURN (SAVE)` keeps the result as UIDs; `$`
//!   in FETCH, STORE, COPY, MOVE, UID EXPUNGE and search keys stands for
//!   it; SELECT, EXAMINE, CLOSE, UNSELECT and a failed SAVE forget it),
//!   and CONTEXT=SEARCH / CONTEXT=SORT (`RETURN (UPDATE)`: after each
//!   command and during IDLE the search runs again and `* ESEARCH (TAG ..)
//!   ADDTO / REMOVEFROM` say what changed, a removal before the EXPUNGE
//!   that caused it; CANCELUPDATE).
//! - SORT / UID SORT (`session::sort`, RFC 5256 with SORT=DISPLAY RFC 5957
//!   and ESORT): keys from the cached envelope summaries; subjects by RFC
//!   5256's base subject (`protocol::base_subject`), strings under
//!   i;unicode-casemap (I18NLEVEL=1); ties in mailbox order.
//! - THREAD / UID THREAD (`session::thread`): ORDEREDSUBJECT, REFERENCES
//!   (RFC 5256 section 3, from the summaries' Message-ID, In-Reply-To and
//!   References) and REFS (Dovecot's: no gathering by subject, threads by
//!   their newest message).
//! - QUOTA (`session::quota`, RFC 9208 with QUOTA=RES-STORAGE and
//!   QUOTA=RES-MESSAGE): one quota root, `""`, per account that has
//!   limits (none otherwise, as Dovecot); GETQUOTAROOT, GETQUOTA, SETQUOTA
//!   (`NO [NOPERM]`: limits are the administrator's, `postern user
//!   quota`), STATUS DELETED and DELETED-STORAGE. APPEND, COPY and REPLACE
//!   past a limit: `NO [OVERQUOTA]`, checked by the store in its write
//!   transaction; MOVE within the account is never refused.
//!
//! ## IMAP4rev2 and UTF8=ACCEPT (`session::rev2`, RFC 9051, RFC 6855)
//!
//! `IMAP4rev2` is advertised beside `IMAP4rev1` before and after login,
//! `UTF8=ACCEPT` after login. A session speaks RFC 3501 until the client
//! sends `ENABLE IMAP4rev2`; from then on it follows RFC 9051 where the
//! two differ (the list of differences and what we do about each is in
//! `session::rev2`): mailbox names in UTF-8 rather than modified UTF-7;
//! no `\Recent`, no `* n RECENT` and no `[UNSEEN n]`, and new mail is left
//! `\Recent` for the IMAP4rev1 sessions; SELECT and EXAMINE answer a `*
//! LIST` of the mailbox and `* OK [CLOSED]` when they leave one; SEARCH is
//! answered with `* ESEARCH` (as `RETURN (ALL)`); DELETE of a parent gets
//! `[HASCHILDREN]`. `ENABLE UTF8=ACCEPT` alone brings UTF-8 mailbox names,
//! `APPEND box UTF8 (~{n})`, and `BAD` for a SEARCH, SORT or THREAD
//! charset other than UTF-8. Names from the client, in either
//! form, are stored in Unicode NFC. Sessions of both kinds on one mailbox
//! see the same messages, flags and expunges, each in its own form.
//!
//! ## CONDSTORE and QRESYNC (`session::condstore`, RFC 7162)
//!
//! Advertised after login. CONDSTORE is on after `ENABLE CONDSTORE` or
//! the first command that uses it (then `* OK [HIGHESTMODSEQ n]`): every
//! FETCH answer with FLAGS carries MODSEQ, SELECT says HIGHESTMODSEQ.
//! `ENABLE QRESYNC` adds `SELECT (QRESYNC (...))` with `* VANISHED
//! (EARLIER)` and the changed messages, `UID FETCH (CHANGEDSINCE n
//! VANISHED)`, `* OK [CLOSED]`, UID in every FETCH answer, and `*
//! VANISHED uids` for expunges (the tagged OK then carries
//! `[HIGHESTMODSEQ n]`, as Dovecot's does).
//! Expunged UIDs come from the store's tombstones; past what pruning kept,
//! from the gaps in the mailbox's UID list.
//!
//! ## Other sessions' changes (`session::updates`)
//!
//! The session keeps its client's view of the selected mailbox: UIDs in
//! sequence order, the flags' modseq last reported, the keywords announced
//! in `* FLAGS`. When the store's wake-up for the selected mailbox
//! ([`store::Store::watch_mailbox`]; commits to other mailboxes do not move
//! it, and a session with nothing selected watches nothing) moved, it reads
//! the store's change feed after the modseq it last brought its client up
//! to ([`store::Store::changes_since`]: only what changed, not the whole
//! mailbox) after a command (before the tagged reply), or the whole index
//! when pruning took part of that feed or an expunge is still owed, and
//! reports the difference: EXPUNGEs,
//! a new `* FLAGS` for new keywords, `* n FETCH (UID u FLAGS (..))`, then
//! EXISTS and RECENT (no RECENT under IMAP4rev2). After a FETCH, STORE, SEARCH, COPY or MOVE that used
//! sequence numbers, EXPUNGE waits for the next command (RFC 3501 7.4.1).
//! During IDLE the report goes out as soon as the change is committed
//! (another process's within the store's poll interval). `\Recent`: the
//! first read-write session to see a message claims it in the store, so
//! exactly one IMAP4rev1 session shows it (an IMAP4rev2 session claims
//! none).
//!
//! ## Store failures
//!
//! A command answers what the store says with the protocol's own words
//! where there are some (`[NONEXISTENT]`, `[TRYCREATE]`,
//! `[ALREADYEXISTS]`, a `BYE` when the selected mailbox was deleted), and
//! anything else with RFC 5530's codes as `store::StoreError::is_temporary`
//! tabulates for every daemon: `NO [OVERQUOTA]` when the store is full
//! or the account's quota has no room,
//! `NO [UNAVAILABLE]` when trying again may work, `NO [SERVERBUG]`
//! otherwise.
//!
//! ## Security stance
//!
//! - Passwords (LOGIN, AUTHENTICATE PLAIN) are accepted without TLS only
//!   where `[auth]` allows it (loopback by default); elsewhere CAPABILITY
//!   says `LOGINDISABLED`, offers no `AUTH=`, and logins get
//!   `NO [PRIVACYREQUIRED]`.
//! - Failed logins are delayed per IP by the shared throttle and get
//!   `NO [AUTHENTICATIONFAILED]`; after `auth.max_failures_per_session` the
//!   session is closed with `* BYE`.
//! - Every input size is bounded by `[imap]`'s limits; the parser never
//!   panics; passwords are held in [`protocol::Secret`], which never prints.
//! - `[imap] max_connections_per_user` sessions per account (default 50);
//!   the next login gets `NO [LIMIT]`. Per-IP and total caps are the
//!   listener's (`[limits]`).
//! - Autologout after `[imap] idle_timeout_secs` (RFC 3501's 30 minutes by
//!   default): `* BYE Autologout; idle for too long`. A shutdown says
//!   `* BYE Server shutting down`.
#![forbid(unsafe_code)]

pub mod protocol;
mod session;

use std::sync::Arc;

use common::daemon::Shared;
use common::listener::{Connection, ListenerRole, Refusal, RoleInfo, Service};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 1143: IMAP, STARTTLS offered.
    Imap,
    /// Port 1993: IMAP over implicit TLS.
    Imaps,
}

impl ListenerRole for Role {
    fn info(self) -> RoleInfo {
        match self {
            Role::Imap => RoleInfo::plain("imap", "STARTTLS"),
            Role::Imaps => RoleInfo::tls("imaps", "implicit TLS"),
        }
    }
}

/// What every session of this daemon shares.
pub struct ImapContext {
    pub shared: Shared,
    /// Open sessions per logged-in account.
    user_sessions: Arc<std::sync::Mutex<std::collections::HashMap<store::AccountId, usize>>>,
    /// Selected mailboxes' UID lists, shared by the sessions that follow
    /// their change feeds.
    uid_lists: session::SharedUidLists,
    /// Reads of selected mailboxes' change feeds, shared by the sessions
    /// one commit woke.
    feed_reads: session::SharedFeedReads,
    /// What SORT and THREAD compare of each message, per mailbox, within
    /// `[imap] sort_cache_mb`.
    sort_indexes: session::SortIndexes,
}

/// One logged-in session's place in its account's count; given back when
/// dropped.
pub(crate) struct UserSlot {
    account: store::AccountId,
    counts: Arc<std::sync::Mutex<std::collections::HashMap<store::AccountId, usize>>>,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.account);
            }
        }
    }
}

impl ImapContext {
    pub fn new(shared: Shared) -> ImapContext {
        let sort_budget = shared.config.imap.sort_cache_mb.saturating_mul(1024 * 1024);
        ImapContext {
            sort_indexes: session::SortIndexes::new(sort_budget),
            shared,
            user_sessions: Default::default(),
            uid_lists: Default::default(),
            feed_reads: Default::default(),
        }
    }

    /// Takes a session slot for the account, unless it has
    /// `[imap] max_connections_per_user` already.
    pub(crate) fn user_slot(&self, account: store::AccountId) -> Option<UserSlot> {
        let mut counts = self.user_sessions.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(account).or_insert(0);
        if *n >= self.shared.config.imap.max_connections_per_user {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            account,
            counts: self.user_sessions.clone(),
        })
    }
}

/// Every imapd listener serves IMAP sessions over the one context.
impl Service for ImapContext {
    async fn serve(self: Arc<Self>, conn: Connection) {
        session::Session::new(self, conn.stream, conn.peer, conn.shutdown)
            .run()
            .await;
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        let mut out = Vec::new();
        let bye = protocol::encode::Status::Bye;
        protocol::encode::status(&mut out, None, bye, None, why.text());
        out
    }
}

/// A listener imapd has bound.
pub type Bound = common::listener::Bound<Role>;

/// Binds every configured listener, starts them on `tracker`, and returns
/// what is listening where. Everything stops when `shutdown` is cancelled.
pub async fn start(
    ctx: Arc<ImapContext>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<Vec<Bound>> {
    let imap = &ctx.shared.config.imap;
    let plan = [
        (Role::Imap, &imap.listen[..]),
        (Role::Imaps, &imap.imaps_listen[..]),
    ];
    ctx.shared
        .listen(&plan, ctx.clone(), &shutdown, tracker)
        .await
}
