//! Per-mailbox wake-ups: a commit wakes only the watchers of the mailboxes
//! it changed (issue 13: with one global counter, every delivery woke
//! every idle IMAP session, and each re-read its mailbox to find nothing).
//!
//! Which mailboxes changed is read from the change feed: after each
//! committed batch the writer, and after `PRAGMA data_version` moved (a
//! commit by any connection, another process's included) the poller, read
//! the `changes` rows above the last row id either of them has seen. Both
//! share one [`FeedCursor`] under a lock, so a commit is announced once.
//! Deleting or renaming a mailbox writes no change row (a delete even takes
//! the mailbox's rows with it), so triggers move `meta.mailbox_epoch`;
//! when it moves, or the feed's ids went backwards (its newest rows were
//! pruned or deleted), every watcher is woken: correctness first.
//!
//! A watcher holds a `watch::Receiver<u64>` whose value is the wake-up
//! sequence number of the last wake of its mailbox. [`Wakeups::mark`] before
//! reading a mailbox and a value above it after subscribing means the read
//! may have missed a change (see [`Store::watch_mailbox`](crate::Store)).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use tokio::sync::watch;

use crate::sqlite::schema::SqlResult;
use crate::{MailboxId, Result};

/// What a scan of the change feed found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    Nothing,
    Mailboxes(BTreeSet<MailboxId>),
    /// Cannot tell which: wake every watcher.
    All,
}

/// How far the change feed has been announced.
#[derive(Debug, Default)]
struct FeedCursor {
    /// `None` until the first scan, which only takes the current position.
    last: Option<(i64, i64)>,
}

struct Registry {
    /// Moves at every wake-up; the value a woken watcher sees.
    seq: u64,
    watchers: HashMap<MailboxId, watch::Sender<u64>>,
    /// Watchers held at the last sweep of unheld entries.
    swept_len: usize,
}

pub(crate) struct Wakeups {
    cursor: Mutex<FeedCursor>,
    registry: Mutex<Registry>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wakeups {
    pub(crate) fn new() -> Wakeups {
        Wakeups {
            cursor: Mutex::new(FeedCursor::default()),
            registry: Mutex::new(Registry {
                seq: 0,
                watchers: HashMap::new(),
                swept_len: 0,
            }),
        }
    }

    /// Takes the feed's current position as announced (at open, before any
    /// watcher exists).
    pub(crate) fn start(&self, conn: &Connection) -> Result<()> {
        let position = position(conn)?;
        lock(&self.cursor).last = Some(position);
        Ok(())
    }

    /// Reads what committed since the last scan (on a connection outside
    /// any transaction) and wakes the watchers concerned.
    pub(crate) fn scan_and_wake(&self, conn: &Connection) {
        let wake = {
            let mut cursor = lock(&self.cursor);
            match scan(conn, &mut cursor) {
                Ok(wake) => wake,
                Err(e) => {
                    tracing::warn!(error = %e, "store: cannot read the change feed; waking every mailbox watcher");
                    Wake::All
                }
            }
        };
        self.wake(&wake);
    }

    pub(crate) fn wake(&self, wake: &Wake) {
        let mut registry = lock(&self.registry);
        match wake {
            Wake::Nothing => {}
            Wake::Mailboxes(ids) => {
                registry.seq += 1;
                let seq = registry.seq;
                for id in ids {
                    let Some(tx) = registry.watchers.get(id) else {
                        continue;
                    };
                    if tx.receiver_count() == 0 {
                        registry.watchers.remove(id);
                    } else {
                        tx.send_replace(seq);
                    }
                }
            }
            Wake::All => {
                registry.seq += 1;
                let seq = registry.seq;
                registry.watchers.retain(|_, tx| {
                    tx.send_replace(seq);
                    tx.receiver_count() > 0
                });
                registry.swept_len = registry.watchers.len();
            }
        }
    }

    /// The current wake-up sequence number.
    pub(crate) fn mark(&self) -> u64 {
        lock(&self.registry).seq
    }

    pub(crate) fn watch(&self, mailbox: MailboxId) -> watch::Receiver<u64> {
        let mut registry = lock(&self.registry);
        // Drop the entries nobody holds any more, once the map has grown
        // well past what was held at the last sweep (amortised).
        if registry.watchers.len() >= 2 * registry.swept_len + 64 {
            registry.watchers.retain(|_, tx| tx.receiver_count() > 0);
            registry.swept_len = registry.watchers.len();
        }
        let seq = registry.seq;
        registry
            .watchers
            .entry(mailbox)
            .or_insert_with(|| watch::channel(seq).0)
            .subscribe()
    }

    /// Mailboxes with an entry (held or not yet swept), for tests.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        lock(&self.registry).watchers.len()
    }
}

/// The feed's newest row id and the mailbox epoch.
fn position(conn: &Connection) -> Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT (SELECT coalesce(max(id), 0) FROM changes),
                (SELECT coalesce((SELECT value FROM meta WHERE key = 'mailbox_epoch'), 0))",
    )
    .db()?
    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
    .db()
}

fn scan(conn: &Connection, cursor: &mut FeedCursor) -> Result<Wake> {
    // One statement at a time outside a transaction: each its own snapshot.
    // Reading the rows after the position can only see more, never less.
    let (max_id, epoch) = position(conn)?;
    let Some((last_id, last_epoch)) = cursor.last else {
        cursor.last = Some((max_id, epoch));
        return Ok(Wake::All);
    };
    if epoch != last_epoch || max_id < last_id {
        cursor.last = Some((max_id, epoch));
        return Ok(Wake::All);
    }
    if max_id == last_id {
        return Ok(Wake::Nothing);
    }
    let mut stmt = conn
        .prepare_cached("SELECT id, mailbox_id FROM changes WHERE id > ?1")
        .db()?;
    let mut rows = stmt.query([last_id]).db()?;
    let mut ids = BTreeSet::new();
    let mut newest = max_id;
    while let Some(row) = rows.next().db()? {
        let id: i64 = row.get(0).db()?;
        newest = newest.max(id);
        ids.insert(MailboxId(row.get(1).db()?));
    }
    cursor.last = Some((newest, epoch));
    Ok(if ids.is_empty() {
        Wake::Nothing
    } else {
        Wake::Mailboxes(ids)
    })
}
