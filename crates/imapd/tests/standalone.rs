//! The `imapd` binary alone, on a data dir that smtpd fills: it starts,
//! announces its listeners, logs in, lists and selects INBOX, and stops on
//! SIGTERM.

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

/// Starts the `imapd` binary on `data` with a config `<tag>.toml` in
/// `dir`, on two free ports; returns it once it says it is ready, with its
/// stdout, the lines it printed and its ports.
fn start_imapd(
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
            "log = \"warn\"\n[imap]\nlisten = [\"127.0.0.1:{p1}\"]\nimaps_listen = [\"127.0.0.1:{p2}\"]\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imapd"))
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
            "imapd exited early: {lines:?}"
        );
        let ready = line.starts_with("postern: ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    (child, out, lines, p1, p2)
}

/// Connects to an IMAP port and reads the greeting.
fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let greeting = line(&mut reader);
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{greeting}"
    );
    (writer, reader)
}

/// Sends a tagged command and reads up to its tagged reply: all lines.
fn exchange(
    writer: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    tag: &str,
    command: &str,
) -> Vec<String> {
    let first = cmd(writer, reader, &format!("{tag} {command}"));
    let mut lines = vec![first];
    while !lines.last().unwrap().starts_with(&format!("{tag} ")) {
        lines.push(line(reader));
    }
    lines
}

#[test]
fn imapd_runs_alone_on_a_shared_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let message = b"From: bob@example.com\r\nSubject: alone\r\n\r\nhi\r\n".to_vec();
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
    let (mut child, mut out, lines, p1, p2) = start_imapd(dir.path(), &data, "imapd");
    assert_eq!(
        lines[0].trim_end(),
        format!("postern: imap listening on 127.0.0.1:{p1} (STARTTLS)")
    );
    assert_eq!(
        lines[1].trim_end(),
        format!("postern: imaps listening on 127.0.0.1:{p2} (implicit TLS)")
    );
    assert_eq!(lines.len(), 3, "two listeners and ready: {lines:?}");

    let (mut w, mut r) = connect(p1);
    let reply = exchange(&mut w, &mut r, "a", "LOGIN alice@localhost pw-alice");
    assert!(
        reply[0].starts_with("a OK [CAPABILITY IMAP4rev1 "),
        "{reply:?}"
    );
    let list = exchange(&mut w, &mut r, "b", "LIST \"\" \"*\"");
    assert!(
        list.contains(&"* LIST (\\HasNoChildren) \"/\" INBOX".to_string()),
        "{list:?}"
    );
    assert!(
        list.contains(&"* LIST (\\HasNoChildren \\Sent) \"/\" Sent".to_string()),
        "{list:?}"
    );
    assert_eq!(list.last().unwrap(), "b OK LIST completed");
    let select = exchange(&mut w, &mut r, "c", "SELECT INBOX");
    assert!(select.contains(&"* 1 EXISTS".to_string()), "{select:?}");
    assert!(
        select.contains(&"* OK [UNSEEN 1] First unseen".to_string()),
        "{select:?}"
    );
    assert_eq!(select.last().unwrap(), "c OK [READ-WRITE] SELECT completed");
    let logout = exchange(&mut w, &mut r, "d", "LOGOUT");
    assert_eq!(
        logout,
        [
            "* BYE Postern IMAP server logging out",
            "d OK LOGOUT completed"
        ]
    );

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
        assert!(Instant::now() < deadline, "imapd did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
}
