//! Quotas (IMAP QUOTA, RFC 9208): an account's limits and usage. The
//! limits are enforced where mail is added (APPEND, COPY, REPLACE, local
//! delivery), inside the writing request; see [`crate::sql::quota`].

use super::Store;
use crate::sql::{accounts, quota};
use crate::types::*;

impl Store {
    /// The account's limits and what its messages use now. `NotFound` if
    /// the account is gone.
    pub async fn quota(&self, account: AccountId) -> Result<Quota> {
        self.inner
            .lookup(move |conn| quota::quota(conn, account))
            .await
    }

    /// Changes the limits of the account with this address (storage in
    /// KiB); a limit given as [`QuotaLimit::Keep`] stays as it is.
    /// Returns the quota after. Mail already stored stays, even over the
    /// new limits. `NotFound` if there is no such account.
    pub async fn set_quota(
        &self,
        address: &str,
        storage_kib: QuotaLimit,
        messages: QuotaLimit,
    ) -> Result<Quota> {
        let address = accounts::normalize_address(address)
            .map_err(|_| StoreError::NotFound(format!("account {address}")))?;
        self.inner
            .write(false, move |conn| {
                quota::set_quota(conn, &address, storage_kib, messages)
            })
            .await
    }

    /// How many of the mailbox's messages have `\Deleted`, and the sum of
    /// their sizes in octets: what an EXPUNGE would free (IMAP STATUS
    /// DELETED and DELETED-STORAGE, RFC 9208). `NotFound` if there is no
    /// such mailbox.
    pub async fn deleted_in_mailbox(
        &self,
        account: AccountId,
        mailbox: &str,
    ) -> Result<(u64, u64)> {
        let mailbox = mailbox.to_owned();
        self.inner
            .read(move |conn| quota::deleted_in_mailbox(conn, account, &mailbox))
            .await
    }
}
