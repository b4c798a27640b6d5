//! The store keeps a bounded history: in a running `postern up` with
//! `[store] changes_keep = 30`, IMAP churn (flag changes, messages appended
//! and expunged) leaves at most 30 rows of change feed and the tombstones
//! above the recorded horizon, while a second session still sees every
//! change it should. The database is read with Python's sqlite3 (read
//! only); python3 is required, never skipped.

use std::time::{Duration, Instant};

use postern_tests::*;

const ALICE: &str = "alice@localhost";
const KEEP: i64 = 30;

/// Prints `changes tombstones horizon highest min_tombstone_modseq` for
/// alice's INBOX.
const FEED: &str = r#"
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
mailbox, horizon, highest = db.execute(
    "SELECT b.id, b.horizon_modseq, b.highest_modseq FROM mailboxes b"
    " JOIN accounts a ON a.id = b.account_id WHERE a.address = ? AND b.name = 'INBOX'",
    (sys.argv[2],)).fetchone()
changes = db.execute("SELECT count(*) FROM changes WHERE mailbox_id = ?", (mailbox,)).fetchone()[0]
tombstones, low = db.execute(
    "SELECT count(*), coalesce(min(modseq), 0) FROM expunged WHERE mailbox_id = ?",
    (mailbox,)).fetchone()
print(changes, tombstones, horizon, highest, low)
"#;

async fn feed(data: &std::path::Path) -> Vec<i64> {
    let db = data.join("postern.db");
    let out = run_tool_ok(
        "python3",
        "python3",
        &["-c", FEED, db.to_str().unwrap(), ALICE],
    )
    .await;
    out.split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect()
}

async fn ok(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<String> {
    let r = c.imap(tag, command).await;
    assert!(
        r.last().unwrap().starts_with(&format!("{tag} OK")),
        "{command}: {r:?}"
    );
    r
}

async fn append(c: &mut Pop3Client, tag: &str, subject: &str) {
    let msg = format!("From: b@example.com\r\nSubject: {subject}\r\n\r\nbody\r\n");
    c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()).as_bytes())
        .await;
    let r = c.until_tag(tag).await;
    assert!(r.last().unwrap().starts_with(&format!("{tag} OK")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_churn_leaves_a_bounded_change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = tokio::task::block_in_place(|| {
        postern_cli(&data, &["user", "add", ALICE, "--password-stdin"], PASSWORD)
    });
    assert!(out.status.success(), "{out:?}");
    let extra =
        format!("[store]\nchanges_keep = {KEEP}\nprune_batch = 8\nprune_interval_secs = 0\n");
    let binary = tokio::task::block_in_place(|| Binary::start_with(&data, &extra));

    let login = format!("LOGIN {ALICE} \"{PASSWORD}\"");
    let (mut a, _) = Pop3Client::connect(binary.imap).await;
    ok(&mut a, "a1", &login).await;
    ok(&mut a, "a2", "SELECT INBOX").await;
    for i in 0..3 {
        append(&mut a, "a3", &format!("kept {i}")).await;
    }
    let (mut b, _) = Pop3Client::connect(binary.imap).await;
    ok(&mut b, "b1", &login).await;
    let r = ok(&mut b, "b2", "SELECT INBOX").await;
    assert!(r.contains(&"* 3 EXISTS".to_string()), "{r:?}");

    // 180 flag changes; six messages appended and expunged between them.
    for round in 0..60 {
        let op = if round % 2 == 0 { '+' } else { '-' };
        ok(
            &mut a,
            "a4",
            &format!("STORE 1:3 {op}FLAGS.SILENT (\\Seen)"),
        )
        .await;
        if round % 10 == 0 {
            append(&mut a, "a5", &format!("passing {round}")).await;
            ok(&mut a, "a6", "STORE 4 +FLAGS.SILENT (\\Deleted)").await;
            let r = ok(&mut a, "a7", "EXPUNGE").await;
            assert!(r.contains(&"* 4 EXPUNGE".to_string()), "{r:?}");
        }
    }
    ok(&mut a, "a8", "STORE 1:3 +FLAGS.SILENT (\\Seen \\Flagged)").await;

    // B was told nothing meanwhile: it now learns the flags, and nothing of
    // the messages that came and went.
    let r = ok(&mut b, "b3", "NOOP").await;
    for n in 1..=3 {
        assert!(
            r.iter().any(|l| l.starts_with(&format!("* {n} FETCH"))
                && l.contains("\\Seen")
                && l.contains("\\Flagged")),
            "{r:?}"
        );
    }
    assert!(
        !r.iter()
            .any(|l| l.contains("EXPUNGE") || l.contains("EXISTS")),
        "{r:?}"
    );
    let r = ok(&mut b, "b4", "UID FETCH 1:* (FLAGS)").await;
    let fetched: Vec<&String> = r.iter().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(fetched.len(), 3, "{r:?}");

    // The feed is pruned to the bound; tombstones only above the horizon.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (changes, tombstones, horizon, highest, low) = loop {
        let f = feed(&data).await;
        if f[0] <= KEEP && f[2] == f[3] - KEEP {
            break (f[0], f[1], f[2], f[3], f[4]);
        }
        assert!(Instant::now() < deadline, "not pruned: {f:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(highest > 200, "{highest}");
    assert_eq!(changes, KEEP);
    assert!(tombstones <= 6);
    assert!(
        tombstones == 0 || low > horizon,
        "{tombstones} {low} {horizon}"
    );

    ok(&mut a, "a9", "LOGOUT").await;
    ok(&mut b, "b5", "LOGOUT").await;
}
