//! Mailboxes: LIST (with LIST-EXTENDED, LIST-STATUS and SPECIAL-USE), LSUB,
//! STATUS, SELECT, EXAMINE, CLOSE and UNSELECT.
//!
//! Names: the store keeps UTF-8 names (in NFC) with `/` as the hierarchy
//! delimiter; on the wire they are modified UTF-7 (RFC 3501 5.1.3), or
//! UTF-8 once the client enabled IMAP4rev2 or UTF8=ACCEPT (`session::rev2`).
//! Patterns are matched against the names in the client's form, with
//! `INBOX` in any case.

use std::collections::HashMap;

use store::{Account, MailboxInfo, StoreError, Uid};

use super::rev2::{decode_name, pattern_form, wire_form};
use super::{Selected, Session, State};
use crate::protocol::encode::{self, Code, Status};
use crate::protocol::{encode_utf7, ListReturn, ListSelection, MailboxName, StatusItem, Tag};

/// The store's name for a mailbox name from the wire, if it decodes from
/// the client's form (UTF-8 when `utf8`, else modified UTF-7; see
/// [`Session::store_name`]): in NFC, and `INBOX` in any case, also as a
/// hierarchy's first level, is `INBOX`.
pub(super) fn store_name(name: &MailboxName, utf8: bool) -> Option<String> {
    match name {
        MailboxName::Inbox => Some("INBOX".to_owned()),
        MailboxName::Other(bytes) => {
            decode_name(bytes, utf8).map(|n| store::canonical_mailbox_name(&n))
        }
    }
}

/// `name` as a mailbox on the wire in the client's form (see
/// [`Session::wire_name`]): UTF-8 when `utf8` (quoted when it has to be),
/// else modified UTF-7, atom or string.
pub(super) fn wire_name(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        encode::astring_utf8(out, name)
    } else {
        encode::astring(out, encode_utf7(name).as_bytes())
    }
}

/// Upper-cases a leading `INBOX` (any case) in a pattern, so that it
/// matches the store's `INBOX`.
fn fold_inbox(pattern: &[u8]) -> Vec<u8> {
    let mut p = pattern.to_vec();
    if p.len() >= 5
        && p[..5].eq_ignore_ascii_case(b"INBOX")
        && (p.len() == 5 || matches!(p[5], b'/' | b'*' | b'%'))
    {
        p[..5].copy_from_slice(b"INBOX");
    }
    p
}

/// Whether `name` matches the LIST pattern: `*` matches anything, `%`
/// anything but the delimiter `/`. Linear in the name, per pattern byte.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let m = pattern.len();
    let mut states = vec![false; m + 1];
    let close = |states: &mut Vec<bool>| {
        for i in 0..m {
            if states[i] && matches!(pattern[i], b'*' | b'%') {
                states[i + 1] = true;
            }
        }
    };
    states[0] = true;
    close(&mut states);
    for &c in name {
        let mut next = vec![false; m + 1];
        for i in 0..m {
            if !states[i] {
                continue;
            }
            match pattern[i] {
                b'*' => next[i] = true,
                b'%' if c != b'/' => next[i] = true,
                b'%' => {}
                p if p == c => next[i + 1] = true,
                _ => {}
            }
        }
        close(&mut next);
        if !next.iter().any(|&s| s) {
            return false;
        }
        states = next;
    }
    states[m]
}

fn has_children(all: &[MailboxInfo], name: &str, only_subscribed: bool) -> bool {
    let prefix = format!("{name}/");
    all.iter()
        .any(|m| m.name.starts_with(&prefix) && (!only_subscribed || m.subscribed))
}

/// What STATUS reads from the store only when asked for: the mailbox's
/// size (STATUS=SIZE) and the count and size of its `\Deleted` messages
/// (RFC 9051 DELETED, RFC 9208 DELETED-STORAGE).
#[derive(Default)]
struct StatusCounts {
    size: Option<u64>,
    deleted: Option<(u64, u64)>,
}

/// The attributes LIST gives a mailbox (before `\Subscribed`, which only
/// some LIST commands ask for): `\HasChildren` or `\HasNoChildren`, and
/// its special use.
fn attributes<'a>(all: &[MailboxInfo], m: &'a MailboxInfo) -> Vec<&'a str> {
    let mut attrs: Vec<&str> = Vec::new();
    attrs.push(if has_children(all, &m.name, false) {
        "\\HasChildren"
    } else {
        "\\HasNoChildren"
    });
    if let Some(special) = &m.special_use {
        attrs.push(special);
    }
    attrs
}

/// `(MESSAGES n ...)` for STATUS; `append_limit` is the mailbox's
/// APPENDLIMIT.
fn status_items(
    m: &MailboxInfo,
    items: &[StatusItem],
    counts: &StatusCounts,
    append_limit: u64,
) -> String {
    let mut parts = Vec::new();
    for item in items {
        match item {
            StatusItem::Messages => parts.push(format!("MESSAGES {}", m.messages)),
            StatusItem::Recent => parts.push(format!("RECENT {}", m.recent)),
            StatusItem::UidNext => parts.push(format!("UIDNEXT {}", m.uid_next.0)),
            StatusItem::UidValidity => parts.push(format!("UIDVALIDITY {}", m.uid_validity)),
            StatusItem::Unseen => parts.push(format!("UNSEEN {}", m.unseen)),
            StatusItem::HighestModSeq => {
                parts.push(format!("HIGHESTMODSEQ {}", m.highest_modseq.0))
            }
            StatusItem::Size => {
                if let Some(size) = counts.size {
                    parts.push(format!("SIZE {size}"))
                }
            }
            StatusItem::AppendLimit => parts.push(format!("APPENDLIMIT {append_limit}")),
            StatusItem::Deleted => {
                if let Some((count, _)) = counts.deleted {
                    parts.push(format!("DELETED {count}"))
                }
            }
            StatusItem::DeletedStorage => {
                if let Some((_, bytes)) = counts.deleted {
                    parts.push(format!("DELETED-STORAGE {bytes}"))
                }
            }
            StatusItem::MailboxId => parts.push(format!(
                "MAILBOXID ({})",
                super::stored_keys::mailbox_id(m.id, m.uid_validity)
            )),
        }
    }
    format!("({})", parts.join(" "))
}

impl Session {
    pub(super) fn account(&self) -> Option<Account> {
        match &self.state {
            State::NotAuthenticated => None,
            State::Authenticated(a) | State::Selected(a, _) => Some(a.clone()),
        }
    }

    async fn all_mailboxes(&mut self, tag: &Tag) -> Option<Vec<MailboxInfo>> {
        let account = self.account()?;
        match self.ctx.shared.store.mailboxes(account.id).await {
            Ok(list) => Some(list),
            Err(e) => {
                self.store_failed(tag, e, "list mailboxes");
                None
            }
        }
    }

    pub(super) async fn list(
        &mut self,
        tag: &Tag,
        selection: Vec<ListSelection>,
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        returns: Vec<ListReturn>,
    ) {
        let sel_subscribed = selection.contains(&ListSelection::Subscribed);
        let sel_special = selection.contains(&ListSelection::SpecialUse);
        let recursive = selection.contains(&ListSelection::RecursiveMatch);
        if recursive && !sel_subscribed && !sel_special {
            self.bad(tag, "RECURSIVEMATCH needs another selection option");
            return;
        }
        if selection.is_empty() && patterns.iter().all(Vec::is_empty) {
            // The hierarchy delimiter and root (RFC 3501 6.3.8).
            self.untagged(b"LIST (\\Noselect) \"/\" \"\"");
            self.ok(tag, "LIST completed");
            return;
        }
        let Some(account_id) = self.account().map(|a| a.id) else {
            return;
        };
        let Some(all) = self.all_mailboxes(tag).await else {
            return;
        };
        let show_subscribed =
            sel_subscribed || returns.iter().any(|r| matches!(r, ListReturn::Subscribed));
        let status: Option<Vec<StatusItem>> = returns.iter().find_map(|r| match r {
            ListReturn::Status(items) => Some(items.clone()),
            _ => None,
        });
        let utf8 = self.utf8_names();
        let patterns: Vec<Vec<u8>> = patterns
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut full = reference.clone();
                full.extend_from_slice(p);
                fold_inbox(&pattern_form(full, utf8))
            })
            .collect();
        let subs = if sel_subscribed {
            match self.subscriptions(tag).await {
                Some(subs) => subs,
                None => return,
            }
        } else {
            Vec::new()
        };
        let matches_any = |name: &str| {
            let form = wire_form(name, utf8);
            patterns.iter().any(|p| matches(p, form.as_bytes()))
        };
        for m in &all {
            if !matches_any(&m.name) {
                continue;
            }
            let mut childinfo = false;
            if sel_subscribed && !m.subscribed {
                // RFC 5258 3.5: only for subscribed descendants the
                // patterns do not list themselves.
                let prefix = format!("{}/", m.name);
                let hidden_child = subs
                    .iter()
                    .any(|s| s.starts_with(&prefix) && !matches_any(s));
                if recursive && hidden_child {
                    childinfo = true;
                } else {
                    continue;
                }
            }
            if sel_special && m.special_use.is_none() {
                continue;
            }
            let mut attrs = attributes(&all, m);
            if show_subscribed && m.subscribed {
                attrs.push("\\Subscribed");
            }
            let mut line = format!("LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
            wire_name(&mut line, &m.name, utf8);
            if childinfo {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            self.untagged(&line);
            if let (Some(items), false) = (&status, childinfo) {
                match self.status_line(account_id, m, items).await {
                    Ok(line) => self.untagged(&line),
                    Err(e) => return self.store_failed(tag, e, "read the mailbox"),
                }
            }
        }
        // Subscribed names without a mailbox (RFC 5258 \NonExistent),
        // and with RECURSIVEMATCH the names without a mailbox that have
        // subscribed names below them the patterns do not list (RFC 5258
        // 3.5, RFC 9051 6.3.9): each once, in name order.
        if sel_subscribed && !sel_special {
            let exists = |n: &str| all.iter().any(|m| m.name == n);
            let mut missing: std::collections::BTreeMap<&str, bool> = Default::default();
            for name in subs.iter().filter(|n| !exists(n)) {
                if matches_any(name) {
                    missing.insert(name, false);
                }
            }
            if recursive {
                for name in &subs {
                    for parent in name.match_indices('/').map(|(i, _)| &name[..i]) {
                        let shown = subs.iter().any(|s| s == parent);
                        if !shown && !exists(parent) && matches_any(parent) && !matches_any(name) {
                            missing.entry(parent).or_insert(true);
                        }
                    }
                }
            }
            for (name, childinfo) in missing {
                let mut line = if childinfo {
                    b"LIST (\\NonExistent) \"/\" ".to_vec()
                } else {
                    b"LIST (\\Subscribed \\NonExistent) \"/\" ".to_vec()
                };
                wire_name(&mut line, name, utf8);
                if childinfo {
                    line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
                }
                self.untagged(&line);
            }
        }
        self.ok(tag, "LIST completed");
    }

    async fn subscriptions(&mut self, tag: &Tag) -> Option<Vec<String>> {
        let account = self.account()?;
        match self.ctx.shared.store.subscriptions(account.id).await {
            Ok(list) => Some(list),
            Err(e) => {
                self.store_failed(tag, e, "list subscriptions");
                None
            }
        }
    }

    /// LSUB: subscribed names that match; with `%`, a level above a
    /// subscribed name that is not subscribed itself shows as `\Noselect`
    /// (RFC 3501 6.3.9), as does a subscribed name with no mailbox.
    pub(super) async fn lsub(&mut self, tag: &Tag, reference: Vec<u8>, pattern: Vec<u8>) {
        let Some(all) = self.all_mailboxes(tag).await else {
            return;
        };
        let Some(subs) = self.subscriptions(tag).await else {
            return;
        };
        let utf8 = self.utf8_names();
        let mut full = reference;
        full.extend_from_slice(&pattern);
        let pattern = fold_inbox(&pattern_form(full, utf8));
        let exists = |n: &str| all.iter().any(|m| m.name == n);
        // INBOX first, then by name, as LIST orders them.
        let mut found: std::collections::BTreeMap<(bool, String), bool> = Default::default();
        for name in &subs {
            if matches(&pattern, wire_form(name, utf8).as_bytes()) {
                found.insert((name != "INBOX", name.clone()), !exists(name));
            }
            if pattern.contains(&b'%') {
                for (i, _) in name.match_indices('/') {
                    let parent = &name[..i];
                    if !subs.iter().any(|s| s == parent)
                        && matches(&pattern, wire_form(parent, utf8).as_bytes())
                    {
                        found.insert((true, parent.to_owned()), true);
                    }
                }
            }
        }
        for ((_, name), noselect) in found {
            let mut line = if noselect {
                b"LSUB (\\Noselect) \"/\" ".to_vec()
            } else {
                b"LSUB () \"/\" ".to_vec()
            };
            wire_name(&mut line, &name, utf8);
            self.untagged(&line);
        }
        self.ok(tag, "LSUB completed");
    }

    /// `STATUS name (items)`, with the mailbox's size and count of
    /// `\Deleted` messages read from the store only when asked for.
    async fn status_line(
        &mut self,
        account: store::AccountId,
        m: &MailboxInfo,
        items: &[StatusItem],
    ) -> Result<Vec<u8>, StoreError> {
        let mut counts = StatusCounts::default();
        let store = self.ctx.shared.store.clone();
        if items.contains(&StatusItem::Size) {
            counts.size = Some(store.mailbox_size(account, &m.name).await?);
        }
        if items.contains(&StatusItem::Deleted) || items.contains(&StatusItem::DeletedStorage) {
            counts.deleted = Some(store.deleted_in_mailbox(account, &m.name).await?);
        }
        let mut line = b"STATUS ".to_vec();
        self.wire_name(&mut line, &m.name);
        line.push(b' ');
        let limit = self.append_limit();
        line.extend_from_slice(status_items(m, items, &counts, limit).as_bytes());
        Ok(line)
    }

    pub(super) async fn status(&mut self, tag: &Tag, mailbox: MailboxName, items: Vec<StatusItem>) {
        let Some(all) = self.all_mailboxes(tag).await else {
            return;
        };
        let found = self
            .store_name(&mailbox)
            .and_then(|name| all.into_iter().find(|m| m.name == name));
        let Some(m) = found else {
            self.no(tag, Some(Code::NonExistent), "No such mailbox");
            return;
        };
        let Some(account) = self.account() else {
            return;
        };
        match self.status_line(account.id, &m, &items).await {
            Ok(line) => self.untagged(&line),
            Err(e) => return self.store_failed(tag, e, "read the mailbox"),
        }
        self.ok(tag, "STATUS completed");
    }

    /// SELECT and EXAMINE. A failed SELECT leaves no mailbox selected.
    pub(super) async fn select(
        &mut self,
        tag: &Tag,
        mailbox: MailboxName,
        read_only: bool,
        qresync: Option<crate::protocol::QresyncParams>,
    ) {
        let Some(account) = self.account() else {
            return;
        };
        if !self.qresync_allowed(tag, qresync.is_some()) {
            return;
        }
        self.closed_for_select();
        self.state = State::Authenticated(account.clone());
        let Some(name) = self.store_name(&mailbox) else {
            self.no(tag, Some(Code::NonExistent), "No such mailbox");
            return;
        };
        // Before the read: a change after it must not go unseen.
        let mark = self.ctx.shared.store.wake_mark();
        let index = match self.ctx.shared.store.mailbox_index(account.id, &name).await {
            Ok(index) => index,
            Err(StoreError::NotFound(_)) => {
                self.no(tag, Some(Code::NonExistent), "No such mailbox");
                return;
            }
            Err(e) => return self.store_failed(tag, e, "open the mailbox"),
        };
        let keywords: std::collections::BTreeSet<String> = index.keywords.iter().cloned().collect();
        self.announce_flags(&keywords, read_only);
        // EXAMINE shows what is recent without taking it (RFC 3501 6.3.2);
        // an IMAP4rev2 session has no \Recent, and takes none.
        let first_recent = if self.rev2() {
            None
        } else if read_only {
            Some(index.recent_uid)
        } else if index.recent_uid >= index.uid_next {
            // Every message was claimed already: nothing to write.
            Some(index.uid_next)
        } else {
            match self
                .ctx
                .shared
                .store
                .claim_recent(account.id, index.mailbox_ref())
                .await
            {
                Ok(first) => Some(first),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim recent messages");
                    None
                }
            }
        };
        let recent: Vec<(Uid, Uid)> = match (first_recent, index.uids.last()) {
            (Some(first), Some(&last)) if first <= last => vec![(first, last)],
            _ => Vec::new(),
        };
        let recent_count = first_recent.map_or(0, |first| {
            index.uids.len() - index.uids.partition_point(|u| *u < first)
        });
        self.untagged(format!("{} EXISTS", index.messages.len()).as_bytes());
        if !self.rev2() {
            // RFC 9051 dropped both.
            self.untagged(format!("{recent_count} RECENT").as_bytes());
            if let Some(i) = index.first_unseen {
                self.untagged_status(Status::Ok, Some(Code::Unseen(i as u32 + 1)), "First unseen");
            }
        }
        self.untagged_status(
            Status::Ok,
            Some(Code::UidValidity(index.uid_validity)),
            "UIDs valid",
        );
        self.untagged_status(
            Status::Ok,
            Some(Code::UidNext(index.uid_next.0)),
            "Predicted next UID",
        );
        let id = super::stored_keys::mailbox_id(index.mailbox, index.uid_validity);
        self.untagged_status(Status::Ok, Some(Code::MailboxId(id)), "Mailbox id");
        if self.rev2() {
            self.select_list(account.id, &name, &mailbox).await;
        }
        let uids = index.uids.clone();
        self.state = State::Selected(
            account,
            Selected {
                mailbox: index.mailbox_ref(),
                name,
                read_only,
                uids,
                recent,
                synced_modseq: index.highest_modseq,
                reported: HashMap::new(),
                keywords,
                expunge_owed: false,
            },
        );
        self.watch_selected(index.mailbox, mark);
        self.select_resync(&index, qresync).await;
        if read_only {
            self.tagged(tag, Status::Ok, Some(Code::ReadOnly), "EXAMINE completed");
        } else {
            self.tagged(tag, Status::Ok, Some(Code::ReadWrite), "SELECT completed");
        }
    }

    /// IMAP4rev2's `* LIST` of the mailbox a SELECT or EXAMINE opens (RFC
    /// 9051 6.3.2), with the attributes LIST gives it, and `("OLDNAME"
    /// (name))` when the client's name was not in NFC (6.3.9.7). Without
    /// the attributes if the mailboxes cannot be read.
    async fn select_list(&mut self, account: store::AccountId, name: &str, sent: &MailboxName) {
        let all = match self.ctx.shared.store.mailboxes(account).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mailbox's attributes");
                Vec::new()
            }
        };
        let attrs = match all.iter().find(|m| m.name == name) {
            Some(m) => attributes(&all, m).join(" "),
            None => String::new(),
        };
        let line = self.list_line(&attrs, name, sent);
        self.untagged(&line);
    }

    /// `LIST (attrs) "/" name`, with `("OLDNAME" (sent))` when the client
    /// sent the name otherwise than in NFC (RFC 9051 6.3.9.7).
    fn list_line(&self, attrs: &str, name: &str, sent: &MailboxName) -> Vec<u8> {
        let mut line = format!("LIST ({attrs}) \"/\" ").into_bytes();
        self.wire_name(&mut line, name);
        if let Some(old) = self.denormalized_name(sent) {
            line.extend_from_slice(b" (\"OLDNAME\" (");
            self.wire_name(&mut line, &old);
            line.extend_from_slice(b"))");
        }
        line
    }

    /// CLOSE: expunges `\Deleted` messages (silently) if the mailbox is
    /// read-write, then leaves it.
    pub(super) async fn close(&mut self, tag: &Tag) {
        let State::Selected(account, selected) =
            std::mem::replace(&mut self.state, State::NotAuthenticated)
        else {
            return;
        };
        self.state = State::Authenticated(account.clone());
        if !selected.read_only {
            let result = async {
                let index = self
                    .ctx
                    .shared
                    .store
                    .mailbox_index(account.id, selected.mailbox)
                    .await?;
                let deleted: Vec<store::Uid> = index
                    .messages
                    .iter()
                    .filter(|m| m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")))
                    .map(|m| m.uid)
                    .collect();
                if deleted.is_empty() {
                    return Ok(Vec::new());
                }
                self.ctx
                    .shared
                    .store
                    .expunge(account.id, selected.mailbox, &deleted)
                    .await
            }
            .await;
            match result {
                Ok(gone) => {
                    tracing::debug!(mailbox = %selected.name, expunged = gone.len(), "closed")
                }
                // Deleted by another session: nothing left to expunge.
                Err(StoreError::MailboxGone(_)) => {
                    tracing::debug!(mailbox = %selected.name, "closed a deleted mailbox")
                }
                Err(e) => {
                    tracing::error!(error = %e, mailbox = %selected.name, "expunge at CLOSE failed");
                    // Closed all the same, so no "try again" in the text.
                    let code = super::store_failure_code(&e);
                    self.no(tag, Some(code), "Cannot expunge; mailbox closed");
                    return;
                }
            }
        }
        self.ok(tag, "CLOSE completed");
    }

    pub(super) async fn create(&mut self, tag: &Tag, mailbox: MailboxName) {
        self.create_with_use(tag, mailbox, None).await
    }

    /// CREATE with `(USE (...))` (RFC 6154 3). One special use per
    /// mailbox, of those the store keeps (`\Archive`, `\Drafts`,
    /// `\Junk`, `\Sent`, `\Trash`); anything else is `NO [USEATTR]`
    /// and nothing is created. `USE ()` is a plain CREATE.
    pub(super) async fn create_special_use(
        &mut self,
        tag: &Tag,
        mailbox: MailboxName,
        uses: Vec<String>,
    ) {
        let use_attr = match uses.as_slice() {
            [] => return self.create(tag, mailbox).await,
            [one] => one.clone(),
            _ => return self.no(tag, Some(Code::UseAttr), "Only one special use per mailbox"),
        };
        if !store::CREATABLE_SPECIAL_USES
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&use_attr))
        {
            let text = format!("Special use {use_attr} is not supported");
            return self.no(tag, Some(Code::UseAttr), &text);
        }
        self.create_with_use(tag, mailbox, Some(use_attr)).await
    }

    /// CREATE, with a special use when one was asked for and checked.
    async fn create_with_use(&mut self, tag: &Tag, mailbox: MailboxName, use_attr: Option<String>) {
        let Some(account) = self.account() else {
            return;
        };
        // A trailing delimiter only says that levels will follow (RFC 3501
        // 6.3.3).
        let name = self
            .store_name(&mailbox)
            .map(|n| n.strip_suffix('/').unwrap_or(&n).to_owned());
        let Some(name) = name else {
            self.no(tag, Some(Code::Cannot), "Invalid mailbox name");
            return;
        };
        let store = self.ctx.shared.store.clone();
        let created = match &use_attr {
            None => store.create_mailbox(account.id, &name).await,
            Some(u) => store.create_special_use_mailbox(account.id, &name, u).await,
        };
        match created {
            Ok(()) => {
                // A name put in NFC: an IMAP4rev2 client learns the name it
                // got (RFC 9051 6.3.4 and 6.3.9.7).
                if self.rev2() && self.denormalized_name(&mailbox).is_some() {
                    let line = self.list_line("", &name, &mailbox);
                    self.untagged(&line);
                }
                self.created(tag, account.id, &name).await
            }
            Err(StoreError::AlreadyExists(_)) => {
                self.no(tag, Some(Code::AlreadyExists), "Mailbox already exists")
            }
            Err(StoreError::Invalid(_)) => self.no(tag, Some(Code::Cannot), "Invalid mailbox name"),
            Err(e) => self.store_failed(tag, e, "create the mailbox"),
        }
    }

    pub(super) async fn delete(&mut self, tag: &Tag, mailbox: MailboxName) {
        let Some(account) = self.account() else {
            return;
        };
        let Some(name) = self.store_name(&mailbox) else {
            self.no(tag, Some(Code::NonExistent), "No such mailbox");
            return;
        };
        if name == "INBOX" {
            self.no(tag, Some(Code::Cannot), "INBOX cannot be deleted");
            return;
        }
        // Deleting the mailbox this session has selected leaves it first.
        if matches!(&self.state, State::Selected(_, s) if s.name == name) {
            self.state = State::Authenticated(account.clone());
        }
        match self
            .ctx
            .shared
            .store
            .delete_mailbox(account.id, &name)
            .await
        {
            Ok(()) => self.ok(tag, "DELETE completed"),
            Err(StoreError::NotFound(_)) => {
                self.no(tag, Some(Code::NonExistent), "No such mailbox")
            }
            Err(StoreError::Invalid(_)) => {
                // RFC 9051 has a code of its own for it.
                let code = if self.rev2() {
                    Code::HasChildren
                } else {
                    Code::InUse
                };
                self.no(
                    tag,
                    Some(code),
                    "Mailbox has mailboxes below it; delete those first",
                )
            }
            Err(e) => self.store_failed(tag, e, "delete the mailbox"),
        }
    }

    pub(super) async fn rename(&mut self, tag: &Tag, from: MailboxName, to: MailboxName) {
        let Some(account) = self.account() else {
            return;
        };
        let Some(from) = self.store_name(&from) else {
            self.no(tag, Some(Code::NonExistent), "No such mailbox");
            return;
        };
        let Some(to) = self.store_name(&to) else {
            self.no(tag, Some(Code::Cannot), "Invalid mailbox name");
            return;
        };
        match self
            .ctx
            .shared
            .store
            .rename_mailbox(account.id, &from, &to)
            .await
        {
            Ok(()) => {
                // The selected mailbox keeps going under its new name.
                if let State::Selected(_, s) = &mut self.state {
                    if from != "INBOX" {
                        if s.name == from {
                            s.name = to.clone();
                        } else if let Some(rest) = s.name.strip_prefix(&format!("{from}/")) {
                            s.name = format!("{to}/{rest}");
                        }
                    }
                }
                self.ok(tag, "RENAME completed")
            }
            Err(StoreError::NotFound(_)) => {
                self.no(tag, Some(Code::NonExistent), "No such mailbox")
            }
            Err(StoreError::AlreadyExists(_)) => {
                self.no(tag, Some(Code::AlreadyExists), "Mailbox already exists")
            }
            Err(StoreError::Invalid(_)) => {
                self.no(tag, Some(Code::Cannot), "Cannot rename to that name")
            }
            Err(e) => self.store_failed(tag, e, "rename the mailbox"),
        }
    }

    /// SUBSCRIBE and UNSUBSCRIBE: subscriptions are names; the mailbox
    /// need not exist (RFC 3501 6.3.6), as in Dovecot.
    pub(super) async fn subscribe(&mut self, tag: &Tag, mailbox: MailboxName, on: bool) {
        let Some(account) = self.account() else {
            return;
        };
        let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
        let Some(name) = self.store_name(&mailbox) else {
            self.no(tag, Some(Code::Cannot), "Invalid mailbox name");
            return;
        };
        match self
            .ctx
            .shared
            .store
            .set_subscribed(account.id, &name, on)
            .await
        {
            Ok(()) => self.ok(tag, &format!("{verb} completed")),
            Err(StoreError::Invalid(_)) => self.no(tag, Some(Code::Cannot), "Invalid mailbox name"),
            Err(e) => self.store_failed(tag, e, "change the subscription"),
        }
    }

    pub(super) fn unselect(&mut self, tag: &Tag) {
        if let Some(account) = self.account() {
            self.state = State::Authenticated(account);
        }
        self.ok(tag, "UNSELECT completed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(matches(b"*", b"INBOX"));
        assert!(matches(b"*", b"a/b/c"));
        assert!(matches(b"%", b"Sent"));
        assert!(!matches(b"%", b"a/b"));
        assert!(matches(b"a/%", b"a/b"));
        assert!(!matches(b"a/%", b"a/b/c"));
        assert!(matches(b"a/*", b"a/b/c"));
        assert!(matches(b"S%t", b"Sent"));
        assert!(!matches(b"S%t", b"Sen"));
        assert!(matches(b"INBOX", b"INBOX"));
        assert!(!matches(b"INBOX", b"INBOXx"));
        assert!(matches(b"", b""));
        assert!(!matches(b"", b"x"));
        assert_eq!(fold_inbox(b"inbox"), b"INBOX");
        assert_eq!(fold_inbox(b"iNbOx/%"), b"INBOX/%");
        assert_eq!(fold_inbox(b"inboxes"), b"inboxes");
    }
}
