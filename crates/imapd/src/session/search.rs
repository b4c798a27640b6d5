//! SEARCH and UID SEARCH (RFC 3501 6.4.4; MODSEQ from RFC 7162 3.1.5).
//!
//! The criteria are compiled once into a [`Test`] tree with the search
//! strings already lower-cased, then judged in up to three rounds, each
//! reading more of the store than the last and only for the messages the
//! rounds before could not decide:
//!
//! 1. the mailbox index (one read): flags, `\Recent`, size, modseq, UID and
//!    sequence number;
//! 2. the header fields SEARCH compares (`search_infos`, in batches; the
//!    store keeps them per message, lower-cased once): envelope addresses,
//!    subject, the `Date:` field's day and the internal date;
//! 3. the raw messages (`messages_raw`, in batches of [`RAW_BATCH`]
//!    messages or [`RAW_BATCH_OCTETS`]): HEADER, BODY and TEXT.
//!
//! A test that lacks the data of a later round answers "unknown"; AND, OR
//! and NOT combine unknowns three-valued, so `SEEN SUBJECT x` reads the
//! summaries of the seen messages only. Batches of rounds 2 and 3 run a few
//! at a time (the store has several reader connections); memory stays
//! bounded by the batch sizes, whatever the mailbox size.
//!
//! Matching is a case-insensitive substring test on Unicode lower-cased
//! text: decoded subjects; each address as `name <local@domain>`; header
//! fields unfolded, raw and (for RFC 2047 words) decoded; bodies decoded
//! from quoted-printable and base64 and from their charset by mail-parser.
//! BEFORE, ON and SINCE compare the internal date's calendar day in UTC;
//! SENTBEFORE, SENTON and SENTSINCE the `Date:` field's day in its own
//! zone, and never match a message without a valid `Date:`. A sequence set
//! beyond the mailbox matches nothing rather than being an error. Messages
//! expunged by another session never match.

use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};
use store::{AddressHeader, IndexEntry, SearchInfo, StoreError, Uid};
use tokio_util::task::AbortOnDropHandle;

use super::{End, Session, State};
use crate::protocol::encode::Code;
use crate::protocol::{Date, Flag, SearchKey, SequenceSet, Tag};

/// Summaries read per store call in round 2.
const SUMMARY_BATCH: usize = 512;
/// Raw messages read per store call in round 3 ...
const RAW_BATCH: usize = 256;
/// ... and their most octets (a batch holds at least one message).
const RAW_BATCH_OCTETS: u64 = 16 << 20;
/// Batches under way at once.
const IN_FLIGHT: usize = 3;

/// The charsets a client may name; anything else is `BADCHARSET`.
const CHARSETS: [&str; 2] = ["UTF-8", "US-ASCII"];

/// How a date key compares a message's day with the key's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateCmp {
    Before,
    On,
    Since,
}

impl DateCmp {
    fn holds(self, day: i64, key: i64) -> bool {
        match self {
            DateCmp::Before => day < key,
            DateCmp::On => day == key,
            DateCmp::Since => day >= key,
        }
    }
}

/// A compiled search key; strings are lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    All,
    /// Has this flag or keyword (compared ignoring ASCII case).
    Flag(String),
    Recent,
    Seq(SequenceSet),
    Uid(SequenceSet),
    Larger(u64),
    Smaller(u64),
    ModSeq(u64),
    Internal(DateCmp, i64),
    /// The internal date is after (`true`) or at or before (`false`)
    /// this instant (WITHIN's YOUNGER and OLDER).
    Arrived(bool, i64),
    Sent(DateCmp, i64),
    Subject(String),
    Address(AddressHeader, String),
    /// Field name, value.
    Header(String, String),
    Body(String),
    Text(String),
    Not(Box<Test>),
    Or(Box<Test>, Box<Test>),
    And(Vec<Test>),
}

/// What a test needs read: the index (0), summaries (1) or raw bytes (2).
fn cost(t: &Test) -> u8 {
    match t {
        Test::All
        | Test::Flag(_)
        | Test::Recent
        | Test::Seq(_)
        | Test::Uid(_)
        | Test::Larger(_)
        | Test::Smaller(_)
        | Test::ModSeq(_) => 0,
        Test::Internal(..)
        | Test::Arrived(..)
        | Test::Sent(..)
        | Test::Subject(_)
        | Test::Address(..) => 1,
        Test::Header(..) | Test::Body(_) | Test::Text(_) => 2,
        Test::Not(t) => cost(t),
        Test::Or(a, b) => cost(a).max(cost(b)),
        Test::And(list) => list.iter().map(cost).max().unwrap_or(0),
    }
}

fn any_test(t: &Test, pred: &dyn Fn(&Test) -> bool) -> bool {
    pred(t)
        || match t {
            Test::Not(t) => any_test(t, pred),
            Test::Or(a, b) => any_test(a, pred) || any_test(b, pred),
            Test::And(list) => list.iter().any(|t| any_test(t, pred)),
            _ => false,
        }
}

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_lowercase()
}

/// Days since 1970-01-01 of a calendar date.
fn days_from_civil(d: Date) -> i64 {
    let (m, day) = (i64::from(d.month), i64::from(d.day));
    let y = i64::from(d.year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn flag_test(f: &Flag) -> Test {
    match f {
        Flag::Recent => Test::Recent,
        f => Test::Flag(f.to_text()),
    }
}

fn not(t: Test) -> Test {
    Test::Not(Box::new(t))
}

fn compile(key: SearchKey) -> Test {
    use SearchKey as K;
    let flag = |s: &str| Test::Flag(s.to_owned());
    let day = |d: Date| days_from_civil(d);
    match key {
        K::All => Test::All,
        K::Answered => flag("\\Answered"),
        K::Deleted => flag("\\Deleted"),
        K::Draft => flag("\\Draft"),
        K::Flagged => flag("\\Flagged"),
        K::Seen => flag("\\Seen"),
        K::Unanswered => not(flag("\\Answered")),
        K::Undeleted => not(flag("\\Deleted")),
        K::Undraft => not(flag("\\Draft")),
        K::Unflagged => not(flag("\\Flagged")),
        K::Unseen => not(flag("\\Seen")),
        K::Recent => Test::Recent,
        K::New => Test::And(vec![Test::Recent, not(flag("\\Seen"))]),
        K::Old => not(Test::Recent),
        K::Keyword(f) => flag_test(&f),
        K::Unkeyword(f) => not(flag_test(&f)),
        K::Larger(n) => Test::Larger(u64::from(n)),
        K::Smaller(n) => Test::Smaller(u64::from(n)),
        K::ModSeq(n) => Test::ModSeq(n),
        // Made UID sets before compiling (`session::stored_keys`); what
        // is left names no message.
        K::EmailId(_) | K::ThreadId(_) | K::SavedBefore(_) | K::SavedOn(_) | K::SavedSince(_) => {
            not(Test::All)
        }
        // Every mailbox keeps save dates.
        K::SaveDateSupported => Test::All,
        K::Older(n) => Test::Arrived(false, now() - i64::from(n)),
        K::Younger(n) => Test::Arrived(true, now() - i64::from(n)),
        K::Uid(set) => Test::Uid(set),
        K::SequenceSet(set) => Test::Seq(set),
        K::Before(d) => Test::Internal(DateCmp::Before, day(d)),
        K::On(d) => Test::Internal(DateCmp::On, day(d)),
        K::Since(d) => Test::Internal(DateCmp::Since, day(d)),
        K::SentBefore(d) => Test::Sent(DateCmp::Before, day(d)),
        K::SentOn(d) => Test::Sent(DateCmp::On, day(d)),
        K::SentSince(d) => Test::Sent(DateCmp::Since, day(d)),
        K::Subject(s) => Test::Subject(lower(&s)),
        K::From(s) => Test::Address(AddressHeader::From, lower(&s)),
        K::To(s) => Test::Address(AddressHeader::To, lower(&s)),
        K::Cc(s) => Test::Address(AddressHeader::Cc, lower(&s)),
        K::Bcc(s) => Test::Address(AddressHeader::Bcc, lower(&s)),
        K::Header(name, value) => Test::Header(lower(&name), lower(&value)),
        K::Body(s) => Test::Body(lower(&s)),
        K::Text(s) => Test::Text(lower(&s)),
        K::Not(k) => not(compile(*k)),
        K::Or(a, b) => Test::Or(Box::new(compile(*a)), Box::new(compile(*b))),
        K::And(list) => and(list.into_iter().map(compile).collect()),
    }
}

/// Seconds since the epoch, now.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// All of `tests`, the cheapest first.
fn and(mut tests: Vec<Test>) -> Test {
    if tests.len() == 1 {
        return tests.pop().unwrap_or(Test::All);
    }
    tests.sort_by_key(cost);
    Test::And(tests)
}

/// `needle` (lower-case) occurs in `hay`, ignoring case.
fn contains_folded(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() {
        // Lower-cased, a non-ASCII needle has no ASCII form to meet here.
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return needle.is_ascii() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(needle)
}

/// A raw message, with what searching it needs worked out at most once.
/// The header section is the stored one (`header_len`, worked out once at
/// delivery): HEADER and the header half of TEXT look only before it,
/// BODY and the body half of TEXT only after it.
struct RawMessage<'a> {
    raw: &'a [u8],
    header_len: usize,
    fields: OnceCell<Vec<(String, String)>>,
    parsed: OnceCell<Option<Message<'a>>>,
    header_text: OnceCell<String>,
    body_text: OnceCell<String>,
}

/// The header's fields: lower-case name and the value unfolded and
/// trimmed.
fn header_fields(header: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, value)) = fields.last_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon])
                .trim()
                .to_ascii_lowercase();
            fields.push((name, line[colon + 1..].to_vec()));
        }
    }
    fields
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).trim().to_owned()))
        .collect()
}

/// A header value as mail-parser decoded it, if it is text or addresses.
fn decoded_value(v: &HeaderValue<'_>) -> Option<String> {
    let addr = |a: &mail_parser::Addr<'_>| match (&a.name, &a.address) {
        (Some(n), Some(x)) => format!("{n} <{x}>"),
        (Some(n), None) => n.to_string(),
        (None, Some(x)) => x.to_string(),
        (None, None) => String::new(),
    };
    match v {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => Some(l.join(", ")),
        HeaderValue::Address(Address::List(l)) => {
            Some(l.iter().map(addr).collect::<Vec<_>>().join(", "))
        }
        HeaderValue::Address(Address::Group(groups)) => Some(
            groups
                .iter()
                .map(|g| {
                    let members: Vec<String> = g.addresses.iter().map(addr).collect();
                    format!(
                        "{}: {}",
                        g.name.as_deref().unwrap_or(""),
                        members.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    }
}

/// Appends the lower-cased text of a message's body parts: text parts
/// decoded, enclosed messages with their header.
fn body_text_of(message: &Message<'_>, out: &mut String, depth: usize) {
    for (i, part) in message.parts.iter().enumerate() {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(&t.to_lowercase());
                out.push('\n');
            }
            PartType::Message(inner) if depth < 8 && i > 0 => {
                // The enclosed message's header as the parse that found it
                // sees it; its offsets are relative to its own bytes.
                let raw = inner.raw_message.as_ref();
                let end = (inner.root_part().raw_body_offset() as usize).min(raw.len());
                out.push_str(&lower(&raw[..end]));
                body_text_of(inner, out, depth + 1);
            }
            _ => {}
        }
    }
}

impl<'a> RawMessage<'a> {
    /// `header_len`: the stored [`MessageSummary::header_len`].
    fn new(raw: &'a [u8], header_len: u64) -> RawMessage<'a> {
        RawMessage {
            raw,
            header_len: usize::try_from(header_len).map_or(raw.len(), |h| h.min(raw.len())),
            fields: OnceCell::new(),
            parsed: OnceCell::new(),
            header_text: OnceCell::new(),
            body_text: OnceCell::new(),
        }
    }

    fn header(&self) -> &'a [u8] {
        &self.raw[..self.header_len]
    }

    fn body(&self) -> &'a [u8] {
        &self.raw[self.header_len..]
    }

    fn fields(&self) -> &[(String, String)] {
        self.fields.get_or_init(|| header_fields(self.header()))
    }

    fn parsed(&self) -> Option<&Message<'a>> {
        self.parsed
            .get_or_init(|| {
                let raw = self.raw;
                catch_unwind(AssertUnwindSafe(|| MessageParser::default().parse(raw)))
                    .ok()
                    .flatten()
            })
            .as_ref()
    }

    /// The parse, if it splits header and body where the store did: only
    /// then are its decoded header fields all header and its decoded text
    /// all body. (mail-parser has its own idea of where an odd header
    /// ends; the stored boundary is the one every command uses.)
    fn parsed_on_boundary(&self) -> Option<&Message<'a>> {
        self.parsed().filter(|m| {
            m.parts
                .first()
                .is_some_and(|root| root.raw_body_offset() as usize == self.header_len)
        })
    }

    /// Decoded values of the top-level fields named `name` (lower-case).
    fn decoded_fields(&self, name: &str) -> Vec<String> {
        let Some(root) = self.parsed_on_boundary().and_then(|m| m.parts.first()) else {
            return Vec::new();
        };
        root.headers
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .filter_map(|h| decoded_value(&h.value))
            .collect()
    }

    fn header_matches(&self, name: &str, needle: &str) -> bool {
        let mut present = false;
        let mut encoded = false;
        for (_, value) in self.fields().iter().filter(|(n, _)| n == name) {
            if contains_folded(value, needle) {
                return true;
            }
            present = true;
            encoded |= value.contains("=?");
        }
        present
            && encoded
            && self
                .decoded_fields(name)
                .iter()
                .any(|v| contains_folded(v, needle))
    }

    /// The header, raw and with decoded values, lower-cased.
    fn header_text(&self) -> &str {
        self.header_text.get_or_init(|| {
            let mut text = lower(self.header());
            if let Some(root) = self.parsed_on_boundary().and_then(|m| m.parts.first()) {
                for h in &root.headers {
                    if let Some(v) = decoded_value(&h.value) {
                        text.push_str(&v.to_lowercase());
                        text.push('\n');
                    }
                }
            }
            text
        })
    }

    /// The body's text, decoded where mail-parser could (and agrees on
    /// where the body starts), else as stored; lower-cased. A message
    /// without a blank line has no body and no body text.
    fn body_text(&self) -> &str {
        self.body_text.get_or_init(|| {
            if self.body().is_empty() {
                return String::new();
            }
            match self.parsed_on_boundary() {
                Some(message) => {
                    let mut out = String::new();
                    body_text_of(message, &mut out, 0);
                    out
                }
                None => lower(self.body()),
            }
        })
    }
}

/// Whether a MODSEQ key is among the criteria (the result then says the
/// highest modseq, RFC 7162 3.1.5).
pub(super) fn has_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => has_modseq(k),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::And(list) => list.iter().any(has_modseq),
        _ => false,
    }
}

/// A message of the view: still to be judged, or matched.
pub(super) struct Candidate {
    pub seq: u32,
    pub recent: bool,
    pub entry: IndexEntry,
}

/// What is known of one message in a round.
struct Facts<'a> {
    candidate: &'a Candidate,
    info: Option<&'a SearchInfo>,
    raw: Option<&'a RawMessage<'a>>,
}

/// The compiled criteria and what `*` means for them.
struct Matcher {
    test: Test,
    /// Messages in the view (`*` of a sequence set).
    count: u32,
    /// The highest UID in the view (`*` of a UID set).
    max_uid: u32,
}

impl Matcher {
    fn new(criteria: Vec<SearchKey>, count: u32, max_uid: u32) -> Matcher {
        Matcher {
            test: and(criteria.into_iter().map(compile).collect()),
            count,
            max_uid,
        }
    }

    fn needs_summary(&self) -> bool {
        any_test(&self.test, &|t| {
            matches!(
                t,
                Test::Internal(..)
                    | Test::Arrived(..)
                    | Test::Sent(..)
                    | Test::Subject(_)
                    | Test::Address(..)
            )
        })
    }

    fn judge(&self, f: &Facts<'_>) -> Option<bool> {
        self.eval(&self.test, f)
    }

    /// `None` when the facts at hand cannot decide.
    fn eval(&self, t: &Test, f: &Facts<'_>) -> Option<bool> {
        let entry = &f.candidate.entry;
        match t {
            Test::All => Some(true),
            Test::Flag(name) => Some(entry.flags.iter().any(|x| x.eq_ignore_ascii_case(name))),
            Test::Recent => Some(f.candidate.recent),
            Test::Seq(set) => Some(set.contains(f.candidate.seq, self.count)),
            Test::Uid(set) => Some(set.contains(entry.uid.0, self.max_uid)),
            Test::Larger(n) => Some(entry.size > *n),
            Test::Smaller(n) => Some(entry.size < *n),
            Test::ModSeq(n) => Some(entry.modseq.0 >= *n),
            Test::Internal(cmp, day) => f
                .info
                .map(|i| cmp.holds(i.internal_date.div_euclid(86_400), *day)),
            Test::Arrived(after, at) => f.info.map(|i| (i.internal_date > *at) == *after),
            Test::Sent(cmp, day) => f
                .info
                .map(|i| i.fields.sent_day.is_some_and(|d| cmp.holds(d, *day))),
            Test::Subject(n) => f.info.map(|i| i.fields.subject_contains(n)),
            Test::Address(field, n) => f.info.map(|i| i.fields.address_contains(*field, n)),
            Test::Header(name, n) => f.raw.map(|r| r.header_matches(name, n)),
            Test::Body(n) => f.raw.map(|r| r.body_text().contains(n.as_str())),
            Test::Text(n) => f.raw.map(|r| {
                r.header_text().contains(n.as_str()) || r.body_text().contains(n.as_str())
            }),
            Test::Not(t) => self.eval(t, f).map(|b| !b),
            Test::Or(a, b) => {
                let a = self.eval(a, f);
                if a == Some(true) {
                    return a;
                }
                match (a, self.eval(b, f)) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                }
            }
            Test::And(list) => {
                let mut known = true;
                for t in list {
                    match self.eval(t, f) {
                        Some(false) => return Some(false),
                        None => known = false,
                        Some(true) => {}
                    }
                }
                known.then_some(true)
            }
        }
    }
}

type Judged = Vec<(Candidate, Option<bool>)>;

/// Judges one batch with what was read for it; a message the store no
/// longer has never matches.
fn judge_batch(
    matcher: &Matcher,
    batch: Vec<Candidate>,
    infos: Option<Vec<SearchInfo>>,
    raws: Option<Vec<(Uid, Vec<u8>)>>,
) -> Judged {
    let infos: Option<HashMap<Uid, SearchInfo>> =
        infos.map(|l| l.into_iter().map(|i| (i.uid, i)).collect());
    let raws: Option<HashMap<Uid, Vec<u8>>> = raws.map(|l| l.into_iter().collect());
    batch
        .into_iter()
        .map(|c| {
            let uid = c.entry.uid;
            let info = infos.as_ref().map(|m| m.get(&uid));
            let raw = raws.as_ref().map(|m| m.get(&uid));
            if matches!(info, Some(None)) || matches!(raw, Some(None)) {
                return (c, Some(false));
            }
            let info = info.flatten();
            // Round 3 always reads the envelopes too: they carry the
            // stored header length.
            let raw = raw
                .flatten()
                .zip(info)
                .map(|(r, i)| RawMessage::new(r, i.fields.header_len));
            let verdict = matcher.judge(&Facts {
                candidate: &c,
                info,
                raw: raw.as_ref(),
            });
            (c, verdict)
        })
        .collect()
}

/// Runs `job` over `candidates` in batches of at most `size` messages and
/// (but for a batch of one) `octets` octets, [`IN_FLIGHT`] at a time,
/// keeping their order.
///
/// The batches run as tasks owned by this future: when it is dropped (the
/// client went away mid-SEARCH, the session ended) or a batch fails, the
/// others are aborted and no further batch starts. A batch already parsing
/// on a blocking thread finishes that one batch, but nobody waits for it.
async fn in_batches<F, Fut>(
    candidates: Vec<Candidate>,
    size: usize,
    octets: u64,
    job: F,
) -> Result<Judged, StoreError>
where
    F: Fn(Vec<Candidate>) -> Fut,
    Fut: Future<Output = Result<Judged, StoreError>> + Send + 'static,
{
    let mut out = Vec::with_capacity(candidates.len());
    let mut rest = candidates.into_iter().peekable();
    let mut running = VecDeque::new();
    loop {
        while running.len() < IN_FLIGHT {
            let mut batch: Vec<Candidate> = Vec::new();
            let mut total = 0u64;
            while let Some(next) = rest.next_if(|c| {
                batch.is_empty()
                    || (batch.len() < size && total.saturating_add(c.entry.size) <= octets)
            }) {
                total += next.entry.size;
                batch.push(next);
            }
            if batch.is_empty() {
                break;
            }
            running.push_back(AbortOnDropHandle::new(tokio::spawn(job(batch))));
        }
        let Some(next) = running.pop_front() else {
            return Ok(out);
        };
        let judged = next
            .await
            .map_err(|e| StoreError::Database(format!("search task failed: {e}")))
            .and_then(|r| r);
        match judged {
            Ok(judged) => out.extend(judged),
            // The batches still running are aborted as `running` drops.
            Err(e) => return Err(e),
        }
    }
}

/// Moves the decided candidates into `matched`; returns the undecided.
fn sort_out(judged: Judged, matched: &mut Vec<Candidate>) -> Vec<Candidate> {
    let mut undecided = Vec::new();
    for (c, verdict) in judged {
        match verdict {
            Some(true) => matched.push(c),
            Some(false) => {}
            None => undecided.push(c),
        }
    }
    undecided
}

impl Session {
    /// The messages of the selected mailbox that match `criteria`, in
    /// sequence order; `None` when the command was answered already (an
    /// unknown charset, a store failure).
    pub(super) async fn search_matches(
        &mut self,
        tag: &Tag,
        charset: Option<&str>,
        criteria: Vec<SearchKey>,
    ) -> Result<Option<Vec<Candidate>>, End> {
        if let Some(cs) = charset {
            if !CHARSETS.iter().any(|c| c.eq_ignore_ascii_case(cs)) {
                tracing::debug!(charset = %cs, "unsupported search charset");
                let names = CHARSETS.iter().map(|c| c.to_string()).collect();
                self.no(tag, Some(Code::BadCharset(names)), "Charset not supported");
                return Ok(None);
            }
        }
        match self.find_matches(criteria).await? {
            Ok(matched) => Ok(Some(matched)),
            Err(e) => {
                self.search_failed(tag, e);
                Ok(None)
            }
        }
    }

    /// The messages of the selected mailbox that match `criteria`, in
    /// sequence order (none with nothing selected).
    pub(super) async fn find_matches(
        &mut self,
        criteria: Vec<SearchKey>,
    ) -> Result<Result<Vec<Candidate>, StoreError>, End> {
        let (account, mailbox) = match &self.state {
            State::Selected(a, s) => (a.id, s.mailbox),
            _ => return Ok(Ok(Vec::new())),
        };
        let criteria = match self.resolve_stored_keys(account, mailbox, criteria).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let store = self.ctx.shared.store.clone();
        let index = match store.mailbox_index(account, &mailbox).await {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let State::Selected(_, selected) = &self.state else {
            return Ok(Ok(Vec::new()));
        };
        let count = selected.uids.len() as u32;
        let max_uid = selected.uids.last().map_or(0, |u| u.0);
        let candidates: Vec<Candidate> = selected
            .uids
            .iter()
            .enumerate()
            .filter_map(|(i, uid)| {
                Some(Candidate {
                    seq: i as u32 + 1,
                    recent: selected.is_recent(*uid),
                    entry: super::fetch::find_entry(&index, *uid)?.clone(),
                })
            })
            .collect();
        let matcher = Arc::new(Matcher::new(criteria, count, max_uid));
        // A client that leaves meanwhile ends the search: its batches
        // stop and the store skips the reads nobody waits for.
        let judging = judge_all(store, account, mailbox, &matcher, candidates);
        Ok(self.io.until_gone(judging).await?.map(|mut matched| {
            matched.sort_unstable_by_key(|c| c.seq);
            matched
        }))
    }

    pub(super) async fn search(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        charset: Option<String>,
        criteria: Vec<SearchKey>,
    ) -> Result<(), End> {
        let with_modseq = criteria.iter().any(has_modseq);
        let Some(matched) = self
            .search_matches(tag, charset.as_deref(), criteria)
            .await?
        else {
            return Ok(());
        };
        let mut line = String::with_capacity(8 + matched.len() * 6);
        line.push_str("SEARCH");
        for c in &matched {
            let n = if by_uid { c.entry.uid.0 } else { c.seq };
            line.push(' ');
            line.push_str(&n.to_string());
        }
        if with_modseq {
            if let Some(highest) = matched.iter().map(|c| c.entry.modseq.0).max() {
                line.push_str(&format!(" (MODSEQ {highest})"));
            }
        }
        self.untagged(line.as_bytes());
        self.ok(
            tag,
            if by_uid {
                "UID SEARCH completed"
            } else {
                "SEARCH completed"
            },
        );
        Ok(())
    }

    fn search_failed(&mut self, tag: &Tag, e: StoreError) {
        self.store_failed(tag, e, "search the mailbox");
    }
}

/// The candidates that match, round by round.
async fn judge_all(
    store: store::Store,
    account: store::AccountId,
    mailbox: store::MailboxRef,
    matcher: &Arc<Matcher>,
    candidates: Vec<Candidate>,
) -> Result<Vec<Candidate>, StoreError> {
    let mut matched = Vec::new();
    let judged: Judged = candidates
        .into_iter()
        .map(|c| {
            let verdict = matcher.judge(&Facts {
                candidate: &c,
                info: None,
                raw: None,
            });
            (c, verdict)
        })
        .collect();
    let mut undecided = sort_out(judged, &mut matched);
    let needs_summary = matcher.needs_summary();
    if !undecided.is_empty() && needs_summary {
        let judged = in_batches(undecided, SUMMARY_BATCH, u64::MAX, |batch| {
            let (store, matcher, mailbox) = (store.clone(), matcher.clone(), mailbox.to_owned());
            async move {
                let uids: Vec<Uid> = batch.iter().map(|c| c.entry.uid).collect();
                let infos = store.search_infos(account, &mailbox, &uids).await?;
                Ok(judge_batch(&matcher, batch, Some(infos), None))
            }
        })
        .await?;
        undecided = sort_out(judged, &mut matched);
    }
    if !undecided.is_empty() {
        let judged = in_batches(undecided, RAW_BATCH, RAW_BATCH_OCTETS, |batch| {
            let (store, matcher, mailbox) = (store.clone(), matcher.clone(), mailbox.to_owned());
            async move {
                let uids: Vec<Uid> = batch.iter().map(|c| c.entry.uid).collect();
                // The search fields (cached) also give each message's
                // stored header length, where HEADER stops and BODY
                // starts.
                let infos = Some(store.search_infos(account, &mailbox, &uids).await?);
                let raws = store.messages_raw(account, &mailbox, &uids).await?;
                // Parsing and decoding bodies is CPU work.
                tokio::task::spawn_blocking(move || judge_batch(&matcher, batch, infos, Some(raws)))
                    .await
                    .map_err(|e| StoreError::Database(format!("search task failed: {e}")))
            }
        })
        .await?;
        // What the raw bytes cannot decide does not match.
        sort_out(judged, &mut matched);
    }
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{EmailAddress, MessageSummary, ModSeq, RawFields};

    fn set(s: &str) -> SequenceSet {
        SequenceSet::parse(s.as_bytes(), 100).expect("set")
    }

    fn candidate(seq: u32, uid: u32, flags: &[&str], recent: bool) -> Candidate {
        Candidate {
            seq,
            recent,
            entry: IndexEntry {
                uid: Uid(uid),
                size: 1000,
                modseq: ModSeq(u64::from(uid) * 10),
                flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            },
        }
    }

    fn info(uid: u32, subject: &str, date: Option<(i64, &str)>) -> SearchInfo {
        SearchInfo {
            uid: Uid(uid),
            internal_date: 1_795_262_400, // 2026-11-21 12:00 UTC
            fields: std::sync::Arc::new(store::SearchFields::of(&MessageSummary {
                subject: Some(subject.to_owned()),
                date: date.map(|d| d.0),
                raw: RawFields {
                    date: date.map(|d| d.1.as_bytes().to_vec()),
                    ..RawFields::default()
                },
                from: vec![EmailAddress {
                    name: Some("Alice Smith".into()),
                    address: Some("alice@example.com".into()),
                }],
                ..MessageSummary::default()
            })),
        }
    }

    fn matcher(keys: Vec<SearchKey>) -> Matcher {
        Matcher::new(keys, 10, 100)
    }

    fn judge(
        m: &Matcher,
        c: &Candidate,
        i: Option<&SearchInfo>,
        raw: Option<&[u8]>,
    ) -> Option<bool> {
        let raw = raw.map(|r| RawMessage::new(r, store::summarize(r).header_len));
        m.judge(&Facts {
            candidate: c,
            info: i,
            raw: raw.as_ref(),
        })
    }

    fn date(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(date(1970, 1, 1)), 0);
        assert_eq!(days_from_civil(date(2026, 11, 21)), 1_795_262_400 / 86_400);
        assert_eq!(days_from_civil(date(2000, 3, 1)), 11_017);
        assert_eq!(days_from_civil(date(1969, 12, 31)), -1);
    }

    #[test]
    fn folded_substrings() {
        assert!(contains_folded("Hello World", "o w"));
        assert!(contains_folded("anything", ""));
        assert!(!contains_folded("Hello", "hellos"));
        assert!(contains_folded("Grüße aus KÖLN", "köln"));
        assert!(!contains_folded("plain ascii", "ä"));
    }

    #[test]
    fn flags_recent_and_sets() {
        let seen = candidate(3, 30, &["\\Seen", "$Work"], false);
        let new = candidate(10, 100, &[], true);
        let m = matcher(vec![SearchKey::Seen]);
        assert_eq!(judge(&m, &seen, None, None), Some(true));
        assert_eq!(judge(&m, &new, None, None), Some(false));
        let m = matcher(vec![SearchKey::New]);
        assert_eq!(judge(&m, &new, None, None), Some(true));
        assert_eq!(judge(&m, &seen, None, None), Some(false));
        let m = matcher(vec![SearchKey::Keyword(Flag::Keyword("$work".into()))]);
        assert_eq!(judge(&m, &seen, None, None), Some(true));
        let m = matcher(vec![SearchKey::SequenceSet(set("9:*"))]);
        assert_eq!(judge(&m, &new, None, None), Some(true));
        assert_eq!(judge(&m, &seen, None, None), Some(false));
        let m = matcher(vec![SearchKey::Uid(set("*"))]);
        assert_eq!(judge(&m, &new, None, None), Some(true));
        let m = matcher(vec![SearchKey::Larger(999), SearchKey::Smaller(1001)]);
        assert_eq!(judge(&m, &seen, None, None), Some(true));
        let m = matcher(vec![SearchKey::ModSeq(300)]);
        assert_eq!(judge(&m, &seen, None, None), Some(true));
        assert_eq!(
            judge(&m, &candidate(1, 29, &[], false), None, None),
            Some(false)
        );
    }

    #[test]
    fn unknown_until_the_data_is_read() {
        let c = candidate(1, 1, &["\\Seen"], false);
        let i = info(1, "Quarterly Report", None);
        let subject = || SearchKey::Subject(b"report".to_vec());
        let m = matcher(vec![SearchKey::Seen, subject()]);
        assert_eq!(judge(&m, &c, None, None), None);
        assert_eq!(judge(&m, &c, Some(&i), None), Some(true));
        // Decided by the cheap key alone.
        let m = matcher(vec![SearchKey::Unseen, subject()]);
        assert_eq!(judge(&m, &c, None, None), Some(false));
        let m = matcher(vec![SearchKey::Or(
            Box::new(SearchKey::Seen),
            Box::new(SearchKey::Body(b"x".to_vec())),
        )]);
        assert_eq!(judge(&m, &c, None, None), Some(true));
        let m = matcher(vec![SearchKey::Not(Box::new(subject()))]);
        assert!(m.needs_summary());
        assert_eq!(judge(&m, &c, Some(&i), None), Some(false));
    }

    #[test]
    fn addresses_and_dates() {
        let c = candidate(1, 1, &[], false);
        // 2026-11-21 23:30 -0500 is 2026-11-22 04:30 UTC.
        let i = info(
            1,
            "x",
            Some((1_795_321_800, "Sat, 21 Nov 2026 23:30:00 -0500")),
        );
        for needle in ["alice", "EXAMPLE.com", "alice smith", "Smith <alice@"] {
            let m = matcher(vec![SearchKey::From(needle.as_bytes().to_vec())]);
            assert_eq!(judge(&m, &c, Some(&i), None), Some(true), "{needle}");
        }
        let m = matcher(vec![SearchKey::To(b"alice".to_vec())]);
        assert_eq!(judge(&m, &c, Some(&i), None), Some(false));
        let m = matcher(vec![SearchKey::SentOn(date(2026, 11, 21))]);
        assert_eq!(judge(&m, &c, Some(&i), None), Some(true));
        let m = matcher(vec![SearchKey::SentBefore(date(2026, 11, 21))]);
        assert_eq!(judge(&m, &c, Some(&i), None), Some(false));
        let m = matcher(vec![SearchKey::On(date(2026, 11, 21))]);
        assert_eq!(judge(&m, &c, Some(&i), None), Some(true));
        let m = matcher(vec![SearchKey::Since(date(2026, 11, 22))]);
        assert_eq!(judge(&m, &c, Some(&i), None), Some(false));
        let m = matcher(vec![SearchKey::Before(date(2026, 11, 22))]);
        assert_eq!(judge(&m, &c, Some(&i), None), Some(true));
        let undated = info(1, "x", None);
        let m = matcher(vec![SearchKey::SentSince(date(1970, 1, 1))]);
        assert_eq!(judge(&m, &c, Some(&undated), None), Some(false));
    }

    const MIME: &[u8] = b"From: a@example.com\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
X-Long: first\r\n second\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=C3=A9 au lait\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGlkZGVuIHRyZWFzdXJl\r\n\
--b--\r\n";

    #[test]
    fn headers_and_bodies_decoded() {
        let c = candidate(1, 1, &[], false);
        let yes = |key: SearchKey| {
            let m = matcher(vec![key]);
            judge(&m, &c, None, Some(MIME)).expect("decided")
        };
        let h = |n: &str, v: &str| SearchKey::Header(n.as_bytes().to_vec(), v.as_bytes().to_vec());
        assert!(yes(h("x-long", "first second")));
        assert!(yes(h("X-LONG", "")));
        assert!(!yes(h("X-Missing", "")));
        assert!(yes(h("subject", "grüße")));
        assert!(yes(h("subject", "=?utf-8?q")));
        assert!(yes(SearchKey::Body("café".as_bytes().to_vec())));
        assert!(yes(SearchKey::Body(b"HIDDEN treasure".to_vec())));
        assert!(!yes(SearchKey::Body(b"x-long".to_vec())));
        assert!(yes(SearchKey::Text(b"x-long".to_vec())));
        assert!(yes(SearchKey::Text(b"treasure".to_vec())));
        assert!(yes(SearchKey::Text(
            "GRÜSSE"
                .to_lowercase()
                .replace("ss", "ß")
                .as_bytes()
                .to_vec()
        )));
        assert!(!yes(SearchKey::Text(b"nowhere".to_vec())));
    }

    #[test]
    fn unparsable_body_is_searched_raw() {
        let raw = b"Subject: x\n\nplain body text\n";
        let r = RawMessage::new(raw, store::summarize(raw).header_len);
        assert_eq!(r.header(), b"Subject: x\n\n");
        assert!(r.body_text().contains("body text"));
    }

    /// Each side of the stored boundary is searched on its own, however
    /// the header ends.
    #[test]
    fn header_and_body_split_at_the_stored_boundary() {
        let sides = |raw: &[u8]| {
            let r = RawMessage::new(raw, store::summarize(raw).header_len);
            (r.header_text().to_owned(), r.body_text().to_owned())
        };
        // No blank line: all header, no body.
        let (h, b) = sides(b"Subject: alpha\r\nX-Note: beta\r\n");
        assert!(h.contains("beta") && b.is_empty());
        // A header ending in LF CR LF.
        let (h, b) = sides(b"Subject: alpha\n\r\nX-Note: beta\r\n");
        assert!(h.contains("alpha") && !h.contains("beta"), "{h}");
        assert!(b.contains("beta") && !b.contains("alpha"), "{b}");
        // A body that begins with an empty line.
        let (h, b) = sides(b"Subject: alpha\n\n\nX-Note: beta\n");
        assert!(!h.contains("beta") && b.contains("beta"));
        // A message that begins with an empty line is all body.
        let (h, b) = sides(b"\r\nSubject: alpha\r\n");
        assert!(!h.contains("alpha") && b.contains("alpha"));
    }

    /// A SEARCH whose session goes away leaves no batch running: the
    /// batch tasks are aborted with the future that started them.
    #[tokio::test]
    async fn batches_stop_when_the_search_is_dropped() {
        struct Running(Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Arc::new(tokio::sync::Notify::new());
        let candidates: Vec<Candidate> = (1..=10).map(|n| candidate(n, n, &[], false)).collect();
        let (count, start) = (running.clone(), started.clone());
        let search = in_batches(candidates, 1, u64::MAX, move |_batch| {
            let (running, started) = (count.clone(), start.clone());
            async move {
                running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _guard = Running(running);
                started.notify_one();
                // A batch that takes as long as a huge mailbox would.
                std::future::pending::<()>().await;
                Ok(Vec::new())
            }
        });
        let search = tokio::spawn(search);
        started.notified().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            running.load(std::sync::atomic::Ordering::SeqCst),
            IN_FLIGHT,
            "the batches under way"
        );
        // The client disconnects: its session, and the search, are dropped.
        search.abort();
        let _ = search.await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while running.load(std::sync::atomic::Ordering::SeqCst) != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "search batches still running after the session went away"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn batches_bounded_by_count_and_octets() {
        let sizes: Vec<u64> = vec![10, 10, 10, 10, 50, 10, 10, 10];
        let candidates: Vec<Candidate> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let mut c = candidate(i as u32 + 1, i as u32 + 1, &[], false);
                c.entry.size = size;
                c
            })
            .collect();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let judged = in_batches(candidates, 3, 25, |batch| {
            let seen = seen.clone();
            async move {
                let seqs: Vec<u32> = batch.iter().map(|c| c.seq).collect();
                seen.lock().expect("lock").push(seqs);
                Ok(batch.into_iter().map(|c| (c, Some(true))).collect())
            }
        })
        .await
        .expect("batches");
        let order: Vec<u32> = judged.iter().map(|(c, _)| c.seq).collect();
        assert_eq!(order, [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut batches = seen.lock().expect("lock").clone();
        batches.sort();
        assert_eq!(
            batches,
            [vec![1, 2], vec![3, 4], vec![5], vec![6, 7], vec![8]]
        );
    }
}
