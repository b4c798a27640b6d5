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

const ALICE: &str = "alice@localhost";

const CAPS_BEFORE: &str = "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE STARTTLS AUTH=PLAIN";
const CAPS_AFTER: &str =
    "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE NAMESPACE UNSELECT CHILDREN LIST-EXTENDED SPECIAL-USE LIST-STATUS";

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

/// Sends `tag command` and reads every line up to the tagged reply.
async fn exchange(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    c.send(format!("{tag} {command}\r\n").as_bytes()).await;
    read_to_tag(c, tag).await
}

async fn read_to_tag(c: &mut Pop3Client, tag: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = c.line().await;
        let done = line.starts_with(&format!("{tag} "));
        lines.push(line);
        if done {
            return lines;
        }
    }
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
    let (mut smtp, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.cmd("EHLO client.example").await.code, 250);
    for s in subjects {
        let r = smtp
            .send_mail("bob@example.com", &[ALICE], &message(s, "body"))
            .await;
        assert_eq!(r.code, 250, "{}", r.text());
    }
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
        exchange(&mut c, "e", "ENABLE CONDSTORE UTF8=ACCEPT").await,
        ["* ENABLED", "e OK ENABLE completed"]
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
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE STARTTLS LOGINDISABLED] Postern IMAP4rev1 ready"
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
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE AUTH=PLAIN] Postern IMAP4rev1 ready"
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
            "* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE AUTH=PLAIN",
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
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE AUTH=PLAIN] Postern IMAP4rev1 ready"
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
    let mut c = connect(&imap).await;
    c.send(b"a LOGIN {15}\r\n").await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(format!("{ALICE} {{{}}}\r\n", PASSWORD.len()).as_bytes())
        .await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(format!("{PASSWORD}\r\n").as_bytes()).await;
    assert_eq!(
        c.line().await,
        format!("a OK [CAPABILITY {CAPS_AFTER}] Logged in")
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
        format!("b OK [CAPABILITY {CAPS_AFTER}] Logged in")
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
        exchange(&mut c, "i", "CREATE foo").await,
        ["i NO Not available yet in this Postern version"]
    );
    assert_eq!(
        exchange(&mut c, "j", "IDLE").await,
        ["j NO Not available yet in this Postern version"]
    );
    exchange(&mut c, "k", "SELECT INBOX").await;
    assert_eq!(
        exchange(&mut c, "l", "UID FETCH 1:* FLAGS").await,
        ["l NO Not available yet in this Postern version"]
    );
    assert_eq!(
        exchange(&mut c, "m", "ENABLE CONDSTORE").await,
        ["m BAD Command not valid in this state"]
    );
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
                "* STATUS INBOX (UIDNEXT {} MESSAGES 2 UNSEEN 1 RECENT 0)",
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
            "* 3 EXISTS".into(),
            "* 0 RECENT".into(),
            "* OK [UNSEEN 2] First unseen".into(),
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited"
                .into(),
            format!("* OK [UIDVALIDITY {}] UIDs valid", index.uid_validity),
            format!("* OK [UIDNEXT {}] Predicted next UID", index.uid_next.0),
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
