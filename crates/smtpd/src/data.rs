//! The DATA receiver: turns the dot-stuffed text after `DATA` into the
//! message, and finds its end; and the line-end rule every message
//! (DATA or BDAT) must keep.
//!
//! The end of data is `<CRLF>.<CRLF>` and nothing else (RFC 5321 4.1.1.4).
//! A bare LF or bare CR anywhere is never an end; it stays in the message,
//! and once the real end arrives the session either rejects the whole
//! message ([`bare_line_end`], as Postfix's `smtpd_forbid_bare_newline =
//! reject` does, but without dropping the connection) or, with `[smtp]
//! bare_newline = "normalize"` and in capture mode, makes every bare line
//! end CRLF ([`normalize_line_ends`], as Postfix 3.9's `normalize`). Both
//! close SMTP smuggling: whatever a sender hides behind `\n.\n` stays
//! inside the one message. BDAT chunks have no end marker to hide behind,
//! but the same rule applies to them, so that every stored message has
//! CRLF line ends and the sizes POP3 and IMAP report are the octets they
//! send.
//!
//! The receiver is resumable: feed it whatever bytes arrived; it says how
//! many it consumed and whether the message ended. Bytes after the end
//! belong to the next command.

/// Where a message breaks the line-end rule (RFC 5321 2.3.8: CR and LF
/// only as CRLF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLineEnd {
    /// A CR not followed by LF, at this offset.
    Cr(usize),
    /// An LF not after a CR, at this offset.
    Lf(usize),
}

/// The first bare CR or LF in `message`, if any: the one rule for DATA and
/// BDAT (550 5.5.2 when broken).
pub fn bare_line_end(message: &[u8]) -> Option<BareLineEnd> {
    let mut at = 0;
    while let Some(found) = memchr::memchr2(b'\r', b'\n', &message[at..]) {
        let i = at + found;
        if message[i] == b'\n' {
            return Some(BareLineEnd::Lf(i));
        }
        if message.get(i + 1) != Some(&b'\n') {
            return Some(BareLineEnd::Cr(i));
        }
        at = i + 2;
    }
    None
}

/// `message` with every line end CRLF: a bare LF becomes CRLF, and so
/// does a bare CR. A run of CRs before an LF is one line end (`\r\r\n`
/// is what a CRLF text gets from a second LF-to-CRLF conversion, and
/// reading it as two would end a header early).
pub fn normalize_line_ends(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    let mut at = 0;
    while let Some(found) = message[at..].iter().position(|&b| b == b'\r' || b == b'\n') {
        let i = at + found;
        out.extend_from_slice(&message[at..i]);
        if message[i] == b'\n' {
            out.extend_from_slice(b"\r\n");
            at = i + 1;
            continue;
        }
        let crs = message[i..].iter().take_while(|&&b| b == b'\r').count();
        if message.get(i + crs) == Some(&b'\n') {
            out.extend_from_slice(b"\r\n");
            at = i + crs + 1;
        } else {
            for _ in 0..crs {
                out.extend_from_slice(b"\r\n");
            }
            at = i + crs;
        }
    }
    out.extend_from_slice(&message[at..]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a line.
    Text,
    /// After a CR inside a line.
    Cr,
    /// At the start of a line (after CRLF), or at the very start.
    LineStart,
    /// After a `.` at the start of a line.
    Dot,
    /// After `.` CR at the start of a line.
    DotCr,
    /// After a bare LF. Clients that write bare LF line ends dot-stuff
    /// the lines after them (Python's smtplib does), so a dot here is
    /// unstuffed as after CRLF, as Postfix's `normalize` reads such lines
    /// "as if the client sent <CR><LF>"; but nothing here ends the data.
    LfLineStart,
    /// After a `.` at the start of a line that began after a bare LF.
    LfDot,
}

/// Receives one message's DATA.
#[derive(Debug)]
pub struct DataReceiver {
    state: State,
    message: Vec<u8>,
    max_size: usize,
    /// More bytes arrived than `max_size`; the rest were dropped.
    pub too_big: bool,
    /// Some byte had the high bit set.
    pub eight_bit: bool,
}

/// What a call to [`DataReceiver::ingest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub consumed: usize,
    pub done: bool,
}

impl DataReceiver {
    /// `prefix` is written before the message (smtpd's `Received:` line);
    /// it does not count against `max_size`.
    pub fn new(prefix: Vec<u8>, max_size: usize) -> DataReceiver {
        let max_size = max_size.saturating_add(prefix.len());
        DataReceiver {
            state: State::LineStart,
            message: prefix,
            max_size,
            too_big: false,
            eight_bit: false,
        }
    }

    /// The message, once `ingest` said `done`.
    pub fn into_message(self) -> Vec<u8> {
        self.message
    }

    fn push(&mut self, byte: u8) {
        if self.message.len() < self.max_size {
            self.message.push(byte);
        } else {
            self.too_big = true;
        }
    }

    fn push_slice(&mut self, bytes: &[u8]) {
        let room = self.max_size.saturating_sub(self.message.len());
        if bytes.len() > room {
            self.too_big = true;
        }
        self.message
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Consumes bytes up to and including the end of data, or all of them.
    pub fn ingest(&mut self, input: &[u8]) -> Progress {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                // Fast path: copy the run of ordinary bytes in one go.
                let run = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                if run > 0 {
                    let chunk = &input[i..i + run];
                    if !self.eight_bit && !chunk.is_ascii() {
                        self.eight_bit = true;
                    }
                    self.push_slice(chunk);
                    i += run;
                    continue;
                }
            }
            let byte = input[i];
            i += 1;
            if byte >= 0x80 {
                self.eight_bit = true;
            }
            self.state = match (self.state, byte) {
                (State::Text, b'\r') | (State::LineStart, b'\r') => {
                    self.push(byte);
                    State::Cr
                }
                (State::Cr, b'\n') => {
                    self.push(byte);
                    State::LineStart
                }
                (State::Cr, b'\r') => {
                    self.push(byte);
                    State::Cr
                }
                (State::Cr, _) => self.reprocess_as_text(byte),
                (State::LineStart, b'.') => State::Dot,
                (State::LfLineStart, b'.') => State::LfDot,
                (State::Dot, b'\r') => State::DotCr,
                // A line of one dot that is not the end (its line end is a
                // bare LF, or a line that began after a bare LF): the dot
                // is the line's text (RFC 5321 4.5.2 unstuffs only a dot
                // with more after it).
                (State::Dot, b'\n') | (State::LfDot, b'\r' | b'\n') => {
                    self.push(b'.');
                    self.reprocess_as_text(byte)
                }
                (State::Dot, _) | (State::LfDot, _) => {
                    // A stuffed dot: drop it, keep what follows.
                    self.reprocess_as_text(byte)
                }
                (State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    return Progress {
                        consumed: i,
                        done: true,
                    };
                }
                (State::DotCr, _) => {
                    self.push(b'\r');
                    self.reprocess_as_text(byte)
                }
                (State::Text | State::LineStart | State::LfLineStart, _) => {
                    self.reprocess_as_text(byte)
                }
            };
        }
        Progress {
            consumed: input.len(),
            done: false,
        }
    }

    /// Handles `byte` as if inside a line.
    fn reprocess_as_text(&mut self, byte: u8) -> State {
        match byte {
            b'\r' => {
                self.push(byte);
                State::Cr
            }
            b'\n' => {
                self.push(byte);
                State::LfLineStart
            }
            _ => {
                self.push(byte);
                State::Text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at every possible point (and byte by byte) and
    /// checks that each way gives the same answer as feeding it whole.
    fn receive(input: &[u8]) -> (Vec<u8>, usize, bool, bool) {
        let whole = receive_in_chunks(input, &[input.len()]);
        for split in 0..=input.len() {
            let split_answer = receive_in_chunks(input, &[split, input.len() - split]);
            assert_eq!(split_answer, whole, "split at {split}");
        }
        let bytewise = receive_in_chunks(input, &vec![1; input.len()]);
        assert_eq!(bytewise, whole, "byte by byte");
        whole
    }

    fn receive_in_chunks(input: &[u8], sizes: &[usize]) -> (Vec<u8>, usize, bool, bool) {
        let mut rx = DataReceiver::new(Vec::new(), 1 << 20);
        let mut offset = 0;
        for &size in sizes {
            let chunk = &input[offset..offset + size];
            let progress = rx.ingest(chunk);
            offset += progress.consumed;
            if progress.done {
                let too_big = rx.too_big;
                let message = rx.into_message();
                let bare = bare_line_end(&message).is_some();
                return (message, offset, bare, too_big);
            }
            assert_eq!(progress.consumed, chunk.len());
        }
        (vec![b'?'], usize::MAX, false, false)
    }

    #[test]
    fn simple_message_ends_at_crlf_dot_crlf() {
        let (msg, used, bare, _) = receive(b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(msg, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(used, 24);
        assert!(!bare);
    }

    #[test]
    fn empty_message() {
        let (msg, used, _, _) = receive(b".\r\n");
        assert_eq!(msg, b"");
        assert_eq!(used, 3);
    }

    #[test]
    fn dot_unstuffing() {
        let (msg, _, bare, _) = receive(b"..leading\r\n...\r\n.x\r\nmid.dle\r\n.\r\n");
        assert_eq!(msg, b".leading\r\n..\r\nx\r\nmid.dle\r\n");
        assert!(!bare);
    }

    #[test]
    fn smuggling_bare_lf_dot_lf_is_not_an_end() {
        let input = b"a\r\n\n.\nMAIL FROM:<x@y>\r\n.\r\n";
        let (msg, used, bare, _) = receive(input);
        assert_eq!(used, input.len());
        assert!(bare);
        assert!(msg.ends_with(b"MAIL FROM:<x@y>\r\n"));
    }

    #[test]
    fn smuggling_crlf_dot_lf_is_not_an_end() {
        let input = b"a\r\n.\nRCPT TO:<x@y>\r\n.\r\n";
        let (_, used, bare, _) = receive(input);
        assert_eq!(used, input.len());
        assert!(bare);
    }

    #[test]
    fn smuggling_lf_dot_crlf_is_not_an_end() {
        let input = b"a\n.\r\nDATA\r\n.\r\n";
        let (_, used, bare, _) = receive(input);
        assert_eq!(used, input.len());
        assert!(bare);
    }

    #[test]
    fn smuggling_bare_cr_variants_are_not_ends() {
        for input in [
            &b"a\r.\r\nX\r\n.\r\n"[..],
            b"a\r\n.\rX\r\n.\r\n",
            b"a\r\r\n.\r\n",
        ] {
            let (_, used, bare, _) = receive(input);
            assert_eq!(used, input.len(), "{input:?}");
            assert!(bare, "{input:?}");
        }
    }

    #[test]
    fn no_end_yet() {
        let (msg, used, _, _) = receive(b"a\r\nb\r\n.");
        assert_eq!((msg, used), (vec![b'?'], usize::MAX));
    }

    #[test]
    fn size_limit_is_enforced_but_the_end_is_still_found() {
        let mut rx = DataReceiver::new(b"Received: x\r\n".to_vec(), 10);
        let p = rx.ingest(b"0123456789abcdef\r\n.\r\n");
        assert!(p.done);
        assert!(rx.too_big);
        assert_eq!(rx.into_message(), b"Received: x\r\n0123456789");
    }

    #[test]
    fn the_line_end_rule() {
        assert_eq!(bare_line_end(b""), None);
        assert_eq!(bare_line_end(b"a\r\nb\r\n\r\n"), None);
        assert_eq!(bare_line_end(b"a\nb"), Some(BareLineEnd::Lf(1)));
        assert_eq!(bare_line_end(b"a\r\n\nb"), Some(BareLineEnd::Lf(3)));
        assert_eq!(bare_line_end(b"a\rb\r\n"), Some(BareLineEnd::Cr(1)));
        assert_eq!(bare_line_end(b"a\r\r\n"), Some(BareLineEnd::Cr(1)));
        assert_eq!(bare_line_end(b"a\r\nb\r"), Some(BareLineEnd::Cr(4)));
    }

    #[test]
    fn normalizing_makes_every_line_end_crlf() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"\n\n", b"\r\n\r\n"),
            (b"a\rb", b"a\r\nb"),
            (b"a\r", b"a\r\n"),
            (b"a\r\rb", b"a\r\n\r\nb"),
            (b"a\r\r\nb", b"a\r\nb"),
            (b"a\r\n\nb", b"a\r\n\r\nb"),
            (b"a\n\r\nb", b"a\r\n\r\nb"),
            (
                b"H: 1\nH: 2\n\nbody\rline\r\n",
                b"H: 1\r\nH: 2\r\n\r\nbody\r\nline\r\n",
            ),
        ];
        for (input, want) in cases {
            let got = normalize_line_ends(input);
            assert_eq!(&got[..], *want, "{input:?}");
            assert_eq!(bare_line_end(&got), None, "{input:?}");
        }
    }

    /// With normalizing, `\n.\n` is still inside the message: the data
    /// ends at the real `<CRLF>.<CRLF>` only, and the hidden commands
    /// become lines of the one message.
    #[test]
    fn normalizing_keeps_smuggled_commands_inside() {
        let input = b"a\n.\nMAIL FROM:<x@y>\n\r\n.\r\nQUIT\r\n";
        let (msg, used, bare, _) = receive(input);
        assert_eq!(used, input.len() - 6);
        assert!(bare);
        assert_eq!(
            normalize_line_ends(&msg),
            b"a\r\n.\r\nMAIL FROM:<x@y>\r\n\r\n"
        );
    }

    /// Lines after a bare LF are unstuffed as the client stuffed them
    /// (smtplib stuffs every line after `\n`); a lone dot there is text.
    #[test]
    fn dots_after_bare_lf_are_unstuffed_but_never_end() {
        let input = b"a\n..b\n..\n.\n.\r\nz\r\n.\r\n";
        let (msg, used, bare, _) = receive(input);
        assert_eq!(used, input.len());
        assert!(bare);
        assert_eq!(msg, b"a\n.b\n.\n.\n.\r\nz\r\n");
        assert_eq!(
            normalize_line_ends(&msg),
            b"a\r\n.b\r\n.\r\n.\r\n.\r\nz\r\n"
        );
    }

    #[test]
    fn eight_bit_is_noticed() {
        let mut rx = DataReceiver::new(Vec::new(), 100);
        rx.ingest("Grüße\r\n.\r\n".as_bytes());
        assert!(rx.eight_bit);
    }
}
