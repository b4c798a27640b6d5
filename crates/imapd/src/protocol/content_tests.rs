//! Parser tests for PREVIEW (RFC 8970) and SNIPPET (Dovecot).

use super::*;

fn parse_ok(input: &str) -> CommandKind {
    match parse_command(input.as_bytes(), &Limits::default()) {
        Parsed::Complete { command, consumed } => {
            assert_eq!(consumed, input.len(), "{input:?}");
            // Split anywhere, it asks for more.
            for i in 0..consumed {
                assert!(
                    matches!(
                        parse_command(&input.as_bytes()[..i], &Limits::default()),
                        Parsed::Incomplete | Parsed::NeedLiteral { .. }
                    ),
                    "{input:?} at {i}"
                );
            }
            command.kind
        }
        other => panic!("{input:?}: {other:?}"),
    }
}

fn is_bad(input: &str) -> bool {
    matches!(
        parse_command(input.as_bytes(), &Limits::default()),
        Parsed::Error { .. }
    )
}

fn fetch_items(input: &str) -> (Vec<FetchAttribute>, Option<u64>) {
    match parse_ok(input) {
        CommandKind::Fetch {
            attributes,
            changed_since,
            ..
        } => (attributes, changed_since),
        other => panic!("{other:?}"),
    }
}

#[test]
fn preview_and_snippet_items() {
    use FetchAttribute as F;
    let lazy = F::Preview { lazy: true };
    let eager = F::Preview { lazy: false };
    assert_eq!(
        fetch_items("a FETCH 1 PREVIEW\r\n").0,
        [F::Preview { lazy: false }]
    );
    assert_eq!(
        fetch_items("a FETCH 1 preview (lazy)\r\n").0,
        [F::Preview { lazy: true }]
    );
    assert_eq!(
        fetch_items("a FETCH 1:* (UID PREVIEW (LAZY) FLAGS)\r\n").0,
        [F::Uid, lazy, F::Flags]
    );
    assert_eq!(
        fetch_items("a FETCH 1 (PREVIEW)\r\n").0,
        [F::Preview { lazy: false }]
    );
    // A lone PREVIEW followed by FETCH modifiers.
    assert_eq!(
        fetch_items("a FETCH 1 PREVIEW (CHANGEDSINCE 5)\r\n"),
        (vec![eager], Some(5))
    );
    assert_eq!(
        fetch_items("a FETCH 1 (SNIPPET (FUZZY) UID)\r\n").0,
        [F::Snippet { lazy: false }, F::Uid]
    );
    assert_eq!(
        fetch_items("a FETCH 1 SNIPPET (LAZY=FUZZY)\r\n").0,
        [F::Snippet { lazy: true }]
    );
    assert_eq!(
        fetch_items("a FETCH 1 SNIPPET\r\n").0,
        [F::Snippet { lazy: false }]
    );
    assert!(is_bad("a FETCH 1 (PREVIEW (FUZZY))\r\n"));
    assert!(is_bad("a FETCH 1 (PREVIEW (LAZY)\r\n"));
    assert!(is_bad("a FETCH 1 (SNIPPET (SMART))\r\n"));
    assert!(is_bad("a FETCH 1 (PREVIEW ())\r\n"));
}

#[test]
fn create_with_special_use() {
    let mbox = |s: &str| MailboxName::Other(s.as_bytes().to_vec());
    assert_eq!(
        parse_ok("a CREATE MyDrafts (USE (\\Drafts))\r\n"),
        CommandKind::CreateSpecialUse {
            mailbox: mbox("MyDrafts"),
            uses: vec!["\\Drafts".into()],
        }
    );
    assert_eq!(
        parse_ok("a CREATE \"a b\" (use (\\Sent \\Archive))\r\n"),
        CommandKind::CreateSpecialUse {
            mailbox: mbox("a b"),
            uses: vec!["\\Sent".into(), "\\Archive".into()],
        }
    );
    assert_eq!(
        parse_ok("a CREATE x (USE ())\r\n"),
        CommandKind::CreateSpecialUse {
            mailbox: mbox("x"),
            uses: vec![],
        }
    );
    assert_eq!(parse_ok("a CREATE x\r\n"), CommandKind::Create(mbox("x")));
    assert!(is_bad("a CREATE x (USE (Drafts))\r\n"));
    assert!(is_bad("a CREATE x (FOO (\\Drafts))\r\n"));
    assert!(is_bad("a CREATE x (USE (\\Drafts) USE (\\Sent))\r\n"));
    assert!(is_bad("a CREATE x ()\r\n"));
    assert!(is_bad("a CREATE x (USE \\Drafts)\r\n"));
}

#[test]
fn metadata_commands() {
    let mbox = |s: &str| MailboxName::from_bytes(s.as_bytes());
    assert_eq!(
        parse_ok("a GETMETADATA \"\" /shared/comment\r\n"),
        CommandKind::GetMetadata {
            mailbox: mbox(""),
            options: MetadataOptions::default(),
            entries: vec![b"/shared/comment".to_vec()],
        }
    );
    let both = MetadataOptions {
        max_size: Some(1024),
        depth: MetadataDepth::Infinity,
    };
    let expected = CommandKind::GetMetadata {
        mailbox: mbox("INBOX"),
        options: both,
        entries: vec![b"/private/a".to_vec(), b"/shared/b".to_vec()],
    };
    assert_eq!(
        parse_ok("a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/private/a /shared/b)\r\n"),
        expected
    );
    // Options after the mailbox, as the RFC's examples have them.
    assert_eq!(
        parse_ok(
            "a GETMETADATA inbox (DEPTH INFINITY MAXSIZE 1024) (/private/a \"/shared/b\")\r\n"
        ),
        expected
    );
    assert_eq!(
        parse_ok("a SETMETADATA INBOX (/shared/a \"x\" /private/b NIL /shared/c {2+}\r\nhi /shared/d ~{1+}\r\n\0)\r\n"),
        CommandKind::SetMetadata {
            mailbox: mbox("INBOX"),
            entries: vec![
                (b"/shared/a".to_vec(), Some(b"x".to_vec())),
                (b"/private/b".to_vec(), None),
                (b"/shared/c".to_vec(), Some(b"hi".to_vec())),
                (b"/shared/d".to_vec(), Some(b"\0".to_vec())),
            ],
        }
    );
    for bad in [
        "a GETMETADATA INBOX\r\n",
        "a GETMETADATA (DEPTH 2) INBOX /shared/a\r\n",
        "a GETMETADATA (DEPTH 1 DEPTH 0) INBOX /shared/a\r\n",
        "a GETMETADATA (MAXSIZE x) INBOX /shared/a\r\n",
        "a GETMETADATA () INBOX /shared/a\r\n",
        "a GETMETADATA INBOX ()\r\n",
        "a SETMETADATA INBOX ()\r\n",
        "a SETMETADATA INBOX (/shared/a)\r\n",
        "a SETMETADATA INBOX /shared/a \"x\"\r\n",
    ] {
        assert!(is_bad(bad), "{bad:?}");
    }
}
