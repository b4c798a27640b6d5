//! Who may relay, and who may send as whom, on every listener.
//!
//! The open-relay battery: every address trick that has made some server
//! relay must be refused to clients that may not relay, on the MX port, on
//! submission before AUTH, and over implicit TLS; clients that may relay
//! (authenticated, or from `[relay] trusted_networks`) get remote
//! recipients, but still never an address literal or a malformed domain.

use postern_tests::{Server, SmtpClient, SmtpReply, PASSWORD};

async fn ehlo(client: &mut SmtpClient) -> SmtpReply {
    let r = client.cmd("EHLO client.example").await;
    assert_eq!(r.code, 250, "{r:?}");
    r
}

/// Addresses that must never be relayed for a client that may not relay:
/// (address, expected code, expected enhanced status).
const TRICKS: &[(&str, u16, &str)] = &[
    ("<someone@example.com>", 554, "5.7.1"),
    ("<someone@EXAMPLE.com>", 554, "5.7.1"),
    ("<alice@localhost.>", 554, "5.7.1"),
    ("<alice@localhost..>", 501, "5.1.3"),
    ("<alice@.localhost>", 501, "5.1.3"),
    ("<alice@sub.localhost>", 554, "5.7.1"),
    ("<alice@localhost.example.com>", 554, "5.7.1"),
    ("<@localhost:someone@example.com>", 554, "5.7.1"),
    ("<@localhost,@localhost:someone@example.com>", 554, "5.7.1"),
    ("<someone%example.com@localhost>", 550, "5.1.1"),
    ("<example.com!someone@localhost>", 550, "5.1.1"),
    ("<someone@example.com@localhost>", 501, "5.1.3"),
    ("<\"someone@example.com\"@localhost>", 550, "5.1.1"),
    ("<\"someone%example.com\"@localhost>", 550, "5.1.1"),
    ("<alice@[127.0.0.1]>", 501, "5.1.3"),
    ("<someone@[1.2.3.4]>", 501, "5.1.3"),
    ("<someone@[IPv6:::1]>", 501, "5.1.3"),
    // Non-ASCII without SMTPUTF8 is refused before any routing.
    ("<alice@ｌｏｃａｌｈｏｓｔ>", 553, "5.6.7"),
];

/// The same tricks with SMTPUTF8: a look-alike domain is not ours.
const UTF8_TRICKS: &[(&str, u16, &str)] = &[
    ("<alice@ｌｏｃａｌｈｏｓｔ>", 554, "5.7.1"),
    ("<alice@lоcalhost>", 554, "5.7.1"), // Cyrillic о
    ("<alice@xn--localhost-9ya>", 554, "5.7.1"),
];

/// Sends `RCPT TO:` for each address and checks code and enhanced status.
async fn expect_rcpt(c: &mut SmtpClient, cases: &[(&str, u16, &str)], what: &str) {
    for (addr, code, status) in cases {
        let r = c.cmd(&format!("RCPT TO:{addr}")).await;
        assert_eq!(r.code, *code, "{what}: {addr}: {r:?}");
        assert!(r.lines[0].starts_with(status), "{what}: {addr}: {r:?}");
    }
}

async fn refuses_relay(c: &mut SmtpClient, sender: &str, what: &str) {
    assert_eq!(
        c.cmd(&format!("MAIL FROM:<{sender}>")).await.code,
        250,
        "{what}"
    );
    expect_rcpt(c, TRICKS, what).await;
    // Nothing was accepted, so there is nothing to send.
    assert_eq!(c.cmd("DATA").await.code, 554, "{what}");
    assert_eq!(c.cmd("RSET").await.code, 250);
    let r = c.cmd(&format!("MAIL FROM:<{sender}> SMTPUTF8")).await;
    assert_eq!(r.code, 250, "{what}: {r:?}");
    expect_rcpt(c, UTF8_TRICKS, what).await;
    assert_eq!(c.cmd("RSET").await.code, 250);
    // The session is still good for local mail.
    assert_eq!(c.cmd(&format!("MAIL FROM:<{sender}>")).await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(c.cmd("RSET").await.code, 250);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mx_port_never_relays() {
    // Every refusal counts as an error; let the battery run to its end.
    let server = Server::start_with(|c| c.smtp.max_errors = 1000).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    refuses_relay(&mut c, "someone@example.com", "MX").await;
    // STARTTLS does not make a client trusted.
    c.cmd("STARTTLS").await;
    let mut c = c.start_tls(server.dir.path()).await;
    ehlo(&mut c).await;
    refuses_relay(&mut c, "someone@example.com", "MX after STARTTLS").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_without_auth_takes_nothing() {
    let server = Server::start().await;
    for (name, mut c) in [
        ("submission", SmtpClient::connect(server.submission).await.0),
        (
            "submissions",
            SmtpClient::connect_tls(server.submissions, server.dir.path())
                .await
                .0,
        ),
    ] {
        ehlo(&mut c).await;
        let r = c.cmd("MAIL FROM:<alice@localhost>").await;
        assert_eq!((r.code, &r.lines[0][..5]), (530, "5.7.0"), "{name}");
        let r = c.cmd("RCPT TO:<someone@example.com>").await;
        assert_eq!(r.code, 503, "{name}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticated_users_relay_but_never_to_literals_or_bad_domains() {
    let server = Server::start_with(|c| c.smtp.max_errors = 1000).await;
    for (name, mut c) in [
        ("submission", SmtpClient::connect(server.submission).await.0),
        (
            "submissions",
            SmtpClient::connect_tls(server.submissions, server.dir.path())
                .await
                .0,
        ),
    ] {
        ehlo(&mut c).await;
        c.auth_plain("alice@localhost", PASSWORD).await;
        assert_eq!(c.cmd("MAIL FROM:<alice@localhost>").await.code, 250);
        let cases: &[(&str, u16, &str)] = &[
            ("<someone@example.com>", 250, "2.1.5"),
            ("<Someone@Example.COM>", 250, "2.1.5"),
            ("<user%other@example.com>", 250, "2.1.5"),
            ("<@relay.example:someone@example.com>", 250, "2.1.5"),
            ("<alice@localhost>", 250, "2.1.5"),
            ("<nobody@localhost>", 550, "5.1.1"),
            ("<someone%example.com@localhost>", 550, "5.1.1"),
            ("<someone@example.com.>", 553, "5.1.2"),
            ("<someone@example..com>", 501, "5.1.3"),
            ("<someone@-example.com>", 553, "5.1.2"),
            ("<someone@exa_mple.com>", 553, "5.1.2"),
            ("<someone@[1.2.3.4]>", 501, "5.1.3"),
        ];
        expect_rcpt(&mut c, cases, name).await;
        assert_eq!(c.cmd("RSET").await.code, 250);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sender_must_belong_to_the_login() {
    let server = Server::start().await;
    server
        .store
        .add_account("bob@localhost", PASSWORD)
        .await
        .unwrap();
    server
        .store
        .add_alias("sales@localhost", "alice@localhost")
        .await
        .unwrap();
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    ehlo(&mut c).await;
    c.auth_plain("alice@localhost", PASSWORD).await;
    let cases: &[(&str, u16, &str)] = &[
        ("<alice@localhost>", 250, "2.1.0"),
        ("<ALICE@localhost>", 250, "2.1.0"),
        ("<alice+lists@localhost>", 250, "2.1.0"),
        ("<sales@localhost>", 250, "2.1.0"),
        ("<bob@localhost>", 553, "5.7.1"),
        ("<alice@example.com>", 553, "5.7.1"),
        ("<nobody@localhost>", 553, "5.7.1"),
        ("<>", 553, "5.7.1"),
    ];
    for (sender, code, status) in cases {
        let r = c.cmd(&format!("MAIL FROM:{sender}")).await;
        assert_eq!(r.code, *code, "{sender}: {r:?}");
        assert!(r.lines[0].starts_with(status), "{sender}: {r:?}");
        assert_eq!(c.cmd("RSET").await.code, 250);
    }

    // The check can be lifted.
    let relaxed = Server::start_with(|c| c.relay.require_sender_login_match = false).await;
    let (mut c, _) = SmtpClient::connect(relaxed.submission).await;
    ehlo(&mut c).await;
    c.auth_plain("alice@localhost", PASSWORD).await;
    assert_eq!(c.cmd("MAIL FROM:<anyone@example.com>").await.code, 250);
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_networks_may_relay_without_auth() {
    let server =
        Server::start_with(|c| c.relay.trusted_networks = vec!["127.0.0.0/8".into()]).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    assert_eq!(c.cmd("MAIL FROM:<app@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<someone@example.com>").await.code, 250);
    let r = c.cmd("RCPT TO:<someone@[1.2.3.4]>").await;
    assert_eq!(r.code, 501, "{r:?}");
    let r = c.cmd("RCPT TO:<someone@example.com.>").await;
    assert_eq!(r.code, 553, "{r:?}");

    // A network that does not hold the client changes nothing.
    let other = Server::start_with(|c| {
        c.relay.trusted_networks = vec!["10.0.0.0/8".into()];
        c.smtp.max_errors = 1000;
    })
    .await;
    let (mut c, _) = SmtpClient::connect(other.smtp).await;
    ehlo(&mut c).await;
    refuses_relay(&mut c, "app@example.com", "untrusted network").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_trusted_network_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = postern_tests::test_config(dir.path());
    config.relay.trusted_networks = vec!["10.0.0.0/40".into()];
    let config = std::sync::Arc::new(config);
    let store = store::Store::open(dir.path()).unwrap();
    let ctx = std::sync::Arc::new(smtpd::SmtpContext {
        shared: postern_tests::shared(config.clone(), store),
        queue: smtpd::QueueHandle::default(),
        rules: common::rules::Rules::new(&config.rules),
        events: common::events::EventBus::default(),
    });
    let tracker = tokio_util::task::TaskTracker::new();
    let e = smtpd::start(ctx, tokio_util::sync::CancellationToken::new(), &tracker)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("10.0.0.0/40"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_loops_are_refused_at_the_end_of_data() {
    let server = Server::start_with(|c| c.relay.max_received_headers = 5).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    // Four earlier hops plus ours is five: accepted.
    let mut ok = String::new();
    for i in 0..4 {
        ok.push_str(&format!("Received: from hop{i} by hop{}\r\n", i + 1));
    }
    ok.push_str("Subject: four hops\r\n\r\nbody\r\n");
    let r = c
        .send_mail("bob@example.com", &["alice@localhost"], ok.as_bytes())
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let looped = format!("Received: from hop9 by hop10\r\n{ok}");
    let r = c
        .send_mail("bob@example.com", &["alice@localhost"], looped.as_bytes())
        .await;
    assert_eq!((r.code, &r.lines[0][..5]), (554, "5.4.6"), "{r:?}");
    assert_eq!(c.cmd("NOOP").await.code, 250, "the session goes on");
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(messages.len(), 1);
}
