//! # store — Postern's mailbox store
//!
//! The only crate that speaks SQL. Everything the daemons keep lives here, in
//! one SQLite database (`<data dir>/postern.db`, WAL mode) by default, or in
//! one PostgreSQL database that several nodes share (`[store] backend`):
//!
//! - **accounts** (address, argon2id PHC password hash, quota limits and
//!   usage counters: [`Quota`], enforced where mail is added), **domains** (the local
//!   domains mail is accepted for) and **aliases** (address → account);
//! - **mailboxes** with UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ (from 1); every
//!   new account gets INBOX, Drafts, Sent, Trash, Junk and Archive, subscribed,
//!   the last five with their RFC 6154 special-use attribute;
//! - **messages**: UID (never reused), flags and keywords, modseq, internal
//!   date, and what parsing at delivery gives ([`MessageSummary`]), so a read
//!   never re-parses; expunges leave tombstones with their modseq;
//! - **blobs**: the raw message, byte for byte as received, stored once,
//!   addressed by its SHA-256 and reference-counted (a message sent to ten
//!   local users is one blob);
//! - **the queue**: a queued message holds its blob, envelope sender, auth
//!   user, body type and DSN request (RET, ENVID); each recipient has its
//!   own state ([`RecipientState`]), attempt count, next attempt time, last
//!   error and DSN request (NOTIFY, ORCPT); due work is found by an index
//!   on the next attempt time. Local delivery may put lines on top of the
//!   copy the mailboxes get ([`DeliveryOptions`]: smtpd's `Return-Path:`),
//!   one blob for all of them, parsed as delivered;
//! - **the change feed**: every change to a mailbox is a row ordered by
//!   modseq, which IMAP sessions follow; the feed and the expunge
//!   tombstones are pruned to a bound per mailbox, and the mailbox records
//!   the modseq up to which they were ([`PruneOptions`], `prune`).
//!
//! ## Concurrency and durability
//!
//! One writer connection lives on its own thread and batches concurrent write
//! requests into one transaction (group commit); a small pool of reader
//! connections serves reads on their own threads. Async callers talk to them
//! over bounded queues, waiting for room asynchronously when one is full.
//! Two kinds of work stay on the caller's thread because a hand-over would
//! cost more than they do: lookups by key on SQLite (a recipient, a local
//! domain: a thread-local read connection, `sqlite::inline`), and the hash
//! and parse of a small received message.
//!
//! When a write call that accepts or creates mail returns `Ok` (a message
//! queued or delivered, an APPEND or COPY, an account), its transaction is
//! committed and synced to disk, so no crash, not even a power cut, loses
//! it: [`Store::enqueue`] returning `Ok` is what lets smtpd answer `250`.
//! Changes to mail that exists (flags, expunges), queue claims and records
//! such as SMTP transcripts are committed to the operating system, which a
//! `kill -9` cannot undo; `[store] sync_every_commit` syncs those too.
//!
//! Other processes on the same data dir (a separately started `smtpd`, say)
//! are noticed through `PRAGMA data_version`, polled cheaply, and other
//! nodes on PostgreSQL by `LISTEN`/`NOTIFY`; in-process writes notify at
//! once. Watchers hear of changes per mailbox ([`Store::watch_changes`] and
//! the per-mailbox wake-ups).
//!
//! ## Schema versions
//!
//! Migrations are embedded and versioned (`PRAGMA user_version`); opening a
//! database whose schema is newer than this code is refused with
//! [`StoreError::SchemaTooNew`].
//!
//! Callers see mail terms only, never SQL or SQLite types, so that another
//! backend (PostgreSQL) can follow behind the same API.
//!
//! ## Layout
//!
//! - `types`: the domain types and [`StoreError`], backend-free; all
//!   re-exported here, so their paths are `store::X`.
//! - `api`: [`Store`] and its async calls, one submodule per area
//!   (accounts, queue, received mail, capture, arrivals, mailboxes).
//! - `sql`: the SQL of each area, written once for both engines over
//!   `db::Connection`, including the change feed, its pruning and the
//!   per-mailbox wake-ups read from it; `sql::engine` runs the writer,
//!   reader and watcher threads.
//! - `db`: one connection type over SQLite and PostgreSQL.
//! - `sqlite`: what only SQLite has: opening the file with its pragmas,
//!   the schema and its migrations, WAL checkpoints, lookups on the
//!   caller's thread. `pg`: what only PostgreSQL has: connecting (TLS),
//!   its schema and migrations, `postern store copy`.
//! - backend-free helpers: `parse` (a message's summary, made once at
//!   delivery), `search_fields` (the compact form of the header fields
//!   IMAP SEARCH compares, made from a summary), `hashing` (the argon2id password workers) and `claims`
//!   (which process holds the queue's claims, by lock files in the data
//!   dir).
//! - `work_queue`: the bounded queues from async callers to the writer,
//!   the readers and the password workers ([`StoreOptions`] sizes them).
//! - `kept`: what the store keeps in memory between requests (mailbox
//!   indexes, envelopes, SEARCH's header fields, arrival lists), each
//!   within a byte budget
//!   ([`StoreOptions`] sets them).
#![forbid(unsafe_code)]

pub use api::Store;
pub use parse::summarize;
pub use pg::copy::{copy_to_postgres, TableCopied};
pub use search_fields::{AddressHeader, SearchFields, SearchInfo};
pub use types::*;

mod api;
mod claims;
mod db;
mod hashing;
mod kept;
mod parse;
mod pg;
mod search_fields;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;
mod types;
mod work_queue;
