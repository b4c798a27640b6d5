//! The in-process event bus: what happened to mail that the store's change
//! counter does not say by itself. httpd publishes the changes made
//! through its API (messages read, unread, deleted) and smtpd publishes
//! the commands it refused; httpd's event stream (`/api/v1/events`) passes
//! them on to its clients. New messages are not published here: the event
//! stream reads them from the store, so that it sees other processes'
//! mail too.
//!
//! The bus is a bounded broadcast: a publisher never waits, and a
//! subscriber that falls more than the buffer behind is told how many
//! events it missed (`RecvError::Lagged`) and goes on from the newest.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::enhanced_status::EnhancedStatus;

/// Events kept for slow subscribers before the oldest are dropped.
pub const DEFAULT_CAPACITY: usize = 1024;

/// One copy of a message in one mailbox, as an event names it: its arrival
/// number (the HTTP API's message id) and the account it belongs to, so
/// that a subscriber can tell whether its caller may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    pub arrival: u64,
    /// The account's row id.
    pub account: i64,
    /// The account's address, lower-cased.
    pub address: String,
}

/// The SMTP stage at which a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpStage {
    /// The connection itself (the greeting was a refusal).
    Connect,
    /// HELO or EHLO.
    Helo,
    /// AUTH.
    Auth,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA or BDAT, including the reply after the message.
    Data,
}

/// A command smtpd answered with a 4xx or 5xx reply. Serialized as the
/// `rejected` event's JSON payload (httpd's crate documentation lists its
/// fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub stage: SmtpStage,
    /// The reply code, 400 to 599.
    pub code: u16,
    /// The enhanced status code (`5.1.1`), if the reply had one.
    pub enhanced_code: Option<EnhancedStatus>,
    /// The reply's text after the codes, lines joined with `\n`.
    pub text: String,
    /// The client's address and port, `127.0.0.1:51234`.
    pub client: String,
    /// `MAIL FROM` of the transaction, if one had been given (empty for
    /// `<>`).
    pub sender: Option<String>,
    /// The recipient refused at RCPT, if the stage is `rcpt`.
    pub recipient: Option<String>,
    /// The recorded SMTP session's id, once it has one.
    pub session: Option<i64>,
    /// When, in seconds since the Unix epoch.
    pub at: i64,
}

/// Something that happened to mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailEvent {
    /// Messages got `\Seen` (`read: true`) or lost it, through the API.
    Read {
        read: bool,
        messages: Vec<EventMessage>,
    },
    /// Messages were deleted through the API.
    Deleted { messages: Vec<EventMessage> },
    /// smtpd refused a command.
    Rejected(Rejection),
}

/// The bus itself. Cheap to clone; every clone publishes to the same
/// subscribers.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<MailEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(DEFAULT_CAPACITY)
    }
}

impl EventBus {
    /// A bus that keeps `capacity` events (at least one) for its slowest
    /// subscriber.
    pub fn new(capacity: usize) -> EventBus {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus { sender }
    }

    /// Hands the event to every current subscriber; never waits. Without
    /// subscribers it is dropped.
    pub fn publish(&self, event: MailEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// Events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<MailEvent>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deleted(arrival: u64) -> MailEvent {
        MailEvent::Deleted {
            messages: vec![EventMessage {
                arrival,
                account: 1,
                address: "a@x.test".into(),
            }],
        }
    }

    #[tokio::test]
    async fn subscribers_see_what_follows_and_laggards_are_told() {
        let bus = EventBus::new(2);
        bus.publish(deleted(1)); // nobody listens: dropped
        let mut rx = bus.subscribe();
        for n in 2..=5 {
            bus.publish(deleted(n));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(2))
        ));
        assert_eq!(*rx.recv().await.unwrap(), deleted(4));
        assert_eq!(*rx.recv().await.unwrap(), deleted(5));
    }

    #[test]
    fn rejection_payload_names() {
        let json = serde_json::to_value(Rejection {
            stage: SmtpStage::Rcpt,
            code: 550,
            enhanced_code: EnhancedStatus::parse("5.1.1"),
            text: "no such user".into(),
            client: "127.0.0.1:4000".into(),
            sender: Some("app@example.org".into()),
            recipient: Some("nobody@localhost".into()),
            session: Some(7),
            at: 1_700_000_000,
        })
        .unwrap();
        assert_eq!(json["stage"], "rcpt");
        assert_eq!(json["code"], 550);
        assert_eq!(json["enhanced_code"], "5.1.1");
        assert_eq!(json["recipient"], "nobody@localhost");
    }
}
