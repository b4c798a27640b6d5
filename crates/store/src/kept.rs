//! What the store keeps in memory between requests (mailbox indexes,
//! decoded envelopes, SEARCH's header fields, arrival lists), each within
//! a byte budget (`[store] index_cache_mb` and its kin,
//! [`crate::StoreOptions`]).
//!
//! Each entry is charged an estimate of the bytes it holds: its value's
//! own size plus the heap parts it owns ([`index_bytes`],
//! [`summary_bytes`], [`search_fields_bytes`], [`arrival_list_bytes`]), plus [`ENTRY_OVERHEAD`]
//! for its slot. The estimate is cheap (one walk over the value when it
//! is kept) and rounds each heap allocation up by [`ALLOCATION`] for the
//! allocator's own bookkeeping; a hash map's spare capacity is not
//! counted. When a new entry would pass the budget, the oldest entries
//! not used since the last look go first (second chance: a hit marks an
//! entry, which then survives one more round). An entry larger than the
//! whole budget is not kept at all; the caller still gets it.
//!
//! A cache read in long scans (SEARCH's header fields, read for every
//! message of a mailbox that may not fit) is made with
//! [`Kept::resisting_scans`]: once it has let a quarter of its budget go
//! for new entries with no entry asked for again in between, it is being
//! scanned through by more than it holds, and it keeps no new entry
//! (making no room) until one it holds is asked for again. A repeated
//! scan bigger than the budget then finds most of what the cache held
//! still there, instead of each entry pushed out just before it is asked
//! for; a new set of entries that is read again gets in a quarter of the
//! budget per round.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::mem::size_of;

use crate::{
    ArrivalList, EmailAddress, HeaderAddress, MailboxIndex, MessageSummary, RawText, SearchFields,
};

/// What one heap allocation costs beyond the bytes asked for (the
/// allocator's header and rounding), a rough mean.
pub(crate) const ALLOCATION: u64 = 16;

/// What an entry costs besides its value: the map's slot, its key again
/// in the age queue, the mark.
pub(crate) const ENTRY_OVERHEAD: u64 = 64;

/// Entries by key, charged by the bytes they hold, at most `budget` in
/// all.
pub(crate) struct Kept<K, V> {
    entries: HashMap<K, Slot<V>>,
    /// Every key once, oldest first.
    ages: VecDeque<K>,
    bytes: u64,
    budget: u64,
    /// Bytes let go to make room since an entry was last asked for, and
    /// how many may be before new entries are turned away (`u64::MAX`:
    /// never).
    dropped_since_hit: u64,
    scan_limit: u64,
}

struct Slot<V> {
    value: V,
    bytes: u64,
    /// Asked for since the eviction sweep last passed it.
    used: bool,
}

impl<K: Clone + Eq + Hash, V> Kept<K, V> {
    /// An empty cache that holds at most `budget` bytes (0: keeps
    /// nothing).
    pub(crate) fn new(budget: u64) -> Self {
        Kept {
            entries: HashMap::new(),
            ages: VecDeque::new(),
            bytes: 0,
            budget,
            dropped_since_hit: 0,
            scan_limit: u64::MAX,
        }
    }

    /// As [`Kept::new`], but a scan bigger than the budget does not push
    /// out all it holds (see the module documentation).
    pub(crate) fn resisting_scans(budget: u64) -> Self {
        Kept {
            scan_limit: budget / 4,
            ..Kept::new(budget)
        }
    }

    /// The entry for `key`, marked as used.
    pub(crate) fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let slot = self.entries.get_mut(key)?;
        slot.used = true;
        self.dropped_since_hit = 0;
        Some(&slot.value)
    }

    /// Keeps `value` under `key` (replacing what was there), charged
    /// `bytes` (its estimate) plus [`ENTRY_OVERHEAD`], making room by
    /// dropping the oldest unused entries. Not kept if it alone is over
    /// the budget; whatever `key` held before goes either way.
    pub(crate) fn insert(&mut self, key: K, value: V, bytes: u64) {
        let bytes = bytes.saturating_add(ENTRY_OVERHEAD);
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.bytes;
            self.ages.retain(|k| *k != key);
        }
        if bytes > self.budget {
            return;
        }
        if self.bytes + bytes > self.budget && self.dropped_since_hit >= self.scan_limit {
            return;
        }
        while self.bytes + bytes > self.budget {
            self.evict_one();
        }
        self.bytes += bytes;
        self.ages.push_back(key.clone());
        self.entries.insert(
            key,
            Slot {
                value,
                bytes,
                used: false,
            },
        );
    }

    /// Drops the oldest entry not used since the sweep last passed it;
    /// used ones it passes lose their mark and go to the back.
    fn evict_one(&mut self) {
        while let Some(key) = self.ages.pop_front() {
            let Some(slot) = self.entries.get_mut(&key) else {
                continue;
            };
            if slot.used {
                slot.used = false;
                self.ages.push_back(key);
            } else {
                let slot = self.entries.remove(&key).expect("just looked at");
                self.bytes -= slot.bytes;
                self.dropped_since_hit = self.dropped_since_hit.saturating_add(slot.bytes);
                return;
            }
        }
    }

    /// Keeps only the entries `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut freed = 0;
        self.entries.retain(|k, slot| {
            let stays = keep(k, &slot.value);
            if !stays {
                freed += slot.bytes;
            }
            stays
        });
        self.bytes -= freed;
        let entries = &self.entries;
        self.ages.retain(|k| entries.contains_key(k));
    }

    /// The entries' values, in no order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|slot| &slot.value)
    }

    /// The bytes charged for what is kept now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A string's heap part.
fn string_bytes(s: &str, capacity: usize) -> u64 {
    if capacity == 0 {
        debug_assert!(s.is_empty());
        0
    } else {
        capacity as u64 + ALLOCATION
    }
}

fn text_bytes(s: &Option<String>) -> u64 {
    s.as_ref().map_or(0, |s| string_bytes(s, s.capacity()))
}

/// A vector's own heap part (not what its elements own).
fn vec_bytes<T>(v: &Vec<T>) -> u64 {
    if v.capacity() == 0 {
        0
    } else {
        (v.capacity() * size_of::<T>()) as u64 + ALLOCATION
    }
}

fn strings_bytes(v: &Vec<String>) -> u64 {
    vec_bytes(v) + v.iter().map(|s| string_bytes(s, s.capacity())).sum::<u64>()
}

fn raw_bytes(raw: &Option<Vec<u8>>) -> u64 {
    raw.as_ref().map_or(0, vec_bytes)
}

fn addresses_bytes(v: &Vec<EmailAddress>) -> u64 {
    vec_bytes(v)
        + v.iter()
            .map(|a| text_bytes(&a.name) + text_bytes(&a.address))
            .sum::<u64>()
}

fn header_addresses_bytes(v: &Vec<HeaderAddress>) -> u64 {
    let raw = |t: &Option<RawText>| t.as_ref().map_or(0, |t| vec_bytes(&t.0));
    vec_bytes(v)
        + v.iter()
            .map(|a| match a {
                HeaderAddress::Mailbox {
                    name,
                    route,
                    local_part,
                    domain,
                } => raw(name) + raw(route) + raw(local_part) + raw(domain),
                HeaderAddress::GroupStart { name } => vec_bytes(&name.0),
                HeaderAddress::GroupEnd => 0,
            })
            .sum::<u64>()
}

/// A mailbox index's bytes: the struct, its entries, each entry's flags,
/// the shared UID list, the keywords.
pub(crate) fn index_bytes(index: &MailboxIndex) -> u64 {
    size_of::<MailboxIndex>() as u64
        + vec_bytes(&index.messages)
        + index
            .messages
            .iter()
            .map(|m| strings_bytes(&m.flags))
            .sum::<u64>()
        + vec_bytes(&*index.uids)
        + 2 * size_of::<usize>() as u64
        + ALLOCATION
        + strings_bytes(&index.keywords)
}

/// A summary's bytes behind its `Arc`: the struct and its header fields.
/// The MIME tree's heap parts are not counted: the caches hold
/// envelope-only summaries, whose tree is empty.
pub(crate) fn summary_bytes(s: &MessageSummary) -> u64 {
    let mut bytes = size_of::<MessageSummary>() as u64 + 2 * size_of::<usize>() as u64 + ALLOCATION;
    for text in [
        &s.subject,
        &s.in_reply_to,
        &s.message_id,
        &s.references,
        &s.return_path,
        &s.preview,
    ] {
        bytes += text_bytes(text);
    }
    for list in [&s.from, &s.sender, &s.reply_to, &s.to, &s.cc, &s.bcc] {
        bytes += addresses_bytes(list);
    }
    for raw in [
        &s.raw.date,
        &s.raw.subject,
        &s.raw.in_reply_to,
        &s.raw.message_id,
    ] {
        bytes += raw_bytes(raw);
    }
    if let Some(fields) = &s.addresses {
        bytes += size_of::<crate::AddressFields>() as u64 + ALLOCATION;
        for list in [
            &fields.from,
            &fields.sender,
            &fields.reply_to,
            &fields.to,
            &fields.cc,
            &fields.bcc,
        ] {
            bytes += header_addresses_bytes(list);
        }
    }
    bytes
}

/// A search form's bytes behind its `Arc`: the struct and its texts.
pub(crate) fn search_fields_bytes(f: &SearchFields) -> u64 {
    let texts = f.texts_capacity() as u64;
    size_of::<SearchFields>() as u64
        + 2 * size_of::<usize>() as u64
        + ALLOCATION
        + if texts == 0 { 0 } else { texts + ALLOCATION }
}

/// An arrival list's bytes: the list, each message's own parts, and its
/// summary. A summary may be shared with the envelope cache; the list
/// is charged for it all the same, since the list alone keeps it alive
/// once the envelope cache lets it go.
pub(crate) fn arrival_list_bytes(list: &ArrivalList) -> u64 {
    size_of::<ArrivalList>() as u64
        + 2 * size_of::<usize>() as u64
        + ALLOCATION
        + vec_bytes(&list.messages)
        + list
            .messages
            .iter()
            .map(|m| {
                string_bytes(&m.address, m.address.capacity())
                    + string_bytes(&m.mailbox_name, m.mailbox_name.capacity())
                    + strings_bytes(&m.flags)
                    + summary_bytes(&m.summary)
            })
            .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::{Kept, ENTRY_OVERHEAD};

    fn sized(n: u64) -> u64 {
        100 + n % 7 * 10
    }

    #[test]
    fn kept_entries_stay_within_the_budget() {
        let budget = 2000;
        let mut kept: Kept<u64, String> = Kept::new(budget);
        for n in 0..500u64 {
            kept.insert(n, n.to_string(), sized(n));
            assert!(kept.bytes() <= budget, "{} bytes after {n}", kept.bytes());
            let held: u64 = kept
                .entries
                .iter()
                .map(|(k, slot)| {
                    assert_eq!(slot.value, k.to_string());
                    sized(*k) + ENTRY_OVERHEAD
                })
                .sum();
            assert_eq!(kept.bytes(), held);
            assert_eq!(kept.ages.len(), kept.len());
        }
        // Close to full: nothing went that had not to.
        assert!(kept.bytes() + 200 > budget, "{}", kept.bytes());
        // The newest is there, the oldest long gone.
        assert_eq!(kept.get(&499).map(String::as_str), Some("499"));
        assert!(kept.get(&0).is_none());
    }

    #[test]
    fn an_entry_over_the_whole_budget_is_not_kept() {
        let mut kept: Kept<&str, Vec<u8>> = Kept::new(1000);
        kept.insert("small", vec![1], 10);
        kept.insert("huge", vec![0; 5000], 5000);
        assert!(kept.get("huge").is_none());
        // Nothing was dropped to make room for it.
        assert_eq!(kept.get("small").map(Vec::len), Some(1));
        assert_eq!(kept.bytes(), 10 + ENTRY_OVERHEAD);
        // A key replaced by a value too big loses its old value as well.
        kept.insert("small", vec![0; 5000], 5000);
        assert!(kept.get("small").is_none());
        assert_eq!((kept.len(), kept.bytes()), (0, 0));
        // A budget of 0 keeps nothing.
        let mut none: Kept<u8, u8> = Kept::new(0);
        none.insert(1, 1, 0);
        assert!(none.get(&1).is_none());
    }

    /// A scan bigger than the budget, repeated: a plain cache loses each
    /// entry just before it is asked for again and never serves one; one
    /// resisting scans keeps most of what it held and serves it each round.
    #[test]
    fn a_cache_resisting_scans_keeps_most_of_itself_through_a_bigger_scan() {
        let entry = 100 + ENTRY_OVERHEAD;
        let hits = |mut kept: Kept<u32, u32>| {
            let mut rounds = Vec::new();
            for _ in 0..4 {
                let mut hits = 0;
                for n in 0..200 {
                    if kept.get(&n).is_some() {
                        hits += 1;
                    } else {
                        kept.insert(n, n, 100);
                    }
                    assert!(kept.bytes() <= 100 * entry);
                }
                rounds.push(hits);
            }
            rounds
        };
        assert_eq!(hits(Kept::new(100 * entry)), [0, 0, 0, 0]);
        let resisting = hits(Kept::resisting_scans(100 * entry));
        assert_eq!(resisting[0], 0);
        for later in &resisting[1..] {
            assert!(*later >= 70, "{resisting:?}");
        }

        // A set that fits is kept whole, as by a plain cache.
        let mut kept: Kept<u32, u32> = Kept::resisting_scans(100 * entry);
        for n in 0..100 {
            kept.insert(n, n, 100);
        }
        assert!((0..100).all(|n| kept.get(&n).is_some()));

        // A new set read again and again gets in, a quarter per round.
        let mut rounds = 0;
        while !(1000..1100).all(|n| kept.get(&n).is_some()) {
            for n in 1000..1100 {
                if kept.get(&n).is_none() {
                    kept.insert(n, n, 100);
                }
            }
            rounds += 1;
            assert!(rounds <= 8, "the new set is not kept after {rounds} rounds");
        }
    }

    #[test]
    fn entries_in_use_outlive_unused_older_ones() {
        // Room for four entries of 100 bytes.
        let mut kept: Kept<u32, u32> = Kept::new(4 * (100 + ENTRY_OVERHEAD));
        for n in 0..4 {
            kept.insert(n, n * 10, 100);
        }
        // 0 is the oldest but is being read: 1 goes first, then 2.
        for n in 4..6 {
            assert_eq!(kept.get(&0), Some(&0));
            kept.insert(n, n * 10, 100);
        }
        assert_eq!(kept.get(&0), Some(&0));
        assert!(kept.get(&1).is_none());
        assert!(kept.get(&2).is_none());
        for n in [3, 4, 5] {
            assert_eq!(kept.get(&n), Some(&(n * 10)));
        }
        // Replacing an entry charges the new size only.
        kept.insert(3, 7, 50);
        assert_eq!(kept.get(&3), Some(&7));
        assert_eq!(
            kept.bytes(),
            3 * (100 + ENTRY_OVERHEAD) + 50 + ENTRY_OVERHEAD
        );
        kept.retain(|k, _| *k != 4);
        assert!(kept.get(&4).is_none());
        assert_eq!(
            kept.bytes(),
            2 * (100 + ENTRY_OVERHEAD) + 50 + ENTRY_OVERHEAD
        );
        assert_eq!(kept.ages.len(), 3);
    }
}
