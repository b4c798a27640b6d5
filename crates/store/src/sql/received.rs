//! Received mail as data: SMTP sessions with their bounded transcripts,
//! and the envelope of every accepted message (MAIL FROM and every RCPT
//! with their parameters, and how the client came), kept apart from the
//! message's bytes, which are never rewritten to show them.

use crate::db::{params, Connection, Dialect, OptionalExtension, Row};

use crate::db::SqlResult;
use crate::{
    Envelope, EnvelopeId, EnvelopeRecipient, NewEnvelope, Result, SmtpSessionId, SmtpSessionRecord,
    SmtpSessionStart, StoreError, Timestamp,
};

/// Writer: the session's row, made now if it has none yet.
pub(crate) fn session_row(
    conn: &Connection,
    id: Option<SmtpSessionId>,
    start: &SmtpSessionStart,
) -> Result<SmtpSessionId> {
    if let Some(id) = id {
        return Ok(id);
    }
    conn.prepare_cached(
        "INSERT INTO smtp_sessions (client, role, started_at) VALUES (?1, ?2, ?3) RETURNING id",
    )
    .db()?
    .query_row(params![start.client, start.role, start.started_at], |row| {
        row.get(0)
    })
    .db()
    .map(SmtpSessionId)
}

/// An envelope's recipients and warnings as stored (JSON).
pub(crate) fn envelope_json(envelope: &NewEnvelope) -> Result<(String, String)> {
    let encode = |e: serde_json::Error| StoreError::Database(format!("envelope encoding: {e}"));
    Ok((
        serde_json::to_string(&envelope.recipients).map_err(encode)?,
        serde_json::to_string(&envelope.warnings).map_err(encode)?,
    ))
}

/// Writer: records an envelope (and its session's row, if new).
pub(crate) fn insert_envelope(
    conn: &Connection,
    envelope: &NewEnvelope,
    received_at: Timestamp,
) -> Result<(EnvelopeId, SmtpSessionId)> {
    let session = session_row(conn, envelope.session, &envelope.session_start)?;
    let (recipients, warnings) = envelope_json(envelope)?;
    let values = params![
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
    ];
    let id = match conn.dialect() {
        // The id from a counter in `meta`, a page the delivery writes
        // anyway (AUTOINCREMENT wrote `sqlite_sequence` as well).
        Dialect::Sqlite => {
            let id = crate::sql::queue::next_in_sequence(conn, "last_envelope_id")?;
            conn.prepare_cached(
                "INSERT INTO envelopes
                     (session_id, mail_from, mail_params, recipients, helo, client, tls,
                      auth_user, received_at, warnings, id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .db()?
            .execute(&[values, params![id]].concat())
            .db()?;
            id
        }
        // Its identity column, whose sequence never gives an id twice.
        Dialect::Postgres => conn
            .prepare_cached(
                "INSERT INTO envelopes
                     (session_id, mail_from, mail_params, recipients, helo, client, tls,
                      auth_user, received_at, warnings)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 RETURNING id",
            )
            .db()?
            .query_row(values, |row| row.get(0))
            .db()?,
    };
    Ok((EnvelopeId(id), session))
}

/// Writer: the end of a session: its transcript and how many commands
/// were refused. A session that has no row yet gets one.
pub(crate) fn end_session(
    conn: &Connection,
    id: Option<SmtpSessionId>,
    start: &SmtpSessionStart,
    ended_at: Timestamp,
    refusals: u32,
    transcript: &str,
) -> Result<SmtpSessionId> {
    let id = session_row(conn, id, start)?;
    conn.prepare_cached(
        "UPDATE smtp_sessions SET ended_at = ?2, refusals = ?3, transcript = ?4 WHERE id = ?1",
    )
    .db()?
    .execute(params![id.0, ended_at, refusals, transcript])
    .db()?;
    Ok(id)
}

const ENVELOPE_COLUMNS: &str = "id, session_id, mail_from, mail_params, recipients, helo, client,
     tls, auth_user, received_at, warnings";

fn envelope_from_row(row: &Row<'_>) -> Result<Envelope> {
    let recipients: String = row.get(4).db()?;
    let warnings: String = row.get(10).db()?;
    let decode = |what: &str, e: serde_json::Error| {
        StoreError::Database(format!("corrupt envelope {what}: {e}"))
    };
    Ok(Envelope {
        id: EnvelopeId(row.get(0).db()?),
        session: row.get::<_, Option<i64>>(1).db()?.map(SmtpSessionId),
        mail_from: row.get(2).db()?,
        mail_params: row.get(3).db()?,
        recipients: serde_json::from_str::<Vec<EnvelopeRecipient>>(&recipients)
            .map_err(|e| decode("recipients", e))?,
        helo: row.get(5).db()?,
        client: row.get(6).db()?,
        tls: row.get(7).db()?,
        auth_user: row.get(8).db()?,
        received_at: row.get(9).db()?,
        warnings: serde_json::from_str(&warnings).map_err(|e| decode("warnings", e))?,
    })
}

/// Reader: one envelope.
pub(crate) fn envelope(conn: &Connection, id: EnvelopeId) -> Result<Option<Envelope>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE id = ?1"
        ))
        .db()?;
    let mut rows = stmt.query([id.0]).db()?;
    match rows.next().db()? {
        Some(row) => envelope_from_row(&row).map(Some),
        None => Ok(None),
    }
}

/// Reader: the envelopes of the messages one session gave, in order.
pub(crate) fn session_envelopes(conn: &Connection, id: SmtpSessionId) -> Result<Vec<Envelope>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE session_id = ?1 ORDER BY id"
        ))
        .db()?;
    let mut rows = stmt.query([id.0]).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(envelope_from_row(&row)?);
    }
    Ok(out)
}

fn session_from_row(row: &Row<'_>) -> crate::db::Result<SmtpSessionRecord> {
    Ok(SmtpSessionRecord {
        id: SmtpSessionId(row.get(0)?),
        client: row.get(1)?,
        role: row.get(2)?,
        started_at: row.get(3)?,
        ended_at: row.get(4)?,
        refusals: row.get(5)?,
        transcript: row.get(6)?,
    })
}

const SESSION_COLUMNS: &str = "id, client, role, started_at, ended_at, refusals, transcript";

/// Reader: one session.
pub(crate) fn session(conn: &Connection, id: SmtpSessionId) -> Result<Option<SmtpSessionRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM smtp_sessions WHERE id = ?1"
    ))
    .db()?
    .query_row([id.0], session_from_row)
    .optional()
    .db()
}

/// Reader: up to `limit` sessions older than `before` (all if `None`),
/// newest first.
pub(crate) fn sessions(
    conn: &Connection,
    before: Option<SmtpSessionId>,
    limit: usize,
) -> Result<Vec<SmtpSessionRecord>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM smtp_sessions WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
        ))
        .db()?;
    let rows = stmt
        .query_map(
            params![
                before.map_or(i64::MAX, |b| b.0),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            session_from_row,
        )
        .db()?;
    rows.collect::<crate::db::Result<_>>().db()
}

/// Writer: keeps the newest `keep` sessions; older ones go, and with them
/// envelopes no message or queue entry points at any more. Envelopes of
/// messages still stored stay (their session link becomes empty).
pub(crate) fn prune(conn: &Connection, keep: usize) -> Result<usize> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let gone = conn
        .prepare_cached(
            "DELETE FROM smtp_sessions
              WHERE id <= (SELECT id FROM smtp_sessions ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        )
        .db()?
        .execute([keep])
        .db()?;
    conn.prepare_cached(
        "DELETE FROM envelopes
          WHERE session_id IS NULL
            AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.envelope_id = envelopes.id)
            AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.envelope_id = envelopes.id)",
    )
    .db()?
    .execute([])
    .db()?;
    Ok(gone)
}
