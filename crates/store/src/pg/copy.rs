//! Copying a data dir's SQLite store into an empty PostgreSQL database
//! (`postern store copy --to URL`), so that a server moves to the
//! PostgreSQL backend with nothing changed for its clients: every id,
//! UID, UIDVALIDITY, modseq, flag, expunge tombstone and change-feed row,
//! the queue with each recipient's state, and the `meta` counters
//! (UIDVALIDITY, arrival and queue-id sequences, epochs, the capture
//! password) come across as they are.
//!
//! How:
//! - A data dir whose store a running process has open (a `postern up`,
//!   whose queue manager holds a claim lock, [`crate::claims`]) is
//!   refused. The SQLite side is read in one read transaction: a
//!   consistent snapshot even if some other writer is still at work (what
//!   it writes after the snapshot is not copied). Its schema is brought
//!   up to date first, as any `postern` command does.
//! - The PostgreSQL side is migrated by the store's own migrations, then
//!   everything is written in one transaction (all or nothing) holding
//!   the writers' advisory lock ([`super::WRITE_LOCK`]). A database
//!   whose tables hold any row is refused.
//! - Tables go in the order their foreign keys need (read from SQLite's
//!   schema), `meta` last, so that its values replace what the
//!   PostgreSQL triggers bumped while mailboxes and subscriptions were
//!   inserted. Each table's columns are SQLite's: a column PostgreSQL
//!   lacks is an error (the two schemas disagree), one only PostgreSQL
//!   has takes its default.
//! - Rows stream: a few hundred at a time per INSERT, and fewer when
//!   they are large (message blobs), so memory stays bounded whatever
//!   the store's size.
//! - Identity columns then continue after the copied ids (`setval`),
//!   after SQLite's AUTOINCREMENT high-water marks and its envelope
//!   counter too, so that no SMTP session or envelope id is ever given
//!   twice.
//! - `leases` (which live process holds a POP3 maildrop) is not copied,
//!   and queue claims are let go: their holders are gone.

use std::path::Path;

use crate::db::SqlResult;
use crate::db::{Connection, Value};
use crate::sqlite::schema;
use crate::{Result, StoreError};

/// Tables not copied: see the module doc.
const SKIPPED: &[&str] = &["leases"];

/// Rows of one INSERT statement at most.
const BATCH_ROWS: usize = 256;

/// Bytes of text and blobs gathered before they are written (rows
/// larger than this go one at a time).
const BATCH_BYTES: usize = 4 << 20;

/// PostgreSQL takes at most 65,535 parameters in one statement.
const MAX_PARAMETERS: usize = 65_000;

/// What was copied of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopied {
    pub table: String,
    pub rows: u64,
    /// Bytes of text and blob values (message bytes, summaries, names...).
    pub bytes: u64,
}

/// Copies the SQLite store of `data_dir` into the empty PostgreSQL
/// database at `url` (with TLS as its `sslmode` asks, `ca_file` trusted
/// as `[store] ca_file` is); `progress` hears of each table once it is
/// copied (nothing is committed before the last). Blocking: it runs the
/// PostgreSQL client on a thread of its own.
pub fn copy_to_postgres(
    data_dir: &Path,
    url: &str,
    ca_file: Option<&Path>,
    progress: &mut (dyn FnMut(&TableCopied) + Send),
) -> Result<Vec<TableCopied>> {
    // The blocking client runs a runtime of its own, which cannot be
    // entered from a tokio worker (the caller may be one).
    std::thread::scope(|scope| {
        scope
            .spawn(|| copy_here(data_dir, url, ca_file, progress))
            .join()
            .unwrap_or_else(|_| {
                Err(StoreError::Database(
                    "internal error: the copy to PostgreSQL panicked".into(),
                ))
            })
    })
}

/// One table as SQLite has it.
struct Table {
    name: String,
    columns: Vec<String>,
    /// Tables its foreign keys point at.
    references: Vec<String>,
}

fn copy_here(
    data_dir: &Path,
    url: &str,
    ca_file: Option<&Path>,
    progress: &mut dyn FnMut(&TableCopied),
) -> Result<Vec<TableCopied>> {
    let path = data_dir.join(schema::DB_FILE);
    if !path.is_file() {
        return Err(StoreError::NotFound(format!(
            "a SQLite store ({})",
            path.display()
        )));
    }
    // A running server would go on writing what the copy leaves out.
    if crate::claims::live_owners(data_dir) > 0 {
        return Err(StoreError::Invalid(format!(
            "source: the store in {} is in use (a postern process runs on it); stop it first",
            data_dir.display()
        )));
    }
    // Bring the SQLite schema up to date (as `postern up` would), so its
    // columns are the ones PostgreSQL's schema mirrors.
    drop(schema::open_writer(&path)?);
    let source = schema::open_reader(&path)?;
    // One read transaction for the whole copy: one snapshot.
    source.execute_batch("BEGIN").db()?;
    let tables = sqlite_tables(&source)?;
    let sequences = sqlite_sequences(&source)?;

    let target = super::open_writer(&super::Target::new(url, ca_file)?)?;
    target.execute_batch("BEGIN").db()?;
    let result = copy_tables(&source, &target, &tables, &sequences, progress);
    let _ = source.execute_batch("COMMIT");
    match result {
        Ok(copied) => {
            target.execute_batch("COMMIT").db()?;
            Ok(copied)
        }
        Err(e) => {
            let _ = target.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn copy_tables(
    source: &rusqlite::Connection,
    target: &Connection,
    tables: &[Table],
    sequences: &[(String, i64)],
    progress: &mut dyn FnMut(&TableCopied),
) -> Result<Vec<TableCopied>> {
    // Every writer of every node waits while the copy runs.
    target
        .query_row(
            "SELECT pg_advisory_xact_lock(?1)",
            [super::WRITE_LOCK],
            |_| Ok(()),
        )
        .db()?;
    for table in tables {
        let target_columns = pg_columns(target, &table.name)?;
        if target_columns.is_empty() {
            return Err(StoreError::Database(format!(
                "the PostgreSQL schema has no table {:?}, which the SQLite store has \
                 (this program's two schemas disagree)",
                table.name
            )));
        }
        if let Some(missing) = table.columns.iter().find(|c| !target_columns.contains(c)) {
            return Err(StoreError::Database(format!(
                "the PostgreSQL table {:?} has no column {missing:?}, which the SQLite store has \
                 (this program's two schemas disagree)",
                table.name
            )));
        }
        // meta holds the rows its migrations wrote: not data.
        if table.name != "meta" && has_rows(target, &table.name)? {
            return Err(StoreError::Invalid(format!(
                "target: the PostgreSQL database is not empty (its table {} has rows); \
                 copy into an empty database",
                table.name
            )));
        }
    }
    let mut copied = Vec::with_capacity(tables.len());
    for table in tables {
        let done = copy_table(source, target, table)?;
        progress(&done);
        copied.push(done);
    }
    continue_identities(target, tables, sequences)?;
    release_claims(target, tables)?;
    Ok(copied)
}

/// SQLite's tables in an order their foreign keys allow (`meta` last),
/// without SQLite's own and [`SKIPPED`].
fn sqlite_tables(conn: &rusqlite::Connection) -> Result<Vec<Table>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master
              WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
              ORDER BY rowid",
        )
        .db()?
        .query_map([], |row| row.get(0))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    let mut tables = Vec::new();
    for name in names {
        if SKIPPED.contains(&name.as_str()) {
            continue;
        }
        let columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info({})", quoted(&name)))
            .db()?
            .query_map([], |row| row.get(1))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        let references: Vec<String> = conn
            .prepare(&format!("PRAGMA foreign_key_list({})", quoted(&name)))
            .db()?
            .query_map([], |row| row.get(2))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        tables.push(Table {
            name,
            columns,
            references,
        });
    }
    Ok(in_dependency_order(tables))
}

/// Referenced tables before the tables that reference them, otherwise
/// in SQLite's order; `meta` last.
fn in_dependency_order(mut pending: Vec<Table>) -> Vec<Table> {
    let mut ordered: Vec<Table> = Vec::with_capacity(pending.len());
    let meta = pending
        .iter()
        .position(|t| t.name == "meta")
        .map(|i| pending.remove(i));
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            t.references
                .iter()
                .all(|r| *r == t.name || !pending.iter().any(|p| p.name == *r))
        });
        // A cycle (none in the schema): keep SQLite's order.
        ordered.push(pending.remove(ready.unwrap_or(0)));
    }
    ordered.extend(meta);
    ordered
}

/// High-water marks of ids SQLite will never give again: AUTOINCREMENT's,
/// and the envelope counter in `meta` (envelope ids come from it).
fn sqlite_sequences(conn: &rusqlite::Connection) -> Result<Vec<(String, i64)>> {
    let mut marks: Vec<(String, i64)> = conn
        .prepare(
            "SELECT 'envelopes', CAST(value AS INTEGER) FROM meta WHERE key = 'last_envelope_id'",
        )
        .db()?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'",
            [],
            |row| row.get(0),
        )
        .db()?;
    if exists {
        let autoincrement: Vec<(String, i64)> = conn
            .prepare("SELECT name, seq FROM sqlite_sequence")
            .db()?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        marks.extend(autoincrement);
    }
    Ok(marks)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns of PostgreSQL's table `name` (none if it has no such
/// table).
fn pg_columns(conn: &Connection, name: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(
            "SELECT CAST(attname AS TEXT) FROM pg_attribute
              WHERE attrelid = to_regclass(CAST(?1 AS TEXT)) AND attnum > 0 AND NOT attisdropped",
        )
        .db()?;
    let columns = stmt
        .query_map([quoted(name)], |row| row.get(0))
        .db()?
        .collect::<crate::db::Result<_>>()
        .db()?;
    Ok(columns)
}

fn has_rows(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {})", quoted(name)),
        [],
        |row| row.get(0),
    )
    .db()
}

/// The INSERT of `rows` rows of `table`.
fn insert_sql(table: &Table, rows: usize) -> String {
    let columns = table.columns.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quoted(&table.name),
        table
            .columns
            .iter()
            .map(|c| quoted(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", row * columns + column + 1));
        }
        sql.push(')');
    }
    if table.name == "meta" {
        // The rows PostgreSQL's migrations wrote take SQLite's values.
        sql.push_str(" ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    }
    sql
}

/// A SQLite value as an owned [`Value`]; its text and blob bytes.
fn owned(value: rusqlite::types::ValueRef<'_>, table: &str) -> Result<(Value, usize)> {
    use rusqlite::types::ValueRef as V;
    Ok(match value {
        V::Null => (Value::Null, 0),
        V::Integer(i) => (Value::Integer(i), 0),
        V::Real(r) => (Value::Real(r), 0),
        V::Text(t) => {
            let text = std::str::from_utf8(t).map_err(|e| {
                StoreError::Database(format!("table {table}: text that is not UTF-8: {e}"))
            })?;
            (Value::Text(text.to_owned()), t.len())
        }
        V::Blob(b) => (Value::Blob(b.to_vec()), b.len()),
    })
}

fn copy_table(
    source: &rusqlite::Connection,
    target: &Connection,
    table: &Table,
) -> Result<TableCopied> {
    let columns = table.columns.len();
    let batch_rows = (MAX_PARAMETERS / columns.max(1)).clamp(1, BATCH_ROWS);
    let full_batch = insert_sql(table, batch_rows);
    let one_row = insert_sql(table, 1);
    let mut done = TableCopied {
        table: table.name.clone(),
        rows: 0,
        bytes: 0,
    };
    let mut stmt = source
        .prepare(&format!(
            "SELECT {} FROM {}",
            table
                .columns
                .iter()
                .map(|c| quoted(c))
                .collect::<Vec<_>>()
                .join(", "),
            quoted(&table.name)
        ))
        .db()?;
    let mut rows = stmt.query([]).db()?;
    let mut batch: Vec<Value> = Vec::with_capacity(batch_rows * columns);
    let mut batch_bytes = 0usize;
    let write = |batch: &mut Vec<Value>| -> Result<()> {
        let in_batch = batch.len() / columns.max(1);
        if in_batch == batch_rows {
            target
                .prepare_cached(&full_batch)
                .db()?
                .execute(batch.as_slice())
                .db()?;
        } else {
            // A short batch (large rows, or the table's last): row by
            // row, so that only two statements per table are prepared.
            for row in batch.chunks(columns.max(1)) {
                target.prepare_cached(&one_row).db()?.execute(row).db()?;
            }
        }
        batch.clear();
        Ok(())
    };
    while let Some(row) = rows.next().db()? {
        for i in 0..columns {
            let (value, bytes) = owned(row.get_ref(i).db()?, &table.name)?;
            batch.push(value);
            batch_bytes += bytes;
            done.bytes += bytes as u64;
        }
        done.rows += 1;
        if batch.len() / columns.max(1) == batch_rows || batch_bytes >= BATCH_BYTES {
            write(&mut batch).map_err(|e| in_table(e, &table.name))?;
            batch_bytes = 0;
        }
    }
    write(&mut batch).map_err(|e| in_table(e, &table.name))?;
    Ok(done)
}

fn in_table(e: StoreError, table: &str) -> StoreError {
    match e {
        StoreError::Database(m) => StoreError::Database(format!("copying table {table}: {m}")),
        StoreError::Full(m) => StoreError::Full(format!("copying table {table}: {m}")),
        e => e,
    }
}

/// Queue claims made by an owner ([`crate::claims`]) are let go: no
/// process has the SQLite store open (checked before), so each owner is
/// gone, as a restart on SQLite would find from its lock file; on
/// PostgreSQL nobody could, and they would wait for their lease.
fn release_claims(target: &Connection, tables: &[Table]) -> Result<()> {
    let has_owners = tables
        .iter()
        .any(|t| t.name == "queue_recipients" && t.columns.iter().any(|c| c == "leased_by"));
    if has_owners {
        target
            .execute(
                "UPDATE queue_recipients SET leased_until = 0, leased_by = NULL
                  WHERE leased_by IS NOT NULL",
                [],
            )
            .db()?;
    }
    Ok(())
}

/// Each identity column's sequence continues after the highest id copied
/// (and after SQLite's AUTOINCREMENT mark for the table).
fn continue_identities(
    target: &Connection,
    tables: &[Table],
    sequences: &[(String, i64)],
) -> Result<()> {
    for table in tables {
        if !table.columns.iter().any(|c| c == "id") {
            continue;
        }
        let sequence: Option<String> = target
            .query_row(
                "SELECT pg_get_serial_sequence(CAST(?1 AS TEXT), 'id')",
                [quoted(&table.name)],
                |row| row.get(0),
            )
            .db()?;
        let Some(sequence) = sequence else {
            continue;
        };
        let highest: Option<i64> = target
            .query_row(
                &format!("SELECT max(id) FROM {}", quoted(&table.name)),
                [],
                |row| row.get(0),
            )
            .db()?;
        let mark = sequences
            .iter()
            .filter(|(name, _)| *name == table.name)
            .map(|(_, seq)| *seq)
            .max();
        let last = highest.into_iter().chain(mark).max().unwrap_or(0);
        if last >= 1 {
            target
                .query_row(
                    "SELECT setval(CAST(CAST(?1 AS TEXT) AS regclass), ?2, true)",
                    crate::db::params![sequence, last],
                    |_| Ok(()),
                )
                .db()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, references: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: vec!["id".into()],
            references: references.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn referenced_tables_come_first_and_meta_last() {
        let order = in_dependency_order(vec![
            table("meta", &[]),
            table("messages", &["mailboxes", "blobs"]),
            table("mailboxes", &["accounts"]),
            table("accounts", &[]),
            table("blobs", &[]),
            table("changes", &["mailboxes", "changes"]),
        ]);
        let names: Vec<_> = order.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 6);
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(pos("accounts") < pos("mailboxes"));
        assert!(pos("mailboxes") < pos("messages"));
        assert!(pos("blobs") < pos("messages"));
        assert!(pos("mailboxes") < pos("changes"));
        assert_eq!(names.last(), Some(&"meta"));
    }

    /// Runs `f` with a client of the test database, on a thread of its
    /// own (the blocking client cannot run inside a runtime).
    fn with_test_client<T: Send>(
        base: &str,
        f: impl FnOnce(&mut postgres::Client) -> T + Send,
    ) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| f(&mut postgres::Client::connect(base, postgres::NoTls).unwrap()))
                .join()
                .unwrap()
        })
    }

    /// On `POSTERN_TEST_POSTGRES` only: ids continue after the highest
    /// copied, and after SQLite's AUTOINCREMENT marks (an SMTP session
    /// whose row is gone keeps its id); the meta counters replace the
    /// PostgreSQL schema's own; a target with rows is refused, with
    /// nothing written.
    #[test]
    fn identities_continue_and_a_second_copy_is_refused() {
        let Some(base) = crate::tests::test_postgres() else {
            eprintln!("POSTERN_TEST_POSTGRES is unset: not run");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let conn = schema::open_writer(&dir.path().join(schema::DB_FILE)).unwrap();
        conn.execute_batch(
            "INSERT INTO smtp_sessions (client, role, started_at)
                 VALUES ('a', 'smtp', 1), ('b', 'smtp', 2), ('c', 'smtp', 3);
             DELETE FROM smtp_sessions WHERE id > 1;
             INSERT INTO accounts (id, address, password_hash, created_at)
                 VALUES (7, 'x@example.org', '!', 1);
             INSERT INTO mailboxes (id, account_id, name, uid_validity) VALUES (3, 7, 'INBOX', 42);
             UPDATE meta SET value = 5 WHERE key = 'names_epoch';
             UPDATE meta SET value = 12 WHERE key = 'last_queue_id';
             INSERT INTO envelopes (id, mail_from, recipients, received_at)
                 VALUES (3, 'a@example.org', '[]', 1);
             UPDATE meta SET value = 20 WHERE key = 'last_envelope_id';
             INSERT INTO blobs (hash, size, refcount, data) VALUES ('h', 1, 1, x'00ff');
             INSERT INTO queue (id, blob_hash, sender, body_type, smtputf8, size, received_at)
                 VALUES (12, 'h', 'a@example.org', '7bit', 0, 2, 1);
             INSERT INTO queue_recipients
                     (queue_id, address, state, attempts, next_attempt_at, leased_until, leased_by)
                 VALUES (12, 'b@example.net', 'deferred', 2, 5, 99, 'abc');",
        )
        .unwrap();
        drop(conn);
        let schema = format!(
            "copy_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        with_test_client(&base, |c| {
            c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap()
        });
        let url = format!("{base} options='-c search_path={schema}'");
        let mut tables = Vec::new();
        let copied = copy_to_postgres(dir.path(), &url, None, &mut |t| {
            tables.push(t.table.clone())
        })
        .unwrap();
        assert_eq!(tables.last().map(String::as_str), Some("meta"));
        let count = |name: &str| copied.iter().find(|t| t.table == name).unwrap().rows;
        assert_eq!((count("accounts"), count("smtp_sessions")), (1, 1));

        let url2 = url.clone();
        let (session, account, mailbox, epoch, queue, envelope) = with_test_client(&url2, |c| {
            let id = |c: &mut postgres::Client, sql: &str| -> i64 {
                c.query_one(sql, &[]).unwrap().get(0)
            };
            (
                id(c, "INSERT INTO smtp_sessions (client, role, started_at) VALUES ('d', 'smtp', 4) RETURNING id"),
                id(c, "INSERT INTO accounts (address, password_hash, created_at) VALUES ('y@example.org', '!', 1) RETURNING id"),
                id(c, "INSERT INTO mailboxes (account_id, name, uid_validity) VALUES (7, 'Other', 43) RETURNING id"),
                id(c, "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'names_epoch'"),
                id(c, "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'last_queue_id'"),
                id(c, "INSERT INTO envelopes (mail_from, recipients, received_at) VALUES ('a', '[]', 1) RETURNING id"),
            )
        });
        assert_eq!((session, account, mailbox), (4, 8, 4));
        // After SQLite's envelope counter, not after the highest row.
        assert_eq!(envelope, 21);
        // 5 as copied, then 6 for the mailbox made just now.
        assert_eq!((epoch, queue), (6, 12));
        // The claim of the gone process is let go; the rest is as it was.
        let recipient = with_test_client(&url2, |c| {
            let row = c
                .query_one(
                    "SELECT state, attempts, next_attempt_at, leased_until, leased_by IS NULL,
                            (SELECT data FROM blobs WHERE hash = 'h')
                       FROM queue_recipients WHERE queue_id = 12",
                    &[],
                )
                .unwrap();
            (
                row.get::<_, String>(0),
                row.get::<_, i64>(1),
                row.get::<_, i64>(2),
                row.get::<_, i64>(3),
                row.get::<_, bool>(4),
                row.get::<_, Vec<u8>>(5),
            )
        });
        assert_eq!(
            recipient,
            ("deferred".to_owned(), 2, 5, 0, true, vec![0, 0xff])
        );

        let again = copy_to_postgres(dir.path(), &url, None, &mut |_| {}).unwrap_err();
        assert!(again.to_string().contains("not empty"), "{again}");
        let accounts = with_test_client(&url2, |c| {
            c.query_one("SELECT count(*) FROM accounts", &[])
                .unwrap()
                .get::<_, i64>(0)
        });
        assert_eq!(accounts, 2);
        with_test_client(&base, |c| {
            c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .unwrap()
        });
    }

    #[test]
    fn inserts_number_their_parameters_row_after_row() {
        let t = Table {
            name: "meta".into(),
            columns: vec!["key".into(), "value".into()],
            references: Vec::new(),
        };
        assert_eq!(
            insert_sql(&t, 2),
            "INSERT INTO \"meta\" (\"key\", \"value\") VALUES (?1, ?2), (?3, ?4) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        );
    }
}
