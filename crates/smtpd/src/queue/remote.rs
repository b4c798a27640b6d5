//! The remote delivery agent: hands queued recipients on other domains to
//! their servers over SMTP.
//!
//! Recipients of one message are grouped by domain and routed
//! ([`crate::relay::route`]); domains whose routes are the same (one
//! smarthost, one transport entry, shared MX hosts) share one SMTP session
//! and one transaction. Hops are tried in order: a hop that cannot be
//! reached, or fails before the message was sent, passes the turn to the
//! next one, as Postfix walks its MX list.
//!
//! Sessions outlive a message: after a delivery the session waits
//! `connection_cache_secs` for the next message to the same host (and is
//! reused for at most `connection_reuse_secs`), as Postfix's connection
//! cache. A cached session the peer has closed meanwhile is replaced by a
//! new one before the message goes, so it costs no retry. At most
//! `max_sessions_per_destination` sessions per host are busy at once.
//!
//! What goes over the wire is decided per session, from what the server
//! offers:
//! - 8-bit content (whatever the client declared) goes as `BODY=8BITMIME`
//!   when offered; otherwise a 7-bit copy is made ([`crate::downgrade`])
//!   and sent without `SIZE=`, because its size differs. The stored
//!   original never changes.
//! - Mail that needs SMTPUTF8 (a non-ASCII address in this transaction, or
//!   raw UTF-8 in a header) to a server without SMTPUTF8 fails with 5.6.7
//!   (RFC 6531 3.2), never mangled.
//!
//! - DSN parameters (RFC 3461) go to a server that offers DSN; for one that
//!   does not, recipients that asked for success get an `Action: relayed`
//!   report from us.
//!
//! Each recipient the server accepted is marked delivered as soon as the
//! final reply says so, before anything else happens (with its success
//! report, if one is due, in the same store transaction), so a crash after
//! that never sends it twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::config::Config;
use store::{BodyType, QueuedMessage, QueuedRecipient, RecipientId, Store};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::Outcomes;
use crate::downgrade::{self, Needs};
use crate::relay::{
    describe_reply, BodyParam, Client, Envelope, Failure, Hop, RecipientResult, Router, Stage,
    Timeouts,
};
use crate::status::{EnhancedStatus, Remote, SmtpError};

/// An open session waiting in the cache.
struct Idle {
    client: Client,
    /// When the session was opened.
    opened: Instant,
    /// When it went idle.
    since: Instant,
}

/// What the remote agent keeps between deliveries.
pub struct RemoteAgent {
    /// `None` when `[relay]` could not make a resolver; remote mail is then
    /// deferred with this reason until the configuration is fixed.
    router: Result<Router, String>,
    timeouts: Timeouts,
    helo_name: String,
    per_destination: usize,
    /// One semaphore per hop address: `max_sessions_per_destination`.
    sessions: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Open sessions waiting for the next message to their hop, newest
    /// last, for `connection_cache_secs`.
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    cache_time: Duration,
    reuse_time: Duration,
    /// For success reports: our name (`Reporting-MTA`) and the returned
    /// size limit.
    reporting_mta: String,
    return_limit: usize,
    /// Stale cached sessions saying QUIT in the background (each bounded
    /// by the command timeout); waited for by the last
    /// [`RemoteAgent::close_idle_sessions`] at shutdown.
    quitting: TaskTracker,
}

impl RemoteAgent {
    pub fn new(config: &Config) -> RemoteAgent {
        let router = Router::new(&config.relay);
        if let Err(e) = &router {
            tracing::error!(error = %e, "remote delivery disabled: cannot set up routing");
        }
        RemoteAgent {
            router,
            timeouts: Timeouts::from_config(&config.relay),
            helo_name: config
                .relay
                .helo_name
                .clone()
                .unwrap_or_else(|| config.hostname.clone()),
            per_destination: config.relay.max_sessions_per_destination.max(1),
            sessions: Mutex::new(HashMap::new()),
            idle: Mutex::new(HashMap::new()),
            cache_time: Duration::from_secs(config.relay.connection_cache_secs),
            reuse_time: Duration::from_secs(config.relay.connection_reuse_secs),
            reporting_mta: config.hostname.clone(),
            return_limit: config.relay.bounce_size_limit,
            quitting: TaskTracker::new(),
        }
    }

    /// The session cache key: the same address reached the same way.
    fn hop_key(hop: &Hop) -> String {
        let user = hop.auth.as_ref().map(|(user, _)| user.as_str());
        format!("{}|{}|{:?}|{:?}", hop.addr, hop.host, hop.tls, user)
    }

    /// A cached session to `hop` that has not waited too long, and when it
    /// was opened.
    fn take_idle(&self, hop: &Hop) -> Option<(Client, Instant)> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = idle.get_mut(&Self::hop_key(hop))?;
        while let Some(entry) = waiting.pop() {
            if entry.since.elapsed() < self.cache_time {
                return Some((entry.client, entry.opened));
            }
            self.quitting.spawn(entry.client.quit());
        }
        None
    }

    /// Keeps `client` (opened at `opened`) for the next message to `hop`,
    /// or closes it.
    async fn put_idle(&self, hop: &Hop, client: Client, opened: Instant) {
        let keep = !self.cache_time.is_zero() && opened.elapsed() < self.reuse_time;
        let surplus = if keep {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let waiting = idle.entry(Self::hop_key(hop)).or_default();
            if waiting.len() < self.per_destination {
                waiting.push(Idle {
                    client,
                    opened,
                    since: Instant::now(),
                });
                None
            } else {
                Some(client)
            }
        } else {
            Some(client)
        };
        if let Some(client) = surplus {
            client.quit().await;
        }
    }

    /// Closes cached sessions that have waited `connection_cache_secs` (or
    /// all of them, at shutdown); the queue manager calls it between rounds.
    pub async fn close_idle_sessions(&self, all: bool) {
        let closing: Vec<Client> = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let mut closing = Vec::new();
            for waiting in idle.values_mut() {
                let (stale, fresh): (Vec<_>, Vec<_>) = std::mem::take(waiting)
                    .into_iter()
                    .partition(|e| all || e.since.elapsed() >= self.cache_time);
                *waiting = fresh;
                closing.extend(stale.into_iter().map(|e| e.client));
            }
            idle.retain(|_, waiting| !waiting.is_empty());
            closing
        };
        // A semaphore only the map holds has no session and no waiter: a
        // new one can stand in later, so the map stays as small as the set
        // of hosts in use.
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, slot| Arc::strong_count(slot) > 1);
        for client in closing {
            client.quit().await;
        }
        if all {
            self.quitting.close();
            self.quitting.wait().await;
        }
    }

    /// How long one hop's attempt may take at most, for the claim's lease
    /// (renewed before each hop): the connect, the replies before the
    /// message (greeting, EHLO, STARTTLS and EHLO again, MAIL/RCPT/DATA
    /// pipelined) and the final dot, with a margin for DNS and the store.
    pub fn lease(&self) -> Duration {
        let t = &self.timeouts;
        Duration::from_secs(10) + t.connect + t.command * 6 + t.data
    }

    fn slot(&self, hop: &Hop) -> Arc<Semaphore> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .entry(hop.addr.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
            .clone()
    }

    /// Delivers `recipients` (each with its domain) of `message`, whose
    /// bytes are `raw`. Delivered recipients are committed at once; the
    /// others land in `outcomes` for the caller to defer or bounce.
    pub async fn deliver(
        &self,
        store: &Store,
        message: &QueuedMessage,
        raw: &[u8],
        recipients: Vec<(QueuedRecipient, String)>,
        outcomes: &mut Outcomes,
    ) {
        let router = match &self.router {
            Ok(router) => router,
            Err(e) => {
                for (rcpt, _) in recipients {
                    outcomes.failed(
                        rcpt.id,
                        SmtpError::local(
                            EnhancedStatus::temporary(3, 5),
                            format!("remote delivery is not configured: {e}"),
                        ),
                    );
                }
                return;
            }
        };
        // Route each domain once, then put domains with the same hops
        // together: one session serves them all.
        let mut by_domain: HashMap<String, Vec<QueuedRecipient>> = HashMap::new();
        for (rcpt, domain) in recipients {
            by_domain.entry(domain).or_default().push(rcpt);
        }
        let mut groups: Vec<(Vec<Hop>, Vec<QueuedRecipient>)> = Vec::new();
        for (domain, rcpts) in by_domain {
            match router.route(&domain).await {
                Ok(hops) if !hops.is_empty() => match groups.iter_mut().find(|(h, _)| *h == hops) {
                    Some((_, group)) => group.extend(rcpts),
                    None => groups.push((hops, rcpts)),
                },
                Ok(_) => {
                    let error = SmtpError::local(
                        EnhancedStatus::temporary(4, 4),
                        format!("no route to {domain}"),
                    );
                    for r in rcpts {
                        outcomes.failed(r.id, error.clone());
                    }
                }
                Err(e) => {
                    let status = if e.is_temporary() {
                        EnhancedStatus::temporary(4, 3)
                    } else {
                        EnhancedStatus::permanent(1, 2)
                    };
                    let error = SmtpError::local(status, e.to_string());
                    for r in rcpts {
                        outcomes.failed(r.id, error.clone());
                    }
                }
            }
        }
        // smtpd marks 8-bit data 8BITMIME at receipt whatever the client
        // declared, so a 7-bit message needs no scan.
        let needs = if message.body_type == BodyType::SevenBit && !message.smtputf8 {
            Needs {
                eight_bit: false,
                smtputf8: false,
            }
        } else {
            downgrade::needs(raw)
        };
        for (hops, rcpts) in groups {
            self.deliver_group(store, message, raw, needs, &hops, rcpts, outcomes)
                .await;
        }
    }

    /// One group of recipients that share their hops.
    #[allow(clippy::too_many_arguments)]
    async fn deliver_group(
        &self,
        store: &Store,
        message: &QueuedMessage,
        raw: &[u8],
        needs: Needs,
        hops: &[Hop],
        rcpts: Vec<QueuedRecipient>,
        outcomes: &mut Outcomes,
    ) {
        let mut last_failure: Option<(Failure, &str)> = None;
        let ids: Vec<RecipientId> = rcpts.iter().map(|r| r.id).collect();
        for hop in hops {
            let slot = self.slot(hop);
            let Ok(_permit) = slot.acquire_owned().await else {
                return;
            };
            // Each hop gets a full lease: waiting for the slot or for
            // earlier hops must not let another claimer in.
            if let Err(e) = store.extend_lease(message.id, &ids, self.lease()).await {
                tracing::warn!(error = %e, "cannot extend the lease");
            }
            // A cached session first; if it turns out dead before the
            // message went out, once more on a new one.
            let mut cached = self.take_idle(hop);
            let failure = loop {
                let reused = cached.is_some();
                let (mut client, opened) = match cached.take() {
                    Some(cached) => cached,
                    None => match Client::connect(hop, &self.helo_name, &self.timeouts).await {
                        Ok(client) => (client, Instant::now()),
                        Err(failure) => break failure,
                    },
                };
                let result = self
                    .transaction(
                        store,
                        &mut client,
                        &hop.host,
                        message,
                        raw,
                        needs,
                        &rcpts,
                        outcomes,
                    )
                    .await;
                match result {
                    Ok(()) => {
                        self.put_idle(hop, client, opened).await;
                        return;
                    }
                    Err(failure)
                        if reused
                            && failure.is_temporary()
                            && !matches!(failure.stage, Stage::Body | Stage::EndOfData) =>
                    {
                        tracing::debug!(%failure, "cached session gone; opening a new one");
                        client.quit().await;
                    }
                    Err(failure) => {
                        client.quit().await;
                        break failure;
                    }
                }
            };
            // Nothing was sent: another hop may do better. A hop that
            // would not even talk to us is skipped whatever it said, as
            // Postfix's `smtp_skip_5xx_greeting`.
            let setup = matches!(
                failure.stage,
                Stage::Connect | Stage::Greeting | Stage::Ehlo | Stage::StartTls | Stage::Auth
            );
            let next_hop = setup || (failure.is_temporary() && failure.stage != Stage::EndOfData);
            tracing::info!(%failure, next_hop, "delivery attempt failed");
            last_failure = Some((failure, &hop.host));
            if !next_hop {
                break;
            }
        }
        let Some((failure, host)) = last_failure else {
            return;
        };
        // As Postfix: the host that said no, and what it said.
        let error = failure.to_error(host);
        for r in &rcpts {
            outcomes.failed(r.id, error.clone());
        }
    }

    /// One transaction on an open session. `Err` means the transaction as
    /// a whole failed and no recipient was settled.
    #[allow(clippy::too_many_arguments)]
    async fn transaction(
        &self,
        store: &Store,
        client: &mut Client,
        host: &str,
        message: &QueuedMessage,
        raw: &[u8],
        needs: Needs,
        rcpts: &[QueuedRecipient],
        outcomes: &mut Outcomes,
    ) -> Result<(), Failure> {
        let caps = client.capabilities().clone();
        let peer = client.peer().to_string();
        let remote = || {
            Some(Remote {
                mta: host.to_string(),
                reply: None,
            })
        };
        let addresses: Vec<String> = rcpts.iter().map(|r| r.address.clone()).collect();
        let utf8_addresses = !message.sender.is_ascii() || addresses.iter().any(|a| !a.is_ascii());
        let smtputf8 = utf8_addresses || needs.smtputf8;
        if smtputf8 && !caps.smtputf8 {
            let why = if utf8_addresses {
                "an address is not ASCII"
            } else {
                "a header field is not ASCII"
            };
            let error = SmtpError {
                remote: remote(),
                ..SmtpError::local(
                    EnhancedStatus::permanent(6, 7),
                    format!("host {peer} does not offer SMTPUTF8 and {why} (RFC 6531)"),
                )
            };
            for r in rcpts {
                outcomes.failed(r.id, error.clone());
            }
            return Ok(());
        }
        let seven_bit;
        let (body, size, bytes): (BodyParam, Option<u64>, &[u8]) = if !needs.eight_bit {
            (BodyParam::None, Some(raw.len() as u64), raw)
        } else if caps.eight_bit_mime || smtputf8 {
            // RFC 6531 servers take 8-bit mail with SMTPUTF8.
            (BodyParam::EightBitMime, Some(raw.len() as u64), raw)
        } else {
            match downgrade::to_seven_bit(raw) {
                Ok(copy) => {
                    tracing::info!(queue_id = %message.id, %peer, "8-bit message converted to 7-bit");
                    seven_bit = copy;
                    (BodyParam::None, None, &seven_bit[..])
                }
                Err(e) => {
                    let error = SmtpError {
                        remote: remote(),
                        ..SmtpError::local(
                            EnhancedStatus::permanent(6, 3),
                            format!("cannot convert the message to 7 bit for {peer}: {e}"),
                        )
                    };
                    for r in rcpts {
                        outcomes.failed(r.id, error.clone());
                    }
                    return Ok(());
                }
            }
        };
        let recipient_dsn: Vec<store::RecipientDsn> = rcpts.iter().map(|r| r.dsn.clone()).collect();
        let envelope = Envelope {
            sender: &message.sender,
            recipients: &addresses,
            body,
            smtputf8: smtputf8 && caps.smtputf8,
            size,
            ret: message.dsn_ret,
            envid: message.dsn_envid.as_deref(),
            recipient_dsn: &recipient_dsn,
        };
        let delivery = client.send(&envelope, bytes).await?;
        let mut delivered: Vec<RecipientId> = Vec::new();
        for (r, result) in rcpts.iter().zip(&delivery.recipients) {
            match (result, &delivery.data) {
                (RecipientResult::Rejected(reply), _) => outcomes.failed(
                    r.id,
                    SmtpError::from_reply(host, reply, describe_reply(&peer, reply, Stage::Rcpt)),
                ),
                (RecipientResult::Accepted, Some(reply)) if reply.is_positive() => {
                    delivered.push(r.id);
                }
                (RecipientResult::Accepted, Some(reply)) => outcomes.failed(
                    r.id,
                    SmtpError::from_reply(
                        host,
                        reply,
                        describe_reply(&peer, reply, delivery.data_stage),
                    ),
                ),
                (RecipientResult::Accepted, None) => outcomes.failed(
                    r.id,
                    SmtpError::local(
                        EnhancedStatus::temporary(4, 2),
                        format!("host {peer} ended the transaction"),
                    ),
                ),
            }
        }
        if !delivered.is_empty() {
            tracing::info!(queue_id = %message.id, %peer, recipients = delivered.len(), "relayed");
            // A hop with DSN reports success itself; for one without, we
            // say where the message went (RFC 3461 5.2.2: `relayed`).
            let notice = if caps.dsn {
                None
            } else {
                let accepted = Remote {
                    mta: host.to_string(),
                    reply: delivery.data.clone(),
                };
                self.relayed_notice(message, raw, rcpts, &delivered, &accepted)
            };
            let noticed = notice.is_some();
            // Settled first of all: a 250 must never be sent twice.
            match self
                .record_delivered(store, message, &delivered, notice)
                .await
            {
                Ok(()) if noticed => outcomes.report_queued(),
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "cannot record remote delivery"),
            }
        }
        Ok(())
    }

    /// Records recipients the hop accepted, trying again while the store
    /// fails for a reason that may pass (the database restarting, a lost
    /// connection): left unrecorded, they would be sent again once their
    /// claim ran out. Within the claim's lease, after which another queue
    /// manager may take them anyway. Marking is only done to recipients
    /// still open, so a try whose commit did land is harmless.
    async fn record_delivered(
        &self,
        store: &Store,
        message: &QueuedMessage,
        delivered: &[RecipientId],
        notice: Option<store::NewQueuedMessage>,
    ) -> store::Result<()> {
        let deadline = Instant::now() + self.lease();
        let mut pause = Duration::from_millis(100);
        loop {
            let result = store
                .mark_delivered_with_notice(message.id, delivered, notice.clone())
                .await;
            match result {
                Err(e) if e.is_temporary() && Instant::now() + pause < deadline => {
                    tracing::warn!(error = %e, "cannot record remote delivery yet; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// The `Action: relayed` report for the `delivered` recipients that
    /// asked for success, if any did.
    fn relayed_notice(
        &self,
        message: &QueuedMessage,
        raw: &[u8],
        rcpts: &[QueuedRecipient],
        delivered: &[RecipientId],
        accepted: &Remote,
    ) -> Option<store::NewQueuedMessage> {
        let now = chrono::Utc::now().timestamp();
        let recipients: Vec<_> = rcpts
            .iter()
            .filter(|r| delivered.contains(&r.id) && super::wants_success(r))
            .map(|r| super::success_recipient(r, Some(accepted), now))
            .collect();
        if recipients.is_empty() {
            return None;
        }
        super::report(
            &self.reporting_mta,
            self.return_limit,
            message,
            raw,
            crate::bounce::ReportKind::Success,
            &recipients,
            now,
        )
    }
}
