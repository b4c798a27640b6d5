//! Pruning the change feed and the expunge tombstones.
//!
//! Every change to a mailbox writes a row to `changes` (one per new
//! modseq), and every expunge leaves a tombstone in `expunged`. IMAP
//! sessions read the feed to learn what changed since their client last
//! looked (`feed`, [`Store::changes_since`]); the tombstones are kept for
//! QRESYNC (RFC 7162 3.2.5.2: the UIDs expunged since the modseq a client
//! last saw).
//!
//! Kept forever they grow with traffic, not with mail: a mailbox of 100
//! messages under steady IMAP use writes a million rows in ten minutes. So
//! each mailbox keeps the changes and tombstones of its newest
//! [`PruneOptions::keep_changes`] modseqs, and none older than
//! [`PruneOptions::max_age`]; the rest is deleted. `mailboxes.horizon_modseq`
//! records how far: every change and tombstone with a modseq above it is
//! still there, at or below it some may be gone. A client that asks what
//! was expunged since a modseq below the horizon cannot get an exact answer
//! from the tombstones ([`Store::expunged_since`](crate::Store::expunged_since) says so); RFC 7162 lets
//! the server then answer from the UIDs that no longer exist, as Dovecot
//! does once its transaction log has rotated; a session whose client last
//! looked before the horizon likewise compares the whole mailbox index.
//!
//! The work runs on the writer thread, never on a session's path: after a
//! write batch's requests, inside its transaction (so it shares the batch's
//! sync), the [`Pruner`] does one bounded step — at most
//! [`PruneOptions::batch`] rows from each table — and when the writer is
//! idle it does its steps in transactions of their own. Which mailboxes
//! need it is looked at most once per [`PruneOptions::interval`], and only
//! after mail changed: the rows added since the last look name them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::{ExpungedSince, MailboxId, ModSeq, PruneOptions, Result, StoreError, Timestamp, Uid};

/// When the writer has pruning left and no requests, how long it waits
/// for one before it prunes in a transaction of its own.
pub(crate) const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Rows added to the feed since the last look above which the look scans
/// the mailboxes rather than the new rows (another process wrote a lot).
const NEW_ROWS_SCAN_LIMIT: i64 = 200_000;

/// The writer's pruning state.
pub(crate) struct Pruner {
    options: PruneOptions,
    /// The next look is not before this.
    next_look: Instant,
    /// The feed's highest row id at the last look (`None`: no look yet).
    seen_id: Option<i64>,
    /// Mail changed since the last look (in this process; other
    /// processes prune their own growth, and this one's looks see it too).
    dirty: bool,
    /// Mailboxes to prune, each up to this modseq.
    work: BTreeMap<i64, i64>,
}

impl Pruner {
    pub(crate) fn new(options: PruneOptions) -> Pruner {
        Pruner {
            options: PruneOptions {
                keep_changes: options.keep_changes.max(1),
                batch: options.batch.max(1),
                ..options
            },
            next_look: Instant::now(),
            seen_id: None,
            // Look once soon after opening: a database from before pruning
            // may hold a long feed.
            dirty: true,
            work: BTreeMap::new(),
        }
    }

    /// A batch that changed mail has committed.
    pub(crate) fn note_change(&mut self) {
        self.dirty = true;
    }

    /// Whether the pruner has something to do now.
    pub(crate) fn due(&self, now: Instant) -> bool {
        !self.work.is_empty() || (self.dirty && now >= self.next_look)
    }

    /// How long the writer may wait for requests before [`Pruner::due`]
    /// may become true by itself (`None`: only a request can make it so).
    pub(crate) fn wait(&self, now: Instant) -> Option<Duration> {
        if !self.work.is_empty() {
            Some(IDLE_WAIT)
        } else if self.dirty {
            Some(self.next_look.saturating_duration_since(now).max(IDLE_WAIT))
        } else {
            None
        }
    }

    /// Does one bounded piece of work inside the caller's transaction: a
    /// look if one is due, then one step. Returns the rows deleted.
    pub(crate) fn run(&mut self, conn: &Connection, now: Instant) -> Result<u64> {
        if self.dirty && now >= self.next_look {
            self.dirty = false;
            self.next_look = now + self.options.interval;
            self.look(conn, wall_clock())?;
        }
        self.step(conn)
    }

    /// Gives up the planned work after a failure; the next look plans it
    /// again.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.work.clear();
        self.seen_id = None;
        self.dirty = true;
        self.next_look = now + self.options.interval;
    }

    /// Finds the mailboxes past a limit and how far each is to be pruned.
    fn look(&mut self, conn: &Connection, now: Timestamp) -> Result<()> {
        let max_id: i64 = conn
            .prepare_cached("SELECT coalesce(max(id), 0) FROM changes")
            .db()?
            .query_row([], |row| row.get(0))
            .db()?;
        let keep = i64::try_from(self.options.keep_changes).unwrap_or(i64::MAX);

        // The count limit: a mailbox's feed has at most one row per modseq
        // above its horizon, so highest - horizon bounds its rows.
        let over: Vec<(i64, i64)> = match self.seen_id {
            Some(seen) if max_id - seen <= NEW_ROWS_SCAN_LIMIT => {
                // Only mailboxes that changed since the last look can have
                // grown past the limit; the new rows name them.
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT b.id, b.highest_modseq - ?2 FROM mailboxes b
                          WHERE b.id IN (SELECT DISTINCT mailbox_id FROM changes WHERE id > ?1)
                            AND b.highest_modseq - b.horizon_modseq > ?2",
                    )
                    .db()?;
                let rows = stmt
                    .query_map(params![seen, keep], |row| Ok((row.get(0)?, row.get(1)?)))
                    .db()?;
                rows.collect::<crate::db::Result<_>>().db()?
            }
            _ => {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, highest_modseq - ?1 FROM mailboxes
                          WHERE highest_modseq - horizon_modseq > ?1",
                    )
                    .db()?;
                let rows = stmt
                    .query_map([keep], |row| Ok((row.get(0)?, row.get(1)?)))
                    .db()?;
                rows.collect::<crate::db::Result<_>>().db()?
            }
        };
        self.seen_id = Some(max_id);
        for (mailbox, target) in over {
            self.plan(mailbox, target);
        }

        // The age limit. Row ids grow with time, so the oldest rows come
        // first in id order: read a batch of them and stop at the first
        // young one. If the whole batch was old, more may follow: look
        // again at the next chance.
        if !self.options.max_age.is_zero() {
            let age = i64::try_from(self.options.max_age.as_secs()).unwrap_or(i64::MAX);
            let cutoff = now.saturating_sub(age);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT mailbox_id, modseq, created_at FROM changes ORDER BY id LIMIT ?1",
                )
                .db()?;
            let limit = i64::try_from(self.options.batch).unwrap_or(i64::MAX);
            let mut rows = stmt.query([limit]).db()?;
            let mut read = 0;
            let mut old = Vec::new();
            while let Some(row) = rows.next().db()? {
                read += 1;
                let created_at: i64 = row.get(2).db()?;
                if created_at >= cutoff {
                    break;
                }
                old.push((row.get::<_, i64>(0).db()?, row.get::<_, i64>(1).db()?));
            }
            if read == limit && old.len() as i64 == limit {
                self.dirty = true;
                self.next_look = Instant::now();
            }
            for (mailbox, modseq) in old {
                self.plan(mailbox, modseq);
            }
        }
        Ok(())
    }

    fn plan(&mut self, mailbox: i64, target: i64) {
        if target > 0 {
            let entry = self.work.entry(mailbox).or_insert(target);
            *entry = (*entry).max(target);
        }
    }

    /// Prunes the first planned mailbox by at most `batch` modseqs: its
    /// changes and tombstones at or below the new horizon go, and the
    /// horizon is recorded. Returns the rows deleted.
    fn step(&mut self, conn: &Connection) -> Result<u64> {
        let Some((&mailbox, &target)) = self.work.first_key_value() else {
            return Ok(0);
        };
        let horizon: Option<i64> = conn
            .prepare_cached("SELECT horizon_modseq FROM mailboxes WHERE id = ?1")
            .db()?
            .query_row([mailbox], |row| row.get(0))
            .optional()
            .db()?;
        let batch = i64::try_from(self.options.batch).unwrap_or(i64::MAX);
        let Some(horizon) = horizon else {
            // The mailbox is gone; its rows should have gone with it
            // (ON DELETE CASCADE). Any left over go now, a batch at a time.
            let mut deleted = 0;
            for sql in [
                "DELETE FROM changes WHERE id IN
                     (SELECT id FROM changes WHERE mailbox_id = ?1 LIMIT ?2)",
                "DELETE FROM expunged WHERE mailbox_id = ?1 AND uid IN
                     (SELECT uid FROM expunged WHERE mailbox_id = ?1 LIMIT ?2)",
            ] {
                deleted += conn
                    .prepare_cached(sql)
                    .db()?
                    .execute(params![mailbox, batch])
                    .db()? as u64;
            }
            if deleted == 0 {
                self.work.remove(&mailbox);
            }
            return Ok(deleted);
        };
        if horizon >= target {
            // Pruned far enough already (by another process, say).
            self.work.remove(&mailbox);
            return Ok(0);
        }
        // At most one row per modseq in each table: `batch` modseqs are at
        // most `batch` rows of each.
        let upto = target.min(horizon.saturating_add(batch));
        // The feed's newest row stays whatever its age: its id is the
        // highest, and SQLite gives a new row the highest id plus one, so
        // ids are never given twice (the wake-ups read the feed by id).
        let changes = conn
            .prepare_cached(
                "DELETE FROM changes WHERE mailbox_id = ?1 AND modseq <= ?2
                    AND id < (SELECT max(id) FROM changes)",
            )
            .db()?
            .execute(params![mailbox, upto])
            .db()?;
        let tombstones = conn
            .prepare_cached("DELETE FROM expunged WHERE mailbox_id = ?1 AND modseq <= ?2")
            .db()?
            .execute(params![mailbox, upto])
            .db()?;
        conn.prepare_cached("UPDATE mailboxes SET horizon_modseq = ?2 WHERE id = ?1")
            .db()?
            .execute(params![mailbox, upto])
            .db()?;
        if upto >= target {
            self.work.remove(&mailbox);
        }
        Ok((changes + tombstones) as u64)
    }
}

fn wall_clock() -> Timestamp {
    chrono::Utc::now().timestamp()
}

/// Reader: what [`crate::Store::expunged_since`] answers.
pub(crate) fn expunged_since(
    conn: &Connection,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<ExpungedSince> {
    let horizon: i64 = conn
        .prepare_cached("SELECT horizon_modseq FROM mailboxes WHERE id = ?1")
        .db()?
        .query_row([mailbox.0], |row| row.get(0))
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
    let horizon = u64::try_from(horizon).unwrap_or(0);
    if since.0 < horizon {
        return Ok(ExpungedSince::Pruned {
            horizon: ModSeq(horizon),
        });
    }
    let since = i64::try_from(since.0).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
        )
        .db()?;
    let rows = stmt
        .query_map(params![mailbox.0, since], |row| row.get::<_, i64>(0))
        .db()?;
    let mut uids = Vec::new();
    for uid in rows {
        let uid = uid.db()?;
        uids.push(Uid(u32::try_from(uid).map_err(|_| {
            StoreError::Database(format!("corrupt tombstone UID: {uid}"))
        })?));
    }
    Ok(ExpungedSince::Known(uids))
}
