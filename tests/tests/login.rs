//! The one login path, seen from the three mail daemons' sockets: a SASL
//! response that cannot be decoded is a failed login in SMTP, POP3 and
//! IMAP alike (the session closes at the limit), and the throttle delays
//! the next attempt from an address in all three, after writing out the
//! replies already due. A client that sends a password and leaves is not
//! waited for: its session ends at once, the password unchecked.

use std::time::{Duration, Instant};

use postern_tests::*;

const ALICE: &str = "alice@localhost";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Two failures allowed, the third closes; no delay.
fn two_failures(c: &mut common::config::Config) {
    c.auth.max_failures_per_session = 3;
    c.auth.failures_before_delay = 100;
}

/// From the first failure on, every attempt waits `DELAY`.
const DELAY: Duration = Duration::from_secs(2);
fn delayed(c: &mut common::config::Config) {
    c.auth.failures_before_delay = 1;
    c.auth.delay_step_secs = DELAY.as_secs();
    c.auth.max_delay_secs = DELAY.as_secs();
    c.auth.max_failures_per_session = 10;
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_counts_malformed_sasl_as_failed_logins() {
    let server = Server::start_with(two_failures).await;
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    assert_eq!(c.cmd("EHLO t").await.code, 250);
    // A LOGIN with an empty password is malformed, as an empty PLAIN is.
    assert_eq!(
        c.cmd(&format!("AUTH LOGIN {}", b64(ALICE.as_bytes())))
            .await
            .code,
        334
    );
    let r = c.cmd("=").await;
    assert_eq!((r.code, &r.lines[0][..5]), (501, "5.5.2"), "{r:?}");
    // An overlong response line.
    assert_eq!(c.cmd("AUTH PLAIN").await.code, 334);
    let r = c.cmd(&"A".repeat(5000)).await;
    assert_eq!((r.code, &r.lines[0][..5]), (501, "5.5.2"), "{r:?}");
    let r = c.cmd("AUTH PLAIN !!!").await;
    assert_eq!((r.code, &r.lines[0][..5]), (421, "4.7.0"), "{r:?}");
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3_counts_malformed_sasl_as_failed_logins() {
    let server = Server::start().await;
    let pop3 = Pop3Server::start_with(&server, two_failures).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert_eq!(c.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    assert_eq!(
        c.cmd("%%%").await,
        "-ERR [AUTH] Authentication failed: invalid base64"
    );
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    assert!(c
        .cmd(&"A".repeat(5000))
        .await
        .starts_with("-ERR [AUTH] Authentication failed"));
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64(b"alice@localhost")))
            .await,
        "-ERR [AUTH] Too many failed logins; closing"
    );
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_counts_malformed_sasl_as_failed_logins() {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |c| {
        two_failures(c);
        c.imap.max_line_length = 1024;
    })
    .await;
    let (mut c, _) = Pop3Client::connect(imap.imap).await;
    let failed = |tag: &str| format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials");
    // Base64 of a response without its NULs (not base64 at all is a BAD
    // from the command parser).
    let no_nul = b64(b"alice@localhost");
    let r = c.imap("a", &format!("AUTHENTICATE PLAIN {no_nul}")).await;
    assert_eq!(r, [failed("a")]);
    // An overlong continuation is a failed login too, not a BAD that
    // costs nothing.
    c.send(b"b AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(format!("{}\r\n", "A".repeat(3000)).as_bytes()).await;
    assert_eq!(c.until_tag("b").await, [failed("b")]);
    // Cancelling is not a failure.
    c.send(b"c AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(b"*\r\n").await;
    assert_eq!(c.until_tag("c").await, ["c BAD Authentication cancelled"]);
    let r = c
        .imap("d", &format!("AUTHENTICATE PLAIN {}", b64(b"\0\0pw")))
        .await;
    assert_eq!(r, [failed("d")]);
    assert_eq!(c.line().await, "* BYE Too many failed logins; closing");
    assert!(c.is_closed().await);
}

/// Sends `pipelined` (a harmless command, then a login) in one write and
/// returns when the first reply came and when the second did.
async fn timed(c: &mut Pop3Client, pipelined: &[u8], lines_first: usize) -> (Duration, Duration) {
    let start = Instant::now();
    c.send(pipelined).await;
    for _ in 0..lines_first {
        c.line().await;
    }
    let first = start.elapsed();
    c.line().await;
    (first, start.elapsed())
}

/// After a failure, the next login waits for the throttle; the reply to
/// the command pipelined before it is not held back.
fn assert_throttled((first, second): (Duration, Duration)) {
    assert!(first < DELAY / 2, "earlier reply held back: {first:?}");
    assert!(second >= DELAY, "login not delayed: {second:?}");
}

/// pop3d with `DELAY` after a failure, and a client whose first
/// USER/PASS failed.
async fn pop3_after_a_failure(server: &Server) -> (Pop3Server, Pop3Client) {
    let pop3 = Pop3Server::start_with(server, delayed).await;
    let (mut c, _) = Pop3Client::connect(pop3.pop3).await;
    assert!(c.cmd("USER alice@localhost").await.starts_with("+OK"));
    assert!(c.cmd("PASS wrong").await.starts_with("-ERR [AUTH]"));
    (pop3, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3_throttles_after_a_failure() {
    let server = Server::start().await;
    let (_pop3, mut c) = pop3_after_a_failure(&server).await;
    let pipelined = format!("NOOP\r\nAUTH PLAIN {}\r\n", b64(b"\0alice@localhost\0nope"));
    assert_throttled(timed(&mut c, pipelined.as_bytes(), 1).await);
}

/// imapd with `DELAY` after a failure, and a client whose first LOGIN
/// (`a`) failed.
async fn imap_after_a_failure(server: &Server) -> (ImapServer, Pop3Client) {
    let imap = ImapServer::start_with(server, delayed).await;
    let (mut c, _) = Pop3Client::connect(imap.imap).await;
    let r = c.imap("a", &format!("LOGIN {ALICE} wrong")).await;
    assert_eq!(r, ["a NO [AUTHENTICATIONFAILED] Invalid credentials"]);
    (imap, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_throttles_after_a_failure() {
    let server = Server::start().await;
    let (_imap, mut c) = imap_after_a_failure(&server).await;
    let pipelined = format!("b NOOP\r\nc LOGIN {ALICE} nope\r\n");
    assert_throttled(timed(&mut c, pipelined.as_bytes(), 1).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_throttles_after_a_failure() {
    let server = Server::start_with(delayed).await;
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    assert_eq!(c.cmd("EHLO t").await.code, 250);
    let wrong = b64(b"\0alice@localhost\0wrong");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {wrong}")).await.code, 535);
    let start = Instant::now();
    c.send(format!("NOOP\r\nAUTH PLAIN {wrong}\r\n").as_bytes())
        .await;
    assert_eq!(c.reply().await.code, 250);
    let first = start.elapsed();
    assert_eq!(c.reply().await.code, 535);
    assert_throttled((first, start.elapsed()));
}

/// Lets `leave` send a login and drop its client (closing the
/// connection at once); asserts that the session (`sessions()` counts it)
/// ends well before the throttle's `DELAY` is over.
async fn leave_mid_login(
    leave: impl std::future::Future<Output = ()>,
    sessions: impl Fn() -> usize,
) {
    assert_eq!(sessions(), 1);
    leave.await;
    let start = Instant::now();
    while sessions() > 0 {
        assert!(
            start.elapsed() < DELAY / 2,
            "the session of a client that left ran on for {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After a failure the next login waits `DELAY`; a client that sends one
/// and closes at once ends its session long before: the wait, and the
/// password check behind it, are dropped.
#[tokio::test(flavor = "multi_thread")]
async fn imap_login_of_a_client_that_left_is_not_checked() {
    let server = Server::start().await;
    let (imap, mut c) = imap_after_a_failure(&server).await;
    let login = format!("b LOGIN {ALICE} \"{PASSWORD}\"\r\n");
    let leave = async move { c.send(login.as_bytes()).await };
    leave_mid_login(leave, || imap.sessions()).await;
}

/// The same for POP3's SASL: AUTH PLAIN with its initial response, then
/// gone.
#[tokio::test(flavor = "multi_thread")]
async fn pop3_login_of_a_client_that_left_is_not_checked() {
    let server = Server::start().await;
    let (pop3, mut c) = pop3_after_a_failure(&server).await;
    let plain = b64(format!("\0{ALICE}\0{PASSWORD}").as_bytes());
    let login = format!("AUTH PLAIN {plain}\r\n");
    let leave = async move { c.send(login.as_bytes()).await };
    leave_mid_login(leave, || pop3.sessions()).await;
}

/// The same for SMTP AUTH on the submission port.
#[tokio::test(flavor = "multi_thread")]
async fn smtp_login_of_a_client_that_left_is_not_checked() {
    let server = Server::start_with(delayed).await;
    let (mut c, _) = SmtpClient::connect(server.submission).await;
    assert_eq!(c.cmd("EHLO t").await.code, 250);
    let wrong = b64(b"\0alice@localhost\0wrong");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {wrong}")).await.code, 535);
    let right = b64(format!("\0{ALICE}\0{PASSWORD}").as_bytes());
    let login = format!("AUTH PLAIN {right}\r\n");
    let leave = async move { c.send(login.as_bytes()).await };
    leave_mid_login(leave, || server.sessions()).await;
}

/// A client that stays gets its answer after the delay as before: the
/// watch takes nothing from it.
#[tokio::test(flavor = "multi_thread")]
async fn imap_login_of_a_client_that_stays_is_answered() {
    let server = Server::start().await;
    let (_imap, mut c) = imap_after_a_failure(&server).await;
    // The NOOP pipelined behind the login is read during the wait and
    // answered after it.
    let start = Instant::now();
    c.send(format!("b LOGIN {ALICE} \"{PASSWORD}\"\r\nc NOOP\r\n").as_bytes())
        .await;
    let r = c.until_tag("b").await;
    assert!(r[0].starts_with("b OK"), "{r:?}");
    assert!(start.elapsed() >= DELAY);
    assert_eq!(c.until_tag("c").await, ["c OK Done"]);
}
