//! CONTEXT=SEARCH and CONTEXT=SORT's live results (RFC 5267 section
//! 4.3): a `SEARCH RETURN (UPDATE)` or `SORT RETURN (UPDATE)` keeps its
//! criteria, and after every later command in the selected state (once
//! the changes of other sessions have been taken in) and during IDLE, if
//! the mailbox changed (its modseq or message count moved), the search
//! runs again; messages that joined the result are reported with `* ESEARCH (TAG "t") ADDTO (position set)`, messages that left it
//! with `REMOVEFROM (position set)`, the sequence numbers of the latter as
//! the client knew them before the command. CANCELUPDATE stops it; a new
//! SELECT, EXAMINE, CLOSE or UNSELECT forgets them all.

use std::collections::HashSet;
use std::sync::Arc;

use store::{ModSeq, Uid};

use super::esearch::ordered_set;
use super::{End, Selected, Session, State};
use crate::protocol::{SearchKey, SortKey, Tag};

/// A search (or sort) whose result the client is kept told of.
pub(super) struct Update {
    tag: Tag,
    uid: bool,
    criteria: Vec<SearchKey>,
    /// The sort criteria of a `SORT RETURN (UPDATE)`.
    sort: Option<Vec<SortKey>>,
    /// The result as last reported, in its order (ascending for a search).
    result: Vec<Uid>,
    /// The view (its modseq and size) the result was last worked out
    /// for: while it stands, nothing can have changed the result.
    checked_at: (ModSeq, usize),
}

/// What a search's result depends on in the view.
fn view_state(view: &Selected) -> (ModSeq, usize) {
    (view.synced_modseq, view.uids.len())
}

/// `position set`: where the first of the messages is (or was) in the
/// result, 1-based, and the messages.
fn position_set(items: &[(usize, u32)]) -> String {
    let numbers: Vec<u32> = items.iter().map(|&(_, n)| n).collect();
    let first = items.first().map_or(0, |&(p, _)| p);
    format!("{first} {}", ordered_set(&numbers))
}

/// The `(position, number)` pairs of an update: for a search one
/// [`position_set`] (its order is by number anyway); for a sort, one per
/// run of neighbouring positions, so that a client that applies them in
/// turn puts each message where the sort has it.
fn positions(items: &[(usize, u32)], sorted: bool) -> String {
    if !sorted {
        return position_set(items);
    }
    let mut runs: Vec<String> = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || items[i].0 != items[i - 1].0 + 1 {
            runs.push(position_set(&items[start..i]));
            start = i;
        }
    }
    runs.join(" ")
}

impl Session {
    /// Starts keeping `criteria`'s result (`result`: the UIDs just
    /// reported) up to date for the client.
    pub(super) fn start_update(
        &mut self,
        tag: &Tag,
        uid: bool,
        criteria: Vec<SearchKey>,
        sort: Option<Vec<SortKey>>,
        result: Vec<Uid>,
    ) {
        let State::Selected(_, view) = &self.state else {
            return;
        };
        let checked_at = view_state(view);
        self.updates.retain(|u| u.tag != *tag);
        self.updates.push(Update {
            tag: tag.clone(),
            uid,
            criteria,
            sort,
            result,
            checked_at,
        });
    }

    /// CANCELUPDATE: every tag must name a search being updated.
    pub(super) fn cancel_update(&mut self, tag: &Tag, tags: Vec<Tag>) {
        if let Some(unknown) = tags
            .iter()
            .find(|t| !self.updates.iter().any(|u| u.tag == **t))
        {
            let text = format!("Unknown search tag {unknown}");
            self.bad(tag, &text);
            return;
        }
        self.updates.retain(|u| !tags.contains(&u.tag));
        self.ok(tag, "CANCELUPDATE completed");
    }

    /// Messages about to be announced as expunged leave the results they
    /// were in: REMOVEFROM, with their sequence numbers still valid.
    pub(super) fn report_expunged(&mut self, gone: &HashSet<Uid>) {
        let view = match &self.state {
            State::Selected(_, s) if !self.updates.is_empty() => s.uids.clone(),
            _ => return,
        };
        let mut lines = Vec::new();
        for update in &mut self.updates {
            let removed: Vec<(usize, u32)> = update
                .result
                .iter()
                .enumerate()
                .filter(|(_, u)| gone.contains(u))
                .filter_map(|(i, u)| {
                    let n = if update.uid {
                        u.0
                    } else {
                        view.binary_search(u).ok()? as u32 + 1
                    };
                    Some((i + 1, n))
                })
                .collect();
            if removed.is_empty() {
                continue;
            }
            update.result.retain(|u| !gone.contains(u));
            lines.push(format!(
                "ESEARCH (TAG \"{}\"){} REMOVEFROM ({})",
                update.tag,
                if update.uid { " UID" } else { "" },
                position_set(&removed)
            ));
        }
        for line in lines {
            self.untagged(line.as_bytes());
        }
    }

    /// The view before a command, when there are results to update.
    pub(super) fn view_for_updates(&self) -> Option<Arc<Vec<Uid>>> {
        match &self.state {
            State::Selected(_, s) if !self.updates.is_empty() => Some(s.uids.clone()),
            _ => None,
        }
    }

    /// Runs each kept search again and reports what changed; `before` is
    /// the view the client knew before the command.
    pub(super) async fn report_updates(
        &mut self,
        before: Option<Arc<Vec<Uid>>>,
    ) -> Result<(), End> {
        let Some(before) = before else {
            return Ok(());
        };
        let (view, now_at) = match &self.state {
            State::Selected(_, s) => (s.uids.clone(), view_state(s)),
            _ => return Ok(()),
        };
        let mut updates = std::mem::take(&mut self.updates);
        for update in &mut updates {
            if update.checked_at == now_at {
                continue;
            }
            update.checked_at = now_at;
            let now: Vec<Uid> = match &update.sort {
                None => match self.find_matches(update.criteria.clone()).await? {
                    Ok(m) => m.iter().map(|c| c.entry.uid).collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "search update failed");
                        continue;
                    }
                },
                Some(keys) => match self.find_indexed(update.criteria.clone()).await? {
                    Ok(indexed) => indexed.sorted(keys).iter().map(|c| c.entry.uid).collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "sort update failed");
                        continue;
                    }
                },
            };
            let number = |uid: Uid, view: &[Uid]| -> Option<u32> {
                if update.uid {
                    Some(uid.0)
                } else {
                    view.binary_search(&uid).ok().map(|i| i as u32 + 1)
                }
            };
            let (old_set, new_set): (HashSet<Uid>, HashSet<Uid>) = (
                update.result.iter().copied().collect(),
                now.iter().copied().collect(),
            );
            let removed: Vec<(usize, u32)> = update
                .result
                .iter()
                .enumerate()
                .filter(|(_, u)| !new_set.contains(u))
                .filter_map(|(i, u)| Some((i + 1, number(*u, &before)?)))
                .collect();
            let added: Vec<(usize, u32)> = now
                .iter()
                .enumerate()
                .filter(|(_, u)| !old_set.contains(u))
                .filter_map(|(i, u)| Some((i + 1, number(*u, &view)?)))
                .collect();
            let head = format!(
                "ESEARCH (TAG \"{}\"){}",
                update.tag,
                if update.uid { " UID" } else { "" }
            );
            let sorted = update.sort.is_some();
            if !removed.is_empty() {
                let line = format!("{head} REMOVEFROM ({})", positions(&removed, sorted));
                self.untagged(line.as_bytes());
            }
            if !added.is_empty() {
                let line = format!("{head} ADDTO ({})", positions(&added, sorted));
                self.untagged(line.as_bytes());
            }
            update.result = now;
        }
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_updates_keep_runs_apart() {
        assert_eq!(positions(&[(1, 9), (2, 3), (5, 4)], true), "1 9,3 5 4");
        assert_eq!(positions(&[(1, 9), (2, 3), (5, 4)], false), "1 9,3:4");
    }

    #[test]
    fn position_and_set() {
        assert_eq!(position_set(&[(1, 1), (2, 2), (3, 4)]), "1 1:2,4");
        assert_eq!(position_set(&[(2, 1), (4, 7)]), "2 1,7");
    }
}
