//! URLAUTH mailbox keys (IMAP, RFC 4467): one secret per mailbox, made
//! the first time a URL of it is authorized, gone with the mailbox
//! (`ON DELETE CASCADE`) or when the user resets it (RESETKEY), which
//! voids every URL authorized with it.

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::sql::mailbox::find_mailbox;
use crate::types::{AccountId, Result, StoreError};

fn require(conn: &Connection, account: AccountId, mailbox: &str) -> Result<i64> {
    find_mailbox(conn, account, mailbox)?
        .map(|id| id.0)
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}

/// Reader: the mailbox's key, if it has one.
pub(crate) fn key(conn: &Connection, account: AccountId, mailbox: &str) -> Result<Option<Vec<u8>>> {
    let id = require(conn, account, mailbox)?;
    conn.prepare_cached("SELECT key FROM urlauth_keys WHERE mailbox_id = ?1")
        .db()?
        .query_row([id], |row| row.get(0))
        .optional()
        .db()
}

/// Writer: the mailbox's key, `fresh` stored first if it has none.
pub(crate) fn key_or_new(
    conn: &Connection,
    account: AccountId,
    mailbox: &str,
    fresh: &[u8],
) -> Result<Vec<u8>> {
    let id = require(conn, account, mailbox)?;
    conn.prepare_cached(
        "INSERT INTO urlauth_keys (mailbox_id, key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )
    .db()?
    .execute(params![id, fresh])
    .db()?;
    conn.prepare_cached("SELECT key FROM urlauth_keys WHERE mailbox_id = ?1")
        .db()?
        .query_row([id], |row| row.get(0))
        .db()
}

/// Writer: forgets the key of one mailbox, or of all the account's.
pub(crate) fn reset(conn: &Connection, account: AccountId, mailbox: Option<&str>) -> Result<()> {
    match mailbox {
        Some(name) => {
            let id = require(conn, account, name)?;
            conn.prepare_cached("DELETE FROM urlauth_keys WHERE mailbox_id = ?1")
                .db()?
                .execute([id])
                .db()?;
        }
        None => {
            conn.prepare_cached(
                "DELETE FROM urlauth_keys
                  WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
            )
            .db()?
            .execute([account.0])
            .db()?;
        }
    }
    Ok(())
}
