//! The store's domain types: ids, mailbox references, accounts, envelopes,
//! queue entries, message summaries, options and [`StoreError`]. They say
//! what the store keeps in mail terms and hold nothing of any backend;
//! every one is re-exported at the crate root (`store::X`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::Store;

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
    match name.get(..5) {
        Some(first)
            if first.eq_ignore_ascii_case("INBOX")
                && matches!(name.as_bytes().get(5), None | Some(b'/')) =>
        {
            format!("INBOX{}", &name[5..])
        }
        _ => name.to_owned(),
    }
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

/// What [`crate::Store::deliver_received`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The message's queue id (also when it was delivered at once).
    pub queue: QueueId,
    /// The SMTP session's row.
    pub session: SmtpSessionId,
    /// True: in the mailboxes now. False: queued (an account or its INBOX
    /// was gone), for the queue manager.
    pub delivered: bool,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// A scope's messages as one list, newest first: what a list page, a
/// count and a search over the scope all read. Shared ([`Arc`]) and kept
/// by the store until anything is committed to the database.
#[derive(Debug)]
pub struct ArrivalList {
    /// Newest first: every message of the scope, or its newest `max` (as
    /// [`crate::Store::arrival_list`] was asked) if it holds more.
    pub messages: Vec<ArrivedMessage>,
    /// How many messages the scope holds.
    pub total: u64,
    /// How many of them are not `\Seen`.
    pub unseen: u64,
}

impl ArrivalList {
    /// Whether `messages` is the whole scope.
    pub fn complete(&self) -> bool {
        self.messages.len() as u64 >= self.total
    }
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
    /// The account's quota (RFC 9208) has no room for what was to be
    /// added: nothing was written. It stays so until mail is removed or
    /// the limit raised, so it is not temporary (as Dovecot, whose
    /// `quota_full_tempfail` is off by default).
    #[error("quota exceeded: {0}")]
    OverQuota(String),
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
    /// which the protocols name as such; see [`StoreError::is_temporary`]
    /// for the answers.
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full(_))
    }

    /// Whether an account's quota refused the write
    /// ([`StoreError::OverQuota`]): IMAP `NO [OVERQUOTA]`, SMTP `5.2.2`
    /// (mailbox full).
    pub fn is_over_quota(&self) -> bool {
        matches!(self, StoreError::OverQuota(_))
    }

    /// Whether trying the same thing again later may work: the store or
    /// disk is full, the store is shutting down, or the database or the
    /// disk failed (busy, locked, an I/O error). What is not found, already
    /// exists or is invalid stays so, and a schema newer than this program
    /// needs an upgrade, not a retry: those are permanent.
    ///
    /// This and [`StoreError::is_full`] are the one classification; every
    /// daemon answers a store failure from them alone, as follows:
    ///
    /// | failure | SMTP (DATA, BDAT) | IMAP | POP3 (RFC 2449, 3206) | HTTP API |
    /// |---|---|---|---|---|
    /// | full ([`is_full`](Self::is_full)) | `452 4.3.1` Insufficient system storage | `NO [OVERQUOTA]` | `-ERR [SYS/TEMP]` | `507` Insufficient Storage |
    /// | over quota ([`is_over_quota`](Self::is_over_quota)) | `552 5.2.2` Mailbox full (smtpd queues instead, see below) | `NO [OVERQUOTA]` | `-ERR [SYS/PERM]` | `507` Insufficient Storage |
    /// | other temporary | `451 4.3.0` | `NO [UNAVAILABLE]` | `-ERR [SYS/TEMP]` | `503` with `Retry-After` |
    /// | permanent | `554 5.3.0` | `NO [SERVERBUG]` | `-ERR [SYS/PERM]` | `500` |
    ///
    /// IMAP is RFC 5530's codes. SMTP may answer a permanent store failure
    /// with a `5xx` because nothing was accepted: the message was not
    /// queued, so the client still holds it and reports the failure itself.
    ///
    /// Before this table, a daemon first answers the variants that mean
    /// something in its protocol: IMAP `[NONEXISTENT]`/`[TRYCREATE]` for
    /// [`StoreError::NotFound`], `[ALREADYEXISTS]` for
    /// [`StoreError::AlreadyExists`], `BYE` for a selected mailbox that is
    /// [`StoreError::MailboxGone`]; HTTP `404`, `409` and `400` for
    /// not found, already exists and invalid.
    ///
    /// A quota refuses only additions to an account's mailboxes. smtpd
    /// answers `452 4.2.2` at RCPT for a recipient already full; a
    /// message that does not fit at direct delivery is queued instead,
    /// and the queue manager bounces it for that recipient (`5.2.2`).
    ///
    /// smtpd's queue manager is the one exception: a message it holds was
    /// already accepted, so any store failure while it works on one defers
    /// the recipients (`4.3.1` when full, else `4.3.0`) and the queue's
    /// lifetime bounds the retries.
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::Full(_)
            | StoreError::Closed
            | StoreError::Database(_)
            | StoreError::Io(_) => true,
            StoreError::NotFound(_)
            | StoreError::MailboxGone(_)
            | StoreError::AlreadyExists(_)
            | StoreError::Invalid(_)
            | StoreError::OverQuota(_)
            | StoreError::SchemaTooNew { .. } => false,
        }
    }

    /// Refuses a store whose schema (`found`) is newer than this build
    /// knows (`supported`): a newer Postern migrated it, and this one
    /// would misread it. Both engines ask this before migrating.
    pub(crate) fn check_schema_version(found: i64, supported: i64) -> Result<()> {
        if found > supported {
            Err(StoreError::SchemaTooNew { found, supported })
        } else {
            Ok(())
        }
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

/// The RFC 6154 special uses a mailbox can be created with (IMAP
/// CREATE-SPECIAL-USE): those of the default mailboxes. `\All` and
/// `\Flagged` name virtual mailboxes, which the store does not keep.
pub const CREATABLE_SPECIAL_USES: &[&str] =
    &["\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"];

/// One entry a METADATA write sets (`Some`) or removes (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataWrite {
    /// `/private/...` or `/shared/...`, any case.
    pub name: String,
    pub value: Option<Vec<u8>>,
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

/// What [`Store::store_flags_unchanged_since`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConditionalStore {
    /// The messages whose flags changed, with their new modseq and flags,
    /// in UID order.
    pub changed: Vec<(Uid, ModSeq, Vec<String>)>,
    /// The messages left alone because their modseq was above the limit
    /// (IMAP's `[MODIFIED]`), in UID order.
    pub modified: Vec<Uid>,
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
    /// The message ids of `References:` (`<id>`, space-separated, in
    /// order), which THREAD=REFERENCES follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
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

/// What [`Store::expunged_since`] knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpungedSince {
    /// Every UID expunged with a modseq above the one asked, in UID order.
    Known(Vec<Uid>),
    /// The tombstones at or below `horizon` are pruned, and the modseq
    /// asked is below it: some expunges since then are no longer known.
    Pruned { horizon: ModSeq },
}

/// How much of the change feed and tombstones each mailbox keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOptions {
    /// Changes (and tombstones) of the newest this many modseqs of each
    /// mailbox are kept, unless older than `max_age` (default 10,000; at
    /// least 1).
    pub keep_changes: u64,
    /// Changes older than this are pruned whatever their number (default 30
    /// days; zero: no age limit).
    pub max_age: Duration,
    /// Rows deleted from each table in one step, i.e. at most in one write
    /// transaction (default 1,000; at least 1).
    pub batch: u64,
    /// How often, at most, the writer looks for mailboxes past the limits
    /// (default 10 s).
    pub interval: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            keep_changes: 10_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
            batch: 1_000,
            interval: Duration::from_secs(10),
        }
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
    /// Write requests that may wait for the writer (default 1,024; at
    /// least 1). When that many wait, a caller waits for room before its
    /// request is queued (asynchronously: no tokio thread is held).
    pub writer_queue: usize,
    /// Read requests that may wait for a reader (default 1,024; at
    /// least 1); past it, as for `writer_queue`.
    pub reader_queue: usize,
    /// Password hashes and checks that may wait for a password worker
    /// (default 256; at least 1); past it, as for `writer_queue`. A check
    /// whose caller has gone by its turn (a client that hung up) is
    /// skipped.
    pub password_queue: usize,
    /// Bytes the mailbox indexes kept for reuse may hold (default 8 MiB;
    /// one index of a 50,000-message mailbox is some MiB). An index too
    /// big for it is read anew for each SELECT.
    pub index_cache_bytes: u64,
    /// Bytes the envelopes decoded for FETCH, POP3 and the HTTP API may
    /// hold (default 4 MiB: some 1,400 envelopes, each about 3 KiB with
    /// its struct's inline MIME part).
    pub envelope_cache_bytes: u64,
    /// Bytes SEARCH's header fields ([`crate::SearchFields`]) may hold
    /// (default 8 MiB: some 25,000 messages of a few hundred bytes each
    /// with their subject and addresses). A SEARCH over more messages
    /// makes the rest again each time.
    pub search_fields_cache_bytes: u64,
    /// Bytes the arrival lists the HTTP API's searches read may hold,
    /// their envelopes included (default 16 MiB).
    pub arrival_list_cache_bytes: u64,
    /// Bytes of SQLite page cache each reader connection keeps (default
    /// 1 MiB; SQLite's own default is 2,000 KiB). A page in it is not
    /// copied from the operating system again until another connection
    /// commits; a scan of a big mailbox fills it.
    pub reader_cache_bytes: u64,
    /// Bytes of write-ahead log after which a checkpoint copies it into
    /// the database file (default 32 MiB; at least SQLite's 1,000 pages).
    /// Pages written again and again between two checkpoints are copied
    /// once: a bigger log costs disk space, not time.
    pub checkpoint_bytes: u64,
    /// Every commit waits for the disk (default false: only those that
    /// accept or create mail do; flag changes, expunges and leases are
    /// answered once the operating system has them, which a crash of the
    /// process cannot undo but a power cut can; Dovecot's default too).
    pub sync_every_commit: bool,
    /// Keep the store in this PostgreSQL database
    /// (`postgres://user:password@host:port/db`) instead of SQLite in the
    /// data dir (default `None`: SQLite). Several nodes may share it.
    pub postgres_url: Option<String>,
    /// A PEM file of CA certificates the PostgreSQL server's certificate
    /// may chain to, besides the system's roots (`[store] ca_file`); with
    /// it, `sslmode=prefer` checks the certificate too (see `sslmode` in
    /// the README's PostgreSQL section).
    pub postgres_ca_file: Option<std::path::PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            readers: 4,
            poll_interval: Duration::from_millis(250),
            max_batch: 256,
            prune: PruneOptions::default(),
            max_size: 0,
            writer_queue: 1024,
            reader_queue: 1024,
            password_queue: 256,
            index_cache_bytes: 8 * 1024 * 1024,
            envelope_cache_bytes: 4 * 1024 * 1024,
            search_fields_cache_bytes: 8 * 1024 * 1024,
            arrival_list_cache_bytes: 16 * 1024 * 1024,
            reader_cache_bytes: 1024 * 1024,
            checkpoint_bytes: 32 * 1024 * 1024,
            sync_every_commit: false,
            postgres_url: None,
            postgres_ca_file: None,
        }
    }
}

/// What [`Store::changes_since`] knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxChanges {
    /// Every change after the modseq asked.
    Known(ChangesSince),
    /// The feed at or below `horizon` is pruned, and the modseq asked is
    /// below it: some changes since then are no longer known.
    Pruned { horizon: ModSeq },
}

/// The changes to a mailbox after a modseq, read in one snapshot with the
/// mailbox's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesSince {
    pub uid_next: Uid,
    /// The modseq this answer brings a reader up to.
    pub highest_modseq: ModSeq,
    /// The first UID no IMAP session has claimed as `\Recent` yet.
    pub recent_uid: Uid,
    /// UIDs expunged since, in UID order (messages appended and expunged
    /// again since are among them).
    pub expunged: Vec<Uid>,
    /// Messages appended or with flags changed since, in UID order, each
    /// with its size, modseq and flags as they are now.
    pub changed: Vec<IndexEntry>,
}

/// A message a client supplies (IMAP APPEND): its bytes as stored, its
/// flags (as [`crate::Store::store_flags`] takes them) and internal date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub raw: Vec<u8>,
    pub flags: Vec<String>,
    pub internal_date: Timestamp,
}

/// An account's quota (IMAP QUOTA, RFC 9208): its limits (`None`: no
/// limit) and what its messages use now, in all its mailboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    /// The most storage its messages may take, in KiB (RFC 9208's unit
    /// for STORAGE).
    pub storage_limit_kib: Option<u64>,
    /// The most messages it may hold.
    pub message_limit: Option<u64>,
    /// The sizes of its messages, in octets.
    pub used_bytes: u64,
    pub used_messages: u64,
}

impl Quota {
    /// Whether any limit applies.
    pub fn is_limited(&self) -> bool {
        self.storage_limit_kib.is_some() || self.message_limit.is_some()
    }

    /// The storage used in KiB, rounded down, as Dovecot reports it.
    pub fn used_kib(&self) -> u64 {
        self.used_bytes / 1024
    }

    /// Whether `bytes` more in `messages` more messages stay within every
    /// limit (reaching a limit exactly is within it, as in Dovecot).
    pub fn fits(&self, bytes: u64, messages: u64) -> bool {
        let storage_ok = self
            .storage_limit_kib
            .is_none_or(|kib| self.used_bytes.saturating_add(bytes) <= kib.saturating_mul(1024));
        let messages_ok = self
            .message_limit
            .is_none_or(|n| self.used_messages.saturating_add(messages) <= n);
        storage_ok && messages_ok
    }

    /// Whether no message at all fits any more: the storage used is at or
    /// past its limit, or the message count is.
    pub fn is_full(&self) -> bool {
        !self.fits(1, 1)
    }
}

/// A change to one of an account's limits ([`crate::Store::set_quota`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuotaLimit {
    /// As it is.
    #[default]
    Keep,
    /// No limit.
    Unlimited,
    /// This limit (KiB for storage).
    Set(u64),
}
