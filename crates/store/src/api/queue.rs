//! The queue: enqueueing, claiming due work, delivering locally,
//! deferring and bouncing, and what `postern queue` shows and does.

use std::sync::Arc;
use std::time::Duration;

use super::{blocking, now, Store};
use crate::claims;
use crate::parse;
use crate::sql::{blobs, queue, received};
use crate::types::*;

/// Whether a message is small enough to hash and parse on the calling
/// (tokio) thread: a few hundred microseconds at most, less than a round
/// trip to a blocking thread costs under load.
fn message_is_small(raw: &[u8]) -> bool {
    raw.len() <= 256 << 10
}

impl Store {
    /// Stores the blob (or takes another reference to an identical one) and
    /// the queue entry with all recipients `Pending`, due now. Returns only
    /// once committed and synced.
    pub async fn enqueue(&self, message: NewQueuedMessage) -> Result<QueueId> {
        self.enqueue_with_dsn(message, DsnRequest::default()).await
    }

    /// [`Store::enqueue`], keeping what the client asked of delivery
    /// status notifications (RFC 3461) with the entry and its recipients.
    /// `Invalid` unless `dsn.recipients` is empty or has one entry per
    /// recipient.
    pub async fn enqueue_with_dsn(
        &self,
        message: NewQueuedMessage,
        dsn: DsnRequest,
    ) -> Result<QueueId> {
        self.enqueue_inner(message, dsn, None)
            .await
            .map(|(queue, _)| queue)
    }

    /// [`Store::enqueue_with_dsn`] for a message received over SMTP: its
    /// envelope is kept too (and the session's row made, if it has none
    /// yet), in the same transaction; every delivered copy will point at
    /// it. Returns the queue id and the session's id.
    pub async fn enqueue_received(
        &self,
        message: NewQueuedMessage,
        dsn: DsnRequest,
        envelope: NewEnvelope,
    ) -> Result<(QueueId, SmtpSessionId)> {
        let (queue, session) = self.enqueue_inner(message, dsn, Some(envelope)).await?;
        session
            .map(|s| (queue, s))
            .ok_or_else(|| StoreError::Database("envelope not recorded".into()))
    }

    async fn enqueue_inner(
        &self,
        message: NewQueuedMessage,
        dsn: DsnRequest,
        envelope: Option<NewEnvelope>,
    ) -> Result<(QueueId, Option<SmtpSessionId>)> {
        if message.recipients.is_empty() {
            return Err(StoreError::Invalid("recipients".into()));
        }
        if !dsn.recipients.is_empty() && dsn.recipients.len() != message.recipients.len() {
            return Err(StoreError::Invalid(
                "DSN parameters of the recipients".into(),
            ));
        }
        // Hashing a big message takes a while; keep it off the workers.
        let (hash, message) = if !message_is_small(&message.raw) {
            blocking(move || (blobs::hash(&message.raw), message)).await?
        } else {
            (blobs::hash(&message.raw), message)
        };
        self.inner
            .write(false, move |conn| {
                let recorded = match &envelope {
                    Some(e) => Some(received::insert_envelope(conn, e, message.received_at)?),
                    None => None,
                };
                let queue =
                    queue::enqueue(conn, &hash, &message, &dsn, recorded.map(|r| r.0), now())?;
                Ok((queue, recorded.map(|r| r.1)))
            })
            .await
    }

    /// A message received over SMTP whose recipients all resolved to local
    /// accounts at RCPT (`accounts`, one per recipient), delivered at once:
    /// in one transaction, synced before this returns, its envelope and a
    /// copy with `prepend` on top (the `Return-Path:`) in each account's
    /// INBOX, under a queue id from the sequence of queued mail but with
    /// no queue entry: one write per message where the queue takes three.
    /// If an account or its INBOX is gone since RCPT, or the copy does
    /// not fit an account's quota, the message is queued instead, in the same transaction, as [`Store::enqueue_received`]
    /// does, for the queue manager to bounce or deliver.
    pub async fn deliver_received(
        &self,
        message: NewQueuedMessage,
        dsn: DsnRequest,
        envelope: NewEnvelope,
        accounts: Vec<AccountId>,
        prepend: Vec<u8>,
    ) -> Result<Received> {
        if message.recipients.is_empty() || accounts.len() != message.recipients.len() {
            return Err(StoreError::Invalid("recipients".into()));
        }
        if !dsn.recipients.is_empty() && dsn.recipients.len() != message.recipients.len() {
            return Err(StoreError::Invalid(
                "DSN parameters of the recipients".into(),
            ));
        }
        let small = message_is_small(&message.raw);
        let mut bytes = prepend;
        bytes.extend_from_slice(&message.raw);
        let summarize = move || {
            let json = serde_json::to_string(&parse::summarize(&bytes))
                .map_err(|e| StoreError::Database(format!("summary encoding: {e}")))?;
            let copy = queue::Copy {
                hash: blobs::hash(&bytes),
                bytes,
            };
            Ok::<_, StoreError>((copy, json, message))
        };
        // Parsing a small message takes less than handing it to another
        // thread and back.
        let (copy, json, message) = if small {
            summarize()?
        } else {
            blocking(summarize).await??
        };
        self.inner
            .write(true, move |conn| {
                if let Some((queue, session)) = queue::deliver_received(
                    conn,
                    &copy,
                    &json,
                    &accounts,
                    &envelope,
                    message.received_at,
                )? {
                    return Ok(Received {
                        queue,
                        session,
                        delivered: true,
                    });
                }
                let hash = blobs::hash(&message.raw);
                let (envelope, session) =
                    received::insert_envelope(conn, &envelope, message.received_at)?;
                let queue = queue::enqueue(conn, &hash, &message, &dsn, Some(envelope), now())?;
                Ok(Received {
                    queue,
                    session,
                    delivered: false,
                })
            })
            .await
    }

    /// Claims up to `limit` messages that have recipients in `Pending` or
    /// `Deferred` with `next_attempt_at <= now` and no lease in force. The
    /// claimed recipients get `leased_until = now + lease` so that no other
    /// claimer (in this or another process) takes them before the lease
    /// ends, whatever `retry` or `flush` do meanwhile; a claimer that dies
    /// simply lets the lease run out. Only the claimed recipients are in the
    /// returned messages. Oldest messages first.
    pub async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>> {
        // Whole seconds, rounded up: a lease never ends early.
        let secs = lease
            .as_secs()
            .saturating_add(u64::from(lease.subsec_nanos() > 0));
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let owner = self.claims.owner_id();
        // A claim a power cut undoes only makes the mail due again.
        self.inner
            .write_change(false, move |conn| {
                queue::claim_due(conn, now, secs, limit, owner.as_deref())
            })
            .await
    }

    /// Releases the queue claims of processes that are gone (`kill -9`
    /// included): their lock in the data dir is no longer held, so none
    /// of their deliveries is running, and their recipients are due again
    /// now rather than when the lease would end. Claims of live processes
    /// are left alone. How many recipients were released.
    pub async fn release_dead_claims(&self) -> Result<usize> {
        let own = self
            .claims
            .owner
            .get()
            .and_then(|o| o.as_ref())
            .map(|o| o.id.clone());
        let data_dir = self.claims.data_dir.clone();
        let dead = blocking(move || claims::dead_owners(&data_dir, own.as_deref())).await?;
        let mut released = 0;
        for owner in dead {
            let id = owner.id.clone();
            released += self
                .inner
                .write(false, move |conn| {
                    queue::release_claims_of(conn, &id, now())
                })
                .await?;
            owner.forget();
        }
        Ok(released)
    }

    /// The raw bytes of a queued message.
    pub async fn queued_message_raw(&self, id: QueueId) -> Result<Arc<Vec<u8>>> {
        self.inner
            .read(move |conn| queue::raw(conn, id).map(Arc::new))
            .await
    }

    /// In one transaction: parses the message once (off the writer thread,
    /// reusing an earlier parse of the same blob), appends it to each
    /// delivery's mailbox with a new UID and modseq (flags empty, internal
    /// date = the message's `received_at`; deliveries that name the same
    /// account and mailbox get one copy), writes the change feed, marks
    /// those recipients `Delivered`, and removes the queue entry (releasing
    /// its blob reference) once no recipient is `Pending` or `Deferred`.
    ///
    /// A copy that does not fit its account's quota is not delivered: its
    /// recipients (every one for that account) are returned, left as they
    /// were, for the caller to bounce (`5.2.2`); the others are delivered.
    pub async fn deliver_local(
        &self,
        queue: QueueId,
        deliveries: Vec<LocalDelivery>,
    ) -> Result<Vec<RecipientId>> {
        self.deliver_local_with(queue, deliveries, DeliveryOptions::default())
            .await
    }

    /// [`Store::deliver_local`] with header lines on top of the delivered
    /// copy and a notice queued in the same transaction
    /// ([`DeliveryOptions`]). The copy with its new lines is parsed (once
    /// per distinct copy), so the summary's offsets are those of the bytes
    /// the mailboxes serve, and its size is what they report.
    pub async fn deliver_local_with(
        &self,
        queue: QueueId,
        deliveries: Vec<LocalDelivery>,
        options: DeliveryOptions,
    ) -> Result<Vec<RecipientId>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let DeliveryOptions { prepend, notice } = options;
        let notice = match notice {
            Some(message) => Some((blobs::hash(&message.raw), message)),
            None => None,
        };
        // Parsed on the reader thread that read the bytes (a blocking
        // thread already), so a delivery is one read and one write.
        let (copy, summary_json) = self
            .inner
            .read(move |conn| {
                let encode = |raw: &[u8]| {
                    serde_json::to_string(&parse::summarize(raw))
                        .map_err(|e| StoreError::Database(format!("summary encoding: {e}")))
                };
                if prepend.is_empty() {
                    return match queue::blob_for_delivery(conn, queue)? {
                        queue::QueuedBlob::Parsed => Ok((None, None)),
                        queue::QueuedBlob::Unparsed(raw) => Ok((None, Some(encode(&raw)?))),
                    };
                }
                let mut copy = prepend;
                copy.extend_from_slice(&queue::raw(conn, queue)?);
                let hash = blobs::hash(&copy);
                let json = if blobs::has_summary(conn, &hash)? {
                    None
                } else {
                    Some(encode(&copy)?)
                };
                Ok((Some(queue::Copy { hash, bytes: copy }), json))
            })
            .await?;
        // The queue holds the message (on disk since its `250`) until this
        // commits: a power cut that undoes the delivery leaves it queued,
        // to be delivered again, so the commit need not wait for the disk.
        self.inner
            .write_change(true, move |conn| {
                queue::deliver_local(
                    conn,
                    queue,
                    &deliveries,
                    copy.as_ref(),
                    summary_json.as_deref(),
                    notice.as_ref().map(|(hash, m)| (hash.as_str(), m)),
                    now(),
                )
                .map(|(_, over_quota)| over_quota)
            })
            .await
    }

    /// Marks recipients `Delivered` without a local mailbox (accepted by a
    /// remote server); removes the entry when nothing is left to do.
    pub async fn mark_delivered(&self, queue: QueueId, recipients: &[RecipientId]) -> Result<()> {
        self.mark_delivered_with_notice(queue, recipients, None)
            .await
    }

    /// [`Store::mark_delivered`], and `notice` (a success report) queued in
    /// the same transaction if some recipient was still open.
    pub async fn mark_delivered_with_notice(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        notice: Option<NewQueuedMessage>,
    ) -> Result<()> {
        let notice = notice.map(|message| (blobs::hash(&message.raw), message));
        let recipients = recipients.to_vec();
        self.inner
            .write(false, move |conn| {
                queue::deliver_remote(
                    conn,
                    queue,
                    &recipients,
                    notice.as_ref().map(|(hash, m)| (hash.as_str(), m)),
                    now(),
                )
            })
            .await
    }

    /// Marks recipients `Deferred`: attempts + 1, `last_error`, and the next
    /// attempt time.
    pub async fn defer(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        error: &str,
        next_attempt_at: Timestamp,
    ) -> Result<()> {
        let recipients = recipients.to_vec();
        let error = error.to_owned();
        self.inner
            .write(false, move |conn| {
                let outcome = queue::Outcome::Deferred {
                    error: &error,
                    next_attempt_at,
                };
                queue::update_recipients(conn, queue, &recipients, &outcome)
            })
            .await
    }

    /// Marks recipients `Bounced` with `last_error` (attempts + 1); removes
    /// the entry when nothing is left to do.
    pub async fn bounce(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        error: &str,
    ) -> Result<()> {
        let recipients = recipients.to_vec();
        let error = error.to_owned();
        self.inner
            .write(false, move |conn| {
                let outcome = queue::Outcome::Bounced { error: &error };
                queue::update_recipients(conn, queue, &recipients, &outcome)
            })
            .await
    }

    /// Keeps claimed recipients from other claimers for `lease` from now:
    /// for deliveries that take longer than the claim's lease (remote SMTP).
    pub async fn extend_lease(
        &self,
        queue: QueueId,
        recipients: &[RecipientId],
        lease: Duration,
    ) -> Result<()> {
        let recipients = recipients.to_vec();
        let until = now().saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        self.inner
            .write(false, move |conn| {
                queue::extend_lease(conn, queue, &recipients, until)
            })
            .await
    }

    /// Marks recipients `Bounced`, each with its own error, and in the same
    /// transaction queues `report` (the delivery status notification for
    /// them, from the null sender). Recipients that are no longer pending or
    /// deferred are skipped; if none is left, no report is queued. Returns
    /// the report's queue id.
    pub async fn bounce_with_report(
        &self,
        queue: QueueId,
        failures: Vec<(RecipientId, String)>,
        report: Option<NewQueuedMessage>,
    ) -> Result<Option<QueueId>> {
        let hash = report.as_ref().map(|r| blobs::hash(&r.raw));
        self.inner
            .write(false, move |conn| {
                let report = hash.as_deref().zip(report.as_ref());
                queue::bounce_with_report(conn, queue, &failures, report, now())
            })
            .await
    }

    /// Every queued message with all its recipients, oldest first.
    pub async fn queue(&self) -> Result<Vec<QueuedMessage>> {
        self.inner.read(queue::list).await
    }

    /// One queued message with all its recipients, if it is in the queue.
    pub async fn queued_message(&self, id: QueueId) -> Result<Option<QueuedMessage>> {
        self.inner.read(move |conn| queue::find(conn, id)).await
    }

    /// Makes the message's recipients that wait to be tried again
    /// (`Deferred`, not yet due) due at `now`; the queue manager picks them
    /// up at its next look. `Pending` recipients are due from the start, or
    /// leased to a delivery under way, which is left to finish. Returns how
    /// many were waiting and are now due; `NotFound` if there is no such
    /// message.
    pub async fn retry_queued(&self, id: QueueId, now: Timestamp) -> Result<usize> {
        self.inner
            .write(false, move |conn| queue::retry(conn, id, now))
            .await
    }

    /// Makes every `Deferred` recipient of every queued message due at
    /// `now`. Returns how many were waiting and are now due.
    pub async fn flush_queue(&self, now: Timestamp) -> Result<usize> {
        self.inner
            .write(false, move |conn| queue::flush(conn, now))
            .await
    }

    /// Removes the message from the queue, with all its recipients, without
    /// delivering or bouncing it; its blob reference is released. Returns
    /// whether there was such a message.
    pub async fn delete_queued(&self, id: QueueId) -> Result<bool> {
        self.inner
            .write(false, move |conn| queue::remove(conn, id))
            .await
    }
}
