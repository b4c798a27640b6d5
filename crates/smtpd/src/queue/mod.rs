//! The queue manager: takes due work from the store's queue and hands each
//! recipient to a delivery agent.
//!
//! Only this module moves mail out of the queue (the store writes it; smtpd
//! sessions only add to it). Work is claimed with a lease
//! ([`store::Store::claim_due`]), so two processes on one data dir never
//! deliver the same recipient at once, and a process that dies lets its
//! lease run out for another to retry.
//!
//! Delivery agents in this release: local (into the account's INBOX).
//! A recipient that is no longer local (account deleted after the message
//! was accepted) fails permanently; a store error defers it with backoff.

pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use store::{LocalDelivery, QueuedMessage, RecipientId, Store};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::policy::{self, Destination};

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
                deliveries.spawn(async move {
                    deliver(&store, &config, message).await;
                    drop(slot);
                });
            }
            drop(first);
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
        tracing::debug!("queue manager stopped");
    }
}

/// Delivers the claimed recipients of one message.
async fn deliver(store: &Store, config: &Config, message: QueuedMessage) {
    let span = tracing::info_span!("delivery", queue_id = %message.id);
    let _enter = span.enter();
    let mut local = Vec::new();
    let mut failed: Vec<(RecipientId, String)> = Vec::new();
    let mut retry: Vec<RecipientId> = Vec::new();
    for recipient in &message.recipients {
        match policy::classify(config, store, &recipient.address).await {
            Ok(Destination::Local(account)) => local.push(LocalDelivery {
                recipient: recipient.id,
                account: account.id,
                mailbox: "INBOX".to_string(),
            }),
            Ok(Destination::UnknownUser) => failed.push((
                recipient.id,
                "5.1.1 user unknown in local recipient table".to_string(),
            )),
            Ok(Destination::Remote { .. } | Destination::Unroutable) => failed.push((
                recipient.id,
                "5.4.4 no route to a non-local domain (relaying is not enabled)".to_string(),
            )),
            Err(e) => {
                tracing::warn!(recipient = %recipient.address, error = %e, "lookup failed");
                retry.push(recipient.id);
            }
        }
    }
    if !local.is_empty() {
        let ids: Vec<RecipientId> = local.iter().map(|d| d.recipient).collect();
        match store.deliver_local(message.id, local).await {
            Ok(()) => tracing::info!(recipients = ids.len(), "delivered locally"),
            Err(e) => {
                tracing::warn!(error = %e, "local delivery failed; deferring");
                retry.extend(ids);
            }
        }
    }
    if !failed.is_empty() {
        for (id, error) in &failed {
            tracing::warn!(recipient = %id, %error, "delivery failed permanently");
            if let Err(e) = store.bounce(message.id, &[*id], error).await {
                tracing::error!(error = %e, "cannot record bounce");
            }
        }
    }
    if !retry.is_empty() {
        defer(
            store,
            config,
            &message,
            &retry,
            "4.3.0 temporary local delivery failure",
        )
        .await;
    }
}

/// Defers recipients with backoff, or bounces them once the message is too
/// old.
async fn defer(
    store: &Store,
    config: &Config,
    message: &QueuedMessage,
    ids: &[RecipientId],
    error: &str,
) {
    let now = chrono::Utc::now().timestamp();
    if retry::expired(&config.queue, message.received_at, now) {
        let error = format!(
            "{error}; message expired after {} s in the queue",
            config.queue.max_lifetime_secs
        );
        if let Err(e) = store.bounce(message.id, ids, &error).await {
            tracing::error!(error = %e, "cannot record bounce");
        }
        return;
    }
    for id in ids {
        let attempts = message
            .recipients
            .iter()
            .find(|r| r.id == *id)
            .map_or(0, |r| r.attempts)
            + 1;
        let delay = retry::backoff_secs(&config.queue, attempts);
        let next = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        if let Err(e) = store.defer(message.id, &[*id], error, next).await {
            tracing::error!(error = %e, "cannot defer");
        }
    }
}
