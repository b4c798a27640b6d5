//! QUOTA (RFC 9208) black-box: GETQUOTAROOT and GETQUOTA with and
//! without limits, SETQUOTA refused, APPEND (MULTIAPPEND), COPY and
//! REPLACE refused with `[OVERQUOTA]` while MOVE is not, usage after
//! EXPUNGE, STATUS DELETED / DELETED-STORAGE, two sessions appending at
//! once, bad input, and Python's imaplib.

use postern_tests::{imaplib_as_alice, ImapServer, Pop3Client, Server};
use store::QuotaLimit;

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    (server, imap)
}

async fn set_quota(server: &Server, storage_kib: QuotaLimit, messages: QuotaLimit) {
    server
        .store
        .set_quota(ALICE, storage_kib, messages)
        .await
        .expect("set quota");
}

/// A message of exactly `kib` KiB.
fn message_of(subject: &str, kib: usize) -> Vec<u8> {
    let mut raw = format!("Subject: {subject}\r\nFrom: a@example.org\r\n\r\n").into_bytes();
    while raw.len() < kib * 1024 {
        raw.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    raw.truncate(kib * 1024 - 2);
    raw.extend_from_slice(b"\r\n");
    raw
}

/// `APPEND mailbox {n+}` with `raw`, pipelined whole (LITERAL+).
fn append_command(tag: &str, mailbox: &str, raw: &[u8]) -> Vec<u8> {
    let mut cmd = format!("{tag} APPEND {mailbox} {{{}+}}\r\n", raw.len()).into_bytes();
    cmd.extend_from_slice(raw);
    cmd.extend_from_slice(b"\r\n");
    cmd
}

/// APPENDs `raw`; returns the tagged reply.
async fn append(c: &mut Pop3Client, tag: &str, mailbox: &str, raw: &[u8]) -> String {
    c.send(&append_command(tag, mailbox, raw)).await;
    c.until_tag(tag).await.pop().unwrap()
}

fn last(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

#[tokio::test]
async fn without_limits_there_is_no_quota_root() {
    let (_server, imap) = start().await;
    let mut c = imap.login(ALICE).await;
    let r = c.imap("a", "GETQUOTAROOT INBOX").await;
    assert_eq!(r, ["* QUOTAROOT INBOX", "a OK Getquotaroot completed"]);
    let r = c.imap("b", "GETQUOTA \"\"").await;
    assert_eq!(r, ["b NO [NONEXISTENT] Quota root doesn't exist"]);
    let r = c.imap("c", "GETQUOTAROOT Nope").await;
    assert_eq!(r, ["c NO [NONEXISTENT] Mailbox doesn't exist"]);
    let r = c.imap("d", "SETQUOTA \"\" (STORAGE 512)").await;
    assert_eq!(
        r,
        ["d NO [NOPERM] Quota can be changed only by the administrator"]
    );
    // Nothing stops an account without limits.
    let r = append(&mut c, "e", "INBOX", &message_of("free", 4)).await;
    assert!(r.starts_with("e OK [APPENDUID "), "{r}");
}

#[tokio::test]
async fn quota_root_and_usage_with_limits() {
    let (server, imap) = start().await;
    set_quota(&server, QuotaLimit::Set(100), QuotaLimit::Set(10)).await;
    let mut c = imap.login(ALICE).await;
    for (i, kib) in [3, 5].into_iter().enumerate() {
        let r = append(&mut c, &format!("a{i}"), "INBOX", &message_of("m", kib)).await;
        assert!(r.contains(" OK "), "{r}");
    }
    let r = append(&mut c, "a2", "Archive", &message_of("m", 2)).await;
    assert!(r.contains(" OK "), "{r}");
    // Every mailbox counts, and any of them names the one root.
    let r = c.imap("b", "GETQUOTAROOT Archive").await;
    assert_eq!(
        r,
        [
            "* QUOTAROOT Archive \"\"",
            "* QUOTA \"\" (STORAGE 10 100 MESSAGE 3 10)",
            "b OK Getquotaroot completed"
        ]
    );
    let r = c.imap("c", "GETQUOTA \"\"").await;
    assert_eq!(
        r,
        [
            "* QUOTA \"\" (STORAGE 10 100 MESSAGE 3 10)",
            "c OK Getquota completed"
        ]
    );
    let r = c.imap("d", "GETQUOTA \"User quota\"").await;
    assert_eq!(r, ["d NO [NONEXISTENT] Quota root doesn't exist"]);
    let r = c.imap("e", "SETQUOTA \"\" (STORAGE 100000)").await;
    assert_eq!(
        last(&r),
        "e NO [NOPERM] Quota can be changed only by the administrator"
    );

    // Only the resources with a limit are listed.
    set_quota(&server, QuotaLimit::Keep, QuotaLimit::Unlimited).await;
    let r = c.imap("f", "GETQUOTAROOT inbox").await;
    assert_eq!(
        r,
        [
            "* QUOTAROOT INBOX \"\"",
            "* QUOTA \"\" (STORAGE 10 100)",
            "f OK Getquotaroot completed"
        ]
    );
}

#[tokio::test]
async fn over_quota_appends_copies_and_replaces_are_refused_moves_are_not() {
    let (server, imap) = start().await;
    set_quota(&server, QuotaLimit::Set(10), QuotaLimit::Keep).await;
    let mut c = imap.login(ALICE).await;
    let r = append(&mut c, "a", "INBOX", &message_of("six", 6)).await;
    assert!(r.starts_with("a OK "), "{r}");
    let r = append(&mut c, "b", "INBOX", &message_of("five", 5)).await;
    assert_eq!(
        r,
        "b NO [OVERQUOTA] Quota exceeded (mailbox for user is full)"
    );
    // MULTIAPPEND is all or none: the first fits, the second does not.
    let mut cmd = b"c APPEND INBOX ".to_vec();
    for (i, kib) in [2, 3].into_iter().enumerate() {
        let raw = message_of(&format!("multi {i}"), kib);
        if i > 0 {
            cmd.push(b' ');
        }
        cmd.extend_from_slice(format!("{{{}+}}\r\n", raw.len()).as_bytes());
        cmd.extend_from_slice(&raw);
    }
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    let r = c.until_tag("c").await;
    assert_eq!(
        last(&r),
        "c NO [OVERQUOTA] Quota exceeded (mailbox for user is full)"
    );
    let r = c.imap("d", "STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 1)");

    let r = c.imap("s", "SELECT INBOX").await;
    assert!(last(&r).starts_with("s OK"), "{r:?}");
    let r = c.imap("e", "COPY 1 Archive").await;
    assert_eq!(
        last(&r),
        "e NO [OVERQUOTA] Quota exceeded (mailbox for user is full)"
    );
    let r = c.imap("f", "UID COPY 1 Archive").await;
    assert_eq!(
        last(&r),
        "f NO [OVERQUOTA] Quota exceeded (mailbox for user is full)"
    );
    // REPLACE frees the old message first: a same-size one fits, a
    // larger one past the limit does not.
    let raw = message_of("bigger", 11);
    let mut cmd = format!("g REPLACE 1 INBOX {{{}+}}\r\n", raw.len()).into_bytes();
    cmd.extend_from_slice(&raw);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    let r = c.until_tag("g").await;
    assert_eq!(
        last(&r),
        "g NO [OVERQUOTA] Quota exceeded (mailbox for user is full)"
    );
    let raw = message_of("same", 6);
    let mut cmd = format!("h UID REPLACE 1 INBOX {{{}+}}\r\n", raw.len()).into_bytes();
    cmd.extend_from_slice(&raw);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    let r = c.until_tag("h").await;
    assert!(last(&r).starts_with("h OK"), "{r:?}");

    // MOVE within the account changes no usage: never refused.
    let r = c.imap("i", "MOVE 1 Archive").await;
    assert!(last(&r).starts_with("i OK"), "{r:?}");
    let r = c.imap("j", "GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (STORAGE 6 10)");
}

#[tokio::test]
async fn usage_drops_after_expunge_and_status_tells_what_would_go() {
    let (server, imap) = start().await;
    set_quota(&server, QuotaLimit::Set(8), QuotaLimit::Set(3)).await;
    let mut c = imap.login(ALICE).await;
    for (i, kib) in [2, 3, 3].into_iter().enumerate() {
        let r = append(&mut c, &format!("a{i}"), "INBOX", &message_of("m", kib)).await;
        assert!(r.contains(" OK "), "{r}");
    }
    let r = append(&mut c, "b", "INBOX", &message_of("one too many", 1)).await;
    assert!(r.starts_with("b NO [OVERQUOTA]"), "{r}");
    let r = c.imap("s", "SELECT INBOX").await;
    assert!(last(&r).starts_with("s OK"), "{r:?}");
    let r = c.imap("c", "STORE 2:3 +FLAGS.SILENT (\\Deleted)").await;
    assert!(last(&r).starts_with("c OK"), "{r:?}");
    let r = c
        .imap("d", "STATUS INBOX (DELETED DELETED-STORAGE MESSAGES)")
        .await;
    assert_eq!(
        r[0],
        format!(
            "* STATUS INBOX (DELETED 2 DELETED-STORAGE {} MESSAGES 3)",
            6 * 1024
        )
    );
    let r = c.imap("e", "EXPUNGE").await;
    assert!(last(&r).starts_with("e OK"), "{r:?}");
    let r = c.imap("f", "GETQUOTAROOT INBOX").await;
    assert_eq!(r[1], "* QUOTA \"\" (STORAGE 2 8 MESSAGE 1 3)");
    let r = c.imap("g", "STATUS INBOX (DELETED DELETED-STORAGE)").await;
    assert_eq!(r[0], "* STATUS INBOX (DELETED 0 DELETED-STORAGE 0)");
    let r = append(&mut c, "h", "INBOX", &message_of("fits again", 5)).await;
    assert!(r.starts_with("h OK"), "{r}");
}

/// Two sessions pipeline APPENDs at once: the check is in the store's
/// write transaction, so together they store exactly what the limit
/// allows, never more.
#[tokio::test]
async fn two_sessions_appending_at_once_cannot_pass_the_limit() {
    let (server, imap) = start().await;
    set_quota(&server, QuotaLimit::Set(10), QuotaLimit::Keep).await;
    let mut first = imap.login(ALICE).await;
    let mut second = imap.login(ALICE).await;
    let batch = |who: &str| {
        let mut out = Vec::new();
        for i in 0..8 {
            out.extend(append_command(
                &format!("{who}{i}"),
                "INBOX",
                &message_of(&format!("{who} {i}"), 1),
            ));
        }
        out
    };
    let (a, b) = (batch("a"), batch("b"));
    first.send(&a).await;
    second.send(&b).await;
    let (r1, r2) = tokio::join!(first.until_tag("a7"), second.until_tag("b7"));
    let replies: Vec<&String> = r1.iter().chain(r2.iter()).collect();
    let ok = replies
        .iter()
        .filter(|l| l.contains(" OK [APPENDUID"))
        .count();
    let over = replies
        .iter()
        .filter(|l| l.contains(" NO [OVERQUOTA] "))
        .count();
    assert_eq!((ok, over), (10, 6), "{replies:?}");
    let r = first.imap("q", "GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (STORAGE 10 10)");
    let alice = server.account(ALICE).await;
    let quota = server.store.quota(alice).await.unwrap();
    assert_eq!((quota.used_bytes, quota.used_messages), (10 * 1024, 10));
}

#[tokio::test]
async fn bad_quota_commands_get_bad_and_the_session_goes_on() {
    let (_server, imap) = start().await;
    let (mut c, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let r = c.imap("a", "GETQUOTAROOT INBOX").await;
    assert_eq!(last(&r), "a BAD Command not valid in this state");
    let mut c = imap.login(ALICE).await;
    for (tag, command) in [
        ("b", "GETQUOTA"),
        ("c", "GETQUOTAROOT"),
        ("d", "SETQUOTA \"\""),
        ("e", "SETQUOTA \"\" STORAGE 1"),
        ("f", "SETQUOTA \"\" (STORAGE)"),
        ("g", "SETQUOTA \"\" (STORAGE -5)"),
        ("h", "SETQUOTA \"\" (STORAGE 99999999999999999999999999)"),
        ("i", "GETQUOTAROOT INBOX extra"),
        ("j", "STATUS INBOX (DELETED-STORAGES)"),
    ] {
        let r = c.imap(tag, command).await;
        assert!(
            last(&r).starts_with(&format!("{tag} BAD ")),
            "{command}: {r:?}"
        );
    }
    let r = c.imap("k", "GETQUOTAROOT INBOX").await;
    assert_eq!(last(&r), "k OK Getquotaroot completed");
}

#[tokio::test]
async fn python_imaplib_reads_the_quota() {
    let (server, imap) = start().await;
    set_quota(&server, QuotaLimit::Set(2048), QuotaLimit::Set(50)).await;
    server
        .send_messages(ALICE, &[message_of("by smtp", 4)])
        .await;
    server.wait_for_inbox(ALICE, 1).await;
    let out = imaplib_as_alice(
        &imap,
        "typ, data = m.getquotaroot('INBOX')\n\
         assert typ == 'OK', (typ, data)\n\
         print(data)\n\
         typ, data = m.getquota('\"\"')\n\
         assert typ == 'OK', (typ, data)\n\
         print(data)\n\
         typ, data = m.setquota('\"\"', '(STORAGE 1)')\n\
         print(typ, data)\n",
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("b'INBOX \"\"'"), "{out}");
    assert!(lines[0].contains("MESSAGE 1 50"), "{out}");
    assert!(lines[1].contains("(STORAGE 4 2048 MESSAGE 1 50)"), "{out}");
    assert!(lines[2].starts_with("NO"), "{out}");
}
