//! Exclusive access to a maildrop (RFC 1939 section 4): one POP3 session
//! per account at a time, across every process on the data dir.
//!
//! Two layers: a set in this process keeps its own sessions apart at once
//! and cheaply; a lease in the store ([`store::Store::acquire_lease`],
//! named `pop3:<account id>`) keeps other processes out (`postern up` and a
//! standalone `pop3d` on one data dir). The lease lasts [`LEASE_TTL`] and a
//! held lock renews it every third of that, so a process that dies frees
//! its maildrops within a minute. IMAP sessions are never excluded (they see
//! POP3's changes through the store).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use store::{AccountId, Store, StoreError};
use tokio_util::task::TaskTracker;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// The accounts whose maildrop a POP3 session of this process holds.
pub struct MaildropLocks {
    held: Mutex<HashSet<AccountId>>,
    store: Store,
    /// This process, as lease holders are named in the store.
    process: String,
    sessions: AtomicU64,
    /// The daemon's task tracker, once [`crate::start`] gave it: the lease
    /// release a closing session leaves behind runs on it, so the daemon's
    /// shutdown waits for it (the session ends on that tracker too, so it
    /// is never empty in between).
    releases: OnceLock<TaskTracker>,
}

impl MaildropLocks {
    pub fn new(store: Store) -> MaildropLocks {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        MaildropLocks {
            held: Mutex::new(HashSet::new()),
            store,
            process: format!("pop3d/{}/{nanos:x}", std::process::id()),
            sessions: AtomicU64::new(0),
            releases: OnceLock::new(),
        }
    }

    /// Runs lease releases on `tracker` from now on.
    pub fn track_releases(&self, tracker: &TaskTracker) {
        let _ = self.releases.set(tracker.clone());
    }

    /// Takes the account's lock; `Ok(None)` if another session (here or in
    /// another process) holds it.
    pub async fn try_lock(
        self: &Arc<Self>,
        account: AccountId,
    ) -> Result<Option<MaildropLock>, StoreError> {
        if !self.held().insert(account) {
            return Ok(None);
        }
        let session = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let mut lock = MaildropLock {
            locks: self.clone(),
            account,
            session,
            renewal: None,
        };
        let name = lease_name(account);
        if !self
            .store
            .acquire_lease(&name, &self.process, session, LEASE_TTL)
            .await?
        {
            return Ok(None);
        }
        let locks = self.clone();
        lock.renewal = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(LEASE_TTL / 3);
            every.tick().await;
            loop {
                every.tick().await;
                match locks
                    .store
                    .acquire_lease(&name, &locks.process, session, LEASE_TTL)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(%account, "maildrop lease taken by another process")
                    }
                    Err(e) => tracing::warn!(%account, error = %e, "cannot renew maildrop lease"),
                }
            }
        }));
        Ok(Some(lock))
    }

    /// Whether a session of this process holds the account's lock.
    pub fn is_locked(&self, account: AccountId) -> bool {
        self.held().contains(&account)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<AccountId>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for MaildropLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildropLocks")
            .field("process", &self.process)
            .field("held", &*self.held())
            .finish()
    }
}

fn lease_name(account: AccountId) -> String {
    format!("pop3:{account}")
}

/// A held lock; dropping it (however the session ends) releases it.
#[derive(Debug)]
pub struct MaildropLock {
    locks: Arc<MaildropLocks>,
    account: AccountId,
    session: u64,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.locks.held().remove(&self.account);
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
            // The store releases only this session's lease, so a release
            // that lands after a newer session took the maildrop is harmless.
            let (locks, account, session) = (self.locks.clone(), self.account, self.session);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let release = async move {
                    let name = lease_name(account);
                    if let Err(e) = locks
                        .store
                        .release_lease(&name, &locks.process, session)
                        .await
                    {
                        tracing::warn!(%account, error = %e, "cannot release maildrop lease");
                    }
                };
                match self.locks.releases.get() {
                    Some(tracker) => runtime.spawn(tracker.track_future(release)),
                    None => runtime.spawn(release),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_in_and_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let here = Arc::new(MaildropLocks::new(Store::open(dir.path()).unwrap()));
        // Another process: its own locks over its own connections.
        let there = Arc::new(MaildropLocks::new(Store::open(dir.path()).unwrap()));
        let a = AccountId(1);
        let first = here.try_lock(a).await.unwrap().expect("free");
        assert!(here.try_lock(a).await.unwrap().is_none(), "same process");
        assert!(there.try_lock(a).await.unwrap().is_none(), "other process");
        assert!(there.try_lock(AccountId(2)).await.unwrap().is_some());
        assert!(here.is_locked(a));
        drop(first);
        assert!(!here.is_locked(a));
        // Taken again at once in this process, even before the release
        // reaches the store.
        let again = here.try_lock(a).await.unwrap().expect("free again here");
        drop(again);
        // The other process gets it once the release is through.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if there.try_lock(a).await.unwrap().is_some() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lease never released");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
