//! The `pop3d` binary alone, on a data dir that `postern` administers and
//! smtpd fills: it starts, announces its listeners, serves the INBOX, and
//! stops on SIGTERM.

use std::path::Path;
use std::time::{Duration, Instant};

use common::testutil::{free_port, seed_account, DaemonProcess, LineClient};

/// Starts the `pop3d` binary on `data` with a config `<tag>.toml` in
/// `dir`, on two free ports; returns it once it says it is ready, with its
/// ports.
fn start_pop3d(dir: &Path, data: &Path, tag: &str) -> (DaemonProcess, u16, u16) {
    let (p1, p2) = (free_port(), free_port());
    let pop3d = DaemonProcess::start(
        env!("CARGO_BIN_EXE_pop3d").as_ref(),
        data,
        &dir.join(format!("{tag}.toml")),
        &format!(
            "log = \"warn\"\n[pop3]\nlisten = [\"127.0.0.1:{p1}\"]\npop3s_listen = [\"127.0.0.1:{p2}\"]\n"
        ),
    );
    (pop3d, p1, p2)
}

/// Connects to a POP3 port and reads the greeting.
fn connect(port: u16) -> LineClient {
    let mut c = LineClient::connect(port);
    assert!(c.line().starts_with("+OK "));
    c
}

#[test]
fn two_processes_on_one_data_dir_share_the_maildrop_lock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_account(&data, "alice@localhost", "pw-alice", &[]);
    let (_first, port1, _) = start_pop3d(dir.path(), &data, "first");
    let (_second, port2, _) = start_pop3d(dir.path(), &data, "second");
    let mut c1 = connect(port1);
    assert!(c1.cmd("USER alice@localhost").starts_with("+OK"));
    assert!(c1.cmd("PASS pw-alice").starts_with("+OK"));
    let mut c2 = connect(port2);
    assert!(c2.cmd("USER alice@localhost").starts_with("+OK"));
    let reply = c2.cmd("PASS pw-alice");
    assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
    assert!(c1.cmd("QUIT").starts_with("+OK"));
    // Once the first session's lease is released, the other process may
    // take the maildrop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = connect(port2);
        assert!(c.cmd("USER alice@localhost").starts_with("+OK"));
        let reply = c.cmd("PASS pw-alice");
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
    // Both processes are killed when dropped.
}

#[test]
fn pop3d_runs_alone_on_a_shared_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let message = b"From: bob@example.com\r\nSubject: alone\r\n\r\n.dot\r\nhi\r\n";
    // The account and its mail are made the way the other daemons would,
    // before pop3d runs.
    seed_account(&data, "alice@localhost", "pw-alice", &[message]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (pop3d, p1, p2) = start_pop3d(dir.path(), &data, "pop3d");
    let lines = &pop3d.announced;
    assert_eq!(
        lines[0].trim_end(),
        format!("postern: pop3 listening on 127.0.0.1:{p1} (STLS)")
    );
    assert_eq!(
        lines[1].trim_end(),
        format!("postern: pop3s listening on 127.0.0.1:{p2} (implicit TLS)")
    );
    assert_eq!(lines.len(), 3, "two listeners and ready: {lines:?}");

    let mut c = connect(p1);
    assert!(c.cmd("USER alice@localhost").starts_with("+OK"));
    assert!(c.cmd("PASS pw-alice").starts_with("+OK"));
    assert_eq!(c.cmd("STAT"), format!("+OK 1 {}", message.len()));
    assert_eq!(c.cmd("RETR 1"), format!("+OK {} octets", message.len()));
    let mut body = Vec::new();
    loop {
        let l = c.line();
        if l == "." {
            break;
        }
        body.push(l);
    }
    assert_eq!(
        body,
        ["From: bob@example.com", "Subject: alone", "", "..dot", "hi"]
    );
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let left = rt.block_on(async {
        let store = store::Store::open(&data).unwrap();
        let alice = store.account("alice@localhost").await.unwrap().unwrap();
        store.messages(alice.id, "INBOX").await.unwrap()
    });
    assert!(left.is_empty(), "DELE + QUIT expunges: {left:?}");
    pop3d.stop();
}
