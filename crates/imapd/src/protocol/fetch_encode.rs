//! Encoding FETCH data: ENVELOPE, BODY and BODYSTRUCTURE from the store's
//! summaries, header filtering for `HEADER.FIELDS`, section extraction from
//! the raw bytes, and dates.

use std::borrow::Cow;

use store::{EmailAddress, HeaderAddress, MessageSummary, MimePart, RawText, Timestamp};

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

/// `HEADER.FIELDS` (or, with `not`, `HEADER.FIELDS.NOT`): the fields named
/// (or the others) as written, then the blank line only if the header has
/// one. RFC 3501 6.4.5: the blank line is always included "except in the
/// case of a message which has no body and no blank line"; nothing adds a
/// line break to a last field that has none. Dovecot answers so for an
/// enclosed message (and for HEADER.FIELDS.NOT of any); for HEADER.FIELDS
/// of a whole message it adds both, which the RFC does not allow.
pub fn filter_header(header: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields(header) {
        let named = names.iter().any(|n| n.eq_ignore_ascii_case(field_name(f)));
        if named != not {
            out.extend_from_slice(f);
        }
    }
    if has_blank_line(header) {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Whether a header section (the stored one: `header_len`, or an enclosed
/// message's `header_offset..body_offset`) ends with the blank line that
/// separates it from a body; it does not when the message has none.
fn has_blank_line(header: &[u8]) -> bool {
    matches!(header, b"\r\n" | b"\n") || header.ends_with(b"\n\r\n") || header.ends_with(b"\n\n")
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

/// An address list as written (RFC 3501 7.4.2). A mailbox without a local
/// part or a domain gets Dovecot's `MISSING_MAILBOX` / `MISSING_DOMAIN`
/// (`localonly` is `(NIL NIL "localonly" "MISSING_DOMAIN")`); a group is
/// its start and end markers around its members.
fn header_address_list(out: &mut Vec<u8>, list: &[HeaderAddress]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    fn bytes(t: &Option<RawText>) -> Option<&[u8]> {
        t.as_ref().map(RawText::as_bytes)
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match a {
            HeaderAddress::Mailbox {
                name,
                route,
                local_part,
                domain,
            } => {
                nstring(out, bytes(name));
                out.push(b' ');
                nstring(out, bytes(route));
                out.push(b' ');
                nstring(out, Some(bytes(local_part).unwrap_or(b"MISSING_MAILBOX")));
                out.push(b' ');
                nstring(out, Some(bytes(domain).unwrap_or(b"MISSING_DOMAIN")));
            }
            HeaderAddress::GroupStart { name } => {
                out.extend_from_slice(b"NIL NIL ");
                nstring(out, Some(name.as_bytes()));
                out.extend_from_slice(b" NIL");
            }
            HeaderAddress::GroupEnd => out.extend_from_slice(b"NIL NIL NIL NIL"),
        }
        out.push(b')');
    }
    out.push(b')');
}

/// `ENVELOPE` data for a message. Everything goes out as written (the
/// store keeps it from delivery): Date, Subject, the id fields and the
/// addresses, display names undecoded (RFC 2047 words and 8-bit bytes as
/// the message has them); the decoded values stand in for summaries made
/// before the store kept them. Sender and Reply-To default to From (RFC
/// 3501 7.4.2).
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
    if let Some(a) = s.addresses.as_deref() {
        for list in [
            &a.from[..],
            or_from(&a.sender, &a.from),
            or_from(&a.reply_to, &a.from),
            &a.to,
            &a.cc,
            &a.bcc,
        ] {
            out.push(b' ');
            header_address_list(out, list);
        }
    } else {
        for list in [
            &s.from[..],
            or_from(&s.sender, &s.from),
            or_from(&s.reply_to, &s.from),
            &s.to,
            &s.cc,
            &s.bcc,
        ] {
            out.push(b' ');
            address_list(out, list);
        }
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

/// Sender and Reply-To: From when absent or empty.
fn or_from<'a, T>(list: &'a [T], from: &'a [T]) -> &'a [T] {
    if list.is_empty() {
        from
    } else {
        list
    }
}

fn params(out: &mut Vec<u8>, p: &[(String, RawText)]) {
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
            // The grammar needs one part (RFC 3501 9, body-type-mpart).
            body_structure(out, &stand_in_part(), extended);
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
    nstring(out, p.content_description.as_ref().map(RawText::as_bytes));
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
            // Not followed (too deep): an empty envelope and body.
            out.push(b' ');
            envelope(out, &MessageSummary::default());
            out.push(b' ');
            body_structure(out, &stand_in_part(), extended);
            out.push_str_num(p.lines);
        }
    } else if p.content_type.eq_ignore_ascii_case("text") {
        out.push_str_num(p.lines);
    }
    if extended {
        out.push(b' ');
        nstring(out, p.md5.as_deref().map(str::as_bytes));
        extension(out, p);
    }
    out.push(b')');
}

/// What BODYSTRUCTURE shows where a part must be and the message has none
/// (a multipart without parts): an empty text part, as Dovecot shows it.
fn stand_in_part() -> MimePart {
    MimePart {
        content_type: "text".into(),
        content_subtype: "plain".into(),
        params: vec![("charset".into(), "us-ascii".into())],
        encoding: "7bit".into(),
        ..MimePart::default()
    }
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

pub(crate) fn is_message(p: &MimePart) -> bool {
    p.content_type.eq_ignore_ascii_case("message")
        && p.content_subtype.eq_ignore_ascii_case("rfc822")
}

/// The part a section's part numbers name, if any, as Dovecot finds it: in
/// a multipart, `n` is its n-th part; any other part has only part 1,
/// itself, and only a message/rfc822 part goes on below it, into the
/// enclosed message. So `BODY[1.1]` of a one-part message names nothing.
pub(crate) fn find_part<'a>(
    root: &'a MimePart,
    path: &[std::num::NonZeroU32],
) -> Option<&'a MimePart> {
    let mut part = root;
    for (i, n) in path.iter().enumerate() {
        let n = n.get() as usize;
        let more = i + 1 < path.len();
        if part.content_type.eq_ignore_ascii_case("multipart") {
            part = part.parts.get(n - 1)?;
        } else if n != 1 || (more && !is_message(part)) {
            return None;
        }
        if more && is_message(part) {
            part = part.parts.first()?;
        }
    }
    Some(part)
}

/// The bytes a `BODY[section]` names; `None` if there is no such part (the
/// answer is then an empty string). The whole message, a part's body and
/// TEXT are borrowed from `raw`: a FETCH of large messages writes them out
/// without another copy.
pub fn section_bytes<'a>(
    raw: &'a [u8],
    s: &MessageSummary,
    section: &Section,
) -> Option<Cow<'a, [u8]>> {
    // `fields`: where HEADER.FIELDS picks from, the header with the line
    // break a delimiter right after it took (RFC 2046 5.1.1), so that its
    // last field keeps its line break and a blank line before the
    // delimiter still counts, as Dovecot counts them.
    let (header, fields, text, part) = if section.part.is_empty() {
        let h = (s.header_len as usize).min(raw.len());
        (&raw[..h], &raw[..h], &raw[h..], None)
    } else {
        let part = find_part(&s.body, &section.part)?;
        let (h, f, t) = if is_message(part) {
            let inner = part.parts.first()?;
            (
                slice(Some(raw), inner.header_offset, inner.header_end())?,
                slice(Some(raw), inner.header_offset, inner.body_offset)?,
                // To the end of the enclosing part: a multipart's epilogue
                // belongs to the enclosed message's text.
                slice(Some(raw), inner.body_offset, part.body_end)?,
            )
        } else {
            (&[][..], &[][..], &[][..])
        };
        (h, f, t, Some(part))
    };
    Some(match (&section.text, part) {
        (None, None) => Cow::Borrowed(raw),
        (None, Some(p)) => Cow::Borrowed(slice(Some(raw), p.body_offset, p.body_end)?),
        (Some(SectionText::Mime), Some(p)) => Cow::Owned(with_crlf(slice(
            Some(raw),
            p.header_offset,
            p.header_end(),
        )?)),
        (Some(SectionText::Mime), None) => return None,
        (Some(SectionText::Header), _) => Cow::Owned(with_crlf(header)),
        (Some(SectionText::Text), _) => Cow::Borrowed(text),
        (Some(SectionText::HeaderFields(names)), _) => {
            Cow::Owned(filter_header(&with_crlf(fields), names, false))
        }
        (Some(SectionText::HeaderFieldsNot(names)), _) => {
            Cow::Owned(filter_header(&with_crlf(fields), names, true))
        }
    })
}

/// Header data with each bare LF made CRLF, the line end IMAP sends (RFC
/// 3501 2.2), as Dovecot sends the header sections of a message APPENDed
/// with bare line feeds. Only header sections: the sizes of the others
/// (RFC822.SIZE, BODYSTRUCTURE) are those of the bytes as stored.
fn with_crlf(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    let mut after_cr = false;
    for &b in header {
        if b == b'\n' && !after_cr {
            out.push(b'\r');
        }
        out.push(b);
        after_cr = b == b'\r';
    }
    out
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

    /// RFC 3501 6.4.5: no blank line in a header fetch of a message that
    /// has none; the fields copied as they are.
    #[test]
    fn header_filtering_without_blank_line() {
        let names = [b"from".to_vec(), b"subject".to_vec()];
        for h in [
            &b"From: a@b\r\nSubject: s"[..],
            b"From: a@b\r\nSubject: s\r\n",
        ] {
            assert_eq!(filter_header(h, &names, true), b"");
        }
        assert_eq!(
            filter_header(b"From: a@b\r\nSubject: s", &names[..1], true),
            b"Subject: s"
        );
        assert_eq!(filter_header(b"From: a@b\r\n\r\n", &names, true), b"\r\n");
        assert_eq!(filter_header(b"\r\n", &names, true), b"\r\n");
        // HEADER.FIELDS by the same rule: no line break or blank line added.
        assert_eq!(filter_header(b"X: 1", &names, false), b"");
        assert_eq!(
            filter_header(b"From: a@b\r\nSubject: s", &names, false),
            b"From: a@b\r\nSubject: s"
        );
        assert_eq!(
            filter_header(b"From: a@b\r\nSubject: s\r\n", &names[1..], false),
            b"Subject: s\r\n"
        );
        assert_eq!(
            filter_header(b"X: 1\r\nFrom: a@b\r\n\r\n", &names, false),
            b"From: a@b\r\n\r\n"
        );
    }

    #[test]
    fn bare_line_feeds_made_crlf() {
        assert_eq!(with_crlf(b"A: 1\nB: 2\r\n\n"), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(with_crlf(b"\n\r\r\n"), b"\r\n\r\r\n");
        assert_eq!(with_crlf(b""), b"");
    }

    fn leaf(ctype: &str, subtype: &str, parts: Vec<MimePart>) -> MimePart {
        MimePart {
            content_type: ctype.into(),
            content_subtype: subtype.into(),
            parts,
            ..MimePart::default()
        }
    }

    /// A multipart without parts, and a message/rfc822 part not followed,
    /// still fit BODYSTRUCTURE's grammar, with Dovecot's stand-ins.
    #[test]
    fn stand_ins_where_a_part_must_be() {
        let mut out = Vec::new();
        body_structure(&mut out, &leaf("multipart", "mixed", vec![]), false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")"#
        );
        let mut out = Vec::new();
        body_structure(&mut out, &leaf("message", "rfc822", vec![]), true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"("message" "rfc822" NIL NIL NIL "7bit" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL)"#
        );
    }

    fn path(p: &[u32]) -> Vec<std::num::NonZeroU32> {
        p.iter()
            .map(|&n| std::num::NonZeroU32::new(n).unwrap())
            .collect()
    }

    /// Part numbers as Dovecot resolves them: only part 1 below a part that
    /// is not multipart, and only a message/rfc822 part goes deeper.
    #[test]
    fn part_numbers() {
        let text = leaf("text", "plain", vec![]);
        let found = |root: &MimePart, p: &[u32]| find_part(root, &path(p)).map(|x| x as *const _);
        // A one-part message: 1 is its body, 1.1 is nothing.
        assert_eq!(found(&text, &[1]), Some(&text as *const _));
        assert_eq!(found(&text, &[1, 1]), None);
        assert_eq!(found(&text, &[2]), None);
        // A multipart: 1 is its first part, 1.1 that part again, no deeper.
        let mixed = leaf("multipart", "mixed", vec![text.clone(), text.clone()]);
        assert_eq!(found(&mixed, &[2]), Some(&mixed.parts[1] as *const _));
        assert_eq!(found(&mixed, &[1, 1]), Some(&mixed.parts[0] as *const _));
        assert_eq!(found(&mixed, &[1, 1, 1]), None);
        assert_eq!(found(&mixed, &[3]), None);
        // A message/rfc822 part: 1.1 is the body of the enclosed message.
        let rfc822 = leaf("message", "rfc822", vec![text.clone()]);
        assert_eq!(found(&rfc822, &[1]), Some(&rfc822 as *const _));
        assert_eq!(found(&rfc822, &[1, 1]), Some(&rfc822.parts[0] as *const _));
        assert_eq!(found(&rfc822, &[1, 1, 1]), None);
    }
}
