//! The DSN extension's parameters (RFC 3461): `RET` and `ENVID` on MAIL,
//! `NOTIFY` and `ORCPT` on RCPT, and the xtext they are written in.
//!
//! smtp-proto parses MAIL and RCPT, but its DSN grammar is not the one we
//! answer with (it takes only `rfc822` ORCPTs, decodes xtext into Latin-1
//! and calls `NOTIFY=SUCCESS,` an error), so [`take_params`] lifts the DSN
//! parameters out of the command line first and checks them here; the
//! rest of the line goes to smtp-proto as before. The same pass finds the
//! RCPT mailbox as written, so that `RCPT TO:<>` and `RCPT TO:<@a.test:>`
//! (no mailbox at all, RFC 5321 4.1.2) can be told from `<postmaster>`,
//! which smtp-proto reports the same way.
//!
//! The checks are Postfix 3.7's (its answers are quoted in the tests),
//! with two limits of the RFC that Postfix does not apply: ENVID at most
//! 100 characters (RFC 3461 4.4) and ORCPT at most 500 (4.2). Postfix's
//! leniencies are kept: `=` inside xtext and lower-case hex after `+` are
//! taken, and empty items in a NOTIFY list (`SUCCESS,,FAILURE`) are
//! skipped.

use store::{DsnReturn, Notify};

use crate::reply::{self, Reply};

/// Which command a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Mail,
    Rcpt,
}

impl Verb {
    /// MAIL or RCPT, from the start of a command line.
    pub fn of(line: &[u8]) -> Option<Verb> {
        let word = line.get(..4)?;
        if !matches!(line.get(4), Some(b' ' | b'\t' | b':') | None) {
            return None;
        }
        if word.eq_ignore_ascii_case(b"MAIL") {
            Some(Verb::Mail)
        } else if word.eq_ignore_ascii_case(b"RCPT") {
            Some(Verb::Rcpt)
        } else {
            None
        }
    }
}

/// A MAIL or RCPT line with its DSN parameters lifted out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// The line without the DSN parameters, for smtp-proto.
    pub rest: Vec<u8>,
    /// What was between the angle brackets, source route dropped; `None`
    /// when the path has no brackets.
    pub mailbox: Option<Vec<u8>>,
    pub ret: Option<DsnReturn>,
    /// As written (xtext), checked.
    pub envid: Option<String>,
    pub notify: Option<Notify>,
    /// As written (`addr-type;xtext`), checked.
    pub orcpt: Option<String>,
    /// Every parameter after the path, as written (DSN ones included):
    /// what the envelope keeps.
    pub written: String,
    /// The reply to a bad or repeated DSN parameter: given after the
    /// command's sequence checks, as Postfix does (a nested MAIL is `503`
    /// whatever its parameters).
    pub error: Option<Reply>,
}

/// The longest ENVID (RFC 3461 4.4) and ORCPT (4.2) values, as written.
const MAX_ENVID: usize = 100;
const MAX_ORCPT: usize = 500;

/// Lifts the DSN parameters out of a MAIL or RCPT line (without its CRLF)
/// and checks them: [`Params::error`] is `501 5.5.4 Bad … parameter
/// syntax` for the first bad or repeated one, as Postfix answers. A line
/// whose path cannot be found is left whole for smtp-proto to refuse.
pub fn take_params(line: &[u8], verb: Verb) -> Params {
    let mut params = Params {
        rest: line.to_vec(),
        ..Params::default()
    };
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return params;
    };
    let mut start = colon + 1;
    while line.get(start) == Some(&b' ') {
        start += 1;
    }
    let path_end = if line.get(start) == Some(&b'<') {
        let Some(close) = closing_bracket(&line[start..]) else {
            return params;
        };
        params.mailbox = Some(without_source_route(&line[start + 1..start + close]).to_vec());
        start + close + 1
    } else {
        start
            + line[start..]
                .iter()
                .position(|&b| b == b' ')
                .unwrap_or(line.len() - start)
    };
    params.written = String::from_utf8_lossy(&line[path_end..]).trim().to_owned();
    let mut rest = line[..path_end].to_vec();
    for word in line[path_end..].split(|&b| b == b' ') {
        if word.is_empty() {
            continue;
        }
        let (key, value) = match word.iter().position(|&b| b == b'=') {
            Some(eq) => (&word[..eq], Some(&word[eq + 1..])),
            None => (word, None),
        };
        let key = String::from_utf8_lossy(key).to_ascii_uppercase();
        // A bad or repeated parameter is noted (the first one answers) and
        // left out like the good ones, so that smtp-proto still checks the
        // rest of the line.
        let bad = match (verb, key.as_str()) {
            (Verb::Mail, "RET") => {
                let ret = value.and_then(parse_ret);
                let bad = params.ret.is_some() || ret.is_none();
                params.ret = params.ret.or(ret);
                bad.then_some("RET")
            }
            (Verb::Mail, "ENVID") => {
                let envid = value.and_then(parse_envid);
                let bad = params.envid.is_some() || envid.is_none();
                params.envid = params.envid.take().or(envid);
                bad.then_some("ENVID")
            }
            (Verb::Rcpt, "NOTIFY") => {
                let notify = value.and_then(parse_notify);
                let bad = params.notify.is_some() || notify.is_none();
                params.notify = params.notify.or(notify);
                bad.then_some("NOTIFY")
            }
            (Verb::Rcpt, "ORCPT") => {
                let orcpt = value.and_then(parse_orcpt);
                let bad = params.orcpt.is_some() || orcpt.is_none();
                params.orcpt = params.orcpt.take().or(orcpt);
                bad.then_some("ORCPT")
            }
            _ => {
                rest.push(b' ');
                rest.extend_from_slice(word);
                None
            }
        };
        if let Some(name) = bad {
            params
                .error
                .get_or_insert_with(|| reply::bad_dsn_parameter(name));
        }
    }
    params.rest = rest;
    params
}

/// Where the `>` that closes the path starting at `path[0] == '<'` is,
/// skipping quoted strings (with their backslash escapes).
fn closing_bracket(path: &[u8]) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, &b) in path.iter().enumerate().skip(1) {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b'>' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// `@a.test,@b.test:user@c.test` → `user@c.test` (RFC 5321 4.1.2's
/// A-d-l, which a server ignores).
fn without_source_route(path: &[u8]) -> &[u8] {
    if path.first() != Some(&b'@') {
        return path;
    }
    match path.iter().position(|&b| b == b':') {
        Some(colon) => &path[colon + 1..],
        None => path,
    }
}

fn parse_ret(value: &[u8]) -> Option<DsnReturn> {
    if value.eq_ignore_ascii_case(b"FULL") {
        Some(DsnReturn::Full)
    } else if value.eq_ignore_ascii_case(b"HDRS") {
        Some(DsnReturn::Headers)
    } else {
        None
    }
}

/// An ENVID: xtext that decodes to printable ASCII (Postfix refuses
/// `+0A`, `+7F` and 8-bit octets here).
fn parse_envid(value: &[u8]) -> Option<String> {
    if value.is_empty() || value.len() > MAX_ENVID {
        return None;
    }
    let decoded = decode_xtext(value)?;
    if !decoded.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    String::from_utf8(value.to_vec()).ok()
}

/// `NEVER`, or a comma list of `SUCCESS`, `FAILURE` and `DELAY` (any
/// case). NEVER with anything else is an error (RFC 3461 4.1).
fn parse_notify(value: &[u8]) -> Option<Notify> {
    let mut notify = Notify::default();
    let mut never = false;
    let mut any = false;
    for item in value.split(|&b| b == b',') {
        if item.is_empty() {
            continue;
        }
        any = true;
        match item.to_ascii_uppercase().as_slice() {
            b"NEVER" => never = true,
            b"SUCCESS" => notify.success = true,
            b"FAILURE" => notify.failure = true,
            b"DELAY" => notify.delay = true,
            _ => return None,
        }
    }
    let others = notify.success || notify.failure || notify.delay;
    (any && !(never && others)).then_some(notify)
}

/// `addr-type;xtext`: the type an atom (`rfc822`, `utf-8`, …), the
/// address xtext (maybe empty, as Postfix allows); for `utf-8` (RFC 6533)
/// raw UTF-8 is allowed in the address too.
fn parse_orcpt(value: &[u8]) -> Option<String> {
    if value.len() > MAX_ORCPT {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    let (kind, address) = value.split_once(';')?;
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let utf8 = kind.eq_ignore_ascii_case("utf-8");
    let ascii_part: String = address.chars().filter(|c| !utf8 || c.is_ascii()).collect();
    decode_xtext(ascii_part.as_bytes())?;
    Some(value.to_string())
}

/// Decodes xtext (RFC 3461 4): octets from `!` to `~` stand for
/// themselves, except `+`, which starts `+HH`, two hex digits (upper case
/// in the RFC; lower case taken, as Postfix does). `None` if malformed.
pub fn decode_xtext(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut octets = text.iter();
    while let Some(&b) = octets.next() {
        match b {
            b'+' => {
                let hi = hex_digit(*octets.next()?)?;
                let lo = hex_digit(*octets.next()?)?;
                out.push(hi << 4 | lo);
            }
            b'!'..=b'~' => out.push(b),
            _ => return None,
        }
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Encodes text as xtext: `+`, `=`, controls, space and 8-bit octets as
/// `+HH` (RFC 3461 4).
pub fn encode_xtext(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// How a value kept as xtext reads in a report: decoded when that gives
/// printable text (RFC 3464 2.2.1 and 2.3.1 carry ENVID and ORCPT
/// decoded, as Postfix writes them), else as written.
pub fn readable(xtext: &str) -> String {
    match decode_xtext(xtext.as_bytes()).map(String::from_utf8) {
        Some(Ok(text)) if !text.chars().any(char::is_control) => text,
        _ => xtext.to_string(),
    }
}

/// An ORCPT as it goes into `Original-Recipient:`: `type;address` with the
/// address decoded where that reads as text.
pub fn readable_orcpt(orcpt: &str) -> String {
    match orcpt.split_once(';') {
        Some((kind, address)) => {
            let utf8 = kind.eq_ignore_ascii_case("utf-8");
            let address = if utf8 && !address.is_ascii() {
                address.to_string()
            } else {
                readable(address)
            };
            format!("{kind};{address}")
        }
        None => orcpt.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(params: Params) -> Result<Params, u16> {
        match params.error {
            Some(reply) => Err(reply.code),
            None => Ok(params),
        }
    }

    fn mail(line: &str) -> Result<Params, u16> {
        checked(take_params(line.as_bytes(), Verb::Mail))
    }

    fn rcpt(line: &str) -> Result<Params, u16> {
        checked(take_params(line.as_bytes(), Verb::Rcpt))
    }

    #[test]
    fn verbs() {
        assert_eq!(Verb::of(b"MAIL FROM:<a@b>"), Some(Verb::Mail));
        assert_eq!(Verb::of(b"rcpt to:<a@b>"), Some(Verb::Rcpt));
        assert_eq!(Verb::of(b"MAILX FROM:<a@b>"), None);
        assert_eq!(Verb::of(b"DATA"), None);
        assert_eq!(Verb::of(b"RCP"), None);
    }

    #[test]
    fn dsn_parameters_are_lifted_out_and_the_rest_kept() {
        let p = mail("MAIL FROM:<a@b.test> RET=hdrs BODY=8BITMIME ENVID=QQ+2B1 SIZE=10").unwrap();
        assert_eq!(p.rest, b"MAIL FROM:<a@b.test> BODY=8BITMIME SIZE=10");
        assert_eq!(p.ret, Some(DsnReturn::Headers));
        assert_eq!(p.envid.as_deref(), Some("QQ+2B1"));
        let p = rcpt("RCPT TO:<x@y.test> notify=failure,delay orcpt=rfc822;x@y").unwrap();
        assert_eq!(p.rest, b"RCPT TO:<x@y.test>");
        assert_eq!(
            p.notify,
            Some(Notify {
                success: false,
                failure: true,
                delay: true
            })
        );
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;x@y"));
        assert_eq!(p.mailbox.as_deref(), Some(&b"x@y.test"[..]));
        // RCPT parameters on MAIL (and the other way round) are not ours:
        // smtp-proto answers them.
        let p = mail("MAIL FROM:<a@b.test> NOTIFY=NEVER").unwrap();
        assert_eq!(p.rest, b"MAIL FROM:<a@b.test> NOTIFY=NEVER");
    }

    #[test]
    fn mailboxes_as_written() {
        let mailbox = |line: &str| rcpt(line).unwrap().mailbox;
        assert_eq!(mailbox("RCPT TO:<>"), Some(Vec::new()));
        assert_eq!(mailbox("RCPT TO:<@a.test:>"), Some(Vec::new()));
        assert_eq!(
            mailbox("RCPT TO: <@a.test,@b.test:u@c.test>"),
            Some(b"u@c.test".to_vec())
        );
        assert_eq!(
            mailbox("RCPT TO:<Postmaster>"),
            Some(b"Postmaster".to_vec())
        );
        assert_eq!(
            mailbox("RCPT TO:<\"a>b\"@c.test> NOTIFY=NEVER"),
            Some(b"\"a>b\"@c.test".to_vec())
        );
        assert_eq!(mailbox("RCPT TO:a@b.test"), None);
        // No closing bracket: left whole.
        let p = rcpt("RCPT TO:<a@b.test NOTIFY=NEVER").unwrap();
        assert_eq!(p.rest, b"RCPT TO:<a@b.test NOTIFY=NEVER");
    }

    /// Postfix 3.7.11 answered `501 5.5.4 Bad RET parameter syntax` (and
    /// `ENVID`) to each of these, and `250` to the good ones.
    #[test]
    fn mail_parameters_as_postfix_checks_them() {
        for bad in [
            "RET=FOO",
            "RET=",
            "RET",
            "RET=FULL RET=HDRS",
            "RET=HDRS RET=HDRS",
            "ENVID=",
            "ENVID=a+ZZ",
            "ENVID=a+2",
            "ENVID=a+7F",
            "ENVID=a+0A",
            "ENVID=a+C3+A9",
            "ENVID=aé",
            "ENVID=a ENVID=b",
        ] {
            assert_eq!(
                mail(&format!("MAIL FROM:<a@b.test> {bad}")),
                Err(501),
                "{bad}"
            );
        }
        for good in [
            "RET=full",
            "ENVID=a=b",
            "ENVID=a+41",
            "ENVID=a+2b",
            "ENVID=a+20b",
        ] {
            assert!(
                mail(&format!("MAIL FROM:<a@b.test> {good}")).is_ok(),
                "{good}"
            );
        }
        // RFC 3461 4.4's limit (Postfix takes longer ones).
        assert!(mail(&format!("MAIL FROM:<a@b.test> ENVID={}", "x".repeat(100))).is_ok());
        assert_eq!(
            mail(&format!("MAIL FROM:<a@b.test> ENVID={}", "x".repeat(101))),
            Err(501)
        );
    }

    /// Postfix 3.7.11 answered `501 5.5.4 Error: Bad NOTIFY parameter
    /// syntax` (and `ORCPT`) to each of these, and `250` to the good ones.
    #[test]
    fn rcpt_parameters_as_postfix_checks_them() {
        for bad in [
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=SUCCESS,NEVER",
            "NOTIFY=",
            "NOTIFY=FOO",
            "NOTIFY=SUCCESS,FAILURE,DELAY,FOO",
            "NOTIFY=SUCCESS NOTIFY=FAILURE",
            "ORCPT=",
            "ORCPT=rfc822",
            "ORCPT=;a@b",
            "ORCPT=rfc822;a+ZZ",
            "ORCPT=rfc822;a@b ORCPT=rfc822;c@d",
        ] {
            assert_eq!(
                rcpt(&format!("RCPT TO:<a@b.test> {bad}")),
                Err(501),
                "{bad}"
            );
        }
        for good in [
            "NOTIFY=SUCCESS,SUCCESS",
            "NOTIFY=NEVER,NEVER",
            "NOTIFY=SUCCESS,,FAILURE",
            "NOTIFY=SUCCESS,",
            "ORCPT=rfc822;",
            "ORCPT=foo;bar",
            "ORCPT=utf-8;a@b",
            "ORCPT=rfc822;not-an-address",
            "ORCPT=RFC822;A+2BB@x",
            "ORCPT=rfc822;a+C3+A9@b",
            "ORCPT=rfc822;a@b;c",
            "ORCPT=utf-8;dörte@b",
        ] {
            assert!(
                rcpt(&format!("RCPT TO:<a@b.test> {good}")).is_ok(),
                "{good}"
            );
        }
        assert_eq!(
            rcpt("RCPT TO:<a@b.test> NOTIFY=NEVER").unwrap().notify,
            Some(Notify::default())
        );
    }

    #[test]
    fn xtext_round_trip() {
        assert_eq!(decode_xtext(b"QQ+2B1").unwrap(), b"QQ+1");
        assert_eq!(encode_xtext(b"a+b=c d\xc3\xa9"), "a+2Bb+3Dc+20d+C3+A9");
        for text in [&b"plain"[..], b"+=", b"\x00\xff ~!"] {
            assert_eq!(decode_xtext(encode_xtext(text).as_bytes()).unwrap(), text);
        }
        assert_eq!(readable("env+2B2"), "env+2");
        assert_eq!(readable("a+0Ab"), "a+0Ab");
        assert_eq!(
            readable_orcpt("rfc822;Orig+2BBox@remote.test"),
            "rfc822;Orig+Box@remote.test"
        );
    }
}
