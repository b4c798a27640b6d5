//! The base subject of RFC 5256 section 2.1: what SORT (SUBJECT) compares
//! and THREAD groups by, with the reply and forward markers (`Re:`,
//! `Fwd:`, `[fwd: …]`, a `(fwd)` trailer) and leading `[blob]`s taken off,
//! and whether any reply or forward marker was found (which THREAD needs).
//! The subject given is already decoded from RFC 2047 words (the store
//! keeps it so); the result is folded for the i;unicode-casemap
//! comparator (RFC 5051).

/// A subject reduced to what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseSubject {
    /// Folded ([`casemap`]): compare with `==` and `<`.
    pub text: String,
    /// A reply or forward marker was removed (RFC 5256 section 2.1's
    /// "reply or forward" of steps 2, 3 and 6).
    pub is_reply_or_forward: bool,
}

/// Folds text for i;unicode-casemap (RFC 5051): each character to its
/// simple title case (upper case where that is one character; a
/// character whose upper case is several, such as `ß`, stays), then
/// decomposed (NFKD), and what decomposing gave folded again (`ﬁ` is
/// `FI`, as Dovecot has it); the comparison is then by code point, which
/// UTF-8 byte order is. So `Über` sorts with `UBER`, before `zebra`, and
/// `_` after letters (as Dovecot sorts).
pub fn casemap(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    if text.is_ascii() {
        return text.to_ascii_uppercase();
    }
    fn title(c: char) -> char {
        let mut upper = c.to_uppercase();
        match (upper.next(), upper.next()) {
            (Some(u), None) => u,
            _ => c,
        }
    }
    text.chars().map(title).nfkd().map(title).collect()
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Length of a `subj-blob` (`"[" *BLOBCHAR "]" *WSP`) at the start of `s`.
fn blob_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = 1 + b[1..].iter().position(|&c| c == b'[' || c == b']')?;
    if b[close] != b']' {
        return None;
    }
    let mut n = close + 1;
    while b.get(n) == Some(&b' ') {
        n += 1;
    }
    Some(n)
}

/// Length of `*subj-blob subj-refwd` at the start of `s`, where
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn refwd_len(s: &str) -> Option<usize> {
    let mut n = 0;
    while let Some(len) = blob_len(&s[n..]) {
        n += len;
    }
    let rest = &s[n..];
    n += if starts_with_ignore_case(rest, "re") {
        2
    } else if starts_with_ignore_case(rest, "fwd") {
        3
    } else if starts_with_ignore_case(rest, "fw") {
        2
    } else {
        return None;
    };
    let b = s.as_bytes();
    while b.get(n) == Some(&b' ') {
        n += 1;
    }
    if let Some(len) = blob_len(&s[n..]) {
        n += len;
    }
    (b.get(n) == Some(&b':')).then_some(n + 1)
}

/// The base subject of `subject` (RFC 5256 section 2.1, steps 1 to 7).
pub fn base_subject(subject: &str) -> BaseSubject {
    // (1) Runs of white space become one space.
    let mut s = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if c == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(c);
    }
    let mut reply = false;
    loop {
        // (2) Trailers: "(fwd)" and white space, as long as there are any.
        loop {
            if s.ends_with(' ') {
                s.pop();
            } else if s.len() >= 5 && s.as_bytes()[s.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                s.truncate(s.len() - 5);
                reply = true;
            } else {
                break;
            }
        }
        // (3), (4) and (5): leaders, then a blob if something is left
        // after it, until neither is there.
        loop {
            let mut changed = false;
            loop {
                if s.starts_with(' ') {
                    s.remove(0);
                } else if let Some(n) = refwd_len(&s) {
                    s.drain(..n);
                    reply = true;
                } else {
                    break;
                }
                changed = true;
            }
            if let Some(n) = blob_len(&s) {
                if s[n..].bytes().any(|b| b != b' ') {
                    s.drain(..n);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // (6) "[fwd:" … "]" around the whole: take it off, and again.
        if starts_with_ignore_case(&s, "[fwd:") && s.ends_with(']') {
            s = s[5..s.len() - 1].to_owned();
            reply = true;
            continue;
        }
        break;
    }
    BaseSubject {
        text: casemap(&s),
        is_reply_or_forward: reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> (String, bool) {
        let b = base_subject(s);
        (b.text, b.is_reply_or_forward)
    }

    #[test]
    fn markers_blobs_and_trailers_come_off() {
        let cases = [
            ("Hello", "hello", false),
            ("Re: Hello", "hello", true),
            ("RE: re:Re : x", "x", true),
            ("Fwd: Fw: FW: x", "x", true),
            ("Re[2]: x", "x", true),
            ("[list] Re: x", "x", true),
            ("[list][other] Re: [list] x", "x", true),
            ("[list] x", "x", false),
            ("x (fwd)", "x", true),
            ("x (FWD) (fwd)  ", "x", true),
            ("[Fwd: Re: x]", "x", true),
            ("[fwd: [fwd: x] (fwd)]", "x", true),
            ("  spaced \t out\r\n  here ", "spaced out here", false),
            // A blob that is all there is stays.
            ("[only]", "[only]", false),
            ("Re: [only]", "[only]", true),
            ("", "", false),
            ("Re:", "", true),
            // Not a marker: a word that starts like one.
            ("Rework: x", "rework: x", false),
            ("Fwdx: y", "fwdx: y", false),
            // Decoded international subjects fold beyond ASCII.
            ("Re: ÄRGER über Grüße", "ärger über grüße", true),
            ("AW: Ελληνικά", "aw: ελληνικά", false),
        ];
        for (subject, text, reply) in cases {
            assert_eq!(base(subject), (casemap(text), reply), "{subject:?}");
        }
    }

    #[test]
    fn unfinished_blobs_are_text() {
        assert_eq!(base("[open Re: x").0, "[OPEN RE: X");
        assert_eq!(base("[a[b]] x").0, "[A[B]] X");
    }

    #[test]
    fn casemap_folds_case_and_decomposes() {
        assert_eq!(casemap("ÜBER"), casemap("über"));
        assert!(casemap("Über") < casemap("zebra"));
        assert_eq!(casemap("ﬁle"), "FILE");
        assert!(casemap("_") > casemap("z"));
        assert_eq!(casemap("ß"), "ß");
        assert_eq!(casemap("ÅNGSTRÖM"), casemap("Ångström"));
    }
}
