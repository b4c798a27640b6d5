//! Summaries made again when the parser changes.
//!
//! A summary is cached per blob ([`crate::sql::blobs::store_summary`]) and read
//! ever after, so a parser that learns better (see
//! [`SUMMARY_VERSION`](crate::parse::SUMMARY_VERSION)) would never reach the
//! mail already stored. The version the cached summaries were made with is
//! the `meta` key [`VERSION_KEY`]; when it is older than the parser's, every
//! blob is parsed again, once, at open, on the writer connection before any
//! request runs, so nothing reads or caches an old summary meanwhile. The
//! work goes in batches of one transaction each, resuming after the last
//! blob done (the `meta` key [`CURSOR_KEY`]), so other processes on the
//! data dir wait at most a batch for the lock and a crash loses nothing.

use std::time::Instant;

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::parse::{summarize, SUMMARY_VERSION};
use crate::{Result, StoreError};

/// The parser version the cached summaries were made with.
pub(crate) const VERSION_KEY: &str = "summary_version";
/// The hash of the last blob parsed again by an unfinished run.
const CURSOR_KEY: &str = "summary_reparse_after";

/// Blobs parsed again per transaction, and their bytes at most (a batch
/// ends after the blob that reaches it): another process waiting for the
/// lock waits for one batch, well within its busy timeout.
const BATCH: usize = 200;
const BATCH_BYTES: usize = 16 << 20;

/// Brings every cached summary up to [`SUMMARY_VERSION`]; a no-op when it
/// is there already. Returns how many blobs were parsed again.
pub(crate) fn bring_up_to_date(conn: &Connection) -> Result<u64> {
    if stored_version(conn)? >= SUMMARY_VERSION {
        return Ok(0);
    }
    let started = Instant::now();
    let total: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .db()?;
    if total > 0 {
        tracing::info!(
            blobs = total,
            version = SUMMARY_VERSION,
            "re-parsing stored messages for the new summary format"
        );
    }
    let mut done = 0u64;
    loop {
        let (n, finished) = batch(conn)?;
        done += n;
        if finished {
            break;
        }
    }
    if total > 0 {
        tracing::info!(
            blobs = done,
            millis = started.elapsed().as_millis() as u64,
            "stored messages re-parsed"
        );
    }
    Ok(done)
}

fn stored_version(conn: &Connection) -> Result<i64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [VERSION_KEY],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    Ok(v.unwrap_or(1))
}

/// One transaction: up to [`BATCH`] blobs after the cursor; at the end,
/// the version written and the cursor dropped. Returns how many were done
/// and whether all are.
fn batch(conn: &Connection) -> Result<(u64, bool)> {
    crate::sql::engine::begin_write(conn).db()?;
    let result = (|| {
        // Another process may have finished (or moved on) meanwhile.
        if stored_version(conn)? >= SUMMARY_VERSION {
            return Ok((0, true));
        }
        let after: String = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [CURSOR_KEY], |r| {
                r.get(0)
            })
            .optional()
            .db()?
            .unwrap_or_default();
        let mut select = conn
            .prepare("SELECT hash, data FROM blobs WHERE hash > ?1 ORDER BY hash LIMIT ?2")
            .db()?;
        let mut rows = select.query(params![after, BATCH as i64]).db()?;
        let mut upsert = conn
            .prepare(
                "INSERT INTO summaries (hash, summary) VALUES (?1, ?2)
                 ON CONFLICT (hash) DO UPDATE SET summary = excluded.summary",
            )
            .db()?;
        let (mut n, mut bytes, mut full) = (0u64, 0usize, false);
        let mut last = None;
        while let Some(row) = rows.next().db()? {
            let hash: String = row.get(0).db()?;
            let data = row.get_ref(1).db()?.as_blob().unwrap_or_default();
            let json = serde_json::to_string(&summarize(data))
                .map_err(|e| StoreError::Database(format!("summary encoding: {e}")))?;
            upsert.execute(params![hash, json]).db()?;
            last = Some(hash);
            n += 1;
            bytes += data.len();
            if n == BATCH as u64 || bytes >= BATCH_BYTES {
                full = true;
                break;
            }
        }
        let set = "INSERT INTO meta (key, value) VALUES (?1, ?2)
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        match last {
            Some(hash) if full => {
                conn.execute(set, params![CURSOR_KEY, hash]).db()?;
                Ok((n, false))
            }
            _ => {
                conn.execute(set, params![VERSION_KEY, SUMMARY_VERSION])
                    .db()?;
                conn.execute("DELETE FROM meta WHERE key = ?1", [CURSOR_KEY])
                    .db()?;
                Ok((n, true))
            }
        }
    })();
    match result {
        Ok(r) => {
            conn.execute_batch("COMMIT").db()?;
            Ok(r)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageSummary, Store};

    const RAW: &[u8] = b"From: a@b\r\nTo: localonly, bob@example.com\r\n\
Date: Thu, 5 Feb 2020 10:00 EST\r\nSubject: old\r\n\r\nbody\r\n";

    /// A summary as the version-1 parser cached it (mail-parser's view:
    /// `localonly` dropped, the date not understood).
    const OLD_JSON: &str = r#"{"date":null,"subject":"old","from":[{"name":null,"address":"a@b"}],"sender":[],"reply_to":[],"to":[{"name":null,"address":"bob@example.com"}],"cc":[],"bcc":[],"in_reply_to":null,"message_id":null,"header_len":80,"raw":{"date":[84],"subject":[111,108,100],"in_reply_to":null,"message_id":null},"body":{"content_type":"text","content_subtype":"plain","params":[["charset","us-ascii"]],"content_id":null,"content_description":null,"encoding":"7bit","disposition":null,"disposition_params":[],"language":[],"location":null,"header_offset":0,"body_offset":80,"body_end":86,"lines":1,"parts":[],"message":null}}"#;

    fn db(dir: &std::path::Path) -> Connection {
        Connection::Sqlite(
            rusqlite::Connection::open(dir.join(crate::sqlite::schema::DB_FILE)).unwrap(),
        )
    }

    fn summary(conn: &Connection, hash: &str) -> Option<String> {
        conn.query_row(
            "SELECT summary FROM summaries WHERE hash = ?1",
            [hash],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
    }

    fn add_blob(conn: &Connection, raw: &[u8]) -> String {
        let hash = crate::sql::blobs::hash(raw);
        crate::sql::blobs::ensure(conn, &hash, raw).unwrap();
        hash
    }

    /// Summaries cached in the old shape, or not at all, are made again
    /// when a store opens; the old JSON itself still decodes.
    #[test]
    fn old_and_missing_summaries_are_made_again_at_open() {
        if crate::tests::sqlite_only("edits the SQLite file directly") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let (old, missing, many);
        {
            let conn = db(dir.path());
            // A fresh store is current.
            assert_eq!(stored_version(&conn).unwrap(), SUMMARY_VERSION);
            old = add_blob(&conn, RAW);
            crate::sql::blobs::store_summary(&conn, &old, OLD_JSON).unwrap();
            missing = add_blob(&conn, b"Subject: never parsed\r\n\r\nx\r\n");
            // More than a batch, to cross the cursor.
            many = (0..BATCH + 5)
                .map(|i| add_blob(&conn, format!("Subject: {i}\r\n\r\n").as_bytes()))
                .collect::<Vec<_>>();
            conn.execute("DELETE FROM meta WHERE key = ?1", [VERSION_KEY])
                .unwrap();
            let decoded: MessageSummary =
                crate::sql::blobs::decode_summary(Some(OLD_JSON), RAW.len() as u64);
            assert_eq!(decoded.subject.as_deref(), Some("old"));
            assert_eq!(decoded.addresses, None);
        }

        drop(Store::open(dir.path()).unwrap());
        let conn = db(dir.path());
        assert_eq!(stored_version(&conn).unwrap(), SUMMARY_VERSION);
        let cursor: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [CURSOR_KEY], |r| {
                r.get(0)
            })
            .optional()
            .unwrap();
        assert_eq!(cursor, None);
        let s: MessageSummary = serde_json::from_str(&summary(&conn, &old).unwrap()).unwrap();
        assert_eq!(s, summarize(RAW));
        assert!(s.date.is_some());
        assert_eq!(s.addresses.as_ref().unwrap().to.len(), 2);
        let s: MessageSummary = serde_json::from_str(&summary(&conn, &missing).unwrap()).unwrap();
        assert_eq!(s.subject.as_deref(), Some("never parsed"));
        for hash in &many {
            assert!(summary(&conn, hash).is_some());
        }
        // Once done, opening again parses nothing.
        assert_eq!(bring_up_to_date(&conn).unwrap(), 0);
    }
}
