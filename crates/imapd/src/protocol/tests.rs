//! Parser tests: every command form, RFC 3501 examples split at every byte,
//! literal flows, bad input, and property tests.

use super::*;
use proptest::prelude::*;

fn limits() -> Limits {
    Limits::default()
}

/// Parses a whole command and checks it used every byte.
fn parse(input: &[u8]) -> Command {
    match parse_command(input, &limits()) {
        Parsed::Complete { command, consumed } => {
            assert_eq!(
                consumed,
                input.len(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            command
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn kind(input: &str) -> CommandKind {
    parse(input.as_bytes()).kind
}

/// Feeds every prefix: each must ask for more (or for the literal when it
/// ends just after a synchronising literal's CRLF), and the whole must
/// parse as it does in one piece.
fn split_everywhere(input: &[u8]) -> Command {
    let whole = parse(input);
    for i in 0..input.len() {
        match parse_command(&input[..i], &limits()) {
            Parsed::Incomplete => {}
            Parsed::NeedLiteral {
                tag, literal_start, ..
            } => {
                assert_eq!(literal_start, i);
                assert_eq!(tag, whole.tag);
                assert!(input[..i].ends_with(b"}\r\n"));
            }
            other => panic!(
                "prefix {i} of {:?}: {other:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }
    whole
}

fn error(input: &[u8]) -> (Option<Tag>, usize) {
    match parse_command(input, &limits()) {
        Parsed::Error { tag, consumed, .. } => (tag, consumed),
        other => panic!(
            "{:?} should fail: {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn set(s: &str) -> SequenceSet {
    SequenceSet::parse(s.as_bytes(), 100).unwrap()
}

fn mbox(s: &str) -> MailboxName {
    MailboxName::from_bytes(s.as_bytes())
}

const RFC_APPEND_MESSAGE: &str = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n\
From: Fred Foobar <foobar@Blurdybloop.COM>\r\n\
Subject: afternoon meeting\r\n\
To: mooch@owatagusiam.example.COM\r\n\
Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\
\r\n\
Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";

fn rfc_examples() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        // RFC 3501 section 8, the client's side of the sample session.
        "a001 login mrc secret\r\n",
        "a002 select inbox\r\n",
        "a003 fetch 12 full\r\n",
        "a004 fetch 12 body[header]\r\n",
        "a005 store 12 +flags \\deleted\r\n",
        "a006 logout\r\n",
        // Section 6 examples.
        "abcd CAPABILITY\r\n",
        "a002 NOOP\r\n",
        "A023 LOGOUT\r\n",
        "a001 STARTTLS\r\n",
        "A001 AUTHENTICATE GSSAPI\r\n",
        "a001 LOGIN SMITH SESAME\r\n",
        "A142 SELECT INBOX\r\n",
        "A932 EXAMINE blurdybloop\r\n",
        "A003 CREATE owatagusiam/\r\n",
        "A004 CREATE owatagusiam/blurdybloop\r\n",
        "A683 DELETE blurdybloop\r\n",
        "A682 LIST \"\" *\r\n",
        "A683 RENAME blurdybloop sarasoop\r\n",
        "A002 SUBSCRIBE #news.comp.mail.mime\r\n",
        "A002 UNSUBSCRIBE #news.comp.mail.mime\r\n",
        "A101 LIST \"\" \"\"\r\n",
        "A102 LIST #news.comp.mail.misc \"\"\r\n",
        "A103 LIST /usr/staff/jones \"\"\r\n",
        "A202 LIST ~/Mail/ %\r\n",
        "A002 LSUB \"#news.\" \"comp.mail.*\"\r\n",
        "A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
        "FXXZ CHECK\r\n",
        "A341 CLOSE\r\n",
        "A202 EXPUNGE\r\n",
        "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
        "A283 SEARCH TEXT \"string not in mailbox\"\r\n",
        "A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n",
        "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
        "A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
        "A003 COPY 2:4 MEETING\r\n",
        "A999 UID FETCH 4827313:4828442 FLAGS\r\n",
        // Extensions, as Thunderbird and others send them.
        "5 ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n",
        "6 ENABLE CONDSTORE QRESYNC\r\n",
        "7 LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Lists/%\") RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
        "8 UID MOVE 1:* Trash\r\n",
        "9 UID EXPUNGE 3:5\r\n",
        "10 APPEND Sent (\\Seen) {5+}\r\nhello\r\n",
        "11 LOGIN {4}\r\nfred {6}\r\nsecret\r\n",
        "12 AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0\r\n",
        "13 IDLE\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(
        format!(
            "A003 APPEND saved-messages (\\Seen) {{{}}}\r\n{}\r\n",
            RFC_APPEND_MESSAGE.len(),
            RFC_APPEND_MESSAGE
        )
        .into_bytes(),
    );
    v
}

#[test]
fn rfc_examples_split_at_every_byte() {
    for example in rfc_examples() {
        split_everywhere(&example);
    }
}

#[test]
fn pipelined_commands_parse_one_at_a_time() {
    let all: Vec<u8> = rfc_examples().concat();
    let mut rest = &all[..];
    let mut n = 0;
    while !rest.is_empty() {
        match parse_command(rest, &limits()) {
            Parsed::Complete { consumed, .. } => rest = &rest[consumed..],
            other => panic!("{other:?}"),
        }
        n += 1;
    }
    assert_eq!(n, rfc_examples().len());
}

#[test]
fn sample_session_commands() {
    use FetchAttribute as F;
    assert_eq!(
        parse(b"a001 login mrc secret\r\n"),
        Command {
            tag: Tag::new("a001").unwrap(),
            kind: CommandKind::Login {
                user: b"mrc".to_vec(),
                password: Secret(b"secret".to_vec())
            }
        }
    );
    assert_eq!(
        kind("a002 select inbox\r\n"),
        CommandKind::Select {
            mailbox: MailboxName::Inbox,
            condstore: false,
            qresync: None
        }
    );
    assert_eq!(
        kind("a003 fetch 12 full\r\n"),
        CommandKind::Fetch {
            uid: false,
            set: set("12"),
            attributes: vec![
                F::Flags,
                F::InternalDate,
                F::Rfc822Size,
                F::Envelope,
                F::Body
            ],
            changed_since: None,
            vanished: false
        }
    );
    assert_eq!(
        kind("a004 fetch 12 body[header]\r\n"),
        CommandKind::Fetch {
            uid: false,
            set: set("12"),
            attributes: vec![F::BodySection {
                peek: false,
                section: Section {
                    part: vec![],
                    text: Some(SectionText::Header)
                },
                partial: None
            }],
            changed_since: None,
            vanished: false
        }
    );
    assert_eq!(
        kind("a005 store 12 +flags \\deleted\r\n"),
        CommandKind::Store {
            uid: false,
            set: set("12"),
            unchanged_since: None,
            mode: StoreMode::Add,
            silent: false,
            flags: vec![Flag::Deleted]
        }
    );
    assert_eq!(kind("a006 logout\r\n"), CommandKind::Logout);
}

#[test]
fn simple_commands() {
    for (s, k) in [
        ("CAPABILITY", CommandKind::Capability),
        ("NOOP", CommandKind::Noop),
        ("LOGOUT", CommandKind::Logout),
        ("STARTTLS", CommandKind::StartTls),
        ("CHECK", CommandKind::Check),
        ("CLOSE", CommandKind::Close),
        ("UNSELECT", CommandKind::Unselect),
        ("EXPUNGE", CommandKind::Expunge),
        ("IDLE", CommandKind::Idle),
        ("NAMESPACE", CommandKind::Namespace),
        ("noop", CommandKind::Noop),
        ("Capability", CommandKind::Capability),
    ] {
        assert_eq!(kind(&format!("t {s}\r\n")), k);
        assert!(matches!(
            parse_command(format!("t {s} x\r\n").as_bytes(), &limits()),
            Parsed::Error { .. }
        ));
    }
}

#[test]
fn authenticate_and_login() {
    assert_eq!(
        kind("a AUTHENTICATE plain\r\n"),
        CommandKind::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: None
        }
    );
    assert_eq!(
        kind("a AUTHENTICATE PLAIN =\r\n"),
        CommandKind::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: Some(b"=".to_vec())
        }
    );
    assert_eq!(
        kind("a LOGIN \"fred smith\" {3+}\r\np\"w\r\n"),
        CommandKind::Login {
            user: b"fred smith".to_vec(),
            password: Secret(b"p\"w".to_vec())
        }
    );
    assert_eq!(
        kind("a LOGIN \"a\\\\b\\\"c\" x\r\n"),
        CommandKind::Login {
            user: b"a\\b\"c".to_vec(),
            password: Secret(b"x".to_vec())
        }
    );
    assert!(!format!("{:?}", kind("a LOGIN u hunter2\r\n")).contains("hunter2"));
}

#[test]
fn mailbox_commands() {
    assert_eq!(
        kind("a EXAMINE \"Sent Items\" (CONDSTORE)\r\n"),
        CommandKind::Examine {
            mailbox: mbox("Sent Items"),
            condstore: true,
            qresync: None
        }
    );
    assert_eq!(
        kind("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1:3 41,43,50)))\r\n"),
        CommandKind::Select {
            mailbox: MailboxName::Inbox,
            condstore: false,
            qresync: Some(QresyncParams {
                uid_validity: 67890007,
                modseq: 20050715194045000,
                known_uids: Some(SequenceSet::parse(b"41,43:211", 10).unwrap()),
                seq_match: Some((
                    SequenceSet::parse(b"1:3", 10).unwrap(),
                    SequenceSet::parse(b"41,43,50", 10).unwrap()
                )),
            })
        }
    );
    assert_eq!(
        kind("a SELECT INBOX (QRESYNC (7 9))\r\n"),
        CommandKind::Select {
            mailbox: MailboxName::Inbox,
            condstore: false,
            qresync: Some(QresyncParams {
                uid_validity: 7,
                modseq: 9,
                known_uids: None,
                seq_match: None,
            })
        }
    );
    for bad in [
        "a SELECT INBOX (QRESYNC (0 9))\r\n",
        "a SELECT INBOX (QRESYNC (7 0))\r\n",
        "a SELECT INBOX (QRESYNC (7))\r\n",
        "a SELECT INBOX (QRESYNC (7 9 1:* (1:2)))\r\n",
        "a SELECT INBOX (BOGUS)\r\n",
    ] {
        error(bad.as_bytes());
    }
    assert_eq!(kind("a SELECT InBoX\r\n"), kind("a SELECT INBOX\r\n"));
    assert_eq!(kind("a CREATE foo\r\n"), CommandKind::Create(mbox("foo")));
    assert_eq!(kind("a DELETE foo\r\n"), CommandKind::Delete(mbox("foo")));
    assert_eq!(
        kind("a SUBSCRIBE foo\r\n"),
        CommandKind::Subscribe(mbox("foo"))
    );
    assert_eq!(
        kind("a UNSUBSCRIBE foo\r\n"),
        CommandKind::Unsubscribe(mbox("foo"))
    );
    assert_eq!(
        kind("a RENAME foo \"bar baz\"\r\n"),
        CommandKind::Rename {
            from: mbox("foo"),
            to: mbox("bar baz")
        }
    );
    assert_eq!(
        kind("a STATUS inbox (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)\r\n"),
        CommandKind::Status {
            mailbox: MailboxName::Inbox,
            items: vec![
                StatusItem::Messages,
                StatusItem::Recent,
                StatusItem::UidNext,
                StatusItem::UidValidity,
                StatusItem::Unseen,
                StatusItem::HighestModSeq,
                StatusItem::Size
            ]
        }
    );
    assert_eq!(
        kind("a LSUB \"\" *\r\n"),
        CommandKind::Lsub {
            reference: vec![],
            pattern: b"*".to_vec()
        }
    );
}

#[test]
fn list_forms() {
    assert_eq!(
        kind("a LIST \"\" %\r\n"),
        CommandKind::List {
            selection: vec![],
            reference: vec![],
            patterns: vec![b"%".to_vec()],
            returns: vec![]
        }
    );
    assert_eq!(
        kind("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX Archive/*) RETURN (SPECIAL-USE STATUS (MESSAGES UIDNEXT) CHILDREN SUBSCRIBED)\r\n"),
        CommandKind::List {
            selection: vec![ListSelection::Subscribed, ListSelection::RecursiveMatch],
            reference: vec![],
            patterns: vec![b"INBOX".to_vec(), b"Archive/*".to_vec()],
            returns: vec![
                ListReturn::SpecialUse,
                ListReturn::Status(vec![StatusItem::Messages, StatusItem::UidNext]),
                ListReturn::Children,
                ListReturn::Subscribed
            ]
        }
    );
    assert_eq!(
        kind("a LIST () \"\" * RETURN ()\r\n"),
        kind("a LIST \"\" *\r\n")
    );
}

#[test]
fn append_forms() {
    let dt = parse_date_time(b" 7-Feb-1994 21:52:25 -0800").unwrap();
    assert_eq!(
        kind("a APPEND Drafts (\\Draft $Label1) \" 7-Feb-1994 21:52:25 -0800\" {3}\r\nabc\r\n"),
        CommandKind::Append {
            mailbox: mbox("Drafts"),
            messages: vec![AppendMessage {
                flags: vec![Flag::Draft, Flag::Keyword("$Label1".into())],
                date: Some(dt),
                content: literal(b"abc", false),
            }]
        }
    );
    assert_eq!(
        kind("a APPEND inbox {0+}\r\n\r\n"),
        CommandKind::Append {
            mailbox: MailboxName::Inbox,
            messages: vec![AppendMessage {
                flags: vec![],
                date: None,
                content: literal(b"", false),
            }]
        }
    );
    assert_eq!(
        kind("a APPEND x () {1}\r\n\0\r\n"),
        CommandKind::Append {
            mailbox: mbox("x"),
            messages: vec![AppendMessage {
                flags: vec![],
                date: None,
                content: literal(b"\0", false),
            }]
        }
    );
    // The message must be a literal.
    error(b"a APPEND x \"abc\"\r\n");
    error(b"a APPEND x (\\Seen) \"not a date\" {1}\r\n");
}

fn literal(data: &[u8], binary: bool) -> AppendContent {
    AppendContent::Literal {
        data: data.to_vec(),
        binary,
    }
}

/// MULTIAPPEND (RFC 3502), literal8 (RFC 3516) and CATENATE (RFC 4469).
#[test]
fn multiappend_literal8_and_catenate() {
    let plain = |data: &[u8], binary| AppendMessage {
        flags: vec![],
        date: None,
        content: literal(data, binary),
    };
    assert_eq!(
        kind("a APPEND x {1}\r\na (\\Seen) ~{2}\r\nb\0 {1+}\r\nc\r\n"),
        CommandKind::Append {
            mailbox: mbox("x"),
            messages: vec![
                plain(b"a", false),
                AppendMessage {
                    flags: vec![Flag::Seen],
                    ..plain(b"b\0", true)
                },
                plain(b"c", false),
            ]
        }
    );
    assert_eq!(
        kind("a APPEND x CATENATE (URL \"/INBOX/;UID=1\" TEXT {2}\r\nhi) {1}\r\nz\r\n"),
        CommandKind::Append {
            mailbox: mbox("x"),
            messages: vec![
                AppendMessage {
                    flags: vec![],
                    date: None,
                    content: AppendContent::Catenate(vec![
                        CatenatePart::Url(b"/INBOX/;UID=1".to_vec()),
                        CatenatePart::Text {
                            data: b"hi".to_vec(),
                            binary: false
                        },
                    ]),
                },
                plain(b"z", false),
            ]
        }
    );
    // CATENATE needs parts; TEXT needs a literal.
    error(b"a APPEND x CATENATE ()\r\n");
    error(b"a APPEND x CATENATE (TEXT \"hi\")\r\n");
    error(b"a APPEND x {1}\r\na \r\n");
}

/// RFC 6855 section 4: `UTF8 (literal8)` as a message and as a CATENATE
/// part; RFC 9051's STATUS DELETED. Split at every byte.
#[test]
fn utf8_append_and_status_deleted() {
    let message = "Subject: Grüße\r\n\r\nHallo\r\n";
    let input = format!(
        "a APPEND \"Entwürfe\" (\\Seen) UTF8 (~{{{n}}}\r\n{message}) UTF8 ({{{n}+}}\r\n{message})\r\n",
        n = message.len()
    );
    let utf8 = |flags| AppendMessage {
        flags,
        date: None,
        content: AppendContent::Utf8(message.as_bytes().to_vec()),
    };
    assert_eq!(
        split_everywhere(input.as_bytes()).kind,
        CommandKind::Append {
            mailbox: mbox("Entwürfe"),
            messages: vec![utf8(vec![Flag::Seen]), utf8(vec![])],
        }
    );
    assert_eq!(
        kind("a APPEND x CATENATE (UTF8 (~{2}\r\nhi) TEXT {1}\r\nz)\r\n"),
        CommandKind::Append {
            mailbox: mbox("x"),
            messages: vec![AppendMessage {
                flags: vec![],
                date: None,
                content: AppendContent::Catenate(vec![
                    CatenatePart::Utf8(b"hi".to_vec()),
                    CatenatePart::Text {
                        data: b"z".to_vec(),
                        binary: false
                    },
                ]),
            }],
        }
    );
    // UTF8 needs its parentheses and a literal inside them.
    error(b"a APPEND x UTF8\r\n");
    error(b"a APPEND x UTF8 {1}\r\nz\r\n");
    error(b"a APPEND x UTF8 (\"hi\")\r\n");
    error(b"a APPEND x UTF8 (~{1}\r\nz\r\n");
    error(b"a APPEND x UTF9 (~{1}\r\nz)\r\n");

    assert_eq!(
        split_everywhere(b"a STATUS x (DELETED SIZE)\r\n").kind,
        CommandKind::Status {
            mailbox: mbox("x"),
            items: vec![StatusItem::Deleted, StatusItem::Size],
        }
    );
    error(b"a STATUS x (DELETED-SIZE)\r\n");
}

#[test]
fn replace_and_binary_fetch() {
    use std::num::NonZeroU32;
    let atts = |s: &str| match kind(&format!("a FETCH 1 {s}\r\n")) {
        CommandKind::Fetch { attributes, .. } => attributes,
        other => panic!("{other:?}"),
    };
    let n = |v| NonZeroU32::new(v).unwrap();
    match kind("a UID REPLACE 7 Drafts ~{1}\r\nx\r\n") {
        CommandKind::Replace {
            uid: true,
            target,
            mailbox,
            message,
        } => {
            assert_eq!((target.get(), mailbox), (7, mbox("Drafts")));
            assert_eq!(message.content, literal(b"x", true));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        kind("a REPLACE 1 INBOX {1}\r\nx\r\n"),
        CommandKind::Replace { uid: false, .. }
    ));
    error(b"a REPLACE 0 INBOX {1}\r\nx\r\n");
    assert_eq!(
        atts("(BINARY.PEEK[1.2]<0.10> BINARY.SIZE[] BINARY[3])"),
        vec![
            FetchAttribute::BinarySection {
                peek: true,
                part: vec![n(1), n(2)],
                partial: Some(Partial {
                    origin: 0,
                    length: n(10)
                }),
            },
            FetchAttribute::BinarySize(vec![]),
            FetchAttribute::BinarySection {
                peek: false,
                part: vec![n(3)],
                partial: None,
            },
        ]
    );
    error(b"a FETCH 1 BINARY[HEADER]\r\n");
    error(b"a FETCH 1 BINARY[1.]\r\n");
    error(b"a FETCH 1 BINARY.SIZE[1]<0.1>\r\n");
    assert!(matches!(
        kind("a STATUS x (SIZE APPENDLIMIT)\r\n"),
        CommandKind::Status { items, .. } if items == vec![StatusItem::Size, StatusItem::AppendLimit]
    ));
}

#[test]
fn search_forms() {
    use SearchKey as S;
    // RFC 7162's entry name and type are read and set aside.
    assert_eq!(
        kind("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n"),
        CommandKind::Search {
            uid: false,
            charset: None,
            criteria: vec![S::ModSeq(620162338)]
        }
    );
    error(b"a SEARCH MODSEQ \"/flags/\\\\draft\" every 5\r\n");
    assert_eq!(
        kind("a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"),
        CommandKind::Search {
            uid: false,
            charset: None,
            criteria: vec![
                S::Flagged,
                S::Since(parse_date(b"1-Feb-1994").unwrap()),
                S::Not(Box::new(S::From(b"Smith".to_vec())))
            ]
        }
    );
    assert_eq!(
        kind("a UID SEARCH CHARSET UTF-8 OR (SEEN 1:5) (UID 2,4:* UNKEYWORD $x) HEADER X-Foo \"\" LARGER 10\r\n"),
        CommandKind::Search {
            uid: true,
            charset: Some("UTF-8".into()),
            criteria: vec![
                S::Or(
                    Box::new(S::And(vec![S::Seen, S::SequenceSet(set("1:5"))])),
                    Box::new(S::And(vec![
                        S::Uid(set("2,4:*")),
                        S::Unkeyword(Flag::Keyword("$x".into()))
                    ]))
                ),
                S::Header(b"X-Foo".to_vec(), vec![]),
                S::Larger(10)
            ]
        }
    );
    let every = "ALL ANSWERED BCC a BEFORE 1-Jan-2000 BODY b CC c DELETED DRAFT FLAGGED \
        FROM f HEADER h v KEYWORD k LARGER 1 NEW NOT SEEN OLD ON \"2-Jan-2000\" OR SEEN SEEN \
        RECENT SEEN SENTBEFORE 1-Jan-2000 SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000 SINCE 1-Jan-2000 \
        SMALLER 9 SUBJECT s TEXT t TO t UID 1 UNANSWERED UNDELETED UNDRAFT UNFLAGGED \
        UNKEYWORD k UNSEEN 1:* MODSEQ 5 ((ALL))";
    match kind(&format!("a search {}\r\n", every.to_lowercase())) {
        CommandKind::Search { criteria, .. } => assert_eq!(criteria.len(), 38),
        other => panic!("{other:?}"),
    }
    error(b"a SEARCH\r\n");
    error(b"a SEARCH (SEEN\r\n");
    error(b"a SEARCH SEEN)\r\n");
    error(b"a SEARCH BOGUS\r\n");
    error(b"a SEARCH SINCE 31-Feb-2000\r\n");
    error(b"a SEARCH OR SEEN\r\n");
    let deep = format!("a SEARCH {}ALL{}\r\n", "(".repeat(100), ")".repeat(100));
    error(deep.as_bytes());
    let deep_not = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(100));
    error(deep_not.as_bytes());
}

#[test]
fn fetch_forms() {
    use FetchAttribute as F;
    let atts = |s: &str| match kind(&format!("a FETCH 1 {s}\r\n")) {
        CommandKind::Fetch { attributes, .. } => attributes,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        atts("ALL"),
        vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope]
    );
    assert_eq!(atts("fast"), vec![F::Flags, F::InternalDate, F::Rfc822Size]);
    assert_eq!(
        atts("(FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT ENVELOPE BODY BODYSTRUCTURE UID MODSEQ)"),
        vec![
            F::Flags,
            F::InternalDate,
            F::Rfc822,
            F::Rfc822Header,
            F::Rfc822Size,
            F::Rfc822Text,
            F::Envelope,
            F::Body,
            F::BodyStructure,
            F::Uid,
            F::ModSeq
        ]
    );
    let sec = |part: Vec<u32>, text: Option<SectionText>| Section {
        part: part
            .into_iter()
            .map(|n| std::num::NonZeroU32::new(n).unwrap())
            .collect(),
        text,
    };
    assert_eq!(
        atts("(BODY[] BODY.PEEK[1.2.MIME]<0.1024> BODY[3] body.peek[header.fields.not (x-a \"Y\")] BODY[2.TEXT] BODY[4.HEADER])"),
        vec![
            F::BodySection {
                peek: false,
                section: sec(vec![], None),
                partial: None
            },
            F::BodySection {
                peek: true,
                section: sec(vec![1, 2], Some(SectionText::Mime)),
                partial: Some(Partial {
                    origin: 0,
                    length: std::num::NonZeroU32::new(1024).unwrap()
                })
            },
            F::BodySection {
                peek: false,
                section: sec(vec![3], None),
                partial: None
            },
            F::BodySection {
                peek: true,
                section: sec(
                    vec![],
                    Some(SectionText::HeaderFieldsNot(vec![b"X-A".to_vec(), b"Y".to_vec()]))
                ),
                partial: None
            },
            F::BodySection {
                peek: false,
                section: sec(vec![2], Some(SectionText::Text)),
                partial: None
            },
            F::BodySection {
                peek: false,
                section: sec(vec![4], Some(SectionText::Header)),
                partial: None
            },
        ]
    );
    assert_eq!(
        kind("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n"),
        CommandKind::Fetch {
            uid: true,
            set: set("1:*"),
            attributes: vec![F::Flags],
            changed_since: Some(12345),
            vanished: false
        }
    );
    assert_eq!(
        kind("a UID FETCH 1:* (FLAGS) (VANISHED CHANGEDSINCE 7)\r\n"),
        CommandKind::Fetch {
            uid: true,
            set: set("1:*"),
            attributes: vec![F::Flags],
            changed_since: Some(7),
            vanished: true
        }
    );
    error(b"a UID FETCH 1:* (FLAGS) (VANISHED)\r\n");
    for bad in [
        "a FETCH 1 BODY.PEEK\r\n",
        "a FETCH 1 BODY[MIME]\r\n",
        "a FETCH 1 BODY[0]\r\n",
        "a FETCH 1 BODY[1.]\r\n",
        "a FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
        "a FETCH 1 BODY[]<1.0>\r\n",
        "a FETCH 1 ()\r\n",
        "a FETCH 1 (FLAGS\r\n",
        "a FETCH 1 BOGUS\r\n",
        "a FETCH 1\r\n",
    ] {
        error(bad.as_bytes());
    }
}

#[test]
fn store_copy_move_expunge() {
    assert_eq!(
        kind("a UID STORE 1,3 (UNCHANGEDSINCE 7) -FLAGS.SILENT (\\Seen \\Flagged foo)\r\n"),
        CommandKind::Store {
            uid: true,
            set: set("1,3"),
            unchanged_since: Some(7),
            mode: StoreMode::Remove,
            silent: true,
            flags: vec![Flag::Seen, Flag::Flagged, Flag::Keyword("foo".into())]
        }
    );
    assert_eq!(
        kind("a STORE 2 FLAGS \\Answered \\Draft\r\n"),
        CommandKind::Store {
            uid: false,
            set: set("2"),
            unchanged_since: None,
            mode: StoreMode::Replace,
            silent: false,
            flags: vec![Flag::Answered, Flag::Draft]
        }
    );
    assert_eq!(
        kind("a STORE 2 FLAGS ()\r\n"),
        CommandKind::Store {
            uid: false,
            set: set("2"),
            unchanged_since: None,
            mode: StoreMode::Replace,
            silent: false,
            flags: vec![]
        }
    );
    assert_eq!(
        kind("a COPY 1:2 \"Other box\"\r\n"),
        CommandKind::Copy {
            uid: false,
            set: set("1:2"),
            mailbox: mbox("Other box")
        }
    );
    assert_eq!(
        kind("a MOVE *:* inbox\r\n"),
        CommandKind::Move {
            uid: false,
            set: set("*"),
            mailbox: MailboxName::Inbox
        }
    );
    assert_eq!(kind("a UID COPY 5 x\r\n"), kind("a uid copy 5 x\r\n"));
    assert_eq!(
        kind("a UID EXPUNGE 1:3\r\n"),
        CommandKind::UidExpunge(set("1:3"))
    );
    error(b"a STORE 1 XFLAGS (\\Seen)\r\n");
    error(b"a STORE 1 +FLAGS\r\n");
    error(b"a UID BOGUS 1\r\n");
    error(b"a UID EXPUNGE\r\n");
}

#[test]
fn id_enable_idle() {
    assert_eq!(kind("a ID NIL\r\n"), CommandKind::Id(None));
    assert_eq!(
        kind("a ID (\"name\" \"x\" \"os\" NIL)\r\n"),
        CommandKind::Id(Some(vec![
            (b"name".to_vec(), Some(b"x".to_vec())),
            (b"os".to_vec(), None)
        ]))
    );
    assert_eq!(
        kind("a ENABLE condstore utf8=accept\r\n"),
        CommandKind::Enable(vec!["CONDSTORE".into(), "UTF8=ACCEPT".into()])
    );
    error(b"a ENABLE\r\n");
    error(b"a ID \"x\"\r\n");
    assert_eq!(parse_idle_done(b"DONE\r\n"), IdleDone::Done { consumed: 6 });
    assert_eq!(
        parse_idle_done(b"done\r\na NOOP\r\n"),
        IdleDone::Done { consumed: 6 }
    );
    assert_eq!(parse_idle_done(b"DON"), IdleDone::Incomplete);
    assert_eq!(
        parse_idle_done(b"NOPE\r\n"),
        IdleDone::Error { consumed: 6 }
    );
    assert!(matches!(
        parse_idle_done(&[b'x'; 5000]),
        IdleDone::Error { .. }
    ));
}

#[test]
fn synchronising_literal_flow() {
    let l = limits();
    let first = b"a LOGIN {4}\r\n";
    assert_eq!(
        parse_command(first, &l),
        Parsed::NeedLiteral {
            tag: Tag::new("a").unwrap(),
            size: 4,
            literal_start: first.len()
        }
    );
    // After "+ Ready" the client sends the literal and the rest.
    assert_eq!(parse_command(b"a LOGIN {4}\r\nfr", &l), Parsed::Incomplete);
    assert_eq!(
        parse_command(b"a LOGIN {4}\r\nfred {2}\r\n", &l),
        Parsed::NeedLiteral {
            tag: Tag::new("a").unwrap(),
            size: 2,
            literal_start: 23
        }
    );
    assert!(matches!(
        parse_command(b"a LOGIN {4}\r\nfred {2}\r\npw\r\n", &l),
        Parsed::Complete { consumed: 27, .. }
    ));
}

#[test]
fn literal_plus_needs_no_continuation() {
    let input = b"a APPEND x {3+}\r\nabc\r\n";
    for i in 0..input.len() {
        assert_eq!(parse_command(&input[..i], &limits()), Parsed::Incomplete);
    }
    split_everywhere(input);
}

#[test]
fn literals_too_large_are_refused() {
    let l = Limits {
        max_literal: 10,
        ..Limits::default()
    };
    let sync = b"a APPEND x {11}\r\n";
    assert_eq!(
        parse_command(sync, &l),
        Parsed::LiteralTooLarge {
            tag: Tag::new("a").unwrap(),
            size: 11,
            synchronizing: true,
            consumed: sync.len()
        }
    );
    let plus = b"a APPEND x {99999999999999+}\r\nabc";
    assert_eq!(
        parse_command(plus, &l),
        Parsed::LiteralTooLarge {
            tag: Tag::new("a").unwrap(),
            size: 99999999999999,
            synchronizing: false,
            consumed: plus.len() - 3
        }
    );
    assert!(matches!(
        parse_command(b"a APPEND x {99999999999999999999999}\r\n", &l),
        Parsed::Error { .. }
    ));
    assert!(matches!(
        parse_command(b"a APPEND x {10}\r\n", &l),
        Parsed::NeedLiteral { size: 10, .. }
    ));
}

#[test]
fn bad_input_gives_errors_with_tag_and_line() {
    let a = Some(Tag::new("a").unwrap());
    for bad in [
        &b"a LOGIN \"unbalanced\r\n"[..],
        b"a SEARCH (ALL\r\n",
        b"a FETCH 0 FLAGS\r\n",
        b"a FETCH 1: FLAGS\r\n",
        b"a FETCH a FLAGS\r\n",
        b"a FETCH -1 FLAGS\r\n",
        b"a FETCH 4294967296 FLAGS\r\n",
        b"a FETCH 1:99999999999 FLAGS\r\n",
        b"a COPY 1,,2 x\r\n",
        b"a LOGIN\r\n",
        b"a LOGIN fred\r\n",
        b"a SELECT\r\n",
        b"a RENAME x\r\n",
        b"a STATUS x ()\r\n",
        b"a STATUS x (BOGUS)\r\n",
        b"a CREATE caf\xc3\xa9\r\n",
        b"a BOGUS\r\n",
        b"a NOOP \r\n",
        b"a  NOOP\r\n",
        b"a NOOP\n",
        b"a LOGIN \"a\\xb\" c\r\n",
        b"a SELECT x (FOO)\r\n",
        b"a LIST (BOGUS) \"\" *\r\n",
        b"a LIST \"\" * RETURN (BOGUS)\r\n",
        b"a STORE 1 +FLAGS (\\)\r\n",
    ] {
        let (tag, consumed) = error(bad);
        assert_eq!(tag, a, "{:?}", String::from_utf8_lossy(bad));
        assert_eq!(consumed, bad.len(), "{:?}", String::from_utf8_lossy(bad));
    }
    // Bad tags: no tag to answer with.
    assert_eq!(error(b"+ NOOP\r\n"), (None, 8));
    assert_eq!(error(b"\r\n"), (None, 2));
    assert_eq!(error(b"a\xff NOOP\r\n"), (None, 9));
    assert_eq!(error(b"a{1} NOOP\r\n"), (None, 11));
    // The error covers only the offending line.
    assert_eq!(error(b"a BOGUS\r\nb NOOP\r\n"), (a.clone(), 9));
    // An error waits for its line's end, so the caller skips it whole.
    assert_eq!(parse_command(b"a BOGUS x y", &limits()), Parsed::Incomplete);
}

#[test]
fn overlong_lines_are_refused() {
    let l = Limits {
        max_line: 64,
        ..Limits::default()
    };
    let long = format!("a LOGIN {} x\r\n", "u".repeat(100));
    assert!(matches!(
        parse_command(long.as_bytes(), &l),
        Parsed::Error { consumed, .. } if consumed == long.len()
    ));
    let endless = vec![b'a'; 1000];
    assert!(matches!(
        parse_command(&endless, &l),
        Parsed::Error {
            consumed: 1000,
            tag: None,
            ..
        }
    ));
    // Literals do not count towards the line.
    let lit = format!("a LOGIN {{100}}\r\n{} x\r\n", "u".repeat(100));
    assert!(matches!(
        parse_command(lit.as_bytes(), &l),
        Parsed::Complete { .. }
    ));
    let many = format!("a FETCH {} FLAGS\r\n", vec!["1"; 2000].join(","));
    error(many.as_bytes());
}

proptest! {
    #[test]
    fn astring_round_trips(s in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut line = b"t LOGIN ".to_vec();
        encode::astring(&mut line, &s);
        line.extend_from_slice(b" p\r\n");
        match parse_command(&line, &limits()) {
            Parsed::Complete { command: Command { kind: CommandKind::Login { user, .. }, .. }, consumed } => {
                prop_assert_eq!(user, s);
                prop_assert_eq!(consumed, line.len());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn encoded_names_survive_any_split(
        tag in "[A-Za-z0-9.]{1,8}",
        from in proptest::collection::vec(any::<u8>(), 0..40),
        to in "\\PC{0,20}",
    ) {
        let mut line = format!("{tag} RENAME ").into_bytes();
        encode::astring(&mut line, &from);
        line.push(b' ');
        encode::astring(&mut line, encode_utf7(&to).as_bytes());
        line.extend_from_slice(b"\r\n");
        let command = split_everywhere(&line);
        prop_assert_eq!(command.tag.as_str(), tag.as_str());
        match command.kind {
            CommandKind::Rename { from: f, to: t } => {
                prop_assert_eq!(f, MailboxName::from_bytes(&from));
                prop_assert_eq!(decode_utf7(t.as_bytes()).map(|s| s.to_lowercase()), Some(to.to_lowercase()));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn sequence_sets_round_trip(ranges in proptest::collection::vec((0u32..5, 1u32.., 1u32..), 1..20)) {
        let n = |k: u32, v: u32| if k == 0 { SeqNumber::Largest } else { SeqNumber::Value(v) };
        let set = SequenceSet::new(ranges.iter().map(|&(k, a, b)| (n(k, a), n(k % 2, b))).collect()).unwrap();
        prop_assert_eq!(SequenceSet::parse(set.to_string().as_bytes(), 100), Some(set));
    }

    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_sane(&input);
    }

    #[test]
    fn mangled_examples_never_panic(
        which in 0usize..47,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let examples = rfc_examples();
        let mut input = examples[which % examples.len()].clone();
        let i = at.index(input.len());
        input[i] = byte;
        let cut = cut.index(input.len() + 1);
        check_sane(&input[..cut]);
        check_sane(&input);
    }
}

fn check_sane(input: &[u8]) {
    let small = Limits {
        max_line: 100,
        max_literal: 50,
        max_depth: 5,
        max_items: 10,
    };
    for l in [&limits(), &small] {
        match parse_command(input, l) {
            Parsed::Complete { consumed, .. } | Parsed::Error { consumed, .. } => {
                assert!(consumed > 0 && consumed <= input.len())
            }
            Parsed::LiteralTooLarge { consumed, .. } => assert!(consumed <= input.len()),
            Parsed::NeedLiteral { literal_start, .. } => assert_eq!(literal_start, input.len()),
            Parsed::Incomplete => {}
        }
    }
    // A complete command parses the same from exactly its bytes, and no
    // shorter prefix of it is complete or an error.
    if let Parsed::Complete { consumed, .. } = parse_command(input, &small) {
        let whole = &input[..consumed];
        assert_eq!(parse_command(whole, &small), parse_command(input, &small));
        for i in 0..consumed {
            assert!(matches!(
                parse_command(&whole[..i], &small),
                Parsed::Incomplete | Parsed::NeedLiteral { .. }
            ));
        }
    }
    let _ = parse_idle_done(input);
}

/// OBJECTID (RFC 8474) and SAVEDATE (RFC 8514) items and keys.
#[test]
fn object_ids_and_save_dates() {
    match kind("a FETCH 1:* (EMAILID THREADID SAVEDATE)\r\n") {
        CommandKind::Fetch { attributes, .. } => assert_eq!(
            attributes,
            vec![
                FetchAttribute::EmailId,
                FetchAttribute::ThreadId,
                FetchAttribute::SaveDate
            ]
        ),
        other => panic!("{other:?}"),
    }
    let day = Date {
        year: 2026,
        month: 12,
        day: 3,
    };
    match kind("a SEARCH EMAILID M1a_b-2 THREADID T9 SAVEDON 3-Dec-2026 SAVEDBEFORE 3-Dec-2026 SAVEDSINCE 3-Dec-2026 SAVEDATESUPPORTED\r\n") {
        CommandKind::Search { criteria, .. } => assert_eq!(
            criteria,
            vec![
                SearchKey::EmailId("M1a_b-2".into()),
                SearchKey::ThreadId("T9".into()),
                SearchKey::SavedOn(day),
                SearchKey::SavedBefore(day),
                SearchKey::SavedSince(day),
                SearchKey::SaveDateSupported,
            ]
        ),
        other => panic!("{other:?}"),
    }
    error(b"a SEARCH EMAILID \"M1\"\r\n");
    assert!(matches!(
        kind("a STATUS x (MAILBOXID)\r\n"),
        CommandKind::Status { items, .. } if items == vec![StatusItem::MailboxId]
    ));
}

/// RFC 9208's commands (its examples, split at every byte), STATUS
/// DELETED and DELETED-STORAGE, and bad forms.
#[test]
fn quota_commands() {
    let c = split_everywhere(b"A003 GETQUOTA \"\"\r\n");
    assert_eq!(c.kind, CommandKind::GetQuota(Vec::new()));
    let c = split_everywhere(b"A003 GETQUOTAROOT INBOX\r\n");
    assert_eq!(c.kind, CommandKind::GetQuotaRoot(MailboxName::Inbox));
    let c = split_everywhere(b"A003 GETQUOTAROOT comp.mail.mime\r\n");
    assert_eq!(c.kind, CommandKind::GetQuotaRoot(mbox("comp.mail.mime")));
    let c = split_everywhere(b"A001 SETQUOTA \"\" (STORAGE 512)\r\n");
    assert_eq!(
        c.kind,
        CommandKind::SetQuota {
            root: Vec::new(),
            limits: vec![("STORAGE".into(), 512)],
        }
    );
    let c = split_everywhere(b"A1 setquota \"User quota\" (storage 512 MESSAGE 10)\r\n");
    assert_eq!(
        c.kind,
        CommandKind::SetQuota {
            root: b"User quota".to_vec(),
            limits: vec![("STORAGE".into(), 512), ("MESSAGE".into(), 10)],
        }
    );
    assert_eq!(
        kind("A1 SETQUOTA \"\" ()\r\n"),
        CommandKind::SetQuota {
            root: Vec::new(),
            limits: Vec::new(),
        }
    );
    let c = split_everywhere(b"A042 STATUS blurdybloop (DELETED DELETED-STORAGE MESSAGES)\r\n");
    assert_eq!(
        c.kind,
        CommandKind::Status {
            mailbox: mbox("blurdybloop"),
            items: vec![
                StatusItem::Deleted,
                StatusItem::DeletedStorage,
                StatusItem::Messages
            ],
        }
    );
    for bad in [
        &b"a GETQUOTA\r\n"[..],
        b"a GETQUOTAROOT\r\n",
        b"a SETQUOTA \"\"\r\n",
        b"a SETQUOTA \"\" STORAGE 512\r\n",
        b"a SETQUOTA \"\" (STORAGE)\r\n",
        b"a SETQUOTA \"\" (STORAGE x)\r\n",
        b"a SETQUOTA \"\" (STORAGE -1)\r\n",
        b"a SETQUOTA \"\" (STORAGE 99999999999999999999999)\r\n",
        b"a SETQUOTA \"\" (STORAGE 1\r\n",
    ] {
        let (tag, _) = error(bad);
        assert_eq!(tag.map(|t| t.to_string()), Some("a".to_string()));
    }
}

#[test]
fn urlfetch_plain_and_extended() {
    let url = |u: &str| u.as_bytes().to_vec();
    let plain = |u: &str| UrlFetchItem {
        url: url(u),
        extended: None,
    };
    let ext = |u: &str, body_part_structure, binary, body| UrlFetchItem {
        url: url(u),
        extended: Some(UrlFetchWants {
            body_part_structure,
            binary,
            body,
        }),
    };
    let c = split_everywhere(
        b"a URLFETCH \"imap://u@h/INBOX/;UID=1\" (\"imap://u@h/INBOX/;UID=2\" binary BODYPARTSTRUCTURE) ({3}\r\nu/v BODY) (x) (y BINARY BINARY)\r\n",
    );
    assert_eq!(
        c.kind,
        CommandKind::UrlFetch(vec![
            plain("imap://u@h/INBOX/;UID=1"),
            ext("imap://u@h/INBOX/;UID=2", true, true, false),
            ext("u/v", false, false, true),
            // No parameter: BODY, as Dovecot takes it.
            ext("x", false, false, true),
            ext("y", false, true, false),
        ])
    );
    for bad in [
        &b"a URLFETCH (x BODY BINARY)\r\n"[..],
        b"a URLFETCH (x BINARY BODY)\r\n",
        b"a URLFETCH (x NOPE)\r\n",
        b"a URLFETCH (x (BINARY))\r\n",
        b"a URLFETCH (x BINARY\r\n",
        b"a URLFETCH ()\r\n",
        b"a URLFETCH (x)(y)\r\n",
    ] {
        error(bad);
    }
}
