//! THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES (the
//! algorithm of section 3, step by step) and REFS (Dovecot's variant:
//! REFERENCES without gathering root threads by subject, the threads
//! ordered by their newest message).
//!
//! The messages are those SEARCH would find; subject, dates,
//! `Message-ID:`, `In-Reply-To:` and `References:` come from the
//! mailbox's sort index (made from the envelope summaries kept at
//! delivery), never from the raw messages. Strings are numbers there:
//! equal subjects and equal ids have equal numbers.

use std::collections::{HashMap, HashSet};

use store::Uid;

use super::sort_index::lock;
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
    /// Base subject, folded, by its place in code point order among the
    /// mailbox's subjects: `0` is the empty subject.
    pub subject: u32,
    pub is_reply_or_forward: bool,
    /// The number of the `<id>` as written, if any.
    pub message_id: Option<u32>,
    /// `References:`, or without it the first id of `In-Reply-To:`, by
    /// number as `message_id`.
    pub references: Vec<u32>,
}

/// A node of the thread tree: a message or (`message: None`) a dummy
/// standing for a message that is referenced but not present.
#[derive(Debug, Clone, Default)]
struct Container {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest<'a> {
    messages: &'a [ThreadMessage],
    nodes: Vec<Container>,
}

/// One step of writing a thread without recursion (a reply chain may be
/// as long as the mailbox).
enum Write {
    Node(usize),
    Text(char),
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

    /// Whether making `child` a child of `parent` would close a loop:
    /// only if `parent` is `child` or below it, which a container without
    /// children (the usual new message) cannot have.
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        parent == child
            || (!self.nodes[child].children.is_empty() && self.is_ancestor(child, parent))
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

    /// Every node under `roots` (themselves included), each after all of
    /// its descendants; no recursion.
    fn post_order(&self, roots: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack: Vec<(usize, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                out.push(node);
            } else {
                stack.push((node, true));
                stack.extend(self.nodes[node].children.iter().rev().map(|&c| (c, false)));
            }
        }
        out
    }

    /// (date, mailbox order) of a node: a dummy takes its first child's
    /// (children sorted first).
    fn date(&self, mut node: usize) -> (i64, u32) {
        loop {
            match (self.nodes[node].message, self.nodes[node].children.first()) {
                (Some(m), _) => return (self.messages[m].sent, self.messages[m].seq),
                (None, Some(&first)) => node = first,
                (None, None) => return (i64::MIN, 0),
            }
        }
    }

    /// Sorts every level under `roots`, and `roots`, by date: children
    /// before their parents, so that a dummy's first child is known.
    fn sort_all(&mut self, roots: &mut [usize]) {
        for node in self.post_order(roots) {
            let mut children = std::mem::take(&mut self.nodes[node].children);
            children.sort_by_key(|&c| self.date(c));
            self.nodes[node].children = children;
        }
        roots.sort_by_key(|&n| self.date(n));
    }

    /// The newest (date, order) in each thread of `roots`.
    fn latest(&self, roots: &[usize]) -> HashMap<usize, (i64, u32)> {
        let mut latest: HashMap<usize, (i64, u32)> = HashMap::new();
        for node in self.post_order(roots) {
            let own = self.nodes[node].message.map_or((i64::MIN, 0), |m| {
                (self.messages[m].sent, self.messages[m].seq)
            });
            let newest = self.nodes[node]
                .children
                .iter()
                .filter_map(|c| latest.get(c).copied())
                .fold(own, std::cmp::max);
            latest.insert(node, newest);
        }
        latest
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
    /// but at the root only a single child. Deepest levels first.
    fn prune(&mut self, roots: Vec<usize>) -> Vec<usize> {
        for node in self.post_order(&roots) {
            let children = std::mem::take(&mut self.nodes[node].children);
            let mut kept = Vec::with_capacity(children.len());
            for child in children {
                if self.nodes[child].message.is_some() {
                    kept.push(child);
                } else {
                    let promoted = std::mem::take(&mut self.nodes[child].children);
                    for &c in &promoted {
                        self.nodes[c].parent = Some(node);
                    }
                    kept.extend(promoted);
                }
            }
            self.nodes[node].children = kept;
        }
        let mut out = Vec::with_capacity(roots.len());
        for root in roots {
            if self.nodes[root].message.is_some() || self.nodes[root].children.len() > 1 {
                out.push(root);
            } else {
                let promoted = std::mem::take(&mut self.nodes[root].children);
                for &c in &promoted {
                    self.nodes[c].parent = None;
                }
                out.extend(promoted);
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
        let mut table: HashMap<u32, usize> = HashMap::new();
        for &r in &roots {
            let Some(subject) = self.subject_message(r).map(|m| m.subject) else {
                continue;
            };
            if subject == 0 {
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
        // Each root in turn joins the one the table has for its subject;
        // what leaves the root set is noted, not removed (no shifting).
        let mut gone: HashSet<usize> = HashSet::new();
        let mut replaced: HashMap<usize, usize> = HashMap::new();
        for &r in &roots {
            if gone.contains(&r) {
                continue;
            }
            let Some(subject) = self.subject_message(r).map(|m| m.subject) else {
                continue;
            };
            let Some(&t) = table.get(&subject) else {
                continue;
            };
            if t == r {
                continue;
            }
            if is_dummy(self, t) && is_dummy(self, r) {
                for c in std::mem::take(&mut self.nodes[r].children) {
                    self.link(t, c);
                }
                gone.insert(r);
            } else if is_dummy(self, t) {
                self.link(t, r);
                gone.insert(r);
            } else if is_dummy(self, r) {
                self.link(r, t);
                table.insert(subject, r);
                gone.insert(t);
            } else if !is_reply(self, t) && is_reply(self, r) {
                self.link(t, r);
                gone.insert(r);
            } else {
                let dummy = self.nodes.len();
                self.nodes.push(Container::default());
                self.link(dummy, t);
                self.link(dummy, r);
                table.insert(subject, dummy);
                replaced.insert(t, dummy);
                gone.insert(r);
            }
        }
        roots
            .into_iter()
            .filter(|r| !gone.contains(r))
            .map(|r| replaced.get(&r).copied().unwrap_or(r))
            .collect()
    }

    /// Writes the threads of `roots`: each in parentheses, a message's
    /// number, then its one reply's line or several replies each in
    /// parentheses (a dummy: just its children).
    fn write(&self, roots: &[usize]) -> String {
        let mut out = String::new();
        let mut steps: Vec<Write> = Vec::new();
        for &root in roots.iter().rev() {
            steps.extend([Write::Text(')'), Write::Node(root), Write::Text('(')]);
        }
        while let Some(step) = steps.pop() {
            let node = match step {
                Write::Text(c) => {
                    out.push(c);
                    continue;
                }
                Write::Node(node) => node,
            };
            let message = self.nodes[node].message;
            if let Some(m) = message {
                out.push_str(&self.messages[m].number.to_string());
            }
            match self.nodes[node].children.as_slice() {
                [] => {}
                [only] if message.is_some() => {
                    steps.extend([Write::Node(*only), Write::Text(' ')]);
                }
                children => {
                    for &c in children.iter().rev() {
                        steps.extend([Write::Text(')'), Write::Node(c), Write::Text('(')]);
                    }
                    if message.is_some() {
                        steps.push(Write::Text(' '));
                    }
                }
            }
        }
        out
    }
}

/// REFERENCES or (`refs`) REFS threads of `messages` (in mailbox order),
/// written as THREAD's data.
pub(super) fn by_references(messages: &[ThreadMessage], refs: bool) -> String {
    let mut forest = Forest {
        messages,
        nodes: Vec::with_capacity(messages.len() * 2),
    };
    let mut ids: HashMap<u32, usize> = HashMap::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        // (1A) The message's container: the dummy its id already has, or
        // a new one (a duplicate id makes the message a stranger).
        let own = match m.message_id.map(|id| (id, ids.get(&id).copied())) {
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
            .map(|&id| {
                *ids.entry(id).or_insert_with(|| {
                    forest.nodes.push(Container::default());
                    forest.nodes.len() - 1
                })
            })
            .collect();
        for pair in refs.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if forest.nodes[child].parent.is_none() && !forest.would_loop(parent, child) {
                forest.link(parent, child);
            }
        }
        // (1C) The last reference is the message's parent.
        forest.unlink(own);
        if let Some(&parent) = refs.last() {
            if !forest.would_loop(parent, own) {
                forest.link(parent, own);
            }
        }
    }
    // (2) The root set.
    let roots: Vec<usize> = (0..forest.nodes.len())
        .filter(|&n| forest.nodes[n].parent.is_none())
        .collect();
    let mut roots = forest.prune(roots);
    // (4) Sorted by date; (5) gathered by subject; (6) every level sorted.
    forest.sort_all(&mut roots);
    if !refs {
        roots = forest.gather_by_subject(roots);
        forest.sort_all(&mut roots);
    } else {
        let latest = forest.latest(&roots);
        roots.sort_by_key(|r| latest.get(r).copied());
    }
    forest.write(&roots)
}

/// ORDEREDSUBJECT threads: by base subject, each thread's first message
/// the parent of the rest, threads in the order of their first message;
/// written as THREAD's data.
pub(super) fn by_subject(messages: &[ThreadMessage]) -> String {
    let mut sorted: Vec<&ThreadMessage> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.subject, m.sent, m.seq));
    let mut threads: Vec<Vec<&ThreadMessage>> = Vec::new();
    for m in sorted {
        match threads.last_mut() {
            Some(t) if t[0].subject == m.subject => t.push(m),
            _ => threads.push(vec![m]),
        }
    }
    threads.sort_by_key(|t| (t[0].sent, t[0].seq));
    let mut out = String::new();
    for t in threads {
        out.push('(');
        out.push_str(&t[0].number.to_string());
        match &t[1..] {
            [] => {}
            [only] => out.push_str(&format!(" {}", only.number)),
            replies => {
                out.push(' ');
                for r in replies {
                    out.push_str(&format!("({})", r.number));
                }
            }
        }
        out.push(')');
    }
    out
}

/// The `THREAD` response for `threads` (as written by [`by_references`]
/// or [`by_subject`]).
pub(super) fn thread_line(threads: &str) -> String {
    if threads.is_empty() {
        "THREAD".to_owned()
    } else {
        format!("THREAD {threads}")
    }
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
        let Some(indexed) = self.indexed_matches(tag, &charset, criteria).await? else {
            return Ok(());
        };
        let uids: Vec<Uid> = indexed.matched.iter().map(|c| c.entry.uid).collect();
        let keys = lock(&indexed.index).thread_keys(&uids);
        let messages: Vec<ThreadMessage> = keys
            .into_iter()
            .map(|(i, k)| {
                let c = &indexed.matched[i];
                ThreadMessage {
                    number: if uid { c.entry.uid.0 } else { c.seq },
                    seq: c.seq,
                    sent: k.sent,
                    subject: k.subject,
                    is_reply_or_forward: k.is_reply_or_forward,
                    message_id: k.message_id,
                    references: k.references,
                }
            })
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::super::sort_index::Strings;
    use super::*;
    use crate::protocol::base_subject::base_subject;

    thread_local! {
        static SUBJECTS: RefCell<Strings> = RefCell::new(Strings::default());
        static IDS: RefCell<Strings> = RefCell::new(Strings::default());
    }

    fn id(text: &str) -> u32 {
        IDS.with(|ids| ids.borrow_mut().intern(text).unwrap())
    }

    /// A message, its subject by number (see [`placed`]).
    fn msg(seq: u32, subject: &str, sent: i64, message_id: &str, refs: &[&str]) -> ThreadMessage {
        let base = base_subject(subject);
        ThreadMessage {
            number: seq,
            seq,
            sent,
            subject: SUBJECTS.with(|s| s.borrow_mut().intern(&base.text).unwrap()),
            is_reply_or_forward: base.is_reply_or_forward,
            message_id: (!message_id.is_empty()).then(|| id(message_id)),
            references: refs.iter().map(|r| id(r)).collect(),
        }
    }

    /// The messages with their subjects by place, as the sort index
    /// gives them.
    fn placed(messages: &[ThreadMessage]) -> Vec<ThreadMessage> {
        SUBJECTS.with(|s| {
            let mut s = s.borrow_mut();
            let places = s.places();
            messages
                .iter()
                .map(|m| ThreadMessage {
                    subject: places[m.subject as usize],
                    ..m.clone()
                })
                .collect()
        })
    }

    fn refs(messages: &[ThreadMessage]) -> String {
        thread_line(&by_references(&placed(messages), false))
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
        assert_eq!(
            thread_line(&by_references(&placed(&m), true)),
            "THREAD (1)(2)(3 4)"
        );
        assert_eq!(refs(&m), "THREAD (1 2)(3 4)");
    }

    /// A reply chain as long as a big mailbox: no recursion, so no stack
    /// overflow, in any step.
    #[test]
    fn very_long_chains_thread_without_recursion() {
        let n = 100_000u32;
        let m: Vec<ThreadMessage> = (1..=n)
            .map(|i| ThreadMessage {
                number: i,
                seq: i,
                sent: i64::from(i),
                subject: 1,
                is_reply_or_forward: i > 1,
                message_id: Some(i),
                // Each message references its parent, whose own parent is
                // missing for the first.
                references: vec![i - 1],
            })
            .collect();
        for refs in [false, true] {
            let out = by_references(&m, refs);
            assert!(out.starts_with("(1 2 3 4 "), "{}", &out[..20]);
            assert!(out.ends_with(&format!(" {n})")));
            assert_eq!(out.matches('(').count(), 1);
        }
    }

    /// Many root threads on few subjects gather without shifting the
    /// root set about (no quadratic step).
    #[test]
    fn many_roots_gather_by_subject() {
        let n = 50_000u32;
        let m: Vec<ThreadMessage> = (1..=n)
            .map(|i| ThreadMessage {
                number: i,
                seq: i,
                sent: i64::from(i),
                subject: i % 100 + 1,
                is_reply_or_forward: i % 2 == 0,
                message_id: Some(i),
                references: Vec::new(),
            })
            .collect();
        let out = by_references(&m, false);
        let mut depth = 0;
        let mut threads = 0;
        for c in out.chars() {
            match c {
                '(' => {
                    threads += usize::from(depth == 0);
                    depth += 1;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        assert_eq!(threads, 100);
        assert_eq!(
            out.split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .count(),
            n as usize
        );
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
        assert_eq!(
            thread_line(&by_subject(&placed(&m))),
            "THREAD (6)(3 1)(2 (4)(5))"
        );
        assert_eq!(thread_line(&by_subject(&[])), "THREAD");
    }
}
