//! Leases on named resources: one holder at a time across every process on
//! the data dir, with an expiry so a holder that dies lets go by itself.
//! A holder is a session of a process; a process may take over its own
//! sessions' leases (it keeps its live sessions apart itself), which is
//! what lets a release that arrives late never drop a newer session's lease.

use crate::db::{params, Connection};

use crate::db::SqlResult;
use crate::{Result, Timestamp};

/// Writer: takes the lease if it is free, expired or already `process`'s.
pub(crate) fn acquire(
    conn: &Connection,
    name: &str,
    process: &str,
    session: i64,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO leases (name, process, session, expires_at) VALUES (?1, ?2, ?3, ?5)
             ON CONFLICT (name) DO UPDATE
                SET process = excluded.process, session = excluded.session,
                    expires_at = excluded.expires_at
              WHERE leases.process = ?2 OR leases.expires_at <= ?4",
        )
        .db()?
        .execute(params![name, process, session, now, expires_at])
        .db()?;
    Ok(changed == 1)
}

/// Writer: drops the lease on `name` if that session still holds it.
pub(crate) fn release(conn: &Connection, name: &str, process: &str, session: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM leases WHERE name = ?1 AND process = ?2 AND session = ?3")
        .db()?
        .execute(params![name, process, session])
        .db()?;
    Ok(())
}
