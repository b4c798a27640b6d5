//! # store — Postern's mailbox store
//!
//! The only crate that speaks SQL. Everything the daemons keep lives here, in
//! one SQLite database (`<data dir>/postern.db`, WAL mode):
//!
//! - **accounts** (address, argon2id PHC password hash), **domains** (the local
//!   domains mail is accepted for) and **aliases** (address → account);
//! - **mailboxes** with UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ (from 1); every
//!   new account gets INBOX, Drafts, Sent, Trash, Junk and Archive, subscribed,
//!   the last five with their RFC 6154 special-use attribute;
//! - **messages**: UID (never reused), flags and keywords, modseq, internal
//!   date, and what parsing at delivery gives ([`MessageSummary`]), so a read
//!   never re-parses; expunges leave tombstones with their modseq;
//! - **blobs**: the raw message, byte for byte as received, stored once,
//!   addressed by its SHA-256 and reference-counted (a message sent to ten
//!   local users is one blob);
//! - **the queue**: a queued message holds its blob, envelope sender, auth
//!   user, body type and DSN request (RET, ENVID); each recipient has its
//!   own state ([`RecipientState`]), attempt count, next attempt time, last
//!   error and DSN request (NOTIFY, ORCPT); due work is found by an index
//!   on the next attempt time. Local delivery may put lines on top of the
//!   copy the mailboxes get ([`DeliveryOptions`]: smtpd's `Return-Path:`),
//!   one blob for all of them, parsed as delivered;
//! - **the change feed**: every change to a mailbox is a row ordered by
//!   modseq, which IMAP sessions follow; the feed and the expunge
//!   tombstones are pruned to a bound per mailbox, and the mailbox records
//!   the modseq up to which they were ([`PruneOptions`], `prune`).
//!
//! ## Concurrency and durability
//!
//! One writer connection lives on its own thread and batches concurrent write
//! requests into one transaction (group commit); a small pool of reader
//! connections serves reads on their own threads. Async callers talk to them
//! over channels: no SQLite call ever runs on a tokio worker thread.
//! The database runs with `synchronous = FULL`: when a write call returns
//! `Ok`, its transaction is committed and synced, so a crash (even `kill -9`)
//! afterwards cannot lose it. [`Store::enqueue`] returning `Ok` is what lets
//! smtpd answer `250`.
//!
//! Other processes on the same data dir (a separately started `smtpd`, say)
//! are noticed through `PRAGMA data_version`, polled cheaply; in-process
//! writes notify at once. Both arrive through [`Store::watch_changes`].
//!
//! ## Schema versions
//!
//! Migrations are embedded and versioned (`PRAGMA user_version`); opening a
//! database whose schema is newer than this code is refused with
//! [`StoreError::SchemaTooNew`].
//!
//! Callers see mail terms only, never SQL or SQLite types, so that another
//! backend (PostgreSQL) can follow behind the same API.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use arrivals::ArrivalList;
pub use feed::{ChangesSince, MailboxChanges};
pub use prune::{ExpungedSince, PruneOptions};

mod accounts;
mod arrivals;
mod blobs;
mod capture;
mod claims;
mod engine;
mod feed;
mod hashing;
mod leases;
mod mailbox;
mod parse;
mod prune;
mod queue;
mod received;
mod reparse;
mod schema;
#[cfg(test)]
mod tests;
mod wakeups;

/// Seconds since the Unix epoch, UTC.
pub type Timestamp = i64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub $inner);
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An account's row id.
    AccountId(i64)
);
id_type!(
    /// A mailbox's row id.
    MailboxId(i64)
);
id_type!(
    /// A queued message's id, as `postern queue` shows it.
    QueueId(i64)
);
id_type!(
    /// One recipient of a queued message.
    RecipientId(i64)
);
id_type!(
    /// An IMAP UID within one mailbox (never 0, never reused).
    Uid(u32)
);
id_type!(
    /// One recorded SMTP session.
    SmtpSessionId(i64)
);
id_type!(
    /// The envelope of one message received over SMTP.
    EnvelopeId(i64)
);
id_type!(
    /// An RFC 7162 modification sequence (never 0).
    ModSeq(u64)
);

/// A mailbox as a session holds it once it has selected it: its row id
/// and UIDVALIDITY. A mailbox deleted and created again under the same
/// name is another mailbox (a new UIDVALIDITY, strictly greater): calls
/// with the old reference fail with [`StoreError::NotFound`] and never
/// touch the new one (RFC 3501 2.3.1.1: a client must never act on a
/// mailbox with another UIDVALIDITY than the one it was told).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MailboxRef {
    pub id: MailboxId,
    pub uid_validity: u32,
}

/// How a call names a mailbox of an account: by name (`inbox` and
/// `inbox/...` in any case are `INBOX` and `INBOX/...`), or by the
/// reference a session took at SELECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxKey {
    Name(String),
    Ref(MailboxRef),
}

impl From<&str> for MailboxKey {
    fn from(name: &str) -> Self {
        MailboxKey::Name(name.to_owned())
    }
}

impl From<&String> for MailboxKey {
    fn from(name: &String) -> Self {
        MailboxKey::Name(name.clone())
    }
}

impl From<String> for MailboxKey {
    fn from(name: String) -> Self {
        MailboxKey::Name(name)
    }
}

impl From<MailboxRef> for MailboxKey {
    fn from(mailbox: MailboxRef) -> Self {
        MailboxKey::Ref(mailbox)
    }
}

impl From<&MailboxRef> for MailboxKey {
    fn from(mailbox: &MailboxRef) -> Self {
        MailboxKey::Ref(*mailbox)
    }
}

/// The name the store keeps for a mailbox name: `INBOX` in any case is
/// `INBOX`, also as the first level of a hierarchy (`Inbox/kid` is
/// `INBOX/kid`; RFC 3501 5.1); every other name is case-sensitive.
pub fn canonical_mailbox_name(name: &str) -> String {
    mailbox::canonical_name(name)
}

/// How an SMTP session began: enough to find it again and say who it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpSessionStart {
    /// The client's address and port, `203.0.113.7:51234`.
    pub client: String,
    /// The listener's role: `smtp`, `submission` or `submissions`.
    pub role: String,
    pub started_at: Timestamp,
}

/// One recipient of an envelope: the address as the client gave it
/// (without angle brackets) and the `RCPT TO` parameters as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeRecipient {
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub params: String,
}

/// The envelope of a message smtpd accepted, as it hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvelope {
    /// The session's row, once an earlier message of it made one.
    pub session: Option<SmtpSessionId>,
    pub session_start: SmtpSessionStart,
    /// `MAIL FROM`, without angle brackets; empty for `<>`.
    pub mail_from: String,
    /// The `MAIL FROM` parameters as written (`SIZE=120 BODY=8BITMIME`).
    pub mail_params: String,
    /// Every accepted `RCPT TO`, in order; Bcc recipients are here too.
    pub recipients: Vec<EnvelopeRecipient>,
    /// The name the client gave at HELO/EHLO.
    pub helo: Option<String>,
    /// TLS version and cipher suite, if the session was encrypted.
    pub tls: Option<String>,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
    /// What was accepted that a stricter server would refuse (bare line
    /// feeds made CRLF, …).
    pub warnings: Vec<String>,
}

/// The envelope of a message as stored ([`Store::envelope`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    pub id: EnvelopeId,
    /// The session it came in, while that is kept.
    pub session: Option<SmtpSessionId>,
    pub mail_from: String,
    pub mail_params: String,
    pub recipients: Vec<EnvelopeRecipient>,
    pub helo: Option<String>,
    pub client: Option<String>,
    pub tls: Option<String>,
    pub auth_user: Option<String>,
    pub received_at: Timestamp,
    pub warnings: Vec<String>,
}

/// A recorded SMTP session ([`Store::smtp_session`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmtpSessionRecord {
    pub id: SmtpSessionId,
    pub client: String,
    pub role: String,
    pub started_at: Timestamp,
    /// `None` while it is open (or if its process died).
    pub ended_at: Option<Timestamp>,
    /// Commands answered with a 4xx or 5xx reply.
    pub refusals: u32,
    /// Commands and replies, size-capped by smtpd, passwords and message
    /// contents left out.
    pub transcript: String,
}

/// Which messages an HTTP API caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrivalScope {
    /// Every account's.
    All,
    /// Those of the accounts in this domain (a sandbox).
    Domain(String),
    /// One account's.
    Account(AccountId),
    /// One mailbox's (webmail's folder view). The caller takes the
    /// reference from [`Store::mailboxes`] of the account it acts for:
    /// the scope itself checks no account.
    Mailbox(MailboxId),
}

/// One copy of a message in one mailbox, named by its arrival number, as
/// the HTTP API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ArrivedMessage {
    /// Only grows, never reused: the API's message id and cursor.
    pub arrival: u64,
    pub account: AccountId,
    /// The account's address.
    pub address: String,
    /// The account was made by capture mode.
    pub captured: bool,
    pub mailbox: MailboxRef,
    pub mailbox_name: String,
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: Vec<String>,
    pub size: u64,
    pub internal_date: Timestamp,
    /// How it arrived over SMTP, if it did.
    pub envelope: Option<EnvelopeId>,
    /// Without the MIME tree in lists; whole from [`Store::arrival`].
    pub summary: Arc<MessageSummary>,
}

/// A new sandbox ([`Store::create_sandbox`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sandbox {
    /// Mail for any address in it is visible only with the token.
    pub domain: String,
    /// Shown once; the store keeps only its hash.
    pub token: String,
}

/// Everything that can go wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// A [`MailboxRef`] no longer names a mailbox: it was deleted (and
    /// perhaps created again, with another UIDVALIDITY).
    #[error("mailbox {} with UIDVALIDITY {} no longer exists", .0.id, .0.uid_validity)]
    MailboxGone(MailboxRef),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid {0}")]
    Invalid(String),
    #[error("the database schema is version {found}, newer than this program understands ({supported}); upgrade Postern")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("the store is shut down")]
    Closed,
    #[error("database error: {0}")]
    Database(String),
    /// The disk is full, or the store reached `StoreOptions::max_size`:
    /// nothing was written, and it may work once space is made.
    #[error("insufficient storage: {0}")]
    Full(String),
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            StoreError::Full(e.to_string())
        } else {
            StoreError::Io(e)
        }
    }
}

impl StoreError {
    /// Whether the failure is a full disk or store (see [`StoreError::Full`]),
    /// which the protocols name as such (`452 4.3.1`, `NO [OVERQUOTA]`).
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A mail account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: AccountId,
    /// The account's address, lower-cased: `alice@localhost`.
    pub address: String,
    pub created_at: Timestamp,
}

/// The body type a client declared with `MAIL FROM ... BODY=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// A message handed to the queue by smtpd (or by a bounce generator).
#[derive(Debug, Clone)]
pub struct NewQueuedMessage {
    /// The message exactly as it is to be stored and delivered, including the
    /// `Received:` line smtpd prepended.
    pub raw: Vec<u8>,
    /// Envelope sender (`MAIL FROM`); empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipients in the order given (`RCPT TO`), as the client
    /// wrote them (without angle brackets).
    pub recipients: Vec<String>,
    /// The authenticated user who submitted it, if any.
    pub auth_user: Option<String>,
    pub body_type: BodyType,
    /// The client asked for SMTPUTF8.
    pub smtputf8: bool,
    /// When it was received.
    pub received_at: Timestamp,
}

/// RET (RFC 3461 4.3): how much of the message a failure report returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DsnReturn {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: its header section only.
    Headers,
}

/// NOTIFY (RFC 3461 4.1): which delivery status notifications the sender
/// wants for one recipient. All three false is `NOTIFY=NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// What a client asked of delivery status notifications for one recipient
/// (`RCPT TO` parameters, RFC 3461 4.1 and 4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientDsn {
    /// `None`: no NOTIFY given (the server's default: failures only).
    pub notify: Option<Notify>,
    /// ORCPT as the client wrote it: `addr-type;xtext`, e.g.
    /// `rfc822;bob+2Bx@example.org`.
    pub orcpt: Option<String>,
}

/// What a client asked of delivery status notifications for one message
/// (`MAIL FROM` parameters, RFC 3461 4.3 and 4.4, and those of each `RCPT
/// TO`), for [`Store::enqueue_with_dsn`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRequest {
    pub ret: Option<DsnReturn>,
    /// ENVID as the client wrote it (xtext).
    pub envid: Option<String>,
    /// One per recipient of the message, in the same order; empty when no
    /// recipient had any.
    pub recipients: Vec<RecipientDsn>,
}

/// Extras of [`Store::deliver_local_with`].
#[derive(Debug, Clone, Default)]
pub struct DeliveryOptions {
    /// Header lines put on top of the copy the mailboxes get (smtpd's
    /// `Return-Path:`, RFC 5321 4.4). The queued blob keeps its bytes; the
    /// delivered copy is one blob shared by every mailbox it goes to.
    pub prepend: Vec<u8>,
    /// A message (a success report) queued in the same transaction, if the
    /// call delivers to some recipient, so a crash can neither lose it nor
    /// send it twice.
    pub notice: Option<NewQueuedMessage>,
}

/// Where one recipient of a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    /// Not yet tried.
    Pending,
    /// Tried and failed temporarily; will be tried again at `next_attempt_at`.
    Deferred,
    /// Done: in the mailbox, or accepted by the next hop.
    Delivered,
    /// Failed permanently (or expired); a bounce has been or will be made.
    Bounced,
}

/// One recipient of a queued message, as the queue manager and `postern
/// queue` see it.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedRecipient {
    pub id: RecipientId,
    pub address: String,
    pub state: RecipientState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    /// A queue manager is delivering it until then (0 = nobody).
    pub leased_until: Timestamp,
    /// What the client asked of delivery status notifications.
    pub dsn: RecipientDsn,
}

/// A queued message with its recipients. From [`Store::claim_due`] it holds
/// only the recipients that were due (and are now leased to the claimer);
/// from [`Store::queue`] it holds them all.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedMessage {
    pub id: QueueId,
    pub sender: String,
    pub auth_user: Option<String>,
    pub body_type: BodyType,
    pub smtputf8: bool,
    pub size: u64,
    pub received_at: Timestamp,
    /// `MAIL FROM ... RET=` (RFC 3461 4.3), if given.
    pub dsn_ret: Option<DsnReturn>,
    /// `MAIL FROM ... ENVID=` as the client wrote it (xtext), if given.
    pub dsn_envid: Option<String>,
    pub recipients: Vec<QueuedRecipient>,
}

/// One local delivery to make: the queued recipient, and where it goes.
#[derive(Debug, Clone)]
pub struct LocalDelivery {
    pub recipient: RecipientId,
    pub account: AccountId,
    /// Mailbox name; `INBOX` for mail from smtpd.
    pub mailbox: String,
}

/// A mailbox as listed.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxInfo {
    pub id: MailboxId,
    /// Full name with `/` as the hierarchy delimiter; `INBOX` is always upper
    /// case.
    pub name: String,
    /// RFC 6154 attribute, such as `\Sent`, if any.
    pub special_use: Option<String>,
    pub subscribed: bool,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    pub messages: u32,
    pub unseen: u32,
    /// Messages no IMAP session has seen as `\Recent` yet.
    pub recent: u32,
}

/// A light view of a mailbox: what POP3's STAT/LIST/UIDL and IMAP's
/// SELECT need, without the parsed summaries.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxIndex {
    pub mailbox: MailboxId,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    /// The first UID no IMAP session has claimed as `\Recent` yet.
    pub recent_uid: Uid,
    /// In UID order.
    pub messages: Vec<IndexEntry>,
    /// The messages' UIDs, in order, shared: sessions that select an
    /// unchanged mailbox hold this one list rather than a copy each.
    #[serde(skip)]
    pub uids: Arc<Vec<Uid>>,
    /// Every keyword (flag without `\`) set on some message, sorted: what
    /// IMAP's `FLAGS` response lists, kept with the
    /// index so that SELECT does not walk every message for it.
    pub keywords: Vec<String>,
    /// Position in `messages` of the first message without `\Seen`.
    pub first_unseen: Option<usize>,
}

impl MailboxIndex {
    /// The reference a session that selects this mailbox keeps.
    pub fn mailbox_ref(&self) -> MailboxRef {
        MailboxRef {
            id: self.mailbox,
            uid_validity: self.uid_validity,
        }
    }

    /// Builds an index from its parts, working out the keywords and the
    /// first unseen message.
    pub fn new(
        mailbox: MailboxId,
        uid_validity: u32,
        uid_next: Uid,
        highest_modseq: ModSeq,
        recent_uid: Uid,
        messages: Vec<IndexEntry>,
    ) -> MailboxIndex {
        let keywords: Vec<String> = messages
            .iter()
            .flat_map(|m| m.flags.iter())
            .filter(|f| !f.starts_with('\\'))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        let first_unseen = messages
            .iter()
            .position(|m| !m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")));
        MailboxIndex {
            mailbox,
            uid_validity,
            uid_next,
            highest_modseq,
            recent_uid,
            uids: Arc::new(messages.iter().map(|m| m.uid).collect()),
            messages,
            keywords,
            first_unseen,
        }
    }
}

/// One message in a [`MailboxIndex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    pub uid: Uid,
    pub size: u64,
    pub modseq: ModSeq,
    /// As in [`MessageInfo::flags`].
    pub flags: Vec<String>,
}

/// How [`Store::store_flags`] changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Add,
    Remove,
    Replace,
}

/// One message in a mailbox, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct MessageInfo {
    pub uid: Uid,
    pub modseq: ModSeq,
    /// System flags (`\Seen`, …) and keywords, as IMAP writes them.
    pub flags: Vec<String>,
    pub internal_date: Timestamp,
    pub size: u64,
    pub summary: Arc<MessageSummary>,
}

/// What parsing a message once at delivery gives, kept so that reads never
/// re-parse. Header values are decoded to UTF-8 where they carry RFC 2047
/// words; `raw_*` fields keep the bytes as they appear.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// The `Date:` header, as seconds since the epoch, if it parsed.
    pub date: Option<Timestamp>,
    /// The zone the `Date:` header was written in, in minutes east of UTC
    /// (0 for `-0000` and the zones RFC 5322 4.3 says to read so); SENTON
    /// and its kin compare the day in this zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_zone: Option<i32>,
    pub subject: Option<String>,
    pub from: Vec<EmailAddress>,
    pub sender: Vec<EmailAddress>,
    pub reply_to: Vec<EmailAddress>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub bcc: Vec<EmailAddress>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
    /// Byte length of the header section including the blank line that ends
    /// it (offset of the body in the raw message).
    pub header_len: u64,
    /// The envelope sender the delivering server recorded in the first
    /// `Return-Path:` field (RFC 5321 4.4), without angle brackets; empty
    /// for the null sender `<>`; `None` without such a field.
    #[serde(default)]
    pub return_path: Option<String>,
    /// Fields IMAP's ENVELOPE sends as written.
    #[serde(default)]
    pub raw: RawFields,
    /// The address fields as written (display names undecoded), which
    /// IMAP's ENVELOPE sends; `None` in summaries made before they were
    /// kept. The decoded lists above serve search and display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Box<AddressFields>>,
    /// The start of the message's text (decoded, white space collapsed, at
    /// most [`PREVIEW_CHARS`] characters): what a message list shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// How many attachments the message has (parts a mail reader offers
    /// to save rather than shows as its text).
    #[serde(default)]
    pub attachments: u32,
    /// The MIME tree with byte offsets into the raw message.
    pub body: MimePart,
}

/// The longest [`MessageSummary::preview`], in characters.
pub const PREVIEW_CHARS: usize = 200;

/// Header fields kept byte for byte as they appear (unfolded and trimmed),
/// which IMAP's ENVELOPE sends undecoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawFields {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

/// An address as parsed from a header.
///
/// A named group (`Friends: a@x, b@y;`) appears in a list as a start marker
/// (`name` = the group name, `address` = `None`), its members, and an end
/// marker (both `None`), as IMAP's ENVELOPE writes groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress {
    pub name: Option<String>,
    /// `local@domain`; for a group, the group name with `None` in `address`.
    pub address: Option<String>,
}

/// The address fields of a header, each parsed from the field as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressFields {
    pub from: Vec<HeaderAddress>,
    pub sender: Vec<HeaderAddress>,
    pub reply_to: Vec<HeaderAddress>,
    pub to: Vec<HeaderAddress>,
    pub cc: Vec<HeaderAddress>,
    pub bcc: Vec<HeaderAddress>,
}

/// One item of an address list as written (RFC 5322 3.4): a mailbox, or
/// the start or end of a group around mailboxes. Nothing is decoded: a
/// display name keeps its encoded-words and raw bytes, without the quotes
/// of a quoted string and with runs of blanks made one space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderAddress {
    /// `name <route:local_part@domain>`; a piece the field lacks (`bob`
    /// has no domain, `<>` has neither) is `None`.
    Mailbox {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<RawText>,
        /// An obsolete source route, `@a,@b`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<RawText>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_part: Option<RawText>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<RawText>,
    },
    /// `name:` opening a group.
    GroupStart { name: RawText },
    /// The `;` closing it.
    GroupEnd,
}

/// Header text byte for byte as the message has it: usually ASCII or
/// UTF-8, but whatever the sender wrote, so IMAP can send it unchanged.
/// Cached as a JSON string when it is UTF-8 and as an array of bytes
/// otherwise; a plain string from an older summary decodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RawText(pub Vec<u8>);

impl RawText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for RawText {
    fn from(s: &str) -> Self {
        RawText(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for RawText {
    fn from(b: &[u8]) -> Self {
        RawText(b.to_vec())
    }
}

impl Serialize for RawText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.serialize_bytes(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<RawText, E> {
                Ok(RawText(v.as_bytes().to_vec()))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<RawText, E> {
                Ok(RawText(v.to_vec()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<RawText, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(RawText(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// One MIME part, enough to answer IMAP's BODYSTRUCTURE and `BODY[section]`
/// from the raw bytes without parsing again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MimePart {
    /// Lower-case type and subtype: `text`, `plain`.
    pub content_type: String,
    pub content_subtype: String,
    /// Content-Type parameters in order, names lower-cased, values as
    /// written (RFC 2231 sections joined, never decoded).
    pub params: Vec<(String, RawText)>,
    pub content_id: Option<String>,
    /// As written (encoded-words stay encoded).
    pub content_description: Option<RawText>,
    /// Content-Transfer-Encoding as written (lower-cased), `7bit` if absent.
    pub encoding: String,
    pub disposition: Option<String>,
    pub disposition_params: Vec<(String, RawText)>,
    pub language: Vec<String>,
    pub location: Option<String>,
    /// Content-MD5 as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Offsets into the raw message: the part's header starts at
    /// `header_offset`, its body spans `body_offset..body_end`.
    pub header_offset: u64,
    pub body_offset: u64,
    pub body_end: u64,
    /// Where the header ends when that is before `body_offset`: a header
    /// that runs into a boundary line leaves the line break before it to
    /// the boundary (RFC 2046 5.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_end: Option<u64>,
    /// Number of lines in the body (for text/* and message/rfc822).
    pub lines: u64,
    /// Children of a multipart/* (or the one message of message/rfc822).
    pub parts: Vec<MimePart>,
    /// For message/rfc822: the summary of the enclosed message (its
    /// envelope). Its `body` is left empty: the enclosed tree is
    /// `parts[0]`, kept once.
    pub message: Option<Box<MessageSummary>>,
}

impl MimePart {
    /// Where the part's header ends.
    pub fn header_end(&self) -> u64 {
        self.header_end.unwrap_or(self.body_offset)
    }
}

/// Tuning for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Reader connections (default 4).
    pub readers: usize,
    /// How often to look for other processes' commits (default 250 ms).
    pub poll_interval: Duration,
    /// Most write requests to batch into one transaction (default 256).
    pub max_batch: usize,
    /// How much of the change feed and tombstones is kept.
    pub prune: PruneOptions,
    /// The most bytes the database may grow to (0: as much as the disk
    /// holds). A write that would pass it fails with [`StoreError::Full`],
    /// as one on a full disk does.
    pub max_size: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            readers: 4,
            poll_interval: Duration::from_millis(250),
            max_batch: 256,
            prune: PruneOptions::default(),
            max_size: 0,
        }
    }
}

/// A handle on the store. Cheap to clone; all clones share the writer thread
/// and reader pool, which stop when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<engine::Inner>,
    /// Argon2id hashing and checks, one per core at a time
    /// ([`hashing`]).
    passwords: Arc<hashing::PasswordWorkers>,
    /// Recently read mailbox indexes, reused while the mailbox's stamp
    /// ([`mailbox::index_stamp`], read from the database each time, so
    /// other processes' changes count) is unchanged.
    index_cache: Arc<IndexCache>,
    /// Envelope fields decoded once per blob, for SEARCH.
    envelope_cache: Arc<mailbox::EnvelopeCache>,
    /// Scopes' arrival lists, kept until the next commit
    /// ([`Store::arrival_list`]).
    arrival_lists: Arc<arrivals::ListCache>,
    /// This store as the owner of its queue claims ([`claims`]).
    claims: Arc<ClaimState>,
}

/// The data dir, and this store's claim owner once it first claims.
struct ClaimState {
    data_dir: std::path::PathBuf,
    owner: std::sync::OnceLock<Option<claims::ClaimOwner>>,
}

impl ClaimState {
    fn owner_id(&self) -> Option<String> {
        self.owner
            .get_or_init(|| match claims::become_owner(&self.data_dir) {
                Ok(owner) => Some(owner),
                Err(e) => {
                    tracing::warn!(error = %e, "store: no claim lock; claims left by a dead process free only when their lease ends");
                    None
                }
            })
            .as_ref()
            .map(|o| o.id.clone())
    }
}

type IndexCache = std::sync::Mutex<std::collections::HashMap<MailboxId, Arc<MailboxIndex>>>;

fn lock(
    cache: &IndexCache,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<MailboxId, Arc<MailboxIndex>>> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Mailbox indexes kept by [`Store::mailbox_index`].
const INDEX_CACHE_ENTRIES: usize = 32;

fn now() -> Timestamp {
    chrono::Utc::now().timestamp()
}

/// Runs CPU-heavy work (argon2, parsing, hashing) off the tokio workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Database(format!("internal error: {e}")))
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`, running any
    /// pending migrations.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Store> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Store {
            inner: Arc::new(engine::Inner::open(data_dir, &options)?),
            passwords: Arc::new(hashing::PasswordWorkers::start(cores)?),
            index_cache: Default::default(),
            envelope_cache: Default::default(),
            arrival_lists: Default::default(),
            claims: Arc::new(ClaimState {
                data_dir: data_dir.to_owned(),
                owner: Default::default(),
            }),
        })
    }

    // ---- accounts, domains, aliases ----

    /// Creates an account with an argon2id hash of `password` and its six
    /// default mailboxes; adds the address's domain to the local domains.
    /// The address is lower-cased. `AlreadyExists` if taken.
    pub async fn add_account(&self, address: &str, password: &str) -> Result<Account> {
        let address = accounts::normalize_address(address)?;
        let password = password.to_owned();
        let hash = self
            .passwords
            .run(move || accounts::hash_password(&password))
            .await??;
        self.inner
            .write(false, move |conn| {
                accounts::insert_account(conn, &address, &hash, now())
            })
            .await
    }

    /// `NotFound` if there is no such account.
    pub async fn set_password(&self, address: &str, password: &str) -> Result<()> {
        let address = accounts::normalize_address(address)
            .map_err(|_| StoreError::NotFound(format!("account {address}")))?;
        let password = password.to_owned();
        let hash = self
            .passwords
            .run(move || accounts::hash_password(&password))
            .await??;
        self.inner
            .write(false, move |conn| {
                accounts::update_password(conn, &address, &hash)
            })
            .await
    }

    /// Deletes the account, its mailboxes, messages and aliases (blob
    /// references released). `NotFound` if there is no such account.
    pub async fn delete_account(&self, address: &str) -> Result<()> {
        let address = address.to_lowercase();
        self.inner
            .write(true, move |conn| accounts::delete_account(conn, &address))
            .await
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        self.inner.read(accounts::list_accounts).await
    }

    /// The account with this exact address (case-insensitive), if any.
    pub async fn account(&self, address: &str) -> Result<Option<Account>> {
        let address = address.to_lowercase();
        self.inner
            .read(move |conn| accounts::find_account(conn, &address))
            .await
    }

    /// Checks a password (argon2 runs on a blocking thread). `Ok(None)` for
    /// a wrong password or an unknown account; both take about the same time.
    pub async fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let address = address.to_lowercase();
        let found = self
            .inner
            .read(move |conn| accounts::find_credentials(conn, &address))
            .await?;
        let password = password.to_owned();
        self.passwords
            .run(move || match found {
                Some((account, hash)) => {
                    accounts::verify_password(&password, Some(&hash)).then_some(account)
                }
                None => {
                    accounts::verify_password(&password, None);
                    None
                }
            })
            .await
    }

    /// Adds a local domain (lower-cased). Adding an existing one is `Ok`.
    pub async fn add_domain(&self, domain: &str) -> Result<()> {
        let domain = accounts::normalize_domain(domain)?;
        self.inner
            .write(false, move |conn| accounts::add_domain(conn, &domain))
            .await
    }

    pub async fn domains(&self) -> Result<Vec<String>> {
        self.inner.read(accounts::list_domains).await
    }

    /// Case-insensitive.
    pub async fn is_local_domain(&self, domain: &str) -> Result<bool> {
        let domain = domain.to_lowercase();
        self.inner
            .read(move |conn| accounts::is_local_domain(conn, &domain))
            .await
    }

    /// Makes `alias` deliver to the account `target`. `NotFound` if the
    /// target is not an account; `AlreadyExists` if the alias is an account
    /// or alias already. The alias's domain becomes a local domain.
    pub async fn add_alias(&self, alias: &str, target: &str) -> Result<()> {
        let alias = accounts::normalize_address(alias)?;
        let target = target.to_lowercase();
        self.inner
            .write(false, move |conn| {
                accounts::add_alias(conn, &alias, &target)
            })
            .await
    }

    /// The account that mail for `address` goes to: the account itself or
    /// the target of an alias; case-insensitive. No sub-addressing here
    /// (`+tag` is smtpd's policy), and no postmaster fallback (see
    /// [`Store::postmaster_account`]).
    pub async fn resolve_recipient(&self, address: &str) -> Result<Option<Account>> {
        let address = address.to_lowercase();
        self.inner
            .read(move |conn| accounts::resolve(conn, &address))
            .await
    }

    /// Where `postmaster@domain` goes when it is neither an account nor an
    /// alias: the domain's oldest account, else the oldest account of any
    /// domain (RFC 5321 4.5.1: every local domain takes postmaster mail).
    /// `None` only when there is no account at all.
    pub async fn postmaster_account(&self, domain: &str) -> Result<Option<Account>> {
        let domain = domain.to_lowercase();
        self.inner
            .read(move |conn| accounts::postmaster_fallback(conn, &domain))
            .await
    }

    // ---- the queue ----

    /// Stores the blob (or takes another reference to an identical one) and
    /// the queue entry with all recipients `Pending`, due now. Returns only
    /// once committed and synced.
    pub async fn enqueue(&self, message: NewQueuedMessage) -> Result<QueueId> {
        self.enqueue_with_dsn(message, DsnRequest::default()).await
    }

    /// [`Store::enqueue`], keeping what the client asked of delivery
    /// status notifications (RFC 3461) with the entry and its recipients.
    /// `Invalid` unless `dsn.recipients` is empty or has one entry per
    /// recipient.
    pub async fn enqueue_with_dsn(
        &self,
        message: NewQueuedMessage,
        dsn: DsnRequest,
    ) -> Result<QueueId> {
        self.enqueue_inner(message, dsn, None)
            .await
            .map(|(queue, _)| queue)
    }

    /// [`Store::enqueue_with_dsn`] for a message received over SMTP: its
    /// envelope is kept too (and the session's row made, if it has none
    /// yet), in the same transaction; every delivered copy will point at
    /// it. Returns the queue id and the session's id.
    pub async fn enqueue_received(
        &self,
        message: NewQueuedMessage,
        dsn: DsnRequest,
        envelope: NewEnvelope,
    ) -> Result<(QueueId, SmtpSessionId)> {
        let (queue, session) = self.enqueue_inner(message, dsn, Some(envelope)).await?;
        session
            .map(|s| (queue, s))
            .ok_or_else(|| StoreError::Database("envelope not recorded".into()))
    }

    async fn enqueue_inner(
        &self,
        message: NewQueuedMessage,
        dsn: DsnRequest,
        envelope: Option<NewEnvelope>,
    ) -> Result<(QueueId, Option<SmtpSessionId>)> {
        if message.recipients.is_empty() {
            return Err(StoreError::Invalid("recipients".into()));
        }
        if !dsn.recipients.is_empty() && dsn.recipients.len() != message.recipients.len() {
            return Err(StoreError::Invalid(
                "DSN parameters of the recipients".into(),
            ));
        }
        // Hashing a big message takes a while; keep it off the workers.
        let (hash, message) = if message.raw.len() > 1 << 20 {
            blocking(move || (blobs::hash(&message.raw), message)).await?
        } else {
            (blobs::hash(&message.raw), message)
        };
        self.inner
            .write(false, move |conn| {
                let recorded = match &envelope {
                    Some(e) => Some(received::insert_envelope(conn, e, message.received_at)?),
                    None => None,
                };
                let queue =
                    queue::enqueue(conn, &hash, &message, &dsn, recorded.map(|r| r.0), now())?;
                Ok((queue, recorded.map(|r| r.1)))
            })
            .await
    }

    // ---- received mail as data ----

    /// Stores a message received in capture mode, in one transaction: the
    /// blob (parsed here, off the writer), its envelope, and a copy in the
    /// INBOX of each recipient's account, made as a captured account the
    /// first time mail arrives for an address that has none. Nothing is
    /// queued. Returns the copies' arrival numbers and the session's id.
    pub async fn capture(
        &self,
        message: NewQueuedMessage,
        envelope: NewEnvelope,
    ) -> Result<(Vec<u64>, SmtpSessionId)> {
        if message.recipients.is_empty() {
            return Err(StoreError::Invalid("recipients".into()));
        }
        let (hash, json, message) = blocking(move || {
            let json = serde_json::to_string(&parse::summarize(&message.raw))
                .map_err(|e| StoreError::Database(format!("summary encoding: {e}")));
            (blobs::hash(&message.raw), json, message)
        })
        .await?;
        let json = json?;
        let captured = self
            .inner
            .write(true, move |conn| {
                capture::capture(
                    conn,
                    &message.raw,
                    &hash,
                    &json,
                    &message.recipients,
                    &envelope,
                    message.received_at,
                )
            })
            .await?;
        let arrivals = captured
            .arrivals
            .into_iter()
            .filter_map(|a| u64::try_from(a).ok())
            .collect();
        Ok((arrivals, captured.session))
    }

    /// Records the end of an SMTP session: when, how many commands were
    /// refused, and its transcript. A session without a row yet (it gave no
    /// message) gets one. Returns its id.
    pub async fn end_smtp_session(
        &self,
        session: Option<SmtpSessionId>,
        start: SmtpSessionStart,
        ended_at: Timestamp,
        refusals: u32,
        transcript: String,
    ) -> Result<SmtpSessionId> {
        self.inner
            .write(false, move |conn| {
                received::end_session(conn, session, &start, ended_at, refusals, &transcript)
            })
            .await
    }

    /// One envelope, if it is kept.
    pub async fn envelope(&self, id: EnvelopeId) -> Result<Option<Envelope>> {
        self.inner
            .read(move |conn| received::envelope(conn, id))
            .await
    }

    /// One recorded SMTP session, if it is kept.
    pub async fn smtp_session(&self, id: SmtpSessionId) -> Result<Option<SmtpSessionRecord>> {
        self.inner
            .read(move |conn| received::session(conn, id))
            .await
    }

    /// Up to `limit` recorded SMTP sessions older than `before` (from the
    /// newest if `None`), newest first.
    pub async fn smtp_sessions(
        &self,
        before: Option<SmtpSessionId>,
        limit: usize,
    ) -> Result<Vec<SmtpSessionRecord>> {
        self.inner
            .read(move |conn| received::sessions(conn, before, limit))
            .await
    }

    /// The envelopes of the messages one session gave, in order.
    pub async fn session_envelopes(&self, id: SmtpSessionId) -> Result<Vec<Envelope>> {
        self.inner
            .read(move |conn| received::session_envelopes(conn, id))
            .await
    }

    /// Keeps the newest `keep` SMTP sessions and drops older ones, with
    /// the envelopes nothing points at any more. Returns how many went.
    pub async fn prune_smtp_sessions(&self, keep: usize) -> Result<usize> {
        self.inner
            .write(false, move |conn| received::prune(conn, keep))
            .await
    }

    // ---- capture mode and sandboxes ----

    /// Sets the password every captured account logs in with (IMAP, POP3):
    /// hashed once here and given to every captured account, now and later.
    pub async fn set_capture_password(&self, password: &str) -> Result<()> {
        let password = password.to_owned();
        let hash = self
            .passwords
            .run(move || accounts::hash_password(&password))
            .await??;
        self.inner
            .write(false, move |conn| capture::set_password(conn, &hash))
            .await
    }

    /// Makes a sandbox: a fresh random domain under `.sandbox.test` (RFC
    /// 2606's reserved `.test`) and a token that alone sees its mail.
    pub async fn create_sandbox(&self) -> Result<Sandbox> {
        let mut bytes = [0u8; 26];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::Database(format!("no randomness: {e}")))?;
        let domain = format!("{}.sandbox.test", hex::encode(&bytes[..6]));
        let token = hex::encode(&bytes[6..]);
        let token_hash = blobs::hash(token.as_bytes());
        let stored = domain.clone();
        self.inner
            .write(false, move |conn| {
                capture::create_sandbox(conn, &stored, &token_hash, now())
            })
            .await?;
        Ok(Sandbox { domain, token })
    }

    /// The sandbox domain a token opens, if any.
    pub async fn sandbox_for_token(&self, token: &str) -> Result<Option<String>> {
        let token_hash = blobs::hash(token.as_bytes());
        self.inner
            .read(move |conn| capture::sandbox_for(conn, &token_hash))
            .await
    }

    /// Every sandbox domain with its creation time, oldest first.
    pub async fn sandboxes(&self) -> Result<Vec<(String, Timestamp)>> {
        self.inner.read(capture::sandboxes).await
    }

    /// Deletes a sandbox and every account in its domain, with their mail.
    /// Returns whether there was such a sandbox.
    pub async fn delete_sandbox(&self, domain: &str) -> Result<bool> {
        let domain = domain.to_lowercase();
        self.inner
            .write(true, move |conn| capture::delete_sandbox(conn, &domain))
            .await
    }

    // ---- messages by arrival (the HTTP API) ----

    /// The messages in `scope` that arrived after `after`, oldest first, at
    /// most `limit`: what a waiter asks for. Summaries come without their
    /// MIME tree.
    pub async fn arrivals_after(
        &self,
        scope: ArrivalScope,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ArrivedMessage>> {
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| arrivals::list(conn, &cache, &scope, after, None, false, limit))
            .await
    }

    /// The messages in `scope` that arrived before `before` (from the
    /// newest if `None`), newest first, at most `limit`: a page of a list.
    pub async fn arrivals_newest(
        &self,
        scope: ArrivalScope,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ArrivedMessage>> {
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| arrivals::list(conn, &cache, &scope, 0, before, true, limit))
            .await
    }

    /// One page of `scope` newest first: the `limit` messages after the
    /// first `skip` of those that arrived before `before` (from the newest
    /// if `None`), with the scope's counts, read in one snapshot. It reads
    /// `skip + limit` summaries, not the scope's: for the first pages.
    pub async fn arrival_page(
        &self,
        scope: ArrivalScope,
        before: Option<u64>,
        skip: usize,
        limit: usize,
    ) -> Result<ArrivalList> {
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| {
                let (total, unseen) = arrivals::count(conn, &scope)?;
                let mut messages = arrivals::list(
                    conn,
                    &cache,
                    &scope,
                    0,
                    before,
                    true,
                    skip.saturating_add(limit),
                )?;
                messages.drain(..skip.min(messages.len()));
                Ok(ArrivalList {
                    messages,
                    total,
                    unseen,
                })
            })
            .await
    }

    /// How many messages `scope` holds, and how many are not `\Seen`.
    pub async fn arrival_counts(&self, scope: ArrivalScope) -> Result<(u64, u64)> {
        self.inner
            .read(move |conn| arrivals::count(conn, &scope))
            .await
    }

    /// One message by arrival number, with its whole summary, if it is in
    /// `scope`.
    pub async fn arrival(
        &self,
        scope: ArrivalScope,
        arrival: u64,
    ) -> Result<Option<ArrivedMessage>> {
        self.inner
            .read(move |conn| arrivals::find(conn, &scope, arrival))
            .await
    }

    /// The raw bytes of one message by arrival number, if it is in `scope`.
    pub async fn arrival_raw(&self, scope: ArrivalScope, arrival: u64) -> Result<Option<Vec<u8>>> {
        self.inner
            .read(move |conn| arrivals::raw(conn, &scope, arrival))
            .await
    }

    /// The messages of `scope`, newest first (its newest `max` if it holds
    /// more), with how many it holds and how many are unseen: one snapshot
    /// for a list page, its counts, or a search. Kept and shared until
    /// anything is committed to the database, by this process or another,
    /// so repeated lists and searches over an unchanged store cost no
    /// reading; summaries come without their MIME tree.
    pub async fn arrival_list(&self, scope: ArrivalScope, max: usize) -> Result<Arc<ArrivalList>> {
        let cache = self.envelope_cache.clone();
        let lists = self.arrival_lists.clone();
        self.inner
            .read(move |conn| arrivals::snapshot(conn, &cache, &lists, &scope, max))
            .await
    }

    /// The raw bytes of the messages these arrival numbers name within
    /// `scope`, in the order asked, read in one go; those not in scope or
    /// gone are left out.
    pub async fn arrivals_raw(
        &self,
        scope: ArrivalScope,
        arrivals: &[u64],
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let arrivals = arrivals.to_vec();
        self.inner
            .read(move |conn| arrivals::raw_many(conn, &scope, &arrivals))
            .await
    }

    /// The last arrival number given (0 before any message): a cursor for
    /// "whatever arrives from now on".
    pub async fn last_arrival(&self) -> Result<u64> {
        self.inner.read(arrivals::last).await
    }

    /// Expunges the messages these arrival numbers name within `scope`,
    /// as an IMAP EXPUNGE would (sessions see it). Returns how many went.
    pub async fn delete_arrivals(&self, scope: ArrivalScope, arrivals: &[u64]) -> Result<usize> {
        let arrivals = arrivals.to_vec();
        self.inner
            .write(true, move |conn| arrivals::delete(conn, &scope, &arrivals))
            .await
    }

    /// Changes flags (as [`Store::store_flags`] takes them) of the messages
    /// these arrival numbers name within `scope`. Returns how many changed.
    pub async fn set_arrival_flags(
        &self,
        scope: ArrivalScope,
        arrivals: &[u64],
        change: FlagChange,
        flags: &[String],
    ) -> Result<usize> {
        let flags = mailbox::parse_flags(flags)?;
        let arrivals = arrivals.to_vec();
        self.inner
            .write(true, move |conn| {
                arrivals::set_flags(conn, &scope, &arrivals, change, &flags)
            })
            .await
    }

    /// Claims up to `limit` messages that have recipients in `Pending` or
    /// `Deferred` with `next_attempt_at <= now` and no lease in force. The
    /// claimed recipients get `leased_until = now + lease` so that no other
    /// claimer (in this or another process) takes them before the lease
    /// ends, whatever `retry` or `flush` do meanwhile; a claimer that dies
    /// simply lets the lease run out. Only the claimed recipients are in the
    /// returned messages. Oldest messages first.
    pub async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>> {
        // Whole seconds, rounded up: a lease never ends early.
        let secs = lease
            .as_secs()
            .saturating_add(u64::from(lease.subsec_nanos() > 0));
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let owner = self.claims.owner_id();
        self.inner
            .write(false, move |conn| {
                queue::claim_due(conn, now, secs, limit, owner.as_deref())
            })
            .await
    }

    /// Releases the queue claims of processes that are gone (`kill -9`
    /// included): their lock in the data dir is no longer held, so none
    /// of their deliveries is running, and their recipients are due again
    /// now rather than when the lease would end. Claims of live processes
    /// are left alone. How many recipients were released.
    pub async fn release_dead_claims(&self) -> Result<usize> {
        let own = self
            .claims
            .owner
            .get()
            .and_then(|o| o.as_ref())
            .map(|o| o.id.clone());
        let data_dir = self.claims.data_dir.clone();
        let dead = blocking(move || claims::dead_owners(&data_dir, own.as_deref())).await?;
        let mut released = 0;
        for owner in dead {
            let id = owner.id.clone();
            released += self
                .inner
                .write(false, move |conn| {
                    queue::release_claims_of(conn, &id, now())
                })
                .await?;
            owner.forget();
        }
        Ok(released)
    }

    /// The raw bytes of a queued message.
    pub async fn queued_message_raw(&self, id: QueueId) -> Result<Arc<Vec<u8>>> {
        self.inner
            .read(move |conn| queue::raw(conn, id).map(Arc::new))
            .await
    }

    /// In one transaction: parses the message once (off the writer thread,
    /// reusing an earlier parse of the same blob), appends it to each
    /// delivery's mailbox with a new UID and modseq (flags empty, internal
    /// date = the message's `received_at`; deliveries that name the same
    /// account and mailbox get one copy), writes the change feed, marks
    /// those recipients `Delivered`, and removes the queue entry (releasing
    /// its blob reference) once no recipient is `Pending` or `Deferred`.
    pub async fn deliver_local(
        &self,
        queue: QueueId,
        deliveries: Vec<LocalDelivery>,
    ) -> Result<()> {
        self.deliver_local_with(queue, deliveries, DeliveryOptions::default())
            .await
    }

    /// [`Store::deliver_local`] with header lines on top of the delivered
    /// copy and a notice queued in the same transaction
    /// ([`DeliveryOptions`]). The copy with its new lines is parsed (once
    /// per distinct copy), so the summary's offsets are those of the bytes
    /// the mailboxes serve, and its size is what they report.
    pub async fn deliver_local_with(
        &self,
        queue: QueueId,
        deliveries: Vec<LocalDelivery>,
        options: DeliveryOptions,
    ) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let DeliveryOptions { prepend, notice } = options;
        let notice = match notice {
            Some(message) => Some((blobs::hash(&message.raw), message)),
            None => None,
        };
        // Parsed on the reader thread that read the bytes (a blocking
        // thread already), so a delivery is one read and one write.
        let (copy, summary_json) = self
            .inner
            .read(move |conn| {
                let encode = |raw: &[u8]| {
                    serde_json::to_string(&parse::summarize(raw))
                        .map_err(|e| StoreError::Database(format!("summary encoding: {e}")))
                };
                if prepend.is_empty() {
                    return match queue::blob_for_delivery(conn, queue)? {
                        queue::QueuedBlob::Parsed => Ok((None, None)),
                        queue::QueuedBlob::Unparsed(raw) => Ok((None, Some(encode(&raw)?))),
                    };
                }
                let mut copy = prepend;
                copy.extend_from_slice(&queue::raw(conn, queue)?);
                let hash = blobs::hash(&copy);
                let json = if blobs::has_summary(conn, &hash)? {
                    None
                } else {
                    Some(encode(&copy)?)
                };
                Ok((Some(queue::Copy { hash, bytes: copy }), json))
            })
            .await?;
        self.inner
            .write(true, move |conn| {
                queue::deliver_local(
                    conn,
                    queue,
                    &deliveries,
                    copy.as_ref(),
                    summary_json.as_deref(),
                    notice.as_ref().map(|(hash, m)| (hash.as_str(), m)),
                    now(),
                )
                .map(|_| ())
            })
            .await
    }

    /// Marks recipients `Delivered` without a local mailbox (accepted by a
    /// remote server); removes the entry when nothing is left to do.
    pub async fn mark_delivered(&self, queue: QueueId, recipients: &[RecipientId]) -> Result<()> {
        self.mark_delivered_with_notice(queue, recipients, None)
            .await
    }

    /// [`Store::mark_delivered`], and `notice` (a success report) queued in
    /// the same transaction if some recipient was still open.
    pub async fn mark_delivered_with_notice(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        notice: Option<NewQueuedMessage>,
    ) -> Result<()> {
        let notice = notice.map(|message| (blobs::hash(&message.raw), message));
        let recipients = recipients.to_vec();
        self.inner
            .write(false, move |conn| {
                queue::deliver_remote(
                    conn,
                    queue,
                    &recipients,
                    notice.as_ref().map(|(hash, m)| (hash.as_str(), m)),
                    now(),
                )
            })
            .await
    }

    /// Marks recipients `Deferred`: attempts + 1, `last_error`, and the next
    /// attempt time.
    pub async fn defer(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        error: &str,
        next_attempt_at: Timestamp,
    ) -> Result<()> {
        let recipients = recipients.to_vec();
        let error = error.to_owned();
        self.inner
            .write(false, move |conn| {
                let outcome = queue::Outcome::Deferred {
                    error: &error,
                    next_attempt_at,
                };
                queue::update_recipients(conn, queue, &recipients, &outcome)
            })
            .await
    }

    /// Marks recipients `Bounced` with `last_error` (attempts + 1); removes
    /// the entry when nothing is left to do.
    pub async fn bounce(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        error: &str,
    ) -> Result<()> {
        let recipients = recipients.to_vec();
        let error = error.to_owned();
        self.inner
            .write(false, move |conn| {
                let outcome = queue::Outcome::Bounced { error: &error };
                queue::update_recipients(conn, queue, &recipients, &outcome)
            })
            .await
    }

    /// Keeps claimed recipients from other claimers for `lease` from now:
    /// for deliveries that take longer than the claim's lease (remote SMTP).
    pub async fn extend_lease(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        lease: Duration,
    ) -> Result<()> {
        let recipients = recipients.to_vec();
        let until = now().saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        self.inner
            .write(false, move |conn| {
                queue::extend_lease(conn, queue, &recipients, until)
            })
            .await
    }

    /// Marks recipients `Bounced`, each with its own error, and in the same
    /// transaction queues `report` (the delivery status notification for
    /// them, from the null sender). Recipients that are no longer pending or
    /// deferred are skipped; if none is left, no report is queued. Returns
    /// the report's queue id.
    pub async fn bounce_with_report(
        &self,
        queue: QueueId,
        failures: Vec<(RecipientId, String)>,
        report: Option<NewQueuedMessage>,
    ) -> Result<Option<QueueId>> {
        let hash = report.as_ref().map(|r| blobs::hash(&r.raw));
        self.inner
            .write(false, move |conn| {
                let report = hash.as_deref().zip(report.as_ref());
                queue::bounce_with_report(conn, queue, &failures, report, now())
            })
            .await
    }

    /// Every queued message with all its recipients, oldest first.
    pub async fn queue(&self) -> Result<Vec<QueuedMessage>> {
        self.inner.read(queue::list).await
    }

    /// One queued message with all its recipients, if it is in the queue.
    pub async fn queued_message(&self, id: QueueId) -> Result<Option<QueuedMessage>> {
        self.inner.read(move |conn| queue::find(conn, id)).await
    }

    /// Makes the message's recipients that wait to be tried again
    /// (`Deferred`, not yet due) due at `now`; the queue manager picks them
    /// up at its next look. `Pending` recipients are due from the start, or
    /// leased to a delivery under way, which is left to finish. Returns how
    /// many were waiting and are now due; `NotFound` if there is no such
    /// message.
    pub async fn retry_queued(&self, id: QueueId, now: Timestamp) -> Result<usize> {
        self.inner
            .write(false, move |conn| queue::retry(conn, id, now))
            .await
    }

    /// Makes every `Deferred` recipient of every queued message due at
    /// `now`. Returns how many were waiting and are now due.
    pub async fn flush_queue(&self, now: Timestamp) -> Result<usize> {
        self.inner
            .write(false, move |conn| queue::flush(conn, now))
            .await
    }

    /// Removes the message from the queue, with all its recipients, without
    /// delivering or bouncing it; its blob reference is released. Returns
    /// whether there was such a message.
    pub async fn delete_queued(&self, id: QueueId) -> Result<bool> {
        self.inner
            .write(false, move |conn| queue::remove(conn, id))
            .await
    }

    // ---- mailboxes and messages ----

    /// The account's mailboxes, INBOX first, then by name.
    pub async fn mailboxes(&self, account: AccountId) -> Result<Vec<MailboxInfo>> {
        self.inner
            .read(move |conn| mailbox::list_mailboxes(conn, account))
            .await
    }

    /// The messages in a mailbox (by name; `inbox` in any case is INBOX), in
    /// UID order. `NotFound` if there is no such mailbox.
    pub async fn messages(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.into();
        self.inner
            .read(move |conn| mailbox::list_messages(conn, account, &mailbox))
            .await
    }

    /// The messages with these UIDs, as [`Store::messages`] lists them, in
    /// the order asked; UIDs not present are left out. What IMAP's FETCH
    /// reads instead of the whole mailbox.
    pub async fn messages_by_uid(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .read(move |conn| mailbox::messages_by_uid(conn, account, &mailbox, &uids))
            .await
    }

    /// As [`Store::messages_by_uid`], in UID order, but each summary holds
    /// only the envelope fields (date, subject, addresses, ids, and those
    /// as written): no MIME tree. Much cheaper over many messages; what SEARCH reads.
    pub async fn envelopes(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| mailbox::envelopes(conn, &cache, account, &mailbox, &uids))
            .await
    }

    /// The raw bytes of one message, byte-exact as received.
    pub async fn message_raw(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uid: Uid,
    ) -> Result<Option<Vec<u8>>> {
        let mailbox = mailbox.into();
        self.inner
            .read(move |conn| mailbox::message_raw(conn, account, &mailbox, uid))
            .await
    }

    /// The mailbox's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and every
    /// message's UID, size, modseq and flags, read in one snapshot.
    /// `NotFound` if there is no such mailbox.
    ///
    /// Shared: an unchanged mailbox's index is read once and handed to every
    /// session that asks (a 50,000-message SELECT then costs one small
    /// query).
    pub async fn mailbox_index(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
    ) -> Result<Arc<MailboxIndex>> {
        let key = mailbox.into();
        let cache = self.index_cache.clone();
        self.inner
            .read(move |conn| {
                let stamp = mailbox::index_stamp(conn, account, &key)?;
                if let Some(hit) = lock(&cache).get(&stamp.0) {
                    let same = (
                        hit.mailbox,
                        hit.uid_validity,
                        hit.highest_modseq,
                        hit.uid_next,
                        hit.recent_uid,
                    ) == stamp;
                    if same {
                        return Ok(hit.clone());
                    }
                }
                let index = Arc::new(mailbox::mailbox_index(conn, account, &key)?);
                let mut cache = lock(&cache);
                if cache.len() >= INDEX_CACHE_ENTRIES && !cache.contains_key(&index.mailbox) {
                    cache.clear();
                }
                cache.insert(index.mailbox, index.clone());
                Ok(index)
            })
            .await
    }

    /// Changes flags of the messages with these UIDs (UIDs not present are
    /// skipped). Flags are IMAP system flags (`\Seen`, `\Answered`,
    /// `\Flagged`, `\Deleted`, `\Draft`; case-insensitive) or keywords
    /// (atoms; `Invalid` otherwise; `\Recent` is refused). Every message
    /// whose flags actually change gets a new modseq (the mailbox's
    /// HIGHESTMODSEQ + 1, in UID order) and a `flags` row in the change feed;
    /// returns those messages' UIDs with their new modseq and flags.
    pub async fn store_flags(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
        change: FlagChange,
        flags: &[String],
    ) -> Result<Vec<(Uid, ModSeq, Vec<String>)>> {
        let flags = mailbox::parse_flags(flags)?;
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .write(true, move |conn| {
                mailbox::store_flags(conn, account, &mailbox, &uids, change, &flags)
            })
            .await
    }

    /// Removes the messages with these UIDs from the mailbox (UIDs not
    /// present are skipped): each leaves a tombstone and an `expunge` row in
    /// the change feed with a new modseq, and releases its blob reference.
    /// Returns the UIDs actually removed, in order.
    pub async fn expunge(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<Uid>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .write(true, move |conn| {
                mailbox::expunge(conn, account, &mailbox, &uids)
            })
            .await
    }

    /// Creates a mailbox (IMAP CREATE): unsubscribed, with any missing
    /// level above it. `AlreadyExists` if it exists; `Invalid` for an empty
    /// level, a control character or a LIST wildcard in the name.
    pub async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.inner
            .write(true, move |conn| {
                mailbox::create_user_mailbox(conn, account, &name).map(|_| ())
            })
            .await
    }

    /// Deletes a mailbox and its messages. `Invalid` for INBOX or a mailbox
    /// with levels below it.
    pub async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.inner
            .write(true, move |conn| {
                mailbox::delete_mailbox(conn, account, &name)
            })
            .await
    }

    /// Renames a mailbox with the levels below it. Renaming INBOX moves its
    /// messages to the new mailbox and leaves INBOX, empty, in place.
    pub async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.inner
            .write(true, move |conn| {
                mailbox::rename_mailbox(conn, account, &from, &to)
            })
            .await
    }

    /// Subscribes to, or unsubscribes from, a mailbox name; it need not
    /// exist, and a subscription outlives its mailbox (RFC 3501 6.3.6).
    pub async fn set_subscribed(
        &self,
        account: AccountId,
        name: &str,
        subscribed: bool,
    ) -> Result<()> {
        let name = name.to_owned();
        self.inner
            .write(false, move |conn| {
                mailbox::subscribe(conn, account, &name, subscribed)
            })
            .await
    }

    /// The account's subscribed mailbox names, sorted; some may not exist.
    pub async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.inner
            .read(move |conn| mailbox::subscriptions(conn, account))
            .await
    }

    /// Appends a message a client supplies (IMAP APPEND), parsed once here,
    /// with these flags (as [`Store::store_flags`] takes them) and internal
    /// date. Returns the mailbox's UIDVALIDITY and the message's UID.
    pub async fn append(
        &self,
        account: AccountId,
        mailbox: &str,
        raw: Vec<u8>,
        flags: &[String],
        internal_date: Timestamp,
    ) -> Result<(u32, Uid)> {
        let flags = mailbox::parse_flags(flags)?;
        let (raw, summary_json) = tokio::task::spawn_blocking(move || {
            serde_json::to_string(&parse::summarize(&raw))
                .map(|json| (raw, json))
                .map_err(|e| StoreError::Database(format!("summary encoding: {e}")))
        })
        .await
        .map_err(|e| StoreError::Database(format!("parse task: {e}")))??;
        let mailbox = mailbox.to_owned();
        self.inner
            .write(true, move |conn| {
                mailbox::append_raw(
                    conn,
                    account,
                    &mailbox,
                    &raw,
                    &summary_json,
                    &flags,
                    internal_date,
                )
            })
            .await
    }

    /// Copies messages (UIDs not present are skipped) to the end of another
    /// mailbox, or the same one, with their flags and internal dates.
    /// Returns the destination's UIDVALIDITY and (source, new) UID pairs.
    pub async fn copy_messages(
        &self,
        account: AccountId,
        from: impl Into<MailboxKey>,
        uids: &[Uid],
        to: &str,
    ) -> Result<(u32, Vec<(Uid, Uid)>)> {
        let (from, to, uids) = (from.into(), to.to_owned(), uids.to_vec());
        self.inner
            .write(true, move |conn| {
                mailbox::copy_messages(conn, account, &from, &uids, &to)
            })
            .await
    }

    /// [`Store::copy_messages`] and expunging the originals, in one
    /// transaction.
    pub async fn move_messages(
        &self,
        account: AccountId,
        from: impl Into<MailboxKey>,
        uids: &[Uid],
        to: &str,
    ) -> Result<(u32, Vec<(Uid, Uid)>)> {
        let (from, to, uids) = (from.into(), to.to_owned(), uids.to_vec());
        self.inner
            .write(true, move |conn| {
                mailbox::move_messages(conn, account, &from, &uids, &to)
            })
            .await
    }

    /// Claims the messages that arrived since any IMAP session last
    /// claimed them: returns the first UID that is `\Recent` for the
    /// caller (all UIDs from it on, up to UIDNEXT now); no other caller
    /// gets them.
    pub async fn claim_recent(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
    ) -> Result<Uid> {
        let mailbox = mailbox.into();
        self.inner
            .write(false, move |conn| {
                mailbox::claim_recent(conn, account, &mailbox)
            })
            .await
    }

    /// Takes, or renews, the lease on the resource `name` for one session
    /// of one process, until `ttl` from now. `Ok(true)` if that session
    /// holds it afterwards: it was free, its lease had run out, or it was
    /// already this `process`'s (the caller keeps its own sessions apart; a
    /// lease left by one of its ended sessions is taken over). Leases are
    /// seen by every process on the data dir; one whose holder died runs out
    /// by itself. `process` should be unique per running process.
    pub async fn acquire_lease(
        &self,
        name: &str,
        process: &str,
        session: u64,
        ttl: Duration,
    ) -> Result<bool> {
        let (name, process) = (name.to_owned(), process.to_owned());
        let session =
            i64::try_from(session).map_err(|_| StoreError::Invalid("lease session".into()))?;
        let expires_at =
            now().saturating_add(i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX));
        self.inner
            .write(false, move |conn| {
                leases::acquire(conn, &name, &process, session, now(), expires_at)
            })
            .await
    }

    /// Gives up one session's lease on `name` (nothing if it no longer
    /// holds it).
    pub async fn release_lease(&self, name: &str, process: &str, session: u64) -> Result<()> {
        let (name, process) = (name.to_owned(), process.to_owned());
        let session =
            i64::try_from(session).map_err(|_| StoreError::Invalid("lease session".into()))?;
        self.inner
            .write(false, move |conn| {
                leases::release(conn, &name, &process, session)
            })
            .await
    }

    /// The raw bytes of several messages of one mailbox in one read (POP3's
    /// read-ahead). UIDs not present are left out; the rest come in the
    /// order asked.
    pub async fn messages_raw(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Vec<u8>)>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .read(move |conn| mailbox::messages_raw(conn, account, &mailbox, &uids))
            .await
    }

    /// A counter that moves whenever anything committed changes mail, in
    /// this process (at once) or another (within the poll interval).
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.subscribe()
    }

    /// Moves only when a commit changed this mailbox (new, changed or
    /// expunged messages), in this process (at once) or another (within
    /// the poll interval), or when any mailbox was deleted or renamed (the
    /// store then cannot tell which sessions care, so it wakes them all).
    /// An IMAP session watches the mailbox it has selected.
    ///
    /// The value is a wake-up sequence number. To read a mailbox and then
    /// watch it without missing a change in between: take
    /// [`Store::wake_mark`] before the read; a receiver whose value is
    /// above the mark may have missed one (look again). The store forgets
    /// a mailbox once nobody holds its receiver.
    pub fn watch_mailbox(&self, mailbox: MailboxId) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wakeups().watch(mailbox)
    }

    /// The wake-up sequence number now (see [`Store::watch_mailbox`]).
    pub fn wake_mark(&self) -> u64 {
        self.inner.wakeups().mark()
    }

    /// The number of blobs stored (for tests).
    #[doc(hidden)]
    pub async fn blob_count(&self) -> Result<u64> {
        self.inner.read(blobs::count).await
    }
}
