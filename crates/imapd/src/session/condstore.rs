//! CONDSTORE and QRESYNC (RFC 7162): which of them a session has turned
//! on, and the answers only they give.
//!
//! Every message has a modseq and every mailbox a HIGHESTMODSEQ in the
//! store, so `[NOMODSEQ]` is never said. CONDSTORE is on for the rest of
//! the session after `ENABLE CONDSTORE` or any command that uses it (RFC
//! 7162 3.1: `SELECT (CONDSTORE)`, `STATUS (HIGHESTMODSEQ)`, FETCH of
//! MODSEQ or with CHANGEDSINCE, STORE with UNCHANGEDSINCE, SEARCH MODSEQ);
//! in the selected state that command first gets `* OK [HIGHESTMODSEQ
//! n]`. From then on every FETCH answer that shows flags also shows
//! MODSEQ. QRESYNC (only by `ENABLE
//! QRESYNC`, which turns CONDSTORE on too) adds `SELECT (QRESYNC ...)`,
//! `UID FETCH ... (CHANGEDSINCE n VANISHED)`, `[CLOSED]` when a SELECT
//! leaves a mailbox, and `* VANISHED uids` in place of `* n EXPUNGE`.
//!
//! Which UIDs were expunged after a modseq comes from the store's
//! tombstones ([`store::Store::expunged_since`]). When the client's modseq
//! is older than what pruning kept, the answer is every UID in the
//! client's range that the mailbox no longer has, from its UID list: more
//! than happened since (RFC 7162 3.2.5.1 allows that), never less; the
//! seq-match data, when the client sends it, narrows that range to the
//! UIDs above the highest one still at the client's message number.

use store::{ExpungedSince, MailboxIndex, ModSeq, StoreError, Uid};

use super::transfer::uid_set;
use super::{Session, State};
use crate::protocol::encode::{Code, Status};
use crate::protocol::{
    CommandKind, QresyncParams, SearchKey, SeqNumber, SequenceSet, StatusItem, Tag,
};

/// What a session has turned on: the RFC 7162 extensions (by ENABLE or
/// use), and IMAP4rev2 and UTF8=ACCEPT (by ENABLE only, `session::rev2`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Enabled {
    /// RFC 9051's responses in place of RFC 3501's (`session::rev2`).
    pub imap4rev2: bool,
    /// RFC 6855: mailbox names in UTF-8, `APPEND ... UTF8 (...)`, no
    /// SEARCH CHARSET.
    pub utf8_accept: bool,
    /// MODSEQ in every FETCH answer with flags, HIGHESTMODSEQ on SELECT.
    pub condstore: bool,
    /// VANISHED instead of EXPUNGE, CLOSED, SELECT's QRESYNC parameter.
    pub qresync: bool,
    /// A `* VANISHED` went out during the command being answered: its
    /// tagged OK says the HIGHESTMODSEQ the client is now at.
    pub vanished_sent: bool,
}

/// Whether a command turns CONDSTORE on (RFC 7162 3.1).
pub(super) fn enables_condstore(kind: &CommandKind) -> bool {
    use crate::protocol::FetchAttribute as A;
    fn uses_modseq(key: &SearchKey) -> bool {
        match key {
            SearchKey::ModSeq(_) => true,
            SearchKey::Not(k) => uses_modseq(k),
            SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
            SearchKey::And(keys) => keys.iter().any(uses_modseq),
            _ => false,
        }
    }
    match kind {
        CommandKind::Select { condstore, .. } | CommandKind::Examine { condstore, .. } => {
            *condstore
        }
        CommandKind::Fetch {
            attributes,
            changed_since,
            ..
        } => changed_since.is_some() || attributes.contains(&A::ModSeq),
        CommandKind::Store {
            unchanged_since, ..
        } => unchanged_since.is_some(),
        CommandKind::Search { criteria, .. }
        | CommandKind::SearchReturning { criteria, .. }
        | CommandKind::Sort { criteria, .. }
        | CommandKind::Thread { criteria, .. } => criteria.iter().any(uses_modseq),
        CommandKind::Status { items, .. } => items.contains(&StatusItem::HighestModSeq),
        _ => false,
    }
}

/// The ranges of UIDs in `spans` (sorted, apart; clipped to `1..=last`)
/// that are not in `present` (ascending): what QRESYNC reports as vanished
/// when the tombstones no longer reach back to the client's modseq. As
/// ranges, so that a mailbox whose UIDs are far apart costs its gaps, not
/// its UID numbers.
fn missing_ranges(spans: &[(u32, u32)], last: u32, present: &[Uid]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(lo, hi) in spans {
        let (lo, hi) = (lo.max(1), hi.min(last));
        if lo > hi {
            continue;
        }
        let mut j = present.partition_point(|u| u.0 < lo);
        let mut n = lo;
        loop {
            let Some(next) = present.get(j).map(|u| u.0).filter(|&u| u <= hi) else {
                out.push((n, hi));
                break;
            };
            if next > n {
                out.push((n, next - 1));
            }
            if next == hi {
                break;
            }
            n = next + 1;
            j += 1;
        }
    }
    out
}

/// Most message numbers (and UIDs) of QRESYNC's seq-match data looked at.
const MAX_SEQ_MATCH: usize = 10_000;

/// From QRESYNC's seq-match data (the client's message numbers and the
/// UIDs it had at them, RFC 7162 3.2.5.2): the highest of those UIDs that
/// is still at the client's number. Nothing below it can have been
/// expunged since (UIDs below it are never added), so the vanished UIDs
/// are all above it. 0 when no pair says so, or the sets do not pair up.
fn seq_match_floor(seqs: &SequenceSet, uids: &SequenceSet, present: &[Uid]) -> u32 {
    fn numbers(set: &SequenceSet) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        for &(lo, hi) in set.ranges() {
            let (SeqNumber::Value(a), SeqNumber::Value(b)) = (lo, hi) else {
                return None;
            };
            let (a, b) = (a.min(b), a.max(b));
            if out.len() + (b - a) as usize >= MAX_SEQ_MATCH {
                return None;
            }
            out.extend(a..=b);
        }
        Some(out)
    }
    let (Some(seqs), Some(uids)) = (numbers(seqs), numbers(uids)) else {
        return 0;
    };
    if seqs.len() != uids.len() {
        return 0;
    }
    seqs.iter()
        .zip(&uids)
        .filter(|&(&seq, &uid)| present.binary_search(&Uid(uid)).ok() == Some(seq as usize - 1))
        .map(|(_, &uid)| uid)
        .max()
        .unwrap_or(0)
}

/// The UIDs in `within` (all when `None`, `*` meaning `last`) that were
/// expunged after `since`, as a set (`None` when there are none): from the
/// tombstones, or, when pruning took those, every UID above `floor` and up
/// to `last` that `index` lacks.
async fn expunged_in(
    store: &store::Store,
    index: &MailboxIndex,
    within: Option<&SequenceSet>,
    since: ModSeq,
    (floor, last): (u32, u32),
) -> Result<Option<SequenceSet>, StoreError> {
    Ok(match store.expunged_since(index.mailbox, since).await? {
        ExpungedSince::Known(uids) => {
            let uids: Vec<Uid> = uids
                .into_iter()
                .filter(|u| within.is_none_or(|s| s.contains(u.0, last)))
                .collect();
            uid_set(&uids)
        }
        ExpungedSince::Pruned { .. } => gaps(index, within, (floor, last)),
    })
}

/// The UIDs in `within` (all when `None`, `*` meaning `last`) above
/// `floor` and up to `last` that `index` lacks, as a set: every UID that
/// may have been expunged, when which were is no longer known.
fn gaps(
    index: &MailboxIndex,
    within: Option<&SequenceSet>,
    (floor, last): (u32, u32),
) -> Option<SequenceSet> {
    let spans: Vec<(u32, u32)> = within
        .map_or_else(|| vec![(1, last)], |s| s.spans(last))
        .into_iter()
        .filter(|&(_, hi)| hi > floor)
        .map(|(lo, hi)| (lo.max(floor + 1), hi))
        .collect();
    let ranges = missing_ranges(&spans, last, &index.uids)
        .into_iter()
        .map(|(a, b)| (SeqNumber::Value(a), SeqNumber::Value(b)))
        .collect();
    SequenceSet::new(ranges)
}

/// `VANISHED (EARLIER) set` / `VANISHED set`, without the `* `.
fn vanished_line(set: &SequenceSet, earlier: bool) -> Vec<u8> {
    let head = if earlier {
        "VANISHED (EARLIER) "
    } else {
        "VANISHED "
    };
    format!("{head}{set}").into_bytes()
}

impl Session {
    /// ENABLE (RFC 5161): turns on CONDSTORE and QRESYNC when asked (the
    /// others are not offered) and names in `* ENABLED` what this command
    /// turned on.
    pub(super) fn enable(&mut self, tag: &Tag, caps: Vec<String>) {
        let mut turned_on: Vec<&str> = Vec::new();
        for cap in &caps {
            match cap.as_str() {
                "CONDSTORE" if !self.enabled.condstore => {
                    self.enabled.condstore = true;
                    turned_on.push("CONDSTORE");
                }
                "QRESYNC" if !self.enabled.qresync => {
                    // RFC 7162 3.2.3: QRESYNC implies CONDSTORE.
                    self.enabled.qresync = true;
                    self.enabled.condstore = true;
                    turned_on.push("QRESYNC");
                }
                "IMAP4REV2" if !self.enabled.imap4rev2 => {
                    self.enabled.imap4rev2 = true;
                    turned_on.push("IMAP4rev2");
                }
                "UTF8=ACCEPT" if !self.enabled.utf8_accept => {
                    self.enabled.utf8_accept = true;
                    turned_on.push("UTF8=ACCEPT");
                }
                // RFC 5161 3.1: what the server does not know, or has
                // turned on already, is left out of ENABLED.
                _ => {}
            }
        }
        let mut line = b"ENABLED".to_vec();
        for cap in turned_on {
            line.push(b' ');
            line.extend_from_slice(cap.as_bytes());
        }
        self.untagged(&line);
        self.ok(tag, "ENABLE completed");
    }

    /// Before a command runs: a command that uses CONDSTORE turns it on,
    /// and in the selected state the client then learns the mailbox's
    /// HIGHESTMODSEQ (RFC 7162 3.1). A SELECT says it itself.
    pub(super) fn note_condstore_use(&mut self, kind: &CommandKind) {
        if self.enabled.condstore || !enables_condstore(kind) {
            return;
        }
        self.enabled.condstore = true;
        if matches!(
            kind,
            CommandKind::Select { .. } | CommandKind::Examine { .. }
        ) {
            return;
        }
        if let State::Selected(_, view) = &self.state {
            let highest = view.synced_modseq.0;
            self.untagged_status(
                Status::Ok,
                Some(Code::HighestModSeq(highest)),
                "Highest mailbox modseq",
            );
        }
    }

    /// After a command in the selected state that sent `* VANISHED`:
    /// `[HIGHESTMODSEQ n]` in its tagged OK (when it has no other code),
    /// so that a client that stops here resyncs from the right place, as
    /// Dovecot does.
    pub(super) fn highest_modseq_after_vanished(&mut self) {
        if !std::mem::take(&mut self.enabled.vanished_sent) {
            return;
        }
        let State::Selected(_, view) = &self.state else {
            return;
        };
        let ok = format!("{} OK ", tag_of(&self.tagged_reply));
        if self.tagged_reply.starts_with(ok.as_bytes())
            && self.tagged_reply.get(ok.len()) != Some(&b'[')
        {
            let code = format!("[HIGHESTMODSEQ {}] ", view.synced_modseq.0);
            let at = ok.len();
            self.tagged_reply.splice(at..at, code.into_bytes());
        }
    }

    /// Whether every FETCH answer carries UID, as QRESYNC wants (RFC 7162
    /// 3.2.4: VANISHED names UIDs, so the client must know them all).
    pub(super) fn uid_in_every_fetch(&self) -> bool {
        self.enabled.qresync
    }

    /// Whether FETCH answers carry MODSEQ beside FLAGS.
    pub(super) fn modseq_with_flags(&self) -> bool {
        self.enabled.condstore
    }

    /// SELECT or EXAMINE with a `QRESYNC` parameter before QRESYNC is
    /// enabled is an error (RFC 7162 3.2.5); `true` if the command may go
    /// on.
    pub(super) fn qresync_allowed(&mut self, tag: &Tag, asked: bool) -> bool {
        if asked && !self.enabled.qresync {
            self.bad(tag, "QRESYNC is not enabled");
            return false;
        }
        true
    }

    /// `* OK [CLOSED]` when a SELECT or EXAMINE leaves a selected mailbox
    /// with QRESYNC (RFC 7162 3.2.11) or IMAP4rev2 on: what follows is the
    /// new one's.
    pub(super) fn closed_for_select(&mut self) {
        // IMAP4rev2 took `[CLOSED]` from QRESYNC (RFC 9051 6.3.2).
        let says_closed = self.enabled.qresync || self.enabled.imap4rev2;
        if says_closed && matches!(self.state, State::Selected(..)) {
            self.untagged_status(Status::Ok, Some(Code::Closed), "Previous mailbox closed");
        }
    }

    /// The end of SELECT and EXAMINE, before the tagged OK:
    /// `* OK [HIGHESTMODSEQ n]` with CONDSTORE on, then QRESYNC's resync
    /// when the client's UIDVALIDITY is the mailbox's: `* VANISHED
    /// (EARLIER)` for the UIDs it knows that are gone, and `* n FETCH (UID
    /// FLAGS MODSEQ)` for each message changed since its modseq.
    pub(super) async fn select_resync(
        &mut self,
        index: &MailboxIndex,
        qresync: Option<QresyncParams>,
    ) {
        if !self.enabled.condstore {
            return;
        }
        self.untagged_status(
            Status::Ok,
            Some(Code::HighestModSeq(index.highest_modseq.0)),
            "Highest mailbox modseq",
        );
        let Some(q) = qresync else {
            return;
        };
        if q.uid_validity != index.uid_validity {
            // The client's cache is for another mailbox: it starts over.
            return;
        }
        let since = ModSeq(q.modseq);
        let known = q.known_uids.as_ref();
        let last = index.uid_next.0.saturating_sub(1);
        let uids = &index.uids;
        let floor = q
            .seq_match
            .as_ref()
            .map_or(0, |(seqs, known_at)| seq_match_floor(seqs, known_at, uids));
        let store = self.ctx.shared.store.clone();
        let gone = match expunged_in(&store, index, known, since, (floor, last)).await {
            Ok(gone) => gone,
            Err(e) => {
                // Saying less than what went would leave the client with
                // messages that are gone: say every UID that may have.
                tracing::warn!(error = %e, "cannot read expunged UIDs for QRESYNC");
                gaps(index, known, (floor, last))
            }
        };
        if let Some(set) = gone {
            self.untagged(&vanished_line(&set, true));
        }
        for (i, e) in index.messages.iter().enumerate() {
            if e.modseq <= since || known.is_some_and(|k| !k.contains(e.uid.0, last)) {
                continue;
            }
            let recent = matches!(&self.state, State::Selected(_, s) if s.is_recent(e.uid));
            let mut line = format!("{} FETCH (UID {} ", i + 1, e.uid.0).into_bytes();
            super::updates::push_flags_item(&mut line, &e.flags, recent);
            line.extend_from_slice(format!(" MODSEQ ({}))", e.modseq.0).as_bytes());
            self.untagged(&line);
        }
    }

    /// UID FETCH's `VANISHED` modifier (RFC 7162 3.2.6), QRESYNC only:
    /// `* VANISHED (EARLIER)` for the UIDs in `set` expunged after
    /// `since`, before the FETCH answers. `false` (after a BAD) when the
    /// command may not use it.
    pub(super) async fn fetch_vanished(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        set: &SequenceSet,
        since: u64,
    ) -> bool {
        if !by_uid || !self.enabled.qresync {
            self.bad(tag, "VANISHED needs UID FETCH and QRESYNC");
            return false;
        }
        let Some((account, mailbox)) = self.selected_mailbox() else {
            return false;
        };
        let index = match self.ctx.shared.store.mailbox_index(account, &mailbox).await {
            Ok(index) => index,
            Err(e) => {
                self.store_failed(tag, e, "read the mailbox");
                return false;
            }
        };
        let last = index.uid_next.0.saturating_sub(1);
        let store = self.ctx.shared.store.clone();
        match expunged_in(&store, &index, Some(set), ModSeq(since), (0, last)).await {
            Ok(gone) => {
                if let Some(set) = gone {
                    self.untagged(&vanished_line(&set, true));
                }
                true
            }
            Err(e) => {
                self.store_failed(tag, e, "read expunged messages");
                false
            }
        }
    }
}

/// The tag a tagged reply starts with.
fn tag_of(reply: &[u8]) -> String {
    let end = reply.iter().position(|&b| b == b' ').unwrap_or(0);
    String::from_utf8_lossy(&reply[..end]).into_owned()
}

/// The lines (without `* `) that tell the client these messages of its
/// view are gone (`positions`, 0-based and ascending, in the view before
/// they were taken out): `VANISHED uids` with QRESYNC, else `n EXPUNGE`
/// from the highest number down, so that each is right when it is read.
pub(super) fn expunge_lines(
    enabled: Enabled,
    view_uids: &[Uid],
    positions: &[usize],
) -> Vec<Vec<u8>> {
    if enabled.qresync {
        let uids: Vec<Uid> = positions.iter().map(|&i| view_uids[i]).collect();
        return uid_set(&uids)
            .map(|set| vanished_line(&set, false))
            .into_iter()
            .collect();
    }
    positions
        .iter()
        .rev()
        .map(|i| format!("{} EXPUNGE", i + 1).into_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(v: &[u32]) -> Vec<Uid> {
        v.iter().copied().map(Uid).collect()
    }

    #[test]
    fn missing_uids_are_the_gaps_in_the_clients_range() {
        let present = uids(&[2, 3, 7, 10]);
        assert_eq!(
            missing_ranges(&[(1, 10)], 10, &present),
            [(1, 1), (4, 6), (8, 9)]
        );
        // Clipped to the mailbox's last UID; a range past the last present.
        assert_eq!(missing_ranges(&[(9, 50)], 12, &present), [(9, 9), (11, 12)]);
        assert_eq!(missing_ranges(&[(3, 3), (5, 7)], 10, &present), [(5, 6)]);
        assert_eq!(missing_ranges(&[(1, 4)], 4, &[]), [(1, 4)]);
        assert!(missing_ranges(&[(2, 3)], 10, &present).is_empty());
        // UIDs far apart cost their gaps only.
        let sparse = uids(&[5, 4_000_000_000]);
        assert_eq!(
            missing_ranges(&[(1, u32::MAX)], u32::MAX, &sparse),
            [(1, 4), (6, 3_999_999_999), (4_000_000_001, u32::MAX)]
        );
    }

    #[test]
    fn seq_match_data_bounds_what_may_have_vanished() {
        let set = |s: &str| SequenceSet::parse(s.as_bytes(), 100).unwrap();
        // The client had UIDs 2, 3, 5, 8 at 1..4; 3 has gone since.
        let present = uids(&[2, 5, 8, 9]);
        // 2 is still first; 5 and 8 moved up: nothing below 2 went.
        assert_eq!(seq_match_floor(&set("1:4"), &set("2:3,5,8"), &present), 2);
        // 8 is at 3 now, no longer at 4: only 2 still says so.
        assert_eq!(seq_match_floor(&set("1,4"), &set("2,8"), &present), 2);
        assert_eq!(seq_match_floor(&set("3"), &set("8"), &present), 8);
        // Sets that do not pair up, or `*`, say nothing.
        assert_eq!(seq_match_floor(&set("1:2"), &set("2"), &present), 0);
        assert_eq!(seq_match_floor(&set("1:*"), &set("2:3"), &present), 0);
    }

    #[test]
    fn vanished_lines_are_compact() {
        let set = uid_set(&uids(&[1, 2, 3, 5, 9, 10])).unwrap();
        assert_eq!(vanished_line(&set, true), b"VANISHED (EARLIER) 1:3,5,9:10");
        let one = uid_set(&uids(&[4])).unwrap();
        assert_eq!(vanished_line(&one, false), b"VANISHED 4");
        let lines = expunge_lines(
            Enabled {
                qresync: true,
                ..Enabled::default()
            },
            &uids(&[3, 4, 8, 9]),
            &[1, 2, 3],
        );
        assert_eq!(lines, [b"VANISHED 4,8:9".to_vec()]);
        let lines = expunge_lines(Enabled::default(), &uids(&[3, 4, 8, 9]), &[1, 3]);
        assert_eq!(lines, [b"4 EXPUNGE".to_vec(), b"2 EXPUNGE".to_vec()]);
    }

    #[test]
    fn commands_that_turn_condstore_on() {
        use crate::protocol::{parse_command, Limits, Parsed};
        let on = |line: &str| {
            let parsed = parse_command(format!("a {line}\r\n").as_bytes(), &Limits::default());
            match parsed {
                Parsed::Complete { command, .. } => enables_condstore(&command.kind),
                other => panic!("{line}: {other:?}"),
            }
        };
        assert!(on("SELECT INBOX (CONDSTORE)"));
        assert!(on("FETCH 1 (FLAGS MODSEQ)"));
        assert!(on("FETCH 1 FLAGS (CHANGEDSINCE 4)"));
        assert!(on("STORE 1 (UNCHANGEDSINCE 4) +FLAGS (x)"));
        assert!(on("SEARCH NOT (OR SEEN MODSEQ 4)"));
        assert!(on("STATUS INBOX (UIDNEXT HIGHESTMODSEQ)"));
        assert!(!on("STATUS INBOX (UIDNEXT MESSAGES)"));
        assert!(!on("SELECT INBOX"));
        assert!(!on("FETCH 1 (FLAGS UID)"));
        assert!(!on("STORE 1 +FLAGS (x)"));
        assert!(!on("SEARCH OR SEEN UID 4"));
    }
}
