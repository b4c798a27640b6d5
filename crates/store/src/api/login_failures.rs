//! Failed logins per client address, shared by every process and node on
//! the store (see [`crate::sql::login_failures`]).

use super::Store;
use crate::sql::login_failures;
use crate::types::*;

impl Store {
    /// Failed logins from `ip` (a canonical address in text) whose last
    /// one was at or after `since`.
    pub async fn login_failures(&self, ip: &str, since: Timestamp) -> Result<u32> {
        let ip = ip.to_owned();
        self.inner
            .lookup(move |conn| login_failures::count(conn, &ip, since))
            .await
    }

    /// Counts one more failed login from `ip` at `now`, from one again if
    /// its last was before `since`; returns the count. Rows older than
    /// `since` go, and past `max_entries` addresses the oldest half.
    pub async fn record_login_failure(
        &self,
        ip: &str,
        now: Timestamp,
        since: Timestamp,
        max_entries: u32,
    ) -> Result<u32> {
        let ip = ip.to_owned();
        self.inner
            .write_change(false, move |conn| {
                login_failures::record(conn, &ip, now, since, max_entries)
            })
            .await
    }

    /// Forgets `ip`'s failed logins.
    pub async fn forget_login_failures(&self, ip: &str) -> Result<()> {
        let ip = ip.to_owned();
        self.inner
            .write_change(false, move |conn| login_failures::forget(conn, &ip))
            .await
    }
}
