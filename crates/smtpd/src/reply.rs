//! SMTP replies: one type that carries the reply code, the enhanced status
//! code (RFC 3463) and the text, and the replies smtpd uses, named.
//!
//! These are what smtpd says; what a remote server says to the relay
//! client is [`crate::relay::Reply`], and a delivery's failure, whoever
//! found it, is a [`crate::status::SmtpError`].

use std::fmt::Write as _;

use crate::status::EnhancedStatus;
// Short, for the table of replies below.
use crate::status::EnhancedStatus as S;

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.1.1`; `None` only for the greeting
    /// and replies before ENHANCEDSTATUSCODES applies.
    pub status: Option<EnhancedStatus>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: EnhancedStatus, text: impl Into<String>) -> Reply {
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

    pub fn multiline(code: u16, status: Option<EnhancedStatus>, lines: Vec<String>) -> Reply {
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
            if let Some(status) = &self.status {
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
            if let Some(status) = &self.status {
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

pub fn ok() -> Reply {
    Reply::new(250, S::success(0, 0), "Ok")
}
pub fn sender_ok() -> Reply {
    Reply::new(250, S::success(1, 0), "Sender ok")
}
pub fn recipient_ok() -> Reply {
    Reply::new(250, S::success(1, 5), "Recipient ok")
}
pub fn queued(id: impl std::fmt::Display) -> Reply {
    Reply::new(250, S::success(0, 0), format!("Ok: queued as {id}"))
}
/// A `BDAT` chunk that is not the last one.
pub fn chunk_received(size: usize) -> Reply {
    Reply::new(250, S::success(0, 0), format!("{size} bytes received"))
}
/// Capture mode's `250`: the messages stored, by arrival number.
pub fn captured(arrivals: &[u64]) -> Reply {
    let ids: Vec<String> = arrivals.iter().map(u64::to_string).collect();
    Reply::new(
        250,
        S::success(0, 0),
        format!("Ok: captured as {}", ids.join(" ")),
    )
}
pub fn help() -> Reply {
    Reply::multiline(
        214,
        Some(S::success(0, 0)),
        vec![
            "Postern SMTP; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH".to_string(),
            "See RFC 5321".to_string(),
        ],
    )
}
pub fn bye() -> Reply {
    Reply::new(221, S::success(0, 0), "Bye")
}
pub fn start_data() -> Reply {
    Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
}
pub fn ready_for_tls() -> Reply {
    Reply::new(220, S::success(0, 0), "Ready to start TLS")
}
pub fn vrfy() -> Reply {
    Reply::new(
        252,
        S::success(0, 0),
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}
pub fn auth_ok() -> Reply {
    Reply::new(235, S::success(7, 0), "Authentication successful")
}

pub fn syntax_unrecognized() -> Reply {
    Reply::new(
        500,
        S::permanent(5, 2),
        "Syntax error, command unrecognized",
    )
}
/// A command line that is not valid UTF-8 (Postfix's words).
pub fn bad_utf8() -> Reply {
    Reply::new(500, S::permanent(5, 2), "Error: bad UTF-8 syntax")
}
pub fn line_too_long() -> Reply {
    Reply::new(500, S::permanent(5, 2), "Line too long")
}
pub fn syntax(usage: &str) -> Reply {
    Reply::new(501, S::permanent(5, 4), format!("Syntax: {usage}"))
}
pub fn not_implemented() -> Reply {
    Reply::new(502, S::permanent(5, 1), "Command not implemented")
}
pub fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, S::permanent(5, 1), text.to_string())
}
pub fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(
        555,
        S::permanent(5, 4),
        format!("Unsupported parameter {param}"),
    )
}
pub fn invalid_parameter(param: &str) -> Reply {
    Reply::new(
        501,
        S::permanent(5, 4),
        format!("Invalid parameter {param}"),
    )
}
/// A DSN parameter (RFC 3461) that is malformed or given twice, in
/// Postfix's words.
pub fn bad_dsn_parameter(name: &str) -> Reply {
    Reply::new(
        501,
        S::permanent(5, 4),
        format!("Bad {name} parameter syntax"),
    )
}
pub fn bad_sender_address() -> Reply {
    Reply::new(501, S::permanent(1, 7), "Bad sender address syntax")
}
pub fn bad_recipient_address() -> Reply {
    Reply::new(501, S::permanent(1, 3), "Bad recipient address syntax")
}
pub fn smtputf8_required() -> Reply {
    Reply::new(
        553,
        S::permanent(6, 7),
        "Non-ASCII address needs MAIL FROM ... SMTPUTF8",
    )
}
pub fn message_too_big() -> Reply {
    Reply::new(
        552,
        S::permanent(3, 4),
        "Message size exceeds fixed maximum message size",
    )
}
pub fn no_valid_recipients() -> Reply {
    Reply::new(554, S::permanent(5, 1), "No valid recipients")
}
pub fn too_many_recipients() -> Reply {
    Reply::new(452, S::temporary(5, 3), "Too many recipients")
}
pub fn unknown_user(address: &str) -> Reply {
    Reply::new(
        550,
        S::permanent(1, 1),
        format!("<{address}>: Recipient address rejected: User unknown in local recipient table"),
    )
}
/// A local recipient whose quota is used up (RFC 9208), refused at RCPT
/// for now: `452 4.2.2`, as Postfix passes on Dovecot's LMTP with
/// `quota_full_tempfail`; the client may try again once room is made.
pub fn mailbox_full(address: &str) -> Reply {
    Reply::new(
        452,
        S::temporary(2, 2),
        format!("<{address}>: Mailbox full"),
    )
}
pub fn relay_denied(address: &str) -> Reply {
    Reply::new(
        554,
        S::permanent(7, 1),
        format!("<{address}>: Relay access denied"),
    )
}
pub fn too_many_hops(hops: usize) -> Reply {
    Reply::new(
        554,
        S::permanent(4, 6),
        format!("Message refused: too many hops ({hops} Received headers); mail loop?"),
    )
}
pub fn unroutable(address: &str) -> Reply {
    Reply::new(
        553,
        S::permanent(1, 2),
        format!("<{address}>: Recipient address rejected: domain cannot be routed"),
    )
}
pub fn sender_login_mismatch(sender: &str, login: &str) -> Reply {
    Reply::new(
        553,
        S::permanent(7, 1),
        format!("<{sender}>: Sender address rejected: not owned by user {login}"),
    )
}
pub fn bare_newline() -> Reply {
    Reply::new(
        550,
        S::permanent(5, 2),
        "Message rejected: bare <LF> or <CR> received; lines must end with <CR><LF> (RFC 5321 2.3.8)",
    )
}
pub fn auth_required() -> Reply {
    Reply::new(530, S::permanent(7, 0), "Authentication required")
}
pub fn auth_not_enabled() -> Reply {
    Reply::new(
        503,
        S::permanent(5, 1),
        "Authentication not enabled on this port; use submission",
    )
}
pub fn encryption_required() -> Reply {
    Reply::new(
        538,
        S::permanent(7, 11),
        "Encryption required for requested authentication mechanism",
    )
}
pub fn auth_mechanism_unknown() -> Reply {
    Reply::new(504, S::permanent(5, 4), "Unrecognized authentication type")
}
/// The store could not check the credentials: RFC 4954's `454 4.7.0`
/// when trying again may work, else [`store_failure`]'s answer.
pub fn auth_unavailable(e: &store::StoreError) -> Reply {
    if e.is_temporary() {
        Reply::new(454, S::temporary(7, 0), "Temporary authentication failure")
    } else {
        store_failure(e)
    }
}
pub fn auth_failed() -> Reply {
    Reply::new(
        535,
        S::permanent(7, 8),
        "Authentication credentials invalid",
    )
}
pub fn auth_cancelled() -> Reply {
    Reply::new(501, S::permanent(0, 0), "Authentication cancelled")
}
pub fn auth_malformed() -> Reply {
    Reply::new(
        501,
        S::permanent(5, 2),
        "Cannot decode authentication response",
    )
}
/// A store failure, by [`store::StoreError::is_full`] and
/// [`store::StoreError::is_temporary`] alone (the table of every daemon's
/// answers is on the latter): `452 4.3.1` in Postfix's words when the disk
/// or the store is full, `451 4.3.0` for other temporary failures, and
/// `554 5.3.0` for permanent ones; `552 5.2.2` for an account's quota.
///
/// A `5xx` is safe here because nothing was accepted: a store failure at
/// MAIL or RCPT refuses that command, and at the end of DATA it means the
/// message was neither queued nor captured, so the client still holds it
/// and reports the failure to its sender itself; no mail is lost in
/// silence. A temporary failure makes the client try again instead.
pub fn store_failure(e: &store::StoreError) -> Reply {
    if e.is_over_quota() {
        Reply::new(552, S::permanent(2, 2), "Mailbox full")
    } else if e.is_full() {
        Reply::new(452, S::temporary(3, 1), "Insufficient system storage")
    } else if e.is_temporary() {
        Reply::new(
            451,
            S::temporary(3, 0),
            "Temporary failure, please try again later",
        )
    } else {
        Reply::new(554, S::permanent(3, 0), "Mail system failure, not accepted")
    }
}
pub fn too_many_errors() -> Reply {
    Reply::new(
        421,
        S::temporary(7, 0),
        "Too many errors, closing connection",
    )
}
pub fn too_many_auth_failures() -> Reply {
    Reply::new(
        421,
        S::temporary(7, 0),
        "Too many failed authentications, closing connection",
    )
}
pub fn timeout() -> Reply {
    Reply::new(
        421,
        S::temporary(4, 2),
        "Timeout exceeded, closing connection",
    )
}
pub fn shutting_down() -> Reply {
    Reply::new(
        421,
        S::temporary(3, 2),
        "Service shutting down, closing connection",
    )
}
pub fn too_many_connections() -> Reply {
    Reply::new(
        421,
        S::temporary(7, 0),
        "Too many connections, try again later",
    )
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
    fn store_failures_follow_the_stores_classification() {
        use store::StoreError as E;
        let answers = [
            (
                E::Full("disk".into()),
                "452 4.3.1 Insufficient system storage\r\n",
            ),
            (
                E::Database("database is locked".into()),
                "451 4.3.0 Temporary failure, please try again later\r\n",
            ),
            (
                E::Io(std::io::Error::other("EIO")),
                "451 4.3.0 Temporary failure, please try again later\r\n",
            ),
            (
                E::Closed,
                "451 4.3.0 Temporary failure, please try again later\r\n",
            ),
            (
                E::NotFound("account a@localhost".into()),
                "554 5.3.0 Mail system failure, not accepted\r\n",
            ),
            (
                E::Invalid("recipients".into()),
                "554 5.3.0 Mail system failure, not accepted\r\n",
            ),
            (
                E::SchemaTooNew {
                    found: 9,
                    supported: 1,
                },
                "554 5.3.0 Mail system failure, not accepted\r\n",
            ),
        ];
        for (e, expected) in answers {
            let reply = store_failure(&e);
            assert_eq!(wire(&reply), expected, "{e}");
            assert_eq!(reply.is_permanent(), !e.is_temporary(), "{e}");
            // The code and the enhanced status agree on the class.
            let status = reply.status.as_ref().unwrap();
            assert_eq!(u16::from(status.class()), reply.code / 100, "{e}");
        }
    }

    #[test]
    fn text_cannot_inject_lines() {
        let r = unknown_user("x\r\n250 fake@localhost");
        assert_eq!(wire(&r).matches("\r\n").count(), 1);
    }
}
