//! The accept policy: which senders and recipients this server takes.
//!
//! ## Who may relay
//!
//! Mail for a local domain (configured in `local_domains` or known to the
//! store) is accepted from anyone when the address resolves to an account
//! or alias, after removing a sub-address (`alice+tag@localhost` →
//! `alice@localhost`). Mail for any other domain is accepted only from a
//! client that may relay: one that authenticated (submission), or one whose
//! address is in `[relay] trusted_networks` (empty by default). Everyone
//! else gets 554 5.7.1, whatever tricks the address plays:
//!
//! - a domain is local only on an exact, case-insensitive match, so
//!   `user@localhost.`, `user@LOCALHOST` variants with Unicode look-alikes
//!   and `user@other@localhost` never name another server; the domain is
//!   everything after the last `@`, so `"user@other"@localhost` and
//!   `user@other@localhost` are local parts of ours that name no account
//!   (550 5.1.1);
//! - `user%other@localhost` and `other!user@localhost` are local parts too:
//!   we never route on `%` or `!`;
//! - a source route `<@localhost:user@other>` is dropped by the grammar
//!   (RFC 5321 4.1.1.3), leaving `user@other`, which is remote;
//! - address literals (`user@[1.2.3.4]`) are never routed, even for clients
//!   that may relay (553 5.1.2), and neither is a domain that is not a
//!   valid host name (trailing dot, empty label, bad characters).
//!
//! ## postmaster
//!
//! RFC 5321 4.5.1: every local domain MUST take mail for `postmaster`, and
//! a bare `RCPT TO:<postmaster>` names this server's (we read it as
//! `postmaster@` the first of `local_domains`). Where it goes, first match
//! wins:
//!
//! 1. an account or alias `postmaster@domain` (as any address);
//! 2. the account the top-level `postmaster` key names (an address of an
//!    account or alias; default unset);
//! 3. the domain's oldest account;
//! 4. the oldest account of any domain: a domain added with `postern
//!    domain add` and no accounts yet still takes postmaster mail.
//!
//! Only a server with no account at all refuses it (550 5.1.1): there is
//! no mailbox to put it in.
//!
//! ## Who may send as whom
//!
//! An authenticated client's envelope sender must be one of its account's
//! addresses or aliases (sub-addresses included), else 553 5.7.1, as
//! Postfix's `reject_sender_login_mismatch`; `[relay]
//! require_sender_login_match = false` lifts that. The null sender `<>` is
//! not an address of anyone's, so it is refused too when the check is on.

use std::net::IpAddr;

use common::config::Config;
use store::{Account, Store, StoreError};

/// Where a recipient address leads, whoever asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local account (directly, through an alias or a sub-address).
    Local(Account),
    /// The domain is local but no account or alias has this address.
    UnknownUser,
    /// Another domain: mail goes to its servers.
    Remote { domain: String },
    /// Not deliverable anywhere: an address literal or a malformed domain.
    Unroutable,
}

/// What to do with one `RCPT TO` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver to this local account.
    Local(Account),
    /// Relay to another domain's servers.
    Remote,
    /// The domain is local but no account or alias has this address.
    UnknownUser,
    /// The domain is not ours and this client may not relay.
    RelayDenied,
    /// The domain cannot be routed (address literal, malformed name).
    Unroutable,
    /// Capture mode: kept in a mailbox of its own, whatever the domain.
    Captured,
}

/// Capture mode's verdict: any `local@domain` is kept; an address without
/// both parts cannot name a mailbox.
pub fn capture_recipient(address: &str) -> Verdict {
    match split_address(address) {
        Some(_) if !address.chars().any(char::is_control) => Verdict::Captured,
        _ => Verdict::Unroutable,
    }
}

/// Splits `local@domain` at the last `@`.
pub fn split_address(address: &str) -> Option<(&str, &str)> {
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some((local, domain))
}

/// Is `domain` one of ours? Exact match only, ignoring ASCII case.
pub async fn is_local_domain(
    config: &Config,
    store: &Store,
    domain: &str,
) -> Result<bool, StoreError> {
    if config
        .local_domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Ok(true);
    }
    store.is_local_domain(domain).await
}

/// Is `domain` a host name we would look up? Labels of letters, digits and
/// hyphens (or UTF-8, for SMTPUTF8 mail), 1–63 octets each, not starting or
/// ending with a hyphen, at most 253 octets in all, no trailing dot.
pub fn is_routable_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
    })
}

/// What a bare `<postmaster>` (no domain, RFC 5321 4.1.1.3) stands for:
/// `postmaster@` the first local domain.
pub fn bare_postmaster(config: &Config) -> String {
    let domain = config
        .local_domains
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    format!("postmaster@{domain}")
}

/// Where `address` leads. `address` is as smtp-proto parsed it, without
/// angle brackets or source route.
pub async fn classify(
    config: &Config,
    store: &Store,
    address: &str,
) -> Result<Destination, StoreError> {
    let Some((local, domain)) = split_address(address) else {
        return Ok(Destination::Unroutable);
    };
    if !is_local_domain(config, store, domain).await? {
        if !is_routable_domain(domain) {
            return Ok(Destination::Unroutable);
        }
        return Ok(Destination::Remote {
            domain: domain.to_lowercase(),
        });
    }
    if let Some(account) = store.resolve_recipient(address).await? {
        return Ok(Destination::Local(account));
    }
    let base = strip_subaddress(local, &config.smtp.recipient_delimiter);
    if let Some(base) = base {
        if let Some(account) = store.resolve_recipient(&format!("{base}@{domain}")).await? {
            return Ok(Destination::Local(account));
        }
    }
    if base.unwrap_or(local).eq_ignore_ascii_case("postmaster") {
        if let Some(account) = postmaster(config, store, domain).await? {
            return Ok(Destination::Local(account));
        }
    }
    Ok(Destination::UnknownUser)
}

/// Where postmaster mail for a local `domain` goes when no account or
/// alias has that address (the module's "postmaster", steps 2 to 4).
async fn postmaster(
    config: &Config,
    store: &Store,
    domain: &str,
) -> Result<Option<Account>, StoreError> {
    if let Some(configured) = config.postmaster.as_deref() {
        if let Some(account) = store.resolve_recipient(configured).await? {
            return Ok(Some(account));
        }
        tracing::warn!(
            postmaster = configured,
            "the postmaster address is no account or alias"
        );
    }
    store.postmaster_account(domain).await
}

/// Decides on one recipient at `RCPT`. `may_relay`: the client
/// authenticated or is in a trusted network.
pub async fn check_recipient(
    config: &Config,
    store: &Store,
    address: &str,
    may_relay: bool,
) -> Result<Verdict, StoreError> {
    Ok(match classify(config, store, address).await? {
        Destination::Local(account) => Verdict::Local(account),
        Destination::UnknownUser => Verdict::UnknownUser,
        // A client that may not relay learns nothing more about the
        // address than that we will not take it.
        Destination::Remote { .. } | Destination::Unroutable if !may_relay => Verdict::RelayDenied,
        Destination::Remote { .. } => Verdict::Remote,
        Destination::Unroutable => Verdict::Unroutable,
    })
}

/// May the account `login` (its primary address) use `sender` as envelope
/// sender? Yes when the sender resolves to the same account, directly, by
/// alias or by sub-address.
pub async fn sender_matches_login(
    config: &Config,
    store: &Store,
    login: &str,
    sender: &str,
) -> Result<bool, StoreError> {
    let Some((_, domain)) = split_address(sender) else {
        return Ok(false);
    };
    if !is_local_domain(config, store, domain).await? {
        return Ok(false);
    }
    match classify(config, store, sender).await? {
        Destination::Local(account) => Ok(account.address.eq_ignore_ascii_case(login)),
        _ => Ok(false),
    }
}

/// `alice+tag` → `alice` for delimiter `+`; `None` if there is nothing to
/// strip.
pub fn strip_subaddress<'a>(local: &'a str, delimiter: &str) -> Option<&'a str> {
    if delimiter.is_empty() {
        return None;
    }
    let (base, _) = local.split_once(delimiter)?;
    (!base.is_empty()).then_some(base)
}

/// `[relay] trusted_networks`, parsed.
#[derive(Debug, Clone, Default)]
pub struct TrustedNetworks {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedNetworks {
    /// Parses CIDR strings (`10.0.0.0/8`, `::1/128`, or a bare address for
    /// one host). The error names the bad entry.
    pub fn parse(entries: &[String]) -> Result<TrustedNetworks, String> {
        let mut networks = Vec::with_capacity(entries.len());
        for entry in entries {
            let (addr, bits) = match entry.split_once('/') {
                Some((addr, bits)) => (addr, Some(bits)),
                None => (entry.as_str(), None),
            };
            let bad = || {
                format!(
                    "[relay] trusted_networks: {entry:?} is not a network (a.b.c.d/n or ipv6/n)"
                )
            };
            let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b.trim().parse::<u8>().map_err(|_| bad())?,
                None => max,
            };
            if bits > max {
                return Err(bad());
            }
            networks.push((ip, bits));
        }
        Ok(TrustedNetworks { networks })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.networks.iter().any(|&(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u128::from(u32::from(n)), u128::from(u32::from(a)), bits, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), bits, 128),
            _ => false,
        })
    }
}

/// Do the first `bits` of two `width`-bit numbers agree?
fn prefix_eq(a: u128, b: u128, bits: u8, width: u32) -> bool {
    let bits = u32::from(bits).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_last_at() {
        assert_eq!(split_address("a@b"), Some(("a", "b")));
        assert_eq!(split_address("a@b@c"), Some(("a@b", "c")));
        assert_eq!(split_address("@c"), None);
        assert_eq!(split_address("a@"), None);
        assert_eq!(split_address("abc"), None);
    }

    #[test]
    fn sub_addresses() {
        assert_eq!(strip_subaddress("alice+tag", "+"), Some("alice"));
        assert_eq!(strip_subaddress("alice+a+b", "+"), Some("alice"));
        assert_eq!(strip_subaddress("alice", "+"), None);
        assert_eq!(strip_subaddress("+tag", "+"), None);
        assert_eq!(strip_subaddress("alice+tag", ""), None);
        assert_eq!(strip_subaddress("alice-tag", "-"), Some("alice"));
    }

    #[test]
    fn routable_domains() {
        for ok in [
            "example.org",
            "a.b-c.d",
            "xn--bcher-kva.example",
            "bücher.example",
            "localhost",
        ] {
            assert!(is_routable_domain(ok), "{ok}");
        }
        for bad in [
            "",
            "example.org.",
            ".example.org",
            "a..b",
            "[1.2.3.4]",
            "[IPv6:::1]",
            "-a.example",
            "a-.example",
            "a_b.example",
            "a b.example",
            "a%b.example",
            &"a".repeat(64),
            &format!("{}.x", "a.".repeat(130)),
        ] {
            assert!(!is_routable_domain(bad), "{bad}");
        }
    }

    #[test]
    fn trusted_networks() {
        let t =
            TrustedNetworks::parse(&["10.0.0.0/8".into(), "192.168.1.7".into(), "fd00::/8".into()])
                .unwrap();
        assert!(t.contains("10.200.3.4".parse().unwrap()));
        assert!(t.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!t.contains("11.0.0.1".parse().unwrap()));
        assert!(t.contains("192.168.1.7".parse().unwrap()));
        assert!(!t.contains("192.168.1.8".parse().unwrap()));
        assert!(t.contains("fd12::1".parse().unwrap()));
        assert!(!t.contains("fe80::1".parse().unwrap()));
        assert!(!TrustedNetworks::default().contains("127.0.0.1".parse().unwrap()));
        let all = TrustedNetworks::parse(&["0.0.0.0/0".into()]).unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            let e = TrustedNetworks::parse(&[bad.into()]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
