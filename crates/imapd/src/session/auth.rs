//! CAPABILITY, STARTTLS (RFC 2595), LOGIN and AUTHENTICATE PLAIN (RFC
//! 3501, SASL-IR RFC 4959), with the plaintext policy and the failed-login
//! throttle.

use common::sasl::{self, Credentials, SaslError};

use super::{End, Session, State};
use crate::protocol::encode::{Code, Status};
use crate::protocol::{Secret, Tag};

impl Session {
    /// Whether a password may be sent on this connection now.
    fn plaintext_allowed(&self) -> bool {
        sasl::plaintext_allowed(&self.ctx.config.auth, self.peer.ip(), self.is_tls())
    }

    fn offers_starttls(&self) -> bool {
        self.ctx.tls.is_some() && !self.is_tls()
    }

    /// The capabilities for the current state and connection: only what
    /// this version implements fully.
    pub(super) fn capabilities(&self) -> Vec<String> {
        let mut caps: Vec<&str> = vec!["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE"];
        if matches!(self.state, State::NotAuthenticated) {
            if self.offers_starttls() {
                caps.push("STARTTLS");
            }
            if self.plaintext_allowed() {
                caps.push("AUTH=PLAIN");
            } else {
                caps.push("LOGINDISABLED");
            }
        } else {
            caps.extend([
                "NAMESPACE",
                "UNSELECT",
                "CHILDREN",
                "LIST-EXTENDED",
                "SPECIAL-USE",
                "LIST-STATUS",
                "UIDPLUS",
                "MOVE",
                "IDLE",
            ]);
        }
        caps.into_iter().map(str::to_owned).collect()
    }

    fn refuse_plaintext(&mut self, tag: &Tag) {
        let hint = if self.offers_starttls() {
            "; use STARTTLS first"
        } else {
            ""
        };
        // PRIVACYREQUIRED (RFC 5530) has no `Code` of its own.
        let text = format!(
            "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections{hint}"
        );
        self.tagged(tag, Status::No, None, &text);
    }

    /// STARTTLS: anything pipelined after the command is discarded (RFC
    /// 2595 section 3.1, the injection defence), then the handshake.
    pub(super) async fn starttls(&mut self, tag: &Tag) -> Result<(), End> {
        if self.is_tls() {
            self.bad(tag, "Already using TLS");
            return Ok(());
        }
        let Some(acceptor) = self.ctx.tls.clone() else {
            self.no(tag, None, "TLS is not available");
            return Ok(());
        };
        self.ok(tag, "Begin TLS negotiation now");
        self.skip_bytes = 0;
        self.skip_line = false;
        self.literal_acked = None;
        let timeout =
            std::time::Duration::from_secs(self.ctx.config.limits.tls_handshake_timeout_secs);
        self.io
            .start_tls(
                timeout,
                |stream| async move { stream.upgrade(&acceptor).await },
            )
            .await?;
        tracing::debug!("STARTTLS done");
        Ok(())
    }

    pub(super) async fn login_command(
        &mut self,
        tag: &Tag,
        user: Vec<u8>,
        password: Secret,
    ) -> Result<(), End> {
        if !self.plaintext_allowed() {
            self.refuse_plaintext(tag);
            return Ok(());
        }
        let (Ok(username), Ok(password)) = (String::from_utf8(user), String::from_utf8(password.0))
        else {
            self.auth_failed(tag).await;
            return Ok(());
        };
        self.login(
            tag,
            Credentials {
                authzid: None,
                username,
                password,
            },
        )
        .await;
        Ok(())
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: &Tag,
        mechanism: String,
        initial: Option<Vec<u8>>,
    ) -> Result<(), End> {
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            self.no(
                tag,
                None,
                &format!("Unsupported authentication mechanism {mechanism}"),
            );
            return Ok(());
        }
        if !self.plaintext_allowed() {
            self.refuse_plaintext(tag);
            return Ok(());
        }
        let response = match initial {
            Some(initial) => initial,
            None => {
                // An empty challenge: `+ ` and nothing else.
                self.io.output.extend_from_slice(b"+ \r\n");
                match self.read_raw_line().await? {
                    Some(line) => line,
                    None => {
                        self.bad(tag, "SASL response too long");
                        return Ok(());
                    }
                }
            }
        };
        let credentials = match String::from_utf8(response) {
            Ok(text) => sasl::decode_plain(&text),
            Err(_) => Err(SaslError::Base64),
        };
        match credentials {
            Ok(credentials) => self.login(tag, credentials).await,
            Err(SaslError::Cancelled) => self.bad(tag, "Authentication cancelled"),
            Err(e) => {
                tracing::debug!(error = %e, "bad SASL response");
                self.auth_failed(tag).await;
            }
        }
        Ok(())
    }

    /// Counts a failed login; closes the session after too many.
    async fn auth_failed(&mut self, tag: &Tag) {
        self.ctx.throttle.record_failure(self.peer.ip());
        self.auth_failures += 1;
        if self.auth_failures >= self.ctx.config.auth.max_failures_per_session {
            self.no(tag, Some(Code::AuthenticationFailed), "Invalid credentials");
            self.untagged_status(Status::Bye, None, "Too many failed logins; closing");
            self.closing = true;
        } else {
            self.no(tag, Some(Code::AuthenticationFailed), "Invalid credentials");
        }
    }

    /// Checks the password (after the throttle's delay) and enters the
    /// authenticated state.
    async fn login(&mut self, tag: &Tag, credentials: Credentials) {
        let ip = self.peer.ip();
        let delay = self.ctx.throttle.delay_for(ip);
        if !delay.is_zero() {
            tracing::debug!(?delay, "delaying login attempt");
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
                    self.no(
                        tag,
                        Some(Code::ServerBug),
                        "Temporary authentication failure",
                    );
                    return;
                }
            }
        } else {
            None
        };
        let Some(account) = account else {
            tracing::info!(user = %credentials.username, "authentication failed");
            self.auth_failed(tag).await;
            return;
        };
        self.ctx.throttle.record_success(ip);
        let Some(slot) = self.ctx.user_slot(account.id) else {
            tracing::info!(user = %account.address, "too many sessions");
            let max = self.ctx.config.imap.max_connections_per_user;
            self.no(
                tag,
                Some(Code::Limit),
                &format!("Too many sessions for this account (at most {max})"),
            );
            return;
        };
        self.user_slot = Some(slot);
        tracing::info!(user = %account.address, "logged in");
        self.state = State::Authenticated(account);
        let caps = self.capabilities();
        self.tagged(tag, Status::Ok, Some(Code::Capability(caps)), "Logged in");
    }
}
