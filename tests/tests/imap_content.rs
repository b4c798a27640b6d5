//! IMAP, black-box: message content in and out (issue 14, message
//! content): BINARY (RFC 3516) against the original bytes, MULTIAPPEND
//! (RFC 3502) all or nothing, CATENATE (RFC 4469) with URLs into another
//! mailbox, APPENDLIMIT (RFC 7889), STATUS SIZE (RFC 8438), REPLACE
//! (RFC 8508) as a second session sees it, OBJECTID (RFC 8474) and
//! SAVEDATE (RFC 8514).

use postern_tests::*;

const ALICE: &str = "alice@localhost";

/// A logged-in session on an imapd beside `server`.
async fn logged_in(imap: &ImapServer) -> Pop3Client {
    let (mut c, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    let r = c.imap("L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert!(r.last().unwrap().starts_with("L OK"), "{r:?}");
    c
}

/// `tag APPEND mailbox` + `rest` (which holds its own LITERAL+ literals);
/// returns the tagged reply.
async fn append_raw(c: &mut Pop3Client, tag: &str, head: &str, rest: &[u8]) -> String {
    let mut cmd = format!("{tag} {head}").into_bytes();
    cmd.extend_from_slice(rest);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    c.until_tag(tag).await.pop().unwrap()
}

/// `{n+}\r\n` and the bytes, as one LITERAL+ literal (`~` first: literal8).
fn lit(bytes: &[u8], eight: bool) -> Vec<u8> {
    let mut out = format!("{}{{{}+}}\r\n", if eight { "~" } else { "" }, bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

/// The one untagged response to `command`, which must end OK.
async fn one(c: &mut Pop3Client, command: &str) -> Vec<u8> {
    let (r, tagged) = c.responses("f", command).await;
    assert!(tagged.starts_with("f OK"), "{command}: {tagged}");
    assert_eq!(r.len(), 1, "{command}: {r:?}");
    r.into_iter().next().unwrap()
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every byte value, NUL first: what a base64 part of a real attachment
/// may carry.
fn all_octets() -> Vec<u8> {
    (0..=255u8).collect()
}

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, &b)| n | u32::from(b) << (16 - 8 * k));
        for k in 0..4 {
            out.push(if k <= c.len() {
                A[(n >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn attachment_message() -> Vec<u8> {
    format!(
        "From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
gr=C3=BC=C3=9Fe, a long line that goes =\r\non and on=20\r\nnext=3Dline\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n\
--b--\r\n",
        base64(&all_octets())
    )
    .into_bytes()
}

/// BINARY[1] of a base64 attachment is its original octets, NUL and
/// all, as a literal8; BINARY[2] of a quoted-printable part is its text;
/// BINARY.SIZE says how long each is; BODY[1] is still the base64.
#[tokio::test]
async fn binary_fetch_undoes_base64_and_quoted_printable() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut c = logged_in(&imap).await;
    let caps = c.imap("C", "CAPABILITY").await;
    assert!(caps[0].contains(" BINARY"), "{caps:?}");
    let raw = attachment_message();
    let r = append_raw(&mut c, "A", "APPEND INBOX ", &lit(&raw, false)).await;
    assert!(r.starts_with("A OK"), "{r}");
    let r = c.imap("S", "SELECT INBOX").await;
    assert!(r.last().unwrap().starts_with("S OK"), "{r:?}");

    let mut want = b"* 1 FETCH (BINARY[1] ~{256}\r\n".to_vec();
    want.extend(all_octets());
    want.push(b')');
    assert_eq!(
        show(&one(&mut c, "FETCH 1 BINARY.PEEK[1]").await),
        show(&want)
    );
    assert_eq!(one(&mut c, "FETCH 1 BINARY.PEEK[1]").await, want);
    // `=20` is a space that stays; white space before a line break would not.
    let text = "grüße, a long line that goes on and on \r\nnext=line";
    assert_eq!(
        show(
            &one(
                &mut c,
                "FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.PEEK[2])"
            )
            .await
        ),
        format!(
            "* 1 FETCH (BINARY.SIZE[1] 256 BINARY.SIZE[2] {n} BINARY[2] {{{n}}}\r\n{text})",
            n = text.len()
        )
    );
    // A range of the decoded octets; no NUL in it, so a plain literal.
    assert_eq!(
        one(&mut c, "FETCH 1 BINARY.PEEK[1]<65.3>").await,
        b"* 1 FETCH (BINARY[1]<65> {3}\r\nABC)"
    );
    let body = one(&mut c, "FETCH 1 BODY.PEEK[1]").await;
    assert!(
        show(&body).starts_with("* 1 FETCH (BODY[1] {"),
        "{}",
        show(&body)
    );
    assert!(!body.contains(&0));
    // An encoding nobody can undo.
    let (_, tagged) = c.responses("u", "FETCH 1 BINARY.PEEK[3]").await;
    assert!(tagged.starts_with("u NO [UNKNOWN-CTE]"), "{tagged}");
    // BINARY without PEEK sets \Seen, as BODY[] does.
    let r = show(&one(&mut c, "FETCH 1 BINARY[2]").await);
    assert!(r.contains("\\Seen"), "{r}");
}

/// A message APPENDed as a literal8 with NUL in its body: its binary
/// part is kept base64-encoded, so BODY[] never carries a NUL, and
/// BINARY[1] gives back exactly what was sent.
#[tokio::test]
async fn literal8_append_keeps_binary_parts_exact() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut c = logged_in(&imap).await;
    let body = b"\0-\xe4\n\r\n\0\0\xff";
    let mut raw = b"From: a@example.com\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(body);
    let r = append_raw(&mut c, "A", "APPEND INBOX ", &lit(&raw, true)).await;
    assert!(r.starts_with("A OK [APPENDUID "), "{r}");
    c.imap("S", "SELECT INBOX").await;
    let whole = one(&mut c, "FETCH 1 BODY.PEEK[]").await;
    assert!(!whole.contains(&0), "{}", show(&whole));
    assert!(show(&whole).contains("Content-Transfer-Encoding: base64"));
    let mut want = format!(
        "* 1 FETCH (BINARY.SIZE[1] {} BINARY[1] ~{{{}}}\r\n",
        body.len(),
        body.len()
    )
    .into_bytes();
    want.extend_from_slice(body);
    want.push(b')');
    assert_eq!(
        one(&mut c, "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])").await,
        want
    );
}

/// MULTIAPPEND: two messages in one APPEND get consecutive UIDs in one
/// APPENDUID; when one of three is bad (empty), none is appended.
#[tokio::test]
async fn multiappend_is_all_or_nothing() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut c = logged_in(&imap).await;
    let (m1, m2) = (message("one", "1"), message("two", "2"));
    let rest = [lit(&m1, false), b" (\\Flagged) ".to_vec(), lit(&m2, false)].concat();
    let r = append_raw(&mut c, "A", "APPEND INBOX ", &rest).await;
    let alice = server.account(ALICE).await;
    let index = server.store.mailbox_index(alice, "INBOX").await.unwrap();
    let validity = index.uid_validity;
    assert_eq!(
        r,
        format!("A OK [APPENDUID {validity} 1:2] APPEND completed")
    );

    let rest = [
        lit(&message("three", "3"), false),
        b" ".to_vec(),
        lit(b"", false),
        b" ".to_vec(),
        lit(&message("four", "4"), false),
    ]
    .concat();
    let r = append_raw(&mut c, "B", "APPEND INBOX ", &rest).await;
    assert!(r.starts_with("B NO"), "{r}");
    let status = show(&one(&mut c, "STATUS INBOX (MESSAGES UIDNEXT)").await);
    assert_eq!(status, "* STATUS INBOX (MESSAGES 2 UIDNEXT 3)");
    c.imap("S", "SELECT INBOX").await;
    let r = show(&one(&mut c, "FETCH 2 (FLAGS BODY.PEEK[])").await);
    assert!(r.contains("\\Flagged") && r.contains("Subject: two"), "{r}");
}

/// CATENATE: a new message from a text part and the header and body of
/// a message in another mailbox, named by IMAP URLs; a URL to a message
/// that is not there, or to another user's, is `[BADURL]`.
#[tokio::test]
async fn catenate_joins_text_and_urls_into_another_mailbox() {
    let server = Server::start().await;
    server
        .store
        .add_account("bob@localhost", PASSWORD)
        .await
        .unwrap();
    let bob = server.account("bob@localhost").await;
    server
        .store
        .append(bob, "INBOX", message("bob's", "secret"), &[], 0)
        .await
        .unwrap();
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut c = logged_in(&imap).await;
    let r = c.imap("C", "CREATE \"Old Mail\"").await;
    assert!(r.last().unwrap().starts_with("C OK"), "{r:?}");
    let source = b"From: a@example.com\r\nSubject: original\r\n\r\nThe body.\r\n";
    let r = append_raw(&mut c, "A", "APPEND \"Old Mail\" ", &lit(source, false)).await;
    assert!(r.starts_with("A OK"), "{r}");

    let rest = [
        b"CATENATE (URL \"/Old%20Mail/;UID=1/;SECTION=HEADER\" TEXT ".to_vec(),
        lit(b"New first line.\r\n", false),
        b" URL \"/Old%20Mail/;UID=1/;SECTION=TEXT\")".to_vec(),
    ]
    .concat();
    let r = append_raw(&mut c, "B", "APPEND INBOX ", &rest).await;
    assert!(r.starts_with("B OK [APPENDUID "), "{r}");
    c.imap("S", "SELECT INBOX").await;
    assert_eq!(
        show(&one(&mut c, "FETCH 1 BODY.PEEK[]").await),
        "* 1 FETCH (BODY[] {70}\r\nFrom: a@example.com\r\nSubject: original\r\n\r\nNew first line.\r\nThe body.\r\n)"
    );

    for url in [
        "/Old%20Mail/;UID=9",
        "/Old%20Mail;UIDVALIDITY=1/;UID=1",
        "/Nope/;UID=1",
        "imap://bob@localhost@127.0.0.1/INBOX/;UID=1",
    ] {
        let r = append_raw(
            &mut c,
            "D",
            "APPEND INBOX ",
            format!("CATENATE (URL \"{url}\")").as_bytes(),
        )
        .await;
        assert_eq!(r, format!("D NO [BADURL {url}] Invalid URL"));
    }
    // The mailbox missing comes first.
    let r = append_raw(
        &mut c,
        "E",
        "APPEND Nope ",
        b"CATENATE (URL \"/Nope/;UID=1\")",
    )
    .await;
    assert!(r.starts_with("E NO [TRYCREATE]"), "{r}");
    let status = show(&one(&mut c, "STATUS INBOX (MESSAGES)").await);
    assert_eq!(status, "* STATUS INBOX (MESSAGES 1)");
}

/// APPENDLIMIT: advertised with the configured size, a larger literal is
/// refused before it is sent, and so is a CATENATE that grows past it;
/// STATUS tells the limit and the mailbox's size.
#[tokio::test]
async fn appendlimit_is_advertised_and_enforced() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |c| c.imap.max_literal_size = 1000).await;
    let mut c = logged_in(&imap).await;
    let caps = c.imap("C", "CAPABILITY").await;
    assert!(caps[0].contains(" APPENDLIMIT=1000"), "{caps:?}");
    assert!(caps[0].contains(" STATUS=SIZE"), "{caps:?}");
    // A synchronising literal: no `+`, the refusal at once.
    c.send(b"A APPEND INBOX {1001}\r\n").await;
    let r = c.line().await;
    assert!(r.starts_with("A NO [TOOBIG]"), "{r}");
    let small = message("small", "fits");
    let r = append_raw(&mut c, "B", "APPEND INBOX ", &lit(&small, false)).await;
    assert!(r.starts_with("B OK"), "{r}");
    let text = vec![b'x'; 600];
    let rest = [
        b"CATENATE (URL \"/INBOX/;UID=1\" TEXT ".to_vec(),
        lit(&text, false),
        b" TEXT ".to_vec(),
        lit(&text, false),
        b")".to_vec(),
    ]
    .concat();
    let r = append_raw(&mut c, "D", "APPEND INBOX ", &rest).await;
    assert!(r.starts_with("D NO [TOOBIG]"), "{r}");
    assert_eq!(
        show(&one(&mut c, "STATUS INBOX (MESSAGES SIZE APPENDLIMIT)").await),
        format!(
            "* STATUS INBOX (MESSAGES 1 SIZE {} APPENDLIMIT 1000)",
            small.len()
        )
    );
}

/// REPLACE: the new message appended and the old one expunged in one
/// step; a second session on the mailbox sees one EXPUNGE and one new
/// message, never both or neither.
#[tokio::test]
async fn replace_is_seen_by_a_second_session() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut a = logged_in(&imap).await;
    let mut b = logged_in(&imap).await;
    let draft1 = message("draft", "first version");
    let r = append_raw(&mut a, "A", "APPEND Drafts ", &lit(&draft1, false)).await;
    assert!(r.starts_with("A OK"), "{r}");
    for c in [&mut a, &mut b] {
        let r = c.imap("S", "SELECT Drafts").await;
        assert!(r.iter().any(|l| l == "* 1 EXISTS"), "{r:?}");
    }
    let draft2 = message("draft", "second version");
    let r = append_raw(
        &mut a,
        "R",
        "UID REPLACE 1 Drafts (\\Draft) ",
        &lit(&draft2, false),
    )
    .await;
    assert!(r.starts_with("R OK"), "{r}");
    let r = b.imap("N", "NOOP").await;
    assert!(r.contains(&"* 1 EXPUNGE".to_string()), "{r:?}");
    assert!(r.contains(&"* 1 EXISTS".to_string()), "{r:?}");
    let r = show(&one(&mut b, "FETCH 1 (UID FLAGS BODY.PEEK[TEXT])").await);
    assert!(r.starts_with("* 1 FETCH (UID 2 FLAGS (\\Draft"), "{r}");
    assert!(r.contains("second version"), "{r}");
    // The replaced UID is gone: replacing it again changes nothing.
    let r = append_raw(&mut b, "X", "UID REPLACE 1 Drafts ", &lit(&draft1, false)).await;
    assert!(r.starts_with("X NO"), "{r}");
    let status = show(&one(&mut a, "STATUS Drafts (MESSAGES)").await);
    assert_eq!(status, "* STATUS Drafts (MESSAGES 1)");
}

/// OBJECTID: a mailbox keeps its MAILBOXID across RENAME (CREATE, SELECT
/// and STATUS agree on it); a copy of a message has the EMAILID of the
/// original, another message another; SEARCH EMAILID finds the message;
/// THREADID is NIL.
#[tokio::test]
async fn object_ids_follow_mailboxes_and_messages() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut c = logged_in(&imap).await;
    let created = c.imap("C", "CREATE Projects").await.pop().unwrap();
    let id = created
        .strip_prefix("C OK [MAILBOXID (")
        .and_then(|r| r.split_once(')'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("{created}"));
    let r = c.imap("R", "RENAME Projects Done").await;
    assert!(r.last().unwrap().starts_with("R OK"), "{r:?}");
    assert_eq!(
        show(&one(&mut c, "STATUS Done (MAILBOXID)").await),
        format!("* STATUS Done (MAILBOXID ({id}))")
    );
    let inbox = show(&one(&mut c, "STATUS INBOX (MAILBOXID)").await);
    assert!(!inbox.contains(&id), "{inbox}");
    for m in [message("one", "1"), message("two", "2")] {
        let r = append_raw(&mut c, "A", "APPEND Done ", &lit(&m, false)).await;
        assert!(r.starts_with("A OK"), "{r}");
    }
    let r = c.imap("S", "SELECT Done").await;
    assert!(
        r.contains(&format!("* OK [MAILBOXID ({id})] Mailbox id")),
        "{r:?}"
    );
    let r = c.imap("Y", "COPY 1 Done").await;
    assert!(r.last().unwrap().starts_with("Y OK"), "{r:?}");
    let (r, tagged) = c.responses("f", "FETCH 1:* (EMAILID THREADID)").await;
    assert!(tagged.starts_with("f OK"), "{tagged}");
    let ids: Vec<String> = r
        .iter()
        .map(|l| {
            let l = show(l);
            let id = l
                .split("EMAILID (")
                .nth(1)
                .and_then(|r| r.split_once(')'))
                .unwrap()
                .0;
            assert!(l.ends_with("THREADID NIL)"), "{l}");
            id.to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 3, "{r:?}");
    assert_eq!(ids[0], ids[2]);
    assert_ne!(ids[0], ids[1]);
    assert!(ids
        .iter()
        .all(|i| i.bytes().all(|b| b.is_ascii_alphanumeric())));
    assert_eq!(
        show(&one(&mut c, &format!("UID SEARCH EMAILID {}", ids[0])).await),
        "* SEARCH 1 3"
    );
    assert_eq!(
        show(&one(&mut c, &format!("SEARCH NOT EMAILID {}", ids[1])).await),
        "* SEARCH 1 3"
    );
    assert_eq!(
        show(&one(&mut c, "SEARCH OR THREADID T1 EMAILID Mnone").await),
        "* SEARCH"
    );
}

/// SAVEDATE: when the message was saved into the mailbox, whatever its
/// internal date says; SEARCH SAVEDON/SAVEDSINCE/SAVEDBEFORE go by it.
#[tokio::test]
async fn save_dates_are_when_messages_arrived() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let mut c = logged_in(&imap).await;
    let old = message("old", "from 2001");
    let r = append_raw(
        &mut c,
        "A",
        "APPEND INBOX \"09-Sep-2001 01:46:40 +0000\" ",
        &lit(&old, false),
    )
    .await;
    assert!(r.starts_with("A OK"), "{r}");
    c.imap("S", "SELECT INBOX").await;
    let r = show(&one(&mut c, "FETCH 1 (INTERNALDATE SAVEDATE)").await);
    let saved = r
        .strip_prefix("* 1 FETCH (INTERNALDATE \"09-Sep-2001 01:46:40 +0000\" SAVEDATE \"")
        .unwrap_or_else(|| panic!("{r}"));
    // The day it was saved: today (as the server's clock has it).
    let today = saved.split(' ').next().unwrap().to_owned();
    assert!(!today.ends_with("2001"), "{r}");
    for (key, want) in [
        (format!("SAVEDON {today}"), "* SEARCH 1"),
        (format!("SAVEDSINCE {today}"), "* SEARCH 1"),
        (format!("SAVEDBEFORE {today}"), "* SEARCH"),
        ("SAVEDON 9-Sep-2001".to_string(), "* SEARCH"),
        ("ON 9-Sep-2001".to_string(), "* SEARCH 1"),
        ("SAVEDATESUPPORTED".to_string(), "* SEARCH 1"),
        (format!("NOT SAVEDON {today}"), "* SEARCH"),
    ] {
        assert_eq!(
            show(&one(&mut c, &format!("SEARCH {key}")).await),
            want,
            "{key}"
        );
    }
}
