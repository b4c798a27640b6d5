//! THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES (the
//! algorithm of section 3, step by step) and REFS (Dovecot's variant:
//! REFERENCES without gathering root threads by subject, the threads
//! ordered by their newest message).
//!
//! The messages are those SEARCH would find; subject, dates,
//! `Message-ID:`, `In-Reply-To:` and `References:` come from the envelope
//! summaries SORT reads (kept at delivery, cached), never from the raw
//! messages.

use std::collections::HashMap;

use super::sort::Sortable;
use super::{End, Session};
use crate::protocol::{SearchKey, Tag, ThreadAlgorithm};

/// One message as threading sees it.
#[derive(Debug, Clone, Default)]
pub(super) struct ThreadMessage {
    /// What the reply shows: UID or sequence number.
    pub number: u32,
    /// Mailbox order (ties of date).
    pub seq: u32,
    pub sent: i64,
    /// Base subject, folded.
    pub subject: String,
    pub is_reply_or_forward: bool,
    pub message_id: Option<String>,
    /// `References:`, or without it the first id of `In-Reply-To:`.
    pub references: Vec<String>,
}

/// A node of the thread tree: a message or (`message: None`) a dummy
/// standing for a message that is referenced but not present.
#[derive(Debug, Clone, Default)]
struct Container {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// A thread as it is written: a message with its replies, or a dummy
/// over several threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Thread {
    pub number: Option<u32>,
    pub children: Vec<Thread>,
}

struct Forest<'a> {
    messages: &'a [ThreadMessage],
    nodes: Vec<Container>,
}

impl Forest<'_> {
    fn is_ancestor(&self, ancestor: usize, mut node: usize) -> bool {
        loop {
            if node == ancestor {
                return true;
            }
            match self.nodes[node].parent {
                Some(p) => node = p,
                None => return false,
            }
        }
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// (date, mailbox order) of a node: a dummy takes its first child's
    /// (children sorted first).
    fn date(&self, node: usize) -> (i64, u32) {
        match self.nodes[node].message {
            Some(m) => (self.messages[m].sent, self.messages[m].seq),
            None => self.nodes[node]
                .children
                .first()
                .map_or((i64::MIN, 0), |&c| self.date(c)),
        }
    }

    /// The newest (date, order) in a whole thread.
    fn latest(&self, node: usize) -> (i64, u32) {
        let own = self.nodes[node].message.map_or((i64::MIN, 0), |m| {
            (self.messages[m].sent, self.messages[m].seq)
        });
        self.nodes[node]
            .children
            .iter()
            .map(|&c| self.latest(c))
            .fold(own, std::cmp::max)
    }

    fn sort_level(&mut self, list: &mut [usize]) {
        for &node in list.iter() {
            let mut children = std::mem::take(&mut self.nodes[node].children);
            self.sort_level(&mut children);
            self.nodes[node].children = children;
        }
        list.sort_by_key(|&n| self.date(n));
    }

    /// The message of a node, or of a dummy's first child.
    fn subject_message(&self, node: usize) -> Option<&ThreadMessage> {
        let mut node = node;
        loop {
            match self.nodes[node].message {
                Some(m) => return Some(&self.messages[m]),
                None => node = *self.nodes[node].children.first()?,
            }
        }
    }

    /// (3) Dummies without children go; a dummy's children take its place,
    /// but at the root only a single child.
    fn prune(&mut self, list: Vec<usize>, root: bool) -> Vec<usize> {
        let mut out = Vec::new();
        for node in list {
            let children = std::mem::take(&mut self.nodes[node].children);
            let children = self.prune(children, false);
            if self.nodes[node].message.is_some() || (root && children.len() > 1) {
                for &c in &children {
                    self.nodes[c].parent = Some(node);
                }
                self.nodes[node].children = children;
                out.push(node);
            } else {
                let parent = if root { None } else { self.nodes[node].parent };
                for &c in &children {
                    self.nodes[c].parent = parent;
                }
                out.extend(children);
            }
        }
        out
    }

    /// (5) Root threads with the same base subject gathered together.
    fn gather_by_subject(&mut self, roots: Vec<usize>) -> Vec<usize> {
        let is_dummy = |f: &Self, n: usize| f.nodes[n].message.is_none();
        let is_reply = |f: &Self, n: usize| {
            f.nodes[n]
                .message
                .is_some_and(|m| f.messages[m].is_reply_or_forward)
        };
        let mut table: HashMap<String, usize> = HashMap::new();
        for &r in &roots {
            let Some(subject) = self.subject_message(r).map(|m| m.subject.clone()) else {
                continue;
            };
            if subject.is_empty() {
                continue;
            }
            match table.get(&subject) {
                None => {
                    table.insert(subject, r);
                }
                Some(&old) => {
                    if (is_dummy(self, r) && !is_dummy(self, old))
                        || (!is_dummy(self, old)
                            && is_reply(self, old)
                            && !is_dummy(self, r)
                            && !is_reply(self, r))
                    {
                        table.insert(subject, r);
                    }
                }
            }
        }
        let mut roots = roots;
        let mut i = 0;
        while i < roots.len() {
            let r = roots[i];
            let Some(subject) = self.subject_message(r).map(|m| m.subject.clone()) else {
                i += 1;
                continue;
            };
            let Some(&t) = table.get(&subject) else {
                i += 1;
                continue;
            };
            if t == r || subject.is_empty() {
                i += 1;
                continue;
            }
            let t_pos = roots.iter().position(|&x| x == t);
            if is_dummy(self, t) && is_dummy(self, r) {
                for c in std::mem::take(&mut self.nodes[r].children) {
                    self.link(t, c);
                }
                roots.remove(i);
            } else if is_dummy(self, t) {
                self.link(t, r);
                roots.remove(i);
            } else if is_dummy(self, r) {
                self.link(r, t);
                table.insert(subject, r);
                if let Some(p) = t_pos {
                    roots.remove(p);
                    if p < i {
                        i -= 1;
                    }
                }
                i += 1;
            } else if !is_reply(self, t) && is_reply(self, r) {
                self.link(t, r);
                roots.remove(i);
            } else {
                let dummy = self.nodes.len();
                self.nodes.push(Container::default());
                self.link(dummy, t);
                self.link(dummy, r);
                table.insert(subject, dummy);
                if let Some(p) = t_pos {
                    roots[p] = dummy;
                }
                roots.remove(i);
            }
        }
        roots
    }

    fn thread(&self, node: usize) -> Thread {
        Thread {
            number: self.nodes[node].message.map(|m| self.messages[m].number),
            children: self.nodes[node]
                .children
                .iter()
                .map(|&c| self.thread(c))
                .collect(),
        }
    }
}

/// REFERENCES (`gather_subjects`) or REFS threads of `messages` (in
/// mailbox order).
pub(super) fn by_references(messages: &[ThreadMessage], refs: bool) -> Vec<Thread> {
    let mut forest = Forest {
        messages,
        nodes: Vec::with_capacity(messages.len() * 2),
    };
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        // (1A) The message's container: the dummy its id already has, or
        // a new one (a duplicate id makes the message a stranger).
        let own = match m.message_id.as_deref().map(|id| (id, ids.get(id).copied())) {
            Some((_, Some(c))) if forest.nodes[c].message.is_none() => c,
            found => {
                let c = forest.nodes.len();
                forest.nodes.push(Container::default());
                if let Some((id, None)) = found {
                    ids.insert(id, c);
                }
                c
            }
        };
        forest.nodes[own].message = Some(i);
        // (1B) Each reference the parent of the next, unless linked
        // already or a loop would come of it.
        let refs: Vec<usize> = m
            .references
            .iter()
            .map(|id| {
                *ids.entry(id.as_str()).or_insert_with(|| {
                    forest.nodes.push(Container::default());
                    forest.nodes.len() - 1
                })
            })
            .collect();
        for pair in refs.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if forest.nodes[child].parent.is_none() && !forest.is_ancestor(child, parent) {
                forest.link(parent, child);
            }
        }
        // (1C) The last reference is the message's parent.
        forest.unlink(own);
        if let Some(&parent) = refs.last() {
            if !forest.is_ancestor(own, parent) {
                forest.link(parent, own);
            }
        }
    }
    // (2) The root set.
    let roots: Vec<usize> = (0..forest.nodes.len())
        .filter(|&n| forest.nodes[n].parent.is_none())
        .collect();
    let mut roots = forest.prune(roots, true);
    // (4) Sorted by date; (5) gathered by subject; (6) every level sorted.
    forest.sort_level(&mut roots);
    if !refs {
        roots = forest.gather_by_subject(roots);
        forest.sort_level(&mut roots);
    } else {
        roots.sort_by_key(|&r| forest.latest(r));
    }
    roots.iter().map(|&r| forest.thread(r)).collect()
}

/// ORDEREDSUBJECT threads: by base subject, each thread's first message
/// the parent of the rest, threads in the order of their first message.
pub(super) fn by_subject(messages: &[ThreadMessage]) -> Vec<Thread> {
    let mut sorted: Vec<&ThreadMessage> = messages.iter().collect();
    sorted.sort_by(|a, b| (&a.subject, a.sent, a.seq).cmp(&(&b.subject, b.sent, b.seq)));
    let mut threads: Vec<((i64, u32), Thread)> = Vec::new();
    let mut last_subject: Option<&str> = None;
    for m in sorted {
        let leaf = Thread {
            number: Some(m.number),
            children: Vec::new(),
        };
        match threads.last_mut() {
            Some((_, t)) if last_subject == Some(m.subject.as_str()) => t.children.push(leaf),
            _ => threads.push(((m.sent, m.seq), leaf)),
        }
        last_subject = Some(m.subject.as_str());
    }
    threads.sort_by_key(|(date, _)| *date);
    threads.into_iter().map(|(_, t)| t).collect()
}

/// Writes a thread's members: the number, then one child's line or
/// several children each in parentheses.
fn write_members(t: &Thread, out: &mut String) {
    if let Some(n) = t.number {
        out.push_str(&n.to_string());
    }
    match t.children.as_slice() {
        [] => {}
        [only] if t.number.is_some() => {
            out.push(' ');
            write_members(only, out);
        }
        children => {
            if t.number.is_some() {
                out.push(' ');
            }
            for c in children {
                out.push('(');
                write_members(c, out);
                out.push(')');
            }
        }
    }
}

/// The `THREAD` response data.
pub(super) fn thread_line(threads: &[Thread]) -> String {
    let mut line = String::from("THREAD ");
    for t in threads {
        line.push('(');
        write_members(t, &mut line);
        line.push(')');
    }
    if threads.is_empty() {
        line.pop();
    }
    line
}

impl Session {
    /// THREAD and UID THREAD.
    pub(super) async fn thread(
        &mut self,
        tag: &Tag,
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        criteria: Vec<SearchKey>,
    ) -> Result<(), End> {
        let Some(sortables) = self.sortable_matches(tag, &charset, criteria).await? else {
            return Ok(());
        };
        let messages: Vec<ThreadMessage> = sortables
            .into_iter()
            .map(|s| thread_message(s, uid))
            .collect();
        let threads = match algorithm {
            ThreadAlgorithm::OrderedSubject => by_subject(&messages),
            ThreadAlgorithm::References => by_references(&messages, false),
            ThreadAlgorithm::Refs => by_references(&messages, true),
        };
        self.untagged(thread_line(&threads).as_bytes());
        self.ok(
            tag,
            if uid {
                "UID THREAD completed"
            } else {
                "THREAD completed"
            },
        );
        Ok(())
    }
}

fn thread_message(s: Sortable, uid: bool) -> ThreadMessage {
    let mut refs = s.references;
    if refs.is_empty() {
        refs.extend(s.in_reply_to.into_iter().take(1));
    }
    ThreadMessage {
        number: if uid { s.uid.0 } else { s.seq },
        seq: s.seq,
        sent: s.sent,
        subject: s.subject,
        is_reply_or_forward: s.is_reply_or_forward,
        message_id: s.message_id,
        references: refs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::base_subject::base_subject;

    fn msg(seq: u32, subject: &str, sent: i64, id: &str, refs: &[&str]) -> ThreadMessage {
        let base = base_subject(subject);
        ThreadMessage {
            number: seq,
            seq,
            sent,
            subject: base.text,
            is_reply_or_forward: base.is_reply_or_forward,
            message_id: (!id.is_empty()).then(|| id.to_owned()),
            references: refs.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn refs(messages: &[ThreadMessage]) -> String {
        thread_line(&by_references(messages, false))
    }

    #[test]
    fn replies_hang_under_their_parents() {
        let m = [
            msg(1, "a", 10, "<1>", &[]),
            msg(2, "Re: a", 20, "<2>", &["<1>"]),
            msg(3, "Re: a", 30, "<3>", &["<1>", "<2>"]),
            msg(4, "Re: a", 25, "<4>", &["<1>"]),
            msg(5, "b", 5, "<5>", &[]),
        ];
        assert_eq!(refs(&m), "THREAD (5)(1 (2 3)(4))");
    }

    #[test]
    fn missing_parents_become_dummies_or_are_pruned() {
        // Two replies to a message that is not there: a dummy over both.
        let m = [
            msg(1, "x", 10, "<1>", &["<gone>"]),
            msg(2, "y", 20, "<2>", &["<gone>"]),
        ];
        assert_eq!(refs(&m), "THREAD ((1)(2))");
        // One reply to a missing message: the dummy goes.
        let m = [msg(1, "x", 10, "<1>", &["<gone1>", "<gone2>"])];
        assert_eq!(refs(&m), "THREAD (1)");
        // A missing message in the middle of a chain.
        let m = [
            msg(1, "x", 10, "<1>", &[]),
            msg(2, "x", 20, "<3>", &["<1>", "<2>"]),
        ];
        assert_eq!(refs(&m), "THREAD (1 2)");
    }

    #[test]
    fn loops_and_duplicates_do_not_break_it() {
        let m = [
            msg(1, "a", 10, "<1>", &["<2>"]),
            msg(2, "b", 20, "<2>", &["<1>"]),
            msg(3, "c", 30, "<1>", &[]),
            msg(4, "d", 40, "<4>", &["<4>"]),
        ];
        let line = refs(&m);
        for n in ["1", "2", "3", "4"] {
            assert_eq!(line.matches(n).count(), 1, "{line}");
        }
    }

    #[test]
    fn subjects_gather_root_threads() {
        // Same base subject, no references: a dummy over both.
        let m = [
            msg(1, "Grüße", 10, "<1>", &[]),
            msg(2, "GRÜSSE", 20, "<2>", &[]),
            msg(3, "grüße", 30, "<3>", &[]),
        ];
        // (ß folds to itself, not to "ss": simple case folding.)
        assert_eq!(refs(&m), "THREAD ((1)(3))(2)");
        // A reply by subject only goes under the original.
        let m = [
            msg(1, "Plan", 10, "<1>", &[]),
            msg(2, "Re: plan", 20, "<2>", &[]),
        ];
        assert_eq!(refs(&m), "THREAD (1 2)");
        // REFS does not gather by subject, and orders by the newest.
        let m = [
            msg(1, "Plan", 10, "<1>", &[]),
            msg(2, "Re: plan", 20, "<2>", &[]),
            msg(3, "other", 15, "<3>", &[]),
            msg(4, "Re: other", 30, "<4>", &["<3>"]),
        ];
        assert_eq!(thread_line(&by_references(&m, true)), "THREAD (1)(2)(3 4)");
        assert_eq!(refs(&m), "THREAD (1 2)(3 4)");
    }

    #[test]
    fn ordered_subject() {
        let m = [
            msg(1, "b", 30, "", &[]),
            msg(2, "a", 20, "", &[]),
            msg(3, "Re: b", 10, "", &[]),
            msg(4, "re: a", 40, "", &[]),
            msg(5, "a", 50, "", &[]),
            msg(6, "c", 5, "", &[]),
        ];
        assert_eq!(thread_line(&by_subject(&m)), "THREAD (6)(3 1)(2 (4)(5))");
        assert_eq!(thread_line(&by_subject(&[])), "THREAD");
    }
}
