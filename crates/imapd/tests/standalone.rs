//! The `imapd` binary alone, on a data dir that smtpd fills: it starts,
//! announces its listeners, logs in, lists and selects INBOX, and stops on
//! SIGTERM.

use common::testutil::{free_port, seed_account, DaemonProcess, LineClient};

/// Sends a tagged command and reads up to its tagged reply: all lines.
fn exchange(client: &mut LineClient, tag: &str, command: &str) -> Vec<String> {
    let mut lines = vec![client.cmd(&format!("{tag} {command}"))];
    while !lines.last().unwrap().starts_with(&format!("{tag} ")) {
        lines.push(client.line());
    }
    lines
}

#[test]
fn imapd_runs_alone_on_a_shared_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let message = b"From: bob@example.com\r\nSubject: alone\r\n\r\nhi\r\n";
    seed_account(&data, "alice@localhost", "pw-alice", &[message]);
    let (p1, p2) = (free_port(), free_port());
    let imapd = DaemonProcess::start(
        env!("CARGO_BIN_EXE_imapd").as_ref(),
        &data,
        &dir.path().join("imapd.toml"),
        &format!(
            "log = \"warn\"\n[imap]\nlisten = [\"127.0.0.1:{p1}\"]\nimaps_listen = [\"127.0.0.1:{p2}\"]\n"
        ),
    );
    let lines = &imapd.announced;
    assert_eq!(
        lines[0].trim_end(),
        format!("postern: imap listening on 127.0.0.1:{p1} (STARTTLS)")
    );
    assert_eq!(
        lines[1].trim_end(),
        format!("postern: imaps listening on 127.0.0.1:{p2} (implicit TLS)")
    );
    assert_eq!(lines.len(), 3, "two listeners and ready: {lines:?}");

    let mut c = LineClient::connect(p1);
    let greeting = c.line();
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{greeting}"
    );
    let reply = exchange(&mut c, "a", "LOGIN alice@localhost pw-alice");
    assert!(
        reply[0].starts_with("a OK [CAPABILITY IMAP4rev1 "),
        "{reply:?}"
    );
    let list = exchange(&mut c, "b", "LIST \"\" \"*\"");
    assert!(
        list.contains(&"* LIST (\\HasNoChildren) \"/\" INBOX".to_string()),
        "{list:?}"
    );
    assert!(
        list.contains(&"* LIST (\\HasNoChildren \\Sent) \"/\" Sent".to_string()),
        "{list:?}"
    );
    assert_eq!(list.last().unwrap(), "b OK LIST completed");
    let select = exchange(&mut c, "c", "SELECT INBOX");
    assert!(select.contains(&"* 1 EXISTS".to_string()), "{select:?}");
    assert!(
        select.contains(&"* OK [UNSEEN 1] First unseen".to_string()),
        "{select:?}"
    );
    assert_eq!(select.last().unwrap(), "c OK [READ-WRITE] SELECT completed");
    let logout = exchange(&mut c, "d", "LOGOUT");
    assert_eq!(
        logout,
        [
            "* BYE Postern IMAP server logging out",
            "d OK LOGOUT completed"
        ]
    );
    imapd.stop();
}
