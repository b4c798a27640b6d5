//! The SQLite engine: the only code that speaks SQL. [`engine`] runs one
//! writer thread (group commit) and a pool of readers, [`schema`] opens
//! the database and migrates it; every other module here is the SQL of one
//! area, called by the API ([`crate::api`]) on the engine's threads with a
//! `&rusqlite::Connection`.

pub(crate) mod accounts;
pub(crate) mod arrivals;
pub(crate) mod blobs;
pub(crate) mod capture;
pub(crate) mod checkpoint;
pub(crate) mod engine;
pub(crate) mod feed;
pub(crate) mod inline;
pub(crate) mod leases;
pub(crate) mod login_failures;
pub(crate) mod mailbox;
pub(crate) mod metadata;
pub(crate) mod prune;
pub(crate) mod queue;
pub(crate) mod quota;
pub(crate) mod received;
pub(crate) mod reparse;
pub(crate) mod schema;
pub(crate) mod urlauth;
pub(crate) mod wakeups;
