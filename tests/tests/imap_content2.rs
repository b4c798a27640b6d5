//! IMAP, black-box: PREVIEW (RFC 8970) and Dovecot's SNIPPET=FUZZY,
//! CREATE-SPECIAL-USE (RFC 6154 3), METADATA and METADATA-SERVER (RFC
//! 5464), each with two sessions where another session's view matters,
//! and bad input.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut common::config::Config)) -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, adjust).await;
    (server, imap)
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The untagged responses to `command` (literals inline) and the tagged
/// reply, which must start with `expect` (e.g. "t OK").
async fn run(c: &mut Pop3Client, command: &str, expect: &str) -> Vec<String> {
    let (r, tagged) = c.responses("t", command).await;
    assert!(
        tagged.starts_with(&format!("t {expect}")),
        "{command}: {tagged} after {:?}",
        r.iter().map(|b| show(b)).collect::<Vec<_>>()
    );
    r.iter().map(|b| show(b)).collect()
}

/// The tagged reply to `command`.
async fn tagged(c: &mut Pop3Client, command: &str) -> String {
    c.responses("t", command).await.1
}

// ---- PREVIEW and SNIPPET ----

fn text_message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: bob@example.com\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\n{body}").into_bytes()
}

fn html_message() -> Vec<u8> {
    concat!(
        "From: bob@example.com\r\nSubject: html\r\nMIME-Version: 1.0\r\n",
        "Content-Type: text/html; charset=utf-8\r\n\r\n",
        "<html><head><title>T</title></head><body><p>Hello   <b>bold</b>\r\n",
        "world</p><p>café</p></body></html>\r\n"
    )
    .as_bytes()
    .to_vec()
}

fn attachment_only() -> Vec<u8> {
    concat!(
        "From: bob@example.com\r\nSubject: att\r\nMIME-Version: 1.0\r\n",
        "Content-Type: application/octet-stream\r\n",
        "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n"
    )
    .as_bytes()
    .to_vec()
}

#[tokio::test]
async fn preview_is_the_start_of_the_text() {
    let (server, imap) = start().await;
    let long = "word ".repeat(300);
    server
        .send_messages(
            ALICE,
            &[
                text_message("plain", "Hi Alice,\r\n\r\n  see   you\ttomorrow.\r\n"),
                html_message(),
                attachment_only(),
                text_message("long", &long),
            ],
        )
        .await;
    server.wait_for_inbox(ALICE, 4).await;
    let mut c = imap.login(ALICE).await;
    run(&mut c, "SELECT INBOX", "OK").await;
    let r = run(&mut c, "FETCH 1 (PREVIEW)", "OK").await;
    assert_eq!(r, ["* 1 FETCH (PREVIEW \"Hi Alice, see you tomorrow.\")"]);
    // LAZY: the preview is made at delivery, so it is there.
    let r = run(&mut c, "UID FETCH 1 (UID PREVIEW (LAZY))", "OK").await;
    assert_eq!(
        r,
        ["* 1 FETCH (UID 1 PREVIEW \"Hi Alice, see you tomorrow.\")"]
    );
    // HTML without its tags; UTF-8 goes out in a literal.
    let r = run(&mut c, "FETCH 2 PREVIEW", "OK").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("* 2 FETCH (PREVIEW {"), "{r:?}");
    assert!(r[0].contains("Hello bold world café"), "{r:?}");
    assert!(!r[0].contains('<'), "{r:?}");
    // No text at all: an empty string (RFC 8970 3.1).
    let r = run(&mut c, "FETCH 3 (PREVIEW)", "OK").await;
    assert_eq!(r, ["* 3 FETCH (PREVIEW \"\")"]);
    // At most 256 characters.
    let r = run(&mut c, "FETCH 4 (PREVIEW)", "OK").await;
    let text = r[0]
        .strip_prefix("* 4 FETCH (PREVIEW \"")
        .and_then(|t| t.strip_suffix("\")"))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(text.starts_with("word word"), "{text}");
    assert!(text.chars().count() <= 256, "{}", text.len());
    // Dovecot's older form, the same text.
    let r = run(&mut c, "FETCH 1 (SNIPPET (FUZZY))", "OK").await;
    assert_eq!(
        r,
        ["* 1 FETCH (SNIPPET (FUZZY \"Hi Alice, see you tomorrow.\"))"]
    );
    // With the other items, in the order asked.
    let r = run(&mut c, "FETCH 1 (FLAGS PREVIEW RFC822.SIZE)", "OK").await;
    assert!(
        r[0].starts_with("* 1 FETCH (FLAGS (\\Recent) PREVIEW \"Hi Alice"),
        "{r:?}"
    );
    // PREVIEW never sets \Seen.
    let r = run(&mut c, "FETCH 1 FLAGS", "OK").await;
    assert_eq!(r, ["* 1 FETCH (FLAGS (\\Recent))"]);
    // Bad modifiers and algorithms.
    assert!(tagged(&mut c, "FETCH 1 (PREVIEW (FUZZY))")
        .await
        .starts_with("t BAD"));
    assert!(tagged(&mut c, "FETCH 1 (SNIPPET (SMART))")
        .await
        .starts_with("t BAD"));
    assert!(tagged(&mut c, "FETCH 1 (PREVIEW (LAZY)")
        .await
        .starts_with("t BAD"));
}

// ---- CREATE-SPECIAL-USE ----

#[tokio::test]
async fn create_with_a_special_use_lists_it_in_every_session() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    let r = run(&mut a, "CREATE \"Old Drafts\" (USE (\\Drafts))", "OK").await;
    assert!(r.is_empty(), "{r:?}");
    run(&mut a, "CREATE Lists/Archive2 (USE (\\Archive))", "OK").await;
    // The other session sees the attribute, with and without SPECIAL-USE
    // selection.
    let r = run(&mut b, "LIST \"\" \"Old Drafts\"", "OK").await;
    assert_eq!(
        r,
        ["* LIST (\\HasNoChildren \\Drafts) \"/\" \"Old Drafts\""]
    );
    let r = run(&mut b, "LIST (SPECIAL-USE) \"\" *", "OK").await;
    assert!(
        r.iter()
            .any(|l| l == "* LIST (\\HasNoChildren \\Archive) \"/\" Lists/Archive2"),
        "{r:?}"
    );
    // The parent made on the way has none.
    let r = run(&mut b, "LIST \"\" Lists", "OK").await;
    assert_eq!(r, ["* LIST (\\HasChildren) \"/\" Lists"]);
    // RENAME keeps it.
    run(&mut b, "RENAME \"Old Drafts\" Drafts2", "OK").await;
    let r = run(&mut a, "LIST \"\" Drafts2", "OK").await;
    assert_eq!(r, ["* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts2"]);
    // USE () is a plain CREATE.
    run(&mut a, "CREATE Plain (USE ())", "OK").await;
    let r = run(&mut a, "LIST \"\" Plain", "OK").await;
    assert_eq!(r, ["* LIST (\\HasNoChildren) \"/\" Plain"]);
}

#[tokio::test]
async fn create_with_an_unknown_special_use_creates_nothing() {
    let (_server, imap) = start().await;
    let mut c = imap.login(ALICE).await;
    for (command, code) in [
        ("CREATE X1 (USE (\\Whatever))", "t NO [USEATTR]"),
        // Virtual mailboxes are not kept.
        ("CREATE X2 (USE (\\All))", "t NO [USEATTR]"),
        ("CREATE X3 (USE (\\Flagged))", "t NO [USEATTR]"),
        ("CREATE X4 (USE (\\Sent \\Drafts))", "t NO [USEATTR]"),
        ("CREATE X5 (USE (Sent))", "t BAD"),
        ("CREATE X6 (SIZE 5)", "t BAD"),
        ("CREATE X7 (USE (\\Sent)", "t BAD"),
    ] {
        let reply = tagged(&mut c, command).await;
        assert!(reply.starts_with(code), "{command}: {reply}");
    }
    let r = run(&mut c, "LIST \"\" X*", "OK").await;
    assert!(r.is_empty(), "{r:?}");
    // An existing name stays what it was.
    let reply = tagged(&mut c, "CREATE Sent (USE (\\Trash))").await;
    assert!(reply.starts_with("t NO [ALREADYEXISTS]"), "{reply}");
    let r = run(&mut c, "LIST \"\" Sent", "OK").await;
    assert_eq!(r, ["* LIST (\\HasNoChildren \\Sent) \"/\" Sent"]);
}

// ---- METADATA ----

#[tokio::test]
async fn metadata_set_in_one_session_is_seen_in_another() {
    let (_server, imap) = start_with(|c| {
        c.imap.admin_contact = Some("mailto:postmaster@example.org".into());
    })
    .await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    // Server entries (METADATA-SERVER): the admin from the config.
    let r = run(&mut b, "GETMETADATA \"\" /shared/admin", "OK").await;
    assert_eq!(
        r,
        ["* METADATA \"\" (/shared/admin \"mailto:postmaster@example.org\")"]
    );
    run(
        &mut a,
        "SETMETADATA \"\" (/shared/comment \"Postern test server\")",
        "OK",
    )
    .await;
    // In the order asked.
    let r = run(
        &mut b,
        "GETMETADATA \"\" (/shared/comment /shared/admin)",
        "OK",
    )
    .await;
    assert_eq!(
        r,
        ["* METADATA \"\" (/shared/comment \"Postern test server\" /shared/admin \"mailto:postmaster@example.org\")"]
    );
    // Per mailbox, private and shared, a literal value, case-insensitive
    // names.
    run(
        &mut a,
        "SETMETADATA INBOX (/private/comment {8+}\r\nline\r\nok /Shared/Comment \"for all\")",
        "OK",
    )
    .await;
    let r = run(
        &mut b,
        "GETMETADATA inbox (/private/comment /shared/comment /shared/missing)",
        "OK",
    )
    .await;
    assert_eq!(
        r,
        ["* METADATA INBOX (/private/comment {8}\r\nline\r\nok /shared/comment \"for all\" /shared/missing NIL)"]
    );
    // Options before or after the mailbox; DEPTH and MAXSIZE.
    run(
        &mut a,
        "SETMETADATA Drafts (/private/a \"1\" /private/a/b \"22\" /private/a/b/c \"333\" /private/ab \"x\")",
        "OK",
    )
    .await;
    let r = run(&mut b, "GETMETADATA (DEPTH 1) Drafts /private/a", "OK").await;
    assert_eq!(
        r,
        ["* METADATA Drafts (/private/a \"1\" /private/a/b \"22\")"]
    );
    let r = run(
        &mut b,
        "GETMETADATA Drafts (DEPTH infinity) /private/a",
        "OK",
    )
    .await;
    assert_eq!(
        r,
        ["* METADATA Drafts (/private/a \"1\" /private/a/b \"22\" /private/a/b/c \"333\")"]
    );
    let r = c_get_long(
        &mut b,
        "GETMETADATA (MAXSIZE 2 DEPTH infinity) Drafts /private",
    )
    .await;
    assert_eq!(
        r.0,
        ["* METADATA Drafts (/private/a \"1\" /private/a/b \"22\" /private/ab \"x\")"]
    );
    // The longest left out: /private/specialuse, "\\Drafts".
    assert!(r.1.starts_with("t OK [METADATA LONGENTRIES 7]"), "{}", r.1);
    // NIL removes.
    run(&mut a, "SETMETADATA Drafts (/private/a NIL)", "OK").await;
    let r = run(&mut b, "GETMETADATA Drafts /private/a", "OK").await;
    assert_eq!(r, ["* METADATA Drafts (/private/a NIL)"]);
    // RENAME takes the entries along; DELETE drops them.
    run(&mut a, "RENAME Drafts Drafts2", "OK").await;
    let r = run(&mut b, "GETMETADATA Drafts2 /private/ab", "OK").await;
    assert_eq!(r, ["* METADATA Drafts2 (/private/ab \"x\")"]);
    run(&mut a, "DELETE Drafts2", "OK").await;
    run(&mut a, "CREATE Drafts2", "OK").await;
    let r = run(&mut b, "GETMETADATA Drafts2 /private/ab", "OK").await;
    assert_eq!(r, ["* METADATA Drafts2 (/private/ab NIL)"]);
    // Valid in the selected state too.
    run(&mut b, "SELECT INBOX", "OK").await;
    let r = run(&mut b, "GETMETADATA INBOX /shared/comment", "OK").await;
    assert_eq!(r, ["* METADATA INBOX (/shared/comment \"for all\")"]);
}

/// The untagged responses and the tagged reply.
async fn c_get_long(c: &mut Pop3Client, command: &str) -> (Vec<String>, String) {
    let (r, tagged) = c.responses("t", command).await;
    (r.iter().map(|b| show(b)).collect(), tagged)
}

#[tokio::test]
async fn metadata_limits_and_bad_input() {
    let (server, imap) = start_with(|c| {
        c.imap.max_metadata_size = 10;
        c.imap.max_metadata_entries = 3;
    })
    .await;
    let mut c = imap.login(ALICE).await;
    for (command, reply) in [
        ("SETMETADATA INBOX (/shared/x \"12345678901\")", "t NO [METADATA MAXSIZE 10]"),
        ("SETMETADATA INBOX (/private/a \"1\" /private/b \"2\" /private/c \"3\" /private/d \"4\")", "t NO [METADATA TOOMANY]"),
        ("SETMETADATA INBOX (/public/x \"1\")", "t BAD"),
        ("SETMETADATA INBOX (/shared/ \"1\")", "t BAD"),
        ("SETMETADATA INBOX (/shared//x \"1\")", "t BAD"),
        ("SETMETADATA INBOX (/shared/x/ \"1\")", "t BAD"),
        ("SETMETADATA INBOX (/shared/* \"1\")", "t BAD"),
        ("SETMETADATA INBOX (/shared/x)", "t BAD"),
        ("SETMETADATA INBOX /shared/x \"1\"", "t BAD"),
        ("SETMETADATA Nowhere (/shared/x \"1\")", "t NO [NONEXISTENT]"),
        ("SETMETADATA \"\" (/shared/admin \"me\")", "t NO [CANNOT]"),
        ("GETMETADATA Nowhere /shared/x", "t NO [NONEXISTENT]"),
        ("GETMETADATA INBOX (DEPTH 2) /shared/x", "t BAD"),
        ("GETMETADATA INBOX (MAXSIZE -1) /shared/x", "t BAD"),
        ("GETMETADATA INBOX (COLOR 1) /shared/x", "t BAD"),
        ("GETMETADATA INBOX %", "t BAD"),
        ("GETMETADATA INBOX", "t BAD"),
    ] {
        let got = tagged(&mut c, command).await;
        assert!(got.starts_with(reply), "{command}: {got}");
    }
    // Nothing of the refused writes was kept; three fit.
    let r = run(
        &mut c,
        "GETMETADATA (DEPTH infinity) INBOX (/private /shared)",
        "OK",
    )
    .await;
    assert_eq!(r, ["* METADATA INBOX (/private NIL /shared NIL)"]);
    run(
        &mut c,
        "SETMETADATA INBOX (/private/a \"1\" /private/b \"2\" /shared/c \"3\")",
        "OK",
    )
    .await;
    // A fourth does not, but replacing one does, and so does removing one
    // and adding another at once.
    let got = tagged(&mut c, "SETMETADATA INBOX (/private/d \"4\")").await;
    assert!(got.starts_with("t NO [METADATA TOOMANY]"), "{got}");
    run(&mut c, "SETMETADATA INBOX (/private/a \"one\")", "OK").await;
    run(
        &mut c,
        "SETMETADATA INBOX (/private/b NIL /private/d \"4\")",
        "OK",
    )
    .await;
    // Each mailbox has its own count, and the server its own.
    run(
        &mut c,
        "SETMETADATA Sent (/private/a \"1\" /private/b \"2\" /shared/c \"3\")",
        "OK",
    )
    .await;
    run(
        &mut c,
        "SETMETADATA \"\" (/private/a \"1\" /private/b \"2\" /shared/c \"3\")",
        "OK",
    )
    .await;
    // No /shared/admin configured: NIL.
    let r = run(&mut c, "GETMETADATA \"\" /shared/admin", "OK").await;
    assert_eq!(r, ["* METADATA \"\" (/shared/admin NIL)"]);
    // Not before login.
    let (mut anon, _) = Pop3Client::connect(imap.imap).await;
    let r = anon.imap("t", "GETMETADATA \"\" /shared/admin").await;
    assert!(r.last().unwrap().starts_with("t BAD"), "{r:?}");
    // Another account sees none of alice's.
    server
        .store
        .add_account("bob@localhost", PASSWORD)
        .await
        .unwrap();
    let mut bob = imap.login("bob@localhost").await;
    let r = run(&mut bob, "GETMETADATA \"\" /shared/c", "OK").await;
    assert_eq!(r, ["* METADATA \"\" (/shared/c NIL)"]);
}

// ---- URLAUTH ----

const BOB: &str = "bob@localhost";

/// The one URL of `* GENURLAUTH "url"`.
async fn genurlauth(c: &mut Pop3Client, url: &str) -> String {
    let r = run(c, &format!("GENURLAUTH \"{url}\" INTERNAL"), "OK").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let quoted = r[0]
        .strip_prefix("* GENURLAUTH \"")
        .and_then(|u| u.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{r:?}"));
    let (rump, token) = quoted.rsplit_once(":INTERNAL:").unwrap();
    assert_eq!(rump, url);
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    quoted.to_string()
}

/// What `URLFETCH url` gives: the content, or None for NIL.
async fn urlfetch(c: &mut Pop3Client, url: &str) -> Option<String> {
    let r = run(c, &format!("URLFETCH \"{url}\""), "OK").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let rest = r[0]
        .strip_prefix(&format!("* URLFETCH \"{url}\" "))
        .unwrap_or_else(|| panic!("{r:?}"));
    if rest == "NIL" {
        return None;
    }
    if let Some(q) = rest.strip_prefix('"') {
        return Some(q.strip_suffix('"').unwrap().to_string());
    }
    // {n}\r\n and the bytes.
    let (_, bytes) = rest.split_once("}\r\n").unwrap_or_else(|| panic!("{rest}"));
    Some(bytes.to_string())
}

fn uid_validity(select: &[String]) -> u32 {
    select
        .iter()
        .find_map(|l| l.strip_prefix("* OK [UIDVALIDITY "))
        .and_then(|l| l.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{select:?}"))
}

#[tokio::test]
async fn a_url_authorized_in_one_session_is_fetched_in_another() {
    let (server, imap) = start_with(|c| {
        c.imap.urlauth_submit_user = Some("submit@localhost".into());
    })
    .await;
    server
        .send_messages(ALICE, &[text_message("shared", "The body text.\r\n")])
        .await;
    server.wait_for_inbox(ALICE, 1).await;
    server.store.add_account(BOB, PASSWORD).await.unwrap();
    server
        .store
        .add_account("submit@localhost", PASSWORD)
        .await
        .unwrap();
    let mut alice = imap.login(ALICE).await;
    let mut bob = imap.login(BOB).await;
    let mut submit = imap.login("submit@localhost").await;
    let validity = uid_validity(&run(&mut alice, "EXAMINE INBOX", "OK").await);
    let base = format!("imap://alice%40localhost@localhost/INBOX;UIDVALIDITY={validity}/;UID=1");

    // authuser: any logged-in user; the whole message, a section, a range.
    let whole = genurlauth(&mut alice, &format!("{base};URLAUTH=authuser")).await;
    let raw = urlfetch(&mut bob, &whole).await.unwrap();
    assert!(raw.contains("Subject: shared"), "{raw}");
    assert!(raw.ends_with("The body text.\r\n"), "{raw}");
    let text = genurlauth(
        &mut alice,
        &format!("{base}/;SECTION=TEXT;URLAUTH=authuser"),
    )
    .await;
    assert_eq!(
        urlfetch(&mut bob, &text).await.as_deref(),
        Some("The body text.\r\n")
    );
    let part = genurlauth(
        &mut alice,
        &format!("{base}/;SECTION=TEXT/;PARTIAL=4.4;URLAUTH=anonymous"),
    )
    .await;
    assert_eq!(urlfetch(&mut bob, &part).await.as_deref(), Some("body"));

    // user+bob: bob only.
    let for_bob = genurlauth(
        &mut alice,
        &format!("{base}/;SECTION=TEXT;URLAUTH=user+bob%40localhost"),
    )
    .await;
    assert!(urlfetch(&mut bob, &for_bob).await.is_some());
    assert_eq!(urlfetch(&mut alice, &for_bob).await, None);
    // submit+alice: the configured submission account only.
    let for_submit = genurlauth(
        &mut alice,
        &format!("{base}/;SECTION=TEXT;URLAUTH=submit+alice%40localhost"),
    )
    .await;
    assert_eq!(urlfetch(&mut bob, &for_submit).await, None);
    assert!(urlfetch(&mut submit, &for_submit).await.is_some());

    // Tampered: another token, another message, another access, expired.
    let mut forged = text.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(urlfetch(&mut bob, &forged).await, None);
    assert_eq!(
        urlfetch(&mut bob, &text.replace(";UID=1/", ";UID=2/")).await,
        None
    );
    assert_eq!(
        urlfetch(&mut bob, &text.replace("SECTION=TEXT", "SECTION=HEADER")).await,
        None
    );
    assert_eq!(
        urlfetch(
            &mut bob,
            &for_bob.replace("user+bob%40localhost", "authuser")
        )
        .await,
        None
    );
    let stale = genurlauth(
        &mut alice,
        &format!("{base};EXPIRE=2020-01-01T00:00:00Z;URLAUTH=authuser"),
    )
    .await;
    assert_eq!(urlfetch(&mut bob, &stale).await, None);
    let fresh = genurlauth(
        &mut alice,
        &format!("{base}/;SECTION=TEXT;EXPIRE=2999-01-01T00:00:00Z;URLAUTH=authuser"),
    )
    .await;
    assert!(urlfetch(&mut bob, &fresh).await.is_some());
    // Without a token, or not a URL at all.
    assert_eq!(
        urlfetch(&mut bob, &format!("{base};URLAUTH=authuser")).await,
        None
    );
    assert_eq!(urlfetch(&mut bob, &base).await, None);
    assert_eq!(urlfetch(&mut bob, "nonsense").await, None);

    // Several URLs at once: one answer each.
    let r = run(&mut bob, &format!("URLFETCH \"{part}\" \"{forged}\""), "OK").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].ends_with(" \"body\""), "{r:?}");
    assert!(r[1].ends_with(" NIL"), "{r:?}");

    // CATENATE in bob's own mailbox from alice's authorized URL.
    let reply = tagged(
        &mut bob,
        &format!("APPEND Drafts CATENATE (TEXT {{11+}}\r\nSubject: x\n URL \"{text}\")"),
    )
    .await;
    assert!(reply.starts_with("t OK [APPENDUID"), "{reply}");
    run(&mut bob, "SELECT Drafts", "OK").await;
    let r = run(&mut bob, "FETCH 1 BODY.PEEK[]", "OK").await;
    assert!(r[0].ends_with("Subject: x\nThe body text.\r\n)"), "{r:?}");

    // RESETKEY voids what was authorized; new URLs work again.
    run(&mut alice, "RESETKEY INBOX INTERNAL", "OK").await;
    assert_eq!(urlfetch(&mut bob, &whole).await, None);
    let again = genurlauth(
        &mut alice,
        &format!("{base}/;SECTION=TEXT;URLAUTH=authuser"),
    )
    .await;
    assert_ne!(again, text);
    assert!(urlfetch(&mut bob, &again).await.is_some());
    run(&mut alice, "RESETKEY", "OK").await;
    assert_eq!(urlfetch(&mut bob, &again).await, None);
}

#[tokio::test]
async fn urlauth_bad_input() {
    let (server, imap) = start().await;
    server.store.add_account(BOB, PASSWORD).await.unwrap();
    let mut c = imap.login(ALICE).await;
    for (command, reply) in [
        // Relative, another user's, no URLAUTH, already authorized.
        ("GENURLAUTH \"/INBOX/;UID=1;URLAUTH=authuser\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://bob%40localhost@localhost/INBOX/;UID=1;URLAUTH=authuser\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/INBOX/;UID=1\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/INBOX/;UID=1;URLAUTH=authuser:INTERNAL:00\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/INBOX/;UID=1;URLAUTH=everyone\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/Nowhere/;UID=1;URLAUTH=authuser\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/INBOX;UIDVALIDITY=1/;UID=1;URLAUTH=authuser\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/INBOX/;UID=1;EXPIRE=soon;URLAUTH=authuser\" INTERNAL", "t NO [BADURL"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/INBOX/;UID=1;URLAUTH=authuser\" XYZZY", "t NO"),
        ("GENURLAUTH \"imap://alice%40localhost@localhost/INBOX/;UID=1;URLAUTH=authuser\"", "t BAD"),
        ("GENURLAUTH", "t BAD"),
        ("URLFETCH", "t BAD"),
        ("RESETKEY Nowhere", "t NO [NONEXISTENT]"),
        ("RESETKEY INBOX XYZZY", "t NO"),
    ] {
        let got = tagged(&mut c, command).await;
        assert!(got.starts_with(reply), "{command}: {got}");
    }
    // Not before login.
    let (mut anon, _) = Pop3Client::connect(imap.imap).await;
    let r = anon.imap("t", "URLFETCH \"imap://alice%40localhost@localhost/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:00\"").await;
    assert!(r.last().unwrap().starts_with("t BAD"), "{r:?}");
}

#[tokio::test]
async fn urlfetch_of_a_large_message_and_an_anonymous_url() {
    let (server, imap) = start().await;
    let body = "0123456789abcdef\r\n".repeat(8000);
    server
        .send_messages(ALICE, &[text_message("big", &body)])
        .await;
    server.wait_for_inbox(ALICE, 1).await;
    server.store.add_account(BOB, PASSWORD).await.unwrap();
    let mut alice = imap.login(ALICE).await;
    let mut bob = imap.login(BOB).await;
    // imap://user@host/ with the host as the domain, as imaptest writes it.
    let url = genurlauth(
        &mut alice,
        "imap://alice@localhost/INBOX/;UID=1/;SECTION=TEXT;URLAUTH=anonymous",
    )
    .await;
    // Bob, selected somewhere, fetches it twice in one command.
    run(&mut bob, "SELECT INBOX", "OK").await;
    let r = run(&mut bob, &format!("URLFETCH \"{url}\" \"{url}\""), "OK").await;
    assert_eq!(r.len(), 2);
    for line in &r {
        let (head, content) = line.split_once("}\r\n").unwrap();
        assert_eq!(head, format!("* URLFETCH \"{url}\" {{{}", body.len()));
        assert_eq!(content, body);
    }
}

// ---- URLAUTH=BINARY (RFC 5524) ----

/// A message whose parts need decoding: base64 (twice, once with NUL
/// octets), quoted-printable with 8-bit text, an encoding nobody knows,
/// and a message/rfc822 part.
fn encoded_parts() -> Vec<u8> {
    concat!(
        "From: bob@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n",
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
        "--b\r\nContent-Type: text/x-myown; charset=us-ascii\r\n",
        "Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8gd29y\r\nbGQ=\r\n\r\n",
        "--b\r\nContent-Type: application/octet-stream\r\n",
        "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n",
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n",
        "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nau lait\r\nsecond line\r\n\r\n",
        "--b\r\nContent-Type: text/plain\r\n",
        "Content-Transfer-Encoding: x-unprintable\r\n\r\nnothing to see\r\n\r\n",
        "--b\r\nContent-Type: message/rfc822\r\n\r\n",
        "Subject: inner\r\n\r\ninner text\r\n\r\n",
        "--b--\r\n"
    )
    .as_bytes()
    .to_vec()
}

/// The one `* URLFETCH` line of `command`, after `* URLFETCH "url" `.
async fn urlfetch_ext(c: &mut Pop3Client, url: &str, params: &str) -> String {
    let r = run(c, &format!("URLFETCH (\"{url}\" {params})"), "OK").await;
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].strip_prefix(&format!("* URLFETCH \"{url}\" "))
        .unwrap_or_else(|| panic!("{r:?}"))
        .to_string()
}

#[tokio::test]
async fn urlfetch_binary_decodes_parts_for_another_user() {
    let (server, imap) = start().await;
    server.send_messages(ALICE, &[encoded_parts()]).await;
    server.wait_for_inbox(ALICE, 1).await;
    server.store.add_account(BOB, PASSWORD).await.unwrap();
    let mut alice = imap.login(ALICE).await;
    let mut bob = imap.login(BOB).await;
    let caps = run(&mut bob, "CAPABILITY", "OK").await;
    assert!(caps[0].contains(" URLAUTH=BINARY"), "{caps:?}");
    let section = |n: &str| {
        format!("imap://alice%40localhost@localhost/INBOX/;UID=1/;SECTION={n};URLAUTH=user+bob%40localhost")
    };
    let mut urls = Vec::new();
    for n in ["1", "2", "3", "4", "5"] {
        urls.push(genurlauth(&mut alice, &section(n)).await);
    }
    // Alice is busy in her INBOX meanwhile; bob is selected elsewhere.
    run(&mut alice, "SELECT INBOX", "OK").await;
    run(&mut bob, "SELECT INBOX", "OK").await;

    // base64: decoded; the structure as stored, or as sent with BINARY.
    assert_eq!(
        urlfetch_ext(&mut bob, &urls[0], "BINARY").await,
        "(BINARY {11}\r\nhello world)"
    );
    assert_eq!(
        urlfetch_ext(&mut bob, &urls[0], "BODYPARTSTRUCTURE").await,
        "(BODYPARTSTRUCTURE (\"text\" \"x-myown\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 22 3 NIL NIL NIL NIL))"
    );
    assert_eq!(
        urlfetch_ext(&mut bob, &urls[0], "BINARY BODYPARTSTRUCTURE").await,
        "(BODYPARTSTRUCTURE (\"text\" \"x-myown\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL)) (BINARY {11}\r\nhello world)"
    );
    // BODY, and no parameter at all, give the part as stored.
    let stored = "(BODY {22}\r\naGVs\r\nbG8gd29y\r\nbGQ=\r\n)";
    assert_eq!(urlfetch_ext(&mut bob, &urls[0], "BODY").await, stored);
    let r = run(&mut bob, &format!("URLFETCH (\"{}\")", urls[0]), "OK").await;
    assert!(r[0].ends_with(stored), "{r:?}");
    // NUL octets: a literal8 and the binary domain.
    assert_eq!(
        urlfetch_ext(&mut bob, &urls[1], "BODYPARTSTRUCTURE BINARY").await,
        "(BODYPARTSTRUCTURE (\"application\" \"octet-stream\" NIL NIL NIL \"binary\" 4 NIL NIL NIL NIL)) (BINARY ~{4}\r\n\0\u{1}\u{2}\u{3})"
    );
    // quoted-printable with UTF-8: the 8bit domain, its lines counted.
    assert_eq!(
        urlfetch_ext(&mut bob, &urls[2], "BINARY BODYPARTSTRUCTURE").await,
        "(BODYPARTSTRUCTURE (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 28 2 NIL NIL NIL NIL)) (BINARY {28}\r\ncafé au lait\r\nsecond line\r\n)"
    );
    // An encoding this server cannot undo: NIL, the structure as it is.
    assert_eq!(
        urlfetch_ext(&mut bob, &urls[3], "BODYPARTSTRUCTURE BINARY").await,
        "(BODYPARTSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"x-unprintable\" 16 1 NIL NIL NIL NIL)) (BINARY NIL)"
    );
    // A message/rfc822 part goes out as it is.
    let inner = urlfetch_ext(&mut bob, &urls[4], "BINARY BODYPARTSTRUCTURE").await;
    assert!(
        inner.starts_with("(BODYPARTSTRUCTURE (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 30 ("),
        "{inner}"
    );
    assert!(
        inner.ends_with(") (BINARY {30}\r\nSubject: inner\r\n\r\ninner text\r\n)"),
        "{inner}"
    );

    // Simple and extended in one command; a wrong token is NIL either way.
    let mut forged = urls[0].clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let r = run(
        &mut bob,
        &format!(
            "URLFETCH \"{}\" (\"{}\" BINARY) (\"{forged}\" BINARY)",
            urls[0], urls[0]
        ),
        "OK",
    )
    .await;
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(
        r[0].ends_with("\" {22}\r\naGVs\r\nbG8gd29y\r\nbGQ=\r\n"),
        "{r:?}"
    );
    assert!(r[1].ends_with("\" (BINARY {11}\r\nhello world)"), "{r:?}");
    assert_eq!(r[2], format!("* URLFETCH \"{forged}\" NIL"));
    // Alice may not: the URLs are bob's.
    assert_eq!(urlfetch_ext(&mut alice, &urls[0], "BINARY").await, "NIL");
    // ;PARTIAL= cuts the decoded octets.
    let partial = genurlauth(
        &mut alice,
        "imap://alice%40localhost@localhost/INBOX/;UID=1/;SECTION=1/;PARTIAL=6.3;URLAUTH=authuser",
    )
    .await;
    assert_eq!(
        urlfetch_ext(&mut bob, &partial, "BINARY").await,
        "(BINARY {3}\r\nwor)"
    );
    // RESETKEY voids them for the extended form too.
    run(&mut alice, "RESETKEY INBOX", "OK").await;
    assert_eq!(urlfetch_ext(&mut bob, &urls[0], "BINARY").await, "NIL");
}

#[tokio::test]
async fn urlfetch_binary_bad_input() {
    let (_server, imap) = start().await;
    let mut c = imap.login(ALICE).await;
    let url = "\"imap://alice%40localhost@localhost/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:00\"";
    for args in [
        format!("({url} BODY BINARY)"),
        format!("({url} BINARY BODY)"),
        format!("({url} XYZZY)"),
        format!("({url} (BINARY))"),
        format!("({url} BINARY"),
        format!("({url}  BINARY)"),
        "()".to_string(),
        "(BINARY)x".to_string(),
    ] {
        let got = tagged(&mut c, &format!("URLFETCH {args}")).await;
        assert!(got.starts_with("t BAD"), "{args}: {got}");
    }
    // The session goes on.
    let got = tagged(&mut c, &format!("URLFETCH ({url} BINARY)")).await;
    assert!(got.starts_with("t OK"), "{got}");
}

/// RFC 6154 4: `/private/specialuse` is what LIST shows.
#[tokio::test]
async fn special_use_as_a_metadata_entry() {
    let (_server, imap) = start().await;
    let mut a = imap.login(ALICE).await;
    let mut b = imap.login(ALICE).await;
    let r = run(&mut a, "GETMETADATA Sent /private/specialuse", "OK").await;
    assert_eq!(r, ["* METADATA Sent (/private/specialuse \"\\\\Sent\")"]);
    let r = run(&mut a, "GETMETADATA (DEPTH infinity) INBOX /private", "OK").await;
    assert_eq!(r, ["* METADATA INBOX (/private NIL)"]);
    run(&mut a, "CREATE Outbox", "OK").await;
    run(
        &mut a,
        "SETMETADATA Outbox (/private/specialuse \"\\\\Sent\" /private/comment \"x\")",
        "OK",
    )
    .await;
    let r = run(&mut b, "LIST \"\" Outbox", "OK").await;
    assert_eq!(r, ["* LIST (\\HasNoChildren \\Sent) \"/\" Outbox"]);
    let r = run(&mut b, "GETMETADATA (DEPTH 1) Outbox /private", "OK").await;
    assert_eq!(
        r,
        ["* METADATA Outbox (/private/comment \"x\" /private/specialuse \"\\\\Sent\")"]
    );
    let got = tagged(
        &mut a,
        "SETMETADATA Outbox (/private/specialuse \"\\\\Flagged\")",
    )
    .await;
    assert!(got.starts_with("t NO [USEATTR]"), "{got}");
    run(&mut a, "SETMETADATA Outbox (/private/specialuse NIL)", "OK").await;
    let r = run(&mut b, "LIST \"\" Outbox", "OK").await;
    assert_eq!(r, ["* LIST (\\HasNoChildren) \"/\" Outbox"]);
}
