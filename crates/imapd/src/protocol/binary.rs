//! Message content without its transfer encoding (BINARY, RFC 3516): what
//! `BINARY[part]` and `BINARY.SIZE[part]` answer, base64 and
//! quoted-printable undone; whether an answer needs a `~{n}` literal8; and
//! the conversion of a message APPENDed as a literal8, whose binary parts
//! are stored base64-encoded so that a `BODY[]` fetch never carries a NUL.

use std::borrow::Cow;
use std::num::NonZeroU32;

use store::{MessageSummary, MimePart};

use super::fetch_encode::{find_part, is_message};

/// A part's Content-Transfer-Encoding this server cannot undo (RFC 3516's
/// `[UNKNOWN-CTE]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCte(pub String);

/// The content of `BINARY[part]`: the whole message for no part, a
/// multipart or message/rfc822 part as it is, any other part's body
/// decoded. `Ok(None)` if the message has no such part.
pub fn binary_section<'a>(
    raw: &'a [u8],
    summary: &MessageSummary,
    part: &[NonZeroU32],
) -> Result<Option<Cow<'a, [u8]>>, UnknownCte> {
    if part.is_empty() {
        return Ok(Some(Cow::Borrowed(raw)));
    }
    let Some(p) = find_part(&summary.body, part) else {
        return Ok(None);
    };
    let (from, to) = (p.body_offset as usize, p.body_end as usize);
    let Some(body) = (from <= to && to <= raw.len()).then(|| &raw[from..to]) else {
        return Ok(None);
    };
    if p.content_type.eq_ignore_ascii_case("multipart") || is_message(p) {
        return Ok(Some(Cow::Borrowed(body)));
    }
    decode_transfer(&p.encoding, body).map(Some)
}

/// A body with its Content-Transfer-Encoding (lower-cased, as the store
/// keeps it) undone.
pub fn decode_transfer<'a>(encoding: &str, body: &'a [u8]) -> Result<Cow<'a, [u8]>, UnknownCte> {
    match encoding {
        "" | "7bit" | "8bit" | "binary" => Ok(Cow::Borrowed(body)),
        "base64" => Ok(Cow::Owned(decode_base64(body))),
        "quoted-printable" => Ok(Cow::Owned(decode_quoted_printable(body))),
        other => Err(UnknownCte(other.to_owned())),
    }
}

/// Whether these octets must go out as a literal8: a literal may not
/// hold NUL (RFC 3501 4.3, RFC 3516 4.2).
pub fn needs_literal8(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

fn base64_value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Base64 as mail carries it: line breaks and other characters outside
/// the alphabet are skipped, and the first `=` ends the data.
pub fn decode_base64(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        if c == b'=' {
            break;
        }
        let Some(v) = base64_value(c) else {
            continue;
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 in lines of 76 characters joined by CRLF (RFC 2045 6.8), with no
/// line break after the last.
pub fn encode_base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 * 4 + data.len() / 57 * 2 + 4);
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.extend_from_slice(b"\r\n");
        }
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(BASE64_ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 6.7): `=XX` is an octet, a line ending in
/// `=` (after trailing white space) continues on the next, trailing white
/// space is dropped, line breaks stay as written. An `=` that starts no
/// escape is kept, as lenient decoders keep it.
pub fn decode_quoted_printable(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let (line, ending, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i > 0 && rest[i - 1] == b'\r' => {
                (&rest[..i - 1], &b"\r\n"[..], &rest[i + 1..])
            }
            Some(i) => (&rest[..i], &b"\n"[..], &rest[i + 1..]),
            None => (rest, &b""[..], &[][..]),
        };
        rest = next;
        let line = line.trim_ascii_end();
        let (line, soft) = match line.strip_suffix(b"=") {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut i = 0;
        while i < line.len() {
            if line[i] == b'=' {
                if let (Some(h), Some(l)) = (
                    line.get(i + 1).copied().and_then(hex_value),
                    line.get(i + 2).copied().and_then(hex_value),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(line[i]);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(ending);
        }
    }
    out
}

/// A message sent as a literal8, ready to store: each part that is not
/// multipart or message/rfc822 and is declared `binary` or holds a NUL
/// gets its body base64-encoded and its Content-Transfer-Encoding field
/// said so (RFC 3516 4.3 lets the server convert). `None` when no part
/// needs it: the message is stored as sent.
pub fn binary_parts_to_base64(raw: &[u8]) -> Option<Vec<u8>> {
    let summary = store::summarize(raw);
    let mut parts = Vec::new();
    binary_leaves(&summary.body, raw, &mut parts);
    if parts.is_empty() {
        return None;
    }
    parts.sort_by_key(|p| p.header_offset);
    let mut out = Vec::with_capacity(raw.len() * 4 / 3 + 256);
    let mut at = 0usize;
    for p in parts {
        let (h, b, e) = (
            p.header_offset as usize,
            p.body_offset as usize,
            p.body_end as usize,
        );
        if h < at || !(h <= b && b <= e && e <= raw.len()) {
            continue;
        }
        out.extend_from_slice(&raw[at..h]);
        out.extend_from_slice(&base64_header(&raw[h..b]));
        out.extend_from_slice(&encode_base64(&raw[b..e]));
        if e == raw.len() {
            out.extend_from_slice(b"\r\n");
        }
        at = e;
    }
    out.extend_from_slice(&raw[at..]);
    Some(out)
}

/// The leaf parts whose bodies need base64 to be stored as text.
fn binary_leaves<'a>(p: &'a MimePart, raw: &[u8], out: &mut Vec<&'a MimePart>) {
    if p.content_type.eq_ignore_ascii_case("multipart") || is_message(p) {
        for child in &p.parts {
            binary_leaves(child, raw, out);
        }
        return;
    }
    let body = raw
        .get(p.body_offset as usize..p.body_end as usize)
        .unwrap_or_default();
    let convertible = matches!(p.encoding.as_str(), "" | "7bit" | "8bit" | "binary");
    if convertible && (p.encoding == "binary" || needs_literal8(body)) {
        out.push(p);
    }
}

/// A part's header with its Content-Transfer-Encoding field (and its
/// continuation lines) replaced by `base64`, before the blank line.
fn base64_header(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 40);
    let mut in_cte = false;
    let mut placed = false;
    let mut rest = header;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, next) = rest.split_at(end);
        rest = next;
        if matches!(line, b"\r\n" | b"\n") {
            out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
            placed = true;
            out.extend_from_slice(line);
            out.extend_from_slice(rest);
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if !in_cte {
                out.extend_from_slice(line);
            }
            continue;
        }
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        in_cte = name
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-transfer-encoding");
        if !in_cte {
            out.extend_from_slice(line);
        }
    }
    if !placed {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for n in 0..data.len() {
            let encoded = encode_base64(&data[..n]);
            assert!(encoded.split(|&b| b == b'\n').all(|l| l.len() <= 77));
            assert_eq!(decode_base64(&encoded), &data[..n], "{n}");
        }
        // Mail's base64: white space and line breaks anywhere.
        assert_eq!(
            decode_base64(b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n"),
            b"hello world"
        );
        assert_eq!(
            decode_base64(b"YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6"),
            b"abcdefg\rhijkl\r\nmno\npqrstuvqxyz"
        );
    }

    #[test]
    fn quoted_printable_as_rfc_2045_says() {
        let qp = b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n";
        assert_eq!(
            decode_quoted_printable(qp),
            b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n"
        );
        assert_eq!(decode_quoted_printable(b"a=3Db=3d=ZZ=\r\nc"), b"a=b==ZZc");
        assert_eq!(decode_quoted_printable(b"=00="), b"\0");
    }

    #[test]
    fn unknown_encodings_are_named() {
        assert_eq!(
            decode_transfer("x-uuencode", b"x"),
            Err(UnknownCte("x-uuencode".into()))
        );
        assert_eq!(decode_transfer("8bit", b"\xe4").unwrap().as_ref(), b"\xe4");
    }

    #[test]
    fn binary_parts_become_base64() {
        let raw = b"From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n\0-\xe4\n\r\n\n";
        let stored = binary_parts_to_base64(raw).unwrap();
        assert!(!stored.contains(&0));
        let text = String::from_utf8(stored.clone()).unwrap();
        assert!(text.starts_with("From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"), "{text}");
        let summary = store::summarize(&stored);
        let one = [NonZeroU32::new(1).unwrap()];
        let body = binary_section(&stored, &summary, &one).unwrap().unwrap();
        assert_eq!(body.as_ref(), b"\0-\xe4\n\r\n\n");
        // Text parts are left alone.
        assert_eq!(binary_parts_to_base64(b"Subject: x\r\n\r\nplain\r\n"), None);
    }

    #[test]
    fn only_the_binary_part_of_a_multipart_changes() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b\r\nContent-Type: application/x\r\n\r\n\0\x01\x02\r\n--b--\r\n";
        let stored = binary_parts_to_base64(raw).unwrap();
        let summary = store::summarize(&stored);
        let part = |n| [NonZeroU32::new(n).unwrap()];
        assert_eq!(
            binary_section(&stored, &summary, &part(1))
                .unwrap()
                .unwrap()
                .as_ref(),
            b"text"
        );
        assert_eq!(
            binary_section(&stored, &summary, &part(2))
                .unwrap()
                .unwrap()
                .as_ref(),
            b"\0\x01\x02"
        );
        assert!(String::from_utf8(stored).unwrap().contains("\r\n--b\r\nContent-Type: application/x\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"));
    }
}
