//! Accounts, domains and aliases: SQL run on the writer or a reader, and
//! password hashing (run on blocking threads by the caller).

use crate::db::{params, Connection, OptionalExtension, Row};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use crate::db::SqlResult;
use crate::sql::blobs;
use crate::sql::mailbox::create_mailbox;
use crate::{Account, AccountId, Result, StoreError, Timestamp};

/// The mailboxes every new account gets, with their RFC 6154 attribute.
pub(crate) const DEFAULT_MAILBOXES: &[(&str, Option<&str>)] = &[
    ("INBOX", None),
    ("Drafts", Some("\\Drafts")),
    ("Sent", Some("\\Sent")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

/// An argon2id hash (default parameters) that no password is known for:
/// `authenticate` verifies against it for unknown accounts so that they
/// take as long as known ones.
pub(crate) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$W/2Pcoe2SA27Uj6vQ5vJdw$+EtD64cxn3SpGMaBQ2kBfYTmTcr3IiX2HMCQQq4T5QU";

/// Checks and lower-cases an address: one `@`, a local part and a domain,
/// no whitespace or control characters.
pub(crate) fn normalize_address(address: &str) -> Result<String> {
    let invalid = || StoreError::Invalid("address".into());
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = address.split_once('@').ok_or_else(invalid)?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(invalid());
    }
    Ok(address.to_lowercase())
}

/// Checks and lower-cases a domain name.
pub(crate) fn normalize_domain(domain: &str) -> Result<String> {
    if domain.is_empty()
        || domain
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(StoreError::Invalid("domain".into()));
    }
    Ok(domain.to_lowercase())
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Hashes a password into a PHC string (argon2id, default parameters, a
/// fresh random salt). CPU-heavy: call on a blocking thread.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(StoreError::Invalid("password".into()));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Database(format!("password hashing failed: {e}")))
}

/// Verifies a password against a PHC string, or against the dummy hash when
/// there is none. CPU-heavy: call on a blocking thread.
pub(crate) fn verify_password(password: &str, hash: Option<&str>) -> bool {
    let argon2 = Argon2::default();
    match hash {
        Some(hash) => match argon2.verify_password(password.as_bytes(), hash) {
            Ok(()) => true,
            Err(argon2::password_hash::Error::PasswordInvalid) => false,
            Err(e) => {
                tracing::warn!(error = %e, "stored password hash is unusable");
                false
            }
        },
        None => {
            let _ = argon2.verify_password(password.as_bytes(), DUMMY_HASH);
            false
        }
    }
}

pub(crate) fn account_from_row(row: &Row<'_>) -> crate::db::Result<Account> {
    Ok(Account {
        id: AccountId(row.get(0)?),
        address: row.get(1)?,
        created_at: row.get(2)?,
    })
}

fn address_taken(conn: &Connection, address: &str) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE address = ?1)
             OR EXISTS (SELECT 1 FROM aliases WHERE address = ?1)",
    )
    .db()?
    .query_row([address], |row| row.get(0))
    .db()
}

fn add_domain_row(conn: &Connection, domain: &str) -> Result<()> {
    conn.prepare_cached("INSERT INTO domains (name) VALUES (?1) ON CONFLICT DO NOTHING")
        .db()?
        .execute([domain])
        .db()?;
    Ok(())
}

/// Writer: creates the account, its domain and its default mailboxes.
pub(crate) fn insert_account(
    conn: &Connection,
    address: &str,
    password_hash: &str,
    now: Timestamp,
) -> Result<Account> {
    if address_taken(conn, address)? {
        return Err(StoreError::AlreadyExists(format!("account {address}")));
    }
    conn.prepare_cached(
        "INSERT INTO accounts (address, password_hash, created_at) VALUES (?1, ?2, ?3)",
    )
    .db()?
    .execute(params![address, password_hash, now])
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::AlreadyExists(format!("account {address}"))
        } else {
            crate::db::db_error(e)
        }
    })?;
    let id = AccountId(conn.last_insert_rowid());
    add_domain_row(conn, domain_of(address))?;
    for (name, special_use) in DEFAULT_MAILBOXES {
        create_mailbox(conn, id, name, *special_use)?;
        crate::sql::mailbox::subscribe(conn, id, name, true)?;
    }
    Ok(Account {
        id,
        address: address.to_owned(),
        created_at: now,
    })
}

/// Writer.
pub(crate) fn update_password(conn: &Connection, address: &str, hash: &str) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE accounts SET password_hash = ?2 WHERE address = ?1")
        .db()?
        .execute(params![address, hash])
        .db()?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("account {address}")));
    }
    Ok(())
}

/// Writer: removes the account with its mailboxes, messages (releasing
/// their blobs) and aliases.
pub(crate) fn delete_account(conn: &Connection, address: &str) -> Result<()> {
    let id: i64 = conn
        .prepare_cached("SELECT id FROM accounts WHERE address = ?1")
        .db()?
        .query_row([address], |row| row.get(0))
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;

    let refs: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT m.blob_hash, count(*) FROM messages m
               JOIN mailboxes b ON b.id = m.mailbox_id
              WHERE b.account_id = ?1
              GROUP BY m.blob_hash",
        )
        .db()?
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?
        .collect::<crate::db::Result<_>>()
        .db()?;
    conn.prepare_cached(
        "DELETE FROM messages
          WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
    )
    .db()?
    .execute([id])
    .db()?;
    for (hash, n) in refs {
        blobs::release(conn, &hash, n)?;
    }
    conn.prepare_cached("DELETE FROM mailboxes WHERE account_id = ?1")
        .db()?
        .execute([id])
        .db()?;
    conn.prepare_cached("DELETE FROM subscriptions WHERE account_id = ?1")
        .db()?
        .execute([id])
        .db()?;
    conn.prepare_cached("DELETE FROM aliases WHERE account_id = ?1")
        .db()?
        .execute([id])
        .db()?;
    conn.prepare_cached("DELETE FROM accounts WHERE id = ?1")
        .db()?
        .execute([id])
        .db()?;
    Ok(())
}

/// Reader.
pub(crate) fn list_accounts(conn: &Connection) -> Result<Vec<Account>> {
    conn.prepare_cached("SELECT id, address, created_at FROM accounts ORDER BY address")
        .db()?
        .query_map([], account_from_row)
        .db()?
        .collect::<crate::db::Result<_>>()
        .db()
}

/// Reader.
pub(crate) fn find_account(conn: &Connection, address: &str) -> Result<Option<Account>> {
    conn.prepare_cached("SELECT id, address, created_at FROM accounts WHERE address = ?1")
        .db()?
        .query_row([address], account_from_row)
        .optional()
        .db()
}

/// Reader: the account and its password hash.
pub(crate) fn find_credentials(
    conn: &Connection,
    address: &str,
) -> Result<Option<(Account, String)>> {
    conn.prepare_cached(
        "SELECT id, address, created_at, password_hash FROM accounts WHERE address = ?1",
    )
    .db()?
    .query_row([address], |row| Ok((account_from_row(row)?, row.get(3)?)))
    .optional()
    .db()
}

/// Writer.
pub(crate) fn add_domain(conn: &Connection, domain: &str) -> Result<()> {
    add_domain_row(conn, domain)
}

/// Reader.
pub(crate) fn list_domains(conn: &Connection) -> Result<Vec<String>> {
    conn.prepare_cached("SELECT name FROM domains ORDER BY name")
        .db()?
        .query_map([], |row| row.get(0))
        .db()?
        .collect::<crate::db::Result<_>>()
        .db()
}

/// Reader.
pub(crate) fn is_local_domain(conn: &Connection, domain: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM domains WHERE name = ?1)")
        .db()?
        .query_row([domain], |row| row.get(0))
        .db()
}

/// Writer: `alias` → the account `target`; the alias's domain becomes local.
pub(crate) fn add_alias(conn: &Connection, alias: &str, target: &str) -> Result<()> {
    let account = find_account(conn, target)?
        .ok_or_else(|| StoreError::NotFound(format!("account {target}")))?;
    if address_taken(conn, alias)? {
        return Err(StoreError::AlreadyExists(format!("address {alias}")));
    }
    conn.prepare_cached("INSERT INTO aliases (address, account_id) VALUES (?1, ?2)")
        .db()?
        .execute(params![alias, account.id.0])
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::AlreadyExists(format!("address {alias}"))
            } else {
                crate::db::db_error(e)
            }
        })?;
    add_domain_row(conn, domain_of(alias))
}

/// Reader: the account itself, or an alias's target.
pub(crate) fn resolve(conn: &Connection, address: &str) -> Result<Option<Account>> {
    resolve_exact(conn, address)
}

/// Reader: where `postmaster@domain` goes when it is neither an account
/// nor an alias (RFC 5321 4.5.1 requires every local domain to take
/// postmaster mail): the domain's oldest account, else the oldest account
/// of all.
pub(crate) fn postmaster_fallback(conn: &Connection, domain: &str) -> Result<Option<Account>> {
    let in_domain = conn
        .prepare_cached(
            "SELECT id, address, created_at FROM accounts
              WHERE address LIKE '%@' || ?1 ESCAPE '\\'
              ORDER BY id LIMIT 1",
        )
        .db()?
        .query_row([escape_like(domain)], account_from_row)
        .optional()
        .db()?;
    if in_domain.is_some() {
        return Ok(in_domain);
    }
    conn.prepare_cached("SELECT id, address, created_at FROM accounts ORDER BY id LIMIT 1")
        .db()?
        .query_row([], account_from_row)
        .optional()
        .db()
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn resolve_exact(conn: &Connection, address: &str) -> Result<Option<Account>> {
    conn.prepare_cached(
        "SELECT id, address, created_at FROM accounts WHERE address = ?1
         UNION ALL
         SELECT a.id, a.address, a.created_at FROM aliases x
           JOIN accounts a ON a.id = x.account_id
          WHERE x.address = ?1
         LIMIT 1",
    )
    .db()?
    .query_row([address], account_from_row)
    .optional()
    .db()
}
