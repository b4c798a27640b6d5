//! Sequence sets (`1:*,3,5:7`), for message numbers and UIDs alike.

use std::fmt;

/// One end of a range: a number (never 0) or `*`, the largest in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqNumber {
    Value(u32),
    Largest,
}

impl SeqNumber {
    fn resolve(self, max: u32) -> u32 {
        match self {
            SeqNumber::Value(v) => v,
            SeqNumber::Largest => max,
        }
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqNumber::Value(v) => write!(f, "{v}"),
            SeqNumber::Largest => f.write_str("*"),
        }
    }
}

/// A non-empty list of ranges; `a:b` covers both ends in either order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceSet(Vec<(SeqNumber, SeqNumber)>);

impl SequenceSet {
    /// Builds a set from ranges; `None` when empty or a number is 0.
    pub fn new(ranges: Vec<(SeqNumber, SeqNumber)>) -> Option<SequenceSet> {
        let zero = |n: &SeqNumber| *n == SeqNumber::Value(0);
        if ranges.is_empty() || ranges.iter().any(|(a, b)| zero(a) || zero(b)) {
            None
        } else {
            Some(SequenceSet(ranges))
        }
    }

    /// Parses a whole sequence set such as `1:*,3,5:7`, with at most
    /// `max_ranges` ranges.
    pub fn parse(s: &[u8], max_ranges: usize) -> Option<SequenceSet> {
        let mut ranges = Vec::new();
        for part in s.split(|&b| b == b',') {
            if ranges.len() >= max_ranges {
                return None;
            }
            let mut ends = part.splitn(2, |&b| b == b':');
            let a = parse_number(ends.next()?)?;
            let b = match ends.next() {
                Some(e) => parse_number(e)?,
                None => a,
            };
            ranges.push((a, b));
        }
        SequenceSet::new(ranges)
    }

    /// `$` (RFC 5182): the messages the last `SEARCH RETURN (SAVE)` kept;
    /// the session puts them in its place before the command runs.
    pub fn saved_result() -> SequenceSet {
        SequenceSet(Vec::new())
    }

    /// Whether this is `$` (no other set is empty).
    pub fn is_saved_result(&self) -> bool {
        self.0.is_empty()
    }

    /// The set of these numbers (ascending), runs written as ranges;
    /// `None` when there are none.
    pub fn from_sorted(numbers: impl IntoIterator<Item = u32>) -> Option<SequenceSet> {
        let mut ranges: Vec<(SeqNumber, SeqNumber)> = Vec::new();
        let mut run: Option<(u32, u32)> = None;
        for n in numbers {
            run = match run {
                Some((a, b)) if b.checked_add(1) == Some(n) => Some((a, n)),
                Some((a, b)) => {
                    ranges.push((SeqNumber::Value(a), SeqNumber::Value(b)));
                    Some((n, n))
                }
                None => Some((n, n)),
            };
        }
        if let Some((a, b)) = run {
            ranges.push((SeqNumber::Value(a), SeqNumber::Value(b)));
        }
        SequenceSet::new(ranges)
    }

    /// The ranges as given.
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.0
    }

    /// Whether `n` is in the set when `*` means `max`.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (a.resolve(max), b.resolve(max));
            a.min(b) <= n && n <= a.max(b)
        })
    }

    /// The set as sorted inclusive spans (`*` meaning `max`), each
    /// starting after the previous one ends; not clipped to `max`.
    pub fn spans(&self, max: u32) -> Vec<(u32, u32)> {
        let mut spans: Vec<(u32, u32)> = self
            .0
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.resolve(max), b.resolve(max));
                (a.min(b), a.max(b))
            })
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (lo, hi) in spans {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        merged
    }

    /// The numbers in the set that are `<= max` (`*` meaning `max`), sorted
    /// and without duplicates. Never yields more than `max` numbers.
    pub fn expand(&self, max: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for (lo, hi) in self.spans(max) {
            if lo > max {
                break;
            }
            // `*` of an empty mailbox is 0, which numbers nothing.
            out.extend(lo.max(1)..=hi.min(max));
        }
        out
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;

    #[test]
    fn spans_are_sorted_and_merged() {
        let v = SeqNumber::Value;
        let set = SequenceSet::new(vec![
            (v(10), v(5)),
            (v(1), v(2)),
            (v(3), v(3)),
            (v(20), SeqNumber::Largest),
            (v(7), v(8)),
        ])
        .unwrap();
        assert_eq!(set.spans(15), vec![(1, 3), (5, 10), (15, 20)]);
        let all = SequenceSet::new(vec![(v(1), SeqNumber::Largest)]).unwrap();
        assert_eq!(all.spans(0), vec![(0, 1)]);
        let top = SequenceSet::new(vec![(v(u32::MAX), v(u32::MAX)), (v(1), v(u32::MAX))]).unwrap();
        assert_eq!(top.spans(3), vec![(1, u32::MAX)]);
    }
}

fn parse_number(s: &[u8]) -> Option<SeqNumber> {
    if s == b"*" {
        return Some(SeqNumber::Largest);
    }
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) || s[0] == b'0' {
        return None;
    }
    let v: u64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    u32::try_from(v).ok().map(SeqNumber::Value)
}

impl fmt::Display for SequenceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_saved_result() {
            return f.write_str("$");
        }
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}:{b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_expands() {
        let s = SequenceSet::parse(b"1:*,3,5:7", 100).unwrap();
        assert_eq!(s.expand(4), vec![1, 2, 3, 4]);
        let s = SequenceSet::parse(b"7:5,2", 100).unwrap();
        assert_eq!(s.expand(10), vec![2, 5, 6, 7]);
        assert_eq!(s.to_string(), "7:5,2");
        assert!(s.contains(6, 10));
        assert!(!s.contains(3, 10));
        let s = SequenceSet::parse(b"*:*", 100).unwrap();
        assert_eq!(s.expand(9), vec![9]);
        assert_eq!(s.expand(0), Vec::<u32>::new());
        let s = SequenceSet::parse(b"4294967295", 100).unwrap();
        assert_eq!(s.expand(u32::MAX).len(), 1);
    }

    #[test]
    fn rejects_bad_sets() {
        for bad in [
            &b"0"[..],
            b"1:",
            b"a",
            b"",
            b",1",
            b"1,",
            b"-1",
            b"4294967296",
            b"99999999999",
            b"1:0",
            b"01",
            b"1::2",
        ] {
            assert!(SequenceSet::parse(bad, 100).is_none(), "{bad:?}");
        }
        assert!(SequenceSet::parse(b"1,2,3", 2).is_none());
    }
}
