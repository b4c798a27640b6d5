//! The POP3 grammar, apart from any handling: lines (framed by
//! [`common::transport`]) into commands ([`parse`]), and replies and
//! message data into bytes ([`ok`], [`err`], [`MessageEncoder`]).
//!
//! Nothing here panics on client input or allocates without a limit.

use std::fmt;

/// A POP3 command with its arguments checked.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The password: everything after `PASS `, spaces included (RFC 1939
    /// section 7 allows that reading).
    Pass(String),
    /// `AUTH` alone lists the mechanisms; else the mechanism (upper-cased)
    /// and an optional initial response (RFC 5034).
    Auth(Option<(String, Option<String>)>),
    Stls,
    Capa,
    Quit,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    /// Message number and body lines.
    Top(u32, u32),
    Dele(u32),
    Rset,
    Noop,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Pass(_) => f.write_str("Pass(<redacted>)"),
            Command::Auth(Some((mech, Some(_)))) => write!(f, "Auth({mech}, <redacted>)"),
            Command::User(u) => write!(f, "User({u:?})"),
            Command::Auth(a) => write!(f, "Auth({a:?})"),
            Command::Stls => f.write_str("Stls"),
            Command::Capa => f.write_str("Capa"),
            Command::Quit => f.write_str("Quit"),
            Command::Stat => f.write_str("Stat"),
            Command::List(n) => write!(f, "List({n:?})"),
            Command::Uidl(n) => write!(f, "Uidl({n:?})"),
            Command::Retr(n) => write!(f, "Retr({n})"),
            Command::Top(n, l) => write!(f, "Top({n}, {l})"),
            Command::Dele(n) => write!(f, "Dele({n})"),
            Command::Rset => f.write_str("Rset"),
            Command::Noop => f.write_str("Noop"),
        }
    }
}

impl Command {
    /// The keyword, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth(_) => "AUTH",
            Command::Stls => "STLS",
            Command::Capa => "CAPA",
            Command::Quit => "QUIT",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Top(..) => "TOP",
            Command::Dele(_) => "DELE",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
        }
    }
}

/// Why a line is not a command; `Display` is the text of the `-ERR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    Unknown,
    /// Wrong number or form of arguments; the text says what is expected.
    Syntax(&'static str),
    /// Not a positive decimal message number (or line count) that fits.
    BadNumber,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("Empty command"),
            ParseError::Unknown => f.write_str("Unknown command"),
            ParseError::Syntax(usage) => write!(f, "Syntax: {usage}"),
            ParseError::BadNumber => f.write_str("Invalid number"),
        }
    }
}

/// Parses one line (without CRLF). Keywords are case-insensitive;
/// arguments are separated by spaces.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let keyword_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let keyword = &line[..keyword_end];
    if keyword.is_empty() {
        return Err(if line.iter().all(|&b| b == b' ') {
            ParseError::Empty
        } else {
            ParseError::Unknown
        });
    }
    if keyword.len() > 4 || !keyword.iter().all(u8::is_ascii_alphabetic) {
        return Err(ParseError::Unknown);
    }
    let keyword = keyword.to_ascii_uppercase();
    let rest = line.get(keyword_end + 1..).unwrap_or(&[]);
    let text =
        || std::str::from_utf8(rest).map_err(|_| ParseError::Syntax("arguments must be UTF-8"));
    let args = || -> Result<Vec<&str>, ParseError> {
        let text = text()?;
        if text.chars().any(char::is_control) {
            return Err(ParseError::Syntax("arguments must be printable"));
        }
        Ok(text.split(' ').filter(|a| !a.is_empty()).collect())
    };
    let command = match &keyword[..] {
        b"USER" => match args()?[..] {
            [name] => Command::User(name.to_string()),
            _ => return Err(ParseError::Syntax("USER name")),
        },
        b"PASS" => {
            let password = text()?;
            if password.is_empty() || password.contains(['\0', '\r', '\n']) {
                return Err(ParseError::Syntax("PASS password"));
            }
            Command::Pass(password.to_string())
        }
        b"AUTH" => match args()?[..] {
            [] => Command::Auth(None),
            [mech] => Command::Auth(Some((mech.to_ascii_uppercase(), None))),
            [mech, initial] => {
                Command::Auth(Some((mech.to_ascii_uppercase(), Some(initial.to_string()))))
            }
            _ => return Err(ParseError::Syntax("AUTH [mechanism [initial-response]]")),
        },
        b"LIST" => Command::List(optional_number(&args()?, "LIST [msg]")?),
        b"UIDL" => Command::Uidl(optional_number(&args()?, "UIDL [msg]")?),
        b"RETR" => Command::Retr(one_number(&args()?, "RETR msg")?),
        b"DELE" => Command::Dele(one_number(&args()?, "DELE msg")?),
        b"TOP" => match args()?[..] {
            [msg, lines] => Command::Top(message_number(msg)?, count(lines)?),
            _ => return Err(ParseError::Syntax("TOP msg lines")),
        },
        other => {
            let command = match other {
                b"STLS" => Command::Stls,
                b"CAPA" => Command::Capa,
                b"QUIT" => Command::Quit,
                b"STAT" => Command::Stat,
                b"RSET" => Command::Rset,
                b"NOOP" => Command::Noop,
                _ => return Err(ParseError::Unknown),
            };
            if !args()?.is_empty() {
                return Err(ParseError::Syntax(match command {
                    Command::Stls => "STLS takes no arguments",
                    Command::Capa => "CAPA takes no arguments",
                    Command::Quit => "QUIT takes no arguments",
                    Command::Stat => "STAT takes no arguments",
                    Command::Rset => "RSET takes no arguments",
                    _ => "NOOP takes no arguments",
                }));
            }
            command
        }
    };
    Ok(command)
}

fn optional_number(args: &[&str], usage: &'static str) -> Result<Option<u32>, ParseError> {
    match args {
        [] => Ok(None),
        [n] => message_number(n).map(Some),
        _ => Err(ParseError::Syntax(usage)),
    }
}

fn one_number(args: &[&str], usage: &'static str) -> Result<u32, ParseError> {
    match args {
        [n] => message_number(n),
        _ => Err(ParseError::Syntax(usage)),
    }
}

/// A message number: decimal digits only (no sign), at least 1.
fn message_number(arg: &str) -> Result<u32, ParseError> {
    match count(arg)? {
        0 => Err(ParseError::BadNumber),
        n => Ok(n),
    }
}

/// A non-negative decimal that fits in 32 bits.
fn count(arg: &str) -> Result<u32, ParseError> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber);
    }
    arg.parse().map_err(|_| ParseError::BadNumber)
}

// ---- replies ----

/// RFC 2449/3206 extended response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    /// The credentials (or the way they were given) are the problem.
    Auth,
    /// The maildrop is locked by another session.
    InUse,
    /// A temporary problem on the server; try again later.
    SysTemp,
    /// A permanent problem on the server.
    SysPerm,
}

impl RespCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RespCode::Auth => "AUTH",
            RespCode::InUse => "IN-USE",
            RespCode::SysTemp => "SYS/TEMP",
            RespCode::SysPerm => "SYS/PERM",
        }
    }
}

/// Writes `+OK text`.
pub fn ok(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+OK");
    if !text.is_empty() {
        out.push(b' ');
        push_text(out, text);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `-ERR [CODE] text`.
pub fn err(out: &mut Vec<u8>, code: Option<RespCode>, text: &str) {
    out.extend_from_slice(b"-ERR ");
    if let Some(code) = code {
        out.push(b'[');
        out.extend_from_slice(code.as_str().as_bytes());
        out.extend_from_slice(b"] ");
    }
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Writes `+OK first`, the lines (dot-stuffed) and the terminating `.`.
pub fn multiline<S: AsRef<str>>(
    out: &mut Vec<u8>,
    first: &str,
    lines: impl IntoIterator<Item = S>,
) {
    ok(out, first);
    for line in lines {
        let line = line.as_ref();
        if line.starts_with('.') {
            out.push(b'.');
        }
        push_text(out, line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// Reply text never carries a line break, whatever it quotes.
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// Streams a message (or part of one) as a multi-line response body:
/// lines that start with `.` get another, a bare LF is sent as CRLF, and
/// [`MessageEncoder::finish`] ends an unterminated last line before the
/// closing `.`. Stored messages end their lines with CRLF, so for them the
/// octets sent (before dot-stuffing) are exactly the stored size.
#[derive(Debug)]
pub struct MessageEncoder {
    at_line_start: bool,
    after_cr: bool,
}

impl Default for MessageEncoder {
    fn default() -> Self {
        MessageEncoder {
            at_line_start: true,
            after_cr: false,
        }
    }
}

impl MessageEncoder {
    /// Encodes the next piece of the message.
    pub fn encode(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) {
        out.reserve(bytes.len() + bytes.len() / 64);
        while !bytes.is_empty() {
            if self.at_line_start && bytes[0] == b'.' {
                out.push(b'.');
            }
            let (line, rest) = match bytes.iter().position(|&b| b == b'\n') {
                Some(lf) => bytes.split_at(lf + 1),
                None => (bytes, &[][..]),
            };
            let ends_line = line.last() == Some(&b'\n');
            if ends_line {
                let body = &line[..line.len() - 1];
                out.extend_from_slice(body);
                let cr_before = match body.last() {
                    Some(&b) => b == b'\r',
                    None => self.after_cr,
                };
                if !cr_before {
                    out.push(b'\r');
                }
                out.push(b'\n');
                self.after_cr = false;
            } else {
                out.extend_from_slice(line);
                self.after_cr = line.last() == Some(&b'\r');
            }
            self.at_line_start = ends_line;
            bytes = rest;
        }
    }

    /// Ends the response: CRLF if the last line was unterminated, then
    /// `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            if self.after_cr {
                out.push(b'\n');
            } else {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The part of a message TOP sends: the header section as the store
/// measured it at delivery (`header_len`, the blank line that ends it
/// included) and the first `lines` lines of the body. A message without a
/// blank line is all header and is sent whole (RFC 1939 leaves this case
/// open; Dovecot does the same).
pub fn top_part(raw: &[u8], header_len: u64, lines: u32) -> &[u8] {
    let body_start = usize::try_from(header_len).map_or(raw.len(), |h| h.min(raw.len()));
    let mut end = body_start;
    for _ in 0..lines {
        if end >= raw.len() {
            break;
        }
        match raw[end..].iter().position(|&b| b == b'\n') {
            Some(lf) => end += lf + 1,
            None => end = raw.len(),
        }
    }
    &raw[..end]
}

/// The unique-id listing of a message: UIDVALIDITY and UID as eight hex
/// digits each, e.g. `5f3a0c1200000007`. Stable across sessions and
/// restarts, unique within the maildrop, and never reused (UIDs are not).
pub fn unique_id(uid_validity: u32, uid: u32) -> String {
    format!("{uid_validity:08x}{uid:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, ParseError> {
        parse(line.as_bytes())
    }

    #[test]
    fn rfc1939_commands() {
        assert_eq!(p("USER mrose"), Ok(Command::User("mrose".into())));
        assert_eq!(p("PASS secret"), Ok(Command::Pass("secret".into())));
        assert_eq!(
            p("PASS two words  "),
            Ok(Command::Pass("two words  ".into()))
        );
        assert_eq!(p("STAT"), Ok(Command::Stat));
        assert_eq!(p("LIST"), Ok(Command::List(None)));
        assert_eq!(p("LIST 2"), Ok(Command::List(Some(2))));
        assert_eq!(p("RETR 1"), Ok(Command::Retr(1)));
        assert_eq!(p("DELE 1"), Ok(Command::Dele(1)));
        assert_eq!(p("NOOP"), Ok(Command::Noop));
        assert_eq!(p("RSET"), Ok(Command::Rset));
        assert_eq!(p("QUIT"), Ok(Command::Quit));
        assert_eq!(p("TOP 1 10"), Ok(Command::Top(1, 10)));
        assert_eq!(p("TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(p("UIDL"), Ok(Command::Uidl(None)));
        assert_eq!(p("UIDL 2"), Ok(Command::Uidl(Some(2))));
        assert_eq!(p("CAPA"), Ok(Command::Capa));
        assert_eq!(p("STLS"), Ok(Command::Stls));
    }

    #[test]
    fn keywords_are_case_insensitive_and_spaces_tolerated() {
        assert_eq!(p("stat"), Ok(Command::Stat));
        assert_eq!(p("LiSt 3"), Ok(Command::List(Some(3))));
        assert_eq!(p("STAT "), Ok(Command::Stat));
        assert_eq!(p("RETR  4 "), Ok(Command::Retr(4)));
        assert_eq!(
            p("user Alice@Localhost"),
            Ok(Command::User("Alice@Localhost".into()))
        );
    }

    #[test]
    fn auth_forms() {
        assert_eq!(p("AUTH"), Ok(Command::Auth(None)));
        assert_eq!(
            p("auth plain"),
            Ok(Command::Auth(Some(("PLAIN".into(), None))))
        );
        assert_eq!(
            p("AUTH PLAIN AGFsaWNlAHB3"),
            Ok(Command::Auth(Some((
                "PLAIN".into(),
                Some("AGFsaWNlAHB3".into())
            ))))
        );
        assert_eq!(
            p("AUTH PLAIN ="),
            Ok(Command::Auth(Some(("PLAIN".into(), Some("=".into())))))
        );
        assert!(matches!(p("AUTH PLAIN a b"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn bad_numbers() {
        for bad in [
            "RETR 0",
            "RETR -1",
            "RETR +1",
            "RETR 1a",
            "RETR x",
            "RETR 0x10",
            "RETR 1.5",
            "RETR 4294967296",
            "RETR 99999999999999999999",
            "DELE 0",
            "LIST -3",
            "UIDL 0",
            "TOP 0 1",
            "TOP 1 -1",
            "TOP 1 x",
            "TOP 1 4294967296",
        ] {
            assert_eq!(p(bad), Err(ParseError::BadNumber), "{bad}");
        }
        assert_eq!(p("RETR 4294967295"), Ok(Command::Retr(u32::MAX)));
        assert_eq!(p("RETR 007"), Ok(Command::Retr(7)));
    }

    #[test]
    fn wrong_argument_counts() {
        for bad in [
            "RETR",
            "RETR 1 2",
            "DELE",
            "TOP 1",
            "TOP",
            "TOP 1 2 3",
            "LIST 1 2",
            "UIDL 1 2",
            "STAT 1",
            "QUIT now",
            "NOOP x",
            "RSET 1",
            "CAPA x",
            "STLS x",
            "USER",
            "USER a b",
            "PASS",
            "PASS ",
        ] {
            assert!(
                matches!(p(bad), Err(ParseError::Syntax(_))),
                "{bad}: {:?}",
                p(bad)
            );
        }
    }

    #[test]
    fn unknown_and_junk() {
        assert_eq!(p(""), Err(ParseError::Empty));
        assert_eq!(p("   "), Err(ParseError::Empty));
        assert_eq!(
            p("APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Err(ParseError::Unknown)
        );
        assert_eq!(p("XYZZY"), Err(ParseError::Unknown));
        assert_eq!(p("STATS"), Err(ParseError::Unknown));
        assert_eq!(p(" STAT"), Err(ParseError::Unknown));
        assert_eq!(parse(b"\xff\xfe\x00\x01"), Err(ParseError::Unknown));
        assert_eq!(parse(b"ST\x00T"), Err(ParseError::Unknown));
        assert!(matches!(parse(b"USER \xff"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"USER a\x00b"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"PASS a\x00b"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", p("PASS hunter2").unwrap());
        assert!(!shown.contains("hunter2"));
        let shown = format!("{:?}", p("AUTH PLAIN AGFsaWNlAGh1bnRlcjI=").unwrap());
        assert!(!shown.contains("AGFsaWNl"));
    }

    /// Frames (as a session does) and parses everything in `chunks`.
    async fn replay(chunks: &[&[u8]], max: usize) -> Vec<Result<Result<Command, ParseError>, ()>> {
        use common::transport::{Line, Transport};
        use tokio::io::AsyncWriteExt;
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let timeout = std::time::Duration::from_secs(60);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let mut io = Transport::new(server, max, timeout, shutdown);
        let mut seen = Vec::new();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            client.write_all(chunk).await.unwrap();
            io.fill(timeout, true).await.unwrap();
            while let Some(input) = io.take_line() {
                seen.push(match input {
                    Line::Complete(line) => Ok(parse(&line)),
                    Line::TooLong => Err(()),
                });
            }
        }
        seen
    }

    #[tokio::test]
    async fn every_split_point_gives_the_same_commands() {
        let session: &[u8] = b"CAPA\r\nUSER alice@localhost\r\nPASS pass word\r\nSTAT\nLIST 1\r\nTOP 1 5\r\nUIDL\r\nRETR 1\r\nDELE 1\r\nBAD\r\n\r\nQUIT\r\n";
        let whole = replay(&[session], 64).await;
        assert_eq!(whole.len(), 12);
        assert_eq!(whole[2], Ok(Ok(Command::Pass("pass word".into()))));
        for i in 0..=session.len() {
            let (a, b) = session.split_at(i);
            assert_eq!(replay(&[a, b], 64).await, whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = session.chunks(1).collect();
        assert_eq!(replay(&bytes, 64).await, whole);
        for i in 0..session.len() {
            for j in i..=session.len() {
                let parts = [&session[..i], &session[i..j], &session[j..]];
                assert_eq!(replay(&parts, 64).await, whole, "split at {i}, {j}");
            }
        }
    }

    #[tokio::test]
    async fn overlong_lines_are_dropped_whole_at_every_split() {
        let mut session = b"NOOP\r\nUSER ".to_vec();
        session.extend(std::iter::repeat_n(b'x', 200));
        session.extend_from_slice(b"\r\nSTAT\r\n");
        let expected = vec![Ok(Ok(Command::Noop)), Err(()), Ok(Ok(Command::Stat))];
        for i in 0..=session.len() {
            let (a, b) = session.split_at(i);
            assert_eq!(replay(&[a, b], 32).await, expected, "split at {i}");
        }
        let bytes: Vec<&[u8]> = session.chunks(1).collect();
        assert_eq!(replay(&bytes, 32).await, expected);
        // The limit counts the CRLF.
        assert_eq!(
            replay(&[b"NOOP\r\n"], 16).await,
            vec![Ok(Ok(Command::Noop))]
        );
        let exact = [b"USER ".as_slice(), &[b'a'; 9], b"\r\n"].concat();
        assert_eq!(exact.len(), 16);
        assert!(matches!(
            replay(&[&exact], 16).await[0],
            Ok(Ok(Command::User(_)))
        ));
        let over = [b"USER ".as_slice(), &[b'a'; 10], b"\r\n"].concat();
        assert_eq!(replay(&[&over], 16).await, vec![Err(())]);
    }

    #[test]
    fn replies() {
        let mut out = Vec::new();
        ok(&mut out, "2 320");
        err(&mut out, None, "no such message");
        err(&mut out, Some(RespCode::InUse), "locked\r\nforged");
        err(&mut out, Some(RespCode::SysTemp), "try later");
        ok(&mut out, "");
        assert_eq!(
            out,
            b"+OK 2 320\r\n-ERR no such message\r\n-ERR [IN-USE] locked  forged\r\n-ERR [SYS/TEMP] try later\r\n+OK\r\n"
        );
        let mut out = Vec::new();
        multiline(&mut out, "Capability list follows", ["TOP", ".hidden"]);
        assert_eq!(
            out,
            b"+OK Capability list follows\r\nTOP\r\n..hidden\r\n.\r\n"
        );
    }

    fn encode_in_pieces(message: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = MessageEncoder::default();
        for chunk in message.chunks(piece.max(1)) {
            encoder.encode(chunk, &mut out);
        }
        encoder.finish(&mut out);
        out
    }

    #[test]
    fn message_encoding_stuffs_dots_and_ends_lines() {
        let message = b"Subject: x\r\n\r\n.line\r\n..two\r\nmid.dot\r\n.\r\nend";
        let expected = b"Subject: x\r\n\r\n..line\r\n...two\r\nmid.dot\r\n..\r\nend\r\n.\r\n";
        for piece in 1..=message.len() {
            assert_eq!(encode_in_pieces(message, piece), expected, "piece {piece}");
        }
        // Bare LF becomes CRLF; a CRLF message passes unchanged.
        let bare = b"a\nb\r\n.c\nd\r";
        let expected = b"a\r\nb\r\n..c\r\nd\r\n.\r\n";
        for piece in 1..=bare.len() {
            assert_eq!(encode_in_pieces(bare, piece), expected, "piece {piece}");
        }
        let crlf = b"A: b\r\n\r\nbody\r\n";
        assert_eq!(encode_in_pieces(crlf, 100), b"A: b\r\n\r\nbody\r\n.\r\n");
        assert_eq!(encode_in_pieces(b"", 1), b".\r\n");
    }

    #[test]
    fn top_parts() {
        let top = |m: &'static [u8], lines| top_part(m, store::summarize(m).header_len, lines);
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
        assert_eq!(top(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(m, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
        assert_eq!(top(m, 99), &m[..]);
        assert_eq!(top(b"A: 1\r\nB: 2\r\n", 3), b"A: 1\r\nB: 2\r\n");
        assert_eq!(top(b"A: 1\n\nx\ny", 1), b"A: 1\n\nx\n");
        assert_eq!(top(b"A: 1\n\nx\ny", 5), b"A: 1\n\nx\ny");
        assert_eq!(top(b"\r\nbody\r\n", 0), b"\r\n");
        assert_eq!(top(b"A: 1\n\r\nbody\r\n", 0), b"A: 1\n\r\n");
        assert_eq!(top(b"A: 1\n\n\nbody\n", 1), b"A: 1\n\n\n");
        assert_eq!(top(b"", 3), b"");
    }

    #[test]
    fn unique_ids_are_fixed_width_hex() {
        assert_eq!(unique_id(1, 1), "0000000100000001");
        assert_eq!(unique_id(0x5f3a_0c12, 7), "5f3a0c1200000007");
        assert_eq!(unique_id(u32::MAX, u32::MAX), "ffffffffffffffff");
        assert_ne!(unique_id(1, 0x10), unique_id(0x10, 1));
    }
}
