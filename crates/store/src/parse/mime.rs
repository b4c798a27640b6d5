//! The MIME tree of a message, found in its raw bytes (RFC 2045, 2046),
//! with the header fields BODYSTRUCTURE sends, as written.
//!
//! Boundaries follow RFC 2046 5.1.1: a delimiter is a line that starts
//! with `--` and the boundary (a prefix match, as 5.1.2's rule that an
//! inner boundary must not start with an outer one implies, and as Dovecot
//! reads it), and the line break before it belongs to the delimiter, not
//! to the part before. A line of an inner multipart is checked against the
//! innermost boundary first; an outer boundary ends every part inside it.
//! A header that runs into a delimiter ends there too (Dovecot: the part is
//! what it says it is, its body empty).

use crate::{MessageSummary, MimePart, RawText};

/// How deep multiparts and enclosed messages are followed; deeper ones
/// are leaves. Real mail nests a few levels; each level is two levels of
/// the cached JSON, which serde_json reads only up to 128 deep.
const MAX_DEPTH: usize = 32;

/// Parts made for one message at most; the delimiters after that are
/// skipped (their content stays in the message, in no part of its own).
const MAX_PARTS: usize = 10_000;

/// The MIME tree of `raw`, and for each enclosed message its summary
/// (made by `summary_of` from its header).
pub(super) fn walk(raw: &[u8], summary_of: &dyn Fn(&[u8]) -> MessageSummary) -> MimePart {
    let mut walker = Walker {
        raw,
        boundaries: Vec::new(),
        parts: 0,
        summary_of,
    };
    walker.entity(0, 0, false).0
}

/// Where an entity's content stopped.
#[derive(Debug, Clone, Copy)]
struct Stop {
    /// Start of the delimiter line that ended it, or the end of the message.
    at: usize,
    /// Which boundary (index into [`Walker::boundaries`]) that line is of;
    /// `None` at the end of the message.
    boundary: Option<usize>,
    /// `--boundary--`.
    close: bool,
    /// Start of the line after the delimiter line.
    next: usize,
}

struct Walker<'a> {
    raw: &'a [u8],
    /// Boundaries of the multiparts being read, innermost last.
    boundaries: Vec<Vec<u8>>,
    parts: usize,
    summary_of: &'a dyn Fn(&[u8]) -> MessageSummary,
}

impl Walker<'_> {
    /// Start of the line after the one at `pos`.
    fn next_line(&self, pos: usize) -> usize {
        memchr::memchr(b'\n', &self.raw[pos..]).map_or(self.raw.len(), |p| pos + p + 1)
    }

    /// The delimiter line at `pos` (a line start), if it is one of the
    /// first `limit` boundaries, innermost first.
    fn delimiter(&self, pos: usize, limit: usize) -> Option<Stop> {
        let rest = self.raw.get(pos..)?.strip_prefix(b"--")?;
        let index = (0..limit)
            .rev()
            .find(|&i| rest.starts_with(&self.boundaries[i]))?;
        let after = &rest[self.boundaries[index].len()..];
        Some(Stop {
            at: pos,
            boundary: Some(index),
            close: after.starts_with(b"--"),
            next: self.next_line(pos),
        })
    }

    /// Reads lines from `pos` (a line start) up to a delimiter of the
    /// first `limit` boundaries or the end.
    fn scan(&self, mut pos: usize, limit: usize) -> Stop {
        let len = self.raw.len();
        // With no boundary to look for, only the end stops the scan.
        while pos < len && limit > 0 {
            if let Some(stop) = self.delimiter(pos, limit) {
                return stop;
            }
            pos = self.next_line(pos);
        }
        Stop {
            at: len,
            boundary: None,
            close: false,
            next: len,
        }
    }

    /// Where content that began at `start` ends when `stop` ends it: the
    /// line break before a delimiter is the delimiter's.
    fn content_end(&self, start: usize, stop: &Stop) -> usize {
        let at = stop.at;
        if stop.boundary.is_none() {
            at
        } else if at >= start + 2 && &self.raw[at - 2..at] == b"\r\n" {
            at - 2
        } else if at > start && self.raw[at - 1] == b'\n' {
            at - 1
        } else {
            at
        }
    }

    /// One entity (a header and a body) starting at `start`; `digest`: the
    /// default type is message/rfc822 (RFC 2046 5.1.5).
    fn entity(&mut self, start: usize, depth: usize, digest: bool) -> (MimePart, Stop) {
        self.parts += 1;
        let raw = self.raw;
        let len = raw.len();
        let limit = self.boundaries.len();

        // The header ends at a blank line or where a delimiter begins. A
        // blank line just before a delimiter is the delimiter's line break:
        // the header ends before it and the body is empty.
        let mut pos = start;
        let (header_end, body_offset) = loop {
            if pos >= len {
                break (len, len);
            }
            if let Some(stop) = self.delimiter(pos, limit) {
                break (self.content_end(start, &stop), pos);
            }
            let next = self.next_line(pos);
            if matches!(&raw[pos..next], b"\r\n" | b"\n") {
                if self.delimiter(next, limit).is_some() {
                    break (pos, next);
                }
                break (next, next);
            }
            pos = next;
        };
        let fields = Fields::of(&raw[start..header_end]);

        let (ctype, subtype, mut params) = match fields.get(b"content-type") {
            Some(value) => content_type(value),
            None if digest => ("message".into(), "rfc822".into(), Vec::new()),
            None => ("text".into(), "plain".into(), Vec::new()),
        };
        let encoding = fields
            .get(b"content-transfer-encoding")
            .and_then(|v| Lexer::new(v).find_map(token))
            .map(|t| String::from_utf8_lossy(&t).to_ascii_lowercase())
            .unwrap_or_else(|| "7bit".into());
        let deep_enough = depth >= MAX_DEPTH || self.parts >= MAX_PARTS;

        let mut parts = Vec::new();
        let mut message = None;
        let boundary = params
            .iter()
            .find(|(name, _)| name == "boundary")
            .map(|(_, v)| v.0.clone())
            .filter(|b| !b.is_empty());
        let (body_end, stop) = match boundary {
            Some(boundary) if ctype == "multipart" && !deep_enough => {
                let (end, stop, children) =
                    self.multipart(body_offset, boundary, depth, subtype == "digest");
                parts = children;
                (end, stop)
            }
            // In any transfer encoding: RFC 2046 5.2.1 allows only the
            // identity ones, and Dovecot reads the bytes as a message
            // whatever it says (base64 text makes a header of one line).
            _ if ctype == "message" && subtype == "rfc822" && !deep_enough => {
                let (inner, stop) = self.entity(body_offset, depth + 1, false);
                let header = &raw[inner.header_offset as usize..inner.header_end() as usize];
                let mut summary = (self.summary_of)(header);
                summary.header_len = inner.header_end() - inner.header_offset;
                message = Some(Box::new(summary));
                let end = inner.body_end as usize;
                parts.push(inner);
                (end, stop)
            }
            _ => {
                let stop = self.scan(body_offset, limit);
                (self.content_end(body_offset, &stop), stop)
            }
        };

        // A part keeps the type it declares, also a multipart without parts
        // (no boundary, or none found) and a message too deep to follow:
        // Dovecot does, and the client sees what the sender wrote.
        if ctype == "text" && !params.iter().any(|(name, _)| name == "charset") {
            params.push(("charset".into(), "us-ascii".into()));
        }

        let (disposition, disposition_params) = match fields.get(b"content-disposition") {
            Some(value) => {
                let mut lexer = Lexer::new(value);
                match lexer.next().and_then(token) {
                    Some(t) => (
                        Some(String::from_utf8_lossy(&t).to_ascii_lowercase()),
                        parameters(lexer),
                    ),
                    None => (None, Vec::new()),
                }
            }
            None => (None, Vec::new()),
        };
        let text = |name: &[u8]| {
            fields
                .get(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let part = MimePart {
            content_type: ctype,
            content_subtype: subtype,
            params,
            content_id: text(b"content-id"),
            content_description: fields.get(b"content-description").map(RawText::from),
            encoding,
            disposition,
            disposition_params,
            language: fields
                .get(b"content-language")
                .map(|v| {
                    Lexer::new(v)
                        .filter_map(token)
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            location: text(b"content-location"),
            md5: text(b"content-md5"),
            header_offset: start as u64,
            body_offset: body_offset as u64,
            body_end: body_end as u64,
            header_end: (header_end != body_offset).then_some(header_end as u64),
            lines: raw[body_offset..body_end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64,
            parts,
            message,
        };
        (part, stop)
    }

    /// A multipart body from `start`: its parts, where it ends (after the
    /// epilogue) and what ended it.
    fn multipart(
        &mut self,
        start: usize,
        boundary: Vec<u8>,
        depth: usize,
        digest: bool,
    ) -> (usize, Stop, Vec<MimePart>) {
        self.boundaries.push(boundary);
        let mine = self.boundaries.len() - 1;
        let mut children = Vec::new();
        // The preamble.
        let mut stop = self.scan(start, mine + 1);
        loop {
            match stop.boundary {
                Some(b) if b == mine && !stop.close => {
                    if self.parts >= MAX_PARTS {
                        stop = self.scan(stop.next, mine + 1);
                        continue;
                    }
                    let (child, next) = self.entity(stop.next, depth + 1, digest);
                    children.push(child);
                    stop = next;
                }
                Some(b) if b == mine => {
                    // The epilogue runs to an outer delimiter or the end.
                    self.boundaries.pop();
                    let end = self.scan(stop.next, mine);
                    return (self.content_end(start, &end), end, children);
                }
                // An outer delimiter, or the end: this multipart was never
                // closed.
                _ => {
                    self.boundaries.pop();
                    return (self.content_end(start, &stop), stop, children);
                }
            }
        }
    }
}

/// A header's fields: names lower-cased, values unfolded (line breaks
/// dropped) and trimmed, as written otherwise.
struct Fields(Vec<(Vec<u8>, Vec<u8>)>);

impl Fields {
    fn of(header: &[u8]) -> Fields {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for line in header.split_inclusive(|&b| b == b'\n') {
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if matches!(line.first(), Some(b' ' | b'\t')) {
                if let Some((_, value)) = out.last_mut() {
                    value.extend_from_slice(content);
                }
                continue;
            }
            if let Some(colon) = content.iter().position(|&b| b == b':') {
                out.push((
                    content[..colon].trim_ascii().to_ascii_lowercase(),
                    content[colon + 1..].to_vec(),
                ));
            }
        }
        for (_, value) in &mut out {
            *value = value.trim_ascii().to_vec();
        }
        Fields(out)
    }

    /// The first field of this (lower-case) name.
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Type, subtype and parameters of a Content-Type value; a value that
/// names no subtype is text/plain for `text`, else
/// application/octet-stream (RFC 2045 5.2).
fn content_type(value: &[u8]) -> (String, String, Vec<(String, RawText)>) {
    let mut lexer = Lexer::new(value);
    let lower = |t: Vec<u8>| String::from_utf8_lossy(&t).to_ascii_lowercase();
    let ctype = lexer.next().and_then(token).map(lower);
    let subtype = if lexer.peek() == Some(Tok::Special(b'/')) {
        lexer.next();
        lexer.next().and_then(token).map(lower)
    } else {
        None
    };
    let params = parameters(lexer);
    match (ctype, subtype) {
        (Some(t), Some(s)) => (t, s, params),
        (Some(t), _) if t == "text" => (t, "plain".into(), params),
        _ => ("application".into(), "octet-stream".into(), params),
    }
}

/// `; name=value` parameters (RFC 2045 5.1), names lower-cased, values
/// unquoted but otherwise as written. A malformed one is skipped (up to
/// the next `;`); an unclosed quote ends the list. RFC 2231 sections
/// (`name*0`, `name*1*`) are joined in order, undecoded, into `name` (or
/// `name*` when the first section is extended), after the others, as
/// Dovecot sends them; sections with a gap stay apart, as written.
fn parameters(mut lexer: Lexer<'_>) -> Vec<(String, RawText)> {
    let mut found: Vec<(String, RawText)> = Vec::new();
    'params: loop {
        loop {
            match lexer.next() {
                None | Some(Tok::Unclosed) => break 'params,
                Some(Tok::Special(b';')) => break,
                Some(_) => {}
            }
        }
        let Some(Tok::Token(name)) = lexer.peek() else {
            continue;
        };
        lexer.next();
        if lexer.peek() != Some(Tok::Special(b'=')) {
            continue;
        }
        lexer.next();
        // An unquoted encoded-word (`name==?UTF-8?B?…?=`) is not a token,
        // but mailers write it; Dovecot takes it whole, and so do we.
        if let Some(value) = lexer.encoded_word() {
            found.push((
                String::from_utf8_lossy(&name).to_ascii_lowercase(),
                RawText(value),
            ));
            continue;
        }
        match lexer.peek() {
            Some(Tok::Token(value) | Tok::Quoted(value)) => {
                lexer.next();
                found.push((
                    String::from_utf8_lossy(&name).to_ascii_lowercase(),
                    RawText(value),
                ));
            }
            Some(Tok::Unclosed) => break,
            _ => {}
        }
    }
    join_sections(found)
}

/// RFC 2231 3: `name*N` and `name*N*` are sections of one value.
fn join_sections(params: Vec<(String, RawText)>) -> Vec<(String, RawText)> {
    type Section = (u32, bool, String, RawText);
    let mut plain = Vec::new();
    let mut groups: Vec<(String, Vec<Section>)> = Vec::new();
    for (name, value) in params {
        let section = name.split_once('*').and_then(|(base, rest)| {
            let (digits, extended) = match rest.strip_suffix('*') {
                Some(d) => (d, true),
                None => (rest, false),
            };
            let n = (!digits.is_empty()
                && digits.len() <= 4
                && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u32>().ok())
            .flatten()?;
            Some((base.to_owned(), n, extended))
        });
        match section {
            Some((base, n, extended)) => {
                let entry = (n, extended, name, value);
                match groups.iter_mut().find(|(b, _)| *b == base) {
                    Some((_, sections)) => sections.push(entry),
                    None => groups.push((base, vec![entry])),
                }
            }
            None => plain.push((name, value)),
        }
    }
    for (base, mut sections) in groups {
        let mut sorted: Vec<u32> = sections.iter().map(|s| s.0).collect();
        sorted.sort_unstable();
        let complete = sorted.iter().enumerate().all(|(i, &n)| n as usize == i);
        if complete {
            sections.sort_by_key(|s| s.0);
            let name = if sections[0].1 {
                format!("{base}*")
            } else {
                base
            };
            let value = sections
                .iter()
                .flat_map(|s| s.3 .0.iter().copied())
                .collect();
            plain.push((name, RawText(value)));
        } else {
            plain.extend(
                sections
                    .into_iter()
                    .map(|(_, _, name, value)| (name, value)),
            );
        }
    }
    plain
}

/// A token of a structured MIME field value (RFC 2045 5.1, RFC 822 3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Bytes other than blanks, controls and tspecials (8-bit ones too).
    Token(Vec<u8>),
    /// A quoted string's content, unescaped.
    Quoted(Vec<u8>),
    /// A tspecial.
    Special(u8),
    /// A quoted string or comment that never ends.
    Unclosed,
}

fn token(t: Tok) -> Option<Vec<u8>> {
    match t {
        Tok::Token(t) => Some(t),
        _ => None,
    }
}

/// Tokens of a value, blanks and comments skipped.
struct Lexer<'v> {
    v: &'v [u8],
    i: usize,
}

impl<'v> Lexer<'v> {
    fn new(v: &'v [u8]) -> Self {
        Lexer { v, i: 0 }
    }

    fn peek(&self) -> Option<Tok> {
        let mut copy = Lexer {
            v: self.v,
            i: self.i,
        };
        copy.next()
    }

    /// After blanks, a value that starts with `=` (an encoded-word): its
    /// bytes up to a blank or `;`.
    fn encoded_word(&mut self) -> Option<Vec<u8>> {
        let rest = &self.v[self.i..];
        let start = rest.iter().position(|b| !matches!(b, b' ' | b'\t'))?;
        if rest[start] != b'=' {
            return None;
        }
        let len = rest[start..]
            .iter()
            .position(|b| matches!(b, b' ' | b'\t' | b';'))
            .unwrap_or(rest.len() - start);
        self.i += start + len;
        Some(rest[start..start + len].to_vec())
    }
}

fn is_tspecial(b: u8) -> bool {
    b"()<>@,;:\\\"/[]?=".contains(&b)
}

impl Iterator for Lexer<'_> {
    type Item = Tok;

    fn next(&mut self) -> Option<Tok> {
        let v = self.v;
        loop {
            let b = *v.get(self.i)?;
            if b.is_ascii_whitespace() || (b < 0x20) || b == 0x7f {
                self.i += 1;
            } else if b == b'(' {
                let mut depth = 0usize;
                loop {
                    match v.get(self.i) {
                        None => return Some(Tok::Unclosed),
                        Some(b'\\') => self.i += 1,
                        Some(b'(') => depth += 1,
                        Some(b')') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                break;
                            }
                        }
                        Some(_) => {}
                    }
                    self.i += 1;
                }
            } else if b == b'"' {
                self.i += 1;
                let mut text = Vec::new();
                loop {
                    match v.get(self.i) {
                        None => return Some(Tok::Unclosed),
                        Some(b'"') => {
                            self.i += 1;
                            return Some(Tok::Quoted(text));
                        }
                        Some(b'\\') if self.i + 1 < v.len() => {
                            text.push(v[self.i + 1]);
                            self.i += 2;
                        }
                        Some(&c) => {
                            text.push(c);
                            self.i += 1;
                        }
                    }
                }
            } else if is_tspecial(b) {
                self.i += 1;
                return Some(Tok::Special(b));
            } else {
                let start = self.i;
                while let Some(&c) = v.get(self.i) {
                    if c <= b' ' || c == 0x7f || is_tspecial(c) {
                        break;
                    }
                    self.i += 1;
                }
                return Some(Tok::Token(v[start..self.i].to_vec()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: &str) -> Vec<(String, String)> {
        content_type(v.as_bytes())
            .2
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_as_written() {
        assert_eq!(
            params("text/plain; charset=us-ascii; x-empty=\"\""),
            pairs(&[("charset", "us-ascii"), ("x-empty", "")])
        );
        assert_eq!(
            params("text/plain; charset=\"utf-8\" (comment); format=flowed"),
            pairs(&[("charset", "utf-8"), ("format", "flowed")])
        );
        assert_eq!(
            params("TEXT/Plain; Charset=UTF-8; name=\"a\\\"b\"; odd=a@b"),
            pairs(&[("charset", "UTF-8"), ("name", "a\"b"), ("odd", "a")])
        );
        // Junk between parameters is skipped; an unclosed quote ends them.
        assert_eq!(
            params("text/plain; ;; g ; h=; i=1; j=\"open"),
            pairs(&[("i", "1")])
        );
        assert_eq!(
            params("text/plain; name=\"=?utf-8?q?a?=\"; n2==?UTF-8?B?w6k=?= ; n3=x?y"),
            pairs(&[
                ("name", "=?utf-8?q?a?="),
                ("n2", "=?UTF-8?B?w6k=?="),
                ("n3", "x")
            ])
        );
    }

    /// Issue 10: RFC 2231 values pass through undecoded, as Dovecot sends
    /// them: no `*-language` parameters made up, no charset applied.
    #[test]
    fn rfc2231_sections_joined_not_decoded() {
        assert_eq!(
            params("application/x; filename*=iso-8859-1''%E9t%E9.txt"),
            pairs(&[("filename*", "iso-8859-1''%E9t%E9.txt")])
        );
        assert_eq!(
            params(
                "text/plain; charset=x-unknown-cs; name*0*=x-unknown-cs'en'%E9; name*1=\"tail\""
            ),
            pairs(&[
                ("charset", "x-unknown-cs"),
                ("name*", "x-unknown-cs'en'%E9tail")
            ])
        );
        assert_eq!(
            params("a/b; a*1=\"B\"; a*0=\"A\"; b*1=x; c*0*=us-ascii''y; c*1*=%41; d=1; d=2"),
            pairs(&[
                ("d", "1"),
                ("d", "2"),
                ("a", "AB"),
                ("b*1", "x"),
                ("c*", "us-ascii''y%41")
            ])
        );
        assert_eq!(
            params("a/b; f*0=\"a b\"; f*2=\"c\""),
            pairs(&[("f*0", "a b"), ("f*2", "c")])
        );
    }

    #[test]
    fn types() {
        assert_eq!(content_type(b"Multipart/Mixed; boundary=x").0, "multipart");
        assert_eq!(
            (content_type(b"text").0, content_type(b"text").1),
            ("text".into(), "plain".into())
        );
        assert_eq!(content_type(b"/").0, "application");
        assert_eq!(content_type(b"image/").1, "octet-stream");
    }

    fn tree(raw: &[u8]) -> MimePart {
        walk(raw, &|_| MessageSummary::default())
    }

    fn bytes(raw: &[u8], from: u64, to: u64) -> &[u8] {
        &raw[from as usize..to as usize]
    }

    /// Issue 10: a boundary is only a boundary at the start of a line.
    #[test]
    fn boundary_only_at_line_start() {
        let raw = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: text/plain\r\n\r\nsee x--zz here\r\n\
--zz\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--zz--\r\n";
        let t = tree(raw);
        assert_eq!(t.parts.len(), 2);
        let (one, two) = (&t.parts[0], &t.parts[1]);
        assert_eq!(bytes(raw, one.body_offset, one.body_end), b"see x--zz here");
        assert_eq!(
            bytes(raw, two.header_offset, two.header_end()),
            b"Content-Type: text/html\r\n\r\n"
        );
        assert_eq!(bytes(raw, two.body_offset, two.body_end), b"<p>two</p>");
    }

    #[test]
    fn delimiters_by_prefix_with_padding_and_preamble() {
        let raw = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\npre--zz\r\n\
--zz\r\n\r\none\r\n--zzz\r\n--zz \t\r\nContent-Type: text/x-a\r\n\r\ntwo\r\n\
--zz--trailer\r\nepilogue\r\n";
        let t = tree(raw);
        let bodies: Vec<&[u8]> = t
            .parts
            .iter()
            .map(|p| bytes(raw, p.body_offset, p.body_end))
            .collect();
        assert_eq!(bodies, [&b"one"[..], b"", b"two"]);
        assert_eq!(t.parts[1].header_offset, t.parts[1].header_end());
        assert_eq!(t.body_end, raw.len() as u64);
    }

    #[test]
    fn outer_boundary_ends_inner_parts() {
        let raw = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n\
--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\nin1\r\n\
--o\r\n\r\nout2\r\n--o--\r\n";
        let t = tree(raw);
        assert_eq!(t.parts.len(), 2);
        let alt = &t.parts[0];
        assert_eq!(bytes(raw, alt.body_offset, alt.body_end), b"--i\r\n\r\nin1");
        assert_eq!(
            bytes(raw, alt.parts[0].body_offset, alt.parts[0].body_end),
            b"in1"
        );
        assert_eq!(
            bytes(raw, t.parts[1].body_offset, t.parts[1].body_end),
            b"out2"
        );
        // The same boundary inside: the innermost multipart takes it.
        let raw = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n\
--o\r\nContent-Type: multipart/alternative; boundary=o\r\n\r\n--o\r\n\r\nx\r\n--o--\r\n";
        let t = tree(raw);
        let alt = &t.parts[0];
        assert_eq!(
            bytes(raw, alt.body_offset, alt.body_end),
            b"--o\r\n\r\nx\r\n--o--\r\n"
        );
        assert_eq!(
            bytes(raw, alt.parts[0].body_offset, alt.parts[0].body_end),
            b"x"
        );
    }

    /// A multipart without parts and an encoded enclosed message keep the
    /// types they declare (Dovecot); the encoded one is read as a message.
    #[test]
    fn declared_types_kept() {
        for raw in [
            &b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts\r\n"[..],
            b"Content-Type: multipart/mixed\r\n\r\n--zz\r\n\r\nx\r\n--zz--\r\n",
        ] {
            let t = tree(raw);
            assert_eq!(
                (t.content_type.as_str(), t.content_subtype.as_str()),
                ("multipart", "mixed")
            );
            assert!(t.parts.is_empty());
            assert_eq!(t.body_end, raw.len() as u64);
        }
        let raw = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
RnJvbTogYw0K\r\n";
        let t = tree(raw);
        assert_eq!(
            (t.content_type.as_str(), t.content_subtype.as_str()),
            ("message", "rfc822")
        );
        assert_eq!(t.encoding, "base64");
        assert!(t.message.is_some());
        let inner = &t.parts[0];
        assert_eq!(
            bytes(raw, inner.header_offset, inner.header_end()),
            b"RnJvbTogYw0K\r\n"
        );
        assert_eq!(inner.body_offset, inner.body_end);
    }

    /// Issue 10: a forwarded message with an empty body, with and without
    /// the blank line before the closing delimiter (sizes as Dovecot's).
    #[test]
    fn enclosed_message_with_empty_body() {
        let head = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: text/plain\r\n\r\nsee below\r\n\
--zz\r\nContent-Type: message/rfc822\r\n\r\n";
        let mut raw = head.to_vec();
        raw.extend_from_slice(b"From: c@d\r\nSubject: empty body\r\n\r\n--zz--\r\n");
        let t = tree(&raw);
        let (one, msg) = (&t.parts[0], &t.parts[1]);
        assert_eq!(bytes(&raw, one.body_offset, one.body_end), b"see below");
        assert_eq!(
            (msg.content_type.as_str(), msg.content_subtype.as_str()),
            ("message", "rfc822")
        );
        assert_eq!(msg.body_end - msg.body_offset, 34);
        assert_eq!(msg.lines, 3);
        assert_eq!(msg.header_end() - msg.header_offset, 32);
        let inner = &msg.parts[0];
        assert_eq!(
            bytes(&raw, inner.header_offset, inner.header_end()),
            b"From: c@d\r\nSubject: empty body\r\n"
        );
        assert_eq!(inner.body_offset, inner.body_end);

        let mut raw = head.to_vec();
        raw.extend_from_slice(b"From: c@d\r\nSubject: empty body\r\n--zz--\r\n");
        let t = tree(&raw);
        let msg = &t.parts[1];
        assert_eq!(
            (msg.content_type.as_str(), msg.content_subtype.as_str()),
            ("message", "rfc822")
        );
        assert_eq!(msg.body_end - msg.body_offset, 32);
        let inner = &msg.parts[0];
        assert_eq!(
            bytes(&raw, inner.header_offset, inner.header_end()),
            b"From: c@d\r\nSubject: empty body"
        );
        assert_eq!(
            bytes(&raw, t.parts[0].body_offset, t.parts[0].body_end),
            b"see below"
        );

        // No body at all: the part header runs into the delimiter.
        let mut raw = head[..head.len() - 2].to_vec();
        raw.extend_from_slice(b"--zz--\r\n");
        let t = tree(&raw);
        let msg = &t.parts[1];
        assert_eq!(msg.content_subtype, "rfc822");
        assert_eq!(
            bytes(&raw, msg.header_offset, msg.header_end()),
            b"Content-Type: message/rfc822"
        );
        assert_eq!(msg.body_offset, msg.body_end);
    }

    #[test]
    fn bare_line_feeds() {
        let raw = b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\none\n--x\n\ntwo\n--x--\n";
        let t = tree(raw);
        let bodies: Vec<&[u8]> = t
            .parts
            .iter()
            .map(|p| bytes(raw, p.body_offset, p.body_end))
            .collect();
        assert_eq!(bodies, [&b"one"[..], b"two"]);
    }

    #[test]
    fn parts_are_bounded() {
        let mut raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec();
        for _ in 0..MAX_PARTS + 10 {
            raw.extend_from_slice(b"--x\r\n\r\np\r\n");
        }
        raw.extend_from_slice(b"--x--\r\n");
        let t = tree(&raw);
        assert_eq!(t.parts.len(), MAX_PARTS - 1);
        let mut raw = Vec::new();
        for _ in 0..MAX_DEPTH + 10 {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        let mut t = &tree(&raw);
        let mut depth = 0;
        while let Some(inner) = t.parts.first() {
            t = inner;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
    }
}
