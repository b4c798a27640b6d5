//! URLAUTH mailbox keys (IMAP, RFC 4467).

use super::Store;
use crate::sql::urlauth;
use crate::types::*;

/// Octets of a URLAUTH key.
const KEY_LEN: usize = 32;

impl Store {
    /// The secret URLAUTH key of the account's mailbox, made (random) the
    /// first time. `NotFound` if there is no such mailbox.
    pub async fn urlauth_key(&self, account: AccountId, mailbox: &str) -> Result<Vec<u8>> {
        let mut fresh = [0u8; KEY_LEN];
        getrandom::fill(&mut fresh)
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
        let mailbox = mailbox.to_owned();
        self.inner
            .write(false, move |conn| {
                urlauth::key_or_new(conn, account, &mailbox, &fresh)
            })
            .await
    }

    /// The mailbox's URLAUTH key if it has one (a URL can be checked
    /// only against a key that exists). `NotFound` if there is no such
    /// mailbox.
    pub async fn existing_urlauth_key(
        &self,
        account: AccountId,
        mailbox: &str,
    ) -> Result<Option<Vec<u8>>> {
        let mailbox = mailbox.to_owned();
        self.inner
            .read(move |conn| urlauth::key(conn, account, &mailbox))
            .await
    }

    /// Forgets the URLAUTH key of one mailbox, or with `None` of every
    /// mailbox of the account (IMAP RESETKEY): the URLs authorized with
    /// it no longer work, and the next one gets a new key. `NotFound` if
    /// there is no such mailbox.
    pub async fn reset_urlauth_keys(
        &self,
        account: AccountId,
        mailbox: Option<&str>,
    ) -> Result<()> {
        let mailbox = mailbox.map(str::to_owned);
        self.inner
            .write(false, move |conn| {
                urlauth::reset(conn, account, mailbox.as_deref())
            })
            .await
    }
}
