//! The outbound side: how the queue manager reaches other mail servers.
//!
//! - [`route`] decides where mail for a domain goes: the `[relay]`
//!   transport table, then the smarthost, then MX records (RFC 5321
//!   section 5), as a list of [`Hop`]s to try in order.
//! - [`client`] runs one SMTP session to one hop: greeting, EHLO, STARTTLS
//!   (RFC 3207) as the hop's TLS policy says, AUTH (RFC 4954) when the
//!   transport has credentials, then as many transactions as the caller
//!   sends, pipelined when the server offers PIPELINING (RFC 2920).
//!
//! Neither decides what a failure means for a message: they report
//! temporary or permanent, with the remote server's words, and the queue
//! manager defers or bounces.

pub mod client;
pub mod route;

pub use client::{
    describe_reply, BodyParam, Capabilities, Client, Delivery, Envelope, Failure, FailureKind,
    RecipientResult, Reply, Stage, Timeouts,
};
pub use route::{Hop, RouteError, Router};
