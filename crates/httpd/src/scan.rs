//! Looking through messages for those a query matches: newest first for
//! lists and searches, oldest first after a cursor for the wait. The
//! summary decides most terms; a message's raw bytes are read (and its
//! text decoded) only when a bare word or phrase is not in its header
//! fields and everything else already holds.
//!
//! A search reads the scope's list once ([`store::Store::arrival_list`],
//! kept by the store until the next commit), decides every message on its
//! summary, and reads the bodies still needed in batches. Each body read
//! leaves behind a small filter of the byte trigrams of its lower-cased
//! text ([`BodyIndex`]), so later searches skip, without reading it, every
//! body that surely lacks a word of three bytes or more.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use store::{ArrivalScope, ArrivedMessage, Store};

use crate::error::ApiResult;
use crate::query::{Decision, Query};

/// Messages read from the store at a time (the wait, and "every").
const PAGE: usize = 500;

/// Bodies read from the store in one request during a search.
const BODY_BATCH: usize = 200;

/// Bodies larger than this are decoded on a blocking thread.
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// Whether `query` matches `m`, reading its body if need be.
pub async fn matches(
    store: &Store,
    scope: &ArrivalScope,
    query: &Query,
    m: &ArrivedMessage,
) -> ApiResult<bool> {
    match query.decide(m, None) {
        Decision::Yes => Ok(true),
        Decision::No => Ok(false),
        Decision::NeedBody => {
            let Some(raw) = store.arrival_raw(scope.clone(), m.arrival).await? else {
                // Deleted meanwhile.
                return Ok(false);
            };
            let text = if raw.len() > INLINE_PARSE_LIMIT {
                tokio::task::spawn_blocking(move || crate::view::body_text(&raw))
                    .await
                    .unwrap_or_default()
            } else {
                crate::view::body_text(&raw)
            };
            Ok(query.decide(m, Some(&text)) == Decision::Yes)
        }
    }
}

/// What a search found.
pub struct Found {
    /// Newest first.
    pub matches: Vec<ArrivedMessage>,
    /// False if the scan stopped at its limit before the oldest message.
    pub complete: bool,
    /// How many messages the scope holds, and how many are unseen.
    pub total: u64,
    pub unseen: u64,
}

/// Filters of the byte trigrams of messages' lower-cased body text, by
/// arrival number (a message's bytes never change, nor does the number
/// name another message, so a filter never goes stale).
pub struct BodyIndex {
    filters: Mutex<Kept<TrigramFilter>>,
    /// Each message's [`crate::query::header_text`], for bare words.
    headers: Mutex<Kept<Box<str>>>,
    /// Bytes each of the two may hold (`[http] search_cache_mb`, split
    /// evenly); past it, it starts again.
    budget: u64,
}

impl Default for BodyIndex {
    fn default() -> Self {
        BodyIndex::with_budget(32 * 1024 * 1024)
    }
}

/// Entries by arrival number with the bytes they hold.
struct Kept<T> {
    entries: HashMap<u64, T, BuildArrivalHasher>,
    bytes: u64,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept {
            entries: HashMap::default(),
            bytes: 0,
        }
    }
}

/// Hashes an arrival number with one multiplication: a search looks up
/// every message of the scope in both caches, and the numbers are the
/// store's own (nobody chooses them to collide), so SipHash's defence
/// against chosen keys buys nothing here and costs most of the lookup.
#[derive(Default)]
struct ArrivalHasher(u64);

impl std::hash::Hasher for ArrivalHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: an odd multiplier, so distinct numbers stay
        // distinct in every run of low bits, and the high bits mix.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type BuildArrivalHasher = std::hash::BuildHasherDefault<ArrivalHasher>;

/// What an entry holds besides its own bytes (the map's slot, the
/// allocation's header).
const ENTRY_OVERHEAD: u64 = 48;

impl<T> Kept<T> {
    /// Makes room for `bytes` more within `budget`: starts again if they
    /// would not fit.
    fn room_for(&mut self, bytes: u64, budget: u64) {
        if self.bytes.saturating_add(bytes) > budget {
            self.entries.clear();
            self.entries.shrink_to_fit();
            self.bytes = 0;
        }
    }

    /// The entry for `arrival`, made with `make` (and counted, within
    /// `budget`) if missing.
    fn get_or_make(
        &mut self,
        arrival: u64,
        budget: u64,
        size: impl Fn(&T) -> u64,
        make: impl FnOnce() -> T,
    ) -> &T {
        if !self.entries.contains_key(&arrival) {
            let value = make();
            let bytes = size(&value) + ENTRY_OVERHEAD;
            self.room_for(bytes, budget);
            self.bytes += bytes;
            return self.entries.entry(arrival).or_insert(value);
        }
        &self.entries[&arrival]
    }
}

/// A Bloom filter of the three-byte windows of a text: "surely not in the
/// text" for a needle with a window that is not in it; no false "not".
pub struct TrigramFilter {
    bits: Box<[u64]>,
}

impl TrigramFilter {
    /// Two bit positions (of `mask + 1`) for the window `w`.
    fn positions(w: &[u8], mask: u64) -> [u64; 2] {
        // SplitMix64's finalizer over the three bytes.
        let mut x = u64::from(w[0]) | u64::from(w[1]) << 8 | u64::from(w[2]) << 16;
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        [x & mask, (x >> 32) & mask]
    }

    /// The filter of `text`: about one bit per byte of text (a power of
    /// two between 512 and 65,536 bits), two bits per window.
    pub fn of(text: &str) -> TrigramFilter {
        let bits = text.len().next_power_of_two().clamp(512, 65_536);
        let mask = bits as u64 - 1;
        let mut words = vec![0u64; bits / 64].into_boxed_slice();
        for w in text.as_bytes().windows(3) {
            for p in Self::positions(w, mask) {
                words[(p / 64) as usize] |= 1 << (p % 64);
            }
        }
        TrigramFilter { bits: words }
    }

    /// `Some(false)` if `needle` is surely not in the text; `None` if it
    /// may be (or is shorter than a window).
    pub fn may_contain(&self, needle: &str) -> Option<bool> {
        let mask = (self.bits.len() * 64) as u64 - 1;
        let absent = needle.as_bytes().windows(3).any(|w| {
            Self::positions(w, mask)
                .iter()
                .any(|&p| self.bits[(p / 64) as usize] & (1 << (p % 64)) == 0)
        });
        absent.then_some(false)
    }
}

impl BodyIndex {
    /// Caches that hold at most `bytes` between them.
    pub fn with_budget(bytes: u64) -> BodyIndex {
        BodyIndex {
            filters: Default::default(),
            headers: Default::default(),
            budget: bytes / 2,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept<TrigramFilter>> {
        self.filters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_headers(&self) -> std::sync::MutexGuard<'_, Kept<Box<str>>> {
        self.headers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Decodes the lower-cased body text of each raw message, off the async
/// workers when there is much of it.
async fn body_texts(raws: Vec<(u64, Vec<u8>)>) -> Vec<(u64, String)> {
    let decode = |raws: Vec<(u64, Vec<u8>)>| {
        raws.into_iter()
            .map(|(arrival, raw)| (arrival, crate::view::body_text(&raw)))
            .collect::<Vec<_>>()
    };
    let bytes: usize = raws.iter().map(|(_, raw)| raw.len()).sum();
    if bytes <= INLINE_PARSE_LIMIT {
        return decode(raws);
    }
    tokio::task::spawn_blocking(move || decode(raws))
        .await
        .unwrap_or_default()
}

/// Every message in `scope` that `query` matches, newest first, looking
/// at no more than `max_scan` messages.
pub async fn search(
    store: &Store,
    bodies: &BodyIndex,
    scope: &ArrivalScope,
    query: &Query,
    max_scan: usize,
) -> ApiResult<Found> {
    let list = store.arrival_list(scope.clone(), max_scan.max(1)).await?;
    let messages = &list.messages;
    // First what the summaries (and the body filters) decide.
    let mut verdict: Vec<Decision> = Vec::with_capacity(messages.len());
    {
        let filters = bodies.lock();
        let mut headers = query.has_text().then(|| bodies.lock_headers());
        for m in messages.iter() {
            let header = headers.as_mut().map(|kept| {
                &**kept.get_or_make(
                    m.arrival,
                    bodies.budget,
                    |text| text.len() as u64,
                    || crate::query::header_text(m).into_boxed_str(),
                )
            });
            let filter = filters.entries.get(&m.arrival);
            verdict.push(query.decide_with_header(m, header, |needle| {
                filter.and_then(|f| f.may_contain(needle))
            }));
        }
    }
    // Then the bodies still needed, read and decoded in batches.
    let need: Vec<usize> = (0..messages.len())
        .filter(|&i| verdict[i] == Decision::NeedBody)
        .collect();
    for batch in need.chunks(BODY_BATCH) {
        let arrivals: Vec<u64> = batch.iter().map(|&i| messages[i].arrival).collect();
        let texts: HashMap<u64, String> =
            body_texts(store.arrivals_raw(scope.clone(), &arrivals).await?)
                .await
                .into_iter()
                .collect();
        let mut filters = bodies.lock();
        for &i in batch {
            let m = &messages[i];
            verdict[i] = match texts.get(&m.arrival) {
                Some(text) => {
                    filters.get_or_make(
                        m.arrival,
                        bodies.budget,
                        |f| (f.bits.len() * 8) as u64,
                        || TrigramFilter::of(text),
                    );
                    query.decide(m, Some(text))
                }
                // Deleted meanwhile.
                None => Decision::No,
            };
        }
    }
    let matches = messages
        .iter()
        .zip(&verdict)
        .filter(|(_, v)| **v == Decision::Yes)
        .map(|(m, _)| m.clone())
        .collect();
    Ok(Found {
        matches,
        complete: list.complete(),
        total: list.total,
        unseen: list.unseen,
    })
}

/// Every message in `scope`, newest first, in pages handed to `each`
/// (for "all messages" reads and deletes).
pub async fn every<F, Fut>(store: &Store, scope: &ArrivalScope, mut each: F) -> ApiResult<()>
where
    F: FnMut(Vec<ArrivedMessage>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<()>>,
{
    let mut before = None;
    loop {
        let page = store.arrivals_newest(scope.clone(), before, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        before = Some(last.arrival);
        let done = page.len() < PAGE;
        each(page).await?;
        if done {
            return Ok(());
        }
    }
}

/// The first message in `scope` after arrival `after` that `query`
/// matches, looking at what has arrived so far; and the last arrival
/// looked at (the cursor to go on from when nothing matched).
pub async fn first_after(
    store: &Store,
    scope: &ArrivalScope,
    query: &Query,
    mut after: u64,
) -> ApiResult<(Option<ArrivedMessage>, u64)> {
    loop {
        let page = store.arrivals_after(scope.clone(), after, PAGE).await?;
        let full = page.len() == PAGE;
        for m in page {
            after = m.arrival;
            if matches(store, scope, query, &m).await? {
                return Ok((Some(m), after));
            }
        }
        if !full {
            return Ok((None, after));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kept, TrigramFilter, ENTRY_OVERHEAD};

    #[test]
    fn kept_entries_stay_within_their_budget() {
        let mut kept: Kept<String> = Kept::default();
        let budget = 1000;
        let make = |n: u64| move || "x".repeat(300) + &n.to_string();
        let size = |s: &String| s.len() as u64;
        for n in 0..20u64 {
            assert!(kept
                .get_or_make(n, budget, size, make(n))
                .ends_with(&n.to_string()));
            assert!(kept.bytes <= budget, "{} after {n}", kept.bytes);
            let held: u64 = kept
                .entries
                .values()
                .map(|s| size(s) + ENTRY_OVERHEAD)
                .sum();
            assert_eq!(kept.bytes, held);
        }
        // At most two of 349 bytes fit in 1000: it started again each time.
        assert!(kept.entries.len() <= 2);
        // One already kept is not made again.
        let before = kept.bytes;
        kept.get_or_make(19, budget, size, || unreachable!());
        assert_eq!(kept.bytes, before);
    }

    #[test]
    fn trigram_filter_never_says_not_for_what_is_there() {
        let text = "the quick brown fox jumps over the lazy dog. zebrafish! ünïcødé 4711";
        let filter = TrigramFilter::of(text);
        for start in 0..text.len() {
            for end in start..=text.len() {
                if let Some(needle) = text.get(start..end) {
                    assert_eq!(filter.may_contain(needle), None, "{needle:?}");
                }
            }
        }
        // Too short to tell.
        assert_eq!(filter.may_contain("qz"), None);
        // Most absent words are known absent (a filter may err the other way).
        let absent = ["elephant", "giraffe", "kangaroo", "platypus", "wombat"];
        let said_no = absent
            .iter()
            .filter(|w| filter.may_contain(w) == Some(false))
            .count();
        assert!(said_no >= 4, "{said_no}");
    }

    #[test]
    fn trigram_filter_of_a_large_text() {
        let text: String = (0..20_000).map(|i| format!("w{i} ")).collect();
        let filter = TrigramFilter::of(&text);
        assert_eq!(filter.bits.len() * 64, 65_536);
        assert_eq!(filter.may_contain("w19999 w"), None);
        assert_eq!(filter.may_contain(""), None);
    }
}
