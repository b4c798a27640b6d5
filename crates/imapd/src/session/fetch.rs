//! The selected state's message commands: FETCH, STORE, EXPUNGE and
//! UID EXPUNGE (with their UID forms).
//!
//! The session keeps the UIDs of the selected mailbox in message-sequence
//! order (`Selected::uids`, from SELECT); flags and sizes are read fresh
//! from the store's index for each command. A message expunged by another
//! session is skipped until this one learns of it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;

use store::{FlagChange, IndexEntry, MailboxRef, MessageInfo, MessageSummary, StoreError, Uid};

use super::updates::{flags_item, push_flags_item};
use super::{End, Session, State};
use crate::protocol::binary::{binary_section, needs_literal8, UnknownCte};
use crate::protocol::encode::{self, quoted_or_literal, Code};
use crate::protocol::fetch_encode::{
    body_structure, envelope, internal_date, section_bytes, section_name,
};
use crate::protocol::{
    FetchAttribute as A, Flag, Partial, Section, SectionText, SeqNumber, SequenceSet, StoreMode,
    Tag,
};

/// Messages a FETCH reads from the store at once ...
const BATCH_MESSAGES: usize = 1024;
/// ... and their most raw octets, when bodies are fetched (a batch holds at
/// least one message). The batch is written out before the next is read,
/// so a FETCH of a large mailbox holds about this much, not all of it.
const BATCH_OCTETS: u64 = 8 << 20;
/// A literal this long goes to the client from where it lies instead of
/// being copied into the output buffer.
const DIRECT_LITERAL: usize = 64 * 1024;

/// `(seq, uid)` of the messages a set names.
pub(super) fn resolve(
    uids: &[Uid],
    set: &SequenceSet,
    by_uid: bool,
) -> Result<Vec<(u32, Uid)>, ()> {
    let count = uids.len() as u32;
    if by_uid {
        // Each span of the set cut out of the view by binary search: a
        // UID FETCH of the newest 100 messages does not walk 50,000.
        let max = uids.last().map_or(0, |u| u.0);
        let mut out = Vec::new();
        for (lo, hi) in set.spans(max) {
            let from = uids.partition_point(|u| u.0 < lo);
            let to = uids.partition_point(|u| u.0 <= hi);
            out.extend((from..to).map(|i| (i as u32 + 1, uids[i])));
        }
        return Ok(out);
    }
    let out_of_range = set.ranges().iter().any(|&(a, b)| {
        [a, b].iter().any(|n| match n {
            SeqNumber::Value(v) => *v > count,
            SeqNumber::Largest => count == 0,
        })
    });
    if out_of_range {
        return Err(());
    }
    Ok(set
        .expand(count)
        .into_iter()
        .map(|n| (n, uids[n as usize - 1]))
        .collect())
}

fn has_flag(flags: &[String], f: &str) -> bool {
    flags.iter().any(|x| x.eq_ignore_ascii_case(f))
}

impl Session {
    pub(super) fn selected_parts(
        &self,
    ) -> Option<(store::AccountId, MailboxRef, bool, std::sync::Arc<Vec<Uid>>)> {
        match &self.state {
            State::Selected(a, s) => Some((a.id, s.mailbox, s.read_only, s.uids.clone())),
            _ => None,
        }
    }

    /// Takes `gone` out of the view, with `* n EXPUNGE` for each.
    pub(super) fn announce_expunges(&mut self, gone: &HashSet<Uid>) {
        // Live search results lose them first, while their numbers hold.
        self.report_expunged(gone);
        let (before, numbers) = match &mut self.state {
            State::Selected(_, s) => (s.uids.clone(), remove_from_view(s, gone)),
            _ => return,
        };
        // Highest first; the lines want them ascending, 0-based.
        let positions: Vec<usize> = numbers.iter().rev().map(|n| n - 1).collect();
        for line in super::condstore::expunge_lines(self.enabled, &before, &positions) {
            self.enabled.vanished_sent |= self.enabled.qresync;
            self.untagged(&line);
        }
    }

    /// The selected mailbox's account and reference.
    pub(super) fn selected_mailbox(&self) -> Option<(store::AccountId, MailboxRef)> {
        match &self.state {
            State::Selected(a, s) => Some((a.id, s.mailbox)),
            _ => None,
        }
    }

    /// Whether the message is `\Recent` in this session.
    fn is_recent(&self, uid: Uid) -> bool {
        matches!(&self.state, State::Selected(_, s) if s.is_recent(uid))
    }

    /// Records flags this command reported, so that the update after it
    /// does not report them again.
    fn note_reported(&mut self, changed: &[(Uid, store::ModSeq)]) {
        if let State::Selected(_, s) = &mut self.state {
            for (uid, modseq) in changed {
                s.reported(*uid, *modseq);
            }
        }
    }

    /// The selected mailbox was deleted (and perhaps created again) by
    /// another session: this one cannot go on with the UIDs it was given
    /// (RFC 3501 2.3.1.1), so it says why and closes, as Dovecot does. No
    /// tagged reply follows the BYE.
    pub(super) fn selected_mailbox_gone(&mut self) {
        tracing::info!("selected mailbox deleted by another session; closing");
        self.untagged_status(
            encode::Status::Bye,
            None,
            "Selected mailbox was deleted, have to disconnect",
        );
        self.closing = true;
    }

    pub(super) async fn fetch(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        set: SequenceSet,
        mut attrs: Vec<A>,
        changed_since: Option<u64>,
    ) -> Result<(), End> {
        let Some((account, mailbox, read_only, uids)) = self.selected_parts() else {
            return Ok(());
        };
        let Ok(targets) = resolve(&uids, &set, by_uid) else {
            self.bad(tag, "Message sequence number out of range");
            return Ok(());
        };
        // With QRESYNC every FETCH answer names its UID (RFC 7162 3.2.4).
        if (by_uid || self.uid_in_every_fetch()) && !attrs.contains(&A::Uid) {
            attrs.insert(0, A::Uid);
        }
        // RFC 7162 3.1.4: CHANGEDSINCE implies MODSEQ, and with CONDSTORE
        // on, flags always come with their modseq.
        let with_modseq =
            changed_since.is_some() || (self.modseq_with_flags() && attrs.contains(&A::Flags));
        if with_modseq && !attrs.contains(&A::ModSeq) {
            attrs.push(A::ModSeq);
        }
        let store = self.ctx.shared.store.clone();
        let index = match store.mailbox_index(account, &mailbox).await {
            Ok(i) => i,
            Err(e) => {
                self.store_failed(tag, e, "read the mailbox");
                return Ok(());
            }
        };
        // Flags come from the shared index; the few this command changes
        // (\Seen) from `changed_here`.
        let mut changed_here: HashMap<Uid, IndexEntry> = HashMap::new();
        let asked = targets.len();
        let mut paired = pair_with_index(&index, targets);
        // Some were expunged by another session, not yet announced.
        let mut vanished = paired.len() != asked;
        if let Some(since) = changed_since {
            paired.retain(|(_, e)| e.modseq.0 > since);
        }
        let targets: Vec<(u32, Uid)> = paired.iter().map(|&(seq, e)| (seq, e.uid)).collect();
        let want_summary = attrs.iter().any(|a| {
            matches!(
                a,
                A::Envelope
                    | A::Body
                    | A::BodyStructure
                    | A::InternalDate
                    | A::BodySection { .. }
                    | A::BinarySection { .. }
                    | A::BinarySize(_)
                    | A::Rfc822Header
                    | A::Rfc822Text
                    | A::Preview { .. }
                    | A::Snippet { .. }
            )
        });
        // The MIME tree only for BODY/BODYSTRUCTURE and part sections; the
        // rest (ENVELOPE, INTERNALDATE, whole-message sections such as
        // Thunderbird's header fetch) makes do with the cached envelope.
        let want_tree = attrs.iter().any(|a| match a {
            A::Body | A::BodyStructure => true,
            A::BodySection { section, .. } => !section.part.is_empty(),
            A::BinarySection { part, .. } | A::BinarySize(part) => !part.is_empty(),
            _ => false,
        });
        let want_raw = attrs.iter().any(|a| {
            matches!(
                a,
                A::Rfc822
                    | A::Rfc822Header
                    | A::Rfc822Text
                    | A::BodySection { .. }
                    | A::BinarySection { .. }
                    | A::BinarySize(_)
            )
        });
        let sets_seen = !read_only
            && attrs.iter().any(|a| {
                matches!(
                    a,
                    A::Rfc822
                        | A::Rfc822Text
                        | A::BodySection { peek: false, .. }
                        | A::BinarySection { peek: false, .. }
                )
            });
        let target_uids: Vec<Uid> = targets.iter().map(|t| t.1).collect();
        let mut seen_changed: HashSet<Uid> = HashSet::new();
        if sets_seen {
            let unseen: Vec<Uid> = target_uids
                .iter()
                .copied()
                .filter(|u| find_entry(&index, *u).is_some_and(|e| !has_flag(&e.flags, "\\Seen")))
                .collect();
            if !unseen.is_empty() {
                match store
                    .store_flags(
                        account,
                        &mailbox,
                        &unseen,
                        FlagChange::Add,
                        &["\\Seen".to_owned()],
                    )
                    .await
                {
                    Ok(changed) => {
                        let mut reported = Vec::new();
                        for (uid, modseq, flags) in changed {
                            if let Some(e) = find_entry(&index, uid) {
                                let mut e = e.clone();
                                e.flags = flags;
                                e.modseq = modseq;
                                changed_here.insert(uid, e);
                            }
                            seen_changed.insert(uid);
                            reported.push((uid, modseq));
                        }
                        self.note_reported(&reported);
                    }
                    Err(e) => {
                        self.store_failed(tag, e, "set \\Seen");
                        return Ok(());
                    }
                }
            }
        }
        fn current<'a>(changed: &'a HashMap<Uid, IndexEntry>, e: &'a IndexEntry) -> &'a IndexEntry {
            if changed.is_empty() {
                e
            } else {
                changed.get(&e.uid).unwrap_or(e)
            }
        }
        let wants_flags = attrs.contains(&A::Flags);
        if wants_flags || !seen_changed.is_empty() {
            self.announce_keywords(
                paired
                    .iter()
                    .flat_map(|(_, e)| current(&changed_here, e).flags.iter()),
            );
        }
        // Stands in for a message whose summary could not be read.
        let no_summary = MessageSummary::default();
        let mut rest = paired.as_slice();
        while !rest.is_empty() {
            let n = batch_len(rest, want_raw);
            let (batch, after) = rest.split_at(n);
            rest = after;
            let batch_uids: Vec<Uid> = batch.iter().map(|(_, e)| e.uid).collect();
            // A client that leaves meanwhile ends each wait, and the store
            // skips reads nobody waits for.
            let mut infos: HashMap<Uid, MessageInfo> = HashMap::new();
            if want_summary {
                let list = if want_tree {
                    let read = store.messages_by_uid(account, &mailbox, &batch_uids);
                    self.batch_read(tag, read).await?
                } else {
                    let read = store.envelopes(account, &mailbox, &batch_uids);
                    self.batch_read(tag, read).await?
                };
                let Some(list) = list else { return Ok(()) };
                infos = list.into_iter().map(|m| (m.uid, m)).collect();
            }
            let mut email_ids: HashMap<Uid, String> = HashMap::new();
            if attrs.contains(&A::EmailId) {
                let read = store.content_hashes(account, &mailbox, &batch_uids);
                let Some(list) = self.batch_read(tag, read).await? else {
                    return Ok(());
                };
                email_ids = list.into_iter().collect();
            }
            let mut saved: HashMap<Uid, i64> = HashMap::new();
            if attrs.contains(&A::SaveDate) {
                let read = store.saved_dates(account, &mailbox, &batch_uids);
                let Some(list) = self.batch_read(tag, read).await? else {
                    return Ok(());
                };
                saved = list.into_iter().collect();
            }
            let mut raws: HashMap<Uid, Vec<u8>> = HashMap::new();
            if want_raw {
                let read = store.messages_raw(account, &mailbox, &batch_uids);
                let Some(list) = self.batch_read(tag, read).await? else {
                    return Ok(());
                };
                raws = list.into_iter().collect();
            }
            for &(seq, indexed) in batch {
                let entry = current(&changed_here, indexed);
                let uid = entry.uid;
                let info = infos.get(&uid);
                let raw = raws.remove(&uid);
                // Expunged between the index read and this one: no empty
                // body.
                if (want_raw && raw.is_none()) || (want_summary && info.is_none()) {
                    vanished = true;
                    continue;
                }
                let recent = self.is_recent(uid);
                let summary = info.map_or(&no_summary, |i| &i.summary);
                let raw = raw.as_deref().unwrap_or_default();
                let seen_item = !wants_flags && seen_changed.contains(&uid);
                // Decoded before anything of this message is written: an
                // encoding BINARY cannot undo fails the command.
                let binaries = match binary_contents(raw, summary, &attrs) {
                    Ok(b) => b,
                    Err(UnknownCte(cte)) => {
                        self.no(
                            tag,
                            Some(Code::UnknownCte),
                            &format!("Unknown Content-Transfer-Encoding {cte}"),
                        );
                        return Ok(());
                    }
                };
                let stored = Stored {
                    content_hash: email_ids.get(&uid).map(String::as_str),
                    saved: saved.get(&uid).copied(),
                };
                self.fetch_response(
                    seq, entry, recent, info, summary, raw, &attrs, &binaries, stored, seen_item,
                )
                .await?;
                self.io.flush_if_full().await?;
            }
            // This batch's answers go out before the next is read: what
            // the session holds is one batch, however slowly the client
            // reads.
            if !rest.is_empty() {
                self.flush().await?;
            }
        }
        if vanished {
            if by_uid {
                // RFC 3501 6.4.8: a UID that no longer exists is left out,
                // not an error. The code (RFC 5530) tells the client why
                // some are missing, as Dovecot's OK does.
                self.tagged(
                    tag,
                    encode::Status::Ok,
                    Some(Code::ExpungeIssued),
                    "Some messages were already expunged",
                );
            } else {
                // A sequence number the client still holds names a
                // message another session expunged: RFC 2180 4.1.2.
                self.no(
                    tag,
                    Some(Code::ExpungeIssued),
                    "Some of the requested messages no longer exist",
                );
            }
            return Ok(());
        }
        self.ok(
            tag,
            if by_uid {
                "UID FETCH completed"
            } else {
                "FETCH completed"
            },
        );
        Ok(())
    }

    /// Waits for one of a FETCH batch's store reads; a failure is
    /// answered, and gives `None`.
    async fn batch_read<T>(
        &mut self,
        tag: &Tag,
        read: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<Option<T>, End> {
        match self.io.until_gone(read).await? {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                self.store_failed(tag, e, "read the messages");
                Ok(None)
            }
        }
    }

    /// Writes one message's `* seq FETCH (...)` into `output`; a large
    /// literal goes to the client straight from `raw` (or the section cut
    /// from it), after what was queued before it.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_response(
        &mut self,
        seq: u32,
        entry: &IndexEntry,
        recent: bool,
        info: Option<&MessageInfo>,
        summary: &MessageSummary,
        raw: &[u8],
        attrs: &[A],
        binaries: &[Option<Cow<'_, [u8]>>],
        stored: Stored<'_>,
        seen_item: bool,
    ) -> Result<(), End> {
        let uid = entry.uid;
        // `write!` into `output`: no String per message.
        let _ = write!(self.io.output, "* {seq} FETCH (");
        let mut first = true;
        for (i, a) in attrs.iter().enumerate() {
            if !std::mem::take(&mut first) {
                self.io.output.push(b' ');
            }
            let line = &mut self.io.output;
            match a {
                A::Uid => {
                    let _ = write!(line, "UID {}", uid.0);
                }
                A::Flags => push_flags_item(line, &entry.flags, recent),
                A::ModSeq => {
                    let _ = write!(line, "MODSEQ ({})", entry.modseq.0);
                }
                A::EmailId => match stored.content_hash {
                    Some(hash) => {
                        let _ = write!(line, "EMAILID ({})", super::stored_keys::email_id(hash));
                    }
                    None => line.extend_from_slice(b"EMAILID NIL"),
                },
                // No threads are kept: NIL, as RFC 8474 5.2 allows.
                A::ThreadId => line.extend_from_slice(b"THREADID NIL"),
                A::SaveDate => match stored.saved {
                    Some(ts) => {
                        let _ = write!(line, "SAVEDATE {}", internal_date(ts));
                    }
                    None => line.extend_from_slice(b"SAVEDATE NIL"),
                },
                // Made at delivery and kept in the summary, so LAZY gets
                // it too. A message without text has an empty preview
                // (RFC 8970 3.1), not NIL.
                A::Preview { .. } => {
                    line.extend_from_slice(b"PREVIEW ");
                    let text = summary.preview.as_deref().unwrap_or_default();
                    quoted_or_literal(line, text.as_bytes());
                }
                A::Snippet { .. } => {
                    line.extend_from_slice(b"SNIPPET (FUZZY ");
                    let text = summary.preview.as_deref().unwrap_or_default();
                    quoted_or_literal(line, text.as_bytes());
                    line.push(b')');
                }
                A::Rfc822Size => {
                    let _ = write!(line, "RFC822.SIZE {}", entry.size);
                }
                A::InternalDate => {
                    let ts = info.map_or(0, |i| i.internal_date);
                    let _ = write!(line, "INTERNALDATE {}", internal_date(ts));
                }
                A::Envelope => {
                    line.extend_from_slice(b"ENVELOPE ");
                    envelope(line, summary);
                }
                A::Body | A::BodyStructure => {
                    let ext = *a == A::BodyStructure;
                    line.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
                    body_structure(line, &summary.body, ext);
                }
                A::Rfc822 => {
                    line.extend_from_slice(b"RFC822 ");
                    self.literal(raw).await?;
                }
                A::Rfc822Header | A::Rfc822Text => {
                    // BODY.PEEK[HEADER] and BODY[TEXT] by other names
                    // (RFC 3501 6.4.5), split where the store found the
                    // header's end.
                    let (name, text) = if *a == A::Rfc822Header {
                        ("RFC822.HEADER ", SectionText::Header)
                    } else {
                        ("RFC822.TEXT ", SectionText::Text)
                    };
                    let section = Section {
                        part: Vec::new(),
                        text: Some(text),
                    };
                    let bytes = section_bytes(raw, summary, &section).unwrap_or_default();
                    line.extend_from_slice(name.as_bytes());
                    self.literal(&bytes).await?;
                }
                A::BodySection {
                    section, partial, ..
                } => {
                    let bytes = section_bytes(raw, summary, section).unwrap_or_default();
                    line.extend_from_slice(b"BODY[");
                    line.extend_from_slice(section_name(section).as_bytes());
                    line.push(b']');
                    let bytes = cut_partial(line, &bytes, partial.as_ref());
                    self.literal(bytes).await?;
                }
                A::BinarySection { part, partial, .. } => {
                    let bytes = binaries
                        .get(i)
                        .and_then(Option::as_deref)
                        .unwrap_or_default();
                    let _ = write!(line, "BINARY[{}]", part_name(part));
                    let bytes = cut_partial(line, bytes, partial.as_ref());
                    self.literal_any(bytes, needs_literal8(bytes)).await?;
                }
                A::BinarySize(part) => {
                    let size = binaries
                        .get(i)
                        .and_then(Option::as_deref)
                        .map_or(0, <[u8]>::len);
                    let _ = write!(line, "BINARY.SIZE[{}] {size}", part_name(part));
                }
            }
        }
        if seen_item {
            if !first {
                self.io.output.push(b' ');
            }
            push_flags_item(&mut self.io.output, &entry.flags, recent);
            if self.modseq_with_flags() && !attrs.contains(&A::ModSeq) {
                let _ = write!(self.io.output, " MODSEQ ({})", entry.modseq.0);
            }
        }
        self.io.output.extend_from_slice(b")\r\n");
        Ok(())
    }

    /// `{n}\r\n` and the bytes: small ones queued in `output`, large ones
    /// written to the client from where they lie.
    async fn literal(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.literal_any(bytes, false).await
    }

    /// A literal, or with `eight` a `~{n}` literal8 (RFC 3516), which may
    /// hold NUL.
    async fn literal_any(&mut self, bytes: &[u8], eight: bool) -> Result<(), End> {
        if eight {
            self.io.output.push(b'~');
        }
        let _ = write!(self.io.output, "{{{}}}\r\n", bytes.len());
        if bytes.len() < DIRECT_LITERAL {
            self.io.output.extend_from_slice(bytes);
            return Ok(());
        }
        self.io.write_through(bytes).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<Flag>,
        unchanged_since: Option<u64>,
    ) {
        let Some((account, mailbox, read_only, uids)) = self.selected_parts() else {
            return;
        };
        if read_only {
            self.tagged(
                tag,
                encode::Status::No,
                Some(Code::ReadOnly),
                "Mailbox is read-only",
            );
            return;
        }
        if flags
            .iter()
            .any(|f| matches!(f, Flag::Recent | Flag::Extension(_)))
        {
            self.bad(tag, "Flag cannot be stored");
            return;
        }
        let Ok(targets) = resolve(&uids, &set, by_uid) else {
            self.bad(tag, "Message sequence number out of range");
            return;
        };
        let store = self.ctx.shared.store.clone();
        let index = match store.mailbox_index(account, &mailbox).await {
            Ok(i) => i,
            Err(e) => return self.store_failed(tag, e, "read the mailbox"),
        };
        let mut current: HashMap<Uid, (Vec<String>, store::ModSeq)> = targets
            .iter()
            .filter_map(|(_, u)| find_entry(&index, *u).map(|e| (*u, (e.flags.clone(), e.modseq))))
            .collect();
        let target_uids: Vec<Uid> = targets
            .iter()
            .map(|t| t.1)
            .filter(|u| current.contains_key(u))
            .collect();
        let change = match mode {
            StoreMode::Add => FlagChange::Add,
            StoreMode::Remove => FlagChange::Remove,
            StoreMode::Replace => FlagChange::Replace,
        };
        let texts: Vec<String> = flags.iter().map(Flag::to_text).collect();
        // Messages changed since the client's UNCHANGEDSINCE (RFC 7162
        // 3.1.3): left alone, named in `[MODIFIED]`, no FETCH for them.
        let mut modified: Vec<Uid> = Vec::new();
        let mut changed_uids: HashSet<Uid> = HashSet::new();
        if !target_uids.is_empty() {
            let stored = store
                .store_flags_unchanged_since(
                    account,
                    &mailbox,
                    &target_uids,
                    change,
                    &texts,
                    unchanged_since.map(store::ModSeq),
                )
                .await;
            match stored {
                Ok(stored) => {
                    let mut reported = Vec::new();
                    for (uid, modseq, f) in stored.changed {
                        current.insert(uid, (f, modseq));
                        changed_uids.insert(uid);
                        reported.push((uid, modseq));
                    }
                    self.note_reported(&reported);
                    modified = stored.modified;
                }
                Err(StoreError::Invalid(what)) => {
                    self.bad(tag, &format!("Invalid {what}"));
                    return;
                }
                Err(e) => return self.store_failed(tag, e, "store flags"),
            }
        }
        for uid in &modified {
            current.remove(uid);
        }
        self.announce_keywords(
            targets
                .iter()
                .filter_map(|(_, u)| current.get(u))
                .flat_map(|(f, _)| f),
        );
        // With CONDSTORE on, every FETCH answer carries MODSEQ, and even
        // .SILENT reports the new modseqs of what changed (RFC 7162 3.1.3).
        let with_modseq = self.modseq_with_flags();
        let mut modified_numbers = Vec::new();
        for (seq, uid) in targets {
            if modified.binary_search(&uid).is_ok() {
                modified_numbers.push(if by_uid { uid } else { Uid(seq) });
                continue;
            }
            let Some((f, modseq)) = current.get(&uid) else {
                continue;
            };
            if silent && !(with_modseq && changed_uids.contains(&uid)) {
                continue;
            }
            let mut items = Vec::new();
            if !silent {
                items.push(flags_item(f, self.is_recent(uid)));
            }
            if by_uid || self.uid_in_every_fetch() {
                items.push(format!("UID {}", uid.0));
            }
            if with_modseq {
                items.push(format!("MODSEQ ({})", modseq.0));
            }
            self.untagged(format!("{seq} FETCH ({})", items.join(" ")).as_bytes());
        }
        let done = if by_uid {
            "UID STORE completed"
        } else {
            "STORE completed"
        };
        match super::transfer::uid_set(&modified_numbers) {
            Some(set) => self.tagged(
                tag,
                encode::Status::Ok,
                Some(Code::Modified(set)),
                "Conditional STORE failed",
            ),
            None => self.ok(tag, done),
        }
    }

    /// EXPUNGE, or UID EXPUNGE with `only`.
    pub(super) async fn expunge(&mut self, tag: &Tag, only: Option<SequenceSet>) {
        let Some((account, mailbox, read_only, uids)) = self.selected_parts() else {
            return;
        };
        if read_only {
            self.tagged(
                tag,
                encode::Status::No,
                Some(Code::ReadOnly),
                "Mailbox is read-only",
            );
            return;
        }
        let store = self.ctx.shared.store.clone();
        let index = match store.mailbox_index(account, &mailbox).await {
            Ok(i) => i,
            Err(e) => return self.store_failed(tag, e, "read the mailbox"),
        };
        let max = uids.last().map_or(0, |u| u.0);
        let position: HashMap<Uid, usize> = uids.iter().enumerate().map(|(i, u)| (*u, i)).collect();
        let deleted: Vec<Uid> = index
            .messages
            .iter()
            .filter(|m| has_flag(&m.flags, "\\Deleted"))
            .map(|m| m.uid)
            .filter(|u| position.contains_key(u))
            .filter(|u| only.as_ref().is_none_or(|s| s.contains(u.0, max)))
            .collect();
        let removed = if deleted.is_empty() {
            Vec::new()
        } else {
            match store.expunge(account, &mailbox, &deleted).await {
                Ok(r) => r,
                Err(e) => return self.store_failed(tag, e, "expunge"),
            }
        };
        let gone: HashSet<Uid> = removed.iter().copied().collect();
        self.announce_expunges(&gone);
        self.ok(
            tag,
            if only.is_some() {
                "UID EXPUNGE completed"
            } else {
                "EXPUNGE completed"
            },
        );
    }
}

/// What a FETCH read of a message apart from its summary and bytes: its
/// content hash (EMAILID) and save date (SAVEDATE), when asked for.
#[derive(Clone, Copy)]
struct Stored<'a> {
    content_hash: Option<&'a str>,
    saved: Option<i64>,
}

/// `<origin>` after a section's name when the fetch is partial, and a
/// space; the octets the partial range takes of `bytes`.
fn cut_partial<'a>(line: &mut Vec<u8>, bytes: &'a [u8], partial: Option<&Partial>) -> &'a [u8] {
    let mut bytes = bytes;
    if let Some(p) = partial {
        let start = (p.origin as usize).min(bytes.len());
        let end = start
            .saturating_add(p.length.get() as usize)
            .min(bytes.len());
        bytes = &bytes[start..end];
        let _ = write!(line, "<{}>", p.origin);
    }
    line.push(b' ');
    bytes
}

/// `1.2` of BINARY's part numbers.
fn part_name(part: &[std::num::NonZeroU32]) -> String {
    let names: Vec<String> = part.iter().map(|n| n.to_string()).collect();
    names.join(".")
}

/// The decoded content of each BINARY item of `attrs` (by position;
/// `None` for other items and for parts the message lacks).
fn binary_contents<'a>(
    raw: &'a [u8],
    summary: &MessageSummary,
    attrs: &[A],
) -> Result<Vec<Option<Cow<'a, [u8]>>>, UnknownCte> {
    let binary = |a: &A| matches!(a, A::BinarySection { .. } | A::BinarySize(_));
    if !attrs.iter().any(binary) {
        return Ok(Vec::new());
    }
    attrs
        .iter()
        .map(|a| match a {
            A::BinarySection { part, .. } | A::BinarySize(part) => {
                binary_section(raw, summary, part)
            }
            _ => Ok(None),
        })
        .collect()
}

/// Each target (in UID order, as [`resolve`] gives them) with its index
/// entry, in one merge walk; targets the index lacks are left out.
fn pair_with_index(
    index: &store::MailboxIndex,
    targets: Vec<(u32, Uid)>,
) -> Vec<(u32, &IndexEntry)> {
    let entries = &index.messages;
    let mut out = Vec::with_capacity(targets.len());
    let mut j = 0;
    for (seq, uid) in targets {
        // Galloping: targets are usually next to each other in the index,
        // so look a step ahead before searching, doubling the step.
        let mut step = 1;
        while j + step < entries.len() && entries[j + step].uid < uid {
            step *= 2;
        }
        let end = (j + step + 1).min(entries.len());
        j += entries[j..end].partition_point(|e| e.uid < uid);
        match entries.get(j) {
            Some(e) if e.uid == uid => out.push((seq, e)),
            _ => {}
        }
    }
    out
}

/// The index entry of a UID (the index is in UID order).
pub(super) fn find_entry(index: &store::MailboxIndex, uid: Uid) -> Option<&IndexEntry> {
    index
        .messages
        .binary_search_by_key(&uid, |m| m.uid)
        .ok()
        .map(|i| &index.messages[i])
}

/// Takes `gone` out of the view; returns the sequence numbers to send
/// EXPUNGE for, highest first, so that each is right when the client
/// applies them in turn. Linear in the view.
pub(super) fn remove_from_view(view: &mut super::Selected, gone: &HashSet<Uid>) -> Vec<usize> {
    let mut numbers = Vec::new();
    for (i, uid) in view.uids.iter().enumerate().rev() {
        if gone.contains(uid) {
            numbers.push(i + 1);
        }
    }
    if !numbers.is_empty() {
        std::sync::Arc::make_mut(&mut view.uids).retain(|u| !gone.contains(u));
    }
    numbers
}

/// How many of `rest` (at least one) the next batch of a FETCH takes: up
/// to [`BATCH_MESSAGES`], and with raw bytes wanted up to
/// [`BATCH_OCTETS`] of them by the index's sizes.
fn batch_len(rest: &[(u32, &IndexEntry)], want_raw: bool) -> usize {
    let mut total = 0u64;
    let mut n = 0;
    for (_, e) in rest.iter().take(BATCH_MESSAGES) {
        total = total.saturating_add(e.size);
        if n > 0 && want_raw && total > BATCH_OCTETS {
            break;
        }
        n += 1;
    }
    n.max(1)
}
