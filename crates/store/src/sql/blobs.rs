//! Reference-counted raw messages, addressed by their SHA-256.

use crate::db::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::db::SqlResult;
use crate::{MessageSummary, Result};

/// The blob address of `raw`: lower-case hex SHA-256.
pub(crate) fn hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// Writer: takes a reference on the blob `hash`, storing `raw` if it is not
/// there yet.
pub(crate) fn add_ref(conn: &Connection, hash: &str, raw: &[u8]) -> Result<()> {
    let updated = conn
        .prepare_cached("UPDATE blobs SET refcount = refcount + 1 WHERE hash = ?1")
        .db()?
        .execute([hash])
        .db()?;
    if updated == 0 {
        let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
        conn.prepare_cached(
            "INSERT INTO blobs (hash, size, refcount, data, summary) VALUES (?1, ?2, 1, ?3, NULL)",
        )
        .db()?
        .execute(params![hash, size, raw])
        .db()?;
    }
    Ok(())
}

/// Writer: stores `raw` under `hash` with no reference yet, unless it is
/// there already; the caller takes the reference in the same transaction.
pub(crate) fn ensure(conn: &Connection, hash: &str, raw: &[u8]) -> Result<()> {
    let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO blobs (hash, size, refcount, data, summary) VALUES (?1, ?2, 0, ?3, NULL)
         ON CONFLICT (hash) DO NOTHING",
    )
    .db()?
    .execute(params![hash, size, raw])
    .db()?;
    Ok(())
}

/// Writer: stores `raw` under `hash` holding `refs` references, or adds
/// `refs` to its count if it is there already: one write of the blob's
/// row, where [`ensure`] and an [`incref`] per reference make `1 + refs`
/// (each rewriting its record, overflow pages and all).
pub(crate) fn store_referenced(conn: &Connection, hash: &str, raw: &[u8], refs: i64) -> Result<()> {
    let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO blobs (hash, size, refcount, data, summary) VALUES (?1, ?2, ?3, ?4, NULL)
         ON CONFLICT (hash) DO UPDATE SET refcount = blobs.refcount + excluded.refcount",
    )
    .db()?
    .execute(params![hash, size, refs, raw])
    .db()?;
    Ok(())
}

/// Writer: takes another reference on an existing blob.
pub(crate) fn incref(conn: &Connection, hash: &str) -> Result<()> {
    let updated = conn
        .prepare_cached("UPDATE blobs SET refcount = refcount + 1 WHERE hash = ?1")
        .db()?
        .execute([hash])
        .db()?;
    if updated == 0 {
        return Err(crate::StoreError::Database(format!(
            "blob {hash} is missing"
        )));
    }
    Ok(())
}

/// Writer: drops `n` references; the blob goes when none are left.
pub(crate) fn release(conn: &Connection, hash: &str, n: i64) -> Result<()> {
    conn.prepare_cached("UPDATE blobs SET refcount = max(refcount - ?2, 0) WHERE hash = ?1")
        .db()?
        .execute(params![hash, n])
        .db()?;
    conn.prepare_cached("DELETE FROM blobs WHERE hash = ?1 AND refcount = 0")
        .db()?
        .execute([hash])
        .db()?;
    Ok(())
}

/// Writer: caches the parse of a blob (first one wins).
pub(crate) fn store_summary(conn: &Connection, hash: &str, summary_json: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO summaries (hash, summary) VALUES (?1, ?2) ON CONFLICT (hash) DO NOTHING",
    )
    .db()?
    .execute(params![hash, summary_json])
    .db()?;
    Ok(())
}

/// Reader: whether the parse of a blob is cached.
pub(crate) fn has_summary(conn: &Connection, hash: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM summaries WHERE hash = ?1)")
        .db()?
        .query_row([hash], |row| row.get(0))
        .db()
}

/// Reader: the bytes of a blob.
pub(crate) fn data(conn: &Connection, hash: &str) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT data FROM blobs WHERE hash = ?1")
        .db()?
        .query_row([hash], |row| row.get(0))
        .optional()
        .db()
}

/// Reader: the number of blobs stored.
pub(crate) fn count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |row| row.get(0))
        .db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Decodes a cached summary; a missing or unreadable one becomes the
/// minimal summary of an unparsed message of `size` bytes.
pub(crate) fn decode_summary(json: Option<&str>, size: u64) -> MessageSummary {
    match json.map(serde_json::from_str::<MessageSummary>) {
        Some(Ok(summary)) => summary,
        other => {
            if let Some(Err(e)) = other {
                tracing::warn!(error = %e, "unreadable cached message summary");
            }
            let mut summary = crate::parse::minimal(b"");
            summary.body.body_end = size;
            summary
        }
    }
}
