//! Accounts, local domains and aliases: creating, authenticating
//! (argon2id on the password workers) and resolving recipients.

use super::{now, Store};
use crate::sql::accounts;
use crate::types::*;

impl Store {
    /// Creates an account with an argon2id hash of `password` and its six
    /// default mailboxes; adds the address's domain to the local domains.
    /// The address is lower-cased. `AlreadyExists` if taken.
    pub async fn add_account(&self, address: &str, password: &str) -> Result<Account> {
        let address = accounts::normalize_address(address)?;
        let password = password.to_owned();
        let hash = self
            .passwords
            .run(move || accounts::hash_password(&password))
            .await??;
        self.inner
            .write(false, move |conn| {
                accounts::insert_account(conn, &address, &hash, now())
            })
            .await
    }

    /// `NotFound` if there is no such account.
    pub async fn set_password(&self, address: &str, password: &str) -> Result<()> {
        let address = accounts::normalize_address(address)
            .map_err(|_| StoreError::NotFound(format!("account {address}")))?;
        let password = password.to_owned();
        let hash = self
            .passwords
            .run(move || accounts::hash_password(&password))
            .await??;
        self.inner
            .write(false, move |conn| {
                accounts::update_password(conn, &address, &hash)
            })
            .await
    }

    /// Deletes the account, its mailboxes, messages and aliases (blob
    /// references released). `NotFound` if there is no such account.
    pub async fn delete_account(&self, address: &str) -> Result<()> {
        let address = address.to_lowercase();
        self.inner
            .write(true, move |conn| accounts::delete_account(conn, &address))
            .await
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        self.inner.read(accounts::list_accounts).await
    }

    /// The account with this exact address (case-insensitive), if any.
    pub async fn account(&self, address: &str) -> Result<Option<Account>> {
        let address = address.to_lowercase();
        self.inner
            .lookup(move |conn| accounts::find_account(conn, &address))
            .await
    }

    /// Checks a password (argon2 runs on a blocking thread). `Ok(None)` for
    /// a wrong password or an unknown account; both take about the same time.
    pub async fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let address = address.to_lowercase();
        let found = self
            .inner
            .lookup(move |conn| accounts::find_credentials(conn, &address))
            .await?;
        let password = password.to_owned();
        self.passwords
            .run(move || match found {
                Some((account, hash)) => {
                    accounts::verify_password(&password, Some(&hash)).then_some(account)
                }
                None => {
                    accounts::verify_password(&password, None);
                    None
                }
            })
            .await
    }

    /// Adds a local domain (lower-cased). Adding an existing one is `Ok`.
    pub async fn add_domain(&self, domain: &str) -> Result<()> {
        let domain = accounts::normalize_domain(domain)?;
        self.inner
            .write(false, move |conn| accounts::add_domain(conn, &domain))
            .await
    }

    pub async fn domains(&self) -> Result<Vec<String>> {
        self.inner.read(accounts::list_domains).await
    }

    /// Case-insensitive.
    pub async fn is_local_domain(&self, domain: &str) -> Result<bool> {
        let domain = domain.to_lowercase();
        self.inner
            .lookup(move |conn| accounts::is_local_domain(conn, &domain))
            .await
    }

    /// Makes `alias` deliver to the account `target`. `NotFound` if the
    /// target is not an account; `AlreadyExists` if the alias is an account
    /// or alias already. The alias's domain becomes a local domain.
    pub async fn add_alias(&self, alias: &str, target: &str) -> Result<()> {
        let alias = accounts::normalize_address(alias)?;
        let target = target.to_lowercase();
        self.inner
            .write(false, move |conn| {
                accounts::add_alias(conn, &alias, &target)
            })
            .await
    }

    /// The account that mail for `address` goes to: the account itself or
    /// the target of an alias; case-insensitive. No sub-addressing here
    /// (`+tag` is smtpd's policy), and no postmaster fallback (see
    /// [`Store::postmaster_account`]).
    pub async fn resolve_recipient(&self, address: &str) -> Result<Option<Account>> {
        let address = address.to_lowercase();
        self.inner
            .lookup(move |conn| accounts::resolve(conn, &address))
            .await
    }

    /// Where `postmaster@domain` goes when it is neither an account nor an
    /// alias: the domain's oldest account, else the oldest account of any
    /// domain (RFC 5321 4.5.1: every local domain takes postmaster mail).
    /// `None` only when there is no account at all.
    pub async fn postmaster_account(&self, domain: &str) -> Result<Option<Account>> {
        let domain = domain.to_lowercase();
        self.inner
            .read(move |conn| accounts::postmaster_fallback(conn, &domain))
            .await
    }
}
