//! The outbound SMTP client against a scripted fake server on 127.0.0.1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::config::RelayTls;
use postern_tests::fake_smtp::{Behaviour, FakeSmtp, Step};
use smtpd::relay::{
    BodyParam, Client, Envelope, Failure, FailureKind, Hop, RecipientResult, Stage, Timeouts,
};

const HELO: &str = "relay.postern.test";

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        command: Duration::from_secs(2),
        data: Duration::from_secs(2),
    }
}

fn hop(addr: SocketAddr, tls: RelayTls) -> Hop {
    Hop {
        host: "localhost".into(),
        addr,
        tls,
        auth: None,
    }
}

fn recipients(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn envelope<'a>(recipients: &'a [String]) -> Envelope<'a> {
    Envelope {
        sender: "alice@postern.test",
        recipients,
        body: BodyParam::None,
        smtputf8: false,
        size: None,
        ret: None,
        envid: None,
        recipient_dsn: &[],
    }
}

/// A message whose lines starting with "." need stuffing, including one
/// that is a lone dot.
const TRICKY: &[u8] =
    b"From: alice@postern.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n";

async fn connect(fake: &FakeSmtp, tls: RelayTls) -> Client {
    Client::connect(&hop(fake.addr(), tls), HELO, &timeouts())
        .await
        .expect("connect")
}

async fn connect_err(fake: &FakeSmtp, tls: RelayTls) -> Failure {
    Client::connect(&hop(fake.addr(), tls), HELO, &timeouts())
        .await
        .expect_err("connect should fail")
}

/// Sends TRICKY to three recipients, the middle one rejected; checks the
/// results and what the fake received.
async fn three_recipients_one_rejected(fake: &FakeSmtp) {
    let mut client = connect(fake, RelayTls::None).await;
    let rcpts = recipients(&["a@remote.test", "bob@remote.test", "c@remote.test"]);
    let delivery = client.send(&envelope(&rcpts), TRICKY).await.unwrap();
    assert_eq!(delivery.recipients[0], RecipientResult::Accepted);
    match &delivery.recipients[1] {
        RecipientResult::Rejected(reply) => {
            assert_eq!(reply.code, 550);
            assert_eq!(reply.text, "5.1.1 no such user");
        }
        other => panic!("bob: {other:?}"),
    }
    assert_eq!(delivery.recipients[2], RecipientResult::Accepted);
    let data = delivery.data.expect("data reply");
    assert_eq!((data.code, delivery.data_stage), (250, Stage::EndOfData));
    client.quit().await;

    let seen = fake.transactions();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].sender(), "alice@postern.test");
    assert_eq!(seen[0].helo, HELO);
    assert_eq!(seen[0].recipients, ["a@remote.test", "c@remote.test"]);
    assert_eq!(seen[0].message, TRICKY);
    assert!(
        fake.protocol_errors().is_empty(),
        "{:?}",
        fake.protocol_errors()
    );
    assert_eq!(fake.commands().last().map(String::as_str), Some("QUIT"));
}

fn bob_rejected(behaviour: Behaviour) -> Behaviour {
    behaviour.reject_recipient("bob@remote.test", "550 5.1.1 no such user")
}

#[tokio::test]
async fn pipelined_transaction_with_one_recipient_rejected() {
    let fake = FakeSmtp::start(bob_rejected(Behaviour::default())).await;
    three_recipients_one_rejected(&fake).await;
    // MAIL and the RCPTs came with DATA right behind them.
    assert!(
        fake.pipelined_commands() >= 4,
        "{}",
        fake.pipelined_commands()
    );
}

#[tokio::test]
async fn one_command_at_a_time_without_pipelining() {
    let fake = FakeSmtp::start(bob_rejected(Behaviour::with_capabilities(&["8BITMIME"]))).await;
    three_recipients_one_rejected(&fake).await;
    let commands = fake.commands();
    assert_eq!(
        commands,
        [
            format!("EHLO {HELO}"),
            "MAIL FROM:<alice@postern.test>".into(),
            "RCPT TO:<a@remote.test>".into(),
            "RCPT TO:<bob@remote.test>".into(),
            "RCPT TO:<c@remote.test>".into(),
            "DATA".into(),
            "QUIT".into(),
        ]
    );
}

#[tokio::test]
async fn helo_when_ehlo_is_refused() {
    let fake = FakeSmtp::start(Behaviour {
        ehlo_reply: Some("502 5.5.1 EHLO not implemented".into()),
        ..Behaviour::default()
    })
    .await;
    let mut client = connect(&fake, RelayTls::May).await;
    assert!(!client.capabilities().pipelining);
    let rcpts = recipients(&["a@remote.test"]);
    let delivery = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
    assert_eq!(delivery.data.unwrap().code, 250);
    assert!(fake.commands().contains(&format!("HELO {HELO}")));
    assert!(fake.protocol_errors().is_empty());
}

#[tokio::test]
async fn body_8bitmime_only_when_offered() {
    let rcpts = recipients(&["a@remote.test"]);
    let eight_bit = Envelope {
        body: BodyParam::EightBitMime,
        ..envelope(&rcpts)
    };
    let offering = FakeSmtp::start(Behaviour::default()).await;
    let mut client = connect(&offering, RelayTls::None).await;
    client
        .send(&eight_bit, "caf\u{e9}\r\n".as_bytes())
        .await
        .unwrap();
    client.send(&envelope(&rcpts), b"plain\r\n").await.unwrap();
    let seen = offering.transactions();
    assert_eq!(seen[0].params(), ["BODY=8BITMIME"]);
    assert!(seen[1].params().is_empty());

    let not_offering = FakeSmtp::start(Behaviour::with_capabilities(&["PIPELINING"])).await;
    let mut client = connect(&not_offering, RelayTls::None).await;
    client
        .send(&eight_bit, "caf\u{e9}\r\n".as_bytes())
        .await
        .unwrap();
    assert!(not_offering.transactions()[0].params().is_empty());
}

#[tokio::test]
async fn size_parameter_and_limit() {
    let rcpts = recipients(&["a@remote.test"]);
    let sized = |size| Envelope {
        size: Some(size),
        ..envelope(&rcpts)
    };
    let fake = FakeSmtp::start(Behaviour::with_capabilities(&["PIPELINING", "SIZE 1000"])).await;
    let mut client = connect(&fake, RelayTls::None).await;
    assert_eq!(client.capabilities().size, Some(1000));
    client.send(&sized(500), b"small\r\n").await.unwrap();
    assert_eq!(fake.transactions()[0].params(), ["SIZE=500"]);
    let too_big = client.send(&sized(5000), b"big\r\n").await.unwrap_err();
    assert!(!too_big.is_temporary(), "{too_big}");
    assert!(too_big.to_string().contains("exceeds"), "{too_big}");
    // Refused before anything was sent: the connection is still usable.
    client.send(&sized(600), b"small\r\n").await.unwrap();
    assert_eq!(fake.transactions().len(), 2);
    assert_eq!(
        fake.commands()
            .iter()
            .filter(|c| c.starts_with("MAIL"))
            .count(),
        2
    );

    // No SIZE offered: no SIZE parameter.
    let plain = FakeSmtp::start(Behaviour::with_capabilities(&["PIPELINING"])).await;
    let mut client = connect(&plain, RelayTls::None).await;
    client.send(&sized(500), b"small\r\n").await.unwrap();
    assert!(plain.transactions()[0].params().is_empty());
}

#[tokio::test]
async fn smtputf8_needs_the_server() {
    let rcpts = recipients(&["j\u{f6}rg@remote.test"]);
    let utf8 = Envelope {
        smtputf8: true,
        ..envelope(&rcpts)
    };
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let mut client = connect(&fake, RelayTls::None).await;
    let e = client.send(&utf8, b"x\r\n").await.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("SMTPUTF8"), "{e}");

    let fake = FakeSmtp::start(Behaviour::with_capabilities(&["PIPELINING", "SMTPUTF8"])).await;
    let mut client = connect(&fake, RelayTls::None).await;
    client.send(&utf8, b"x\r\n").await.unwrap();
    assert_eq!(fake.transactions()[0].params(), ["SMTPUTF8"]);
}

#[tokio::test]
async fn addresses_cannot_inject_commands() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let mut client = connect(&fake, RelayTls::None).await;
    let rcpts = recipients(&["a@remote.test>\r\nRCPT TO:<evil@remote.test"]);
    let e = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    assert!(!fake.commands().iter().any(|c| c.contains("evil")));
    // Nothing was sent, so the session goes on.
    let rcpts = recipients(&["a@remote.test"]);
    client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
}

#[tokio::test]
async fn starttls_may_is_used_when_offered() {
    let fake = FakeSmtp::start(Behaviour::with_capabilities(&["PIPELINING", "STARTTLS"])).await;
    let mut client = connect(&fake, RelayTls::May).await;
    assert!(client.capabilities().tls_active);
    // The EHLO after TLS no longer lists STARTTLS.
    assert!(!client.capabilities().starttls);
    let rcpts = recipients(&["a@remote.test"]);
    client.send(&envelope(&rcpts), TRICKY).await.unwrap();
    client.quit().await;
    let seen = fake.transactions();
    assert!(seen[0].tls);
    assert_eq!(seen[0].message, TRICKY);
    // EHLO twice, as RFC 3207 asks.
    let ehlos = fake
        .commands()
        .iter()
        .filter(|c| c.starts_with("EHLO"))
        .count();
    assert_eq!(ehlos, 2);
}

#[tokio::test]
async fn starttls_encrypt_accepts_a_self_signed_certificate() {
    let fake = FakeSmtp::start(Behaviour::with_capabilities(&["STARTTLS"])).await;
    let client = connect(&fake, RelayTls::Encrypt).await;
    assert!(client.capabilities().tls_active);
}

#[tokio::test]
async fn starttls_none_never_upgrades() {
    let fake = FakeSmtp::start(Behaviour::with_capabilities(&["STARTTLS"])).await;
    let client = connect(&fake, RelayTls::None).await;
    assert!(!client.capabilities().tls_active);
    assert!(!fake.commands().contains(&"STARTTLS".to_string()));
}

#[tokio::test]
async fn failed_tls_handshake_is_temporary() {
    let fake = FakeSmtp::start(Behaviour {
        tls_handshake_fails: true,
        ..Behaviour::with_capabilities(&["STARTTLS"])
    })
    .await;
    let e = connect_err(&fake, RelayTls::May).await;
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.stage, Stage::StartTls);
}

#[tokio::test]
async fn required_tls_not_offered_is_temporary() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let e = connect_err(&fake, RelayTls::Encrypt).await;
    assert!(e.is_temporary(), "{e}");
    assert!(matches!(e.kind, FailureKind::Tls(_)), "{e}");
    assert!(e.to_string().contains("STARTTLS"), "{e}");
}

#[tokio::test]
async fn verify_rejects_an_untrusted_certificate() {
    let fake = FakeSmtp::start(Behaviour::with_capabilities(&["STARTTLS"])).await;
    let e = connect_err(&fake, RelayTls::Verify).await;
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.stage, Stage::StartTls);
}

#[tokio::test]
async fn temporary_rejection_of_mail_from() {
    let fake = FakeSmtp::start(Behaviour {
        mail_reply: "451 4.3.0 try again later".into(),
        ..Behaviour::default()
    })
    .await;
    let mut client = connect(&fake, RelayTls::None).await;
    let rcpts = recipients(&["a@remote.test"]);
    let e = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.reply().map(|r| r.code), Some(451));
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "host localhost[127.0.0.1]:{} said: 451 4.3.0",
            fake.addr().port()
        )),
        "{text}"
    );
    assert!(text.ends_with("(in reply to MAIL FROM)"), "{text}");
    assert!(fake.transactions().is_empty());

    // "4xx now, 2xx later": the next session gets the new behaviour.
    fake.set_behaviour(|b| b.mail_reply = "250 2.1.0 Ok".into());
    let mut client = connect(&fake, RelayTls::None).await;
    client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
    assert_eq!(fake.transactions().len(), 1);
    assert_eq!(fake.sessions(), 2);
}

#[tokio::test]
async fn permanent_greeting_rejection() {
    let fake = FakeSmtp::start(Behaviour {
        greeting: "554 5.7.1 no mail from you".into(),
        ..Behaviour::default()
    })
    .await;
    let e = connect_err(&fake, RelayTls::May).await;
    assert!(!e.is_temporary(), "{e}");
    assert_eq!(e.stage, Stage::Greeting);
    assert!(
        e.to_string()
            .contains("refused to talk to me: 554 5.7.1 no mail from you"),
        "{e}"
    );
}

#[tokio::test]
async fn connection_refused_is_temporary() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = Client::connect(&hop(addr, RelayTls::May), HELO, &timeouts())
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "connect to localhost[127.0.0.1]:{}: Connection refused",
            addr.port()
        )
    );
}

#[tokio::test]
async fn connection_dropped_during_the_message_is_temporary() {
    let fake = FakeSmtp::start(Behaviour {
        drop_after_data_bytes: Some(1000),
        ..Behaviour::default()
    })
    .await;
    let mut client = connect(&fake, RelayTls::None).await;
    let rcpts = recipients(&["a@remote.test"]);
    // Larger than any socket buffer, so the loss shows while writing.
    let line = [b"x".repeat(998).as_slice(), b"\r\n"].concat();
    let message = line.repeat(16 * 1024);
    let e = client.send(&envelope(&rcpts), &message).await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.stage, Stage::Body, "{e}");
    assert!(e.to_string().contains("while sending message body"), "{e}");
    assert!(fake.transactions().is_empty());
    // The connection is known dead: no second attempt on it.
    let again = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap_err();
    assert!(again.is_temporary());
}

#[tokio::test]
async fn silent_server_times_out() {
    let fake = FakeSmtp::start(Behaviour {
        hang_at: Some(Step::Greeting),
        ..Behaviour::default()
    })
    .await;
    let quick = Timeouts {
        command: Duration::from_secs(1),
        ..timeouts()
    };
    let started = Instant::now();
    let e = Client::connect(&hop(fake.addr(), RelayTls::May), HELO, &quick)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.kind, FailureKind::TimedOut);
    assert!(
        e.to_string()
            .contains("timed out while receiving the initial server greeting"),
        "{e}"
    );
}

#[tokio::test]
async fn silence_after_the_final_dot_times_out() {
    let fake = FakeSmtp::start(Behaviour {
        hang_at: Some(Step::EndOfData),
        ..Behaviour::default()
    })
    .await;
    let quick = Timeouts {
        data: Duration::from_secs(1),
        ..timeouts()
    };
    let mut client = Client::connect(&hop(fake.addr(), RelayTls::None), HELO, &quick)
        .await
        .unwrap();
    let rcpts = recipients(&["a@remote.test"]);
    let e = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.stage, Stage::EndOfData);
    // The fake got the whole message: it may be delivered twice.
    assert_eq!(fake.transactions().len(), 1);
}

#[tokio::test]
async fn two_transactions_on_one_connection() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let mut client = connect(&fake, RelayTls::None).await;
    let first = recipients(&["a@remote.test"]);
    let second = recipients(&["b@remote.test", "c@remote.test"]);
    client.send(&envelope(&first), b"one\r\n").await.unwrap();
    client.send(&envelope(&second), b"two").await.unwrap();
    client.quit().await;
    let seen = fake.transactions();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].recipients, ["a@remote.test"]);
    assert_eq!(seen[1].recipients, ["b@remote.test", "c@remote.test"]);
    // A final CRLF is added when missing.
    assert_eq!(seen[1].message, b"two\r\n");
    assert_eq!(fake.sessions(), 1);
}

#[tokio::test]
async fn every_recipient_rejected_sends_no_message() {
    for capabilities in [&["PIPELINING"][..], &[]] {
        let fake = FakeSmtp::start(Behaviour {
            rcpt_reply: std::sync::Arc::new(|_| "550 5.1.1 no".into()),
            ..Behaviour::with_capabilities(capabilities)
        })
        .await;
        let mut client = connect(&fake, RelayTls::None).await;
        let rcpts = recipients(&["a@remote.test", "b@remote.test"]);
        let delivery = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
        assert!(delivery.data.is_none());
        assert!(delivery
            .recipients
            .iter()
            .all(|r| matches!(r, RecipientResult::Rejected(reply) if reply.code == 550)));
        assert!(fake.transactions().is_empty());
        assert!(fake.commands().contains(&"RSET".to_string()));
        // The connection is ready for the next transaction.
        fake.set_behaviour(|_| {});
        let delivery = client.send(&envelope(&rcpts), b"x\r\n").await;
        assert!(delivery.unwrap().data.is_none());
        assert!(
            fake.protocol_errors().is_empty(),
            "{:?}",
            fake.protocol_errors()
        );
    }
}

#[tokio::test]
async fn refused_data_applies_to_all_and_next_transaction_resets() {
    let fake = FakeSmtp::start(Behaviour {
        data_reply: "451 4.3.0 not now".into(),
        ..Behaviour::with_capabilities(&[])
    })
    .await;
    let mut client = connect(&fake, RelayTls::None).await;
    let rcpts = recipients(&["a@remote.test"]);
    let delivery = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
    assert_eq!(delivery.recipients, [RecipientResult::Accepted]);
    assert_eq!(delivery.data.map(|r| r.code), Some(451));
    assert_eq!(delivery.data_stage, Stage::Data);
    let _ = client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
    let commands = fake.commands();
    let data_at = commands.iter().position(|c| c == "DATA").unwrap();
    assert_eq!(commands[data_at + 1], "RSET");
    assert!(fake.protocol_errors().is_empty());
}

fn with_auth(addr: SocketAddr, tls: RelayTls, password: &str) -> Hop {
    Hop {
        auth: Some(("relayuser".into(), password.into())),
        ..hop(addr, tls)
    }
}

fn auth_behaviour(capabilities: &[&str]) -> Behaviour {
    Behaviour {
        require_auth: Some(("relayuser".into(), "s3cret".into())),
        ..Behaviour::with_capabilities(capabilities)
    }
}

#[tokio::test]
async fn auth_plain_over_plain_text_when_tls_is_none() {
    let fake = FakeSmtp::start(auth_behaviour(&["PIPELINING", "AUTH PLAIN LOGIN"])).await;
    let hop = with_auth(fake.addr(), RelayTls::None, "s3cret");
    let mut client = Client::connect(&hop, HELO, &timeouts()).await.unwrap();
    let rcpts = recipients(&["a@remote.test"]);
    client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
    assert_eq!(
        fake.transactions()[0].authenticated.as_deref(),
        Some("relayuser")
    );
    assert!(fake.commands().iter().any(|c| c.starts_with("AUTH PLAIN ")));
}

#[tokio::test]
async fn auth_login_over_starttls() {
    let fake = FakeSmtp::start(auth_behaviour(&["STARTTLS", "AUTH LOGIN"])).await;
    let hop = with_auth(fake.addr(), RelayTls::May, "s3cret");
    let mut client = Client::connect(&hop, HELO, &timeouts()).await.unwrap();
    let rcpts = recipients(&["a@remote.test"]);
    client.send(&envelope(&rcpts), b"x\r\n").await.unwrap();
    let seen = fake.transactions();
    assert!(seen[0].tls);
    assert_eq!(seen[0].authenticated.as_deref(), Some("relayuser"));
}

#[tokio::test]
async fn no_password_without_tls() {
    let fake = FakeSmtp::start(auth_behaviour(&["AUTH PLAIN"])).await;
    let hop = with_auth(fake.addr(), RelayTls::May, "s3cret");
    let e = Client::connect(&hop, HELO, &timeouts()).await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert!(!fake.commands().iter().any(|c| c.starts_with("AUTH")));
}

#[tokio::test]
async fn wrong_password_is_a_temporary_failure() {
    let fake = FakeSmtp::start(auth_behaviour(&["AUTH PLAIN"])).await;
    let hop = with_auth(fake.addr(), RelayTls::None, "wrong");
    let e = Client::connect(&hop, HELO, &timeouts()).await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.stage, Stage::Auth);
    assert_eq!(e.reply().map(|r| r.code), Some(535));
    assert!(!e.to_string().contains("wrong"), "{e}");
}

/// RFC 2920 3.1: a server that accepts a pipelined DATA although every
/// RCPT failed gets a lone dot (no message), then RSET.
#[tokio::test]
async fn pipelined_data_accepted_without_recipients_sends_no_message() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(tcp);
        stream
            .get_mut()
            .write_all(b"220 raw.test\r\n")
            .await
            .unwrap();
        // (lines to read, reply to them)
        let script: [(usize, &[u8]); 5] = [
            (1, b"250-raw.test\r\n250 PIPELINING\r\n"),
            (3, b"250 ok\r\n550 5.1.1 no\r\n354 go on\r\n"),
            (1, b"554 5.5.1 no valid recipients\r\n"),
            (1, b"250 ok\r\n"),
            (1, b"221 bye\r\n"),
        ];
        let mut seen = Vec::new();
        for (count, reply) in script {
            for _ in 0..count {
                let mut line = String::new();
                stream.read_line(&mut line).await.unwrap();
                seen.push(line.trim_end().to_string());
            }
            stream.get_mut().write_all(reply).await.unwrap();
        }
        seen
    });
    let mut client = Client::connect(&hop(addr, RelayTls::None), HELO, &timeouts())
        .await
        .unwrap();
    let rcpts = recipients(&["a@remote.test"]);
    let delivery = client.send(&envelope(&rcpts), b"secret\r\n").await.unwrap();
    assert!(delivery.data.is_none());
    client.quit().await;
    let seen = server.await.unwrap();
    assert_eq!(
        seen,
        [
            format!("EHLO {HELO}"),
            "MAIL FROM:<alice@postern.test>".into(),
            "RCPT TO:<a@remote.test>".into(),
            "DATA".into(),
            ".".into(),
            "RSET".into(),
            "QUIT".into(),
        ]
    );
}
