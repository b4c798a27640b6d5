//! The maildrop a session works on: a snapshot of INBOX taken at login
//! (message numbers never change during the session and new mail is not
//! shown), the marks DELE and RETR leave, and the UPDATE state that makes
//! them real at QUIT.

use common::config::{Pop3DeleteMode, Pop3Policy};
use store::{Account, FlagChange, Store, StoreError, Uid};

use crate::lock::MaildropLock;

/// The keyword `hide` mode gives messages deleted over POP3. Later POP3
/// sessions skip messages that carry it; IMAP shows them.
pub const HIDDEN_KEYWORD: &str = "$POP3Deleted";

/// The mailbox POP3 serves.
pub const INBOX: &str = "INBOX";

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
        let index = store.mailbox_index(account.id, INBOX).await?;
        let messages = index
            .messages
            .into_iter()
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
            _lock: lock,
        })
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
