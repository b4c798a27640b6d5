//! SORT's and THREAD's index: per mailbox, what they compare of each
//! message, made once from the store's envelope summary and kept, so that
//! a SORT or THREAD of a mailbox seen before reads nothing from the store
//! and compares integers.
//!
//! Each message's record holds its dates and, for every string key (base
//! subject, the address keys, message ids), a number into one of the
//! mailbox's string tables, where each distinct string is kept once. What
//! a message's keys are never changes (a UID is never reused within one
//! UIDVALIDITY), so a record, once made, is right for as long as the
//! message is there: flag changes leave it as it is, new mail adds
//! records, and the records of expunged messages are simply not asked
//! for (and dropped with the whole index once they are half of it).
//!
//! Strings are compared as i;unicode-casemap wants (folded when the
//! record is made, then by code point): each table knows each string's
//! place in that order (worked out when first asked for after it grew),
//! so the sort compares those places. Equal strings share one number, so
//! THREAD groups by subject and matches message ids by number.
//!
//! The indexes of all mailboxes together are charged what they hold and
//! kept within `[imap] sort_cache_mb` ([`SortIndexes`]); the least
//! recently used go first, and one bigger than all of it serves the
//! command that made it and is then let go (the next SORT makes it again).

use std::collections::hash_map::Entry;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::{Arc, Mutex, MutexGuard};

use store::{EmailAddress, HeaderAddress, MailboxRef, MessageInfo, Uid};

use crate::protocol::base_subject::{base_subject, casemap};

/// No string: a message without a Message-ID.
const NONE: u32 = u32::MAX;

/// Bit of [`Record::refs_len`] that says the subject had a reply or
/// forward marker.
const REPLY: u32 = 1 << 31;

/// A table (or the reference list) would pass what its 32-bit positions
/// can say: the index is not made, and the command fails.
#[derive(Debug, Clone, Copy)]
pub(super) struct TooLarge;

/// Distinct strings, each kept once and known by a number (in the order
/// they came). The empty string is always there, as number 0, and so has
/// the lowest place in the order.
pub(super) struct Strings {
    /// Every string, one after another.
    text: String,
    /// Each string's start and length in `text`, by number.
    spans: Vec<(u32, u32)>,
    /// The number of each string by its hash; a string whose hash another
    /// had first is in `collided`. Only needed to add strings: let go
    /// ([`Strings::seal`]) once a fill is done, made again for the next.
    by_hash: HashMap<u64, u32>,
    collided: HashMap<Box<str>, u32>,
    sealed: bool,
    hasher: RandomState,
    /// Every string hashes alike (to test the collision path).
    #[cfg(test)]
    collide: bool,
    /// Each string's place in code point order, by number; worked out
    /// when asked for, dropped when a string is added.
    places: Option<Vec<u32>>,
}

impl Default for Strings {
    fn default() -> Self {
        let mut strings = Strings {
            text: String::new(),
            spans: Vec::new(),
            by_hash: HashMap::new(),
            collided: HashMap::new(),
            sealed: false,
            hasher: RandomState::new(),
            #[cfg(test)]
            collide: false,
            places: None,
        };
        let empty = strings.intern("").ok();
        debug_assert_eq!(empty, Some(0));
        strings
    }
}

impl Strings {
    /// The string numbered `n`.
    pub(super) fn get(&self, n: u32) -> &str {
        let (start, len) = self.spans[n as usize];
        &self.text[start as usize..(start + len) as usize]
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    fn hash(&self, s: &str) -> u64 {
        let hash = self.hasher.hash_one(s);
        #[cfg(test)]
        let hash = if self.collide { 0 } else { hash };
        hash
    }

    /// Lets go of what finds a string's number (about as much again as
    /// the strings, for short ones) until the next string is added.
    pub(super) fn seal(&mut self) {
        self.by_hash = HashMap::new();
        self.collided = HashMap::new();
        self.sealed = true;
    }

    /// Makes again what [`Strings::seal`] let go: the same numbers, the
    /// first of strings with one hash in `by_hash` as before.
    fn unseal(&mut self) {
        if !self.sealed {
            return;
        }
        let mut by_hash = HashMap::with_capacity(self.spans.len());
        let mut collided = HashMap::new();
        for n in 0..self.spans.len() as u32 {
            let s = self.get(n);
            match by_hash.entry(self.hash(s)) {
                Entry::Occupied(_) => {
                    collided.insert(s.into(), n);
                }
                Entry::Vacant(slot) => {
                    slot.insert(n);
                }
            }
        }
        (self.by_hash, self.collided, self.sealed) = (by_hash, collided, false);
    }

    /// The number of `s`, added if new.
    pub(super) fn intern(&mut self, s: &str) -> Result<u32, TooLarge> {
        self.unseal();
        let hash = self.hash(s);
        match self.by_hash.get(&hash) {
            Some(&n) if self.get(n) == s => return Ok(n),
            Some(_) => {
                if let Some(&n) = self.collided.get(s) {
                    return Ok(n);
                }
            }
            None => {}
        }
        let start = u32::try_from(self.text.len()).map_err(|_| TooLarge)?;
        let len = u32::try_from(s.len()).map_err(|_| TooLarge)?;
        start.checked_add(len).ok_or(TooLarge)?;
        let n = u32::try_from(self.spans.len())
            .ok()
            .filter(|&n| n < NONE)
            .ok_or(TooLarge)?;
        self.text.push_str(s);
        self.spans.push((start, len));
        match self.by_hash.entry(hash) {
            Entry::Occupied(_) => {
                self.collided.insert(s.into(), n);
            }
            Entry::Vacant(slot) => {
                slot.insert(n);
            }
        }
        self.places = None;
        Ok(n)
    }

    /// Each string's place in code point order (UTF-8 byte order), by
    /// number.
    pub(super) fn places(&mut self) -> &[u32] {
        if self.places.is_none() {
            let mut order: Vec<u32> = (0..self.spans.len() as u32).collect();
            order.sort_unstable_by(|&a, &b| self.get(a).cmp(self.get(b)));
            let mut places = vec![0; order.len()];
            for (place, n) in order.into_iter().enumerate() {
                places[n as usize] = place as u32;
            }
            self.places = Some(places);
        }
        self.places.as_deref().unwrap_or_default()
    }

    /// What the table holds, estimated from its capacities.
    fn bytes(&self) -> u64 {
        let map_slot = |key: usize| (key + size_of::<u32>() + 1) as u64 * 8 / 7;
        self.text.capacity() as u64
            + (self.spans.capacity() * size_of::<(u32, u32)>()) as u64
            + self.by_hash.capacity() as u64 * map_slot(size_of::<u64>())
            + self
                .collided
                .keys()
                .map(|k| k.len() as u64 + 16)
                .sum::<u64>()
            + self.collided.capacity() as u64 * map_slot(size_of::<Box<str>>())
            + self
                .places
                .as_ref()
                .map_or(0, |p| (p.capacity() * size_of::<u32>()) as u64)
    }
}

/// What SORT and THREAD compare of one message, the strings by number.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// The internal date.
    arrival: i64,
    /// The `Date:` field, or the internal date without one (RFC 5256
    /// section 2.2).
    sent: i64,
    /// Base subject, folded ([`MailboxSortIndex::subjects`]).
    subject: u32,
    /// The address keys, folded ([`MailboxSortIndex::names`]).
    from: u32,
    to: u32,
    cc: u32,
    display_from: u32,
    display_to: u32,
    /// `<id>` as written ([`MailboxSortIndex::ids`]), or [`NONE`].
    message_id: u32,
    /// Where this message's parent ids start in
    /// [`MailboxSortIndex::refs`], and how many (with [`REPLY`]).
    refs_start: u32,
    refs_len: u32,
}

/// What a record is made of, before its strings are numbered.
#[derive(Debug, Clone)]
pub(super) struct Made {
    pub uid: Uid,
    pub arrival: i64,
    pub sent: i64,
    /// Base subject, folded.
    pub subject: String,
    pub is_reply_or_forward: bool,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub display_from: String,
    pub display_to: String,
    pub message_id: Option<String>,
    /// `References:`, or without it the first id of `In-Reply-To:`.
    pub refs: Vec<String>,
}

impl Default for Made {
    fn default() -> Self {
        Made {
            uid: Uid(0),
            arrival: 0,
            sent: 0,
            subject: String::new(),
            is_reply_or_forward: false,
            from: String::new(),
            to: String::new(),
            cc: String::new(),
            display_from: String::new(),
            display_to: String::new(),
            message_id: None,
            refs: Vec::new(),
        }
    }
}

impl Made {
    /// The keys of a message from its envelope summary.
    pub(super) fn of(m: &MessageInfo) -> Made {
        let s = &m.summary;
        let base = base_subject(s.subject.as_deref().unwrap_or(""));
        let written = s.addresses.as_deref();
        let from = first_address(&s.from, written.map(|w| w.from.as_slice()));
        let to = first_address(&s.to, written.map(|w| w.to.as_slice()));
        let cc = first_address(&s.cc, written.map(|w| w.cc.as_slice()));
        let ids = |text: &Option<String>| text.as_deref().map(message_ids).unwrap_or_default();
        let mut refs = ids(&s.references);
        if refs.is_empty() {
            refs.extend(ids(&s.in_reply_to).into_iter().take(1));
        }
        Made {
            uid: m.uid,
            arrival: m.internal_date,
            sent: s.date.unwrap_or(m.internal_date),
            subject: base.text,
            is_reply_or_forward: base.is_reply_or_forward,
            from: mailbox_key(&from),
            to: mailbox_key(&to),
            cc: mailbox_key(&cc),
            display_from: display_key(&from),
            display_to: display_key(&to),
            message_id: s.message_id.clone(),
            refs,
        }
    }
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

/// One key a SORT compares, as [`MailboxSortIndex::keys`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Arrival,
    Sent,
    /// The size given with the UID.
    Size,
    Subject,
    From,
    To,
    Cc,
    DisplayFrom,
    DisplayTo,
}

/// What THREAD knows of one message: strings by number (subjects by
/// their place in code point order, so `0` is the empty subject).
#[derive(Debug, Clone, Default)]
pub(super) struct ThreadKeys {
    pub sent: i64,
    pub subject: u32,
    pub is_reply_or_forward: bool,
    pub message_id: Option<u32>,
    pub references: Vec<u32>,
}

/// One mailbox's records, by UID.
#[derive(Default)]
pub(super) struct MailboxSortIndex {
    /// Ascending, one per record.
    uids: Vec<Uid>,
    records: Vec<Record>,
    subjects: Strings,
    /// Address keys: mailbox and display keys alike.
    names: Strings,
    ids: Strings,
    /// Every record's parent ids, one after another.
    refs: Vec<u32>,
}

impl MailboxSortIndex {
    /// Records held (of messages still there or not).
    pub(super) fn len(&self) -> usize {
        self.uids.len()
    }

    fn find(&self, uid: Uid) -> Option<usize> {
        self.uids.binary_search(&uid).ok()
    }

    /// Of `uids` (ascending), those without a record.
    pub(super) fn missing(&self, uids: impl Iterator<Item = Uid>) -> Vec<Uid> {
        let mut held = self.uids.iter().peekable();
        let mut out = Vec::new();
        for uid in uids {
            while held.next_if(|&&h| h < uid).is_some() {}
            if held.peek() != Some(&&uid) {
                out.push(uid);
            }
        }
        out
    }

    /// Adds the records of `made` (those not held already).
    pub(super) fn add(&mut self, made: &[Made]) -> Result<(), TooLarge> {
        let mut made: Vec<&Made> = made.iter().collect();
        made.sort_by_key(|m| m.uid);
        made.dedup_by_key(|m| m.uid);
        let mut new: Vec<(Uid, Record)> = Vec::with_capacity(made.len());
        for m in made {
            if self.find(m.uid).is_some() {
                continue;
            }
            let refs_start = u32::try_from(self.refs.len()).map_err(|_| TooLarge)?;
            for id in &m.refs {
                let n = self.ids.intern(id)?;
                self.refs.push(n);
            }
            let refs_len = u32::try_from(m.refs.len())
                .ok()
                .filter(|&n| n < REPLY)
                .ok_or(TooLarge)?;
            let record = Record {
                arrival: m.arrival,
                sent: m.sent,
                subject: self.subjects.intern(&m.subject)?,
                from: self.names.intern(&m.from)?,
                to: self.names.intern(&m.to)?,
                cc: self.names.intern(&m.cc)?,
                display_from: self.names.intern(&m.display_from)?,
                display_to: self.names.intern(&m.display_to)?,
                message_id: match &m.message_id {
                    Some(id) => self.ids.intern(id)?,
                    None => NONE,
                },
                refs_start,
                refs_len: refs_len | if m.is_reply_or_forward { REPLY } else { 0 },
            };
            new.push((m.uid, record));
        }
        let appends = match (self.uids.last(), new.first()) {
            (Some(last), Some((first, _))) => first > last,
            _ => true,
        };
        if appends {
            for (uid, record) in new {
                self.uids.push(uid);
                self.records.push(record);
            }
        } else {
            let mut all: Vec<(Uid, Record)> = self
                .uids
                .drain(..)
                .zip(self.records.drain(..))
                .chain(new)
                .collect();
            all.sort_unstable_by_key(|(uid, _)| *uid);
            (self.uids, self.records) = all.into_iter().unzip();
        }
        Ok(())
    }

    /// For each of `messages` (UID and size, any order) that has a
    /// record, its position there and its values of `keys`, one row of
    /// `keys.len()` after another: dates and sizes as they are, strings by
    /// their place in code point order. Others are left out.
    pub(super) fn keys(&mut self, messages: &[(Uid, u64)], keys: &[Key]) -> (Vec<usize>, Vec<i64>) {
        let needs = |k: &[Key]| keys.iter().any(|key| k.contains(key));
        if needs(&[Key::Subject]) {
            self.subjects.places();
        }
        if needs(&[
            Key::From,
            Key::To,
            Key::Cc,
            Key::DisplayFrom,
            Key::DisplayTo,
        ]) {
            self.names.places();
        }
        let subjects = self.subjects.places.as_deref().unwrap_or_default();
        let names = self.names.places.as_deref().unwrap_or_default();
        let place =
            |places: &[u32], n: u32| i64::from(places.get(n as usize).copied().unwrap_or(0));
        let mut found = Vec::with_capacity(messages.len());
        let mut values = Vec::with_capacity(messages.len() * keys.len());
        for (i, &(uid, size)) in messages.iter().enumerate() {
            let Some(at) = self.find(uid) else {
                continue;
            };
            let r = &self.records[at];
            found.push(i);
            values.extend(keys.iter().map(|key| match key {
                Key::Arrival => r.arrival,
                Key::Sent => r.sent,
                Key::Size => i64::try_from(size).unwrap_or(i64::MAX),
                Key::Subject => place(subjects, r.subject),
                Key::From => place(names, r.from),
                Key::To => place(names, r.to),
                Key::Cc => place(names, r.cc),
                Key::DisplayFrom => place(names, r.display_from),
                Key::DisplayTo => place(names, r.display_to),
            }));
        }
        (found, values)
    }

    /// For each of `uids` (any order) that has a record, its position
    /// there and what THREAD compares of it. Others are left out.
    pub(super) fn thread_keys(&mut self, uids: &[Uid]) -> Vec<(usize, ThreadKeys)> {
        self.subjects.places();
        let places = self.subjects.places.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(uids.len());
        for (i, &uid) in uids.iter().enumerate() {
            let Some(at) = self.find(uid) else {
                continue;
            };
            let r = &self.records[at];
            let start = r.refs_start as usize;
            let len = (r.refs_len & !REPLY) as usize;
            out.push((
                i,
                ThreadKeys {
                    sent: r.sent,
                    subject: places.get(r.subject as usize).copied().unwrap_or(0),
                    is_reply_or_forward: r.refs_len & REPLY != 0,
                    message_id: (r.message_id != NONE).then_some(r.message_id),
                    references: self.refs[start..start + len].to_vec(),
                },
            ));
        }
        out
    }

    /// Gives back the room its lists grew by but do not use.
    fn shrink(&mut self) {
        self.uids.shrink_to_fit();
        self.records.shrink_to_fit();
        self.refs.shrink_to_fit();
        for strings in [&mut self.subjects, &mut self.names, &mut self.ids] {
            strings.text.shrink_to_fit();
            strings.spans.shrink_to_fit();
            strings.seal();
        }
    }

    /// What the index holds, estimated from its capacities.
    pub(super) fn bytes(&self) -> u64 {
        (self.uids.capacity() * size_of::<Uid>()
            + self.records.capacity() * size_of::<Record>()
            + self.refs.capacity() * size_of::<u32>()) as u64
            + self.subjects.bytes()
            + self.names.bytes()
            + self.ids.bytes()
    }

    #[cfg(test)]
    pub(super) fn subject(&self, uid: Uid) -> Option<&str> {
        self.find(uid)
            .map(|at| self.subjects.get(self.records[at].subject))
    }
}

/// A mailbox's index as [`SortIndexes`] holds it.
pub(super) type SharedIndex = Arc<Mutex<MailboxSortIndex>>;

/// Locks an index (one a panic left locked is used as it is: records are
/// only ever added whole).
pub(super) fn lock(index: &SharedIndex) -> MutexGuard<'_, MailboxSortIndex> {
    index.lock().unwrap_or_else(|e| e.into_inner())
}

struct Held {
    index: SharedIndex,
    bytes: u64,
    /// When a command last used it (a count of uses).
    used: u64,
}

/// Every mailbox's sort index, within a byte budget.
pub(crate) struct SortIndexes {
    budget: u64,
    held: Mutex<(HashMap<MailboxRef, Held>, u64)>,
}

impl SortIndexes {
    /// Indexes holding at most `budget` bytes in all (0: none is kept
    /// past the command that made it).
    pub(crate) fn new(budget: u64) -> SortIndexes {
        SortIndexes {
            budget,
            held: Mutex::new((HashMap::new(), 0)),
        }
    }

    fn held(&self) -> MutexGuard<'_, (HashMap<MailboxRef, Held>, u64)> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The mailbox's index (a new, empty one if none is kept).
    pub(super) fn get(&self, mailbox: MailboxRef) -> SharedIndex {
        let mut held = self.held();
        let (map, clock) = &mut *held;
        *clock += 1;
        let entry = map.entry(mailbox).or_insert_with(|| Held {
            index: SharedIndex::default(),
            bytes: 0,
            used: 0,
        });
        entry.used = *clock;
        entry.index.clone()
    }

    /// After a command filled `index` (the mailbox's): charges it what it
    /// holds now and lets the least recently used go while all of them
    /// hold more than the budget. It goes itself if it alone holds more,
    /// or if over half of its records are of messages no longer there
    /// (`present` messages are).
    pub(super) fn settle(&self, mailbox: MailboxRef, index: &SharedIndex, present: usize) {
        let (bytes, stale) = {
            let mut index = lock(index);
            index.shrink();
            (index.bytes(), index.len() > 2 * present + 1024)
        };
        tracing::debug!(
            mailbox = mailbox.id.0,
            records = lock(index).len(),
            bytes,
            stale,
            "sort index filled"
        );
        let mut held = self.held();
        let (map, _) = &mut *held;
        match map.get_mut(&mailbox) {
            Some(h) if Arc::ptr_eq(&h.index, index) => {
                if stale || bytes > self.budget {
                    map.remove(&mailbox);
                } else {
                    h.bytes = bytes;
                }
            }
            _ => return,
        }
        let mut total: u64 = map.values().map(|h| h.bytes).sum();
        while total > self.budget {
            let Some((&oldest, _)) = map
                .iter()
                .filter(|(m, _)| **m != mailbox)
                .min_by_key(|(_, h)| h.used)
            else {
                break;
            };
            if let Some(h) = map.remove(&oldest) {
                total -= h.bytes;
            }
        }
    }

    /// Bytes charged for the indexes kept now.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> u64 {
        self.held().0.values().map(|h| h.bytes).sum()
    }

    #[cfg(test)]
    pub(super) fn holds(&self, mailbox: MailboxRef) -> bool {
        self.held().0.contains_key(&mailbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(uid: u32, subject: &str, sent: i64, from: &str) -> Made {
        let base = base_subject(subject);
        Made {
            uid: Uid(uid),
            arrival: i64::from(uid),
            sent,
            subject: base.text,
            is_reply_or_forward: base.is_reply_or_forward,
            from: casemap(from),
            message_id: Some(format!("<{uid}@x>")),
            refs: vec![format!("<{}@x>", uid - 1)],
            ..Made::default()
        }
    }

    #[test]
    fn strings_are_kept_once_and_placed_in_code_point_order() {
        let mut s = Strings::default();
        let words = ["ZEBRA", "APPLE", "", "ÜBER", "APPLE", "UBER"];
        let n: Vec<u32> = words.iter().map(|w| s.intern(w).unwrap()).collect();
        assert_eq!(n, [1, 2, 0, 3, 2, 4]);
        assert_eq!(s.len(), 5);
        assert_eq!(s.get(3), "ÜBER");
        // "", APPLE, UBER, ZEBRA, ÜBER (bytes: Ü is above ASCII).
        assert_eq!(s.places(), [0, 3, 1, 4, 2]);
        s.intern("B").unwrap();
        assert_eq!(s.places(), [0, 4, 1, 5, 3, 2]);
        // Sealed, it still knows every string, and adds new ones after.
        s.seal();
        assert_eq!(s.intern("APPLE").unwrap(), 2);
        s.seal();
        assert_eq!(s.intern("CHERRY").unwrap(), 6);
        assert_eq!(s.intern("").unwrap(), 0);

        // Strings whose hashes collide are still told apart.
        let mut s = Strings {
            collide: true,
            ..Strings::default()
        };
        // The empty string again, now under the hash all share.
        s.by_hash.clear();
        s.by_hash.insert(0, 0);
        let n: Vec<u32> = ["a", "b", "", "a", "c", "b"]
            .iter()
            .map(|w| s.intern(w).unwrap())
            .collect();
        assert_eq!(n, [1, 2, 0, 1, 3, 2]);
        assert_eq!((s.get(1), s.get(2), s.get(3)), ("a", "b", "c"));
        s.seal();
        assert_eq!(s.intern("c").unwrap(), 3);
        assert_eq!(s.intern("d").unwrap(), 4);
        assert_eq!(s.intern("b").unwrap(), 2);
    }

    #[test]
    fn records_added_in_any_order_are_found_by_uid() {
        let mut index = MailboxSortIndex::default();
        index
            .add(&[made(5, "b", 50, "x"), made(2, "Re: a", 20, "y")])
            .unwrap();
        index.add(&[made(3, "c", 30, "x")]).unwrap();
        index
            .add(&[made(9, "a", 90, "x"), made(3, "z", 0, "z")])
            .unwrap();
        assert_eq!(index.len(), 4);
        // A record is never replaced.
        assert_eq!(index.subject(Uid(3)), Some("C"));
        assert_eq!(
            index.missing([1, 2, 3, 4, 9, 10].into_iter().map(Uid)),
            [Uid(1), Uid(4), Uid(10)]
        );
        let (found, values) = index.keys(
            &[(Uid(9), 0), (Uid(7), 0), (Uid(2), 0), (Uid(5), 0)],
            &[Key::Subject, Key::Sent],
        );
        assert_eq!(found, [0, 2, 3]);
        // Subjects "A" (place 1) twice, "B" (place 2).
        assert_eq!(values, [1, 90, 1, 20, 2, 50]);
        let thread = index.thread_keys(&[Uid(2), Uid(3)]);
        assert_eq!(thread.len(), 2);
        assert!(thread[0].1.is_reply_or_forward);
        assert!(!thread[1].1.is_reply_or_forward);
        let id = |t: &ThreadKeys| t.message_id.unwrap();
        // 3's parent is <2@x>, 2's id.
        assert_eq!(thread[1].1.references, [id(&thread[0].1)]);
    }

    #[test]
    fn indexes_stay_within_the_budget() {
        let mailbox = |n: u32| MailboxRef {
            id: store::MailboxId(i64::from(n)),
            uid_validity: 1,
        };
        let fill = |indexes: &SortIndexes, m: u32| {
            let index = indexes.get(mailbox(m));
            let made: Vec<Made> = (1..=200).map(|u| made(u, "s", 0, "f")).collect();
            lock(&index).add(&made).unwrap();
            indexes.settle(mailbox(m), &index, 200);
            let bytes = lock(&index).bytes();
            bytes
        };
        let one = fill(&SortIndexes::new(u64::MAX), 1);
        let indexes = SortIndexes::new(one * 3 + one / 2);
        for m in 1..=5 {
            fill(&indexes, m);
            assert!(indexes.bytes() <= one * 3 + one / 2);
        }
        assert!(!indexes.holds(mailbox(1)) && !indexes.holds(mailbox(2)));
        assert!((3..=5).all(|m| indexes.holds(mailbox(m))));
        // One bigger than the whole budget serves its command and goes.
        let small = SortIndexes::new(one / 2);
        let index = small.get(mailbox(1));
        lock(&index).add(&[made(1, "s", 0, "f")]).unwrap();
        fill(&small, 1);
        assert!(!small.holds(mailbox(1)));
        assert_eq!(small.bytes(), 0);
        // An index mostly of expunged messages goes too.
        let indexes = SortIndexes::new(u64::MAX);
        let index = indexes.get(mailbox(1));
        let made: Vec<Made> = (1..=3000).map(|u| made(u, "s", 0, "f")).collect();
        lock(&index).add(&made).unwrap();
        indexes.settle(mailbox(1), &index, 10);
        assert!(!indexes.holds(mailbox(1)));
    }
}
