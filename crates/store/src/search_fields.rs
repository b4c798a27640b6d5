//! What IMAP SEARCH's header keys compare in a message (SUBJECT, FROM,
//! TO, CC, BCC, the SENT* days), in the compact form the store keeps per
//! blob ([`SearchFields`]), and the per-message facts SEARCH reads with
//! it ([`SearchInfo`]).
//!
//! The form is made once from a message's summary: the texts lower-cased
//! (so a search compares bytes, no case folding per message), all in one
//! allocation, and the sent day worked out in the `Date:` field's own
//! zone. A few hundred bytes instead of a summary's few KiB, so that the
//! cache of them holds a whole large mailbox and a repeated SEARCH reads
//! no summary again.

use std::sync::Arc;

use crate::{EmailAddress, MessageSummary, Timestamp, Uid};

/// The address headers SEARCH looks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressHeader {
    From,
    To,
    Cc,
    Bcc,
}

impl AddressHeader {
    const ALL: [AddressHeader; 4] = [
        AddressHeader::From,
        AddressHeader::To,
        AddressHeader::Cc,
        AddressHeader::Bcc,
    ];

    fn of(self, s: &MessageSummary) -> &[EmailAddress] {
        match self {
            AddressHeader::From => &s.from,
            AddressHeader::To => &s.to,
            AddressHeader::Cc => &s.cc,
            AddressHeader::Bcc => &s.bcc,
        }
    }
}

/// A message's header fields as SEARCH compares them.
///
/// `texts` holds, each as a little-endian `u32` length and its bytes:
/// the subject, then for each [`AddressHeader`] in order a `u32` count
/// and that many addresses (`name <address>`, or whichever part there
/// is). Every text is lower-cased (`str::to_lowercase`), so a
/// lower-cased needle is a plain substring of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchFields {
    /// The day the message says it was sent (its `Date:` in that field's
    /// own zone), in days since 1970-01-01; `None` without a date.
    pub sent_day: Option<i64>,
    /// Byte length of the header section, the blank line included: where
    /// HEADER stops and BODY starts.
    pub header_len: u64,
    texts: Box<[u8]>,
}

/// One message as SEARCH reads it beyond its index entry.
#[derive(Debug, Clone)]
pub struct SearchInfo {
    pub uid: Uid,
    pub internal_date: Timestamp,
    pub fields: Arc<SearchFields>,
}

fn lower(text: &str) -> std::borrow::Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            text.to_ascii_lowercase().into()
        } else {
            text.into()
        }
    } else {
        text.to_lowercase().into()
    }
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    let text = lower(text);
    // A header field longer than 4 GiB cannot reach the store.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..len as usize]);
}

/// Offset from UTC in seconds of a `Date:` field as written (its last word,
/// `+hhmm` or `-hhmm`); 0 when there is none.
fn zone_offset(raw_date: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(raw_date);
    let Some(zone) = text.split_whitespace().last() else {
        return 0;
    };
    let b = zone.as_bytes();
    if b.len() != 5 || !matches!(b[0], b'+' | b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let hours = i64::from(b[1] - b'0') * 10 + i64::from(b[2] - b'0');
    let minutes = i64::from(b[3] - b'0') * 10 + i64::from(b[4] - b'0');
    let secs = (hours * 60 + minutes) * 60;
    if b[0] == b'-' {
        -secs
    } else {
        secs
    }
}

fn sent_day(s: &MessageSummary) -> Option<i64> {
    let ts = s.date?;
    let offset = match s.date_zone {
        Some(minutes) => i64::from(minutes) * 60,
        // A summary made before the store kept the zone.
        None => s.raw.date.as_deref().map_or(0, zone_offset),
    };
    Some((ts + offset).div_euclid(86_400))
}

/// Reads the `texts` layout front to back.
struct Texts<'a>(&'a [u8]);

impl<'a> Texts<'a> {
    fn number(&mut self) -> u32 {
        let (n, rest) = self.0.split_at(4);
        self.0 = rest;
        u32::from_le_bytes(n.try_into().expect("four bytes"))
    }

    fn text(&mut self) -> &'a [u8] {
        let len = self.number() as usize;
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        text
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

impl SearchFields {
    /// The search form of a message's summary (only its header fields are
    /// read).
    pub fn of(s: &MessageSummary) -> SearchFields {
        let mut texts = Vec::new();
        push_text(&mut texts, s.subject.as_deref().unwrap_or(""));
        for header in AddressHeader::ALL {
            let written: Vec<String> = header
                .of(s)
                .iter()
                .filter_map(|a| match (&a.name, &a.address) {
                    (Some(n), Some(addr)) => Some(format!("{n} <{addr}>")),
                    (Some(n), None) => Some(n.clone()),
                    (None, Some(addr)) => Some(addr.clone()),
                    (None, None) => None,
                })
                .collect();
            let count = u32::try_from(written.len()).unwrap_or(u32::MAX);
            texts.extend_from_slice(&count.to_le_bytes());
            for text in written.iter().take(count as usize) {
                push_text(&mut texts, text);
            }
        }
        SearchFields {
            sent_day: sent_day(s),
            header_len: s.header_len,
            texts: texts.into_boxed_slice(),
        }
    }

    /// Whether the subject contains `needle`, which must be lower-case
    /// (`str::to_lowercase`); an empty needle is in every subject.
    pub fn subject_contains(&self, needle: &str) -> bool {
        contains(Texts(&self.texts).text(), needle.as_bytes())
    }

    /// Whether one of the addresses in `header` contains `needle`
    /// (lower-case, as for [`SearchFields::subject_contains`]); an empty
    /// needle is in every message's, even where the header is missing.
    pub fn address_contains(&self, header: AddressHeader, needle: &str) -> bool {
        if needle.is_empty() {
            return true;
        }
        let mut texts = Texts(&self.texts);
        texts.text();
        for h in AddressHeader::ALL {
            let count = texts.number();
            for _ in 0..count {
                let text = texts.text();
                if h == header && contains(text, needle.as_bytes()) {
                    return true;
                }
            }
            if h == header {
                return false;
            }
        }
        false
    }

    /// The heap bytes behind the texts (for the cache's charge).
    pub(crate) fn texts_capacity(&self) -> usize {
        self.texts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawFields;

    fn summary() -> MessageSummary {
        MessageSummary {
            subject: Some("Grüße aus KÖLN".into()),
            // 2026-11-21 23:30 -0500 is 2026-11-22 04:30 UTC.
            date: Some(1_795_321_800),
            raw: RawFields {
                date: Some(b"Sat, 21 Nov 2026 23:30:00 -0500".to_vec()),
                ..RawFields::default()
            },
            from: vec![EmailAddress {
                name: Some("Alice Smith".into()),
                address: Some("Alice@Example.com".into()),
            }],
            to: vec![
                EmailAddress {
                    name: None,
                    address: Some("bob@example.org".into()),
                },
                EmailAddress {
                    name: Some("Undisclosed".into()),
                    address: None,
                },
                EmailAddress {
                    name: None,
                    address: None,
                },
            ],
            header_len: 321,
            ..MessageSummary::default()
        }
    }

    #[test]
    fn subjects_and_addresses_are_compared_lower_cased() {
        let f = SearchFields::of(&summary());
        assert_eq!(f.header_len, 321);
        assert!(f.subject_contains("grüße aus köln"));
        assert!(f.subject_contains("köln"));
        assert!(f.subject_contains(""));
        assert!(!f.subject_contains("kölner"));
        for needle in ["alice", "example.com", "alice smith", "smith <alice@"] {
            assert!(f.address_contains(AddressHeader::From, needle), "{needle}");
        }
        assert!(!f.address_contains(AddressHeader::To, "alice"));
        assert!(f.address_contains(AddressHeader::To, "bob@example.org"));
        assert!(f.address_contains(AddressHeader::To, "undisclosed"));
        // One address at a time: no match across two of them.
        assert!(!f.address_contains(AddressHeader::To, "orgundisclosed"));
        assert!(!f.address_contains(AddressHeader::Cc, "bob"));
        assert!(f.address_contains(AddressHeader::Bcc, ""));
        assert!(!f.address_contains(AddressHeader::Bcc, "a"));
    }

    #[test]
    fn zones() {
        assert_eq!(zone_offset(b"Sat, 21 Nov 2026 12:00:00 +0130"), 5400);
        assert_eq!(zone_offset(b"Sat, 21 Nov 2026 12:00:00 -0800"), -28_800);
        assert_eq!(zone_offset(b"Sat, 21 Nov 2026 12:00:00 GMT"), 0);
    }

    #[test]
    fn the_sent_day_is_in_the_date_fields_own_zone() {
        // No stored zone: read from the field as written.
        assert_eq!(
            SearchFields::of(&summary()).sent_day,
            Some(1_795_262_400 / 86_400)
        );
        let zoned = MessageSummary {
            date_zone: Some(60),
            ..summary()
        };
        assert_eq!(
            SearchFields::of(&zoned).sent_day,
            Some(1_795_321_800 / 86_400)
        );
        let undated = MessageSummary {
            date: None,
            ..summary()
        };
        assert_eq!(SearchFields::of(&undated).sent_day, None);
        let empty = SearchFields::of(&MessageSummary::default());
        assert!(empty.subject_contains(""));
        assert!(!empty.subject_contains("x"));
        assert!(!empty.address_contains(AddressHeader::From, "x"));
    }
}
