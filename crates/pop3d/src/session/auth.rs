//! Logging in: USER/PASS (RFC 1939) and AUTH PLAIN/LOGIN (RFC 5034), with
//! the plaintext policy, the failed-login throttle and the maildrop lock.

use common::login::{self, Failure, LoginSession, LoginState, Mechanism, Outcome};
use common::sasl::Credentials;
use common::tls::MaybeTlsStream;
use common::transport::Transport;

use super::maildrop::Maildrop;
use super::{store_code, End, Session, State};
use crate::protocol::{self, RespCode};

const MECHANISMS: [&str; 2] = ["PLAIN", "LOGIN"];

impl Session {
    /// Whether a password may be sent on this connection now.
    pub(super) fn plaintext_allowed(&self) -> bool {
        self.login_state.plaintext_allowed(self.io.is_tls())
    }

    fn refuse_plaintext(&mut self) {
        let hint = if self.ctx.shared.tls.is_some() && !self.io.is_tls() {
            "; use STLS first"
        } else {
            ""
        };
        self.err(
            Some(RespCode::Auth),
            &format!("Plaintext authentication disallowed on non-secure connections{hint}"),
        );
    }

    pub(super) fn user(&mut self, name: String) {
        if !self.plaintext_allowed() {
            self.refuse_plaintext();
            return;
        }
        // The same answer for every name: USER does not reveal accounts.
        self.state = State::Authorization { user: Some(name) };
        self.ok("Send PASS");
    }

    pub(super) async fn pass(&mut self, password: String) -> Result<(), End> {
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            State::Transaction(_) => None,
        };
        let Some(user) = user else {
            self.err(None, "USER first");
            return Ok(());
        };
        if !self.plaintext_allowed() {
            self.refuse_plaintext();
            return Ok(());
        }
        self.login(Credentials {
            authzid: None,
            username: user,
            password,
        })
        .await
    }

    /// `AUTH` without arguments: the mechanisms, one per line.
    pub(super) fn auth_mechanisms(&mut self) {
        let offered: &[&str] = if self.plaintext_allowed() {
            &MECHANISMS
        } else {
            &[]
        };
        protocol::multiline(&mut self.io.output, "Mechanisms follow", offered);
    }

    pub(super) async fn auth(
        &mut self,
        mechanism: String,
        initial: Option<String>,
    ) -> Result<(), End> {
        let Some(mechanism) = Mechanism::from_name(&mechanism) else {
            self.err(
                None,
                &format!("Unsupported authentication mechanism {mechanism}"),
            );
            return Ok(());
        };
        if !self.plaintext_allowed() {
            self.refuse_plaintext();
            return Ok(());
        }
        if let State::Authorization { user } = &mut self.state {
            *user = None;
        }
        let outcome = login::sasl(self, mechanism, initial).await?;
        self.logged_in(outcome).await;
        Ok(())
    }

    /// Checks the password (after the throttle's delay), takes the maildrop
    /// lock and the snapshot, and enters TRANSACTION.
    async fn login(&mut self, credentials: Credentials) -> Result<(), End> {
        let outcome = login::password(self, credentials).await?;
        self.logged_in(outcome).await;
        Ok(())
    }

    /// Answers a login attempt; on success takes the maildrop lock and the
    /// snapshot, and enters TRANSACTION.
    async fn logged_in(&mut self, outcome: Outcome) {
        let account = match outcome {
            Outcome::LoggedIn(account) => account,
            Outcome::Cancelled => {
                self.err(None, "Authentication cancelled");
                return;
            }
            Outcome::Failed { closing: true, .. } => {
                self.err(Some(RespCode::Auth), "Too many failed logins; closing");
                self.closing = true;
                return;
            }
            Outcome::Failed { why, .. } => {
                let text = match why {
                    Failure::Malformed(e) => format!("Authentication failed: {e}"),
                    Failure::Credentials => "Invalid user name or password".to_string(),
                };
                self.err(Some(RespCode::Auth), &text);
                return;
            }
            Outcome::Unavailable(e) => {
                self.err(Some(store_code(&e)), "Authentication unavailable");
                return;
            }
        };
        let lock = match self.ctx.locks.try_lock(account.id).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tracing::info!(user = %account.address, "maildrop in use");
                self.err(
                    Some(RespCode::InUse),
                    "Maildrop already locked by another POP3 session",
                );
                return;
            }
            Err(e) => {
                tracing::error!(user = %account.address, error = %e, "cannot lock the maildrop");
                self.err(Some(store_code(&e)), "Cannot lock the maildrop");
                return;
            }
        };
        let policy = self.ctx.shared.config.pop3.policy_for(&account.address);
        let address = account.address.clone();
        match Maildrop::open(&self.ctx.shared.store, account, policy, lock).await {
            Ok(maildrop) => {
                let (count, octets) = maildrop.stat();
                tracing::info!(user = %address, messages = count, "logged in");
                self.state = State::Transaction(maildrop);
                self.ok(&format!("{address} has {count} messages ({octets} octets)"));
            }
            Err(e) => {
                tracing::error!(user = %address, error = %e, "cannot open the maildrop");
                self.err(Some(store_code(&e)), "Cannot open the maildrop");
            }
        }
    }
}

impl LoginSession for Session {
    fn login_parts(&mut self) -> (&mut LoginState, &mut Transport<MaybeTlsStream>) {
        (&mut self.login_state, &mut self.io)
    }
}
