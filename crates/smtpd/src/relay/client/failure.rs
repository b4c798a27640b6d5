//! What went wrong in a session: where ([`Stage`]), what ([`FailureKind`]),
//! and whether trying again may help ([`Failure::is_temporary`]).

use std::fmt;

use super::reply::{describe_reply, Reply};
use crate::status::{status_for, Remote, SmtpError};

/// Where in the session something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// Writing the message.
    Body,
    /// Waiting for the reply to the final dot.
    EndOfData,
    Rset,
    Quit,
}

impl Stage {
    /// The command a reply answered, for "(in reply to …)".
    pub fn command(self) -> &'static str {
        match self {
            Stage::Connect | Stage::Greeting => "the initial greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Body | Stage::EndOfData => "end of DATA",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        }
    }

    /// What we were doing, for "lost connection … while …".
    pub fn activity(self) -> &'static str {
        match self {
            Stage::Connect => "connecting",
            Stage::Greeting => "receiving the initial server greeting",
            Stage::Ehlo => "performing the EHLO handshake",
            Stage::StartTls => "performing the TLS handshake",
            Stage::Auth => "authenticating",
            Stage::Mail => "sending MAIL FROM",
            Stage::Rcpt => "sending RCPT TO",
            Stage::Data => "sending DATA",
            Stage::Body => "sending message body",
            Stage::EndOfData => {
                "waiting for the reply to end of DATA (the message may be delivered twice)"
            }
            Stage::Rset => "sending RSET",
            Stage::Quit => "sending QUIT",
        }
    }
}

/// What went wrong, beyond the stage and the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The TCP connection could not be made.
    Connect(String),
    /// The server refused (or answered something we did not expect).
    Reply(Reply),
    /// The server closed the connection.
    Closed,
    /// No reply, or no progress writing, within the time limit.
    TimedOut,
    /// A read or write failed.
    Io(String),
    /// The server's reply made no sense.
    Protocol(String),
    /// TLS was required and could not be had, or the handshake failed.
    Tls(String),
    /// We will not go on, for a reason of our own (no way to
    /// authenticate, credentials without TLS, SMTPUTF8 not offered, message
    /// too big for the server).
    Refused { reason: String, permanent: bool },
}

/// A session or transaction that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `host[ip]:port`.
    pub peer: String,
    pub stage: Stage,
    pub kind: FailureKind,
}

impl Failure {
    /// Whether trying again later (or at another hop) may work.
    pub fn is_temporary(&self) -> bool {
        match &self.kind {
            // Postfix's soft bounce for AUTH and TLS: a rejected login or
            // STARTTLS is the sender's configuration to fix, not the
            // recipient's address to bounce.
            FailureKind::Reply(reply) => {
                !reply.is_permanent() || matches!(self.stage, Stage::Auth | Stage::StartTls)
            }
            FailureKind::Refused { permanent, .. } => !permanent,
            _ => true,
        }
    }

    /// The server's reply, when the failure is one.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.kind {
            FailureKind::Reply(reply) => Some(reply),
            _ => None,
        }
    }

    /// What this failure means for every recipient of the transaction:
    /// the server's status (else one by its code, else no answer from the
    /// host, `4.4.1`/`5.4.1`), temporary as [`Failure::is_temporary`]
    /// says, and `host` (the hop by the name it was reached by) with its
    /// reply when a reply decided.
    pub fn to_error(&self, host: &str) -> SmtpError {
        let temporary = self.is_temporary();
        SmtpError {
            status: status_for(self.reply(), temporary),
            temporary,
            reason: self.to_string(),
            remote: self.reply().map(|reply| Remote {
                mta: host.to_string(),
                reply: Some(reply.clone()),
            }),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = &self.peer;
        let activity = self.stage.activity();
        match &self.kind {
            FailureKind::Connect(why) => write!(f, "connect to {peer}: {why}"),
            FailureKind::Reply(reply) if self.stage == Stage::Greeting => {
                write!(f, "host {peer} refused to talk to me: {reply}")
            }
            FailureKind::Reply(reply) => f.write_str(&describe_reply(peer, reply, self.stage)),
            FailureKind::Closed => write!(f, "lost connection with {peer} while {activity}"),
            FailureKind::TimedOut => {
                write!(f, "conversation with {peer} timed out while {activity}")
            }
            FailureKind::Io(why) => {
                write!(f, "lost connection with {peer} while {activity}: {why}")
            }
            FailureKind::Protocol(why) => {
                write!(f, "protocol error with {peer} while {activity}: {why}")
            }
            FailureKind::Tls(why) => write!(f, "TLS with {peer} failed: {why}"),
            FailureKind::Refused { reason, .. } => write!(f, "{reason} ({peer})"),
        }
    }
}

impl std::error::Error for Failure {}

/// "Connection refused", without the "(os error 111)" that a bounce's
/// reader has no use for.
pub(super) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

pub(super) fn io_failure(e: &std::io::Error) -> FailureKind {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => FailureKind::Closed,
        _ => FailureKind::Io(io_reason(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_well() {
        let reply = Reply {
            code: 550,
            text: "5.7.1 relaying denied".into(),
        };
        let f = Failure {
            peer: "mx.example.org[192.0.2.1]:25".into(),
            stage: Stage::Mail,
            kind: FailureKind::Reply(reply.clone()),
        };
        assert_eq!(
            f.to_string(),
            "host mx.example.org[192.0.2.1]:25 said: 550 5.7.1 relaying denied (in reply to MAIL FROM)"
        );
        assert!(!f.is_temporary());
        assert_eq!(f.reply(), Some(&reply));
        let error = f.to_error("mx.example.org");
        assert_eq!(
            error.to_string(),
            "5.7.1 host mx.example.org[192.0.2.1]:25 said: 550 5.7.1 relaying denied (in reply to MAIL FROM)"
        );
        assert!(!error.temporary);
        assert_eq!(error.remote.as_ref().unwrap().mta, "mx.example.org");
        assert_eq!(error.reply(), Some(&reply));
        let f = Failure {
            stage: Stage::Body,
            kind: FailureKind::Closed,
            ..f
        };
        assert_eq!(
            f.to_string(),
            "lost connection with mx.example.org[192.0.2.1]:25 while sending message body"
        );
        assert!(f.is_temporary());
        let error = f.to_error("mx.example.org");
        assert_eq!((error.status.as_str(), error.temporary), ("4.4.1", true));
        assert_eq!(error.remote, None);
        let auth = Failure {
            stage: Stage::Auth,
            kind: FailureKind::Reply(Reply {
                code: 535,
                text: "5.7.8 bad credentials".into(),
            }),
            ..f
        };
        assert!(auth.is_temporary());
        // A refused login is deferred, with the server's own status.
        let error = auth.to_error("mx.example.org");
        assert_eq!((error.status.as_str(), error.temporary), ("5.7.8", true));
    }
}
