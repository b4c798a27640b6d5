//! Untagged updates: what other sessions (and processes) changed in the
//! selected mailbox, reported as `* n EXPUNGE`, `* FLAGS`, `* n FETCH
//! (FLAGS ...)`, `* n EXISTS` and `* n RECENT`.
//!
//! The store's wake-up for the selected mailbox
//! ([`store::Store::watch_mailbox`]) says when to look; commits to other
//! mailboxes do not move it. The session then reads the mailbox index once
//! and compares it
//! with what its client was told ([`Selected`]). EXPUNGE is held back while
//! the client may still be using sequence numbers (after a non-UID FETCH,
//! STORE, SEARCH, COPY or MOVE); the message then stays in the view, so
//! sequence numbers keep their meaning, until the next command that allows
//! it.

use std::collections::BTreeSet;
use std::sync::Arc;

use store::{IndexEntry, MailboxIndex, MailboxRef, StoreError, Uid};

use super::{Selected, Session, State};
use crate::protocol::encode::Status;

/// The system flags every mailbox offers.
pub(super) const SYSTEM_FLAGS: [&str; 5] =
    ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// `FLAGS (...)` for a message, with `\Recent` if it is recent here.
pub(super) fn flags_item(flags: &[String], recent: bool) -> String {
    let mut text = Vec::with_capacity(32);
    push_flags_item(&mut text, flags, recent);
    String::from_utf8(text).unwrap_or_default()
}

/// [`flags_item`] written onto the end of a response line, with no
/// allocation of its own (FETCH FLAGS of a large mailbox writes one per
/// message).
pub(super) fn push_flags_item(line: &mut Vec<u8>, flags: &[String], recent: bool) {
    line.extend_from_slice(b"FLAGS (");
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(flag.as_bytes());
    }
    if recent {
        if !flags.is_empty() {
            line.push(b' ');
        }
        line.extend_from_slice(b"\\Recent");
    }
    line.push(b')');
}

impl Session {
    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` for the mailbox's keywords.
    pub(super) fn announce_flags(&mut self, keywords: &BTreeSet<String>, read_only: bool) {
        let mut flags: Vec<&str> = SYSTEM_FLAGS.to_vec();
        flags.extend(keywords.iter().map(String::as_str));
        self.untagged(format!("FLAGS ({})", flags.join(" ")).as_bytes());
        // No `Code` for a PERMANENTFLAGS list of strings: written here.
        let permanent = if read_only {
            "[PERMANENTFLAGS ()] No permanent flags permitted".to_owned()
        } else {
            format!("[PERMANENTFLAGS ({} \\*)] Limited", flags.join(" "))
        };
        self.untagged_status(Status::Ok, None, &permanent);
    }

    /// Sends `* FLAGS` (and PERMANENTFLAGS) first if any of these flags is
    /// a keyword the client has not been told of: a keyword must be in
    /// FLAGS before a FETCH shows it.
    pub(super) fn announce_keywords<'a>(&mut self, flags: impl Iterator<Item = &'a String>) {
        let State::Selected(_, view) = &mut self.state else {
            return;
        };
        let mut added = false;
        for f in flags {
            if !f.starts_with('\\') && !view.keywords.contains(f) {
                view.keywords.insert(f.clone());
                added = true;
            }
        }
        if added {
            let (keywords, read_only) = (view.keywords.clone(), view.read_only);
            self.announce_flags(&keywords, read_only);
        }
    }

    /// Watches `mailbox`, just selected from a read that began after the
    /// store's wake mark was `mark`: a wake-up since then may be a change
    /// the read missed, so the next look reads the mailbox again.
    pub(super) fn watch_selected(&mut self, mailbox: store::MailboxId, mark: u64) {
        let mut rx = self.ctx.store.watch_mailbox(mailbox);
        if *rx.borrow_and_update() > mark {
            rx.mark_changed();
        }
        self.changes = Some(rx);
    }

    /// Reports what changed in the selected mailbox since the client was
    /// last told, if anything did.
    pub(super) async fn sync_mailbox(&mut self, expunge_allowed: bool) {
        let (account, mailbox, owed) = match &self.state {
            State::Selected(a, s) => (a.id, s.mailbox, s.expunge_owed),
            _ => return,
        };
        let changed = self
            .changes
            .as_mut()
            .is_some_and(|rx| rx.has_changed().unwrap_or(false));
        if !(changed || owed && expunge_allowed) {
            return;
        }
        if let Some(rx) = self.changes.as_mut() {
            rx.borrow_and_update();
        }
        self.report_changes(account, mailbox, expunge_allowed).await;
    }

    /// Reads the selected mailbox now and reports how it differs from the
    /// client's view.
    pub(super) async fn report_changes(
        &mut self,
        account: store::AccountId,
        mailbox: MailboxRef,
        expunge_allowed: bool,
    ) {
        let index = match self.ctx.store.mailbox_index(account, mailbox).await {
            Ok(index) => index,
            Err(StoreError::MailboxGone(_)) => return self.selected_mailbox_gone(),
            Err(e) => {
                tracing::warn!(error = %e, mailbox = %mailbox.id, "cannot read mailbox updates");
                return;
            }
        };
        // Claim the new messages' \Recent before the view takes them.
        let State::Selected(_, view) = &self.state else {
            return;
        };
        let last_known = view.uids.last().copied().unwrap_or(Uid(0));
        let has_new = index.messages.last().is_some_and(|m| m.uid > last_known);
        let first_recent = if has_new && !view.read_only {
            match self.ctx.store.claim_recent(account, mailbox).await {
                Ok(first) => Some(first),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim recent messages");
                    None
                }
            }
        } else {
            None
        };
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut flags_announcement = None;
        {
            let State::Selected(_, view) = &mut self.state else {
                return;
            };
            apply(
                view,
                &index,
                expunge_allowed,
                first_recent,
                &mut out,
                &mut flags_announcement,
            );
        }
        if let Some((keywords, read_only)) = flags_announcement {
            self.announce_flags(&keywords, read_only);
        }
        for line in out {
            self.untagged(&line);
        }
    }
}

/// Waits until the selected mailbox (watched by `changes`) may have
/// changed; `false` if the store is gone. With nothing selected, waits for
/// ever.
pub(super) async fn selected_changed(
    changes: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> bool {
    match changes.as_mut() {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Brings `view` up to `current` (the store's index), writing the
/// untagged lines (without `* `) the client needs, in order: EXPUNGEs,
/// then flag changes, then EXISTS and RECENT. A new keyword comes back in
/// `flags` for a `* FLAGS` before them all. One merge walk over both
/// lists (both in UID order); no per-message state is kept.
fn apply(
    view: &mut Selected,
    current: &MailboxIndex,
    expunge_allowed: bool,
    first_recent: Option<Uid>,
    out: &mut Vec<Vec<u8>>,
    flags: &mut Option<(BTreeSet<String>, bool)>,
) {
    let entries = &current.messages;
    let mut gone: Vec<usize> = Vec::new();
    let mut changed: Vec<(usize, &IndexEntry)> = Vec::new();
    let mut j = 0;
    for (i, uid) in view.uids.iter().enumerate() {
        while j < entries.len() && entries[j].uid < *uid {
            j += 1;
        }
        match entries.get(j) {
            Some(e) if e.uid == *uid => {
                let mine = view.reported.get(uid) == Some(&e.modseq);
                if e.modseq > view.synced_modseq && !mine {
                    changed.push((i, e));
                }
            }
            _ => gone.push(i),
        }
    }
    let last_known = view.uids.last().copied().unwrap_or(Uid(0));
    let new = &entries[entries.partition_point(|e| e.uid <= last_known)..];

    let mut new_keywords = BTreeSet::new();
    for e in changed.iter().map(|c| c.1).chain(new.iter()) {
        for f in e.flags.iter().filter(|f| !f.starts_with('\\')) {
            if !view.keywords.contains(f) {
                new_keywords.insert(f.clone());
            }
        }
    }
    if !new_keywords.is_empty() {
        view.keywords.extend(new_keywords);
        *flags = Some((view.keywords.clone(), view.read_only));
    }

    // Flag changes go out with the numbers the client has now, before
    // any EXPUNGE renumbers it... but EXPUNGEs come first on the wire, so
    // number them after the expunges below.
    let expunging = expunge_allowed && !gone.is_empty();
    view.expunge_owed = !gone.is_empty() && !expunge_allowed;
    if expunging {
        for &i in gone.iter().rev() {
            out.push(format!("{} EXPUNGE", i + 1).into_bytes());
        }
    }
    for (i, e) in &changed {
        let shift = if expunging {
            gone.partition_point(|g| g < i)
        } else {
            0
        };
        let item = flags_item(&e.flags, view.is_recent(e.uid));
        out.push(format!("{} FETCH (UID {} {item})", i + 1 - shift, e.uid.0).into_bytes());
    }
    if let (Some(first), Some(last)) = (first_recent, new.last()) {
        let from = first.max(new[0].uid);
        if from <= last.uid {
            view.recent.push((from, last.uid));
        }
    }
    // The new view: the index's own list when nothing is owed (shared),
    // else the old one with the owed expunges kept in place.
    if view.expunge_owed {
        if !new.is_empty() {
            Arc::make_mut(&mut view.uids).extend(new.iter().map(|e| e.uid));
        }
    } else if !Arc::ptr_eq(&view.uids, &current.uids) {
        view.uids = current.uids.clone();
    }
    view.synced_modseq = current.highest_modseq;
    view.reported.clear();
    if !new.is_empty() {
        out.push(format!("{} EXISTS", view.uids.len()).into_bytes());
        out.push(format!("{} RECENT", view.recent_count()).into_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::ModSeq;

    fn entry(uid: u32, modseq: u64, flags: &[&str]) -> IndexEntry {
        IndexEntry {
            uid: Uid(uid),
            size: 10,
            modseq: ModSeq(modseq),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn index(entries: &[IndexEntry]) -> MailboxIndex {
        MailboxIndex::new(
            store::MailboxId(1),
            1,
            Uid(entries.last().map_or(1, |e| e.uid.0 + 1)),
            entries.iter().map(|e| e.modseq).max().unwrap_or(ModSeq(1)),
            Uid(1),
            entries.to_vec(),
        )
    }

    fn view(entries: &[IndexEntry]) -> Selected {
        let index = index(entries);
        Selected {
            mailbox: index.mailbox_ref(),
            name: "INBOX".into(),
            read_only: false,
            uids: index.uids.clone(),
            recent: Default::default(),
            synced_modseq: index.highest_modseq,
            reported: Default::default(),
            keywords: index.keywords.iter().cloned().collect(),
            expunge_owed: false,
        }
    }

    fn run(v: &mut Selected, current: &[IndexEntry], allowed: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut flags = None;
        let mut current = index(current);
        // Expunges move HIGHESTMODSEQ too.
        current.highest_modseq = current.highest_modseq.max(ModSeq(v.synced_modseq.0 + 1));
        apply(v, &current, allowed, Some(Uid(1)), &mut out, &mut flags);
        let mut lines: Vec<String> = flags
            .map(|(k, _)| format!("FLAGS {k:?}"))
            .into_iter()
            .collect();
        lines.extend(out.into_iter().map(|l| String::from_utf8(l).unwrap()));
        lines
    }

    #[test]
    fn the_view_shares_the_index_list_unless_it_owes_expunges() {
        let before = [entry(1, 2, &[]), entry(2, 3, &[])];
        let mut v = view(&before);
        let now = index(&[entry(2, 3, &[]), entry(3, 5, &[])]);
        let (mut out, mut flags) = (Vec::new(), None);
        apply(&mut v, &now, false, None, &mut out, &mut flags);
        assert!(!Arc::ptr_eq(&v.uids, &now.uids));
        assert_eq!(*v.uids, [Uid(1), Uid(2), Uid(3)]);
        apply(&mut v, &now, true, None, &mut out, &mut flags);
        assert!(Arc::ptr_eq(&v.uids, &now.uids));
    }

    #[test]
    fn nothing_changed_says_nothing() {
        let now = [entry(1, 2, &[]), entry(2, 3, &["\\Seen"])];
        let mut v = view(&now);
        assert!(run(&mut v, &now, true).is_empty());
    }

    #[test]
    fn expunges_flags_and_new_messages_in_order() {
        let before = [entry(1, 2, &[]), entry(2, 3, &[]), entry(3, 4, &[])];
        let mut v = view(&before);
        let now = [
            entry(1, 2, &[]),
            entry(3, 9, &["\\Seen"]),
            entry(4, 10, &[]),
        ];
        assert_eq!(
            run(&mut v, &now, true),
            [
                "2 EXPUNGE",
                "2 FETCH (UID 3 FLAGS (\\Seen))",
                "3 EXISTS",
                "1 RECENT"
            ]
        );
        assert_eq!(*v.uids, [Uid(1), Uid(3), Uid(4)]);
        assert!(run(&mut v, &now, true).is_empty());
    }

    #[test]
    fn expunge_waits_until_allowed_and_numbers_stay() {
        let before = [entry(1, 2, &[]), entry(2, 3, &[]), entry(3, 4, &[])];
        let mut v = view(&before);
        let now = [entry(1, 2, &[]), entry(3, 4, &[]), entry(4, 5, &[])];
        assert_eq!(run(&mut v, &now, false), ["4 EXISTS", "1 RECENT"]);
        assert!(v.expunge_owed);
        assert_eq!(v.uids.len(), 4);
        assert_eq!(run(&mut v, &now, true), ["2 EXPUNGE"]);
        assert!(!v.expunge_owed);
        // Descending, so each number is right when the client applies it.
        let mut v = view(&before);
        assert_eq!(
            run(&mut v, &[entry(2, 3, &[])], true),
            ["3 EXPUNGE", "1 EXPUNGE"]
        );
    }

    #[test]
    fn a_new_keyword_is_announced_first() {
        let before = [entry(1, 2, &[])];
        let mut v = view(&before);
        let lines = run(&mut v, &[entry(1, 3, &["$Junk"])], true);
        assert_eq!(lines[0], "FLAGS {\"$Junk\"}");
        assert_eq!(lines[1], "1 FETCH (UID 1 FLAGS ($Junk))");
    }
}
