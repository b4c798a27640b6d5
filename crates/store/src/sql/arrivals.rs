//! Messages by arrival: every copy in every mailbox has an arrival number
//! (`messages.arrival`) that only grows and is never reused. The HTTP API
//! names messages by it, lists the newest first, and waits for what
//! arrives after a number it was given.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::db::{params, Connection};

use crate::db::SqlResult;
use crate::kept::Kept;
use crate::sql::mailbox::{self, EnvelopeCache};
use crate::{
    AccountId, ArrivalList, ArrivalScope, ArrivedMessage, EnvelopeId, FlagChange, MailboxId,
    MailboxKey, MailboxRef, MessageSummary, ModSeq, Result, StoreError, Uid,
};

/// The columns [`arrived_from_row`] reads, after `FROM messages m JOIN
/// mailboxes b ... JOIN accounts a`.
const COLUMNS: &str = "m.arrival, a.id, a.address, a.captured, b.id, b.uid_validity, b.name,
     m.uid, m.modseq, m.system_flags, m.keywords, m.internal_date, m.size, m.envelope_id,
     m.blob_hash";

const FROM: &str = "FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                    JOIN accounts a ON a.id = b.account_id";

fn arrived_from_row(
    row: &crate::db::Row<'_>,
    summary: Arc<MessageSummary>,
) -> Result<ArrivedMessage> {
    let int = |i| -> Result<i64> { row.get::<_, i64>(i).db() };
    let number = |v: i64, what: &str| {
        u64::try_from(v).map_err(|_| StoreError::Database(format!("corrupt {what}: {v}")))
    };
    let keywords: String = row.get(10).db()?;
    Ok(ArrivedMessage {
        arrival: number(int(0)?, "arrival")?,
        account: AccountId(int(1)?),
        address: row.get(2).db()?,
        captured: row.get(3).db()?,
        mailbox: MailboxRef {
            id: MailboxId(int(4)?),
            uid_validity: u32::try_from(int(5)?)
                .map_err(|_| StoreError::Database("corrupt UIDVALIDITY".into()))?,
        },
        mailbox_name: row.get(6).db()?,
        uid: Uid(u32::try_from(int(7)?).map_err(|_| StoreError::Database("corrupt UID".into()))?),
        modseq: ModSeq(number(int(8)?, "modseq")?),
        flags: mailbox::flags_of(int(9)?, &keywords),
        internal_date: int(11)?,
        size: number(int(12)?, "size")?,
        envelope: row.get::<_, Option<i64>>(13).db()?.map(EnvelopeId),
        summary,
    })
}

/// The SQL condition for a scope, on parameter `?3` (statements that use
/// fewer parameters still bind 1 and 2; SQLite ignores what no `?n` uses).
fn scope_condition(scope: &ArrivalScope) -> &'static str {
    match scope {
        ArrivalScope::All => "CAST(?3 AS TEXT) IS NULL",
        ArrivalScope::Domain(_) => "substr(a.address, length(a.address) - length(?3)) = '@' || ?3",
        ArrivalScope::Account(_) => "a.id = ?3",
        ArrivalScope::Mailbox(_) => "m.mailbox_id = ?3",
    }
}

fn scope_value(scope: &ArrivalScope) -> crate::db::Value {
    use crate::db::Value;
    match scope {
        ArrivalScope::All => Value::Null,
        ArrivalScope::Domain(d) => Value::Text(d.to_lowercase()),
        ArrivalScope::Account(a) => Value::Integer(a.0),
        ArrivalScope::Mailbox(m) => Value::Integer(m.0),
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reader: the messages in `scope` with an arrival number above `after`,
/// oldest first (`newest_first`: below `before`, newest first), at most
/// `limit`; summaries without their MIME tree.
pub(crate) fn list(
    conn: &Connection,
    cache: &EnvelopeCache,
    scope: &ArrivalScope,
    after: u64,
    before: Option<u64>,
    newest_first: bool,
    limit: usize,
) -> Result<Vec<ArrivedMessage>> {
    let order = if newest_first { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {COLUMNS} {FROM}
          WHERE m.arrival > ?1 AND m.arrival < ?2 AND {}
          ORDER BY m.arrival {order} LIMIT ?4",
        scope_condition(scope)
    );
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt
        .query(params![
            to_i64(after),
            before.map_or(i64::MAX, to_i64),
            scope_value(scope),
            to_i64(limit as u64),
        ])
        .db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        let summary = mailbox::cached_envelope(conn, cache, &row, 14)?;
        out.push(arrived_from_row(&row, summary)?);
    }
    Ok(out)
}

/// Reader: how many messages `scope` holds, and how many of them are
/// not `\Seen`.
pub(crate) fn count(conn: &Connection, scope: &ArrivalScope) -> Result<(u64, u64)> {
    let sql = format!(
        "SELECT count(*), coalesce(sum(CASE WHEN (m.system_flags & 1) = 0 THEN 1 ELSE 0 END), 0) {FROM}
          WHERE {}",
        scope_condition(scope)
    );
    let (all, unseen): (i64, i64) = conn
        .prepare_cached(&sql)
        .db()?
        .query_row(params![0, 0, scope_value(scope)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .db()?;
    Ok((
        u64::try_from(all).unwrap_or(0),
        u64::try_from(unseen).unwrap_or(0),
    ))
}

/// Reader: one message by its arrival number, with its whole summary (the
/// MIME tree too), if it is in `scope`.
pub(crate) fn find(
    conn: &Connection,
    scope: &ArrivalScope,
    arrival: u64,
) -> Result<Option<ArrivedMessage>> {
    let sql = format!(
        "SELECT {COLUMNS}, s.summary {FROM} LEFT JOIN summaries s ON s.hash = m.blob_hash
          WHERE m.arrival = ?1 AND {}",
        scope_condition(scope)
    );
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt
        .query(params![to_i64(arrival), 0, scope_value(scope)])
        .db()?;
    let Some(row) = rows.next().db()? else {
        return Ok(None);
    };
    let size = u64::try_from(row.get::<_, i64>(12).db()?).unwrap_or(0);
    let json: Option<String> = row.get(15).db()?;
    let summary = Arc::new(crate::sql::blobs::decode_summary(json.as_deref(), size));
    arrived_from_row(&row, summary).map(Some)
}

/// Reader: the raw bytes of one message by its arrival number, if it is
/// in `scope`.
pub(crate) fn raw(
    conn: &Connection,
    scope: &ArrivalScope,
    arrival: u64,
) -> Result<Option<Vec<u8>>> {
    let sql = format!(
        "SELECT d.data {FROM} JOIN blobs d ON d.hash = m.blob_hash
          WHERE m.arrival = ?1 AND {}",
        scope_condition(scope)
    );
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt
        .query(params![to_i64(arrival), 0, scope_value(scope)])
        .db()?;
    match rows.next().db()? {
        Some(row) => Ok(Some(row.get(0).db()?)),
        None => Ok(None),
    }
}

/// Reader: the raw bytes of the messages these arrival numbers name
/// within `scope`, in the order asked; those not in scope (or gone) are
/// left out. One read transaction, so one snapshot.
pub(crate) fn raw_many(
    conn: &Connection,
    scope: &ArrivalScope,
    arrivals: &[u64],
) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::with_capacity(arrivals.len());
    for &arrival in arrivals {
        if let Some(raw) = raw(conn, scope, arrival)? {
            out.push((arrival, raw));
        }
    }
    Ok(out)
}

/// The lists [`snapshot`] read, kept while nothing was committed since,
/// within a byte budget ([`crate::StoreOptions::arrival_list_cache_bytes`];
/// each charged by [`crate::kept::arrival_list_bytes`]).
///
/// Whether anything was: `PRAGMA data_version` moves on a connection when
/// another connection (this process's writer, or another process)
/// committed since that connection last asked. Each reader connection
/// asks before it uses a kept list, and the first one to see a move bumps
/// `generation`, which retires every list read before it. So a request
/// made after a commit never gets a list from before that commit, in this
/// process or from another one, without waiting for the store's poller.
pub(crate) struct ListCache {
    generation: AtomicU64,
    /// Each reader connection's last `data_version`, by its address (a
    /// reader thread holds its connection in place for its whole life).
    seen: Mutex<HashMap<usize, i64>>,
    /// By (scope, max): the generation read at, the list.
    lists: Mutex<Kept<ListKey, (u64, Arc<ArrivalList>)>>,
}

/// What a kept list answers: its scope and its `max`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ListKey(ArrivalScope, usize);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ListCache {
    /// No lists yet; they may hold `budget` bytes.
    pub(crate) fn new(budget: u64) -> ListCache {
        ListCache {
            generation: AtomicU64::new(0),
            seen: Mutex::default(),
            lists: Mutex::new(Kept::new(budget)),
        }
    }

    /// Reader: the generation a list read on `conn` now belongs to,
    /// bumped first if `conn` sees a commit since it last looked.
    fn generation(&self, conn: &Connection) -> Result<u64> {
        let version = conn.data_version().db()?;
        let key = std::ptr::from_ref(conn) as usize;
        let mut seen = locked(&self.seen);
        if seen.insert(key, version) != Some(version) {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(self.generation.load(Ordering::SeqCst))
    }

    fn get(&self, scope: &ArrivalScope, max: usize, generation: u64) -> Option<Arc<ArrivalList>> {
        locked(&self.lists)
            .get(&ListKey(scope.clone(), max))
            .filter(|(g, _)| *g == generation)
            .map(|(_, list)| list.clone())
    }

    fn put(&self, scope: &ArrivalScope, max: usize, generation: u64, list: Arc<ArrivalList>) {
        let mut lists = locked(&self.lists);
        // Lists of older generations are of no use to anybody any more.
        lists.retain(|ListKey(s, _), (g, _)| *g >= generation && s != scope);
        if lists.values().any(|(g, _)| *g > generation) {
            // A newer list was read meanwhile; this one is already old.
            return;
        }
        let bytes = crate::kept::arrival_list_bytes(&list);
        lists.insert(ListKey(scope.clone(), max), (generation, list), bytes);
    }
}

/// Reader: the messages of `scope`, newest first (at most `max` of
/// them) with its counts, from `lists` if nothing was committed since
/// they were read, else read now (and kept).
pub(crate) fn snapshot(
    conn: &Connection,
    cache: &EnvelopeCache,
    lists: &ListCache,
    scope: &ArrivalScope,
    max: usize,
) -> Result<Arc<ArrivalList>> {
    let generation = lists.generation(conn)?;
    if let Some(hit) = lists.get(scope, max, generation) {
        return Ok(hit);
    }
    let messages = list(conn, cache, scope, 0, None, true, max)?;
    let (total, unseen) = count(conn, scope)?;
    let list = Arc::new(ArrivalList {
        messages,
        total,
        unseen,
    });
    lists.put(scope, max, generation, list.clone());
    Ok(list)
}

/// Reader: the last arrival number given (0 before the first message).
pub(crate) fn last(conn: &Connection) -> Result<u64> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'last_arrival'")
        .db()?
        .query_row([], |row| row.get(0))
        .map(Some)
        .or_else(|e| match e {
            crate::db::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .db()?;
    Ok(last.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

/// The messages these arrival numbers name within `scope`, grouped by
/// mailbox: (account, mailbox) → UIDs.
fn by_mailbox(
    conn: &Connection,
    scope: &ArrivalScope,
    arrivals: &[u64],
) -> Result<BTreeMap<(AccountId, MailboxRef), Vec<Uid>>> {
    let sql = format!(
        "SELECT a.id, b.id, b.uid_validity, m.uid {FROM}
          WHERE m.arrival = ?1 AND {}",
        scope_condition(scope)
    );
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut out: BTreeMap<(AccountId, MailboxRef), Vec<Uid>> = BTreeMap::new();
    for &arrival in arrivals {
        let mut rows = stmt
            .query(params![to_i64(arrival), 0, scope_value(scope)])
            .db()?;
        if let Some(row) = rows.next().db()? {
            let account = AccountId(row.get(0).db()?);
            let mailbox = MailboxRef {
                id: MailboxId(row.get(1).db()?),
                uid_validity: row.get(2).db()?,
            };
            let uid = Uid(row.get(3).db()?);
            out.entry((account, mailbox)).or_default().push(uid);
        }
    }
    Ok(out)
}

/// Writer: expunges the messages these arrival numbers name within
/// `scope` (each mailbox's sessions see an ordinary expunge). Returns how
/// many went.
pub(crate) fn delete(conn: &Connection, scope: &ArrivalScope, arrivals: &[u64]) -> Result<usize> {
    let mut gone = 0;
    for ((account, mailbox), uids) in by_mailbox(conn, scope, arrivals)? {
        gone += mailbox::expunge(conn, account, &MailboxKey::Ref(mailbox), &uids)?.len();
    }
    Ok(gone)
}

/// Writer: changes flags of the messages these arrival numbers name
/// within `scope`. Returns how many changed.
pub(crate) fn set_flags(
    conn: &Connection,
    scope: &ArrivalScope,
    arrivals: &[u64],
    change: FlagChange,
    flags: &mailbox::FlagSet,
) -> Result<usize> {
    let mut changed = 0;
    for ((account, mailbox), uids) in by_mailbox(conn, scope, arrivals)? {
        changed += mailbox::store_flags(
            conn,
            account,
            &MailboxKey::Ref(mailbox),
            &uids,
            change,
            flags,
            None,
        )?
        .changed
        .len();
    }
    Ok(changed)
}
