//! The two transfer encodings a downgrade writes (RFC 2045 6.7 and 6.8).

use base64::Engine;

/// Longest encoded line, as RFC 2045 requires for both encodings.
const LINE: usize = 76;

/// Quoted-printable for a text body. A CRLF in the text stays a hard line
/// break; a bare CR or LF is encoded, so that decoding gives back exactly
/// the original bytes.
pub(super) fn quoted_printable(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 8);
    let mut rest = body;
    loop {
        match find_crlf(rest) {
            Some(end) => {
                quoted_printable_line(&rest[..end], out);
                out.extend_from_slice(b"\r\n");
                rest = &rest[end + 2..];
            }
            None => {
                quoted_printable_line(rest, out);
                return;
            }
        }
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'\n') {
        let lf = from + at;
        if lf > 0 && bytes[lf - 1] == b'\r' {
            return Some(lf - 1);
        }
        from = lf + 1;
    }
    None
}

/// One hard line, broken with soft breaks (`=` CRLF) so that no encoded
/// line is longer than 76 characters, the `=` included.
fn quoted_printable_line(line: &[u8], out: &mut Vec<u8>) {
    let mut width = 0;
    for (i, &byte) in line.iter().enumerate() {
        let last = i + 1 == line.len();
        // Whitespace at a line end is what gateways strip, so it is
        // encoded there; elsewhere it is safe as is.
        let literal = match byte {
            b'!'..=b'<' | b'>'..=b'~' => true,
            b' ' | b'\t' => !last,
            _ => false,
        };
        let len = if literal { 1 } else { 3 };
        // A character that is not the last needs room for a soft break.
        let room = if last { LINE } else { LINE - 1 };
        if width + len > room {
            out.extend_from_slice(b"=\r\n");
            width = 0;
        }
        if literal {
            out.push(byte);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[
                b'=',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
        width += len;
    }
}

/// Base64 in 76-character lines, each ending with CRLF.
pub(super) fn base64(body: &[u8], out: &mut Vec<u8>) {
    // 57 input bytes make exactly 76 characters.
    const CHUNK: usize = LINE / 4 * 3;
    out.reserve(body.len() / 3 * 4 + body.len() / CHUNK * 2 + 8);
    let mut line = String::with_capacity(LINE);
    for chunk in body.chunks(CHUNK) {
        line.clear();
        base64::engine::general_purpose::STANDARD.encode_string(chunk, &mut line);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}
