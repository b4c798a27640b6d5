//! The delivery queue: entries, per-recipient state, leases, local delivery.

use std::collections::HashMap;

use crate::db::{params, Connection, OptionalExtension, Row};

use crate::db::SqlResult;
use crate::sql::blobs;
use crate::sql::mailbox::{self, Append};
use crate::sql::quota;
use crate::sql::received;
use crate::{
    AccountId, BodyType, DsnRequest, DsnReturn, LocalDelivery, NewEnvelope, NewQueuedMessage,
    Notify, QueueId, QueuedMessage, QueuedRecipient, RecipientDsn, RecipientId, RecipientState,
    Result, SmtpSessionId, StoreError, Timestamp,
};

fn body_type_str(t: BodyType) -> &'static str {
    match t {
        BodyType::SevenBit => "7bit",
        BodyType::EightBitMime => "8bitmime",
        BodyType::BinaryMime => "binarymime",
    }
}

fn body_type_from(s: &str) -> BodyType {
    match s {
        "8bitmime" => BodyType::EightBitMime,
        "binarymime" => BodyType::BinaryMime,
        _ => BodyType::SevenBit,
    }
}

fn state_from(s: &str) -> RecipientState {
    match s {
        "deferred" => RecipientState::Deferred,
        "delivered" => RecipientState::Delivered,
        "bounced" => RecipientState::Bounced,
        _ => RecipientState::Pending,
    }
}

fn ret_str(ret: DsnReturn) -> &'static str {
    match ret {
        DsnReturn::Full => "full",
        DsnReturn::Headers => "hdrs",
    }
}

fn ret_from(s: &str) -> Option<DsnReturn> {
    match s {
        "full" => Some(DsnReturn::Full),
        "hdrs" => Some(DsnReturn::Headers),
        _ => None,
    }
}

/// `never`, or the requested notices comma-separated (`success,failure`).
fn notify_str(notify: Notify) -> String {
    let words: Vec<&str> = [
        (notify.success, "success"),
        (notify.failure, "failure"),
        (notify.delay, "delay"),
    ]
    .into_iter()
    .filter_map(|(on, word)| on.then_some(word))
    .collect();
    if words.is_empty() {
        "never".to_string()
    } else {
        words.join(",")
    }
}

fn notify_from(s: &str) -> Notify {
    let mut notify = Notify::default();
    for word in s.split(',') {
        match word {
            "success" => notify.success = true,
            "failure" => notify.failure = true,
            "delay" => notify.delay = true,
            _ => {}
        }
    }
    notify
}

const MESSAGE_COLUMNS: &str =
    "id, sender, auth_user, body_type, smtputf8, size, received_at, dsn_ret, dsn_envid";
const RECIPIENT_COLUMNS: &str = "id, address, state, attempts, next_attempt_at, last_error, \
     queue_id, leased_until, dsn_notify, dsn_orcpt";

fn message_from_row(row: &Row<'_>) -> crate::db::Result<QueuedMessage> {
    Ok(QueuedMessage {
        id: QueueId(row.get(0)?),
        sender: row.get(1)?,
        auth_user: row.get(2)?,
        body_type: body_type_from(&row.get::<_, String>(3)?),
        smtputf8: row.get(4)?,
        size: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
        received_at: row.get(6)?,
        dsn_ret: row
            .get::<_, Option<String>>(7)?
            .as_deref()
            .and_then(ret_from),
        dsn_envid: row.get(8)?,
        recipients: Vec::new(),
    })
}

fn recipient_from_row(row: &Row<'_>) -> crate::db::Result<(QueueId, QueuedRecipient)> {
    Ok((
        QueueId(row.get(6)?),
        QueuedRecipient {
            id: RecipientId(row.get(0)?),
            address: row.get(1)?,
            state: state_from(&row.get::<_, String>(2)?),
            attempts: u32::try_from(row.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            next_attempt_at: row.get(4)?,
            leased_until: row.get(7)?,
            last_error: row.get(5)?,
            dsn: RecipientDsn {
                notify: row.get::<_, Option<String>>(8)?.as_deref().map(notify_from),
                orcpt: row.get(9)?,
            },
        },
    ))
}

/// An entry without its recipients.
fn entry(conn: &Connection, id: QueueId) -> Result<Option<QueuedMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM queue WHERE id = ?1"
    ))
    .db()?
    .query_row([id.0], message_from_row)
    .optional()
    .db()
}

/// `NotFound` unless the entry exists.
fn ensure_exists(conn: &Connection, queue: QueueId) -> Result<()> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM queue WHERE id = ?1)")
        .db()?
        .query_row([queue.0], |row| row.get(0))
        .db()?;
    if exists {
        Ok(())
    } else {
        Err(not_found(queue))
    }
}

/// Writer: stores the blob reference, the entry and its recipients, with
/// what the client asked of delivery status notifications (`dsn`: its
/// recipients are empty or one per message recipient, in order).
pub(crate) fn enqueue(
    conn: &Connection,
    hash: &str,
    message: &NewQueuedMessage,
    dsn: &DsnRequest,
    envelope: Option<crate::EnvelopeId>,
    now: Timestamp,
) -> Result<QueueId> {
    blobs::add_ref(conn, hash, &message.raw)?;
    let QueueId(id) = next_queue_id(conn)?;
    conn.prepare_cached(
        "INSERT INTO queue (id, blob_hash, sender, auth_user, body_type, smtputf8, size,
                            received_at, dsn_ret, dsn_envid, envelope_id)
         VALUES (?11, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .db()?
    .execute(params![
        hash,
        message.sender,
        message.auth_user,
        body_type_str(message.body_type),
        message.smtputf8,
        i64::try_from(message.raw.len()).unwrap_or(i64::MAX),
        message.received_at,
        dsn.ret.map(ret_str),
        dsn.envid,
        envelope.map(|e| e.0),
        id,
    ])
    .db()?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO queue_recipients
                 (queue_id, address, state, attempts, next_attempt_at, last_error,
                  dsn_notify, dsn_orcpt)
             VALUES (?1, ?2, 'pending', 0, ?3, NULL, ?4, ?5)",
        )
        .db()?;
    for (i, rcpt) in message.recipients.iter().enumerate() {
        let (notify, orcpt) = match dsn.recipients.get(i) {
            Some(r) => (r.notify.map(notify_str), r.orcpt.as_deref()),
            None => (None, None),
        };
        stmt.execute(params![id, rcpt, now, notify, orcpt]).db()?;
    }
    Ok(QueueId(id))
}

/// Writer: a queue id never given before (ids are not reused, even after
/// their entries are gone: logs and `postern queue` refer to them).
fn next_queue_id(conn: &Connection) -> Result<QueueId> {
    next_in_sequence(conn, "last_queue_id").map(QueueId)
}

/// Writer: one more than the last number the counter `key` in `meta`
/// gave (1 for a new counter); never the same twice.
pub(crate) fn next_in_sequence(conn: &Connection, key: &str) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, 1)
         ON CONFLICT (key) DO UPDATE SET value = CAST(meta.value AS BIGINT) + 1
         RETURNING value",
    )
    .db()?
    .query_row([key], |row| row.get(0))
    .db()
}

/// Writer: a message received over SMTP, delivered at once: its envelope,
/// `copy` (with its parse, `summary_json`) in the INBOX of each of
/// `accounts` (one copy per distinct account), and a queue id from the
/// sequence of queued mail, with no queue entry. `None`, with nothing
/// written, if an account or its INBOX is gone, or the copy does not fit
/// an account's quota: the caller queues the message instead, and the
/// queue manager delivers or bounces it recipient by recipient.
pub(crate) fn deliver_received(
    conn: &Connection,
    copy: &Copy,
    summary_json: &str,
    accounts: &[AccountId],
    envelope: &NewEnvelope,
    received_at: Timestamp,
) -> Result<Option<(QueueId, SmtpSessionId)>> {
    let mut distinct = Vec::with_capacity(accounts.len());
    for &account in accounts {
        if distinct.contains(&account) {
            continue;
        }
        match quota::inbox_quota(conn, account)? {
            Some(quota) if quota.fits(copy.bytes.len() as u64, 1) => {}
            _ => return Ok(None),
        }
        distinct.push(account);
    }
    // The blob is stored with every copy's reference counted: one write
    // of its row.
    let copies = i64::try_from(distinct.len()).unwrap_or(i64::MAX);
    let (queue, envelope, session) = match conn.dialect() {
        // One round trip for the four.
        crate::db::Dialect::Postgres => {
            let session = received::session_row(conn, envelope.session, &envelope.session_start)?;
            let (recipients, warnings) = received::envelope_json(envelope)?;
            let (queue, id) = conn
                .prepare_cached(
                    "WITH e AS (
                         INSERT INTO envelopes
                             (session_id, mail_from, mail_params, recipients, helo, client, tls,
                              auth_user, received_at, warnings)
                         VALUES (?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                         RETURNING id),
                     b AS (
                         INSERT INTO blobs (hash, size, refcount, data, summary)
                         VALUES (?1, ?2, ?15, ?3, NULL)
                         ON CONFLICT (hash) DO UPDATE SET refcount = blobs.refcount + ?15),
                     s AS (
                         INSERT INTO summaries (hash, summary) VALUES (?1, ?4)
                         ON CONFLICT (hash) DO NOTHING),
                     q AS (
                         INSERT INTO meta (key, value) VALUES ('last_queue_id', '1')
                         ON CONFLICT (key) DO UPDATE SET value = CAST(meta.value AS BIGINT) + 1
                         RETURNING CAST(value AS BIGINT) AS id)
                     SELECT q.id, e.id FROM q, e",
                )
                .db()?
                .query_row(
                    params![
                        copy.hash,
                        i64::try_from(copy.bytes.len()).unwrap_or(i64::MAX),
                        copy.bytes,
                        summary_json,
                        session.0,
                        envelope.mail_from,
                        envelope.mail_params,
                        recipients,
                        envelope.helo,
                        envelope.session_start.client,
                        envelope.tls,
                        envelope.auth_user,
                        received_at,
                        warnings,
                        copies,
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .db()?;
            (QueueId(queue), crate::EnvelopeId(id), session)
        }
        crate::db::Dialect::Sqlite => {
            let (envelope, session) = received::insert_envelope(conn, envelope, received_at)?;
            let queue = next_queue_id(conn)?;
            blobs::store_referenced(conn, &copy.hash, &copy.bytes, copies)?;
            blobs::store_summary(conn, &copy.hash, summary_json)?;
            (queue, envelope, session)
        }
    };
    let append = Append {
        blob_hash: &copy.hash,
        size: copy.bytes.len() as u64,
        internal_date: received_at,
        system_flags: 0,
        keywords: "",
        envelope: Some(envelope.0),
        blob_referenced: true,
    };
    for account in distinct {
        mailbox::append(conn, account, "INBOX", &append)?;
    }
    Ok(Some((queue, session)))
}

/// Writer: leases due recipients of up to `limit` messages, oldest first.
pub(crate) fn claim_due(
    conn: &Connection,
    now: Timestamp,
    lease_secs: i64,
    limit: usize,
    owner: Option<&str>,
) -> Result<Vec<QueuedMessage>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ids: Vec<i64> = conn
        .prepare_cached(
            // Driven by the due index (the subquery), not by a queue scan.
            "SELECT q.id FROM queue q
              WHERE q.id IN (SELECT queue_id FROM queue_recipients
                              WHERE state IN ('pending', 'deferred')
                                AND next_attempt_at <= ?1
                                AND leased_until <= ?1)
              ORDER BY q.received_at, q.id
              LIMIT ?2",
        )
        .db()?
        .query_map(params![now, limit], |row| row.get(0))
        .db()?
        .collect::<crate::db::Result<_>>()
        .db()?;

    let until = now.saturating_add(lease_secs);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(mut message) = entry(conn, QueueId(id))? else {
            continue;
        };
        message.recipients = conn
            .prepare_cached(&format!(
                "SELECT {RECIPIENT_COLUMNS} FROM queue_recipients
                  WHERE queue_id = ?1 AND state IN ('pending', 'deferred')
                    AND next_attempt_at <= ?2 AND leased_until <= ?2
                  ORDER BY id"
            ))
            .db()?
            .query_map(params![id, now], recipient_from_row)
            .db()?
            .map(|r| r.map(|(_, rcpt)| rcpt))
            .collect::<crate::db::Result<_>>()
            .db()?;
        let mut lease = conn
            .prepare_cached(
                "UPDATE queue_recipients SET leased_until = ?2, leased_by = ?3 WHERE id = ?1",
            )
            .db()?;
        for rcpt in &mut message.recipients {
            lease.execute(params![rcpt.id.0, until, owner]).db()?;
            rcpt.leased_until = until;
        }
        out.push(message);
    }
    Ok(out)
}

/// Writer: ends the claims `owner` holds (its process is gone), so the
/// recipients are due again at once; how many.
pub(crate) fn release_claims_of(conn: &Connection, owner: &str, now: Timestamp) -> Result<usize> {
    conn.prepare_cached(
        "UPDATE queue_recipients SET leased_until = 0, leased_by = NULL
          WHERE leased_by = ?1 AND leased_until > ?2
            AND state IN ('pending', 'deferred')",
    )
    .db()?
    .execute(params![owner, now])
    .db()
}

/// Reader: every entry with all its recipients, oldest first.
pub(crate) fn list(conn: &Connection) -> Result<Vec<QueuedMessage>> {
    let mut messages: Vec<QueuedMessage> = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM queue ORDER BY received_at, id"
        ))
        .db()?
        .query_map([], message_from_row)
        .db()?
        .collect::<crate::db::Result<_>>()
        .db()?;
    let index: HashMap<QueueId, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {RECIPIENT_COLUMNS} FROM queue_recipients ORDER BY id"
        ))
        .db()?;
    for row in stmt.query_map([], recipient_from_row).db()? {
        let (queue, rcpt) = row.db()?;
        if let Some(m) = index.get(&queue).and_then(|&i| messages.get_mut(i)) {
            m.recipients.push(rcpt);
        }
    }
    Ok(messages)
}

/// Reader: one entry with all its recipients, if there is such an entry.
pub(crate) fn find(conn: &Connection, id: QueueId) -> Result<Option<QueuedMessage>> {
    let Some(mut message) = entry(conn, id)? else {
        return Ok(None);
    };
    message.recipients = conn
        .prepare_cached(&format!(
            "SELECT {RECIPIENT_COLUMNS} FROM queue_recipients WHERE queue_id = ?1 ORDER BY id"
        ))
        .db()?
        .query_map([id.0], recipient_from_row)
        .db()?
        .map(|r| r.map(|(_, rcpt)| rcpt))
        .collect::<crate::db::Result<_>>()
        .db()?;
    Ok(Some(message))
}

/// The blob behind a queue entry, and whether it has been parsed already.
pub(crate) enum QueuedBlob {
    Parsed,
    Unparsed(Vec<u8>),
}

/// Reader: a queue entry's blob hash and, if no parse is cached, its bytes.
pub(crate) fn blob_for_delivery(conn: &Connection, id: QueueId) -> Result<QueuedBlob> {
    let (hash, parsed): (String, bool) = conn
        .prepare_cached(
            "SELECT q.blob_hash,
                    EXISTS (SELECT 1 FROM summaries s WHERE s.hash = q.blob_hash)
               FROM queue q
              WHERE q.id = ?1",
        )
        .db()?
        .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .db()?
        .ok_or_else(|| not_found(id))?;
    if parsed {
        return Ok(QueuedBlob::Parsed);
    }
    let data = blobs::data(conn, &hash)?.ok_or_else(|| not_found(id))?;
    Ok(QueuedBlob::Unparsed(data))
}

fn not_found(id: QueueId) -> StoreError {
    StoreError::NotFound(format!("queued message {id}"))
}

/// Reader: the raw bytes of a queue entry.
pub(crate) fn raw(conn: &Connection, id: QueueId) -> Result<Vec<u8>> {
    conn.prepare_cached(
        "SELECT b.data FROM queue q JOIN blobs b ON b.hash = q.blob_hash WHERE q.id = ?1",
    )
    .db()?
    .query_row([id.0], |row| row.get(0))
    .optional()
    .db()?
    .ok_or_else(|| not_found(id))
}

fn recipient_state(conn: &Connection, queue: QueueId, rcpt: RecipientId) -> Result<RecipientState> {
    conn.prepare_cached("SELECT state FROM queue_recipients WHERE id = ?1 AND queue_id = ?2")
        .db()?
        .query_row(params![rcpt.0, queue.0], |row| row.get::<_, String>(0))
        .optional()
        .db()?
        .map(|s| state_from(&s))
        .ok_or_else(|| StoreError::NotFound(format!("recipient {rcpt} of queued message {queue}")))
}

fn is_open(state: RecipientState) -> bool {
    matches!(state, RecipientState::Pending | RecipientState::Deferred)
}

/// Writer: drops the entry (and its blob reference) once no recipient is
/// pending or deferred.
fn finish_if_done(conn: &Connection, queue: QueueId) -> Result<()> {
    let open: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM queue_recipients
                             WHERE queue_id = ?1 AND state IN ('pending', 'deferred'))",
        )
        .db()?
        .query_row([queue.0], |row| row.get(0))
        .db()?;
    if open {
        return Ok(());
    }
    remove(conn, queue).map(|_| ())
}

/// Writer: drops the entry, its recipients and its blob reference, whatever
/// state the recipients are in. Returns whether there was such an entry.
pub(crate) fn remove(conn: &Connection, queue: QueueId) -> Result<bool> {
    let hash: Option<String> = conn
        .prepare_cached("SELECT blob_hash FROM queue WHERE id = ?1")
        .db()?
        .query_row([queue.0], |row| row.get(0))
        .optional()
        .db()?;
    let Some(hash) = hash else {
        return Ok(false);
    };
    conn.prepare_cached("DELETE FROM queue_recipients WHERE queue_id = ?1")
        .db()?
        .execute([queue.0])
        .db()?;
    conn.prepare_cached("DELETE FROM queue WHERE id = ?1")
        .db()?
        .execute([queue.0])
        .db()?;
    blobs::release(conn, &hash, 1)?;
    Ok(true)
}

/// Writer: makes the entry's deferred recipients due at `now`. A pending
/// recipient is due from the start, so one not due is leased to a delivery
/// under way: making it due would start a second one. Those due already are
/// left alone, so the count is of recipients whose wait was cut short.
/// `NotFound` if there is no such entry.
pub(crate) fn retry(conn: &Connection, queue: QueueId, now: Timestamp) -> Result<usize> {
    ensure_exists(conn, queue)?;
    conn.prepare_cached(
        "UPDATE queue_recipients SET next_attempt_at = ?2
          WHERE queue_id = ?1 AND state = 'deferred' AND next_attempt_at > ?2",
    )
    .db()?
    .execute(params![queue.0, now])
    .db()
}

/// Writer: makes every deferred recipient not yet due, of every entry, due
/// at `now`. Returns how many.
pub(crate) fn flush(conn: &Connection, now: Timestamp) -> Result<usize> {
    conn.prepare_cached(
        "UPDATE queue_recipients SET next_attempt_at = ?1
          WHERE state = 'deferred' AND next_attempt_at > ?1",
    )
    .db()?
    .execute([now])
    .db()
}

/// The copy of a queued message that the mailboxes get, when it differs
/// from the queued blob (lines on top): its hash and bytes.
pub(crate) struct Copy {
    pub hash: String,
    pub bytes: Vec<u8>,
}

/// Writer: appends the queued message (or `copy` of it) to each delivery's
/// mailbox, marks those recipients delivered, queues `notice` (its blob
/// hash and the message) if any recipient was delivered now, and finishes
/// the entry if nothing is left. `summary_json` is the parse of what is
/// appended. Recipients already delivered or bounced are skipped, so a
/// repeated call does not duplicate mail. A delivery whose copy does not
/// fit its account's quota is not made, and its recipient (with every
/// other recipient for that account) stays as it was, for the caller to
/// bounce. Returns whether any message was appended, and the recipients
/// left for their quota.
pub(crate) fn deliver_local(
    conn: &Connection,
    queue: QueueId,
    deliveries: &[LocalDelivery],
    copy: Option<&Copy>,
    summary_json: Option<&str>,
    notice: Option<(&str, &NewQueuedMessage)>,
    now: Timestamp,
) -> Result<(bool, Vec<RecipientId>)> {
    type Row = (String, i64, Timestamp, Option<i64>);
    let (queued_hash, queued_size, received_at, envelope): Row = conn
        .prepare_cached("SELECT blob_hash, size, received_at, envelope_id FROM queue WHERE id = ?1")
        .db()?
        .query_row([queue.0], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()
        .db()?
        .ok_or_else(|| not_found(queue))?;
    // The copy is stored with no reference; each append takes one, and an
    // unused copy is dropped again below.
    let (hash, size) = match copy {
        Some(copy) => {
            blobs::ensure(conn, &copy.hash, &copy.bytes)?;
            (copy.hash.clone(), copy.bytes.len() as u64)
        }
        None => (queued_hash, u64::try_from(queued_size).unwrap_or(0)),
    };
    if let Some(json) = summary_json {
        blobs::store_summary(conn, &hash, json)?;
    }

    // States as they were when the call began.
    let mut states = HashMap::new();
    for d in deliveries {
        if let std::collections::hash_map::Entry::Vacant(e) = states.entry(d.recipient) {
            e.insert(recipient_state(conn, queue, d.recipient)?);
        }
    }

    let append = Append {
        blob_hash: &hash,
        size,
        internal_date: received_at,
        system_flags: 0,
        keywords: "",
        envelope,
        blob_referenced: false,
    };
    let mut appended = false;
    // Several recipients of one message may resolve to one mailbox
    // (`alice@` and `alice+tag@`, or an alias): one copy, as Postfix does.
    let mut done = std::collections::HashSet::new();
    let mut full_accounts = Vec::new();
    let mut over_quota = Vec::new();
    for d in deliveries {
        if !states.get(&d.recipient).copied().is_some_and(is_open) {
            continue;
        }
        if full_accounts.contains(&d.account) {
            over_quota.push(d.recipient);
            continue;
        }
        if !done.insert((d.account, d.mailbox.to_ascii_uppercase())) {
            continue;
        }
        if !quota::quota(conn, d.account)?.fits(size, 1) {
            full_accounts.push(d.account);
            over_quota.push(d.recipient);
            continue;
        }
        mailbox::append(conn, d.account, &d.mailbox, &append)?;
        appended = true;
    }

    let mut mark = conn
        .prepare_cached(
            "UPDATE queue_recipients
                SET state = 'delivered', attempts = attempts + 1, last_error = NULL,
                    leased_until = 0
              WHERE id = ?1",
        )
        .db()?;
    let mut delivered_now = false;
    for (rcpt, state) in &states {
        if is_open(*state) && !over_quota.contains(rcpt) {
            mark.execute([rcpt.0]).db()?;
            delivered_now = true;
        }
    }
    if let Some((notice_hash, message)) = notice.filter(|_| delivered_now) {
        enqueue(
            conn,
            notice_hash,
            message,
            &DsnRequest::default(),
            None,
            now,
        )?;
    }
    if copy.is_some() {
        blobs::release(conn, &hash, 0)?;
    }
    finish_if_done(conn, queue)?;
    Ok((appended, over_quota))
}

/// Writer: marks recipients the next hop accepted `Delivered` (`NotFound`
/// for one not in the entry) and queues `notice` (its blob hash and the
/// message) if any of them was still open; finishes the entry if nothing
/// is left.
pub(crate) fn deliver_remote(
    conn: &Connection,
    queue: QueueId,
    recipients: &[RecipientId],
    notice: Option<(&str, &NewQueuedMessage)>,
    now: Timestamp,
) -> Result<()> {
    ensure_exists(conn, queue)?;
    let mut open = false;
    for &rcpt in recipients {
        open |= is_open(recipient_state(conn, queue, rcpt)?);
    }
    if let Some((notice_hash, message)) = notice.filter(|_| open) {
        enqueue(
            conn,
            notice_hash,
            message,
            &DsnRequest::default(),
            None,
            now,
        )?;
    }
    update_recipients(conn, queue, recipients, &Outcome::Delivered)
}

/// How [`update_recipients`] changes each recipient.
pub(crate) enum Outcome<'a> {
    Delivered,
    Deferred {
        error: &'a str,
        next_attempt_at: Timestamp,
    },
    Bounced {
        error: &'a str,
    },
}

/// Writer: records the outcome for some recipients of one entry; finishes
/// the entry if nothing is left to do.
pub(crate) fn update_recipients(
    conn: &Connection,
    queue: QueueId,
    recipients: &[RecipientId],
    outcome: &Outcome<'_>,
) -> Result<()> {
    ensure_exists(conn, queue)?;
    for &rcpt in recipients {
        let n = match outcome {
            Outcome::Delivered => conn
                .prepare_cached(
                    "UPDATE queue_recipients
                        SET state = 'delivered', attempts = attempts + 1, last_error = NULL,
                            leased_until = 0
                      WHERE id = ?1 AND queue_id = ?2",
                )
                .db()?
                .execute(params![rcpt.0, queue.0]),
            Outcome::Deferred {
                error,
                next_attempt_at,
            } => conn
                .prepare_cached(
                    "UPDATE queue_recipients
                        SET state = 'deferred', attempts = attempts + 1, last_error = ?3,
                            next_attempt_at = ?4, leased_until = 0
                      WHERE id = ?1 AND queue_id = ?2",
                )
                .db()?
                .execute(params![rcpt.0, queue.0, error, next_attempt_at]),
            Outcome::Bounced { error } => conn
                .prepare_cached(
                    "UPDATE queue_recipients
                        SET state = 'bounced', attempts = attempts + 1, last_error = ?3,
                            leased_until = 0
                      WHERE id = ?1 AND queue_id = ?2",
                )
                .db()?
                .execute(params![rcpt.0, queue.0, error]),
        }
        .db()?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "recipient {rcpt} of queued message {queue}"
            )));
        }
    }
    finish_if_done(conn, queue)
}

/// Writer: marks recipients `Bounced`, each with its own error, and queues
/// the bounce report (if any) in the same transaction, so a crash can
/// neither lose the report nor send it twice. Recipients no longer open
/// (another claimer finished them) are left alone and left out.
pub(crate) fn bounce_with_report(
    conn: &Connection,
    queue: QueueId,
    failures: &[(RecipientId, String)],
    report: Option<(&str, &NewQueuedMessage)>,
    now: Timestamp,
) -> Result<Option<QueueId>> {
    let mut mark = conn
        .prepare_cached(
            "UPDATE queue_recipients
                SET state = 'bounced', attempts = attempts + 1, last_error = ?3,
                    leased_until = 0
              WHERE id = ?1 AND queue_id = ?2 AND state IN ('pending', 'deferred')",
        )
        .db()?;
    let mut marked = 0;
    for (rcpt, error) in failures {
        marked += mark.execute(params![rcpt.0, queue.0, error]).db()?;
    }
    let report_id = match report {
        Some((hash, message)) if marked > 0 => Some(enqueue(
            conn,
            hash,
            message,
            &DsnRequest::default(),
            None,
            now,
        )?),
        _ => None,
    };
    finish_if_done(conn, queue)?;
    Ok(report_id)
}

/// Writer: moves the lease of claimed recipients (still open) to `until`.
pub(crate) fn extend_lease(
    conn: &Connection,
    queue: QueueId,
    recipients: &[RecipientId],
    until: Timestamp,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE queue_recipients SET leased_until = ?3
              WHERE id = ?1 AND queue_id = ?2 AND state IN ('pending', 'deferred')",
        )
        .db()?;
    for rcpt in recipients {
        stmt.execute(params![rcpt.0, queue.0, until]).db()?;
    }
    Ok(())
}
