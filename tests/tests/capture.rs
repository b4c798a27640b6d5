//! Capture mode, black-box: the real `postern up --capture`, sent to the
//! way apps send (Python's smtplib with a login, swaks), read back over
//! IMAP and POP3 as the captured address, and the envelope and the SMTP
//! transcript found in the store as data.

use postern_tests::*;
use store::{ArrivalScope, Store};

/// `postern up --capture` and the capture password it printed.
fn start_capture(dir: &std::path::Path) -> (Binary, String) {
    let data = dir.join("data");
    let server = Binary::start_up(&data, "", &["--capture"]);
    let password = server
        .stdout_lines
        .iter()
        .find_map(|l| l.split("with password ").nth(1))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("no capture password in {:?}", server.stdout_lines));
    (server, password)
}

/// `python3 -c SCRIPT args…`; returns stdout, asserting exit 0.
async fn python(script: &str, args: &[&str]) -> String {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    run_tool_ok("python3", "python3", &all).await
}

/// An app's test: smtplib, logging in with whatever credentials the app
/// has, sending to real-world addresses with a Bcc.
const SEND: &str = r#"
import smtplib, sys
from email.message import EmailMessage
host, port = sys.argv[1], int(sys.argv[2])
m = EmailMessage()
m["From"] = "App <noreply@app.example>"
m["To"] = "customer@gmail.com, ops@acme.example"
m["Subject"] = "Your order"
m.set_content("Thanks for your order.\n")
with smtplib.SMTP(host, port) as s:
    s.ehlo("app.example")
    s.login("app-user", "app-secret")
    refused = s.send_message(m, to_addrs=["customer@gmail.com", "ops@acme.example", "audit@bcc.example"])
    assert not refused, refused
print("sent")
"#;

/// Reads INBOX of the captured address over IMAP: the number of messages
/// and the first one's bytes.
const READ_IMAP: &str = r#"
import imaplib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port)
m.login(user, password)
typ, data = m.select("INBOX")
print(data[0].decode())
typ, data = m.fetch("1", "(BODY.PEEK[])")
sys.stdout.write(data[0][1].decode())
m.logout()
"#;

const READ_POP3: &str = r#"
import poplib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port)
p.user(user)
p.pass_(password)
print(p.stat()[0])
p.quit()
"#;

#[tokio::test]
async fn an_app_sends_to_real_addresses_and_each_recipient_reads_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (server, password) = start_capture(dir.path());
    let (host, port) = (server.smtp.ip().to_string(), server.smtp.port().to_string());
    // The MX port, with AUTH as the app is configured (capture offers it
    // on every port and takes any credentials).
    assert_eq!(python(SEND, &[&host, &port]).await.trim(), "sent");

    // Each recipient, the Bcc one too, has a mailbox of its own.
    for address in [
        "customer@gmail.com",
        "ops@acme.example",
        "audit@bcc.example",
    ] {
        let out = python(
            READ_IMAP,
            &[&host, &server.imap.port().to_string(), address, &password],
        )
        .await;
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("1"), "{address}: {out}");
        assert_eq!(
            lines.next(),
            Some("Return-Path: <noreply@app.example>"),
            "{out}"
        );
        assert!(out.contains("Subject: Your order"), "{out}");
        // The raw message is never rewritten to show the Bcc.
        assert!(!out.contains("audit@bcc.example"), "{out}");
        let out = python(
            READ_POP3,
            &[&host, &server.pop3.port().to_string(), address, &password],
        )
        .await;
        assert_eq!(out.trim(), "1", "{address}");
    }

    // The envelope is data: sender, every recipient (Bcc included), the
    // login name and HELO; the session's transcript without the password.
    let store = Store::open(&dir.path().join("data")).unwrap();
    let messages = store
        .arrivals_newest(ArrivalScope::All, None, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 3);
    let envelope = store
        .envelope(messages[0].envelope.expect("envelope"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(envelope.mail_from, "noreply@app.example");
    let rcpts: Vec<&str> = envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(
        rcpts,
        [
            "customer@gmail.com",
            "ops@acme.example",
            "audit@bcc.example"
        ]
    );
    assert_eq!(envelope.auth_user.as_deref(), Some("app-user"));
    assert_eq!(envelope.helo.as_deref(), Some("app.example"));
    // As smtplib wrote it.
    assert!(envelope.mail_params.starts_with("size="), "{envelope:?}");
    drop(server);
    let session = store
        .smtp_session(envelope.session.expect("session"))
        .await
        .unwrap()
        .unwrap();
    // smtplib writes its verbs in lower case.
    let transcript = session.transcript.to_lowercase();
    assert!(
        transcript.contains("c: mail from:<noreply@app.example>"),
        "{transcript}"
    );
    assert!(transcript.contains("s: 250 2.0.0 ok: captured as"));
    assert!(transcript.contains("c: quit"), "{transcript}");
    assert!(!session.transcript.contains("app-secret"));
    assert!(!session.transcript.contains("YXBwLXNlY3JldA"));
}

#[tokio::test]
async fn capture_takes_swaks_over_starttls_and_keeps_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _password) = start_capture(dir.path());
    let out = run_tool_ok(
        "swaks",
        "swaks",
        &[
            "--to",
            "someone@example.org",
            "--from",
            "tls-app@example.org",
            "--server",
            &server.submission.to_string(),
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "anything",
            "--auth-password",
            "whatever",
            "--header",
            "Subject: over TLS",
        ],
    )
    .await;
    assert!(out.contains("Ok: captured as"), "{out}");

    // A recipient with no domain is refused, and that attempt is kept.
    let (mut smtp, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(smtp.cmd("EHLO client.example").await.code, 250);
    assert_eq!(smtp.cmd("MAIL FROM:<app@example.org>").await.code, 250);
    let refused = smtp.cmd("RCPT TO:<localonly>").await;
    assert_eq!(refused.code / 100, 5, "{}", refused.text());
    assert_eq!(smtp.cmd("QUIT").await.code, 221);
    drop(smtp);

    let store = Store::open(&dir.path().join("data")).unwrap();
    let messages = store
        .arrivals_newest(ArrivalScope::All, None, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    let envelope = store
        .envelope(messages[0].envelope.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(envelope.mail_from, "tls-app@example.org");
    assert!(
        envelope
            .tls
            .as_deref()
            .is_some_and(|t| t.starts_with("TLS")),
        "{envelope:?}"
    );
    assert_eq!(envelope.auth_user.as_deref(), Some("anything"));
    // The refused session is recorded once it ends.
    let mut found = None;
    for _ in 0..100 {
        let sessions = store.smtp_sessions(None, 10).await.unwrap();
        found = sessions.into_iter().find(|s| s.refusals > 0);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let session = found.expect("the refused session is kept");
    assert!(
        session.transcript.contains("C: RCPT TO:<localonly>"),
        "{}",
        session.transcript
    );
    assert!(store
        .session_envelopes(session.id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn without_capture_mail_for_other_domains_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(&dir.path().join("data"));
    let (mut smtp, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(smtp.cmd("EHLO client.example").await.code, 250);
    assert_eq!(smtp.cmd("MAIL FROM:<app@example.org>").await.code, 250);
    let r = smtp.cmd("RCPT TO:<customer@gmail.com>").await;
    assert_eq!(r.code, 554, "{}", r.text());
}
