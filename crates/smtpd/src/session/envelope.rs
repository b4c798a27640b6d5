//! MAIL and RCPT: the envelope.
//!
//! The DSN parameters (RFC 3461) arrive parsed and checked
//! ([`crate::dsn`]) beside what smtp-proto made of the rest of the line.

use common::rules::Stage;
use smtp_proto::{MailFrom, RcptTo};

use super::{Session, Transaction};
use crate::dsn::Params;
use crate::policy::{self, Verdict};
use crate::reply;

/// MAIL parameters we accept; anything else smtp-proto recognised belongs to
/// an extension we do not advertise (the DSN ones never reach it).
const UNSUPPORTED_MAIL_FLAGS: u64 = smtp_proto::MAIL_REQUIRETLS
    | smtp_proto::MAIL_CONPERM
    | smtp_proto::MAIL_BY_NOTIFY
    | smtp_proto::MAIL_BY_RETURN
    | smtp_proto::MAIL_BY_TRACE;

impl Session {
    pub(super) async fn mail(&mut self, from: MailFrom<String>, params: Params) {
        if self.helo.is_none() {
            return self.reply(reply::bad_sequence("Send HELO/EHLO first"));
        }
        if self.tx.is_some() {
            return self.reply(reply::bad_sequence("Nested MAIL command"));
        }
        self.record.keep = true;
        // Capture mode takes mail from apps as they are configured, with
        // or without a login.
        if self.role.is_submission() && self.auth_user.is_none() && !self.capturing() {
            return self.reply(reply::auth_required());
        }
        if let Some(error) = params.error {
            return self.reply(error);
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.reply(reply::unsupported_parameter("BODY=BINARYMIME"));
        }
        if from.flags & UNSUPPORTED_MAIL_FLAGS != 0
            || from.trans_id.is_some()
            || from.mtrk.is_some()
            || from.solicit.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.by != 0
            || from.mt_priority != 0
        {
            return self.reply(reply::unsupported_parameter("(extension not offered)"));
        }
        let max = self.ctx.shared.config.smtp.max_message_size;
        if from.size as u64 > max {
            return self.reply(reply::message_too_big());
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !from.address.is_ascii() && !smtputf8 {
            return self.reply(reply::smtputf8_required());
        }
        if let Some(login) = self.auth_user.as_deref().filter(|_| !self.capturing()) {
            if self.ctx.shared.config.relay.require_sender_login_match {
                let ctx = &self.ctx;
                match policy::sender_matches_login(
                    &ctx.shared.config,
                    &ctx.shared.store,
                    login,
                    &from.address,
                )
                .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(sender = %from.address, user = %login, "sender not owned by the login");
                        return self.reply(reply::sender_login_mismatch(&from.address, login));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "sender lookup failed");
                        return self.reply(reply::store_failure(&e));
                    }
                }
            }
        }
        let body_type = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            store::BodyType::EightBitMime
        } else {
            store::BodyType::SevenBit
        };
        let verdict = self.rule_verdict(Stage::Mail, Some(&from.address), &[]);
        if self.apply_rules(verdict).await {
            return;
        }
        tracing::debug!(sender = %from.address, "MAIL");
        self.tx = Some(Transaction {
            sender: from.address,
            body_type,
            smtputf8,
            dsn_ret: params.ret,
            dsn_envid: params.envid,
            recipients: Vec::new(),
            recipient_dsn: Vec::new(),
            chunks: None,
            warnings: Vec::new(),
            mail_params: params.written,
            recipient_params: Vec::new(),
            recipient_accounts: Vec::new(),
        });
        self.reply(reply::sender_ok());
    }

    pub(super) async fn rcpt(&mut self, to: RcptTo<String>, params: Params) {
        // Named in a `rejected` event if this RCPT is refused.
        self.refusing_recipient = Some(to.address.clone());
        let Some(tx) = self.tx.as_ref() else {
            return self.reply(reply::bad_sequence("Need MAIL command"));
        };
        if tx.chunks.is_some() {
            return self.reply(reply::bad_sequence("RCPT not allowed during BDAT"));
        }
        if let Some(error) = params.error {
            return self.reply(error);
        }
        if to.orcpt.is_some() || to.flags != 0 || to.rrvs != 0 {
            return self.reply(reply::unsupported_parameter("(extension not offered)"));
        }
        if !to.address.is_ascii() && !tx.smtputf8 {
            return self.reply(reply::smtputf8_required());
        }
        // smtp-proto gives an empty address for `<postmaster>` and for
        // paths with no mailbox at all: `<>`, `<@a.test:>`, which RFC 5321
        // 4.1.2 does not allow in RCPT (Postfix: 501 5.1.3 Bad recipient
        // address syntax).
        let address = if to.address.is_empty() {
            let postmaster = params
                .mailbox
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(b"postmaster"));
            if !postmaster {
                return self.reply(reply::bad_recipient_address());
            }
            policy::bare_postmaster(&self.ctx.shared.config)
        } else {
            to.address
        };
        if tx.recipients.len() >= self.ctx.shared.config.smtp.max_recipients {
            return self.reply(reply::too_many_recipients());
        }
        let may_relay = self.auth_user.is_some() || self.trusted_network;
        let verdict = if self.capturing() {
            Ok(policy::capture_recipient(&address))
        } else {
            policy::check_recipient(
                &self.ctx.shared.config,
                &self.ctx.shared.store,
                &address,
                may_relay,
            )
            .await
        };
        let dsn = store::RecipientDsn {
            notify: params.notify,
            orcpt: params.orcpt,
        };
        let accepted = match &verdict {
            Ok(Verdict::Local(account)) => {
                tracing::debug!(recipient = %address, account = %account.address, "RCPT accepted");
                true
            }
            Ok(Verdict::Remote) => {
                tracing::debug!(recipient = %address, "RCPT accepted for relay");
                true
            }
            Ok(Verdict::Captured) => {
                tracing::debug!(recipient = %address, "RCPT accepted for capture");
                true
            }
            _ => false,
        };
        let account = match &verdict {
            Ok(Verdict::Local(account)) => Some(account.id),
            _ => None,
        };
        if let Some(id) = account {
            // A recipient with no room left is refused now, before the
            // client sends the message (as Dovecot's LMTP checks at RCPT).
            match self.ctx.shared.store.quota(id).await {
                Ok(quota) if quota.is_full() => {
                    tracing::info!(recipient = %address, "RCPT refused: mailbox full");
                    return self.reply(reply::mailbox_full(&address));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "quota lookup failed");
                    return self.reply(reply::store_failure(&e));
                }
            }
        }
        if accepted {
            if self
                .rcpt_refused_by_rule(std::slice::from_ref(&address))
                .await
            {
                return;
            }
            if let Some(tx) = self.tx.as_mut() {
                tx.recipients.push(address);
                tx.recipient_dsn.push(dsn);
                tx.recipient_params.push(params.written);
                tx.recipient_accounts.push(account);
            }
            return self.reply(reply::recipient_ok());
        }
        match verdict {
            Ok(Verdict::Local(_) | Verdict::Remote | Verdict::Captured) => {}
            Ok(Verdict::Unroutable) => self.reply(reply::unroutable(&address)),
            Ok(Verdict::UnknownUser) => self.reply(reply::unknown_user(&address)),
            Ok(Verdict::RelayDenied) => self.reply(reply::relay_denied(&address)),
            Err(e) => {
                tracing::error!(error = %e, "recipient lookup failed");
                self.reply(reply::store_failure(&e));
            }
        }
    }

    /// The rules at RCPT, for one recipient about to be accepted: true if
    /// a rule answered instead (only this recipient is refused) or hung up.
    async fn rcpt_refused_by_rule(&mut self, recipient: &[String]) -> bool {
        let sender = self.tx.as_ref().map(|tx| tx.sender.as_str());
        let verdict = self.rule_verdict(Stage::Rcpt, sender, recipient);
        self.apply_rules(verdict).await
    }
}
