//! SORT and UID SORT (RFC 5256) with every key of RFC 5256 and RFC 5957's
//! DISPLAYFROM and DISPLAYTO, and ESORT (`SORT RETURN (…)`, RFC 5267).
//!
//! The messages are those SEARCH would find; what they are sorted by is
//! read from the store's envelope summaries (decoded subject and
//! addresses, the `Date:` field, kept at delivery; a cached read), in
//! batches. Strings compare under i;unicode-casemap (I18NLEVEL=1): folded
//! by [`casemap`], then by code point. Messages that compare equal on
//! every key keep their mailbox order (RFC 5256 section 3).

use std::cmp::Ordering;

use store::{EmailAddress, HeaderAddress, MessageInfo, StoreError, Uid};
use tokio_util::task::AbortOnDropHandle;

use super::esearch::Found;
use super::search::Candidate;
use super::{End, Session, State};
use crate::protocol::base_subject::{base_subject, casemap};
use crate::protocol::{SearchKey, SearchReturn, SortField, SortKey, Tag};

/// Envelope summaries read per store call.
const ENVELOPE_BATCH: usize = 1024;
/// Batches read at once: enough to keep the store's readers busy while
/// this session makes the last one sortable, few enough that a large
/// mailbox's summaries are never all in memory together.
const BATCHES_IN_FLIGHT: usize = 3;

/// What SORT (and THREAD) know of one message.
#[derive(Debug, Clone)]
pub(super) struct Sortable {
    pub seq: u32,
    pub uid: Uid,
    pub modseq: u64,
    pub arrival: i64,
    /// The `Date:` field, or the internal date without one (RFC 5256
    /// section 2.2).
    pub sent: i64,
    pub size: u64,
    /// Base subject, folded.
    pub subject: String,
    pub is_reply_or_forward: bool,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub display_from: String,
    pub display_to: String,
    /// `<id>` as written, if any.
    pub message_id: Option<String>,
    /// The ids of `In-Reply-To:`, in order.
    pub in_reply_to: Vec<String>,
    /// The ids of `References:`, in order.
    pub references: Vec<String>,
}

/// The `<…>` message ids in a field's text, in order.
pub(super) fn message_ids(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let id = &rest[open..open + close + 1];
        if id.len() > 2 && !id[1..id.len() - 1].contains(['<', ' ']) {
            out.push(id.to_owned());
        }
        rest = &rest[open + close + 1..];
    }
    out
}

/// The first address of a field: display name (or a group's name) and
/// address as far as it has them. From the decoded list; a field the
/// decoder found no address in (`From: d`, an address without a domain)
/// from the field as written.
fn first_address(decoded: &[EmailAddress], written: Option<&[HeaderAddress]>) -> EmailAddress {
    if let Some(first) = decoded.first() {
        return first.clone();
    }
    let text = |t: &Option<store::RawText>| {
        t.as_ref()
            .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned())
    };
    match written.and_then(|w| w.first()) {
        Some(HeaderAddress::Mailbox {
            name,
            local_part,
            domain,
            ..
        }) => EmailAddress {
            name: text(name),
            address: match (text(local_part), text(domain)) {
                (Some(l), Some(d)) => Some(format!("{l}@{d}")),
                (l, _) => l,
            },
        },
        Some(HeaderAddress::GroupStart { name }) => EmailAddress {
            name: text(&Some(name.clone())),
            address: None,
        },
        _ => EmailAddress::default(),
    }
}

/// RFC 5256's address key: the first address's local part, folded. A
/// group's name stands for its local part (as in IMAP's ENVELOPE, where a
/// group starts with its name as the mailbox), as Dovecot sorts it.
fn mailbox_key(first: &EmailAddress) -> String {
    match first {
        EmailAddress {
            address: Some(a), ..
        } => casemap(a.rsplit_once('@').map_or(a.as_str(), |(local, _)| local)),
        EmailAddress {
            name: Some(group), ..
        } => casemap(group),
        _ => String::new(),
    }
}

/// RFC 5957's display key: the first address's display name, or its
/// address without one (a group: its name), folded.
fn display_key(first: &EmailAddress) -> String {
    match (
        first.name.as_deref().map(str::trim),
        first.address.as_deref(),
    ) {
        (Some(n), _) if !n.is_empty() => casemap(n),
        (_, Some(a)) => casemap(a),
        _ => String::new(),
    }
}

/// Which of a message's string keys a command compares; the others are
/// left empty (a SORT by date folds no subject and no address, which on a
/// large mailbox is most of its work).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Needs {
    subject: bool,
    from: bool,
    to: bool,
    cc: bool,
    display_from: bool,
    display_to: bool,
    /// Message-ID, In-Reply-To and References.
    ids: bool,
}

impl Needs {
    /// What SORT by `keys` compares.
    pub(super) fn sort(keys: &[SortKey]) -> Needs {
        let mut needs = Needs::default();
        for key in keys {
            match key.field {
                SortField::Subject => needs.subject = true,
                SortField::From => needs.from = true,
                SortField::To => needs.to = true,
                SortField::Cc => needs.cc = true,
                SortField::DisplayFrom => needs.display_from = true,
                SortField::DisplayTo => needs.display_to = true,
                SortField::Arrival | SortField::Date | SortField::Size => {}
            }
        }
        needs
    }

    /// What THREAD compares: subjects and message ids.
    pub(super) const THREAD: Needs = Needs {
        subject: true,
        from: false,
        to: false,
        cc: false,
        display_from: false,
        display_to: false,
        ids: true,
    };
}

impl Sortable {
    fn of(seq: u32, modseq: u64, m: &MessageInfo, needs: Needs) -> Sortable {
        let s = &m.summary;
        let base = needs
            .subject
            .then(|| base_subject(s.subject.as_deref().unwrap_or("")));
        let written = s.addresses.as_deref();
        let from = (needs.from || needs.display_from)
            .then(|| first_address(&s.from, written.map(|w| w.from.as_slice())));
        let to = (needs.to || needs.display_to)
            .then(|| first_address(&s.to, written.map(|w| w.to.as_slice())));
        let cc = needs
            .cc
            .then(|| first_address(&s.cc, written.map(|w| w.cc.as_slice())));
        let key =
            |address: &Option<EmailAddress>, wanted: bool, make: fn(&EmailAddress) -> String| {
                address
                    .as_ref()
                    .filter(|_| wanted)
                    .map(make)
                    .unwrap_or_default()
            };
        let ids = |text: &Option<String>| {
            text.as_deref()
                .filter(|_| needs.ids)
                .map(message_ids)
                .unwrap_or_default()
        };
        Sortable {
            seq,
            modseq,
            uid: m.uid,
            arrival: m.internal_date,
            sent: s.date.unwrap_or(m.internal_date),
            size: m.size,
            is_reply_or_forward: base.as_ref().is_some_and(|b| b.is_reply_or_forward),
            subject: base.map(|b| b.text).unwrap_or_default(),
            from: key(&from, needs.from, mailbox_key),
            to: key(&to, needs.to, mailbox_key),
            cc: key(&cc, needs.cc, mailbox_key),
            display_from: key(&from, needs.display_from, display_key),
            display_to: key(&to, needs.display_to, display_key),
            message_id: s.message_id.clone().filter(|_| needs.ids),
            in_reply_to: ids(&s.in_reply_to),
            references: ids(&s.references),
        }
    }
}

fn compare(a: &Sortable, b: &Sortable, keys: &[SortKey]) -> Ordering {
    for key in keys {
        let o = match key.field {
            SortField::Arrival => a.arrival.cmp(&b.arrival),
            SortField::Date => a.sent.cmp(&b.sent),
            SortField::Size => a.size.cmp(&b.size),
            SortField::Subject => a.subject.cmp(&b.subject),
            SortField::From => a.from.cmp(&b.from),
            SortField::To => a.to.cmp(&b.to),
            SortField::Cc => a.cc.cmp(&b.cc),
            SortField::DisplayFrom => a.display_from.cmp(&b.display_from),
            SortField::DisplayTo => a.display_to.cmp(&b.display_to),
        };
        let o = if key.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.seq.cmp(&b.seq)
}

/// Sorts `messages` by `keys`, ties in mailbox order.
pub(super) fn sort_messages(messages: &mut [Sortable], keys: &[SortKey]) {
    messages.sort_by(|a, b| compare(a, b, keys));
}

/// The charsets SORT and THREAD accept (the strings they compare are
/// already Unicode).
pub(super) fn known_charset(charset: &str) -> bool {
    ["UTF-8", "US-ASCII"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(charset))
}

impl Session {
    /// What SORT and THREAD compare of the messages matching `criteria`,
    /// in mailbox order; `None` when the command was answered already.
    pub(super) async fn sortable_matches(
        &mut self,
        tag: &Tag,
        charset: &str,
        criteria: Vec<SearchKey>,
        needs: Needs,
    ) -> Result<Option<Vec<Sortable>>, End> {
        if !known_charset(charset) {
            self.unknown_charset(tag);
            return Ok(None);
        }
        match self.find_sortables(criteria, needs).await? {
            Ok(list) => Ok(Some(list)),
            Err(e) => {
                self.store_failed(tag, e, "sort the mailbox");
                Ok(None)
            }
        }
    }

    /// What SORT and THREAD compare of the messages matching `criteria`,
    /// in mailbox order.
    pub(super) async fn find_sortables(
        &mut self,
        criteria: Vec<SearchKey>,
        needs: Needs,
    ) -> Result<Result<Vec<Sortable>, StoreError>, End> {
        let matched = match self.find_matches(criteria).await? {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        let (account, mailbox) = match &self.state {
            State::Selected(a, s) => (a.id, s.mailbox),
            _ => return Ok(Ok(Vec::new())),
        };
        let store = self.ctx.shared.store.clone();
        let reading = async move {
            // A few batches are read at once (the store has several
            // reader connections) and made sortable in order, the next
            // one asked for as each is taken; a client that leaves drops
            // the handles, which stops them.
            let read = |batch: &[Candidate]| {
                let (store, mailbox) = (store.clone(), mailbox.to_owned());
                let uids: Vec<Uid> = batch.iter().map(|c| c.entry.uid).collect();
                AbortOnDropHandle::new(tokio::spawn(async move {
                    store.envelopes(account, &mailbox, &uids).await
                }))
            };
            let mut to_read = matched.chunks(ENVELOPE_BATCH);
            let mut reading: std::collections::VecDeque<_> =
                to_read.by_ref().take(BATCHES_IN_FLIGHT).map(read).collect();
            let mut out = Vec::with_capacity(matched.len());
            for batch in matched.chunks(ENVELOPE_BATCH) {
                let Some(next) = reading.pop_front() else {
                    break;
                };
                reading.extend(to_read.next().map(read));
                let infos = next
                    .await
                    .map_err(|e| StoreError::Database(format!("sort task failed: {e}")))??;
                out.extend(sortables(batch, &infos, needs));
            }
            Ok::<_, StoreError>(out)
        };
        self.io.until_gone(reading).await
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
        let Some(mut messages) = self
            .sortable_matches(tag, &charset, criteria, Needs::sort(&keys))
            .await?
        else {
            return Ok(());
        };
        sort_messages(&mut messages, &keys);
        match returns {
            Some(returns) => {
                let found = Found {
                    by_uid: uid,
                    sorted: true,
                    messages: messages.iter().map(|m| (m.seq, m.uid)).collect(),
                    modseqs: with_modseq.then(|| messages.iter().map(|m| m.modseq).collect()),
                };
                self.report_result(tag, &returns, &found);
                if let Some(criteria) = context {
                    let uids = messages.iter().map(|m| m.uid).collect();
                    self.start_update(tag, uid, criteria, Some(keys), uids);
                }
            }
            None => {
                let mut line = String::with_capacity(6 + messages.len() * 6);
                line.push_str("SORT");
                for m in &messages {
                    line.push(' ');
                    line.push_str(&(if uid { m.uid.0 } else { m.seq }).to_string());
                }
                // RFC 7162 3.1.5, as for SEARCH.
                if let Some(highest) = messages
                    .iter()
                    .map(|m| m.modseq)
                    .max()
                    .filter(|_| with_modseq)
                {
                    line.push_str(&format!(" (MODSEQ {highest})"));
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

/// The matched messages the store still has, with what sorts them.
fn sortables(batch: &[Candidate], infos: &[MessageInfo], needs: Needs) -> Vec<Sortable> {
    let mut infos = infos.iter().peekable();
    let mut out = Vec::with_capacity(batch.len());
    for c in batch {
        while infos.next_if(|i| i.uid < c.entry.uid).is_some() {}
        if let Some(info) = infos.next_if(|i| i.uid == c.entry.uid) {
            out.push(Sortable::of(c.seq, c.entry.modseq.0, info, needs));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u32, subject: &str, sent: i64, from: &str) -> Sortable {
        let base = base_subject(subject);
        Sortable {
            seq,
            uid: Uid(seq * 10),
            modseq: 0,
            arrival: i64::from(seq),
            sent,
            size: u64::from(100 - seq),
            subject: base.text,
            is_reply_or_forward: base.is_reply_or_forward,
            from: from.to_owned(),
            to: String::new(),
            cc: String::new(),
            display_from: String::new(),
            display_to: String::new(),
            message_id: None,
            in_reply_to: Vec::new(),
            references: Vec::new(),
        }
    }

    fn order(messages: &[Sortable], keys: &[SortKey]) -> Vec<u32> {
        let mut m = messages.to_vec();
        sort_messages(&mut m, keys);
        m.iter().map(|m| m.seq).collect()
    }

    fn key(field: SortField, reverse: bool) -> SortKey {
        SortKey { reverse, field }
    }

    #[test]
    fn keys_reverse_and_ties() {
        let m = [
            message(1, "Re: Über", 300, "zed"),
            message(2, "über", 100, "amy"),
            message(3, "apple", 200, "amy"),
            message(4, "[list] Zebra", 100, "bob"),
        ];
        assert_eq!(order(&m, &[key(SortField::Subject, false)]), [3, 1, 2, 4]);
        assert_eq!(order(&m, &[key(SortField::Date, false)]), [2, 4, 3, 1]);
        assert_eq!(order(&m, &[key(SortField::Date, true)]), [1, 3, 2, 4]);
        assert_eq!(order(&m, &[key(SortField::Size, false)]), [4, 3, 2, 1]);
        assert_eq!(order(&m, &[key(SortField::Arrival, true)]), [4, 3, 2, 1]);
        assert_eq!(
            order(
                &m,
                &[key(SortField::From, false), key(SortField::Date, true)]
            ),
            [3, 2, 4, 1]
        );
    }

    #[test]
    fn address_keys() {
        let key = |raw: &str, to: bool| {
            let s = store::summarize(format!("{raw}\r\n\r\n").as_bytes());
            let w = s.addresses.as_deref();
            let first = if to {
                first_address(&s.to, w.map(|w| w.to.as_slice()))
            } else {
                first_address(&s.from, w.map(|w| w.from.as_slice()))
            };
            (mailbox_key(&first), display_key(&first))
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
        assert_eq!(
            message_ids("<a@x> junk <b@y>\r\n <c@z>"),
            ["<a@x>", "<b@y>", "<c@z>"]
        );
        assert_eq!(message_ids("<> <bro ken> <ok@x"), Vec::<String>::new());
    }
}
