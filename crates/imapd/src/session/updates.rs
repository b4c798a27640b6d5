//! Untagged updates: what other sessions (and processes) changed in the
//! selected mailbox, reported as `* n EXPUNGE`, `* FLAGS`, `* n FETCH
//! (FLAGS ...)`, `* n EXISTS` and `* n RECENT`.
//!
//! The store's wake-up for the selected mailbox
//! ([`store::Store::watch_mailbox`]) says when to look; commits to other
//! mailboxes do not move it. The session then reads the mailbox's change
//! feed after the modseq its client was last brought up to
//! ([`store::Store::changes_since`]): the UIDs expunged and the messages
//! changed or appended since, each found in its view ([`Selected`]) by
//! binary search, so a flag change costs the same in a mailbox of ten
//! messages as in one of 50,000. When pruning took part of that feed, or
//! an expunge is still owed (it is older than the view's modseq), the
//! session reads the whole mailbox index instead and compares it with the
//! view in one merge walk. EXPUNGE is held back while
//! the client may still be using sequence numbers (after a non-UID FETCH,
//! STORE, SEARCH, COPY or MOVE); the message then stays in the view, so
//! sequence numbers keep their meaning, until the next command that allows
//! it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use store::{
    ChangesSince, IndexEntry, MailboxChanges, MailboxIndex, MailboxRef, ModSeq, StoreError, Uid,
};

use super::condstore::{expunge_lines, Enabled};
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
        let mut rx = self.ctx.shared.store.watch_mailbox(mailbox);
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

    /// Reads what changed in the selected mailbox since the client was
    /// last brought up to date and reports it: from the change feed when
    /// the store still has it all, else by comparing the whole index.
    pub(super) async fn report_changes(
        &mut self,
        account: store::AccountId,
        mailbox: MailboxRef,
        expunge_allowed: bool,
    ) {
        let State::Selected(_, view) = &self.state else {
            return;
        };
        // Expunges still owed happened before `synced_modseq`: the feed
        // after it does not name them, the index does.
        if !view.expunge_owed {
            let since = view.synced_modseq;
            // The wake-up this session is answering: a read begun after it
            // serves every session woken by the same commit.
            let woken_at = self.changes.as_ref().map_or(u64::MAX, |rx| *rx.borrow());
            let read = self.ctx.feed_reads.changes_since(
                &self.ctx.shared.store,
                account,
                mailbox,
                since,
                woken_at,
            );
            match read.await {
                Ok(changes) => {
                    if let MailboxChanges::Known(changes) = &*changes {
                        return self
                            .report_feed(account, mailbox, changes, expunge_allowed)
                            .await;
                    }
                }
                Err(StoreError::MailboxGone(_)) => return self.selected_mailbox_gone(),
                Err(e) => {
                    tracing::warn!(error = %e, mailbox = %mailbox.id, "cannot read mailbox updates");
                    return;
                }
            }
        }
        self.report_index(account, mailbox, expunge_allowed).await;
    }

    /// Reports the changes the feed gave since the view's modseq.
    async fn report_feed(
        &mut self,
        account: store::AccountId,
        mailbox: MailboxRef,
        changes: &ChangesSince,
        expunge_allowed: bool,
    ) {
        let State::Selected(_, view) = &self.state else {
            return;
        };
        let last_known = view.uids.last().copied().unwrap_or(Uid(0));
        let has_new = changes.changed.last().is_some_and(|m| m.uid > last_known);
        let first_recent = self.claim_new_recent(account, mailbox, has_new).await;
        let shared = self.ctx.uid_lists.get(mailbox, changes.highest_modseq);
        let State::Selected(_, view) = &mut self.state else {
            return;
        };
        let differences = Differences::from_feed(view, changes, shared);
        self.report(differences, expunge_allowed, first_recent);
    }

    /// Reads the selected mailbox's whole index and reports how it differs
    /// from the client's view.
    async fn report_index(
        &mut self,
        account: store::AccountId,
        mailbox: MailboxRef,
        expunge_allowed: bool,
    ) {
        let index = match self.ctx.shared.store.mailbox_index(account, mailbox).await {
            Ok(index) => index,
            Err(StoreError::MailboxGone(_)) => return self.selected_mailbox_gone(),
            Err(e) => {
                tracing::warn!(error = %e, mailbox = %mailbox.id, "cannot read mailbox updates");
                return;
            }
        };
        let State::Selected(_, view) = &self.state else {
            return;
        };
        let last_known = view.uids.last().copied().unwrap_or(Uid(0));
        let has_new = index.messages.last().is_some_and(|m| m.uid > last_known);
        let first_recent = self.claim_new_recent(account, mailbox, has_new).await;
        let State::Selected(_, view) = &self.state else {
            return;
        };
        let differences = Differences::from_index(view, &index);
        self.report(differences, expunge_allowed, first_recent);
    }

    /// Claims the new messages' `\Recent` before the view takes them
    /// (none in a read-only view, nor in an IMAP4rev2 session, which has
    /// no `\Recent`).
    async fn claim_new_recent(
        &mut self,
        account: store::AccountId,
        mailbox: MailboxRef,
        has_new: bool,
    ) -> Option<Uid> {
        let State::Selected(_, view) = &self.state else {
            return None;
        };
        if !has_new || view.read_only || self.enabled.imap4rev2 {
            return None;
        }
        match self.ctx.shared.store.claim_recent(account, mailbox).await {
            Ok(first) => Some(first),
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim recent messages");
                None
            }
        }
    }

    /// Brings the view up to date with `differences` and writes the
    /// untagged lines for it; a list of UIDs the view now holds alone is
    /// offered to the other sessions on the mailbox.
    fn report(
        &mut self,
        differences: Differences<'_>,
        expunge_allowed: bool,
        first_recent: Option<Uid>,
    ) {
        if expunge_allowed && !differences.gone.is_empty() {
            // Live search results lose them first, while their numbers hold.
            if let State::Selected(_, view) = &self.state {
                let gone = differences
                    .gone
                    .iter()
                    .filter_map(|&i| view.uids.get(i).copied());
                let gone: std::collections::HashSet<Uid> = gone.collect();
                self.report_expunged(&gone);
            }
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut flags_announcement = None;
        {
            let State::Selected(_, view) = &mut self.state else {
                return;
            };
            let before = view.uids.clone();
            apply(
                view,
                differences,
                expunge_allowed,
                first_recent,
                self.enabled,
                &mut out,
                &mut flags_announcement,
            );
            if !view.expunge_owed && !Arc::ptr_eq(&before, &view.uids) {
                view.uids =
                    self.ctx
                        .uid_lists
                        .publish(view.mailbox, view.synced_modseq, &view.uids);
            }
        }
        if let Some((keywords, read_only)) = flags_announcement {
            self.announce_flags(&keywords, read_only);
        }
        // NOTIFY's selected events without FlagChange: no flag FETCHes
        // (as Dovecot).
        let flags_muted = self.selected_flags_muted();
        for line in out {
            if flags_muted && line.windows(8).any(|w| w == b" FETCH (") {
                continue;
            }
            self.enabled.vanished_sent |= line.starts_with(b"VANISHED ");
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

/// How the mailbox differs from a session's view.
struct Differences<'a> {
    /// Positions in the view of messages no longer in the mailbox, in
    /// order.
    gone: Vec<usize>,
    /// Messages in the view whose flags changed (and this session did not
    /// report them itself), with their positions, in order.
    changed: Vec<(usize, &'a IndexEntry)>,
    /// Messages after the view's last, in UID order.
    new: &'a [IndexEntry],
    /// The mailbox's HIGHESTMODSEQ: the view is brought up to it.
    highest_modseq: ModSeq,
    /// The mailbox's UIDs now, if a list of them is at hand to share.
    uids: Option<Arc<Vec<Uid>>>,
}

impl<'a> Differences<'a> {
    /// From the whole index: one merge walk over it and the view (both in
    /// UID order).
    fn from_index(view: &Selected, current: &'a MailboxIndex) -> Differences<'a> {
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
                    if view.is_change(e) {
                        changed.push((i, e));
                    }
                }
                _ => gone.push(i),
            }
        }
        let last_known = view.uids.last().copied().unwrap_or(Uid(0));
        Differences {
            gone,
            changed,
            new: &entries[entries.partition_point(|e| e.uid <= last_known)..],
            highest_modseq: current.highest_modseq,
            uids: Some(current.uids.clone()),
        }
    }

    /// From the change feed since the view's modseq: each UID it names
    /// found in the view by binary search. The view must owe no expunges
    /// (those are older than its modseq, so the feed does not name them).
    /// `shared` is a list of the mailbox's UIDs at the feed's modseq that
    /// another session made, if any.
    fn from_feed(
        view: &Selected,
        feed: &'a ChangesSince,
        shared: Option<Arc<Vec<Uid>>>,
    ) -> Differences<'a> {
        let gone = feed
            .expunged
            .iter()
            .filter_map(|uid| view.uids.binary_search(uid).ok())
            .collect();
        let last_known = view.uids.last().copied().unwrap_or(Uid(0));
        let split = feed.changed.partition_point(|e| e.uid <= last_known);
        let changed = feed.changed[..split]
            .iter()
            .filter(|e| view.is_change(e))
            .filter_map(|e| Some((view.uids.binary_search(&e.uid).ok()?, e)))
            .collect();
        Differences {
            gone,
            changed,
            new: &feed.changed[split..],
            highest_modseq: feed.highest_modseq,
            uids: shared,
        }
    }
}

impl Selected {
    /// Whether `entry`, a message in the view, changed since the client
    /// was last told, by a change this session did not report itself.
    fn is_change(&self, entry: &IndexEntry) -> bool {
        entry.modseq > self.synced_modseq && self.reported.get(&entry.uid) != Some(&entry.modseq)
    }
}

/// Brings `view` up to the mailbox as `differences` describe it, writing
/// the untagged lines (without `* `) the client needs, in order:
/// EXPUNGEs (VANISHED with QRESYNC on), then flag changes (with MODSEQ
/// with CONDSTORE on), then EXISTS and RECENT (not with IMAP4rev2 on). A new keyword comes back
/// in `flags` for a `* FLAGS` before them all. No per-message state is
/// kept.
fn apply(
    view: &mut Selected,
    differences: Differences<'_>,
    expunge_allowed: bool,
    first_recent: Option<Uid>,
    enabled: Enabled,
    out: &mut Vec<Vec<u8>>,
    flags: &mut Option<(BTreeSet<String>, bool)>,
) {
    let Differences {
        gone,
        changed,
        new,
        highest_modseq,
        uids: current_uids,
    } = differences;

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
        out.extend(expunge_lines(enabled, &view.uids, &gone));
    }
    for (i, e) in &changed {
        let shift = if expunging {
            gone.partition_point(|g| g < i)
        } else {
            0
        };
        let item = flags_item(&e.flags, view.is_recent(e.uid));
        let mut line = format!("{} FETCH (UID {} {item}", i + 1 - shift, e.uid.0);
        if enabled.condstore {
            line.push_str(&format!(" MODSEQ ({})", e.modseq.0));
        }
        line.push(')');
        out.push(line.into_bytes());
    }
    if let (Some(first), Some(last)) = (first_recent, new.last()) {
        let from = first.max(new[0].uid);
        if from <= last.uid {
            view.recent.push((from, last.uid));
        }
    }
    // The new view: the mailbox's own list when nothing is owed (shared
    // when there is one to share), else the old one with the owed
    // expunges kept in place.
    if view.expunge_owed || (gone.is_empty() && current_uids.is_none()) {
        if !new.is_empty() {
            Arc::make_mut(&mut view.uids).extend(new.iter().map(|e| e.uid));
        }
    } else {
        match current_uids {
            Some(current) => {
                if !Arc::ptr_eq(&view.uids, &current) {
                    view.uids = current;
                }
            }
            None => {
                let mut uids = Vec::with_capacity(view.uids.len() - gone.len() + new.len());
                let mut next_gone = gone.iter().peekable();
                for (i, uid) in view.uids.iter().enumerate() {
                    if next_gone.next_if_eq(&&i).is_none() {
                        uids.push(*uid);
                    }
                }
                uids.extend(new.iter().map(|e| e.uid));
                view.uids = Arc::new(uids);
            }
        }
    }
    view.synced_modseq = highest_modseq;
    view.reported.clear();
    if !new.is_empty() {
        out.push(format!("{} EXISTS", view.uids.len()).into_bytes());
        if !enabled.imap4rev2 {
            out.push(format!("{} RECENT", view.recent_count()).into_bytes());
        }
    }
}

/// Lists of a mailbox's UIDs that sessions brought up to the same modseq
/// share, so that a thousand sessions following the feed of a
/// 50,000-message mailbox hold one list, as they do after reading the
/// same index. A mailbox's UIDs at a modseq are one fact: any session
/// that owes no expunges holds exactly that list there.
#[derive(Default)]
pub(crate) struct SharedUidLists {
    /// The newest list offered for each mailbox, with its modseq.
    lists: std::sync::Mutex<HashMap<MailboxRef, UidListAt>>,
}

/// A mailbox's UIDs at a modseq.
type UidListAt = (ModSeq, Arc<Vec<Uid>>);

/// Mailboxes [`SharedUidLists`] keeps a list for at most; past that it
/// starts again.
const SHARED_UID_LISTS: usize = 256;

impl SharedUidLists {
    /// The list of the mailbox's UIDs at `modseq`, if a session offered it.
    fn get(&self, mailbox: MailboxRef, modseq: ModSeq) -> Option<Arc<Vec<Uid>>> {
        let lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        match lists.get(&mailbox) {
            Some((at, uids)) if *at == modseq => Some(uids.clone()),
            _ => None,
        }
    }

    /// Offers `uids`, the mailbox's UIDs at `modseq`, to other sessions,
    /// and returns the list to keep: one offered before at the same modseq
    /// (so that sessions that made their lists at once end up sharing
    /// one), else `uids`.
    fn publish(&self, mailbox: MailboxRef, modseq: ModSeq, uids: &Arc<Vec<Uid>>) -> Arc<Vec<Uid>> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if lists.len() >= SHARED_UID_LISTS && !lists.contains_key(&mailbox) {
            lists.clear();
        }
        let entry = lists
            .entry(mailbox)
            .or_insert_with(|| (modseq, uids.clone()));
        if entry.0 < modseq {
            *entry = (modseq, uids.clone());
        }
        if entry.0 == modseq {
            entry.1.clone()
        } else {
            uids.clone()
        }
    }
}

/// Reads of a mailbox's change feed that the sessions woken by one commit
/// share: they were all brought up to the same modseq and ask the same
/// question, so one of them asks the store and the others wait for its
/// answer (ten sessions on one mailbox otherwise make ten reads, each a
/// round trip to a store thread, for every change).
#[derive(Default)]
pub(crate) struct SharedFeedReads {
    /// The newest read of each mailbox's feed.
    reads: std::sync::Mutex<HashMap<store::MailboxId, FeedRead>>,
}

struct FeedRead {
    account: store::AccountId,
    mailbox: MailboxRef,
    since: ModSeq,
    /// The store's wake mark before the read began: the read sees every
    /// commit whose wake-up is at or below it.
    mark: u64,
    /// The answer, once read; empty if the read failed (each session then
    /// reads for itself and sees its own error).
    answer: Arc<tokio::sync::OnceCell<Option<Arc<MailboxChanges>>>>,
}

/// Mailboxes [`SharedFeedReads`] keeps a read of at most; past that it
/// starts again.
const SHARED_FEED_READS: usize = 256;

impl SharedFeedReads {
    /// What changed in the mailbox after `since`, read after the wake-up
    /// `woken_at` (or later): shared with the other sessions that ask the
    /// same while the read is the newest.
    async fn changes_since(
        &self,
        store: &store::Store,
        account: store::AccountId,
        mailbox: MailboxRef,
        since: ModSeq,
        woken_at: u64,
    ) -> Result<Arc<MailboxChanges>, StoreError> {
        let answer = {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            match reads.get(&mailbox.id) {
                Some(read)
                    if read.account == account
                        && read.mailbox == mailbox
                        && read.since == since
                        && read.mark >= woken_at =>
                {
                    read.answer.clone()
                }
                _ => {
                    if reads.len() >= SHARED_FEED_READS && !reads.contains_key(&mailbox.id) {
                        reads.clear();
                    }
                    let answer = Arc::new(tokio::sync::OnceCell::new());
                    let read = FeedRead {
                        account,
                        mailbox,
                        since,
                        mark: store.wake_mark(),
                        answer: answer.clone(),
                    };
                    reads.insert(mailbox.id, read);
                    answer
                }
            }
        };
        // If the session reading is dropped meanwhile, a waiting one reads.
        let shared = answer
            .get_or_init(|| async {
                store
                    .changes_since(account, mailbox, since)
                    .await
                    .ok()
                    .map(Arc::new)
            })
            .await;
        match shared {
            Some(changes) => Ok(changes.clone()),
            None => store
                .changes_since(account, mailbox, since)
                .await
                .map(Arc::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::ModSeq;

    /// [`apply`] for a session without CONDSTORE or QRESYNC.
    fn apply_plain(
        view: &mut Selected,
        differences: Differences<'_>,
        expunge_allowed: bool,
        first_recent: Option<Uid>,
        out: &mut Vec<Vec<u8>>,
        flags: &mut Option<(BTreeSet<String>, bool)>,
    ) {
        let plain = Enabled::default();
        apply(
            view,
            differences,
            expunge_allowed,
            first_recent,
            plain,
            out,
            flags,
        );
    }

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

    /// What the change feed since the view's modseq says about `current`
    /// (as the store reads it: expunged UIDs and changed or new messages).
    fn feed_since(v: &Selected, current: &MailboxIndex) -> ChangesSince {
        let last_known = v.uids.last().copied().unwrap_or(Uid(0));
        ChangesSince {
            uid_next: current.uid_next,
            highest_modseq: current.highest_modseq,
            recent_uid: current.recent_uid,
            expunged: v
                .uids
                .iter()
                .filter(|u| current.uids.binary_search(u).is_err())
                .copied()
                .collect(),
            changed: current
                .messages
                .iter()
                .filter(|e| e.modseq > v.synced_modseq || e.uid > last_known)
                .cloned()
                .collect(),
        }
    }

    /// Applies `differences` to the view; the lines, a `* FLAGS` first.
    fn lines(
        v: &mut Selected,
        differences: Differences<'_>,
        allowed: bool,
        first_recent: Option<Uid>,
    ) -> Vec<String> {
        let (mut out, mut flags) = (Vec::new(), None);
        apply_plain(v, differences, allowed, first_recent, &mut out, &mut flags);
        let mut lines: Vec<String> = flags
            .map(|(k, _)| format!("FLAGS {k:?}"))
            .into_iter()
            .collect();
        lines.extend(out.into_iter().map(|l| String::from_utf8(l).unwrap()));
        lines
    }

    /// Brings the view up to `current` from the whole index and, as
    /// `report_changes` would when no expunge is owed, from the feed too:
    /// both must tell the client the same and leave the same view.
    fn run(v: &mut Selected, current: &[IndexEntry], allowed: bool) -> Vec<String> {
        let mut current = index(current);
        // Expunges move HIGHESTMODSEQ too.
        current.highest_modseq = current.highest_modseq.max(ModSeq(v.synced_modseq.0 + 1));
        let by_feed = (!v.expunge_owed).then(|| {
            let mut w = v.clone();
            let feed = feed_since(&w, &current);
            let differences = Differences::from_feed(&w, &feed, None);
            (lines(&mut w, differences, allowed, Some(Uid(1))), w)
        });
        let differences = Differences::from_index(v, &current);
        let by_index = lines(v, differences, allowed, Some(Uid(1)));
        if let Some((by_feed, w)) = by_feed {
            assert_eq!(by_feed, by_index, "the feed and the index disagree");
            assert_eq!(*w.uids, *v.uids);
            assert_eq!(w.recent, v.recent);
            assert_eq!(w.keywords, v.keywords);
            assert_eq!(w.synced_modseq, v.synced_modseq);
            assert_eq!(w.expunge_owed, v.expunge_owed);
        }
        by_index
    }

    /// With QRESYNC, expunges are one VANISHED of UIDs; with CONDSTORE,
    /// flag changes carry MODSEQ; held back expunges stay held back.
    #[test]
    fn qresync_reports_vanished_uids_and_modseqs() {
        let before = [
            entry(1, 2, &[]),
            entry(2, 3, &[]),
            entry(3, 4, &[]),
            entry(5, 5, &[]),
        ];
        let now = index(&[entry(2, 9, &["\\Seen"]), entry(5, 5, &[])]);
        let qresync = Enabled {
            condstore: true,
            qresync: true,
            ..Enabled::default()
        };
        for (allowed, expected) in [
            (
                true,
                vec!["VANISHED 1,3", "1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (9))"],
            ),
            (false, vec!["2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (9))"]),
        ] {
            let mut v = view(&before);
            let differences = Differences::from_index(&v, &now);
            let (mut out, mut flags) = (Vec::new(), None);
            apply(
                &mut v,
                differences,
                allowed,
                None,
                qresync,
                &mut out,
                &mut flags,
            );
            let got: Vec<String> = out
                .into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect();
            assert_eq!(got, expected);
            assert_eq!(v.expunge_owed, !allowed);
        }
    }

    #[test]
    fn the_view_shares_the_index_list_unless_it_owes_expunges() {
        let before = [entry(1, 2, &[]), entry(2, 3, &[])];
        let mut v = view(&before);
        let now = index(&[entry(2, 3, &[]), entry(3, 5, &[])]);
        let (mut out, mut flags) = (Vec::new(), None);
        let differences = Differences::from_index(&v, &now);
        apply_plain(&mut v, differences, false, None, &mut out, &mut flags);
        assert!(!Arc::ptr_eq(&v.uids, &now.uids));
        assert_eq!(*v.uids, [Uid(1), Uid(2), Uid(3)]);
        let differences = Differences::from_index(&v, &now);
        apply_plain(&mut v, differences, true, None, &mut out, &mut flags);
        assert!(Arc::ptr_eq(&v.uids, &now.uids));
    }

    #[test]
    fn the_feed_takes_a_shared_list_or_makes_one() {
        let before = [entry(1, 2, &[]), entry(2, 3, &[])];
        let now = index(&[entry(2, 3, &[]), entry(3, 5, &[])]);
        let shared = Arc::new(vec![Uid(2), Uid(3)]);
        let lists = SharedUidLists::default();
        let (mut out, mut flags) = (Vec::new(), None);
        // No list to share: the session makes its own and offers it.
        let mut first = view(&before);
        let feed = feed_since(&first, &now);
        let differences =
            Differences::from_feed(&first, &feed, lists.get(first.mailbox, now.highest_modseq));
        apply_plain(&mut first, differences, true, None, &mut out, &mut flags);
        assert_eq!(*first.uids, *shared);
        let offered = lists.publish(first.mailbox, first.synced_modseq, &first.uids);
        assert!(Arc::ptr_eq(&offered, &first.uids));
        // The next session at the same modseq takes that one.
        let mut second = view(&before);
        let found = lists.get(second.mailbox, now.highest_modseq);
        assert!(found.is_some());
        let differences = Differences::from_feed(&second, &feed, found);
        apply_plain(&mut second, differences, true, None, &mut out, &mut flags);
        assert!(Arc::ptr_eq(&second.uids, &first.uids));
        // One that made its own meanwhile gives it up for the first.
        let own = Arc::new(vec![Uid(2), Uid(3)]);
        let kept = lists.publish(first.mailbox, now.highest_modseq, &own);
        assert!(Arc::ptr_eq(&kept, &first.uids));
        // An older list is never handed out for a newer modseq.
        assert!(lists
            .get(first.mailbox, ModSeq(now.highest_modseq.0 + 1))
            .is_none());
        // A flag change alone keeps the list the view has.
        let mut third = view(&before);
        let held = third.uids.clone();
        let flagged = index(&[entry(1, 4, &["\\Seen"]), entry(2, 3, &[])]);
        let feed = feed_since(&third, &flagged);
        let differences = Differences::from_feed(&third, &feed, None);
        apply_plain(&mut third, differences, true, None, &mut out, &mut flags);
        assert!(Arc::ptr_eq(&third.uids, &held));
    }

    #[test]
    fn the_feed_skips_what_the_view_never_had() {
        // Message 4 came and went since; the feed names it, the view never
        // had it, the client hears nothing of it.
        let before = [entry(1, 2, &[]), entry(2, 3, &[])];
        let mut v = view(&before);
        let feed = ChangesSince {
            uid_next: Uid(5),
            highest_modseq: ModSeq(6),
            recent_uid: Uid(1),
            expunged: vec![Uid(2), Uid(4)],
            changed: vec![entry(3, 4, &[])],
        };
        let differences = Differences::from_feed(&v, &feed, None);
        assert_eq!(
            lines(&mut v, differences, true, None),
            ["2 EXPUNGE", "2 EXISTS", "0 RECENT"]
        );
        assert_eq!(*v.uids, [Uid(1), Uid(3)]);
        assert_eq!(v.synced_modseq, ModSeq(6));
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
    fn imap4rev2_gets_no_recent_line() {
        let before = [entry(1, 2, &[]), entry(2, 3, &[])];
        let mut v = view(&before);
        let now = [entry(1, 2, &[]), entry(3, 4, &[])];
        let current = index(&now);
        let differences = Differences::from_index(&v, &current);
        let rev2 = Enabled {
            imap4rev2: true,
            ..Enabled::default()
        };
        let (mut out, mut flags) = (Vec::new(), None);
        apply(&mut v, differences, true, None, rev2, &mut out, &mut flags);
        assert_eq!(out, [b"2 EXPUNGE".to_vec(), b"2 EXISTS".to_vec()]);
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
