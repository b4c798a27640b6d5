//! NOTIFY (RFC 5465), as Dovecot implements it: the client names the
//! mailboxes it wants to hear of and the events, and the session tells it
//! as they happen, between commands as well as during IDLE.
//!
//! - The selected mailbox (`SELECTED`, `SELECTED-DELAYED`): the usual
//!   EXPUNGE, FETCH (FLAGS), EXISTS and RECENT are pushed while the session
//!   waits for the next command, not only after a command or in IDLE; with
//!   `SELECTED-DELAYED` the EXPUNGEs still wait for a command that allows
//!   them; without FlagChange, other sessions' flag changes are not told
//!   (as Dovecot). `MessageNew` with fetch attributes adds a FETCH of each new
//!   message (BODY[] and BINARY[] as their PEEK: a notification never
//!   sets `\Seen`). With NOTIFY on (`NOTIFY NONE` included) and no events
//!   for the selected mailbox, nothing about it is sent unasked at all,
//!   not even after a command or in IDLE (RFC 5465 3.1): the session's
//!   view of it stays as the client knows it, and catches up when events
//!   are asked for again. Only message events are allowed for it.
//! - Other mailboxes (`PERSONAL`, `INBOXES`, `SUBSCRIBED`, `SUBTREE`,
//!   `MAILBOXES`; INBOXES is PERSONAL here, as in Dovecot): a change to
//!   a mailbox's messages is `* STATUS name (MESSAGES UIDNEXT UIDVALIDITY
//!   UNSEEN)`, HIGHESTMODSEQ added with CONDSTORE on; MailboxName is a
//!   `* LIST` for a mailbox created, deleted (`\NonExistent`) or renamed
//!   (with `OLDNAME`); SubscriptionChange a `* LIST` with or without
//!   `\Subscribed` (and `\NonExistent` for a name without a mailbox).
//!   Changes this session made itself are reported too. A filter with
//!   NONE hides its mailboxes from the filters after it (RFC 5465 3.1;
//!   Dovecot ignores such a filter).
//!   `NOTIFY SET STATUS` reports every mailbox the filters name at once.
//!   As Dovecot, a flag change without CONDSTORE is told only when it
//!   moves UNSEEN, and the selected mailbox never gets a STATUS.
//!
//! How it learns of changes: the store's account wake-up
//! ([`store::Store::watch_account`]), woken by a change to any mailbox
//! of the account and by any mailbox created, deleted, renamed or
//! (un)subscribed. Only sessions with NOTIFY on watch an account, so a
//! delivery still wakes only the sessions that care. Woken, the session
//! reads the account's mailboxes and subscriptions again and compares
//! them with what it read before.
//!
//! Refused: AnnotationChange, MailboxMetadataChange and
//! ServerMetadataChange (`NO [BADEVENT (the supported events)]`);
//! more than `[imap] max_notify_mailboxes` names in SUBTREE and MAILBOXES
//! filters (`NO [NOTIFICATIONOVERFLOW]`); MessageNew without
//! MessageExpunge or the other way round (in any filter, as RFC 5465
//! says; Dovecot checks the selected one only), FlagChange without both,
//! fetch attributes outside the selected filter, mailbox events in it,
//! two selected filters, an unknown filter or event (`BAD`, from the
//! parser, as Dovecot).

use std::collections::{BTreeMap, BTreeSet};

use store::{MailboxId, MailboxInfo};
use tokio::sync::watch;

use super::mailbox::{store_name, wire_name};
use super::{End, Session, State};
use crate::protocol::encode::Code;
use crate::protocol::{FetchAttribute, NotifyEvent, NotifyFilter, NotifySet, SequenceSet, Tag};

/// The events this server supports, as `BADEVENT` lists them.
const SUPPORTED: [&str; 5] = [
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "MailboxName",
    "SubscriptionChange",
];

/// What a filter asked to hear of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Events {
    /// MessageNew (with MessageExpunge in the selected filter; alone
    /// elsewhere, as Dovecot takes it).
    new: bool,
    expunge: bool,
    flags: bool,
    names: bool,
    subscriptions: bool,
}

impl Events {
    fn of(events: &[NotifyEvent]) -> Events {
        let mut e = Events::default();
        for event in events {
            match event {
                NotifyEvent::MessageNew(_) => e.new = true,
                NotifyEvent::MessageExpunge => e.expunge = true,
                NotifyEvent::FlagChange => e.flags = true,
                NotifyEvent::MailboxName => e.names = true,
                NotifyEvent::SubscriptionChange => e.subscriptions = true,
                _ => {}
            }
        }
        e
    }

    fn union(self, o: Events) -> Events {
        Events {
            new: self.new || o.new,
            expunge: self.expunge || o.expunge,
            flags: self.flags || o.flags,
            names: self.names || o.names,
            subscriptions: self.subscriptions || o.subscriptions,
        }
    }
}

/// Which mailboxes a filter other than the selected one names (store
/// names).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// PERSONAL and INBOXES.
    All,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

impl Scope {
    fn matches(&self, name: &str, subscribed: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Scope::All => true,
            Scope::Subscribed => subscribed(name),
            Scope::Subtree(roots) => roots.iter().any(|r| {
                name == r
                    || name
                        .strip_prefix(r.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }),
            Scope::Mailboxes(names) => names.iter().any(|n| n == name),
        }
    }
}

/// What the client asked of the selected mailbox.
#[derive(Debug, Clone)]
pub(super) struct SelectedEvents {
    /// SELECTED-DELAYED: EXPUNGEs wait for a command.
    pub delayed: bool,
    /// FlagChange: flag changes are told (FETCH FLAGS).
    pub flags: bool,
    /// Fetch attributes sent for each new message.
    pub fetch: Vec<FetchAttribute>,
}

/// A mailbox as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    name: String,
    uid_validity: u32,
    uid_next: u32,
    messages: u32,
    highest_modseq: u64,
}

impl From<&MailboxInfo> for Known {
    fn from(m: &MailboxInfo) -> Known {
        Known {
            name: m.name.clone(),
            uid_validity: m.uid_validity,
            uid_next: m.uid_next.0,
            messages: m.messages,
            highest_modseq: m.highest_modseq.0,
        }
    }
}

/// The account's mailboxes (by id: a rename keeps it) and subscriptions.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    mailboxes: BTreeMap<MailboxId, Known>,
    subscribed: BTreeSet<String>,
}

/// A session's NOTIFY state.
pub(super) struct Notify {
    /// `None`: nothing is pushed about the selected mailbox.
    pub selected: Option<SelectedEvents>,
    groups: Vec<(Scope, Events)>,
    snapshot: Snapshot,
    /// The account wake-up, while any filter other than the selected one
    /// wants events.
    pub account_changes: Option<watch::Receiver<u64>>,
}

impl Notify {
    fn wants(&self, name: &str, subscribed: &dyn Fn(&str) -> bool) -> Events {
        wants(&self.groups, name, subscribed)
    }
}

/// What the filters ask to hear of a mailbox: the events of every filter
/// that names it, in the order given, up to the first that names it with
/// `NONE` (RFC 5465 3.1: `(MAILBOXES Junk NONE) (PERSONAL (...))` hears
/// nothing of Junk; Dovecot ignores such a filter instead).
fn wants(groups: &[(Scope, Events)], name: &str, subscribed: &dyn Fn(&str) -> bool) -> Events {
    let mut wanted = Events::default();
    for (scope, events) in groups {
        if !scope.matches(name, subscribed) {
            continue;
        }
        if *events == Events::default() {
            break;
        }
        wanted = wanted.union(*events);
    }
    wanted
}

/// `LIST (attributes) "/" name`, with `OLDNAME` after a rename; names in
/// UTF-8 for `utf8` sessions (IMAP4rev2, UTF8=ACCEPT).
fn list_line(attributes: &str, name: &str, old: Option<&str>, utf8: bool) -> Vec<u8> {
    let mut line = format!("LIST ({attributes}) \"/\" ").into_bytes();
    wire_name(&mut line, name, utf8);
    if let Some(old) = old {
        line.extend_from_slice(b" (\"OLDNAME\" (");
        wire_name(&mut line, old, utf8);
        line.extend_from_slice(b"))");
    }
    line
}

/// `STATUS name (...)` with the items the events asked for imply, as
/// Dovecot gives them: MessageExpunge MESSAGES; MessageNew MESSAGES,
/// UIDNEXT and UIDVALIDITY; FlagChange UIDVALIDITY and HIGHESTMODSEQ
/// (every mailbox has modseqs; a flag change always moves it).
fn status_line(m: &Known, events: Events, utf8: bool) -> Vec<u8> {
    let mut line = b"STATUS ".to_vec();
    wire_name(&mut line, &m.name, utf8);
    let mut items = Vec::new();
    if events.new || events.expunge {
        items.push(format!("MESSAGES {}", m.messages));
    }
    if events.new {
        items.push(format!("UIDNEXT {}", m.uid_next));
    }
    if events.new || events.flags {
        items.push(format!("UIDVALIDITY {}", m.uid_validity));
    }
    if events.flags {
        items.push(format!("HIGHESTMODSEQ {}", m.highest_modseq));
    }
    line.extend_from_slice(format!(" ({})", items.join(" ")).as_bytes());
    line
}

/// The untagged lines (without `* `) that tell a client what changed
/// from `old` to `new`, as `groups` asked: deleted mailboxes, then for
/// each mailbox created or renamed its LIST and for each changed its
/// STATUS (never the selected one's), then subscriptions.
fn differences(
    groups: &[(Scope, Events)],
    old: &Snapshot,
    new: &Snapshot,
    selected: Option<MailboxId>,
    utf8: bool,
) -> Vec<Vec<u8>> {
    let subscribed = |name: &str| old.subscribed.contains(name) || new.subscribed.contains(name);
    let wants = |name: &str| wants(groups, name, &subscribed);
    let mut out = Vec::new();
    for (id, gone) in &old.mailboxes {
        if !new.mailboxes.contains_key(id) && wants(&gone.name).names {
            out.push(list_line("\\NonExistent", &gone.name, None, utf8));
        }
    }
    for (id, now) in &new.mailboxes {
        let Some(before) = old.mailboxes.get(id) else {
            if wants(&now.name).names {
                out.push(list_line("", &now.name, None, utf8));
            }
            continue;
        };
        if before.name != now.name && (wants(&now.name).names || wants(&before.name).names) {
            out.push(list_line("", &now.name, Some(&before.name), utf8));
        }
        if Some(*id) == selected {
            continue;
        }
        let w = wants(&now.name);
        let counts = before.uid_validity != now.uid_validity
            || before.uid_next != now.uid_next
            || before.messages != now.messages;
        let flags = before.highest_modseq != now.highest_modseq;
        if ((w.new || w.expunge) && counts) || (w.flags && flags) {
            out.push(status_line(now, w, utf8));
        }
    }
    // A name without a mailbox is `\NonExistent` (RFC 5258), as in LIST.
    let exists = |name: &str| new.mailboxes.values().any(|m| m.name == name);
    for name in new.subscribed.difference(&old.subscribed) {
        if wants(name).subscriptions {
            let attributes = if exists(name) {
                "\\Subscribed"
            } else {
                "\\Subscribed \\NonExistent"
            };
            out.push(list_line(attributes, name, None, utf8));
        }
    }
    for name in old.subscribed.difference(&new.subscribed) {
        if wants(name).subscriptions {
            let attributes = if exists(name) { "" } else { "\\NonExistent" };
            out.push(list_line(attributes, name, None, utf8));
        }
    }
    out
}

/// Waits until `rx` moves (for ever without one), and leaves it marked
/// changed for the look that follows.
async fn moved(rx: Option<&mut watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            rx.mark_changed();
        }
        None => std::future::pending().await,
    }
}

impl Session {
    /// `NOTIFY NONE` and `NOTIFY SET`.
    pub(super) async fn notify(&mut self, tag: &Tag, set: Option<NotifySet>) {
        let Some(set) = set else {
            // No events at all, not even those IMAP sends without NOTIFY.
            self.notify = Some(Box::new(Notify {
                selected: None,
                groups: Vec::new(),
                snapshot: Snapshot::default(),
                account_changes: None,
            }));
            self.ok(tag, "NOTIFY completed");
            return;
        };
        let mut unsupported: Vec<&str> = Vec::new();
        for event in set.groups.iter().flat_map(|g| &g.events) {
            if matches!(
                event,
                NotifyEvent::AnnotationChange
                    | NotifyEvent::MailboxMetadataChange
                    | NotifyEvent::ServerMetadataChange
            ) && !unsupported.contains(&event.name())
            {
                unsupported.push(event.name());
            }
        }
        if !unsupported.is_empty() {
            self.no(
                tag,
                Some(Code::BadEvent(SUPPORTED.to_vec())),
                &format!("Unsupported NOTIFY events: {}", unsupported.join(" ")),
            );
            return;
        }
        let names: usize = set
            .groups
            .iter()
            .map(|g| match &g.filter {
                NotifyFilter::Subtree(b) | NotifyFilter::Mailboxes(b) => b.len(),
                _ => 0,
            })
            .sum();
        if names > self.ctx.shared.config.imap.max_notify_mailboxes {
            self.no(
                tag,
                Some(Code::NotificationOverflow),
                "Too many mailbox names",
            );
            return;
        }
        let Some(account) = self.account() else {
            return;
        };
        let mut selected = None;
        let mut groups = Vec::new();
        let utf8 = self.utf8_names();
        for group in set.groups {
            let names = |boxes: Vec<crate::protocol::MailboxName>| -> Vec<String> {
                boxes
                    .iter()
                    .filter_map(|n| store_name(n, utf8))
                    .map(|n| n.strip_suffix('/').map(str::to_owned).unwrap_or(n))
                    .collect()
            };
            let scope = match group.filter {
                NotifyFilter::Selected | NotifyFilter::SelectedDelayed => {
                    if !group.events.is_empty() {
                        let fetch = group
                            .events
                            .iter()
                            .find_map(|e| match e {
                                NotifyEvent::MessageNew(attributes) => Some(peek(attributes)),
                                _ => None,
                            })
                            .unwrap_or_default();
                        selected = Some(SelectedEvents {
                            delayed: group.filter == NotifyFilter::SelectedDelayed,
                            flags: group.events.contains(&NotifyEvent::FlagChange),
                            fetch,
                        });
                    }
                    continue;
                }
                NotifyFilter::Personal | NotifyFilter::Inboxes => Scope::All,
                NotifyFilter::Subscribed => Scope::Subscribed,
                NotifyFilter::Subtree(boxes) => Scope::Subtree(names(boxes)),
                NotifyFilter::Mailboxes(boxes) => Scope::Mailboxes(names(boxes)),
            };
            // A filter with NONE stays: it hides its mailboxes from the
            // filters after it.
            groups.push((scope, Events::of(&group.events)));
        }
        let watch_account = groups.iter().any(|(_, e)| *e != Events::default());
        // A NOTIFY that fails leaves the one before it in force.
        let previous = self.notify.replace(Box::new(Notify {
            selected,
            groups,
            snapshot: Snapshot::default(),
            account_changes: None,
        }));
        if watch_account {
            let all = match self.notify_snapshot(account.id, true).await {
                Ok(all) => all,
                Err(e) => {
                    self.notify = previous;
                    return self.store_failed(tag, e, "list the mailboxes");
                }
            };
            if set.status {
                self.notify_status_all(&all);
            }
        }
        self.ok(tag, "NOTIFY completed");
    }

    /// `NOTIFY SET STATUS`: a STATUS for every mailbox a filter with
    /// message events names, the selected one excepted.
    fn notify_status_all(&mut self, all: &[MailboxInfo]) {
        let selected = self.selected_mailbox_id();
        let utf8 = self.utf8_names();
        let Some(notify) = &self.notify else {
            return;
        };
        let subscribed = |name: &str| notify.snapshot.subscribed.contains(name);
        let lines: Vec<Vec<u8>> = all
            .iter()
            .filter(|m| Some(m.id) != selected)
            .filter(|m| {
                let w = notify.wants(&m.name, &subscribed);
                w.new || w.expunge || w.flags
            })
            .map(|m| {
                let w = notify.wants(&m.name, &subscribed);
                status_line(&Known::from(m), w, utf8)
            })
            .collect();
        for line in lines {
            self.untagged(&line);
        }
    }

    /// NOTIFY is on (SET or NONE) without events for the selected
    /// mailbox: nothing about it is sent unasked, not even after a
    /// command or in IDLE (RFC 5465 3.1: NOTIFY NONE turns off the
    /// updates IMAP sends without NOTIFY too; Dovecot likewise stops
    /// EXISTS and flag FETCHes). The view then stays as the client knows
    /// it, and catches up once events are asked for again.
    pub(super) fn selected_muted(&self) -> bool {
        self.notify.as_ref().is_some_and(|n| n.selected.is_none())
    }

    /// NOTIFY asked for the selected mailbox's events without FlagChange:
    /// other sessions' flag changes are not told (Dovecot's choice; the
    /// client asked not to hear of them).
    pub(super) fn selected_flags_muted(&self) -> bool {
        self.notify
            .as_ref()
            .and_then(|n| n.selected.as_ref())
            .is_some_and(|s| !s.flags)
    }

    fn selected_mailbox_id(&self) -> Option<MailboxId> {
        match &self.state {
            State::Selected(_, s) => Some(s.mailbox.id),
            _ => None,
        }
    }

    /// Reads the account's mailboxes and subscriptions into the NOTIFY
    /// state and watches the account again; returns the mailboxes as
    /// read. With `count_all` false, only the mailboxes whose UIDNEXT,
    /// UIDVALIDITY or HIGHESTMODSEQ moved since the last read (the
    /// selected one excepted) have their messages counted again: the rest
    /// keep the counts they had.
    async fn notify_snapshot(
        &mut self,
        account: store::AccountId,
        count_all: bool,
    ) -> Result<Vec<MailboxInfo>, store::StoreError> {
        let store = self.ctx.shared.store.clone();
        let selected = self.selected_mailbox_id();
        let old = match &self.notify {
            Some(n) => n.snapshot.mailboxes.clone(),
            None => BTreeMap::new(),
        };
        let stamps: BTreeMap<MailboxId, (u32, u32, u64)> = old
            .iter()
            .map(|(id, k)| (*id, (k.uid_validity, k.uid_next, k.highest_modseq)))
            .collect();
        let counted = move |m: &MailboxInfo| {
            count_all
                || Some(m.id) != selected
                    && stamps.get(&m.id)
                        != Some(&(m.uid_validity, m.uid_next.0, m.highest_modseq.0))
        };
        // Before the reads: a change after them must wake the session.
        let mark = store.wake_mark();
        let all = if count_all {
            store.mailboxes(account).await?
        } else {
            store.mailboxes_counting(account, counted.clone()).await?
        };
        let subscribed: BTreeSet<String> =
            store.subscriptions(account).await?.into_iter().collect();
        let ids: Vec<MailboxId> = all.iter().map(|m| m.id).collect();
        let mut rx = store.watch_account(account, &ids);
        if *rx.borrow_and_update() > mark {
            rx.mark_changed();
        }
        let mailboxes = all
            .iter()
            .map(|m| {
                let mut known = Known::from(m);
                if let (false, Some(before)) = (counted(m), old.get(&m.id)) {
                    known.messages = before.messages;
                }
                (m.id, known)
            })
            .collect();
        if let Some(notify) = self.notify.as_mut() {
            notify.snapshot = Snapshot {
                mailboxes,
                subscribed,
            };
            notify.account_changes = Some(rx);
        }
        Ok(all)
    }

    /// Tells the client what changed in other mailboxes (and in the
    /// names and subscriptions) since the last look, if the account's
    /// wake-up moved.
    async fn notify_account(&mut self) {
        let Some(rx) = self
            .notify
            .as_mut()
            .and_then(|n| n.account_changes.as_mut())
        else {
            return;
        };
        if !rx.has_changed().unwrap_or(false) {
            return;
        }
        rx.borrow_and_update();
        let Some(account) = self.account() else {
            return;
        };
        let old = match &self.notify {
            Some(n) => n.snapshot.clone(),
            None => return,
        };
        if let Err(e) = self.notify_snapshot(account.id, false).await {
            tracing::warn!(error = %e, "NOTIFY: cannot read the mailboxes");
            // Dovecot's words when events are lost.
            self.untagged(b"NO NOTIFY error, some events may have got lost");
            return;
        }
        let selected = self.selected_mailbox_id();
        let utf8 = self.utf8_names();
        let Some(notify) = &self.notify else {
            return;
        };
        let lines = differences(&notify.groups, &old, &notify.snapshot, selected, utf8);
        for line in lines {
            self.untagged(&line);
        }
    }

    /// Pushes what changed in the selected mailbox, if the client asked
    /// for its events (RFC 5465 5.2-5.3): EXPUNGE (unless delayed),
    /// FETCH, EXISTS and RECENT, live search updates, and the fetch
    /// attributes asked for new messages.
    async fn notify_selected(&mut self) -> Result<(), End> {
        let Some(events) = self.notify.as_ref().and_then(|n| n.selected.clone()) else {
            return Ok(());
        };
        let changed = self
            .changes
            .as_ref()
            .is_some_and(|rx| rx.has_changed().unwrap_or(false));
        let owed = matches!(&self.state, State::Selected(_, s) if s.expunge_owed);
        if !(changed || owed && !events.delayed) {
            return Ok(());
        }
        let last_known = match &self.state {
            State::Selected(_, s) => s.uids.last().copied(),
            _ => return Ok(()),
        };
        let before = self.view_for_updates();
        self.sync_mailbox(!events.delayed).await;
        if self.closing {
            return Ok(());
        }
        self.report_updates(before).await?;
        if events.fetch.is_empty() {
            return Ok(());
        }
        let new: Vec<u32> = match &self.state {
            State::Selected(_, s) => s
                .uids
                .iter()
                .filter(|u| Some(**u) > last_known)
                .map(|u| u.0)
                .collect(),
            _ => return Ok(()),
        };
        let Some(set) = SequenceSet::from_sorted(new) else {
            return Ok(());
        };
        let Ok(tag) = Tag::new("NOTIFY") else {
            return Ok(());
        };
        // A FETCH of our own, its tagged reply dropped.
        let deferred = std::mem::replace(&mut self.defer_tagged, true);
        let kept = std::mem::take(&mut self.tagged_reply);
        let result = self.fetch(&tag, true, set, events.fetch, None).await;
        self.tagged_reply = kept;
        self.defer_tagged = deferred;
        result
    }

    /// Everything NOTIFY has to tell now.
    async fn notify_pending(&mut self) -> Result<(), End> {
        self.notify_selected().await?;
        if !self.closing {
            self.notify_account().await;
        }
        Ok(())
    }

    /// Waits for the next command's bytes with NOTIFY on: what changes
    /// meanwhile is told at once. The autologout clock runs from the
    /// start of the wait, whatever was told.
    pub(super) async fn wait_notifying(&mut self) -> Result<(), End> {
        // Part of a command is here (or a literal is awaited): a command
        // is in progress, and what it is (one that uses sequence numbers?)
        // is not known yet. Tell nothing until it has been answered.
        if !self.io.unread().is_empty()
            || self.literal_acked.is_some()
            || self.skip_bytes > 0
            || self.skip_line
        {
            return self.io.fill(self.idle_timeout(), true).await;
        }
        let deadline = tokio::time::Instant::now() + self.idle_timeout();
        loop {
            self.notify_pending().await?;
            if self.closing || self.notify.is_none() {
                return Ok(());
            }
            self.io.flush().await?;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(End::Timeout);
            }
            let push_selected = self.notify.as_ref().is_some_and(|n| n.selected.is_some())
                && matches!(self.state, State::Selected(..));
            let account = self
                .notify
                .as_mut()
                .and_then(|n| n.account_changes.as_mut());
            let selected = if push_selected {
                self.changes.as_mut()
            } else {
                None
            };
            tokio::select! {
                read = self.io.fill(remaining, true) => return read,
                () = moved(account) => {}
                () = moved(selected) => {}
            }
        }
    }

    /// During IDLE: waits until another mailbox's events may be due.
    pub(super) async fn notify_account_moved(notify: &mut Option<Box<Notify>>) {
        moved(notify.as_mut().and_then(|n| n.account_changes.as_mut())).await
    }

    /// During IDLE, after [`Session::notify_account_moved`].
    pub(super) async fn notify_during_idle(&mut self) -> Result<(), End> {
        self.notify_account().await;
        self.flush().await
    }
}

/// The fetch attributes with BODY[] and BINARY[] as their PEEK.
fn peek(attributes: &[FetchAttribute]) -> Vec<FetchAttribute> {
    attributes
        .iter()
        .cloned()
        .map(|a| match a {
            FetchAttribute::BodySection {
                section, partial, ..
            } => FetchAttribute::BodySection {
                peek: true,
                section,
                partial,
            },
            FetchAttribute::BinarySection { part, partial, .. } => FetchAttribute::BinarySection {
                peek: true,
                part,
                partial,
            },
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str, uid_next: u32, messages: u32, modseq: u64) -> Known {
        Known {
            name: name.to_owned(),
            uid_validity: 7,
            uid_next,
            messages,
            highest_modseq: modseq,
        }
    }

    fn snapshot(boxes: &[(i64, Known)], subscribed: &[&str]) -> Snapshot {
        Snapshot {
            mailboxes: boxes
                .iter()
                .map(|(id, k)| (MailboxId(*id), k.clone()))
                .collect(),
            subscribed: subscribed.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn text(lines: Vec<Vec<u8>>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    const ALL: Events = Events {
        new: true,
        expunge: true,
        flags: true,
        names: true,
        subscriptions: true,
    };

    #[test]
    fn status_list_and_subscription_lines() {
        let old = snapshot(
            &[
                (1, known("INBOX", 5, 4, 10)),
                (2, known("Old", 1, 0, 1)),
                (3, known("Gone", 1, 0, 1)),
                (4, known("Quiet", 3, 2, 4)),
            ],
            &["INBOX"],
        );
        let new = snapshot(
            &[
                (1, known("INBOX", 6, 5, 11)),
                (2, known("New name", 1, 0, 1)),
                (4, known("Quiet", 3, 2, 5)),
                (5, known("Fresh", 1, 0, 1)),
            ],
            &["INBOX", "Fresh"],
        );
        let groups = [(Scope::All, ALL)];
        assert_eq!(
            text(differences(&groups, &old, &new, None, false)),
            [
                "LIST (\\NonExistent) \"/\" Gone",
                "STATUS INBOX (MESSAGES 5 UIDNEXT 6 UIDVALIDITY 7 HIGHESTMODSEQ 11)",
                "LIST () \"/\" \"New name\" (\"OLDNAME\" (Old))",
                "STATUS Quiet (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7 HIGHESTMODSEQ 5)",
                "LIST () \"/\" Fresh",
                "LIST (\\Subscribed) \"/\" Fresh",
            ]
        );
        // A modseq alone moves (a keyword): FlagChange is told; the
        // selected mailbox gets no STATUS.
        assert_eq!(
            text(differences(&groups, &old, &new, Some(MailboxId(1)), false))[1..3],
            [
                "LIST () \"/\" \"New name\" (\"OLDNAME\" (Old))",
                "STATUS Quiet (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7 HIGHESTMODSEQ 5)",
            ]
        );
    }

    #[test]
    fn filters_name_their_mailboxes() {
        let old = snapshot(
            &[
                (1, known("INBOX", 1, 0, 1)),
                (2, known("Lists", 1, 0, 1)),
                (3, known("Lists/rust", 1, 0, 1)),
                (4, known("Listsx", 1, 0, 1)),
            ],
            &["Listsx"],
        );
        let mut new = old.clone();
        for k in new.mailboxes.values_mut() {
            k.uid_next = 2;
            k.messages = 1;
        }
        let messages = Events {
            new: true,
            expunge: true,
            ..Events::default()
        };
        let run = |scope: Scope| {
            text(differences(&[(scope, messages)], &old, &new, None, false))
                .into_iter()
                .map(|l| l.split(' ').nth(1).unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(Scope::Subtree(vec!["Lists".into()])),
            ["Lists", "Lists/rust"]
        );
        assert_eq!(run(Scope::Mailboxes(vec!["Lists".into()])), ["Lists"]);
        assert_eq!(run(Scope::Subscribed), ["Listsx"]);
        // A filter with NONE hides its mailboxes from those after it.
        let hidden = [
            (Scope::Mailboxes(vec!["Lists".into()]), Events::default()),
            (Scope::All, messages),
        ];
        let told: Vec<String> = text(differences(&hidden, &old, &new, None, false));
        assert_eq!(told.len(), 3, "{told:?}");
        assert!(
            !told.iter().any(|l| l.starts_with("STATUS Lists ")),
            "{told:?}"
        );
        // MailboxName alone hears nothing of messages.
        let names = Events {
            names: true,
            ..Events::default()
        };
        assert!(differences(&[(Scope::All, names)], &old, &new, None, false).is_empty());
    }
}
