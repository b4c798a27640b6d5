//! The queue manager's remote delivery, end to end: smtpd accepts mail on
//! submission, the queue manager relays it through the `[relay]` transport
//! table to a scripted fake server (or another Postern), and retries,
//! bounces and 7-bit conversion are checked from the outside.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::config::{Config, RelayTls, Transport};
use mail_parser::MimeHeaders as _;
use postern_tests::fake_smtp::{Behaviour, FakeSmtp, Step};
use postern_tests::{Server, SmtpClient, PASSWORD};

/// Routes `example.org` to `hop`, with short timeouts and backoff.
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
    config.queue.min_backoff_secs = 1;
    config.queue.max_backoff_secs = 1;
}

/// Submits a message as alice over submission; returns the reply code.
async fn submit(server: &Server, from: &str, to: &[&str], message: &[u8]) -> u16 {
    submit_with(server, from, "", to, message).await
}

/// [`submit`] with MAIL parameters.
async fn submit_with(
    server: &Server,
    from: &str,
    params: &str,
    to: &[&str],
    message: &[u8],
) -> u16 {
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c.auth_plain("alice@localhost", PASSWORD).await;
    let r = c.send_mail_with(from, params, to, message).await;
    let _ = c.cmd("QUIT").await;
    r.code
}

/// Waits until `done` holds, or panics after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn queue_is_empty(server: &Server) -> bool {
    server.store.queue().await.unwrap().is_empty()
}

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@localhost>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@localhost>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The bounce that came back to alice, parsed.
async fn bounce_for_alice(server: &Server) -> Vec<u8> {
    let inbox = server.wait_for_inbox("alice@localhost", 1).await;
    server.raw("alice@localhost", inbox[0].uid).await
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_with_one_session_per_destination() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let msg = message("hello", "Relayed.");
    let code = submit(
        &server,
        "alice@localhost",
        &["bob@example.org", "carol@example.org", "alice@localhost"],
        &msg,
    )
    .await;
    assert_eq!(code, 250);
    eventually(Duration::from_secs(10), "queue empty", || {
        queue_is_empty(&server)
    })
    .await;
    let t = fake.transactions();
    assert_eq!(t.len(), 1, "one transaction for both recipients");
    assert_eq!(fake.sessions(), 1);
    assert_eq!(t[0].sender(), "alice@localhost");
    assert_eq!(t[0].recipients, ["bob@example.org", "carol@example.org"]);
    assert!(
        t[0].message.ends_with(&msg),
        "the message as submitted, after our Received line"
    );
    assert!(t[0].message.starts_with(b"Received: "));
    assert!(
        t[0].params().iter().any(|p| p.starts_with("SIZE=")),
        "{:?}",
        t[0].mail_from
    );
    // The local recipient got its copy as well.
    server.wait_for_inbox("alice@localhost", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_temporary_failure_is_retried() {
    let fake = FakeSmtp::start(
        Behaviour::default().reject_recipient("bob@example.org", "451 4.3.0 try again later"),
    )
    .await;
    // The fake's new behaviour applies to new sessions: cache none.
    let server = Server::start_with(|c| {
        route_to(c, "example.org", fake.addr());
        c.relay.connection_cache_secs = 0;
    })
    .await;
    assert_eq!(
        submit(
            &server,
            "alice@localhost",
            &["bob@example.org"],
            &message("later", "x")
        )
        .await,
        250
    );
    eventually(Duration::from_secs(10), "deferred", || async {
        let q = server.store.queue().await.unwrap();
        q.len() == 1
            && q[0].recipients[0].state == store::RecipientState::Deferred
            && q[0].recipients[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("451 4.3.0 try again later"))
    })
    .await;
    let started = Instant::now();
    fake.set_behaviour(|b| *b = Behaviour::default());
    eventually(Duration::from_secs(15), "delivered", || {
        queue_is_empty(&server)
    })
    .await;
    assert_eq!(fake.transactions().len(), 1, "delivered once");
    assert!(started.elapsed() < Duration::from_secs(10));
    // No bounce for a message that got through.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server
        .store
        .messages(server.account("alice@localhost").await, "INBOX")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_rejected_recipient_of_three_bounces_alone() {
    let fake = FakeSmtp::start(Behaviour::default().reject_recipient(
        "nobody@example.org",
        "550 5.1.1 <nobody@example.org>: no such user",
    ))
    .await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let msg = message("three", "Two of three.");
    let to = ["bob@example.org", "nobody@example.org", "carol@example.org"];
    assert_eq!(submit(&server, "alice@localhost", &to, &msg).await, 250);
    let raw = bounce_for_alice(&server).await;
    eventually(Duration::from_secs(10), "queue empty", || {
        queue_is_empty(&server)
    })
    .await;
    let t = fake.transactions();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].recipients, ["bob@example.org", "carol@example.org"]);

    let report = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let ct = report.root_part().content_type().expect("a content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(
        report.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.org"),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("no such user"), "{text}");
    assert!(
        !text.contains("Final-Recipient: rfc822; bob@example.org"),
        "{text}"
    );
    // The original comes back whole.
    assert!(text.contains("Subject: three"), "{text}");
    assert_eq!(
        server.wait_for_inbox("alice@localhost", 1).await.len(),
        1,
        "exactly one bounce"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_mid_data_is_retried_without_duplicates() {
    let fake = FakeSmtp::start(Behaviour {
        drop_after_data_bytes: Some(100),
        ..Behaviour::default()
    })
    .await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let body = "line of text\r\n".repeat(100);
    assert_eq!(
        submit(
            &server,
            "alice@localhost",
            &["bob@example.org"],
            &message("drop", &body)
        )
        .await,
        250
    );
    eventually(
        Duration::from_secs(10),
        "deferred after the drop",
        || async {
            let q = server.store.queue().await.unwrap();
            q.first().is_some_and(|m| {
                m.recipients[0]
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("lost connection"))
            })
        },
    )
    .await;
    fake.set_behaviour(|b| b.drop_after_data_bytes = None);
    eventually(Duration::from_secs(15), "delivered", || {
        queue_is_empty(&server)
    })
    .await;
    let complete: Vec<_> = fake
        .transactions()
        .into_iter()
        .filter(|t| t.reply.starts_with("250"))
        .collect();
    assert_eq!(complete.len(), 1, "delivered exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_times_out_and_is_retried() {
    let fake = FakeSmtp::start(Behaviour {
        hang_at: Some(Step::Greeting),
        ..Behaviour::default()
    })
    .await;
    let server = Server::start_with(|c| {
        route_to(c, "example.org", fake.addr());
        c.relay.command_timeout_secs = 1;
    })
    .await;
    assert_eq!(
        submit(
            &server,
            "alice@localhost",
            &["bob@example.org"],
            &message("hang", "x")
        )
        .await,
        250
    );
    eventually(
        Duration::from_secs(10),
        "deferred after the timeout",
        || async {
            let q = server.store.queue().await.unwrap();
            q.first().is_some_and(|m| {
                m.recipients[0].state == store::RecipientState::Deferred
                    && m.recipients[0]
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("timed out"))
            })
        },
    )
    .await;
    fake.set_behaviour(|b| b.hang_at = None);
    eventually(Duration::from_secs(15), "delivered", || {
        queue_is_empty(&server)
    })
    .await;
    assert_eq!(fake.transactions().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_defers_then_expires_into_a_bounce() {
    // Nothing listens on this port.
    let closed: SocketAddr = format!("127.0.0.1:{}", postern_tests::free_port())
        .parse()
        .unwrap();
    let server = Server::start_with(|c| {
        route_to(c, "example.org", closed);
        c.queue.max_lifetime_secs = 3;
    })
    .await;
    assert_eq!(
        submit(
            &server,
            "alice@localhost",
            &["bob@example.org"],
            &message("gone", "x")
        )
        .await,
        250
    );
    eventually(Duration::from_secs(5), "deferred", || async {
        let q = server.store.queue().await.unwrap();
        q.first().is_some_and(|m| {
            m.recipients[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("connect to") && e.starts_with("4."))
        })
    })
    .await;
    let raw = bounce_for_alice(&server).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Final-Recipient: rfc822; bob@example.org"),
        "{text}"
    );
    assert!(text.contains("expired"), "{text}");
    eventually(Duration::from_secs(5), "queue empty", || {
        queue_is_empty(&server)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_bit_mail_to_a_hop_without_8bitmime_goes_as_a_7bit_copy() {
    let fake = FakeSmtp::start(Behaviour::with_capabilities(&[
        "PIPELINING",
        "SIZE 10240000",
        "ENHANCEDSTATUSCODES",
    ]))
    .await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let msg = "From: alice@localhost\r\nTo: bob@example.org\r\nSubject: 8-bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln — naïve café.\r\n".as_bytes().to_vec();
    // As Thunderbird sends it.
    let params = format!("BODY=8BITMIME SIZE={}", msg.len());
    let to = ["bob@example.org", "alice@localhost"];
    assert_eq!(
        submit_with(&server, "alice@localhost", &params, &to, &msg).await,
        250
    );
    eventually(Duration::from_secs(10), "relayed", || {
        queue_is_empty(&server)
    })
    .await;

    let t = fake.transactions();
    assert_eq!(t.len(), 1);
    let sent = &t[0].message;
    assert!(sent.iter().all(|&b| b < 0x80), "7-bit only");
    assert!(
        !t[0].params().iter().any(|p| p.starts_with("BODY=")),
        "{}",
        t[0].mail_from
    );
    assert!(
        !t[0].params().iter().any(|p| p.starts_with("SIZE=")),
        "{}",
        t[0].mail_from
    );
    let sent_text = String::from_utf8_lossy(sent);
    assert!(
        sent_text.contains("Content-Transfer-Encoding: quoted-printable"),
        "{sent_text}"
    );
    let parse = |raw: &[u8]| {
        mail_parser::MessageParser::default()
            .parse(raw)
            .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
            .unwrap()
    };
    assert_eq!(
        parse(sent),
        parse(&msg),
        "the copy decodes to the same text"
    );
    // The stored original is untouched: the local copy is the 8-bit one.
    let inbox = server.wait_for_inbox("alice@localhost", 1).await;
    let local = server.raw("alice@localhost", inbox[0].uid).await;
    assert!(local.ends_with(&msg));
}

#[tokio::test(flavor = "multi_thread")]
async fn smtputf8_mail_to_a_hop_without_smtputf8_bounces_with_5_6_7() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    // A UTF-8 header, sent with SMTPUTF8.
    let msg = "From: alice@localhost\r\nTo: bob@example.org\r\nSubject: Grüße\r\n\r\nhi\r\n";
    let params = "SMTPUTF8 BODY=8BITMIME";
    let to = ["bob@example.org"];
    assert_eq!(
        submit_with(&server, "alice@localhost", params, &to, msg.as_bytes()).await,
        250
    );
    let raw = bounce_for_alice(&server).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("Status: 5.6.7"), "{text}");
    assert!(fake.transactions().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bounce_is_never_bounced() {
    let fake = FakeSmtp::start(
        Behaviour::default().reject_recipient("bob@example.org", "550 5.1.1 no such user"),
    )
    .await;
    let server = Server::start_with(|c| {
        route_to(c, "example.org", fake.addr());
        c.relay.trusted_networks = vec!["127.0.0.1/32".into()];
    })
    .await;
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(c.cmd("EHLO mx.test").await.code, 250);
    let r = c
        .send_mail("", &["bob@example.org"], &message("bounce", "a DSN"))
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let queued_as = |r: &postern_tests::SmtpReply| -> u64 {
        r.text()
            .rsplit(' ')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no queue id in {r:?}"))
    };
    let first = queued_as(&r);
    eventually(Duration::from_secs(10), "queue empty", || {
        queue_is_empty(&server)
    })
    .await;
    // No new entry appeared: a bounce is queued in the transaction that
    // marks the failure (before the queue was empty), and would have
    // taken the next queue id, which the next message now gets instead.
    let r = c
        .send_mail(
            "alice@localhost",
            &["alice@localhost"],
            &message("probe", "next"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(
        queued_as(&r),
        first + 1,
        "a queue entry was made in between"
    );
    assert!(fake.transactions().is_empty());
    assert_eq!(fake.sessions(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_posterns_relay_to_each_other() {
    let downstream = Server::start_with(|c| c.local_domains.push("example.org".into())).await;
    downstream
        .store
        .add_account("bob@example.org", PASSWORD)
        .await
        .unwrap();
    let upstream = Server::start_with(|c| route_to(c, "example.org", downstream.smtp)).await;
    let msg = message("between", "From one Postern to another.");
    assert_eq!(
        submit(&upstream, "alice@localhost", &["bob@example.org"], &msg).await,
        250
    );
    let inbox = downstream.wait_for_inbox("bob@example.org", 1).await;
    let raw = downstream.raw("bob@example.org", inbox[0].uid).await;
    assert!(raw.ends_with(&msg));
    let received = raw
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"Received:"))
        .count();
    assert_eq!(received, 2, "one trace line per hop");
    // One Return-Path, the final delivery's: relaying adds none.
    assert!(raw.starts_with(b"Return-Path: <alice@localhost>\r\nReceived: "));
    let return_paths = raw
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"Return-Path:"))
        .count();
    assert_eq!(return_paths, 1);
    eventually(Duration::from_secs(5), "upstream queue empty", || {
        queue_is_empty(&upstream)
    })
    .await;
    // An unknown user downstream bounces back to alice upstream.
    assert_eq!(
        submit(&upstream, "alice@localhost", &["nobody@example.org"], &msg).await,
        250
    );
    let raw = bounce_for_alice(&upstream).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.org"),
        "{text}"
    );
}

// ---- real peers and real clients ----

/// Postfix's `smtp-sink` on a free port, dumping each message into a
/// directory. `-8` makes it a peer without 8BITMIME.
struct Sink {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Sink {
    async fn start(extra: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops root for `nobody`, who must be able to write here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let port = postern_tests::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut cmd = tokio::process::Command::new("smtp-sink");
        cmd.args(extra);
        // smtp-sink wants `-u` only when run as root.
        if running_as_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg("-d")
            .arg(format!("{}/%M.", dir.path().display()))
            .arg(addr.to_string())
            .arg("10")
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .expect("smtp-sink (from postfix) must be installed; .ci/run installs it");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Sink { child, dir, addr }
    }

    /// The dumped transactions: smtp-sink's `X-…-Args` lines, then the
    /// message as received.
    fn dumps(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .collect();
        out.sort();
        out
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_sink_without_8bitmime_gets_a_7bit_copy() {
    let sink = Sink::start(&["-8"]).await;
    let server = Server::start_with(|c| route_to(c, "example.org", sink.addr)).await;
    let msg = "From: alice@localhost\r\nTo: bob@example.org\r\nSubject: to the sink\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÜberweisung: 100 €\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\u{ff}\u{fe}binary\r\n--b1--\r\n";
    let to = ["bob@example.org"];
    assert_eq!(
        submit_with(
            &server,
            "alice@localhost",
            "BODY=8BITMIME",
            &to,
            msg.as_bytes()
        )
        .await,
        250
    );
    eventually(Duration::from_secs(10), "relayed", || {
        queue_is_empty(&server)
    })
    .await;
    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 1);
    let dump = &dumps[0];
    let text = String::from_utf8_lossy(dump);
    let mail_args = text
        .lines()
        .find(|l| l.starts_with("X-Mail-Args:"))
        .unwrap_or_default();
    assert!(!mail_args.contains("BODY="), "{mail_args}");
    // The dump starts with smtp-sink's own lines; the message follows.
    let start = text.find("Received: from").expect("our Received line");
    let sent = &dump[start..];
    assert!(sent.iter().all(|&b| b < 0x80), "7-bit only:\n{text}");
    let parts = |raw: &[u8]| -> Vec<Vec<u8>> {
        let m = mail_parser::MessageParser::default().parse(raw).unwrap();
        m.parts
            .iter()
            .filter(|p| !matches!(p.body, mail_parser::PartType::Multipart(_)))
            .map(|p| p.contents().to_vec())
            .collect()
    };
    assert_eq!(
        parts(sent),
        parts(msg.as_bytes()),
        "every part decodes the same"
    );
}

async fn swaks_relay(server: &Server, args: &[&str], subject: &str) {
    let mut all: Vec<String> = [
        "--to",
        "bob@example.org",
        "--from",
        "alice@localhost",
        "--helo",
        "client.example.com",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@localhost",
        "--auth-password",
        PASSWORD,
        "--header",
    ]
    .map(String::from)
    .to_vec();
    all.push(format!("Subject: {subject}"));
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let output = postern_tests::run_tool("swaks", "swaks", &refs).await;
    assert!(
        output.status.success(),
        "swaks: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eventually(Duration::from_secs(10), "relayed", || {
        queue_is_empty(server)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_submits_for_relay_over_starttls_and_implicit_tls() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let submission = server.submission.to_string();
    swaks_relay(&server, &["--server", &submission, "--tls"], "starttls").await;
    let submissions = server.submissions.to_string();
    swaks_relay(
        &server,
        &["--server", &submissions, "--tls-on-connect"],
        "implicit",
    )
    .await;
    let t = fake.transactions();
    assert_eq!(t.len(), 2);
    for (tx, subject) in t.iter().zip(["starttls", "implicit"]) {
        assert_eq!(tx.recipients, ["bob@example.org"]);
        let text = String::from_utf8_lossy(&tx.message);
        assert!(text.contains(&format!("Subject: {subject}")), "{text}");
        assert!(
            text.contains("ESMTPSA"),
            "submitted over TLS with AUTH: {text}"
        );
    }
    // Without AUTH, swaks is refused before any recipient.
    let output = postern_tests::run_tool(
        "swaks",
        "swaks",
        &[
            "--to",
            "bob@example.org",
            "--from",
            "alice@localhost",
            "--server",
            &submission,
            "--tls",
        ],
    )
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("530 5.7.0"));
}

const PY_RELAY: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
port, password = int(sys.argv[1]), sys.argv[2]
msg = EmailMessage()
msg["From"] = "Alice <alice@localhost>"
msg["To"] = "bob@example.org"
msg["Subject"] = "python relay"
msg.set_content("Sent with smtplib, relayed.\n")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com", timeout=30) as s:
    s.starttls(context=ctx)
    s.login("alice@localhost", password)
    s.send_message(msg)
    try:
        s.send_message(msg, from_addr="mallory@localhost")
        sys.exit("a foreign sender was accepted")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 553, e
"#;

#[tokio::test(flavor = "multi_thread")]
async fn python_smtplib_submits_for_relay() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let server = Server::start_with(|c| route_to(c, "example.org", fake.addr())).await;
    let port = server.submission.port().to_string();
    let output =
        postern_tests::run_tool("python3", "python3", &["-c", PY_RELAY, &port, PASSWORD]).await;
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eventually(Duration::from_secs(10), "relayed", || {
        queue_is_empty(&server)
    })
    .await;
    let t = fake.transactions();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].sender(), "alice@localhost");
    assert!(String::from_utf8_lossy(&t[0].message).contains("Subject: python relay"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_reused_for_the_next_message() {
    let fake = FakeSmtp::start(Behaviour::default()).await;
    let server = Server::start_with(|c| {
        route_to(c, "example.org", fake.addr());
        c.relay.connection_cache_secs = 10;
    })
    .await;
    for i in 0..3 {
        let subject = format!("reuse{i}");
        assert_eq!(
            submit(
                &server,
                "alice@localhost",
                &["bob@example.org"],
                &message(&subject, "x")
            )
            .await,
            250
        );
        eventually(Duration::from_secs(10), "relayed", || {
            queue_is_empty(&server)
        })
        .await;
    }
    assert_eq!(fake.transactions().len(), 3);
    assert_eq!(fake.sessions(), 1, "one session carried all three");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_session_the_peer_closed_is_replaced() {
    // The downstream server drops idle sessions after a second.
    let downstream = Server::start_with(|c| {
        c.local_domains.push("example.org".into());
        c.smtp.command_timeout_secs = 1;
    })
    .await;
    downstream
        .store
        .add_account("bob@example.org", PASSWORD)
        .await
        .unwrap();
    let upstream = Server::start_with(|c| {
        route_to(c, "example.org", downstream.smtp);
        c.relay.connection_cache_secs = 30;
    })
    .await;
    for i in 0..2 {
        let subject = format!("stale{i}");
        assert_eq!(
            submit(
                &upstream,
                "alice@localhost",
                &["bob@example.org"],
                &message(&subject, "x")
            )
            .await,
            250
        );
        downstream.wait_for_inbox("bob@example.org", i + 1).await;
        eventually(Duration::from_secs(5), "upstream queue empty", || {
            queue_is_empty(&upstream)
        })
        .await;
        // Long enough for downstream to time the cached session out.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let upstream_queue = upstream.store.queue().await.unwrap();
    assert!(upstream_queue.is_empty(), "{upstream_queue:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_back_off_from_the_minimum_to_the_maximum() {
    let fake = FakeSmtp::start(
        Behaviour::default().reject_recipient("bob@example.org", "451 4.3.0 not yet"),
    )
    .await;
    let server = Server::start_with(|c| {
        route_to(c, "example.org", fake.addr());
        c.queue.min_backoff_secs = 1;
        c.queue.max_backoff_secs = 4;
    })
    .await;
    assert_eq!(
        submit(
            &server,
            "alice@localhost",
            &["bob@example.org"],
            &message("backoff", "x")
        )
        .await,
        250
    );
    // After attempt n the next one is due min * 2^(n-1) later, capped.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "only saw {seen:?}");
        let q = server.store.queue().await.unwrap();
        let r = &q[0].recipients[0];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if r.attempts as usize == seen.len() + 1 && r.leased_until <= now {
            seen.push(r.next_attempt_at - now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (delay, expected) in seen.iter().zip([1, 2, 4, 4]) {
        assert!(
            (expected - 1..=expected).contains(delay),
            "delays {seen:?}, expected about 1, 2, 4, 4"
        );
    }
}
