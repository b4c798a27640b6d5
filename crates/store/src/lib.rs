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
//!   user and body type; each recipient has its own state
//!   ([`RecipientState`]), attempt count, next attempt time and last error;
//!   due work is found by an index on the next attempt time;
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

pub use prune::{ExpungedSince, PruneOptions};

mod accounts;
mod blobs;
mod engine;
mod hashing;
mod leases;
mod mailbox;
mod parse;
mod prune;
mod queue;
mod schema;
#[cfg(test)]
mod tests;

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
    /// An RFC 7162 modification sequence (never 0).
    ModSeq(u64)
);

/// Everything that can go wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
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
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
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
    /// Fields IMAP's ENVELOPE sends as written.
    #[serde(default)]
    pub raw: RawFields,
    /// The MIME tree with byte offsets into the raw message.
    pub body: MimePart,
}

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

/// One MIME part, enough to answer IMAP's BODYSTRUCTURE and `BODY[section]`
/// from the raw bytes without parsing again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MimePart {
    /// Lower-case type and subtype: `text`, `plain`.
    pub content_type: String,
    pub content_subtype: String,
    /// Content-Type parameters in order, names lower-cased.
    pub params: Vec<(String, String)>,
    pub content_id: Option<String>,
    pub content_description: Option<String>,
    /// Content-Transfer-Encoding as written (lower-cased), `7bit` if absent.
    pub encoding: String,
    pub disposition: Option<String>,
    pub disposition_params: Vec<(String, String)>,
    pub language: Vec<String>,
    pub location: Option<String>,
    /// Offsets into the raw message: the part's header starts at
    /// `header_offset`, its body spans `body_offset..body_end`.
    pub header_offset: u64,
    pub body_offset: u64,
    pub body_end: u64,
    /// Number of lines in the body (for text/* and message/rfc822).
    pub lines: u64,
    /// Children of a multipart/* (or the one message of message/rfc822).
    pub parts: Vec<MimePart>,
    /// For message/rfc822: the summary of the enclosed message (its envelope).
    pub message: Option<Box<MessageSummary>>,
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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            readers: 4,
            poll_interval: Duration::from_millis(250),
            max_batch: 256,
            prune: PruneOptions::default(),
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
}

type IndexCache =
    std::sync::Mutex<std::collections::HashMap<(AccountId, String), Arc<MailboxIndex>>>;

fn lock(
    cache: &IndexCache,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<(AccountId, String), Arc<MailboxIndex>>> {
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
    /// the target of an alias; case-insensitive. `postmaster@domain` with
    /// neither goes to the domain's oldest account (RFC 5321 4.5.1). No
    /// sub-addressing here (`+tag` is smtpd's policy).
    pub async fn resolve_recipient(&self, address: &str) -> Result<Option<Account>> {
        let address = address.to_lowercase();
        self.inner
            .read(move |conn| accounts::resolve(conn, &address))
            .await
    }

    // ---- the queue ----

    /// Stores the blob (or takes another reference to an identical one) and
    /// the queue entry with all recipients `Pending`, due now. Returns only
    /// once committed and synced.
    pub async fn enqueue(&self, message: NewQueuedMessage) -> Result<QueueId> {
        if message.recipients.is_empty() {
            return Err(StoreError::Invalid("recipients".into()));
        }
        // Hashing a big message takes a while; keep it off the workers.
        let (hash, message) = if message.raw.len() > 1 << 20 {
            blocking(move || (blobs::hash(&message.raw), message)).await?
        } else {
            (blobs::hash(&message.raw), message)
        };
        self.inner
            .write(false, move |conn| {
                queue::enqueue(conn, &hash, &message, now())
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
        self.inner
            .write(false, move |conn| queue::claim_due(conn, now, secs, limit))
            .await
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
        if deliveries.is_empty() {
            return Ok(());
        }
        // Parsed on the reader thread that read the bytes (a blocking
        // thread already), so a delivery is one read and one write.
        let summary_json = self
            .inner
            .read(move |conn| match queue::blob_for_delivery(conn, queue)? {
                queue::QueuedBlob::Parsed => Ok(None),
                queue::QueuedBlob::Unparsed(raw) => serde_json::to_string(&parse::summarize(&raw))
                    .map(Some)
                    .map_err(|e| StoreError::Database(format!("summary encoding: {e}"))),
            })
            .await?;
        self.inner
            .write(true, move |conn| {
                queue::deliver_local(conn, queue, &deliveries, summary_json.as_deref()).map(|_| ())
            })
            .await
    }

    /// Marks recipients `Delivered` without a local mailbox (accepted by a
    /// remote server); removes the entry when nothing is left to do.
    pub async fn mark_delivered(&self, queue: QueueId, recipients: &[RecipientId]) -> Result<()> {
        let recipients = recipients.to_vec();
        self.inner
            .write(false, move |conn| {
                queue::update_recipients(conn, queue, &recipients, &queue::Outcome::Delivered)
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
    pub async fn messages(&self, account: AccountId, mailbox: &str) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.to_owned();
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
        mailbox: &str,
        uids: &[Uid],
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.to_owned();
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
        mailbox: &str,
        uids: &[Uid],
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.to_owned();
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
        mailbox: &str,
        uid: Uid,
    ) -> Result<Option<Vec<u8>>> {
        let mailbox = mailbox.to_owned();
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
        mailbox: &str,
    ) -> Result<Arc<MailboxIndex>> {
        let key = (account, mailbox::canonical_name(mailbox));
        let cache = self.index_cache.clone();
        self.inner
            .read(move |conn| {
                let (id, modseq, uid_next, recent) = mailbox::index_stamp(conn, account, &key.1)?;
                if let Some(hit) = lock(&cache).get(&key) {
                    let same = (
                        hit.mailbox,
                        hit.highest_modseq,
                        hit.uid_next,
                        hit.recent_uid,
                    ) == (id, modseq, uid_next, recent);
                    if same {
                        return Ok(hit.clone());
                    }
                }
                let index = Arc::new(mailbox::mailbox_index(conn, account, &key.1)?);
                let mut cache = lock(&cache);
                if cache.len() >= INDEX_CACHE_ENTRIES && !cache.contains_key(&key) {
                    cache.clear();
                }
                cache.insert(key, index.clone());
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
        mailbox: &str,
        uids: &[Uid],
        change: FlagChange,
        flags: &[String],
    ) -> Result<Vec<(Uid, ModSeq, Vec<String>)>> {
        let flags = mailbox::parse_flags(flags)?;
        let mailbox = mailbox.to_owned();
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
        mailbox: &str,
        uids: &[Uid],
    ) -> Result<Vec<Uid>> {
        let mailbox = mailbox.to_owned();
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
        from: &str,
        uids: &[Uid],
        to: &str,
    ) -> Result<(u32, Vec<(Uid, Uid)>)> {
        let (from, to, uids) = (from.to_owned(), to.to_owned(), uids.to_vec());
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
        from: &str,
        uids: &[Uid],
        to: &str,
    ) -> Result<(u32, Vec<(Uid, Uid)>)> {
        let (from, to, uids) = (from.to_owned(), to.to_owned(), uids.to_vec());
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
    pub async fn claim_recent(&self, account: AccountId, mailbox: &str) -> Result<Uid> {
        let mailbox = mailbox.to_owned();
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
        mailbox: &str,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Vec<u8>)>> {
        let mailbox = mailbox.to_owned();
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

    /// The number of blobs stored (for tests).
    #[doc(hidden)]
    pub async fn blob_count(&self) -> Result<u64> {
        self.inner.read(blobs::count).await
    }
}
