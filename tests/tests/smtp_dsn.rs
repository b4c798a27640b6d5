//! Delivery status notifications, black-box (issue 10, items 14 and 15):
//! the DSN extension (RFC 3461) on submission, reports written as Postfix
//! writes them (RFC 3464), and the parameters passed on to a next hop
//! that offers DSN. The remote side is the scripted fake server.
//!
//! Postfix 3.7.11's report for the same failure (a private Postfix
//! relaying to `smtp-sink -f RCPT -B "550 5.1.1 <nobody@remote.test>:
//! Recipient address rejected: User unknown"`, client `MAIL FROM:<…>
//! RET=HDRS ENVID=QQ+2B1-env`, `RCPT TO:<nobody@remote.test>
//! NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Orig+2BBox@remote.test`) had:
//!
//! ```text
//! Reporting-MTA: dns; pf.h2.test
//! Original-Envelope-Id: QQ+1-env
//! …
//! Final-Recipient: rfc822; nobody@remote.test
//! Original-Recipient: rfc822;Orig+Box@remote.test
//! Action: failed
//! Status: 5.1.1
//! Remote-MTA: dns; 127.0.0.1
//! Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: Recipient address
//!     rejected: User unknown
//! ```
//!
//! and a third part `text/rfc822-headers`. Its success report (Subject
//! "Successful Mail Delivery Report") had `Action: delivered` for a local
//! mailbox and `Action: relayed` with `Remote-MTA: dns; 127.0.0.1` and
//! `Diagnostic-Code: smtp; 250 2.0.0 Ok` for a hop without DSN, headers
//! only; to a hop with DSN it sent `MAIL FROM:<…> ENVID=env+2B2 RET=HDRS`
//! and `RCPT TO:<a@ok.test> ORCPT=rfc822;A@OK.test NOTIFY=SUCCESS,FAILURE`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::config::{Config, RelayTls, Transport};
use postern_tests::fake_smtp::{Behaviour, FakeSmtp};
use postern_tests::{Server, SmtpClient, SmtpReply, PASSWORD};

const ALICE: &str = "alice@localhost";

fn route_to(config: &mut Config, domain: &str, hop: SocketAddr) {
    config.relay.transport.insert(
        domain.to_string(),
        Transport {
            host: hop.to_string(),
            tls: RelayTls::None,
            username: None,
            password: None,
        },
    );
    config.relay.connect_timeout_secs = 2;
    config.relay.command_timeout_secs = 2;
    config.relay.data_timeout_secs = 3;
    config.relay.connection_cache_secs = 0;
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@localhost>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@localhost>\r\n\r\nThe body line.\r\n"
    )
    .into_bytes()
}

/// A logged-in submission session after EHLO.
async fn submission(server: &Server) -> (SmtpClient, SmtpReply) {
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert_eq!(ehlo.code, 250);
    c.auth_plain(ALICE, PASSWORD).await;
    (c, ehlo)
}

/// MAIL (with `mail` parameters), each RCPT line as given, DATA and the
/// message; every reply must be positive.
async fn send(c: &mut SmtpClient, mail: &str, rcpts: &[&str], msg: &[u8]) {
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}> {mail}")).await;
    assert_eq!(r.code, 250, "MAIL: {r:?}");
    for rcpt in rcpts {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert_eq!(r.code, 250, "RCPT {rcpt}: {r:?}");
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(msg).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
}

async fn wait_until_queue_empty(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.store.queue().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "queue not empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Alice's INBOX messages, raw, once there are `count` (and a moment
/// later, to see that no more come).
async fn alice_gets(server: &Server, count: usize) -> Vec<Vec<u8>> {
    wait_until_queue_empty(server).await;
    let inbox = server.wait_for_inbox(ALICE, count).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = server.account(ALICE).await;
    let inbox_now = server.store.messages(id, "INBOX").await.unwrap();
    assert_eq!(inbox_now.len(), inbox.len(), "no more messages");
    let mut out = Vec::new();
    for m in inbox_now {
        out.push(server.raw(ALICE, m.uid).await);
    }
    out
}

/// The report's `message/delivery-status` fields, unfolded, per block.
fn status_blocks(report: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(report);
    let start = text
        .find("Content-Type: message/delivery-status")
        .expect("a delivery-status part");
    let part = &text[start..];
    let body_start = part.find("\r\n\r\n").unwrap() + 4;
    let body = &part[body_start..];
    let body = &body[..body.find("\r\n--").unwrap()];
    let unfolded = body.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            block
                .split("\r\n")
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// DSN on EHLO, and the parameters checked as Postfix 3.7.11 checks them
/// (`501 5.5.4 Bad … parameter syntax`; before, every DSN parameter got
/// `555`).
#[tokio::test(flavor = "multi_thread")]
async fn dsn_is_offered_and_its_parameters_checked() {
    let server = Server::start_with(|c| c.smtp.max_errors = 100).await;
    let (mut c, ehlo) = submission(&server).await;
    assert!(ehlo.lines.iter().any(|l| l == "DSN"), "{ehlo:?}");
    let mail: &[(&str, u16)] = &[
        ("RET=FULL", 250),
        ("RET=hdrs ENVID=QQ+2B1", 250),
        ("ENVID=a=b", 250),
        ("RET=FOO", 501),
        ("RET=FULL RET=HDRS", 501),
        ("ENVID=", 501),
        ("ENVID=a+ZZ", 501),
        ("ENVID=a+0A", 501),
        ("ENVID=a ENVID=b", 501),
    ];
    for (params, code) in mail {
        let r = c.cmd(&format!("MAIL FROM:<{ALICE}> {params}")).await;
        assert_eq!(r.code, *code, "{params}: {r:?}");
        if *code == 501 {
            assert!(r.lines[0].starts_with("5.5.4 Bad "), "{r:?}");
        }
        assert_eq!(c.cmd("RSET").await.code, 250);
    }
    assert_eq!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).await.code, 250);
    // The sequence is checked first (Postfix: 503 5.5.1 Error: nested MAIL
    // command).
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}> RET=FOO")).await;
    assert_eq!(r.code, 503, "{r:?}");
    let rcpt: &[(&str, u16)] = &[
        ("NOTIFY=NEVER", 250),
        ("NOTIFY=SUCCESS,FAILURE,DELAY", 250),
        ("notify=failure,delay orcpt=rfc822;x@y", 250),
        ("ORCPT=utf-8;a@b", 250),
        ("ORCPT=rfc822;Bob+2Bx@example.org", 250),
        ("NOTIFY=NEVER,SUCCESS", 501),
        ("NOTIFY=", 501),
        ("NOTIFY=FOO", 501),
        ("NOTIFY=SUCCESS NOTIFY=FAILURE", 501),
        ("ORCPT=rfc822", 501),
        ("ORCPT=;a@b", 501),
        ("ORCPT=rfc822;a+ZZ", 501),
    ];
    for (params, code) in rcpt {
        let r = c.cmd(&format!("RCPT TO:<{ALICE}> {params}")).await;
        assert_eq!(r.code, *code, "{params}: {r:?}");
        if *code == 501 {
            assert!(r.lines[0].starts_with("5.5.4 Bad "), "{r:?}");
        }
    }
}

/// A remote 550 comes back as Postfix writes it: `Remote-MTA: dns;` the
/// host (for a hop given as an address, the address), `Diagnostic-Code:
/// smtp;` the reply, ENVID and ORCPT decoded, and with `RET=HDRS` the
/// header section only.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_report_reads_as_postfix_writes_it() {
    let fake = FakeSmtp::start(Behaviour::default().reject_recipient(
        "nobody@example.org",
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown",
    ))
    .await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let (mut c, _) = submission(&server).await;
    send(
        &mut c,
        "RET=HDRS ENVID=QQ+2B1-env",
        &["<nobody@example.org> NOTIFY=FAILURE ORCPT=rfc822;Orig+2BBox@example.org"],
        &message("failing"),
    )
    .await;
    let got = alice_gets(&server, 1).await;
    let report = &got[0];
    let text = String::from_utf8_lossy(report);
    assert!(
        text.contains("Subject: Undelivered Mail Returned to Sender"),
        "{text}"
    );
    let blocks = status_blocks(report);
    assert_eq!(field(&blocks[0], "Original-Envelope-Id"), Some("QQ+1-env"));
    assert_eq!(field(&blocks[0], "Reporting-MTA"), Some("dns; localhost"));
    let nobody = &blocks[1];
    assert_eq!(
        field(nobody, "Final-Recipient"),
        Some("rfc822; nobody@example.org")
    );
    assert_eq!(
        field(nobody, "Original-Recipient"),
        Some("rfc822;Orig+Box@example.org")
    );
    assert_eq!(field(nobody, "Action"), Some("failed"));
    assert_eq!(field(nobody, "Status"), Some("5.1.1"));
    assert_eq!(field(nobody, "Remote-MTA"), Some("dns; 127.0.0.1"));
    assert_eq!(
        field(nobody, "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown")
    );
    // RET=HDRS: the header section, not the body.
    assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
    assert!(text.contains("Subject: failing"), "{text}");
    assert!(!text.contains("The body line."), "{text}");
    // The report itself went in with the null sender.
    assert!(report.starts_with(b"Return-Path: <>\r\n"));
}

/// Without any DSN parameter too: `Remote-MTA: dns; 127.0.0.1` (before:
/// `dns; 127.0.0.1[127.0.0.1]:PORT`, not a host name) and `Diagnostic-Code:
/// smtp; 550 …` (before: `X-Postern; host … said: 550 …`), and a
/// multi-line reply on one line as it came. Postfix 3.7.11, for the same
/// reply from a scripted server: `Remote-MTA: dns; 127.0.0.1`,
/// `Diagnostic-Code: smtp; 550-5.1.1 <nobody@multi.test>: Recipient
/// address rejected: 550 5.1.1 User unknown`.
#[tokio::test(flavor = "multi_thread")]
async fn remote_mta_and_diagnostic_code_are_postfixs() {
    let fake = FakeSmtp::start(Behaviour::default().reject_recipient(
        "nobody@example.org",
        "550-5.1.1 <nobody@example.org>: Recipient address rejected:\r\n550 5.1.1 User unknown",
    ))
    .await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let (mut c, _) = submission(&server).await;
    let r = c
        .send_mail(ALICE, &["nobody@example.org"], &message("plain"))
        .await;
    assert_eq!(r.code, 250);
    let got = alice_gets(&server, 1).await;
    let blocks = status_blocks(&got[0]);
    let nobody = &blocks[1];
    assert_eq!(field(nobody, "Remote-MTA"), Some("dns; 127.0.0.1"));
    assert_eq!(
        field(nobody, "Diagnostic-Code"),
        Some(
            "smtp; 550-5.1.1 <nobody@example.org>: Recipient address rejected: 550 5.1.1 User unknown"
        )
    );
    assert_eq!(field(nobody, "Original-Recipient"), None, "no ORCPT given");
    assert_eq!(
        field(&blocks[0], "Original-Envelope-Id"),
        None,
        "no ENVID given"
    );
    // Without RET, the whole original comes back.
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Content-Type: message/rfc822"), "{text}");
    assert!(text.contains("The body line."), "{text}");
}

/// NOTIFY=NEVER, and NOTIFY without FAILURE, get no failure report; the
/// default (no NOTIFY) does.
#[tokio::test(flavor = "multi_thread")]
async fn notify_decides_whether_a_failure_is_reported() {
    let fake = FakeSmtp::start(Behaviour {
        rcpt_reply: std::sync::Arc::new(|rcpt| {
            if rcpt.starts_with("no") {
                "550 5.1.1 no such user".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Behaviour::default()
    })
    .await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let (mut c, _) = submission(&server).await;
    send(
        &mut c,
        "",
        &[
            "<nobody1@example.org> NOTIFY=NEVER",
            "<nobody2@example.org> NOTIFY=SUCCESS,DELAY",
        ],
        &message("quiet"),
    )
    .await;
    assert!(alice_gets(&server, 0).await.is_empty(), "no report");
    send(
        &mut c,
        "",
        &[
            "<nobody3@example.org> NOTIFY=NEVER",
            "<nobody4@example.org>",
        ],
        &message("half"),
    )
    .await;
    let got = alice_gets(&server, 1).await;
    let blocks = status_blocks(&got[0]);
    assert_eq!(blocks.len(), 2, "only nobody4: {blocks:?}");
    assert_eq!(
        field(&blocks[1], "Final-Recipient"),
        Some("rfc822; nobody4@example.org")
    );
}

/// NOTIFY=SUCCESS for a local mailbox: `Action: delivered`, ORCPT in
/// `Original-Recipient`, the header section only; for a hop without DSN:
/// `Action: relayed` with the hop and its reply.
#[tokio::test(flavor = "multi_thread")]
async fn success_reports_for_delivered_and_relayed() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let (mut c, _) = submission(&server).await;
    send(
        &mut c,
        "ENVID=env+2B2",
        &[&format!(
            "<{ALICE}> NOTIFY=SUCCESS ORCPT=rfc822;A+2Bx@localhost"
        )],
        &message("local"),
    )
    .await;
    let got = alice_gets(&server, 2).await;
    let report = got
        .iter()
        .find(|m| m.windows(15).any(|w| w == b"Delivery Report"))
        .expect("a success report");
    let text = String::from_utf8_lossy(report);
    assert!(
        text.contains("Subject: Successful Mail Delivery Report"),
        "{text}"
    );
    let blocks = status_blocks(report);
    assert_eq!(field(&blocks[0], "Original-Envelope-Id"), Some("env+2"));
    let alice = &blocks[1];
    assert_eq!(field(alice, "Action"), Some("delivered"));
    assert_eq!(field(alice, "Status"), Some("2.0.0"));
    assert_eq!(
        field(alice, "Final-Recipient"),
        Some("rfc822; alice@localhost")
    );
    assert_eq!(
        field(alice, "Original-Recipient"),
        Some("rfc822;A+x@localhost")
    );
    assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
    assert!(!text.contains("The body line."), "{text}");

    send(
        &mut c,
        "",
        &["<bob@example.org> NOTIFY=SUCCESS", "<carol@example.org>"],
        &message("relayed"),
    )
    .await;
    // The message, its report, and now the relayed report.
    let got = alice_gets(&server, 3).await;
    let relayed = got
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("Action: relayed"))
        .expect("a relayed report");
    let blocks = status_blocks(relayed);
    assert_eq!(blocks.len(), 2, "bob only: {blocks:?}");
    let bob = &blocks[1];
    assert_eq!(
        field(bob, "Final-Recipient"),
        Some("rfc822; bob@example.org")
    );
    assert_eq!(field(bob, "Remote-MTA"), Some("dns; 127.0.0.1"));
    assert_eq!(
        field(bob, "Diagnostic-Code"),
        Some("smtp; 250 2.0.0 Ok: queued")
    );
    // No DSN parameters to a hop that does not offer DSN.
    let t = fake.transactions();
    assert!(t[0]
        .params()
        .iter()
        .all(|p| !p.starts_with("RET") && !p.starts_with("ENVID")));
    assert!(
        fake.commands().iter().all(|l| !l.contains("NOTIFY")),
        "{:?}",
        fake.commands()
    );
}

/// A next hop that offers DSN gets RET, ENVID, NOTIFY and ORCPT as the
/// client gave them, and reports success itself: none from us.
#[tokio::test(flavor = "multi_thread")]
async fn dsn_parameters_go_on_to_a_hop_that_offers_dsn() {
    let fake = FakeSmtp::start(Behaviour::with_capabilities(&[
        "PIPELINING",
        "8BITMIME",
        "DSN",
        "SIZE 10240000",
    ]))
    .await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let (mut c, _) = submission(&server).await;
    send(
        &mut c,
        "RET=HDRS ENVID=env+2B2",
        &[
            "<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2Bx@example.org",
            "<carol@example.org>",
            "<dave@example.org> NOTIFY=NEVER",
        ],
        &message("onward"),
    )
    .await;
    assert!(alice_gets(&server, 0).await.is_empty(), "no report from us");
    let t = fake.transactions();
    assert_eq!(t.len(), 1);
    let params = t[0].params();
    assert!(params.contains(&"RET=HDRS"), "{params:?}");
    assert!(params.contains(&"ENVID=env+2B2"), "{params:?}");
    let commands = fake.commands();
    for want in [
        "RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2Bx@example.org",
        "RCPT TO:<carol@example.org>",
        "RCPT TO:<dave@example.org> NOTIFY=NEVER",
    ] {
        assert!(commands.iter().any(|l| l == want), "{want}: {commands:?}");
    }
}

/// Waits, without polling on a timer, until alice's INBOX holds `count`
/// messages; panics if that takes longer than `within`.
async fn alice_has_within(server: &Server, count: usize, within: Duration) {
    let id = server.account(ALICE).await;
    let mut changes = server.store.watch_changes();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        changes.borrow_and_update();
        let n = server.store.messages(id, "INBOX").await.unwrap().len();
        if n >= count {
            return;
        }
        let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
        assert!(
            changed.is_ok(),
            "alice has {n} of {count} messages after {within:?}"
        );
    }
}

/// A report the queue manager queues (a bounce for a relayed recipient
/// the next hop refused, a success notice for a local delivery) is
/// delivered at once, not at the queue manager's next look at the queue
/// (every 5 s with these backoffs).
#[tokio::test(flavor = "multi_thread")]
async fn reports_go_out_without_waiting_for_the_next_queue_scan() {
    let fake = FakeSmtp::start(Behaviour::default().reject_recipient(
        "nobody@example.org",
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown",
    ))
    .await;
    let server = Server::start_with(|c| {
        route_to(c, "example.org", fake.addr());
        // The queue is looked at every min(min_backoff, 5 s).
        c.queue.min_backoff_secs = 60;
        c.queue.max_backoff_secs = 600;
    })
    .await;
    let (mut c, _) = submission(&server).await;
    let quick = Duration::from_millis(2500);
    send(&mut c, "", &["<nobody@example.org>"], &message("bounced")).await;
    alice_has_within(&server, 1, quick).await;
    send(
        &mut c,
        "",
        &[&format!("<{ALICE}> NOTIFY=SUCCESS")],
        &message("noticed"),
    )
    .await;
    // The message, then its success report.
    alice_has_within(&server, 3, quick).await;
    let got = alice_gets(&server, 3).await;
    let text: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(text[0].contains("Subject: Undelivered Mail Returned to Sender"));
    assert!(text[1].contains("Subject: noticed"));
    assert!(text[2].contains("Subject: Successful Mail Delivery Report"));
}
