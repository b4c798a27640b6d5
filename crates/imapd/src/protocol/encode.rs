//! Response encoding: strings in the right form, status responses and
//! response codes.

use super::sequence::SequenceSet;
use super::types::{is_astring_char, is_atom_char, Flag, Tag};

/// Strings longer than this go out as literals even when they could be quoted.
const MAX_QUOTED: usize = 1024;

fn quotable(s: &[u8]) -> bool {
    s.len() <= MAX_QUOTED
        && s.iter()
            .all(|&b| (0x01..0x80).contains(&b) && b != b'\r' && b != b'\n')
}

fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// Writes `s` as a quoted string, or a literal when it has CR, LF, NUL,
/// 8-bit bytes or is long.
pub fn quoted_or_literal(out: &mut Vec<u8>, s: &[u8]) {
    if quotable(s) {
        quoted(out, s)
    } else {
        literal(out, s)
    }
}

/// Writes `s` as an atom when it can be one (and is not `NIL`), else as
/// [`quoted_or_literal`].
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty()
        && s.len() <= MAX_QUOTED
        && s.iter().all(|&b| is_astring_char(b))
        && !s.eq_ignore_ascii_case(b"NIL")
    {
        out.extend_from_slice(s)
    } else {
        quoted_or_literal(out, s)
    }
}

/// [`astring`] for a session that may receive UTF-8 in quoted strings
/// (IMAP4rev2, RFC 9051's `QUOTED-CHAR`; UTF8=ACCEPT, RFC 6855 3): text
/// that is UTF-8 goes out quoted, as it can, rather than as a literal.
pub fn astring_utf8(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let quotable = !b.is_empty()
        && b.len() <= MAX_QUOTED
        && !b.iter().any(|&c| matches!(c, 0 | b'\r' | b'\n'));
    if quotable && b.iter().any(|&c| c >= 0x80) {
        quoted(out, b)
    } else {
        astring(out, b)
    }
}

/// Writes `NIL` for `None`, else a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => quoted_or_literal(out, s),
    }
}

/// Writes a parenthesised flag list.
pub fn flag_list(out: &mut Vec<u8>, flags: &[Flag]) {
    out.push(b'(');
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.to_text().as_bytes());
    }
    out.push(b')');
}

/// The status of a tagged or untagged status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    PreAuth,
    Bye,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
            Status::PreAuth => "PREAUTH",
            Status::Bye => "BYE",
        }
    }
}

/// A response code, the `[...]` after the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    Capability(Vec<String>),
    PermanentFlags {
        flags: Vec<Flag>,
        /// Adds `\*`: the client may create keywords.
        new_keywords: bool,
    },
    ReadOnly,
    ReadWrite,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unseen(u32),
    AppendUid {
        uid_validity: u32,
        uids: SequenceSet,
    },
    CopyUid {
        uid_validity: u32,
        from: SequenceSet,
        to: SequenceSet,
    },
    HighestModSeq(u64),
    NoModSeq,
    Modified(SequenceSet),
    Closed,
    NonExistent,
    AlreadyExists,
    AuthenticationFailed,
    Cannot,
    Limit,
    /// RFC 5530: the operation would put the user over a quota or the
    /// server over its storage.
    OverQuota,
    /// RFC 5530: the user may not do this (SETQUOTA without being an
    /// administrator).
    NoPerm,
    /// RFC 5530: a temporary failure (a subsystem is down); the client
    /// may try again later.
    Unavailable,
    /// RFC 5530: the server failed and trying again will not help.
    ServerBug,
    InUse,
    /// RFC 9051 7.1: DELETE of a mailbox that has mailboxes below it.
    HasChildren,
    /// RFC 4978: COMPRESS when compression is already in force.
    CompressionActive,
    Parse,
    /// RFC 5530: some messages asked for were expunged meanwhile.
    ExpungeIssued,
    /// RFC 3501 7.1: the charsets SEARCH supports.
    BadCharset(Vec<String>),
    /// RFC 3516: a part's Content-Transfer-Encoding BINARY cannot undo.
    UnknownCte,
    /// RFC 4469 / RFC 7889: a message over the size APPEND takes.
    TooBig,
    /// RFC 4469: a CATENATE URL that names nothing this user may read.
    BadUrl(Vec<u8>),
    /// RFC 8474: the id of a mailbox just created or selected.
    MailboxId(String),
    /// RFC 5465: NOTIFY asked for events the server does not support;
    /// the events it does.
    BadEvent(Vec<&'static str>),
    /// RFC 5465: the server cannot keep up with what NOTIFY asked for.
    NotificationOverflow,
    /// RFC 6154: a special use CREATE cannot give.
    UseAttr,
    /// RFC 5464: `METADATA ...`.
    Metadata(MetadataCode),
}

/// The `METADATA` response codes (RFC 5464 4.2.1, 4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataCode {
    /// GETMETADATA left out values longer than MAXSIZE; the longest.
    LongEntries(u64),
    /// SETMETADATA: a value longer than the server keeps.
    MaxSize(u32),
    /// SETMETADATA: more entries than the server keeps.
    TooMany,
}

fn code(out: &mut Vec<u8>, c: &Code) {
    let s = match c {
        Code::Alert => "ALERT".to_owned(),
        Code::Capability(caps) => format!("CAPABILITY {}", caps.join(" ")),
        Code::PermanentFlags {
            flags,
            new_keywords,
        } => {
            let mut list: Vec<String> = flags.iter().map(Flag::to_text).collect();
            if *new_keywords {
                list.push("\\*".into());
            }
            format!("PERMANENTFLAGS ({})", list.join(" "))
        }
        Code::ReadOnly => "READ-ONLY".into(),
        Code::ReadWrite => "READ-WRITE".into(),
        Code::TryCreate => "TRYCREATE".into(),
        Code::UidNext(n) => format!("UIDNEXT {n}"),
        Code::UidValidity(n) => format!("UIDVALIDITY {n}"),
        Code::Unseen(n) => format!("UNSEEN {n}"),
        Code::AppendUid { uid_validity, uids } => format!("APPENDUID {uid_validity} {uids}"),
        Code::CopyUid {
            uid_validity,
            from,
            to,
        } => format!("COPYUID {uid_validity} {from} {to}"),
        Code::HighestModSeq(n) => format!("HIGHESTMODSEQ {n}"),
        Code::NoModSeq => "NOMODSEQ".into(),
        Code::Modified(set) => format!("MODIFIED {set}"),
        Code::Closed => "CLOSED".into(),
        Code::NonExistent => "NONEXISTENT".into(),
        Code::AlreadyExists => "ALREADYEXISTS".into(),
        Code::AuthenticationFailed => "AUTHENTICATIONFAILED".into(),
        Code::Cannot => "CANNOT".into(),
        Code::Limit => "LIMIT".into(),
        Code::OverQuota => "OVERQUOTA".into(),
        Code::NoPerm => "NOPERM".into(),
        Code::Unavailable => "UNAVAILABLE".into(),
        Code::ServerBug => "SERVERBUG".into(),
        Code::InUse => "INUSE".into(),
        Code::HasChildren => "HASCHILDREN".into(),
        Code::CompressionActive => "COMPRESSIONACTIVE".into(),
        Code::Parse => "PARSE".into(),
        Code::ExpungeIssued => "EXPUNGEISSUED".into(),
        Code::BadCharset(names) => format!("BADCHARSET ({})", names.join(" ")),
        Code::UnknownCte => "UNKNOWN-CTE".into(),
        Code::TooBig => "TOOBIG".into(),
        Code::MailboxId(id) => format!("MAILBOXID ({id})"),
        Code::UseAttr => "USEATTR".into(),
        Code::Metadata(MetadataCode::LongEntries(n)) => format!("METADATA LONGENTRIES {n}"),
        Code::Metadata(MetadataCode::MaxSize(n)) => format!("METADATA MAXSIZE {n}"),
        Code::Metadata(MetadataCode::TooMany) => "METADATA TOOMANY".into(),
        Code::BadEvent(events) => format!("BADEVENT ({})", events.join(" ")),
        Code::NotificationOverflow => "NOTIFICATIONOVERFLOW".into(),
        // url-resp-text (RFC 4469 6): any octet but NUL, CR, LF and `]`.
        Code::BadUrl(url) => {
            let text: Vec<u8> = url
                .iter()
                .copied()
                .filter(|&b| !matches!(b, 0 | b'\r' | b'\n' | b']') && b < 0x80)
                .collect();
            format!("BADURL {}", String::from_utf8_lossy(&text))
        }
    };
    out.push(b'[');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"] ");
}

/// Human-readable text: CR and LF would end the line, so they become spaces.
fn text(out: &mut Vec<u8>, t: &str) {
    let t = if t.is_empty() { "done" } else { t };
    out.extend(
        t.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// `tag STATUS [CODE] text\r\n`, or `* STATUS ...` with no tag.
pub fn status(out: &mut Vec<u8>, tag: Option<&Tag>, st: Status, c: Option<&Code>, t: &str) {
    match tag {
        Some(tag) => out.extend_from_slice(tag.as_str().as_bytes()),
        None => out.push(b'*'),
    }
    out.push(b' ');
    out.extend_from_slice(st.as_str().as_bytes());
    out.push(b' ');
    if let Some(c) = c {
        code(out, c);
    }
    text(out, t);
    out.extend_from_slice(b"\r\n");
}

/// `* <data>\r\n`; `data` is already encoded.
pub fn untagged(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `+ text\r\n`.
pub fn continuation(out: &mut Vec<u8>, t: &str) {
    out.extend_from_slice(b"+ ");
    text(out, t);
    out.extend_from_slice(b"\r\n");
}

/// Writes an atom if `s` is one, else a string; for capability-like words.
pub fn atom_or_string(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty() && s.iter().all(|&b| is_atom_char(b)) {
        out.extend_from_slice(s)
    } else {
        quoted_or_literal(out, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn strings_take_the_right_form() {
        assert_eq!(enc(|o| astring(o, b"INBOX")), "INBOX");
        assert_eq!(enc(|o| astring(o, b"")), "\"\"");
        assert_eq!(enc(|o| astring(o, b"nil")), "\"nil\"");
        assert_eq!(enc(|o| astring(o, b"a b")), "\"a b\"");
        assert_eq!(enc(|o| astring(o, br#"a"b\c"#)), r#""a\"b\\c""#);
        assert_eq!(enc(|o| astring(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(enc(|o| astring(o, "é".as_bytes())), "{2}\r\né");
        assert_eq!(enc(|o| nstring(o, None)), "NIL");
        assert_eq!(enc(|o| nstring(o, Some(b"x"))), "\"x\"");
        assert_eq!(enc(|o| atom_or_string(o, b"IMAP4rev1")), "IMAP4rev1");
        let long = vec![b'a'; 2000];
        assert!(enc(|o| quoted_or_literal(o, &long)).starts_with("{2000}\r\n"));
    }

    #[test]
    fn status_responses() {
        let tag = Tag::new("a1").unwrap();
        assert_eq!(
            enc(|o| status(
                o,
                Some(&tag),
                Status::Ok,
                Some(&Code::ReadWrite),
                "SELECT completed"
            )),
            "a1 OK [READ-WRITE] SELECT completed\r\n"
        );
        assert_eq!(
            enc(|o| status(
                o,
                None,
                Status::Ok,
                Some(&Code::UidValidity(3857529045)),
                "UIDs valid"
            )),
            "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
        );
        let pf = Code::PermanentFlags {
            flags: vec![Flag::Deleted, Flag::Seen],
            new_keywords: true,
        };
        assert_eq!(
            enc(|o| status(o, None, Status::Ok, Some(&pf), "Limited")),
            "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
        );
        let set = SequenceSet::parse(b"1:3", 10).unwrap();
        let cu = Code::CopyUid {
            uid_validity: 9,
            from: set.clone(),
            to: SequenceSet::parse(b"10:12", 10).unwrap(),
        };
        assert_eq!(
            enc(|o| status(o, Some(&tag), Status::Ok, Some(&cu), "done")),
            "a1 OK [COPYUID 9 1:3 10:12] done\r\n"
        );
        let au = Code::AppendUid {
            uid_validity: 9,
            uids: SequenceSet::parse(b"4", 10).unwrap(),
        };
        assert_eq!(
            enc(|o| status(o, Some(&tag), Status::Ok, Some(&au), "")),
            "a1 OK [APPENDUID 9 4] done\r\n"
        );
        for (c, s) in [
            (Code::Alert, "ALERT"),
            (Code::ReadOnly, "READ-ONLY"),
            (Code::TryCreate, "TRYCREATE"),
            (Code::UidNext(4), "UIDNEXT 4"),
            (Code::Unseen(2), "UNSEEN 2"),
            (Code::HighestModSeq(7), "HIGHESTMODSEQ 7"),
            (Code::NonExistent, "NONEXISTENT"),
            (Code::AlreadyExists, "ALREADYEXISTS"),
            (Code::AuthenticationFailed, "AUTHENTICATIONFAILED"),
            (Code::Cannot, "CANNOT"),
            (Code::Limit, "LIMIT"),
            (Code::OverQuota, "OVERQUOTA"),
            (Code::NoPerm, "NOPERM"),
            (Code::Unavailable, "UNAVAILABLE"),
            (Code::ServerBug, "SERVERBUG"),
            (Code::InUse, "INUSE"),
            (Code::HasChildren, "HASCHILDREN"),
            (
                Code::Capability(vec!["IMAP4rev1".into(), "IDLE".into()]),
                "CAPABILITY IMAP4rev1 IDLE",
            ),
        ] {
            assert_eq!(
                enc(|o| status(o, Some(&tag), Status::No, Some(&c), "x\r\ny")),
                format!("a1 NO [{s}] x  y\r\n")
            );
        }
        assert_eq!(enc(|o| continuation(o, "Ready")), "+ Ready\r\n");
        assert_eq!(enc(|o| untagged(o, b"3 EXISTS")), "* 3 EXISTS\r\n");
        assert_eq!(
            enc(|o| flag_list(o, &[Flag::Seen, Flag::Keyword("$Junk".into())])),
            "(\\Seen $Junk)"
        );
    }
}
