//! Mailpit's search syntax, parsed once per request and decided per
//! message.
//!
//! A query is terms separated by white space, all of which must hold.
//! A term is a bare word (`invoice`), a quoted phrase (`"john doe"`), or
//! `field:value` where the value may be quoted (`to:"john doe"`); `-` or
//! `!` in front negates it. Fields: `to:`, `from:`, `cc:`, `bcc:`,
//! `reply-to:`, `addressed:` (any of those five), `subject:`,
//! `message-id:`, `tag:`, `is:read`, `is:unread`, `is:tagged`,
//! `has:attachment`, `after:DATE`, `before:DATE`. A word with a colon
//! whose prefix is none of those (`https://x`) is a bare word. Matching
//! ignores case (Unicode lower case, which is more than Mailpit does).
//!
//! Where Postern differs, on purpose:
//! - `to:` also matches the address of the mailbox the copy was delivered
//!   to (its envelope recipient), so a Bcc'd recipient's copy is found by
//!   `to:` its address.
//! - Bare words and phrases match the subject, the address fields (names
//!   and addresses), the Message-ID and the decoded text of the body;
//!   attachments' contents are not searched.
//! - A date that does not parse is a 400 error naming it (Mailpit logs and
//!   ignores it). Dates: `2024-04-01`, `2024/04/01`, either with
//!   ` HH:MM[:SS]` or `THH:MM[:SS]`, RFC 3339 (`2024-04-01T10:00:00+02:00`),
//!   or Unix seconds. Without a zone they are read in the request's `tz`
//!   (`UTC` or `±HH:MM`; default UTC). `after:` holds for mail that
//!   arrived at or after the instant, `before:` for mail that arrived
//!   before it.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use store::ArrivedMessage;

/// The longest query taken, in bytes.
pub const MAX_QUERY_LEN: usize = 4096;
/// The most terms one query may have.
pub const MAX_TERMS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum AddressField {
    To,
    From,
    Cc,
    Bcc,
    ReplyTo,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// Lower-cased text anywhere (header fields searched or body).
    Text(String),
    Address(AddressField, String),
    Subject(String),
    MessageId(String),
    Tag(String),
    Read,
    Tagged,
    HasAttachment,
    /// Arrived at or after (seconds since the epoch).
    After(i64),
    /// Arrived before.
    Before(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negated: bool,
    condition: Condition,
}

/// A parsed query; the empty query matches every message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    terms: Vec<Term>,
}

/// Whether a message matches, as far as what was given tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Yes,
    No,
    /// The body's text decides; call again with it.
    NeedBody,
}

/// Reads a `tz` parameter: `UTC` (and its spellings) or `±HH:MM`.
pub fn parse_zone(tz: Option<&str>) -> Result<FixedOffset, String> {
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    let Some(tz) = tz.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(utc);
    };
    if ["utc", "gmt", "z", "etc/utc", "etc/gmt", "universal", "zulu"]
        .contains(&tz.to_ascii_lowercase().as_str())
    {
        return Ok(utc);
    }
    let offset = (|| {
        let sign = match tz.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let rest = &tz[1..];
        let (h, m) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "0"),
        };
        let h: i32 = h.parse().ok()?;
        let m: i32 = m.parse().ok()?;
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
    })();
    offset.ok_or_else(|| {
        format!("time zone {tz:?} is not supported: give UTC or an offset such as +02:00")
    })
}

/// Reads a date of `after:`/`before:` as seconds since the epoch.
fn parse_date(text: &str, zone: &FixedOffset) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp());
    }
    let text = text.replace('/', "-");
    let local = if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        date.and_time(NaiveTime::MIN)
    } else {
        [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok())?
    };
    zone.from_local_datetime(&local)
        .single()
        .map(|dt| dt.timestamp())
}

/// Splits a query into raw terms: (negated, text before a colon or None,
/// value), honouring quotes.
fn tokens(input: &str) -> Result<Vec<(bool, Option<String>, String)>, String> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let negated = first == '-' || first == '!';
        if negated {
            chars.next();
        }
        let mut field: Option<String> = None;
        let mut value = String::new();
        let mut quoted = false;
        loop {
            match chars.peek().copied() {
                None => break,
                Some(c) if c.is_whitespace() => break,
                Some('"') => {
                    chars.next();
                    quoted = true;
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '"' {
                            closed = true;
                            break;
                        }
                        value.push(c);
                    }
                    if !closed {
                        return Err("unterminated quote in query".into());
                    }
                }
                Some(':') if field.is_none() && !quoted && !value.is_empty() => {
                    chars.next();
                    field = Some(std::mem::take(&mut value));
                }
                Some(c) => {
                    chars.next();
                    value.push(c);
                }
            }
        }
        if field.is_none() && value.is_empty() && !quoted {
            if negated {
                return Err("a lone - or ! in the query negates nothing".into());
            }
            continue;
        }
        out.push((negated, field, value));
    }
}

impl Query {
    /// Parses `input`; dates without a zone are read in `zone`. The error
    /// says what is wrong, for a 400 answer.
    pub fn parse(input: &str, zone: &FixedOffset) -> Result<Query, String> {
        if input.len() > MAX_QUERY_LEN {
            return Err(format!("query longer than {MAX_QUERY_LEN} bytes"));
        }
        let mut terms = Vec::new();
        for (negated, field, value) in tokens(input)? {
            if terms.len() == MAX_TERMS {
                return Err(format!("query has more than {MAX_TERMS} terms"));
            }
            let lower = value.to_lowercase();
            // `is:unread` is `!is:read`.
            let unread = field
                .as_deref()
                .is_some_and(|f| f.eq_ignore_ascii_case("is"))
                && (lower == "unread" || lower == "unseen");
            let condition = match field.as_deref().map(str::to_ascii_lowercase) {
                None => Condition::Text(lower),
                Some(name) => {
                    let known = [
                        "to",
                        "from",
                        "cc",
                        "bcc",
                        "reply-to",
                        "addressed",
                        "subject",
                        "message-id",
                        "tag",
                        "is",
                        "has",
                        "after",
                        "before",
                    ];
                    if !known.contains(&name.as_str()) {
                        // Not a field: the whole word, colon included.
                        let word = format!("{}:{value}", field.unwrap_or_default());
                        terms.push(Term {
                            negated,
                            condition: Condition::Text(word.to_lowercase()),
                        });
                        continue;
                    }
                    if value.trim().is_empty() {
                        return Err(format!("{name}: needs a value"));
                    }
                    match name.as_str() {
                        "to" => Condition::Address(AddressField::To, lower),
                        "from" => Condition::Address(AddressField::From, lower),
                        "cc" => Condition::Address(AddressField::Cc, lower),
                        "bcc" => Condition::Address(AddressField::Bcc, lower),
                        "reply-to" => Condition::Address(AddressField::ReplyTo, lower),
                        "addressed" => Condition::Address(AddressField::Any, lower),
                        "subject" => Condition::Subject(lower),
                        "message-id" => Condition::MessageId(strip_brackets(&lower).to_owned()),
                        "tag" => Condition::Tag(lower),
                        "is" => match lower.as_str() {
                            "read" | "seen" => Condition::Read,
                            "unread" | "unseen" => Condition::Read,
                            "tagged" => Condition::Tagged,
                            _ => return Err(format!("unknown filter is:{value}")),
                        },
                        "has" => match lower.as_str() {
                            "attachment" | "attachments" => Condition::HasAttachment,
                            _ => return Err(format!("unknown filter has:{value}")),
                        },
                        "after" | "before" => {
                            let at = parse_date(&value, zone)
                                .ok_or_else(|| format!("{name}: cannot read the date {value:?}"))?;
                            if name == "after" {
                                Condition::After(at)
                            } else {
                                Condition::Before(at)
                            }
                        }
                        _ => unreachable!("every known field is handled"),
                    }
                }
            };
            let negated = negated != unread;
            terms.push(Term { negated, condition });
        }
        Ok(Query { terms })
    }

    /// True if the query has no terms (every message matches).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Decides `message`, with the body's lower-cased text if it has been
    /// read.
    pub fn decide(&self, message: &ArrivedMessage, body: Option<&str>) -> Decision {
        match body {
            Some(text) => self.decide_with(message, |needle| Some(text.contains(needle))),
            None => self.decide_with(message, |_| None),
        }
    }

    /// Decides `message` where `body` tells, for a lower-cased needle,
    /// whether the body's lower-cased text contains it, or `None` if it
    /// cannot tell without the text (a filter that only knows "surely
    /// not" answers `Some(false)` or `None`).
    pub fn decide_with(
        &self,
        message: &ArrivedMessage,
        body: impl Fn(&str) -> Option<bool>,
    ) -> Decision {
        self.decide_with_header(message, None, body)
    }

    /// Whether the query has a bare word or phrase (which a message's
    /// [`header_text`] helps decide).
    pub fn has_text(&self) -> bool {
        self.terms
            .iter()
            .any(|t| matches!(t.condition, Condition::Text(_)))
    }

    /// [`Query::decide_with`], with the message's [`header_text`] if the
    /// caller keeps it: a bare word is then looked for in it once, not in
    /// each field.
    pub fn decide_with_header(
        &self,
        message: &ArrivedMessage,
        header: Option<&str>,
        body: impl Fn(&str) -> Option<bool>,
    ) -> Decision {
        let mut unsure = false;
        for term in &self.terms {
            let held = match holds(&term.condition, message, header, &body) {
                Some(held) => held,
                None => {
                    unsure = true;
                    continue;
                }
            };
            if held == term.negated {
                return Decision::No;
            }
        }
        if unsure {
            Decision::NeedBody
        } else {
            Decision::Yes
        }
    }
}

fn strip_brackets(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .unwrap_or(id)
}

/// Whether `haystack`, lower-cased, contains `needle` (lower-cased
/// already): `haystack.to_lowercase().contains(needle)`, without making
/// the lower-cased copy when the haystack is ASCII (a search looks at
/// every message's fields).
fn contains_folded(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if !haystack.is_ascii() {
        return haystack.to_lowercase().contains(needle);
    }
    // An ASCII haystack lower-cases to ASCII: no other needle is in it.
    if !needle.is_ascii() {
        return false;
    }
    // Where the needle's first byte is, in either case (memchr's fast
    // scan), and then the rest compared there.
    let (hay, pin) = (haystack.as_bytes(), needle.as_bytes());
    let (first, rest) = (pin[0], &pin[1..]);
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), hay).any(|at| {
        hay.get(at + 1..at + pin.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

fn addresses_contain(list: &[store::EmailAddress], needle: &str) -> bool {
    // Only a needle with one of the characters that join name and address
    // in "name <address>" can be found there but in neither alone.
    let spans = needle.contains([' ', '<', '>']);
    list.iter().any(|a| {
        a.address
            .as_deref()
            .is_some_and(|addr| contains_folded(addr, needle))
            || a.name
                .as_deref()
                .is_some_and(|name| contains_folded(name, needle))
            || spans
                && match (&a.name, &a.address) {
                    (Some(name), Some(addr)) => {
                        format!("{name} <{addr}>").to_lowercase().contains(needle)
                    }
                    _ => false,
                }
    })
}

/// Whether the condition holds; `None` when only the body can tell.
fn holds(
    condition: &Condition,
    m: &ArrivedMessage,
    header: Option<&str>,
    body: &impl Fn(&str) -> Option<bool>,
) -> Option<bool> {
    let s = &m.summary;
    Some(match condition {
        Condition::Address(field, needle) => match field {
            AddressField::To => {
                addresses_contain(&s.to, needle) || contains_folded(&m.address, needle)
            }
            AddressField::From => addresses_contain(&s.from, needle),
            AddressField::Cc => addresses_contain(&s.cc, needle),
            AddressField::Bcc => addresses_contain(&s.bcc, needle),
            AddressField::ReplyTo => addresses_contain(&s.reply_to, needle),
            AddressField::Any => [&s.from, &s.to, &s.cc, &s.bcc, &s.reply_to]
                .iter()
                .any(|list| addresses_contain(list, needle)),
        },
        Condition::Subject(needle) => s
            .subject
            .as_deref()
            .is_some_and(|t| contains_folded(t, needle)),
        Condition::MessageId(id) => s
            .message_id
            .as_deref()
            .is_some_and(|m| strip_brackets(m).eq_ignore_ascii_case(id)),
        Condition::Tag(tag) => tags(m).any(|t| t.eq_ignore_ascii_case(tag)),
        Condition::Tagged => tags(m).next().is_some(),
        Condition::Read => is_read(m),
        Condition::HasAttachment => s.attachments > 0,
        Condition::After(at) => m.internal_date >= *at,
        Condition::Before(at) => m.internal_date < *at,
        Condition::Text(needle) => {
            let in_header = match header {
                // No field holds a NUL, so none is found across two.
                Some(text) if !needle.contains('\0') => text.contains(needle.as_str()),
                _ => text_in_fields(s, needle),
            };
            if in_header {
                true
            } else {
                return body(needle);
            }
        }
    })
}

/// The fields a bare word is looked for in before the body: subject,
/// the address lists, Message-ID and the preview.
fn text_in_fields(s: &store::MessageSummary, needle: &str) -> bool {
    s.subject
        .as_deref()
        .is_some_and(|t| contains_folded(t, needle))
        || [&s.from, &s.to, &s.cc, &s.bcc, &s.reply_to]
            .iter()
            .any(|list| addresses_contain(list, needle))
        || s.message_id
            .as_deref()
            .is_some_and(|t| contains_folded(t, needle))
        || s.preview
            .as_deref()
            .is_some_and(|t| contains_folded(t, needle))
}

/// The fields [`text_in_fields`] looks in, lower-cased and joined with
/// NULs, each address also as `name <address>`: a needle is in this
/// text exactly when it is in one of those fields.
pub fn header_text(m: &ArrivedMessage) -> String {
    let s = &m.summary;
    let mut text = String::new();
    let mut add = |field: &str| {
        text.push_str(&field.to_lowercase());
        text.push('\0');
    };
    if let Some(subject) = &s.subject {
        add(subject);
    }
    for list in [&s.from, &s.to, &s.cc, &s.bcc, &s.reply_to] {
        for a in list.iter() {
            if let Some(address) = &a.address {
                add(address);
            }
            if let Some(name) = &a.name {
                add(name);
            }
            if let (Some(name), Some(address)) = (&a.name, &a.address) {
                add(&format!("{name} <{address}>"));
            }
        }
    }
    if let Some(id) = &s.message_id {
        add(id);
    }
    if let Some(preview) = &s.preview {
        add(preview);
    }
    text
}

/// The message's tags: its IMAP keywords (flags without a backslash).
pub fn tags(m: &ArrivedMessage) -> impl Iterator<Item = &str> {
    m.flags
        .iter()
        .filter(|f| !f.starts_with('\\'))
        .map(String::as_str)
}

/// Whether the message has `\Seen`.
pub fn is_read(m: &ArrivedMessage) -> bool {
    m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use store::{AccountId, EmailAddress, MailboxId, MailboxRef, MessageSummary, ModSeq, Uid};

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn addr(name: Option<&str>, address: &str) -> EmailAddress {
        EmailAddress {
            name: name.map(str::to_owned),
            address: Some(address.to_owned()),
        }
    }

    fn message(subject: &str, read: bool, attachments: u32) -> ArrivedMessage {
        let summary = MessageSummary {
            subject: Some(subject.to_owned()),
            from: vec![addr(Some("Admin Person"), "admin@example.com")],
            to: vec![addr(Some("John Doe"), "john@example.org")],
            cc: vec![addr(None, "boss@example.org")],
            message_id: Some("<12345.678@localhost>".into()),
            preview: Some("Your code is 4711. Welcome aboard".into()),
            attachments,
            ..MessageSummary::default()
        };
        let mut flags = vec![];
        if read {
            flags.push("\\Seen".to_owned());
        }
        flags.push("Important".to_owned());
        ArrivedMessage {
            arrival: 7,
            account: AccountId(1),
            address: "hidden@bcc.example".into(),
            captured: true,
            mailbox: MailboxRef {
                id: MailboxId(1),
                uid_validity: 1,
            },
            mailbox_name: "INBOX".into(),
            uid: Uid(1),
            modseq: ModSeq(1),
            flags,
            size: 100,
            internal_date: 1_711_929_600, // 2024-04-01T00:00:00Z
            envelope: None,
            summary: Arc::new(summary),
        }
    }

    fn decide(query: &str, m: &ArrivedMessage) -> Decision {
        Query::parse(query, &utc()).unwrap().decide(m, None)
    }

    #[test]
    fn fields_and_negation() {
        let m = message("Invoice 42", false, 1);
        for q in [
            "",
            "invoice",
            "INVOICE 42",
            "\"invoice 42\"",
            "subject:invoice",
            "subject:\"Invoice 42\"",
            "to:\"john doe\"",
            "to:john@example.org",
            "to:hidden@bcc.example",
            "from:admin",
            "cc:boss",
            "addressed:boss",
            "message-id:12345.678@localhost",
            "message-id:<12345.678@LOCALHOST>",
            "is:unread",
            "!is:read",
            "has:attachment",
            "tag:important",
            "is:tagged",
            "-from:nobody",
            "!subject:receipt",
            "code 4711",
            "after:2024-04-01",
            "after:2024/03/31",
            "before:2024-04-01T00:00:01Z",
            "before:\"2024-04-01 00:00:01\"",
        ] {
            assert_eq!(decide(q, &m), Decision::Yes, "{q}");
        }
        for q in [
            "is:read",
            "-is:unread",
            "subject:receipt",
            "-invoice",
            "from:john",
            "bcc:boss",
            "message-id:12345",
            "!has:attachment",
            "after:2024-04-01T00:00:01Z",
            "before:2024-04-01",
            "tag:other",
            "invoice -to:john",
        ] {
            assert_eq!(decide(q, &m), Decision::No, "{q}");
        }
        // What the summary cannot tell, the body does.
        assert_eq!(decide("zebra", &m), Decision::NeedBody);
        assert_eq!(decide("-zebra", &m), Decision::NeedBody);
        assert_eq!(decide("zebra is:read", &m), Decision::No);
        let q = Query::parse("zebra -lion", &utc()).unwrap();
        assert_eq!(q.decide(&m, Some("a zebra here")), Decision::Yes);
        assert_eq!(q.decide(&m, Some("a zebra and a lion")), Decision::No);
        assert_eq!(q.decide(&m, Some("nothing")), Decision::No);
    }

    #[test]
    fn folded_matching_is_lower_casing_then_contains() {
        // The same answers as `haystack.to_lowercase().contains(needle)`.
        let cases = [
            ("Invoice 42", "invoice"),
            ("Invoice 42", "voice 4"),
            ("Invoice 42", "nothing"),
            ("Invoice 42", ""),
            ("Invoice 42", "ünï"),
            ("Ünïcødé Mail", "ünïcødé"),
            ("Ünïcødé Mail", "mail"),
            // Non-ASCII capitals that lower-case to ASCII.
            ("\u{212A}ELVIN", "kelvin"),
            ("X\u{130}", "xi"),
            ("ΟΔΟΣ", "οδος"),
            ("short", "much longer than the haystack"),
        ];
        for (haystack, needle) in cases {
            assert_eq!(
                contains_folded(haystack, needle),
                haystack.to_lowercase().contains(needle),
                "{haystack:?} {needle:?}"
            );
        }
    }

    #[test]
    fn address_terms_span_name_and_address() {
        let m = message("x", false, 0);
        for q in [
            "to:\"doe <john@\"",
            "to:\"john doe <john@example.org>\"",
            "\"doe <john\"",
            "to:john@",
        ] {
            assert_eq!(decide(q, &m), Decision::Yes, "{q}");
        }
        assert_eq!(decide("to:\"doe john\"", &m), Decision::No);
    }

    #[test]
    fn a_body_filter_decides_what_it_knows() {
        let m = message("Invoice 42", false, 0);
        let q = Query::parse("zebra -lion", &utc()).unwrap();
        // "Surely not" for both: the lion term holds, the zebra term not.
        assert_eq!(q.decide_with(&m, |_| Some(false)), Decision::No);
        // Unknown zebra, surely no lion: still the body's to decide.
        let zebra_unknown = |n: &str| if n == "zebra" { None } else { Some(false) };
        assert_eq!(q.decide_with(&m, zebra_unknown), Decision::NeedBody);
        // What the header fields hold needs no body at all.
        let q = Query::parse("invoice", &utc()).unwrap();
        assert_eq!(q.decide_with(&m, |_| Some(false)), Decision::Yes);
    }

    #[test]
    fn odd_words_and_bad_queries() {
        let m = message("see https://x.test/a now", true, 0);
        assert_eq!(decide("https://x.test/a", &m), Decision::Yes);
        assert_eq!(decide("is:read !has:attachment", &m), Decision::Yes);
        for bad in [
            "\"open",
            "to:",
            "subject:\"\"",
            "is:flagged",
            "has:wings",
            "after:yesterday-ish",
            "before:2024-13-45",
            "-",
        ] {
            assert!(Query::parse(bad, &utc()).is_err(), "{bad}");
        }
        assert!(Query::parse(&"a ".repeat(MAX_TERMS + 1), &utc()).is_err());
        assert!(Query::parse(&"a".repeat(MAX_QUERY_LEN + 1), &utc()).is_err());
    }

    #[test]
    fn dates_and_zones() {
        let plus2 = parse_zone(Some("+02:00")).unwrap();
        assert_eq!(parse_date("2024-04-01", &utc()), Some(1_711_929_600));
        assert_eq!(parse_date("2024-04-01", &plus2), Some(1_711_929_600 - 7200));
        assert_eq!(parse_date("1711929600", &plus2), Some(1_711_929_600));
        assert_eq!(
            parse_date("2024-04-01T02:00:00+02:00", &utc()),
            Some(1_711_929_600)
        );
        assert_eq!(parse_date("2024/04/01 00:01", &utc()), Some(1_711_929_660));
        assert_eq!(parse_zone(Some("UTC")).unwrap(), utc());
        assert_eq!(parse_zone(None).unwrap(), utc());
        assert_eq!(parse_zone(Some("-0530")).unwrap().local_minus_utc(), -19800);
        assert!(parse_zone(Some("Pacific/Auckland")).is_err());
        assert!(parse_zone(Some("+25:00")).is_err());
    }

    #[test]
    fn contains_folded_matches_in_any_case_and_never_past_the_end() {
        assert!(contains_folded("Your Order Has Shipped", "order has"));
        assert!(contains_folded("ZEBRAFISH", "zebrafish"));
        assert!(contains_folded("aaab", "aab"));
        assert!(contains_folded("x", ""));
        assert!(!contains_folded("zebrafis", "zebrafish"));
        assert!(!contains_folded("a zebra fish", "zebrafish"));
        assert!(!contains_folded("plain", "pläin"));
        assert!(contains_folded("Grüße aus Köln", "köln"));
    }

    #[test]
    fn header_text_decides_bare_words_as_the_fields_do() {
        let mut m = message("Grüße: Your Order #42 has SHIPPED", false, 0);
        Arc::get_mut(&mut m.summary).unwrap().reply_to =
            vec![addr(Some("Ünïcode Name"), "reply@x.example")];
        let text = header_text(&m);
        for q in [
            "order",
            "shipped",
            "grüße",
            "GRÜSSE",
            "\"order #42\"",
            "admin",
            "admin person",
            "\"person <admin@\"",
            "\"doe <john@example.org>\"",
            "boss@",
            "12345.678",
            "4711",
            "aboard",
            "ünïcode",
            "\"name <reply\"",
            "hidden",
            "bcc.example",
            "nowhere",
            "\"shipped\u{0}admin\"",
            "-order",
            "order -nowhere",
            "zz",
        ] {
            let query = Query::parse(q, &utc()).unwrap();
            for body in [Some(false), Some(true), None] {
                assert_eq!(
                    query.decide_with_header(&m, Some(&text), |_| body),
                    query.decide_with(&m, |_| body),
                    "{q:?} with body {body:?}"
                );
            }
        }
    }
}
