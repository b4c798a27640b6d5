//! METADATA entries (IMAP, RFC 5464): per mailbox, or of the account's
//! server (no mailbox). Names are kept lower-case (entry names are
//! case-insensitive); a mailbox's entries go with it when it is deleted
//! (`ON DELETE CASCADE`) and stay with it across RENAME (its id stays).

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::sql::mailbox::find_mailbox;
use crate::types::{AccountId, MetadataWrite, Result, StoreError};

/// The mailbox's id (`None` for the server's entries); `NotFound` if the
/// account has no such mailbox.
fn owner(conn: &Connection, account: AccountId, mailbox: Option<&str>) -> Result<Option<i64>> {
    match mailbox {
        None => Ok(None),
        Some(name) => find_mailbox(conn, account, name)?
            .map(|id| Some(id.0))
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}"))),
    }
}

/// Reader: the entries named `entry` or below it (`entry/...`), each name
/// with its value, by name.
pub(crate) fn get(
    conn: &Connection,
    account: AccountId,
    mailbox: Option<&str>,
    entries: &[String],
) -> Result<Vec<(String, Vec<u8>)>> {
    let owner = owner(conn, account, mailbox)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, value FROM metadata
              WHERE account_id = ?1 AND coalesce(mailbox_id, 0) = ?2
                AND (name = ?3 OR substr(name, 1, length(?3) + 1) = ?3 || '/')
              ORDER BY name",
        )
        .db()?;
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in entries {
        let entry = entry.to_ascii_lowercase();
        let rows = stmt
            .query_map(params![account.0, owner.unwrap_or(0), entry], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .db()?;
        for row in rows {
            let row = row.db()?;
            if !out.iter().any(|(n, _)| *n == row.0) {
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// Writer: sets (or with `None` removes) each entry, all or none. Returns
/// false, writing nothing, when the mailbox would then hold more than
/// `max_entries` (and more than it holds now).
pub(crate) fn set(
    conn: &Connection,
    account: AccountId,
    mailbox: Option<&str>,
    writes: &[MetadataWrite],
    max_entries: u32,
) -> Result<bool> {
    let owner = owner(conn, account, mailbox)?;
    let key = owner.unwrap_or(0);
    let held: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM metadata WHERE account_id = ?1 AND coalesce(mailbox_id, 0) = ?2",
        )
        .db()?
        .query_row(params![account.0, key], |row| row.get(0))
        .db()?;
    let mut exists = conn
        .prepare_cached(
            "SELECT 1 FROM metadata
              WHERE account_id = ?1 AND coalesce(mailbox_id, 0) = ?2 AND name = ?3",
        )
        .db()?;
    // The last write of a name counts.
    let mut last: Vec<(String, bool)> = Vec::new();
    for w in writes {
        let name = w.name.to_ascii_lowercase();
        last.retain(|(n, _)| *n != name);
        last.push((name, w.value.is_some()));
    }
    let mut after = held;
    for (name, set) in &last {
        let there = exists
            .query_row(params![account.0, key, name], |_| Ok(()))
            .optional()
            .db()?
            .is_some();
        match (there, set) {
            (false, true) => after += 1,
            (true, false) => after -= 1,
            _ => {}
        }
    }
    if after > i64::from(max_entries) && after > held {
        return Ok(false);
    }
    let mut delete = conn
        .prepare_cached(
            "DELETE FROM metadata
              WHERE account_id = ?1 AND coalesce(mailbox_id, 0) = ?2 AND name = ?3",
        )
        .db()?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO metadata (account_id, mailbox_id, name, value) VALUES (?1, ?2, ?3, ?4)",
        )
        .db()?;
    for w in writes {
        let name = w.name.to_ascii_lowercase();
        delete.execute(params![account.0, key, name]).db()?;
        if let Some(value) = &w.value {
            insert
                .execute(params![account.0, owner, name, value])
                .db()?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use crate::{MetadataWrite, Store, StoreError, StoreOptions};

    fn write(name: &str, value: Option<&str>) -> MetadataWrite {
        MetadataWrite {
            name: name.into(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    fn entries(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[tokio::test]
    async fn entries_per_mailbox_and_server_limited_and_kept_with_the_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), StoreOptions::default()).unwrap();
        let a = store.add_account("alice@localhost", "pw").await.unwrap().id;
        let b = store.add_account("bob@localhost", "pw").await.unwrap().id;
        store.create_mailbox(a, "Box").await.unwrap();
        let set = |account, mailbox: Option<&'static str>, w: Vec<MetadataWrite>, max| {
            let store = store.clone();
            async move { store.set_metadata(account, mailbox, w, max).await }
        };
        assert!(
            set(a, None, vec![write("/shared/Comment", Some("server"))], 10)
                .await
                .unwrap()
        );
        assert!(set(
            a,
            Some("Box"),
            vec![
                write("/private/comment", Some("mine")),
                write("/shared/comment", Some("ours")),
                write("/shared/comment/deeper", Some("x")),
                write("/shared/commentary", Some("y")),
            ],
            10
        )
        .await
        .unwrap());
        let get = |account, mailbox: Option<&'static str>, names: &[&str]| {
            let store = store.clone();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            async move { store.metadata(account, mailbox, &names).await }
        };
        assert_eq!(
            get(a, None, &["/shared/comment"]).await.unwrap(),
            entries(&[("/shared/comment", "server")])
        );
        assert_eq!(
            get(a, Some("Box"), &["/SHARED/comment"]).await.unwrap(),
            entries(&[("/shared/comment", "ours"), ("/shared/comment/deeper", "x")])
        );
        // Another account sees none of it.
        assert!(get(b, None, &["/shared/comment"]).await.unwrap().is_empty());
        // Over the limit: nothing written. Removing and replacing is fine.
        assert!(
            !set(a, Some("Box"), vec![write("/private/more", Some("1"))], 4)
                .await
                .unwrap()
        );
        assert!(get(a, Some("Box"), &["/private/more"])
            .await
            .unwrap()
            .is_empty());
        assert!(set(
            a,
            Some("Box"),
            vec![
                write("/shared/commentary", None),
                write("/private/more", Some("1"))
            ],
            4
        )
        .await
        .unwrap());
        // Missing mailbox.
        assert!(matches!(
            get(a, Some("Nope"), &["/shared/comment"]).await,
            Err(StoreError::NotFound(_))
        ));
        // RENAME keeps them, DELETE drops them (a new mailbox of the name
        // starts with none).
        store.rename_mailbox(a, "Box", "Box2").await.unwrap();
        assert_eq!(
            get(a, Some("Box2"), &["/private/comment"]).await.unwrap(),
            entries(&[("/private/comment", "mine")])
        );
        store.delete_mailbox(a, "Box2").await.unwrap();
        store.create_mailbox(a, "Box2").await.unwrap();
        assert!(get(a, Some("Box2"), &["/private", "/shared"])
            .await
            .unwrap()
            .is_empty());
        // The account going takes its server entries.
        store.delete_account("alice@localhost").await.unwrap();
        store.add_account("alice@localhost", "pw").await.unwrap();
    }
}
