//! The maildrop a session works on: a snapshot of INBOX taken at login
//! (message numbers never change during the session and new mail is not
//! shown), the marks DELE and RETR leave, and the UPDATE state that makes
//! them real at QUIT.

use std::collections::HashMap;

use common::config::{Pop3DeleteMode, Pop3Policy};
use store::{Account, FlagChange, Store, StoreError, Uid};
use tokio::sync::watch;

use crate::lock::MaildropLock;

/// The keyword `hide` mode gives messages deleted over POP3. Later POP3
/// sessions skip messages that carry it; IMAP shows them.
pub const HIDDEN_KEYWORD: &str = "$POP3Deleted";

/// The mailbox POP3 serves.
pub const INBOX: &str = "INBOX";

/// Read-ahead: clients RETR in order, so a miss fetches the following
/// messages too, in one store read, up to this many…
const READ_AHEAD_MESSAGES: usize = 128;
/// …and this many bytes (the message asked for always comes, whatever its
/// size).
const READ_AHEAD_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub(crate) struct Pop3Message {
    pub uid: Uid,
    pub size: u64,
    /// Marked by DELE (and unmarked by RSET).
    pub deleted: bool,
    /// Sent whole by RETR: gets `\Seen` at QUIT if the policy says so.
    pub retrieved: bool,
}

pub(crate) struct Maildrop {
    pub account: Account,
    pub policy: Pop3Policy,
    pub uid_validity: u32,
    /// Message n is `messages[n - 1]`.
    pub messages: Vec<Pop3Message>,
    /// Messages read ahead, by UID. Dropped whenever the store reports a
    /// change, so a message another client removed is never served from
    /// here.
    read_ahead: HashMap<Uid, Vec<u8>>,
    changes: watch::Receiver<u64>,
    _lock: MaildropLock,
}

/// Why a message number cannot be used.
pub(crate) enum Unusable {
    NoSuchMessage,
    Deleted,
}

impl Unusable {
    pub fn text(&self, n: u32) -> String {
        match self {
            Unusable::NoSuchMessage => format!("No such message: {n}"),
            Unusable::Deleted => format!("Message {n} already deleted"),
        }
    }
}

impl Maildrop {
    /// Takes the snapshot of the account's INBOX.
    pub async fn open(
        store: &Store,
        account: Account,
        policy: Pop3Policy,
        lock: MaildropLock,
    ) -> Result<Maildrop, StoreError> {
        let mut changes = store.watch_changes();
        changes.borrow_and_update();
        let index = store.mailbox_index(account.id, INBOX).await?;
        let messages = index
            .messages
            .iter()
            .filter(|m| {
                !m.flags
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(HIDDEN_KEYWORD))
            })
            .map(|m| Pop3Message {
                uid: m.uid,
                size: m.size,
                deleted: false,
                retrieved: false,
            })
            .collect();
        Ok(Maildrop {
            account,
            policy,
            uid_validity: index.uid_validity,
            messages,
            read_ahead: HashMap::new(),
            changes,
            _lock: lock,
        })
    }

    /// The raw bytes of message `n` (which [`Maildrop::get`] accepted), or
    /// `None` if another client removed it. `keep` leaves a read-ahead copy
    /// in place (TOP); RETR takes it.
    pub async fn raw(
        &mut self,
        store: &Store,
        n: u32,
        keep: bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if self.changes.has_changed().unwrap_or(true) {
            self.read_ahead.clear();
            self.changes.borrow_and_update();
        }
        let index = n as usize - 1;
        let uid = self.messages[index].uid;
        if keep {
            if let Some(raw) = self.read_ahead.get(&uid) {
                return Ok(Some(raw.clone()));
            }
        } else if let Some(raw) = self.read_ahead.remove(&uid) {
            return Ok(Some(raw));
        }
        // A miss: this message and the next ones not marked deleted.
        let mut uids = vec![uid];
        let mut bytes = self.messages[index].size;
        for m in self.messages[index + 1..].iter().filter(|m| !m.deleted) {
            if uids.len() >= READ_AHEAD_MESSAGES || bytes + m.size > READ_AHEAD_BYTES {
                break;
            }
            if self.read_ahead.contains_key(&m.uid) {
                continue;
            }
            bytes += m.size;
            uids.push(m.uid);
        }
        let fetched = store.messages_raw(self.account.id, INBOX, &uids).await?;
        let mut wanted = None;
        for (got, raw) in fetched {
            if got == uid {
                wanted = Some(raw);
            } else {
                self.read_ahead.insert(got, raw);
            }
        }
        if keep {
            if let Some(raw) = &wanted {
                self.read_ahead.insert(uid, raw.clone());
            }
        }
        Ok(wanted)
    }

    /// Message `n` (1-based), unless it does not exist or is marked deleted.
    pub fn get(&self, n: u32) -> Result<&Pop3Message, Unusable> {
        let message = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.messages.get(i))
            .ok_or(Unusable::NoSuchMessage)?;
        if message.deleted {
            return Err(Unusable::Deleted);
        }
        Ok(message)
    }

    pub fn get_mut(&mut self, n: u32) -> Result<&mut Pop3Message, Unusable> {
        self.get(n)?;
        Ok(&mut self.messages[n as usize - 1])
    }

    /// Messages not marked deleted, and their total size.
    pub fn stat(&self) -> (usize, u64) {
        self.messages
            .iter()
            .filter(|m| !m.deleted)
            .fold((0, 0), |(n, octets), m| (n + 1, octets + m.size))
    }

    /// Numbered messages not marked deleted.
    pub fn live(&self) -> impl Iterator<Item = (u32, &Pop3Message)> {
        (1u32..)
            .zip(self.messages.iter())
            .filter(|(_, m)| !m.deleted)
    }

    /// RSET: unmarks every message.
    pub fn reset(&mut self) {
        for m in &mut self.messages {
            m.deleted = false;
        }
    }

    /// The UPDATE state (RFC 1939 section 6): marks retrieved messages
    /// `\Seen` (if the policy says so), then removes the messages marked
    /// deleted (expunge) or hides them from POP3 (hide). Messages another
    /// client removed meanwhile are skipped.
    pub async fn update(&self, store: &Store) -> Result<(), StoreError> {
        let account = self.account.id;
        let deleted: Vec<Uid> = self
            .messages
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        let hide = self.policy.delete_mode == Pop3DeleteMode::Hide;
        if self.policy.mark_seen {
            // An expunged message needs no flag.
            let seen: Vec<Uid> = self
                .messages
                .iter()
                .filter(|m| m.retrieved && (hide || !m.deleted))
                .map(|m| m.uid)
                .collect();
            if !seen.is_empty() {
                store
                    .store_flags(
                        account,
                        INBOX,
                        &seen,
                        FlagChange::Add,
                        &["\\Seen".to_string()],
                    )
                    .await?;
            }
        }
        if deleted.is_empty() {
            return Ok(());
        }
        match self.policy.delete_mode {
            Pop3DeleteMode::Expunge => {
                store.expunge(account, INBOX, &deleted).await?;
            }
            Pop3DeleteMode::Hide => {
                store
                    .store_flags(
                        account,
                        INBOX,
                        &deleted,
                        FlagChange::Add,
                        &[HIDDEN_KEYWORD.to_string()],
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
