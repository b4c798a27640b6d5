//! The `Received:` line smtpd prepends to every message it accepts
//! (RFC 5321 4.4, with RFC 3848 and RFC 6531 protocol names).

use std::net::IpAddr;

/// What the trace line records about one accepted message.
pub struct Trace<'a> {
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    pub esmtp: bool,
    pub tls: Option<&'a str>,
    pub authenticated: bool,
    pub smtputf8: bool,
    /// Named only when there is exactly one, as Postfix does, so that a
    /// message to many does not show everyone.
    pub recipients: &'a [String],
    pub date: chrono::DateTime<chrono::Utc>,
}

impl Trace<'_> {
    /// RFC 3848 / RFC 6531 "with" keyword.
    pub fn protocol(&self) -> String {
        let base = match (self.smtputf8, self.esmtp) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        };
        let mut proto = base.to_string();
        if self.tls.is_some() && base != "SMTP" {
            proto.push('S');
        }
        if self.authenticated && base != "SMTP" {
            proto.push('A');
        }
        proto
    }

    /// The header line, folded, CRLF-terminated.
    pub fn header(&self) -> Vec<u8> {
        let peer = match self.peer {
            IpAddr::V4(ip) => format!("[{ip}]"),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => format!("[{v4}]"),
                None => format!("[IPv6:{ip}]"),
            },
        };
        let mut line = format!(
            "Received: from {} ({peer})\r\n\tby {} (Postern) with {}",
            sanitize(self.helo),
            sanitize(self.hostname),
            self.protocol()
        );
        if let Some(tls) = self.tls {
            line.push_str(&format!("\r\n\t(using {})", sanitize(tls)));
        }
        if let [only] = self.recipients {
            line.push_str(&format!("\r\n\tfor <{}>", sanitize(only)));
        }
        line.push_str(&format!("; {}\r\n", self.date.to_rfc2822()));
        line.into_bytes()
    }
}

/// Keeps client-supplied text from breaking the header's syntax.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '(' | ')' | '\\' | '<' | '>' | ';' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// How many `Received:` fields the message's header holds: the hop count
/// that loop protection limits (`[relay] max_received_headers`).
pub fn hop_count(raw: &[u8]) -> usize {
    let mut count = 0;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn trace<'a>(recipients: &'a [String]) -> Trace<'a> {
        Trace {
            helo: "client.example",
            peer: "127.0.0.1".parse().unwrap(),
            hostname: "localhost",
            esmtp: true,
            tls: None,
            authenticated: false,
            smtputf8: false,
            recipients,
            date: chrono::Utc
                .with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
                .unwrap(),
        }
    }

    #[test]
    fn header_for_one_recipient() {
        let rcpts = vec!["alice@localhost".to_string()];
        let h = String::from_utf8(trace(&rcpts).header()).unwrap();
        assert_eq!(
            h,
            "Received: from client.example ([127.0.0.1])\r\n\tby localhost (Postern) with ESMTP\r\n\tfor <alice@localhost>; Sat, 21 Nov 2026 12:00:00 +0000\r\n"
        );
    }

    #[test]
    fn protocol_names() {
        let rcpts = vec![];
        let mut t = trace(&rcpts);
        assert_eq!(t.protocol(), "ESMTP");
        t.tls = Some("TLSv1_3");
        t.authenticated = true;
        assert_eq!(t.protocol(), "ESMTPSA");
        t.smtputf8 = true;
        assert_eq!(t.protocol(), "UTF8SMTPSA");
        t.esmtp = false;
        t.smtputf8 = false;
        assert_eq!(t.protocol(), "SMTP");
    }

    #[test]
    fn hostile_helo_cannot_break_the_header() {
        let rcpts = vec![];
        let mut t = trace(&rcpts);
        t.helo = "x)\r\nBcc: evil";
        let h = String::from_utf8(t.header()).unwrap();
        assert_eq!(h.matches("\r\n").count(), 2);
        assert!(!h.contains("x)"));
    }

    #[test]
    fn hop_count_reads_the_header_only() {
        let raw = b"Received: a\r\nRECEIVED:b\r\n\tcontinued received: x\r\nX-Received: no\r\nSubject: s\r\n\r\nReceived: in the body\r\n";
        assert_eq!(hop_count(raw), 2);
        assert_eq!(hop_count(b""), 0);
        assert_eq!(hop_count(b"Received: only"), 1);
    }
}
