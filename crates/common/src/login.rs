//! The one login path of smtpd, pop3d and imapd: the SASL PLAIN and LOGIN
//! exchange (initial response, `*` to cancel, malformed responses), the
//! throttle's delay before a password is checked, the password check
//! against the store, and the count of failed logins per session and per
//! address.
//!
//! A session embeds a [`LoginState`] (its [`Gate`] and its count of
//! failed logins) and lends it with its [`Transport`]; of its own it
//! supplies only how a challenge is framed (SMTP `334 `, POP3 and IMAP
//! `+ `) and how a response line is read ([`LoginSession`]). What the
//! client is told is the daemon's: the functions here return an
//! [`Outcome`] and the session words it.
//!
//! The throttle's delay and the password check run while the transport
//! watches the client ([`Transport::until_gone`]): a client that leaves
//! meanwhile ends its session at once, and the store skips the argon2id
//! check nobody waits for.
//!
//! Every daemon counts the same things as a failed login: a wrong password,
//! an unknown user, an authorization identity other than the user, and a
//! SASL response that cannot be decoded (bad base64, a missing NUL, a line
//! too long). A cancelled exchange is not a failure. After
//! `[auth] max_failures_per_session` the session must close.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use store::{Account, Store};

use crate::config::Config;
use crate::sasl::{self, AuthThrottle, Credentials, SaslError};
use crate::tls::MaybeTlsStream;
use crate::transport::{End, Line, Transport};

/// A SASL mechanism the daemons offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616: one response, `authzid NUL user NUL password`.
    Plain,
    /// The LOGIN mechanism: the user name, then the password, each after
    /// its own prompt.
    Login,
}

impl Mechanism {
    /// The mechanism of this name (any case), if it is one we offer.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }
}

/// What the login path needs from the daemon's shared context.
#[derive(Clone)]
pub struct Gate {
    pub config: Arc<Config>,
    pub throttle: Arc<AuthThrottle>,
    pub store: Store,
    /// The client's address: the throttle counts per address.
    pub peer: IpAddr,
}

impl Gate {
    pub fn new(
        config: &Arc<Config>,
        throttle: &Arc<AuthThrottle>,
        store: &Store,
        peer: IpAddr,
    ) -> Gate {
        Gate {
            config: config.clone(),
            throttle: throttle.clone(),
            store: store.clone(),
            peer,
        }
    }

    /// Whether a password may be sent on this connection (see
    /// [`sasl::plaintext_allowed`]).
    pub fn plaintext_allowed(&self, tls: bool) -> bool {
        sasl::plaintext_allowed(&self.config.auth, self.peer, tls)
    }
}

/// A session's side of the login path: what it needs from the daemon's
/// shared context, and how many logins failed in this session.
pub struct LoginState {
    pub gate: Gate,
    /// How long a SASL response may take to arrive.
    response_timeout: Duration,
    failures: u32,
    /// The last failure being counted in the store: the next attempt
    /// waits for it, so that its own delay counts it.
    counting: Option<tokio::task::JoinHandle<()>>,
}

impl LoginState {
    pub fn new(gate: Gate, response_timeout: Duration) -> LoginState {
        LoginState {
            gate,
            response_timeout,
            failures: 0,
            counting: None,
        }
    }

    /// Whether a password may be sent on this connection now.
    pub fn plaintext_allowed(&self, tls: bool) -> bool {
        self.gate.plaintext_allowed(tls)
    }

    /// Waits (boundedly) until the last failure is counted in the store,
    /// so that what comes next, here or on another node, sees it.
    async fn counted(&mut self) {
        if let Some(counting) = self.counting.take() {
            let _ = tokio::time::timeout(sasl::STORE_WAIT, counting).await;
        }
    }

    /// Counts a failed login, for the throttle and the session's limit.
    fn failed(&mut self, why: Failure) -> Outcome {
        self.counting = self.gate.throttle.failure(self.gate.peer, &self.gate.store);
        self.failures += 1;
        let closing = self.failures >= self.gate.config.auth.max_failures_per_session;
        Outcome::Failed { why, closing }
    }
}

/// A protocol session as the login path sees it. Errors are why the
/// session ends while the login reads (disconnect, timeout, shutdown).
pub trait LoginSession: Send {
    /// The session's login state and its transport, lent together.
    fn login_parts(&mut self) -> (&mut LoginState, &mut Transport<MaybeTlsStream>);

    /// Sends `challenge` (base64, possibly empty) in the protocol's
    /// continuation framing, and reads the client's response line without
    /// its line end: `None` if the line was too long. POP3's and IMAP's
    /// framing, `+ challenge` (PLAIN's is empty: `+ ` and nothing else),
    /// unless the session says otherwise (SMTP's `334 `).
    fn sasl_response(
        &mut self,
        challenge: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, End>> + Send {
        async move {
            let (login, io) = self.login_parts();
            io.output.extend_from_slice(b"+ ");
            io.output.extend_from_slice(challenge.as_bytes());
            io.output.extend_from_slice(b"\r\n");
            let line = io.read_line(login.response_timeout, true).await?;
            Ok(response_line(line))
        }
    }
}

/// A SASL response line as the exchange takes it: `None` if too long.
pub fn response_line(line: Line) -> Option<Vec<u8>> {
    match line {
        Line::Complete(line) => Some(line),
        Line::TooLong => None,
    }
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The password is right; the throttle has forgotten the address.
    LoggedIn(Account),
    /// The client cancelled the exchange with `*`; nothing was counted.
    Cancelled,
    /// A failed login, counted. `closing`: it was the session's last
    /// allowed one; say so and close.
    Failed { why: Failure, closing: bool },
    /// The store could not answer; nothing was counted. Each daemon
    /// answers the error as [`store::StoreError::is_temporary`] says.
    Unavailable(store::StoreError),
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The SASL response could not be decoded.
    Malformed(SaslError),
    /// Unknown user, wrong password, or another authorization identity.
    Credentials,
}

/// Runs a SASL exchange and checks the credentials it gives: the whole
/// of `AUTH` / `AUTHENTICATE` after the daemon's own checks (state,
/// mechanism offered, plaintext policy). `initial` is the initial
/// response, if the command carried one.
pub async fn sasl<S: LoginSession>(
    session: &mut S,
    mechanism: Mechanism,
    initial: Option<String>,
) -> Result<Outcome, End> {
    Ok(match exchange(session, mechanism, initial).await? {
        Ok(credentials) => password(session, credentials).await?,
        Err(SaslError::Cancelled) => Outcome::Cancelled,
        Err(e) => {
            tracing::debug!(error = %e, "bad SASL response");
            failed(session, Failure::Malformed(e))
        }
    })
}

/// Runs only the SASL exchange: the credentials as the client gave them,
/// unchecked. For smtpd's capture mode; others use [`sasl`].
pub async fn exchange<S: LoginSession>(
    session: &mut S,
    mechanism: Mechanism,
    initial: Option<String>,
) -> Result<Result<Credentials, SaslError>, End> {
    match mechanism {
        Mechanism::Plain => {
            let response = match initial {
                Some(initial) => initial,
                // An empty challenge: `334 ` or `+ ` and nothing else.
                None => match response(session, "").await? {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                },
            };
            Ok(sasl::decode_plain(&response))
        }
        Mechanism::Login => {
            let user = match initial {
                Some(initial) => initial,
                None => match response(session, sasl::LOGIN_USERNAME_PROMPT).await? {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                },
            };
            let username = match sasl::decode_login_step(&user) {
                Ok(u) => u,
                Err(e) => return Ok(Err(e)),
            };
            let password = match response(session, sasl::LOGIN_PASSWORD_PROMPT).await? {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            let password = match sasl::decode_login_step(&password) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            // As PLAIN: an empty user name or password is not a login.
            if username.is_empty() || password.is_empty() {
                return Ok(Err(SaslError::Malformed("LOGIN")));
            }
            Ok(Ok(Credentials {
                authzid: None,
                username,
                password,
            }))
        }
    }
}

/// One challenge and its response, as text.
async fn response<S: LoginSession>(
    session: &mut S,
    challenge: &str,
) -> Result<Result<String, SaslError>, End> {
    Ok(match session.sasl_response(challenge).await? {
        None => Err(SaslError::Malformed("overlong")),
        Some(line) => String::from_utf8(line).map_err(|_| SaslError::Base64),
    })
}

/// Checks a user name and password (USER/PASS, IMAP LOGIN, or what a SASL
/// exchange gave): first the throttle's delay for the address, then the
/// store. A wrong password is counted as a failed login. The client
/// leaving meanwhile ends the session ([`End::Disconnected`]) and the
/// check is not made.
pub async fn password<S: LoginSession>(
    session: &mut S,
    credentials: Credentials,
) -> Result<Outcome, End> {
    let (login, io) = session.login_parts();
    login.counted().await;
    let gate = &login.gate;
    let delay = gate.throttle.delay(gate.peer, &gate.store).await;
    if !delay.is_zero() {
        tracing::debug!(?delay, "delaying login attempt");
        // Replies so far go out first, so the client is not left waiting
        // on them too. Errors are the watch's below to find.
        let _ = io.flush().await;
    }
    let authzid_ok = credentials
        .authzid
        .as_deref()
        .is_none_or(|z| z.eq_ignore_ascii_case(&credentials.username));
    let check = async {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if !authzid_ok {
            return Ok(None);
        }
        gate.store
            .authenticate(&credentials.username, &credentials.password)
            .await
    };
    let account = match io.until_gone(check).await {
        Ok(Ok(account)) => account,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "authentication lookup failed");
            return Ok(Outcome::Unavailable(e));
        }
        Err(end) => {
            tracing::info!(user = %credentials.username, "client left; password not checked");
            return Err(end);
        }
    };
    Ok(match account {
        Some(account) => {
            let delayed = !delay.is_zero();
            gate.throttle.success(gate.peer, &gate.store, delayed).await;
            Outcome::LoggedIn(account)
        }
        None => {
            tracing::info!(user = %credentials.username, "authentication failed");
            let outcome = login.failed(Failure::Credentials);
            // Counted everywhere before the client hears of it.
            login.counted().await;
            outcome
        }
    })
}

/// Counts a failed login without a password check (e.g. a user name that
/// is not UTF-8): for the throttle and the session's limit.
pub fn failed<S: LoginSession>(session: &mut S, why: Failure) -> Outcome {
    session.login_parts().0.failed(why)
}
