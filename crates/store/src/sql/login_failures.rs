//! Failed logins per client address, kept in the store so that every
//! process and every node on the same database counts them together
//! (`common::sasl::AuthThrottle` asks here). Rows age out: a row whose
//! last failure is older than the caller's memory counts for nothing and
//! is deleted by the next failure recorded; the table is kept to a bounded
//! number of addresses, the most recent ones.

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::types::{Result, Timestamp};

/// Reader: failures from `ip` whose last one is at or after `since`.
pub(crate) fn count(conn: &Connection, ip: &str, since: Timestamp) -> Result<u32> {
    let failures: Option<i64> = conn
        .prepare_cached("SELECT failures FROM login_failures WHERE ip = ?1 AND last_failure >= ?2")
        .db()?
        .query_row(params![ip, since], |row| row.get(0))
        .optional()
        .db()?;
    Ok(failures.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// Writer: one more failure from `ip` at `now` (counting from one again if
/// the last was before `since`); returns the count. Rows last failed
/// before `since` are deleted, and past `max_entries` addresses only the
/// most recent half is kept.
pub(crate) fn record(
    conn: &Connection,
    ip: &str,
    now: Timestamp,
    since: Timestamp,
    max_entries: u32,
) -> Result<u32> {
    let failures: i64 = conn
        .prepare_cached(
            "INSERT INTO login_failures (ip, failures, last_failure) VALUES (?1, 1, ?2)
             ON CONFLICT (ip) DO UPDATE SET
                 failures = CASE WHEN login_failures.last_failure < ?3 THEN 1
                                 ELSE login_failures.failures + 1 END,
                 last_failure = ?2
             RETURNING failures",
        )
        .db()?
        .query_row(params![ip, now, since], |row| row.get(0))
        .db()?;
    conn.prepare_cached("DELETE FROM login_failures WHERE last_failure < ?1")
        .db()?
        .execute(params![since])
        .db()?;
    // A new address is the only way the table grows.
    if failures == 1 {
        let rows: i64 = conn
            .prepare_cached("SELECT count(*) FROM login_failures")
            .db()?
            .query_row([], |row| row.get(0))
            .db()?;
        if rows > i64::from(max_entries) {
            let keep = i64::from(max_entries / 2).max(1);
            conn.prepare_cached(
                "DELETE FROM login_failures WHERE last_failure <
                    (SELECT last_failure FROM login_failures
                      ORDER BY last_failure DESC LIMIT 1 OFFSET ?1)",
            )
            .db()?
            .execute(params![keep])
            .db()?;
        }
    }
    Ok(u32::try_from(failures).unwrap_or(u32::MAX))
}

/// Writer: forgets `ip`'s failures (it logged in).
pub(crate) fn forget(conn: &Connection, ip: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM login_failures WHERE ip = ?1")
        .db()?
        .execute(params![ip])
        .db()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn failures_count_age_out_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ip = "192.0.2.7";
        assert_eq!(store.login_failures(ip, 0).await.unwrap(), 0);
        assert_eq!(
            store.record_login_failure(ip, 1000, 100, 50).await.unwrap(),
            1
        );
        assert_eq!(
            store.record_login_failure(ip, 1001, 101, 50).await.unwrap(),
            2
        );
        assert_eq!(store.login_failures(ip, 500).await.unwrap(), 2);
        // Past the memory: counted as none, and from one again.
        assert_eq!(store.login_failures(ip, 1002).await.unwrap(), 0);
        assert_eq!(
            store
                .record_login_failure(ip, 3000, 2000, 50)
                .await
                .unwrap(),
            1
        );
        // Another process on the same store sees the same count.
        let other = Store::open(dir.path()).unwrap();
        assert_eq!(
            other
                .record_login_failure(ip, 3001, 2001, 50)
                .await
                .unwrap(),
            2
        );
        assert_eq!(store.login_failures(ip, 2001).await.unwrap(), 2);
        store.forget_login_failures(ip).await.unwrap();
        assert_eq!(other.login_failures(ip, 0).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..25i64 {
            let ip = format!("198.51.100.{i}");
            store
                .record_login_failure(&ip, 1000 + i, 0, 10)
                .await
                .unwrap();
        }
        let rows: i64 = store
            .inner
            .read(|conn| {
                use crate::db::SqlResult;
                conn.query_row("SELECT count(*) FROM login_failures", [], |r| r.get(0))
                    .db()
            })
            .await
            .unwrap();
        assert!(rows <= 10, "{rows} rows");
        // The most recent stay.
        assert_eq!(store.login_failures("198.51.100.24", 0).await.unwrap(), 1);
        assert_eq!(store.login_failures("198.51.100.0", 0).await.unwrap(), 0);
        // Expired rows go with the next failure.
        store
            .record_login_failure("203.0.113.1", 5000, 4000, 10)
            .await
            .unwrap();
        assert_eq!(store.login_failures("198.51.100.24", 0).await.unwrap(), 0);
    }
}
