//! GETMETADATA and SETMETADATA (RFC 5464): METADATA entries of a mailbox,
//! or with the empty mailbox name of the server (METADATA-SERVER).
//!
//! Entries are `/private/...` or `/shared/...`; both kinds are kept, per
//! account (no account sees another's, `/shared` included, since no
//! mailbox is shared). The server's `/shared/admin` is `[imap]
//! admin_contact` and cannot be set over IMAP; a mailbox's
//! `/private/specialuse` (RFC 6154 4) is its special use, as LIST shows
//! it, and setting it sets that. Entry names are
//! case-insensitive and answered lower-case. An entry asked for that
//! does not exist is answered NIL, as Dovecot answers it.

use store::{MetadataWrite, StoreError};

use super::Session;
use crate::protocol::encode::{self, Code, MetadataCode, Status};
use crate::protocol::{MailboxName, MetadataDepth, MetadataOptions, Tag};

/// The server entry taken from the config.
const ADMIN: &str = "/shared/admin";
/// A mailbox's special use as a METADATA entry (RFC 6154 4): not kept
/// apart, but read from and written to what LIST shows.
const SPECIAL_USE: &str = "/private/specialuse";

/// An entry name as RFC 5464 3.2 allows it, lower-cased: `/private/` or
/// `/shared/` and more, printable ASCII without `*` or `%`, no `//`, no
/// `/` at the end. `bare_root`: `/private` and `/shared` alone too (for
/// GETMETADATA with DEPTH).
fn entry_name(raw: &[u8], bare_root: bool) -> Option<String> {
    let ok_chars = raw
        .iter()
        .all(|&b| (0x21..0x7f).contains(&b) && b != b'*' && b != b'%');
    let name = std::str::from_utf8(raw).ok()?.to_ascii_lowercase();
    if !ok_chars || name.contains("//") || name.ends_with('/') {
        return None;
    }
    let root = name == "/private" || name == "/shared";
    let below = ["/private/", "/shared/"]
        .iter()
        .any(|p| name.len() > p.len() && name.starts_with(p));
    (below || (bare_root && root)).then_some(name)
}

/// Whether `name` is `entry` or, by `depth`, below it.
fn within(name: &str, entry: &str, depth: MetadataDepth) -> bool {
    if name == entry {
        return true;
    }
    let Some(rest) = name.strip_prefix(entry).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    match depth {
        MetadataDepth::Zero => false,
        MetadataDepth::One => !rest.contains('/'),
        MetadataDepth::Infinity => true,
    }
}

impl Session {
    /// The store's name of a METADATA command's mailbox: `Ok(None)` for the
    /// server (the empty name); a name that cannot be one is answered.
    fn metadata_mailbox(&mut self, tag: &Tag, mailbox: &MailboxName) -> Result<Option<String>, ()> {
        if mailbox.as_bytes().is_empty() {
            return Ok(None);
        }
        match self.store_name(mailbox) {
            Some(name) => Ok(Some(name)),
            None => {
                self.no(tag, Some(Code::NonExistent), "No such mailbox");
                Err(())
            }
        }
    }

    pub(super) async fn get_metadata(
        &mut self,
        tag: &Tag,
        mailbox: MailboxName,
        options: MetadataOptions,
        entries: Vec<Vec<u8>>,
    ) {
        let Some(account) = self.account() else {
            return;
        };
        let mut names = Vec::with_capacity(entries.len());
        for raw in &entries {
            match entry_name(raw, true) {
                Some(name) => names.push(name),
                None => return self.bad(tag, "Invalid entry name"),
            }
        }
        let Ok(owner) = self.metadata_mailbox(tag, &mailbox) else {
            return;
        };
        let store = self.ctx.shared.store.clone();
        let mut found = match store.metadata(account.id, owner.as_deref(), &names).await {
            Ok(found) => found,
            Err(StoreError::NotFound(_)) => {
                return self.no(tag, Some(Code::NonExistent), "No such mailbox")
            }
            Err(e) => return self.store_failed(tag, e, "read metadata"),
        };
        match &owner {
            None => {
                if let Some(admin) = &self.ctx.shared.config.imap.admin_contact {
                    found.retain(|(n, _)| n != ADMIN);
                    found.push((ADMIN.to_owned(), admin.clone().into_bytes()));
                }
            }
            Some(name) => {
                found.retain(|(n, _)| n != SPECIAL_USE);
                if names.iter().any(|n| within(SPECIAL_USE, n, options.depth)) {
                    let mailboxes = match store.mailboxes(account.id).await {
                        Ok(list) => list,
                        Err(e) => return self.store_failed(tag, e, "read metadata"),
                    };
                    let special = mailboxes
                        .into_iter()
                        .find(|m| m.name == *name)
                        .and_then(|m| m.special_use);
                    if let Some(special) = special {
                        found.push((SPECIAL_USE.to_owned(), special.into_bytes()));
                    }
                }
            }
        }
        found.sort();
        let mut line = b"METADATA ".to_vec();
        match &owner {
            Some(name) => self.wire_name(&mut line, name),
            None => line.extend_from_slice(b"\"\""),
        }
        line.extend_from_slice(b" (");
        let mut any = false;
        let mut longest_left_out: Option<usize> = None;
        let mut put = |line: &mut Vec<u8>, name: &str, value: Option<&[u8]>| {
            if std::mem::replace(&mut any, true) {
                line.push(b' ');
            }
            encode::astring(line, name.as_bytes());
            line.push(b' ');
            match value {
                None => line.extend_from_slice(b"NIL"),
                Some(v) if v.contains(&0) => {
                    line.extend_from_slice(format!("~{{{}}}\r\n", v.len()).as_bytes());
                    line.extend_from_slice(v);
                }
                Some(v) => encode::nstring(line, Some(v)),
            }
        };
        let mut sent: Vec<&str> = Vec::new();
        for name in &names {
            let mut hit = false;
            for (n, v) in &found {
                if !within(n, name, options.depth) {
                    continue;
                }
                hit = true;
                if sent.contains(&n.as_str()) {
                    continue;
                }
                sent.push(n);
                if options.max_size.is_some_and(|max| v.len() > max as usize) {
                    longest_left_out = longest_left_out.max(Some(v.len()));
                    continue;
                }
                put(&mut line, n, Some(v));
            }
            if !hit && !sent.contains(&name.as_str()) {
                sent.push(name);
                put(&mut line, name, None);
            }
        }
        line.push(b')');
        if any {
            self.untagged(&line);
        }
        match longest_left_out {
            Some(n) => self.tagged(
                tag,
                Status::Ok,
                Some(Code::Metadata(MetadataCode::LongEntries(n as u64))),
                "GETMETADATA completed",
            ),
            None => self.ok(tag, "GETMETADATA completed"),
        }
    }

    pub(super) async fn set_metadata(
        &mut self,
        tag: &Tag,
        mailbox: MailboxName,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) {
        let Some(account) = self.account() else {
            return;
        };
        let imap = &self.ctx.shared.config.imap;
        let (max_size, max_entries) = (imap.max_metadata_size, imap.max_metadata_entries);
        let mut writes = Vec::with_capacity(entries.len());
        for (raw, value) in entries {
            let Some(name) = entry_name(&raw, false) else {
                return self.bad(tag, "Invalid entry name");
            };
            writes.push(MetadataWrite { name, value });
        }
        let Ok(owner) = self.metadata_mailbox(tag, &mailbox) else {
            return;
        };
        if owner.is_none() && writes.iter().any(|w| w.name == ADMIN) {
            return self.no(
                tag,
                Some(Code::Cannot),
                "/shared/admin is set in the server's configuration",
            );
        }
        // RFC 6154 4: the special use, one this store keeps or none.
        let mut special_use: Option<Option<String>> = None;
        if owner.is_some() {
            for w in writes.iter().filter(|w| w.name == SPECIAL_USE) {
                let value = match &w.value {
                    None => None,
                    Some(v) => {
                        let text = String::from_utf8_lossy(v).trim().to_owned();
                        let known = store::CREATABLE_SPECIAL_USES
                            .iter()
                            .any(|u| u.eq_ignore_ascii_case(&text));
                        if !known {
                            let text = format!("Special use {text} is not supported");
                            return self.no(tag, Some(Code::UseAttr), &text);
                        }
                        Some(text)
                    }
                };
                special_use = Some(value);
            }
            writes.retain(|w| w.name != SPECIAL_USE);
        }
        if writes.iter().any(|w| {
            w.value
                .as_ref()
                .is_some_and(|v| v.len() > max_size as usize)
        }) {
            return self.no(
                tag,
                Some(Code::Metadata(MetadataCode::MaxSize(max_size))),
                "Value too long",
            );
        }
        let store = self.ctx.shared.store.clone();
        // The entries first: they may be refused as too many, and then
        // the special use is left as it was too.
        if !writes.is_empty() {
            match store
                .set_metadata(account.id, owner.as_deref(), writes, max_entries)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    return self.no(
                        tag,
                        Some(Code::Metadata(MetadataCode::TooMany)),
                        "Too many metadata entries",
                    )
                }
                Err(StoreError::NotFound(_)) => {
                    return self.no(tag, Some(Code::NonExistent), "No such mailbox")
                }
                Err(e) => return self.store_failed(tag, e, "write metadata"),
            }
        }
        if let (Some(name), Some(value)) = (&owner, &special_use) {
            match store
                .set_special_use(account.id, name, value.as_deref())
                .await
            {
                Ok(()) => {}
                Err(StoreError::NotFound(_)) => {
                    return self.no(tag, Some(Code::NonExistent), "No such mailbox")
                }
                Err(e) => return self.store_failed(tag, e, "write metadata"),
            }
        }
        self.ok(tag, "SETMETADATA completed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(
            entry_name(b"/shared/Comment", false).as_deref(),
            Some("/shared/comment")
        );
        assert_eq!(
            entry_name(b"/private/a/b", false).as_deref(),
            Some("/private/a/b")
        );
        assert_eq!(entry_name(b"/shared", true).as_deref(), Some("/shared"));
        for bad in [
            &b"/shared"[..],
            b"/shared/",
            b"/shared//a",
            b"/shared/a/",
            b"/public/a",
            b"shared/a",
            b"/shared/a*",
            b"/shared/%",
            b"/shared/a b",
            b"/shared/\xc3\xa9",
            b"/shared/a\x01",
            b"",
        ] {
            assert_eq!(
                entry_name(bad, false),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(entry_name(b"/private/", true), None);
    }

    #[test]
    fn depth() {
        use MetadataDepth as D;
        assert!(within("/shared/a", "/shared/a", D::Zero));
        assert!(!within("/shared/a/b", "/shared/a", D::Zero));
        assert!(within("/shared/a/b", "/shared/a", D::One));
        assert!(!within("/shared/a/b/c", "/shared/a", D::One));
        assert!(within("/shared/a/b/c", "/shared/a", D::Infinity));
        assert!(!within("/shared/ab", "/shared/a", D::Infinity));
    }
}
