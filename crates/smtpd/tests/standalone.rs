//! The `smtpd` binary alone, on a data dir that `postern` administers: it
//! starts, announces its listeners, accepts and delivers mail, and stops on
//! SIGTERM.

use std::time::{Duration, Instant};

use common::testutil::{free_port, seed_account, DaemonProcess, LineClient};

/// Reads one reply, all its lines.
fn read_reply(c: &mut LineClient) -> String {
    let mut reply = String::new();
    loop {
        let line = c.line();
        reply.push_str(&line);
        reply.push('\n');
        if line.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

#[test]
fn smtpd_runs_alone_on_a_shared_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The account is made the way an administrator would, before smtpd runs.
    seed_account(&data, "alice@localhost", "pw-alice", &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let smtpd = DaemonProcess::start(
        env!("CARGO_BIN_EXE_smtpd").as_ref(),
        &data,
        &dir.path().join("smtpd.toml"),
        &format!(
            "log = \"warn\"\n[smtp]\nlisten = [\"127.0.0.1:{p1}\"]\nsubmission_listen = [\"127.0.0.1:{p2}\"]\nsubmissions_listen = [\"127.0.0.1:{p3}\"]\n"
        ),
    );
    let lines = &smtpd.announced;
    assert!(
        lines[0].starts_with(&format!("postern: smtp listening on 127.0.0.1:{p1}")),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 4, "three listeners and ready: {lines:?}");

    let mut c = LineClient::connect(p1);
    assert!(read_reply(&mut c).starts_with("220 "));
    c.send(b"EHLO t\r\nMAIL FROM:<b@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n");
    for expected in ["250", "250", "250", "354"] {
        let reply = read_reply(&mut c);
        assert!(reply.starts_with(expected), "{reply}");
    }
    c.send(b"Subject: alone\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    assert!(read_reply(&mut c).starts_with("250 2.0.0 Ok: queued as"));
    assert!(read_reply(&mut c).starts_with("221"));

    let delivered = rt.block_on(async {
        let store = store::Store::open(&data).unwrap();
        let alice = store.account("alice@localhost").await.unwrap().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = store.messages(alice.id, "INBOX").await.unwrap();
            if !messages.is_empty() || Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].summary.subject.as_deref(), Some("alone"));

    smtpd.stop();
}
