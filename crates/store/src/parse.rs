//! Parsing a message once, at delivery, into a [`MessageSummary`].
//!
//! The MIME tree, the address fields and the date are read from the raw
//! bytes here ([`mime`], [`address`], [`date`]), so that IMAP gets them as
//! written and with offsets that follow RFC 2046 to the byte; mail-parser
//! decodes the header fields that search and display want in UTF-8
//! (subject, addresses). Nothing here panics on bad mail: a message that
//! cannot be parsed gets a minimal summary (one `text/plain` part spanning
//! the whole message).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;

use mail_parser::{Address, HeaderValue, Message, MessageParser};

use crate::{AddressFields, EmailAddress, MessageSummary, MimePart, RawFields};

mod address;
mod date;
mod mime;

/// Bumped whenever what [`summarize`] makes changes, so that summaries
/// cached by an older version are made again ([`crate::sql::reparse`]).
/// 1: mail-parser's tree; 2: the tree, addresses and dates read here;
/// 3: declared types kept (a multipart without parts, an encoded
/// message/rfc822); 4: the preview and attachment count; 5: the
/// `References:` ids.
pub(crate) const SUMMARY_VERSION: i64 = 5;

/// Parses `raw` into a summary, as delivery does once per message. Never
/// panics. Public so that the daemons' tests can make the summary (and
/// header length) the store would keep.
pub fn summarize(raw: &[u8]) -> MessageSummary {
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        let body = mime::walk(raw, &header_summary);
        let header_len = body.header_end();
        let header = raw.get(..header_len as usize).unwrap_or_default();
        MessageSummary {
            header_len,
            body,
            ..header_summary(header)
        }
    }));
    let mut summary = match parsed {
        Ok(summary) => summary,
        Err(_) => {
            tracing::warn!("parsing a message failed; storing a minimal summary");
            minimal(raw)
        }
    };
    summary.return_path = return_path(raw, summary.header_len);
    let (preview, attachments) = preview_and_attachments(raw);
    summary.preview = preview;
    summary.attachments = attachments;
    summary
}

/// mail-parser for the preview and the attachment count: only the
/// fields that shape the body (`Content-Type`, `-Transfer-Encoding`,
/// `-Disposition` and the other MIME fields) are parsed, each as
/// mail-parser's default parses it; every other field is skipped over.
/// Parsing them all (a `Received:` field is a small grammar of its own)
/// was most of the work for small messages (issue 13).
fn body_parser() -> &'static MessageParser {
    static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
        MessageParser::new()
            .with_mime_headers()
            .default_header_ignore()
    });
    &PARSER
}

/// mail-parser for [`decoded_fields`]: the fields it reads, each parsed
/// as mail-parser's default parses it (as [`body_parser`], the others
/// are skipped over).
fn field_parser() -> &'static MessageParser {
    use mail_parser::HeaderName as H;
    static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
        MessageParser::new()
            .header_text(H::Subject)
            .with_address_headers()
            .header_id(H::MessageId)
            .header_id(H::InReplyTo)
            .header_id(H::References)
            .default_header_ignore()
    });
    &PARSER
}

/// The message's text, decoded and collapsed to one line of at most
/// [`crate::PREVIEW_CHARS`] characters, and its number of attachments, as
/// mail-parser sees them (it decodes transfer encodings and charsets).
fn preview_and_attachments(raw: &[u8]) -> (Option<String>, u32) {
    preview_and_attachments_with(body_parser(), raw)
}

fn preview_and_attachments_with(parser: &MessageParser, raw: &[u8]) -> (Option<String>, u32) {
    catch_unwind(AssertUnwindSafe(|| {
        let Some(message) = parser.parse(raw) else {
            return (None, 0);
        };
        // Generous: white space is collapsed below.
        let preview = message
            .body_preview(crate::PREVIEW_CHARS * 4)
            .map(|text| {
                text.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(crate::PREVIEW_CHARS)
                    .collect::<String>()
            })
            .filter(|text| !text.is_empty());
        let attachments = u32::try_from(message.attachment_count()).unwrap_or(u32::MAX);
        (preview, attachments)
    }))
    .unwrap_or((None, 0))
}

/// The envelope sender in the first `Return-Path:` field of the header
/// section (`header_len` octets), without angle brackets: what the
/// delivering server recorded (RFC 5321 4.4).
fn return_path(raw: &[u8], header_len: u64) -> Option<String> {
    let header = raw.get(..usize::try_from(header_len).ok()?)?;
    let value = raw_field(header, "Return-Path")?;
    let value = String::from_utf8_lossy(&value);
    let path = value.trim();
    let path = path
        .strip_prefix('<')
        .and_then(|p| p.strip_suffix('>'))
        .unwrap_or(path);
    Some(path.trim().to_string())
}

/// The summary of a message nothing could be made of: no header fields, one
/// `text/plain` body spanning all of it.
pub(crate) fn minimal(raw: &[u8]) -> MessageSummary {
    let len = raw.len() as u64;
    MessageSummary {
        header_len: 0,
        body: MimePart {
            content_type: "text".into(),
            content_subtype: "plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
            encoding: "7bit".into(),
            header_offset: 0,
            body_offset: 0,
            body_end: len,
            lines: count_lines(raw),
            ..MimePart::default()
        },
        ..MessageSummary::default()
    }
}

/// What a message's header gives (everything but `header_len` and `body`).
fn header_summary(header: &[u8]) -> MessageSummary {
    let field = |name: &str| raw_field(header, name);
    let raw = RawFields {
        date: field("Date"),
        subject: field("Subject"),
        in_reply_to: field("In-Reply-To"),
        message_id: field("Message-ID"),
    };
    let (date, date_zone) = match raw.date.as_deref().and_then(date::parse_date) {
        Some((at, zone)) => (Some(at), Some(zone)),
        None => (None, None),
    };
    let list = |name: &str| {
        field(name)
            .map(|v| address::parse_address_list(&v))
            .unwrap_or_default()
    };
    let addresses = AddressFields {
        from: list("From"),
        sender: list("Sender"),
        reply_to: list("Reply-To"),
        to: list("To"),
        cc: list("Cc"),
        bcc: list("Bcc"),
    };
    let mut summary = MessageSummary {
        date,
        date_zone,
        raw,
        addresses: Some(Box::new(addresses)),
        ..MessageSummary::default()
    };
    // mail-parser drops a last field that no line break ends: give it a
    // header that ends as a header should.
    let ended;
    let header = if header.ends_with(b"\n\n") || header.ends_with(b"\n\r\n") {
        header
    } else {
        let end: &[u8] = if header.ends_with(b"\n") {
            b"\r\n"
        } else {
            b"\r\n\r\n"
        };
        ended = [header, end].concat();
        &ended
    };
    if let Some(message) = field_parser().parse_headers(header) {
        decoded_fields(&message, &mut summary);
    }
    summary
}

/// The fields mail-parser decodes to UTF-8, for search and display.
fn decoded_fields(message: &Message<'_>, s: &mut MessageSummary) {
    s.subject = message.subject().map(str::to_owned);
    s.from = addresses(message.from());
    s.sender = addresses(message.sender());
    s.reply_to = addresses(message.reply_to());
    s.to = addresses(message.to());
    s.cc = addresses(message.cc());
    s.bcc = addresses(message.bcc());
    s.in_reply_to = ids(message.in_reply_to());
    s.references = ids(message.references());
    s.message_id = message.message_id().map(|id| format!("<{id}>"));
}

/// The first field `name` of a header section, as written: continuation
/// lines joined, CR and LF dropped, surrounding blanks trimmed.
pub(crate) fn raw_field(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut lines = split_lines(header).peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        if line.first().is_some_and(|b| b.is_ascii_whitespace())
            || !line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(name.as_bytes())
        {
            continue;
        }
        let mut value: Vec<u8> = line[colon + 1..].to_vec();
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|&b| b == b' ' || b == b'\t'))
        {
            value.extend_from_slice(next);
        }
        value.retain(|&b| b != b'\r' && b != b'\n');
        return Some(value.trim_ascii().to_vec());
    }
    None
}

/// The pieces of `bytes` between LFs, as `bytes.split(|&b| b == b'\n')`
/// gives them (an empty last piece after a final LF), found with memchr:
/// [`raw_field`] looks through a header once per field it wants.
fn split_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b'\n', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Message-ID style values, written back with their angle brackets.
fn ids(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(id) if !id.is_empty() => Some(format!("<{id}>")),
        HeaderValue::TextList(list) if !list.is_empty() => Some(
            list.iter()
                .map(|id| format!("<{id}>"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

fn addresses(value: Option<&Address<'_>>) -> Vec<EmailAddress> {
    fn one(addr: &mail_parser::Addr<'_>) -> EmailAddress {
        EmailAddress {
            name: addr.name.as_ref().map(|n| n.to_string()),
            address: addr.address.as_ref().map(|a| a.to_string()),
        }
    }
    // A member without an address (a comment such as `group: (foo) ;`)
    // is no address at all; kept, it would read as a group marker.
    let real = |addr: &&mail_parser::Addr<'_>| addr.address.is_some();
    match value {
        None => Vec::new(),
        Some(Address::List(list)) => list.iter().filter(real).map(one).collect(),
        Some(Address::Group(groups)) => {
            let mut out = Vec::new();
            for group in groups {
                match &group.name {
                    Some(name) => {
                        out.push(EmailAddress {
                            name: Some(name.to_string()),
                            address: None,
                        });
                        out.extend(group.addresses.iter().filter(real).map(one));
                        out.push(EmailAddress::default());
                    }
                    None => out.extend(group.addresses.iter().filter(real).map(one)),
                }
            }
            out
        }
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<'a>(raw: &'a [u8], part: &MimePart) -> &'a [u8] {
        &raw[part.body_offset as usize..part.body_end as usize]
    }

    #[test]
    fn return_path_is_the_envelope_sender_of_the_header() {
        let raw =
            b"Return-Path: <a@b.test>\r\nReceived: x\r\nSubject: s\r\n\r\nReturn-Path: <no>\r\n";
        assert_eq!(summarize(raw).return_path.as_deref(), Some("a@b.test"));
        let bounce = b"Return-Path: <>\r\nSubject: s\r\n\r\nbody\r\n";
        assert_eq!(summarize(bounce).return_path.as_deref(), Some(""));
        // Only the header counts.
        let none = b"Subject: s\r\n\r\nReturn-Path: <a@b.test>\r\n";
        assert_eq!(summarize(none).return_path, None);
    }

    #[test]
    fn raw_fields_are_unfolded_and_trimmed() {
        let h = b"From: a\r\nSubject: x\r\n y\r\nTo: b\r\n\r\n";
        assert_eq!(raw_field(h, "subject").unwrap(), b"x y");
        assert_eq!(raw_field(h, "to").unwrap(), b"b");
        assert_eq!(raw_field(h, "cc"), None);
        // A continuation line is never a field of its own.
        assert_eq!(raw_field(b"X: 1\r\n To: no\r\n\r\n", "to"), None);
    }

    #[test]
    fn summaries_keep_envelope_fields_as_written() {
        let raw = b"Date: Sat, 21 Nov 2026 12:00:00 +0000\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Message-ID: <outer@example.com>\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\n\tfolded\r\nIn-Reply-To: <x@y>\r\n\r\nbody\r\n\
--b--\r\n";
        let s = summarize(raw);
        assert_eq!(s.subject.as_deref(), Some("Grüße"));
        assert_eq!(
            s.raw.subject.as_deref(),
            Some(&b"=?utf-8?q?Gr=C3=BC=C3=9Fe?="[..])
        );
        assert_eq!(
            s.raw.date.as_deref(),
            Some(&b"Sat, 21 Nov 2026 12:00:00 +0000"[..])
        );
        assert_eq!(
            s.raw.message_id.as_deref(),
            Some(&b"<outer@example.com>"[..])
        );
        assert_eq!(s.raw.in_reply_to, None);
        let inner = s.body.parts[1]
            .message
            .as_deref()
            .expect("enclosed message");
        assert_eq!(inner.raw.subject.as_deref(), Some(&b"inner\tfolded"[..]));
        assert_eq!(inner.raw.in_reply_to.as_deref(), Some(&b"<x@y>"[..]));
        assert_eq!(inner.raw.message_id, None);
    }

    fn addr(name: Option<&str>, address: Option<&str>) -> EmailAddress {
        EmailAddress {
            name: name.map(str::to_owned),
            address: address.map(str::to_owned),
        }
    }

    #[test]
    fn simple_message() {
        let raw = b"From: Alice Example <alice@example.org>\r\n\
            To: bob@localhost, \"Carol\" <carol@localhost>\r\n\
            Cc: dave@localhost\r\n\
            Subject: Hello there\r\n\
            Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n\
            Message-ID: <1234@local.machine.example>\r\n\
            In-Reply-To: <abc@x> <def@y>\r\n\
            \r\n\
            Hi Bob,\r\nhow are you?\r\n";
        let s = summarize(raw);
        assert_eq!(s.subject.as_deref(), Some("Hello there"));
        assert_eq!(s.date, Some(1_057_049_557));
        assert_eq!(
            s.from,
            vec![addr(Some("Alice Example"), Some("alice@example.org"))]
        );
        assert_eq!(
            s.to,
            vec![
                addr(None, Some("bob@localhost")),
                addr(Some("Carol"), Some("carol@localhost"))
            ]
        );
        assert_eq!(s.cc, vec![addr(None, Some("dave@localhost"))]);
        assert!(s.bcc.is_empty() && s.sender.is_empty() && s.reply_to.is_empty());
        assert_eq!(
            s.message_id.as_deref(),
            Some("<1234@local.machine.example>")
        );
        assert_eq!(s.in_reply_to.as_deref(), Some("<abc@x> <def@y>"));
        assert_eq!(s.references, None);
        let header_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(s.header_len, header_end as u64);
        let b = &s.body;
        assert_eq!(
            (b.content_type.as_str(), b.content_subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(b.params, vec![("charset".to_owned(), "us-ascii".into())]);
        assert_eq!(b.encoding, "7bit");
        assert_eq!(b.header_offset, 0);
        assert_eq!(b.body_offset, s.header_len);
        assert_eq!(b.body_end, raw.len() as u64);
        assert_eq!(body(raw, b), b"Hi Bob,\r\nhow are you?\r\n");
        assert_eq!(b.lines, 2);
        assert!(b.parts.is_empty() && b.message.is_none());
    }

    #[test]
    fn multipart_alternative() {
        let raw = b"From: a@x\r\nSubject: alt\r\nMIME-Version: 1.0\r\n\
            Content-Type: Multipart/Alternative; boundary=\"XX\"\r\n\r\n\
            --XX\r\nContent-Type: text/plain; charset=UTF-8\r\n\
            Content-Transfer-Encoding: Quoted-Printable\r\n\r\n\
            caf=C3=A9\r\n\
            --XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
            <p>caf\xc3\xa9</p>\r\nline two\r\n\
            --XX--\r\n";
        let s = summarize(raw);
        let b = &s.body;
        assert_eq!(
            (b.content_type.as_str(), b.content_subtype.as_str()),
            ("multipart", "alternative")
        );
        assert_eq!(b.params, vec![("boundary".to_owned(), "XX".into())]);
        assert_eq!(b.parts.len(), 2);
        let plain = &b.parts[0];
        assert_eq!(plain.content_subtype, "plain");
        assert_eq!(plain.params, vec![("charset".to_owned(), "UTF-8".into())]);
        assert_eq!(plain.encoding, "quoted-printable");
        assert_eq!(body(raw, plain), b"caf=C3=A9");
        assert!(raw[plain.header_offset as usize..].starts_with(b"Content-Type: text/plain"));
        let html = &b.parts[1];
        assert_eq!(html.content_subtype, "html");
        assert_eq!(html.encoding, "7bit");
        assert_eq!(body(raw, html), "<p>café</p>\r\nline two".as_bytes());
        assert_eq!(html.lines, 1);
    }

    #[test]
    fn nested_mixed_with_attachment() {
        let raw = b"From: a@x\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n\
            preamble\r\n\
            --outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
            --inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
            --inner\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n\
            --inner--\r\n\
            \r\n--outer\r\n\
            Content-Type: application/pdf; name=\"report.pdf\"\r\n\
            Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
            Content-Transfer-Encoding: base64\r\n\
            Content-ID: <part1@x>\r\n\
            Content-Description: The report\r\n\
            Content-Language: en, de\r\n\r\n\
            JVBERi0xLjQK\r\n\
            --outer--\r\nepilogue\r\n";
        let s = summarize(raw);
        let b = &s.body;
        assert_eq!(b.content_subtype, "mixed");
        assert_eq!(b.parts.len(), 2);
        let alt = &b.parts[0];
        assert_eq!(alt.content_subtype, "alternative");
        assert_eq!(alt.parts.len(), 2);
        assert_eq!(body(raw, &alt.parts[0]), b"plain");
        assert_eq!(body(raw, &alt.parts[1]), b"<b>html</b>");
        let alt_body = body(raw, alt);
        assert!(alt_body.starts_with(b"--inner\r\n"));
        assert!(alt_body.ends_with(b"--inner--\r\n"));
        let pdf = &b.parts[1];
        assert_eq!(
            (pdf.content_type.as_str(), pdf.content_subtype.as_str()),
            ("application", "pdf")
        );
        assert_eq!(pdf.params, vec![("name".to_owned(), "report.pdf".into())]);
        assert_eq!(pdf.encoding, "base64");
        assert_eq!(pdf.disposition.as_deref(), Some("attachment"));
        assert_eq!(
            pdf.disposition_params,
            vec![("filename".to_owned(), "report.pdf".into())]
        );
        assert_eq!(pdf.content_id.as_deref(), Some("<part1@x>"));
        assert_eq!(pdf.content_description, Some("The report".into()));
        assert_eq!(pdf.language, vec!["en".to_owned(), "de".to_owned()]);
        assert_eq!(body(raw, pdf), b"JVBERi0xLjQK");
    }

    #[test]
    fn message_rfc822_attachment() {
        let raw = b"From: a@x\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
            --b\r\nContent-Type: message/rfc822\r\n\r\n\
            From: Inner Sender <inner@y>\r\nTo: z@z\r\nSubject: the original\r\n\
            Message-ID: <orig@y>\r\n\r\n\
            original body\r\nsecond line\r\n\
            --b--\r\n";
        let s = summarize(raw);
        assert_eq!(s.subject.as_deref(), Some("fwd"));
        let msg = &s.body.parts[1];
        assert_eq!(
            (msg.content_type.as_str(), msg.content_subtype.as_str()),
            ("message", "rfc822")
        );
        let inner = msg.message.as_deref().expect("nested summary");
        assert_eq!(inner.subject.as_deref(), Some("the original"));
        assert_eq!(
            inner.from,
            vec![addr(Some("Inner Sender"), Some("inner@y"))]
        );
        assert_eq!(inner.message_id.as_deref(), Some("<orig@y>"));
        assert!(body(raw, msg).starts_with(b"From: Inner Sender"));
        assert!(body(raw, msg).ends_with(b"second line"));
        assert_eq!(msg.lines, 6);
        assert_eq!(msg.parts.len(), 1);
        // The enclosed tree is kept once, in the part's children.
        assert_eq!(inner.body, MimePart::default());
        let tree = &msg.parts[0];
        assert_eq!(body(raw, tree), b"original body\r\nsecond line");
        assert_eq!(tree.header_offset, msg.body_offset);
        assert_eq!(inner.header_len, tree.body_offset - tree.header_offset);
    }

    #[test]
    fn malformed_input_never_panics() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\r\n\r\n".to_vec(),
            b"no headers at all, just text".to_vec(),
            vec![0xff, 0xfe, 0x00, 0x01, b'\n', b':'],
            b"Subject: only a header".to_vec(),
            b"Content-Type: multipart/mixed\r\n\r\nno boundary given\r\n".to_vec(),
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nunterminated".to_vec(),
            b"Content-Type: message/rfc822\r\n\r\n".to_vec(),
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n".to_vec(),
            b"Content-Type: /\r\nContent-Disposition: ;;;\r\nDate: yesterday\r\nFrom: <<<>>>\r\n\r\nx".to_vec(),
            b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a--\r\n".to_vec(),
        ];
        for raw in &cases {
            let s = summarize(raw);
            let len = raw.len() as u64;
            fn check(p: &MimePart, len: u64) {
                assert!(p.header_offset <= p.body_offset && p.body_offset <= p.body_end);
                assert!(p.body_end <= len);
                assert!(!p.content_type.is_empty() && !p.content_subtype.is_empty());
                // A multipart may have no parts (it keeps its type; IMAP's
                // encoder shows a stand-in); an enclosed message has one.
                if p.content_type == "message" {
                    assert_eq!(p.parts.len(), 1);
                }
                for c in &p.parts {
                    check(c, len);
                }
            }
            check(&s.body, len);
            assert!(s.header_len <= len);
            // And it round-trips through the cache format.
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<MessageSummary>(&json).unwrap(), s);
        }
        let s = summarize(b"no headers at all, just text");
        assert_eq!(s.body.content_type, "text");
        assert_eq!(s.body.body_end, 28);
        let s = summarize(b"Date: yesterday\r\n\r\nx");
        assert_eq!(s.date, None);
    }

    #[test]
    fn eight_bit_utf8_headers() {
        let raw = "From: Jöran Müller <jöran@bücher.example>\r\nSubject: Grüße aus Köln ☕\r\n\r\nHallo\r\n";
        let s = summarize(raw.as_bytes());
        assert_eq!(s.subject.as_deref(), Some("Grüße aus Köln ☕"));
        assert_eq!(
            s.from,
            vec![addr(Some("Jöran Müller"), Some("jöran@bücher.example"))]
        );
        assert_eq!(s.header_len as usize, raw.find("\r\n\r\n").unwrap() + 4);
    }

    #[test]
    fn rfc2047_encoded_words() {
        let raw = b"From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\r\n\
            Subject: =?UTF-8?B?SGVsbG8g8J+MjQ==?= =?iso-8859-1?q?caf=E9?=\r\n\r\nbody\r\n";
        let s = summarize(raw);
        assert_eq!(s.subject.as_deref(), Some("Hello 🌍café"));
        assert_eq!(
            s.from,
            vec![addr(Some("Keld Jørn Simonsen"), Some("keld@dkuug.dk"))]
        );
    }

    #[test]
    fn groups_have_markers() {
        let raw = b"From: a@x\r\nTo: Friends: b@y, c@z;, d@w\r\n\r\nx";
        let s = summarize(raw);
        assert_eq!(s.to.first(), Some(&addr(Some("Friends"), None)));
        assert!(s.to.contains(&addr(None, Some("b@y"))));
        assert!(s.to.contains(&EmailAddress::default()));
        assert!(s.to.contains(&addr(None, Some("d@w"))));
        // A comment in a group is not a member.
        let s = summarize(b"From: a@x\r\nCc: group:;, group2: (foo) ;\r\n\r\nx");
        assert_eq!(
            s.cc,
            [
                addr(Some("group"), None),
                EmailAddress::default(),
                addr(Some("group2"), None),
                EmailAddress::default(),
            ]
        );
    }

    /// Issue 10, through the whole parse: obsolete dates parse, with their
    /// zone, and a delimiter is only a delimiter at the start of a line.
    #[test]
    fn issue10_dates_and_boundaries() {
        let s = summarize(b"Date: Thu, 5 Feb 2020 10:00 EST\r\n\r\nx\r\n");
        assert_eq!(s.date, Some(1_580_914_800));
        let s = summarize(b"Date: 1 Jan 70 00:00 GMT\r\n\r\nx\r\n");
        assert_eq!(s.date, Some(0));

        let raw = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: text/plain\r\n\r\nsee x--zz here\r\n\
--zz\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--zz--\r\n";
        let s = summarize(raw);
        let parts = &s.body.parts;
        assert_eq!(parts.len(), 2);
        assert_eq!(body(raw, &parts[0]), b"see x--zz here");
        assert_eq!(
            &raw[parts[1].header_offset as usize..parts[1].body_offset as usize],
            b"Content-Type: text/html\r\n\r\n"
        );
    }

    /// Issue 10: the forwarded message with an empty body keeps its type
    /// and its bytes, with or without the blank line.
    #[test]
    fn issue10_forwarded_empty_body() {
        let head = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: text/plain\r\n\r\nsee below\r\n\
--zz\r\nContent-Type: message/rfc822\r\n\r\n";
        for (tail, size) in [
            (
                &b"From: c@d\r\nSubject: empty body\r\n\r\n--zz--\r\n"[..],
                34,
            ),
            (b"From: c@d\r\nSubject: empty body\r\n--zz--\r\n", 32),
        ] {
            let raw = [&head[..], tail].concat();
            let s = summarize(&raw);
            let msg = &s.body.parts[1];
            assert_eq!(
                (msg.content_type.as_str(), msg.content_subtype.as_str()),
                ("message", "rfc822")
            );
            assert_eq!(msg.body_end - msg.body_offset, size);
            assert!(!body(&raw, msg).windows(4).any(|w| w == b"--zz"));
            let inner = msg.message.as_deref().expect("enclosed message");
            assert_eq!(inner.subject.as_deref(), Some("empty body"));
        }
    }

    /// The deepest trees the parser makes still decode from the cache
    /// (serde_json refuses JSON nested deeper than 128).
    #[test]
    fn deepest_trees_round_trip_through_the_cache() {
        let mut enclosed = Vec::new();
        let mut nested = Vec::new();
        for i in 0..200 {
            enclosed.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
            nested.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}x\r\n\r\n--b{i}x\r\n")
                    .as_bytes(),
            );
        }
        for raw in [enclosed, nested] {
            let s = summarize(&raw);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<MessageSummary>(&json).unwrap(), s);
        }
    }

    /// THREAD follows `References:`: its ids kept in order, a folded
    /// field unfolded.
    #[test]
    fn references_kept_in_order() {
        let raw = b"Subject: Re: x\r\n\
            References: <root@a.example>\r\n\t<mid@b.example>\r\n <last@c.example>\r\n\
            In-Reply-To: <last@c.example>\r\n\
            \r\n\
            body\r\n";
        let s = summarize(raw);
        assert_eq!(
            s.references.as_deref(),
            Some("<root@a.example> <mid@b.example> <last@c.example>")
        );
        assert_eq!(s.in_reply_to.as_deref(), Some("<last@c.example>"));
    }

    /// The parsers that read only the fields they need give what
    /// mail-parser's default parser (every field parsed) gives.
    #[test]
    fn narrow_parsers_agree_with_the_full_parser() {
        let messages: [&[u8]; 5] = [
            b"Return-Path: <a@b.example>\r\nReceived: from x.example (x.example [192.0.2.1])\r\n\tby mx.example with ESMTP id 1; Thu, 3 Dec 2026 10:00:00 +0000\r\n\
From: =?utf-8?q?J=C3=B6rg?= <j@a.example>, \"Q, R\" <q@b.example>\r\nTo: group: a@c.example, b@c.example;\r\n\
Cc: <c@d.example>\r\nSender: s@e.example\r\nReply-To: r@f.example\r\nSubject: =?iso-8859-1?q?caf=E9?= and more\r\n\
Message-ID: <m1@a.example>\r\nIn-Reply-To: <p@a.example>\r\nReferences: <o@a.example> <p@a.example>\r\n\
Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nX-Odd: (unbalanced <\r\n\r\nHello  there,\r\n  world.\r\n",
            b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nD=E9j=E0 vu\r\n--zz\r\n\
Content-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--zz\r\nContent-Type: message/rfc822\r\n\r\n\
Received: from y by z; Thu, 3 Dec 2026 10:00:00 +0000\r\nSubject: inner\r\nFrom: i@n.example\r\n\r\ninner body\r\n--zz--\r\n",
            b"Subject: html only\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hi <b>there</b></p>\r\n",
            b"Received: broken ( ( <\r\nSubject: after a broken field\r\nFrom: \"unterminated <x@y.example>\r\n\r\nbody\r\n",
            b"no header at all, just text\r\n",
        ];
        let full = MessageParser::default();
        for raw in messages {
            assert_eq!(
                preview_and_attachments(raw),
                preview_and_attachments_with(&full, raw),
                "{}",
                String::from_utf8_lossy(raw)
            );
            let header = &raw[..summarize(raw).header_len as usize];
            let (mut narrow, mut wide) = (MessageSummary::default(), MessageSummary::default());
            if let Some(m) = field_parser().parse_headers(header) {
                decoded_fields(&m, &mut narrow);
            }
            if let Some(m) = full.parse_headers(header) {
                decoded_fields(&m, &mut wide);
            }
            assert_eq!(narrow, wide, "{}", String::from_utf8_lossy(raw));
        }
    }
}
