//! The queue manager: takes due work from the store's queue and hands each
//! recipient to a delivery agent.
//!
//! Only this module moves mail out of the queue (the store writes it; smtpd
//! sessions only add to it). Work is claimed with a lease
//! ([`store::Store::claim_due`]), so two processes on one data dir never
//! deliver the same recipient at once, and a process that dies lets its
//! lease run out for another to retry.
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

use crate::bounce;
use crate::policy::{self, Destination};
use remote::RemoteAgent;

/// How long a claim keeps other queue managers off a recipient. Claimed
/// work starts at once (we claim no more than there are free delivery
/// slots), and local delivery takes milliseconds, so this only matters when
/// a process dies holding claims: its mail waits this long, then another
/// (or the restarted) queue manager takes it.
const LEASE: Duration = Duration::from_secs(30);

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
        while !shutdown.is_cancelled() {
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
            let busy = !claimed.is_empty();
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

/// The remote server behind an outcome, as a report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The host by the name it was reached by (its address, for a hop
    /// given as one): `Remote-MTA: dns; …`.
    pub mta: String,
    /// Its reply on one line (`550 5.1.1 …`), when a reply decided:
    /// `Diagnostic-Code: smtp; …`.
    pub reply: Option<String>,
}

/// A recipient that failed for good.
#[derive(Debug, Clone)]
struct Failed {
    id: RecipientId,
    /// Enhanced status and reason, for the queue's last error and the log.
    error: String,
    remote: Option<Remote>,
}

/// What became of the recipients a delivery pass could not deliver.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Try again later: (recipient, enhanced status and reason).
    temporary: Vec<(RecipientId, String)>,
    /// Never.
    permanent: Vec<Failed>,
    /// A delivery status notification was queued on the way.
    report_queued: bool,
}

impl Outcomes {
    pub fn temporary(&mut self, id: RecipientId, error: String) {
        self.temporary.push((id, error));
    }

    /// `error` is the enhanced status and reason; `remote` the server that
    /// said so, if one did.
    pub fn permanent(&mut self, id: RecipientId, error: String, remote: Option<Remote>) {
        self.permanent.push(Failed { id, error, remote });
    }

    /// Notes that a report was queued, for the queue manager to wake.
    pub fn report_queued(&mut self) {
        self.report_queued = true;
    }
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
            Ok(Destination::UnknownUser) => outcomes.permanent(
                recipient.id,
                "5.1.1 user unknown in local recipient table".to_string(),
                None,
            ),
            Ok(Destination::Remote { domain }) => relay.push((recipient.clone(), domain)),
            Ok(Destination::Unroutable) => outcomes.permanent(
                recipient.id,
                "5.1.2 the domain cannot be routed".to_string(),
                None,
            ),
            Err(e) => {
                tracing::warn!(recipient = %recipient.address, error = %e, "lookup failed");
                outcomes.temporary(recipient.id, "4.3.0 temporary lookup failure".to_string());
            }
        }
    }
    if !local.is_empty() {
        let ids: Vec<RecipientId> = local.iter().map(|d| d.recipient).collect();
        let notice = delivered_notice(store, config, &message, &ids).await;
        let noticed = notice.is_some();
        let options = DeliveryOptions {
            prepend: return_path(&message.sender),
            notice,
        };
        match store.deliver_local_with(message.id, local, options).await {
            Ok(()) => {
                tracing::info!(recipients = ids.len(), "delivered locally");
                if noticed {
                    outcomes.report_queued();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "local delivery failed; deferring");
                for id in ids {
                    outcomes.temporary(id, "4.3.0 temporary local delivery failure".to_string());
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
            for id in ids {
                outcomes.temporary(id, "4.3.0 temporary queue failure".to_string());
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
                    for id in ids {
                        outcomes.temporary(id, "4.3.0 temporary queue failure".to_string());
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
        status: "2.0.0".to_string(),
        diagnostic: relayed_to.and_then(|r| r.reply.clone()).unwrap_or_default(),
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
            let error = format!(
                "{error}; message expired after {} s in the queue",
                config.queue.max_lifetime_secs
            );
            outcomes.permanent(id, error, None);
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
        if let Err(e) = store.defer(message.id, &[*id], error, next).await {
            tracing::error!(error = %e, "cannot defer");
        }
    }
    if outcomes.permanent.is_empty() {
        return outcomes.report_queued;
    }
    for failed in &outcomes.permanent {
        tracing::warn!(recipient = %failed.id, error = %failed.error, "delivery failed permanently");
    }
    // Only recipients whose NOTIFY asks for failures are reported.
    let reported: Vec<Failed> = outcomes
        .permanent
        .iter()
        .filter(|f| {
            message
                .recipients
                .iter()
                .find(|r| r.id == f.id)
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
        .map(|f| (f.id, f.error))
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
    failed: &[Failed],
    now: i64,
) -> Option<NewQueuedMessage> {
    let recipients: Vec<bounce::ReportedRecipient> = failed
        .iter()
        .filter_map(|failed| {
            let recipient = message.recipients.iter().find(|r| r.id == failed.id)?;
            let (status, reason) = split_status(&failed.error);
            // The server's own reply when one decided (`smtp;`), else our
            // reason.
            let diagnostic = failed
                .remote
                .as_ref()
                .and_then(|r| r.reply.clone())
                .unwrap_or_else(|| reason.to_string());
            Some(bounce::ReportedRecipient {
                address: recipient.address.clone(),
                status: status.to_string(),
                diagnostic,
                remote_mta: failed.remote.as_ref().map(|r| r.mta.clone()),
                last_attempt: now,
                original_recipient: recipient.dsn.orcpt.clone(),
                relayed: false,
                explanation: reason.to_string(),
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

/// `"5.1.1 user unknown"` → (`"5.1.1"`, `"user unknown"`); a text without
/// a status gets a generic permanent one.
fn split_status(error: &str) -> (&str, &str) {
    match error.split_once(' ') {
        Some((first, rest)) if crate::reply::is_enhanced_status(first) => (first, rest),
        _ => ("5.0.0", error),
    }
}
