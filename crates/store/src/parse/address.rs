//! Address lists as written (RFC 5322 3.4, with the obsolete forms of 4.4),
//! for IMAP's ENVELOPE: nothing decoded, nothing dropped.
//!
//! What real mail holds is not always RFC 5322, so the parser recovers as
//! Dovecot does and keeps what it can: a lone word (`localonly`) is a
//! mailbox without a domain, several words without an address are a name
//! without a mailbox, `<>` is a mailbox with neither part, and a comment
//! after an address without a display name (`bob@x (Bob)`) is its name.

use crate::{HeaderAddress, RawText};

/// Parses one address field's value (unfolded).
pub(crate) fn parse_address_list(value: &[u8]) -> Vec<HeaderAddress> {
    let tokens = lex(value);
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        out: Vec::new(),
    };
    p.list();
    p.out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An atom (dots and 8-bit bytes included) or a quoted string's
    /// content, unescaped.
    Word { text: Vec<u8>, quoted: bool },
    /// A comment's content as written, nested parentheses kept.
    Comment(Vec<u8>),
    /// `[…]` as written.
    Literal(Vec<u8>),
    /// One of `<>@,;:`.
    Special(u8),
    /// A run of blanks (it separates words of a phrase).
    Space,
}

fn lex(v: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                while i < v.len() && matches!(v[i], b' ' | b'\t' | b'\r' | b'\n') {
                    i += 1;
                }
                out.push(Token::Space);
            }
            b'(' => {
                let start = i + 1;
                let mut depth = 0usize;
                while i < v.len() {
                    match v[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                let end = i.min(v.len());
                out.push(Token::Comment(v[start.min(end)..end].to_vec()));
                i = end + 1;
            }
            b'"' => {
                let mut text = Vec::new();
                i += 1;
                while i < v.len() && v[i] != b'"' {
                    if v[i] == b'\\' && i + 1 < v.len() {
                        i += 1;
                    }
                    text.push(v[i]);
                    i += 1;
                }
                i += 1;
                out.push(Token::Word { text, quoted: true });
            }
            b'[' => {
                let start = i;
                while i < v.len() && v[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(v.len());
                out.push(Token::Literal(v[start..i].to_vec()));
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' => {
                out.push(Token::Special(b));
                i += 1;
            }
            _ => {
                let start = i;
                while i < v.len()
                    && !matches!(
                        v[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'('
                            | b'"'
                            | b'['
                            | b'<'
                            | b'>'
                            | b'@'
                            | b','
                            | b';'
                            | b':'
                    )
                {
                    i += 1;
                }
                out.push(Token::Word {
                    text: v[start..i].to_vec(),
                    quoted: false,
                });
            }
        }
    }
    out
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    out: Vec<HeaderAddress>,
}

/// The words of a phrase and what followed them.
#[derive(Default)]
struct Phrase {
    words: Vec<Vec<u8>>,
    /// The last comment seen.
    comment: Option<Vec<u8>>,
}

impl Phrase {
    /// The words joined by single spaces, quotes gone; `None` if empty.
    fn text(&self) -> Option<RawText> {
        let mut out: Vec<u8> = Vec::new();
        for w in self.words.iter().filter(|w| !w.is_empty()) {
            if !out.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(w);
        }
        (!out.is_empty()).then_some(RawText(out))
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(Token::Space | Token::Comment(_))) {
            self.pos += 1;
        }
    }

    fn list(&mut self) {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return,
                Some(Token::Special(b',' | b';' | b'>')) => self.pos += 1,
                Some(_) => self.address(false),
            }
        }
    }

    /// One mailbox or group; `in_group` refuses a group within a group.
    fn address(&mut self, in_group: bool) {
        let phrase = self.phrase();
        match self.peek() {
            Some(Token::Special(b':')) if !in_group => {
                self.pos += 1;
                self.out.push(HeaderAddress::GroupStart {
                    name: phrase.text().unwrap_or_default(),
                });
                self.group_members();
                self.out.push(HeaderAddress::GroupEnd);
            }
            Some(Token::Special(b'<')) => {
                self.pos += 1;
                self.angle_addr(phrase.text());
                self.skip_to_separator();
            }
            Some(Token::Special(b'@')) => {
                // An addr-spec: the phrase was its local part.
                let local = phrase.words.concat();
                self.pos += 1;
                let (domain, comment) = self.domain();
                self.out.push(HeaderAddress::Mailbox {
                    name: comment.map(RawText),
                    route: None,
                    local_part: (!local.is_empty()).then_some(RawText(local)),
                    domain,
                });
                self.skip_to_separator();
            }
            _ => {
                match phrase.words.len() {
                    0 => {}
                    // A lone word is a mailbox without a domain.
                    1 => self.out.push(HeaderAddress::Mailbox {
                        name: phrase.comment.map(RawText),
                        route: None,
                        local_part: Some(RawText(phrase.words[0].clone())),
                        domain: None,
                    }),
                    // Words without an address: a name without a mailbox.
                    _ => self.out.push(HeaderAddress::Mailbox {
                        name: phrase.text(),
                        route: None,
                        local_part: None,
                        domain: None,
                    }),
                }
                self.skip_to_separator();
            }
        }
    }

    /// Words (and the dots of an obsolete phrase) up to a special.
    fn phrase(&mut self) -> Phrase {
        let mut phrase = Phrase::default();
        let mut glue = false;
        while let Some(t) = self.peek() {
            match t {
                Token::Word { text, .. } => {
                    // Words written without a blank between them (`a."b"`)
                    // are one word.
                    match phrase.words.last_mut() {
                        Some(last) if glue => last.extend_from_slice(text),
                        _ => phrase.words.push(text.clone()),
                    }
                    glue = true;
                }
                Token::Literal(text) => {
                    phrase.words.push(text.clone());
                    glue = true;
                }
                Token::Comment(c) => {
                    phrase.comment = Some(c.clone());
                    glue = false;
                }
                Token::Space => glue = false,
                Token::Special(_) => break,
            }
            self.pos += 1;
        }
        phrase
    }

    /// After `<`: an optional source route, an addr-spec, `>`.
    fn angle_addr(&mut self, name: Option<RawText>) {
        self.skip_blanks();
        let mut route = None;
        if self.peek() == Some(&Token::Special(b'@')) {
            // `@a,@b:` up to the colon, blanks and comments dropped.
            let mut text = Vec::new();
            while let Some(t) = self.peek() {
                match t {
                    Token::Special(b':') => {
                        self.pos += 1;
                        break;
                    }
                    Token::Special(b'>') => break,
                    Token::Special(c) => text.push(*c),
                    Token::Word { text: w, .. } | Token::Literal(w) => text.extend_from_slice(w),
                    Token::Space | Token::Comment(_) => {}
                }
                self.pos += 1;
            }
            route = Some(RawText(text));
        }
        let mut local = Vec::new();
        let mut domain = None;
        while let Some(t) = self.peek() {
            match t {
                Token::Special(b'>') => {
                    self.pos += 1;
                    break;
                }
                Token::Special(b'@') => {
                    self.pos += 1;
                    domain = self.domain().0;
                }
                Token::Word { text, .. } | Token::Literal(text) => {
                    local.extend_from_slice(text);
                    self.pos += 1;
                }
                Token::Space | Token::Comment(_) => self.pos += 1,
                // `,` or `;` in an unclosed bracket ends the address.
                Token::Special(_) => break,
            }
        }
        self.out.push(HeaderAddress::Mailbox {
            name,
            route,
            local_part: (!local.is_empty()).then_some(RawText(local)),
            domain,
        });
    }

    /// After `@`: the domain (atoms and dots, or a literal), and the last
    /// comment after it.
    fn domain(&mut self) -> (Option<RawText>, Option<Vec<u8>>) {
        let mut text = Vec::new();
        let mut comment = None;
        let mut done = false;
        while let Some(t) = self.peek() {
            match t {
                Token::Word { text: w, .. } | Token::Literal(w) => {
                    // After blanks only a dot goes on (`ex . com`, RFC
                    // 5322 4.4); another word is not part of the domain.
                    if done && !w.starts_with(b".") {
                        break;
                    }
                    text.extend_from_slice(w);
                    done = false;
                }
                Token::Comment(c) => {
                    comment = Some(c.clone());
                    done = !text.is_empty() && !text.ends_with(b".");
                }
                Token::Space => done = !text.is_empty() && !text.ends_with(b"."),
                Token::Special(_) => break,
            }
            self.pos += 1;
        }
        ((!text.is_empty()).then_some(RawText(text)), comment)
    }

    /// Mailboxes up to the `;` that ends a group (or the end).
    fn group_members(&mut self) {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return,
                Some(Token::Special(b';')) => {
                    self.pos += 1;
                    return;
                }
                Some(Token::Special(b',' | b'>' | b':')) => self.pos += 1,
                Some(_) => self.address(true),
            }
        }
    }

    /// Skips what is left of a malformed address, up to `,` or `;`.
    fn skip_to_separator(&mut self) {
        while let Some(t) = self.peek() {
            if matches!(t, Token::Special(b',' | b';')) {
                return;
            }
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: Option<&str>, local: Option<&str>, domain: Option<&str>) -> HeaderAddress {
        HeaderAddress::Mailbox {
            name: name.map(RawText::from),
            route: None,
            local_part: local.map(RawText::from),
            domain: domain.map(RawText::from),
        }
    }

    fn list(v: &[u8]) -> Vec<HeaderAddress> {
        parse_address_list(v)
    }

    /// Issue 10: a local part alone is kept, without a domain.
    #[test]
    fn local_part_without_domain() {
        assert_eq!(
            list(b"localonly, bob@example.com"),
            [
                mailbox(None, Some("localonly"), None),
                mailbox(None, Some("bob"), Some("example.com"))
            ]
        );
        assert_eq!(list(b"a@"), [mailbox(None, Some("a"), None)]);
        assert_eq!(list(b"@b"), [mailbox(None, None, Some("b"))]);
        assert_eq!(list(b"<>"), [mailbox(None, None, None)]);
        assert_eq!(list(b"<broken"), [mailbox(None, Some("broken"), None)]);
        assert_eq!(
            list(b"Undisclosed recipients"),
            [mailbox(Some("Undisclosed recipients"), None, None)]
        );
        assert!(list(b"").is_empty());
        assert!(list(b" , ,").is_empty());
    }

    /// Issue 10: names as written, encoded-words and 8-bit bytes kept.
    #[test]
    fn names_as_written() {
        assert_eq!(
            list(b"\"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" <a@b>"),
            [mailbox(
                Some("=?utf-8?q?Gr=C3=BC=C3=9Fe?="),
                Some("a"),
                Some("b")
            )]
        );
        assert_eq!(
            list(b"=?x-unknown?q?abc=E9?= <c@d>, Caf\xe9 <i@j>"),
            [
                mailbox(Some("=?x-unknown?q?abc=E9?="), Some("c"), Some("d")),
                HeaderAddress::Mailbox {
                    name: Some(RawText(b"Caf\xe9".to_vec())),
                    route: None,
                    local_part: Some("i".into()),
                    domain: Some("j".into()),
                }
            ]
        );
        assert_eq!(
            list(b"John   Q.  Public <jqp@x>, \"Doe, John\" <jd@x>"),
            [
                mailbox(Some("John Q. Public"), Some("jqp"), Some("x")),
                mailbox(Some("Doe, John"), Some("jd"), Some("x"))
            ]
        );
        assert_eq!(
            list(b"\"q\\\"x\" <c@d>, \"\" <rt@x>, John (middle) Smith <js@x>"),
            [
                mailbox(Some("q\"x"), Some("c"), Some("d")),
                mailbox(None, Some("rt"), Some("x")),
                mailbox(Some("John Smith"), Some("js"), Some("x"))
            ]
        );
    }

    #[test]
    fn comments_name_bare_addresses() {
        assert_eq!(
            list(b"(comment) k@l (Kay), a@b (x (nested) y), <c@d> (not a name)"),
            [
                mailbox(Some("Kay"), Some("k"), Some("l")),
                mailbox(Some("x (nested) y"), Some("a"), Some("b")),
                mailbox(None, Some("c"), Some("d"))
            ]
        );
    }

    #[test]
    fn groups_routes_literals() {
        assert_eq!(
            list(b"undisclosed-recipients:;"),
            [
                HeaderAddress::GroupStart {
                    name: "undisclosed-recipients".into()
                },
                HeaderAddress::GroupEnd
            ]
        );
        assert_eq!(
            list(b"G: a@b, \"c\" <c@d>;, e@f, H: x@y"),
            [
                HeaderAddress::GroupStart { name: "G".into() },
                mailbox(None, Some("a"), Some("b")),
                mailbox(Some("c"), Some("c"), Some("d")),
                HeaderAddress::GroupEnd,
                mailbox(None, Some("e"), Some("f")),
                HeaderAddress::GroupStart { name: "H".into() },
                mailbox(None, Some("x"), Some("y")),
                HeaderAddress::GroupEnd,
            ]
        );
        assert_eq!(
            list(b"Mary Smith <@machine.tld:mary@example.net>, <@a, @b:c@d>"),
            [
                HeaderAddress::Mailbox {
                    name: Some("Mary Smith".into()),
                    route: Some("@machine.tld".into()),
                    local_part: Some("mary".into()),
                    domain: Some("example.net".into()),
                },
                HeaderAddress::Mailbox {
                    name: None,
                    route: Some("@a,@b".into()),
                    local_part: Some("c".into()),
                    domain: Some("d".into()),
                }
            ]
        );
        assert_eq!(
            list(b"user@[1.2.3.4], \"a b\"@c.d, j . d @ ex . com"),
            [
                mailbox(None, Some("user"), Some("[1.2.3.4]")),
                mailbox(None, Some("a b"), Some("c.d")),
                mailbox(None, Some("j.d"), Some("ex.com")),
            ]
        );
    }

    #[test]
    fn junk_never_panics() {
        for v in [
            &b"<<<>>>"[..],
            b"\"unclosed",
            b"(unclosed",
            b"[unclosed",
            b"a@b@c",
            b":::;;;",
            b"@",
            b"<@",
            b"\\",
            b"\"\\",
            b"\xff\xfe <\xff@\xfe>",
        ] {
            let _ = list(v);
        }
        assert_eq!(
            list(b"John <j@x> extra, e@f"),
            [
                mailbox(Some("John"), Some("j"), Some("x")),
                mailbox(None, Some("e"), Some("f"))
            ]
        );
    }
}
