//! Capture mode: mail for any address is kept, never relayed, each
//! recipient in a mailbox of its own (an account made the first time mail
//! arrives for it, with only an INBOX), readable over IMAP and POP3 with
//! the capture password. Sandboxes: domains whose mail only the holder of
//! a token sees, purged in one call.

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::sql::accounts::{self, account_from_row};
use crate::sql::blobs;
use crate::sql::mailbox::{self, Append};
use crate::{Account, AccountId, NewEnvelope, Result, SmtpSessionId, StoreError, Timestamp};

/// The meta key holding the capture password's argon2id hash.
const PASSWORD_KEY: &str = "capture_password_hash";

/// Writer: stores the capture password's hash and gives it to every
/// captured account.
pub(crate) fn set_password(conn: &Connection, hash: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .db()?
    .execute(params![PASSWORD_KEY, hash])
    .db()?;
    conn.prepare_cached("UPDATE accounts SET password_hash = ?1 WHERE captured = 1")
        .db()?
        .execute([hash])
        .db()?;
    Ok(())
}

fn password_hash(conn: &Connection) -> Result<String> {
    let hash: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .db()?
        .query_row([PASSWORD_KEY], |row| row.get(0))
        .optional()
        .db()?;
    // Without a capture password nobody can log in as a captured address.
    Ok(hash.unwrap_or_else(|| "!".to_owned()))
}

/// Writer: the account mail for `address` goes to in capture mode: the
/// account or alias of that address if there is one, else a captured
/// account made now (with only an INBOX; its domain does not become a
/// local domain, so mail for it is relayed again once capture is off).
pub(crate) fn account_for(conn: &Connection, address: &str, now: Timestamp) -> Result<Account> {
    let address = accounts::normalize_address(address)?;
    if let Some(account) = accounts::resolve(conn, &address)? {
        return Ok(account);
    }
    let hash = password_hash(conn)?;
    conn.prepare_cached(
        "INSERT INTO accounts (address, password_hash, created_at, captured)
         VALUES (?1, ?2, ?3, 1)",
    )
    .db()?
    .execute(params![address, hash, now])
    .db()?;
    let id = AccountId(conn.last_insert_rowid());
    mailbox::create_mailbox(conn, id, "INBOX", None)?;
    mailbox::subscribe(conn, id, "INBOX", true)?;
    Ok(Account {
        id,
        address,
        created_at: now,
    })
}

/// What [`capture`] stored.
pub(crate) struct Captured {
    /// The arrival numbers of the copies, one per distinct account.
    pub arrivals: Vec<i64>,
    pub session: SmtpSessionId,
}

/// Writer: stores a message received in capture mode: the blob (with its
/// parse), the envelope, and one copy in the INBOX of each recipient's
/// account (made if needed), all in one transaction.
pub(crate) fn capture(
    conn: &Connection,
    raw: &[u8],
    hash: &str,
    summary_json: &str,
    recipients: &[String],
    envelope: &NewEnvelope,
    received_at: Timestamp,
) -> Result<Captured> {
    if recipients.is_empty() {
        return Err(StoreError::Invalid("recipients".into()));
    }
    let (envelope_id, session) =
        crate::sql::received::insert_envelope(conn, envelope, received_at)?;
    blobs::ensure(conn, hash, raw)?;
    blobs::store_summary(conn, hash, summary_json)?;
    let append = Append {
        blob_hash: hash,
        size: raw.len() as u64,
        internal_date: received_at,
        system_flags: 0,
        keywords: "",
        envelope: Some(envelope_id.0),
        blob_referenced: false,
    };
    let mut done = std::collections::HashSet::new();
    let mut arrivals = Vec::new();
    for rcpt in recipients {
        let account = account_for(conn, rcpt, received_at)?;
        if !done.insert(account.id) {
            continue;
        }
        arrivals.push(mailbox::append(conn, account.id, "INBOX", &append)?.arrival);
    }
    Ok(Captured { arrivals, session })
}

/// Writer: a new sandbox with this domain and token hash.
pub(crate) fn create_sandbox(
    conn: &Connection,
    domain: &str,
    token_hash: &str,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sandboxes (domain, token_hash, created_at) VALUES (?1, ?2, ?3)",
    )
    .db()?
    .execute(params![domain, token_hash, now])
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::AlreadyExists(format!("sandbox {domain}"))
        } else {
            crate::db::db_error(e)
        }
    })?;
    Ok(())
}

/// Reader: the sandbox domain a token hash opens, if any.
pub(crate) fn sandbox_for(conn: &Connection, token_hash: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT domain FROM sandboxes WHERE token_hash = ?1")
        .db()?
        .query_row([token_hash], |row| row.get(0))
        .optional()
        .db()
}

/// Reader: every sandbox domain with its creation time, oldest first.
pub(crate) fn sandboxes(conn: &Connection) -> Result<Vec<(String, Timestamp)>> {
    let mut stmt = conn
        .prepare_cached("SELECT domain, created_at FROM sandboxes ORDER BY created_at, domain")
        .db()?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?;
    rows.collect::<crate::db::Result<_>>().db()
}

/// The accounts whose address is in `domain` (case-insensitive).
pub(crate) fn accounts_in_domain(conn: &Connection, domain: &str) -> Result<Vec<Account>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, address, created_at FROM accounts
              WHERE substr(address, length(address) - length(?1)) = '@' || ?1
              ORDER BY id",
        )
        .db()?;
    let rows = stmt
        .query_map([domain.to_lowercase()], account_from_row)
        .db()?;
    rows.collect::<crate::db::Result<_>>().db()
}

/// Writer: deletes a sandbox and every account (with its mail) in its
/// domain. Returns whether there was such a sandbox.
pub(crate) fn delete_sandbox(conn: &Connection, domain: &str) -> Result<bool> {
    let gone = conn
        .prepare_cached("DELETE FROM sandboxes WHERE domain = ?1")
        .db()?
        .execute([domain])
        .db()?;
    for account in accounts_in_domain(conn, domain)? {
        accounts::delete_account(conn, &account.address)?;
    }
    Ok(gone > 0)
}
