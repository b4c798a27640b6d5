//! Deterministic failure rules (and Mailpit's chaos) applied by smtpd: a
//! test sets them through the shared handle, as the HTTP API will, and a
//! real client sees the server refuse, wait or hang up exactly as asked.

use std::time::{Duration, Instant};

use common::enhanced_status::EnhancedStatus;
use common::rules::{Action, AddressPattern, ChaosTrigger, ChaosTriggers, Match, Rule, Stage};
use postern_tests::{message, run_tool, run_tool_ok, Server, SmtpClient, PASSWORD};

fn rule(id: &str, stage: Stage, times: Option<u32>, action: Action) -> Rule {
    Rule {
        id: id.to_string(),
        stage,
        matches: Match::default(),
        times,
        action,
    }
}

fn reply(code: u16, enhanced: &str, text: &str) -> Action {
    Action::Reply {
        code,
        enhanced: EnhancedStatus::parse(enhanced).expect("enhanced status code"),
        text: text.to_string(),
    }
}

fn pattern(text: &str) -> Option<AddressPattern> {
    Some(AddressPattern::try_from(text.to_string()).expect("pattern"))
}

async fn ehlo(c: &mut SmtpClient) {
    let r = c.cmd("EHLO client.example").await;
    assert_eq!(r.code, 250, "{r:?}");
}

async fn inbox_len(server: &Server, address: &str) -> usize {
    let id = server.account(address).await;
    server
        .store
        .messages(id, "INBOX")
        .await
        .expect("list")
        .len()
}

/// An app that retries what was refused, as smtplib reports it: prints
/// one line per attempt, `N ok` or `N address code text`.
const PY_RETRY: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
msg = b"From: app@example.com\r\nSubject: retried\r\n\r\nbody\r\n"
pending = ["alice@localhost", "bob@localhost"]
for attempt in range(1, 6):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="app.example", timeout=30) as s:
        try:
            refused = s.sendmail("app@example.com", pending, msg)
        except smtplib.SMTPRecipientsRefused as e:
            refused = e.recipients
    if not refused:
        print(attempt, "ok")
        break
    for address, (code, text) in sorted(refused.items()):
        print(attempt, address, code, text.decode())
    pending = sorted(refused)
"#;

/// The issue's example: `450 4.2.0 try later` on the first RCPT to one
/// address, twice; the app's third try gets through. The other recipient
/// is taken the first time, and the fire log says what fired where.
#[tokio::test(flavor = "multi_thread")]
async fn a_450_twice_then_the_third_try_gets_through() {
    let server = Server::start().await;
    server
        .store
        .add_account("bob@localhost", PASSWORD)
        .await
        .expect("add bob");
    let listed = server
        .rules
        .replace(vec![Rule {
            matches: Match {
                recipient: pattern("alice@localhost"),
                ..Match::default()
            },
            ..rule(
                "later",
                Stage::Rcpt,
                Some(2),
                reply(450, "4.2.0", "try later"),
            )
        }])
        .expect("rules");
    assert_eq!(listed[0].fired, 0);
    let port = server.smtp.port().to_string();
    let out = run_tool_ok("python3", "python3", &["-c", PY_RETRY, &port]).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "1 alice@localhost 450 4.2.0 try later",
            "2 alice@localhost 450 4.2.0 try later",
            "3 ok"
        ],
        "{out}"
    );
    server.wait_for_inbox("alice@localhost", 1).await;
    server.wait_for_inbox("bob@localhost", 1).await;
    assert_eq!(server.rules.list()[0].fired, 2);
    let log = server.rules.fired();
    assert_eq!(log.len(), 2, "{log:?}");
    for firing in &log {
        assert_eq!(firing.rule, "later");
        assert_eq!(firing.stage, Stage::Rcpt);
        assert_eq!(firing.address.as_deref(), Some("alice@localhost"));
        assert_eq!(firing.client.ip().to_string(), "127.0.0.1");
        assert_eq!(firing.action, "reply 450 4.2.0 try later");
    }
    assert_ne!(log[0].session, log[1].session, "two sessions");
    assert!(log[0].seq < log[1].seq);
}

/// A drop at the end of DATA: swaks sees the connection close with no
/// reply, and nothing is stored; the next message is.
#[tokio::test(flavor = "multi_thread")]
async fn a_drop_at_data_stores_nothing() {
    let server = Server::start().await;
    server
        .rules
        .replace(vec![rule("hang-up", Stage::Data, Some(1), Action::Drop)])
        .expect("rules");
    let addr = server.smtp.to_string();
    let swaks = [
        "--to",
        "alice@localhost",
        "--from",
        "app@example.com",
        "--server",
        &addr,
        "--header",
        "Subject: dropped",
    ];
    let out = run_tool("swaks", "swaks", &swaks).await;
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{transcript}");
    assert!(transcript.contains("<-  354"), "{transcript}");
    assert!(!transcript.contains("<-  250 2.0.0"), "{transcript}");
    assert_eq!(inbox_len(&server, "alice@localhost").await, 0);
    assert!(server.store.queue().await.expect("queue").is_empty());
    // The rule is spent: the same message now arrives, as the first queue
    // entry this server ever made (had the dropped one been queued, this
    // would be the second), and alone.
    let transcript = run_tool_ok("swaks", "swaks", &swaks).await;
    assert!(
        transcript.contains("<-  250 2.0.0 Ok: queued as 1\n"),
        "{transcript}"
    );
    server.wait_for_inbox("alice@localhost", 1).await;
    assert_eq!(inbox_len(&server, "alice@localhost").await, 1);
    let log = server.rules.fired();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].stage, log[0].action.as_str()),
        (Stage::Data, "drop")
    );
}

/// A reply at DATA ends the transaction unstored; the session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_at_data_refuses_the_message_only() {
    let server = Server::start().await;
    server
        .rules
        .replace(vec![rule(
            "full",
            Stage::Data,
            Some(1),
            reply(552, "5.3.4", "Message too big for this test"),
        )])
        .expect("rules");
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let r = c
        .send_mail(
            "app@example.com",
            &["alice@localhost"],
            &message("one", "x"),
        )
        .await;
    assert_eq!(r.code, 552, "{r:?}");
    assert_eq!(r.text(), "5.3.4 Message too big for this test");
    let r = c
        .send_mail(
            "app@example.com",
            &["alice@localhost"],
            &message("two", "x"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let inbox = server.wait_for_inbox("alice@localhost", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox_len(&server, "alice@localhost").await, 1);
    assert_eq!(inbox[0].summary.subject.as_deref(), Some("two"));
}

/// A delay at MAIL: the reply comes that much later, and is the usual one.
#[tokio::test(flavor = "multi_thread")]
async fn a_delay_is_observed_then_the_session_goes_on() {
    let server = Server::start().await;
    server
        .rules
        .replace(vec![Rule {
            matches: Match {
                sender: pattern("*@slow.example"),
                ..Match::default()
            },
            ..rule("slow", Stage::Mail, None, Action::Delay { ms: 700 })
        }])
        .expect("rules");
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    let start = Instant::now();
    let r = c.cmd("MAIL FROM:<app@slow.example>").await;
    let waited = start.elapsed();
    assert_eq!(r.code, 250, "{r:?}");
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
    assert_eq!(c.cmd("RSET").await.code, 250);
    // Another sender's domain: no wait.
    let start = Instant::now();
    assert_eq!(c.cmd("MAIL FROM:<app@fast.example>").await.code, 250);
    assert!(start.elapsed() < Duration::from_millis(500));
    let log = server.rules.fired();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].address.as_deref(), Some("app@slow.example"));
    assert_eq!(log[0].action, "delay 700 ms");
}

/// Connect: the rule's reply is the greeting and the session ends (RFC
/// 5321 3.1); a drop closes without a word. HELO and MAIL refusals change
/// nothing else in the session.
#[tokio::test(flavor = "multi_thread")]
async fn connect_helo_and_mail_rules() {
    let server = Server::start().await;
    server
        .rules
        .replace(vec![
            rule(
                "greet",
                Stage::Connect,
                Some(1),
                reply(554, "5.7.1", "no service for you"),
            ),
            rule("mute", Stage::Connect, Some(1), Action::Drop),
            rule(
                "helo",
                Stage::Helo,
                Some(1),
                reply(421, "4.7.0", "come back later"),
            ),
            rule("mail", Stage::Mail, Some(1), reply(451, "4.3.0", "not now")),
        ])
        .expect("rules");
    let (mut c, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 554);
    assert_eq!(greeting.text(), "5.7.1 no service for you");
    assert!(c.is_closed().await);

    let tcp = tokio::net::TcpStream::connect(server.smtp).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        let mut tcp = tcp;
        tcp.read(&mut buf).await
    })
    .await
    .expect("closed in time")
    .unwrap_or(0);
    assert_eq!(n, 0, "a dropped connection says nothing: {:?}", &buf[..n]);

    let (mut c, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    let r = c.cmd("EHLO client.example").await;
    assert_eq!(
        (r.code, r.text()),
        (421, "4.7.0 come back later".to_string())
    );
    // The refused EHLO left no HELO behind.
    assert_eq!(c.cmd("MAIL FROM:<app@example.com>").await.code, 503);
    ehlo(&mut c).await;
    let r = c.cmd("MAIL FROM:<app@example.com>").await;
    assert_eq!((r.code, r.text()), (451, "4.3.0 not now".to_string()));
    // No transaction was started, the greeting stands: MAIL again works.
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 503);
    assert_eq!(c.cmd("MAIL FROM:<app@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    let stages: Vec<Stage> = server.rules.fired().iter().map(|f| f.stage).collect();
    assert_eq!(
        stages,
        [Stage::Connect, Stage::Connect, Stage::Helo, Stage::Mail]
    );
}

/// AUTH with good credentials refused by a rule, then taken.
#[tokio::test(flavor = "multi_thread")]
async fn an_auth_rule_refuses_good_credentials() {
    let server = Server::start().await;
    server
        .rules
        .replace(vec![rule(
            "auth",
            Stage::Auth,
            Some(1),
            reply(454, "4.7.0", "Temporary authentication failure"),
        )])
        .expect("rules");
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    ehlo(&mut c).await;
    use base64::Engine as _;
    let plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0alice@localhost\0{PASSWORD}"));
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert_eq!(r.code, 454, "{r:?}");
    assert_eq!(c.cmd("MAIL FROM:<alice@localhost>").await.code, 530);
    c.auth_plain("alice@localhost", PASSWORD).await;
    assert_eq!(c.cmd("MAIL FROM:<alice@localhost>").await.code, 250);
}

/// Mailpit's chaos, with a seed: 100 % at RCPT gives its code with
/// Mailpit's text; the log names the trigger.
#[tokio::test(flavor = "multi_thread")]
async fn chaos_triggers_as_mailpit() {
    let server = Server::start_with(|c| c.rules.chaos_seed = Some(1)).await;
    let set = server
        .rules
        .set_chaos(ChaosTriggers {
            recipient: ChaosTrigger {
                error_code: 0,
                probability: 100,
            },
            ..ChaosTriggers::default()
        })
        .expect("chaos");
    assert_eq!(set.recipient.error_code, 451);
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    assert_eq!(c.cmd("MAIL FROM:<app@example.com>").await.code, 250);
    let r = c.cmd("RCPT TO:<alice@localhost>").await;
    assert_eq!(
        (r.code, r.text()),
        (451, "4.0.0 Chaos recipient error".to_string())
    );
    assert_eq!(server.rules.fired()[0].rule, "chaos:recipient");
    server.rules.set_chaos(ChaosTriggers::default()).unwrap();
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").await.code, 250);
}

/// Capture mode takes any credentials and any recipient, but the rules
/// and chaos still have their say.
#[tokio::test(flavor = "multi_thread")]
async fn rules_and_chaos_apply_in_capture_mode() {
    let server = Server::start_with(|c| {
        c.capture.enabled = true;
        c.rules.chaos_seed = Some(3);
    })
    .await;
    server
        .rules
        .replace(vec![Rule {
            matches: Match {
                recipient: pattern("*@gmail.com"),
                ..Match::default()
            },
            ..rule(
                "gmail",
                Stage::Rcpt,
                Some(1),
                reply(450, "4.2.0", "try later"),
            )
        }])
        .expect("rules");
    server
        .rules
        .set_chaos(ChaosTriggers {
            authentication: ChaosTrigger {
                error_code: 0,
                probability: 100,
            },
            ..ChaosTriggers::default()
        })
        .expect("chaos");
    let (mut c, _) = SmtpClient::connect(server.smtp).await;
    ehlo(&mut c).await;
    use base64::Engine as _;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0app-user\0app-secret");
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert_eq!(
        (r.code, r.text()),
        (535, "5.7.8 Chaos authentication error".to_string())
    );
    server.rules.set_chaos(ChaosTriggers::default()).unwrap();
    assert_eq!(c.cmd(&format!("AUTH PLAIN {plain}")).await.code, 235);
    assert_eq!(c.cmd("MAIL FROM:<noreply@app.example>").await.code, 250);
    let r = c.cmd("RCPT TO:<customer@gmail.com>").await;
    assert_eq!((r.code, r.text()), (450, "4.2.0 try later".to_string()));
    assert_eq!(c.cmd("RCPT TO:<customer@gmail.com>").await.code, 250);
    let rules: Vec<String> = server.rules.fired().into_iter().map(|f| f.rule).collect();
    assert_eq!(rules, ["chaos:authentication", "gmail"]);
}
