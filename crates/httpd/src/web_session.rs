//! Logins of the web page: a session cookie and its CSRF token.
//!
//! A browser cannot put an `Authorization: Bearer` header on an
//! `EventSource`, and a Basic login box cannot be logged out of; so the
//! page logs in once (`POST /api/v1/login`) and gets a cookie:
//!
//! - `postern_session=<id>`: 32 random bytes (base64url), `HttpOnly` (no
//!   script reads it), `SameSite=Strict` (no other site's page sends it),
//!   `Path=/`, and `Secure` when the login came over TLS. No `Max-Age`:
//!   the browser drops it when it closes; the server drops it after
//!   `[http] session_idle_secs` without a request, at logout, and at
//!   restart (sessions live in this process's memory only).
//! - A CSRF token, 32 more random bytes, that the page reads from the
//!   login answer or `GET /api/v1/session` (same-origin JSON: another
//!   site's page cannot read it) and sends back as the `X-CSRF-Token`
//!   header on every `POST`, `PUT` and `DELETE`. A request authenticated
//!   by the cookie without the right token is refused (`403`), whatever
//!   its origin. Requests with an `Authorization` header are not
//!   CSRF-able (a browser never adds one by itself) and need no token.
//!
//! The cookie never appears in a URL, so it does not end up in logs,
//! history or `Referer` headers, as a token in the query string would.
//! The server keeps only a SHA-256 of each id, so a session is found by
//! hash lookup rather than by comparing secrets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine as _;
use sha2::Digest as _;

use crate::access::Identity;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "postern_session";

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// One logged-in page.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub identity: Identity,
    pub csrf_token: String,
    last_used: Instant,
}

/// Every live login, by the hash of its cookie.
pub struct WebSessions {
    entries: Mutex<HashMap<[u8; 32], WebSession>>,
    idle: Duration,
    max: usize,
}

fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn key(id: &str) -> [u8; 32] {
    sha2::Sha256::digest(id.as_bytes()).into()
}

impl WebSessions {
    pub fn new(idle: Duration, max: usize) -> WebSessions {
        WebSessions {
            entries: Mutex::new(HashMap::new()),
            idle,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], WebSession>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `identity`: its cookie value and the session.
    pub fn create(&self, identity: Identity) -> std::io::Result<(String, WebSession)> {
        let id = random_token()?;
        let session = WebSession {
            identity,
            csrf_token: random_token()?,
            last_used: Instant::now(),
        };
        let mut entries = self.lock();
        if entries.len() >= self.max {
            let idle = self.idle;
            entries.retain(|_, s| s.last_used.elapsed() < idle);
            if entries.len() >= self.max {
                // The least recently used one makes room.
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(k, _)| *k)
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key(&id), session.clone());
        Ok((id, session))
    }

    /// The live session this cookie value names, its idle clock reset.
    pub fn get(&self, id: &str) -> Option<WebSession> {
        let mut entries = self.lock();
        let k = key(id);
        match entries.get_mut(&k) {
            Some(s) if s.last_used.elapsed() < self.idle => {
                s.last_used = Instant::now();
                Some(s.clone())
            }
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends the session this cookie value names.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&key(id));
    }
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, value) = pair.trim().split_once('=')?;
            (n.trim() == name).then(|| value.trim().trim_matches('"'))
        })
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that gives the browser session `id`.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_expire_when_idle_and_make_room() {
        let sessions = WebSessions::new(Duration::from_millis(50), 2);
        let (a, first) = sessions.create(Identity::Open).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(first.csrf_token, a);
        assert!(sessions.get(&a).is_some());
        assert!(sessions.get("not-a-session").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&a).is_none(), "idle too long");
        let (b, _) = sessions.create(Identity::Open).unwrap();
        let (c, _) = sessions.create(Identity::Admin).unwrap();
        let (d, _) = sessions.create(Identity::Admin).unwrap();
        assert!(sessions.get(&b).is_none(), "the least recently used went");
        assert!(sessions.get(&c).is_some() && sessions.get(&d).is_some());
        sessions.remove(&c);
        assert!(sessions.get(&c).is_none());
    }

    #[test]
    fn cookies_read_and_written() {
        let mut headers = HeaderMap::new();
        headers.append(
            axum::http::header::COOKIE,
            HeaderValue::from_static("a=1; postern_session=abc ; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "postern"), None);
        assert_eq!(
            set_cookie("xyz", true),
            "postern_session=xyz; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
