//! Opening connections, and the embedded, versioned schema.
//!
//! `PRAGMA user_version` is the number of [`MIGRATIONS`] applied. Migrations
//! only ever get appended to the list; a step, once released, never changes.

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::db::SqlResult;

use crate::{Result, StoreError};

/// The database file inside the data dir.
pub(crate) const DB_FILE: &str = "postern.db";

/// How long a connection waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements each connection keeps. A local delivery alone runs
/// some twenty distinct statements, an enqueue and a claim a dozen more;
/// with rusqlite's default of 16 the writer compiled most of them again
/// for every message.
const STATEMENT_CACHE: usize = 256;

/// Schema steps; step `i` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value ANY
    );

    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        address       TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );

    CREATE TABLE domains (
        name TEXT PRIMARY KEY
    );

    CREATE TABLE aliases (
        address    TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id)
    );
    CREATE INDEX aliases_account ON aliases(account_id);

    CREATE TABLE mailboxes (
        id             INTEGER PRIMARY KEY,
        account_id     INTEGER NOT NULL REFERENCES accounts(id),
        name           TEXT NOT NULL,
        special_use    TEXT,
        subscribed     INTEGER NOT NULL DEFAULT 1,
        uid_validity   INTEGER NOT NULL CHECK (uid_validity BETWEEN 1 AND 4294967295),
        uid_next       INTEGER NOT NULL DEFAULT 1 CHECK (uid_next >= 1),
        highest_modseq INTEGER NOT NULL DEFAULT 1 CHECK (highest_modseq >= 1),
        UNIQUE (account_id, name)
    );

    -- Raw messages, stored once, addressed by the hex SHA-256 of their bytes.
    -- Each message row and each queue entry holds one reference. `summary`
    -- caches the parse (JSON of MessageSummary) once somebody made it.
    CREATE TABLE blobs (
        hash     TEXT PRIMARY KEY,
        size     INTEGER NOT NULL,
        refcount INTEGER NOT NULL CHECK (refcount >= 0),
        data     BLOB NOT NULL,
        summary  TEXT
    );

    -- system_flags is a bit set: 1 \Seen, 2 \Answered, 4 \Flagged,
    -- 8 \Deleted, 16 \Draft. keywords: space-separated IMAP atoms.
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY,
        mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id),
        uid           INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
        blob_hash     TEXT NOT NULL REFERENCES blobs(hash),
        modseq        INTEGER NOT NULL CHECK (modseq >= 1),
        internal_date INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        system_flags  INTEGER NOT NULL DEFAULT 0,
        keywords      TEXT NOT NULL DEFAULT '',
        UNIQUE (mailbox_id, uid)
    );
    CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
    CREATE INDEX messages_blob ON messages(blob_hash);

    -- Expunged UIDs with the modseq of their expunge (QRESYNC).
    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid        INTEGER NOT NULL,
        modseq     INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);

    -- The change feed that IMAP sessions follow.
    CREATE TABLE changes (
        id         INTEGER PRIMARY KEY,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid        INTEGER NOT NULL,
        modseq     INTEGER NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('append', 'flags', 'expunge')),
        created_at INTEGER NOT NULL
    );
    CREATE INDEX changes_mailbox ON changes(mailbox_id, modseq);

    CREATE TABLE queue (
        id          INTEGER PRIMARY KEY,
        blob_hash   TEXT NOT NULL REFERENCES blobs(hash),
        sender      TEXT NOT NULL,
        auth_user   TEXT,
        body_type   TEXT NOT NULL CHECK (body_type IN ('7bit', '8bitmime', 'binarymime')),
        smtputf8    INTEGER NOT NULL,
        size        INTEGER NOT NULL,
        received_at INTEGER NOT NULL
    );

    CREATE TABLE queue_recipients (
        id              INTEGER PRIMARY KEY,
        queue_id        INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        address         TEXT NOT NULL,
        state           TEXT NOT NULL
                        CHECK (state IN ('pending', 'deferred', 'delivered', 'bounced')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT
    );
    CREATE INDEX queue_recipients_queue ON queue_recipients(queue_id);
    -- Due work: only recipients still to be tried are in this index.
    CREATE INDEX queue_recipients_due ON queue_recipients(next_attempt_at)
        WHERE state IN ('pending', 'deferred');
    "#,
    // 2: leases on named resources, shared by every process on the data dir
    // (a POP3 maildrop is held by one session at a time).
    r#"
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,
        process    TEXT NOT NULL,
        session    INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    "#,
    // The first UID not yet `\Recent` to any IMAP session.
    r#"
    ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 1;
    "#,
    // Subscriptions are names, kept apart from mailboxes (RFC 3501 6.3.6):
    // a subscription outlives the mailbox's deletion and follows a rename.
    // `mailboxes.subscribed` is no longer read.
    r#"
    CREATE TABLE subscriptions (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    INSERT INTO subscriptions (account_id, name)
        SELECT account_id, name FROM mailboxes WHERE subscribed = 1;
    "#,
    // Parsed summaries apart from the raw bytes: reading many summaries
    // (SEARCH, FETCH ENVELOPE) no longer walks every message's pages.
    // `blobs.summary` is no longer read.
    r#"
    CREATE TABLE summaries (
        hash    TEXT PRIMARY KEY REFERENCES blobs(hash) ON DELETE CASCADE,
        summary TEXT NOT NULL
    );
    INSERT INTO summaries (hash, summary)
        SELECT hash, summary FROM blobs WHERE summary IS NOT NULL;
    UPDATE blobs SET summary = NULL WHERE summary IS NOT NULL;
    "#,
    // A claim's lease apart from the next attempt time: `postern queue
    // retry`/`flush` move `next_attempt_at` and must not hand a recipient
    // that is being delivered to a second claimer.
    r#"
    ALTER TABLE queue_recipients ADD COLUMN leased_until INTEGER NOT NULL DEFAULT 0;
    "#,
    // `INBOX` is case-insensitive as a hierarchy's first level too (RFC 3501
    // 5.1): `Inbox/kid` and `inbox/kid` are `INBOX/kid`. Earlier versions
    // kept such names as written. Each takes the canonical spelling; where
    // that is taken (by `INBOX/kid`, or by a variant with a lower id), the
    // name gets its id added, so no mailbox is lost.
    r#"
    UPDATE mailboxes SET name = 'INBOX' || substr(name, 6) || ' (' || id || ')'
     WHERE lower(substr(name, 1, 6)) = 'inbox/' AND substr(name, 1, 6) <> 'INBOX/'
       AND (EXISTS (SELECT 1 FROM mailboxes o
                     WHERE o.account_id = mailboxes.account_id
                       AND o.name = 'INBOX' || substr(mailboxes.name, 6))
            OR EXISTS (SELECT 1 FROM mailboxes o
                        WHERE o.account_id = mailboxes.account_id AND o.id < mailboxes.id
                          AND lower(substr(o.name, 1, 6)) = 'inbox/'
                          AND substr(o.name, 1, 6) <> 'INBOX/'
                          AND substr(o.name, 6) = substr(mailboxes.name, 6)));
    UPDATE mailboxes SET name = 'INBOX' || substr(name, 6)
     WHERE lower(substr(name, 1, 6)) = 'inbox/' AND substr(name, 1, 6) <> 'INBOX/';
    UPDATE OR IGNORE subscriptions SET name = 'INBOX' || substr(name, 6)
     WHERE lower(substr(name, 1, 6)) = 'inbox/' AND substr(name, 1, 6) <> 'INBOX/';
    DELETE FROM subscriptions
     WHERE lower(substr(name, 1, 6)) = 'inbox/' AND substr(name, 1, 6) <> 'INBOX/';
    "#,
    // What the sender asked of delivery status notifications (RFC 3461),
    // kept with the queued message: RET and ENVID per message, NOTIFY and
    // ORCPT per recipient; NULL where the client gave none. ENVID and
    // ORCPT are kept as the client wrote them (xtext), to pass on as they
    // came; `dsn_notify` is `never` or a comma list of `success`,
    // `failure`, `delay`.
    r#"
    ALTER TABLE queue ADD COLUMN dsn_ret TEXT CHECK (dsn_ret IN ('full', 'hdrs'));
    ALTER TABLE queue ADD COLUMN dsn_envid TEXT;
    ALTER TABLE queue_recipients ADD COLUMN dsn_notify TEXT;
    ALTER TABLE queue_recipients ADD COLUMN dsn_orcpt TEXT;
    "#,
    // Received mail as data (issue: the envelope, kept apart from the
    // bytes). `smtp_sessions`: one row per SMTP session that gave a message
    // or a refusal, with its bounded transcript. `envelopes`: MAIL FROM and
    // every RCPT with their parameters, and how the client came (HELO, its
    // address, TLS, AUTH user), for each accepted message; the queue entry
    // and every delivered copy point at it. `messages.arrival`: a number
    // that only grows, never reused, for "what arrived after this" (the
    // HTTP API's cursor and message id). `accounts.captured`: made by
    // capture mode for an address mail arrived for. `sandboxes`: domains
    // whose mail only the holder of a token sees.
    r#"
    CREATE TABLE smtp_sessions (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        client     TEXT NOT NULL,
        role       TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at   INTEGER,
        refusals   INTEGER NOT NULL DEFAULT 0,
        transcript TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE envelopes (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id  INTEGER REFERENCES smtp_sessions(id) ON DELETE SET NULL,
        mail_from   TEXT NOT NULL,
        mail_params TEXT NOT NULL DEFAULT '',
        recipients  TEXT NOT NULL,
        helo        TEXT,
        client      TEXT,
        tls         TEXT,
        auth_user   TEXT,
        received_at INTEGER NOT NULL,
        warnings    TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX envelopes_session ON envelopes(session_id);
    ALTER TABLE queue ADD COLUMN envelope_id INTEGER REFERENCES envelopes(id) ON DELETE SET NULL;
    ALTER TABLE messages ADD COLUMN envelope_id INTEGER REFERENCES envelopes(id) ON DELETE SET NULL;
    CREATE INDEX messages_envelope ON messages(envelope_id) WHERE envelope_id IS NOT NULL;
    ALTER TABLE messages ADD COLUMN arrival INTEGER;
    UPDATE messages SET arrival = id;
    INSERT OR REPLACE INTO meta (key, value)
        SELECT 'last_arrival', coalesce(max(id), 0) FROM messages;
    CREATE UNIQUE INDEX messages_arrival ON messages(arrival);
    ALTER TABLE accounts ADD COLUMN captured INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE sandboxes (
        domain     TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    "#,
    // The change feed and the expunge tombstones are pruned (`prune`):
    // every change and tombstone of a mailbox with a modseq above
    // `horizon_modseq` is kept; at or below it some may be gone, which
    // QRESYNC must know. 0: nothing pruned yet.
    r#"
    ALTER TABLE mailboxes ADD COLUMN horizon_modseq INTEGER NOT NULL DEFAULT 0;
    "#,
    // Queue ids are never given twice (logs and `postern queue` name
    // messages by them): `queue.id` comes from this counter, not from
    // SQLite's rowid, which reuses the highest id once its row is gone.
    r#"
    INSERT OR REPLACE INTO meta (key, value)
        SELECT 'last_queue_id', coalesce(max(id), 0) FROM queue;
    "#,
    // Who holds a recipient's claim (`claims`): the id of a store whose
    // lock file is in `claims/`; NULL for claims made without one.
    r#"
    ALTER TABLE queue_recipients ADD COLUMN leased_by TEXT;
    "#,
    // Deleting or renaming a mailbox writes no change row (a delete takes
    // the mailbox's rows with it), yet the sessions that have it selected
    // must be woken: this counter moves instead (see `wakeups`). Triggers,
    // so that every path (account and sandbox deletes too) moves it.
    r#"
    INSERT OR REPLACE INTO meta (key, value) VALUES ('mailbox_epoch', 0);
    CREATE TRIGGER mailbox_deleted AFTER DELETE ON mailboxes BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'mailbox_epoch';
    END;
    CREATE TRIGGER mailbox_renamed AFTER UPDATE OF name ON mailboxes BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'mailbox_epoch';
    END;
    "#,
    // When a message was saved into its mailbox (delivered, appended,
    // copied or moved there: IMAP's SAVEDATE, RFC 8514). NULL for
    // messages saved before this column: read as their internal date.
    r#"
    ALTER TABLE messages ADD COLUMN saved_at INTEGER;
    "#,
    // IMAP METADATA (RFC 5464): entries of a mailbox, or with no mailbox
    // of the account's server; names lower-case. A mailbox's go with it.
    r#"
    CREATE TABLE metadata (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        mailbox_id INTEGER REFERENCES mailboxes(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        value      BLOB NOT NULL
    );
    CREATE UNIQUE INDEX metadata_entry ON metadata(account_id, coalesce(mailbox_id, 0), name);
    CREATE INDEX metadata_mailbox ON metadata(mailbox_id) WHERE mailbox_id IS NOT NULL;
    "#,
    // IMAP URLAUTH (RFC 4467): each mailbox's secret key for the URLs
    // authorized into it, made when first needed.
    r#"
    CREATE TABLE urlauth_keys (
        mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
        key        BLOB NOT NULL
    );
    "#,
    // Creating a mailbox and (un)subscribing write no change row either;
    // IMAP NOTIFY sessions (which watch a whole account) must hear of
    // them: this counter moves (see `wakeups`).
    r#"
    INSERT OR REPLACE INTO meta (key, value) VALUES ('names_epoch', 0);
    CREATE TRIGGER mailbox_created AFTER INSERT ON mailboxes BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'names_epoch';
    END;
    CREATE TRIGGER subscription_added AFTER INSERT ON subscriptions BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'names_epoch';
    END;
    CREATE TRIGGER subscription_removed AFTER DELETE ON subscriptions BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'names_epoch';
    END;
    "#,
    // Quotas (IMAP QUOTA, RFC 9208): each account's limits, NULL for
    // none (storage in KiB, as RFC 9208 counts it), and its usage, kept
    // as counters rather than summed over its messages at every check
    // (APPEND, COPY, each delivery, each RCPT). The counters move in the
    // transaction that adds or removes messages, in the one place each
    // is done (`mailbox::append`, `mailbox::expunge`, emptying a deleted
    // mailbox), once per request rather than from a trigger per row:
    // a row trigger on DELETE made every expunged message cost a
    // statement journal, quadratic inside the writer's savepoint (50,000
    // messages expunged took minutes instead of seconds).
    r#"
    ALTER TABLE accounts ADD COLUMN quota_storage_kib INTEGER CHECK (quota_storage_kib >= 0);
    ALTER TABLE accounts ADD COLUMN quota_messages INTEGER CHECK (quota_messages >= 0);
    ALTER TABLE accounts ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN used_messages INTEGER NOT NULL DEFAULT 0;
    UPDATE accounts SET
        used_bytes = (SELECT coalesce(sum(m.size), 0) FROM messages m
                        JOIN mailboxes b ON b.id = m.mailbox_id
                       WHERE b.account_id = accounts.id),
        used_messages = (SELECT count(*) FROM messages m
                           JOIN mailboxes b ON b.id = m.mailbox_id
                          WHERE b.account_id = accounts.id);
    "#,
    // Failed logins per client address, so that every process and every
    // node on one database throttle an address together
    // (`sqlite::login_failures`). Bounded: rows age out. `IF NOT EXISTS`:
    // a test runs the quota step and every later one again.
    r#"
    CREATE TABLE IF NOT EXISTS login_failures (
        ip           TEXT PRIMARY KEY,
        failures     INTEGER NOT NULL,
        last_failure INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS login_failures_last ON login_failures(last_failure);
    "#,
    // Envelope ids from a counter in `meta` (as queue ids and arrivals),
    // not from AUTOINCREMENT: every received message wrote the
    // `sqlite_sequence` page as well as `meta`, one WAL frame in twenty
    // of each delivery's commit (issue 13). Ids still never come back.
    // The table is rebuilt without AUTOINCREMENT (`migrate` runs this
    // with foreign keys off: dropping the old table must not null the
    // messages' and queue entries' `envelope_id`); rows keep their ids.
    r#"
    INSERT OR REPLACE INTO meta (key, value)
        SELECT 'last_envelope_id',
               max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'envelopes'), 0),
                   coalesce((SELECT max(id) FROM envelopes), 0));
    CREATE TABLE envelopes_rebuilt (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER REFERENCES smtp_sessions(id) ON DELETE SET NULL,
        mail_from   TEXT NOT NULL,
        mail_params TEXT NOT NULL DEFAULT '',
        recipients  TEXT NOT NULL,
        helo        TEXT,
        client      TEXT,
        tls         TEXT,
        auth_user   TEXT,
        received_at INTEGER NOT NULL,
        warnings    TEXT NOT NULL DEFAULT '[]'
    );
    INSERT INTO envelopes_rebuilt
        (id, session_id, mail_from, mail_params, recipients, helo, client, tls, auth_user,
         received_at, warnings)
        SELECT id, session_id, mail_from, mail_params, recipients, helo, client, tls, auth_user,
               received_at, warnings
          FROM envelopes;
    DROP TABLE envelopes;
    ALTER TABLE envelopes_rebuilt RENAME TO envelopes;
    CREATE INDEX envelopes_session ON envelopes(session_id);
    "#,
];

/// The schema version this code writes.
pub(crate) fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Opens a connection with the pragmas every connection needs.
pub(crate) fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // One plan per statement, whatever values are bound: the bundled
    // SQLite has STAT4, which otherwise plans a statement again whenever a
    // bound value changes if more than one index could serve it (nearly
    // every mailbox read; without ANALYZE nothing is gained by it).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .db()?;
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    if read_only {
        conn.pragma_update(None, "query_only", "ON").db()?;
    }
    Ok(conn)
}

/// Caps the database at `max_size` bytes (0: no cap) on the writer's
/// connection: SQLite then fails a write that would grow the file past it
/// with `SQLITE_FULL`, as on a full disk. A cap below the present size
/// holds the database at its present size.
pub(crate) fn limit_size(conn: &Connection, max_size: u64) -> Result<()> {
    if max_size == 0 {
        return Ok(());
    }
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .db()?;
    let pages = max_size / u64::try_from(page_size.max(512)).unwrap_or(4096);
    let pages = i64::try_from(pages.max(1)).unwrap_or(i64::MAX);
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        .db()?;
    Ok(())
}

/// Holds the connection's page cache to about `bytes` (SQLite keeps
/// some pages whatever it is told; its own default is 2,000 KiB).
pub(crate) fn limit_page_cache(conn: &Connection, bytes: u64) -> Result<()> {
    let kib = i64::try_from(bytes / 1024).unwrap_or(i64::MAX);
    // A negative cache_size is KiB, a positive one pages.
    conn.pragma_update(None, "cache_size", -kib).db()?;
    Ok(())
}

/// Opens the writer connection: WAL mode, migrations applied.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = open_connection(path, false)?;
    // The writer's statement journal (what each request's savepoint may
    // have to undo) in memory: on disk, a batch of messages spilled it
    // into a temporary file, one write(2) per page. It never needs to
    // survive a crash (the WAL does that), and the writer's statements
    // are small; the readers' big sorts keep spilling to disk.
    conn.pragma_update(None, "temp_store", "MEMORY").db()?;
    // Refuse a too-new schema before touching anything.
    StoreError::check_schema_version(user_version(&conn)?, supported_version())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(format!(
            "could not switch the database to WAL mode (it is in {mode} mode)"
        )));
    }
    migrate(&conn)?;
    Ok(conn)
}

/// Opens a reader connection (also used by the change poller).
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    open_connection(path, true)
}

fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .db()
}

/// Applies the missing migrations in one transaction, with foreign keys
/// off (SQLite's way to change a table ALTER TABLE cannot: build the new
/// one, copy, drop the old, rename; with foreign keys on, the drop would
/// run the `ON DELETE` actions of the rows that point at the old table).
/// The copies keep every id, so nothing is left pointing nowhere.
fn migrate(conn: &Connection) -> Result<()> {
    if user_version(conn)? == supported_version() {
        return Ok(());
    }
    // A no-op inside a transaction: set before `BEGIN`, back after.
    conn.pragma_update(None, "foreign_keys", "OFF").db()?;
    let result = migrate_steps(conn);
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    result
}

fn migrate_steps(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE").db()?;
    let result = (|| {
        // Another process may have migrated while we waited for the lock.
        let found = user_version(conn)?;
        StoreError::check_schema_version(found, supported_version())?;
        let start = usize::try_from(found).unwrap_or(0);
        for (i, step) in MIGRATIONS.iter().enumerate().skip(start) {
            conn.execute_batch(step).db()?;
            tracing::info!(version = i + 1, "applied store migration");
        }
        conn.pragma_update(None, "user_version", supported_version())
            .db()
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").db(),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_readers_page_cache_is_limited_in_kib() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::DB_FILE);
        let _writer = super::open_writer(&path).unwrap();
        let reader = super::open_reader(&path).unwrap();
        super::limit_page_cache(&reader, 768 * 1024).unwrap();
        let size: i64 = reader
            .query_row("PRAGMA cache_size", [], |row| row.get(0))
            .unwrap();
        assert_eq!(size, -768);
    }
}
