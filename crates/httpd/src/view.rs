//! The JSON the API answers with. Message objects use Mailpit's field
//! names and shapes (`MessageSummary`, `Message`, `Attachment`, `Address`
//! in Mailpit's swagger), so Mailpit clients read them unchanged; the
//! objects only Postern has (envelopes, sessions, sandboxes, events) use
//! lower-case snake_case names.

#![allow(non_snake_case)]

use std::collections::BTreeMap;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::Serialize;
use sha2::Digest as _;
use store::{ArrivedMessage, EmailAddress, Envelope, SmtpSessionRecord, Timestamp};

use crate::query::{is_read, tags};

/// An instant as the API writes it: RFC 3339 in UTC with milliseconds.
pub fn time(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The API's id of a message: its arrival number in decimal.
pub fn id(arrival: u64) -> String {
    arrival.to_string()
}

#[derive(Debug, Clone, Serialize)]
pub struct Address {
    pub Name: String,
    pub Address: String,
}

fn addresses(list: &[EmailAddress]) -> Vec<Address> {
    list.iter()
        .filter_map(|a| {
            Some(Address {
                Name: a.name.clone().unwrap_or_default(),
                Address: a.address.clone()?,
            })
        })
        .collect()
}

fn strip_brackets(id: &str) -> String {
    let id = id.trim();
    id.strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .unwrap_or(id)
        .to_owned()
}

/// One message in a list or search (Mailpit's `MessageSummary`).
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    pub ID: String,
    pub MessageID: String,
    pub Read: bool,
    pub From: Option<Address>,
    pub To: Vec<Address>,
    pub Cc: Vec<Address>,
    pub Bcc: Vec<Address>,
    pub ReplyTo: Vec<Address>,
    pub Subject: String,
    pub Created: String,
    pub Tags: Vec<String>,
    pub Size: u64,
    pub Attachments: u32,
    pub Snippet: String,
    /// Postern's own: the address of the account this copy was delivered
    /// to (in capture mode, the envelope recipient; a Bcc recipient's
    /// copy names it).
    pub DeliveredTo: String,
}

impl MessageSummary {
    pub fn of(m: &ArrivedMessage) -> MessageSummary {
        let s = &m.summary;
        MessageSummary {
            ID: id(m.arrival),
            MessageID: s
                .message_id
                .as_deref()
                .map(strip_brackets)
                .unwrap_or_default(),
            Read: is_read(m),
            From: addresses(&s.from).into_iter().next(),
            To: addresses(&s.to),
            Cc: addresses(&s.cc),
            Bcc: addresses(&s.bcc),
            ReplyTo: addresses(&s.reply_to),
            Subject: s.subject.clone().unwrap_or_default(),
            Created: time(m.internal_date),
            Tags: tags(m).map(str::to_owned).collect(),
            Size: m.size,
            Attachments: s.attachments,
            Snippet: s.preview.clone().unwrap_or_default(),
            DeliveredTo: m.address.clone(),
        }
    }
}

/// A page of messages (Mailpit's `MessagesSummary`).
#[derive(Debug, Clone, Serialize)]
pub struct MessagesSummary {
    /// Messages the caller may see.
    pub total: u64,
    /// Of those, not read.
    pub unread: u64,
    /// Messages on this page (Mailpit's older name for it).
    pub count: usize,
    /// Messages matching the query (all of them for a list).
    pub messages_count: u64,
    /// Of those, not read.
    pub messages_unread: u64,
    pub start: u64,
    /// Mailpit's list of every tag in use; not collected here.
    pub tags: Vec<String>,
    pub messages: Vec<MessageSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checksums {
    pub MD5: String,
    pub SHA1: String,
    pub SHA256: String,
}

/// An attachment or inline part (Mailpit's `Attachment`).
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub PartID: String,
    pub FileName: String,
    pub ContentType: String,
    pub ContentID: String,
    pub Size: usize,
    pub Checksums: Checksums,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ListUnsubscribe {
    pub Header: String,
    pub Links: Vec<String>,
    pub Errors: String,
    pub HeaderPost: String,
}

/// One message with its bodies (Mailpit's `Message`).
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub ID: String,
    pub MessageID: String,
    pub From: Option<Address>,
    pub To: Vec<Address>,
    pub Cc: Vec<Address>,
    pub Bcc: Vec<Address>,
    pub ReplyTo: Vec<Address>,
    pub ReturnPath: String,
    pub Subject: String,
    pub ListUnsubscribe: ListUnsubscribe,
    pub Date: String,
    pub Tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Username: Option<String>,
    pub Text: String,
    pub HTML: String,
    pub Size: u64,
    pub Inline: Vec<Attachment>,
    pub Attachments: Vec<Attachment>,
}

/// The IMAP-style section number of every leaf part of a parsed message,
/// by mail-parser's part index: `1`, `1.2`, … (a message that is not
/// multipart has one part, `1`). A message/rfc822 part is a leaf.
pub fn part_ids(message: &mail_parser::Message<'_>) -> BTreeMap<u32, String> {
    fn walk(
        message: &mail_parser::Message<'_>,
        index: u32,
        path: String,
        out: &mut BTreeMap<u32, String>,
        depth: usize,
    ) {
        let Some(part) = message.parts.get(index as usize) else {
            return;
        };
        match &part.body {
            PartType::Multipart(children) if depth < 64 => {
                for (n, child) in children.iter().enumerate() {
                    let child_path = if path.is_empty() {
                        (n + 1).to_string()
                    } else {
                        format!("{path}.{}", n + 1)
                    };
                    walk(message, *child, child_path, out, depth + 1);
                }
            }
            PartType::Multipart(_) => {}
            _ => {
                out.insert(index, if path.is_empty() { "1".into() } else { path });
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(message, 0, String::new(), &mut out, 0);
    out
}

/// A part's `type/subtype`, lower-cased (`text/plain` when it says none).
pub fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None if part.is_message() => "message/rfc822".into(),
        None => "text/plain".into(),
    }
}

fn attachment(part: &mail_parser::MessagePart<'_>, part_id: String) -> Attachment {
    let contents = part.contents();
    Attachment {
        PartID: part_id,
        FileName: part.attachment_name().unwrap_or_default().to_owned(),
        ContentType: content_type(part),
        ContentID: part.content_id().map(strip_brackets).unwrap_or_default(),
        Size: contents.len(),
        Checksums: Checksums {
            MD5: hex::encode(md5::Md5::digest(contents)),
            SHA1: hex::encode(sha1::Sha1::digest(contents)),
            SHA256: hex::encode(sha2::Sha256::digest(contents)),
        },
    }
}

/// Whether an attachment is shown within the message (an inline image)
/// rather than offered for saving: `Content-Disposition: inline`, or a
/// Content-ID and no disposition.
fn is_inline(part: &mail_parser::MessagePart<'_>) -> bool {
    match part.content_disposition() {
        Some(d) => d.ctype().eq_ignore_ascii_case("inline"),
        None => part.content_id().is_some(),
    }
}

/// `List-Unsubscribe` and `List-Unsubscribe-Post` read as Mailpit
/// summarises them: the links in angle brackets (RFC 2369), at most one
/// `mailto:` and one HTTP(S), and what is wrong with them.
fn list_unsubscribe(parsed: &mail_parser::Message<'_>) -> ListUnsubscribe {
    let raw = |name: &str| {
        parsed
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unfold(v))
    };
    let Some(header) = raw("List-Unsubscribe") else {
        return ListUnsubscribe::default();
    };
    let mut links = Vec::new();
    let mut errors = Vec::new();
    let (mut mail, mut web) = (false, false);
    let mut rest = header.as_str();
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            errors.push("unclosed <".to_owned());
            break;
        };
        let link = rest[open + 1..open + close].trim().to_owned();
        rest = &rest[open + close + 1..];
        let lower = link.to_ascii_lowercase();
        if lower.starts_with("mailto:") {
            if mail {
                errors.push("more than one mailto: link".to_owned());
                continue;
            }
            mail = true;
        } else if lower.starts_with("https://") || lower.starts_with("http://") {
            if web {
                errors.push("more than one HTTP(S) link".to_owned());
                continue;
            }
            web = true;
        } else {
            errors.push(format!("link {link:?} is neither mailto: nor http(s):"));
            continue;
        }
        links.push(link);
    }
    if links.is_empty() && errors.is_empty() {
        errors.push("no link in angle brackets".to_owned());
    }
    ListUnsubscribe {
        Header: header.clone(),
        Links: links,
        Errors: errors.join("; "),
        HeaderPost: raw("List-Unsubscribe-Post").unwrap_or_default(),
    }
}

/// A header value with its folding undone: lines trimmed and joined with
/// one space (as Go's textproto reads them, which is what Mailpit shows).
pub fn unfold(value: &str) -> String {
    value
        .split('\n')
        .map(|l| l.trim_matches(|c: char| c == '\r' || c.is_whitespace()))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A header name as Go's textproto writes it (`Message-Id`,
/// `Dkim-Signature`), which is how Mailpit's headers endpoint names them.
pub fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

/// The fields of a message's header section (the stored
/// `header_len` octets), by canonical name, in the order they appear
/// (Mailpit's headers endpoint; keys sorted).
pub fn headers(header: &[u8]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(parsed) = MessageParser::default().parse_headers(header) {
        for (name, value) in parsed.headers_raw() {
            out.entry(canonical_header_name(name))
                .or_default()
                .push(unfold(value));
        }
    }
    out
}

/// The lower-cased text of a message's body parts, for search.
pub fn body_text(raw: &[u8]) -> String {
    let Some(parsed) = MessageParser::default().parse(raw) else {
        return String::new();
    };
    let mut text = String::new();
    for i in 0..parsed.text_body_count() {
        if let Some(t) = parsed.body_text(i) {
            text.push_str(&t.to_lowercase());
            text.push('\n');
        }
    }
    text
}

/// The whole message view, from its summary and its raw bytes.
pub fn message(m: &ArrivedMessage, raw: &[u8], username: Option<String>) -> Message {
    let s = &m.summary;
    let parsed = MessageParser::default().parse(raw);
    let (mut text, mut html) = (String::new(), String::new());
    let (mut inline, mut attachments) = (Vec::new(), Vec::new());
    let mut unsubscribe = ListUnsubscribe::default();
    if let Some(parsed) = &parsed {
        let texts: Vec<String> = (0..parsed.text_body_count())
            .filter_map(|i| parsed.body_text(i).map(|t| t.into_owned()))
            .collect();
        text = texts.join("\n");
        // Only real HTML parts: mail-parser would make HTML of plain text.
        let htmls: Vec<&str> = parsed
            .html_body
            .iter()
            .filter_map(|&i| match &parsed.parts.get(i as usize)?.body {
                PartType::Html(h) => Some(h.as_ref()),
                _ => None,
            })
            .collect();
        html = htmls.join("\n");
        let ids = part_ids(parsed);
        for &index in &parsed.attachments {
            let Some(part) = parsed.parts.get(index as usize) else {
                continue;
            };
            let Some(part_id) = ids.get(&index) else {
                continue;
            };
            let view = attachment(part, part_id.clone());
            if is_inline(part) {
                inline.push(view);
            } else {
                attachments.push(view);
            }
        }
        unsubscribe = list_unsubscribe(parsed);
    }
    Message {
        ID: id(m.arrival),
        MessageID: s
            .message_id
            .as_deref()
            .map(strip_brackets)
            .unwrap_or_default(),
        From: addresses(&s.from).into_iter().next(),
        To: addresses(&s.to),
        Cc: addresses(&s.cc),
        Bcc: addresses(&s.bcc),
        ReplyTo: addresses(&s.reply_to),
        ReturnPath: s.return_path.clone().unwrap_or_default(),
        Subject: s.subject.clone().unwrap_or_default(),
        ListUnsubscribe: unsubscribe,
        Date: time(s.date.unwrap_or(m.internal_date)),
        Tags: tags(m).map(str::to_owned).collect(),
        Username: username,
        Text: text,
        HTML: html,
        Size: m.size,
        Inline: inline,
        Attachments: attachments,
    }
}

/// One part of a message by its section number: its decoded bytes, its
/// content type and file name. `None` if there is no such leaf part.
pub fn part(raw: &[u8], part_id: &str) -> Option<(Vec<u8>, String, Option<String>)> {
    let parsed = MessageParser::default().parse(raw)?;
    let (&index, _) = part_ids(&parsed)
        .iter()
        .find(|(_, id)| id.as_str() == part_id)?;
    let part = parsed.parts.get(index as usize)?;
    let mut content_type = content_type(part);
    if part.is_text() {
        // mail-parser hands text decoded to UTF-8.
        content_type.push_str("; charset=utf-8");
    }
    Some((
        part.contents().to_vec(),
        content_type,
        part.attachment_name().map(str::to_owned),
    ))
}

// ---- Postern's own objects ----

#[derive(Debug, Clone, Serialize)]
pub struct Recipient {
    pub address: String,
    pub params: String,
}

/// An envelope (`/api/v1/message/{ID}/envelope`).
#[derive(Debug, Clone, Serialize)]
pub struct EnvelopeView {
    pub id: i64,
    pub session: Option<i64>,
    pub mail_from: String,
    pub mail_params: String,
    pub recipients: Vec<Recipient>,
    pub helo: Option<String>,
    pub client: Option<String>,
    pub tls: Option<String>,
    pub auth_user: Option<String>,
    pub received_at: String,
    pub warnings: Vec<String>,
}

impl EnvelopeView {
    /// The envelope, with only the recipients `keep` lets through.
    pub fn of(e: &Envelope, keep: impl Fn(&str) -> bool) -> EnvelopeView {
        EnvelopeView {
            id: e.id.0,
            session: e.session.map(|s| s.0),
            mail_from: e.mail_from.clone(),
            mail_params: e.mail_params.clone(),
            recipients: e
                .recipients
                .iter()
                .filter(|r| keep(&r.address))
                .map(|r| Recipient {
                    address: r.address.clone(),
                    params: r.params.clone(),
                })
                .collect(),
            helo: e.helo.clone(),
            client: e.client.clone(),
            tls: e.tls.clone(),
            auth_user: e.auth_user.clone(),
            received_at: time(e.received_at),
            warnings: e.warnings.clone(),
        }
    }
}

/// A recorded SMTP session, in a list (no transcript).
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub id: i64,
    pub client: String,
    pub role: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub refusals: u32,
}

impl SessionSummary {
    pub fn of(s: &SmtpSessionRecord) -> SessionSummary {
        SessionSummary {
            id: s.id.0,
            client: s.client.clone(),
            role: s.role.clone(),
            started_at: time(s.started_at),
            ended_at: s.ended_at.map(time),
            refusals: s.refusals,
        }
    }
}

/// One session with its transcript and envelopes.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub transcript: String,
    pub envelopes: Vec<EnvelopeView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &[u8] = b"From: A <a@x.test>\r\nTo: b@y.test\r\nSubject: Hi\r\n\
List-Unsubscribe: <mailto:u@x.test>,\r\n <https://x.test/u>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: multipart/related; boundary=b2\r\n\r\n\
--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>there</b></p>\r\n\
--b2\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n\
--b2--\r\n\
--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n";

    #[test]
    fn part_numbers_follow_imap_sections() {
        let parsed = MessageParser::default().parse(MIXED).unwrap();
        let ids: Vec<String> = part_ids(&parsed).into_values().collect();
        assert_eq!(ids, ["1.1", "1.2", "2"]);
        let single = MessageParser::default()
            .parse(b"Subject: x\r\n\r\nbody\r\n".as_slice())
            .unwrap();
        assert_eq!(part_ids(&single).into_values().collect::<Vec<_>>(), ["1"]);
        let (bytes, ct, name) = part(MIXED, "2").unwrap();
        assert_eq!(bytes, b"%PDF-");
        assert_eq!(ct, "application/pdf");
        assert_eq!(name.as_deref(), Some("r.pdf"));
        let (png, ct, _) = part(MIXED, "1.2").unwrap();
        assert_eq!(ct, "image/png");
        assert_eq!(png, [0x89, b'P', b'N', b'G', 0x0d, 0x0a]);
        assert!(
            part(MIXED, "1").is_none(),
            "a multipart is no part to fetch"
        );
        assert!(part(MIXED, "9").is_none());
    }

    #[test]
    fn headers_are_unfolded_and_named_as_mailpit_names_them() {
        let h = headers(b"Message-ID: <a@b>\r\nX-Long: one\r\n  two\r\nReceived: r1\r\nReceived: r2\r\n\r\nbody");
        assert_eq!(h["Message-Id"], ["<a@b>"]);
        assert_eq!(h["X-Long"], ["one two"]);
        assert_eq!(h["Received"], ["r1", "r2"]);
        assert_eq!(canonical_header_name("dkim-SIGNATURE"), "Dkim-Signature");
    }

    #[test]
    fn unsubscribe_links() {
        let parsed = MessageParser::default().parse(MIXED).unwrap();
        let u = list_unsubscribe(&parsed);
        assert_eq!(u.Links, ["mailto:u@x.test", "https://x.test/u"]);
        assert_eq!(u.Errors, "");
    }

    #[test]
    fn body_text_includes_html_made_text() {
        let text = body_text(MIXED);
        assert!(text.contains("hello there"), "{text}");
    }
}
