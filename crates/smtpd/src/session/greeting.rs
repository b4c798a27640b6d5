//! EHLO and HELO: who the client is, and what this server offers it.

use common::rules::Stage;

use super::{Helo, Session};
use crate::reply::Reply;

impl Session {
    pub(super) async fn ehlo(&mut self, host: String, esmtp: bool) {
        let verdict = self.rule_verdict(Stage::Helo, None, &[]);
        if self.apply_rules(verdict).await {
            return;
        }
        // RFC 5321 4.1.4: EHLO/HELO resets the transaction.
        self.tx = None;
        self.helo = Some(Helo { name: host, esmtp });
        let config = &self.ctx.shared.config;
        let first = format!(
            "{} Postern at your service, [{}]",
            config.hostname,
            self.peer.ip()
        );
        if !esmtp {
            self.reply(Reply::plain(250, first));
            return;
        }
        let mut lines = vec![
            first,
            "PIPELINING".to_string(),
            format!("SIZE {}", config.smtp.max_message_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "DSN".to_string(),
            "CHUNKING".to_string(),
        ];
        if self.offers_starttls() {
            lines.push("STARTTLS".to_string());
        }
        if self.offers_auth() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        lines.push("HELP".to_string());
        self.reply(Reply::multiline(250, None, lines));
    }

    pub(super) fn offers_starttls(&self) -> bool {
        !self.is_tls() && self.ctx.shared.tls.is_some()
    }

    /// AUTH is offered on the submission ports, once the connection is
    /// encrypted or plaintext logins are allowed for this client; in
    /// capture mode on every port, always.
    pub(super) fn offers_auth(&self) -> bool {
        if self.auth_user.is_some() {
            return false;
        }
        self.capturing()
            || self.role.is_submission() && self.login_state.plaintext_allowed(self.is_tls())
    }
}
