//! What the store keeps about a message beyond its flags and summary, as
//! IMAP names it. Object ids (OBJECTID, RFC 8474): MAILBOXID from the
//! store's mailbox id and UIDVALIDITY (kept across RENAME, never given to
//! another mailbox), EMAILID from the hash of the message's bytes (the
//! same for every copy of the same message, in any mailbox), THREADID NIL
//! (no threads are kept); CREATE answers `[MAILBOXID]`. Save dates
//! (SAVEDATE, RFC 8514) are read in `session::fetch`. SEARCH's EMAILID,
//! THREADID, SAVEDBEFORE, SAVEDON and SAVEDSINCE keys are made UID sets
//! here, one store read each, before the search runs.

use std::collections::HashMap;

use store::{AccountId, MailboxId, MailboxRef, StoreError, Timestamp};

use super::transfer::{timestamp, uid_set};
use super::Session;
use crate::protocol::encode::{Code, Status};
use crate::protocol::{Date, DateTime, SearchKey, SequenceSet, Tag};

/// The MAILBOXID of a mailbox.
pub(super) fn mailbox_id(id: MailboxId, uid_validity: u32) -> String {
    format!("F{}-{uid_validity}", id.0)
}

/// The EMAILID of a message whose bytes have this hash.
pub(super) fn email_id(content_hash: &str) -> String {
    format!("M{content_hash}")
}

/// The content hash an EMAILID names, if it is one of ours.
fn content_hash(email_id: &str) -> Option<&str> {
    email_id.strip_prefix('M').filter(|h| !h.is_empty())
}

/// The first second of a day, in UTC (as BEFORE, ON and SINCE take it).
fn day_start(d: Date) -> Timestamp {
    timestamp(&DateTime {
        year: d.year,
        month: d.month,
        day: d.day,
        hour: 0,
        minute: 0,
        second: 0,
        zone_minutes: 0,
    })
}

/// A SEARCH key the store answers with the UIDs that match it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lookup {
    /// Messages with these bytes (EMAILID).
    Content(String),
    /// Messages saved at or after the first time and before the second.
    Saved(Timestamp, Timestamp),
}

/// What the store must be asked for `key`, if anything; an EMAILID that
/// is not one of ours needs no question (nothing has it).
fn lookup_of(key: &SearchKey) -> Option<Lookup> {
    const DAY: i64 = 86_400;
    Some(match key {
        SearchKey::EmailId(id) => Lookup::Content(content_hash(id)?.to_owned()),
        SearchKey::SavedBefore(d) => Lookup::Saved(i64::MIN, day_start(*d)),
        SearchKey::SavedOn(d) => Lookup::Saved(day_start(*d), day_start(*d) + DAY),
        SearchKey::SavedSince(d) => Lookup::Saved(day_start(*d), i64::MAX),
        _ => return None,
    })
}

/// Every lookup a search needs, anywhere in its keys.
fn lookups(keys: &[SearchKey], out: &mut Vec<Lookup>) {
    for key in keys {
        match key {
            SearchKey::Not(k) => lookups(std::slice::from_ref(k), out),
            SearchKey::Or(a, b) => {
                lookups(std::slice::from_ref(a), out);
                lookups(std::slice::from_ref(b), out);
            }
            SearchKey::And(list) => lookups(list, out),
            k => out.extend(lookup_of(k)),
        }
    }
}

/// `key` with each key the store answered as the UIDs that match it
/// (`found`), and THREADID, which names no message here, as a key nothing
/// matches.
fn resolve(key: SearchKey, found: &HashMap<Lookup, Option<SequenceSet>>) -> SearchKey {
    let nothing = || SearchKey::Not(Box::new(SearchKey::All));
    match key {
        SearchKey::Not(k) => SearchKey::Not(Box::new(resolve(*k, found))),
        SearchKey::Or(a, b) => {
            SearchKey::Or(Box::new(resolve(*a, found)), Box::new(resolve(*b, found)))
        }
        SearchKey::And(list) => {
            SearchKey::And(list.into_iter().map(|k| resolve(k, found)).collect())
        }
        SearchKey::ThreadId(_) => nothing(),
        k @ (SearchKey::EmailId(_)
        | SearchKey::SavedBefore(_)
        | SearchKey::SavedOn(_)
        | SearchKey::SavedSince(_)) => {
            match lookup_of(&k).and_then(|l| found.get(&l).cloned().flatten()) {
                Some(set) => SearchKey::Uid(set),
                None => nothing(),
            }
        }
        other => other,
    }
}

impl Session {
    /// SEARCH keys with EMAILID, THREADID and the SAVED* keys made UID
    /// sets of the selected mailbox.
    pub(super) async fn resolve_stored_keys(
        &mut self,
        account: AccountId,
        mailbox: MailboxRef,
        criteria: Vec<SearchKey>,
    ) -> Result<Vec<SearchKey>, StoreError> {
        let mut needed = Vec::new();
        lookups(&criteria, &mut needed);
        let mut found = HashMap::new();
        let store = self.ctx.shared.store.clone();
        for lookup in needed {
            if found.contains_key(&lookup) {
                continue;
            }
            let uids = match &lookup {
                Lookup::Content(hash) => store.uids_with_content(account, mailbox, hash).await?,
                Lookup::Saved(since, before) => {
                    store
                        .uids_saved_between(account, mailbox, *since, *before)
                        .await?
                }
            };
            found.insert(lookup, uid_set(&uids));
        }
        Ok(criteria.into_iter().map(|k| resolve(k, &found)).collect())
    }

    /// CREATE's OK, with the new mailbox's MAILBOXID.
    pub(super) async fn created(&mut self, tag: &Tag, account: AccountId, name: &str) {
        let store = self.ctx.shared.store.clone();
        let code = match store.mailboxes(account).await {
            Ok(all) => all
                .iter()
                .find(|m| m.name == name)
                .map(|m| Code::MailboxId(mailbox_id(m.id, m.uid_validity))),
            Err(_) => None,
        };
        self.tagged(tag, Status::Ok, code, "CREATE completed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_ids_name_content_hashes() {
        assert_eq!(email_id("ab12"), "Mab12");
        assert_eq!(content_hash(&email_id("ab12")), Some("ab12"));
        assert_eq!(content_hash("M"), None);
        assert_eq!(content_hash("Xab"), None);
        assert_eq!(mailbox_id(MailboxId(7), 1234), "F7-1234");
    }

    #[test]
    fn search_keys_resolved_everywhere() {
        let set = SequenceSet::parse(b"3", 10).unwrap();
        let day = Date {
            year: 2026,
            month: 12,
            day: 3,
        };
        let on = Lookup::Saved(day_start(day), day_start(day) + 86_400);
        let found = HashMap::from([
            (Lookup::Content("a".into()), Some(set.clone())),
            (Lookup::Content("b".into()), None),
            (on.clone(), Some(set.clone())),
        ]);
        let key = SearchKey::Or(
            Box::new(SearchKey::EmailId("Ma".into())),
            Box::new(SearchKey::Not(Box::new(SearchKey::And(vec![
                SearchKey::EmailId("Mb".into()),
                SearchKey::ThreadId("T1".into()),
                SearchKey::SavedOn(day),
                SearchKey::EmailId("X".into()),
                SearchKey::Seen,
            ])))),
        );
        let mut needed = Vec::new();
        lookups(std::slice::from_ref(&key), &mut needed);
        assert_eq!(
            needed,
            vec![Lookup::Content("a".into()), Lookup::Content("b".into()), on]
        );
        let nothing = SearchKey::Not(Box::new(SearchKey::All));
        assert_eq!(
            resolve(key, &found),
            SearchKey::Or(
                Box::new(SearchKey::Uid(set.clone())),
                Box::new(SearchKey::Not(Box::new(SearchKey::And(vec![
                    nothing.clone(),
                    nothing.clone(),
                    SearchKey::Uid(set),
                    nothing,
                    SearchKey::Seen,
                ])))),
            )
        );
        // 2026-12-03T00:00:00Z
        assert_eq!(day_start(day), 1_796_256_000);
    }
}
