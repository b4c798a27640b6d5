//! QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA and SETQUOTA, with the
//! STORAGE (KiB) and MESSAGE resources.
//!
//! Each account has at most one quota root, named `""`, over all its
//! mailboxes; it exists when the account has a limit (`postern user
//! quota`). An account without limits has no quota root: GETQUOTAROOT
//! names none and GETQUOTA `""` is refused, as Dovecot answers when no
//! quota applies. A QUOTA response lists only the resources that have a
//! limit (RFC 9208 has no way to say "used, unlimited"). Usage in KiB is
//! rounded down, as Dovecot reports it. Users cannot set their own
//! quota: SETQUOTA is `NO [NOPERM]` (and QUOTASET is not advertised), as
//! Dovecot answers a user who is not its quota admin.
//!
//! Where limits are enforced (APPEND, COPY, REPLACE: `NO [OVERQUOTA]`)
//! is the store's business, inside the transaction that writes.

use store::Quota;

use super::Session;
use crate::protocol::encode::{self, Code};
use crate::protocol::{MailboxName, Tag};

/// The name of the account's one quota root.
const ROOT: &[u8] = b"";

/// `QUOTA "" (STORAGE used limit MESSAGE used limit)`, with only the
/// resources that have a limit.
fn quota_line(quota: &Quota) -> Vec<u8> {
    let mut line = b"QUOTA ".to_vec();
    encode::astring(&mut line, ROOT);
    let mut resources = Vec::new();
    if let Some(limit) = quota.storage_limit_kib {
        resources.push(format!("STORAGE {} {limit}", quota.used_kib()));
    }
    if let Some(limit) = quota.message_limit {
        resources.push(format!("MESSAGE {} {limit}", quota.used_messages));
    }
    line.extend_from_slice(format!(" ({})", resources.join(" ")).as_bytes());
    line
}

impl Session {
    /// The logged-in account's quota, or the failure answered.
    async fn own_quota(&mut self, tag: &Tag) -> Option<Quota> {
        let account = self.account()?;
        match self.ctx.shared.store.quota(account.id).await {
            Ok(quota) => Some(quota),
            Err(e) => {
                self.store_failed(tag, e, "read the quota");
                None
            }
        }
    }

    /// GETQUOTAROOT mailbox: the mailbox's quota roots (`""`, or none),
    /// then the quota of each.
    pub(super) async fn get_quota_root(&mut self, tag: &Tag, mailbox: MailboxName) {
        let Some(account) = self.account() else {
            return;
        };
        let Some(name) = self.store_name(&mailbox) else {
            self.no(tag, Some(Code::NonExistent), "Mailbox doesn't exist");
            return;
        };
        let store = self.ctx.shared.store.clone();
        match store.mailboxes(account.id).await {
            Ok(all) if all.iter().any(|m| m.name == name) => {}
            Ok(_) => {
                self.no(tag, Some(Code::NonExistent), "Mailbox doesn't exist");
                return;
            }
            Err(e) => return self.store_failed(tag, e, "find the mailbox"),
        }
        let Some(quota) = self.own_quota(tag).await else {
            return;
        };
        let mut line = b"QUOTAROOT ".to_vec();
        self.wire_name(&mut line, &name);
        if quota.is_limited() {
            line.push(b' ');
            encode::astring(&mut line, ROOT);
        }
        self.untagged(&line);
        if quota.is_limited() {
            self.untagged(&quota_line(&quota));
        }
        self.ok(tag, "Getquotaroot completed");
    }

    /// GETQUOTA root: the account's quota, if `root` is its quota root.
    pub(super) async fn get_quota(&mut self, tag: &Tag, root: Vec<u8>) {
        let Some(quota) = self.own_quota(tag).await else {
            return;
        };
        if root != ROOT || !quota.is_limited() {
            self.no(tag, Some(Code::NonExistent), "Quota root doesn't exist");
            return;
        }
        self.untagged(&quota_line(&quota));
        self.ok(tag, "Getquota completed");
    }

    /// SETQUOTA, once parsed: refused, since only the administrator
    /// sets quotas (Dovecot checks its quota admin after the syntax too).
    pub(super) fn set_quota(&mut self, tag: &Tag) {
        self.no(
            tag,
            Some(Code::NoPerm),
            "Quota can be changed only by the administrator",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_lines_list_the_limited_resources() {
        let quota = Quota {
            storage_limit_kib: Some(500),
            message_limit: Some(10),
            used_bytes: 3000,
            used_messages: 2,
        };
        assert_eq!(
            String::from_utf8(quota_line(&quota)).unwrap(),
            "QUOTA \"\" (STORAGE 2 500 MESSAGE 2 10)"
        );
        let quota = Quota {
            message_limit: None,
            ..quota
        };
        assert_eq!(
            String::from_utf8(quota_line(&quota)).unwrap(),
            "QUOTA \"\" (STORAGE 2 500)"
        );
    }
}
