//! The command parser: bytes in, a [`Parsed`] out.
//!
//! The parser is re-run from the start of the buffered command each time
//! more bytes arrive; it keeps no state, so a command split at any byte
//! parses the same as the whole. It never panics and allocates no more than
//! the buffer it is given (lists are capped by [`Limits::max_items`]).

use super::datetime::{parse_date, parse_date_time};
use super::sequence::SequenceSet;
use super::types::*;

/// Bounds on what one command may hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest line (between literals), CRLF included.
    pub max_line: usize,
    /// Largest literal accepted.
    pub max_literal: u32,
    /// Deepest nesting of SEARCH parentheses, NOT and OR.
    pub max_depth: usize,
    /// Most elements in any one list (flags, fetch items, ranges, …).
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 8192,
            max_literal: 64 * 1024 * 1024,
            max_depth: 32,
            max_items: 1000,
        }
    }
}

/// What [`parse_command`] found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command; the first `consumed` bytes were it.
    Complete { command: Command, consumed: usize },
    /// Read more bytes and call again with the whole buffer.
    Incomplete,
    /// The buffer ends just after a synchronising literal's `{size}\r\n`.
    /// Answer `+ Ready` (once per `literal_start`: a later call with no new
    /// bytes says the same again), then call again when more bytes arrive.
    NeedLiteral {
        tag: Tag,
        size: u32,
        literal_start: usize,
    },
    /// A literal larger than [`Limits::max_literal`]. Answer `tag NO` (or
    /// `BAD`) and drop the first `consumed` bytes (through `{size}\r\n`). A
    /// synchronising literal will not be sent; for LITERAL+
    /// (`synchronizing == false`) the client sends it anyway, so the caller
    /// must also skip the next `size` bytes and the rest of that line.
    LiteralTooLarge {
        tag: Tag,
        size: u64,
        synchronizing: bool,
        consumed: usize,
    },
    /// A protocol error; answer `tag BAD message` (or `* BAD` with no tag)
    /// and drop the first `consumed` bytes (through the offending line's
    /// LF). When a line exceeds [`Limits::max_line`] without an LF,
    /// `consumed` is the whole buffer and the caller must also discard up
    /// to the next LF (or close the connection).
    Error {
        tag: Option<Tag>,
        message: String,
        consumed: usize,
    },
}

/// What [`parse_idle_done`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdleDone {
    Done { consumed: usize },
    Incomplete,
    Error { consumed: usize },
}

/// Parses a body section as an IMAP URL's `;section=` names it (RFC
/// 5092): `HEADER`, `TEXT`, `1.2.MIME`, `HEADER.FIELDS (A B)`, … without
/// the brackets. `None` if it is not one.
pub fn parse_section(text: &[u8]) -> Option<Section> {
    let mut buf = Vec::with_capacity(text.len() + 2);
    buf.push(b'[');
    buf.extend_from_slice(text);
    buf.push(b']');
    let limits = Limits::default();
    let mut p = P {
        buf: &buf,
        pos: 0,
        line_start: 0,
        limits: &limits,
        tag: None,
    };
    let section = p.section().ok()?;
    (p.pos == buf.len()).then_some(section)
}

/// Parses the `DONE` line that ends IDLE (case-insensitive).
pub fn parse_idle_done(input: &[u8]) -> IdleDone {
    match input.iter().position(|&b| b == b'\n') {
        None if input.len() > 1024 => IdleDone::Error {
            consumed: input.len(),
        },
        None => IdleDone::Incomplete,
        Some(i) => {
            let line = &input[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.eq_ignore_ascii_case(b"DONE") {
                IdleDone::Done { consumed: i + 1 }
            } else {
                IdleDone::Error { consumed: i + 1 }
            }
        }
    }
}

/// Parses one command from the start of `input`.
pub fn parse_command(input: &[u8], limits: &Limits) -> Parsed {
    let mut p = P {
        buf: input,
        pos: 0,
        line_start: 0,
        limits,
        tag: None,
    };
    match p.command() {
        Ok(command) => Parsed::Complete {
            command,
            consumed: p.pos,
        },
        Err(Stop::Incomplete) => Parsed::Incomplete,
        Err(Stop::NeedLiteral { size, start }) => match p.tag.clone() {
            Some(tag) => Parsed::NeedLiteral {
                tag,
                size,
                literal_start: start,
            },
            None => p.error("literal in tag".into()),
        },
        Err(Stop::TooLarge {
            size,
            sync,
            consumed,
        }) => match p.tag.clone() {
            Some(tag) => Parsed::LiteralTooLarge {
                tag,
                size,
                synchronizing: sync,
                consumed,
            },
            None => p.error("literal in tag".into()),
        },
        Err(Stop::Bad(message)) => p.error(message),
    }
}

enum Stop {
    Incomplete,
    NeedLiteral {
        size: u32,
        start: usize,
    },
    TooLarge {
        size: u64,
        sync: bool,
        consumed: usize,
    },
    Bad(String),
}

type R<T> = Result<T, Stop>;

fn bad<T>(msg: &str) -> R<T> {
    Err(Stop::Bad(msg.to_owned()))
}

struct P<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Where the current line began (the start, or just after a literal).
    line_start: usize,
    limits: &'a Limits,
    tag: Option<Tag>,
}

impl P<'_> {
    fn error(&self, message: String) -> Parsed {
        let from = self.pos.min(self.buf.len());
        match self.buf[from..].iter().position(|&b| b == b'\n') {
            Some(i) => Parsed::Error {
                tag: self.tag.clone(),
                message,
                consumed: from + i + 1,
            },
            None if self.buf.len() - self.line_start > self.limits.max_line => Parsed::Error {
                tag: self.tag.clone(),
                message,
                consumed: self.buf.len(),
            },
            None => Parsed::Incomplete,
        }
    }

    fn peek(&self) -> R<u8> {
        if self.pos - self.line_start >= self.limits.max_line {
            return bad("line too long");
        }
        self.buf.get(self.pos).copied().ok_or(Stop::Incomplete)
    }

    fn expect(&mut self, b: u8, what: &str) -> R<()> {
        if self.peek()? == b {
            self.pos += 1;
            Ok(())
        } else {
            bad(&format!("expected {what}"))
        }
    }

    fn sp(&mut self) -> R<()> {
        self.expect(b' ', "space")
    }

    fn crlf(&mut self) -> R<()> {
        self.expect(b'\r', "end of line")?;
        self.expect(b'\n', "LF after CR")
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> R<bool> {
        if self.peek()? == b {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// 1*bytes matching `pred`, ending at a byte that does not.
    fn take_while(&mut self, pred: impl Fn(u8) -> bool, what: &str) -> R<&[u8]> {
        let start = self.pos;
        while pred(self.peek()?) {
            self.pos += 1;
        }
        if self.pos == start {
            return bad(&format!("expected {what}"));
        }
        Ok(&self.buf[start..self.pos])
    }

    fn atom(&mut self) -> R<&[u8]> {
        self.take_while(is_atom_char, "atom")
    }

    fn upper_atom(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    fn number64(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit(), "number")?;
        d.iter()
            .try_fold(0u64, |acc, &c| {
                acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
            })
            .ok_or(Stop::Bad("number too large".into()))
    }

    fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| Stop::Bad("number too large".into()))
    }

    fn nz_number(&mut self) -> R<std::num::NonZeroU32> {
        std::num::NonZeroU32::new(self.number()?)
            .ok_or(Stop::Bad("zero is not allowed here".into()))
    }

    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"', "quote")?;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let c = self.peek()?;
                    if c != b'"' && c != b'\\' {
                        return bad("bad escape in quoted string");
                    }
                    out.push(c);
                    self.pos += 1;
                }
                b'\r' | b'\n' | 0 => return bad("unterminated quoted string"),
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> R<Vec<u8>> {
        self.expect(b'{', "literal")?;
        let size = self.number64()?;
        let sync = !self.eat(b'+')?;
        self.expect(b'}', "}")?;
        self.crlf()?;
        if size > u64::from(self.limits.max_literal) {
            return Err(Stop::TooLarge {
                size,
                sync,
                consumed: self.pos,
            });
        }
        let size32 = size as u32; // fits: checked against max_literal
        let start = self.pos;
        if sync && start == self.buf.len() {
            return Err(Stop::NeedLiteral {
                size: size32,
                start,
            });
        }
        let end = start + size32 as usize;
        if end > self.buf.len() {
            return Err(Stop::Incomplete);
        }
        self.pos = end;
        self.line_start = end;
        Ok(self.buf[start..end].to_vec())
    }

    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek()? {
            b'"' => self.quoted(),
            b'{' => self.literal(),
            _ => bad("expected string"),
        }
    }

    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek()? {
            b'"' | b'{' => self.string(),
            _ => Ok(self.take_while(is_astring_char, "astring")?.to_vec()),
        }
    }

    fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        match self.peek()? {
            b'"' | b'{' => self.string().map(Some),
            _ => {
                let a = self.atom()?;
                if a.eq_ignore_ascii_case(b"NIL") {
                    Ok(None)
                } else {
                    bad("expected string or NIL")
                }
            }
        }
    }

    fn mailbox(&mut self) -> R<MailboxName> {
        Ok(MailboxName::from_bytes(&self.astring()?))
    }

    /// `list-mailbox`: list-chars (with `%`, `*`, `]`) or a string.
    fn list_mailbox(&mut self) -> R<Vec<u8>> {
        match self.peek()? {
            b'"' | b'{' => self.string(),
            _ => Ok(self
                .take_while(
                    |b| is_astring_char(b) || b == b'%' || b == b'*',
                    "mailbox pattern",
                )?
                .to_vec()),
        }
    }

    fn sequence_set(&mut self) -> R<SequenceSet> {
        if self.eat(b'$')? {
            return Ok(SequenceSet::saved_result());
        }
        let max = self.limits.max_items;
        let raw = self.take_while(
            |b| b.is_ascii_digit() || b == b':' || b == b',' || b == b'*',
            "sequence set",
        )?;
        SequenceSet::parse(raw, max).ok_or(Stop::Bad("invalid sequence set".into()))
    }

    /// `"(" [item *(SP item)] ")"`, at most `max_items` items.
    fn paren_list<T>(
        &mut self,
        allow_empty: bool,
        mut item: impl FnMut(&mut Self) -> R<T>,
    ) -> R<Vec<T>> {
        self.expect(b'(', "(")?;
        let mut out = Vec::new();
        if self.eat(b')')? {
            return if allow_empty {
                Ok(out)
            } else {
                bad("empty list")
            };
        }
        loop {
            if out.len() >= self.limits.max_items {
                return bad("too many items");
            }
            out.push(item(self)?);
            if self.eat(b')')? {
                return Ok(out);
            }
            self.sp()?;
        }
    }

    /// `url / "(" url *(SP ("BODYPARTSTRUCTURE" / "BINARY" / "BODY")) ")"`
    /// (RFC 5524). A parameter named twice is taken once (as Dovecot
    /// does); BODY with BINARY, or any other parameter, is refused.
    fn url_fetch_item(&mut self) -> R<UrlFetchItem> {
        if !self.eat(b'(')? {
            return Ok(UrlFetchItem {
                url: self.astring()?,
                extended: None,
            });
        }
        let url = self.astring()?;
        let mut wants = UrlFetchWants::default();
        while !self.eat(b')')? {
            self.sp()?;
            match self.upper_atom()?.as_str() {
                "BODYPARTSTRUCTURE" => wants.body_part_structure = true,
                "BINARY" => wants.binary = true,
                "BODY" => wants.body = true,
                _ => return bad("unknown URLFETCH parameter"),
            }
        }
        if wants.body && wants.binary {
            return bad("URLFETCH cannot ask for both BODY and BINARY");
        }
        if wants == UrlFetchWants::default() {
            wants.body = true;
        }
        Ok(UrlFetchItem {
            url,
            extended: Some(wants),
        })
    }

    fn flag(&mut self) -> R<Flag> {
        let start = self.pos;
        self.eat(b'\\')?;
        self.atom()?;
        let text = String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned();
        Flag::from_text(&text).ok_or(Stop::Bad("invalid flag".into()))
    }

    fn flag_list(&mut self) -> R<Vec<Flag>> {
        self.paren_list(true, |p| p.flag())
    }

    fn date(&mut self) -> R<Date> {
        let quoted = self.eat(b'"')?;
        let raw = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-', "date")?;
        let d = parse_date(raw).ok_or(Stop::Bad("invalid date".into()))?;
        if quoted {
            self.expect(b'"', "quote")?;
        }
        Ok(d)
    }

    fn date_time(&mut self) -> R<DateTime> {
        let raw = self.quoted()?;
        parse_date_time(&raw).ok_or(Stop::Bad("invalid date-time".into()))
    }

    fn command(&mut self) -> R<Command> {
        let tag_bytes = self.take_while(|b| !matches!(b, b' ' | b'\r' | b'\n'), "tag")?;
        let tag = std::str::from_utf8(tag_bytes)
            .ok()
            .and_then(|t| Tag::new(t).ok())
            .ok_or(Stop::Bad("invalid tag".into()))?;
        self.tag = Some(tag.clone());
        self.sp()?;
        let name = self.upper_atom()?;
        let kind = self.command_kind(&name)?;
        self.crlf()?;
        Ok(Command { tag, kind })
    }

    fn command_kind(&mut self, name: &str) -> R<CommandKind> {
        use CommandKind as K;
        Ok(match name {
            "CAPABILITY" => K::Capability,
            "NOOP" => K::Noop,
            "LOGOUT" => K::Logout,
            "STARTTLS" => K::StartTls,
            "CHECK" => K::Check,
            "CLOSE" => K::Close,
            "UNSELECT" => K::Unselect,
            "EXPUNGE" => K::Expunge,
            "IDLE" => K::Idle,
            "NAMESPACE" => K::Namespace,
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.upper_atom()?;
                let initial_response = if self.eat(b' ')? {
                    Some(
                        self.take_while(
                            |b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='),
                            "base64",
                        )?
                        .to_vec(),
                    )
                } else {
                    None
                };
                K::Authenticate {
                    mechanism,
                    initial_response,
                }
            }
            "LOGIN" => {
                self.sp()?;
                let user = self.astring()?;
                self.sp()?;
                let password = Secret(self.astring()?);
                K::Login { user, password }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let mut condstore = false;
                let mut qresync = None;
                if self.eat(b' ')? {
                    for param in self.paren_list(false, |p| p.select_param())? {
                        match param {
                            None => condstore = true,
                            Some(q) => qresync = Some(q),
                        }
                    }
                }
                if name == "SELECT" {
                    K::Select {
                        mailbox,
                        condstore,
                        qresync,
                    }
                } else {
                    K::Examine {
                        mailbox,
                        condstore,
                        qresync,
                    }
                }
            }
            "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
                self.sp()?;
                let m = self.mailbox()?;
                match name {
                    "CREATE" if self.eat(b' ')? => K::CreateSpecialUse {
                        uses: self.create_params()?,
                        mailbox: m,
                    },
                    "CREATE" => K::Create(m),
                    "DELETE" => K::Delete(m),
                    "SUBSCRIBE" => K::Subscribe(m),
                    _ => K::Unsubscribe(m),
                }
            }
            "RENAME" => {
                self.sp()?;
                let from = self.mailbox()?;
                self.sp()?;
                let to = self.mailbox()?;
                K::Rename { from, to }
            }
            "LIST" => self.list()?,
            "LSUB" => {
                self.sp()?;
                let reference = self.astring()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                K::Lsub { reference, pattern }
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                let items = self.status_items()?;
                K::Status { mailbox, items }
            }
            "APPEND" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                let mut messages = vec![self.append_message()?];
                // MULTIAPPEND (RFC 3502): more messages after a space.
                while self.eat(b' ')? {
                    if messages.len() >= self.limits.max_items {
                        return bad("too many messages");
                    }
                    messages.push(self.append_message()?);
                }
                K::Append { mailbox, messages }
            }
            "REPLACE" => self.replace(false)?,
            "SEARCH" => self.search(false)?,
            "SORT" => self.sort(false)?,
            "THREAD" => self.thread(false)?,
            "CANCELUPDATE" => {
                let mut tags = Vec::new();
                while self.eat(b' ')? {
                    if tags.len() >= self.limits.max_items {
                        return bad("too many items");
                    }
                    let t = self.string()?;
                    let tag = std::str::from_utf8(&t)
                        .ok()
                        .and_then(|t| Tag::new(t).ok())
                        .ok_or(Stop::Bad("invalid tag".into()))?;
                    tags.push(tag);
                }
                if tags.is_empty() {
                    return bad("CANCELUPDATE needs a tag");
                }
                K::CancelUpdate(tags)
            }
            "GETMETADATA" => self.get_metadata()?,
            "RESETKEY" => {
                let mut mailbox = None;
                let mut mechanisms = Vec::new();
                if self.eat(b' ')? {
                    mailbox = Some(self.mailbox()?);
                    while self.eat(b' ')? {
                        if mechanisms.len() >= self.limits.max_items {
                            return bad("too many items");
                        }
                        mechanisms.push(self.upper_atom()?);
                    }
                }
                K::ResetKey {
                    mailbox,
                    mechanisms,
                }
            }
            "GENURLAUTH" => {
                let mut urls = Vec::new();
                while self.eat(b' ')? {
                    if urls.len() >= self.limits.max_items {
                        return bad("too many items");
                    }
                    let url = self.astring()?;
                    self.sp()?;
                    urls.push((url, self.upper_atom()?));
                }
                if urls.is_empty() {
                    return bad("GENURLAUTH needs a URL and a mechanism");
                }
                K::GenUrlAuth(urls)
            }
            "URLFETCH" => {
                let mut urls = Vec::new();
                while self.eat(b' ')? {
                    if urls.len() >= self.limits.max_items {
                        return bad("too many items");
                    }
                    urls.push(self.url_fetch_item()?);
                }
                if urls.is_empty() {
                    return bad("URLFETCH needs a URL");
                }
                K::UrlFetch(urls)
            }
            "SETMETADATA" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                let entries = self.paren_list(false, |p| {
                    let entry = p.astring()?;
                    p.sp()?;
                    let value = if p.peek()? == b'~' {
                        Some(p.literal_or_literal8()?.0)
                    } else {
                        p.nstring()?
                    };
                    Ok((entry, value))
                })?;
                K::SetMetadata { mailbox, entries }
            }
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" | "MOVE" => self.copy_move(name, false)?,
            "UID" => {
                self.sp()?;
                let sub = self.upper_atom()?;
                match sub.as_str() {
                    "SEARCH" => self.search(true)?,
                    "SORT" => self.sort(true)?,
                    "THREAD" => self.thread(true)?,
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" | "MOVE" => self.copy_move(&sub, true)?,
                    "REPLACE" => self.replace(true)?,
                    "EXPUNGE" => {
                        self.sp()?;
                        K::UidExpunge(self.sequence_set()?)
                    }
                    _ => return bad("unknown UID command"),
                }
            }
            "ID" => {
                self.sp()?;
                if self.peek()? == b'(' {
                    K::Id(Some(self.paren_list(true, |p| {
                        let field = p.string()?;
                        p.sp()?;
                        Ok((field, p.nstring()?))
                    })?))
                } else {
                    match self.nstring()? {
                        None => K::Id(None),
                        Some(_) => return bad("expected ID list or NIL"),
                    }
                }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.peek()? == b' ' {
                    if caps.len() >= self.limits.max_items {
                        return bad("too many items");
                    }
                    self.pos += 1;
                    caps.push(self.upper_atom()?);
                }
                if caps.is_empty() {
                    return bad("ENABLE needs a capability");
                }
                K::Enable(caps)
            }
            "COMPRESS" => {
                self.sp()?;
                K::Compress(self.upper_atom()?)
            }
            "NOTIFY" => {
                self.sp()?;
                match self.upper_atom()?.as_str() {
                    "NONE" => K::Notify(None),
                    "SET" => K::Notify(Some(self.notify_set()?)),
                    _ => return bad("expected NOTIFY SET or NOTIFY NONE"),
                }
            }
            "GETQUOTA" => {
                self.sp()?;
                K::GetQuota(self.astring()?)
            }
            "GETQUOTAROOT" => {
                self.sp()?;
                K::GetQuotaRoot(self.mailbox()?)
            }
            "SETQUOTA" => {
                self.sp()?;
                let root = self.astring()?;
                self.sp()?;
                let limits = self.paren_list(true, |p| {
                    let resource = p.upper_atom()?;
                    p.sp()?;
                    Ok((resource, p.number64()?))
                })?;
                K::SetQuota { root, limits }
            }
            _ => return bad("unknown command"),
        })
    }

    /// After `NOTIFY SET`: `[SP "STATUS"] 1*(SP event-group)`, checked as
    /// RFC 5465 asks (one selected filter at most; MessageNew and
    /// MessageExpunge together; FlagChange only with both; fetch
    /// attributes only for the selected mailbox).
    fn notify_set(&mut self) -> R<NotifySet> {
        let mut set = NotifySet {
            status: false,
            groups: Vec::new(),
        };
        self.sp()?;
        if self.peek()? != b'(' {
            if self.upper_atom()? != "STATUS" {
                return bad("expected STATUS or an event group");
            }
            set.status = true;
            self.sp()?;
        }
        loop {
            if set.groups.len() >= self.limits.max_items {
                return bad("too many items");
            }
            let group = self.notify_group()?;
            if group.filter.is_selected() && set.groups.iter().any(|g| g.filter.is_selected()) {
                return bad("Duplicate selected filter");
            }
            set.groups.push(group);
            if !self.eat(b' ')? {
                return Ok(set);
            }
        }
    }

    /// `"(" filter-mailboxes SP events ")"`.
    fn notify_group(&mut self) -> R<NotifyGroup> {
        self.expect(b'(', "(")?;
        let filter = match self.upper_atom()?.as_str() {
            "SELECTED" => NotifyFilter::Selected,
            "SELECTED-DELAYED" => NotifyFilter::SelectedDelayed,
            "INBOXES" => NotifyFilter::Inboxes,
            "PERSONAL" => NotifyFilter::Personal,
            "SUBSCRIBED" => NotifyFilter::Subscribed,
            name @ ("SUBTREE" | "MAILBOXES") => {
                self.sp()?;
                let boxes = if self.peek()? == b'(' {
                    self.paren_list(false, |p| p.mailbox())?
                } else {
                    vec![self.mailbox()?]
                };
                if name == "SUBTREE" {
                    NotifyFilter::Subtree(boxes)
                } else {
                    NotifyFilter::Mailboxes(boxes)
                }
            }
            _ => return bad("unknown NOTIFY mailbox filter"),
        };
        self.sp()?;
        let events = if self.peek()? == b'(' {
            self.notify_events(filter.is_selected())?
        } else if self.upper_atom()? == "NONE" {
            Vec::new()
        } else {
            return bad("expected events or NONE");
        };
        self.expect(b')', ")")?;
        let has = |f: fn(&NotifyEvent) -> bool| events.iter().any(f);
        let new = has(|e| matches!(e, NotifyEvent::MessageNew(_)));
        let expunge = has(|e| matches!(e, NotifyEvent::MessageExpunge));
        // RFC 5465 5 pairs MessageNew with MessageExpunge, and FlagChange
        // with both; Dovecot holds the selected filter to that and takes
        // them alone for other mailboxes (a STATUS then carries what each
        // asked for), and so do we.
        if filter.is_selected() && new != expunge {
            return bad("MessageNew and MessageExpunge must be together");
        }
        if filter.is_selected()
            && !expunge
            && has(|e| matches!(e, NotifyEvent::FlagChange | NotifyEvent::AnnotationChange))
        {
            return bad("FlagChange requires MessageNew and MessageExpunge");
        }
        let message_event = |e: &NotifyEvent| {
            matches!(
                e,
                NotifyEvent::MessageNew(_)
                    | NotifyEvent::MessageExpunge
                    | NotifyEvent::FlagChange
                    | NotifyEvent::AnnotationChange
            )
        };
        if filter.is_selected() && !events.iter().all(message_event) {
            return bad("Only message events for the selected mailbox");
        }
        Ok(NotifyGroup { filter, events })
    }

    /// `"(" event *(SP event) ")"`; `MessageNew` may be followed by a list
    /// of fetch attributes when the filter is the selected mailbox.
    fn notify_events(&mut self, selected: bool) -> R<Vec<NotifyEvent>> {
        self.expect(b'(', "(")?;
        let mut events = Vec::new();
        loop {
            if events.len() >= self.limits.max_items {
                return bad("too many items");
            }
            let event = match self.upper_atom()?.as_str() {
                "MESSAGENEW" => {
                    let mut attributes = Vec::new();
                    // `SP "("` starts the fetch attributes; `SP` and an
                    // atom, the next event.
                    if self.peek()? == b' ' {
                        let next = self.buf.get(self.pos + 1).copied();
                        match next {
                            None => return Err(Stop::Incomplete),
                            Some(b'(') => {
                                if !selected {
                                    return bad("fetch attributes only for the selected mailbox");
                                }
                                self.pos += 1;
                                attributes = self.paren_list(false, |p| p.fetch_att())?;
                            }
                            Some(_) => {}
                        }
                    }
                    NotifyEvent::MessageNew(attributes)
                }
                "MESSAGEEXPUNGE" => NotifyEvent::MessageExpunge,
                "FLAGCHANGE" => NotifyEvent::FlagChange,
                "ANNOTATIONCHANGE" => NotifyEvent::AnnotationChange,
                "MAILBOXNAME" => NotifyEvent::MailboxName,
                "SUBSCRIPTIONCHANGE" => NotifyEvent::SubscriptionChange,
                "MAILBOXMETADATACHANGE" => NotifyEvent::MailboxMetadataChange,
                "SERVERMETADATACHANGE" => NotifyEvent::ServerMetadataChange,
                _ => return bad("unknown NOTIFY event"),
            };
            if !events.contains(&event) {
                events.push(event);
            }
            if self.eat(b')')? {
                return Ok(events);
            }
            self.sp()?;
        }
    }

    /// One SELECT parameter: `CONDSTORE` (`None`) or `QRESYNC (uidvalidity
    /// modseq [known-uids [(seqs uids)]])` (RFC 7162).
    fn select_param(&mut self) -> R<Option<QresyncParams>> {
        match self.upper_atom()?.as_str() {
            "CONDSTORE" => Ok(None),
            "QRESYNC" => {
                self.sp()?;
                self.expect(b'(', "(")?;
                let uid_validity = self.nz_number()?.get();
                self.sp()?;
                let modseq = self.number64()?;
                if modseq == 0 {
                    return bad("zero is not allowed here");
                }
                let mut q = QresyncParams {
                    uid_validity,
                    modseq,
                    known_uids: None,
                    seq_match: None,
                };
                if self.eat(b' ')? {
                    if self.peek()? != b'(' {
                        q.known_uids = Some(self.sequence_set()?);
                        if self.eat(b' ')? {
                            self.seq_match(&mut q)?;
                        }
                    } else {
                        self.seq_match(&mut q)?;
                    }
                }
                self.expect(b')', ")")?;
                Ok(Some(q))
            }
            _ => bad("unknown SELECT parameter"),
        }
    }

    /// `(known-sequence-set known-uid-set)` of QRESYNC.
    fn seq_match(&mut self, q: &mut QresyncParams) -> R<()> {
        self.expect(b'(', "(")?;
        let seqs = self.sequence_set()?;
        self.sp()?;
        let uids = self.sequence_set()?;
        self.expect(b')', ")")?;
        q.seq_match = Some((seqs, uids));
        Ok(())
    }

    fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.paren_list(false, |p| {
            Ok(match p.upper_atom()?.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "SIZE" => StatusItem::Size,
                "APPENDLIMIT" => StatusItem::AppendLimit,
                "MAILBOXID" => StatusItem::MailboxId,
                "DELETED" => StatusItem::Deleted,
                "DELETED-STORAGE" => StatusItem::DeletedStorage,
                _ => return bad("unknown STATUS item"),
            })
        })
    }

    fn list(&mut self) -> R<CommandKind> {
        self.sp()?;
        let mut selection = Vec::new();
        if self.peek()? == b'(' {
            selection = self.paren_list(true, |p| {
                Ok(match p.upper_atom()?.as_str() {
                    "SUBSCRIBED" => ListSelection::Subscribed,
                    "REMOTE" => ListSelection::Remote,
                    "RECURSIVEMATCH" => ListSelection::RecursiveMatch,
                    "SPECIAL-USE" => ListSelection::SpecialUse,
                    _ => return bad("unknown LIST selection option"),
                })
            })?;
            self.sp()?;
        }
        let reference = self.astring()?;
        self.sp()?;
        let patterns = if self.peek()? == b'(' {
            self.paren_list(false, |p| p.list_mailbox())?
        } else {
            vec![self.list_mailbox()?]
        };
        let mut returns = Vec::new();
        if self.eat(b' ')? {
            if self.upper_atom()? != "RETURN" {
                return bad("expected RETURN");
            }
            self.sp()?;
            returns = self.paren_list(true, |p| {
                Ok(match p.upper_atom()?.as_str() {
                    "SUBSCRIBED" => ListReturn::Subscribed,
                    "CHILDREN" => ListReturn::Children,
                    "SPECIAL-USE" => ListReturn::SpecialUse,
                    "STATUS" => {
                        p.sp()?;
                        ListReturn::Status(p.status_items()?)
                    }
                    _ => return bad("unknown LIST return option"),
                })
            })?;
        }
        Ok(CommandKind::List {
            selection,
            reference,
            patterns,
            returns,
        })
    }

    fn copy_move(&mut self, name: &str, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        Ok(if name == "COPY" {
            CommandKind::Copy { uid, set, mailbox }
        } else {
            CommandKind::Move { uid, set, mailbox }
        })
    }

    fn store(&mut self, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.peek()? == b'(' {
            self.pos += 1;
            if self.upper_atom()? != "UNCHANGEDSINCE" {
                return bad("expected UNCHANGEDSINCE");
            }
            self.sp()?;
            unchanged_since = Some(self.number64()?);
            self.expect(b')', ")")?;
            self.sp()?;
        }
        let mode = if self.eat(b'+')? {
            StoreMode::Add
        } else if self.eat(b'-')? {
            StoreMode::Remove
        } else {
            StoreMode::Replace
        };
        let silent = match self.upper_atom()?.as_str() {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return bad("expected FLAGS"),
        };
        self.sp()?;
        let flags = if self.peek()? == b'(' {
            self.flag_list()?
        } else {
            let mut flags = vec![self.flag()?];
            while self.peek()? == b' ' {
                if flags.len() >= self.limits.max_items {
                    return bad("too many items");
                }
                self.pos += 1;
                flags.push(self.flag()?);
            }
            flags
        };
        Ok(CommandKind::Store {
            uid,
            set,
            unchanged_since,
            mode,
            silent,
            flags,
        })
    }

    fn fetch(&mut self, uid: bool) -> R<CommandKind> {
        use FetchAttribute as F;
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let attributes = if self.peek()? == b'(' {
            self.paren_list(false, |p| p.fetch_att())?
        } else {
            let save = self.pos;
            match self.upper_atom()?.as_str() {
                "ALL" => vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope],
                "FAST" => vec![F::Flags, F::InternalDate, F::Rfc822Size],
                "FULL" => vec![
                    F::Flags,
                    F::InternalDate,
                    F::Rfc822Size,
                    F::Envelope,
                    F::Body,
                ],
                _ => {
                    self.pos = save;
                    vec![self.fetch_att()?]
                }
            }
        };
        let mut changed_since = None;
        let mut vanished = false;
        if self.eat(b' ')? {
            for modifier in self.paren_list(false, |p| {
                Ok(match p.upper_atom()?.as_str() {
                    "CHANGEDSINCE" => {
                        p.sp()?;
                        Some(p.number64()?)
                    }
                    "VANISHED" => None,
                    _ => return bad("unknown FETCH modifier"),
                })
            })? {
                match modifier {
                    Some(n) => changed_since = Some(n),
                    None => vanished = true,
                }
            }
            // RFC 7162 3.2.6: VANISHED only with CHANGEDSINCE.
            if vanished && changed_since.is_none() {
                return bad("VANISHED needs CHANGEDSINCE");
            }
        }
        Ok(CommandKind::Fetch {
            uid,
            set,
            attributes,
            changed_since,
            vanished,
        })
    }

    fn fetch_att(&mut self) -> R<FetchAttribute> {
        use FetchAttribute as F;
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.', "fetch item")?;
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        Ok(match name.as_str() {
            "ENVELOPE" => F::Envelope,
            "FLAGS" => F::Flags,
            "INTERNALDATE" => F::InternalDate,
            "RFC822" => F::Rfc822,
            "RFC822.HEADER" => F::Rfc822Header,
            "RFC822.SIZE" => F::Rfc822Size,
            "RFC822.TEXT" => F::Rfc822Text,
            "BODYSTRUCTURE" => F::BodyStructure,
            "UID" => F::Uid,
            "MODSEQ" => F::ModSeq,
            "EMAILID" => F::EmailId,
            "THREADID" => F::ThreadId,
            "SAVEDATE" => F::SaveDate,
            "PREVIEW" => F::Preview {
                lazy: self.preview_modifiers()?,
            },
            "SNIPPET" => F::Snippet {
                lazy: self.snippet_algorithm()?,
            },
            "BODY" if self.peek()? != b'[' => F::Body,
            "BODY" | "BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                F::BodySection {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            "BINARY" | "BINARY.PEEK" | "BINARY.SIZE" => {
                let part = self.binary_part()?;
                if name == "BINARY.SIZE" {
                    return Ok(F::BinarySize(part));
                }
                F::BinarySection {
                    peek: name == "BINARY.PEEK",
                    part,
                    partial: self.partial()?,
                }
            }
            _ => return bad("unknown fetch item"),
        })
    }

    /// `GETMETADATA [options] mailbox entries` (RFC 5464 4.2). The
    /// options are also taken after the mailbox, where the RFC's own
    /// examples put them (and Dovecot takes them).
    fn get_metadata(&mut self) -> R<CommandKind> {
        self.sp()?;
        let mut options = MetadataOptions::default();
        let mut have_options = false;
        if self.peek()? == b'(' {
            options = self.metadata_options()?;
            have_options = true;
            self.sp()?;
        }
        let mailbox = self.mailbox()?;
        self.sp()?;
        if !have_options && self.peek()? == b'(' {
            let save = self.pos;
            self.pos += 1;
            let is_option = self.peek()?.is_ascii_alphabetic();
            self.pos = save;
            if is_option {
                options = self.metadata_options()?;
                self.sp()?;
            }
        }
        let entries = if self.peek()? == b'(' {
            self.paren_list(false, |p| p.astring())?
        } else {
            vec![self.astring()?]
        };
        Ok(CommandKind::GetMetadata {
            mailbox,
            options,
            entries,
        })
    }

    /// `(MAXSIZE n DEPTH d)`, either or both, once each.
    fn metadata_options(&mut self) -> R<MetadataOptions> {
        let mut options = MetadataOptions::default();
        let (mut size_seen, mut depth_seen) = (false, false);
        self.paren_list(false, |p| {
            match p.upper_atom()?.as_str() {
                "MAXSIZE" if !size_seen => {
                    size_seen = true;
                    p.sp()?;
                    options.max_size = Some(p.number()?);
                }
                "DEPTH" if !depth_seen => {
                    depth_seen = true;
                    p.sp()?;
                    options.depth = match p.upper_atom()?.as_str() {
                        "0" => MetadataDepth::Zero,
                        "1" => MetadataDepth::One,
                        "INFINITY" => MetadataDepth::Infinity,
                        _ => return bad("DEPTH is 0, 1 or infinity"),
                    };
                }
                _ => return bad("unknown GETMETADATA option"),
            }
            Ok(())
        })?;
        Ok(options)
    }

    /// CREATE's parameters (RFC 4466): only `USE (attr ...)` (RFC 6154
    /// 3), whose attributes are returned.
    fn create_params(&mut self) -> R<Vec<String>> {
        let mut uses = Vec::new();
        let mut seen_use = false;
        self.paren_list(false, |p| {
            if p.upper_atom()? != "USE" || seen_use {
                return bad("unknown CREATE parameter");
            }
            seen_use = true;
            p.sp()?;
            uses = p.paren_list(true, |p| {
                p.expect(b'\\', "\\")?;
                let name = p.atom()?;
                Ok(format!("\\{}", String::from_utf8_lossy(name)))
            })?;
            Ok(())
        })?;
        Ok(uses)
    }

    /// RFC 8970's ` (LAZY)` after `PREVIEW`, if there; true with LAZY.
    /// A `(` that opens something else (the FETCH modifiers after a lone
    /// `PREVIEW`) is left alone.
    fn preview_modifiers(&mut self) -> R<bool> {
        let save = self.pos;
        if !(self.eat(b' ')? && self.eat(b'(')?) {
            self.pos = save;
            return Ok(false);
        }
        let first = self.upper_atom()?;
        if first != "LAZY" {
            if first == "CHANGEDSINCE" || first == "VANISHED" {
                self.pos = save;
                return Ok(false);
            }
            return bad("unknown PREVIEW modifier");
        }
        while self.eat(b' ')? {
            if self.upper_atom()? != "LAZY" {
                return bad("unknown PREVIEW modifier");
            }
        }
        self.expect(b')', ")")?;
        Ok(true)
    }

    /// Dovecot's ` (FUZZY)` or ` (LAZY=FUZZY)` after `SNIPPET`, if there;
    /// true for the latter. FUZZY is the only algorithm.
    fn snippet_algorithm(&mut self) -> R<bool> {
        let save = self.pos;
        if !(self.eat(b' ')? && self.eat(b'(')?) {
            self.pos = save;
            return Ok(false);
        }
        let algorithm = self.upper_atom()?;
        let lazy = match algorithm.as_str() {
            "FUZZY" => false,
            "LAZY=FUZZY" => true,
            "CHANGEDSINCE" | "VANISHED" => {
                self.pos = save;
                return Ok(false);
            }
            _ => return bad("unknown SNIPPET algorithm"),
        };
        self.expect(b')', ")")?;
        Ok(lazy)
    }

    /// RFC 8474 `objectid`: 1*255(ALPHA / DIGIT / "_" / "-").
    fn object_id(&mut self) -> R<String> {
        let id = self.take_while(
            |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            "object id",
        )?;
        if id.len() > 255 {
            return bad("object id too long");
        }
        Ok(String::from_utf8_lossy(id).into_owned())
    }

    /// `<origin.length>` after a section, if there.
    fn partial(&mut self) -> R<Option<Partial>> {
        if !self.eat(b'<')? {
            return Ok(None);
        }
        let origin = self.number()?;
        self.expect(b'.', ".")?;
        let length = self.nz_number()?;
        self.expect(b'>', ">")?;
        Ok(Some(Partial { origin, length }))
    }

    /// `[section-part]` of BINARY (RFC 3516): part numbers only, maybe
    /// none.
    fn binary_part(&mut self) -> R<Vec<std::num::NonZeroU32>> {
        self.expect(b'[', "[")?;
        let mut part = Vec::new();
        if self.eat(b']')? {
            return Ok(part);
        }
        loop {
            if part.len() >= self.limits.max_depth {
                return bad("section nested too deep");
            }
            part.push(self.nz_number()?);
            if self.eat(b']')? {
                return Ok(part);
            }
            self.expect(b'.', ".")?;
        }
    }

    /// A literal, or with `~` a literal8 (RFC 3516); true for the latter.
    fn literal_or_literal8(&mut self) -> R<(Vec<u8>, bool)> {
        let binary = self.eat(b'~')?;
        Ok((self.literal()?, binary))
    }

    /// After `UTF8`: `SP "(" literal8 ")"` (RFC 6855 section 4; a plain
    /// literal is taken too).
    fn utf8_literal(&mut self) -> R<Vec<u8>> {
        self.sp()?;
        self.expect(b'(', "(")?;
        let (data, _) = self.literal_or_literal8()?;
        self.expect(b')', ")")?;
        Ok(data)
    }

    /// `[flag-list SP] [date-time SP] (literal / literal8 / UTF8 (literal8)
    /// / CATENATE (...))`.
    fn append_message(&mut self) -> R<AppendMessage> {
        let mut flags = Vec::new();
        if self.peek()? == b'(' {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek()? == b'"' {
            date = Some(self.date_time()?);
            self.sp()?;
        }
        let content = if matches!(self.peek()?, b'{' | b'~') {
            let (data, binary) = self.literal_or_literal8()?;
            AppendContent::Literal { data, binary }
        } else {
            match self.upper_atom()?.as_str() {
                "CATENATE" => {}
                "UTF8" => {
                    return Ok(AppendMessage {
                        flags,
                        date,
                        content: AppendContent::Utf8(self.utf8_literal()?),
                    })
                }
                _ => return bad("expected a literal, UTF8 or CATENATE"),
            }
            self.sp()?;
            AppendContent::Catenate(self.paren_list(false, |p| match p.upper_atom()?.as_str() {
                "TEXT" => {
                    p.sp()?;
                    let (data, binary) = p.literal_or_literal8()?;
                    Ok(CatenatePart::Text { data, binary })
                }
                "URL" => {
                    p.sp()?;
                    Ok(CatenatePart::Url(p.astring()?))
                }
                "UTF8" => Ok(CatenatePart::Utf8(p.utf8_literal()?)),
                _ => bad("expected TEXT, URL or UTF8"),
            })?)
        };
        Ok(AppendMessage {
            flags,
            date,
            content,
        })
    }

    /// `REPLACE seq mailbox message`, or `UID REPLACE uid ...` (RFC 8508).
    fn replace(&mut self, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let target = self.nz_number()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        self.sp()?;
        let message = self.append_message()?;
        Ok(CommandKind::Replace {
            uid,
            target,
            mailbox,
            message,
        })
    }

    fn section(&mut self) -> R<Section> {
        self.expect(b'[', "[")?;
        let mut section = Section::default();
        if self.eat(b']')? {
            return Ok(section);
        }
        while self.peek()?.is_ascii_digit() {
            if section.part.len() >= self.limits.max_depth {
                return bad("section nested too deep");
            }
            section.part.push(self.nz_number()?);
            if !self.eat(b'.')? {
                self.expect(b']', "]")?;
                return Ok(section);
            }
        }
        let text = self.take_while(|b| b.is_ascii_alphabetic() || b == b'.', "section text")?;
        let text = String::from_utf8_lossy(text).to_ascii_uppercase();
        section.text = Some(match text.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !section.part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                self.sp()?;
                let fields = self.paren_list(false, |p| {
                    let mut f = p.astring()?;
                    f.make_ascii_uppercase();
                    Ok(f)
                })?;
                if text == "HEADER.FIELDS" {
                    SectionText::HeaderFields(fields)
                } else {
                    SectionText::HeaderFieldsNot(fields)
                }
            }
            _ => return bad("unknown section"),
        });
        self.expect(b']', "]")?;
        Ok(section)
    }

    fn search(&mut self, uid: bool) -> R<CommandKind> {
        let save = self.pos;
        if self.eat(b' ')? && self.peek()?.is_ascii_alphabetic() && self.upper_atom()? == "RETURN" {
            self.sp()?;
            let returns = self.search_return()?;
            let (charset, criteria) = self.search_criteria()?;
            return Ok(CommandKind::SearchReturning {
                uid,
                returns,
                charset,
                criteria,
            });
        }
        self.pos = save;
        let (charset, criteria) = self.search_criteria()?;
        Ok(CommandKind::Search {
            uid,
            charset,
            criteria,
        })
    }

    /// `"(" [option *(SP option)] ")"` of SEARCH or SORT RETURN; empty is
    /// ALL.
    fn search_return(&mut self) -> R<SearchReturn> {
        let mut r = SearchReturn::default();
        let mut any = false;
        self.paren_list(true, |p| {
            any = true;
            match p.upper_atom()?.as_str() {
                "MIN" => r.min = true,
                "MAX" => r.max = true,
                "ALL" => r.all = true,
                "COUNT" => r.count = true,
                "SAVE" => r.save = true,
                "UPDATE" => r.update = true,
                "CONTEXT" => r.context = true,
                "PARTIAL" => {
                    p.sp()?;
                    let from = p.nz_number()?.get();
                    p.expect(b':', ":")?;
                    let to = p.nz_number()?.get();
                    r.partial = Some((from.min(to), from.max(to)));
                }
                _ => return bad("unknown RETURN option"),
            }
            Ok(())
        })?;
        if !any {
            r.all = true;
        }
        if r.partial.is_some() && r.all {
            return bad("PARTIAL and ALL together");
        }
        Ok(r)
    }

    /// `SP sort-criteria SP charset search-criteria`, the common tail of
    /// SORT and THREAD's after the algorithm.
    fn sort_keys(&mut self) -> R<Vec<SortKey>> {
        let mut reverse = false;
        let keys = self.paren_list(false, |p| loop {
            let field = match p.upper_atom()?.as_str() {
                "REVERSE" => {
                    if reverse {
                        return bad("REVERSE twice");
                    }
                    reverse = true;
                    p.sp()?;
                    continue;
                }
                "ARRIVAL" => SortField::Arrival,
                "CC" => SortField::Cc,
                "DATE" => SortField::Date,
                "FROM" => SortField::From,
                "SIZE" => SortField::Size,
                "SUBJECT" => SortField::Subject,
                "TO" => SortField::To,
                "DISPLAYFROM" => SortField::DisplayFrom,
                "DISPLAYTO" => SortField::DisplayTo,
                _ => return bad("unknown sort criterion"),
            };
            let key = SortKey { reverse, field };
            reverse = false;
            return Ok(key);
        })?;
        Ok(keys)
    }

    fn charset_and_criteria(&mut self) -> R<(String, Vec<SearchKey>)> {
        self.sp()?;
        let charset = String::from_utf8_lossy(&self.astring()?).into_owned();
        let (_, criteria) = self.search_criteria()?;
        Ok((charset, criteria))
    }

    fn sort(&mut self, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let mut returns = None;
        if self.peek()? != b'(' {
            if self.upper_atom()? != "RETURN" {
                return bad("expected sort criteria");
            }
            self.sp()?;
            returns = Some(self.search_return()?);
            self.sp()?;
        }
        let keys = self.sort_keys()?;
        let (charset, criteria) = self.charset_and_criteria()?;
        Ok(CommandKind::Sort {
            uid,
            returns,
            keys,
            charset,
            criteria,
        })
    }

    fn thread(&mut self, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let algorithm = match self.upper_atom()?.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            "REFS" => ThreadAlgorithm::Refs,
            _ => return bad("unknown threading algorithm"),
        };
        let (charset, criteria) = self.charset_and_criteria()?;
        Ok(CommandKind::Thread {
            uid,
            algorithm,
            charset,
            criteria,
        })
    }

    /// `[SP "CHARSET" SP astring] 1*(SP search-key)`.
    fn search_criteria(&mut self) -> R<(Option<String>, Vec<SearchKey>)> {
        let mut charset = None;
        let mut criteria = Vec::new();
        while self.peek()? == b' ' {
            self.pos += 1;
            if criteria.len() >= self.limits.max_items {
                return bad("too many search keys");
            }
            let save = self.pos;
            if criteria.is_empty() && charset.is_none() && self.peek()?.is_ascii_alphabetic() {
                if self.upper_atom()? == "CHARSET" {
                    self.sp()?;
                    let cs = self.astring()?;
                    charset = Some(String::from_utf8_lossy(&cs).into_owned());
                    continue;
                }
                self.pos = save;
            }
            criteria.push(self.search_key(0)?);
        }
        if criteria.is_empty() {
            return bad("SEARCH needs a criterion");
        }
        Ok((charset, criteria))
    }

    fn search_key(&mut self, depth: usize) -> R<SearchKey> {
        use SearchKey as S;
        if depth >= self.limits.max_depth {
            return bad("search nested too deep");
        }
        let c = self.peek()?;
        if c == b'(' {
            return Ok(S::And(self.paren_list(false, |p| p.search_key(depth + 1))?));
        }
        if c.is_ascii_digit() || c == b'*' || c == b'$' {
            return Ok(S::SequenceSet(self.sequence_set()?));
        }
        let key = self.upper_atom()?;
        macro_rules! arg {
            ($e:expr) => {{
                self.sp()?;
                $e
            }};
        }
        Ok(match key.as_str() {
            "ALL" => S::All,
            "ANSWERED" => S::Answered,
            "DELETED" => S::Deleted,
            "DRAFT" => S::Draft,
            "FLAGGED" => S::Flagged,
            "NEW" => S::New,
            "OLD" => S::Old,
            "RECENT" => S::Recent,
            "SEEN" => S::Seen,
            "UNANSWERED" => S::Unanswered,
            "UNDELETED" => S::Undeleted,
            "UNDRAFT" => S::Undraft,
            "UNFLAGGED" => S::Unflagged,
            "UNSEEN" => S::Unseen,
            "BCC" => arg!(S::Bcc(self.astring()?)),
            "BODY" => arg!(S::Body(self.astring()?)),
            "CC" => arg!(S::Cc(self.astring()?)),
            "FROM" => arg!(S::From(self.astring()?)),
            "SUBJECT" => arg!(S::Subject(self.astring()?)),
            "TEXT" => arg!(S::Text(self.astring()?)),
            "TO" => arg!(S::To(self.astring()?)),
            "BEFORE" => arg!(S::Before(self.date()?)),
            "ON" => arg!(S::On(self.date()?)),
            "SINCE" => arg!(S::Since(self.date()?)),
            "SENTBEFORE" => arg!(S::SentBefore(self.date()?)),
            "SENTON" => arg!(S::SentOn(self.date()?)),
            "SENTSINCE" => arg!(S::SentSince(self.date()?)),
            "KEYWORD" => arg!(S::Keyword(self.flag()?)),
            "UNKEYWORD" => arg!(S::Unkeyword(self.flag()?)),
            "LARGER" => arg!(S::Larger(self.number()?)),
            "SMALLER" => arg!(S::Smaller(self.number()?)),
            "UID" => arg!(S::Uid(self.sequence_set()?)),
            "MODSEQ" => {
                self.sp()?;
                // RFC 7162 `[entry-name SP entry-type-req SP]`: read and
                // set aside, as Dovecot does (a flag's modseq is the
                // message's).
                if self.peek()? == b'"' {
                    self.quoted()?;
                    self.sp()?;
                    match self.upper_atom()?.as_str() {
                        "PRIV" | "SHARED" | "ALL" => {}
                        _ => return bad("expected priv, shared or all"),
                    }
                    self.sp()?;
                }
                S::ModSeq(self.number64()?)
            }
            "EMAILID" => arg!(S::EmailId(self.object_id()?)),
            "THREADID" => arg!(S::ThreadId(self.object_id()?)),
            "SAVEDBEFORE" => arg!(S::SavedBefore(self.date()?)),
            "SAVEDON" => arg!(S::SavedOn(self.date()?)),
            "SAVEDSINCE" => arg!(S::SavedSince(self.date()?)),
            "SAVEDATESUPPORTED" => S::SaveDateSupported,
            "OLDER" => arg!(S::Older(self.nz_number()?.get())),
            "YOUNGER" => arg!(S::Younger(self.nz_number()?.get())),
            "HEADER" => {
                self.sp()?;
                let name = self.astring()?;
                self.sp()?;
                S::Header(name, self.astring()?)
            }
            "NOT" => arg!(S::Not(Box::new(self.search_key(depth + 1)?))),
            "OR" => {
                self.sp()?;
                let a = self.search_key(depth + 1)?;
                self.sp()?;
                let b = self.search_key(depth + 1)?;
                S::Or(Box::new(a), Box::new(b))
            }
            _ => return bad("unknown search key"),
        })
    }
}
