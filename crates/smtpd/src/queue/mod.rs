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

pub mod remote;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use store::{
    BodyType, LocalDelivery, NewQueuedMessage, QueuedMessage, QueuedRecipient, RecipientId, Store,
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
                deliveries.spawn(async move {
                    deliver(&store, &config, &remote, message).await;
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
    /// Try again later: (recipient, enhanced status and reason).
    temporary: Vec<(RecipientId, String)>,
    /// Never: (recipient, enhanced status and reason, the remote host that
    /// said so).
    permanent: Vec<(RecipientId, String, Option<String>)>,
}

impl Outcomes {
    pub fn temporary(&mut self, id: RecipientId, error: String) {
        self.temporary.push((id, error));
    }

    pub fn permanent(&mut self, id: RecipientId, error: String, remote_mta: Option<String>) {
        self.permanent.push((id, error, remote_mta));
    }
}

/// Delivers the claimed recipients of one message.
async fn deliver(store: &Store, config: &Config, remote: &RemoteAgent, message: QueuedMessage) {
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
        match store.deliver_local(message.id, local).await {
            Ok(()) => tracing::info!(recipients = ids.len(), "delivered locally"),
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
    settle(store, config, &message, raw, outcomes).await;
}

/// Defers the temporary failures with backoff (or fails them once the
/// message is too old) and bounces the permanent ones, with one delivery
/// status notification for all of them.
async fn settle(
    store: &Store,
    config: &Config,
    message: &QueuedMessage,
    raw: Option<Arc<Vec<u8>>>,
    mut outcomes: Outcomes,
) {
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
        return;
    }
    for (id, error, _) in &outcomes.permanent {
        tracing::warn!(recipient = %id, %error, "delivery failed permanently");
    }
    let report = if message.sender.is_empty() {
        // Never a bounce for a bounce (RFC 5321 6.1).
        None
    } else {
        let raw = match raw {
            Some(raw) => Some(raw),
            None => store.queued_message_raw(message.id).await.ok(),
        };
        raw.and_then(|raw| report_for(config, message, &raw, &outcomes.permanent, now))
    };
    let failures = outcomes
        .permanent
        .into_iter()
        .map(|(id, error, _)| (id, error))
        .collect();
    match store.bounce_with_report(message.id, failures, report).await {
        Ok(Some(id)) => tracing::info!(report = %id, "bounce queued"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot record bounce"),
    }
}

/// The delivery status notification for `failed`, queued from `<>` to the
/// message's sender.
fn report_for(
    config: &Config,
    message: &QueuedMessage,
    raw: &[u8],
    failed: &[(RecipientId, String, Option<String>)],
    now: i64,
) -> Option<NewQueuedMessage> {
    let recipients: Vec<bounce::FailedRecipient> = failed
        .iter()
        .filter_map(|(id, error, remote_mta)| {
            let address = message
                .recipients
                .iter()
                .find(|r| r.id == *id)?
                .address
                .clone();
            let (status, diagnostic) = split_status(error);
            Some(bounce::FailedRecipient {
                address,
                status: status.to_string(),
                diagnostic: diagnostic.to_string(),
                remote_mta: remote_mta.clone(),
                last_attempt: now,
            })
        })
        .collect();
    let queue_id = message.id.to_string();
    let dsn = bounce::build(&bounce::Report {
        kind: bounce::ReportKind::Failure,
        reporting_mta: &config.hostname,
        queue_id: &queue_id,
        arrival: message.received_at,
        sender: &message.sender,
        recipients: &recipients,
        original: raw,
        return_limit: config.relay.bounce_size_limit,
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
