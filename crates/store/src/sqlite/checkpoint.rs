//! Checkpoints of the write-ahead log, on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL
//! past its limit: one write request in every few dozen waited while about
//! a thousand pages were copied into the database file and synced, and a
//! single SMTP client waited with it. Here the writer's WAL hook only
//! signals, and this thread runs a PASSIVE checkpoint on a connection of
//! its own: the writer and the readers go on meanwhile (SQLite lets one
//! checkpoint run beside one writer), and the WAL starts again from its
//! beginning at the first write after a complete checkpoint, as before.

use std::os::raw::c_int;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, TrySendError};
use std::thread::{self, JoinHandle};

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

use crate::db::SqlResult;
use crate::sqlite::schema;
use crate::Result;

/// Replaces the writer connection's automatic checkpoint with a thread
/// that checkpoints when a commit leaves `limit_bytes` or more in the WAL
/// (at least 1,000 pages' worth, SQLite's own default). The thread ends
/// once the writer connection is closed.
///
/// A checkpoint copies each page once however often the WAL holds it, and
/// a delivery rewrites the same dozen pages (the mailbox's row, the
/// counters, the tails of the indexes) every time: with SQLite's 1,000
/// pages a checkpoint came every ~46 deliveries of 4 KiB (22 WAL frames
/// each) and copied about four distinct pages for each; with 32 MiB it
/// comes every ~380 and copies fewer than three, and its fixed cost (two
/// fsyncs) is spread over eight times as many. The checkpoint thread's
/// CPU per delivered message fell from ~110 to ~25 µs (per-thread
/// `/proc` times over 3,000 messages of one session). The WAL file keeps
/// its largest size.
pub(crate) fn start(
    path: &Path,
    writer: &mut Connection,
    limit_bytes: u64,
) -> Result<JoinHandle<()>> {
    let page_size: i64 = writer
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .db()?;
    let pages = limit_bytes / u64::try_from(page_size.max(512)).unwrap_or(4096);
    let limit = c_int::try_from(pages).unwrap_or(c_int::MAX).max(1000);
    let conn = schema::open_connection(path, false)?;
    // One request waiting is enough: a checkpoint copies all there is.
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    writer
        .wal_hook(Some(move |_: &mut Wal, pages: c_int| {
            if pages >= limit {
                // Full: one is waiting already. Disconnected: the
                // thread is gone (it only ends with this connection).
                let _: std::result::Result<(), TrySendError<()>> = tx.try_send(());
            }
            Ok(())
        }))
        .db()?;
    Ok(thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || checkpoint_loop(conn, rx))?)
}

fn checkpoint_loop(conn: Connection, requests: Receiver<()>) {
    while requests.recv().is_ok() {
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((log, done)) => {
                tracing::trace!(log, done, "store: checkpoint");
            }
            // Another connection checkpointing at the same time (another
            // process on the data dir, such as `postern mail list`,
            // whose commit ran SQLite's own automatic checkpoint) is
            // no fault: the next commit asks again.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                tracing::debug!(
                    "store: a WAL checkpoint found another under way; the next commit asks again"
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "store: a WAL checkpoint failed; the next commit asks again")
            }
        }
    }
}
