//! SMTP sessions against a real smtpd on free ports: every command, every
//! error reply, pipelining, limits, smuggling, STARTTLS injection, AUTH,
//! 8-bit and UTF-8 mail, big messages, many clients at once.

use std::time::Duration;

use postern_tests::*;

async fn ehlo(client: &mut SmtpClient) -> SmtpReply {
    let r = client.cmd("EHLO client.example").await;
    assert_eq!(r.code, 250, "{r:?}");
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn greeting_and_capabilities_on_the_mx_port() {
    let server = Server::start().await;
    let (mut c, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert!(greeting.text().contains("ESMTP Postern"), "{greeting:?}");
    let r = ehlo(&mut c).await;
    for cap in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(r.lines.iter().any(|l| l == cap), "missing {cap}: {r:?}");
    }
    assert!(
        !r.lines.iter().any(|l| l.starts_with("AUTH")),
        "MX port must not offer AUTH: {r:?}"
    );
    let r = c.cmd("HELO client.example").await;
    assert_eq!((r.code, r.lines.len()), (250, 1));
    assert_eq!(c.cmd("QUIT").await.code, 221);
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_to_the_inbox_byte_exact() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let msg = message(
        "hello",
        "First line\r\n.leading dot\r\n..two dots\r\n\r\nlast",
    );
    let r = c
        .send_mail("bob@example.com", &["alice@localhost"], &msg)
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert!(r.text().starts_with("2.0.0 Ok: queued as "), "{r:?}");
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    assert_eq!(without_received(&raw), &msg[..]);
    let received = String::from_utf8_lossy(&raw[..raw.len() - msg.len()]).to_string();
    assert!(
        received.contains("from client.example ([127.0.0.1])"),
        "{received}"
    );
    assert!(received.contains("with ESMTP"), "{received}");
    assert!(received.contains("for <alice@localhost>"), "{received}");
    assert_eq!(messages[0].summary.subject.as_deref(), Some("hello"));
    // The queue is empty once delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.store.queue().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "queue not emptied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_commands_are_answered_in_order() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let mut batch = Vec::new();
    batch.extend_from_slice(b"EHLO client.example\r\nMAIL FROM:<bob@example.com>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<nobody@localhost>\r\nRCPT TO:<alice+tag@localhost>\r\nDATA\r\n");
    c.send(&batch).await;
    let codes: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(c.reply().await.code);
        }
        v
    };
    assert_eq!(codes, vec![250, 250, 250, 550, 250, 354]);
    c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<bob@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 354);
    c.send(b"Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        .await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 221);
    // alice@ and alice+tag@ are one mailbox: one copy of the first message.
    let messages = server.wait_for_inbox("alice@localhost", 2).await;
    assert_eq!(messages.len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = server.account("alice@localhost").await;
    assert_eq!(server.store.messages(id, "INBOX").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn sequence_errors() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let r = c.cmd("MAIL FROM:<bob@example.com>").await;
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (503, "5.5.1 Send HELO/EHLO first")
    );
    ehlo(&mut c).await;
    let r = c.cmd("RCPT TO:<alice@localhost>").await;
    assert_eq!(r.code, 503, "{r:?}");
    assert_eq!(c.cmd("DATA").await.code, 503);
    assert_eq!(c.cmd("BDAT 0 LAST").await.code, 503);
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    let r = c.cmd("MAIL FROM:<bob@example.com>").await;
    assert_eq!(r.code, 503, "nested MAIL: {r:?}");
    let r = c.cmd("DATA").await;
    assert_eq!(r.code, 554, "DATA without recipients: {r:?}");
    assert_eq!(c.cmd("RSET").await.code, 250);
    assert_eq!(
        c.cmd("RCPT TO:<alice@localhost>").await.code,
        503,
        "RSET ends the transaction"
    );
    // EHLO also resets.
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    ehlo(&mut c).await;
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn syntax_errors_and_other_commands() {
    let server = Server::start_with(|c| c.smtp.max_errors = 100).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let cases: &[(&str, u16, &str)] = &[
        ("FOO", 500, "5.5.2"),
        ("MAIL FROM:bob@example.com", 501, "5.5.4"),
        ("MAIL FROM:<bob@@example.com>", 501, "5.1.7"),
        ("MAIL FROM:<bob@example.com> BODY=BINARYMIME", 555, "5.5.4"),
        // DSN is offered: a bad RET is a syntax error (Postfix 3.7.11:
        // 501 5.5.4 Bad RET parameter syntax).
        ("MAIL FROM:<bob@example.com> RET=FOO", 501, "5.5.4"),
        ("MAIL FROM:<bob@example.com> FOO=BAR", 555, "5.5.4"),
        (
            "MAIL FROM:<bob@example.com> SIZE=999999999999",
            552,
            "5.3.4",
        ),
        ("MAIL FROM:<bób@example.com>", 553, "5.6.7"),
        ("NOOP", 250, "2.0.0"),
        ("VRFY alice", 252, "2.0.0"),
        ("EXPN staff", 502, "5.5.1"),
        ("ETRN localhost", 502, "5.5.1"),
        ("HELP", 214, "2.0.0"),
        ("AUTH PLAIN AGFsaWNlAHg=", 503, "5.5.1"),
        ("EHLO", 501, "5.5.4"),
    ];
    for (line, code, status) in cases {
        let r = c.cmd(line).await;
        assert_eq!(r.code, *code, "{line}: {r:?}");
        assert!(r.lines[0].starts_with(status), "{line}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recipient_policy() {
    let server = Server::start().await;
    server
        .store
        .add_alias("postmaster@localhost", "alice@localhost")
        .await
        .unwrap();
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    assert_eq!(c.cmd("MAIL FROM:<>").await.code, 250, "null sender");
    let cases: &[(&str, u16, &str)] = &[
        ("<alice@localhost>", 250, "2.1.5"),
        ("<ALICE@LocalHost>", 250, "2.1.5"),
        ("<alice+news@localhost>", 250, "2.1.5"),
        ("<Postmaster>", 250, "2.1.5"),
        ("<postmaster@localhost>", 250, "2.1.5"),
        ("<nobody@localhost>", 550, "5.1.1"),
        ("<someone@example.com>", 554, "5.7.1"),
        ("<alice@localhost.>", 554, "5.7.1"),
        // Address literals are refused by the grammar: never relayed.
        ("<alice@[127.0.0.1]>", 501, "5.1.3"),
        ("<alice%example.com@localhost>", 550, "5.1.1"),
        ("<example.com!alice@localhost>", 550, "5.1.1"),
        ("<@localhost:someone@example.com>", 554, "5.7.1"),
        ("<\"someone@example.com\"@localhost>", 550, "5.1.1"),
        ("<alíce@localhost>", 553, "5.6.7"),
    ];
    for (addr, code, status) in cases {
        let r = c.cmd(&format!("RCPT TO:{addr}")).await;
        assert_eq!(r.code, *code, "{addr}: {r:?}");
        assert!(r.lines[0].starts_with(status), "{addr}: {r:?}");
        assert_eq!(c.cmd("NOOP").await.code, 250);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recipient_limit() {
    let server = Server::start_with(|c| c.smtp.max_recipients = 3).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    c.cmd("MAIL FROM:<bob@example.com>").await;
    for _ in 0..3 {
        assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    }
    let r = c.cmd("RCPT TO:<alice@localhost>").await;
    assert_eq!((r.code, &r.lines[0][..5]), (452, "4.5.3"));
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: three\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    // Three recipients that are one account: one copy in the INBOX.
    server.wait_for_inbox("alice@localhost", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = server.account("alice@localhost").await;
    assert_eq!(server.store.messages(id, "INBOX").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn size_limit_before_and_during_data() {
    let server = Server::start_with(|c| c.smtp.max_message_size = 10_000).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let r = ehlo(&mut c).await;
    assert!(r.lines.iter().any(|l| l == "SIZE 10000"), "{r:?}");
    let r = c.cmd("MAIL FROM:<bob@example.com> SIZE=10001").await;
    assert_eq!((r.code, &r.lines[0][..5]), (552, "5.3.4"));
    // A client that lies about SIZE is stopped during DATA.
    assert_eq!(
        c.cmd("MAIL FROM:<bob@example.com> SIZE=100").await.code,
        250
    );
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    let big = "x".repeat(998) + "\r\n";
    c.send(big.repeat(20).as_bytes()).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert_eq!((r.code, &r.lines[0][..5]), (552, "5.3.4"));
    // The session goes on; a small message still passes.
    let r = c
        .send_mail(
            "bob@example.com",
            &["alice@localhost"],
            &message("small", "ok"),
        )
        .await;
    assert_eq!(r.code, 250);
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(messages.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggling_variants_are_rejected_whole() {
    let server = Server::start().await;
    let variants: &[&[u8]] = &[
        b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\r\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\r.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        b"Subject: a\r\n\r\nbody\r\n.\rMAIL FROM:<evil@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
    ];
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    for (i, variant) in variants.iter().enumerate() {
        assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
        assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
        assert_eq!(c.cmd("DATA").await.code, 354);
        c.send(variant).await;
        // One reply only: the whole thing was one (rejected) message.
        let r = c.reply().await;
        assert_eq!(
            (r.code, &r.lines[0][..5]),
            (550, "5.5.2"),
            "variant {i}: {r:?}"
        );
        let r = c.cmd("NOOP").await;
        assert_eq!(r.code, 250, "variant {i}: out of step: {r:?}");
    }
    let r = c
        .send_mail(
            "bob@example.com",
            &["alice@localhost"],
            &message("clean", "ok"),
        )
        .await;
    assert_eq!(r.code, 250);
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages_after = server
        .store
        .messages(server.account("alice@localhost").await, "INBOX")
        .await
        .unwrap();
    assert_eq!(messages_after.len(), 1, "nothing smuggled in");
    assert_eq!(messages[0].summary.subject.as_deref(), Some("clean"));
}

#[tokio::test(flavor = "multi_thread")]
async fn overlong_lines_and_too_many_errors() {
    let server = Server::start_with(|c| c.smtp.max_errors = 3).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let long = format!("NOOP {}\r\n", "a".repeat(10_000));
    c.send(long.as_bytes()).await;
    let r = c.reply().await;
    assert_eq!((r.code, r.lines[0].as_str()), (500, "5.5.2 Line too long"));
    assert_eq!(
        c.cmd("NOOP").await.code,
        250,
        "still in step after a long line"
    );
    assert_eq!(c.cmd("FOO").await.code, 500);
    let r = c.cmd("BAR").await;
    assert_eq!(r.code, 500);
    let r = c.reply().await;
    assert_eq!((r.code, &r.lines[0][..5]), (421, "4.7.0"));
    assert!(c.is_closed().await);
    // The next client is served normally.
    let (mut c2, g) = SmtpClient::connect(server.smtp).await;
    assert_eq!(g.code, 220);
    ehlo(&mut c2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_junk_gets_errors_not_a_crash() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    c.send(b"\x00\xff\xfe\x80garbage\r\n").await;
    assert_eq!(c.reply().await.code, 500);
    c.send(b"\r\n").await;
    assert_eq!(c.reply().await.code, 500);
    ehlo(&mut c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn command_timeout() {
    let server = Server::start_with(|c| c.smtp.command_timeout_secs = 1).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let r = c.reply().await;
    assert_eq!((r.code, &r.lines[0][..5]), (421, "4.4.2"));
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_limit_per_ip() {
    let server = Server::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let (_a, ga) = SmtpClient::connect(server.smtp).await;
    let (_b, gb) = SmtpClient::connect(server.smtp).await;
    assert_eq!((ga.code, gb.code), (220, 220));
    let (mut c, gc) = SmtpClient::connect(server.smtp).await;
    assert_eq!(gc.code, 421, "{gc:?}");
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_discards_injected_commands() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    // The classic injection: commands sent in the same packet as STARTTLS.
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n")
        .await;
    let r = c.reply().await;
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (220, "2.0.0 Ready to start TLS")
    );
    let mut c = c.start_tls(server.dir.path()).await;
    // If the injected MAIL had been kept, this MAIL would be "nested" (503)
    // or EHLO would not be needed.
    let r = c.cmd("MAIL FROM:<bob@example.com>").await;
    assert_eq!(r.code, 503, "state must be reset after TLS: {r:?}");
    let r = ehlo(&mut c).await;
    assert!(!r.lines.iter().any(|l| l == "STARTTLS"), "{r:?}");
    assert_eq!(c.cmd("STARTTLS").await.code, 503);
    let r = c
        .send_mail(
            "bob@example.com",
            &["alice@localhost"],
            &message("tls", "secret"),
        )
        .await;
    assert_eq!(r.code, 250);
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("with ESMTPS"), "{text}");
    assert!(text.contains("(using TLS"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_requires_auth() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    let r = ehlo(&mut c).await;
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
    let r = c.cmd("MAIL FROM:<alice@localhost>").await;
    assert_eq!((r.code, &r.lines[0][..5]), (530, "5.7.0"));
    // Wrong password, unknown mechanism, malformed, cancelled.
    let bad = b64("\0alice@localhost\0wrong");
    let r = c.cmd(&format!("AUTH PLAIN {bad}")).await;
    assert_eq!((r.code, &r.lines[0][..5]), (535, "5.7.8"));
    let r = c.cmd("AUTH CRAM-MD5").await;
    assert_eq!((r.code, &r.lines[0][..5]), (504, "5.5.4"));
    let r = c.cmd("AUTH PLAIN !!!notbase64").await;
    assert_eq!(r.code, 501);
    let r = c.cmd("AUTH PLAIN").await;
    assert_eq!(r.code, 334);
    let r = c.cmd("*").await;
    assert_eq!((r.code, &r.lines[0][..5]), (501, "5.0.0"));
    // PLAIN with the credentials after the 334.
    assert_eq!(c.cmd("AUTH PLAIN").await.code, 334);
    let r = c.cmd(&b64(&format!("\0alice@localhost\0{PASSWORD}"))).await;
    assert_eq!((r.code, &r.lines[0][..5]), (235, "2.7.0"), "{r:?}");
    assert_eq!(
        c.cmd("AUTH PLAIN x").await.code,
        503,
        "already authenticated"
    );
    let r = c
        .send_mail(
            "alice@localhost",
            &["alice@localhost"],
            &message("sub", "mine"),
        )
        .await;
    assert_eq!(r.code, 250);
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    assert!(String::from_utf8_lossy(&raw).contains("with ESMTPA"));
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_login_and_failure_limit() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    ehlo(&mut c).await;
    let r = c.cmd("AUTH LOGIN").await;
    assert_eq!((r.code, r.lines[0].as_str()), (334, "VXNlcm5hbWU6"));
    let r = c.cmd(&b64("alice@localhost")).await;
    assert_eq!((r.code, r.lines[0].as_str()), (334, "UGFzc3dvcmQ6"));
    let r = c.cmd(&b64(PASSWORD)).await;
    assert_eq!(r.code, 235, "{r:?}");

    let (mut c, _) = SmtpClient::connect(server.submission).await;
    ehlo(&mut c).await;
    // LOGIN with the user name as initial response.
    let r = c
        .cmd(&format!("AUTH LOGIN {}", b64("alice@localhost")))
        .await;
    assert_eq!(r.code, 334);
    assert_eq!(c.cmd(&b64("nope")).await.code, 535);
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64("\0alice@localhost\0nope")))
            .await
            .code,
        535
    );
    let r = c
        .cmd(&format!("AUTH PLAIN {}", b64("\0mallory@localhost\0nope")))
        .await;
    assert_eq!(
        (r.code, &r.lines[0][..5]),
        (421, "4.7.0"),
        "third failure closes: {r:?}"
    );
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_submission() {
    let server = Server::start().await;
    let (mut c, g) = SmtpClient::connect_tls(server.submissions, server.dir.path()).await;
    assert_eq!(g.code, 220);
    let r = ehlo(&mut c).await;
    assert!(!r.lines.iter().any(|l| l == "STARTTLS"));
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"));
    let r = c.cmd(&alice_plain()).await;
    assert_eq!(r.code, 235);
    let r = c
        .send_mail(
            "alice@localhost",
            &["alice@localhost"],
            &message("smtps", "x"),
        )
        .await;
    assert_eq!(r.code, 250);
    server.wait_for_inbox("alice@localhost", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_auth_refused_where_not_allowed() {
    let server = Server::start_with(|c| c.auth.plaintext_on_loopback = false).await;
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    let r = ehlo(&mut c).await;
    assert!(!r.lines.iter().any(|l| l.starts_with("AUTH")), "{r:?}");
    let r = c.cmd(&alice_plain()).await;
    assert_eq!((r.code, &r.lines[0][..6]), (538, "5.7.11"));
    assert_eq!(c.cmd("STARTTLS").await.code, 220);
    let mut c = c.start_tls(server.dir.path()).await;
    let r = ehlo(&mut c).await;
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
    let r = c.cmd(&alice_plain()).await;
    assert_eq!(r.code, 235);
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_bit_and_utf8_mail() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let msg = "From: Jürgen <juergen@example.com>\r\nTo: alice@localhost\r\nSubject: Grüße aus Köln ✉\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nDas Wetter ist schön. 日本語のテキスト。\r\n".as_bytes();
    assert_eq!(
        c.cmd("MAIL FROM:<jürgen@example.com> BODY=8BITMIME SMTPUTF8")
            .await
            .code,
        250
    );
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(msg).await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    // 8-bit body declared as 7BIT (or not declared) is accepted too.
    let r = c
        .send_mail("bob@example.com", &["alice@localhost"], msg)
        .await;
    assert_eq!(r.code, 250);
    let messages = server.wait_for_inbox("alice@localhost", 2).await;
    for m in &messages {
        let raw = server.raw("alice@localhost", m.uid).await;
        assert_eq!(without_received(&raw), msg);
    }
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    assert!(String::from_utf8_lossy(&raw).contains("with UTF8SMTP"));
    assert_eq!(
        messages[0].summary.subject.as_deref(),
        Some("Grüße aus Köln ✉")
    );
}

/// RFC 6531 allows UTF-8, not any 8-bit bytes, in EHLO and the
/// addresses. A command line that is not valid UTF-8 gets Postfix's `500
/// 5.5.2 Error: bad UTF-8 syntax` (with or without SMTPUTF8; Postfix 3.7
/// refuses such a line before its verb), valid UTF-8 without SMTPUTF8
/// stays `553 5.6.7`, and the session goes on to deliver a good
/// transaction unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_commands_is_refused() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let bad_utf8 = |r: &SmtpReply| {
        assert_eq!(r.code, 500, "{r:?}");
        assert_eq!(r.lines, ["5.5.2 Error: bad UTF-8 syntax"], "{r:?}");
    };
    // A lone continuation byte, a truncated sequence, an overlong form.
    for line in [
        &b"EHLO client\x80.example\r\n"[..],
        b"HELO caf\xc3.example\r\n",
        b"EHLO \xc0\xaf.example\r\n",
    ] {
        c.send(line).await;
        bad_utf8(&c.reply().await);
    }
    ehlo(&mut c).await;
    c.send(b"MAIL FROM:<j\xfcrgen@example.com> SMTPUTF8\r\n")
        .await;
    bad_utf8(&c.reply().await);
    c.send(b"MAIL FROM:<j\xfcrgen@example.com>\r\n").await;
    bad_utf8(&c.reply().await);
    let r = c.cmd("MAIL FROM:<jürgen@example.com>").await;
    assert_eq!((r.code, &r.lines[0][..5]), (553, "5.6.7"), "{r:?}");
    assert_eq!(
        c.cmd("MAIL FROM:<jürgen@example.com> SMTPUTF8").await.code,
        250
    );
    c.send(b"RCPT TO:<alice\xff@localhost>\r\n").await;
    bad_utf8(&c.reply().await);
    c.send(b"RCPT TO:<\xe6\x97@localhost>\r\n").await;
    bad_utf8(&c.reply().await);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    let msg = message("after-bad-bytes", "still delivered");
    c.send(&dot_stuff(&msg)).await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    assert_eq!(without_received(&raw), msg);
    assert!(
        String::from_utf8_lossy(&raw).starts_with("Return-Path: <jürgen@example.com>"),
        "{}",
        String::from_utf8_lossy(&raw[..80.min(raw.len())])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bdat_chunks() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let msg = message("chunked", "part one\r\n.not stuffed in BDAT\r\npart two");
    let (first, second) = msg.split_at(40);
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    c.send(format!("BDAT {}\r\n", first.len()).as_bytes()).await;
    c.send(first).await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    // Pipelined: the last chunk and the next command in one write.
    let mut batch = format!("BDAT {} LAST\r\n", second.len()).into_bytes();
    batch.extend_from_slice(second);
    batch.extend_from_slice(b"NOOP\r\n");
    c.send(&batch).await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    assert!(r.text().contains("queued as"));
    assert_eq!(c.reply().await.code, 250);
    // DATA after BDAT in one transaction is refused; BDAT 0 LAST works.
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    c.send(b"BDAT 5\r\nSubje").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 503);
    c.send(b"BDAT 0 LAST\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    let messages = server.wait_for_inbox("alice@localhost", 2).await;
    // The two queue entries are delivered concurrently: either may get the
    // lower UID.
    let mut found = false;
    for m in &messages {
        let raw = server.raw("alice@localhost", m.uid).await;
        found |= without_received(&raw) == &msg[..];
    }
    assert!(found, "the chunked message arrived intact");
    // BDAT without a transaction: the chunk is still read and dropped.
    c.send(b"RSET\r\nBDAT 4 LAST\r\nQUITNOOP\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 503);
    assert_eq!(c.reply().await.code, 250, "in step after the dropped chunk");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_mib_message() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let mut msg = message("big", "start").to_vec();
    let line = format!("{}\r\n", "0123456789abcdef".repeat(4));
    while msg.len() < 20 * 1024 * 1024 {
        msg.extend_from_slice(line.as_bytes());
    }
    let r = c
        .send_mail("bob@example.com", &["alice@localhost"], &msg)
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    assert_eq!(without_received(&raw).len(), msg.len());
    assert!(without_received(&raw) == &msg[..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_clients_at_once() {
    let server = Server::start().await;
    server
        .store
        .add_account("bob@localhost", PASSWORD)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for client in 0..20 {
        let addr = server.smtp;
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = SmtpClient::connect(addr).await;
            ehlo(&mut c).await;
            for i in 0..10 {
                let msg = message(&format!("c{client}m{i}"), "x");
                let r = c
                    .send_mail("x@example.com", &["alice@localhost", "bob@localhost"], &msg)
                    .await;
                assert_eq!(r.code, 250, "{r:?}");
            }
            c.cmd("QUIT").await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let alice = server.wait_for_inbox("alice@localhost", 200).await;
    let bob = server.wait_for_inbox("bob@localhost", 200).await;
    assert_eq!((alice.len(), bob.len()), (200, 200));
    let mut uids: Vec<u32> = alice.iter().map(|m| m.uid.0).collect();
    uids.dedup();
    assert_eq!(
        uids,
        (1..=200).collect::<Vec<u32>>(),
        "UIDs are 1..=200 in order"
    );
}

/// `AUTH PLAIN` with alice's credentials as the initial response.
fn alice_plain() -> String {
    format!(
        "AUTH PLAIN {}",
        b64(&format!("\0alice@localhost\0{PASSWORD}"))
    )
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_sent_one_byte_at_a_time() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    let script: &[(&[u8], &[u16])] = &[
        (b"EHLO client.example\r\n", &[250]),
        (b"MAIL FROM:<bob@example.com> BODY=8BITMIME\r\n", &[250]),
        (b"RCPT TO:<alice@localhost>\r\n", &[250]),
        (b"DATA\r\n", &[354]),
        (b"Subject: bytes\r\n\r\n..dot\r\nend\r\n.\r\n", &[250]),
        (b"BDAT", &[]),
        (b" 3\r\nxyzNOOP\r\n", &[503, 250]),
        (b"QUIT\r\n", &[221]),
    ];
    for (bytes, codes) in script {
        for byte in bytes.iter() {
            c.send(std::slice::from_ref(byte)).await;
        }
        for code in codes.iter() {
            let r = c.reply().await;
            assert_eq!(
                r.code,
                *code,
                "after {:?}: {r:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    assert_eq!(
        without_received(&raw),
        b"Subject: bytes\r\n\r\n.dot\r\nend\r\n"
    );
}

/// A SASL response that does not decode is a failed login, as a wrong
/// password is (and as imapd counts it): `501 5.5.2` each time, and `421`
/// with the session closed at the limit (3).
#[tokio::test(flavor = "multi_thread")]
async fn malformed_sasl_responses_count_as_failed_logins() {
    let server = Server::start().await;
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    ehlo(&mut c).await;
    let r = c.cmd("AUTH PLAIN !!!notbase64").await;
    assert_eq!((r.code, &r.lines[0][..5]), (501, "5.5.2"), "{r:?}");
    assert_eq!(c.cmd("AUTH LOGIN").await.code, 334);
    let r = c.cmd("%%%").await;
    assert_eq!((r.code, &r.lines[0][..5]), (501, "5.5.2"), "{r:?}");
    let r = c.cmd("AUTH PLAIN !!!notbase64").await;
    assert_eq!((r.code, &r.lines[0][..5]), (421, "4.7.0"), "{r:?}");
    assert!(c.is_closed().await);
}

/// Mail for local accounts goes into the mailboxes before the `250`; a
/// recipient whose account is deleted between RCPT and the end of DATA
/// sends the message through the queue instead, which bounces it for that
/// recipient and delivers it to the others.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_deleted_after_rcpt_gets_a_bounce_not_a_lost_message() {
    let server = Server::start().await;
    server
        .store
        .add_account("bob@localhost", PASSWORD)
        .await
        .unwrap();
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;

    // Delivered before the 250: the INBOX has it as soon as the reply
    // comes, and nothing is queued.
    let r = c
        .send_mail(
            "alice@localhost",
            &["bob@localhost"],
            &message("at once", "hi"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let bob = server.account("bob@localhost").await;
    let inbox = server.store.messages(bob, "INBOX").await.unwrap();
    assert_eq!(inbox.len(), 1, "not in the INBOX at the 250");
    assert!(server.store.queue().await.unwrap().is_empty());

    assert_eq!(c.cmd("MAIL FROM:<alice@localhost>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<bob@localhost>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    server.store.delete_account("bob@localhost").await.unwrap();
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(&dot_stuff(&message("bob left", "too late"))).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    // alice gets the message and the bounce for bob.
    let messages = server.wait_for_inbox("alice@localhost", 2).await;
    let subjects: Vec<_> = messages
        .iter()
        .map(|m| m.summary.subject.clone().unwrap_or_default())
        .collect();
    assert!(subjects.iter().any(|s| s == "bob left"), "{subjects:?}");
    assert!(
        subjects.iter().any(|s| s.contains("Undelivered")),
        "{subjects:?}"
    );
}
