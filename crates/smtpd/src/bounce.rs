//! Delivery status notifications: the message that tells a sender their
//! mail failed, is late, or (when they asked with `NOTIFY=SUCCESS`, RFC
//! 3461) arrived (RFC 3464 inside an RFC 6522 `multipart/report`).
//!
//! The queue manager calls [`build`] once per message and report kind, with
//! every recipient that failed (or is delayed, or was delivered) in this
//! round, so a sender gets one report naming them all rather than one per
//! recipient. The
//! report is queued with the null envelope sender `<>` (RFC 5321 4.5.5), and
//! a message whose own sender is null gets no report at all, so two mail
//! systems can never bounce a bounce back and forth.
//!
//! ## Shape
//!
//! ```text
//! multipart/report; report-type=delivery-status
//! ├── text/plain                       what happened, for a person
//! ├── message/delivery-status          the same, for a program (RFC 3464)
//! └── message/rfc822                   the original, if it is small enough,
//!     or text/rfc822-headers           else its header section only
//! ```
//!
//! The top level carries `Auto-Submitted: auto-replied` (RFC 3834), so
//! vacation responders and list servers leave the report alone.
//!
//! ## Choices
//!
//! - **Status.** A recipient's `status` is the enhanced status code (RFC
//!   3463) the queue manager was handed with the failure
//!   ([`crate::status::SmtpError`]); without one, 5.0.0 for a failure,
//!   4.0.0 for a delay and 2.0.0 for a success. Nothing is read back out
//!   of the diagnostic's text.
//! - **Remote MTA and diagnostic, as Postfix writes them.** `Remote-MTA:
//!   dns; mx.example.org` names the host by the name it was reached by (for
//!   a hop given as an address, the address: `dns; 127.0.0.1`); a
//!   diagnostic that is a server's reply ([`Diagnostic::Smtp`]) is
//!   `Diagnostic-Code: smtp; 550 5.1.1 …` (RFC 3464 2.3.6; a multi-line
//!   reply on one line), which bounce parsers read; our own words (a
//!   connection error, a local delivery error) are `X-Postern`, the
//!   private type 2.3.6 allows.
//! - **What the sender asked (RFC 3461).** ENVID comes back as
//!   `Original-Envelope-Id`, each ORCPT as `Original-Recipient` (both
//!   decoded from xtext, as Postfix writes them); `RET=HDRS` returns the
//!   header section only; a success report always returns the header
//!   section only (as Postfix). Whether a recipient is in a report at all
//!   (NOTIFY) is the queue manager's choice.
//! - **Non-ASCII recipients.** When any recipient address is not ASCII, the
//!   status part is `message/global-delivery-status` (RFC 6533), such
//!   addresses are typed `utf-8`, and the part is sent `8bit`: a report in
//!   plain `message/delivery-status` must be 7-bit and has no way to carry
//!   the address as the recipient's own system knows it. Otherwise the part
//!   is `message/delivery-status`, 7-bit, and any non-ASCII character in a
//!   diagnostic or host name is written as `\x{HEX}` (RFC 6533's notation).
//! - **The returned original.** RFC 2046 5.2.1 allows only `7bit`, `8bit`
//!   and `binary` for `message/rfc822`, and the report must travel over
//!   ordinary SMTP, so the original is attached as it is, labelled `7bit`
//!   or `8bit`, when it is at most `return_limit` octets and fit for 8-bit
//!   transport (CRLF line ends, no NUL, lines of at most 998 octets, RFC
//!   2045 2.8). A larger or unfit original is returned as its header
//!   section only (`text/rfc822-headers`, RFC 6522), mended where needed:
//!   line ends made CRLF, NULs dropped, over-long lines folded. A message
//!   with no empty line is all header (RFC 5322 2.1); a header section
//!   longer than [`HEADER_SECTION_LIMIT`] is cut at a line end. An original
//!   with nothing to return (empty, or a body with no header) gets no third
//!   part, which RFC 6522 permits.
//! - **8-bit transport.** A report that returns 8-bit content, or names a
//!   non-ASCII recipient, contains 8-bit octets; [`needs_8bit`] says so, and
//!   the queue manager then sends it with `BODY=8BITMIME` (RFC 6152).
//!   Everything else in the report is 7-bit: the explanation goes through
//!   mail-builder, which picks quoted-printable when it has to.
//! - **Line length.** Every line is at most 998 octets (RFC 5322 2.1.1):
//!   status fields are folded near 78 columns, and a run of text with no
//!   space longer than [`LONGEST_WORD`] is broken, which shows as an extra
//!   space when the field is unfolded.

use std::borrow::Cow;

use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{make_boundary, BodyPart, MimePart};
use mail_builder::MessageBuilder;

use crate::status::EnhancedStatus;

/// What the report tells the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Permanent failure, or the message outlived its time in the queue:
    /// `Action: failed`.
    Failure,
    /// Still being retried: `Action: delayed` (a delay warning).
    Delay {
        /// Unix seconds after which the queue gives up on the message.
        will_retry_until: i64,
    },
    /// Delivered into a mailbox (`Action: delivered`), or handed to a next
    /// hop that sends no notifications (`Action: relayed`), for recipients
    /// that asked with `NOTIFY=SUCCESS`.
    Success,
}

/// One recipient the report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedRecipient {
    /// The envelope recipient as queued.
    pub address: String,
    /// Enhanced status code ("5.1.1"); `None`: 5.0.0, 4.0.0 or 2.0.0 by
    /// report kind.
    pub status: Option<EnhancedStatus>,
    /// What the server said, or what went wrong here.
    pub diagnostic: Diagnostic,
    /// The host that answered, if one did, by the name it was reached by.
    pub remote_mta: Option<String>,
    /// Unix seconds of the last delivery attempt.
    pub last_attempt: i64,
    /// The client's ORCPT (`addr-type;xtext`), if it gave one.
    pub original_recipient: Option<String>,
    /// In a success report: handed on to a hop without DSN
    /// (`Action: relayed`) rather than delivered here.
    pub relayed: bool,
    /// What a person reads about it (`host mx[192.0.2.1]:25 said: 550 …
    /// (in reply to RCPT TO)`); empty: made from the host and diagnostic.
    pub explanation: String,
}

/// The `Diagnostic-Code` of a recipient (RFC 3464 2.3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// Nothing to say (a delivery here).
    None,
    /// A server's reply, as it came on one line: `550 5.1.1
    /// <bob@example.org>: user unknown` (`smtp;`).
    Smtp(String),
    /// Our own words: `connect to 127.0.0.1:2526: connection refused`
    /// (`X-Postern;`).
    Local(String),
}

impl Diagnostic {
    pub fn text(&self) -> &str {
        match self {
            Diagnostic::None => "",
            Diagnostic::Smtp(text) | Diagnostic::Local(text) => text,
        }
    }

    /// The diagnostic type RFC 3464 2.3.6 names.
    fn kind(&self) -> &'static str {
        match self {
            Diagnostic::Smtp(_) => "smtp",
            Diagnostic::None | Diagnostic::Local(_) => "X-Postern",
        }
    }
}

/// Everything a report says about one queued message.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub kind: ReportKind,
    /// Our host name (`config.hostname`).
    pub reporting_mta: &'a str,
    pub queue_id: &'a str,
    /// Unix seconds the original was queued.
    pub arrival: i64,
    /// The original envelope sender: the report goes to it.
    pub sender: &'a str,
    /// The client's ENVID (xtext), if it gave one.
    pub envid: Option<&'a str>,
    /// `RET=HDRS`: return the header section only.
    pub headers_only: bool,
    pub recipients: &'a [ReportedRecipient],
    /// The original message as queued (CRLF line ends).
    pub original: &'a [u8],
    /// Originals up to this size are returned whole, larger ones as their
    /// header section only.
    pub return_limit: usize,
    /// Unix seconds, for the report's own `Date:`.
    pub now: i64,
}

/// Status fields are folded near this column, as RFC 5322 2.1.1 asks.
const FIELD_WIDTH: usize = 78;

/// The explanation is wrapped narrower: mail-builder sends a text line
/// over 75 octets quoted-printable, which a person reading the raw
/// message should not have to decode.
const TEXT_WIDTH: usize = 72;

/// Text without spaces is broken into pieces no longer than this, so that
/// with a field name or an indent in front a line stays under 998 octets.
pub const LONGEST_WORD: usize = 900;

/// The hard line limit of RFC 5322 2.1.1, CRLF not counted.
const LINE_LIMIT: usize = 998;

/// The most of an original's header section a report returns. Real header
/// sections are a few kilobytes; this bounds the report when the "header"
/// is really a headerless message with no empty line (Postfix's
/// `header_size_limit` default is the same).
pub const HEADER_SECTION_LIMIT: usize = 100 * 1024;

/// Builds the report, ready to queue with the null envelope sender, or
/// `None` when the original's sender is null: a bounce is never bounced.
pub fn build(report: &Report<'_>) -> Option<Vec<u8>> {
    if is_null_sender(report.sender) {
        return None;
    }
    let host = one_line(report.reporting_mta);
    let headers_only = report.headers_only || report.kind == ReportKind::Success;
    let returned = Returned::choose(report.original, report.return_limit, headers_only);

    let mut parts = vec![
        MimePart::new("text/plain", explanation(report, &host, &returned))
            .header("Content-Description", Raw::new("Notification")),
        status_part(report, &host),
    ];
    parts.extend(returned.into_part(report.kind));

    let subject = match report.kind {
        ReportKind::Failure => "Undelivered Mail Returned to Sender",
        ReportKind::Delay { .. } => "Delayed Mail (still being retried)",
        ReportKind::Success => "Successful Mail Delivery Report",
    };
    let report_type =
        ContentType::new("multipart/report").attribute("report-type", "delivery-status");
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{host}"),
        ))
        .to(Address::new_address(None::<&str>, one_line(report.sender)))
        .subject(subject)
        .date(Date::new(report.now))
        .message_id(message_id(report.queue_id, &host))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(MimePart::new(report_type, parts))
        .write_to_vec()
        .ok()
}

/// Whether a built report has 8-bit octets, so must be sent with
/// `BODY=8BITMIME` (it returns 8-bit content or names a non-ASCII
/// recipient).
pub fn needs_8bit(dsn: &[u8]) -> bool {
    !dsn.is_ascii()
}

/// The null reverse-path, as the queue stores it or as SMTP writes it.
fn is_null_sender(sender: &str) -> bool {
    matches!(sender.trim(), "" | "<>")
}

fn status_of(recipient: &ReportedRecipient, kind: ReportKind) -> &str {
    match &recipient.status {
        Some(status) => status.as_str(),
        None => match kind {
            ReportKind::Failure => "5.0.0",
            ReportKind::Delay { .. } => "4.0.0",
            ReportKind::Success => "2.0.0",
        },
    }
}

/// A fresh id in our domain; the queue id in it lets a postmaster find the
/// log lines of the message the report is about.
fn message_id(queue_id: &str, host: &str) -> MessageId<'static> {
    let queue_id: String = queue_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    let unique = make_boundary(".");
    let local = if queue_id.is_empty() {
        unique
    } else {
        format!("{queue_id}.{unique}")
    };
    MessageId::new(format!("{local}@{host}"))
}

/// `text` on one line: control characters (a CR or LF would end the field,
/// or the line, early) become spaces, and runs of white space one space.
fn one_line(text: &str) -> String {
    let spaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` with each non-ASCII character written `\x{HEX}`, RFC 6533's
/// notation, for the parts that must stay 7-bit.
fn seven_bit(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    out
}

/// Appends `text` and a CRLF to `out`, breaking it at spaces so lines stay
/// within `width` where the words allow; each further line starts with
/// `indent` (a space makes it a header-style continuation, RFC 5322 2.2.3).
fn push_folded(out: &mut String, text: &str, indent: &str, width: usize) {
    let mut column = 0;
    for word in text.split(' ').flat_map(split_long) {
        if column == 0 {
            out.push_str(word);
            column = word.len();
        } else if column + 1 + word.len() > width {
            out.push_str("\r\n");
            out.push_str(indent);
            out.push_str(word);
            column = indent.len() + word.len();
        } else {
            out.push(' ');
            out.push_str(word);
            column += 1 + word.len();
        }
    }
    out.push_str("\r\n");
}

/// `word` in pieces of at most [`LONGEST_WORD`] octets, cut between
/// characters; nothing for an empty word.
fn split_long(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(LONGEST_WORD);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// The part a person reads.
fn explanation(report: &Report<'_>, host: &str, returned: &Returned<'_>) -> String {
    let mut text = format!("This is the mail delivery system at {host}.\r\n\r\n");
    match report.kind {
        ReportKind::Failure => {
            push_folded(
                &mut text,
                "Your message could not be delivered to the recipients listed below. \
                 Delivery has been given up; no further attempts will be made.",
                "",
                TEXT_WIDTH,
            );
        }
        ReportKind::Delay { will_retry_until } => {
            let until = Date::new(will_retry_until).to_rfc822();
            push_folded(
                &mut text,
                &format!(
                    "Your message has not yet been delivered to the recipients listed below. \
                     Delivery will be retried until {until}, so there is no need to send it \
                     again. You will hear from us again only if it still cannot be delivered \
                     by then."
                ),
                "",
                TEXT_WIDTH,
            );
        }
        ReportKind::Success => {
            push_folded(
                &mut text,
                "Your message was delivered to the recipients listed below, as you asked.",
                "",
                TEXT_WIDTH,
            );
            if report.recipients.iter().any(|r| r.relayed) {
                text.push_str("\r\n");
                push_folded(
                    &mut text,
                    "Where it says \"relayed\", the message was handed on to a server \
                     that sends no delivery notifications: you may still hear of a \
                     failure from further on.",
                    "",
                    TEXT_WIDTH,
                );
            }
        }
    }
    text.push_str("\r\n");
    let attached = match returned {
        Returned::Whole { .. } => Some("A copy of your message is attached."),
        Returned::Headers { .. } if report.kind == ReportKind::Success => {
            Some("The header of your message is attached.")
        }
        Returned::Headers { .. } if report.headers_only => {
            Some("The header of your message is attached, as you asked (RET=HDRS).")
        }
        Returned::Headers { .. } => Some(
            "The header of your message is attached; the message itself was too large \
             (or not in a form that could be sent back) to return in full.",
        ),
        Returned::Nothing => None,
    };
    if let Some(attached) = attached {
        push_folded(&mut text, attached, "", TEXT_WIDTH);
        text.push_str("\r\n");
    }
    for recipient in report.recipients {
        let said = match recipient.remote_mta.as_deref().map(one_line) {
            Some(mta) if !mta.is_empty() => format!("host {mta} said: "),
            _ => String::new(),
        };
        let mut diagnostic = format!("{said}{}", one_line(recipient.diagnostic.text()));
        if !recipient.explanation.is_empty() {
            diagnostic = one_line(&recipient.explanation);
        } else if report.kind == ReportKind::Success && recipient.diagnostic.text().is_empty() {
            diagnostic = if recipient.relayed {
                "relayed".to_string()
            } else {
                "delivered to the mailbox".to_string()
            };
        }
        let line = format!("<{}>: {diagnostic}", one_line(&recipient.address));
        push_folded(&mut text, &line, "    ", TEXT_WIDTH);
        text.push_str("\r\n");
    }
    text
}

/// The machine-readable part (RFC 3464 2.2 and 2.3).
fn status_part(report: &Report<'_>, host: &str) -> MimePart<'static> {
    let global = report.recipients.iter().any(|r| !r.address.is_ascii());
    let clean = |text: &str| {
        if global {
            one_line(text)
        } else {
            seven_bit(&one_line(text))
        }
    };
    let date = |secs: i64| Date::new(secs).to_rfc822();

    let mut fields = String::new();
    let field = |fields: &mut String, line: String| push_folded(fields, &line, " ", FIELD_WIDTH);
    // The fields in RFC 3464 2.2's order.
    if let Some(envid) = report.envid {
        field(
            &mut fields,
            format!(
                "Original-Envelope-Id: {}",
                clean(&crate::dsn::readable(envid))
            ),
        );
    }
    field(&mut fields, format!("Reporting-MTA: dns; {}", clean(host)));
    field(
        &mut fields,
        format!("X-Postern-Queue-ID: {}", clean(report.queue_id)),
    );
    field(
        &mut fields,
        format!("Arrival-Date: {}", date(report.arrival)),
    );
    for recipient in report.recipients {
        fields.push_str("\r\n");
        let address_type = if recipient.address.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        // RFC 3464 2.3: Original-Recipient first, and only when the
        // client gave an ORCPT.
        if let Some(orcpt) = recipient.original_recipient.as_deref() {
            field(
                &mut fields,
                format!(
                    "Original-Recipient: {}",
                    clean(&crate::dsn::readable_orcpt(orcpt))
                ),
            );
        }
        field(
            &mut fields,
            format!(
                "Final-Recipient: {address_type}; {}",
                clean(&recipient.address)
            ),
        );
        let action = match report.kind {
            ReportKind::Failure => "failed",
            ReportKind::Delay { .. } => "delayed",
            ReportKind::Success if recipient.relayed => "relayed",
            ReportKind::Success => "delivered",
        };
        field(&mut fields, format!("Action: {action}"));
        field(
            &mut fields,
            format!("Status: {}", status_of(recipient, report.kind)),
        );
        let mta = recipient.remote_mta.as_deref().map(clean);
        if let Some(mta) = mta.filter(|mta| !mta.is_empty()) {
            field(&mut fields, format!("Remote-MTA: dns; {mta}"));
        }
        let diagnostic = clean(recipient.diagnostic.text());
        if !diagnostic.is_empty() {
            field(
                &mut fields,
                format!(
                    "Diagnostic-Code: {}; {diagnostic}",
                    recipient.diagnostic.kind()
                ),
            );
        }
        field(
            &mut fields,
            format!("Last-Attempt-Date: {}", date(recipient.last_attempt)),
        );
        if let ReportKind::Delay { will_retry_until } = report.kind {
            field(
                &mut fields,
                format!("Will-Retry-Until: {}", date(will_retry_until)),
            );
        }
    }

    let (content_type, encoding) = match (global, fields.is_ascii()) {
        (false, _) => ("message/delivery-status", "7bit"),
        (true, true) => ("message/global-delivery-status", "7bit"),
        (true, false) => ("message/global-delivery-status", "8bit"),
    };
    // A binary body with a transfer encoding set is written as it is; a
    // text body would get a charset and possibly quoted-printable.
    MimePart::new(content_type, fields.into_bytes())
        .transfer_encoding(encoding)
        .header("Content-Description", Raw::new("Delivery report"))
}

/// What of the original goes back to the sender.
enum Returned<'a> {
    Whole {
        message: &'a [u8],
        encoding: &'static str,
    },
    Headers {
        section: Cow<'a, [u8]>,
        encoding: &'static str,
    },
    Nothing,
}

impl<'a> Returned<'a> {
    fn choose(original: &'a [u8], return_limit: usize, headers_only: bool) -> Returned<'a> {
        if original.iter().all(u8::is_ascii_whitespace) {
            return Returned::Nothing;
        }
        if !headers_only && original.len() <= return_limit {
            if let Some(encoding) = transfer_encoding(original) {
                return Returned::Whole {
                    message: original,
                    encoding,
                };
            }
        }
        let section = header_section(original);
        if section.iter().all(u8::is_ascii_whitespace) {
            return Returned::Nothing;
        }
        let section = mend(section);
        let encoding = transfer_encoding(&section).unwrap_or("8bit");
        Returned::Headers { section, encoding }
    }

    fn into_part(self, kind: ReportKind) -> Option<MimePart<'a>> {
        let (content_type, body, encoding, description) = match self {
            Returned::Whole { message, encoding } => (
                "message/rfc822",
                Cow::Borrowed(message),
                encoding,
                "Undelivered message",
            ),
            Returned::Headers { section, encoding } => (
                "text/rfc822-headers",
                section,
                encoding,
                if kind == ReportKind::Success {
                    "Message headers"
                } else {
                    "Undelivered message headers"
                },
            ),
            Returned::Nothing => return None,
        };
        // Set by hand: mail-builder would base64 a message/rfc822 body,
        // which RFC 2046 5.2.1 forbids.
        Some(
            MimePart::new(content_type, BodyPart::Binary(body))
                .transfer_encoding(encoding)
                .header("Content-Description", Raw::new(description)),
        )
    }
}

/// "7bit" or "8bit" for content fit to send as it is (RFC 2045 2.7, 2.8:
/// CRLF line ends only, no NUL, lines of at most 998 octets), else `None`.
fn transfer_encoding(content: &[u8]) -> Option<&'static str> {
    let mut eight_bit = false;
    let mut line_len = 0;
    let mut previous = 0u8;
    for (at, &octet) in content.iter().enumerate() {
        match octet {
            0 => return None,
            b'\r' if content.get(at + 1) != Some(&b'\n') => return None,
            b'\n' if previous != b'\r' => return None,
            b'\n' => line_len = 0,
            b'\r' => {}
            _ => {
                line_len += 1;
                if line_len > LINE_LIMIT {
                    return None;
                }
                eight_bit |= octet >= 0x80;
            }
        }
        previous = octet;
    }
    Some(if eight_bit { "8bit" } else { "7bit" })
}

/// The original's header section: up to the first empty line, or all of
/// it when there is none (RFC 5322 2.1), cut at a line end within
/// [`HEADER_SECTION_LIMIT`].
fn header_section(original: &[u8]) -> &[u8] {
    let mut end = 0;
    for line in original.split_inclusive(|&octet| octet == b'\n') {
        if matches!(line, b"\r\n" | b"\n") {
            break;
        }
        if end + line.len() > HEADER_SECTION_LIMIT {
            if end == 0 {
                end = HEADER_SECTION_LIMIT;
            }
            break;
        }
        end += line.len();
    }
    original.get(..end).unwrap_or(original)
}

/// `section` made fit for 8-bit transport: line ends made CRLF, NULs
/// dropped, lines longer than 998 octets folded (CRLF and a space, a
/// header continuation), preferably between UTF-8 characters.
fn mend(section: &[u8]) -> Cow<'_, [u8]> {
    if transfer_encoding(section).is_some() {
        return Cow::Borrowed(section);
    }
    // Leave room for the rest of a UTF-8 character after a fold point.
    const FOLD_AT: usize = LINE_LIMIT - 4;
    let mut out = Vec::with_capacity(section.len() + section.len() / 64 + 2);
    let mut line_len = 0;
    let mut octets = section.iter().copied().peekable();
    while let Some(octet) = octets.next() {
        match octet {
            0 => {}
            b'\r' | b'\n' => {
                if octet == b'\r' && octets.peek() == Some(&b'\n') {
                    octets.next();
                }
                out.extend_from_slice(b"\r\n");
                line_len = 0;
            }
            _ => {
                let starts_character = octet & 0xC0 != 0x80;
                if (line_len >= FOLD_AT && starts_character) || line_len >= LINE_LIMIT {
                    out.extend_from_slice(b"\r\n ");
                    line_len = 1;
                }
                out.push(octet);
                line_len += 1;
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{Message, MessageParser, MimeHeaders};

    const ORIGINAL: &[u8] = b"From: Alice <alice@example.com>\r\n\
        To: bob@example.org, carol@example.net\r\n\
        Subject: lunch\r\n\
        Message-ID: <lunch.1@example.com>\r\n\
        \r\n\
        Shall we meet at noon?\r\n";

    fn recipient(address: &str, diagnostic: Diagnostic, remote: Option<&str>) -> ReportedRecipient {
        ReportedRecipient {
            address: address.to_string(),
            status: None,
            diagnostic,
            remote_mta: remote.map(str::to_string),
            last_attempt: 1_763_800_000,
            original_recipient: None,
            relayed: false,
            explanation: String::new(),
        }
    }

    /// Refused by a server with `reply`, whose status is `status`.
    fn rejected(
        address: &str,
        status: &str,
        reply: &str,
        remote: Option<&str>,
    ) -> ReportedRecipient {
        ReportedRecipient {
            status: EnhancedStatus::parse(status),
            ..recipient(address, Diagnostic::Smtp(reply.to_string()), remote)
        }
    }

    fn two_failed() -> Vec<ReportedRecipient> {
        vec![
            rejected(
                "bob@example.org",
                "5.1.1",
                "550 5.1.1 <bob@example.org>: user unknown",
                Some("mx.example.org"),
            ),
            recipient(
                "carol@example.net",
                Diagnostic::Local("connect to 127.0.0.1:2526: connection refused".into()),
                None,
            ),
        ]
    }

    fn report<'a>(recipients: &'a [ReportedRecipient], original: &'a [u8]) -> Report<'a> {
        Report {
            kind: ReportKind::Failure,
            reporting_mta: "mail.example.com",
            queue_id: "Q4711",
            arrival: 1_763_700_000,
            sender: "alice@example.com",
            envid: None,
            headers_only: false,
            recipients,
            original,
            return_limit: 50_000,
            now: 1_763_800_100,
        }
    }

    fn parse(dsn: &[u8]) -> Message<'_> {
        MessageParser::new().parse(dsn).expect("the report parses")
    }

    /// The report's three (or two) parts, in order.
    fn parts<'a>(message: &'a Message<'a>) -> Vec<&'a mail_parser::MessagePart<'a>> {
        message
            .root_part()
            .sub_parts()
            .expect("multipart")
            .iter()
            .map(|&id| &message.parts[id as usize])
            .collect()
    }

    fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
        let ct = part.content_type().expect("content type");
        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
    }

    fn transfer_encoding_of(part: &mail_parser::MessagePart<'_>) -> Option<String> {
        part.content_transfer_encoding().map(str::to_string)
    }

    /// The status part's fields as (name, value) per block, blocks split at
    /// empty lines, continuation lines unfolded.
    fn status_blocks(body: &[u8]) -> Vec<Vec<(String, String)>> {
        let text = String::from_utf8(body.to_vec()).expect("UTF-8");
        let unfolded = text.replace("\r\n ", " ");
        unfolded
            .split("\r\n\r\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                block
                    .split("\r\n")
                    .filter(|line| !line.is_empty())
                    .map(|line| {
                        let (name, value) = line.split_once(": ").expect("a field");
                        (name.to_string(), value.to_string())
                    })
                    .collect()
            })
            .collect()
    }

    fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
        block
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn assert_lines_fit(dsn: &[u8]) {
        for line in dsn.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(line.len() <= LINE_LIMIT, "line of {} octets", line.len());
        }
        for (at, &octet) in dsn.iter().enumerate() {
            if octet == b'\n' {
                assert_eq!(dsn.get(at.wrapping_sub(1)), Some(&b'\r'), "bare LF at {at}");
            }
        }
    }

    #[test]
    fn report_is_multipart_report_with_three_parts() {
        let recipients = two_failed();
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        let message = parse(&dsn);
        let ct = message.content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let parts = parts(&message);
        let types: Vec<String> = parts.iter().map(|p| content_type(p)).collect();
        assert_eq!(
            types,
            ["text/plain", "message/delivery-status", "message/rfc822"]
        );
        let returned = parts[2].message().expect("nested message");
        assert_eq!(returned.subject(), Some("lunch"));
        assert_eq!(returned.raw_message(), ORIGINAL);
        assert_eq!(transfer_encoding_of(parts[2]).as_deref(), Some("7bit"));
        assert!(!needs_8bit(&dsn));
        assert_lines_fit(&dsn);
    }

    #[test]
    fn top_level_headers_address_the_sender() {
        let recipients = two_failed();
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        let message = parse(&dsn);
        let from = message.from().unwrap().first().unwrap();
        assert_eq!(from.address(), Some("MAILER-DAEMON@mail.example.com"));
        assert_eq!(from.name(), Some("Mail Delivery System"));
        let to = message.to().unwrap().first().unwrap();
        assert_eq!(to.address(), Some("alice@example.com"));
        assert_eq!(
            message.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
        assert_eq!(
            message.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-replied")
        );
        assert_eq!(message.date().unwrap().to_timestamp(), 1_763_800_100);
        let id = message.message_id().unwrap();
        assert!(id.starts_with("Q4711."), "{id}");
        assert!(id.ends_with("@mail.example.com"), "{id}");
        assert!(message.header_raw("MIME-Version").is_some());
    }

    #[test]
    fn both_recipients_in_one_status_part() {
        let recipients = two_failed();
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(transfer_encoding_of(parts[1]).as_deref(), Some("7bit"));
        let blocks = status_blocks(parts[1].contents());
        assert_eq!(blocks.len(), 3, "{blocks:?}");

        let per_message = &blocks[0];
        assert_eq!(
            field(per_message, "Reporting-MTA"),
            Some("dns; mail.example.com")
        );
        assert_eq!(field(per_message, "X-Postern-Queue-ID"), Some("Q4711"));
        assert_eq!(
            field(per_message, "Arrival-Date"),
            Some(Date::new(1_763_700_000).to_rfc822().as_str())
        );

        let bob = &blocks[1];
        assert_eq!(
            field(bob, "Final-Recipient"),
            Some("rfc822; bob@example.org")
        );
        assert_eq!(field(bob, "Action"), Some("failed"));
        assert_eq!(field(bob, "Status"), Some("5.1.1"));
        assert_eq!(field(bob, "Remote-MTA"), Some("dns; mx.example.org"));
        assert_eq!(
            field(bob, "Diagnostic-Code"),
            Some("smtp; 550 5.1.1 <bob@example.org>: user unknown")
        );
        assert_eq!(
            field(bob, "Last-Attempt-Date"),
            Some(Date::new(1_763_800_000).to_rfc822().as_str())
        );
        assert_eq!(field(bob, "Will-Retry-Until"), None);

        let carol = &blocks[2];
        assert_eq!(
            field(carol, "Final-Recipient"),
            Some("rfc822; carol@example.net")
        );
        assert_eq!(field(carol, "Status"), Some("5.0.0"));
        assert_eq!(field(carol, "Remote-MTA"), None);
        assert_eq!(
            field(carol, "Diagnostic-Code"),
            Some("X-Postern; connect to 127.0.0.1:2526: connection refused")
        );

        assert_eq!(transfer_encoding_of(parts[0]).as_deref(), Some("7bit"));
        let text = parts[0].text_contents().unwrap().replace("\r\n    ", " ");
        assert!(text.contains("mail.example.com"), "{text}");
        assert!(text.contains("<bob@example.org>"), "{text}");
        assert!(text.contains("user unknown"), "{text}");
        assert!(text.contains("host mx.example.org said"), "{text}");
        assert!(text.contains("<carol@example.net>"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
    }

    #[test]
    fn the_given_status_is_reported_not_one_read_from_the_diagnostic() {
        let mut recipients = two_failed();
        recipients[0].status = EnhancedStatus::parse("5.7.1");
        recipients[1].status = None;
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        let message = parse(&dsn);
        let blocks = status_blocks(parts(&message)[1].contents());
        assert_eq!(field(&blocks[1], "Status"), Some("5.7.1"));
        assert_eq!(field(&blocks[2], "Status"), Some("5.0.0"));
    }

    #[test]
    fn delay_warning() {
        let recipients = vec![rejected(
            "bob@example.org",
            "4.3.0",
            "451-4.3.0 try again later",
            Some("mx.example.org"),
        )];
        let mut delay = report(&recipients, ORIGINAL);
        delay.kind = ReportKind::Delay {
            will_retry_until: 1_764_132_000,
        };
        let dsn = build(&delay).unwrap();
        let message = parse(&dsn);
        assert_eq!(
            message.subject(),
            Some("Delayed Mail (still being retried)")
        );
        let parts = parts(&message);
        let blocks = status_blocks(parts[1].contents());
        assert_eq!(blocks.len(), 2);
        let bob = &blocks[1];
        assert_eq!(field(bob, "Action"), Some("delayed"));
        assert_eq!(field(bob, "Status"), Some("4.3.0"));
        assert_eq!(
            field(bob, "Will-Retry-Until"),
            Some(Date::new(1_764_132_000).to_rfc822().as_str())
        );
        let text = parts[0].text_contents().unwrap();
        assert!(text.contains("retried until"), "{text}");

        let unknown = vec![recipient("bob@example.org", Diagnostic::None, None)];
        let mut delay = report(&unknown, ORIGINAL);
        delay.kind = ReportKind::Delay {
            will_retry_until: 1_764_132_000,
        };
        let dsn = build(&delay).unwrap();
        let message = parse(&dsn);
        let blocks = status_blocks(self::parts(&message)[1].contents());
        assert_eq!(field(&blocks[1], "Status"), Some("4.0.0"));
        assert_eq!(field(&blocks[1], "Diagnostic-Code"), None);
    }

    #[test]
    fn envid_and_orcpt_come_back_decoded_in_rfc_3464_order() {
        let mut recipients = two_failed();
        recipients[0].original_recipient = Some("rfc822;Orig+2BBox@example.org".into());
        let mut bounce = report(&recipients, ORIGINAL);
        bounce.envid = Some("QQ+2B1-env");
        let dsn = build(&bounce).unwrap();
        let message = parse(&dsn);
        let blocks = status_blocks(parts(&message)[1].contents());
        assert_eq!(blocks[0][0].0, "Original-Envelope-Id");
        assert_eq!(blocks[0][0].1, "QQ+1-env");
        assert_eq!(
            blocks[1][0],
            (
                "Original-Recipient".to_string(),
                "rfc822;Orig+Box@example.org".to_string()
            )
        );
        assert_eq!(blocks[1][1].0, "Final-Recipient");
        assert_eq!(field(&blocks[2], "Original-Recipient"), None);
        assert_lines_fit(&dsn);
    }

    #[test]
    fn ret_hdrs_returns_the_header_section_only() {
        let recipients = two_failed();
        let mut bounce = report(&recipients, ORIGINAL);
        bounce.headers_only = true;
        let dsn = build(&bounce).unwrap();
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(content_type(parts[2]), "text/rfc822-headers");
        let returned = String::from_utf8_lossy(parts[2].contents()).to_string();
        assert!(returned.contains("Subject: lunch"), "{returned}");
        assert!(!returned.contains("noon"), "{returned}");
        let text = parts[0].text_contents().unwrap();
        assert!(text.contains("as you asked"), "{text}");
    }

    #[test]
    fn success_report_for_delivered_and_relayed() {
        let mut delivered = recipient("alice@example.com", Diagnostic::None, None);
        delivered.status = EnhancedStatus::parse("2.0.0");
        let mut relayed = rejected(
            "bob@example.org",
            "2.0.0",
            "250 2.0.0 Ok: queued",
            Some("mx.example.org"),
        );
        relayed.relayed = true;
        let recipients = vec![delivered, relayed];
        let mut success = report(&recipients, ORIGINAL);
        success.kind = ReportKind::Success;
        let dsn = build(&success).unwrap();
        let message = parse(&dsn);
        assert_eq!(message.subject(), Some("Successful Mail Delivery Report"));
        let parts = parts(&message);
        let blocks = status_blocks(parts[1].contents());
        assert_eq!(field(&blocks[1], "Action"), Some("delivered"));
        assert_eq!(field(&blocks[1], "Status"), Some("2.0.0"));
        assert_eq!(field(&blocks[1], "Diagnostic-Code"), None);
        assert_eq!(field(&blocks[2], "Action"), Some("relayed"));
        assert_eq!(field(&blocks[2], "Remote-MTA"), Some("dns; mx.example.org"));
        assert_eq!(
            field(&blocks[2], "Diagnostic-Code"),
            Some("smtp; 250 2.0.0 Ok: queued")
        );
        // Headers only, however small the message (as Postfix).
        assert_eq!(content_type(parts[2]), "text/rfc822-headers");
        let text = parts[0].text_contents().unwrap();
        assert!(text.contains("relayed"), "{text}");
        assert_lines_fit(&dsn);
    }

    #[test]
    fn null_sender_gets_no_report() {
        let recipients = two_failed();
        let mut bounce = report(&recipients, ORIGINAL);
        bounce.sender = "";
        assert_eq!(build(&bounce), None);
        bounce.sender = "<>";
        assert_eq!(build(&bounce), None);
    }

    #[test]
    fn large_original_returns_headers_only() {
        let mut original = ORIGINAL.to_vec();
        for _ in 0..2_000 {
            original.extend_from_slice(b"All work and no play makes Jack a dull boy.\r\n");
        }
        let recipients = two_failed();
        let dsn = build(&report(&recipients, &original)).unwrap();
        assert!(dsn.len() < 10_000, "{} octets", dsn.len());
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(content_type(parts[2]), "text/rfc822-headers");
        let headers_end = ORIGINAL.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
        assert_eq!(parts[2].contents(), &ORIGINAL[..headers_end]);
        let text = parts[0].text_contents().unwrap();
        assert!(text.contains("header of your message"), "{text}");
        assert_lines_fit(&dsn);
    }

    #[test]
    fn eight_bit_original_is_sent_8bit_not_base64() {
        let original = "From: Zoë <zoe@example.com>\r\nSubject: café\r\n\r\nÀ bientôt, Zoë\r\n";
        let recipients = two_failed();
        let dsn = build(&report(&recipients, original.as_bytes())).unwrap();
        assert!(needs_8bit(&dsn));
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(content_type(parts[2]), "message/rfc822");
        assert_eq!(transfer_encoding_of(parts[2]).as_deref(), Some("8bit"));
        let returned = parts[2].message().unwrap();
        assert_eq!(returned.raw_message(), original.as_bytes());
        assert_eq!(returned.body_text(0).unwrap().trim(), "À bientôt, Zoë");
        assert_lines_fit(&dsn);
    }

    #[test]
    fn original_without_empty_line_is_all_header() {
        let original = b"From: alice@example.com\r\nSubject: no body\r\n";
        let recipients = two_failed();
        let dsn = build(&report(&recipients, original)).unwrap();
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(content_type(parts[2]), "message/rfc822");

        let mut small = report(&recipients, original);
        small.return_limit = 10;
        let dsn = build(&small).unwrap();
        let message = parse(&dsn);
        let parts = self::parts(&message);
        assert_eq!(content_type(parts[2]), "text/rfc822-headers");
        assert_eq!(parts[2].contents(), original);
    }

    #[test]
    fn unfit_originals_never_panic_and_stay_in_line() {
        let mut binary: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        binary.extend_from_slice(b"\r\n\r\nbody");
        let long_line = [b"Subject: ".as_slice(), &[b'x'; 5_000], b"\r\n\r\nbody\r\n"].concat();
        let bare_lf = b"From: a@example.com\nSubject: unix\n\nbody\n".to_vec();
        let only_body = b"\r\nno header here\r\n".to_vec();
        let huge_headerless = vec![b'y'; 3 * HEADER_SECTION_LIMIT];
        let recipients = two_failed();
        for original in [
            Vec::new(),
            b"\r\n".to_vec(),
            binary,
            long_line,
            bare_lf,
            only_body,
            huge_headerless,
            "Subject: ü".repeat(400).into_bytes(),
        ] {
            for return_limit in [0, 50_000, usize::MAX] {
                let mut r = report(&recipients, &original);
                r.return_limit = return_limit;
                let dsn = build(&r).unwrap();
                assert_lines_fit(&dsn);
                let message = parse(&dsn);
                let parts = parts(&message);
                assert!((2..=3).contains(&parts.len()));
                if let Some(third) = parts.get(2) {
                    let encoding = transfer_encoding_of(third).unwrap();
                    assert!(encoding == "7bit" || encoding == "8bit", "{encoding}");
                    assert!(third.contents().len() <= HEADER_SECTION_LIMIT + original.len());
                }
            }
        }
    }

    #[test]
    fn bare_lf_original_comes_back_as_mended_headers() {
        let original = b"From: a@example.com\nSubject: unix\n\nbody\n";
        let recipients = two_failed();
        let dsn = build(&report(&recipients, original)).unwrap();
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(content_type(parts[2]), "text/rfc822-headers");
        assert_eq!(
            parts[2].contents(),
            b"From: a@example.com\r\nSubject: unix\r\n"
        );
    }

    #[test]
    fn empty_original_has_no_third_part() {
        let recipients = two_failed();
        let dsn = build(&report(&recipients, b"")).unwrap();
        let message = parse(&dsn);
        assert_eq!(parts(&message).len(), 2);
    }

    #[test]
    fn non_ascii_recipient_uses_global_delivery_status() {
        let recipients = vec![
            rejected(
                "jörg@exämple.de",
                "5.1.1",
                "550 5.1.1 unknown user",
                Some("mx.exämple.de"),
            ),
            rejected("bob@example.org", "5.1.1", "550 5.1.1 non, désolé", None),
        ];
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        assert!(needs_8bit(&dsn));
        assert_lines_fit(&dsn);
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(content_type(parts[1]), "message/global-delivery-status");
        assert_eq!(transfer_encoding_of(parts[1]).as_deref(), Some("8bit"));
        let blocks = status_blocks(parts[1].contents());
        assert_eq!(
            field(&blocks[1], "Final-Recipient"),
            Some("utf-8; jörg@exämple.de")
        );
        assert_eq!(field(&blocks[1], "Remote-MTA"), Some("dns; mx.exämple.de"));
        assert_eq!(
            field(&blocks[2], "Final-Recipient"),
            Some("rfc822; bob@example.org")
        );
        assert_eq!(
            field(&blocks[2], "Diagnostic-Code"),
            Some("smtp; 550 5.1.1 non, désolé")
        );
        let text = parts[0].text_contents().unwrap();
        assert!(text.contains("jörg@exämple.de"), "{text}");
    }

    #[test]
    fn ascii_report_escapes_non_ascii_diagnostics() {
        let recipients = vec![rejected(
            "bob@example.org",
            "5.1.1",
            "550 5.1.1 non, désolé",
            None,
        )];
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        assert!(!needs_8bit(&dsn));
        let message = parse(&dsn);
        let parts = parts(&message);
        assert_eq!(content_type(parts[1]), "message/delivery-status");
        let blocks = status_blocks(parts[1].contents());
        assert_eq!(
            field(&blocks[1], "Diagnostic-Code"),
            Some("smtp; 550 5.1.1 non, d\\x{E9}sol\\x{E9}")
        );
        // The person still reads it as written.
        assert!(parts[0].text_contents().unwrap().contains("désolé"));
    }

    #[test]
    fn long_diagnostics_are_folded() {
        let long = format!(
            "554 5.7.1 {} {}",
            "policy rejection because of reasons ".repeat(60),
            "z".repeat(3_000)
        );
        let recipients = vec![rejected(
            "bob@example.org",
            "5.7.1",
            &long,
            Some("mx.example.org"),
        )];
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        assert_lines_fit(&dsn);
        let message = parse(&dsn);
        let parts = parts(&message);
        let blocks = status_blocks(parts[1].contents());
        let diagnostic = field(&blocks[1], "Diagnostic-Code").unwrap();
        assert!(diagnostic.starts_with("smtp; 554 5.7.1 policy rejection"));
        // Unfolded, only the breaks inside the unbroken run add spaces.
        assert_eq!(
            diagnostic.replace(' ', ""),
            format!("smtp;{}", one_line(&long)).replace(' ', "")
        );
        assert_eq!(field(&blocks[1], "Status"), Some("5.7.1"));
    }

    #[test]
    fn control_characters_cannot_start_new_fields() {
        let recipients = vec![rejected(
            "bob@example.org\r\nAction: delivered",
            "5.1.1",
            "550 5.1.1 a\r\nStatus: 2.0.0",
            None,
        )];
        let dsn = build(&report(&recipients, ORIGINAL)).unwrap();
        let message = parse(&dsn);
        let blocks = status_blocks(parts(&message)[1].contents());
        assert_eq!(field(&blocks[1], "Action"), Some("failed"));
        assert_eq!(field(&blocks[1], "Status"), Some("5.1.1"));
    }
}
