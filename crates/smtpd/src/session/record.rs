//! What a session leaves behind as data: a transcript of its commands and
//! replies (size-capped; passwords and message contents left out) and a
//! row in the store, linked to the envelopes of the messages it gave. A
//! session that never asked to send (no MAIL) and was never refused leaves
//! nothing: health checks and port scans do not fill the store.

use std::net::SocketAddr;

/// Said once when the transcript reaches its limit.
const CUT: &[u8] = b"[transcript cut: limit reached]\r\n";

pub(crate) struct SessionRecord {
    pub start: store::SmtpSessionStart,
    /// The store's row, once a message made one.
    pub id: Option<store::SmtpSessionId>,
    transcript: Vec<u8>,
    limit: usize,
    cut: bool,
    /// Replies with a 4xx or 5xx code.
    pub refusals: u32,
    /// MAIL was given, or something refused: worth keeping.
    pub keep: bool,
}

impl SessionRecord {
    pub fn new(peer: SocketAddr, role: &str, limit: usize) -> SessionRecord {
        SessionRecord {
            start: store::SmtpSessionStart {
                client: peer.to_string(),
                role: role.to_owned(),
                started_at: chrono::Utc::now().timestamp(),
            },
            id: None,
            transcript: Vec::new(),
            limit,
            cut: false,
            refusals: 0,
            keep: false,
        }
    }

    fn push(&mut self, prefix: &[u8], line: &[u8]) {
        if self.cut {
            return;
        }
        if self.transcript.len() + prefix.len() + line.len() + 2 > self.limit {
            self.cut = true;
            self.transcript.extend_from_slice(CUT);
            return;
        }
        self.transcript.extend_from_slice(prefix);
        self.transcript.extend_from_slice(line);
        self.transcript.extend_from_slice(b"\r\n");
    }

    /// A command line as the client sent it (without its line end), with
    /// any credentials on an AUTH line masked.
    pub fn command(&mut self, line: &[u8]) {
        let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if words.len() > 2 && words[0].eq_ignore_ascii_case(b"AUTH") {
            let masked = [words[0], b" ", words[1], b" ****"].concat();
            self.push(b"C: ", &masked);
        } else {
            self.push(b"C: ", line);
        }
    }

    /// What the client sent that is not recorded as written: a SASL
    /// response, the message itself.
    pub fn client_note(&mut self, note: &str) {
        self.push(b"C: ", note.as_bytes());
    }

    /// A note of the server's own (a TLS handshake done).
    pub fn server_note(&mut self, note: &str) {
        self.push(b"   ", note.as_bytes());
    }

    /// A reply as written to the client (one or more CRLF lines).
    pub fn reply(&mut self, bytes: &[u8], refused: bool) {
        if refused {
            self.refusals += 1;
            self.keep = true;
        }
        for line in bytes.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                self.push(b"S: ", line);
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_the_limit_holds() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut r = SessionRecord::new(peer, "smtp", 120);
        r.command(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==");
        r.command(b"AUTH LOGIN");
        r.reply(b"334 VXNlcm5hbWU6\r\n", false);
        r.client_note("****");
        r.reply(b"535 5.7.8 Authentication failed\r\n", true);
        let text = r.text();
        assert!(!text.contains("AGFsaWNl"), "{text}");
        assert!(
            text.starts_with("C: AUTH PLAIN ****\r\nC: AUTH LOGIN\r\n"),
            "{text}"
        );
        assert_eq!(r.refusals, 1);
        assert!(r.keep);
        for _ in 0..10 {
            r.command(b"NOOP");
        }
        let text = r.text();
        assert!(
            text.ends_with("[transcript cut: limit reached]\r\n"),
            "{text}"
        );
        assert!(text.len() <= 120 + CUT.len());
    }

    #[test]
    fn multi_line_replies_are_split() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut r = SessionRecord::new(peer, "smtp", 1000);
        r.reply(b"250-mx hello\r\n250-PIPELINING\r\n250 HELP\r\n", false);
        assert_eq!(
            r.text(),
            "S: 250-mx hello\r\nS: 250-PIPELINING\r\nS: 250 HELP\r\n"
        );
        assert!(!r.keep);
    }
}
