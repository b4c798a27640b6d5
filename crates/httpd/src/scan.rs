//! Looking through messages for those a query matches: newest first for
//! lists and searches, oldest first after a cursor for the wait. The
//! summary decides most terms; a message's raw bytes are read (and its
//! text decoded) only when a bare word or phrase is not in its header
//! fields and everything else already holds.

use store::{ArrivalScope, ArrivedMessage, Store};

use crate::error::ApiResult;
use crate::query::{Decision, Query};

/// Messages read from the store at a time.
const PAGE: usize = 500;

/// Bodies larger than this are decoded on a blocking thread.
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// Whether `query` matches `m`, reading its body if need be.
pub async fn matches(
    store: &Store,
    scope: &ArrivalScope,
    query: &Query,
    m: &ArrivedMessage,
) -> ApiResult<bool> {
    match query.decide(m, None) {
        Decision::Yes => Ok(true),
        Decision::No => Ok(false),
        Decision::NeedBody => {
            let Some(raw) = store.arrival_raw(scope.clone(), m.arrival).await? else {
                // Deleted meanwhile.
                return Ok(false);
            };
            let text = if raw.len() > INLINE_PARSE_LIMIT {
                tokio::task::spawn_blocking(move || crate::view::body_text(&raw))
                    .await
                    .unwrap_or_default()
            } else {
                crate::view::body_text(&raw)
            };
            Ok(query.decide(m, Some(&text)) == Decision::Yes)
        }
    }
}

/// What a search found.
pub struct Found {
    /// Newest first.
    pub matches: Vec<ArrivedMessage>,
    /// False if the scan stopped at its limit before the oldest message.
    pub complete: bool,
}

/// Every message in `scope` that `query` matches, newest first, looking
/// at no more than `max_scan` messages.
pub async fn search(
    store: &Store,
    scope: &ArrivalScope,
    query: &Query,
    max_scan: usize,
) -> ApiResult<Found> {
    let mut found = Vec::new();
    let mut before = None;
    let mut scanned = 0usize;
    loop {
        let want = PAGE.min(max_scan.saturating_sub(scanned)).max(1);
        let page = store.arrivals_newest(scope.clone(), before, want).await?;
        let Some(last) = page.last() else {
            return Ok(Found {
                matches: found,
                complete: true,
            });
        };
        before = Some(last.arrival);
        let full = page.len();
        for m in page {
            scanned += 1;
            if matches(store, scope, query, &m).await? {
                found.push(m);
            }
        }
        if scanned >= max_scan {
            // One more look says whether anything was left unscanned.
            let more = !store
                .arrivals_newest(scope.clone(), before, 1)
                .await?
                .is_empty();
            return Ok(Found {
                matches: found,
                complete: !more,
            });
        }
        if full < want {
            return Ok(Found {
                matches: found,
                complete: true,
            });
        }
    }
}

/// Every message in `scope`, newest first, in pages handed to `each`
/// (for "all messages" reads and deletes).
pub async fn every<F, Fut>(store: &Store, scope: &ArrivalScope, mut each: F) -> ApiResult<()>
where
    F: FnMut(Vec<ArrivedMessage>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<()>>,
{
    let mut before = None;
    loop {
        let page = store.arrivals_newest(scope.clone(), before, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        before = Some(last.arrival);
        let done = page.len() < PAGE;
        each(page).await?;
        if done {
            return Ok(());
        }
    }
}

/// The first message in `scope` after arrival `after` that `query`
/// matches, looking at what has arrived so far; and the last arrival
/// looked at (the cursor to go on from when nothing matched).
pub async fn first_after(
    store: &Store,
    scope: &ArrivalScope,
    query: &Query,
    mut after: u64,
) -> ApiResult<(Option<ArrivedMessage>, u64)> {
    loop {
        let page = store.arrivals_after(scope.clone(), after, PAGE).await?;
        let full = page.len() == PAGE;
        for m in page {
            after = m.arrival;
            if matches(store, scope, query, &m).await? {
                return Ok((Some(m), after));
            }
        }
        if !full {
            return Ok((None, after));
        }
    }
}
