//! `imapd` — Postern's IMAP daemon.
//!
//! What exists so far is the grammar, [`protocol`]: a resumable command
//! parser (RFC 3501 and the extensions Thunderbird and mbsync use, with
//! synchronising literals and LITERAL+), and response encoding (strings as
//! atom, quoted or literal; status responses with response codes; dates;
//! modified UTF-7 mailbox names). It does no I/O and knows no store.
//!
//! What comes next: the session (a state enum over a generic stream, an
//! ingest step that drains pipelined commands through
//! [`protocol::parse_command`]), one handler module per command family over
//! the `store` crate, the listener and binary, then CONDSTORE/QRESYNC
//! responses and IMAP4rev2.
//!
//! Security stance: every input size is bounded by
//! [`protocol::Limits`]; the parser never panics on any input; passwords are
//! held in [`protocol::Secret`], which never prints.

#![forbid(unsafe_code)]

pub mod protocol;
