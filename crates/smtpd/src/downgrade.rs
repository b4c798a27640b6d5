//! Downgrading 8-bit MIME to 7 bits for a next hop that does not offer
//! 8BITMIME (RFC 6152 3: the client must convert, or bounce).
//!
//! The copy is built from the original bytes and changes only what must
//! change: each leaf part whose body holds 8-bit bytes (or NUL) is
//! re-encoded, `text/*` as quoted-printable and anything else as base64,
//! and its Content-Transfer-Encoding field is replaced in place or added at
//! the end of that part's header block. Every other byte — header fields,
//! boundaries, 7-bit parts — stays where it was; a message without 8-bit
//! bytes comes back byte-identical.
//!
//! Header fields with 8-bit bytes cannot be downgraded: only SMTPUTF8
//! (RFC 6531) carries them, so [`to_seven_bit`] refuses and the caller
//! bounces with 5.6.7.
//!
//! Choices where the standards leave room:
//!
//! - A part declared base64 or quoted-printable whose body still holds raw
//!   8-bit bytes came from a broken sender; its raw bytes are re-encoded as
//!   8-bit content of its type.
//! - `multipart/*` and `message/rfc822` are walked into; if their bodies
//!   held 8-bit bytes and they carry a Content-Transfer-Encoding other than
//!   7bit, it is rewritten to `7bit`, which the converted body now is
//!   (RFC 2045 6.4 allows nothing else for composite types over 7 bits).
//! - 8-bit bytes (and NUL) in a multipart preamble or epilogue become `?`:
//!   RFC 2046 5.1.1 has readers ignore that text, so nothing a user sees
//!   is lost, and the parts themselves are untouched.
//! - `message/global` (RFC 6532 3.7) may legitimately hold UTF-8 header
//!   fields and may be encoded, so when it holds 8-bit bytes it is
//!   base64-encoded whole rather than walked into; for the same reason its
//!   header fields do not count towards [`Needs::smtputf8`].
//! - A message (top level or enclosed) that gets a Content-Transfer-Encoding
//!   and has no MIME-Version also gets `MIME-Version: 1.0`, without which
//!   readers need not decode it (RFC 2045 4).
//! - A multipart whose boundary is missing or never found, and anything
//!   nested deeper than [`MAX_NESTING`], is encoded whole as a leaf of its
//!   declared type (base64).
//! - A body part whose header block never ends (no empty line) is all
//!   header, so 8-bit bytes in it are 8-bit header bytes.
//! - Only 8-bit bytes and NUL make a body need encoding. A NUL in a header
//!   field stays (no transfer encoding covers header fields), and a 7-bit
//!   part with lines over 998 octets is left as it is, like every 7-bit
//!   part.

mod encode;
mod mime;
#[cfg(test)]
mod tests;

use mime::{ContentType, Entity, Header};

/// How deep multiparts and enclosed messages are walked into; deeper
/// content is encoded whole, which bounds both stack and time.
pub const MAX_NESTING: usize = 32;

/// What a message needs from the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Some byte is 8-bit (or NUL): without 8BITMIME, [`to_seven_bit`].
    pub eight_bit: bool,
    /// Some header field of the message, of a body part or of an enclosed
    /// `message/rfc822` has 8-bit bytes: without SMTPUTF8, bounce.
    pub smtputf8: bool,
}

/// Scans raw message bytes (CRLF lines, as stored).
pub fn needs(raw: &[u8]) -> Needs {
    Needs {
        eight_bit: raw.iter().any(|&b| not_seven_bit(b)),
        smtputf8: header_needs_utf8(raw, Context::Message, 0),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DowngradeError {
    /// 8-bit bytes in a header: only SMTPUTF8 can carry it (the caller
    /// bounces with 5.6.7, RFC 6531).
    #[error("header field with 8-bit bytes needs SMTPUTF8")]
    EightBitHeader,
}

/// Returns a 7-bit copy of `raw`. Errors when a header contains 8-bit bytes.
pub fn to_seven_bit(raw: &[u8]) -> Result<Vec<u8>, DowngradeError> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3);
    convert(raw, Context::Message, 0, &mut out)?;
    Ok(out)
}

/// Bytes that 7bit data (RFC 2045 2.7) may not hold.
fn not_seven_bit(byte: u8) -> bool {
    byte >= 0x80 || byte == 0
}

fn has_eight_bit(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b >= 0x80)
}

/// Where an entity sits, which decides its default Content-Type
/// (RFC 2045 5.2, RFC 2046 5.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// The top-level message or one enclosed in message/rfc822.
    Message,
    Part,
    /// A part of multipart/digest.
    DigestPart,
}

/// How an entity's body is handled.
enum Shape {
    /// `parts` is where the parts sit, which decides their default type.
    Multipart {
        boundary: Vec<u8>,
        parts: Context,
    },
    Enclosed,
    Leaf {
        text: bool,
    },
}

fn shape(header: &Header, context: Context, depth: usize) -> Shape {
    let ContentType {
        kind,
        subtype,
        boundary,
    } = header
        .value("Content-Type")
        .and_then(|value| ContentType::parse(&value))
        .unwrap_or_else(|| match context {
            Context::DigestPart => ContentType::new("message", "rfc822"),
            _ => ContentType::new("text", "plain"),
        });
    let nested = depth < MAX_NESTING;
    match (kind.as_str(), subtype.as_str(), boundary) {
        ("multipart", subtype, Some(boundary)) if nested => Shape::Multipart {
            boundary,
            parts: if subtype == "digest" {
                Context::DigestPart
            } else {
                Context::Part
            },
        },
        ("message", "rfc822", _) if nested => Shape::Enclosed,
        (kind, _, _) => Shape::Leaf {
            text: kind == "text",
        },
    }
}

/// Writes the 7-bit form of one entity to `out`.
fn convert(
    raw: &[u8],
    context: Context,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), DowngradeError> {
    if !raw.iter().any(|&b| not_seven_bit(b)) {
        out.extend_from_slice(raw);
        return Ok(());
    }
    let Entity {
        header: block,
        separator,
        body,
    } = mime::split_entity(raw);
    if has_eight_bit(block) {
        return Err(DowngradeError::EightBitHeader);
    }
    if !body.iter().any(|&b| not_seven_bit(b)) {
        // Only NULs in the header: nothing a transfer encoding can fix.
        out.extend_from_slice(raw);
        return Ok(());
    }
    let header = Header::parse(block);
    let leaf_is_text = match shape(&header, context, depth) {
        Shape::Multipart { boundary, parts } => match mime::split_multipart(body, &boundary) {
            Some(multipart) => {
                write_composite_header(&header, out);
                out.extend_from_slice(separator);
                // The preamble starts the body; the copy resumes after it.
                scrub(&body[multipart.preamble.clone()], out);
                let mut copied = multipart.preamble.end;
                for part in &multipart.parts {
                    out.extend_from_slice(&body[copied..part.start]);
                    convert(&body[part.clone()], parts, depth + 1, out)?;
                    copied = part.end;
                }
                out.extend_from_slice(&body[copied..multipart.epilogue.start]);
                scrub(&body[multipart.epilogue.clone()], out);
                return Ok(());
            }
            None => false,
        },
        Shape::Enclosed => {
            write_composite_header(&header, out);
            out.extend_from_slice(separator);
            return convert(body, Context::Message, depth + 1, out);
        }
        Shape::Leaf { text } => text,
    };
    let encoding = if leaf_is_text {
        "quoted-printable"
    } else {
        "base64"
    };
    let add_mime_version = context == Context::Message && header.value("MIME-Version").is_none();
    write_header(&header, encoding, add_mime_version, out);
    out.extend_from_slice(separator);
    if leaf_is_text {
        encode::quoted_printable(body, out);
    } else {
        encode::base64(body, out);
    }
    Ok(())
}

/// A multipart or enclosed message whose body had 8-bit bytes is 7bit now.
fn write_composite_header(header: &Header, out: &mut Vec<u8>) {
    match mime::transfer_encoding(header) {
        Some(declared) if declared != "7bit" => write_header(header, "7bit", false, out),
        _ => out.extend_from_slice(header.block),
    }
}

/// The header block with Content-Transfer-Encoding set to `encoding`: the
/// first such field is replaced where it stands, any repeat dropped, and
/// the field added at the end when there was none.
fn write_header(header: &Header, encoding: &str, add_mime_version: bool, out: &mut Vec<u8>) {
    let replacement = format!("Content-Transfer-Encoding: {encoding}\r\n");
    let mut written = false;
    for field in &header.fields {
        if header.is(field, "Content-Transfer-Encoding") {
            if !written {
                out.extend_from_slice(replacement.as_bytes());
                written = true;
            }
        } else {
            out.extend_from_slice(&header.block[field.span.clone()]);
        }
    }
    if !written || add_mime_version {
        if !header.block.is_empty() && !header.block.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        if add_mime_version {
            out.extend_from_slice(b"MIME-Version: 1.0\r\n");
        }
        if !written {
            out.extend_from_slice(replacement.as_bytes());
        }
    }
}

/// Preamble and epilogue text, which readers ignore, with `?` for every
/// byte 7bit data may not hold.
fn scrub(text: &[u8], out: &mut Vec<u8>) {
    out.extend(
        text.iter()
            .map(|&b| if not_seven_bit(b) { b'?' } else { b }),
    );
}

/// Whether [`to_seven_bit`] would find 8-bit bytes in a header block: the
/// same walk, without writing anything.
fn header_needs_utf8(raw: &[u8], context: Context, depth: usize) -> bool {
    if !has_eight_bit(raw) {
        return false;
    }
    let entity = mime::split_entity(raw);
    if has_eight_bit(entity.header) {
        return true;
    }
    let body = entity.body;
    match shape(&Header::parse(entity.header), context, depth) {
        Shape::Multipart { boundary, parts } => {
            mime::split_multipart(body, &boundary).is_some_and(|multipart| {
                multipart
                    .parts
                    .iter()
                    .any(|part| header_needs_utf8(&body[part.clone()], parts, depth + 1))
            })
        }
        Shape::Enclosed => header_needs_utf8(body, Context::Message, depth + 1),
        Shape::Leaf { .. } => false,
    }
}
