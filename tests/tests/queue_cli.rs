//! `postern queue list|show|retry|flush|delete` against a queue filled
//! through the store directly, with no queue manager running: what the
//! command prints, and what it leaves in the store.

use std::path::Path;
use std::time::Duration;

use postern_tests::postern_cli;
use store::{BodyType, NewQueuedMessage, QueueId, RecipientState, Store, Timestamp};

/// What the command printed and whether it succeeded.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn cli(data_dir: &Path, args: &[&str]) -> Run {
    let mut full = vec!["queue"];
    full.extend_from_slice(args);
    let out = tokio::task::block_in_place(|| postern_cli(data_dir, &full, ""));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(data_dir: &Path, args: &[&str]) -> String {
    let run = cli(data_dir, args);
    assert!(run.ok, "queue {args:?} failed: {}", run.stderr);
    run.stdout
}

fn now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as Timestamp
}

fn raw(subject: &str) -> Vec<u8> {
    format!(
        "Received: from client by localhost\r\nFrom: Alice <alice@example.com>\r\n\
         To: Bob <bob@example.org>,\r\n Carol <carol@example.net>\r\nSubject: {subject}\r\n\
         Date: Mon, 13 Nov 2023 10:00:00 +0000\r\nMessage-ID: <{subject}@example.com>\r\n\
         \r\nBody of {subject}.\r\n"
    )
    .into_bytes()
}

fn queued(raw: Vec<u8>, sender: &str, recipients: &[&str]) -> NewQueuedMessage {
    NewQueuedMessage {
        raw,
        sender: sender.into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        auth_user: Some("alice@example.com".into()),
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        received_at: now() - 600,
    }
}

/// Claims every due recipient of `id` and defers them for an hour, as a
/// failed attempt would.
async fn defer_all(store: &Store, id: QueueId, error: &str) {
    let claimed = store
        .claim_due(now(), Duration::from_secs(60), 100)
        .await
        .unwrap();
    let message = claimed.iter().find(|m| m.id == id).expect("claimed");
    let recipients: Vec<_> = message.recipients.iter().map(|r| r.id).collect();
    store
        .defer(id, &recipients, error, now() + 3600)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let store = Store::open(data).unwrap();
    assert_eq!(ok(data, &["list"]).trim(), "queue is empty");

    let first = store
        .enqueue(queued(
            raw("first"),
            "alice@example.com",
            &["bob@example.org", "carol@example.net"],
        ))
        .await
        .unwrap();
    defer_all(&store, first, "451 4.7.1 greylisted, try later").await;
    let bounce = raw("bounce");
    let second = store
        .enqueue(queued(bounce.clone(), "", &["dave@example.org"]))
        .await
        .unwrap();

    let list = ok(data, &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 8, "{list}");
    assert!(
        lines[0].starts_with(&format!("{first}  arrived ")),
        "{list}"
    );
    // Ten minutes before the test began, so a second or two more on a
    // loaded machine.
    let age = lines[0]
        .split(" UTC (")
        .nth(1)
        .and_then(|rest| rest.split(" ago)  ").next())
        .unwrap_or_default();
    assert!(
        ["10m", "10m 1s", "10m 2s", "10m 3s"].contains(&age),
        "{list}"
    );
    assert!(
        lines[0].ends_with(" bytes  from alice@example.com"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("    bob@example.org  deferred  attempts 1  next attempt ")
            && (lines[1].ends_with(" UTC (in 59m)") || lines[1].ends_with(" UTC (in 1h)")),
        "{list}"
    );
    assert_eq!(
        lines[2],
        "        last error: 451 4.7.1 greylisted, try later"
    );
    assert!(lines[3].starts_with("    carol@example.net  deferred  attempts 1"));
    assert_eq!(lines[4], lines[2]);
    assert!(
        lines[5].starts_with(&format!("{second}  arrived ")),
        "{list}"
    );
    assert!(lines[5].ends_with(" bytes  from <>"), "{list}");
    assert_eq!(
        lines[6],
        "    dave@example.org  pending  attempts 0  next attempt now"
    );
    assert_eq!(
        list.lines().last(),
        Some("2 messages, 3 recipients waiting"),
        "{list}"
    );

    let json: serde_json::Value = serde_json::from_str(&ok(data, &["list", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    let show = ok(data, &["show", &second.to_string()]);
    assert!(show.starts_with(&format!("{second}  arrived ")), "{show}");
    assert!(show.contains(&format!(" {} bytes  from <>\n", bounce.len())));
    for line in [
        "    dave@example.org  pending  attempts 0  next attempt now",
        "auth user: alice@example.com",
        "body type: 8bitmime",
        "smtputf8: no",
        "From: Alice <alice@example.com>",
        "To: Bob <bob@example.org>, Carol <carol@example.net>",
        "Subject: bounce",
        "Date: Mon, 13 Nov 2023 10:00:00 +0000",
        "Message-ID: <bounce@example.com>",
    ] {
        assert!(show.lines().any(|l| l == line), "no {line:?} in\n{show}");
    }
    assert!(!show.contains("Received:"), "{show}");

    let out = tokio::task::block_in_place(|| {
        postern_cli(data, &["queue", "show", &second.to_string(), "--raw"], "")
    });
    assert!(out.status.success());
    assert_eq!(out.stdout, bounce);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_and_flush_make_recipients_due() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let store = Store::open(data).unwrap();
    let mut ids = Vec::new();
    for subject in ["a", "b", "c"] {
        let id = store
            .enqueue(queued(
                raw(subject),
                "alice@example.com",
                &["bob@example.org", "carol@example.net"],
            ))
            .await
            .unwrap();
        defer_all(&store, id, "421 4.4.2 timed out").await;
        ids.push(id);
    }
    let due = |m: &store::QueuedMessage, since: Timestamp| {
        m.recipients.iter().all(|r| {
            r.state == RecipientState::Deferred && (since..=now()).contains(&r.next_attempt_at)
        })
    };

    let before = now();
    let out = ok(data, &["retry", &ids[0].to_string()]);
    assert_eq!(
        out.trim(),
        format!(
            "{}: 2 recipients made due now (2 still to deliver in all)",
            ids[0]
        )
    );
    let queue = store.queue().await.unwrap();
    assert!(due(&queue[0], before), "{queue:?}");
    assert!(!due(&queue[1], before) && !due(&queue[2], before));
    assert!(ok(data, &["list"]).contains("  deferred  attempts 1  next attempt now"));
    // Nothing left to cut short.
    assert!(ok(data, &["retry", &ids[0].to_string()])
        .starts_with(&format!("{}: 0 recipients made due now", ids[0])));

    let before = now();
    assert_eq!(
        ok(data, &["flush"]).trim(),
        "4 deferred recipients made due now"
    );
    assert!(store
        .queue()
        .await
        .unwrap()
        .iter()
        .all(|m| due(m, before - 5)));
    assert_eq!(
        ok(data, &["flush"]).trim(),
        "0 deferred recipients made due now"
    );
    // The queue manager would now claim all six.
    let claimed = store
        .claim_due(now(), Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|m| m.recipients.len()).sum::<usize>(), 6);

    // A pending recipient not due is leased to a delivery under way: retry
    // leaves it to finish rather than start a second one.
    let sending = store
        .enqueue(queued(raw("d"), "alice@example.com", &["erin@example.org"]))
        .await
        .unwrap();
    let leased = store
        .claim_due(now(), Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    let until = leased[0].recipients[0].next_attempt_at;
    assert_eq!(
        ok(data, &["retry", &sending.to_string()]).trim(),
        format!("{sending}: 0 recipients made due now (1 still to deliver in all)")
    );
    let kept = store.queued_message(sending).await.unwrap().unwrap();
    assert_eq!(kept.recipients[0].next_attempt_at, until);
    assert!(ok(data, &["show", &sending.to_string()])
        .lines()
        .any(|l| l == "    erin@example.org  pending  attempts 0  being delivered"));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_releases_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let store = Store::open(data).unwrap();
    let shared = raw("shared");
    let one = store
        .enqueue(queued(
            shared.clone(),
            "alice@example.com",
            &["bob@example.org"],
        ))
        .await
        .unwrap();
    let two = store
        .enqueue(queued(
            shared,
            "",
            &["carol@example.net", "dave@example.org"],
        ))
        .await
        .unwrap();
    let three = store
        .enqueue(queued(
            raw("alone"),
            "alice@example.com",
            &["bob@example.org"],
        ))
        .await
        .unwrap();
    assert_eq!(store.blob_count().await.unwrap(), 2);

    assert_eq!(
        ok(data, &["delete", &one.to_string()]).trim(),
        format!("deleted {one} (from alice@example.com, 1 recipient)")
    );
    assert!(store.queued_message(one).await.unwrap().is_none());
    // The other entry still holds the shared blob.
    assert_eq!(store.blob_count().await.unwrap(), 2);
    assert_eq!(
        store.queued_message_raw(two).await.unwrap().as_slice(),
        raw("shared")
    );

    let out = ok(data, &["delete", "--all"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("deleted {two} (from <>, 2 recipients)"),
            format!("deleted {three} (from alice@example.com, 1 recipient)"),
            "2 messages deleted".to_owned(),
        ]
    );
    assert!(store.queue().await.unwrap().is_empty());
    assert_eq!(store.blob_count().await.unwrap(), 0);
    assert_eq!(ok(data, &["list"]).trim(), "queue is empty");
    assert_eq!(ok(data, &["delete", "--all"]).trim(), "0 messages deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_malformed_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let store = Store::open(data).unwrap();
    let id = store
        .enqueue(queued(
            raw("kept"),
            "alice@example.com",
            &["bob@example.org"],
        ))
        .await
        .unwrap();

    for command in ["show", "retry", "delete"] {
        let run = cli(data, &[command, "999"]);
        assert!(!run.ok, "{command} 999 succeeded");
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(
            run.stderr.contains("no message 999 in the queue"),
            "{command}: {}",
            run.stderr
        );

        for bad in ["abc", "0", "4x"] {
            let run = cli(data, &[command, bad]);
            assert!(!run.ok, "{command} {bad} succeeded");
            assert!(
                run.stderr.contains("a queue id is a positive number"),
                "{command} {bad}: {}",
                run.stderr
            );
        }
    }
    let run = cli(data, &["delete"]);
    assert!(!run.ok);
    let run = cli(data, &["delete", &id.to_string(), "--all"]);
    assert!(!run.ok);
    // Nothing was touched.
    let kept = store.queued_message(id).await.unwrap().unwrap();
    assert_eq!(kept.recipients[0].state, RecipientState::Pending);
    assert_eq!(store.blob_count().await.unwrap(), 1);
}
