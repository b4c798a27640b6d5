//! CAPA (RFC 2449), STLS (RFC 2595) and QUIT, which work in more than one
//! state.

use super::{store_code, End, Session, State};
use crate::protocol;

impl Session {
    /// The capabilities for the current state and connection.
    pub(super) fn capa(&mut self) {
        let before_login = matches!(self.state, State::Authorization { .. });
        let mut lines = vec!["TOP", "UIDL", "RESP-CODES", "PIPELINING"];
        if before_login {
            lines.push("AUTH-RESP-CODE");
            if self.plaintext_allowed() {
                lines.push("USER");
                lines.push("SASL PLAIN LOGIN");
            }
            if self.offers_stls() {
                lines.push("STLS");
            }
        }
        lines.push("EXPIRE NEVER");
        lines.push("IMPLEMENTATION Postern");
        protocol::multiline(&mut self.io.output, "Capability list follows", lines);
    }

    fn offers_stls(&self) -> bool {
        self.ctx.shared.tls.is_some() && !self.io.is_tls()
    }

    /// STLS: anything the client pipelined after the command is discarded
    /// (RFC 2595 section 4, the injection defence), then the handshake, then
    /// AUTHORIZATION starts over.
    pub(super) async fn stls(&mut self) -> Result<(), End> {
        if !matches!(self.state, State::Authorization { .. }) {
            self.err(None, "STLS only before login");
            return Ok(());
        }
        if self.io.is_tls() {
            self.err(None, "Already using TLS");
            return Ok(());
        }
        let Some(acceptor) = self.ctx.shared.tls.clone() else {
            self.err(None, "TLS is not available");
            return Ok(());
        };
        self.ok("Begin TLS negotiation");
        self.io
            .accept_tls(acceptor, &self.ctx.shared.config.limits)
            .await?;
        self.state = State::Authorization { user: None };
        tracing::debug!(tls = ?self.io.stream().and_then(|s| s.tls_description()), "STLS done");
        Ok(())
    }

    /// QUIT: in TRANSACTION, the UPDATE state first.
    pub(super) async fn quit(&mut self) {
        self.closing = true;
        let state = std::mem::replace(&mut self.state, State::Authorization { user: None });
        let State::Transaction(maildrop) = state else {
            self.ok("Postern POP3 server signing off");
            return;
        };
        let (left, _) = maildrop.stat();
        match maildrop.update(&self.ctx.shared.store).await {
            Ok(()) => {
                let deleted = maildrop.messages.len() - left;
                tracing::info!(user = %maildrop.account.address, deleted, "session updated");
                self.ok(&format!(
                    "Postern POP3 server signing off ({left} messages left)"
                ));
            }
            Err(e) => {
                tracing::error!(user = %maildrop.account.address, error = %e, "UPDATE failed");
                self.err(Some(store_code(&e)), "Some deleted messages not removed");
            }
        }
        // The lock is released here, after the update.
        drop(maildrop);
    }
}
