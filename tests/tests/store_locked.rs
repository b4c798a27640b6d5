//! A store that cannot write for now is a temporary failure in every
//! protocol, as `StoreError::is_temporary` says: while another process
//! holds the database's write lock (an administrator's `sqlite3` left in
//! a transaction), each write waits out the busy timeout and fails with
//! "database is locked", and the daemons answer SMTP `451 4.3.0`, IMAP
//! `NO [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]` and HTTP `503` with
//! `Retry-After`. Reads go on meanwhile, and once the lock is gone
//! everything works again by itself, nothing lost.
//!
//! The lock is held with Python's sqlite3, as `store_prune` reads the
//! database with it: a real second process, not a stand-in for the store.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use postern_tests::*;

const ADDRESS: &str = "app@locked.test";
const PASSWORD_FOR_CAPTURE: &str = "capture-pw";

/// Holds the write lock of the database in `data` until its stdin closes.
const HOLD_LOCK: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/postern.db", isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"#;

struct WriteLock(Child);

impl WriteLock {
    /// Takes the lock; returns once it is held.
    fn take(data: &Path) -> WriteLock {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(HOLD_LOCK)
            .arg(data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked", "the lock was not taken");
        WriteLock(child)
    }

    fn release(mut self) {
        drop(self.0.stdin.take());
        let status = self.0.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

/// A failed assertion lets the lock go too.
impl Drop for WriteLock {
    fn drop(&mut self) {
        if let Some(stdin) = self.0.stdin.take() {
            drop(stdin);
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_store_is_a_temporary_failure_everywhere() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let extra = format!("[capture]\npassword = \"{PASSWORD_FOR_CAPTURE}\"\n");
    let server = tokio::task::block_in_place(|| Binary::start_up(&data, &extra, &["--capture"]));

    // Two messages, then every session opened and as far as it gets
    // without writing.
    let (mut smtp, _) = SmtpClient::connect(server.smtp).await;
    assert_eq!(smtp.cmd("EHLO app.test").await.code, 250);
    for n in 1..=2 {
        let r = smtp
            .send_mail(
                "app@app.test",
                &[ADDRESS],
                &message(&format!("before {n}"), "x"),
            )
            .await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    let (mut imap, _) = Pop3Client::connect(server.imap).await;
    let r = imap
        .imap("a", &format!("LOGIN {ADDRESS} {PASSWORD_FOR_CAPTURE}"))
        .await;
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    let r = imap.imap("b", "SELECT INBOX").await;
    assert!(r.iter().any(|l| l == "* 2 EXISTS"), "{r:?}");
    let (mut pop3, _) = Pop3Client::connect(server.pop3).await;
    pop3.login(ADDRESS, PASSWORD_FOR_CAPTURE).await;
    assert!(pop3.cmd("DELE 1").await.starts_with("+OK"));
    let http = reqwest::Client::new();
    let messages = format!("http://{}/api/v1/messages", server.http);

    let lock = tokio::task::block_in_place(|| WriteLock::take(&data));

    // Every write waits out the busy timeout, so all at once.
    let during = message("during", "x");
    let smtp_answer = smtp.send_mail("app@app.test", &[ADDRESS], &during);
    let imap_answer = imap.imap("c", "STORE 1 +FLAGS (\\Flagged)");
    let pop3_answer = pop3.cmd("QUIT");
    let http_answer = http
        .put(&messages)
        .json(&serde_json::json!({"Read": true}))
        .send();
    let (smtp_answer, imap_answer, pop3_answer, http_answer) =
        tokio::join!(smtp_answer, imap_answer, pop3_answer, http_answer);

    assert_eq!(smtp_answer.code, 451, "{smtp_answer:?}");
    assert_eq!(
        smtp_answer.text(),
        "4.3.0 Temporary failure, please try again later"
    );
    assert_eq!(
        imap_answer.last().unwrap(),
        "c NO [UNAVAILABLE] Cannot store flags; try again later",
        "{imap_answer:?}"
    );
    assert_eq!(
        pop3_answer,
        "-ERR [SYS/TEMP] Some deleted messages not removed"
    );
    let http_answer = http_answer.unwrap();
    assert_eq!(
        http_answer.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(http_answer.headers()["retry-after"], "5");

    // Reads go on meanwhile.
    let r = imap.imap("d", "FETCH 1:* (FLAGS)").await;
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");

    tokio::task::block_in_place(|| lock.release());

    // And writes work again by themselves; nothing was lost or half done.
    let r = smtp
        .send_mail("app@app.test", &[ADDRESS], &message("after", "x"))
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let r = imap.imap("e", "STORE 1 +FLAGS (\\Flagged)").await;
    assert!(r.last().unwrap().starts_with("e OK"), "{r:?}");
    let response = http
        .put(&messages)
        .json(&serde_json::json!({"Read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    // The POP3 deletion was not made: both messages are there, and the
    // one sent after.
    let (mut pop3, _) = Pop3Client::connect(server.pop3).await;
    pop3.login(ADDRESS, PASSWORD_FOR_CAPTURE).await;
    let stat = pop3.cmd("STAT").await;
    assert!(stat.starts_with("+OK 3 "), "{stat}");
    assert!(pop3.cmd("QUIT").await.starts_with("+OK"));
}
