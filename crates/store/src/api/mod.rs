//! The store's API: [`Store`], the handle the daemons hold, and its
//! async calls in mail terms, one submodule per area. Each call runs its
//! work on the engine's threads (today SQLite, [`crate::sqlite`]) or on
//! the password workers ([`crate::hashing`]), never on a tokio worker;
//! no backend type appears in what it exposes.

use std::path::Path;
use std::sync::Arc;

use crate::kept::Kept;
use crate::sql::{arrivals, blobs, engine, mailbox};
use crate::{claims, hashing};
use crate::{MailboxId, MailboxIndex, Result, StoreError, StoreOptions, Timestamp};

mod accounts;
mod by_arrival;
mod capture;
mod login_failures;
mod mailboxes;
mod metadata;
mod queue;
mod quota;
mod received;
mod urlauth;

/// A handle on the store. Cheap to clone; all clones share the writer thread
/// and reader pool, which stop when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<engine::Inner>,
    /// Argon2id hashing and checks, one per core at a time
    /// ([`hashing`]).
    passwords: Arc<hashing::PasswordWorkers>,
    /// Recently read mailbox indexes, reused while the mailbox's stamp
    /// ([`mailbox::index_stamp`], read from the database each time, so
    /// other processes' changes count) is unchanged; within
    /// [`StoreOptions::index_cache_bytes`].
    index_cache: Arc<IndexCache>,
    /// Envelope fields decoded once per blob, for FETCH, POP3 and the
    /// HTTP API.
    envelope_cache: Arc<mailbox::EnvelopeCache>,
    /// What SEARCH compares, made once per blob.
    search_fields_cache: Arc<mailbox::SearchFieldsCache>,
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

/// Mailbox indexes kept by [`Store::mailbox_index`], charged by
/// [`crate::kept::index_bytes`].
type IndexCache = std::sync::Mutex<Kept<MailboxId, Arc<MailboxIndex>>>;

fn lock(cache: &IndexCache) -> std::sync::MutexGuard<'_, Kept<MailboxId, Arc<MailboxIndex>>> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
        #[cfg(test)]
        let options = crate::tests::on_test_postgres(data_dir, options);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Store {
            inner: Arc::new(engine::Inner::open(data_dir, &options)?),
            passwords: Arc::new(hashing::PasswordWorkers::start(
                cores,
                options.password_queue,
            )?),
            index_cache: Arc::new(Kept::new(options.index_cache_bytes).into()),
            envelope_cache: Arc::new(Kept::new(options.envelope_cache_bytes).into()),
            search_fields_cache: Arc::new(
                Kept::resisting_scans(options.search_fields_cache_bytes).into(),
            ),
            arrival_lists: Arc::new(arrivals::ListCache::new(options.arrival_list_cache_bytes)),
            claims: Arc::new(ClaimState {
                data_dir: data_dir.to_owned(),
                owner: Default::default(),
            }),
        })
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

    /// Moves when a commit changed any of `mailboxes` (the account's, as
    /// the caller last listed them), when any mailbox was created,
    /// deleted or renamed, or a subscription changed (in any account: the
    /// store does not tell them apart), in this process or another. For
    /// IMAP NOTIFY; the same wake-up sequence numbers as
    /// [`Store::watch_mailbox`], read with [`Store::wake_mark`] the same
    /// way. Each call replaces the account's list of mailboxes.
    pub fn watch_account(
        &self,
        account: crate::AccountId,
        mailboxes: &[MailboxId],
    ) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wakeups().watch_account(account, mailboxes)
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
