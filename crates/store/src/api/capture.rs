//! Capture mode and sandboxes: every address accepted, mail kept
//! per sandbox and visible only with its token.

use super::{now, Store};
use crate::sql::{accounts, blobs, capture};
use crate::types::*;

impl Store {
    /// Sets the password every captured account logs in with (IMAP, POP3):
    /// hashed once here and given to every captured account, now and later.
    pub async fn set_capture_password(&self, password: &str) -> Result<()> {
        let password = password.to_owned();
        let hash = self
            .passwords
            .run(move || accounts::hash_password(&password))
            .await??;
        self.inner
            .write(false, move |conn| capture::set_password(conn, &hash))
            .await
    }

    /// Makes a sandbox: a fresh random domain under `.sandbox.test` (RFC
    /// 2606's reserved `.test`) and a token that alone sees its mail.
    pub async fn create_sandbox(&self) -> Result<Sandbox> {
        let mut bytes = [0u8; 26];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::Database(format!("no randomness: {e}")))?;
        let domain = format!("{}.sandbox.test", hex::encode(&bytes[..6]));
        let token = hex::encode(&bytes[6..]);
        let token_hash = blobs::hash(token.as_bytes());
        let stored = domain.clone();
        self.inner
            .write(false, move |conn| {
                capture::create_sandbox(conn, &stored, &token_hash, now())
            })
            .await?;
        Ok(Sandbox { domain, token })
    }

    /// The sandbox domain a token opens, if any.
    pub async fn sandbox_for_token(&self, token: &str) -> Result<Option<String>> {
        let token_hash = blobs::hash(token.as_bytes());
        self.inner
            .read(move |conn| capture::sandbox_for(conn, &token_hash))
            .await
    }

    /// Every sandbox domain with its creation time, oldest first.
    pub async fn sandboxes(&self) -> Result<Vec<(String, Timestamp)>> {
        self.inner.read(capture::sandboxes).await
    }

    /// Deletes a sandbox and every account in its domain, with their mail.
    /// Returns whether there was such a sandbox.
    pub async fn delete_sandbox(&self, domain: &str) -> Result<bool> {
        let domain = domain.to_lowercase();
        self.inner
            .write(true, move |conn| capture::delete_sandbox(conn, &domain))
            .await
    }
}
