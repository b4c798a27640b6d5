//! IMAP4rev2 (RFC 9051) beside IMAP4rev1, and UTF8=ACCEPT (RFC 6855),
//! black-box: imapd in this process beside smtpd, raw line clients for
//! exact responses (one session of each kind on one mailbox) and Python's
//! imaplib, as an IMAP4rev1 client and with `ENABLE UTF8=ACCEPT`.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    (server, imap)
}

async fn connect(imap: &ImapServer) -> Pop3Client {
    let (client, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    client
}

/// The reply, checked to end in a tagged OK.
async fn ok(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    let r = c.imap(tag, command).await;
    assert!(
        r.last().expect("reply").starts_with(&format!("{tag} OK")),
        "{command}: {r:?}"
    );
    r
}

/// The tagged line of the reply, which must start with `expected`.
async fn tagged(c: &mut Pop3Client, tag: &str, command: &str, expected: &str) -> Vec<String> {
    let r = c.imap(tag, command).await;
    let last = r.last().expect("reply");
    assert!(
        last.starts_with(&format!("{tag} {expected}")),
        "{command}: {r:?}"
    );
    r
}

async fn logged_in(imap: &ImapServer) -> Pop3Client {
    let mut c = connect(imap).await;
    ok(&mut c, "L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    c
}

/// A session that has enabled IMAP4rev2.
async fn rev2_session(imap: &ImapServer) -> Pop3Client {
    let mut c = logged_in(imap).await;
    let r = ok(&mut c, "E", "ENABLE IMAP4rev2").await;
    assert_eq!(r[0], "* ENABLED IMAP4rev2", "{r:?}");
    c
}

/// A session that has enabled UTF8=ACCEPT (and not IMAP4rev2).
async fn utf8_session(imap: &ImapServer) -> Pop3Client {
    let mut c = logged_in(imap).await;
    let r = ok(&mut c, "E", "ENABLE UTF8=ACCEPT").await;
    assert_eq!(r[0], "* ENABLED UTF8=ACCEPT", "{r:?}");
    c
}

async fn deliver(server: &Server, subjects: &[&str]) {
    server.send_subjects(ALICE, subjects).await;
}

/// The mailboxes every account starts with, beside INBOX.
const DEFAULT_MAILBOXES: [&str; 5] = ["Drafts", "Sent", "Trash", "Junk", "Archive"];

/// Mailbox names from `LIST "" "*"`, as on the wire, but for the ones
/// every account starts with.
async fn list_names(c: &mut Pop3Client) -> Vec<String> {
    let r = ok(c, "l", "LIST \"\" \"*\"").await;
    r.iter()
        .filter_map(|l| l.strip_prefix("* LIST "))
        .map(|l| l.split_once(") \"/\" ").expect("name").1.to_owned())
        .filter(|n| !DEFAULT_MAILBOXES.contains(&n.as_str()))
        .collect()
}

fn has_recent(r: &[String]) -> bool {
    r.iter()
        .any(|l| l.contains("\\Recent") || (l.starts_with("* ") && l.ends_with(" RECENT")))
}

#[tokio::test]
async fn rev2_is_advertised_in_every_state_and_enabled_on_request() {
    let (_server, imap) = start().await;
    let mut c = connect(&imap).await;
    let r = ok(&mut c, "c", "CAPABILITY").await;
    assert!(
        r[0].starts_with("* CAPABILITY IMAP4rev1 IMAP4rev2 "),
        "{r:?}"
    );
    assert!(!r[0].contains("UTF8=ACCEPT"), "{r:?}");
    // ENABLE is for the authenticated state (RFC 5161 3.1).
    tagged(&mut c, "e0", "ENABLE IMAP4rev2", "BAD").await;
    let r = ok(&mut c, "L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert!(r[0].contains(" IMAP4rev2 "), "{r:?}");
    assert!(r[0].contains(" UTF8=ACCEPT "), "{r:?}");

    // Unknown names are left out of ENABLED (RFC 5161 3.1), in any case.
    let r = ok(&mut c, "e1", "ENABLE X-NOTHING imap4REV2 FOO=BAR").await;
    assert_eq!(r[0], "* ENABLED IMAP4rev2");
    let r = ok(&mut c, "e2", "ENABLE X-NOTHING").await;
    assert_eq!(r, ["* ENABLED", "e2 OK ENABLE completed"]);
    // What is on already is not said again.
    let r = ok(&mut c, "e3", "ENABLE IMAP4rev2 UTF8=ACCEPT CONDSTORE").await;
    assert_eq!(r[0], "* ENABLED UTF8=ACCEPT CONDSTORE");
    tagged(&mut c, "e4", "ENABLE", "BAD").await;
    tagged(&mut c, "e5", "ENABLE (IMAP4rev2)", "BAD").await;
    ok(&mut c, "s", "SELECT INBOX").await;
    tagged(&mut c, "e6", "ENABLE QRESYNC", "BAD").await;
    let r = ok(&mut c, "c2", "CAPABILITY").await;
    assert!(r[0].contains(" IMAP4rev2 "), "{r:?}");
}

#[tokio::test]
async fn rev2_select_has_no_recent_and_lists_the_mailbox() {
    let (server, imap) = start().await;
    deliver(&server, &["one", "two"]).await;
    server.wait_for_inbox(ALICE, 2).await;

    let mut rev2 = rev2_session(&imap).await;
    let r = ok(&mut rev2, "s", "SELECT INBOX").await;
    assert!(r.contains(&"* 2 EXISTS".to_string()), "{r:?}");
    assert!(!has_recent(&r), "{r:?}");
    assert!(!r.iter().any(|l| l.contains("[UNSEEN ")), "{r:?}");
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \"/\" INBOX".to_string()),
        "{r:?}"
    );
    assert!(
        r.iter().any(|l| l.starts_with("* OK [UIDVALIDITY ")),
        "{r:?}"
    );
    assert!(r.iter().any(|l| l.starts_with("* OK [UIDNEXT 3]")), "{r:?}");
    assert!(
        r.iter().any(|l| l.starts_with("* OK [PERMANENTFLAGS (")),
        "{r:?}"
    );
    let r = ok(&mut rev2, "f", "FETCH 1:* FLAGS").await;
    assert_eq!(&r[..2], ["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS ())"]);
    // STATUS RECENT is still answered; the rev2 session took nothing.
    let r = ok(&mut rev2, "st", "STATUS INBOX (RECENT)").await;
    assert_eq!(r[0], "* STATUS INBOX (RECENT 2)");

    // An IMAP4rev1 session still gets what is new as \Recent.
    let mut rev1 = logged_in(&imap).await;
    let r = ok(&mut rev1, "s", "SELECT INBOX").await;
    assert!(r.contains(&"* 2 RECENT".to_string()), "{r:?}");
    assert!(r.iter().any(|l| l.starts_with("* OK [UNSEEN 1]")), "{r:?}");
    assert!(!r.iter().any(|l| l.starts_with("* LIST ")), "{r:?}");
    let r = ok(&mut rev1, "f", "FETCH 1 FLAGS").await;
    assert_eq!(r[0], "* 1 FETCH (FLAGS (\\Recent))");

    // New mail: EXISTS alone for rev2, EXISTS and RECENT for rev1.
    deliver(&server, &["three"]).await;
    server.wait_for_inbox(ALICE, 3).await;
    let r = ok(&mut rev2, "n", "NOOP").await;
    assert_eq!(r, ["* 3 EXISTS", "n OK Done"]);
    let r = ok(&mut rev1, "n", "NOOP").await;
    assert_eq!(r[0], "* 3 EXISTS");
    assert!(r[1].ends_with(" RECENT") && r[1] != "* 0 RECENT", "{r:?}");
    let r = ok(&mut rev2, "f2", "FETCH 3 FLAGS").await;
    assert_eq!(r[0], "* 3 FETCH (FLAGS ())");

    // RECENT and NEW match nothing in rev2, OLD everything.
    let r = ok(&mut rev2, "r", "SEARCH RECENT").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"r\")");
    let r = ok(&mut rev2, "o", "SEARCH OLD").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"o\") ALL 1:3");

    // SELECT of another mailbox closes this one first, and says so.
    let r = ok(&mut rev2, "x", "EXAMINE Archive").await;
    assert_eq!(r[0], "* OK [CLOSED] Previous mailbox closed");
    assert!(
        r.contains(&"* LIST (\\HasNoChildren \\Archive) \"/\" Archive".to_string()),
        "{r:?}"
    );
    // Also when the SELECT fails.
    let r = tagged(&mut rev2, "y", "SELECT Nowhere", "NO [NONEXISTENT]").await;
    assert_eq!(r[0], "* OK [CLOSED] Previous mailbox closed");
    // An IMAP4rev1 session without QRESYNC is not told.
    let r = ok(&mut rev1, "x", "EXAMINE Archive").await;
    assert!(!r.iter().any(|l| l.contains("[CLOSED]")), "{r:?}");
}

#[tokio::test]
async fn rev2_search_answers_with_esearch() {
    let (server, imap) = start().await;
    deliver(&server, &["alpha", "beta", "gamma"]).await;
    let messages = server.wait_for_inbox(ALICE, 3).await;
    let uids: Vec<u32> = messages.iter().map(|m| m.uid.0).collect();

    let mut rev2 = rev2_session(&imap).await;
    ok(&mut rev2, "s", "SELECT INBOX").await;
    let r = ok(&mut rev2, "a", "SEARCH ALL").await;
    assert_eq!(
        r,
        ["* ESEARCH (TAG \"a\") ALL 1:3", "a OK SEARCH completed"]
    );
    let r = ok(&mut rev2, "u", "UID SEARCH SUBJECT beta").await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"u\") UID ALL {}", uids[1]));
    // Nothing found: no ALL (a sequence set is never empty).
    let r = ok(&mut rev2, "n", "SEARCH SUBJECT nothing").await;
    assert_eq!(r, ["* ESEARCH (TAG \"n\")", "n OK SEARCH completed"]);
    let r = ok(&mut rev2, "n2", "UID SEARCH SUBJECT nothing").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"n2\") UID");
    // RETURN () is RETURN (ALL); the other options as ESEARCH has them.
    let r = ok(&mut rev2, "e", "SEARCH RETURN () NOT SUBJECT beta").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"e\") ALL 1,3");
    let r = ok(&mut rev2, "c", "SEARCH RETURN (COUNT MIN) ALL").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"c\") MIN 1 COUNT 3");
    // CHARSET is still allowed without UTF8=ACCEPT.
    let r = ok(&mut rev2, "cs", "SEARCH CHARSET UTF-8 SUBJECT gamma").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"cs\") ALL 3");
    tagged(
        &mut rev2,
        "cs2",
        "SEARCH CHARSET KOI8-R ALL",
        "NO [BADCHARSET",
    )
    .await;
    // SAVE and `$` as before; SAVE alone says nothing.
    let r = ok(&mut rev2, "v", "SEARCH RETURN (SAVE) SUBJECT alpha").await;
    assert_eq!(r, ["v OK SEARCH completed"]);
    let r = ok(&mut rev2, "d", "FETCH $ (UID)").await;
    assert_eq!(r[0], format!("* 1 FETCH (UID {})", uids[0]));
    // SORT keeps its own response.
    let r = ok(&mut rev2, "so", "SORT (SUBJECT) UTF-8 ALL").await;
    assert_eq!(r[0], "* SORT 1 2 3");

    // An IMAP4rev1 session on the same mailbox gets `* SEARCH`.
    let mut rev1 = logged_in(&imap).await;
    ok(&mut rev1, "s", "SELECT INBOX").await;
    let r = ok(&mut rev1, "a", "SEARCH ALL").await;
    assert_eq!(r, ["* SEARCH 1 2 3", "a OK SEARCH completed"]);
}

#[tokio::test]
async fn two_sessions_rev1_and_rev2_see_the_same_mailbox_in_their_forms() {
    let (server, imap) = start().await;
    deliver(&server, &["one", "two", "three"]).await;
    let messages = server.wait_for_inbox(ALICE, 3).await;
    let uid2 = messages[1].uid.0;

    let mut rev1 = logged_in(&imap).await;
    let mut rev2 = rev2_session(&imap).await;
    let r = ok(&mut rev1, "s", "SELECT INBOX").await;
    assert!(r.contains(&"* 3 RECENT".to_string()), "{r:?}");
    let r = ok(&mut rev2, "s", "SELECT INBOX").await;
    assert!(r.contains(&"* 3 EXISTS".to_string()), "{r:?}");
    assert!(!has_recent(&r), "{r:?}");

    // A flag set by the rev1 session: each sees it in its own form.
    let r = ok(&mut rev1, "f", "STORE 2 +FLAGS (\\Deleted)").await;
    assert_eq!(r[0], "* 2 FETCH (FLAGS (\\Deleted \\Recent))");
    let r = ok(&mut rev2, "n", "NOOP").await;
    assert_eq!(r[0], format!("* 2 FETCH (UID {uid2} FLAGS (\\Deleted))"));
    let r = ok(&mut rev2, "d", "SEARCH DELETED").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"d\") ALL 2");
    let r = ok(&mut rev1, "d", "SEARCH DELETED").await;
    assert_eq!(r[0], "* SEARCH 2");
    let r = ok(&mut rev2, "st", "STATUS INBOX (MESSAGES DELETED)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 3 DELETED 1)");

    // A flag set by the rev2 session, seen by the rev1 one.
    ok(&mut rev2, "f", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    let r = ok(&mut rev1, "n", "NOOP").await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH (") && l.contains("\\Flagged \\Recent")),
        "{r:?}"
    );

    // The rev2 session expunges; both get the EXPUNGE.
    let r = ok(&mut rev2, "x", "EXPUNGE").await;
    assert_eq!(r[0], "* 2 EXPUNGE");
    let r = ok(&mut rev1, "n2", "NOOP").await;
    assert_eq!(r[0], "* 2 EXPUNGE");
    let r = ok(&mut rev1, "a", "FETCH 1:* (FLAGS)").await;
    assert_eq!(r.len(), 3, "{r:?}");
    let r = ok(&mut rev2, "a", "FETCH 1:* (FLAGS)").await;
    assert_eq!(
        &r[..2],
        ["* 1 FETCH (FLAGS (\\Flagged))", "* 2 FETCH (FLAGS ())"]
    );
    let r = ok(&mut rev2, "st2", "STATUS INBOX (MESSAGES DELETED)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 2 DELETED 0)");

    // New mail during IDLE: EXISTS alone for rev2; the rev1 session, which
    // did not idle, takes it as \Recent at its next command.
    rev2.send(b"i IDLE\r\n").await;
    assert_eq!(rev2.line().await, "+ idling");
    deliver(&server, &["four"]).await;
    assert_eq!(rev2.line().await, "* 3 EXISTS");
    let uid4 = server.wait_for_inbox(ALICE, 3).await[2].uid.0;
    let r = ok(&mut rev1, "n3", "NOOP").await;
    assert_eq!(r[..2], ["* 3 EXISTS", "* 3 RECENT"]);
    ok(&mut rev1, "f2", "STORE 3 +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(
        rev2.line().await,
        format!("* 3 FETCH (UID {uid4} FLAGS (\\Seen))")
    );
    rev2.send(b"DONE\r\n").await;
    assert_eq!(rev2.line().await, "i OK IDLE terminated");
    let r = ok(&mut rev1, "n4", "FETCH 3 FLAGS").await;
    assert_eq!(r[0], "* 3 FETCH (FLAGS (\\Seen \\Recent))", "{r:?}");
}

#[tokio::test]
async fn rev2_list_shapes_and_status_items() {
    let (server, imap) = start().await;
    deliver(&server, &["one", "two"]).await;
    server.wait_for_inbox(ALICE, 2).await;
    let mut c = rev2_session(&imap).await;
    ok(&mut c, "c1", "CREATE \"Entwürfe\"").await;
    ok(&mut c, "c2", "CREATE \"日本語/子\"").await;
    ok(&mut c, "c3", "CREATE \"A&B\"").await;
    let names = list_names(&mut c).await;
    assert_eq!(
        names,
        [
            "INBOX",
            "A&B",
            "\"Entwürfe\"",
            "\"日本語\"",
            "\"日本語/子\""
        ]
    );
    let r = ok(&mut c, "l", "LIST \"\" \"日本語/%\"").await;
    assert_eq!(r[0], "* LIST (\\HasNoChildren) \"/\" \"日本語/子\"");
    let r = ok(&mut c, "l2", "LIST \"\" %").await;
    assert!(
        r.contains(&"* LIST (\\HasChildren) \"/\" \"日本語\"".to_string()),
        "{r:?}"
    );

    // \NonExistent: a subscription without its mailbox, and with
    // RECURSIVEMATCH a level without a mailbox above one.
    ok(&mut c, "s1", "SUBSCRIBE \"Gone/Deep\"").await;
    ok(&mut c, "s2", "SUBSCRIBE \"Entwürfe\"").await;
    let r = ok(&mut c, "l3", "LIST (SUBSCRIBED) \"\" (\"Entw*\" G*)").await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Entwürfe\"",
            "* LIST (\\Subscribed \\NonExistent) \"/\" Gone/Deep",
            "l3 OK LIST completed",
        ]
    );
    let r = ok(
        &mut c,
        "l4",
        "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (E% G%)",
    )
    .await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Entwürfe\"",
            "* LIST (\\NonExistent) \"/\" Gone (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "l4 OK LIST completed",
        ]
    );
    // LSUB is still there, in UTF-8 too.
    let r = ok(&mut c, "ls", "LSUB \"\" \"E*\"").await;
    assert_eq!(r[0], "* LSUB () \"/\" \"Entwürfe\"");

    // STATUS DELETED and SIZE, also through LIST-STATUS.
    ok(&mut c, "s", "SELECT INBOX").await;
    ok(&mut c, "f", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut c, "st", "STATUS INBOX (MESSAGES DELETED SIZE)").await;
    let size = server
        .wait_for_inbox(ALICE, 2)
        .await
        .iter()
        .map(|m| m.size)
        .sum::<u64>();
    assert_eq!(
        r[0],
        format!("* STATUS INBOX (MESSAGES 2 DELETED 1 SIZE {size})")
    );
    let r = ok(
        &mut c,
        "ls2",
        "LIST \"\" (INBOX \"Entwürfe\") RETURN (STATUS (DELETED MESSAGES))",
    )
    .await;
    assert_eq!(
        r[..4],
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* STATUS INBOX (DELETED 1 MESSAGES 2)",
            "* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"",
            "* STATUS \"Entwürfe\" (DELETED 0 MESSAGES 0)",
        ]
    );
    tagged(
        &mut c,
        "st2",
        "STATUS Nowhere (DELETED)",
        "NO [NONEXISTENT]",
    )
    .await;
    // DELETED-STORAGE is QUOTA's (RFC 9208): the octets EXPUNGE would free.
    tagged(&mut c, "st3", "STATUS INBOX (DELETED-STORAGE)", "OK").await;

    // DELETE of a mailbox with mailboxes below: RFC 9051's code.
    tagged(&mut c, "d", "DELETE \"日本語\"", "NO [HASCHILDREN]").await;

    // A name sent in another normalization form is the same mailbox, and
    // CREATE and SELECT say which name they took.
    let r = ok(&mut c, "cn", "CREATE \"Bla\u{308}tter\"").await;
    assert_eq!(
        r[0],
        "* LIST () \"/\" \"Blätter\" (\"OLDNAME\" (\"Bla\u{308}tter\"))"
    );
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(list_names(&mut c)
        .await
        .contains(&"\"Blätter\"".to_string()));
    let r = ok(&mut c, "n", "SELECT \"Entwu\u{308}rfe\"").await;
    assert!(
        r.contains(
            &"* LIST (\\HasNoChildren) \"/\" \"Entwürfe\" (\"OLDNAME\" (\"Entwu\u{308}rfe\"))"
                .to_string()
        ),
        "{r:?}"
    );
    // Names that are not UTF-8 name nothing.
    c.send(b"b1 SELECT \"\xff\xfe\"\r\n").await;
    let r = c.until_tag("b1").await;
    assert!(
        r.last().unwrap().starts_with("b1 NO [NONEXISTENT]"),
        "{r:?}"
    );
    c.send(b"b2 CREATE \"bad\xc3\"\r\n").await;
    let r = c.until_tag("b2").await;
    assert!(r[0].starts_with("b2 NO [CANNOT]"), "{r:?}");
}

#[tokio::test]
async fn utf8_accept_names_round_trip_with_a_rev1_session() {
    let (_server, imap) = start().await;
    let mut utf8 = utf8_session(&imap).await;
    let mut rev1 = logged_in(&imap).await;

    // Created in UTF-8 (quoted and as a literal), listed in modified
    // UTF-7 by the rev1 session, and the other way round.
    ok(&mut utf8, "c1", "CREATE \"日本語\"").await;
    let name = "Entwürfe".as_bytes();
    let mut create = format!("c2 CREATE {{{}+}}\r\n", name.len()).into_bytes();
    create.extend_from_slice(name);
    create.extend_from_slice(b"\r\n");
    utf8.send(&create).await;
    let r = utf8.until_tag("c2").await;
    assert!(r[0].starts_with("c2 OK"), "{r:?}");
    ok(&mut rev1, "c3", "CREATE Gr&APw-n").await;
    ok(&mut utf8, "c4", "CREATE \"A&B\"").await;

    assert_eq!(
        list_names(&mut rev1).await,
        ["INBOX", "A&-B", "Entw&APw-rfe", "Gr&APw-n", "&ZeVnLIqe-"]
    );
    assert_eq!(
        list_names(&mut utf8).await,
        ["INBOX", "A&B", "\"Entwürfe\"", "\"Grün\"", "\"日本語\""]
    );
    // Each names the mailboxes in its own form.
    ok(&mut rev1, "s1", "STATUS &ZeVnLIqe- (MESSAGES)").await;
    let r = ok(&mut utf8, "s2", "STATUS \"Grün\" (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"Grün\" (MESSAGES 0)");
    tagged(
        &mut utf8,
        "s3",
        "STATUS Gr&APw-n (MESSAGES)",
        "NO [NONEXISTENT]",
    )
    .await;
    rev1.send("s4 STATUS \"Grün\" (MESSAGES)\r\n".as_bytes())
        .await;
    let r = rev1.until_tag("s4").await;
    assert!(r[0].starts_with("s4 NO [NONEXISTENT]"), "{r:?}");
    ok(&mut rev1, "s5", "STATUS A&-B (MESSAGES)").await;

    // APPEND ... UTF8 (~{n}): a message with UTF-8 in its header, served
    // as it was sent.
    let message = "From: Jürgen <j@example.com>\r\nSubject: Grüße aus 東京\r\n\r\nHallo.\r\n";
    let mut append = format!("a1 APPEND \"日本語\" UTF8 (~{{{}+}}\r\n", message.len()).into_bytes();
    append.extend_from_slice(message.as_bytes());
    append.extend_from_slice(b")\r\n");
    utf8.send(&append).await;
    let r = utf8.until_tag("a1").await;
    assert!(r[0].starts_with("a1 OK [APPENDUID "), "{r:?}");
    // An IMAP URL names the mailbox in UTF-8, %-encoded (RFC 5092).
    let url = "/%E6%97%A5%E6%9C%AC%E8%AA%9E/;UID=1";
    let r = ok(
        &mut utf8,
        "a3",
        &format!("APPEND Archive CATENATE (URL \"{url}\")"),
    )
    .await;
    assert!(r[0].starts_with("a3 OK [APPENDUID "), "{r:?}");
    // Before either ENABLE, the UTF8 form is refused.
    let mut append = format!("a2 APPEND INBOX UTF8 (~{{{}+}}\r\n", message.len()).into_bytes();
    append.extend_from_slice(message.as_bytes());
    append.extend_from_slice(b")\r\n");
    rev1.send(&append).await;
    let r = rev1.until_tag("a2").await;
    assert!(r[0].starts_with("a2 BAD "), "{r:?}");
    let r = ok(&mut rev1, "s6", "STATUS &ZeVnLIqe- (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS &ZeVnLIqe- (MESSAGES 1)");
    ok(&mut rev1, "x", "EXAMINE &ZeVnLIqe-").await;
    let r = ok(&mut rev1, "f", "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]").await;
    assert_eq!(r[1], "Subject: Grüße aus 東京", "{r:?}");

    // UTF8=ACCEPT alone keeps RFC 3501's responses otherwise.
    let r = ok(&mut utf8, "x", "SELECT \"日本語\"").await;
    assert!(r.contains(&"* 1 RECENT".to_string()), "{r:?}");
    assert!(!r.iter().any(|l| l.starts_with("* LIST ")), "{r:?}");
    let r = ok(&mut utf8, "q", "SEARCH SUBJECT \"Grüße\"").await;
    assert_eq!(r[0], "* SEARCH 1");
    // RFC 6855 3: no charset but UTF-8 in SEARCH, SORT and THREAD.
    tagged(&mut utf8, "q2", "SEARCH CHARSET US-ASCII ALL", "BAD").await;
    tagged(
        &mut utf8,
        "q3",
        "SEARCH RETURN (COUNT) CHARSET KOI8-R ALL",
        "BAD",
    )
    .await;
    let r = ok(&mut utf8, "q3b", "SEARCH CHARSET utf-8 SUBJECT \"Grüße\"").await;
    assert_eq!(r[0], "* SEARCH 1");
    tagged(&mut utf8, "q4", "SORT (SUBJECT) US-ASCII ALL", "BAD").await;
    tagged(&mut utf8, "q5", "THREAD REFERENCES US-ASCII ALL", "BAD").await;
    let r = ok(&mut utf8, "q6", "SORT (SUBJECT) utf-8 ALL").await;
    assert_eq!(r[0], "* SORT 1");
    // A rev1 session may still name a charset.
    ok(&mut rev1, "q7", "SEARCH CHARSET UTF-8 ALL").await;

    // A rev1 session cannot send a name in UTF-8.
    rev1.send("c5 CREATE \"Привет\"\r\n".as_bytes()).await;
    let r = rev1.until_tag("c5").await;
    assert!(r[0].starts_with("c5 NO [CANNOT]"), "{r:?}");
    // RENAME in UTF-8, seen in modified UTF-7.
    ok(&mut utf8, "r", "RENAME \"Grün\" \"Blätter/Grün\"").await;
    let names = list_names(&mut rev1).await;
    assert!(
        names.contains(&"Bl&AOQ-tter/Gr&APw-n".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn utf8_append_bad_input() {
    let (_server, imap) = start().await;
    let mut c = utf8_session(&imap).await;
    // No parentheses, no literal, an unclosed list.
    tagged(&mut c, "b1", "APPEND INBOX UTF8", "BAD").await;
    tagged(&mut c, "b2", "APPEND INBOX UTF8 (\"abc\")", "BAD").await;
    c.send(b"b3 APPEND INBOX UTF8 (~{3+}\r\nabc\r\n").await;
    let r = c.until_tag("b3").await;
    assert!(r.last().unwrap().starts_with("b3 BAD"), "{r:?}");
    // A CATENATE part in the UTF8 form.
    let text = "Subject: ÄÖÜ\r\n\r\n";
    let mut cat = format!("b4 APPEND INBOX CATENATE (UTF8 (~{{{}+}}\r\n", text.len()).into_bytes();
    cat.extend_from_slice(text.as_bytes());
    cat.extend_from_slice(b") TEXT {6+}\r\nbody\r\n)\r\n");
    c.send(&cat).await;
    let r = c.until_tag("b4").await;
    assert!(r[0].starts_with("b4 OK [APPENDUID "), "{r:?}");
    // The session goes on.
    ok(&mut c, "n", "NOOP").await;
}

#[tokio::test]
async fn imaplib_as_a_rev1_client_and_with_utf8_accept() {
    let (server, imap) = start().await;
    deliver(&server, &["hello", "world"]).await;
    server.wait_for_inbox(ALICE, 2).await;
    let out = imaplib_as_alice(
        &imap,
        r#"
assert "IMAP4REV2" in m.capabilities, m.capabilities
assert m.PROTOCOL_VERSION == "IMAP4REV1", m.PROTOCOL_VERSION
typ, data = m.search(None, "ALL")
assert (typ, data) == ("OK", [b"1 2"]), data
typ, data = m.create("Entw&APw-rfe")
assert typ == "OK", data
typ, data = m.list()
assert b'(\\HasNoChildren) "/" Entw&APw-rfe' in data, data
typ, data = m.status("INBOX", "(MESSAGES DELETED)")
assert data == [b"INBOX (MESSAGES 2 DELETED 0)"], data
typ, data = m.fetch("1", "(FLAGS)")
assert b"\\Recent" in data[0], data
print("rev1 ok")

u = imaplib.IMAP4("localhost", int(port), timeout=30)
u.login(user, password)
typ, data = u.enable("UTF8=ACCEPT")
assert typ == "OK" and u.utf8_enabled, (typ, data)
assert u.untagged_responses.get("ENABLED") == [b"UTF8=ACCEPT"], u.untagged_responses
typ, data = u.create('"日本語"')
assert typ == "OK", data
typ, data = u.list()
assert '(\\HasNoChildren) "/" "Entwürfe"'.encode() in data, data
assert '(\\HasNoChildren) "/" "日本語"'.encode() in data, data

# The rev1 session names it in modified UTF-7 and appends a message with
# UTF-8 in its header (imaplib's own UTF8 APPEND puts "UTF8 (" inside
# the literal, so it is not used); the UTF-8 session reads it as sent.
typ, data = m.list()
assert b'(\\HasNoChildren) "/" &ZeVnLIqe-' in data, data
msg = "Subject: 日本語のメール\r\n\r\nこんにちは\r\n".encode()
typ, data = m.append("&ZeVnLIqe-", None, None, msg)
assert typ == "OK", data
typ, data = u.select('"日本語"')
assert (typ, data) == ("OK", [b"1"]), (typ, data)
typ, data = u.fetch("1", "(BODY.PEEK[])")
assert data[0][1] == msg, data
u.logout()
m.logout()
print("utf8 ok")
"#,
    )
    .await;
    assert_eq!(out, "rev1 ok\nutf8 ok\n");
}
