//! The store's SQL, written once for both engines against
//! [`crate::db::Connection`]: one module per area, called by the API
//! ([`crate::api`]) on the engine's threads. [`engine`] runs those
//! threads: one writer doing group commit, a pool of readers, and a
//! watcher for other processes' or nodes' commits. What only one engine
//! has is in [`crate::sqlite`] and [`crate::pg`].

pub(crate) mod accounts;
pub(crate) mod arrivals;
pub(crate) mod blobs;
pub(crate) mod capture;
pub(crate) mod engine;
pub(crate) mod feed;
pub(crate) mod leases;
pub(crate) mod login_failures;
pub(crate) mod mailbox;
pub(crate) mod metadata;
pub(crate) mod prune;
pub(crate) mod queue;
pub(crate) mod quota;
pub(crate) mod received;
pub(crate) mod reparse;
pub(crate) mod urlauth;
pub(crate) mod wakeups;
