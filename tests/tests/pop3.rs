//! POP3 sessions against a real pop3d on free ports, beside smtpd on the
//! same store: every command in every state, pipelining, response codes,
//! STLS (and its injection defence), implicit TLS, exclusive access, the
//! snapshot rules, both delete modes, UIDL across restarts, big messages
//! and big mailboxes, bad input; then real clients (poplib, curl).

use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_tests::*;
use store::{
    BodyType, DeliveryOptions, FlagChange, LocalDelivery, MessageInfo, NewQueuedMessage, Store, Uid,
};

const ALICE: &str = "alice@localhost";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn enqueue(store: &Store, raw: Vec<u8>) {
    store
        .enqueue(NewQueuedMessage {
            raw,
            sender: "bob@example.com".into(),
            recipients: vec![ALICE.into()],
            auth_user: None,
            body_type: BodyType::EightBitMime,
            smtputf8: false,
            received_at: now(),
        })
        .await
        .expect("enqueue");
}

/// Delivers whatever is due, as the queue manager would (which may take
/// some of it first; either way it arrives).
async fn claim_and_deliver(store: &Store) {
    let claimed = store
        .claim_due(now(), Duration::from_secs(30), 1000)
        .await
        .expect("claim");
    let mut tasks = tokio::task::JoinSet::new();
    for m in claimed {
        let store = store.clone();
        tasks.spawn(async move {
            let mut deliveries = Vec::new();
            for r in &m.recipients {
                let account = store
                    .resolve_recipient(&r.address)
                    .await
                    .expect("resolve")
                    .expect("local")
                    .id;
                deliveries.push(LocalDelivery {
                    recipient: r.id,
                    account,
                    mailbox: "INBOX".into(),
                });
            }
            // With the Return-Path line smtpd's queue manager puts on top,
            // so the INBOX is the same whichever of the two delivers.
            let options = DeliveryOptions {
                prepend: format!("Return-Path: <{}>\r\n", m.sender).into_bytes(),
                notice: None,
            };
            store
                .deliver_local_with(m.id, deliveries, options)
                .await
                .expect("deliver");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("delivery task");
    }
}

/// Puts messages into alice's INBOX, in this order; returns the INBOX.
async fn deliver(store: &Store, messages: &[Vec<u8>]) -> Vec<MessageInfo> {
    let id = store.account(ALICE).await.unwrap().unwrap().id;
    let before = store.messages(id, "INBOX").await.unwrap().len();
    for (i, raw) in messages.iter().enumerate() {
        enqueue(store, raw.clone()).await;
        claim_and_deliver(store).await;
        wait_for_messages(store, id, "INBOX", before + i + 1).await;
    }
    store.messages(id, "INBOX").await.unwrap()
}

/// A server with alice's INBOX holding `messages`, and pop3d beside it.
/// A message as the INBOX holds it after delivery: with the Return-Path
/// line on top.
fn as_delivered(message: &[u8]) -> Vec<u8> {
    [b"Return-Path: <bob@example.com>\r\n".as_slice(), message].concat()
}

fn all_as_delivered(messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    messages.iter().map(|m| as_delivered(m)).collect()
}

async fn with_mail(messages: &[Vec<u8>]) -> (Server, Pop3Server) {
    let server = Server::start().await;
    deliver(&server.store, messages).await;
    let pop3 = Pop3Server::start(&server).await;
    (server, pop3)
}

fn three() -> Vec<Vec<u8>> {
    vec![
        message("one", "First body"),
        message("two", ".leading dot\r\n..two dots\r\n.\r\nline 4\r\nline 5"),
        message("three", "Third body"),
    ]
}

async fn logged_in(pop3: &Pop3Server) -> Pop3Client {
    let (mut c, greeting) = Pop3Client::connect(pop3.pop3).await;
    assert!(greeting.starts_with("+OK"), "{greeting}");
    c.login(ALICE, PASSWORD).await;
    c
}

async fn inbox(server: &Server) -> Vec<MessageInfo> {
    let id = server.account(ALICE).await;
    server.store.messages(id, "INBOX").await.unwrap()
}

fn ok(r: &str) {
    assert!(r.starts_with("+OK"), "expected +OK, got {r:?}");
}

fn error(r: &str) {
    assert!(r.starts_with("-ERR "), "expected -ERR, got {r:?}");
}

// ---- states and commands ----

#[tokio::test(flavor = "multi_thread")]
async fn authorization_state_capabilities_and_wrong_state_commands() {
    let (_server, pop3) = with_mail(&three()).await;
    let (mut c, greeting) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(greeting, "+OK Postern POP3 server ready");
    assert!(!greeting.contains('<'), "no APOP timestamp: {greeting}");
    let (status, caps) = c.multi("CAPA").await;
    ok(&status);
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "PIPELINING",
        "AUTH-RESP-CODE",
        "SASL PLAIN LOGIN",
        "STLS",
        "EXPIRE NEVER",
        "IMPLEMENTATION Postern",
    ] {
        assert!(caps.iter().any(|l| l == cap), "missing {cap}: {caps:?}");
    }
    for cmd in [
        "STAT", "LIST", "LIST 1", "UIDL", "UIDL 1", "RETR 1", "TOP 1 0", "DELE 1", "RSET", "NOOP",
    ] {
        let r = c.cmd(cmd).await;
        assert_eq!(
            r, "-ERR Not logged in: USER/PASS or AUTH first",
            "{cmd} before login"
        );
    }
    error(&c.cmd("PASS secret").await); // no USER yet
    error(
        &c.cmd("APOP alice@localhost c4c9334bac560ecc979e58001b3e22fb")
            .await,
    );
    let (status, mechs) = c.multi("AUTH").await;
    ok(&status);
    assert_eq!(mechs, vec!["PLAIN", "LOGIN"]);
    // QUIT before login: nothing to update.
    let r = c.cmd("QUIT").await;
    ok(&r);
    assert!(c.is_closed().await);
}

/// A session that sends `pop3.max_bad_commands` (default 20) bad commands
/// in a row (unknown, malformed, too long, or not valid in its state) gets
/// `-ERR Too many bad commands.` (Dovecot's words) and is closed; a valid
/// command in between starts the count again, and the next session is
/// served as usual.
#[tokio::test(flavor = "multi_thread")]
async fn too_many_bad_commands_in_a_row_close_the_session() {
    let (_server, pop3) = with_mail(&three()).await;
    let mut c = logged_in(&pop3).await;
    // 19 bad, STAT, 19 bad, a RETR of no message (an error, not a bad
    // command): still served.
    let mut batch = b"FOO\r\n".repeat(19);
    batch.extend_from_slice(b"STAT\r\n");
    batch.extend_from_slice(&b"RETR x\r\n".repeat(19));
    batch.extend_from_slice(b"RETR 9\r\n");
    c.send(&batch).await;
    for _ in 0..19 {
        error(&c.line().await);
    }
    ok(&c.line().await);
    for _ in 0..20 {
        error(&c.line().await);
    }
    // 20 bad commands of every kind: the reply to the 20th, the farewell,
    // and what was pipelined after is not answered.
    let long = format!("NOOP {}\r\n", "x".repeat(2000));
    let mut batch = Vec::new();
    for i in 0..20 {
        match i % 4 {
            0 => batch.extend_from_slice(b"XYZZY\r\n"),
            1 => batch.extend_from_slice(b"USER bob@localhost\r\n"),
            2 => batch.extend_from_slice(long.as_bytes()),
            _ => batch.extend_from_slice(b"\r\n"),
        }
    }
    batch.extend_from_slice(b"NOOP\r\n");
    c.send(&batch).await;
    for _ in 0..20 {
        error(&c.line().await);
    }
    assert_eq!(c.line().await, "-ERR Too many bad commands.");
    assert!(c.is_closed().await);

    let mut c = logged_in(&pop3).await;
    ok(&c.cmd("STAT").await);

    // The limit is configurable and holds before login too.
    let server = Server::start().await;
    let pop3 = Pop3Server::start_with(&server, |c| c.pop3.max_bad_commands = 3).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    c.send(b"FOO\r\nUSER alice@localhost\r\nBAR\r\nSTAT\r\nBAZ\r\nCAPA\r\n")
        .await;
    error(&c.line().await);
    ok(&c.line().await);
    error(&c.line().await);
    assert_eq!(
        c.line().await,
        "-ERR Not logged in: USER/PASS or AUTH first"
    );
    error(&c.line().await);
    assert_eq!(c.line().await, "-ERR Too many bad commands.");
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_state_commands() {
    let msgs = three();
    let (server, pop3) = with_mail(&msgs).await;
    let msgs = all_as_delivered(&msgs);
    let stored = inbox(&server).await;
    let total: u64 = stored.iter().map(|m| m.size).sum();
    let mut c = Pop3Client::connect(pop3.pop3).await.0;
    ok(&c.cmd(&format!("USER {ALICE}")).await);
    let r = c.cmd(&format!("PASS {PASSWORD}")).await;
    assert_eq!(r, format!("+OK {ALICE} has 3 messages ({total} octets)"));

    let (status, caps) = c.multi("CAPA").await;
    ok(&status);
    for absent in ["USER", "STLS", "SASL PLAIN LOGIN", "AUTH-RESP-CODE"] {
        assert!(
            !caps.iter().any(|l| l == absent),
            "{absent} after login: {caps:?}"
        );
    }
    assert!(caps.iter().any(|l| l == "TOP") && caps.iter().any(|l| l == "UIDL"));

    assert_eq!(c.cmd("STAT").await, format!("+OK 3 {total}"));
    let (status, list) = c.multi("LIST").await;
    ok(&status);
    let expected: Vec<String> = stored
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{} {}", i + 1, m.size))
        .collect();
    assert_eq!(list, expected);
    assert_eq!(c.cmd("LIST 2").await, format!("+OK 2 {}", stored[1].size));
    error(&c.cmd("LIST 4").await);

    // UIDL: UIDVALIDITY and UID, eight hex digits each.
    let id = server.account(ALICE).await;
    let validity = server
        .store
        .mailboxes(id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap()
        .uid_validity;
    let (status, uidl) = c.multi("UIDL").await;
    ok(&status);
    let expected: Vec<String> = stored
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{} {validity:08x}{:08x}", i + 1, m.uid.0))
        .collect();
    assert_eq!(uidl, expected);
    assert_eq!(c.cmd("UIDL 3").await, format!("+OK {}", expected[2]));

    // RETR: byte-exact, dot-stuffing undone, size as listed.
    for (i, m) in stored.iter().enumerate() {
        c.send(format!("RETR {}\r\n", i + 1).as_bytes()).await;
        assert_eq!(c.line().await, format!("+OK {} octets", m.size));
        let body = c.body().await;
        assert_eq!(body, msgs[i], "message {}", i + 1);
        assert_eq!(body.len() as u64, m.size);
    }
    // TOP: the header, the blank line, n lines.
    c.send(b"TOP 2 0\r\n").await;
    ok(&c.line().await);
    let header_end = msgs[1].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(c.body().await, &msgs[1][..header_end]);
    c.send(b"TOP 2 3\r\n").await;
    ok(&c.line().await);
    let mut top3 = msgs[1][..header_end].to_vec();
    top3.extend_from_slice(b".leading dot\r\n..two dots\r\n.\r\n");
    assert_eq!(c.body().await, top3);
    c.send(b"TOP 1 1000\r\n").await;
    ok(&c.line().await);
    assert_eq!(c.body().await, msgs[0]);

    assert_eq!(c.cmd("NOOP").await, "+OK");
    for cmd in ["USER bob", "PASS x", "AUTH PLAIN", "STLS"] {
        error(&c.cmd(cmd).await);
    }
    ok(&c.cmd("QUIT").await);
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn dele_rset_and_quit_expunge() {
    let msgs = three();
    let (server, pop3) = with_mail(&msgs).await;
    let stored = inbox(&server).await;
    let mut c = logged_in(&pop3).await;
    assert_eq!(c.cmd("DELE 2").await, "+OK Message 2 deleted");
    assert_eq!(c.cmd("DELE 2").await, "-ERR Message 2 already deleted");
    for cmd in ["RETR 2", "TOP 2 1", "LIST 2", "UIDL 2"] {
        assert_eq!(c.cmd(cmd).await, "-ERR Message 2 already deleted", "{cmd}");
    }
    let (_, list) = c.multi("LIST").await;
    assert_eq!(list.len(), 2);
    assert!(
        list[0].starts_with("1 ") && list[1].starts_with("3 "),
        "{list:?}"
    );
    let (_, uidl) = c.multi("UIDL").await;
    assert!(uidl[1].starts_with("3 "), "{uidl:?}");
    let size_1_3 = stored[0].size + stored[2].size;
    assert_eq!(c.cmd("STAT").await, format!("+OK 2 {size_1_3}"));
    let total: u64 = stored.iter().map(|m| m.size).sum();
    assert_eq!(
        c.cmd("RSET").await,
        format!("+OK Maildrop has 3 messages ({total} octets)")
    );
    assert_eq!(c.cmd("STAT").await, format!("+OK 3 {total}"));
    ok(&c.cmd("DELE 1").await);
    ok(&c.cmd("DELE 3").await);
    c.send(b"RETR 2\r\n").await;
    ok(&c.line().await);
    c.body().await;
    // Nothing happens before QUIT.
    assert_eq!(inbox(&server).await.len(), 3);
    assert_eq!(
        c.cmd("QUIT").await,
        "+OK Postern POP3 server signing off (1 messages left)"
    );
    assert!(c.is_closed().await);
    let left = inbox(&server).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].uid, stored[1].uid);
    assert!(
        left[0].flags.iter().any(|f| f == "\\Seen"),
        "{:?}",
        left[0].flags
    );
    // The next session numbers what is left from 1.
    let mut c = logged_in(&pop3).await;
    assert_eq!(c.cmd("STAT").await, format!("+OK 1 {}", stored[1].size));
    let expected = unique_id_of(&server, stored[1].uid).await;
    assert_eq!(c.cmd("UIDL 1").await, format!("+OK 1 {expected}"));
    ok(&c.cmd("QUIT").await);
}

/// The UIDL string of a message.
async fn unique_id_of(server: &Server, uid: Uid) -> String {
    let id = server.account(ALICE).await;
    let validity = server
        .store
        .mailboxes(id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .expect("INBOX")
        .uid_validity;
    format!("{validity:08x}{:08x}", uid.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_deletes_nothing() {
    let (server, pop3) = with_mail(&three()).await;
    let mut c = logged_in(&pop3).await;
    ok(&c.cmd("DELE 1").await);
    ok(&c.cmd("DELE 2").await);
    c.send(b"RETR 3\r\n").await;
    ok(&c.line().await);
    c.body().await;
    drop(c);
    // The lock is released and nothing changed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
        ok(&c.cmd(&format!("USER {ALICE}")).await);
        let r = c.cmd(&format!("PASS {PASSWORD}")).await;
        if r.starts_with("+OK") {
            break c;
        }
        assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
        assert!(std::time::Instant::now() < deadline, "lock not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(c.cmd("STAT").await.starts_with("+OK 3 "));
    let messages = inbox(&server).await;
    assert_eq!(messages.len(), 3);
    assert!(
        messages.iter().all(|m| m.flags.is_empty()),
        "no \\Seen without QUIT"
    );
    ok(&c.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn top_does_not_mark_seen_and_mark_seen_can_be_off() {
    let (server, pop3) = with_mail(&three()).await;
    let mut c = logged_in(&pop3).await;
    c.send(b"TOP 1 1\r\n").await;
    ok(&c.line().await);
    c.body().await;
    c.send(b"RETR 2\r\n").await;
    ok(&c.line().await);
    c.body().await;
    ok(&c.cmd("QUIT").await);
    let flags: Vec<bool> = inbox(&server)
        .await
        .iter()
        .map(|m| m.flags.iter().any(|f| f == "\\Seen"))
        .collect();
    assert_eq!(flags, vec![false, true, false]);

    let quiet = Pop3Server::start_with(&server, |c| {
        c.pop3.accounts.insert(
            ALICE.to_string(),
            common::config::Pop3AccountOverride {
                delete_mode: None,
                mark_seen: Some(false),
            },
        );
    })
    .await;
    let mut c = logged_in(&quiet).await;
    c.send(b"RETR 3\r\n").await;
    ok(&c.line().await);
    c.body().await;
    ok(&c.cmd("QUIT").await);
    let seen = inbox(&server).await[2].flags.iter().any(|f| f == "\\Seen");
    assert!(!seen, "mark_seen = false");
}

#[tokio::test(flavor = "multi_thread")]
async fn hide_mode_keeps_mail_for_imap_and_hides_it_from_pop3() {
    let server = Server::start().await;
    let stored = deliver(&server.store, &three()).await;
    let pop3 = Pop3Server::start_with(&server, |c| {
        c.pop3.delete_mode = common::config::Pop3DeleteMode::Hide;
    })
    .await;
    let mut c = logged_in(&pop3).await;
    ok(&c.cmd("DELE 1").await);
    ok(&c.cmd("QUIT").await);
    // Still in the store (IMAP sees it), with the keyword.
    let messages = inbox(&server).await;
    assert_eq!(messages.len(), 3);
    assert!(messages[0].flags.iter().any(|f| f == pop3d::HIDDEN_KEYWORD));
    // POP3 no longer shows it.
    let mut c = logged_in(&pop3).await;
    let (_, uidl) = c.multi("UIDL").await;
    assert_eq!(uidl.len(), 2);
    assert!(
        uidl[0].ends_with(&format!("{:08x}", stored[1].uid.0)),
        "{uidl:?}"
    );
    ok(&c.cmd("QUIT").await);

    // A per-account override back to expunge.
    let expunging = Pop3Server::start_with(&server, |c| {
        c.pop3.delete_mode = common::config::Pop3DeleteMode::Hide;
        c.pop3.accounts.insert(
            ALICE.to_string(),
            common::config::Pop3AccountOverride {
                delete_mode: Some(common::config::Pop3DeleteMode::Expunge),
                mark_seen: None,
            },
        );
    })
    .await;
    let mut c = logged_in(&expunging).await;
    ok(&c.cmd("DELE 1").await);
    ok(&c.cmd("QUIT").await);
    let uids: Vec<Uid> = inbox(&server).await.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![stored[0].uid, stored[2].uid]);
}

// ---- the snapshot ----

#[tokio::test(flavor = "multi_thread")]
async fn messages_read_ahead_are_not_served_once_removed() {
    let (server, pop3) = with_mail(&three()).await;
    let stored = inbox(&server).await;
    let mut c = logged_in(&pop3).await;
    // RETR 1 reads 2 and 3 ahead, and TOP 3 0 finds 3 there.
    let (status, _) = c.multi("RETR 1").await;
    ok(&status);
    let (status, _) = c.multi("TOP 3 0").await;
    ok(&status);
    // Another client removes message 2 after it was read ahead.
    let id = server.account(ALICE).await;
    server
        .store
        .expunge(id, "INBOX", &[stored[1].uid])
        .await
        .unwrap();
    let r = c.cmd("RETR 2").await;
    assert_eq!(
        r,
        "-ERR Message 2 is no longer available: another client removed it"
    );
    // Message 3 still comes, whole and exact.
    let (status, body) = c.multi("RETR 3").await;
    ok(&status);
    let raw = server.raw(ALICE, stored[2].uid).await;
    let expected: Vec<String> = String::from_utf8_lossy(&raw)
        .split_terminator("\r\n")
        .map(str::to_string)
        .collect();
    assert_eq!(body, expected);
    ok(&c.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_is_a_snapshot_and_removed_messages_are_clear_errors() {
    let (server, pop3) = with_mail(&three()).await;
    let stored = inbox(&server).await;
    let mut c = logged_in(&pop3).await;
    // New mail during the session is not shown.
    deliver(&server.store, &[message("four", "late")]).await;
    assert!(c.cmd("STAT").await.starts_with("+OK 3 "));
    error(&c.cmd("LIST 4").await);
    // Another client removes message 2.
    let id = server.account(ALICE).await;
    server
        .store
        .expunge(id, "INBOX", &[stored[1].uid])
        .await
        .unwrap();
    let r = c.cmd("RETR 2").await;
    assert_eq!(
        r,
        "-ERR Message 2 is no longer available: another client removed it"
    );
    error(&c.cmd("TOP 2 0").await);
    // The session goes on; DELE of the vanished message and QUIT are fine.
    ok(&c.cmd("DELE 2").await);
    ok(&c.cmd("DELE 1").await);
    ok(&c.cmd("QUIT").await);
    let uids: Vec<Uid> = inbox(&server).await.iter().map(|m| m.uid).collect();
    assert_eq!(uids.len(), 2, "message 3 and the late one: {uids:?}");
    assert_eq!(uids[0], stored[2].uid);
    // The next session sees the late mail.
    let mut c = logged_in(&pop3).await;
    assert!(c.cmd("STAT").await.starts_with("+OK 2 "));
    ok(&c.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_session_gets_in_use_and_imap_style_changes_still_work() {
    let (server, pop3) = with_mail(&three()).await;
    let mut first = logged_in(&pop3).await;
    let (mut second, _) = Pop3Client::connect(pop3.pop3).await;
    ok(&second.cmd(&format!("USER {ALICE}")).await);
    assert_eq!(
        second.cmd(&format!("PASS {PASSWORD}")).await,
        "-ERR [IN-USE] Maildrop already locked by another POP3 session"
    );
    // Still in AUTHORIZATION.
    error(&second.cmd("STAT").await);
    // The store (IMAP's way in) is not locked out.
    let id = server.account(ALICE).await;
    let uid = inbox(&server).await[0].uid;
    server
        .store
        .store_flags(id, "INBOX", &[uid], FlagChange::Add, &["\\Flagged".into()])
        .await
        .unwrap();
    ok(&first.cmd("QUIT").await);
    assert!(first.is_closed().await);
    second.login(ALICE, PASSWORD).await;
    ok(&second.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn autologout_and_shutdown_delete_nothing() {
    let (server, _) = with_mail(&three()).await;
    let pop3 = Pop3Server::start_with(&server, |c| c.pop3.command_timeout_secs = 1).await;
    let mut c = logged_in(&pop3).await;
    ok(&c.cmd("DELE 1").await);
    // Idle past the timeout: closed without UPDATE.
    assert!(c.is_closed().await, "not logged out");
    assert_eq!(inbox(&server).await.len(), 3);
    // A shutdown says so, and deletes nothing either.
    let mut c = logged_in(&pop3).await;
    ok(&c.cmd("DELE 1").await);
    pop3.stop().await;
    assert_eq!(c.line().await, "-ERR [SYS/TEMP] Server shutting down");
    assert!(c.is_closed().await);
    assert_eq!(inbox(&server).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_connections_get_sys_temp() {
    let (server, _) = with_mail(&three()).await;
    let pop3 = Pop3Server::start_with(&server, |c| c.limits.max_connections = 1).await;
    let (mut first, _) = Pop3Client::connect(pop3.pop3).await;
    let (mut second, greeting) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(
        greeting,
        "-ERR [SYS/TEMP] Too many connections; try again later"
    );
    assert!(second.is_closed().await);
    ok(&first.cmd("QUIT").await);
}

// ---- pipelining, STLS, TLS ----

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_commands_are_answered_in_order() {
    let msgs = three();
    let (_server, pop3) = with_mail(&msgs).await;
    let msgs = all_as_delivered(&msgs);
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    c.send(
        format!(
            "CAPA\r\nUSER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nRETR 1\r\nBOGUS\r\nDELE 1\r\nRETR 1\r\nUIDL 2\r\nNOOP\r\nRSET\r\nQUIT\r\n"
        )
        .as_bytes(),
    )
    .await;
    ok(&c.line().await);
    c.body().await; // CAPA
    ok(&c.line().await); // USER
    ok(&c.line().await); // PASS
    assert!(c.line().await.starts_with("+OK 3 "));
    ok(&c.line().await);
    assert_eq!(c.body().await.split(|&b| b == b'\n').count(), 4); // LIST
    ok(&c.line().await);
    assert_eq!(c.body().await, msgs[0]); // RETR 1
    assert_eq!(c.line().await, "-ERR Unknown command");
    ok(&c.line().await); // DELE
    error(&c.line().await); // RETR of a deleted message
    assert!(c.line().await.starts_with("+OK 2 "));
    assert_eq!(c.line().await, "+OK");
    ok(&c.line().await); // RSET
    ok(&c.line().await); // QUIT
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stls_discards_pipelined_commands_and_starts_over() {
    let (server, pop3) = with_mail(&three()).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    // The injection: USER after STLS in the same packet must not be
    // answered, before or after the handshake.
    c.send(b"STLS\r\nUSER mallory\r\n").await;
    assert_eq!(c.line().await, "+OK Begin TLS negotiation");
    let mut c = c.start_tls(server.dir.path()).await;
    // If USER had been kept, PASS would be tried for mallory; instead
    // PASS without USER is refused.
    assert_eq!(c.cmd(&format!("PASS {PASSWORD}")).await, "-ERR USER first");
    let (status, caps) = c.multi("CAPA").await;
    ok(&status);
    assert!(!caps.iter().any(|l| l == "STLS"), "{caps:?}");
    assert!(caps.iter().any(|l| l == "USER"), "{caps:?}");
    assert_eq!(c.cmd("STLS").await, "-ERR Already using TLS");
    c.login(ALICE, PASSWORD).await;
    assert!(c.cmd("STAT").await.starts_with("+OK 3 "));
    ok(&c.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_listener() {
    let msgs = three();
    let (server, pop3) = with_mail(&msgs).await;
    let msgs = all_as_delivered(&msgs);
    let (mut c, greeting) = Pop3Client::connect_tls(pop3.pop3s, server.dir.path()).await;
    ok(&greeting);
    let (_, caps) = c.multi("CAPA").await;
    assert!(!caps.iter().any(|l| l == "STLS"), "{caps:?}");
    c.login(ALICE, PASSWORD).await;
    c.send(b"RETR 3\r\n").await;
    ok(&c.line().await);
    assert_eq!(c.body().await, msgs[2]);
    ok(&c.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_refused_until_tls_when_not_allowed() {
    let (server, _) = with_mail(&three()).await;
    let pop3 = Pop3Server::start_with(&server, |c| c.auth.plaintext_on_loopback = false).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    let (_, caps) = c.multi("CAPA").await;
    assert!(
        !caps.iter().any(|l| l == "USER" || l.starts_with("SASL")),
        "{caps:?}"
    );
    assert!(caps.iter().any(|l| l == "STLS"));
    let refused =
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections; use STLS first";
    assert_eq!(c.cmd(&format!("USER {ALICE}")).await, refused);
    assert_eq!(c.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdAB4").await, refused);
    let (status, mechs) = c.multi("AUTH").await;
    ok(&status);
    assert!(mechs.is_empty());
    ok(&c.cmd("STLS").await);
    let mut c = c.start_tls(server.dir.path()).await;
    c.login(ALICE, PASSWORD).await;
    ok(&c.cmd("QUIT").await);
}

// ---- AUTH and failed logins ----

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_plain_and_login() {
    let (_server, pop3) = with_mail(&three()).await;
    let plain = b64(format!("\0{ALICE}\0{PASSWORD}").as_bytes());
    // PLAIN with an initial response.
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert!(c
        .cmd(&format!("AUTH PLAIN {plain}"))
        .await
        .starts_with("+OK alice@localhost has 3 messages"));
    ok(&c.cmd("QUIT").await);
    // PLAIN after an empty challenge.
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    ok(&c.cmd(&plain).await);
    ok(&c.cmd("QUIT").await);
    // LOGIN, both steps challenged, lower-case mechanism.
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(c.cmd("AUTH login").await, "+ VXNlcm5hbWU6");
    assert_eq!(c.cmd(&b64(ALICE.as_bytes())).await, "+ UGFzc3dvcmQ6");
    ok(&c.cmd(&b64(PASSWORD.as_bytes())).await);
    ok(&c.cmd("QUIT").await);
    // LOGIN with the user name as initial response.
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(
        c.cmd(&format!("AUTH LOGIN {}", b64(ALICE.as_bytes())))
            .await,
        "+ UGFzc3dvcmQ6"
    );
    ok(&c.cmd(&b64(PASSWORD.as_bytes())).await);
    ok(&c.cmd("QUIT").await);
    // Cancel, unknown mechanism, bad base64.
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    assert_eq!(c.cmd("*").await, "-ERR Authentication cancelled");
    assert_eq!(
        c.cmd("AUTH CRAM-MD5").await,
        "-ERR Unsupported authentication mechanism CRAM-MD5"
    );
    assert!(c.cmd("AUTH PLAIN !!!").await.starts_with("-ERR [AUTH] "));
    ok(&c.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_get_auth_code_and_close_the_session() {
    let (_server, pop3) = with_mail(&three()).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    ok(&c.cmd("USER alice@localhost").await);
    assert_eq!(
        c.cmd("PASS wrong").await,
        "-ERR [AUTH] Invalid user name or password"
    );
    // After a failure, USER again.
    assert_eq!(c.cmd("PASS wrong").await, "-ERR USER first");
    ok(&c.cmd("USER nobody@localhost").await);
    assert_eq!(
        c.cmd("PASS wrong").await,
        "-ERR [AUTH] Invalid user name or password"
    );
    let bad = b64(format!("\0{ALICE}\0nope").as_bytes());
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {bad}")).await,
        "-ERR [AUTH] Too many failed logins; closing"
    );
    assert!(c.is_closed().await);
}

// ---- bad input ----

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_the_session_goes_on() {
    let server = Server::start().await;
    deliver(&server.store, &three()).await;
    // 0: the session is never closed for bad commands, so the run of 200
    // below is answered in full.
    let pop3 = Pop3Server::start_with(&server, |c| c.pop3.max_bad_commands = 0).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    let long = format!("USER {}\r\n", "x".repeat(5000));
    c.send(long.as_bytes()).await;
    assert_eq!(c.line().await, "-ERR Line too long (at most 1024 octets)");
    c.send(b"\x00\x01\xff\xfe garbage\r\n").await;
    assert_eq!(c.line().await, "-ERR Unknown command");
    c.send(b"\r\n").await;
    assert_eq!(c.line().await, "-ERR Empty command");
    c.send(b"USER \xff\xfe\r\n").await;
    error(&c.line().await);
    c.login(ALICE, PASSWORD).await;
    for (cmd, reply) in [
        ("RETR 0", "-ERR Invalid number"),
        ("RETR -1", "-ERR Invalid number"),
        ("RETR abc", "-ERR Invalid number"),
        ("RETR 99999999999", "-ERR Invalid number"),
        ("RETR 4", "-ERR No such message: 4"),
        ("RETR 4294967295", "-ERR No such message: 4294967295"),
        ("DELE 7", "-ERR No such message: 7"),
        ("LIST 0", "-ERR Invalid number"),
        ("TOP 1 -1", "-ERR Invalid number"),
        ("TOP 1", "-ERR Syntax: TOP msg lines"),
        ("RETR", "-ERR Syntax: RETR msg"),
        ("STAT 1", "-ERR Syntax: STAT takes no arguments"),
        ("XTND XMIT", "-ERR Unknown command"),
    ] {
        assert_eq!(c.cmd(cmd).await, reply, "{cmd}");
    }
    // A long run of junk in one write; every line answered, in step.
    let mut junk = Vec::new();
    for i in 0..200u32 {
        junk.extend_from_slice(format!("JUNK{i}\r\n").as_bytes());
    }
    junk.extend_from_slice(b"NOOP\r\n");
    c.send(&junk).await;
    for _ in 0..200 {
        error(&c.line().await);
    }
    assert_eq!(c.line().await, "+OK");
    assert!(c.cmd("STAT").await.starts_with("+OK 3 "));
    ok(&c.cmd("QUIT").await);
}

// ---- size, scale, restarts ----

#[tokio::test(flavor = "multi_thread")]
async fn a_20_mib_message_is_sent_byte_exact() {
    let mut body = String::with_capacity(21 << 20);
    let mut i = 0u64;
    while body.len() < 20 << 20 {
        // Lines that start with dots too.
        if i.is_multiple_of(7) {
            body.push_str(".dotted ");
        }
        body.push_str(&format!(
            "line {i} of a big message, padded to some length\r\n"
        ));
        i += 1;
    }
    let big = message("big", &body);
    let (server, pop3) = with_mail(std::slice::from_ref(&big)).await;
    let big = as_delivered(&big);
    let stored = inbox(&server).await;
    assert_eq!(stored[0].size, big.len() as u64);
    let mut c = logged_in(&pop3).await;
    assert_eq!(c.cmd("LIST 1").await, format!("+OK 1 {}", big.len()));
    c.send(b"RETR 1\r\n").await;
    assert_eq!(c.line().await, format!("+OK {} octets", big.len()));
    let got = c.body().await;
    assert_eq!(got.len(), big.len());
    assert!(got == big, "20 MiB message differs");
    ok(&c.cmd("QUIT").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mailbox_of_10000_messages() {
    const COUNT: usize = 10_000;
    let server = Server::start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..20 {
        let store = server.store.clone();
        tasks.spawn(async move {
            for i in 0..COUNT / 20 {
                let n = chunk * (COUNT / 20) + i;
                enqueue(&store, message(&format!("m{n}"), &format!("body {n}"))).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("enqueue task");
    }
    let id = server.account(ALICE).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        claim_and_deliver(&server.store).await;
        if server.store.messages(id, "INBOX").await.unwrap().len() >= COUNT {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "delivery too slow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pop3 = Pop3Server::start(&server).await;
    let started = std::time::Instant::now();
    let mut c = logged_in(&pop3).await;
    assert!(c.cmd("STAT").await.starts_with(&format!("+OK {COUNT} ")));
    let (_, list) = c.multi("LIST").await;
    assert_eq!(list.len(), COUNT);
    assert!(list[COUNT - 1].starts_with(&format!("{COUNT} ")));
    let (_, uidl) = c.multi("UIDL").await;
    assert_eq!(uidl.len(), COUNT);
    let unique: std::collections::HashSet<&str> =
        uidl.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(unique.len(), COUNT);
    c.send(format!("RETR {COUNT}\r\n").as_bytes()).await;
    ok(&c.line().await);
    c.body().await;
    for n in 1..=100 {
        ok(&c.cmd(&format!("DELE {n}")).await);
    }
    ok(&c.cmd("QUIT").await);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a 10,000-message session took {:?}",
        started.elapsed()
    );
    assert_eq!(
        server.store.messages(id, "INBOX").await.unwrap().len(),
        COUNT - 100
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uidl_is_stable_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let listing = {
        let store = Store::open(dir.path()).unwrap();
        store.add_account(ALICE, PASSWORD).await.unwrap();
        deliver(&store, &three()).await;
        let pop3 = Pop3Server::start_on(store.clone(), config.clone()).await;
        let mut c = logged_in(&pop3).await;
        let (_, uidl) = c.multi("UIDL").await;
        ok(&c.cmd("DELE 1").await);
        ok(&c.cmd("QUIT").await);
        pop3.stop().await;
        uidl
    };
    assert_eq!(listing.len(), 3);
    let store = Store::open(dir.path()).unwrap();
    let pop3 = Pop3Server::start_on(store, config).await;
    let mut c = logged_in(&pop3).await;
    let (_, uidl) = c.multi("UIDL").await;
    let ids = |l: &[String]| -> Vec<String> {
        l.iter()
            .map(|l| l.split(' ').nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&uidl), ids(&listing)[1..].to_vec());
    ok(&c.cmd("QUIT").await);
}

// ---- postern up ----

#[tokio::test(flavor = "multi_thread")]
async fn postern_up_runs_pop3d() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        data.with_extension("toml"),
        "log = \"warn\"\n[smtp]\nlisten = [\"127.0.0.1:0\"]\nsubmission_listen = [\"127.0.0.1:0\"]\nsubmissions_listen = [\"127.0.0.1:0\"]\n[pop3]\nlisten = [\"127.0.0.1:0\"]\npop3s_listen = [\"127.0.0.1:0\"]\n[imap]\nlisten = [\"127.0.0.1:0\"]\nimaps_listen = [\"127.0.0.1:0\"]\n[http]\nlisten = [\"127.0.0.1:0\"]\n",
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        postern_cli(&data, &["user", "add", ALICE, "--password-stdin"], PASSWORD)
    });
    assert!(out.status.success(), "{out:?}");
    let binary = tokio::task::block_in_place(|| Binary::start(&data));
    let (pop3, pop3s) = (binary.pop3, binary.pop3s);
    assert!(binary
        .stdout_lines
        .iter()
        .any(|l| l == &format!("postern: pop3 listening on {pop3} (STLS)")));
    let (mut smtp, _) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(smtp.cmd("EHLO t").await.code, 250);
    let msg = message("via up", "hello");
    assert_eq!(
        smtp.send_mail("bob@example.com", &[ALICE], &msg).await.code,
        250
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        let (mut c, _) = Pop3Client::connect(pop3).await;
        c.login(ALICE, PASSWORD).await;
        if c.cmd("STAT").await.starts_with("+OK 1 ") {
            break c;
        }
        ok(&c.cmd("QUIT").await);
        assert!(std::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    c.send(b"RETR 1\r\n").await;
    ok(&c.line().await);
    assert_eq!(without_received(&c.body().await), &msg[..]);
    ok(&c.cmd("QUIT").await);
    let (mut c, greeting) = Pop3Client::connect_tls(pop3s, &data).await;
    ok(&greeting);
    ok(&c.cmd("QUIT").await);
}

// ---- interop: poplib, curl ----

const TOOL_LIMIT: Duration = Duration::from_secs(120);

async fn run(program: &str, package: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    output(command, program, package).await
}

/// Runs a client program to completion; fails clearly if it is missing
/// (`.ci/run` installs every one).
async fn output(mut command: tokio::process::Command, program: &str, package: &str) -> Output {
    let child = command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(TOOL_LIMIT, child).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} is not installed; `.ci/run` installs it (Debian package `{package}`)")
        }
        Ok(Err(e)) => panic!("cannot run {program}: {e}"),
        Err(_) => panic!("{command:?} did not finish within {TOOL_LIMIT:?}"),
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn run_ok(program: &str, package: &str, args: &[&str]) -> String {
    let output = run(program, package, args).await;
    assert!(
        output.status.success(),
        "{program} {args:?} exited with {}:\n{}",
        output.status,
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Logs in with poplib in `mode` (plain, stls, ssl), checks STAT, reads
/// every message (printing them hex-encoded), deletes message 1 and quits.
const POPLIB: &str = r#"
import poplib, ssl, sys
mode, host, port, cafile, user, password = sys.argv[1:7]
port = int(port)
ctx = ssl.create_default_context(cafile=cafile)
if mode == "ssl":
    p = poplib.POP3_SSL(host, port, context=ctx, timeout=30)
else:
    p = poplib.POP3(host, port, timeout=30)
    if mode == "stls":
        caps = p.capa()
        assert "STLS" in caps, caps
        p.stls(context=ctx)
caps = p.capa()
assert "UIDL" in caps and "TOP" in caps, caps
p.user(user)
p.pass_(password)
count, size = p.stat()
_, listing, _ = p.list()
assert len(listing) == count, (listing, count)
_, uids, _ = p.uidl()
assert len(uids) == count
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    print(b"\r\n".join(lines).hex())
resp, lines, _ = p.top(1, 0)
assert any(l.lower().startswith(b"subject:") for l in lines), lines
p.dele(1)
p.quit()
"#;

async fn poplib(mode: &str, server: &Server, port: u16) -> Vec<Vec<u8>> {
    let cafile = server.dir.path().join("tls/cert.pem");
    let out = run_ok(
        "python3",
        "python3",
        &[
            "-c",
            POPLIB,
            mode,
            "localhost",
            &port.to_string(),
            cafile.to_str().unwrap(),
            ALICE,
            PASSWORD,
        ],
    )
    .await;
    out.lines()
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

/// poplib gives lines without their CRLF.
fn crlf_joined(message: &[u8]) -> Vec<u8> {
    message.strip_suffix(b"\r\n").unwrap_or(message).to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn poplib_plain_stls_and_ssl() {
    let msgs = three();
    let (server, pop3) = with_mail(&msgs).await;
    let msgs = all_as_delivered(&msgs);
    let got = poplib("plain", &server, pop3.pop3.port()).await;
    assert_eq!(got.len(), 3);
    for (g, m) in got.iter().zip(&msgs) {
        assert_eq!(g, &crlf_joined(m));
    }
    let got = poplib("stls", &server, pop3.pop3.port()).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], crlf_joined(&msgs[1]));
    let got = poplib("ssl", &server, pop3.pop3s.port()).await;
    assert_eq!(got, vec![crlf_joined(&msgs[2])]);
    assert!(inbox(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_pop3_and_pop3s() {
    let msgs = three();
    let (server, pop3) = with_mail(&msgs).await;
    let msgs = all_as_delivered(&msgs);
    let user = format!("{ALICE}:{PASSWORD}");
    // The listing, then one message.
    let listing = run_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "--user",
            &user,
            &format!("pop3://127.0.0.1:{}/", pop3.pop3.port()),
        ],
    )
    .await;
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let second = run(
        "curl",
        "curl",
        &[
            "-sS",
            "--user",
            &user,
            &format!("pop3://127.0.0.1:{}/2", pop3.pop3.port()),
        ],
    )
    .await;
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(second.stdout, msgs[1]);
    // Implicit TLS, verifying the certificate for localhost.
    let cafile = server.dir.path().join("tls/cert.pem");
    let third = run(
        "curl",
        "curl",
        &[
            "-sS",
            "--cacert",
            cafile.to_str().unwrap(),
            "--user",
            &user,
            &format!("pop3s://localhost:{}/3", pop3.pop3s.port()),
        ],
    )
    .await;
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(third.stdout, msgs[2]);
    // STLS required by the client, and AUTH PLAIN.
    let first = run(
        "curl",
        "curl",
        &[
            "-sS",
            "--ssl-reqd",
            "--cacert",
            cafile.to_str().unwrap(),
            "--login-options",
            "AUTH=PLAIN",
            "--user",
            &user,
            &format!("pop3://localhost:{}/1", pop3.pop3.port()),
        ],
    )
    .await;
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(first.stdout, msgs[0]);
    // DELE through curl's custom request.
    run_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "--user",
            &user,
            "--request",
            "DELE",
            "--head",
            &format!("pop3://127.0.0.1:{}/1", pop3.pop3.port()),
        ],
    )
    .await;
    assert_eq!(inbox(&server).await.len(), 2);
}

// ---- interop: fetchmail ----

/// Runs fetchmail once with `options` against `host:port`; returns its exit
/// code (0: mail fetched, 1: no new mail) and transcript.
async fn fetchmail(home: &std::path::Path, host: &str, port: u16, options: &str) -> (i32, String) {
    let out = home.join("out");
    let rc = home.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no bouncemail\npoll {host} service {port} protocol POP3 auth password\n  user \"{ALICE}\" there with password \"{PASSWORD}\" is \"root\" here\n  options {options} mda \"cat >> {}\"\n",
            out.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut command = tokio::process::Command::new("fetchmail");
    command
        .arg("-f")
        .arg(&rc)
        .args(["-v", "--nosyslog"])
        .env("HOME", home)
        .env("FETCHMAILHOME", home);
    let output = output(command, "fetchmail", "fetchmail").await;
    (output.status.code().unwrap_or(-1), text(&output))
}

fn fetched_subjects(home: &std::path::Path) -> usize {
    std::fs::read_to_string(home.join("out"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Subject: "))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn fetchmail_keep_then_no_keep() {
    let (server, pop3) = with_mail(&three()).await;
    let home = tempfile::tempdir().unwrap();
    let port = pop3.pop3.port();
    // keep: fetches all three, leaves them (marked \Seen).
    let (code, log) = fetchmail(home.path(), "127.0.0.1", port, "keep sslproto ''").await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(fetched_subjects(home.path()), 3, "{log}");
    let messages = inbox(&server).await;
    assert_eq!(messages.len(), 3);
    assert!(messages
        .iter()
        .all(|m| m.flags.iter().any(|f| f == "\\Seen")));
    // keep again: UIDL says nothing is new.
    let (code, log) = fetchmail(home.path(), "127.0.0.1", port, "keep sslproto ''").await;
    assert_eq!(code, 1, "no new mail expected: {log}");
    assert_eq!(fetched_subjects(home.path()), 3);
    // New mail: only it is fetched.
    deliver(&server.store, &[message("four", "new")]).await;
    let (code, log) = fetchmail(home.path(), "127.0.0.1", port, "keep sslproto ''").await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(fetched_subjects(home.path()), 4, "{log}");
    // no keep, over implicit TLS with the certificate checked: everything
    // is fetched and deleted.
    let cert = server.dir.path().join("tls/cert.pem");
    let (code, log) = fetchmail(
        home.path(),
        "localhost",
        pop3.pop3s.port(),
        &format!(
            "nokeep fetchall ssl sslcertck sslcertfile \"{}\"",
            cert.display()
        ),
    )
    .await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(fetched_subjects(home.path()), 8, "{log}");
    assert!(inbox(&server).await.is_empty(), "{log}");
}

/// A SASL response that does not decode is a failed login, as a wrong
/// password is (and as imapd counts it): the session closes at the limit.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_sasl_responses_count_as_failed_logins() {
    let (_server, pop3) = with_mail(&three()).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(
        c.cmd("AUTH PLAIN !!!").await,
        "-ERR [AUTH] Authentication failed: invalid base64"
    );
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    assert!(c
        .cmd("%%%")
        .await
        .starts_with("-ERR [AUTH] Authentication failed"));
    assert_eq!(
        c.cmd("AUTH PLAIN !!!").await,
        "-ERR [AUTH] Too many failed logins; closing"
    );
    assert!(c.is_closed().await);
}

/// TOP n 0 sends the header section as the store measured it (the one
/// IMAP's BODY[HEADER] is), the blank line that ends it included, and TOP
/// n 1 one line more; bare line feeds go out as CRLF.
#[tokio::test]
async fn top_ends_where_the_stored_header_ends() {
    let server = Server::start().await;
    let id = server.account(ALICE).await;
    // (message, its header section, its first body line)
    let cases: [(&[u8], &[u8], &[u8]); 5] = [
        (
            b"Subject: a\nX-B: b\n\nfirst\nsecond\n",
            b"Subject: a\r\nX-B: b\r\n\r\n",
            b"first\r\n",
        ),
        (
            b"Subject: a\r\nX-B: b\r\n",
            b"Subject: a\r\nX-B: b\r\n",
            b"",
        ),
        (
            b"Subject: a\nX-B: b\n\r\nfirst\r\nsecond\r\n",
            b"Subject: a\r\nX-B: b\r\n\r\n",
            b"first\r\n",
        ),
        (
            b"Subject: a\r\n\r\n\r\nsecond\r\n",
            b"Subject: a\r\n\r\n",
            b"\r\n",
        ),
        (b"\r\nX-B: body\r\nsecond\r\n", b"\r\n", b"X-B: body\r\n"),
    ];
    for (raw, _, _) in &cases {
        server
            .store
            .append(id, "INBOX", raw.to_vec(), &[], now())
            .await
            .unwrap();
    }
    let pop3 = Pop3Server::start(&server).await;
    let mut c = logged_in(&pop3).await;
    for (i, (_, header, first)) in cases.iter().enumerate() {
        let n = i + 1;
        c.send(format!("TOP {n} 0\r\n").as_bytes()).await;
        ok(&c.line().await);
        assert_eq!(
            String::from_utf8_lossy(&c.body().await),
            String::from_utf8_lossy(header),
            "TOP {n} 0"
        );
        c.send(format!("TOP {n} 1\r\n").as_bytes()).await;
        ok(&c.line().await);
        assert_eq!(c.body().await, [*header, *first].concat(), "TOP {n} 1");
    }
}
