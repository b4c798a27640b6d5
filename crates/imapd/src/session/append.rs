//! New messages from the client: APPEND with APPENDUID (UIDPLUS, RFC
//! 4315), several messages in one APPEND (MULTIAPPEND, RFC 3502: one store
//! transaction, all or none), literal8 messages (BINARY, RFC 3516: binary
//! parts stored base64-encoded), messages joined from text and IMAP URLs
//! (CATENATE, RFC 4469, `[BADURL]`), the size limit (APPENDLIMIT, RFC
//! 7889, `[TOOBIG]`), `UTF8 (literal8)` messages (RFC 6855, after ENABLE
//! UTF8=ACCEPT or IMAP4rev2) and REPLACE / UID REPLACE (RFC 8508: the new
//! message appended and the old one expunged in one transaction).
//!
//! A destination that does not exist gets `NO [TRYCREATE]`, before any
//! other complaint about the messages.

use std::collections::HashSet;

use store::{Account, NewMessage, StoreError, Uid};

use super::transfer::{timestamp, uid_set};
use super::Session;
use crate::protocol::binary::binary_parts_to_base64;
use crate::protocol::encode::{Code, Status};
use crate::protocol::imap_url::parse_message_url;
use crate::protocol::{AppendContent, AppendMessage, CatenatePart, Flag, MailboxName, Tag};

/// Why a message cannot be appended, as the tagged reply says it.
enum Refusal {
    Bad(String),
    No(Option<Code>, String),
    /// The store failed; `what` could not be done.
    Store(StoreError, &'static str),
}

/// Whether a command line (as the client sent it, up to a literal) is an
/// APPEND or a REPLACE: a literal too large for one of those is a message
/// over APPENDLIMIT, `[TOOBIG]` (RFC 7889), not just a long literal.
pub(super) fn adds_a_message(line: &[u8]) -> bool {
    let mut words = line
        .split(|&b| b == b' ')
        .skip(1)
        .map(|w| w.to_ascii_uppercase());
    match words.next().as_deref() {
        Some(b"APPEND" | b"REPLACE") => true,
        Some(b"UID") => words.next().as_deref() == Some(b"REPLACE"),
        _ => false,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Session {
    /// The largest message APPEND takes (APPENDLIMIT).
    pub(super) fn append_limit(&self) -> u64 {
        u64::from(self.ctx.shared.config.imap.max_literal_size)
    }

    fn refuse(&mut self, tag: &Tag, refusal: Refusal) {
        match refusal {
            Refusal::Bad(text) => self.bad(tag, &text),
            Refusal::No(code, text) => self.no(tag, code, &text),
            Refusal::Store(e, what) => self.store_failed(tag, e, what),
        }
    }

    /// A refusal of messages for `name`, unless the mailbox is missing:
    /// then `[TRYCREATE]` says what to do first (RFC 3501 6.3.11).
    async fn refuse_unless_missing(
        &mut self,
        tag: &Tag,
        account: &Account,
        name: &str,
        r: Refusal,
    ) {
        let store = self.ctx.shared.store.clone();
        let exists = store
            .mailboxes(account.id)
            .await
            .map(|all| all.iter().any(|m| m.name == name));
        match exists {
            Ok(false) => self.no(tag, Some(Code::TryCreate), "No such mailbox"),
            Ok(true) => self.refuse(tag, r),
            Err(e) => self.store_failed(tag, e, "find the mailbox"),
        }
    }

    /// APPEND of one message or several (MULTIAPPEND).
    pub(super) async fn append(
        &mut self,
        tag: &Tag,
        mailbox: MailboxName,
        messages: Vec<AppendMessage>,
    ) {
        let Some(account) = self.account() else {
            return;
        };
        let Some(name) = self.store_name(&mailbox) else {
            self.no(tag, Some(Code::TryCreate), "No such mailbox");
            return;
        };
        let mut ready = Vec::with_capacity(messages.len());
        for message in messages {
            match self.assemble(&account, message).await {
                Ok(m) => ready.push(m),
                Err(r) => return self.refuse_unless_missing(tag, &account, &name, r).await,
            }
        }
        let store = self.ctx.shared.store.clone();
        match store.append_messages(account.id, &name, ready).await {
            Ok((uid_validity, uids)) => {
                let code = uid_set(&uids).map(|uids| Code::AppendUid { uid_validity, uids });
                self.tagged(tag, Status::Ok, code, "APPEND completed");
            }
            Err(StoreError::NotFound(_)) => self.no(tag, Some(Code::TryCreate), "No such mailbox"),
            Err(StoreError::Invalid(what)) => self.bad(tag, &format!("Invalid {what}")),
            Err(e) => self.store_failed(tag, e, "append the message"),
        }
    }

    /// REPLACE / UID REPLACE: the message `target` of the selected mailbox
    /// is replaced by `message` in `mailbox` (maybe another one).
    pub(super) async fn replace(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        target: u32,
        mailbox: MailboxName,
        message: AppendMessage,
    ) {
        let Some((account_id, from, read_only, uids)) = self.selected_parts() else {
            return;
        };
        let Some(account) = self.account() else {
            return;
        };
        if read_only {
            self.no(tag, Some(Code::ReadOnly), "Mailbox is read-only");
            return;
        }
        let old = if by_uid {
            match uids.binary_search(&Uid(target)) {
                Ok(_) => Uid(target),
                Err(_) => {
                    self.no(tag, Some(Code::ExpungeIssued), "No such message");
                    return;
                }
            }
        } else {
            match uids.get(target as usize - 1) {
                Some(&uid) => uid,
                None => {
                    self.bad(tag, "Message sequence number out of range");
                    return;
                }
            }
        };
        let Some(name) = self.store_name(&mailbox) else {
            self.no(tag, Some(Code::TryCreate), "No such mailbox");
            return;
        };
        let ready = match self.assemble(&account, message).await {
            Ok(m) => m,
            Err(r) => return self.refuse_unless_missing(tag, &account, &name, r).await,
        };
        let store = self.ctx.shared.store.clone();
        let (uid_validity, uid) = match store
            .replace_message(account_id, &name, ready, from, old)
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound(what)) if what.starts_with("mailbox") => {
                return self.no(tag, Some(Code::TryCreate), "No such mailbox");
            }
            Err(StoreError::NotFound(_)) => {
                return self.no(tag, Some(Code::ExpungeIssued), "The message was expunged");
            }
            Err(StoreError::Invalid(what)) => return self.bad(tag, &format!("Invalid {what}")),
            Err(e) => return self.store_failed(tag, e, "replace the message"),
        };
        let code = uid_set(&[uid]).map(|uids| Code::AppendUid { uid_validity, uids });
        self.untagged_status(Status::Ok, code, "Replacement message added");
        self.announce_expunges(&HashSet::from([old]));
        let verb = if by_uid { "UID REPLACE" } else { "REPLACE" };
        self.ok(tag, &format!("{verb} completed"));
    }

    /// One message ready for the store: flags checked, CATENATE's parts
    /// joined, binary parts converted, the size within APPENDLIMIT.
    async fn assemble(
        &mut self,
        account: &Account,
        m: AppendMessage,
    ) -> Result<NewMessage, Refusal> {
        if m.flags
            .iter()
            .any(|f| matches!(f, Flag::Recent | Flag::Extension(_)))
        {
            return Err(Refusal::Bad("Flag cannot be stored".into()));
        }
        let limit = self.append_limit();
        let too_big = || {
            Refusal::No(
                Some(Code::TooBig),
                format!("Message too large (at most {limit} octets)"),
            )
        };
        // RFC 6855 4: the UTF8 form is for a client that said it speaks
        // UTF-8 (IMAP4rev2 needs no such form, but may use it).
        let utf8_refused = || Refusal::Bad("UTF8 needs ENABLE UTF8=ACCEPT or IMAP4rev2".into());
        let (mut raw, binary) = match m.content {
            AppendContent::Literal { data, binary } => (data, binary),
            AppendContent::Utf8(_) if !self.utf8_names() => return Err(utf8_refused()),
            // A literal8 like BINARY's: any binary parts are converted.
            AppendContent::Utf8(data) => (data, true),
            AppendContent::Catenate(parts) => {
                let mut raw = Vec::new();
                let mut binary = false;
                for part in parts {
                    match part {
                        CatenatePart::Text { data, binary: b } => {
                            binary |= b;
                            raw.extend_from_slice(&data);
                        }
                        CatenatePart::Utf8(_) if !self.utf8_names() => return Err(utf8_refused()),
                        CatenatePart::Utf8(data) => {
                            binary = true;
                            raw.extend_from_slice(&data);
                        }
                        CatenatePart::Url(url) => {
                            let bytes = self.url_content(account, &url).await?;
                            raw.extend_from_slice(&bytes);
                        }
                    }
                    if raw.len() as u64 > limit {
                        return Err(too_big());
                    }
                }
                (raw, binary)
            }
        };
        if raw.is_empty() {
            return Err(Refusal::No(
                None,
                "An empty message cannot be appended".into(),
            ));
        }
        if binary {
            let converted =
                tokio::task::spawn_blocking(move || binary_parts_to_base64(&raw).ok_or(raw))
                    .await
                    .map_err(|e| {
                        Refusal::Store(
                            StoreError::Database(format!("convert task: {e}")),
                            "convert the message",
                        )
                    })?;
            raw = converted.unwrap_or_else(|original| original);
        }
        if raw.len() as u64 > limit {
            return Err(too_big());
        }
        Ok(NewMessage {
            raw,
            flags: m.flags.iter().map(Flag::to_text).collect(),
            internal_date: m.date.as_ref().map_or_else(now, timestamp),
        })
    }

    /// The octets a CATENATE URL names: a message of this user's, or a
    /// section or range of it, or what a URLAUTH URL (RFC 4467) gives.
    /// Anything else is `[BADURL]`.
    async fn url_content(&mut self, account: &Account, url: &[u8]) -> Result<Vec<u8>, Refusal> {
        let bad = || Refusal::No(Some(Code::BadUrl(url.to_vec())), "Invalid URL".into());
        let failed = |e: StoreError| Refusal::Store(e, "read the URL's message");
        let Some(u) = parse_message_url(url) else {
            let store = self.ctx.shared.store.clone();
            let submit_user = self.ctx.shared.config.imap.urlauth_submit_user.clone();
            let read =
                super::urlauth::authorized_content(&store, submit_user.as_deref(), account, url);
            return read.await.map_err(failed)?.ok_or_else(bad);
        };
        if !u.is_of(&account.address) {
            return Err(bad());
        }
        let store = self.ctx.shared.store.clone();
        super::urlauth::url_bytes(&store, account.id, &u)
            .await
            .map_err(failed)?
            .ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_and_replace_lines_are_known() {
        assert!(adds_a_message(b"a1 APPEND INBOX {100}\r\n"));
        assert!(adds_a_message(b"a1 append INBOX (\\Seen) ~{100}\r\n"));
        assert!(adds_a_message(b"a1 UID replace 4 INBOX {100}\r\n"));
        assert!(adds_a_message(b"a1 REPLACE 1 INBOX {100}\r\n"));
        assert!(!adds_a_message(b"a1 LOGIN {100}\r\n"));
        assert!(!adds_a_message(b"a1 UID FETCH {100}\r\n"));
    }
}
