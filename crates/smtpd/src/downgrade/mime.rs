//! Just enough MIME structure (RFC 2045, 2046) to find where each part's
//! header block and body lie in the original bytes. Nothing is decoded or
//! copied here: every answer is a slice or a range of the input, so the
//! caller can rebuild the message from the original bytes.
//!
//! Lines end with CRLF as stored; a bare LF is accepted as a line end too,
//! so that a malformed message is still split somewhere sensible.

use std::ops::Range;

/// A message or body part: header block, the empty line that ends it, body.
pub(super) struct Entity<'a> {
    /// The header fields, each with its line break; no empty line.
    pub header: &'a [u8],
    /// The empty line; empty when the header block never ends, in which
    /// case the body is empty too.
    pub separator: &'a [u8],
    pub body: &'a [u8],
}

/// The line starting at `start`: its content end (before CR LF) and where
/// the next line starts.
fn line_at(bytes: &[u8], start: usize) -> (usize, usize) {
    match bytes[start..].iter().position(|&b| b == b'\n') {
        Some(at) => {
            let lf = start + at;
            let content_end = if lf > start && bytes[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            (content_end, lf + 1)
        }
        None => (bytes.len(), bytes.len()),
    }
}

pub(super) fn split_entity(raw: &[u8]) -> Entity<'_> {
    let mut start = 0;
    while start < raw.len() {
        let (content_end, next) = line_at(raw, start);
        if content_end == start {
            return Entity {
                header: &raw[..start],
                separator: &raw[start..next],
                body: &raw[next..],
            };
        }
        start = next;
    }
    Entity {
        header: raw,
        separator: b"",
        body: b"",
    }
}

/// One header field with its folded continuation lines and line breaks.
pub(super) struct Field {
    pub span: Range<usize>,
    /// Where the value starts (after the colon); `None` for a line that is
    /// no field at all, which is kept but never interpreted.
    value_start: Option<usize>,
}

/// A header block cut into fields.
pub(super) struct Header<'a> {
    pub block: &'a [u8],
    pub fields: Vec<Field>,
}

impl<'a> Header<'a> {
    pub fn parse(block: &'a [u8]) -> Self {
        let mut fields: Vec<Field> = Vec::new();
        let mut start = 0;
        while start < block.len() {
            let (_, next) = line_at(block, start);
            let folded = matches!(block[start], b' ' | b'\t');
            match fields.last_mut() {
                Some(field) if folded => field.span.end = next,
                _ => {
                    let line = &block[start..next];
                    let value_start = line
                        .iter()
                        .position(|&b| b == b':')
                        .filter(|&colon| colon > 0)
                        .map(|colon| start + colon + 1);
                    fields.push(Field {
                        span: start..next,
                        value_start,
                    });
                }
            }
            start = next;
        }
        Header { block, fields }
    }

    /// Whether `field` is named `name` (ASCII case-insensitive; blanks
    /// before the colon, an obsolete form, are allowed).
    pub fn is(&self, field: &Field, name: &str) -> bool {
        match field.value_start {
            Some(value_start) => self.block[field.span.start..value_start - 1]
                .trim_ascii_end()
                .eq_ignore_ascii_case(name.as_bytes()),
            None => false,
        }
    }

    /// The unfolded value of the first field named `name`.
    pub fn value(&self, name: &str) -> Option<Vec<u8>> {
        let field = self.fields.iter().find(|f| self.is(f, name))?;
        let start = field.value_start?;
        Some(
            self.block[start..field.span.end]
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect(),
        )
    }
}

/// What Content-Type says, as far as a downgrade cares.
pub(super) struct ContentType {
    /// Lowercase type and subtype.
    pub kind: String,
    pub subtype: String,
    pub boundary: Option<Vec<u8>>,
}

impl ContentType {
    pub fn new(kind: &str, subtype: &str) -> Self {
        ContentType {
            kind: kind.into(),
            subtype: subtype.into(),
            boundary: None,
        }
    }

    /// `None` when the value is not `type/subtype [; parameters]`; RFC 2045
    /// 5.2 then has the reader assume the default.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let mut scan = Scanner {
            bytes: value,
            at: 0,
        };
        scan.skip_blanks();
        let kind = scan.token()?;
        scan.skip_blanks();
        if !scan.eat(b'/') {
            return None;
        }
        let subtype = scan.token()?;
        let mut content_type = ContentType {
            kind: lower(kind),
            subtype: lower(subtype),
            boundary: None,
        };
        loop {
            scan.skip_blanks();
            if scan.at >= value.len() {
                break;
            }
            if !scan.eat(b';') {
                // Garbage between parameters: resume at the next one.
                scan.skip_past(b';');
                continue;
            }
            scan.skip_blanks();
            let Some(name) = scan.token() else { continue };
            scan.skip_blanks();
            if !scan.eat(b'=') {
                continue;
            }
            scan.skip_blanks();
            let parameter = if scan.peek() == Some(b'"') {
                scan.quoted()
            } else {
                scan.token().map(<[u8]>::to_vec)
            };
            if name.eq_ignore_ascii_case(b"boundary") && content_type.boundary.is_none() {
                content_type.boundary = parameter.filter(|b| !b.is_empty());
            }
        }
        Some(content_type)
    }
}

/// The declared Content-Transfer-Encoding, lowercase, if any.
pub(super) fn transfer_encoding(header: &Header) -> Option<String> {
    let value = header.value("Content-Transfer-Encoding")?;
    let mut scan = Scanner {
        bytes: &value,
        at: 0,
    };
    scan.skip_blanks();
    scan.token().map(lower)
}

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

/// A cursor over a structured header value (RFC 2045 5.1 tokens, quoted
/// strings, and comments that count as blanks).
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn skip_blanks(&mut self) {
        let mut depth = 0usize;
        while let Some(byte) = self.peek() {
            match byte {
                b'(' => depth += 1,
                b')' if depth > 0 => depth -= 1,
                b'\\' if depth > 0 => self.at += 1,
                b' ' | b'\t' => {}
                _ if depth > 0 => {}
                _ => return,
            }
            self.at += 1;
        }
    }

    fn skip_past(&mut self, byte: u8) {
        while let Some(b) = self.peek() {
            if b == byte {
                return;
            }
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        while let Some(b) = self.peek() {
            if b <= b' ' || b >= 0x7f || b"()<>@,;:\\\"/[]?=".contains(&b) {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then(|| &self.bytes[start..self.at])
    }

    /// A quoted string without its quotes and escapes; an unterminated one
    /// runs to the end of the value.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.at += 1;
        let mut text = Vec::new();
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => return Some(text),
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        text.push(escaped);
                        self.at += 1;
                    }
                }
                _ => text.push(b),
            }
        }
        Some(text)
    }
}

/// A multipart body cut at its boundaries. The ranges index the body;
/// whatever lies between them (delimiter lines and the line break before
/// each, which RFC 2046 5.1.1 counts as part of the delimiter) is copied
/// as is.
pub(super) struct Multipart {
    pub preamble: Range<usize>,
    pub parts: Vec<Range<usize>>,
    pub epilogue: Range<usize>,
}

/// A delimiter line: where it starts, where the next line starts, and
/// whether it is the close delimiter.
struct Delimiter {
    start: usize,
    next: usize,
    close: bool,
}

/// `None` when no delimiter line is found: the structure is not understood.
/// A missing close delimiter is tolerated; the last part then runs to the
/// end of the body.
pub(super) fn split_multipart(body: &[u8], boundary: &[u8]) -> Option<Multipart> {
    let mut delimiters = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let (content_end, next) = line_at(body, start);
        if let Some(close) = delimiter_line(&body[start..content_end], boundary) {
            delimiters.push(Delimiter { start, next, close });
            if close {
                break;
            }
        }
        start = next;
    }
    let first = delimiters.first()?;
    let preamble = 0..line_break_before(body, first.start);
    let mut parts = Vec::new();
    for (i, delimiter) in delimiters.iter().enumerate() {
        if delimiter.close {
            break;
        }
        let end = match delimiters.get(i + 1) {
            Some(following) => line_break_before(body, following.start).max(delimiter.next),
            None => body.len(),
        };
        parts.push(delimiter.next..end);
    }
    let epilogue = match delimiters.last() {
        Some(last) if last.close => last.next..body.len(),
        _ => body.len()..body.len(),
    };
    Some(Multipart {
        preamble,
        parts,
        epilogue,
    })
}

/// `Some(is_close)` when the line is `--boundary` or `--boundary--`, with
/// only blanks after (RFC 2046 transport padding).
fn delimiter_line(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    let (close, padding) = match rest.strip_prefix(b"--") {
        Some(padding) => (true, padding),
        None => (false, rest),
    };
    padding
        .iter()
        .all(|&b| b == b' ' || b == b'\t')
        .then_some(close)
}

fn line_break_before(body: &[u8], start: usize) -> usize {
    match body[..start] {
        [.., b'\r', b'\n'] => start - 2,
        [.., b'\n'] => start - 1,
        _ => start,
    }
}
