//! SMTP replies: one type that carries the reply code, the enhanced status
//! code (RFC 3463) and the text, and the replies smtpd uses, named.
//!
//! These are what smtpd says; what a remote server says to the relay
//! client is [`crate::relay::Reply`], and a delivery's failure, whoever
//! found it, is a [`crate::status::SmtpError`].

use std::fmt::Write as _;

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.1.1`; `None` only for the greeting
    /// and replies before ENHANCEDSTATUSCODES applies.
    pub status: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (the greeting, EHLO, 354).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: None,
            lines: vec![text.into()],
        }
    }

    pub fn multiline(code: u16, status: Option<&'static str>, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status,
            lines,
        }
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Writes the reply as it goes on the wire, CRLF-terminated lines.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut text = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let _ = write!(text, "{}{}", self.code, sep);
            if let Some(status) = self.status {
                let _ = write!(text, "{status} ");
            }
            // Never let text inject a line break into the reply.
            for ch in line.chars() {
                text.push(if ch == '\r' || ch == '\n' { ' ' } else { ch });
            }
            text.push_str("\r\n");
        }
        if self.lines.is_empty() {
            let _ = write!(text, "{} ", self.code);
            if let Some(status) = self.status {
                let _ = write!(text, "{status}");
            }
            text.push_str("\r\n");
        }
        out.extend_from_slice(text.as_bytes());
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(String::from_utf8_lossy(&out).trim_end())
    }
}

// The replies, by the situation they answer. Texts follow Postfix's where
// clients and people are used to them.

/// Is `code` an enhanced status code (RFC 3463): `2`, `4` or `5`, then
/// two numbers of one to three digits, dot-separated, such as `5.1.1`?
pub fn is_enhanced_status(code: &str) -> bool {
    crate::status::EnhancedStatus::parse(code).is_some()
}

pub fn ok() -> Reply {
    Reply::new(250, "2.0.0", "Ok")
}
pub fn sender_ok() -> Reply {
    Reply::new(250, "2.1.0", "Sender ok")
}
pub fn recipient_ok() -> Reply {
    Reply::new(250, "2.1.5", "Recipient ok")
}
pub fn queued(id: impl std::fmt::Display) -> Reply {
    Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
}
pub fn bye() -> Reply {
    Reply::new(221, "2.0.0", "Bye")
}
pub fn start_data() -> Reply {
    Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
}
pub fn ready_for_tls() -> Reply {
    Reply::new(220, "2.0.0", "Ready to start TLS")
}
pub fn vrfy() -> Reply {
    Reply::new(
        252,
        "2.0.0",
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}
pub fn auth_ok() -> Reply {
    Reply::new(235, "2.7.0", "Authentication successful")
}

pub fn syntax_unrecognized() -> Reply {
    Reply::new(500, "5.5.2", "Syntax error, command unrecognized")
}
/// A command line that is not valid UTF-8 (Postfix's words).
pub fn bad_utf8() -> Reply {
    Reply::new(500, "5.5.2", "Error: bad UTF-8 syntax")
}
pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Line too long")
}
pub fn syntax(usage: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Syntax: {usage}"))
}
pub fn not_implemented() -> Reply {
    Reply::new(502, "5.5.1", "Command not implemented")
}
pub fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text.to_string())
}
pub fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
}
pub fn invalid_parameter(param: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
}
/// A DSN parameter (RFC 3461) that is malformed or given twice, in
/// Postfix's words.
pub fn bad_dsn_parameter(name: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Bad {name} parameter syntax"))
}
pub fn bad_sender_address() -> Reply {
    Reply::new(501, "5.1.7", "Bad sender address syntax")
}
pub fn bad_recipient_address() -> Reply {
    Reply::new(501, "5.1.3", "Bad recipient address syntax")
}
pub fn smtputf8_required() -> Reply {
    Reply::new(
        553,
        "5.6.7",
        "Non-ASCII address needs MAIL FROM ... SMTPUTF8",
    )
}
pub fn message_too_big() -> Reply {
    Reply::new(
        552,
        "5.3.4",
        "Message size exceeds fixed maximum message size",
    )
}
pub fn too_many_recipients() -> Reply {
    Reply::new(452, "4.5.3", "Too many recipients")
}
pub fn unknown_user(address: &str) -> Reply {
    Reply::new(
        550,
        "5.1.1",
        format!("<{address}>: Recipient address rejected: User unknown in local recipient table"),
    )
}
pub fn relay_denied(address: &str) -> Reply {
    Reply::new(554, "5.7.1", format!("<{address}>: Relay access denied"))
}
pub fn too_many_hops(hops: usize) -> Reply {
    Reply::new(
        554,
        "5.4.6",
        format!("Message refused: too many hops ({hops} Received headers); mail loop?"),
    )
}
pub fn unroutable(address: &str) -> Reply {
    Reply::new(
        553,
        "5.1.2",
        format!("<{address}>: Recipient address rejected: domain cannot be routed"),
    )
}
pub fn sender_login_mismatch(sender: &str, login: &str) -> Reply {
    Reply::new(
        553,
        "5.7.1",
        format!("<{sender}>: Sender address rejected: not owned by user {login}"),
    )
}
pub fn bare_newline() -> Reply {
    Reply::new(
        550,
        "5.5.2",
        "Message rejected: bare <LF> or <CR> received; lines must end with <CR><LF> (RFC 5321 2.3.8)",
    )
}
pub fn auth_required() -> Reply {
    Reply::new(530, "5.7.0", "Authentication required")
}
pub fn auth_not_enabled() -> Reply {
    Reply::new(
        503,
        "5.5.1",
        "Authentication not enabled on this port; use submission",
    )
}
pub fn encryption_required() -> Reply {
    Reply::new(
        538,
        "5.7.11",
        "Encryption required for requested authentication mechanism",
    )
}
pub fn auth_mechanism_unknown() -> Reply {
    Reply::new(504, "5.5.4", "Unrecognized authentication type")
}
pub fn auth_failed() -> Reply {
    Reply::new(535, "5.7.8", "Authentication credentials invalid")
}
pub fn auth_cancelled() -> Reply {
    Reply::new(501, "5.0.0", "Authentication cancelled")
}
pub fn auth_malformed() -> Reply {
    Reply::new(501, "5.5.2", "Cannot decode authentication response")
}
pub fn temporary_failure() -> Reply {
    Reply::new(451, "4.3.0", "Temporary failure, please try again later")
}
/// A store failure: `452 4.3.1` (Postfix's words) when the disk or the
/// store is full, else [`temporary_failure`]. Both are temporary: nothing
/// was taken, and the client tries again.
pub fn store_failure(e: &store::StoreError) -> Reply {
    if e.is_full() {
        Reply::new(452, "4.3.1", "Insufficient system storage")
    } else {
        temporary_failure()
    }
}
pub fn too_many_errors() -> Reply {
    Reply::new(421, "4.7.0", "Too many errors, closing connection")
}
pub fn too_many_auth_failures() -> Reply {
    Reply::new(
        421,
        "4.7.0",
        "Too many failed authentications, closing connection",
    )
}
pub fn timeout() -> Reply {
    Reply::new(421, "4.4.2", "Timeout exceeded, closing connection")
}
pub fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "Service shutting down, closing connection")
}
pub fn too_many_connections() -> Reply {
    Reply::new(421, "4.7.0", "Too many connections, try again later")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_line_with_enhanced_code() {
        assert_eq!(wire(&ok()), "250 2.0.0 Ok\r\n");
    }

    #[test]
    fn multiline_uses_dashes_until_the_last() {
        let r = Reply::multiline(250, None, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(wire(&r), "250-a\r\n250-b\r\n250 c\r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let r = unknown_user("x\r\n250 fake@localhost");
        assert_eq!(wire(&r).matches("\r\n").count(), 1);
    }
}
