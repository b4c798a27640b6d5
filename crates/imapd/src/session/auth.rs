//! CAPABILITY, STARTTLS (RFC 2595), LOGIN and AUTHENTICATE PLAIN (RFC
//! 3501, SASL-IR RFC 4959), with the plaintext policy and the failed-login
//! throttle.

use common::login::{self, Failure, LoginSession, LoginState, Mechanism, Outcome};
use common::sasl::Credentials;
use common::tls::MaybeTlsStream;
use common::transport::Transport;

use super::{End, Session, State};
use crate::protocol::encode::{Code, Status};
use crate::protocol::{Secret, Tag};

impl Session {
    /// Whether a password may be sent on this connection now.
    fn plaintext_allowed(&self) -> bool {
        self.login_state.plaintext_allowed(self.io.is_tls())
    }

    fn offers_starttls(&self) -> bool {
        self.ctx.shared.tls.is_some() && !self.io.is_tls()
    }

    /// The capabilities for the current state and connection: only what
    /// this version implements fully.
    pub(super) fn capabilities(&self) -> Vec<String> {
        // IMAP4rev2 (RFC 9051) beside IMAP4rev1, in every state: a client
        // picks it with ENABLE after login (`session::rev2`).
        let mut caps: Vec<&str> = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
        ];
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
                "CONDSTORE",
                "QRESYNC",
                "BINARY",
                "MULTIAPPEND",
                "CATENATE",
                "STATUS=SIZE",
                "REPLACE",
                "OBJECTID",
                "SAVEDATE",
                "ESEARCH",
                "SEARCHRES",
                "WITHIN",
                "SORT",
                "SORT=DISPLAY",
                "ESORT",
                "I18NLEVEL=1",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
                "THREAD=REFS",
                "CONTEXT=SEARCH",
                "CONTEXT=SORT",
                "UTF8=ACCEPT",
                "PREVIEW",
                "SNIPPET=FUZZY",
                "CREATE-SPECIAL-USE",
                "METADATA",
                "METADATA-SERVER",
                "URLAUTH",
                "URL-PARTIAL",
                "URLAUTH=BINARY",
                "NOTIFY",
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "QUOTA=RES-MESSAGE",
            ]);
            if !self.io.is_compressed() {
                caps.push("COMPRESS=DEFLATE");
            }
        }
        let mut caps: Vec<String> = caps.into_iter().map(str::to_owned).collect();
        if !matches!(self.state, State::NotAuthenticated) {
            caps.push(format!("APPENDLIMIT={}", self.append_limit()));
        }
        caps
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
        if self.io.is_tls() {
            self.bad(tag, "Already using TLS");
            return Ok(());
        }
        let Some(acceptor) = self.ctx.shared.tls.clone() else {
            self.no(tag, None, "TLS is not available");
            return Ok(());
        };
        self.ok(tag, "Begin TLS negotiation now");
        self.skip_bytes = 0;
        self.skip_line = false;
        self.literal_acked = None;
        self.io
            .accept_tls(acceptor, &self.ctx.shared.config.limits)
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
        let outcome = match (String::from_utf8(user), String::from_utf8(password.0)) {
            (Ok(username), Ok(password)) => {
                let credentials = Credentials {
                    authzid: None,
                    username,
                    password,
                };
                login::password(self, credentials).await?
            }
            // No account has such a name or password.
            _ => login::failed(self, Failure::Credentials),
        };
        self.logged_in(tag, outcome).await;
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
        // Bytes that are not UTF-8 stay invalid base64 (U+FFFD), and so a
        // malformed response.
        let initial = initial.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        let outcome = login::sasl(self, Mechanism::Plain, initial).await?;
        self.logged_in(tag, outcome).await;
        Ok(())
    }

    /// Answers a login attempt; on success takes a session slot for the
    /// account and enters the authenticated state.
    async fn logged_in(&mut self, tag: &Tag, outcome: Outcome) {
        let account = match outcome {
            Outcome::LoggedIn(account) => account,
            Outcome::Cancelled => {
                self.bad(tag, "Authentication cancelled");
                return;
            }
            Outcome::Failed { closing, .. } => {
                self.no(tag, Some(Code::AuthenticationFailed), "Invalid credentials");
                if closing {
                    self.untagged_status(Status::Bye, None, "Too many failed logins; closing");
                    self.closing = true;
                }
                return;
            }
            Outcome::Unavailable(e) => {
                self.store_failed(tag, e, "check the credentials");
                return;
            }
        };
        let Some(slot) = self.ctx.user_slot(account.id) else {
            tracing::info!(user = %account.address, "too many sessions");
            let max = self.ctx.shared.config.imap.max_connections_per_user;
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

impl LoginSession for Session {
    fn login_parts(&mut self) -> (&mut LoginState, &mut Transport<MaybeTlsStream>) {
        (&mut self.login_state, &mut self.io)
    }
}
