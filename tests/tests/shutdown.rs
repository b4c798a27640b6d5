//! Graceful shutdown of `postern up`: SIGTERM and SIGINT end the process
//! with success; open SMTP sessions get `421` (or EOF) between commands, a
//! message being transferred is finished first, and a session that stalls is
//! cut off after the grace time. Afterwards nothing listens any more.

use std::path::Path;
use std::time::Duration;

use postern_tests::{add_alice, message, postern_cli, Binary, SmtpClient};
use tokio::net::TcpStream;

/// Default grace (10 s) plus a margin for a loaded machine.
const GRACE_AND_MARGIN: Duration = Duration::from_secs(15);

fn start(data: &Path) -> Binary {
    tokio::task::block_in_place(|| Binary::start(data))
}

/// Sends `signal` from a blocking thread; the returned task yields the
/// binary back with its exit status (`None` if it did not exit in `limit`).
fn signal(
    mut binary: Binary,
    signal: &'static str,
    limit: Duration,
) -> tokio::task::JoinHandle<(Binary, Option<std::process::ExitStatus>)> {
    tokio::task::spawn_blocking(move || {
        let status = binary.signal_and_wait(signal, limit);
        (binary, status)
    })
}

/// Every listener of an exited binary refuses connections.
async fn assert_nothing_listens(binary: &Binary) {
    for addr in [
        binary.smtp,
        binary.submission,
        binary.submissions,
        binary.pop3,
        binary.pop3s,
        binary.imap,
        binary.imaps,
    ] {
        let result = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await;
        assert!(
            matches!(result, Ok(Err(_))),
            "{addr} still accepts connections after the exit"
        );
    }
}

/// The client's view after shutdown began: a `421` and then EOF, or EOF.
async fn assert_421_or_eof(client: &mut SmtpClient, what: &str) {
    match tokio::time::timeout(GRACE_AND_MARGIN, client.try_reply()).await {
        Ok(Some(reply)) => {
            assert_eq!(reply.code, 421, "{what}: {reply:?}");
            assert!(
                reply.text().starts_with("4."),
                "{what}: enhanced code: {reply:?}"
            );
            assert!(client.is_closed().await, "{what}: not closed after 421");
        }
        Ok(None) => {}
        Err(_) => panic!("{what}: neither a reply nor EOF after SIGTERM"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_transaction_says_421_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let binary = start(&data);
    let (mut client, greeting) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(client.cmd("EHLO client.example.com").await.code, 250);
    let r = client.cmd("MAIL FROM:<bob@example.com>").await;
    assert_eq!(r.code, 250, "{r:?}");
    // A second session that has only said hello.
    let (mut idle, _) = SmtpClient::connect(binary.submission).await;

    let waiter = signal(binary, "TERM", GRACE_AND_MARGIN);
    assert_421_or_eof(&mut client, "session after MAIL").await;
    assert_421_or_eof(&mut idle, "session after the greeting").await;
    let (binary, status) = waiter.await.expect("join");
    let status = status.expect("postern up did not exit within the grace time after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_nothing_listens(&binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_message_in_transfer_finish() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    add_alice(&data);
    let binary = start(&data);
    let (mut client, _) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(client.cmd("EHLO client.example.com").await.code, 250);
    assert_eq!(client.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    let body = message("in-transfer", "The first half,");
    let (head, tail) = body.split_at(body.len() / 2);
    client.send(head).await;

    let waiter = signal(binary, "TERM", GRACE_AND_MARGIN);
    // Give the signal time to arrive (either order must work).
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.send(tail).await;
    client.send(b".\r\n").await;
    let reply = tokio::time::timeout(GRACE_AND_MARGIN, client.try_reply())
        .await
        .expect("no reply to the end of DATA")
        .expect("connection closed before the end of DATA was answered");
    assert_eq!(reply.code, 250, "the message must be accepted: {reply:?}");
    assert_421_or_eof(&mut client, "session after the message").await;
    let (binary, status) = waiter.await.expect("join");
    let status = status.expect("postern up did not exit within the grace time after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_nothing_listens(&binary).await;
    drop(binary);

    // Acknowledged, so it is in the INBOX or still queued.
    let list = tokio::task::block_in_place(|| {
        postern_cli(&data, &["mail", "list", "alice@localhost", "--json"], "")
    });
    let queue =
        tokio::task::block_in_place(|| postern_cli(&data, &["queue", "list", "--json"], ""));
    assert!(list.status.success() && queue.status.success());
    let inbox: serde_json::Value = serde_json::from_slice(&list.stdout).expect("mail list JSON");
    let queued: serde_json::Value = serde_json::from_slice(&queue.stdout).expect("queue JSON");
    let delivered = inbox
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| m["message_id"] == "<in-transfer@example.com>")
        .count();
    let waiting = queued.as_array().expect("array").len();
    assert_eq!(
        delivered + waiting,
        1,
        "the acknowledged message exactly once: INBOX {inbox}, queue {queued}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_a_stalled_session_after_the_grace_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    add_alice(&data);
    // Binary::start keeps a config it finds; ports 0 are announced.
    std::fs::write(
        data.with_extension("toml"),
        "log = \"warn\"\n[limits]\nshutdown_grace_secs = 2\n[smtp]\nlisten = [\"127.0.0.1:0\"]\nsubmission_listen = [\"127.0.0.1:0\"]\nsubmissions_listen = [\"127.0.0.1:0\"]\n[pop3]\nlisten = [\"127.0.0.1:0\"]\npop3s_listen = [\"127.0.0.1:0\"]\n[imap]\nlisten = [\"127.0.0.1:0\"]\nimaps_listen = [\"127.0.0.1:0\"]\n[http]\nlisten = [\"127.0.0.1:0\"]\n",
    )
    .expect("write config");
    let binary = start(&data);
    let (mut client, _) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(client.cmd("EHLO client.example.com").await.code, 250);
    assert_eq!(client.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<alice@localhost>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client.send(b"Subject: never finished\r\n\r\nstalled").await;

    // 2 s of grace, with a wide margin; far less than the data timeout.
    let waiter = signal(binary, "TERM", Duration::from_secs(10));
    let (binary, status) = waiter.await.expect("join");
    let status = status.expect("a stalled session kept postern up beyond the grace time");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        client.is_closed().await,
        "the stalled session was not closed"
    );
    assert_nothing_listens(&binary).await;
    drop(binary);
    let queue =
        tokio::task::block_in_place(|| postern_cli(&data, &["queue", "list", "--json"], ""));
    assert_eq!(
        String::from_utf8_lossy(&queue.stdout).trim(),
        "[]",
        "an unfinished message is not queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_no_sessions_exits_promptly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let binary = start(&data);
    let (binary, status) = signal(binary, "TERM", Duration::from_secs(5))
        .await
        .expect("join");
    let status = status.expect("postern up took more than 5 s to exit on SIGTERM with no sessions");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_nothing_listens(&binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_no_sessions_exits_promptly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let binary = start(&data);
    let (binary, status) = signal(binary, "INT", Duration::from_secs(5))
        .await
        .expect("join");
    let status = status.expect("postern up took more than 5 s to exit on SIGINT with no sessions");
    assert!(status.success(), "exit status after SIGINT: {status}");
    assert_nothing_listens(&binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigterm_on_the_same_ports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    add_alice(&data);
    let binary = start(&data);
    let first = binary.smtp;
    let (mut client, _) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(client.cmd("EHLO client.example.com").await.code, 250);
    let (binary, status) = signal(binary, "TERM", GRACE_AND_MARGIN)
        .await
        .expect("join");
    assert!(status.expect("exit").success());
    drop(binary);
    drop(client);
    // The same config file, so the same ports, right away.
    let binary = start(&data);
    assert_eq!(binary.smtp, first);
    let (mut client, greeting) = SmtpClient::connect(binary.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(client.cmd("EHLO client.example.com").await.code, 250);
    let reply = client
        .send_mail(
            "bob@example.com",
            &["alice@localhost"],
            &message("again", "After a restart."),
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(client.cmd("QUIT").await.code, 221);
}
