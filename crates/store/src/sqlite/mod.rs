//! What only the SQLite engine has: [`schema`] opens the database file
//! with its pragmas and migrates it, [`checkpoint`] copies the write-ahead
//! log into the database file on a thread of its own, and [`inline`] runs
//! lookups by key on the caller's thread. The SQL itself, shared with
//! PostgreSQL, is in [`crate::sql`].

pub(crate) mod checkpoint;
pub(crate) mod inline;
pub(crate) mod schema;
