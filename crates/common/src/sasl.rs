//! SASL mechanisms PLAIN (RFC 4616) and LOGIN, and the failed-login throttle.
//! Decoding only: the daemons run the exchange in their protocol's framing
//! and check the password with the store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
/// A lone `*` is `Cancelled`; a lone `=` (the empty response, RFC 4954) is
/// `Malformed`, as is anything without exactly two NULs, an empty user name
/// or password, or invalid UTF-8. Leading and trailing white space is ignored
/// and base64 padding is optional.
pub fn decode_plain(base64: &str) -> Result<Credentials, SaslError> {
    const MECH: &str = "PLAIN";
    let text = decode_response(base64, MECH)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(MECH));
    };
    if username.is_empty() || password.is_empty() {
        return Err(SaslError::Malformed(MECH));
    }
    Ok(Credentials {
        authzid: (!authzid.is_empty()).then(|| authzid.to_string()),
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// Decodes one base64 LOGIN step (user name or password). `*` is
/// `Cancelled`; `=` or an empty line is the empty string. Invalid UTF-8 or a
/// NUL is `Malformed`.
pub fn decode_login_step(base64: &str) -> Result<String, SaslError> {
    const MECH: &str = "LOGIN";
    let trimmed = base64.trim();
    if trimmed.is_empty() || trimmed == "=" {
        return Ok(String::new());
    }
    let text = decode_response(trimmed, MECH)?;
    if text.contains('\0') {
        return Err(SaslError::Malformed(MECH));
    }
    Ok(text)
}

/// Shared by both mechanisms: `*` cancels, `=` (empty) is malformed, then
/// base64 (standard alphabet, padding optional) and UTF-8.
fn decode_response(base64: &str, mech: &'static str) -> Result<String, SaslError> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine as _;

    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    let trimmed = base64.trim();
    if trimmed == "*" {
        return Err(SaslError::Cancelled);
    }
    if trimmed.is_empty() || trimmed == "=" {
        return Err(SaslError::Malformed(mech));
    }
    let bytes = ENGINE.decode(trimmed).map_err(|_| SaslError::Base64)?;
    String::from_utf8(bytes).map_err(|_| SaslError::Malformed(mech))
}

/// The base64 of LOGIN's prompts, `Username:` and `Password:`.
pub const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// How long an address's failures are remembered after its last failure.
const THROTTLE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Most addresses the throttle tracks; past this, old entries are dropped.
const THROTTLE_MAX_ENTRIES: usize = 10_000;

/// How long the store's count may take to answer (or to be written)
/// before the count in memory is used alone.
pub const STORE_WAIT: Duration = Duration::from_secs(2);

/// Counts failed logins per IP address (shared by all sessions of all
/// daemons in a process) and says how long to wait before answering the
/// next attempt. Entries age out after a quiet period (15 minutes), and the
/// table is bounded (10,000 addresses; the oldest are forgotten first).
/// IPv4-mapped IPv6 addresses count as their IPv4 address.
///
/// The daemons count through the store as well ([`AuthThrottle::delay`],
/// [`AuthThrottle::failure`], [`AuthThrottle::success`]): every process
/// on the data dir, and every node on one PostgreSQL database, then sees
/// the same count, so guessing through two nodes is no faster than
/// through one, and a login on one node forgets the address on all. The
/// table in memory is the fallback: when the store fails or is slow to
/// answer ([`STORE_WAIT`]) this process's own count decides, so a store
/// that is down neither locks everyone out nor lets guessing run free.
pub struct AuthThrottle {
    config: AuthConfig,
    /// Per address: failures, time of the last failure.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// The store failed to count this process's last failure (a full
    /// disk, say, where reads still work): its count may be short, and
    /// the one in memory is taken when larger.
    store_behind: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AuthThrottle {
    pub fn new(config: &AuthConfig) -> AuthThrottle {
        AuthThrottle {
            config: config.clone(),
            failures: Mutex::new(HashMap::new()),
            store_behind: Default::default(),
        }
    }

    /// The delay to apply before checking this IP's next attempt: zero
    /// below `failures_before_delay` failures, then `delay_step_secs` per
    /// failure from that threshold on, at most `max_delay_secs`.
    pub fn delay_for(&self, ip: IpAddr) -> Duration {
        self.delay_at(ip, Instant::now())
    }

    pub fn record_failure(&self, ip: IpAddr) {
        self.failure_at(ip, Instant::now());
    }

    /// Forgets this IP's failures.
    pub fn record_success(&self, ip: IpAddr) {
        self.table().remove(&ip.to_canonical());
    }

    /// [`AuthThrottle::delay_for`] from the store's count (all
    /// processes', all nodes'); from this process's own if the store fails
    /// or takes longer than [`STORE_WAIT`], or if it is larger while the
    /// store fails to count.
    pub async fn delay(&self, ip: IpAddr, store: &store::Store) -> Duration {
        let local = self.delay_for(ip);
        let key = ip.to_canonical().to_string();
        let since = unix_now() - THROTTLE_MEMORY.as_secs() as i64;
        let shared = match tokio::time::timeout(STORE_WAIT, store.login_failures(&key, since)).await
        {
            Ok(Ok(failures)) => failures,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "login throttle: the store's count is unavailable; counting locally");
                return local;
            }
            Err(_) => {
                tracing::warn!("login throttle: the store's count is slow; counting locally");
                return local;
            }
        };
        let shared = self.delay_after(shared);
        if self.store_behind.load(std::sync::atomic::Ordering::Relaxed) {
            shared.max(local)
        } else {
            shared
        }
    }

    /// [`AuthThrottle::record_failure`], and the same failure counted in
    /// the store by a task of its own (its handle, for a caller that
    /// wants it counted before going on); a failure there is logged.
    pub fn failure(&self, ip: IpAddr, store: &store::Store) -> Option<tokio::task::JoinHandle<()>> {
        self.record_failure(ip);
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let store = store.clone();
        let key = ip.to_canonical().to_string();
        let behind = self.store_behind.clone();
        Some(runtime.spawn(async move {
            let now = unix_now();
            let since = now - THROTTLE_MEMORY.as_secs() as i64;
            let max = THROTTLE_MAX_ENTRIES as u32;
            let counted = store.record_login_failure(&key, now, since, max).await;
            if let Err(e) = &counted {
                tracing::warn!(error = %e, "login throttle: cannot count a failure in the store");
            }
            behind.store(counted.is_err(), std::sync::atomic::Ordering::Relaxed);
        }))
    }

    /// [`AuthThrottle::record_success`], and the store forgets the
    /// address too, by a task of its own. When the attempt was `delayed`
    /// (so failures are known to be counted) the forgetting is awaited,
    /// at most [`STORE_WAIT`], before the caller answers: the address's
    /// next attempt, here or on another node, must not find them. A login
    /// that was not delayed does not wait on a store write.
    pub async fn success(&self, ip: IpAddr, store: &store::Store, delayed: bool) {
        self.record_success(ip);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = store.clone();
        let key = ip.to_canonical().to_string();
        let forgetting = runtime.spawn(async move {
            if let Err(e) = store.forget_login_failures(&key).await {
                tracing::warn!(error = %e, "login throttle: cannot forget failures in the store");
            }
        });
        if delayed {
            let _ = tokio::time::timeout(STORE_WAIT, forgetting).await;
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delay_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let ip = ip.to_canonical();
        let mut table = self.table();
        let failures = match table.get(&ip) {
            Some(&(_, last)) if now.saturating_duration_since(last) >= THROTTLE_MEMORY => {
                table.remove(&ip);
                return Duration::ZERO;
            }
            Some(&(failures, _)) => failures,
            None => return Duration::ZERO,
        };
        drop(table);
        self.delay_after(failures)
    }

    /// The delay after `failures` failed logins.
    fn delay_after(&self, failures: u32) -> Duration {
        let threshold = self.config.failures_before_delay;
        if failures < threshold {
            return Duration::ZERO;
        }
        let steps = u64::from(failures - threshold) + 1;
        let secs = self
            .config
            .delay_step_secs
            .saturating_mul(steps)
            .min(self.config.max_delay_secs);
        Duration::from_secs(secs)
    }

    fn failure_at(&self, ip: IpAddr, now: Instant) {
        let ip = ip.to_canonical();
        let mut table = self.table();
        let entry = table.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= THROTTLE_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        if table.len() > THROTTLE_MAX_ENTRIES {
            prune(&mut table, now);
        }
    }
}

/// Seconds since the Unix epoch: the store's counts are shared between
/// processes and hosts, which share no `Instant`.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Drops expired entries; if the table is still too big, keeps only the
/// most recent half.
fn prune(table: &mut HashMap<IpAddr, (u32, Instant)>, now: Instant) {
    table.retain(|_, (_, last)| now.saturating_duration_since(*last) < THROTTLE_MEMORY);
    if table.len() <= THROTTLE_MAX_ENTRIES {
        return;
    }
    let mut times: Vec<Instant> = table.values().map(|&(_, last)| last).collect();
    let keep = THROTTLE_MAX_ENTRIES / 2;
    let cut = times.len() - keep;
    let (_, &mut cutoff, _) = times.select_nth_unstable(cut);
    table.retain(|_, (_, last)| *last > cutoff);
}

/// Whether a plaintext login may happen on this connection: always over
/// TLS; without TLS if `plaintext_anywhere`, or from a loopback address
/// (IPv4-mapped included) if `plaintext_on_loopback`.
pub fn plaintext_allowed(config: &AuthConfig, peer: IpAddr, tls: bool) -> bool {
    tls || config.plaintext_anywhere
        || (config.plaintext_on_loopback && peer.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn plain_basic() {
        let c = decode_plain(&b64(b"\0alice\0secret")).unwrap();
        assert_eq!(c.authzid, None);
        assert_eq!(c.username, "alice");
        assert_eq!(c.password, "secret");
        // RFC 4616 section 4 example.
        let c = decode_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        assert_eq!(c.username, "tim");
        assert_eq!(c.password, "tanstaaftanstaaf");
    }

    #[test]
    fn plain_authzid_and_utf8() {
        let c = decode_plain(&b64("admin\0jöhn@example.org\0pässwörd".as_bytes())).unwrap();
        assert_eq!(c.authzid.as_deref(), Some("admin"));
        assert_eq!(c.username, "jöhn@example.org");
        assert_eq!(c.password, "pässwörd");
    }

    #[test]
    fn plain_padding_and_whitespace_tolerated() {
        let padded = b64(b"\0bob\0pw");
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(decode_plain(unpadded).unwrap().username, "bob");
        assert_eq!(
            decode_plain(&format!("  {padded}\r\n")).unwrap().username,
            "bob"
        );
    }

    #[test]
    fn plain_cancel_and_empty() {
        assert_eq!(decode_plain("*"), Err(SaslError::Cancelled));
        assert_eq!(decode_plain("="), Err(SaslError::Malformed("PLAIN")));
        assert_eq!(decode_plain(""), Err(SaslError::Malformed("PLAIN")));
    }

    #[test]
    fn plain_malformed() {
        assert_eq!(decode_plain("not base64!"), Err(SaslError::Base64));
        assert_eq!(decode_plain("AAA*"), Err(SaslError::Base64));
        let m = Err(SaslError::Malformed("PLAIN"));
        assert_eq!(decode_plain(&b64(b"alice secret")), m); // no NUL
        assert_eq!(decode_plain(&b64(b"alice\0secret")), m); // one NUL
        assert_eq!(decode_plain(&b64(b"\0alice\0sec\0ret")), m); // three
        assert_eq!(decode_plain(&b64(b"\0\0secret")), m); // empty user
        assert_eq!(decode_plain(&b64(b"\0alice\0")), m); // empty password
        assert_eq!(decode_plain(&b64(b"\0al\xffice\0secret")), m); // not UTF-8
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = decode_plain(&b64(b"\0alice\0hunter2")).unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn login_steps() {
        assert_eq!(
            decode_login_step(LOGIN_USERNAME_PROMPT).unwrap(),
            "Username:"
        );
        assert_eq!(
            decode_login_step(LOGIN_PASSWORD_PROMPT).unwrap(),
            "Password:"
        );
        assert_eq!(decode_login_step(&b64(b"alice")).unwrap(), "alice");
        assert_eq!(decode_login_step("YWxpY2U\r\n").unwrap(), "alice");
        assert_eq!(decode_login_step("*"), Err(SaslError::Cancelled));
        assert_eq!(decode_login_step("=").unwrap(), "");
        assert_eq!(decode_login_step("").unwrap(), "");
        assert_eq!(decode_login_step("%%%"), Err(SaslError::Base64));
        assert_eq!(
            decode_login_step(&b64(b"\xff\xfe")),
            Err(SaslError::Malformed("LOGIN"))
        );
        assert_eq!(
            decode_login_step(&b64(b"a\0b")),
            Err(SaslError::Malformed("LOGIN"))
        );
    }

    fn config() -> AuthConfig {
        AuthConfig {
            failures_before_delay: 3,
            delay_step_secs: 2,
            max_delay_secs: 15,
            ..AuthConfig::default()
        }
    }

    #[test]
    fn throttle_delays_after_threshold_and_caps() {
        let t = AuthThrottle::new(&config());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut seen = Vec::new();
        for _ in 0..12 {
            seen.push(t.delay_for(ip).as_secs());
            t.record_failure(ip);
        }
        assert_eq!(seen, [0, 0, 0, 2, 4, 6, 8, 10, 12, 14, 15, 15]);
        assert_eq!(t.delay_for(other), Duration::ZERO);
        t.record_success(ip);
        assert_eq!(t.delay_for(ip), Duration::ZERO);
    }

    #[test]
    fn throttle_treats_mapped_ipv4_as_ipv4() {
        let t = AuthThrottle::new(&config());
        let v4: IpAddr = "192.0.2.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            t.record_failure(mapped);
        }
        assert_eq!(t.delay_for(v4), Duration::from_secs(2));
    }

    #[test]
    fn throttle_forgets_after_quiet_period() {
        let t = AuthThrottle::new(&config());
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..5 {
            t.failure_at(ip, start);
        }
        assert_eq!(t.delay_at(ip, start), Duration::from_secs(6));
        let later = start + THROTTLE_MEMORY + Duration::from_secs(1);
        assert_eq!(t.delay_at(ip, later), Duration::ZERO);
        // Forgotten: counting starts again.
        t.failure_at(ip, later);
        assert_eq!(t.delay_at(ip, later), Duration::ZERO);
    }

    #[test]
    fn throttle_table_is_bounded() {
        let t = AuthThrottle::new(&config());
        let start = Instant::now();
        for i in 0..(THROTTLE_MAX_ENTRIES as u32 + 500) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failure_at(ip, start + Duration::from_millis(u64::from(i)));
        }
        assert!(t.table().len() <= THROTTLE_MAX_ENTRIES);
        // The newest address is still remembered.
        let newest = IpAddr::from(std::net::Ipv4Addr::from(
            0x0a00_0000 + THROTTLE_MAX_ENTRIES as u32 + 499,
        ));
        assert!(t.table().contains_key(&newest));
    }

    #[test]
    fn plaintext_policy() {
        let d = AuthConfig::default();
        let lo4: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(plaintext_allowed(&d, lo4, false));
        assert!(plaintext_allowed(&d, lo6, false));
        assert!(plaintext_allowed(&d, mapped, false));
        assert!(!plaintext_allowed(&d, remote, false));
        assert!(plaintext_allowed(&d, remote, true));
        let strict = AuthConfig {
            plaintext_on_loopback: false,
            ..AuthConfig::default()
        };
        assert!(!plaintext_allowed(&strict, lo4, false));
        assert!(plaintext_allowed(&strict, lo4, true));
        let open = AuthConfig {
            plaintext_anywhere: true,
            ..AuthConfig::default()
        };
        assert!(plaintext_allowed(&open, remote, false));
    }

    #[tokio::test]
    async fn processes_on_one_store_count_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::open(dir.path()).unwrap();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let (one, two) = (AuthThrottle::new(&config()), AuthThrottle::new(&config()));
        for _ in 0..3 {
            if let Some(counting) = one.failure(ip, &store) {
                counting.await.unwrap();
            }
        }
        assert_eq!(two.delay_for(ip), Duration::ZERO, "nothing in two's memory");
        assert_eq!(two.delay(ip, &store).await, one.delay_for(ip));
        assert!(!two.delay(ip, &store).await.is_zero());
        // A login through two forgets the address for one as well.
        two.success(ip, &store, false).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !one.delay(ip, &store).await.is_zero() {
            assert!(std::time::Instant::now() < deadline, "not forgotten");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
