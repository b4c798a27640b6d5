//! Short reads on the caller's own thread.
//!
//! A read handed to a reader thread costs two thread switches and two
//! wake-ups, which for a lookup by key (is this a local domain, whose is
//! this address) is far more than the lookup itself: on the single-session
//! SMTP path it was the RCPT command's whole cost. Such lookups run here,
//! on a connection that the calling thread (a tokio worker) keeps for the
//! store, in WAL mode, where a reader never waits for the writer. The
//! connection does not wait for locks at all (busy timeout 0): a lookup
//! that meets one (a WAL recovery after a crash, a schema change) is
//! handed to the reader threads instead, as are temporary failures of any
//! kind. Only reads of a few rows through an index belong here; anything
//! that scans goes to the readers, so a tokio worker is never held up.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use crate::db::Connection;

use crate::db::SqlResult;
use crate::sqlite::schema;
use crate::Result;

/// Page cache of each thread's connection: lookups touch a few pages.
const CACHE_KIB: i64 = 512;

/// What a store's lookups on the calling thread need: the database's path
/// and a mark that lives as long as the store, so that a thread forgets
/// the connections of stores that are gone.
pub(crate) struct InlineReads {
    path: PathBuf,
    alive: Arc<()>,
}

struct ThreadConnection {
    store: Weak<()>,
    conn: Connection,
}

thread_local! {
    static CONNECTIONS: RefCell<Vec<ThreadConnection>> = const { RefCell::new(Vec::new()) };
}

impl InlineReads {
    pub(crate) fn new(path: &Path) -> InlineReads {
        InlineReads {
            path: path.to_owned(),
            alive: Arc::new(()),
        }
    }

    /// Runs `f` in a read transaction on this thread's connection (opened
    /// the first time). `None` if the connection cannot be had or `f`
    /// failed in a way a reader thread might not (busy, locked, I/O):
    /// the caller then asks the readers.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Option<Result<T>> {
        CONNECTIONS.with(|connections| {
            // Re-entered from inside `f`: no connection to lend.
            let mut connections = connections.try_borrow_mut().ok()?;
            connections.retain(|c| c.store.strong_count() > 0);
            let at = match connections
                .iter()
                .position(|c| std::ptr::eq(c.store.as_ptr(), Arc::as_ptr(&self.alive)))
            {
                Some(at) => at,
                None => {
                    let conn = self.open().ok()?;
                    connections.push(ThreadConnection {
                        store: Arc::downgrade(&self.alive),
                        conn,
                    });
                    connections.len() - 1
                }
            };
            match crate::sql::engine::read_transaction(&connections[at].conn, f) {
                Err(e) if e.is_temporary() => None,
                result => Some(result),
            }
        })
    }

    fn open(&self) -> Result<Connection> {
        let conn = schema::open_reader(&self.path)?;
        conn.busy_timeout(std::time::Duration::ZERO).db()?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB).db()?;
        Ok(Connection::Sqlite(conn))
    }
}

/// How many stores' connections this thread keeps (for tests).
#[cfg(test)]
pub(crate) fn connections_on_this_thread() -> usize {
    CONNECTIONS.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|c| c.store.strong_count() > 0);
        c.len()
    })
}
