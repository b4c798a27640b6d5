//! Quotas (IMAP QUOTA, RFC 9208): each account's limits and usage.
//!
//! Usage is two counters on the account's row ([`add_usage`]), moved in
//! the transaction that adds or removes messages, by the only code that
//! does: `mailbox::append` (every message stored goes through it),
//! `mailbox::expunge` and the emptying of a deleted mailbox (an account's
//! delete takes its row). A check reads them on the writer, inside the
//! request that then writes:
//! the writer runs one request at a time, so two sessions cannot both
//! pass a check that only one of them fits.

use crate::db::{params, Connection, OptionalExtension, Row};

use crate::db::SqlResult;
use crate::{AccountId, Quota, QuotaLimit, Result, StoreError};

const COLUMNS: &str = "quota_storage_kib, quota_messages, used_bytes, used_messages";

fn quota_from_row(row: &Row<'_>) -> crate::db::Result<Quota> {
    let count = |v: Option<i64>| v.map(|v| u64::try_from(v).unwrap_or(0));
    Ok(Quota {
        storage_limit_kib: count(row.get(0)?),
        message_limit: count(row.get(1)?),
        used_bytes: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        used_messages: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
    })
}

/// Reader or writer: the account's quota; `NotFound` if it is gone.
pub(crate) fn quota(conn: &Connection, account: AccountId) -> Result<Quota> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"))
        .db()?
        .query_row([account.0], quota_from_row)
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NotFound(format!("account {}", account.0)))
}

/// The account's quota if it has an INBOX (one statement for what a
/// delivery checks first); `None` if the account or its INBOX is gone.
pub(crate) fn inbox_quota(conn: &Connection, account: AccountId) -> Result<Option<Quota>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts
          WHERE id = ?1
            AND EXISTS (SELECT 1 FROM mailboxes WHERE account_id = ?1 AND name = 'INBOX')"
    ))
    .db()?
    .query_row([account.0], quota_from_row)
    .optional()
    .db()
}

/// Writer: `OverQuota` unless `bytes` more in `messages` more messages
/// fit the account's limits. Call before the additions, in their request.
pub(crate) fn check(
    conn: &Connection,
    account: AccountId,
    bytes: u64,
    messages: u64,
) -> Result<()> {
    let quota = quota(conn, account)?;
    if quota.fits(bytes, messages) {
        Ok(())
    } else {
        Err(over_quota(&quota))
    }
}

/// The error for an addition that `quota` has no room for.
pub(crate) fn over_quota(quota: &Quota) -> StoreError {
    let mut limits = Vec::new();
    if let Some(kib) = quota.storage_limit_kib {
        limits.push(format!("{} of {kib} KiB used", quota.used_kib()));
    }
    if let Some(n) = quota.message_limit {
        limits.push(format!("{} of {n} messages", quota.used_messages));
    }
    StoreError::OverQuota(limits.join(", "))
}

fn limit_value(limit: QuotaLimit, current: Option<u64>) -> Result<Option<i64>> {
    let value = match limit {
        QuotaLimit::Keep => current,
        QuotaLimit::Unlimited => None,
        QuotaLimit::Set(n) => Some(n),
    };
    value
        .map(|n| i64::try_from(n).map_err(|_| StoreError::Invalid("quota limit".into())))
        .transpose()
}

/// Writer: changes the limits of the account with this address; returns
/// its quota after. `NotFound` if there is no such account.
pub(crate) fn set_quota(
    conn: &Connection,
    address: &str,
    storage_kib: QuotaLimit,
    messages: QuotaLimit,
) -> Result<Quota> {
    let id: i64 = conn
        .prepare_cached("SELECT id FROM accounts WHERE address = ?1")
        .db()?
        .query_row([address], |row| row.get(0))
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
    let before = quota(conn, AccountId(id))?;
    let storage = limit_value(storage_kib, before.storage_limit_kib)?;
    let messages = limit_value(messages, before.message_limit)?;
    conn.prepare_cached(
        "UPDATE accounts SET quota_storage_kib = ?2, quota_messages = ?3 WHERE id = ?1",
    )
    .db()?
    .execute(params![id, storage, messages])
    .db()?;
    quota(conn, AccountId(id))
}

/// Reader: how many of the mailbox's messages have `\Deleted`, and the sum
/// of their sizes (what an EXPUNGE would free: STATUS DELETED and
/// DELETED-STORAGE). `NotFound` if there is no such mailbox.
pub(crate) fn deleted_in_mailbox(
    conn: &Connection,
    account: AccountId,
    mailbox: &str,
) -> Result<(u64, u64)> {
    let id = crate::sql::mailbox::find_mailbox(conn, account, mailbox)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
    let (count, bytes): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(size), 0) FROM messages
              WHERE mailbox_id = ?1 AND system_flags & 8 <> 0",
        )
        .db()?
        .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?;
    Ok((
        u64::try_from(count).unwrap_or(0),
        u64::try_from(bytes).unwrap_or(0),
    ))
}

/// Writer: moves the account's usage by `bytes` in `messages` messages
/// (negative when they go), in the request that adds or removes them.
pub(crate) fn add_usage(
    conn: &Connection,
    account: AccountId,
    bytes: i64,
    messages: i64,
) -> Result<()> {
    if messages == 0 && bytes == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE accounts SET used_bytes = used_bytes + ?2, used_messages = used_messages + ?3
          WHERE id = ?1",
    )
    .db()?
    .execute(params![account.0, bytes, messages])
    .db()?;
    Ok(())
}
