//! Exclusive access to a maildrop (RFC 1939 section 4): one POP3 session
//! per account at a time, within this process.
//!
//! Two separate processes on one data dir (say `postern up` and a
//! standalone `pop3d`) are not yet excluded from each other; IMAP sessions
//! are never excluded (they see POP3's changes through the store).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use store::AccountId;

/// The accounts whose maildrop a POP3 session holds.
#[derive(Debug, Default)]
pub struct MaildropLocks {
    held: Mutex<HashSet<AccountId>>,
}

impl MaildropLocks {
    /// Takes the account's lock, or `None` if another session holds it.
    pub fn try_lock(self: &Arc<Self>, account: AccountId) -> Option<MaildropLock> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(account).then(|| MaildropLock {
            locks: self.clone(),
            account,
        })
    }

    /// Whether a session holds the account's lock.
    pub fn is_locked(&self, account: AccountId) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&account)
    }
}

/// A held lock; dropping it (however the session ends) releases it.
#[derive(Debug)]
pub struct MaildropLock {
    locks: Arc<MaildropLocks>,
    account: AccountId,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.locks
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let locks = Arc::new(MaildropLocks::default());
        let a = AccountId(1);
        let first = locks.try_lock(a).expect("free");
        assert!(locks.try_lock(a).is_none());
        assert!(locks.try_lock(AccountId(2)).is_some());
        assert!(locks.is_locked(a));
        drop(first);
        assert!(!locks.is_locked(a));
        assert!(locks.try_lock(a).is_some());
    }
}
