//! SASL mechanisms PLAIN (RFC 4616) and LOGIN, and the failed-login throttle.
//! Decoding only: the daemons run the exchange in their protocol's framing
//! and check the password with the store.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::AuthConfig;

/// Credentials decoded from a SASL exchange. `Debug` never prints the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authorization identity if the client gave one different from empty.
    pub authzid: Option<String>,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("malformed {0} response")]
    Malformed(&'static str),
    #[error("authentication cancelled")]
    Cancelled,
}

/// Decodes a base64 PLAIN response (`authzid NUL authcid NUL passwd`, UTF-8).
/// A lone `*` is `Cancelled`.
pub fn decode_plain(_base64: &str) -> Result<Credentials, SaslError> {
    todo!()
}

/// Decodes one base64 LOGIN step (user name or password). `*` is
/// `Cancelled`.
pub fn decode_login_step(_base64: &str) -> Result<String, SaslError> {
    todo!()
}

/// The base64 of LOGIN's prompts, `Username:` and `Password:`.
pub const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// Counts failed logins per IP address (shared by all sessions of all
/// daemons in a process) and says how long to wait before answering the
/// next attempt. Entries age out after a quiet period.
pub struct AuthThrottle {
    _config: AuthConfig,
}

impl AuthThrottle {
    pub fn new(_config: &AuthConfig) -> AuthThrottle {
        todo!()
    }

    /// The delay to apply before checking this IP's next attempt.
    pub fn delay_for(&self, _ip: IpAddr) -> Duration {
        todo!()
    }

    pub fn record_failure(&self, _ip: IpAddr) {
        todo!()
    }

    pub fn record_success(&self, _ip: IpAddr) {
        todo!()
    }
}

/// Whether a plaintext login may happen on this connection.
pub fn plaintext_allowed(_config: &AuthConfig, _peer: IpAddr, _tls: bool) -> bool {
    todo!()
}
