//! AUTH (RFC 4954) with the PLAIN and LOGIN mechanisms, on the submission
//! ports only.

use common::rules::Stage;
use common::sasl::{self, Credentials, SaslError};

use super::{End, Line, Session};
use crate::reply::{self, Reply};

impl Session {
    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> Result<(), End> {
        // Capture mode takes AUTH on every port: apps configured with a
        // login must just work.
        if !self.role.is_submission() && !self.capturing() {
            self.reply(reply::auth_not_enabled());
            return Ok(());
        }
        if self.helo.is_none() {
            self.reply(reply::bad_sequence("Send EHLO first"));
            return Ok(());
        }
        if self.auth_user.is_some() {
            self.reply(reply::bad_sequence("Already authenticated"));
            return Ok(());
        }
        if self.tx.is_some() {
            self.reply(reply::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
            return Ok(());
        }
        if mechanism != smtp_proto::AUTH_PLAIN && mechanism != smtp_proto::AUTH_LOGIN {
            self.reply(reply::auth_mechanism_unknown());
            return Ok(());
        }
        if !self.capturing()
            && !sasl::plaintext_allowed(&self.ctx.config.auth, self.peer.ip(), self.is_tls())
        {
            self.reply(reply::encryption_required());
            return Ok(());
        }
        let credentials = if mechanism == smtp_proto::AUTH_PLAIN {
            self.auth_plain(initial).await?
        } else {
            self.auth_login(initial).await?
        };
        let credentials = match credentials {
            Ok(c) => c,
            Err(SaslError::Cancelled) => {
                self.reply(reply::auth_cancelled());
                return Ok(());
            }
            Err(e) => {
                // A failed login like a wrong password (as imapd and pop3d
                // count it): the throttle and the per-session limit see
                // it, with the reply that says what was wrong.
                tracing::debug!(error = %e, "bad SASL response");
                self.login_failed(reply::auth_malformed());
                return Ok(());
            }
        };
        self.check_credentials(credentials).await;
        Ok(())
    }

    /// Reads one SASL response line after a `334` challenge.
    async fn sasl_response(&mut self, challenge: &str) -> Result<Result<String, SaslError>, End> {
        self.reply(Reply::plain(334, challenge));
        let timeout = Duration::from_secs(self.ctx.config.smtp.command_timeout_secs);
        let line = self.read_line(timeout, true).await?;
        self.record.client_note("****");
        match line {
            Line::TooLong => Ok(Err(SaslError::Malformed("too long"))),
            Line::Complete(line) => match String::from_utf8(line) {
                Ok(text) => Ok(Ok(text.trim().to_string())),
                Err(_) => Ok(Err(SaslError::Base64)),
            },
        }
    }

    async fn auth_plain(&mut self, initial: String) -> Result<Result<Credentials, SaslError>, End> {
        let response = if initial.is_empty() {
            match self.sasl_response("").await? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            }
        } else {
            initial
        };
        Ok(sasl::decode_plain(&response))
    }

    async fn auth_login(&mut self, initial: String) -> Result<Result<Credentials, SaslError>, End> {
        let user_b64 = if initial.is_empty() {
            match self.sasl_response(sasl::LOGIN_USERNAME_PROMPT).await? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            }
        } else {
            initial
        };
        let username = match sasl::decode_login_step(&user_b64) {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        let pass_b64 = match self.sasl_response(sasl::LOGIN_PASSWORD_PROMPT).await? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let password = match sasl::decode_login_step(&pass_b64) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(Credentials {
            authzid: None,
            username,
            password,
        }))
    }

    async fn check_credentials(&mut self, credentials: Credentials) {
        if self.capturing() {
            // Any credentials: the user name is recorded, the password
            // never checked (nor kept). A failure rule may still say no.
            let verdict = self.rule_verdict(Stage::Auth, None, &[]);
            if self.apply_rules(verdict).await {
                return;
            }
            tracing::info!(user = %credentials.username, "authenticated (capture mode)");
            self.auth_user = Some(credentials.username);
            self.reply(reply::auth_ok());
            return;
        }
        let ip = self.peer.ip();
        let delay = self.ctx.throttle.delay_for(ip);
        if !delay.is_zero() {
            tracing::debug!(?delay, "delaying login attempt");
            // Replies already due go out first, not after the delay.
            let _ = self.flush().await;
            tokio::time::sleep(delay).await;
        }
        let authzid_ok = credentials
            .authzid
            .as_deref()
            .is_none_or(|z| z.eq_ignore_ascii_case(&credentials.username));
        let account = if authzid_ok {
            match self
                .ctx
                .store
                .authenticate(&credentials.username, &credentials.password)
                .await
            {
                Ok(account) => account,
                Err(e) => {
                    tracing::error!(error = %e, "authentication lookup failed");
                    self.reply(Reply::new(454, "4.7.0", "Temporary authentication failure"));
                    return;
                }
            }
        } else {
            None
        };
        match account {
            Some(account) => {
                // The credentials are good; a failure rule may still say
                // no (no failed login is counted for it).
                let verdict = self.rule_verdict(Stage::Auth, None, &[]);
                if self.apply_rules(verdict).await {
                    return;
                }
                self.ctx.throttle.record_success(ip);
                tracing::info!(user = %account.address, "authenticated");
                self.auth_user = Some(account.address);
                self.reply(reply::auth_ok());
            }
            None => {
                tracing::info!(user = %credentials.username, "authentication failed");
                self.login_failed(reply::auth_failed());
            }
        }
    }

    /// Counts a failed login (the throttle, and the session's limit, past
    /// which it closes) and answers `reply` or, at the limit, `421`.
    fn login_failed(&mut self, reply: Reply) {
        self.ctx.throttle.record_failure(self.peer.ip());
        self.auth_failures += 1;
        if self.auth_failures >= self.ctx.config.auth.max_failures_per_session {
            self.reply(reply::too_many_auth_failures());
            self.closing = true;
        } else {
            self.reply(reply);
        }
    }
}

use std::time::Duration;
