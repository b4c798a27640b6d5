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
//! An account can be watched too (IMAP NOTIFY, RFC 5465): its watcher
//! names the mailboxes it knows of the account, and a change to any of
//! them wakes it. Creating a mailbox and (un)subscribing move
//! `meta.names_epoch` (triggers again); when it moves, every account
//! watcher is woken (they alone: mailbox watchers do not care). Sessions
//! without NOTIFY watch no account, so a delivery still wakes only the
//! watchers of its mailbox.
//!
//! A watcher holds a `watch::Receiver<u64>` whose value is the wake-up
//! sequence number of the last wake of its mailbox. [`Wakeups::mark`] before
//! reading a mailbox and a value above it after subscribing means the read
//! may have missed a change (see [`Store::watch_mailbox`](crate::Store)).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::db::Connection;
use tokio::sync::watch;

use crate::db::SqlResult;
use crate::{AccountId, MailboxId, Result, StoreError};

/// What a scan of the change feed found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    Nothing,
    /// These mailboxes changed; with `names`, a mailbox was created or a
    /// subscription changed somewhere (every account watcher is woken).
    Changes {
        mailboxes: BTreeSet<MailboxId>,
        names: bool,
    },
    /// Cannot tell which: wake every watcher.
    All,
}

/// Where the feed stood at a scan: its newest row id, the mailbox epoch
/// and the names epoch.
type Position = (i64, i64, i64);

/// A scan of the feed made inside a write transaction, announced once it
/// has committed: the cursor it started `from`, where it leaves it (`to`),
/// and whom to wake.
pub(crate) struct PendingWake {
    from: Option<Position>,
    to: Position,
    wake: Wake,
}

/// How far the change feed has been announced.
#[derive(Debug, Default)]
struct FeedCursor {
    /// `None` until the first scan, which only takes the current position.
    last: Option<Position>,
}

struct Registry {
    /// Moves at every wake-up; the value a woken watcher sees.
    seq: u64,
    watchers: HashMap<MailboxId, watch::Sender<u64>>,
    /// Watchers held at the last sweep of unheld entries.
    swept_len: usize,
    /// Account watchers (IMAP NOTIFY), and the mailboxes whose changes
    /// wake them.
    accounts: HashMap<AccountId, watch::Sender<u64>>,
    account_of: HashMap<MailboxId, AccountId>,
}

impl Registry {
    fn wake_account_of(&self, mailbox: MailboxId, seq: u64) {
        if let Some(tx) = self
            .account_of
            .get(&mailbox)
            .and_then(|a| self.accounts.get(a))
        {
            tx.send_replace(seq);
        }
    }

    fn wake_accounts(&self, seq: u64) {
        for tx in self.accounts.values() {
            tx.send_replace(seq);
        }
    }
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
                accounts: HashMap::new(),
                account_of: HashMap::new(),
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
    ///
    /// The watchers are woken before the cursor is let go: a writer that
    /// finds the cursor already moved by another thread's scan (the
    /// poller, PostgreSQL's listener) waits here until that scan's
    /// watchers are woken, so a write never returns before the wake-up
    /// of its own commit.
    pub(crate) fn scan_and_wake(&self, conn: &Connection) {
        let mut cursor = lock(&self.cursor);
        let wake = match scan(conn, &mut cursor) {
            Ok(wake) => wake,
            Err(e) => {
                tracing::warn!(error = %e, "store: cannot read the change feed; waking every mailbox watcher");
                Wake::All
            }
        };
        self.wake(&wake);
        drop(cursor);
    }

    /// In the writer's transaction, just before its `COMMIT`: reads what
    /// the commit will add to the feed, to announce once it has committed
    /// ([`Wakeups::announce`]). The writer holds the write lock, so what
    /// it reads now is exactly what the commit makes visible, and this
    /// read needs no snapshot of its own (issue 13: the scan after the
    /// commit took two read transactions between the commit and the
    /// answer to every request). `None` if the feed cannot be read here.
    pub(crate) fn scan_before_commit(&self, conn: &Connection) -> Option<PendingWake> {
        let from = lock(&self.cursor).last;
        let mut cursor = FeedCursor { last: from };
        let wake = scan(conn, &mut cursor).ok()?;
        Some(PendingWake {
            from,
            to: cursor.last?,
            wake,
        })
    }

    /// After the commit `pending` was read for (on a connection outside
    /// any transaction): announces it if no scan moved the cursor since
    /// (the poller may have announced the commit already); otherwise, or
    /// without `pending`, scans as [`Wakeups::scan_and_wake`] does.
    pub(crate) fn announce(&self, conn: &Connection, pending: Option<PendingWake>) {
        if let Some(pending) = pending {
            let mut cursor = lock(&self.cursor);
            if cursor.last == pending.from {
                cursor.last = Some(pending.to);
                // Woken under the cursor, as in `scan_and_wake`.
                self.wake(&pending.wake);
                drop(cursor);
                return;
            }
            drop(cursor);
        }
        self.scan_and_wake(conn);
    }

    pub(crate) fn wake(&self, wake: &Wake) {
        let mut registry = lock(&self.registry);
        match wake {
            Wake::Nothing => {}
            Wake::Changes { mailboxes, names } => {
                registry.seq += 1;
                let seq = registry.seq;
                if *names {
                    registry.wake_accounts(seq);
                }
                for id in mailboxes {
                    if !registry.account_of.is_empty() {
                        registry.wake_account_of(*id, seq);
                    }
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
                registry.wake_accounts(seq);
            }
        }
    }

    /// Watches an account: woken by a change to any of `mailboxes` (the
    /// account's, as the caller last read them), by any mailbox created,
    /// deleted or renamed and any subscription change. Each call replaces
    /// the account's mailboxes with these (the account's watchers share
    /// them: they read the same list).
    pub(crate) fn watch_account(
        &self,
        account: AccountId,
        mailboxes: &[MailboxId],
    ) -> watch::Receiver<u64> {
        let mut registry = lock(&self.registry);
        let seq = registry.seq;
        // Accounts nobody watches any more go, with their mailboxes.
        registry.accounts.retain(|_, tx| tx.receiver_count() > 0);
        let Registry {
            accounts,
            account_of,
            ..
        } = &mut *registry;
        account_of.retain(|_, a| *a != account && accounts.contains_key(a));
        for id in mailboxes {
            account_of.insert(*id, account);
        }
        accounts
            .entry(account)
            .or_insert_with(|| watch::channel(seq).0)
            .subscribe()
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

/// The feed's newest row id, the mailbox epoch and the names epoch.
fn position(conn: &Connection) -> Result<Position> {
    conn.prepare_cached(
        "SELECT (SELECT coalesce(max(id), 0) FROM changes),
                (SELECT coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'mailbox_epoch'), 0)),
                (SELECT coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'names_epoch'), 0))",
    )
    .db()?
    .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
    .db()
}

fn scan(conn: &Connection, cursor: &mut FeedCursor) -> Result<Wake> {
    // The position and the rows after the cursor in one statement, one
    // snapshot (one round trip on PostgreSQL, where the writer runs this
    // before every commit that changed mail). Without a cursor, only the
    // position is wanted: no row is after `i64::MAX`.
    let after = cursor.last.map_or(i64::MAX, |(id, _, _)| id);
    let mut stmt = conn
        .prepare_cached(
            "SELECT p.max_id, p.epoch, p.names, c.id, c.mailbox_id
               FROM (SELECT (SELECT coalesce(max(id), 0) FROM changes) AS max_id,
                            (SELECT coalesce((SELECT CAST(value AS BIGINT) FROM meta
                                               WHERE key = 'mailbox_epoch'), 0)) AS epoch,
                            (SELECT coalesce((SELECT CAST(value AS BIGINT) FROM meta
                                               WHERE key = 'names_epoch'), 0)) AS names) p
               LEFT JOIN changes c ON c.id > ?1",
        )
        .db()?;
    let mut rows = stmt.query([after]).db()?;
    let mut position: Option<Position> = None;
    let mut changed = Vec::new();
    while let Some(row) = rows.next().db()? {
        if position.is_none() {
            position = Some((row.get(0).db()?, row.get(1).db()?, row.get(2).db()?));
        }
        if let Some(id) = row.get::<_, Option<i64>>(3).db()? {
            changed.push((id, MailboxId(row.get(4).db()?)));
        }
    }
    let (max_id, epoch, names_epoch) =
        position.ok_or_else(|| StoreError::Database("the change feed has no position".into()))?;
    let Some((last_id, last_epoch, last_names)) = cursor.last else {
        cursor.last = Some((max_id, epoch, names_epoch));
        return Ok(Wake::All);
    };
    if epoch != last_epoch || max_id < last_id {
        cursor.last = Some((max_id, epoch, names_epoch));
        return Ok(Wake::All);
    }
    let names = names_epoch != last_names;
    let mut ids = BTreeSet::new();
    let mut newest = max_id;
    for (id, mailbox) in changed {
        newest = newest.max(id);
        ids.insert(mailbox);
    }
    cursor.last = Some((newest, epoch, names_epoch));
    Ok(if ids.is_empty() && !names {
        Wake::Nothing
    } else {
        Wake::Changes {
            mailboxes: ids,
            names,
        }
    })
}
