//! DATA and BDAT: receiving the message and handing it to the queue.
//!
//! The reply to the end of data is sent only after the store has committed
//! and synced the message: a `250` here survives a crash. Mail for local
//! accounts only goes into their mailboxes in that same transaction
//! ([`store::Store::deliver_received`]); anything else is queued
//! ([`store::Store::enqueue_received`]) for the queue manager.

use common::config::BareNewline;
use common::rules::Stage;

use super::{Chunks, End, Session};
use crate::data::DataReceiver;
use crate::received::Trace;
use crate::reply::{self, Reply};

/// The warning a message gets when its bare line ends were made CRLF.
pub(crate) const BARE_NEWLINE_WARNING: &str = "bare line feeds made CRLF";

impl Session {
    /// What to do with a message with bare line ends: capture mode takes
    /// what apps send.
    fn bare_newline(&self) -> BareNewline {
        if self.capturing() {
            BareNewline::Normalize
        } else {
            self.ctx.shared.config.smtp.bare_newline
        }
    }

    /// Checks that a message may start now; the error reply if not.
    fn message_allowed(&self, bdat: bool) -> Result<(), Reply> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(reply::bad_sequence("Need MAIL command"));
        };
        if tx.recipients.is_empty() {
            return Err(reply::no_valid_recipients());
        }
        if !bdat && tx.chunks.is_some() {
            return Err(reply::bad_sequence("DATA not allowed after BDAT"));
        }
        Ok(())
    }

    fn trace_header(&self) -> Vec<u8> {
        let (helo, esmtp) = match self.helo.as_ref() {
            Some(h) => (h.name.as_str(), h.esmtp),
            None => ("unknown", false),
        };
        let tls = self.tls_description();
        let (recipients, smtputf8): (&[String], bool) = match self.tx.as_ref() {
            Some(tx) => (&tx.recipients, tx.smtputf8),
            None => (&[], false),
        };
        Trace {
            helo,
            peer: self.peer.ip(),
            hostname: &self.ctx.shared.config.hostname,
            esmtp,
            tls: tls.as_deref(),
            authenticated: self.auth_user.is_some(),
            smtputf8,
            recipients,
            date: chrono::Utc::now(),
        }
        .header()
    }

    pub(super) async fn data(&mut self) -> Result<(), End> {
        if let Err(reply) = self.message_allowed(false) {
            self.reply(reply);
            return Ok(());
        }
        self.reply(reply::start_data());
        let max =
            usize::try_from(self.ctx.shared.config.smtp.max_message_size).unwrap_or(usize::MAX);
        let mut receiver = DataReceiver::new(self.trace_header(), max);
        let timeout = self.data_timeout();
        loop {
            let progress = receiver.ingest(self.io.unread());
            self.io.consume(progress.consumed);
            if progress.done {
                break;
            }
            self.io.fill(timeout, false).await?;
        }
        if receiver.too_big {
            self.record.client_note("[message over the size limit]");
            self.tx = None;
            self.reply(reply::message_too_big());
        } else {
            let eight_bit = receiver.eight_bit;
            let message = receiver.into_message();
            self.record
                .client_note(&format!("[message: {} octets]", message.len()));
            self.finish(message, eight_bit).await;
        }
        Ok(())
    }

    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Result<(), End> {
        // The chunk's bytes follow the command whatever we answer; read them
        // all to stay in step with the client.
        let refusal = self.message_allowed(true).err();
        let max =
            usize::try_from(self.ctx.shared.config.smtp.max_message_size).unwrap_or(usize::MAX);
        if refusal.is_none() {
            let header = self.trace_header();
            if let Some(tx) = self.tx.as_mut() {
                tx.chunks.get_or_insert(Chunks {
                    message: header,
                    received: 0,
                    too_big: false,
                });
            }
        }
        let timeout = self.data_timeout();
        let mut remaining = size;
        while remaining > 0 {
            if self.io.unread().is_empty() {
                self.io.fill(timeout, false).await?;
            }
            let bytes = self.io.unread();
            let take = remaining.min(bytes.len());
            let bytes = &bytes[..take];
            if refusal.is_none() {
                if let Some(chunks) = self.tx.as_mut().and_then(|tx| tx.chunks.as_mut()) {
                    // SIZE counts the client's octets, not our Received
                    // line (RFC 1870 6): one over the limit is refused,
                    // and nothing more is kept.
                    chunks.received = chunks.received.saturating_add(take as u64);
                    if chunks.received > max as u64 {
                        if !chunks.too_big {
                            chunks.too_big = true;
                            chunks.message = Vec::new();
                        }
                    } else {
                        chunks.message.extend_from_slice(bytes);
                    }
                }
            }
            self.io.consume(take);
            remaining -= take;
        }
        if let Some(refusal) = refusal {
            self.reply(refusal);
            return Ok(());
        }
        let too_big = self
            .tx
            .as_ref()
            .and_then(|tx| tx.chunks.as_ref())
            .is_some_and(|c| c.too_big);
        if !last {
            if too_big {
                self.reply(reply::message_too_big());
            } else {
                self.reply(reply::chunk_received(size));
            }
            return Ok(());
        }
        let chunks = self
            .tx
            .as_mut()
            .and_then(|tx| tx.chunks.take())
            .unwrap_or_default();
        if chunks.too_big {
            self.tx = None;
            self.reply(reply::message_too_big());
            return Ok(());
        }
        let eight_bit = chunks.message.iter().any(|&b| b >= 0x80);
        self.finish(chunks.message, eight_bit).await;
        Ok(())
    }

    /// Checks the whole message, queues it durably and answers. DATA and
    /// BDAT both end here, so both get the same checks.
    async fn finish(&mut self, raw: Vec<u8>, eight_bit: bool) {
        let Some(mut tx) = self.tx.take() else {
            self.reply(reply::bad_sequence("Need MAIL command"));
            return;
        };
        let mut raw = raw;
        if let Some(bare) = crate::data::bare_line_end(&raw) {
            if self.bare_newline() == BareNewline::Reject {
                tracing::info!(?bare, "message with bare newline rejected");
                self.reply(reply::bare_newline());
                return;
            }
            tracing::info!(?bare, "bare newlines in message made CRLF");
            raw = crate::data::normalize_line_ends(&raw);
            tx.warnings.push(BARE_NEWLINE_WARNING.to_string());
        }
        let mut body_type = tx.body_type;
        if eight_bit && body_type == store::BodyType::SevenBit {
            // RFC 6152 lets us refuse; Postfix accepts and treats it as 8-bit.
            tracing::info!(sender = %tx.sender, "8-bit data declared as 7BIT; treated as 8BITMIME");
            body_type = store::BodyType::EightBitMime;
        }
        let hops = crate::received::hop_count(&raw);
        if hops > self.ctx.shared.config.relay.max_received_headers {
            // As Postfix: refused at the end of DATA, so the client's own
            // server bounces it; we make no backscatter.
            tracing::warn!(sender = %tx.sender, hops, "mail loop: too many Received headers");
            self.reply(reply::too_many_hops(hops));
            return;
        }
        // The last word before the queue: a refused or dropped message is
        // not stored.
        let verdict = self.rule_verdict(Stage::Data, Some(&tx.sender), &tx.recipients);
        if self.apply_rules(verdict).await {
            return;
        }
        let size = raw.len();
        let message = store::NewQueuedMessage {
            raw,
            sender: tx.sender,
            recipients: tx.recipients,
            auth_user: self.auth_user.clone(),
            body_type,
            smtputf8: tx.smtputf8,
            received_at: chrono::Utc::now().timestamp(),
        };
        let any_recipient_dsn = tx
            .recipient_dsn
            .iter()
            .any(|r| *r != store::RecipientDsn::default());
        let dsn = store::DsnRequest {
            ret: tx.dsn_ret,
            envid: tx.dsn_envid,
            recipients: if any_recipient_dsn {
                tx.recipient_dsn
            } else {
                Vec::new()
            },
        };
        let recipients = message.recipients.len();
        let envelope = store::NewEnvelope {
            session: self.record.id,
            session_start: self.record.start.clone(),
            mail_from: message.sender.clone(),
            mail_params: tx.mail_params,
            recipients: message
                .recipients
                .iter()
                .zip(tx.recipient_params)
                .map(|(address, params)| store::EnvelopeRecipient {
                    address: address.clone(),
                    params,
                })
                .collect(),
            helo: self.helo.as_ref().map(|h| h.name.clone()),
            tls: self.tls_description(),
            auth_user: self.auth_user.clone(),
            warnings: tx.warnings,
        };
        if self.capturing() {
            return self.capture(message, envelope).await;
        }
        if let Some(accounts) = self.direct_delivery(&tx.recipient_accounts, &dsn) {
            return self.deliver_at_once(message, dsn, envelope, accounts).await;
        }
        match self
            .ctx
            .shared
            .store
            .enqueue_received(message, dsn, envelope)
            .await
        {
            Ok((id, session)) => {
                tracing::info!(queue_id = %id, size, recipients, "message queued");
                self.record.id = Some(session);
                self.ctx.queue.wake();
                self.reply(reply::queued(id));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not queue message");
                self.reply(reply::store_failure(&e));
            }
        }
    }

    /// The recipients' accounts, if the message goes into their
    /// mailboxes at once rather than through the queue: every recipient
    /// is local, none asked for a success report (the queue manager writes
    /// those), and the configuration allows it.
    fn direct_delivery(
        &self,
        accounts: &[Option<store::AccountId>],
        dsn: &store::DsnRequest,
    ) -> Option<Vec<store::AccountId>> {
        if !self.ctx.shared.config.queue.direct_local_delivery
            || dsn
                .recipients
                .iter()
                .any(|r| r.notify.is_some_and(|n| n.success))
        {
            return None;
        }
        accounts.iter().copied().collect()
    }

    /// Local mail delivered at once: `250` once it is in the mailboxes
    /// (or, if an account went away since RCPT, in the queue).
    async fn deliver_at_once(
        &mut self,
        message: store::NewQueuedMessage,
        dsn: store::DsnRequest,
        envelope: store::NewEnvelope,
        accounts: Vec<store::AccountId>,
    ) {
        let (size, recipients) = (message.raw.len(), message.recipients.len());
        let return_path = crate::queue::return_path(&message.sender);
        match self
            .ctx
            .shared
            .store
            .deliver_received(message, dsn, envelope, accounts, return_path)
            .await
        {
            Ok(received) => {
                if received.delivered {
                    tracing::info!(queue_id = %received.queue, size, recipients, "message delivered");
                } else {
                    tracing::info!(queue_id = %received.queue, size, recipients, "message queued");
                    self.ctx.queue.wake();
                }
                self.record.id = Some(received.session);
                self.reply(reply::queued(received.queue));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not deliver message");
                self.reply(reply::store_failure(&e));
            }
        }
    }

    /// Capture mode: the message goes straight into each recipient's
    /// mailbox (no queue, never relayed), with a `Return-Path:` as final
    /// delivery writes it; `250` once that is committed.
    async fn capture(
        &mut self,
        mut message: store::NewQueuedMessage,
        envelope: store::NewEnvelope,
    ) {
        let mut raw = crate::queue::return_path(&message.sender);
        raw.extend_from_slice(&message.raw);
        message.raw = raw;
        let (size, recipients) = (message.raw.len(), message.recipients.len());
        match self.ctx.shared.store.capture(message, envelope).await {
            Ok((arrivals, session)) => {
                tracing::info!(?arrivals, size, recipients, "message captured");
                self.record.id = Some(session);
                self.reply(reply::captured(&arrivals));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not capture message");
                self.reply(reply::store_failure(&e));
            }
        }
    }
}
