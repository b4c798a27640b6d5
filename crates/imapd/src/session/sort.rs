//! SORT and UID SORT (RFC 5256) with every key of RFC 5256 and RFC 5957's
//! DISPLAYFROM and DISPLAYTO, and ESORT (`SORT RETURN (…)`, RFC 5267).
//!
//! The messages are those SEARCH would find; what they are sorted by
//! comes from the mailbox's sort index ([`super::sort_index`]), whose
//! records of messages it has not seen yet are made here from the store's
//! envelope summaries (decoded subject and addresses, the `Date:` field,
//! kept at delivery), in batches. Strings compare under i;unicode-casemap
//! (I18NLEVEL=1): folded by `casemap`, then by code point, which the
//! index turns into integers. Messages that compare equal on every key
//! keep their mailbox order (RFC 5256 section 3).

use std::cmp::Ordering;
use std::fmt::Write as _;

use store::{StoreError, Uid};
use tokio_util::task::AbortOnDropHandle;

use super::esearch::Found;
use super::search::Candidate;
use super::sort_index::{lock, Key, Made, MailboxSortIndex, SharedIndex};
use super::{End, Session, State};
use crate::protocol::{SearchKey, SearchReturn, SortField, SortKey, Tag};

/// Envelope summaries read per store call, for records not yet made.
const ENVELOPE_BATCH: usize = 1024;
/// Batches read at once: enough to keep the store's readers busy while
/// this session makes records of the last one, few enough that a large
/// mailbox's summaries are never all in memory together.
const BATCHES_IN_FLIGHT: usize = 3;

/// The messages a SORT or THREAD matched, in mailbox order, and the
/// mailbox's sort index, which has a record of each of them the store
/// still has.
pub(super) struct Indexed {
    pub matched: Vec<Candidate>,
    pub index: SharedIndex,
}

impl Indexed {
    /// The matched messages the index has, sorted by `keys`, ties in
    /// mailbox order.
    pub(super) fn sorted(&self, keys: &[SortKey]) -> Vec<&Candidate> {
        let order = sort_order(&mut lock(&self.index), &self.matched, keys);
        order.into_iter().map(|i| &self.matched[i]).collect()
    }
}

/// The positions in `matched` of the messages `index` has, sorted by
/// `keys`, ties in the order of `matched`.
fn sort_order(index: &mut MailboxSortIndex, matched: &[Candidate], keys: &[SortKey]) -> Vec<usize> {
    let kinds: Vec<Key> = keys
        .iter()
        .map(|k| match k.field {
            SortField::Arrival => Key::Arrival,
            SortField::Date => Key::Sent,
            SortField::Size => Key::Size,
            SortField::Subject => Key::Subject,
            SortField::From => Key::From,
            SortField::To => Key::To,
            SortField::Cc => Key::Cc,
            SortField::DisplayFrom => Key::DisplayFrom,
            SortField::DisplayTo => Key::DisplayTo,
        })
        .collect();
    let messages: Vec<(Uid, u64)> = matched
        .iter()
        .map(|c| (c.entry.uid, c.entry.size))
        .collect();
    let (found, values) = index.keys(&messages, &kinds);
    let reverse: Vec<bool> = keys.iter().map(|k| k.reverse).collect();
    order_rows(found.len(), &values, &reverse)
        .into_iter()
        .map(|row| found[row])
        .collect()
}

/// The order of `rows` rows of `values` (each `reverse.len()` keys, the
/// `i`th descending where `reverse[i]`), ties in row order.
fn order_rows(rows: usize, values: &[i64], reverse: &[bool]) -> Vec<usize> {
    let width = reverse.len();
    let mut order: Vec<usize> = (0..rows).collect();
    match reverse {
        [] => {}
        [false] => order.sort_by_key(|&r| values[r]),
        _ => order.sort_by(|&a, &b| {
            let (a, b) = (&values[a * width..][..width], &values[b * width..][..width]);
            for ((x, y), &rev) in a.iter().zip(b).zip(reverse) {
                let o = if rev { y.cmp(x) } else { x.cmp(y) };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        }),
    }
    order
}

/// The charsets SORT and THREAD accept (the strings they compare are
/// already Unicode).
pub(super) fn known_charset(charset: &str) -> bool {
    ["UTF-8", "US-ASCII"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(charset))
}

impl Session {
    /// The messages matching `criteria` and the mailbox's sort index
    /// with their records; `None` when the command was answered already.
    pub(super) async fn indexed_matches(
        &mut self,
        tag: &Tag,
        charset: &str,
        criteria: Vec<SearchKey>,
    ) -> Result<Option<Indexed>, End> {
        if !known_charset(charset) {
            self.unknown_charset(tag);
            return Ok(None);
        }
        match self.find_indexed(criteria).await? {
            Ok(indexed) => Ok(Some(indexed)),
            Err(e) => {
                self.store_failed(tag, e, "sort the mailbox");
                Ok(None)
            }
        }
    }

    /// The messages matching `criteria`, in mailbox order, and the
    /// mailbox's sort index, filled with the records it lacked of them.
    pub(super) async fn find_indexed(
        &mut self,
        criteria: Vec<SearchKey>,
    ) -> Result<Result<Indexed, StoreError>, End> {
        let matched = match self.find_matches(criteria).await? {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        let (account, mailbox, present) = match &self.state {
            State::Selected(a, s) => (a.id, s.mailbox, s.uids.len()),
            _ => {
                return Ok(Ok(Indexed {
                    matched: Vec::new(),
                    index: SharedIndex::default(),
                }))
            }
        };
        let index = self.ctx.sort_indexes.get(mailbox);
        let missing = lock(&index).missing(matched.iter().map(|c| c.entry.uid));
        if !missing.is_empty() {
            let store = self.ctx.shared.store.clone();
            let filling = fill(store, account, mailbox, index.clone(), missing);
            let filled = self.io.until_gone(filling).await;
            // Charged (and kept or let go) even when the client left.
            self.ctx.sort_indexes.settle(mailbox, &index, present);
            if let Err(e) = filled? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(Indexed { matched, index }))
    }

    /// SORT, UID SORT, and with RETURN, ESORT.
    pub(super) async fn sort(
        &mut self,
        tag: &Tag,
        uid: bool,
        returns: Option<SearchReturn>,
        keys: Vec<SortKey>,
        charset: String,
        criteria: Vec<SearchKey>,
    ) -> Result<(), End> {
        let with_modseq = criteria.iter().any(super::search::has_modseq);
        let context = returns
            .as_ref()
            .is_some_and(|r| r.update)
            .then(|| criteria.clone());
        let Some(indexed) = self.indexed_matches(tag, &charset, criteria).await? else {
            return Ok(());
        };
        let messages = indexed.sorted(&keys);
        match returns {
            Some(returns) => {
                let found = Found {
                    by_uid: uid,
                    sorted: true,
                    messages: messages.iter().map(|m| (m.seq, m.entry.uid)).collect(),
                    modseqs: with_modseq
                        .then(|| messages.iter().map(|m| m.entry.modseq.0).collect()),
                };
                self.report_result(tag, &returns, &found);
                if let Some(criteria) = context {
                    let uids = messages.iter().map(|m| m.entry.uid).collect();
                    self.start_update(tag, uid, criteria, Some(keys), uids);
                }
            }
            None => {
                let mut line = String::with_capacity(6 + messages.len() * 7);
                line.push_str("SORT");
                for m in &messages {
                    let n = if uid { m.entry.uid.0 } else { m.seq };
                    let _ = write!(line, " {n}");
                }
                // RFC 7162 3.1.5, as for SEARCH.
                if let Some(highest) = messages
                    .iter()
                    .map(|m| m.entry.modseq.0)
                    .max()
                    .filter(|_| with_modseq)
                {
                    let _ = write!(line, " (MODSEQ {highest})");
                }
                self.untagged(line.as_bytes());
            }
        }
        self.ok(
            tag,
            if uid {
                "UID SORT completed"
            } else {
                "SORT completed"
            },
        );
        Ok(())
    }

    pub(super) fn unknown_charset(&mut self, tag: &Tag) {
        let names = vec!["UTF-8".to_owned(), "US-ASCII".to_owned()];
        self.no(
            tag,
            Some(crate::protocol::encode::Code::BadCharset(names)),
            "Charset not supported",
        );
    }
}

/// Makes records of the `missing` messages' envelopes (a few batches at
/// once, in UID order, each made on the store's reader as it reads them)
/// and adds them to `index`.
/// Messages the store no longer has get none.
async fn fill(
    store: store::Store,
    account: store::AccountId,
    mailbox: store::MailboxRef,
    index: SharedIndex,
    missing: Vec<Uid>,
) -> Result<(), StoreError> {
    // A client that leaves drops the handles, which stops the reads.
    let read = |uids: &[Uid]| {
        let (store, uids) = (store.clone(), uids.to_vec());
        AbortOnDropHandle::new(tokio::spawn(async move {
            store
                .envelopes_each(account, mailbox, &uids, Made::of)
                .await
        }))
    };
    let mut to_read = missing.chunks(ENVELOPE_BATCH);
    let mut reading: std::collections::VecDeque<_> =
        to_read.by_ref().take(BATCHES_IN_FLIGHT).map(read).collect();
    while let Some(next) = reading.pop_front() {
        reading.extend(to_read.next().map(read));
        let made = next
            .await
            .map_err(|e| StoreError::Database(format!("sort task failed: {e}")))??;
        lock(&index)
            .add(&made)
            .map_err(|_| StoreError::Database("the mailbox's sort index is too large".into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::base_subject::{base_subject, casemap};
    use store::{IndexEntry, ModSeq};

    fn made(uid: u32, subject: &str, sent: i64, from: &str) -> Made {
        let base = base_subject(subject);
        Made {
            uid: Uid(uid),
            arrival: i64::from(uid),
            sent,
            subject: base.text,
            is_reply_or_forward: base.is_reply_or_forward,
            from: casemap(from),
            ..Made::default()
        }
    }

    fn candidate(seq: u32) -> Candidate {
        Candidate {
            seq,
            recent: false,
            entry: IndexEntry {
                uid: Uid(seq * 10),
                size: u64::from(100 - seq),
                modseq: ModSeq(1),
                flags: Vec::new(),
            },
        }
    }

    fn key(field: SortField, reverse: bool) -> SortKey {
        SortKey { reverse, field }
    }

    #[test]
    fn keys_reverse_and_ties() {
        let mut index = MailboxSortIndex::default();
        index
            .add(&[
                made(10, "Re: Über", 300, "zed"),
                made(20, "über", 100, "amy"),
                made(30, "apple", 200, "amy"),
                made(40, "[list] Zebra", 100, "bob"),
            ])
            .unwrap();
        let matched: Vec<Candidate> = (1..=4).map(candidate).collect();
        let mut order = |keys: &[SortKey]| -> Vec<u32> {
            sort_order(&mut index, &matched, keys)
                .into_iter()
                .map(|i| matched[i].seq)
                .collect()
        };
        assert_eq!(order(&[key(SortField::Subject, false)]), [3, 1, 2, 4]);
        assert_eq!(order(&[key(SortField::Date, false)]), [2, 4, 3, 1]);
        assert_eq!(order(&[key(SortField::Date, true)]), [1, 3, 2, 4]);
        assert_eq!(order(&[key(SortField::Size, false)]), [4, 3, 2, 1]);
        assert_eq!(order(&[key(SortField::Arrival, true)]), [4, 3, 2, 1]);
        assert_eq!(
            order(&[key(SortField::From, false), key(SortField::Date, true)]),
            [3, 2, 4, 1]
        );
        // A message the index has no record of (gone from the store) is
        // left out.
        let with_gone: Vec<Candidate> = (1..=5).map(candidate).collect();
        assert_eq!(
            sort_order(&mut index, &with_gone, &[key(SortField::Date, false)]),
            [1, 3, 2, 0]
        );
    }

    #[test]
    fn rows_order_by_each_key_in_turn() {
        let values = [1, 5, 1, 3, 0, 9, 1, 5];
        assert_eq!(order_rows(4, &values, &[false, false]), [2, 1, 0, 3]);
        assert_eq!(order_rows(4, &values, &[false, true]), [2, 0, 3, 1]);
        assert_eq!(order_rows(4, &values, &[true, false]), [1, 0, 3, 2]);
        assert_eq!(order_rows(8, &values, &[false]), [4, 0, 2, 6, 3, 1, 7, 5]);
        assert_eq!(order_rows(3, &[], &[]), [0, 1, 2]);
    }

    #[test]
    fn address_keys() {
        let key = |raw: &str, to: bool| {
            let summary = store::summarize(format!("{raw}\r\n\r\n").as_bytes());
            let info = store::MessageInfo {
                uid: Uid(1),
                modseq: ModSeq(1),
                flags: Vec::new(),
                internal_date: 0,
                size: 0,
                summary: std::sync::Arc::new(summary),
            };
            let m = Made::of(&info);
            if to {
                (m.to, m.display_to)
            } else {
                (m.from, m.display_from)
            }
        };
        let k = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            key(
                "From: =?utf-8?q?Zo=C3=AB_=C3=84rger?= <Bob@Example.com>, c@d",
                false
            ),
            k("BOB", &casemap("Zoë Ärger"))
        );
        assert_eq!(key("From: b@c.d", false), k("B", "B@C.D"));
        // No domain: what is written still sorts.
        assert_eq!(key("From: d", false), k("D", "D"));
        // A group first: its name stands for the mailbox.
        assert_eq!(key("To: Friends: a@x, b@y;", true), k("FRIENDS", "FRIENDS"));
        assert_eq!(key("To: empty:;", true), k("EMPTY", "EMPTY"));
        assert_eq!(key("Subject: none", false), k("", ""));
    }

    #[test]
    fn ids_in_fields() {
        use super::super::sort_index::message_ids;
        assert_eq!(
            message_ids("<a@x> junk <b@y>\r\n <c@z>"),
            ["<a@x>", "<b@y>", "<c@z>"]
        );
        assert_eq!(message_ids("<> <bro ken> <ok@x"), Vec::<String>::new());
    }
}
