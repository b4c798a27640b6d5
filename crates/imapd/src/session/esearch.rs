//! Extended SEARCH results: ESEARCH (RFC 4731: `SEARCH RETURN (MIN MAX
//! ALL COUNT)` answered with `* ESEARCH`), SEARCHRES (RFC 5182: `RETURN
//! (SAVE)` and `$`) and PARTIAL (RFC 5267), for SEARCH and, through
//! [`Session::report_result`], for SORT's ESORT form.
//!
//! The saved result is kept as UIDs, so that expunges (by anyone) simply
//! drop out of it; `$` in a command is replaced by it before the command
//! runs: a UID set for UID commands and search keys, sequence numbers of
//! the current view for the others. SELECT, EXAMINE, CLOSE and UNSELECT
//! forget it, and so does a SEARCH with SAVE that fails.

use store::Uid;

use super::{End, Session, State};
use crate::protocol::{CommandKind, SearchKey, SearchReturn, SequenceSet, Tag};

/// Writes `numbers` (in the order given) as a sequence set: ascending
/// runs as ranges, the rest one by one.
pub(super) fn ordered_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && end.checked_add(1) == Some(numbers[i + 1]) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The `* ESEARCH` data for a result in its order (`numbers`, UIDs or
/// sequence numbers as `uid` says); `modseq` the highest modseq among
/// them when the criteria asked about modseqs.
/// For a sort (`sorted`), MIN and MAX are the first and last in sort order
/// (RFC 5267 section 3.2), as Dovecot has them.
pub(super) fn esearch_line(
    tag: &Tag,
    uid: bool,
    sorted: bool,
    returns: &SearchReturn,
    numbers: &[u32],
    modseq: Option<u64>,
) -> String {
    let mut line = format!("ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    let (min, max) = if sorted {
        (numbers.first().copied(), numbers.last().copied())
    } else {
        (numbers.iter().min().copied(), numbers.iter().max().copied())
    };
    if let Some(n) = min.filter(|_| returns.min) {
        line.push_str(&format!(" MIN {n}"));
    }
    if let Some(n) = max.filter(|_| returns.max) {
        line.push_str(&format!(" MAX {n}"));
    }
    if returns.count {
        line.push_str(&format!(" COUNT {}", numbers.len()));
    }
    if returns.all && !numbers.is_empty() {
        line.push_str(" ALL ");
        line.push_str(&ordered_set(numbers));
    }
    if let Some((low, high)) = returns.partial {
        let from = (low - 1) as usize;
        let to = (high as usize).min(numbers.len());
        let part = if from < to {
            ordered_set(&numbers[from..to])
        } else {
            "NIL".to_owned()
        };
        line.push_str(&format!(" PARTIAL ({low}:{high} {part})"));
    }
    if let Some(m) = modseq.filter(|_| !numbers.is_empty()) {
        line.push_str(&format!(" MODSEQ {m}"));
    }
    line
}

/// A search or sort result to report.
pub(super) struct Found {
    /// UIDs rather than sequence numbers.
    pub by_uid: bool,
    /// In sort order (MIN and MAX are then the first and last).
    pub sorted: bool,
    /// `(sequence number, UID)` of each message, in the result's order.
    pub messages: Vec<(u32, Uid)>,
    /// The modseq of each message, in the same order, when the criteria
    /// asked about modseqs (RFC 7162 3.1.5).
    pub modseqs: Option<Vec<u64>>,
}

impl Found {
    /// The MODSEQ an ESEARCH reply carries (RFC 7162 3.1.5): the highest
    /// of the messages it reports, so with only MIN and/or MAX asked for,
    /// the highest of those one or two (the first and the last of the
    /// result, in its order), not of the whole result.
    fn reported_modseq(&self, returns: &SearchReturn) -> Option<u64> {
        let modseqs = self.modseqs.as_ref()?;
        let only_ends = (returns.min || returns.max)
            && !returns.all
            && !returns.count
            && returns.partial.is_none();
        if only_ends {
            let first = modseqs.first().filter(|_| returns.min);
            let last = modseqs.last().filter(|_| returns.max);
            first.into_iter().chain(last).max().copied()
        } else {
            modseqs.iter().max().copied()
        }
    }
}

/// Replaces `$` among search keys with `saved` (a UID set, `None` when
/// empty).
fn put_in_keys(keys: &mut [SearchKey], saved: &Option<SequenceSet>) {
    for key in keys {
        match key {
            SearchKey::SequenceSet(set) | SearchKey::Uid(set) if set.is_saved_result() => {
                *key = match saved {
                    Some(uids) => SearchKey::Uid(uids.clone()),
                    None => SearchKey::Not(Box::new(SearchKey::All)),
                };
            }
            SearchKey::Not(k) => put_in_keys(std::slice::from_mut(k), saved),
            SearchKey::Or(a, b) => {
                put_in_keys(std::slice::from_mut(a), saved);
                put_in_keys(std::slice::from_mut(b), saved);
            }
            SearchKey::And(list) => put_in_keys(list, saved),
            _ => {}
        }
    }
}

impl Session {
    /// Forgets the saved result where RFC 5182 says to: a new mailbox, or
    /// none.
    /// Also the live results of CONTEXT=SEARCH.
    pub(super) fn forget_mailbox_results(&mut self, kind: &CommandKind) {
        if matches!(
            kind,
            CommandKind::Select { .. }
                | CommandKind::Examine { .. }
                | CommandKind::Close
                | CommandKind::Unselect
        ) {
            self.saved_result.clear();
            self.updates.clear();
        }
    }

    /// `kind` with `$` replaced by the saved result; `None` when the
    /// command was answered here (it names `$` and that is empty: nothing
    /// to do).
    pub(super) fn put_saved_result(
        &mut self,
        tag: &Tag,
        mut kind: CommandKind,
    ) -> Option<CommandKind> {
        let view: Option<&[Uid]> = match &self.state {
            State::Selected(_, s) => Some(&s.uids),
            _ => None,
        };
        let Some(view) = view else {
            return Some(kind);
        };
        let uids = SequenceSet::from_sorted(self.saved_result.iter().map(|u| u.0));
        let seqs = SequenceSet::from_sorted(
            self.saved_result
                .iter()
                .filter_map(|u| view.binary_search(u).ok().map(|i| i as u32 + 1)),
        );
        use CommandKind as K;
        let set = match &mut kind {
            K::Fetch { uid, set, .. }
            | K::Store { uid, set, .. }
            | K::Copy { uid, set, .. }
            | K::Move { uid, set, .. } => Some((*uid, set)),
            K::UidExpunge(set) => Some((true, set)),
            K::Search { criteria, .. }
            | K::SearchReturning { criteria, .. }
            | K::Sort { criteria, .. }
            | K::Thread { criteria, .. } => {
                put_in_keys(criteria, &uids);
                None
            }
            _ => None,
        };
        if let Some((by_uid, set)) = set {
            if set.is_saved_result() {
                match if by_uid { uids } else { seqs } {
                    Some(saved) => *set = saved,
                    None => {
                        self.ok(tag, "No messages in the saved result");
                        return None;
                    }
                }
            }
        }
        Some(kind)
    }

    /// SEARCH RETURN (…): `* ESEARCH`, the saved result, an update
    /// context.
    pub(super) async fn search_returning(
        &mut self,
        tag: &Tag,
        uid: bool,
        returns: SearchReturn,
        charset: Option<String>,
        criteria: Vec<SearchKey>,
    ) -> Result<(), End> {
        let with_modseq = criteria.iter().any(super::search::has_modseq);
        let context = returns.update.then(|| criteria.clone());
        let Some(matched) = self
            .search_matches(tag, charset.as_deref(), criteria)
            .await?
        else {
            if returns.save {
                self.saved_result.clear();
            }
            return Ok(());
        };
        let found = Found {
            by_uid: uid,
            sorted: false,
            messages: matched.iter().map(|c| (c.seq, c.entry.uid)).collect(),
            modseqs: with_modseq.then(|| matched.iter().map(|c| c.entry.modseq.0).collect()),
        };
        self.report_result(tag, &returns, &found);
        if let Some(criteria) = context {
            let uids = found.messages.iter().map(|m| m.1).collect();
            self.start_update(tag, uid, criteria, None, uids);
        }
        self.ok(
            tag,
            if uid {
                "UID SEARCH completed"
            } else {
                "SEARCH completed"
            },
        );
        Ok(())
    }

    /// Reports a result as RETURN asked: `* ESEARCH` unless SAVE is all
    /// it asked, and SAVE keeps it (only MIN and MAX when those are all it
    /// asked besides, RFC 5182 2.1).
    pub(super) fn report_result(&mut self, tag: &Tag, returns: &SearchReturn, found: &Found) {
        let uids: Vec<Uid> = found.messages.iter().map(|m| m.1).collect();
        if returns.save {
            let mut saved: Vec<Uid> =
                if (returns.min || returns.max) && !returns.all && !returns.count {
                    let mut some = Vec::new();
                    if returns.min {
                        some.extend(uids.iter().min());
                    }
                    if returns.max {
                        some.extend(uids.iter().max());
                    }
                    some
                } else {
                    uids.to_vec()
                };
            saved.sort_unstable();
            saved.dedup();
            self.saved_result = saved;
        }
        let save_only = returns.save
            && !(returns.min
                || returns.max
                || returns.all
                || returns.count
                || returns.update
                || returns.partial.is_some());
        if !save_only {
            let numbers: Vec<u32> = found
                .messages
                .iter()
                .map(|&(seq, uid)| if found.by_uid { uid.0 } else { seq })
                .collect();
            let line = esearch_line(
                tag,
                found.by_uid,
                found.sorted,
                returns,
                &numbers,
                found.reported_modseq(returns),
            );
            self.untagged(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_keep_the_order_given() {
        assert_eq!(ordered_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(ordered_set(&[5, 4, 3, 1]), "5,4,3,1");
        assert_eq!(ordered_set(&[]), "");
        assert_eq!(
            ordered_set(&[u32::MAX - 1, u32::MAX]),
            "4294967294:4294967295"
        );
    }

    #[test]
    fn esearch_lines() {
        let tag = Tag::new("a1").unwrap();
        let all = SearchReturn {
            min: true,
            max: true,
            all: true,
            count: true,
            ..SearchReturn::default()
        };
        assert_eq!(
            esearch_line(&tag, true, false, &all, &[2, 3, 4, 9], None),
            "ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 COUNT 4 ALL 2:4,9"
        );
        assert_eq!(
            esearch_line(&tag, false, false, &all, &[], None),
            "ESEARCH (TAG \"a1\") COUNT 0"
        );
        let partial = SearchReturn {
            partial: Some((2, 4)),
            ..SearchReturn::default()
        };
        assert_eq!(
            esearch_line(&tag, false, false, &partial, &[1, 2, 4, 5], Some(7)),
            "ESEARCH (TAG \"a1\") PARTIAL (2:4 2,4:5) MODSEQ 7"
        );
        assert_eq!(
            esearch_line(&tag, false, false, &partial, &[1], None),
            "ESEARCH (TAG \"a1\") PARTIAL (2:4 NIL)"
        );
        // A sort's MIN and MAX are its first and last.
        assert_eq!(
            esearch_line(&tag, false, true, &all, &[4, 1, 9, 2], None),
            "ESEARCH (TAG \"a1\") MIN 4 MAX 2 COUNT 4 ALL 4,1,9,2"
        );
    }
}
