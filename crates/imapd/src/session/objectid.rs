//! Object ids (OBJECTID, RFC 8474): MAILBOXID from the store's mailbox id
//! and UIDVALIDITY (kept across RENAME, never given to another mailbox),
//! EMAILID from the hash of the message's bytes (the same for every copy
//! of the same message, in any mailbox), THREADID NIL (no threads are
//! kept). CREATE answers `[MAILBOXID]`; SEARCH's EMAILID and THREADID keys
//! are made UID sets here before the search runs.

use std::collections::HashMap;

use store::{AccountId, MailboxId, MailboxRef, StoreError};

use super::Session;
use crate::protocol::encode::{Code, Status};
use crate::protocol::{SearchKey, SequenceSet, Tag};

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

/// Every EMAILID a search names, anywhere in its keys.
fn email_ids<'a>(keys: &'a [SearchKey], out: &mut Vec<&'a str>) {
    for key in keys {
        match key {
            SearchKey::EmailId(id) => out.push(id),
            SearchKey::Not(k) => email_ids(std::slice::from_ref(k), out),
            SearchKey::Or(a, b) => {
                email_ids(std::slice::from_ref(a), out);
                email_ids(std::slice::from_ref(b), out);
            }
            SearchKey::And(list) => email_ids(list, out),
            _ => {}
        }
    }
}

/// `key` with each EMAILID as the UIDs that have it (`found`), and each
/// THREADID, which names no message here, as a key nothing matches.
fn resolve(key: SearchKey, found: &HashMap<String, Option<SequenceSet>>) -> SearchKey {
    let nothing = || SearchKey::Not(Box::new(SearchKey::All));
    match key {
        SearchKey::EmailId(id) => match found.get(&id) {
            Some(Some(set)) => SearchKey::Uid(set.clone()),
            _ => nothing(),
        },
        SearchKey::ThreadId(_) => nothing(),
        SearchKey::Not(k) => SearchKey::Not(Box::new(resolve(*k, found))),
        SearchKey::Or(a, b) => {
            SearchKey::Or(Box::new(resolve(*a, found)), Box::new(resolve(*b, found)))
        }
        SearchKey::And(list) => {
            SearchKey::And(list.into_iter().map(|k| resolve(k, found)).collect())
        }
        other => other,
    }
}

impl Session {
    /// SEARCH keys with EMAILID and THREADID made UID sets of the selected
    /// mailbox.
    pub(super) async fn resolve_object_ids(
        &mut self,
        account: AccountId,
        mailbox: MailboxRef,
        criteria: Vec<SearchKey>,
    ) -> Result<Vec<SearchKey>, StoreError> {
        let mut ids = Vec::new();
        email_ids(&criteria, &mut ids);
        let mut found = HashMap::new();
        let store = self.ctx.shared.store.clone();
        for id in ids {
            let uids = match content_hash(id) {
                Some(hash) => store.uids_with_content(account, mailbox, hash).await?,
                None => Vec::new(),
            };
            found.insert(id.to_owned(), super::transfer::uid_set(&uids));
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
        let found = HashMap::from([("Ma".to_owned(), Some(set.clone())), ("Mb".into(), None)]);
        let key = SearchKey::Or(
            Box::new(SearchKey::EmailId("Ma".into())),
            Box::new(SearchKey::Not(Box::new(SearchKey::And(vec![
                SearchKey::EmailId("Mb".into()),
                SearchKey::ThreadId("T1".into()),
                SearchKey::Seen,
            ])))),
        );
        let mut ids = Vec::new();
        email_ids(std::slice::from_ref(&key), &mut ids);
        assert_eq!(ids, vec!["Ma", "Mb"]);
        let nothing = SearchKey::Not(Box::new(SearchKey::All));
        assert_eq!(
            resolve(key, &found),
            SearchKey::Or(
                Box::new(SearchKey::Uid(set)),
                Box::new(SearchKey::Not(Box::new(SearchKey::And(vec![
                    nothing.clone(),
                    nothing,
                    SearchKey::Seen,
                ])))),
            )
        );
    }
}
