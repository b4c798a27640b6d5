//! `[smtp] bare_newline`: what a message with bare LF line ends gets, as
//! apps really send them (Python's `smtplib.sendmail` of an
//! `EmailMessage.as_bytes()`, whose line ends are `\n`). `reject` (the
//! default) refuses it whole with `550 5.5.2`; `normalize`, and capture
//! mode whatever the key says, stores it with CRLF line ends, so that
//! POP3 and IMAP report the sizes they serve. Either way the data ends
//! only at `<CRLF>.<CRLF>`.

use std::time::Duration;

use common::config::{BareNewline, Config};
use postern_tests::{
    run_tool_ok, without_received, ImapServer, Pop3Client, Pop3Server, Server, SmtpClient, PASSWORD,
};

/// Sends an `as_bytes()` message (bare LF line ends) with
/// `smtplib.sendmail`; prints `250` or the refusal's code and text.
const PY_BARE_LF: &str = r#"
import smtplib, sys
from email.message import EmailMessage
port = int(sys.argv[1])
msg = EmailMessage()
msg["From"] = "Bob <bob@example.com>"
msg["To"] = "alice@localhost"
msg["Subject"] = "bare line feeds"
msg.set_content("line one\nline two\n.\n.leading dot\nlast line\n")
data = msg.as_bytes()
assert b"\r" not in data and data.count(b"\n") > 5, data
try:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com", timeout=30) as s:
        s.sendmail("bob@example.com", ["alice@localhost"], data)
    print("250")
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
"#;

async fn send_bare_lf(server: &Server) -> String {
    let port = server.smtp.port().to_string();
    run_tool_ok("python3", "python3", &["-c", PY_BARE_LF, &port])
        .await
        .trim()
        .to_string()
}

/// Every CR is followed by LF and every LF follows a CR.
fn crlf_only(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    })
}

async fn inbox_len(server: &Server) -> usize {
    let id = server.account("alice@localhost").await;
    server
        .store
        .messages(id, "INBOX")
        .await
        .expect("list")
        .len()
}

#[tokio::test]
async fn bare_lf_from_smtplib_is_refused_by_default() {
    let server = Server::start().await;
    assert_eq!(server.config.smtp.bare_newline, BareNewline::Reject);
    let answer = send_bare_lf(&server).await;
    assert!(answer.starts_with("550 5.5.2 "), "{answer}");
    // Refused before the queue: nothing to deliver, now or later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox_len(&server).await, 0);
}

/// What smtplib sent, with CRLF line ends: the stuffed dots undone, the
/// lone dot line kept, and the CRLF smtplib adds before its end marker.
const STORED_BODY: &[u8] =
    b"\r\n\r\nline one\r\nline two\r\n.\r\n.leading dot\r\nlast line\r\n\r\n";

async fn accepted_with_crlf(server: Server) {
    let answer = send_bare_lf(&server).await;
    assert_eq!(answer, "250");
    let inbox = server.wait_for_inbox("alice@localhost", 1).await;
    let raw = server.raw("alice@localhost", inbox[0].uid).await;
    let text = without_received(&raw);
    assert!(
        text.starts_with(
            b"From: Bob <bob@example.com>\r\nTo: alice@localhost\r\nSubject: bare line feeds\r\n"
        ),
        "{:?}",
        String::from_utf8_lossy(text)
    );
    assert!(
        text.ends_with(STORED_BODY),
        "{:?}",
        String::from_utf8_lossy(text)
    );
    assert!(crlf_only(&raw), "a bare line end is stored");
    // The envelope says what was changed.
    let arrivals = server
        .store
        .arrivals_newest(store::ArrivalScope::All, None, 1)
        .await
        .expect("arrivals");
    let envelope = server
        .store
        .envelope(arrivals[0].envelope.expect("an envelope"))
        .await
        .expect("read")
        .expect("envelope");
    assert_eq!(envelope.warnings, ["bare line feeds made CRLF"]);

    // POP3: LIST says what RETR sends.
    let pop3 = Pop3Server::start(&server).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    c.login("alice@localhost", PASSWORD).await;
    let list = c.cmd("LIST 1").await;
    let size: usize = list
        .strip_prefix("+OK 1 ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{list}"));
    let status = c.cmd("RETR 1").await;
    assert!(status.starts_with("+OK"), "{status}");
    let served = c.body().await;
    assert_eq!(served.len(), size, "POP3 LIST against RETR");
    assert_eq!(served, raw);

    // IMAP: RFC822.SIZE says what BODY[] sends.
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let (mut c, _) = Pop3Client::connect(imap.imap).await;
    let login = c
        .imap("a", &format!("LOGIN alice@localhost \"{PASSWORD}\""))
        .await;
    assert!(login.last().unwrap().starts_with("a OK"), "{login:?}");
    c.imap("b", "SELECT INBOX").await;
    c.send(b"c FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n").await;
    let head = c.line().await;
    let (size, literal) = head
        .strip_prefix("* 1 FETCH (RFC822.SIZE ")
        .and_then(|rest| rest.split_once(" BODY[] {"))
        .and_then(|(size, rest)| {
            Some((
                size.parse::<usize>().ok()?,
                rest.strip_suffix('}')?.parse::<usize>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("{head}"));
    assert_eq!(size, literal, "IMAP RFC822.SIZE against BODY[]");
    assert_eq!(c.read_bytes(literal).await, raw);
    let rest = c.until_tag("c").await;
    assert!(rest.last().unwrap().starts_with("c OK"), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_lf_from_smtplib_is_made_crlf_with_normalize() {
    let server = Server::start_with(|c| c.smtp.bare_newline = BareNewline::Normalize).await;
    accepted_with_crlf(server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn capture_mode_normalizes_whatever_the_key_says() {
    let server = Server::start_with(|c: &mut Config| {
        c.capture.enabled = true;
        c.smtp.bare_newline = BareNewline::Reject;
    })
    .await;
    accepted_with_crlf(server).await;
}

/// Normalizing opens no door to smuggling: `\n.\n` and `\n.\r\n` inside the
/// data are not its end, and the commands after them are text of the one
/// message, through DATA and BDAT alike.
#[tokio::test(flavor = "multi_thread")]
async fn normalize_still_ends_data_only_at_crlf_dot_crlf() {
    let server = Server::start_with(|c| c.smtp.bare_newline = BareNewline::Normalize).await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(c.cmd("EHLO client.example").await.code, 250);
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: outer\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.com>\nRCPT TO:<alice@localhost>\nDATA\nSubject: hidden\n\nsecond\n.\r\nQUIT\r\n")
        .await;
    // Nothing answers yet: the data has not ended.
    let early = tokio::time::timeout(Duration::from_millis(500), c.try_reply()).await;
    assert!(early.is_err(), "a reply before the end of data: {early:?}");
    c.send(b"\r\n.\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    // The same through BDAT, which has no end marker at all.
    let chunk = b"Subject: chunk\n\nline\n.\nRSET\n";
    assert_eq!(c.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    let mut bdat = format!("BDAT {} LAST\r\n", chunk.len()).into_bytes();
    bdat.extend_from_slice(chunk);
    c.send(&bdat).await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.cmd("QUIT").await.code, 221);

    let inbox = server.wait_for_inbox("alice@localhost", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox_len(&server).await, 2, "one message per transaction");
    // The queue delivers the two concurrently: either may have UID 1.
    let mut raws = Vec::new();
    for m in &inbox {
        raws.push(server.raw("alice@localhost", m.uid).await);
    }
    raws.sort_by_key(|raw| !raw.windows(13).any(|w| w == b"Subject: oute"));
    let (first, second) = (raws[0].clone(), raws[1].clone());
    assert!(
        without_received(&first).ends_with(b"Subject: outer\r\n\r\nfirst\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: hidden\r\n\r\nsecond\r\n.\r\nQUIT\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    assert!(
        without_received(&second).ends_with(b"Subject: chunk\r\n\r\nline\r\n.\r\nRSET\r\n"),
        "{:?}",
        String::from_utf8_lossy(&second)
    );
}
