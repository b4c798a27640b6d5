//! CONTEXT=SEARCH's live results (RFC 5267 section 4.3): a `SEARCH RETURN
//! (UPDATE)` keeps its criteria, and after every later command in the
//! selected state (once the changes of other sessions have been taken in)
//! the search runs again; messages that joined the result are reported
//! with `* ESEARCH (TAG "t") ADDTO (position set)`, messages that left it
//! with `REMOVEFROM (position set)`, the sequence numbers of the latter as
//! the client knew them before the command. CANCELUPDATE stops it; a new
//! SELECT, EXAMINE, CLOSE or UNSELECT forgets them all.

use std::collections::HashSet;
use std::sync::Arc;

use store::Uid;

use super::esearch::ordered_set;
use super::{End, Session, State};
use crate::protocol::{SearchKey, Tag};

/// A search whose result the client is kept told of.
pub(super) struct Update {
    tag: Tag,
    uid: bool,
    criteria: Vec<SearchKey>,
    /// The result as last reported, ascending.
    result: Vec<Uid>,
}

/// `position set`: where the first of the messages is (or was) in the
/// result, 1-based, and the messages.
fn position_set(items: &[(usize, u32)]) -> String {
    let numbers: Vec<u32> = items.iter().map(|&(_, n)| n).collect();
    let first = items.first().map_or(0, |&(p, _)| p);
    format!("{first} {}", ordered_set(&numbers))
}

impl Session {
    /// Starts keeping `criteria`'s result (`result`: the UIDs just
    /// reported) up to date for the client.
    pub(super) fn start_update(
        &mut self,
        tag: &Tag,
        uid: bool,
        criteria: Vec<SearchKey>,
        mut result: Vec<Uid>,
    ) {
        result.sort_unstable();
        self.updates.retain(|u| u.tag != *tag);
        self.updates.push(Update {
            tag: tag.clone(),
            uid,
            criteria,
            result,
        });
    }

    /// CANCELUPDATE: every tag must name a search being updated.
    pub(super) fn cancel_update(&mut self, tag: &Tag, tags: Vec<Tag>) {
        if let Some(unknown) = tags.iter().find(|t| !self.updates.iter().any(|u| u.tag == **t)) {
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
    pub(super) async fn report_updates(&mut self, before: Option<Arc<Vec<Uid>>>) -> Result<(), End> {
        let Some(before) = before else {
            return Ok(());
        };
        let view = match &self.state {
            State::Selected(_, s) => s.uids.clone(),
            _ => return Ok(()),
        };
        let mut updates = std::mem::take(&mut self.updates);
        for update in &mut updates {
            let matched = match self.find_matches(update.criteria.clone()).await? {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "search update failed");
                    continue;
                }
            };
            let now: Vec<Uid> = matched.iter().map(|c| c.entry.uid).collect();
            let number = |uid: Uid, view: &[Uid]| -> Option<u32> {
                if update.uid {
                    Some(uid.0)
                } else {
                    view.binary_search(&uid).ok().map(|i| i as u32 + 1)
                }
            };
            let removed: Vec<(usize, u32)> = update
                .result
                .iter()
                .enumerate()
                .filter(|(_, u)| now.binary_search(u).is_err())
                .filter_map(|(i, u)| Some((i + 1, number(*u, &before)?)))
                .collect();
            let added: Vec<(usize, u32)> = now
                .iter()
                .enumerate()
                .filter(|(_, u)| update.result.binary_search(u).is_err())
                .filter_map(|(i, u)| Some((i + 1, number(*u, &view)?)))
                .collect();
            let head = format!(
                "ESEARCH (TAG \"{}\"){}",
                update.tag,
                if update.uid { " UID" } else { "" }
            );
            if !removed.is_empty() {
                let line = format!("{head} REMOVEFROM ({})", position_set(&removed));
                self.untagged(line.as_bytes());
            }
            if !added.is_empty() {
                let line = format!("{head} ADDTO ({})", position_set(&added));
                self.untagged(line.as_bytes());
            }
            update.result = now;
        }
        // A command that selected anew or cancelled has set its own.
        if self.updates.is_empty() {
            self.updates = updates;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_and_set() {
        assert_eq!(position_set(&[(1, 1), (2, 2), (3, 4)]), "1 1:2,4");
        assert_eq!(position_set(&[(2, 1), (4, 7)]), "2 1,7");
    }
}
