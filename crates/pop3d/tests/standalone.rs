//! The `pop3d` binary alone, on a data dir that `postern` administers and
//! smtpd fills: it starts, announces its listeners, serves the INBOX, and
//! stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    assert!(
        reader.read_line(&mut line).unwrap() > 0,
        "connection closed"
    );
    assert!(line.ends_with("\r\n"), "{line:?}");
    line.truncate(line.len() - 2);
    line
}

fn cmd(writer: &mut TcpStream, reader: &mut BufReader<TcpStream>, command: &str) -> String {
    writer
        .write_all(format!("{command}\r\n").as_bytes())
        .unwrap();
    line(reader)
}

/// Starts the `pop3d` binary on `data` with a config `<tag>.toml` in
/// `dir`, on two free ports; returns it once it says it is ready, with its
/// stdout, the lines it printed and its ports.
fn start_pop3d(
    dir: &std::path::Path,
    data: &std::path::Path,
    tag: &str,
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    Vec<String>,
    u16,
    u16,
) {
    let config = dir.join(format!("{tag}.toml"));
    let (p1, p2) = (free_port(), free_port());
    std::fs::write(
        &config,
        format!(
            "log = \"warn\"\n[pop3]\nlisten = [\"127.0.0.1:{p1}\"]\npop3s_listen = [\"127.0.0.1:{p2}\"]\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
        .arg("--data-dir")
        .arg(data)
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
            "pop3d exited early: {lines:?}"
        );
        let ready = line.starts_with("postern: ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    (child, out, lines, p1, p2)
}

/// Connects to a POP3 port and reads the greeting.
fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    assert!(line(&mut reader).starts_with("+OK "));
    (writer, reader)
}

#[test]
fn two_processes_on_one_data_dir_share_the_maildrop_lock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = store::Store::open(&data).unwrap();
        store
            .add_account("alice@localhost", "pw-alice")
            .await
            .unwrap();
    });
    let (mut first, _out1, _, port1, _) = start_pop3d(dir.path(), &data, "first");
    let (mut second, _out2, _, port2, _) = start_pop3d(dir.path(), &data, "second");
    let (mut w1, mut r1) = connect(port1);
    assert!(cmd(&mut w1, &mut r1, "USER alice@localhost").starts_with("+OK"));
    assert!(cmd(&mut w1, &mut r1, "PASS pw-alice").starts_with("+OK"));
    let (mut w2, mut r2) = connect(port2);
    assert!(cmd(&mut w2, &mut r2, "USER alice@localhost").starts_with("+OK"));
    let reply = cmd(&mut w2, &mut r2, "PASS pw-alice");
    assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
    assert!(cmd(&mut w1, &mut r1, "QUIT").starts_with("+OK"));
    // Once the first session's lease is released, the other process may
    // take the maildrop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (mut w, mut r) = connect(port2);
        assert!(cmd(&mut w, &mut r, "USER alice@localhost").starts_with("+OK"));
        let reply = cmd(&mut w, &mut r, "PASS pw-alice");
        if reply.starts_with("+OK") {
            break;
        }
        assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
        assert!(
            Instant::now() < deadline,
            "lock never passed to the other process"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = first.kill();
    let _ = second.kill();
    let _ = first.wait();
    let _ = second.wait();
}

#[test]
fn pop3d_runs_alone_on_a_shared_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let message = b"From: bob@example.com\r\nSubject: alone\r\n\r\n.dot\r\nhi\r\n".to_vec();
    // The account and its mail are made the way the other daemons would,
    // before pop3d runs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = store::Store::open(&data).unwrap();
        let alice = store
            .add_account("alice@localhost", "pw-alice")
            .await
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        store
            .enqueue(store::NewQueuedMessage {
                raw: message.clone(),
                sender: "bob@example.com".into(),
                recipients: vec!["alice@localhost".into()],
                auth_user: None,
                body_type: store::BodyType::SevenBit,
                smtputf8: false,
                received_at: now,
            })
            .await
            .unwrap();
        let claimed = store
            .claim_due(now, Duration::from_secs(30), 10)
            .await
            .unwrap();
        for m in claimed {
            let deliveries = m
                .recipients
                .iter()
                .map(|r| store::LocalDelivery {
                    recipient: r.id,
                    account: alice.id,
                    mailbox: "INBOX".into(),
                })
                .collect();
            store.deliver_local(m.id, deliveries).await.unwrap();
        }
    });
    let (mut child, mut out, lines, p1, p2) = start_pop3d(dir.path(), &data, "pop3d");
    assert_eq!(
        lines[0].trim_end(),
        format!("postern: pop3 listening on 127.0.0.1:{p1} (STLS)")
    );
    assert_eq!(
        lines[1].trim_end(),
        format!("postern: pop3s listening on 127.0.0.1:{p2} (implicit TLS)")
    );
    assert_eq!(lines.len(), 3, "two listeners and ready: {lines:?}");

    let (mut writer, mut reader) = connect(p1);
    assert!(cmd(&mut writer, &mut reader, "USER alice@localhost").starts_with("+OK"));
    assert!(cmd(&mut writer, &mut reader, "PASS pw-alice").starts_with("+OK"));
    assert_eq!(
        cmd(&mut writer, &mut reader, "STAT"),
        format!("+OK 1 {}", message.len())
    );
    assert_eq!(
        cmd(&mut writer, &mut reader, "RETR 1"),
        format!("+OK {} octets", message.len())
    );
    let mut body = Vec::new();
    loop {
        let l = line(&mut reader);
        if l == "." {
            break;
        }
        body.push(l);
    }
    assert_eq!(
        body,
        ["From: bob@example.com", "Subject: alone", "", "..dot", "hi"]
    );
    assert!(cmd(&mut writer, &mut reader, "DELE 1").starts_with("+OK"));
    assert!(cmd(&mut writer, &mut reader, "QUIT").starts_with("+OK"));

    let left = rt.block_on(async {
        let store = store::Store::open(&data).unwrap();
        let alice = store.account("alice@localhost").await.unwrap().unwrap();
        store.messages(alice.id, "INBOX").await.unwrap()
    });
    assert!(left.is_empty(), "DELE + QUIT expunges: {left:?}");

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
        assert!(Instant::now() < deadline, "pop3d did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
}
