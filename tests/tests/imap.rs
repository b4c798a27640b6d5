//! IMAP, black-box: imapd in this process beside smtpd, raw sockets for
//! exact responses and Python's imaplib as a real client.
//!
//! Not covered: international mailbox names in LIST (the store has no way
//! to create a mailbox yet; the modified UTF-7 encoding itself is tested in
//! the protocol module).

use std::time::Duration;

use base64::Engine;
use postern_tests::*;
use store::FlagChange;

async fn exchange(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    c.imap(tag, command).await
}

const ALICE: &str = "alice@localhost";

const CAPS_BEFORE: &str = "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE STARTTLS AUTH=PLAIN";
const CAPS_AFTER: &str = concat!(
    "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE NAMESPACE UNSELECT CHILDREN LIST-EXTENDED SPECIAL-USE LIST-STATUS UIDPLUS MOVE IDLE",
    " CONDSTORE QRESYNC BINARY MULTIAPPEND CATENATE STATUS=SIZE REPLACE OBJECTID SAVEDATE",
    " ESEARCH SEARCHRES WITHIN SORT SORT=DISPLAY ESORT I18NLEVEL=1",
    " THREAD=ORDEREDSUBJECT THREAD=REFERENCES THREAD=REFS CONTEXT=SEARCH CONTEXT=SORT UTF8=ACCEPT",
    " PREVIEW SNIPPET=FUZZY CREATE-SPECIAL-USE METADATA METADATA-SERVER",
    " URLAUTH URL-PARTIAL URLAUTH=BINARY NOTIFY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE",
    " COMPRESS=DEFLATE APPENDLIMIT=52428800"
);

async fn start() -> (Server, ImapServer) {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut common::config::Config)) -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, adjust).await;
    (server, imap)
}

/// Connects, checks the greeting is an OK, returns the client.
async fn connect(imap: &ImapServer) -> Pop3Client {
    let (client, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK [CAPABILITY "), "{greeting}");
    client
}

async fn login(c: &mut Pop3Client) {
    let r = exchange(c, "L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert_eq!(r, [format!("L OK [CAPABILITY {CAPS_AFTER}] Logged in")]);
}

fn plain(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// Delivers messages to alice over SMTP through the in-process smtpd.
async fn deliver(server: &Server, subjects: &[&str]) -> Vec<store::MessageInfo> {
    server.send_subjects(ALICE, subjects).await;
    server.wait_for_inbox(ALICE, subjects.len()).await
}

#[tokio::test]
async fn greeting_and_capability_in_both_states() {
    let (_server, imap) = start().await;
    let (mut c, greeting) = Pop3Client::connect(imap.imap).await;
    assert_eq!(
        greeting,
        format!("* OK [CAPABILITY {CAPS_BEFORE}] Postern IMAP4rev1 ready")
    );
    assert_eq!(
        exchange(&mut c, "a", "CAPABILITY").await,
        [
            format!("* CAPABILITY {CAPS_BEFORE}"),
            "a OK CAPABILITY completed".into()
        ]
    );
    assert_eq!(exchange(&mut c, "b", "NOOP").await, ["b OK Done"]);
    login(&mut c).await;
    assert_eq!(
        exchange(&mut c, "c", "capability").await,
        [
            format!("* CAPABILITY {CAPS_AFTER}"),
            "c OK CAPABILITY completed".into()
        ]
    );
    assert_eq!(
        exchange(&mut c, "d", "ID (\"name\" \"test\")").await,
        [
            format!(
                "* ID (\"name\" \"Postern\" \"version\" \"{}\")",
                env!("CARGO_PKG_VERSION")
            ),
            "d OK ID completed".into()
        ]
    );
    assert_eq!(
        exchange(&mut c, "e", "ENABLE CONDSTORE X-UNKNOWN").await,
        ["* ENABLED CONDSTORE", "e OK ENABLE completed"]
    );
    assert_eq!(
        exchange(&mut c, "f", "NAMESPACE").await,
        [
            "* NAMESPACE ((\"\" \"/\")) NIL NIL",
            "f OK NAMESPACE completed"
        ]
    );
    assert_eq!(
        exchange(&mut c, "g", "LOGOUT").await,
        [
            "* BYE Postern IMAP server logging out",
            "g OK LOGOUT completed"
        ]
    );
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn plaintext_refused_where_not_allowed() {
    let (_server, imap) = start_with(|c| c.auth.plaintext_on_loopback = false).await;
    let (mut c, greeting) = Pop3Client::connect(imap.imap).await;
    assert_eq!(
        greeting,
        "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE STARTTLS LOGINDISABLED] Postern IMAP4rev1 ready"
    );
    let r = exchange(&mut c, "a", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert_eq!(
        r,
        ["a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections; use STARTTLS first"]
    );
    let r = exchange(
        &mut c,
        "b",
        &format!("AUTHENTICATE PLAIN {}", plain(ALICE, PASSWORD)),
    )
    .await;
    assert!(r[0].starts_with("b NO [PRIVACYREQUIRED] "), "{r:?}");
    // Over implicit TLS the same config allows it.
    let (mut t, greeting) = Pop3Client::connect_tls(imap.imaps, _server.dir.path()).await;
    assert_eq!(
        greeting,
        "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE AUTH=PLAIN] Postern IMAP4rev1 ready"
    );
    login(&mut t).await;
}

#[tokio::test]
async fn login_succeeds_fails_and_is_limited() {
    let (_server, imap) = start_with(|c| {
        c.auth.max_failures_per_session = 2;
        c.auth.failures_before_delay = 100;
    })
    .await;
    let mut c = connect(&imap).await;
    assert_eq!(
        exchange(&mut c, "a", &format!("LOGIN {ALICE} wrong")).await,
        ["a NO [AUTHENTICATIONFAILED] Invalid credentials"]
    );
    login(&mut c).await;
    assert_eq!(
        exchange(&mut c, "b", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await,
        ["b BAD Command not valid in this state"]
    );

    let mut c = connect(&imap).await;
    assert_eq!(
        exchange(&mut c, "a", "LOGIN nobody@localhost x").await,
        ["a NO [AUTHENTICATIONFAILED] Invalid credentials"]
    );
    c.send(b"b LOGIN nobody@localhost y\r\n").await;
    assert_eq!(
        c.line().await,
        "b NO [AUTHENTICATIONFAILED] Invalid credentials"
    );
    assert_eq!(c.line().await, "* BYE Too many failed logins; closing");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn authenticate_plain_both_forms() {
    let (_server, imap) = start().await;
    let mut c = connect(&imap).await;
    let r = exchange(
        &mut c,
        "a",
        &format!("AUTHENTICATE PLAIN {}", plain(ALICE, PASSWORD)),
    )
    .await;
    assert_eq!(r, [format!("a OK [CAPABILITY {CAPS_AFTER}] Logged in")]);

    let mut c = connect(&imap).await;
    c.send(b"a AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(format!("{}\r\n", plain(ALICE, "nope")).as_bytes())
        .await;
    assert_eq!(
        c.line().await,
        "a NO [AUTHENTICATIONFAILED] Invalid credentials"
    );
    c.send(b"b authenticate plain\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(b"*\r\n").await;
    assert_eq!(c.line().await, "b BAD Authentication cancelled");
    c.send(b"c AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(format!("{}\r\n", plain(ALICE, PASSWORD)).as_bytes())
        .await;
    assert_eq!(
        c.line().await,
        format!("c OK [CAPABILITY {CAPS_AFTER}] Logged in")
    );
    assert_eq!(
        exchange(&mut c, "d", "AUTHENTICATE CRAM-MD5").await,
        ["d BAD Command not valid in this state"]
    );
    let mut c = connect(&imap).await;
    assert_eq!(
        exchange(&mut c, "d", "AUTHENTICATE CRAM-MD5").await,
        ["d NO Unsupported authentication mechanism CRAM-MD5"]
    );
}

#[tokio::test]
async fn starttls_discards_pipelined_commands() {
    let (server, imap) = start().await;
    let mut c = connect(&imap).await;
    c.send(b"a STARTTLS\r\nb LOGIN x y\r\n").await;
    assert_eq!(c.line().await, "a OK Begin TLS negotiation now");
    let mut c = c.start_tls(server.dir.path()).await;
    // `b` was sent before the handshake: never answered.
    assert_eq!(exchange(&mut c, "c", "NOOP").await, ["c OK Done"]);
    assert_eq!(
        exchange(&mut c, "d", "CAPABILITY").await,
        [
            "* CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE AUTH=PLAIN",
            "d OK CAPABILITY completed"
        ]
    );
    assert_eq!(
        exchange(&mut c, "e", "STARTTLS").await,
        ["e BAD Already using TLS"]
    );
    login(&mut c).await;
}

#[tokio::test]
async fn implicit_tls_port() {
    let (server, imap) = start().await;
    let (mut c, greeting) = Pop3Client::connect_tls(imap.imaps, server.dir.path()).await;
    assert_eq!(
        greeting,
        "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE AUTH=PLAIN] Postern IMAP4rev1 ready"
    );
    login(&mut c).await;
    assert_eq!(
        exchange(&mut c, "a", "LOGOUT").await,
        [
            "* BYE Postern IMAP server logging out",
            "a OK LOGOUT completed"
        ]
    );
}

#[tokio::test]
async fn literals_synchronising_nonsynchronising_and_too_large() {
    let (_server, imap) = start_with(|c| c.imap.max_literal_size = 1000).await;
    // APPENDLIMIT (RFC 7889) is the literal limit.
    let caps_after = CAPS_AFTER.replace("APPENDLIMIT=52428800", "APPENDLIMIT=1000");
    let mut c = connect(&imap).await;
    c.send(b"a LOGIN {15}\r\n").await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(format!("{ALICE} {{{}}}\r\n", PASSWORD.len()).as_bytes())
        .await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(format!("{PASSWORD}\r\n").as_bytes()).await;
    assert_eq!(
        c.line().await,
        format!("a OK [CAPABILITY {caps_after}] Logged in")
    );

    let mut c = connect(&imap).await;
    // LITERAL+: no continuation, one write.
    c.send(
        format!(
            "b LOGIN {{15+}}\r\n{ALICE} {{{}+}}\r\n{PASSWORD}\r\n",
            PASSWORD.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(
        c.line().await,
        format!("b OK [CAPABILITY {caps_after}] Logged in")
    );

    let mut c = connect(&imap).await;
    c.send(b"c LOGIN {5000}\r\n").await;
    assert_eq!(
        c.line().await,
        "c NO [LIMIT] Literal of 5000 octets too large (at most 1000)"
    );
    let mut big = b"d LOGIN {5000+}\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend_from_slice(b" secret\r\ne NOOP\r\n");
    c.send(&big).await;
    assert_eq!(
        c.line().await,
        "d NO [LIMIT] Literal of 5000 octets too large (at most 1000)"
    );
    assert_eq!(c.line().await, "e OK Done");
}

#[tokio::test]
async fn bad_syntax_and_wrong_state() {
    let (_server, imap) = start_with(|c| c.imap.max_line_length = 1000).await;
    let mut c = connect(&imap).await;
    let r = exchange(&mut c, "a", "LOGIN \"unbalanced").await;
    assert!(r[0].starts_with("a BAD "), "{r:?}");
    let r = exchange(&mut c, "b", "SELECT INBOX").await;
    assert_eq!(r, ["b BAD Command not valid in this state"]);
    let r = exchange(&mut c, "c", "BOGUS").await;
    assert!(r[0].starts_with("c BAD "), "{r:?}");
    c.send(b"\r\n").await;
    let r = c.line().await;
    assert!(r.starts_with("* BAD "), "{r}");
    // An overlong line is answered once and dropped to its end.
    let mut long = b"d NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 3000));
    long.extend_from_slice(b"\r\ne NOOP\r\n");
    c.send(&long).await;
    let r = c.line().await;
    assert!(r.starts_with("d BAD ") || r.starts_with("* BAD "), "{r}");
    assert_eq!(c.line().await, "e OK Done");

    login(&mut c).await;
    let r = exchange(&mut c, "f", "LIST (subscribed \"\" \"*\"").await;
    assert!(r[0].starts_with("f BAD "), "{r:?}");
    assert_eq!(
        exchange(&mut c, "g", "FETCH 1 FLAGS").await,
        ["g BAD Command not valid in this state"]
    );
    assert_eq!(
        exchange(&mut c, "h", "CLOSE").await,
        ["h BAD Command not valid in this state"]
    );
    assert_eq!(
        exchange(&mut c, "i", "COPY 1 Trash").await,
        ["i BAD Command not valid in this state"]
    );
    assert_eq!(
        exchange(&mut c, "j", "CREATE \"a//b\"").await,
        ["j NO [CANNOT] Invalid mailbox name"]
    );
    exchange(&mut c, "k", "SELECT INBOX").await;
    assert_eq!(
        exchange(&mut c, "l", "UID FETCH 1:* FLAGS")
            .await
            .last()
            .unwrap(),
        "l OK UID FETCH completed"
    );
    assert_eq!(
        exchange(&mut c, "m", "ENABLE CONDSTORE").await,
        ["m BAD Command not valid in this state"]
    );
}

/// Like Dovecot, a session that gets `imap.max_bad_commands` (default 20)
/// BAD replies in a row is closed with `* BYE Too many invalid IMAP
/// commands.`; an OK or NO in between starts the count again, and the
/// next session is served as usual.
#[tokio::test]
async fn too_many_bad_commands_in_a_row_close_the_session() {
    let (_server, imap) = start().await;
    let mut c = connect(&imap).await;
    login(&mut c).await;
    // 19 BAD, a NOOP, 19 BAD, a NO: still served.
    let mut batch = Vec::new();
    for i in 0..19 {
        batch.extend_from_slice(format!("a{i} BOGUS\r\n").as_bytes());
    }
    batch.extend_from_slice(b"n NOOP\r\n");
    for i in 0..19 {
        batch.extend_from_slice(format!("b{i} FETCH 1 FLAGS\r\n").as_bytes());
    }
    batch.extend_from_slice(b"s SELECT Nowhere\r\n");
    c.send(&batch).await;
    for i in 0..19 {
        let r = c.line().await;
        assert!(r.starts_with(&format!("a{i} BAD ")), "{r}");
    }
    assert_eq!(c.line().await, "n OK Done");
    for i in 0..19 {
        assert_eq!(
            c.line().await,
            format!("b{i} BAD Command not valid in this state")
        );
    }
    let r = c.line().await;
    assert!(r.starts_with("s NO "), "{r}");
    // The 20th BAD in a row (of any kind) is the last reply; what was
    // pipelined after it is not answered.
    let mut batch = Vec::new();
    for i in 0..20 {
        match i % 3 {
            0 => batch.extend_from_slice(format!("c{i} BOGUS\r\n").as_bytes()),
            1 => batch.extend_from_slice(format!("c{i} CLOSE\r\n").as_bytes()),
            _ => batch.extend_from_slice(b"\r\n"),
        }
    }
    batch.extend_from_slice(b"z NOOP\r\n");
    c.send(&batch).await;
    for i in 0..20 {
        let r = c.line().await;
        let tag = if i % 3 == 2 {
            "*".to_string()
        } else {
            format!("c{i}")
        };
        assert!(r.starts_with(&format!("{tag} BAD ")), "{i}: {r}");
    }
    assert_eq!(c.line().await, "* BYE Too many invalid IMAP commands.");
    assert!(c.is_closed().await);

    let mut c = connect(&imap).await;
    login(&mut c).await;
    assert_eq!(exchange(&mut c, "n", "NOOP").await, ["n OK Done"]);

    // The limit is configurable and holds before login too.
    let (_server, imap) = start_with(|c| c.imap.max_bad_commands = 3).await;
    let mut c = connect(&imap).await;
    c.send(b"a BOGUS\r\nb NOOP\r\nc BOGUS\r\nd SELECT INBOX\r\ne BOGUS\r\nf NOOP\r\n")
        .await;
    assert!(c.line().await.starts_with("a BAD "));
    assert_eq!(c.line().await, "b OK Done");
    assert!(c.line().await.starts_with("c BAD "));
    assert_eq!(c.line().await, "d BAD Command not valid in this state");
    assert!(c.line().await.starts_with("e BAD "));
    assert_eq!(c.line().await, "* BYE Too many invalid IMAP commands.");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn list_lsub_status_as_thunderbird_sends_them() {
    let (server, imap) = start().await;
    deliver(&server, &["one", "two"]).await;
    let mut c = connect(&imap).await;
    login(&mut c).await;
    assert_eq!(
        exchange(
            &mut c,
            "a",
            "list (subscribed) \"\" \"*\" return (special-use)"
        )
        .await,
        [
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX",
            "* LIST (\\HasNoChildren \\Archive \\Subscribed) \"/\" Archive",
            "* LIST (\\HasNoChildren \\Drafts \\Subscribed) \"/\" Drafts",
            "* LIST (\\HasNoChildren \\Junk \\Subscribed) \"/\" Junk",
            "* LIST (\\HasNoChildren \\Sent \\Subscribed) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Trash \\Subscribed) \"/\" Trash",
            "a OK LIST completed",
        ]
    );
    assert_eq!(
        exchange(&mut c, "b", "list \"\" \"INBOX\"").await,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "b OK LIST completed"
        ]
    );
    assert_eq!(
        exchange(&mut c, "c", "LIST \"\" inbox").await,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "c OK LIST completed"
        ]
    );
    assert_eq!(
        exchange(&mut c, "d", "LIST \"\" \"\"").await,
        ["* LIST (\\Noselect) \"/\" \"\"", "d OK LIST completed"]
    );
    assert_eq!(
        exchange(&mut c, "e", "LIST \"\" \"S%\"").await,
        [
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "e OK LIST completed"
        ]
    );
    assert_eq!(
        exchange(&mut c, "f", "LIST \"\" \"nothing*\"").await,
        ["f OK LIST completed"]
    );
    let r = exchange(
        &mut c,
        "g",
        "LIST \"\" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN))",
    )
    .await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* STATUS INBOX (MESSAGES 2 UNSEEN 2)",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* STATUS Sent (MESSAGES 0 UNSEEN 0)",
            "g OK LIST completed",
        ]
    );
    let r = exchange(&mut c, "h", "LIST (SPECIAL-USE) \"\" \"*\"").await;
    assert_eq!(r.len(), 6, "{r:?}");
    let r = exchange(&mut c, "i", "LSUB \"\" \"*\"").await;
    assert_eq!(r.len(), 7, "{r:?}");
    assert_eq!(r[0], "* LSUB () \"/\" INBOX");
    assert_eq!(r[6], "i OK LSUB completed");

    let messages = server.wait_for_inbox(ALICE, 2).await;
    let id = server.account(ALICE).await;
    let index = server.store.mailbox_index(id, "INBOX").await.unwrap();
    server
        .store
        .store_flags(
            id,
            "INBOX",
            &[messages[0].uid],
            FlagChange::Add,
            &["\\Seen".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        exchange(&mut c, "j", "STATUS INBOX (UIDNEXT MESSAGES UNSEEN RECENT)").await,
        [
            format!(
                "* STATUS INBOX (UIDNEXT {} MESSAGES 2 UNSEEN 1 RECENT 2)",
                index.uid_next.0
            ),
            "j OK STATUS completed".into()
        ]
    );
    let r = exchange(&mut c, "k", "STATUS Trash (UIDVALIDITY HIGHESTMODSEQ)").await;
    assert!(r[0].starts_with("* STATUS Trash (UIDVALIDITY "), "{r:?}");
    assert_eq!(
        exchange(&mut c, "l", "STATUS Nowhere (MESSAGES)").await,
        ["l NO [NONEXISTENT] No such mailbox"]
    );
}

#[tokio::test]
async fn select_examine_close_unselect() {
    let (server, imap) = start().await;
    let messages = deliver(&server, &["one", "two", "three"]).await;
    let id = server.account(ALICE).await;
    server
        .store
        .store_flags(
            id,
            "INBOX",
            &[messages[0].uid],
            FlagChange::Add,
            &["\\Seen".into()],
        )
        .await
        .unwrap();
    let index = server.store.mailbox_index(id, "INBOX").await.unwrap();
    let mut c = connect(&imap).await;
    login(&mut c).await;
    assert_eq!(
        exchange(&mut c, "a", "SELECT INBOX").await,
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)".to_string(),
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited"
                .to_string(),
            "* 3 EXISTS".into(),
            "* 3 RECENT".into(),
            "* OK [UNSEEN 2] First unseen".into(),
            format!("* OK [UIDVALIDITY {}] UIDs valid", index.uid_validity),
            format!("* OK [UIDNEXT {}] Predicted next UID", index.uid_next.0),
            format!(
                "* OK [MAILBOXID (F{}-{})] Mailbox id",
                index.mailbox.0, index.uid_validity
            ),
            "a OK [READ-WRITE] SELECT completed".into(),
        ]
    );
    assert_eq!(exchange(&mut c, "b", "CHECK").await, ["b OK Done"]);
    let r = exchange(&mut c, "c", "EXAMINE inbox").await;
    assert!(r.contains(&"* OK [PERMANENTFLAGS ()] No permanent flags permitted".to_string()));
    assert_eq!(r.last().unwrap(), "c OK [READ-ONLY] EXAMINE completed");

    // \Deleted on the first: CLOSE after EXAMINE keeps it, UNSELECT keeps
    // it, CLOSE after SELECT expunges it.
    server
        .store
        .store_flags(
            id,
            "INBOX",
            &[messages[0].uid],
            FlagChange::Add,
            &["\\Deleted".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        exchange(&mut c, "d", "CLOSE").await,
        ["d OK CLOSE completed"]
    );
    assert_eq!(server.store.messages(id, "INBOX").await.unwrap().len(), 3);
    exchange(&mut c, "e", "SELECT INBOX").await;
    assert_eq!(
        exchange(&mut c, "f", "UNSELECT").await,
        ["f OK UNSELECT completed"]
    );
    assert_eq!(server.store.messages(id, "INBOX").await.unwrap().len(), 3);
    assert_eq!(
        exchange(&mut c, "g", "CLOSE").await,
        ["g BAD Command not valid in this state"]
    );
    exchange(&mut c, "h", "SELECT INBOX").await;
    assert_eq!(
        exchange(&mut c, "i", "CLOSE").await,
        ["i OK CLOSE completed"]
    );
    let left = server.store.messages(id, "INBOX").await.unwrap();
    assert_eq!(
        left.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [messages[1].uid, messages[2].uid]
    );

    let r = exchange(&mut c, "j", "SELECT Sent").await;
    assert!(r.contains(&"* 0 EXISTS".to_string()), "{r:?}");
    assert!(!r.iter().any(|l| l.contains("UNSEEN")), "{r:?}");
    // A failed SELECT leaves nothing selected.
    assert_eq!(
        exchange(&mut c, "k", "SELECT Nowhere").await,
        ["k NO [NONEXISTENT] No such mailbox"]
    );
    assert_eq!(
        exchange(&mut c, "l", "CHECK").await,
        ["l BAD Command not valid in this state"]
    );
}

#[tokio::test]
async fn autologout_and_shutdown_say_bye() {
    let (_server, imap) = start_with(|c| c.imap.idle_timeout_secs = 1).await;
    let mut c = connect(&imap).await;
    let started = std::time::Instant::now();
    assert_eq!(c.line().await, "* BYE Autologout; idle for too long");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(c.is_closed().await);

    let (_server, imap) = start().await;
    let mut c = connect(&imap).await;
    login(&mut c).await;
    let stop = tokio::spawn(imap.stop());
    assert_eq!(c.line().await, "* BYE Server shutting down");
    assert!(c.is_closed().await);
    stop.await.unwrap();
}

/// imaplib: plain login, STARTTLS login, LIST and SELECT.
const IMAPLIB: &str = r#"
import imaplib, ssl, sys
mode, port, cafile, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
m = imaplib.IMAP4("localhost", int(port), timeout=30)
if mode == "starttls":
    assert "STARTTLS" in m.capabilities, m.capabilities
    m.starttls(ssl_context=ctx)
typ, _ = m.login(user, password)
assert typ == "OK"
typ, boxes = m.list()
assert typ == "OK"
for b in boxes:
    print(b.decode())
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
print("EXISTS", data[0].decode())
typ, data = m.status("INBOX", "(MESSAGES UNSEEN)")
print(data[0].decode())
m.close()
m.logout()
"#;

#[tokio::test]
async fn imaplib_logs_in_lists_and_selects() {
    let (server, imap) = start().await;
    deliver(&server, &["one"]).await;
    let cafile = server.dir.path().join("tls/cert.pem");
    for mode in ["plain", "starttls"] {
        let out = tokio::process::Command::new("python3")
            .args([
                "-c",
                IMAPLIB,
                mode,
                &imap.imap.port().to_string(),
                cafile.to_str().unwrap(),
                ALICE,
                PASSWORD,
            ])
            .output()
            .await
            .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "(\\HasNoChildren) \"/\" INBOX", "{lines:?}");
        assert!(
            lines.contains(&"(\\HasNoChildren \\Sent) \"/\" Sent"),
            "{lines:?}"
        );
        assert!(lines.contains(&"EXISTS 1"), "{lines:?}");
        assert!(lines.contains(&"INBOX (MESSAGES 1 UNSEEN 1)"), "{lines:?}");
    }
}

const ALT: &str = "From: Bob <bob@example.com>\r\nTo: Alice <alice@localhost>, \"Carol C\" <carol@example.org>\r\nCc: dave@example.net\r\nSubject: alt\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\nMessage-ID: <alt@example.com>\r\nIn-Reply-To: <one@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain text\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--b1--\r\n";

const ATTACHED: &str = "From: Bob <bob@example.com>\r\nTo: Alice <alice@localhost>\r\nSubject: attached\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\nMessage-ID: <att@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b2\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b2--\r\n";

const FORWARDED: &str = "From: Bob <bob@example.com>\r\nTo: Alice <alice@localhost>\r\nSubject: fwd\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\nMessage-ID: <fwd@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b3\"\r\n\r\n--b3\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n--b3\r\nContent-Type: message/rfc822\r\n\r\nFrom: Eve <eve@example.com>\r\nSubject: inner\r\nDate: Fri, 20 Nov 2026 10:00:00 +0000\r\nMessage-ID: <inner@example.com>\r\n\r\ninner body\r\n--b3--\r\n";

/// Delivers the plain message `one` and the three MIME messages (UIDs 1-4).
async fn deliver_mime(server: &Server) -> Vec<store::MessageInfo> {
    let (mut smtp, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.cmd("EHLO client.example").await.code, 250);
    let one = message("one", "body");
    for raw in [
        &one[..],
        ALT.as_bytes(),
        ATTACHED.as_bytes(),
        FORWARDED.as_bytes(),
    ] {
        let r = smtp.send_mail("bob@example.com", &[ALICE], raw).await;
        assert_eq!(r.code, 250, "{}", r.text());
    }
    server.wait_for_inbox(ALICE, 4).await
}

/// Sends `tag command`; returns every response up to the tagged one, each
/// with its literals' bytes in place (`{n}\r\n` kept before them).
async fn responses(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<Vec<u8>> {
    let (mut out, tagged) = c.responses(tag, command).await;
    out.push(tagged.into_bytes());
    out
}

fn texts(r: &[Vec<u8>]) -> Vec<String> {
    r.iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

fn literal(bytes: &[u8]) -> Vec<u8> {
    let mut v = format!("{{{}}}\r\n", bytes.len()).into_bytes();
    v.extend_from_slice(bytes);
    v
}

#[tokio::test]
async fn fetch_as_thunderbird_sends_it() {
    let (server, imap) = start().await;
    let infos = deliver_mime(&server).await;
    // Another session saw them first: not \Recent here.
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    server.store.claim_recent(alice.id, "INBOX").await.unwrap();
    let mut c = connect(&imap).await;
    login(&mut c).await;
    exchange(&mut c, "s", "SELECT INBOX").await;

    let r = texts(&responses(&mut c, "a", "UID fetch 1:* (FLAGS)").await);
    assert_eq!(
        r,
        [
            "* 1 FETCH (UID 1 FLAGS ())",
            "* 2 FETCH (UID 2 FLAGS ())",
            "* 3 FETCH (UID 3 FLAGS ())",
            "* 4 FETCH (UID 4 FLAGS ())",
            "a OK UID FETCH completed",
        ]
    );

    let r = responses(
        &mut c,
        "b",
        "UID fetch 1:2 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To Received)])",
    )
    .await;
    assert_eq!(r.len(), 3);
    let first = String::from_utf8_lossy(&r[0]).into_owned();
    let size = infos[0].size;
    assert!(
        first.starts_with(&format!("* 1 FETCH (UID 1 RFC822.SIZE {size} FLAGS () BODY[HEADER.FIELDS (FROM TO CC BCC SUBJECT DATE MESSAGE-ID PRIORITY X-PRIORITY REFERENCES NEWSGROUPS IN-REPLY-TO CONTENT-TYPE REPLY-TO RECEIVED)] {{")),
        "{first}"
    );
    assert!(first.contains("\r\nFrom: Bob <bob@example.com>\r\nTo: Alice <alice@localhost>\r\nSubject: one\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\nMessage-ID: <one@example.com>\r\n\r\n)"), "{first}");
    assert!(first.contains("Received: "), "{first}");
    let second = String::from_utf8_lossy(&r[1]).into_owned();
    assert!(!second.contains("MIME-Version"), "{second}");
    assert!(
        second.contains("Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n)"),
        "{second}"
    );
    assert_eq!(String::from_utf8_lossy(&r[2]), "b OK UID FETCH completed");

    let r = responses(&mut c, "c", "UID fetch 1:2 (UID RFC822.SIZE BODY.PEEK[])").await;
    for (i, info) in infos[..2].iter().enumerate() {
        let raw = server.raw(ALICE, info.uid).await;
        let mut want = format!(
            "* {} FETCH (UID {} RFC822.SIZE {} BODY[] ",
            i + 1,
            info.uid,
            raw.len()
        )
        .into_bytes();
        want.extend(literal(&raw));
        want.push(b')');
        assert_eq!(r[i], want);
    }
    // PEEK left \Seen alone; BODY[] sets it and says so.
    let r = texts(&responses(&mut c, "d", "UID fetch 1 (FLAGS)").await);
    assert_eq!(r[0], "* 1 FETCH (UID 1 FLAGS ())");
    let r = responses(&mut c, "e", "UID fetch 1 (UID RFC822.SIZE BODY[])").await;
    let raw = server.raw(ALICE, infos[0].uid).await;
    let mut want = format!("* 1 FETCH (UID 1 RFC822.SIZE {} BODY[] ", raw.len()).into_bytes();
    want.extend(literal(&raw));
    want.extend_from_slice(b" FLAGS (\\Seen))");
    assert_eq!(r[0], want);

    assert_eq!(
        exchange(&mut c, "f", "uid store 2 +Flags (\\Seen)").await,
        [
            "* 2 FETCH (FLAGS (\\Seen) UID 2)",
            "f OK UID STORE completed"
        ]
    );
    assert_eq!(
        exchange(&mut c, "g", "STORE 1:2 -FLAGS.SILENT (\\Seen)").await,
        ["g OK STORE completed"]
    );
    assert_eq!(
        exchange(&mut c, "h", "FETCH 1:2 FLAGS").await,
        [
            "* 1 FETCH (FLAGS ())",
            "* 2 FETCH (FLAGS ())",
            "h OK FETCH completed"
        ]
    );
    // A new keyword is announced in FLAGS before a FETCH shows it.
    let r = exchange(&mut c, "i", "STORE 2 FLAGS ($Junk \\Flagged)").await;
    assert_eq!(
        r[0],
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)"
    );
    assert_eq!(r[2], "* 2 FETCH (FLAGS (\\Flagged $Junk))");
    // Out of range, * in range.
    assert!(exchange(&mut c, "j", "FETCH 5 FLAGS").await[0].starts_with("j BAD "));
    assert!(exchange(&mut c, "k", "STORE 9 +FLAGS (\\Seen)").await[0].starts_with("k BAD "));
    assert_eq!(
        exchange(&mut c, "l", "FETCH * UID").await,
        ["* 4 FETCH (UID 4)", "l OK FETCH completed"]
    );
    // UID ranges only match what exists.
    assert_eq!(
        exchange(&mut c, "m", "UID FETCH 3:99 UID").await,
        [
            "* 3 FETCH (UID 3)",
            "* 4 FETCH (UID 4)",
            "m OK UID FETCH completed"
        ]
    );
    assert_eq!(
        exchange(&mut c, "n", "UID FETCH 99 UID").await,
        ["n OK UID FETCH completed"]
    );
    assert_eq!(
        exchange(&mut c, "n2", "UID FETCH 99:* UID").await,
        ["* 4 FETCH (UID 4)", "n2 OK UID FETCH completed"]
    );
    assert!(exchange(&mut c, "o", "STORE 1 +FLAGS (\\Recent)").await[0].starts_with("o BAD "));

    let r = texts(&responses(&mut c, "p", "FETCH 1 (INTERNALDATE RFC822.HEADER)").await);
    assert!(r[0].starts_with("* 1 FETCH (INTERNALDATE \""), "{r:?}");
    assert!(r[0].contains(" +0000\" RFC822.HEADER {"), "{r:?}");
    assert!(
        r[0].ends_with("Message-ID: <one@example.com>\r\n\r\n)"),
        "{r:?}"
    );
    let r = texts(&responses(&mut c, "q", "FETCH 1 (RFC822.TEXT BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS.NOT (Return-Path Received Date From To Message-ID)])").await);
    assert_eq!(
        r[0],
        "* 1 FETCH (RFC822.TEXT {6}\r\nbody\r\n BODY[TEXT] {6}\r\nbody\r\n BODY[HEADER.FIELDS.NOT (RETURN-PATH RECEIVED DATE FROM TO MESSAGE-ID)] {16}\r\nSubject: one\r\n\r\n FLAGS (\\Seen))"
    );
}

#[tokio::test]
async fn envelope_bodystructure_and_parts() {
    let (server, imap) = start().await;
    deliver_mime(&server).await;
    let mut c = connect(&imap).await;
    login(&mut c).await;
    exchange(&mut c, "s", "EXAMINE INBOX").await;

    let r = texts(&responses(&mut c, "a", "FETCH 2 (ENVELOPE)").await);
    assert_eq!(
        r[0],
        "* 2 FETCH (ENVELOPE (\"Sat, 21 Nov 2026 12:00:00 +0000\" \"alt\" ((\"Bob\" NIL \"bob\" \"example.com\")) ((\"Bob\" NIL \"bob\" \"example.com\")) ((\"Bob\" NIL \"bob\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"localhost\")(\"Carol C\" NIL \"carol\" \"example.org\")) ((NIL NIL \"dave\" \"example.net\")) NIL \"<one@example.com>\" \"<alt@example.com>\"))"
    );

    let r = texts(&responses(&mut c, "b", "FETCH 2:4 (BODYSTRUCTURE)").await);
    assert!(r[0].starts_with("* 2 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" "), "{r:?}");
    assert!(
        r[0].ends_with(" \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL))"),
        "{r:?}"
    );
    assert!(
        r[0].contains("(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" "),
        "{r:?}"
    );
    assert!(r[1].contains("(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\" 12 NIL (\"attachment\" (\"filename\" \"a.pdf\")) NIL NIL)"), "{r:?}");
    assert!(
        r[1].ends_with(" \"mixed\" (\"boundary\" \"b2\") NIL NIL NIL))"),
        "{r:?}"
    );
    assert!(
        r[2].contains("(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "),
        "{r:?}"
    );
    assert!(r[2].contains(" (\"Fri, 20 Nov 2026 10:00:00 +0000\" \"inner\" ((\"Eve\" NIL \"eve\" \"example.com\"))"), "{r:?}");
    assert!(r[2].contains("\"<inner@example.com>\") (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL) 5 NIL NIL NIL NIL)"), "{r:?}");

    let r = texts(&responses(&mut c, "c", "FETCH 2 (BODY)").await);
    assert!(
        r[0].starts_with(
            "* 2 FETCH (BODY ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" "
        ),
        "{r:?}"
    );
    assert!(r[0].ends_with(" \"alternative\"))"), "{r:?}");

    let r = texts(&responses(&mut c, "d", "FETCH 2 (BODY[1] BODY[2.MIME] BODY[2])").await);
    assert_eq!(
        r[0],
        "* 2 FETCH (BODY[1] {10}\r\nplain text BODY[2.MIME] {42}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n BODY[2] {11}\r\n<p>html</p>)"
    );
    let r = texts(
        &responses(
            &mut c,
            "e",
            "FETCH 4 (BODY[2.HEADER.FIELDS (SUBJECT)] BODY[2.TEXT] BODY[2.1])",
        )
        .await,
    );
    assert_eq!(
        r[0],
        "* 4 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: inner\r\n\r\n BODY[2.TEXT] {10}\r\ninner body BODY[2.1] {10}\r\ninner body)"
    );
    let r = texts(&responses(&mut c, "f", "FETCH 1 (BODY[]<0.10> BODY[1]<2.100>)").await);
    let raw = server.raw(ALICE, store::Uid(1)).await;
    assert_eq!(
        r[0],
        format!(
            "* 1 FETCH (BODY[]<0> {{10}}\r\n{} BODY[1]<2> {{4}}\r\ndy\r\n)",
            String::from_utf8_lossy(&raw[..10])
        )
    );
    // Read-only: no \Seen, STORE and EXPUNGE refused.
    let r = texts(&responses(&mut c, "g", "FETCH 1 FLAGS").await);
    assert_eq!(r[0], "* 1 FETCH (FLAGS (\\Recent))");
    assert_eq!(
        exchange(&mut c, "h", "STORE 1 +FLAGS (\\Seen)").await,
        ["h NO [READ-ONLY] Mailbox is read-only"]
    );
    assert_eq!(
        exchange(&mut c, "i", "EXPUNGE").await,
        ["i NO [READ-ONLY] Mailbox is read-only"]
    );
}

#[tokio::test]
async fn expunge_numbers_and_uid_expunge() {
    let (server, imap) = start().await;
    deliver(&server, &["a", "b", "c", "d", "e"]).await;
    let mut c = connect(&imap).await;
    login(&mut c).await;
    exchange(&mut c, "s", "SELECT INBOX").await;
    assert_eq!(
        exchange(&mut c, "a", "STORE 2,4 +FLAGS.SILENT (\\Deleted)").await,
        ["a OK STORE completed"]
    );
    assert_eq!(
        exchange(&mut c, "b", "EXPUNGE").await,
        ["* 4 EXPUNGE", "* 2 EXPUNGE", "b OK EXPUNGE completed"]
    );
    assert_eq!(
        exchange(&mut c, "c", "FETCH 1:* UID").await,
        [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 3)",
            "* 3 FETCH (UID 5)",
            "c OK FETCH completed"
        ]
    );
    exchange(&mut c, "d", "STORE 1:3 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        exchange(&mut c, "e", "UID EXPUNGE 3:5").await,
        ["* 3 EXPUNGE", "* 2 EXPUNGE", "e OK UID EXPUNGE completed"]
    );
    assert_eq!(
        exchange(&mut c, "f", "UID FETCH 1:* (UID FLAGS)").await,
        [
            "* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))",
            "f OK UID FETCH completed"
        ]
    );
    let id = server.account(ALICE).await;
    let left = server.store.messages(id, "INBOX").await.unwrap();
    assert_eq!(left.len(), 1);
}

/// imaplib: select, fetch (RFC822), store, expunge.
const IMAPLIB_FETCH: &str = r#"
import imaplib, sys
port, user, password = sys.argv[1:4]
m = imaplib.IMAP4("localhost", int(port), timeout=30)
m.login(user, password)
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
typ, data = m.fetch("1", "(RFC822)")
assert typ == "OK", (typ, data)
sys.stdout.buffer.write(data[0][1])
print()
typ, data = m.fetch("1", "(FLAGS)")
print(data[0].decode())
typ, data = m.store("2", "+FLAGS", "(\\Deleted)")
print(data[0].decode())
typ, data = m.expunge()
print("EXPUNGED", data)
typ, data = m.uid("FETCH", "1:*", "(UID)")
print(data)
m.logout()
"#;

#[tokio::test]
async fn imaplib_fetch_store_expunge() {
    let (server, imap) = start().await;
    let infos = deliver(&server, &["one", "two"]).await;
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            IMAPLIB_FETCH,
            &imap.imap.port().to_string(),
            ALICE,
            PASSWORD,
        ])
        .output()
        .await
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = server.raw(ALICE, infos[0].uid).await;
    assert!(
        stdout.starts_with(&*String::from_utf8_lossy(&raw)),
        "{stdout}"
    );
    assert!(stdout.contains("1 (FLAGS (\\Seen \\Recent))"), "{stdout}");
    assert!(
        stdout.contains("2 (FLAGS (\\Deleted \\Recent))"),
        "{stdout}"
    );
    assert!(stdout.contains("EXPUNGED [b'2']"), "{stdout}");
    assert!(stdout.contains("[b'1 (UID 1)']"), "{stdout}");
}
