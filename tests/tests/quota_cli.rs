//! `postern user quota ADDRESS [--storage SIZE] [--messages N]`: what it
//! prints, what it refuses, and that a running `postern up` applies a
//! limit set meanwhile (IMAP GETQUOTAROOT, SMTP RCPT) with no restart.

use std::path::Path;

use postern_tests::{add_alice, postern_cli, Binary, Pop3Client, SmtpClient, PASSWORD};

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn quota(data_dir: &Path, args: &[&str]) -> Run {
    let mut full = vec!["user", "quota"];
    full.extend_from_slice(args);
    let out = tokio::task::block_in_place(|| postern_cli(data_dir, &full, ""));
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(data_dir: &Path, args: &[&str]) -> String {
    let run = quota(data_dir, args);
    assert!(run.ok, "user quota {args:?} failed: {}", run.stderr);
    run.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn show_set_and_clear_limits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_alice(&data);

    assert_eq!(
        ok(&data, &["alice@localhost"]),
        "alice@localhost\n  storage   0 KiB (no limit)\n  messages  0 (no limit)\n"
    );
    assert_eq!(
        ok(
            &data,
            &[
                "Alice@Localhost",
                "--storage",
                "500M",
                "--messages",
                "10000"
            ]
        ),
        "alice@localhost\n  storage   0 KiB of 500 MiB (0%)\n  messages  0 of 10000\n"
    );
    // One limit at a time; the other stays.
    assert_eq!(
        ok(&data, &["alice@localhost", "--storage", "2g"]),
        "alice@localhost\n  storage   0 KiB of 2 GiB (0%)\n  messages  0 of 10000\n"
    );
    assert_eq!(
        ok(&data, &["alice@localhost", "--storage", "1536"]),
        "alice@localhost\n  storage   0 KiB of 1.5 MiB (0%)\n  messages  0 of 10000\n"
    );
    assert_eq!(
        ok(&data, &["alice@localhost", "--messages", "none"]),
        "alice@localhost\n  storage   0 KiB of 1.5 MiB (0%)\n  messages  0 (no limit)\n"
    );
    assert_eq!(
        ok(&data, &["alice@localhost", "--storage", "none"]),
        "alice@localhost\n  storage   0 KiB (no limit)\n  messages  0 (no limit)\n"
    );

    // Usage of the messages in every mailbox.
    let store = store::Store::open(&data).unwrap();
    let alice = store.account("alice@localhost").await.unwrap().unwrap();
    for (mailbox, size) in [("INBOX", 3000), ("Archive", 2000)] {
        let mut raw = b"Subject: x\r\n\r\n".to_vec();
        raw.resize(size, b'a');
        store.append(alice.id, mailbox, raw, &[], 0).await.unwrap();
    }
    drop(store);
    assert_eq!(
        ok(
            &data,
            &["alice@localhost", "--storage", "10K", "--messages", "4"]
        ),
        "alice@localhost\n  storage   4 KiB of 10 KiB (48%)\n  messages  2 of 4\n"
    );

    // Refused: bad sizes and counts (usage errors, exit 2), unknown
    // accounts (exit 1). Nothing changes.
    for bad in [
        &["alice@localhost", "--storage", "1.5G"][..],
        &["alice@localhost", "--storage", "12X"],
        &["alice@localhost", "--storage", ""],
        &["alice@localhost", "--storage", "-1"],
        &["alice@localhost", "--storage", "99999999999999T"],
        &["alice@localhost", "--messages", "many"],
        &["alice@localhost", "--messages", "-3"],
    ] {
        let run = quota(&data, bad);
        assert_eq!(run.code, Some(2), "{bad:?}: {}{}", run.stdout, run.stderr);
    }
    let run = quota(&data, &["nobody@localhost"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr, "postern: no such account: nobody@localhost\n");
    let run = quota(&data, &["nobody@localhost", "--messages", "3"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr, "postern: no such account: nobody@localhost\n");
    assert!(ok(&data, &["alice@localhost"]).contains("messages  2 of 4"));
}

/// A limit set with the command while `postern up` runs is what IMAP
/// and SMTP answer from the next command on.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_server_applies_a_limit_set_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_alice(&data);
    let server = tokio::task::block_in_place(|| Binary::start(&data));

    let (mut c, greeting) = Pop3Client::connect(server.imap).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let r = c
        .imap("L", &format!("LOGIN alice@localhost \"{PASSWORD}\""))
        .await;
    assert!(r.last().unwrap().starts_with("L OK"), "{r:?}");
    let r = c.imap("a", "GETQUOTAROOT INBOX").await;
    assert_eq!(r, ["* QUOTAROOT INBOX", "a OK Getquotaroot completed"]);

    ok(&data, &["alice@localhost", "--messages", "1"]);
    let r = c.imap("b", "GETQUOTAROOT INBOX").await;
    assert_eq!(
        r,
        [
            "* QUOTAROOT INBOX \"\"",
            "* QUOTA \"\" (MESSAGE 0 1)",
            "b OK Getquotaroot completed"
        ]
    );
    let (mut smtp, greeting) = SmtpClient::connect(server.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.cmd("EHLO client.example").await.code, 250);
    let r = smtp
        .send_mail(
            "bob@example.com",
            &["alice@localhost"],
            b"Subject: one\r\n\r\nfits\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text());
    assert_eq!(smtp.cmd("MAIL FROM:<bob@example.com>").await.code, 250);
    let r = smtp.cmd("RCPT TO:<alice@localhost>").await;
    assert_eq!(r.code, 452, "{}", r.text());
    let r = c.imap("c", "GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (MESSAGE 1 1)");
}
