//! The command types: what a parsed client command can say, and no more.

use std::num::NonZeroU32;

use super::sequence::SequenceSet;

/// A command tag: one or more ASTRING-CHARs other than `+` (RFC 3501 9).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// Validates a tag.
    pub fn new(s: &str) -> Result<Tag, &'static str> {
        if !s.is_empty() && s.bytes().all(|b| is_astring_char(b) && b != b'+') {
            Ok(Tag(s.to_owned()))
        } else {
            Err("invalid tag")
        }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// ATOM-CHAR (RFC 3501 9): any CHAR except atom-specials.
pub fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// ASTRING-CHAR: ATOM-CHAR or `]`.
pub fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// A message flag: a system flag or a keyword.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// `\Recent` (only ever shown by the server, never stored by a client).
    Recent,
    /// Any other `\Word` flag extension.
    Extension(String),
    /// A keyword (an atom), as the client spelled it.
    Keyword(String),
}

impl Flag {
    /// Parses one flag from its text, e.g. `\Seen` or `$Junk`.
    pub fn from_text(s: &str) -> Option<Flag> {
        if let Some(name) = s.strip_prefix('\\') {
            if name.is_empty() || !name.bytes().all(is_atom_char) {
                return None;
            }
            return Some(match name.to_ascii_lowercase().as_str() {
                "seen" => Flag::Seen,
                "answered" => Flag::Answered,
                "flagged" => Flag::Flagged,
                "deleted" => Flag::Deleted,
                "draft" => Flag::Draft,
                "recent" => Flag::Recent,
                _ => Flag::Extension(name.to_owned()),
            });
        }
        if !s.is_empty() && s.bytes().all(is_atom_char) {
            Some(Flag::Keyword(s.to_owned()))
        } else {
            None
        }
    }

    /// The flag as it is written on the wire.
    pub fn to_text(&self) -> String {
        match self {
            Flag::Seen => "\\Seen".into(),
            Flag::Answered => "\\Answered".into(),
            Flag::Flagged => "\\Flagged".into(),
            Flag::Deleted => "\\Deleted".into(),
            Flag::Draft => "\\Draft".into(),
            Flag::Recent => "\\Recent".into(),
            Flag::Extension(s) => format!("\\{s}"),
            Flag::Keyword(s) => s.clone(),
        }
    }
}

/// A mailbox name as the client sent it, with `INBOX` (any case) folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MailboxName {
    Inbox,
    /// Any other name, still in modified UTF-7 bytes as sent.
    Other(Vec<u8>),
}

impl MailboxName {
    pub fn from_bytes(b: &[u8]) -> MailboxName {
        if b.eq_ignore_ascii_case(b"INBOX") {
            MailboxName::Inbox
        } else {
            MailboxName::Other(b.to_vec())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MailboxName::Inbox => b"INBOX",
            MailboxName::Other(b) => b,
        }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: Tag,
    pub kind: CommandKind,
}

/// The date of an APPEND or a search key, with its zone offset in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Offset from UTC in minutes, e.g. -480 for `-0800`.
    pub zone_minutes: i16,
}

/// A calendar date as used by SEARCH (`1-Feb-1994`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// Everything a command can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    Capability,
    Noop,
    Logout,
    StartTls,
    Authenticate {
        mechanism: String,
        /// SASL-IR initial response, still base64 (`=` means empty).
        initial_response: Option<Vec<u8>>,
    },
    Login {
        user: Vec<u8>,
        password: Secret,
    },
    Select {
        mailbox: MailboxName,
        condstore: bool,
        /// RFC 7162 `(QRESYNC (...))`: what the client knew when it last
        /// had the mailbox open.
        qresync: Option<QresyncParams>,
    },
    Examine {
        mailbox: MailboxName,
        condstore: bool,
        /// RFC 7162 `(QRESYNC (...))`: what the client knew when it last
        /// had the mailbox open.
        qresync: Option<QresyncParams>,
    },
    Create(MailboxName),
    /// CREATE with `(USE (...))` (RFC 6154 3): the special uses asked
    /// for, as written (`\Drafts`); maybe none.
    CreateSpecialUse {
        mailbox: MailboxName,
        uses: Vec<String>,
    },
    Delete(MailboxName),
    Rename {
        from: MailboxName,
        to: MailboxName,
    },
    Subscribe(MailboxName),
    Unsubscribe(MailboxName),
    List {
        selection: Vec<ListSelection>,
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        returns: Vec<ListReturn>,
    },
    Lsub {
        reference: Vec<u8>,
        pattern: Vec<u8>,
    },
    Status {
        mailbox: MailboxName,
        items: Vec<StatusItem>,
    },
    /// APPEND of one message, or of several in one transaction
    /// (MULTIAPPEND, RFC 3502).
    Append {
        mailbox: MailboxName,
        messages: Vec<AppendMessage>,
    },
    /// REPLACE / UID REPLACE (RFC 8508): `target` is a sequence number, or
    /// a UID with `uid`.
    Replace {
        uid: bool,
        target: NonZeroU32,
        mailbox: MailboxName,
        message: AppendMessage,
    },
    Check,
    Close,
    Unselect,
    Expunge,
    UidExpunge(SequenceSet),
    Search {
        uid: bool,
        charset: Option<String>,
        criteria: Vec<SearchKey>,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        attributes: Vec<FetchAttribute>,
        changed_since: Option<u64>,
        /// RFC 7162 `VANISHED` modifier (UID FETCH with CHANGEDSINCE only).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: Vec<Flag>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxName,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxName,
    },
    Idle,
    Namespace,
    /// `ID NIL` is `None`; otherwise field/value pairs (value may be NIL).
    Id(Option<IdParams>),
    Enable(Vec<String>),
    /// `COMPRESS mechanism` (RFC 4978), the mechanism upper-cased.
    Compress(String),
    /// SEARCH with RETURN options (RFC 4731, 5182, 5267): answered with
    /// `* ESEARCH`.
    SearchReturning {
        uid: bool,
        returns: SearchReturn,
        charset: Option<String>,
        criteria: Vec<SearchKey>,
    },
    /// SORT and UID SORT (RFC 5256); with RETURN, ESORT (RFC 5267).
    Sort {
        uid: bool,
        returns: Option<SearchReturn>,
        keys: Vec<SortKey>,
        charset: String,
        criteria: Vec<SearchKey>,
    },
    /// THREAD and UID THREAD (RFC 5256).
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        criteria: Vec<SearchKey>,
    },
    /// CANCELUPDATE (RFC 5267): the tags of searches to stop updating.
    CancelUpdate(Vec<Tag>),
    /// NOTIFY (RFC 5465): `NOTIFY NONE` is `None`.
    Notify(Option<NotifySet>),
    /// GETMETADATA (RFC 5464): the entries asked for, as sent; the
    /// mailbox is empty for the server's entries.
    GetMetadata {
        mailbox: MailboxName,
        options: MetadataOptions,
        entries: Vec<Vec<u8>>,
    },
    /// RESETKEY (RFC 4467): of one mailbox, or of all; mechanisms
    /// upper-cased.
    ResetKey {
        mailbox: Option<MailboxName>,
        mechanisms: Vec<String>,
    },
    /// GENURLAUTH (RFC 4467): URLs to authorize, each with the mechanism
    /// (upper-cased).
    GenUrlAuth(Vec<(Vec<u8>, String)>),
    /// URLFETCH (RFC 4467): the URLs to fetch, each maybe with RFC
    /// 5524's parameters.
    UrlFetch(Vec<UrlFetchItem>),
    /// SETMETADATA (RFC 5464): each entry with its new value (`None`, sent
    /// as NIL, removes it).
    SetMetadata {
        mailbox: MailboxName,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    /// GETQUOTA (RFC 9208): a quota root's name, as the client sent it.
    GetQuota(Vec<u8>),
    /// GETQUOTAROOT (RFC 9208).
    GetQuotaRoot(MailboxName),
    /// SETQUOTA (RFC 9208): a quota root's name and the resource limits
    /// asked for (resource names upper-cased).
    SetQuota {
        root: Vec<u8>,
        limits: Vec<(String, u64)>,
    },
}

/// `NOTIFY SET [STATUS] event-group...` (RFC 5465 3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySet {
    /// `STATUS`: report every mailbox the filters name at once.
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

/// One `(filter-mailboxes events)`; no events stands for `NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: Vec<NotifyEvent>,
}

/// `filter-mailboxes` (RFC 5465 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFilter {
    Selected,
    /// The selected mailbox, its EXPUNGEs held for a command that allows
    /// them.
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<MailboxName>),
    Mailboxes(Vec<MailboxName>),
}

impl NotifyFilter {
    pub fn is_selected(&self) -> bool {
        matches!(self, NotifyFilter::Selected | NotifyFilter::SelectedDelayed)
    }
}

/// An `event` (RFC 5465 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// With the fetch attributes to send for each new message (selected
    /// mailbox only).
    MessageNew(Vec<FetchAttribute>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
}

impl NotifyEvent {
    pub fn name(&self) -> &'static str {
        match self {
            NotifyEvent::MessageNew(_) => "MessageNew",
            NotifyEvent::MessageExpunge => "MessageExpunge",
            NotifyEvent::FlagChange => "FlagChange",
            NotifyEvent::AnnotationChange => "AnnotationChange",
            NotifyEvent::MailboxName => "MailboxName",
            NotifyEvent::SubscriptionChange => "SubscriptionChange",
            NotifyEvent::MailboxMetadataChange => "MailboxMetadataChange",
            NotifyEvent::ServerMetadataChange => "ServerMetadataChange",
        }
    }
}

/// GETMETADATA's options (RFC 5464 4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataOptions {
    /// MAXSIZE: longer values are left out (and counted in LONGENTRIES).
    pub max_size: Option<u32>,
    pub depth: MetadataDepth,
}

/// GETMETADATA's DEPTH: the entry only, its children too, or everything
/// below it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetadataDepth {
    #[default]
    Zero,
    One,
    Infinity,
}

/// The RETURN options of an extended SEARCH or SORT. `RETURN ()` is ALL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    /// SAVE (RFC 5182): keep the result for `$`.
    pub save: bool,
    /// UPDATE (RFC 5267): report changes to the result as they happen.
    pub update: bool,
    /// CONTEXT (RFC 5267): a hint, accepted and ignored.
    pub context: bool,
    /// PARTIAL low:high (RFC 5267), 1-based positions in the result, low <= high.
    pub partial: Option<(u32, u32)>,
}

/// One SORT criterion (RFC 5256, DISPLAYFROM and DISPLAYTO from RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub reverse: bool,
    pub field: SortField,
}

/// What a SORT criterion compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// THREAD algorithms: RFC 5256's two and Dovecot's REFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
    Refs,
}

/// One message of an APPEND: its flags, date and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<Flag>,
    pub date: Option<DateTime>,
    pub content: AppendContent,
}

/// What an APPEND message is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendContent {
    /// A literal; `binary` when sent as a `~{n}` literal8 (RFC 3516).
    Literal { data: Vec<u8>, binary: bool },
    /// `UTF8 (literal8)` (RFC 6855 section 4): a message whose header may
    /// hold UTF-8, from a client that enabled UTF8=ACCEPT or IMAP4rev2.
    Utf8(Vec<u8>),
    /// CATENATE (RFC 4469): the message is its parts joined.
    Catenate(Vec<CatenatePart>),
}

/// One part of a CATENATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatenatePart {
    /// `TEXT literal` (or literal8 with `binary`).
    Text { data: Vec<u8>, binary: bool },
    /// `UTF8 (literal8)` (RFC 6855 section 4), as in APPEND.
    Utf8(Vec<u8>),
    /// `URL "..."`: an IMAP URL (RFC 5092) of a message or a section of
    /// one in the user's own mailboxes.
    Url(Vec<u8>),
}

/// The `QRESYNC` parameter of SELECT and EXAMINE (RFC 7162 3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    /// The UIDVALIDITY the client's cache is for.
    pub uid_validity: u32,
    /// The HIGHESTMODSEQ the client was last brought up to.
    pub modseq: u64,
    /// The UIDs the client holds (all when absent).
    pub known_uids: Option<SequenceSet>,
    /// Message numbers and the UIDs they had for the client.
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// ID field/value pairs (RFC 2971); a value may be NIL.
pub type IdParams = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// LIST-EXTENDED selection options (RFC 5258).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListSelection {
    Subscribed,
    Remote,
    RecursiveMatch,
    SpecialUse,
}

/// LIST RETURN options (RFC 5258, 5819, 6154).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    Subscribed,
    Children,
    SpecialUse,
    Status(Vec<StatusItem>),
}

/// STATUS data items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    HighestModSeq,
    Size,
    /// RFC 7889: the largest message APPEND takes into the mailbox.
    AppendLimit,
    /// RFC 8474: the mailbox's id, kept across RENAME.
    MailboxId,
    /// RFC 9208 (and IMAP4rev2): the messages with `\Deleted`.
    Deleted,
    /// RFC 9208: the storage an EXPUNGE would free, in octets.
    DeletedStorage,
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

/// A FETCH data item (macros are expanded by the parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttribute {
    Envelope,
    Flags,
    InternalDate,
    Rfc822,
    Rfc822Header,
    Rfc822Size,
    Rfc822Text,
    /// `BODY` (non-extensible body structure).
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`.
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<Partial>,
    },
    /// `BINARY[part]<partial>` or `BINARY.PEEK[...]` (RFC 3516): the
    /// part's content with its transfer encoding undone.
    BinarySection {
        peek: bool,
        part: Vec<NonZeroU32>,
        partial: Option<Partial>,
    },
    /// `BINARY.SIZE[part]`: the octets [`FetchAttribute::BinarySection`]
    /// would give.
    BinarySize(Vec<NonZeroU32>),
    /// RFC 8474: the id of the message's content.
    EmailId,
    /// RFC 8474: the id of the message's thread.
    ThreadId,
    /// RFC 8514: when the message was saved into its mailbox.
    SaveDate,
    /// RFC 8970 `PREVIEW` (with `lazy`, `PREVIEW (LAZY)`): the start of
    /// the message's text.
    Preview {
        lazy: bool,
    },
    /// Dovecot's older `SNIPPET (FUZZY)` (or `(LAZY=FUZZY)`): the same
    /// text as [`FetchAttribute::Preview`], answered `SNIPPET (FUZZY "...")`.
    Snippet {
        lazy: bool,
    },
}

/// `<origin.length>` of a partial fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    pub origin: u32,
    pub length: NonZeroU32,
}

/// A body section: part numbers (may be empty) and what of that part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// Nested part numbers; empty means the whole message.
    pub part: Vec<NonZeroU32>,
    pub text: Option<SectionText>,
}

/// What of a part a section names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names, upper-cased.
    HeaderFields(Vec<Vec<u8>>),
    HeaderFieldsNot(Vec<Vec<u8>>),
    Text,
    /// Only after a part number.
    Mime,
}

/// A SEARCH key (RFC 3501 6.4.4, plus MODSEQ from RFC 7162).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Bcc(Vec<u8>),
    Before(Date),
    Body(Vec<u8>),
    Cc(Vec<u8>),
    Deleted,
    Draft,
    Flagged,
    From(Vec<u8>),
    Header(Vec<u8>, Vec<u8>),
    Keyword(Flag),
    Larger(u32),
    New,
    Not(Box<SearchKey>),
    Old,
    On(Date),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    Seen,
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Since(Date),
    Smaller(u32),
    Subject(Vec<u8>),
    Text(Vec<u8>),
    To(Vec<u8>),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(Flag),
    Unseen,
    SequenceSet(SequenceSet),
    ModSeq(u64),
    /// RFC 8474 `EMAILID objectid`.
    EmailId(String),
    /// RFC 8474 `THREADID objectid`.
    ThreadId(String),
    /// RFC 8514: saved into the mailbox before, on or since a day.
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    /// RFC 8514: every message, when the mailbox keeps save dates.
    SaveDateSupported,
    /// OLDER n (RFC 5032): internal date at least n seconds ago.
    Older(u32),
    /// YOUNGER n (RFC 5032): internal date less than n seconds ago.
    Younger(u32),
    /// A parenthesised list: all must match.
    And(Vec<SearchKey>),
}

/// One URL of a URLFETCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlFetchItem {
    pub url: Vec<u8>,
    /// `None` for a bare URL (RFC 4467's answer, a string); the
    /// parameters of one in parentheses (RFC 5524's extended answer).
    pub extended: Option<UrlFetchWants>,
}

/// What an extended URLFETCH (RFC 5524) asks for one URL. `(url)` with
/// no parameter asks for BODY, as Dovecot takes it; BODY and BINARY
/// together are refused by the parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlFetchWants {
    pub body_part_structure: bool,
    pub binary: bool,
    pub body: bool,
}
