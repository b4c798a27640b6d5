//! Interop with real SMTP clients: swaks and Python's smtplib, against
//! smtpd running in this process. Every test checks the client's exit code
//! and what arrived in the store.
//!
//! The tools are required: a missing one fails the test (`.ci/run` installs
//! them), it is never skipped.

use std::process::Output;
use std::time::Duration;

use postern_tests::{run_tool as run, without_received, Server, PASSWORD};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// swaks with its transcript on stdout; asserts exit 0.
async fn swaks_ok(args: &[&str]) -> String {
    let output = run("swaks", "swaks", args).await;
    let transcript = text(&output);
    assert!(
        output.status.success(),
        "swaks {args:?} exited with {}:\n{transcript}",
        output.status
    );
    transcript
}

/// `python3 -c SCRIPT args…`; asserts exit 0.
async fn python(script: &str, args: &[&str]) {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    let output = run("python3", "python3", &all).await;
    assert!(
        output.status.success(),
        "python3 exited with {}:\n{}",
        output.status,
        text(&output)
    );
}

fn addr(a: std::net::SocketAddr) -> String {
    a.to_string()
}

// ---- swaks ----

#[tokio::test]
async fn swaks_plain_to_the_mx_port() {
    let server = Server::start().await;
    let transcript = swaks_ok(&[
        "--to",
        "alice@localhost",
        "--from",
        "bob@example.com",
        "--server",
        &addr(server.smtp),
        "--helo",
        "client.example.com",
        "--header",
        "Subject: swaks plain",
        "--body",
        "Sent by swaks to the MX port.",
    ])
    .await;
    assert!(
        transcript.contains("250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].summary.subject.as_deref(), Some("swaks plain"));
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    let body = String::from_utf8_lossy(without_received(&raw)).into_owned();
    assert!(
        body.contains("\r\n\r\nSent by swaks to the MX port.\r\n"),
        "{body}"
    );
}

/// STARTTLS and AUTH on the submission port with one mechanism.
async fn swaks_starttls_auth(mechanism: &str) {
    let server = Server::start().await;
    let subject = format!("swaks starttls {mechanism}");
    let transcript = swaks_ok(&[
        "--to",
        "alice@localhost",
        "--from",
        "alice@localhost",
        "--server",
        &addr(server.submission),
        "--helo",
        "client.example.com",
        "--tls",
        "--auth",
        mechanism,
        "--auth-user",
        "alice@localhost",
        "--auth-password",
        PASSWORD,
        "--header",
        &format!("Subject: {subject}"),
    ])
    .await;
    assert!(
        transcript.contains("220 2.0.0"),
        "no STARTTLS reply:\n{transcript}"
    );
    assert!(
        transcript.contains("235 2.7.0"),
        "no AUTH success:\n{transcript}"
    );
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(
        messages[0].summary.subject.as_deref(),
        Some(subject.as_str())
    );
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    let received =
        String::from_utf8_lossy(&raw[..raw.len() - without_received(&raw).len()]).into_owned();
    assert!(
        received.contains("(using "),
        "Received line does not record TLS: {received}"
    );
    assert!(
        received.contains("ESMTPSA"),
        "Received line should say ESMTPSA: {received}"
    );
}

#[tokio::test]
async fn swaks_starttls_auth_plain_on_submission() {
    swaks_starttls_auth("PLAIN").await;
}

#[tokio::test]
async fn swaks_starttls_auth_login_on_submission() {
    swaks_starttls_auth("LOGIN").await;
}

#[tokio::test]
async fn swaks_implicit_tls_on_submissions() {
    let server = Server::start().await;
    let transcript = swaks_ok(&[
        "--to",
        "alice@localhost",
        "--from",
        "alice@localhost",
        "--server",
        &addr(server.submissions),
        "--helo",
        "client.example.com",
        "--tls-on-connect",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@localhost",
        "--auth-password",
        PASSWORD,
        "--header",
        "Subject: swaks tls-on-connect",
    ])
    .await;
    assert!(
        transcript.contains("235 2.7.0"),
        "no AUTH success:\n{transcript}"
    );
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(
        messages[0].summary.subject.as_deref(),
        Some("swaks tls-on-connect")
    );
}

#[tokio::test]
async fn swaks_to_an_unknown_user_fails_with_550_5_1_1() {
    let server = Server::start().await;
    let output = run(
        "swaks",
        "swaks",
        &[
            "--to",
            "nobody@localhost",
            "--from",
            "bob@example.com",
            "--server",
            &addr(server.smtp),
            "--helo",
            "client.example.com",
        ],
    )
    .await;
    let transcript = text(&output);
    assert!(!output.status.success(), "swaks succeeded:\n{transcript}");
    assert!(transcript.contains("550 5.1.1"), "{transcript}");
    // And a wrong password on submission.
    let output = run(
        "swaks",
        "swaks",
        &[
            "--to",
            "alice@localhost",
            "--from",
            "alice@localhost",
            "--server",
            &addr(server.submission),
            "--helo",
            "client.example.com",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@localhost",
            "--auth-password",
            "wrong password",
        ],
    )
    .await;
    let transcript = text(&output);
    assert!(!output.status.success(), "swaks succeeded:\n{transcript}");
    assert!(transcript.contains("535 5.7.8"), "{transcript}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = server.account("alice@localhost").await;
    let inbox = server.store.messages(id, "INBOX").await.expect("list");
    assert!(inbox.is_empty(), "nothing was to arrive: {inbox:?}");
}

// ---- Python smtplib ----

const PY_PLAIN: &str = r#"
import smtplib, sys
from email.message import EmailMessage
port = int(sys.argv[1])
msg = EmailMessage()
msg["From"] = "Bob <bob@example.com>"
msg["To"] = "alice@localhost"
msg["Subject"] = "python plain"
msg["Message-ID"] = "<python-plain@example.com>"
msg.set_content("Sent with smtplib.\n.leading dot line\n")
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com", timeout=30) as s:
    s.send_message(msg)
"#;

#[tokio::test]
async fn python_smtplib_plain() {
    let server = Server::start().await;
    python(PY_PLAIN, &[&server.smtp.port().to_string()]).await;
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(messages[0].summary.subject.as_deref(), Some("python plain"));
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    let body = String::from_utf8_lossy(without_received(&raw)).into_owned();
    // smtplib dot-stuffs; the stored message is unstuffed.
    assert!(
        body.ends_with("\r\n\r\nSent with smtplib.\r\n.leading dot line\r\n"),
        "{body:?}"
    );
}

/// Verifies the server's certificate against `<data dir>/tls/cert.pem` for
/// the name `localhost`, then logs in and sends.
const PY_STARTTLS: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
port, cafile, password, implicit = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "implicit"
ctx = ssl.create_default_context(cafile=cafile)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
msg = EmailMessage()
msg["From"] = "alice@localhost"
msg["To"] = "alice@localhost"
msg["Subject"] = "python implicit" if implicit else "python starttls"
msg.set_content("Sent with smtplib over TLS.\n")
if implicit:
    s = smtplib.SMTP_SSL("localhost", port, local_hostname="client.example.com", timeout=30, context=ctx)
else:
    s = smtplib.SMTP("localhost", port, local_hostname="client.example.com", timeout=30)
    s.starttls(context=ctx)
with s:
    s.ehlo()
    assert s.has_extn("auth"), s.esmtp_features
    assert not s.has_extn("starttls"), "STARTTLS offered again after TLS"
    s.login("alice@localhost", password)
    s.send_message(msg)
"#;

async fn python_tls(implicit: bool) {
    let server = Server::start().await;
    let port = if implicit {
        server.submissions.port()
    } else {
        server.submission.port()
    };
    let cert = server.dir.path().join("tls/cert.pem");
    let mode = if implicit { "implicit" } else { "starttls" };
    python(
        PY_STARTTLS,
        &[
            &port.to_string(),
            cert.to_str().expect("utf-8 path"),
            PASSWORD,
            mode,
        ],
    )
    .await;
    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let expected = if implicit {
        "python implicit"
    } else {
        "python starttls"
    };
    assert_eq!(messages[0].summary.subject.as_deref(), Some(expected));
}

#[tokio::test]
async fn python_smtplib_starttls_login_verifies_the_certificate() {
    python_tls(false).await;
}

#[tokio::test]
async fn python_smtplib_ssl_login_verifies_the_certificate() {
    python_tls(true).await;
}

/// Sends UTF-8 headers and an 8-bit body with SMTPUTF8 and BODY=8BITMIME,
/// and writes the bytes smtplib sends (flattened as `send_message` does) to
/// a file for the test to compare.
const PY_UTF8: &str = r#"
import email.generator, io, smtplib, sys
from email import policy
from email.message import EmailMessage
port, out = int(sys.argv[1]), sys.argv[2]
msg = EmailMessage(policy=policy.SMTPUTF8)
msg["From"] = "Jürgen Müller <juergen@example.com>"
msg["To"] = "alice@localhost"
msg["Subject"] = "Grüße aus Köln ✉"
msg["Message-ID"] = "<python-utf8@example.com>"
msg.set_content("Héllo wörld — 日本語のテキスト\nZweite Zeile: ÄÖÜ ß\n", cte="8bit")
buf = io.BytesIO()
email.generator.BytesGenerator(buf).flatten(msg, linesep="\r\n")
with open(out, "wb") as f:
    f.write(buf.getvalue())
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com", timeout=30) as s:
    s.ehlo()
    assert s.has_extn("smtputf8") and s.has_extn("8bitmime"), s.esmtp_features
    s.send_message(msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
"#;

#[tokio::test]
async fn python_smtplib_utf8_and_8bit_body_stored_byte_exact() {
    let server = Server::start().await;
    let sent_file = server.dir.path().join("python-sent.eml");
    python(
        PY_UTF8,
        &[
            &server.smtp.port().to_string(),
            sent_file.to_str().expect("utf-8 path"),
        ],
    )
    .await;
    let mut sent = std::fs::read(&sent_file).expect("python wrote what it sent");
    if !sent.ends_with(b"\r\n") {
        sent.extend_from_slice(b"\r\n");
    }
    let sent_text = String::from_utf8(sent.clone()).expect("UTF-8");
    for expected in [
        "Subject: Grüße aus Köln ✉\r\n",
        "From: Jürgen Müller <juergen@example.com>\r\n",
        "\r\n\r\nHéllo wörld — 日本語のテキスト\r\nZweite Zeile: ÄÖÜ ß\r\n",
    ] {
        assert!(
            sent_text.contains(expected),
            "python did not send raw UTF-8 {expected:?}: {sent_text}"
        );
    }

    let messages = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", messages[0].uid).await;
    assert_eq!(
        String::from_utf8_lossy(without_received(&raw)),
        sent_text,
        "stored bytes differ from what smtplib sent"
    );
    assert_eq!(without_received(&raw), &sent[..]);
    let summary = &messages[0].summary;
    assert_eq!(summary.subject.as_deref(), Some("Grüße aus Köln ✉"));
    assert_eq!(summary.from[0].name.as_deref(), Some("Jürgen Müller"));
    assert_eq!(
        summary.message_id.as_deref(),
        Some("<python-utf8@example.com>")
    );
}
