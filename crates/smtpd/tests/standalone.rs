//! The `smtpd` binary alone, on a data dir that `postern` administers: it
//! starts, announces its listeners, accepts and delivers mail, and stops on
//! SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "connection closed"
        );
        reply.push_str(&line);
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
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = store::Store::open(&data).unwrap();
        store
            .add_account("alice@localhost", "pw-alice")
            .await
            .unwrap();
    });
    let config = dir.path().join("smtpd.toml");
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    std::fs::write(
        &config,
        format!(
            "log = \"warn\"\n[smtp]\nlisten = [\"127.0.0.1:{p1}\"]\nsubmission_listen = [\"127.0.0.1:{p2}\"]\nsubmissions_listen = [\"127.0.0.1:{p3}\"]\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "smtpd exited early: {lines:?}"
        );
        let ready = line.starts_with("postern: ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    assert!(
        lines[0].starts_with(&format!("postern: smtp listening on 127.0.0.1:{p1}")),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 4, "three listeners and ready: {lines:?}");

    let addr: SocketAddr = format!("127.0.0.1:{p1}").parse().unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    assert!(read_reply(&mut reader).starts_with("220 "));
    writer
        .write_all(b"EHLO t\r\nMAIL FROM:<b@example.com>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
        .unwrap();
    for expected in ["250", "250", "250", "354"] {
        let reply = read_reply(&mut reader);
        assert!(reply.starts_with(expected), "{reply}");
    }
    writer
        .write_all(b"Subject: alone\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        .unwrap();
    assert!(read_reply(&mut reader).starts_with("250 2.0.0 Ok: queued as"));
    assert!(read_reply(&mut reader).starts_with("221"));

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

    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "smtpd did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
}
