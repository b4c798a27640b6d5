//! Reading a server's replies (RFC 5321 4.2), and quoting them.
//!
//! Replies are read by a small reader of our own rather than smtp-proto's
//! receiver: a bounce must quote the server's words, enhanced status code
//! included, and a hostile server must not make us buffer without bound
//! (every line and the number of lines are capped).

use std::fmt;

use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::status::EnhancedStatus;

use super::failure::{io_failure, FailureKind, Stage};

/// Longest reply line we read (RFC 5321 4.5.3.1.5 allows 512 octets; some
/// servers send more).
const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one reply (an EHLO reply has a dozen or two).
const MAX_REPLY_LINES: usize = 100;

/// A server's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Every line's text after the code and separator, including the
    /// enhanced status code if the server sent one; lines joined with
    /// `\n`. Control characters are replaced by spaces.
    pub text: String,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: the server will never accept this.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply as it came, its lines joined with spaces: `550-5.1.1
    /// first line 550 5.1.1 last line`, as Postfix quotes a reply in a
    /// report's `Diagnostic-Code: smtp;`.
    pub fn as_sent(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        let last = lines.len().saturating_sub(1);
        let mut out = Vec::with_capacity(lines.len().max(1));
        for (i, line) in lines.iter().enumerate() {
            let separator = if i == last { ' ' } else { '-' };
            out.push(format!("{}{separator}{line}", self.code));
        }
        if out.is_empty() {
            out.push(self.code.to_string());
        }
        out.join(" ")
    }

    /// The enhanced status code (RFC 3463) at the start of the first line,
    /// e.g. `5.1.1`.
    pub fn enhanced_code(&self) -> Option<EnhancedStatus> {
        EnhancedStatus::parse(self.text.split_whitespace().next()?)
    }
}

/// On one line, as a bounce or a log quotes it: `550 5.1.1 No such user`.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in self.text.lines() {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// `host mx.example.org[192.0.2.1]:25 said: 550 5.1.1 No such user (in
/// reply to RCPT TO)`: how a rejection reads in a bounce, for a failed
/// session and for one recipient alike.
pub fn describe_reply(peer: &str, reply: &Reply, stage: Stage) -> String {
    format!(
        "host {peer} said: {reply} (in reply to {})",
        stage.command()
    )
}

/// Reads one reply, single- or multi-line, within the line limits.
pub(super) async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(
    stream: &mut R,
) -> Result<Reply, FailureKind> {
    let mut code = None;
    let mut text = String::new();
    let mut line = Vec::with_capacity(128);
    for count in 0.. {
        if count == MAX_REPLY_LINES {
            return Err(FailureKind::Protocol(format!(
                "reply longer than {MAX_REPLY_LINES} lines"
            )));
        }
        line.clear();
        let n = (&mut *stream)
            .take(MAX_REPLY_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| io_failure(&e))?;
        if n == 0 {
            return Err(FailureKind::Closed);
        }
        if line.last() != Some(&b'\n') {
            return Err(if n == MAX_REPLY_LINE {
                FailureKind::Protocol(format!("reply line longer than {MAX_REPLY_LINE} bytes"))
            } else {
                FailureKind::Closed
            });
        }
        let (this_code, last, rest) = parse_reply_line(&line)?;
        let code = *code.get_or_insert(this_code);
        if !text.is_empty() {
            text.push('\n');
        }
        text.extend(String::from_utf8_lossy(rest).chars().map(|c| {
            if c.is_control() {
                ' '
            } else {
                c
            }
        }));
        if last {
            return Ok(Reply {
                code,
                text: text.trim_end().to_string(),
            });
        }
    }
    unreachable!("the loop returns")
}

/// `250-text` → (250, false, "text"); `250 text` or `250` → last line.
fn parse_reply_line(line: &[u8]) -> Result<(u16, bool, &[u8]), FailureKind> {
    let line = line
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(line);
    let garbled = || {
        FailureKind::Protocol(format!(
            "malformed reply line {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        ))
    };
    if line.len() < 3
        || !line[..3].iter().all(u8::is_ascii_digit)
        || !(b'2'..=b'5').contains(&line[0])
    {
        return Err(garbled());
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Ok((code, true, &[])),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(garbled()),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tokio::io::BufReader;

    pub(in super::super) async fn parse(bytes: &[u8]) -> Result<Reply, FailureKind> {
        let mut reader = BufReader::new(bytes);
        read_reply(&mut reader).await
    }

    #[tokio::test]
    async fn replies_single_and_multi_line() {
        let r = parse(b"250 2.1.0 Ok\r\n").await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.text, "2.1.0 Ok");
        assert_eq!(r.enhanced_code().unwrap().as_str(), "2.1.0");
        let r = parse(b"550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n")
            .await
            .unwrap();
        assert_eq!(r.code, 550);
        assert_eq!(r.text, "5.7.1 first\n5.7.1 second\n5.7.1 third");
        assert_eq!(r.to_string(), "550 5.7.1 first 5.7.1 second 5.7.1 third");
        let r = parse(b"354\r\n").await.unwrap();
        assert_eq!(
            (r.code, r.text.as_str(), r.enhanced_code().is_none()),
            (354, "", true)
        );
        // Bare LF line ends, control characters.
        let r = parse(b"421 bye\x07now\n").await.unwrap();
        assert_eq!(r.text, "bye now");
        assert_eq!(
            parse(b"220 host ESMTP ready\r\n")
                .await
                .unwrap()
                .enhanced_code(),
            None
        );
    }

    #[tokio::test]
    async fn bad_replies_are_errors_not_allocations() {
        assert!(matches!(parse(b"").await, Err(FailureKind::Closed)));
        assert!(matches!(
            parse(b"250-more coming\r\n").await,
            Err(FailureKind::Closed)
        ));
        assert!(matches!(
            parse(b"hello\r\n").await,
            Err(FailureKind::Protocol(_))
        ));
        assert!(matches!(
            parse(b"250x\r\n").await,
            Err(FailureKind::Protocol(_))
        ));
        assert!(matches!(
            parse(b"999 no\r\n").await,
            Err(FailureKind::Protocol(_))
        ));
        let long = [b"250 ".as_slice(), &vec![b'a'; 10_000], b"\r\n"].concat();
        assert!(matches!(parse(&long).await, Err(FailureKind::Protocol(_))));
        let many = b"250-x\r\n".repeat(1000);
        assert!(matches!(parse(&many).await, Err(FailureKind::Protocol(_))));
    }
}
