//! IMAP, black-box: mailbox management (CREATE, DELETE, RENAME,
//! SUBSCRIBE), APPEND, COPY and MOVE with UIDPLUS codes, and what one
//! session sees of another's changes (untagged EXISTS, EXPUNGE and FETCH,
//! `\Recent`, IDLE woken by SMTP delivery), over raw sockets.

use std::time::{Duration, Instant};

use postern_tests::*;

async fn exchange(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    c.imap(tag, command).await
}

async fn read_to_tag(c: &mut Pop3Client, tag: &str) -> Vec<String> {
    c.until_tag(tag).await
}

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut common::config::Config)) -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, adjust).await;
    (server, imap)
}

async fn connect(imap: &ImapServer) -> Pop3Client {
    let (client, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    client
}

/// The tagged reply alone, checked to be OK.
async fn ok(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    let r = exchange(c, tag, command).await;
    assert!(
        r.last().unwrap().starts_with(&format!("{tag} OK")),
        "{command}: {r:?}"
    );
    r
}

async fn logged_in(imap: &ImapServer) -> Pop3Client {
    let mut c = connect(imap).await;
    ok(&mut c, "L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    c
}

async fn deliver(server: &Server, subjects: &[&str]) {
    server.send_subjects(ALICE, subjects).await;
}

/// Mailbox names from `LIST "" "*"`, as on the wire.
async fn list_names(c: &mut Pop3Client) -> Vec<String> {
    let r = ok(c, "l", "LIST \"\" \"*\"").await;
    r.iter()
        .filter_map(|l| l.strip_prefix("* LIST "))
        .map(|l| l.rsplit_once(" \"/\" ").unwrap().1.to_owned())
        .collect()
}

#[tokio::test]
async fn create_delete_rename_subscribe() {
    let (_server, imap) = start().await;
    let mut c = logged_in(&imap).await;

    ok(&mut c, "a", "CREATE Projects/2026/").await;
    let names = list_names(&mut c).await;
    assert!(names.contains(&"Projects".to_string()), "{names:?}");
    assert!(names.contains(&"Projects/2026".to_string()), "{names:?}");
    let r = exchange(&mut c, "b", "CREATE projects/2026").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("b OK [MAILBOXID (") && r[0].ends_with(")] CREATE completed"),
        "names are case-sensitive below INBOX: {r:?}"
    );
    assert_eq!(
        exchange(&mut c, "c", "CREATE Projects").await,
        ["c NO [ALREADYEXISTS] Mailbox already exists"]
    );
    assert_eq!(
        exchange(&mut c, "d", "CREATE inbox").await,
        ["d NO [ALREADYEXISTS] Mailbox already exists"]
    );
    assert_eq!(
        exchange(&mut c, "e", "CREATE \"a*b\"").await,
        ["e NO [CANNOT] Invalid mailbox name"]
    );

    // International names travel as modified UTF-7 and come back the same.
    ok(&mut c, "f", "CREATE \"&ZeVnLIqe-/Pr&AOk-vu\"").await;
    let names = list_names(&mut c).await;
    assert!(
        names.contains(&"\"&ZeVnLIqe-/Pr&AOk-vu\"".to_string())
            || names.contains(&"&ZeVnLIqe-/Pr&AOk-vu".to_string()),
        "{names:?}"
    );
    let r = ok(&mut c, "g", "STATUS \"&ZeVnLIqe-/Pr&AOk-vu\" (MESSAGES)").await;
    assert!(r[0].ends_with("(MESSAGES 0)"), "{r:?}");

    // Subscriptions show in LSUB and LIST (SUBSCRIBED).
    ok(&mut c, "h", "SUBSCRIBE Projects/2026").await;
    let r = ok(&mut c, "i", "LSUB \"\" \"Projects/*\"").await;
    assert_eq!(r[0], "* LSUB () \"/\" Projects/2026");
    assert_eq!(r.len(), 2);
    ok(&mut c, "j", "UNSUBSCRIBE Projects/2026").await;
    assert_eq!(ok(&mut c, "k", "LSUB \"\" \"Projects/*\"").await.len(), 1);
    // A subscription is a name; it may outlive its mailbox.
    ok(&mut c, "m", "SUBSCRIBE Nowhere").await;
    let r = ok(&mut c, "m2", "LIST (SUBSCRIBED) \"\" Nowhere").await;
    assert_eq!(r[0], "* LIST (\\Subscribed \\NonExistent) \"/\" Nowhere");
    ok(&mut c, "m3", "UNSUBSCRIBE Nowhere").await;
    // A level above a subscribed name shows as \Noselect with `%`.
    ok(&mut c, "m4", "CREATE Deep/Er").await;
    ok(&mut c, "m5", "SUBSCRIBE Deep/Er").await;
    let r = ok(&mut c, "m6", "LSUB \"\" %").await;
    assert!(
        r.contains(&"* LSUB (\\Noselect) \"/\" Deep".to_string()),
        "{r:?}"
    );
    ok(&mut c, "m7", "DELETE Deep/Er").await;
    ok(&mut c, "m8", "DELETE Deep").await;

    // RENAME takes the levels below along.
    ok(&mut c, "n", "RENAME Projects Archive/Projects").await;
    let names = list_names(&mut c).await;
    assert!(
        names.contains(&"Archive/Projects/2026".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("Projects")),
        "{names:?}"
    );
    assert_eq!(
        exchange(&mut c, "o", "RENAME Nowhere Else").await,
        ["o NO [NONEXISTENT] No such mailbox"]
    );
    assert_eq!(
        exchange(&mut c, "p", "RENAME Sent Trash").await,
        ["p NO [ALREADYEXISTS] Mailbox already exists"]
    );

    // DELETE: not INBOX, not with children, then gone.
    assert!(exchange(&mut c, "q", "DELETE INBOX").await[0].starts_with("q NO "));
    assert!(exchange(&mut c, "r", "DELETE Archive/Projects").await[0].starts_with("r NO "));
    ok(&mut c, "s", "DELETE Archive/Projects/2026").await;
    ok(&mut c, "t", "DELETE Archive/Projects").await;
    assert_eq!(
        exchange(&mut c, "u", "SELECT Archive/Projects").await,
        ["u NO [NONEXISTENT] No such mailbox"]
    );
    assert_eq!(
        exchange(&mut c, "v", "DELETE Archive/Projects").await,
        ["v NO [NONEXISTENT] No such mailbox"]
    );
}

#[tokio::test]
async fn append_as_thunderbird_saves_sent_mail() {
    let (server, imap) = start().await;
    let mut c = logged_in(&imap).await;
    let msg = message("saved", "sent body");

    // LITERAL+, as Thunderbird sends it.
    let mut cmd = format!("a append \"Sent\" (\\Seen) {{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(&msg);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    let r = read_to_tag(&mut c, "a").await;
    let sent = server.store.account(ALICE).await.unwrap().unwrap();
    let index = server.store.mailbox_index(sent.id, "Sent").await.unwrap();
    assert_eq!(
        r,
        [format!(
            "a OK [APPENDUID {} 1] APPEND completed",
            index.uid_validity
        )]
    );
    assert_eq!(index.messages[0].flags, ["\\Seen"]);
    assert_eq!(
        server
            .store
            .message_raw(sent.id, "Sent", store::Uid(1))
            .await
            .unwrap()
            .unwrap(),
        msg
    );

    // A synchronising literal with a date; read back INTERNALDATE.
    c.send(
        format!(
            "b APPEND Drafts (\\Draft $Todo) \"05-Mar-2024 10:11:12 +0100\" {{{}}}\r\n",
            msg.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(c.line().await.starts_with("+ "));
    c.send(&msg).await;
    c.send(b"\r\n").await;
    let r = read_to_tag(&mut c, "b").await;
    assert!(r[0].starts_with("b OK [APPENDUID "), "{r:?}");
    ok(&mut c, "c", "SELECT Drafts").await;
    let r = ok(&mut c, "d", "FETCH 1 (FLAGS INTERNALDATE)").await;
    assert_eq!(
        r[0],
        "* 1 FETCH (FLAGS (\\Draft $Todo \\Recent) INTERNALDATE \"05-Mar-2024 09:11:12 +0000\")"
    );

    // Appending to the selected mailbox: EXISTS before the tagged OK.
    let mut cmd = format!("e APPEND Drafts {{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(&msg);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    let r = read_to_tag(&mut c, "e").await;
    assert_eq!(r[0], "* 2 EXISTS");
    assert_eq!(r[1], "* 2 RECENT");

    // Errors: no such mailbox, \Recent, empty message.
    let r = exchange(&mut c, "f", "APPEND Nowhere {3+}\r\nabc").await;
    assert_eq!(r, ["f NO [TRYCREATE] No such mailbox"]);
    let r = exchange(&mut c, "g", "APPEND Drafts (\\Recent) {3+}\r\nabc").await;
    assert!(r[0].starts_with("g BAD "), "{r:?}");
    let r = exchange(&mut c, "h", "APPEND Drafts {0+}\r\n").await;
    assert!(r[0].starts_with("h NO "), "{r:?}");
}

#[tokio::test]
async fn copy_and_move_with_copyuid() {
    let (server, imap) = start().await;
    deliver(&server, &["one", "two", "three"]).await;
    server.wait_for_inbox(ALICE, 3).await;
    let mut c = logged_in(&imap).await;
    ok(&mut c, "s", "SELECT INBOX").await;
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    let archive = server
        .store
        .mailbox_index(alice.id, "Archive")
        .await
        .unwrap();
    let trash = server.store.mailbox_index(alice.id, "Trash").await.unwrap();

    ok(&mut c, "f", "STORE 1 +FLAGS (\\Flagged)").await;
    assert_eq!(
        exchange(&mut c, "a", "COPY 1:2 Archive").await,
        [format!(
            "a OK [COPYUID {} 1:2 1:2] COPY completed",
            archive.uid_validity
        )]
    );
    let copied = server
        .store
        .mailbox_index(alice.id, "Archive")
        .await
        .unwrap();
    assert_eq!(copied.messages.len(), 2);
    assert_eq!(copied.messages[0].flags, ["\\Flagged"]);
    assert_eq!(
        exchange(&mut c, "b", "COPY 1 Nowhere").await,
        ["b NO [TRYCREATE] No such mailbox"]
    );
    assert!(exchange(&mut c, "c", "COPY 9 Archive").await[0].starts_with("c BAD "));

    // Thunderbird's delete: uid move N "Trash".
    assert_eq!(
        exchange(&mut c, "d", "uid move 2 \"Trash\"").await,
        [
            format!("* OK [COPYUID {} 2 1] Moved", trash.uid_validity),
            "* 2 EXPUNGE".to_string(),
            "d OK UID MOVE completed".to_string(),
        ]
    );
    let r = exchange(&mut c, "e", "MOVE 1:2 Trash").await;
    assert_eq!(
        r,
        [
            format!("* OK [COPYUID {} 1,3 2:3] Moved", trash.uid_validity),
            "* 2 EXPUNGE".to_string(),
            "* 1 EXPUNGE".to_string(),
            "e OK MOVE completed".to_string(),
        ]
    );
    assert!(server
        .store
        .mailbox_index(alice.id, "INBOX")
        .await
        .unwrap()
        .messages
        .is_empty());
    assert_eq!(
        server
            .store
            .mailbox_index(alice.id, "Trash")
            .await
            .unwrap()
            .messages
            .len(),
        3
    );
    ok(&mut c, "x", "EXAMINE Trash").await;
    let r = exchange(&mut c, "y", "MOVE 1 INBOX").await;
    assert_eq!(r, ["y NO [READ-ONLY] Mailbox is read-only"]);
}

/// Lines that arrive within `wait`, without a command.
async fn unsolicited(c: &mut Pop3Client, wait: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(wait, c.try_line()).await {
        lines.push(line);
    }
    lines
}

#[tokio::test]
async fn sessions_see_each_others_changes() {
    let (server, imap) = start().await;
    deliver(&server, &["one", "two", "three"]).await;
    server.wait_for_inbox(ALICE, 3).await;
    let mut a = logged_in(&imap).await;
    let mut b = logged_in(&imap).await;
    let r = ok(&mut a, "t", "STATUS INBOX (RECENT)").await;
    assert_eq!(r[0], "* STATUS INBOX (RECENT 3)");
    let r = ok(&mut a, "s", "SELECT INBOX").await;
    assert!(r.contains(&"* 3 RECENT".to_string()), "{r:?}");
    let r = ok(&mut b, "t", "STATUS INBOX (RECENT)").await;
    assert_eq!(r[0], "* STATUS INBOX (RECENT 0)");
    // \Recent belongs to the first session only.
    let r = ok(&mut b, "s", "SELECT INBOX").await;
    assert!(r.contains(&"* 0 RECENT".to_string()), "{r:?}");

    // Flags: b learns of a's change at its next command.
    ok(&mut a, "a1", "STORE 2 +FLAGS.SILENT (\\Seen $Work)").await;
    let r = exchange(&mut b, "b1", "NOOP").await;
    assert_eq!(
        r,
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Limited",
            "* 2 FETCH (UID 2 FLAGS (\\Seen $Work))",
            "b1 OK Done",
        ]
    );
    // a does not hear its own silent change again.
    assert_eq!(exchange(&mut a, "a2", "NOOP").await, ["a2 OK Done"]);

    // Expunge: held back after a non-UID FETCH, given at the next NOOP.
    ok(&mut a, "a3", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut a, "a4", "EXPUNGE").await;
    let r = exchange(&mut b, "b2", "FETCH 3 (UID)").await;
    assert_eq!(r, ["* 3 FETCH (UID 3)", "b2 OK FETCH completed"]);
    let r = exchange(&mut b, "b3", "NOOP").await;
    assert_eq!(r, ["* 1 EXPUNGE", "b3 OK Done"]);

    // New mail: EXISTS, \Recent to the first session that hears of it.
    deliver(&server, &["four"]).await;
    server.wait_for_inbox(ALICE, 3).await;
    let r = exchange(&mut b, "b4", "NOOP").await;
    assert_eq!(r, ["* 3 EXISTS", "* 1 RECENT", "b4 OK Done"]);
    let r = exchange(&mut a, "a5", "NOOP").await;
    assert_eq!(r, ["* 3 EXISTS", "* 2 RECENT", "a5 OK Done"]);
    let r = ok(&mut b, "b5", "UID FETCH 4 FLAGS").await;
    assert_eq!(r[0], "* 3 FETCH (UID 4 FLAGS (\\Recent))");
}

#[tokio::test]
async fn idle_wakes_on_smtp_delivery_and_flag_changes() {
    let (server, imap) = start().await;
    deliver(&server, &["one"]).await;
    server.wait_for_inbox(ALICE, 1).await;
    let mut a = logged_in(&imap).await;
    ok(&mut a, "s", "SELECT INBOX").await;
    a.send(b"i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling");

    let sent = Instant::now();
    deliver(&server, &["two"]).await;
    assert_eq!(a.line().await, "* 2 EXISTS");
    assert_eq!(a.line().await, "* 2 RECENT");
    let waited = sent.elapsed();
    assert!(waited < Duration::from_secs(5), "EXISTS after {waited:?}");

    let mut b = logged_in(&imap).await;
    ok(&mut b, "s", "SELECT INBOX").await;
    ok(&mut b, "f", "UID STORE 1 +FLAGS.SILENT (\\Answered)").await;
    assert_eq!(
        a.line().await,
        "* 1 FETCH (UID 1 FLAGS (\\Answered \\Recent))"
    );
    ok(&mut b, "d", "UID STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut b, "e", "EXPUNGE").await;
    // The \Deleted change may come first, or be overtaken by the expunge.
    let mut line = a.line().await;
    if line.contains("FETCH") {
        assert_eq!(
            line,
            "* 1 FETCH (UID 1 FLAGS (\\Answered \\Deleted \\Recent))"
        );
        line = a.line().await;
    }
    assert_eq!(line, "* 1 EXPUNGE");

    a.send(b"DONE\r\n").await;
    assert_eq!(a.line().await, "i OK IDLE terminated");
    assert!(unsolicited(&mut a, Duration::from_millis(200))
        .await
        .is_empty());

    // Pipelined after DONE, and IDLE in the authenticated state.
    a.send(b"j IDLE\r\nDONE\r\nk NOOP\r\n").await;
    assert_eq!(a.line().await, "+ idling");
    assert_eq!(a.line().await, "j OK IDLE terminated");
    assert_eq!(a.line().await, "k OK Done");
    ok(&mut a, "u", "UNSELECT").await;
    a.send(b"m IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling");
    a.send(b"nonsense\r\n").await;
    assert_eq!(a.line().await, "m BAD Expected DONE");

    // A client that vanishes mid-IDLE leaves the server serving others.
    b.send(b"z IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");
    drop(b);
    let mut c = logged_in(&imap).await;
    ok(&mut c, "s", "SELECT INBOX").await;
}

#[tokio::test]
async fn idle_wakes_on_delivery_by_another_process() {
    // A second store on the same data dir stands for a separately started
    // smtpd: its commits are seen through the database, not in-process.
    let (server, imap) = start().await;
    let mut a = logged_in(&imap).await;
    ok(&mut a, "s", "SELECT INBOX").await;
    a.send(b"i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling");
    let other = store::Store::open(&server.config.data_dir).unwrap();
    let alice = other.account(ALICE).await.unwrap().unwrap();
    let sent = Instant::now();
    other
        .append(alice.id, "INBOX", message("elsewhere", "x"), &[], 0)
        .await
        .unwrap();
    assert_eq!(a.line().await, "* 1 EXISTS");
    let waited = sent.elapsed();
    assert!(waited < Duration::from_secs(3), "EXISTS after {waited:?}");
    assert_eq!(a.line().await, "* 1 RECENT");
    a.send(b"DONE\r\n").await;
    assert_eq!(a.line().await, "i OK IDLE terminated");
}

#[tokio::test]
async fn sessions_per_account_are_limited() {
    let (_server, imap) = start_with(|c| c.imap.max_connections_per_user = 2).await;
    let _a = logged_in(&imap).await;
    let b = logged_in(&imap).await;
    let mut c = connect(&imap).await;
    let r = exchange(&mut c, "L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert_eq!(
        r,
        ["L NO [LIMIT] Too many sessions for this account (at most 2)"]
    );
    drop(b);
    // The slot comes back when the session ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = exchange(&mut c, "M", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
        if r[0].starts_with("M OK") {
            break;
        }
        assert!(Instant::now() < deadline, "{r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn disconnect_mid_literal_loses_nothing_and_serves_the_next() {
    let (server, imap) = start().await;
    let mut c = logged_in(&imap).await;
    c.send(b"a APPEND Drafts {1000}\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send(&[b'x'; 400]).await;
    drop(c);
    let mut d = logged_in(&imap).await;
    let r = ok(&mut d, "s", "STATUS Drafts (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Drafts (MESSAGES 0)");
    // Mid-LITERAL+ too.
    d.send(b"b APPEND Drafts {1000+}\r\nFrom: x\r\n").await;
    drop(d);
    let mut e = logged_in(&imap).await;
    let r = ok(&mut e, "s", "STATUS Drafts (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Drafts (MESSAGES 0)");
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    assert!(server
        .store
        .messages(alice.id, "Drafts")
        .await
        .unwrap()
        .is_empty());
}

/// Reads one FETCH response carrying a literal: the line up to `{n}`, the
/// n bytes, and the closing line.
async fn fetch_literal(c: &mut Pop3Client) -> Vec<u8> {
    let head = c.line().await;
    let n: usize = head
        .rsplit_once('{')
        .and_then(|(_, n)| n.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no literal in {head}"));
    let bytes = c.read_bytes(n).await;
    assert_eq!(c.line().await, ")");
    bytes
}

#[tokio::test]
async fn a_20_mib_message_goes_in_and_out_whole() {
    let (_server, imap) = start().await;
    let mut c = logged_in(&imap).await;
    let mut msg = message("big", "").to_vec();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while msg.len() < 20 * 1024 * 1024 {
        msg.extend_from_slice(line);
    }
    let mut cmd = format!("a APPEND INBOX {{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(&msg);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    let r = read_to_tag(&mut c, "a").await;
    assert!(r[0].starts_with("a OK [APPENDUID "), "{r:?}");
    ok(&mut c, "s", "SELECT INBOX").await;
    c.send(b"f FETCH 1 BODY.PEEK[]\r\n").await;
    let body = fetch_literal(&mut c).await;
    assert_eq!(c.line().await, "f OK FETCH completed");
    assert!(body == msg, "20 MiB message changed on the way");
    let r = ok(&mut c, "z", "FETCH 1 RFC822.SIZE").await;
    assert_eq!(r[0], format!("* 1 FETCH (RFC822.SIZE {})", msg.len()));
}

#[tokio::test]
async fn a_mailbox_of_50000_messages() {
    let (server, imap) = start().await;
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    // One appended message, then copies doubling the mailbox.
    server
        .store
        .append(alice.id, "Archive", message("bulk", "b"), &[], 0)
        .await
        .unwrap();
    let mut count = 1u32;
    while count < 50_000 {
        let n = count.min(50_000 - count);
        let uids: Vec<store::Uid> = (1..=n).map(store::Uid).collect();
        server
            .store
            .copy_messages(alice.id, "Archive", &uids, "Archive")
            .await
            .unwrap();
        count += n;
    }
    let mut c = logged_in(&imap).await;
    let r = ok(&mut c, "s", "SELECT Archive").await;
    assert!(r.contains(&"* 50000 EXISTS".to_string()), "{r:?}");
    let r = ok(&mut c, "a", "UID FETCH 1:* (FLAGS)").await;
    assert_eq!(r.len(), 50_001);
    assert_eq!(r[49_999], "* 50000 FETCH (UID 50000 FLAGS (\\Recent))");
    let r = ok(&mut c, "b", "FETCH 49901:* (UID RFC822.SIZE)").await;
    assert_eq!(r.len(), 101);
    let r = ok(&mut c, "d", "STATUS Archive (MESSAGES UNSEEN)").await;
    assert_eq!(r[0], "* STATUS Archive (MESSAGES 50000 UNSEEN 50000)");
    ok(&mut c, "e", "STORE 2:* +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut c, "f", "EXPUNGE").await;
    assert_eq!(r.len(), 50_000);
    let r = ok(&mut c, "g", "UID FETCH 1:* (FLAGS)").await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (UID 1 FLAGS (\\Recent))",
            "g OK UID FETCH completed"
        ]
    );
}

/// A message of about `size` octets whose every line names `n`, so a
/// body sent for the wrong message, cut short or shifted is caught.
fn numbered_message(n: usize, size: usize) -> Vec<u8> {
    let mut msg = message(&format!("m{n}"), "").to_vec();
    let mut i = 0u64;
    while msg.len() < size {
        msg.extend_from_slice(
            format!("message {n} line {i:08} ....................\r\n").as_bytes(),
        );
        i += 1;
    }
    msg
}

#[tokio::test]
async fn one_fetch_of_several_large_messages_sends_every_byte_in_order() {
    // Issue 13: FETCH reads bodies in batches of at most 8 MiB and writes
    // each batch out before reading the next. Sizes around that bound (one
    // message larger than a batch, batches of one, two and three, a small
    // one queued between large literals) must all come whole and in order.
    let (server, imap) = start().await;
    let alice = server.store.account(ALICE).await.unwrap().unwrap();
    let sizes = [
        3 << 20,
        9 << 20,
        200,
        5 << 20,
        1 << 20,
        2 << 20,
        70_000,
        4 << 20,
    ];
    let messages: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| numbered_message(i + 1, size))
        .collect();
    for m in &messages {
        server
            .store
            .append(alice.id, "INBOX", m.clone(), &[], 0)
            .await
            .unwrap();
    }
    let mut c = logged_in(&imap).await;
    ok(&mut c, "s", "EXAMINE INBOX").await;
    c.send(b"f UID FETCH 1:* (RFC822.SIZE BODY.PEEK[])\r\n")
        .await;
    for (i, m) in messages.iter().enumerate() {
        let n = i + 1;
        let head = c.line().await;
        assert_eq!(
            head,
            format!(
                "* {n} FETCH (UID {n} RFC822.SIZE {len} BODY[] {{{len}}}",
                len = m.len()
            )
        );
        let body = c.read_bytes(m.len()).await;
        assert!(body == *m, "message {n} changed on the way");
        assert_eq!(c.line().await, ")");
    }
    assert_eq!(c.line().await, "f OK UID FETCH completed");
    // TEXT and a partial section, cut from the same batches.
    c.send(b"g FETCH 1:* (BODY.PEEK[TEXT] BODY.PEEK[]<10.30>)\r\n")
        .await;
    for (i, m) in messages.iter().enumerate() {
        let n = i + 1;
        let text_at = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let text = &m[text_at..];
        assert_eq!(
            c.line().await,
            format!("* {n} FETCH (BODY[TEXT] {{{}}}", text.len())
        );
        assert!(c.read_bytes(text.len()).await == text, "text of {n}");
        assert_eq!(c.line().await, " BODY[]<10> {30}");
        assert_eq!(c.read_bytes(30).await, &m[10..40]);
        assert_eq!(c.line().await, ")");
    }
    assert_eq!(c.line().await, "g OK FETCH completed");
}
