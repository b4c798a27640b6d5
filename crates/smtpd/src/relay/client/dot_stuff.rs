//! Dot-stuffing (RFC 5321 4.5.2) for the message after DATA.
//!
//! The message is sent with dot-stuffing done here and every line ending
//! made CRLF, so no byte sequence in a stored message can end DATA early
//! at a server that accepts bare LF (SMTP smuggling).

/// Dot-stuffing (RFC 5321 4.5.2) with line ends made CRLF, fed in pieces.
#[derive(Default)]
pub(super) struct DotStuffer {
    /// The previous byte was a CR whose line end is not yet written.
    pending_cr: bool,
    /// Something has been written on the current line.
    mid_line: bool,
}

impl DotStuffer {
    pub(super) fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.mid_line = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.mid_line = false;
                }
                _ => {
                    if b == b'.' && !self.mid_line {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.mid_line = true;
                }
            }
        }
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || self.mid_line {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.mid_line = false;
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(pieces: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::new();
        for piece in pieces {
            stuffer.push(piece, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(stuff(&[b"a\r\n.b\r\n..\r\n"]), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(stuff(&[b".start"]), b"..start\r\n.\r\n");
        assert_eq!(stuff(&[b""]), b".\r\n");
        assert_eq!(stuff(&[b"x\r\n"]), b"x\r\n.\r\n");
        // Bare LF and bare CR become CRLF: nothing can end DATA early.
        assert_eq!(stuff(&[b"a\n.\nb\rc"]), b"a\r\n..\r\nb\r\nc\r\n.\r\n");
        // Split anywhere, even inside CRLF or before a dot.
        let whole = b"line\r\n.dot\r\nend\r\n";
        for at in 0..whole.len() {
            assert_eq!(
                stuff(&[&whole[..at], &whole[at..]]),
                stuff(&[whole]),
                "split at {at}"
            );
        }
    }
}
