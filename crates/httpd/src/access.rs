//! Who is asking, and what they may see (issue 11, "Access").
//!
//! - `Authorization: Bearer <admin token>` (`[http] token`): everything.
//! - `Authorization: Bearer <sandbox token>`: the sandbox's domain only.
//! - `Authorization: Basic` with an account's address and password (the
//!   capture password for a captured address): that account's mail only.
//!   Checked through the store with the shared failed-login throttle, and
//!   remembered for a minute so that a client asking often does not pay an
//!   argon2 check per request.
//! - The web page's session cookie ([`crate::web_session`]), from a login
//!   with any of the above: what that login sees. A `POST`, `PUT` or
//!   `DELETE` with the cookie must carry the session's CSRF token.
//! - Nothing, in capture mode on a loopback listener: everything. Anywhere
//!   else: `401` with a `WWW-Authenticate` challenge for each scheme.
//!
//! Requests that a browser sends by itself (cookie or open access, no
//! `Authorization` header) that change something are refused (`403`)
//! when they come from another site: `Sec-Fetch-Site: cross-site` or
//! `same-site` (another port of the same host is another origin but the
//! same site), or an `Origin` that is not this server's. Scripts and
//! Mailpit clients send neither header and are not affected.
//!
//! Credentials that are given are always checked, also where the API is
//! open: a wrong token is a `401`, never a silent look at everything.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use sha2::Digest as _;
use store::{AccountId, ArrivalScope};

use crate::error::ApiError;
use crate::web_session::{cookie, CSRF_HEADER, SESSION_COOKIE};
use crate::AppState;

/// What a connection tells each request on it.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The connection is TLS (an HTTPS listener).
    pub tls: bool,
}

/// Who the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The admin token.
    Admin,
    /// Nobody in particular, where the API is open (capture mode on a
    /// loopback listener).
    Open,
    /// A sandbox's token: its domain.
    Sandbox(String),
    /// An account that logged in: its id and address.
    Account(AccountId, String),
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
}

impl Caller {
    /// The messages this caller may see.
    pub fn scope(&self) -> ArrivalScope {
        match &self.identity {
            Identity::Admin | Identity::Open => ArrivalScope::All,
            Identity::Sandbox(domain) => ArrivalScope::Domain(domain.clone()),
            Identity::Account(id, _) => ArrivalScope::Account(*id),
        }
    }

    /// May see every message and every session.
    pub fn sees_all(&self) -> bool {
        matches!(self.identity, Identity::Admin | Identity::Open)
    }

    /// Whether mail for `address` is this caller's: an address in its
    /// sandbox's domain, or its own address (with or without a `+tag`).
    pub fn owns_address(&self, address: &str) -> bool {
        let address = address.trim().to_lowercase();
        match &self.identity {
            Identity::Admin | Identity::Open => true,
            Identity::Sandbox(domain) => address
                .rsplit_once('@')
                .is_some_and(|(_, d)| d == domain.to_lowercase()),
            Identity::Account(_, own) => {
                let Some((local, domain)) = address.rsplit_once('@') else {
                    return false;
                };
                let local = local.split_once('+').map_or(local, |(l, _)| l);
                format!("{local}@{domain}") == *own
            }
        }
    }

    /// Whether an event about a message in `account` (at `address`) is
    /// this caller's to see.
    pub fn sees_account(&self, account: i64, address: &str) -> bool {
        match &self.identity {
            Identity::Admin | Identity::Open => true,
            Identity::Sandbox(_) => self.owns_address(address),
            Identity::Account(id, _) => id.0 == account,
        }
    }
}

/// How long a checked Basic login is remembered.
const LOGIN_MEMORY: Duration = Duration::from_secs(60);
/// Most logins remembered at once.
const LOGIN_MEMORY_MAX: usize = 1024;

/// Basic logins checked lately, by a hash of the credentials.
#[derive(Default)]
pub struct LoginCache {
    entries: Mutex<HashMap<[u8; 32], (AccountId, String, Instant)>>,
}

impl LoginCache {
    fn key(user: &str, password: &str) -> [u8; 32] {
        let mut hasher = sha2::Sha256::new();
        hasher.update(user.as_bytes());
        hasher.update([0]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    fn get(&self, key: &[u8; 32]) -> Option<(AccountId, String)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, _, at)| at.elapsed() < LOGIN_MEMORY)
            .map(|(id, address, _)| (*id, address.clone()))
    }

    fn put(&self, key: [u8; 32], id: AccountId, address: String) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= LOGIN_MEMORY_MAX {
            entries.retain(|_, (_, _, at)| at.elapsed() < LOGIN_MEMORY);
            if entries.len() >= LOGIN_MEMORY_MAX {
                entries.clear();
            }
        }
        entries.insert(key, (id, address, Instant::now()));
    }
}

/// Compares without stopping at the first difference.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Caller, ApiError> {
        let info = parts.extensions.get::<ConnInfo>().copied();
        let open = state.ctx.shared.config.capture.enabled
            && info.is_some_and(|i| i.local.ip().is_loopback());
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            let changes = !is_safe(&parts.method);
            if changes && cross_site(&parts.headers) {
                return Err(ApiError::forbidden(
                    "a change requested from another site's page is refused",
                ));
            }
            let session =
                cookie(&parts.headers, SESSION_COOKIE).and_then(|id| state.sessions.get(id));
            if let Some(session) = session {
                if changes {
                    let token = parts
                        .headers
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if !same_secret(token, &session.csrf_token) {
                        return Err(ApiError::forbidden(
                            "missing or wrong X-CSRF-Token for this session",
                        ));
                    }
                }
                return Ok(Caller {
                    identity: session.identity,
                });
            }
            return if open {
                Ok(Caller {
                    identity: Identity::Open,
                })
            } else {
                Err(ApiError::unauthorized(
                    "authentication required: a Bearer token or Basic login",
                ))
            };
        };
        let header = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("unreadable Authorization header"))?
            .trim();
        let (scheme, credentials) = header.split_once(' ').unwrap_or((header, ""));
        let credentials = credentials.trim();
        let ip = info.map(|i| i.peer.ip());
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(admin) = state.ctx.shared.config.http.token.as_deref() {
                if !admin.is_empty() && same_secret(credentials, admin) {
                    return Ok(Caller {
                        identity: Identity::Admin,
                    });
                }
            }
            throttle(state, ip).await;
            if !credentials.is_empty() {
                if let Some(domain) = state
                    .ctx
                    .shared
                    .store
                    .sandbox_for_token(credentials)
                    .await?
                {
                    return Ok(Caller {
                        identity: Identity::Sandbox(domain),
                    });
                }
            }
            failed(state, ip).await;
            return Err(ApiError::unauthorized("unknown token"));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            let key = LoginCache::key(user, password);
            if let Some((id, address)) = state.logins.get(&key) {
                return Ok(Caller {
                    identity: Identity::Account(id, address),
                });
            }
            let delayed = throttle(state, ip).await;
            match state.ctx.shared.store.authenticate(user, password).await? {
                Some(account) => {
                    if let Some(ip) = ip {
                        let shared = &state.ctx.shared;
                        shared.throttle.success(ip, &shared.store, delayed).await;
                    }
                    state.logins.put(key, account.id, account.address.clone());
                    Ok(Caller {
                        identity: Identity::Account(account.id, account.address),
                    })
                }
                None => {
                    failed(state, ip).await;
                    Err(ApiError::unauthorized("wrong address or password"))
                }
            }
        } else {
            Err(ApiError::unauthorized(format!(
                "unsupported authorization scheme {scheme:?}"
            )))
        }
    }
}

/// Methods that change nothing (RFC 9110 9.2.1), which need no CSRF
/// check.
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a browser says this request comes from another site's page:
/// `Sec-Fetch-Site` (sent by current browsers) other than `same-origin`
/// or `none`, or an `Origin` other than this server's own (`null` too:
/// a sandboxed frame or a page with an opaque origin).
pub(crate) fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return true;
        }
    }
    let Some(origin) = text(ORIGIN.as_str()) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, text(HOST.as_str())) {
        (Some(authority), Some(host)) => !authority.eq_ignore_ascii_case(host),
        _ => true,
    }
}

/// Waits as long as the shared throttle says for this client address;
/// whether it waited at all.
pub(crate) async fn throttle(state: &AppState, ip: Option<std::net::IpAddr>) -> bool {
    let Some(ip) = ip else {
        return false;
    };
    let shared = &state.ctx.shared;
    let delay = shared.throttle.delay(ip, &shared.store).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    !delay.is_zero()
}

/// Counts a failed login, in the store too before the client is answered.
pub(crate) async fn failed(state: &AppState, ip: Option<std::net::IpAddr>) {
    if let Some(ip) = ip {
        let shared = &state.ctx.shared;
        if let Some(counting) = shared.throttle.failure(ip, &shared.store) {
            let _ = tokio::time::timeout(common::sasl::STORE_WAIT, counting).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_a_caller_owns() {
        let sandbox = Caller {
            identity: Identity::Sandbox("abc.sandbox.test".into()),
        };
        assert!(sandbox.owns_address("x@ABC.sandbox.test"));
        assert!(!sandbox.owns_address("x@evil-abc.sandbox.test"));
        assert!(!sandbox.owns_address("x@abc.sandbox.test.evil"));
        let account = Caller {
            identity: Identity::Account(AccountId(3), "alice@localhost".into()),
        };
        assert!(account.owns_address("Alice+news@localhost"));
        assert!(!account.owns_address("bob@localhost"));
        assert!(account.sees_account(3, "whatever"));
        assert!(!account.sees_account(4, "alice@localhost"));
        assert!(same_secret("abc", "abc"));
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, axum::http::HeaderValue::from_static(value));
            }
            map
        };
        assert!(!cross_site(&headers(&[])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        let local = [
            ("host", "127.0.0.1:8025"),
            ("origin", "http://127.0.0.1:8025"),
        ];
        assert!(!cross_site(&headers(&local)));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8025"),
            ("origin", "http://127.0.0.1:3000")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8025"),
            ("origin", "null")
        ])));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "abcd"));
    }
}
