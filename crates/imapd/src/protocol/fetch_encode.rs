//! Encoding FETCH data: ENVELOPE, BODY and BODYSTRUCTURE from the store's
//! summaries, header filtering for `HEADER.FIELDS`, section extraction from
//! the raw bytes, and dates.

use store::{EmailAddress, MessageSummary, MimePart, Timestamp};

use super::datetime::format_date_time;
use super::encode::{nstring, quoted_or_literal};
use super::types::{DateTime, Section, SectionText};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Civil date (year, month, day) of days since 1970-01-01.
fn civil(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split_ts(ts: Timestamp) -> (i64, i64) {
    (ts.div_euclid(86_400), ts.rem_euclid(86_400))
}

/// A timestamp as IMAP's quoted `date-time`, in UTC.
pub fn internal_date(ts: Timestamp) -> String {
    let (days, secs) = split_ts(ts);
    let (y, m, d) = civil(days);
    format_date_time(&DateTime {
        year: y.clamp(0, 9999) as u16,
        month: m,
        day: d,
        hour: (secs / 3600) as u8,
        minute: (secs / 60 % 60) as u8,
        second: (secs % 60) as u8,
        zone_minutes: 0,
    })
}

/// A timestamp as an RFC 5322 date, in UTC.
pub fn rfc5322_date(ts: Timestamp) -> String {
    let (days, secs) = split_ts(ts);
    let (y, m, d) = civil(days);
    format!(
        "{}, {} {} {:04} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[usize::from(m) - 1],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The fields of a header section: each with its continuation lines,
/// CRLFs kept. The blank line that ends the section is not a field.
fn fields(header: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < header.len() {
        let end = header[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header.len(), |p| i + p + 1);
        let line = &header[i..end];
        let blank = line == b"\r\n" || line == b"\n";
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            if let Some(s) = start.take() {
                out.push(&header[s..i]);
            }
            if blank {
                return out;
            }
            start = Some(i);
        }
        i = end;
    }
    if let Some(s) = start {
        out.push(&header[s..]);
    }
    out
}

fn field_name(field: &[u8]) -> &[u8] {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(field.len());
    field[..colon].trim_ascii()
}

/// The fields named (or, with `not`, those not named), then a blank line.
pub fn filter_header(header: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields(header) {
        let named = names.iter().any(|n| n.eq_ignore_ascii_case(field_name(f)));
        if named != not {
            out.extend_from_slice(f);
            if !f.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn address_list(out: &mut Vec<u8>, list: &[EmailAddress]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match &a.address {
            Some(addr) => {
                let (local, host) = match addr.rfind('@') {
                    Some(i) => (&addr[..i], Some(&addr[i + 1..])),
                    None => (addr.as_str(), None),
                };
                // An obsolete source route `@a,@b:user@host` is the ADL.
                let (route, local) =
                    match local.strip_prefix('@').and_then(|_| local.split_once(':')) {
                        Some((route, rest)) => (Some(route), rest),
                        None => (None, local),
                    };
                nstring(out, a.name.as_deref().map(str::as_bytes));
                out.push(b' ');
                nstring(out, route.map(str::as_bytes));
                out.push(b' ');
                nstring(out, Some(local.as_bytes()));
                out.push(b' ');
                nstring(out, host.map(str::as_bytes));
            }
            None => {
                // Group start (name = group) or end (nothing).
                out.extend_from_slice(b"NIL NIL ");
                nstring(out, a.name.as_deref().map(str::as_bytes));
                out.extend_from_slice(b" NIL");
            }
        }
        out.push(b')');
    }
    out.push(b')');
}

/// `ENVELOPE` data for a message. Date, Subject and the id fields go out as
/// written (the store keeps them from delivery); the decoded values stand in
/// for summaries made before it did.
pub fn envelope(out: &mut Vec<u8>, s: &MessageSummary) {
    out.push(b'(');
    let date = s
        .raw
        .date
        .clone()
        .or_else(|| s.date.map(|d| rfc5322_date(d).into_bytes()));
    nstring(out, date.as_deref());
    out.push(b' ');
    let subject = s
        .raw
        .subject
        .clone()
        .or_else(|| s.subject.clone().map(String::into_bytes));
    nstring(out, subject.as_deref());
    let from = &s.from;
    let sender = if s.sender.is_empty() { from } else { &s.sender };
    let reply_to = if s.reply_to.is_empty() {
        from
    } else {
        &s.reply_to
    };
    for list in [from, sender, reply_to, &s.to, &s.cc, &s.bcc] {
        out.push(b' ');
        address_list(out, list);
    }
    out.push(b' ');
    let irt = s
        .raw
        .in_reply_to
        .clone()
        .or_else(|| s.in_reply_to.clone().map(String::into_bytes));
    nstring(out, irt.as_deref());
    out.push(b' ');
    let mid = s
        .raw
        .message_id
        .clone()
        .or_else(|| s.message_id.clone().map(String::into_bytes));
    nstring(out, mid.as_deref());
    out.push(b')');
}

fn params(out: &mut Vec<u8>, p: &[(String, String)]) {
    if p.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        quoted_or_literal(out, k.as_bytes());
        out.push(b' ');
        quoted_or_literal(out, v.as_bytes());
    }
    out.push(b')');
}

fn extension(out: &mut Vec<u8>, p: &MimePart) {
    out.push(b' ');
    match &p.disposition {
        Some(d) => {
            out.push(b'(');
            quoted_or_literal(out, d.as_bytes());
            out.push(b' ');
            params(out, &p.disposition_params);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    if p.language.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, l) in p.language.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            quoted_or_literal(out, l.as_bytes());
        }
        out.push(b')');
    }
    out.push(b' ');
    nstring(out, p.location.as_deref().map(str::as_bytes));
}

fn slice(raw: Option<&[u8]>, from: u64, to: u64) -> Option<&[u8]> {
    let raw = raw?;
    let (from, to) = (from as usize, to as usize);
    (from <= to && to <= raw.len()).then(|| &raw[from..to])
}

/// `BODY` (`extended` false) or `BODYSTRUCTURE` data for a part, from the
/// store's summary alone.
pub fn body_structure(out: &mut Vec<u8>, p: &MimePart, extended: bool) {
    out.push(b'(');
    if p.content_type.eq_ignore_ascii_case("multipart") {
        for child in &p.parts {
            body_structure(out, child, extended);
        }
        if p.parts.is_empty() {
            // A multipart needs one part; an empty text part stands in.
            out.extend_from_slice(b"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
        }
        out.push(b' ');
        quoted_or_literal(out, p.content_subtype.as_bytes());
        if extended {
            out.push(b' ');
            params(out, &p.params);
            extension(out, p);
        }
        out.push(b')');
        return;
    }
    quoted_or_literal(out, p.content_type.as_bytes());
    out.push(b' ');
    quoted_or_literal(out, p.content_subtype.as_bytes());
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, p.content_id.as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, p.content_description.as_deref().map(str::as_bytes));
    out.push(b' ');
    let enc = if p.encoding.is_empty() {
        "7bit"
    } else {
        &p.encoding
    };
    quoted_or_literal(out, enc.as_bytes());
    out.push_str_num(p.body_end.saturating_sub(p.body_offset));
    let is_message = p.content_type.eq_ignore_ascii_case("message")
        && p.content_subtype.eq_ignore_ascii_case("rfc822");
    if is_message {
        if let (Some(inner), Some(summary)) = (p.parts.first(), p.message.as_deref()) {
            out.push(b' ');
            envelope(out, summary);
            out.push(b' ');
            body_structure(out, inner, extended);
            out.push_str_num(p.lines);
        } else {
            out.extend_from_slice(b" NIL (\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
            out.push_str_num(p.lines);
        }
    } else if p.content_type.eq_ignore_ascii_case("text") {
        out.push_str_num(p.lines);
    }
    if extended {
        out.extend_from_slice(b" NIL");
        extension(out, p);
    }
    out.push(b')');
}

trait PushNum {
    fn push_str_num(&mut self, n: u64);
}

impl PushNum for Vec<u8> {
    /// ` n`.
    fn push_str_num(&mut self, n: u64) {
        self.extend_from_slice(format!(" {n}").as_bytes());
    }
}

fn is_message(p: &MimePart) -> bool {
    p.content_type.eq_ignore_ascii_case("message")
        && p.content_subtype.eq_ignore_ascii_case("rfc822")
}

/// The part a section's part numbers name, if any.
fn find_part<'a>(root: &'a MimePart, path: &[std::num::NonZeroU32]) -> Option<&'a MimePart> {
    let mut container = root;
    let mut found = root;
    for (i, n) in path.iter().enumerate() {
        let n = n.get() as usize;
        found = if container.content_type.eq_ignore_ascii_case("multipart") {
            container.parts.get(n - 1)?
        } else if n == 1 {
            container
        } else {
            return None;
        };
        if i + 1 < path.len() {
            container = if is_message(found) {
                found.parts.first()?
            } else {
                found
            };
        }
    }
    Some(found)
}

/// The bytes a `BODY[section]` names; `None` if there is no such part (the
/// answer is then an empty string).
pub fn section_bytes(raw: &[u8], s: &MessageSummary, section: &Section) -> Option<Vec<u8>> {
    let (header, text, part) = if section.part.is_empty() {
        let h = (s.header_len as usize).min(raw.len());
        (&raw[..h], &raw[h..], None)
    } else {
        let part = find_part(&s.body, &section.part)?;
        let (h, t) = if is_message(part) {
            let inner = part.parts.first()?;
            (
                slice(Some(raw), inner.header_offset, inner.body_offset)?,
                // To the end of the enclosing part: a multipart's epilogue
                // belongs to the enclosed message's text.
                slice(Some(raw), inner.body_offset, part.body_end)?,
            )
        } else {
            (&[][..], &[][..])
        };
        (h, t, Some(part))
    };
    Some(match (&section.text, part) {
        (None, None) => raw.to_vec(),
        (None, Some(p)) => slice(Some(raw), p.body_offset, p.body_end)?.to_vec(),
        (Some(SectionText::Mime), Some(p)) => {
            slice(Some(raw), p.header_offset, p.body_offset)?.to_vec()
        }
        (Some(SectionText::Mime), None) => return None,
        (Some(SectionText::Header), _) => header.to_vec(),
        (Some(SectionText::Text), _) => text.to_vec(),
        (Some(SectionText::HeaderFields(names)), _) => filter_header(header, names, false),
        (Some(SectionText::HeaderFieldsNot(names)), _) => filter_header(header, names, true),
    })
}

/// The section as a response names it: `1.2.HEADER.FIELDS (From To)`.
pub fn section_name(section: &Section) -> String {
    let mut parts: Vec<String> = section.part.iter().map(|n| n.to_string()).collect();
    let list = |names: &[Vec<u8>]| {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            super::encode::astring(&mut out, n);
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    match &section.text {
        None => {}
        Some(SectionText::Header) => parts.push("HEADER".into()),
        Some(SectionText::Text) => parts.push("TEXT".into()),
        Some(SectionText::Mime) => parts.push("MIME".into()),
        Some(SectionText::HeaderFields(n)) => parts.push(format!("HEADER.FIELDS ({})", list(n))),
        Some(SectionText::HeaderFieldsNot(n)) => {
            parts.push(format!("HEADER.FIELDS.NOT ({})", list(n)))
        }
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(internal_date(0), "\"01-Jan-1970 00:00:00 +0000\"");
        assert_eq!(
            internal_date(1_795_262_400),
            "\"21-Nov-2026 12:00:00 +0000\""
        );
        assert_eq!(
            rfc5322_date(1_795_262_400),
            "Sat, 21 Nov 2026 12:00:00 +0000"
        );
    }

    #[test]
    fn source_routes_go_in_the_adl() {
        let mut out = Vec::new();
        let list = [EmailAddress {
            name: None,
            address: Some("@route:user@domain".into()),
        }];
        address_list(&mut out, &list);
        assert_eq!(out, b"((NIL \"@route\" \"user\" \"domain\"))");
    }

    #[test]
    fn header_filtering() {
        let h = b"From: a\r\nSubject: x\r\n y\r\nTo: b\r\n\r\n";
        assert_eq!(
            filter_header(h, &[b"subject".to_vec()], false),
            b"Subject: x\r\n y\r\n\r\n"
        );
        assert_eq!(
            filter_header(h, &[b"SUBJECT".to_vec()], true),
            b"From: a\r\nTo: b\r\n\r\n"
        );
    }
}
