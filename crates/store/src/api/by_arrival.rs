//! Messages by arrival number, across mailboxes: what the HTTP API
//! lists, counts, reads and waits for.

use std::sync::Arc;

use super::Store;
use crate::sql::{arrivals, mailbox};
use crate::types::*;

impl Store {
    /// The messages in `scope` that arrived after `after`, oldest first, at
    /// most `limit`: what a waiter asks for. Summaries come without their
    /// MIME tree.
    pub async fn arrivals_after(
        &self,
        scope: ArrivalScope,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ArrivedMessage>> {
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| arrivals::list(conn, &cache, &scope, after, None, false, limit))
            .await
    }

    /// The messages in `scope` that arrived before `before` (from the
    /// newest if `None`), newest first, at most `limit`: a page of a list.
    pub async fn arrivals_newest(
        &self,
        scope: ArrivalScope,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ArrivedMessage>> {
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| arrivals::list(conn, &cache, &scope, 0, before, true, limit))
            .await
    }

    /// One page of `scope` newest first: the `limit` messages after the
    /// first `skip` of those that arrived before `before` (from the newest
    /// if `None`), with the scope's counts, read in one snapshot. It reads
    /// `skip + limit` summaries, not the scope's: for the first pages.
    pub async fn arrival_page(
        &self,
        scope: ArrivalScope,
        before: Option<u64>,
        skip: usize,
        limit: usize,
    ) -> Result<ArrivalList> {
        let cache = self.envelope_cache.clone();
        self.inner
            .read(move |conn| {
                let (total, unseen) = arrivals::count(conn, &scope)?;
                let mut messages = arrivals::list(
                    conn,
                    &cache,
                    &scope,
                    0,
                    before,
                    true,
                    skip.saturating_add(limit),
                )?;
                messages.drain(..skip.min(messages.len()));
                Ok(ArrivalList {
                    messages,
                    total,
                    unseen,
                })
            })
            .await
    }

    /// How many messages `scope` holds, and how many are not `\Seen`.
    pub async fn arrival_counts(&self, scope: ArrivalScope) -> Result<(u64, u64)> {
        self.inner
            .read(move |conn| arrivals::count(conn, &scope))
            .await
    }

    /// One message by arrival number, with its whole summary, if it is in
    /// `scope`.
    pub async fn arrival(
        &self,
        scope: ArrivalScope,
        arrival: u64,
    ) -> Result<Option<ArrivedMessage>> {
        self.inner
            .read(move |conn| arrivals::find(conn, &scope, arrival))
            .await
    }

    /// The raw bytes of one message by arrival number, if it is in `scope`.
    pub async fn arrival_raw(&self, scope: ArrivalScope, arrival: u64) -> Result<Option<Vec<u8>>> {
        self.inner
            .read(move |conn| arrivals::raw(conn, &scope, arrival))
            .await
    }

    /// The messages of `scope`, newest first (its newest `max` if it holds
    /// more), with how many it holds and how many are unseen: one snapshot
    /// for a list page, its counts, or a search. Kept and shared until
    /// anything is committed to the database, by this process or another,
    /// so repeated lists and searches over an unchanged store cost no
    /// reading; summaries come without their MIME tree.
    pub async fn arrival_list(&self, scope: ArrivalScope, max: usize) -> Result<Arc<ArrivalList>> {
        let cache = self.envelope_cache.clone();
        let lists = self.arrival_lists.clone();
        self.inner
            .read(move |conn| arrivals::snapshot(conn, &cache, &lists, &scope, max))
            .await
    }

    /// The raw bytes of the messages these arrival numbers name within
    /// `scope`, in the order asked, read in one go; those not in scope or
    /// gone are left out.
    pub async fn arrivals_raw(
        &self,
        scope: ArrivalScope,
        arrivals: &[u64],
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let arrivals = arrivals.to_vec();
        self.inner
            .read(move |conn| arrivals::raw_many(conn, &scope, &arrivals))
            .await
    }

    /// The last arrival number given (0 before any message): a cursor for
    /// "whatever arrives from now on".
    pub async fn last_arrival(&self) -> Result<u64> {
        self.inner.read(arrivals::last).await
    }

    /// Expunges the messages these arrival numbers name within `scope`,
    /// as an IMAP EXPUNGE would (sessions see it). Returns how many went.
    pub async fn delete_arrivals(&self, scope: ArrivalScope, arrivals: &[u64]) -> Result<usize> {
        let arrivals = arrivals.to_vec();
        self.inner
            .write(true, move |conn| arrivals::delete(conn, &scope, &arrivals))
            .await
    }

    /// Changes flags (as [`Store::store_flags`] takes them) of the messages
    /// these arrival numbers name within `scope`. Returns how many changed.
    pub async fn set_arrival_flags(
        &self,
        scope: ArrivalScope,
        arrivals: &[u64],
        change: FlagChange,
        flags: &[String],
    ) -> Result<usize> {
        let flags = mailbox::parse_flags(flags)?;
        let arrivals = arrivals.to_vec();
        self.inner
            .write(true, move |conn| {
                arrivals::set_flags(conn, &scope, &arrivals, change, &flags)
            })
            .await
    }
}
