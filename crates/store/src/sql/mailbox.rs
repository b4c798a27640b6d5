//! Mailboxes and messages: UIDs, modseqs, flags and the change feed.

use crate::db::{params, Connection, OptionalExtension};

use crate::db::SqlResult;
use crate::sql::blobs;
use crate::{
    AccountId, ConditionalStore, FlagChange, IndexEntry, MailboxId, MailboxIndex, MailboxInfo,
    MailboxKey, MessageInfo, ModSeq, Result, StoreError, Timestamp, Uid,
};

/// System flags as bits of `messages.system_flags`, in IMAP spelling.
pub(crate) const SYSTEM_FLAGS: &[(i64, &str)] = &[
    (1, "\\Seen"),
    (2, "\\Answered"),
    (4, "\\Flagged"),
    (8, "\\Deleted"),
    (16, "\\Draft"),
];
const SEEN: i64 = 1;

/// The stored name of a mailbox ([`crate::canonical_mailbox_name`]).
pub(crate) use crate::canonical_mailbox_name as canonical_name;

fn now() -> Timestamp {
    chrono::Utc::now().timestamp()
}

/// Writer: the next UIDVALIDITY, from the clock but strictly increasing over
/// the whole database, so no two mailboxes (even a deleted one and its
/// re-created namesake) share one.
fn next_uid_validity(conn: &Connection) -> Result<u32> {
    let clock = now().clamp(1, i64::from(u32::MAX));
    let last: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'last_uid_validity'")
        .db()?
        .query_row([], |row| row.get(0))
        .optional()
        .db()?;
    let next = match last {
        Some(last) if last >= clock => last + 1,
        _ => clock,
    };
    // Past 2106 (or after 2^32 mailboxes in one second) start over at 1.
    let next = u32::try_from(next).unwrap_or(1).max(1);
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('last_uid_validity', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .db()?
    .execute([i64::from(next)])
    .db()?;
    Ok(next)
}

/// Writer: creates an empty mailbox (not subscribed: see [`subscribe`]).
pub(crate) fn create_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxId> {
    let name = canonical_name(name);
    let uid_validity = next_uid_validity(conn)?;
    conn.prepare_cached(
        "INSERT INTO mailboxes
             (account_id, name, special_use, subscribed, uid_validity, uid_next, highest_modseq)
         VALUES (?1, ?2, ?3, 0, ?4, 1, 1)",
    )
    .db()?
    .execute(params![
        account.0,
        name,
        special_use,
        i64::from(uid_validity)
    ])
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::AlreadyExists(format!("mailbox {name}"))
        } else {
            crate::db::db_error(e)
        }
    })?;
    Ok(MailboxId(conn.last_insert_rowid()))
}

/// The mailbox's id, if it exists.
pub(crate) fn find_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<Option<MailboxId>> {
    conn.prepare_cached("SELECT id FROM mailboxes WHERE account_id = ?1 AND name = ?2")
        .db()?
        .query_row(params![account.0, canonical_name(name)], |row| {
            Ok(MailboxId(row.get(0)?))
        })
        .optional()
        .db()
}

fn require_mailbox(conn: &Connection, account: AccountId, name: &str) -> Result<MailboxId> {
    find_mailbox(conn, account, name)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", canonical_name(name))))
}

/// The mailbox's id, if `key` names one of the account's mailboxes; a
/// reference must match the mailbox's UIDVALIDITY too.
fn require(conn: &Connection, account: AccountId, key: &MailboxKey) -> Result<MailboxId> {
    match key {
        MailboxKey::Name(name) => require_mailbox(conn, account, name),
        MailboxKey::Ref(_) => Ok(MailboxId(mailbox_state(conn, account, key)?.id)),
    }
}

/// A message to append.
pub(crate) struct Append<'a> {
    pub blob_hash: &'a str,
    pub size: u64,
    pub internal_date: Timestamp,
    pub system_flags: i64,
    pub keywords: &'a str,
    /// How it arrived over SMTP (`envelopes.id`), if it did.
    pub envelope: Option<i64>,
    /// The caller stored the blob with this copy's reference already
    /// counted ([`blobs::store_referenced`]): no second write of its row.
    pub blob_referenced: bool,
}

/// Writer: the next arrival number (`messages.arrival`): one more than
/// the last ever given, in any mailbox, so it never comes back after a
/// delete.
fn next_arrival(conn: &Connection) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('last_arrival', 1)
         ON CONFLICT (key) DO UPDATE SET value = CAST(meta.value AS BIGINT) + 1
         RETURNING value",
    )
    .db()?
    .query_row([], |row| row.get(0))
    .db()
}

/// Writer: appends a message to a mailbox (taking a blob reference), with
/// the next UID and modseq, and records it in the change feed.
pub(crate) fn append(
    conn: &Connection,
    account: AccountId,
    mailbox: &str,
    message: &Append<'_>,
) -> Result<Appended> {
    if conn.dialect() == crate::db::Dialect::Postgres {
        return append_pg(conn, account, mailbox, message);
    }
    // The mailbox's next UID and modseq taken in the statement that reads
    // them: a failure below fails the request, whose rollback undoes it.
    let (id, uid_next, highest): (i64, i64, i64) = conn
        .prepare_cached(
            "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
              WHERE account_id = ?1 AND name = ?2
              RETURNING id, uid_next - 1, highest_modseq - 1",
        )
        .db()?
        .query_row(params![account.0, canonical_name(mailbox)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", canonical_name(mailbox))))?;
    let (uid, modseq) = next_uid_and_modseq(id, uid_next, highest)?;

    let arrival = next_arrival(conn)?;
    conn.prepare_cached(
        "INSERT INTO messages
             (mailbox_id, uid, blob_hash, modseq, internal_date, size, system_flags, keywords,
              envelope_id, arrival, saved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .db()?
    .execute(params![
        id,
        uid_next,
        message.blob_hash,
        modseq,
        message.internal_date,
        i64::try_from(message.size).unwrap_or(i64::MAX),
        message.system_flags,
        message.keywords,
        message.envelope,
        arrival,
        now(),
    ])
    .db()?;
    if !message.blob_referenced {
        blobs::incref(conn, message.blob_hash)?;
    }
    let size = i64::try_from(message.size).unwrap_or(i64::MAX);
    crate::sql::quota::add_usage(conn, account, size, 1)?;
    conn.prepare_cached(
        "INSERT INTO changes (mailbox_id, uid, modseq, kind, created_at)
         VALUES (?1, ?2, ?3, 'append', ?4)",
    )
    .db()?
    .execute(params![id, uid_next, modseq, now()])
    .db()?;
    Ok(Appended {
        uid: Uid(uid),
        arrival,
    })
}

/// The UID and modseq an append takes from a mailbox whose `uid_next`
/// and `highest_modseq` were these.
fn next_uid_and_modseq(id: i64, uid_next: i64, highest: i64) -> Result<(u32, i64)> {
    let uid = u32::try_from(uid_next)
        .ok()
        .filter(|&u| u != 0)
        .ok_or_else(|| StoreError::Database(format!("mailbox {id} has no UIDs left")))?;
    let modseq = highest
        .checked_add(1)
        .ok_or_else(|| StoreError::Database(format!("mailbox {id} has no modseqs left")))?;
    Ok((uid, modseq))
}

/// [`append`] on PostgreSQL: the seven statements in one (data-modifying
/// `WITH`), one round trip instead of seven. Nothing is written unless
/// the mailbox exists (every part hangs on `b`, the mailbox's row); a
/// failure after it fails the request, whose rollback undoes it all.
fn append_pg(
    conn: &Connection,
    account: AccountId,
    mailbox: &str,
    message: &Append<'_>,
) -> Result<Appended> {
    let size = i64::try_from(message.size).unwrap_or(i64::MAX);
    let row: Option<(i64, i64, i64, i64, i64)> = conn
        .prepare_cached(
            "WITH b AS (
                 UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
                  WHERE account_id = ?1 AND name = ?2
                  RETURNING id, uid_next - 1 AS uid, highest_modseq AS modseq),
             a AS (
                 INSERT INTO meta (key, value) SELECT 'last_arrival', '1' FROM b
                 ON CONFLICT (key) DO UPDATE SET value = CAST(meta.value AS BIGINT) + 1
                 RETURNING CAST(value AS BIGINT) AS arrival),
             m AS (
                 INSERT INTO messages
                     (mailbox_id, uid, blob_hash, modseq, internal_date, size, system_flags,
                      keywords, envelope_id, arrival, saved_at)
                 SELECT b.id, b.uid, ?3, b.modseq, ?4, ?5, ?6, ?7, ?8, a.arrival, ?9 FROM b, a
                 RETURNING mailbox_id, uid, modseq),
             r AS (
                 UPDATE blobs SET refcount = refcount + ?10
                  WHERE hash = ?3 AND EXISTS (SELECT 1 FROM b)
                  RETURNING 1),
             q AS (
                 UPDATE accounts SET used_bytes = used_bytes + ?5, used_messages = used_messages + 1
                  WHERE id = ?1 AND EXISTS (SELECT 1 FROM b)),
             c AS (
                 INSERT INTO changes (mailbox_id, uid, modseq, kind, created_at)
                 SELECT mailbox_id, uid, modseq, 'append', ?9 FROM m)
             SELECT b.id, b.uid, b.modseq, a.arrival, (SELECT count(*) FROM r) FROM b, a",
        )
        .db()?
        .query_row(
            params![
                account.0,
                canonical_name(mailbox),
                message.blob_hash,
                message.internal_date,
                size,
                message.system_flags,
                message.keywords,
                message.envelope,
                now(),
                // A blob stored with this copy's reference already counted
                // is only checked to be there.
                i64::from(!message.blob_referenced),
            ],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()
        .db()?;
    let (id, uid_next, modseq, arrival, blob_refs) =
        row.ok_or_else(|| StoreError::NotFound(format!("mailbox {}", canonical_name(mailbox))))?;
    if blob_refs == 0 {
        return Err(StoreError::Database(format!(
            "blob {} is missing",
            message.blob_hash
        )));
    }
    let (uid, _) = next_uid_and_modseq(id, uid_next, modseq - 1)?;
    Ok(Appended {
        uid: Uid(uid),
        arrival,
    })
}

/// Where [`append`] put a message.
pub(crate) struct Appended {
    pub uid: Uid,
    /// Its `messages.arrival`.
    pub arrival: i64,
}

pub(crate) fn to_u32(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Database(format!("corrupt {what}: {v}")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Database(format!("corrupt {what}: {v}")))
}

/// Reader: the account's mailboxes, INBOX first, then by name.
pub(crate) fn list_mailboxes(conn: &Connection, account: AccountId) -> Result<Vec<MailboxInfo>> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?1)")
        .db()?
        .query_row([account.0], |row| row.get(0))
        .db()?;
    if !exists {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT b.id, b.name, b.special_use,
                    EXISTS (SELECT 1 FROM subscriptions s
                             WHERE s.account_id = b.account_id AND s.name = b.name),
                    b.uid_validity, b.uid_next,
                    b.highest_modseq,
                    (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id),
                    (SELECT count(*) FROM messages m
                      WHERE m.mailbox_id = b.id AND (m.system_flags & ?2) = 0),
                    (SELECT count(*) FROM messages m
                      WHERE m.mailbox_id = b.id AND m.uid >= b.recent_uid)
               FROM mailboxes b
              WHERE b.account_id = ?1
              ORDER BY b.name = 'INBOX' DESC, b.name",
        )
        .db()?;
    let rows = stmt
        .query_map(params![account.0, SEEN], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, i64>(7)?,
                row.get::<_, i64>(8)?,
                row.get::<_, i64>(9)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (
            id,
            name,
            special_use,
            subscribed,
            validity,
            uid_next,
            modseq,
            messages,
            unseen,
            recent,
        ) = row.db()?;
        out.push(MailboxInfo {
            id: MailboxId(id),
            name,
            special_use,
            subscribed,
            uid_validity: to_u32(validity, "UIDVALIDITY")?,
            uid_next: Uid(to_u32(uid_next, "UIDNEXT").unwrap_or(u32::MAX)),
            highest_modseq: ModSeq(to_u64(modseq, "HIGHESTMODSEQ")?),
            messages: u32::try_from(messages).unwrap_or(u32::MAX),
            unseen: u32::try_from(unseen).unwrap_or(u32::MAX),
            recent: u32::try_from(recent).unwrap_or(u32::MAX),
        });
    }
    Ok(out)
}

/// Reader: the account's mailboxes as [`list_mailboxes`] gives them, but
/// their messages (MESSAGES, UNSEEN, \\Recent) counted only where `count`
/// says so, zero elsewhere: counting walks a mailbox's messages, and
/// IMAP NOTIFY needs it only for the mailboxes that changed.
pub(crate) fn list_mailboxes_counting(
    conn: &Connection,
    account: AccountId,
    count: &dyn Fn(&MailboxInfo) -> bool,
) -> Result<Vec<MailboxInfo>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT b.id, b.name, b.special_use,
                    EXISTS (SELECT 1 FROM subscriptions s
                             WHERE s.account_id = b.account_id AND s.name = b.name),
                    b.uid_validity, b.uid_next, b.highest_modseq
               FROM mailboxes b
              WHERE b.account_id = ?1
              ORDER BY b.name = 'INBOX' DESC, b.name",
        )
        .db()?;
    let rows = stmt
        .query_map(params![account.0], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })
        .db()?;
    let mut counts = conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id),
                    (SELECT count(*) FROM messages m
                      WHERE m.mailbox_id = b.id AND (m.system_flags & ?2) = 0),
                    (SELECT count(*) FROM messages m
                      WHERE m.mailbox_id = b.id AND m.uid >= b.recent_uid)
               FROM mailboxes b WHERE b.id = ?1",
        )
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, special_use, subscribed, validity, uid_next, modseq) = row.db()?;
        let mut info = MailboxInfo {
            id: MailboxId(id),
            name,
            special_use,
            subscribed,
            uid_validity: to_u32(validity, "UIDVALIDITY")?,
            uid_next: Uid(to_u32(uid_next, "UIDNEXT").unwrap_or(u32::MAX)),
            highest_modseq: ModSeq(to_u64(modseq, "HIGHESTMODSEQ")?),
            messages: 0,
            unseen: 0,
            recent: 0,
        };
        if count(&info) {
            let (messages, unseen, recent): (i64, i64, i64) = counts
                .query_row(params![id, SEEN], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .db()?;
            info.messages = u32::try_from(messages).unwrap_or(u32::MAX);
            info.unseen = u32::try_from(unseen).unwrap_or(u32::MAX);
            info.recent = u32::try_from(recent).unwrap_or(u32::MAX);
        }
        out.push(info);
    }
    Ok(out)
}

/// IMAP flags of a message: system flags, then keywords.
pub(crate) fn flags_of(system_flags: i64, keywords: &str) -> Vec<String> {
    SYSTEM_FLAGS
        .iter()
        .filter(|(bit, _)| system_flags & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .chain(keywords.split_whitespace().map(str::to_owned))
        .collect()
}

/// Reader: the messages of a mailbox in UID order.
/// The columns [`message_info`] reads, after
/// `FROM messages m LEFT JOIN summaries s`.
const MESSAGE_INFO_COLUMNS: &str =
    "m.uid, m.modseq, m.system_flags, m.keywords, m.internal_date, m.size, s.summary";

/// Decodes one row of [`MESSAGE_INFO_COLUMNS`].
fn message_info(row: &crate::db::Row<'_>) -> Result<MessageInfo> {
    let summary: Option<String> = row.get(6).db()?;
    let size = to_u64(row.get::<_, i64>(5).db()?, "message size")?;
    message_info_with(
        row,
        std::sync::Arc::new(blobs::decode_summary(summary.as_deref(), size)),
    )
}

/// Decodes columns 0 to 5 of [`MESSAGE_INFO_COLUMNS`] (uid, modseq,
/// system flags, keywords, internal date, size) around `summary`.
fn message_info_with(
    row: &crate::db::Row<'_>,
    summary: std::sync::Arc<crate::MessageSummary>,
) -> Result<MessageInfo> {
    let get = |i| -> Result<i64> { row.get::<_, i64>(i).db() };
    let keywords: String = row.get(3).db()?;
    Ok(MessageInfo {
        uid: Uid(to_u32(get(0)?, "UID")?),
        modseq: ModSeq(to_u64(get(1)?, "modseq")?),
        flags: flags_of(get(2)?, &keywords),
        internal_date: get(4)?,
        size: to_u64(get(5)?, "message size")?,
        summary,
    })
}

pub(crate) fn list_messages(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
) -> Result<Vec<MessageInfo>> {
    let id = require(conn, account, mailbox)?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_INFO_COLUMNS}
               FROM messages m LEFT JOIN summaries s ON s.hash = m.blob_hash
              WHERE m.mailbox_id = ?1
              ORDER BY m.uid"
        ))
        .db()?;
    let mut rows = stmt.query([id.0]).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(message_info(&row)?);
    }
    Ok(out)
}

/// Reader: the listed messages with these UIDs, in the order asked;
/// missing UIDs left out.
pub(crate) fn messages_by_uid(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
) -> Result<Vec<MessageInfo>> {
    let id = require(conn, account, mailbox)?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_INFO_COLUMNS}
               FROM messages m LEFT JOIN summaries s ON s.hash = m.blob_hash
              WHERE m.mailbox_id = ?1 AND m.uid = ?2"
        ))
        .db()?;
    let mut out = Vec::with_capacity(uids.len());
    for uid in uids {
        let mut rows = stmt.query(params![id.0, i64::from(uid.0)]).db()?;
        if let Some(row) = rows.next().db()? {
            out.push(message_info(&row)?);
        }
    }
    Ok(out)
}

/// What [`envelopes`] decodes of a cached summary; serde skips the rest
/// (the MIME tree above all) without building it.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct EnvelopeFields {
    date: Option<Timestamp>,
    date_zone: Option<i32>,
    subject: Option<String>,
    from: Vec<crate::EmailAddress>,
    sender: Vec<crate::EmailAddress>,
    reply_to: Vec<crate::EmailAddress>,
    to: Vec<crate::EmailAddress>,
    cc: Vec<crate::EmailAddress>,
    bcc: Vec<crate::EmailAddress>,
    in_reply_to: Option<String>,
    message_id: Option<String>,
    references: Option<String>,
    header_len: u64,
    raw: crate::RawFields,
    addresses: Option<Box<crate::AddressFields>>,
    return_path: Option<String>,
    preview: Option<String>,
    attachments: u32,
}

/// A blob's SHA-256, the key of the caches kept per blob: its 32 bytes
/// rather than the 64 hex digits the database holds.
pub(crate) type BlobKey = [u8; 32];

/// Values kept per blob, by [`BlobKey`]. A blob never changes, so an
/// entry never goes stale.
pub(crate) type BlobCache<V> = std::sync::Mutex<crate::kept::Kept<BlobKey, std::sync::Arc<V>>>;

/// Envelope-only summaries by blob, charged by
/// [`crate::kept::summary_bytes`], within
/// [`crate::StoreOptions::envelope_cache_bytes`].
pub(crate) type EnvelopeCache = BlobCache<crate::MessageSummary>;

/// What SEARCH compares of each blob ([`crate::SearchFields`]), charged
/// by [`crate::kept::search_fields_bytes`], within
/// [`crate::StoreOptions::search_fields_cache_bytes`].
pub(crate) type SearchFieldsCache = BlobCache<crate::SearchFields>;

fn decode_envelope(json: Option<&str>) -> crate::MessageSummary {
    let fields: EnvelopeFields = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    crate::MessageSummary {
        date: fields.date,
        date_zone: fields.date_zone,
        subject: fields.subject,
        from: fields.from,
        sender: fields.sender,
        reply_to: fields.reply_to,
        to: fields.to,
        cc: fields.cc,
        bcc: fields.bcc,
        in_reply_to: fields.in_reply_to,
        message_id: fields.message_id,
        references: fields.references,
        header_len: fields.header_len,
        raw: fields.raw,
        addresses: fields.addresses,
        return_path: fields.return_path,
        preview: fields.preview,
        attachments: fields.attachments,
        ..Default::default()
    }
}

/// Reader: for each of the messages with these UIDs in the mailbox (in
/// UID order; missing ones left out), `each` over its row of `columns`
/// (SQL, from `messages`, `uid` first), read with one range scan.
fn each_by_uid<T>(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
    columns: &str,
    mut each: impl FnMut(&crate::db::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let id = require(conn, account, mailbox)?;
    let (Some(low), Some(high)) = (uids.iter().min(), uids.iter().max()) else {
        return Ok(Vec::new());
    };
    let wanted: std::collections::HashSet<Uid> = uids.iter().copied().collect();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {columns} FROM messages
              WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3
              ORDER BY uid"
        ))
        .db()?;
    let mut rows = stmt
        .query(params![id.0, i64::from(low.0), i64::from(high.0)])
        .db()?;
    let mut out = Vec::with_capacity(uids.len());
    while let Some(row) = rows.next().db()? {
        let uid = Uid(to_u32(row.get::<_, i64>(0).db()?, "UID")?);
        if wanted.contains(&uid) {
            out.push(each(&row)?);
        }
    }
    Ok(out)
}

/// Reader: the messages with these UIDs as [`messages_by_uid`] gives
/// them, but each summary with its envelope fields and header length only
/// (no MIME tree),
/// read with one range scan and decoded once per blob (`cache`).
pub(crate) fn envelopes(
    conn: &Connection,
    cache: &EnvelopeCache,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
) -> Result<Vec<MessageInfo>> {
    each_by_uid(
        conn,
        account,
        mailbox,
        uids,
        "uid, modseq, system_flags, keywords, internal_date, size, blob_hash",
        |row| {
            let summary = cached_envelope(conn, cache, row, 6)?;
            message_info_with(row, summary)
        },
    )
}

/// Reader: as [`envelopes`], but each message is handed to `each` as it
/// is read and its summary let go at once: the envelope cache is looked
/// in but not filled (a pass over a whole large mailbox would only push
/// out what it holds, and keep the summaries of a batch alive at once).
pub(crate) fn envelopes_each<T>(
    conn: &Connection,
    cache: &EnvelopeCache,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
    mut each: impl FnMut(&MessageInfo) -> T,
) -> Result<Vec<T>> {
    each_by_uid(
        conn,
        account,
        mailbox,
        uids,
        "uid, modseq, system_flags, keywords, internal_date, size, blob_hash",
        |row| {
            let hash = row
                .get_ref(6)
                .db()?
                .as_str()
                .map_err(|e| StoreError::Database(format!("blob hash: {e}")))?;
            let mut key: BlobKey = [0; 32];
            let kept = if hex::decode_to_slice(hash, &mut key).is_ok() {
                cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&key)
                    .cloned()
            } else {
                None
            };
            let summary = match kept {
                Some(summary) => summary,
                None => {
                    let json: Option<String> = conn
                        .prepare_cached("SELECT summary FROM summaries WHERE hash = ?1")
                        .db()?
                        .query_row([hash], |r| r.get(0))
                        .optional()
                        .db()?;
                    std::sync::Arc::new(decode_envelope(json.as_deref()))
                }
            };
            Ok(each(&message_info_with(row, summary)?))
        },
    )
}

/// Reader: what SEARCH compares of the messages with these UIDs (in UID
/// order; missing ones left out), read with one range scan and made once
/// per blob (`cache`): what SEARCH needs, cheaply.
pub(crate) fn search_infos(
    conn: &Connection,
    cache: &SearchFieldsCache,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
) -> Result<Vec<crate::SearchInfo>> {
    each_by_uid(
        conn,
        account,
        mailbox,
        uids,
        "uid, internal_date, blob_hash",
        |row| {
            let fields = cached_by_blob(
                conn,
                cache,
                row,
                2,
                |json| crate::SearchFields::of(&decode_envelope(json)),
                crate::kept::search_fields_bytes,
            )?;
            Ok(crate::SearchInfo {
                uid: Uid(to_u32(row.get::<_, i64>(0).db()?, "UID")?),
                internal_date: row.get(1).db()?,
                fields,
            })
        },
    )
}

/// Reader: the envelope-only summary of the blob whose hash is in column
/// `column` of `row`, from `cache` or decoded (and kept) now.
pub(crate) fn cached_envelope(
    conn: &Connection,
    cache: &EnvelopeCache,
    row: &crate::db::Row<'_>,
    column: usize,
) -> Result<std::sync::Arc<crate::MessageSummary>> {
    cached_by_blob(
        conn,
        cache,
        row,
        column,
        decode_envelope,
        crate::kept::summary_bytes,
    )
}

/// Reader: what `decode` makes of the summary of the blob whose hash is
/// in column `column` of `row` (the summary's JSON, `None` for a blob not
/// parsed), from `cache` or made (and kept, charged `bytes` and the key)
/// now.
fn cached_by_blob<V>(
    conn: &Connection,
    cache: &BlobCache<V>,
    row: &crate::db::Row<'_>,
    column: usize,
    decode: impl FnOnce(Option<&str>) -> V,
    bytes: impl FnOnce(&V) -> u64,
) -> Result<std::sync::Arc<V>> {
    let lock = || {
        cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let hash = row
        .get_ref(column)
        .db()?
        .as_str()
        .map_err(|e| StoreError::Database(format!("blob hash: {e}")))?;
    let mut key: BlobKey = [0; 32];
    // Every hash the store writes is 64 hex digits; another is read anew
    // each time rather than kept.
    let keyed = hex::decode_to_slice(hash, &mut key).is_ok();
    if keyed {
        if let Some(v) = lock().get(&key).cloned() {
            return Ok(v);
        }
    }
    let json: Option<String> = conn
        .prepare_cached("SELECT summary FROM summaries WHERE hash = ?1")
        .db()?
        .query_row([hash], |r| r.get(0))
        .optional()
        .db()?;
    let v = std::sync::Arc::new(decode(json.as_deref()));
    // Only a parsed blob is kept: an unparsed one may be parsed later.
    if keyed && json.is_some() {
        // The key, inline in the map's slot and again in the age queue.
        let key_bytes = (2 * std::mem::size_of::<BlobKey>()) as u64;
        let charge = bytes(&v) + key_bytes;
        lock().insert(key, v.clone(), charge);
    }
    Ok(v)
}

/// Reader: one message's raw bytes.
pub(crate) fn message_raw(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uid: Uid,
) -> Result<Option<Vec<u8>>> {
    let id = require(conn, account, mailbox)?;
    conn.prepare_cached(
        "SELECT b.data FROM messages m JOIN blobs b ON b.hash = m.blob_hash
          WHERE m.mailbox_id = ?1 AND m.uid = ?2",
    )
    .db()?
    .query_row(params![id.0, i64::from(uid.0)], |row| row.get(0))
    .optional()
    .db()
}

/// Reader: several messages' raw bytes, in the order asked; missing UIDs
/// left out. Reader jobs run inside one read transaction, so all come from
/// one snapshot.
pub(crate) fn messages_raw(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
) -> Result<Vec<(Uid, Vec<u8>)>> {
    let id = require(conn, account, mailbox)?;
    let (Some(low), Some(high)) = (uids.iter().min(), uids.iter().max()) else {
        return Ok(Vec::new());
    };
    // UIDs close together (a client fetching the newest hundred) come in
    // one range scan; scattered ones one by one, so a set such as `1,50000`
    // never reads what lies between.
    let span = u64::from(high.0 - low.0) + 1;
    if span <= 2 * uids.len() as u64 {
        let mut stmt = conn
            .prepare_cached(
                "SELECT m.uid, b.data FROM messages m JOIN blobs b ON b.hash = m.blob_hash
                  WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3",
            )
            .db()?;
        let mut rows = stmt
            .query(params![id.0, i64::from(low.0), i64::from(high.0)])
            .db()?;
        let mut by_uid = std::collections::HashMap::with_capacity(uids.len());
        while let Some(row) = rows.next().db()? {
            let uid = Uid(to_u32(row.get::<_, i64>(0).db()?, "UID")?);
            let data: Vec<u8> = row.get(1).db()?;
            by_uid.insert(uid, data);
        }
        return Ok(uids
            .iter()
            .filter_map(|uid| Some((*uid, by_uid.remove(uid)?)))
            .collect());
    }
    let mut query = conn
        .prepare_cached(
            "SELECT b.data FROM messages m JOIN blobs b ON b.hash = m.blob_hash
              WHERE m.mailbox_id = ?1 AND m.uid = ?2",
        )
        .db()?;
    let mut found = Vec::with_capacity(uids.len());
    for uid in uids {
        let data: Option<Vec<u8>> = query
            .query_row(params![id.0, i64::from(uid.0)], |row| row.get(0))
            .optional()
            .db()?;
        if let Some(data) = data {
            found.push((*uid, data));
        }
    }
    Ok(found)
}

/// A mailbox's counters as stored.
pub(crate) struct MailboxState {
    pub(crate) id: i64,
    pub(crate) uid_validity: i64,
    pub(crate) uid_next: i64,
    pub(crate) highest_modseq: i64,
    pub(crate) recent_uid: i64,
    /// The change feed at or below it is pruned (see `prune`).
    pub(crate) horizon_modseq: i64,
}

pub(crate) fn mailbox_state(
    conn: &Connection,
    account: AccountId,
    key: &MailboxKey,
) -> Result<MailboxState> {
    let row = |row: &crate::db::Row<'_>| {
        Ok(MailboxState {
            id: row.get(0)?,
            uid_validity: row.get(1)?,
            uid_next: row.get(2)?,
            highest_modseq: row.get(3)?,
            recent_uid: row.get(4)?,
            horizon_modseq: row.get(5)?,
        })
    };
    match key {
        MailboxKey::Name(name) => conn
            .prepare_cached(
                "SELECT id, uid_validity, uid_next, highest_modseq, recent_uid, horizon_modseq
                   FROM mailboxes WHERE account_id = ?1 AND name = ?2",
            )
            .db()?
            .query_row(params![account.0, canonical_name(name)], row)
            .optional()
            .db()?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", canonical_name(name)))),
        MailboxKey::Ref(r) => conn
            .prepare_cached(
                "SELECT id, uid_validity, uid_next, highest_modseq, recent_uid, horizon_modseq
                   FROM mailboxes WHERE id = ?1 AND account_id = ?2 AND uid_validity = ?3",
            )
            .db()?
            .query_row(params![r.id.0, account.0, i64::from(r.uid_validity)], row)
            .optional()
            .db()?
            .ok_or(StoreError::MailboxGone(*r)),
    }
}

/// Reader: what identifies one state of a mailbox's index: any change to
/// its messages moves HIGHESTMODSEQ or UIDNEXT; `\Recent` claims move the
/// last.
pub(crate) fn index_stamp(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
) -> Result<(MailboxId, u32, ModSeq, Uid, Uid)> {
    let state = mailbox_state(conn, account, mailbox)?;
    Ok((
        MailboxId(state.id),
        to_u32(state.uid_validity, "UIDVALIDITY")?,
        ModSeq(to_u64(state.highest_modseq, "HIGHESTMODSEQ")?),
        Uid(to_u32(state.uid_next, "UIDNEXT").unwrap_or(u32::MAX)),
        Uid(to_u32(state.recent_uid, "recent UID").unwrap_or(u32::MAX)),
    ))
}

/// Reader: the mailbox's counters and every message's UID, size, modseq and
/// flags, in UID order (the caller's read transaction makes it one
/// snapshot).
pub(crate) fn mailbox_index(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
) -> Result<MailboxIndex> {
    let state = mailbox_state(conn, account, mailbox)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT uid, size, modseq, system_flags, keywords FROM messages
              WHERE mailbox_id = ?1
              ORDER BY uid",
        )
        .db()?;
    let rows = stmt
        .query_map([state.id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .db()?;
    let mut messages = Vec::new();
    for row in rows {
        let (uid, size, modseq, system_flags, keywords) = row.db()?;
        messages.push(IndexEntry {
            uid: Uid(to_u32(uid, "UID")?),
            size: to_u64(size, "message size")?,
            modseq: ModSeq(to_u64(modseq, "modseq")?),
            flags: flags_of(system_flags, &keywords),
        });
    }
    Ok(MailboxIndex::new(
        MailboxId(state.id),
        to_u32(state.uid_validity, "UIDVALIDITY")?,
        Uid(to_u32(state.uid_next, "UIDNEXT").unwrap_or(u32::MAX)),
        ModSeq(to_u64(state.highest_modseq, "HIGHESTMODSEQ")?),
        Uid(to_u32(state.recent_uid, "recent UID").unwrap_or(u32::MAX)),
        messages,
    ))
}

/// Validated flags: system flag bits and keywords (case as given, no two
/// equal ignoring case).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FlagSet {
    pub system: i64,
    pub keywords: Vec<String>,
}

/// Whether `c` may appear in an IMAP atom (RFC 9051 `ATOM-CHAR`).
fn is_atom_char(c: char) -> bool {
    c.is_ascii()
        && !c.is_ascii_control()
        && !matches!(c, '(' | ')' | '{' | ' ' | '%' | '*' | '"' | '\\' | ']')
}

/// Checks flags as a client gives them: the five storable system flags (any
/// case) or keywords (atoms). `\Recent`, other `\` flags and anything that
/// is not an atom are `Invalid`.
pub(crate) fn parse_flags(flags: &[String]) -> Result<FlagSet> {
    let mut set = FlagSet::default();
    for flag in flags {
        if let Some(name) = flag.strip_prefix('\\') {
            let bit = SYSTEM_FLAGS
                .iter()
                .find(|(_, known)| known[1..].eq_ignore_ascii_case(name))
                .map(|(bit, _)| *bit)
                .ok_or_else(|| StoreError::Invalid(format!("flag {flag:?}")))?;
            set.system |= bit;
        } else if flag.is_empty() || !flag.chars().all(is_atom_char) {
            return Err(StoreError::Invalid(format!("keyword {flag:?}")));
        } else if !set.keywords.iter().any(|k| k.eq_ignore_ascii_case(flag)) {
            set.keywords.push(flag.clone());
        }
    }
    Ok(set)
}

fn has_keyword(keywords: &[String], keyword: &str) -> bool {
    keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
}

/// The flags after `change`: system bits and keywords. Keywords already
/// set keep their stored spelling.
fn apply_change(
    change: FlagChange,
    system: i64,
    keywords: &[String],
    set: &FlagSet,
) -> (i64, Vec<String>) {
    match change {
        FlagChange::Add => {
            let mut out = keywords.to_vec();
            for k in &set.keywords {
                if !has_keyword(&out, k) {
                    out.push(k.clone());
                }
            }
            (system | set.system, out)
        }
        FlagChange::Remove => (
            system & !set.system,
            keywords
                .iter()
                .filter(|k| !has_keyword(&set.keywords, k))
                .cloned()
                .collect(),
        ),
        FlagChange::Replace => (
            set.system,
            set.keywords
                .iter()
                .map(|k| {
                    keywords
                        .iter()
                        .find(|old| old.eq_ignore_ascii_case(k))
                        .unwrap_or(k)
                        .clone()
                })
                .collect(),
        ),
    }
}

/// Whether two keyword lists hold the same keywords, ignoring case.
fn same_keywords(a: &[String], b: &[String]) -> bool {
    a.iter().all(|k| has_keyword(b, k)) && b.iter().all(|k| has_keyword(a, k))
}

/// The UIDs to act on: in order, each once, 0 left out.
fn sorted_uids(uids: &[Uid]) -> Vec<Uid> {
    let mut uids: Vec<Uid> = uids.iter().copied().filter(|u| u.0 != 0).collect();
    uids.sort_unstable();
    uids.dedup();
    uids
}

fn next_modseq(mailbox: i64, modseq: i64) -> Result<i64> {
    modseq
        .checked_add(1)
        .ok_or_else(|| StoreError::Database(format!("mailbox {mailbox} has no modseqs left")))
}

fn record_change(conn: &Connection, mailbox: i64, uid: Uid, modseq: i64, kind: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO changes (mailbox_id, uid, modseq, kind, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .db()?
    .execute(params![mailbox, i64::from(uid.0), modseq, kind, now()])
    .db()?;
    Ok(())
}

fn set_highest_modseq(conn: &Connection, mailbox: i64, modseq: i64) -> Result<()> {
    conn.prepare_cached("UPDATE mailboxes SET highest_modseq = ?2 WHERE id = ?1")
        .db()?
        .execute(params![mailbox, modseq])
        .db()?;
    Ok(())
}

/// Writer: changes the flags of the messages with these UIDs (missing ones
/// skipped). Each message whose flags change gets the next modseq, in UID
/// order, and a `flags` row in the change feed. Returns those messages with
/// their new modseq and flags, and, with `unchanged_since` (RFC 7162's
/// UNCHANGEDSINCE), the messages left alone because their modseq is above
/// it: compared in the same transaction, so no writer comes between.
pub(crate) fn store_flags(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
    change: FlagChange,
    flags: &FlagSet,
    unchanged_since: Option<ModSeq>,
) -> Result<ConditionalStore> {
    let state = mailbox_state(conn, account, mailbox)?;
    let mut highest = state.highest_modseq;
    let mut out = Vec::new();
    let mut modified = Vec::new();
    for uid in sorted_uids(uids) {
        let found: Option<(i64, i64, String, i64)> = conn
            .prepare_cached(
                "SELECT id, system_flags, keywords, modseq FROM messages
                  WHERE mailbox_id = ?1 AND uid = ?2",
            )
            .db()?
            .query_row(params![state.id, i64::from(uid.0)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
            .db()?;
        let Some((id, system, keywords, modseq_now)) = found else {
            continue;
        };
        if let Some(limit) = unchanged_since {
            if to_u64(modseq_now, "modseq")? > limit.0 {
                modified.push(uid);
                continue;
            }
        }
        let keywords: Vec<String> = keywords.split_whitespace().map(str::to_owned).collect();
        let (new_system, new_keywords) = apply_change(change, system, &keywords, flags);
        if new_system == system && same_keywords(&keywords, &new_keywords) {
            continue;
        }
        let modseq = next_modseq(state.id, highest)?;
        highest = modseq;
        let joined = new_keywords.join(" ");
        conn.prepare_cached(
            "UPDATE messages SET system_flags = ?2, keywords = ?3, modseq = ?4 WHERE id = ?1",
        )
        .db()?
        .execute(params![id, new_system, joined, modseq])
        .db()?;
        record_change(conn, state.id, uid, modseq, "flags")?;
        out.push((
            uid,
            ModSeq(to_u64(modseq, "modseq")?),
            flags_of(new_system, &joined),
        ));
    }
    if highest != state.highest_modseq {
        set_highest_modseq(conn, state.id, highest)?;
    }
    Ok(ConditionalStore {
        changed: out,
        modified,
    })
}

/// Writer: removes the messages with these UIDs (missing ones skipped),
/// each with the next modseq in UID order: a tombstone, an `expunge` row in
/// the change feed, and its blob reference released. Returns the UIDs
/// removed.
pub(crate) fn expunge(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
) -> Result<Vec<Uid>> {
    let state = mailbox_state(conn, account, mailbox)?;
    let mut highest = state.highest_modseq;
    let mut out = Vec::new();
    let mut freed = 0i64;
    for uid in sorted_uids(uids) {
        let found: Option<(i64, String, i64)> = conn
            .prepare_cached(
                "SELECT id, blob_hash, size FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
            )
            .db()?
            .query_row(params![state.id, i64::from(uid.0)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()
            .db()?;
        let Some((id, hash, size)) = found else {
            continue;
        };
        freed += size;
        let modseq = next_modseq(state.id, highest)?;
        highest = modseq;
        conn.prepare_cached("DELETE FROM messages WHERE id = ?1")
            .db()?
            .execute([id])
            .db()?;
        conn.prepare_cached(
            "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)
             ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq",
        )
        .db()?
        .execute(params![state.id, i64::from(uid.0), modseq])
        .db()?;
        record_change(conn, state.id, uid, modseq, "expunge")?;
        blobs::release(conn, &hash, 1)?;
        out.push(uid);
    }
    if highest != state.highest_modseq {
        set_highest_modseq(conn, state.id, highest)?;
    }
    let gone = i64::try_from(out.len()).unwrap_or(i64::MAX);
    crate::sql::quota::add_usage(conn, account, -freed, -gone)?;
    Ok(out)
}

/// The longest mailbox name accepted, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 512;

/// Checks a mailbox name a client chose: not empty, no empty hierarchy
/// level (`a//b`, a leading or trailing `/`), no level that is `.` or
/// `..`, no leading `~` (names that look like paths, as Dovecot refuses
/// them), no control characters, no LIST wildcards (`*`, `%`), at most
/// [`MAX_NAME_LEN`] bytes.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.starts_with('~')
        || name
            .split('/')
            .any(|level| level.is_empty() || level == "." || level == "..")
        || name.chars().any(|c| c.is_control() || c == '*' || c == '%');
    if bad {
        return Err(StoreError::Invalid(format!("mailbox name {name:?}")));
    }
    Ok(())
}

/// How many characters `name` has, as SQLite's `substr` counts them.
fn chars(name: &str) -> i64 {
    name.chars().count() as i64
}

/// The names of the levels above `name`: `a`, `a/b` for `a/b/c`.
fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/').map(move |(i, _)| &name[..i])
}

/// Writer: creates a mailbox a client asked for, and any missing level
/// above it. Subscribing is left to the client (RFC 3501).
pub(crate) fn create_user_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<MailboxId> {
    check_name(name)?;
    if find_mailbox(conn, account, name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "mailbox {}",
            canonical_name(name)
        )));
    }
    create_parents(conn, account, name)?;
    create_mailbox(conn, account, name, None)
}

/// Writer: sets or clears a mailbox's special use.
pub(crate) fn set_special_use(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<()> {
    let id = require_mailbox(conn, account, name)?;
    conn.prepare_cached("UPDATE mailboxes SET special_use = ?2 WHERE id = ?1")
        .db()?
        .execute(params![id.0, special_use])
        .db()?;
    Ok(())
}

/// Writer: as [`create_user_mailbox`], with an RFC 6154 special use
/// (`\Drafts`) that LIST shows; the caller checks it is one the store
/// keeps.
pub(crate) fn create_special_use_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: &str,
) -> Result<MailboxId> {
    let id = create_user_mailbox(conn, account, name)?;
    conn.prepare_cached("UPDATE mailboxes SET special_use = ?2 WHERE id = ?1")
        .db()?
        .execute(params![id.0, special_use])
        .db()?;
    Ok(id)
}

/// Writer: creates each missing level above `name`.
fn create_parents(conn: &Connection, account: AccountId, name: &str) -> Result<()> {
    for parent in parents(name) {
        if find_mailbox(conn, account, parent)?.is_none() {
            create_mailbox(conn, account, parent, None)?;
        }
    }
    Ok(())
}

/// Writer: subscribes to or unsubscribes from a mailbox name, which need
/// not exist (RFC 3501 6.3.6).
pub(crate) fn subscribe(
    conn: &Connection,
    account: AccountId,
    name: &str,
    subscribed: bool,
) -> Result<()> {
    let name = canonical_name(name);
    if subscribed {
        check_name(&name)?;
        conn.prepare_cached(
            "INSERT INTO subscriptions (account_id, name) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
        )
        .db()?
        .execute(params![account.0, name])
        .db()?;
    } else {
        conn.prepare_cached("DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2")
            .db()?
            .execute(params![account.0, name])
            .db()?;
    }
    Ok(())
}

/// Reader: the account's subscribed names, sorted.
pub(crate) fn subscriptions(conn: &Connection, account: AccountId) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name")
        .db()?;
    let rows = stmt.query_map([account.0], |row| row.get(0)).db()?;
    rows.collect::<crate::db::Result<_>>().db()
}

/// Whether the mailbox has levels below it.
fn has_children(conn: &Connection, account: AccountId, name: &str) -> Result<bool> {
    // SQLite's substr counts characters, not bytes.
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM mailboxes
                         WHERE account_id = ?1 AND substr(name, 1, ?3) = ?2)",
    )
    .db()?
    .query_row(
        params![account.0, format!("{name}/"), chars(name) + 1],
        |row| row.get(0),
    )
    .db()
}

/// Writer: removes every message of the account's mailbox `id`
/// (releasing their blobs, giving back their usage).
fn empty_mailbox(conn: &Connection, account: AccountId, id: MailboxId) -> Result<()> {
    let (count, bytes): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ?1",
        )
        .db()?
        .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?;
    crate::sql::quota::add_usage(conn, account, -bytes, -count)?;
    let hashes: Vec<(String, i64)> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT blob_hash, count(*) FROM messages WHERE mailbox_id = ?1
                  GROUP BY blob_hash",
            )
            .db()?;
        let rows = stmt
            .query_map([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
            .db()?;
        rows.collect::<crate::db::Result<_>>().db()?
    };
    conn.prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1")
        .db()?
        .execute([id.0])
        .db()?;
    for (hash, n) in hashes {
        blobs::release(conn, &hash, n)?;
    }
    Ok(())
}

/// Writer: deletes a mailbox and its messages. INBOX cannot go, nor a
/// mailbox with levels below it (delete those first, as Dovecot asks).
pub(crate) fn delete_mailbox(conn: &Connection, account: AccountId, name: &str) -> Result<()> {
    let name = canonical_name(name);
    if name == "INBOX" {
        return Err(StoreError::Invalid("deletion of INBOX".into()));
    }
    let id = require_mailbox(conn, account, &name)?;
    if has_children(conn, account, &name)? {
        return Err(StoreError::Invalid(format!(
            "deletion of {name}: it has mailboxes below it"
        )));
    }
    empty_mailbox(conn, account, id)?;
    conn.prepare_cached("DELETE FROM expunged WHERE mailbox_id = ?1")
        .db()?
        .execute([id.0])
        .db()?;
    conn.prepare_cached("DELETE FROM mailboxes WHERE id = ?1")
        .db()?
        .execute([id.0])
        .db()?;
    Ok(())
}

/// Writer: renames a mailbox and every level below it, creating missing
/// levels above the new name. Renaming INBOX moves its messages into a new
/// mailbox of that name and leaves INBOX empty (RFC 3501 6.3.5).
pub(crate) fn rename_mailbox(
    conn: &Connection,
    account: AccountId,
    from: &str,
    to: &str,
) -> Result<()> {
    let from = canonical_name(from);
    let to_canon = canonical_name(to);
    check_name(to)?;
    let id = require_mailbox(conn, account, &from)?;
    if find_mailbox(conn, account, to)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {to_canon}")));
    }
    if to_canon == "INBOX" || to_canon.starts_with(&format!("{from}/")) {
        return Err(StoreError::Invalid(format!(
            "rename of {from} to {to_canon}"
        )));
    }
    if from == "INBOX" {
        create_user_mailbox(conn, account, to)?;
        let uids: Vec<Uid> = {
            let mut stmt = conn
                .prepare_cached("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")
                .db()?;
            let rows = stmt.query_map([id.0], |row| row.get::<_, i64>(0)).db()?;
            let mut out = Vec::new();
            for uid in rows {
                out.push(Uid(to_u32(uid.db()?, "UID")?));
            }
            out
        };
        move_messages(conn, account, &MailboxKey::from("INBOX"), &uids, to)?;
        return Ok(());
    }
    create_parents(conn, account, to)?;
    // SQLite's substr counts characters, not bytes.
    let after_from = chars(&from) + 1;
    // Subscriptions follow (as Dovecot's do).
    // A subscription already under a new name gives way (as UPDATE OR
    // REPLACE would; written out so that PostgreSQL runs it too).
    conn.prepare_cached(
        "DELETE FROM subscriptions
          WHERE account_id = ?1
            AND name IN (SELECT ?3 || substr(name, ?4) FROM subscriptions
                          WHERE account_id = ?1
                            AND (name = ?2 OR substr(name, 1, ?4) = ?2 || '/'))",
    )
    .db()?
    .execute(params![account.0, from, to_canon, after_from])
    .db()?;
    conn.prepare_cached(
        "UPDATE subscriptions SET name = ?3 || substr(name, ?4)
          WHERE account_id = ?1 AND (name = ?2 OR substr(name, 1, ?4) = ?2 || '/')",
    )
    .db()?
    .execute(params![account.0, from, to_canon, after_from])
    .db()?;
    conn.prepare_cached(
        "UPDATE mailboxes SET name = ?3 || substr(name, ?4)
          WHERE account_id = ?1 AND (name = ?2 OR substr(name, 1, ?5) = ?2 || '/')",
    )
    .db()?
    .execute(params![account.0, from, to_canon, after_from, after_from])
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::AlreadyExists(format!("a mailbox below {to}"))
        } else {
            crate::db::db_error(e)
        }
    })?;
    Ok(())
}

/// Writer: copies the messages with these UIDs (missing ones skipped), in
/// UID order, to the end of `to` with their flags and internal dates.
/// Returns the destination's UIDVALIDITY and the (source, new) UID pairs.
/// `OverQuota` (and the caller's request undone) if a copy does not fit
/// the account's quota.
pub(crate) fn copy_messages(
    conn: &Connection,
    account: AccountId,
    from: &MailboxKey,
    uids: &[Uid],
    to: &str,
) -> Result<(u32, Vec<(Uid, Uid)>)> {
    copy_within_quota(conn, account, from, uids, to, true)
}

/// [`copy_messages`], checking the quota before each copy if `quota`.
fn copy_within_quota(
    conn: &Connection,
    account: AccountId,
    from: &MailboxKey,
    uids: &[Uid],
    to: &str,
    quota: bool,
) -> Result<(u32, Vec<(Uid, Uid)>)> {
    let source = require(conn, account, from)?;
    let target = mailbox_state(conn, account, &MailboxKey::from(to))?;
    // Read once; each copy then counts against it here.
    let mut room = None;
    if quota {
        room = Some(crate::sql::quota::quota(conn, account)?).filter(|q| q.is_limited());
    }
    let mut pairs = Vec::new();
    for uid in sorted_uids(uids) {
        type Row = (String, i64, i64, i64, String, Option<i64>);
        let found: Option<Row> = conn
            .prepare_cached(
                "SELECT blob_hash, internal_date, size, system_flags, keywords, envelope_id
                   FROM messages
                  WHERE mailbox_id = ?1 AND uid = ?2",
            )
            .db()?
            .query_row(params![source.0, i64::from(uid.0)], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })
            .optional()
            .db()?;
        let Some((hash, internal_date, size, system_flags, keywords, envelope)) = found else {
            continue;
        };
        // A copy arrived the way the original did.
        let message = Append {
            blob_hash: &hash,
            size: to_u64(size, "message size")?,
            internal_date,
            system_flags,
            keywords: &keywords,
            envelope,
            blob_referenced: false,
        };
        if let Some(room) = room.as_mut() {
            if !room.fits(message.size, 1) {
                return Err(crate::sql::quota::over_quota(room));
            }
            room.used_bytes += message.size;
            room.used_messages += 1;
        }
        let new_uid = append(conn, account, to, &message)?.uid;
        pairs.push((uid, new_uid));
    }
    Ok((to_u32(target.uid_validity, "UIDVALIDITY")?, pairs))
}

/// Writer: [`copy_messages`], then expunges the originals; one
/// transaction, so no other session sees a message in both or neither.
/// A move within the account leaves its usage as it was, so its quota is
/// not checked (as Dovecot moves over quota).
pub(crate) fn move_messages(
    conn: &Connection,
    account: AccountId,
    from: &MailboxKey,
    uids: &[Uid],
    to: &str,
) -> Result<(u32, Vec<(Uid, Uid)>)> {
    let (validity, pairs) = copy_within_quota(conn, account, from, uids, to, false)?;
    let moved: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
    expunge(conn, account, from, &moved)?;
    Ok((validity, pairs))
}

/// Writer: APPEND. Stores the blob if new (with its parse), then appends
/// it with these flags and internal date. Returns the mailbox's
/// UIDVALIDITY and the new UID; `OverQuota` if it does not fit the
/// account's quota.
pub(crate) fn append_raw(
    conn: &Connection,
    account: AccountId,
    mailbox: &str,
    raw: &[u8],
    summary_json: &str,
    flags: &FlagSet,
    internal_date: Timestamp,
) -> Result<(u32, Uid)> {
    let state = mailbox_state(conn, account, &MailboxKey::from(mailbox))?;
    crate::sql::quota::check(conn, account, raw.len() as u64, 1)?;
    let hash = blobs::hash(raw);
    blobs::store_referenced(conn, &hash, raw, 1)?;
    blobs::store_summary(conn, &hash, summary_json)?;
    let keywords = flags.keywords.join(" ");
    let message = Append {
        blob_hash: &hash,
        size: raw.len() as u64,
        internal_date,
        system_flags: flags.system,
        keywords: &keywords,
        envelope: None,
        blob_referenced: true,
    };
    let uid = append(conn, account, mailbox, &message)?.uid;
    Ok((to_u32(state.uid_validity, "UIDVALIDITY")?, uid))
}

/// Reader: one value (`value`, an SQL expression over `messages`) of each
/// message with these UIDs, in UID order; missing ones left out.
fn value_by_uid<T: crate::db::FromSql>(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
    value: &str,
) -> Result<Vec<(Uid, T)>> {
    let id = require(conn, account, mailbox)?;
    let sql = format!("SELECT {value} FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut out = Vec::with_capacity(uids.len());
    for uid in sorted_uids(uids) {
        let found: Option<T> = stmt
            .query_row(params![id.0, i64::from(uid.0)], |row| row.get(0))
            .optional()
            .db()?;
        out.extend(found.map(|v| (uid, v)));
    }
    Ok(out)
}

/// Reader: the UIDs of the mailbox's messages for which `condition` (SQL
/// over `messages`; `args` are its `?2`, `?3`, …) holds, in order.
fn uids_where(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    condition: &str,
    args: &[&dyn crate::db::ToSql],
) -> Result<Vec<Uid>> {
    let id = require(conn, account, mailbox)?;
    let sql =
        format!("SELECT uid FROM messages WHERE mailbox_id = ?1 AND {condition} ORDER BY uid");
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut all: Vec<&dyn crate::db::ToSql> = vec![&id.0];
    all.extend_from_slice(args);
    let rows = stmt
        .query_map(all.as_slice(), |row| row.get::<_, i64>(0))
        .db()?;
    let mut out = Vec::new();
    for uid in rows {
        out.push(Uid(to_u32(uid.db()?, "UID")?));
    }
    Ok(out)
}

/// Reader: the hash of each message's raw bytes (its blob), for these
/// UIDs in UID order; missing ones left out.
pub(crate) fn content_hashes(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
) -> Result<Vec<(Uid, String)>> {
    value_by_uid(conn, account, mailbox, uids, "blob_hash")
}

/// Reader: the UIDs of the mailbox's messages whose raw bytes hash to
/// `hash`, in order.
pub(crate) fn uids_with_content(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    hash: &str,
) -> Result<Vec<Uid>> {
    uids_where(conn, account, mailbox, "blob_hash = ?2", &[&hash])
}

/// When a message was saved into its mailbox; older rows have only their
/// internal date.
const SAVED_AT: &str = "coalesce(saved_at, internal_date)";

/// Reader: when each message with these UIDs was saved into the mailbox
/// (its internal date if saved before that was kept), in UID order;
/// missing ones left out.
pub(crate) fn saved_dates(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    uids: &[Uid],
) -> Result<Vec<(Uid, Timestamp)>> {
    value_by_uid(conn, account, mailbox, uids, SAVED_AT)
}

/// Reader: the UIDs of the messages saved into the mailbox at or after
/// `since` and before `before` (as [`saved_dates`] reads them), in order.
pub(crate) fn uids_saved_between(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
    since: Timestamp,
    before: Timestamp,
) -> Result<Vec<Uid>> {
    let condition = format!("{SAVED_AT} >= ?2 AND {SAVED_AT} < ?3");
    uids_where(conn, account, mailbox, &condition, &[&since, &before])
}

/// Reader: the sum of the mailbox's message sizes, in octets.
pub(crate) fn mailbox_size(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
) -> Result<u64> {
    let id = require(conn, account, mailbox)?;
    let total: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(size), 0) FROM messages WHERE mailbox_id = ?1")
        .db()?
        .query_row([id.0], |row| row.get(0))
        .db()?;
    to_u64(total, "mailbox size")
}

/// Writer: the first UID that is `\Recent` for the session that calls
/// this, and every later one up to now is then no longer recent for
/// anybody else (RFC 3501 2.3.2: one session sees a message as recent).
pub(crate) fn claim_recent(
    conn: &Connection,
    account: AccountId,
    mailbox: &MailboxKey,
) -> Result<Uid> {
    let state = mailbox_state(conn, account, mailbox)?;
    let first: i64 = conn
        .prepare_cached("SELECT recent_uid FROM mailboxes WHERE id = ?1")
        .db()?
        .query_row([state.id], |row| row.get(0))
        .db()?;
    if first < state.uid_next {
        conn.prepare_cached("UPDATE mailboxes SET recent_uid = ?2 WHERE id = ?1")
            .db()?
            .execute(params![state.id, state.uid_next])
            .db()?;
    }
    Ok(Uid(to_u32(first, "recent UID").unwrap_or(u32::MAX)))
}
