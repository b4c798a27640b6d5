//! The accept policy: which recipients this server takes at `RCPT`.
//!
//! In this release Postern relays nothing: a recipient is accepted only if
//! its domain is local (configured in `local_domains` or known to the store)
//! and the address resolves to an account or alias, after removing a
//! sub-address (`alice+tag@localhost` → `alice@localhost`). Every other
//! address is refused with 554 5.7.1, whatever tricks it plays: a domain is
//! local only on an exact, case-insensitive match, so `user@localhost.`,
//! `user@[127.0.0.1]` and `user@other@localhost` forms never reach another
//! server; `user%other@localhost` and `other!user@localhost` are local
//! parts that name no account (550 5.1.1).

use common::config::Config;
use store::{Account, Store, StoreError};

/// What to do with one `RCPT TO` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver to this local account.
    Local(Account),
    /// The domain is local but no account or alias has this address.
    UnknownUser,
    /// The domain is not ours and relaying is not allowed.
    RelayDenied,
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

/// Decides on one recipient. `address` is as smtp-proto parsed it, without
/// angle brackets or source route; the empty string stands for a bare
/// `<postmaster>`.
pub async fn check_recipient(
    config: &Config,
    store: &Store,
    address: &str,
) -> Result<Verdict, StoreError> {
    let postmaster;
    let address = if address.is_empty() {
        let domain = config
            .local_domains
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        postmaster = format!("postmaster@{domain}");
        postmaster.as_str()
    } else {
        address
    };
    let Some((local, domain)) = split_address(address) else {
        return Ok(Verdict::RelayDenied);
    };
    if !is_local_domain(config, store, domain).await? {
        return Ok(Verdict::RelayDenied);
    }
    if let Some(account) = store.resolve_recipient(address).await? {
        return Ok(Verdict::Local(account));
    }
    if let Some(base) = strip_subaddress(local, &config.smtp.recipient_delimiter) {
        if let Some(account) = store.resolve_recipient(&format!("{base}@{domain}")).await? {
            return Ok(Verdict::Local(account));
        }
    }
    Ok(Verdict::UnknownUser)
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
}
