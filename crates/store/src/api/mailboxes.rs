//! Mailboxes and their messages: listing, reading, flags, expunge,
//! append, copy and move, subscriptions, leases and the expunge
//! tombstones (QRESYNC).

use std::sync::Arc;
use std::time::Duration;

use super::{lock, now, Store};
use crate::parse;
use crate::sql::{feed, leases, mailbox, prune::expunged_since};
use crate::types::*;

impl Store {
    /// The account's mailboxes, INBOX first, then by name.
    pub async fn mailboxes(&self, account: AccountId) -> Result<Vec<MailboxInfo>> {
        self.inner
            .read(move |conn| mailbox::list_mailboxes(conn, account))
            .await
    }

    /// The account's mailboxes as [`Store::mailboxes`] lists them, their
    /// messages counted (MESSAGES, UNSEEN, recent) only where `count`
    /// says so and zero elsewhere, in one read: counting walks a
    /// mailbox's messages, and IMAP NOTIFY needs it only for mailboxes
    /// that changed (their UIDNEXT or HIGHESTMODSEQ moved).
    pub async fn mailboxes_counting(
        &self,
        account: AccountId,
        count: impl Fn(&MailboxInfo) -> bool + Send + 'static,
    ) -> Result<Vec<MailboxInfo>> {
        self.inner
            .read(move |conn| mailbox::list_mailboxes_counting(conn, account, &count))
            .await
    }

    /// The messages in a mailbox (by name; `inbox` in any case is INBOX), in
    /// UID order. `NotFound` if there is no such mailbox.
    pub async fn messages(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.into();
        self.inner
            .read(move |conn| mailbox::list_messages(conn, account, &mailbox))
            .await
    }

    /// The messages with these UIDs, as [`Store::messages`] lists them, in
    /// the order asked; UIDs not present are left out. What IMAP's FETCH
    /// reads instead of the whole mailbox.
    pub async fn messages_by_uid(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .read(move |conn| mailbox::messages_by_uid(conn, account, &mailbox, &uids))
            .await
    }

    /// As [`Store::messages_by_uid`], in UID order, but each summary holds
    /// only the envelope fields (date, subject, addresses, ids, and those
    /// as written): no MIME tree. Much cheaper over many messages.
    pub async fn envelopes(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<MessageInfo>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| mailbox::envelopes(conn, &cache, account, &mailbox, &uids))
            .await
    }

    /// What `each` makes of the messages with these UIDs, each as
    /// [`Store::envelopes`] gives it, in UID order (missing UIDs left
    /// out), made on the store's reader as each is read: only what `each`
    /// returns is kept, and the envelope cache is not filled. For a pass
    /// over a whole large mailbox that keeps a little of each message
    /// (IMAP SORT's index).
    pub async fn envelopes_each<T, F>(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
        each: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&MessageInfo) -> T + Send + 'static,
    {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| mailbox::envelopes_each(conn, &cache, account, &mailbox, &uids, each))
            .await
    }

    /// What SEARCH compares of the messages with these UIDs (subject,
    /// addresses, sent day, header length, internal date), in UID order;
    /// missing UIDs left out. Made once per blob and kept within
    /// [`crate::StoreOptions::search_fields_cache_bytes`], a few hundred
    /// bytes each: a repeated SEARCH of a large mailbox reads no summary.
    pub async fn search_infos(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<crate::SearchInfo>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        let cache = self.search_fields_cache.clone();
        self.inner
            .read(move |conn| mailbox::search_infos(conn, &cache, account, &mailbox, &uids))
            .await
    }

    /// The raw bytes of one message, byte-exact as received.
    pub async fn message_raw(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uid: Uid,
    ) -> Result<Option<Vec<u8>>> {
        let mailbox = mailbox.into();
        self.inner
            .read(move |conn| mailbox::message_raw(conn, account, &mailbox, uid))
            .await
    }

    /// The mailbox's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and every
    /// message's UID, size, modseq and flags, read in one snapshot.
    /// `NotFound` if there is no such mailbox.
    ///
    /// Shared: an unchanged mailbox's index is read once and handed to every
    /// session that asks (a 50,000-message SELECT then costs one small
    /// query).
    pub async fn mailbox_index(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
    ) -> Result<Arc<MailboxIndex>> {
        let key = mailbox.into();
        let cache = self.index_cache.clone();
        self.inner
            .read(move |conn| {
                let stamp = mailbox::index_stamp(conn, account, &key)?;
                if let Some(hit) = lock(&cache).get(&stamp.0) {
                    let same = (
                        hit.mailbox,
                        hit.uid_validity,
                        hit.highest_modseq,
                        hit.uid_next,
                        hit.recent_uid,
                    ) == stamp;
                    if same {
                        return Ok(hit.clone());
                    }
                }
                let index = Arc::new(mailbox::mailbox_index(conn, account, &key)?);
                let bytes = crate::kept::index_bytes(&index);
                lock(&cache).insert(index.mailbox, index.clone(), bytes);
                Ok(index)
            })
            .await
    }

    /// Changes flags of the messages with these UIDs (UIDs not present are
    /// skipped). Flags are IMAP system flags (`\Seen`, `\Answered`,
    /// `\Flagged`, `\Deleted`, `\Draft`; case-insensitive) or keywords
    /// (atoms; `Invalid` otherwise; `\Recent` is refused). Every message
    /// whose flags actually change gets a new modseq (the mailbox's
    /// HIGHESTMODSEQ + 1, in UID order) and a `flags` row in the change feed;
    /// returns those messages' UIDs with their new modseq and flags.
    pub async fn store_flags(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
        change: FlagChange,
        flags: &[String],
    ) -> Result<Vec<(Uid, ModSeq, Vec<String>)>> {
        self.store_flags_unchanged_since(account, mailbox, uids, change, flags, None)
            .await
            .map(|stored| stored.changed)
    }

    /// [`Store::store_flags`], with RFC 7162's UNCHANGEDSINCE when
    /// `unchanged_since` is given: only on the messages whose modseq is
    /// still at or below it, compared in the same write transaction as the
    /// change; the others are left as they are and come back in
    /// [`ConditionalStore::modified`].
    pub async fn store_flags_unchanged_since(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
        change: FlagChange,
        flags: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Result<ConditionalStore> {
        let flags = mailbox::parse_flags(flags)?;
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .write_change(true, move |conn| {
                mailbox::store_flags(
                    conn,
                    account,
                    &mailbox,
                    &uids,
                    change,
                    &flags,
                    unchanged_since,
                )
            })
            .await
    }

    /// Removes the messages with these UIDs from the mailbox (UIDs not
    /// present are skipped): each leaves a tombstone and an `expunge` row in
    /// the change feed with a new modseq, and releases its blob reference.
    /// Returns the UIDs actually removed, in order.
    pub async fn expunge(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<Uid>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .write_change(true, move |conn| {
                mailbox::expunge(conn, account, &mailbox, &uids)
            })
            .await
    }

    /// Creates a mailbox (IMAP CREATE): unsubscribed, with any missing
    /// level above it. `AlreadyExists` if it exists; `Invalid` for an empty
    /// level, a control character or a LIST wildcard in the name.
    pub async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.inner
            .write(true, move |conn| {
                mailbox::create_user_mailbox(conn, account, &name).map(|_| ())
            })
            .await
    }

    /// Creates a mailbox as [`Store::create_mailbox`] does, with an RFC
    /// 6154 special use (IMAP CREATE-SPECIAL-USE): one of
    /// [`CREATABLE_SPECIAL_USES`], else `Invalid`.
    pub async fn create_special_use_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: &str,
    ) -> Result<()> {
        let Some(special_use) = CREATABLE_SPECIAL_USES
            .iter()
            .find(|u| u.eq_ignore_ascii_case(special_use))
        else {
            return Err(crate::StoreError::Invalid(format!(
                "special use {special_use}"
            )));
        };
        let name = name.to_owned();
        self.inner
            .write(true, move |conn| {
                mailbox::create_special_use_mailbox(conn, account, &name, special_use).map(|_| ())
            })
            .await
    }

    /// Gives a mailbox an RFC 6154 special use (one of
    /// [`CREATABLE_SPECIAL_USES`], else `Invalid`), or with `None` takes
    /// it away. `NotFound` if there is no such mailbox.
    pub async fn set_special_use(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<()> {
        let special_use = match special_use {
            None => None,
            Some(asked) => Some(
                *CREATABLE_SPECIAL_USES
                    .iter()
                    .find(|u| u.eq_ignore_ascii_case(asked))
                    .ok_or_else(|| crate::StoreError::Invalid(format!("special use {asked}")))?,
            ),
        };
        let name = name.to_owned();
        self.inner
            .write(true, move |conn| {
                mailbox::set_special_use(conn, account, &name, special_use)
            })
            .await
    }

    /// Deletes a mailbox and its messages. `Invalid` for INBOX or a mailbox
    /// with levels below it.
    pub async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.inner
            .write(true, move |conn| {
                mailbox::delete_mailbox(conn, account, &name)
            })
            .await
    }

    /// Renames a mailbox with the levels below it. Renaming INBOX moves its
    /// messages to the new mailbox and leaves INBOX, empty, in place.
    pub async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.inner
            .write(true, move |conn| {
                mailbox::rename_mailbox(conn, account, &from, &to)
            })
            .await
    }

    /// Subscribes to, or unsubscribes from, a mailbox name; it need not
    /// exist, and a subscription outlives its mailbox (RFC 3501 6.3.6).
    pub async fn set_subscribed(
        &self,
        account: AccountId,
        name: &str,
        subscribed: bool,
    ) -> Result<()> {
        let name = name.to_owned();
        // Announced: IMAP NOTIFY sessions watch subscriptions.
        self.inner
            .write_change(true, move |conn| {
                mailbox::subscribe(conn, account, &name, subscribed)
            })
            .await
    }

    /// The account's subscribed mailbox names, sorted; some may not exist.
    pub async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.inner
            .read(move |conn| mailbox::subscriptions(conn, account))
            .await
    }

    /// Appends a message a client supplies (IMAP APPEND), parsed once here,
    /// with these flags (as [`Store::store_flags`] takes them) and internal
    /// date. Returns the mailbox's UIDVALIDITY and the message's UID.
    pub async fn append(
        &self,
        account: AccountId,
        mailbox: &str,
        raw: Vec<u8>,
        flags: &[String],
        internal_date: Timestamp,
    ) -> Result<(u32, Uid)> {
        let message = NewMessage {
            raw,
            flags: flags.to_vec(),
            internal_date,
        };
        let (validity, uids) = self
            .append_messages(account, mailbox, vec![message])
            .await?;
        let uid = uids
            .first()
            .copied()
            .ok_or_else(|| StoreError::Database("append gave no UID".into()))?;
        Ok((validity, uid))
    }

    /// Appends several messages (IMAP MULTIAPPEND, RFC 3502) in one
    /// transaction: all of them, with consecutive UIDs in the order given,
    /// or none. Returns the mailbox's UIDVALIDITY and the new UIDs.
    pub async fn append_messages(
        &self,
        account: AccountId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> Result<(u32, Vec<Uid>)> {
        let parsed = parse_new_messages(messages).await?;
        let mailbox = mailbox.to_owned();
        self.inner
            .write(true, move |conn| {
                let mut uids = Vec::with_capacity(parsed.len());
                let mut validity = 0;
                for (raw, summary_json, flags, internal_date) in &parsed {
                    let (v, uid) = mailbox::append_raw(
                        conn,
                        account,
                        &mailbox,
                        raw,
                        summary_json,
                        flags,
                        *internal_date,
                    )?;
                    validity = v;
                    uids.push(uid);
                }
                Ok((validity, uids))
            })
            .await
    }

    /// IMAP REPLACE (RFC 8508): appends `message` to `mailbox` and
    /// expunges `old` from the mailbox `from` in one transaction, so that
    /// no session sees both or neither. Returns the UIDVALIDITY and UID of
    /// the new message; `NotFound` (and nothing changes) when `old` is no
    /// longer there.
    pub async fn replace_message(
        &self,
        account: AccountId,
        mailbox: &str,
        message: NewMessage,
        from: impl Into<MailboxKey>,
        old: Uid,
    ) -> Result<(u32, Uid)> {
        let mut parsed = parse_new_messages(vec![message]).await?;
        let (raw, summary_json, flags, internal_date) = parsed
            .pop()
            .ok_or_else(|| StoreError::Database("nothing to append".into()))?;
        let (mailbox, from) = (mailbox.to_owned(), from.into());
        self.inner
            .write(true, move |conn| {
                let gone = mailbox::expunge(conn, account, &from, &[old])?;
                if gone.is_empty() {
                    return Err(StoreError::NotFound(format!("message {}", old.0)));
                }
                mailbox::append_raw(
                    conn,
                    account,
                    &mailbox,
                    &raw,
                    &summary_json,
                    &flags,
                    internal_date,
                )
            })
            .await
    }

    /// The hash that names each message's raw bytes (the same for every
    /// copy of the same bytes, in any mailbox: IMAP's EMAILID, RFC 8474),
    /// for these UIDs in UID order; UIDs not present are left out.
    pub async fn content_hashes(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, String)>> {
        let (mailbox, uids) = (mailbox.into(), uids.to_vec());
        self.inner
            .read(move |conn| mailbox::content_hashes(conn, account, &mailbox, &uids))
            .await
    }

    /// The UIDs of the mailbox's messages whose raw bytes have this hash
    /// (as [`Store::content_hashes`] gives it), in order.
    pub async fn uids_with_content(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        hash: &str,
    ) -> Result<Vec<Uid>> {
        let (mailbox, hash) = (mailbox.into(), hash.to_owned());
        self.inner
            .read(move |conn| mailbox::uids_with_content(conn, account, &mailbox, &hash))
            .await
    }

    /// When each message with these UIDs was saved into the mailbox
    /// (delivered, appended, copied or moved there; IMAP's SAVEDATE, RFC
    /// 8514), in UID order; UIDs not present are left out. Messages saved
    /// before the store kept this give their internal date.
    pub async fn saved_dates(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Timestamp)>> {
        let (mailbox, uids) = (mailbox.into(), uids.to_vec());
        self.inner
            .read(move |conn| mailbox::saved_dates(conn, account, &mailbox, &uids))
            .await
    }

    /// The UIDs of the mailbox's messages saved at or after `since` and
    /// before `before` (as [`Store::saved_dates`] tells), in order.
    pub async fn uids_saved_between(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        since: Timestamp,
        before: Timestamp,
    ) -> Result<Vec<Uid>> {
        let mailbox = mailbox.into();
        self.inner
            .read(move |conn| mailbox::uids_saved_between(conn, account, &mailbox, since, before))
            .await
    }

    /// The sum of the sizes of the mailbox's messages, in octets (IMAP
    /// STATUS SIZE, RFC 8438). `NotFound` if there is no such mailbox.
    pub async fn mailbox_size(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
    ) -> Result<u64> {
        let mailbox = mailbox.into();
        self.inner
            .read(move |conn| mailbox::mailbox_size(conn, account, &mailbox))
            .await
    }

    /// Copies messages (UIDs not present are skipped) to the end of another
    /// mailbox, or the same one, with their flags and internal dates.
    /// Returns the destination's UIDVALIDITY and (source, new) UID pairs.
    pub async fn copy_messages(
        &self,
        account: AccountId,
        from: impl Into<MailboxKey>,
        uids: &[Uid],
        to: &str,
    ) -> Result<(u32, Vec<(Uid, Uid)>)> {
        let (from, to, uids) = (from.into(), to.to_owned(), uids.to_vec());
        self.inner
            .write(true, move |conn| {
                mailbox::copy_messages(conn, account, &from, &uids, &to)
            })
            .await
    }

    /// [`Store::copy_messages`] and expunging the originals, in one
    /// transaction.
    pub async fn move_messages(
        &self,
        account: AccountId,
        from: impl Into<MailboxKey>,
        uids: &[Uid],
        to: &str,
    ) -> Result<(u32, Vec<(Uid, Uid)>)> {
        let (from, to, uids) = (from.into(), to.to_owned(), uids.to_vec());
        self.inner
            .write_change(true, move |conn| {
                mailbox::move_messages(conn, account, &from, &uids, &to)
            })
            .await
    }

    /// Claims the messages that arrived since any IMAP session last
    /// claimed them: returns the first UID that is `\Recent` for the
    /// caller (all UIDs from it on, up to UIDNEXT now); no other caller
    /// gets them.
    pub async fn claim_recent(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
    ) -> Result<Uid> {
        let mailbox = mailbox.into();
        self.inner
            .write_change(false, move |conn| {
                mailbox::claim_recent(conn, account, &mailbox)
            })
            .await
    }

    /// Takes, or renews, the lease on the resource `name` for one session
    /// of one process, until `ttl` from now. `Ok(true)` if that session
    /// holds it afterwards: it was free, its lease had run out, or it was
    /// already this `process`'s (the caller keeps its own sessions apart; a
    /// lease left by one of its ended sessions is taken over). Leases are
    /// seen by every process on the data dir; one whose holder died runs out
    /// by itself. `process` should be unique per running process.
    pub async fn acquire_lease(
        &self,
        name: &str,
        process: &str,
        session: u64,
        ttl: Duration,
    ) -> Result<bool> {
        let (name, process) = (name.to_owned(), process.to_owned());
        let session =
            i64::try_from(session).map_err(|_| StoreError::Invalid("lease session".into()))?;
        let expires_at =
            now().saturating_add(i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX));
        self.inner
            .write_change(false, move |conn| {
                leases::acquire(conn, &name, &process, session, now(), expires_at)
            })
            .await
    }

    /// Gives up one session's lease on `name` (nothing if it no longer
    /// holds it).
    pub async fn release_lease(&self, name: &str, process: &str, session: u64) -> Result<()> {
        let (name, process) = (name.to_owned(), process.to_owned());
        let session =
            i64::try_from(session).map_err(|_| StoreError::Invalid("lease session".into()))?;
        self.inner
            .write_change(false, move |conn| {
                leases::release(conn, &name, &process, session)
            })
            .await
    }

    /// The raw bytes of several messages of one mailbox in one read (POP3's
    /// read-ahead). UIDs not present are left out; the rest come in the
    /// order asked.
    pub async fn messages_raw(
        &self,
        account: AccountId,
        mailbox: impl Into<MailboxKey>,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Vec<u8>)>> {
        let mailbox = mailbox.into();
        let uids = uids.to_vec();
        self.inner
            .read(move |conn| mailbox::messages_raw(conn, account, &mailbox, &uids))
            .await
    }

    /// The UIDs expunged from the mailbox after `since` (RFC 7162's
    /// VANISHED), as far as the tombstones still tell: `Pruned` when `since`
    /// is older than what pruning kept. `NotFound` if there is no such
    /// mailbox.
    pub async fn expunged_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<ExpungedSince> {
        self.inner
            .read(move |conn| expunged_since(conn, mailbox, since))
            .await
    }
}

/// A message parsed for [`Store::append_messages`]: raw bytes, summary as
/// JSON, flags, internal date.
type ParsedMessage = (Vec<u8>, String, mailbox::FlagSet, Timestamp);

/// Checks the flags and parses each message once, off the async threads.
async fn parse_new_messages(messages: Vec<NewMessage>) -> Result<Vec<ParsedMessage>> {
    let mut checked = Vec::with_capacity(messages.len());
    for m in messages {
        let flags = mailbox::parse_flags(&m.flags)?;
        checked.push((m.raw, flags, m.internal_date));
    }
    tokio::task::spawn_blocking(move || {
        checked
            .into_iter()
            .map(|(raw, flags, date)| {
                serde_json::to_string(&parse::summarize(&raw))
                    .map(|json| (raw, json, flags, date))
                    .map_err(|e| StoreError::Database(format!("summary encoding: {e}")))
            })
            .collect()
    })
    .await
    .map_err(|e| StoreError::Database(format!("parse task: {e}")))?
}

impl Store {
    /// What changed in the mailbox after `since`: the UIDs expunged, and the
    /// messages appended or with flags changed (as they are now), with the
    /// mailbox's UIDNEXT, HIGHESTMODSEQ and first unclaimed `\Recent` UID.
    /// `Pruned` when `since` is older than what pruning kept of the feed.
    /// `MailboxGone` if the mailbox was deleted (also when another took
    /// its name since).
    pub async fn changes_since(
        &self,
        account: AccountId,
        mailbox: MailboxRef,
        since: ModSeq,
    ) -> Result<MailboxChanges> {
        self.inner
            .read(move |conn| feed::changes_since(conn, account, mailbox, since))
            .await
    }
}
