//! IMAP METADATA entries (RFC 5464), per mailbox or of the server.

use super::Store;
use crate::sql::metadata;
use crate::types::*;

impl Store {
    /// The entries named by `entries` and every entry below each
    /// (`/shared/a` gives `/shared/a/b` too), lower-case names with their
    /// values; of the mailbox, or with `None` of the account's server.
    /// `NotFound` if there is no such mailbox.
    pub async fn metadata(
        &self,
        account: AccountId,
        mailbox: Option<&str>,
        entries: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let mailbox = mailbox.map(str::to_owned);
        let entries = entries.to_vec();
        self.inner
            .read(move |conn| metadata::get(conn, account, mailbox.as_deref(), &entries))
            .await
    }

    /// Sets and removes entries in one transaction, all or none. Returns
    /// false, changing nothing, when the mailbox (or server) would then
    /// hold more than `max_entries`. `NotFound` if there is no such
    /// mailbox.
    pub async fn set_metadata(
        &self,
        account: AccountId,
        mailbox: Option<&str>,
        writes: Vec<MetadataWrite>,
        max_entries: u32,
    ) -> Result<bool> {
        let mailbox = mailbox.map(str::to_owned);
        self.inner
            .write(false, move |conn| {
                metadata::set(conn, account, mailbox.as_deref(), &writes, max_entries)
            })
            .await
    }
}
