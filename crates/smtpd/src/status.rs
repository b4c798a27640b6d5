//! Delivery outcomes as types: the enhanced status code (RFC 3463; the
//! type is [`common::enhanced_status`]'s, since failure rules carry it
//! too) and the one error a failed recipient carries from whoever found the failure
//! (the queue manager's lookups, the relay client's session) to the queue
//! (deferred or bounced) and into the sender's report ([`crate::bounce`]).
//!
//! Nothing here is parsed back out of text: the status, whether it is
//! temporary, and the server's reply travel as fields. The queue keeps a
//! recipient's last error as the text [`SmtpError`] displays
//! (`5.1.1 host … said: …`), for people and `postern queue`; nothing reads
//! it back to decide anything.
//!
//! How this relates to the two reply types: [`crate::reply::Reply`] is
//! what smtpd says to its clients; [`crate::relay::Reply`] is what a
//! remote server said to us. Both read their enhanced status code as an
//! [`EnhancedStatus`]; a remote reply that decides a recipient's fate
//! becomes an [`SmtpError`] ([`SmtpError::from_reply`]) with the reply kept
//! whole, so a report quotes it as it came.

use std::fmt;

use crate::relay::Reply;

pub use common::enhanced_status::EnhancedStatus;

/// The remote server behind an outcome, as a report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The host by the name it was reached by (its address, for a hop
    /// given as one): `Remote-MTA: dns; …`.
    pub mta: String,
    /// Its reply, when a reply decided: `Diagnostic-Code: smtp; …`.
    pub reply: Option<Reply>,
}

/// Why a recipient was not delivered this time (maddy's `SMTPError`):
/// the status, whether trying again may help, the reason in words, and the
/// server that decided with what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpError {
    /// The server's own enhanced status when it gave one, else ours.
    pub status: EnhancedStatus,
    /// Defer and try again (true), or bounce. Not always the status's
    /// class: a refused AUTH or STARTTLS (5xx) is ours to fix, so deferred,
    /// and a temporary failure that outlives the queue is bounced as it
    /// stands.
    pub temporary: bool,
    /// What happened, for the log, the queue's last error and the report's
    /// text: `host mx[192.0.2.1]:25 said: 550 5.1.1 … (in reply to RCPT
    /// TO)`, `user unknown in local recipient table`.
    pub reason: String,
    /// The server that decided, and its reply if one did.
    pub remote: Option<Remote>,
}

impl SmtpError {
    /// A failure found here, with no server's word in it; temporary when
    /// `status` is 4.x.x.
    pub fn local(status: EnhancedStatus, reason: impl Into<String>) -> SmtpError {
        SmtpError {
            temporary: status.class() == 4,
            status,
            reason: reason.into(),
            remote: None,
        }
    }

    /// A failure of our own store while the queue works on a message
    /// (`what` it was doing, for the reason): always deferred, whatever
    /// [`store::StoreError::is_temporary`] says, because the message is
    /// already accepted and such a failure says nothing about the
    /// recipient; the queue's lifetime bounds the retries. `4.3.1` (mail
    /// system full) when the store is full, else `4.3.0`. The reason
    /// names no internals (it may reach the sender in a delay report); the
    /// caller logs the error itself.
    pub fn store(e: &store::StoreError, what: &str) -> SmtpError {
        let (status, reason) = if e.is_full() {
            (
                EnhancedStatus::temporary(3, 1),
                format!("{what}: insufficient system storage"),
            )
        } else {
            (
                EnhancedStatus::temporary(3, 0),
                format!("temporary {what} failure"),
            )
        };
        SmtpError::local(status, reason)
    }

    /// A recipient refused with `reply` by `mta`: temporary or permanent
    /// by its code, its enhanced status if it sent one (else `4.0.0` or
    /// `5.0.0`), `reason` the words a report says around it.
    pub fn from_reply(mta: &str, reply: &Reply, reason: String) -> SmtpError {
        SmtpError {
            status: status_for(Some(reply), !reply.is_permanent()),
            temporary: !reply.is_permanent(),
            reason,
            remote: Some(Remote {
                mta: mta.to_string(),
                reply: Some(reply.clone()),
            }),
        }
    }

    /// Adds that the message outlived its time in the queue: bounced now,
    /// with its last status, and no server named (none decided).
    pub fn expired(self, lifetime_secs: u64) -> SmtpError {
        SmtpError {
            reason: format!(
                "{}; message expired after {lifetime_secs} s in the queue",
                self.reason
            ),
            temporary: false,
            remote: None,
            ..self
        }
    }

    /// The server's reply, when one decided.
    pub fn reply(&self) -> Option<&Reply> {
        self.remote.as_ref().and_then(|r| r.reply.as_ref())
    }
}

/// The status of a failure with `reply` (if a reply decided): the reply's
/// own enhanced status code, else one by its class (`4.0.0`, `5.0.0`);
/// with no reply (or one of no failure class), `4.4.1` or `5.4.1` (no
/// answer from the host, RFC 3463) as `temporary` says.
pub fn status_for(reply: Option<&Reply>, temporary: bool) -> EnhancedStatus {
    if let Some(status) = reply.and_then(Reply::enhanced_code) {
        return status;
    }
    match reply.map(|r| r.code) {
        Some(500..=599) => EnhancedStatus::permanent(0, 0),
        Some(400..=499) => EnhancedStatus::temporary(0, 0),
        _ if temporary => EnhancedStatus::temporary(4, 1),
        _ => EnhancedStatus::permanent(4, 1),
    }
}

/// `5.1.1 user unknown in local recipient table`: the queue's last error.
impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for SmtpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_replies_keep_the_servers_words() {
        let reply = Reply {
            code: 550,
            text: "5.1.1 no such user".into(),
        };
        let e = SmtpError::from_reply("mx.example.org", &reply, "host said no".into());
        assert_eq!(e.status.as_str(), "5.1.1");
        assert!(!e.temporary);
        assert_eq!(e.reply(), Some(&reply));
        assert_eq!(e.to_string(), "5.1.1 host said no");

        let busy = Reply {
            code: 451,
            text: "try later".into(),
        };
        let e = SmtpError::from_reply("mx.example.org", &busy, "busy".into());
        assert_eq!((e.status.as_str(), e.temporary), ("4.0.0", true));
        let e = e.expired(432_000);
        assert_eq!(
            e.to_string(),
            "4.0.0 busy; message expired after 432000 s in the queue"
        );
        assert!(!e.temporary);
        assert_eq!(e.remote, None);

        let e = SmtpError::local(EnhancedStatus::temporary(3, 0), "lookup failed");
        assert!(e.temporary);
        let e = SmtpError::local(EnhancedStatus::permanent(1, 2), "no route");
        assert!(!e.temporary);

        // The store's failures defer, whatever they are; full says so.
        let full = SmtpError::store(&store::StoreError::Full("disk".into()), "local delivery");
        assert_eq!((full.status.as_str(), full.temporary), ("4.3.1", true));
        let gone = SmtpError::store(
            &store::StoreError::NotFound("queued message 7".into()),
            "queue",
        );
        assert_eq!((gone.status.as_str(), gone.temporary), ("4.3.0", true));
        assert_eq!(gone.to_string(), "4.3.0 temporary queue failure");
        assert_eq!(
            full.to_string(),
            "4.3.1 local delivery: insufficient system storage"
        );
    }
}
