//! IMAP URLs (RFC 5092) as CATENATE (RFC 4469) uses them: a message, or
//! a section or range of one, in a mailbox of the logged-in user, such as
//! `/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2/;PARTIAL=0.1024` or
//! `imap://alice@localhost/Drafts/;uid=3`. URLAUTH is not offered, so a
//! URL with `;URLAUTH=` names nothing here.

use super::parser::parse_section;
use super::types::Section;

/// What a message URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUrl {
    /// The user of an absolute URL's authority, if it names one.
    pub user: Option<String>,
    /// The mailbox name, percent-decoded (UTF-8, RFC 5092 3).
    pub mailbox: String,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    /// `None`: the whole message.
    pub section: Option<Section>,
    /// `;PARTIAL=offset[.length]`.
    pub partial: Option<(u32, Option<u32>)>,
}

/// `%XX` escapes undone; `None` for a broken escape.
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Strips `;NAME=` (any case) from the start of `s`.
fn strip_param<'a>(s: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let n = name.len();
    (s.len() > n + 1 && s[0] == b';' && s[1..=n].eq_ignore_ascii_case(name.as_bytes()))
        .then(|| &s[n + 1..])
        .and_then(|rest| rest.strip_prefix(b"="))
}

fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses a message URL; `None` if it is not one this server can follow.
pub fn parse_message_url(url: &[u8]) -> Option<MessageUrl> {
    let mut user = None;
    let path = if url.len() > 7 && url[..7].eq_ignore_ascii_case(b"imap://") {
        let rest = &url[7..];
        let slash = rest.iter().position(|&b| b == b'/')?;
        let authority = &rest[..slash];
        if let Some(at) = authority.iter().rposition(|&b| b == b'@') {
            let userinfo = &authority[..at];
            // `;AUTH=...` says how to log in, which does not matter here.
            let name = userinfo.split(|&b| b == b';').next()?;
            user = Some(String::from_utf8(percent_decode(name)?).ok()?);
        }
        &rest[slash..]
    } else {
        url
    };
    let path = path.strip_prefix(b"/")?;
    // The mailbox runs up to the `/;UID=` that starts the message part.
    let uid_at = (0..path.len())
        .find(|&i| path[i] == b'/' && strip_param(&path[i + 1..], "UID").is_some())?;
    let (mut mailbox_part, rest) = (&path[..uid_at], &path[uid_at + 1..]);
    let mut uid_validity = None;
    if let Some(semi) = mailbox_part.iter().position(|&b| b == b';') {
        uid_validity = Some(number(strip_param(&mailbox_part[semi..], "UIDVALIDITY")?)?);
        mailbox_part = &mailbox_part[..semi];
    }
    let mailbox = String::from_utf8(percent_decode(mailbox_part)?).ok()?;
    if mailbox.is_empty() {
        return None;
    }
    let mut pieces = rest.split(|&b| b == b'/');
    let uid = number(strip_param(pieces.next()?, "UID")?).filter(|&u| u != 0)?;
    let mut section = None;
    let mut partial = None;
    let mut next = pieces.next();
    if let Some(s) = next.and_then(|p| strip_param(p, "SECTION")) {
        section = Some(parse_section(&percent_decode(s)?)?);
        next = pieces.next();
    }
    if let Some(p) = next.and_then(|p| strip_param(p, "PARTIAL")) {
        let (offset, length) = match p.iter().position(|&b| b == b'.') {
            Some(dot) => (
                number(&p[..dot])?,
                Some(number(&p[dot + 1..]).filter(|&n| n != 0)?),
            ),
            None => (number(p)?, None),
        };
        partial = Some((offset, length));
        next = pieces.next();
    }
    // Anything left (`;URLAUTH=`, a second section) is not followed.
    if next.is_some() {
        return None;
    }
    Some(MessageUrl {
        user,
        mailbox,
        uid_validity,
        uid,
        section,
        partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SectionText;

    fn url(s: &str) -> Option<MessageUrl> {
        parse_message_url(s.as_bytes())
    }

    #[test]
    fn relative_urls_of_rfc_4469() {
        let u =
            url("/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2.MIME/;PARTIAL=0.1024").unwrap();
        assert_eq!(u.mailbox, "INBOX");
        assert_eq!(u.uid_validity, Some(385_759_045));
        assert_eq!(u.uid, 20);
        let section = u.section.unwrap();
        assert_eq!(section.part.len(), 2);
        assert_eq!(section.text, Some(SectionText::Mime));
        assert_eq!(u.partial, Some((0, Some(1024))));
        let u = url("/Drafts/;uid=3").unwrap();
        assert_eq!((u.mailbox.as_str(), u.uid, u.section), ("Drafts", 3, None));
        let u = url("/a%20b/c/;uid=7/;section=header").unwrap();
        assert_eq!(u.mailbox, "a b/c");
        assert_eq!(u.section.unwrap().text, Some(SectionText::Header));
        assert_eq!(
            url("/x/;uid=1/;partial=100000").unwrap().partial,
            Some((100_000, None))
        );
    }

    #[test]
    fn absolute_urls_name_their_user() {
        let u = url("imap://alice@localhost@127.0.0.1:1143/INBOX/;UID=4").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice@localhost"));
        let u = url("imap://bob;AUTH=*@example.net/INBOX/;UID=4").unwrap();
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(url("imap://example.net/INBOX/;UID=4").unwrap().user, None);
    }

    #[test]
    fn what_is_not_a_message_url() {
        for bad in [
            "",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/;UID=1",
            "/INBOX;UIDVALIDITY=/;UID=1",
            "/INBOX/;UID=1/;SECTION=BOGUS",
            "/INBOX/;UID=1/;URLAUTH=anonymous",
            "/IN%ZZ/;UID=1",
            "/INBOX/;UID=1/;PARTIAL=1.0",
            "imap://host",
        ] {
            assert_eq!(url(bad), None, "{bad}");
        }
    }
}
