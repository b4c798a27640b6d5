//! IMAP4rev2 (RFC 9051) beside IMAP4rev1, and UTF8=ACCEPT (RFC 6855):
//! what a session does differently once its client has enabled them.
//!
//! `IMAP4rev2` is advertised before and after login with `IMAP4rev1`; a
//! session speaks RFC 3501 until `ENABLE IMAP4rev2` (RFC 9051 6.3.1),
//! then RFC 9051's forms (its Appendix E lists the differences). Those
//! that concern what we send:
//!
//! - Mailbox names are UTF-8, in and out, never modified UTF-7 (RFC 9051
//!   5.1 and Appendix A); `&` is just a character. A name that is not
//!   UTF-8 names no mailbox (`NO [NONEXISTENT]`, or `NO [CANNOT]` for
//!   CREATE). Every name from the client, in either form, is put in
//!   Unicode normalization form C (RFC 9051 5.1 allows that in place of
//!   refusing it), so `Entwürfe` is one mailbox however its `ü` was
//!   written; a CREATE or SELECT by a name that was not in NFC says the
//!   stored name with `("OLDNAME" (sent))` in a LIST (RFC 9051 6.3.9.7).
//! - No `\Recent` (RFC 9051 removed it): no `* n RECENT` at SELECT or
//!   after new mail, no `\Recent` in FLAGS, and the session claims no
//!   message's recency, so the IMAP4rev1 sessions beside it still see
//!   new mail as `\Recent` (RFC 9051 is silent on mixed sessions; this is
//!   our choice: a flag nobody sees should not be taken from those who do). The RECENT, NEW and OLD search keys (gone
//!   from RFC 9051's grammar) are still taken: nothing is recent, so
//!   RECENT and NEW match nothing and OLD every message.
//! - SELECT and EXAMINE: no `[UNSEEN n]` (RFC 9051 6.3.2 dropped it), a
//!   `* LIST` of the mailbox (its attributes as LIST gives them), and
//!   `* OK [CLOSED]` when they leave a selected mailbox.
//! - SEARCH and UID SEARCH without RETURN answer as `RETURN (ALL)`: `*
//!   ESEARCH (TAG "t") [UID] ALL set`, without ALL when nothing matched
//!   (RFC 9051 6.4.4 and 7.3.4). SORT and THREAD are unchanged.
//! - DELETE of a mailbox with mailboxes below it: `NO [HASCHILDREN]`
//!   (RFC 9051 7.1) in place of `[INUSE]`.
//!
//! What RFC 9051 requires that is the same in both: STATUS DELETED and
//! SIZE, LIST-EXTENDED with `\NonExistent`, LIST-STATUS, SPECIAL-USE,
//! CHILDREN, LITERAL- (served by LITERAL+), BINARY, UNSELECT, MOVE,
//! UIDPLUS, ESEARCH, SEARCHRES, NAMESPACE, IDLE, SASL-IR and ENABLE.
//! LSUB, CHECK and the RFC822 FETCH items RFC 9051 dropped still work, as
//! does STATUS RECENT (the store's count). ENVELOPE and BODYSTRUCTURE
//! strings with 8-bit bytes stay literals, which both versions allow.
//!
//! UTF8=ACCEPT, after `ENABLE UTF8=ACCEPT`: mailbox names in UTF-8 as
//! above; `APPEND box UTF8 (~{n})` (also as a CATENATE part) takes a
//! message with UTF-8 in its header (both are refused with `BAD` before
//! either ENABLE); SEARCH, SORT and THREAD with a charset other than UTF-8
//! get `BAD` (RFC 6855 3, errata 4029; SEARCH's `CHARSET UTF-8`, which
//! the RFC asks clients not to send, is taken: it conflicts with nothing).
//! Messages are served as stored, with or without it, as Dovecot does.
//! ENABLE of anything else unknown is ignored (RFC 5161 3.1).

use std::borrow::Cow;

use unicode_normalization::{is_nfc, UnicodeNormalization};

use super::{mailbox, Session};
use crate::protocol::{decode_utf7, encode_utf7, CommandKind, MailboxName, SearchReturn, Tag};

/// `name` in Unicode normalization form C.
fn nfc(name: &str) -> Cow<'_, str> {
    if is_nfc(name) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(name.nfc().collect())
    }
}

/// A mailbox name (or LIST pattern) as the client sent it, in UTF-8
/// (`utf8`) or modified UTF-7, as the store keeps names: decoded and in
/// NFC. `None` when it is not valid in its form.
pub(super) fn decode_name(bytes: &[u8], utf8: bool) -> Option<String> {
    if utf8 {
        std::str::from_utf8(bytes).ok().map(|n| nfc(n).into_owned())
    } else {
        decode_utf7(bytes).map(|n| nfc(&n).into_owned())
    }
}

/// A stored mailbox name in the form the client uses, which is also the
/// form LIST patterns match.
pub(super) fn wire_form(name: &str, utf8: bool) -> Cow<'_, str> {
    if utf8 {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(encode_utf7(name))
    }
}

/// A LIST or LSUB pattern in the form names are matched in: patterns in
/// UTF-8 are put in NFC too, so that they match what was stored.
pub(super) fn pattern_form(pattern: Vec<u8>, utf8: bool) -> Vec<u8> {
    match std::str::from_utf8(&pattern) {
        Ok(p) if utf8 && !is_nfc(p) => p.nfc().collect::<String>().into_bytes(),
        _ => pattern,
    }
}

impl Session {
    /// Whether the client enabled IMAP4rev2.
    pub(super) fn rev2(&self) -> bool {
        self.enabled.imap4rev2
    }

    /// Whether mailbox names are UTF-8 on the wire (IMAP4rev2 or
    /// UTF8=ACCEPT enabled) rather than modified UTF-7.
    pub(super) fn utf8_names(&self) -> bool {
        self.enabled.imap4rev2 || self.enabled.utf8_accept
    }

    /// The store's name for a mailbox name from this client
    /// ([`mailbox::store_name`] in its form).
    pub(super) fn store_name(&self, name: &MailboxName) -> Option<String> {
        mailbox::store_name(name, self.utf8_names())
    }

    /// The name as the client sent it, when it was UTF-8 but not in NFC
    /// (what OLDNAME says, RFC 9051 6.3.9.7).
    pub(super) fn denormalized_name(&self, name: &MailboxName) -> Option<String> {
        let MailboxName::Other(bytes) = name else {
            return None;
        };
        let sent = std::str::from_utf8(bytes).ok()?;
        (self.utf8_names() && !is_nfc(sent)).then(|| sent.to_owned())
    }

    /// Writes a stored mailbox name in this client's form
    /// ([`mailbox::wire_name`]).
    pub(super) fn wire_name(&self, out: &mut Vec<u8>, name: &str) {
        mailbox::wire_name(out, name, self.utf8_names())
    }

    /// With IMAP4rev2 on, SEARCH without RETURN is `SEARCH RETURN (ALL)`
    /// (RFC 9051 6.4.4): its answer is `* ESEARCH`.
    pub(super) fn rev2_search(&self, kind: CommandKind) -> CommandKind {
        match kind {
            CommandKind::Search {
                uid,
                charset,
                criteria,
            } if self.rev2() => CommandKind::SearchReturning {
                uid,
                returns: SearchReturn {
                    all: true,
                    ..SearchReturn::default()
                },
                charset,
                criteria,
            },
            kind => kind,
        }
    }

    /// After `ENABLE UTF8=ACCEPT` strings are UTF-8, so a charset label
    /// that says otherwise conflicts (RFC 6855 3 and its errata 4029):
    /// `BAD` for SEARCH, SORT and THREAD with a charset other than UTF-8.
    /// RFC 6855 asks clients to send no CHARSET in SEARCH and says a server
    /// SHOULD refuse one; `CHARSET UTF-8` conflicts with nothing, so it is
    /// taken, for clients that always send it. True when refused.
    pub(super) fn refuses_charset(&mut self, tag: &Tag, kind: &CommandKind) -> bool {
        if !self.enabled.utf8_accept {
            return false;
        }
        let not_utf8 = |charset: &str| !charset.eq_ignore_ascii_case("UTF-8");
        let refused = match kind {
            CommandKind::Search { charset, .. } | CommandKind::SearchReturning { charset, .. } => {
                charset.as_deref().is_some_and(not_utf8)
            }
            CommandKind::Sort { charset, .. } | CommandKind::Thread { charset, .. } => {
                not_utf8(charset)
            }
            _ => false,
        };
        if refused {
            self.bad(
                tag,
                "Charset conflicts with UTF8=ACCEPT: strings are UTF-8 (RFC 6855 3)",
            );
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_either_form_are_stored_in_nfc() {
        assert_eq!(
            decode_name("Entwürfe".as_bytes(), true).unwrap(),
            "Entwürfe"
        );
        assert_eq!(decode_name(b"Entw&APw-rfe", false).unwrap(), "Entwürfe");
        // u + COMBINING DIAERESIS, in UTF-8 and in modified UTF-7.
        let decomposed = "Entwu\u{308}rfe";
        assert_eq!(
            decode_name(decomposed.as_bytes(), true).unwrap(),
            "Entwürfe"
        );
        let utf7 = encode_utf7(decomposed);
        assert_eq!(decode_name(utf7.as_bytes(), false).unwrap(), "Entwürfe");
        // `&` is a character in UTF-8, a shift in modified UTF-7.
        assert_eq!(decode_name(b"A&B", true).unwrap(), "A&B");
        assert!(decode_name(b"A&B", false).is_none());
        assert!(decode_name(b"\xff\xfe", true).is_none());
        assert!(decode_name("日本語".as_bytes(), false).is_none());
    }

    #[test]
    fn names_go_out_in_the_clients_form() {
        let line = |name: &str, utf8: bool| {
            let mut out = Vec::new();
            mailbox::wire_name(&mut out, name, utf8);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line("日本語", false), "&ZeVnLIqe-");
        assert_eq!(line("日本語", true), "\"日本語\"");
        assert_eq!(line("A&B", false), "A&-B");
        assert_eq!(line("A&B", true), "A&B");
        assert_eq!(line("Sent Items", true), "\"Sent Items\"");
        assert_eq!(line("Say \"hi\"", true), "\"Say \\\"hi\\\"\"");
        assert_eq!(wire_form("Entwürfe", false), "Entw&APw-rfe");
        assert_eq!(wire_form("Entwürfe", true), "Entwürfe");
        let pattern = pattern_form("Entwu\u{308}%".as_bytes().to_vec(), true);
        assert_eq!(pattern, "Entwü%".as_bytes());
    }
}
