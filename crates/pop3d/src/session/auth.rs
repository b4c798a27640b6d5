//! Logging in: USER/PASS (RFC 1939) and AUTH PLAIN/LOGIN (RFC 5034), with
//! the plaintext policy, the failed-login throttle and the maildrop lock.

use common::sasl::{self, Credentials, SaslError};

use super::maildrop::Maildrop;
use super::{store_code, End, Session, State};
use crate::protocol::{self, RespCode};
use common::transport::Line;

const MECHANISMS: [&str; 2] = ["PLAIN", "LOGIN"];

impl Session {
    /// Whether a password may be sent on this connection now.
    pub(super) fn plaintext_allowed(&self) -> bool {
        sasl::plaintext_allowed(&self.ctx.config.auth, self.peer.ip(), self.is_tls())
    }

    fn refuse_plaintext(&mut self) {
        let hint = if self.ctx.tls.is_some() && !self.is_tls() {
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

    pub(super) async fn pass(&mut self, password: String) {
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            State::Transaction(_) => None,
        };
        let Some(user) = user else {
            self.err(None, "USER first");
            return;
        };
        if !self.plaintext_allowed() {
            self.refuse_plaintext();
            return;
        }
        self.login(Credentials {
            authzid: None,
            username: user,
            password,
        })
        .await;
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
        if !MECHANISMS.contains(&mechanism.as_str()) {
            self.err(
                None,
                &format!("Unsupported authentication mechanism {mechanism}"),
            );
            return Ok(());
        }
        if !self.plaintext_allowed() {
            self.refuse_plaintext();
            return Ok(());
        }
        if let State::Authorization { user } = &mut self.state {
            *user = None;
        }
        let credentials = if mechanism == "PLAIN" {
            self.auth_plain(initial).await?
        } else {
            self.auth_login(initial).await?
        };
        match credentials {
            Ok(credentials) => self.login(credentials).await,
            Err(SaslError::Cancelled) => self.err(None, "Authentication cancelled"),
            Err(e) => {
                // A failed login like a wrong password (as imapd and smtpd
                // count it): the throttle and the per-session limit see it.
                self.login_failed(&format!("Authentication failed: {e}"));
            }
        }
        Ok(())
    }

    /// Sends a `+ challenge` continuation and reads the client's response.
    async fn sasl_response(&mut self, challenge: &str) -> Result<Result<String, SaslError>, End> {
        self.io.output.extend_from_slice(b"+ ");
        self.io.output.extend_from_slice(challenge.as_bytes());
        self.io.output.extend_from_slice(b"\r\n");
        match self.read_line().await? {
            Line::TooLong => Ok(Err(SaslError::Malformed("overlong"))),
            Line::Complete(line) => match String::from_utf8(line) {
                Ok(text) => Ok(Ok(text)),
                Err(_) => Ok(Err(SaslError::Base64)),
            },
        }
    }

    async fn auth_plain(
        &mut self,
        initial: Option<String>,
    ) -> Result<Result<Credentials, SaslError>, End> {
        let response = match initial {
            Some(initial) => initial,
            None => match self.sasl_response("").await? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            },
        };
        Ok(sasl::decode_plain(&response))
    }

    async fn auth_login(
        &mut self,
        initial: Option<String>,
    ) -> Result<Result<Credentials, SaslError>, End> {
        let user = match initial {
            Some(initial) => initial,
            None => match self.sasl_response(sasl::LOGIN_USERNAME_PROMPT).await? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            },
        };
        let username = match sasl::decode_login_step(&user) {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        let password = match self.sasl_response(sasl::LOGIN_PASSWORD_PROMPT).await? {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let password = match sasl::decode_login_step(&password) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        if username.is_empty() || password.is_empty() {
            return Ok(Err(SaslError::Malformed("LOGIN")));
        }
        Ok(Ok(Credentials {
            authzid: None,
            username,
            password,
        }))
    }

    /// Counts a failed login (the throttle, and the session's limit, past
    /// which it closes) and answers `-ERR [AUTH] text`.
    fn login_failed(&mut self, text: &str) {
        self.ctx.throttle.record_failure(self.peer.ip());
        self.auth_failures += 1;
        if self.auth_failures >= self.ctx.config.auth.max_failures_per_session {
            self.err(Some(RespCode::Auth), "Too many failed logins; closing");
            self.closing = true;
        } else {
            self.err(Some(RespCode::Auth), text);
        }
    }

    /// Checks the password (after the throttle's delay), takes the maildrop
    /// lock and the snapshot, and enters TRANSACTION.
    async fn login(&mut self, credentials: Credentials) {
        let ip = self.peer.ip();
        let delay = self.ctx.throttle.delay_for(ip);
        if !delay.is_zero() {
            tracing::debug!(?delay, "delaying login attempt");
            // Replies so far go out first, so the client is not left waiting
            // on them too.
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
                    self.err(Some(RespCode::SysTemp), "Temporary authentication failure");
                    return;
                }
            }
        } else {
            None
        };
        let Some(account) = account else {
            tracing::info!(user = %credentials.username, "authentication failed");
            self.login_failed("Invalid user name or password");
            return;
        };
        self.ctx.throttle.record_success(ip);
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
        let policy = self.ctx.config.pop3.policy_for(&account.address);
        let address = account.address.clone();
        match Maildrop::open(&self.ctx.store, account, policy, lock).await {
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
