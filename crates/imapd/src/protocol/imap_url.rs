//! IMAP URLs (RFC 5092) as CATENATE (RFC 4469) uses them: a message, or
//! a section or range of one, in a mailbox of the logged-in user, such as
//! `/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2/;PARTIAL=0.1024` or
//! `imap://alice@localhost/Drafts/;uid=3`; and URLAUTH URLs (RFC 4467),
//! which [`parse_auth_url`] reads.

use super::parser::parse_section;
use super::types::Section;

/// What a message URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUrl {
    /// The user of an absolute URL's authority, if it names one.
    pub user: Option<String>,
    /// The host of an absolute URL, without its port, lower-cased.
    pub host: Option<String>,
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
    let mut host = None;
    let path = if url.len() > 7 && url[..7].eq_ignore_ascii_case(b"imap://") {
        let rest = &url[7..];
        let slash = rest.iter().position(|&b| b == b'/')?;
        let authority = &rest[..slash];
        let host_part = match authority.iter().rposition(|&b| b == b'@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        };
        let host_part = if host_part.starts_with(b"[") {
            // An IPv6 literal keeps its colons.
            host_part
        } else {
            host_part.split(|&b| b == b':').next()?
        };
        host = Some(
            String::from_utf8(host_part.to_vec())
                .ok()?
                .to_ascii_lowercase(),
        );
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
        host,
        mailbox,
        uid_validity,
        uid,
        section,
        partial,
    })
}

impl MessageUrl {
    /// Whether the URL's user is the account `address`: the same, or
    /// (as `imap://alice@example.org/` is usually written) the local part
    /// with the URL's host as the domain. A URL without a user is
    /// anybody's.
    pub fn is_of(&self, address: &str) -> bool {
        let Some(user) = &self.user else {
            return true;
        };
        if user.eq_ignore_ascii_case(address) {
            return true;
        }
        match (&self.host, address.rsplit_once('@')) {
            (Some(host), Some((local, domain))) => {
                !user.contains('@')
                    && user.eq_ignore_ascii_case(local)
                    && host.eq_ignore_ascii_case(domain)
            }
            _ => false,
        }
    }

    /// The account address the URL's user names: itself, or with the
    /// URL's host as the domain when it has none.
    pub fn owner_address(&self) -> Option<String> {
        let user = self.user.as_ref()?;
        Some(match (&self.host, user.contains('@')) {
            (Some(host), false) => format!("{user}@{host}").to_ascii_lowercase(),
            _ => user.to_ascii_lowercase(),
        })
    }
}

/// Who may fetch a URLAUTH-authorized URL (RFC 4467 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAccess {
    /// `submit+user`: the submission server, acting for that user.
    Submit(String),
    /// `user+user`: that user, logged in.
    User(String),
    /// `authuser`: anybody logged in to this server.
    AuthUser,
    /// `anonymous`: anybody.
    Anonymous,
}

/// A URLAUTH URL (RFC 4467): `imap://user@host/mailbox;UIDVALIDITY=n/;UID=n
/// [/;SECTION=s][/;PARTIAL=o.l][;EXPIRE=t];URLAUTH=access[:mech:token]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUrl {
    /// What the URL names; `user` is always there.
    pub url: MessageUrl,
    /// `;EXPIRE=`, as seconds since the epoch.
    pub expire: Option<i64>,
    pub access: UrlAccess,
    /// The URL up to and with the access identifier: what the token signs.
    pub rump: Vec<u8>,
    /// `:mechanism:token`, upper-cased mechanism, when authorized.
    pub authorization: Option<(String, String)>,
}

/// Finds `needle` (ASCII, any case) in `hay`, the last one.
fn rfind_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    (0..=hay.len().checked_sub(needle.len())?)
        .rev()
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Parses a URL with `;URLAUTH=`; `None` if it is not an absolute message
/// URL with a user and a well-formed access identifier (and expiry).
pub fn parse_auth_url(url: &[u8]) -> Option<AuthUrl> {
    if !(url.len() > 7 && url[..7].eq_ignore_ascii_case(b"imap://")) {
        return None;
    }
    let at = rfind_ignore_case(url, b";URLAUTH=")?;
    let after = &url[at + 9..];
    let mut parts = after.split(|&b| b == b':');
    let access_raw = parts.next()?;
    let authorization = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => None,
        (Some(mech), Some(token), None) if !mech.is_empty() && !token.is_empty() => Some((
            String::from_utf8(mech.to_vec()).ok()?.to_ascii_uppercase(),
            String::from_utf8(token.to_vec()).ok()?,
        )),
        _ => return None,
    };
    let rump = url[..at + 9 + access_raw.len()].to_vec();
    let lower = String::from_utf8(access_raw.to_vec()).ok()?;
    let user_of = |rest: &str| -> Option<String> {
        let user = String::from_utf8(percent_decode(rest.as_bytes())?).ok()?;
        (!user.is_empty()).then_some(user)
    };
    let access = match lower.to_ascii_lowercase().as_str() {
        "authuser" => UrlAccess::AuthUser,
        "anonymous" => UrlAccess::Anonymous,
        l if l.starts_with("submit+") => UrlAccess::Submit(user_of(&lower[7..])?),
        l if l.starts_with("user+") => UrlAccess::User(user_of(&lower[5..])?),
        _ => return None,
    };
    let mut base = &url[..at];
    let mut expire = None;
    if let Some(e) = rfind_ignore_case(base, b";EXPIRE=") {
        expire = Some(parse_rfc3339(&base[e + 8..])?);
        base = &base[..e];
    }
    let url = parse_message_url(base)?;
    url.user.as_ref()?;
    Some(AuthUrl {
        url,
        expire,
        access,
        rump,
        authorization,
    })
}

/// An RFC 3339 date-time (`2026-12-03T18:00:00Z`, `...T18:00:00.5+01:00`)
/// as seconds since the epoch.
fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    if s.len() < 20 || !s.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let d: Vec<&str> = date.split('-').collect();
    let (year, month, day) = match d.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => (num(y)?, num(m)?, num(d)?),
        _ => return None,
    };
    let rest = rest.strip_prefix(['T', 't'])?;
    let (time, mut zone) = rest.split_at(8);
    let t: Vec<&str> = time.split(':').collect();
    let (hour, minute, second) = match t.as_slice() {
        [h, m, s] if h.len() == 2 && m.len() == 2 && s.len() == 2 => (num(h)?, num(m)?, num(s)?),
        _ => return None,
    };
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        zone = &frac[digits..];
    }
    let offset = match zone {
        "Z" | "z" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) && &z[3..4] == ":" => {
            let minutes = num(&z[1..3])? * 60 + num(&z[4..6])?;
            if z.starts_with('-') {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 of a civil date.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60)
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

    #[test]
    fn whose_url() {
        let u = url("imap://alice%40localhost@localhost:1143/INBOX/;UID=4").unwrap();
        assert_eq!(u.host.as_deref(), Some("localhost"));
        assert!(u.is_of("alice@localhost"));
        assert_eq!(u.owner_address().as_deref(), Some("alice@localhost"));
        let u = url("imap://Alice@LocalHost/INBOX/;UID=4").unwrap();
        assert!(u.is_of("alice@localhost"));
        assert!(!u.is_of("alice@example.org"));
        assert!(!u.is_of("bob@localhost"));
        assert_eq!(u.owner_address().as_deref(), Some("alice@localhost"));
        assert!(url("/INBOX/;UID=4").unwrap().is_of("anyone@x"));
    }

    #[test]
    fn urlauth_urls() {
        let raw = "imap://joe@example.com/INBOX;UIDVALIDITY=5/;uid=20/;section=1.2;urlauth=submit+fred:internal:91354a47";
        let u = parse_auth_url(raw.as_bytes()).unwrap();
        assert_eq!(u.url.user.as_deref(), Some("joe"));
        assert_eq!(u.url.mailbox, "INBOX");
        assert_eq!((u.url.uid_validity, u.url.uid), (Some(5), 20));
        assert_eq!(u.access, UrlAccess::Submit("fred".into()));
        assert_eq!(
            u.rump,
            b"imap://joe@example.com/INBOX;UIDVALIDITY=5/;uid=20/;section=1.2;urlauth=submit+fred"
        );
        assert_eq!(
            u.authorization,
            Some(("INTERNAL".into(), "91354a47".into()))
        );
        let u = parse_auth_url(
            b"imap://a%40b@h/Sent/;UID=1/;PARTIAL=0.10;EXPIRE=2026-12-03T18:00:00Z;URLAUTH=AUTHUSER",
        )
        .unwrap();
        assert_eq!(u.url.user.as_deref(), Some("a@b"));
        assert_eq!(u.url.partial, Some((0, Some(10))));
        assert_eq!(u.expire, Some(1_796_320_800));
        assert_eq!(u.access, UrlAccess::AuthUser);
        assert_eq!(u.authorization, None);
        let u = parse_auth_url(b"imap://a@h/x/;UID=1;expire=2026-12-03T19:00:00.25+01:00;urlauth=user+bob%40h:INTERNAL:ab").unwrap();
        assert_eq!(u.expire, Some(1_796_320_800));
        assert_eq!(u.access, UrlAccess::User("bob@h".into()));
        for bad in [
            "/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://h/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://a@h/INBOX/;UID=1;URLAUTH=someone",
            "imap://a@h/INBOX/;UID=1;URLAUTH=user+",
            "imap://a@h/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL",
            "imap://a@h/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:ab:cd",
            "imap://a@h/INBOX/;UID=1;EXPIRE=2026-13-01T00:00:00Z;URLAUTH=anonymous",
            "imap://a@h/INBOX/;UID=1;EXPIRE=tomorrow;URLAUTH=anonymous",
            "imap://a@h/INBOX/;UID=1",
        ] {
            assert_eq!(parse_auth_url(bad.as_bytes()), None, "{bad}");
        }
    }
}
