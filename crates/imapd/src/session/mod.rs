//! One IMAP session: the I/O loop, the states and command dispatch.
//!
//! The loop keeps the bytes read so far in its [`Transport`] and hands
//! them to [`parse_command`] until it asks for more. Every complete command
//! is answered before anything is written: replies pile up in the
//! transport's output, which goes out only when the loop must wait for
//! input (or when it grows large). A synchronising literal gets its `+` once, then the loop reads
//! on.
//!
//! Handlers live beside this file: `auth` (CAPABILITY, STARTTLS, LOGIN,
//! AUTHENTICATE), `mailbox` (NAMESPACE, LIST, LSUB, STATUS, SELECT,
//! EXAMINE, CLOSE, UNSELECT, CREATE, DELETE, RENAME, SUBSCRIBE,
//! UNSUBSCRIBE), `fetch` (FETCH, STORE, EXPUNGE, UID EXPUNGE), `append`
//! (APPEND with MULTIAPPEND and CATENATE, REPLACE), `stored_keys`
//! (OBJECTID's ids, SEARCH keys the store answers), `transfer` (COPY,
//! MOVE), `search` (SEARCH, UID SEARCH), `esearch` (SEARCH RETURN, `$`),
//! `sort` (SORT), `thread` (THREAD), `context` (CONTEXT=SEARCH updates,
//! CANCELUPDATE), `idle` (IDLE), `notify` (NOTIFY: events pushed while
//! the session waits for a command), `updates` (what other sessions changed,
//! reported after each selected-state command, before its tagged reply),
//! `condstore` (ENABLE; what CONDSTORE and QRESYNC add to SELECT,
//! FETCH and STORE) and `rev2` (what IMAP4rev2 and UTF8=ACCEPT change:
//! mailbox names in UTF-8, no `\Recent`, SEARCH as ESEARCH).
//!
//! Also here: `metadata` (GETMETADATA, SETMETADATA), `urlauth` (RESETKEY,
//! GENURLAUTH, URLFETCH); CREATE-SPECIAL-USE
//! is in `mailbox`, PREVIEW in `fetch`.

mod append;
mod auth;
mod condstore;
mod context;
mod esearch;
mod fetch;
mod idle;
mod mailbox;
mod metadata;
mod notify;
mod quota;
mod rev2;
mod search;
mod sort;
mod sort_index;
mod stored_keys;
mod thread;
mod transfer;
mod updates;
mod urlauth;

pub(crate) use sort_index::SortIndexes;
pub(crate) use updates::{SharedFeedReads, SharedUidLists};

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::login::LoginState;
use common::tls::MaybeTlsStream;
use common::transport::Transport;
use store::{Account, StoreError};
use tokio_util::sync::CancellationToken;

use crate::protocol::encode::{self, Code, Status};
use crate::protocol::{parse_command, Command, CommandKind, Limits, Parsed, Tag};
use crate::ImapContext;

/// Why a session ends (`Timeout` is autologout).
pub(crate) use common::transport::End;

/// The mailbox a session has selected, as this session's client knows it:
/// the messages announced so far (an expunge by another session stays in
/// the view until it may be announced), and the flags last reported.
#[cfg_attr(test, derive(Clone))]
pub(crate) struct Selected {
    /// The mailbox as the store knows it: every command after SELECT
    /// acts on this one, and never on another mailbox that later takes
    /// its name.
    pub mailbox: store::MailboxRef,
    /// Its name, as the store keeps it (follows a RENAME in this session).
    pub name: String,
    pub read_only: bool,
    /// The UIDs of its messages, in message-sequence-number order (which
    /// is UID order). Shared with the store's cached index, and with other
    /// sessions, until this view differs from it (copy on write): a
    /// thousand sessions on a 50,000-message mailbox hold one list.
    pub uids: Arc<Vec<store::Uid>>,
    /// UID ranges (inclusive) that are `\Recent` in this session (RFC
    /// 3501 2.3.2): what it claimed at SELECT and at each update since.
    pub recent: Vec<(store::Uid, store::Uid)>,
    /// HIGHESTMODSEQ of the state the client was last brought up to: a
    /// message with a higher modseq changed since.
    pub synced_modseq: store::ModSeq,
    /// Flags this session reported itself since then (uid → modseq), not
    /// to be reported again.
    pub reported: HashMap<store::Uid, store::ModSeq>,
    /// The keywords announced in `* FLAGS`.
    pub keywords: BTreeSet<String>,
    /// Messages the store no longer has whose EXPUNGE is still owed.
    pub expunge_owed: bool,
}

impl Selected {
    /// Notes flags this session reported itself, so that they are not
    /// reported again as a change.
    pub fn reported(&mut self, uid: store::Uid, modseq: store::ModSeq) {
        self.reported.insert(uid, modseq);
    }

    pub fn is_recent(&self, uid: store::Uid) -> bool {
        self.recent.iter().any(|&(a, b)| a <= uid && uid <= b)
    }

    /// How many messages in the view are `\Recent` here.
    pub fn recent_count(&self) -> usize {
        self.recent
            .iter()
            .map(|&(a, b)| {
                let from = self.uids.partition_point(|u| *u < a);
                let to = self.uids.partition_point(|u| *u <= b);
                to - from
            })
            .sum()
    }
}

/// RFC 3501's states (logout is the session ending).
pub(crate) enum State {
    NotAuthenticated,
    Authenticated(Account),
    Selected(Account, Selected),
}

pub(crate) struct Session {
    ctx: Arc<ImapContext>,
    /// The client's stream, the commands read and the replies queued.
    io: Transport<MaybeTlsStream>,
    state: State,
    limits: Limits,
    login_state: LoginState,
    /// The synchronising literal already answered with `+`.
    literal_acked: Option<usize>,
    /// Bytes of a refused LITERAL+ literal still to throw away.
    skip_bytes: u64,
    /// Throw input away up to the next LF.
    skip_line: bool,
    /// Set by a handler when the session must close after its reply.
    closing: bool,
    /// Set by COMPRESS: both directions are compressed once its tagged
    /// reply is out.
    compress_after_reply: bool,
    /// Moves when the store commits a change to the selected mailbox
    /// ([`store::Store::watch_mailbox`]); `None` with nothing selected, so
    /// that other mailboxes' commits never wake this session (issue 13).
    changes: Option<tokio::sync::watch::Receiver<u64>>,
    /// While set, the tagged reply waits in `tagged_reply` so that
    /// untagged updates can go out before it.
    defer_tagged: bool,
    tagged_reply: Vec<u8>,
    /// Held while logged in: counts against the account's session limit.
    user_slot: Option<crate::UserSlot>,
    /// `BAD` replies since the last OK or NO; at `imap.max_bad_commands`
    /// the session is closed.
    bad_in_a_row: u32,
    /// CONDSTORE and QRESYNC, once turned on (`session::condstore`).
    enabled: condstore::Enabled,
    /// The UIDs `$` stands for (RFC 5182), ascending.
    saved_result: Vec<store::Uid>,
    /// Searches whose results this session keeps up to date (RFC 5267).
    updates: Vec<context::Update>,
    /// What NOTIFY asked for, once set (RFC 5465).
    notify: Option<Box<notify::Notify>>,
}

/// The RFC 5530 response code for a store failure the command has no
/// more specific answer to (such as `[NONEXISTENT]` or `[ALREADYEXISTS]`),
/// by [`StoreError::is_full`], [`StoreError::is_over_quota`] and
/// [`StoreError::is_temporary`] alone (the table of every daemon's
/// answers is on the latter): `OVERQUOTA` (the client may try again once
/// space is made), `UNAVAILABLE` (try again
/// later), else `SERVERBUG`.
fn store_failure_code(e: &StoreError) -> Code {
    if e.is_full() || e.is_over_quota() {
        Code::OverQuota
    } else if e.is_temporary() {
        Code::Unavailable
    } else {
        Code::ServerBug
    }
}

impl Session {
    pub fn new(
        ctx: Arc<ImapContext>,
        stream: MaybeTlsStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) -> Session {
        let imap = &ctx.shared.config.imap;
        let limits = Limits {
            max_line: imap.max_line_length,
            max_literal: imap.max_literal_size,
            ..Limits::default()
        };
        Session {
            compress_after_reply: false,
            changes: None,
            defer_tagged: false,
            user_slot: None,
            tagged_reply: Vec::new(),
            login_state: LoginState::new(
                ctx.shared.gate(peer.ip()),
                Duration::from_secs(imap.idle_timeout_secs),
            ),
            io: Transport::new(
                stream,
                imap.max_line_length,
                Duration::from_secs(imap.idle_timeout_secs),
                shutdown,
            ),
            ctx,
            state: State::NotAuthenticated,
            limits,
            literal_acked: None,
            skip_bytes: 0,
            skip_line: false,
            closing: false,
            bad_in_a_row: 0,
            enabled: condstore::Enabled::default(),
            saved_result: Vec::new(),
            updates: Vec::new(),
            notify: None,
        }
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.ctx.shared.config.imap.idle_timeout_secs)
    }

    /// `tag STATUS [code] text`.
    fn tagged(&mut self, tag: &Tag, st: Status, code: Option<Code>, text: &str) {
        if st != Status::Ok {
            tracing::debug!(?st, ?code, text, "error reply");
        }
        self.count_bad(st);
        let out = if self.defer_tagged {
            &mut self.tagged_reply
        } else {
            &mut self.io.output
        };
        encode::status(out, Some(tag), st, code.as_ref(), text);
    }

    fn ok(&mut self, tag: &Tag, text: &str) {
        self.tagged(tag, Status::Ok, None, text);
    }

    fn no(&mut self, tag: &Tag, code: Option<Code>, text: &str) {
        self.tagged(tag, Status::No, code, text);
    }

    /// Answers a store failure of the command `tag` (`what` it could not
    /// do, for the text and the log): the selected mailbox deleted
    /// meanwhile closes the session, anything else is a `NO` with the code
    /// of [`store_failure_code`].
    fn store_failed(&mut self, tag: &Tag, e: StoreError, what: &str) {
        if let StoreError::MailboxGone(_) = e {
            return self.selected_mailbox_gone();
        }
        if e.is_over_quota() {
            // Dovecot's words, with RFC 9208's code.
            tracing::info!(error = %e, "{what} refused");
            return self.no(
                tag,
                Some(Code::OverQuota),
                "Quota exceeded (mailbox for user is full)",
            );
        }
        tracing::error!(error = %e, "{what} failed");
        let code = store_failure_code(&e);
        let text = match code {
            // Dovecot's words on a full disk.
            Code::OverQuota => "Not enough disk space".to_string(),
            Code::Unavailable => format!("Cannot {what}; try again later"),
            _ => format!("Cannot {what}"),
        };
        self.no(tag, Some(code), &text);
    }

    fn bad(&mut self, tag: &Tag, text: &str) {
        self.tagged(tag, Status::Bad, None, text);
    }

    /// Counts a command's final status towards `imap.max_bad_commands`:
    /// BAD adds one, OK and NO start again (Dovecot counts the same way).
    fn count_bad(&mut self, st: Status) {
        match st {
            Status::Bad => self.bad_in_a_row += 1,
            Status::Ok | Status::No => self.bad_in_a_row = 0,
            _ => {}
        }
    }

    /// After too many BAD replies in a row, queues Dovecot's farewell
    /// and marks the session closing: a client that keeps sending what
    /// cannot be parsed is broken or probing, and would otherwise be
    /// answered forever.
    fn too_many_bad(&mut self) -> bool {
        let max = self.ctx.shared.config.imap.max_bad_commands;
        if max == 0 || self.bad_in_a_row < max {
            return false;
        }
        tracing::info!(bad = self.bad_in_a_row, "too many invalid commands");
        self.untagged_status(Status::Bye, None, "Too many invalid IMAP commands.");
        self.closing = true;
        true
    }

    /// `* STATUS [code] text`.
    fn untagged_status(&mut self, st: Status, code: Option<Code>, text: &str) {
        encode::status(&mut self.io.output, None, st, code.as_ref(), text);
    }

    /// `* data`, `data` already encoded.
    fn untagged(&mut self, data: &[u8]) {
        encode::untagged(&mut self.io.output, data);
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        let caps = self.capabilities();
        self.untagged_status(
            Status::Ok,
            Some(Code::Capability(caps)),
            "Postern IMAP4rev1 ready",
        );
        let end = self.command_loop().await;
        match end {
            End::Shutdown => self.untagged_status(Status::Bye, None, "Server shutting down"),
            End::Timeout => {
                tracing::info!("autologout: idle too long");
                self.untagged_status(Status::Bye, None, "Autologout; idle for too long")
            }
            End::Done | End::Disconnected => {}
        }
        if end != End::Disconnected {
            self.io.goodbye().await;
        }
        tracing::debug!(?end, "session ended");
    }

    async fn command_loop(&mut self) -> End {
        loop {
            if let Err(end) = self.ingest().await {
                return end;
            }
            if self.closing {
                return End::Done;
            }
            let wait = if self.notify.is_some() {
                self.wait_notifying().await
            } else {
                self.io.fill(self.idle_timeout(), true).await
            };
            if let Err(end) = wait {
                return end;
            }
            if self.closing {
                // The selected mailbox went away while waiting.
                return End::Done;
            }
        }
    }

    /// Answers every complete command in `input`; returns when more bytes
    /// are needed.
    async fn ingest(&mut self) -> Result<(), End> {
        loop {
            if self.too_many_bad() {
                return Ok(());
            }
            if self.skip_bytes > 0 {
                let n = (self.skip_bytes.min(self.io.unread().len() as u64)) as usize;
                self.io.consume(n);
                self.skip_bytes -= n as u64;
                if self.skip_bytes > 0 {
                    return Ok(());
                }
                // The rest of the refused command's line goes too.
                self.skip_line = true;
            }
            if self.skip_line {
                let unread = self.io.unread();
                match unread.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.io.consume(i + 1);
                        self.skip_line = false;
                    }
                    None => {
                        self.io.consume(unread.len());
                        return Ok(());
                    }
                }
            }
            if self.io.unread().is_empty() {
                return Ok(());
            }
            match parse_command(self.io.unread(), &self.limits) {
                Parsed::Complete { command, consumed } => {
                    self.io.consume(consumed);
                    self.literal_acked = None;
                    self.dispatch(command).await?;
                    if self.closing {
                        return Ok(());
                    }
                    self.io.flush_if_full().await?;
                }
                Parsed::Incomplete => return Ok(()),
                Parsed::NeedLiteral { literal_start, .. } => {
                    if self.literal_acked != Some(literal_start) {
                        encode::continuation(&mut self.io.output, "Ready for literal data");
                        self.literal_acked = Some(literal_start);
                    }
                    return Ok(());
                }
                Parsed::LiteralTooLarge {
                    tag,
                    size,
                    synchronizing,
                    consumed,
                } => {
                    let message = append::adds_a_message(&self.io.unread()[..consumed]);
                    self.io.consume(consumed);
                    self.literal_acked = None;
                    let max = self.limits.max_literal;
                    // A message over APPENDLIMIT is TOOBIG (RFC 7889).
                    let code = if message { Code::TooBig } else { Code::Limit };
                    self.no(
                        &tag,
                        Some(code),
                        &format!("Literal of {size} octets too large (at most {max})"),
                    );
                    if !synchronizing {
                        self.skip_bytes = size;
                        if size == 0 {
                            self.skip_line = true;
                        }
                    }
                }
                Parsed::Error {
                    tag,
                    message,
                    consumed,
                } => {
                    let unread = self.io.unread();
                    let consumed = consumed.min(unread.len());
                    let whole_line = consumed > 0 && unread[consumed - 1] == b'\n';
                    self.io.consume(consumed);
                    self.literal_acked = None;
                    if !whole_line {
                        self.skip_line = true;
                    }
                    match tag {
                        Some(tag) => self.bad(&tag, &message),
                        None => {
                            self.count_bad(Status::Bad);
                            self.untagged_status(Status::Bad, None, &message)
                        }
                    }
                }
            }
        }
    }

    /// COMPRESS (RFC 4978): DEFLATE only, once per session; compression
    /// starts after the tagged OK ([`Session::dispatch`]).
    fn compress(&mut self, tag: &Tag, mechanism: &str) {
        if mechanism != "DEFLATE" {
            self.bad(tag, "Unknown compression mechanism");
        } else if self.io.is_compressed() || self.compress_after_reply {
            self.no(
                tag,
                Some(Code::CompressionActive),
                "DEFLATE active via COMPRESS",
            );
        } else {
            self.compress_after_reply = true;
            self.ok(tag, "DEFLATE active");
        }
    }

    /// Writes out queued replies.
    async fn flush(&mut self) -> Result<(), End> {
        self.io.flush().await
    }

    /// Runs one command; in the selected state, then reports what other
    /// sessions changed (RFC 3501 7: EXPUNGE not after a command that
    /// uses sequence numbers), before the tagged reply.
    async fn dispatch(&mut self, command: Command) -> Result<(), End> {
        use CommandKind as K;
        let expunge_allowed = !matches!(
            command.kind,
            K::Fetch { uid: false, .. }
                | K::Store { uid: false, .. }
                | K::Search { uid: false, .. }
                | K::SearchReturning { uid: false, .. }
                | K::Sort { uid: false, .. }
                | K::Thread { uid: false, .. }
                | K::Copy { uid: false, .. }
                | K::Move { uid: false, .. }
                | K::Replace { uid: false, .. }
        );
        let idle = matches!(command.kind, K::Idle);
        let before = self.view_for_updates();
        let was_selected = matches!(self.state, State::Selected(..));
        self.defer_tagged = was_selected && !idle;
        self.enabled.vanished_sent = false;
        let result = self.run_command(command).await;
        if !matches!(self.state, State::Selected(..)) {
            // CLOSE, UNSELECT, a failed SELECT, DELETE of the selected
            // mailbox, or the mailbox went away: nothing to watch.
            self.changes = None;
        }
        if self.defer_tagged {
            self.defer_tagged = false;
            // With NOTIFY on and no events asked for the selected mailbox,
            // its view stays as the client knows it (RFC 5465 3.1).
            if result.is_ok() && !self.closing && !self.selected_muted() {
                self.sync_mailbox(expunge_allowed).await;
                if !self.closing {
                    self.report_updates(before).await?;
                }
                if self.closing {
                    // The mailbox went away: the BYE is the last word.
                    self.tagged_reply.clear();
                }
            }
            self.highest_modseq_after_vanished();
            let reply = std::mem::take(&mut self.tagged_reply);
            self.io.output.extend_from_slice(&reply);
        }
        if std::mem::take(&mut self.compress_after_reply) && result.is_ok() {
            self.io.start_compression().await?;
        }
        result
    }

    /// Runs one command, checking first that it is valid in this state.
    async fn run_command(&mut self, command: Command) -> Result<(), End> {
        let Command { tag, kind } = command;
        tracing::trace!(tag = %tag, "command");
        let authenticated = !matches!(self.state, State::NotAuthenticated);
        let selected = matches!(self.state, State::Selected(..));
        use CommandKind as K;
        let valid = match &kind {
            K::Capability | K::Noop | K::Logout | K::Id(_) => true,
            K::StartTls | K::Login { .. } | K::Authenticate { .. } => !authenticated,
            K::Enable(_) => authenticated && !selected,
            K::Select { .. }
            | K::Examine { .. }
            | K::Create(_)
            | K::CreateSpecialUse { .. }
            | K::Delete(_)
            | K::Rename { .. }
            | K::Subscribe(_)
            | K::Unsubscribe(_)
            | K::List { .. }
            | K::Lsub { .. }
            | K::Status { .. }
            | K::Append { .. }
            | K::Namespace
            | K::Compress(_)
            | K::GetMetadata { .. }
            | K::SetMetadata { .. }
            | K::ResetKey { .. }
            | K::GenUrlAuth(_)
            | K::UrlFetch(_)
            | K::Notify(_)
            | K::GetQuota(_)
            | K::GetQuotaRoot(_)
            | K::SetQuota { .. }
            | K::Idle => authenticated,
            K::Check
            | K::Close
            | K::Unselect
            | K::Expunge
            | K::UidExpunge(_)
            | K::Search { .. }
            | K::Fetch { .. }
            | K::Store { .. }
            | K::Copy { .. }
            | K::Move { .. }
            | K::Replace { .. }
            | K::SearchReturning { .. }
            | K::Sort { .. }
            | K::Thread { .. }
            | K::CancelUpdate(_) => selected,
        };
        if !valid {
            self.bad(&tag, "Command not valid in this state");
            return Ok(());
        }
        if self.refuses_charset(&tag, &kind) {
            return Ok(());
        }
        let kind = self.rev2_search(kind);
        self.note_condstore_use(&kind);
        self.forget_mailbox_results(&kind);
        let Some(kind) = self.put_saved_result(&tag, kind) else {
            return Ok(());
        };
        match kind {
            K::Capability => {
                let caps = self.capabilities();
                let mut line = b"CAPABILITY ".to_vec();
                line.extend_from_slice(caps.join(" ").as_bytes());
                self.untagged(&line);
                self.ok(&tag, "CAPABILITY completed");
            }
            K::Noop | K::Check => self.ok(&tag, "Done"),
            K::Logout => {
                self.untagged_status(Status::Bye, None, "Postern IMAP server logging out");
                self.ok(&tag, "LOGOUT completed");
                self.closing = true;
            }
            K::Id(_) => {
                let line = format!(
                    "ID (\"name\" \"Postern\" \"version\" \"{}\")",
                    env!("CARGO_PKG_VERSION")
                );
                self.untagged(line.as_bytes());
                self.ok(&tag, "ID completed");
            }
            K::Enable(caps) => self.enable(&tag, caps),
            K::Compress(mechanism) => self.compress(&tag, &mechanism),
            K::StartTls => self.starttls(&tag).await?,
            K::Login { user, password } => self.login_command(&tag, user, password).await?,
            K::Authenticate {
                mechanism,
                initial_response,
            } => self.authenticate(&tag, mechanism, initial_response).await?,
            K::Namespace => {
                self.untagged(b"NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.ok(&tag, "NAMESPACE completed");
            }
            K::List {
                selection,
                reference,
                patterns,
                returns,
            } => {
                self.list(&tag, selection, reference, patterns, returns)
                    .await
            }
            K::Lsub { reference, pattern } => self.lsub(&tag, reference, pattern).await,
            K::Status { mailbox, items } => self.status(&tag, mailbox, items).await,
            K::Select {
                mailbox, qresync, ..
            } => self.select(&tag, mailbox, false, qresync).await,
            K::Examine {
                mailbox, qresync, ..
            } => self.select(&tag, mailbox, true, qresync).await,
            K::Close => self.close(&tag).await,
            K::Unselect => self.unselect(&tag),
            K::Fetch {
                uid,
                set,
                attributes,
                changed_since,
                vanished,
            } => {
                if !vanished
                    || self
                        .fetch_vanished(&tag, uid, &set, changed_since.unwrap_or(0))
                        .await
                {
                    self.fetch(&tag, uid, set, attributes, changed_since)
                        .await?
                }
            }
            K::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchanged_since,
            } => {
                self.store(&tag, uid, set, mode, silent, flags, unchanged_since)
                    .await
            }
            K::Expunge => self.expunge(&tag, None).await,
            K::UidExpunge(set) => self.expunge(&tag, Some(set)).await,
            K::Create(name) => self.create(&tag, name).await,
            K::CreateSpecialUse { mailbox, uses } => {
                self.create_special_use(&tag, mailbox, uses).await
            }
            K::Delete(name) => self.delete(&tag, name).await,
            K::Rename { from, to } => self.rename(&tag, from, to).await,
            K::Subscribe(name) => self.subscribe(&tag, name, true).await,
            K::Unsubscribe(name) => self.subscribe(&tag, name, false).await,
            K::Append { mailbox, messages } => self.append(&tag, mailbox, messages).await,
            K::Replace {
                uid,
                target,
                mailbox,
                message,
            } => {
                self.replace(&tag, uid, target.get(), mailbox, message)
                    .await
            }
            K::Copy { uid, set, mailbox } => self.copy(&tag, uid, set, mailbox, false).await,
            K::Move { uid, set, mailbox } => self.copy(&tag, uid, set, mailbox, true).await,
            K::Idle => self.idle(&tag).await?,
            K::Search {
                uid,
                charset,
                criteria,
            } => self.search(&tag, uid, charset, criteria).await?,
            K::SearchReturning {
                uid,
                returns,
                charset,
                criteria,
            } => {
                self.search_returning(&tag, uid, returns, charset, criteria)
                    .await?
            }
            K::Sort {
                uid,
                returns,
                keys,
                charset,
                criteria,
            } => {
                self.sort(&tag, uid, returns, keys, charset, criteria)
                    .await?
            }
            K::Thread {
                uid,
                algorithm,
                charset,
                criteria,
            } => self.thread(&tag, uid, algorithm, charset, criteria).await?,
            K::CancelUpdate(tags) => self.cancel_update(&tag, tags),
            K::GetMetadata {
                mailbox,
                options,
                entries,
            } => self.get_metadata(&tag, mailbox, options, entries).await,
            K::SetMetadata { mailbox, entries } => self.set_metadata(&tag, mailbox, entries).await,
            K::ResetKey {
                mailbox,
                mechanisms,
            } => self.reset_key(&tag, mailbox, mechanisms).await,
            K::GenUrlAuth(urls) => self.gen_url_auth(&tag, urls).await,
            K::UrlFetch(urls) => self.url_fetch(&tag, urls).await?,
            K::Notify(set) => self.notify(&tag, set).await,
            K::GetQuotaRoot(mailbox) => self.get_quota_root(&tag, mailbox).await,
            K::GetQuota(root) => self.get_quota(&tag, root).await,
            K::SetQuota { .. } => self.set_quota(&tag),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testutil::{shared_with_account, spawn_session};
    use store::StoreError as E;

    /// A whole session over an in-memory stream, on a real store with one
    /// message in the INBOX.
    #[tokio::test]
    async fn a_session_over_a_duplex_stream_selects_and_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let message = b"Subject: over a duplex\r\n\r\nHello, Alice.\r\n";
        let shared = shared_with_account(dir.path(), "alice@localhost", "pw", &[message]).await;
        let ctx = Arc::new(ImapContext::new(shared));
        let (session, mut client) = spawn_session(|stream, peer| {
            Session::new(ctx, stream, peer, CancellationToken::new()).run()
        });

        assert!(client.line().await.starts_with("* OK "));
        client.send(b"a1 LOGIN alice@localhost pw\r\n").await;
        let login = client.lines_until("a1 ").await;
        assert!(login.last().unwrap().starts_with("a1 OK"), "{login:?}");
        client.send(b"a2 SELECT INBOX\r\n").await;
        let select = client.lines_until("a2 ").await;
        assert!(select.iter().any(|l| l == "* 1 EXISTS"), "{select:?}");
        assert!(select.last().unwrap().starts_with("a2 OK [READ-WRITE]"));
        client.send(b"a3 FETCH 1 (UID BODY[])\r\n").await;
        let fetch = client.lines_until("a3 ").await;
        let literal = format!("* 1 FETCH (UID 1 BODY[] {{{}}}", message.len());
        assert_eq!(fetch[0], literal, "{fetch:?}");
        assert_eq!(fetch[1..4], ["Subject: over a duplex", "", "Hello, Alice."]);
        // BODY[] (not PEEK) sets \Seen, and says so (RFC 3501 6.4.5).
        assert_eq!(fetch[4], r" FLAGS (\Seen \Recent))");
        assert!(fetch[5].starts_with("a3 OK"), "{fetch:?}");
        client.send(b"a4 LOGOUT\r\n").await;
        let logout = client.lines_until("a4 ").await;
        assert!(logout[0].starts_with("* BYE"), "{logout:?}");
        assert!(logout[1].starts_with("a4 OK"), "{logout:?}");
        assert!(client.is_closed().await);
        session.await.unwrap();
    }

    #[test]
    fn store_failures_follow_the_stores_classification() {
        let answers = [
            (E::Full("disk".into()), "OVERQUOTA"),
            (E::OverQuota("1 of 1 messages".into()), "OVERQUOTA"),
            (E::Closed, "UNAVAILABLE"),
            (E::Database("database is locked".into()), "UNAVAILABLE"),
            (E::Io(std::io::Error::other("EIO")), "UNAVAILABLE"),
            (E::NotFound("message".into()), "SERVERBUG"),
            (E::AlreadyExists("mailbox Foo".into()), "SERVERBUG"),
            (E::Invalid("uid".into()), "SERVERBUG"),
            (
                E::SchemaTooNew {
                    found: 9,
                    supported: 1,
                },
                "SERVERBUG",
            ),
        ];
        for (e, expected) in answers {
            let mut out = Vec::new();
            let code = store_failure_code(&e);
            encode::status(&mut out, None, Status::No, Some(&code), "x");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("* NO [{expected}] x\r\n"),
                "{e}"
            );
        }
    }
}
