//! AUTH (RFC 4954) with the PLAIN and LOGIN mechanisms, on the submission
//! ports only.

use common::login::{self, Failure, LoginSession, LoginState, Mechanism, Outcome};
use common::rules::Stage;
use common::sasl::{Credentials, SaslError};
use common::tls::MaybeTlsStream;
use common::transport::Transport;

use super::{End, Session};
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
        if !self.capturing() && !self.login_state.plaintext_allowed(self.is_tls()) {
            self.reply(reply::encryption_required());
            return Ok(());
        }
        let mechanism = if mechanism == smtp_proto::AUTH_PLAIN {
            Mechanism::Plain
        } else {
            Mechanism::Login
        };
        // `AUTH PLAIN` alone: no initial response; `=` is an empty one.
        let initial = (!initial.is_empty()).then_some(initial);
        let outcome = if self.capturing() {
            match login::exchange(self, mechanism, initial).await? {
                Ok(credentials) => {
                    self.capture_login(credentials).await;
                    return Ok(());
                }
                Err(SaslError::Cancelled) => Outcome::Cancelled,
                Err(e) => login::failed(self, Failure::Malformed(e)),
            }
        } else {
            login::sasl(self, mechanism, initial).await?
        };
        self.login_outcome(outcome).await;
        Ok(())
    }

    /// Capture mode: any credentials; the user name is recorded, the
    /// password never checked (nor kept). A failure rule may still say no.
    async fn capture_login(&mut self, credentials: Credentials) {
        let verdict = self.rule_verdict(Stage::Auth, None, &[]);
        if self.apply_rules(verdict).await {
            return;
        }
        tracing::info!(user = %credentials.username, "authenticated (capture mode)");
        self.auth_user = Some(credentials.username);
        self.reply(reply::auth_ok());
    }

    /// Answers a login attempt: `235`, `535`/`501` for a failure (`421`
    /// and closing at the session's limit), `454` if the store failed.
    async fn login_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::LoggedIn(account) => {
                // The credentials are good; a failure rule may still say
                // no (no failed login is counted for it).
                let verdict = self.rule_verdict(Stage::Auth, None, &[]);
                if self.apply_rules(verdict).await {
                    return;
                }
                tracing::info!(user = %account.address, "authenticated");
                self.auth_user = Some(account.address);
                self.reply(reply::auth_ok());
            }
            Outcome::Cancelled => self.reply(reply::auth_cancelled()),
            Outcome::Failed { closing: true, .. } => {
                self.reply(reply::too_many_auth_failures());
                self.closing = true;
            }
            Outcome::Failed { why, .. } => self.reply(match why {
                Failure::Malformed(_) => reply::auth_malformed(),
                Failure::Credentials => reply::auth_failed(),
            }),
            Outcome::Unavailable(e) => self.reply(reply::auth_unavailable(&e)),
        }
    }
}

impl LoginSession for Session {
    fn login_parts(&mut self) -> (&mut LoginState, &mut Transport<MaybeTlsStream>) {
        (&mut self.login_state, &mut self.io)
    }

    /// `334 challenge`, then one line (recorded in the transcript as
    /// `****`).
    async fn sasl_response(
        &mut self,
        challenge: &str,
    ) -> Result<Option<Vec<u8>>, common::transport::End> {
        self.reply(Reply::plain(334, challenge));
        let line = self.io.read_line(self.command_timeout(), true).await?;
        self.record.client_note("****");
        Ok(login::response_line(line))
    }
}
