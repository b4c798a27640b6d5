//! IMAP, black-box, several sessions on one account: what one session
//! sees when another deletes and re-creates its mailbox or expunges its
//! messages, what sessions on one mailbox are told of each other's flag
//! changes, expunges and appends (in IDLE and on NOOP, from the change
//! feed, and from the whole index once pruning took part of the feed),
//! and INBOX's case-insensitive hierarchy. Each test sends the
//! bytes that Dovecot 2.3 was compared with.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    (server, imap)
}

/// A logged-in session.
async fn session(imap: &ImapServer) -> Pop3Client {
    imap.login(ALICE).await
}

/// `tag OK ...` as the last line.
fn ok(r: &[String], tag: &str) {
    assert!(
        r.last()
            .is_some_and(|l| l.starts_with(&format!("{tag} OK"))),
        "{r:?}"
    );
}

/// APPENDs a small message with a LITERAL+ literal.
async fn append(c: &mut Pop3Client, mailbox: &str, subject: &str) {
    let message = format!("Subject: {subject}\r\n\r\nbody {subject}\r\n");
    let r = c
        .imap(
            "ap",
            &format!("APPEND {mailbox} {{{}+}}\r\n{message}", message.len()),
        )
        .await;
    ok(&r, "ap");
}

/// The lines up to the connection's end; if it stays open 5 s after the
/// last line, a last line that says so.
async fn until_closed(c: &mut Pop3Client) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), c.try_line()).await {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => return lines,
            Err(_) => {
                lines.push("(still open)".into());
                return lines;
            }
        }
    }
}

/// Session A has `r` (three messages) selected; session B deletes it,
/// creates it again and appends one message, all from RFC 3501 2.3.1.1's
/// point of view a new mailbox. A may not see B's message as its UID 1.
async fn recreated_under_a(imap: &ImapServer) -> (Pop3Client, Pop3Client) {
    let mut a = session(imap).await;
    ok(&a.imap("c", "CREATE r").await, "c");
    for s in ["one", "two", "three"] {
        append(&mut a, "r", s).await;
    }
    let r = a.imap("s", "SELECT r").await;
    assert!(r.contains(&"* 3 EXISTS".to_owned()), "{r:?}");
    ok(&r, "s");
    let mut b = session(imap).await;
    ok(&b.imap("d", "DELETE r").await, "d");
    ok(&b.imap("c", "CREATE r").await, "c");
    append(&mut b, "r", "four").await;
    (a, b)
}

/// B's new message is still there, unflagged.
async fn new_message_untouched(b: &mut Pop3Client) {
    let r = b.imap("s", "SELECT r").await;
    assert!(r.contains(&"* 1 EXISTS".to_owned()), "{r:?}");
    let r = b
        .imap(
            "f",
            "UID FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
        )
        .await;
    assert!(
        r[0].starts_with("* 1 FETCH (UID 1 FLAGS (\\Recent)"),
        "{r:?}"
    );
    assert_eq!(r[1], "Subject: four");
    ok(&r, "f");
}

#[tokio::test]
async fn a_deleted_and_recreated_mailbox_closes_the_session_that_had_it() {
    let (_server, imap) = start().await;
    let (mut a, mut b) = recreated_under_a(&imap).await;
    // Before: "* 3 EXPUNGE * 2 EXPUNGE" and the new message as UID 1.
    a.send(b"n NOOP\r\n").await;
    let lines = until_closed(&mut a).await;
    assert_eq!(
        lines,
        ["* BYE Selected mailbox was deleted, have to disconnect"]
    );
    new_message_untouched(&mut b).await;
}

#[tokio::test]
async fn no_command_on_the_old_uids_reaches_the_new_mailbox() {
    let (_server, imap) = start().await;
    // Each command is the first A sends after the re-creation: none may
    // read, flag, copy or expunge B's message.
    for command in [
        "UID FETCH 1 (BODY.PEEK[])",
        "UID STORE 1 +FLAGS (\\Deleted)",
        "STORE 1 +FLAGS (\\Deleted)",
        "UID COPY 1 INBOX",
        "UID MOVE 1 INBOX",
        "EXPUNGE",
        "UID SEARCH ALL",
        "FETCH 1:3 (FLAGS)",
    ] {
        let (mut a, mut b) = recreated_under_a(&imap).await;
        a.send(format!("x {command}\r\n").as_bytes()).await;
        let lines = until_closed(&mut a).await;
        assert_eq!(
            lines.last().map(String::as_str),
            Some("* BYE Selected mailbox was deleted, have to disconnect"),
            "{command}: {lines:?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("four") || l.starts_with("x ")),
            "{command}: {lines:?}"
        );
        new_message_untouched(&mut b).await;
        let r = b.imap("i", "STATUS INBOX (MESSAGES)").await;
        assert_eq!(r[0], "* STATUS INBOX (MESSAGES 0)", "{command}");
        ok(&b.imap("d", "DELETE r").await, "d");
    }
}

#[tokio::test]
async fn a_session_in_idle_learns_its_mailbox_is_gone() {
    let (_server, imap) = start().await;
    let mut a = session(&imap).await;
    ok(&a.imap("c", "CREATE r").await, "c");
    append(&mut a, "r", "one").await;
    ok(&a.imap("s", "SELECT r").await, "s");
    a.send(b"i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling");
    let mut b = session(&imap).await;
    ok(&b.imap("d", "DELETE r").await, "d");
    let lines = until_closed(&mut a).await;
    assert_eq!(
        lines,
        ["* BYE Selected mailbox was deleted, have to disconnect"]
    );
}

#[tokio::test]
async fn a_renamed_mailbox_stays_selected() {
    let (_server, imap) = start().await;
    let mut a = session(&imap).await;
    ok(&a.imap("c", "CREATE r").await, "c");
    append(&mut a, "r", "one").await;
    ok(&a.imap("s", "SELECT r").await, "s");
    let mut b = session(&imap).await;
    ok(&b.imap("m", "RENAME r r2").await, "m");
    assert_eq!(a.imap("n", "NOOP").await, ["n OK Done"]);
    let r = a
        .imap("f", "UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    assert_eq!(r[1], "Subject: one", "{r:?}");
    ok(&r, "f");
    ok(&a.imap("t", "UID STORE 1 +FLAGS (\\Flagged)").await, "t");
    let r = b.imap("st", "STATUS r2 (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS r2 (MESSAGES 1)");
}

#[tokio::test]
async fn uid_fetch_leaves_out_what_another_session_expunged() {
    let (_server, imap) = start().await;
    let mut a = session(&imap).await;
    ok(&a.imap("c", "CREATE e").await, "c");
    for s in ["1", "2", "3"] {
        append(&mut a, "e", s).await;
    }
    ok(&a.imap("s", "SELECT e").await, "s");
    let mut b = session(&imap).await;
    ok(&b.imap("s", "SELECT e").await, "s");
    ok(&b.imap("t", "UID STORE 2 +FLAGS (\\Deleted)").await, "t");
    ok(&b.imap("x", "EXPUNGE").await, "x");

    // RFC 3501 6.4.8: the missing UID is left out; no NO.
    let r = a.imap("f", "UID FETCH 1:3 (FLAGS)").await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (UID 1 FLAGS (\\Recent))",
            "* 3 FETCH (UID 3 FLAGS (\\Recent))",
            "* 2 EXPUNGE",
            "f OK [EXPUNGEISSUED] Some messages were already expunged",
        ]
    );
    // Once announced, the UID is simply not there.
    assert_eq!(
        a.imap("g", "UID FETCH 2 (FLAGS)").await,
        ["g OK UID FETCH completed"]
    );
}

#[tokio::test]
async fn uid_fetch_of_a_body_another_session_expunged() {
    let (_server, imap) = start().await;
    let mut a = session(&imap).await;
    ok(&a.imap("c", "CREATE e").await, "c");
    for s in ["1", "2"] {
        append(&mut a, "e", s).await;
    }
    ok(&a.imap("s", "SELECT e").await, "s");
    let mut b = session(&imap).await;
    ok(&b.imap("s", "SELECT e").await, "s");
    ok(&b.imap("t", "UID STORE 2 +FLAGS (\\Deleted)").await, "t");
    ok(&b.imap("x", "EXPUNGE").await, "x");
    let r = a.imap("f", "UID FETCH 2 (BODY.PEEK[])").await;
    assert_eq!(
        r,
        [
            "* 2 EXPUNGE",
            "f OK [EXPUNGEISSUED] Some messages were already expunged"
        ]
    );
}

#[tokio::test]
async fn inbox_is_case_insensitive_as_a_hierarchy_level() {
    let (_server, imap) = start().await;
    let mut a = session(&imap).await;
    ok(&a.imap("c", "CREATE Inbox/kid").await, "c");
    assert_eq!(
        a.imap("l1", "LIST \"\" \"Inbox/kid\"").await,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX/kid",
            "l1 OK LIST completed"
        ]
    );
    assert_eq!(
        a.imap("l2", "LIST \"\" \"Inbox/%\"").await,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX/kid",
            "l2 OK LIST completed"
        ]
    );
    assert_eq!(
        a.imap("l3", "LIST \"\" INBOX").await,
        ["* LIST (\\HasChildren) \"/\" INBOX", "l3 OK LIST completed"]
    );
    for (tag, name) in [
        ("c1", "INBOX/kid"),
        ("c2", "Inbox/kid"),
        ("c3", "inbox/kid"),
    ] {
        assert_eq!(
            a.imap(tag, &format!("CREATE {name}")).await,
            [format!("{tag} NO [ALREADYEXISTS] Mailbox already exists")]
        );
    }
    // One mailbox whatever the spelling.
    let mut b = session(&imap).await;
    append(&mut b, "inbox/kid", "x").await;
    let r = a.imap("s", "SELECT iNbOx/kid").await;
    assert!(r.contains(&"* 1 EXISTS".to_owned()), "{r:?}");
    ok(&r, "s");
    let r = a.imap("st", "STATUS INBOX/kid (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS INBOX/kid (MESSAGES 1)");
    ok(&a.imap("sub", "SUBSCRIBE inbox/kid").await, "sub");
    let r = a.imap("ls", "LSUB \"\" \"INBOX/*\"").await;
    assert_eq!(r, ["* LSUB () \"/\" INBOX/kid", "ls OK LSUB completed"]);
    let all = a.imap("la", "LIST \"\" \"*\"").await;
    assert_eq!(
        all.iter()
            .filter(|l| l.to_lowercase().contains("inbox/"))
            .count(),
        1,
        "{all:?}"
    );
    ok(&a.imap("u", "UNSELECT").await, "u");
    // Below INBOX the name is case-sensitive.
    assert_eq!(
        a.imap("d1", "DELETE INBOX/Kid").await,
        ["d1 NO [NONEXISTENT] No such mailbox"]
    );
    ok(&a.imap("d2", "DELETE inbox/kid").await, "d2");
    assert_eq!(
        a.imap("l4", "LIST \"\" INBOX").await,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "l4 OK LIST completed"
        ]
    );
}

#[tokio::test]
async fn names_that_look_like_paths_are_refused() {
    let (_server, imap) = start().await;
    let mut a = session(&imap).await;
    for (tag, name) in [
        ("c1", "../other@localhost/INBOX"),
        ("c2", "a/../b"),
        ("c3", "."),
        ("c4", "~root"),
        ("c5", "x/./y"),
    ] {
        assert_eq!(
            a.imap(tag, &format!("CREATE \"{name}\"")).await,
            [format!("{tag} NO [CANNOT] Invalid mailbox name")],
            "{name}"
        );
    }
    ok(&a.imap("c", "CREATE ok").await, "c");
    assert_eq!(
        a.imap("r", "RENAME ok \"../ok\"").await,
        ["r NO [CANNOT] Cannot rename to that name"]
    );
    let all = a.imap("l", "LIST \"\" \"*\"").await;
    assert!(
        !all.iter().any(|l| l.contains("..") || l.contains('~')),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_long_fetch_while_another_session_expunges() {
    // Issue 13: a FETCH of many large messages reads them in batches of at
    // most 8 MiB, each written out before the next is read. Ten messages
    // of 4 MB: UID 2 is expunged by another session before the FETCH, 9
    // and 10 while it is under way (the client has read only the first
    // line; socket buffers hold far less than the 16 MB of the first two
    // batches, so the batch of 9 and 10 cannot have been read yet). The
    // rest comes whole and in order; the missing ones are left out, then
    // announced, and the OK says why (as for UID 2 alone above).
    let (server, imap) = start().await;
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    let messages: Vec<Vec<u8>> = (1..=10)
        .map(|n| {
            let mut m = format!("Subject: {n}\r\n\r\n").into_bytes();
            let line = format!("message {n} ........................................\r\n");
            while m.len() < 4_000_000 {
                m.extend_from_slice(line.as_bytes());
            }
            m
        })
        .collect();
    for m in &messages {
        server
            .store
            .append(alice.id, "INBOX", m.clone(), &[], 0)
            .await
            .unwrap();
    }
    let mut a = session(&imap).await;
    ok(&a.imap("s", "SELECT INBOX").await, "s");
    let mut b = session(&imap).await;
    ok(&b.imap("s", "SELECT INBOX").await, "s");
    ok(&b.imap("t", "UID STORE 2 +FLAGS (\\Deleted)").await, "t");
    ok(&b.imap("x", "EXPUNGE").await, "x");

    a.send(b"f UID FETCH 1:* BODY.PEEK[]\r\n").await;
    let first = a.line().await;
    ok(&b.imap("t", "UID STORE 9:10 +FLAGS (\\Deleted)").await, "t");
    ok(&b.imap("x", "EXPUNGE").await, "x");
    let mut head = first;
    for n in [1, 3, 4, 5, 6, 7, 8] {
        let m = &messages[n - 1];
        assert_eq!(head, format!("* {n} FETCH (UID {n} BODY[] {{{}}}", m.len()));
        assert!(a.read_bytes(m.len()).await == *m, "message {n} changed");
        assert_eq!(a.line().await, ")");
        head = a.line().await;
    }
    let mut rest = vec![head];
    rest.extend(a.until_tag("f").await);
    assert_eq!(
        rest,
        [
            "* 10 EXPUNGE",
            "* 9 EXPUNGE",
            "* 2 EXPUNGE",
            "f OK [EXPUNGEISSUED] Some messages were already expunged",
        ]
    );
    let r = a.imap("n", "UID FETCH 1:* (UID)").await;
    assert_eq!(r.len(), 8, "{r:?}");
    assert_eq!(r[6], "* 7 FETCH (UID 8)");
}

/// A server whose store keeps the changes of only `keep` modseqs per
/// mailbox.
async fn start_keeping(keep: u64) -> (Server, ImapServer) {
    ImapServer::keeping_changes(keep).await
}

/// A session with INBOX selected.
async fn in_inbox(imap: &ImapServer) -> Pop3Client {
    let mut c = session(imap).await;
    ok(&c.imap("s", "SELECT INBOX").await, "s");
    c
}

/// Reads the next lines of a session in IDLE; each must be the one
/// expected (a `#` in `expected` stands for a number).
async fn expect_lines(c: &mut Pop3Client, expected: &[&str]) {
    for want in expected {
        let line = c.line().await;
        let matches = match want.split_once('#') {
            Some((head, tail)) => line
                .strip_prefix(head)
                .and_then(|g| g.strip_suffix(tail))
                .is_some_and(|n| !n.is_empty() && n.chars().all(|ch| ch.is_ascii_digit())),
            _ => line == *want,
        };
        assert!(matches, "expected {want:?}, got {line:?}");
    }
}

/// Ends IDLE (tagged `i`): what came before its end, and the end.
async fn done(c: &mut Pop3Client) -> Vec<String> {
    c.send(b"DONE\r\n").await;
    c.until_tag("i").await
}

/// Every message's UID and flags, as `c` fetches them, without
/// `\Recent` (which only one session shows).
async fn all_flags(c: &mut Pop3Client) -> Vec<String> {
    let r = c.imap("f", "UID FETCH 1:* (FLAGS)").await;
    ok(&r, "f");
    r[..r.len() - 1]
        .iter()
        .map(|l| l.replace(" \\Recent", "").replace("\\Recent", ""))
        .collect()
}

/// A session that appends three messages to INBOX and then selects it,
/// so that the messages are `\Recent` to it and to nobody else.
async fn with_messages(imap: &ImapServer, subjects: &[&str]) -> Pop3Client {
    let mut a = session(imap).await;
    for s in subjects {
        append(&mut a, "INBOX", s).await;
    }
    ok(&a.imap("s", "SELECT INBOX").await, "s");
    a
}

const FLAGS_WITH_WORK: &str = "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)";
const PERMANENT_WITH_WORK: &str =
    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Limited";

#[tokio::test]
async fn sessions_on_one_mailbox_see_each_others_changes_exactly() {
    let (_server, imap) = start_keeping(10_000).await;
    let mut a = with_messages(&imap, &["one", "two", "three"]).await;
    let mut b = in_inbox(&imap).await;
    let mut c = in_inbox(&imap).await;
    b.send(b"i IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");

    // A new keyword: `* FLAGS` before the FETCH that shows it.
    let r = a.imap("t", "STORE 2 +FLAGS (\\Flagged $Work)").await;
    ok(&r, "t");
    expect_lines(
        &mut b,
        &[
            FLAGS_WITH_WORK,
            PERMANENT_WITH_WORK,
            "* 2 FETCH (UID 2 FLAGS (\\Flagged $Work))",
        ],
    )
    .await;
    ok(&a.imap("t", "STORE 3 +FLAGS.SILENT (\\Deleted)").await, "t");
    expect_lines(&mut b, &["* 3 FETCH (UID 3 FLAGS (\\Deleted))"]).await;
    let r = a.imap("x", "EXPUNGE").await;
    assert_eq!(r[0], "* 3 EXPUNGE", "{r:?}");
    expect_lines(&mut b, &["* 3 EXPUNGE"]).await;
    append(&mut a, "INBOX", "four").await;
    expect_lines(&mut b, &["* 3 EXISTS", "* # RECENT"]).await;
    let r = done(&mut b).await;
    assert_eq!(r, ["i OK IDLE terminated"]);

    // C, told nothing since SELECT, learns it all at once on NOOP:
    // EXPUNGE first, the flags with the numbers after it, then EXISTS.
    let r = c.imap("n", "NOOP").await;
    ok(&r, "n");
    assert_eq!(
        r[..r.len() - 1],
        [
            FLAGS_WITH_WORK,
            PERMANENT_WITH_WORK,
            "* 3 EXPUNGE",
            "* 2 FETCH (UID 2 FLAGS (\\Flagged $Work))",
            "* 3 EXISTS",
            "* 0 RECENT",
        ]
    );
    // A is not told again what it did itself; nobody is told twice.
    for s in [&mut a, &mut b, &mut c] {
        assert_eq!(s.imap("n", "NOOP").await, ["n OK Done"]);
    }
    let flags = all_flags(&mut a).await;
    assert_eq!(flags.len(), 3, "{flags:?}");
    assert_eq!(all_flags(&mut b).await, flags);
    assert_eq!(all_flags(&mut c).await, flags);

    // B's own STORE is not echoed back to it by the update that follows;
    // A and C (in IDLE) hear of it once.
    c.send(b"i IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    let r = b.imap("t", "UID STORE 1 +FLAGS (\\Seen)").await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (FLAGS (\\Seen) UID 1)",
            "t OK UID STORE completed"
        ]
    );
    expect_lines(&mut c, &["* 1 FETCH (UID 1 FLAGS (\\Seen))"]).await;
    assert_eq!(done(&mut c).await, ["i OK IDLE terminated"]);
    assert_eq!(b.imap("n", "NOOP").await, ["n OK Done"]);
    let r = a.imap("n", "NOOP").await;
    assert_eq!(
        r,
        ["* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))", "n OK Done"]
    );
}

#[tokio::test]
async fn a_session_behind_the_pruned_feed_catches_up_from_the_index() {
    let (server, imap) = start_keeping(10).await;
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    let mut a = with_messages(&imap, &["one", "two", "three", "four"]).await;
    // C is brought up to this modseq and then told nothing for a while;
    // B follows every change in IDLE.
    let mut c = in_inbox(&imap).await;
    let index = server.store.mailbox_index(alice.id, "INBOX").await.unwrap();
    let (inbox, seen_by_c) = (index.mailbox_ref(), index.highest_modseq);
    let mut b = in_inbox(&imap).await;
    b.send(b"i IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");

    // An expunge, an append, then 40 flag changes and four more: the
    // expunge is older than the newest 10 modseqs.
    ok(&a.imap("t", "STORE 1 +FLAGS.SILENT (\\Deleted)").await, "t");
    ok(&a.imap("x", "EXPUNGE").await, "x");
    append(&mut a, "INBOX", "five").await;
    for round in 0..10 {
        let op = if round % 2 == 0 { '+' } else { '-' };
        let command = format!("STORE 1:4 {op}FLAGS.SILENT (\\Seen)");
        ok(&a.imap("t", &command).await, "t");
    }
    ok(
        &a.imap("t", "STORE 1:* +FLAGS.SILENT (\\Answered)").await,
        "t",
    );

    // B hears of it all as it happens, the expunge once, the last change
    // last (the new message's \Recent is claimed by B or by A).
    let mut heard = Vec::new();
    while heard
        .last()
        .is_none_or(|l: &String| !l.starts_with("* 4 FETCH (UID 5 FLAGS (\\Answered"))
    {
        heard.push(b.line().await);
    }
    assert_eq!(done(&mut b).await, ["i OK IDLE terminated"]);
    assert!(heard.iter().any(|l| l == "* 4 EXISTS"), "{heard:?}");
    let expunges: Vec<&String> = heard.iter().filter(|l| l.ends_with(" EXPUNGE")).collect();
    assert_eq!(expunges, ["* 1 EXPUNGE"], "{heard:?}");

    // The feed after C's modseq is pruned (the expunge with it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match server.store.changes_since(alice.id, inbox, seen_by_c).await {
            Ok(store::MailboxChanges::Pruned { .. }) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "not pruned: {other:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let r = c.imap("n", "NOOP").await;
    ok(&r, "n");
    assert_eq!(
        r[..r.len() - 1],
        [
            "* 1 EXPUNGE",
            "* 1 FETCH (UID 2 FLAGS (\\Answered))",
            "* 2 FETCH (UID 3 FLAGS (\\Answered))",
            "* 3 FETCH (UID 4 FLAGS (\\Answered))",
            "* 4 EXISTS",
            "* 0 RECENT",
        ]
    );
    // All three end where the store is.
    let flags = all_flags(&mut a).await;
    assert_eq!(flags.len(), 4, "{flags:?}");
    assert_eq!(all_flags(&mut b).await, flags);
    assert_eq!(all_flags(&mut c).await, flags);
}
