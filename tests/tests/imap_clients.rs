//! IMAP, black-box, with what real clients send when CONDSTORE and QRESYNC
//! are offered: imapflow (npm, the published library; tests/imapflow pins
//! it) syncing a mailbox and resyncing it after another session changed
//! flags and expunged, and Thunderbird's command set (`ENABLE CONDSTORE`,
//! `SELECT "INBOX" (CONDSTORE)`, `UID fetch 1:* (FLAGS) (CHANGEDSINCE n)`,
//! its header fetch, `uid store`, IDLE) across two sessions, each answer's
//! form checked against what Dovecot 2.3 answers to the same commands.
//!
//! node and `npm ci` in tests/imapflow are required (`.ci/run` does it): a
//! missing one fails the test, it is never skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use postern_tests::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const ALICE: &str = "alice@localhost";

async fn start() -> (Server, ImapServer) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    (server, imap)
}

fn imapflow_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("imapflow");
    assert!(
        dir.join("node_modules/imapflow").exists(),
        "run `npm ci` in {} first (.ci/run does)",
        dir.display()
    );
    dir
}

/// `node resync.mjs args…`, started with its stdout read line by line.
struct Node {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let dir = imapflow_dir();
        let mut child = tokio::process::Command::new("node")
            .arg("resync.mjs")
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (Debian package `nodejs`): {e}"));
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Node { child, lines }
    }

    /// The next JSON line the script prints.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("imapflow printed nothing within 60 s")
            .expect("read stdout");
        match line {
            Some(l) => serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")),
            None => panic!("imapflow ended early: {}", self.stderr().await),
        }
    }

    async fn stderr(&mut self) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut err).await;
        }
        err
    }

    async fn success(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("imapflow did not exit")
            .expect("wait");
        assert!(
            status.success(),
            "imapflow: {status}: {}",
            self.stderr().await
        );
    }
}

fn uids(v: &Value) -> Vec<u64> {
    let mut u: Vec<u64> = v
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|x| x.as_u64().unwrap_or_else(|| panic!("{x}")))
        .collect();
    u.sort_unstable();
    u
}

/// `[{uid, flags}]` as `(uid, "flag flag")`, by UID.
fn flag_list(v: &Value) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = v
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|m| {
            let flags: Vec<&str> = m["flags"]
                .as_array()
                .unwrap_or_else(|| panic!("{m}"))
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            (m["uid"].as_u64().unwrap(), flags.join(" "))
        })
        .collect();
    out.sort();
    out
}

/// The tagged reply to `command`, which must be OK; the untagged lines.
async fn ok(c: &mut Pop3Client, command: &str) -> Vec<String> {
    let mut r = c.imap("t", command).await;
    let tagged = r.pop().unwrap();
    assert!(
        tagged.starts_with("t OK"),
        "{command}: {tagged} after {r:?}"
    );
    r
}

#[tokio::test]
async fn imapflow_resyncs_with_qresync_what_another_session_changed() {
    let (server, imap) = start().await;
    server
        .send_subjects(ALICE, &["one", "two", "three", "four", "five"])
        .await;
    server.wait_for_inbox(ALICE, 5).await;
    let port = imap.imap.port().to_string();

    // imapflow syncs the INBOX and keeps what a client keeps.
    let mut sync = Node::start(&["sync", &port, ALICE, PASSWORD]);
    let state = sync.next().await;
    sync.success().await;
    let validity = state["uidValidity"].as_str().unwrap().to_string();
    let modseq = state["highestModseq"].as_str().unwrap().to_string();
    assert_eq!(
        flag_list(&state["messages"]),
        (1..=5).map(|u| (u, String::new())).collect::<Vec<_>>(),
        "{state}"
    );

    // Meanwhile another session flags two messages and expunges two.
    let mut other = alice_in_inbox(&imap).await;
    ok(&mut other, "UID STORE 2 +FLAGS (\\Flagged)").await;
    ok(&mut other, "UID STORE 4 +FLAGS (\\Seen $Work)").await;
    ok(&mut other, "UID STORE 1,5 +FLAGS (\\Deleted)").await;
    ok(&mut other, "EXPUNGE").await;

    // imapflow reopens with its UIDVALIDITY and modseq (QRESYNC): it is told
    // exactly those changes, and a CHANGEDSINCE fetch agrees.
    let mut resync = Node::start(&["resync", &port, ALICE, PASSWORD, &validity, &modseq]);
    let seen = resync.next().await;
    assert_eq!(seen["step"], "resynced", "{seen}");
    let changed = vec![
        (2, "\\Flagged".to_string()),
        (4, "$Work \\Seen".to_string()),
    ];
    for step in ["open", "fetch"] {
        // Both name the two expunged UIDs as VANISHED (EARLIER); SELECT
        // also gives the two changed messages' flags.
        let events = &seen[step];
        assert_eq!(uids(&events["vanished"]), vec![1, 5], "{step}: {seen}");
        assert!(
            events["earlier"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e == true),
            "{step}: {seen}"
        );
        assert_eq!(
            uids(&events["expunged"]),
            Vec::<u64>::new(),
            "{step}: {seen}"
        );
    }
    assert_eq!(flag_list(&seen["open"]["flags"]), changed, "{seen}");
    assert_eq!(flag_list(&seen["changed"]), changed, "{seen}");
    assert_eq!(seen["exists"], 3, "{seen}");
    assert!(
        seen["highestModseq"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > modseq.parse::<u64>().unwrap(),
        "{seen}"
    );

    // While imapflow stays selected (IDLE), the other session changes a
    // flag and expunges: imapflow hears both at once.
    ok(&mut other, "UID STORE 3 +FLAGS (\\Answered)").await;
    ok(&mut other, "UID STORE 2 +FLAGS (\\Deleted)").await;
    ok(&mut other, "UID EXPUNGE 2").await;
    let live = resync.next().await;
    resync.success().await;
    assert_eq!(live["step"], "live", "{live}");
    let answered = live["flags"].as_array().unwrap().iter().any(|f| {
        f["uid"] == 3
            && f["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "\\Answered")
    });
    assert!(answered, "{live}");
    assert_eq!(
        uids(&live["vanished"]),
        vec![2],
        "VANISHED under QRESYNC: {live}"
    );
    assert_eq!(uids(&live["expunged"]), Vec::<u64>::new(), "{live}");
    assert_eq!(live["exists"], 2, "{live}");
}
