//! Quotas at the SMTP side, black-box: a local recipient already full is
//! refused at RCPT with `452 4.2.2` (the others of the transaction are
//! not); a message accepted that does not fit at delivery goes through
//! the queue, which bounces it for that recipient with a `5.2.2` report
//! and delivers it to the others; nothing is lost. POP3 sees nothing of
//! quotas.

use std::time::{Duration, Instant};

use postern_tests::{Pop3Server, Server, SmtpClient, PASSWORD};
use store::{QuotaLimit, Uid};

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const CAROL: &str = "carol@localhost";

/// A message of about `kib` KiB from alice.
fn message_of(subject: &str, kib: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: Alice <alice@localhost>\r\nTo: Bob <bob@localhost>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@localhost>\r\n\r\n"
    )
    .into_bytes();
    while raw.len() < kib * 1024 {
        raw.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    raw
}

async fn with_bob_and_carol() -> Server {
    let server = Server::start().await;
    for address in [BOB, CAROL] {
        server
            .store
            .add_account(address, PASSWORD)
            .await
            .expect("add account");
    }
    server
}

async fn connect(server: &Server) -> SmtpClient {
    let (mut smtp, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.cmd("EHLO client.example").await.code, 250);
    smtp
}

/// Waits until the queue is empty (at most 20 s).
async fn wait_for_empty_queue(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let queue = server.store.queue().await.expect("queue");
        if queue.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still queued: {queue:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_full_recipient_is_refused_at_rcpt_and_the_others_get_the_mail() {
    let server = with_bob_and_carol().await;
    server
        .store
        .set_quota(BOB, QuotaLimit::Keep, QuotaLimit::Set(1))
        .await
        .unwrap();
    let mut smtp = connect(&server).await;
    let r = smtp
        .send_mail("someone@example.com", &[BOB], &message_of("first", 1))
        .await;
    assert_eq!(r.code, 250, "{}", r.text());
    server.wait_for_inbox(BOB, 1).await;

    // Bob is full now: 452 4.2.2 for him, carol is still taken.
    assert_eq!(smtp.cmd("MAIL FROM:<someone@example.com>").await.code, 250);
    let r = smtp.cmd(&format!("RCPT TO:<{BOB}>")).await;
    assert_eq!(r.code, 452, "{}", r.text());
    assert!(r.text().contains("4.2.2"), "{}", r.text());
    assert!(r.text().contains("Mailbox full"), "{}", r.text());
    assert_eq!(smtp.cmd(&format!("RCPT TO:<{CAROL}>")).await.code, 250);
    assert_eq!(smtp.cmd("DATA").await.code, 354);
    smtp.send(&postern_tests::dot_stuff(&message_of("second", 1)))
        .await;
    smtp.send(b".\r\n").await;
    assert_eq!(smtp.reply().await.code, 250);
    server.wait_for_inbox(CAROL, 1).await;
    assert_eq!(server.wait_for_inbox(BOB, 1).await.len(), 1);

    // A second session is refused the same way; the session goes on.
    let mut other = connect(&server).await;
    assert_eq!(other.cmd("MAIL FROM:<x@example.com>").await.code, 250);
    assert_eq!(other.cmd(&format!("RCPT TO:<{BOB}>")).await.code, 452);
    assert_eq!(other.cmd("RSET").await.code, 250);

    // Room again once the limit is raised.
    server
        .store
        .set_quota(BOB, QuotaLimit::Keep, QuotaLimit::Unlimited)
        .await
        .unwrap();
    assert_eq!(other.cmd("MAIL FROM:<x@example.com>").await.code, 250);
    assert_eq!(other.cmd(&format!("RCPT TO:<{BOB}>")).await.code, 250);

    // POP3 shows the mailbox as it is.
    let pop3 = Pop3Server::start(&server).await;
    let (mut c, greeting) = postern_tests::Pop3Client::connect(pop3.pop3).await;
    assert!(greeting.starts_with("+OK"), "{greeting}");
    c.login(BOB, PASSWORD).await;
    assert!(c.cmd("STAT").await.starts_with("+OK 1 "));
}

#[tokio::test]
async fn an_accepted_message_that_does_not_fit_is_bounced_for_that_recipient() {
    let server = with_bob_and_carol().await;
    server
        .store
        .set_quota(BOB, QuotaLimit::Set(2), QuotaLimit::Keep)
        .await
        .unwrap();
    // Bob has room at RCPT, but not for 4 KiB: accepted (250), then
    // queued, delivered to carol and bounced to alice for bob.
    let mut smtp = connect(&server).await;
    let r = smtp
        .send_mail(ALICE, &[BOB, CAROL], &message_of("too-big-for-bob", 4))
        .await;
    assert_eq!(r.code, 250, "{}", r.text());
    server.wait_for_inbox(CAROL, 1).await;
    let reports = server.wait_for_inbox(ALICE, 1).await;
    assert_eq!(reports.len(), 1);
    let report = String::from_utf8_lossy(&server.raw(ALICE, Uid(1)).await).into_owned();
    assert!(
        report.contains("Final-Recipient: rfc822; bob@localhost"),
        "{report}"
    );
    assert!(report.contains("Action: failed"), "{report}");
    assert!(report.contains("Status: 5.2.2"), "{report}");
    assert!(report.contains("mailbox full"), "{report}");
    assert!(
        !report.contains("Final-Recipient: rfc822; carol@localhost"),
        "{report}"
    );
    wait_for_empty_queue(&server).await;
    let bob = server.account(BOB).await;
    assert!(server
        .store
        .messages(bob, "INBOX")
        .await
        .unwrap()
        .is_empty());
    let quota = server.store.quota(bob).await.unwrap();
    assert_eq!(quota.used_messages, 0);

    // A message that fits goes straight in, as before.
    let r = smtp.send_mail(ALICE, &[BOB], &message_of("small", 1)).await;
    assert_eq!(r.code, 250, "{}", r.text());
    server.wait_for_inbox(BOB, 1).await;
}

/// With NOTIFY=SUCCESS,FAILURE for both: the failure report names the
/// recipient without room, the success report only the one delivered.
#[tokio::test]
async fn reports_name_the_full_recipient_failed_and_only_the_other_delivered() {
    let server = with_bob_and_carol().await;
    server
        .store
        .set_quota(BOB, QuotaLimit::Set(2), QuotaLimit::Keep)
        .await
        .unwrap();
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c.auth_plain(ALICE, PASSWORD).await;
    assert_eq!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).await.code, 250);
    for rcpt in [BOB, CAROL] {
        let r = c
            .cmd(&format!("RCPT TO:<{rcpt}> NOTIFY=SUCCESS,FAILURE"))
            .await;
        assert_eq!(r.code, 250, "{}", r.text());
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(&postern_tests::dot_stuff(&message_of("notify", 4)))
        .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    server.wait_for_inbox(CAROL, 1).await;
    let reports = server.wait_for_inbox(ALICE, 2).await;
    assert_eq!(reports.len(), 2);
    let mut texts = Vec::new();
    for m in &reports {
        texts.push(String::from_utf8_lossy(&server.raw(ALICE, m.uid).await).into_owned());
    }
    let failure = texts
        .iter()
        .find(|t| t.contains("Action: failed"))
        .expect("a failure report");
    assert!(
        failure.contains("Final-Recipient: rfc822; bob@localhost"),
        "{failure}"
    );
    assert!(failure.contains("Status: 5.2.2"), "{failure}");
    assert!(!failure.contains("carol@localhost\r\nAction"), "{failure}");
    let success = texts
        .iter()
        .find(|t| t.contains("Action: delivered"))
        .expect("a success report");
    assert!(
        success.contains("Final-Recipient: rfc822; carol@localhost"),
        "{success}"
    );
    assert!(
        !success.contains("Final-Recipient: rfc822; bob@localhost"),
        "{success}"
    );
    wait_for_empty_queue(&server).await;
}
