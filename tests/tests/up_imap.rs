//! `postern up` runs imapd beside smtpd and pop3d, on the same store: mail
//! sent over SMTP to the real binary is read back over IMAP (a raw client),
//! IMAP with STARTTLS and IMAPS (Python's imaplib) and curl; a shutdown
//! says BYE to an open IMAP session.
//!
//! The tools are required: a missing one fails the test (`.ci/run` installs
//! them), it is never skipped.

use std::time::{Duration, Instant};

use postern_tests::*;

async fn exchange(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    c.imap(tag, command).await
}

const ALICE: &str = "alice@localhost";

/// Logs in over plain IMAP and SELECTs INBOX until it holds one message
/// (delivery through the queue takes a moment); returns the session.
async fn selected_with_one_message(imap: std::net::SocketAddr) -> Pop3Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (mut c, greeting) = Pop3Client::connect(imap).await;
        assert!(greeting.starts_with("* OK "), "{greeting}");
        let r = exchange(&mut c, "a", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
        assert!(r.last().unwrap().starts_with("a OK "), "{r:?}");
        let r = exchange(&mut c, "b", "SELECT INBOX").await;
        assert!(r.last().unwrap().starts_with("b OK "), "{r:?}");
        if r.iter().any(|l| l == "* 1 EXISTS") {
            return c;
        }
        exchange(&mut c, "z", "LOGOUT").await;
        assert!(Instant::now() < deadline, "not delivered: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs in with imaplib (`ssl`: IMAP4_SSL; `starttls`: IMAP4 and
/// STARTTLS), verifying the certificate for localhost, and prints message
/// 1 hex-encoded.
const IMAPLIB: &str = r#"
import imaplib, ssl, sys
mode, port, cafile, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
if mode == "ssl":
    m = imaplib.IMAP4_SSL("localhost", int(port), ssl_context=ctx, timeout=30)
else:
    m = imaplib.IMAP4("localhost", int(port), timeout=30)
    m.starttls(ssl_context=ctx)
typ, _ = m.login(user, password)
assert typ == "OK"
typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"1", (typ, data)
typ, data = m.fetch("1", "(BODY.PEEK[])")
assert typ == "OK", (typ, data)
print(data[0][1].hex())
m.logout()
"#;

fn unhex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn postern_up_serves_imap_and_imaps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = tokio::task::block_in_place(|| {
        postern_cli(&data, &["user", "add", ALICE, "--password-stdin"], PASSWORD)
    });
    assert!(out.status.success(), "{out:?}");
    let mut binary = tokio::task::block_in_place(|| Binary::start(&data));
    for expected in [
        format!("postern: imap listening on {} (STARTTLS)", binary.imap),
        format!(
            "postern: imaps listening on {} (implicit TLS)",
            binary.imaps
        ),
    ] {
        assert!(
            binary.stdout_lines.contains(&expected),
            "missing {expected:?} in {:?}",
            binary.stdout_lines
        );
    }

    let (mut smtp, _) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(smtp.cmd("EHLO t").await.code, 250);
    let msg = message("via up over imap", "hello from smtp");
    let r = smtp.send_mail("bob@example.com", &[ALICE], &msg).await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(smtp.cmd("QUIT").await.code, 221);

    // Raw IMAP on the STARTTLS port (plaintext LOGIN is allowed on
    // loopback): FETCH 1 BODY[] is the message as delivered.
    let mut c = selected_with_one_message(binary.imap).await;
    c.send(b"f FETCH 1 BODY[]\r\n").await;
    let head = c.line().await;
    let size: usize = head
        .strip_prefix("* 1 FETCH (BODY[] {")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("FETCH response: {head}"));
    let stored = c.read_bytes(size).await;
    assert_eq!(without_received(&stored), &msg[..]);
    assert_eq!(c.line().await, " FLAGS (\\Seen \\Recent))");
    assert_eq!(c.line().await, "f OK FETCH completed");
    exchange(&mut c, "z", "LOGOUT").await;

    // imaplib over IMAPS and over STARTTLS.
    let cafile = data.join("tls/cert.pem");
    for (mode, port) in [("ssl", binary.imaps), ("starttls", binary.imap)] {
        let printed = run_tool_ok(
            "python3",
            "python3",
            &[
                "-c",
                IMAPLIB,
                mode,
                &port.port().to_string(),
                cafile.to_str().unwrap(),
                ALICE,
                PASSWORD,
            ],
        )
        .await;
        assert_eq!(unhex(&printed), stored, "imaplib {mode}");
    }

    // curl: the mailbox list over IMAP, the message's flags and size over
    // IMAPS (verifying the certificate), the message itself over STARTTLS.
    let user = format!("{ALICE}:{PASSWORD}");
    let listing = run_tool_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "--user",
            &user,
            &format!("imap://127.0.0.1:{}/", binary.imap.port()),
        ],
    )
    .await;
    assert!(
        listing.lines().any(|l| l.ends_with(" INBOX")),
        "no INBOX in {listing:?}"
    );
    let summary = run_tool_ok(
        "curl",
        "curl",
        &[
            "-sS",
            "--cacert",
            cafile.to_str().unwrap(),
            "--user",
            &user,
            "--request",
            "FETCH 1:* (FLAGS RFC822.SIZE)",
            &format!("imaps://localhost:{}/INBOX", binary.imaps.port()),
        ],
    )
    .await;
    assert_eq!(
        summary.trim_end(),
        format!("* 1 FETCH (FLAGS (\\Seen) RFC822.SIZE {size})"),
        "{summary:?}"
    );
    let fetched = run_tool(
        "curl",
        "curl",
        &[
            "-sS",
            "--ssl-reqd",
            "--cacert",
            cafile.to_str().unwrap(),
            "--user",
            &user,
            &format!("imap://localhost:{}/INBOX;MAILINDEX=1", binary.imap.port()),
        ],
    )
    .await;
    assert!(fetched.status.success(), "{fetched:?}");
    assert_eq!(fetched.stdout, stored);

    // SIGTERM: an open IMAP session is told BYE and the process exits.
    let mut c = selected_with_one_message(binary.imap).await;
    let status =
        tokio::task::block_in_place(|| binary.signal_and_wait("TERM", Duration::from_secs(15)))
            .expect("postern up did not exit within 15 s of SIGTERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert_eq!(c.line().await, "* BYE Server shutting down");
    assert!(c.is_closed().await, "IMAP session left open");
}
