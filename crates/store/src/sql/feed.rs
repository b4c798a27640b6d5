//! Reading the change feed: what changed in one mailbox after a modseq.
//!
//! Every commit to a mailbox writes one `changes` row per new modseq
//! (`append`, `flags` or `expunge`; see `mailbox`), and pruning keeps the
//! rows above each mailbox's `horizon_modseq` (see [`crate::sql::prune`]). A session that
//! was brought up to some modseq and is woken by a commit can so read only
//! the messages that changed since, with their flags as they are now,
//! instead of the whole mailbox index: [`Store::changes_since`]. When it
//! was brought up to a modseq below the horizon, some rows it would need
//! are gone, and the answer says so ([`MailboxChanges::Pruned`]); the
//! caller then compares the whole index instead.

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::sql::mailbox::{flags_of, mailbox_state, to_u32, to_u64};
use crate::types::*;

/// The UIDs the feed names after a modseq (each as often as it changed).
const CHANGED_UIDS: &str = "SELECT uid FROM changes WHERE mailbox_id = ?1 AND modseq > ?2";
/// One message as it is now.
const MESSAGE_NOW: &str = "SELECT size, modseq, system_flags, keywords FROM messages
                            WHERE mailbox_id = ?1 AND uid = ?2";

pub(crate) fn changes_since(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxRef,
    since: ModSeq,
) -> Result<MailboxChanges> {
    // The counters and the horizon in one look at the mailbox's row.
    let state = mailbox_state(conn, account, &MailboxKey::Ref(mailbox))?;
    let highest_modseq = ModSeq(to_u64(state.highest_modseq, "HIGHESTMODSEQ")?);
    let mut changes = ChangesSince {
        uid_next: Uid(to_u32(state.uid_next, "UIDNEXT").unwrap_or(u32::MAX)),
        highest_modseq,
        recent_uid: Uid(to_u32(state.recent_uid, "recent UID").unwrap_or(u32::MAX)),
        expunged: Vec::new(),
        changed: Vec::new(),
    };
    if since >= highest_modseq {
        return Ok(MailboxChanges::Known(changes));
    }
    let horizon = to_u64(state.horizon_modseq, "feed horizon")?;
    if since.0 < horizon {
        return Ok(MailboxChanges::Pruned {
            horizon: ModSeq(horizon),
        });
    }
    // Each UID the feed names since then, once, with its message as it is
    // now: none left means it was expunged. The feed's few rows since a
    // recent modseq, then one primary-key lookup per UID.
    let mut uids: Vec<i64> = conn
        .prepare_cached(CHANGED_UIDS)
        .db()?
        .query_map(
            params![state.id, i64::try_from(since.0).unwrap_or(i64::MAX)],
            |row| row.get(0),
        )
        .db()?
        .collect::<crate::db::Result<_>>()
        .db()?;
    uids.sort_unstable();
    uids.dedup();
    let mut message = conn.prepare_cached(MESSAGE_NOW).db()?;
    for uid in uids {
        let now: Option<(i64, i64, i64, String)> = message
            .query_row(params![state.id, uid], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
            .db()?;
        let uid = Uid(u32::try_from(uid)
            .map_err(|_| StoreError::Database(format!("corrupt UID in the change feed: {uid}")))?);
        match now {
            Some((size, modseq, system_flags, keywords)) => changes.changed.push(IndexEntry {
                uid,
                size: to_u64(size, "message size")?,
                modseq: ModSeq(to_u64(modseq, "modseq")?),
                flags: flags_of(system_flags, &keywords),
            }),
            None => changes.expunged.push(uid),
        }
    }
    // In UID order already: the UIDs were sorted.
    Ok(MailboxChanges::Known(changes))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Store;

    fn open(dir: &tempfile::TempDir, keep_changes: u64) -> Store {
        Store::open_with(
            dir.path(),
            StoreOptions {
                poll_interval: Duration::from_millis(50),
                prune: PruneOptions {
                    keep_changes,
                    max_age: Duration::ZERO,
                    batch: 1_000,
                    interval: Duration::ZERO,
                },
                ..StoreOptions::default()
            },
        )
        .unwrap()
    }

    /// An account without the cost of hashing a password (nobody logs in).
    async fn account(store: &Store) -> Account {
        store
            .inner
            .write(false, |conn| {
                crate::sql::accounts::insert_account(conn, "alice@localhost", "$unusable", 0)
            })
            .await
            .unwrap()
    }

    async fn append(store: &Store, account: &Account, mailbox: &str, n: usize) -> Vec<Uid> {
        let mut uids = Vec::new();
        for i in 0..n {
            let raw = format!("Subject: m{i}\r\n\r\nBody {i}.\r\n").into_bytes();
            let (_, uid) = store
                .append(account.id, mailbox, raw, &[], 1_700_000_000)
                .await
                .unwrap();
            uids.push(uid);
        }
        uids
    }

    fn known(changes: MailboxChanges) -> ChangesSince {
        match changes {
            MailboxChanges::Known(c) => c,
            other => panic!("expected the changes, got {other:?}"),
        }
    }

    fn seen() -> Vec<String> {
        vec!["\\Seen".to_owned()]
    }

    #[tokio::test]
    async fn expunges_flag_changes_and_appends_since_a_modseq() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, 10_000);
        let alice = account(&store).await;
        let uids = append(&store, &alice, "INBOX", 4).await;
        let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
        let (inbox, since) = (index.mailbox_ref(), index.highest_modseq);

        let nothing = known(store.changes_since(alice.id, inbox, since).await.unwrap());
        assert_eq!(nothing.highest_modseq, since);
        assert!(nothing.expunged.is_empty() && nothing.changed.is_empty());

        // Flags of 2 change twice, 3 goes, two messages arrive and the
        // second of them goes again; 1 and 4 stay as they were.
        let (account, second) = (alice.id, uids[1]);
        let flag = |change, flags: Vec<String>| {
            let store = store.clone();
            async move {
                store
                    .store_flags(account, inbox, &[second], change, &flags)
                    .await
                    .unwrap()
            }
        };
        flag(FlagChange::Add, seen()).await;
        flag(FlagChange::Add, vec!["$Work".to_owned()]).await;
        store.expunge(alice.id, inbox, &[uids[2]]).await.unwrap();
        let new = append(&store, &alice, "INBOX", 2).await;
        store.expunge(alice.id, inbox, &[new[1]]).await.unwrap();

        let now = store.mailbox_index(alice.id, inbox).await.unwrap();
        let changes = known(store.changes_since(alice.id, inbox, since).await.unwrap());
        assert_eq!(changes.highest_modseq, now.highest_modseq);
        assert_eq!(changes.uid_next, now.uid_next);
        assert_eq!(changes.recent_uid, now.recent_uid);
        assert_eq!(changes.expunged, [uids[2], new[1]]);
        // Current values, the same as the index's.
        let expected: Vec<IndexEntry> = now
            .messages
            .iter()
            .filter(|m| m.uid == uids[1] || m.uid == new[0])
            .cloned()
            .collect();
        assert_eq!(changes.changed, expected);
        assert_eq!(changes.changed[0].flags, ["\\Seen", "$Work"]);

        // From a later modseq only what came after it.
        let later = known(
            store
                .changes_since(alice.id, inbox, ModSeq(since.0 + 2))
                .await
                .unwrap(),
        );
        assert_eq!(later.expunged, [uids[2], new[1]]);
        assert_eq!(later.changed.len(), 1);
        assert_eq!(later.changed[0].uid, new[0]);
        // Up to date: nothing.
        let none = known(
            store
                .changes_since(alice.id, inbox, now.highest_modseq)
                .await
                .unwrap(),
        );
        assert!(none.expunged.is_empty() && none.changed.is_empty());
    }

    #[tokio::test]
    async fn a_modseq_below_the_pruning_horizon_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let keep = 5;
        let store = open(&dir, keep);
        let alice = account(&store).await;
        let uids = append(&store, &alice, "INBOX", 3).await;
        let index = store.mailbox_index(alice.id, "INBOX").await.unwrap();
        let (inbox, old) = (index.mailbox_ref(), index.highest_modseq);
        for round in 0..20 {
            let change = if round % 2 == 0 {
                FlagChange::Add
            } else {
                FlagChange::Remove
            };
            store
                .store_flags(alice.id, inbox, &uids, change, &seen())
                .await
                .unwrap();
        }
        store.expunge(alice.id, inbox, &[uids[0]]).await.unwrap();
        // The writer prunes after a batch once it has looked; wait for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let horizon = loop {
            let highest = store
                .mailbox_index(alice.id, inbox)
                .await
                .unwrap()
                .highest_modseq;
            match store.changes_since(alice.id, inbox, old).await.unwrap() {
                MailboxChanges::Pruned { horizon } if highest.0 - horizon.0 <= keep => {
                    break horizon
                }
                _ => {}
            }
            assert!(std::time::Instant::now() < deadline, "never pruned");
            // Another commit wakes the writer's pruner.
            store
                .store_flags(alice.id, inbox, &[uids[1]], FlagChange::Add, &seen())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(horizon > old);
        // At the horizon, the feed still holds everything after it.
        let at = known(store.changes_since(alice.id, inbox, horizon).await.unwrap());
        let now = store.mailbox_index(alice.id, inbox).await.unwrap();
        assert_eq!(at.highest_modseq, now.highest_modseq);
        for m in &at.changed {
            assert!(m.modseq > horizon);
        }
        assert!(matches!(
            store
                .changes_since(alice.id, inbox, ModSeq(horizon.0 - 1))
                .await
                .unwrap(),
            MailboxChanges::Pruned { horizon: h } if h == horizon
        ));
    }

    #[tokio::test]
    async fn a_mailbox_deleted_and_created_again_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, 10_000);
        let alice = account(&store).await;
        store.create_mailbox(alice.id, "Lists").await.unwrap();
        append(&store, &alice, "Lists", 2).await;
        let old = store.mailbox_index(alice.id, "Lists").await.unwrap();
        store.delete_mailbox(alice.id, "Lists").await.unwrap();
        let account = alice.id;
        let gone = |r: MailboxRef, since| {
            let store = store.clone();
            async move { store.changes_since(account, r, since).await }
        };
        assert!(matches!(
            gone(old.mailbox_ref(), ModSeq(1)).await,
            Err(StoreError::MailboxGone(r)) if r == old.mailbox_ref()
        ));
        store.create_mailbox(alice.id, "Lists").await.unwrap();
        append(&store, &alice, "Lists", 3).await;
        let new = store.mailbox_index(alice.id, "Lists").await.unwrap();
        assert_ne!(new.mailbox_ref(), old.mailbox_ref());
        // The old reference never reads the new mailbox's feed...
        assert!(matches!(
            gone(old.mailbox_ref(), old.highest_modseq).await,
            Err(StoreError::MailboxGone(_))
        ));
        // ...nor does another account's.
        let bob = store
            .inner
            .write(false, |conn| {
                crate::sql::accounts::insert_account(conn, "bob@localhost", "$unusable", 0)
            })
            .await
            .unwrap();
        assert!(matches!(
            store
                .changes_since(bob.id, new.mailbox_ref(), ModSeq(1))
                .await,
            Err(StoreError::MailboxGone(_))
        ));
        // The new one's feed starts afresh.
        let fresh = known(gone(new.mailbox_ref(), ModSeq(1)).await.unwrap());
        assert!(fresh.expunged.is_empty());
        assert_eq!(fresh.changed, new.messages);
    }

    /// Sessions read the feed after every commit, each time from another
    /// modseq, and mailboxes by id: statements must be planned once, not
    /// for every value bound (the readers' connections turn on SQLite's
    /// query planner stability guarantee).
    #[tokio::test]
    async fn the_feed_is_read_without_planning_again() {
        if crate::tests::sqlite_only("SQLite's statement cache and query plans") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, 10_000);
        let alice = account(&store).await;
        let uids = append(&store, &alice, "INBOX", 3).await;
        let inbox = store
            .mailbox_index(alice.id, "INBOX")
            .await
            .unwrap()
            .mailbox_ref();
        store.expunge(alice.id, inbox, &[uids[0]]).await.unwrap();
        // A reader as the store opens them.
        let path = dir.path().join(crate::sqlite::schema::DB_FILE);
        let conn = Connection::Sqlite(crate::sqlite::schema::open_reader(&path).unwrap());
        let expunged_at = store
            .mailbox_index(alice.id, inbox)
            .await
            .unwrap()
            .highest_modseq;
        for since in 1..expunged_at.0 {
            let changes = known(changes_since(&conn, alice.id, inbox, ModSeq(since)).unwrap());
            assert_eq!(changes.expunged, [uids[0]], "since {since}");
        }
        // A mailbox's index, which two indexes of `messages` could serve.
        let index = "SELECT uid, size, modseq FROM messages WHERE mailbox_id = ?1 ORDER BY uid";
        for mailbox in [inbox.id.0, inbox.id.0 + 1, inbox.id.0] {
            let mut stmt = conn.prepare_cached(index).unwrap();
            stmt.query_map([mailbox], |row| row.get::<_, i64>(0))
                .unwrap()
                .for_each(drop);
        }
        for sql in [CHANGED_UIDS, MESSAGE_NOW, index] {
            let sqlite = conn.as_sqlite().unwrap();
            let stmt = sqlite.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }
}
