//! Received mail as data: SMTP sessions and their envelopes as
//! recorded, for the HTTP API and `postern`.

use super::{blocking, Store};
use crate::parse;
use crate::sql::{blobs, capture, received};
use crate::types::*;

impl Store {
    /// Stores a message received in capture mode, in one transaction: the
    /// blob (parsed here, off the writer), its envelope, and a copy in the
    /// INBOX of each recipient's account, made as a captured account the
    /// first time mail arrives for an address that has none. Nothing is
    /// queued. Returns the copies' arrival numbers and the session's id.
    pub async fn capture(
        &self,
        message: NewQueuedMessage,
        envelope: NewEnvelope,
    ) -> Result<(Vec<u64>, SmtpSessionId)> {
        if message.recipients.is_empty() {
            return Err(StoreError::Invalid("recipients".into()));
        }
        let (hash, json, message) = blocking(move || {
            let json = serde_json::to_string(&parse::summarize(&message.raw))
                .map_err(|e| StoreError::Database(format!("summary encoding: {e}")));
            (blobs::hash(&message.raw), json, message)
        })
        .await?;
        let json = json?;
        let captured = self
            .inner
            .write(true, move |conn| {
                capture::capture(
                    conn,
                    &message.raw,
                    &hash,
                    &json,
                    &message.recipients,
                    &envelope,
                    message.received_at,
                )
            })
            .await?;
        let arrivals = captured
            .arrivals
            .into_iter()
            .filter_map(|a| u64::try_from(a).ok())
            .collect();
        Ok((arrivals, captured.session))
    }

    /// Records the end of an SMTP session: when, how many commands were
    /// refused, and its transcript. A session without a row yet (it gave no
    /// message) gets one. Returns its id.
    ///
    /// Answered once the commit is in the operating system's hands
    /// (`write_change`): a transcript is a log, not mail, and a
    /// client that sends one message per connection would otherwise pay a
    /// second fsync for every message (the next `250`'s fsync syncs it).
    pub async fn end_smtp_session(
        &self,
        session: Option<SmtpSessionId>,
        start: SmtpSessionStart,
        ended_at: Timestamp,
        refusals: u32,
        transcript: String,
    ) -> Result<SmtpSessionId> {
        self.inner
            .write_change(false, move |conn| {
                received::end_session(conn, session, &start, ended_at, refusals, &transcript)
            })
            .await
    }

    /// One envelope, if it is kept.
    pub async fn envelope(&self, id: EnvelopeId) -> Result<Option<Envelope>> {
        self.inner
            .read(move |conn| received::envelope(conn, id))
            .await
    }

    /// One recorded SMTP session, if it is kept.
    pub async fn smtp_session(&self, id: SmtpSessionId) -> Result<Option<SmtpSessionRecord>> {
        self.inner
            .read(move |conn| received::session(conn, id))
            .await
    }

    /// Up to `limit` recorded SMTP sessions older than `before` (from the
    /// newest if `None`), newest first.
    pub async fn smtp_sessions(
        &self,
        before: Option<SmtpSessionId>,
        limit: usize,
    ) -> Result<Vec<SmtpSessionRecord>> {
        self.inner
            .read(move |conn| received::sessions(conn, before, limit))
            .await
    }

    /// The envelopes of the messages one session gave, in order.
    pub async fn session_envelopes(&self, id: SmtpSessionId) -> Result<Vec<Envelope>> {
        self.inner
            .read(move |conn| received::session_envelopes(conn, id))
            .await
    }

    /// Keeps the newest `keep` SMTP sessions and drops older ones, with
    /// the envelopes nothing points at any more. Returns how many went.
    pub async fn prune_smtp_sessions(&self, keep: usize) -> Result<usize> {
        self.inner
            .write_change(false, move |conn| received::prune(conn, keep))
            .await
    }
}
