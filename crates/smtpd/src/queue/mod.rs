//! The queue manager: takes due work from the store's queue and hands each
//! recipient to a delivery agent.
//!
//! Only this module moves mail out of the queue (the store writes it; smtpd
//! sessions only add to it). Work is claimed with a lease
//! ([`store::Store::claim_due`]), so two processes on one data dir never
//! deliver the same recipient at once. A process that dies (even by
//! `kill -9`) leaves its claims behind; the next queue manager to look
//! (the restarted process at once, another one within seconds) sees that
//! the process is gone and takes them back, and the lease is the last
//! resort where that cannot be told.
//!
//! Each recipient is classified again at delivery ([`policy::classify`]):
//! local ones go into their account's INBOX in one store transaction;
//! remote ones to the remote agent ([`remote`]), which speaks SMTP to the
//! next hop. A recipient that is no longer local (account deleted after
//! the message was accepted) fails permanently.
//!
//! After a pass, temporary failures are deferred with backoff
//! ([`retry`]) until the message outlives `max_lifetime_secs`; permanent
//! failures (and expired ones) are marked bounced, and one delivery status
//! notification listing all of them ([`crate::bounce`]) is queued to the
//! envelope sender in the same store transaction. A message from the null
//! sender never gets one.
//!
//! ## Delivery status notifications (RFC 3461)
//!
//! - A failure report names only recipients whose NOTIFY includes FAILURE
//!   (no NOTIFY means FAILURE); `NOTIFY=NEVER` gets none. `RET=HDRS`
//!   returns the header section only.
//! - `NOTIFY=SUCCESS` gets a success report: `Action: delivered` when the
//!   message went into a mailbox here, `Action: relayed` when the next hop
//!   does not offer DSN. A next hop that offers DSN gets the parameters
//!   instead ([`remote`]) and reports itself. The report is queued in the
//!   same store transaction that marks the recipients delivered.
//! - No delay reports (`NOTIFY=DELAY` is taken, and nothing is sent), as
//!   Postfix with its default `delay_warning_time = 0`.
//!
//! ## Return-Path
//!
//! The copy that goes into the mailboxes starts with `Return-Path:
//! <sender>` (`<>` for the null sender; RFC 5321 4.4: the final delivery
//! records the envelope sender). The queued blob, and what is relayed, stay
//! as received; all mailboxes of one delivery share one copy.

pub mod remote;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use store::{
    BodyType, DeliveryOptions, DsnReturn, LocalDelivery, NewQueuedMessage, QueuedMessage,
    QueuedRecipient, RecipientId, Store,
};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bounce::{self, Diagnostic};
use crate::policy::{self, Destination};
use crate::status::{EnhancedStatus, Remote, SmtpError};
use remote::RemoteAgent;

/// How long a claim keeps other queue managers off a recipient. Claimed
/// work starts at once (we claim no more than there are free delivery
/// slots), and local delivery takes milliseconds, so this only matters when
/// a process dies holding claims and that cannot be told from its lock
/// ([`store::Store::release_dead_claims`]): its mail waits this long, then
/// another (or the restarted) queue manager takes it.
const LEASE: Duration = Duration::from_secs(30);

/// How often the queue manager looks for claims of processes that are
/// gone ([`store::Store::release_dead_claims`]); at start-up, always.
const DEAD_CLAIMS_EVERY: Duration = Duration::from_secs(5);

/// Wakes the queue manager when new mail is queued.
#[derive(Clone, Default)]
pub struct QueueHandle {
    notify: Arc<Notify>,
}

impl QueueHandle {
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

pub struct QueueManager {
    store: Store,
    config: Arc<Config>,
    handle: QueueHandle,
}

impl QueueManager {
    pub fn new(store: Store, config: Arc<Config>, handle: QueueHandle) -> QueueManager {
        QueueManager {
            store,
            config,
            handle,
        }
    }

    /// Runs until `shutdown`; deliveries in progress then finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let concurrency = self.config.queue.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let deliveries = TaskTracker::new();
        let remote = Arc::new(RemoteAgent::new(&self.config));
        // Deferred mail becomes due without a wake-up; look regularly, and
        // at least as often as the shortest backoff.
        let poll = Duration::from_secs(self.config.queue.min_backoff_secs.clamp(1, 5));
        // Claims left by a process that died (this one before a `kill -9`,
        // or another on the data dir) are taken back now, and then every
        // `DEAD_CLAIMS_EVERY`, instead of when their lease ends.
        let mut dead_claims_checked: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if dead_claims_checked.is_none_or(|at| at.elapsed() >= DEAD_CLAIMS_EVERY) {
                dead_claims_checked = Some(tokio::time::Instant::now());
                match self.store.release_dead_claims().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        recipients = n,
                        "queue: took back the claims of a process that is gone"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot release the claims of dead processes")
                    }
                }
            }
            // Wait for a free slot, then claim no more than can start now.
            let Ok(first) = slots.clone().acquire_owned().await else {
                break;
            };
            let free = slots.available_permits() + 1;
            let now = chrono::Utc::now().timestamp();
            let claimed = match self.store.claim_due(now, LEASE, free).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the queue");
                    Vec::new()
                }
            };
            // Fewer than asked for: everything due then is claimed, and
            // what is queued since wakes the manager (the wake-up is kept
            // for it if it is not waiting yet), so it waits instead of
            // claiming again at once (a write to the store per look).
            let busy = claimed.len() >= free;
            let mut first = Some(first);
            for message in claimed {
                let slot = match first.take() {
                    Some(slot) => slot,
                    None => match slots.clone().acquire_owned().await {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                };
                let store = self.store.clone();
                let config = self.config.clone();
                let remote = remote.clone();
                let handle = self.handle.clone();
                deliveries.spawn(async move {
                    // A report (bounce or success notice) it queued goes
                    // out now, not at the next look at the queue, as
                    // mail accepted over SMTP does.
                    if deliver(&store, &config, &remote, message).await {
                        handle.wake();
                    }
                    drop(slot);
                });
            }
            drop(first);
            remote.close_idle_sessions(false).await;
            if busy {
                continue;
            }
            tokio::select! {
                () = self.handle.notify.notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.cancelled() => {}
            }
        }
        deliveries.close();
        deliveries.wait().await;
        remote.close_idle_sessions(true).await;
        tracing::debug!("queue manager stopped");
    }
}

/// What became of the recipients a delivery pass could not deliver.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Try again later.
    temporary: Vec<(RecipientId, SmtpError)>,
    /// Never.
    permanent: Vec<(RecipientId, SmtpError)>,
    /// A delivery status notification was queued on the way.
    report_queued: bool,
}

impl Outcomes {
    /// Recipient `id` was not delivered, for `error`: deferred or bounced
    /// as the error says.
    pub fn failed(&mut self, id: RecipientId, error: SmtpError) {
        if error.temporary {
            self.temporary.push((id, error));
        } else {
            self.permanent.push((id, error));
        }
    }

    /// Notes that a report was queued, for the queue manager to wake.
    pub fn report_queued(&mut self) {
        self.report_queued = true;
    }
}

/// A local recipient whose quota has no room for the message: bounced,
/// not deferred, since the quota stays until its owner acts (Dovecot's
/// LMTP refuses such mail with `5.2.2` by default, `quota_full_tempfail =
/// no`).
fn mailbox_full() -> SmtpError {
    SmtpError::local(
        EnhancedStatus::permanent(2, 2),
        "mailbox full: the message exceeds the recipient's quota",
    )
}

/// The `Return-Path:` line local delivery puts on top (RFC 5321 4.4).
pub(crate) fn return_path(sender: &str) -> Vec<u8> {
    format!("Return-Path: <{sender}>\r\n").into_bytes()
}

/// Whether a recipient wants a failure report (no NOTIFY: yes).
fn wants_failure(recipient: &QueuedRecipient) -> bool {
    recipient.dsn.notify.is_none_or(|n| n.failure)
}

/// Whether a recipient asked for a success report.
pub(crate) fn wants_success(recipient: &QueuedRecipient) -> bool {
    recipient.dsn.notify.is_some_and(|n| n.success)
}

/// Delivers the claimed recipients of one message; true if that queued a
/// report (a bounce or a success notice).
async fn deliver(
    store: &Store,
    config: &Config,
    remote: &RemoteAgent,
    message: QueuedMessage,
) -> bool {
    let span = tracing::info_span!("delivery", queue_id = %message.id);
    let _enter = span.enter();
    let mut outcomes = Outcomes::default();
    let mut local: Vec<LocalDelivery> = Vec::new();
    let mut relay: Vec<(QueuedRecipient, String)> = Vec::new();
    for recipient in &message.recipients {
        match policy::classify(config, store, &recipient.address).await {
            Ok(Destination::Local(account)) => local.push(LocalDelivery {
                recipient: recipient.id,
                account: account.id,
                mailbox: "INBOX".to_string(),
            }),
            Ok(Destination::UnknownUser) => outcomes.failed(
                recipient.id,
                SmtpError::local(
                    EnhancedStatus::permanent(1, 1),
                    "user unknown in local recipient table",
                ),
            ),
            Ok(Destination::Remote { domain }) => relay.push((recipient.clone(), domain)),
            Ok(Destination::Unroutable) => outcomes.failed(
                recipient.id,
                SmtpError::local(
                    EnhancedStatus::permanent(1, 2),
                    "the domain cannot be routed",
                ),
            ),
            Err(e) => {
                tracing::warn!(recipient = %recipient.address, error = %e, "lookup failed");
                outcomes.failed(recipient.id, SmtpError::store(&e, "lookup"));
            }
        }
    }
    // A recipient whose quota has no room for the copy bounces now, so
    // that a success notice never names it; the store checks again as it
    // delivers (another delivery may have taken the room meanwhile).
    let copy_size = message.size + return_path(&message.sender).len() as u64;
    let mut fitting = Vec::with_capacity(local.len());
    for delivery in local {
        match store.quota(delivery.account).await {
            Ok(quota) if !quota.fits(copy_size, 1) => {
                outcomes.failed(delivery.recipient, mailbox_full());
            }
            // A failed lookup is the delivery's to report.
            _ => fitting.push(delivery),
        }
    }
    let local = fitting;
    if !local.is_empty() {
        let ids: Vec<RecipientId> = local.iter().map(|d| d.recipient).collect();
        let notice = delivered_notice(store, config, &message, &ids).await;
        let noticed = notice.is_some();
        let options = DeliveryOptions {
            prepend: return_path(&message.sender),
            notice,
        };
        match store.deliver_local_with(message.id, local, options).await {
            Ok(over_quota) => {
                let delivered = ids.len() - over_quota.len();
                if delivered > 0 {
                    tracing::info!(recipients = delivered, "delivered locally");
                }
                if noticed && delivered > 0 {
                    outcomes.report_queued();
                }
                for id in over_quota {
                    outcomes.failed(id, mailbox_full());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "local delivery failed; deferring");
                let error = SmtpError::store(&e, "local delivery");
                for id in ids {
                    outcomes.failed(id, error.clone());
                }
            }
        }
    }
    let mut raw = None;
    if !relay.is_empty() {
        // SMTP sessions take far longer than the claim's lease.
        let ids: Vec<RecipientId> = relay.iter().map(|(r, _)| r.id).collect();
        if let Err(e) = store.extend_lease(message.id, &ids, remote.lease()).await {
            tracing::warn!(error = %e, "cannot extend the lease; deferring");
            let error = SmtpError::store(&e, "queue");
            for id in ids {
                outcomes.failed(id, error.clone());
            }
        } else {
            match store.queued_message_raw(message.id).await {
                Ok(bytes) => {
                    remote
                        .deliver(store, &message, &bytes, relay, &mut outcomes)
                        .await;
                    raw = Some(bytes);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the message; deferring");
                    let error = SmtpError::store(&e, "queue");
                    for id in ids {
                        outcomes.failed(id, error.clone());
                    }
                }
            }
        }
    }
    settle(store, config, &message, raw, outcomes).await
}

/// The success report for local recipients in `delivered` that asked for
/// one, if any did.
async fn delivered_notice(
    store: &Store,
    config: &Config,
    message: &QueuedMessage,
    delivered: &[RecipientId],
) -> Option<NewQueuedMessage> {
    let now = chrono::Utc::now().timestamp();
    let recipients: Vec<bounce::ReportedRecipient> = message
        .recipients
        .iter()
        .filter(|r| delivered.contains(&r.id) && wants_success(r))
        .map(|r| success_recipient(r, None, now))
        .collect();
    if recipients.is_empty() || message.sender.is_empty() {
        return None;
    }
    let raw = match store.queued_message_raw(message.id).await {
        Ok(raw) => raw,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the message for its success report");
            return None;
        }
    };
    report(
        &config.hostname,
        config.relay.bounce_size_limit,
        message,
        &raw,
        bounce::ReportKind::Success,
        &recipients,
        now,
    )
}

/// One recipient of a success report: delivered here, or (with the hop
/// that took it) relayed.
pub(crate) fn success_recipient(
    recipient: &QueuedRecipient,
    relayed_to: Option<&Remote>,
    now: i64,
) -> bounce::ReportedRecipient {
    bounce::ReportedRecipient {
        address: recipient.address.clone(),
        status: Some(EnhancedStatus::success(0, 0)),
        diagnostic: match relayed_to.and_then(|r| r.reply.as_ref()) {
            Some(reply) => Diagnostic::Smtp(reply.as_sent()),
            None => Diagnostic::None,
        },
        remote_mta: relayed_to.map(|r| r.mta.clone()),
        last_attempt: now,
        original_recipient: recipient.dsn.orcpt.clone(),
        relayed: relayed_to.is_some(),
        explanation: String::new(),
    }
}

/// Defers the temporary failures with backoff (or fails them once the
/// message is too old) and bounces the permanent ones, with one delivery
/// status notification for all of them. True if a report was queued,
/// here or before (`outcomes`).
async fn settle(
    store: &Store,
    config: &Config,
    message: &QueuedMessage,
    raw: Option<Arc<Vec<u8>>>,
    mut outcomes: Outcomes,
) -> bool {
    let now = chrono::Utc::now().timestamp();
    if retry::expired(&config.queue, message.received_at, now) {
        for (id, error) in std::mem::take(&mut outcomes.temporary) {
            outcomes.failed(id, error.expired(config.queue.max_lifetime_secs));
        }
    }
    for (id, error) in &outcomes.temporary {
        let attempts = message
            .recipients
            .iter()
            .find(|r| r.id == *id)
            .map_or(0, |r| r.attempts)
            + 1;
        let delay = retry::backoff_secs(&config.queue, attempts);
        let next = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        tracing::info!(recipient = %id, %error, attempts, delay, "deferred");
        if let Err(e) = store
            .defer(message.id, &[*id], &error.to_string(), next)
            .await
        {
            tracing::error!(error = %e, "cannot defer");
        }
    }
    if outcomes.permanent.is_empty() {
        return outcomes.report_queued;
    }
    for (id, error) in &outcomes.permanent {
        tracing::warn!(recipient = %id, %error, "delivery failed permanently");
    }
    // Only recipients whose NOTIFY asks for failures are reported.
    let reported: Vec<(RecipientId, SmtpError)> = outcomes
        .permanent
        .iter()
        .filter(|(id, _)| {
            message
                .recipients
                .iter()
                .find(|r| r.id == *id)
                .is_some_and(wants_failure)
        })
        .cloned()
        .collect();
    let report = if message.sender.is_empty() || reported.is_empty() {
        // Never a bounce for a bounce (RFC 5321 6.1).
        None
    } else {
        let raw = match raw {
            Some(raw) => Some(raw),
            None => store.queued_message_raw(message.id).await.ok(),
        };
        raw.and_then(|raw| report_for(config, message, &raw, &reported, now))
    };
    let failures = outcomes
        .permanent
        .into_iter()
        .map(|(id, error)| (id, error.to_string()))
        .collect();
    let report_queued = outcomes.report_queued;
    match store.bounce_with_report(message.id, failures, report).await {
        Ok(Some(id)) => {
            tracing::info!(report = %id, "bounce queued");
            true
        }
        Ok(None) => report_queued,
        Err(e) => {
            tracing::error!(error = %e, "cannot record bounce");
            report_queued
        }
    }
}

/// The failure report for `failed`, queued from `<>` to the message's
/// sender.
fn report_for(
    config: &Config,
    message: &QueuedMessage,
    raw: &[u8],
    failed: &[(RecipientId, SmtpError)],
    now: i64,
) -> Option<NewQueuedMessage> {
    let recipients: Vec<bounce::ReportedRecipient> = failed
        .iter()
        .filter_map(|(id, error)| {
            let recipient = message.recipients.iter().find(|r| r.id == *id)?;
            // The server's own reply when one decided (`smtp;`), else our
            // reason.
            let diagnostic = match error.reply() {
                Some(reply) => Diagnostic::Smtp(reply.as_sent()),
                None => Diagnostic::Local(error.reason.clone()),
            };
            Some(bounce::ReportedRecipient {
                address: recipient.address.clone(),
                status: Some(error.status.clone()),
                diagnostic,
                remote_mta: error.remote.as_ref().map(|r| r.mta.clone()),
                last_attempt: now,
                original_recipient: recipient.dsn.orcpt.clone(),
                relayed: false,
                explanation: error.reason.clone(),
            })
        })
        .collect();
    report(
        &config.hostname,
        config.relay.bounce_size_limit,
        message,
        raw,
        bounce::ReportKind::Failure,
        &recipients,
        now,
    )
}

/// A report of `kind` about `recipients` of `message` (whose bytes are
/// `raw`), ready to queue from `<>` to its sender; `None` for the null
/// sender.
pub(crate) fn report(
    reporting_mta: &str,
    return_limit: usize,
    message: &QueuedMessage,
    raw: &[u8],
    kind: bounce::ReportKind,
    recipients: &[bounce::ReportedRecipient],
    now: i64,
) -> Option<NewQueuedMessage> {
    let queue_id = message.id.to_string();
    let dsn = bounce::build(&bounce::Report {
        kind,
        reporting_mta,
        queue_id: &queue_id,
        arrival: message.received_at,
        sender: &message.sender,
        envid: message.dsn_envid.as_deref(),
        headers_only: message.dsn_ret == Some(DsnReturn::Headers),
        recipients,
        original: raw,
        return_limit,
        now,
    })?;
    let eight_bit = dsn.iter().any(|&b| b >= 0x80);
    Some(NewQueuedMessage {
        raw: dsn,
        sender: String::new(),
        recipients: vec![message.sender.clone()],
        auth_user: None,
        body_type: if eight_bit {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        },
        smtputf8: !message.sender.is_ascii(),
        received_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::Reply;
    use store::RecipientState;

    fn queued(recipients: &[&str]) -> QueuedMessage {
        QueuedMessage {
            id: store::QueueId(7),
            sender: "alice@example.com".into(),
            auth_user: None,
            body_type: BodyType::SevenBit,
            smtputf8: false,
            size: 0,
            received_at: 1_763_700_000,
            dsn_ret: None,
            dsn_envid: None,
            recipients: recipients
                .iter()
                .zip(1..)
                .map(|(address, id)| QueuedRecipient {
                    id: RecipientId(id),
                    address: address.to_string(),
                    state: RecipientState::Pending,
                    attempts: 0,
                    next_attempt_at: 0,
                    last_error: None,
                    leased_until: 0,
                    dsn: Default::default(),
                })
                .collect(),
        }
    }

    /// The report takes each failure's status and words as handed over:
    /// the server's reply as `smtp;` with the host that said it, our own
    /// reason as `X-Postern;`, and a temporary failure that outlived the
    /// queue with its last status and no server.
    #[test]
    fn failure_reports_carry_the_errors_as_given() {
        let message = queued(&["bob@example.org", "carol@example.net", "dave@example.com"]);
        let refused = Reply {
            code: 550,
            text: "5.1.1 no such user".into(),
        };
        let busy = Reply {
            code: 451,
            text: "try later".into(),
        };
        let failed = vec![
            (
                RecipientId(1),
                SmtpError::from_reply("mx.example.org", &refused, "refused at RCPT".into()),
            ),
            (
                RecipientId(2),
                SmtpError::local(
                    EnhancedStatus::permanent(1, 2),
                    "the domain cannot be routed",
                ),
            ),
            (
                RecipientId(3),
                SmtpError::from_reply("mx.example.com", &busy, "busy at RCPT".into())
                    .expired(432_000),
            ),
        ];
        let report = report_for(
            &Config::default(),
            &message,
            b"Subject: hi\r\n\r\nhello\r\n",
            &failed,
            1_763_800_000,
        )
        .expect("a report for a sender");
        assert_eq!(report.recipients, vec!["alice@example.com".to_string()]);
        let text = String::from_utf8(report.raw).unwrap().replace("\r\n ", " ");
        assert!(
            text.contains(
                "Status: 5.1.1\r\nRemote-MTA: dns; mx.example.org\r\n\
                 Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Status: 5.1.2\r\nDiagnostic-Code: X-Postern; the domain cannot be routed\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Status: 4.0.0\r\nDiagnostic-Code: X-Postern; busy at RCPT; message expired \
                 after 432000 s in the queue\r\n"
            ),
            "{text}"
        );
    }
}
