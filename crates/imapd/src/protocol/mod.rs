//! The IMAP grammar: client commands in, server responses out.
//!
//! [`parse_command`] turns buffered bytes into a [`Command`], asks for more
//! bytes, asks the caller to answer a synchronising literal, or reports a
//! protocol error with the tag and how many bytes to skip. The [`encode`]
//! module writes strings in the right form (atom, quoted or literal) and
//! status responses with their response codes. Nothing here does I/O.
//!
//! Standards: RFC 3501 (IMAP4rev1) with LITERAL+ (RFC 7888), SASL-IR (RFC
//! 4959), UIDPLUS (RFC 4315), MOVE (RFC 6851), IDLE (RFC 2177), NAMESPACE
//! (RFC 2342), ID (RFC 2971), ENABLE (RFC 5161), UNSELECT (RFC 3691),
//! LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE (RFC
//! 6154), BINARY (RFC 3516: `~{n}` literal8 and `BINARY[..]`), MULTIAPPEND
//! (RFC 3502), CATENATE (RFC 4469), REPLACE (RFC 8508), STATUS
//! `APPENDLIMIT` (RFC 7889) and `SIZE` (RFC 8438), OBJECTID (RFC 8474),
//! SAVEDATE (RFC 8514), what commands carry of RFC 7162
//! (`CHANGEDSINCE`, `VANISHED`, `UNCHANGEDSINCE`, `MODSEQ`, `SELECT
//! (CONDSTORE)` and `SELECT (QRESYNC (...))`), ESEARCH (RFC 4731),
//! SEARCHRES (RFC 5182), WITHIN (RFC 5032), SORT and THREAD (RFC 5256,
//! 5957), CONTEXT (RFC 5267), PREVIEW (RFC 8970, with Dovecot's older
//! `SNIPPET (FUZZY)`), NOTIFY (RFC 5465), IMAP4rev2's STATUS DELETED (RFC
//! 9051) and UTF8=ACCEPT's `APPEND ... UTF8 (literal8)` (RFC 6855).
//! Quoted strings may hold UTF-8 (RFC 9051's grammar), whatever the
//! session enabled.

pub mod base_subject;
pub mod binary;
mod datetime;
pub mod encode;
pub mod fetch_encode;
pub mod imap_url;
mod parser;
mod sequence;
mod types;
mod utf7;

#[cfg(test)]
mod content_tests;
#[cfg(test)]
mod notify_tests;
#[cfg(test)]
mod sort_tests;
#[cfg(test)]
mod tests;

pub use datetime::{format_date_time, parse_date, parse_date_time};
pub use parser::{parse_command, parse_idle_done, parse_section, IdleDone, Limits, Parsed};
pub use sequence::{SeqNumber, SequenceSet};
pub use types::*;
pub use utf7::{decode_utf7, encode_utf7};
